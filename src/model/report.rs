//! report: a priced plan becomes the figures users ask for — step time, tokens/s, MFU, time to
//! first token, time per output token, memory, energy and dollars — as the versioned JSON
//! document (`schema::PREDICT`, described in docs/json-schema.md) that the tables render.
//! Strings are built here only, for what is shown.

use crate::error::Result;
use crate::model::arch::{Architecture, ParamCount};
use crate::model::cost::{Bound, Provenance};
use crate::model::execution::{Execution, InferenceSetup, TrainingSetup};
use crate::model::memory::{InferenceMemory, TrainingMemory};
use crate::model::plan::{OpInstance, Phase, Plan, plan};
use crate::model::price::{Cost, Pricer, price};
use crate::model::schema;
use crate::model::system::System;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    pub schema_version: u32,
    pub model: ModelInfo,
    pub hardware: HardwareInfo,
    pub training_setup: TrainingSetup,
    pub inference_setup: InferenceSetup,
    pub params: ParamCount,
    pub training: TrainingCost,
    pub inference: InferenceCost,
    pub memory: MemoryReport,
    pub provenance: ProvenanceInfo,
    /// How the work is spread over GPUs; absent for one GPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<Vec<OpCost>>,
}

/// The multi-GPU figures: where a step's time goes beyond the compute.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    pub training_gpus: u64,
    pub serving_gpus: u64,
    pub microbatches: u64,
    pub micro_batch_size: u64,
    /// One microbatch's forward and backward on the slowest pipeline stage.
    pub slowest_stage_s: f64,
    /// Share of the pipelined time the stages wait (fill and drain).
    pub pipeline_bubble_fraction: f64,
    /// Share of the step spent communicating and not hidden under compute.
    pub training_communication_fraction: f64,
    pub data_parallel_s: f64,
    pub data_parallel_exposed_s: f64,
    pub zero3_s: f64,
    pub zero3_exposed_s: f64,
    /// Model FLOPs (3 × forward, no recomputation) per GPU per second.
    pub model_tflops_per_gpu: f64,
    /// Every FLOP a GPU executes (recomputation included) per second.
    pub hardware_tflops_per_gpu: f64,
    pub prefill_communication_fraction: f64,
    pub decode_communication_fraction: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub source: String,
    pub layers: u64,
    pub hidden_size: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub vocab_size: u64,
    pub experts: Option<u64>,
    pub experts_per_token: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HardwareInfo {
    pub name: String,
    pub display_name: String,
    pub memory_bytes: f64,
    pub peak_flops: f64,
    pub tdp_w: Option<f64>,
    pub price_usd_per_hour: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainingCost {
    pub step_time_s: f64,
    /// ± percent: the time-weighted held-out error bar of the ops that have one (calibrated
    /// ops, and the roofline where it was validated on a measured GPU).
    pub step_time_error_pct: Option<f64>,
    /// Share of the step time priced by calibrated ops (the rest by the roofline).
    pub calibrated_time_fraction: f64,
    /// Share of the step time whose ops carry an error bar (the bar covers only these).
    pub barred_time_fraction: f64,
    pub tokens_per_step: u64,
    pub tokens_per_s: f64,
    /// Model FLOPs utilization: 3 × forward (matmul + attention) FLOPs per token × tokens/s ÷ peak.
    pub mfu: f64,
    /// Hardware FLOPs utilization: every FLOP executed, recomputation included, ÷ peak.
    pub hfu: f64,
    pub model_flops_per_token: f64,
    pub hardware_flops_per_step: f64,
    /// Power × time ÷ tokens; `energy_basis` says which power.
    pub energy_j_per_token: Option<f64>,
    pub usd_per_million_tokens: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InferenceCost {
    /// Prefill of `prompt` tokens for the whole batch: the time to first token.
    pub ttft_s: f64,
    pub ttft_error_pct: Option<f64>,
    pub prefill_tokens_per_s: f64,
    /// Mean decode-step time over the generated tokens, context growing from the prompt.
    pub tpot_s: f64,
    pub tpot_error_pct: Option<f64>,
    /// Output tokens per second across the batch: batch ÷ tpot.
    pub decode_tokens_per_s: f64,
    /// Time for the whole request: ttft + (gen − 1) × tpot.
    pub request_latency_s: f64,
    pub energy_j_per_output_token: Option<f64>,
    pub usd_per_million_output_tokens: Option<f64>,
    /// Decoding speculatively (`--speculative-acceptance`): what a decode step does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speculative: Option<Speculative>,
}

/// A speculative decode step: the multi-token-prediction modules draft `drafted_tokens`, one
/// pass verifies them, and `tokens_per_step` come out on average.
#[derive(Debug, Clone, Serialize)]
pub struct Speculative {
    pub drafted_tokens: u64,
    pub acceptance: f64,
    pub tokens_per_step: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    pub training: TrainingMemory,
    pub inference: InferenceMemory,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProvenanceInfo {
    pub cost_model: String,
    /// The provenance of every op prediction that went into the figures.
    pub op_provenance: Vec<Provenance>,
    /// Every implementation that priced an op ("cuda:cublas", "torch:torch-sdpa-flash",
    /// "roofline"), in the order they first appear.
    pub implementations: Vec<String>,
    pub hardware_profile: String,
    /// The share of their short-run rate compute-bound ops were priced at (1: not derated).
    pub sustained_compute_fraction: f64,
    pub energy_basis: String,
    pub price_basis: Option<String>,
    /// Conventions a reader needs to compare these figures with other tools.
    pub conventions: Vec<String>,
}

/// One op's cost as it appears in the breakdown.
#[derive(Debug, Clone, Serialize)]
pub struct OpCost {
    pub phase: Phase,
    pub label: String,
    pub op: String,
    pub count: u64,
    pub seconds_each: f64,
    pub seconds_total: f64,
    pub flops_total: f64,
    pub bytes_total: f64,
    pub bound: Bound,
    pub provenance: Provenance,
    /// What priced it: "backend:variant", or "roofline".
    pub implementation: String,
    /// ± percent, where the cost model has an error bar for this op.
    pub error_pct: Option<f64>,
}

/// Inputs that are not the architecture, the execution or the system.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Overrides the profile's price per GPU-hour.
    pub price_usd_per_hour: Option<f64>,
    /// Keep every op's cost (for `--breakdown`).
    pub breakdown: bool,
}

fn per_million(seconds: f64, tokens: f64, usd_per_hour: Option<f64>) -> Option<f64> {
    usd_per_hour.map(|usd| usd / 3600.0 * seconds / tokens * 1e6)
}

/// Plans, prices and reports `arch` under `execution` on `system`.
pub fn estimate(
    arch: &Architecture,
    execution: &Execution,
    system: &System,
    opts: &Options,
) -> Result<Estimate> {
    arch.validate(&arch.source)?;
    execution.validate()?;
    let plan = plan(arch, execution);
    let mut pricer = Pricer::new(system);
    let cost = price(arch, execution, &plan, &mut pricer)?;
    report(arch, execution, &plan, &cost, &mut pricer, opts)
}

/// The breakdown rows of `ops` (memo hits: `price` priced them all).
fn op_costs(ops: &[OpInstance], pricer: &mut Pricer, out: &mut Vec<OpCost>) -> Result<()> {
    for o in ops {
        let p = pricer.op(&o.op)?;
        let n = o.count as f64;
        out.push(OpCost {
            phase: o.phase,
            label: o.label.to_string(),
            op: o.op.to_string(),
            count: o.count,
            seconds_each: p.seconds,
            seconds_total: p.seconds * n,
            flops_total: p.flops * n,
            bytes_total: p.bytes * n,
            bound: p.bound,
            provenance: p.provenance,
            implementation: pricer
                .system
                .cost_model
                .implementation_name(p.implementation)
                .to_string(),
            error_pct: p.error_pct,
        });
    }
    Ok(())
}

/// The versioned JSON document (and the tables' source) for a priced plan.
pub fn report(
    arch: &Architecture,
    execution: &Execution,
    plan: &Plan,
    cost: &Cost,
    pricer: &mut Pricer,
    opts: &Options,
) -> Result<Estimate> {
    let (train, infer) = (&execution.training, &execution.serving);
    let hw = &pricer.system.hw;
    let peak = hw.require_peak_flops(train.dtype)?;
    let usd_per_hour = opts.price_usd_per_hour.or(hw.price_usd_per_hour());
    let tdp = hw.tdp_w();

    let t = &cost.training;
    let tokens = train.tokens() as f64;
    let tokens_per_s = tokens / t.seconds;
    // Rates per GPU; energy and dollars for all of them.
    let gpus = train.parallelism.gpus() as f64;
    let hardware_flops = cost.step.hardware_flops_per_gpu;
    let training = TrainingCost {
        step_time_s: t.seconds,
        step_time_error_pct: t.error_pct(),
        calibrated_time_fraction: t.calibrated_fraction(),
        barred_time_fraction: t.barred_fraction(),
        tokens_per_step: train.tokens(),
        tokens_per_s,
        mfu: cost.model_flops_per_token * tokens_per_s / (gpus * peak),
        hfu: hardware_flops / t.seconds / peak,
        model_flops_per_token: cost.model_flops_per_token,
        hardware_flops_per_step: hardware_flops,
        energy_j_per_token: tdp.map(|w| w * gpus * t.seconds / tokens),
        usd_per_million_tokens: per_million(gpus * t.seconds, tokens, usd_per_hour),
    };

    let (p, tpot) = (&cost.prefill, cost.decode.seconds);
    // Replicas serve side by side: throughput scales with them, latency does not.
    let replicas = infer.parallelism.dp as f64;
    let batch = infer.batch as f64;
    let serving_gpus = infer.parallelism.gpus() as f64;
    let per_replica = serving_gpus / replicas;
    let inference = InferenceCost {
        ttft_s: p.seconds,
        ttft_error_pct: p.error_pct(),
        prefill_tokens_per_s: replicas * batch * infer.prompt as f64 / p.seconds,
        tpot_s: tpot,
        tpot_error_pct: cost.decode.error_pct(),
        decode_tokens_per_s: replicas * batch / tpot,
        request_latency_s: p.seconds + (infer.generate.saturating_sub(1)) as f64 * tpot,
        energy_j_per_output_token: tdp.map(|w| w * per_replica * tpot / batch),
        usd_per_million_output_tokens: per_million(per_replica * tpot, batch, usd_per_hour),
        speculative: infer.speculative_acceptance.map(|a| {
            let drafted_tokens = crate::model::plan::speculative_drafts(arch, infer);
            Speculative {
                drafted_tokens,
                acceptance: a,
                tokens_per_step: crate::model::execution::tokens_per_step(drafted_tokens, a),
            }
        }),
    };
    let single = train.parallelism.is_single_gpu() && infer.parallelism.is_single_gpu();
    let cluster = (!single).then(|| ClusterReport {
        training_gpus: train.parallelism.gpus(),
        serving_gpus: infer.parallelism.gpus(),
        microbatches: cost.step.microbatches,
        micro_batch_size: train.parallelism.micro_batch_size(train.batch),
        slowest_stage_s: cost.step.slowest_stage_s,
        pipeline_bubble_fraction: cost.step.bubble_fraction,
        training_communication_fraction: t.comm_fraction(),
        data_parallel_s: cost.step.data_parallel_s,
        data_parallel_exposed_s: cost.step.data_parallel_exposed_s,
        zero3_s: cost.step.zero3_s,
        zero3_exposed_s: cost.step.zero3_exposed_s,
        model_tflops_per_gpu: cost.model_flops_per_token * tokens_per_s / gpus / 1e12,
        hardware_tflops_per_gpu: hardware_flops / t.seconds / 1e12,
        prefill_communication_fraction: p.comm_fraction(),
        decode_communication_fraction: cost.decode.comm_fraction(),
    });

    // The breakdown and the provenance list cover the training step, the prefill and the first
    // decode step.
    let mut costs = Vec::new();
    for ops in [&plan.training, &plan.prefill, &plan.decode] {
        op_costs(ops, pricer, &mut costs)?;
    }
    let mut op_provenance: Vec<Provenance> = Vec::new();
    let mut implementations: Vec<String> = Vec::new();
    for c in &costs {
        if !op_provenance.contains(&c.provenance) {
            op_provenance.push(c.provenance);
        }
        if !implementations.contains(&c.implementation) {
            implementations.push(c.implementation.clone());
        }
    }
    let moe = arch.moe;
    Ok(Estimate {
        schema_version: schema::PREDICT,
        model: ModelInfo {
            name: arch.name.clone(),
            source: arch.source.clone(),
            layers: arch.num_layers,
            hidden_size: arch.hidden_size,
            heads: arch.num_heads,
            kv_heads: arch.num_kv_heads,
            head_dim: arch.head_dim,
            vocab_size: arch.vocab_size,
            experts: moe.map(|m| m.num_experts),
            experts_per_token: moe.map(|m| m.top_k),
        },
        hardware: HardwareInfo {
            name: hw.name.clone(),
            display_name: hw.display_name.clone(),
            memory_bytes: hw.memory_bytes.value,
            peak_flops: peak,
            tdp_w: tdp,
            price_usd_per_hour: usd_per_hour,
        },
        training_setup: *train,
        inference_setup: *infer,
        params: arch.params(),
        training,
        inference,
        memory: MemoryReport {
            training: cost.training_memory,
            inference: cost.inference_memory,
        },
        provenance: ProvenanceInfo {
            cost_model: pricer.system.describe(),
            op_provenance,
            implementations,
            hardware_profile: pricer.system.hardware_origin.clone(),
            sustained_compute_fraction: pricer.system.hw.sustained_fraction(),
            energy_basis: match tdp {
                Some(w) => format!("board power limit (TDP) {w} W for the whole time; not measured"),
                None => "no power figure in the profile: energy not estimated".into(),
            },
            price_basis: match (opts.price_usd_per_hour, hw.price_usd_per_hour.as_ref()) {
                (Some(p), _) => Some(format!("--price-per-hour {p} USD")),
                (None, Some(p)) => Some(format!("profile: {}", p.source)),
                (None, None) => None,
            },
            conventions: vec![
                "causal attention counts only unmasked (query, key) pairs: S(S+1)/2 per head for a square block".into(),
                "backward = 2x forward matmul FLOPs; attention backward = 2.5x forward (FlashAttention-2)".into(),
                "MFU counts model FLOPs (3x forward matmuls and attention, no recomputation) over the dtype's dense peak".into(),
                "prefill computes logits for the last position only; TPOT averages decode steps with context growing from the prompt".into(),
                "MoE tokens are spread evenly over experts".into(),
            ],
        },
        cluster,
        breakdown: opts.breakdown.then_some(costs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::arch;
    use crate::model::dtype::DType;
    use crate::model::execution::{Parallelism, Recompute};

    fn setups(batch: u64, seq: u64) -> (TrainingSetup, InferenceSetup) {
        (
            TrainingSetup {
                batch,
                seq,
                dtype: DType::Bf16,
                recompute: Recompute::None,
                dropout: false,
                fused_attention: true,
                parallelism: Parallelism::default(),
            },
            InferenceSetup {
                batch,
                prompt: seq,
                generate: 64,
                dtype: DType::Bf16,
                kv_dtype: DType::Bf16,
                fused_attention: true,
                parallelism: Parallelism::default(),
                speculative_acceptance: None,
            },
        )
    }

    #[test]
    fn h100_llama_figures_are_plausible() {
        let a = arch::load("llama-3-8b").unwrap();
        let system = System::load("h100-sxm", None, true).unwrap();
        let (training, serving) = setups(4, 4096);
        let execution = Execution { training, serving };
        let e = estimate(&a, &execution, &system, &Options::default()).unwrap();
        // A roofline at 80% matmul efficiency cannot exceed 80% MFU, and a dense 8B model on
        // long sequences should get well above a third of it.
        assert!(
            e.training.mfu > 0.3 && e.training.mfu < 0.8,
            "{}",
            e.training.mfu
        );
        // Batch-4 decode of 16 GB of weights at ~3 TB/s takes several milliseconds.
        assert!(e.inference.tpot_s > 4e-3 && e.inference.tpot_s < 10e-3);
        assert!(!e.memory.training.fits);
        assert!(e.memory.inference.fits);
        assert!(e.training.energy_j_per_token.unwrap() > 0.0);
        assert!(e.training.usd_per_million_tokens.is_none());
    }
}
