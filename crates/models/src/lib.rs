//! Marquee's model runtime: real models on CPU, in process, from the one binary.
//!
//! Why this crate exists apart from the server: the inference code (candle) and the model store
//! (`models pull`) know nothing of HTTP, so the CLI, the benchmarks and the server all drive the
//! same code, and the server crate stays thin.
//!
//! - [`manifest`]: which models Marquee knows, where their weights come from, their checksums.
//! - [`pull`]: fetches and verifies them into the models directory.
//! - [`embed`]: sentence embeddings (BERT, mean pooling, L2-normalised); [`bert`]: the encoder
//!   that runs them (candle's `bert` where it does not cover a model).
//! - [`chat`]: text generation with quantized LLaMA-family GGUF models; [`llama`]: the decoder
//!   that runs them (candle's `quantized_llama` where it does not cover a model).
//! - [`speech`], [`transcription`], [`vision`]: speech synthesis, speech recognition and image
//!   recognition as services over their engine crates (`marquee-tts`, `marquee-transcribe`,
//!   `marquee-vision`).
//! - [`runtime`]: the loaded models, each behind a bounded queue with a concurrency limit.

pub mod bert;
pub mod chat;
pub mod embed;
pub mod llama;
pub mod manifest;
pub mod pull;
pub mod runtime;
pub mod speech;
pub mod transcription;
pub mod vision;

pub use runtime::{ModelError, Runtime};

/// Why a model cannot run on one of Marquee's own engines ([`llama`], [`bert`]); the caller
/// then falls back to candle's implementation of it.
#[derive(Debug)]
pub enum EngineLoadError {
    /// The model has something the engine does not cover (said in words).
    Unsupported(String),
    /// Reading the weights failed.
    Candle(candle_core::Error),
}

impl std::fmt::Display for EngineLoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineLoadError::Unsupported(why) => {
                write!(f, "not covered by Marquee's engine: {why}")
            }
            EngineLoadError::Candle(e) => write!(f, "{e}"),
        }
    }
}

impl From<candle_core::Error> for EngineLoadError {
    fn from(e: candle_core::Error) -> Self {
        EngineLoadError::Candle(e)
    }
}
