//! Fuzzing the front door with proptest: arbitrary bytes, and shipped inputs with fields replaced
//! by arbitrary values (sizes at and past every limit, negative, fractional, NaN and infinite
//! numbers, wrong types), fed to the Hugging Face importer, the native TOML importer, the
//! hardware-profile parser, the calibration parser and the results reader. Nothing may panic,
//! and whatever is accepted must price to finite, positive figures. The case counts are small
//! enough for a debug build on two cores (a few seconds each).

use gpucost::model::arch::{self, Architecture};
use gpucost::model::cost::calibrated::{Calibration, Stack};
use gpucost::model::dtype::DType;
use gpucost::model::execution::{Execution, InferenceSetup, Parallelism, Recompute, TrainingSetup};
use gpucost::model::hw::{self, HwProfile};
use gpucost::model::report::{Options, estimate};
use gpucost::model::system::System;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use serde_json::{Value, json};

/// `cases` cases from a fixed seed, so that CI runs the same inputs every time;
/// PROPTEST_RNG_SEED and PROPTEST_CASES explore others.
fn config(cases: u32) -> Config {
    let base = Config::default();
    Config {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            base.cases
        } else {
            cases
        },
        rng_seed: match base.rng_seed {
            RngSeed::Random => RngSeed::Fixed(0x6770_7563_6f73_7431),
            seed => seed,
        },
        // No regression files written into the source tree.
        failure_persistence: None,
        ..base
    }
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A small execution: pricing cost does not depend on the sizes, and the sizes stay far from
/// their own limits so that what is fuzzed is the model or the profile.
fn small_execution(dtype: DType) -> Execution {
    Execution {
        training: TrainingSetup {
            batch: 2,
            seq: 64,
            dtype,
            recompute: Recompute::Selective,
            dropout: false,
            fused_attention: true,
            parallelism: Parallelism::default(),
        },
        serving: InferenceSetup {
            batch: 2,
            prompt: 32,
            generate: 80,
            dtype,
            kv_dtype: dtype,
            fused_attention: true,
            parallelism: Parallelism::default(),
            speculative_acceptance: None,
        },
    }
}

/// Figures of a prediction that must be finite and positive (JSON writes NaN as null).
const FIGURES: [&str; 14] = [
    "params.total",
    "training.step_time_s",
    "training.tokens_per_s",
    "training.mfu",
    "training.model_flops_per_token",
    "inference.ttft_s",
    "inference.prefill_tokens_per_s",
    "inference.tpot_s",
    "inference.decode_tokens_per_s",
    "inference.request_latency_s",
    "memory.training.total_bytes",
    "memory.inference.total_bytes",
    "memory.inference.kv_cache_bytes",
    "memory.inference.weights_bytes",
];

fn numbers(v: &Value, at: &str, out: &mut Vec<(String, f64)>) {
    match v {
        Value::Number(n) => out.push((at.to_string(), n.as_f64().unwrap_or(f64::NAN))),
        Value::Object(m) => m
            .iter()
            .for_each(|(k, x)| numbers(x, &format!("{at}.{k}"), out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| numbers(x, &format!("{at}[{i}]"), out)),
        _ => {}
    }
}

/// Prices `arch` on `system`; Ok when every figure is finite and positive (or the request is
/// refused with an error, which is a fine answer), Err naming the figure otherwise.
fn priced_finite(arch: &Architecture, system: &System, dtype: DType) -> Result<(), String> {
    let Ok(e) = estimate(arch, &small_execution(dtype), system, &Options::default()) else {
        return Ok(());
    };
    let doc = serde_json::to_value(&e).unwrap();
    for p in FIGURES {
        // A model whose every layer is linear attention keeps a state and no KV cache.
        if p == "memory.inference.kv_cache_bytes" && arch.attention_layers() == 0 {
            continue;
        }
        let mut v = &doc;
        for key in p.split('.') {
            v = &v[key];
        }
        match v.as_f64() {
            Some(x) if x.is_finite() && x > 0.0 => {}
            _ => return Err(format!("{p} is {v} for {arch:?}")),
        }
    }
    let mut all = Vec::new();
    numbers(&doc, "", &mut all);
    match all.iter().find(|(_, x)| !(x.is_finite() && *x >= 0.0)) {
        Some((p, x)) => Err(format!("{p} is {x} for {arch:?}")),
        None => Ok(()),
    }
}

fn h100() -> &'static System {
    static SYSTEM: std::sync::OnceLock<System> = std::sync::OnceLock::new();
    SYSTEM.get_or_init(|| System::load("h100-sxm", None, true).unwrap())
}

fn h100_calibrated() -> &'static System {
    static SYSTEM: std::sync::OnceLock<System> = std::sync::OnceLock::new();
    SYSTEM.get_or_init(|| System::load("h100-sxm", None, false).unwrap())
}

/// Sizes where bugs live: small, powers of two and their neighbours, each limit, the top of u64.
fn interesting_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => prop::sample::select(vec![0u64, 1, 2, 3, 4, 7, 8, 12, 16, 64, 128, 256, 4096, 14336]),
        2 => (0u32..64).prop_map(|e| 1u64 << e),
        1 => (1u32..64).prop_map(|e| (1u64 << e) + 1),
        1 => (1u32..64).prop_map(|e| (1u64 << e) - 1),
        1 => Just(u64::MAX),
        1 => any::<u64>(),
        2 => 1u64..100_000,
    ]
}

fn interesting_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        2 => prop::sample::select(vec![
            0.0, -0.0, -1.0, 1e-300, 1e-7, 1e-6, 1e-3, 0.5, 1.0, 1.5, 1e9, 1e12, 1e21, 1e22,
            1e300, f64::MAX, f64::MIN_POSITIVE, f64::NAN, f64::INFINITY, f64::NEG_INFINITY,
        ]),
        1 => any::<f64>(),
        1 => 1e-3f64..1e21,
    ]
}

const NAMES: [&str; 32] = [
    "nemotron_h",
    "M-M*-",
    "M-M-L",
    "relu2",
    "none",
    "qwen3",
    "qwen3_moe",
    "qwen3_next",
    "gemma3_text",
    "gemma3",
    "gpt_oss",
    "deepseek_v3",
    "LLLLLG",
    "SSLG",
    "sliding_attention",
    "linear_attention",
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen2_moe",
    "gemma",
    "gemma2",
    "gpt2",
    "silu",
    "gelu",
    "relu",
    "gelu_new",
    "swiglu",
    "rmsnorm",
    "learned",
    "",
];

fn json_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => interesting_u64().prop_map(|v| json!(v)),
        1 => any::<i64>().prop_map(|v| json!(v)),
        1 => interesting_f64()
            .prop_map(|v| serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => prop::sample::select(NAMES.to_vec()).prop_map(|s| json!(s)),
        1 => "[a-z_]{0,8}".prop_map(Value::String),
        1 => Just(Value::Null),
        1 => Just(json!([1, 2])),
        1 => Just(json!({"a": 1})),
        1 => Just(json!(["sliding_attention", "full_attention"])),
        1 => Just(json!({"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 3})),
    ]
}

const HF_KEYS: [&str; 57] = [
    "hybrid_override_pattern",
    "mamba_num_heads",
    "mamba_head_dim",
    "ssm_state_size",
    "n_groups",
    "conv_kernel",
    "use_conv_bias",
    "use_bias",
    "mlp_hidden_act",
    "layer_types",
    "sliding_window_pattern",
    "text_config",
    "q_lora_rank",
    "kv_lora_rank",
    "qk_nope_head_dim",
    "qk_rope_head_dim",
    "v_head_dim",
    "n_routed_experts",
    "n_shared_experts",
    "first_k_dense_replace",
    "num_nextn_predict_layers",
    "linear_num_key_heads",
    "linear_num_value_heads",
    "linear_key_head_dim",
    "linear_value_head_dim",
    "linear_conv_kernel_dim",
    "full_attention_interval",
    "model_type",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
    "max_position_embeddings",
    "sliding_window",
    "use_sliding_window",
    "max_window_layers",
    "num_local_experts",
    "num_experts_per_tok",
    "num_experts",
    "moe_intermediate_size",
    "shared_expert_intermediate_size",
    "decoder_sparse_step",
    "mlp_only_layers",
    "hidden_act",
    "hidden_activation",
    "tie_word_embeddings",
    "attention_bias",
    "mlp_bias",
    "n_embd",
    "n_head",
    "n_layer",
    "n_positions",
    "n_inner",
    "activation_function",
];

fn hf_bases() -> Vec<Value> {
    let mut bases: Vec<Value> = [
        "models/Llama-2-7b-hf.json",
        "models/gpt2.json",
        "models/Mixtral-8x7B-Instruct-v0.1.json",
        "models/Mistral-7B-Instruct-v0.1.json",
        "tests/fixtures/qwen2-0.5b.json",
        "tests/fixtures/gemma-2-2b.json",
        "tests/fixtures/qwen3-0.6b.json",
        "tests/fixtures/qwen3-30b-a3b.json",
        "tests/fixtures/gemma-3-1b.json",
        "tests/fixtures/gemma-3-4b.json",
        "tests/fixtures/gpt-oss-20b.json",
        "tests/fixtures/deepseek-v3.json",
        "tests/fixtures/qwen3-coder-next.json",
        "tests/fixtures/nemotron-nano-9b-v2.json",
        "tests/fixtures/nemotron-3-nano-30b-a3b.json",
    ]
    .iter()
    .map(|p| serde_json::from_str(&read(p)).unwrap())
    .collect();
    bases.push(json!({
        "model_type": "qwen2_moe", "hidden_size": 2048, "intermediate_size": 5632,
        "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632,
        "num_experts": 60, "num_experts_per_tok": 4, "num_hidden_layers": 24,
        "num_attention_heads": 16, "num_key_value_heads": 16, "vocab_size": 151936,
        "max_position_embeddings": 8192, "use_sliding_window": true, "sliding_window": 4096,
        "max_window_layers": 12
    }));
    bases
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn hf_importer_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = arch::from_hf_config("fuzz.json", &text);
        let _ = arch::from_native_toml("fuzz.toml", &text);
        let _ = hw::parse_profile("fuzz.toml", &text);
        let _ = Calibration::parse("fuzz.json", &text);
    }

    #[test]
    fn hf_importer_takes_any_json_object(
        fields in prop::collection::btree_map(
            prop::sample::select(HF_KEYS.to_vec()),
            json_value(),
            0..12,
        )
    ) {
        let v = Value::Object(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        if let Ok(a) = arch::from_hf_config("fuzz.json", &v.to_string()) {
            prop_assert!(priced_finite(&a, h100(), DType::Bf16).is_ok());
        }
    }

    #[test]
    fn hf_configs_with_fields_replaced_price_finitely(
        base in 0usize..14,
        edits in prop::collection::vec(
            (prop::sample::select(HF_KEYS.to_vec()), prop::option::weighted(0.9, json_value())),
            1..5,
        ),
        calibrated in any::<bool>(),
    ) {
        let mut v = hf_bases().swap_remove(base);
        let obj = v.as_object_mut().unwrap();
        for (k, val) in edits {
            match val {
                Some(x) => { obj.insert(k.to_string(), x); }
                None => { obj.remove(k); }
            }
        }
        if let Ok(a) = arch::from_hf_config("fuzz.json", &v.to_string()) {
            let system = if calibrated { h100_calibrated() } else { h100() };
            let r = priced_finite(&a, system, DType::Bf16);
            prop_assert!(r.is_ok(), "{}", r.unwrap_err());
        }
    }
}

/// The native TOML form as a table with keys replaced.
fn toml_value() -> impl Strategy<Value = toml::Value> {
    prop_oneof![
        6 => interesting_u64()
            .prop_map(|v| i64::try_from(v).map_or(toml::Value::Float(v as f64), toml::Value::Integer)),
        1 => any::<i64>().prop_map(toml::Value::Integer),
        1 => interesting_f64().prop_map(toml::Value::Float),
        1 => any::<bool>().prop_map(toml::Value::Boolean),
        1 => prop::sample::select(NAMES.to_vec()).prop_map(|s| toml::Value::String(s.into())),
        1 => Just(toml::Value::Array(vec![toml::Value::Integer(1)])),
    ]
}

const NATIVE_KEYS: [&str; 38] = [
    "mamba.heads",
    "mamba.head_dim",
    "mamba.state_size",
    "mamba.groups",
    "mamba.conv_kernel",
    "moe.shared_expert_gate",
    "layer_pattern",
    "qk_norm",
    "attention_sinks",
    "attention_output_gate",
    "mtp_layers",
    "moe.router_bias",
    "mla.q_lora_rank",
    "mla.kv_lora_rank",
    "mla.qk_rope_head_dim",
    "mla.v_head_dim",
    "linear_attention.value_heads",
    "linear_attention.key_head_dim",
    "linear_attention.conv_kernel",
    "vocab_size",
    "hidden_size",
    "num_layers",
    "num_heads",
    "num_kv_heads",
    "head_dim",
    "intermediate_size",
    "mlp",
    "norm",
    "norms_per_layer",
    "positions",
    "max_position_embeddings",
    "tie_embeddings",
    "sliding_window",
    "moe.num_experts",
    "moe.top_k",
    "moe.expert_intermediate_size",
    "moe.shared_experts",
    "moe.first_dense_layers",
];

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn native_toml_with_fields_replaced_prices_finitely(
        base in prop::sample::select(vec![
            "examples/paper-model.toml",
            "examples/paper-mla.toml",
            "examples/paper-hybrid.toml",
            "examples/paper-ssm.toml",
        ]),
        edits in prop::collection::vec(
            (prop::sample::select(NATIVE_KEYS.to_vec()), prop::option::weighted(0.9, toml_value())),
            1..5,
        ),
        text_noise in prop::option::weighted(0.1, "[ -~\n]{0,40}"),
    ) {
        let mut t: toml::Table = toml::from_str(&read(base)).unwrap();
        for (k, val) in edits {
            let (table, key) = match k.split_once('.') {
                Some((name, key)) => (t.get_mut(name).and_then(|m| m.as_table_mut()), key),
                None => (Some(&mut t), k),
            };
            let Some(table) = table else { continue };
            match val {
                Some(x) => { table.insert(key.to_string(), x); }
                None => { table.remove(key); }
            }
        }
        let mut text = toml::to_string(&t).unwrap();
        if let Some(noise) = text_noise {
            text.push_str(&noise);
        }
        if let Ok(a) = arch::from_native_toml("fuzz.toml", &text) {
            let r = priced_finite(&a, h100(), DType::Bf16);
            prop_assert!(r.is_ok(), "{}", r.unwrap_err());
        }
    }
}

/// The dotted figures of a profile a case may replace.
const PROFILE_KEYS: [&str; 20] = [
    "compute_units.value",
    "boost_clock_hz.value",
    "memory_bytes.value",
    "memory_bandwidth_bytes_per_s.value",
    "l2_bytes.value",
    "tdp_w.value",
    "peak_flops.fp32.value",
    "peak_flops.bf16.value",
    "peak_flops.fp16.value",
    "interconnect.nvlink_bytes_per_s.value",
    "model.matmul_efficiency",
    "model.attention_efficiency",
    "model.memory_efficiency",
    "model.collective_efficiency",
    "model.launch_latency_s",
    "model.collective_latency_s",
    "model.matmul_tiles",
    "name",
    "compute_units.source",
    "peak_flops.fp32",
];

fn profile_value() -> impl Strategy<Value = toml::Value> {
    prop_oneof![
        4 => interesting_f64().prop_map(toml::Value::Float),
        2 => interesting_u64()
            .prop_map(|v| i64::try_from(v).map_or(toml::Value::Float(v as f64), toml::Value::Integer)),
        1 => prop::collection::vec((interesting_u64(), interesting_u64()), 0..4).prop_map(|t| {
            toml::Value::Array(
                t.into_iter()
                    .map(|(a, b)| {
                        let i = |v: u64| toml::Value::Integer(i64::try_from(v).unwrap_or(-1));
                        toml::Value::Array(vec![i(a), i(b)])
                    })
                    .collect(),
            )
        }),
        1 => "[a-z0-9 ./-]{0,12}".prop_map(toml::Value::String),
        1 => any::<bool>().prop_map(toml::Value::Boolean),
    ]
}

fn set_dotted(t: &mut toml::Table, path: &str, v: Option<toml::Value>) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap();
    let mut table = t;
    for p in parts {
        let Some(next) = table.get_mut(p).and_then(|x| x.as_table_mut()) else {
            return;
        };
        table = next;
    }
    match v {
        Some(v) => {
            table.insert(last.to_string(), v);
        }
        None => {
            table.remove(last);
        }
    }
}

fn gpt2() -> &'static Architecture {
    static A: std::sync::OnceLock<Architecture> = std::sync::OnceLock::new();
    A.get_or_init(|| arch::load("gpt2").unwrap())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn profiles_with_figures_replaced_price_finitely(
        base in prop::sample::select(vec!["h100-sxm", "lavapipe", "rtx-4090"]),
        edits in prop::collection::vec(
            (prop::sample::select(PROFILE_KEYS.to_vec()), prop::option::weighted(0.9, profile_value())),
            1..5,
        ),
    ) {
        let mut t: toml::Table = toml::from_str(&read(&format!("hw_profiles/{base}.toml"))).unwrap();
        for (k, v) in edits {
            set_dotted(&mut t, k, v);
        }
        let text = toml::to_string(&t).unwrap();
        if let Ok(p) = hw::parse_profile("fuzz.toml", &text) {
            let p: HwProfile = p;
            let system = System::new(p, None, true, Stack::Production).unwrap();
            let r = priced_finite(gpt2(), &system, DType::Fp32);
            prop_assert!(r.is_ok(), "{}", r.unwrap_err());
        }
    }
}

/// Replaces the number at the `index`-th numeric leaf of `v` (in document order) by `x`.
fn replace_number(v: &mut Value, index: &mut usize, x: &Value) -> bool {
    match v {
        Value::Number(_) => {
            if *index == 0 {
                *v = x.clone();
                return true;
            }
            *index -= 1;
            false
        }
        Value::Object(m) => m.values_mut().any(|c| replace_number(c, index, x)),
        Value::Array(a) => a.iter_mut().any(|c| replace_number(c, index, x)),
        _ => false,
    }
}

fn lavapipe_calibration() -> &'static Value {
    static V: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    V.get_or_init(|| serde_json::from_str(&read("hw_profiles/lavapipe.calibration.json")).unwrap())
}

/// A calibration with numbers replaced.
fn mutated_calibration(edits: Vec<(usize, Value)>) -> String {
    let mut v = lavapipe_calibration().clone();
    for (i, x) in edits {
        let mut i = i;
        replace_number(&mut v, &mut i, &x);
    }
    v.to_string()
}

proptest! {
    #![proptest_config(config(128))]

    /// The calibration parser: a calibration with numbers replaced is parsed or refused, never
    /// a panic.
    #[test]
    fn calibration_parser_takes_numbers_replaced(
        edits in prop::collection::vec((0usize..4000, json_value()), 1..6),
    ) {
        let _ = Calibration::parse("fuzz.json", &mutated_calibration(edits));
    }

    /// What the calibration parser accepts prices finitely (it checks its points: each op
    /// within `limits`, finite positive times and fits).
    #[test]
    fn accepted_calibrations_price_finitely(
        edits in prop::collection::vec((0usize..4000, json_value()), 1..6),
    ) {
        let lavapipe = hw::load("lavapipe").unwrap();
        if let Ok(c) = Calibration::parse("fuzz.json", &mutated_calibration(edits))
            && let Ok(system) = System::new(lavapipe, Some(c), false, Stack::All)
        {
            let r = priced_finite(gpt2(), &system, DType::Fp32);
            prop_assert!(r.is_ok(), "{}", r.unwrap_err());
        }
    }
}

/// Every committed calibration reads back what it wrote: parse, write, parse again.
#[test]
fn committed_calibrations_round_trip() {
    for name in ["lavapipe", "h100-sxm"] {
        let file = format!("hw_profiles/{name}.calibration.json");
        let c = Calibration::parse(&file, &read(&file)).unwrap();
        let text = serde_json::to_string_pretty(&c).unwrap();
        let back = Calibration::parse(&file, &text).unwrap();
        if let Some(d) = first_difference(
            &serde_json::to_value(&c).unwrap(),
            &serde_json::to_value(&back).unwrap(),
            "",
        ) {
            panic!("{file} does not round-trip: {d}");
        }
    }
}

/// Where two documents differ (numbers within 1e-12 relative: serde_json's default float
/// parsing may be an ulp off).
fn first_difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            ((x - y).abs() > 1e-12 * x.abs().max(y.abs())).then(|| format!("{at}: {x} vs {y}"))
        }
        (Value::Object(x), Value::Object(y)) if x.len() == y.len() => {
            x.iter().find_map(|(k, v)| match y.get(k) {
                Some(w) => first_difference(v, w, &format!("{at}.{k}")),
                None => Some(format!("{at}.{k}: missing")),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(v, w, &format!("{at}[{i}]"))),
        _ => (a != b).then(|| format!("{at}: {a} vs {b}")),
    }
}

#[cfg(feature = "measure")]
proptest! {
    #![proptest_config(config(128))]

    /// The results reader: any bytes, or a committed record with numbers replaced; refused with
    /// a message or read, never a panic, and what is read passes its own check.
    #[test]
    fn results_reader_takes_any_input(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        edits in prop::collection::vec((0usize..40, json_value()), 0..4),
    ) {
        use gpucost::measure::records;
        let dir = tempfile::TempDir::new().unwrap();
        let p = dir.path().join("r.jsonl");
        std::fs::write(&p, &bytes).unwrap();
        let _ = records::read(&p);
        let line = read("results/llvmpipe-llvm-15-0-6-256-bits/wgpu-matmul-fp32-1795708870804.jsonl")
            .lines()
            .next()
            .unwrap()
            .to_string();
        let mut v: Value = serde_json::from_str(&line).unwrap();
        for (i, x) in edits {
            let mut i = i;
            replace_number(&mut v, &mut i, &x);
        }
        std::fs::write(&p, v.to_string() + "\n").unwrap();
        if let Ok(r) = records::read(&p) {
            for rec in r.records {
                prop_assert!(rec.check().is_ok());
            }
        }
    }
}

fn published_table() -> &'static Value {
    static V: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        serde_json::from_str(&read("data/published/narayanan2021_table1.json")).unwrap()
    })
}

proptest! {
    #![proptest_config(config(64))]

    /// Published tables with numbers replaced are refused by field or predicted to finite,
    /// positive throughput; never a panic.
    #[test]
    fn published_tables_with_numbers_replaced_predict_finitely(
        edits in prop::collection::vec((0usize..200, json_value()), 1..4),
    ) {
        use gpucost::model::published;
        let mut v = published_table().clone();
        for (i, x) in edits {
            let mut i = i;
            replace_number(&mut v, &mut i, &x);
        }
        if let Ok(rows) = published::parse("fuzz.json", &v.to_string())
            && let Ok(predictions) = published::predict(&rows, true)
        {
            for p in &predictions.rows {
                prop_assert!(
                    p.predicted_tflops_per_gpu.is_finite() && p.predicted_tflops_per_gpu > 0.0,
                    "{}: {}", p.model, p.predicted_tflops_per_gpu
                );
                prop_assert!(p.step_time_s.is_finite() && p.step_time_s > 0.0);
                prop_assert!(p.held_out_error_pct.is_none_or(f64::is_finite));
            }
            for f in &predictions.fits {
                let (lo, hi) = published::FRACTION_RANGE;
                prop_assert!((lo..=hi).contains(&f.fitted_fraction), "{}", f.fitted_fraction);
            }
        }
    }

    /// Any layout is refused by name or priced to finite, positive figures per GPU.
    #[test]
    fn any_layout_is_refused_or_priced_finitely(
        tp in prop::sample::select(vec![1u64, 2, 3, 4, 8, 16, 64]),
        pp in prop::sample::select(vec![1u64, 2, 3, 8, 40, 100]),
        dp in prop::sample::select(vec![1u64, 2, 3, 4, 32, 1 << 20]),
        ep in prop::sample::select(vec![1u64, 2, 8]),
        cp in prop::sample::select(vec![1u64, 2, 4]),
        micro_batch in prop::sample::select(vec![0u64, 1, 2, 3, 64]),
        virtual_stages in prop::sample::select(vec![1u64, 2, 5]),
        zero in 0u64..4,
        sequence_parallel in any::<bool>(),
        imbalance in prop::sample::select(vec![1.0f64, 1.3, 0.5, f64::NAN, 100.0]),
        model in prop::sample::select(vec!["llama-2-7b", "mixtral-8x7b", "gpt2"]),
        batch in prop::sample::select(vec![1u64, 8, 64, 96]),
    ) {
        use gpucost::model::parallel::Zero;
        let a = arch::load(model).unwrap();
        let layout = Parallelism {
            tp, pp, dp, ep, cp, micro_batch, virtual_stages,
            zero: Zero::from_level(zero).unwrap(),
            sequence_parallel,
            expert_imbalance: imbalance,
            ..Parallelism::default()
        };
        let mut e = small_execution(DType::Bf16);
        e.training.batch = batch;
        e.training.seq = 1024;
        e.training.parallelism = layout;
        e.serving.parallelism = layout.for_serving();
        if let Ok(est) = estimate(&a, &e, h100(), &Options::default()) {
            let v = serde_json::to_value(&est).unwrap();
            let mut figures = Vec::new();
            numbers(&v, "", &mut figures);
            for (at, x) in figures {
                prop_assert!(x.is_finite(), "{at} = {x}");
            }
            prop_assert!(est.training.step_time_s > 0.0 && est.inference.tpot_s > 0.0);
            prop_assert!(est.memory.training.total_bytes > 0.0);
        }
    }
}
