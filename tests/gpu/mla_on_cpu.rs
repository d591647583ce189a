//! The CUDA MLA decode kernel's logic on the CPU: `scripts/mla_cuda_on_cpu.cpp` compiles
//! `kernels/cuda/attention_mla_decode.cu` with a C++ compiler, runs it with one thread per CUDA
//! thread and the warp-wide operations (mma.sync, ldmatrix, shfl.xor) emulated from their
//! fragment layouts, and compares it with attention over the latent in double (no GPU here, so
//! this is what checks the kernel's indexing, fragments, synchronization and split merge between
//! device runs).

use std::process::Command;

pub fn the_mla_decode_kernel_matches_attention_over_the_latent_on_the_cpu() {
    let dir = tempfile::TempDir::new().unwrap();
    let exe = crate::cuda_on_cpu::build_emulation(&dir, "mla_cuda_on_cpu.cpp");
    // (batch, heads, kv heads, context[, window]): one key; a partial tile; heads that leave a
    // block's mma rows part-filled over three splits; two latent heads with a window that
    // empties the first splits.
    let shapes: [&[&str]; 4] = [
        &["1", "16", "1", "1"],
        &["1", "16", "1", "37"],
        &["2", "20", "1", "150"],
        &["1", "32", "2", "200", "70"],
    ];
    for ty in ["f16", "bf16"] {
        for shape in shapes {
            let run = Command::new(&exe).arg(ty).args(shape).output().unwrap();
            let said = String::from_utf8_lossy(&run.stdout);
            eprint!("{ty} {said}");
            assert!(run.status.success(), "{ty} {shape:?}: {said}");
        }
    }
}
