//! Text to speech with the hibari voice, in pure Rust: a port of the `hibari-tts` 0.2.1 Python
//! package (text -> 24 kHz mono speech, American English, voice "heart").
//!
//! Pipeline per request: split the text into sentences -> G2P (`g2p`: normalisation, spaCy-rule
//! tokenizer, perceptron POS tagger, misaki lexicon, an OOV network for unknown words) -> phoneme ids
//! -> acoustic network (tract, one run per sentence) -> pulse/noise source and inverse STFT (`dsp`).
//! Each sentence's audio is handed to the caller as soon as it is ready, so an HTTP layer can
//! stream it.
//!
//! The phonemes are the Python's, character for character. The audio matches the Python's up to the
//! model's own numeric sensitivity (see `reference_audio.rs`); the noise component is seeded per
//! chunk, so a request always gives the same samples.
//!
//! Bounds the Python does not have, which only change pathological input: whitespace-free runs over
//! 64 characters get a space every 64, sentences over 1,000 characters are cut at a clause mark or
//! space, and a clause whose phonemes exceed the 400 the model is fed at once is cut at spaces.
//!
//! Model directory (`<models_dir>/hibari/`): the downloaded files plus `acoustic.onnx`, which
//! [`convert`] writes from `hibari.onnx`. [`Voice::load`] needs `acoustic.onnx`, `oov.onnx`,
//! `oov.json`, `lexicon_us_gold.json.gz`, `lexicon_us_silver.json.gz`, `tagger.json.gz`,
//! `tokenizer_exceptions.json`, `normalize.json` and `vocab.json` (not `hibari.onnx` nor
//! `voices.json`).

mod acoustic;
mod assets;
mod convert;
mod dsp;
mod error;
mod g2p;
#[cfg(test)]
mod reference_audio;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use convert::convert;
pub use error::Error;

use crate::g2p::G2p;

/// Output sample rate (Hz).
pub const SAMPLE_RATE: u32 = 24_000;

/// Sentences whose phoneme string is longer than this are split at clause punctuation (tts.py).
const MAX_PHONEMES: usize = 400;

/// Sentences longer than this (characters) are cut at a clause boundary or space before G2P, to
/// bound the front end's work on pathological input; real sentences are far shorter.
pub(crate) const MAX_SENTENCE_CHARS: usize = 1_000;

/// The voice ids this model answers to.
const VOICES: [&str; 1] = ["heart"];

/// Options of one synthesis.
#[derive(Debug, Clone)]
pub struct SpeechOptions {
    /// 0.25..=4.0; 1.0 is the voice's natural pace.
    pub speed: f32,
    /// Set to `true` from another thread to stop between sentences ([`Error::Cancelled`]).
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for SpeechOptions {
    fn default() -> Self {
        SpeechOptions {
            speed: 1.0,
            cancel: None,
        }
    }
}

/// What one synthesis produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SynthesisStats {
    /// Samples delivered to the callback.
    pub samples: usize,
    /// Chunks (sentences or clauses) delivered.
    pub chunks: usize,
    /// Characters of the input text.
    pub characters: usize,
}

/// Wall time per stage of the last [`Voice::synthesize_timed`] call.
#[derive(Debug, Clone, Default)]
pub struct StageTimes {
    pub front_end: Duration,
    pub acoustic: Duration,
    pub vocoder: Duration,
}

/// The loaded voice: G2P tables, the OOV and acoustic networks, FFT plans. `Send + Sync`; share
/// one across threads.
pub struct Voice {
    g2p: G2p,
    acoustic: acoustic::Acoustic,
    dsp: dsp::Dsp,
    vocab: HashMap<char, i64>,
    titles: Vec<String>,
}

impl Voice {
    /// Loads the voice from a model directory prepared by [`convert`].
    pub fn load(dir: &Path) -> Result<Voice, Error> {
        let vocab_json: HashMap<String, i64> = assets::read_json(dir, "vocab.json")?;
        let mut vocab = HashMap::new();
        for (k, v) in vocab_json {
            let mut chars = k.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => {
                    vocab.insert(c, v);
                }
                _ => {
                    return Err(Error::invalid_model(
                        "vocab.json",
                        format!("key {k:?} is not one character"),
                    ));
                }
            }
        }
        let acoustic = acoustic::Acoustic::load(dir)?;
        let g2p = G2p::load(dir)?;
        let titles = g2p.titles().map(str::to_string).collect();
        Ok(Voice {
            g2p,
            acoustic,
            dsp: dsp::Dsp::new(),
            vocab,
            titles,
        })
    }

    /// The voice ids callers may pass.
    pub fn voices(&self) -> &[&str] {
        &VOICES
    }

    /// The phoneme strings the model will be given, one per chunk (sentence, or clause of a long
    /// sentence).
    pub fn phonemize(&self, text: &str) -> Result<Vec<String>, Error> {
        let mut chunks = Vec::new();
        for sentence in split_sentences(text, &self.titles) {
            let ps = self.g2p.phonemize(sentence)?;
            if ps.is_empty() {
                continue;
            }
            split_phonemes(&ps, &mut chunks);
        }
        Ok(chunks)
    }

    /// Phoneme string -> model input ids (unknown characters dropped, 0 at both ends).
    fn ids(&self, phonemes: &str) -> Vec<i64> {
        let mut ids = vec![0];
        ids.extend(phonemes.chars().filter_map(|c| self.vocab.get(&c).copied()));
        ids.push(0);
        ids
    }

    /// Synthesizes `text`, calling `on_chunk` with each chunk's samples (mono f32 at
    /// [`SAMPLE_RATE`], nominally in -1..1) as soon as it is ready. `on_chunk` returning `false`
    /// stops early (the listener is gone) and the stats so far are returned. The noise component
    /// is seeded, so the same text and speed always give the same audio.
    pub fn synthesize(
        &self,
        text: &str,
        opts: &SpeechOptions,
        on_chunk: &mut dyn FnMut(&[f32]) -> bool,
    ) -> Result<SynthesisStats, Error> {
        self.synthesize_timed(text, opts, on_chunk, &mut StageTimes::default())
    }

    /// [`Voice::synthesize`], also adding each stage's wall time to `times`.
    pub fn synthesize_timed(
        &self,
        text: &str,
        opts: &SpeechOptions,
        on_chunk: &mut dyn FnMut(&[f32]) -> bool,
        times: &mut StageTimes,
    ) -> Result<SynthesisStats, Error> {
        if text.trim().is_empty() {
            return Err(Error::EmptyInput);
        }
        let speed = opts.speed;
        if !(0.25..=4.0).contains(&speed) {
            return Err(Error::InvalidSpeed(speed));
        }
        let cancelled = || {
            opts.cancel
                .as_ref()
                .is_some_and(|c| c.load(Ordering::Relaxed))
        };
        let mut stats = SynthesisStats {
            characters: text.chars().count(),
            ..Default::default()
        };
        let mut spoke = false;
        for sentence in split_sentences(text, &self.titles) {
            if cancelled() {
                return Err(Error::Cancelled);
            }
            let t0 = Instant::now();
            let ps = self.g2p.phonemize(sentence)?;
            let mut chunks = Vec::new();
            if !ps.is_empty() {
                split_phonemes(&ps, &mut chunks);
            }
            times.front_end += t0.elapsed();
            for chunk in chunks {
                let ids = self.ids(&chunk);
                if ids.len() < 3 {
                    continue;
                }
                if cancelled() {
                    return Err(Error::Cancelled);
                }
                let t1 = Instant::now();
                let out = self.acoustic.run(&ids, speed)?;
                let t2 = Instant::now();
                times.acoustic += t2 - t1;
                let [lh, theta, ln, lr, phi] = &out.planes;
                let frames = dsp::Frames {
                    lh,
                    theta,
                    ln,
                    lr,
                    phi,
                    f0: &out.f0,
                };
                let seed = stats.chunks as u64;
                let audio = self.dsp.synth(&frames, dsp::Noise::Seeded(seed));
                times.vocoder += t2.elapsed();
                spoke = true;
                if audio.is_empty() {
                    continue;
                }
                stats.samples += audio.len();
                stats.chunks += 1;
                if !on_chunk(&audio) {
                    return Ok(stats);
                }
            }
        }
        if !spoke {
            return Err(Error::Unpronounceable);
        }
        Ok(stats)
    }
}

/// Splits a sentence's phonemes at clause punctuation into chunks of at most [`MAX_PHONEMES`]
/// characters (tts.py); a clause still longer than that is cut at spaces (and a space-free run at
/// the limit), which the Python does not do, so that no input can reach the network at a length
/// it was not trained for.
fn split_phonemes(ps: &str, chunks: &mut Vec<String>) {
    let len = |s: &str| s.chars().count();
    if len(ps) <= MAX_PHONEMES {
        chunks.push(ps.to_string());
        return;
    }
    let mut cur = String::new();
    for part in clause_parts(ps) {
        if !cur.is_empty() && len(&cur) + len(part) + 1 > MAX_PHONEMES {
            chunks.push(std::mem::take(&mut cur));
            cur = part.to_string();
        } else if cur.is_empty() {
            cur = part.to_string();
        } else {
            cur.push(' ');
            cur.push_str(part);
        }
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    let mut bounded = Vec::with_capacity(chunks.len());
    for chunk in chunks.drain(..) {
        if len(&chunk) <= MAX_PHONEMES {
            bounded.push(chunk);
        } else {
            cut_at_spaces(&chunk, &mut bounded);
        }
    }
    *chunks = bounded;
}

/// `re.split(r"(?<=[,;:—])\s+", ps)`.
fn clause_parts(ps: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut prev: Option<char> = None;
    let mut iter = ps.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        if c.is_whitespace() && prev.is_some_and(|p| ",;:—".contains(p)) {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = iter.peek() {
                if !d.is_whitespace() {
                    break;
                }
                end = j + d.len_utf8();
                iter.next();
            }
            parts.push(&ps[start..i]);
            start = end;
            prev = None;
            continue;
        }
        prev = Some(c);
    }
    parts.push(&ps[start..]);
    parts
}

fn cut_at_spaces(chunk: &str, out: &mut Vec<String>) {
    let mut cur = String::new();
    let mut cur_len = 0;
    for word in chunk.split(' ').filter(|w| !w.is_empty()) {
        let chars: Vec<char> = word.chars().collect();
        for piece in chars.chunks(MAX_PHONEMES) {
            if cur_len > 0 && cur_len + 1 + piece.len() > MAX_PHONEMES {
                out.push(std::mem::take(&mut cur));
                cur_len = 0;
            }
            if cur_len > 0 {
                cur.push(' ');
                cur_len += 1;
            }
            cur.extend(piece);
            cur_len += piece.len();
        }
    }
    if cur_len > 0 {
        out.push(cur);
    }
}

/// Sentences of a text (tts.py `split_sentences`): paragraphs and lines, then sentence-ending
/// punctuation followed by whitespace, except after a title or an initial ("Dr. Smith",
/// "J. K. Rowling") or before a lowercase word.
fn split_sentences<'t>(text: &'t str, titles: &[String]) -> Vec<&'t str> {
    let mut out = Vec::new();
    // re.split(r"\n\s*\n|\n", text.strip()): every line break separates; blank lines vanish below
    for para in text.trim().split('\n') {
        let para = para.trim();
        let mut cut = 0;
        for (start, end) in sentence_ends(para) {
            let Some(next) = para[end..].chars().next() else {
                continue;
            };
            if ends_sentence(para, start, next, titles) {
                out.push(&para[cut..start]);
                cut = end;
            }
        }
        out.push(&para[cut..]);
    }
    out.retain(|s| !s.trim().is_empty());
    let mut bounded = Vec::with_capacity(out.len());
    for s in out {
        bound_sentence(s, &mut bounded);
    }
    bounded
}

/// Cuts a sentence longer than [`MAX_SENTENCE_CHARS`] into pieces: after the last clause mark
/// (`,;:—`) or else the last space within the limit, or at the limit when there is neither.
fn bound_sentence<'t>(mut s: &'t str, out: &mut Vec<&'t str>) {
    while s.chars().count() > MAX_SENTENCE_CHARS {
        let limit = s
            .char_indices()
            .nth(MAX_SENTENCE_CHARS)
            .map_or(s.len(), |(i, _)| i);
        let window = &s[..limit];
        let clause = window
            .char_indices()
            .filter(|&(i, c)| ",;:—".contains(c) && window[i + c.len_utf8()..].starts_with(' '))
            .map(|(i, c)| i + c.len_utf8())
            .next_back();
        let cut = clause
            .or_else(|| window.rfind(' '))
            .filter(|&i| i > 0)
            .unwrap_or(limit);
        out.push(&s[..cut]);
        s = s[cut..].trim_start();
    }
    if !s.trim().is_empty() {
        out.push(s);
    }
}

/// Matches of `(?<=[.!?…])["”’)\]]*\s+(?=\S)` as (start, end) byte offsets.
fn sentence_ends(para: &str) -> Vec<(usize, usize)> {
    let chars: Vec<(usize, char)> = para.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 1;
    while i < chars.len() {
        if !".!?…".contains(chars[i - 1].1) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < chars.len() && "\"”’)]".contains(chars[j].1) {
            j += 1;
        }
        let ws_start = j;
        while j < chars.len() && chars[j].1.is_whitespace() {
            j += 1;
        }
        if j > ws_start && j < chars.len() {
            out.push((chars[i].0, chars[j].0));
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

fn ends_sentence(para: &str, end: usize, next: char, titles: &[String]) -> bool {
    if next.is_lowercase() {
        return false;
    }
    if !para[..end].ends_with('.') {
        return true;
    }
    let word_start = para[..end].rfind(' ').map_or(0, |i| i + 1);
    let word = para[word_start..end - 1].trim_start_matches(['(', '"', '“', '\'', '‘']);
    let initial = {
        let mut c = word.chars();
        matches!((c.next(), c.next()), (Some(c), None) if c.is_uppercase())
    };
    !(titles.iter().any(|t| t == word) || initial)
}

/// A 44-byte WAV header for 16-bit mono PCM. `data_bytes: None` writes 0xFFFFFFFF sizes, for a
/// stream whose length is not known yet (as OpenAI's streaming WAV does).
pub fn wav_header(sample_rate: u32, data_bytes: Option<u32>) -> [u8; 44] {
    let (riff, data) = match data_bytes {
        Some(n) => (n.saturating_add(36), n),
        None => (u32::MAX, u32::MAX),
    };
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&riff.to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&1u16.to_le_bytes()); // mono
    h[24..28].copy_from_slice(&sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&sample_rate.saturating_mul(2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes()); // block align
    h[34..36].copy_from_slice(&16u16.to_le_bytes()); // bits per sample
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
}

/// Samples as 16-bit little-endian PCM (clipped to -1..1, scaled by 32767 and truncated, as
/// hibari's `write_wav` does).
pub fn to_pcm16le(samples: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(samples.len() * 2);
    for &s in samples {
        let v = if s.is_nan() {
            0.0
        } else {
            s.clamp(-1.0, 1.0) * 32767.0
        };
        out.extend_from_slice(&(v as i16).to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentence_splitting() {
        let titles = vec!["Dr".to_string(), "Mr".to_string()];
        let s = split_sentences(
            "Hello there. Dr. Smith is in. J. K. Rowling wrote it! ok? yes.\n\nNew para",
            &titles,
        );
        assert_eq!(
            s,
            vec![
                "Hello there.",
                "Dr. Smith is in.",
                "J. K. Rowling wrote it! ok? yes.",
                "New para"
            ]
        );
        // closing quotes after the stop fall between sentences, as in the Python
        let s = split_sentences("He said \"Stop.\" Then left.", &titles);
        assert_eq!(s, vec!["He said \"Stop.", "Then left."]);
    }

    #[test]
    fn long_sentences_are_bounded() {
        let long = "word, ".repeat(400);
        let s = split_sentences(&long, &[]);
        assert!(s.len() > 1 && s.iter().all(|p| p.chars().count() <= MAX_SENTENCE_CHARS));
        assert!(s.iter().all(|p| p.ends_with(',') || p.ends_with("word")));
        let xs = "x".repeat(2500);
        let s = split_sentences(&xs, &[]);
        assert_eq!(
            s.iter().map(|p| p.len()).collect::<Vec<_>>(),
            vec![1000, 1000, 500]
        );
    }

    #[test]
    fn clause_split() {
        assert_eq!(clause_parts("a, b;  c d: e"), vec!["a,", "b;", "c d:", "e"]);
        let long: String = (0..120).map(|i| format!("wˈʌn{i}, ")).collect();
        let mut chunks = Vec::new();
        split_phonemes(long.trim(), &mut chunks);
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|c| c.chars().count() <= MAX_PHONEMES));
        let mut chunks = Vec::new();
        split_phonemes(&"ab".repeat(1000), &mut chunks);
        assert_eq!(chunks.len(), 5);
        assert!(chunks.iter().all(|c| c.chars().count() <= MAX_PHONEMES));
    }

    #[test]
    fn wav_and_pcm() {
        let h = wav_header(24_000, Some(100));
        assert_eq!(&h[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(h[4..8].try_into().unwrap()), 136);
        assert_eq!(u32::from_le_bytes(h[24..28].try_into().unwrap()), 24_000);
        assert_eq!(u32::from_le_bytes(h[40..44].try_into().unwrap()), 100);
        let h = wav_header(24_000, None);
        assert_eq!(&h[4..8], &[0xff; 4]);
        assert_eq!(&h[40..44], &[0xff; 4]);
        assert_eq!(
            to_pcm16le(&[0.0, 1.0, -2.0, 0.5]),
            vec![0, 0, 0xff, 0x7f, 0x01, 0x80, 0xff, 0x3f]
        );
    }

    #[test]
    fn voice_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Voice>();
    }
}
