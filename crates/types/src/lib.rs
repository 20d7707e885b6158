//! The shapes Marquee's HTTP API sends and receives.
//!
//! The server serializes these and the Rust SDK deserializes the very same types, so the two
//! cannot drift apart: catalogue, users and feedback, recommendations and profiles, listing
//! pages ([`Page`]), usage reports ([`UsageReport`]) and the OpenAI-shaped model answers
//! ([`Embeddings`], [`ChatCompletion`], [`ChatChunk`], [`Transcription`],
//! [`ImageClassification`]). Inputs reject unknown fields, so a typo is a clear error instead of
//! silently ignored data. Times are accepted as RFC 3339 strings or Unix seconds, kept as Unix
//! milliseconds and written as RFC 3339.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

mod media;
mod openai;
mod page;
mod usage;

pub use media::{
    AudioUsage, ImageClassification, ImageInfo, ImageLabel, ImageUsage, TranscriptSegment,
    Transcription, VerboseTranscription,
};
pub use openai::{
    AssistantMessage, ChatChoice, ChatChunk, ChatCompletion, ChatMessage, ChatRequest, ChatUsage,
    ChunkChoice, Delta, Embedding, EmbeddingUsage, EmbeddingVector, Embeddings,
};
pub use page::{ItemPage, Listed, Page, UserPage};
pub use usage::{GroupBy, UsageLine, UsageReport};

/// Longest id accepted, in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// Largest `n` a recommend route accepts.
pub const MAX_RECOMMENDATIONS: usize = 1000;

/// A point in time: Unix milliseconds inside, RFC 3339 on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Timestamp(ms)
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
            // Query strings carry every value as text: Unix seconds arrive as "1700000000".
            Raw::Text(t) if t.trim().parse::<f64>().is_ok() => match t.trim().parse::<f64>() {
                Ok(s) if s.is_finite() && (MIN_SECONDS..=MAX_SECONDS).contains(&s) => {
                    Ok(Timestamp((s * 1000.0).round() as i64))
                }
                _ => Err(serde::de::Error::custom("Unix seconds out of range")),
            },
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

/// In the OpenAPI document: an RFC 3339 string, or in requests also Unix seconds.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
        };
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                    .examples(["2026-11-30T09:00:00Z"]),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .description(Some("Unix seconds (accepted in requests only)")),
            )
            .description(Some(
                "A point in time. Answers write RFC 3339 (UTC); requests may also send Unix seconds.",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Timestamp {}

// ---------------------------------------------------------------------------------------------
// Items

/// An item as written by the tenant (`PUT /v1/items/{id}` takes it without `id`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_from: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_until: Option<Timestamp>,
    #[serde(default)]
    pub hidden: bool,
}

/// A partial update: only the fields present change (`null` clears an optional field).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemPatch {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub title: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub published_at: Option<Option<Timestamp>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub available_from: Option<Option<Timestamp>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub available_until: Option<Option<Timestamp>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<bool>,
}

/// Distinguishes "field absent" (outer None) from "field null" (Some(None)).
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// An item as stored and returned.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
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

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub id: String,
    pub attributes: Map<String, Value>,
    pub updated_at: Timestamp,
}

// ---------------------------------------------------------------------------------------------
// Feedback

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackInput {
    pub user_id: String,
    pub item_id: String,
    /// `view`, `like`, `rating`, `purchase`, … The tenant's own vocabulary; kinds listed in
    /// the configuration as negative (`dislike`, `skip`, …) count as seen but not as interest.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// When it happened; the time of arrival when absent. Resending an event with the same
    /// user, item and type replaces it, so retries are harmless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    /// The `recommendation_id` of the list the user acted on, for experiment attribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommendation_id: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Reason {
    /// `because_you_engaged`, `similar_to_context`, `similar_item`, `new_item`, `popular`,
    /// `trending`, `exploration`.
    pub kind: Cow<'static, str>,
    /// The items this reason refers to (the history items that contributed most, or the context item).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<String>,
    /// The same in words, for display.
    pub message: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
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

/// What a user is into, for "because you watched" rows and for the SDKs' `get_user_data`:
/// derived from their feedback.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UserProfile {
    pub user_id: String,
    /// The item the user engaged with most recently (positively), if any.
    pub item_id: Option<String>,
    /// Categories and tags weighted by how much and how recently the user engaged with them,
    /// strongest first; weights sum to 1.
    pub interests: Vec<Interest>,
    /// The most recent feedback, newest first, with item titles.
    pub history: Vec<HistoryEntry>,
    /// Attributes the tenant stored about the user.
    pub attributes: Map<String, Value>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Interest {
    /// `category` or `tag`.
    pub kind: String,
    pub name: String,
    pub weight: f32,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct HistoryEntry {
    pub item_id: String,
    pub title: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: Option<f64>,
    pub timestamp: Timestamp,
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
        // Query strings carry Unix seconds as text.
        let c: Timestamp = serde_json::from_str("\"1700000000\"").unwrap();
        assert_eq!(a, c);
        assert!(serde_json::from_str::<Timestamp>("1e300").is_err());
    }

    #[test]
    fn patch_tells_absent_from_null_both_ways() {
        let p: ItemPatch = serde_json::from_str(r#"{"description": null}"#).unwrap();
        assert_eq!(p.description, Some(None));
        assert_eq!(p.title, None);
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"description":null}"#
        );
    }

    #[test]
    fn outputs_round_trip() {
        let r = Recommendation {
            item_id: "heat".into(),
            title: Some("Heat".into()),
            score: 0.5,
            reason: Reason {
                kind: "popular".into(),
                items: vec![],
                message: "popular".into(),
            },
            categories: vec!["Crime".into()],
            recommendation_id: "rec_1".into(),
            variant: None,
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Recommendation>(&text).unwrap(), r);
        let f = FeedbackInput {
            user_id: "u".into(),
            item_id: "i".into(),
            kind: "view".into(),
            value: None,
            timestamp: None,
            recommendation_id: None,
        };
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"user_id":"u","item_id":"i","type":"view"}"#
        );
    }
}
