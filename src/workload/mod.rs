//! Workloads: an architecture and a way of running it (a training step, a prefill, a decode step)
//! become a list of ops; `memory` accounts for what must be resident; `estimate` prices the ops
//! with a cost model.

pub mod estimate;
pub mod memory;

use crate::arch::{Architecture, LayerKind, Norm, Positions};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ops::{Attention, Matmul, MemoryKind, MemoryOp, Op, Pass};
use serde::{Deserialize, Serialize};

/// How the model is split over GPUs. Only tp = pp = dp = 1 is modelled so far; the setting travels
/// through every type so that multi-GPU estimates can arrive without changing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parallelism {
    pub tp: u64,
    pub pp: u64,
    pub dp: u64,
}

impl Default for Parallelism {
    fn default() -> Self {
        Parallelism {
            tp: 1,
            pp: 1,
            dp: 1,
        }
    }
}

impl Parallelism {
    pub fn gpus(&self) -> u64 {
        self.tp * self.pp * self.dp
    }

    pub fn validate(&self) -> Result<()> {
        if *self != Parallelism::default() {
            return Err(Error::Unsupported(format!(
                "parallelism tp={} pp={} dp={}: only a single GPU (tp = pp = dp = 1) is modelled so far",
                self.tp, self.pp, self.dp
            )));
        }
        Ok(())
    }
}

/// Activation recomputation during the backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Recompute {
    /// Keep every activation the backward pass needs.
    None,
    /// Recompute the attention core (scores and softmax) instead of storing it (Korthikanti et
    /// al. 2022). With fused attention this is what the backward kernel does anyway.
    Selective,
    /// Store only each layer's input and recompute the whole layer forward in the backward pass.
    Full,
}

/// One training step on one GPU.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainingSetup {
    /// Sequences per step.
    pub batch: u64,
    pub seq: u64,
    /// Matmul input dtype (mixed precision: bf16 matmuls, fp32 master weights and optimizer).
    pub dtype: DType,
    pub recompute: Recompute,
    pub fused_attention: bool,
    pub parallelism: Parallelism,
}

/// Serving: prefill `prompt` tokens for `batch` sequences, then generate `gen` tokens each.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InferenceSetup {
    pub batch: u64,
    pub prompt: u64,
    pub generate: u64,
    /// Weight and matmul dtype.
    pub dtype: DType,
    pub kv_dtype: DType,
    pub fused_attention: bool,
    pub parallelism: Parallelism,
}

/// Which part of a workload an op belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Forward,
    Backward,
    Recompute,
    Optimizer,
    Prefill,
    Decode,
}

/// An op as it occurs in a workload: `count` identical copies (one per layer of its kind).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpInstance {
    pub phase: Phase,
    pub label: String,
    pub count: u64,
    pub op: Op,
}

/// The dtype activations and memory-bound ops run in, given the matmul dtype: 8-bit and 4-bit
/// matmuls take bf16 activations (quantized on the fly); tf32 stores fp32.
pub fn activation_dtype(dtype: DType) -> DType {
    match dtype {
        DType::Fp32 | DType::Tf32 => DType::Fp32,
        DType::Fp16 => DType::Fp16,
        _ => DType::Bf16,
    }
}

/// The dtype attention runs in: fp8 attention exists (FlashAttention-3); integer attention does not.
pub fn attention_dtype(dtype: DType) -> DType {
    match dtype {
        DType::Int8 | DType::Int4 => DType::Bf16,
        d => d,
    }
}

/// Shapes shared by the op builders.
struct Ctx<'a> {
    arch: &'a Architecture,
    /// Sequences.
    batch: u64,
    /// New tokens per sequence in this pass (seq, prompt, or 1 in decode).
    q_len: u64,
    /// Context per sequence the new tokens attend to.
    kv_len: u64,
    dtype: DType,
    kv_dtype: DType,
    fused: bool,
}

impl Ctx<'_> {
    fn tokens(&self) -> u64 {
        self.batch * self.q_len
    }

    fn act(&self) -> DType {
        activation_dtype(self.dtype)
    }

    fn matmul(&self, batch: u64, m: u64, n: u64, k: u64) -> Op {
        Op::Matmul(Matmul {
            output: self.act(),
            ..Matmul::new(batch, m, n, k, self.dtype)
        })
    }

    fn memory(&self, kind: MemoryKind, rows: u64, cols: u64) -> Op {
        Op::Memory(MemoryOp::new(kind, Pass::Forward, rows, cols, self.act()))
    }

    fn norm(&self) -> Op {
        let kind = match self.arch.norm {
            Norm::LayerNorm => MemoryKind::LayerNorm,
            Norm::RmsNorm => MemoryKind::RmsNorm,
        };
        self.memory(kind, self.tokens(), self.arch.hidden_size)
    }

    fn attention(&self, window: Option<u64>) -> Op {
        let a = self.arch;
        Op::Attention(Attention {
            batch: self.batch,
            q_heads: a.num_heads,
            kv_heads: a.num_kv_heads,
            q_len: self.q_len,
            kv_len: self.kv_len,
            qk_head_dim: a.head_dim,
            v_head_dim: a.head_dim,
            causal: true,
            window,
            dtype: attention_dtype(self.dtype),
            kv_dtype: self.kv_dtype,
            fused: self.fused,
            pass: Pass::Forward,
        })
    }

    /// The feed-forward ops of a dense MLP of width `width` over `rows` tokens, `experts` copies.
    fn mlp(&self, prefix: &str, experts: u64, rows: u64, width: u64) -> Vec<(String, Op)> {
        let a = self.arch;
        let h = a.hidden_size;
        let up_width = if a.mlp.gated { 2 * width } else { width };
        let act_kind = if a.mlp.gated {
            MemoryKind::GatedActivation(a.mlp.activation)
        } else {
            MemoryKind::Activation(a.mlp.activation)
        };
        let up_label = if a.mlp.gated { "gate+up" } else { "up" };
        vec![
            (
                format!("{prefix}{up_label}"),
                self.matmul(experts, rows, up_width, h),
            ),
            (
                format!("{prefix}{}", act_kind.name()),
                self.memory(act_kind, experts * rows, width),
            ),
            (
                format!("{prefix}down"),
                self.matmul(experts, rows, h, width),
            ),
        ]
    }

    /// The forward ops of one layer of `kind`.
    fn layer(&self, kind: LayerKind) -> Vec<(String, Op)> {
        let a = self.arch;
        let (h, t) = (a.hidden_size, self.tokens());
        let mut ops = vec![
            ("attn-norm".to_string(), self.norm()),
            (
                "qkv".into(),
                self.matmul(1, t, a.q_width() + 2 * a.kv_width(), h),
            ),
        ];
        if a.positions == Positions::Rotary {
            ops.push((
                "rotary".into(),
                self.memory(MemoryKind::Rotary, t, a.q_width() + a.kv_width()),
            ));
        }
        ops.push(("attention".into(), self.attention(kind.window)));
        ops.push(("attn-out".into(), self.matmul(1, t, h, a.q_width())));
        if a.norms_per_layer == 4 {
            ops.push(("post-attn-norm".into(), self.norm()));
        }
        ops.push((
            "residual".into(),
            self.memory(MemoryKind::ResidualAdd, t, h),
        ));
        ops.push(("mlp-norm".into(), self.norm()));
        match (kind.moe, a.moe) {
            (true, Some(m)) => {
                ops.push(("router".into(), self.matmul(1, t, m.num_experts, h)));
                ops.push((
                    "router-softmax".into(),
                    self.memory(MemoryKind::Softmax, t, m.num_experts),
                ));
                // Routed tokens spread evenly over the experts they reach (the ideal a
                // load-balancing loss aims for); few tokens reach few experts, which matters
                // for decode, where the experts' weights are what is read.
                let routed = t * m.top_k;
                let experts = experts_reached(t, m.top_k, m.num_experts);
                let per_expert = routed.div_ceil(experts);
                ops.push((
                    "moe-dispatch".into(),
                    self.memory(MemoryKind::EmbeddingLookup, routed, h),
                ));
                ops.extend(self.mlp("expert-", experts, per_expert, m.expert_intermediate_size));
                if m.shared_experts > 0 {
                    ops.extend(self.mlp(
                        "shared-",
                        1,
                        t,
                        m.shared_experts * m.shared_intermediate_size,
                    ));
                }
                // Weighted sum of each token's expert outputs.
                ops.push((
                    "moe-combine".into(),
                    self.memory(MemoryKind::ResidualAdd, routed, h),
                ));
            }
            _ => ops.extend(self.mlp("", 1, t, a.intermediate_size)),
        }
        if a.norms_per_layer == 4 {
            ops.push(("post-mlp-norm".into(), self.norm()));
        }
        ops.push((
            "residual".into(),
            self.memory(MemoryKind::ResidualAdd, t, h),
        ));
        ops
    }

    /// Ops before the first layer: token embedding (plus learned positions).
    fn embedding(&self) -> Vec<(String, Op)> {
        let (h, t) = (self.arch.hidden_size, self.tokens());
        let mut ops = vec![(
            "embedding".to_string(),
            self.memory(MemoryKind::EmbeddingLookup, t, h),
        )];
        if self.arch.positions == Positions::Learned {
            ops.push((
                "position-add".into(),
                self.memory(MemoryKind::ResidualAdd, t, h),
            ));
        }
        ops
    }

    /// Ops after the last layer over `rows` tokens: final norm and the LM head.
    fn head(&self, rows: u64) -> Vec<(String, Op)> {
        let a = self.arch;
        let kind = match a.norm {
            Norm::LayerNorm => MemoryKind::LayerNorm,
            Norm::RmsNorm => MemoryKind::RmsNorm,
        };
        vec![
            (
                "final-norm".to_string(),
                self.memory(kind, rows, a.hidden_size),
            ),
            (
                "lm-head".into(),
                self.matmul(1, rows, a.vocab_size, a.hidden_size),
            ),
        ]
    }
}

/// Expected number of distinct experts `tokens` tokens reach when each picks `top_k` of `experts`
/// uniformly: E·(1 − (1 − k/E)^T), rounded up.
pub fn experts_reached(tokens: u64, top_k: u64, experts: u64) -> u64 {
    let miss = 1.0 - top_k as f64 / experts as f64;
    let expected = experts as f64 * (1.0 - miss.powf(tokens as f64));
    // Never fewer than one token's picks, never more than there are.
    (expected.ceil() as u64).clamp(top_k.min(experts), experts)
}

fn instances(phase: Phase, count: u64, ops: Vec<(String, Op)>) -> Vec<OpInstance> {
    ops.into_iter()
        .map(|(label, op)| OpInstance {
            phase,
            label,
            count,
            op,
        })
        .collect()
}

/// The backward of one forward op: the data- and weight-gradient matmuls, or the op's backward
/// kernel. Returns (label suffix, op) pairs.
pub fn backward_of(op: &Op) -> Vec<(&'static str, Op)> {
    match op {
        Op::Matmul(mm) => vec![
            // dX[m×k] = dY[m×n] · Wᵀ
            (
                "dX",
                Op::Matmul(Matmul {
                    n: mm.k,
                    k: mm.n,
                    ..mm.clone()
                }),
            ),
            // dW[k×n] = Xᵀ · dY
            (
                "dW",
                Op::Matmul(Matmul {
                    m: mm.k,
                    k: mm.m,
                    ..mm.clone()
                }),
            ),
        ],
        Op::Attention(a) => vec![(
            "",
            Op::Attention(Attention {
                pass: Pass::Backward,
                ..a.clone()
            }),
        )],
        Op::Memory(m) => vec![(
            "",
            Op::Memory(MemoryOp {
                pass: Pass::Backward,
                ..m.clone()
            }),
        )],
        Op::Collective(c) => vec![("", Op::Collective(c.clone()))],
    }
}

fn check_positive(fields: &[(&str, u64)]) -> Result<()> {
    for (name, v) in fields {
        if *v == 0 {
            return Err(Error::Unsupported(format!(
                "--{name} must be positive, got 0"
            )));
        }
    }
    Ok(())
}

impl TrainingSetup {
    pub fn validate(&self) -> Result<()> {
        check_positive(&[("batch", self.batch), ("seq", self.seq)])?;
        self.parallelism.validate()
    }

    pub fn tokens(&self) -> u64 {
        self.batch * self.seq
    }
}

impl InferenceSetup {
    pub fn validate(&self) -> Result<()> {
        check_positive(&[
            ("batch", self.batch),
            ("prompt", self.prompt),
            ("gen", self.generate),
        ])?;
        self.parallelism.validate()
    }

    /// Context lengths of the decode steps whose average is the time per output token: the first
    /// token comes from the prefill, token j (j = 2..=gen) attends to prompt + j − 1 positions.
    pub fn decode_contexts(&self) -> Vec<u64> {
        if self.generate <= 1 {
            return vec![self.prompt + 1];
        }
        (1..self.generate).map(|j| self.prompt + j).collect()
    }
}

/// The ops of one training step: forward, backward, recomputation and the optimizer update.
pub fn training_ops(arch: &Architecture, s: &TrainingSetup) -> Vec<OpInstance> {
    let ctx = Ctx {
        arch,
        batch: s.batch,
        q_len: s.seq,
        kv_len: s.seq,
        dtype: s.dtype,
        kv_dtype: attention_dtype(s.dtype),
        fused: s.fused_attention,
    };
    let t = ctx.tokens();
    let mut forward = instances(Phase::Forward, 1, ctx.embedding());
    for (kind, count) in arch.layer_groups() {
        forward.extend(instances(Phase::Forward, count, ctx.layer(kind)));
    }
    forward.extend(instances(Phase::Forward, 1, ctx.head(t)));
    forward.push(OpInstance {
        phase: Phase::Forward,
        label: "cross-entropy".into(),
        count: 1,
        op: ctx.memory(MemoryKind::CrossEntropy, t, arch.vocab_size),
    });

    let mut ops = forward.clone();
    for f in forward.iter().rev() {
        for (suffix, op) in backward_of(&f.op) {
            let label = if suffix.is_empty() {
                f.label.clone()
            } else {
                format!("{} {suffix}", f.label)
            };
            ops.push(OpInstance {
                phase: Phase::Backward,
                label,
                count: f.count,
                op,
            });
        }
    }
    // Recomputation: full re-runs every layer's forward; selective re-runs the attention core,
    // which costs extra only when attention is unfused (a fused backward recomputes it anyway).
    for (kind, count) in arch.layer_groups() {
        let layer = ctx.layer(kind);
        let again: Vec<(String, Op)> = match s.recompute {
            Recompute::Full => layer,
            Recompute::Selective if !s.fused_attention => layer
                .into_iter()
                .filter(|(_, op)| matches!(op, Op::Attention(_)))
                .collect(),
            _ => Vec::new(),
        };
        ops.extend(instances(Phase::Recompute, count, again));
    }
    ops.push(OpInstance {
        phase: Phase::Optimizer,
        label: "adam".into(),
        count: 1,
        op: Op::Memory(MemoryOp::new(
            MemoryKind::AdamUpdate,
            Pass::Forward,
            1,
            arch.params().total,
            activation_dtype(s.dtype),
        )),
    });
    ops
}

/// The ops of the prefill: the whole prompt through every layer, logits for the last position only
/// (what serving engines compute to sample the first token).
pub fn prefill_ops(arch: &Architecture, s: &InferenceSetup) -> Vec<OpInstance> {
    let ctx = Ctx {
        arch,
        batch: s.batch,
        q_len: s.prompt,
        kv_len: s.prompt,
        dtype: s.dtype,
        kv_dtype: s.kv_dtype,
        fused: s.fused_attention,
    };
    let mut ops = instances(Phase::Prefill, 1, ctx.embedding());
    for (kind, count) in arch.layer_groups() {
        ops.extend(instances(Phase::Prefill, count, ctx.layer(kind)));
    }
    ops.extend(instances(Phase::Prefill, 1, ctx.head(s.batch)));
    ops
}

/// The forward ops of one layer of `kind` over `batch` sequences of `seq` tokens attending to
/// themselves, as a prefill runs it: what a transformer-block runner executes and is predicted by.
pub fn layer_forward_ops(
    arch: &Architecture,
    kind: crate::arch::LayerKind,
    batch: u64,
    seq: u64,
    dtype: DType,
) -> Vec<(String, Op)> {
    let ctx = Ctx {
        arch,
        batch,
        q_len: seq,
        kv_len: seq,
        dtype,
        kv_dtype: attention_dtype(dtype),
        fused: true,
    };
    ctx.layer(kind)
}

/// The ops of one decode step: one new token per sequence attending to `context` positions.
pub fn decode_ops(arch: &Architecture, s: &InferenceSetup, context: u64) -> Vec<OpInstance> {
    let ctx = Ctx {
        arch,
        batch: s.batch,
        q_len: 1,
        kv_len: context,
        dtype: s.dtype,
        kv_dtype: s.kv_dtype,
        fused: true,
    };
    let mut ops = instances(Phase::Decode, 1, ctx.embedding());
    for (kind, count) in arch.layer_groups() {
        ops.extend(instances(Phase::Decode, count, ctx.layer(kind)));
    }
    ops.extend(instances(Phase::Decode, 1, ctx.head(s.batch)));
    ops
}

/// Model FLOPs of the forward pass per token: matmuls and attention only, no recomputation —
/// the numerator of MFU is three times this.
pub fn forward_model_flops(ops: &[OpInstance], tokens: u64) -> f64 {
    ops.iter()
        .filter(|o| o.phase == Phase::Forward)
        .filter(|o| matches!(o.op, Op::Matmul(_) | Op::Attention(_)))
        .map(|o| o.op.flops() * o.count as f64)
        .sum::<f64>()
        / tokens as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch;

    fn setup(seq: u64) -> TrainingSetup {
        TrainingSetup {
            batch: 1,
            seq,
            dtype: DType::Bf16,
            recompute: Recompute::None,
            fused_attention: true,
            parallelism: Parallelism::default(),
        }
    }

    #[test]
    fn backward_matmuls_have_the_forward_flops() {
        let a = arch::load("llama-2-7b").unwrap();
        let ops = training_ops(&a, &setup(2048));
        let sum = |phase: Phase| -> f64 {
            ops.iter()
                .filter(|o| o.phase == phase && matches!(o.op, Op::Matmul(_)))
                .map(|o| o.op.flops() * o.count as f64)
                .sum()
        };
        assert_eq!(sum(Phase::Backward), 2.0 * sum(Phase::Forward));
        assert_eq!(sum(Phase::Recompute), 0.0);
    }

    #[test]
    fn full_recompute_reruns_each_layer_forward() {
        let a = arch::load("llama-2-7b").unwrap();
        let mut s = setup(1024);
        s.recompute = Recompute::Full;
        let ops = training_ops(&a, &s);
        let layer_fwd: f64 = ops
            .iter()
            .filter(|o| o.phase == Phase::Forward && o.count == a.num_layers)
            .map(|o| o.op.flops() * o.count as f64)
            .sum();
        let re: f64 = ops
            .iter()
            .filter(|o| o.phase == Phase::Recompute)
            .map(|o| o.op.flops() * o.count as f64)
            .sum();
        assert_eq!(re, layer_fwd);
    }

    #[test]
    fn decode_contexts_grow_from_the_prompt() {
        let s = InferenceSetup {
            batch: 1,
            prompt: 100,
            generate: 4,
            dtype: DType::Bf16,
            kv_dtype: DType::Bf16,
            fused_attention: true,
            parallelism: Parallelism::default(),
        };
        assert_eq!(s.decode_contexts(), vec![101, 102, 103]);
        assert_eq!(
            InferenceSetup { generate: 1, ..s }.decode_contexts(),
            vec![101]
        );
    }

    #[test]
    fn few_tokens_reach_few_experts() {
        assert_eq!(experts_reached(1, 2, 8), 2);
        assert_eq!(experts_reached(4, 2, 8), 6); // 8·(1 − 0.75⁴) = 5.47
        assert_eq!(experts_reached(4096, 2, 8), 8);
    }

    #[test]
    fn multi_gpu_is_refused_for_now() {
        let mut s = setup(128);
        s.parallelism.tp = 2;
        assert!(s.validate().unwrap_err().to_string().contains("tp=2"));
    }
}
