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

/// What ptxas reports for one entry point of a kernel file compiled to a CUBIN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub entry: String,
    /// Registers per thread.
    pub registers: u32,
    pub spill_stores_bytes: u32,
    pub spill_loads_bytes: u32,
    pub stack_bytes: u32,
    /// Static shared memory per block; a launch adds its dynamic shared memory.
    pub static_smem_bytes: u32,
    /// Named barriers the entry may use.
    pub barriers: u32,
}

/// Compiles one kernel file (with the prelude) to a CUBIN for the real architecture `arch`
/// ("sm_90a") with ptxas verbose (`--ptxas-options=-v`), and returns each entry point's
/// registers, spills, stack and static shared memory as ptxas reports them, and ptxas's
/// warnings and performance notes (e.g. wgmma serialized), one line each. No GPU needed.
pub fn resources(
    file: &str,
    source: &str,
    arch: &str,
) -> Result<(Vec<Resources>, Vec<String>), BackendError> {
    use cudarc::nvrtc::result as r;
    if !available() {
        return Err(BackendError::Unavailable("cuda: libnvrtc not found".into()));
    }
    let include = include_dir()?;
    let full = format!("{PRELUDE}\n#line 1 \"{file}\"\n{source}");
    let fail = |e: cudarc::nvrtc::result::NvrtcError| {
        BackendError::Device(format!("{file}: NVRTC failed: {e:?}"))
    };
    let src = std::ffi::CString::new(full).map_err(|e| BackendError::Device(e.to_string()))?;
    let name = std::ffi::CString::new(file).map_err(|e| BackendError::Device(e.to_string()))?;
    let prog = r::create_program(&src, Some(&name)).map_err(fail)?;
    let options = [
        format!("--gpu-architecture={arch}"),
        "--std=c++17".into(),
        "-default-device".into(),
        "--ptxas-options=-v".into(),
        format!("--include-path={}", include.display()),
    ];
    // SAFETY: `prog` was created above and is destroyed once, below.
    let compiled = unsafe { r::compile_program(prog, &options) };
    let log = unsafe { r::get_program_log(prog) };
    let _ = unsafe { r::destroy_program(prog) };
    let log: String = log
        .map_err(fail)?
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8 as char)
        .collect();
    if compiled.is_err() {
        return Err(BackendError::Device(format!(
            "{file} does not compile for {arch}: {}",
            log.trim().replace('\n', " | ")
        )));
    }
    Ok(parse_ptxas_log(&log))
}

/// The entries and warnings of a ptxas `-v` log.
pub fn parse_ptxas_log(log: &str) -> (Vec<Resources>, Vec<String>) {
    // The number just before `what` in `line` ("... 232 registers ...").
    let number = |line: &str, what: &str| -> Option<u32> {
        let at = line.find(what)?;
        line[..at].split_whitespace().last()?.parse().ok()
    };
    let mut out: Vec<Resources> = Vec::new();
    let mut warnings = Vec::new();
    for line in log.lines() {
        // ptxas reports a serialized wgmma as info ("(C7515) Potential Performance Loss").
        if line.contains("warning") || line.contains("Performance Loss") {
            warnings.push(line.trim().to_string());
        } else if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let entry = rest.split('\'').next().unwrap_or_default().to_string();
            out.push(Resources {
                entry,
                ..Resources::default()
            });
        } else if let Some(cur) = out.last_mut() {
            if line.contains("bytes stack frame") {
                cur.stack_bytes = number(line, "bytes stack frame").unwrap_or(0);
                cur.spill_stores_bytes = number(line, "bytes spill stores").unwrap_or(0);
                cur.spill_loads_bytes = number(line, "bytes spill loads").unwrap_or(0);
            } else if line.contains("Used") && line.contains("registers") {
                cur.registers = number(line, "registers").unwrap_or(0);
                cur.barriers = number(line, "barriers").unwrap_or(0);
                cur.static_smem_bytes = number(line, "bytes smem").unwrap_or(0);
            }
        }
    }
    (out, warnings)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_ptxas_log_gives_each_entrys_resources() {
        let log = "ptxas info    : 75 bytes gmem
ptxas info    : Compiling entry function 'k1' for 'sm_90a'
ptxas info    : Function properties for k1
ptxas         .     32 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 168 registers, used 16 barriers, 2048 bytes smem, 32 bytes cumulative stack size
ptxas info    : Compile time = 96.818 ms
ptxas info    : (C7515) Potential Performance Loss: wgmma.mma_async instructions are serialized
ptxas info    : Compiling entry function 'k2' for 'sm_90a'
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 40 registers, used 1 barriers
";
        let (entries, warnings) = super::parse_ptxas_log(log);
        assert_eq!(entries.len(), 2);
        let k1 = &entries[0];
        assert_eq!(
            (
                k1.entry.as_str(),
                k1.registers,
                k1.barriers,
                k1.static_smem_bytes
            ),
            ("k1", 168, 16, 2048)
        );
        assert_eq!(
            (k1.stack_bytes, k1.spill_stores_bytes, k1.spill_loads_bytes),
            (32, 8, 4)
        );
        assert_eq!(
            (entries[1].registers, entries[1].static_smem_bytes),
            (40, 0)
        );
        assert_eq!(warnings.len(), 1);
    }
}
