//! Run-time compilation of `kernels/cuda/*.cu` with NVRTC: finding the CUDA headers and
//! compiling for a device's architecture. The kernel files are listed in `specs`.

use super::super::BackendError;
use std::path::{Path, PathBuf};

const PRELUDE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/kernels/cuda/prelude.cuh"
));

/// Whether the NVRTC library can be loaded (cudarc panics on first use otherwise).
pub fn available() -> bool {
    // SAFETY: only probes for the shared library; calls nothing in it.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

fn has_headers(dir: &Path) -> bool {
    dir.join("cuda_fp16.h").is_file()
}

/// The directory holding `cuda_fp16.h` and friends: `$GPUCOST_CUDA_INCLUDE`, then
/// `$CUDA_HOME`/`$CUDA_PATH` `/include`, `/usr/local/cuda/include`, `/opt/cuda/include`, then the
/// `../include` beside each `$LD_LIBRARY_PATH` entry (where pip's NVIDIA wheels keep them).
pub fn include_dir() -> Result<PathBuf, BackendError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(dir) = std::env::var("GPUCOST_CUDA_INCLUDE") {
        candidates.push(dir.into());
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Ok(root) = std::env::var(var) {
            candidates.push(Path::new(&root).join("include"));
        }
    }
    candidates.push("/usr/local/cuda/include".into());
    candidates.push("/opt/cuda/include".into());
    if let Ok(paths) = std::env::var("LD_LIBRARY_PATH") {
        for p in paths.split(':').filter(|p| !p.is_empty()) {
            let lib = Path::new(p);
            candidates.push(lib.join("../include"));
            // The CUDA 12 wheels keep headers in a sibling package: nvidia/cuda_runtime/include.
            candidates.push(lib.join("../../cuda_runtime/include"));
        }
    }
    candidates
        .iter()
        .find(|d| has_headers(d))
        .cloned()
        .ok_or_else(|| {
            BackendError::Unavailable(format!(
                "CUDA headers (cuda_fp16.h) not found; set GPUCOST_CUDA_INCLUDE or CUDA_HOME (looked in: {})",
                candidates
                    .iter()
                    .map(|c| c.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// NVRTC's virtual architecture for a compute capability: compute_90a on Hopper (wgmma and
/// the other sm_90a-only instructions), compute_XY elsewhere.
pub fn arch_for(major: i32, minor: i32) -> String {
    if (major, minor) == (9, 0) {
        "compute_90a".into()
    } else {
        format!("compute_{major}{minor}")
    }
}

/// Compiles one kernel file (with the shared prelude) to PTX for `arch` (e.g. "compute_90a").
pub fn compile(file: &str, source: &str, arch: &str) -> Result<cudarc::nvrtc::Ptx, BackendError> {
    if !available() {
        return Err(BackendError::Unavailable(
            "cuda: libnvrtc not found (install the CUDA toolkit, or pip's nvidia-cuda-nvrtc and put its lib/ on LD_LIBRARY_PATH)".into(),
        ));
    }
    let include = include_dir()?;
    let opts = cudarc::nvrtc::CompileOptions {
        options: vec![
            format!("--gpu-architecture={arch}"),
            "--std=c++17".into(),
            "-default-device".into(),
        ],
        include_paths: vec![include.display().to_string()],
        name: Some(file.to_string()),
        ..Default::default()
    };
    let full = format!("{PRELUDE}\n#line 1 \"{file}\"\n{source}");
    cudarc::nvrtc::compile_ptx_with_opts(full, opts).map_err(|e| match e {
        cudarc::nvrtc::CompileError::CompileError { log, .. } => BackendError::Device(format!(
            "{file} does not compile for {arch}: {}",
            log.to_string_lossy().trim().replace('\n', " | ")
        )),
        other => BackendError::Device(format!("{file}: NVRTC failed: {other:?}")),
    })
}
