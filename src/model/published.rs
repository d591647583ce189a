//! Published cluster throughput, predicted row by row: a table of GPT models trained with
//! Megatron-LM (Narayanan et al. 2021, Table 1) — each row a model, a parallel layout and the
//! achieved TFLOP/s per GPU — becomes an architecture, an execution and a system, and the
//! predicted step time is turned into TFLOP/s per GPU the way the paper counts them.
//!
//! The paper counts model FLOPs with its formula, which includes the recomputed forward pass
//! (full activation recomputation) and the whole causal attention square:
//! F = 96·B·s·l·h²·(1 + s/(6h) + V/(16·l·h)) per step (its Appendix, eq. 3).
//!
//! What the table does not say is fixed once for every row, never per row (`Assumptions`).

use crate::error::{Error, Result, parse_json};
use crate::model::arch::{Architecture, from_native_toml};
use crate::model::dtype::DType;
use crate::model::execution::{
    Execution, InferenceSetup, Parallelism, Recompute, TrainingSetup, Zero,
};
use crate::model::hw::{self, Sourced};
use crate::model::ops::limits;
use crate::model::price::{Pricer, price_candidate};
use crate::model::system::{Stack, System, calibration_for};
use serde::{Deserialize, Serialize};

/// One published measurement.
#[derive(Debug, Clone, Deserialize)]
pub struct Row {
    pub model: String,
    pub hidden: u64,
    pub layers: u64,
    #[serde(alias = "attention_heads_recalled")]
    pub attention_heads: u64,
    pub tensor_parallel: u64,
    pub pipeline_parallel: u64,
    pub data_parallel: u64,
    pub num_gpus: u64,
    pub global_batch_size_seqs: u64,
    pub seq_len: u64,
    pub vocab: u64,
    pub achieved_tflops_per_gpu: f64,
    /// The GPU as the source names it ("A100-SXM4-80GB ...").
    pub gpu: String,
    /// "mixed fp16", "bf16", …
    pub precision: String,
    /// Sequences per microbatch, where the source gives it.
    #[serde(default)]
    pub micro_batch_size: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct File {
    rows: Vec<Row>,
}

/// What every row is predicted under, where the table is silent; the same for every row.
pub const ASSUMPTIONS: &[&str] = &[
    "full activation recomputation, as the table states",
    "dropout 0.1 on the attention probabilities and the residual stream (Megatron-LM's defaults, --attention-dropout and --hidden-dropout)",
    "attention unfused (scores written to memory, softmax fused): Megatron-LM in 2021 predates FlashAttention",
    "one sequence per microbatch where there is a pipeline (the whole local batch at once otherwise), plain 1F1B schedule",
    "data-parallel gradients all-reduced after the backward pass, not overlapped with it (Megatron-LM's 2021 training step), in the working dtype",
    "no ZeRO sharding; no sequence parallelism (it came later: Korthikanti et al. 2022)",
];

/// One row predicted.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub model: String,
    pub gpus: u64,
    pub tp: u64,
    pub pp: u64,
    pub dp: u64,
    pub hw: String,
    pub step_time_s: f64,
    pub published_tflops_per_gpu: f64,
    pub predicted_tflops_per_gpu: f64,
    /// (predicted − published) / published, percent.
    pub error_pct: f64,
    /// The same with the sustained fraction fitted to the table's other rows of this GPU; None
    /// where the GPU has no other row.
    pub held_out_error_pct: Option<f64>,
    pub pipeline_bubble_fraction: f64,
    pub communication_fraction: f64,
}

/// Megatron's model FLOPs per step (Narayanan et al. 2021, Appendix eq. 3): with full
/// recomputation, 96·B·s·l·h²·(1 + s/(6h) + V/(16·l·h)).
pub fn megatron_flops(batch: u64, seq: u64, layers: u64, hidden: u64, vocab: u64) -> f64 {
    let (b, s, l, h, v) = (
        batch as f64,
        seq as f64,
        layers as f64,
        hidden as f64,
        vocab as f64,
    );
    96.0 * b * s * l * h * h * (1.0 + s / (6.0 * h) + v / (16.0 * l * h))
}

/// Reads a table of published rows, each checked.
pub fn parse(file: &str, text: &str) -> Result<Vec<Row>> {
    let f: File = parse_json(file, text)?;
    if f.rows.is_empty() {
        return Err(Error::field(file, "rows", "no rows"));
    }
    for (i, r) in f.rows.iter().enumerate() {
        let field = |name: &str| format!("rows[{i}].{name}");
        let gpus = [r.tensor_parallel, r.pipeline_parallel, r.data_parallel]
            .iter()
            .try_fold(1u64, |a, &b| a.checked_mul(b));
        if gpus != Some(r.num_gpus) {
            return Err(Error::field(
                file,
                &field("num_gpus"),
                format!(
                    "{} is not tensor_parallel x pipeline_parallel x data_parallel",
                    r.num_gpus
                ),
            ));
        }
        if !(r.achieved_tflops_per_gpu.is_finite() && r.achieved_tflops_per_gpu > 0.0) {
            return Err(Error::field(
                file,
                &field("achieved_tflops_per_gpu"),
                "must be a positive number",
            ));
        }
        if r.num_gpus > limits::RANKS {
            return Err(Error::field(
                file,
                &field("num_gpus"),
                format!("exceeds the limit of {}", limits::show(limits::RANKS)),
            ));
        }
        profile_for(&r.gpu).ok_or_else(|| {
            Error::field(
                file,
                &field("gpu"),
                format!(
                    "'{}' names no catalog GPU (A100 40/80 GB, H100, H200)",
                    r.gpu
                ),
            )
        })?;
        precision(&r.precision)
            .ok_or_else(|| Error::field(file, &field("precision"), "neither fp16 nor bf16"))?;
    }
    Ok(f.rows)
}

/// The catalog profile for a GPU as a source names it.
pub(crate) fn profile_for(gpu: &str) -> Option<&'static str> {
    let g = gpu.to_ascii_uppercase();
    if g.contains("A100") {
        Some(if g.contains("40GB") || g.contains("40 GB") {
            "a100-sxm-40gb"
        } else {
            "a100-sxm-80gb"
        })
    } else if g.contains("H200") {
        Some("h200-sxm")
    } else if g.contains("H100") {
        Some("h100-sxm")
    } else {
        None
    }
}

fn precision(p: &str) -> Option<DType> {
    let p = p.to_ascii_lowercase();
    if p.contains("bf16") {
        Some(DType::Bf16)
    } else if p.contains("fp16") {
        Some(DType::Fp16)
    } else {
        None
    }
}

/// A row's GPT: learned positions, LayerNorm, a GELU MLP of 4h, tied embeddings.
pub fn architecture(r: &Row) -> Result<Architecture> {
    let text = format!(
        "name = \"{}\"\nvocab_size = {}\nhidden_size = {}\nnum_layers = {}\nnum_heads = {}\n\
         num_kv_heads = {}\nintermediate_size = {}\nmlp = \"gelu\"\nnorm = \"layernorm\"\n\
         positions = \"learned\"\nmax_position_embeddings = {}\ntie_embeddings = true\n\
         qkv_bias = true\n",
        r.model.escape_debug(),
        r.vocab,
        r.hidden,
        r.layers,
        r.attention_heads,
        r.attention_heads,
        r.hidden.saturating_mul(4),
        r.seq_len
    );
    from_native_toml(&r.model, &text)
}

/// A row's training step under `ASSUMPTIONS`.
pub fn execution(r: &Row) -> Result<Execution> {
    let dtype = precision(&r.precision)
        .ok_or_else(|| Error::Unsupported(format!("{}: precision", r.model)))?;
    // 0: the whole local batch without a pipeline, one sequence with one.
    let micro_batch = r.micro_batch_size.unwrap_or(0);
    let parallelism = Parallelism {
        tp: r.tensor_parallel,
        pp: r.pipeline_parallel,
        dp: r.data_parallel,
        micro_batch,
        zero: Zero::None,
        overlap_grad_reduce: false,
        ..Parallelism::default()
    };
    Ok(Execution {
        training: TrainingSetup {
            batch: r.global_batch_size_seqs,
            seq: r.seq_len,
            dtype,
            recompute: Recompute::Full,
            dropout: true,
            fused_attention: false,
            parallelism,
        },
        // Serving is not what the row measures; one sequence on the same tensor split.
        serving: InferenceSetup {
            batch: 1,
            prompt: r.seq_len,
            generate: 1,
            dtype,
            kv_dtype: dtype,
            fused_attention: true,
            parallelism: Parallelism {
                tp: r.tensor_parallel,
                ..Parallelism::default()
            },
            speculative_acceptance: None,
        },
    })
}

/// The system a row is priced on with its GPU's catalog profile's sustained compute fraction
/// replaced by `fraction`.
fn system_with_fraction(hw: &str, roofline: bool, fraction: f64) -> Result<System> {
    let mut profile = hw::load(hw)?;
    profile.sustained_compute_fraction = Some(Sourced {
        value: fraction,
        source: "fitted to a published table".into(),
    });
    let calibration = calibration_for(hw, None, roofline, &profile)?;
    System::new(profile, calibration, roofline, Stack::Production)
}

/// A row's predicted step: its time, pipeline bubble and communication share.
fn step(r: &Row, system: &System) -> Result<(f64, f64, f64)> {
    let arch = architecture(r)?;
    let execution = execution(r)?;
    let cost = price_candidate(&arch, &execution, &mut Pricer::new(system))
        .map_err(|e| Error::Unsupported(format!("{}: {e}", r.model)))?;
    Ok((
        cost.training.seconds,
        cost.step.bubble_fraction,
        cost.training.comm_fraction(),
    ))
}

/// A row's step time as the paper's FLOPs at the published rate.
fn published_step(r: &Row) -> f64 {
    row_flops(r) / (r.num_gpus as f64 * r.achieved_tflops_per_gpu * 1e12)
}

/// A step of `seconds` as the paper's TFLOP/s per GPU.
fn tflops_per_gpu(r: &Row, seconds: f64) -> f64 {
    row_flops(r) / seconds / r.num_gpus as f64 / 1e12
}

fn row_flops(r: &Row) -> f64 {
    megatron_flops(
        r.global_batch_size_seqs,
        r.seq_len,
        r.layers,
        r.hidden,
        r.vocab,
    )
}

/// The fractions a fit may return: a GPU keeps at least half its short-run rate, and never
/// more than all of it.
pub const FRACTION_RANGE: (f64, f64) = (0.5, 1.0);

/// A row's predicted step as a function of the sustained fraction f: `rest + compute / f`
/// (the compute-bound ops stretch, nothing else does), beside the published step.
#[derive(Debug, Clone, Copy)]
struct Split {
    rest: f64,
    compute: f64,
    published: f64,
}

impl Split {
    /// From the step priced at two fractions.
    fn of(published: f64, (f0, t0): (f64, f64), (f1, t1): (f64, f64)) -> Split {
        let compute = ((t1 - t0) / (1.0 / f1 - 1.0 / f0)).max(0.0);
        Split {
            rest: t0 - compute / f0,
            compute,
            published,
        }
    }

    fn log_error(&self, f: f64) -> f64 {
        ((self.rest + self.compute / f) / self.published).ln()
    }
}

/// The fraction that minimizes the squared log errors of `splits`, to 1/2000 (a scan of
/// `FRACTION_RANGE`: no assumption that the sum has one minimum).
fn fit_fraction(splits: &[Split]) -> f64 {
    let loss = |f: f64| splits.iter().map(|s| s.log_error(f).powi(2)).sum::<f64>();
    let (lo, hi) = FRACTION_RANGE;
    let steps = 1000;
    (0..=steps)
        .map(|i| lo + (hi - lo) * f64::from(i) / f64::from(steps))
        .min_by(|&a, &b| loss(a).total_cmp(&loss(b)))
        .unwrap_or(hi)
}

/// The sustained fraction fitted to one GPU's rows of a table.
#[derive(Debug, Clone, Serialize)]
pub struct FractionFit {
    pub hw: String,
    /// The profile's own figure (1 where it has none).
    pub profile_fraction: f64,
    /// Fitted to all of this GPU's rows.
    pub fitted_fraction: f64,
    pub rows: usize,
    /// Median and largest |error| of the held-out predictions, percent; None with one row.
    pub held_out_median_pct: Option<f64>,
    pub held_out_max_pct: Option<f64>,
}

/// Every row predicted, and per GPU the sustained fraction the table implies.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    pub rows: Vec<Prediction>,
    pub fits: Vec<FractionFit>,
}

/// Predicts every row on its GPU's catalog profile (`roofline`: the uncalibrated model even
/// where a calibration exists). Per GPU it also fits the sustained compute fraction to the
/// table's rows, and predicts each row held out: with the fraction fitted to the other rows
/// of its GPU, never to itself.
pub fn predict(rows: &[Row], roofline: bool) -> Result<Validation> {
    /// A GPU's systems, built once for all its rows: at the profile's own fraction, and at
    /// another, whose second price of each row splits its step into what the fraction stretches
    /// and what it does not.
    struct Gpu {
        hw: &'static str,
        own: (f64, System),
        other: (f64, System),
    }
    let mut gpus: Vec<Gpu> = Vec::new();
    let mut out = Vec::with_capacity(rows.len());
    let mut splits = Vec::with_capacity(rows.len());
    for r in rows {
        let hw = profile_for(&r.gpu)
            .ok_or_else(|| Error::Unsupported(format!("{}: unknown GPU '{}'", r.model, r.gpu)))?;
        let at = match gpus.iter().position(|g| g.hw == hw) {
            Some(at) => at,
            None => {
                let system = System::load(hw, None, roofline)?;
                let own = system.hw.sustained_fraction();
                let other = if own > 0.75 { 0.5 } else { 1.0 };
                gpus.push(Gpu {
                    hw,
                    own: (own, system),
                    other: (other, system_with_fraction(hw, roofline, other)?),
                });
                gpus.len() - 1
            }
        };
        let gpu = &gpus[at];
        let (seconds, bubble, comm) = step(r, &gpu.own.1)?;
        let (stretched, _, _) = step(r, &gpu.other.1)?;
        splits.push(Split::of(
            published_step(r),
            (gpu.own.0, seconds),
            (gpu.other.0, stretched),
        ));
        let predicted = tflops_per_gpu(r, seconds);
        out.push(Prediction {
            model: r.model.clone(),
            gpus: r.num_gpus,
            tp: r.tensor_parallel,
            pp: r.pipeline_parallel,
            dp: r.data_parallel,
            hw: hw.to_string(),
            step_time_s: seconds,
            published_tflops_per_gpu: r.achieved_tflops_per_gpu,
            predicted_tflops_per_gpu: predicted,
            error_pct: error_pct(predicted, r.achieved_tflops_per_gpu),
            held_out_error_pct: None,
            pipeline_bubble_fraction: bubble,
            communication_fraction: comm,
        });
    }
    let mut fits = Vec::with_capacity(gpus.len());
    for gpu in &gpus {
        let hw = gpu.hw;
        let mine: Vec<usize> = (0..rows.len()).filter(|&i| out[i].hw == hw).collect();
        let all: Vec<Split> = mine.iter().map(|&i| splits[i]).collect();
        if mine.len() > 1 {
            for &i in &mine {
                let others: Vec<Split> = mine
                    .iter()
                    .filter(|&&j| j != i)
                    .map(|&j| splits[j])
                    .collect();
                let f = fit_fraction(&others);
                let (seconds, _, _) = step(&rows[i], &system_with_fraction(hw, roofline, f)?)?;
                out[i].held_out_error_pct = Some(error_pct(
                    tflops_per_gpu(&rows[i], seconds),
                    rows[i].achieved_tflops_per_gpu,
                ));
            }
        }
        let (median, max) = median_and_max(mine.iter().filter_map(|&i| out[i].held_out_error_pct));
        fits.push(FractionFit {
            hw: hw.to_string(),
            profile_fraction: gpu.own.0,
            fitted_fraction: fit_fraction(&all),
            rows: mine.len(),
            held_out_median_pct: (mine.len() > 1).then_some(median),
            held_out_max_pct: (mine.len() > 1).then_some(max),
        });
    }
    Ok(Validation { rows: out, fits })
}

fn error_pct(predicted: f64, published: f64) -> f64 {
    100.0 * (predicted - published) / published
}

/// Median and largest absolute error, percent.
pub fn summary(p: &[Prediction]) -> (f64, f64) {
    median_and_max(p.iter().map(|r| r.error_pct))
}

/// Median and largest absolute value of signed errors (percent); both 0 without any.
pub fn median_and_max(errors: impl Iterator<Item = f64>) -> (f64, f64) {
    let mut errors: Vec<f64> = errors.map(f64::abs).collect();
    if errors.is_empty() {
        return (0.0, 0.0);
    }
    errors.sort_by(f64::total_cmp);
    let n = errors.len();
    let median = if n % 2 == 1 {
        errors[n / 2]
    } else {
        (errors[n / 2 - 1] + errors[n / 2]) / 2.0
    };
    (median, errors[n - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::{Attention, Op};
    use crate::model::plan::{Phase, plan};

    const TABLE: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/published/narayanan2021_table1.json"
    ));

    /// The plan's FLOPs, counted the paper's way — every matmul of the step (forward, backward,
    /// recomputed forward) and the attention core as a full square, forward ×4 — equal the
    /// formula for every row of the table.
    #[test]
    fn megatron_formula_is_reproduced_for_every_row() {
        let rows = parse("table", TABLE).unwrap();
        assert_eq!(rows.len(), 10);
        for r in &rows {
            let arch = architecture(r).unwrap();
            let mut e = execution(r).unwrap();
            // One GPU holding the whole batch: the formula counts the global step.
            e.training.parallelism = Parallelism::default();
            let p = plan(&arch, &e);
            let mut counted = 0.0;
            for o in &p.training {
                let n = o.count as f64;
                match o.op {
                    Op::Matmul(m) => counted += Op::Matmul(m).flops() * n,
                    Op::Attention(a) if o.phase == Phase::Forward => {
                        let square = Attention { causal: false, ..a };
                        counted += 4.0 * Op::Attention(square).flops() * n;
                    }
                    _ => {}
                }
            }
            let formula = megatron_flops(
                r.global_batch_size_seqs,
                r.seq_len,
                r.layers,
                r.hidden,
                r.vocab,
            );
            assert!(
                (counted - formula).abs() <= 1e-12 * formula,
                "{}: {counted:e} vs {formula:e}",
                r.model
            );
        }
    }

    /// The fit finds the fraction that made a set of steps, to the scan's resolution, and
    /// stays inside its range when the steps ask for more.
    #[test]
    fn the_fit_recovers_the_fraction_that_made_the_steps() {
        let made = |f: f64| {
            [(1.0, 3.0), (0.2, 5.0), (2.0, 0.5)]
                .map(|(rest, compute)| Split {
                    rest,
                    compute,
                    published: rest + compute / f,
                })
                .to_vec()
        };
        for f in [0.55, 0.861, 0.97] {
            let fitted = fit_fraction(&made(f));
            assert!((fitted - f).abs() <= 0.0005, "{f}: {fitted}");
        }
        assert_eq!(fit_fraction(&made(1.4)), FRACTION_RANGE.1);
        assert_eq!(fit_fraction(&made(0.3)), FRACTION_RANGE.0);
        // Two prices of a step at two fractions split it back.
        let split = Split::of(9.0, (1.0, 1.0 + 3.0), (0.5, 1.0 + 6.0));
        assert!((split.rest - 1.0).abs() < 1e-12 && (split.compute - 3.0).abs() < 1e-12);
    }

    /// The A100 profiles' sustained fraction is this table's fit, so the committed figure cannot
    /// drift from what `validate --published` derives.
    #[test]
    fn the_a100_fraction_is_the_tables_fit() {
        let v = predict(&parse("table", TABLE).unwrap(), false).unwrap();
        assert_eq!(v.fits.len(), 1);
        let fit = &v.fits[0];
        assert_eq!(fit.hw, "a100-sxm-80gb");
        assert!(
            (fit.fitted_fraction - fit.profile_fraction).abs() <= 0.001,
            "fitted {} but the profile says {}",
            fit.fitted_fraction,
            fit.profile_fraction
        );
        let forty = crate::model::hw::load("a100-sxm-40gb").unwrap();
        assert_eq!(forty.sustained_fraction(), fit.profile_fraction);
    }

    /// Every row predicted with the fraction fitted to the other nine meets the targets: each
    /// within 15%, the median within 8%.
    #[test]
    fn held_out_rows_meet_the_targets() {
        let v = predict(&parse("table", TABLE).unwrap(), false).unwrap();
        let held_out: Vec<f64> = v.rows.iter().filter_map(|r| r.held_out_error_pct).collect();
        assert_eq!(held_out.len(), 10);
        let (median, max) = median_and_max(held_out.into_iter());
        assert!(median <= 8.0 && max <= 15.0, "median {median}, max {max}");
    }

    #[test]
    #[ignore = "prints the table's errors"]
    fn show() {
        let rows = parse("table", TABLE).unwrap();
        for p in predict(&rows, false).unwrap().rows {
            eprintln!(
                "{:10} {:>6.1} {:>6.1} {:>+6.1}% bubble {:.3} comm {:.3} step {:.2}",
                p.model,
                p.published_tflops_per_gpu,
                p.predicted_tflops_per_gpu,
                p.error_pct,
                p.pipeline_bubble_fraction,
                p.communication_fraction,
                p.step_time_s
            );
        }
    }

    #[test]
    fn rows_are_checked() {
        let bad = TABLE.replacen("\"num_gpus\": 32", "\"num_gpus\": 33", 1);
        let e = parse("t.json", &bad).unwrap_err().to_string();
        assert!(e.contains("rows[0].num_gpus"), "{e}");
        let bad = TABLE.replacen("\"A100-SXM4-80GB (Selene DGX A100)\"", "\"MI300X\"", 1);
        assert!(
            parse("t.json", &bad)
                .unwrap_err()
                .to_string()
                .contains("gpu")
        );
    }
}
