//! The composition check for the recurrent families: a Gated DeltaNet layer with its MLP
//! (Qwen3-Next) and a Mamba-2 layer (Nemotron-H) on a real wgpu adapter (lavapipe in CI), each
//! kernel and the whole layer checked against the f64 reference.

use crate::common::{self, gpucost, path, run_json};
use gpucost::measure::backend::block_recurrent::{
    self, GDN_PREP, RecurrentInputs, RecurrentShape, SSD_SCAN,
};
use gpucost::measure::{compose_recurrent, harness};
use gpucost::model::arch::{Architecture, LinearAttention, Mamba2};
use gpucost::model::dtype::DType;

fn example(file: &str) -> Architecture {
    gpucost::model::arch::load(&path(&format!("examples/compose/{file}"))).unwrap()
}

fn shape(arch: &Architecture, batch: u64, tokens: u64, dtype: DType) -> RecurrentShape {
    compose_recurrent::layer_shape(arch, batch, tokens, dtype).unwrap()
}

fn step_names(b: &RecurrentShape) -> Vec<String> {
    compose_recurrent::priced_steps(b)
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

/// The layers are the workloads' own: every op `layer_forward_ops` lists prices exactly one
/// step, the Gated DeltaNet's prep is priced by none and Mamba-2's scan by the four SSD
/// matmuls; the published configs build where the runner has their kernels, and the rest is
/// refused naming why.
pub fn recurrent_layers_are_the_workloads_layers() {
    let gdn = shape(&example("qwen3-next-layer.toml"), 1, 8, DType::Fp32);
    assert_eq!(compose_recurrent::layer_name(&gdn), "linear-attention");
    assert_eq!(
        step_names(&gdn),
        [
            "attn-norm",
            "in-proj",
            "short-conv",
            GDN_PREP,
            "scan",
            "gated-norm",
            "output-gate",
            "out-proj",
            "residual",
            "mlp-norm",
            "gate+up",
            "gated-silu",
            "down",
            "residual"
        ]
    );
    let mamba = shape(&example("nemotron-h-layer.toml"), 1, 8, DType::Fp32);
    assert_eq!(compose_recurrent::layer_name(&mamba), "mamba");
    assert_eq!(
        step_names(&mamba),
        [
            "norm",
            "in-proj",
            "conv",
            SSD_SCAN,
            "output-gate",
            "gated-norm",
            "out-proj",
            "residual"
        ]
    );
    for b in [&gdn, &mamba] {
        let steps = b.steps().unwrap();
        let mut priced: Vec<usize> = steps.iter().flat_map(|s| s.priced_by.clone()).collect();
        priced.sort_unstable();
        assert_eq!(priced, (0..b.ops.len()).collect::<Vec<_>>());
    }
    let prices = |b: &RecurrentShape, name: &str| -> Vec<String> {
        let steps = b.steps().unwrap();
        let s = steps.iter().find(|s| s.name == name).unwrap();
        s.priced_by.iter().map(|&i| b.ops[i].0.clone()).collect()
    };
    assert!(prices(&gdn, GDN_PREP).is_empty());
    assert_eq!(
        prices(&mamba, SSD_SCAN),
        ["ssd-scores", "ssd-intra", "ssd-state", "ssd-inter"]
    );
    // Notes say what the plan does not price.
    assert!(compose_recurrent::notes(&gdn)[0].contains("no plan op prices"));
    assert!(compose_recurrent::notes(&mamba)[0].contains("four SSD matmuls"));

    let fixture =
        |f: &str| gpucost::model::arch::load(&path(&format!("tests/fixtures/{f}"))).unwrap();
    let nemotron = shape(&fixture("nemotron-nano-9b-v2.json"), 1, 8, DType::Fp32);
    assert_eq!(nemotron.conv_width(), 128 * 80 + 2 * 8 * 128);
    let e = compose_recurrent::layer_shape(&fixture("qwen3-coder-next.json"), 1, 8, DType::Fp32)
        .unwrap_err();
    assert!(e.contains("a dense MLP after its linear attention"), "{e}");
    let mut odd = example("nemotron-h-layer.toml");
    odd.mamba = odd.mamba.map(|m| Mamba2 {
        state_size: 18,
        ..m
    });
    let e = compose_recurrent::layer_shape(&odd, 1, 8, DType::Fp32).unwrap_err();
    assert!(e.contains("state size that is a multiple of 4"), "{e}");
    assert!(!compose_recurrent::applies(
        &gpucost::model::arch::load("llama-3-8b").unwrap()
    ));
}

/// Causality lets a one-sequence layer of the first tokens give the first rows of every
/// sequence's output (the convolution and the scans start over at each sequence).
pub fn a_recurrent_prefix_gives_the_first_rows_of_every_sequence() {
    for file in ["qwen3-next-layer.toml", "nemotron-h-layer.toml"] {
        let b = shape(&example(file), 2, 20, DType::Fp32);
        let w = compose_recurrent::inputs(&b, 5);
        let full = block_recurrent::reference(&b, &w.x, &w, &|v| v as f32);
        let p = b.prefix(8);
        let h = b.hidden as usize;
        for z in 0..2usize {
            let start = z * 20 * h;
            let part =
                block_recurrent::reference(&p, &w.x[start..start + 8 * h], &w, &|v| v as f32);
            for (i, (a, e)) in part.iter().zip(&full[start..start + 8 * h]).enumerate() {
                assert!(
                    (a - e).abs() <= 1e-9 * e.abs().max(1.0),
                    "{file} sequence {z} element {i}: {a} vs {e}"
                );
            }
        }
    }
}

/// The examples' layers and variants that reach the kernels' edges: a Gated DeltaNet with as
/// many key heads as value heads and value heads wider than a workgroup; a Mamba-2 mixer with
/// one group, a state of 64 and heads of 40 rows (a partial workgroup), over more tokens than
/// one staged block.
fn kernel_cases() -> Vec<(&'static str, Architecture, u64)> {
    let mut wide = example("qwen3-next-layer.toml");
    wide.linear_attention = wide.linear_attention.map(|l| LinearAttention {
        key_heads: 2,
        key_head_dim: 16,
        value_heads: 2,
        value_head_dim: 48,
        conv_kernel: 3,
        ..l
    });
    let mut big_state = example("nemotron-h-layer.toml");
    big_state.mamba = big_state.mamba.map(|m| Mamba2 {
        heads: 4,
        head_dim: 40,
        state_size: 64,
        groups: 1,
        conv_bias: false,
        ..m
    });
    vec![
        ("qwen3-next-layer", example("qwen3-next-layer.toml"), 37),
        ("gated deltanet, 1:1 heads, dv 48", wide, 29),
        ("nemotron-h-layer", example("nemotron-h-layer.toml"), 37),
        ("mamba-2, one group, state 64", big_state, 70),
    ]
}

/// Every kernel of the layer on its own: each step's output (the prep's q, k, v, α and β; the
/// scan's outputs and final states; Mamba-2's scan) against the f64 reference of that step.
pub fn each_recurrent_step_matches_its_reference() {
    let mut backend = common::wgpu();
    for (what, arch, tokens) in kernel_cases() {
        let b = shape(&arch, 2, tokens, DType::Fp32);
        let w = compose_recurrent::inputs(&b, 11);
        let device = backend.recurrent_step_outputs(&b, &w).unwrap();
        let reference = block_recurrent::reference_steps(&b, &w.x, &w, &|v| v as f32);
        let steps = b.steps().unwrap();
        assert_eq!(device.len(), steps.len(), "{what}");
        assert_eq!(reference.len(), steps.len(), "{what}");
        for ((step, out), expected) in steps.iter().zip(&device).zip(&reference) {
            let c = harness::compare(out, expected, compose_recurrent::tolerance_of(&b));
            assert!(c.pass, "{what}: step {}: {c:?}", step.name);
        }
    }
}

/// The whole layer matches its reference (checked whole and on prefixes), and each feature is
/// wired: the same output fails against a reference with that weight changed.
pub fn recurrent_layers_match_their_reference_and_their_features_are_wired() {
    let mut backend = common::wgpu();
    type Edit = fn(&RecurrentShape, &mut RecurrentInputs);
    let gdn_edits: Vec<(&str, Edit)> = vec![
        ("A_log", |_, w| w.heads[0] += 1.0),
        ("dt_bias", |b, w| {
            w.heads[b.scan_heads() as usize + 1] += 1.0
        }),
        ("a convolution tap", |_, w| w.conv[5] += 1.0),
        ("gated-norm weight", |_, w| w.gated_norm[3] += 4.0),
        ("MLP norm", |_, w| w.mlp_norm[7] += 4.0),
    ];
    let mamba_edits: Vec<(&str, Edit)> = vec![
        ("A_log", |_, w| w.heads[0] += 1.0),
        ("dt_bias", |b, w| {
            w.heads[b.scan_heads() as usize + 1] += 1.0
        }),
        ("D", |b, w| w.heads[2 * b.scan_heads() as usize + 2] += 1.0),
        ("convolution bias", |b, w| {
            let at = (b.conv_width() * b.conv_kernel()) as usize + 3;
            w.conv[at] += 1.0
        }),
        ("second group's norm weight", |b, w| {
            w.gated_norm[b.gated_norm_width() as usize / 2 + 3] += 4.0
        }),
    ];
    for (file, edits) in [
        ("qwen3-next-layer.toml", gdn_edits),
        ("nemotron-h-layer.toml", mamba_edits),
    ] {
        let b = shape(&example(file), 2, 45, DType::Fp32);
        let m = compose_recurrent::measure(&mut backend, &b, 1, 7).unwrap();
        assert!(m.correctness.pass, "{file}: {:?}", m.correctness);
        assert_eq!(m.ops.len(), b.steps().unwrap().len(), "{file}");
        assert!(m.block.unwrap().median_s > 0.0);
        let m = compose_recurrent::measure_with(&mut backend, &b, 1, 7, 0.0).unwrap();
        assert!(
            m.correctness.pass,
            "{file} on prefixes: {:?}",
            m.correctness
        );
        let inputs = compose_recurrent::inputs(&b, 7);
        let run = backend.recurrent_forward(&b, &inputs, 1).unwrap();
        let tolerance = compose_recurrent::tolerance_of(&b);
        let mut cases: Vec<(&str, RecurrentInputs)> =
            vec![("inputs of another seed", compose_recurrent::inputs(&b, 8))];
        for (what, edit) in edits {
            let mut w = inputs.clone();
            edit(&b, &mut w);
            cases.push((what, w));
        }
        for (what, w) in cases {
            let other = block_recurrent::reference(&b, &w.x, &w, &|v| v as f32);
            let c = harness::compare(&run.output, &other, tolerance);
            assert!(!c.pass, "{file}: changing the {what} went unnoticed: {c:?}");
        }
    }
}

pub fn f16_recurrent_layers_match_their_reference() {
    let mut backend = common::wgpu();
    if !gpucost::measure::backend::Backend::device(&backend).supports_f16 {
        eprintln!("adapter has no shader-f16: f16 recurrent layers not checked");
        return;
    }
    for file in ["qwen3-next-layer.toml", "nemotron-h-layer.toml"] {
        let b = shape(&example(file), 1, 40, DType::Fp16);
        let m = compose_recurrent::measure(&mut backend, &b, 1, 3).unwrap();
        assert!(m.correctness.pass, "{file}: {:?}", m.correctness);
    }
}

/// `gpucost compose` runs the linear-attention and the Mamba-2 layer, reports each step
/// against the plan ops that price it, and refuses `--layer local` for them in one line.
pub fn compose_runs_a_linear_attention_and_a_mamba_layer() {
    for (file, layer, unpriced, grouped) in [
        (
            "qwen3-next-layer.toml",
            "linear-attention",
            Some(GDN_PREP),
            None,
        ),
        ("nemotron-h-layer.toml", "mamba", None, Some(SSD_SCAN)),
    ] {
        let v = run_json(
            gpucost()
                .args(["compose", "--model"])
                .arg(path(&format!("examples/compose/{file}")))
                .args([
                    "--hw",
                    "lavapipe",
                    "--tokens",
                    "48",
                    "--batch",
                    "2",
                    "--runs",
                    "2",
                    "--no-save",
                    "--format",
                    "json",
                ]),
        );
        assert_eq!(v["layer"], layer, "{file}");
        assert!(v["max_rel_error"].as_f64().unwrap() <= v["tolerance"].as_f64().unwrap());
        let (measured, predicted) = (
            v["measured_block_s"].as_f64().unwrap(),
            v["predicted_s"].as_f64().unwrap(),
        );
        assert!(measured > 0.0 && predicted > 0.0);
        let err = v["composition_error"].as_f64().unwrap();
        assert!((err - (predicted - measured) / measured).abs() < 1e-9);
        let ops = v["ops"].as_array().unwrap();
        let sum: f64 = ops.iter().map(|o| o["predicted_s"].as_f64().unwrap()).sum();
        assert!((sum - predicted).abs() <= 1e-12 * sum.max(1.0));
        for o in ops {
            assert!(o["measured_s"].as_f64().unwrap() > 0.0, "{file}: {o}");
        }
        let row = |name: &str| ops.iter().find(|o| o["name"] == name).unwrap().clone();
        if let Some(name) = unpriced {
            let o = row(name);
            assert_eq!(o["predicted_s"].as_f64().unwrap(), 0.0);
            assert!(o["provenance"].is_null(), "{o}");
        }
        if let Some(name) = grouped {
            let o = row(name);
            assert_eq!(o["op"].as_str().unwrap().matches(" + ").count(), 3, "{o}");
            assert_eq!(o["implementation"], "wgpu:ssd-recurrent");
        }
        assert!(!v["notes"].as_array().unwrap().is_empty(), "{file}");
        let out = gpucost()
            .args(["compose", "--model"])
            .arg(path(&format!("examples/compose/{file}")))
            .args(["--hw", "lavapipe", "--layer", "local", "--no-save"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{file}");
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(
            e.contains("--layer local") && e.contains("linear-attention or Mamba-2 layer"),
            "{e}"
        );
        assert_eq!(e.trim().lines().count(), 1, "{e}");
    }
}
