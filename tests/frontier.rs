//! The frontier and the score stream through the real binary.

mod common;

use common::{gpucost, path, run_json, run_ok, user_error};
use serde_json::Value;

fn frontier_json(space: &str, extra: &[&str]) -> Value {
    run_json(
        gpucost()
            .args(["frontier", space, "--format", "json", "--top", "0"])
            .args(extra),
    )
}

/// a is at least as good as b in every objective and better in one.
fn dominates(a: &[f64], b: &[f64], minimize: &[bool]) -> bool {
    let mut better = false;
    for ((x, y), &min) in a.iter().zip(b).zip(minimize) {
        let (x, y) = if min { (*x, *y) } else { (-*x, -*y) };
        if x > y {
            return false;
        }
        better |= x < y;
    }
    better
}

#[test]
fn the_dense_example_space_has_an_undominated_frontier() {
    let doc = frontier_json(&path("examples/space-dense.toml"), &[]);
    let goals: Vec<(String, bool)> = doc["objectives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap().to_string(),
                o["sense"] == "minimize",
            )
        })
        .collect();
    let minimize: Vec<bool> = goals.iter().map(|g| g.1).collect();
    let cands = doc["candidates"].as_array().unwrap();
    assert_eq!(cands.len() as u64, doc["valid"].as_u64().unwrap());
    let values: Vec<Vec<f64>> = cands
        .iter()
        .map(|c| {
            goals
                .iter()
                .map(|(n, _)| c["objectives"][n].as_f64().unwrap())
                .collect()
        })
        .collect();
    let frontier: Vec<usize> = (0..cands.len())
        .filter(|&i| cands[i]["pareto_rank"] == 0)
        .collect();
    assert!(!frontier.is_empty());
    assert_eq!(
        frontier.len() as u64,
        doc["frontier_size"].as_u64().unwrap()
    );
    for &i in &frontier {
        assert!(cands[i]["possibly_optimal"].as_bool().unwrap());
        for v in &values {
            assert!(!dominates(v, &values[i], &minimize));
        }
    }
    for (i, c) in cands.iter().enumerate() {
        if c["pareto_rank"] != 0 {
            assert!(
                frontier
                    .iter()
                    .any(|&f| dominates(&values[f], &values[i], &minimize))
            );
        }
        // Every objective of every candidate is a finite number or null, never NaN text.
        for (_, v) in c["objectives"].as_object().unwrap() {
            assert!(v.is_null() || v.as_f64().is_some_and(f64::is_finite), "{v}");
        }
    }
    // Left-out candidates are counted by reason.
    let invalid: u64 = doc["invalid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        invalid + doc["valid"].as_u64().unwrap(),
        doc["drawn"].as_u64().unwrap()
    );
}

#[test]
fn tables_csv_and_plots_render() {
    let dir = tempfile::TempDir::new().unwrap();
    let svg = dir.path().join("frontier.svg");
    let out = run_ok(
        gpucost()
            .args([
                "frontier",
                &path("examples/space-moe.toml"),
                "--top",
                "5",
                "--plot",
            ])
            .arg(&svg),
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("possibly optimal") && table.contains("loss ↓"),
        "{table}"
    );
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    let csv = run_ok(gpucost().args([
        "frontier",
        &path("examples/space-dense.toml"),
        "--format",
        "csv",
        "--top",
        "3",
    ]));
    let text = String::from_utf8_lossy(&csv.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    let header: Vec<&str> = lines[0].split(',').collect();
    assert!(header.contains(&"pareto_rank") && header.contains(&"loss"));
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.split(',').count() == header.len())
    );
}

#[test]
fn a_space_where_nothing_is_valid_says_why() {
    let dir = tempfile::TempDir::new().unwrap();
    let space = dir.path().join("space.toml");
    std::fs::write(
        &space,
        r#"base = "llama-3-8b"
[grid]
layers = [32, 40]
[workload]
hw = "h100-sxm"
training_tokens = 1e11
[constraints]
params_max = 1e6
[objectives]
minimize = ["loss", "tpot_s"]
"#,
    )
    .unwrap();
    let e = user_error(&["frontier", space.to_str().unwrap()]);
    assert!(
        e.contains("none of the 2 candidates is valid") && e.contains("params_max"),
        "{e}"
    );
    // A mixture-of-experts space must say which parameter count the scaling law takes.
    std::fs::write(
        &space,
        r#"base = "mixtral-8x7b"
[grid]
top_k = [1, 2]
[workload]
hw = "h100-sxm"
training_tokens = 1e11
[objectives]
minimize = ["loss", "tpot_s"]
"#,
    )
    .unwrap();
    let e = user_error(&["frontier", space.to_str().unwrap()]);
    assert!(e.contains("quality.moe_parameters"), "{e}");
}

#[test]
fn the_score_stream_answers_every_line_in_order() {
    let lines = [
        r#"{"layers": 24, "hidden_size": 3072, "heads": 24, "kv_heads": 8}"#,
        r#"{"layers": "many"}"#,
        "not json",
        r#"{"depth": 3}"#,
        r#"{"layers": 32, "dtype": "fp8-e4m3"}"#,
        r#"{"layers": 32, "dtype": "bf16"}"#,
    ];
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let out = gpucost()
        .args(["score", "--space", &path("examples/space-dense.toml")])
        .write_stdin(input)
        .output()
        .unwrap();
    assert!(out.status.success());
    let answers: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), lines.len());
    for i in [0, 4] {
        let loss = answers[i]["objectives"]["loss"].as_f64().unwrap();
        assert!(loss.is_finite() && loss > 1.0, "{}", answers[i]);
        assert!(answers[i]["objectives"]["tpot_s"].as_f64().unwrap() > 0.0);
    }
    assert!(
        answers[1]["error"]
            .as_str()
            .unwrap()
            .starts_with("line 2: layers")
    );
    assert!(answers[2]["error"].as_str().unwrap().starts_with("line 3"));
    assert!(
        answers[3]["error"]
            .as_str()
            .unwrap()
            .contains("depth: unknown field")
    );
    // fp8 weights are half the bytes of bf16: decoding the same model is faster.
    let tpot = |i: usize| answers[i]["objectives"]["tpot_s"].as_f64().unwrap();
    assert!(tpot(4) < tpot(5), "{} vs {}", tpot(4), tpot(5));
}

/// Measured losses replace the scaling law for the candidates they match, and say so.
#[test]
fn measured_losses_replace_the_proxy() {
    let dir = tempfile::TempDir::new().unwrap();
    std::fs::write(
        dir.path().join("losses.csv"),
        "layers,hidden_size,loss\n16,2048,3.25\n24,2048,3.125\n",
    )
    .unwrap();
    let space = dir.path().join("space.toml");
    std::fs::write(
        &space,
        r#"base = "llama-3-8b"
[grid]
layers = [16, 24, 32]
hidden_size = [2048, 4096]
[workload]
hw = "h100-sxm"
training_tokens = 1e11
[quality]
measured = "losses.csv"
[objectives]
minimize = ["loss", "tpot_s"]
"#,
    )
    .unwrap();
    let doc = frontier_json(space.to_str().unwrap(), &[]);
    let cands = doc["candidates"].as_array().unwrap();
    assert_eq!(cands.len(), 6);
    for c in cands {
        let (l, h) = (
            c["fields"]["layers"].as_u64().unwrap(),
            c["fields"]["hidden_size"].as_u64().unwrap(),
        );
        let loss = c["objectives"]["loss"].as_f64().unwrap();
        match (l, h) {
            (16, 2048) => assert_eq!(
                (loss, c["loss_source"].as_str().unwrap()),
                (3.25, "measured")
            ),
            (24, 2048) => assert_eq!(
                (loss, c["loss_source"].as_str().unwrap()),
                (3.125, "measured")
            ),
            _ => {
                assert_eq!(c["loss_source"], "scaling_law");
                assert!(loss < 3.0, "{loss}");
            }
        }
    }
    // A bad row is named by file and line.
    std::fs::write(dir.path().join("losses.csv"), "layers,loss\n16,-2\n").unwrap();
    let e = user_error(&["frontier", space.to_str().unwrap()]);
    assert!(
        e.contains("losses.csv") && e.contains("line 2: loss"),
        "{e}"
    );
}
