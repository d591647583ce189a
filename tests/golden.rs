//! Golden predictions: every figure `gpucost predict --format json` gives for the shipped models ×
//! catalog GPUs × dtypes × {calibrated, roofline} (and a few non-default setups) stays what it
//! was when the golden file was written. `GPUCOST_BLESS=1 cargo test --test golden` rewrites
//! the file; a change to it is a change to every user's answers and needs a reason.
//!
//! Decode is priced from sampled contexts instead of step by step, so the figures derived from
//! the time per output token may move by at most `DECODE_TOLERANCE`; everything else matches to
//! rounding (`EXACT_TOLERANCE`). Keys added since the file was written are allowed; keys
//! removed or changed are not.

mod common;

use common::gpucost;
use serde_json::{Value, json};
use std::io::Write;

const GOLDEN: &str = "tests/golden/predict.jsonl";
/// Relative tolerance for figures that do not depend on the decode steps.
const EXACT_TOLERANCE: f64 = 1e-9;
/// Relative tolerance for the decode figures (TPOT and what is computed from it).
const DECODE_TOLERANCE: f64 = 1e-3;
/// JSON paths (dot-separated, under the top level) whose values come from the decode steps.
const DECODE_FIELDS: [&str; 6] = [
    "inference.tpot_s",
    "inference.tpot_error_pct",
    "inference.decode_tokens_per_s",
    "inference.request_latency_s",
    "inference.energy_j_per_output_token",
    "inference.usd_per_million_output_tokens",
];

const MODELS: [&str; 7] = [
    "models/Llama-2-13b-hf.json",
    "models/Llama-2-7b-hf.json",
    "models/Meta-Llama-3-8B.json",
    "models/Mistral-7B-Instruct-v0.1.json",
    "models/Mixtral-8x7B-Instruct-v0.1.json",
    "models/gpt2-xl.json",
    "models/gpt2.json",
];
const GPUS: [&str; 8] = [
    "h100-sxm",
    "h100-pcie",
    "h200-sxm",
    "a100-sxm-80gb",
    "a100-sxm-40gb",
    "l40s",
    "rtx-4090",
    "lavapipe",
];
const DTYPES: [&str; 4] = ["bf16", "fp16", "fp8-e4m3", "fp32"];

/// Every argument list the golden file covers.
fn cases() -> Vec<Vec<String>> {
    let mut cases = Vec::new();
    for model in MODELS {
        for gpu in GPUS {
            for dtype in DTYPES {
                for roofline in [false, true] {
                    let mut args = vec!["--model", model, "--hw", gpu, "--dtype", dtype];
                    if roofline {
                        args.push("--roofline");
                    }
                    cases.push(args.iter().map(|s| s.to_string()).collect());
                }
            }
        }
    }
    // Non-default setups: batch, lengths, recompute, KV dtype, unfused attention, a window
    // model, a paper model, and the per-op breakdown.
    let extra: [&[&str]; 8] = [
        &[
            "--model",
            "llama-3-8b",
            "--hw",
            "h100-sxm",
            "--batch",
            "8",
            "--seq",
            "2048",
            "--prompt",
            "512",
            "--gen",
            "64",
        ],
        &[
            "--model",
            "llama-3-8b",
            "--hw",
            "h100-sxm",
            "--recompute",
            "full",
            "--batch",
            "4",
        ],
        &[
            "--model",
            "mixtral-8x7b",
            "--hw",
            "h200-sxm",
            "--recompute",
            "selective",
            "--kv-dtype",
            "fp8-e4m3",
            "--batch",
            "16",
        ],
        &[
            "--model",
            "mistral-7b",
            "--hw",
            "a100-sxm-80gb",
            "--no-fused-attention",
            "--prompt",
            "8192",
            "--gen",
            "1000",
        ],
        &[
            "--model",
            "examples/paper-model.toml",
            "--hw",
            "h100-sxm",
            "--gen",
            "2",
        ],
        &[
            "--model",
            "gpt2",
            "--hw",
            "lavapipe",
            "--dtype",
            "fp32",
            "--gen",
            "1",
            "--breakdown",
        ],
        &[
            "--model",
            "llama-3-8b",
            "--hw",
            "h100-sxm",
            "--breakdown",
            "--gen",
            "17",
        ],
        &[
            "--model",
            "mixtral-8x7b",
            "--hw",
            "h100-sxm",
            "--breakdown",
            "--roofline",
            "--batch",
            "3",
        ],
    ];
    for args in extra {
        cases.push(args.iter().map(|s| s.to_string()).collect());
    }
    cases
}

/// What `predict` gives for `args`: the JSON document, or the exit code and error line.
fn run(args: &[String]) -> Value {
    let out = gpucost()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("predict")
        .args(args)
        .args(["--format", "json"])
        .output()
        .expect("run gpucost");
    if out.status.success() {
        serde_json::from_slice(&out.stdout).expect("predict JSON")
    } else {
        json!({
            "exit": out.status.code(),
            "stderr": String::from_utf8_lossy(&out.stderr).trim_end(),
        })
    }
}

fn is_decode_field(path: &str) -> bool {
    DECODE_FIELDS.contains(&path)
}

/// Differences between the golden value and the new one, as readable lines.
fn compare(path: &str, golden: &Value, new: &Value, out: &mut Vec<String>) {
    match (golden, new) {
        (Value::Object(g), Value::Object(n)) => {
            for (k, gv) in g {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match n.get(k) {
                    Some(nv) => compare(&p, gv, nv, out),
                    None => out.push(format!("{p}: missing")),
                }
            }
        }
        (Value::Array(g), Value::Array(n)) => {
            if g.len() != n.len() {
                out.push(format!("{path}: {} entries, was {}", n.len(), g.len()));
                return;
            }
            for (i, (gv, nv)) in g.iter().zip(n).enumerate() {
                compare(&format!("{path}[{i}]"), gv, nv, out);
            }
        }
        (Value::Number(g), Value::Number(n)) => {
            let (g, n) = (
                g.as_f64().unwrap_or(f64::NAN),
                n.as_f64().unwrap_or(f64::NAN),
            );
            let tolerance = if is_decode_field(path) {
                DECODE_TOLERANCE
            } else {
                EXACT_TOLERANCE
            };
            let rel = (n - g).abs() / g.abs().max(1e-300);
            if !(rel <= tolerance || n == g) {
                out.push(format!("{path}: {n}, was {g} (rel {rel:.2e})"));
            }
        }
        (g, n) if g != n => out.push(format!("{path}: {n}, was {g}")),
        _ => {}
    }
}

#[test]
fn predictions_match_the_golden_file() {
    let cases = cases();
    let file = format!("{}/{GOLDEN}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("GPUCOST_BLESS").is_some() {
        let mut w = std::fs::File::create(&file).expect("create golden file");
        for args in &cases {
            let line = json!({"args": args, "output": run(args)});
            writeln!(w, "{line}").expect("write golden file");
        }
        return;
    }
    let text = std::fs::read_to_string(&file).expect("golden file (GPUCOST_BLESS=1 writes it)");
    let golden: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("golden line"))
        .collect();
    assert_eq!(golden.len(), cases.len(), "golden file covers other cases");
    let mut failures = Vec::new();
    for (g, args) in golden.iter().zip(&cases) {
        assert_eq!(g["args"], json!(args), "golden file lists other cases");
        let mut diffs = Vec::new();
        compare("", &g["output"], &run(args), &mut diffs);
        if !diffs.is_empty() {
            failures.push(format!("{}:\n  {}", args.join(" "), diffs.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases changed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The golden file would be worthless if it held only errors: most cases predict.
#[test]
fn the_golden_file_holds_predictions() {
    if std::env::var_os("GPUCOST_BLESS").is_some() {
        return; // the file is being rewritten
    }
    let file = format!("{}/{GOLDEN}", env!("CARGO_MANIFEST_DIR"));
    let Ok(text) = std::fs::read_to_string(file) else {
        return; // the other test says the file is missing
    };
    let predictions = text
        .lines()
        .filter(|l| l.contains("\"schema_version\""))
        .count();
    assert!(predictions >= 300, "only {predictions} golden predictions");
}
