//! Every kind of bad input gets one line on stderr naming the file and the field, and exit code 2.

mod common;
use common::{gpucost, path, user_error};
use std::fs;
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
