//! Training and serving-time scoring.

use std::sync::{Arc, OnceLock};

use crate::ann::{self, FactorIndex};
use crate::config::DEFAULT_POPULARITY_HALF_LIFE_DAYS;
use crate::ials::{self, IalsModel};
use crate::interactions::ItemMajor;
use crate::similarity::{self, SparseRows};
use crate::{AlgorithmConfig, Error, Interactions, ease, top_k};

/// Limits and sizes that are not hyper-parameters of the algorithm itself.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    /// EASE refuses to train above this many items: its model is a dense n×n f32 matrix
    /// (4n² bytes, twice that at peak during training) and training is O(n³).
    pub max_dense_items: usize,
    /// How many cosine neighbours are kept per item for [`Model::similar_items`]; 0 skips
    /// computing them (`similar_items` is then always empty), as `auto_select`'s candidates do.
    pub similar_items_per_item: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            max_dense_items: 30_000,
            similar_items_per_item: 100,
        }
    }
}

/// The algorithm-specific part of a model.
#[derive(Clone, Debug)]
pub(crate) enum Scorer {
    Popularity,
    /// Item-kNN and RP3β: sparse item-item weights; a history's score sums its items' rows.
    Neighbours(SparseRows),
    /// Row-major n×n item-item weights, zero diagonal.
    Ease(Vec<f32>),
    Ials(IalsModel),
    /// `(weight, member)` pairs, members in config order.
    Blend(Vec<(f32, Scorer)>),
}

/// Mean and standard deviation of the scores `x` over the candidate items, i.e. all but the
/// history's (which are filtered out of recommendations and, for the item-item models, score far
/// above the rest: counting them would let the history size decide a member's scale).
fn candidate_mean_std(x: &[f32], history: &[(u32, f32)]) -> (f32, f32) {
    let mut seen: Vec<u32> = history.iter().map(|h| h.0).collect();
    seen.sort_unstable();
    seen.dedup();
    let (mut s, mut s2) = (0f64, 0f64);
    for &v in x {
        s += v as f64;
        s2 += (v as f64) * (v as f64);
    }
    for &i in &seen {
        let v = x[i as usize] as f64;
        s -= v;
        s2 -= v * v;
    }
    let n = x.len().saturating_sub(seen.len()).max(1) as f64;
    let mean = s / n;
    let var = (s2 / n - mean * mean).max(0.0);
    (mean as f32, var.sqrt() as f32)
}

/// `out += weight · (scores − mean) / std`, the statistics over the candidate items: how a blend
/// combines its members.
pub(crate) fn add_standardised(
    out: &mut [f32],
    weight: f32,
    scores: &[f32],
    history: &[(u32, f32)],
) {
    let (mean, std) = candidate_mean_std(scores, history);
    if std > 0.0 && std.is_finite() {
        let k = weight / std;
        for (o, t) in out.iter_mut().zip(scores) {
            *o += k * (t - mean);
        }
    }
}

/// `x ← (x − mean) / std`, the statistics over the candidate items (all zeros when the
/// spread is zero): one member's contribution to a blend, before its weight.
pub(crate) fn standardise(x: &mut [f32], history: &[(u32, f32)]) {
    let (mean, std) = candidate_mean_std(x, history);
    if std > 0.0 && std.is_finite() {
        let k = 1.0 / std;
        x.iter_mut().for_each(|v| *v = k * (*v - mean));
    } else {
        x.fill(0.0);
    }
}

impl Scorer {
    fn memory_bytes(&self) -> usize {
        match self {
            Scorer::Popularity => 0,
            Scorer::Neighbours(s) => s.memory_bytes(),
            Scorer::Ease(b) => b.len() * 4,
            Scorer::Ials(m) => m.memory_bytes(),
            Scorer::Blend(members) => members.iter().map(|m| m.1.memory_bytes()).sum(),
        }
    }

    /// Adds this scorer's scores for `history` (already filtered to known items) to `out`
    /// (`len == n`), scaled by `scale`.
    fn add_scores(&self, popularity: &[f32], history: &[(u32, f32)], scale: f32, out: &mut [f32]) {
        let n = out.len();
        match self {
            Scorer::Popularity => {
                for (o, &p) in out.iter_mut().zip(popularity) {
                    *o += scale * p;
                }
            }
            Scorer::Neighbours(s) => {
                for &(i, w) in history {
                    let (cols, vals) = s.row(i as usize);
                    for (&j, &v) in cols.iter().zip(vals) {
                        out[j as usize] += scale * w * v;
                    }
                }
            }
            Scorer::Ease(b) => {
                for &(i, w) in history {
                    let row = &b[i as usize * n..(i as usize + 1) * n];
                    let sw = scale * w;
                    for (o, &v) in out.iter_mut().zip(row) {
                        *o += sw * v;
                    }
                }
            }
            Scorer::Ials(m) => {
                let user = m.fold_in(history);
                let mut tmp = vec![0f32; n];
                m.score_into(&user, &mut tmp);
                for (o, t) in out.iter_mut().zip(tmp) {
                    *o += scale * t;
                }
            }
            Scorer::Blend(members) => {
                let mut tmp = vec![0f32; n];
                for (w, member) in members.iter().filter(|m| m.0 > 0.0) {
                    tmp.fill(0.0);
                    member.add_scores(popularity, history, 1.0, &mut tmp);
                    add_standardised(out, scale * w, &tmp, history);
                }
            }
        }
    }

    /// What explaining `history`'s items needs that does not depend on the item: iALS's
    /// factored fold-in system, each blend member's scale. Computed once per list.
    fn prepare(&self, popularity: &[f32], history: &[(u32, f32)]) -> Prepared {
        match self {
            Scorer::Ials(m) => Prepared::Ials(m.factor(history)),
            Scorer::Blend(members) => Prepared::Blend(
                members
                    .iter()
                    .map(|(w, member)| {
                        if *w <= 0.0 {
                            return (0.0, Prepared::Nothing);
                        }
                        // Standardising subtracts a per-request constant (no per-item term)
                        // and divides by the member's spread, so each member's terms are
                        // scaled by weight / std.
                        let mut scores = vec![0f32; popularity.len()];
                        member.add_scores(popularity, history, 1.0, &mut scores);
                        let (_, std) = candidate_mean_std(&scores, history);
                        if std > 0.0 && std.is_finite() {
                            (w / std, member.prepare(popularity, history))
                        } else {
                            (0.0, Prepared::Nothing)
                        }
                    })
                    .collect(),
            ),
            _ => Prepared::Nothing,
        }
    }

    /// Each history entry's additive contribution to `item`'s score (see [`Model::explain`]).
    fn contributions(
        &self,
        prepared: &Prepared,
        popularity: &[f32],
        similar: &SparseRows,
        history: &[(u32, f32)],
        item: u32,
    ) -> Vec<f32> {
        let n = popularity.len();
        match self {
            Scorer::Popularity => history
                .iter()
                .map(|&(i, w)| w * similar.get(i as usize, item))
                .collect(),
            Scorer::Neighbours(s) => history
                .iter()
                .map(|&(i, w)| w * s.get(i as usize, item))
                .collect(),
            Scorer::Ease(b) => history
                .iter()
                .map(|&(i, w)| w * b[i as usize * n + item as usize])
                .collect(),
            Scorer::Ials(m) => match prepared {
                Prepared::Ials(l) => m.explain(l, history, item),
                _ => m.explain(&m.factor(history), history, item),
            },
            Scorer::Blend(members) => {
                let Prepared::Blend(parts) = prepared else {
                    return self.contributions(
                        &self.prepare(popularity, history),
                        popularity,
                        similar,
                        history,
                        item,
                    );
                };
                let mut total = vec![0f32; history.len()];
                for ((_, member), (scale, part)) in members.iter().zip(parts) {
                    if *scale > 0.0 {
                        let c = member.contributions(part, popularity, similar, history, item);
                        for (t, c) in total.iter_mut().zip(c) {
                            *t += scale * c;
                        }
                    }
                }
                total
            }
        }
    }
}

/// See [`Scorer::prepare`].
enum Prepared {
    Nothing,
    /// The Cholesky factor of the user's fold-in system.
    Ials(Vec<f64>),
    /// Per member: its scale in the blend (0: it adds nothing) and what it prepared.
    Blend(Vec<(f32, Prepared)>),
}

/// Explains why items were recommended from one history: what is shared between the items
/// (iALS's factored system, a blend's member scales) is computed once, when it is made.
pub struct Explainer<'a> {
    model: &'a Model,
    history: Vec<(u32, f32)>,
    prepared: Prepared,
}

impl Explainer<'_> {
    /// See [`Model::explain`].
    pub fn explain(&self, item: u32, k: usize) -> Vec<(u32, f32)> {
        let m = self.model;
        if item as usize >= m.n_items || k == 0 {
            return Vec::new();
        }
        let h = &self.history;
        let contrib = m
            .scorer
            .contributions(&self.prepared, &m.popularity, &m.similar, h, item);
        let mut per_item: Vec<(u32, f32)> = h.iter().map(|x| x.0).zip(contrib).collect();
        per_item.sort_unstable_by_key(|x| x.0);
        per_item.dedup_by(|b, a| {
            if a.0 == b.0 {
                a.1 += b.1;
                true
            } else {
                false
            }
        });
        let items: Vec<u32> = per_item.iter().map(|x| x.0).collect();
        let scores: Vec<f32> = per_item.iter().map(|x| x.1).collect();
        top_k(&scores, k, |p| scores[p as usize] > 0.0)
            .into_iter()
            .map(|(p, s)| (items[p as usize], s))
            .collect()
    }
}

/// A trained model: immutable, `Send + Sync`, meant to be shared behind an `Arc`.
///
/// Besides the algorithm's own parameters every model carries the time-decayed popularity of each
/// item (the fallback for empty histories) and the top cosine neighbours of each item
/// (for [`Model::similar_items`]).
#[derive(Clone)]
pub struct Model {
    config: AlgorithmConfig,
    n_items: usize,
    popularity: Vec<f32>,
    similar: SparseRows,
    scorer: Scorer,
    /// The approximate top-k index, once [`Model::build_index`] has made one.
    index: OnceLock<Arc<FactorIndex>>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("config", &self.config)
            .field("n_items", &self.n_items)
            .finish_non_exhaustive()
    }
}

/// Trains `config` on `data` with the default [`TrainOptions`].
pub fn train(config: &AlgorithmConfig, data: &Interactions) -> Result<Model, Error> {
    train_with_options(config, data, &TrainOptions::default())
}

/// Trains `config` on `data`. Never panics on degenerate data: zero users, zero items or a single
/// item give a valid (if uninformative) model. Errors on invalid hyper-parameters, on EASE above
/// `options.max_dense_items`, and on numerical failure.
pub fn train_with_options(
    config: &AlgorithmConfig,
    data: &Interactions,
    options: &TrainOptions,
) -> Result<Model, Error> {
    config.validate()?;
    let n = data.n_items();
    let dense = |c: &AlgorithmConfig| matches!(c, AlgorithmConfig::Ease { .. });
    let uses_dense = dense(config)
        || matches!(config, AlgorithmConfig::Blend { members } if members.iter().any(|m| dense(&m.config)));
    if uses_dense && n > options.max_dense_items {
        return Err(Error::TooManyItems {
            algorithm: "ease",
            n_items: n,
            max: options.max_dense_items,
        });
    }
    let half_life = match *config {
        AlgorithmConfig::Popularity { half_life_days } => half_life_days,
        _ => DEFAULT_POPULARITY_HALF_LIFE_DAYS,
    };
    let popularity = similarity::popularity(data, half_life);
    let by_item = data.by_item();
    let similar = if options.similar_items_per_item == 0 {
        SparseRows::empty(n)
    } else {
        similarity::cosine_neighbours(data, &by_item, options.similar_items_per_item, 0.0)
    };
    let scorer = fit_scorer(config, data, &by_item, &similar, options)?;
    Ok(Model {
        config: config.clone(),
        n_items: n,
        popularity,
        similar,
        scorer,
        index: OnceLock::new(),
    })
}

fn fit_scorer(
    config: &AlgorithmConfig,
    data: &Interactions,
    by_item: &ItemMajor,
    similar: &SparseRows,
    options: &TrainOptions,
) -> Result<Scorer, Error> {
    Ok(match config {
        AlgorithmConfig::Popularity { .. } => Scorer::Popularity,
        &AlgorithmConfig::ItemKnn {
            neighbors,
            shrinkage,
        } => {
            if shrinkage == 0.0 && neighbors == options.similar_items_per_item {
                Scorer::Neighbours(similar.clone())
            } else {
                Scorer::Neighbours(similarity::cosine_neighbours(
                    data, by_item, neighbors, shrinkage,
                ))
            }
        }
        &AlgorithmConfig::Rp3Beta {
            alpha,
            beta,
            neighbors,
        } => Scorer::Neighbours(similarity::rp3beta_neighbours(
            data, by_item, alpha, beta, neighbors,
        )),
        &AlgorithmConfig::Ease {
            lambda,
            dropout,
            user_norm,
            free_diagonal,
            session_seconds,
            session_weight,
        } => Scorer::Ease(ease::fit(
            data,
            ease::EaseParams {
                lambda,
                dropout,
                user_norm,
                free_diagonal,
                session_seconds,
                session_weight,
            },
        )?),
        &AlgorithmConfig::Ials {
            factors,
            regularization,
            alpha,
            iterations,
            seed,
        } => Scorer::Ials(ials::fit(
            data,
            by_item,
            factors,
            regularization,
            alpha,
            iterations,
            seed,
        )),
        AlgorithmConfig::Blend { members } => Scorer::Blend(
            members
                .iter()
                .map(|m| {
                    Ok((
                        m.weight,
                        fit_scorer(&m.config, data, by_item, similar, options)?,
                    ))
                })
                .collect::<Result<_, Error>>()?,
        ),
    })
}

impl Model {
    /// Assembles a model from its parts (used by the model file reader).
    pub(crate) fn from_parts(
        config: AlgorithmConfig,
        popularity: Vec<f32>,
        similar: SparseRows,
        scorer: Scorer,
    ) -> Model {
        Model {
            config,
            n_items: popularity.len(),
            popularity,
            similar,
            scorer,
            index: OnceLock::new(),
        }
    }

    pub(crate) fn parts(&self) -> (&[f32], &SparseRows, &Scorer) {
        (&self.popularity, &self.similar, &self.scorer)
    }

    /// Writes the model in Marquee's binary model format (little-endian, versioned, checksummed).
    /// Wrap files in a `BufWriter`; large arrays are written in 1 MiB pieces anyway.
    pub fn write_to(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        crate::persist::write_model(self, w)
    }

    /// Reads a model written by [`Model::write_to`]. Truncated, corrupt (bad checksum, lengths
    /// inconsistent with the config, out-of-range indices, non-finite values) or
    /// unknown-version input is [`Error::InvalidModelFile`], never a panic; memory grows only
    /// with the bytes actually read. The loaded model scores exactly like the written one.
    pub fn read_from(r: &mut impl std::io::Read) -> Result<Model, Error> {
        crate::persist::read_model(r)
    }

    /// The configuration this model was trained with.
    pub fn config(&self) -> &AlgorithmConfig {
        &self.config
    }

    /// Number of items the model knows (indices `0..n_items`).
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// Approximate heap memory held by the model, in bytes (for capacity planning and metrics).
    pub fn memory_bytes(&self) -> usize {
        self.scorer.memory_bytes() + self.similar.memory_bytes() + self.popularity.len() * 4
    }

    /// Time-decayed popularity of each item, higher = more popular. Uses the configured half-life
    /// for [`AlgorithmConfig::Popularity`], [`DEFAULT_POPULARITY_HALF_LIFE_DAYS`] otherwise.
    pub fn popularity(&self) -> &[f32] {
        &self.popularity
    }

    /// Scores every item for a user described only by `history` (`(item, weight)` pairs);
    /// `out.len() == n_items()` afterwards. Higher is better; the caller filters seen items
    /// (see [`top_k`]).
    ///
    /// Works for users unseen at training: EASE and item-kNN sum the history items' rows scaled
    /// by their weights, iALS solves the user's factors against the fixed item factors.
    /// Items `>= n_items()` and non-finite weights are ignored; if nothing is left, or the
    /// algorithm is popularity, the scores are [`Model::popularity`].
    pub fn score_history(&self, history: &[(u32, f32)], out: &mut Vec<f32>) {
        let n = self.n_items;
        out.clear();
        let h = self.known_history(history);
        if matches!(self.scorer, Scorer::Popularity) || h.is_empty() {
            out.extend_from_slice(&self.popularity);
            return;
        }
        out.resize(n, 0.0);
        self.scorer.add_scores(&self.popularity, &h, 1.0, out);
    }

    /// The `k` best items for `history` among those `keep` accepts, best first, with the
    /// scores of [`Model::score_history`]: [`top_k`] over every item's score — or, when the
    /// model has an approximate index ([`Model::build_index`]), the items its search finds
    /// (each rescored exactly). The full scan serves instead when `k` is over half of
    /// [`ann::MAX_CANDIDATES`], and when the search meets fewer than `k` accepted items (a
    /// filter that rejects most of the catalogue, a history holding most of the best items).
    pub fn top_k_for_history(
        &self,
        history: &[(u32, f32)],
        k: usize,
        keep: impl Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        if let (Some(index), Scorer::Ials(m)) = (self.index.get(), &self.scorer)
            && 2 * k <= ann::MAX_CANDIDATES
        {
            let h = self.known_history(history);
            if !h.is_empty() {
                let user: Vec<f32> = m.fold_in(&h).iter().map(|&v| v as f32).collect();
                let found = index.search(&user, k, ann::EF_SEARCH, &keep);
                if found.len() >= k {
                    let mut out: Vec<(u32, f32)> = found
                        .into_iter()
                        .map(|i| (i, m.score_one(&user, i)))
                        .filter(|x| !x.1.is_nan())
                        .collect();
                    out.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                    return out;
                }
            }
        }
        let mut scores = Vec::new();
        self.score_history(history, &mut scores);
        top_k(&scores, k, keep)
    }

    /// Builds the approximate top-k index ([`crate::ann`]) when this is a factor model (iALS)
    /// of at least `min_items` items (`0`: never), and says whether the model has one now.
    /// Idempotent. Takes seconds for 100k items on the rayon pool: meant for a background
    /// thread while [`Model::top_k_for_history`] serves from the exact scan.
    pub fn build_index(&self, min_items: usize) -> bool {
        if self.index.get().is_some() {
            return true;
        }
        if !self.wants_index(min_items) {
            return false;
        }
        let Scorer::Ials(m) = &self.scorer else {
            return false;
        };
        let (factors, _) = m.parts();
        let index = FactorIndex::build(factors, m.factors());
        let _ = self.index.set(Arc::new(index));
        true
    }

    pub(crate) fn ials(&self) -> Option<&IalsModel> {
        match &self.scorer {
            Scorer::Ials(m) => Some(m),
            _ => None,
        }
    }

    /// Whether [`Model::build_index`] would build an index for `min_items`.
    pub fn wants_index(&self, min_items: usize) -> bool {
        matches!(self.scorer, Scorer::Ials(_)) && min_items > 0 && self.n_items >= min_items
    }

    /// Whether [`Model::top_k_for_history`] searches an approximate index.
    pub fn has_index(&self) -> bool {
        self.index.get().is_some()
    }

    /// The entries of `history` this model can use: known items, finite weights.
    fn known_history(&self, history: &[(u32, f32)]) -> Vec<(u32, f32)> {
        let n = self.n_items;
        history
            .iter()
            .filter(|&&(i, w)| (i as usize) < n && w.is_finite())
            .copied()
            .collect()
    }

    /// Up to `k` items most similar to `item` by cosine on binary co-occurrence (computed at
    /// training for every algorithm; the item itself excluded), best first. Empty for an unknown
    /// item or one that co-occurs with nothing.
    pub fn similar_items(&self, item: u32, k: usize) -> Vec<(u32, f32)> {
        if item as usize >= self.n_items {
            return Vec::new();
        }
        let (cols, vals) = self.similar.row(item as usize);
        cols.iter()
            .copied()
            .zip(vals.iter().copied())
            .take(k)
            .collect()
    }

    /// The history items that contribute most to `item`'s score from [`Model::score_history`],
    /// as `(history item, contribution)`, best first, at most `k`, positive contributions only
    /// (duplicate history entries are summed).
    ///
    /// EASE / item-kNN: `w_h · B[h, item]`, exactly the terms of the score. iALS: the score is
    /// `Σ_h c_h · y_hᵀ A⁻¹ y_item` with `A` the user's fold-in system, and each term is reported.
    /// Popularity has no per-item terms; the cosine similarity `w_h · cos(h, item)` is used.
    pub fn explain(&self, history: &[(u32, f32)], item: u32, k: usize) -> Vec<(u32, f32)> {
        self.explainer(history).explain(item, k)
    }

    /// Explains several items of one history's list at the cost of the first (see
    /// [`Explainer`]).
    pub fn explainer(&self, history: &[(u32, f32)]) -> Explainer<'_> {
        let history = self.known_history(history);
        let prepared = if history.is_empty() {
            Prepared::Nothing
        } else {
            self.scorer.prepare(&self.popularity, &history)
        };
        Explainer {
            model: self,
            history,
            prepared,
        }
    }
}
