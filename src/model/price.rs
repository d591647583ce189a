//! price: a plan on a system becomes a `Cost` of plain numbers — times, FLOPs, memory and error
//! bars — with no strings and no allocation per candidate once the memo is warm: op prices are
//! memoized by shape, and decode over a growing context is priced from a few sampled contexts.
//!
//! Decode. A decode step's ops depend on the context only through attention, so the time per
//! output token is the context-free part plus the mean of the attention part over the contexts.
//! Up to `EXACT_DECODE_STEPS` steps are summed one by one; beyond that the attention part is
//! sampled adaptively — a segment is split until its midpoint lies within
//! `DECODE_LINEARITY_TOLERANCE` of the chord — and each segment is summed exactly as a linear
//! function over its integer contexts. The roofline's attention time is piecewise linear in the
//! context, so it is summed exactly up to rounding; tests check every model against the
//! step-by-step sum (relative error ≤ 1e-4 calibrated and roofline).

use crate::error::{Error, Result};
use crate::model::arch::Architecture;
use crate::model::cost::{OpPrice, Provenance};
use crate::model::execution::Execution;
use crate::model::memory::{self, InferenceMemory, TrainingMemory};
use crate::model::ops::Op;
use crate::model::parallel::{check_layout, stage_layers};
use crate::model::plan::{
    Block, BlockKey, CP_EXCHANGE, LayerDims, OpInstance, Phase, Place, Plan, ZERO3_GATHER,
    ZERO3_SCATTER, at_context, plan_into,
};
use crate::model::system::System;
use rustc_hash::FxHashMap;
use std::sync::Mutex;

/// Decode runs with at most this many steps are summed step by step.
pub const EXACT_DECODE_STEPS: u64 = 64;
/// A sampled segment is split while its midpoint is further than this (relative) from the chord.
pub const DECODE_LINEARITY_TOLERANCE: f64 = 1e-5;
/// Sampled segments are at least this many per decode run, whatever their linearity.
const DECODE_MIN_SEGMENTS: u64 = 2;
/// Memo entries a pricer keeps before it starts afresh (bounds its memory in a long search).
const MEMO_CAPACITY: usize = 1 << 20;
/// How deep a segment may be split (2^12 segments at most).
const DECODE_MAX_DEPTH: u32 = 12;

/// Prices ops on a system, remembering every shape it has priced, and every layer (a layer's
/// ops are a function of its dimensions and its `BlockKey`, so a candidate that shares a layer
/// with an earlier one prices it with one lookup).
pub struct Pricer<'s> {
    pub system: &'s System,
    memo: FxHashMap<Op, OpPrice>,
    /// Layers by the number of their dimensions in `dims` and their key.
    layers: FxHashMap<(u32, BlockKey), LayerPrice>,
    /// Every layer dimensions seen, numbered: a pass looks its dimensions up once, and its
    /// blocks are then keyed by the number (the dimensions are large to hash and compare).
    dims: FxHashMap<LayerDims, u32>,
    /// The last dimensions looked up (the passes of one candidate mostly share them).
    last_dims: Option<(LayerDims, u32)>,
}

/// One copy of a layer block: its cost, and its model FLOPs (forward matmuls and attention).
#[derive(Debug, Clone, Copy)]
struct LayerPrice {
    cost: PhaseCost,
    model_flops: f64,
}

impl<'s> Pricer<'s> {
    pub fn new(system: &'s System) -> Self {
        Pricer {
            system,
            memo: FxHashMap::default(),
            layers: FxHashMap::default(),
            dims: FxHashMap::default(),
            last_dims: None,
        }
    }

    /// The number of the layer dimensions `d`. Only here, between passes, are the numbers ever
    /// reset (with the layers keyed by them), so no pass holds a number that changes meaning.
    fn dims_id(&mut self, d: &LayerDims) -> u32 {
        if let Some((last, id)) = &self.last_dims
            && last == d
        {
            return *id;
        }
        if self.dims.len() >= MEMO_CAPACITY {
            self.dims.clear();
            self.layers.clear();
        }
        let next = self.dims.len() as u32;
        let id = *self.dims.entry(*d).or_insert(next);
        self.last_dims = Some((*d, id));
        id
    }

    /// One copy of the layer `ops` (keyed by `key`). Decode layers leave out attention, which
    /// depends on the context and is priced apart.
    fn layer(&mut self, dims: u32, key: &BlockKey, ops: &[OpInstance]) -> Result<LayerPrice> {
        if let Some(p) = self.layers.get(&(dims, *key)) {
            return Ok(*p);
        }
        let mut p = LayerPrice {
            cost: PhaseCost::default(),
            model_flops: 0.0,
        };
        // Ring attention passes keys and values while it computes: the exchange hides under
        // the attention it feeds.
        let (mut exchange_s, mut attention_s) = (0.0, 0.0);
        for o in ops {
            let attention = matches!(o.op, Op::Attention(_));
            if key.phase == Phase::Decode && attention {
                continue;
            }
            let price = self.op(&o.op)?;
            p.cost.add(&o.op, &price, 1.0);
            if attention {
                attention_s += price.seconds;
            } else if o.label.name == CP_EXCHANGE {
                exchange_s += price.seconds;
            }
            if key.phase == Phase::Forward && (attention || matches!(o.op, Op::Matmul(_))) {
                p.model_flops += o.op.flops();
            }
        }
        p.cost = p.cost.hiding(exchange_s.min(attention_s));
        if self.layers.len() >= MEMO_CAPACITY {
            self.layers.clear();
        }
        self.layers.insert((dims, *key), p);
        Ok(p)
    }

    /// The price of one op (from the memo when this shape was priced before).
    pub fn op(&mut self, op: &Op) -> Result<OpPrice> {
        if let Some(p) = self.memo.get(op) {
            return Ok(*p);
        }
        let p = self.system.cost_model.price(op, &self.system.hw)?;
        if self.memo.len() >= MEMO_CAPACITY {
            self.memo.clear();
        }
        self.memo.insert(*op, p);
        Ok(p)
    }

    /// Shapes priced so far.
    pub fn memo_len(&self) -> usize {
        self.memo.len()
    }
}

/// Time, work and error bar of a set of ops.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PhaseCost {
    pub seconds: f64,
    pub flops: f64,
    pub bytes: f64,
    /// Σ seconds × error_pct over the ops that have an error bar.
    pub error_weighted: f64,
    /// Σ seconds over the ops that have an error bar.
    pub error_seconds: f64,
    /// Σ seconds over the ops a calibration priced (not the roofline).
    pub calibrated_seconds: f64,
    /// Σ seconds of communication not hidden under compute.
    pub comm_seconds: f64,
}

impl PhaseCost {
    fn add(&mut self, op: &Op, p: &OpPrice, count: f64) {
        let s = p.seconds * count;
        if matches!(op, Op::Collective(_)) {
            self.comm_seconds += s;
        }
        self.seconds += s;
        self.flops += p.flops * count;
        self.bytes += p.bytes * count;
        if let Some(e) = p.error_pct {
            self.error_weighted += e * s;
            self.error_seconds += s;
        }
        if p.provenance != Provenance::Roofline {
            self.calibrated_seconds += s;
        }
    }

    fn scaled(self, k: f64) -> PhaseCost {
        PhaseCost {
            seconds: self.seconds * k,
            flops: self.flops * k,
            bytes: self.bytes * k,
            error_weighted: self.error_weighted * k,
            error_seconds: self.error_seconds * k,
            calibrated_seconds: self.calibrated_seconds * k,
            comm_seconds: self.comm_seconds * k,
        }
    }

    fn plus(self, o: PhaseCost) -> PhaseCost {
        PhaseCost {
            seconds: self.seconds + o.seconds,
            flops: self.flops + o.flops,
            bytes: self.bytes + o.bytes,
            error_weighted: self.error_weighted + o.error_weighted,
            error_seconds: self.error_seconds + o.error_seconds,
            calibrated_seconds: self.calibrated_seconds + o.calibrated_seconds,
            comm_seconds: self.comm_seconds + o.comm_seconds,
        }
    }

    /// This cost with `hidden` seconds of its communication overlapped by compute.
    fn hiding(mut self, hidden: f64) -> PhaseCost {
        let hidden = hidden.clamp(0.0, self.comm_seconds);
        self.seconds -= hidden;
        self.comm_seconds -= hidden;
        self
    }

    /// Share of the time spent communicating (not hidden under compute).
    pub fn comm_fraction(&self) -> f64 {
        self.comm_seconds / self.seconds
    }

    /// The time-weighted error bar of the ops that have one (errors taken as fully correlated,
    /// the conservative choice).
    pub fn error_pct(&self) -> Option<f64> {
        (self.error_seconds > 0.0).then(|| self.error_weighted / self.error_seconds)
    }

    /// Share of the time priced by a calibration (the rest by the roofline).
    pub fn calibrated_fraction(&self) -> f64 {
        self.calibrated_seconds / self.seconds
    }

    /// Share of the time whose ops carry an error bar.
    pub fn barred_fraction(&self) -> f64 {
        self.error_seconds / self.seconds
    }
}

/// How a training step's time comes about on a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepShape {
    pub microbatches: u64,
    /// One microbatch's forward and backward on the slowest pipeline stage.
    pub slowest_stage_s: f64,
    /// Share of the pipelined time the stages wait (fill and drain).
    pub bubble_fraction: f64,
    /// The data-parallel exchange, in all and what the backward pass does not hide.
    pub data_parallel_s: f64,
    pub data_parallel_exposed_s: f64,
    /// ZeRO-3's weight gathers and gradient scatters, in all and what the compute does not hide.
    pub zero3_s: f64,
    pub zero3_exposed_s: f64,
    /// FLOPs one GPU executes in a step, averaged over the pipeline stages (recomputation
    /// included).
    pub hardware_flops_per_gpu: f64,
}

/// Everything a candidate costs, as plain numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    /// One training step (on the slowest rank).
    pub training: PhaseCost,
    pub step: StepShape,
    /// Model FLOPs per training token: 3 × the forward matmul and attention FLOPs.
    pub model_flops_per_token: f64,
    /// The prefill: the time to first token.
    pub prefill: PhaseCost,
    /// The mean decode step over the generated tokens: the time per output token.
    pub decode: PhaseCost,
    pub training_memory: TrainingMemory,
    pub inference_memory: InferenceMemory,
}

/// Prices `plan` (of `arch` under `execution`) with `pricer`.
pub fn price(
    arch: &Architecture,
    execution: &Execution,
    plan: &Plan,
    pricer: &mut Pricer,
) -> Result<Cost> {
    execution.validate()?;
    check_layout(arch, &execution.training.parallelism)?;
    check_layout(arch, &execution.serving.parallelism)?;
    let hw = &pricer.system.hw;
    hw.require_peak_flops(execution.training.dtype)?;
    hw.require_peak_flops(execution.serving.dtype)?;
    let capacity = hw.memory_bytes.value;

    let drafts = crate::model::plan::speculative_drafts(arch, &execution.serving);
    let decode_tokens = match execution.serving.speculative_acceptance {
        Some(_) if drafts == 0 => {
            return Err(Error::Unsupported(format!(
                "--speculative-acceptance: {} has no multi-token-prediction modules to draft with",
                arch.name
            )));
        }
        Some(a) => crate::model::execution::tokens_per_step(drafts, a),
        None => 1.0,
    };
    let (training, step, forward_model_flops) = training_step(arch, execution, plan, pricer)?;
    let t = &execution.training;
    let p = &t.parallelism;
    // The plan is one rank's share of one microbatch: its tensor and context slices.
    let microbatch_tokens = (p.micro_batch_size(t.batch) * t.seq) as f64;
    let model_flops = forward_model_flops * (p.tp * p.cp) as f64;
    Ok(Cost {
        training,
        step,
        model_flops_per_token: 3.0 * (model_flops / microbatch_tokens),
        prefill: sum_with_layers(
            &plan.prefill,
            &plan.prefill_blocks,
            plan.prefill_dims.as_ref(),
            pricer,
        )?
        .0,
        // A speculative step yields `decode_tokens` tokens on average.
        decode: mean_decode_step(plan, pricer)?.scaled(1.0 / decode_tokens),
        training_memory: memory::training(arch, &execution.training, capacity),
        inference_memory: memory::inference(arch, &execution.serving, capacity),
    })
}

/// One training step: each pipeline stage's share of a microbatch's layers plus what runs on it
/// alone (the embedding on the first, the head and loss on the last, the hand-overs on all),
/// pipelined over the microbatches; then the data-parallel exchange the backward pass does not
/// hide, and the optimizer. One GPU and one microbatch: the sum of every op, as before.
fn training_step(
    arch: &Architecture,
    execution: &Execution,
    plan: &Plan,
    pricer: &mut Pricer,
) -> Result<(PhaseCost, StepShape, f64)> {
    let s = &execution.training;
    let p = &s.parallelism;
    let (ops, blocks) = (&plan.training, &plan.training_blocks);
    let mut layers = PhaseCost::default();
    let mut layers_backward_s = 0.0;
    let mut model_flops = 0.0;
    let [
        mut first,
        mut last,
        mut every,
        mut optimizer,
        mut dp,
        mut zero3,
    ] = [PhaseCost::default(); 6];
    walk(
        ops,
        blocks,
        plan.training_dims.as_ref(),
        pricer,
        |item| match item {
            Item::Layer(key, layer, count) => {
                layers = layers.plus(layer.cost.scaled(count));
                if key.phase == Phase::Backward {
                    layers_backward_s += layer.cost.seconds * count;
                }
                model_flops += layer.model_flops * count;
            }
            Item::Op(o, price) => {
                let into = match (o.place(), o.label.name) {
                    (Place::First, _) => &mut first,
                    (Place::Last, _) => &mut last,
                    (Place::EveryStage, _) => &mut every,
                    (Place::Step, ZERO3_GATHER | ZERO3_SCATTER) => &mut zero3,
                    (Place::Step, _) if o.phase == Phase::DataParallel => &mut dp,
                    (Place::Step, _) => &mut optimizer,
                };
                into.add(&o.op, &price, o.count as f64);
                model_flops += forward_model_flops(o);
            }
        },
    )?;

    // Stage i: its share of the layers, plus the embedding (first), the head and loss (last) and
    // the hand-overs (all). One stage: everything, with no allocation.
    let stage = |i: usize, n: u64, last_stage: usize| {
        let mut c = layers.scaled(n as f64 / arch.num_layers as f64);
        if i == 0 {
            c = c.plus(first);
        }
        if i == last_stage {
            c = c.plus(last);
        }
        c.plus(every)
    };
    let (slowest_layers, slowest, all) = if p.pp == 1 {
        let one = layers.plus(first).plus(last).plus(every);
        (arch.num_layers, one, one)
    } else {
        let per_stage = stage_layers(arch.num_layers, p.pp);
        let last_stage = per_stage.len() - 1;
        let mut all = PhaseCost::default();
        let mut slowest = (0, PhaseCost::default());
        for (i, &n) in per_stage.iter().enumerate() {
            let c = stage(i, n, last_stage);
            all = all.plus(c);
            if c.seconds > slowest.1.seconds {
                slowest = (n, c);
            }
        }
        (slowest.0, slowest.1, all)
    };
    let m = p.microbatches(s.batch);
    let v = p.virtual_stages as f64;
    // m·t_max + (Σt − t_max)/v, as `parallel::pipeline_step`.
    let pipeline = slowest.scaled(m as f64 - 1.0 / v).plus(all.scaled(1.0 / v));
    let ideal = slowest.seconds * m as f64;

    // ZeRO-3 prefetches each layer's weights under the previous layer's compute.
    let zero3_exposed_s = (zero3.seconds - (pipeline.seconds - pipeline.comm_seconds)).max(0.0);
    // Bucketed gradient reduction runs under the last microbatch's backward pass.
    let hidden_by_backward = if p.overlap_grad_reduce {
        layers_backward_s * slowest_layers as f64 / arch.num_layers as f64
    } else {
        0.0
    };
    let dp_exposed_s = (dp.seconds - hidden_by_backward).max(0.0);
    let step = pipeline
        .plus(zero3.hiding(zero3.seconds - zero3_exposed_s))
        .plus(dp.hiding(dp.seconds - dp_exposed_s))
        .plus(optimizer);
    let shape = StepShape {
        microbatches: m,
        slowest_stage_s: slowest.seconds,
        bubble_fraction: if pipeline.seconds > 0.0 {
            (pipeline.seconds - ideal).max(0.0) / pipeline.seconds
        } else {
            0.0
        },
        data_parallel_s: dp.seconds,
        data_parallel_exposed_s: dp_exposed_s,
        zero3_s: zero3.seconds,
        zero3_exposed_s,
        hardware_flops_per_gpu: all.flops * m as f64 / p.pp as f64 + optimizer.flops,
    };
    Ok((step, shape, model_flops))
}

/// Plans and prices one candidate (a convenience over `plan` and `price`).
pub fn price_candidate(
    arch: &Architecture,
    execution: &Execution,
    pricer: &mut Pricer,
) -> Result<Cost> {
    // Library callers may build models in code: check them before the plan multiplies sizes.
    arch.validate(&arch.source)?;
    execution.validate()?;
    let plan = crate::model::plan::plan(arch, execution);
    price(arch, execution, &plan, pricer)
}

/// Prices candidates on every core (rayon). Each worker thread keeps its own plan buffers and
/// memo for the scorer's life, so repeated calls (a search's generations) start warm.
pub struct Scorer<'s> {
    system: &'s System,
    workers: Vec<Mutex<(Pricer<'s>, Plan)>>,
}

impl<'s> Scorer<'s> {
    pub fn new(system: &'s System) -> Self {
        let workers = (0..rayon::current_num_threads().max(1))
            .map(|_| Mutex::new((Pricer::new(system), Plan::default())))
            .collect();
        Scorer { system, workers }
    }

    pub fn system(&self) -> &System {
        self.system
    }

    /// Runs `f` with this thread's pricer and plan buffers (inside a rayon job: the job's
    /// worker's, so its memo stays warm across calls).
    pub fn with_worker<R>(&self, f: impl FnOnce(&mut Pricer<'s>, &mut Plan) -> R) -> R {
        let i = rayon::current_thread_index().unwrap_or(0) % self.workers.len();
        let mut worker = self.workers[i].lock().unwrap_or_else(|e| e.into_inner());
        let (pricer, plan) = &mut *worker;
        f(pricer, plan)
    }

    /// The cost of every candidate, in the candidates' order.
    pub fn price_all(&self, candidates: &[(&Architecture, Execution)]) -> Vec<Result<Cost>> {
        use rayon::prelude::*;
        candidates
            .par_iter()
            .map(|(arch, execution)| {
                let i = rayon::current_thread_index().unwrap_or(0) % self.workers.len();
                // A worker's state stays consistent even if another candidate panicked.
                let mut worker = self.workers[i].lock().unwrap_or_else(|e| e.into_inner());
                let (pricer, plan) = &mut *worker;
                // `price` checks the execution; the model is checked before the plan multiplies
                // its sizes.
                arch.validate(&arch.source)?;
                plan_into(plan, arch, execution);
                price(arch, execution, plan, pricer)
            })
            .collect()
    }
}

/// One item of an op list whose `blocks` are layers: a whole layer (`count` copies), or an op
/// outside them.
enum Item<'a> {
    Layer(&'a BlockKey, LayerPrice, f64),
    Op(&'a OpInstance, OpPrice),
}

/// Walks an op list, pricing a layer block at a time and every other op alone. In a decode
/// list, attention outside the layers is left out (see `mean_decode_step`).
fn walk<'a>(
    ops: &'a [OpInstance],
    blocks: &'a [Block],
    dims: Option<&LayerDims>,
    pricer: &mut Pricer,
    mut visit: impl FnMut(Item<'a>),
) -> Result<()> {
    let dims = match (dims, blocks.is_empty()) {
        (Some(d), _) => pricer.dims_id(d),
        (None, true) => 0,
        (None, false) => {
            return Err(Error::Unsupported(
                "a plan's layer blocks without their dimensions".into(),
            ));
        }
    };
    let (mut i, mut next) = (0, blocks.iter().peekable());
    while i < ops.len() {
        if let Some(b) = next.next_if(|b| b.start == i) {
            if b.end > b.start {
                let count = ops[b.start].count as f64;
                visit(Item::Layer(
                    &b.key,
                    pricer.layer(dims, &b.key, &ops[b.start..b.end])?,
                    count,
                ));
            }
            i = b.end;
            continue;
        }
        let o = &ops[i];
        if !(o.phase == Phase::Decode && matches!(o.op, Op::Attention(_))) {
            visit(Item::Op(o, pricer.op(&o.op)?));
        }
        i += 1;
    }
    Ok(())
}

/// Model FLOPs of a forward op outside the layers (matmuls and attention count).
fn forward_model_flops(o: &OpInstance) -> f64 {
    if o.phase == Phase::Forward && matches!(o.op, Op::Matmul(_) | Op::Attention(_)) {
        o.op.flops() * o.count as f64
    } else {
        0.0
    }
}

/// The cost of an op list whose `blocks` are layers, and its forward model FLOPs.
fn sum_with_layers(
    ops: &[OpInstance],
    blocks: &[Block],
    dims: Option<&LayerDims>,
    pricer: &mut Pricer,
) -> Result<(PhaseCost, f64)> {
    let mut cost = PhaseCost::default();
    let mut model_flops = 0.0;
    walk(ops, blocks, dims, pricer, |item| match item {
        Item::Layer(_, layer, count) => {
            cost = cost.plus(layer.cost.scaled(count));
            model_flops += layer.model_flops * count;
        }
        Item::Op(o, price) => {
            cost.add(&o.op, &price, o.count as f64);
            model_flops += forward_model_flops(o);
        }
    })?;
    Ok((cost, model_flops))
}

#[cfg(test)]
fn sum(ops: &[OpInstance], pricer: &mut Pricer) -> Result<PhaseCost> {
    let mut c = PhaseCost::default();
    for o in ops {
        c.add(&o.op, &pricer.op(&o.op)?, o.count as f64);
    }
    Ok(c)
}

/// The decode step's cost at one context (attention ops moved to `context`), without the
/// context-free ops.
fn attention_at(decode: &[OpInstance], context: u64, pricer: &mut Pricer) -> Result<PhaseCost> {
    let mut c = PhaseCost::default();
    for o in decode.iter().filter(|o| matches!(o.op, Op::Attention(_))) {
        let op = at_context(&o.op, context);
        c.add(&op, &pricer.op(&op)?, o.count as f64);
    }
    Ok(c)
}

/// The mean decode step over `plan.decode_contexts`.
fn mean_decode_step(plan: &Plan, pricer: &mut Pricer) -> Result<PhaseCost> {
    let (fixed, _) = sum_with_layers(
        &plan.decode,
        &plan.decode_blocks,
        plan.decode_dims.as_ref(),
        pricer,
    )?;
    let (first, last) = (*plan.decode_contexts.start(), *plan.decode_contexts.end());
    let steps = last - first + 1;
    let attention_total = if steps <= EXACT_DECODE_STEPS {
        let mut total = PhaseCost::default();
        for c in first..=last {
            total = total.plus(attention_at(&plan.decode, c, pricer)?);
        }
        total
    } else {
        sampled_sum(&plan.decode, first, last, pricer)?
    };
    Ok(fixed.plus(attention_total.scaled(1.0 / steps as f64)))
}

/// Σ over integer contexts first..=last of the attention cost, from adaptively sampled contexts.
fn sampled_sum(
    decode: &[OpInstance],
    first: u64,
    last: u64,
    pricer: &mut Pricer,
) -> Result<PhaseCost> {
    let mut total = PhaseCost::default();
    // Start from equal segments; each is summed (inclusive of both ends) and the shared inner
    // ends are taken off once.
    let segments = DECODE_MIN_SEGMENTS.min(last - first);
    let mut lo = first;
    let mut f_lo = attention_at(decode, lo, pricer)?;
    for i in 1..=segments {
        let hi = first + (last - first) * i / segments;
        let f_hi = attention_at(decode, hi, pricer)?;
        total = total.plus(segment_sum(decode, (lo, f_lo), (hi, f_hi), 0, pricer)?);
        if i < segments {
            total = total.plus(f_hi.scaled(-1.0));
        }
        lo = hi;
        f_lo = f_hi;
    }
    Ok(total)
}

/// Σ over integer contexts a..=b, both ends included, splitting while the midpoint is off the
/// chord.
fn segment_sum(
    decode: &[OpInstance],
    (a, fa): (u64, PhaseCost),
    (b, fb): (u64, PhaseCost),
    depth: u32,
    pricer: &mut Pricer,
) -> Result<PhaseCost> {
    let n = (b - a + 1) as f64;
    if b - a <= 2 {
        // Few enough to sum directly.
        let mut total = fa.plus(fb);
        for c in a + 1..b {
            total = total.plus(attention_at(decode, c, pricer)?);
        }
        return Ok(if a == b { fa } else { total });
    }
    let m = a + (b - a) / 2;
    let fm = attention_at(decode, m, pricer)?;
    let t = (m - a) as f64 / (b - a) as f64;
    let chord = fa.scaled(1.0 - t).plus(fb.scaled(t));
    let off = |x: f64, y: f64| (x - y).abs() > DECODE_LINEARITY_TOLERANCE * x.abs().max(y.abs());
    let linear = !(off(fm.seconds, chord.seconds)
        || off(fm.error_weighted, chord.error_weighted)
        || off(fm.error_seconds, chord.error_seconds));
    if linear || depth >= DECODE_MAX_DEPTH {
        // A linear function summed over n evenly spaced integers: n × the mean of its ends.
        return Ok(fa.plus(fb).scaled(n / 2.0));
    }
    let left = segment_sum(decode, (a, fa), (m, fm), depth + 1, pricer)?;
    let right = segment_sum(decode, (m, fm), (b, fb), depth + 1, pricer)?;
    Ok(left.plus(right).plus(fm.scaled(-1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::arch;
    use crate::model::dtype::DType;
    use crate::model::execution::{InferenceSetup, Parallelism, Recompute, TrainingSetup};
    use crate::model::plan::{decode_ops, plan};

    fn execution(batch: u64, prompt: u64, generate: u64, dtype: DType) -> Execution {
        Execution {
            training: TrainingSetup {
                batch,
                seq: 1024,
                dtype,
                recompute: Recompute::None,
                dropout: false,
                fused_attention: true,
                parallelism: Parallelism::default(),
            },
            serving: InferenceSetup {
                batch,
                prompt,
                generate,
                dtype,
                kv_dtype: dtype,
                fused_attention: true,
                parallelism: Parallelism::default(),
                speculative_acceptance: None,
            },
        }
    }

    /// The mean decode step, summed step by step over every context.
    fn step_by_step(a: &Architecture, e: &Execution, pricer: &mut Pricer) -> (f64, Option<f64>) {
        let mut total = PhaseCost::default();
        let contexts = e.serving.decode_contexts();
        let steps = contexts.clone().count() as f64;
        for c in contexts {
            total = total.plus(sum(&decode_ops(a, &e.serving, c), pricer).unwrap());
        }
        (total.seconds / steps, total.error_pct())
    }

    /// Sampled decode agrees with the step-by-step sum for every shipped model, on a calibrated
    /// and an uncalibrated GPU, short and long generations, windowed and MoE models.
    #[test]
    fn sampled_decode_matches_the_step_by_step_sum() {
        let systems = [
            System::load("h100-sxm", None, false).unwrap(),
            System::load("h100-sxm", None, true).unwrap(),
            System::load("a100-sxm-80gb", None, true).unwrap(),
            System::load("lavapipe", None, false).unwrap(),
        ];
        let mut worst: f64 = 0.0;
        for system in &systems {
            let dtype = if system.hw.name == "lavapipe" {
                DType::Fp32
            } else {
                DType::Bf16
            };
            for name in arch::model_names() {
                let a = arch::load(name).unwrap();
                for (batch, prompt, generate) in [(1, 1024, 256), (8, 100, 3000), (3, 4000, 65)] {
                    let e = execution(batch, prompt, generate, dtype);
                    let mut pricer = Pricer::new(system);
                    let cost = price(&a, &e, &plan(&a, &e), &mut pricer).unwrap();
                    let (tpot, err) = step_by_step(&a, &e, &mut pricer);
                    let rel = (cost.decode.seconds - tpot).abs() / tpot;
                    worst = worst.max(rel);
                    assert!(rel < 1e-4, "{name} on {}: {rel:e}", system.hw.name);
                    match (cost.decode.error_pct(), err) {
                        (Some(x), Some(y)) => assert!((x - y).abs() / y < 1e-4, "{x} vs {y}"),
                        (x, y) => assert_eq!(x.is_some(), y.is_some()),
                    }
                }
            }
        }
        eprintln!("worst sampled-decode error: {worst:e}");
    }

    /// Pricing a layer at a time (memoized by its key) gives what pricing every op gives, for
    /// candidates that share layers with earlier ones (one pricer across all of them).
    #[test]
    fn layers_priced_whole_equal_their_ops() {
        let system = System::load("h100-sxm", None, false).unwrap();
        let mut shared = Pricer::new(&system);
        for name in arch::model_names() {
            let base = arch::load(name).unwrap();
            for layers in [base.num_layers, base.num_layers + 3] {
                for recompute in [Recompute::None, Recompute::Selective, Recompute::Full] {
                    let mut a = base.clone();
                    a.num_layers = layers;
                    let mut e = execution(2, 300, 100, DType::Bf16);
                    e.training.recompute = recompute;
                    e.training.fused_attention = recompute != Recompute::Selective;
                    let p = plan(&a, &e);
                    let cost = price(&a, &e, &p, &mut shared).unwrap();
                    let mut fresh = Pricer::new(&system);
                    for (whole, ops) in [(cost.training, &p.training), (cost.prefill, &p.prefill)] {
                        let each = sum(ops, &mut fresh).unwrap();
                        for (x, y) in [
                            (whole.seconds, each.seconds),
                            (whole.flops, each.flops),
                            (whole.bytes, each.bytes),
                            (whole.error_weighted, each.error_weighted),
                        ] {
                            assert!((x - y).abs() <= 1e-12 * y.abs(), "{name}: {x} vs {y}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn short_generations_are_summed_exactly() {
        let system = System::load("h100-sxm", None, false).unwrap();
        let a = arch::load("llama-3-8b").unwrap();
        let e = execution(2, 512, EXACT_DECODE_STEPS + 1, DType::Bf16);
        let mut pricer = Pricer::new(&system);
        let cost = price(&a, &e, &plan(&a, &e), &mut pricer).unwrap();
        let (tpot, _) = step_by_step(&a, &e, &mut pricer);
        assert!((cost.decode.seconds - tpot).abs() / tpot < 1e-12);
    }

    #[test]
    fn the_memo_prices_each_shape_once() {
        let system = System::load("h100-sxm", None, true).unwrap();
        let a = arch::load("mixtral-8x7b").unwrap();
        let e = execution(4, 1024, 256, DType::Bf16);
        let p = plan(&a, &e);
        let mut pricer = Pricer::new(&system);
        let first = price(&a, &e, &p, &mut pricer).unwrap();
        let shapes = pricer.memo_len();
        let again = price(&a, &e, &p, &mut pricer).unwrap();
        assert_eq!(first, again);
        assert_eq!(pricer.memo_len(), shapes);
        // A fresh pricer gives the same numbers.
        assert_eq!(price(&a, &e, &p, &mut Pricer::new(&system)).unwrap(), first);
    }

    /// Layers are remembered by their dimensions as well as their key: models that differ only
    /// in a layer dimension (the key's shape and kind the same) priced by one pricer, in turns,
    /// cost what fresh pricers say.
    #[test]
    fn one_pricer_keeps_apart_layers_of_different_dimensions() {
        let system = System::load("h100-sxm", None, true).unwrap();
        let base = arch::load("llama-2-7b").unwrap();
        let wider = Architecture {
            intermediate_size: base.intermediate_size + 1024,
            ..base.clone()
        };
        let e = execution(2, 512, 16, DType::Bf16);
        let mut shared = Pricer::new(&system);
        for _ in 0..2 {
            for a in [&base, &wider] {
                let p = plan(a, &e);
                let fresh = price(a, &e, &p, &mut Pricer::new(&system)).unwrap();
                assert_eq!(price(a, &e, &p, &mut shared).unwrap(), fresh);
            }
        }
        let mut cost = |a: &Architecture| price(a, &e, &plan(a, &e), &mut shared).unwrap();
        assert!(cost(&wider).training.seconds > cost(&base).training.seconds);
    }

    /// Tensor parallelism halves each rank's layer FLOPs and adds the all-reduces; data
    /// parallelism adds the gradient exchange once per step; model FLOPs per token stay.
    #[test]
    fn layouts_split_the_work_and_add_the_exchanges() {
        let system = System::load("h100-sxm", None, true).unwrap();
        let a = arch::load("llama-2-7b").unwrap();
        let one = execution(8, 512, 16, DType::Bf16);
        let mut split = one;
        split.training.parallelism = Parallelism {
            tp: 2,
            dp: 2,
            ..Parallelism::default()
        };
        let cost = |e: &Execution| price(&a, e, &plan(&a, e), &mut Pricer::new(&system)).unwrap();
        let (c1, c2) = (cost(&one), cost(&split));
        assert_eq!(c1.training.comm_seconds, 0.0);
        assert!(c2.training.comm_seconds > 0.0);
        assert!(
            (c1.model_flops_per_token - c2.model_flops_per_token).abs()
                < 1e-6 * c1.model_flops_per_token
        );
        // Each of 4 GPUs does about a quarter of the step's FLOPs (the head and optimizer are
        // split too; only the norms are repeated).
        let share = c2.step.hardware_flops_per_gpu / c1.step.hardware_flops_per_gpu;
        assert!((0.24..0.26).contains(&share), "{share}");
        assert!(c2.step.data_parallel_s > 0.0);
        // Overlapped with the backward pass by default; exposed in full when not.
        let mut exposed = split;
        exposed.training.parallelism.overlap_grad_reduce = false;
        let c3 = cost(&exposed);
        assert_eq!(c3.step.data_parallel_exposed_s, c3.step.data_parallel_s);
        assert!(c3.training.seconds >= c2.training.seconds);
    }

    /// A pipeline of equal stages with no work outside them has the 1F1B bubble.
    #[test]
    fn a_pipeline_waits_its_bubble() {
        let system = System::load("h100-sxm", None, true).unwrap();
        let a = arch::load("llama-2-7b").unwrap();
        let mut e = execution(32, 512, 16, DType::Bf16);
        e.training.parallelism = Parallelism {
            pp: 4,
            micro_batch: 1,
            ..Parallelism::default()
        };
        let c = price(&a, &e, &plan(&a, &e), &mut Pricer::new(&system)).unwrap();
        assert_eq!(c.step.microbatches, 32);
        // (p − 1)/(m + p − 1) for equal stages; the embedding and head make the stages a
        // little uneven.
        let equal = 3.0 / 35.0;
        assert!(
            (c.step.bubble_fraction - equal).abs() < 0.02,
            "{}",
            c.step.bubble_fraction
        );
    }
}
