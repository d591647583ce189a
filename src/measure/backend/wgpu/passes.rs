//! What the transformer block (`block`) and the recurrent layer (`block_recurrent`) share on
//! wgpu: their buffers, a checked run with every output poisoned first, and timed runs with each
//! dispatch in its own compute pass between timestamps. Each caller only plans its dispatches.

use super::{Stage, WgpuBackend, device_err, to_bytes};
use crate::measure::backend::block::BlockRun;
use crate::measure::backend::{BackendError, Result};
use crate::model::dtype::DType;
use wgpu::util::DeviceExt;

/// What one binding of a dispatch points at.
#[derive(Clone, Copy)]
pub(super) enum Bind {
    /// A buffer of the run: the inputs' first, then the outputs', in order.
    Buffer(usize),
    /// The dispatch's uniforms.
    Params,
}

/// One dispatch: its stage, what bindings 0, 1, … point at, its uniforms, the implementation
/// it reports.
pub(super) struct Dispatch {
    pub(super) stage: Stage,
    pub(super) binds: Vec<Bind>,
    pub(super) params: Vec<u32>,
    pub(super) implementation: String,
}

/// A block's or layer's work: the tensors it reads, the buffers it writes, its dispatches.
pub(super) struct Passes<'a> {
    /// Names the work in buffer labels and errors ("block", "layer").
    pub(super) what: &'static str,
    pub(super) dtype: DType,
    pub(super) inputs: &'a [&'a [f32]],
    /// Each output buffer's label and elements, in order after the inputs' buffers.
    pub(super) outputs: Vec<(&'a str, u64)>,
    pub(super) dispatches: Vec<Dispatch>,
}

impl WgpuBackend {
    /// Refuses work whose largest tensor (of `inputs` and `outputs`, in elements) is more than
    /// the device can bind.
    pub(super) fn check_fits(
        &self,
        what: &str,
        dtype: DType,
        inputs: &[&[f32]],
        outputs: impl IntoIterator<Item = u64>,
    ) -> Result<()> {
        let largest = inputs
            .iter()
            .map(|t| t.len() as u64)
            .chain(outputs)
            .max()
            .unwrap_or(0);
        if !self.fits(dtype.bytes_for(largest)) {
            return Err(BackendError::Unsupported(format!(
                "the {what}'s largest tensor ({} bytes) exceeds what {} can bind ({} bytes): \
                 use fewer tokens or a smaller model",
                dtype.bytes_for(largest),
                self.info.name,
                self.limits.max_storage_buffer_binding_size
            )));
        }
        Ok(())
    }

    /// Runs `p` once with every output poisoned, reading back every output when `read_every`
    /// (else the last), then `runs` more times with timestamps around each dispatch. The run's
    /// output is the last output; the outputs read come back too, in order.
    pub(super) fn run_passes(
        &mut self,
        p: Passes<'_>,
        read_every: bool,
        runs: usize,
    ) -> Result<(BlockRun, Vec<Vec<f32>>)> {
        let Passes {
            what,
            dtype,
            inputs,
            outputs,
            dispatches,
        } = p;
        let mut buffers: Vec<wgpu::Buffer> = inputs.iter().map(|v| self.upload(v, dtype)).collect();
        let mut written: Vec<(usize, u64)> = Vec::new();
        for &(label, elems) in &outputs {
            written.push((buffers.len(), elems));
            buffers.push(self.storage_buffer(
                label,
                dtype.bytes_for(elems),
                wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            ));
        }
        let pipelines = dispatches
            .iter()
            .map(|d| self.pipeline(&d.stage))
            .collect::<Result<Vec<_>>>()?;
        let mut groups = Vec::new();
        for (d, pipeline) in dispatches.iter().zip(&pipelines) {
            let params = self
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("params"),
                    contents: bytemuck::cast_slice(&d.params),
                    usage: wgpu::BufferUsages::UNIFORM,
                });
            let bound: Vec<&wgpu::Buffer> = d
                .binds
                .iter()
                .map(|b| match *b {
                    Bind::Buffer(i) => &buffers[i],
                    Bind::Params => &params,
                })
                .collect();
            groups.push(self.bind_group(pipeline, &bound));
        }
        self.take_error()?;

        // Checked run: every intermediate and the output poisoned first.
        for &(buffer, elems) in &written {
            let poison = to_bytes(&vec![f32::NAN; elems as usize], dtype);
            self.queue.write_buffer(&buffers[buffer], 0, &poison);
        }
        let last = *written
            .last()
            .ok_or_else(|| device_err(format!("empty {what}")))?;
        let read: Vec<(usize, u64)> = if read_every { written } else { vec![last] };
        let staged: Vec<(wgpu::Buffer, u64, u64)> = read
            .iter()
            .map(|&(_, elems)| {
                let bytes = dtype.bytes_for(elems).div_ceil(4) * 4;
                let staging = self.storage_buffer(
                    &format!("{what}-read"),
                    bytes,
                    wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                );
                (staging, bytes, elems)
            })
            .collect();
        let mut encoder = self.encode_passes(&dispatches, &pipelines, &groups, None);
        for (&(buffer, _), (staging, bytes, _)) in read.iter().zip(&staged) {
            encoder.copy_buffer_to_buffer(&buffers[buffer], 0, staging, 0, *bytes);
        }
        self.queue.submit([encoder.finish()]);
        let mut values = Vec::new();
        for (staging, bytes, elems) in &staged {
            let raw = self.read_buffer(staging, *bytes)?;
            values.push(super::from_bytes(&raw, dtype, *elems as usize));
        }
        let output = values.last().cloned().unwrap_or_default();

        // Timed runs: a begin and an end timestamp per dispatch.
        let n = dispatches.len() as u32;
        let mut block_s = Vec::new();
        let mut op_s = Vec::new();
        if self.timestamps.is_some() {
            let set = self.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some(&format!("{what}-timestamps")),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * n,
            });
            let size = 16 * u64::from(n);
            let resolve = self.storage_buffer(
                &format!("{what}-resolve"),
                size,
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            );
            let read = self.storage_buffer(
                &format!("{what}-ticks"),
                size,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            );
            let tick_s = self.info.timer_resolution_ns.unwrap_or(1.0) * 1e-9;
            for _ in 0..runs {
                let mut encoder = self.encode_passes(&dispatches, &pipelines, &groups, Some(&set));
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
                let encoder = self.encode_passes(&dispatches, &pipelines, &groups, None);
                let start = std::time::Instant::now();
                self.queue.submit([encoder.finish()]);
                self.wait()?;
                block_s.push(start.elapsed().as_secs_f64());
            }
        }
        self.take_error()?;
        let run = BlockRun {
            output,
            block_s,
            op_s,
            implementations: dispatches.into_iter().map(|d| d.implementation).collect(),
        };
        Ok((run, values))
    }

    /// Every dispatch in its own compute pass (timestamps at each pass's start and end when
    /// given).
    fn encode_passes(
        &self,
        dispatches: &[Dispatch],
        pipelines: &[wgpu::ComputePipeline],
        groups: &[wgpu::BindGroup],
        timestamps: Option<&wgpu::QuerySet>,
    ) -> wgpu::CommandEncoder {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        for (i, ((d, pipeline), group)) in dispatches.iter().zip(pipelines).zip(groups).enumerate()
        {
            let writes = timestamps.map(|set| wgpu::ComputePassTimestampWrites {
                query_set: set,
                beginning_of_pass_write_index: Some(2 * i as u32),
                end_of_pass_write_index: Some(2 * i as u32 + 1),
            });
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&d.stage.key),
                timestamp_writes: writes,
            });
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, group, &[]);
            let [x, y, z] = d.stage.groups;
            pass.dispatch_workgroups(x, y, z);
        }
        encoder
    }
}
