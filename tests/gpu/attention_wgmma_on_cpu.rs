//! The Hopper attention kernel's logic on the CPU: `scripts/attention_wgmma_cuda_on_cpu.cpp`
//! compiles `kernels/cuda/attention_wgmma.cu` with a C++ compiler and runs it with one thread per
//! CUDA thread, TMA, mbarriers, warp shuffles and wgmma (shared-memory and register A operands,
//! K-major and MN-major B) emulated from the PTX ISA, on the grid, shared memory, scalars and
//! tensor maps the `flash-wgmma` spec's launch gives. Compared with attention in double on the
//! same rounded inputs: no GPU here, so this is what checks the kernel's indexing, descriptors,
//! masks, online softmax and pipeline before a device run.

use gpucost::measure::backend::cuda::{Arg, Cuda, Layouts, spec_for};
use gpucost::model::dtype::DType;
use gpucost::model::ops::{Attention, Op, Pass};
use std::process::Command;

pub fn the_wgmma_attention_kernel_matches_attention_on_the_cpu() {
    let dir = tempfile::TempDir::new().unwrap();
    let exe = crate::cuda_on_cpu::build_emulation(&dir, "attention_wgmma_cuda_on_cpu.cpp");
    // (batch, q heads, kv heads, q_len, kv_len, head dim, causal, window): grouped heads over
    // three ragged query tiles and three key tiles, causal (diagonal tiles masked, later ones
    // skipped) and not; one query over a long context; more queries than keys (rows that see
    // no key); a window that starts the key range past the first tile; a tile of a few keys;
    // more key tiles than stages (6 at d 128 over 3 stages, 9 at d 64 over 4), so the ring's
    // phases wrap.
    let shapes = [
        (2, 4, 2, 300, 300, 128, true, None),
        (2, 4, 2, 200, 300, 64, false, None),
        (1, 2, 1, 1, 300, 128, true, None),
        (1, 2, 2, 300, 130, 64, true, None),
        (1, 2, 1, 290, 290, 64, true, Some(100)),
        (1, 1, 1, 5, 7, 128, false, None),
        (1, 2, 1, 130, 700, 128, true, None),
        (1, 2, 1, 70, 1100, 64, false, None),
    ];
    let mut failures = Vec::new();
    for dtype in [DType::Bf16, DType::Fp16] {
        for (batch, q_heads, kv_heads, q_len, kv_len, d, causal, window) in shapes {
            let op = Op::Attention(Attention {
                batch,
                q_heads,
                kv_heads,
                q_len,
                kv_len,
                qk_head_dim: d,
                v_head_dim: d,
                causal,
                window,
                dtype,
                kv_dtype: dtype,
                fused: true,
                pass: Pass::Forward,
                shared_kv: false,
            });
            let spec = spec_for("flash-wgmma", &op).unwrap();
            assert!(spec.takes(&op), "{op}");
            let Cuda::Nvrtc { launches, .. } = spec.kernel else {
                panic!("flash-wgmma is ours")
            };
            let l = launches(&op, &Layouts::default()).unwrap().remove(0);
            let ints: Vec<i32> = l.args[4..10]
                .iter()
                .map(|a| match a {
                    Arg::I32(x) => *x,
                    other => panic!("{other:?} is not an i32"),
                })
                .collect();
            let [hq, hkv, sq, skv, causal, window] = ints[..] else {
                panic!("{:?}", l.args)
            };
            let mut args: Vec<String> = vec![l.entry.clone(), batch.to_string()];
            args.extend([hq, hkv, sq, skv].map(|x| x.to_string()));
            args.push(d.to_string());
            args.extend([causal, window].map(|x| x.to_string()));
            args.extend([l.grid.0, l.grid.1, l.block.0, l.smem].map(|x| x.to_string()));
            for a in &l.args[..3] {
                let Arg::TensorMap(t) = a else {
                    panic!("{a:?} is not a tensor map")
                };
                args.extend(t.dims.iter().map(u64::to_string));
                args.extend(t.strides.iter().map(u64::to_string));
                args.extend(t.boxed.iter().map(u32::to_string));
            }
            let Arg::Layout(layout) = l.args[11] else {
                panic!("{:?} is not the layout", l.args[11])
            };
            let o = layout.o;
            args.extend([o.batch, o.head, o.row, o.offset].map(|x| x.to_string()));
            let run = Command::new(&exe).args(&args).output().unwrap();
            let said = String::from_utf8_lossy(&run.stdout);
            eprint!("{said}");
            if !run.status.success() {
                failures.push(format!("{op}: {said}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
