//! The one error type of this crate, with stable codes the server maps to HTTP statuses.

use std::path::PathBuf;

/// Everything that can go wrong while converting, loading, decoding audio or transcribing.
///
/// [`Error::code`] is a stable snake_case identifier for API responses;
/// [`Error::is_client_error`] says whether the caller's input was at fault (4xx) or the
/// model/host was (5xx).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not a WAV file this crate can read (bad header, truncated, unsupported
    /// encoding, absurd sizes).
    #[error("invalid audio: {0}")]
    InvalidAudio(String),
    /// The audio is longer than the configured limit (checked from the header, before decoding).
    #[error("audio is {seconds:.1} s long; the limit is {limit_seconds:.0} s")]
    AudioTooLong { seconds: f64, limit_seconds: f64 },
    /// The upload is larger than the configured byte limit.
    #[error("audio file is {bytes} bytes; the limit is {limit_bytes} bytes")]
    AudioTooLarge { bytes: usize, limit_bytes: usize },
    /// The file is well formed but holds no samples.
    #[error("audio contains no samples")]
    EmptyAudio,
    /// A transcription option is out of range (for example a negative temperature).
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// The caller's cancel flag was raised; the transcription stopped early.
    #[error("transcription cancelled")]
    Cancelled,
    /// A file the model needs is not in the model directory.
    #[error(
        "model file {} is missing; run `marquee models pull whisper-tiny-en`",
        path.display()
    )]
    ModelMissing { path: PathBuf },
    /// A model file is present but malformed or not what this crate expects.
    #[error("invalid model file {}: {reason}", path.display())]
    InvalidModel { path: PathBuf, reason: String },
    /// Reading or writing a model file failed.
    #[error("i/o error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The tensor library failed while running the model.
    #[error("model execution failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// The tokenizer failed to encode or decode text.
    #[error("tokenizer failed: {0}")]
    Tokenizer(String),
    /// The resampler rejected its input or configuration.
    #[error("resampling failed: {0}")]
    Resample(String),
}

impl Error {
    /// Stable snake_case identifier, suitable for an API error `code` field.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidAudio(_) => "invalid_audio",
            Error::AudioTooLong { .. } => "audio_too_long",
            Error::AudioTooLarge { .. } => "audio_too_large",
            Error::EmptyAudio => "empty_audio",
            Error::InvalidOption(_) => "invalid_option",
            Error::Cancelled => "cancelled",
            Error::ModelMissing { .. } => "model_missing",
            Error::InvalidModel { .. } => "invalid_model",
            Error::Io { .. } => "io_error",
            Error::Candle(_) => "model_error",
            Error::Tokenizer(_) => "tokenizer_error",
            Error::Resample(_) => "resample_error",
        }
    }

    /// True when the caller's input was at fault (answer 4xx); false for model, host or
    /// cancellation outcomes (the caller chooses the status for [`Error::Cancelled`], as the
    /// input was not at fault).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Error::InvalidAudio(_)
                | Error::AudioTooLong { .. }
                | Error::AudioTooLarge { .. }
                | Error::EmptyAudio
                | Error::InvalidOption(_)
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid_model(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::InvalidModel {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
