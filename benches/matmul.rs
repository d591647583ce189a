//! `cargo bench --bench matmul`: every WGSL matmul variant, f32 and f16, on the device clock;
//! and, on the host, making a 4096³ matmul's seeded inputs and packing them for upload, which is
//! most of `gpucost bench`'s time per large shape.

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gpucost::measure::backend::{Backend, host};
use gpucost::measure::harness;
use gpucost::model::dtype::DType;
use gpucost::model::ops::{Matmul, Op};
use std::time::Duration;

/// Host time per input set of a 4096³ matmul: the seeded, rounded inputs, then the bytes the CUDA
/// backend uploads (bf16: 2 bytes each; fp8: one byte each, B transposed).
fn inputs(c: &mut Criterion) {
    let mut group = c.benchmark_group("inputs-matmul-4096");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    for dtype in [DType::Bf16, DType::Fp8E4m3] {
        let op = Op::Matmul(Matmul::new(1, 4096, 4096, 4096, dtype));
        group.throughput(Throughput::Elements(2 * 4096 * 4096));
        group.bench_function(format!("make-{dtype}"), |b| {
            b.iter(|| harness::inputs(&op, 42).expect("inputs"))
        });
        let set = harness::inputs(&op, 42).expect("inputs");
        group.bench_function(format!("pack-{dtype}"), |b| {
            b.iter(|| match dtype {
                DType::Bf16 => set
                    .iter()
                    .map(|t| host::encode(t, |v| half::bf16::from_f32(v).to_le_bytes()))
                    .collect::<Vec<_>>(),
                _ => vec![
                    host::encode(&set[0], |v| [host::fp8_e4m3_bits(v)]),
                    host::transpose(
                        &host::encode(&set[1], |v| [host::fp8_e4m3_bits(v)]),
                        4096,
                        4096,
                    ),
                ],
            })
        });
    }
    group.finish();
}

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

criterion_group!(benches, inputs, matmul);
criterion_main!(benches);
