//! Picking an algorithm and its hyper-parameters from the data alone.
//!
//! Why: the best algorithm and regularisation differ by dataset (EASE's best λ is 500 on
//! ML-100K but 50 on Last.fm), and a platform cannot ask its users to tune. `auto_select` carves a
//! validation split out of the *training* interactions only (per-user 80/20 holdout, binary), trains
//! a small grid of candidates on the 80%, ranks them by validation nDCG@10, and returns the winner,
//! its λ rescaled to the full training set (XᵀX grows with the number of interactions, so λ is
//! multiplied by 1/0.8). The test data of any outer evaluation is never seen.
//!
//! The grid, sized for seconds to a minute on 2 cores:
//! * popularity and item-kNN as floors; RP3β at two popularity penalties;
//! * EASE at ¼, 1 and 4 times the data-driven λ (see [`AlgorithmConfig::default_for`]), whenever
//!   one fit is cheap: up to 8k items, or up to `TrainOptions::max_dense_items` when the Woodbury
//!   route applies (fewer users than items, see the `ease` module);
//! * iALS (64 factors, 10 iterations; the winner is returned with 15) at three regularisations;
//! * blends: the best item-item model (EASE, RP3β or kNN) with the best iALS, at weights
//!   0.3 / 0.5 / 0.7, scored from the already-trained members (no retraining). Item-item models and
//!   factorisations make different errors, and on the anchors a blend beats both members.

use std::time::Instant;

use serde::Serialize;

use crate::data::Ratings;
use crate::eval::{self, EvalOptions, Protocol};
use crate::model::add_standardised;
use crate::{AlgorithmConfig, BlendMember, Interactions, Model, TrainOptions, ease, train};

/// EASE candidates on the direct (n³) route are only tried up to this many items: about 3 s at
/// 6k items on 2 cores but 40 s or more at 15k, too slow for a three-point λ grid.
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
    grid.extend([0.3, 0.6].map(|beta| AlgorithmConfig::Rp3Beta {
        alpha: 1.0,
        beta,
        neighbors: 100,
    }));
    let ease_is_cheap = inner.n_items() <= AUTO_EASE_MAX_ITEMS
        || (inner.n_items() <= TrainOptions::default().max_dense_items
            && ease::prefers_woodbury(inner));
    if ease_is_cheap && inner.nnz() > 0 {
        // Same data-driven centre as `default_for`, which only proposes EASE up to 15k items.
        let lambda = (10.0 * inner.nnz() as f32 / inner.n_items() as f32).clamp(10.0, 1000.0);
        grid.extend([0.25, 1.0, 4.0].map(|m| AlgorithmConfig::Ease { lambda: lambda * m }));
    }
    for regularization in [15.0, 50.0, 150.0] {
        grid.push(AlgorithmConfig::Ials {
            factors: 64,
            regularization,
            alpha: 10.0,
            iterations: 10,
            seed,
        });
    }
    let mut models: Vec<Option<Model>> = Vec::with_capacity(grid.len());
    let mut candidates: Vec<Candidate> = Vec::with_capacity(grid.len() + 3);
    for config in grid {
        let start = Instant::now();
        let model = train(&config, inner).ok();
        let train_seconds = start.elapsed().as_secs_f64();
        let ndcg = model.as_ref().map(|m| eval::evaluate(m, &split, 10).ndcg);
        candidates.push(Candidate {
            config,
            ndcg,
            train_seconds,
        });
        models.push(model);
    }
    // Best item-item model and best factorisation, as blend partners.
    let best_of = |pick: fn(&AlgorithmConfig) -> bool| {
        candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| pick(&c.config))
            .filter_map(|(p, c)| c.ndcg.map(|n| (n, p)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|x| x.1)
    };
    let item_item = best_of(|c| {
        matches!(
            c,
            AlgorithmConfig::Ease { .. }
                | AlgorithmConfig::Rp3Beta { .. }
                | AlgorithmConfig::ItemKnn { .. }
        )
    });
    let factorised = best_of(|c| matches!(c, AlgorithmConfig::Ials { .. }));
    if let (Some(a), Some(b)) = (item_item, factorised)
        && let (Some(ma), Some(mb)) = (&models[a], &models[b])
    {
        for weight in [0.3f32, 0.5, 0.7] {
            let start = Instant::now();
            let metrics = eval::evaluate_scorer(inner.n_items(), &split, 10, |history, out| {
                let (mut sa, mut sb) = (Vec::new(), Vec::new());
                ma.score_history(history, &mut sa);
                mb.score_history(history, &mut sb);
                out.clear();
                out.resize(sa.len(), 0.0);
                add_standardised(out, weight, &sa, history);
                add_standardised(out, 1.0 - weight, &sb, history);
            });
            candidates.push(Candidate {
                config: AlgorithmConfig::Blend {
                    members: vec![
                        BlendMember {
                            weight,
                            config: candidates[a].config.clone(),
                        },
                        BlendMember {
                            weight: 1.0 - weight,
                            config: candidates[b].config.clone(),
                        },
                    ],
                },
                ndcg: Some(metrics.ndcg),
                train_seconds: start.elapsed().as_secs_f64()
                    + candidates[a].train_seconds
                    + candidates[b].train_seconds,
            });
        }
    }
    drop(models);
    let best = candidates
        .iter()
        .filter_map(|c| c.ndcg.map(|n| (n, &c.config)))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| for_full_data(c))
        .unwrap_or(fallback);
    Selection { best, candidates }
}

/// A config chosen on the 80% validation-train part, adjusted for the full training data.
fn for_full_data(config: &AlgorithmConfig) -> AlgorithmConfig {
    match *config {
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
