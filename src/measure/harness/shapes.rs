//! Shape presets: `smoke` is CI-sized; `sweep` is the calibration grid. A user's own list comes
//! from a TOML file with `[[matmul]]` entries (`m`, `n`, `k`, optional `batch`), `[[attention]]`
//! entries, `[[memory]]` entries (`kind`, `rows`, `cols`) and `[[scan]]` entries (`heads`,
//! `seq`, `key_dim`, optional `batch`, `value_dim` (= `key_dim`) and `chunk` (64)).

use crate::error::{Error, Result, parse_toml};
use crate::model::dtype::DType;
use crate::model::ops::{Activation, Attention, Matmul, MemoryKind, MemoryOp, Op, Pass, Scan};
use serde::Deserialize;

/// Small, odd-sized shapes: every edge case of tiling, fast enough for lavapipe in CI.
fn matmul_smoke() -> Vec<[u64; 4]> {
    vec![
        [1, 1, 1, 1],
        [1, 7, 5, 3],
        [1, 64, 64, 64],
        [1, 65, 63, 67],
        [3, 33, 17, 40],
        [1, 1, 256, 128],
        [1, 128, 128, 128],
        [1, 130, 257, 33],
    ]
}

/// The calibration grid: square powers of two and not, skinny shapes, and the projections real
/// transformers run (hidden 1k–16k; tokens 1–64k) — capped by `max_bytes` of operands.
fn matmul_sweep(max_bytes: f64, elem: f64) -> Vec<[u64; 4]> {
    let mut v: Vec<[u64; 4]> = Vec::new();
    for s in [128, 256, 512, 1000, 1024, 2048, 3000, 4096, 8192] {
        v.push([1, s, s, s]);
    }
    for (m, n, k) in [
        (1, 4096, 4096),
        (16, 4096, 4096),
        (4096, 64, 4096),
        (4096, 4096, 64),
    ] {
        v.push([1, m, n, k]);
    }
    for hidden in [2048u64, 4096, 8192] {
        // SwiGLU width 8/3·hidden rounded to a multiple of 256, as Llama-style models do.
        let ffn = (8 * hidden / 3).div_ceil(256) * 256;
        for tokens in [1u64, 16, 256, 4096, 16384] {
            v.push([1, tokens, 3 * hidden, hidden]); // QKV
            v.push([1, tokens, hidden, hidden]); // attention output
            v.push([1, tokens, 2 * ffn, hidden]); // gate+up
            v.push([1, tokens, hidden, ffn]); // down
        }
    }
    v.retain(|[b, m, n, k]| ((b * (m * k + k * n + m * n)) as f64) * elem <= max_bytes);
    v.sort();
    v.dedup();
    v
}

/// Attention shapes: (batch, q heads, kv heads, q len, kv len, head dim, causal, window).
type AttnDims = (u64, u64, u64, u64, u64, u64, bool, Option<u64>);

/// What a shape file may add to `AttnDims`: the value head dim and shared keys and values.
#[derive(Clone, Copy)]
struct Values {
    v_head_dim: Option<u64>,
    shared_kv: bool,
}

const PLAIN_VALUES: Values = Values {
    v_head_dim: None,
    shared_kv: false,
};

/// Causal and not, GQA and MQA, head dims 64 and 128, odd lengths, decode (one query), a window.
fn attention_smoke() -> Vec<AttnDims> {
    vec![
        (1, 2, 2, 1, 1, 64, true, None),
        (1, 4, 2, 17, 17, 64, true, None),
        (2, 4, 4, 33, 33, 64, false, None),
        (1, 8, 1, 65, 65, 128, true, None),
        (1, 4, 2, 100, 100, 128, false, None),
        (2, 4, 2, 1, 37, 128, true, None),
        (1, 2, 1, 70, 70, 64, true, Some(16)),
        (1, 2, 1, 1, 600, 128, true, None),
    ]
}

/// The calibration grid for attention: prefill (q = kv) causal and not from 128 to 32k, and
/// decode (q = 1) over long caches, for both head dims, capped by `max_bytes` of Q, K, V and O.
fn attention_sweep(max_bytes: f64, elem: f64) -> Vec<AttnDims> {
    let mut v = Vec::new();
    for d in [64u64, 128] {
        let heads = 4096 / d / 2; // a 4k-wide model's heads, halved to keep the grid quick
        for seq in [128u64, 256, 512, 1000, 1024, 2048, 4096, 8192, 16384, 32768] {
            let batch = (16384 / seq).max(1);
            for causal in [true, false] {
                v.push((batch, heads, heads, seq, seq, d, causal, None));
            }
            v.push((batch, heads, heads / 4, seq, seq, d, true, None)); // GQA 4:1
        }
        for ctx in [1024u64, 4096, 16384, 32768] {
            v.push((8, heads, heads / 4, 1, ctx, d, true, None));
        }
    }
    v.retain(|&(b, hq, hkv, q, kv, d, _, _)| {
        ((b * d * (2 * hq * q + 2 * hkv * kv)) as f64) * elem <= max_bytes
    });
    v
}

/// The memory-bound ops the kernels cover, by the names shape files use.
const MEMORY_KINDS: [(&str, MemoryKind); 4] = [
    ("rmsnorm", MemoryKind::RmsNorm),
    ("gated-silu", MemoryKind::GatedActivation(Activation::Silu)),
    ("residual-add", MemoryKind::ResidualAdd),
    ("rotary", MemoryKind::Rotary),
];

/// Every memory kind over odd and even rows × cols, small enough for lavapipe.
fn memory_smoke() -> Vec<(MemoryKind, u64, u64)> {
    let mut v = Vec::new();
    for (_, kind) in MEMORY_KINDS {
        for (rows, cols) in [(1, 64), (7, 256), (33, 96), (128, 512)] {
            v.push((kind, rows, cols));
        }
    }
    v
}

/// Tokens × hidden widths of real models, for every memory kind, capped by `max_bytes` moved.
fn memory_sweep(max_bytes: f64, dtype: DType) -> Vec<(MemoryKind, u64, u64)> {
    let mut v = Vec::new();
    for (_, kind) in MEMORY_KINDS {
        for rows in [1u64, 16, 128, 512, 2048, 8192, 32768] {
            for cols in [256u64, 1024, 4096, 8192, 14336] {
                let op = MemoryOp::new(kind, Pass::Forward, rows, cols, dtype);
                if op.min_bytes() <= max_bytes {
                    v.push((kind, rows, cols));
                }
            }
        }
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShapeFile {
    #[serde(default)]
    matmul: Vec<MatmulShape>,
    #[serde(default)]
    attention: Vec<AttentionShape>,
    #[serde(default)]
    memory: Vec<MemoryShape>,
    #[serde(default)]
    scan: Vec<ScanShape>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanShape {
    #[serde(default = "one")]
    batch: u64,
    heads: u64,
    seq: u64,
    key_dim: u64,
    value_dim: Option<u64>,
    #[serde(default = "chunk")]
    chunk: u64,
}

/// The chunk length of the published chunked kernels.
fn chunk() -> u64 {
    64
}

/// Scan shapes: (batch, heads, seq, key dim, value dim).
type ScanDims = (u64, u64, u64, u64, u64);

/// One token, odd lengths and widths (value dims that leave a column block part-filled), both
/// head dims; small enough for lavapipe, whose loop-trip cap the recurrent kernel's seq × dk/8
/// stays well under.
fn scan_smoke() -> Vec<ScanDims> {
    vec![
        (1, 1, 1, 8, 8),
        (1, 2, 17, 16, 40),
        (2, 2, 70, 64, 64),
        (1, 3, 129, 128, 128),
        (1, 2, 200, 64, 96),
    ]
}

/// The calibration grid: Qwen3-Next-like heads (dk = dv = 128; 64 for smaller models), prefill
/// lengths from 256 to 32k with the tokens per step held near 16k, capped by `max_bytes` moved.
fn scan_sweep(max_bytes: f64, dtype: DType) -> Vec<ScanDims> {
    let mut v = Vec::new();
    for d in [64u64, 128] {
        for heads in [16u64, 32] {
            for seq in [256u64, 1024, 2048, 4096, 8192, 16384, 32768] {
                let batch = (16384 / seq).max(1);
                let s = scan_op((batch, heads, seq, d, d), 64, dtype);
                if s.min_bytes() <= max_bytes {
                    v.push((batch, heads, seq, d, d));
                }
            }
        }
    }
    v
}

fn scan_op((batch, heads, seq, key_dim, value_dim): ScanDims, chunk: u64, dtype: DType) -> Scan {
    Scan {
        batch,
        heads,
        seq,
        key_dim,
        value_dim,
        chunk,
        dtype,
        pass: Pass::Forward,
    }
}

/// Gated-delta scan shapes for a preset name or a TOML file with `[[scan]]` entries.
pub fn scan_shapes(preset: &str, dtype: DType, max_bytes: f64) -> Result<Vec<Scan>> {
    match preset {
        "smoke" => Ok(scan_smoke()
            .into_iter()
            .map(|d| scan_op(d, 64, dtype))
            .collect()),
        "sweep" => Ok(scan_sweep(max_bytes, dtype)
            .into_iter()
            .map(|d| scan_op(d, 64, dtype))
            .collect()),
        path => {
            let text = crate::error::read_to_string(std::path::Path::new(path))?;
            let file: ShapeFile = parse_toml(path, &text)?;
            let mut v = Vec::new();
            for (i, s) in file.scan.iter().enumerate() {
                let dims = (
                    s.batch,
                    s.heads,
                    s.seq,
                    s.key_dim,
                    s.value_dim.unwrap_or(s.key_dim),
                );
                let op = scan_op(dims, s.chunk, dtype);
                Op::Scan(op)
                    .check()
                    .map_err(|e| Error::field(path, &format!("scan[{i}]"), e))?;
                v.push(op);
            }
            if v.is_empty() {
                return Err(Error::field(path, "scan", "no scan shapes"));
            }
            Ok(v)
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryShape {
    kind: String,
    rows: u64,
    cols: u64,
}

/// Memory-bound op shapes for a preset name or a TOML file with `[[memory]]` entries.
pub fn memory_shapes(preset: &str, dtype: DType, max_bytes: f64) -> Result<Vec<MemoryOp>> {
    let dims = match preset {
        "smoke" => memory_smoke(),
        "sweep" => memory_sweep(max_bytes, dtype),
        path => {
            let text = crate::error::read_to_string(std::path::Path::new(path))?;
            let file: ShapeFile = parse_toml(path, &text)?;
            let mut v = Vec::new();
            for (i, s) in file.memory.iter().enumerate() {
                let field = format!("memory[{i}]");
                let kind = MEMORY_KINDS
                    .iter()
                    .find(|(name, _)| *name == s.kind)
                    .map(|(_, k)| *k)
                    .ok_or_else(|| {
                        let names: Vec<&str> = MEMORY_KINDS.iter().map(|(n, _)| *n).collect();
                        Error::field(
                            path,
                            &format!("{field}.kind"),
                            format!("unknown kind '{}' (have: {})", s.kind, names.join(", ")),
                        )
                    })?;
                if s.rows == 0
                    || s.cols == 0
                    || (kind == MemoryKind::Rotary && !s.cols.is_multiple_of(2))
                {
                    return Err(Error::field(
                        path,
                        &field,
                        "rows and cols must be positive (cols even for rotary)",
                    ));
                }
                v.push((kind, s.rows, s.cols));
            }
            if v.is_empty() {
                return Err(Error::field(path, "memory", "no memory shapes"));
            }
            v
        }
    };
    Ok(dims
        .into_iter()
        .map(|(kind, rows, cols)| MemoryOp::new(kind, Pass::Forward, rows, cols, dtype))
        .collect())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttentionShape {
    #[serde(default = "one")]
    batch: u64,
    heads: u64,
    kv_heads: Option<u64>,
    seq_q: u64,
    seq_kv: Option<u64>,
    head_dim: u64,
    /// Value head dim (default: `head_dim`).
    v_head_dim: Option<u64>,
    #[serde(default)]
    causal: bool,
    window: Option<u64>,
    /// Values are the first `v_head_dim` columns of the keys (absorbed MLA's latent).
    #[serde(default)]
    shared_kv: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatmulShape {
    m: u64,
    n: u64,
    k: u64,
    #[serde(default = "one")]
    batch: u64,
}

fn one() -> u64 {
    1
}

/// Matmul shapes for a preset name or a TOML file. `max_bytes` caps the sweep to the device.
pub fn matmul_shapes(preset: &str, dtype: DType, max_bytes: f64) -> Result<Vec<Matmul>> {
    let dims = match preset {
        "smoke" => matmul_smoke(),
        "sweep" => matmul_sweep(max_bytes, dtype.bytes()),
        path => {
            let text = crate::error::read_to_string(std::path::Path::new(path))?;
            let file: ShapeFile = parse_toml(path, &text)?;
            let mut v = Vec::new();
            for (i, s) in file.matmul.iter().enumerate() {
                if s.m == 0 || s.n == 0 || s.k == 0 || s.batch == 0 {
                    return Err(Error::field(
                        path,
                        &format!("matmul[{i}]"),
                        "m, n, k and batch must be positive",
                    ));
                }
                v.push([s.batch, s.m, s.n, s.k]);
            }
            if v.is_empty() {
                return Err(Error::field(path, "matmul", "no matmul shapes"));
            }
            v
        }
    };
    Ok(dims
        .into_iter()
        .map(|[b, m, n, k]| Matmul::kernel(b, m, n, k, dtype))
        .collect())
}

/// Attention shapes for a preset name or a TOML file with `[[attention]]` entries.
pub fn attention_shapes(preset: &str, dtype: DType, max_bytes: f64) -> Result<Vec<Attention>> {
    let plain = |v: Vec<AttnDims>| v.into_iter().map(|d| (d, PLAIN_VALUES)).collect();
    let dims: Vec<(AttnDims, Values)> = match preset {
        "smoke" => {
            let mut v: Vec<(AttnDims, Values)> = plain(attention_smoke());
            // Absorbed MLA decode: 8 heads over one shared latent K/V head of 576 (values its
            // first 512 columns), an odd context.
            let shared = Values {
                v_head_dim: Some(512),
                shared_kv: true,
            };
            v.push(((2, 8, 1, 1, 77, 576, true, None), shared));
            v
        }
        "sweep" => plain(attention_sweep(max_bytes, dtype.bytes())),
        path => {
            let text = crate::error::read_to_string(std::path::Path::new(path))?;
            let file: ShapeFile = parse_toml(path, &text)?;
            let mut v = Vec::new();
            for (i, s) in file.attention.iter().enumerate() {
                let kv_heads = s.kv_heads.unwrap_or(s.heads);
                let seq_kv = s.seq_kv.unwrap_or(s.seq_q);
                let field = format!("attention[{i}]");
                if [s.batch, s.heads, kv_heads, s.seq_q, seq_kv, s.head_dim].contains(&0) {
                    return Err(Error::field(path, &field, "sizes must be positive"));
                }
                if !s.heads.is_multiple_of(kv_heads) || s.seq_q > seq_kv {
                    return Err(Error::field(
                        path,
                        &field,
                        "kv_heads must divide heads and seq_q must not exceed seq_kv",
                    ));
                }
                match s.v_head_dim {
                    Some(0) => {
                        return Err(Error::field(
                            path,
                            &format!("{field}.v_head_dim"),
                            "must be positive",
                        ));
                    }
                    Some(dv) if s.shared_kv && dv > s.head_dim => {
                        return Err(Error::field(
                            path,
                            &format!("{field}.v_head_dim"),
                            format!(
                                "{dv} exceeds head_dim {} with shared_kv (the values are the first v_head_dim columns of the keys)",
                                s.head_dim
                            ),
                        ));
                    }
                    _ => {}
                }
                let values = Values {
                    v_head_dim: s.v_head_dim,
                    shared_kv: s.shared_kv,
                };
                v.push((
                    (
                        s.batch, s.heads, kv_heads, s.seq_q, seq_kv, s.head_dim, s.causal, s.window,
                    ),
                    values,
                ));
            }
            if v.is_empty() {
                return Err(Error::field(path, "attention", "no shapes"));
            }
            v
        }
    };
    Ok(dims
        .into_iter()
        .map(
            |((batch, q_heads, kv_heads, q_len, kv_len, d, causal, window), values)| Attention {
                batch,
                q_heads,
                kv_heads,
                q_len,
                kv_len,
                qk_head_dim: d,
                v_head_dim: values.v_head_dim.unwrap_or(d),
                causal,
                window,
                dtype,
                kv_dtype: dtype,
                fused: true,
                pass: Pass::Forward,
                shared_kv: values.shared_kv,
            },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_spans_tiny_to_large_and_respects_memory() {
        let all = matmul_shapes("sweep", DType::Fp16, 80e9).unwrap();
        assert!(all.iter().any(|m| m.m == 1) && all.iter().any(|m| m.m == 16384));
        assert!(all.iter().any(|m| m.m == 1000 && m.n == 1000));
        let small = matmul_shapes("sweep", DType::Fp32, 64e6).unwrap();
        assert!(small.len() < all.len());
        assert!(small.iter().all(|m| m.min_bytes() <= 64e6));
    }

    /// The device check's MLA shape files: absorbed decode over a shared latent of 576, values
    /// its first 512 columns; the targets are DeepSeek-V3's 128 heads at batch 1-64, 1k-32k.
    #[test]
    fn mla_shape_files_are_absorbed_decode() {
        let dir = env!("CARGO_MANIFEST_DIR");
        for file in ["mla_smoke.toml", "mla_targets.toml"] {
            let path = format!("{dir}/scripts/{file}");
            let shapes = attention_shapes(&path, DType::Bf16, f64::INFINITY).unwrap();
            assert!(!shapes.is_empty());
            for a in &shapes {
                assert!(a.shared_kv && a.q_len == 1, "{file}: {a:?}");
                assert_eq!((a.qk_head_dim, a.v_head_dim), (576, 512), "{file}");
                assert!(
                    crate::model::ops::Op::Attention(*a).check().is_ok(),
                    "{file}: {a:?}"
                );
            }
        }
        let targets = attention_shapes(
            &format!("{dir}/scripts/mla_targets.toml"),
            DType::Bf16,
            1e30,
        )
        .unwrap();
        assert!(targets.iter().all(|a| a.q_heads == 128 && a.kv_heads == 1));
        let batches: Vec<u64> = targets.iter().map(|a| a.batch).collect();
        let contexts: Vec<u64> = targets.iter().map(|a| a.kv_len).collect();
        assert_eq!(
            (batches.iter().min(), batches.iter().max()),
            (Some(&1), Some(&64))
        );
        assert_eq!(
            (contexts.iter().min(), contexts.iter().max()),
            (Some(&1024), Some(&32768))
        );
    }
}
