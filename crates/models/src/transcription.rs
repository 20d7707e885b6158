//! Transcription as a service: Whisper (see `marquee-transcribe`) behind admission control.
//!
//! The upload is decoded, downmixed and resampled on the worker thread, not on the async
//! runtime, and its length is checked against the limit from the WAV header before any sample
//! is decoded. A caller that goes away stops the decoding at the next token.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::manifest::ModelSpec;
use crate::runtime::{Admission, ModelError, RuntimeConfig, run_admitted};
use crate::speech::model_error;

pub use marquee_transcribe::{Segment, Transcript};

/// A loaded speech-recognition model.
pub struct TranscriptionService {
    name: String,
    transcriber: Arc<marquee_transcribe::Transcriber>,
    limits: marquee_transcribe::audio::AudioLimits,
    admission: Admission,
}

/// What a caller may tune.
#[derive(Clone, Debug, Default)]
pub struct TranscriptionParams {
    /// Text that precedes the audio (names, spelling), as OpenAI's `prompt`.
    pub prompt: Option<String>,
    /// 0 decodes greedily.
    pub temperature: f32,
}

impl TranscriptionService {
    pub fn load(spec: &ModelSpec, dir: &Path, config: &RuntimeConfig) -> Result<Self, ModelError> {
        let transcriber = marquee_transcribe::Transcriber::load(dir)
            .map_err(|e| ModelError::Load(e.to_string()))?;
        Ok(TranscriptionService {
            name: spec.name.clone(),
            transcriber: Arc::new(transcriber),
            limits: marquee_transcribe::audio::AudioLimits {
                max_bytes: config.max_audio_bytes,
                max_seconds: config.max_audio_seconds,
            },
            admission: Admission::new(
                config.transcription_concurrency,
                config.transcription_queue,
                config.retry_after_secs,
            ),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The largest file accepted, in bytes.
    pub fn max_bytes(&self) -> usize {
        self.limits.max_bytes
    }

    /// Decodes `audio` (a WAV file) and transcribes it.
    pub async fn transcribe(
        &self,
        audio: Vec<u8>,
        params: TranscriptionParams,
    ) -> Result<Transcript, ModelError> {
        if audio.len() > self.limits.max_bytes {
            return Err(ModelError::invalid(
                "file_too_large",
                "file",
                format!(
                    "the file has {} bytes; at most {}",
                    audio.len(),
                    self.limits.max_bytes
                ),
            ));
        }
        let transcriber = Arc::clone(&self.transcriber);
        let limits = self.limits;
        let cancel = Arc::new(AtomicBool::new(false));
        let options = marquee_transcribe::TranscribeOptions {
            prompt: params.prompt,
            temperature: params.temperature,
            cancel: Some(Arc::clone(&cancel)),
        };
        run_admitted(&self.admission, cancel, move || {
            let pcm = marquee_transcribe::audio::decode_to_16k(&audio, &limits)
                .map_err(|e| model_error(e.code(), e.is_client_error(), e.to_string()))?;
            transcriber
                .transcribe(&pcm, &options)
                .map_err(|e| model_error(e.code(), e.is_client_error(), e.to_string()))
        })
        .await
    }
}
