//! Shared by the criterion benches: open the wgpu adapter, and time a variant on the device's
//! clock through `iter_custom`.

use criterion::{BenchmarkId, Criterion, Throughput};
use gpucost::measure::backend::wgpu::WgpuBackend;
use gpucost::measure::backend::{Backend, Clock};
use gpucost::measure::harness;
use gpucost::model::ops::Op;
use std::time::Duration;

/// Opens adapter 0, saying what is being measured; `None` (with the reason) when there is none.
pub fn open() -> Option<WgpuBackend> {
    match WgpuBackend::open(0) {
        Ok(b) => {
            let d = b.device();
            let what = if d.name.contains("llvmpipe") {
                "lavapipe: Mesa's CPU Vulkan device, not a GPU"
            } else {
                "a GPU"
            };
            let clock = match d.clock {
                Clock::DeviceTimestamp => "device timestamps",
                Clock::WallClock => "wall clock (no timestamp queries)",
            };
            eprintln!("measuring {} ({what}) with {clock}", d.name);
            Some(b)
        }
        Err(e) => {
            eprintln!("no benchmark run: {e}");
            None
        }
    }
}

/// Benchmarks every variant of every op in `ops`, checked for correctness first; throughput is
/// counted in FLOPs ("elements" in criterion's output).
pub fn bench_ops(c: &mut Criterion, group_name: &str, backend: &mut WgpuBackend, ops: &[Op]) {
    let mut group = c.benchmark_group(group_name);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(1));
    for op in ops {
        let variants: Vec<&str> = backend.variants(op).iter().map(|v| v.name).collect();
        let sets = [harness::inputs(op, 1).expect("inputs")];
        let expected = harness::expected(op, &sets[0], 1).expect("reference");
        backend.load(op, &sets).expect("load");
        group.throughput(Throughput::Elements(op.flops() as u64));
        for variant in variants {
            let out = backend.run(variant, 0).expect("run");
            let check = harness::check(&out, &expected, harness::op_tolerance(op));
            if !check.pass {
                eprintln!("{variant} {op}: FAILED {check:?}, not timed");
                continue;
            }
            group.bench_with_input(BenchmarkId::new(variant, op.to_string()), op, |b, _| {
                b.iter_custom(|iters| {
                    let samples = backend.time(variant, iters as usize).expect("time");
                    Duration::from_secs_f64(samples.iter().sum())
                })
            });
        }
    }
    group.finish();
}
