//! `gpucost report`: the summary table of results files, each row beside the vendor library's
//! time for the same shape and dtype (PyTorch SDPA records appended by
//! scripts/reference_torch.py join the CUDA attention rows this way).

use super::bench::summary_table;
use crate::error::Error;
use crate::measure::records;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A results .jsonl file, or a folder searched for them.
    #[arg(long)]
    results: PathBuf,
}

pub fn run(a: ReportArgs) -> Result<()> {
    let files = records::find_files(&a.results)?;
    if files.is_empty() {
        return Err(Error::File {
            file: a.results.display().to_string(),
            message: "no .jsonl results files".into(),
        }
        .into());
    }
    let mut out = String::new();
    let count = files.len();
    for f in files {
        let read = records::read(&f)?;
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
    if out.is_empty() {
        return Err(Error::File {
            file: a.results.display().to_string(),
            message: format!(
                "no records in {count} results file{}",
                if count == 1 { "" } else { "s" }
            ),
        }
        .into());
    }
    super::emit(&out)
}
