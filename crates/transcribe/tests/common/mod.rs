//! Shared set-up for the tests that run the real Whisper tiny.en weights.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use marquee_transcribe::{
    CONFIG_FILE, RAW_CONFIG_FILE, RAW_MODEL_FILE, TOKENIZER_FILE, Transcriber, WEIGHTS_FILE,
    convert,
};

pub const MODEL: &str = "whisper-tiny-en";

/// `$MARQUEE_MODELS_DIR/whisper-tiny-en`, else the default models directory.
pub fn model_dir() -> PathBuf {
    let root = std::env::var_os("MARQUEE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let data = std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                        .join(".local/share")
                });
            data.join("marquee/models")
        });
    root.join(MODEL)
}

pub fn has_raw(dir: &Path) -> bool {
    [RAW_MODEL_FILE, RAW_CONFIG_FILE, TOKENIZER_FILE]
        .iter()
        .all(|f| dir.join(f).is_file())
}

pub fn has_converted(dir: &Path) -> bool {
    [WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_FILE]
        .iter()
        .all(|f| dir.join(f).is_file())
}

/// Fails the test (never skips it) when the model files are absent.
pub fn require_model() -> PathBuf {
    let dir = model_dir();
    assert!(
        has_raw(&dir) || has_converted(&dir),
        "the {MODEL} model files are missing from {}: run `marquee models pull {MODEL}` \
         (or set MARQUEE_MODELS_DIR)",
        dir.display()
    );
    dir
}

/// A new temporary directory with links to the raw files, for converting without writing
/// into the models directory.
pub fn raw_copy() -> tempfile::TempDir {
    let dir = require_model();
    let tmp = tempfile::tempdir().expect("temporary directory");
    for name in [RAW_MODEL_FILE, RAW_CONFIG_FILE, TOKENIZER_FILE] {
        let from = dir.join(name);
        let to = tmp.path().join(name);
        #[cfg(unix)]
        std::os::unix::fs::symlink(&from, &to).expect("symlink raw file");
        #[cfg(not(unix))]
        std::fs::copy(&from, &to).expect("copy raw file");
    }
    tmp
}

/// The converted model: the models directory itself when `marquee models pull` has already
/// converted it, otherwise a conversion made once per test process in a temporary directory.
pub fn transcriber() -> &'static Transcriber {
    static LOADED: OnceLock<(Transcriber, Option<tempfile::TempDir>)> = OnceLock::new();
    &LOADED
        .get_or_init(|| {
            let dir = require_model();
            if has_converted(&dir) {
                (Transcriber::load(&dir).expect("load converted model"), None)
            } else {
                let tmp = raw_copy();
                convert(tmp.path()).expect("convert the CTranslate2 export");
                let transcriber = Transcriber::load(tmp.path()).expect("load converted model");
                (transcriber, Some(tmp))
            }
        })
        .0
}

pub fn sample(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/samples")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Lower case, letters and digits only (so "pop corn" equals "popcorn"), numbers as words.
pub fn normalise(text: &str) -> String {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| match w.trim_matches(|c: char| !c.is_alphanumeric()) {
            "8" => "eight".to_string(),
            other => other.to_lowercase(),
        })
        .collect();
    words
        .concat()
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect()
}

pub const HIBARI: &str = "speech_hibari_16k.wav";
pub const HIBARI_TEXT: &str = "In a world where dragons rule the sky, one young pilot must learn to fly. \
     Coming this summer to a theater near you.";
pub const FLITE: &str = "speech_flite_slt_16k.wav";
pub const FLITE_TEXT: &str = "The popcorn is ready and the movie starts at eight o'clock.";
