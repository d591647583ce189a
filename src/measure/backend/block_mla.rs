//! The multi-head latent attention layer of DeepSeek-V2 and V3 (DeepSeek-V2, arXiv:2405.04434,
//! §2.1; DeepSeek-V3, arXiv:2412.19437, §2.1.1) as a block runs it in a prefill: the query through
//! its latent, the key/value latent with the one rotary key the heads share, each head's key and
//! value decompressed by kv-up, and attention over keys wider than the values. This module holds
//! what is particular to it: its ops, their operands, the attention's views, its weights and its
//! f64 reference. `block` holds the shape and the dense layer.
//!
//! How the layer moves its tensors, as vLLM's MLA prefill does: rotary turns the rotary part of
//! each query head in place in the q-up output (so the query needs no copy) and writes the
//! shared rotary key to its own buffer; `k-assemble` writes each head's key, its kv-up part then
//! the shared rotary key; attention reads the values where kv-up wrote them. The rotary pairs are
//! DeepSeek's: consecutive elements (2i, 2i + 1), as its reference code turns the vector as
//! complex numbers.

use super::block::{BlockInputs, BlockShape, Operand};
use super::cpu;
use super::{AttentionLayout, Strided};
use crate::measure::harness::{random_tensor, round_to};
use crate::model::arch::Mla;
use crate::model::ops::{Activation, Matmul};

/// The ops of an MLA block, in the order the workload lists them: with a query latent
/// (`q_latent`, DeepSeek-V3) or one query projection (DeepSeek-V2-Lite).
pub fn block_ops(q_latent: bool, activation: Activation) -> Vec<&'static str> {
    let mut ops = vec!["attn-norm"];
    if q_latent {
        ops.extend(["q-down", "q-latent-norm", "q-up"]);
    } else {
        ops.push("q");
    }
    ops.extend([
        "kv-down",
        "kv-latent-norm",
        "rotary",
        "kv-up",
        "k-assemble",
        "attention",
        "attn-out",
        "residual",
        "mlp-norm",
        "gate+up",
    ]);
    ops.push(match activation {
        Activation::Gelu => "gated-gelu",
        _ => "gated-silu",
    });
    ops.extend(["down", "residual"]);
    ops
}

/// The latent attention's weights (row-major, matmul weights [in, out]).
#[derive(Debug, Clone, PartialEq)]
pub struct MlaWeights {
    /// [hidden, q_lora_rank]; empty without a query latent.
    pub q_down: Vec<f32>,
    /// [q_lora_rank]; empty without a query latent.
    pub q_norm: Vec<f32>,
    /// [q_lora_rank (or hidden without a query latent), heads · (nope + rope)]: each head's
    /// query, its rope-less part then its rotary part.
    pub q_up: Vec<f32>,
    /// [hidden, kv_lora_rank + rope]: the latent, then the shared rotary key.
    pub kv_down: Vec<f32>,
    /// [kv_lora_rank]
    pub kv_norm: Vec<f32>,
    /// [kv_lora_rank, heads · (nope + v)]: each head's rope-less key, then its value.
    pub kv_up: Vec<f32>,
}

impl MlaWeights {
    /// The tensors in the order `BlockInputs::tensors` appends them after the dense ones.
    pub fn tensors(&self) -> [&[f32]; 6] {
        [
            &self.q_down,
            &self.q_norm,
            &self.q_up,
            &self.kv_down,
            &self.kv_norm,
            &self.kv_up,
        ]
    }
}

/// Where `BlockInputs::tensors` puts the latent attention's weights: after the ten tensors of
/// the dense layer (a unit test holds the two together).
pub const FIRST_INPUT: usize = 10;
const Q_DOWN: usize = FIRST_INPUT;
const Q_NORM: usize = FIRST_INPUT + 1;
const Q_UP: usize = FIRST_INPUT + 2;
const KV_DOWN: usize = FIRST_INPUT + 3;
const KV_NORM: usize = FIRST_INPUT + 4;
const KV_UP: usize = FIRST_INPUT + 5;

/// Seeded weights in [−1, 1), scaled by 1/√fan-in for the projections as `compose::inputs`
/// does for the dense ones, rounded to the dtype.
pub fn weights(b: &BlockShape, m: &Mla, seed: u64) -> MlaWeights {
    let d = b.dtype;
    let weight = |rows: u64, cols: u64, salt: u64| -> Vec<f32> {
        let scale = 1.0 / (rows as f32).sqrt();
        random_tensor((rows * cols) as usize, d, seed ^ salt)
            .into_iter()
            .map(|v| round_to(d, v * scale))
            .collect()
    };
    let (h, heads) = (b.hidden, b.heads);
    let q_in = if m.q_lora_rank > 0 { m.q_lora_rank } else { h };
    MlaWeights {
        q_down: weight(h, m.q_lora_rank, 0xa1),
        q_norm: random_tensor(m.q_lora_rank as usize, d, seed ^ 0xa2),
        q_up: weight(q_in, heads * m.qk_head_dim(), 0xa3),
        kv_down: weight(h, m.cache_width(), 0xa4),
        kv_norm: random_tensor(m.kv_lora_rank as usize, d, seed ^ 0xa5),
        kv_up: weight(
            m.kv_lora_rank,
            heads * (m.qk_nope_head_dim + m.v_head_dim),
            0xa6,
        ),
    }
}

/// The latent attention's dimensions of an MLA block.
fn mla(b: &BlockShape) -> Mla {
    b.mla
        .unwrap_or_else(|| unreachable!("block_mla is reached only for MLA blocks"))
}

/// The index of the op named `name` (the first, for "residual").
fn index(b: &BlockShape, name: &str) -> usize {
    b.ops
        .iter()
        .position(|(n, _)| n == name)
        .unwrap_or_else(|| unreachable!("block_shape checked the op list: no {name}"))
}

/// The op whose output is the query: q-up, or q without a query latent.
fn query_op(b: &BlockShape) -> usize {
    b.ops
        .iter()
        .position(|(n, _)| n == "q-up" || n == "q")
        .unwrap_or_else(|| unreachable!("block_shape checked the op list: no query"))
}

/// Columns of a query row (and of an assembled key row): heads · (nope + rope).
pub fn q_row(b: &BlockShape) -> u64 {
    b.heads * mla(b).qk_head_dim()
}

/// Columns of a kv-up row: heads · (nope + v).
pub fn kv_up_row(b: &BlockShape) -> u64 {
    let m = mla(b);
    b.heads * (m.qk_nope_head_dim + m.v_head_dim)
}

/// Elements of the rotary op's own output: the rotated shared key, [tokens, rope] (the query
/// heads turn in place).
pub fn rotary_output_elems(b: &BlockShape) -> u64 {
    b.tokens() * mla(b).qk_rope_head_dim
}

/// The operands of each op, in the order its kernel reads them (see `BlockShape::operands`).
pub fn operands(b: &BlockShape) -> Vec<Vec<Operand>> {
    use Operand::{Input, Op};
    let (norm, query) = (index(b, "attn-norm"), query_op(b));
    let (kv_down, kv_norm, kv_up) = (
        index(b, "kv-down"),
        index(b, "kv-latent-norm"),
        index(b, "kv-up"),
    );
    let (rotary, key, first_residual) = (
        index(b, "rotary"),
        index(b, "k-assemble"),
        index(b, "residual"),
    );
    b.ops
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let prev = Op(i.saturating_sub(1));
            match name.as_str() {
                "attn-norm" => vec![Input(0), Input(1)],
                "q-down" => vec![prev, Input(Q_DOWN)],
                "q-latent-norm" => vec![prev, Input(Q_NORM)],
                "q-up" | "q" => vec![prev, Input(Q_UP)],
                "kv-down" => vec![Op(norm), Input(KV_DOWN)],
                "kv-latent-norm" => vec![Op(kv_down), Input(KV_NORM)],
                // Turns the query's rotary parts in place; reads the shared key from kv-down.
                "rotary" => vec![Op(query), Op(kv_down)],
                "kv-up" => vec![Op(kv_norm), Input(KV_UP)],
                "k-assemble" => vec![Op(kv_up), Op(rotary)],
                "attention" => vec![Op(query), Op(key), Op(kv_up)],
                "attn-out" => vec![prev, Input(3)],
                "residual" if i == first_residual => vec![Input(0), prev],
                "residual" => vec![Op(first_residual), prev],
                "mlp-norm" => vec![prev, Input(4)],
                "gate+up" => vec![prev, Input(5)],
                "down" => vec![prev, Input(6)],
                // gated-silu, gated-gelu
                _ => vec![prev],
            }
        })
        .collect()
}

/// Attention reads each head's query from the q-up output (its rotary part turned in place),
/// its key from the assembled keys, its value from the kv-up output, all token-major, and
/// writes O token-major for the output projection.
pub fn attention_layout(b: &BlockShape) -> AttentionLayout {
    let m = mla(b);
    let view = |row: u64, head: u64, offset: u64| Strided {
        batch: b.seq * row,
        head,
        row,
        offset,
    };
    let qk = m.qk_head_dim();
    let kv = m.qk_nope_head_dim + m.v_head_dim;
    AttentionLayout {
        q: view(q_row(b), qk, 0),
        k: view(q_row(b), qk, 0),
        v: view(kv_up_row(b), kv, m.qk_nope_head_dim),
        o: view(b.heads * m.v_head_dim, m.v_head_dim, 0),
    }
}

/// Turns the pairs (2i, 2i + 1) of `x` (rope wide, the token at position `pos`) by
/// pos · theta^(−2i/rope), in f64.
fn rotate_pairs(x: &[f32], pos: usize, theta: f64) -> Vec<f64> {
    let rope = x.len();
    let mut y = vec![0.0f64; rope];
    for i in 0..rope / 2 {
        let angle = pos as f64 * theta.powf(-2.0 * i as f64 / rope as f64);
        let (sn, cs) = angle.sin_cos();
        let (x0, x1) = (f64::from(x[2 * i]), f64::from(x[2 * i + 1]));
        y[2 * i] = x0 * cs - x1 * sn;
        y[2 * i + 1] = x1 * cs + x0 * sn;
    }
    y
}

/// Copies `heads` heads of `d` columns, `head` columns apart from column `offset` of token-major
/// rows `row` apart, into a head-major [batch, heads, seq, d] tensor.
fn gather_heads(x: &[f32], b: &BlockShape, row: u64, offset: u64, head: u64, d: u64) -> Vec<f32> {
    let (seq, d) = (b.seq, d as usize);
    let mut out = Vec::with_capacity((b.tokens() * b.heads) as usize * d);
    for z in 0..b.batch {
        for h in 0..b.heads {
            for i in 0..seq {
                let start = ((z * seq + i) * row + offset + h * head) as usize;
                out.extend_from_slice(&x[start..start + d]);
            }
        }
    }
    out
}

/// The block's output in f64 for activations `x`, each op computed exactly from the earlier ops'
/// outputs rounded to the dtype (`round`), as the device stores them between kernels (see
/// `block::reference`).
pub fn reference(
    b: &BlockShape,
    x: &[f32],
    w: &BlockInputs,
    round: &dyn Fn(f64) -> f32,
) -> Vec<f64> {
    let m = mla(b);
    let lw = w
        .mla
        .as_ref()
        .unwrap_or_else(|| unreachable!("compose::inputs gives an MLA block its weights"));
    let (t, h, ff, heads) = (b.tokens() as usize, b.hidden, b.intermediate, b.heads);
    let (nope, rope, dv) = (
        m.qk_nope_head_dim as usize,
        m.qk_rope_head_dim as usize,
        m.v_head_dim as usize,
    );
    let qk = nope + rope;
    let mm = |x: &[f32], w: &[f32], n: u64, k: u64| {
        cpu::matmul(&Matmul::new(1, t as u64, n, k, b.dtype), x, w)
    };
    let rounded = |v: &[f64]| -> Vec<f32> { v.iter().map(|v| round(*v)).collect() };
    let (query, first_residual) = (query_op(b), index(b, "residual"));
    let (kv_down, kv_up, rotary) = (index(b, "kv-down"), index(b, "kv-up"), index(b, "rotary"));
    let (key, kv_norm) = (index(b, "k-assemble"), index(b, "kv-latent-norm"));
    let mut outs: Vec<Vec<f32>> = Vec::with_capacity(b.ops.len());
    // The query as attention reads it: the q-up output with its rotary parts turned in place.
    let mut q = Vec::new();
    let mut last = Vec::new();
    for (i, (name, _)) in b.ops.iter().enumerate() {
        let prev: &[f32] = if i == 0 { x } else { &outs[i - 1] };
        let exact = match name.as_str() {
            "attn-norm" => cpu::rmsnorm(x, &w.attn_norm, h as usize),
            "q-down" => mm(prev, &lw.q_down, m.q_lora_rank, h),
            "q-latent-norm" => cpu::rmsnorm(prev, &lw.q_norm, m.q_lora_rank as usize),
            "q-up" => mm(prev, &lw.q_up, q_row(b), m.q_lora_rank),
            "q" => mm(prev, &lw.q_up, q_row(b), h),
            "kv-down" => mm(&outs[0], &lw.kv_down, m.cache_width(), h),
            "kv-latent-norm" => {
                let latents: Vec<f32> = outs[kv_down]
                    .chunks(m.cache_width() as usize)
                    .flat_map(|row| &row[..m.kv_lora_rank as usize])
                    .copied()
                    .collect();
                cpu::rmsnorm(&latents, &lw.kv_norm, m.kv_lora_rank as usize)
            }
            "rotary" => {
                q = outs[query].clone();
                let mut key = Vec::with_capacity(t * rope);
                for token in 0..t {
                    let pos = token % b.seq as usize;
                    for head in 0..heads as usize {
                        let at = token * heads as usize * qk + head * qk + nope;
                        let turned = rotate_pairs(&q[at..at + rope], pos, b.theta);
                        for (c, v) in turned.into_iter().enumerate() {
                            q[at + c] = round(v);
                        }
                    }
                    let at = token * m.cache_width() as usize + m.kv_lora_rank as usize;
                    key.extend(rotate_pairs(&outs[kv_down][at..at + rope], pos, b.theta));
                }
                key
            }
            "kv-up" => mm(&outs[kv_norm], &lw.kv_up, kv_up_row(b), m.kv_lora_rank),
            "k-assemble" => {
                let (kv, key) = (&outs[kv_up], &outs[rotary]);
                let row = kv_up_row(b) as usize;
                let mut k = Vec::with_capacity(t * heads as usize * qk);
                for token in 0..t {
                    for head in 0..heads as usize {
                        let at = token * row + head * (nope + dv);
                        k.extend(kv[at..at + nope].iter().map(|v| f64::from(*v)));
                        k.extend(key[token * rope..][..rope].iter().map(|v| f64::from(*v)));
                    }
                }
                k
            }
            "attention" => attention(b, &q, &outs[key], &outs[kv_up]),
            "attn-out" => mm(prev, &w.attn_out, h, heads * m.v_head_dim),
            "residual" if i == first_residual => cpu::residual_add(x, prev),
            "residual" => cpu::residual_add(&outs[first_residual], prev),
            "mlp-norm" => cpu::rmsnorm(prev, &w.mlp_norm, h as usize),
            "gate+up" => mm(prev, &w.gate_up, 2 * ff, h),
            "gated-silu" => cpu::gated_silu(prev, ff as usize),
            "gated-gelu" => cpu::gated_gelu(prev, ff as usize),
            "down" => mm(prev, &w.down, h, ff),
            other => unreachable!("block_shape checked the op list: {other}"),
        };
        outs.push(rounded(&exact));
        last = exact;
    }
    last
}

/// Attention in f64 over the turned query `q`, the assembled keys `k` and the values in the
/// kv-up output, token-major [tokens, heads · v] out.
fn attention(b: &BlockShape, q: &[f32], k: &[f32], kv_up: &[f32]) -> Vec<f64> {
    let m = mla(b);
    let l = attention_layout(b);
    let (qk, dv) = (m.qk_head_dim(), m.v_head_dim);
    let q = gather_heads(q, b, l.q.row, l.q.offset, l.q.head, qk);
    let k = gather_heads(k, b, l.k.row, l.k.offset, l.k.head, qk);
    let v = gather_heads(kv_up, b, l.v.row, l.v.offset, l.v.head, dv);
    let op = b.attention();
    let o_head_major = cpu::attention(&op, &q, &k, &v);
    let (dv, seq, heads) = (dv as usize, b.seq as usize, b.heads as usize);
    let mut o = vec![0.0f64; b.tokens() as usize * heads * dv];
    for (idx, value) in o_head_major.into_iter().enumerate() {
        let (c, rest) = (idx % dv, idx / dv);
        let (i, rest) = (rest % seq, rest / seq);
        let (head, z) = (rest % heads, rest / heads);
        o[((z * seq + i) * heads + head) * dv + c] = value;
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::dtype::DType;

    fn layer() -> BlockShape {
        let arch = crate::model::arch::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/compose/deepseek-v3-layer.toml"
        ))
        .unwrap();
        crate::measure::compose::block_shape(&arch, 2, 9, DType::Fp32).unwrap()
    }

    /// The weights sit where the operands say: `BlockInputs::tensors` appends them after the
    /// dense layer's, at `FIRST_INPUT`.
    #[test]
    fn the_weights_are_the_inputs_the_operands_name() {
        let b = layer();
        let inputs = crate::measure::compose::inputs(&b, 3);
        let tensors = inputs.tensors();
        let lw = inputs.mla.as_ref().unwrap();
        for (i, t) in lw.tensors().into_iter().enumerate() {
            assert!(std::ptr::eq(tensors[FIRST_INPUT + i], t), "weight {i}");
        }
        let ops = operands(&b);
        let q_up = index(&b, "q-up");
        assert_eq!(ops[q_up], vec![Operand::Op(q_up - 1), Operand::Input(Q_UP)]);
        assert_eq!(lw.q_up.len() as u64, 96 * q_row(&b));
    }

    /// The rotary pairs turn as DeepSeek's reference does: position 0 leaves them, and the
    /// first pair turns by the position in radians.
    #[test]
    fn rotary_turns_consecutive_pairs() {
        assert_eq!(
            rotate_pairs(&[1.0, 2.0, 3.0, 4.0], 0, 10000.0),
            [1.0, 2.0, 3.0, 4.0]
        );
        let y = rotate_pairs(&[1.0, 0.0, 0.0, 1.0], 1, 10000.0);
        assert!((y[0] - 1f64.cos()).abs() < 1e-15 && (y[1] - 1f64.sin()).abs() < 1e-15);
        let slow = 10000f64.powf(-0.5);
        assert!((y[2] + slow.sin()).abs() < 1e-15 && (y[3] - slow.cos()).abs() < 1e-15);
    }
}
