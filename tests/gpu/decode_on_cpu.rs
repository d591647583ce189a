//! The split-KV decode kernel's logic on the CPU: `scripts/decode_cuda_on_cpu.cpp` compiles
//! `kernels/cuda/attention_decode.cu` with a C++ compiler, runs it with one thread per CUDA
//! thread and shfl.xor emulated, on the split the spec's launch chooses (splits and keys per
//! split from batch × heads × context), and compares it with attention in double (no GPU here,
//! so this is what checks the split bounds, the window and the merge between device runs).

use gpucost::measure::backend::cuda::{Arg, Cuda, Layouts, spec_for};
use gpucost::model::dtype::DType;
use gpucost::model::ops::{Attention, Op, Pass};
use std::process::Command;

pub fn the_decode_kernel_matches_attention_on_the_cpu() {
    let dir = tempfile::TempDir::new().unwrap();
    let exe = crate::cuda_on_cpu::build_emulation(&dir, "decode_cuda_on_cpu.cpp");
    // (batch, heads, kv heads, context, window, head dim): a few heads split finely; a window
    // the splits tile from its first key; a context under one key step; many splits over
    // grouped heads; a batch with a window of part of the context.
    let shapes = [
        (1, 2, 1, 300, None, 128),
        (1, 4, 2, 500, Some(130), 64),
        (1, 4, 2, 5, None, 64),
        (2, 4, 4, 2000, None, 128),
        (3, 8, 2, 1000, Some(600), 64),
    ];
    let mut failures = Vec::new();
    for dtype in [DType::Fp16, DType::Bf16] {
        for (batch, q_heads, kv_heads, kv_len, window, d) in shapes {
            let op = Op::Attention(Attention {
                batch,
                q_heads,
                kv_heads,
                q_len: 1,
                kv_len,
                qk_head_dim: d,
                v_head_dim: d,
                causal: true,
                window,
                dtype,
                kv_dtype: dtype,
                fused: true,
                pass: Pass::Forward,
                shared_kv: false,
            });
            let spec = spec_for("decode", &op).unwrap();
            let Cuda::Nvrtc { launches, .. } = spec.kernel else {
                panic!("decode is ours")
            };
            let l = launches(&op, &Layouts::default()).unwrap();
            let Arg::I32(chunk) = l[0].args[7] else {
                panic!("{:?}", l[0].args)
            };
            let ty = if dtype == DType::Fp16 { "f16" } else { "bf16" };
            let args = [
                d,
                batch,
                q_heads,
                kv_heads,
                kv_len,
                window.unwrap_or(0),
                chunk as u64,
                u64::from(l[0].grid.0),
            ]
            .map(|x| x.to_string());
            let run = Command::new(&exe).arg(ty).args(args).output().unwrap();
            let said = String::from_utf8_lossy(&run.stdout);
            eprint!("{ty} {said}");
            if !run.status.success() {
                failures.push(format!("{op}: {said}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
