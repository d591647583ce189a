//! `gpucost devices` and `gpucost bench` as a user runs them, on lavapipe (or any adapter).

use crate::common::{self, files_under, gpucost, run_json, run_ok};

pub fn devices_lists_every_backend_and_why_one_is_missing() {
    let v = run_json(gpucost().args(["devices", "--format", "json"]));
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["backend"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cpu", "wgpu", "cuda"]);
    for b in v.as_array().unwrap() {
        if !b["available"].as_bool().unwrap() {
            assert!(!b["reason"].as_str().unwrap().is_empty());
        }
    }
}

/// Without --out, records go to ./gpucost-results/<device>/, never into a results/ folder.
pub fn bench_writes_one_record_per_variant_and_shape() {
    let dir = tempfile::TempDir::new().unwrap();
    let shapes = dir.path().join("shapes.toml");
    std::fs::write(&shapes, "[[attention]]\nbatch = 1\nheads = 4\nkv_heads = 2\nseq_q = 9\nhead_dim = 64\ncausal = true\n").unwrap();
    let out = run_ok(
        gpucost()
            .current_dir(dir.path())
            .args([
                "bench",
                "--op",
                "attention",
                "--dtype",
                "f32",
                "--budget-s",
                "0.2",
                "--input-sets",
                "2",
                "--shapes",
            ])
            .arg(&shapes),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("fused") && stdout.contains("naive") && stdout.contains("wrote 2 records"),
        "{stdout}"
    );
    assert!(!dir.path().join("results").exists());
    let files: Vec<_> = files_under(&dir.path().join("gpucost-results"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    assert_eq!(files.len(), 1);
    let read = gpucost::measure::records::read(&files[0]).unwrap();
    assert_eq!(read.records.len(), 2);
    assert_eq!(
        files[0].parent().unwrap().file_name().unwrap().to_str(),
        Some(read.records[0].device.slug().as_str())
    );
    for r in &read.records {
        assert!(r.correctness.pass);
        let t = r.timing.as_ref().unwrap();
        assert!(t.summary.median_s > 0.0 && t.flops_per_s > 0.0 && !t.samples_s.is_empty());
        assert!(t.roofline_fraction.is_some());
    }
}

/// A shape the named variant cannot run is skipped with a line and counted; the rest run.
pub fn bench_skips_shapes_a_named_variant_cannot_run() {
    let dir = tempfile::TempDir::new().unwrap();
    let shapes = dir.path().join("shapes.toml");
    // The WGSL attention kernels read head dims in vec4s: 6 is not offered.
    let entry = |d: u32| {
        format!("[[attention]]\nbatch = 1\nheads = 2\nseq_q = 5\nhead_dim = {d}\ncausal = true\n")
    };
    std::fs::write(&shapes, entry(6) + &entry(64) + &entry(6)).unwrap();
    let out = run_ok(
        gpucost()
            .args([
                "bench",
                "--op",
                "attention",
                "--dtype",
                "f32",
                "--variant",
                "fused",
                "--budget-s",
                "0.1",
                "--shapes",
            ])
            .arg(&shapes)
            .arg("--out")
            .arg(dir.path()),
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stdout.contains("wrote 1 records"), "{stdout}");
    assert_eq!(
        stderr
            .matches("for fused: not offered for this shape")
            .count(),
        2,
        "{stderr}"
    );
    assert!(
        stderr.contains("skipped 2 of 3 shapes: --variant fused not offered"),
        "{stderr}"
    );
}

pub fn bench_rejects_bad_flags_with_one_line() {
    let e = common::user_error(&["bench", "--op", "matmul", "--dtype", "bf17"]);
    assert!(e.contains("--dtype: unknown dtype 'bf17'"), "{e}");
    let dir = tempfile::TempDir::new().unwrap();
    let shapes = dir.path().join("s.toml");
    std::fs::write(&shapes, "[[matmul]]\nm = 0\nn = 1\nk = 1\n").unwrap();
    let e = common::user_error(&[
        "bench",
        "--op",
        "matmul",
        "--no-save",
        "--shapes",
        shapes.to_str().unwrap(),
    ]);
    assert!(
        e.contains("matmul[0]: m, n, k and batch must be positive"),
        "{e}"
    );
    let e = common::user_error(&["bench", "--op", "matmul", "--input-sets", "0"]);
    assert!(e.contains("--input-sets must be positive, got 0"), "{e}");
    // A name the backend has no kernel by is a mistake, not a shape to skip.
    let e = common::user_error(&["bench", "--op", "matmul", "--variant", "regblok"]);
    assert!(
        e.contains("--variant: 'regblok' is no wgpu variant for these fp32 shapes (have: naive, tiled, regblock)"),
        "{e}"
    );
    let e = common::user_error(&[
        "bench",
        "--backend",
        "cuda",
        "--op",
        "attention",
        "--dtype",
        "bf16",
        "--variant",
        "cublas",
    ]);
    assert!(e.contains("'cublas' is no cuda variant"), "{e}");
}

/// A shapes file with a shape too large for the device is refused by name before anything is
/// allocated (a 100000³ fp32 matmul moves 120 GB).
pub fn a_shape_too_large_for_the_device_is_refused() {
    let dir = tempfile::TempDir::new().unwrap();
    let shapes = dir.path().join("huge.toml");
    std::fs::write(&shapes, "[[matmul]]\nm = 100000\nn = 100000\nk = 100000\n").unwrap();
    // Mesa prints a line of its own without a runtime dir; give it one.
    let runtime = tempfile::TempDir::new().unwrap();
    let out = gpucost()
        .env("XDG_RUNTIME_DIR", runtime.path())
        .args([
            "bench",
            "--op",
            "matmul",
            "--dtype",
            "f32",
            "--no-save",
            "--shapes",
        ])
        .arg(&shapes)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let e = stderr.lines().last().unwrap_or_default();
    assert!(
        e.contains("huge.toml") && e.contains("shape 1") && e.contains("quarter"),
        "{e}"
    );
}

/// A dtype the backend has no kernel for measures nothing: refused, not an empty table.
pub fn a_dtype_the_backend_cannot_run_is_refused() {
    let runtime = tempfile::TempDir::new().unwrap();
    let out = gpucost()
        .env("XDG_RUNTIME_DIR", runtime.path())
        .args([
            "bench",
            "--backend",
            "wgpu",
            "--op",
            "matmul",
            "--dtype",
            "bf16",
            "--no-save",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let e = stderr.lines().last().unwrap_or_default();
    assert!(
        e.contains("nothing to measure") && e.contains("bf16"),
        "{e}"
    );
}

/// Without a desktop session (no XDG_RUNTIME_DIR) a wgpu command prints only its own output:
/// Mesa's device-select layer would otherwise print a libwayland error twice.
pub fn wgpu_commands_print_no_wayland_noise() {
    let out = gpucost()
        .args(["devices"])
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("NODEVICE_SELECT")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("XDG_RUNTIME_DIR"), "{stderr}");
}
