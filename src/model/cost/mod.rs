//! Cost models: how long an op takes on a device. `CostModel` is the interface; `Roofline` is the
//! uncalibrated model (launch latency + the slower of compute and memory, with tile and wave
//! quantization for matmuls). A calibrated model built from measured kernels implements the same
//! trait and reports a different `Provenance` and an error bar.

pub mod calibrated;
pub mod sustained;
pub mod transfer;

use crate::error::{Error, Result};
use crate::model::hw::HwProfile;
use crate::model::ops::{Attention, Collective, Link, Matmul, MemoryOp, Op, Scan};
use serde::{Deserialize, Serialize};

/// What limits an op's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    Compute,
    Memory,
    /// The fixed per-launch cost dominates: the op is too small to fill the device.
    Latency,
    Network,
}

impl Bound {
    pub fn name(self) -> &'static str {
        match self {
            Bound::Compute => "compute",
            Bound::Memory => "memory",
            Bound::Latency => "latency",
            Bound::Network => "network",
        }
    }
}

/// How a prediction was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provenance {
    /// Datasheet peaks times the profile's default efficiencies; never checked against a run.
    Roofline,
    /// This exact shape was measured.
    Measured,
    /// Between measured shapes.
    Interpolated,
    /// Outside the measured grid, from a fitted curve.
    Extrapolated,
    /// From another GPU's measurements, rescaled by the datasheet ratios (`transfer`).
    Transferred,
}

/// The predicted cost of one op on one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub seconds: f64,
    pub bound: Bound,
    pub provenance: Provenance,
    pub flops: f64,
    pub bytes: f64,
    /// The compute, memory and fixed-latency terms the time was built from.
    pub compute_s: f64,
    pub memory_s: f64,
    pub latency_s: f64,
    /// ± relative error in percent, where the provenance class has validation residuals.
    pub error_pct: Option<f64>,
    /// The calibration group (implementation) that priced it; None for the roofline.
    pub implementation: Option<usize>,
    /// Model-specific detail (the chosen tile and its waves, for example).
    pub detail: String,
}

impl Prediction {
    /// The plain numbers of the prediction.
    pub fn price(&self) -> OpPrice {
        OpPrice {
            seconds: self.seconds,
            flops: self.flops,
            bytes: self.bytes,
            bound: self.bound,
            provenance: self.provenance,
            error_pct: self.error_pct,
            implementation: self.implementation,
        }
    }
}

/// What pricing a workload needs of one op: plain numbers, no strings, so that a search can
/// price millions of candidates (`Prediction` adds the terms and a detail line for reports).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpPrice {
    pub seconds: f64,
    pub flops: f64,
    pub bytes: f64,
    pub bound: Bound,
    pub provenance: Provenance,
    /// ± relative error in percent, where the provenance class has validation residuals.
    pub error_pct: Option<f64>,
    /// The calibration group (implementation) that priced it; None for the roofline.
    pub implementation: Option<usize>,
}

/// Predicts op costs on a device.
pub trait CostModel: Send + Sync {
    /// One line saying what the model is and where its numbers come from.
    fn describe(&self, hw: &HwProfile) -> String;
    /// The full prediction, with its terms and a detail line.
    fn predict(&self, op: &Op, hw: &HwProfile) -> Result<Prediction>;
    /// The same time as `predict`, without the parts only a report reads.
    fn price(&self, op: &Op, hw: &HwProfile) -> Result<OpPrice> {
        self.predict(op, hw).map(|p| p.price())
    }
    /// The name of the implementation an `OpPrice::implementation` refers to.
    fn implementation_name(&self, _implementation: Option<usize>) -> &str {
        "roofline"
    }
}

/// A matmul with at most this many rows (or columns) per product runs as a GEMV-like kernel.
pub const GEMV_MAX_ROWS: u64 = 16;

/// The uncalibrated roofline model.
#[derive(Debug, Clone, Copy, Default)]
pub struct Roofline;

/// How a matmul's output tiles fill the device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TilePlan {
    pub tile: [u64; 2],
    pub tiles: u64,
    /// Pieces K is cut into so that too few tiles still occupy every unit (split-K).
    pub split_k: u64,
    pub waves: u64,
    /// FLOPs the device spends, counting padded tile edges and idle SMs in the last wave.
    pub effective_flops: f64,
}

/// Tile and wave quantization: the output is cut into `tile`-sized blocks (edges padded up), the
/// blocks run `units` at a time, and every wave costs as much as a full one. When there are fewer
/// tiles than units, K is split (as vendor libraries do for skinny shapes), keeping at least 256
/// of K per piece.
pub fn tile_plan(mm: &Matmul, tile: [u64; 2], units: u64) -> TilePlan {
    let units = units.max(1);
    let tiles = mm.batch * mm.m.div_ceil(tile[0]) * mm.n.div_ceil(tile[1]);
    let split_k = if tiles >= units {
        1
    } else {
        (units / tiles).min(mm.k.div_ceil(256)).max(1)
    };
    let waves = (tiles * split_k).div_ceil(units);
    let flops_per_piece = 2.0 * (tile[0] * tile[1]) as f64 * mm.k.div_ceil(split_k) as f64;
    TilePlan {
        tile,
        tiles,
        split_k,
        waves,
        effective_flops: (waves * units) as f64 * flops_per_piece,
    }
}

impl Roofline {
    fn finish(
        compute_s: f64,
        memory_s: f64,
        latency_s: f64,
        flops: f64,
        bytes: f64,
        detail: String,
    ) -> Prediction {
        let bound = if latency_s > compute_s.max(memory_s) {
            Bound::Latency
        } else if compute_s >= memory_s {
            Bound::Compute
        } else {
            Bound::Memory
        };
        Prediction {
            seconds: latency_s + compute_s.max(memory_s),
            bound,
            provenance: Provenance::Roofline,
            flops,
            bytes,
            compute_s,
            memory_s,
            latency_s,
            error_pct: None,
            implementation: None,
            detail,
        }
    }

    fn memory_s(bytes: f64, hw: &HwProfile) -> f64 {
        bytes / (hw.memory_bandwidth_bytes_per_s.value * hw.model.memory_efficiency)
    }

    /// The tile plan a matmul runs with: the tile that wastes the least work.
    fn matmul_plan(mm: &Matmul, hw: &HwProfile) -> Result<TilePlan> {
        let units = u64::from(hw.compute_units.value);
        hw.model
            .matmul_tiles
            .iter()
            .map(|&t| tile_plan(mm, t, units))
            .min_by(|a, b| a.effective_flops.total_cmp(&b.effective_flops))
            .ok_or_else(|| Error::Unsupported(format!("{}: no matmul tiles", hw.name)))
    }

    fn matmul(mm: &Matmul, hw: &HwProfile, detailed: bool) -> Result<Prediction> {
        let rate = hw.require_peak_flops(mm.input)? * hw.model.matmul_efficiency;
        let units = u64::from(hw.compute_units.value);
        let plan = Self::matmul_plan(mm, hw)?;
        // A skinny product (a decode step's projections) runs as a GEMV-like kernel: vendor
        // libraries do not pad it to a GEMM tile, and it streams the weights.
        let gemv = mm.m.min(mm.n) <= GEMV_MAX_ROWS;
        let work = if gemv {
            mm.flops()
        } else {
            plan.effective_flops
        };
        let detail = if !detailed {
            String::new()
        } else if gemv {
            format!("GEMV (a side of at most {GEMV_MAX_ROWS}): unpadded")
        } else {
            format!(
                "tile {}x{}, {} tiles, split-k {}, {} wave{} on {} {}s",
                plan.tile[0],
                plan.tile[1],
                plan.tiles,
                plan.split_k,
                plan.waves,
                if plan.waves == 1 { "" } else { "s" },
                units,
                hw.compute_unit
            )
        };
        Ok(Self::finish(
            work / rate,
            Self::memory_s(mm.min_bytes(), hw),
            hw.model.launch_latency_s,
            mm.flops(),
            mm.min_bytes(),
            detail,
        ))
    }

    fn attention(a: &Attention, hw: &HwProfile) -> Result<Prediction> {
        let rate = hw.require_peak_flops(a.dtype)? * hw.model.attention_efficiency;
        let flops = a.executed_flops();
        Ok(Self::finish(
            flops / rate,
            Self::memory_s(a.min_bytes(), hw),
            hw.model.launch_latency_s,
            flops,
            a.min_bytes(),
            String::new(),
        ))
    }

    /// A chunked scan as attention is priced: the slower of compute and memory. Its FLOPs are
    /// the chunk's matmuls (Gram and output products, the UT transform, the state products), so
    /// they run against the matrix (tensor-core) peak of its dtype at the attention efficiency.
    fn scan(s: &Scan, hw: &HwProfile) -> Result<Prediction> {
        if s.pass == crate::model::ops::Pass::Backward {
            return Err(Error::Unsupported(
                "the backward of the gated-delta scan is not modelled".into(),
            ));
        }
        let rate = hw.require_peak_flops(s.dtype)? * hw.model.attention_efficiency;
        Ok(Self::finish(
            s.flops() / rate,
            Self::memory_s(s.min_bytes(), hw),
            hw.model.launch_latency_s,
            s.flops(),
            s.min_bytes(),
            String::new(),
        ))
    }

    fn memory_op(m: &MemoryOp, hw: &HwProfile) -> Prediction {
        // Elementwise arithmetic runs on the vector units at the fp32 rate.
        let compute_s = m.flops() / hw.peak_flops.fp32.value;
        Self::finish(
            compute_s,
            Self::memory_s(m.min_bytes(), hw),
            hw.model.launch_latency_s,
            m.flops(),
            m.min_bytes(),
            String::new(),
        )
    }

    /// A collective by the alpha–beta model: the fixed cost, plus per algorithm step the tier's
    /// step latency and the bytes each rank sends over the tier's bus bandwidth. The fastest of
    /// the algorithms that apply is taken, as NCCL's tuner does: ring (bandwidth-optimal), tree
    /// (all-reduce in 2·⌈log₂ n⌉ steps), and NVLS (in-switch reduction inside an NVSwitch node
    /// that has it: each byte sent and received once).
    fn collective(c: &Collective, hw: &HwProfile, detailed: bool) -> Result<Prediction> {
        use crate::model::ops::CollectiveKind as K;
        if c.ranks <= 1 {
            return Ok(Self::finish(0.0, 0.0, 0.0, 0.0, 0.0, String::new()));
        }
        let i = &hw.interconnect;
        let m = &hw.model;
        let (link, lanes) = c.placement(hw.gpus_per_node());
        let node_ranks = if link == Link::IntraNode {
            c.ranks
        } else {
            lanes
        };
        let fabric = match (&i.nvlink_bytes_per_s, &i.pcie_bytes_per_s) {
            (Some(nv), _) if node_ranks <= hw.nvlink_gpus() => Some((nv.value, "nvlink")),
            (_, Some(p)) => Some((p.value, "pcie")),
            _ => None,
        };
        let (bus, step_s, tier) = match link {
            Link::IntraNode => {
                let (bw, name) = fabric.ok_or_else(|| {
                    Error::Unsupported(format!("{} has no GPU-to-GPU link in its profile", hw.name))
                })?;
                (bw, m.nvlink_step_latency_s, name)
            }
            Link::InterNode => {
                let net = i.network_bytes_per_s.as_ref().ok_or_else(|| {
                    Error::Unsupported(format!(
                        "{} has no network bandwidth in its profile",
                        hw.name
                    ))
                })?;
                // The group's ranks in one node drive their links at once, up to what the
                // node's fabric carries.
                let links = net.value * lanes as f64;
                let bw = fabric.map_or(links, |(f, _)| links.min(f));
                (bw, m.network_step_latency_s, "network")
            }
        };
        let bus = bus * m.collective_efficiency;
        let n = c.ranks as f64;
        let s = c.payload_bytes as f64;
        let ring_steps = match c.kind {
            K::AllReduce => 2.0 * (n - 1.0),
            K::AllGather | K::ReduceScatter | K::AllToAll => n - 1.0,
            K::SendRecv => 1.0,
        };
        let wire = c.bytes_on_wire_per_rank();
        let mut best = (ring_steps * step_s + wire / bus, "ring", wire);
        if c.kind == K::AllReduce {
            let tree = 2.0 * n.log2().ceil() * step_s + 2.0 * s / bus;
            if tree < best.0 {
                best = (tree, "tree", 2.0 * s);
            }
            let nvls = i.nvls.as_ref().is_some_and(|v| v.value);
            if nvls && link == Link::IntraNode && tier == "nvlink" {
                let t = 2.0 * step_s + s / bus;
                if t < best.0 {
                    best = (t, "nvls", s);
                }
            }
        }
        let (transfer_s, algorithm, bytes) = best;
        let latency_s = m.collective_latency_s;
        Ok(Prediction {
            seconds: latency_s + transfer_s,
            bound: if latency_s > transfer_s {
                Bound::Latency
            } else {
                Bound::Network
            },
            provenance: Provenance::Roofline,
            flops: 0.0,
            bytes,
            compute_s: 0.0,
            memory_s: transfer_s,
            latency_s,
            error_pct: None,
            implementation: None,
            detail: if detailed {
                format!("{algorithm} over {tier}, {} ranks", c.ranks)
            } else {
                String::new()
            },
        })
    }
}

impl CostModel for Roofline {
    fn describe(&self, hw: &HwProfile) -> String {
        let m = &hw.model;
        format!(
            "roofline (uncalibrated) on {}: datasheet peaks x efficiency (matmul {:.2}, attention {:.2}, memory {:.2}), launch {:.1} us",
            hw.name,
            m.matmul_efficiency,
            m.attention_efficiency,
            m.memory_efficiency,
            m.launch_latency_s * 1e6
        )
    }

    fn predict(&self, op: &Op, hw: &HwProfile) -> Result<Prediction> {
        match op {
            Op::Matmul(mm) => Self::matmul(mm, hw, true),
            Op::Attention(a) => Self::attention(a, hw),
            Op::Memory(m) => Ok(Self::memory_op(m, hw)),
            Op::Collective(c) => Self::collective(c, hw, true),
            Op::Scan(s) => Self::scan(s, hw),
        }
    }

    fn price(&self, op: &Op, hw: &HwProfile) -> Result<OpPrice> {
        let p = match op {
            Op::Matmul(mm) => Self::matmul(mm, hw, false)?,
            Op::Attention(a) => Self::attention(a, hw)?,
            Op::Memory(m) => Self::memory_op(m, hw),
            Op::Collective(c) => Self::collective(c, hw, false)?,
            Op::Scan(s) => Self::scan(s, hw)?,
        };
        Ok(p.price())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::dtype::DType;
    use crate::model::hw;
    use crate::model::ops::{CollectiveKind, MemoryKind, Pass};

    fn h100_one_tile() -> HwProfile {
        let mut h = hw::load("h100-sxm").unwrap();
        h.model.matmul_tiles = vec![[128, 128]];
        h
    }

    #[test]
    fn one_tile_too_many_costs_a_second_wave() {
        let h = h100_one_tile();
        // 133 tiles of 128x128: 7 x 19.
        let mm = Matmul::new(1, 7 * 128, 19 * 128, 8192, DType::Bf16);
        assert_eq!(tile_plan(&mm, [128, 128], 132).tiles, 133);
        assert_eq!(tile_plan(&mm, [128, 128], 132).waves, 2);
        let full = Matmul::new(1, 12 * 128, 11 * 128, 8192, DType::Bf16); // 132 tiles
        let p133 = Roofline.predict(&Op::Matmul(mm), &h).unwrap();
        let p132 = Roofline.predict(&Op::Matmul(full), &h).unwrap();
        assert_eq!(p133.bound, Bound::Compute);
        let ratio = (p133.seconds - p133.latency_s) / (p132.seconds - p132.latency_s);
        assert!((ratio - 2.0).abs() < 1e-9, "ratio {ratio}");
        assert!(p133.detail.contains("2 waves"), "{}", p133.detail);
    }

    #[test]
    fn edges_are_padded_to_whole_tiles() {
        let mm = Matmul::new(1, 129, 128, 64, DType::Bf16);
        let plan = tile_plan(&mm, [128, 128], 132);
        assert_eq!(plan.tiles, 2);
        assert_eq!(plan.effective_flops, 132.0 * 2.0 * 128.0 * 128.0 * 64.0);
    }

    #[test]
    fn few_tiles_split_k_to_fill_the_device() {
        let mm = Matmul::new(1, 8, 8, 4096, DType::Bf16);
        let plan = tile_plan(&mm, [64, 64], 132);
        assert_eq!((plan.tiles, plan.split_k, plan.waves), (1, 16, 1));
        let short_k = Matmul::new(1, 8, 8, 64, DType::Bf16);
        assert_eq!(tile_plan(&short_k, [64, 64], 132).split_k, 1);
    }

    #[test]
    fn large_matmul_runs_at_the_efficiency_times_peak() {
        let h = hw::load("h100-sxm").unwrap();
        let mm = Matmul::new(1, 132 * 128, 8192, 8192, DType::Bf16);
        let p = Roofline.predict(&Op::Matmul(mm), &h).unwrap();
        let achieved = mm.flops() / (p.seconds - p.latency_s);
        assert!((achieved / (989.4e12 * 0.8) - 1.0).abs() < 1e-9);
    }

    /// A batch-1 fp32 projection streams its weights: memory bound, not a padded 64-row tile,
    /// so more bandwidth makes it faster.
    #[test]
    fn a_decode_gemv_is_not_padded_to_a_tile() {
        let mm = Op::Matmul(Matmul::new(1, 1, 14336, 4096, DType::Fp32));
        let a100 = hw::load("a100-sxm-80gb").unwrap();
        let p = Roofline.predict(&mm, &a100).unwrap();
        assert_eq!(p.bound, Bound::Memory, "{}", p.detail);
        let h100 = Roofline
            .predict(&mm, &hw::load("h100-sxm").unwrap())
            .unwrap();
        let h200 = Roofline
            .predict(&mm, &hw::load("h200-sxm").unwrap())
            .unwrap();
        assert!(h200.seconds < h100.seconds);
    }

    #[test]
    fn decode_gemv_is_memory_bound() {
        let h = hw::load("h100-sxm").unwrap();
        let mm = Matmul::new(1, 1, 4096, 4096, DType::Bf16);
        let p = Roofline.predict(&Op::Matmul(mm), &h).unwrap();
        assert_eq!(p.bound, Bound::Memory);
    }

    #[test]
    fn tiny_op_is_latency_bound_and_missing_dtype_is_an_error() {
        let h = hw::load("a100-sxm-80gb").unwrap();
        let op = Op::Memory(MemoryOp::new(
            MemoryKind::ResidualAdd,
            Pass::Forward,
            1,
            64,
            DType::Bf16,
        ));
        assert_eq!(Roofline.predict(&op, &h).unwrap().bound, Bound::Latency);
        let fp8 = Op::Matmul(Matmul::new(1, 64, 64, 64, DType::Fp8E4m3));
        let e = Roofline.predict(&fp8, &h).unwrap_err().to_string();
        assert!(e.contains("no fp8-e4m3 matrix rate"), "{e}");
    }

    #[test]
    fn collectives_use_the_link() {
        let h = hw::load("h100-sxm").unwrap();
        let c = Collective {
            kind: CollectiveKind::AllReduce,
            payload_bytes: 1 << 30,
            ranks: 8,
            stride: 1,
            dtype: DType::Bf16,
        };
        let p = Roofline.predict(&Op::Collective(c), &h).unwrap();
        assert_eq!(p.bound, Bound::Network);
        // H100's NVSwitch reduces in the switch: each byte once, two steps.
        let s = (1u64 << 30) as f64;
        let expect = 2.0 * 1e-6 + s / (450e9 * 0.8);
        assert!((p.memory_s - expect).abs() < 1e-12, "{}", p.detail);
        assert!(p.detail.starts_with("nvls"), "{}", p.detail);
        // A100's does not: a ring, 2(n − 1)/n of the buffer over 14 steps.
        let a100 = hw::load("a100-sxm-80gb").unwrap();
        let p = Roofline.predict(&Op::Collective(c), &a100).unwrap();
        let ring = 14.0 * 1e-6 + 2.0 * 7.0 / 8.0 * s / (300e9 * 0.8);
        assert!((p.memory_s - ring).abs() < 1e-12, "{}", p.detail);
        // A tiny all-reduce is latency-bound and takes the tree.
        let tiny = Collective {
            payload_bytes: 1024,
            ..c
        };
        let p = Roofline.predict(&Op::Collective(tiny), &a100).unwrap();
        assert!(p.detail.starts_with("tree"), "{}", p.detail);
        // Across nodes, the group's ranks in a node share out the links, up to NVLink.
        // 32 ranks 8 apart: one per node; 1 apart: eight per node.
        let across = |lanes: u64| {
            let c = Collective {
                ranks: 32,
                stride: 8 / lanes,
                ..c
            };
            Roofline
                .predict(&Op::Collective(c), &a100)
                .unwrap()
                .memory_s
        };
        let wire = 2.0 * 31.0 / 32.0 * s;
        assert!((across(1) - (62.0 * 5e-6 + wire / (25e9 * 0.8))).abs() < 1e-12);
        assert!((across(8) - (62.0 * 5e-6 + wire / (200e9 * 0.8))).abs() < 1e-12);
        let l40s = hw::load("l40s").unwrap();
        let c = Collective {
            kind: CollectiveKind::AllGather,
            payload_bytes: 1 << 20,
            ranks: 2,
            stride: 8,
            dtype: DType::Bf16,
        };
        assert!(Roofline.predict(&Op::Collective(c), &l40s).is_err());
    }
}
