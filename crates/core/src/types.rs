//! The shapes callers send and receive: the API's own ([`marquee_types`], shared with the Rust
//! SDK) and the service's (keys, training, options), with the checks on ids.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use marquee_types::*;

use crate::error::ServiceError;

/// Ids are opaque strings chosen by the tenant: 1–256 bytes, no control characters.
pub fn validate_id(field: &str, id: &str) -> Result<(), ServiceError> {
    if id.is_empty() {
        return Err(ServiceError::invalid(field, "must not be empty"));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(ServiceError::invalid(
            field,
            format!("is {} bytes long; the limit is {MAX_ID_BYTES}", id.len()),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Options shared by every recommend route.
#[derive(Clone, Debug)]
pub struct RecommendOptions {
    pub n: usize,
    /// Keep items in any of these categories (case-insensitive); empty keeps all.
    pub categories: Vec<String>,
    /// Require every category in `categories` instead of any.
    pub all_categories: bool,
    /// Leave out items the user already engaged with (default true).
    pub exclude_seen: bool,
    /// Item ids never to return.
    pub exclude: Vec<String>,
    /// An expression over item fields and metadata (see [`crate::filter`]).
    pub filter: Option<String>,
    /// 0 (pure relevance) to 1 (most varied): maximal-marginal-relevance re-ranking.
    pub diversity: Option<f32>,
    /// At most this many items per primary (first) category.
    pub max_per_category: Option<usize>,
    /// 0..0.5: share of the list given to random picks among the next-best candidates.
    pub exploration: Option<f32>,
}

impl Default for RecommendOptions {
    fn default() -> Self {
        RecommendOptions {
            n: 10,
            categories: Vec::new(),
            all_categories: false,
            exclude_seen: true,
            exclude: Vec::new(),
            filter: None,
            diversity: None,
            max_per_category: None,
            exploration: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tenants, keys, training

#[derive(utoipa::ToSchema, Clone, Debug, Serialize)]
pub struct TenantInfo {
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub tenant: Option<String>,
    #[schema(value_type = marquee_platform::KeyKind)]
    pub kind: &'static str,
    pub name: Option<String>,
    pub prefix: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    /// When the key stops working (expiry, or the end of a rotation's grace period).
    pub expires_at: Option<Timestamp>,
    /// The key that replaced this one in a rotation.
    pub rotated_to: Option<String>,
    /// Scopes, models, origins, limits, quotas and budget (absent fields: no restriction).
    pub policy: marquee_platform::KeyPolicy,
}

/// A key as returned once at creation, secret included.
#[derive(utoipa::ToSchema, Clone, Debug, Serialize)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub info: KeyInfo,
    pub key: String,
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize)]
pub struct ModelVersionInfo {
    pub version: i64,
    pub algorithm: Value,
    pub trained_at: Timestamp,
    pub users: i64,
    pub items: i64,
    pub interactions: i64,
    pub train_ms: i64,
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize)]
pub struct TrainingStatus {
    /// `idle`, `training` or `failed`.
    pub state: &'static str,
    pub current: Option<ModelVersionInfo>,
    /// How the serving model ranks a user's items: `exact` (every item scored), `indexing`
    /// (an approximate index is being built; exact meanwhile) or `approximate` (from the
    /// index; see the `ann_min_items` setting). `null` without a model.
    #[schema(examples("exact"))]
    pub ranking: Option<&'static str>,
    pub last_error: Option<String>,
    /// Feedback events received since the serving model was trained.
    pub events_since_training: u64,
    pub versions: Vec<ModelVersionInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bounded_and_printable() {
        assert!(validate_id("id", "tt0076759").is_ok());
        assert!(validate_id("id", "").is_err());
        assert!(validate_id("id", &"x".repeat(257)).is_err());
        assert!(validate_id("id", "a\nb").is_err());
        assert!(validate_id("id", "é✓ 1").is_ok());
    }
}
