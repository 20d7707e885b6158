//! End-to-end tests with the real hibari files (`$MARQUEE_MODELS_DIR/hibari`, else the default
//! models dir). Expected phonemes come from the Python reference (`tests/data/make_reference.py`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use marquee_tts::{Error, SAMPLE_RATE, SpeechOptions, Voice};
use serde::Deserialize;

const RAW_FILES: [&str; 9] = [
    "hibari.onnx",
    "oov.onnx",
    "oov.json",
    "lexicon_us_gold.json.gz",
    "lexicon_us_silver.json.gz",
    "tagger.json.gz",
    "tokenizer_exceptions.json",
    "normalize.json",
    "vocab.json",
];

fn model_dir() -> PathBuf {
    let base = match std::env::var_os("MARQUEE_MODELS_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let data = std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share")
                });
            data.join("marquee/models")
        }
    };
    let dir = base.join("hibari");
    for f in RAW_FILES {
        assert!(
            dir.join(f).exists(),
            "model file {} is missing: run `marquee models pull` (or set MARQUEE_MODELS_DIR)",
            dir.join(f).display()
        );
    }
    dir
}

fn voice() -> &'static Voice {
    static VOICE: OnceLock<Voice> = OnceLock::new();
    VOICE.get_or_init(|| {
        let dir = model_dir();
        marquee_tts::convert(&dir).expect("convert");
        let t = Instant::now();
        let v = Voice::load(&dir).expect("load voice");
        eprintln!("voice loaded in {:.2?}", t.elapsed());
        v
    })
}

fn collect(
    text: &str,
    opts: &SpeechOptions,
) -> Result<(Vec<Vec<f32>>, marquee_tts::SynthesisStats), Error> {
    let mut chunks = Vec::new();
    let stats = voice().synthesize(text, opts, &mut |s| {
        chunks.push(s.to_vec());
        true
    })?;
    Ok((chunks, stats))
}

#[derive(Deserialize)]
struct Expected {
    text: String,
    chunks: Vec<String>,
}

#[test]
fn phonemes_match_python_reference() {
    let data = include_str!("data/phonemes.json");
    let cases: Vec<Expected> = serde_json::from_str(data).unwrap();
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for case in &cases {
        let got = voice().phonemize(&case.text).unwrap();
        if got != case.chunks {
            failures.push(format!(
                "{:?}\n  want {:?}\n  got  {:?}",
                case.text, case.chunks, got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn streams_one_chunk_per_sentence() {
    let text = "The sun is up. Birds are singing! Shall we go outside?";
    let (chunks, stats) = collect(text, &SpeechOptions::default()).unwrap();
    assert_eq!(chunks.len(), 3);
    assert_eq!(stats.chunks, 3);
    assert_eq!(stats.characters, text.chars().count());
    assert_eq!(stats.samples, chunks.iter().map(Vec::len).sum::<usize>());
    for c in &chunks {
        let secs = c.len() as f32 / SAMPLE_RATE as f32;
        assert!((0.4..5.0).contains(&secs), "chunk of {secs} s");
        let peak = c.iter().fold(0f32, |m, s| m.max(s.abs()));
        let rms = (c.iter().map(|s| s * s).sum::<f32>() / c.len() as f32).sqrt();
        assert!(peak < 1.5 && rms > 0.01, "peak {peak} rms {rms}");
    }
    // the noise is seeded: the same request gives the same audio
    let (again, _) = collect(text, &SpeechOptions::default()).unwrap();
    assert_eq!(chunks, again);
}

#[test]
fn speed_scales_duration() {
    let text = "Speaking faster makes the audio shorter.";
    let len = |speed: f32| -> f32 {
        let (_, stats) = collect(
            text,
            &SpeechOptions {
                speed,
                cancel: None,
            },
        )
        .unwrap();
        stats.samples as f32
    };
    let normal = len(1.0);
    let fast = len(2.0) / normal;
    let slow = len(0.5) / normal;
    assert!(
        (0.4..0.65).contains(&fast),
        "speed 2 gave {fast} of the duration"
    );
    assert!(
        (1.6..2.5).contains(&slow),
        "speed 0.5 gave {slow} of the duration"
    );
}

#[test]
fn rejects_bad_requests() {
    let opts = SpeechOptions::default();
    for text in ["", "   \n\t "] {
        let e = collect(text, &opts).unwrap_err();
        assert_eq!(e.code(), "empty_input");
        assert!(e.is_client_error());
    }
    for speed in [0.1, 4.5, f32::NAN, -1.0] {
        let e = collect(
            "Hello.",
            &SpeechOptions {
                speed,
                cancel: None,
            },
        )
        .unwrap_err();
        assert_eq!(e.code(), "invalid_speed", "speed {speed}");
        assert!(e.is_client_error());
    }
    for text in ["***", "™ ® •", "\u{200b}"] {
        let e = collect(text, &opts).unwrap_err();
        assert_eq!(e.code(), "unpronounceable_input", "{text:?}");
        assert!(e.is_client_error());
    }
    for speed in [0.25, 4.0] {
        assert!(
            collect(
                "Hi.",
                &SpeechOptions {
                    speed,
                    cancel: None
                }
            )
            .is_ok()
        );
    }
}

fn long_text() -> String {
    let base = "Marquee serves models on your own hardware. It keeps a queue of requests, \
        batches them when it can, and streams the results back as soon as they are ready. \
        On March 3rd, 2024, the team measured 1,250 requests per second at a cost of $0.02 each. ";
    let mut text = String::new();
    while text.len() < 4000 {
        text.push_str(base);
    }
    text
}

#[test]
fn long_input_streams_many_chunks() {
    let text = long_text();
    let chunks = voice().phonemize(&text).unwrap();
    assert!(chunks.len() > 40, "{} chunks", chunks.len());
    // synthesize the first few chunks of the stream, then hang up like a client would
    let mut seen = 0;
    let stats = voice()
        .synthesize(&text, &SpeechOptions::default(), &mut |s| {
            assert!(!s.is_empty());
            seen += 1;
            seen < 3
        })
        .unwrap();
    assert_eq!((seen, stats.chunks), (3, 3));
}

#[test]
fn cancel_stops_between_chunks() {
    let cancel = Arc::new(AtomicBool::new(false));
    let opts = SpeechOptions {
        speed: 1.0,
        cancel: Some(cancel.clone()),
    };
    let mut seen = 0;
    let err = voice()
        .synthesize(
            "One sentence here. Another one there. And a third.",
            &opts,
            &mut |_| {
                seen += 1;
                cancel.store(true, Ordering::Relaxed);
                true
            },
        )
        .unwrap_err();
    assert_eq!(err.code(), "cancelled");
    assert_eq!(seen, 1);
}

#[test]
fn hostile_input_stays_bounded() {
    // 100k characters: one huge run without spaces, symbol soup, and digits
    let mut text = "a".repeat(30_000);
    text.push(' ');
    text.push_str(&"(-.'/)".repeat(5_000));
    text.push(' ');
    text.push_str(&"9".repeat(20_000));
    text.push(' ');
    text.push_str(&"Dr. 1st 3:45 $5 ".repeat(1_000));
    let t = Instant::now();
    let chunks = voice().phonemize(&text).unwrap();
    let secs = t.elapsed().as_secs_f32();
    assert!(!chunks.is_empty());
    assert!(chunks.iter().all(|c| c.chars().count() <= 400));
    assert!(secs < 20.0, "front end took {secs} s");
}

#[test]
fn convert_is_idempotent() {
    let src = model_dir();
    let dir = std::env::temp_dir().join(format!("marquee-tts-convert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("hibari.onnx"), dir.join("hibari.onnx")).unwrap();
    let first = marquee_tts::convert(&dir).unwrap();
    assert_eq!(first, vec!["acoustic.onnx".to_string()]);
    let bytes = std::fs::read(dir.join("acoustic.onnx")).unwrap();
    let second = marquee_tts::convert(&dir).unwrap();
    assert_eq!(second, first);
    assert_eq!(std::fs::read(dir.join("acoustic.onnx")).unwrap(), bytes);
    assert!(!dir.join("acoustic.onnx.partial").exists());
    // without the source, an existing conversion is kept
    std::fs::remove_file(dir.join("hibari.onnx")).unwrap();
    assert!(marquee_tts::convert(&dir).unwrap().is_empty());
    let e = Voice::load(&dir)
        .err()
        .expect("load without the other files fails");
    assert_eq!(e.code(), "model_missing");
    assert!(e.to_string().contains("marquee models pull"));
    std::fs::remove_dir_all(&dir).unwrap();
}
