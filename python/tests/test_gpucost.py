"""Tests of the gpucost Python package against the gpucost command line.

Run: python3 python/tests/test_gpucost.py (after `pip install ./python`). The command line is
GPUCOST_BIN, else target/debug/gpucost (under CARGO_TARGET_DIR if set; built by `cargo build`
if missing).
"""

import json
import math
import os
import subprocess
import sys

import gpucost

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPACE = "examples/space-dense.toml"
GOOD = {"layers": 24, "hidden_size": 3072, "heads": 24, "kv_heads": 8, "mlp_ratio": 3.5}


def cli_path():
    target = os.path.join(ROOT, os.environ.get("CARGO_TARGET_DIR") or "target")
    path = os.environ.get("GPUCOST_BIN") or os.path.join(target, "debug", "gpucost")
    if not os.path.exists(path):
        subprocess.run(["cargo", "build", "--quiet"], cwd=ROOT, check=True)
    return path


def cli(args, stdin=None):
    """Runs the command line in the repository root: (exit code, stdout, stderr)."""
    out = subprocess.run(
        [cli_path(), *args], cwd=ROOT, input=stdin, capture_output=True, text=True
    )
    return out.returncode, out.stdout, out.stderr


def cli_error(args):
    """The one-line message the command line refuses `args` with (exit code 2)."""
    code, _, err = cli(args)
    assert code == 2, (args, code, err)
    line = err.strip()
    assert "\n" not in line and line.startswith("error: "), err
    return line[len("error: "):]


def raises_value_error(f, *args, **kwargs):
    try:
        f(*args, **kwargs)
    except ValueError as e:
        return str(e)
    raise AssertionError(f"{f.__name__}{args} raised no ValueError")


def finite_positive(doc, path):
    v = doc
    for key in path.split("."):
        v = v[key]
    assert isinstance(v, (int, float)) and math.isfinite(v) and v > 0, (path, v)


def test_score_equals_the_score_stream():
    candidates = [
        GOOD,
        {"layers": 32, "hidden_size": 4096, "heads": 32, "kv_heads": 8, "dtype": "fp8-e4m3"},
        {},
        {"layers": 16, "hidden_size": 2048, "heads": 16, "kv_heads": 4, "mlp_ratio": 4.0},
    ]
    stdin = "".join(json.dumps(c) + "\n" for c in candidates)
    code, out, err = cli(["score", "--space", SPACE], stdin)
    assert code == 0, err
    expected = [json.loads(line) for line in out.splitlines()]
    got = gpucost.score(candidates, space=SPACE)
    assert len(got) == len(candidates) == len(expected)
    assert got == expected, (got, expected)
    objectives = got[0]["objectives"]
    for name in ["loss", "training_gpu_hours", "tpot_s", "params_total"]:
        assert math.isfinite(objectives[name]) and objectives[name] > 0, name
    assert got[0]["loss_source"] == "scaling_law"


def test_bad_candidates_get_an_error_in_their_slot():
    candidates = [GOOD, {"layers": "x"}, {"colour": 1}, {"heads": 7}, [1, 2], GOOD]
    stdin = "".join(json.dumps(c) + "\n" for c in candidates)
    code, out, err = cli(["score", "--space", SPACE], stdin)
    assert code == 0, err
    expected = [json.loads(line) for line in out.splitlines()]
    got = gpucost.score(candidates, space=SPACE)
    assert len(got) == len(candidates)
    assert "error" not in got[0] and got[5] == got[0]
    for i in range(1, 5):
        assert set(got[i]) == {"error"}, got[i]
        # The same reason as the stream's, which counts lines from 1.
        assert got[i]["error"].startswith(f"candidate {i}: "), got[i]
        stream = expected[i]["error"]
        assert stream.startswith(f"line {i + 1}: "), stream
        assert got[i]["error"].split(": ", 1)[1] == stream.split(": ", 1)[1]
    assert "layers" in got[1]["error"] and "colour: unknown field" in got[2]["error"]
    # A value JSON cannot hold is refused in its slot too.
    nan = gpucost.score([{"mlp_ratio": float("nan")}, GOOD], space=SPACE)
    assert nan[0]["error"].startswith("candidate 0: not JSON"), nan[0]
    assert nan[1] == got[0]


def test_score_takes_a_space_as_text():
    with open(os.path.join(ROOT, SPACE)) as f:
        text = f.read()
    assert gpucost.score([GOOD], space_toml=text) == gpucost.score([GOOD], space=SPACE)
    message = raises_value_error(gpucost.score, [GOOD], space_toml="name = 1\n")
    assert message.startswith("space_toml: "), message
    raises_value_error(gpucost.score, [GOOD])
    raises_value_error(gpucost.score, [GOOD], space=SPACE, space_toml=text)


def test_predict_equals_the_command_line():
    doc = gpucost.predict("llama-3-8b", "h100-sxm")
    for key in ["schema_version", "model", "hardware", "params", "training", "inference",
                "memory", "provenance"]:
        assert key in doc, key
    for path in ["training.step_time_s", "training.tokens_per_s", "training.mfu",
                 "inference.ttft_s", "inference.tpot_s", "inference.decode_tokens_per_s",
                 "params.total", "memory.training.total_bytes", "memory.inference.total_bytes"]:
        finite_positive(doc, path)
    assert doc["model"]["name"] == "llama-3-8b"
    code, out, err = cli(["predict", "--model", "llama-3-8b", "--hw", "h100-sxm",
                          "--format", "json"])
    assert code == 0, err
    assert doc == json.loads(out)
    # Flags by their Python names.
    kwargs = {"dtype": "fp8-e4m3", "batch": 8, "seq": 2048, "prompt": 512, "gen": 64,
              "recompute": "full", "fused_attention": False, "price_per_hour": 3.0}
    flags = ["--dtype", "fp8-e4m3", "--batch", "8", "--seq", "2048", "--prompt", "512",
             "--gen", "64", "--recompute", "full", "--no-fused-attention",
             "--price-per-hour", "3"]
    code, out, err = cli(["predict", "--model", "mistral-7b", "--hw", "h100-sxm",
                          "--format", "json", *flags])
    assert code == 0, err
    assert gpucost.predict("mistral-7b", "h100-sxm", **kwargs) == json.loads(out)


def test_speculative_decoding_equals_the_command_line():
    model = os.path.join(ROOT, "tests", "fixtures", "deepseek-v3.json")
    code, out, err = cli(["predict", "--model", model, "--hw", "h200-sxm",
                          "--speculative-acceptance", "0.8", "--format", "json"])
    assert code == 0, err
    doc = gpucost.predict(model, "h200-sxm", speculative_acceptance=0.8)
    assert doc == json.loads(out)
    assert doc["inference"]["tpot_s"] != gpucost.predict(model, "h200-sxm")["inference"]["tpot_s"]


def test_predict_takes_a_config_as_a_dict():
    path = os.path.join(ROOT, "models", "Meta-Llama-3-8B.json")
    with open(path) as f:
        config = json.load(f)
    by_dict = gpucost.predict(config, "h100-sxm")
    by_path = gpucost.predict(path, "h100-sxm")
    assert by_dict["training"] == by_path["training"]
    assert by_dict["inference"] == by_path["inference"]
    del config["num_attention_heads"]
    message = raises_value_error(gpucost.predict, config, "h100-sxm")
    assert message.startswith("model: num_attention_heads"), message


def test_bad_input_raises_the_command_lines_message():
    cases = [
        (("llama-9", "h100-sxm"), {}, ["--model", "llama-9", "--hw", "h100-sxm"]),
        (("gpt2", "b200"), {}, ["--model", "gpt2", "--hw", "b200"]),
        (("gpt2", "h100-sxm"), {"batch": -1}, ["--model", "gpt2", "--hw", "h100-sxm",
                                               "--batch", "-1"]),
        (("gpt2", "h100-sxm"), {"gen": 16777217}, ["--model", "gpt2", "--hw", "h100-sxm",
                                                   "--gen", "16777217"]),
        (("gpt2", "h100-sxm"), {"dtype": "fp64"}, ["--model", "gpt2", "--hw", "h100-sxm",
                                                   "--dtype", "fp64"]),
        (("gpt2", "h100-sxm"), {"stack": "cuda:nope"}, ["--model", "gpt2", "--hw", "h100-sxm",
                                                        "--stack", "cuda:nope"]),
        (("gpt2", "h100-sxm"), {"price_per_hour": -1.0}, ["--model", "gpt2", "--hw",
                                                          "h100-sxm", "--price-per-hour", "-1"]),
    ]
    for args, kwargs, flags in cases:
        message = raises_value_error(gpucost.predict, *args, **kwargs)
        assert message == cli_error(["predict", *flags]), (message, flags)
    assert "unknown model 'llama-9'" in raises_value_error(gpucost.predict, "llama-9", "h100-sxm")
    message = raises_value_error(gpucost.predict, "gpt2", "h100-sxm", batch=True)
    assert message.startswith("predict: batch: invalid type"), message
    message = raises_value_error(gpucost.predict, "gpt2", "h100-sxm", price_per_hour=math.inf)
    assert "price_per_hour" in message, message


def test_frontier_equals_the_command_line():
    doc = gpucost.frontier(SPACE)
    candidates = doc["candidates"]
    assert len(candidates) == doc["valid"] > 0
    assert all("pareto_rank" in c and "fields" in c and "objectives" in c for c in candidates)
    front = [c for c in candidates if c["pareto_rank"] == 0]
    assert len(front) == doc["frontier_size"] > 0
    assert all(c["possibly_optimal"] for c in front)
    code, out, err = cli(["frontier", SPACE, "--format", "json", "--top", "0"])
    assert code == 0, err
    assert doc == json.loads(out)
    top = gpucost.frontier(SPACE, top=3)
    assert top["candidates"] == candidates[:3]
    message = raises_value_error(gpucost.frontier, "examples/none.toml")
    assert message == cli_error(["frontier", "examples/none.toml"]), message


def test_layouts_equal_the_command_line():
    layout = {"tp": 8, "pp": 2, "dp": 2, "sequence_parallel": True, "zero": "stage1"}
    doc = gpucost.predict("llama-3-8b", "h100-sxm", batch=64, layout=layout)
    code, out, err = cli(["predict", "--model", "llama-3-8b", "--hw", "h100-sxm", "--batch",
                          "64", "--tp", "8", "--pp", "2", "--dp", "2", "--sequence-parallel",
                          "--zero", "1", "--format", "json"])
    assert code == 0, err
    assert doc == json.loads(out)
    assert doc["cluster"]["micro_batch_size"] == 1
    assert doc["cluster"]["training_gpus"] == 32
    message = raises_value_error(gpucost.predict, "llama-3-8b", "h100-sxm", layout={"tp": 3})
    assert "--tp 3 must divide" in message, message
    message = raises_value_error(gpucost.predict, "llama-3-8b", "h100-sxm", layout={"tq": 3})
    assert "tq" in message, message


def test_search_layouts_equals_the_command_line():
    found = gpucost.search_layouts("llama-2-13b", "a100-sxm-80gb", 16, top=4, batch=64,
                                   seq=2048, recompute="full")
    code, out, err = cli(["predict", "--model", "llama-2-13b", "--hw", "a100-sxm-80gb",
                          "--batch", "64", "--seq", "2048", "--recompute", "full", "--gpus",
                          "16", "--search-parallelism", "--top", "4", "--format", "json"])
    assert code == 0, err
    assert found == json.loads(out)
    assert 1 <= len(found["layouts"]) <= 4
    message = raises_value_error(gpucost.search_layouts, "mixtral-8x7b", "h100-sxm", 1)
    assert "no layout of 1 GPUs fits" in message, message


def test_offline_throughput_equals_the_command_line():
    got = gpucost.offline_throughput("llama-3.1-70b", "h100-sxm", dtype="fp8", kv_dtype="fp8",
                                     prompt=1000, gen=1000, layout={"tp": 2})
    code, out, err = cli(["predict", "--model", "llama-3.1-70b", "--hw", "h100-sxm", "--dtype",
                          "fp8", "--kv-dtype", "fp8", "--prompt", "1000", "--gen", "1000",
                          "--tp", "2", "--offline-throughput", "--format", "json"])
    assert code == 0, err
    assert got == json.loads(out)
    assert got["offline"]["concurrency"] > 1
    message = raises_value_error(gpucost.offline_throughput, "llama-3.1-70b", "h100-sxm")
    assert "fits" in message, message


def test_a_context_past_the_models_positions_warns():
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gpucost.predict("gpt2", "h100-sxm", seq=2048, prompt=1024, gen=16)
    assert any("max_position_embeddings" in str(w.message) for w in caught), caught


def main():
    tests = [(name, f) for name, f in globals().items() if name.startswith("test_")]
    for name, f in tests:
        f()
        print(f"ok  {name}")
    print(f"{len(tests)} tests passed (gpucost {gpucost.__version__})")


if __name__ == "__main__":
    sys.exit(main())
