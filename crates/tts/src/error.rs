//! The crate's error type. Codes are stable snake_case strings for API responses; `is_client_error`
//! separates bad input (4xx) from model, file and internal faults (5xx).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input text is empty or only whitespace.
    #[error("input text is empty")]
    EmptyInput,
    /// `speed` outside 0.25..=4.0 (or not a number).
    #[error("speed must be between 0.25 and 4.0, got {0}")]
    InvalidSpeed(f32),
    /// The text has nothing the voice can say (only symbols or characters it cannot read).
    #[error("input text contains nothing pronounceable")]
    Unpronounceable,
    /// `SpeechOptions::cancel` was set while synthesizing.
    #[error("synthesis cancelled")]
    Cancelled,
    /// A model file is missing from the model directory.
    #[error("model file {} is missing; run `marquee models pull` to fetch the hibari model", path.display())]
    ModelMissing { path: PathBuf },
    /// A model file could not be read.
    #[error("reading {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A model file is malformed (bad JSON, bad ONNX graph, unexpected shapes).
    #[error("invalid model file {name}: {reason}")]
    InvalidModel { name: String, reason: String },
    /// Running a network failed.
    #[error("inference failed: {0}")]
    Inference(String),
    /// A text-processing step failed (a pattern gave up on pathological input).
    #[error("text processing failed: {0}")]
    Text(String),
}

impl Error {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::EmptyInput => "empty_input",
            Error::InvalidSpeed(_) => "invalid_speed",
            Error::Unpronounceable => "unpronounceable_input",
            Error::Cancelled => "cancelled",
            Error::ModelMissing { .. } => "model_missing",
            Error::Io { .. } => "io_error",
            Error::InvalidModel { .. } => "invalid_model",
            Error::Inference(_) => "inference_failed",
            Error::Text(_) => "text_processing_failed",
        }
    }

    /// True when the caller's input (or the caller's own cancellation) caused the error.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Error::EmptyInput | Error::InvalidSpeed(_) | Error::Unpronounceable | Error::Cancelled
        )
    }

    pub(crate) fn invalid_model(name: &str, reason: impl std::fmt::Display) -> Error {
        Error::InvalidModel {
            name: name.to_string(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn inference(e: impl std::fmt::Display) -> Error {
        Error::Inference(format!("{e:#}"))
    }
}
