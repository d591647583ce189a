//! Measuring a transformer block: seeded inputs and weights, the f64 reference check, and the
//! statistics of the whole block's and each op's time.

use super::stats::Summary;
use super::{Correctness, compare, random_tensor, round_to, tolerance};
use crate::backend::block::{self, BlockInputs, BlockShape};
use crate::backend::{Backend, BackendError};
use crate::dtype::DType;

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
        qkv: weight(h, b.qkv_width(), 0x22),
        attn_out: weight(b.q_width(), h, 0x33),
        mlp_norm: random_tensor(h as usize, d, seed ^ 0x44),
        gate_up: weight(h, 2 * ff, 0x55),
        down: weight(ff, h, 0x66),
    }
}

/// Each op's own tolerance, summed over the layer (errors add up through it), doubled.
pub fn tolerance_of(b: &BlockShape) -> f64 {
    2.0 * b
        .ops
        .iter()
        .map(|(_, op)| super::op_tolerance(op))
        .sum::<f64>()
        + tolerance(b.dtype, b.intermediate)
}

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

/// Runs `b` on `backend`, checks its output against the f64 reference, and times `runs` runs.
pub fn measure(
    backend: &mut dyn Backend,
    b: &BlockShape,
    runs: usize,
    seed: u64,
) -> Result<BlockMeasurement, BackendError> {
    let inputs = inputs(b, seed);
    let run = backend.run_block(b, &inputs, runs)?;
    let dtype: DType = b.dtype;
    let reference = block::reference(b, &inputs, &|v| round_to(dtype, v as f32));
    let correctness = compare(&run.output, &reference, tolerance_of(b));
    let ok = correctness.pass;
    let ops = if ok && !run.op_s.is_empty() {
        (0..b.ops.len())
            .filter_map(|i| {
                let column: Vec<f64> = run.op_s.iter().map(|r| r[i]).collect();
                Summary::of(&column)
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(BlockMeasurement {
        block: if ok { Summary::of(&run.block_s) } else { None },
        correctness,
        ops,
        implementations: run.implementations,
    })
}
