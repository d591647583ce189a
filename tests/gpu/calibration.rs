//! Calibration on a sweep measured now, on the wgpu adapter.

use crate::common::{gpucost, run_json, run_ok};

/// The whole machinery on a fresh sweep measured now: bench on lavapipe, calibrate, validate.
pub fn a_fresh_lavapipe_sweep_calibrates_better_than_the_roofline() {
    let dir = tempfile::TempDir::new().unwrap();
    let shapes = dir.path().join("shapes.toml");
    let mut text = String::new();
    for s in [16, 24, 32, 48, 64, 96, 128, 160] {
        text += &format!("[[matmul]]\nm = {s}\nn = {s}\nk = {s}\n");
    }
    std::fs::write(&shapes, text).unwrap();
    let results = dir.path().join("results");
    run_ok(
        gpucost()
            .args([
                "bench",
                "--op",
                "matmul",
                "--dtype",
                "f32",
                "--variant",
                "regblock",
            ])
            .args(["--budget-s", "0.2", "--shapes"])
            .arg(&shapes)
            .arg("--out")
            .arg(&results),
    );
    let v = run_json(
        gpucost()
            .args(["validate", "--format", "json", "--results"])
            .arg(&results),
    );
    // Every shape once left out, plus the regions held out whole.
    assert!(v["n"].as_u64().unwrap() >= 8, "{}", v["n"]);
    let (median, roofline) = (
        v["median_ape"].as_f64().unwrap(),
        v["roofline_median_ape"].as_f64().unwrap(),
    );
    assert!(
        median < roofline,
        "calibrated {median} vs roofline {roofline}"
    );
}
