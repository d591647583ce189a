//! A transformer block — one dense, Llama-style decoder layer — run forward on a device with the
//! real kernels in sequence, to check that what the block takes is the sum of what the cost
//! model predicts for its ops. The op list is the workload's own (`layer_forward_ops`), so the
//! block measured is the block `predict` prices.

use super::cpu::{self, RotaryLayout};
use super::{AttentionLayout, Strided};
use crate::model::dtype::DType;
use crate::model::ops::{Attention, Matmul, MemoryOp, Op};

/// The ops a block runs, in order, by the workload's names.
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

/// The shape of a block run: `batch` sequences of `seq` tokens through one dense layer. Built
/// from an architecture by `measure::compose::block_shape`; a backend sees only dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockShape {
    pub batch: u64,
    pub seq: u64,
    pub dtype: DType,
    /// Rotary base (the cost does not depend on it).
    pub theta: f64,
    /// The layer's ops as the workload lists them, in `BLOCK_OPS` order.
    pub ops: Vec<(String, Op)>,
    pub hidden: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    /// Width of the MLP.
    pub intermediate: u64,
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
                    Op::Memory(m) => Op::Memory(MemoryOp { rows: t, ..m }),
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

    pub fn attention(&self) -> Attention {
        match self.op("attention") {
            Some(Op::Attention(a)) => *a,
            _ => unreachable!("block_shape checked the op list"),
        }
    }

    /// Rotary turns the Q and K heads of the QKV output into their own [tokens, q + kv] buffer.
    pub fn rotary_layout(&self) -> RotaryLayout {
        let cols = (self.q_width() + self.kv_width()) as usize;
        RotaryLayout {
            cols,
            head_dim: self.head_dim as usize,
            seq_len: self.seq as usize,
            in_row: self.qkv_width() as usize,
            out_row: cols,
            theta: self.theta,
        }
    }

    /// Attention reads Q and K from the rotary output and V from the QKV output, token-major,
    /// and writes O token-major, ready for the output projection.
    pub fn attention_layout(&self) -> AttentionLayout {
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

/// The operands of each op of `BLOCK_OPS`, in the order its kernel reads them (attention: Q, K,
/// V — Q and K from the rotary output, V from the QKV projection).
pub fn operands() -> [Vec<Operand>; 11] {
    use Operand::{Input, Op};
    [
        vec![Input(0), Input(1)],  // attn-norm(x, w)
        vec![Op(0), Input(2)],     // qkv
        vec![Op(1)],               // rotary
        vec![Op(2), Op(2), Op(1)], // attention
        vec![Op(3), Input(3)],     // attn-out
        vec![Input(0), Op(4)],     // residual: x + attention branch
        vec![Op(5), Input(4)],     // mlp-norm
        vec![Op(6), Input(5)],     // gate+up
        vec![Op(7)],               // gated-silu
        vec![Op(8), Input(6)],     // down
        vec![Op(5), Op(9)],        // residual: + MLP branch
    ]
}

impl BlockShape {
    /// Elements of op `i`'s output.
    pub fn output_elems(&self, i: usize) -> u64 {
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
}

impl BlockInputs {
    /// The tensors in `Operand::Input` order.
    pub fn tensors(&self) -> [&[f32]; 7] {
        [
            &self.x,
            &self.attn_norm,
            &self.qkv,
            &self.attn_out,
            &self.mlp_norm,
            &self.gate_up,
            &self.down,
        ]
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

/// The block's output in f64 for activations `x` (`w.x` for the block's own; fewer rows for a
/// prefix), each op computed exactly from the previous op's output rounded to the dtype
/// (`round`), as the device stores it between kernels.
pub fn reference(
    b: &BlockShape,
    x: &[f32],
    w: &BlockInputs,
    round: &dyn Fn(f64) -> f32,
) -> Vec<f64> {
    let r = |v: Vec<f64>| -> Vec<f32> { v.into_iter().map(round).collect() };
    let (t, h, ff) = (b.tokens(), b.hidden, b.intermediate);
    let mm =
        |x: &[f32], w: &[f32], n: u64, k: u64| cpu::matmul(&Matmul::new(1, t, n, k, b.dtype), x, w);
    let h1 = r(cpu::rmsnorm(x, &w.attn_norm, h as usize));
    let qkv = r(mm(&h1, &w.qkv, b.qkv_width(), h));
    let qk = r(cpu::rotary(&qkv, t as usize, &b.rotary_layout()));
    let qk_row = b.q_width() + b.kv_width();
    let q = gather_heads(&qk, b, qk_row, 0, b.heads);
    let k = gather_heads(&qk, b, qk_row, b.q_width(), b.kv_heads);
    let v = gather_heads(&qkv, b, b.qkv_width(), qk_row, b.kv_heads);
    let o_head_major = cpu::attention(&b.attention(), &q, &k, &v);
    // Back to token-major [tokens, heads · d].
    let d = b.head_dim as usize;
    let mut o = vec![0.0f32; (t * b.q_width()) as usize];
    for (idx, value) in o_head_major.into_iter().enumerate() {
        let (c, rest) = (idx % d, idx / d);
        let (i, rest) = (rest % b.seq as usize, rest / b.seq as usize);
        let (head, z) = (rest % b.heads as usize, rest / b.heads as usize);
        o[((z * b.seq as usize + i) * b.heads as usize + head) * d + c] = round(value);
    }
    let a = r(mm(&o, &w.attn_out, h, b.q_width()));
    let x2 = r(cpu::residual_add(x, &a));
    let h2 = r(cpu::rmsnorm(&x2, &w.mlp_norm, h as usize));
    let gu = r(mm(&h2, &w.gate_up, 2 * ff, h));
    let act = r(cpu::gated_silu(&gu, ff as usize));
    let dn = r(mm(&act, &w.down, h, ff));
    cpu::residual_add(&x2, &dn)
}
