//! `gpucost bench --backend cuda --op collective`: NCCL all-reduce, all-gather and
//! reduce-scatter across this machine's GPUs, checked and timed like the kernels, written to the
//! results store beside the roofline's prediction for the same collective. One GPU: it says so
//! and exits 2.

use super::bench::{BackendName, BenchArgs};
use super::format::seconds;
use crate::error::Error;
use crate::measure::backend::nccl::{self, NcclBench};
use crate::measure::harness::stats::Summary;
use crate::measure::harness::{Measurement, TimingPlan};
use crate::model::hw;
use crate::model::ops::{CollectiveKind, Op};
use anyhow::Result;
use std::time::Duration;

pub fn run(a: &BenchArgs) -> Result<()> {
    if a.backend != BackendName::Cuda {
        return Err(
            Error::Unsupported("--op collective runs on --backend cuda (NCCL)".into()).into(),
        );
    }
    if !matches!(a.dtype.as_str(), "f32" | "fp32") {
        return Err(Error::Unsupported(format!(
            "--op collective moves fp32 buffers; --dtype {} is not offered",
            a.dtype
        ))
        .into());
    }
    let sizes = nccl::sizes(&a.shapes).map_err(Error::Unsupported)?;
    let bench = NcclBench::open().map_err(|e| Error::Unsupported(e.to_string()))?;
    let device = bench.device().clone();
    let profile = match &a.hw {
        Some(h) => Some(hw::load(h)?),
        None => hw::profile_for_device(&device.name).and_then(|n| hw::load(n).ok()),
    };
    let plan = TimingPlan {
        budget: Duration::from_secs_f64(a.budget_s),
        target_cv: a.target_cv,
        ..TimingPlan::default()
    };
    let mut writer =
        super::bench::results_writer(a, &device, &format!("nccl-collective-{}", bench.ranks()))?;
    let mut lines = Vec::new();
    for kind in [
        CollectiveKind::AllReduce,
        CollectiveKind::AllGather,
        CollectiveKind::ReduceScatter,
    ] {
        for &bytes in &sizes {
            let c = bench.op(kind, bytes);
            let op = Op::Collective(c);
            let (correctness, samples) = bench
                .measure(&c, &plan, a.seed)
                .map_err(|e| Error::Unsupported(format!("{op}: {e}")))?;
            let measurement = Measurement {
                variant: "nccl".into(),
                vendor: true,
                correctness,
                summary: samples.as_deref().and_then(Summary::of),
                samples_s: samples.unwrap_or_default(),
                warmup_runs: plan.warmup_runs,
                telemetry: None,
            };
            let mut r = super::bench::record(&device, &op, &measurement, profile.as_ref());
            // A collective's rate is its bus bandwidth: the bytes each rank sends.
            match r.timing.as_mut() {
                Some(t) => {
                    t.bytes_per_s = c.bytes_on_wire_per_rank() / t.summary.median_s;
                    lines.push(format!(
                        "{op}: {} (bus {:.1} GB/s)",
                        seconds(t.summary.median_s),
                        t.bytes_per_s / 1e9
                    ));
                }
                None => lines.push(format!(
                    "{op}: FAILED the check ({:?})",
                    measurement.correctness
                )),
            }
            if let Some(w) = writer.as_mut() {
                w.append(&r)?;
            }
        }
    }
    let mut out = format!("{} x {} (NCCL)\n", bench.ranks(), device.name);
    for l in lines {
        out += &l;
        out.push('\n');
    }
    super::emit(&out)
}
