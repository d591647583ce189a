//! `gpucost calibrate` and `gpucost validate` on the committed lavapipe results: the calibrated
//! model must beat the plain roofline on shapes it was not fitted to.

mod common;
use common::{gpucost, path};

#[test]
fn validation_json_keeps_its_keys_and_beats_the_roofline_on_lavapipe() {
    let out = gpucost()
        .args(["validate", "--results"])
        .arg(path("results/llvmpipe-llvm-15-0-6-256-bits"))
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
    let out = gpucost()
        .args(["calibrate", "--results"])
        .arg(path("results/llvmpipe-llvm-15-0-6-256-bits"))
        .arg("--out")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cal: gpucost::cost::calibrated::Calibration =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(cal.profile, "lavapipe");
    assert_eq!(cal.implementation, "best");
    assert!(!cal.sources.is_empty() && !cal.git_revisions.is_empty());
    assert!(
        cal.groups
            .iter()
            .all(|g| g.points.iter().all(|p| p.measured_s > 0.0 && p.sol_s > 0.0))
    );
    assert!(cal.error_pct.interpolated.is_some() || cal.error_pct.extrapolated.is_some());
}

#[test]
fn results_from_several_devices_need_a_choice() {
    let e = common::user_error(&["validate", "--results", &path("results")]);
    assert!(e.contains("2 devices") && e.contains("--device"), "{e}");
}
