//! Multi-GPU predictions through the real binary: layouts, the layout search, the published
//! validation, and the refusals.

mod common;
use common::{gpucost, num, predict_json, run_json, user_error};

/// Spelling out the one-GPU layout changes nothing.
#[test]
fn an_explicit_single_gpu_layout_is_the_single_gpu_answer() {
    let base = ["--model", "llama-3-8b", "--hw", "h100-sxm", "--batch", "4"];
    let plain = predict_json(&base);
    let mut args = base.to_vec();
    args.extend(["--tp", "1", "--pp", "1", "--dp", "1", "--zero", "0"]);
    let explicit = predict_json(&args);
    assert_eq!(plain["training"], explicit["training"]);
    assert_eq!(plain["inference"], explicit["inference"]);
    assert!(plain.get("cluster").is_none());
}

/// Eight GPUs in tensor parallel: a rank holds an eighth of the layers' weights, the step pays
/// for its all-reduces, and the model FLOPs per token do not change.
#[test]
fn tensor_parallel_splits_weights_and_pays_all_reduces() {
    let one = predict_json(&["--model", "llama-3-8b", "--hw", "h100-sxm", "--batch", "8"]);
    let tp = predict_json(&[
        "--model",
        "llama-3-8b",
        "--hw",
        "h100-sxm",
        "--batch",
        "8",
        "--tp",
        "8",
    ]);
    let w = |d: &serde_json::Value| num(d, "memory.training.weights_bytes");
    let ratio = w(&tp) / w(&one);
    assert!((0.12..0.14).contains(&ratio), "{ratio}");
    assert!(num(&tp, "cluster.training_communication_fraction") > 0.0);
    assert_eq!(num(&tp, "cluster.training_gpus"), 8.0);
    let f = |d: &serde_json::Value| num(d, "training.model_flops_per_token");
    assert!((f(&tp) - f(&one)).abs() < 1e-9 * f(&one));
    // Serving on the same split: faster per token, not eight times.
    let speedup = num(&one, "inference.tpot_s") / num(&tp, "inference.tpot_s");
    assert!((1.5..8.0).contains(&speedup), "{speedup}");
}

/// A pipeline of four stages over 32 microbatches waits its bubble, about (p − 1)/(m + p − 1).
#[test]
fn a_pipeline_reports_its_bubble() {
    let d = predict_json(&[
        "--model",
        "llama-2-7b",
        "--hw",
        "a100-sxm-80gb",
        "--batch",
        "32",
        "--pp",
        "4",
        "--micro-batch",
        "1",
        "--recompute",
        "full",
    ]);
    let bubble = num(&d, "cluster.pipeline_bubble_fraction");
    assert!((bubble - 3.0 / 35.0).abs() < 0.02, "{bubble}");
    assert_eq!(num(&d, "cluster.microbatches"), 32.0);
}

/// The layout search lists only layouts that fit, fastest first, on the GPUs asked for.
#[test]
fn search_parallelism_lists_fitting_layouts_fastest_first() {
    let v = run_json(gpucost().args([
        "predict",
        "--model",
        "llama-2-13b",
        "--hw",
        "a100-sxm-80gb",
        "--batch",
        "64",
        "--seq",
        "2048",
        "--recompute",
        "full",
        "--gpus",
        "16",
        "--search-parallelism",
        "--top",
        "5",
        "--format",
        "json",
    ]));
    let layouts = v["layouts"].as_array().unwrap();
    assert!(!layouts.is_empty() && layouts.len() <= 5);
    let mut last = 0.0;
    for l in layouts {
        let p = &l["parallelism"];
        let gpus = ["tp", "pp", "dp", "cp"]
            .iter()
            .map(|k| p[k].as_u64().unwrap())
            .product::<u64>();
        assert_eq!(gpus, 16);
        assert!(l["memory_bytes_per_gpu"].as_f64().unwrap() <= 80e9);
        let step = l["step_time_s"].as_f64().unwrap();
        assert!(step >= last, "{step} after {last}");
        last = step;
    }
}

#[test]
fn layouts_the_model_cannot_take_are_refused_in_one_line() {
    let base = ["predict", "--model", "llama-3-8b", "--hw", "h100-sxm"];
    for (extra, needle) in [
        (&["--tp", "3"][..], "--tp 3 must divide"),
        (
            &["--ep", "2", "--dp", "2", "--batch", "2"][..],
            "needs a mixture-of-experts model",
        ),
        (
            &["--dp", "3", "--batch", "4"][..],
            "--batch 4 must be a multiple of --dp 3",
        ),
        (&["--pp", "64"][..], "exceeds"),
        (&["--zero", "4"][..], "--zero must be 0, 1, 2 or 3"),
        (&["--tp", "0"][..], "--tp must be positive"),
        (
            &["--cp", "2", "--seq", "4095"][..],
            "--seq 4095 must be a multiple of --cp 2",
        ),
        (
            &["--sequence-parallel"][..],
            "--sequence-parallel needs --tp",
        ),
        (
            &["--gpus-per-node", "0"][..],
            "--gpus-per-node must be positive",
        ),
    ] {
        let mut args = base.to_vec();
        args.extend(extra);
        let e = user_error(&args);
        assert!(e.contains(needle), "{args:?}: {e}");
    }
    let e = user_error(&[
        "predict",
        "--model",
        "mixtral-8x7b",
        "--hw",
        "h100-sxm",
        "--gpus",
        "1",
        "--search-parallelism",
        "--batch",
        "1",
        "--seq",
        "2048",
    ]);
    assert!(e.contains("no layout of 1 GPUs fits"), "{e}");
    // --gpus with the other groups given: the data-parallel ranks are what they leave.
    let d = predict_json(&[
        "--model",
        "llama-3-8b",
        "--hw",
        "h100-sxm",
        "--gpus",
        "16",
        "--tp",
        "4",
        "--batch",
        "8",
    ]);
    assert_eq!(d["training_setup"]["parallelism"]["dp"], 4);
    let e = user_error(&[
        "predict",
        "--model",
        "llama-3-8b",
        "--hw",
        "h100-sxm",
        "--gpus",
        "6",
        "--tp",
        "4",
    ]);
    assert!(e.contains("--gpus 6 is not"), "{e}");
}

/// Every row of Megatron-LM's published table is predicted, with the error stated.
#[test]
fn validate_published_predicts_every_row() {
    let v = run_json(
        gpucost()
            .args([
                "validate",
                "--published",
                "data/published/narayanan2021_table1.json",
                "--format",
                "json",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR")),
    );
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 10);
    for r in rows {
        let (p, q) = (
            r["published_tflops_per_gpu"].as_f64().unwrap(),
            r["predicted_tflops_per_gpu"].as_f64().unwrap(),
        );
        assert!(q.is_finite() && q > 0.0);
        assert!((r["error_pct"].as_f64().unwrap() - 100.0 * (q - p) / p).abs() < 1e-9);
        // No prediction beats the GPU's peak.
        assert!(q < 312.0, "{q}");
    }
    // The figures README and docs/clusters.md state: each row held out, and all rows fitted.
    let fit = &v["sustained_fraction_fits"][0];
    let documented = [
        (v["median_abs_error_pct"].as_f64(), 2.9),
        (v["max_abs_error_pct"].as_f64(), 8.9),
        (fit["held_out_median_pct"].as_f64(), 3.3),
        (fit["held_out_max_pct"].as_f64(), 9.7),
    ];
    for (got, stated) in documented {
        let got = got.unwrap();
        assert!((got - stated).abs() < 0.05 + 1e-9, "{got} against {stated}");
    }
    let fitted = fit["fitted_fraction"].as_f64().unwrap();
    assert!((fitted - 0.861).abs() <= 0.001, "{fitted}");
    let e = user_error(&["validate", "--published", "no-such-file.json"]);
    assert!(e.contains("no-such-file.json"), "{e}");
}

/// Every row of TensorRT-LLM's published offline throughput is predicted, at a concurrency the
/// memory holds, with the figures docs/clusters.md states.
#[test]
fn validate_published_serving_predicts_every_row() {
    let v = run_json(
        gpucost()
            .args([
                "validate",
                "--published",
                "data/published/trtllm_perf_overview.json",
                "--format",
                "json",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR")),
    );
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 60);
    for r in rows {
        let (p, q) = (
            r["published_output_tokens_per_s"].as_f64().unwrap(),
            r["predicted_output_tokens_per_s"].as_f64().unwrap(),
        );
        assert!(q.is_finite() && q > 0.0);
        assert!((r["error_pct"].as_f64().unwrap() - 100.0 * (q - p) / p).abs() < 1e-9);
        assert!(r["concurrency"].as_u64().unwrap() >= 1);
    }
    // The documented figures (docs/clusters.md, "Serving throughput").
    let median = v["median_abs_error_pct"].as_f64().unwrap();
    let max = v["max_abs_error_pct"].as_f64().unwrap();
    assert!((median - 20.2).abs() < 0.05, "{median}");
    assert!((max - 55.2).abs() < 0.05, "{max}");
}

/// `predict --offline-throughput`: the serving layout at full load, more GPUs holding more
/// sequences; a model that leaves no room for one sequence is refused in one line.
#[test]
fn offline_throughput_through_predict() {
    let run = |tp: &str| {
        run_json(gpucost().args([
            "predict",
            "--model",
            "llama-3.1-70b",
            "--hw",
            "h100-sxm",
            "--dtype",
            "fp8",
            "--kv-dtype",
            "fp8",
            "--prompt",
            "1000",
            "--gen",
            "1000",
            "--tp",
            tp,
            "--offline-throughput",
            "--format",
            "json",
        ]))
    };
    let (two, four) = (run("2"), run("4"));
    assert_eq!(two["schema_version"], 1);
    let field = |d: &serde_json::Value, k: &str| d["offline"][k].as_f64().unwrap();
    assert!(field(&four, "concurrency") > 2.0 * field(&two, "concurrency"));
    assert!(field(&four, "output_tokens_per_s") > field(&two, "output_tokens_per_s"));
    let rate = field(&two, "output_tokens_per_s");
    let expected = 1000.0
        / (field(&two, "prefill_s_per_request")
            + 1000.0 * field(&two, "decode_step_s") / field(&two, "concurrency"));
    assert!((rate - expected).abs() < 1e-9 * expected);
    let e = user_error(&[
        "predict",
        "--model",
        "llama-3.1-70b",
        "--hw",
        "h100-sxm",
        "--offline-throughput",
    ]);
    assert!(e.contains("fits"), "{e}");
}

/// The sustained-fraction device script's arithmetic (scripts/sustained_torch.py; the GPU part
/// runs in `SUSTAINED=1 scripts/device-check.sh run`).
#[test]
fn the_sustained_fraction_script_computes_its_figures() {
    let out = std::process::Command::new("python3")
        .args(["scripts/sustained_torch.py", "--self-test"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
