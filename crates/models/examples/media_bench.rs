//! Speech, transcription and vision on the real weights: real-time factors, the word error rate
//! of speech synthesis heard back by Whisper, and image latency. `bench/media.sh` runs it
//! (release build); figures go to BENCHMARKS.md.
//!
//! ```sh
//! cargo run --release -p marquee-models --example media_bench -- [MODELS_DIR] [SAMPLES_DIR]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use marquee_transcribe::audio::{AudioLimits, decode_to_16k, resample};
use marquee_transcribe::{TranscribeOptions, Transcriber};
use marquee_tts::{SAMPLE_RATE, SpeechOptions, Voice};
use marquee_vision::{ImageClassifier, ImageLimits};

/// Twenty sentences of the kind a streaming catalogue reads out: numbers, money, dates, times,
/// names, abbreviations, questions, lists.
const SENTENCES: [&str; 20] = [
    "Welcome back! Your next episode starts in ten seconds.",
    "The film runs for two hours and fourteen minutes.",
    "Season three arrives on Friday, March 14th.",
    "Tickets cost $12.50 for adults and $8 for children.",
    "Doctor Watson met Sherlock Holmes at 221B Baker Street.",
    "Is this the show you were looking for?",
    "It won three awards, including best director and best score.",
    "The documentary follows Maria, a chef from Lisbon, for one year.",
    "Please turn off your phone before the movie begins.",
    "At 7:30 PM, the doors open; the concert starts at eight.",
    "Nearly 45% of viewers finished the series in one weekend.",
    "Captain Reyes and her crew land on a frozen moon.",
    "The soundtrack, recorded in London, features a full orchestra.",
    "New episodes drop every Tuesday at midnight.",
    "In 1999, a young hacker discovers the truth about his world.",
    "Mr. Smith goes to Washington to fight for his town.",
    "This title contains strong language, violence and smoking.",
    "Your subscription renews on the 1st of June for $9.99.",
    "Two detectives, one city, and a case nobody can solve.",
    "Thank you for watching; see you next time!",
];

fn main() {
    let mut args = std::env::args().skip(1);
    let models = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(marquee_models::pull::default_models_dir);
    let samples = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/samples"));
    let t = Instant::now();
    let voice = Voice::load(&models.join("hibari")).expect("hibari (run `marquee models pull`)");
    let voice_load = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let whisper = Transcriber::load(&models.join("whisper-tiny-en")).expect("whisper-tiny-en");
    let whisper_load = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let classifier =
        ImageClassifier::load(&models.join("efficientnet-lite0")).expect("efficientnet-lite0");
    let vision_load = t.elapsed().as_secs_f64();
    println!(
        "load: voice {voice_load:.2} s, whisper {whisper_load:.2} s, vision {vision_load:.2} s"
    );

    // Speech: synthesise each sentence, then hear it back.
    let options = SpeechOptions {
        speed: 1.0,
        cancel: None,
    };
    let (mut synth_secs, mut audio_secs) = (0.0, 0.0);
    let (mut errors, mut ref_words) = (0usize, 0usize);
    let (mut heard_secs, mut heard_audio) = (0.0, 0.0);
    for sentence in SENTENCES {
        let mut audio = Vec::new();
        let t = Instant::now();
        voice
            .synthesize(sentence, &options, &mut |chunk| {
                audio.extend_from_slice(chunk);
                true
            })
            .expect("synthesis");
        synth_secs += t.elapsed().as_secs_f64();
        let secs = audio.len() as f64 / SAMPLE_RATE as f64;
        audio_secs += secs;
        let pcm16k = resample(&audio, SAMPLE_RATE, 16_000).expect("resample");
        let t = Instant::now();
        let transcript = whisper
            .transcribe(&pcm16k, &TranscribeOptions::default())
            .expect("transcription");
        heard_secs += t.elapsed().as_secs_f64();
        heard_audio += secs;
        let reference = normalise(sentence);
        let hypothesis = normalise(&transcript.text);
        let e = edit_distance(&reference, &hypothesis);
        errors += e;
        ref_words += reference.len();
        println!(
            "  {e} errors / {:>2} words | {sentence} | {}",
            reference.len(),
            transcript.text.trim()
        );
    }
    println!(
        "speech: {:.1} s of audio in {:.2} s: real-time factor {:.3} ({:.0}x real time)",
        audio_secs,
        synth_secs,
        synth_secs / audio_secs,
        audio_secs / synth_secs
    );
    println!(
        "speech heard back by whisper: WER {:.1}% ({errors} word errors / {ref_words} words)",
        100.0 * errors as f64 / ref_words as f64
    );
    println!(
        "transcription of the synthesised speech: real-time factor {:.3}",
        heard_secs / heard_audio
    );

    // Transcription of the shared samples.
    for (file, expected) in [
        (
            "speech_hibari_16k.wav",
            "In a world where dragons rule the sky, one young pilot must learn to fly. Coming this summer to a theater near you.",
        ),
        (
            "speech_flite_slt_16k.wav",
            "The popcorn is ready and the movie starts at eight o'clock.",
        ),
    ] {
        let bytes = std::fs::read(samples.join(file)).expect("sample");
        let pcm = decode_to_16k(&bytes, &AudioLimits::default()).expect("wav");
        let secs = pcm.len() as f64 / 16_000.0;
        let mut best = f64::MAX;
        let mut text = String::new();
        for _ in 0..3 {
            let t = Instant::now();
            text = whisper
                .transcribe(&pcm, &TranscribeOptions::default())
                .expect("transcription")
                .text;
            best = best.min(t.elapsed().as_secs_f64());
        }
        let e = edit_distance(&normalise(expected), &normalise(&text));
        println!(
            "transcription {file}: {secs:.1} s audio, best of 3 {best:.2} s, real-time factor {:.3}, {e} word errors: {}",
            best / secs,
            text.trim()
        );
    }

    // Vision: per image, decode + resize + network, median and minimum of 20.
    for file in ["chelsea.png", "coffee.png", "rocket.jpg"] {
        let bytes = std::fs::read(samples.join(file)).expect("sample");
        let mut times = Vec::new();
        let mut top = String::new();
        for _ in 0..20 {
            let t = Instant::now();
            let c = classifier
                .classify(&bytes, 5, &ImageLimits::default())
                .expect("classify");
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            top = format!("{} {:.3}", c.labels[0].label, c.labels[0].score);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "vision {file}: median {:.1} ms, min {:.1} ms per image (decode + resize + network): {top}",
            times[times.len() / 2],
            times[0]
        );
    }
}

/// Words for scoring: lower case, numbers spelled out the way they are spoken, punctuation gone,
/// so that "$12.50" and "twelve dollars fifty" or "8" and "eight" are the same words.
fn normalise(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let cleaned: String = text
        .to_lowercase()
        .replace('%', " percent ")
        .replace('-', " ")
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' || c == '.' || c == '$' || c == ':' {
                c
            } else {
                ' '
            }
        })
        .collect();
    for raw in cleaned.split_whitespace() {
        let word = raw.trim_matches(|c| c == '.' || c == '\'' || c == ':');
        if word.is_empty() {
            continue;
        }
        if let Some(n) = word.strip_prefix('$') {
            let (dollars, cents) = n.split_once('.').unwrap_or((n, ""));
            out.extend(number_words(dollars));
            out.push("dollars".into());
            if !cents.is_empty() && cents != "00" {
                out.extend(number_words(cents));
                out.push("cents".into());
            }
            continue;
        }
        if let Some((h, m)) = word.split_once(':') {
            out.extend(number_words(h));
            if m != "00" {
                out.extend(number_words(m));
            }
            continue;
        }
        let digits = word.trim_end_matches(|c: char| c.is_alphabetic());
        if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
            out.extend(number_words(digits));
            continue;
        }
        match word {
            "mr" => out.push("mister".into()),
            "dr" => out.push("doctor".into()),
            "pm" => out.extend(["p".to_string(), "m".to_string()]),
            "o'clock" => out.push("o'clock".into()),
            w => out.push(w.replace('.', "")),
        }
    }
    out
}

fn number_words(digits: &str) -> Vec<String> {
    const ONES: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 10] = [
        "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    let Ok(n) = digits.parse::<u64>() else {
        return vec![digits.to_string()];
    };
    fn below_100(n: u64, out: &mut Vec<String>) {
        if n < 20 {
            out.push(ONES[n as usize].into());
        } else {
            out.push(TENS[(n / 10) as usize].into());
            if !n.is_multiple_of(10) {
                out.push(ONES[(n % 10) as usize].into());
            }
        }
    }
    let mut out = Vec::new();
    if (1100..2100).contains(&n) && !n.is_multiple_of(100) {
        // Years: "nineteen ninety nine".
        below_100(n / 100, &mut out);
        below_100(n % 100, &mut out);
        return out;
    }
    if n >= 1000 {
        below_100(n / 1000, &mut out);
        out.push("thousand".into());
    }
    if n % 1000 >= 100 {
        below_100(n % 1000 / 100, &mut out);
        out.push("hundred".into());
    }
    if !n.is_multiple_of(100) || n == 0 {
        below_100(n % 100, &mut out);
    }
    out
}

/// Word-level Levenshtein distance: substitutions, insertions and deletions.
fn edit_distance(reference: &[String], hypothesis: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut cur = vec![i + 1; hypothesis.len() + 1];
        for (j, h) in hypothesis.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(r != h))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[hypothesis.len()]
}
