//! Exact parameter counts for every real Hugging Face config (the published checkpoints' counts,
//! as their model cards and safetensors indexes give them), read through the binary as a user would.

mod common;
use common::{num, path, predict_json};

fn params(model: &str) -> (f64, f64, f64) {
    let doc = predict_json(&[
        "--model", model, "--hw", "h200-sxm", "--seq", "128", "--prompt", "16", "--gen", "2",
    ]);
    (
        num(&doc, "params.total"),
        num(&doc, "params.active"),
        num(&doc, "params.non_embedding"),
    )
}

#[test]
fn gpt2_counts_learned_positions_and_biases() {
    assert_eq!(params(&path("models/gpt2.json")).0, 124_439_808.0);
    assert_eq!(params(&path("models/gpt2-xl.json")).0, 1_557_611_200.0);
}

#[test]
fn llama_family_total_and_non_embedding() {
    for (file, total, non_embedding) in [
        (
            "models/Llama-2-7b-hf.json",
            6_738_415_616.0,
            6_476_271_616.0,
        ),
        (
            "models/Llama-2-13b-hf.json",
            13_015_864_320.0,
            12_688_184_320.0,
        ),
        (
            "models/Meta-Llama-3-8B.json",
            8_030_261_248.0,
            6_979_588_096.0,
        ),
        (
            "models/Mistral-7B-Instruct-v0.1.json",
            7_241_732_096.0,
            6_979_588_096.0,
        ),
    ] {
        let (t, a, n) = params(&path(file));
        assert_eq!(t, total, "{file}");
        assert_eq!(a, total, "{file}: a dense model activates every parameter");
        assert_eq!(n, non_embedding, "{file}");
    }
}

#[test]
fn mixtral_total_and_active() {
    let (t, a, _) = params(&path("models/Mixtral-8x7B-Instruct-v0.1.json"));
    assert_eq!(t, 46_702_792_704.0);
    assert_eq!(a, 12_879_925_248.0);
}

#[test]
fn short_names_read_the_same_configs() {
    assert_eq!(params("llama-3-8b").0, 8_030_261_248.0);
    assert_eq!(params("mixtral-8x7b").1, 12_879_925_248.0);
}

#[test]
fn qwen2_and_gemma2_configs() {
    // Architecture fields of Qwen2-0.5B and Gemma-2-2B; their published totals are
    // 494,032,768 (tied embeddings, q/k/v biases) and 2,614,341,888 (tied, four norms per layer).
    assert_eq!(
        params(&path("tests/fixtures/qwen2-0.5b.json")).0,
        494_032_768.0
    );
    assert_eq!(
        params(&path("tests/fixtures/gemma-2-2b.json")).0,
        2_614_341_888.0
    );
}
