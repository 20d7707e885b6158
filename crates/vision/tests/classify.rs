//! End to end with the real EfficientNet-Lite0 weights: conversion, classification of the shared
//! samples, agreement with a PyTorch reference, re-encoded images, and `top_k` handling.
//!
//! The raw checkpoint is found in `$MARQUEE_MODELS_DIR/efficientnet-lite0`, else the default
//! models directory; it is converted once per test run into a temporary directory.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::OnceLock;

use image::ImageFormat;
use marquee_vision::{
    Classification, ImageClassifier, ImageLimits, MODEL_FILE, RAW_FILE, convert, decode_image,
    preprocess,
};

const MODEL: &str = "efficientnet-lite0";

fn model_dir() -> PathBuf {
    let base = std::env::var_os("MARQUEE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share")
                })
                .join("marquee/models")
        });
    let dir = base.join(MODEL);
    assert!(
        dir.join(RAW_FILE).is_file(),
        "{} is missing: run `marquee models pull {MODEL}` (or set MARQUEE_MODELS_DIR)",
        dir.join(RAW_FILE).display()
    );
    dir
}

/// What one conversion produced, loaded: the classifier and the bytes of the converted file.
struct Fixture {
    classifier: ImageClassifier,
    converted: Vec<u8>,
}

/// Converts the raw checkpoint in a scratch directory, removes the raw file (so loading is shown
/// to need only the converted one), loads, and cleans up.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = scratch_dir("convert");
        std::fs::copy(model_dir().join(RAW_FILE), dir.join(RAW_FILE)).unwrap();
        assert_eq!(convert(&dir).unwrap(), [MODEL_FILE]);
        std::fs::remove_file(dir.join(RAW_FILE)).unwrap();
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [MODEL_FILE]);
        let classifier = ImageClassifier::load(&dir).unwrap();
        let converted = std::fs::read(dir.join(MODEL_FILE)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        Fixture {
            classifier,
            converted,
        }
    })
}

fn scratch_dir(purpose: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("marquee-vision-{purpose}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn classifier() -> &'static ImageClassifier {
    &fixture().classifier
}

fn sample(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/samples/").to_owned() + name;
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn classify(bytes: &[u8], top_k: usize) -> Classification {
    classifier()
        .classify(bytes, top_k, &ImageLimits::default())
        .unwrap()
}

#[test]
fn samples_get_their_labels() {
    let chelsea = classify(&sample("chelsea.png"), 5);
    assert_eq!(
        (chelsea.format, chelsea.width, chelsea.height),
        ("png", 451, 300)
    );
    assert!(
        ["tabby", "tiger cat", "Egyptian cat"].contains(&chelsea.labels[0].label.as_str()),
        "{chelsea:?}"
    );

    let coffee = classify(&sample("coffee.png"), 5);
    assert_eq!(coffee.labels[0].label, "espresso", "{coffee:?}");
    assert!(coffee.labels[0].score >= 0.9, "{coffee:?}");

    let rocket = classify(&sample("rocket.jpg"), 5);
    assert_eq!(rocket.format, "jpeg");
    assert!(
        ["missile", "projectile", "space shuttle"].contains(&rocket.labels[0].label.as_str()),
        "{rocket:?}"
    );

    for result in [&chelsea, &coffee, &rocket] {
        assert_eq!(result.labels.len(), 5);
        assert!(result.labels.windows(2).all(|w| w[0].score >= w[1].score));
        assert_eq!(result.labels[0].names[0], result.labels[0].label);
    }
}

/// Logits recorded from a PyTorch (f64) reference run of the original network — conv, batch norm
/// (ε 1e-3), ReLU6, TF "SAME" padding, unfolded — on this crate's preprocessed inputs:
/// `(sample, [(class, logit)])` for the five top classes and a few fixed ones.
const REFERENCE_LOGITS: &[(&str, &[(usize, f32)])] = &[
    (
        "chelsea.png",
        &[
            (282, 9.19515),
            (285, 9.14590),
            (281, 8.32960),
            (287, 6.27584),
            (904, 3.39114),
            (0, -0.64914),
            (1, 1.27300),
            (500, -0.68625),
            (999, 1.74943),
        ],
    ),
    (
        "coffee.png",
        &[
            (967, 11.56656),
            (968, 7.33366),
            (925, 6.68826),
            (960, 5.97644),
            (504, 5.84510),
            (0, 0.71071),
            (1, 0.35962),
            (281, -0.24330),
            (500, 0.27606),
            (999, 0.47957),
        ],
    ),
    (
        "rocket.jpg",
        &[
            (657, 8.07991),
            (744, 7.65110),
            (540, 5.94353),
            (812, 5.32454),
            (668, 5.05153),
            (0, -0.00349),
            (1, -0.30277),
            (281, -0.20109),
            (500, -0.88320),
            (999, -0.57124),
        ],
    ),
];

#[test]
fn logits_match_the_pytorch_reference() {
    for &(name, expected) in REFERENCE_LOGITS {
        let image = decode_image(&sample(name), &ImageLimits::default())
            .unwrap()
            .image;
        let logits = classifier().logits(&preprocess(&image).unwrap()).unwrap();
        let scale = logits.iter().fold(1.0f32, |m, l| m.max(l.abs()));
        for &(class, want) in expected {
            let got = logits[class];
            assert!(
                (got - want).abs() <= 1e-4 * scale,
                "{name} class {class}: {got} vs reference {want}"
            );
        }
    }
}

/// The top three classes, as a set.
fn top3(result: &Classification) -> Vec<usize> {
    let mut classes: Vec<usize> = result.labels.iter().take(3).map(|l| l.index).collect();
    classes.sort();
    classes
}

#[test]
fn reencoded_images_classify_the_same() {
    for name in ["chelsea.png", "rocket.jpg"] {
        let bytes = sample(name);
        let original = classify(&bytes, 3);
        let image = image::load_from_memory(&bytes).unwrap();

        // Lossless WebP: the very same pixels, so the very same answer.
        let mut webp = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut webp), ImageFormat::WebP)
            .unwrap();
        let again = classify(&webp, 3);
        assert_eq!(again.format, "webp");
        assert_eq!(again.labels, original.labels, "{name} as WebP");

        // JPEG at quality 90 shifts pixels a little: the same three leading classes, similar
        // scores (chelsea's first two are within 3 points of each other, so their order may flip).
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&image)
            .unwrap();
        let again = classify(&jpeg, 3);
        assert_eq!(again.format, "jpeg");
        assert_eq!(top3(&again), top3(&original), "{name} as JPEG: {again:?}");
        for label in &again.labels {
            let before = original
                .labels
                .iter()
                .find(|l| l.index == label.index)
                .unwrap();
            assert!(
                (label.score - before.score).abs() < 0.1,
                "{name} as JPEG: {again:?} vs {original:?}"
            );
        }
    }
}

#[test]
fn top_k_is_checked_and_clamped() {
    let png = sample("coffee.png");
    let err = classifier()
        .classify(&png, 0, &ImageLimits::default())
        .unwrap_err();
    assert_eq!(err.code(), "invalid_top_k");
    let all = classify(&png, 5000);
    assert_eq!(all.labels.len(), 1000);
    let total: f32 = all.labels.iter().map(|l| l.score).sum();
    assert!((total - 1.0).abs() < 1e-3, "{total}");
}

#[test]
fn concurrent_calls_agree() {
    let bytes = sample("rocket.jpg");
    let results: Vec<Classification> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2).map(|_| s.spawn(|| classify(&bytes, 3))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results[0], results[1]);
}

#[test]
fn conversion_is_idempotent_and_checks_its_input() {
    let dir = scratch_dir("again");
    let raw = std::fs::read(model_dir().join(RAW_FILE)).unwrap();
    std::fs::write(dir.join(RAW_FILE), &raw).unwrap();
    convert(&dir).unwrap();
    convert(&dir).unwrap();
    let again = std::fs::read(dir.join(MODEL_FILE)).unwrap();
    assert!(
        again == fixture().converted,
        "conversion output differs between runs"
    );

    for (what, bytes) in [
        ("truncated", &raw[..raw.len() / 2]),
        ("cut in the pickles", &raw[..2000]),
        ("not a checkpoint", &b"PK\x03\x04 zip"[..]),
    ] {
        std::fs::write(dir.join(RAW_FILE), bytes).unwrap();
        let err = convert(&dir).unwrap_err();
        assert_eq!(err.code(), "invalid_model", "{what}: {err}");
        assert!(!err.is_client_error());
    }
    std::fs::remove_dir_all(&dir).unwrap();

    let missing = convert(&dir).unwrap_err();
    assert_eq!(missing.code(), "model_files_missing");
    let missing = ImageClassifier::load(&dir).err().unwrap();
    assert_eq!(missing.code(), "model_files_missing");
    assert!(missing.to_string().contains("marquee models pull"));
}
