//! The workload figures the Foundation issue pins down: training FLOPs, KV-cache size, Adam
//! memory, and that more work never costs less time.

mod common;
use common::{num, path, predict_json};

/// 6 × (active non-embedding params + LM-head params) plus the attention term. Causal convention:
/// a token at position p attends to p + 1 keys, so the mean over a sequence of S is (S + 1) / 2 and
/// the training attention FLOPs per token are 3 × 4·d·heads·layers·(S + 1)/2.
fn textbook_flops_per_token(doc: &serde_json::Value, seq: f64) -> f64 {
    let n = num(doc, "params.active_non_embedding");
    let head = num(doc, "model.vocab_size") * num(doc, "model.hidden_size");
    let layers = num(doc, "model.layers");
    let heads = num(doc, "model.heads");
    let d = num(doc, "model.head_dim");
    6.0 * (n + head) + 6.0 * layers * heads * d * (seq + 1.0)
}

#[test]
fn training_flops_per_token_match_six_n_plus_attention() {
    for (model, seq) in [
        ("models/gpt2.json", 1024),
        ("models/Llama-2-7b-hf.json", 4096),
        ("models/Meta-Llama-3-8B.json", 8192),
        ("models/Mixtral-8x7B-Instruct-v0.1.json", 4096),
    ] {
        let doc = predict_json(&[
            "--model",
            &path(model),
            "--hw",
            "h100-sxm",
            "--seq",
            &seq.to_string(),
        ]);
        let ours = num(&doc, "training.model_flops_per_token");
        let textbook = textbook_flops_per_token(&doc, seq as f64);
        let rel = (ours / textbook - 1.0).abs();
        assert!(
            rel < 0.01,
            "{model}: {ours:e} vs {textbook:e} ({:.3}%)",
            rel * 100.0
        );
    }
}

#[test]
fn llama2_7b_kv_cache_is_half_a_mebibyte_per_token_in_fp16() {
    let doc = predict_json(&[
        "--model",
        "llama-2-7b",
        "--hw",
        "h100-sxm",
        "--dtype",
        "fp16",
        "--kv-dtype",
        "fp16",
        "--batch",
        "3",
        "--prompt",
        "1000",
        "--gen",
        "24",
    ]);
    assert_eq!(
        num(&doc, "memory.inference.kv_cache_bytes_per_token"),
        524_288.0
    );
    assert_eq!(
        num(&doc, "memory.inference.kv_cache_bytes"),
        524_288.0 * 3.0 * 1024.0
    );
    let fp8 = predict_json(&[
        "--model",
        "llama-2-7b",
        "--hw",
        "h100-sxm",
        "--kv-dtype",
        "fp8",
    ]);
    assert_eq!(
        num(&fp8, "memory.inference.kv_cache_bytes_per_token"),
        262_144.0
    );
}

#[test]
fn adam_training_memory_is_sixteen_bytes_per_parameter_plus_activations() {
    for dtype in ["bf16", "fp16", "fp32"] {
        let doc = predict_json(&[
            "--model",
            "llama-2-7b",
            "--hw",
            "h100-sxm",
            "--dtype",
            dtype,
        ]);
        let params = num(&doc, "params.total");
        let states = num(&doc, "memory.training.weights_bytes")
            + num(&doc, "memory.training.gradients_bytes")
            + num(&doc, "memory.training.optimizer_bytes");
        assert_eq!(states, 16.0 * params, "{dtype}");
        let activations = num(&doc, "memory.training.activations_bytes");
        assert!(activations > 0.0);
        assert_eq!(
            num(&doc, "memory.training.total_bytes"),
            states + activations
        );
    }
}

#[test]
fn more_tokens_never_cost_less_time() {
    let run = |batch: u64, seq: u64, prompt: u64, generate: u64| {
        predict_json(&[
            "--model",
            "mixtral-8x7b",
            "--hw",
            "a100-sxm-80gb",
            "--batch",
            &batch.to_string(),
            "--seq",
            &seq.to_string(),
            "--prompt",
            &prompt.to_string(),
            "--gen",
            &generate.to_string(),
        ])
    };
    let mut last: Option<serde_json::Value> = None;
    // Each step grows one of batch, seq, prompt or gen.
    for (b, s, p, g) in [
        (1, 128, 16, 2),
        (1, 129, 16, 2),
        (2, 129, 16, 2),
        (2, 1000, 16, 2),
        (2, 1000, 17, 2),
        (2, 1000, 500, 2),
        (2, 1000, 500, 3),
        (2, 1000, 500, 64),
        (3, 1000, 500, 64),
        (7, 1000, 500, 64),
        (7, 4096, 4096, 64),
        (16, 4096, 4096, 512),
    ] {
        let doc = run(b, s, p, g);
        if let Some(prev) = &last {
            for key in [
                "training.step_time_s",
                "inference.ttft_s",
                "inference.request_latency_s",
            ] {
                assert!(
                    num(&doc, key) >= num(prev, key),
                    "{key} fell at batch {b} seq {s} prompt {p} gen {g}"
                );
            }
            for key in [
                "memory.training.total_bytes",
                "memory.inference.total_bytes",
            ] {
                assert!(
                    num(&doc, key) >= num(prev, key),
                    "{key} fell at batch {b} seq {s} prompt {p} gen {g}"
                );
            }
        }
        last = Some(doc);
    }
}

#[test]
fn json_keeps_the_documented_keys() {
    let doc = predict_json(&["--model", "llama-3-8b", "--hw", "h100-sxm"]);
    assert_eq!(num(&doc, "schema_version"), 2.0);
    for key in [
        "training_setup.parallelism.tp",
        "training_setup.parallelism.micro_batch",
        "inference_setup.parallelism.pp",
    ] {
        assert!(
            doc.pointer(&format!("/{}", key.replace('.', "/")))
                .is_some(),
            "{key}"
        );
    }
    for key in [
        "params.total",
        "params.active",
        "training.step_time_s",
        "training.tokens_per_s",
        "training.mfu",
        "training.model_flops_per_token",
        "inference.ttft_s",
        "inference.tpot_s",
        "inference.decode_tokens_per_s",
        "memory.training.total_bytes",
        "memory.inference.total_bytes",
        "memory.inference.kv_cache_bytes",
    ] {
        assert!(num(&doc, key) > 0.0, "{key}");
    }
    assert!(doc["memory"]["training"]["fits"].is_boolean());
    assert!(doc["memory"]["inference"]["fits"].is_boolean());
    // The H100 calibration is embedded: it prices the matmuls and attention it measured.
    let model = doc["provenance"]["cost_model"].as_str().unwrap();
    assert!(model.starts_with("calibrated on NVIDIA H100"), "{model}");
    let provenance = doc["provenance"]["op_provenance"].as_array().unwrap();
    assert!(provenance.iter().any(|p| p != "roofline"), "{provenance:?}");
    let roof = predict_json(&["--model", "llama-3-8b", "--hw", "h100-sxm", "--roofline"]);
    assert!(
        roof["provenance"]["cost_model"]
            .as_str()
            .unwrap()
            .starts_with("roofline")
    );
    assert_eq!(
        roof["provenance"]["op_provenance"],
        serde_json::json!(["roofline"])
    );
    // The breakdown appears only when asked for, and its ops add up to the step time.
    assert!(doc.get("breakdown").is_none());
    let b = predict_json(&["--model", "llama-3-8b", "--hw", "h100-sxm", "--breakdown"]);
    let train_sum: f64 = b["breakdown"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| {
            ["forward", "backward", "recompute", "optimizer"]
                .contains(&o["phase"].as_str().unwrap())
        })
        .map(|o| o["seconds_total"].as_f64().unwrap())
        .sum();
    let step = num(&b, "training.step_time_s");
    assert!((train_sum / step - 1.0).abs() < 1e-9);
}

#[test]
fn recomputation_costs_time_and_saves_memory() {
    let run = |r: &str| {
        predict_json(&[
            "--model",
            "llama-2-7b",
            "--hw",
            "h100-sxm",
            "--recompute",
            r,
        ])
    };
    let (none, full) = (run("none"), run("full"));
    assert!(num(&full, "training.step_time_s") > num(&none, "training.step_time_s"));
    assert!(
        num(&full, "memory.training.activations_bytes")
            < num(&none, "memory.training.activations_bytes")
    );
    // MFU counts model FLOPs only, so recomputation lowers it; HFU counts the recomputed work.
    assert!(num(&full, "training.mfu") < num(&none, "training.mfu"));
    assert!(num(&full, "training.hfu") > num(&full, "training.mfu"));
}

/// A finer sweep through the library: every prompt length and batch on a grid, dense and MoE, on
/// GPUs with different tile and SM counts.
#[test]
fn time_is_monotone_in_tokens_over_a_fine_grid() {
    use gpucost::model::cost::Roofline;
    use gpucost::model::dtype::DType;
    use gpucost::model::execution::{InferenceSetup, Parallelism};
    use gpucost::model::plan::{decode_ops, prefill_ops};
    let total =
        |ops: &[gpucost::model::plan::OpInstance], hw: &gpucost::model::hw::HwProfile| -> f64 {
            ops.iter()
                .map(|o| {
                    gpucost::model::cost::CostModel::predict(&Roofline, &o.op, hw)
                        .unwrap()
                        .seconds
                        * o.count as f64
                })
                .sum()
        };
    for model in ["llama-3-8b", "mixtral-8x7b"] {
        let arch = gpucost::model::arch::load(model).unwrap();
        for gpu in ["h100-sxm", "l40s", "lavapipe"] {
            let hw = gpucost::model::hw::load(gpu).unwrap();
            let dtype = if gpu == "lavapipe" {
                DType::Fp32
            } else {
                DType::Bf16
            };
            for batch in [1, 2, 3, 8, 33] {
                let mut last_prefill = 0.0;
                let mut last_decode = 0.0;
                for prompt in (1..=2048).step_by(61) {
                    let s = InferenceSetup {
                        batch,
                        prompt,
                        generate: 2,
                        dtype,
                        kv_dtype: dtype,
                        fused_attention: true,
                        parallelism: Parallelism::default(),
                        speculative_acceptance: None,
                    };
                    let p = total(&prefill_ops(&arch, &s), &hw);
                    let d = total(&decode_ops(&arch, &s, prompt + 1), &hw);
                    assert!(
                        p >= last_prefill,
                        "{model} {gpu} batch {batch} prompt {prompt}: prefill fell"
                    );
                    assert!(
                        d >= last_decode,
                        "{model} {gpu} batch {batch} prompt {prompt}: decode fell"
                    );
                    last_prefill = p;
                    last_decode = d;
                }
            }
        }
    }
}
