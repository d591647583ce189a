//! What a candidate is scored on, all from one priced plan: the quality proxy, the training cost
//! of the token budget, serving latency and throughput, memory and size — each with the error
//! bar its prediction carries.

use crate::model::arch::Architecture;
use crate::model::execution::Execution;
use crate::model::frontier::quality::ParameterCount;
use crate::model::frontier::space::Space;
use crate::model::hw::HwProfile;
use crate::model::price::Cost;

/// The objectives a space can minimize or maximize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    /// Predicted loss from the space's scaling law.
    Loss,
    ParamsTotal,
    ParamsActive,
    /// Tokens trained on (fixed, or the compute budget's share for this candidate).
    TrainingTokens,
    StepTimeS,
    TrainingTimeS,
    TrainingGpuHours,
    TrainingEnergyKwh,
    TrainingUsd,
    Mfu,
    TtftS,
    TpotS,
    /// Output tokens per second per GPU across the serving batch.
    DecodeTokensPerS,
    TrainingMemoryBytes,
    ServingMemoryBytes,
    KvBytesPerToken,
}

/// Which prediction's error bar an objective carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bar {
    None,
    Step,
    Ttft,
    Tpot,
}

impl Objective {
    pub const ALL: [Objective; 16] = [
        Objective::Loss,
        Objective::ParamsTotal,
        Objective::ParamsActive,
        Objective::TrainingTokens,
        Objective::StepTimeS,
        Objective::TrainingTimeS,
        Objective::TrainingGpuHours,
        Objective::TrainingEnergyKwh,
        Objective::TrainingUsd,
        Objective::Mfu,
        Objective::TtftS,
        Objective::TpotS,
        Objective::DecodeTokensPerS,
        Objective::TrainingMemoryBytes,
        Objective::ServingMemoryBytes,
        Objective::KvBytesPerToken,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Objective::Loss => "loss",
            Objective::ParamsTotal => "params_total",
            Objective::ParamsActive => "params_active",
            Objective::TrainingTokens => "training_tokens",
            Objective::StepTimeS => "step_time_s",
            Objective::TrainingTimeS => "training_time_s",
            Objective::TrainingGpuHours => "training_gpu_hours",
            Objective::TrainingEnergyKwh => "training_energy_kwh",
            Objective::TrainingUsd => "training_usd",
            Objective::Mfu => "mfu",
            Objective::TtftS => "ttft_s",
            Objective::TpotS => "tpot_s",
            Objective::DecodeTokensPerS => "decode_tokens_per_s",
            Objective::TrainingMemoryBytes => "training_memory_bytes",
            Objective::ServingMemoryBytes => "serving_memory_bytes",
            Objective::KvBytesPerToken => "kv_bytes_per_token",
        }
    }

    pub fn by_name(name: &str) -> Option<Objective> {
        Objective::ALL.into_iter().find(|o| o.name() == name)
    }

    fn bar(self) -> Bar {
        match self {
            Objective::StepTimeS
            | Objective::TrainingTimeS
            | Objective::TrainingGpuHours
            | Objective::TrainingEnergyKwh
            | Objective::TrainingUsd
            | Objective::Mfu => Bar::Step,
            Objective::TtftS => Bar::Ttft,
            Objective::TpotS | Objective::DecodeTokensPerS => Bar::Tpot,
            _ => Bar::None,
        }
    }
}

/// Every objective of one candidate, indexed like `Objective::ALL`, with the ± percent bar of
/// each (0 where the value is exact or has none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub values: [f64; 16],
    pub bars_pct: [f64; 16],
    pub fits_training: bool,
    pub fits_serving: bool,
    /// The loss is a measured one, not the scaling law's.
    pub loss_measured: bool,
}

impl Scores {
    pub fn get(&self, o: Objective) -> f64 {
        self.values[o as usize]
    }

    pub fn bar(&self, o: Objective) -> f64 {
        self.bars_pct[o as usize]
    }
}

/// The parameter count the law takes for `arch`.
pub fn law_parameters(space: &Space, arch: &Architecture) -> Option<f64> {
    let p = arch.params();
    let count = match (arch.moe.is_some(), space.moe_parameters) {
        (true, None) => return None,
        (true, Some(c)) => c,
        (false, _) => space.parameters,
    };
    Some(match count {
        ParameterCount::Total => p.total as f64,
        ParameterCount::NonEmbedding => p.non_embedding as f64,
        ParameterCount::Active => p.active as f64,
    })
}

/// Replaces the proxy loss with a measured one.
pub fn use_measured_loss(s: &mut Scores, loss: f64) {
    s.values[Objective::Loss as usize] = loss;
    s.loss_measured = true;
}

/// Scores a priced candidate.
pub fn score(
    space: &Space,
    arch: &Architecture,
    execution: &Execution,
    cost: &Cost,
    hw: &HwProfile,
) -> Scores {
    let p = arch.params();
    let w = &space.workload;
    let step_tokens = execution.training.tokens() as f64;
    let tokens_per_s = step_tokens / cost.training.seconds;
    // A compute budget buys each candidate C ÷ (model FLOPs per token) tokens.
    let tokens = match (w.training_tokens, w.compute_budget_flops) {
        (Some(d), _) => d,
        (None, Some(c)) => c / cost.model_flops_per_token,
        (None, None) => f64::NAN,
    };
    let n = law_parameters(space, arch).unwrap_or(f64::NAN);
    let training_s = tokens / tokens_per_s;
    // GPU-hours, energy and dollars count every GPU of the layout; rates are per GPU.
    let gpus = execution.training.parallelism.gpus() as f64;
    let hours = gpus * training_s / 3600.0;
    let peak = hw.peak_flops(execution.training.dtype).unwrap_or(f64::NAN);
    let batch = execution.serving.batch as f64;
    let kv_per_token = arch.kv_elements_per_token() as f64 * execution.serving.kv_dtype.bytes();
    let mut values = [0.0; 16];
    let mut set = |o: Objective, v: f64| values[o as usize] = v;
    set(Objective::Loss, space.law.loss(n, tokens));
    set(Objective::ParamsTotal, p.total as f64);
    set(Objective::ParamsActive, p.active as f64);
    set(Objective::TrainingTokens, tokens);
    set(Objective::StepTimeS, cost.training.seconds);
    set(Objective::TrainingTimeS, training_s);
    set(Objective::TrainingGpuHours, hours);
    set(
        Objective::TrainingEnergyKwh,
        hw.tdp_w()
            .map_or(f64::NAN, |tdp| tdp * gpus * training_s / 3.6e6),
    );
    set(
        Objective::TrainingUsd,
        w.price_per_gpu_hour
            .or(hw.price_usd_per_hour())
            .map_or(f64::NAN, |usd| usd * hours),
    );
    set(
        Objective::Mfu,
        cost.model_flops_per_token * tokens_per_s / (gpus * peak),
    );
    let serving = &execution.serving.parallelism;
    // Each replica's GPUs serve its batch.
    let gpus_per_replica = (serving.tp * serving.pp) as f64;
    set(Objective::TtftS, cost.prefill.seconds);
    set(Objective::TpotS, cost.decode.seconds);
    set(
        Objective::DecodeTokensPerS,
        batch / cost.decode.seconds / gpus_per_replica,
    );
    set(
        Objective::TrainingMemoryBytes,
        cost.training_memory.total_bytes,
    );
    set(
        Objective::ServingMemoryBytes,
        cost.inference_memory.total_bytes,
    );
    set(Objective::KvBytesPerToken, kv_per_token);
    let mut bars_pct = [0.0; 16];
    for o in Objective::ALL {
        bars_pct[o as usize] = match o.bar() {
            Bar::None => 0.0,
            Bar::Step => cost.training.error_pct().unwrap_or(0.0),
            Bar::Ttft => cost.prefill.error_pct().unwrap_or(0.0),
            Bar::Tpot => cost.decode.error_pct().unwrap_or(0.0),
        };
    }
    Scores {
        values,
        bars_pct,
        fits_training: cost.training_memory.fits,
        fits_serving: cost.inference_memory.fits,
        loss_measured: false,
    }
}
