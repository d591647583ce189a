//! The transformer block on wgpu: every op of `BlockShape` dispatched in order through the same
//! kernels the benchmark measures (regblock matmuls, fused attention on strided views, the
//! memory-bound kernels), each in its own compute pass between timestamps, so one submission
//! gives the whole block's time and each op's.

use super::passes::{Bind, Dispatch, Passes};
use super::{
    Slot, Stage, WgpuBackend, attention_params, device_err, memory_params, split_groups, stages,
    template,
};
use crate::measure::backend::block::{BlockInputs, BlockRun, BlockShape, Operand};
use crate::measure::backend::{BackendError, Result};
use crate::model::ops::Op;

mod mla;

/// The matmul variant a block runs: the fastest WGSL matmul past tiny shapes.
const MATMUL_VARIANT: &str = "regblock";

/// A kernel only blocks run: its file and text.
struct BlockKernel {
    file: &'static str,
    text: &'static str,
    slots: &'static [Slot],
}

const QK_NORM: BlockKernel = BlockKernel {
    file: "qk_norm.wgsl",
    text: include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/kernels/wgsl/qk_norm.wgsl"
    )),
    slots: &[Slot::Input(0), Slot::Input(1), Slot::Output, Slot::Params],
};

const GATED_GELU: BlockKernel = BlockKernel {
    file: "gated_gelu.wgsl",
    text: include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/kernels/wgsl/gated_gelu.wgsl"
    )),
    slots: &[Slot::Input(0), Slot::Output, Slot::Params],
};

/// The stage of a block kernel over `[workgroups, 1]` (one per row) or `[items, 256]` (items
/// over workgroups of 256), split over x and y as every kernel's dispatch is.
fn block_stage(k: BlockKernel, dtype: crate::model::dtype::DType, work: [u64; 2]) -> Result<Stage> {
    let [x, y] = split_groups(work[0].div_ceil(work[1]).max(1));
    Ok(Stage {
        key: format!("{}-{dtype}", k.file),
        source: template(k.text, dtype, &[])?,
        slots: k.slots,
        groups: [x, y, 1],
    })
}

impl WgpuBackend {
    /// Runs `block` once on `inputs` with every buffer poisoned (output read back), then
    /// `runs` more times with timestamps around each op.
    pub fn block_forward(
        &mut self,
        block: &BlockShape,
        inputs: &BlockInputs,
        runs: usize,
    ) -> Result<BlockRun> {
        let dtype = block.dtype;
        let tensors = inputs.tensors();
        self.check_fits(
            "block",
            dtype,
            &tensors,
            (0..block.ops.len()).map(|i| block.output_elems(i)),
        )?;
        // The inputs' buffers first, then each op's output, in op order.
        let inputs_len = tensors.len();
        let buffer_count = inputs_len + block.ops.len();
        let buffer_of = |o: &Operand| match *o {
            Operand::Input(i) => i,
            Operand::Op(j) => inputs_len + j,
        };
        let mut steps = Vec::new();
        let mut outputs = Vec::new();
        for (i, ((name, op), operands)) in block.ops.iter().zip(block.operands()).enumerate() {
            let out = inputs_len + i;
            outputs.push((name.as_str(), block.output_elems(i)));
            let (stage, params, implementation) = match op {
                // Multi-head latent attention's own memory-bound ops (`mla`).
                Op::Memory(m) if block.mla.is_some() && mla::runs(name) => {
                    mla::step(block, name, m)?
                }
                Op::Matmul(mm) => {
                    let stage = stages(op, MATMUL_VARIANT)?
                        .pop()
                        .ok_or_else(|| device_err("no matmul stage"))?;
                    let params = vec![mm.m as u32, mm.n as u32, mm.k as u32, mm.batch as u32];
                    (stage, params, format!("wgpu:{MATMUL_VARIANT}"))
                }
                Op::Attention(a) => {
                    let stage = stages(op, "fused")?
                        .pop()
                        .ok_or_else(|| device_err("no fused attention stage"))?;
                    let params = attention_params(a, &block.attention_layout());
                    (stage, params, "wgpu:fused".to_string())
                }
                // QK-norm reads its heads in place and GeGLU has no benchmarked kernel yet: both
                // run block kernels of the elementwise family.
                Op::Memory(m) if name == "qk-norm" => (
                    block_stage(QK_NORM, dtype, [m.rows, 1])?,
                    vec![
                        m.rows as u32,
                        block.head_dim as u32,
                        (block.heads + block.kv_heads) as u32,
                        block.heads as u32,
                        block.qkv_width() as u32,
                        (crate::measure::backend::cpu::RMSNORM_EPS as f32).to_bits(),
                        0,
                        0,
                    ],
                    "wgpu:elementwise".to_string(),
                ),
                Op::Memory(m) if name == "gated-gelu" => (
                    block_stage(GATED_GELU, dtype, [m.rows * m.cols, 256])?,
                    vec![m.rows as u32, m.cols as u32, 0, 0],
                    "wgpu:elementwise".to_string(),
                ),
                Op::Memory(m) => (
                    stages(op, "elementwise")?
                        .pop()
                        .ok_or_else(|| device_err("no memory-bound stage"))?,
                    memory_params(m, &block.rotary_layout()),
                    "wgpu:elementwise".to_string(),
                ),
                other => {
                    return Err(BackendError::Unsupported(format!(
                        "block runner: no kernel for {other}"
                    )));
                }
            };
            // Each binding where the stage's slots put it: the operands in order, the output,
            // the uniforms.
            let mut ins = operands.iter().map(buffer_of);
            let mut binds = Vec::new();
            for slot in stage.slots {
                binds.push(match slot {
                    Slot::Input(_) => ins
                        .next()
                        .filter(|&i| i < buffer_count)
                        .map(Bind::Buffer)
                        .ok_or_else(|| device_err(format!("{}: missing input", stage.key)))?,
                    Slot::Output => Bind::Buffer(out),
                    Slot::Params => Bind::Params,
                    Slot::Scratch => return Err(device_err("block steps use no scratch")),
                });
            }
            steps.push(Dispatch {
                stage,
                binds,
                params,
                implementation,
            });
        }
        let passes = Passes {
            what: "block",
            dtype,
            inputs: &tensors,
            outputs,
            dispatches: steps,
        };
        self.run_passes(passes, false, runs).map(|(run, _)| run)
    }
}
