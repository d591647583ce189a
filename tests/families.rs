//! The families with QK-norm, local/global layer patterns, attention sinks and multi-head latent
//! attention, read through the binary: the KV cache each keeps per token, and what a window caps.

mod common;
use common::{num, path, predict_json};
use serde_json::Value;

/// A prediction serving one sequence of `prompt + gen` tokens with a bf16 cache.
fn serve(file: &str, prompt: u64, generate: u64) -> Value {
    predict_json(&[
        "--model",
        &path(file),
        "--hw",
        "h200-sxm",
        "--seq",
        "256",
        "--prompt",
        &prompt.to_string(),
        "--gen",
        &generate.to_string(),
        "--kv-dtype",
        "bf16",
    ])
}

fn kv_per_token(doc: &Value) -> f64 {
    num(doc, "memory.inference.kv_cache_bytes_per_token")
}

fn kv_cache(doc: &Value) -> f64 {
    num(doc, "memory.inference.kv_cache_bytes")
}

/// Keys and values of every layer, 2 bytes each: layers × 2 × kv_heads × head_dim × 2.
#[test]
fn kv_bytes_per_token_of_each_family() {
    for (file, bytes) in [
        (
            "tests/fixtures/qwen3-0.6b.json",
            28.0 * 2.0 * 8.0 * 128.0 * 2.0,
        ),
        (
            "tests/fixtures/qwen3-30b-a3b.json",
            48.0 * 2.0 * 4.0 * 128.0 * 2.0,
        ),
        ("tests/fixtures/gemma-3-1b.json", 26.0 * 2.0 * 256.0 * 2.0),
        (
            "tests/fixtures/gemma-3-4b.json",
            34.0 * 2.0 * 4.0 * 256.0 * 2.0,
        ),
        (
            "tests/fixtures/gpt-oss-20b.json",
            24.0 * 2.0 * 8.0 * 64.0 * 2.0,
        ),
        // MLA keeps the 512-wide latent and the 64-wide shared rotary key per layer.
        (
            "tests/fixtures/deepseek-v3.json",
            61.0 * (512.0 + 64.0) * 2.0,
        ),
    ] {
        assert_eq!(kv_per_token(&serve(file, 64, 8)), bytes, "{file}");
    }
}

/// Gemma 3 1B: of 26 layers, every sixth is global (4) and the other 22 keep at most the
/// 512-token window; one layer keeps 2 × 256 × 2 bytes per token.
#[test]
fn gemma3_local_layers_keep_their_window() {
    let per_layer = 2.0 * 256.0 * 2.0;
    for (prompt, generate) in [(300, 100), (4000, 96)] {
        let context = (prompt + generate) as f64;
        let doc = serve("tests/fixtures/gemma-3-1b.json", prompt, generate);
        let expected = per_layer * (4.0 * context + 22.0 * context.min(512.0));
        assert_eq!(kv_cache(&doc), expected, "{prompt} + {generate}");
    }
}

/// gpt-oss alternates a 128-token band with full attention: half the layers cap their cache.
#[test]
fn gpt_oss_banded_layers_keep_128_tokens() {
    let per_layer = 2.0 * 8.0 * 64.0 * 2.0;
    let doc = serve("tests/fixtures/gpt-oss-120b.json", 4000, 96);
    assert_eq!(kv_cache(&doc), per_layer * (18.0 * 4096.0 + 18.0 * 128.0));
}

/// DeepSeek-V3's latent cache is the whole cache: no window, no per-head keys.
#[test]
fn deepseek_v3_caches_the_latent() {
    let doc = serve("tests/fixtures/deepseek-v3.json", 4000, 96);
    assert_eq!(kv_cache(&doc), 61.0 * 576.0 * 2.0 * 4096.0);
}

/// Qwen3-Next caches keys and values in its 12 attention layers only; its 36 linear-attention
/// layers keep a state of fixed size (32 value heads × 128 × 128 in fp32, and the last 3 inputs
/// of the short convolution over 8,192 channels) however long the context.
#[test]
fn linear_attention_layers_keep_a_state_not_a_cache() {
    let file = "tests/fixtures/qwen3-coder-next.json";
    let short = serve(file, 300, 100);
    let long = serve(file, 4000, 96);
    assert_eq!(kv_per_token(&short), 12.0 * 2.0 * 2.0 * 256.0 * 2.0);
    assert_eq!(kv_cache(&long), 12.0 * 2.0 * 2.0 * 256.0 * 2.0 * 4096.0);
    let state = 36.0 * (32.0 * 128.0 * 128.0 * 4.0 + 8192.0 * 3.0 * 2.0);
    for doc in [&short, &long] {
        assert_eq!(num(doc, "memory.inference.recurrent_state_bytes"), state);
    }
    // A model without linear attention keeps none.
    let dense = serve("tests/fixtures/qwen3-0.6b.json", 300, 100);
    assert_eq!(num(&dense, "memory.inference.recurrent_state_bytes"), 0.0);
}

/// DeepSeek-V3 decoding speculatively with its multi-token-prediction module: a step yields
/// 1 + a tokens on average, so the time per output token is the step over that; the module's
/// weights are held beside the model's; a model without such modules cannot draft.
#[test]
fn speculative_decoding_divides_the_step_by_the_tokens_it_yields() {
    let run = |acceptance: Option<&str>| {
        let mut args = vec![
            "--model".to_string(),
            path("tests/fixtures/deepseek-v3.json"),
            "--hw".into(),
            "h200-sxm".into(),
            "--gen".into(),
            "64".into(),
        ];
        if let Some(a) = acceptance {
            args.extend(["--speculative-acceptance".to_string(), a.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        predict_json(&args)
    };
    let (none, zero, most) = (run(None), run(Some("0")), run(Some("0.85")));
    let tpot = |d: &Value| num(d, "inference.tpot_s");
    // Accepting nothing, a step yields one token and costs more than a plain one.
    assert!(tpot(&zero) > tpot(&none));
    // The same step at 85% acceptance yields 1.85 tokens.
    assert!((tpot(&zero) / tpot(&most) - 1.85).abs() < 1e-9);
    let weights = |d: &Value| num(d, "memory.inference.weights_bytes");
    let mtp = num(&none, "params.mtp");
    assert_eq!(weights(&most) - weights(&none), 2.0 * mtp);
    // Training holds the module whether or not serving drafts with it.
    assert_eq!(
        num(&none, "memory.training.weights_bytes"),
        2.0 * (num(&none, "params.total") + mtp)
    );
    let e = common::user_error(&[
        "predict",
        "--model",
        "llama-3-8b",
        "--hw",
        "h200-sxm",
        "--speculative-acceptance",
        "0.5",
    ]);
    assert!(
        e.contains("--speculative-acceptance: llama-3-8b has no multi-token-prediction modules"),
        "{e}"
    );
}
