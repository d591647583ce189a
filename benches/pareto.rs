//! `cargo bench --bench pareto`: the Pareto tools on a million random candidates, with 2 and with
//! 3 objectives (uniform in the unit cube, error bars of ±5%): all ranks, crowding distance, the
//! frontier under error bars, and the three together — what a search over a million candidates
//! pays once per generation. One core, no threads.
//! `cargo test --bench pareto` runs each case once on 10,000 candidates, as CI would.

use criterion::{Criterion, criterion_group, criterion_main};
use gpucost::model::frontier::pareto::{Sense, crowding_distance, pareto_ranks, possibly_optimal};
use rand::{RngExt, SeedableRng};
use std::hint::black_box;
use std::time::Duration;

/// Nominal values and their bars.
type Candidates<const M: usize> = (Vec<[f64; M]>, Vec<[f64; M]>, Vec<[f64; M]>);

fn candidates<const M: usize>(n: usize, seed: u64) -> Candidates<M> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let nominal: Vec<[f64; M]> = (0..n)
        .map(|_| std::array::from_fn(|_| rng.random_range(0.0..1.0)))
        .collect();
    let lo = nominal.iter().map(|p| p.map(|x| x * 0.95)).collect();
    let hi = nominal.iter().map(|p| p.map(|x| x * 1.05)).collect();
    (nominal, lo, hi)
}

fn bench<const M: usize>(c: &mut Criterion, n: usize, senses: [Sense; M]) {
    let (nominal, lo, hi) = candidates::<M>(n, 42 + M as u64);
    let ranks = pareto_ranks(&nominal, &senses);
    let mut g = c.benchmark_group(format!("{M} objectives, {n} candidates"));
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    g.bench_function("ranks", |b| {
        b.iter(|| pareto_ranks(black_box(&nominal), &senses))
    });
    g.bench_function("crowding", |b| {
        b.iter(|| crowding_distance(black_box(&nominal), &senses, &ranks))
    });
    g.bench_function("possibly_optimal", |b| {
        b.iter(|| possibly_optimal(black_box(&nominal), &lo, &hi, &senses))
    });
    g.bench_function("all three", |b| {
        b.iter(|| {
            let ranks = pareto_ranks(black_box(&nominal), &senses);
            let crowding = crowding_distance(&nominal, &senses, &ranks);
            let possible = possibly_optimal(&nominal, &lo, &hi, &senses);
            (ranks, crowding, possible)
        })
    });
    g.finish();
}

fn pareto(c: &mut Criterion) {
    // `cargo bench` passes `--bench`; a test run gets a small input so a debug build is quick.
    let n = if std::env::args().any(|a| a == "--bench") {
        1_000_000
    } else {
        10_000
    };
    bench(c, n, [Sense::Minimize, Sense::Maximize]);
    bench(c, n, [Sense::Minimize, Sense::Maximize, Sense::Minimize]);
}

criterion_group!(benches, pareto);
criterion_main!(benches);
