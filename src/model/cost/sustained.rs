//! A GPU under sustained load. Kernel benchmarks (and so calibrations) time milliseconds of work
//! at the boost clock; a training step or a serving batch keeps the GPU busy for seconds, at the
//! clock its board power limit allows, and its tensor-core-bound kernels slow with that clock
//! while memory-bound ones keep the memory's pace. A profile's `sustained_compute_fraction`
//! stretches the compute-bound ops' times by its inverse; every other op is unchanged.

use super::{Bound, CostModel, OpPrice, Prediction};
use crate::error::Result;
use crate::model::hw::HwProfile;
use crate::model::ops::Op;

/// `inner` with compute-bound times divided by `fraction` (in (0, 1]).
pub struct Sustained {
    pub inner: Box<dyn CostModel>,
    pub fraction: f64,
}

impl Sustained {
    fn stretch(&self, seconds: f64, bound: Bound) -> f64 {
        if bound == Bound::Compute {
            seconds / self.fraction
        } else {
            seconds
        }
    }
}

impl CostModel for Sustained {
    fn describe(&self, hw: &HwProfile) -> String {
        format!(
            "{}; compute-bound ops at {:.3} of their short-run rate, sustained at the power limit (the profile's sustained_compute_fraction)",
            self.inner.describe(hw),
            self.fraction
        )
    }

    fn predict(&self, op: &Op, hw: &HwProfile) -> Result<Prediction> {
        let mut p = self.inner.predict(op, hw)?;
        p.seconds = self.stretch(p.seconds, p.bound);
        Ok(p)
    }

    fn price(&self, op: &Op, hw: &HwProfile) -> Result<OpPrice> {
        let mut p = self.inner.price(op, hw)?;
        p.seconds = self.stretch(p.seconds, p.bound);
        Ok(p)
    }

    fn implementation_name(&self, implementation: Option<usize>) -> &str {
        self.inner.implementation_name(implementation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cost::Roofline;
    use crate::model::dtype::DType;
    use crate::model::hw;
    use crate::model::ops::{Matmul, MemoryKind, MemoryOp, Pass};

    /// A compute-bound matmul takes 1/fraction as long; a memory-bound op and a decode GEMV (the
    /// memory's pace) do not change.
    #[test]
    fn only_compute_bound_ops_slow_down() {
        let h = hw::load("h100-sxm").unwrap();
        let sustained = Sustained {
            inner: Box::new(Roofline),
            fraction: 0.8,
        };
        let big = Op::Matmul(Matmul::new(1, 8192, 8192, 8192, DType::Bf16));
        let gemv = Op::Matmul(Matmul::new(1, 1, 8192, 8192, DType::Bf16));
        let norm = Op::Memory(MemoryOp::new(
            MemoryKind::RmsNorm,
            Pass::Forward,
            8192,
            8192,
            DType::Bf16,
        ));
        let base = |op: &Op| Roofline.predict(op, &h).unwrap();
        assert_eq!(base(&big).bound, Bound::Compute);
        let ratio = sustained.predict(&big, &h).unwrap().seconds / base(&big).seconds;
        assert!((ratio - 1.25).abs() < 1e-12, "{ratio}");
        for op in [&gemv, &norm] {
            assert_ne!(base(op).bound, Bound::Compute);
            assert_eq!(sustained.predict(op, &h).unwrap().seconds, base(op).seconds);
        }
        // price and predict agree.
        assert_eq!(
            sustained.price(&big, &h).unwrap().seconds,
            sustained.predict(&big, &h).unwrap().seconds
        );
    }
}
