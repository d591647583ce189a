//! `gpucost hw list` and `gpucost hw show` as a user runs them.

mod common;
use common::gpucost;

const CATALOG: [&str; 8] = [
    "h100-sxm",
    "h100-pcie",
    "h200-sxm",
    "a100-sxm-80gb",
    "a100-sxm-40gb",
    "l40s",
    "rtx-4090",
    "lavapipe",
];

fn stdout(args: &[&str]) -> String {
    String::from_utf8(common::run_ok(gpucost().args(args)).stdout).unwrap()
}

#[test]
fn list_names_every_catalog_gpu() {
    let table = stdout(&["hw", "list"]);
    for name in CATALOG {
        assert!(table.contains(name), "{name} missing from:\n{table}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&["hw", "list", "--format", "json"])).unwrap();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, CATALOG);
    // What prices each GPU: its own calibration, or the H100's carried over.
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.split('│').nth(1).is_some_and(|c| c.trim() == name))
            .unwrap_or_else(|| panic!("no row for {name}"))
            .to_string()
    };
    assert!(
        row("h100-sxm").contains("│ measured"),
        "{}",
        row("h100-sxm")
    );
    assert!(
        row("lavapipe").contains("│ measured"),
        "{}",
        row("lavapipe")
    );
    assert!(
        row("a100-sxm-80gb").contains("│ from h100-sxm"),
        "{}",
        row("a100-sxm-80gb")
    );
}

#[test]
fn show_gives_each_figure_with_its_source() {
    let table = stdout(&["hw", "show", "a100-sxm-40gb"]);
    assert!(
        table.contains("NVIDIA A100 Tensor Core GPU datasheet, SXM 40GB: 1,555 GB/s"),
        "{table}"
    );
    assert!(table.contains("peak_flops.int4"), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&["hw", "show", "h200-sxm", "--format", "json"])).unwrap();
    assert_eq!(json["memory_bandwidth_bytes_per_s"]["value"], 4.8e12);
    assert!(
        json["peak_flops"]["bf16"]["source"]
            .as_str()
            .unwrap()
            .contains("H200")
    );
}

#[test]
fn a_profile_file_works_like_a_catalog_name() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = h100_profile_as(&dir, "my-gpu", "");
    let table = stdout(&["hw", "show", file.to_str().unwrap()]);
    assert!(table.contains("my-gpu"), "{table}");
    let p = common::predict_json(&["--model", "gpt2", "--hw", file.to_str().unwrap()]);
    assert_eq!(p["hardware"]["name"], "my-gpu");
    assert!(
        p["provenance"]["hardware_profile"]
            .as_str()
            .unwrap()
            .contains("file")
    );
}

/// A profile's sustained compute fraction slows its compute-bound ops and nothing else, and the
/// JSON says which fraction priced the figures.
#[test]
fn a_sustained_fraction_slows_compute_bound_work_only() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = h100_profile_as(
        &dir,
        "held",
        "sustained_compute_fraction = { value = 0.8, source = \"a test\" }\n",
    );
    let plain = h100_profile_as(&dir, "plain", "");
    let args = |hw: &std::path::Path| {
        common::predict_json(&[
            "--model",
            "llama-3-8b",
            "--hw",
            hw.to_str().unwrap(),
            "--batch",
            "8",
        ])
    };
    let (held, base) = (args(&file), args(&plain));
    assert_eq!(held["provenance"]["sustained_compute_fraction"], 0.8);
    assert_eq!(base["provenance"]["sustained_compute_fraction"], 1.0);
    let ratio = |key: &str, field: &str| {
        held[key][field].as_f64().unwrap() / base[key][field].as_f64().unwrap()
    };
    // A training step is mostly compute-bound matmuls: close to 1/0.8 longer, never more.
    let step = ratio("training", "step_time_s");
    assert!(step > 1.15 && step <= 1.25 + 1e-12, "{step}");
    // A decode step at batch 8 streams the weights: memory-bound, unchanged.
    let tpot = ratio("inference", "tpot_s");
    assert!((tpot - 1.0).abs() < 0.01, "{tpot}");
}

/// The H100's catalog profile written to `dir` as `name`.toml under another name, with `lines`
/// added before its peak rates.
fn h100_profile_as(dir: &tempfile::TempDir, name: &str, lines: &str) -> std::path::PathBuf {
    let file = dir.path().join(format!("{name}.toml"));
    let text = std::fs::read_to_string(common::path("hw_profiles/h100-sxm.toml"))
        .unwrap()
        .replace("name = \"h100-sxm\"", &format!("name = \"{name}\""))
        .replacen("\n[peak_flops]", &format!("\n{lines}[peak_flops]"), 1);
    std::fs::write(&file, text).unwrap();
    file
}
