//! `gpucost calibrate` and `gpucost validate` on the committed lavapipe results: the calibrated
//! model must beat the plain roofline on shapes it was not fitted to.

#![cfg(feature = "measure")]

mod common;
use common::{gpucost, path, run_json, run_ok};

/// Runs `gpucost calibrate` on the committed lavapipe results, writing `file`.
fn calibrate_lavapipe(file: &std::path::Path) {
    run_ok(
        gpucost()
            .args(["calibrate", "--results"])
            .arg(path("results/llvmpipe-llvm-15-0-6-256-bits"))
            .arg("--out")
            .arg(file),
    );
}

#[test]
fn validation_json_keeps_its_keys_and_beats_the_roofline_on_lavapipe() {
    let v = run_json(
        gpucost()
            .args(["validate", "--results"])
            .arg(path("results/llvmpipe-llvm-15-0-6-256-bits"))
            .args(["--format", "json"]),
    );
    let n = v["n"].as_u64().unwrap();
    assert!(n >= 6, "{n}");
    let median = v["median_ape"].as_f64().unwrap();
    let roofline = v["roofline_median_ape"].as_f64().unwrap();
    assert!(v["p90_ape"].as_f64().unwrap() >= median);
    assert!(
        median < roofline,
        "calibrated {median} vs roofline {roofline}"
    );
    assert!(!v["groups"].as_array().unwrap().is_empty());
}

#[test]
fn calibrate_writes_a_calibration_that_records_its_sources() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("lavapipe.calibration.json");
    calibrate_lavapipe(&file);
    let cal: gpucost::model::cost::calibrated::Calibration =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(cal.profile, "lavapipe");
    assert_eq!(cal.implementation, "best");
    assert!(!cal.sources.is_empty() && !cal.git_revisions.is_empty());
    assert!(
        cal.groups
            .iter()
            .all(|g| g.points.iter().all(|p| p.measured_s > 0.0 && p.sol_s > 0.0))
    );
    let all = cal
        .error_pct
        .bars
        .iter()
        .find(|b| b.kind.is_empty() && b.regime.is_none())
        .expect("bars over all kinds");
    assert!(all.interpolated.is_some() || all.extrapolated.is_some());
    let coverage = cal.error_pct.coverage.expect("held-out coverage");
    assert!(coverage.n > 0 && coverage.coverage > 0.0 && coverage.coverage <= 1.0);
}

#[test]
fn results_from_several_devices_need_a_choice() {
    let e = common::user_error(&["validate", "--results", &path("results")]);
    assert!(e.contains("2 devices") && e.contains("--device"), "{e}");
}

#[test]
fn predict_op_json_for_matmul_and_attention() {
    let run = |args: &[&str]| -> serde_json::Value {
        run_json(
            gpucost()
                .arg("predict-op")
                .args(args)
                .args(["--format", "json"]),
        )
    };
    let square = [
        "matmul", "--m", "4096", "--n", "4096", "--k", "4096", "--dtype", "bf16", "--hw",
        "h100-sxm",
    ];
    let mm = run(&[&square[..], &["--roofline"]].concat());
    for key in ["seconds", "tflops", "bound", "provenance"] {
        assert!(!mm[key].is_null(), "{key}");
    }
    assert!(mm.get("error_pct").is_some());
    assert_eq!(mm["provenance"], "roofline");
    // 2·4096³ FLOPs at 80% of 989.4 TFLOP/s in four waves of 128x256 tiles: 183 µs.
    let s = mm["seconds"].as_f64().unwrap();
    assert!(s > 1.5e-4 && s < 2.0e-4, "{s}");
    // The embedded H100 calibration measured this shape: cuBLAS took 174 µs (median of runs).
    let mm = run(&square);
    assert_eq!(mm["provenance"], "measured");
    let s = mm["seconds"].as_f64().unwrap();
    assert!(s > 1.65e-4 && s < 1.85e-4, "{s}");
    assert!(mm["error_pct"].as_f64().unwrap() > 0.0);
    let at = run(&[
        "attention",
        "--batch",
        "2",
        "--heads",
        "32",
        "--kv-heads",
        "8",
        "--seq-q",
        "1",
        "--seq-kv",
        "8192",
        "--head-dim",
        "128",
        "--causal",
        "--dtype",
        "bf16",
        "--hw",
        "h100-sxm",
    ]);
    assert_eq!(at["bound"], "memory");

    // With a calibration of the committed lavapipe results, a measured shape is `measured`.
    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("cal.json");
    calibrate_lavapipe(&file);
    let f = file.to_str().unwrap();
    let cal = run(&[
        "matmul",
        "--m",
        "256",
        "--n",
        "256",
        "--k",
        "256",
        "--dtype",
        "fp32",
        "--hw",
        "lavapipe",
        "--calibration",
        f,
        "--stack",
        "all",
    ]);
    assert_eq!(cal["provenance"], "measured");
    assert!(cal["error_pct"].as_f64().is_some());
    let between = run(&[
        "matmul",
        "--m",
        "300",
        "--n",
        "300",
        "--k",
        "300",
        "--dtype",
        "fp32",
        "--hw",
        "lavapipe",
        "--calibration",
        f,
        "--stack",
        "all",
    ]);
    assert_eq!(between["provenance"], "interpolated");
    // The production stack is the vendor libraries: lavapipe has none, so the roofline answers,
    // with the bar it earned on lavapipe's measurements.
    let production = run(&[
        "matmul",
        "--m",
        "300",
        "--n",
        "300",
        "--k",
        "300",
        "--dtype",
        "fp32",
        "--hw",
        "lavapipe",
        "--calibration",
        f,
    ]);
    assert_eq!(production["provenance"], "roofline");
    assert_eq!(production["implementation"], "roofline");
    assert!(production["error_pct"].as_f64().is_some_and(f64::is_finite));
    let e = common::user_error(&[
        "predict-op",
        "matmul",
        "--m",
        "8",
        "--n",
        "8",
        "--k",
        "8",
        "--dtype",
        "fp32",
        "--hw",
        "h100-sxm",
        "--calibration",
        f,
    ]);
    assert!(
        e.contains("profile: calibrates 'lavapipe', not --hw h100-sxm"),
        "{e}"
    );
    let e = common::user_error(&[
        "predict-op",
        "matmul",
        "--m",
        "0",
        "--n",
        "8",
        "--k",
        "8",
        "--dtype",
        "fp32",
        "--hw",
        "h100-sxm",
    ]);
    assert!(e.contains("--m must be positive"), "{e}");
}

#[test]
fn predict_uses_the_embedded_lavapipe_calibration_unless_told_not_to() {
    let args = [
        "--model", "gpt2", "--hw", "lavapipe", "--dtype", "fp32", "--seq", "128", "--prompt", "32",
        "--gen", "4", "--stack", "all",
    ];
    let cal = common::predict_json(&args);
    assert!(
        cal["provenance"]["cost_model"]
            .as_str()
            .unwrap()
            .starts_with("calibrated")
    );
    assert!(cal["training"]["step_time_error_pct"].as_f64().unwrap() > 0.0);
    assert!(cal["inference"]["tpot_error_pct"].as_f64().is_some());
    let frac = cal["training"]["calibrated_time_fraction"]
        .as_f64()
        .unwrap();
    assert!(frac > 0.0 && frac <= 1.0, "{frac}");
    let mut with_flag = args[..args.len() - 2].to_vec();
    with_flag.push("--roofline");
    let roof = common::predict_json(&with_flag);
    assert!(
        roof["provenance"]["cost_model"]
            .as_str()
            .unwrap()
            .starts_with("roofline")
    );
    // The roofline carries the bar it earned on lavapipe's own measurements.
    assert!(roof["training"]["step_time_error_pct"].as_f64().unwrap() > 0.0);
    assert_eq!(roof["training"]["calibrated_time_fraction"], 0.0);
}

#[test]
fn plots_are_svg_files() {
    let dir = tempfile::TempDir::new().unwrap();
    for kind in ["roofline", "validation"] {
        let file = dir.path().join(format!("{kind}.svg"));
        run_ok(
            gpucost()
                .args(["plot", kind, "--results"])
                .arg(path("results/llvmpipe-llvm-15-0-6-256-bits"))
                .arg("-o")
                .arg(&file),
        );
        let svg = std::fs::read_to_string(&file).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{kind}");
        assert!(
            svg.matches("<circle").count() >= 10,
            "{kind}: too few points"
        );
    }
}
