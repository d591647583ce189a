//! Every CUDA kernel compiles with NVRTC for sm_80, sm_89 and sm_90a through the same code path
//! the program uses. Without NVRTC the test says why it skipped — except under CI=true, where a
//! missing NVRTC is a failure (CI installs it from PyPI).

#![cfg(feature = "measure")]

use gpucost::measure::backend::cuda::nvrtc;

#[test]
fn every_kernel_compiles_for_ampere_ada_and_hopper() {
    if !nvrtc::available() || nvrtc::include_dir().is_err() {
        let why = if nvrtc::available() {
            nvrtc::include_dir().unwrap_err().to_string()
        } else {
            "libnvrtc not found on LD_LIBRARY_PATH".to_string()
        };
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true needs NVRTC: {why}"
        );
        eprintln!("skipping CUDA compile test: {why}");
        return;
    }
    let mut failures = Vec::new();
    for (file, source) in nvrtc::KERNEL_FILES {
        for arch in ["compute_80", "compute_89", "compute_90a"] {
            match nvrtc::compile(file, source, arch) {
                Ok(ptx) => assert!(ptx.to_src().contains(".entry"), "{file} {arch}: no kernels"),
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The tensor-core kernels really use the tensor-core instructions (and fp8 only where it exists).
#[test]
fn mma_kernels_emit_mma_instructions() {
    if !nvrtc::available() || nvrtc::include_dir().is_err() {
        eprintln!("skipping: no NVRTC");
        return;
    }
    let (file, src) = nvrtc::KERNEL_FILES
        .iter()
        .find(|(f, _)| *f == "matmul_mma.cu")
        .unwrap();
    let ptx = nvrtc::compile(file, src, "compute_89").unwrap().to_src();
    for needle in [
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32",
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32",
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32",
        "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32",
        "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32",
        "cp.async.cg.shared.global",
    ] {
        assert!(ptx.contains(needle), "compute_89 PTX lacks {needle}");
    }
    let ampere = nvrtc::compile(file, src, "compute_80").unwrap().to_src();
    assert!(
        !ampere.contains("e4m3.e4m3"),
        "fp8 MMA must not be emitted for sm_80"
    );
}
