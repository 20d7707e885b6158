//! Transcribes a WAV file and prints the text, the segments and the real-time factor.
//!
//! ```text
//! cargo run --release -p marquee-transcribe --example transcribe -- FILE.wav [MODEL_DIR]
//! ```
//!
//! MODEL_DIR defaults to `$MARQUEE_MODELS_DIR/whisper-tiny-en`, else
//! `${XDG_DATA_HOME:-$HOME/.local/share}/marquee/models/whisper-tiny-en`. When the raw
//! CTranslate2 binary is there and the converted weights are not, it is converted first.

use std::path::PathBuf;
use std::time::Instant;

use marquee_transcribe::audio::{AudioLimits, decode_wav, resample};
use marquee_transcribe::{SAMPLE_RATE, TranscribeOptions, Transcriber, WEIGHTS_FILE, convert};

fn default_model_dir() -> PathBuf {
    let root = std::env::var_os("MARQUEE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let data = std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share")
                });
            data.join("marquee/models")
        });
    root.join("whisper-tiny-en")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let wav = args
        .next()
        .ok_or("usage: transcribe FILE.wav [MODEL_DIR]")?;
    let dir = args.next().map_or_else(default_model_dir, PathBuf::from);

    if !dir.join(WEIGHTS_FILE).exists() {
        let started = Instant::now();
        let written = convert(&dir)?;
        println!(
            "converted {written:?} in {:.2} s",
            started.elapsed().as_secs_f64()
        );
    }
    let started = Instant::now();
    let transcriber = Transcriber::load(&dir)?;
    println!("loaded in {:.2} s", started.elapsed().as_secs_f64());

    let bytes = std::fs::read(&wav)?;
    let limits = AudioLimits {
        max_bytes: usize::MAX,
        max_seconds: f64::INFINITY,
    };
    let started = Instant::now();
    let pcm = decode_wav(&bytes, &limits)?;
    let samples = resample(&pcm.samples, pcm.sample_rate, SAMPLE_RATE)?;
    let decode_seconds = started.elapsed().as_secs_f64();
    let audio_seconds = samples.len() as f64 / f64::from(SAMPLE_RATE);

    let started = Instant::now();
    let transcript = transcriber.transcribe(&samples, &TranscribeOptions::default())?;
    let wall = started.elapsed().as_secs_f64();

    println!("text: {}", transcript.text);
    for s in &transcript.segments {
        println!(
            "[{:7.2} -> {:7.2}] (T={:.1} logprob={:.2} no_speech={:.2} cr={:.2}){}",
            s.start,
            s.end,
            s.temperature,
            s.avg_logprob,
            s.no_speech_prob,
            s.compression_ratio,
            s.text
        );
    }
    println!(
        "audio {audio_seconds:.2} s ({} Hz, decode+resample {decode_seconds:.3} s), transcription {wall:.2} s, RTF {:.3}",
        pcm.sample_rate,
        wall / audio_seconds
    );
    Ok(())
}
