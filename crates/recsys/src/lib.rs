//! Marquee's recommendation engine: algorithms, training, evaluation and top-k serving.
//!
//! It knows nothing of HTTP or storage: callers hand it an [`Interactions`] matrix indexed by
//! dense `u32` user and item ids, get back an immutable [`Model`], and score histories with
//! [`Model::score_history`] + [`top_k`].
//!
//! * Algorithms ([`AlgorithmConfig`]): time-decayed popularity, item-kNN (cosine), RP3β (random
//!   walk with a popularity penalty), EASE (closed-form linear autoencoder, dense, best quality up
//!   to ~15–30k items), implicit ALS (matrix factorisation, scales to large catalogues) and
//!   blends of them (standardised scores, weighted).
//! * Persistence: [`Model::write_to`] / [`Model::read_from`], a checked little-endian binary
//!   format (see the `persist` module).
//! * Weights: every algorithm uses the interaction weights it is given (EASE and iALS as matrix
//!   values / confidences, kNN and popularity count interactions). [`eval`] feeds them binary
//!   (1.0) implicit feedback, as the anchor protocols do; callers with play counts should pass
//!   something bounded such as `ln(1 + count)` or 1.0.
//! ```
//! use recsys::{AlgorithmConfig, Interactions, top_k, train};
//!
//! // (user, item, weight, unix seconds)
//! let data = Interactions::from_triples(3, 4, [
//!     (0, 0, 1.0, 10), (0, 1, 1.0, 20), (1, 0, 1.0, 30),
//!     (1, 1, 1.0, 40), (1, 2, 1.0, 50), (2, 2, 1.0, 60),
//! ]);
//! let model = train(&AlgorithmConfig::default_for(&data), &data).unwrap();
//! let history = [(0, 1.0)]; // a new visitor who liked item 0
//! let mut scores = Vec::new();
//! model.score_history(&history, &mut scores);
//! let recs = top_k(&scores, 2, |i| i != 0); // exclude what they already have
//! assert_eq!(recs[0].0, 1);
//! ```
//!
//! * Determinism: training depends only on the data and the config (seeds included), never on the
//!   wall clock or on thread scheduling beyond float summation order.

pub mod ann;
mod config;
pub mod data;
mod ease;
pub mod eval;
mod ials;
mod interactions;
mod kernels;
mod model;
mod persist;
mod rng;
mod select;
mod similarity;
mod topk;

pub use config::{
    AlgorithmConfig, BlendMember, DEFAULT_POPULARITY_HALF_LIFE_DAYS, EASE_DEFAULT_MAX_ITEMS,
};
pub use interactions::Interactions;
pub use model::{Explainer, Model, TrainOptions, train, train_with_options};
pub use select::{Candidate, Selection, auto_select, auto_select_report};
pub use topk::top_k;

/// Why training failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A hyper-parameter is out of its valid range.
    #[error("invalid algorithm configuration: {0}")]
    InvalidConfig(String),
    /// The algorithm's memory or time grows too fast for this catalogue size.
    #[error("{algorithm} refuses to train on {n_items} items (limit {max}); use ials or item_knn")]
    TooManyItems {
        algorithm: &'static str,
        n_items: usize,
        max: usize,
    },
    /// A factorisation failed (should not happen with valid hyper-parameters).
    #[error("numerical failure: {0}")]
    Numerical(String),
    /// A model file is truncated, corrupt, or of an unsupported format version
    /// ([`Model::read_from`]).
    #[error("invalid model file: {0}")]
    InvalidModelFile(String),
    /// Reading a model file failed for a reason other than its content.
    #[error("model file I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Entry points for `examples/train_speed.rs` (the `bench/` comparison); not a stable API.
#[doc(hidden)]
pub mod bench_internals {
    use crate::{Error, Interactions};

    /// The crate's deterministic PRNG, so benchmarks draw their synthetic data with it.
    pub use crate::rng::SplitMix64;

    /// The serving scan of factor models: `out[j] = item_factors[j] · user` (see `kernels`).
    pub fn factor_scores(item_factors: &[f32], f: usize, user: &[f32], out: &mut [f32]) {
        crate::kernels::scores(item_factors, f, user, out)
    }

    /// An iALS model's item factors (row-major) and their number per item; `None` for other
    /// algorithms.
    pub fn ials_parts(model: &crate::Model) -> Option<(&[f32], usize)> {
        model.ials().map(|m| (m.parts().0, m.factors()))
    }

    /// The user vector an iALS model folds `history` into (empty for other algorithms).
    pub fn user_vector(model: &crate::Model, history: &[(u32, f32)]) -> Vec<f32> {
        model
            .ials()
            .map(|m| m.fold_in(history).iter().map(|&v| v as f32).collect())
            .unwrap_or_default()
    }

    /// EASE's weights through the n×n Cholesky route, whatever the shape of the data.
    pub fn ease_direct(data: &Interactions, lambda: f32) -> Result<Vec<f32>, Error> {
        crate::ease::fit_direct(data, lambda, false)
    }

    /// EASE's weights through the users-side (Woodbury) route, whatever the shape of the data,
    /// with its u×u inverse in f32 (`Some(true)`), f64 (`Some(false)`) or as [`crate::train`]
    /// picks (`None`).
    pub fn ease_woodbury(
        data: &Interactions,
        lambda: f32,
        single: Option<bool>,
    ) -> Result<Vec<f32>, Error> {
        crate::ease::fit_woodbury(data, lambda, false, single)
    }

    /// EASE's weights by the route [`crate::train`] takes (the fit alone: no popularity vector
    /// or similar-items index).
    pub fn ease_fit(data: &Interactions, lambda: f32) -> Result<Vec<f32>, Error> {
        crate::ease::fit(data, crate::ease::EaseParams::plain(lambda))
    }

    /// Whether [`crate::train`] takes the Woodbury (users-side) route for EASE on `data`.
    pub fn ease_uses_woodbury(data: &Interactions) -> bool {
        crate::ease::prefers_woodbury(data)
    }
}
