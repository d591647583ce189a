//! Runs a space: realize every candidate, price the valid ones on every core, score them, drop
//! those that break a constraint (counted by reason), and rank the rest by Pareto dominance —
//! with each cost's error bar, also which candidates could be on the frontier.

use crate::error::{Error, Result};
use crate::model::frontier::objectives::{
    Objective, Scores, law_parameters, score, use_measured_loss,
};
use crate::model::frontier::pareto::{self, Sense};
use crate::model::frontier::space::{Point, Space};
use crate::model::price::Scorer;
use rayon::prelude::*;

/// An objective and whether it is minimized or maximized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Goal {
    pub objective: Objective,
    pub sense: Sense,
}

impl Goal {
    pub fn minimize(&self) -> bool {
        matches!(self.sense, Sense::Minimize)
    }
}

/// The space's objectives, checked.
pub fn goals(space: &Space) -> Result<Vec<Goal>> {
    let o = &space.objectives;
    let mut goals = Vec::new();
    for (names, sense, key) in [
        (&o.minimize, Sense::Minimize, "objectives.minimize"),
        (&o.maximize, Sense::Maximize, "objectives.maximize"),
    ] {
        for name in names {
            let objective = Objective::by_name(name).ok_or_else(|| {
                Error::field(
                    &space.file,
                    key,
                    format!(
                        "unknown objective '{name}' (known: {})",
                        Objective::ALL.map(Objective::name).join(", ")
                    ),
                )
            })?;
            if goals.iter().any(|g: &Goal| g.objective == objective) {
                return Err(Error::field(
                    &space.file,
                    key,
                    format!("'{name}' is named twice"),
                ));
            }
            goals.push(Goal { objective, sense });
        }
    }
    if goals.is_empty() {
        return Err(Error::field(
            &space.file,
            "objectives",
            "name at least one objective to minimize or maximize",
        ));
    }
    Ok(goals)
}

/// A valid, priced candidate: its point, and the value and bar of each goal.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub point: Point,
    pub values: Vec<f64>,
    pub bars_pct: Vec<f64>,
    /// The loss is measured (joined from the space's `quality.measured`).
    pub loss_measured: bool,
}

/// The ranked candidates of a space.
#[derive(Debug, Clone)]
pub struct Frontier {
    pub goals: Vec<Goal>,
    /// Candidates drawn (grid points or distinct samples).
    pub drawn: u64,
    pub candidates: Vec<Candidate>,
    /// Why the others were left out, with how many each.
    pub invalid: Vec<(String, u64)>,
    /// 0 for the Pareto frontier, then each next front.
    pub ranks: Vec<u32>,
    pub crowding: Vec<f64>,
    /// Could be on the frontier within the candidates' error bars.
    pub possibly_optimal: Vec<bool>,
    /// The hypervolume of the frontier for 2 or 3 objectives, against the worst value of each.
    pub hypervolume: Option<f64>,
}

impl Frontier {
    /// Candidate indices ordered by rank, then by the first objective.
    pub fn ordered(&self) -> Vec<usize> {
        let first = self.goals[0];
        let key = |i: usize| {
            let v = self.candidates[i].values[0];
            if first.minimize() { v } else { -v }
        };
        let mut order: Vec<usize> = (0..self.candidates.len()).collect();
        order.sort_by(|&a, &b| {
            self.ranks[a]
                .cmp(&self.ranks[b])
                .then(key(a).total_cmp(&key(b)))
        });
        order
    }
}

/// Candidates realized, priced and scored per chunk (bounds the memory of a large space).
const CHUNK: usize = 1 << 16;

/// What pricing one point gave.
enum Outcome {
    Valid(Box<Scores>),
    Invalid(String),
    /// A mixture-of-experts candidate the quality law has no parameter count for.
    NeedsMoeParameters,
}

/// Prices and scores one candidate on `scorer`'s worker for this thread.
fn evaluate(space: &Space, scorer: &Scorer, point: &[u32], wants_loss: bool) -> Outcome {
    let (a, e) = match space.realize(point) {
        Ok(x) => x,
        Err(reason) => return Outcome::Invalid(reason),
    };
    if wants_loss && law_parameters(space, &a).is_none() {
        return Outcome::NeedsMoeParameters;
    }
    let cost = scorer.with_worker(|pricer, plan| {
        crate::model::plan::plan_into(plan, &a, &e);
        crate::model::price::price(&a, &e, plan, pricer)
    });
    match cost {
        Ok(c) => {
            let mut s = score(space, &a, &e, &c, &scorer.system().hw);
            if let Some(loss) = space.measured_loss(point) {
                use_measured_loss(&mut s, loss);
            }
            match broken_constraint(space, &s) {
                Some(reason) => Outcome::Invalid(reason),
                None => Outcome::Valid(Box::new(s)),
            }
        }
        Err(err) => Outcome::Invalid(err.to_string()),
    }
}

/// The full scores of a point (for output): what `run` ranked, recomputed.
pub fn scores_of(space: &Space, scorer: &Scorer, point: &[u32]) -> Option<Scores> {
    match evaluate(space, scorer, point, false) {
        Outcome::Valid(s) => Some(*s),
        _ => None,
    }
}

/// Runs `space` on `scorer`'s system; `progress` hears how many candidates are done.
pub fn run(space: &Space, scorer: &Scorer, progress: &dyn Fn(u64)) -> Result<Frontier> {
    let goals = goals(space)?;
    let points = space.points();
    let drawn = points.len() as u64;
    let wants_loss = goals.iter().any(|g| g.objective == Objective::Loss);
    let mut candidates = Vec::new();
    let mut invalid: Vec<(String, u64)> = Vec::new();
    let mut done = 0u64;
    for chunk in points.chunks(CHUNK) {
        let outcomes: Vec<Outcome> = chunk
            .par_iter()
            .map(|p| evaluate(space, scorer, p, wants_loss))
            .collect();
        for (p, o) in chunk.iter().zip(outcomes) {
            match o {
                Outcome::Valid(s) => candidates.push(Candidate {
                    point: p.clone(),
                    values: goals.iter().map(|g| s.get(g.objective)).collect(),
                    bars_pct: goals.iter().map(|g| s.bar(g.objective)).collect(),
                    loss_measured: s.loss_measured,
                }),
                Outcome::Invalid(reason) => match invalid.iter_mut().find(|(r, _)| *r == reason) {
                    Some((_, n)) => *n += 1,
                    None => invalid.push((reason, 1)),
                },
                Outcome::NeedsMoeParameters => {
                    return Err(Error::field(
                        &space.file,
                        "quality.moe_parameters",
                        "mixture-of-experts candidates need it: \"total\", \"active\" or \"non_embedding\" (no published rule is settled enough to default)",
                    ));
                }
            }
        }
        done += chunk.len() as u64;
        progress(done);
    }
    invalid.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    if candidates.is_empty() {
        let why: Vec<String> = invalid.iter().map(|(r, n)| format!("{n} × {r}")).collect();
        return Err(Error::field(
            &space.file,
            "grid",
            format!(
                "none of the {drawn} candidates is valid: {}",
                why.join("; ")
            ),
        ));
    }
    Ok(rank(goals, drawn, candidates, invalid))
}

/// The first constraint `s` breaks, if any.
fn broken_constraint(space: &Space, s: &Scores) -> Option<String> {
    let c = &space.constraints;
    let params = s.get(Objective::ParamsTotal);
    if c.fits_training && !s.fits_training {
        return Some("does not fit in memory for training".into());
    }
    if c.fits_serving && !s.fits_serving {
        return Some("does not fit in memory for serving".into());
    }
    if c.params_min.is_some_and(|m| params < m) {
        return Some("fewer parameters than params_min".into());
    }
    if c.params_max.is_some_and(|m| params > m) {
        return Some("more parameters than params_max".into());
    }
    if c.ttft_max_s.is_some_and(|m| s.get(Objective::TtftS) > m) {
        return Some("time to first token above ttft_max_s".into());
    }
    if c.tpot_max_s.is_some_and(|m| s.get(Objective::TpotS) > m) {
        return Some("time per output token above tpot_max_s".into());
    }
    None
}

/// Pareto ranks, crowding, the uncertainty-aware frontier and the hypervolume.
fn rank(
    goals: Vec<Goal>,
    drawn: u64,
    candidates: Vec<Candidate>,
    invalid: Vec<(String, u64)>,
) -> Frontier {
    let senses: Vec<Sense> = goals.iter().map(|g| g.sense).collect();
    let nominal: Vec<&[f64]> = candidates.iter().map(|c| c.values.as_slice()).collect();
    let bounded = |sign: f64| -> Vec<Vec<f64>> {
        candidates
            .iter()
            .map(|c| {
                c.values
                    .iter()
                    .zip(&c.bars_pct)
                    .map(|(v, b)| v * (1.0 + sign * b / 100.0))
                    .collect()
            })
            .collect()
    };
    let (lo, hi) = (bounded(-1.0), bounded(1.0));
    let ranks = pareto::pareto_ranks(&nominal, &senses);
    let crowding = pareto::crowding_distance(&nominal, &senses, &ranks);
    let lo: Vec<&[f64]> = lo.iter().map(Vec::as_slice).collect();
    let hi: Vec<&[f64]> = hi.iter().map(Vec::as_slice).collect();
    let possibly_optimal = pareto::possibly_optimal(&nominal, &lo, &hi, &senses);
    let hypervolume = (2..=3).contains(&goals.len()).then(|| {
        // Against the worst value of each objective among the candidates.
        let reference: Vec<f64> = (0..goals.len())
            .map(|k| {
                let col = nominal.iter().map(|v| v[k]).filter(|v| v.is_finite());
                if goals[k].minimize() {
                    col.fold(f64::NEG_INFINITY, f64::max)
                } else {
                    col.fold(f64::INFINITY, f64::min)
                }
            })
            .collect();
        let front: Vec<&[f64]> = nominal
            .iter()
            .zip(&ranks)
            .filter(|(_, r)| **r == 0)
            .map(|(v, _)| *v)
            .collect();
        pareto::hypervolume(&front, &senses, &reference)
    });
    Frontier {
        goals,
        drawn,
        candidates,
        invalid,
        ranks,
        crowding,
        possibly_optimal,
        hypervolume: hypervolume.flatten(),
    }
}
