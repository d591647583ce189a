//! `cargo bench --bench attention`: naive and fused WGSL attention, f32 and f16, causal and not.

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use gpucost::measure::backend::Backend;
use gpucost::model::dtype::DType;
use gpucost::model::ops::{Attention, Op, Pass};

fn attention(c: &mut Criterion) {
    let Some(mut backend) = common::open() else {
        return;
    };
    let lavapipe = backend.device().name.contains("llvmpipe");
    let seqs: &[u64] = if lavapipe { &[128, 256] } else { &[1024, 4096] };
    for dtype in [DType::Fp32, DType::Fp16] {
        if dtype == DType::Fp16 && !backend.device().supports_f16 {
            continue;
        }
        let mut ops = Vec::new();
        for &seq in seqs {
            for causal in [false, true] {
                ops.push(Op::Attention(Attention {
                    batch: 1,
                    q_heads: 8,
                    kv_heads: 8,
                    q_len: seq,
                    kv_len: seq,
                    qk_head_dim: 128,
                    v_head_dim: 128,
                    causal,
                    window: None,
                    dtype,
                    kv_dtype: dtype,
                    fused: true,
                    pass: Pass::Forward,
                    shared_kv: false,
                }));
            }
        }
        common::bench_ops(c, &format!("attention-{dtype}"), &mut backend, &ops);
    }
}

criterion_group!(benches, attention);
criterion_main!(benches);
