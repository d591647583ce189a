//! `cargo bench --bench matmul`: every WGSL matmul variant, f32 and f16, on the device clock.

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use gpucost::measure::backend::Backend;
use gpucost::model::dtype::DType;
use gpucost::model::ops::{Matmul, Op};

fn matmul(c: &mut Criterion) {
    let Some(mut backend) = common::open() else {
        return;
    };
    let lavapipe = backend.device().name.contains("llvmpipe");
    // Lavapipe runs ~5 GFLOP/s: keep it to sizes that finish.
    let sizes: &[u64] = if lavapipe {
        &[128, 256]
    } else {
        &[1024, 2048, 4096]
    };
    for dtype in [DType::Fp32, DType::Fp16] {
        if dtype == DType::Fp16 && !backend.device().supports_f16 {
            continue;
        }
        let ops: Vec<Op> = sizes
            .iter()
            .map(|&s| Op::Matmul(Matmul::new(1, s, s, s, dtype)))
            .collect();
        common::bench_ops(c, &format!("matmul-{dtype}"), &mut backend, &ops);
    }
}

criterion_group!(benches, matmul);
criterion_main!(benches);
