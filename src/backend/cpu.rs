//! The f64 reference: what every kernel's output is checked against. Slow and exact enough.

use crate::ops::Matmul;

/// C[z] = A[z] · B[z] in f64, row-major, from inputs given as f32 (already rounded to the dtype).
pub fn matmul(mm: &Matmul, a: &[f32], b: &[f32]) -> Vec<f64> {
    let (m, n, k) = (mm.m as usize, mm.n as usize, mm.k as usize);
    let mut c = vec![0.0f64; mm.batch as usize * m * n];
    for z in 0..mm.batch as usize {
        let (a, b) = (
            &a[z * m * k..(z + 1) * m * k],
            &b[z * k * n..(z + 1) * k * n],
        );
        let c = &mut c[z * m * n..(z + 1) * m * n];
        for i in 0..m {
            for p in 0..k {
                let av = f64::from(a[i * k + p]);
                let row = &b[p * n..(p + 1) * n];
                for (cv, bv) in c[i * n..(i + 1) * n].iter_mut().zip(row) {
                    *cv += av * f64::from(*bv);
                }
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;

    #[test]
    fn small_batched_product() {
        let mm = Matmul::new(2, 2, 2, 3, DType::Fp32);
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        let c = matmul(&mm, &a, &b);
        assert_eq!(c, vec![4.0, 5.0, 10.0, 11.0, 2.0, 3.0, 4.0, 5.0]);
    }
}
