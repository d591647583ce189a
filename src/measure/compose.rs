//! The composition check: a transformer block built from an architecture (the workload's own
//! layer ops), measured with seeded inputs and weights, checked against the f64 reference, with
//! the statistics of the whole block's and each op's time.

use std::cell::LazyCell;

use crate::measure::backend::block::{self, BlockInputs, BlockRun, BlockShape};
use crate::measure::backend::block_mla;
use crate::measure::backend::{Backend, BackendError};
use crate::measure::harness::stats::Summary;
use crate::measure::harness::{self, Correctness, compare, random_tensor, round_to, tolerance};
use crate::model::arch::{Architecture, LayerKind, Norm, Positions};
use crate::model::dtype::DType;
use crate::model::ops::Activation;

/// Which of a model's layers the block runs: a global (full-attention) one, or a local
/// (sliding-window) one of a local/global pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layer {
    #[default]
    Global,
    Local,
}

/// The block of `arch`'s dense global layers (see `block_shape_of`).
pub fn block_shape(
    arch: &Architecture,
    batch: u64,
    seq: u64,
    dtype: DType,
) -> Result<BlockShape, String> {
    block_shape_of(arch, Layer::Global, batch, seq, dtype)
}

/// The block of one of `arch`'s dense layers, or why the runner cannot build it: it has kernels
/// for RMSNorm (QK-norm and Gemma's norms after attention and the MLP included), rotary
/// positions, attention with a sliding window, multi-head latent attention's prefill
/// (`block_mla`), SwiGLU and GeGLU, and no biases.
pub fn block_shape_of(
    arch: &Architecture,
    layer: Layer,
    batch: u64,
    seq: u64,
    dtype: DType,
) -> Result<BlockShape, String> {
    let why = if arch.linear_attention.is_some() {
        Some("no kernel for its linear-attention (Gated DeltaNet) layers")
    } else if arch.attention_output_gate {
        Some("no kernel for its attention output gate")
    } else {
        None
    };
    if let Some(why) = why {
        return Err(format!("{}: the block runner has {why}", arch.name));
    }
    let why = if arch.norm != Norm::RmsNorm || !matches!(arch.norms_per_layer, 2 | 4) {
        Some("two or four RMSNorms per layer")
    } else if arch.positions != Positions::Rotary {
        Some("rotary positions")
    } else if !arch.mlp.gated || !matches!(arch.mlp.activation, Activation::Silu | Activation::Gelu)
    {
        Some("a SwiGLU or GeGLU MLP")
    } else if arch.biases != Default::default() {
        Some("no biases")
    } else if !arch.head_dim.is_multiple_of(4) {
        Some("a head dim that is a multiple of 4")
    } else if let Some(m) = arch.mla
        && (!m.v_head_dim.is_multiple_of(4) || !m.qk_rope_head_dim.is_multiple_of(2))
    {
        Some("a v head dim that is a multiple of 4 and an even rotary head dim")
    } else {
        None
    };
    if let Some(need) = why {
        return Err(format!("{}: the block runner needs {need}", arch.name));
    }
    if batch == 0 || seq == 0 {
        return Err("batch and tokens must be positive".into());
    }
    let window = match layer {
        Layer::Global => None,
        Layer::Local => Some(
            (0..arch.num_layers)
                .find_map(|i| arch.layer_kind(i).window)
                .ok_or_else(|| {
                    format!(
                        "{}: --layer local: it has no sliding-window layers",
                        arch.name
                    )
                })?,
        ),
    };
    let kind = LayerKind {
        window,
        ..LayerKind::default()
    };
    let ops = crate::model::plan::layer_forward_ops(arch, kind, batch, seq, dtype);
    let names: Vec<&str> = ops.iter().map(|(n, _)| n.as_str()).collect();
    let expected = match arch.mla {
        Some(m) => block_mla::block_ops(m.q_lora_rank > 0, arch.mlp.activation),
        None => block::block_ops(
            names.contains(&"qk-norm"),
            names.contains(&"post-attn-norm"),
            arch.mlp.activation,
        ),
    };
    if names != expected {
        return Err(format!(
            "{}: its layer runs {} — the block runner runs {}",
            arch.name,
            names.join(", "),
            expected.join(", ")
        ));
    }
    Ok(BlockShape {
        batch,
        seq,
        dtype,
        theta: 10000.0,
        ops,
        hidden: arch.hidden_size,
        heads: arch.num_heads,
        kv_heads: arch.num_kv_heads,
        // With latent attention, what each head's attention writes (see `BlockShape`).
        head_dim: arch.mla.map_or(arch.head_dim, |m| m.v_head_dim),
        intermediate: arch.intermediate_size,
        activation: arch.mlp.activation,
        mla: arch.mla,
    })
}

/// What the block runs differently from the model, one line each: attention sinks run (and are
/// priced) as plain attention.
pub fn notes(arch: &Architecture) -> Vec<String> {
    let mut notes = Vec::new();
    if arch.attention_sinks {
        notes.push(
            "attention sinks run as plain attention, as the cost model prices them (the sink logit's softmax column is neither run nor counted)".to_string(),
        );
    }
    notes
}

/// Seeded activations in [−1, 1); weights in [−1, 1) scaled by 1/√fan-in (so activations keep
/// their size through the layer, as a trained model's do) and rounded to the dtype.
pub fn inputs(b: &BlockShape, seed: u64) -> BlockInputs {
    let d = b.dtype;
    let weight = |rows: u64, cols: u64, salt: u64| -> Vec<f32> {
        let scale = 1.0 / (rows as f32).sqrt();
        random_tensor((rows * cols) as usize, d, seed ^ salt)
            .into_iter()
            .map(|v| round_to(d, v * scale))
            .collect()
    };
    let (h, ff) = (b.hidden, b.intermediate);
    BlockInputs {
        x: random_tensor((b.tokens() * h) as usize, d, seed),
        attn_norm: random_tensor(h as usize, d, seed ^ 0x11),
        // A latent-attention layer has no QKV projection: its own weights are in `mla`.
        qkv: if b.mla.is_some() {
            Vec::new()
        } else {
            weight(h, b.qkv_width(), 0x22)
        },
        attn_out: weight(b.q_width(), h, 0x33),
        mlp_norm: random_tensor(h as usize, d, seed ^ 0x44),
        gate_up: weight(h, 2 * ff, 0x55),
        down: weight(ff, h, 0x66),
        qk_norm: random_tensor(2 * b.head_dim as usize, d, seed ^ 0x77),
        post_attn_norm: random_tensor(h as usize, d, seed ^ 0x88),
        post_mlp_norm: random_tensor(h as usize, d, seed ^ 0x99),
        mla: b.mla.map(|m| block_mla::weights(b, &m, seed)),
    }
}

/// Four times the loosest op's tolerance: the reference rounds between ops where the device
/// does, so only rounding-boundary flips and accumulation order differ, and the norms keep them
/// from growing through the layer.
pub fn tolerance_of(b: &BlockShape) -> f64 {
    4.0 * b
        .ops
        .iter()
        .map(|(_, op)| harness::op_tolerance(op))
        .fold(tolerance(b.dtype, b.intermediate), f64::max)
}

/// Tokens per checked sequence when a block is too large for a full f64 reference.
pub const PREFIX: u64 = 16;

/// A checked, and if correct timed, block.
#[derive(Debug, Clone)]
pub struct BlockMeasurement {
    pub correctness: Correctness,
    /// The whole block per run (None when it failed the check).
    pub block: Option<Summary>,
    /// Each op's time per run, summarised (empty without per-op timestamps).
    pub ops: Vec<Summary>,
    pub implementations: Vec<String>,
}

/// Blocks above this many FLOPs are checked on prefixes (see `measure_with`).
pub const FULL_BLOCK_REFERENCE_MAX_FLOPS: f64 = 2e9;

/// Runs `b` on `backend`, checks its output against the f64 reference, and times `runs` runs.
pub fn measure(
    backend: &mut dyn Backend,
    b: &BlockShape,
    runs: usize,
    seed: u64,
) -> Result<BlockMeasurement, BackendError> {
    measure_with(backend, b, runs, seed, FULL_BLOCK_REFERENCE_MAX_FLOPS)
}

/// `measure`, with the whole output checked up to `full_reference_max_flops` and, above it, the
/// first `PREFIX` tokens of the first and the last sequence.
pub fn measure_with(
    backend: &mut dyn Backend,
    b: &BlockShape,
    runs: usize,
    seed: u64,
    full_reference_max_flops: f64,
) -> Result<BlockMeasurement, BackendError> {
    let inputs = inputs(b, seed);
    let run = backend.run_block(b, &inputs, runs)?;
    let dtype: DType = b.dtype;
    let round = |v: f64| round_to(dtype, v as f32);
    // The prefix block is built only when the check samples prefixes.
    let prefix_block = LazyCell::new(|| b.prefix(PREFIX));
    Ok(check_and_summarize(
        run,
        &inputs.x,
        (b.batch, b.seq, b.hidden),
        b.ops.len(),
        b.flops() <= full_reference_max_flops,
        tolerance_of(b),
        |x, prefix| block::reference(if prefix { &prefix_block } else { b }, x, &inputs, &round),
    ))
}

/// Checks a block's device run against the f64 reference and, if it passes, summarises the
/// time of the whole block and of each of its first `steps` steps. `reference(x, prefix)` is the
/// output for activations `x` of the whole block, or with `prefix` of the one-sequence block of
/// the first `PREFIX` tokens. With `full_reference` the whole output is compared; otherwise the
/// first `PREFIX` tokens of the first and the last sequence, which causality lets the prefix
/// block compute exactly, while the whole output is still scanned for NaN.
pub(crate) fn check_and_summarize(
    run: BlockRun,
    x: &[f32],
    (batch, seq, hidden): (u64, u64, u64),
    steps: usize,
    full_reference: bool,
    tolerance: f64,
    reference: impl Fn(&[f32], bool) -> Vec<f64>,
) -> BlockMeasurement {
    let correctness = if full_reference {
        compare(&run.output, &reference(x, false), tolerance)
    } else {
        // The prefix block's tokens: one sequence of at most PREFIX.
        let (rows, h) = (PREFIX.min(seq) as usize, hidden as usize);
        let mut indices = Vec::new();
        let mut values = Vec::new();
        for z in [0, batch - 1] {
            let start = (z * seq) as usize * h;
            indices.extend(start..start + rows * h);
            values.extend(reference(&x[start..start + rows * h], true));
            if batch == 1 {
                break;
            }
        }
        let expected = harness::Expected::Sampled {
            len: run.output.len(),
            indices,
            values,
        };
        harness::check(&run.output, &expected, tolerance)
    };
    let ok = correctness.pass;
    let ops = if ok && !run.op_s.is_empty() {
        (0..steps)
            .filter_map(|i| {
                let column: Vec<f64> = run.op_s.iter().map(|r| r[i]).collect();
                Summary::of(&column)
            })
            .collect()
    } else {
        Vec::new()
    };
    BlockMeasurement {
        block: if ok { Summary::of(&run.block_s) } else { None },
        correctness,
        ops,
        implementations: run.implementations,
    }
}
