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

/// `--stack` for `--hw` (a name or file) priced with `calibration` (or the embedded one): one
/// implementation ("cuda:mma") must be one the calibration measured, else nothing would admit
/// it and every op would silently fall back to the roofline.
pub fn stack(
    value: &str,
    hw_arg: &str,
    calibration: Option<&std::path::Path>,
    roofline: bool,
) -> Result<crate::model::system::Stack, Error> {
    use crate::model::system::Stack;
    let stack = Stack::parse(value);
    let Stack::Only(name) = &stack else {
        return Ok(stack);
    };
    let hw = crate::model::hw::load(hw_arg)?;
    let cal = crate::model::system::load_calibration(calibration, roofline, &hw)?;
    let mut known: Vec<&str> = cal
        .iter()
        .flat_map(|c| c.groups.iter().map(|g| g.key.implementation.as_str()))
        .collect();
    known.sort_unstable();
    known.dedup();
    if known.contains(&name.as_str()) {
        return Ok(stack);
    }
    Err(Error::Unknown(if known.is_empty() {
        format!(
            "--stack {name}: {} has no calibration, so no measured implementation to choose (production, ours or all)",
            hw.name
        )
    } else {
        format!(
            "--stack {name}: not an implementation the calibration of {} measured (production, ours, all, {})",
            hw.name,
            known.join(", ")
        )
    }))
}
