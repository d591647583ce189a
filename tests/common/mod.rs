//! Helpers shared by the integration tests: run the real binary, parse its JSON.

#![allow(dead_code)]

use assert_cmd::Command;
use serde_json::Value;

pub fn gpucost() -> Command {
    assert_cmd::cargo_bin_cmd!("gpucost")
}

/// Path of a file under tests/fixtures or models/, relative to the crate root.
pub fn path(rel: &str) -> String {
    format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs `gpucost predict ... --format json` and returns the document.
pub fn predict_json(args: &[&str]) -> Value {
    run_json(
        gpucost()
            .arg("predict")
            .args(args)
            .args(["--format", "json"]),
    )
}

/// A value at a dotted path, as f64.
pub fn num(doc: &Value, path: &str) -> f64 {
    let mut v = doc;
    for key in path.split('.') {
        v = v
            .get(key)
            .unwrap_or_else(|| panic!("missing key {path} in {doc}"));
    }
    v.as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number: {v}"))
}

/// Runs gpucost with `args`, expects exit code 2 and one line of stderr; returns that line.
pub fn user_error(args: &[&str]) -> String {
    let out = gpucost().args(args).output().expect("run gpucost");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2 for {args:?}, stderr: {stderr}"
    );
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "expected one line of stderr for {args:?}, got: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr.trim_end().to_string()
}

/// Runs a prepared gpucost command and expects it to succeed (stderr shown if not).
pub fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("run gpucost");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a prepared gpucost command, expects success, and parses its stdout as JSON.
pub fn run_json(cmd: &mut Command) -> Value {
    serde_json::from_slice(&run_ok(cmd).stdout).expect("valid JSON")
}

/// Every file below `dir`.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// wgpu adapter 0 (the GPU-side harness in tests/gpu runs this only where one opened).
#[cfg(feature = "measure")]
pub fn wgpu() -> gpucost::measure::backend::wgpu::WgpuBackend {
    gpucost::measure::backend::wgpu::WgpuBackend::open(0).expect("a wgpu adapter")
}
