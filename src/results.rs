//! The results store: JSON Lines, one file per device and run under `results/<device-slug>/`.
//! Every record stands alone (when, where, what, how correct, how fast). Each record is written
//! with one `write` and flushed to disk before the next is measured, so an interrupted sweep
//! loses at most the record in flight; reading reports a truncated last line instead of failing.

use crate::backend::DeviceInfo;
use crate::bench::Correctness;
use crate::bench::stats::Summary;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Version of the record schema. Bump on any breaking change.
pub const RECORD_SCHEMA_VERSION: u32 = 1;

/// One measured (or failed) kernel variant on one shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub schema_version: u32,
    pub unix_time_s: f64,
    pub git_revision: String,
    pub host: String,
    pub device: DeviceInfo,
    /// The op spec with its shape and dtypes (`{"op": "matmul", "batch": …}`).
    pub op: crate::ops::Op,
    pub variant: String,
    /// Whether the variant is a vendor library rather than one of ours.
    pub vendor_library: bool,
    pub correctness: Correctness,
    pub timing: Option<Timing>,
    /// Filled by backends that read telemetry (NVML on NVIDIA).
    pub telemetry: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub clock: crate::backend::Clock,
    pub warmup_runs: usize,
    pub summary: Summary,
    pub samples_s: Vec<f64>,
    /// FLOPs ÷ median time.
    pub flops_per_s: f64,
    /// Minimum bytes ÷ median time.
    pub bytes_per_s: f64,
    /// Roofline time from the device's profile ÷ median time, where a profile matches the device.
    pub roofline_fraction: Option<f64>,
}

/// Appends records to one file, each durable before the next is written.
pub struct Writer {
    file: File,
    path: PathBuf,
}

impl Writer {
    /// Creates `dir/<device-slug>/<stem>.jsonl`, never overwriting an existing file.
    pub fn create(dir: &Path, device_slug: &str, stem: &str) -> Result<Writer> {
        let folder = dir.join(device_slug);
        std::fs::create_dir_all(&folder).map_err(|e| Error::File {
            file: folder.display().to_string(),
            message: format!("cannot create: {e}"),
        })?;
        let path = folder.join(format!("{stem}.jsonl"));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::File {
                file: path.display().to_string(),
                message: format!("cannot create: {e}"),
            })?;
        Ok(Writer { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&mut self, record: &Record) -> Result<()> {
        let mut line = serde_json::to_string(record).map_err(|e| Error::File {
            file: self.path.display().to_string(),
            message: format!("cannot encode record: {e}"),
        })?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|e| Error::File {
                file: self.path.display().to_string(),
                message: format!("cannot write: {e}"),
            })
    }
}

/// What reading a results file found.
#[derive(Debug)]
pub struct ReadOutcome {
    pub records: Vec<Record>,
    /// A last line that did not parse (an interrupted write), reported, not fatal.
    pub truncated_last_line: Option<usize>,
}

/// Reads a JSON Lines results file. A bad line in the middle is an error naming the line; a bad
/// last line is reported as truncated.
pub fn read(path: &Path) -> Result<ReadOutcome> {
    let text = crate::error::read_to_string(path)?;
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::new();
    let mut truncated_last_line = None;
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(r) => records.push(r),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {
                truncated_last_line = Some(i + 1)
            }
            Err(e) => {
                return Err(Error::field(
                    &path.display().to_string(),
                    &format!("line {}", i + 1),
                    format!("not a valid record: {e}"),
                ));
            }
        }
    }
    Ok(ReadOutcome {
        records,
        truncated_last_line,
    })
}

/// The git revision the binary was built from (set by build.rs), or "unknown".
pub fn git_revision() -> String {
    option_env!("GPUCOST_GIT_REVISION")
        .unwrap_or("unknown")
        .to_string()
}

/// This machine's host name, or "unknown".
pub fn host() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}
