//! Every kind of bad input gets one line on stderr naming the file and the field (or the flag),
//! and exit code 2; inputs at the limits succeed with finite, positive figures. The table in
//! `bad_input_table` holds the cases (configs, native TOML models, hardware profiles, flags,
//! results records, calibration files, and the commands that read them); the tests before it
//! are the first, hand-written ones.

mod common;
use common::{gpucost, path, user_error};
use serde_json::{Value, json};
use std::fs;
use std::path::Path;
use tempfile::TempDir;

/// Writes `text` to `name` in a fresh temporary directory; returns (dir guard, path).
fn file(name: &str, text: &str) -> (TempDir, String) {
    let dir = TempDir::new().unwrap();
    let p = dir.path().join(name);
    fs::write(&p, text).unwrap();
    let s = p.to_string_lossy().into_owned();
    (dir, s)
}

fn predict_model(model: &str) -> String {
    user_error(&["predict", "--model", model, "--hw", "h100-sxm"])
}

fn llama_with(edit: impl Fn(&mut serde_json::Value)) -> (TempDir, String) {
    let text = fs::read_to_string(path("models/Llama-2-7b-hf.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    edit(&mut v);
    file("config.json", &v.to_string())
}

#[test]
fn malformed_json_names_the_file() {
    let (_d, p) = file("config.json", "{\"model_type\": \"llama\", ");
    let e = predict_model(&p);
    assert!(e.contains(&p) && e.contains("invalid JSON"), "{e}");
}

#[test]
fn missing_field_is_named() {
    let (_d, p) = llama_with(|v| {
        v.as_object_mut().unwrap().remove("hidden_size");
    });
    let e = predict_model(&p);
    assert!(e.contains(&format!("{p}: hidden_size: missing")), "{e}");
}

#[test]
fn unsupported_model_type_lists_the_supported_ones() {
    let (_d, p) = llama_with(|v| v["model_type"] = "rwkv".into());
    let e = predict_model(&p);
    assert!(
        e.contains(&format!("{p}: model_type: unsupported model_type 'rwkv'")),
        "{e}"
    );
    assert!(e.contains("mixtral") && e.contains("gpt2"), "{e}");
}

#[test]
fn zero_and_negative_sizes_in_a_config() {
    let (_d, p) = llama_with(|v| v["num_hidden_layers"] = 0.into());
    let e = predict_model(&p);
    assert!(
        e.contains(&format!("{p}: num_hidden_layers: must be positive")),
        "{e}"
    );
    let (_d, p) = llama_with(|v| v["intermediate_size"] = (-11008).into());
    let e = predict_model(&p);
    assert!(
        e.contains(&format!(
            "{p}: intermediate_size: expected a non-negative integer, got -11008"
        )),
        "{e}"
    );
    let (_d, p) = llama_with(|v| v["num_attention_heads"] = 0.into());
    let e = predict_model(&p);
    assert!(
        e.contains(&format!("{p}: num_attention_heads: must be positive")),
        "{e}"
    );
}

#[test]
fn kv_heads_that_do_not_divide_heads() {
    let (_d, p) = llama_with(|v| v["num_key_value_heads"] = 5.into());
    let e = predict_model(&p);
    assert!(
        e.contains(&format!(
            "{p}: num_key_value_heads: 5 key/value heads do not divide 32 query heads"
        )),
        "{e}"
    );
}

#[test]
fn native_toml_errors() {
    let good = fs::read_to_string(path("examples/paper-model.toml")).unwrap();
    let (_d, p) = file("m.toml", &good.replace("hidden_size", "hiden_size"));
    let e = predict_model(&p);
    assert!(e.contains(&p) && e.contains("hiden_size"), "{e}");
    let (_d, p) = file(
        "m.toml",
        &good.replace("num_layers = 24", "num_layers = -24"),
    );
    let e = predict_model(&p);
    assert!(e.contains(&format!("{p}: num_layers:")), "{e}");
    let (_d, p) = file("m.toml", "name = \"x\"\nvocab_size = [");
    let e = predict_model(&p);
    assert!(e.contains(&format!("{p}: invalid TOML at line 2")), "{e}");
    let (_d, p) = file(
        "m.toml",
        &good.replace("mlp = \"swiglu\"", "mlp = \"swishglu\""),
    );
    let e = predict_model(&p);
    assert!(
        e.contains(&format!("{p}: mlp: unknown MLP 'swishglu'")),
        "{e}"
    );
}

#[test]
fn hardware_profile_errors() {
    let good = fs::read_to_string(path("hw_profiles/h100-sxm.toml")).unwrap();
    let (_d, p) = file("gpu.toml", &good.replace("tdp_w = {", "tdp_watts = {"));
    let e = user_error(&["hw", "show", &p]);
    assert!(e.contains(&p) && e.contains("tdp_watts"), "{e}");
    let (_d, p) = file("gpu.toml", &good.replace("value = 132,", "value = 0,"));
    let e = user_error(&["predict", "--model", "gpt2", "--hw", &p]);
    assert!(
        e.contains(&format!(
            "{p}: compute_units.value: must be a positive number"
        )),
        "{e}"
    );
    let (_d, p) = file(
        "gpu.toml",
        &good
            .replace("memory_bandwidth_bytes_per_s = {", "# ")
            .replace("\n\n[peak", "\n[peak"),
    );
    let e = user_error(&["hw", "show", &p]);
    assert!(e.contains("memory_bandwidth_bytes_per_s"), "{e}");
    let e = user_error(&["hw", "show", "/nonexistent/gpu.toml"]);
    assert!(e.contains("/nonexistent/gpu.toml: cannot read"), "{e}");
}

#[test]
fn unknown_names_and_flags() {
    let e = user_error(&["predict", "--model", "llama-9", "--hw", "h100-sxm"]);
    assert!(
        e.contains("unknown model 'llama-9'") && e.contains("llama-3-8b"),
        "{e}"
    );
    let e = user_error(&["predict", "--model", "gpt2", "--hw", "b200"]);
    assert!(
        e.contains("unknown GPU 'b200'") && e.contains("h100-sxm"),
        "{e}"
    );
    let e = user_error(&[
        "predict", "--model", "gpt2", "--hw", "h100-sxm", "--dtype", "fp64",
    ]);
    assert!(e.contains("--dtype: unknown dtype 'fp64'"), "{e}");
    let e = user_error(&[
        "predict",
        "--model",
        "gpt2",
        "--hw",
        "h100-sxm",
        "--kv-dtype",
        "q4",
    ]);
    assert!(e.contains("--kv-dtype: unknown dtype 'q4'"), "{e}");
    let e = user_error(&[
        "predict",
        "--model",
        "gpt2",
        "--hw",
        "a100-sxm-80gb",
        "--dtype",
        "fp8",
    ]);
    assert!(
        e.contains("a100-sxm-80gb has no fp8-e4m3 matrix rate"),
        "{e}"
    );
    let e = user_error(&[
        "predict",
        "--model",
        "/nonexistent/config.json",
        "--hw",
        "h100-sxm",
    ]);
    assert!(e.contains("/nonexistent/config.json: cannot read"), "{e}");
}

#[test]
fn zero_and_negative_sizes_on_the_command_line() {
    for (flag, value) in [
        ("--batch", "0"),
        ("--seq", "-5"),
        ("--prompt", "0"),
        ("--gen", "-1"),
    ] {
        let e = user_error(&[
            "predict", "--model", "gpt2", "--hw", "h100-sxm", flag, value,
        ]);
        assert!(
            e.contains(&format!("{flag} must be positive, got {value}")),
            "{e}"
        );
    }
}

#[test]
fn no_panic_or_backtrace_even_with_backtraces_enabled() {
    let out = gpucost()
        .env("RUST_BACKTRACE", "1")
        .args(["predict", "--model", "gpt2", "--hw", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("backtrace") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// The table

/// What a case must do.
#[derive(Debug, Clone)]
enum Expect {
    /// Exit 2 and one stderr line containing every one of these (`{d}` is the case's folder).
    Refused(Vec<String>),
    /// `predict --format json` succeeds with finite, positive figures; stderr, if any, is one
    /// warning line containing this.
    Predict(Option<String>),
    /// `predict-op --format json` succeeds with finite, positive figures.
    PredictOp,
    /// Success; the file (relative to the case's folder) exists afterwards, when given.
    #[cfg_attr(not(feature = "measure"), allow(dead_code))]
    Ok(Option<String>),
}

#[derive(Debug, Clone)]
struct Case {
    name: String,
    /// Files written into the case's folder first.
    files: Vec<(String, Vec<u8>)>,
    /// Arguments; `{d}` is the case's folder.
    args: Vec<String>,
    /// Run in the case's folder (else in the repository root).
    in_folder: bool,
    expect: Expect,
}

fn refused(needles: &[&str]) -> Expect {
    Expect::Refused(needles.iter().map(|s| s.to_string()).collect())
}

fn case(name: &str, files: Vec<(&str, Vec<u8>)>, args: &[&str], expect: Expect) -> Case {
    Case {
        name: name.to_string(),
        files: files.into_iter().map(|(n, t)| (n.to_string(), t)).collect(),
        args: args.iter().map(|s| s.to_string()).collect(),
        in_folder: false,
        expect,
    }
}

fn text(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn read(rel: &str) -> String {
    fs::read_to_string(path(rel)).unwrap()
}

/// A JSON file with top-level keys set (Some) or removed (None).
fn json_edit(base: &Value, edits: &[(&str, Option<Value>)]) -> Vec<u8> {
    let mut v = base.clone();
    let obj = v.as_object_mut().unwrap();
    for (k, val) in edits {
        match val {
            Some(x) => {
                obj.insert(k.to_string(), x.clone());
            }
            None => {
                obj.remove(*k);
            }
        }
    }
    v.to_string().into_bytes()
}

/// A TOML text with `key = value` lines replaced (the key at the start of a line), or removed
/// (empty value), or added: at the end, into the last table (absent key, or "+key"), or at the
/// top level ("^key").
fn toml_edit(base: &str, edits: &[(&str, &str)]) -> Vec<u8> {
    let mut lines: Vec<String> = base.lines().map(str::to_string).collect();
    for (key, value) in edits {
        // "+key": appended at the end (into the last table).
        if let Some(key) = key.strip_prefix('+') {
            lines.push(format!("{key} = {value}"));
            continue;
        }
        if let Some(key) = key.strip_prefix('^') {
            let at = lines
                .iter()
                .position(|l| l.starts_with('['))
                .unwrap_or(lines.len());
            lines.insert(at, format!("{key} = {value}"));
            continue;
        }
        let prefix = format!("{key} = ");
        match lines.iter().position(|l| l.starts_with(&prefix)) {
            Some(i) if value.is_empty() => {
                lines.remove(i);
            }
            Some(i) => lines[i] = format!("{key} = {value}"),
            None => lines.push(format!("{key} = {value}")),
        }
    }
    (lines.join("\n") + "\n").into_bytes()
}

const P2_16: u64 = 1 << 16;
const P2_20: u64 = 1 << 20;
const P2_24: u64 = 1 << 24;
const P2_32: u64 = 1 << 32;

/// Hugging Face configs: each edit of a shipped config, refused naming the key.
fn hf_cases() -> Vec<Case> {
    let llama: Value = serde_json::from_str(&read("models/Llama-2-7b-hf.json")).unwrap();
    let gpt2: Value = serde_json::from_str(&read("models/gpt2.json")).unwrap();
    let mixtral: Value =
        serde_json::from_str(&read("models/Mixtral-8x7B-Instruct-v0.1.json")).unwrap();
    let mistral: Value =
        serde_json::from_str(&read("models/Mistral-7B-Instruct-v0.1.json")).unwrap();
    let qwen: Value = serde_json::from_str(&read("tests/fixtures/qwen2-0.5b.json")).unwrap();
    let gemma: Value = serde_json::from_str(&read("tests/fixtures/gemma-2-2b.json")).unwrap();
    let qwen_moe = json!({
        "model_type": "qwen2_moe", "hidden_size": 2048, "intermediate_size": 5632,
        "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632,
        "num_experts": 60, "num_experts_per_tok": 4, "num_hidden_layers": 24,
        "num_attention_heads": 16, "num_key_value_heads": 16, "vocab_size": 151936,
        "max_position_embeddings": 8192, "decoder_sparse_step": 1, "mlp_only_layers": []
    });
    let qwen3: Value = serde_json::from_str(&read("tests/fixtures/qwen3-0.6b.json")).unwrap();
    let qwen3_moe: Value =
        serde_json::from_str(&read("tests/fixtures/qwen3-30b-a3b.json")).unwrap();
    let gemma3_text: Value = serde_json::from_str(&read("tests/fixtures/gemma-3-1b.json")).unwrap();
    let gemma3: Value = serde_json::from_str(&read("tests/fixtures/gemma-3-4b.json")).unwrap();
    let gpt_oss: Value = serde_json::from_str(&read("tests/fixtures/gpt-oss-20b.json")).unwrap();
    let deepseek: Value = serde_json::from_str(&read("tests/fixtures/deepseek-v3.json")).unwrap();
    let qwen3_next: Value =
        serde_json::from_str(&read("tests/fixtures/qwen3-coder-next.json")).unwrap();
    let nemotron_h: Value =
        serde_json::from_str(&read("tests/fixtures/nemotron-nano-9b-v2.json")).unwrap();
    let nemotron_moe: Value =
        serde_json::from_str(&read("tests/fixtures/nemotron-3-nano-30b-a3b.json")).unwrap();
    let bases = [
        ("qwen3", &qwen3),
        ("qwen3_moe", &qwen3_moe),
        ("gemma3_text", &gemma3_text),
        ("gemma3", &gemma3),
        ("gpt_oss", &gpt_oss),
        ("deepseek_v3", &deepseek),
        ("qwen3_next", &qwen3_next),
        ("nemotron_h", &nemotron_h),
        ("nemotron_moe", &nemotron_moe),
        ("llama", &llama),
        ("gpt2", &gpt2),
        ("mixtral", &mixtral),
        ("mistral", &mistral),
        ("qwen2", &qwen),
        ("gemma2", &gemma),
        ("qwen2_moe", &qwen_moe),
    ];
    let base = |name: &str| bases.iter().find(|(n, _)| *n == name).unwrap().1;
    type Edit = (&'static str, Option<Value>);
    let n = |v: u64| Some(json!(v));
    #[rustfmt::skip]
    let refusals: Vec<(&str, Vec<Edit>, &str, &str)> = vec![
        // (base, edits, field named, message part)
        ("llama", vec![("hidden_size", n(0))], "hidden_size", "must be positive"),
        ("llama", vec![("hidden_size", Some(json!(-4096)))], "hidden_size", "non-negative integer"),
        ("llama", vec![("hidden_size", n(1 << 31)), ("num_attention_heads", n(P2_24)), ("num_key_value_heads", n(P2_24))], "hidden_size", "exceeds the limit of 2^20"),
        ("llama", vec![("hidden_size", n(1 << 32)), ("vocab_size", n(1 << 40))], "vocab_size", "exceeds the limit of 2^24"),
        ("llama", vec![("hidden_size", Some(json!("4096")))], "hidden_size", "non-negative integer"),
        ("llama", vec![("hidden_size", Some(json!(4096.5)))], "hidden_size", "non-negative integer"),
        ("llama", vec![("hidden_size", Some(json!(1e40)))], "hidden_size", "non-negative integer"),
        ("llama", vec![("hidden_size", Some(json!(true)))], "hidden_size", "non-negative integer"),
        ("llama", vec![("hidden_size", Some(json!([4096])))], "hidden_size", "non-negative integer"),
        ("llama", vec![("hidden_size", Some(Value::Null))], "hidden_size", "missing"),
        ("llama", vec![("hidden_size", n(u64::MAX))], "hidden_size", "exceeds the limit"),
        ("llama", vec![("num_hidden_layers", n(1_000_000_000_000))], "num_hidden_layers", "exceeds the limit of 2^16"),
        ("llama", vec![("num_hidden_layers", n(P2_16 + 1))], "num_hidden_layers", "exceeds the limit of 2^16"),
        ("llama", vec![("num_hidden_layers", Some(json!(-3)))], "num_hidden_layers", "non-negative integer"),
        ("llama", vec![("num_hidden_layers", None)], "num_hidden_layers", "missing"),
        ("llama", vec![("num_attention_heads", n(3))], "num_attention_heads", "do not divide hidden_size"),
        ("llama", vec![("num_attention_heads", n(P2_24)), ("num_key_value_heads", n(P2_24)), ("head_dim", n(1))], "num_attention_heads", "exceeds the limit of 2^16"),
        ("llama", vec![("num_attention_heads", n(8192)), ("num_key_value_heads", n(8192))], "num_attention_heads", "do not divide hidden_size"),
        ("llama", vec![("num_attention_heads", None)], "num_attention_heads", "missing"),
        ("llama", vec![("num_key_value_heads", n(0))], "num_key_value_heads", "must be positive"),
        ("llama", vec![("num_key_value_heads", n(64))], "num_key_value_heads", "do not divide 32"),
        ("llama", vec![("num_key_value_heads", n(P2_16 * 2))], "num_key_value_heads", "exceeds the limit"),
        ("llama", vec![("head_dim", n(0))], "head_dim", "must be positive"),
        ("llama", vec![("head_dim", n(P2_16 * 2))], "head_dim", "exceeds the limit of 2^16"),
        ("llama", vec![("head_dim", n(P2_16)), ("num_attention_heads", n(512)), ("num_key_value_heads", n(512))], "head_dim", "exceeds the limit of 2^24"),
        ("llama", vec![("intermediate_size", n(0))], "intermediate_size", "must be positive"),
        ("llama", vec![("intermediate_size", n(P2_20 + 1))], "intermediate_size", "exceeds the limit of 2^20"),
        ("llama", vec![("vocab_size", n(0))], "vocab_size", "must be positive"),
        ("llama", vec![("vocab_size", n(P2_24 + 1))], "vocab_size", "exceeds the limit of 2^24"),
        ("llama", vec![("vocab_size", None)], "vocab_size", "missing"),
        ("llama", vec![("max_position_embeddings", n(0))], "max_position_embeddings", "must be positive"),
        ("llama", vec![("max_position_embeddings", n(P2_32 + 1))], "max_position_embeddings", "exceeds the limit of 2^32"),
        ("llama", vec![("max_position_embeddings", None)], "max_position_embeddings", "missing"),
        ("llama", vec![("model_type", None)], "model_type", "missing"),
        ("llama", vec![("model_type", Some(json!(5)))], "model_type", "expected a string"),
        ("llama", vec![("model_type", Some(json!("mamba")))], "model_type", "unsupported model_type 'mamba'"),
        ("llama", vec![("hidden_act", Some(json!("tanh")))], "hidden_act", "unsupported activation 'tanh'"),
        ("llama", vec![("hidden_act", Some(json!(3)))], "hidden_act", "expected a string"),
        ("llama", vec![("tie_word_embeddings", Some(json!("yes")))], "tie_word_embeddings", "expected true or false"),
        ("llama", vec![("attention_bias", Some(json!(1)))], "attention_bias", "expected true or false"),
        ("llama", vec![("mlp_bias", Some(json!("no")))], "mlp_bias", "expected true or false"),
        ("llama", vec![("_name_or_path", Some(json!(7)))], "_name_or_path", "expected a string"),
        // Every size at its limit at once: more parameters than 2^50.
        ("llama", vec![("hidden_size", n(P2_20)), ("num_hidden_layers", n(P2_16)), ("num_attention_heads", n(16)), ("num_key_value_heads", n(16)), ("intermediate_size", n(P2_20))], "(parameters)", "exceeds the limit of 2^50"),
        ("gpt2", vec![("n_embd", n(0))], "n_embd", "must be positive"),
        ("gpt2", vec![("n_embd", Some(json!(-768)))], "n_embd", "non-negative integer"),
        ("gpt2", vec![("n_embd", n(1 << 21)), ("n_head", n(1 << 10))], "n_embd", "exceeds the limit of 2^20"),
        ("gpt2", vec![("n_head", n(0))], "n_head", "must be positive"),
        ("gpt2", vec![("n_head", n(5))], "n_head", "5 heads do not divide n_embd 768"),
        ("gpt2", vec![("n_head", n(1024))], "n_head", "do not divide n_embd"),
        ("gpt2", vec![("n_layer", n(P2_16 * 2))], "n_layer", "exceeds the limit of 2^16"),
        ("gpt2", vec![("n_layer", n(0))], "n_layer", "must be positive"),
        ("gpt2", vec![("n_positions", n(0))], "n_positions", "must be positive"),
        ("gpt2", vec![("n_positions", n(1 << 40))], "n_positions", "exceeds the limit of 2^32"),
        ("gpt2", vec![("n_inner", n(P2_20 * 2))], "n_inner", "exceeds the limit of 2^20"),
        ("gpt2", vec![("n_inner", n(0))], "n_inner", "must be positive"),
        ("gpt2", vec![("activation_function", Some(json!("swish2")))], "activation_function", "unsupported activation"),
        ("gpt2", vec![("vocab_size", n(P2_24 * 2))], "vocab_size", "exceeds the limit of 2^24"),
        ("gpt2", vec![("n_embd", None)], "n_embd", "missing"),
        ("mixtral", vec![("num_local_experts", n(0))], "num_local_experts", "must be positive"),
        ("mixtral", vec![("num_local_experts", n(P2_16 * 2))], "num_local_experts", "exceeds the limit of 2^16"),
        ("mixtral", vec![("num_local_experts", None)], "num_local_experts", "missing"),
        ("mixtral", vec![("num_experts_per_tok", n(9))], "num_experts_per_tok", "routes each token to 9 experts but there are only 8"),
        ("mixtral", vec![("num_experts_per_tok", n(512)), ("num_local_experts", n(1024))], "num_experts_per_tok", "exceeds the limit of 256"),
        ("mixtral", vec![("num_experts_per_tok", n(0))], "num_experts_per_tok", "must be positive"),
        ("mixtral", vec![("intermediate_size", n(P2_20 * 4))], "intermediate_size", "exceeds the limit of 2^20"),
        ("mistral", vec![("sliding_window", n(0))], "sliding_window", "must be positive"),
        ("mistral", vec![("sliding_window", n(P2_32 * 2))], "sliding_window", "exceeds the limit of 2^32"),
        ("mistral", vec![("sliding_window", Some(json!("4096")))], "sliding_window", "non-negative integer"),
        ("qwen2", vec![("use_sliding_window", Some(json!(true))), ("sliding_window", None)], "sliding_window", "missing while use_sliding_window is true"),
        ("qwen2", vec![("use_sliding_window", Some(json!(true))), ("max_window_layers", n(1 << 40))], "max_window_layers", "exceeds the limit of 2^16"),
        ("qwen2", vec![("use_sliding_window", Some(json!("true")))], "use_sliding_window", "expected true or false"),
        ("qwen2", vec![("num_key_value_heads", n(3))], "num_key_value_heads", "do not divide 14"),
        ("qwen2_moe", vec![("decoder_sparse_step", n(2))], "decoder_sparse_step", "only 1"),
        ("qwen2_moe", vec![("mlp_only_layers", Some(json!([1, 3])))], "mlp_only_layers", "not supported"),
        ("qwen2_moe", vec![("shared_expert_intermediate_size", n(P2_20 * 2))], "shared_expert_intermediate_size", "exceeds the limit of 2^20"),
        ("qwen2_moe", vec![("num_experts", n(0))], "num_experts", "must be positive"),
        ("qwen2_moe", vec![("moe_intermediate_size", n(P2_20 * 2))], "moe_intermediate_size", "exceeds the limit of 2^20"),
        ("qwen2_moe", vec![("moe_intermediate_size", None)], "moe_intermediate_size", "missing"),
        ("gemma2", vec![("hidden_activation", Some(json!("tanh")))], "hidden_activation", "unsupported activation"),
        ("gemma2", vec![("head_dim", n(0))], "head_dim", "must be positive"),
        ("gemma2", vec![("sliding_window", n(0))], "sliding_window", "must be positive"),
        ("qwen3", vec![("head_dim", n(0))], "head_dim", "must be positive"),
        ("qwen3", vec![("num_key_value_heads", n(3))], "num_key_value_heads", "do not divide 16"),
        ("qwen3", vec![("use_sliding_window", Some(json!(true)))], "sliding_window", "missing while use_sliding_window is true"),
        ("qwen3_moe", vec![("decoder_sparse_step", n(2))], "decoder_sparse_step", "only 1"),
        ("qwen3_moe", vec![("mlp_only_layers", Some(json!([0])))], "mlp_only_layers", "not supported"),
        ("qwen3_moe", vec![("num_experts", None)], "num_experts", "missing"),
        ("qwen3_moe", vec![("num_experts_per_tok", n(129))], "num_experts_per_tok", "routes each token to 129 experts but there are only 128"),
        ("qwen3_moe", vec![("moe_intermediate_size", n(0))], "moe_intermediate_size", "must be positive"),
        ("gemma3_text", vec![("sliding_window_pattern", n(0))], "sliding_window_pattern", "must be 1 to 64"),
        ("gemma3_text", vec![("sliding_window_pattern", n(65))], "sliding_window_pattern", "must be 1 to 64"),
        ("gemma3_text", vec![("sliding_window_pattern", Some(json!("6")))], "sliding_window_pattern", "non-negative integer"),
        ("gemma3_text", vec![("sliding_window", n(0))], "sliding_window", "must be positive"),
        ("gemma3_text", vec![("layer_types", Some(json!(["sliding_attention", "full_attention"])))], "layer_types", "lists 2 layers but num_hidden_layers is 26"),
        ("gemma3_text", vec![("layer_types", Some(json!("sliding_attention")))], "layer_types", "expected a list of layer types"),
        ("gemma3_text", vec![("num_hidden_layers", n(2)), ("layer_types", Some(json!(["sliding_attention", "chunked_attention"])))], "layer_types", "unsupported layer type \"chunked_attention\""),
        ("gemma3_text", vec![("hidden_activation", Some(json!("tanh")))], "hidden_activation", "unsupported activation"),
        ("gemma3", vec![("text_config", None)], "text_config", "missing"),
        ("gemma3", vec![("text_config", Some(json!(5)))], "text_config", "expected a JSON object"),
        ("gemma3", vec![("text_config", Some(json!({"intermediate_size": 10240, "num_hidden_layers": 34})))], "text_config.hidden_size", "missing"),
        ("gemma3", vec![("text_config", Some(json!({"hidden_size": 2560, "intermediate_size": 10240, "num_hidden_layers": 34, "num_key_value_heads": 3})))], "text_config.num_key_value_heads", "do not divide 8"),
        ("gemma3", vec![("text_config", Some(json!({"hidden_size": 2560, "intermediate_size": 10240, "num_hidden_layers": 34, "sliding_window": 0})))], "text_config.sliding_window", "must be positive"),
        ("gpt_oss", vec![("num_local_experts", None)], "num_local_experts", "missing"),
        ("gpt_oss", vec![("num_local_experts", n(0))], "num_local_experts", "must be positive"),
        ("gpt_oss", vec![("num_experts_per_tok", n(64))], "num_experts_per_tok", "routes each token to 64 experts but there are only 32"),
        ("gpt_oss", vec![("sliding_window", None)], "sliding_window", "missing"),
        ("gpt_oss", vec![("head_dim", None)], "head_dim", "missing"),
        ("gpt_oss", vec![("attention_bias", Some(json!("yes")))], "attention_bias", "expected true or false"),
        ("gpt_oss", vec![("intermediate_size", n(P2_20 * 2))], "intermediate_size", "exceeds the limit of 2^20"),
        ("gpt_oss", vec![("layer_types", Some(json!(["sliding_attention", "full_attention", "sliding_attention"])))], "layer_types", "lists 3 layers but num_hidden_layers is 24"),
        ("deepseek_v3", vec![("kv_lora_rank", None)], "kv_lora_rank", "missing"),
        ("deepseek_v3", vec![("kv_lora_rank", n(0))], "kv_lora_rank", "must be positive"),
        ("deepseek_v3", vec![("kv_lora_rank", n(P2_20 * 2))], "kv_lora_rank", "exceeds the limit of 2^20"),
        ("deepseek_v3", vec![("qk_rope_head_dim", n(0))], "qk_rope_head_dim", "must be positive"),
        ("deepseek_v3", vec![("qk_nope_head_dim", None)], "qk_nope_head_dim", "missing"),
        ("deepseek_v3", vec![("v_head_dim", n(0))], "v_head_dim", "must be positive"),
        ("deepseek_v3", vec![("q_lora_rank", Some(json!("1536")))], "q_lora_rank", "non-negative integer"),
        ("deepseek_v3", vec![("n_routed_experts", n(0))], "n_routed_experts", "must be positive"),
        ("deepseek_v3", vec![("n_routed_experts", None)], "n_routed_experts", "missing"),
        ("deepseek_v3", vec![("num_experts_per_tok", n(300))], "num_experts_per_tok", "exceeds the limit of 256"),
        ("deepseek_v3", vec![("n_shared_experts", n(1 << 9))], "n_shared_experts", "exceeds the limit of 256"),
        ("deepseek_v3", vec![("first_k_dense_replace", n(62))], "first_k_dense_replace", "exceeds the 61 layers"),
        ("deepseek_v3", vec![("moe_layer_freq", n(2))], "moe_layer_freq", "only 1"),
        ("deepseek_v3", vec![("moe_intermediate_size", None)], "moe_intermediate_size", "missing"),
        ("deepseek_v3", vec![("num_nextn_predict_layers", n(P2_16 * 2))], "num_nextn_predict_layers", "exceeds the limit of 2^16"),
        ("qwen3_next", vec![("linear_num_value_heads", n(0))], "linear_num_value_heads", "must be positive"),
        ("qwen3_next", vec![("linear_num_key_heads", n(3))], "linear_num_key_heads", "3 key heads do not divide 32 value heads"),
        ("qwen3_next", vec![("linear_key_head_dim", None)], "linear_key_head_dim", "missing"),
        ("qwen3_next", vec![("linear_value_head_dim", n(P2_16 * 2))], "linear_value_head_dim", "exceeds the limit of 2^16"),
        ("qwen3_next", vec![("linear_conv_kernel_dim", n(65))], "linear_conv_kernel_dim", "exceeds the limit of 64"),
        ("qwen3_next", vec![("linear_conv_kernel_dim", Some(json!(4.5)))], "linear_conv_kernel_dim", "non-negative integer"),
        ("qwen3_next", vec![("full_attention_interval", n(0))], "full_attention_interval", "must be 1 to 64"),
        ("qwen3_next", vec![("full_attention_interval", None)], "full_attention_interval", "missing"),
        ("qwen3_next", vec![("num_hidden_layers", n(2)), ("layer_types", Some(json!(["linear_attention", "sliding_attention"])))], "layer_types", "unsupported layer type \"sliding_attention\" (supported: linear_attention, full_attention)"),
        ("qwen3_next", vec![("num_experts_per_tok", n(513))], "num_experts_per_tok", "exceeds the limit of 256"),
        ("qwen3_next", vec![("shared_expert_intermediate_size", n(P2_20 * 2))], "shared_expert_intermediate_size", "exceeds the limit of 2^20"),
        ("nemotron_h", vec![("mamba_num_heads", n(0))], "mamba_num_heads", "must be positive"),
        ("nemotron_h", vec![("mamba_num_heads", None)], "mamba_num_heads", "missing"),
        ("nemotron_h", vec![("mamba_num_heads", n(P2_16 * 2))], "mamba_num_heads", "exceeds the limit of 2^16"),
        ("nemotron_h", vec![("mamba_head_dim", n(0))], "mamba_head_dim", "must be positive"),
        ("nemotron_h", vec![("mamba_head_dim", n(P2_16 * 2))], "mamba_head_dim", "exceeds the limit of 2^16"),
        ("nemotron_h", vec![("mamba_num_heads", n(P2_16)), ("mamba_head_dim", n(P2_16)), ("n_groups", n(1))], "mamba_head_dim", "a width of 4294967296 exceeds the limit of 2^24"),
        ("nemotron_h", vec![("ssm_state_size", None)], "ssm_state_size", "missing"),
        ("nemotron_h", vec![("ssm_state_size", n(0))], "ssm_state_size", "must be positive"),
        ("nemotron_h", vec![("ssm_state_size", Some(json!(-128)))], "ssm_state_size", "non-negative integer"),
        ("nemotron_h", vec![("n_groups", n(3))], "n_groups", "3 groups do not divide 128 heads"),
        ("nemotron_h", vec![("n_groups", n(0))], "n_groups", "must be positive"),
        ("nemotron_h", vec![("n_groups", n(P2_16)), ("ssm_state_size", n(P2_16))], "ssm_state_size", "a width of 4294967296 exceeds the limit of 2^24"),
        ("nemotron_h", vec![("conv_kernel", n(0))], "conv_kernel", "must be positive"),
        ("nemotron_h", vec![("conv_kernel", n(65))], "conv_kernel", "exceeds the limit of 64"),
        ("nemotron_h", vec![("use_conv_bias", Some(json!("yes")))], "use_conv_bias", "expected true or false"),
        ("nemotron_h", vec![("use_bias", Some(json!(1)))], "use_bias", "expected true or false"),
        ("nemotron_h", vec![("mlp_hidden_act", Some(json!("tanh")))], "mlp_hidden_act", "unsupported activation 'tanh'"),
        ("nemotron_h", vec![("hybrid_override_pattern", None)], "hybrid_override_pattern", "missing"),
        ("nemotron_h", vec![("hybrid_override_pattern", Some(json!(["M", "-"])))], "hybrid_override_pattern", "expected a string"),
        ("nemotron_h", vec![("num_hidden_layers", n(55))], "hybrid_override_pattern", "has 56 layers but num_hidden_layers is 55"),
        ("nemotron_h", vec![("num_hidden_layers", n(3)), ("hybrid_override_pattern", Some(json!("ME*")))], "n_routed_experts", "missing"),
        ("nemotron_h", vec![("num_hidden_layers", n(3)), ("hybrid_override_pattern", Some(json!("M-L")))], "hybrid_override_pattern", "unknown layer 'L' (expected M for Mamba-2, * for attention, - for MLP, E for MoE)"),
        ("nemotron_h", vec![("num_nextn_predict_layers", n(1))], "num_nextn_predict_layers", "multi-token-prediction layers are not supported"),
        ("nemotron_moe", vec![("n_routed_experts", n(0))], "n_routed_experts", "must be positive"),
        ("nemotron_moe", vec![("n_routed_experts", None)], "n_routed_experts", "missing"),
        ("nemotron_moe", vec![("num_experts_per_tok", n(129))], "num_experts_per_tok", "routes each token to 129 experts but there are only 128"),
        ("nemotron_moe", vec![("moe_intermediate_size", n(0))], "moe_intermediate_size", "must be positive"),
        ("nemotron_moe", vec![("n_shared_experts", n(1 << 9))], "n_shared_experts", "exceeds the limit of 256"),
        ("nemotron_moe", vec![("moe_shared_expert_intermediate_size", None)], "moe_shared_expert_intermediate_size", "missing"),
        ("nemotron_moe", vec![("moe_shared_expert_intermediate_size", n(P2_20 * 2))], "moe_shared_expert_intermediate_size", "exceeds the limit of 2^20"),
        ("nemotron_moe", vec![("moe_latent_size", n(1024))], "moe_latent_size", "latent experts are not supported"),
        ("nemotron_h", vec![("num_hidden_layers", n(0)), ("hybrid_override_pattern", Some(json!("")))], "num_hidden_layers", "must be positive"),
        ("nemotron_h", vec![("num_attention_heads", n(0))], "num_attention_heads", "must be positive"),
        ("nemotron_h", vec![("num_key_value_heads", n(3))], "num_key_value_heads", "3 key/value heads do not divide 40 query heads"),
        ("nemotron_h", vec![("head_dim", None), ("num_attention_heads", n(48))], "num_attention_heads", "48 heads do not divide hidden_size 4480"),
        ("nemotron_h", vec![("max_position_embeddings", None)], "max_position_embeddings", "missing"),
    ];
    let mut cases = Vec::new();
    for (i, (b, edits, field, message)) in refusals.into_iter().enumerate() {
        cases.push(case(
            &format!("hf {i}: {b} {field}"),
            vec![("c.json", json_edit(base(b), &edits))],
            &["predict", "--model", "{d}/c.json", "--hw", "h100-sxm"],
            refused(&[&format!("{{d}}/c.json: {field}: "), message]),
        ));
    }
    // Not a config at all.
    #[rustfmt::skip]
    let not_configs: [(&str, Vec<u8>, &str); 11] = [
        ("empty", vec![], "invalid JSON"),
        ("truncated", text("{\"model_type\": \"llama\", "), "invalid JSON"),
        ("array", text("[1, 2, 3]"), "(top level): expected a JSON object"),
        ("string", text("\"llama\""), "(top level): expected a JSON object"),
        ("number", text("42"), "(top level): expected a JSON object"),
        ("NaN literal", text("{\"model_type\": \"llama\", \"hidden_size\": NaN}"), "invalid JSON"),
        ("trailing garbage", text("{\"model_type\": \"llama\"} x"), "invalid JSON"),
        ("deep nesting", text(&("[".repeat(100_000) + &"]".repeat(100_000))), "invalid JSON"),
        ("binary", vec![0xff, 0xfe, 0x00, 0x7b, 0x00, 0x7d], "not UTF-8"),
        ("UTF-16", "{\"model_type\": \"gpt2\"}" .encode_utf16() .flat_map(|u| u.to_le_bytes()) .collect(), "invalid JSON"),
        ("huge number", text("{\"model_type\": \"gpt2\", \"n_embd\": 1e999}"), "invalid JSON"),
    ];
    for (name, bytes, message) in not_configs {
        cases.push(case(
            &format!("hf: {name}"),
            vec![("c.json", bytes)],
            &["predict", "--model", "{d}/c.json", "--hw", "h100-sxm"],
            refused(&["{d}/c.json: ", message]),
        ));
    }
    // A folder, and a file that does not exist.
    cases.push(case(
        "hf: a folder",
        vec![("sub/x", vec![])],
        &["predict", "--model", "{d}/sub/", "--hw", "h100-sxm"],
        refused(&["{d}/sub/: is a folder"]),
    ));
    cases.push(case(
        "hf: missing file",
        vec![],
        &["predict", "--model", "{d}/none.json", "--hw", "h100-sxm"],
        refused(&["{d}/none.json: cannot read"]),
    ));
    // Inputs that predict: a byte-order mark, and every size at its limit (finite answers).
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend(read("models/Llama-2-7b-hf.json").as_bytes());
    cases.push(case(
        "hf: UTF-8 BOM",
        vec![("c.json", bom)],
        &["predict", "--model", "{d}/c.json", "--hw", "h100-sxm"],
        Expect::Predict(None),
    ));
    let limits_llama = json_edit(
        &llama,
        &[
            ("hidden_size", n(P2_20)),
            ("num_attention_heads", n(16)),
            ("num_key_value_heads", n(16)),
            ("head_dim", n(P2_16)),
            ("num_hidden_layers", n(1)),
            ("intermediate_size", n(P2_20)),
            ("vocab_size", n(P2_24)),
            ("max_position_embeddings", n(P2_32)),
        ],
    );
    let at_limits = [
        "--seq",
        "4294967296",
        "--prompt",
        "4294967040",
        "--gen",
        "256",
    ];
    for hw in ["h100-sxm", "lavapipe"] {
        let mut args = vec!["predict", "--model", "{d}/c.json", "--hw", hw];
        args.extend(at_limits);
        args.extend(["--dtype", "fp32"]);
        cases.push(case(
            &format!("hf: llama at every size limit on {hw}"),
            vec![("c.json", limits_llama.clone())],
            &args,
            Expect::Predict(None),
        ));
    }
    let limits_moe = json_edit(
        &mixtral,
        &[
            ("hidden_size", n(1024)),
            ("num_attention_heads", n(8)),
            ("num_key_value_heads", n(8)),
            ("num_hidden_layers", n(4)),
            ("intermediate_size", n(1024)),
            ("num_local_experts", n(P2_16)),
            ("num_experts_per_tok", n(256)),
            ("max_position_embeddings", n(P2_32)),
        ],
    );
    let mut args = vec!["predict", "--model", "{d}/c.json", "--hw", "h100-sxm"];
    args.extend(at_limits);
    cases.push(case(
        "hf: MoE with 2^16 experts, top-256, 2^32 tokens",
        vec![("c.json", limits_moe)],
        &args,
        Expect::Predict(None),
    ));
    cases.push(case(
        "hf: 2^16 layers",
        vec![(
            "c.json",
            json_edit(
                &gpt2,
                &[("n_layer", n(P2_16)), ("n_embd", n(64)), ("n_head", n(4))],
            ),
        )],
        &["predict", "--model", "{d}/c.json", "--hw", "h100-sxm"],
        Expect::Predict(Some("max_position_embeddings".into())),
    ));
    for name in [
        "qwen2",
        "gemma2",
        "qwen2_moe",
        "qwen3",
        "qwen3_moe",
        "gemma3_text",
        "gemma3",
        "gpt_oss",
        "deepseek_v3",
        "qwen3_next",
        "nemotron_h",
        "nemotron_moe",
    ] {
        cases.push(case(
            &format!("hf: {name} predicts"),
            vec![("c.json", json_edit(base(name), &[]))],
            &[
                "predict",
                "--model",
                "{d}/c.json",
                "--hw",
                "h100-sxm",
                "--seq",
                "2048",
            ],
            Expect::Predict(None),
        ));
    }
    cases
}

/// Native TOML models: edits of examples/paper-model.toml.
fn native_cases() -> Vec<Case> {
    let good = read("examples/paper-model.toml");
    // (edits, field named, message part)
    type Row<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
    #[rustfmt::skip]
    let edits: Vec<Row> = vec![
        (vec![("hidden_size", "-1")], "hidden_size", ""),
        (vec![("hidden_size", "2097152")], "hidden_size", "exceeds the limit of 2^20"),
        (vec![("hidden_size", "\"big\"")], "hidden_size", ""),
        (vec![("hidden_size", "1.5")], "hidden_size", ""),
        (vec![("hidden_size", "9223372036854775808")], "hidden_size", "exceeds the limit of 2^20"),
        (vec![("hidden_size", "")], "(top level)", "hidden_size"),
        (vec![("hidden_size", "0")], "hidden_size", "must be positive"),
        (vec![("num_layers", "131072")], "num_layers", "exceeds the limit of 2^16"),
        (vec![("num_layers", "0")], "num_layers", "must be positive"),
        (vec![("num_heads", "0")], "num_heads", "must be positive"),
        (vec![("num_heads", "3"), ("head_dim", "")], "num_heads", "do not divide hidden_size"),
        (vec![("num_heads", "131072"), ("num_kv_heads", "131072")], "num_heads", "exceeds the limit of 2^16"),
        (vec![("num_kv_heads", "5")], "num_kv_heads", "do not divide 16"),
        (vec![("num_kv_heads", "0")], "num_kv_heads", "must be positive"),
        (vec![("head_dim", "0")], "head_dim", "must be positive"),
        (vec![("head_dim", "131072")], "head_dim", "exceeds the limit of 2^16"),
        (vec![("head_dim", "65536"), ("num_heads", "512")], "head_dim", "exceeds the limit of 2^24"),
        (vec![("intermediate_size", "0")], "intermediate_size", "must be positive"),
        (vec![("intermediate_size", "2097152")], "intermediate_size", "exceeds the limit of 2^20"),
        (vec![("vocab_size", "33554432")], "vocab_size", "exceeds the limit of 2^24"),
        (vec![("vocab_size", "0")], "vocab_size", "must be positive"),
        (vec![("max_position_embeddings", "0")], "max_position_embeddings", "must be positive"),
        (vec![("max_position_embeddings", "8589934592")], "max_position_embeddings", "exceeds the limit of 2^32"),
        (vec![("mlp", "\"swishglu\"")], "mlp", "unknown MLP 'swishglu'"),
        (vec![("norm", "\"batchnorm\"")], "norm", ""),
        (vec![("positions", "\"alibi\"")], "positions", ""),
        (vec![("^norms_per_layer", "0")], "norms_per_layer", "must be positive"),
        (vec![("^norms_per_layer", "9")], "norms_per_layer", "exceeds the limit of 8"),
        (vec![("sliding_window", "0")], "sliding_window", "must be positive"),
        (vec![("sliding_window", "8589934592")], "sliding_window", "exceeds the limit of 2^32"),
        (vec![("name", "5")], "name", ""),
        (vec![("name", "")], "(top level)", "name"),
        (vec![("^colour", "\"red\"")], "colour", "unknown field"),
        (vec![("tie_embeddings", "\"yes\"")], "tie_embeddings", ""),
        (vec![("num_experts", "0")], "moe.num_experts", "must be positive"),
        (vec![("num_experts", "131072")], "moe.num_experts", "exceeds the limit of 2^16"),
        (vec![("top_k", "17")], "moe.top_k", "routes each token to 17 experts but there are only 16"),
        (vec![("top_k", "0")], "moe.top_k", "must be positive"),
        (vec![("top_k", "512"), ("num_experts", "1024")], "moe.top_k", "exceeds the limit of 256"),
        (vec![("expert_intermediate_size", "0")], "moe.expert_intermediate_size", "must be positive"),
        (vec![("shared_experts", "512")], "moe.shared_experts", "exceeds the limit of 256"),
        (vec![("shared_experts", "256"), ("shared_intermediate_size", "8192")], "moe.shared_intermediate_size", "exceeds the limit of 2^20"),
        (vec![("shared_intermediate_size", "2097152")], "moe.shared_intermediate_size", "exceeds the limit of 2^20"),
        (vec![("shared_intermediate_size", "0")], "moe.shared_intermediate_size", "must be positive when there are shared experts"),
        (vec![("first_dense_layers", "25")], "moe.first_dense_layers", "exceeds the 24 layers"),
        (vec![("+router", "\"topk\"")], "moe", "router"),
    ];
    let mut cases = Vec::new();
    for (i, (edit, field, message)) in edits.into_iter().enumerate() {
        let needle = if field.is_empty() {
            "{d}/m.toml: ".to_string()
        } else {
            format!("{{d}}/m.toml: {field}")
        };
        cases.push(case(
            &format!("toml {i}: {field} {message}"),
            vec![("m.toml", toml_edit(&good, &edit))],
            &["predict", "--model", "{d}/m.toml", "--hw", "h100-sxm"],
            refused(&[&needle, message]),
        ));
    }
    let latent = read("examples/paper-mla.toml");
    let long_pattern = format!("\"{}\"", "L".repeat(65));
    #[rustfmt::skip]
    let latent_edits: Vec<Row> = vec![
        (vec![("kv_lora_rank", "0")], "kv_lora_rank", "must be positive"),
        (vec![("v_head_dim", "0")], "v_head_dim", "must be positive"),
        (vec![("qk_rope_head_dim", "131072")], "qk_rope_head_dim", "exceeds the limit of 2^16"),
        (vec![("^head_dim", "64")], "head_dim", "MLA's query/key width"),
        (vec![("^num_kv_heads", "4")], "num_kv_heads", "must equal num_heads with MLA"),
        (vec![("^qk_norm", "true")], "qk_norm", "not to MLA's latents"),
        (vec![("layer_pattern", "\"LLX\"")], "layer_pattern", "unknown layer 'X'"),
        (vec![("layer_pattern", "\"\"")], "layer_pattern", "has 0 layers"),
        (vec![("layer_pattern", &long_pattern)], "layer_pattern", "has 65 layers"),
        (vec![("sliding_window", "")], "sliding_window", "missing while layer_pattern has local (L) layers"),
        (vec![("mtp_layers", "131072")], "mtp_layers", "exceeds the limit of 2^16"),
        (vec![("router_bias", "1")], "moe", "router_bias"),
    ];
    for (i, (edit, field, message)) in latent_edits.into_iter().enumerate() {
        cases.push(case(
            &format!("toml mla {i}: {field} {message}"),
            vec![("m.toml", toml_edit(&latent, &edit))],
            &["predict", "--model", "{d}/m.toml", "--hw", "h100-sxm"],
            refused(&[&format!("{{d}}/m.toml: {field}"), message]),
        ));
    }
    let hybrid = read("examples/paper-hybrid.toml");
    let ssm = read("examples/paper-ssm.toml");
    let long_ssm_pattern = format!("\"{}\"", "M-".repeat(32) + "M");
    let explicit_ssm_pattern = format!("\"{}\"", "M-".repeat(34) + "*L");
    #[rustfmt::skip]
    let hybrid_edits: Vec<(&str, Row)> = vec![
        (hybrid.as_str(), (vec![("value_heads", "3")], "linear_attention.key_heads", "8 key heads do not divide 3 value heads")),
        (hybrid.as_str(), (vec![("conv_kernel", "0")], "linear_attention.conv_kernel", "must be positive")),
        (hybrid.as_str(), (vec![("conv_kernel", "100")], "linear_attention.conv_kernel", "exceeds the limit of 64")),
        (hybrid.as_str(), (vec![("key_head_dim", "131072")], "linear_attention.key_head_dim", "exceeds the limit of 2^16")),
        (hybrid.as_str(), (vec![("layer_pattern", "\"LLG\"")], "layer_pattern", "must mark the linear-attention layers (S)")),
        (hybrid.as_str(), (vec![("layer_pattern", "\"SSX\"")], "layer_pattern", "unknown layer 'X'")),
        (hybrid.as_str(), (vec![("layer_pattern", "\"SSM\"")], "mamba", "missing while layer_pattern has Mamba-2 (M) layers")),
        (hybrid.as_str(), (vec![("conv_kernel", "4\ngate = true")], "linear_attention.gate", "unknown field")),
        (good.as_str(), (vec![("^layer_pattern", "\"SG\"")], "linear_attention", "missing while layer_pattern has linear-attention (S) layers")),
        (good.as_str(), (vec![("^layer_pattern", "\"M-\"")], "mamba", "missing while layer_pattern has Mamba-2 (M) layers")),
        (ssm.as_str(), (vec![("heads", "0")], "mamba.heads", "must be positive")),
        (ssm.as_str(), (vec![("heads", "131072")], "mamba.heads", "exceeds the limit of 2^16")),
        (ssm.as_str(), (vec![("state_size", "131072")], "mamba.state_size", "exceeds the limit of 2^16")),
        (ssm.as_str(), (vec![("groups", "3")], "mamba.groups", "3 groups do not divide 64 heads")),
        (ssm.as_str(), (vec![("groups", "0")], "mamba.groups", "must be positive")),
        (ssm.as_str(), (vec![("conv_kernel", "0")], "mamba.conv_kernel", "must be positive")),
        (ssm.as_str(), (vec![("conv_kernel", "100")], "mamba.conv_kernel", "exceeds the limit of 64")),
        (ssm.as_str(), (vec![("conv_kernel", "4\nchunk_size = 64")], "mamba.chunk_size", "unknown field")),
        (ssm.as_str(), (vec![("state_size", "")], "mamba", "state_size")),
        (ssm.as_str(), (vec![("layer_pattern", "\"LLG\"")], "layer_pattern", "must mark the Mamba-2 layers (M)")),
        (ssm.as_str(), (vec![("layer_pattern", "\"M-X\"")], "layer_pattern", "unknown layer 'X'")),
        (ssm.as_str(), (vec![("layer_pattern", &long_ssm_pattern)], "layer_pattern", "has 65 layers; a pattern repeats within 1 to 64 layers or lists all 36")),
        (ssm.as_str(), (vec![("sliding_window", "")], "sliding_window", "missing while layer_pattern has local (L) layers")),
        (ssm.as_str(), (vec![("layer_pattern", "\"M-S\"")], "linear_attention", "missing while layer_pattern has linear-attention (S) layers")),
        (ssm.as_str(), (vec![("layer_pattern", "\"MEM*\"")], "moe", "missing while layer_pattern has MoE (E) layers")),
        (ssm.as_str(), (vec![("mlp", "\"relu3\"")], "mlp", "unknown MLP 'relu3'")),
    ];
    for (i, (base, (edit, field, message))) in hybrid_edits.into_iter().enumerate() {
        cases.push(case(
            &format!("toml hybrid {i}: {field} {message}"),
            vec![("m.toml", toml_edit(base, &edit))],
            &["predict", "--model", "{d}/m.toml", "--hw", "h100-sxm"],
            refused(&[&format!("{{d}}/m.toml: {field}"), message]),
        ));
    }
    for (name, edit) in [
        ("hybrid", vec![]),
        (
            "hybrid without local layers",
            vec![("layer_pattern", "\"SSSG\""), ("sliding_window", "")],
        ),
    ] {
        cases.push(case(
            &format!("toml: {name} predicts"),
            vec![("m.toml", toml_edit(&hybrid, &edit))],
            &[
                "predict",
                "--model",
                "{d}/m.toml",
                "--hw",
                "h100-sxm",
                "--seq",
                "2048",
            ],
            Expect::Predict(None),
        ));
    }
    for (name, edit) in [
        ("single-block layers", vec![]),
        (
            "a pattern listing all 70 layers",
            vec![
                ("num_layers", "70"),
                ("layer_pattern", explicit_ssm_pattern.as_str()),
            ],
        ),
    ] {
        cases.push(case(
            &format!("toml: {name} predicts"),
            vec![("m.toml", toml_edit(&ssm, &edit))],
            &[
                "predict",
                "--model",
                "{d}/m.toml",
                "--hw",
                "h100-sxm",
                "--seq",
                "2048",
            ],
            Expect::Predict(None),
        ));
    }
    cases.push(case(
        "toml: latent attention with local and global layers predicts",
        vec![("m.toml", text(&latent))],
        &[
            "predict",
            "--model",
            "{d}/m.toml",
            "--hw",
            "h100-sxm",
            "--seq",
            "2048",
        ],
        Expect::Predict(None),
    ));
    for (name, body, message) in [
        ("empty", "", "(top level)"),
        ("unclosed table", "[moe", "invalid TOML at line 1"),
        (
            "unclosed array",
            "name = \"x\"\nvocab_size = [",
            "invalid TOML at line 2",
        ),
        ("binary", "\u{0}\u{1}\u{2}", "invalid TOML"),
        (
            "nested arrays",
            &("a = ".to_string() + &"[".repeat(5000)),
            "invalid TOML",
        ),
        (
            "duplicate key",
            "name = \"a\"\nname = \"b\"\n",
            "invalid TOML",
        ),
    ] {
        cases.push(case(
            &format!("toml: {name}"),
            vec![("m.toml", text(body))],
            &["predict", "--model", "{d}/m.toml", "--hw", "h100-sxm"],
            refused(&["{d}/m.toml: ", message]),
        ));
    }
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend(good.as_bytes());
    cases.push(case(
        "toml: UTF-8 BOM",
        vec![("m.toml", bom)],
        &["predict", "--model", "{d}/m.toml", "--hw", "h100-sxm"],
        Expect::Predict(None),
    ));
    for (name, edit) in [
        (
            "layernorm, learned, gelu",
            vec![
                ("norm", "\"layernorm\""),
                ("positions", "\"learned\""),
                ("mlp", "\"gelu\""),
                ("^norm_bias", "true"),
            ],
        ),
        ("no moe section", vec![]),
        (
            "biases",
            vec![
                ("qkv_bias", "true"),
                ("^attn_out_bias", "true"),
                ("^mlp_bias", "true"),
            ],
        ),
    ] {
        let mut t = String::from_utf8(toml_edit(&good, &edit)).unwrap();
        if name == "no moe section" {
            t = t[..t.find("[moe]").unwrap()].to_string();
        }
        cases.push(case(
            &format!("toml: {name} predicts"),
            vec![("m.toml", text(&t))],
            &[
                "predict",
                "--model",
                "{d}/m.toml",
                "--hw",
                "l40s",
                "--seq",
                "2048",
            ],
            Expect::Predict(None),
        ));
    }
    cases
}

/// Hardware profiles: edits of hw_profiles/h100-sxm.toml.
fn profile_cases() -> Vec<Case> {
    let good = read("hw_profiles/h100-sxm.toml");
    let figure = |field: &str, value: &str| -> String {
        // `field = { value = X, source = ... }` lines: replace X.
        let mut out = Vec::new();
        for line in good.lines() {
            if line.starts_with(&format!("{field} = {{ value = ")) {
                let rest = &line[line.find(", source").unwrap()..];
                out.push(format!("{field} = {{ value = {value}{rest}"));
            } else {
                out.push(line.to_string());
            }
        }
        out.join("\n") + "\n"
    };
    assert!(good.contains("bf16 = { value = "), "profile format changed");
    #[rustfmt::skip]
    let figures: Vec<(&str, &str, &str, &str)> = vec![
        // (line key, value, field named, message part)
        ("compute_units", "0", "compute_units.value", "must be a positive number"),
        ("compute_units", "-1", "compute_units.value", ""),
        ("compute_units", "2097152", "compute_units.value", "exceeds the limit of 2^20"),
        ("compute_units", "1.5", "compute_units.value", ""),
        ("compute_units", "4294967296", "compute_units.value", ""),
        ("boost_clock_hz", "0", "boost_clock_hz.value", "must be a positive number"),
        ("boost_clock_hz", "-1.98e9", "boost_clock_hz.value", "must be a positive number"),
        ("boost_clock_hz", "nan", "boost_clock_hz.value", "must be a positive number"),
        ("boost_clock_hz", "inf", "boost_clock_hz.value", "must be a positive number"),
        ("boost_clock_hz", "1e22", "boost_clock_hz.value", "outside"),
        ("boost_clock_hz", "\"fast\"", "boost_clock_hz.value", ""),
        ("memory_bytes", "0", "memory_bytes.value", "must be a positive number"),
        ("memory_bytes", "1e-4", "memory_bytes.value", "outside"),
        ("memory_bytes", "1e300", "memory_bytes.value", "outside"),
        ("memory_bandwidth_bytes_per_s", "nan", "memory_bandwidth_bytes_per_s.value", "must be a positive number"),
        ("memory_bandwidth_bytes_per_s", "1e-9", "memory_bandwidth_bytes_per_s.value", "outside"),
        ("l2_bytes", "inf", "l2_bytes.value", "must be a positive number"),
        ("l2_bytes", "-inf", "l2_bytes.value", "must be a positive number"),
        ("tdp_w", "0", "tdp_w.value", "must be a positive number"),
        ("tdp_w", "1e25", "tdp_w.value", "outside"),
        ("price_usd_per_hour", "2e6", "price_usd_per_hour.value", "outside"),
        ("sustained_compute_fraction", "1.2", "sustained_compute_fraction.value", "must be in"),
        ("sustained_compute_fraction", "1e-9", "sustained_compute_fraction.value", "outside"),
        ("sustained_compute_fraction", "0", "sustained_compute_fraction.value", "must be a positive number"),
        ("sustained_compute_fraction", "nan", "sustained_compute_fraction.value", "must be a positive number"),
        ("fp32", "0", "peak_flops.fp32.value", "must be a positive number"),
        ("bf16", "1e30", "peak_flops.bf16.value", "outside"),
        ("bf16", "-5", "peak_flops.bf16.value", "must be a positive number"),
        ("fp8", "1e-30", "peak_flops.fp8.value", "outside"),
        ("int8", "nan", "peak_flops.int8.value", "must be a positive number"),
        ("nvlink_bytes_per_s", "inf", "interconnect.nvlink_bytes_per_s.value", "must be a positive number"),
        ("pcie_bytes_per_s", "0", "interconnect.pcie_bytes_per_s.value", "must be a positive number"),
    ];
    let mut cases = Vec::new();
    let mut profile = |name: String, body: Vec<u8>, expect: Expect| {
        cases.push(case(
            &name,
            vec![("gpu.toml", body)],
            &[
                "predict",
                "--model",
                "gpt2",
                "--hw",
                "{d}/gpu.toml",
                "--dtype",
                "fp32",
                "--seq",
                "1024",
                "--prompt",
                "512",
            ],
            expect,
        ));
    };
    for (key, value, field, message) in figures {
        let body = if key == "price_usd_per_hour" || key == "sustained_compute_fraction" {
            good.replacen(
                "\n[peak_flops]",
                &format!("\n{key} = {{ value = {value}, source = \"a quote\" }}\n[peak_flops]"),
                1,
            )
        } else {
            figure(key, value)
        };
        assert_ne!(body, good, "{key} not found in the profile");
        profile(
            format!("profile: {key} = {value}"),
            text(&body),
            refused(&[&format!("{{d}}/gpu.toml: {field}"), message]),
        );
    }
    #[rustfmt::skip]
    let model: Vec<(&str, &str, &str, &str)> = vec![
        ("matmul_efficiency", "0", "model.matmul_efficiency", "must be in (0, 1]"),
        ("matmul_efficiency", "1.5", "model.matmul_efficiency", "must be in (0, 1]"),
        ("matmul_efficiency", "1e-7", "model.matmul_efficiency", "below"),
        ("matmul_efficiency", "nan", "model.matmul_efficiency", "must be in (0, 1]"),
        ("attention_efficiency", "-0.3", "model.attention_efficiency", "must be in (0, 1]"),
        ("memory_efficiency", "inf", "model.memory_efficiency", "must be in (0, 1]"),
        ("launch_latency_s", "-1e-6", "model.launch_latency_s", "non-negative"),
        ("launch_latency_s", "2.0", "model.launch_latency_s", "exceeds the limit of 1 s"),
        ("launch_latency_s", "inf", "model.launch_latency_s", "non-negative"),
        ("collective_latency_s", "nan", "model.collective_latency_s", "non-negative"),
        ("matmul_tiles", "[]", "model.matmul_tiles", "at least one tile"),
        ("matmul_tiles", "[[0, 64]]", "model.matmul_tiles", "each side positive"),
        ("matmul_tiles", "[[131072, 64]]", "model.matmul_tiles", "exceeds the limit of 2^16"),
        ("matmul_tiles", "[[-1, 2]]", "model.matmul_tiles", ""),
        ("matmul_tiles", "[[64]]", "model.matmul_tiles", ""),
        ("matmul_tiles", "\"128x128\"", "model.matmul_tiles", ""),
        ("colour", "\"green\"", "model", "colour"),
    ];
    for (key, value, field, message) in model {
        let body = format!("{good}\n{key} = {value}\n");
        // The [model] table is last in the profile, so an appended key lands in it; a key it
        // already has is replaced instead.
        let body = if good.contains(&format!("\n{key} = ")) {
            String::from_utf8(toml_edit(&good, &[(key, value)])).unwrap()
        } else {
            body
        };
        profile(
            format!("profile: model.{key} = {value}"),
            text(&body),
            refused(&[&format!("{{d}}/gpu.toml: {field}"), message]),
        );
    }
    let tiles: String = (0..65).map(|_| "[64, 64]").collect::<Vec<_>>().join(", ");
    profile(
        "profile: 65 tiles".into(),
        toml_edit(&good, &[("matmul_tiles", &format!("[{tiles}]"))]),
        refused(&["{d}/gpu.toml: model.matmul_tiles", "exceed the limit of 64"]),
    );
    for (value, message) in [
        ("\"\"", "must not be empty"),
        ("\"../../etc/x\"", "letters, digits"),
        ("\"my gpu\"", "letters, digits"),
        ("\".hidden\"", "not starting with '.'"),
        (&format!("\"{}\"", "a".repeat(65)) as &str, "at most 64"),
        ("7", ""),
    ] {
        profile(
            format!("profile: name = {value}"),
            toml_edit(&good, &[("name", value)]),
            refused(&["{d}/gpu.toml: name", message]),
        );
    }
    for (name, body, message) in [
        (
            "unknown key",
            good.replace("tdp_w = {", "tdp_watts = {"),
            "tdp_watts",
        ),
        ("unknown peak", good.replace("bf16 = {", "bf17 = {"), "bf17"),
        (
            "no source",
            good.replace(
                "source = \"NVIDIA H100 Tensor Core GPU datasheet, SXM: 80 GB HBM3\"",
                "source = \"\"",
            ),
            "every figure needs a source",
        ),
        (
            "missing fp32",
            {
                let start = good.find("\nfp32 = ").unwrap() + 1;
                let end = start + good[start..].find('\n').unwrap() + 1;
                format!("{}{}", &good[..start], &good[end..])
            },
            "fp32",
        ),
        ("empty", String::new(), "(top level)"),
        ("invalid", "name = ".to_string(), "invalid TOML"),
    ] {
        assert_ne!(body, good, "{name}: no edit");
        profile(
            format!("profile: {name}"),
            text(&body),
            refused(&["{d}/gpu.toml: ", message]),
        );
    }
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend(good.as_bytes());
    profile("profile: UTF-8 BOM".into(), bom, Expect::Predict(None));
    // The smallest and largest figures gpucost accepts still give finite answers.
    let mut tiny = good.clone();
    for key in [
        "compute_units",
        "boost_clock_hz",
        "memory_bytes",
        "memory_bandwidth_bytes_per_s",
        "l2_bytes",
        "tdp_w",
        "fp32",
    ] {
        let v = if key == "compute_units" { "1" } else { "1e-3" };
        tiny = {
            let mut out = Vec::new();
            for line in tiny.lines() {
                if line.starts_with(&format!("{key} = {{ value = ")) {
                    let rest = &line[line.find(", source").unwrap()..];
                    out.push(format!("{key} = {{ value = {v}{rest}"));
                } else {
                    out.push(line.to_string());
                }
            }
            out.join("\n") + "\n"
        };
    }
    let tiny = toml_edit(
        &tiny,
        &[
            ("matmul_efficiency", "1e-6"),
            ("attention_efficiency", "1e-6"),
            ("memory_efficiency", "1e-6"),
            ("launch_latency_s", "1.0"),
            ("name", "\"tiny-gpu\""),
        ],
    );
    profile(
        "profile: the smallest figures".into(),
        tiny,
        Expect::Predict(None),
    );
    let mut huge = good.clone();
    for key in [
        "compute_units",
        "boost_clock_hz",
        "memory_bytes",
        "memory_bandwidth_bytes_per_s",
        "l2_bytes",
        "tdp_w",
        "fp32",
    ] {
        let v = if key == "compute_units" {
            "1048576"
        } else {
            "1e21"
        };
        let mut out = Vec::new();
        for line in huge.lines() {
            if line.starts_with(&format!("{key} = {{ value = ")) {
                let rest = &line[line.find(", source").unwrap()..];
                out.push(format!("{key} = {{ value = {v}{rest}"));
            } else {
                out.push(line.to_string());
            }
        }
        huge = out.join("\n") + "\n";
    }
    let huge = toml_edit(
        &huge,
        &[
            ("launch_latency_s", "0.0"),
            ("matmul_tiles", "[[1, 1], [65536, 65536]]"),
            ("name", "\"huge-gpu\""),
        ],
    );
    profile(
        "profile: the largest figures".into(),
        huge,
        Expect::Predict(None),
    );
    cases.push(case(
        "profile: hw show of a folder",
        vec![("sub/x", vec![])],
        &["hw", "show", "{d}/sub"],
        refused(&["{d}/sub: is a folder"]),
    ));
    cases.push(case(
        "profile: hw show unknown",
        vec![],
        &["hw", "show", "b300"],
        refused(&["unknown GPU 'b300'"]),
    ));
    cases
}

/// Command-line flags of predict and predict-op.
/// `predict` of llama-3-8b on an H100 with `extra` flags.
fn predict_args(extra: &[&str]) -> Vec<String> {
    ["predict", "--model", "llama-3-8b", "--hw", "h100-sxm"]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
}

fn flag_cases() -> Vec<Case> {
    let predict = predict_args;
    let mut cases = Vec::new();
    let mut push = |name: &str, args: Vec<String>, expect: Expect| {
        cases.push(Case {
            name: name.to_string(),
            files: Vec::new(),
            args,
            in_folder: false,
            expect,
        });
    };
    #[rustfmt::skip]
    let refusals: Vec<(&[&str], &[&str])> = vec![
        (&["--batch", "0"], &["--batch must be positive, got 0"]),
        (&["--batch", "-1"], &["--batch must be positive, got -1"]),
        (&["--batch", "8589934592"], &["--batch 8589934592 exceeds the limit of 2^32"]),
        (&["--batch", "abc"], &["invalid value 'abc' for '--batch"]),
        (&["--batch", "1e3"], &["invalid value '1e3' for '--batch"]),
        (&["--batch", "99999999999999999999999"], &["'--batch", "too large"]),
        (&["--batch", ""], &["--batch"]),
        (&["--seq", "0"], &["--seq must be positive, got 0"]),
        (&["--seq", "8589934592"], &["--seq 8589934592 exceeds the limit of 2^32"]),
        (&["--seq", "-4096"], &["--seq must be positive, got -4096"]),
        (&["--prompt", "0"], &["--prompt must be positive, got 0"]),
        (&["--prompt", "8589934592"], &["--prompt 8589934592 exceeds the limit of 2^32"]),
        (&["--gen", "0"], &["--gen must be positive, got 0"]),
        (&["--gen", "-1"], &["--gen must be positive, got -1"]),
        (&["--gen", "1e8"], &["invalid value '1e8' for '--gen"]),
        (&["--gen", "16777217"], &["--gen 16777217 exceeds the limit of 2^24"]),
        (&["--gen", "1099511627776"], &["--gen 1099511627776 exceeds the limit of 2^24"]),
        (&["--batch", "65536", "--seq", "131072"], &["--batch x --seq = 8589934592 tokens per step exceeds the limit of 2^32"]),
        (&["--batch", "4294967296", "--seq", "4294967296"], &["--batch x --seq", "exceeds the limit of 2^32"]),
        (&["--batch", "65536", "--seq", "1", "--prompt", "131072"], &["--batch x --prompt = 8589934592 prefill tokens exceeds the limit of 2^32"]),
        (&["--prompt", "4294967296", "--gen", "1"], &["--prompt + --gen = 4294967297 tokens of context exceeds the limit of 2^32"]),
        (&["--dtype", "fp64"], &["--dtype: unknown dtype 'fp64'"]),
        (&["--dtype", ""], &["--dtype: unknown dtype ''"]),
        (&["--kv-dtype", "q4"], &["--kv-dtype: unknown dtype 'q4'"]),
        (&["--recompute", "sometimes"], &["invalid value 'sometimes' for '--recompute", "possible values"]),
        (&["--price-per-hour", "-1"], &["--price-per-hour must be a number from 0"]),
        (&["--price-per-hour", "NaN"], &["--price-per-hour must be a number from 0"]),
        (&["--price-per-hour", "inf"], &["--price-per-hour must be a number from 0"]),
        (&["--price-per-hour", "1e7"], &["--price-per-hour must be a number from 0"]),
        (&["--stack", "cuda:nope"], &["--stack cuda:nope: not an implementation", "cuda:cublas"]),
        (&["--roofline", "--calibration", "x.json"], &["'--roofline' cannot be used with '--calibration"]),
        (&["--calibration", "/nonexistent/cal.json"], &["/nonexistent/cal.json: cannot read"]),
        (&["--format", "xml"], &["invalid value 'xml' for '--format"]),
        (&["--colour"], &["unexpected argument '--colour'"]),
        (&["--gens", "5"], &["unexpected argument '--gens'", "--gen"]),
    ];
    for (extra, needles) in refusals {
        push(
            &format!("predict {}", extra.join(" ")),
            predict(extra),
            refused(needles),
        );
    }
    #[rustfmt::skip]
    let other: Vec<(&[&str], &[&str])> = vec![
        (&["predict", "--model", "gpt2"], &["required arguments were not provided", "--hw"]),
        (&["predict", "--hw", "h100-sxm"], &["required arguments were not provided", "--model"]),
        (&["predict", "--model", "llama-9", "--hw", "h100-sxm"], &["unknown model 'llama-9'"]),
        (&["predict", "--model", "gpt2", "--hw", "b200"], &["unknown GPU 'b200'"]),
        (&["predict", "--model", "gpt2", "--hw", "lavapipe", "--dtype", "bf16"], &["lavapipe has no bf16 matrix rate"]),
        (&["predict", "--model", "gpt2", "--hw", "lavapipe", "--dtype", "fp32", "--calibration", "hw_profiles/h100-sxm.calibration.json"], &["hw_profiles/h100-sxm.calibration.json: profile: calibrates 'h100-sxm', not --hw lavapipe"]),
        (&["predict", "--model", "tests/fixtures/deepseek-v3.json", "--hw", "h200-sxm", "--speculative-acceptance", "1.5"], &["--speculative-acceptance must be from 0 to 1, got 1.5"]),
        (&["predict", "--model", "tests/fixtures/deepseek-v3.json", "--hw", "h200-sxm", "--speculative-acceptance", "-0.1"], &["--speculative-acceptance must be from 0 to 1, got -0.1"]),
        (&["predict", "--model", "tests/fixtures/deepseek-v3.json", "--hw", "h200-sxm", "--speculative-acceptance", "NaN"], &["--speculative-acceptance must be from 0 to 1, got NaN"]),
        (&["predict", "--model", "gpt2", "--hw", "h200-sxm", "--speculative-acceptance", "0.7"], &["--speculative-acceptance: gpt2 has no multi-token-prediction modules to draft with"]),
        (&["predict", "--model", "gpt2", "--hw", "lavapipe", "--stack", "cuda:mma"], &["--stack cuda:mma: not an implementation the calibration of lavapipe measured"]),
        (&["frobnicate"], &["unrecognized subcommand 'frobnicate'"]),
        (&["hw", "show"], &["required arguments were not provided"]),
        (&["predict-op", "matmul", "--m", "0", "--n", "1", "--k", "1", "--dtype", "bf16", "--hw", "h100-sxm"], &["--m must be positive, got 0"]),
        (&["predict-op", "matmul", "--m", "-3", "--n", "1", "--k", "1", "--dtype", "bf16", "--hw", "h100-sxm"], &["--m must be positive, got -3"]),
        (&["predict-op", "matmul", "--m", "8589934592", "--n", "1", "--k", "1", "--dtype", "bf16", "--hw", "h100-sxm"], &["--m 8589934592 exceeds the limit of 2^32"]),
        (&["predict-op", "scan", "--heads", "32", "--seq", "0", "--key-dim", "128", "--dtype", "bf16", "--hw", "h100-sxm"], &["--seq must be positive, got 0"]),
        (&["predict-op", "scan", "--heads", "32", "--seq", "64", "--key-dim", "128", "--chunk", "2048", "--dtype", "bf16", "--hw", "h100-sxm"], &["--chunk 2048 exceeds the limit of 1024"]),
        (&["predict-op", "scan", "--heads", "32", "--seq", "64", "--key-dim", "-1", "--dtype", "bf16", "--hw", "h100-sxm"], &["--key-dim must be positive, got -1"]),
        (&["predict-op", "scan", "--batch", "4294967296", "--heads", "65536", "--seq", "4294967296", "--key-dim", "128", "--dtype", "bf16", "--hw", "h100-sxm"], &["--batch x --heads x --seq x --key-dim (q, k)", "exceeds the limit of 2^62 elements"]),
        (&["predict-op", "matmul", "--m", "1", "--n", "4294967297", "--k", "1", "--dtype", "bf16", "--hw", "h100-sxm"], &["--n 4294967297 exceeds the limit of 2^32"]),
        (&["predict-op", "matmul", "--m", "1", "--n", "1", "--k", "abc", "--dtype", "bf16", "--hw", "h100-sxm"], &["invalid value 'abc' for '--k"]),
        (&["predict-op", "matmul", "--m", "1", "--n", "1", "--k", "1", "--batch", "0", "--dtype", "bf16", "--hw", "h100-sxm"], &["--batch must be positive, got 0"]),
        (&["predict-op", "matmul", "--m", "4294967296", "--n", "4294967296", "--k", "4294967296", "--batch", "4294967296", "--dtype", "bf16", "--hw", "h100-sxm"], &["--batch x --m x --k (A)", "exceeds the limit of 2^62 elements"]),
        (&["predict-op", "matmul", "--m", "4294967296", "--n", "4294967296", "--k", "4294967296", "--batch", "3", "--dtype", "bf16", "--hw", "h100-sxm"], &["exceeds the limit of 2^62 elements"]),
        (&["predict-op", "matmul", "--m", "4294967296", "--n", "16", "--k", "4294967296", "--dtype", "bf16", "--hw", "h100-sxm"], &["--batch x --m x --k (A)", "exceeds the limit of 2^62"]),
        (&["predict-op", "matmul", "--m", "1", "--n", "1", "--k", "1", "--dtype", "fp8", "--hw", "a100-sxm-80gb"], &["a100-sxm-80gb has no fp8-e4m3 matrix rate"]),
        (&["predict-op", "matmul", "--m", "1", "--n", "1", "--k", "1", "--dtype", "fp64", "--hw", "h100-sxm"], &["--dtype: unknown dtype 'fp64'"]),
        (&["predict-op", "matmul", "--n", "1", "--k", "1", "--dtype", "bf16", "--hw", "h100-sxm"], &["required arguments were not provided", "--m"]),
        (&["predict-op", "matmul", "--m", "1", "--n", "1", "--k", "1", "--dtype", "bf16", "--hw", "h100-sxm", "--stack", "wgpu:none"], &["--stack wgpu:none"]),
        (&["predict-op", "attention", "--heads", "4294967296", "--seq-q", "4294967296", "--head-dim", "4294967296", "--dtype", "bf16", "--hw", "h100-sxm"], &["--heads 4294967296 exceeds the limit of 2^16"]),
        (&["predict-op", "attention", "--heads", "0", "--seq-q", "16", "--head-dim", "64", "--dtype", "bf16", "--hw", "h100-sxm"], &["--heads must be positive, got 0"]),
        (&["predict-op", "attention", "--heads", "8", "--kv-heads", "3", "--seq-q", "16", "--head-dim", "64", "--dtype", "bf16", "--hw", "h100-sxm"], &["--kv-heads 3 does not divide --heads 8"]),
        (&["predict-op", "attention", "--heads", "8", "--kv-heads", "0", "--seq-q", "16", "--head-dim", "64", "--dtype", "bf16", "--hw", "h100-sxm"], &["--kv-heads must be positive, got 0"]),
        (&["predict-op", "attention", "--heads", "8", "--seq-q", "32", "--seq-kv", "16", "--head-dim", "64", "--dtype", "bf16", "--hw", "h100-sxm"], &["--seq-q 32 exceeds --seq-kv 16"]),
        (&["predict-op", "attention", "--heads", "8", "--seq-q", "8589934592", "--head-dim", "64", "--dtype", "bf16", "--hw", "h100-sxm"], &["--seq-q 8589934592 exceeds the limit of 2^32"]),
        (&["predict-op", "attention", "--heads", "8", "--seq-q", "16", "--head-dim", "131072", "--dtype", "bf16", "--hw", "h100-sxm"], &["--head-dim 131072 exceeds the limit of 2^16"]),
        (&["predict-op", "attention", "--heads", "8", "--seq-q", "16", "--head-dim", "0", "--dtype", "bf16", "--hw", "h100-sxm"], &["--head-dim must be positive, got 0"]),
        (&["predict-op", "attention", "--batch", "2", "--heads", "8", "--seq-q", "4294967296", "--head-dim", "64", "--dtype", "bf16", "--hw", "h100-sxm"], &["--batch x --seq-q: 8589934592 exceeds the limit of 2^32 queries"]),
        (&["predict-op", "attention", "--heads", "8", "--seq-q", "16", "--head-dim", "64", "--dtype", "int4", "--hw", "lavapipe"], &["lavapipe has no int4 matrix rate"]),
        (&["predict-op", "conv", "--dtype", "bf16", "--hw", "h100-sxm"], &["unrecognized subcommand 'conv'"]),
    ];
    for (args, needles) in other {
        push(
            &args.join(" "),
            args.iter().map(|s| s.to_string()).collect(),
            refused(needles),
        );
    }
    // Sizes at the limits give finite answers.
    #[rustfmt::skip]
    let oks: Vec<(&[&str], Expect)> = vec![
        (&["--gen", "16777216"], Expect::Predict(Some("exceed".into()))),
        (&["--batch", "4294967296", "--seq", "1", "--prompt", "1", "--gen", "1"], Expect::Predict(None)),
        (&["--batch", "1", "--seq", "4294967296", "--prompt", "4294967295", "--gen", "1"], Expect::Predict(Some("exceed".into()))),
        (&["--price-per-hour", "0"], Expect::Predict(None)),
        (&["--price-per-hour", "1e6", "--roofline"], Expect::Predict(None)),
        (&["--stack", "cuda:cublas", "--breakdown"], Expect::Predict(None)),
        (&["--dtype", "int8", "--kv-dtype", "fp8", "--recompute", "full"], Expect::Predict(None)),
        (&["--no-fused-attention", "--recompute", "selective", "--seq", "65536"], Expect::Predict(Some("exceed".into()))),
    ];
    for (extra, expect) in oks {
        push(
            &format!("predict {}", extra.join(" ")),
            predict(extra),
            expect,
        );
    }
    #[rustfmt::skip]
    let op_oks: Vec<&[&str]> = vec![
        &["predict-op", "matmul", "--m", "1", "--n", "1", "--k", "1", "--dtype", "fp32", "--hw", "lavapipe"],
        &["predict-op", "matmul", "--m", "2147483648", "--n", "2147483648", "--k", "2147483648", "--dtype", "bf16", "--hw", "h100-sxm"],
        &["predict-op", "matmul", "--m", "4294967296", "--n", "1", "--k", "1073741824", "--batch", "1", "--dtype", "fp8", "--hw", "h200-sxm"],
        &["predict-op", "matmul", "--m", "1", "--n", "1", "--k", "1", "--batch", "4294967296", "--dtype", "int8", "--hw", "rtx-4090"],
        &["predict-op", "attention", "--heads", "65536", "--seq-q", "4294967296", "--head-dim", "65536", "--dtype", "bf16", "--hw", "h100-sxm"],
        &["predict-op", "attention", "--heads", "65536", "--kv-heads", "1", "--seq-q", "1", "--seq-kv", "4294967296", "--head-dim", "65536", "--causal", "--dtype", "fp16", "--hw", "lavapipe"],
        &["predict-op", "attention", "--batch", "4294967296", "--heads", "1", "--seq-q", "1", "--head-dim", "1", "--dtype", "fp32", "--hw", "a100-sxm-40gb", "--roofline"],
        &["predict-op", "scan", "--heads", "32", "--seq", "4096", "--key-dim", "128", "--dtype", "bf16", "--hw", "h100-sxm"],
        &["predict-op", "scan", "--batch", "16384", "--heads", "65536", "--seq", "65536", "--key-dim", "65536", "--value-dim", "1", "--chunk", "1024", "--dtype", "fp16", "--hw", "lavapipe"],
    ];
    for args in op_oks {
        push(
            &args.join(" "),
            args.iter().map(|s| s.to_string()).collect(),
            Expect::PredictOp,
        );
    }
    cases
}

/// Results records, read by report, calibrate and validate.
#[cfg(feature = "measure")]
fn record_cases() -> Vec<Case> {
    let results = "results/llvmpipe-llvm-15-0-6-256-bits/wgpu-matmul-fp32-1795708870804.jsonl";
    let good_text = read(results);
    let good: Vec<Value> = good_text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let timed = good
        .iter()
        .find(|r| r["timing"].is_object())
        .unwrap()
        .clone();
    // The good records with line 3 replaced by `edit` of a timed record.
    let with_line3 = |edit: &dyn Fn(&mut Value)| -> Vec<u8> {
        let mut r = timed.clone();
        edit(&mut r);
        let mut lines: Vec<String> = good.iter().map(|v| v.to_string()).collect();
        lines[2] = r.to_string();
        (lines.join("\n") + "\n").into_bytes()
    };
    type Edit = Box<dyn Fn(&mut Value)>;
    #[rustfmt::skip]
    let edits: Vec<(&str, Edit, &str)> = vec![
        ("schema 99", Box::new(|r| r["schema_version"] = json!(99)), "schema_version is 99, this gpucost reads 1"),
        ("schema 0", Box::new(|r| r["schema_version"] = json!(0)), "schema_version is 0"),
        ("schema 99 other shape", Box::new(|r| *r = json!({"schema_version": 99, "kernel": "x"})), "schema_version is 99"),
        ("negative median", Box::new(|r| r["timing"]["summary"]["median_s"] = json!(-0.001)), "timing.summary.median_s must be a positive number"),
        ("zero median", Box::new(|r| r["timing"]["summary"]["median_s"] = json!(0.0)), "timing.summary.median_s must be a positive number"),
        ("zero p10", Box::new(|r| r["timing"]["summary"]["p10_s"] = json!(0.0)), "timing.summary.p10_s"),
        ("negative min", Box::new(|r| r["timing"]["summary"]["min_s"] = json!(-1.0)), "timing.summary.min_s"),
        ("p10 above median", Box::new(|r| r["timing"]["summary"]["p10_s"] = json!(1.0)), "timing.summary is inconsistent"),
        ("p90 below median", Box::new(|r| r["timing"]["summary"]["p90_s"] = json!(1e-9)), "timing.summary is inconsistent"),
        ("n zero", Box::new(|r| r["timing"]["summary"]["n"] = json!(0)), "timing.summary.n must be at least 1"),
        ("n negative", Box::new(|r| r["timing"]["summary"]["n"] = json!(-1)), "not a valid record"),
        ("cv negative", Box::new(|r| r["timing"]["summary"]["cv"] = json!(-0.5)), "timing.summary.cv"),
        ("negative sample", Box::new(|r| r["timing"]["samples_s"][0] = json!(-1.0)), "timing.samples_s must hold positive numbers"),
        ("sample count", Box::new(|r| r["timing"]["samples_s"] = json!([0.003])), "timing.samples_s holds 1 samples but timing.summary.n is"),
        ("negative rate", Box::new(|r| r["timing"]["flops_per_s"] = json!(-33.6e9)), "timing.flops_per_s must be a non-negative number"),
        ("negative roofline fraction", Box::new(|r| r["timing"]["roofline_fraction"] = json!(-0.1)), "timing.roofline_fraction"),
        ("median a string", Box::new(|r| r["timing"]["summary"]["median_s"] = json!("fast")), "not a valid record"),
        ("zero tolerance", Box::new(|r| r["correctness"]["tolerance"] = json!(0.0)), "correctness.tolerance must be a positive number"),
        ("negative error", Box::new(|r| r["correctness"]["max_rel_error"] = json!(-1.0)), "correctness.max_rel_error"),
        ("m zero", Box::new(|r| r["op"]["m"] = json!(0)), "op: m must be positive"),
        ("huge matmul", Box::new(|r| { r["op"]["m"] = json!(1u64 << 40); r["op"]["k"] = json!(1u64 << 40); }), "op: m 1099511627776 exceeds the limit of 2^32"),
        ("operand too large", Box::new(|r| { r["op"]["m"] = json!(1u64 << 32); r["op"]["k"] = json!(1u64 << 32); }), "op: batch x m x k (A): more than 2^64"),
        ("unknown op", Box::new(|r| r["op"]["op"] = json!("conv")), "not a valid record"),
        ("attention q > kv", Box::new(|r| r["op"] = json!({"op": "attention", "batch": 1, "q_heads": 8, "kv_heads": 8, "q_len": 64, "kv_len": 32, "qk_head_dim": 64, "v_head_dim": 64, "causal": true, "window": null, "dtype": "fp32", "kv_dtype": "fp32", "fused": true, "pass": "forward"})), "op: q_len 64 exceeds kv_len 32"),
        ("attention kv heads", Box::new(|r| r["op"] = json!({"op": "attention", "batch": 1, "q_heads": 8, "kv_heads": 3, "q_len": 32, "kv_len": 32, "qk_head_dim": 64, "v_head_dim": 64, "causal": true, "window": null, "dtype": "fp32", "kv_dtype": "fp32", "fused": true, "pass": "forward"})), "op: kv_heads 3 does not divide q_heads 8"),
        ("unknown dtype", Box::new(|r| r["op"]["input"] = json!("fp64")), "not a valid record"),
        ("not an object", Box::new(|r| *r = json!([1, 2])), "not a valid record"),
        ("device missing", Box::new(|r| { r.as_object_mut().unwrap().remove("device"); }), "not a valid record"),
    ];
    let mut cases = Vec::new();
    for (i, (name, edit, message)) in edits.into_iter().enumerate() {
        let command = ["report", "calibrate", "validate"][i % 3];
        let mut args = vec![command, "--results", "{d}/r.jsonl"];
        if command == "calibrate" {
            args.extend(["--out", "{d}/o.json"]);
        }
        cases.push(case(
            &format!("record ({command}): {name}"),
            vec![("r.jsonl", with_line3(&*edit))],
            &args,
            refused(&["{d}/r.jsonl: line 3: ", message]),
        ));
    }
    // A damaged line in the middle, and files that are not results.
    let mut damaged = good_text.clone();
    damaged.insert_str(damaged.find('\n').unwrap() + 1, "{\"schema_version\": 1,\n");
    for (name, body, message) in [
        (
            "damaged middle line",
            text(&damaged),
            "{d}/r.jsonl: line 2: not a valid record",
        ),
        ("binary", vec![0xff, 0x00, 0xfe], "{d}/r.jsonl: not UTF-8"),
    ] {
        for command in ["report", "validate"] {
            cases.push(case(
                &format!("record ({command}): {name}"),
                vec![("r.jsonl", body.clone())],
                &[command, "--results", "{d}/r.jsonl"],
                refused(&[message]),
            ));
        }
    }
    // Empty results.
    cases.push(case(
        "results: empty folder (calibrate)",
        vec![("empty/.keep", vec![])],
        &["calibrate", "--results", "{d}/empty", "--out", "{d}/o.json"],
        refused(&["{d}/empty: no .jsonl results files"]),
    ));
    cases.push(case(
        "results: empty folder (report)",
        vec![("empty/.keep", vec![])],
        &["report", "--results", "{d}/empty"],
        refused(&["{d}/empty: no .jsonl results files"]),
    ));
    cases.push(case(
        "results: empty files (validate)",
        vec![("res/a.jsonl", vec![]), ("res/b.jsonl", text("\n\n"))],
        &["validate", "--results", "{d}/res"],
        refused(&["{d}/res: no records in 2 results files"]),
    ));
    cases.push(case(
        "results: empty file (report)",
        vec![("r.jsonl", vec![])],
        &["report", "--results", "{d}/r.jsonl"],
        refused(&["{d}/r.jsonl: no records in 1 results file"]),
    ));
    cases.push(case(
        "results: missing folder",
        vec![],
        &["calibrate", "--results", "{d}/nothing"],
        refused(&["{d}/nothing: cannot read"]),
    ));
    cases.push(case(
        "results: no device matches",
        vec![("r.jsonl", text(&good_text))],
        &["validate", "--results", "{d}/r.jsonl", "--device", "H100"],
        refused(&["{d}/r.jsonl: no records whose device name contains 'H100' (devices: llvmpipe"]),
    ));
    // Identity: lavapipe results are not an H100's.
    for command in ["calibrate", "validate"] {
        cases.push(case(
            &format!("results: {command} --hw of another GPU"),
            vec![("r.jsonl", text(&good_text))],
            &[
                command,
                "--results",
                "{d}/r.jsonl",
                "--hw",
                "h100-sxm",
                "--out",
                "{d}/o.json",
            ][..if command == "calibrate" { 7 } else { 5 }],
            refused(&[
                "the device 'llvmpipe (LLVM 15.0.6, 256 bits)' is described by profile lavapipe, not --hw h100-sxm",
                "--allow-hw-mismatch",
            ]),
        ));
    }
    cases.push(case(
        "results: plot --hw of another GPU",
        vec![("r.jsonl", text(&good_text))],
        &[
            "plot",
            "roofline",
            "--results",
            "{d}/r.jsonl",
            "--hw",
            "h100-sxm",
            "-o",
            "{d}/x.svg",
        ],
        refused(&["is described by profile lavapipe, not --hw h100-sxm"]),
    ));
    cases.push(case(
        "results: calibrate --hw of another GPU, allowed",
        vec![("r.jsonl", text(&good_text))],
        &[
            "calibrate",
            "--results",
            "{d}/r.jsonl",
            "--hw",
            "h100-sxm",
            "--allow-hw-mismatch",
            "--out",
            "{d}/o.json",
        ],
        Expect::Ok(Some("o.json".into())),
    ));
    // Where calibrate writes.
    let mut default_out = case(
        "calibrate: writes gpucost-calibrations/ by default",
        vec![("r.jsonl", text(&good_text))],
        &["calibrate", "--results", "{d}/r.jsonl"],
        Expect::Ok(Some(
            "gpucost-calibrations/lavapipe.calibration.json".into(),
        )),
    );
    default_out.in_folder = true;
    cases.push(default_out);
    cases.push(case(
        "calibrate: --out names a folder",
        vec![("r.jsonl", text(&good_text)), ("cals/.keep", vec![])],
        &["calibrate", "--results", "{d}/r.jsonl", "--out", "{d}/cals"],
        Expect::Ok(Some("cals/lavapipe.calibration.json".into())),
    ));
    cases.push(case(
        "calibrate: --out through a file",
        vec![("r.jsonl", text(&good_text)), ("afile", vec![])],
        &[
            "calibrate",
            "--results",
            "{d}/r.jsonl",
            "--out",
            "{d}/afile/o.json",
        ],
        refused(&["{d}/afile/o.json: cannot write: {d}/afile is a file, not a folder"]),
    ));
    let mut embedded = case(
        "calibrate: --update-embedded outside the repository",
        vec![("r.jsonl", text(&good_text))],
        &["calibrate", "--results", "{d}/r.jsonl", "--update-embedded"],
        refused(&["--update-embedded: no hw_profiles/lavapipe.toml here"]),
    );
    embedded.in_folder = true;
    cases.push(embedded);
    cases.push(case(
        "calibrate: --update-embedded with --out",
        vec![("r.jsonl", text(&good_text))],
        &[
            "calibrate",
            "--results",
            "{d}/r.jsonl",
            "--update-embedded",
            "--out",
            "{d}/o.json",
        ],
        refused(&["--update-embedded", "cannot be used with", "--out"]),
    ));
    cases.push(case(
        "calibrate: --update-embedded for a user profile",
        vec![
            ("r.jsonl", text(&good_text)),
            (
                "gpu.toml",
                text(
                    &read("hw_profiles/lavapipe.toml")
                        .replace("name = \"lavapipe\"", "name = \"my-cpu\""),
                ),
            ),
        ],
        &[
            "calibrate",
            "--results",
            "{d}/r.jsonl",
            "--hw",
            "{d}/gpu.toml",
            "--allow-hw-mismatch",
            "--update-embedded",
        ],
        refused(&["--update-embedded: 'my-cpu' is not a catalog profile"]),
    ));
    cases.push(case(
        "plot: -o names a folder",
        vec![("r.jsonl", text(&good_text)), ("out/.keep", vec![])],
        &[
            "plot",
            "roofline",
            "--results",
            "{d}/r.jsonl",
            "-o",
            "{d}/out",
        ],
        refused(&["{d}/out: is a folder; name the .svg file to write"]),
    ));
    cases.push(case(
        "plot: -o in a missing folder",
        vec![("r.jsonl", text(&good_text))],
        &[
            "plot",
            "validation",
            "--results",
            "{d}/r.jsonl",
            "-o",
            "{d}/nowhere/x.svg",
        ],
        refused(&["{d}/nowhere/x.svg: cannot write: {d}/nowhere is not an existing folder"]),
    ));
    // Files that read: a byte-order mark, and a torn last line (reported, not fatal).
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend(good_text.as_bytes());
    cases.push(case(
        "record: UTF-8 BOM",
        vec![("r.jsonl", bom)],
        &["report", "--results", "{d}/r.jsonl"],
        Expect::Ok(None),
    ));
    let torn = good_text.trim_end().to_string() + "\n" + &good_text[..40];
    cases.push(case(
        "record: torn last line",
        vec![("r.jsonl", text(&torn))],
        &["report", "--results", "{d}/r.jsonl"],
        Expect::Ok(None),
    ));
    cases
}

#[cfg(not(feature = "measure"))]
fn record_cases() -> Vec<Case> {
    Vec::new()
}

/// Calibration files given to predict with --calibration.
fn calibration_cases() -> Vec<Case> {
    let good: Value = serde_json::from_str(&read("hw_profiles/lavapipe.calibration.json")).unwrap();
    let args = [
        "predict",
        "--model",
        "gpt2",
        "--hw",
        "lavapipe",
        "--dtype",
        "fp32",
        "--seq",
        "1024",
        "--prompt",
        "512",
        "--calibration",
        "{d}/cal.json",
    ];
    let mut cases = Vec::new();
    #[rustfmt::skip]
    let edits: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "{d}/cal.json: invalid JSON"),
        ("truncated", text("{\"schema_version\": 3, "), "{d}/cal.json: invalid JSON"),
        ("array", text("[]"), "{d}/cal.json: "),
        ("schema 99", json_edit(&good, &[("schema_version", Some(json!(99)))]), "{d}/cal.json: schema_version: is 99, this gpucost reads 3"),
        ("schema missing", json_edit(&good, &[("schema_version", None)]), "{d}/cal.json: schema_version: is missing"),
        ("schema a string", json_edit(&good, &[("schema_version", Some(json!("3")))]), "{d}/cal.json: schema_version"),
        ("another profile", json_edit(&good, &[("profile", Some(json!("h100-sxm")))]), "{d}/cal.json: profile: calibrates 'h100-sxm', not --hw lavapipe"),
        ("groups not a list", json_edit(&good, &[("groups", Some(json!("x")))]), "{d}/cal.json: groups"),
        ("groups missing", json_edit(&good, &[("groups", None)]), "{d}/cal.json: "),
        ("binary", vec![0x80, 0x81], "{d}/cal.json: not UTF-8"),
    ];
    for (name, body, message) in edits {
        cases.push(case(
            &format!("calibration: {name}"),
            vec![("cal.json", body)],
            &args,
            refused(&[message]),
        ));
    }
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend(read("hw_profiles/lavapipe.calibration.json").as_bytes());
    cases.push(case(
        "calibration: UTF-8 BOM",
        vec![("cal.json", bom)],
        &args,
        Expect::Predict(None),
    ));
    cases.push(case(
        "calibration: a folder",
        vec![("cal.json/x", vec![])],
        &args,
        refused(&["{d}/cal.json: is a folder"]),
    ));
    cases
}

/// compose's refusals that come before any device is opened.
#[cfg(feature = "measure")]
fn compose_cases() -> Vec<Case> {
    let c = |extra: &[&str]| -> Vec<String> {
        let mut v = vec![
            "compose",
            "--model",
            "examples/tiny-block.toml",
            "--no-save",
        ];
        v.extend(extra);
        v.iter().map(|s| s.to_string()).collect()
    };
    #[rustfmt::skip]
    let rows: Vec<(Vec<String>, &[&str])> = vec![
        (c(&["--tokens", "10000000"]), &["--tokens 10000000 exceeds the limit of 32768"]),
        (c(&["--tokens", "0"]), &["--tokens must be positive, got 0"]),
        (c(&["--batch", "-1"]), &["--batch must be positive, got -1"]),
        (c(&["--batch", "256", "--tokens", "256"]), &["--batch x --tokens = 65536 exceeds the limit of 32768"]),
        (c(&["--runs", "0"]), &["--runs must be from 1"]),
        (c(&["--dtype", "fp64"]), &["--dtype: unknown dtype 'fp64'"]),
        (c(&["--layer", "local"]), &["tiny-block: --layer local: it has no sliding-window layers"]),
        (["compose", "--model", "examples/compose/deepseek-v3-layer.toml", "--layer", "local", "--no-save"] .iter() .map(|s| s.to_string()) .collect(), &["deepseek-v3-layer: --layer local: it has no sliding-window layers"]),
        (["compose", "--model", "mixtral-8x7b", "--no-save"] .iter() .map(|s| s.to_string()) .collect(), &["models/Mixtral-8x7B-Instruct-v0.1.json: moe: a mixture-of-experts model"]),
        (["compose", "--model", "examples/paper-model.toml", "--no-save"] .iter() .map(|s| s.to_string()) .collect(), &["examples/paper-model.toml: moe: a mixture-of-experts model"]),
        (["compose", "--model", "llama-2-13b", "--tokens", "32768", "--no-save"] .iter() .map(|s| s.to_string()) .collect(), &["host memory", "use fewer --tokens"]),
    ];
    rows.into_iter()
        .map(|(args, needles)| Case {
            name: args.join(" "),
            files: Vec::new(),
            args,
            in_folder: false,
            expect: refused(needles),
        })
        .collect()
}

#[cfg(not(feature = "measure"))]
fn compose_cases() -> Vec<Case> {
    Vec::new()
}

/// Layouts over GPUs, the layout search, published tables and spaces with layouts.
fn cluster_cases() -> Vec<Case> {
    let predict = predict_args;
    let mut cases = Vec::new();
    #[rustfmt::skip]
    let refusals: Vec<(&[&str], &[&str])> = vec![
        (&["--tp", "0"], &["--tp must be positive, got 0"]),
        (&["--tp", "-8"], &["--tp must be positive, got -8"]),
        (&["--tp", "2097152"], &["--tp 2097152 exceeds the limit of 2^20"]),
        (&["--tp", "3"], &["--tp 3 must divide llama-3-8b's 32 attention heads"]),
        (&["--pp", "33"], &["--pp x --virtual-stages = 33 exceeds llama-3-8b's 32 layers"]),
        (&["--pp", "16", "--virtual-stages", "4", "--batch", "16"], &["--pp x --virtual-stages = 64 exceeds"]),
        (&["--virtual-stages", "2"], &["--virtual-stages needs --pp of 2 or more"]),
        (&["--pp", "2", "--virtual-stages", "2", "--batch", "3", "--micro-batch", "1"], &["interleaved schedule needs the microbatches per step (3) to be a multiple of --pp 2"]),
        (&["--dp", "3", "--batch", "4"], &["--batch 4 must be a multiple of --dp 3"]),
        (&["--dp", "2", "--batch", "4", "--micro-batch", "3"], &["--batch 4 must be a multiple of --dp 2 x --micro-batch 3"]),
        (&["--micro-batch", "0"], &["--micro-batch must be positive, got 0"]),
        (&["--ep", "2", "--dp", "2", "--batch", "2"], &["--ep 2 needs a mixture-of-experts model; llama-3-8b is dense"]),
        (&["--ep", "3", "--dp", "4", "--batch", "4"], &["--ep 3 must divide --dp 4"]),
        (&["--cp", "2", "--seq", "4095"], &["--seq 4095 must be a multiple of --cp 2"]),
        (&["--zero", "4"], &["--zero must be 0, 1, 2 or 3, got 4"]),
        (&["--zero", "-1"], &["--zero must be 0, 1, 2 or 3, got -1"]),
        (&["--sequence-parallel"], &["--sequence-parallel needs --tp of 2 or more"]),
        (&["--expert-imbalance", "0.5"], &["--expert-imbalance must be from 1 to 64, got 0.5"]),
        (&["--expert-imbalance", "NaN"], &["--expert-imbalance must be from 1 to 64"]),
        (&["--gpus-per-node", "0"], &["--gpus-per-node must be positive, got 0"]),
        (&["--tp", "1024", "--pp", "1024", "--dp", "1024"], &["--tp x --pp x --dp x --cp", "exceeds the limit of 2^20"]),
        (&["--gpus", "8"], &["--batch 1 must be a multiple of --dp 8"]),
        (&["--gpus", "63", "--tp", "8"], &["--gpus 63 is not --tp x --pp x --cp = 8 times a whole number"]),
        (&["--gpus", "64", "--tp", "8", "--dp", "4"], &["--gpus 64 is not --tp x --pp x --cp = 8 times --dp 4"]),
        (&["--search-parallelism"], &["--gpus"]),
        (&["--gpus", "0", "--search-parallelism"], &["--gpus must be positive, got 0"]),
        (&["--gpus", "4", "--search-parallelism", "--top", "0"], &["--top must be positive, got 0"]),
        (&["--gpus", "2097152", "--search-parallelism"], &["--gpus 2097152 exceeds the limit of 2^20"]),
    ];
    for (i, (extra, needles)) in refusals.iter().enumerate() {
        cases.push(Case {
            name: format!("layout flag {i}: {}", extra.join(" ")),
            files: Vec::new(),
            args: predict(extra),
            in_folder: false,
            expect: refused(needles),
        });
    }
    // The NCCL collective benchmark: refused by name before any device is touched, and on a
    // machine without two GPUs (no driver here) with the reason.
    #[cfg(feature = "measure")]
    {
        #[rustfmt::skip]
        let nccl: Vec<(&str, &[&str], &[&str])> = vec![
            ("collective bench on wgpu", &["bench", "--op", "collective"], &["--op collective runs on --backend cuda"]),
            ("collective bench in bf16", &["bench", "--backend", "cuda", "--op", "collective", "--dtype", "bf16"], &["--dtype bf16 is not offered"]),
            ("collective bench with a shapes file", &["bench", "--backend", "cuda", "--op", "collective", "--shapes", "x.toml"], &["'smoke' or 'sweep'"]),
            ("collective bench without two GPUs", &["bench", "--backend", "cuda", "--op", "collective", "--no-save"], &[]),
        ];
        for (name, args, needles) in nccl {
            cases.push(case(name, Vec::new(), args, refused(needles)));
        }
        // Shape files of attention with its own value width and shared keys and values.
        let mla = |extra: &str| {
            format!(
                "[[attention]]\nheads = 16\nkv_heads = 1\nseq_q = 1\nseq_kv = 9\nhead_dim = 576\nshared_kv = true\n{extra}"
            )
        };
        #[rustfmt::skip]
        let shapes: Vec<(&str, String, &[&str])> = vec![
            ("shared values wider than the keys", mla("v_head_dim = 600\n"), &["shapes.toml: attention[0].v_head_dim: 600 exceeds head_dim 576 with shared_kv"]),
            ("a zero value head dim", mla("v_head_dim = 0\n"), &["shapes.toml: attention[0].v_head_dim: must be positive"]),
            ("shared_kv not a boolean", mla("").replace("shared_kv = true", "shared_kv = 1"), &["shapes.toml", "shared_kv"]),
        ];
        for (name, toml, needles) in shapes {
            cases.push(case(
                name,
                vec![("shapes.toml", text(&toml))],
                &[
                    "bench",
                    "--backend",
                    "cuda",
                    "--op",
                    "attention",
                    "--dtype",
                    "bf16",
                    "--shapes",
                    "{d}/shapes.toml",
                    "--no-save",
                ],
                refused(needles),
            ));
        }
        // Gated-delta scan shapes: read before any device is opened, each entry checked.
        #[rustfmt::skip]
        let scans: Vec<(&str, &str, &[&str])> = vec![
            ("scan key_dim 0", "[[scan]]\nheads = 2\nseq = 64\nkey_dim = 0\n", &["scan[0]", "key_dim must be positive, got 0"]),
            ("scan chunk too long", "[[scan]]\nheads = 2\nseq = 64\nkey_dim = 64\nchunk = 4096\n", &["scan[0]", "chunk 4096 exceeds the limit of 1024"]),
            ("scan heads beyond the limit", "[[scan]]\nheads = 100000\nseq = 64\nkey_dim = 64\n", &["scan[0]", "heads 100000 exceeds the limit of 2^16"]),
            ("scan tensors beyond the limit", "[[scan]]\nbatch = 4294967296\nheads = 65536\nseq = 4294967296\nkey_dim = 64\n", &["scan[0]", "batch x heads x seq x key_dim (q, k)"]),
            ("scan without seq", "[[scan]]\nheads = 2\nkey_dim = 64\n", &["seq"]),
            ("scan with an unknown field", "[[scan]]\nheads = 2\nseq = 8\nkey_dim = 64\ndv = 64\n", &["dv"]),
            ("scan file without scans", "[[matmul]]\nm = 1\nn = 1\nk = 1\n", &["no scan shapes"]),
        ];
        for (name, toml, needles) in scans {
            let args = [
                "bench",
                "--op",
                "scan",
                "--no-save",
                "--shapes",
                "{d}/s.toml",
            ];
            cases.push(case(
                name,
                vec![("s.toml", text(toml))],
                &args,
                refused(needles),
            ));
        }
    }
    // More tensor ranks than key/value heads: the heads are replicated, not refused.
    cases.push(Case {
        name: "tensor ranks beyond the key/value heads".into(),
        files: Vec::new(),
        args: predict(&["--tp", "16", "--format", "json"]),
        in_folder: false,
        expect: Expect::Predict(None),
    });
    // A single card is a node of one: tensor ranks would cross a network it has none of.
    cases.push(Case {
        name: "tensor parallel on single cards".into(),
        files: Vec::new(),
        args: [
            "predict",
            "--model",
            "llama-2-7b",
            "--hw",
            "rtx-4090",
            "--tp",
            "2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        in_folder: false,
        expect: refused(&["rtx-4090 has no network bandwidth in its profile"]),
    });
    // A layout across nodes on a card whose profile has no network: refused by name.
    cases.push(Case {
        name: "layout across nodes without a network".into(),
        files: Vec::new(),
        args: [
            "predict",
            "--model",
            "llama-2-7b",
            "--hw",
            "l40s",
            "--dp",
            "16",
            "--batch",
            "16",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        in_folder: false,
        expect: refused(&["l40s has no network bandwidth in its profile"]),
    });
    // Published tables.
    let table = read("data/published/narayanan2021_table1.json");
    #[rustfmt::skip]
    let tables: Vec<(&str, String, &[&str])> = vec![
        ("published: not JSON", "{".into(), &["t.json"]),
        ("published: no rows", "{\"rows\": []}".into(), &["t.json", "rows", "no rows"]),
        ("published: rows missing", "{}".into(), &["t.json", "rows"]),
        ("published: gpus do not add up", table.replacen("\"num_gpus\": 32", "\"num_gpus\": 31", 1), &["t.json", "rows[0].num_gpus", "31 is not"]),
        ("published: unknown gpu", table.replacen("A100-SXM4-80GB (Selene DGX A100)", "MI300X", 1), &["t.json", "rows[0].gpu", "MI300X"]),
        ("published: bad precision", table.replacen("mixed fp16", "int3", 1), &["t.json", "rows[0].precision"]),
        ("published: negative throughput", table.replacen("\"achieved_tflops_per_gpu\": 137", "\"achieved_tflops_per_gpu\": -137", 1), &["t.json", "rows[0].achieved_tflops_per_gpu"]),
        ("published: string size", table.replacen("\"hidden\": 2304", "\"hidden\": \"2304\"", 1), &["t.json", "hidden"]),
        ("published: heads do not divide", table.replacen("\"attention_heads_recalled\": 24", "\"attention_heads_recalled\": 23", 1), &["GPT-1.7B"]),
    ];
    let serving = read("data/published/trtllm_perf_overview.json");
    #[rustfmt::skip]
    let tables: Vec<(&str, String, &[&str])> = tables.into_iter().chain([
        ("serving table: no rows", "{\"kind\": \"offline-serving\", \"rows\": []}".into(), &["t.json", "rows", "no rows"][..]),
        ("serving table: zero tensor parallel", serving.replacen("\"tensor_parallel\": 1", "\"tensor_parallel\": 0", 1), &["t.json", "rows[0].tensor_parallel", "positive"]),
        ("serving table: huge layout", serving.replacen("\"tensor_parallel\": 1", "\"tensor_parallel\": 4294967296", 1), &["t.json", "rows[0].tensor_parallel", "limit"]),
        ("serving table: unknown gpu", serving.replacen("H200 SXM 141GB", "MI300X", 1), &["t.json", "rows[0].gpu", "MI300X"]),
        ("serving table: bad kv dtype", serving.replacen("\"kv_cache\": \"fp8\"", "\"kv_cache\": \"int3\"", 1), &["t.json", "rows[0].kv_cache"]),
        ("serving table: zero throughput", serving.replacen("\"output_tokens_per_s\": 27911", "\"output_tokens_per_s\": 0", 1), &["t.json", "rows[0].output_tokens_per_s"]),
        ("serving table: unknown field", serving.replacen("\"input_tokens\"", "\"isl\": 1, \"input_tokens\"", 1), &["t.json", "isl"]),
        ("serving table: unknown config", serving.replacen("\"config\": \"llama-3.1-8b\"", "\"config\": \"none.json\"", 1), &["none.json"]),
        ("serving table: does not fit", serving.replacen("\"tensor_parallel\": 8", "\"tensor_parallel\": 1", 1), &["Llama-3.1-405B", "fits"]),
    ]).collect();
    for (name, body, needles) in tables {
        cases.push(case(
            name,
            vec![("t.json", text(&body))],
            &["validate", "--published", "{d}/t.json"],
            refused(needles),
        ));
    }
    cases.push(case(
        "published: no file",
        Vec::new(),
        &["validate", "--published", "{d}/none.json"],
        refused(&["none.json"]),
    ));
    cases.push(case(
        "validate with nothing to validate",
        Vec::new(),
        &["validate"],
        refused(&["--published"]),
    ));
    // Spaces with layouts.
    let space = read("examples/space-dense.toml");
    #[rustfmt::skip]
    let spaces: Vec<(&str, String, &[&str])> = vec![
        ("space: unknown layout field", space.replace("[constraints]", "[workload.training_layout]\ntq = 2\n\n[constraints]"), &["s.toml", "tq"]),
        ("space: layout of the wrong type", space.replace("[constraints]", "[workload.training_layout]\ntp = \"two\"\n\n[constraints]"), &["s.toml", "tp"]),
        ("space: bad zero stage", space.replace("[constraints]", "[workload.training_layout]\nzero = \"stage9\"\n\n[constraints]"), &["s.toml", "zero"]),
        ("space: layout no candidate takes", space.replace("[constraints]", "[workload.training_layout]\ntp = 3\n\n[constraints]"), &["s.toml", "none of the", "--tp 3 must divide"]),
    ];
    for (name, body, needles) in spaces {
        cases.push(case(
            name,
            vec![("s.toml", text(&body))],
            &["frontier", "{d}/s.toml"],
            refused(needles),
        ));
    }
    cases
}

fn all_cases() -> Vec<Case> {
    let mut cases = hf_cases();
    cases.extend(native_cases());
    cases.extend(profile_cases());
    cases.extend(flag_cases());
    cases.extend(cluster_cases());
    cases.extend(record_cases());
    cases.extend(calibration_cases());
    cases.extend(compose_cases());
    cases
}

/// Every number in `v`, with its path.
fn numbers(v: &Value, at: &str, out: &mut Vec<(String, f64)>) {
    match v {
        Value::Number(n) => out.push((at.to_string(), n.as_f64().unwrap_or(f64::NAN))),
        Value::Object(m) => {
            for (k, x) in m {
                numbers(x, &format!("{at}.{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                numbers(x, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Figures that must be numbers (JSON writes a NaN or an infinity as null), finite and positive.
fn check_figures(doc: &Value, required: &[&str]) -> Result<(), String> {
    for p in required {
        let mut v = doc;
        for key in p.split('.') {
            v = &v[key];
        }
        match v.as_f64() {
            Some(x) if x.is_finite() && x > 0.0 => {}
            _ => return Err(format!("{p} is {v}, not a finite positive number")),
        }
    }
    let mut all = Vec::new();
    numbers(doc, "", &mut all);
    match all.iter().find(|(_, x)| !(x.is_finite() && *x >= 0.0)) {
        Some((p, x)) => Err(format!("{p} is {x}")),
        None => Ok(()),
    }
}

const PREDICT_FIGURES: [&str; 17] = [
    "params.total",
    "training.step_time_s",
    "training.tokens_per_s",
    "training.mfu",
    "training.hfu",
    "training.model_flops_per_token",
    "training.hardware_flops_per_step",
    "inference.ttft_s",
    "inference.prefill_tokens_per_s",
    "inference.tpot_s",
    "inference.decode_tokens_per_s",
    "inference.request_latency_s",
    "memory.training.total_bytes",
    "memory.training.activations_bytes",
    "memory.inference.total_bytes",
    "memory.inference.kv_cache_bytes",
    "memory.inference.weights_bytes",
];

const OP_FIGURES: [&str; 4] = ["seconds", "tflops", "flops", "bytes"];

/// Runs one case; Err says what went wrong.
fn run_case(c: &Case, xdg: &Path) -> Result<(), String> {
    let dir = TempDir::new().unwrap();
    let d = dir.path().to_string_lossy().into_owned();
    for (name, bytes) in &c.files {
        let p = dir.path().join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, bytes).unwrap();
    }
    let mut args: Vec<String> = c.args.iter().map(|a| a.replace("{d}", &d)).collect();
    match c.expect {
        Expect::Predict(_) | Expect::PredictOp if !args.contains(&"--format".to_string()) => {
            args.extend(["--format".to_string(), "json".to_string()]);
        }
        _ => {}
    }
    let cwd = if c.in_folder {
        dir.path().to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
    };
    let out = gpucost()
        .args(&args)
        .current_dir(&cwd)
        .env("XDG_RUNTIME_DIR", xdg)
        .env_remove("RUST_BACKTRACE")
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .map_err(|e| format!("cannot run: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stderr.contains("panicked") {
        return Err(format!("panicked: {stderr}"));
    }
    let lines = stderr.lines().count();
    match &c.expect {
        Expect::Refused(needles) => {
            if out.status.code() != Some(2) {
                return Err(format!(
                    "exit {:?}, expected 2; stderr: {stderr}; stdout: {}",
                    out.status.code(),
                    stdout.chars().take(300).collect::<String>()
                ));
            }
            if lines != 1 || !stderr.starts_with("error: ") {
                return Err(format!("expected one 'error:' line, got: {stderr}"));
            }
            for n in needles {
                let n = n.replace("{d}", &d);
                if !stderr.contains(&n) {
                    return Err(format!("stderr lacks '{n}': {stderr}"));
                }
            }
            Ok(())
        }
        expect => {
            if !out.status.success() {
                return Err(format!(
                    "exit {:?}, expected success; stderr: {stderr}",
                    out.status.code()
                ));
            }
            match expect {
                Expect::Predict(warning) => {
                    match warning {
                        None if lines > 0 => return Err(format!("unexpected stderr: {stderr}")),
                        Some(w) if lines != 1 || !stderr.contains(w.as_str()) => {
                            return Err(format!("expected one warning with '{w}': {stderr}"));
                        }
                        _ => {}
                    }
                    let doc: Value = serde_json::from_str(&stdout)
                        .map_err(|e| format!("not JSON ({e}): {stdout}"))?;
                    check_figures(&doc, &PREDICT_FIGURES)
                }
                Expect::PredictOp => {
                    let doc: Value = serde_json::from_str(&stdout)
                        .map_err(|e| format!("not JSON ({e}): {stdout}"))?;
                    check_figures(&doc, &OP_FIGURES)
                }
                Expect::Ok(created) => match created {
                    Some(f) if !dir.path().join(f).is_file() => Err(format!("{f} was not written")),
                    _ => Ok(()),
                },
                Expect::Refused(_) => unreachable!(),
            }
        }
    }
}

/// The whole table, on every core: every case refused in one line naming the input with exit 2,
/// or answered with finite, positive figures; nothing panics.
#[test]
fn bad_input_table() {
    let cases = all_cases();
    eprintln!("{} bad-input cases", cases.len());
    #[cfg(feature = "measure")]
    assert!(cases.len() >= 200, "only {} cases", cases.len());
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names repeat");
    let xdg = TempDir::new().unwrap();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(c) = cases.get(i) else { break };
                    if let Err(e) = run_case(c, xdg.path()) {
                        failures.lock().unwrap().push(format!("{}: {e}", c.name));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// No command writes into the repository's tracked hw_profiles/ or results/ by default.
#[cfg(feature = "measure")]
#[test]
fn calibrate_by_default_leaves_hw_profiles_alone() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let before = fs::read(root.join("hw_profiles/lavapipe.calibration.json")).unwrap();
    let dir = TempDir::new().unwrap();
    common::run_ok(
        gpucost()
            .current_dir(dir.path())
            .args(["calibrate", "--results"])
            .arg(root.join(
                "results/llvmpipe-llvm-15-0-6-256-bits/wgpu-matmul-fp32-1795708870804.jsonl",
            )),
    );
    assert!(
        dir.path()
            .join("gpucost-calibrations/lavapipe.calibration.json")
            .is_file()
    );
    assert_eq!(
        fs::read(root.join("hw_profiles/lavapipe.calibration.json")).unwrap(),
        before
    );
}

/// A context beyond the model's positions is answered with one warning naming the model.
#[test]
fn a_context_beyond_the_positions_warns() {
    let out = gpucost()
        .args([
            "predict", "--model", "gpt2", "--hw", "h100-sxm", "--seq", "4096", "--prompt", "512",
            "--gen", "64",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        "warning: --seq 4096 exceeds gpt2's max_position_embeddings of 1024 (models/gpt2.json); predicting anyway"
    );
    let out = gpucost()
        .args([
            "predict", "--model", "gpt2", "--hw", "h100-sxm", "--seq", "1024", "--prompt", "512",
            "--gen", "64",
        ])
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty());
}
