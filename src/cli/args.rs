//! Flag values every subcommand resolves the same way, once, with one clear line on a mistake
//! (clap's own errors span several lines, so values are taken as text and checked here).

use crate::error::Error;
use crate::model::dtype::DType;
use crate::model::ops::limits;

/// `--flag` as a dtype.
pub fn dtype(flag: &str, value: &str) -> Result<DType, Error> {
    value
        .parse()
        .map_err(|e| Error::Unknown(format!("--{flag}: {e}")))
}

/// `--flag` as a positive integer (taken as i64 so that a negative value gets this message).
pub fn positive(flag: &str, value: i64) -> Result<u64, Error> {
    u64::try_from(value)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| Error::Unsupported(format!("--{flag} must be positive, got {value}")))
}

/// `--flag` as a positive integer of at most `limit` (one of `limits`).
pub fn bounded(flag: &str, value: i64, limit: u64) -> Result<u64, Error> {
    let v = positive(flag, value)?;
    limits::at_most(v, limit).map_err(|e| Error::Unsupported(format!("--{flag} {e}")))
}
