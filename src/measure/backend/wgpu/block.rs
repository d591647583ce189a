//! The transformer block on wgpu: every op of `BlockShape` dispatched in order through the same
//! kernels the benchmark measures (regblock matmuls, fused attention on strided views, the
//! memory-bound kernels), each in its own compute pass between timestamps, so one submission
//! gives the whole block's time and each op's.

use super::{
    Slot, Stage, WgpuBackend, attention_params, device_err, memory_params, split_groups, stages,
    template, to_bytes,
};
use crate::measure::backend::block::{BlockInputs, BlockRun, BlockShape, Operand};
use crate::measure::backend::{BackendError, Result};
use crate::model::ops::Op;
use wgpu::util::DeviceExt;

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

/// One dispatch of the block: its stage, the buffers its inputs and output bind, its uniforms.
struct Step {
    stage: Stage,
    inputs: Vec<usize>,
    output: usize,
    params: Vec<u32>,
    implementation: String,
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
        let largest = inputs
            .tensors()
            .iter()
            .map(|t| t.len() as u64)
            .chain((0..block.ops.len()).map(|i| block.output_elems(i)))
            .max()
            .unwrap_or(0);
        if !self.fits(dtype.bytes_for(largest)) {
            return Err(BackendError::Unsupported(format!(
                "the block's largest tensor ({} bytes) exceeds what {} can bind ({} bytes): \
                 use fewer tokens or a smaller model",
                dtype.bytes_for(largest),
                self.info.name,
                self.limits.max_storage_buffer_binding_size
            )));
        }
        // The inputs' buffers first, then each op's output, in op order.
        let mut buffers: Vec<wgpu::Buffer> = inputs
            .tensors()
            .iter()
            .map(|v| self.upload(v, dtype))
            .collect();
        let inputs_len = buffers.len();
        let buffer_of = |o: &Operand| match *o {
            Operand::Input(i) => i,
            Operand::Op(j) => inputs_len + j,
        };
        let mut steps = Vec::new();
        let mut outputs: Vec<(usize, u64)> = Vec::new();
        for (i, ((name, op), operands)) in block.ops.iter().zip(block.operands()).enumerate() {
            let out_elems = block.output_elems(i);
            let out = buffers.len();
            buffers.push(self.storage_buffer(
                name,
                dtype.bytes_for(out_elems),
                wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            ));
            outputs.push((out, out_elems));
            let ins: Vec<usize> = operands.iter().map(buffer_of).collect();
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
            steps.push(Step {
                stage,
                inputs: ins,
                output: out,
                params,
                implementation,
            });
        }
        let pipelines = steps
            .iter()
            .map(|s| self.pipeline(&s.stage))
            .collect::<Result<Vec<_>>>()?;
        let mut groups = Vec::new();
        for (step, pipeline) in steps.iter().zip(&pipelines) {
            let params = self
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("params"),
                    contents: bytemuck::cast_slice(&step.params),
                    usage: wgpu::BufferUsages::UNIFORM,
                });
            let mut ins = step.inputs.iter();
            let mut bound = Vec::new();
            for slot in step.stage.slots {
                bound.push(match slot {
                    Slot::Input(_) => ins
                        .next()
                        .and_then(|&i| buffers.get(i))
                        .ok_or_else(|| device_err(format!("{}: missing input", step.stage.key)))?,
                    Slot::Output => &buffers[step.output],
                    Slot::Params => &params,
                    Slot::Scratch => return Err(device_err("block steps use no scratch")),
                });
            }
            groups.push(self.bind_group(pipeline, &bound));
        }
        self.take_error()?;

        // Checked run: every intermediate and the output poisoned first.
        for &(buffer, elems) in &outputs {
            let poison = to_bytes(&vec![f32::NAN; elems as usize], dtype);
            self.queue.write_buffer(&buffers[buffer], 0, &poison);
        }
        let (last, last_elems) = *outputs.last().ok_or_else(|| device_err("empty block"))?;
        let out_bytes = dtype.bytes_for(last_elems).div_ceil(4) * 4;
        let staging = self.storage_buffer(
            "block-read",
            out_bytes,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        let mut encoder = self.encode_block(&steps, &pipelines, &groups, None);
        encoder.copy_buffer_to_buffer(&buffers[last], 0, &staging, 0, out_bytes);
        self.queue.submit([encoder.finish()]);
        let bytes = self.read_buffer(&staging, out_bytes)?;
        let output = super::from_bytes(&bytes, dtype, last_elems as usize);

        // Timed runs: a begin and an end timestamp per op.
        let n = steps.len() as u32;
        let mut block_s = Vec::new();
        let mut op_s = Vec::new();
        if self.timestamps.is_some() {
            let set = self.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("block-timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * n,
            });
            let size = 16 * u64::from(n);
            let resolve = self.storage_buffer(
                "block-resolve",
                size,
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            );
            let read = self.storage_buffer(
                "block-ticks",
                size,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            );
            let tick_s = self.info.timer_resolution_ns.unwrap_or(1.0) * 1e-9;
            for _ in 0..runs {
                let mut encoder = self.encode_block(&steps, &pipelines, &groups, Some(&set));
                encoder.resolve_query_set(&set, 0..2 * n, &resolve, 0);
                encoder.copy_buffer_to_buffer(&resolve, 0, &read, 0, size);
                self.queue.submit([encoder.finish()]);
                let bytes = self.read_buffer(&read, size)?;
                let ticks: Vec<u64> = bytes
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect();
                let span = |a: u64, b: u64| b.saturating_sub(a) as f64 * tick_s;
                block_s.push(span(ticks[0], ticks[2 * n as usize - 1]));
                op_s.push(ticks.chunks_exact(2).map(|p| span(p[0], p[1])).collect());
            }
        } else {
            for _ in 0..runs {
                let encoder = self.encode_block(&steps, &pipelines, &groups, None);
                let start = std::time::Instant::now();
                self.queue.submit([encoder.finish()]);
                self.wait()?;
                block_s.push(start.elapsed().as_secs_f64());
            }
        }
        self.take_error()?;
        Ok(BlockRun {
            output,
            block_s,
            op_s,
            implementations: steps.into_iter().map(|s| s.implementation).collect(),
        })
    }

    /// Every step in its own compute pass (timestamps at each pass's start and end when given).
    fn encode_block(
        &self,
        steps: &[Step],
        pipelines: &[wgpu::ComputePipeline],
        groups: &[wgpu::BindGroup],
        timestamps: Option<&wgpu::QuerySet>,
    ) -> wgpu::CommandEncoder {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        for (i, ((step, pipeline), group)) in steps.iter().zip(pipelines).zip(groups).enumerate() {
            let writes = timestamps.map(|set| wgpu::ComputePassTimestampWrites {
                query_set: set,
                beginning_of_pass_write_index: Some(2 * i as u32),
                end_of_pass_write_index: Some(2 * i as u32 + 1),
            });
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&step.stage.key),
                timestamp_writes: writes,
            });
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, group, &[]);
            let [x, y, z] = step.stage.groups;
            pass.dispatch_workgroups(x, y, z);
        }
        encoder
    }
}
