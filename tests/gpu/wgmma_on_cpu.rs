//! The Hopper GEMM's logic on the CPU: `scripts/wgmma_cuda_on_cpu.cpp` compiles
//! `kernels/cuda/matmul_wgmma.cu` with a C++ compiler and runs it with one thread per CUDA thread,
//! TMA, mbarriers and wgmma emulated from the PTX ISA (the 128-byte swizzle, the descriptors'
//! canonical layouts, the accumulator fragments), on the tensor maps, grid and shared memory the
//! spec's launch gives (a grid of 3 CTAs, so each walks several tiles and the pipeline's phases
//! wrap). Compared with A·B in double: no GPU here, so this is what checks the kernel's indexing,
//! descriptors, pipeline and epilogue before a device run.

use gpucost::measure::backend::cuda::{Arg, Cuda, Layouts, spec_for};
use gpucost::model::dtype::DType;
use gpucost::model::ops::{Matmul, Op};
use std::process::Command;

pub fn the_wgmma_kernels_match_the_reference_on_the_cpu() {
    let dir = tempfile::TempDir::new().unwrap();
    let exe = crate::cuda_on_cpu::build_emulation(&dir, "wgmma_cuda_on_cpu.cpp");
    let layouts = Layouts {
        sms: Some(3),
        ..Layouts::default()
    };
    // (batch, m, n, k): one row; ragged m and n with a K tail; a batch whose K is under one
    // stage; more tiles than CTAs with K over many stages; more tile rows than a raster group.
    let shapes = [
        (1, 1, 8, 16),
        (1, 200, 264, 272),
        (3, 70, 136, 48),
        (1, 300, 520, 1008),
        (1, 1100, 136, 64),
    ];
    let mut failures = Vec::new();
    for dtype in [DType::Bf16, DType::Fp16, DType::Fp8E4m3] {
        for (batch, m, n, k) in shapes {
            let op = Op::Matmul(Matmul::new(batch, m, n, k, dtype));
            for variant in ["wgmma", "wgmma-m64"] {
                let spec = spec_for(variant, &op).unwrap();
                assert!(spec.takes(&op), "{variant} {op}");
                let Cuda::Nvrtc { launches, .. } = spec.kernel else {
                    panic!("{variant} is ours")
                };
                let l = launches(&op, &layouts).unwrap().remove(0);
                let mut args: Vec<String> = vec![l.entry.clone()];
                args.extend([m, n, k, batch].map(|x| x.to_string()));
                args.extend([l.grid.0, l.block.0, l.smem].map(|x| x.to_string()));
                for a in &l.args[..2] {
                    let Arg::TensorMap(t) = a else {
                        panic!("{variant}: {a:?} is not a tensor map")
                    };
                    args.extend(t.dims.iter().map(u64::to_string));
                    args.extend(t.strides.iter().map(u64::to_string));
                    args.extend(t.boxed.iter().map(u32::to_string));
                }
                let run = Command::new(&exe).args(&args).output().unwrap();
                let said = String::from_utf8_lossy(&run.stdout);
                eprint!("{variant} {said}");
                if !run.status.success() {
                    failures.push(format!("{variant} {op}: {said}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
