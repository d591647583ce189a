//! The fp32 SIMT GEMM's logic on the CPU: `scripts/sgemm_cuda_on_cpu.cpp` compiles
//! `kernels/cuda/matmul_fp32_simt.cu` with a C++ compiler and runs it with one thread per CUDA
//! thread and a barrier for `__syncthreads`, on the grid and block the spec's launch gives, with
//! A, B and C ending at an inaccessible page and every float4 access checked for alignment.
//! Compared with A·B in double: no GPU here, so this is what checks the kernel's edges, vector
//! paths and double buffering before a device run.

use gpucost::measure::backend::cuda::{Cuda, Layouts, spec_for};
use gpucost::model::dtype::DType;
use gpucost::model::ops::{Matmul, Op};
use std::process::Command;

pub fn the_simt_gemm_matches_the_reference_on_the_cpu() {
    let dir = tempfile::TempDir::new().unwrap();
    let exe = crate::cuda_on_cpu::build_emulation(&dir, "sgemm_cuda_on_cpu.cpp");
    // (batch, m, n, k): one element; nothing a multiple of 4, in a batch; ragged past one
    // 128-tile with a K tail under one stage; aligned rows (float4 paths) in a batch with K over
    // five stages; aligned k and n with ragged m and a half stage at the end; a tall skinny and a
    // wide short problem.
    let shapes = [
        (1, 1, 1, 1),
        (2, 37, 53, 29),
        (1, 130, 131, 7),
        (3, 64, 128, 40),
        (1, 129, 260, 100),
        (1, 200, 3, 33),
        (1, 5, 300, 12),
    ];
    let mut failures = Vec::new();
    for (seed, (batch, m, n, k)) in shapes.into_iter().enumerate() {
        let op = Op::Matmul(Matmul::new(batch, m, n, k, DType::Fp32));
        for variant in ["simt", "simt-64"] {
            let spec = spec_for(variant, &op).unwrap();
            let Cuda::Nvrtc { launches, .. } = spec.kernel else {
                panic!("{variant} is ours")
            };
            let l = launches(&op, &Layouts::default()).unwrap().remove(0);
            let mut args = vec![l.entry.clone()];
            args.extend([m, n, k, batch].map(|x| x.to_string()));
            args.extend([l.grid.0, l.grid.1, l.grid.2, l.block.0].map(|x| x.to_string()));
            args.push((seed + 1).to_string());
            let run = Command::new(&exe).args(&args).output().unwrap();
            let said = String::from_utf8_lossy(&run.stdout);
            eprint!("{variant} {said}");
            if !run.status.success() {
                failures.push(format!("{variant} {op}: {said}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
