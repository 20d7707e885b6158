//! Long-form transcription: 30 s windows, temperature fallback, silence skipping, segments.
//!
//! The loop follows openai-whisper's `transcribe()`: the log-mel of the whole recording is
//! cut into 30 s windows; each window is decoded with timestamp tokens, conditioned on the
//! text so far (`<|startofprev|>` prompt); the window then advances to the last complete
//! timestamp, so a sentence cut by the window edge is decoded again whole in the next one.
//! A window whose decode looks like silence (high no-speech probability and low confidence)
//! is skipped; one that looks repetitive (zlib compression ratio above 2.4), improbable
//! (mean log-probability below -1) or that fell into a loop (see below) is decoded again at
//! higher temperatures; when no attempt passes, the most probable one that is neither
//! repetitive nor looping is kept (as faster-whisper does; openai keeps the last).
//!
//! Loop guard: sampling stops as soon as the text ends with one phrase said back to back
//! many times (4 times for phrases of 4+ tokens, at least 16 tokens in all for shorter
//! ones), the signature of Whisper's hallucinated runs ("Thank you. Thank you. ..."), and
//! the decode keeps only the first copy. Speech that merely repeats itself less often is
//! left alone, and only flagged through the compression ratio.
//!
//! Two additions to openai's loop, both about silence. A window that would open on a long
//! stretch of silence (every mel band 60 dB under the recording's peak, or below 16-bit
//! noise) starts 0.2 s before the next sound instead: Whisper puts a window's first
//! timestamp within its first second, so otherwise speech after a pause is dated to the start
//! of the pause, and the encoder would run on silence, where the model is most prone to
//! inventing text. And each segment's start and end are moved in to its first and last
//! frames that stand 15 dB over the recording's noise floor, which fixes the same dating
//! problem after pauses filled with noise, and tiny.en's overshooting end timestamps.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::model::{AudioEncoder, Whisper};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokenizers::Tokenizer;

use crate::Error;
use crate::convert::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE, WhisperConfig};
use crate::decoding::{self, LogitRules};
use crate::mel::{HOP_LENGTH, MelFrontend, N_FRAMES, SAMPLE_RATE};
use crate::model::{DecoderState, TextDecoder};
use crate::transcript::{Segment, Transcript};

/// Above this no-speech probability (with low confidence) a window counts as silence.
const NO_SPEECH_THRESHOLD: f32 = 0.6;
/// Below this mean log-probability a decode is retried at a higher temperature.
const LOGPROB_THRESHOLD: f64 = -1.0;
/// Above this compression ratio a decode is a repetition loop.
const COMPRESSION_RATIO_THRESHOLD: f64 = 2.4;
/// Temperature added at each fallback attempt (openai: 0.0, 0.2, ..., 1.0).
const TEMPERATURE_STEP: f32 = 0.2;
/// Above this temperature the decode does not seed the next window's prompt.
const PROMPT_RESET_TEMPERATURE: f32 = 0.5;
/// Latest first timestamp of a window: 1 s in 20 ms steps.
const MAX_INITIAL_TIMESTAMP_INDEX: u32 = 50;
/// Silence: every mel band more than this far below the recording's loudest...
const SILENCE_RANGE_DB: f32 = 60.0;
/// ...or below this absolute level (log10 of mel power; 16-bit dither noise is about -8.5).
const SILENCE_FLOOR_LOG10: f32 = -8.0;
/// For trimming segment edges only, frames less than this over the recording's noise floor
/// count as silence too (trimming moves times, it never drops text).
const TRIM_ABOVE_NOISE_DB: f32 = 15.0;
/// Silence at the start of a window is skipped when it lasts at least this long (frames)...
const MIN_SILENCE_SKIP_FRAMES: usize = 50;
/// ...leaving this much of it (frames) before the sound.
const SILENCE_MARGIN_FRAMES: usize = 20;
/// Fixed sampling seed, so that a transcription is reproducible.
const SAMPLING_SEED: u64 = 0x5EED_3A11;

/// Options of one transcription (OpenAI's `prompt` and `temperature`, plus cancellation).
#[derive(Debug, Clone, Default)]
pub struct TranscribeOptions {
    /// Text that precedes the audio (spellings, names, style); at most the last 223 tokens
    /// are used.
    pub prompt: Option<String>,
    /// First sampling temperature, 0..=1. 0 decodes greedily; on a failed quality check the
    /// window is decoded again at +0.2 steps up to 1.0.
    pub temperature: f32,
    /// Raised by the caller to stop early with [`Error::Cancelled`]; checked before every
    /// decoding step.
    pub cancel: Option<Arc<AtomicBool>>,
}

#[derive(Debug, Clone, Copy)]
struct SpecialTokens {
    eot: u32,
    sot: u32,
    sot_prev: u32,
    no_speech: u32,
    timestamp_begin: u32,
}

/// A loaded Whisper model, ready to transcribe.
///
/// `Send + Sync`: [`Transcriber::transcribe`] takes `&self`, copies the encoder (its tensors
/// are reference counted, so this is cheap) and keeps every cache in per-call state, so
/// several transcriptions can run at once on one instance.
pub struct Transcriber {
    config: WhisperConfig,
    encoder: AudioEncoder,
    decoder: TextDecoder,
    tokenizer: Tokenizer,
    mel: MelFrontend,
    tokens: SpecialTokens,
    rules: LogitRules,
}

/// The outcome of decoding one window at one temperature.
#[derive(Debug, Clone)]
struct Decoded {
    tokens: Vec<u32>,
    avg_logprob: f64,
    no_speech_prob: f32,
    temperature: f32,
    compression_ratio: f64,
    /// Sampling was stopped by the loop guard (and the loop cut).
    looped: bool,
}

impl Decoded {
    fn is_repetitive(&self) -> bool {
        self.looped || self.compression_ratio > COMPRESSION_RATIO_THRESHOLD
    }
}

impl Transcriber {
    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from `dir` (written by
    /// [`crate::convert`]); the weights are upcast to f32 for CPU inference.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let path = |name: &str| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(Error::ModelMissing { path })
            }
        };
        let config_path = path(CONFIG_FILE)?;
        let weights_path = path(WEIGHTS_FILE)?;
        let tokenizer_path = path(TOKENIZER_FILE)?;
        let config: WhisperConfig = serde_json::from_slice(
            &std::fs::read(&config_path).map_err(|e| Error::io(&config_path, e))?,
        )
        .map_err(|e| Error::invalid_model(&config_path, e.to_string()))?;

        let device = Device::Cpu;
        let bad_weights =
            |e: candle_core::Error| Error::invalid_model(&weights_path, e.to_string());
        let tensors =
            candle_core::safetensors::load(&weights_path, &device).map_err(bad_weights)?;
        let tensors = tensors
            .into_iter()
            .map(|(name, t)| Ok((name, t.to_dtype(DType::F32)?)))
            .collect::<candle_core::Result<HashMap<_, _>>>()?;
        // Tensors handed out by this builder share storage, so the encoder (via candle's
        // Whisper) and the decoder below hold one copy of the weights.
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let whisper = Whisper::load(&vb, config.candle_config()).map_err(bad_weights)?;
        let decoder = TextDecoder::load(&vb, &config).map_err(bad_weights)?;

        let tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| Error::invalid_model(&tokenizer_path, e.to_string()))?;
        let id = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| tokenizer.token_to_id(n))
                .ok_or_else(|| {
                    Error::invalid_model(&tokenizer_path, format!("no {} token", names[0]))
                })
        };
        let no_timestamps = id(&["<|notimestamps|>"])?;
        let tokens = SpecialTokens {
            eot: id(&["<|endoftext|>"])?,
            sot: id(&["<|startoftranscript|>"])?,
            sot_prev: id(&["<|startofprev|>"])?,
            no_speech: id(&["<|nospeech|>", "<|nocaptions|>"])?,
            // Timestamp tokens follow <|notimestamps|>: <|0.00|>, <|0.02|>, ..., <|30.00|>.
            timestamp_begin: no_timestamps + 1,
        };
        let n_timestamps = N_FRAMES / (N_FRAMES / config.max_source_positions) + 1;
        if tokens.timestamp_begin as usize + n_timestamps > config.vocab_size {
            return Err(Error::invalid_model(
                &config_path,
                format!(
                    "vocabulary of {} has no room for {n_timestamps} timestamp tokens",
                    config.vocab_size
                ),
            ));
        }
        let in_vocab = |ids: &[u32]| {
            ids.iter()
                .copied()
                .filter(|&t| (t as usize) < config.vocab_size)
                .collect::<Vec<_>>()
        };
        let rules = LogitRules {
            eot: tokens.eot,
            no_timestamps,
            timestamp_begin: tokens.timestamp_begin,
            suppress: in_vocab(&config.suppress_tokens),
            suppress_begin: in_vocab(&config.begin_suppress_tokens),
            max_initial_timestamp_index: MAX_INITIAL_TIMESTAMP_INDEX,
        };
        Ok(Self {
            mel: MelFrontend::new(config.num_mel_bins),
            encoder: whisper.encoder,
            decoder,
            tokenizer,
            tokens,
            rules,
            config,
        })
    }

    /// Transcribes 16 kHz mono samples.
    pub fn transcribe(
        &self,
        pcm_16k_mono: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Transcript, Error> {
        if !(opts.temperature.is_finite() && (0.0..=1.0).contains(&opts.temperature)) {
            return Err(Error::InvalidOption(format!(
                "temperature must be between 0 and 1, got {}",
                opts.temperature
            )));
        }
        if pcm_16k_mono.is_empty() {
            return Err(Error::EmptyAudio);
        }
        let samples: Vec<f32> = pcm_16k_mono
            .iter()
            .map(|&s| if s.is_finite() { s } else { 0.0 })
            .collect();
        let duration = samples.len() as f64 / f64::from(SAMPLE_RATE);
        let cancelled = || {
            opts.cancel
                .as_ref()
                .is_some_and(|flag| flag.load(Ordering::Relaxed))
        };
        let temperatures: Vec<f32> = (0..)
            .map(|i| opts.temperature + TEMPERATURE_STEP * i as f32)
            .take_while(|&t| t <= 1.0 + 1e-6)
            .collect();

        let mel = self.mel.log_mel(&samples);
        let content_frames = samples.len() / HOP_LENGTH;
        let audible =
            mel.audible_frames(content_frames, SILENCE_RANGE_DB, SILENCE_FLOOR_LOG10, None);
        let above_noise = mel.audible_frames(
            content_frames,
            SILENCE_RANGE_DB,
            SILENCE_FLOOR_LOG10,
            Some(TRIM_ABOVE_NOISE_DB),
        );
        let frames_per_step = N_FRAMES / self.config.max_source_positions;
        let seconds_per_frame = HOP_LENGTH as f64 / f64::from(SAMPLE_RATE);
        let seconds_per_step = seconds_per_frame * frames_per_step as f64;

        let mut encoder = self.encoder.clone();
        let mut rng = StdRng::seed_from_u64(SAMPLING_SEED);
        let mut all_tokens: Vec<u32> = match opts.prompt.as_deref().map(str::trim) {
            Some(prompt) if !prompt.is_empty() => self.encode(&format!(" {prompt}"))?,
            _ => Vec::new(),
        };
        let mut prompt_reset_since = 0;
        let mut segments: Vec<Segment> = Vec::new();
        let mut seek = 0;
        while seek < content_frames {
            if cancelled() {
                return Err(Error::Cancelled);
            }
            // Whisper places a window's first timestamp within its first second, so a window
            // that opens on a long silence would date the speech after it too early (and the
            // model may invent text in it). Start the window just before the sound instead.
            match audible[seek..].iter().position(|&a| a) {
                None => break,
                Some(gap) if gap >= MIN_SILENCE_SKIP_FRAMES => seek += gap - SILENCE_MARGIN_FRAMES,
                Some(_) => {}
            }
            let window_frames = N_FRAMES.min(content_frames - seek);
            let time_offset = seek as f64 * seconds_per_frame;
            let input = Tensor::from_vec(
                mel.window(seek, window_frames),
                (1, mel.n_mels, N_FRAMES),
                &Device::Cpu,
            )?;
            let features = encoder.forward(&input, true)?;
            let mut state = self.decoder.start(&features)?;
            let prompt = &all_tokens[prompt_reset_since..];
            let decoded =
                self.decode_with_fallback(&mut state, prompt, &temperatures, &cancelled, &mut rng)?;

            let silent = decoded.no_speech_prob > NO_SPEECH_THRESHOLD
                && decoded.avg_logprob <= LOGPROB_THRESHOLD;
            if silent {
                seek += window_frames;
                continue;
            }
            if decoded.looped {
                tracing::debug!(seek, "cut a repetition loop at every temperature");
            }

            let split = decoding::split_segments(
                &decoded.tokens,
                self.tokens.timestamp_begin,
                window_frames,
                frames_per_step,
            );
            for piece in &split.pieces {
                let tokens = &decoded.tokens[piece.range.clone()];
                let text = self.decode_text(tokens)?;
                let start = time_offset + f64::from(piece.start) * seconds_per_step;
                let end = (time_offset + f64::from(piece.end) * seconds_per_step).min(duration);
                if text.trim().is_empty() || end <= start {
                    continue;
                }
                let (start, end) = trim_silence(start, end, &above_noise, seconds_per_frame);
                all_tokens.extend_from_slice(tokens);
                segments.push(Segment {
                    id: segments.len(),
                    seek,
                    start,
                    end,
                    text,
                    tokens: tokens.to_vec(),
                    temperature: decoded.temperature,
                    avg_logprob: decoded.avg_logprob,
                    compression_ratio: decoded.compression_ratio,
                    no_speech_prob: f64::from(decoded.no_speech_prob),
                });
            }
            if decoded.temperature > PROMPT_RESET_TEMPERATURE {
                prompt_reset_since = all_tokens.len();
            }
            // The rules make every segment non-empty, so this always moves forward; the
            // fallback keeps a malformed decode from stalling the loop.
            seek += if split.advance_frames > 0 {
                split.advance_frames
            } else {
                window_frames
            };
        }
        let text = segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<String>()
            .trim()
            .to_string();
        Ok(Transcript {
            text,
            language: "en".into(),
            duration,
            segments,
        })
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>, Error> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    fn decode_text(&self, tokens: &[u32]) -> Result<String, Error> {
        let text: Vec<u32> = tokens
            .iter()
            .copied()
            .filter(|&t| t < self.tokens.eot)
            .collect();
        self.tokenizer
            .decode(&text, true)
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// Decodes a window at rising temperatures until the result passes the quality checks;
    /// if none does, returns the most probable attempt, preferring those that neither repeat
    /// nor loop.
    fn decode_with_fallback(
        &self,
        state: &mut DecoderState,
        prompt: &[u32],
        temperatures: &[f32],
        cancelled: &dyn Fn() -> bool,
        rng: &mut StdRng,
    ) -> Result<Decoded, Error> {
        let mut attempts: Vec<Decoded> = Vec::new();
        for &temperature in temperatures {
            let decoded = self.decode(state, prompt, temperature, cancelled, rng)?;
            let improbable = decoded.avg_logprob < LOGPROB_THRESHOLD;
            let silence = decoded.no_speech_prob > NO_SPEECH_THRESHOLD && improbable;
            if silence || !(decoded.is_repetitive() || improbable) {
                return Ok(decoded);
            }
            attempts.push(decoded);
        }
        let best = |candidates: Vec<Decoded>| {
            candidates
                .into_iter()
                .max_by(|a, b| a.avg_logprob.total_cmp(&b.avg_logprob))
        };
        let (repetitive, fluent): (Vec<_>, Vec<_>) =
            attempts.into_iter().partition(Decoded::is_repetitive);
        best(fluent)
            .or_else(|| best(repetitive))
            .ok_or_else(|| Error::InvalidOption("no temperature to decode at".into()))
    }

    /// One decode of a window: prompt, `<|startoftranscript|>`, then sampled tokens until
    /// end of text or the length limit.
    fn decode(
        &self,
        state: &mut DecoderState,
        prompt: &[u32],
        temperature: f32,
        cancelled: &dyn Fn() -> bool,
        rng: &mut StdRng,
    ) -> Result<Decoded, Error> {
        let n_ctx = self.decoder.n_ctx();
        let max_prompt = n_ctx / 2 - 1;
        let sample_len = n_ctx / 2;
        state.reset();
        let mut prefix = Vec::with_capacity(max_prompt + 2);
        if !prompt.is_empty() {
            prefix.push(self.tokens.sot_prev);
            prefix.extend_from_slice(&prompt[prompt.len().saturating_sub(max_prompt)..]);
        }
        let sot_index = prefix.len();
        prefix.push(self.tokens.sot);
        let last = prefix.len() - 1;
        let want: &[usize] = if sot_index == last {
            &[last]
        } else {
            &[sot_index, last]
        };
        let logits = self.decoder.forward(&prefix, state, want)?;
        let no_speech_prob = decoding::probability(&logits[0], self.tokens.no_speech);
        let mut next = logits[logits.len() - 1].clone();

        let mut tokens: Vec<u32> = Vec::new();
        // Text tokens (timestamps left out) and where each sits in `tokens`, for the loop guard.
        let mut text: Vec<u32> = Vec::new();
        let mut text_positions: Vec<usize> = Vec::new();
        let mut looped = false;
        let mut sum_logprob = 0f64;
        loop {
            if cancelled() {
                return Err(Error::Cancelled);
            }
            self.rules.apply(&mut next, &tokens);
            let token = if temperature > 0.0 {
                decoding::sample(&next, temperature, rng)
            } else {
                decoding::argmax(&next)
            };
            let logprobs = decoding::log_softmax(&next);
            sum_logprob += f64::from(logprobs[token as usize]);
            if token == self.tokens.eot {
                break;
            }
            tokens.push(token);
            if token < self.tokens.timestamp_begin {
                text.push(token);
                text_positions.push(tokens.len() - 1);
                if let Some(keep) = decoding::repetition_loop(&text) {
                    tokens.truncate(text_positions[keep - 1] + 1);
                    looped = true;
                    break;
                }
            }
            if tokens.len() >= sample_len || state.len() >= n_ctx {
                break;
            }
            next = self.decoder.forward(&[token], state, &[0])?.swap_remove(0);
        }
        let text = self.decode_text(&tokens)?;
        Ok(Decoded {
            avg_logprob: sum_logprob / (tokens.len() + 1) as f64,
            compression_ratio: decoding::compression_ratio(&text),
            tokens,
            no_speech_prob,
            temperature,
            looped,
        })
    }
}

/// Narrows `start..end` (seconds) to its first and last audible frames: Whisper's timestamps
/// are coarse (20 ms steps, and tiny.en often overshoots into a following pause), while
/// silence is unambiguous. A span with no audible frame is left as the model dated it.
fn trim_silence(start: f64, end: f64, audible: &[bool], seconds_per_frame: f64) -> (f64, f64) {
    let first = (start / seconds_per_frame).floor() as usize;
    let last = ((end / seconds_per_frame).ceil() as usize).min(audible.len());
    let span = audible.get(first..last).unwrap_or(&[]);
    match (span.iter().position(|&a| a), span.iter().rposition(|&a| a)) {
        (Some(a), Some(b)) => (
            start.max((first + a) as f64 * seconds_per_frame),
            end.min((first + b + 1) as f64 * seconds_per_frame),
        ),
        _ => (start, end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_edges_move_to_the_sound() {
        // Frames of 10 ms: sound in frames 100..300 (1 s to 3 s).
        let audible: Vec<bool> = (0..500).map(|t| (100..300).contains(&t)).collect();
        assert_eq!(trim_silence(0.0, 4.5, &audible, 0.01), (1.0, 3.0));
        assert_eq!(trim_silence(1.5, 2.5, &audible, 0.01), (1.5, 2.5));
        // Only silence: the model's dates stand.
        assert_eq!(trim_silence(3.5, 4.0, &audible, 0.01), (3.5, 4.0));
        assert_eq!(trim_silence(4.0, 9.0, &audible, 0.01), (4.0, 9.0));
    }

    #[test]
    fn transcriber_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Transcriber>();
    }
}
