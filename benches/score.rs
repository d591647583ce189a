//! `cargo bench --bench score`: candidates priced per second — what an optimizer calling gpucost
//! in its inner loop gets. A candidate is a whole answer: the training step, the time to first
//! token, the time per output token over 256 generated tokens, and memory. Two families (a
//! Llama-style dense model and a Mixtral-style MoE), each varied in depth, MLP width and batch;
//! priced with the roofline and with the embedded H100 calibration; on one core with a warm memo
//! (the steady state of a search, where shapes recur), on one core with a fresh memo per
//! candidate (every shape priced anew), and on all cores (`Scorer`: rayon, one memo per worker thread, kept between calls).
//! `cargo test --bench score` runs each case once, as CI does.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gpucost::model::arch::{self, Architecture};
use gpucost::model::dtype::DType;
use gpucost::model::execution::{Execution, InferenceSetup, Parallelism, Recompute, TrainingSetup};
use gpucost::model::plan::{Plan, plan_into};
use gpucost::model::price::{Pricer, Scorer, price};
use gpucost::model::system::System;
use std::hint::black_box;

/// Variants of `base`: depth, MLP width and batch (batch changes every op's shape).
fn family(base: &str) -> Vec<(Architecture, Execution)> {
    let a = arch::load(base).expect("shipped model");
    let mut out = Vec::new();
    for layers in [
        a.num_layers - 8,
        a.num_layers - 4,
        a.num_layers,
        a.num_layers + 4,
    ] {
        for widen in [0, 1024] {
            for batch in [1, 8] {
                let mut v = a.clone();
                v.num_layers = layers;
                v.intermediate_size += widen;
                if let Some(m) = v.moe.as_mut() {
                    m.expert_intermediate_size += widen;
                }
                out.push((v, execution(batch)));
            }
        }
    }
    out
}

fn execution(batch: u64) -> Execution {
    Execution {
        training: TrainingSetup {
            batch,
            seq: 4096,
            dtype: DType::Bf16,
            recompute: Recompute::None,
            dropout: false,
            fused_attention: true,
            parallelism: Parallelism::default(),
        },
        serving: InferenceSetup {
            batch,
            prompt: 1024,
            generate: 256,
            dtype: DType::Bf16,
            kv_dtype: DType::Bf16,
            fused_attention: true,
            parallelism: Parallelism::default(),
            speculative_acceptance: None,
        },
    }
}

fn score(c: &mut Criterion) {
    let systems = [
        (
            "roofline",
            System::load("h100-sxm", None, true).expect("catalog"),
        ),
        (
            "calibrated",
            System::load("h100-sxm", None, false).expect("catalog"),
        ),
    ];
    for (family_name, base) in [("dense", "llama-3-8b"), ("moe", "mixtral-8x7b")] {
        let candidates = family(base);
        let n = candidates.len() as u64;
        for (model_name, system) in &systems {
            let mut g = c.benchmark_group(format!("score/{family_name}/{model_name}"));
            g.throughput(Throughput::Elements(n));
            g.bench_function("one core, warm memo", |b| {
                let mut pricer = Pricer::new(system);
                let mut plan = Plan::default();
                b.iter(|| {
                    for (a, e) in &candidates {
                        plan_into(&mut plan, a, e);
                        black_box(price(a, e, &plan, &mut pricer).expect("priced"));
                    }
                })
            });
            g.bench_function("one core, fresh memo", |b| {
                let mut plan = Plan::default();
                b.iter(|| {
                    for (a, e) in &candidates {
                        let mut pricer = Pricer::new(system);
                        plan_into(&mut plan, a, e);
                        black_box(price(a, e, &plan, &mut pricer).expect("priced"));
                    }
                })
            });
            // All cores: a batch large enough to spread, as a search would hand over.
            let repeats = 64;
            let batch: Vec<(&Architecture, Execution)> = (0..repeats)
                .flat_map(|_| candidates.iter().map(|(a, e)| (a, *e)))
                .collect();
            g.throughput(Throughput::Elements(batch.len() as u64));
            let scorer = Scorer::new(system);
            g.bench_function("all cores", |b| {
                b.iter(|| black_box(scorer.price_all(&batch)))
            });
            g.finish();
        }
    }
}

criterion_group!(benches, score);
criterion_main!(benches);
