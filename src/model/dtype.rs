//! Numeric precisions: how many bits a value takes in memory, what it accumulates into, and
//! which of a GPU's peak rates applies when a matmul runs in it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A storage/compute precision.
///
/// `Tf32` is stored as fp32 (4 bytes) but multiplied on tensor cores with a 10-bit mantissa;
/// it exists as a separate dtype because its peak rate is several times fp32's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DType {
    Fp32,
    Tf32,
    Fp16,
    Bf16,
    Fp8E4m3,
    Fp8E5m2,
    Int8,
    Int4,
}

/// What a matmul's partial sums are kept in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Accumulator {
    Fp32,
    Int32,
}

impl Accumulator {
    pub fn bytes(self) -> f64 {
        4.0
    }
}

/// Which peak-rate entry of a hardware profile a dtype's matmuls run at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeakClass {
    Fp32,
    Tf32,
    Fp16,
    Bf16,
    Fp8,
    Int8,
    Int4,
}

impl DType {
    pub const ALL: [DType; 8] = [
        DType::Fp32,
        DType::Tf32,
        DType::Fp16,
        DType::Bf16,
        DType::Fp8E4m3,
        DType::Fp8E5m2,
        DType::Int8,
        DType::Int4,
    ];

    /// Canonical name, as accepted on the command line and written in JSON.
    pub fn name(self) -> &'static str {
        match self {
            DType::Fp32 => "fp32",
            DType::Tf32 => "tf32",
            DType::Fp16 => "fp16",
            DType::Bf16 => "bf16",
            DType::Fp8E4m3 => "fp8-e4m3",
            DType::Fp8E5m2 => "fp8-e5m2",
            DType::Int8 => "int8",
            DType::Int4 => "int4",
        }
    }

    /// Bits one element occupies in memory.
    pub fn storage_bits(self) -> u32 {
        match self {
            DType::Fp32 | DType::Tf32 => 32,
            DType::Fp16 | DType::Bf16 => 16,
            DType::Fp8E4m3 | DType::Fp8E5m2 | DType::Int8 => 8,
            DType::Int4 => 4,
        }
    }

    /// Bytes one element occupies (0.5 for int4).
    pub fn bytes(self) -> f64 {
        f64::from(self.storage_bits()) / 8.0
    }

    /// Bytes `n` elements occupy, rounded up to whole bytes (int4 packs two per byte).
    /// Saturates at u64::MAX rather than overflowing.
    pub fn bytes_for(self, n: u64) -> u64 {
        let bits = u128::from(n) * u128::from(self.storage_bits());
        u64::try_from(bits.div_ceil(8)).unwrap_or(u64::MAX)
    }

    /// The precision a tensor-core matmul in this dtype accumulates in.
    pub fn accumulator(self) -> Accumulator {
        match self {
            DType::Int8 | DType::Int4 => Accumulator::Int32,
            _ => Accumulator::Fp32,
        }
    }

    pub fn is_float(self) -> bool {
        !matches!(self, DType::Int8 | DType::Int4)
    }

    /// Which peak rate of a GPU applies to matmuls whose inputs are in this dtype.
    pub fn peak_class(self) -> PeakClass {
        match self {
            DType::Fp32 => PeakClass::Fp32,
            DType::Tf32 => PeakClass::Tf32,
            DType::Fp16 => PeakClass::Fp16,
            DType::Bf16 => PeakClass::Bf16,
            DType::Fp8E4m3 | DType::Fp8E5m2 => PeakClass::Fp8,
            DType::Int8 => PeakClass::Int8,
            DType::Int4 => PeakClass::Int4,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a dtype name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown dtype '{0}' (expected one of fp32, tf32, fp16, bf16, fp8-e4m3, fp8-e5m2, int8, int4)"
)]
pub struct UnknownDType(pub String);

impl FromStr for DType {
    type Err = UnknownDType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let d = match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "fp32" | "f32" | "float32" | "float" => DType::Fp32,
            "tf32" => DType::Tf32,
            "fp16" | "f16" | "float16" | "half" => DType::Fp16,
            "bf16" | "bfloat16" => DType::Bf16,
            "fp8" | "fp8-e4m3" | "e4m3" | "float8-e4m3fn" => DType::Fp8E4m3,
            "fp8-e5m2" | "e5m2" | "float8-e5m2" => DType::Fp8E5m2,
            "int8" | "i8" => DType::Int8,
            "int4" | "i4" => DType::Int4,
            _ => return Err(UnknownDType(s.to_string())),
        };
        Ok(d)
    }
}

/// Rounds `v` to the nearest value `dtype` can hold (ties to even; tf32 ties away, as
/// `cvt.rna.tf32.f32` does).
pub fn round_to(dtype: DType, v: f32) -> f32 {
    match dtype {
        DType::Fp16 => half::f16::from_f32(v).to_f32(),
        DType::Bf16 => half::bf16::from_f32(v).to_f32(),
        DType::Tf32 => f32::from_bits(v.to_bits().wrapping_add(0x1000) & 0xffff_e000),
        DType::Fp8E4m3 => round_minifloat(v, 3, -6, 448.0),
        DType::Fp8E5m2 => round_minifloat(v, 2, -14, 57344.0),
        DType::Int8 | DType::Int4 => v.round(),
        DType::Fp32 => v,
    }
}

/// Rounds to a float with `mantissa` bits, smallest normal exponent `min_exp`, saturating at
/// `max` (the fp8 formats).
fn round_minifloat(v: f32, mantissa: i32, min_exp: i32, max: f32) -> f32 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let e = (v.abs().log2().floor() as i32).max(min_exp);
    let quantum = 2f32.powi(e - mantissa);
    let r = (v / quantum).round_ties_even() * quantum;
    r.clamp(-max, max)
}

/// The fp8 bit pattern of a value already rounded to `dtype` (e4m3 or e5m2).
pub fn fp8_bits(dtype: DType, v: f32) -> u8 {
    let (mantissa, bias) = match dtype {
        DType::Fp8E5m2 => (2, 15),
        _ => (3, 7),
    };
    let sign = if v.is_sign_negative() { 0x80u8 } else { 0 };
    let a = v.abs();
    if a == 0.0 {
        return sign;
    }
    let e = a.log2().floor() as i32;
    if e + bias <= 0 {
        // Subnormal: exponent field 0, value = mant · 2^(1 − bias − mantissa).
        let m = (a / 2f32.powi(1 - bias - mantissa)).round() as u8;
        return sign | m;
    }
    let m = ((a / 2f32.powi(e) - 1.0) * (1 << mantissa) as f32).round() as u8;
    sign | (((e + bias) as u8) << mantissa) | m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in DType::ALL {
            assert_eq!(d.name().parse::<DType>().unwrap(), d);
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(json, format!("\"{}\"", d.name()));
        }
    }

    #[test]
    fn storage_sizes() {
        assert_eq!(DType::Fp32.bytes_for(3), 12);
        assert_eq!(DType::Tf32.bytes_for(3), 12);
        assert_eq!(DType::Bf16.bytes_for(3), 6);
        assert_eq!(DType::Fp8E5m2.bytes_for(3), 3);
        assert_eq!(DType::Int4.bytes_for(3), 2);
        assert_eq!(DType::Int4.bytes(), 0.5);
    }

    #[test]
    fn aliases_and_errors() {
        assert_eq!("bfloat16".parse::<DType>().unwrap(), DType::Bf16);
        assert_eq!("FP8_E4M3".parse::<DType>().unwrap(), DType::Fp8E4m3);
        assert!("fp64".parse::<DType>().is_err());
    }

    #[test]
    fn integer_types_accumulate_in_int32() {
        assert_eq!(DType::Int8.accumulator(), Accumulator::Int32);
        assert_eq!(DType::Fp8E4m3.accumulator(), Accumulator::Fp32);
        assert_eq!(DType::Fp8E4m3.peak_class(), PeakClass::Fp8);
    }
}
