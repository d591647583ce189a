//! Shape presets: `smoke` is CI-sized; `sweep` is the calibration grid. A user's own list comes
//! from a TOML file with `[[matmul]]` entries (`m`, `n`, `k`, optional `batch`).

use crate::dtype::DType;
use crate::error::{Error, Result, parse_toml};
use crate::ops::Matmul;
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
    ]
}

/// The calibration grid: square powers of two and not, skinny shapes, and the projections real
/// transformers run (hidden 1k–16k; tokens 1–64k) — capped by `max_bytes` of operands.
fn matmul_sweep(max_bytes: f64, elem: f64) -> Vec<[u64; 4]> {
    let mut v: Vec<[u64; 4]> = Vec::new();
    for s in [
        64, 128, 256, 384, 512, 768, 1000, 1024, 1536, 2048, 3000, 4096, 6144, 8192, 16384,
    ] {
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
    for hidden in [1024u64, 2048, 4096, 8192, 16384] {
        for tokens in [1u64, 16, 128, 1024, 4096, 16384, 65536] {
            v.push([1, tokens, 3 * hidden, hidden]); // QKV
            v.push([1, tokens, hidden, hidden]); // attention output
            v.push([1, tokens, 8 * hidden / 3 / 64 * 64 * 2, hidden]); // gate+up
            v.push([1, tokens, hidden, 8 * hidden / 3 / 64 * 64]); // down
        }
    }
    v.retain(|[b, m, n, k]| ((b * (m * k + k * n + m * n)) as f64) * elem <= max_bytes);
    v.sort();
    v.dedup();
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShapeFile {
    #[serde(default)]
    matmul: Vec<MatmulShape>,
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
                return Err(Error::field(path, "matmul", "no shapes"));
            }
            v
        }
    };
    Ok(dims
        .into_iter()
        .map(|[b, m, n, k]| Matmul::new(b, m, n, k, dtype))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_spans_tiny_to_large_and_respects_memory() {
        let all = matmul_shapes("sweep", DType::Fp16, 80e9).unwrap();
        assert!(all.iter().any(|m| m.m == 1) && all.iter().any(|m| m.m == 65536));
        assert!(all.iter().any(|m| m.m == 1000 && m.n == 1000));
        let small = matmul_shapes("sweep", DType::Fp32, 64e6).unwrap();
        assert!(small.len() < all.len());
        assert!(small.iter().all(|m| m.min_bytes() <= 64e6));
    }
}
