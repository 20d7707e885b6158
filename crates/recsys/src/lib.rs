//! Marquee's recommendation engine: algorithms, training, evaluation and top-k serving.
//!
//! It knows nothing of HTTP or storage: callers hand it an [`Interactions`] matrix indexed by
//! dense `u32` user and item ids, get back an immutable [`Model`], and score histories with
//! [`Model::score_history`] + [`top_k`].
//!
//! * Algorithms ([`AlgorithmConfig`]): time-decayed popularity, item-kNN (cosine), EASE
//!   (closed-form linear autoencoder, dense, best quality up to ~15–30k items) and implicit ALS
//!   (matrix factorisation, scales to large catalogues).
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

mod config;
pub mod data;
mod ease;
pub mod eval;
mod ials;
mod interactions;
mod model;
mod rng;
mod select;
mod similarity;
mod topk;

pub use config::{AlgorithmConfig, DEFAULT_POPULARITY_HALF_LIFE_DAYS, EASE_DEFAULT_MAX_ITEMS};
pub use interactions::Interactions;
pub use model::{Model, TrainOptions, train, train_with_options};
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
}
