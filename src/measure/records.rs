//! The results store: JSON Lines, one file per device and run under `results/<device-slug>/`.
//! Every record stands alone (when, where, what, how correct, how fast). Each record is written
//! with one `write` and flushed to disk before the next is measured, so an interrupted sweep
//! loses at most the record in flight; reading reports a truncated last line instead of failing.

use crate::error::{Error, Result};
use crate::measure::backend::DeviceInfo;
use crate::measure::harness::stats::Summary;
use crate::measure::harness::{Correctness, MeasuredTelemetry};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Version of the record format (see `schema::RECORD`).
pub const RECORD_SCHEMA_VERSION: u32 = crate::model::schema::RECORD;

/// One measured (or failed) kernel variant on one shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub schema_version: u32,
    pub unix_time_s: f64,
    pub git_revision: String,
    pub host: String,
    pub device: DeviceInfo,
    /// The op spec with its shape and dtypes (`{"op": "matmul", "batch": …}`).
    pub op: crate::model::ops::Op,
    pub variant: String,
    /// Whether the variant is a vendor library rather than one of ours.
    pub vendor_library: bool,
    pub correctness: Correctness,
    pub timing: Option<Timing>,
    /// Filled by backends that read telemetry (NVML on NVIDIA).
    pub telemetry: Option<MeasuredTelemetry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub clock: crate::measure::backend::Clock,
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

impl Record {
    /// Whether power or heat held the clocks down around this record's samples.
    pub fn throttled(&self) -> bool {
        self.telemetry.as_ref().is_some_and(|t| t.throttled)
    }

    /// What a reader relies on: the supported schema, an op within `limits`, finite positive
    /// times and a consistent summary. The error says which field and why.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.schema_version != RECORD_SCHEMA_VERSION {
            return Err(format!(
                "schema_version is {}, this gpucost reads {RECORD_SCHEMA_VERSION}",
                self.schema_version
            ));
        }
        if !self.unix_time_s.is_finite() {
            return Err(format!(
                "unix_time_s must be a finite number, got {}",
                self.unix_time_s
            ));
        }
        self.op.check().map_err(|e| format!("op: {e}"))?;
        let c = &self.correctness;
        if !(c.max_rel_error.is_finite() && c.max_rel_error >= 0.0) && c.pass {
            return Err(format!(
                "correctness.max_rel_error must be a non-negative number when pass is true, got {}",
                c.max_rel_error
            ));
        }
        if !(c.tolerance.is_finite() && c.tolerance > 0.0) {
            return Err(format!(
                "correctness.tolerance must be a positive number, got {}",
                c.tolerance
            ));
        }
        if let Some(t) = &self.timing {
            t.check()?;
        }
        if let Some(e) = self.telemetry.as_ref().and_then(|t| t.energy_per_run_j)
            && !(e.is_finite() && e >= 0.0)
        {
            return Err(format!(
                "telemetry.energy_per_run_j must be a non-negative number, got {e}"
            ));
        }
        Ok(())
    }
}

impl Timing {
    fn check(&self) -> std::result::Result<(), String> {
        let s = &self.summary;
        if s.n == 0 {
            return Err("timing.summary.n must be at least 1, got 0".into());
        }
        for (field, v) in [
            ("median_s", s.median_s),
            ("p10_s", s.p10_s),
            ("p90_s", s.p90_s),
            ("min_s", s.min_s),
            ("mean_s", s.mean_s),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!(
                    "timing.summary.{field} must be a positive number of seconds, got {v}"
                ));
            }
        }
        if !(s.cv.is_finite() && s.cv >= 0.0) {
            return Err(format!(
                "timing.summary.cv must be a non-negative number, got {}",
                s.cv
            ));
        }
        // Interpolated percentiles may differ from the order by rounding only.
        let le = |a: f64, b: f64| a <= b * (1.0 + 1e-9);
        if !(le(s.min_s, s.p10_s) && le(s.p10_s, s.median_s) && le(s.median_s, s.p90_s)) {
            return Err(format!(
                "timing.summary is inconsistent: min {} <= p10 {} <= median {} <= p90 {} does not hold",
                s.min_s, s.p10_s, s.median_s, s.p90_s
            ));
        }
        if let Some(x) = self
            .samples_s
            .iter()
            .find(|x| !(x.is_finite() && **x > 0.0))
        {
            return Err(format!(
                "timing.samples_s must hold positive numbers of seconds, got {x}"
            ));
        }
        if !self.samples_s.is_empty() && self.samples_s.len() != s.n {
            return Err(format!(
                "timing.samples_s holds {} samples but timing.summary.n is {}",
                self.samples_s.len(),
                s.n
            ));
        }
        for (field, v) in [
            ("flops_per_s", Some(self.flops_per_s)),
            ("bytes_per_s", Some(self.bytes_per_s)),
            ("roofline_fraction", self.roofline_fraction),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(format!(
                    "timing.{field} must be a non-negative number, got {v}"
                ));
            }
        }
        Ok(())
    }
}

impl Writer {
    /// Creates `dir/<device-slug>/<stem>.jsonl`, never overwriting an existing file.
    pub fn create(dir: &Path, device_slug: &str, stem: &str) -> Result<Writer> {
        let folder = dir.join(device_slug);
        if let Some(file) = folder.ancestors().find(|a| a.is_file()) {
            return Err(Error::File {
                file: dir.display().to_string(),
                message: format!(
                    "cannot write results: {} is a file, not a folder",
                    file.display()
                ),
            });
        }
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

/// Reads a JSON Lines results file. A bad line in the middle, or a record that fails
/// `Record::check`, is an error naming the line; a last line that does not parse is reported as
/// truncated.
pub fn read(path: &Path) -> Result<ReadOutcome> {
    let text = crate::error::read_to_string(path)?;
    let file = path.display().to_string();
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::new();
    let mut truncated_last_line = None;
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(r) => {
                r.check()
                    .map_err(|e| Error::field(&file, &format!("line {}", i + 1), e))?;
                records.push(r)
            }
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {
                truncated_last_line = Some(i + 1)
            }
            Err(e) => {
                // A record of another version is named as such, not by the field it lacks.
                #[derive(Deserialize)]
                struct Version {
                    schema_version: Option<u32>,
                }
                let message = match serde_json::from_str::<Version>(line) {
                    Ok(Version {
                        schema_version: Some(v),
                    }) if v != RECORD_SCHEMA_VERSION => {
                        format!("schema_version is {v}, this gpucost reads {RECORD_SCHEMA_VERSION}")
                    }
                    _ => format!("not a valid record: {e}"),
                };
                return Err(Error::field(&file, &format!("line {}", i + 1), message));
            }
        }
    }
    Ok(ReadOutcome {
        records,
        truncated_last_line,
    })
}

/// Every `.jsonl` file at `path` (a file, or a folder searched recursively), sorted.
pub fn find_files(path: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if path.is_file() {
        out.push(path.to_path_buf());
        return Ok(out);
    }
    let entries = std::fs::read_dir(path).map_err(|e| Error::File {
        file: path.display().to_string(),
        message: format!("cannot read: {e}"),
    })?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            out.extend(find_files(&p)?);
        } else if p.extension().is_some_and(|e| e == "jsonl") {
            out.push(p);
        }
    }
    Ok(out)
}

/// Writes `text` to `path` atomically: a temporary file beside it, then a rename. Creates the
/// folder if needed.
pub fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let err = |e: std::io::Error| Error::File {
        file: path.display().to_string(),
        message: format!("cannot write: {e}"),
    };
    // Name the real obstacle rather than the OS's "Is a directory" / "Not a directory".
    let refuse = |message: String| Error::File {
        file: path.display().to_string(),
        message,
    };
    if path.is_dir() {
        return Err(refuse("is a folder; name the file to write".into()));
    }
    if let Some(file) = path.ancestors().skip(1).find(|a| a.is_file()) {
        return Err(refuse(format!(
            "cannot write: {} is a file, not a folder",
            file.display()
        )));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(err)?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
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

/// A correct, untimed lavapipe record of a small fp32 matmul (for tests).
#[cfg(test)]
pub(crate) fn test_record(variant: &str) -> Record {
    use crate::measure::backend::Clock;
    use crate::model::dtype::DType;
    use crate::model::ops::{Matmul, Op};
    Record {
        schema_version: RECORD_SCHEMA_VERSION,
        unix_time_s: 1.0,
        git_revision: "abc".into(),
        host: "h".into(),
        device: DeviceInfo {
            backend: "wgpu/vulkan".into(),
            name: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
            vendor: "0x10005".into(),
            driver: "Mesa".into(),
            device_type: "Cpu".into(),
            memory_bytes: None,
            compute_units: None,
            timer_resolution_ns: Some(1.0),
            clock: Clock::DeviceTimestamp,
            supports_f16: true,
        },
        op: Op::Matmul(Matmul::new(1, 2, 3, 4, DType::Fp32)),
        variant: variant.into(),
        vendor_library: false,
        correctness: Correctness {
            max_rel_error: 1e-7,
            tolerance: 1e-5,
            pass: true,
            error: None,
        },
        timing: None,
        telemetry: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::backend::Clock;

    fn record(variant: &str) -> Record {
        test_record(variant)
    }

    #[test]
    fn records_round_trip_and_a_torn_last_line_is_reported() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut w = Writer::create(dir.path(), "llvmpipe", "run").unwrap();
        w.append(&record("naive")).unwrap();
        w.append(&record("tiled")).unwrap();
        let path = w.path().to_path_buf();
        assert!(path.ends_with("llvmpipe/run.jsonl"));
        // An existing run file is never overwritten.
        assert!(Writer::create(dir.path(), "llvmpipe", "run").is_err());
        drop(w);
        let back = read(&path).unwrap();
        assert_eq!(back.records, vec![record("naive"), record("tiled")]);
        assert_eq!(back.truncated_last_line, None);
        // Simulate a write interrupted mid-record.
        let mut text = std::fs::read_to_string(&path).unwrap();
        let line = serde_json::to_string(&record("regblock")).unwrap();
        text.push_str(&line[..line.len() / 2]);
        std::fs::write(&path, &text).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.records.len(), 2);
        assert_eq!(back.truncated_last_line, Some(3));
        // A damaged line in the middle is an error naming it.
        let damaged = text.replacen("\"naive\"", "\"naive", 1);
        std::fs::write(&path, damaged).unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    /// A run that failed on the device has an infinite error, which JSON writes as null: the
    /// file it is written to still reads back, with the failure kept.
    #[test]
    fn a_failed_record_reads_back() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut w = Writer::create(dir.path(), "llvmpipe", "run").unwrap();
        let mut failed = record("regblock");
        failed.correctness = Correctness {
            max_rel_error: f64::INFINITY,
            tolerance: 1e-5,
            pass: false,
            error: Some("device error: binding exceeds the limit".into()),
        };
        failed.timing = None;
        w.append(&failed).unwrap();
        w.append(&record("tiled")).unwrap();
        let path = w.path().to_path_buf();
        drop(w);
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("\"max_rel_error\":null")
        );
        let back = read(&path).unwrap();
        assert_eq!(back.records, vec![failed, record("tiled")]);
    }

    /// A CUDA record's telemetry as `bench` writes it, with keys a later version might add.
    const TELEMETRY: &str = r#"{"after":{"energy_j":6409.6,"memory_clock_mhz":2619,"power_w":125.9,"sm_clock_mhz":1980,"temperature_c":39,"throttle_reasons":["sw_power_cap"],"fan_pct":30},"before":{"energy_j":6400.0,"memory_clock_mhz":2619,"power_w":120.0,"sm_clock_mhz":1980,"temperature_c":38,"throttle_reasons":[]},"energy_per_run_j":0.5,"throttled":true,"pcie_gbps":12.5}"#;

    #[test]
    fn telemetry_is_typed_and_tolerates_unknown_and_missing_keys() {
        let mut line = serde_json::to_value(record("mma")).unwrap();
        line["telemetry"] = serde_json::from_str(TELEMETRY).unwrap();
        let r: Record = serde_json::from_value(line.clone()).unwrap();
        let t = r.telemetry.as_ref().unwrap();
        assert!(r.throttled() && t.throttled);
        assert_eq!(t.before.sm_clock_mhz, Some(1980));
        assert_eq!(t.after.throttle_reasons, ["sw_power_cap"]);
        assert_eq!(t.after.energy_j, Some(6409.6));
        assert_eq!(t.energy_per_run_j, Some(0.5));
        // Written back with the same keys (less the unknown ones).
        let back = serde_json::to_value(t).unwrap();
        let keys: Vec<&String> = back.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["after", "before", "energy_per_run_j", "throttled"]);
        // Readings without some sensors, and no throttle flag: not throttled.
        line["telemetry"] = serde_json::json!({"before": {"power_w": 80.0}, "after": {}});
        let r: Record = serde_json::from_value(line.clone()).unwrap();
        assert!(!r.throttled());
        assert_eq!(r.telemetry.unwrap().before.power_w, Some(80.0));
        line["telemetry"] = serde_json::Value::Null;
        let r: Record = serde_json::from_value(line).unwrap();
        assert!(r.telemetry.is_none() && !r.throttled());
    }

    #[test]
    fn device_slug_is_file_system_safe() {
        assert_eq!(record("x").device.slug(), "llvmpipe-llvm-15-0-6-256-bits");
    }

    fn timed(median: f64, p10: f64, p90: f64) -> Record {
        let mut r = record("naive");
        r.timing = Some(Timing {
            clock: Clock::DeviceTimestamp,
            warmup_runs: 1,
            summary: Summary {
                n: 2,
                median_s: median,
                p10_s: p10,
                p90_s: p90,
                min_s: p10,
                mean_s: median,
                cv: 0.1,
            },
            samples_s: vec![p10, p90],
            flops_per_s: 1.0,
            bytes_per_s: 1.0,
            roofline_fraction: None,
        });
        r
    }

    #[test]
    fn records_are_checked_on_read() {
        assert!(timed(2e-3, 1e-3, 3e-3).check().is_ok());
        let e = timed(-2e-3, 1e-3, 3e-3).check().unwrap_err();
        assert!(
            e.starts_with("timing.summary.median_s must be a positive"),
            "{e}"
        );
        let e = timed(2e-3, 3e-3, 4e-3).check().unwrap_err();
        assert!(e.starts_with("timing.summary is inconsistent"), "{e}");
        let mut r = record("x");
        r.schema_version = 99;
        assert_eq!(
            r.check().unwrap_err(),
            "schema_version is 99, this gpucost reads 1"
        );
        // On read, the error names the file and the line.
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("r.jsonl");
        let lines = [record("a"), timed(2e-3, 3e-3, 4e-3)]
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect::<String>();
        std::fs::write(&path, lines).unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(
            e.contains("r.jsonl: line 2: timing.summary is inconsistent"),
            "{e}"
        );
    }
}
