//! What a prediction promises: the production stack prices with the vendor libraries only, every
//! figure carries a finite error bar, and the bars and validation figures the documentation
//! states are what the committed data gives.

mod common;

use common::{gpucost, num, predict_json, run_json};
use serde_json::Value;

/// Implementations a framework runs: what the production stack may price with.
fn is_vendor(implementation: &str) -> bool {
    implementation == "roofline"
        || implementation.starts_with("cuda:cublas")
        || implementation.starts_with("torch:")
}

#[test]
fn a_hand_written_kernel_never_prices_a_production_prediction() {
    for model in ["llama-3-8b", "mixtral-8x7b", "gpt2"] {
        for dtype in ["bf16", "fp16", "fp8-e4m3", "fp32", "tf32", "int8"] {
            let doc = predict_json(&[
                "--model",
                model,
                "--hw",
                "h100-sxm",
                "--dtype",
                dtype,
                "--batch",
                "4",
                "--breakdown",
            ]);
            let rows = doc["breakdown"].as_array().expect("breakdown");
            for row in rows {
                let imp = row["implementation"].as_str().expect("implementation");
                assert!(
                    is_vendor(imp),
                    "{model} {dtype}: {} priced by {imp}",
                    row["label"]
                );
            }
            for imp in doc["provenance"]["implementations"].as_array().unwrap() {
                assert!(is_vendor(imp.as_str().unwrap()), "{imp}");
            }
        }
    }
    // A decode GEMM our mma kernel measured and cuBLASLt did not: the vendor (or the roofline)
    // answers, never ours.
    // The default stack (nothing asked for) and then ours.
    let fp8_decode_gemm = |extra: &[&str]| {
        run_json(
            gpucost()
                .args([
                    "predict-op",
                    "matmul",
                    "--m",
                    "1",
                    "--n",
                    "4096",
                    "--k",
                    "4096",
                ])
                .args([
                    "--dtype", "fp8-e4m3", "--hw", "h100-sxm", "--format", "json",
                ])
                .args(extra),
        )
    };
    let op = fp8_decode_gemm(&[]);
    assert!(is_vendor(op["implementation"].as_str().unwrap()), "{op}");
    // Asked for, our kernels do price it.
    let ours = fp8_decode_gemm(&["--stack", "ours"]);
    assert_eq!(ours["implementation"], "cuda:mma", "{ours}");
}

fn finite_bar(doc: &Value, path: &str) -> f64 {
    let v = num(doc, path);
    assert!(v.is_finite() && v >= 0.0, "{path} = {v}");
    v
}

#[test]
fn every_prediction_carries_a_finite_error_bar() {
    for gpu in [
        "h100-sxm",
        "h200-sxm",
        "a100-sxm-80gb",
        "l40s",
        "rtx-4090",
        "lavapipe",
    ] {
        for dtype in ["bf16", "fp32"] {
            if gpu == "lavapipe" && dtype == "bf16" {
                continue; // no bf16 rate on lavapipe
            }
            for extra in [&[][..], &["--roofline"][..]] {
                let mut args = vec!["--model", "llama-3-8b", "--hw", gpu, "--dtype", dtype];
                args.extend_from_slice(extra);
                let doc = predict_json(&args);
                for path in [
                    "training.step_time_error_pct",
                    "inference.ttft_error_pct",
                    "inference.tpot_error_pct",
                ] {
                    finite_bar(&doc, path);
                }
            }
        }
    }
}

/// A validation document's headline figures, in percent: median and p90 |error|, the
/// roofline's median on the same points, and the bars' coverage.
#[cfg(feature = "measure")]
fn headline_pct(doc: &Value) -> [f64; 4] {
    [
        num(doc, "median_ape") * 100.0,
        num(doc, "p90_ape") * 100.0,
        num(doc, "roofline_median_ape") * 100.0,
        num(doc, "coverage.coverage") * 100.0,
    ]
}

/// Figures reproduced to the documented rounding.
#[cfg(feature = "measure")]
fn assert_documented(what: &str, got: &[f64], documented: &[f64]) {
    assert_eq!(got.len(), documented.len());
    for (g, e) in got.iter().zip(documented) {
        assert!(
            (g - e).abs() < 0.006,
            "{what}: {got:?}, documented {documented:?}"
        );
    }
}

/// The figures docs/calibration.md states for the committed data: held-out median and p90
/// |error| of what predict answers, the roofline's on the same points, and the bars' coverage.
#[cfg(feature = "measure")]
#[test]
fn validation_reproduces_the_documented_figures() {
    // The documented figures (docs/calibration.md, "How accurate is it" in the README).
    const H100: [f64; 4] = [12.53, 41.26, 24.06, 83.46];
    const LAVAPIPE: [f64; 4] = [9.73, 47.55, 83.33, 86.51];
    let cases = [
        // (results folder, [median %, p90 %, roofline median %, coverage %])
        ("results/nvidia-h100-80gb-hbm3", H100),
        ("results/llvmpipe-llvm-15-0-6-256-bits", LAVAPIPE),
    ];
    for (folder, expect) in cases {
        let doc = run_json(gpucost().current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "validate",
            "--results",
            folder,
            "--format",
            "json",
        ]));
        assert_documented(folder, &headline_pct(&doc), &expect);
    }
}

/// The transfer check docs/calibration.md states: lavapipe's two-thread calibration carried to
/// its one-thread measurements (the CPU stand-in in data/transfer-standin/).
#[cfg(feature = "measure")]
#[test]
fn transfer_check_reproduces_the_documented_figures() {
    // [median %, p90 %, roofline median %, coverage %] over every point; matmul median and p90.
    const EVERY: [f64; 4] = [4.16, 64.36, 92.68, 80.67];
    const MATMUL: [f64; 2] = [1.72, 13.44];
    let dir = "data/transfer-standin/lavapipe-1-thread";
    let doc = run_json(gpucost().current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "validate",
        "--results",
        dir,
        "--hw",
        &format!("{dir}/lavapipe-1-thread.toml"),
        "--allow-hw-mismatch",
        "--transfer-from",
        "lavapipe",
        "--format",
        "json",
    ]));
    assert_documented("every point", &headline_pct(&doc), &EVERY);
    let matmul = doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "matmul fp32")
        .unwrap();
    let got_matmul = [
        num(matmul, "median_ape") * 100.0,
        num(matmul, "p90_ape") * 100.0,
    ];
    assert_documented("matmul fp32", &got_matmul, &MATMUL);
    // Every prediction is labelled as carried over, and carries a finite bar.
    for r in doc["residuals"].as_array().unwrap() {
        let p = r["provenance"].as_str().unwrap();
        assert!(p == "transferred" || p == "roofline", "{p}");
        assert!(r["bar_pct"].as_f64().is_some_and(f64::is_finite), "{r}");
    }
}
