//! `gpucost results merge`: several machines' results folders into one, each record once.

#![cfg(feature = "measure")]

mod common;
use common::gpucost;
use std::fs;

fn merge(sources: &[&std::path::Path], out: &std::path::Path) -> std::process::Output {
    gpucost()
        .args(["results", "merge"])
        .args(sources)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// Merging the same records from two folders keeps each once; merging again changes nothing.
#[test]
fn merge_is_idempotent_and_deduplicates() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let device = root.join("results/llvmpipe-llvm-15-0-6-256-bits");
    let file = fs::read_dir(&device)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .min()
        .unwrap();
    let lines = fs::read_to_string(&file).unwrap().lines().count();
    let dir = tempfile::TempDir::new().unwrap();
    let (a, b, out) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("m"),
    );
    for d in [&a, &b] {
        fs::create_dir_all(d).unwrap();
        fs::copy(&file, d.join("run.jsonl")).unwrap();
    }
    let o = merge(&[&a, &b], &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let merged = out.join("llvmpipe-llvm-15-0-6-256-bits/merged.jsonl");
    let first = fs::read(&merged).unwrap();
    assert_eq!(String::from_utf8_lossy(&first).lines().count(), lines);
    // Again, and with the merged folder as a source: the same bytes.
    assert!(merge(&[&a, &b], &out).status.success());
    assert!(merge(&[&out, &a], &out).status.success());
    assert_eq!(fs::read(&merged).unwrap(), first);
}

/// A record of another schema version is refused by file and line; nothing is written.
#[test]
fn merge_refuses_another_schema() {
    let dir = tempfile::TempDir::new().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("old.jsonl"), "{\"schema_version\": 99}\n").unwrap();
    let out = dir.path().join("m");
    let o = merge(&[&src], &out);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("old.jsonl") && stderr.contains("line 1"),
        "{stderr}"
    );
    assert!(stderr.contains("schema_version is 99"), "{stderr}");
    assert!(!out.exists());
}
