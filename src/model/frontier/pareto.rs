//! Pareto tools for multi-objective search: non-dominated sorting into all ranks, NSGA-II
//! crowding distance, the hypervolume in up to 3 objectives, and the frontier under error bars.
//!
//! `points[i]` holds candidate i's objective values in the order of `senses`. Any row type that
//! derefs to `[f64]` serves: `Vec<f64>`, `&[f64]`, or `[f64; K]`, which keeps a million rows in
//! one allocation. A row whose length differs from `senses.len()` is a bug and panics.
//!
//! # Value rules (every function)
//!
//! - a *dominates* b when a is at least as good as b in every objective and strictly better in
//!   one ([`dominates`]). Equal candidates (duplicates) do not dominate each other, so they share a
//!   rank.
//! - Infinities are ordinary values: −∞ is the best a minimized objective can take. −0.0 = 0.0.
//! - A candidate with a NaN in any objective is dominated by every candidate without one and
//!   dominates none, not even another NaN candidate. So the NaN candidates share one rank, the one
//!   after the last rank of the others (rank 0 when every candidate has a NaN).
//!
//! # Cost, for N candidates and M objectives
//!
//! Ranks: O(N log N) for M ≤ 2, O(N log N log F) for M = 3 (F fronts), ENS-BS beyond (O(M N²) at
//! worst). Crowding: O(M N log N). Hypervolume: O(N log N). `possibly_optimal`: O(N log N) for
//! M ≤ 3, O(M N |frontier|) beyond.

use std::collections::BTreeMap;

/// Whether an objective is minimized or maximized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sense {
    Minimize,
    Maximize,
}

/// Whether `a` dominates `b` under the module's rules (NaN included): the pairwise definition the
/// fast functions agree with.
pub fn dominates(a: &[f64], b: &[f64], senses: &[Sense]) -> bool {
    assert!(a.len() == senses.len() && b.len() == senses.len());
    let has_nan = |r: &[f64]| r.iter().any(|x| x.is_nan());
    if has_nan(a) {
        return false;
    }
    if has_nan(b) {
        return true;
    }
    let mut strictly = false;
    for ((&x, &y), &s) in a.iter().zip(b).zip(senses) {
        let (x, y) = (to_min(x, s), to_min(y, s));
        if x > y {
            return false;
        }
        strictly |= x < y;
    }
    strictly
}

/// Non-dominated sorting, all ranks: rank 0 is the Pareto frontier, rank r + 1 the frontier of
/// what remains without ranks 0..=r. Every candidate of rank r > 0 is dominated by some candidate
/// of rank r − 1. NaN candidates take the last rank (module docs).
///
/// For 2 objectives, a sweep in lexicographic order that puts each candidate on the first front
/// whose last member does not dominate it, found by binary search (after Jensen
/// 2003, "Reducing the run-time complexity of multiobjective EAs: the NSGA-II and other
/// algorithms"). For 3, the same sweep with a staircase of the last two objectives per front.
/// Beyond, ENS-BS (Zhang et al. 2015, "An efficient approach to nondominated sorting for
/// evolutionary multiobjective optimization").
pub fn pareto_ranks<P: AsRef<[f64]>>(points: &[P], senses: &[Sense]) -> Vec<u32> {
    let m = senses.len();
    let (keys, clean, nan) = clean_keys(points, senses);
    let (rows, of) = distinct_sorted(&keys, m);
    let distinct_ranks = rank_distinct(&rows, m);
    let mut ranks = vec![0; points.len()];
    let mut nan_rank = 0;
    for (&i, &d) in clean.iter().zip(&of) {
        let r = distinct_ranks[d as usize];
        ranks[i as usize] = r;
        nan_rank = nan_rank.max(r + 1);
    }
    for &i in &nan {
        ranks[i as usize] = nan_rank;
    }
    ranks
}

/// NSGA-II crowding distance within each rank (Deb et al. 2002, "A fast and elitist
/// multiobjective genetic algorithm: NSGA-II"): per objective, the members of a rank are sorted
/// and each gets the gap between its two neighbours over the rank's range in that objective,
/// summed over objectives. The first and last of each sort are infinite (ties at an extreme are
/// broken by index, so one of them is); a rank of one or two members is all infinite.
///
/// An objective whose range within the rank is zero or infinite adds nothing to interior members
/// (a gap over an infinite range means nothing); a member's NaN value leaves it out of that
/// objective's sort. `ranks` is normally [`pareto_ranks`]' output, but any grouping works.
pub fn crowding_distance<P: AsRef<[f64]>>(
    points: &[P],
    senses: &[Sense],
    ranks: &[u32],
) -> Vec<f64> {
    check(points, senses, "points");
    assert_eq!(ranks.len(), points.len(), "one rank per candidate");
    let m = senses.len();
    // (rank, candidate) in one integer, so grouping is one sort of plain integers.
    let mut order: Vec<u64> = ranks
        .iter()
        .zip(0..)
        .map(|(&r, i)| u64::from(r) << 32 | i)
        .collect();
    order.sort_unstable();
    let candidate = |e: u64| e as u32 as usize;
    let mut d = vec![0.0; points.len()];
    let (mut rows, mut sorted, mut local) = (Vec::new(), Vec::new(), Vec::new());
    for group in order.chunk_by(|a, b| a >> 32 == b >> 32) {
        if group.len() <= 2 {
            for &e in group {
                d[candidate(e)] = f64::INFINITY;
            }
            continue;
        }
        // The members' rows, gathered once: they lie anywhere in `points`.
        rows.clear();
        for &e in group {
            let row = points[candidate(e)].as_ref();
            rows.extend(row.iter().zip(senses).map(|(&x, &s)| to_min(x, s)));
        }
        local.clear();
        local.resize(group.len(), 0.0);
        for j in 0..m {
            sorted.clear();
            sorted.extend(
                rows.chunks_exact(m)
                    .zip(0..)
                    .filter(|(r, _)| !r[j].is_nan())
                    .map(|(r, k)| (key(r[j]), k)),
            );
            sorted.sort_unstable();
            let (Some(&(lo, first)), Some(&(hi, last))) = (sorted.first(), sorted.last()) else {
                continue;
            };
            local[first as usize] = f64::INFINITY;
            local[last as usize] = f64::INFINITY;
            let range = value(hi) - value(lo);
            if !(range.is_finite() && range > 0.0) {
                continue;
            }
            for w in sorted.windows(3) {
                local[w[1].1 as usize] += (value(w[2].0) - value(w[0].0)) / range;
            }
        }
        for (&e, &l) in group.iter().zip(&local) {
            d[candidate(e)] = l;
        }
    }
    d
}

/// The hypervolume dominated by `points` and bounded by `reference`: the measure of the region
/// each point is better than and the reference worse than, in every objective. For 1, 2 or 3
/// objectives; `None` for more, or when `reference` has a NaN.
///
/// Only points strictly better than the reference in every objective contribute; NaN points
/// contribute nothing; dominated points and duplicates may be present. An infinite coordinate on
/// the better side gives an infinite volume. 2 objectives: a sort and a sweep; 3: a sweep over the
/// third objective keeping the area of the first two in a staircase (Beume et al. 2009, "On the
/// complexity of computing the hypervolume indicator"), O(N log N) both.
pub fn hypervolume<P: AsRef<[f64]>>(
    points: &[P],
    senses: &[Sense],
    reference: &[f64],
) -> Option<f64> {
    let m = senses.len();
    assert_eq!(reference.len(), m, "one reference value per objective");
    if !(1..=3).contains(&m) || reference.iter().any(|x| x.is_nan()) {
        return None;
    }
    let r: Vec<f64> = reference
        .iter()
        .zip(senses)
        .map(|(&x, &s)| to_min(x, s))
        .collect();
    check(points, senses, "points");
    let mut inside: Vec<[f64; 3]> = Vec::new();
    for p in points {
        let mut q = [0.0; 3];
        for (j, (&x, &s)) in p.as_ref().iter().zip(senses).enumerate() {
            q[j] = to_min(x, s);
        }
        // NaN fails the comparison too.
        if q.iter().zip(&r).all(|(x, r)| x < r) {
            inside.push(q);
        }
    }
    Some(match m {
        1 => inside.iter().map(|p| r[0] - p[0]).fold(0.0, f64::max),
        2 => area2(&mut inside, r[0], r[1]),
        _ => volume3(&mut inside, &r),
    })
}

/// The frontier under error bars. Candidate i's value in each objective lies somewhere in the
/// hull of `lo[i]`, `nominal[i]` and `hi[i]` (the bar, in either order; a nominal value outside
/// its bar widens it). Candidate j *certainly dominates* i when j's worst value is at least as
/// good as i's best in every objective and strictly better in one; i is possibly optimal unless
/// some j certainly dominates it.
///
/// So the result contains the nominal frontier (rank 0 of `nominal`), and equals it when every bar
/// is zero. A NaN in any of a candidate's values makes it a NaN candidate: possibly optimal only
/// when every candidate is one.
///
/// For up to 3 objectives, one sweep in lexicographic order over the best and worst points
/// together, asking of each best point whether an earlier worst point covers it (a running minimum
/// for 2 objectives, a staircase for 3); beyond, each best point is checked against the frontier
/// of the worst points.
pub fn possibly_optimal<P: AsRef<[f64]>>(
    nominal: &[P],
    lo: &[P],
    hi: &[P],
    senses: &[Sense],
) -> Vec<bool> {
    let (n, m) = (nominal.len(), senses.len());
    assert!(
        lo.len() == n && hi.len() == n,
        "nominal, lo and hi differ in length"
    );
    check(nominal, senses, "nominal");
    check(lo, senses, "lo");
    check(hi, senses, "hi");
    let mut clean = Vec::with_capacity(n);
    let mut best = Vec::with_capacity(n * m);
    let mut worst = Vec::with_capacity(n * m);
    for (i, ((a, b), c)) in (0..).zip(nominal.iter().zip(lo).zip(hi)) {
        let (a, b, c) = (a.as_ref(), b.as_ref(), c.as_ref());
        if [a, b, c].iter().any(|r| r.iter().any(|x| x.is_nan())) {
            continue;
        }
        clean.push(i);
        for (((&a, &b), &c), &s) in a.iter().zip(b).zip(c).zip(senses) {
            let (a, b, c) = (to_min(a, s), to_min(b, s), to_min(c, s));
            best.push(key(a.min(b).min(c)));
            worst.push(key(a.max(b).max(c)));
        }
    }
    if clean.is_empty() {
        return vec![true; n];
    }
    let dominated = match m {
        2 => certainly_dominated_sweep::<2>(&best, &worst),
        3 => certainly_dominated_sweep::<3>(&best, &worst),
        _ => certainly_dominated_scan(&best, &worst, m),
    };
    let mut out = vec![false; n];
    for (&i, &d) in clean.iter().zip(&dominated) {
        out[i as usize] = !d;
    }
    out
}

/// A value turned to minimization. `+ 0.0` turns −0.0 into 0.0, so the integer keys agree with
/// `<` and `==`.
fn to_min(x: f64, s: Sense) -> f64 {
    match s {
        Sense::Minimize => x + 0.0,
        Sense::Maximize => -x + 0.0,
    }
}

/// An order-preserving map of non-NaN values to integers (−0.0 merged into 0.0 first): the sorts
/// and dominance tests below run on `u64`.
fn key(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 { !b } else { b | 1 << 63 }
}

/// The inverse of [`key`].
fn value(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
}

/// Panics unless every row has one value per objective.
fn check<P: AsRef<[f64]>>(rows: &[P], senses: &[Sense], what: &str) {
    assert!(!senses.is_empty(), "no objectives");
    assert!(
        u32::try_from(rows.len()).is_ok(),
        "more than 2^32 candidates"
    );
    for (i, row) in rows.iter().enumerate() {
        let len = row.as_ref().len();
        assert_eq!(len, senses.len(), "{what}[{i}]: one value per objective");
    }
}

/// The keys of the candidates without a NaN (flat, one row each), those candidates, and the
/// candidates with one.
fn clean_keys<P: AsRef<[f64]>>(points: &[P], senses: &[Sense]) -> (Vec<u64>, Vec<u32>, Vec<u32>) {
    check(points, senses, "points");
    let mut keys = Vec::with_capacity(points.len() * senses.len());
    let (mut clean, mut nan) = (Vec::with_capacity(points.len()), Vec::new());
    for (i, row) in (0..).zip(points) {
        let row = row.as_ref();
        if row.iter().any(|x| x.is_nan()) {
            nan.push(i);
        } else {
            clean.push(i);
            keys.extend(row.iter().zip(senses).map(|(&x, &s)| key(to_min(x, s))));
        }
    }
    (keys, clean, nan)
}

/// The distinct rows of `keys` (flat, `m` wide) in lexicographic order, flat, and for each input
/// row the index of its distinct row. In that order a row's dominators all come before it, and
/// any earlier row that is weakly better in objectives 1.. dominates it: it is no worse in
/// objective 0 and, being distinct, strictly better somewhere.
fn distinct_sorted(keys: &[u64], m: usize) -> (Vec<u64>, Vec<u32>) {
    match m {
        1 => distinct_sorted_fixed::<1>(keys),
        2 => distinct_sorted_fixed::<2>(keys),
        3 => distinct_sorted_fixed::<3>(keys),
        _ => {
            let row = |i: u32| &keys[i as usize * m..(i as usize + 1) * m];
            let mut order: Vec<u32> = (0..(keys.len() / m) as u32).collect();
            order.sort_unstable_by(|&a, &b| row(a).cmp(row(b)));
            let mut rows: Vec<u64> = Vec::new();
            let mut of = vec![0; order.len()];
            for &i in &order {
                if rows.len() < m || rows[rows.len() - m..] != *row(i) {
                    rows.extend_from_slice(row(i));
                }
                of[i as usize] = (rows.len() / m - 1) as u32;
            }
            (rows, of)
        }
    }
}

/// [`distinct_sorted`] for a width known at compile time: sorting fixed arrays avoids an
/// indirection per comparison.
fn distinct_sorted_fixed<const D: usize>(keys: &[u64]) -> (Vec<u64>, Vec<u32>) {
    let mut sorted: Vec<([u64; D], u32)> = keys
        .chunks_exact(D)
        .zip(0..)
        .map(|(r, i)| (r.try_into().expect("D wide"), i))
        .collect();
    // Equal rows merge whatever their order, so the index need not break ties.
    sorted.sort_unstable_by_key(|&(r, _)| r);
    let mut rows = Vec::new();
    let mut of = vec![0; sorted.len()];
    let mut last = None;
    for (r, i) in sorted {
        if last != Some(r) {
            rows.extend_from_slice(&r);
            last = Some(r);
        }
        of[i as usize] = (rows.len() / D - 1) as u32;
    }
    (rows, of)
}

/// Ranks of distinct rows in lexicographic order ([`distinct_sorted`]). Each row joins the first
/// front that does not dominate it. If front k dominates a row, so does every front before k (the
/// dominator has a dominator there), so the front is found by binary search.
fn rank_distinct(rows: &[u64], m: usize) -> Vec<u32> {
    let n = rows.len() / m;
    match m {
        1 => (0..n as u32).collect(),
        2 => {
            // A front's members fall in objective 1 as they come, so its last member is its best
            // there and alone decides whether the front dominates a later row.
            let mut last: Vec<u64> = Vec::new();
            rows.chunks_exact(2)
                .map(|p| {
                    let k = last.partition_point(|&y| y <= p[1]);
                    if k == last.len() {
                        last.push(p[1]);
                    } else {
                        last[k] = p[1];
                    }
                    k as u32
                })
                .collect()
        }
        3 => {
            let mut fronts: Vec<Staircase> = Vec::new();
            rows.chunks_exact(3)
                .map(|p| {
                    let k = fronts.partition_point(|f| f.covers(p[1], p[2]));
                    if k == fronts.len() {
                        fronts.push(Staircase::default());
                    }
                    fronts[k].insert(p[1], p[2]);
                    k as u32
                })
                .collect()
        }
        _ => {
            let mut fronts: Vec<Vec<usize>> = Vec::new();
            let tail = |i: usize| &rows[i * m + 1..(i + 1) * m];
            (0..n)
                .map(|i| {
                    // Later members are nearer in the order, so likelier dominators: scan back.
                    let k = fronts.partition_point(|f| {
                        f.iter().rev().any(|&q| weakly_better(tail(q), tail(i)))
                    });
                    if k == fronts.len() {
                        fronts.push(Vec::new());
                    }
                    fronts[k].push(i);
                    k as u32
                })
                .collect()
        }
    }
}

fn weakly_better(a: &[u64], b: &[u64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x <= y)
}

/// The minimal points (y, z) of a set in two objectives: z falls strictly as y rises, so whether
/// the set holds a point weakly better than (y, z) is decided by its last point with y' ≤ y.
/// Kept in a sorted vector while small (a binary search, short moves; random fronts stay in the
/// hundreds) and in a B-tree beyond, so that one front of a million points stays O(log N) a step.
enum Staircase {
    Small(Vec<(u64, u64)>),
    Large(BTreeMap<u64, u64>),
}

impl Default for Staircase {
    fn default() -> Self {
        Staircase::Small(Vec::new())
    }
}

impl Staircase {
    const SMALL: usize = 512;

    /// Whether some point (y', z') has y' ≤ y and z' ≤ z.
    fn covers(&self, y: u64, z: u64) -> bool {
        match self {
            Staircase::Small(v) => {
                let i = v.partition_point(|&(k, _)| k <= y);
                i > 0 && v[i - 1].1 <= z
            }
            Staircase::Large(t) => t.range(..=y).next_back().is_some_and(|(_, &w)| w <= z),
        }
    }

    /// Adds (y, z) unless it is covered.
    fn put(&mut self, y: u64, z: u64) {
        if !self.covers(y, z) {
            self.insert(y, z);
        }
    }

    /// Adds (y, z), which no point covers, dropping the points it covers: a run from y on, since
    /// z falls along the staircase.
    fn insert(&mut self, y: u64, z: u64) {
        match self {
            Staircase::Small(v) => {
                let from = v.partition_point(|&(k, _)| k < y);
                let to = from + v[from..].partition_point(|&(_, w)| w >= z);
                v.splice(from..to, [(y, z)]);
                if v.len() > Self::SMALL {
                    *self = Staircase::Large(v.iter().copied().collect());
                }
            }
            Staircase::Large(t) => {
                while let Some((&k, &w)) = t.range(y..).next()
                    && w >= z
                {
                    t.remove(&k);
                }
                t.insert(y, z);
            }
        }
    }
}

/// For each best point, whether a worst point dominates it, for 2 or 3 objectives. Both kinds are
/// swept in lexicographic order, a best point before an equal worst point; then the worst points
/// seen before a best point b are the ones lexicographically below b, which include all that
/// dominate b, and one of them dominates b exactly when it is weakly better in objectives 1...
fn certainly_dominated_sweep<const D: usize>(best: &[u64], worst: &[u64]) -> Vec<bool> {
    let n = best.len() / D;
    let as_row = |r: &[u64]| -> [u64; D] { r.try_into().expect("D wide") };
    let mut events: Vec<([u64; D], bool, u32)> = Vec::with_capacity(2 * n);
    for (i, (b, w)) in (0..).zip(best.chunks_exact(D).zip(worst.chunks_exact(D))) {
        events.push((as_row(b), false, i));
        events.push((as_row(w), true, i));
    }
    events.sort_unstable();
    let mut out = vec![false; n];
    // Objectives 1.. of the worst points seen: their running minimum, or their staircase.
    let mut min = u64::MAX; // above every key
    let mut seen = Staircase::default();
    for (p, is_worst, i) in events {
        let tail = &p[1..];
        match (tail.len(), is_worst) {
            (1, true) => min = min.min(tail[0]),
            (1, false) => out[i as usize] = min <= tail[0],
            (_, true) => seen.put(tail[0], tail[1]),
            (_, false) => out[i as usize] = seen.covers(tail[0], tail[1]),
        }
    }
    out
}

/// [`certainly_dominated_sweep`] for any number of objectives: each best point against the
/// frontier of the worst points, only the part lexicographically below it.
fn certainly_dominated_scan(best: &[u64], worst: &[u64], m: usize) -> Vec<bool> {
    let (rows, _) = distinct_sorted(worst, m);
    let mut front: Vec<&[u64]> = Vec::new();
    for p in rows.chunks_exact(m) {
        if !front.iter().any(|q| weakly_better(&q[1..], &p[1..])) {
            front.push(p);
        }
    }
    best.chunks_exact(m)
        .map(|b| {
            let below = front.partition_point(|q| *q < b);
            front[..below].iter().any(|q| weakly_better(q, b))
        })
        .collect()
}

/// The area dominated by 2-objective points (all strictly below the reference) up to (rx, ry).
fn area2(points: &mut [[f64; 3]], rx: f64, ry: f64) -> f64 {
    points.sort_unstable_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    let mut floor = ry;
    let mut area = 0.0;
    for p in points.iter() {
        if p[1] < floor {
            area += rect(rx - p[0], floor - p[1]);
            floor = p[1];
        }
    }
    area
}

/// The volume dominated by 3-objective points (all strictly below the reference) up to `r`:
/// slabs between successive values of the third objective, each the area of the points below it.
fn volume3(points: &mut [[f64; 3]], r: &[f64]) -> f64 {
    points.sort_unstable_by(|a, b| a[2].total_cmp(&b[2]));
    // x → (x, y) of the minimal points so far; y falls strictly as x rises.
    let mut stair: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    let (mut area, mut volume) = (0.0, 0.0);
    for (i, p) in points.iter().enumerate() {
        area += add_area(&mut stair, p[0], p[1], r[0], r[1]);
        let next = points.get(i + 1).map_or(r[2], |q| q[2]);
        volume += rect(area, next - p[2]);
    }
    volume
}

/// Adds (x, y) to the staircase and returns the area it adds below (rx, ry): the strip right of
/// x between y and the staircase's height, which steps down at each point it removes.
fn add_area(stair: &mut BTreeMap<u64, (f64, f64)>, x: f64, y: f64, rx: f64, ry: f64) -> f64 {
    let kx = key(x);
    if stair
        .range(..=kx)
        .next_back()
        .is_some_and(|(_, &(_, sy))| sy <= y)
    {
        return 0.0;
    }
    let mut height = stair.range(..kx).next_back().map_or(ry, |(_, &(_, sy))| sy);
    let (mut from, mut added) = (x, 0.0);
    loop {
        let next = stair.range(kx..).next().map(|(&k, &q)| (k, q));
        match next {
            Some((k, (qx, qy))) if qy >= y => {
                added += rect(qx - from, height - y);
                (from, height) = (qx, qy);
                stair.remove(&k);
            }
            _ => {
                let to = next.map_or(rx, |(_, (qx, _))| qx);
                added += rect(to - from, height - y);
                break;
            }
        }
    }
    stair.insert(kx, (x, y));
    added
}

/// A rectangle's area, zero when a side is not positive: keeps ∞ · 0 and ∞ − ∞ (empty slabs at
/// infinite coordinates) out of the sums.
fn rect(w: f64, h: f64) -> f64 {
    if w > 0.0 && h > 0.0 { w * h } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Sense::{Maximize as Max, Minimize as Min};
    use proptest::collection::vec;
    use proptest::prelude::*;

    const NAN: f64 = f64::NAN;
    const INF: f64 = f64::INFINITY;

    /// Mostly a few small integers (ties, duplicates), some spread values, ±∞, −0.0 and NaN.
    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            10 => (0..4i32).prop_map(f64::from),
            3 => -1e3..1e3f64,
            1 => Just(INF),
            1 => Just(-INF),
            1 => Just(-0.0),
            1 => Just(NAN),
        ]
    }

    fn sense() -> impl Strategy<Value = Sense> {
        prop_oneof![Just(Min), Just(Max)]
    }

    /// 1–4 objectives and up to `max_n` candidates, a prefix repeated to add duplicates.
    fn problem(max_n: usize) -> impl Strategy<Value = (Vec<Sense>, Vec<Vec<f64>>)> {
        (1..=4usize)
            .prop_flat_map(move |m| (vec(sense(), m), vec(vec(value(), m), 0..max_n), 0..4usize))
            .prop_map(|(s, mut p, dup)| {
                let k = dup.min(p.len());
                p.extend_from_within(..k);
                (s, p)
            })
    }

    /// Peels fronts by the definition: O(N²) per front.
    fn ranks_brute(points: &[Vec<f64>], senses: &[Sense]) -> Vec<u32> {
        let n = points.len();
        let mut rank = vec![u32::MAX; n];
        let mut r = 0;
        while rank.contains(&u32::MAX) {
            let front: Vec<usize> = (0..n)
                .filter(|&i| {
                    rank[i] == u32::MAX
                        && !(0..n).any(|j| {
                            rank[j] == u32::MAX && dominates(&points[j], &points[i], senses)
                        })
                })
                .collect();
            for i in front {
                rank[i] = r;
            }
            r += 1;
        }
        rank
    }

    /// `possibly_optimal` by its definition, O(N²).
    fn possibly_optimal_brute(
        nom: &[Vec<f64>],
        lo: &[Vec<f64>],
        hi: &[Vec<f64>],
        senses: &[Sense],
    ) -> Vec<bool> {
        let n = nom.len();
        let nan = |i: usize| {
            [&nom[i], &lo[i], &hi[i]]
                .iter()
                .any(|r| r.iter().any(|x| x.is_nan()))
        };
        let hull = |i: usize, j: usize| {
            let v = [nom[i][j], lo[i][j], hi[i][j]].map(|x| to_min(x, senses[j]));
            (v[0].min(v[1]).min(v[2]), v[0].max(v[1]).max(v[2]))
        };
        let certainly = |a: usize, b: usize| {
            if nan(a) {
                return false;
            }
            if nan(b) {
                return true;
            }
            let pairs: Vec<(f64, f64)> = (0..senses.len())
                .map(|j| (hull(a, j).1, hull(b, j).0))
                .collect();
            pairs.iter().all(|(w, b)| w <= b) && pairs.iter().any(|(w, b)| w < b)
        };
        (0..n).map(|i| !(0..n).any(|j| certainly(j, i))).collect()
    }

    /// Cells of the unit grid inside the dominated region, for integer coordinates.
    fn hypervolume_brute(points: &[Vec<f64>], senses: &[Sense], r: &[f64]) -> f64 {
        let m = senses.len();
        let lo = points
            .iter()
            .flatten()
            .chain(r)
            .filter(|x| !x.is_nan())
            .fold(INF, |a, &b| a.min(b));
        let hi = points
            .iter()
            .flatten()
            .chain(r)
            .filter(|x| !x.is_nan())
            .fold(-INF, |a, &b| a.max(b));
        let (lo, hi) = (lo as i64, hi as i64);
        let inside = |c: &[i64]| {
            points.iter().any(|p| {
                (0..m).all(|j| {
                    let (c0, c1) = (c[j] as f64, c[j] as f64 + 1.0);
                    match senses[j] {
                        Min => p[j] <= c0 && c1 <= r[j],
                        Max => r[j] <= c0 && c1 <= p[j],
                    }
                })
            })
        };
        let mut count = 0;
        let mut c = vec![lo; m];
        loop {
            count += inside(&c) as u32;
            let mut j = 0;
            while j < m && c[j] + 1 >= hi {
                c[j] = lo;
                j += 1;
            }
            if j == m {
                break;
            }
            c[j] += 1;
        }
        if lo >= hi { 0.0 } else { count as f64 }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn ranks_match_brute_force((senses, points) in problem(40)) {
            prop_assert_eq!(pareto_ranks(&points, &senses), ranks_brute(&points, &senses));
        }

        #[test]
        fn rank_zero_is_undominated_and_each_rank_dominated_by_the_one_before(
            (senses, points) in problem(40),
        ) {
            let ranks = pareto_ranks(&points, &senses);
            for (i, &r) in ranks.iter().enumerate() {
                let by = |q: u32| (0..points.len())
                    .any(|j| ranks[j] == q && dominates(&points[j], &points[i], &senses));
                if r == 0 {
                    prop_assert!(!(0..points.len()).any(|j| dominates(&points[j], &points[i], &senses)));
                } else {
                    prop_assert!(by(r - 1), "candidate {i} of rank {r}");
                }
                prop_assert!(!by(r), "candidate {i} dominated within its rank");
            }
        }

        #[test]
        fn possibly_optimal_contains_the_frontier_and_matches_brute_force(
            (senses, nominal) in problem(40),
            bars in vec((0..3i32, 0..3i32, any::<bool>()), 44),
        ) {
            let (mut lo, mut hi) = (nominal.clone(), nominal.clone());
            for (i, &(down, up, swap)) in bars.iter().take(nominal.len()).enumerate() {
                for x in lo[i].iter_mut() { *x -= f64::from(down); }
                for x in hi[i].iter_mut() { *x += f64::from(up); }
                if swap { std::mem::swap(&mut lo[i], &mut hi[i]); }
            }
            let po = possibly_optimal(&nominal, &lo, &hi, &senses);
            prop_assert_eq!(&po, &possibly_optimal_brute(&nominal, &lo, &hi, &senses));
            let ranks = pareto_ranks(&nominal, &senses);
            for (i, &r) in ranks.iter().enumerate() {
                prop_assert!(r != 0 || po[i], "frontier candidate {i} not possibly optimal");
            }
            let exact = possibly_optimal(&nominal, &nominal, &nominal, &senses);
            prop_assert_eq!(exact, ranks.iter().map(|&r| r == 0).collect::<Vec<_>>());
        }

        #[test]
        fn possibly_optimal_with_arbitrary_bars_matches_brute_force(
            (senses, nominal) in problem(30),
            seed in vec(value(), 60),
        ) {
            let m = senses.len();
            let mut it = seed.iter().cycle();
            let mut bar = || nominal.iter().map(|_| (0..m).map(|_| *it.next().unwrap()).collect()).collect::<Vec<Vec<f64>>>();
            let (lo, hi) = (bar(), bar());
            prop_assert_eq!(
                possibly_optimal(&nominal, &lo, &hi, &senses),
                possibly_optimal_brute(&nominal, &lo, &hi, &senses)
            );
        }

        #[test]
        fn hypervolume_matches_the_grid_count(
            (senses, points, reference) in (2..=3usize).prop_flat_map(|m| (
                vec(sense(), m),
                vec(vec(prop_oneof![8 => (0..6i32).prop_map(f64::from), 1 => Just(NAN)], m), 0..12),
                vec(0..6i32, m),
            )),
        ) {
            let reference: Vec<f64> = reference.into_iter().map(f64::from).collect();
            let got = hypervolume(&points, &senses, &reference).unwrap();
            prop_assert_eq!(got, hypervolume_brute(&points, &senses, &reference));
        }
    }

    /// Larger 3- and 4-objective inputs than the property tests draw, for the staircases and
    /// ENS-BS with many fronts.
    #[test]
    fn ranks_match_brute_force_on_larger_inputs() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for m in 2..=4 {
            for grid in [3, 10, 1000] {
                let senses: Vec<Sense> =
                    (0..m).map(|j| if j % 2 == 0 { Min } else { Max }).collect();
                let points: Vec<Vec<f64>> = (0..400)
                    .map(|_| {
                        (0..m)
                            .map(|_| f64::from(rng.random_range(0..grid)))
                            .collect()
                    })
                    .collect();
                assert_eq!(
                    pareto_ranks(&points, &senses),
                    ranks_brute(&points, &senses)
                );
                let lo: Vec<Vec<f64>> = points
                    .iter()
                    .map(|p| p.iter().map(|x| x - 1.0).collect())
                    .collect();
                assert_eq!(
                    possibly_optimal(&points, &lo, &points, &senses),
                    possibly_optimal_brute(&points, &lo, &points, &senses)
                );
            }
        }
    }

    /// One front of 3,000 points whose staircase outgrows the sorted vector (points (i, y, −y)
    /// with y shuffled), and a copy shifted by ½, dominated point by point: rank 1.
    #[test]
    fn large_staircases() {
        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        let n = 3000;
        let mut ys: Vec<f64> = (0..n).map(f64::from).collect();
        ys.shuffle(&mut rand::rngs::StdRng::seed_from_u64(3));
        let front = (0..n).map(|i| [f64::from(i), ys[i as usize], -ys[i as usize]]);
        let points: Vec<[f64; 3]> = front
            .clone()
            .chain(front.map(|p| p.map(|x| x + 0.5)))
            .collect();
        let ranks = pareto_ranks(&points, &[Min; 3]);
        assert!(
            ranks
                .iter()
                .enumerate()
                .all(|(i, &r)| r == u32::from(i >= n as usize))
        );
        let expected: Vec<bool> = ranks.iter().map(|&r| r == 0).collect();
        assert_eq!(
            possibly_optimal(&points, &points, &points, &[Min; 3]),
            expected
        );
        // Bars of ½ make each shifted point touch its original: no longer certainly dominated.
        let lo: Vec<[f64; 3]> = points.iter().map(|p| p.map(|x| x - 0.25)).collect();
        let hi: Vec<[f64; 3]> = points.iter().map(|p| p.map(|x| x + 0.25)).collect();
        assert!(
            possibly_optimal(&points, &lo, &hi, &[Min; 3])
                .iter()
                .all(|&b| b)
        );
    }

    #[test]
    fn nan_candidates_take_the_last_rank() {
        let points = [[1.0, 1.0], [NAN, 0.0], [2.0, 2.0], [0.0, NAN], [2.0, 2.0]];
        assert_eq!(pareto_ranks(&points, &[Min, Min]), [0, 2, 1, 2, 1]);
        // Every candidate NaN: none dominates another.
        assert_eq!(pareto_ranks(&[[NAN, 1.0], [NAN, NAN]], &[Min, Max]), [0, 0]);
        assert!(dominates(&[5.0, 5.0], &[0.0, NAN], &[Min, Min]));
        assert!(!dominates(&[NAN, 0.0], &[NAN, 1.0], &[Min, Min]));
        // A NaN in a bar rules a candidate out; alone, it stays possibly optimal.
        let nominal = [[0.0, 0.0], [1.0, 1.0]];
        let lo = [[NAN, 0.0], [1.0, 1.0]];
        assert_eq!(
            possibly_optimal(&nominal, &lo, &nominal, &[Min, Min]),
            [false, true]
        );
        assert_eq!(
            possibly_optimal(&[[NAN]], &[[NAN]], &[[NAN]], &[Min]),
            [true]
        );
        // NaN points add no volume; a NaN reference has none.
        assert_eq!(
            hypervolume(&[[NAN, 0.0], [1.0, 1.0]], &[Min, Min], &[2.0, 2.0]),
            Some(1.0)
        );
        assert_eq!(hypervolume(&[[1.0, 1.0]], &[Min, Min], &[NAN, 2.0]), None);
        // A NaN value leaves its member out of that objective's sort only.
        let d = crowding_distance(
            &[[0.0, 0.0], [1.0, NAN], [2.0, 1.0], [3.0, 2.0]],
            &[Min, Max],
            &[0; 4],
        );
        assert_eq!(d, [INF, 2.0 / 3.0, 2.0 / 3.0 + 1.0, INF]);
    }

    #[test]
    fn ties_infinities_and_signed_zeros() {
        // Equal points share a rank; −0.0 equals 0.0; −∞ and ∞ are ordinary values.
        let points = [
            [0.0, 1.0],
            [-0.0, 1.0],
            [-INF, INF],
            [INF, -INF],
            [1.0, 1.0],
        ];
        assert_eq!(pareto_ranks(&points, &[Min, Min]), [0, 0, 0, 0, 1]);
        assert_eq!(pareto_ranks(&points, &[Max, Max]), [1, 1, 0, 0, 0]);
        assert_eq!(pareto_ranks::<[f64; 1]>(&[], &[Min]), Vec::<u32>::new());
    }

    #[test]
    fn crowding_distance_by_hand() {
        let points = [[0.0, 4.0], [1.0, 3.0], [2.0, 1.0], [4.0, 0.0], [5.0, 5.0]];
        let ranks = pareto_ranks(&points, &[Min, Min]);
        assert_eq!(ranks, [0, 0, 0, 0, 1]);
        // x: gaps 2/4 and 3/4; y: 3/4 and 3/4.
        let d = crowding_distance(&points, &[Min, Min], &ranks);
        assert_eq!(d, [INF, 1.25, 1.5, INF, INF]);
        // Maximizing mirrors the sorts and changes no gap.
        assert_eq!(crowding_distance(&points, &[Max, Max], &ranks), d);
        // An infinite range adds nothing to interior members.
        let d = crowding_distance(&[[0.0, 0.0], [1.0, 1.0], [INF, 2.0]], &[Min, Min], &[0; 3]);
        assert_eq!(d, [INF, 1.0, INF]);
    }

    #[test]
    fn hypervolume_by_hand() {
        let (mm, xx) = ([Min, Min], [Max, Max]);
        // A staircase: heights 1, 2, 3 over unit widths.
        let stairs = [[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]];
        assert_eq!(hypervolume(&stairs, &mm, &[4.0, 4.0]), Some(6.0));
        let mirrored = stairs.map(|p| p.map(|x| -x));
        assert_eq!(hypervolume(&mirrored, &xx, &[-4.0, -4.0]), Some(6.0));
        // Dominated points, duplicates and points on the reference add nothing.
        let extra = [
            [1.0, 3.0],
            [2.0, 2.0],
            [3.0, 1.0],
            [3.0, 3.0],
            [2.0, 2.0],
            [4.0, 0.0],
        ];
        assert_eq!(hypervolume(&extra, &mm, &[4.0, 4.0]), Some(6.0));
        assert_eq!(hypervolume(&[[-INF, 0.0]], &mm, &[0.0, 1.0]), Some(INF));
        assert_eq!(hypervolume::<[f64; 2]>(&[], &mm, &[0.0, 1.0]), Some(0.0));
        // 3 objectives: one cube; three unit slabs of a 2-cube (8 cells less the corner one).
        let mmm = [Min, Min, Min];
        assert_eq!(
            hypervolume(&[[1.0, 1.0, 1.0]], &mmm, &[2.0, 2.0, 2.0]),
            Some(1.0)
        );
        let corner = [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]];
        assert_eq!(hypervolume(&corner, &mmm, &[2.0, 2.0, 2.0]), Some(7.0));
        // Mixed senses: (size 1, accuracy 3) against (4, 1): 3 × 2.
        assert_eq!(
            hypervolume(&[[1.0, 3.0, 0.0]], &[Min, Max, Min], &[4.0, 1.0, 1.0]),
            Some(6.0)
        );
        assert_eq!(
            hypervolume(&[[1.0, 1.0, 1.0, 1.0]], &[Min; 4], &[2.0; 4]),
            None
        );
        assert_eq!(hypervolume(&[[1.0]], &[Min], &[3.0]), Some(2.0));
    }
}
