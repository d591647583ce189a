//! `gpucost predict`: the cost of one architecture on one GPU or a layout of several.

use super::format::{bytes, count, percent, seconds, si};
use super::{Format, args};
use crate::model::execution::Recompute;
use crate::model::ops::limits;
use crate::model::report::Estimate;
use anyhow::Result;
use clap::Args;
use tabled::builder::Builder;
use tabled::settings::Style;

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A Hugging Face config.json, a native .toml, or a short name (llama-3-8b, mixtral-8x7b, gpt2, …).
    #[arg(long)]
    model: String,
    /// A catalog GPU (see `gpucost hw list`) or a profile .toml.
    #[arg(long)]
    hw: String,
    /// Matmul dtype: fp32, tf32, fp16, bf16, fp8-e4m3, fp8-e5m2, int8, int4.
    #[arg(long, default_value = "bf16")]
    dtype: String,
    /// KV-cache dtype (default: the attention dtype).
    #[arg(long)]
    kv_dtype: Option<String>,
    /// Sequences per training step, and concurrent sequences when serving.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    batch: i64,
    /// Training sequence length.
    #[arg(long, default_value_t = 4096, allow_negative_numbers = true)]
    seq: i64,
    /// Prompt tokens per sequence when serving.
    #[arg(long, default_value_t = 1024, allow_negative_numbers = true)]
    prompt: i64,
    /// Generated tokens per sequence when serving.
    #[arg(long = "gen", default_value_t = 256, allow_negative_numbers = true)]
    generate: i64,
    /// Activation recomputation in training.
    #[arg(long, value_enum, default_value_t = Recompute::None)]
    recompute: Recompute,
    /// Model unfused attention (scores written to memory) instead of a flash-style kernel.
    #[arg(long)]
    no_fused_attention: bool,
    /// Train with dropout on the attention probabilities and the residual stream.
    #[arg(long)]
    dropout: bool,
    /// Decode speculatively, the model's multi-token-prediction modules drafting one token each
    /// per step, every drafted token accepted with this probability (0 to 1).
    #[arg(long, allow_negative_numbers = true)]
    speculative_acceptance: Option<f64>,
    /// Price per GPU-hour in USD (overrides the profile's).
    #[arg(long, allow_negative_numbers = true)]
    price_per_hour: Option<f64>,
    /// Use the uncalibrated roofline even where a calibration for the GPU exists.
    #[arg(long, conflicts_with_all = ["calibration", "stack"])]
    roofline: bool,
    /// Which measured implementations price ops: production (the vendor libraries frameworks
    /// run: cuBLAS, cuBLASLt, SDPA), ours (this suite's kernels), all (the fastest measured), or
    /// one implementation ("cuda:mma").
    #[arg(long, default_value = "production")]
    stack: String,
    /// A calibration file from `gpucost calibrate` (default: the one embedded for the GPU, if any).
    #[arg(long)]
    calibration: Option<std::path::PathBuf>,
    /// List every op with its time, FLOPs, bytes and bound.
    #[arg(long)]
    breakdown: bool,
    #[command(flatten)]
    layout: args::LayoutArgs,
    /// The GPUs of the layout: with the other groups given, the data-parallel ranks are what
    /// they leave; with --search-parallelism, what the search lays the training step out on.
    #[arg(long, allow_negative_numbers = true)]
    gpus: Option<i64>,
    /// List the fastest layouts of --gpus GPUs that fit in memory, instead of predicting one.
    #[arg(long, requires = "gpus")]
    search_parallelism: bool,
    /// With --search-parallelism: how many layouts to list.
    #[arg(
        long,
        default_value_t = 10,
        requires = "search_parallelism",
        allow_negative_numbers = true
    )]
    top: i64,
    /// The serving layout's output tokens per second at full load, requests of --prompt and --gen
    /// tokens: as many sequences as the KV cache holds, prefills between decode steps.
    #[arg(long, conflicts_with_all = ["search_parallelism", "breakdown", "speculative_acceptance"])]
    offline_throughput: bool,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(a: PredictArgs) -> Result<()> {
    // One request, checked and predicted by the code the Python package calls.
    let request = crate::api::PredictRequest {
        model: crate::api::ModelSpec::Name(a.model),
        hw: a.hw,
        dtype: a.dtype,
        kv_dtype: a.kv_dtype,
        batch: a.batch,
        seq: a.seq,
        prompt: a.prompt,
        generate: a.generate,
        recompute: a.recompute,
        fused_attention: !a.no_fused_attention,
        dropout: a.dropout,
        price_per_hour: a.price_per_hour,
        roofline: a.roofline,
        stack: a.stack,
        calibration: a.calibration,
        breakdown: a.breakdown,
        layout: a.layout.training(if a.search_parallelism {
            None
        } else {
            a.gpus
                .map(|g| args::bounded("gpus", g, limits::RANKS))
                .transpose()?
        })?,
        gpus_per_node: a.layout.gpus_per_node()?,
        speculative_acceptance: a.speculative_acceptance,
    };
    if a.search_parallelism {
        let gpus = args::bounded("gpus", a.gpus.unwrap_or(0), limits::RANKS)?;
        let top = args::bounded("top", a.top, 1000)? as usize;
        let doc = request.search_layouts(gpus, top)?;
        return super::emit(&match a.format {
            Format::Json => serde_json::to_string_pretty(&doc)? + "\n",
            Format::Table => layouts_table(&doc),
        });
    }
    if a.offline_throughput {
        let doc = request.offline_throughput()?;
        return super::emit(&match a.format {
            Format::Json => serde_json::to_string_pretty(&doc)? + "\n",
            Format::Table => offline_table(&doc),
        });
    }
    let p = request.run()?;
    for w in &p.warnings {
        eprintln!("warning: {w}");
    }
    let mut out = String::new();
    match a.format {
        Format::Json => outln!(out, "{}", serde_json::to_string_pretty(&p.estimate)?),
        Format::Table => out = render_tables(&p.estimate),
    }
    super::emit(&out)
}

/// The offline-throughput document as a table.
fn offline_table(doc: &serde_json::Value) -> String {
    let t = &doc["offline"];
    let num = |k: &str| t[k].as_f64().unwrap_or(f64::NAN);
    let gpus = doc["tp"].as_u64().unwrap_or(1) * doc["pp"].as_u64().unwrap_or(1);
    let rate = match t["error_pct"].as_f64() {
        Some(e) => format!("{:.0} ±{e:.0}%", num("output_tokens_per_s")),
        None => format!("{:.0}", num("output_tokens_per_s")),
    };
    let mut out = format!(
        "{} on {} x {} ({}; {})\n",
        doc["model"].as_str().unwrap_or(""),
        gpus,
        doc["hardware"].as_str().unwrap_or(""),
        doc["dtype"].as_str().unwrap_or(""),
        doc["cost_model"].as_str().unwrap_or("")
    );
    out += &key_values(&[
        (
            "requests",
            format!(
                "{} prompt + {} generated tokens each",
                t["input"], t["output"]
            ),
        ),
        ("concurrency", count(t["concurrency"].as_u64().unwrap_or(0))),
        ("output tokens/s", rate),
        (
            "output tokens/s per GPU",
            format!("{:.0}", num("output_tokens_per_s_per_gpu")),
        ),
        ("decode step", seconds(num("decode_step_s"))),
        ("prefill per request", seconds(num("prefill_s_per_request"))),
        ("KV cache per sequence", bytes(num("kv_bytes_per_sequence"))),
    ]);
    out += "\nassumed:\n";
    for a in doc["assumptions"].as_array().into_iter().flatten() {
        out += &format!("- {}\n", a.as_str().unwrap_or(""));
    }
    out
}

/// Where a multi-GPU step's time goes.
fn cluster_table(e: &Estimate, c: &crate::model::report::ClusterReport) -> String {
    let layout = |p: &crate::model::parallel::Parallelism| {
        let mut s = format!("tp {} x pp {} x dp {}", p.tp, p.pp, p.dp);
        if p.cp > 1 {
            s += &format!(" x cp {}", p.cp);
        }
        if p.ep > 1 {
            s += &format!(", ep {}", p.ep);
        }
        s
    };
    let t = &e.training_setup.parallelism;
    let mut rows = vec![
        (
            "training layout",
            format!("{} = {} GPUs", layout(t), c.training_gpus),
        ),
        (
            "microbatches",
            format!("{} of {} sequences", c.microbatches, c.micro_batch_size),
        ),
        (
            "schedule",
            match (t.pp, t.virtual_stages) {
                (1, _) => "no pipeline".to_string(),
                (_, 1) => "1F1B".to_string(),
                (_, v) => format!("interleaved 1F1B, {v} chunks per stage"),
            },
        ),
        ("pipeline bubble", percent(c.pipeline_bubble_fraction)),
        (
            "communication (exposed)",
            percent(c.training_communication_fraction),
        ),
        (
            "data-parallel exchange",
            format!(
                "{} ({} exposed)",
                seconds(c.data_parallel_s),
                seconds(c.data_parallel_exposed_s)
            ),
        ),
        (
            "TFLOP/s per GPU",
            format!(
                "{:.0} model, {:.0} hardware",
                c.model_tflops_per_gpu, c.hardware_tflops_per_gpu
            ),
        ),
    ];
    if t.zero == crate::model::parallel::Zero::Stage3 {
        rows.push((
            "ZeRO-3 exchange",
            format!(
                "{} ({} exposed)",
                seconds(c.zero3_s),
                seconds(c.zero3_exposed_s)
            ),
        ));
    }
    rows.push((
        "serving layout",
        format!(
            "{} ({} GPUs; batch per replica)",
            layout(&e.inference_setup.parallelism),
            c.serving_gpus
        ),
    ));
    rows.push((
        "serving communication",
        format!(
            "{} of the prefill, {} of a decode step",
            percent(c.prefill_communication_fraction),
            percent(c.decode_communication_fraction)
        ),
    ));
    key_values(&rows)
}

/// The layout search's document as a table.
fn layouts_table(doc: &serde_json::Value) -> String {
    let mut b = Builder::default();
    b.push_record([
        "tp",
        "pp",
        "dp",
        "ep",
        "cp",
        "micro-batch",
        "chunks",
        "zero",
        "seq-par",
        "step",
        "tokens/s",
        "MFU",
        "memory/GPU",
        "bubble",
        "comm",
    ]);
    let n = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    for l in doc["layouts"].as_array().into_iter().flatten() {
        let p = &l["parallelism"];
        let mut row: Vec<String> = [
            "tp",
            "pp",
            "dp",
            "ep",
            "cp",
            "micro_batch",
            "virtual_stages",
        ]
        .iter()
        .map(|k| p[k].to_string())
        .collect();
        row.push(p["zero"].as_str().unwrap_or("-").to_string());
        row.push(
            if p["sequence_parallel"] == true {
                "yes"
            } else {
                "no"
            }
            .into(),
        );
        row.push(with_error(
            n(&l["step_time_s"]),
            l["step_time_error_pct"].as_f64(),
        ));
        row.push(si(n(&l["tokens_per_s"])));
        row.push(percent(n(&l["mfu"])));
        row.push(bytes(n(&l["memory_bytes_per_gpu"])));
        row.push(percent(n(&l["pipeline_bubble_fraction"])));
        row.push(percent(n(&l["communication_fraction"])));
        b.push_record(row);
    }
    format!(
        "fastest layouts of {} GPUs ({} per node) for {} on {} that fit in memory ({} tried):\n{}\n",
        doc["gpus"],
        doc["gpus_per_node"],
        doc["model"].as_str().unwrap_or("?"),
        doc["hardware"].as_str().unwrap_or("?"),
        doc["layouts_tried"],
        b.build().with(Style::rounded())
    )
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

/// "380 ms ±12%" where the model gives an error bar.
fn with_error(s: f64, error_pct: Option<f64>) -> String {
    match error_pct {
        Some(e) => format!("{} ±{e:.0}%", seconds(s)),
        None => seconds(s),
    }
}

fn key_values(rows: &[(&str, String)]) -> String {
    let mut b = Builder::default();
    for (k, v) in rows {
        b.push_record([k.to_string(), v.clone()]);
    }
    b.build()
        .with(Style::rounded().remove_horizontals())
        .to_string()
}

fn render_tables(e: &Estimate) -> String {
    let mut out = String::new();
    let (t, i) = (&e.training, &e.inference);
    let (ts, is) = (&e.training_setup, &e.inference_setup);
    let p = &e.params;
    outln!(
        out,
        "{} on {} ({}; {})",
        e.model.name,
        e.hardware.display_name,
        ts.dtype,
        e.provenance.cost_model
    );
    let mtp = if p.mtp > 0 {
        format!(" (multi-token prediction: {} more)", count(p.mtp))
    } else {
        String::new()
    };
    outln!(
        out,
        "parameters: {} total, {} active, {} non-embedding{mtp}",
        count(p.total),
        count(p.active),
        count(p.non_embedding)
    );
    outln!(
        out,
        "\ntraining step: batch {} x seq {} = {} tokens, recompute {}",
        ts.batch,
        ts.seq,
        t.tokens_per_step,
        format!("{:?}", ts.recompute).to_lowercase()
    );
    let usd = |v: f64| format!("${v:.2}");
    outln!(
        out,
        "{}",
        key_values(&[
            (
                "step time",
                with_error(t.step_time_s, t.step_time_error_pct)
            ),
            ("tokens/s", format!("{:.0}", t.tokens_per_s)),
            ("MFU", percent(t.mfu)),
            (
                "model FLOPs/token",
                format!("{}FLOP", si(t.model_flops_per_token))
            ),
            (
                "energy/token",
                opt(t.energy_j_per_token, |j| format!("{j:.3} J"))
            ),
            ("$ per 1M tokens", opt(t.usd_per_million_tokens, usd)),
        ])
    );
    outln!(
        out,
        "\ninference: batch {}, prompt {}, generate {}, kv-cache {}",
        is.batch,
        is.prompt,
        is.generate,
        is.kv_dtype
    );
    let mut rows = vec![
        (
            "time to first token",
            with_error(i.ttft_s, i.ttft_error_pct),
        ),
        (
            "time per output token",
            with_error(i.tpot_s, i.tpot_error_pct),
        ),
        ("decode tokens/s", format!("{:.0}", i.decode_tokens_per_s)),
    ];
    if let Some(s) = &i.speculative {
        rows.push((
            "speculative decoding",
            format!(
                "{} drafted, {:.0}% accepted: {:.2} tokens per step",
                s.drafted_tokens,
                100.0 * s.acceptance,
                s.tokens_per_step
            ),
        ));
    }
    rows.extend([
        ("prefill tokens/s", format!("{:.0}", i.prefill_tokens_per_s)),
        ("request latency", seconds(i.request_latency_s)),
        (
            "energy/output token",
            opt(i.energy_j_per_output_token, |j| format!("{j:.3} J")),
        ),
        (
            "$ per 1M output tokens",
            opt(i.usd_per_million_output_tokens, usd),
        ),
    ]);
    outln!(out, "{}", key_values(&rows));
    if let Some(c) = &e.cluster {
        outln!(out, "\n{}", cluster_table(e, c));
    }
    let (mt, mi) = (&e.memory.training, &e.memory.inference);
    let mut b = Builder::default();
    b.push_record([
        if e.cluster.is_some() {
            "memory per GPU"
        } else {
            "memory"
        },
        "training",
        "inference",
    ]);
    b.push_record([
        "weights".into(),
        bytes(mt.weights_bytes),
        bytes(mi.weights_bytes),
    ]);
    b.push_record(["gradients".into(), bytes(mt.gradients_bytes), "-".into()]);
    b.push_record([
        "optimizer (Adam)".into(),
        bytes(mt.optimizer_bytes),
        "-".into(),
    ]);
    b.push_record([
        "activations".into(),
        bytes(mt.activations_bytes),
        bytes(mi.activations_bytes),
    ]);
    b.push_record(["KV cache".into(), "-".into(), bytes(mi.kv_cache_bytes)]);
    if mi.recurrent_state_bytes > 0.0 {
        b.push_record([
            "recurrent state".into(),
            "-".into(),
            bytes(mi.recurrent_state_bytes),
        ]);
    }
    b.push_record(["total".into(), bytes(mt.total_bytes), bytes(mi.total_bytes)]);
    let fits = |f: bool, cap: f64| {
        format!(
            "{} ({} on the GPU)",
            if f { "yes" } else { "NO" },
            bytes(cap)
        )
    };
    b.push_record([
        "fits".into(),
        fits(mt.fits, mt.capacity_bytes),
        fits(mi.fits, mi.capacity_bytes),
    ]);
    outln!(out, "\n{}", b.build().with(Style::rounded()));
    outln!(out, "energy: {}", e.provenance.energy_basis);
    if let Some(ops) = &e.breakdown {
        let mut b = Builder::default();
        b.push_record([
            "phase",
            "op",
            "shape",
            "count",
            "time each",
            "time total",
            "FLOPs",
            "bytes",
            "bound",
        ]);
        for o in ops {
            b.push_record([
                format!("{:?}", o.phase).to_lowercase(),
                o.label.clone(),
                o.op.clone(),
                o.count.to_string(),
                seconds(o.seconds_each),
                seconds(o.seconds_total),
                si(o.flops_total),
                bytes(o.bytes_total),
                o.bound.name().to_string(),
            ]);
        }
        outln!(
            out,
            "\nper-op breakdown (training step, prefill, first decode step):"
        );
        outln!(out, "{}", b.build().with(Style::rounded()));
    }
    out
}
