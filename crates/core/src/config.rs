//! Settings of the service layer (the server's own settings live in the server crate).

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Feedback types that mean "not interested": they hide the item from the user's
    /// recommendations but do not count as interest when training.
    pub negative_feedback_types: Vec<String>,
    /// With a value, `rating` events below it count as negative.
    pub rating_threshold: Option<f64>,
    /// Most events (or items, or users) accepted in one write request.
    pub max_batch: usize,
    /// Retrain once this many new feedback events have arrived…
    pub retrain_min_new_events: u64,
    /// …and they are at least this fraction of all events.
    pub retrain_min_new_fraction: f64,
    /// Tune the algorithm of each tenant on its own data after its first (untuned) model.
    pub auto_tune: bool,
    /// How often (seconds) to look for tenants to retrain and for changes made by other
    /// processes (keys, imports).
    pub poll_interval_secs: f64,
    /// Memory (MiB) per tenant for ranked lists kept until what they came from changes (see
    /// `list_cache`); 0 turns keeping them off.
    pub list_cache_mb: usize,
    /// Factor models (iALS) of at least this many items are served from an approximate top-k
    /// index (HNSW, see `recsys::ann`) instead of scoring every item; 0 turns it off.
    pub ann_min_items: usize,
    /// Billable answers wait for the commit of their usage-ledger row and are refused (503) when
    /// it fails, instead of the row being written behind the answer (see `metering`): not one
    /// request is served that the ledger has not taken, at the cost of the commit's latency.
    pub ledger_commit_before_answer: bool,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            negative_feedback_types: ["dislike", "skip", "hide", "not_interested"]
                .map(String::from)
                .to_vec(),
            rating_threshold: None,
            max_batch: 10_000,
            retrain_min_new_events: 1_000,
            retrain_min_new_fraction: 0.05,
            auto_tune: true,
            poll_interval_secs: 2.0,
            list_cache_mb: 64,
            ann_min_items: 50_000,
            ledger_commit_before_answer: false,
        }
    }
}

impl ServiceConfig {
    /// Whether an event expresses interest (true) or rejection (false).
    pub fn is_positive(&self, kind: &str, value: Option<f64>) -> bool {
        if self.negative_feedback_types.iter().any(|t| t == kind) {
            return false;
        }
        match (kind, value, self.rating_threshold) {
            ("rating", Some(v), Some(threshold)) => v >= threshold,
            _ => true,
        }
    }
}
