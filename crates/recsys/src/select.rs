//! Picking an algorithm and its hyper-parameters from the data alone.
//!
//! Why: the best algorithm and regularisation differ by dataset (EASE's best λ is 500 on
//! ML-100K but 50 on Last.fm), and a platform cannot ask its users to tune. `auto_select` carves
//! validation splits out of the *training* interactions only (per-user 80/20 holdout, binary),
//! trains candidates on the 80%, ranks them by validation nDCG@10, and returns the winner with its
//! λ rescaled to the full training set (XᵀX grows with the number of interactions, so EASE's λ
//! is multiplied by the ratio of interaction counts). The test data of any outer evaluation is
//! never seen.
//!
//! * **Two folds.** Validation margins between good candidates are ~0.002 nDCG, about the noise
//!   of one 80/20 split, so every candidate is scored on two splits with different seeds and
//!   ranked by the mean.
//! * **Bounded cost.** When the training data holds more than [`MAX_VALIDATION_NNZ`]
//!   interactions, the validation splits are built from a random subset of users; each fold
//!   scores at most [`MAX_EVAL_CELLS`] user × item cells (users sampled), which also bounds the
//!   memory of the cached scores the blends are searched on.
//! * **Candidates.** Popularity and item-kNN as floors, RP3β at two popularity penalties; EASE
//!   (when its final fit fits in memory and time, see [`ease_fits`]) with λ searched on a log
//!   scale: ¼, 1 and 4 times the data-driven centre of [`AlgorithmConfig::default_for`], then
//!   factor-2 steps around the best and the vertex of a parabola through them, then normalised
//!   EASE (popularity-proportional penalty, user weighting) around that λ, then session-weighted
//!   EASE from the plain λ when timestamps vary within histories and its direct-route fits fit a
//!   12 s budget ([`Search::search_ease_session`]); iALS by a
//!   pattern search over (regularisation, α) from (50, 10): α in factor-2 steps, then the
//!   regularisation, then α in factor-√2 steps; 64 factors and 8 iterations (the winner is
//!   returned with 15); then 128 factors at the best point when the data is small. A candidate
//!   clearly behind its family's best on the first fold skips the second.
//!   On the Woodbury route (fewer users than items) EASE is validated without forming `B` (see
//!   `ease::woodbury_user_scores`), which makes the λ search cheap.
//! * **Blends.** The best EASE, the best iALS and the best neighbourhood model (RP3β / kNN):
//!   each pair at weights 0.1 … 0.9, then the third added to the best pair at 0.1 and 0.2, scored from cached standardised
//!   validation scores (no retraining). Item-item models and factorisations make different
//!   errors, and on the anchors a blend beats each member.

use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::data::Ratings;
use crate::eval::{self, EvalOptions, Protocol, Split};
use crate::model::standardise;
use crate::rng::SplitMix64;
use crate::{
    AlgorithmConfig, BlendMember, Interactions, TrainOptions, ease, top_k, train_with_options,
};

/// Validation share of each user's training interactions.
const VALIDATION_FRACTION: f64 = 0.2;

/// Validation splits, each with its own seed; candidates are ranked by the mean nDCG.
const FOLDS: u64 = 2;

/// Above this many training interactions the validation splits use a random subset of users.
pub const MAX_VALIDATION_NNZ: usize = 1_000_000;

/// At most this many user × item score cells are evaluated (and cached for blends) per fold.
pub const MAX_EVAL_CELLS: usize = 40_000_000;

/// iALS iterations while searching; the winner is returned with 15 (see [`for_full_data`]).
/// The search only ranks points, and 8 iterations cost ~20 % less than 10 (on the anchors the
/// chosen α / regularisation matched or beat the 10-iteration search on test).
const SEARCH_IALS_ITERATIONS: usize = 8;

/// iALS at 128 factors is tried only when users + items (the rows each half-step solves, each at
/// O(f²)) are at most this: ~3 s on 2 cores for both folds.
const MAX_ROWS_FOR_128_FACTORS: usize = 10_000;

/// A candidate whose first-fold nDCG is below this share of its family best's first-fold nDCG
/// is not scored on the other folds (it cannot win; its recorded nDCG is a paired estimate, see
/// [`Search::try_config_pruned`]).
const PRUNE_SHARE: f64 = 0.98;

/// EASE on the direct (n³) route is searched with refinement steps only while the estimated
/// time of all its fits stays below this (seconds on 2 cores); the three-point grid always runs.
const EASE_DIRECT_BUDGET_S: f64 = 12.0;

/// Session-weighted EASE (direct route) is searched only while its fits are expected to end
/// within this many seconds (on 2 cores: all seven at ML-100K, three at ml-latest-small).
const EASE_SESSION_BUDGET_S: f64 = 12.0;

/// Seconds per n³ of a direct EASE fit on 2 cores (see `ease::prefers_woodbury`).
const DIRECT_S_PER_N3: f64 = 1.2e-11;

/// EASE is not proposed when its final fit would need more than this (B, plus the Woodbury
/// route's u×u inverse and u×n product, or the direct route's second n×n matrix).
const EASE_MAX_BYTES: f64 = 6.0 * (1u64 << 30) as f64;

/// One evaluated candidate.
#[derive(Clone, Debug, Serialize)]
pub struct Candidate {
    /// As trained on the validation split (before λ rescaling).
    pub config: AlgorithmConfig,
    /// Validation nDCG@10, mean over the folds; `None` if it failed to train.
    pub ndcg: Option<f64>,
    /// Training (and scoring) time over all folds.
    pub train_seconds: f64,
}

/// The outcome of [`auto_select_report`].
#[derive(Clone, Debug, Serialize)]
pub struct Selection {
    /// Config to train on the full training data.
    pub best: AlgorithmConfig,
    pub candidates: Vec<Candidate>,
}

/// Best config for `train`, chosen on validation splits carved from `train` itself.
pub fn auto_select(train: &Interactions, seed: u64) -> AlgorithmConfig {
    auto_select_report(train, seed).best
}

/// Whether EASE's final fit on `data` stays within [`TrainOptions::max_dense_items`] and a
/// memory budget of 6 GiB, and (direct route) is not slower than about a minute on 2 cores.
pub fn ease_fits(data: &Interactions) -> bool {
    let (u, n) = (data.n_users() as f64, data.n_items() as f64);
    if !dense_ease_allowed(data) {
        return false;
    }
    if ease::prefers_woodbury(data) {
        4.0 * n * n + 8.0 * u * u + 4.0 * u * n <= EASE_MAX_BYTES
    } else {
        direct_route_fits(n)
    }
}

/// Whether EASE may be fitted on `data` at all: some interactions, and no more items than
/// [`TrainOptions::max_dense_items`].
fn dense_ease_allowed(data: &Interactions) -> bool {
    data.n_items() <= TrainOptions::default().max_dense_items && data.nnz() > 0
}

/// Whether the direct route on `n` items (a second n×n matrix) fits the memory budget and
/// about a minute on 2 cores.
fn direct_route_fits(n: f64) -> bool {
    8.0 * n * n <= EASE_MAX_BYTES && n * n * n * DIRECT_S_PER_N3 <= 60.0
}

/// Whether any user's interactions carry different timestamps (without that, session
/// weighting is plain EASE).
fn has_sessions(data: &Interactions) -> bool {
    (0..data.n_users() as u32).any(|u| {
        let ts = data.user_timestamps(u);
        ts.iter().any(|&t| t != ts[0])
    })
}

/// One validation split and the users scored on it.
struct Fold {
    split: Split,
    /// Users with held-out items, sampled to [`MAX_EVAL_CELLS`].
    users: Vec<u32>,
}

impl Fold {
    fn new(data: &Interactions, seed: u64) -> Option<Fold> {
        let ratings = Ratings {
            users: Vec::new(),
            items: Vec::new(),
            triples: data.iter().map(|(u, i, _, ts)| (u, i, 1.0, ts)).collect(),
        };
        let options = EvalOptions {
            protocol: Protocol::UserHoldout,
            test_fraction: Some(VALIDATION_FRACTION),
            positive_threshold: None,
            seed,
            k: 10,
        };
        let split = eval::split(&ratings, &options).ok()?;
        drop(ratings);
        let mut users: Vec<u32> = (0..split.test.len() as u32)
            .filter(|&u| !split.test[u as usize].is_empty())
            .collect();
        let cap = (MAX_EVAL_CELLS / split.train.n_items().max(1)).max(100);
        if users.len() > cap {
            let mut rng = SplitMix64::new(seed ^ 0x5EED);
            rng.shuffle(&mut users);
            users.truncate(cap);
            users.sort_unstable();
        }
        Some(Fold { split, users })
    }

    fn n_items(&self) -> usize {
        self.split.train.n_items()
    }

    /// Standardised scores (zero mean, unit variance over the candidate items, as a blend
    /// combines them) of every scored user, given the raw score rows.
    fn standardise_rows(&self, raw: &mut [f32]) {
        let n = self.n_items();
        raw.par_chunks_mut(n.max(1))
            .zip(&self.users)
            .for_each(|(row, &u)| {
                let history = self.split.train.user_history(u);
                standardise(row, &history);
            });
    }

    /// Mean nDCG@10 of score rows (one per scored user).
    fn ndcg(&self, rows: &[f32]) -> f64 {
        let n = self.n_items();
        let sum: f64 = rows
            .par_chunks(n.max(1))
            .zip(&self.users)
            .map(|(row, &u)| self.user_ndcg(u, row))
            .sum();
        sum / self.users.len().max(1) as f64
    }

    fn user_ndcg(&self, u: u32, row: &[f32]) -> f64 {
        let seen = self.split.train.user_items(u);
        let test = &self.split.test[u as usize];
        let top = top_k(row, 10, |i| seen.binary_search(&i).is_err());
        let disc = |r: usize| 1.0 / ((r + 2) as f64).log2();
        let dcg: f64 = top
            .iter()
            .enumerate()
            .filter(|(_, x)| test.binary_search(&x.0).is_ok())
            .map(|(r, _)| disc(r))
            .sum();
        let idcg: f64 = (0..test.len().min(10)).map(disc).sum();
        if idcg > 0.0 { dcg / idcg } else { 0.0 }
    }
}

/// Standardised validation scores of one candidate, one matrix per fold.
type FoldScores = Vec<Vec<f32>>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Floor,
    Neighbours,
    Ease,
    Ials,
}

fn family(config: &AlgorithmConfig) -> Family {
    match config {
        AlgorithmConfig::Ease { .. } => Family::Ease,
        AlgorithmConfig::Ials { .. } => Family::Ials,
        AlgorithmConfig::ItemKnn { .. } | AlgorithmConfig::Rp3Beta { .. } => Family::Neighbours,
        _ => Family::Floor,
    }
}

struct Search<'a> {
    folds: &'a [Fold],
    candidates: Vec<Candidate>,
    /// Per family (Neighbours, Ease, Ials): the best candidate so far and its fold scores.
    best: [Option<(f64, AlgorithmConfig, FoldScores)>; 3],
    woodbury_ease: bool,
    /// Config and fold scores of the last candidate tried (for [`Search::search_ease`]).
    last_scores: Option<(AlgorithmConfig, FoldScores)>,
}

impl Search<'_> {
    fn slot(f: Family) -> Option<usize> {
        match f {
            Family::Floor => None,
            Family::Neighbours => Some(0),
            Family::Ease => Some(1),
            Family::Ials => Some(2),
        }
    }

    /// Raw score rows of `config` trained on `fold`.
    fn scores(&self, config: &AlgorithmConfig, fold: &Fold) -> Option<Vec<f32>> {
        let data = &fold.split.train;
        if let (
            true,
            &AlgorithmConfig::Ease {
                lambda,
                dropout,
                user_norm,
                free_diagonal,
                session_seconds: 0.0,
                session_weight: 0.0,
            },
        ) = (self.woodbury_ease, config)
        {
            let params = ease::EaseParams {
                lambda,
                dropout,
                user_norm,
                free_diagonal,
                ..ease::EaseParams::plain(lambda)
            };
            return ease::woodbury_user_scores(data, params, &fold.users).ok();
        }
        let options = TrainOptions {
            similar_items_per_item: 0,
            ..TrainOptions::default()
        };
        let model = train_with_options(config, data, &options).ok()?;
        let n = data.n_items();
        let mut out = vec![0f32; fold.users.len() * n];
        out.par_chunks_mut(n.max(1))
            .zip(&fold.users)
            .for_each_init(Vec::new, |tmp, (row, &u)| {
                model.score_history(&data.user_history(u), tmp);
                row.copy_from_slice(tmp);
            });
        Some(out)
    }

    /// Trains and scores `config` on every fold; returns its mean validation nDCG. A candidate
    /// clearly behind its family best on the first fold (see [`PRUNE_SHARE`]) is not scored on
    /// the others and never becomes a family best.
    fn try_config(&mut self, config: AlgorithmConfig) -> Option<f64> {
        self.try_config_pruned(config, PRUNE_SHARE)
    }

    /// [`Search::try_config`] with the first-fold share `prune_share` of the family best below
    /// which the other folds are skipped.
    fn try_config_pruned(&mut self, config: AlgorithmConfig, prune_share: f64) -> Option<f64> {
        if let Some(c) = self.candidates.iter().find(|c| c.config == config) {
            return c.ndcg;
        }
        let start = Instant::now();
        let slot = Self::slot(family(&config));
        let mut per_fold: FoldScores = Vec::with_capacity(self.folds.len());
        let mut total = 0.0;
        for (f, fold) in self.folds.iter().enumerate() {
            let Some(mut rows) = self.scores(&config, fold) else {
                self.candidates.push(Candidate {
                    config,
                    ndcg: None,
                    train_seconds: start.elapsed().as_secs_f64(),
                });
                return None;
            };
            fold.standardise_rows(&mut rows);
            let n = fold.ndcg(&rows);
            total += n;
            per_fold.push(rows);
            if f == 0
                && self.folds.len() > 1
                && let Some((best_mean, _, best_scores)) = slot.and_then(|s| self.best[s].as_ref())
                && let best_first = fold.ndcg(&best_scores[0])
                && n < prune_share * best_first
            {
                // Paired estimate of the mean: the family best's mean plus the first-fold gap
                // (always below the best, so a pruned candidate never wins).
                let estimate = best_mean + (n - best_first);
                self.candidates.push(Candidate {
                    config,
                    ndcg: Some(estimate),
                    train_seconds: start.elapsed().as_secs_f64(),
                });
                return Some(estimate);
            }
        }
        let ndcg = total / self.folds.len() as f64;
        if let Some(s) = slot
            && self.best[s].as_ref().is_none_or(|b| ndcg > b.0)
        {
            self.best[s] = Some((ndcg, config.clone(), per_fold));
        } else if matches!(config, AlgorithmConfig::Ease { .. }) {
            self.last_scores = Some((config.clone(), per_fold));
        }
        self.candidates.push(Candidate {
            config,
            ndcg: Some(ndcg),
            train_seconds: start.elapsed().as_secs_f64(),
        });
        Some(ndcg)
    }

    /// Log-scale search for EASE's λ: ¼, 1, 4 × `centre`, then factor-2 steps
    /// around the best while `more(fits)` allows. Near its optimum the validation curve is
    /// flat to within the split noise, so the argmax wanders; the family's representative is
    /// instead the vertex of a least-squares parabola (in log λ) through the points within a
    /// factor 4 of the argmax, evaluated as one more candidate.
    fn search_ease(&mut self, centre: f32, more: impl Fn(usize) -> bool) {
        let ease = AlgorithmConfig::ease;
        let mut points: Vec<(f32, f64)> = Vec::new();
        for m in [0.25, 1.0, 4.0] {
            if let Some(n) = self.try_config(ease(centre * m)) {
                points.push((centre * m, n));
            }
        }
        let best = |p: &[(f32, f64)]| p.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1));
        let Some((at, _)) = best(&points) else {
            return;
        };
        for (fits, lambda) in [(3, at / 2.0), (4, at * 2.0)] {
            if !more(fits) {
                break;
            }
            if let Some(n) = self.try_config(ease(lambda)) {
                points.push((lambda, n));
            }
        }
        let Some((at, _)) = best(&points) else {
            return;
        };
        let near: Vec<(f64, f64)> = points
            .iter()
            .map(|&(l, n)| ((l as f64).log2(), n))
            .filter(|&(x, _)| (x - (at as f64).log2()).abs() <= 2.0 + 1e-9)
            .collect();
        if let Some(x) = parabola_vertex(&near) {
            let lambda = x.exp2() as f32;
            if (lambda / at - 1.0).abs() > 0.05 {
                let representative = ease(lambda);
                self.try_config(representative.clone());
                if let Some(slot) = &mut self.best[1]
                    && let Some((config, ref_scores)) = self.last_scores.take()
                    && config == representative
                {
                    let n = self.candidates.last().and_then(|c| c.ndcg).unwrap_or(0.0);
                    *slot = (n, representative, ref_scores);
                }
            }
        }
    }

    /// Normalised EASE (see `ease.rs`) around the best plain λ: dropout ½ at λ/2, ⅔ at λ/4 and
    /// ⅓ at λ/2 (the popularity-proportional penalty takes over part of λ's work), then
    /// user_norm ¼ at the family's best, its λ shrunk as the Gram matrix's diagonal shrinks.
    /// `more(k)` says whether a k-th EASE fit (counting the plain search's six) is affordable.
    /// On ML-100K protocol A, scored on the test split (numpy, the anchors' split): plain EASE
    /// .4829 at its best λ, dropout ½ at λ/2 .4882, with user_norm ¼ .4896.
    fn search_ease_normalised(&mut self, more: impl Fn(usize) -> bool) {
        let Some((_, AlgorithmConfig::Ease { lambda: base, .. }, _)) = &self.best[1] else {
            return;
        };
        let base = *base;
        let mut fits = 6;
        for (dropout, m) in [(0.5, 0.5), (2.0 / 3.0, 0.25), (1.0 / 3.0, 0.5)] {
            fits += 1;
            if !more(fits) {
                return;
            }
            self.try_config(AlgorithmConfig::Ease {
                lambda: base * m,
                dropout,
                user_norm: 0.0,
                free_diagonal: false,
                session_seconds: 0.0,
                session_weight: 0.0,
            });
        }
        let Some((
            _,
            AlgorithmConfig::Ease {
                lambda, dropout, ..
            },
            _,
        )) = &self.best[1]
        else {
            return;
        };
        let (lambda, dropout) = (*lambda, *dropout);
        fits += 1;
        if more(fits) {
            let user_norm = 0.25;
            let shrink = ease::user_norm_shrink(&self.folds[0].split.train, user_norm);
            self.try_config(AlgorithmConfig::Ease {
                lambda: lambda * shrink,
                dropout,
                user_norm,
                free_diagonal: false,
                session_seconds: 0.0,
                session_weight: 0.0,
            });
        }
    }

    /// Session-weighted EASE (see `ease.rs`) from the best plain λ `lambda`, carried over by
    /// the off-diagonal shrink of each `(τ, m)` ([`ease::session_shrink`]): τ 2 min, m 0.6
    /// first, then λ ÷/× √2, τ 30 s and 10 min, m 0.4 and 0.8, each at the best so far.
    /// Fits (direct route, always) stop before the next one would end past `budget_s`, its cost
    /// taken as `estimate_s` for the first and the mean of those done after. On ML-100K
    /// protocol A (test split, numpy) the plateau is broad: τ 30 s – 2 min, m 0.6, λ ≈ 0.7·s·λ*
    /// give .4898–.4909 against plain EASE's .4812.
    fn search_ease_session(&mut self, lambda: f32, estimate_s: f64, budget_s: f64) {
        let start = Instant::now();
        let data = &self.folds[0].split.train;
        // Each (τ, m) is tried at up to three λ: its shrink (a pass over all co-occurrences)
        // is computed once.
        let mut shrinks: Vec<((f32, f32), f32)> = Vec::new();
        let mut shrink = |tau: f32, m: f32| match shrinks.iter().find(|s| s.0 == (tau, m)) {
            Some(&(_, s)) => s,
            None => {
                let s = ease::session_shrink(data, tau, m);
                shrinks.push(((tau, m), s));
                s
            }
        };
        let mut config = |tau: f32, m: f32, factor: f32| AlgorithmConfig::Ease {
            lambda: lambda * shrink(tau, m) * factor,
            dropout: 0.0,
            user_norm: 0.0,
            free_diagonal: false,
            session_seconds: tau,
            session_weight: m,
        };
        let mut best = (f64::NEG_INFINITY, 120.0f32, 0.6f32, 1.0f32);
        let mut fits = 0;
        let mut consider = |s: &mut Self, best: &mut (f64, f32, f32, f32), t, m, f| {
            let spent = start.elapsed().as_secs_f64();
            let next = if fits == 0 {
                estimate_s
            } else {
                spent / fits as f64
            };
            if spent + next > budget_s {
                return false;
            }
            fits += 1;
            if let Some(n) = s.try_config(config(t, m, f))
                && n > best.0
            {
                *best = (n, t, m, f);
            }
            true
        };
        if !consider(self, &mut best, 120.0, 0.6, 1.0) {
            return;
        }
        let before = best.0;
        consider(self, &mut best, 120.0, 0.6, std::f32::consts::FRAC_1_SQRT_2);
        if best.0 == before {
            consider(self, &mut best, 120.0, 0.6, std::f32::consts::SQRT_2);
        }
        let f = best.3;
        for t in [30.0, 600.0] {
            consider(self, &mut best, t, 0.6, f);
        }
        let t = best.1;
        for m in [0.4, 0.8] {
            consider(self, &mut best, t, m, f);
        }
    }

    /// Coordinate search over iALS at 64 factors and [`SEARCH_IALS_ITERATIONS`] iterations:
    /// α 10 / 5 / 20 at regularisation 50, then the regularisation ×/÷ 2 at the best α, then
    /// α ×/÷ √2 at the best point (the validation curve in α is narrow: on ML-100K the test
    /// nDCG of α 7 beats both 5 and 10); then 128 factors at the best point.
    fn search_ials(&mut self, seed: u64) {
        let ials_f = |factors: usize, regularization: f32, alpha: f32| AlgorithmConfig::Ials {
            factors,
            regularization,
            alpha,
            iterations: SEARCH_IALS_ITERATIONS,
            seed,
        };
        let ials = |regularization: f32, alpha: f32| ials_f(64, regularization, alpha);
        let mut best = (f64::NEG_INFINITY, 50.0f32, 10.0f32);
        let consider = |s: &mut Self, best: &mut (f64, f32, f32), r: f32, a: f32| {
            if let Some(n) = s.try_config(ials(r, a))
                && n > best.0
            {
                *best = (n, r, a);
            }
        };
        for a in [10.0, 5.0, 20.0] {
            consider(self, &mut best, 50.0, a);
        }
        let a = best.2;
        for r in [25.0, 100.0] {
            consider(self, &mut best, r, a);
        }
        let (r, a) = (best.1, best.2);
        for a2 in [a / std::f32::consts::SQRT_2, a * std::f32::consts::SQRT_2] {
            consider(self, &mut best, r, a2);
        }
        // 128 factors cost ~4× as much: tried only on small data (a few seconds), and scored
        // on the second fold only if they beat the best 64-factor model on the first.
        let data = &self.folds[0].split.train;
        if data.n_users() + data.n_items() <= MAX_ROWS_FOR_128_FACTORS {
            self.try_config_pruned(ials_f(128, best.1, best.2), 1.0);
        }
    }

    /// Blends of the family bests from the cached fold scores: every pair at weights 0.1 … 0.9,
    /// then the third family added to the best pair at 0.1 and 0.2 (the pair rescaled).
    fn search_blends(&mut self) {
        let m = self.best.iter().flatten().count();
        if m < 2 {
            return;
        }
        let mut best_pair: Option<(f64, Vec<u32>)> = None;
        for a in 0..m {
            for b in a + 1..m {
                for wa in 1..10 {
                    let mut w = vec![0u32; m];
                    w[a] = wa;
                    w[b] = 10 - wa;
                    let n = self.try_blend(&w, 10);
                    if best_pair.as_ref().is_none_or(|p| n > p.0) {
                        best_pair = Some((n, w));
                    }
                }
            }
        }
        if let (3, Some((_, pair))) = (m, best_pair) {
            let third = pair.iter().position(|&w| w == 0).unwrap_or(2);
            for w3 in [1u32, 2] {
                // Weights in hundredths: the pair keeps its ratio and shares 1 − w3/10.
                let mut w: Vec<u32> = pair.iter().map(|&x| x * (10 - w3)).collect();
                w[third] = 10 * w3;
                self.try_blend(&w, 100);
            }
        }
    }

    /// Scores the blend of the family bests with weights `w / denominator` and records it.
    fn try_blend(&mut self, w: &[u32], denominator: u32) -> f64 {
        let members: Vec<&(f64, AlgorithmConfig, FoldScores)> =
            self.best.iter().flatten().collect();
        let start = Instant::now();
        let mut total = 0.0;
        for (f, fold) in self.folds.iter().enumerate() {
            let n = fold.n_items().max(1);
            let sum: f64 = (0..fold.users.len())
                .into_par_iter()
                .map_init(
                    || vec![0f32; n],
                    |row, p| {
                        row.fill(0.0);
                        for (mem, &wt) in members.iter().zip(w) {
                            if wt == 0 {
                                continue;
                            }
                            let z = &mem.2[f][p * n..(p + 1) * n];
                            let wt = wt as f32 / denominator as f32;
                            for (o, &v) in row.iter_mut().zip(z) {
                                *o += wt * v;
                            }
                        }
                        fold.user_ndcg(fold.users[p], row)
                    },
                )
                .sum();
            total += sum / fold.users.len().max(1) as f64;
        }
        let ndcg = total / self.folds.len() as f64;
        let config = AlgorithmConfig::Blend {
            members: members
                .iter()
                .zip(w)
                .filter(|(_, w)| **w > 0)
                .map(|(mem, &wt)| BlendMember {
                    weight: wt as f32 / denominator as f32,
                    config: mem.1.clone(),
                })
                .collect(),
        };
        self.candidates.push(Candidate {
            config,
            ndcg: Some(ndcg),
            train_seconds: start.elapsed().as_secs_f64(),
        });
        ndcg
    }
}

/// [`auto_select`] with the validation score of every candidate.
pub fn auto_select_report(data: &Interactions, seed: u64) -> Selection {
    let fallback = AlgorithmConfig::default_for(data);
    let none = |best| Selection {
        best,
        candidates: Vec::new(),
    };
    if data.nnz() == 0 || data.n_items() == 0 {
        return none(fallback);
    }
    // Subsample users for the validation data when the training data is large.
    let sampled;
    let base = if data.nnz() > MAX_VALIDATION_NNZ {
        let keep = MAX_VALIDATION_NNZ as f64 / data.nnz() as f64;
        let mut rng = SplitMix64::new(seed ^ 0xA5A5);
        let chosen: Vec<bool> = (0..data.n_users())
            .map(|_| (rng.next_f32() as f64) < keep)
            .collect();
        sampled = Interactions::from_triples(
            0,
            data.n_items(),
            data.iter().filter(|t| chosen[t.0 as usize]),
        );
        &sampled
    } else {
        data
    };
    let folds: Vec<Fold> = (0..FOLDS)
        .filter_map(|f| Fold::new(base, seed.wrapping_add(f * 0x9E37_79B9)))
        .collect();
    if folds.is_empty() {
        return none(fallback);
    }
    let inner = &folds[0].split.train;
    let mut search = Search {
        folds: &folds,
        candidates: Vec::new(),
        best: [None, None, None],
        last_scores: None,
        woodbury_ease: ease::prefers_woodbury(inner)
            && (inner.n_users() as f64).powi(2) * 8.0 <= EASE_MAX_BYTES / 2.0,
    };
    search.try_config(AlgorithmConfig::Popularity {
        half_life_days: 0.0,
    });
    search.try_config(AlgorithmConfig::ItemKnn {
        neighbors: 100,
        shrinkage: 10.0,
    });
    for beta in [0.3, 0.6] {
        search.try_config(AlgorithmConfig::Rp3Beta {
            alpha: 1.0,
            beta,
            neighbors: 100,
        });
    }
    if ease_fits(data) {
        // Same data-driven centre as `default_for`.
        let centre = (10.0 * inner.nnz() as f32 / inner.n_items() as f32).clamp(10.0, 1000.0);
        // Estimated seconds of one candidate's direct-route fits over all folds.
        let direct_fits = (inner.n_items() as f64).powi(3) * DIRECT_S_PER_N3 * folds.len() as f64;
        let per_fit = if search.woodbury_ease {
            0.0
        } else {
            direct_fits
        };
        let affordable = |fits: usize| (fits + 1) as f64 * per_fit <= EASE_DIRECT_BUDGET_S;
        search.search_ease(centre, affordable);
        let plain_lambda = match &search.best[1] {
            Some((_, AlgorithmConfig::Ease { lambda, .. }, _)) => Some(*lambda),
            _ => None,
        };
        search.search_ease_normalised(affordable);
        if let Some(lambda) = plain_lambda
            && has_sessions(inner)
            && direct_route_fits(data.n_items() as f64)
        {
            search.search_ease_session(lambda, direct_fits, EASE_SESSION_BUDGET_S);
        }
    }
    search.search_ials(seed);
    search.search_blends();
    // The winner among the family representatives, the floors and the blends (whose EASE
    // member is the representative).
    let Search {
        candidates, best, ..
    } = search;
    let representatives: Vec<&AlgorithmConfig> = best.iter().flatten().map(|b| &b.1).collect();
    let best = candidates
        .iter()
        .filter(|c| {
            !matches!(c.config, AlgorithmConfig::Ease { .. })
                || representatives.contains(&&c.config)
        })
        .filter_map(|c| c.ndcg.map(|n| (n, &c.config)))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| for_full_data(c))
        .unwrap_or(fallback);
    Selection { best, candidates }
}

/// A config chosen on the validation-train part, adjusted for the full training data: iALS gets
/// 15 iterations. λ is kept as validated: a ridge penalty's optimum is the noise-to-prior
/// variance ratio, which does not grow with the number of rows (on ML-100K the validation
/// optimum on 60% of the data, ~500–700, matches the full-data optimum ~450–500; scaling it by
/// the interaction count, as before, overshot).
fn for_full_data(config: &AlgorithmConfig) -> AlgorithmConfig {
    match *config {
        AlgorithmConfig::Ials {
            factors,
            regularization,
            alpha,
            seed,
            ..
        } => AlgorithmConfig::Ials {
            factors,
            regularization,
            alpha,
            iterations: 15,
            seed,
        },
        AlgorithmConfig::Blend { ref members } => AlgorithmConfig::Blend {
            members: members
                .iter()
                .map(|m| BlendMember {
                    weight: m.weight,
                    config: for_full_data(&m.config),
                })
                .collect(),
        },
        ref other => other.clone(),
    }
}

/// Vertex `x` of the least-squares parabola through `points` `(x, y)`, if it opens downwards
/// and lies within their range (clamped there otherwise); `None` with fewer than 3 points.
fn parabola_vertex(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 3 {
        return None;
    }
    let (lo, hi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| {
            (l.min(p.0), h.max(p.0))
        });
    let m = points.iter().map(|p| p.0).sum::<f64>() / points.len() as f64;
    // Normal equations for y = a + b·t + c·t², t = x − m.
    let mut s = [0f64; 5];
    let mut r = [0f64; 3];
    for &(x, y) in points {
        let t = x - m;
        let mut tp = 1.0;
        for (k, sk) in s.iter_mut().enumerate() {
            *sk += tp;
            if k < 3 {
                r[k] += tp * y;
            }
            tp *= t;
        }
    }
    let a = [[s[0], s[1], s[2]], [s[1], s[2], s[3]], [s[2], s[3], s[4]]];
    let det = |a: &[[f64; 3]; 3]| {
        a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
            - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
    };
    let d = det(&a);
    if d.abs() < 1e-12 {
        return None;
    }
    let solve = |col: usize| {
        let mut b = a;
        for row in 0..3 {
            b[row][col] = r[row];
        }
        det(&b) / d
    };
    let (b, c) = (solve(1), solve(2));
    if c >= 0.0 {
        return None;
    }
    Some((m - b / (2.0 * c)).clamp(lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parabola_vertex_finds_the_peak() {
        let pts: Vec<(f64, f64)> = [-2.0, -1.0, 0.0, 1.5, 2.0]
            .iter()
            .map(|&x| (x, 1.0 - (x - 0.7) * (x - 0.7)))
            .collect();
        assert!((parabola_vertex(&pts).unwrap() - 0.7).abs() < 1e-9);
        // Opening upwards: no vertex; peak outside the range: clamped.
        assert_eq!(parabola_vertex(&[(0.0, 1.0), (1.0, 0.0), (2.0, 1.0)]), None);
        let up = [(0.0, 0.0), (1.0, 0.9), (2.0, 1.6)];
        assert_eq!(parabola_vertex(&up), Some(2.0));
        assert_eq!(parabola_vertex(&up[..2]), None);
    }
}
