//! A recurrent layer on wgpu (`block_recurrent::RecurrentShape`): every step dispatched in
//! order — the benchmark's regblock matmuls, RMSNorm, residual and SwiGLU kernels and the gated
//! delta scan, and the layer's own kernels (causal convolution, the Gated DeltaNet's prep,
//! the output gate, Mamba-2's scan and its per-group norm) — each in its own compute pass
//! between timestamps, so one submission gives the layer's time and each step's.

use super::passes::{Bind, Dispatch, Passes};
use super::{Stage, WgpuBackend, device_err, split_groups, stages, template};
use crate::measure::backend::block::BlockRun;
use crate::measure::backend::block_recurrent::{
    GDN_PREP, Mixer, RecurrentInputs, RecurrentShape, SSD_SCAN, input,
};
use crate::measure::backend::cpu::{RMSNORM_EPS, scan_output_len};
use crate::measure::backend::{BackendError, Result};
use crate::model::dtype::DType;
use crate::model::ops::{Matmul, Op};

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

        let tensors = inputs.tensors();
        self.check_fits("layer", dtype, &tensors, parts.iter().flatten().copied())?;
        // The inputs' buffers first, then each step's outputs, in step order.
        let mut first_output = Vec::new();
        let mut outputs = Vec::new();
        for (step, outs) in steps.iter().zip(&parts) {
            first_output.push(tensors.len() + outputs.len());
            outputs.extend(outs.iter().map(|&elems| (step.name, elems)));
        }
        for (i, (d, ins)) in dispatches.iter_mut().enumerate() {
            let buffer_of = |a: &At| match *a {
                At::Input(j) => j,
                At::Step(s, part) => first_output[s] + part,
            };
            // Its inputs, then its outputs, then its uniforms.
            d.binds = ins
                .iter()
                .map(buffer_of)
                .chain((0..parts[i].len()).map(|part| first_output[i] + part))
                .map(Bind::Buffer)
                .chain([Bind::Params])
                .collect();
        }
        let dispatches = dispatches.into_iter().map(|(d, _)| d).collect();
        let passes = Passes {
            what: "layer",
            dtype,
            inputs: &tensors,
            outputs,
            dispatches,
        };
        let (run, values) = self.run_passes(passes, every_step, runs)?;
        // Each step's parts, concatenated.
        let mut per_step = Vec::new();
        if every_step {
            let mut parts_read = values.into_iter();
            for outs in &parts {
                per_step.push(parts_read.by_ref().take(outs.len()).flatten().collect());
            }
        }
        Ok((run, per_step))
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
