//! Published offline serving throughput, predicted row by row: a table of output tokens per
//! second measured at full load (TensorRT-LLM's performance overview is one) — each row a model,
//! a GPU, a tensor/pipeline layout, a precision and an input/output length — predicted with
//! `throughput::offline_throughput` under the same engine assumptions for every row.

use crate::error::{Error, Result, parse_json};
use crate::model::arch;
use crate::model::dtype::DType;
use crate::model::execution::{InferenceSetup, Parallelism};
use crate::model::ops::limits;
use crate::model::price::Pricer;
use crate::model::published::profile_for;
use crate::model::system::System;
use crate::model::throughput::{OfflineLoad, offline_throughput};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What every row is predicted under beyond the engine (`throughput::ASSUMPTIONS`); the same
/// for every row.
pub const ASSUMPTIONS: &[&str] = &[
    "every matmul in the row's precision (the lm-head too, which the FP8 checkpoints keep in bf16); the KV cache in the row's kv_cache dtype",
];

/// One published measurement.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    pub model: String,
    /// A catalog short name, or a config file relative to the table's folder.
    pub config: String,
    pub gpu: String,
    pub tensor_parallel: u64,
    pub pipeline_parallel: u64,
    /// Matmul precision: "fp8", "bf16" or "fp16".
    pub precision: String,
    /// KV-cache dtype.
    pub kv_cache: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub output_tokens_per_s: f64,
}

#[derive(Debug, Deserialize)]
struct File {
    kind: String,
    rows: Vec<Row>,
}

/// The `kind` that marks a table of this form.
pub const KIND: &str = "offline-serving";

/// Whether `text` is a table of this form (its `kind`), as opposed to a training table.
pub fn is_serving_table(text: &str) -> bool {
    #[derive(Deserialize)]
    struct Kind {
        kind: Option<String>,
    }
    serde_json::from_str::<Kind>(text).is_ok_and(|k| k.kind.as_deref() == Some(KIND))
}

/// One row predicted.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub model: String,
    pub hw: String,
    pub tp: u64,
    pub pp: u64,
    pub precision: DType,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub concurrency: u64,
    pub published_output_tokens_per_s: f64,
    pub predicted_output_tokens_per_s: f64,
    /// (predicted − published) / published, percent.
    pub error_pct: f64,
    /// The prediction's own error bar, where its ops have one.
    pub predicted_error_pct: Option<f64>,
}

fn dtype(s: &str) -> Option<DType> {
    match s.to_ascii_lowercase().as_str() {
        "fp8" | "fp8-e4m3" => Some(DType::Fp8E4m3),
        "bf16" => Some(DType::Bf16),
        "fp16" => Some(DType::Fp16),
        _ => None,
    }
}

/// Reads a table, each row checked.
pub fn parse(file: &str, text: &str) -> Result<Vec<Row>> {
    let f: File = parse_json(file, text)?;
    if f.kind != KIND {
        return Err(Error::field(file, "kind", format!("must be \"{KIND}\"")));
    }
    if f.rows.is_empty() {
        return Err(Error::field(file, "rows", "no rows"));
    }
    for (i, r) in f.rows.iter().enumerate() {
        let field = |name: &str| format!("rows[{i}].{name}");
        for (name, v) in [
            ("tensor_parallel", r.tensor_parallel),
            ("pipeline_parallel", r.pipeline_parallel),
            ("input_tokens", r.input_tokens),
            ("output_tokens", r.output_tokens),
        ] {
            if v == 0 {
                return Err(Error::field(file, &field(name), "must be positive"));
            }
        }
        if r.tensor_parallel.saturating_mul(r.pipeline_parallel) > limits::RANKS {
            return Err(Error::field(
                file,
                &field("tensor_parallel"),
                format!(
                    "the layout exceeds the limit of {} GPUs",
                    limits::show(limits::RANKS)
                ),
            ));
        }
        if !(r.output_tokens_per_s.is_finite() && r.output_tokens_per_s > 0.0) {
            return Err(Error::field(
                file,
                &field("output_tokens_per_s"),
                "must be a positive number",
            ));
        }
        profile_for(&r.gpu).ok_or_else(|| {
            Error::field(
                file,
                &field("gpu"),
                format!("'{}' names no catalog GPU (A100, H100, H200)", r.gpu),
            )
        })?;
        for (name, v) in [("precision", &r.precision), ("kv_cache", &r.kv_cache)] {
            dtype(v).ok_or_else(|| Error::field(file, &field(name), "not fp8, bf16 or fp16"))?;
        }
    }
    Ok(f.rows)
}

/// Predicts every row on its GPU's catalog profile (`roofline`: the uncalibrated model even
/// where a calibration exists); configs that are not catalog names are read from `folder`.
pub fn predict(rows: &[Row], folder: &Path, roofline: bool) -> Result<Vec<Prediction>> {
    let mut systems: Vec<(&str, System)> = Vec::new();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let hw = profile_for(&r.gpu)
            .ok_or_else(|| Error::Unsupported(format!("{}: unknown GPU '{}'", r.model, r.gpu)))?;
        if !systems.iter().any(|(name, _)| *name == hw) {
            systems.push((hw, System::load(hw, None, roofline)?));
        }
        let system = &systems.iter().find(|(name, _)| *name == hw).unwrap().1;
        let config = if arch::model_names().contains(&r.config.as_str()) {
            r.config.clone()
        } else {
            folder.join(&r.config).display().to_string()
        };
        let a = arch::load(&config)?;
        let precision = dtype(&r.precision)
            .ok_or_else(|| Error::Unsupported(format!("{}: precision", r.model)))?;
        let serving = InferenceSetup {
            batch: 1,
            prompt: r.input_tokens,
            generate: r.output_tokens,
            dtype: precision,
            kv_dtype: dtype(&r.kv_cache)
                .ok_or_else(|| Error::Unsupported(format!("{}: kv_cache", r.model)))?,
            fused_attention: true,
            parallelism: Parallelism {
                tp: r.tensor_parallel,
                pp: r.pipeline_parallel,
                ..Parallelism::default()
            },
            speculative_acceptance: None,
        };
        let load = OfflineLoad::new(r.input_tokens, r.output_tokens);
        let t = offline_throughput(&a, &serving, &load, &mut Pricer::new(system))
            .map_err(|e| Error::Unsupported(format!("{} on {}: {e}", r.model, r.gpu)))?;
        out.push(Prediction {
            model: r.model.clone(),
            hw: hw.to_string(),
            tp: r.tensor_parallel,
            pp: r.pipeline_parallel,
            precision,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            concurrency: t.concurrency,
            published_output_tokens_per_s: r.output_tokens_per_s,
            predicted_output_tokens_per_s: t.output_tokens_per_s,
            error_pct: 100.0 * (t.output_tokens_per_s - r.output_tokens_per_s)
                / r.output_tokens_per_s,
            predicted_error_pct: t.error_pct,
        });
    }
    Ok(out)
}

/// Median and largest absolute error, percent, and the share of rows whose published figure
/// lies within the prediction's own error bar.
pub fn summary(p: &[Prediction]) -> (f64, f64, f64) {
    let (median, max) = crate::model::published::median_and_max(p.iter().map(|r| r.error_pct));
    let covered = p
        .iter()
        .filter(|r| {
            r.predicted_error_pct.is_some_and(|bar| {
                let lo = r.predicted_output_tokens_per_s / (1.0 + bar / 100.0);
                let hi = r.predicted_output_tokens_per_s / (1.0 - bar.min(99.0) / 100.0);
                (lo..=hi).contains(&r.published_output_tokens_per_s)
            })
        })
        .count();
    (median, max, covered as f64 / p.len().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/published/trtllm_perf_overview.json"
    ));

    #[test]
    fn the_table_reads_and_is_told_apart_from_a_training_table() {
        assert!(is_serving_table(TABLE));
        let megatron = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/published/narayanan2021_table1.json"
        ));
        assert!(!is_serving_table(megatron));
        let rows = parse("t.json", TABLE).unwrap();
        assert_eq!(rows.len(), 60);
        assert!(rows.iter().any(|r| r.tensor_parallel == 8));
    }

    #[test]
    fn rows_are_checked() {
        let bad = TABLE.replacen("\"tensor_parallel\": 1", "\"tensor_parallel\": 0", 1);
        let e = parse("t.json", &bad).unwrap_err().to_string();
        assert!(e.contains("rows[0].tensor_parallel"), "{e}");
        let bad = TABLE.replacen("\"precision\": \"fp8\"", "\"precision\": \"int3\"", 1);
        let e = parse("t.json", &bad).unwrap_err().to_string();
        assert!(e.contains("rows[0].precision"), "{e}");
        let bad = TABLE.replacen("\"H200 SXM 141GB\"", "\"MI300X\"", 1);
        assert!(
            parse("t.json", &bad)
                .unwrap_err()
                .to_string()
                .contains("gpu")
        );
    }
}
