//! `gpucost report`: the summary table of results files, each row beside the vendor library's
//! time for the same shape and dtype (PyTorch SDPA records appended by
//! scripts/reference_torch.py join the CUDA attention rows this way).

use super::bench::summary_table;
use crate::error::Error;
use crate::results;
use anyhow::Result;
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A results .jsonl file, or a folder searched for them.
    #[arg(long)]
    results: PathBuf,
}

fn jsonl_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    if path.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let entries = std::fs::read_dir(path).map_err(|e| Error::File {
        file: path.display().to_string(),
        message: format!("cannot read: {e}"),
    })?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            jsonl_files(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "jsonl") {
            out.push(p);
        }
    }
    Ok(())
}

pub fn run(a: ReportArgs) -> Result<()> {
    let mut files = Vec::new();
    jsonl_files(&a.results, &mut files)?;
    if files.is_empty() {
        return Err(Error::File {
            file: a.results.display().to_string(),
            message: "no .jsonl results files".into(),
        }
        .into());
    }
    let mut out = String::new();
    for f in files {
        let read = results::read(&f)?;
        let Some(first) = read.records.first() else {
            continue;
        };
        outln!(
            out,
            "{} — {} ({}, driver {}), {} records",
            f.display(),
            first.device.name,
            first.device.backend,
            first.device.driver,
            read.records.len()
        );
        if let Some(line) = read.truncated_last_line {
            outln!(
                out,
                "note: line {line} is truncated (an interrupted write) and was skipped"
            );
        }
        outln!(out, "{}", summary_table(&read.records));
    }
    super::emit(&out)
}
