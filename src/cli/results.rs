//! `gpucost results merge`: results folders from several machines (a Slurm array's nodes, a
//! colleague's runs) combined into one, each device in its own folder, each record once.

use crate::error::Error;
use crate::measure::records::{self, Record};
use anyhow::Result;
use clap::{Args, Subcommand};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum ResultsCommand {
    /// Combine results folders into --out: every record once, per device, schemas checked.
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Results folders or files to merge.
    #[arg(required = true)]
    sources: Vec<PathBuf>,
    /// The merged folder: <out>/<device>/merged.jsonl, rewritten whole with what it held plus
    /// the sources' records (so merging again adds nothing).
    #[arg(long)]
    out: PathBuf,
}

/// The file a device's merged records go to.
const MERGED: &str = "merged.jsonl";

pub fn run(cmd: ResultsCommand) -> Result<()> {
    match cmd {
        ResultsCommand::Merge(a) => merge(a),
    }
}

fn merge(a: MergeArgs) -> Result<()> {
    if a.out.is_file() {
        return Err(Error::File {
            file: a.out.display().to_string(),
            message: "--out must be a folder, not a file".into(),
        }
        .into());
    }
    // Keyed by the record's own JSON: the same measurement from two folders is one record.
    let mut by_device: BTreeMap<String, BTreeMap<String, Record>> = BTreeMap::new();
    let mut inputs = a.sources.clone();
    if a.out.is_dir() {
        inputs.push(a.out.clone());
    }
    let mut files = BTreeSet::new();
    let mut read = 0usize;
    for source in &inputs {
        if !source.exists() {
            return Err(Error::File {
                file: source.display().to_string(),
                message: "no such file or folder".into(),
            }
            .into());
        }
        for file in records::find_files(source)? {
            if !files.insert(file.canonicalize().unwrap_or(file.clone())) {
                continue;
            }
            let outcome = records::read(&file)?;
            if let Some(line) = outcome.truncated_last_line {
                eprintln!(
                    "warning: {}: line {line} is incomplete (an interrupted write); left out",
                    file.display()
                );
            }
            for r in outcome.records {
                read += 1;
                let key = serde_json::to_string(&r)?;
                by_device.entry(r.device.slug()).or_default().insert(key, r);
            }
        }
    }
    let mut written = 0usize;
    for (device, set) in &by_device {
        let mut text = String::new();
        for key in set.keys() {
            text.push_str(key);
            text.push('\n');
        }
        records::write_atomically(&a.out.join(device).join(MERGED), &text)?;
        written += set.len();
    }
    eprintln!(
        "{} records read from {} files; {written} distinct records of {} devices in {}",
        read,
        files.len(),
        by_device.len(),
        a.out.display()
    );
    Ok(())
}
