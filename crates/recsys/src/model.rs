//! Training and serving-time scoring.

use crate::config::DEFAULT_POPULARITY_HALF_LIFE_DAYS;
use crate::ials::{self, IalsModel};
use crate::similarity::{self, SparseRows};
use crate::{AlgorithmConfig, Error, Interactions, ease, top_k};

/// Limits and sizes that are not hyper-parameters of the algorithm itself.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    /// EASE refuses to train above this many items: its model is a dense n×n f32 matrix
    /// (4n² bytes, twice that at peak during training) and training is O(n³).
    pub max_dense_items: usize,
    /// How many cosine neighbours are kept per item for [`Model::similar_items`].
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

#[derive(Clone, Debug)]
enum Scorer {
    Popularity,
    ItemKnn(SparseRows),
    /// Row-major n×n item-item weights, zero diagonal.
    Ease(Vec<f32>),
    Ials(IalsModel),
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
    if let AlgorithmConfig::Ease { .. } = config
        && n > options.max_dense_items
    {
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
    let similar =
        similarity::cosine_neighbours(data, &by_item, options.similar_items_per_item, 0.0);
    let scorer = match *config {
        AlgorithmConfig::Popularity { .. } => Scorer::Popularity,
        AlgorithmConfig::ItemKnn {
            neighbors,
            shrinkage,
        } => {
            if shrinkage == 0.0 && neighbors == options.similar_items_per_item {
                Scorer::ItemKnn(similar.clone())
            } else {
                Scorer::ItemKnn(similarity::cosine_neighbours(
                    data, &by_item, neighbors, shrinkage,
                ))
            }
        }
        AlgorithmConfig::Ease { lambda } => Scorer::Ease(ease::fit(data, lambda)?),
        AlgorithmConfig::Ials {
            factors,
            regularization,
            alpha,
            iterations,
            seed,
        } => Scorer::Ials(ials::fit(
            data,
            factors,
            regularization,
            alpha,
            iterations,
            seed,
        )),
    };
    Ok(Model {
        config: config.clone(),
        n_items: n,
        popularity,
        similar,
        scorer,
    })
}

impl Model {
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
        let scorer = match &self.scorer {
            Scorer::Popularity => 0,
            Scorer::ItemKnn(s) => s.memory_bytes(),
            Scorer::Ease(b) => b.len() * 4,
            Scorer::Ials(m) => m.memory_bytes(),
        };
        scorer + self.similar.memory_bytes() + self.popularity.len() * 4
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
        let known = |&&(i, w): &&(u32, f32)| (i as usize) < n && w.is_finite();
        out.clear();
        if matches!(self.scorer, Scorer::Popularity) || !history.iter().any(|h| known(&h)) {
            out.extend_from_slice(&self.popularity);
            return;
        }
        out.resize(n, 0.0);
        match &self.scorer {
            Scorer::Popularity => unreachable!("handled above"),
            Scorer::ItemKnn(s) => {
                for &(i, w) in history.iter().filter(known) {
                    let (cols, vals) = s.row(i as usize);
                    for (&j, &v) in cols.iter().zip(vals) {
                        out[j as usize] += w * v;
                    }
                }
            }
            Scorer::Ease(b) => {
                for &(i, w) in history.iter().filter(known) {
                    let row = &b[i as usize * n..(i as usize + 1) * n];
                    for (o, &v) in out.iter_mut().zip(row) {
                        *o += w * v;
                    }
                }
            }
            Scorer::Ials(m) => {
                let h: Vec<(u32, f32)> = history.iter().filter(known).copied().collect();
                let user = m.fold_in(&h);
                m.score_into(&user, out);
            }
        }
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
        let n = self.n_items;
        if item as usize >= n || k == 0 {
            return Vec::new();
        }
        let h: Vec<(u32, f32)> = history
            .iter()
            .filter(|&&(i, w)| (i as usize) < n && w.is_finite())
            .copied()
            .collect();
        let contrib: Vec<f32> = match &self.scorer {
            Scorer::Popularity => h
                .iter()
                .map(|&(i, w)| w * self.similar.get(i as usize, item))
                .collect(),
            Scorer::ItemKnn(s) => h
                .iter()
                .map(|&(i, w)| w * s.get(i as usize, item))
                .collect(),
            Scorer::Ease(b) => h
                .iter()
                .map(|&(i, w)| w * b[i as usize * n + item as usize])
                .collect(),
            Scorer::Ials(m) => m.explain(&h, item),
        };
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
