//! Seeded random inputs, made on every core: the tensor is cut into fixed-size chunks, each
//! chunk's key is derived from the seed and the chunk's index, and each element is a hash of its
//! index within the chunk under that key. The values depend on the seed alone, not on the number
//! of threads or the order chunks run in.

use crate::measure::backend::host::{self, CHUNK};
use crate::model::dtype::DType;
use rayon::prelude::*;

/// SplitMix64's finalizer: a bijective 64-bit mix.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A 32-bit hash with low bias (Wellons' lowbias32); 32-bit multiplies keep it vectorizable.
#[inline(always)]
fn hash32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// The key of chunk `chunk` of the tensor seeded `seed`.
fn chunk_key(seed: u64, chunk: usize) -> u64 {
    mix64(mix64(seed) ^ mix64(chunk as u64 ^ 0x6a09_e667_f3bc_c909))
}

/// Uniform in [−1, 1) at a spacing of 2^-23 (every value an f32 holds exactly).
#[inline(always)]
fn uniform(bits: u32) -> f32 {
    ((bits >> 8) as i32 - (1 << 23)) as f32 * (1.0 / (1u32 << 23) as f32)
}

/// Uniform integer in [−max, max].
#[inline(always)]
fn uniform_int(bits: u32, max: u32) -> f32 {
    ((u64::from(bits) * u64::from(2 * max + 1)) >> 32) as f32 - max as f32
}

/// Fills one chunk; `f` turns an element's hash into its value.
#[inline(always)]
fn fill_with(out: &mut [f32], key: u64, f: impl Fn(u32) -> f32) {
    let (k0, k1) = (key as u32, (key >> 32) as u32);
    for (i, o) in out.iter_mut().enumerate() {
        *o = f(hash32(hash32(i as u32 ^ k0).wrapping_add(k1)));
    }
}

/// One chunk of `random_tensor`; one loop per dtype, so each is a straight, vectorizable loop.
fn fill(out: &mut [f32], dtype: DType, key: u64) {
    match dtype {
        DType::Int8 => fill_with(out, key, |b| uniform_int(b, 127)),
        DType::Int4 => fill_with(out, key, |b| uniform_int(b, 7)),
        DType::Fp32 => fill_with(out, key, uniform),
        DType::Tf32 => fill_with(out, key, |b| host::round(DType::Tf32, uniform(b))),
        DType::Bf16 => fill_with(out, key, |b| host::round(DType::Bf16, uniform(b))),
        DType::Fp16 => fill_with(out, key, |b| host::round(DType::Fp16, uniform(b))),
        DType::Fp8E4m3 => fill_with(out, key, |b| host::round(DType::Fp8E4m3, uniform(b))),
        DType::Fp8E5m2 => fill_with(out, key, |b| host::round(DType::Fp8E5m2, uniform(b))),
    }
}

/// Seeded random values that `dtype` holds exactly: uniform in [−1, 1) rounded to the dtype for
/// floating types, uniform integers in [−127, 127] for int8 (and [−7, 7] for int4).
pub fn random_tensor(n: usize, dtype: DType, seed: u64) -> Vec<f32> {
    let mut out = vec![0.0f32; n];
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| fill(chunk, dtype, chunk_key(seed, c)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::dtype::round_to;

    #[test]
    fn values_are_reproducible_and_independent_of_the_thread_count() {
        let n = 2 * CHUNK + 5;
        let a = random_tensor(n, DType::Bf16, 11);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        assert_eq!(one.install(|| random_tensor(n, DType::Bf16, 11)), a);
        // A shorter tensor is a prefix of a longer one with the same seed.
        assert_eq!(random_tensor(CHUNK + 3, DType::Bf16, 11), a[..CHUNK + 3]);
        // Chunks differ from each other.
        assert_ne!(a[..100], a[CHUNK..CHUNK + 100]);
    }

    #[test]
    fn values_are_spread_over_the_range_and_held_by_the_dtype() {
        let n = 200_000;
        for dtype in [
            DType::Fp32,
            DType::Tf32,
            DType::Bf16,
            DType::Fp16,
            DType::Fp8E4m3,
            DType::Fp8E5m2,
        ] {
            let v = random_tensor(n, dtype, 5);
            assert!(
                v.iter()
                    .all(|x| round_to(dtype, *x) == *x && x.abs() <= 1.0),
                "{dtype}"
            );
            let mean = v.iter().map(|x| f64::from(*x)).sum::<f64>() / n as f64;
            let var = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / n as f64;
            assert!(
                mean.abs() < 0.01 && (var - 1.0 / 3.0).abs() < 0.01,
                "{dtype}: {mean} {var}"
            );
            // Ten equal bins over [-1, 1) each get their share (fp8 rounds in steps as wide as
            // a fraction of a bin, which moves whole steps across the bin edges).
            let mut bins = [0usize; 10];
            for x in &v {
                bins[(((x + 1.0) * 5.0) as usize).min(9)] += 1;
            }
            if dtype.bytes() >= 2.0 {
                assert!(
                    bins.iter().all(|b| b.abs_diff(n / 10) < n / 100),
                    "{dtype}: {bins:?}"
                );
            }
        }
        let ints = random_tensor(n, DType::Int8, 5);
        assert!(ints.iter().all(|v| v.fract() == 0.0 && v.abs() <= 127.0));
        assert!(ints.contains(&127.0) && ints.contains(&-127.0));
        let ints = random_tensor(n, DType::Int4, 5);
        assert!(ints.iter().all(|v| v.fract() == 0.0 && v.abs() <= 7.0));
        assert!(ints.contains(&7.0) && ints.contains(&-7.0));
    }
}
