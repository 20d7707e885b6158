//! The voice and vision routes' answers: transcripts (OpenAI's shapes) and image labels.
//!
//! As in `openai.rs`, fields are declared in alphabetical order, the order the server wrote
//! them in when it built them as `serde_json` maps, so the bytes on the wire are unchanged; and
//! scores and times are `f64`, the precision those maps carried them in.

use serde::{Deserialize, Serialize};

/// A transcript (`POST /v1/audio/transcriptions`, `response_format` `json`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transcription {
    pub text: String,
    pub usage: AudioUsage,
}

/// A transcript with its segments (`response_format` `verbose_json`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerboseTranscription {
    /// Seconds.
    pub duration: f64,
    pub language: String,
    pub segments: Vec<TranscriptSegment>,
    #[cfg_attr(feature = "openapi", schema(examples("transcribe")))]
    pub task: String,
    pub text: String,
    pub usage: AudioUsage,
}

/// A timed stretch of a transcript (OpenAI's segment object).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranscriptSegment {
    pub avg_logprob: f64,
    pub compression_ratio: f64,
    /// Seconds.
    pub end: f64,
    pub id: u64,
    pub no_speech_prob: f64,
    pub seek: u64,
    /// Seconds.
    pub start: f64,
    pub temperature: f64,
    pub text: String,
    pub tokens: Vec<u32>,
}

/// Audio is billed by the millisecond; `usage` rounds up to seconds, as OpenAI's does.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AudioUsage {
    pub seconds: u64,
    /// `duration`.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(examples("duration")))]
    pub kind: String,
}

impl AudioUsage {
    /// `{"type": "duration", "seconds": ⌈seconds⌉}`.
    pub fn duration(seconds: f64) -> Self {
        AudioUsage {
            seconds: seconds.ceil().max(0.0) as u64,
            kind: "duration".into(),
        }
    }
}

/// The most likely ImageNet labels of an image (`POST /v1/images/classify`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageClassification {
    pub image: ImageInfo,
    /// Most likely first.
    pub labels: Vec<ImageLabel>,
    pub model: String,
    #[cfg_attr(feature = "openapi", schema(examples("image.classification")))]
    pub object: String,
    pub usage: ImageUsage,
}

impl ImageClassification {
    /// The value of `object`.
    pub const OBJECT: &'static str = "image.classification";
}

/// One class of an [`ImageClassification`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageLabel {
    /// The class's index in the model's label list.
    pub index: u64,
    pub label: String,
    /// Probability, 0 to 1.
    pub score: f64,
}

/// The decoded image's size and format.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// `png`, `jpeg` or `webp`.
    pub format: String,
    pub height: u32,
    pub width: u32,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageUsage {
    pub images: u64,
}
