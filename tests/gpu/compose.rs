//! The composition check: a transformer block run on a real wgpu adapter (lavapipe in CI) with
//! the benchmark's kernels, checked against the f64 reference and priced op by op.

use crate::common::{self, files_under, gpucost, path, run_json};
use gpucost::measure::backend::Backend;
use gpucost::measure::backend::block::{self, BLOCK_OPS, BlockShape};
use gpucost::measure::{compose, harness};
use gpucost::model::dtype::DType;

fn tiny(tokens: u64, dtype: DType) -> BlockShape {
    let arch = gpucost::model::arch::load(&path("examples/tiny-block.toml")).unwrap();
    compose::block_shape(&arch, 1, tokens, dtype).unwrap()
}

pub fn the_block_is_the_workloads_layer_and_refuses_what_it_cannot_run() {
    let llama = gpucost::model::arch::load("llama-3-8b").unwrap();
    let b = compose::block_shape(&llama, 2, 4096, DType::Bf16).unwrap();
    let names: Vec<&str> = b.ops.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, BLOCK_OPS);
    assert_eq!(b.qkv_width(), 4096 + 2 * 1024);
    assert_eq!(b.tokens(), 8192);
    let gpt2 = gpucost::model::arch::load("gpt2").unwrap();
    let e = compose::block_shape(&gpt2, 1, 128, DType::Fp32).unwrap_err();
    assert!(e.contains("RMSNorm"), "{e}");
}

/// Large blocks are checked on the first tokens of a sequence, computed as a shorter block:
/// causality makes that exact, which the full reference confirms here.
pub fn a_prefix_block_gives_the_first_rows_of_every_sequence() {
    let arch = gpucost::model::arch::load(&path("examples/tiny-block.toml")).unwrap();
    let b = compose::block_shape(&arch, 2, 40, DType::Fp32).unwrap();
    let inputs = compose::inputs(&b, 5);
    let full = block::reference(&b, &inputs.x, &inputs, &|v| v as f32);
    let p = b.prefix(16);
    assert_eq!((p.batch, p.seq), (1, 16));
    let h = b.hidden as usize;
    for z in 0..2usize {
        let start = z * 40 * h;
        let x = &inputs.x[start..start + 16 * h];
        let part = block::reference(&p, x, &inputs, &|v| v as f32);
        for (i, (a, e)) in part.iter().zip(&full[start..start + 16 * h]).enumerate() {
            assert!(
                (a - e).abs() <= 1e-9 * e.abs().max(1.0),
                "sequence {z} element {i}: {a} vs {e}"
            );
        }
    }
}

pub fn the_block_matches_its_reference_and_a_wrong_answer_fails() {
    let mut backend = common::wgpu();
    // Odd token count: partial tiles in every kernel; two sequences: batch strides.
    let arch = gpucost::model::arch::load(&path("examples/tiny-block.toml")).unwrap();
    let b = compose::block_shape(&arch, 2, 37, DType::Fp32).unwrap();
    let m = compose::measure(&mut backend, &b, 2, 7).unwrap();
    assert!(m.correctness.pass, "{:?}", m.correctness);
    assert_eq!(m.ops.len(), BLOCK_OPS.len());
    assert!(m.block.unwrap().median_s > 0.0);
    // Checked on prefixes, as large blocks are, it passes too.
    let m = compose::measure_with(&mut backend, &b, 1, 7, 0.0).unwrap();
    assert!(m.correctness.pass, "{:?}", m.correctness);
    // The same run compared with the reference of other inputs must fail.
    let run = backend.run_block(&b, &compose::inputs(&b, 7), 1).unwrap();
    let other_inputs = compose::inputs(&b, 8);
    let other = block::reference(&b, &other_inputs.x, &other_inputs, &|v| v as f32);
    let c = harness::compare(&run.output, &other, compose::tolerance_of(&b));
    assert!(!c.pass, "{c:?}");
}

pub fn f16_block_matches_its_reference() {
    let mut backend = common::wgpu();
    if !backend.device().supports_f16 {
        eprintln!("adapter has no shader-f16: f16 block not checked");
        return;
    }
    let m = compose::measure(&mut backend, &tiny(64, DType::Fp16), 1, 3).unwrap();
    assert!(m.correctness.pass, "{:?}", m.correctness);
    // QK-norm, the post-norms and GeGLU in f16 too.
    for file in ["qwen3-layer.toml", "gemma3-layer.toml"] {
        let arch = gpucost::model::arch::load(&path(&format!("examples/compose/{file}"))).unwrap();
        let b = compose::block_shape_of(&arch, compose::Layer::Local, 1, 48, DType::Fp16)
            .or_else(|_| compose::block_shape(&arch, 1, 48, DType::Fp16))
            .unwrap();
        let m = compose::measure(&mut backend, &b, 1, 3).unwrap();
        assert!(m.correctness.pass, "{file}: {:?}", m.correctness);
    }
}

pub fn compose_reports_measured_against_predicted_per_op() {
    let dir = tempfile::TempDir::new().unwrap();
    let v = run_json(
        gpucost()
            .args(["compose", "--model"])
            .arg(path("examples/tiny-block.toml"))
            .args([
                "--hw", "lavapipe", "--tokens", "64", "--runs", "3", "--format", "json",
            ])
            .arg("--out")
            .arg(dir.path()),
    );
    assert!(v["max_rel_error"].as_f64().unwrap() <= v["tolerance"].as_f64().unwrap());
    let measured = v["measured_block_s"].as_f64().unwrap();
    let predicted = v["predicted_s"].as_f64().unwrap();
    assert!(measured > 0.0 && predicted > 0.0);
    assert!(v["predicted_error_pct"].as_f64().unwrap() > 0.0);
    let err = v["composition_error"].as_f64().unwrap();
    assert!((err - (predicted - measured) / measured).abs() < 1e-9);
    let ops = v["ops"].as_array().unwrap();
    assert_eq!(ops.len(), BLOCK_OPS.len());
    let sum: f64 = ops.iter().map(|o| o["predicted_s"].as_f64().unwrap()).sum();
    assert!((sum - predicted).abs() <= 1e-12 * predicted.max(1.0));
    // The embedded lavapipe calibration prices the matmuls of the kernel that ran them.
    for o in ops
        .iter()
        .filter(|o| o["name"] == "qkv" || o["name"] == "down")
    {
        assert_eq!(o["implementation"], "wgpu:regblock");
        assert_ne!(o["provenance"], "roofline", "{o}");
        assert!(o["measured_s"].as_f64().unwrap() > 0.0);
    }
    // The report was saved, whole, under the device's folder.
    let saved: Vec<_> = files_under(dir.path());
    assert_eq!(saved.len(), 1, "{saved:?}");
    let text = std::fs::read_to_string(&saved[0]).unwrap();
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["ops"].as_array().unwrap().len(), BLOCK_OPS.len());
}

pub fn compose_refuses_a_model_it_cannot_run_by_name() {
    let out = gpucost()
        .args([
            "compose",
            "--model",
            "gpt2",
            "--hw",
            "lavapipe",
            "--no-save",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("gpt2") && e.contains("RMSNorm"), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "{e}");
}

/// compose checks the device against --hw: lavapipe is not an H100.
pub fn compose_refuses_a_profile_of_another_gpu() {
    let xdg = tempfile::TempDir::new().unwrap();
    let out = gpucost()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("XDG_RUNTIME_DIR", xdg.path())
        .args([
            "compose",
            "--model",
            "examples/tiny-block.toml",
            "--hw",
            "h100-sxm",
            "--no-save",
            "--runs",
            "1",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("is described by profile lavapipe, not --hw h100-sxm"),
        "{stderr}"
    );
}

/// A small layer of each family the composition check covers, as `examples/compose/` writes it.
fn family(file: &str, layer: compose::Layer, batch: u64, tokens: u64) -> BlockShape {
    let arch = gpucost::model::arch::load(&path(&format!("examples/compose/{file}"))).unwrap();
    compose::block_shape_of(&arch, layer, batch, tokens, DType::Fp32).unwrap()
}

/// The families' layers are the workloads' own (QK-norm, Gemma's four norms and GeGLU, the
/// local layers' windows), the real configs build where the runner has their kernels, and the
/// rest is refused in one line naming why.
pub fn each_familys_block_is_its_workloads_layer() {
    use compose::Layer::{Global, Local};
    let names = |b: &BlockShape| b.ops.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let qwen = family("qwen3-layer.toml", Global, 1, 8);
    assert!(qwen.qk_norm() && names(&qwen).len() == BLOCK_OPS.len() + 1);
    let gemma = family("gemma3-layer.toml", Local, 1, 8);
    assert_eq!(
        names(&gemma),
        block::block_ops(true, true, gpucost::model::ops::Activation::Gelu)
    );
    assert_eq!(gemma.attention().window, Some(32));
    assert_eq!(
        family("gemma3-layer.toml", Global, 1, 8).attention().window,
        None
    );
    assert_eq!(
        family("gpt-oss-layer.toml", Local, 1, 8).attention().window,
        Some(16)
    );
    // The published configs: Qwen3, Gemma 3 and DeepSeek-V3's dense layers build as they are;
    // gpt-oss's biases are refused with the reason.
    let load = |f: &str| gpucost::model::arch::load(&path(&format!("tests/fixtures/{f}"))).unwrap();
    assert!(compose::block_shape(&load("qwen3-0.6b.json"), 1, 8, DType::Fp32).is_ok());
    let g = compose::block_shape_of(&load("gemma-3-1b.json"), Local, 1, 8, DType::Fp32).unwrap();
    assert_eq!(g.attention().window, Some(512));
    let e = compose::block_shape(&load("gpt-oss-20b.json"), 1, 8, DType::Fp32).unwrap_err();
    assert!(e.contains("no biases"), "{e}");
    let mla = compose::block_shape(&load("deepseek-v3.json"), 1, 8, DType::Fp32).unwrap();
    assert!(names(&mla).contains(&"k-assemble".to_string()));
    let e =
        compose::block_shape_of(&load("qwen3-0.6b.json"), Local, 1, 8, DType::Fp32).unwrap_err();
    assert!(
        e.contains("--layer local: it has no sliding-window layers"),
        "{e}"
    );
}

/// Each family's layer on the device matches its f64 reference, and each of its features is
/// wired: the same output fails against a reference with that feature's weights (QK-norm,
/// Gemma's norms after attention and the MLP) or window changed.
pub fn each_familys_block_matches_its_reference_and_its_features_are_wired() {
    use compose::Layer::{Global, Local};
    let mut backend = common::wgpu();
    type Edit = fn(&mut BlockShape, &mut block::BlockInputs);
    type Case<'a> = (&'a str, compose::Layer, Vec<(&'a str, Edit)>);
    let cases: Vec<Case> = vec![
        (
            "qwen3-layer.toml",
            Global,
            vec![("qk-norm weights", |_, w| w.qk_norm[70] += 4.0)],
        ),
        (
            "gemma3-layer.toml",
            Local,
            vec![
                ("qk-norm weights", |_, w| w.qk_norm[3] += 4.0),
                ("post-attention norm", |_, w| w.post_attn_norm[5] += 4.0),
                ("post-MLP norm", |_, w| w.post_mlp_norm[7] += 4.0),
                ("window", |b, _| {
                    for (_, op) in b.ops.iter_mut() {
                        if let gpucost::model::ops::Op::Attention(a) = op {
                            a.window = None;
                        }
                    }
                }),
            ],
        ),
        ("gemma3-layer.toml", Global, Vec::new()),
        (
            "gpt-oss-layer.toml",
            Local,
            vec![("window", |b, _| {
                for (_, op) in b.ops.iter_mut() {
                    if let gpucost::model::ops::Op::Attention(a) = op {
                        a.window = None;
                    }
                }
            })],
        ),
    ];
    for (file, layer, edits) in cases {
        // Two sequences of 45 tokens: batch strides, partial tiles, and past every window.
        let b = family(file, layer, 2, 45);
        let m = compose::measure(&mut backend, &b, 1, 7).unwrap();
        assert!(m.correctness.pass, "{file} {layer:?}: {:?}", m.correctness);
        assert_eq!(m.ops.len(), b.ops.len());
        // Checked on prefixes, as large blocks are (QK-norm's rows scale with the heads).
        let m = compose::measure_with(&mut backend, &b, 1, 7, 0.0).unwrap();
        assert!(
            m.correctness.pass,
            "{file} {layer:?} on prefixes: {:?}",
            m.correctness
        );
        let inputs = compose::inputs(&b, 7);
        let run = backend.run_block(&b, &inputs, 1).unwrap();
        for (what, edit) in edits {
            let (mut b2, mut w2) = (b.clone(), inputs.clone());
            edit(&mut b2, &mut w2);
            let other = block::reference(&b2, &w2.x, &w2, &|v| v as f32);
            let c = harness::compare(&run.output, &other, compose::tolerance_of(&b));
            assert!(
                !c.pass,
                "{file} {layer:?}: changing the {what} went unnoticed: {c:?}"
            );
        }
    }
}

/// `gpucost compose` runs one layer of each family it covers on the adapter (a local and a
/// global Gemma 3 layer; gpt-oss's banded layer, its sinks noted as run plain; DeepSeek-V3's
/// latent attention, its key assembly run by its own kernel).
pub fn compose_runs_one_layer_of_each_family() {
    for (file, layer) in [
        ("qwen3-layer.toml", "global"),
        ("gemma3-layer.toml", "local"),
        ("gemma3-layer.toml", "global"),
        ("gpt-oss-layer.toml", "local"),
        ("deepseek-v3-layer.toml", "global"),
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
                    "--runs",
                    "2",
                    "--layer",
                    layer,
                    "--no-save",
                    "--format",
                    "json",
                ]),
        );
        assert_eq!(v["layer"], layer, "{file}");
        assert!(v["max_rel_error"].as_f64().unwrap() <= v["tolerance"].as_f64().unwrap());
        assert!(
            v["measured_block_s"].as_f64().unwrap() > 0.0
                && v["predicted_s"].as_f64().unwrap() > 0.0
        );
        let ops = v["ops"].as_array().unwrap();
        let sum: f64 = ops.iter().map(|o| o["predicted_s"].as_f64().unwrap()).sum();
        assert!((sum - v["predicted_s"].as_f64().unwrap()).abs() <= 1e-12 * sum.max(1.0));
        let notes = v["notes"].as_array().unwrap();
        assert_eq!(
            notes.iter().any(|n| n
                .as_str()
                .unwrap()
                .contains("attention sinks run as plain attention")),
            file.starts_with("gpt-oss"),
            "{file}: {notes:?}"
        );
        let assembly = ops.iter().find(|o| o["name"] == "k-assemble");
        assert_eq!(assembly.is_some(), file.starts_with("deepseek"), "{file}");
        if let Some(o) = assembly {
            assert_eq!(o["implementation"], "wgpu:elementwise");
            assert!(o["measured_s"].as_f64().unwrap() > 0.0, "{o}");
        }
    }
}
