//! NCCL collectives across the GPUs of one machine: one process, one communicator per GPU
//! (`ncclCommInitAll`), launched together in a group. Each result is checked against an f64
//! reference before it is timed; times come from CUDA events on the first GPU's stream, which
//! cannot finish a collective before every rank has joined it. What this measures — bus
//! bandwidth and latency of all-reduce, all-gather and reduce-scatter on the node's fabric —
//! is what the interconnect figures of a hardware profile stand for.

use super::{BackendError, Clock, DeviceInfo, Result};
use crate::measure::harness::stats::Summary;
use crate::measure::harness::{Correctness, TimingPlan, compare};
use crate::model::dtype::DType;
use crate::model::ops::{Collective, CollectiveKind};
use cudarc::driver::{CudaContext, CudaSlice, CudaStream};
use cudarc::nccl::safe::{Comm, ReduceOp, group_end, group_start};
use std::sync::Arc;
use std::time::Instant;

/// The GPUs of this machine joined by NCCL.
pub struct NcclBench {
    info: DeviceInfo,
    streams: Vec<Arc<CudaStream>>,
    comms: Vec<Comm>,
}

fn drv(e: impl std::fmt::Debug) -> BackendError {
    BackendError::Device(format!("cuda: {e:?}"))
}

fn nccl(e: impl std::fmt::Debug) -> BackendError {
    BackendError::Device(format!("nccl: {e:?}"))
}

/// Payload sizes of the sweep, bytes per rank's full buffer: 4 KiB to 1 GiB by factors of 4
/// (`smoke`: up to 4 MiB).
pub fn sizes(preset: &str) -> std::result::Result<Vec<u64>, String> {
    let top = match preset {
        "smoke" => 22,
        "sweep" => 30,
        other => {
            return Err(format!(
                "collective shapes are 'smoke' or 'sweep', not '{other}'"
            ));
        }
    };
    Ok((12..=top).step_by(2).map(|p| 1u64 << p).collect())
}

impl NcclBench {
    /// Joins every GPU of the machine; fewer than two is `Unavailable`, said plainly.
    pub fn open() -> Result<Self> {
        // SAFETY: only probe for the shared libraries.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(BackendError::Unavailable(
                "cuda: libcuda.so not found (no NVIDIA driver)".into(),
            ));
        }
        if !unsafe { cudarc::nccl::sys::is_culib_present() } {
            return Err(BackendError::Unavailable(
                "nccl: libnccl.so not found (pip install nvidia-nccl-cu13, or the system's NCCL)"
                    .into(),
            ));
        }
        let n = CudaContext::device_count().map_err(drv)? as usize;
        if n < 2 {
            return Err(BackendError::Unavailable(format!(
                "a collective needs 2 or more GPUs; this machine has {n}"
            )));
        }
        let mut streams = Vec::with_capacity(n);
        for ordinal in 0..n {
            let ctx = CudaContext::new(ordinal).map_err(drv)?;
            streams.push(ctx.new_stream().map_err(drv)?);
        }
        let first = streams[0].context();
        let info = DeviceInfo {
            backend: "nccl".into(),
            name: first.name().map_err(drv)?,
            vendor: "nvidia".into(),
            driver: format!("{n} GPUs"),
            device_type: "node".into(),
            memory_bytes: first.total_mem().ok().map(|b| b as u64),
            compute_units: None,
            timer_resolution_ns: Some(500.0),
            clock: Clock::DeviceTimestamp,
            supports_f16: false,
        };
        let comms = Comm::from_devices(streams.clone()).map_err(nccl)?;
        Ok(NcclBench {
            info,
            streams,
            comms,
        })
    }

    pub fn device(&self) -> &DeviceInfo {
        &self.info
    }

    pub fn ranks(&self) -> u64 {
        self.comms.len() as u64
    }

    /// The op a run of `kind` on a `bytes` buffer measures (fp32 elements).
    pub fn op(&self, kind: CollectiveKind, bytes: u64) -> Collective {
        Collective {
            kind,
            payload_bytes: bytes,
            ranks: self.ranks(),
            stride: 1,
            dtype: DType::Fp32,
        }
    }

    /// Checks `c` against the f64 reference, then times it under `plan`; the samples, when the
    /// check passed.
    pub fn measure(
        &self,
        c: &Collective,
        plan: &TimingPlan,
        seed: u64,
    ) -> Result<(Correctness, Option<Vec<f64>>)> {
        let n = self.comms.len();
        let elements = (c.payload_bytes / 4) as usize;
        // An all-gather's input and a reduce-scatter's output are one rank's share.
        let share = elements / n;
        let (send_len, recv_len) = match c.kind {
            CollectiveKind::AllReduce => (elements, elements),
            CollectiveKind::AllGather => (share, share * n),
            CollectiveKind::ReduceScatter => (share * n, share),
            other => {
                return Err(BackendError::Unsupported(format!(
                    "nccl: {} is not benchmarked",
                    other.name()
                )));
            }
        };
        // Seeded inputs per rank (small integers: every sum is exact in f32), poisoned outputs.
        let inputs: Vec<Vec<f32>> = (0..n)
            .map(|r| {
                (0..send_len)
                    .map(|i| ((i as u64 * 7 + r as u64 * 13 + seed) % 17) as f32 - 8.0)
                    .collect()
            })
            .collect();
        let mut sends: Vec<CudaSlice<f32>> = Vec::with_capacity(n);
        let mut recvs: Vec<CudaSlice<f32>> = Vec::with_capacity(n);
        for (s, input) in self.streams.iter().zip(&inputs) {
            sends.push(s.clone_htod(input).map_err(drv)?);
            recvs.push(s.clone_htod(&vec![f32::NAN; recv_len]).map_err(drv)?);
        }
        self.launch(c.kind, &sends, &mut recvs)?;
        for s in &self.streams {
            s.synchronize().map_err(drv)?;
        }
        let reference: Vec<f64> = match c.kind {
            CollectiveKind::AllReduce => (0..elements)
                .map(|i| inputs.iter().map(|x| f64::from(x[i])).sum())
                .collect(),
            CollectiveKind::AllGather => inputs
                .iter()
                .flat_map(|x| x.iter().map(|&v| f64::from(v)))
                .collect(),
            // Rank 0 keeps the first share of the sum.
            _ => (0..share)
                .map(|i| inputs.iter().map(|x| f64::from(x[i])).sum())
                .collect(),
        };
        let out = self.streams[0].clone_dtoh(&recvs[0]).map_err(drv)?;
        let correctness = compare(&out, &reference, 1e-6);
        if !correctness.pass {
            return Ok((correctness, None));
        }
        for _ in 0..plan.warmup_runs {
            self.launch(c.kind, &sends, &mut recvs)?;
        }
        let started = Instant::now();
        let mut samples = Vec::new();
        while samples.len() < plan.max_samples {
            let first = &self.streams[0];
            let start = first.record_event(None).map_err(drv)?;
            self.launch(c.kind, &sends, &mut recvs)?;
            let end = first.record_event(None).map_err(drv)?;
            for s in &self.streams {
                s.synchronize().map_err(drv)?;
            }
            samples.push(f64::from(start.elapsed_ms(&end).map_err(drv)?) / 1e3);
            let enough = samples.len() >= plan.min_samples
                && Summary::of(&samples).is_some_and(|s| s.cv < plan.target_cv);
            if enough || started.elapsed() > plan.budget {
                break;
            }
        }
        Ok((correctness, Some(samples)))
    }

    /// One collective on every rank, as one NCCL group.
    fn launch(
        &self,
        kind: CollectiveKind,
        sends: &[CudaSlice<f32>],
        recvs: &mut [CudaSlice<f32>],
    ) -> Result<()> {
        group_start().map_err(nccl)?;
        for ((comm, send), recv) in self.comms.iter().zip(sends).zip(recvs.iter_mut()) {
            match kind {
                CollectiveKind::AllReduce => comm.all_reduce(send, recv, &ReduceOp::Sum),
                CollectiveKind::AllGather => comm.all_gather(send, recv),
                _ => comm.reduce_scatter(send, recv, &ReduceOp::Sum),
            }
            .map_err(nccl)?;
        }
        group_end().map_err(nccl)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_bounded_powers_of_four() {
        let s = sizes("smoke").unwrap();
        assert_eq!(s.first(), Some(&4096));
        assert_eq!(s.last(), Some(&(4 << 20)));
        assert_eq!(sizes("sweep").unwrap().last(), Some(&(1 << 30)));
        assert!(sizes("huge").is_err());
    }

    /// Without two GPUs the benchmark says why and measures nothing.
    #[test]
    fn one_machine_without_two_gpus_says_so() {
        if let Err(e) = NcclBench::open() {
            assert!(matches!(e, BackendError::Unavailable(_)), "{e}");
        }
    }
}
