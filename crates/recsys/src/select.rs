//! Picking an algorithm and its hyper-parameters from the data alone.
//!
//! Why: the best algorithm and regularisation differ by dataset (EASE's best λ is 500 on
//! ML-100K but 50 on Last.fm), and a platform cannot ask its users to tune. `auto_select` carves a
//! validation split out of the *training* interactions only (per-user 80/20 holdout, binary), trains
//! a small grid of candidates on the 80%, ranks them by validation nDCG@10, and returns the winner,
//! its λ rescaled to the full training set (XᵀX grows with the number of interactions, so λ is
//! multiplied by 1/0.8). The test data of any outer evaluation is never seen.
//!
//! The grid is sized for a budget of seconds, not minutes: EASE (λ at ¼, 1 and 4 times the
//! data-driven default) only up to 8k items, iALS at two regularisations (10 iterations; the
//! winner is returned with 15), plus item-kNN and popularity as floors.

use std::time::Instant;

use serde::Serialize;

use crate::data::Ratings;
use crate::eval::{self, EvalOptions, Protocol};
use crate::{AlgorithmConfig, Interactions, train};

/// EASE candidates are only tried up to this many items: each fit is O(n³), about 3 s at 6k
/// items on 2 cores but 40 s or more at 15k, too slow for a three-point λ grid.
const AUTO_EASE_MAX_ITEMS: usize = 8_000;

/// Validation share of each user's training interactions.
const VALIDATION_FRACTION: f64 = 0.2;

/// One evaluated candidate.
#[derive(Clone, Debug, Serialize)]
pub struct Candidate {
    /// As trained on the validation split (before λ rescaling).
    pub config: AlgorithmConfig,
    /// Validation nDCG@10; `None` if it failed to train.
    pub ndcg: Option<f64>,
    pub train_seconds: f64,
}

/// The outcome of [`auto_select_report`].
#[derive(Clone, Debug, Serialize)]
pub struct Selection {
    /// Config to train on the full training data.
    pub best: AlgorithmConfig,
    pub candidates: Vec<Candidate>,
}

/// Best config for `train`, chosen on a validation split carved from `train` itself.
pub fn auto_select(train: &Interactions, seed: u64) -> AlgorithmConfig {
    auto_select_report(train, seed).best
}

/// [`auto_select`] with the validation score of every candidate.
pub fn auto_select_report(data: &Interactions, seed: u64) -> Selection {
    let fallback = AlgorithmConfig::default_for(data);
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
    let Ok(split) = eval::split(&ratings, &options) else {
        return Selection {
            best: fallback,
            candidates: Vec::new(),
        };
    };
    let inner = &split.train;
    let mut grid = vec![
        AlgorithmConfig::Popularity {
            half_life_days: 0.0,
        },
        AlgorithmConfig::ItemKnn {
            neighbors: 100,
            shrinkage: 10.0,
        },
    ];
    if inner.n_items() <= AUTO_EASE_MAX_ITEMS
        && let AlgorithmConfig::Ease { lambda } = AlgorithmConfig::default_for(inner)
    {
        grid.extend([0.25, 1.0, 4.0].map(|m| AlgorithmConfig::Ease { lambda: lambda * m }));
    }
    for regularization in [15.0, 50.0] {
        grid.push(AlgorithmConfig::Ials {
            factors: 64,
            regularization,
            alpha: 10.0,
            iterations: 10,
            seed,
        });
    }
    let candidates: Vec<Candidate> = grid
        .into_iter()
        .map(|config| {
            let start = Instant::now();
            let model = train(&config, inner).ok();
            let train_seconds = start.elapsed().as_secs_f64();
            let ndcg = model.map(|m| eval::evaluate(&m, &split, 10).ndcg);
            Candidate {
                config,
                ndcg,
                train_seconds,
            }
        })
        .collect();
    let best = candidates
        .iter()
        .filter_map(|c| c.ndcg.map(|n| (n, &c.config)))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| match *c {
            AlgorithmConfig::Ease { lambda } => AlgorithmConfig::Ease {
                lambda: lambda / (1.0 - VALIDATION_FRACTION) as f32,
            },
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
            ref other => other.clone(),
        })
        .unwrap_or(fallback);
    Selection { best, candidates }
}
