//! Offline evaluation exactly as in `ANCHORS.md`, so Marquee's numbers can be put next to the
//! published / measured reference figures.
//!
//! * Protocol A ([`Protocol::ItemStratified`]): every rating is a positive (unless a threshold is
//!   given); for each item its ratings are shuffled and `round(0.75·n)` go to train.
//! * Protocol B ([`Protocol::UserHoldout`]): ratings `>= threshold` are kept; for each user they are
//!   shuffled and `round(0.8·n)`, at least 1, go to train.
//!
//! In both, users and items are those present in train (re-indexed densely, in original index
//! order); test pairs with an unknown user or item are dropped. `round` is Python's (half to even),
//! which the reference measurements used. The shuffles use this crate's SplitMix64 seeded with
//! `seed`, groups processed in index order — the same protocol, not numpy's random stream, so
//! figures agree with the anchors statistically (±~0.005 nDCG), not to the last digit.
//!
//! Training data is binary implicit feedback: weight 1.0 per kept interaction, original timestamps.
//! Ranking is over all train items, excluding the user's train items; binary relevance.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::Serialize;

use crate::data::Ratings;
use crate::rng::{SplitMix64, round_half_even};
use crate::{Interactions, Model, top_k};

/// How test interactions are held out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Protocol A: per item, default test fraction 0.25.
    ItemStratified,
    /// Protocol B: per user, default test fraction 0.2, at least one interaction stays in train.
    UserHoldout,
}

/// Split and ranking options.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalOptions {
    pub protocol: Protocol,
    /// Fraction held out for test; `None` = the protocol's default (0.25 for A, 0.2 for B).
    pub test_fraction: Option<f64>,
    /// Keep only interactions whose value is `>=` this; `None` keeps all.
    pub positive_threshold: Option<f32>,
    pub seed: u64,
    /// Cut-off for nDCG/precision/recall.
    pub k: usize,
}

impl EvalOptions {
    /// Protocol A with the anchors' settings (seed 42, k 10, no threshold).
    pub fn item_stratified() -> Self {
        EvalOptions {
            protocol: Protocol::ItemStratified,
            test_fraction: None,
            positive_threshold: None,
            seed: 42,
            k: 10,
        }
    }

    /// Protocol B with the anchors' settings (seed 42, k 10) and the given positive threshold.
    pub fn user_holdout(positive_threshold: Option<f32>) -> Self {
        EvalOptions {
            protocol: Protocol::UserHoldout,
            test_fraction: None,
            positive_threshold,
            seed: 42,
            k: 10,
        }
    }
}

/// Why a split could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("invalid evaluation options: {0}")]
    InvalidOptions(String),
    #[error("too few interactions to evaluate: {0}")]
    TooFewInteractions(String),
}

/// A train/test split in a dense index space of its own (train users × train items).
#[derive(Clone, Debug)]
pub struct Split {
    /// Binary training interactions (weight 1.0), `users.len()` × `items.len()`.
    pub train: Interactions,
    /// Test items of each train user (sorted, possibly empty), in the train item index space.
    pub test: Vec<Vec<u32>>,
    /// Index in [`Ratings::users`] of each train user.
    pub users: Vec<u32>,
    /// Index in [`Ratings::items`] of each train item.
    pub items: Vec<u32>,
}

impl Split {
    /// Number of (user, item) test pairs.
    pub fn n_test(&self) -> usize {
        self.test.iter().map(Vec::len).sum()
    }
}

/// Averages over test users (train users with at least one test item).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Metrics {
    pub ndcg: f64,
    pub precision: f64,
    pub recall: f64,
    pub recall_at_20: f64,
    pub test_users: usize,
}

/// Splits `r` by the protocol in `o`. Duplicate (user, item) pairs are merged first (max value,
/// latest timestamp) so that one pair cannot land on both sides.
pub fn split(r: &Ratings, o: &EvalOptions) -> Result<Split, EvalError> {
    let fraction = o.test_fraction.unwrap_or(match o.protocol {
        Protocol::ItemStratified => 0.25,
        Protocol::UserHoldout => 0.2,
    });
    if !(0.0..1.0).contains(&fraction) {
        return Err(EvalError::InvalidOptions(format!(
            "test_fraction must be in [0, 1), got {fraction}"
        )));
    }
    // Positives, de-duplicated, in file order.
    let mut kept: Vec<(u32, u32, f32, i64)> = Vec::with_capacity(r.triples.len());
    let mut at: HashMap<(u32, u32), usize> = HashMap::with_capacity(r.triples.len());
    for &(u, i, v, ts) in &r.triples {
        if o.positive_threshold.is_some_and(|t| v < t) {
            continue;
        }
        match at.get(&(u, i)) {
            Some(&p) => {
                kept[p].2 = kept[p].2.max(v);
                kept[p].3 = kept[p].3.max(ts);
            }
            None => {
                at.insert((u, i), kept.len());
                kept.push((u, i, v, ts));
            }
        }
    }
    drop(at);
    if kept.len() < 2 {
        return Err(EvalError::TooFewInteractions(format!(
            "{} positive interaction(s)",
            kept.len()
        )));
    }
    let key = |t: &(u32, u32, f32, i64)| match o.protocol {
        Protocol::ItemStratified => t.1,
        Protocol::UserHoldout => t.0,
    };
    let n_groups = kept.iter().map(|t| key(t) as usize + 1).max().unwrap_or(0);
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); n_groups];
    for (p, t) in kept.iter().enumerate() {
        groups[key(t) as usize].push(p);
    }
    let mut rng = SplitMix64::new(o.seed);
    let mut in_train = vec![false; kept.len()];
    for g in &mut groups {
        if g.is_empty() {
            continue;
        }
        rng.shuffle(g);
        let mut n_train = round_half_even((1.0 - fraction) * g.len() as f64) as usize;
        if o.protocol == Protocol::UserHoldout {
            n_train = n_train.max(1);
        }
        for &p in &g[..n_train.min(g.len())] {
            in_train[p] = true;
        }
    }
    // Dense re-indexing of train users and items, in original index order.
    let n_users_all = r
        .users
        .len()
        .max(kept.iter().map(|t| t.0 as usize + 1).max().unwrap_or(0));
    let n_items_all = r
        .items
        .len()
        .max(kept.iter().map(|t| t.1 as usize + 1).max().unwrap_or(0));
    let mut user_map = vec![u32::MAX; n_users_all];
    let mut item_map = vec![u32::MAX; n_items_all];
    for (t, _) in kept.iter().zip(&in_train).filter(|x| *x.1) {
        user_map[t.0 as usize] = 0;
        item_map[t.1 as usize] = 0;
    }
    let densify = |map: &mut Vec<u32>| -> Vec<u32> {
        let mut back = Vec::new();
        for (orig, m) in map.iter_mut().enumerate() {
            if *m != u32::MAX {
                *m = back.len() as u32;
                back.push(orig as u32);
            }
        }
        back
    };
    let users = densify(&mut user_map);
    let items = densify(&mut item_map);
    let mut test = vec![Vec::new(); users.len()];
    let mut train_triples = Vec::new();
    for (t, &tr) in kept.iter().zip(&in_train) {
        let (u, i) = (user_map[t.0 as usize], item_map[t.1 as usize]);
        if tr {
            train_triples.push((u, i, 1.0f32, t.3));
        } else if u != u32::MAX && i != u32::MAX {
            test[u as usize].push(i);
        }
    }
    test.iter_mut().for_each(|v| v.sort_unstable());
    let n_test: usize = test.iter().map(Vec::len).sum();
    if train_triples.is_empty() || n_test == 0 {
        return Err(EvalError::TooFewInteractions(format!(
            "{} train and {n_test} usable test interactions",
            train_triples.len()
        )));
    }
    let train = Interactions::from_triples(users.len(), items.len(), train_triples);
    Ok(Split {
        train,
        test,
        users,
        items,
    })
}

/// Ranks all train items for every test user (their train items excluded) and averages
/// nDCG@k, precision@k, recall@k and recall@20 as `ANCHORS.md` defines them:
/// nDCG@k = DCG of the top k / ideal DCG of min(k, |test|) hits (gain 1, discount log2(rank+1));
/// precision = hits/k; recall = hits/|test|; recall@20 = hits in top 20 / min(20, |test|).
/// Parallel over users.
pub fn evaluate(model: &Model, split: &Split, k: usize) -> Metrics {
    evaluate_scorer(model.n_items(), split, k, |history, out| {
        model.score_history(history, out)
    })
}

/// [`evaluate`] for any scoring function of a history (`out.len()` becomes `n`).
pub(crate) fn evaluate_scorer(
    n: usize,
    split: &Split,
    k: usize,
    score: impl Fn(&[(u32, f32)], &mut Vec<f32>) + Sync,
) -> Metrics {
    let depth = k.max(20);
    let discount: Vec<f64> = (0..depth).map(|r| 1.0 / ((r + 2) as f64).log2()).collect();
    let users: Vec<usize> = (0..split.test.len())
        .filter(|&u| !split.test[u].is_empty())
        .collect();
    let sums = users
        .par_iter()
        .map_init(
            || (Vec::<f32>::with_capacity(n), vec![false; n]),
            |(scores, seen), &u| {
                let test = &split.test[u];
                let items = split.train.user_items(u as u32);
                let history = split.train.user_history(u as u32);
                score(&history, scores);
                for &i in items.iter().filter(|&&i| (i as usize) < n) {
                    seen[i as usize] = true;
                }
                let top = top_k(scores, depth, |i| !seen[i as usize]);
                for &i in items.iter().filter(|&&i| (i as usize) < n) {
                    seen[i as usize] = false;
                }
                let hit: Vec<bool> = top
                    .iter()
                    .map(|x| test.binary_search(&x.0).is_ok())
                    .collect();
                let hits_k = hit.iter().take(k).filter(|&&h| h).count();
                let hits_20 = hit.iter().take(20).filter(|&&h| h).count();
                let dcg: f64 = (0..k.min(hit.len()))
                    .filter(|&r| hit[r])
                    .map(|r| discount[r])
                    .sum();
                let idcg: f64 = discount[..k.min(test.len())].iter().sum();
                let ndcg = if idcg > 0.0 { dcg / idcg } else { 0.0 };
                let precision = if k > 0 { hits_k as f64 / k as f64 } else { 0.0 };
                [
                    ndcg,
                    precision,
                    hits_k as f64 / test.len() as f64,
                    hits_20 as f64 / test.len().min(20) as f64,
                ]
            },
        )
        .reduce(
            || [0.0; 4],
            |a, b| [a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]],
        );
    let m = users.len().max(1) as f64;
    Metrics {
        ndcg: sums[0] / m,
        precision: sums[1] / m,
        recall: sums[2] / m,
        recall_at_20: sums[3] / m,
        test_users: users.len(),
    }
}
