//! The chunked CUDA scan's logic on the CPU: `scripts/scan_cuda_on_cpu.cpp` compiles the kernel
//! with a C++ compiler, runs it with one thread per CUDA thread and a barrier for
//! `__syncthreads`, and compares it with the token-by-token recurrence in double (no GPU here,
//! so this is what checks the kernel's indexing, synchronization and algebra between device runs).

use std::path::Path;
use std::process::Command;

/// The C++ compiler to build the emulation with, if there is one.
pub fn compiler() -> Option<&'static str> {
    ["c++", "g++", "clang++"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Builds `scripts/<script>` into `dir`: the emulation's executable.
pub fn build_emulation(dir: &tempfile::TempDir, script: &str) -> std::path::PathBuf {
    let cxx = compiler().expect("a C++ compiler");
    let exe = dir.path().join(script.trim_end_matches(".cpp"));
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let out = Command::new(cxx)
        .args(["-std=c++20", "-O2", "-pthread", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

pub fn the_chunked_cuda_scan_matches_the_recurrence_on_the_cpu() {
    let dir = tempfile::TempDir::new().unwrap();
    let exe = build_emulation(&dir, "scan_cuda_on_cpu.cpp");
    // One token; a ragged last chunk with value columns that part-fill a block; a whole chunk
    // over two sequences; dk 128 over three chunks; gates fixed at 1.
    let shapes: [&[&str]; 5] = [
        &["1", "1", "1", "8", "8"],
        &["1", "2", "17", "16", "40"],
        &["2", "1", "64", "64", "16"],
        &["1", "1", "150", "128", "32"],
        &["1", "1", "100", "32", "16", "1.0"],
    ];
    for ty in ["f32", "f16", "bf16"] {
        for shape in shapes {
            let run = Command::new(&exe).arg(ty).args(shape).output().unwrap();
            let said = String::from_utf8_lossy(&run.stdout);
            eprint!("{ty} {said}");
            assert!(run.status.success(), "{ty} {shape:?}: {said}");
        }
    }
}
