//! plan: a model and an execution become the ops each GPU runs, with counts — one training step
//! (forward, backward, recomputation, optimizer), the prefill, and one decode step whose
//! attention context grows over the generated tokens. Ops are plain values; their labels are
//! static names rendered only when a report shows them.

use crate::model::arch::{
    Architecture, Block as LayerBlock, LayerGroups, LayerKind, LinearAttention, Mamba2, Mla, Mlp,
    Moe, Norm, Positions,
};
use crate::model::dtype::DType;
use crate::model::execution::{
    Execution, InferenceSetup, Recompute, TrainingSetup, activation_dtype, attention_dtype,
};
use crate::model::ops::{
    Activation, Attention, Collective, CollectiveKind, Matmul, MemoryKind, MemoryOp, Op, Pass, Scan,
};
use crate::model::parallel::{Group, Parallelism, Zero};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::RangeInclusive;

/// Which part of a workload an op belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Forward,
    Backward,
    Recompute,
    Optimizer,
    /// The data-parallel exchange of gradients and weights, once per step.
    DataParallel,
    Prefill,
    Decode,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Forward => "forward",
            Phase::Backward => "backward",
            Phase::Recompute => "recompute",
            Phase::Optimizer => "optimizer",
            Phase::DataParallel => "data-parallel",
            Phase::Prefill => "prefill",
            Phase::Decode => "decode",
        }
    }
}

/// Which MLP of a layer an op belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    Main,
    /// The routed experts of a mixture-of-experts layer.
    Expert,
    /// The always-active shared experts.
    Shared,
}

/// Which gradient a backward matmul computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grad {
    /// A forward op, or a backward op with a single kernel.
    None,
    /// dX = dY · Wᵀ
    Data,
    /// dW = Xᵀ · dY
    Weight,
}

/// An op's name in a workload ("qkv", "expert-down dW"), kept as static parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Label {
    pub part: Part,
    pub name: &'static str,
    pub grad: Grad,
}

impl Label {
    pub const fn new(name: &'static str) -> Label {
        Label {
            part: Part::Main,
            name,
            grad: Grad::None,
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.part {
            Part::Main => "",
            Part::Expert => "expert-",
            Part::Shared => "shared-",
        };
        let suffix = match self.grad {
            Grad::None => "",
            Grad::Data => " dX",
            Grad::Weight => " dW",
        };
        write!(f, "{prefix}{}{suffix}", self.name)
    }
}

/// Tokens per chunk of a chunked linear-attention scan (flash-linear-attention's default).
pub const SCAN_CHUNK: u64 = 64;

/// The context-parallel exchange of keys and values (overlapped with the attention).
pub const CP_EXCHANGE: &str = "cp-kv-all-gather";
/// The sum of a vocabulary-parallel embedding's partial lookups.
pub const EMBEDDING_EXCHANGE: &str = "tp-embedding-all-reduce";
/// Activations (and their gradients) passed between pipeline stages.
pub const PIPELINE_SEND: &str = "pp-send";
/// ZeRO stage 3's weight gathers and gradient scatters, per microbatch (prefetched, so they
/// overlap the compute).
pub const ZERO3_GATHER: &str = "zero3-weight-all-gather";
pub const ZERO3_SCATTER: &str = "zero3-grad-reduce-scatter";

/// Where a training op outside the layer blocks runs in a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// On the first stage (the embedding).
    First,
    /// On the last stage (the head and the loss).
    Last,
    /// On every stage, per microbatch (pipeline sends).
    EveryStage,
    /// Once per step (the optimizer and the data-parallel exchange).
    Step,
}

impl OpInstance {
    /// Where this op runs in a pipeline (ops inside layer blocks run where their layer does).
    pub fn place(&self) -> Place {
        match (self.phase, self.label.name) {
            (Phase::Optimizer | Phase::DataParallel, _) => Place::Step,
            (_, "embedding" | "position-add" | EMBEDDING_EXCHANGE) => Place::First,
            (_, PIPELINE_SEND) => Place::EveryStage,
            _ => Place::Last,
        }
    }
}

/// An op as it occurs in a workload: `count` identical copies (one per layer of its kind).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpInstance {
    pub phase: Phase,
    pub label: Label,
    pub count: u64,
    pub op: Op,
}

/// The architecture's per-layer dimensions: everything a layer's op builders read. A layer's ops
/// are a function of these, its kind and the pass shape, which is what lets `price` memoize
/// whole layers by `BlockKey`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LayerDims {
    pub hidden: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub intermediate: u64,
    pub mlp: Mlp,
    pub norm: Norm,
    pub norms_per_layer: u64,
    pub rotary: bool,
    pub moe: Option<Moe>,
    pub qk_norm: bool,
    pub mla: Option<Mla>,
    pub attention_output_gate: bool,
    pub linear_attention: Option<LinearAttention>,
    pub mamba: Option<Mamba2>,
}

impl LayerDims {
    pub fn of(a: &Architecture) -> LayerDims {
        LayerDims {
            hidden: a.hidden_size,
            heads: a.num_heads,
            kv_heads: a.num_kv_heads,
            head_dim: a.head_dim,
            intermediate: a.intermediate_size,
            mlp: a.mlp,
            norm: a.norm,
            norms_per_layer: a.norms_per_layer,
            rotary: a.positions == Positions::Rotary,
            moe: a.moe,
            qk_norm: a.qk_norm,
            mla: a.mla,
            attention_output_gate: a.attention_output_gate,
            linear_attention: a.linear_attention,
            mamba: a.mamba,
        }
    }

    fn q_width(&self) -> u64 {
        self.heads * self.head_dim
    }

    fn kv_width(&self) -> u64 {
        self.kv_heads * self.head_dim
    }
}

impl LayerDims {
    /// One tensor-parallel rank's share of a layer (Megatron's split): the heads, the MLP width
    /// and each expert's width divided over `tp`; key/value heads too, or replicated where there
    /// are fewer of them than ranks.
    pub fn sharded(a: &Architecture, tp: u64) -> LayerDims {
        let mut d = LayerDims::of(a);
        if tp > 1 {
            d.heads = d.heads.div_ceil(tp);
            d.kv_heads = d.kv_heads.div_ceil(tp);
            d.intermediate = d.intermediate.div_ceil(tp);
            if let Some(m) = &mut d.moe {
                m.expert_intermediate_size = m.expert_intermediate_size.div_ceil(tp);
                m.shared_intermediate_size = m.shared_intermediate_size.div_ceil(tp);
            }
            if let Some(l) = &mut d.linear_attention {
                l.key_heads = l.key_heads.div_ceil(tp);
                l.value_heads = l.value_heads.div_ceil(tp);
            }
            // Megatron's Mamba mixer splits its heads and its B/C groups over the ranks.
            if let Some(m) = &mut d.mamba {
                m.heads = m.heads.div_ceil(tp);
                m.groups = m.groups.div_ceil(tp);
            }
        }
        d
    }
}

/// How one rank's share of a layer is cut beyond its dimensions: the groups its collectives run
/// over (size and stride) and how tokens are split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    pub tp: u32,
    pub sequence_parallel: bool,
    pub cp: u32,
    pub cp_stride: u32,
    pub ep: u32,
    pub ep_stride: u32,
    /// Tokens the busiest expert gets over the balanced share, in thousandths.
    pub imbalance_permille: u32,
}

impl Shard {
    pub fn of(p: &Parallelism) -> Shard {
        // Within `limits::RANKS` (2^20) and an imbalance of at most 64: all fit in 32 bits,
        // which keeps the layer memo's keys small.
        let narrow = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Shard {
            tp: narrow(p.tp),
            sequence_parallel: p.sequence_parallel,
            cp: narrow(p.cp),
            cp_stride: narrow(p.stride(Group::Context)),
            ep: narrow(p.ep),
            ep_stride: narrow(p.stride(Group::Expert)),
            imbalance_permille: (p.expert_imbalance * 1000.0).round() as u32,
        }
    }
}

/// The shape of one pass: what every op of it runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PassShape {
    /// Sequences.
    pub batch: u64,
    /// New tokens per sequence in this pass (seq, prompt, or 1 in decode).
    pub q_len: u64,
    /// Context per sequence the new tokens attend to.
    pub kv_len: u64,
    pub dtype: DType,
    pub kv_dtype: DType,
    pub fused: bool,
    /// Training with dropout (attention probabilities and residual stream).
    pub dropout: bool,
}

/// What a block of ops is: one layer of `kind` over `shape`, in `phase` (`attention_only`: the
/// selective recomputation of the attention core), with the layer dimensions of its pass
/// (`Plan::training_dims` and its siblings: kept out of the key, which is hashed and compared on
/// every memo lookup, while the dimensions are the same for every block of a pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockKey {
    pub shard: Shard,
    pub kind: LayerKind,
    pub shape: PassShape,
    pub phase: Phase,
    pub attention_only: bool,
}

/// A run `start..end` of a plan's op list that is one layer, each of its ops `count` times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Block {
    pub start: usize,
    pub end: usize,
    pub key: BlockKey,
}

/// What one GPU (one rank of a layout) runs for an execution.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// One training step.
    pub training: Vec<OpInstance>,
    pub training_blocks: Vec<Block>,
    /// The layer dimensions of every training block.
    pub training_dims: Option<LayerDims>,
    /// The prefill of the prompt: the time to first token.
    pub prefill: Vec<OpInstance>,
    pub prefill_blocks: Vec<Block>,
    pub prefill_dims: Option<LayerDims>,
    /// One decode step at the first context of `decode_contexts`; only the attention ops depend
    /// on the context, so `price` moves their `kv_len` over the range.
    pub decode: Vec<OpInstance>,
    pub decode_blocks: Vec<Block>,
    pub decode_dims: Option<LayerDims>,
    /// The contexts of the decode steps the time per output token averages.
    pub decode_contexts: RangeInclusive<u64>,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            training: Vec::new(),
            training_blocks: Vec::new(),
            training_dims: None,
            prefill: Vec::new(),
            prefill_blocks: Vec::new(),
            prefill_dims: None,
            decode: Vec::new(),
            decode_blocks: Vec::new(),
            decode_dims: None,
            decode_contexts: 1..=1,
        }
    }
}

/// The plan of `execution` for `arch`.
pub fn plan(arch: &Architecture, execution: &Execution) -> Plan {
    let mut p = Plan::default();
    plan_into(&mut p, arch, execution);
    p
}

/// `plan`, reusing `out`'s buffers (the search loop plans millions of candidates).
pub fn plan_into(out: &mut Plan, arch: &Architecture, execution: &Execution) {
    out.training.clear();
    out.training_blocks.clear();
    out.prefill.clear();
    out.prefill_blocks.clear();
    out.decode.clear();
    out.decode_blocks.clear();
    let groups = arch.layer_groups();
    out.training_dims = Some(training_ops_into(
        &mut out.training,
        &mut out.training_blocks,
        arch,
        groups,
        &execution.training,
    ));
    out.prefill_dims = Some(prefill_ops_into(
        &mut out.prefill,
        &mut out.prefill_blocks,
        arch,
        groups,
        &execution.serving,
    ));
    out.decode_contexts = execution.serving.decode_contexts();
    out.decode_dims = Some(decode_ops_into(
        &mut out.decode,
        &mut out.decode_blocks,
        arch,
        groups,
        &execution.serving,
        *out.decode_contexts.start(),
    ));
}

/// Where op builders put their ops: the phase and count every op gets.
struct Sink<'a> {
    out: &'a mut Vec<OpInstance>,
    phase: Phase,
    count: u64,
}

impl Sink<'_> {
    fn push(&mut self, label: Label, op: Op) {
        self.out.push(OpInstance {
            phase: self.phase,
            label,
            count: self.count,
            op,
        });
    }
}

/// What the op builders read: the layer dimensions, the pass shape, and the few model-level
/// figures the embedding and head need.
struct Ctx {
    dims: LayerDims,
    shard: Shard,
    shape: PassShape,
    /// Vocabulary rows on this rank (vocab-parallel embedding and head).
    vocab: u64,
    learned_positions: bool,
    groups: LayerGroups,
    /// The multi-token-prediction modules: how many, and the kind of layer each holds (the
    /// kind that would follow the last layer).
    mtp: (u64, LayerKind),
}

impl Ctx {
    fn new(arch: &Architecture, shape: PassShape, p: &Parallelism) -> Ctx {
        Ctx::with_groups(arch, shape, p, arch.layer_groups())
    }

    /// `new`, with the model's layer groups already counted (a plan counts them once for its
    /// three passes).
    fn with_groups(
        arch: &Architecture,
        shape: PassShape,
        p: &Parallelism,
        groups: LayerGroups,
    ) -> Ctx {
        Ctx {
            dims: LayerDims::sharded(arch, p.tp),
            shard: Shard::of(p),
            shape,
            vocab: arch.vocab_size.div_ceil(p.tp),
            learned_positions: arch.positions == Positions::Learned,
            groups,
            mtp: (arch.mtp_layers, arch.layer_kind(arch.num_layers)),
        }
    }

    fn key(&self, kind: LayerKind, phase: Phase, attention_only: bool) -> BlockKey {
        BlockKey {
            shard: self.shard,
            kind,
            shape: self.shape,
            phase,
            attention_only,
        }
    }

    fn tokens(&self) -> u64 {
        self.shape.batch * self.shape.q_len
    }

    /// Rows of the norms and residual adds: the rank's share under sequence parallelism.
    fn stream_rows(&self) -> u64 {
        if self.shard.sequence_parallel {
            self.tokens().div_ceil(self.shard.tp.into())
        } else {
            self.tokens()
        }
    }

    /// A collective of `kind` over `ranks` GPUs `stride` apart on `elements` activations.
    fn collective(&self, kind: CollectiveKind, ranks: u64, stride: u64, elements: u64) -> Op {
        let dtype = self.act();
        Op::Collective(Collective {
            kind,
            payload_bytes: dtype.bytes_for(elements),
            ranks,
            stride,
            dtype,
        })
    }

    /// The tensor-parallel exchange of the residual stream entering a column-parallel matmul
    /// (`gather`) or leaving a row-parallel one: all-gather and reduce-scatter with sequence
    /// parallelism, an all-reduce on the way out without it.
    fn tp_exchange(&self, s: &mut Sink, gather: bool) {
        let (tp, t, h) = (u64::from(self.shard.tp), self.tokens(), self.dims.hidden);
        if tp == 1 {
            return;
        }
        match (self.shard.sequence_parallel, gather) {
            (true, true) => s.push(
                Label::new("tp-all-gather"),
                self.collective(CollectiveKind::AllGather, tp, 1, t * h),
            ),
            (true, false) => s.push(
                Label::new("tp-reduce-scatter"),
                self.collective(CollectiveKind::ReduceScatter, tp, 1, t * h),
            ),
            (false, false) => s.push(
                Label::new("tp-all-reduce"),
                self.collective(CollectiveKind::AllReduce, tp, 1, t * h),
            ),
            // Without sequence parallelism the entry is an identity forward (its all-reduce is
            // the backward of the exit's, mirrored by `backward_of`).
            (false, true) => {}
        }
    }

    fn act(&self) -> DType {
        activation_dtype(self.shape.dtype)
    }

    fn matmul(&self, batch: u64, m: u64, n: u64, k: u64) -> Op {
        Op::Matmul(Matmul {
            output: self.act(),
            ..Matmul::new(batch, m, n, k, self.shape.dtype)
        })
    }

    fn memory(&self, kind: MemoryKind, rows: u64, cols: u64) -> Op {
        Op::Memory(MemoryOp::new(kind, Pass::Forward, rows, cols, self.act()))
    }

    fn norm_kind(&self) -> MemoryKind {
        match self.dims.norm {
            Norm::LayerNorm => MemoryKind::LayerNorm,
            Norm::RmsNorm => MemoryKind::RmsNorm,
        }
    }

    fn norm(&self) -> Op {
        self.memory(self.norm_kind(), self.stream_rows(), self.dims.hidden)
    }

    /// Attention of this pass's queries over its keys with `heads` query and `kv_heads` key/value
    /// heads of the given widths; `shared_kv` when the values are part of the cached keys.
    fn attention_over(
        &self,
        window: Option<u64>,
        heads: (u64, u64),
        dims: (u64, u64),
        shared_kv: bool,
    ) -> Op {
        let p = &self.shape;
        // Context parallel: each rank's load-balanced share of the causal square (two chunks,
        // one early and one late, as Megatron's ring attention deals them) is s²/(2·cp) pairs,
        // priced as a full block of its queries against half the keys.
        let (kv_len, causal) = if self.shard.cp > 1 {
            (p.kv_len.div_ceil(2), false)
        } else {
            (p.kv_len, true)
        };
        Op::Attention(Attention {
            batch: p.batch,
            q_heads: heads.0,
            kv_heads: heads.1,
            q_len: p.q_len,
            kv_len,
            qk_head_dim: dims.0,
            v_head_dim: dims.1,
            causal,
            window,
            dtype: attention_dtype(p.dtype),
            kv_dtype: p.kv_dtype,
            fused: p.fused,
            pass: Pass::Forward,
            shared_kv,
        })
    }

    fn attention(&self, window: Option<u64>) -> Op {
        let d = &self.dims;
        self.attention_over(
            window,
            (d.heads, d.kv_heads),
            (d.head_dim, d.head_dim),
            false,
        )
    }

    /// The feed-forward ops of an MLP of width `width` over `rows` tokens, `experts` copies.
    fn mlp(&self, s: &mut Sink, part: Part, experts: u64, rows: u64, width: u64) {
        let a = &self.dims;
        let h = a.hidden;
        let (up_width, act_kind, up_name) = if a.mlp.gated {
            (
                2 * width,
                MemoryKind::GatedActivation(a.mlp.activation),
                "gate+up",
            )
        } else {
            (width, MemoryKind::Activation(a.mlp.activation), "up")
        };
        let label = |name| Label {
            part,
            ..Label::new(name)
        };
        s.push(label(up_name), self.matmul(experts, rows, up_width, h));
        s.push(
            label(act_kind.name()),
            self.memory(act_kind, experts * rows, width),
        );
        s.push(label("down"), self.matmul(experts, rows, h, width));
    }

    /// The forward ops of one layer of `kind`.
    fn layer(&self, s: &mut Sink, kind: LayerKind) {
        if kind.block != LayerBlock::Pair {
            return self.single_block_layer(s, kind);
        }
        let a = &self.dims;
        let (h, t) = (a.hidden, self.tokens());
        let rows = self.stream_rows();
        s.push(Label::new("attn-norm"), self.norm());
        self.tp_exchange(s, true);
        match (a.mla, a.linear_attention) {
            (_, Some(l)) if kind.linear => self.linear_attention(s, l),
            (Some(m), _) => self.latent_attention(s, m, kind.window, self.mla_absorbed()),
            _ => self.projected_attention(s, kind.window),
        }
        self.tp_exchange(s, false);
        self.hidden_dropout(s);
        if a.norms_per_layer == 4 {
            s.push(Label::new("post-attn-norm"), self.norm());
        }
        s.push(
            Label::new("residual"),
            self.memory(MemoryKind::ResidualAdd, rows, h),
        );
        s.push(Label::new("mlp-norm"), self.norm());
        self.tp_exchange(s, true);
        match (kind.moe, a.moe) {
            (true, Some(m)) => self.moe(s, m),
            _ => self.mlp(s, Part::Main, 1, t, a.intermediate),
        }
        self.tp_exchange(s, false);
        self.hidden_dropout(s);
        if a.norms_per_layer == 4 {
            s.push(Label::new("post-mlp-norm"), self.norm());
        }
        s.push(
            Label::new("residual"),
            self.memory(MemoryKind::ResidualAdd, rows, h),
        );
    }

    /// A layer of one block with its own norm before it (Nemotron-H): a Mamba-2 mixer, global
    /// attention, or the feed-forward block, then the residual add.
    fn single_block_layer(&self, s: &mut Sink, kind: LayerKind) {
        let a = &self.dims;
        let (h, t) = (a.hidden, self.tokens());
        s.push(Label::new("norm"), self.norm());
        self.tp_exchange(s, true);
        match (kind.block, a.mamba, a.mla, a.moe) {
            (LayerBlock::Mamba, Some(m), _, _) => self.mamba2(s, m),
            (LayerBlock::Attention, _, Some(m), _) => {
                self.latent_attention(s, m, None, self.mla_absorbed())
            }
            (LayerBlock::Attention, _, None, _) => self.projected_attention(s, None),
            (_, _, _, Some(m)) if kind.moe => self.moe(s, m),
            _ => self.mlp(s, Part::Main, 1, t, a.intermediate),
        }
        self.tp_exchange(s, false);
        self.hidden_dropout(s);
        s.push(
            Label::new("residual"),
            self.memory(MemoryKind::ResidualAdd, self.stream_rows(), h),
        );
    }

    /// A Mamba-2 mixer (Dao and Gu 2024, "Transformers are SSMs"): the input projection, the
    /// causal convolution over x, B and C, the scan, the gated RMSNorm (a norm per group) and the
    /// output projection. A decode step updates each head's head_dim × state matrix once
    /// (`ScanState`); a longer pass runs the state space duality's chunked form as batched
    /// matmuls over chunks of `SCAN_CHUNK` tokens, as the Mamba-2 kernels do: C·Bᵀ within each
    /// chunk (per group), its masked scores times x (per head), each chunk's state Bᵀ·x, and the
    /// carried state's contribution C·state.
    fn mamba2(&self, s: &mut Sink, m: Mamba2) {
        let (h, t, p) = (self.dims.hidden, self.tokens(), &self.shape);
        let (inner, state) = (m.inner_width(), m.state_size);
        s.push(Label::new("in-proj"), self.matmul(1, t, m.in_width(), h));
        s.push(
            Label::new("conv"),
            self.memory(MemoryKind::CausalConv(m.conv_kernel), t, m.conv_width()),
        );
        if p.q_len == 1 {
            s.push(
                Label::new("scan"),
                self.memory(MemoryKind::ScanState, p.batch * m.heads, m.head_dim * state),
            );
        } else {
            let c = SCAN_CHUNK.min(p.q_len);
            let chunks = p.batch * p.q_len.div_ceil(c);
            s.push(
                Label::new("ssd-scores"),
                self.matmul(chunks * m.groups, c, c, state),
            );
            let per_head = chunks * m.heads;
            s.push(
                Label::new("ssd-intra"),
                self.matmul(per_head, c, m.head_dim, c),
            );
            s.push(
                Label::new("ssd-state"),
                self.matmul(per_head, state, m.head_dim, c),
            );
            s.push(
                Label::new("ssd-inter"),
                self.matmul(per_head, c, m.head_dim, state),
            );
        }
        s.push(
            Label::new("gated-norm"),
            self.memory(MemoryKind::RmsNorm, t * m.groups, inner / m.groups.max(1)),
        );
        s.push(
            Label::new("output-gate"),
            self.memory(MemoryKind::GatedActivation(Activation::Silu), t, inner),
        );
        s.push(Label::new("out-proj"), self.matmul(1, t, h, inner));
    }

    /// Attention with q/k/v projections: the projections, the per-head q/k norms, rotary
    /// positions, the context-parallel exchange, attention and the output projection.
    fn projected_attention(&self, s: &mut Sink, window: Option<u64>) {
        let a = &self.dims;
        let (h, t) = (a.hidden, self.tokens());
        // An output gate comes out of the query projection beside the queries.
        let q_out = a.q_width() * (1 + u64::from(a.attention_output_gate));
        s.push(
            Label::new("qkv"),
            self.matmul(1, t, q_out + 2 * a.kv_width(), h),
        );
        if a.qk_norm {
            // One RMSNorm per head vector, over head_dim (Qwen3, Gemma 3).
            s.push(
                Label::new("qk-norm"),
                self.memory(MemoryKind::RmsNorm, t * (a.heads + a.kv_heads), a.head_dim),
            );
        }
        if a.rotary {
            s.push(
                Label::new("rotary"),
                self.memory(MemoryKind::Rotary, t, a.q_width() + a.kv_width()),
            );
        }
        self.cp_exchange(s, 2 * a.kv_width());
        s.push(Label::new("attention"), self.attention(window));
        self.attention_dropout(s);
        if a.attention_output_gate {
            // sigmoid(gate) ⊙ output: a gated activation's traffic.
            s.push(
                Label::new("attn-gate"),
                self.memory(
                    MemoryKind::GatedActivation(Activation::Silu),
                    t,
                    a.q_width(),
                ),
            );
        }
        s.push(Label::new("attn-out"), self.matmul(1, t, h, a.q_width()));
    }

    /// Gated DeltaNet linear attention (arXiv:2412.06464) in place of attention: the input
    /// projection, the short causal convolution, the scan, the gated norm and the output
    /// projection. A decode step updates each value head's key × value state once
    /// (`ScanState`); a longer pass runs the chunked scan over chunks of `SCAN_CHUNK` tokens, as
    /// the flash-linear-attention kernels do (`Op::Scan`).
    fn linear_attention(&self, s: &mut Sink, l: LinearAttention) {
        let a = &self.dims;
        let (h, t, p) = (a.hidden, self.tokens(), &self.shape);
        let (heads, dk, dv) = (l.value_heads, l.key_head_dim, l.value_head_dim);
        s.push(Label::new("in-proj"), self.matmul(1, t, l.in_width(), h));
        s.push(
            Label::new("short-conv"),
            self.memory(MemoryKind::CausalConv(l.conv_kernel), t, l.conv_width()),
        );
        if p.q_len == 1 {
            s.push(
                Label::new("scan"),
                self.memory(MemoryKind::ScanState, p.batch * heads, dk * dv),
            );
        } else {
            // The chunked scan, intra- and inter-chunk work together: what the scan kernels
            // compute in one launch (`Scan`, FLOPs of the chunked form).
            s.push(
                Label::new("scan"),
                Op::Scan(Scan {
                    batch: p.batch,
                    heads,
                    seq: p.q_len,
                    key_dim: dk,
                    value_dim: dv,
                    chunk: SCAN_CHUNK.min(p.q_len),
                    dtype: self.act(),
                    pass: Pass::Forward,
                }),
            );
        }
        s.push(
            Label::new("gated-norm"),
            self.memory(MemoryKind::RmsNorm, t * heads, dv),
        );
        s.push(
            Label::new("output-gate"),
            self.memory(
                MemoryKind::GatedActivation(Activation::Silu),
                t,
                l.value_width(),
            ),
        );
        s.push(
            Label::new("out-proj"),
            self.matmul(1, t, h, l.value_width()),
        );
    }

    /// With context parallelism, every rank's `width` cached elements per token pass round the
    /// ring to every other (overlapped with the attention they feed; `price` takes the overlap).
    fn cp_exchange(&self, s: &mut Sink, width: u64) {
        let cp = u64::from(self.shard.cp);
        if cp > 1 {
            s.push(
                Label::new(CP_EXCHANGE),
                self.collective(
                    CollectiveKind::AllGather,
                    cp,
                    self.shard.cp_stride.into(),
                    self.shape.batch * self.shape.q_len * cp * width,
                ),
            );
        }
    }

    /// A fused kernel drops probabilities in registers; an unfused one makes a pass over the
    /// score square.
    fn attention_dropout(&self, s: &mut Sink) {
        if self.shape.dropout && !self.shape.fused {
            let p = &self.shape;
            s.push(
                Label::new("attention-dropout"),
                self.memory(
                    MemoryKind::Dropout,
                    p.batch * self.dims.heads * p.q_len,
                    p.kv_len,
                ),
            );
        }
    }

    /// Whether this pass runs multi-head latent attention absorbed: a decode step (one query per
    /// sequence against a cache of latents) attends over the latents directly, with the key
    /// up-projection folded into the query and the value up-projection applied to the output;
    /// a prefill or training pass decompresses its keys and values and runs ordinary attention.
    /// This is what vLLM and SGLang run (FlashMLA-style decode kernels, MHA for prefill), and it
    /// is the cheaper form by FLOPs: absorbed, each (query, key) pair costs
    /// 2·(2·kv_lora_rank + rope) per head instead of 2·(qk + v), while decompressing would
    /// re-expand every cached latent at each decode step.
    fn mla_absorbed(&self) -> bool {
        self.shape.q_len == 1
    }

    /// Multi-head latent attention (DeepSeek-V2, arXiv:2405.04434, §2.1; absorbed decode as in
    /// its appendix): the query through its latent, the key/value latent with the shared rotary
    /// key (what the cache holds), then attention decompressed or absorbed (`mla_absorbed`).
    /// The down-projections are replicated on tensor-parallel ranks; the per-head
    /// up-projections and the output are split by heads.
    fn latent_attention(&self, s: &mut Sink, m: Mla, window: Option<u64>, absorbed: bool) {
        let a = &self.dims;
        let (h, t, heads) = (a.hidden, self.tokens(), a.heads);
        let q_width = heads * m.qk_head_dim();
        if m.q_lora_rank > 0 {
            s.push(Label::new("q-down"), self.matmul(1, t, m.q_lora_rank, h));
            s.push(
                Label::new("q-latent-norm"),
                self.memory(MemoryKind::RmsNorm, t, m.q_lora_rank),
            );
            s.push(
                Label::new("q-up"),
                self.matmul(1, t, q_width, m.q_lora_rank),
            );
        } else {
            s.push(Label::new("q"), self.matmul(1, t, q_width, h));
        }
        s.push(Label::new("kv-down"), self.matmul(1, t, m.cache_width(), h));
        s.push(
            Label::new("kv-latent-norm"),
            self.memory(MemoryKind::RmsNorm, t, m.kv_lora_rank),
        );
        s.push(
            Label::new("rotary"),
            self.memory(MemoryKind::Rotary, t, (heads + 1) * m.qk_rope_head_dim),
        );
        self.cp_exchange(s, m.cache_width());
        if absorbed {
            // q_nope · W_UK per head: queries in the latent space.
            s.push(
                Label::new("q-absorb"),
                self.matmul(heads, t, m.kv_lora_rank, m.qk_nope_head_dim),
            );
            // One latent key/value "head" shared by every query head, read once: the values
            // are the latent part of the cached keys.
            s.push(
                Label::new("attention"),
                self.attention_over(window, (heads, 1), (m.cache_width(), m.kv_lora_rank), true),
            );
            self.attention_dropout(s);
            // The latent output · W_UV per head.
            s.push(
                Label::new("v-absorb"),
                self.matmul(heads, t, m.v_head_dim, m.kv_lora_rank),
            );
        } else {
            // Keys (without rotary positions) and values of every key this rank's queries see
            // (in a decode step that would be the whole cached context, which is why decode
            // runs absorbed).
            let keys = self.shape.batch * self.shape.kv_len;
            s.push(
                Label::new("kv-up"),
                self.matmul(
                    1,
                    keys,
                    heads * (m.qk_nope_head_dim + m.v_head_dim),
                    m.kv_lora_rank,
                ),
            );
            // Each head's key is its kv-up part followed by the one rotary key the heads share
            // (the concatenation of vLLM's and transformers' MLA prefill): a copy, priced as a
            // gather — each key element read once and written once, no arithmetic.
            s.push(
                Label::new("k-assemble"),
                self.memory(MemoryKind::EmbeddingLookup, keys, heads * m.qk_head_dim()),
            );
            s.push(
                Label::new("attention"),
                self.attention_over(
                    window,
                    (heads, heads),
                    (m.qk_head_dim(), m.v_head_dim),
                    false,
                ),
            );
            self.attention_dropout(s);
        }
        s.push(
            Label::new("attn-out"),
            self.matmul(1, t, h, heads * m.v_head_dim),
        );
    }

    /// Dropout on a sublayer's output before the residual add, in training with dropout.
    fn hidden_dropout(&self, s: &mut Sink) {
        if self.shape.dropout {
            s.push(
                Label::new("dropout"),
                self.memory(MemoryKind::Dropout, self.stream_rows(), self.dims.hidden),
            );
        }
    }

    /// Rows the busiest of `experts` gets when `routed` token copies spread over them.
    fn imbalanced(&self, routed: u64, experts: u64) -> u64 {
        (routed * u64::from(self.shard.imbalance_permille)).div_ceil(1000 * experts)
    }

    /// A mixture-of-experts MLP: the router, each token's copies gathered per expert, the
    /// experts, the shared experts, and the weighted sum back. Routed tokens spread evenly over
    /// the experts they reach (the ideal a load-balancing loss aims for; `--expert-imbalance`
    /// gives the busiest more); few tokens reach few experts, which matters for decode, where the
    /// experts' weights are what is read. With expert parallelism each rank holds its share of
    /// the experts: the gathered copies go out to the ranks holding their experts and come back
    /// (all-to-all dispatch and combine), and with balanced routing a rank receives as many
    /// copies as it sent.
    fn moe(&self, s: &mut Sink, m: Moe) {
        let (h, t) = (self.dims.hidden, self.tokens());
        let (ep, stride) = (u64::from(self.shard.ep), u64::from(self.shard.ep_stride));
        s.push(Label::new("router"), self.matmul(1, t, m.num_experts, h));
        s.push(
            Label::new("router-softmax"),
            self.memory(MemoryKind::Softmax, t, m.num_experts),
        );
        let routed = t * m.top_k;
        let experts = if ep > 1 {
            experts_reached(t * ep, m.top_k, m.num_experts)
                .div_ceil(ep)
                .clamp(1, (m.num_experts / ep).max(1))
        } else {
            experts_reached(t, m.top_k, m.num_experts)
        };
        s.push(
            Label::new("moe-dispatch"),
            self.memory(MemoryKind::EmbeddingLookup, routed, h),
        );
        let all_to_all = |s: &mut Sink, name| {
            if ep > 1 {
                s.push(
                    Label::new(name),
                    self.collective(CollectiveKind::AllToAll, ep, stride, routed * h),
                );
            }
        };
        all_to_all(s, "ep-dispatch");
        self.mlp(
            s,
            Part::Expert,
            experts,
            self.imbalanced(routed, experts),
            m.expert_intermediate_size,
        );
        if m.shared_experts > 0 {
            self.mlp(
                s,
                Part::Shared,
                1,
                t,
                m.shared_experts * m.shared_intermediate_size,
            );
        }
        all_to_all(s, "ep-combine");
        // Weighted sum of each token's expert outputs.
        s.push(
            Label::new("moe-combine"),
            self.memory(MemoryKind::ResidualAdd, routed, h),
        );
    }

    /// Ops before the first layer: token embedding (plus learned positions).
    fn embedding(&self, s: &mut Sink) {
        let (h, t) = (self.dims.hidden, self.tokens());
        s.push(
            Label::new("embedding"),
            self.memory(MemoryKind::EmbeddingLookup, t, h),
        );
        if self.learned_positions {
            s.push(
                Label::new("position-add"),
                self.memory(MemoryKind::ResidualAdd, t, h),
            );
        }
        if self.shard.tp > 1 {
            // A vocabulary-parallel table: each rank looks up the tokens in its rows, and the
            // partial embeddings are summed.
            s.push(
                Label::new(EMBEDDING_EXCHANGE),
                self.collective(CollectiveKind::AllReduce, self.shard.tp.into(), 1, t * h),
            );
        }
    }

    /// Ops after the last layer over `rows` tokens: final norm and the LM head.
    fn head(&self, s: &mut Sink, rows: u64) {
        let h = self.dims.hidden;
        s.push(
            Label::new("final-norm"),
            self.memory(self.norm_kind(), rows, h),
        );
        s.push(Label::new("lm-head"), self.matmul(1, rows, self.vocab, h));
    }

    /// One multi-token-prediction module over the pass's tokens (DeepSeek-V3 technical report,
    /// arXiv:2412.19437, §2.2), `s.count` times: RMSNorms of the hidden state and of the next
    /// token's embedding, the projection of their concatenation (2h → h), one layer, and the
    /// shared head. Its ops run after the model's, on the last pipeline stage.
    fn mtp_module(&self, s: &mut Sink) {
        let (h, t) = (self.dims.hidden, self.tokens());
        let norm = self.memory(self.norm_kind(), self.stream_rows(), h);
        s.push(Label::new("mtp-norms"), norm);
        s.push(Label::new("mtp-norms"), norm);
        s.push(Label::new("mtp-projection"), self.matmul(1, t, h, 2 * h));
        self.layer(s, self.mtp.1);
        self.head(s, t);
    }

    /// One layer of `kind`, `count` times, as a block.
    fn layer_block(
        &self,
        out: &mut Vec<OpInstance>,
        blocks: &mut Vec<Block>,
        phase: Phase,
        kind: LayerKind,
        count: u64,
    ) {
        let start = out.len();
        self.layer(&mut Sink { out, phase, count }, kind);
        blocks.push(Block {
            start,
            end: out.len(),
            key: self.key(kind, phase, false),
        });
    }

    /// Embedding, every layer group, and the head over `head_rows` tokens, in `phase`, with
    /// `sends` hand-overs between pipeline stages.
    fn forward(
        &self,
        out: &mut Vec<OpInstance>,
        blocks: &mut Vec<Block>,
        phase: Phase,
        head_rows: u64,
        (sends, stride): (u64, u64),
    ) {
        let mut once = Sink {
            out,
            phase,
            count: 1,
        };
        self.embedding(&mut once);
        if sends > 0 {
            let rows = self.stream_rows();
            let hand_over =
                self.collective(CollectiveKind::SendRecv, 2, stride, rows * self.dims.hidden);
            Sink {
                out,
                phase,
                count: sends,
            }
            .push(Label::new(PIPELINE_SEND), hand_over);
        }
        for (kind, count) in self.groups {
            self.layer_block(out, blocks, phase, kind, count);
        }
        self.head(
            &mut Sink {
                out,
                phase,
                count: 1,
            },
            head_rows,
        );
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

/// The chunked scan as batched matmuls over its chunks (per chunk of c tokens): q·kᵀ and
/// k_β·kᵀ; the chunk's scores times v_β, k_β and the corrected values; queries and decayed keys
/// against the state carried in; the state carried out, kᵀ·v over the chunk.
pub fn scan_matmuls(s: &Scan) -> [Matmul; 4] {
    let (c, dk, dv) = (s.chunk, s.key_dim, s.value_dim);
    let blocks = s.batch * s.heads * s.seq.div_ceil(c);
    let mm = |batch, m, n, k| Matmul::new(batch, m, n, k, s.dtype);
    [
        mm(blocks, c, c, 2 * dk),
        mm(blocks, c, 2 * dv + dk, c),
        mm(2 * blocks, c, dv, dk),
        mm(blocks, dk, dv, c),
    ]
}

/// The data- and weight-gradient matmuls of a matmul.
fn matmul_backward(mm: Matmul, emit: &mut impl FnMut(Grad, Op)) {
    // dX[m×k] = dY[m×n] · Wᵀ
    emit(
        Grad::Data,
        Op::Matmul(Matmul {
            n: mm.k,
            k: mm.n,
            ..mm
        }),
    );
    // dW[k×n] = Xᵀ · dY
    emit(
        Grad::Weight,
        Op::Matmul(Matmul {
            m: mm.k,
            k: mm.m,
            ..mm
        }),
    );
}

/// The backward of one forward op: the data- and weight-gradient matmuls, or the op's backward
/// kernel.
pub fn backward_of(op: &Op, mut emit: impl FnMut(Grad, Op)) {
    match *op {
        Op::Matmul(mm) => matmul_backward(mm, &mut emit),
        Op::Attention(a) => emit(
            Grad::None,
            Op::Attention(Attention {
                pass: Pass::Backward,
                ..a
            }),
        ),
        Op::Memory(m) => emit(
            Grad::None,
            Op::Memory(MemoryOp {
                pass: Pass::Backward,
                ..m
            }),
        ),
        Op::Collective(c) => emit(Grad::None, Op::Collective(c)),
        // No scan backward kernel is measured yet: priced as the backward (data and "weight"
        // gradients) of the batched matmuls the chunked forward is made of.
        Op::Scan(s) => {
            for mm in scan_matmuls(&s) {
                matmul_backward(mm, &mut emit);
            }
        }
    }
}

/// The ops of one training step: forward, backward, recomputation and the optimizer update.
pub fn training_ops(arch: &Architecture, s: &TrainingSetup) -> Vec<OpInstance> {
    let mut ops = Vec::new();
    training_ops_into(&mut ops, &mut Vec::new(), arch, arch.layer_groups(), s);
    ops
}

fn training_ops_into(
    ops: &mut Vec<OpInstance>,
    blocks: &mut Vec<Block>,
    arch: &Architecture,
    groups: LayerGroups,
    s: &TrainingSetup,
) -> LayerDims {
    let p = &s.parallelism;
    // One microbatch on one rank: its sequences, its share of each sequence.
    let ctx = Ctx::with_groups(
        arch,
        PassShape {
            batch: p.micro_batch_size(s.batch),
            q_len: s.seq / p.cp,
            kv_len: s.seq,
            dtype: s.dtype,
            kv_dtype: attention_dtype(s.dtype),
            fused: s.fused_attention,
            dropout: s.dropout,
        },
        p,
        groups,
    );
    let t = ctx.tokens();
    let sends = u64::from(p.pp > 1);
    ctx.forward(
        ops,
        blocks,
        Phase::Forward,
        t,
        (sends, p.stride(Group::Pipeline)),
    );
    ops.push(OpInstance {
        phase: Phase::Forward,
        label: Label::new("cross-entropy"),
        count: 1,
        op: ctx.memory(MemoryKind::CrossEntropy, t, ctx.vocab),
    });
    // A model with multi-token-prediction modules trains with them: each predicts one more
    // token ahead, with its own loss.
    let (mtp, _) = ctx.mtp;
    if mtp > 0 {
        let mut modules = Sink {
            out: ops,
            phase: Phase::Forward,
            count: mtp,
        };
        ctx.mtp_module(&mut modules);
        modules.push(
            Label::new("mtp-cross-entropy"),
            ctx.memory(MemoryKind::CrossEntropy, t, ctx.vocab),
        );
    }

    // The backward runs the forward in reverse; each forward layer block becomes a backward one.
    let backward_of_op = |ops: &mut Vec<OpInstance>, i: usize| {
        let f = ops[i];
        backward_of(&f.op, |grad, op| {
            ops.push(OpInstance {
                phase: Phase::Backward,
                label: Label { grad, ..f.label },
                count: f.count,
                op,
            })
        });
    };
    let (mut i, mut b) = (ops.len(), blocks.len());
    while i > 0 {
        if b > 0 && blocks[b - 1].end == i {
            let f = blocks[b - 1];
            let start = ops.len();
            for j in (f.start..f.end).rev() {
                backward_of_op(ops, j);
            }
            blocks.push(Block {
                start,
                end: ops.len(),
                key: BlockKey {
                    phase: Phase::Backward,
                    ..f.key
                },
            });
            i = f.start;
            b -= 1;
        } else {
            i -= 1;
            backward_of_op(ops, i);
        }
    }
    // Recomputation: full re-runs every layer's forward; selective re-runs the attention core,
    // which costs extra only when attention is unfused (a fused backward recomputes it anyway).
    let again = match s.recompute {
        Recompute::Full => Some(false),
        Recompute::Selective if !s.fused_attention => Some(true),
        _ => None,
    };
    if let Some(attention_only) = again {
        for (kind, count) in ctx.groups {
            let start = ops.len();
            let mut sink = Sink {
                out: ops,
                phase: Phase::Recompute,
                count,
            };
            ctx.layer(&mut sink, kind);
            if attention_only {
                let mut kept = start;
                for r in start..ops.len() {
                    if matches!(ops[r].op, Op::Attention(_)) {
                        ops[kept] = ops[r];
                        kept += 1;
                    }
                }
                ops.truncate(kept);
            }
            blocks.push(Block {
                start,
                end: ops.len(),
                key: ctx.key(kind, Phase::Recompute, attention_only),
            });
        }
    }
    step_ops(ops, arch, s);
    ctx.dims
}

/// The once-per-step ops of the rank holding the most weights: the optimizer update of its
/// shard, and the data-parallel exchange of gradients and weights.
fn step_ops(ops: &mut Vec<OpInstance>, arch: &Architecture, s: &TrainingSetup) {
    let p = &s.parallelism;
    let working = activation_dtype(s.dtype);
    let held = (0..p.pp)
        .map(|stage| crate::model::parallel::rank_params(arch, p, stage))
        .max()
        .unwrap_or(0);
    let updated = if p.zero == Zero::None {
        held
    } else {
        held.div_ceil(p.dp)
    };
    ops.push(OpInstance {
        phase: Phase::Optimizer,
        label: Label::new("adam"),
        count: 1,
        op: Op::Memory(MemoryOp::new(
            MemoryKind::AdamUpdate,
            Pass::Forward,
            1,
            updated,
            working,
        )),
    });
    if p.dp == 1 {
        return;
    }
    let exchange = |kind| {
        Op::Collective(Collective {
            kind,
            payload_bytes: working.bytes_for(held),
            ranks: p.dp,
            stride: p.stride(Group::Data),
            dtype: working,
        })
    };
    let mut push = |name, count, op| {
        ops.push(OpInstance {
            phase: Phase::DataParallel,
            label: Label::new(name),
            count,
            op,
        })
    };
    let m = p.microbatches(s.batch);
    match p.zero {
        Zero::None => push("dp-grad-all-reduce", 1, exchange(CollectiveKind::AllReduce)),
        Zero::Stage1 | Zero::Stage2 => {
            push(
                "dp-grad-reduce-scatter",
                1,
                exchange(CollectiveKind::ReduceScatter),
            );
            push(
                "dp-weight-all-gather",
                1,
                exchange(CollectiveKind::AllGather),
            );
        }
        Zero::Stage3 => {
            // Weights gathered before each microbatch's forward and again before its backward;
            // gradients scattered after it.
            push(ZERO3_GATHER, 2 * m, exchange(CollectiveKind::AllGather));
            push(ZERO3_SCATTER, m, exchange(CollectiveKind::ReduceScatter));
        }
    }
}

/// The ops of the prefill: the whole prompt through every layer, logits for the last position only
/// (what serving engines compute to sample the first token).
pub fn prefill_ops(arch: &Architecture, s: &InferenceSetup) -> Vec<OpInstance> {
    let mut ops = Vec::new();
    prefill_ops_into(&mut ops, &mut Vec::new(), arch, arch.layer_groups(), s);
    ops
}

fn prefill_ops_into(
    ops: &mut Vec<OpInstance>,
    blocks: &mut Vec<Block>,
    arch: &Architecture,
    groups: LayerGroups,
    s: &InferenceSetup,
) -> LayerDims {
    let ctx = Ctx::with_groups(
        arch,
        PassShape {
            batch: s.batch,
            q_len: s.prompt,
            kv_len: s.prompt,
            dtype: s.dtype,
            kv_dtype: s.kv_dtype,
            fused: s.fused_attention,
            dropout: false,
        },
        &s.parallelism,
        groups,
    );
    ctx.forward(ops, blocks, Phase::Prefill, s.batch, serving_sends(s));
    ctx.dims
}

/// The forward ops of one layer of `kind` over `batch` sequences of `seq` tokens attending to
/// themselves, as a prefill runs it: what a transformer-block runner executes and is predicted by.
pub fn layer_forward_ops(
    arch: &Architecture,
    kind: LayerKind,
    batch: u64,
    seq: u64,
    dtype: DType,
) -> Vec<(String, Op)> {
    let ctx = Ctx::new(
        arch,
        PassShape {
            batch,
            q_len: seq,
            kv_len: seq,
            dtype,
            kv_dtype: attention_dtype(dtype),
            fused: true,
            dropout: false,
        },
        &Parallelism::default(),
    );
    let mut ops = Vec::new();
    ctx.layer(
        &mut Sink {
            out: &mut ops,
            phase: Phase::Prefill,
            count: 1,
        },
        kind,
    );
    ops.into_iter()
        .map(|o| (o.label.to_string(), o.op))
        .collect()
}

/// A served pass crosses every pipeline stage in turn: `pp − 1` hand-overs.
fn serving_sends(s: &InferenceSetup) -> (u64, u64) {
    let p = &s.parallelism;
    (p.pp - 1, p.stride(Group::Pipeline))
}

/// The ops of one decode step: one new token per sequence attending to `context` positions.
pub fn decode_ops(arch: &Architecture, s: &InferenceSetup, context: u64) -> Vec<OpInstance> {
    let mut ops = Vec::new();
    decode_ops_into(
        &mut ops,
        &mut Vec::new(),
        arch,
        arch.layer_groups(),
        s,
        context,
    );
    ops
}

fn decode_ops_into(
    ops: &mut Vec<OpInstance>,
    blocks: &mut Vec<Block>,
    arch: &Architecture,
    groups: LayerGroups,
    s: &InferenceSetup,
    context: u64,
) -> LayerDims {
    let drafts = speculative_drafts(arch, s);
    let shape = |q_len| PassShape {
        batch: s.batch,
        q_len,
        kv_len: context,
        dtype: s.dtype,
        kv_dtype: s.kv_dtype,
        fused: true,
        dropout: false,
    };
    // Speculatively, one step verifies the drafted tokens and the next one together.
    let ctx = Ctx::with_groups(arch, shape(1 + drafts), &s.parallelism, groups);
    ctx.forward(
        ops,
        blocks,
        Phase::Decode,
        s.batch * (1 + drafts),
        serving_sends(s),
    );
    if drafts > 0 {
        // The modules then draft the next tokens, one token per sequence each.
        let drafter = Ctx::with_groups(arch, shape(1), &s.parallelism, groups);
        drafter.mtp_module(&mut Sink {
            out: ops,
            phase: Phase::Decode,
            count: drafts,
        });
    }
    ctx.dims
}

/// Tokens drafted per decode step: one per multi-token-prediction module when decoding
/// speculatively, else none.
pub fn speculative_drafts(arch: &Architecture, s: &InferenceSetup) -> u64 {
    if s.speculative_acceptance.is_some() {
        arch.mtp_layers
    } else {
        0
    }
}

/// The op with its attention context set to `context` (decode steps differ only in that).
pub fn at_context(op: &Op, context: u64) -> Op {
    match *op {
        Op::Attention(a) => Op::Attention(Attention {
            kv_len: context,
            ..a
        }),
        other => other,
    }
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
    use crate::model::arch;
    use crate::model::execution::Parallelism;

    fn setup(seq: u64) -> TrainingSetup {
        TrainingSetup {
            batch: 1,
            seq,
            dtype: DType::Bf16,
            recompute: Recompute::None,
            dropout: false,
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

    /// Dropout adds a pass over the residual stream after each sublayer, and over the score
    /// square only when attention is unfused; the backward mirrors it.
    #[test]
    fn dropout_passes_follow_the_attention_kind() {
        let a = arch::load("gpt2").unwrap();
        let count = |dropout, fused| {
            let s = TrainingSetup {
                dropout,
                fused_attention: fused,
                ..setup(1024)
            };
            let ops = training_ops(&a, &s);
            let of = |name: &str, phase: Phase| {
                ops.iter()
                    .filter(|o| o.label.name == name && o.phase == phase)
                    .map(|o| o.count)
                    .sum::<u64>()
            };
            (
                of("dropout", Phase::Forward),
                of("attention-dropout", Phase::Forward),
                of("dropout", Phase::Backward),
            )
        };
        assert_eq!(count(false, false), (0, 0, 0));
        assert_eq!(count(true, true), (24, 0, 24));
        assert_eq!(count(true, false), (24, 12, 24));
    }

    fn fixture(name: &str) -> Architecture {
        arch::load(&format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// The FLOPs of one layer's ops over a pass of `q_len` queries per sequence against `kv_len`
    /// keys, MLA run absorbed or not.
    fn mla_layer_flops(a: &Architecture, q_len: u64, kv_len: u64, absorbed: bool) -> f64 {
        let ctx = Ctx::new(
            a,
            PassShape {
                batch: 1,
                q_len,
                kv_len,
                dtype: DType::Bf16,
                kv_dtype: DType::Bf16,
                fused: true,
                dropout: false,
            },
            &Parallelism::default(),
        );
        let mut ops = Vec::new();
        let mut sink = Sink {
            out: &mut ops,
            phase: Phase::Prefill,
            count: 1,
        };
        ctx.latent_attention(&mut sink, a.mla.unwrap(), None, absorbed);
        ops.iter().map(|o| o.op.flops()).sum()
    }

    /// Decode runs MLA absorbed and prefill decompressed, and each is the cheaper form there:
    /// decompressing in decode would re-expand every cached latent at each step; absorbing in
    /// prefill costs 2·(2·512 + 64) instead of 2·(192 + 128) FLOPs per head and key.
    #[test]
    fn mla_runs_the_cheaper_form_in_each_pass() {
        let a = fixture("deepseek-v3.json");
        let decode = decode_ops(&a, &serving(), 4096);
        let prefill = prefill_ops(&a, &serving());
        let has = |ops: &[OpInstance], name: &str| ops.iter().any(|o| o.label.name == name);
        assert!(has(&decode, "q-absorb") && !has(&decode, "kv-up"));
        assert!(has(&prefill, "kv-up") && !has(&prefill, "q-absorb"));
        // Prefill assembles each head's key: 1024 tokens × 128 heads × 192, read and written.
        assert!(!has(&decode, "k-assemble"));
        let assemble = prefill
            .iter()
            .find(|o| o.label.name == "k-assemble")
            .unwrap();
        assert_eq!(
            assemble.op.min_bytes(),
            1024.0 * 128.0 * 192.0 * 2.0 * 2.0 + 1024.0 * 4.0
        );
        let attention = |ops: &[OpInstance]| {
            ops.iter()
                .find_map(|o| match o.op {
                    Op::Attention(at) => Some(at),
                    _ => None,
                })
                .unwrap()
        };
        let d = attention(&decode);
        assert_eq!((d.kv_heads, d.qk_head_dim, d.v_head_dim), (1, 576, 512));
        // The latent cache is read once: 4096 keys × 576 bf16 elements, beside q and o.
        let q_and_o = 128.0 * (576.0 + 512.0) * 2.0;
        assert_eq!(d.min_bytes(), 4096.0 * 576.0 * 2.0 + q_and_o);
        let p = attention(&prefill);
        assert_eq!((p.kv_heads, p.qk_head_dim, p.v_head_dim), (128, 192, 128));
        assert!(mla_layer_flops(&a, 1, 4096, true) < mla_layer_flops(&a, 1, 4096, false));
        assert!(mla_layer_flops(&a, 4096, 4096, false) < mla_layer_flops(&a, 4096, 4096, true));
    }

    fn serving() -> InferenceSetup {
        InferenceSetup {
            batch: 1,
            prompt: 1024,
            generate: 16,
            dtype: DType::Bf16,
            kv_dtype: DType::Bf16,
            fused_attention: true,
            parallelism: Parallelism::default(),
            speculative_acceptance: None,
        }
    }

    /// DeepSeek-V3 trains with its multi-token-prediction module: the forward pass gains one
    /// layer of the last layer's kind, the 2h → h projection and the shared head, over every
    /// token.
    #[test]
    fn mtp_modules_train_with_the_model() {
        let with = fixture("deepseek-v3.json");
        let without = Architecture {
            mtp_layers: 0,
            ..with.clone()
        };
        let s = setup(256);
        let forward = |a: &Architecture| -> f64 {
            training_ops(a, &s)
                .iter()
                .filter(|o| o.phase == Phase::Forward)
                .map(|o| o.op.flops() * o.count as f64)
                .sum()
        };
        let (h, v, t) = (with.hidden_size as f64, with.vocab_size as f64, 256.0);
        let layer: f64 =
            layer_forward_ops(&with, with.layer_kind(with.num_layers), 1, 256, DType::Bf16)
                .iter()
                .map(|(_, op)| op.flops())
                .sum();
        let norms = 2.0
            * Op::Memory(MemoryOp::new(
                MemoryKind::RmsNorm,
                Pass::Forward,
                256,
                with.hidden_size,
                DType::Bf16,
            ))
            .flops()
            + Op::Memory(MemoryOp::new(
                MemoryKind::RmsNorm,
                Pass::Forward,
                256,
                with.hidden_size,
                DType::Bf16,
            ))
            .flops()
            + Op::Memory(MemoryOp::new(
                MemoryKind::CrossEntropy,
                Pass::Forward,
                256,
                with.vocab_size,
                DType::Bf16,
            ))
            .flops();
        let expected = layer + 2.0 * t * h * 2.0 * h + 2.0 * t * v * h + norms;
        let extra = forward(&with) - forward(&without);
        assert!(
            (extra / expected - 1.0).abs() < 1e-9,
            "{extra} vs {expected}"
        );
    }

    /// Speculatively, a decode step verifies the drafted token and the next one in one pass,
    /// then the module drafts again over one token per sequence.
    #[test]
    fn speculative_decode_verifies_then_drafts() {
        let a = fixture("deepseek-v3.json");
        let plain = serving();
        let speculative = InferenceSetup {
            speculative_acceptance: Some(0.8),
            ..plain
        };
        let lm_heads = |s: &InferenceSetup| -> Vec<(u64, u64)> {
            decode_ops(&a, s, 1024)
                .iter()
                .filter_map(|o| match o.op {
                    Op::Matmul(m) if o.label.name == "lm-head" => Some((m.m, o.count)),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(lm_heads(&plain), vec![(1, 1)]);
        assert_eq!(lm_heads(&speculative), vec![(2, 1), (1, 1)]);
        assert_eq!(speculative_drafts(&a, &speculative), 1);
        assert_eq!(
            speculative_drafts(&fixture("qwen3-0.6b.json"), &speculative),
            0
        );
    }

    /// Qwen3 normalizes every query and key head over head_dim: 16 + 8 heads of 128 per token.
    #[test]
    fn qk_norm_is_a_memory_bound_op_per_head() {
        let a = fixture("qwen3-0.6b.json");
        let ops = prefill_ops(&a, &serving());
        let norm = ops.iter().find(|o| o.label.name == "qk-norm").unwrap();
        assert_eq!(norm.count, 28);
        match norm.op {
            Op::Memory(m) => assert_eq!((m.rows, m.cols), (1024 * 24, 128)),
            other => panic!("{other:?}"),
        }
    }

    /// Gemma 3 1B's attention: 22 layers within the 512-token window, 4 global.
    #[test]
    fn gemma3_prices_local_layers_with_their_window() {
        let a = fixture("gemma-3-1b.json");
        let ops = prefill_ops(&a, &serving());
        let windows: Vec<(Option<u64>, u64)> = ops
            .iter()
            .filter_map(|o| match o.op {
                Op::Attention(at) => Some((at.window, o.count)),
                _ => None,
            })
            .collect();
        assert_eq!(windows, vec![(Some(512), 22), (None, 4)]);
    }

    /// Qwen3-Next: 36 of 48 layers scan (chunked in the prefill, one state step per decoded
    /// token), 12 attend with an output gate.
    #[test]
    fn linear_attention_layers_scan_instead_of_attending() {
        let a = fixture("qwen3-coder-next.json");
        let count = |ops: &[OpInstance], name: &str| {
            ops.iter()
                .filter(|o| o.label.name == name)
                .map(|o| o.count)
                .sum::<u64>()
        };
        let prefill = prefill_ops(&a, &serving());
        assert_eq!(count(&prefill, "attention"), 12);
        assert_eq!(count(&prefill, "attn-gate"), 12);
        assert_eq!(count(&prefill, "scan"), 36);
        let decode = decode_ops(&a, &serving(), 2048);
        assert_eq!(count(&decode, "scan"), 36);
        // Each value head's 128 × 128 fp32 state, read and written once.
        let scan = decode.iter().find(|o| o.label.name == "scan").unwrap();
        assert_eq!(scan.op.min_bytes(), 32.0 * 128.0 * 128.0 * 8.0);
        assert!(matches!(scan.op, Op::Memory(_)), "{:?}", scan.op);
        // The prefill's chunked scan: 1024 tokens in chunks of 64, 32 value heads of 128 × 128.
        let chunked = prefill.iter().find(|o| o.label.name == "scan").unwrap();
        match chunked.op {
            Op::Scan(s) => {
                assert_eq!((s.batch, s.heads, s.seq, s.chunk), (1, 32, 1024, 64));
                assert_eq!((s.key_dim, s.value_dim), (128, 128));
                // Its backward: the batched matmuls of the chunked form, 16 chunks per head.
                let [scores, ..] = scan_matmuls(&s);
                assert_eq!(
                    (scores.batch, scores.m, scores.n, scores.k),
                    (32 * 16, 64, 64, 256)
                );
            }
            other => panic!("{other:?}"),
        }
    }

    /// Nemotron Nano 9B v2: each layer runs its one block after its own norm. The 27 Mamba-2
    /// layers scan in chunks of 64 in a prefill (C·Bᵀ per group) and update each head's
    /// 80 × 128 fp32 state once in a decode step; the 4 attention layers attend without rotary
    /// positions; the 25 MLP layers run squared ReLU between two projections.
    #[test]
    fn nemotron_h_layers_run_one_block_each() {
        let a = fixture("nemotron-nano-9b-v2.json");
        let count = |ops: &[OpInstance], name: &str| {
            ops.iter()
                .filter(|o| o.label.name == name)
                .map(|o| o.count)
                .sum::<u64>()
        };
        let prefill = prefill_ops(&a, &serving());
        for (name, n) in [
            ("norm", 56),
            ("in-proj", 27),
            ("conv", 27),
            ("ssd-scores", 27),
            ("ssd-intra", 27),
            ("ssd-state", 27),
            ("ssd-inter", 27),
            ("gated-norm", 27),
            ("attention", 4),
            ("rotary", 0),
            ("up", 25),
            ("relu2", 25),
            ("down", 25),
            ("residual", 56),
            ("scan", 0),
        ] {
            assert_eq!(count(&prefill, name), n, "{name}");
        }
        let scores = prefill
            .iter()
            .find(|o| o.label.name == "ssd-scores")
            .unwrap();
        match scores.op {
            Op::Matmul(m) => assert_eq!((m.batch, m.m, m.n, m.k), (8 * 16, 64, 64, 128)),
            other => panic!("{other:?}"),
        }
        let decode = decode_ops(&a, &serving(), 2048);
        assert_eq!(count(&decode, "scan"), 27);
        assert_eq!(count(&decode, "ssd-scores"), 0);
        let scan = decode.iter().find(|o| o.label.name == "scan").unwrap();
        assert_eq!(scan.op.min_bytes(), 128.0 * 80.0 * 128.0 * 8.0);
        // Training runs every block backward.
        let training = training_ops(&a, &setup(256));
        assert!(training.iter().any(|o| o.phase == Phase::Backward));
        assert!(training.iter().all(|o| o.op.flops().is_finite()));
        // Nemotron 3 Nano's E layers route: a router, the experts and the shared expert (an up
        // projection each), and no dense MLP.
        let moe = fixture("nemotron-3-nano-30b-a3b.json");
        let prefill = prefill_ops(&moe, &serving());
        for (name, n) in [
            ("router", 23),
            ("up", 46),
            ("attention", 6),
            ("ssd-scores", 23),
        ] {
            assert_eq!(count(&prefill, name), n, "{name}");
        }
    }

    #[test]
    fn few_tokens_reach_few_experts() {
        assert_eq!(experts_reached(1, 2, 8), 2);
        assert_eq!(experts_reached(4, 2, 8), 6); // 8·(1 − 0.75⁴) = 5.47
        assert_eq!(experts_reached(4096, 2, 8), 8);
    }
}
