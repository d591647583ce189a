//! Host-side number formats: rounding f32 values to a dtype, and packing them into the bytes a
//! device buffer holds and back. A large problem's inputs are tens of millions of elements, so
//! everything here works on bits (no per-element logarithms or powers) and over fixed-size chunks
//! on every core.

use crate::model::dtype::DType;
use rayon::prelude::*;

/// Elements per parallel chunk: large enough to amortize scheduling, small enough to balance.
pub const CHUNK: usize = 1 << 16;

/// `v` rounded to `dtype`: the same values as `model::dtype::round_to`, by bit manipulation.
#[inline]
pub fn round(dtype: DType, v: f32) -> f32 {
    match dtype {
        DType::Fp32 => v,
        DType::Tf32 => f32::from_bits(v.to_bits().wrapping_add(0x1000) & 0xffff_e000),
        DType::Bf16 => round_bf16(v),
        DType::Fp16 => round_minifloat::<10, -14>(v, 65504.0, false),
        DType::Fp8E4m3 => round_minifloat::<3, -6>(v, 448.0, true),
        DType::Fp8E5m2 => round_minifloat::<2, -14>(v, 57344.0, true),
        DType::Int8 | DType::Int4 => v.round(),
    }
}

/// Round to nearest even at bf16's 7 mantissa bits (f32's exponent range, so no special cases
/// beyond NaN).
#[inline(always)]
fn round_bf16(v: f32) -> f32 {
    let b = v.to_bits();
    let r = b.wrapping_add(0x7fff + ((b >> 16) & 1)) & 0xffff_0000;
    if v.is_nan() { v } else { f32::from_bits(r) }
}

/// Round to nearest even to a float with `M` mantissa bits whose smallest normal exponent is
/// `EMIN`; above `max` the result saturates at ±max or becomes ±inf.
#[inline(always)]
fn round_minifloat<const M: u32, const EMIN: i32>(v: f32, max: f32, saturate: bool) -> f32 {
    let bits = v.to_bits();
    let sign = bits & 0x8000_0000;
    let a = f32::from_bits(bits ^ sign);
    // Normal range: drop the low mantissa bits, ties to even; a carry moves the exponent.
    let drop = 23 - M;
    let ab = a.to_bits();
    let normal = f32::from_bits(
        ab.wrapping_add((1 << (drop - 1)) - 1 + ((ab >> drop) & 1)) & !((1 << drop) - 1),
    );
    // Subnormal range: adding 2^(EMIN - M + 23) leaves an f32 whose last mantissa bit is worth
    // the subnormal spacing 2^(EMIN - M), so the FPU's own rounding is the one wanted.
    let magic = f32::from_bits(((EMIN - M as i32 + 23 + 127) as u32) << 23);
    let subnormal = (a + magic) - magic;
    let smallest_normal = f32::from_bits(((EMIN + 127) as u32) << 23);
    let r = if a < smallest_normal {
        subnormal
    } else {
        normal
    };
    let r = if r > max {
        if saturate { max } else { f32::INFINITY }
    } else {
        r
    };
    if v.is_nan() {
        v
    } else {
        f32::from_bits(r.to_bits() | sign)
    }
}

/// The fp8 e4m3 bit pattern of `v` (rounded to e4m3 first, so any value encodes).
#[inline]
pub fn fp8_e4m3_bits(v: f32) -> u8 {
    let r = round_minifloat::<3, -6>(v, 448.0, true);
    let bits = r.to_bits();
    let sign = ((bits >> 24) & 0x80) as u8;
    let a = f32::from_bits(bits & 0x7fff_ffff);
    let code = if a < 2f32.powi(-6) {
        // Subnormal: the value is a multiple of 2^-9 below 8 · 2^-9.
        (a * 512.0) as u8
    } else {
        let exp = ((bits >> 23) & 0xff) as i32 - 127 + 7;
        ((exp as u8) << 3) | ((bits >> 20) & 0x7) as u8
    };
    if r.is_nan() { 0x7f } else { sign | code }
}

/// The f32 an fp8 e4m3 bit pattern holds (0x7f and 0xff are NaN).
pub fn fp8_e4m3_value(b: u8) -> f32 {
    let sign = if b & 0x80 != 0 { -1.0 } else { 1.0 };
    let (e, m) = (i32::from((b >> 3) & 0xf), f32::from(b & 0x7));
    if b & 0x7f == 0x7f {
        f32::NAN
    } else if e == 0 {
        sign * m * 2f32.powi(-9)
    } else {
        sign * (1.0 + m / 8.0) * 2f32.powi(e - 7)
    }
}

/// `values` packed `B` bytes each by `f`, on all cores.
pub fn encode<const B: usize>(values: &[f32], f: impl Fn(f32) -> [u8; B] + Sync) -> Vec<u8> {
    let mut out = vec![0u8; values.len() * B];
    out.par_chunks_mut(CHUNK * B)
        .zip(values.par_chunks(CHUNK))
        .for_each(|(o, v)| {
            for (o, v) in o.chunks_exact_mut(B).zip(v) {
                o.copy_from_slice(&f(*v));
            }
        });
    out
}

/// The first `n` values of `bytes`, `B` bytes each, unpacked by `f`, on all cores.
pub fn decode<const B: usize>(
    bytes: &[u8],
    n: usize,
    f: impl Fn([u8; B]) -> f32 + Sync,
) -> Vec<f32> {
    let n = n.min(bytes.len() / B);
    let mut out = vec![0.0f32; n];
    out.par_chunks_mut(CHUNK)
        .zip(bytes[..n * B].par_chunks(CHUNK * B))
        .for_each(|(o, b)| {
            for (o, b) in o.iter_mut().zip(b.chunks_exact(B)) {
                let mut a = [0u8; B];
                a.copy_from_slice(b);
                *o = f(a);
            }
        });
    out
}

/// Each row-major `rows` × `cols` matrix of `src` (a batch of them, one after the other)
/// transposed, on all cores. Tiles go through a small local buffer, so both the reads and the
/// writes are whole runs of a row rather than single elements a power-of-two stride apart (which
/// would all land in the same cache set).
pub fn transpose<T: Copy + Default + Send + Sync>(src: &[T], rows: usize, cols: usize) -> Vec<T> {
    const TILE: usize = 64;
    let mut out = vec![T::default(); src.len()];
    if rows == 0 || cols == 0 {
        return out;
    }
    // One task per TILE output rows (source columns) of one matrix.
    out.par_chunks_mut(rows * cols)
        .zip(src.par_chunks(rows * cols))
        .for_each(|(dst, src)| {
            dst.par_chunks_mut(TILE * rows)
                .enumerate()
                .for_each(|(task, dst)| {
                    let (j0, width) = (task * TILE, dst.len() / rows);
                    let mut tile = [T::default(); TILE * TILE];
                    for i0 in (0..rows).step_by(TILE) {
                        let height = TILE.min(rows - i0);
                        for ii in 0..height {
                            let row = &src[(i0 + ii) * cols + j0..][..width];
                            for (j, v) in row.iter().enumerate() {
                                tile[j * TILE + ii] = *v;
                            }
                        }
                        for j in 0..width {
                            dst[j * rows + i0..][..height]
                                .copy_from_slice(&tile[j * TILE..][..height]);
                        }
                    }
                });
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::dtype::{fp8_bits, round_to};

    /// Values spread over every binade the formats have, both signs, ties and off-ties, and the
    /// edges: zero, the subnormal ranges, the largest finite values and beyond.
    fn probe_values() -> Vec<f32> {
        let mut v = vec![
            0.0, -0.0, 448.0, 464.0, 465.0, 1e6, -1e6, 57344.0, 65504.0, 65520.0,
        ];
        let mut x: u32 = 0x1234_5678;
        for e in -30..20 {
            for _ in 0..400 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let m = 1.0 + (x >> 9) as f32 / (1u32 << 23) as f32;
                let s = if x & 1 == 0 { 1.0 } else { -1.0 };
                v.push(s * m * 2f32.powi(e));
            }
            for k in 0..64 {
                // Exact ties and neighbours at coarse spacings.
                let t = (1.0 + k as f32 / 64.0) * 2f32.powi(e);
                v.extend([
                    t,
                    -t,
                    f32::from_bits(t.to_bits() + 1),
                    f32::from_bits(t.to_bits() - 1),
                ]);
            }
        }
        v
    }

    #[test]
    fn bit_rounding_matches_the_reference_rounding() {
        for dtype in [
            DType::Fp32,
            DType::Tf32,
            DType::Bf16,
            DType::Fp16,
            DType::Fp8E4m3,
            DType::Fp8E5m2,
            DType::Int8,
        ] {
            for v in probe_values() {
                let (fast, slow) = (round(dtype, v), round_to(dtype, v));
                assert_eq!(
                    fast.to_bits(),
                    slow.to_bits(),
                    "{dtype} {v:e}: {fast:e} vs {slow:e}"
                );
            }
        }
    }

    /// The nearest value of `table` (finite values of a format), ties to the even code.
    fn nearest(table: &[(f32, u8)], v: f32) -> f32 {
        let mut best = table[0];
        for &(t, code) in table {
            let (d, db) = ((t - v).abs(), (best.0 - v).abs());
            if d < db || (d == db && code & 1 == 0 && best.1 & 1 == 1) {
                best = (t, code);
            }
        }
        best.0
    }

    #[test]
    fn fp8_rounding_is_round_to_nearest_even_and_saturates() {
        let e4m3: Vec<(f32, u8)> = (0..=255u8)
            .filter(|b| b & 0x7f != 0x7f)
            .map(|b| (fp8_e4m3_value(b), b))
            .collect();
        // e5m2: the top byte of an f16.
        let e5m2: Vec<(f32, u8)> = (0..=255u8)
            .map(|b| (half::f16::from_bits(u16::from(b) << 8).to_f32(), b))
            .filter(|(v, _)| v.is_finite())
            .collect();
        for v in probe_values() {
            for (dtype, table, max) in [
                (DType::Fp8E4m3, &e4m3, 448.0f32),
                (DType::Fp8E5m2, &e5m2, 57344.0),
            ] {
                let want = nearest(table, v.clamp(-max, max));
                let got = round(dtype, v);
                assert_eq!(got.abs(), want.abs(), "{dtype} {v:e}");
                assert_eq!(round(dtype, got), got, "{dtype} {v:e} is not a fixed point");
            }
        }
        assert!(round(DType::Fp8E4m3, f32::NAN).is_nan());
        assert_eq!(round(DType::Fp16, 1e6), f32::INFINITY);
    }

    #[test]
    fn fp8_encoding_round_trips_and_agrees_with_the_reference() {
        for b in (0..=255u8).filter(|b| b & 0x7f != 0x7f) {
            assert_eq!(fp8_e4m3_bits(fp8_e4m3_value(b)), b, "{b:#04x}");
        }
        for v in probe_values() {
            let r = round(DType::Fp8E4m3, v);
            assert_eq!(
                fp8_e4m3_bits(v),
                fp8_bits(DType::Fp8E4m3, r),
                "{v:e} -> {r:e}"
            );
        }
        assert_eq!(fp8_e4m3_bits(1000.0), 0x7e);
        assert_eq!(fp8_e4m3_bits(-2f32.powi(-9)), 0x81);
    }

    #[test]
    fn encode_decode_and_transpose_cover_every_chunk() {
        let n = 3 * CHUNK + 17;
        // Values bf16 holds exactly.
        let v: Vec<f32> = (0..n).map(|i| ((i % 256) as f32 - 128.0) / 8.0).collect();
        let bytes = encode(&v, |x| half::bf16::from_f32(x).to_le_bytes());
        assert_eq!(bytes.len(), 2 * n);
        let back = decode(&bytes, n, |b| half::bf16::from_le_bytes(b).to_f32());
        assert!(back == v, "bf16 values changed on the way through bytes");
        assert_eq!(
            decode(&bytes, 5, |b| half::bf16::from_le_bytes(b).to_f32()),
            v[..5]
        );

        let (batch, rows, cols) = (2, 70, 131);
        let m: Vec<u32> = (0..batch * rows * cols).map(|i| i as u32).collect();
        let t = transpose(&m, rows, cols);
        for z in 0..batch {
            for i in 0..rows {
                for j in 0..cols {
                    assert_eq!(
                        t[z * rows * cols + j * rows + i],
                        m[z * rows * cols + i * cols + j]
                    );
                }
            }
        }
    }
}
