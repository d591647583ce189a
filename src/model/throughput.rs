//! Offline maximum throughput: output tokens per second of a serving group kept full of requests
//! of `input` prompt tokens and `output` generated tokens, as an offline benchmark at an infinite
//! request rate measures it (`trtllm-bench throughput`, vLLM's `benchmark_throughput.py`).
//!
//! The model of the engine:
//! - **Concurrency** is what the KV cache holds: `kv_memory_fraction` of the memory left after the
//!   weights and the prefill workspace, over one sequence's cache at its full context (a request
//!   is admitted only with room for all of its tokens, TensorRT-LLM's default
//!   `GUARANTEED_NO_EVICT` scheduling), at most `max_concurrency`.
//! - **Decode**: every step advances each of the `concurrency` sequences by one token; the step
//!   is the mean decode step over the contexts `input+1 ..= input+output−1` at that batch.
//! - **Prefill** runs in chunks of about `prefill_chunk_tokens` tokens (whole prompts), once per
//!   request, between the decode steps.
//! - **Pipeline stages** (`pp`) keep `pp` microbatches under way, one in each stage: the
//!   sequences decode in `pp` microbatches, and `pp` prefill chunks overlap the same way.
//!
//! Over N requests the group spends N·prefill + (N/concurrency)·output·step, so
//! throughput = output / (prefill + output·step / concurrency), with prefill and step divided by
//! `pp` under a pipeline (the step then of one microbatch).

use crate::error::{Error, Result};
use crate::model::arch::Architecture;
use crate::model::execution::{Execution, InferenceSetup, Parallelism, Recompute, TrainingSetup};
use crate::model::memory;
use crate::model::price::{Pricer, price_candidate};
use serde::Serialize;

/// The engine the model stands for, one line each (reported beside every answer).
pub const ASSUMPTIONS: &[&str] = &[
    "the KV cache gets 90% of the memory left after the weights and the prefill workspace (TensorRT-LLM's default kv_cache_free_gpu_mem_fraction)",
    "a request is admitted only with room for its whole context (TensorRT-LLM's default GUARANTEED_NO_EVICT scheduling); at most 8192 sequences together",
    "prompts are prefilled whole, in chunks of up to 8192 tokens (TensorRT-LLM's default max_num_tokens), between decode steps",
    "no overhead between steps (scheduling, sampling, detokenization) is counted",
];

/// The load and the engine's memory policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OfflineLoad {
    /// Prompt tokens per request.
    pub input: u64,
    /// Generated tokens per request.
    pub output: u64,
    /// Share of the memory left after the weights and workspace given to the KV cache
    /// (TensorRT-LLM's `kv_cache_free_gpu_mem_fraction`, 0.9 by default).
    pub kv_memory_fraction: f64,
    /// The most sequences decoded together.
    pub max_concurrency: u64,
    /// Prompt tokens per prefill chunk (TensorRT-LLM's `max_num_tokens`, 8192 by default).
    pub prefill_chunk_tokens: u64,
}

impl OfflineLoad {
    pub fn new(input: u64, output: u64) -> Self {
        OfflineLoad {
            input,
            output,
            kv_memory_fraction: 0.9,
            max_concurrency: 8192,
            prefill_chunk_tokens: 8192,
        }
    }
}

/// What the group sustains.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OfflineThroughput {
    pub input: u64,
    pub output: u64,
    /// Sequences decoded together (on one replica).
    pub concurrency: u64,
    /// Output tokens per second of the whole serving group, every replica.
    pub output_tokens_per_s: f64,
    /// The same over the group's GPUs.
    pub output_tokens_per_s_per_gpu: f64,
    /// The mean decode step at `concurrency` (with pipeline stages: of one of the `pp`
    /// microbatches the sequences go round in, across every stage).
    pub decode_step_s: f64,
    /// Prefill time per request (its chunk's time over the prompts in it).
    pub prefill_s_per_request: f64,
    /// KV cache (and recurrent state) of one sequence at its full context, on the rank that
    /// holds the most.
    pub kv_bytes_per_sequence: f64,
    /// The error bar of the time, where the ops have one: decode and prefill bars weighted by
    /// their share of the time.
    pub error_pct: Option<f64>,
}

/// The offline throughput of `arch` served as `serving` describes (dtype, KV dtype, tensor and
/// pipeline layout; its batch, prompt and gen are replaced by the load's).
pub fn offline_throughput(
    arch: &Architecture,
    serving: &InferenceSetup,
    load: &OfflineLoad,
    pricer: &mut Pricer,
) -> Result<OfflineThroughput> {
    if !(load.kv_memory_fraction > 0.0 && load.kv_memory_fraction <= 1.0) {
        return Err(Error::Unsupported(format!(
            "the KV cache's share of free memory must be in (0, 1], got {}",
            load.kv_memory_fraction
        )));
    }
    let setup = |batch: u64| InferenceSetup {
        batch,
        prompt: load.input,
        generate: load.output,
        speculative_acceptance: None,
        ..*serving
    };
    setup(1).validate()?;
    let capacity = pricer.system.hw.memory_bytes.value;
    let chunk = (load.prefill_chunk_tokens / load.input).max(1);
    let one = memory::inference(arch, &setup(1), capacity);
    let workspace = memory::inference(arch, &setup(chunk), capacity).activations_bytes;
    let kv_per_sequence = one.kv_cache_bytes + one.recurrent_state_bytes;
    let free = capacity - one.weights_bytes - workspace;
    let fitting = if kv_per_sequence > 0.0 {
        (load.kv_memory_fraction * free / kv_per_sequence).floor()
    } else {
        f64::INFINITY
    };
    if fitting < 1.0 {
        return Err(Error::Unsupported(format!(
            "{}: no sequence of {} tokens fits beside the weights ({:.1} GB of {:.1} GB per GPU)",
            arch.name,
            load.input.saturating_add(load.output),
            one.weights_bytes / 1e9,
            capacity / 1e9
        )));
    }
    let concurrency = (fitting.min(load.max_concurrency as f64) as u64).max(1);

    // With pipeline stages, the sequences go round in `pp` microbatches, one in each stage: a
    // microbatch's step crosses every stage, and `pp` of them are under way at once.
    let pp = serving.parallelism.pp;
    let micro = concurrency.div_ceil(pp);
    let decode = price_candidate(arch, &serving_only(setup(micro)), pricer)?.decode;
    let prefill = price_candidate(arch, &serving_only(setup(chunk)), pricer)?.prefill;
    let prefill_per_request = prefill.seconds / (chunk * pp) as f64;
    let decode_per_request = load.output as f64 * decode.seconds / (micro * pp) as f64;
    let per_request = prefill_per_request + decode_per_request;
    // Data-parallel replicas each serve their own share of the requests.
    let replicas = serving.parallelism.dp;
    let gpus = serving.parallelism.gpus();
    let output_tokens_per_s = replicas as f64 * load.output as f64 / per_request;
    let error_pct = match (prefill.error_pct(), decode.error_pct()) {
        (Some(p), Some(d)) => {
            Some((p * prefill_per_request + d * decode_per_request) / per_request)
        }
        (p, d) => p.or(d),
    };
    Ok(OfflineThroughput {
        input: load.input,
        output: load.output,
        concurrency,
        output_tokens_per_s,
        output_tokens_per_s_per_gpu: output_tokens_per_s / gpus as f64,
        decode_step_s: decode.seconds,
        prefill_s_per_request: prefill_per_request,
        kv_bytes_per_sequence: kv_per_sequence,
        error_pct,
    })
}

/// An execution whose serving side is `s`; its training side is one short sequence on one GPU,
/// priced and thrown away (the pricer prices both together).
fn serving_only(s: InferenceSetup) -> Execution {
    Execution {
        training: TrainingSetup {
            batch: 1,
            seq: 16,
            dtype: s.dtype,
            recompute: Recompute::None,
            dropout: false,
            fused_attention: true,
            parallelism: Parallelism::default(),
        },
        serving: s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::arch;
    use crate::model::dtype::DType;
    use crate::model::system::System;

    fn serving(dtype: DType, tp: u64) -> InferenceSetup {
        InferenceSetup {
            batch: 1,
            prompt: 1,
            generate: 1,
            dtype,
            kv_dtype: DType::Bf16,
            fused_attention: true,
            parallelism: Parallelism {
                tp,
                ..Parallelism::default()
            },
            speculative_acceptance: None,
        }
    }

    /// The throughput is the formula over the priced parts, and the concurrency is what the
    /// memory left holds.
    #[test]
    fn throughput_is_output_over_prefill_and_shared_decode() {
        let system = System::load("h100-sxm", None, true).unwrap();
        let a = arch::load("llama-3.1-8b").unwrap();
        let mut pricer = Pricer::new(&system);
        let t = offline_throughput(
            &a,
            &serving(DType::Fp8E4m3, 1),
            &OfflineLoad::new(1000, 1000),
            &mut pricer,
        )
        .unwrap();
        let expected =
            1000.0 / (t.prefill_s_per_request + 1000.0 * t.decode_step_s / t.concurrency as f64);
        assert!((t.output_tokens_per_s - expected).abs() < 1e-9 * expected);
        // 32 layers x 8 KV heads x 128 x (k, v) x 2 bytes per token, 2000 tokens.
        assert_eq!(t.kv_bytes_per_sequence, 2000.0 * 131_072.0);
        // About 8 GB of fp8 weights on 80 GB: some 60 GB of cache.
        assert!((200..300).contains(&t.concurrency), "{}", t.concurrency);
    }

    /// Pipeline stages keep one microbatch in each stage: the step is a microbatch's, and `pp` of
    /// them overlap.
    #[test]
    fn pipeline_stages_overlap_their_microbatches() {
        let system = System::load("h100-sxm", None, true).unwrap();
        let a = arch::load("llama-3.1-70b").unwrap();
        let mut pricer = Pricer::new(&system);
        let mut s = serving(DType::Fp8E4m3, 2);
        s.parallelism.pp = 2;
        let load = OfflineLoad::new(1000, 1000);
        let t = offline_throughput(&a, &s, &load, &mut pricer).unwrap();
        let micro = t.concurrency.div_ceil(2) as f64;
        let expected =
            1000.0 / (t.prefill_s_per_request + 1000.0 * t.decode_step_s / (2.0 * micro));
        assert!((t.output_tokens_per_s - expected).abs() < 1e-9 * expected);
        // Four GPUs as 2 x 2 sustain more than the same two tensor ranks alone.
        let two = offline_throughput(&a, &serving(DType::Fp8E4m3, 2), &load, &mut pricer).unwrap();
        assert!(t.output_tokens_per_s > 1.5 * two.output_tokens_per_s);
        // Two replicas of those two tensor ranks serve twice as much, at the same rate per GPU.
        let mut replicas = serving(DType::Fp8E4m3, 2);
        replicas.parallelism.dp = 2;
        let r = offline_throughput(&a, &replicas, &load, &mut pricer).unwrap();
        assert_eq!(r.output_tokens_per_s, 2.0 * two.output_tokens_per_s);
        assert_eq!(
            r.output_tokens_per_s_per_gpu,
            two.output_tokens_per_s_per_gpu
        );
    }

    /// More memory holds more sequences and sustains more tokens; a model that does not fit
    /// is refused in one line.
    #[test]
    fn memory_bounds_the_concurrency() {
        let system = System::load("h100-sxm", None, true).unwrap();
        let a = arch::load("llama-3.1-70b").unwrap();
        let mut pricer = Pricer::new(&system);
        let load = OfflineLoad::new(1000, 1000);
        let e = offline_throughput(&a, &serving(DType::Bf16, 1), &load, &mut pricer).unwrap_err();
        assert!(e.to_string().contains("fits"), "{e}");
        let two = offline_throughput(&a, &serving(DType::Fp8E4m3, 2), &load, &mut pricer).unwrap();
        let four = offline_throughput(&a, &serving(DType::Fp8E4m3, 4), &load, &mut pricer).unwrap();
        assert!(four.concurrency > 2 * two.concurrency);
        assert!(four.output_tokens_per_s > two.output_tokens_per_s);
        assert_eq!(
            four.output_tokens_per_s_per_gpu * 4.0,
            four.output_tokens_per_s
        );
    }
}
