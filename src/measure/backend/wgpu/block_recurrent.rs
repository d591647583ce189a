//! A recurrent layer on wgpu (`block_recurrent::RecurrentShape`): every step dispatched in
//! order — the benchmark's regblock matmuls, RMSNorm, residual and SwiGLU kernels and the gated
//! delta scan, and the layer's own kernels (causal convolution, the Gated DeltaNet's prep,
//! the output gate, Mamba-2's scan and its per-group norm) — each in its own compute pass
//! between timestamps, so one submission gives the layer's time and each step's.

use super::{Stage, WgpuBackend, device_err, split_groups, stages, template, to_bytes};
use crate::measure::backend::block::BlockRun;
use crate::measure::backend::block_recurrent::{
    GDN_PREP, Mixer, RecurrentInputs, RecurrentShape, SSD_SCAN, input,
};
use crate::measure::backend::cpu::{RMSNORM_EPS, scan_output_len};
use crate::measure::backend::{BackendError, Result};
use crate::model::dtype::DType;
use crate::model::ops::{Matmul, Op};
use wgpu::util::DeviceExt;

/// The matmul variant the layer runs, as the dense block does.
const MATMUL_VARIANT: &str = "regblock";

/// A kernel only recurrent layers run: its file and text.
struct LayerKernel {
    file: &'static str,
    text: &'static str,
}

macro_rules! layer_kernel {
    ($file:literal) => {
        LayerKernel {
            file: $file,
            text: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/kernels/wgsl/", $file)),
        }
    };
}

const CAUSAL_CONV: LayerKernel = layer_kernel!("causal_conv1d.wgsl");
const GDN_PREP_KERNEL: LayerKernel = layer_kernel!("gdn_prep.wgsl");
const OUTPUT_GATE: LayerKernel = layer_kernel!("output_gate.wgsl");
const GROUP_RMSNORM: LayerKernel = layer_kernel!("group_rmsnorm.wgsl");
const SSD_SCAN_KERNEL: LayerKernel = layer_kernel!("ssd_scan.wgsl");

/// Every layer kernel, for the validation test.
#[cfg(test)]
const LAYER_KERNELS: [&LayerKernel; 5] = [
    &CAUSAL_CONV,
    &GDN_PREP_KERNEL,
    &OUTPUT_GATE,
    &GROUP_RMSNORM,
    &SSD_SCAN_KERNEL,
];

/// Rows of Mamba-2's state per workgroup of the SSD scan (its `WG`).
const SSD_WG: u64 = 32;

/// The SSD scan's per-token work over the state's N/4 vec4s, written out.
fn ssd_subs(state: u64) -> Vec<(&'static str, String)> {
    let step: String = (0..state / 4)
        .map(|i| {
            format!(
                "                s[{i}] = decay * s[{i}] + dx * bs[row + {i}u];\n                acc += s[{i}] * cs[row + {i}u];\n"
            )
        })
        .collect();
    vec![("SSD_STEP", step), ("N_u", format!("{state}u"))]
}

fn layer_stage(
    k: &LayerKernel,
    dtype: DType,
    subs: &[(&str, String)],
    groups: [u32; 3],
) -> Result<Stage> {
    let values: Vec<&str> = subs
        .iter()
        .filter(|(t, _)| !t.contains("STEP"))
        .map(|(_, v)| v.as_str())
        .collect();
    Ok(Stage {
        key: format!("{}-{dtype}-{}", k.file, values.join("-")),
        source: template(k.text, dtype, subs)?,
        slots: &[],
        groups,
    })
}

/// Workgroups of 256 invocations over `n` items, split over x and y.
fn items(n: u64) -> [u32; 3] {
    let [x, y] = split_groups(n.div_ceil(256).max(1));
    [x, y, 1]
}

/// One workgroup per row, split over x and y.
fn rows(n: u64) -> [u32; 3] {
    let [x, y] = split_groups(n.max(1));
    [x, y, 1]
}

/// One dispatch: its stage, the storage buffers it binds in binding order (inputs, then
/// outputs), its uniforms.
struct Dispatch {
    stage: Stage,
    binds: Vec<usize>,
    params: Vec<u32>,
    implementation: String,
}

/// Where a step's operands live: a layer input, or an output of an earlier step.
#[derive(Clone, Copy)]
enum At {
    Input(usize),
    /// Output `part` of step `step`.
    Step(usize, usize),
}

impl WgpuBackend {
    /// Runs the layer once on `inputs` with every buffer poisoned (output read back), then
    /// `runs` more times with timestamps around each step.
    pub fn recurrent_forward(
        &mut self,
        b: &RecurrentShape,
        inputs: &RecurrentInputs,
        runs: usize,
    ) -> Result<BlockRun> {
        self.run_layer(b, inputs, runs, false).map(|(run, _)| run)
    }

    /// Every step's output after one run with every buffer poisoned (a step's parts
    /// concatenated), in `steps()` order: each kernel checked on its own against
    /// `block_recurrent::reference_steps`.
    pub fn recurrent_step_outputs(
        &mut self,
        b: &RecurrentShape,
        inputs: &RecurrentInputs,
    ) -> Result<Vec<Vec<f32>>> {
        self.run_layer(b, inputs, 0, true).map(|(_, steps)| steps)
    }

    /// The checked run (every step's outputs read back when `every_step`, else the last), then
    /// `runs` timed runs.
    fn run_layer(
        &mut self,
        b: &RecurrentShape,
        inputs: &RecurrentInputs,
        runs: usize,
        every_step: bool,
    ) -> Result<(BlockRun, Vec<Vec<f32>>)> {
        let dtype = b.dtype;
        let steps = b.steps().map_err(BackendError::Unsupported)?;
        let t = b.tokens();
        let (h, ff) = (b.hidden, b.intermediate);
        let eps = (RMSNORM_EPS as f32).to_bits();
        // Each step's output parts (elements), in step order.
        let mut parts: Vec<Vec<u64>> = Vec::new();
        let mut dispatches: Vec<(Dispatch, Vec<At>)> = Vec::new();
        let plan_op = |i: usize| -> Result<Op> {
            steps[i]
                .priced_by
                .first()
                .map(|&j| b.ops[j].1)
                .ok_or_else(|| device_err(format!("{}: no plan op", steps[i].name)))
        };
        let matmul = |n: u64, k: u64| -> Result<(Stage, Vec<u32>, String)> {
            let op = Op::Matmul(Matmul::new(1, t, n, k, dtype));
            let stage = stages(&op, MATMUL_VARIANT)?
                .pop()
                .ok_or_else(|| device_err("no matmul stage"))?;
            Ok((
                stage,
                vec![t as u32, n as u32, k as u32, 1],
                format!("wgpu:{MATMUL_VARIANT}"),
            ))
        };
        let elementwise = |op: Op| -> Result<Stage> {
            stages(&op, "elementwise")?
                .pop()
                .ok_or_else(|| device_err("no memory-bound stage"))
        };
        let residuals: Vec<usize> = (0..steps.len())
            .filter(|&i| steps[i].name == "residual")
            .collect();
        let index = |name: &str| steps.iter().position(|s| s.name == name);
        let at = |name: &str| -> Result<At> {
            index(name)
                .map(|i| At::Step(i, 0))
                .ok_or_else(|| device_err(format!("no step {name}")))
        };
        for (i, step) in steps.iter().enumerate() {
            let prev = At::Step(i.saturating_sub(1), 0);
            let elem = "wgpu:elementwise".to_string();
            let (stage, params, implementation, ins, outs): (_, _, _, Vec<At>, Vec<u64>) =
                match step.name {
                    "attn-norm" | "norm" | "mlp-norm" => {
                        let (x, w) = if step.name == "mlp-norm" {
                            (At::Step(residuals[0], 0), At::Input(input::MLP_NORM))
                        } else {
                            (At::Input(input::X), At::Input(input::NORM))
                        };
                        let stage = elementwise(plan_op(i)?)?;
                        (
                            stage,
                            vec![t as u32, h as u32, eps, 0],
                            elem,
                            vec![x, w],
                            vec![t * h],
                        )
                    }
                    "in-proj" => {
                        let (s, p, m) = matmul(b.in_width(), h)?;
                        (
                            s,
                            p,
                            m,
                            vec![prev, At::Input(input::IN_PROJ)],
                            vec![t * b.in_width()],
                        )
                    }
                    "short-conv" | "conv" => {
                        let stage =
                            layer_stage(&CAUSAL_CONV, dtype, &[], items(t * b.conv_width()))?;
                        let params = vec![
                            t as u32,
                            b.seq as u32,
                            b.conv_width() as u32,
                            b.conv_kernel() as u32,
                            b.in_width() as u32,
                            b.conv_offset() as u32,
                            u32::from(b.conv_bias()),
                            0,
                        ];
                        (
                            stage,
                            params,
                            elem,
                            vec![prev, At::Input(input::CONV)],
                            vec![t * b.conv_width()],
                        )
                    }
                    GDN_PREP => {
                        let Mixer::GatedDeltaNet(l) = b.mixer else {
                            return Err(device_err("prep step on a Mamba-2 layer"));
                        };
                        let stage =
                            layer_stage(&GDN_PREP_KERNEL, dtype, &[], rows(t * l.value_heads))?;
                        let params = vec![
                            t as u32,
                            b.seq as u32,
                            l.key_heads as u32,
                            l.value_heads as u32,
                            l.key_head_dim as u32,
                            l.value_head_dim as u32,
                            l.conv_width() as u32,
                            l.in_width() as u32,
                            (l.conv_width() + l.value_width()) as u32,
                            (crate::measure::backend::block_recurrent::L2NORM_EPS as f32).to_bits(),
                            0,
                            0,
                        ];
                        (
                            stage,
                            params,
                            elem,
                            vec![prev, at("in-proj")?, At::Input(input::HEADS)],
                            b.prep_parts().to_vec(),
                        )
                    }
                    "scan" => {
                        let scan = b
                            .scan()
                            .ok_or_else(|| device_err("scan step on a Mamba-2 layer"))?;
                        let stage = stages(&Op::Scan(scan), "recurrent")?
                            .pop()
                            .ok_or_else(|| device_err("no scan stage"))?;
                        let p = i - 1;
                        (
                            stage,
                            vec![
                                (scan.batch * scan.heads) as u32,
                                scan.seq as u32,
                                scan.value_dim as u32,
                                0,
                            ],
                            "wgpu:recurrent".to_string(),
                            (0..5).map(|part| At::Step(p, part)).collect(),
                            vec![scan_output_len(&scan) as u64],
                        )
                    }
                    SSD_SCAN => {
                        let Mixer::Mamba2(m) = b.mixer else {
                            return Err(device_err("SSD step on a Gated DeltaNet layer"));
                        };
                        let groups = [
                            m.head_dim.div_ceil(SSD_WG) as u32,
                            (b.batch * m.heads) as u32,
                            1,
                        ];
                        let stage =
                            layer_stage(&SSD_SCAN_KERNEL, dtype, &ssd_subs(m.state_size), groups)?;
                        let params = vec![
                            m.heads as u32,
                            b.seq as u32,
                            m.head_dim as u32,
                            m.groups as u32,
                            m.conv_width() as u32,
                            m.in_width() as u32,
                            (m.inner_width() + m.conv_width()) as u32,
                            0,
                        ];
                        (
                            stage,
                            params,
                            "wgpu:ssd-recurrent".to_string(),
                            vec![prev, at("in-proj")?, At::Input(input::HEADS)],
                            vec![t * m.inner_width()],
                        )
                    }
                    "gated-norm" => match b.mixer {
                        Mixer::GatedDeltaNet(l) => (
                            elementwise(plan_op(i)?)?,
                            vec![(t * l.value_heads) as u32, l.value_head_dim as u32, eps, 0],
                            elem,
                            vec![prev, At::Input(input::GATED_NORM)],
                            vec![t * l.value_width()],
                        ),
                        Mixer::Mamba2(m) => {
                            let rows_n = t * m.groups;
                            (
                                layer_stage(&GROUP_RMSNORM, dtype, &[], rows(rows_n))?,
                                vec![
                                    rows_n as u32,
                                    (m.inner_width() / m.groups) as u32,
                                    eps,
                                    m.groups as u32,
                                ],
                                elem,
                                vec![prev, At::Input(input::GATED_NORM)],
                                vec![t * m.inner_width()],
                            )
                        }
                    },
                    "output-gate" => {
                        let w = b.mixer_width();
                        let head_major = matches!(b.mixer, Mixer::GatedDeltaNet(_));
                        let params = vec![
                            t as u32,
                            w as u32,
                            b.seq as u32,
                            b.scan_heads() as u32,
                            u32::from(head_major),
                            b.in_width() as u32,
                            b.gate_offset() as u32,
                            0,
                        ];
                        (
                            layer_stage(&OUTPUT_GATE, dtype, &[], items(t * w))?,
                            params,
                            elem,
                            vec![prev, at("in-proj")?],
                            vec![t * w],
                        )
                    }
                    "out-proj" => {
                        let (s, p, m) = matmul(h, b.mixer_width())?;
                        (s, p, m, vec![prev, At::Input(input::OUT_PROJ)], vec![t * h])
                    }
                    "residual" => {
                        let base = if i == residuals[0] {
                            At::Input(input::X)
                        } else {
                            At::Step(residuals[0], 0)
                        };
                        (
                            elementwise(plan_op(i)?)?,
                            vec![(t * h) as u32, 0, 0, 0],
                            elem,
                            vec![base, prev],
                            vec![t * h],
                        )
                    }
                    "gate+up" => {
                        let (s, p, m) = matmul(2 * ff, h)?;
                        (
                            s,
                            p,
                            m,
                            vec![prev, At::Input(input::GATE_UP)],
                            vec![t * 2 * ff],
                        )
                    }
                    "gated-silu" => (
                        elementwise(plan_op(i)?)?,
                        vec![t as u32, ff as u32, 0, 0],
                        elem,
                        vec![prev],
                        vec![t * ff],
                    ),
                    "down" => {
                        let (s, p, m) = matmul(h, ff)?;
                        (s, p, m, vec![prev, At::Input(input::DOWN)], vec![t * h])
                    }
                    other => {
                        return Err(BackendError::Unsupported(format!(
                            "recurrent layer runner: no kernel for {other}"
                        )));
                    }
                };
            parts.push(outs);
            dispatches.push((
                Dispatch {
                    stage,
                    binds: Vec::new(),
                    params,
                    implementation,
                },
                ins,
            ));
        }

        let largest = inputs
            .tensors()
            .iter()
            .map(|t| t.len() as u64)
            .chain(parts.iter().flatten().copied())
            .max()
            .unwrap_or(0);
        if !self.fits(dtype.bytes_for(largest)) {
            return Err(BackendError::Unsupported(format!(
                "the layer's largest tensor ({} bytes) exceeds what {} can bind ({} bytes): \
                 use fewer tokens or a smaller model",
                dtype.bytes_for(largest),
                self.info.name,
                self.limits.max_storage_buffer_binding_size
            )));
        }
        // The inputs' buffers first, then each step's outputs, in step order.
        let mut buffers: Vec<wgpu::Buffer> = inputs
            .tensors()
            .iter()
            .map(|v| self.upload(v, dtype))
            .collect();
        let mut first_output = Vec::new();
        let mut outputs: Vec<(usize, u64)> = Vec::new();
        for (step, outs) in steps.iter().zip(&parts) {
            first_output.push(buffers.len());
            for &elems in outs {
                outputs.push((buffers.len(), elems));
                buffers.push(self.storage_buffer(
                    step.name,
                    dtype.bytes_for(elems),
                    wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                ));
            }
        }
        for (i, (d, ins)) in dispatches.iter_mut().enumerate() {
            let buffer_of = |a: &At| match *a {
                At::Input(j) => j,
                At::Step(s, part) => first_output[s] + part,
            };
            d.binds = ins.iter().map(buffer_of).collect();
            d.binds
                .extend((0..parts[i].len()).map(|part| first_output[i] + part));
        }
        let dispatches: Vec<Dispatch> = dispatches.into_iter().map(|(d, _)| d).collect();
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
            let mut bound: Vec<&wgpu::Buffer> = d.binds.iter().map(|&i| &buffers[i]).collect();
            bound.push(&params);
            groups.push(self.bind_group(pipeline, &bound));
        }
        self.take_error()?;

        // Checked run: every intermediate and the output poisoned first.
        for &(buffer, elems) in &outputs {
            let poison = to_bytes(&vec![f32::NAN; elems as usize], dtype);
            self.queue.write_buffer(&buffers[buffer], 0, &poison);
        }
        let last = *outputs.last().ok_or_else(|| device_err("empty layer"))?;
        let read: Vec<(usize, u64)> = if every_step {
            outputs.clone()
        } else {
            vec![last]
        };
        let staged: Vec<(wgpu::Buffer, u64, u64)> = read
            .iter()
            .map(|&(_, elems)| {
                let bytes = dtype.bytes_for(elems).div_ceil(4) * 4;
                let staging = self.storage_buffer(
                    "layer-read",
                    bytes,
                    wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                );
                (staging, bytes, elems)
            })
            .collect();
        let mut encoder = self.encode_layer(&dispatches, &pipelines, &groups, None);
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
        // Each step's parts, concatenated.
        let mut per_step = Vec::new();
        if every_step {
            let mut parts_read = values.into_iter();
            for outs in &parts {
                per_step.push(parts_read.by_ref().take(outs.len()).flatten().collect());
            }
        }

        // Timed runs: a begin and an end timestamp per step.
        let n = dispatches.len() as u32;
        let mut block_s = Vec::new();
        let mut op_s = Vec::new();
        if self.timestamps.is_some() {
            let set = self.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("layer-timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * n,
            });
            let size = 16 * u64::from(n);
            let resolve = self.storage_buffer(
                "layer-resolve",
                size,
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            );
            let read = self.storage_buffer(
                "layer-ticks",
                size,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            );
            let tick_s = self.info.timer_resolution_ns.unwrap_or(1.0) * 1e-9;
            for _ in 0..runs {
                let mut encoder = self.encode_layer(&dispatches, &pipelines, &groups, Some(&set));
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
                let encoder = self.encode_layer(&dispatches, &pipelines, &groups, None);
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
        Ok((run, per_step))
    }

    /// Every dispatch in its own compute pass (timestamps at each pass's start and end when
    /// given).
    fn encode_layer(
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The layer kernels template (the SSD scan at two state sizes) and validate with naga in
    /// both dtypes.
    #[test]
    fn layer_kernels_template_and_validate_with_naga() {
        for k in LAYER_KERNELS {
            for dtype in [DType::Fp32, DType::Fp16] {
                for state in [4, 64] {
                    let src = template(k.text, dtype, &ssd_subs(state)).unwrap();
                    assert!(!src.contains("ELEM"), "{}", k.file);
                    assert!(
                        !src.contains("_u;") && !src.contains("SSD_STEP"),
                        "{}",
                        k.file
                    );
                    let module = naga::front::wgsl::parse_str(&src)
                        .unwrap_or_else(|e| panic!("{}: {}", k.file, e.emit_to_string(&src)));
                    naga::valid::Validator::new(
                        naga::valid::ValidationFlags::all(),
                        naga::valid::Capabilities::all(),
                    )
                    .validate(&module)
                    .unwrap_or_else(|e| panic!("{} {dtype}: {e:?}", k.file));
                }
            }
        }
    }
}
