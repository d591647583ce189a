//! One layer of a recurrent family — a Gated DeltaNet linear-attention layer with its MLP
//! (Qwen3-Next), or a Mamba-2 mixer alone (Nemotron-H) — run forward on a device with the real
//! kernels in sequence, and its f64 reference. The plan's ops (`layer_forward_ops`) price the
//! device's steps: most one each, the Mamba-2 scan by the four SSD matmuls the plan counts for
//! it, and the Gated DeltaNet's key normalization and gates by none (the plan has no op for
//! them; the check says so in its notes).

use super::cpu;
use crate::model::arch::{LinearAttention, Mamba2};
use crate::model::dtype::DType;
use crate::model::ops::{Matmul, Op, Pass, Scan};

/// The token mixer of the layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mixer {
    /// Gated DeltaNet (Yang, Kautz and Hatamizadeh 2024), as Qwen3-Next lays it out, then a
    /// gated MLP.
    GatedDeltaNet(LinearAttention),
    /// A Mamba-2 mixer (Dao and Gu 2024), as Nemotron-H lays it out, alone.
    Mamba2(Mamba2),
}

/// One dispatch of the layer: its name and the plan ops (indices into `RecurrentShape::ops`)
/// whose predictions price it; none for work the plan does not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub name: &'static str,
    pub priced_by: Vec<usize>,
}

/// The step the Gated DeltaNet runs between the convolution and the scan, which no plan op
/// prices: q and k L2-normalized per head (q also scaled by 1/√dk), q, k and v gathered
/// head-major for the scan, each value head's decay and write strength.
pub const GDN_PREP: &str = "qk-l2norm+gates";
/// The Mamba-2 scan step, priced by the plan's four SSD matmuls.
pub const SSD_SCAN: &str = "ssd-scan";

/// Epsilon of the q/k L2 normalization (the reference implementations' 1e-6, under the root).
pub const L2NORM_EPS: f64 = 1e-6;

/// The shape of one recurrent layer's run: `batch` sequences of `seq` tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct RecurrentShape {
    pub batch: u64,
    pub seq: u64,
    pub dtype: DType,
    pub hidden: u64,
    /// Width of the MLP after a Gated DeltaNet mixer.
    pub intermediate: u64,
    pub mixer: Mixer,
    /// The layer's ops as the workload lists them.
    pub ops: Vec<(String, Op)>,
}

/// The device's steps in order, each with the plan names that price it.
fn step_plan(mixer: &Mixer, decode: bool) -> Vec<(&'static str, Vec<&'static str>)> {
    let one = |n: &'static str| (n, vec![n]);
    match mixer {
        Mixer::GatedDeltaNet(_) => vec![
            one("attn-norm"),
            one("in-proj"),
            one("short-conv"),
            (GDN_PREP, vec![]),
            one("scan"),
            one("gated-norm"),
            one("output-gate"),
            one("out-proj"),
            one("residual"),
            one("mlp-norm"),
            one("gate+up"),
            one("gated-silu"),
            one("down"),
            one("residual"),
        ],
        // Mamba-2 gates before its norm (the norm's input is y·silu(z)).
        Mixer::Mamba2(_) => vec![
            one("norm"),
            one("in-proj"),
            one("conv"),
            (
                SSD_SCAN,
                if decode {
                    vec!["scan"]
                } else {
                    vec!["ssd-scores", "ssd-intra", "ssd-state", "ssd-inter"]
                },
            ),
            one("output-gate"),
            one("gated-norm"),
            one("out-proj"),
            one("residual"),
        ],
    }
}

impl RecurrentShape {
    /// The device's steps, each tied to the plan ops that price it; an error naming both lists
    /// when the plan's ops are not exactly the ones the steps account for.
    pub fn steps(&self) -> Result<Vec<Step>, String> {
        let names: Vec<&str> = self.ops.iter().map(|(n, _)| n.as_str()).collect();
        let mut used = vec![false; names.len()];
        let mut steps = Vec::new();
        let plan = step_plan(&self.mixer, self.seq == 1);
        let mismatch = || {
            let expected: Vec<&str> = plan.iter().flat_map(|(_, p)| p.clone()).collect();
            format!(
                "its layer runs {} — the block runner runs {}",
                names.join(", "),
                expected.join(", ")
            )
        };
        for (name, priced) in &plan {
            let mut priced_by = Vec::new();
            for p in priced {
                let i = (0..names.len())
                    .find(|&i| !used[i] && names[i] == *p)
                    .ok_or_else(mismatch)?;
                used[i] = true;
                priced_by.push(i);
            }
            steps.push(Step { name, priced_by });
        }
        if used.iter().any(|u| !u) {
            return Err(mismatch());
        }
        Ok(steps)
    }

    pub fn tokens(&self) -> u64 {
        self.batch * self.seq
    }

    /// FLOPs of the plan's ops for the layer.
    pub fn flops(&self) -> f64 {
        self.ops.iter().map(|(_, op)| op.flops()).sum()
    }

    /// The same layer over one sequence of the first `tokens` tokens: by causality its output is
    /// the first `tokens` rows of every sequence's output here (the reference needs only the
    /// dimensions; the plan's ops stay the full run's).
    pub fn prefix(&self, tokens: u64) -> Self {
        RecurrentShape {
            batch: 1,
            seq: tokens.min(self.seq),
            ..self.clone()
        }
    }

    /// Width of the input projection.
    pub fn in_width(&self) -> u64 {
        match self.mixer {
            Mixer::GatedDeltaNet(l) => l.in_width(),
            Mixer::Mamba2(m) => m.in_width(),
        }
    }

    /// Channels of the causal convolution.
    pub fn conv_width(&self) -> u64 {
        match self.mixer {
            Mixer::GatedDeltaNet(l) => l.conv_width(),
            Mixer::Mamba2(m) => m.conv_width(),
        }
    }

    pub fn conv_kernel(&self) -> u64 {
        match self.mixer {
            Mixer::GatedDeltaNet(l) => l.conv_kernel,
            Mixer::Mamba2(m) => m.conv_kernel,
        }
    }

    /// Whether the convolution has a bias (Nemotron-H's does, Qwen3-Next's not).
    pub fn conv_bias(&self) -> bool {
        match self.mixer {
            Mixer::GatedDeltaNet(_) => false,
            Mixer::Mamba2(m) => m.conv_bias,
        }
    }

    /// Where the convolution's channels start in a row of the input projection: Qwen3-Next's
    /// [q | k | v | z | b | a] puts them first, Nemotron-H's [z | x B C | dt] after the gate.
    pub fn conv_offset(&self) -> u64 {
        match self.mixer {
            Mixer::GatedDeltaNet(_) => 0,
            Mixer::Mamba2(m) => m.inner_width(),
        }
    }

    /// Where the output gate z starts in a row of the input projection.
    pub fn gate_offset(&self) -> u64 {
        match self.mixer {
            Mixer::GatedDeltaNet(l) => l.conv_width(),
            Mixer::Mamba2(_) => 0,
        }
    }

    /// Width of the mixer's output (the output projection's input).
    pub fn mixer_width(&self) -> u64 {
        match self.mixer {
            Mixer::GatedDeltaNet(l) => l.value_width(),
            Mixer::Mamba2(m) => m.inner_width(),
        }
    }

    /// Heads of the scan (value heads for the Gated DeltaNet).
    pub fn scan_heads(&self) -> u64 {
        match self.mixer {
            Mixer::GatedDeltaNet(l) => l.value_heads,
            Mixer::Mamba2(m) => m.heads,
        }
    }

    /// Width of the gated norm's weight: one value head (shared by all), or Mamba-2's whole
    /// inner width (one norm per group of it).
    pub fn gated_norm_width(&self) -> u64 {
        match self.mixer {
            Mixer::GatedDeltaNet(l) => l.value_head_dim,
            Mixer::Mamba2(m) => m.inner_width(),
        }
    }

    /// The gated delta rule the Gated DeltaNet's scan step runs, over the value heads.
    pub fn scan(&self) -> Option<Scan> {
        match self.mixer {
            Mixer::GatedDeltaNet(l) => Some(Scan {
                batch: self.batch,
                heads: l.value_heads,
                seq: self.seq,
                key_dim: l.key_head_dim,
                value_dim: l.value_head_dim,
                chunk: 64.min(self.seq),
                dtype: self.dtype,
                pass: Pass::Forward,
            }),
            Mixer::Mamba2(_) => None,
        }
    }

    /// Elements of the Gated DeltaNet's prep outputs: q, k and v head-major, then α and β.
    pub fn prep_parts(&self) -> [u64; 5] {
        let Mixer::GatedDeltaNet(l) = self.mixer else {
            return [0; 5];
        };
        let rows = self.tokens() * l.value_heads;
        [
            rows * l.key_head_dim,
            rows * l.key_head_dim,
            rows * l.value_head_dim,
            rows,
            rows,
        ]
    }
}

/// A recurrent layer's input activations and weights (row-major, matmul weights [in, out]).
#[derive(Debug, Clone, PartialEq)]
pub struct RecurrentInputs {
    pub x: Vec<f32>,
    /// The norm before the mixer.
    pub norm: Vec<f32>,
    pub in_proj: Vec<f32>,
    /// The depthwise convolution's taps [channels, kernel], then its bias where it has one.
    pub conv: Vec<f32>,
    /// A_log per scan head, then dt_bias, then (Mamba-2) D.
    pub heads: Vec<f32>,
    pub gated_norm: Vec<f32>,
    pub out_proj: Vec<f32>,
    /// The MLP after a Gated DeltaNet mixer (empty for Mamba-2).
    pub mlp_norm: Vec<f32>,
    pub gate_up: Vec<f32>,
    pub down: Vec<f32>,
}

impl RecurrentInputs {
    /// The tensors in the order the device runner uploads them (see `Input`).
    pub fn tensors(&self) -> [&[f32]; 10] {
        [
            &self.x,
            &self.norm,
            &self.in_proj,
            &self.conv,
            &self.heads,
            &self.gated_norm,
            &self.out_proj,
            &self.mlp_norm,
            &self.gate_up,
            &self.down,
        ]
    }
}

/// Indices of `RecurrentInputs::tensors()`.
pub mod input {
    pub const X: usize = 0;
    pub const NORM: usize = 1;
    pub const IN_PROJ: usize = 2;
    pub const CONV: usize = 3;
    pub const HEADS: usize = 4;
    pub const GATED_NORM: usize = 5;
    pub const OUT_PROJ: usize = 6;
    pub const MLP_NORM: usize = 7;
    pub const GATE_UP: usize = 8;
    pub const DOWN: usize = 9;
}

fn silu(v: f64) -> f64 {
    v / (1.0 + (-v).exp())
}

fn softplus(v: f64) -> f64 {
    // ln(1 + eᵛ) without overflow for large v.
    if v > 20.0 { v } else { v.exp().ln_1p() }
}

/// Causal depthwise convolution then SiLU over `channels` channels starting at column
/// `offset` of `row`-wide token-major rows, sequences of `seq` tokens (no tap reaches before a
/// sequence's start): out[t, c] = silu(Σⱼ w[c, j] · x[t − (K−1) + j, c] + bias[c]).
pub fn causal_conv_silu(b: &RecurrentShape, x: &[f32], w: &[f32]) -> Vec<f64> {
    let (c_n, k) = (b.conv_width() as usize, b.conv_kernel() as usize);
    let (row, offset, seq) = (
        b.in_width() as usize,
        b.conv_offset() as usize,
        b.seq as usize,
    );
    let bias = b.conv_bias().then(|| &w[c_n * k..c_n * k + c_n]);
    let mut out = Vec::with_capacity(b.tokens() as usize * c_n);
    for tok in 0..b.tokens() as usize {
        let i = tok % seq;
        for c in 0..c_n {
            let mut acc = bias.map_or(0.0, |bias| f64::from(bias[c]));
            for j in 0..k {
                // Tap j reads token i − (k − 1) + j of the same sequence.
                if i + j + 1 >= k {
                    let src = tok + j + 1 - k;
                    acc += f64::from(w[c * k + j]) * f64::from(x[src * row + offset + c]);
                }
            }
            out.push(silu(acc));
        }
    }
    out
}

/// The Gated DeltaNet's prep in f64: from the convolution's output `conv` ([q | k | v] per
/// token) and the projection `proj` (b and a after z), the scan's q (L2-normalized, scaled by
/// 1/√dk), k (L2-normalized), v, α = exp(−exp(A_log)·softplus(a + dt_bias)) and β = sigmoid(b),
/// each value head reading key head h / (value_heads / key_heads); head-major, concatenated.
pub fn gdn_prep(b: &RecurrentShape, conv: &[f32], proj: &[f32], heads: &[f32]) -> Vec<f64> {
    let Mixer::GatedDeltaNet(l) = b.mixer else {
        unreachable!("gdn_prep on a Mamba-2 layer")
    };
    let (hk, hv) = (l.key_heads as usize, l.value_heads as usize);
    let (dk, dv) = (l.key_head_dim as usize, l.value_head_dim as usize);
    let (cw, row, seq) = (
        l.conv_width() as usize,
        l.in_width() as usize,
        b.seq as usize,
    );
    let (kw, vw) = (l.key_width() as usize, l.value_width() as usize);
    let parts = b.prep_parts().map(|n| n as usize);
    let mut q = vec![0.0; parts[0]];
    let mut k = vec![0.0; parts[1]];
    let mut v = vec![0.0; parts[2]];
    let mut alpha = vec![0.0; parts[3]];
    let mut beta = vec![0.0; parts[4]];
    let l2 = |x: &[f32], scale: f64| -> Vec<f64> {
        let ss: f64 = x.iter().map(|v| f64::from(*v).powi(2)).sum();
        let inv = scale / (ss + L2NORM_EPS).sqrt();
        x.iter().map(|v| f64::from(*v) * inv).collect()
    };
    for tok in 0..b.tokens() as usize {
        let (z, i) = (tok / seq, tok % seq);
        let c = &conv[tok * cw..(tok + 1) * cw];
        for h in 0..hv {
            let kh = h / (hv / hk);
            let at = (z * hv + h) * seq + i;
            let qn = l2(&c[kh * dk..][..dk], 1.0 / (dk as f64).sqrt());
            let kn = l2(&c[kw + kh * dk..][..dk], 1.0);
            q[at * dk..(at + 1) * dk].copy_from_slice(&qn);
            k[at * dk..(at + 1) * dk].copy_from_slice(&kn);
            for j in 0..dv {
                v[at * dv + j] = f64::from(c[2 * kw + h * dv + j]);
            }
            let bv = f64::from(proj[tok * row + cw + vw + h]);
            let av = f64::from(proj[tok * row + cw + vw + hv + h]);
            let (a_log, dt_bias) = (f64::from(heads[h]), f64::from(heads[hv + h]));
            alpha[at] = (-a_log.exp() * softplus(av + dt_bias)).exp();
            beta[at] = 1.0 / (1.0 + (-bv).exp());
        }
    }
    [q, k, v, alpha, beta].concat()
}

/// Mamba-2's scan in f64, token by token (the recurrence the SSD's chunked matmuls compute):
/// per sequence and head, with Δ = softplus(dt + dt_bias) and A = −exp(A_log),
/// S ← exp(Δ·A)·S + Δ·x·Bᵀ (S head_dim × state) and y = S·C + D·x, B and C those of the
/// head's group. x, B and C from the convolution's output [x | B | C], dt from the projection's
/// last columns; y token-major [tokens, heads · head_dim].
pub fn ssd_scan(b: &RecurrentShape, conv: &[f32], proj: &[f32], heads: &[f32]) -> Vec<f64> {
    let Mixer::Mamba2(m) = b.mixer else {
        unreachable!("ssd_scan on a Gated DeltaNet layer")
    };
    let (nh, p, n, g) = (
        m.heads as usize,
        m.head_dim as usize,
        m.state_size as usize,
        m.groups as usize,
    );
    let (cw, row, seq, inner) = (
        m.conv_width() as usize,
        m.in_width() as usize,
        b.seq as usize,
        m.inner_width() as usize,
    );
    let mut y = vec![0.0; b.tokens() as usize * inner];
    for z in 0..b.batch as usize {
        for h in 0..nh {
            let group = h / (nh / g);
            let a = -f64::from(heads[h]).exp();
            let (dt_bias, d) = (f64::from(heads[nh + h]), f64::from(heads[2 * nh + h]));
            let mut s = vec![0.0f64; p * n];
            for i in 0..seq {
                let tok = z * seq + i;
                let c = &conv[tok * cw..(tok + 1) * cw];
                let bs = &c[inner + group * n..][..n];
                let cs = &c[inner + g * n + group * n..][..n];
                let dt = softplus(f64::from(proj[tok * row + inner + cw + h]) + dt_bias);
                let decay = (dt * a).exp();
                for pi in 0..p {
                    let x = f64::from(c[h * p + pi]);
                    let mut acc = 0.0;
                    for ni in 0..n {
                        let sv = &mut s[pi * n + ni];
                        *sv = decay * *sv + dt * x * f64::from(bs[ni]);
                        acc += *sv * f64::from(cs[ni]);
                    }
                    y[tok * inner + h * p + pi] = acc + d * x;
                }
            }
        }
    }
    y
}

/// y ⊙ silu(z), token-major out [tokens, width]: y head-major [batch, heads, seq, width/heads]
/// (the Gated DeltaNet's normed scan output) or token-major (Mamba-2's scan output), z at
/// `gate_offset` of the projection's rows.
pub fn output_gate(b: &RecurrentShape, y: &[f32], proj: &[f32], head_major: bool) -> Vec<f64> {
    let (w, row, off) = (
        b.mixer_width() as usize,
        b.in_width() as usize,
        b.gate_offset() as usize,
    );
    let (seq, heads) = (b.seq as usize, b.scan_heads() as usize);
    let d = w / heads;
    let mut out = Vec::with_capacity(b.tokens() as usize * w);
    for tok in 0..b.tokens() as usize {
        let (z, i) = (tok / seq, tok % seq);
        for c in 0..w {
            let src = if head_major {
                ((z * heads + c / d) * seq + i) * d + c % d
            } else {
                tok * w + c
            };
            out.push(f64::from(y[src]) * silu(f64::from(proj[tok * row + off + c])));
        }
    }
    out
}

/// RMSNorm over `groups` groups of each row, each group with its own slice of the weight
/// (Mamba-2's gated norm); one group is a plain RMSNorm.
pub fn group_rmsnorm(x: &[f32], w: &[f32], cols: usize, groups: usize) -> Vec<f64> {
    let g = cols / groups;
    x.chunks(g)
        .enumerate()
        .flat_map(|(r, part)| cpu::rmsnorm(part, &w[(r % groups) * g..][..g], g))
        .collect()
}

/// The layer's output in f64 for activations `x` (`w.x` for the layer's own; fewer rows for a
/// prefix), each step computed exactly from the previous steps' outputs rounded to the dtype
/// (`round`), as the device stores them between kernels.
pub fn reference(
    b: &RecurrentShape,
    x: &[f32],
    w: &RecurrentInputs,
    round: &dyn Fn(f64) -> f32,
) -> Vec<f64> {
    reference_steps(b, x, w, round).pop().unwrap_or_default()
}

/// Every step's output in f64, in `steps()` order (the prep's parts and the scan's output and
/// final states concatenated, as the device lays them out), each computed from the previous
/// steps' outputs rounded to the dtype: what each kernel alone is checked against.
pub fn reference_steps(
    b: &RecurrentShape,
    x: &[f32],
    w: &RecurrentInputs,
    round: &dyn Fn(f64) -> f32,
) -> Vec<Vec<f64>> {
    let (t, h) = (b.tokens(), b.hidden);
    let mm =
        |x: &[f32], w: &[f32], n: u64, k: u64| cpu::matmul(&Matmul::new(1, t, n, k, b.dtype), x, w);
    let stored = |v: &[f64]| -> Vec<f32> { v.iter().map(|v| round(*v)).collect() };
    let mut outs: Vec<Vec<f64>> = Vec::new();
    // Records a step's exact output and gives it back as the device stores it.
    let mut step = |exact: Vec<f64>| -> Vec<f32> {
        let kept = stored(&exact);
        outs.push(exact);
        kept
    };
    let normed = step(cpu::rmsnorm(x, &w.norm, h as usize));
    let proj = step(mm(&normed, &w.in_proj, b.in_width(), h));
    let conv = step(causal_conv_silu(b, &proj, &w.conv));
    let gated = match b.mixer {
        Mixer::GatedDeltaNet(l) => {
            let prep = step(gdn_prep(b, &conv, &proj, &w.heads));
            let parts = b.prep_parts().map(|n| n as usize);
            let mut at = 0;
            let mut part = |n: usize| {
                let s = &prep[at..at + n];
                at += n;
                s
            };
            let (q, k, v, gate, beta) = (
                part(parts[0]),
                part(parts[1]),
                part(parts[2]),
                part(parts[3]),
                part(parts[4]),
            );
            let scan = b
                .scan()
                .unwrap_or_else(|| unreachable!("a Gated DeltaNet scans"));
            let o = step(cpu::scan(
                &scan,
                &cpu::ScanInputs {
                    q,
                    k,
                    v,
                    gate,
                    beta,
                },
            ));
            let rows = (t * l.value_width()) as usize;
            let normed = step(cpu::rmsnorm(
                &o[..rows],
                &w.gated_norm,
                l.value_head_dim as usize,
            ));
            step(output_gate(b, &normed, &proj, true))
        }
        Mixer::Mamba2(m) => {
            let y = step(ssd_scan(b, &conv, &proj, &w.heads));
            let gated = step(output_gate(b, &y, &proj, false));
            step(group_rmsnorm(
                &gated,
                &w.gated_norm,
                m.inner_width() as usize,
                m.groups as usize,
            ))
        }
    };
    let mixed = step(mm(&gated, &w.out_proj, h, b.mixer_width()));
    let first = step(cpu::residual_add(x, &mixed));
    if let Mixer::GatedDeltaNet(_) = b.mixer {
        let ff = b.intermediate;
        let normed = step(cpu::rmsnorm(&first, &w.mlp_norm, h as usize));
        let up = step(mm(&normed, &w.gate_up, 2 * ff, h));
        let act = step(cpu::gated_silu(&up, ff as usize));
        let down = step(mm(&act, &w.down, h, ff));
        step(cpu::residual_add(&first, &down));
    }
    outs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mamba(heads: u64, head_dim: u64, state: u64, groups: u64) -> RecurrentShape {
        RecurrentShape {
            batch: 2,
            seq: 5,
            dtype: DType::Fp32,
            hidden: 8,
            intermediate: 0,
            mixer: Mixer::Mamba2(Mamba2 {
                heads,
                head_dim,
                state_size: state,
                groups,
                conv_kernel: 3,
                conv_bias: true,
                projection_bias: false,
            }),
            ops: Vec::new(),
        }
    }

    /// The Mamba-2 recurrence against its closed form for one step from a zero state
    /// (y = Δ·(B·C)·x + D·x) and for two steps (the decay applies to the first step's state).
    #[test]
    fn ssd_scan_matches_its_closed_form() {
        let b = RecurrentShape {
            batch: 1,
            seq: 2,
            ..mamba(1, 1, 2, 1)
        };
        // conv rows: [x | B (2) | C (2)]; proj rows: [z | conv (5) | dt].
        let conv = [0.5, 1.0, 2.0, 3.0, -1.0, 2.0, 0.5, 1.0, 1.0, 1.0];
        let proj = [
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.2,
        ];
        let heads = [0.4f32, 0.1, 0.7];
        let y = ssd_scan(&b, &conv, &proj, &heads);
        let a = -f64::from(0.4f32).exp();
        let dt0 = softplus(f64::from(0.3f32) + f64::from(0.1f32));
        let dt1 = softplus(f64::from(-0.2f32) + f64::from(0.1f32));
        let d = f64::from(0.7f32);
        // Step 0: S = dt0·x0·B0; y0 = S·C0 + D·x0.
        let s0 = [dt0 * 0.5 * 1.0, dt0 * 0.5 * 2.0];
        let y0 = s0[0] * 3.0 - s0[1] + d * 0.5;
        // Step 1: S = e^{dt1·A}·S + dt1·x1·B1.
        let e = (dt1 * a).exp();
        let s1 = [e * s0[0] + dt1 * 2.0 * 0.5, e * s0[1] + dt1 * 2.0 * 1.0];
        let y1 = s1[0] * 1.0 + s1[1] * 1.0 + d * 2.0;
        assert!((y[0] - y0).abs() < 1e-12, "{} vs {y0}", y[0]);
        assert!((y[1] - y1).abs() < 1e-12, "{} vs {y1}", y[1]);
    }

    /// Heads of one group share its B and C; the second group's heads read the second's.
    #[test]
    fn ssd_heads_read_their_groups_b_and_c() {
        let b = RecurrentShape {
            batch: 1,
            seq: 1,
            ..mamba(4, 1, 1, 2)
        };
        // conv: x (4) | B (2 groups × 1) | C (2 groups × 1).
        let conv = [1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 1.0, 3.0];
        // dt = 0 for every head (the projection's last four columns).
        let proj = vec![0.0f32; b.in_width() as usize];
        let heads = [0.0f32; 12];
        let y = ssd_scan(&b, &conv, &proj, &heads);
        let dt = softplus(0.0);
        assert_eq!(y.len(), 4);
        assert!((y[0] - dt).abs() < 1e-12 && (y[1] - dt).abs() < 1e-12);
        assert!((y[2] - dt * 6.0).abs() < 1e-12 && (y[3] - dt * 6.0).abs() < 1e-12);
    }

    /// The convolution is causal and stays within its sequence: a tap before the start reads 0.
    #[test]
    fn the_convolution_does_not_cross_sequences() {
        let b = RecurrentShape {
            batch: 2,
            seq: 2,
            ..mamba(1, 1, 1, 1)
        };
        // Channels: x, B, C = 3; kernel 3 with bias; taps [0, 0, 1] pass the current token.
        let c = b.conv_width() as usize;
        let row = b.in_width() as usize;
        let mut w = vec![0.0f32; c * 3 + c];
        // Channel 0: taps [1, 1, 1] sum the window.
        w[..3].copy_from_slice(&[1.0, 1.0, 1.0]);
        let mut x = vec![0.0f32; 4 * row];
        for tok in 0..4 {
            x[tok * row + 1] = (tok + 1) as f32;
        }
        let out = causal_conv_silu(&b, &x, &w);
        let at = |tok: usize| out[tok * c];
        // Sequence 0: 1, 1 + 2; sequence 1 starts over: 3, 3 + 4.
        for (tok, sum) in [(0, 1.0), (1, 3.0), (2, 3.0), (3, 7.0)] {
            assert!((at(tok) - silu(sum)).abs() < 1e-12, "token {tok}");
        }
    }
}
