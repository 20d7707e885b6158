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
