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

/// Llama 3.1 (and 3.3, the same architecture) totals as Meta's model cards give them; the short
/// names read the same files.
#[test]
fn llama_3_1_totals() {
    for (name, file, total) in [
        ("llama-3.1-8b", "models/Llama-3.1-8B.json", 8_030_261_248.0),
        (
            "llama-3.1-70b",
            "models/Llama-3.1-70B.json",
            70_553_706_496.0,
        ),
        (
            "llama-3.1-405b",
            "models/Llama-3.1-405B.json",
            405_853_388_800.0,
        ),
    ] {
        assert_eq!(params(&path(file)).0, total, "{file}");
        assert_eq!(params(name).0, total, "{name}");
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

/// Qwen3 (QK-norm), Gemma 3 (QK-norm, sandwich norms, local/global layers), gpt-oss (sinks,
/// biases everywhere, MoE) and DeepSeek-V3 (MLA, fine-grained MoE, MTP): architecture fields in
/// tests/fixtures/, totals as tests/fixtures/README.md sources them.
#[test]
fn qwen3_gemma3_gpt_oss_and_deepseek_v3_configs() {
    for (file, total, active) in [
        (
            "tests/fixtures/qwen3-0.6b.json",
            596_049_920.0,
            596_049_920.0,
        ),
        (
            "tests/fixtures/qwen3-30b-a3b.json",
            30_532_122_624.0,
            3_353_032_704.0,
        ),
        (
            "tests/fixtures/gemma-3-1b.json",
            999_885_952.0,
            999_885_952.0,
        ),
        (
            "tests/fixtures/gemma-3-4b.json",
            3_880_263_168.0,
            3_880_263_168.0,
        ),
        (
            "tests/fixtures/gpt-oss-20b.json",
            20_914_757_184.0,
            4_187_440_704.0,
        ),
        (
            "tests/fixtures/gpt-oss-120b.json",
            116_829_156_672.0,
            5_711_982_912.0,
        ),
        (
            "tests/fixtures/deepseek-v3.json",
            671_026_419_200.0,
            37_552_297_472.0,
        ),
    ] {
        let (t, a, _) = params(&path(file));
        assert_eq!(t, total, "{file}");
        assert_eq!(a, active, "{file}");
    }
}

/// OpenAI's model card gives gpt-oss's active parameters without the input embedding (a
/// lookup): 3.61B and 5.13B.
#[test]
fn gpt_oss_active_without_the_input_embedding() {
    for (file, active) in [
        ("tests/fixtures/gpt-oss-20b.json", 3_608_307_264.0),
        ("tests/fixtures/gpt-oss-120b.json", 5_132_849_472.0),
    ] {
        let doc = predict_json(&["--model", &path(file), "--hw", "h200-sxm", "--seq", "128"]);
        let without_input_embedding = num(&doc, "params.active") - num(&doc, "params.embedding");
        assert_eq!(without_input_embedding, active, "{file}");
    }
}

/// DeepSeek-V3's published 671B excludes its multi-token-prediction module, counted apart:
/// 11,610,068,224 of its own (one MoE layer, three norms, the 2h → h projection). The
/// checkpoint stores copies of the embedding and head beside it (13,463,426,304 with them, the
/// model card's "14B MTP module").
#[test]
fn deepseek_v3_counts_its_mtp_module_apart() {
    let doc = predict_json(&[
        "--model",
        &path("tests/fixtures/deepseek-v3.json"),
        "--hw",
        "h200-sxm",
        "--seq",
        "128",
    ]);
    assert_eq!(num(&doc, "params.total"), 671_026_419_200.0);
    assert_eq!(num(&doc, "params.mtp"), 11_610_068_224.0);
    let copies = num(&doc, "params.embedding") + num(&doc, "params.lm_head");
    assert_eq!(num(&doc, "params.mtp") + copies, 13_463_426_304.0);
}

/// Qwen3-Next's architecture (Qwen3-Coder-Next's config): Gated DeltaNet linear attention in
/// three layers of four, gated full attention in the fourth, 512 experts with a shared one.
#[test]
fn qwen3_next_config() {
    let (t, a, _) = params(&path("tests/fixtures/qwen3-coder-next.json"));
    assert_eq!(t, 79_674_391_296.0);
    assert_eq!(a, 3_874_929_408.0);
}

/// Nemotron-H's architecture (NVIDIA-Nemotron-Nano-9B-v2's config): 27 Mamba-2 layers, 4
/// attention layers and 25 squared-ReLU MLP layers, each one block with its own norm. The Hub's
/// safetensors count is 8,888,227,328 (17,776,454,656 bytes of bf16 weights, two bytes each).
#[test]
fn nemotron_h_config() {
    let (t, a, n) = params(&path("tests/fixtures/nemotron-nano-9b-v2.json"));
    assert_eq!(t, 8_888_227_328.0);
    assert_eq!(a, t, "a model without experts activates every parameter");
    // Untied: the embedding and the head are 131,072 × 4,480 each.
    assert_eq!(t - n, 2.0 * 131_072.0 * 4_480.0);
}

/// Nemotron 3 Nano 30B-A3B: 23 Mamba-2 layers, 6 attention layers and 23 MoE layers (128
/// squared-ReLU experts of 1,856, 6 per token, one shared expert of 3,712, a router with a
/// bias per expert). llama.cpp counts 31,577,940,288 parameters in its conversion of the
/// checkpoint; the model card gives 31.6B total and 3.2B active (3.6B with the embeddings).
#[test]
fn nemotron_h_moe_config() {
    let doc = predict_json(&[
        "--model",
        &path("tests/fixtures/nemotron-3-nano-30b-a3b.json"),
        "--hw",
        "h200-sxm",
        "--seq",
        "128",
    ]);
    assert_eq!(num(&doc, "params.total"), 31_577_940_288.0);
    assert_eq!(num(&doc, "params.active"), 3_580_076_352.0);
    let without_input_embedding = num(&doc, "params.active") - num(&doc, "params.embedding");
    assert_eq!(without_input_embedding, 3_227_754_816.0);
}
