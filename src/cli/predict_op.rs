//! `gpucost predict-op`: the cost of one kernel, for tools that need it (an autotuner, a compiler,
//! a scheduler).

use super::format::{seconds, si};
use super::{Format, args};
use crate::error::Error;
use crate::model::ops::{Attention, Matmul, Op, Pass, Scan, limits};
use crate::model::system::System;
use anyhow::Result;
use clap::{Args, Subcommand};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct PredictOpArgs {
    #[command(subcommand)]
    op: OpArgs,
}

#[derive(Debug, Args)]
struct Common {
    /// fp32, tf32, fp16, bf16, fp8-e4m3, fp8-e5m2, int8, int4.
    #[arg(long)]
    dtype: String,
    /// A catalog GPU or a profile .toml.
    #[arg(long)]
    hw: String,
    /// A calibration from `gpucost calibrate` (default: the one embedded for the GPU, if any).
    #[arg(long)]
    calibration: Option<PathBuf>,
    /// Use the uncalibrated roofline even where a calibration for the GPU exists.
    #[arg(long, conflicts_with_all = ["calibration", "stack"])]
    roofline: bool,
    /// Which measured implementations price the op: production (vendor libraries), ours, all,
    /// or one implementation ("cuda:mma").
    #[arg(long, default_value = "production")]
    stack: String,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, Subcommand)]
enum OpArgs {
    /// C = A·B with A m×k and B k×n, `batch` times.
    Matmul {
        #[arg(long, allow_negative_numbers = true)]
        m: i64,
        #[arg(long, allow_negative_numbers = true)]
        n: i64,
        #[arg(long, allow_negative_numbers = true)]
        k: i64,
        #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
        batch: i64,
        #[command(flatten)]
        common: Common,
    },
    /// Attention forward; queries are the last seq-q positions of a seq-kv context.
    Attention {
        #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
        batch: i64,
        #[arg(long, allow_negative_numbers = true)]
        heads: i64,
        /// Default: heads (multi-head attention).
        #[arg(long, allow_negative_numbers = true)]
        kv_heads: Option<i64>,
        #[arg(long, allow_negative_numbers = true)]
        seq_q: i64,
        /// Default: seq-q.
        #[arg(long, allow_negative_numbers = true)]
        seq_kv: Option<i64>,
        #[arg(long, allow_negative_numbers = true)]
        head_dim: i64,
        #[arg(long)]
        causal: bool,
        #[command(flatten)]
        common: Common,
    },
    /// The gated-delta-rule scan of Gated DeltaNet layers, chunked, the state starting at zero.
    Scan {
        #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
        batch: i64,
        #[arg(long, allow_negative_numbers = true)]
        heads: i64,
        #[arg(long, allow_negative_numbers = true)]
        seq: i64,
        #[arg(long, allow_negative_numbers = true)]
        key_dim: i64,
        /// Default: key-dim.
        #[arg(long, allow_negative_numbers = true)]
        value_dim: Option<i64>,
        #[arg(long, default_value_t = 64, allow_negative_numbers = true)]
        chunk: i64,
        #[command(flatten)]
        common: Common,
    },
}

/// The JSON document `predict-op --format json` writes.
#[derive(Debug, Serialize)]
struct OpPrediction {
    op: Op,
    hardware: String,
    model: String,
    seconds: f64,
    tflops: f64,
    bound: crate::model::cost::Bound,
    provenance: crate::model::cost::Provenance,
    /// What priced it: "backend:variant", or "roofline".
    implementation: String,
    error_pct: Option<f64>,
    flops: f64,
    bytes: f64,
    detail: String,
}

/// An `Op::check` message with the op's field names written as this command's flags.
fn flag_names(message: &str) -> String {
    message
        .split(' ')
        .map(|word| {
            let w = word.trim_end_matches(':');
            let flag = match w {
                "batch" => "--batch",
                "m" => "--m",
                "n" => "--n",
                "k" => "--k",
                "q_len" => "--seq-q",
                "kv_len" => "--seq-kv",
                "q_heads" => "--heads",
                "kv_heads" => "--kv-heads",
                "qk_head_dim" | "v_head_dim" => "--head-dim",
                "heads" => "--heads",
                "seq" => "--seq",
                "key_dim" => "--key-dim",
                "value_dim" => "--value-dim",
                "chunk" => "--chunk",
                _ => return word.to_string(),
            };
            format!("{flag}{}", &word[w.len()..])
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn run(a: PredictOpArgs) -> Result<()> {
    let (op, common) = match a.op {
        OpArgs::Matmul {
            m,
            n,
            k,
            batch,
            common,
        } => {
            let dtype = args::dtype("dtype", &common.dtype)?;
            let mm = Matmul::kernel(
                args::bounded("batch", batch, limits::OP_DIM)?,
                args::bounded("m", m, limits::OP_DIM)?,
                args::bounded("n", n, limits::OP_DIM)?,
                args::bounded("k", k, limits::OP_DIM)?,
                dtype,
            );
            (Op::Matmul(mm), common)
        }
        OpArgs::Attention {
            batch,
            heads,
            kv_heads,
            seq_q,
            seq_kv,
            head_dim,
            causal,
            common,
        } => {
            let dtype = args::dtype("dtype", &common.dtype)?;
            let heads = args::bounded("heads", heads, limits::HEADS)?;
            let kv_heads =
                args::bounded("kv-heads", kv_heads.unwrap_or(heads as i64), limits::HEADS)?;
            let seq_q = args::bounded("seq-q", seq_q, limits::OP_DIM)?;
            let seq_kv = args::bounded("seq-kv", seq_kv.unwrap_or(seq_q as i64), limits::OP_DIM)?;
            if !heads.is_multiple_of(kv_heads) {
                return Err(Error::Unsupported(format!(
                    "--kv-heads {kv_heads} does not divide --heads {heads}"
                ))
                .into());
            }
            if seq_q > seq_kv {
                return Err(Error::Unsupported(format!(
                    "--seq-q {seq_q} exceeds --seq-kv {seq_kv}"
                ))
                .into());
            }
            let d = args::bounded("head-dim", head_dim, limits::HEAD_DIM)?;
            let att = Attention {
                batch: args::bounded("batch", batch, limits::OP_DIM)?,
                q_heads: heads,
                kv_heads,
                q_len: seq_q,
                kv_len: seq_kv,
                qk_head_dim: d,
                v_head_dim: d,
                causal,
                window: None,
                dtype,
                kv_dtype: dtype,
                fused: true,
                pass: Pass::Forward,
                shared_kv: false,
            };
            (Op::Attention(att), common)
        }
        OpArgs::Scan {
            batch,
            heads,
            seq,
            key_dim,
            value_dim,
            chunk,
            common,
        } => {
            let key_dim = args::bounded("key-dim", key_dim, limits::HEAD_DIM)?;
            let scan = Scan {
                batch: args::bounded("batch", batch, limits::OP_DIM)?,
                heads: args::bounded("heads", heads, limits::HEADS)?,
                seq: args::bounded("seq", seq, limits::OP_DIM)?,
                key_dim,
                value_dim: args::bounded(
                    "value-dim",
                    value_dim.unwrap_or(key_dim as i64),
                    limits::HEAD_DIM,
                )?,
                chunk: args::bounded("chunk", chunk, crate::model::ops::scan::MAX_CHUNK)?,
                dtype: args::dtype("dtype", &common.dtype)?,
                pass: Pass::Forward,
            };
            (Op::Scan(scan), common)
        }
    };
    // Products of the sizes (operand elements, queries) within `limits`, named by flag.
    op.check().map_err(|e| Error::Unsupported(flag_names(&e)))?;
    let system = System::load_with(
        &common.hw,
        common.calibration.as_deref(),
        common.roofline,
        args::stack(
            &common.stack,
            &common.hw,
            common.calibration.as_deref(),
            common.roofline,
        )?,
    )?;
    let hardware = &system.hw;
    let p = system.cost_model.predict(&op, hardware)?;
    let doc = OpPrediction {
        op,
        hardware: hardware.name.clone(),
        model: system.describe(),
        seconds: p.seconds,
        tflops: p.flops / p.seconds / 1e12,
        bound: p.bound,
        provenance: p.provenance,
        implementation: system
            .cost_model
            .implementation_name(p.implementation)
            .to_string(),
        error_pct: p.error_pct,
        flops: p.flops,
        bytes: p.bytes,
        detail: p.detail.clone(),
    };
    let mut out = String::new();
    if common.format == Format::Json {
        outln!(out, "{}", serde_json::to_string_pretty(&doc)?);
    } else {
        outln!(
            out,
            "{op} on {}: {}{} ({}FLOP/s, {} bound, {:?}{})",
            hardware.name,
            seconds(p.seconds),
            p.error_pct
                .map(|e| format!(" ±{e:.0}%"))
                .unwrap_or_default(),
            si(p.flops / p.seconds),
            p.bound.name(),
            p.provenance,
            if p.detail.is_empty() {
                String::new()
            } else {
                format!("; {}", p.detail)
            }
        );
        outln!(out, "model: {}", doc.model);
    }
    super::emit(&out)
}
