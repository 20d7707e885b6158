//! Synthesizes text to a WAV file and prints the real-time factor and per-stage times.
//!
//! ```text
//! cargo run --release -p marquee-tts --example speak -- [--models DIR] [--speed S] [--out FILE] [TEXT]
//! ```
//! DIR is the models directory holding `hibari/` (default `$MARQUEE_MODELS_DIR`, else
//! `~/.local/share/marquee/models`); TEXT defaults to a paragraph. `convert` is run first if needed.

use std::path::PathBuf;
use std::time::Instant;

use marquee_tts::{SAMPLE_RATE, SpeechOptions, StageTimes, Voice};

const DEFAULT_TEXT: &str = "The quick brown fox jumps over the lazy dog. She sells sea shells by the \
    sea shore. On the 3rd of March 2024, 1,250 people paid $9.99 each to hear it read at 7:30 pm. \
    Dr. Smith, who lives on Baker St. in London, said the results were encouraging, although \
    further work will be needed before the system is ready for everyday use.";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut models = std::env::var_os("MARQUEE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".local/share"))
                .join("marquee/models")
        });
    let (mut speed, mut out, mut text) = (1.0f32, PathBuf::from("speech.wav"), None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--models" => models = PathBuf::from(args.next().ok_or("--models needs a value")?),
            "--speed" => speed = args.next().ok_or("--speed needs a value")?.parse()?,
            "--out" => out = PathBuf::from(args.next().ok_or("--out needs a value")?),
            _ => text = Some(a),
        }
    }
    let text = text.unwrap_or_else(|| DEFAULT_TEXT.to_string());
    let dir = models.join("hibari");

    let t = Instant::now();
    let converted = marquee_tts::convert(&dir)?;
    let voice = Voice::load(&dir)?;
    println!("convert {converted:?} + load: {:.2?}", t.elapsed());

    // warm-up, as a server would have done
    voice.synthesize("Warm up.", &SpeechOptions::default(), &mut |_| true)?;

    let opts = SpeechOptions {
        speed,
        cancel: None,
    };
    let mut samples = Vec::new();
    let mut first_chunk = None;
    let mut times = StageTimes::default();
    let t = Instant::now();
    let stats = voice.synthesize_timed(
        &text,
        &opts,
        &mut |chunk| {
            first_chunk.get_or_insert_with(|| t.elapsed());
            samples.extend_from_slice(chunk);
            true
        },
        &mut times,
    )?;
    let wall = t.elapsed().as_secs_f64();
    let audio = stats.samples as f64 / SAMPLE_RATE as f64;

    let pcm = marquee_tts::to_pcm16le(&samples);
    let mut wav = marquee_tts::wav_header(SAMPLE_RATE, Some(pcm.len() as u32)).to_vec();
    wav.extend_from_slice(&pcm);
    std::fs::write(&out, wav)?;

    println!(
        "{} characters, {} chunks, {audio:.2} s of audio in {wall:.3} s: RTF {:.3} (first chunk after {:.3?})",
        stats.characters,
        stats.chunks,
        wall / audio,
        first_chunk.unwrap_or_default()
    );
    println!(
        "front end {:.3?}, acoustic model {:.3?}, iSTFT {:.3?}; wrote {}",
        times.front_end,
        times.acoustic,
        times.vocoder,
        out.display()
    );
    Ok(())
}
