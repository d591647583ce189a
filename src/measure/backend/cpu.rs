//! The f64 reference: what every kernel's output is checked against. Slow and exact enough.

pub mod mla;

use crate::model::ops::{Attention, Matmul};
use rayon::prelude::*;

mod scan;
pub use scan::{HeadOutput, ScanInputs, head_offsets, scan, scan_head, scan_output_len};

/// C[z] = A[z] · B[z] in f64, row-major, from inputs given as f32 (already rounded to the dtype);
/// rows on all cores.
pub fn matmul(mm: &Matmul, a: &[f32], b: &[f32]) -> Vec<f64> {
    let (m, n, k) = (mm.m as usize, mm.n as usize, mm.k as usize);
    let mut c = vec![0.0f64; mm.batch as usize * m * n];
    c.par_chunks_mut(n.max(1)).enumerate().for_each(|(row, c)| {
        let (z, i) = (row / m, row % m);
        let (a, b) = (&a[(z * m + i) * k..][..k], &b[z * k * n..][..k * n]);
        for (p, av) in a.iter().enumerate() {
            let av = f64::from(*av);
            for (cv, bv) in c.iter_mut().zip(&b[p * n..(p + 1) * n]) {
                *cv += av * f64::from(*bv);
            }
        }
    });
    c
}

/// Attention forward in f64: softmax(scale·QKᵀ + mask)·V per (batch, query head), GQA by head
/// groups, queries at the last `q_len` positions. Layouts as the kernels: Q [b, hq, q, d],
/// K [b, hkv, kv, d], V [b, hkv, kv, dv], output [b, hq, q, dv]. With `shared_kv` the values are
/// the first dv columns of each key row and `v` is not read.
pub fn attention(a: &Attention, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f64> {
    let rows = (a.batch * a.q_heads * a.q_len) as usize;
    let out: Vec<Vec<f64>> = (0..rows)
        .into_par_iter()
        .map(|row| attention_row(a, q, k, v, row))
        .collect();
    out.concat()
}

/// One output row of `attention`: row index (b·hq + h)·q_len + i.
pub fn attention_row(a: &Attention, q: &[f32], k: &[f32], v: &[f32], row: usize) -> Vec<f64> {
    let (hq, hkv) = (a.q_heads as usize, a.kv_heads as usize);
    let (sq, skv) = (a.q_len as usize, a.kv_len as usize);
    let (d, dv) = (a.qk_head_dim as usize, a.v_head_dim as usize);
    let (bh, i) = (row / sq, row % sq);
    let (b, h) = (bh / hq, bh % hq);
    let hk = h / (hq / hkv);
    let kv_base = (b * hkv + hk) * skv;
    let pos = skv - sq + i;
    let scale = 1.0 / (d as f64).sqrt();
    let qrow = &q[row * d..][..d];
    let mut scores = vec![f64::NEG_INFINITY; skv];
    let mut max = f64::NEG_INFINITY;
    for (j, s) in scores.iter_mut().enumerate() {
        let visible = !a.causal || (j <= pos && a.window.is_none_or(|w| pos - j < w as usize));
        if visible {
            let krow = &k[(kv_base + j) * d..][..d];
            *s = qrow
                .iter()
                .zip(krow)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum::<f64>()
                * scale;
            max = max.max(*s);
        }
    }
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    let mut o = vec![0.0f64; dv];
    for (j, p) in scores.iter().enumerate() {
        if *p == 0.0 {
            continue;
        }
        let vrow = if a.shared_kv {
            &k[(kv_base + j) * d..][..dv]
        } else {
            &v[(kv_base + j) * dv..][..dv]
        };
        for (oc, vc) in o.iter_mut().zip(vrow) {
            *oc += p / sum * f64::from(*vc);
        }
    }
    o
}

/// One element of `matmul`: output index (z·m + i)·n + j.
pub fn matmul_element(mm: &Matmul, a: &[f32], b: &[f32], index: usize) -> f64 {
    let (m, n, k) = (mm.m as usize, mm.n as usize, mm.k as usize);
    let (z, rest) = (index / (m * n), index % (m * n));
    let (i, j) = (rest / n, rest % n);
    let arow = &a[(z * m + i) * k..][..k];
    let bz = &b[z * k * n..];
    arow.iter()
        .enumerate()
        .map(|(p, x)| f64::from(*x) * f64::from(bz[p * n + j]))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::dtype::DType;

    #[test]
    fn small_batched_product() {
        let mm = Matmul::new(2, 2, 2, 3, DType::Fp32);
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        let c = matmul(&mm, &a, &b);
        assert_eq!(c, vec![4.0, 5.0, 10.0, 11.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn causal_first_query_copies_the_first_value() {
        let a = Attention {
            batch: 1,
            q_heads: 2,
            kv_heads: 1,
            q_len: 2,
            kv_len: 2,
            qk_head_dim: 1,
            v_head_dim: 1,
            causal: true,
            window: None,
            dtype: DType::Fp32,
            kv_dtype: DType::Fp32,
            fused: true,
            pass: crate::model::ops::Pass::Forward,
            shared_kv: false,
        };
        let (q, k, v) = ([1.0, 1.0, 2.0, 2.0], [0.0, 1.0], [3.0, 5.0]);
        let o = attention(&a, &q, &k, &v);
        assert_eq!(o[0], 3.0);
        // Second query sees both keys: softmax([0, 1]) · [3, 5].
        let w = 1.0f64.exp() / (1.0 + 1.0f64.exp());
        assert!((o[1] - (3.0 * (1.0 - w) + 5.0 * w)).abs() < 1e-12);
        // Head 1 (same kv head) with q = 2: softmax([0, 2]).
        let w2 = 2.0f64.exp() / (1.0 + 2.0f64.exp());
        assert!((o[3] - (3.0 * (1.0 - w2) + 5.0 * w2)).abs() < 1e-12);
    }

    #[test]
    fn shared_kv_reads_the_values_from_the_keys() {
        let shared = Attention {
            batch: 2,
            q_heads: 4,
            kv_heads: 1,
            q_len: 1,
            kv_len: 5,
            qk_head_dim: 6,
            v_head_dim: 4,
            causal: true,
            window: None,
            dtype: DType::Fp32,
            kv_dtype: DType::Fp32,
            fused: true,
            pass: crate::model::ops::Pass::Forward,
            shared_kv: true,
        };
        let q = crate::measure::harness::random_tensor(2 * 4 * 6, DType::Fp32, 1);
        let k = crate::measure::harness::random_tensor(2 * 5 * 6, DType::Fp32, 2);
        let v: Vec<f32> = k.chunks(6).flat_map(|row| row[..4].to_vec()).collect();
        let separate = Attention {
            shared_kv: false,
            ..shared
        };
        let garbage = vec![f32::NAN; v.len()];
        assert_eq!(
            attention(&shared, &q, &k, &garbage),
            attention(&separate, &q, &k, &v)
        );
    }
}

/// Epsilon of the RMSNorm kernels and reference (Llama's 1e-5).
pub const RMSNORM_EPS: f64 = 1e-5;

/// RMSNorm forward over `cols`-wide rows: x / sqrt(mean(x²) + eps) · w.
pub fn rmsnorm(x: &[f32], w: &[f32], cols: usize) -> Vec<f64> {
    x.chunks(cols)
        .flat_map(|row| {
            let ms = row.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / cols as f64;
            let inv = 1.0 / (ms + RMSNORM_EPS).sqrt();
            row.iter()
                .zip(w)
                .map(move |(v, w)| f64::from(*v) * inv * f64::from(*w))
        })
        .collect()
}

/// SwiGLU over rows of [gate (cols) | up (cols)]: silu(gate) · up.
pub fn gated_silu(gate_up: &[f32], cols: usize) -> Vec<f64> {
    gate_up
        .chunks(2 * cols)
        .flat_map(|row| {
            let (g, u) = row.split_at(cols);
            g.iter().zip(u).map(|(g, u)| {
                let g = f64::from(*g);
                g / (1.0 + (-g).exp()) * f64::from(*u)
            })
        })
        .collect()
}

/// GeGLU over rows of [gate (cols) | up (cols)]: gelu(gate) · up, GELU's tanh approximation
/// (Gemma's gelu_pytorch_tanh).
pub fn gated_gelu(gate_up: &[f32], cols: usize) -> Vec<f64> {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    gate_up
        .chunks(2 * cols)
        .flat_map(|row| {
            let (g, u) = row.split_at(cols);
            g.iter().zip(u).map(move |(g, u)| {
                let g = f64::from(*g);
                0.5 * g * (1.0 + (c * (g + 0.044715 * g.powi(3))).tanh()) * f64::from(*u)
            })
        })
        .collect()
}

/// a + b elementwise.
pub fn residual_add(a: &[f32], b: &[f32]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .map(|(a, b)| f64::from(*a) + f64::from(*b))
        .collect()
}

/// Where the rotary kernel reads and writes, and how it turns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RotaryLayout {
    /// Columns rotated per row (whole heads).
    pub cols: usize,
    pub head_dim: usize,
    /// Tokens per sequence: a row's position is its index modulo this.
    pub seq_len: usize,
    /// Elements per input row and per output row.
    pub in_row: usize,
    pub out_row: usize,
    pub theta: f64,
}

/// The head dim a standalone rotary op is measured with: the largest of 128, 64, …, 2 dividing
/// its columns (the cost hardly depends on it; a block passes its own).
pub fn rotary_head_dim(cols: u64) -> Option<u64> {
    [128, 64, 32, 16, 8, 4, 2]
        .into_iter()
        .find(|d| cols.is_multiple_of(*d))
}

impl RotaryLayout {
    /// A standalone rotary op: one sequence of `rows` tokens, every column rotated, contiguous
    /// rows, theta 10000.
    pub fn standalone(m: &crate::model::ops::MemoryOp) -> Self {
        let cols = m.cols as usize;
        RotaryLayout {
            cols,
            head_dim: rotary_head_dim(m.cols).unwrap_or(2) as usize,
            seq_len: (m.rows as usize).max(1),
            in_row: cols,
            out_row: cols,
            theta: 10000.0,
        }
    }
}

/// Rotary embedding (rotate-half convention) of the first `l.cols` columns of each row; the
/// output holds only those columns, `l.out_row` apart.
pub fn rotary(x: &[f32], rows: usize, l: &RotaryLayout) -> Vec<f64> {
    let mut y = vec![0.0f64; rows * l.out_row];
    for row in 0..rows {
        let out = rotary_row(&x[row * l.in_row..], row, l);
        y[row * l.out_row..][..l.cols].copy_from_slice(&out);
    }
    y
}

/// The `l.cols` rotated columns of row `row`, whose input starts at `x[0]`.
pub fn rotary_row(x: &[f32], row: usize, l: &RotaryLayout) -> Vec<f64> {
    let mut y = vec![0.0f64; l.cols];
    let half = l.head_dim / 2;
    let pos = (row % l.seq_len) as f64;
    for head in 0..l.cols / l.head_dim {
        for i in 0..half {
            let (c0, c1) = (head * l.head_dim + i, head * l.head_dim + i + half);
            let angle = pos * l.theta.powf(-2.0 * i as f64 / l.head_dim as f64);
            let (sn, cs) = angle.sin_cos();
            let (x0, x1) = (f64::from(x[c0]), f64::from(x[c1]));
            y[c0] = x0 * cs - x1 * sn;
            y[c1] = x1 * cs + x0 * sn;
        }
    }
    y
}
