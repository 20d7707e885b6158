//! Speech synthesis as a service: the hibari voice (see `marquee-tts`) behind admission control,
//! streamed sentence by sentence.
//!
//! Why a stream: a paragraph takes seconds to synthesise, but its first sentence is ready in a
//! fraction of that, so the first audio reaches the listener while the rest is still being made.
//! The synthesis runs on a blocking thread and stops at the next sentence when nobody listens.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::manifest::ModelSpec;
use crate::runtime::{Admission, ModelError, RuntimeConfig};

pub use marquee_tts::{to_pcm16le, wav_header};

/// Longest input accepted, in characters (OpenAI's limit).
pub const MAX_INPUT_CHARS: usize = 4096;
/// The speed range accepted (OpenAI's).
pub const SPEEDS: std::ops::RangeInclusive<f32> = 0.25..=4.0;

/// A piece of a synthesis: first how many chunks (sentences or clauses) the text makes, then
/// audio (mono f32 samples at the model's rate) as each chunk is ready, then one `Done`.
pub enum SpeechEvent {
    /// Sent first: the number of chunks to come, so that a caller can choose between waiting
    /// for the whole audio (one chunk) and streaming it.
    Chunks(usize),
    Audio(Vec<f32>),
    Done(Result<SpeechStats, ModelError>),
}

/// What a finished synthesis produced.
#[derive(Clone, Copy, Debug)]
pub struct SpeechStats {
    pub samples: usize,
    pub characters: usize,
}

/// A loaded voice model.
pub struct SpeechService {
    name: String,
    voice: Arc<marquee_tts::Voice>,
    voices: Vec<String>,
    sample_rate: u32,
    admission: Admission,
}

impl SpeechService {
    pub fn load(spec: &ModelSpec, dir: &Path, config: &RuntimeConfig) -> Result<Self, ModelError> {
        let voice = marquee_tts::Voice::load(dir).map_err(|e| ModelError::Load(e.to_string()))?;
        let voices: Vec<String> = voice.voices().iter().map(|v| v.to_string()).collect();
        if let Some(missing) = spec.voices.iter().find(|v| !voices.contains(v)) {
            return Err(ModelError::Load(format!(
                "the manifest names voice `{missing}`, which the model does not have"
            )));
        }
        Ok(SpeechService {
            name: spec.name.clone(),
            voice: Arc::new(voice),
            voices,
            sample_rate: marquee_tts::SAMPLE_RATE,
            admission: Admission::new(
                config.speech_concurrency,
                config.speech_queue,
                config.retry_after_secs,
            ),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The voices callers may ask for.
    pub fn voices(&self) -> &[String] {
        &self.voices
    }

    /// Samples per second of the audio produced.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Checks a request before any work: non-empty input within [`MAX_INPUT_CHARS`], a known
    /// voice, a speed in [`SPEEDS`].
    pub fn validate(&self, input: &str, voice: &str, speed: f32) -> Result<(), ModelError> {
        if input.trim().is_empty() {
            return Err(ModelError::invalid(
                "empty_input",
                "input",
                "`input` is empty",
            ));
        }
        let chars = input.chars().count();
        if chars > MAX_INPUT_CHARS {
            return Err(ModelError::invalid(
                "input_too_long",
                "input",
                format!("`input` has {chars} characters; at most {MAX_INPUT_CHARS}"),
            ));
        }
        if !self.voices.iter().any(|v| v == voice) {
            return Err(ModelError::invalid(
                "invalid_voice",
                "voice",
                format!(
                    "unknown voice `{voice}`; `{}` has: {}",
                    self.name,
                    self.voices.join(", ")
                ),
            ));
        }
        if !speed.is_finite() || !SPEEDS.contains(&speed) {
            return Err(ModelError::invalid(
                "invalid_speed",
                "speed",
                format!("`speed` must be between 0.25 and 4.0, not {speed}"),
            ));
        }
        Ok(())
    }

    /// Starts a synthesis once a slot is free (refused at once when too many wait). Audio
    /// arrives on the channel sentence by sentence, then one `Done`. Dropping the receiver
    /// stops the synthesis at the next sentence.
    pub async fn start(
        &self,
        input: String,
        voice: String,
        speed: f32,
    ) -> Result<mpsc::Receiver<SpeechEvent>, ModelError> {
        self.validate(&input, &voice, speed)?;
        let permit = self.admission.enter().await?;
        let (tx, rx) = mpsc::channel(8);
        let model = Arc::clone(&self.voice);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // No flag needed: when the receiver is gone, the next chunk cannot be sent and the
            // callback's `false` stops the synthesis.
            let options = marquee_tts::SpeechOptions {
                speed,
                cancel: None,
            };
            match model.phonemize(&input) {
                Ok(chunks) => {
                    if tx.blocking_send(SpeechEvent::Chunks(chunks.len())).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let e = model_error(e.code(), e.is_client_error(), e.to_string());
                    let _ = tx.blocking_send(SpeechEvent::Done(Err(e)));
                    return;
                }
            }
            let result = model
                .synthesize(&input, &options, &mut |samples| {
                    tx.blocking_send(SpeechEvent::Audio(samples.to_vec()))
                        .is_ok()
                })
                .map(|stats| SpeechStats {
                    samples: stats.samples,
                    characters: stats.characters,
                })
                .map_err(|e| model_error(e.code(), e.is_client_error(), e.to_string()));
            let _ = tx.blocking_send(SpeechEvent::Done(result));
        });
        Ok(rx)
    }
}

/// An engine crate's error as a [`ModelError`]: the caller's fault keeps its code (a 4xx);
/// anything else is an inference failure.
pub(crate) fn model_error(code: &'static str, client: bool, message: String) -> ModelError {
    if code == "cancelled" {
        ModelError::Cancelled
    } else if client {
        ModelError::InvalidInput {
            code,
            message,
            param: None,
        }
    } else {
        ModelError::Inference(message)
    }
}
