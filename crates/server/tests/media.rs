//! Speech, transcription and image routes on the real weights (hibari, Whisper tiny.en,
//! EfficientNet-Lite0, from `marquee models pull`): OpenAI shapes, the speech → transcription
//! round trip, item image labels feeding search and content features, and bad input.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::{TestServer, assert_error, ids};
use marquee_models::Runtime;
use marquee_models::manifest::Manifest;
use marquee_models::runtime::RuntimeConfig;
use marquee_server::ServerConfig;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

const SPEECH: &str = "hibari";
const TRANSCRIBE: &str = "whisper-tiny-en";
const VISION: &str = "efficientnet-lite0";
const EMBED: &str = "all-minilm-l6-v2";

fn models_dir() -> PathBuf {
    let dir = std::env::var_os("MARQUEE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(marquee_models::pull::default_models_dir);
    for model in [SPEECH, TRANSCRIBE, VISION, EMBED] {
        assert!(
            dir.join(model).join("marquee-model.json").is_file(),
            "the test model {model} is not in {}: run `marquee models pull` (scripts/test does)",
            dir.display()
        );
    }
    dir
}

fn sample(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/samples")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The media models (and the embedding model, for search), loaded once per test binary, with a
/// short audio limit so that "too long" is cheap to test.
fn runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let manifest = Manifest {
                models: Manifest::builtin()
                    .models
                    .iter()
                    .filter(|m| [SPEECH, TRANSCRIBE, VISION, EMBED].contains(&m.name.as_str()))
                    .cloned()
                    .collect(),
            };
            let config = RuntimeConfig {
                max_audio_seconds: 120.0,
                max_audio_bytes: 8 * 1024 * 1024,
                ..RuntimeConfig::default()
            };
            Arc::new(Runtime::load(&models_dir(), &manifest, &config))
        })
        .clone()
}

async fn server() -> (TestServer, String) {
    let server = TestServer::start_with(ServerConfig::default()).await;
    server.service.set_models(runtime());
    tokio::spawn(server.service.clone().run_item_embedder());
    let key = server.tenant_with_key("studio", "secret").await;
    (server, key)
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text })),
    )
}

async fn speak(server: &TestServer, key: &str, body: Value) -> reqwest::Response {
    server
        .client
        .post(format!("{}/v1/audio/speech", server.base))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn transcribe(
    server: &TestServer,
    key: &str,
    audio: Vec<u8>,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = Form::new().part("file", Part::bytes(audio).file_name("audio.wav"));
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    server
        .client
        .post(format!("{}/v1/audio/transcriptions", server.base))
        .bearer_auth(key)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// A 16-bit mono WAV of `seconds` of silence at `rate`.
fn silent_wav(rate: u32, seconds: f64) -> Vec<u8> {
    let samples = (rate as f64 * seconds) as u32;
    let mut wav = marquee_models::speech::wav_header(rate, Some(samples * 2)).to_vec();
    wav.resize(wav.len() + samples as usize * 2, 0);
    wav
}

#[tokio::test]
async fn speech_round_trips_through_transcription() {
    let (server, key) = server().await;
    let line = "Tickets for the new season go on sale on Friday morning.";
    let response = speak(
        &server,
        &key,
        json!({"model": SPEECH, "voice": "heart", "input": line, "response_format": "wav"}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "audio/wav");
    assert!(response.headers().contains_key("x-marquee-units"));
    let wav = response.bytes().await.unwrap().to_vec();
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(&wav[8..12], b"WAVE");
    // 24 kHz, mono, 16-bit; between 2 and 8 seconds of audio.
    assert_eq!(u32::from_le_bytes(wav[24..28].try_into().unwrap()), 24_000);
    // One sentence: the whole audio is waited for, so the header has exact sizes.
    assert_eq!(
        u32::from_le_bytes(wav[40..44].try_into().unwrap()) as usize,
        wav.len() - 44
    );
    let seconds = (wav.len() - 44) as f64 / 48_000.0;
    assert!((2.0..8.0).contains(&seconds), "{seconds} s");

    let (s, body) = json_of(transcribe(&server, &key, wav, &[("model", "whisper-1")]).await).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let heard = words(body["text"].as_str().unwrap());
    let missed: Vec<String> = words(line)
        .into_iter()
        .filter(|w| !heard.contains(w))
        .collect();
    assert!(missed.len() <= 1, "heard {heard:?}, missed {missed:?}");
    assert!(body["usage"]["seconds"].as_u64().unwrap() >= 2, "{body}");
}

#[tokio::test]
async fn long_speech_streams_sentence_by_sentence() {
    let (server, key) = server().await;
    let paragraph = "The lights dim. The curtain rises on a quiet harbour town. \
                     A stranger arrives with a letter nobody expected. \
                     By morning, nothing in the town is the same.";
    let started = Instant::now();
    let mut response = speak(
        &server,
        &key,
        json!({"model": "tts-1", "voice": "heart", "input": paragraph, "response_format": "pcm"}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "audio/pcm");
    let mut chunks = 0;
    let mut bytes = 0;
    let mut first_after = None;
    while let Some(chunk) = response.chunk().await.unwrap() {
        first_after.get_or_insert(started.elapsed());
        chunks += 1;
        bytes += chunk.len();
    }
    let total = started.elapsed();
    assert!(chunks >= 2, "{chunks} chunks");
    let seconds = bytes as f64 / 48_000.0;
    assert!(seconds > 6.0, "{seconds} s of audio");
    assert!(
        first_after.unwrap() < total,
        "the first audio came before the end ({first_after:?} of {total:?})"
    );
}

#[tokio::test]
async fn speech_refuses_bad_requests() {
    let (server, key) = server().await;
    let cases = [
        (
            json!({"model": SPEECH, "voice": "heart", "input": ""}),
            StatusCode::BAD_REQUEST,
            "empty_input",
        ),
        (
            json!({"model": SPEECH, "voice": "heart", "input": "a".repeat(4097)}),
            StatusCode::BAD_REQUEST,
            "input_too_long",
        ),
        (
            json!({"model": SPEECH, "voice": "alloy", "input": "Hi."}),
            StatusCode::BAD_REQUEST,
            "invalid_voice",
        ),
        (
            json!({"model": SPEECH, "voice": "heart", "input": "Hi.", "speed": 5.0}),
            StatusCode::BAD_REQUEST,
            "invalid_speed",
        ),
        (
            json!({"model": SPEECH, "voice": "heart", "input": "Hi.", "speed": 0.1}),
            StatusCode::BAD_REQUEST,
            "invalid_speed",
        ),
        (
            json!({"model": SPEECH, "voice": "heart", "input": "Hi.", "response_format": "mp3"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported_response_format",
        ),
        (
            json!({"model": SPEECH, "voice": "heart", "input": "Hi.", "response_format": "ogg"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"model": EMBED, "voice": "heart", "input": "Hi."}),
            StatusCode::BAD_REQUEST,
            "invalid_model",
        ),
        (
            json!({"model": "nope", "voice": "heart", "input": "Hi."}),
            StatusCode::NOT_FOUND,
            "model_not_found",
        ),
        (
            json!({"model": SPEECH, "voice": "heart", "input": "Hi.", "volume": 3}),
            StatusCode::BAD_REQUEST,
            "unknown_parameter",
        ),
    ];
    for (body, status, code) in cases {
        let (s, err) = json_of(speak(&server, &key, body.clone()).await).await;
        assert_error(s, &err, status, code);
        assert!(err["error"]["message"].as_str().is_some(), "{body}: {err}");
    }
    let (s, err) = json_of(
        server
            .client
            .post(format!("{}/v1/audio/speech", server.base))
            .json(&json!({"model": SPEECH, "voice": "heart", "input": "Hi."}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &err, StatusCode::UNAUTHORIZED, "unauthorized");
    let publishable = server.key("studio", "publishable").await;
    let (s, err) = json_of(
        speak(
            &server,
            &publishable,
            json!({"model": SPEECH, "voice": "heart", "input": "Hi."}),
        )
        .await,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{err}");
    // Input with nothing to say still answers cleanly.
    let response = speak(
        &server,
        &key,
        json!({"model": SPEECH, "voice": "heart", "input": "!!! ... ???"}),
    )
    .await;
    assert!(
        response.status() == StatusCode::OK || response.status() == StatusCode::BAD_REQUEST,
        "{}",
        response.status()
    );
}

#[tokio::test]
async fn transcription_formats_and_bad_audio() {
    let (server, key) = server().await;
    let clip = sample("speech_hibari_16k.wav");
    let (s, body) = json_of(
        transcribe(
            &server,
            &key,
            clip.clone(),
            &[("model", TRANSCRIBE), ("response_format", "verbose_json")],
        )
        .await,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        words(body["text"].as_str().unwrap()),
        words(
            "In a world where dragons rule the sky, one young pilot must learn to fly. \
             Coming this summer to a theater near you."
        ),
        "{body}"
    );
    let segments = body["segments"].as_array().unwrap();
    assert!(!segments.is_empty());
    let mut last = 0.0;
    for seg in segments {
        let (start, end) = (seg["start"].as_f64().unwrap(), seg["end"].as_f64().unwrap());
        assert!(start >= last - 1e-6 && end > start, "{body}");
        last = end;
    }
    assert!(last <= body["duration"].as_f64().unwrap() + 0.5, "{body}");

    let srt = transcribe(
        &server,
        &key,
        clip.clone(),
        &[("model", TRANSCRIBE), ("response_format", "srt")],
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(srt.starts_with("1\n00:00:"), "{srt}");
    let vtt = transcribe(
        &server,
        &key,
        clip.clone(),
        &[("model", TRANSCRIBE), ("response_format", "vtt")],
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(vtt.starts_with("WEBVTT"), "{vtt}");

    // Silence says nothing.
    let (s, body) = json_of(
        transcribe(
            &server,
            &key,
            silent_wav(16_000, 5.0),
            &[("model", TRANSCRIBE)],
        )
        .await,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(words(body["text"].as_str().unwrap()).len() <= 2, "{body}");

    type Case<'a> = (Vec<u8>, &'a [(&'a str, &'a str)], StatusCode, &'a str);
    let bad: Vec<Case> = vec![
        (
            b"RIFF\x00\x00\x00\x00WAVEfmt ".to_vec(),
            &[("model", TRANSCRIBE)],
            StatusCode::BAD_REQUEST,
            "invalid_audio",
        ),
        (
            b"definitely not audio".to_vec(),
            &[("model", TRANSCRIBE)],
            StatusCode::BAD_REQUEST,
            "invalid_audio",
        ),
        (
            clip[..clip.len() / 2 + 1].to_vec(),
            &[("model", TRANSCRIBE)],
            StatusCode::BAD_REQUEST,
            "invalid_audio",
        ),
        (
            Vec::new(),
            &[("model", TRANSCRIBE)],
            StatusCode::BAD_REQUEST,
            "empty_audio",
        ),
        (
            silent_wav(8_000, 121.0),
            &[("model", TRANSCRIBE)],
            StatusCode::BAD_REQUEST,
            "audio_too_long",
        ),
        (
            clip.clone(),
            &[("model", TRANSCRIBE), ("language", "fr")],
            StatusCode::BAD_REQUEST,
            "unsupported_language",
        ),
        (
            clip.clone(),
            &[("model", TRANSCRIBE), ("response_format", "xml")],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            clip.clone(),
            &[("model", TRANSCRIBE), ("colour", "red")],
            StatusCode::BAD_REQUEST,
            "unknown_parameter",
        ),
        (
            clip.clone(),
            &[("model", SPEECH)],
            StatusCode::BAD_REQUEST,
            "invalid_model",
        ),
        (
            clip.clone(),
            &[],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (audio, fields, status, code) in bad {
        let (s, err) = json_of(transcribe(&server, &key, audio, fields).await).await;
        assert_error(s, &err, status, code);
    }
    // A body over the limit is refused without being read to the end.
    let huge = vec![0u8; 40 * 1024 * 1024];
    let (s, err) = json_of(transcribe(&server, &key, huge, &[("model", TRANSCRIBE)]).await).await;
    assert_error(s, &err, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // JSON is not a form.
    let (s, err) = server
        .post(
            "/v1/audio/transcriptions",
            Some(&key),
            json!({"model": TRANSCRIBE}),
        )
        .await;
    assert_error(
        s,
        &err,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
}

async fn classify(key: &str, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    json_of(request.bearer_auth(key).send().await.unwrap()).await
}

fn top_label(body: &Value) -> String {
    body["labels"][0]["label"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn images_are_classified_from_uploads_base64_and_raw_bodies() {
    let (server, key) = server().await;
    let url = format!("{}/v1/images/classify", server.base);
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);

    let form = Form::new().part(
        "file",
        Part::bytes(sample("chelsea.png")).file_name("cat.png"),
    );
    let (s, body) = classify(&key, server.client.post(&url).multipart(form)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(
        ["tabby", "tiger cat", "Egyptian cat"].contains(&top_label(&body).as_str()),
        "{body}"
    );
    assert_eq!(body["labels"].as_array().unwrap().len(), 5);
    assert_eq!(body["model"], VISION);

    let (s, body) = classify(&key,
        server
            .client
            .post(&url)
            .json(&json!({"image": format!("data:image/png;base64,{}", b64(&sample("coffee.png"))), "top_k": 3})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(top_label(&body), "espresso", "{body}");
    assert!(body["labels"][0]["score"].as_f64().unwrap() > 0.9, "{body}");
    assert_eq!(body["labels"].as_array().unwrap().len(), 3);

    let (s, body) = classify(
        &key,
        server
            .client
            .post(&url)
            .header("content-type", "image/jpeg")
            .body(sample("rocket.jpg")),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(
        ["missile", "projectile", "space shuttle"].contains(&top_label(&body).as_str()),
        "{body}"
    );

    // Bad images: clear 4xx, fast.
    let png = sample("chelsea.png");
    let mut bomb = png[..33].to_vec(); // signature + IHDR
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let started = Instant::now();
    for (bytes, code) in [
        (Vec::new(), "empty_image"),
        (
            b"GIF89a\x01\x00\x01\x00".to_vec(),
            "unsupported_image_format",
        ),
        (png[..png.len() / 3].to_vec(), "invalid_image"),
        (bomb, ""),
        (b"\x00\x01\x02 random bytes".to_vec(), ""),
    ] {
        let (s, err) = classify(
            &key,
            server
                .client
                .post(&url)
                .json(&json!({"image": b64(&bytes)})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{err}");
        if !code.is_empty() {
            assert_eq!(err["error"]["code"], code, "{err}");
        }
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    let (s, err) = classify(
        &key,
        server
            .client
            .post(&url)
            .json(&json!({"url": "http://169.254.169.254/latest"})),
    )
    .await;
    assert_error(s, &err, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(err["error"]["param"], "url");
    let (s, err) = classify(
        &key,
        server
            .client
            .post(&url)
            .json(&json!({"image": "%%%not base64"})),
    )
    .await;
    assert_error(s, &err, StatusCode::BAD_REQUEST, "invalid_image");
    let (s, err) = classify(
        &key,
        server
            .client
            .post(&url)
            .json(&json!({"image": b64(&png), "top_k": 0})),
    )
    .await;
    assert_error(s, &err, StatusCode::BAD_REQUEST, "invalid_top_k");
    let huge = vec![0u8; 30 * 1024 * 1024];
    let (s, err) = classify(
        &key,
        server
            .client
            .post(&url)
            .header("content-type", "image/png")
            .body(huge),
    )
    .await;
    assert_error(s, &err, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let publishable = server.key("studio", "publishable").await;
    let (s, _) = classify(
        &publishable,
        server.client.post(&url).json(&json!({"image": b64(&png)})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn item_image_labels_feed_search_and_content_features() {
    let (server, key) = server().await;
    let (s, _) = server
        .post(
            "/v1/items",
            Some(&key),
            json!([
                {"id": "cafe", "title": "Morning Rituals", "categories": ["Documentary"]},
                {"id": "launch", "title": "Countdown", "categories": ["Documentary"]},
                {"id": "cat", "title": "Whiskers", "categories": ["Documentary"]}
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    for (item, file, expect) in [
        ("cafe", "coffee.png", "espresso"),
        ("launch", "rocket.jpg", ""),
        ("cat", "chelsea.png", ""),
    ] {
        let form = Form::new().part(
            "file",
            Part::bytes(sample(file)).file_name(file.to_string()),
        );
        let (s, body) = json_of(
            server
                .client
                .post(format!("{}/v1/items/{item}/image", server.base))
                .bearer_auth(&key)
                .multipart(form)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let labels = body["labels"].as_array().unwrap();
        assert!(!labels.is_empty(), "{body}");
        if !expect.is_empty() {
            assert_eq!(labels[0]["label"], expect, "{body}");
        }
    }
    let (s, item) = server.get("/v1/items/cafe", Some(&key)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        item["metadata"]["image_labels"][0]["label"], "espresso",
        "{item}"
    );

    // The labels join the item's text: a search for coffee finds the café film first.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, hits) = server
            .get("/v1/search?q=a%20cup%20of%20coffee&n=3", Some(&key))
            .await;
        assert_eq!(s, StatusCode::OK, "{hits}");
        if ids(&hits).first().map(String::as_str) == Some("cafe") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "search never ranked the café film first: {hits}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Unknown item: 404 before the model runs; a publishable key may not label.
    let form = Form::new().part("file", Part::bytes(sample("coffee.png")).file_name("c.png"));
    let (s, err) = json_of(
        server
            .client
            .post(format!("{}/v1/items/nope/image", server.base))
            .bearer_auth(&key)
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &err, StatusCode::NOT_FOUND, "not_found");
}
