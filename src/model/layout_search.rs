//! The fastest parallel layouts for a training step on a number of GPUs: every split of the GPUs
//! into tensor, pipeline, context, data (and, for mixture-of-experts models, expert) ranks that
//! the model divides into, with the microbatch size, schedule, sequence parallelism and ZeRO
//! stage, priced and kept when every rank fits in memory.

use crate::error::{Error, Result};
use crate::model::arch::Architecture;
use crate::model::execution::{Execution, Parallelism, Zero};
use crate::model::ops::limits;
use crate::model::price::{Cost, Pricer, price_candidate};
use crate::model::system::System;

/// Layouts priced at most (a bound on the work of one search).
pub const MAX_LAYOUTS: usize = 200_000;

/// One layout that fits, with its cost.
#[derive(Debug, Clone)]
pub struct Found {
    pub parallelism: Parallelism,
    pub cost: Cost,
    pub tokens_per_s: f64,
}

/// Divisors of `n`, ascending.
fn divisors(n: u64) -> Vec<u64> {
    let mut small = Vec::new();
    let mut large = Vec::new();
    let mut d = 1;
    while d * d <= n {
        if n.is_multiple_of(d) {
            small.push(d);
            if d * d != n {
                large.push(n / d);
            }
        }
        d += 1;
    }
    small.extend(large.into_iter().rev());
    small
}

/// Every layout of `gpus` GPUs for the training step of `base` (whose other settings are kept).
pub fn candidates(
    arch: &Architecture,
    base: &Execution,
    gpus: u64,
    gpus_per_node: u64,
) -> Vec<Parallelism> {
    let t = &base.training;
    let mut out = Vec::new();
    for tp in divisors(gpus) {
        // Tensor parallelism stays inside a node: its all-reduces are on the critical path.
        if tp > gpus_per_node.max(1) || !arch.num_heads.is_multiple_of(tp) {
            continue;
        }
        for pp in divisors(gpus / tp) {
            if pp > arch.num_layers {
                continue;
            }
            for cp in divisors(gpus / tp / pp) {
                if cp > 1 && (!t.seq.is_multiple_of(2 * cp) || cp > 8) {
                    continue;
                }
                let dp = gpus / tp / pp / cp;
                if !t.batch.is_multiple_of(dp) {
                    continue;
                }
                let local = t.batch / dp;
                let eps: Vec<u64> = match arch.moe {
                    Some(m) => divisors(dp)
                        .into_iter()
                        .filter(|e| m.num_experts % e == 0)
                        .collect(),
                    None => vec![1],
                };
                for ep in eps {
                    for micro_batch in divisors(local)
                        .into_iter()
                        .filter(|m| m.is_power_of_two() || *m == local)
                    {
                        let microbatches = local / micro_batch;
                        let chunks: &[u64] = if pp > 1 { &[1, 2] } else { &[1] };
                        for &virtual_stages in chunks {
                            if virtual_stages > 1
                                && (!microbatches.is_multiple_of(pp)
                                    || pp * virtual_stages > arch.num_layers)
                            {
                                continue;
                            }
                            let zeros: &[Zero] = if dp > 1 {
                                &[Zero::None, Zero::Stage1, Zero::Stage3]
                            } else {
                                &[Zero::None]
                            };
                            for &zero in zeros {
                                out.push(Parallelism {
                                    tp,
                                    pp,
                                    dp,
                                    ep,
                                    cp,
                                    micro_batch,
                                    virtual_stages,
                                    zero,
                                    sequence_parallel: tp > 1,
                                    ..t.parallelism
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// The `top` fastest layouts of `gpus` GPUs that fit, fastest first, and how many were priced.
pub fn search(
    arch: &Architecture,
    base: &Execution,
    system: &System,
    gpus: u64,
    top: usize,
) -> Result<(Vec<Found>, usize)> {
    if gpus == 0 || gpus > limits::RANKS {
        return Err(Error::Unsupported(format!(
            "--gpus must be from 1 to {}, got {gpus}",
            limits::show(limits::RANKS)
        )));
    }
    let layouts = candidates(arch, base, gpus, system.hw.gpus_per_node());
    if layouts.len() > MAX_LAYOUTS {
        return Err(Error::Unsupported(format!(
            "{} layouts of {gpus} GPUs exceed the limit of {MAX_LAYOUTS} a search prices",
            layouts.len()
        )));
    }
    let mut pricer = Pricer::new(system);
    let mut found = Vec::new();
    for parallelism in &layouts {
        let mut e = *base;
        e.training.parallelism = *parallelism;
        // `price_candidate` checks the execution and the layout: a refusal skips the layout.
        let Ok(cost) = price_candidate(arch, &e, &mut pricer) else {
            continue;
        };
        if !cost.training_memory.fits {
            continue;
        }
        found.push(Found {
            parallelism: *parallelism,
            tokens_per_s: e.training.tokens() as f64 / cost.training.seconds,
            cost,
        });
    }
    if found.is_empty() {
        return Err(Error::Unsupported(format!(
            "no layout of {gpus} GPUs fits {} in memory ({} tried)",
            arch.name,
            layouts.len()
        )));
    }
    found.sort_by(|a, b| b.tokens_per_s.total_cmp(&a.tokens_per_s));
    found.truncate(top.max(1));
    Ok((found, layouts.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::arch;
    use crate::model::dtype::DType;
    use crate::model::execution::{InferenceSetup, Recompute, TrainingSetup};

    fn step(batch: u64) -> Execution {
        Execution {
            training: TrainingSetup {
                batch,
                seq: 4096,
                dtype: DType::Bf16,
                recompute: Recompute::Selective,
                dropout: false,
                fused_attention: true,
                parallelism: Parallelism::default(),
            },
            serving: InferenceSetup {
                batch: 1,
                prompt: 1024,
                generate: 16,
                dtype: DType::Bf16,
                kv_dtype: DType::Bf16,
                fused_attention: true,
                parallelism: Parallelism::default(),
                speculative_acceptance: None,
            },
        }
    }

    #[test]
    fn divisors_are_all_found() {
        assert_eq!(divisors(12), vec![1, 2, 3, 4, 6, 12]);
        assert_eq!(divisors(1), vec![1]);
        assert_eq!(divisors(49), vec![1, 7, 49]);
    }

    /// Every layout returned fits, uses exactly the GPUs asked for, and they come fastest first.
    #[test]
    fn search_returns_only_layouts_that_fit_fastest_first() {
        let system = System::load("h100-sxm", None, true).unwrap();
        let a = arch::load("llama-3-8b").unwrap();
        let (found, tried) = search(&a, &step(64), &system, 16, 10).unwrap();
        assert!(tried > found.len());
        for w in found.windows(2) {
            assert!(w[0].tokens_per_s >= w[1].tokens_per_s);
        }
        for f in &found {
            assert!(f.cost.training_memory.fits);
            assert_eq!(f.parallelism.gpus(), 16);
            let mut e = step(64);
            e.training.parallelism = f.parallelism;
            let again = price_candidate(&a, &e, &mut Pricer::new(&system)).unwrap();
            assert!(again.training_memory.total_bytes <= system.hw.memory_bytes.value);
        }
        // A model too large for the GPUs is refused by name.
        let big = arch::load("mixtral-8x7b").unwrap();
        let e = search(&big, &step(8), &system, 1, 5)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no layout of 1 GPUs fits"), "{e}");
    }
}
