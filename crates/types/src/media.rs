//! The voice and vision routes' answers: transcripts (OpenAI's shapes) and image labels.
//!
//! As in `openai.rs`, fields are declared in alphabetical order, the order the server wrote
//! them in when it built them as `serde_json` maps, so the bytes on the wire are unchanged; and
//! scores and times are `f64`, the precision those maps carried them in.

use std::borrow::Cow;

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
    #[serde(default = "ImageClassification::object")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = String, required = true, examples("image.classification"))
    )]
    pub object: Cow<'static, str>,
    pub usage: ImageUsage,
}

impl ImageClassification {
    /// The value of `object`.
    pub const OBJECT: &'static str = "image.classification";

    fn object() -> Cow<'static, str> {
        Cow::Borrowed(Self::OBJECT)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The bytes the server wrote when it built these answers as `json!` maps (f32 scores
    /// widened to f64, keys sorted) are the bytes the types write.
    #[test]
    fn answers_serialize_as_the_maps_they_replaced() {
        let score = 0.876_543_2f32;
        let image = ImageClassification {
            image: ImageInfo {
                format: "png".into(),
                height: 300,
                width: 451,
            },
            labels: vec![ImageLabel {
                index: 281,
                label: "tabby".into(),
                score: score as f64,
            }],
            model: "efficientnet-lite0".into(),
            object: ImageClassification::object(),
            usage: ImageUsage { images: 1 },
        };
        let map = json!({
            "object": "image.classification",
            "model": "efficientnet-lite0",
            "labels": [{"label": "tabby", "index": 281usize, "score": score}],
            "image": {"width": 451u32, "height": 300u32, "format": "png"},
            "usage": {"images": 1},
        });
        assert_eq!(
            serde_json::to_string(&image).unwrap(),
            serde_json::to_string(&map).unwrap()
        );

        let verbose = VerboseTranscription {
            duration: 2.5,
            language: "english".into(),
            segments: vec![TranscriptSegment {
                avg_logprob: -0.25,
                compression_ratio: 0.0,
                end: 2.4,
                id: 0,
                no_speech_prob: 0.01,
                seek: 0,
                start: 0.0,
                temperature: 0.0,
                text: " Hello.".into(),
                tokens: vec![50364, 2425],
            }],
            task: "transcribe".into(),
            text: "Hello.".into(),
            usage: AudioUsage::duration(2.5),
        };
        let map = json!({
            "task": "transcribe",
            "language": "english",
            "duration": 2.5,
            "text": "Hello.",
            "segments": [{
                "id": 0usize, "seek": 0, "start": 0.0, "end": 2.4, "text": " Hello.",
                "tokens": [50364u32, 2425u32], "temperature": 0.0, "avg_logprob": -0.25,
                "compression_ratio": 0.0, "no_speech_prob": 0.01,
            }],
            "usage": {"type": "duration", "seconds": 3u64},
        });
        assert_eq!(
            serde_json::to_string(&verbose).unwrap(),
            serde_json::to_string(&map).unwrap()
        );
    }
}
