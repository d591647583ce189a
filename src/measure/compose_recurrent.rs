//! The composition check for the recurrent families: one Gated DeltaNet layer with its MLP
//! (Qwen3-Next) or one Mamba-2 layer (Nemotron-H), built from the architecture and the
//! workload's own layer ops, run on a device, checked against the f64 reference and timed
//! step by step (`compose` does the same for dense layers).

use std::cell::LazyCell;

use crate::measure::backend::block_recurrent::{
    self, GDN_PREP, Mixer, RecurrentInputs, RecurrentShape, SSD_SCAN,
};
use crate::measure::backend::{Backend, BackendError};
use crate::measure::compose::{
    BlockMeasurement, FULL_BLOCK_REFERENCE_MAX_FLOPS, PREFIX, check_and_summarize,
};
use crate::measure::harness::{self, random_tensor, round_to, tolerance};
use crate::model::arch::{Architecture, Block, LayerKind, Norm};
use crate::model::dtype::DType;
use crate::model::ops::{Activation, Op};

/// Whether `arch` has linear-attention or Mamba-2 layers: compose runs one of those.
pub fn applies(arch: &Architecture) -> bool {
    arch.linear_attention.is_some() || arch.mamba.is_some()
}

/// "linear-attention" or "mamba", as the report names the layer.
pub fn layer_name(b: &RecurrentShape) -> &'static str {
    match b.mixer {
        Mixer::GatedDeltaNet(_) => "linear-attention",
        Mixer::Mamba2(_) => "mamba",
    }
}

/// The first of `arch`'s layers whose kind passes `want`.
fn first_kind(arch: &Architecture, want: impl Fn(&LayerKind) -> bool) -> Option<LayerKind> {
    (0..arch.num_layers)
        .map(|i| arch.layer_kind(i))
        .find(|k| want(k))
}

/// The shape of one of `arch`'s linear-attention (or Mamba-2) layers, or why the runner cannot
/// build it: it has kernels for RMSNorm, the causal convolution, the gated delta rule with keys
/// a multiple of 4 wide, Mamba-2's scan with a state a multiple of 4, and a SwiGLU MLP without
/// biases.
pub fn layer_shape(
    arch: &Architecture,
    batch: u64,
    seq: u64,
    dtype: DType,
) -> Result<RecurrentShape, String> {
    let name = &arch.name;
    let (kind, mixer) = match (arch.linear_attention, arch.mamba) {
        (Some(l), _) => (
            first_kind(arch, |k| k.linear && k.block == Block::Pair),
            Mixer::GatedDeltaNet(l),
        ),
        (None, Some(m)) => (
            first_kind(arch, |k| k.block == Block::Mamba),
            Mixer::Mamba2(m),
        ),
        (None, None) => return Err(format!("{name}: no linear-attention or Mamba-2 layers")),
    };
    let kind = kind.ok_or_else(|| {
        format!("{name}: its layer pattern has no linear-attention or Mamba-2 layer")
    })?;
    let need = match mixer {
        _ if arch.norm != Norm::RmsNorm => Some("RMSNorms"),
        Mixer::GatedDeltaNet(_) if kind.moe => Some("a dense MLP after its linear attention"),
        Mixer::GatedDeltaNet(_) if !arch.mlp.gated || arch.mlp.activation != Activation::Silu => {
            Some("a SwiGLU MLP after its linear attention")
        }
        Mixer::GatedDeltaNet(_) if arch.biases != Default::default() => Some("no biases"),
        Mixer::GatedDeltaNet(l) if !l.key_head_dim.is_multiple_of(4) => {
            Some("a key head dim that is a multiple of 4")
        }
        Mixer::Mamba2(m) if m.projection_bias => Some("no biases on the Mamba-2 projections"),
        Mixer::Mamba2(m) if !m.state_size.is_multiple_of(4) => {
            Some("a Mamba-2 state size that is a multiple of 4")
        }
        _ => None,
    };
    if let Some(need) = need {
        return Err(format!("{name}: the block runner needs {need}"));
    }
    if batch == 0 || seq == 0 {
        return Err("batch and tokens must be positive".into());
    }
    let b = RecurrentShape {
        batch,
        seq,
        dtype,
        hidden: arch.hidden_size,
        intermediate: arch.intermediate_size,
        mixer,
        ops: crate::model::plan::layer_forward_ops(arch, kind, batch, seq, dtype),
    };
    b.steps().map_err(|e| format!("{name}: {e}"))?;
    Ok(b)
}

/// Each device step with the plan ops that price it (none for a step the plan does not count).
pub fn priced_steps(b: &RecurrentShape) -> Vec<(String, Vec<Op>)> {
    b.steps()
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            (
                s.name.to_string(),
                s.priced_by.iter().map(|&i| b.ops[i].1).collect(),
            )
        })
        .collect()
}

/// What the layer runs differently from what the plan prices, one line each.
pub fn notes(b: &RecurrentShape) -> Vec<String> {
    // One token per sequence: the plan prices a single state update (`scan-state`).
    let priced_as = if b.seq == 1 {
        "one state update per head (scan-state)"
    } else {
        "the chunked algorithm"
    };
    match b.mixer {
        Mixer::GatedDeltaNet(_) => vec![
            format!(
                "{GDN_PREP} (q and k L2-normalized per head, q scaled by 1/sqrt(key head dim), q, k and v gathered head-major, each value head's decay and write strength from the projection) runs as its own kernel that no plan op prices: its time is in the measured layer, not in the sum of predictions"
            ),
            format!("scan runs the gated delta rule token by token (the recurrent kernel); the plan prices {priced_as}"),
            "the input projection's columns are laid out [q | k | v | z | b | a] (Qwen3-Next groups them per key head: a permutation of the same matmul)".to_string(),
        ],
        Mixer::Mamba2(_) => vec![
            if b.seq == 1 {
                format!(
                    "{SSD_SCAN} runs Mamba-2's scan as one recurrent kernel (step size, decay and the D skip inside it); the plan prices {priced_as}"
                )
            } else {
                format!(
                    "{SSD_SCAN} runs Mamba-2's scan as one recurrent kernel (step size, decay and the D skip inside it), compared with the sum of the plan's four SSD matmuls (ssd-scores, ssd-intra, ssd-state, ssd-inter)"
                )
            },
            "output-gate runs before gated-norm, as Mamba-2's gated RMSNorm gates its input; the plan lists the norm first (the same traffic)".to_string(),
        ],
    }
}

/// Seeded activations in [−1, 1); weights in [−1, 1) scaled by 1/√fan-in and rounded to the
/// dtype; decays between about 0.6 and 1 per step, so the state carries over many tokens.
pub fn inputs(b: &RecurrentShape, seed: u64) -> RecurrentInputs {
    let d = b.dtype;
    let scaled = |n: u64, fan_in: u64, scale_shift: (f32, f32), salt: u64| -> Vec<f32> {
        let scale = scale_shift.0 / (fan_in as f32).sqrt();
        random_tensor(n as usize, d, seed ^ salt)
            .into_iter()
            .map(|v| round_to(d, v * scale + scale_shift.1))
            .collect()
    };
    let weight = |rows: u64, cols: u64, salt: u64| scaled(rows * cols, rows, (1.0, 0.0), salt);
    let (h, ff, t) = (b.hidden, b.intermediate, b.tokens());
    let (cw, k) = (b.conv_width(), b.conv_kernel());
    let heads = b.scan_heads();
    let mut conv = weight(k, cw, 0x1c);
    if b.conv_bias() {
        conv.extend(scaled(cw, 4, (1.0, 0.0), 0x1d));
    }
    // A_log around −2 (A = exp(A_log) about 0.05 to 0.37), dt_bias around −0.5, D in [−1, 1).
    let mut head_params = scaled(heads, 1, (1.0, -2.0), 0x1e);
    head_params.extend(scaled(heads, 1, (0.5, -0.5), 0x1f));
    if let Mixer::Mamba2(_) = b.mixer {
        head_params.extend(scaled(heads, 1, (1.0, 0.0), 0x20));
    }
    let mlp = matches!(b.mixer, Mixer::GatedDeltaNet(_));
    RecurrentInputs {
        x: random_tensor((t * h) as usize, d, seed),
        norm: random_tensor(h as usize, d, seed ^ 0x11),
        in_proj: weight(h, b.in_width(), 0x22),
        conv,
        heads: head_params,
        gated_norm: random_tensor(b.gated_norm_width() as usize, d, seed ^ 0x33),
        out_proj: weight(b.mixer_width(), h, 0x44),
        mlp_norm: if mlp {
            random_tensor(h as usize, d, seed ^ 0x55)
        } else {
            Vec::new()
        },
        gate_up: if mlp {
            weight(h, 2 * ff, 0x66)
        } else {
            Vec::new()
        },
        down: if mlp { weight(ff, h, 0x77) } else { Vec::new() },
    }
}

/// Four times the loosest tolerance of the plan's ops and of Mamba-2's scan (which, like the
/// gated delta rule, keeps its state in fp32 and decays it, so errors add up as a random walk
/// over the tokens and state), as for the dense block.
pub fn tolerance_of(b: &RecurrentShape) -> f64 {
    let scan = match b.mixer {
        Mixer::Mamba2(m) => 2.0 * tolerance(b.dtype, b.seq * m.state_size.max(m.head_dim)),
        Mixer::GatedDeltaNet(_) => 0.0,
    };
    4.0 * b
        .ops
        .iter()
        .map(|(_, op)| harness::op_tolerance(op))
        .fold(tolerance(b.dtype, b.intermediate).max(scan), f64::max)
}

/// Runs `b` on `backend`, checks its output against the f64 reference, and times `runs` runs;
/// the measurement's steps are `b.steps()`.
pub fn measure(
    backend: &mut dyn Backend,
    b: &RecurrentShape,
    runs: usize,
    seed: u64,
) -> Result<BlockMeasurement, BackendError> {
    measure_with(backend, b, runs, seed, FULL_BLOCK_REFERENCE_MAX_FLOPS)
}

/// `measure`, with the whole output checked up to `full_reference_max_flops` and, above it, the
/// first `PREFIX` tokens of the first and the last sequence (exact by causality).
pub fn measure_with(
    backend: &mut dyn Backend,
    b: &RecurrentShape,
    runs: usize,
    seed: u64,
    full_reference_max_flops: f64,
) -> Result<BlockMeasurement, BackendError> {
    let inputs = inputs(b, seed);
    let run = backend.run_recurrent_block(b, &inputs, runs)?;
    let dtype = b.dtype;
    let round = |v: f64| round_to(dtype, v as f32);
    let steps = run.implementations.len();
    // The prefix block is built only when the check samples prefixes.
    let prefix_block = LazyCell::new(|| b.prefix(PREFIX));
    Ok(check_and_summarize(
        run,
        &inputs.x,
        (b.batch, b.seq, b.hidden),
        steps,
        b.flops() <= full_reference_max_flops,
        tolerance_of(b),
        |x, prefix| {
            block_recurrent::reference(if prefix { &prefix_block } else { b }, x, &inputs, &round)
        },
    ))
}
