//! A transformer block — one dense decoder layer of the Llama family (with Qwen3's and Gemma's
//! QK-norm, Gemma's norms after attention and the MLP and its GeGLU, sliding-window layers) — run
//! forward on a device with the real kernels in sequence, to check that what the block takes is
//! the sum of what the cost model predicts for its ops. The op list is the workload's own
//! (`layer_forward_ops`), so the block measured is the block `predict` prices.

use super::cpu::{self, RotaryLayout};
use super::{AttentionLayout, Strided};
use crate::model::arch::Mla;
use crate::model::dtype::DType;
use crate::model::ops::{Activation, Attention, Matmul, MemoryOp, Op};

/// The ops a Llama-style block runs, in order, by the workload's names.
pub const BLOCK_OPS: [&str; 11] = [
    "attn-norm",
    "qkv",
    "rotary",
    "attention",
    "attn-out",
    "residual",
    "mlp-norm",
    "gate+up",
    "gated-silu",
    "down",
    "residual",
];

/// The ops of a block with QK-norm (`qk_norm`), norms after attention and the MLP
/// (`post_norms`) and the MLP's gated activation, in the order the workload lists them.
pub fn block_ops(qk_norm: bool, post_norms: bool, activation: Activation) -> Vec<&'static str> {
    let mut ops = vec!["attn-norm", "qkv"];
    if qk_norm {
        ops.push("qk-norm");
    }
    ops.extend(["rotary", "attention", "attn-out"]);
    if post_norms {
        ops.push("post-attn-norm");
    }
    ops.extend(["residual", "mlp-norm", "gate+up"]);
    ops.push(match activation {
        Activation::Gelu => "gated-gelu",
        _ => "gated-silu",
    });
    ops.push("down");
    if post_norms {
        ops.push("post-mlp-norm");
    }
    ops.push("residual");
    ops
}

/// The shape of a block run: `batch` sequences of `seq` tokens through one dense layer. Built
/// from an architecture by `measure::compose::block_shape`; a backend sees only dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockShape {
    pub batch: u64,
    pub seq: u64,
    pub dtype: DType,
    /// Rotary base (the cost does not depend on it).
    pub theta: f64,
    /// The layer's ops as the workload lists them, in `block_ops` order.
    pub ops: Vec<(String, Op)>,
    pub hidden: u64,
    pub heads: u64,
    pub kv_heads: u64,
    /// Width of each head's attention output (with multi-head latent attention, its v head
    /// dim: its queries and keys are wider, `mla`).
    pub head_dim: u64,
    /// Width of the MLP.
    pub intermediate: u64,
    /// The MLP's gated activation: SiLU (SwiGLU) or GELU (GeGLU).
    pub activation: Activation,
    /// Multi-head latent attention's dimensions, for a DeepSeek-style layer (`block_mla`).
    pub mla: Option<Mla>,
}

impl BlockShape {
    /// The same layer over one sequence of the first `tokens` tokens: by causality, its output
    /// is exactly the first `tokens` rows of any sequence's output here. Every op of a dense
    /// block runs over the tokens (matmul rows, memory-op rows, one attention sequence).
    pub fn prefix(&self, tokens: u64) -> Self {
        let t = tokens.min(self.seq);
        let ops = self
            .ops
            .iter()
            .map(|(name, op)| {
                let op = match *op {
                    Op::Matmul(m) => Op::Matmul(Matmul { m: t, ..m }),
                    // Rows per token: one, or a head's worth for QK-norm.
                    Op::Memory(m) => Op::Memory(MemoryOp {
                        rows: m.rows / self.tokens() * t,
                        ..m
                    }),
                    Op::Attention(a) => Op::Attention(Attention {
                        batch: 1,
                        q_len: t,
                        kv_len: t,
                        ..a
                    }),
                    other => other,
                };
                (name.clone(), op)
            })
            .collect();
        BlockShape {
            batch: 1,
            seq: t,
            ops,
            ..self.clone()
        }
    }

    /// FLOPs of one forward pass of the block.
    pub fn flops(&self) -> f64 {
        self.ops.iter().map(|(_, op)| op.flops()).sum()
    }

    pub fn tokens(&self) -> u64 {
        self.batch * self.seq
    }

    pub fn q_width(&self) -> u64 {
        self.heads * self.head_dim
    }

    pub fn kv_width(&self) -> u64 {
        self.kv_heads * self.head_dim
    }

    /// Columns of the QKV projection's output: Q heads, then K heads, then V heads.
    pub fn qkv_width(&self) -> u64 {
        self.q_width() + 2 * self.kv_width()
    }

    /// The op named `name` (the first, for "residual").
    pub fn op(&self, name: &str) -> Option<&Op> {
        self.ops.iter().find(|(n, _)| n == name).map(|(_, op)| op)
    }

    /// The index of the op named `name` (the first, for "residual").
    fn index(&self, name: &str) -> usize {
        self.ops
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| unreachable!("block_shape checked the op list: no {name}"))
    }

    /// Whether the layer normalizes each query and key head (QK-norm).
    pub fn qk_norm(&self) -> bool {
        self.op("qk-norm").is_some()
    }

    /// Columns of the QK-norm output: the query and key heads, contiguous.
    fn qk_width(&self) -> u64 {
        self.q_width() + self.kv_width()
    }

    pub fn attention(&self) -> Attention {
        match self.op("attention") {
            Some(Op::Attention(a)) => *a,
            _ => unreachable!("block_shape checked the op list"),
        }
    }

    /// Rotary turns the Q and K heads of the QKV output (or of the QK-norm output) into their own
    /// [tokens, q + kv] buffer.
    pub fn rotary_layout(&self) -> RotaryLayout {
        let cols = self.qk_width() as usize;
        let in_row = if self.qk_norm() {
            self.qk_width()
        } else {
            self.qkv_width()
        };
        RotaryLayout {
            cols,
            head_dim: self.head_dim as usize,
            seq_len: self.seq as usize,
            in_row: in_row as usize,
            out_row: cols,
            theta: self.theta,
        }
    }

    /// Attention reads Q and K from the rotary output and V from the QKV output, token-major,
    /// and writes O token-major, ready for the output projection.
    pub fn attention_layout(&self) -> AttentionLayout {
        if self.mla.is_some() {
            return super::block_mla::attention_layout(self);
        }
        let d = self.head_dim;
        let qk_row = self.q_width() + self.kv_width();
        let token_major = |row: u64, offset: u64| Strided {
            batch: self.seq * row,
            head: d,
            row,
            offset,
        };
        AttentionLayout {
            q: token_major(qk_row, 0),
            k: token_major(qk_row, self.q_width()),
            v: token_major(self.qkv_width(), self.q_width() + self.kv_width()),
            o: token_major(self.q_width(), 0),
        }
    }
}

/// Where an operand of a block's op comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    /// One of `BlockInputs::tensors()`.
    Input(usize),
    /// The output of an earlier op (index into `BLOCK_OPS`).
    Op(usize),
}

impl BlockShape {
    /// The operands of each op, in the order its kernel reads them. Each op reads the one
    /// before it; attention reads Q and K from the rotary output and V from the QKV projection,
    /// and the second residual adds the MLP branch to the first residual's output.
    pub fn operands(&self) -> Vec<Vec<Operand>> {
        if self.mla.is_some() {
            return super::block_mla::operands(self);
        }
        use Operand::{Input, Op};
        let (qkv, first_residual) = (self.index("qkv"), self.index("residual"));
        self.ops
            .iter()
            .enumerate()
            .map(|(i, (name, _))| {
                let prev = Op(i.saturating_sub(1));
                match name.as_str() {
                    "attn-norm" => vec![Input(0), Input(1)],
                    "qkv" => vec![prev, Input(2)],
                    "qk-norm" => vec![prev, Input(7)],
                    "attention" => vec![prev, prev, Op(qkv)],
                    "attn-out" => vec![prev, Input(3)],
                    "post-attn-norm" => vec![prev, Input(8)],
                    "residual" if i == first_residual => vec![Input(0), prev],
                    "residual" => vec![Op(first_residual), prev],
                    "mlp-norm" => vec![prev, Input(4)],
                    "gate+up" => vec![prev, Input(5)],
                    "down" => vec![prev, Input(6)],
                    "post-mlp-norm" => vec![prev, Input(9)],
                    // rotary, gated-silu, gated-gelu
                    _ => vec![prev],
                }
            })
            .collect()
    }
}

impl BlockShape {
    /// Elements of op `i`'s output.
    pub fn output_elems(&self, i: usize) -> u64 {
        if self.mla.is_some() && self.ops[i].0 == "rotary" {
            return super::block_mla::rotary_output_elems(self);
        }
        match &self.ops[i].1 {
            Op::Matmul(m) => m.batch * m.m * m.n,
            Op::Attention(_) => self.tokens() * self.q_width(),
            Op::Memory(m) => m.rows * m.cols,
            Op::Collective(_) | Op::Scan(_) => 0,
        }
    }
}

/// A block's input activations and weights (row-major, matmul weights [in, out]).
#[derive(Debug, Clone, PartialEq)]
pub struct BlockInputs {
    pub x: Vec<f32>,
    pub attn_norm: Vec<f32>,
    pub qkv: Vec<f32>,
    pub attn_out: Vec<f32>,
    pub mlp_norm: Vec<f32>,
    pub gate_up: Vec<f32>,
    pub down: Vec<f32>,
    /// QK-norm's weights: the query heads' (head_dim), then the key heads'.
    pub qk_norm: Vec<f32>,
    pub post_attn_norm: Vec<f32>,
    pub post_mlp_norm: Vec<f32>,
    /// Multi-head latent attention's weights, for a DeepSeek-style layer.
    pub mla: Option<super::block_mla::MlaWeights>,
}

impl BlockInputs {
    /// The tensors in `Operand::Input` order (the last three of the first ten read only by the
    /// layers that have those norms; then the latent attention's, where the layer has it).
    pub fn tensors(&self) -> Vec<&[f32]> {
        let dense: [&[f32]; 10] = [
            &self.x,
            &self.attn_norm,
            &self.qkv,
            &self.attn_out,
            &self.mlp_norm,
            &self.gate_up,
            &self.down,
            &self.qk_norm,
            &self.post_attn_norm,
            &self.post_mlp_norm,
        ];
        let latent = self.mla.iter().flat_map(|m| m.tensors());
        dense.into_iter().chain(latent).collect()
    }
}

/// What a device run of a block gives back.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockRun {
    /// The block's output after the first run (poisoned with NaN before it).
    pub output: Vec<f32>,
    /// Per timed run: the whole block, first op's start to last op's end, on the device clock.
    pub block_s: Vec<f64>,
    /// Per timed run, per op: its own time (empty without per-op timestamps).
    pub op_s: Vec<Vec<f64>>,
    /// Per op: the implementation that ran it, "backend:variant".
    pub implementations: Vec<String>,
}

/// Copies `heads` heads of `d` columns, starting at column `offset` of token-major rows
/// `row` apart, into a head-major [batch, heads, seq, d] tensor.
fn gather_heads(x: &[f32], b: &BlockShape, row: u64, offset: u64, heads: u64) -> Vec<f32> {
    let (d, seq) = (b.head_dim, b.seq);
    let mut out = Vec::with_capacity((b.batch * heads * seq * d) as usize);
    for z in 0..b.batch {
        for h in 0..heads {
            for i in 0..seq {
                let start = ((z * seq + i) * row + offset + h * d) as usize;
                out.extend_from_slice(&x[start..start + d as usize]);
            }
        }
    }
    out
}

/// QK-norm in f64: each query and key head of the QKV output normalized with its weight
/// (queries the first head_dim of `w`, keys the second), written [tokens, (q + kv) heads · d].
fn qk_norm(b: &BlockShape, qkv: &[f32], w: &[f32], tokens: usize) -> Vec<f64> {
    let (d, row) = (b.head_dim as usize, b.qkv_width() as usize);
    let heads = (b.heads + b.kv_heads) as usize;
    let mut out = Vec::with_capacity(tokens * heads * d);
    for t in 0..tokens {
        for j in 0..heads {
            let weight = if j < b.heads as usize {
                &w[..d]
            } else {
                &w[d..2 * d]
            };
            out.extend(cpu::rmsnorm(&qkv[t * row + j * d..][..d], weight, d));
        }
    }
    out
}

/// The block's output in f64 for activations `x` (`w.x` for the block's own; fewer rows for a
/// prefix), each op computed exactly from the previous op's output rounded to the dtype
/// (`round`), as the device stores it between kernels.
pub fn reference(
    b: &BlockShape,
    x: &[f32],
    w: &BlockInputs,
    round: &dyn Fn(f64) -> f32,
) -> Vec<f64> {
    if b.mla.is_some() {
        return super::block_mla::reference(b, x, w, round);
    }
    let (t, h, ff) = (b.tokens(), b.hidden, b.intermediate);
    let mm =
        |x: &[f32], w: &[f32], n: u64, k: u64| cpu::matmul(&Matmul::new(1, t, n, k, b.dtype), x, w);
    // Each op's output as the device stores it, in op order.
    let mut outs: Vec<Vec<f32>> = Vec::with_capacity(b.ops.len());
    let mut last = Vec::new();
    let (qkv_at, first_residual) = (b.index("qkv"), b.index("residual"));
    for (i, (name, _)) in b.ops.iter().enumerate() {
        let prev: &[f32] = if i == 0 { x } else { &outs[i - 1] };
        let exact = match name.as_str() {
            "attn-norm" => cpu::rmsnorm(x, &w.attn_norm, h as usize),
            "qkv" => mm(prev, &w.qkv, b.qkv_width(), h),
            "qk-norm" => qk_norm(b, prev, &w.qk_norm, t as usize),
            "rotary" => cpu::rotary(prev, t as usize, &b.rotary_layout()),
            "attention" => attention(b, prev, &outs[qkv_at], round),
            "attn-out" => mm(prev, &w.attn_out, h, b.q_width()),
            "post-attn-norm" => cpu::rmsnorm(prev, &w.post_attn_norm, h as usize),
            "residual" if i == first_residual => cpu::residual_add(x, prev),
            "residual" => cpu::residual_add(&outs[first_residual], prev),
            "mlp-norm" => cpu::rmsnorm(prev, &w.mlp_norm, h as usize),
            "gate+up" => mm(prev, &w.gate_up, 2 * ff, h),
            "gated-silu" => cpu::gated_silu(prev, ff as usize),
            "gated-gelu" => cpu::gated_gelu(prev, ff as usize),
            "down" => mm(prev, &w.down, h, ff),
            "post-mlp-norm" => cpu::rmsnorm(prev, &w.post_mlp_norm, h as usize),
            other => unreachable!("block_shape checked the op list: {other}"),
        };
        outs.push(exact.iter().map(|v| round(*v)).collect());
        last = exact;
    }
    last
}

/// Attention in f64 over Q and K from the rotary output `qk` and V from the QKV output,
/// token-major [tokens, heads · d] out (rounded, as the device stores it between kernels; the
/// caller rounds again, which changes nothing).
fn attention(b: &BlockShape, qk: &[f32], qkv: &[f32], round: &dyn Fn(f64) -> f32) -> Vec<f64> {
    let qk_row = b.qk_width();
    let q = gather_heads(qk, b, qk_row, 0, b.heads);
    let k = gather_heads(qk, b, qk_row, b.q_width(), b.kv_heads);
    let v = gather_heads(qkv, b, b.qkv_width(), qk_row, b.kv_heads);
    let o_head_major = cpu::attention(&b.attention(), &q, &k, &v);
    let (d, seq, heads) = (b.head_dim as usize, b.seq as usize, b.heads as usize);
    let mut o = vec![0.0f64; (b.tokens() * b.q_width()) as usize];
    for (idx, value) in o_head_major.into_iter().enumerate() {
        let (c, rest) = (idx % d, idx / d);
        let (i, rest) = (rest % seq, rest / seq);
        let (head, z) = (rest % heads, rest / heads);
        o[((z * seq + i) * heads + head) * d + c] = f64::from(round(value));
    }
    o
}
