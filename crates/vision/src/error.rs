//! The crate's one error type, with stable codes for API error bodies.

use std::path::PathBuf;

/// Everything that can go wrong converting, loading or running the classifier.
///
/// [`Error::code`] is a stable snake_case code; [`Error::is_client_error`] says whether the
/// caller's input was at fault (a 4xx) rather than the model or the machine (a 5xx).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request carried no image bytes.
    #[error("the image is empty")]
    EmptyImage,
    /// The image is over a size limit: too many bytes, or a header declaring too many pixels.
    #[error("the image is too large: {0}")]
    ImageTooLarge(String),
    /// The bytes are not PNG, JPEG or WebP (named when recognised, e.g. `gif`).
    #[error(
        "unsupported image format{}; send PNG, JPEG or WebP",
        .detected.map(|f| format!(" `{f}`")).unwrap_or_else(|| " (unrecognised)".to_owned())
    )]
    UnsupportedFormat { detected: Option<&'static str> },
    /// A PNG, JPEG or WebP that cannot be decoded (truncated, corrupt).
    #[error("invalid image: {0}")]
    InvalidImage(String),
    /// `top_k` was zero.
    #[error("`top_k` must be at least 1")]
    InvalidTopK,
    /// A file the model needs is not in the model directory.
    #[error(
        "missing model file {}; run `marquee models pull efficientnet-lite0`",
        .path.display()
    )]
    MissingModelFile { path: PathBuf },
    /// A model file is there but malformed (wrong format, missing tensor, bad shape).
    #[error("invalid model file {}: {message}", .path.display())]
    InvalidModel { path: PathBuf, message: String },
    /// Reading or writing a model file failed.
    #[error("I/O error on {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The network failed to run (an internal fault, not the caller's).
    #[error("inference failed: {0}")]
    Inference(String),
}

impl Error {
    /// Stable snake_case code for error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Error::EmptyImage => "empty_image",
            Error::ImageTooLarge(_) => "image_too_large",
            Error::UnsupportedFormat { .. } => "unsupported_image_format",
            Error::InvalidImage(_) => "invalid_image",
            Error::InvalidTopK => "invalid_top_k",
            Error::MissingModelFile { .. } => "model_files_missing",
            Error::InvalidModel { .. } => "invalid_model",
            Error::Io { .. } => "io_error",
            Error::Inference(_) => "inference_failed",
        }
    }

    /// Whether the caller's input was at fault (a 4xx) rather than the model or machine (5xx).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Error::EmptyImage
                | Error::ImageTooLarge(_)
                | Error::UnsupportedFormat { .. }
                | Error::InvalidImage(_)
                | Error::InvalidTopK
        )
    }

    pub(crate) fn invalid_model(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::InvalidModel {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Inference(e.to_string())
    }
}
