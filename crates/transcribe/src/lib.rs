//! Speech to text for Marquee: Whisper tiny.en running on candle, on the CPU.
//!
//! The pipeline, and why each part is here:
//! - [`convert`] turns the pulled CTranslate2 export into safetensors with the Hugging Face
//!   names candle reads, in Rust, so pulling a model needs no Python.
//! - [`audio`] decodes WAV uploads defensively (sizes and duration checked before any sample
//!   is touched) and resamples them to 16 kHz with an anti-aliasing resampler.
//! - [`Transcriber`] computes openai-whisper's log-mel front end, runs candle's Whisper
//!   encoder and a cached decoder, and applies openai's decoding rules and long-form loop
//!   (30 s windows advancing by timestamps, temperature fallback, silence and repetition
//!   guards), returning timed segments ([`Transcript`], renderable as SRT or WebVTT).
//!
//! This crate knows nothing of HTTP; the server maps [`Error::code`] and
//! [`Error::is_client_error`] to responses.

pub mod audio;
mod convert;
mod ct2;
mod decoding;
mod error;
mod mel;
mod model;
mod transcriber;
mod transcript;

pub use convert::{
    CONFIG_FILE, RAW_CONFIG_FILE, RAW_MODEL_FILE, TOKENIZER_FILE, WEIGHTS_FILE, WhisperConfig,
    convert,
};
pub use error::Error;
pub use mel::SAMPLE_RATE;
pub use transcriber::{TranscribeOptions, Transcriber};
pub use transcript::{Segment, Transcript};
