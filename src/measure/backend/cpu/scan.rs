//! The gated delta rule in f64, token by token: the definition the chunked kernels are checked
//! against (convention in `model::ops::Scan`). Layouts as the kernels: q, k [b, h, seq, dk];
//! v [b, h, seq, dv]; α, β [b, h, seq]; the output is o [b, h, seq, dv] followed by the final
//! state [b, h, dk, dv].

use crate::model::ops::Scan;
use rayon::prelude::*;

/// Tensors of one scan problem, in the layouts above.
#[derive(Debug, Clone, Copy)]
pub struct ScanInputs<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub gate: &'a [f32],
    pub beta: &'a [f32],
}

impl<'a> ScanInputs<'a> {
    /// From the harness's input list (q, k, v, α, β).
    pub fn from_list(t: &'a [Vec<f32>]) -> Self {
        ScanInputs {
            q: &t[0],
            k: &t[1],
            v: &t[2],
            gate: &t[3],
            beta: &t[4],
        }
    }
}

/// One head's outputs: o (seq × dv) and the final state (dk × dv), both row-major.
pub struct HeadOutput {
    pub o: Vec<f64>,
    pub state: Vec<f64>,
}

/// The recurrence for head `bh` (sequence × heads + head).
pub fn scan_head(s: &Scan, x: &ScanInputs, bh: usize) -> HeadOutput {
    let (seq, dk, dv) = (s.seq as usize, s.key_dim as usize, s.value_dim as usize);
    let mut state = vec![0.0f64; dk * dv];
    let mut o = vec![0.0f64; seq * dv];
    let mut ks = vec![0.0f64; dv];
    for t in 0..seq {
        let tok = bh * seq + t;
        let (q, k) = (&x.q[tok * dk..][..dk], &x.k[tok * dk..][..dk]);
        let v = &x.v[tok * dv..][..dv];
        let (a, b) = (f64::from(x.gate[tok]), f64::from(x.beta[tok]));
        // S ← α (I − β k kᵀ) S + β k vᵀ, with kᵀS formed first.
        ks.iter_mut().for_each(|e| *e = 0.0);
        for (i, ki) in k.iter().enumerate() {
            let ki = f64::from(*ki);
            for (e, sij) in ks.iter_mut().zip(&state[i * dv..(i + 1) * dv]) {
                *e += ki * sij;
            }
        }
        for (i, ki) in k.iter().enumerate() {
            let ki = f64::from(*ki);
            for ((sij, ksj), vj) in state[i * dv..(i + 1) * dv].iter_mut().zip(&ks).zip(v) {
                *sij = a * (*sij - b * ki * ksj) + b * ki * f64::from(*vj);
            }
        }
        let out = &mut o[t * dv..(t + 1) * dv];
        for (i, qi) in q.iter().enumerate() {
            let qi = f64::from(*qi);
            for (oj, sij) in out.iter_mut().zip(&state[i * dv..(i + 1) * dv]) {
                *oj += qi * sij;
            }
        }
    }
    HeadOutput { o, state }
}

/// The whole output (every head's o, then every head's final state), heads on all cores.
pub fn scan(s: &Scan, x: &ScanInputs) -> Vec<f64> {
    let heads = (s.batch * s.heads) as usize;
    let outs: Vec<HeadOutput> = (0..heads)
        .into_par_iter()
        .map(|bh| scan_head(s, x, bh))
        .collect();
    let mut all = Vec::with_capacity(scan_output_len(s));
    for h in &outs {
        all.extend_from_slice(&h.o);
    }
    for h in &outs {
        all.extend_from_slice(&h.state);
    }
    all
}

/// Elements of the output: o, then the final states.
pub fn scan_output_len(s: &Scan) -> usize {
    let bh = (s.batch * s.heads) as usize;
    bh * s.seq as usize * s.value_dim as usize + bh * (s.key_dim * s.value_dim) as usize
}

/// Where head `bh`'s o and final state start in the output.
pub fn head_offsets(s: &Scan, bh: usize) -> (usize, usize) {
    let (seq, dk, dv) = (s.seq as usize, s.key_dim as usize, s.value_dim as usize);
    let bh_all = (s.batch * s.heads) as usize;
    (bh * seq * dv, bh_all * seq * dv + bh * dk * dv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::dtype::DType;
    use crate::model::ops::Pass;

    fn op(seq: u64, dk: u64, dv: u64, chunk: u64) -> Scan {
        Scan {
            batch: 1,
            heads: 2,
            seq,
            key_dim: dk,
            value_dim: dv,
            chunk,
            dtype: DType::Fp32,
            pass: Pass::Forward,
        }
    }

    /// The chunked algorithm the CUDA kernel and the PyTorch reference run (WY representation,
    /// UT transform by forward substitution), in f64, for one head: it must agree with the
    /// recurrence, which checks the derivation the kernels follow.
    fn chunked_head(s: &Scan, x: &ScanInputs, bh: usize) -> HeadOutput {
        let (seq, dk, dv, c) = (
            s.seq as usize,
            s.key_dim as usize,
            s.value_dim as usize,
            s.chunk as usize,
        );
        let at = |t: &[f32], tok: usize, w: usize, i: usize| f64::from(t[tok * w + i]);
        let mut state = vec![0.0f64; dk * dv];
        let mut o = vec![0.0f64; seq * dv];
        for start in (0..seq).step_by(c) {
            let n = c.min(seq - start);
            let tok = |r: usize| bh * seq + start + r;
            // log γ_r: the gate's product from the chunk's start through token r.
            let mut g = vec![0.0f64; n];
            let mut acc = 0.0;
            for (r, gr) in g.iter_mut().enumerate() {
                acc += f64::from(x.gate[tok(r)]).ln();
                *gr = acc;
            }
            let beta = |r: usize| f64::from(x.beta[tok(r)]);
            let dot = |a: &[f32], r: usize, b: &[f32], j: usize| -> f64 {
                (0..dk)
                    .map(|i| at(a, tok(r), dk, i) * at(b, tok(j), dk, i))
                    .sum()
            };
            // T = (I + A)⁻¹, A_rj = β_r e^{g_r − g_j} k_r·k_j for j < r; row by row.
            let mut t = vec![0.0f64; n * n];
            for r in 0..n {
                t[r * n + r] = 1.0;
                for m in 0..r {
                    let mut sum = 0.0;
                    for j in m..r {
                        let a = beta(r) * (g[r] - g[j]).exp() * dot(x.k, r, x.k, j);
                        sum += a * t[j * n + m];
                    }
                    t[r * n + m] = -sum;
                }
            }
            // R = diag(β)(V − diag(γ) K S₀); U = T R.
            let mut rhs = vec![0.0f64; n * dv];
            for r in 0..n {
                for col in 0..dv {
                    let ks: f64 = (0..dk)
                        .map(|i| at(x.k, tok(r), dk, i) * state[i * dv + col])
                        .sum();
                    rhs[r * dv + col] = beta(r) * (at(x.v, tok(r), dv, col) - g[r].exp() * ks);
                }
            }
            let mut u = vec![0.0f64; n * dv];
            for r in 0..n {
                for m in 0..=r {
                    for col in 0..dv {
                        u[r * dv + col] += t[r * n + m] * rhs[m * dv + col];
                    }
                }
            }
            // O = diag(γ) Q S₀ + (decay ⊙ QKᵀ, causal) U.
            for r in 0..n {
                for col in 0..dv {
                    let qs: f64 = (0..dk)
                        .map(|i| at(x.q, tok(r), dk, i) * state[i * dv + col])
                        .sum();
                    let intra: f64 = (0..=r)
                        .map(|j| (g[r] - g[j]).exp() * dot(x.q, r, x.k, j) * u[j * dv + col])
                        .sum();
                    o[(start + r) * dv + col] = g[r].exp() * qs + intra;
                }
            }
            // S = γ_n S₀ + Σ_j (γ_n / γ_j) k_j u_jᵀ.
            let last = g[n - 1];
            for i in 0..dk {
                for col in 0..dv {
                    let add: f64 = (0..n)
                        .map(|j| (last - g[j]).exp() * at(x.k, tok(j), dk, i) * u[j * dv + col])
                        .sum();
                    state[i * dv + col] = last.exp() * state[i * dv + col] + add;
                }
            }
        }
        HeadOutput { o, state }
    }

    #[test]
    fn the_chunked_form_matches_the_recurrence() {
        for (seq, chunk) in [(1, 4), (7, 4), (16, 4), (21, 8), (40, 64)] {
            let s = op(seq, 8, 6, chunk);
            let inputs =
                crate::measure::harness::inputs(&crate::model::ops::Op::Scan(s), 11).unwrap();
            let x = ScanInputs::from_list(&inputs);
            for bh in 0..2 {
                let (a, b) = (scan_head(&s, &x, bh), chunked_head(&s, &x, bh));
                for (p, r) in a.o.iter().chain(&a.state).zip(b.o.iter().chain(&b.state)) {
                    assert!((p - r).abs() < 1e-10, "seq {seq} chunk {chunk}: {p} vs {r}");
                }
            }
        }
    }

    /// One token from a zero state: S = β k vᵀ, o = β (q·k) v.
    #[test]
    fn first_token_writes_beta_k_v() {
        let s = Scan {
            heads: 1,
            ..op(1, 2, 2, 64)
        };
        let (q, k, v) = ([1.0f32, 2.0], [0.6f32, 0.8], [3.0f32, -1.0]);
        let x = ScanInputs {
            q: &q,
            k: &k,
            v: &v,
            gate: &[0.5],
            beta: &[0.25],
        };
        let out = scan(&s, &x);
        let qk = 0.6 + 1.6;
        let expect = [
            0.25 * qk * 3.0,
            -0.25 * qk,
            0.25 * 0.6 * 3.0,
            -0.25 * 0.6,
            0.25 * 0.8 * 3.0,
            -0.25 * 0.8,
        ];
        for (o, e) in out.iter().zip(expect) {
            assert!((o - e).abs() < 1e-6, "{out:?}");
        }
    }

    /// With β = 1 and a unit key the delta rule overwrites what the key held: reading the
    /// state with that key returns the value just written (gate 1).
    #[test]
    fn beta_one_overwrites_the_key_slot() {
        let s = Scan {
            heads: 1,
            ..op(2, 2, 1, 64)
        };
        let (q, k) = ([0.0f32, 0.0, 0.6, 0.8], [0.6f32, 0.8, 0.6, 0.8]);
        let x = ScanInputs {
            q: &q,
            k: &k,
            v: &[5.0, -2.0],
            gate: &[1.0, 1.0],
            beta: &[1.0, 1.0],
        };
        let out = scan(&s, &x);
        assert!((out[1] - -2.0).abs() < 1e-6, "{out:?}");
    }
}
