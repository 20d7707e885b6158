//! The shapes callers send and receive, shared by the HTTP server, the CLI and (later) the SDKs.
//!
//! Inputs reject unknown fields, so a typo is a clear error instead of silently ignored data.
//! Times are accepted as RFC 3339 strings or Unix seconds, stored as Unix milliseconds and
//! returned as RFC 3339.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::ServiceError;

/// Longest id accepted, in bytes.
pub const MAX_ID_BYTES: usize = 256;

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

/// A point in time: Unix milliseconds inside, RFC 3339 on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        Timestamp(marquee_store::now_ms())
    }

    pub fn to_rfc3339(self) -> String {
        let nanos = self.0 as i128 * 1_000_000;
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| self.0.to_string())
    }

    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let t =
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
        Some(Timestamp((t.unix_timestamp_nanos() / 1_000_000) as i64))
    }
}

/// Years 0001–9999, so every stored time formats as RFC 3339.
const MIN_SECONDS: f64 = -62_135_596_800.0;
const MAX_SECONDS: f64 = 253_402_300_799.0;

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(f64),
            Text(String),
        }
        match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected an RFC 3339 time or Unix seconds"))?
        {
            Raw::Seconds(s) if s.is_finite() && (MIN_SECONDS..=MAX_SECONDS).contains(&s) => {
                Ok(Timestamp((s * 1000.0).round() as i64))
            }
            Raw::Seconds(_) => Err(serde::de::Error::custom("Unix seconds out of range")),
            Raw::Text(t) => Timestamp::parse_rfc3339(&t)
                .filter(|t| {
                    (t.0 as f64 / 1000.0) >= MIN_SECONDS && (t.0 as f64 / 1000.0) <= MAX_SECONDS
                })
                .ok_or_else(|| serde::de::Error::custom(format!("{t:?} is not an RFC 3339 time"))),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

// ---------------------------------------------------------------------------------------------
// Items

/// An item as written by the tenant (`PUT /v1/items/{id}` takes it without `id`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub published_at: Option<Timestamp>,
    #[serde(default)]
    pub available_from: Option<Timestamp>,
    #[serde(default)]
    pub available_until: Option<Timestamp>,
    #[serde(default)]
    pub hidden: bool,
}

/// A partial update: only the fields present change (`null` clears an optional field).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemPatch {
    #[serde(default, deserialize_with = "present")]
    pub title: Option<Option<String>>,
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub description: Option<Option<String>>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "present")]
    pub published_at: Option<Option<Timestamp>>,
    #[serde(default, deserialize_with = "present")]
    pub available_from: Option<Option<Timestamp>>,
    #[serde(default, deserialize_with = "present")]
    pub available_until: Option<Option<Timestamp>>,
    #[serde(default)]
    pub hidden: Option<bool>,
}

/// Distinguishes "field absent" (outer None) from "field null" (Some(None)).
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// An item as stored and returned.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Item {
    pub id: String,
    pub title: Option<String>,
    pub categories: Vec<String>,
    pub tags: Vec<String>,
    pub description: Option<String>,
    pub metadata: Map<String, Value>,
    pub published_at: Option<Timestamp>,
    pub available_from: Option<Timestamp>,
    pub available_until: Option<Timestamp>,
    pub hidden: bool,
    pub updated_at: Timestamp,
}

// ---------------------------------------------------------------------------------------------
// Users

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct User {
    pub id: String,
    pub attributes: Map<String, Value>,
    pub updated_at: Timestamp,
}

// ---------------------------------------------------------------------------------------------
// Feedback

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackInput {
    pub user_id: String,
    pub item_id: String,
    /// `view`, `like`, `rating`, `purchase`, … The tenant's own vocabulary; kinds listed in
    /// the configuration as negative (`dislike`, `skip`, …) count as seen but not as interest.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub value: Option<f64>,
    /// When it happened; the time of arrival when absent. Resending an event with the same
    /// user, item and type replaces it, so retries are harmless.
    #[serde(default)]
    pub timestamp: Option<Timestamp>,
    /// The `recommendation_id` of the list the user acted on, for experiment attribution.
    #[serde(default)]
    pub recommendation_id: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Feedback {
    pub user_id: String,
    pub item_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: Option<f64>,
    pub timestamp: Timestamp,
}

// ---------------------------------------------------------------------------------------------
// Recommendations

/// Why an item was recommended, grounded in what the model used.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Reason {
    /// `because_you_engaged`, `similar_to_context`, `similar_item`, `new_item`, `popular`,
    /// `trending`, `exploration`.
    pub kind: &'static str,
    /// The items this reason refers to (the history items that contributed most, or the context item).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<String>,
    /// The same in words, for display.
    pub message: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Recommendation {
    pub item_id: String,
    pub title: Option<String>,
    pub score: f32,
    pub reason: Reason,
    pub categories: Vec<String>,
    /// Identifies the list this item was served in; send it back with feedback
    /// (`recommendation_id`) to attribute clicks and conversions.
    pub recommendation_id: String,
    /// The experiment variant that produced the list, if the user is in an experiment.
    pub variant: Option<String>,
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

/// Largest `n` a recommend route accepts.
pub const MAX_RECOMMENDATIONS: usize = 1000;

// ---------------------------------------------------------------------------------------------
// Tenants, keys, training

#[derive(Clone, Debug, Serialize)]
pub struct TenantInfo {
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub tenant: Option<String>,
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
#[derive(Clone, Debug, Serialize)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub info: KeyInfo,
    pub key: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelVersionInfo {
    pub version: i64,
    pub algorithm: Value,
    pub trained_at: Timestamp,
    pub users: i64,
    pub items: i64,
    pub interactions: i64,
    pub train_ms: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct TrainingStatus {
    /// `idle`, `training` or `failed`.
    pub state: &'static str,
    pub current: Option<ModelVersionInfo>,
    pub last_error: Option<String>,
    /// Feedback events received since the serving model was trained.
    pub events_since_training: u64,
    pub versions: Vec<ModelVersionInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_seconds_or_rfc3339_and_write_rfc3339() {
        let a: Timestamp = serde_json::from_str("1700000000").unwrap();
        let b: Timestamp = serde_json::from_str("\"2023-11-14T22:13:20Z\"").unwrap();
        assert_eq!(a, b);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            "\"2023-11-14T22:13:20Z\""
        );
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
        assert!(serde_json::from_str::<Timestamp>("1e300").is_err());
    }

    #[test]
    fn ids_are_bounded_and_printable() {
        assert!(validate_id("id", "tt0076759").is_ok());
        assert!(validate_id("id", "").is_err());
        assert!(validate_id("id", &"x".repeat(257)).is_err());
        assert!(validate_id("id", "a\nb").is_err());
        assert!(validate_id("id", "é✓ 1").is_ok());
    }

    #[test]
    fn patch_tells_absent_from_null() {
        let p: ItemPatch = serde_json::from_str(r#"{"description": null}"#).unwrap();
        assert_eq!(p.description, Some(None));
        assert_eq!(p.title, None);
    }
}
