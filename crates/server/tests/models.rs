//! The model routes on the real weights: OpenAI shapes, streaming, admission control, semantic
//! search, drafted copy and upstream routing. The weights come from `marquee models pull`
//! (`scripts/test` runs it).

mod common;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::{ADMIN_KEY, TestServer, assert_error, ids};
use marquee_models::Runtime;
use marquee_models::manifest::Manifest;
use marquee_models::runtime::RuntimeConfig;
use marquee_server::ServerConfig;
use marquee_server::upstream::UpstreamModel;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const EMBED: &str = "all-minilm-l6-v2";
const CHAT: &str = "smollm2-135m-instruct";

fn models_dir() -> PathBuf {
    let dir = std::env::var_os("MARQUEE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(marquee_models::pull::default_models_dir);
    assert!(
        dir.join(EMBED).is_dir() && dir.join(CHAT).is_dir(),
        "the test models are not in {}: run `marquee models pull` (scripts/test does)",
        dir.display()
    );
    dir
}

/// The models, loaded once per test binary.
fn runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            Arc::new(Runtime::load(
                &models_dir(),
                Manifest::builtin(),
                &RuntimeConfig::default(),
            ))
        })
        .clone()
}

async fn server_with_models(config: ServerConfig) -> TestServer {
    let server = TestServer::start_with(config).await;
    server.service.set_models(runtime());
    tokio::spawn(server.service.clone().run_item_embedder());
    server
}

#[tokio::test]
async fn models_are_listed_in_openai_shape_and_in_readiness() {
    let server = server_with_models(ServerConfig::default()).await;
    let key = server.tenant_with_key("acme", "secret").await;
    let (s, body) = server.get("/v1/models", Some(&key)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["object"], "list");
    let names: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(names.contains(&EMBED) && names.contains(&CHAT), "{body}");
    let (s, one) = server.get(&format!("/v1/models/{CHAT}"), Some(&key)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(one["object"], "model");
    assert_eq!(one["kind"], "chat");
    let (s, err) = server.get("/v1/models/gpt-17", Some(&key)).await;
    assert_error(s, &err, StatusCode::NOT_FOUND, "model_not_found");
    assert_eq!(err["error"]["type"], "not_found_error");
    let (s, _) = server.get("/v1/models", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (_, ready) = server.get("/readyz", None).await;
    let listed: Vec<&str> = ready["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["status"] == "ready")
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&EMBED) && listed.contains(&CHAT), "{ready}");
}

#[tokio::test]
async fn embeddings_in_float_and_base64_with_usage_and_clear_errors() {
    let server = server_with_models(ServerConfig::default()).await;
    let key = server.tenant_with_key("acme", "secret").await;
    let (s, one) = server
        .post(
            "/v1/embeddings",
            Some(&key),
            json!({"model": EMBED, "input": "A cat sits on the mat."}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{one}");
    assert_eq!(one["object"], "list");
    assert_eq!(one["model"], EMBED);
    let v: Vec<f32> = serde_json::from_value(one["data"][0]["embedding"].clone()).unwrap();
    assert_eq!(v.len(), 384);
    assert_eq!(one["usage"]["prompt_tokens"], 9);
    assert_eq!(one["usage"]["total_tokens"], 9);

    let (s, many) = server
        .post(
            "/v1/embeddings",
            Some(&key),
            json!({"model": EMBED, "input": ["A cat sits on the mat.", "Stocks fell."], "encoding_format": "base64"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{many}");
    assert_eq!(many["data"].as_array().unwrap().len(), 2);
    assert_eq!(many["data"][1]["index"], 1);
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(many["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let cos: f32 = decoded.iter().zip(&v).map(|(a, b)| a * b).sum();
    assert!(cos > 0.9999, "batched and base64 vectors agree: {cos}");

    for (body, status, code) in [
        (json!({"model": EMBED, "input": ""}), 400, "invalid_request"),
        (json!({"model": EMBED, "input": []}), 400, "invalid_request"),
        (json!({"model": EMBED, "input": 42}), 400, "invalid_request"),
        (
            json!({"model": EMBED, "input": "word ".repeat(400)}),
            400,
            "context_length_exceeded",
        ),
        (
            json!({"model": EMBED, "input": "x", "dimensions": 64}),
            400,
            "invalid_request",
        ),
        (
            json!({"model": EMBED, "input": "x", "temperature": 1}),
            400,
            "unknown_parameter",
        ),
        (
            json!({"model": "nope", "input": "x"}),
            404,
            "model_not_found",
        ),
        (json!({"model": CHAT, "input": "x"}), 400, "invalid_model"),
    ] {
        let (s, err) = server
            .post("/v1/embeddings", Some(&key), body.clone())
            .await;
        assert_error(s, &err, StatusCode::from_u16(status).unwrap(), code);
        assert_eq!(
            err["error"]["type"],
            if status == 404 {
                "not_found_error"
            } else {
                "invalid_request_error"
            },
            "{body}"
        );
    }
    let publishable = server.key("acme", "publishable").await;
    let (s, err) = server
        .post(
            "/v1/embeddings",
            Some(&publishable),
            json!({"model": EMBED, "input": "x"}),
        )
        .await;
    assert_error(s, &err, StatusCode::FORBIDDEN, "missing_scope");
}

/// Reads a server-sent-events body into its `data:` payloads.
fn sse_payloads(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|event| {
            event
                .lines()
                .find_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
                .map(|d| d.trim().to_string())
        })
        .collect()
}

/// A model call's ledger row is queued like a recommendation's: once a write fails, calls are
/// refused until the ledger takes writes again, and every call that was served ends up in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_calls_are_refused_while_usage_cannot_be_recorded() {
    let server = server_with_models(ServerConfig::default()).await;
    let key = server.tenant_with_key("closed", "secret").await;
    let body = json!({"model": EMBED, "input": "a heist in Lyon"});
    let (s, _) = server
        .post("/v1/embeddings", Some(&key), body.clone())
        .await;
    assert_eq!(s, StatusCode::OK);
    let mut served = 1;

    let conn = server.refuse_usage_writes().await;
    let mut refused = 0;
    for _ in 0..20 {
        let (s, err) = server
            .post("/v1/embeddings", Some(&key), body.clone())
            .await;
        if s == StatusCode::OK {
            assert_eq!(refused, 0, "served after a refusal");
            served += 1;
        } else {
            assert_error(
                s,
                &err,
                StatusCode::SERVICE_UNAVAILABLE,
                "ledger_unavailable",
            );
            refused += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused >= 15, "{refused} refused of 20");
    server.allow_usage_writes(conn).await;

    let started = Instant::now();
    loop {
        let (s, _) = server
            .post("/v1/embeddings", Some(&key), body.clone())
            .await;
        if s == StatusCode::OK {
            served += 1;
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still refused after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // One row per served call, those served while the ledger failed included; none for the
    // refused ones.
    let (s, records) = server.get("/v1/usage/records", Some(&key)).await;
    assert_eq!(s, StatusCode::OK, "{records}");
    let rows = records["data"].as_array().unwrap();
    assert_eq!(rows.len(), served, "{records}");
    assert!(
        rows.iter()
            .all(|r| r["route"] == "/v1/embeddings" && r["status"] == 200)
    );
}

#[tokio::test]
async fn chat_completions_plain_and_streamed_agree() {
    let server = server_with_models(ServerConfig::default()).await;
    let key = server.tenant_with_key("acme", "secret").await;
    let request = json!({
        "model": CHAT,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "temperature": 0,
        "max_tokens": 20,
    });
    let (s, plain) = server
        .post("/v1/chat/completions", Some(&key), request.clone())
        .await;
    assert_eq!(s, StatusCode::OK, "{plain}");
    assert_eq!(plain["object"], "chat.completion");
    assert!(plain["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let text = plain["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains("Paris"), "{text}");
    assert_eq!(plain["choices"][0]["message"]["role"], "assistant");
    assert!(["stop", "length"].contains(&plain["choices"][0]["finish_reason"].as_str().unwrap()));
    let usage = &plain["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );

    // Greedy decoding is deterministic: the same request gives the same text, streamed too.
    let (_, again) = server
        .post("/v1/chat/completions", Some(&key), request.clone())
        .await;
    assert_eq!(again["choices"][0]["message"]["content"], text.as_str());
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let resp = server
        .client
        .post(format!("{}/v1/chat/completions", server.base))
        .bearer_auth(&key)
        .json(&streamed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let payloads = sse_payloads(&resp.text().await.unwrap());
    assert_eq!(payloads.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = payloads[..payloads.len() - 1]
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let joined: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(joined, text);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"], plain["usage"]);
    let finish = &chunks[chunks.len() - 2]["choices"][0]["finish_reason"];
    assert_eq!(finish, &plain["choices"][0]["finish_reason"]);

    // Stop sequences end the text before them.
    let mut stopped = request.clone();
    stopped["stop"] = json!(["Paris"]);
    let (_, s_body) = server
        .post("/v1/chat/completions", Some(&key), stopped)
        .await;
    let s_text = s_body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        !s_text.contains("Paris") && text.starts_with(s_text),
        "{s_text:?} vs {text:?}"
    );
    assert_eq!(s_body["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn chat_refuses_bad_requests_in_openai_shape() {
    let server = server_with_models(ServerConfig::default()).await;
    let key = server.tenant_with_key("acme", "secret").await;
    let msgs = json!([{"role": "user", "content": "hi"}]);
    for (body, status, code) in [
        (
            json!({"model": CHAT, "messages": []}),
            400,
            "invalid_request",
        ),
        (
            json!({"model": CHAT, "messages": msgs, "n": 2}),
            400,
            "invalid_request",
        ),
        (
            json!({"model": CHAT, "messages": msgs, "temperature": 3}),
            400,
            "invalid_request",
        ),
        (
            json!({"model": CHAT, "messages": msgs, "max_tokens": 100000}),
            400,
            "context_length_exceeded",
        ),
        (
            json!({"model": CHAT, "messages": [{"role": "robot", "content": "hi"}]}),
            400,
            "invalid_request",
        ),
        (
            json!({"model": CHAT, "messages": msgs, "tools": []}),
            400,
            "unknown_parameter",
        ),
        (
            json!({"model": CHAT, "messages": "hi"}),
            400,
            "invalid_request",
        ),
        (
            json!({"model": "gpt-17", "messages": msgs}),
            404,
            "model_not_found",
        ),
        (
            json!({"model": EMBED, "messages": msgs}),
            400,
            "invalid_model",
        ),
        (json!({"messages": msgs}), 400, "invalid_request"),
    ] {
        let (s, err) = server
            .post("/v1/chat/completions", Some(&key), body.clone())
            .await;
        assert_error(s, &err, StatusCode::from_u16(status).unwrap(), code);
    }
    let long = "word ".repeat(3000);
    let (s, err) = server
        .post(
            "/v1/chat/completions",
            Some(&key),
            json!({"model": CHAT, "messages": [{"role": "user", "content": long}]}),
        )
        .await;
    assert_error(s, &err, StatusCode::BAD_REQUEST, "context_length_exceeded");
}

#[tokio::test]
async fn a_dropped_stream_stops_its_generation_and_a_full_queue_answers_503() {
    // One generation at a time, none waiting: a second request finds the model busy.
    let tight = Arc::new(Runtime::load(
        &models_dir(),
        Manifest::builtin(),
        &RuntimeConfig {
            chat_concurrency: 1,
            chat_queue: 0,
            retry_after_secs: 2,
            ..RuntimeConfig::default()
        },
    ));
    let server = TestServer::start().await;
    server.service.set_models(tight.clone());
    let key = server.tenant_with_key("acme", "secret").await;
    let long = json!({
        "model": CHAT,
        "messages": [{"role": "user", "content": "Tell me a very long story about a dragon."}],
        "max_tokens": 1500,
        "stream": true,
    });
    let mut resp = server
        .client
        .post(format!("{}/v1/chat/completions", server.base))
        .bearer_auth(&key)
        .json(&long)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // Wait for real tokens, so the generation is certainly running.
    let mut seen = String::new();
    while !seen.contains("\"content\":\"") || seen.matches("data:").count() < 3 {
        let chunk = resp.chunk().await.unwrap().expect("stream continues");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let chat = tight.chat(CHAT).unwrap();
    assert_eq!(chat.active(), 1);
    let (s, err) = server
        .post(
            "/v1/chat/completions",
            Some(&key),
            json!({"model": CHAT, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_error(s, &err, StatusCode::SERVICE_UNAVAILABLE, "overloaded");
    let raw = server
        .client
        .post(format!("{}/v1/chat/completions", server.base))
        .bearer_auth(&key)
        .json(&json!({"model": CHAT, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.headers()["retry-after"], "2");

    // The client goes away: the generation stops within moments (1,500 tokens would take
    // minutes), and the model takes work again.
    drop(resp);
    let started = Instant::now();
    while chat.active() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the generation went on after its client left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, _) = server
        .post(
            "/v1/chat/completions",
            Some(&key),
            json!({"model": CHAT, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}

/// Films described in words, so that meaning (not shared words) has to find them.
async fn seed_described_films(server: &TestServer, key: &str) {
    let items = json!([
        {"id": "wall-e", "title": "WALL·E", "categories": ["Animation", "Sci-Fi"],
         "description": "After centuries of cleaning up a deserted, garbage-covered planet, a small waste-collecting machine meets a sleek probe and follows her across the galaxy."},
        {"id": "jaws", "title": "Jaws", "categories": ["Thriller"],
         "description": "A giant great white shark terrorises a seaside resort town, and the police chief hunts it with a marine biologist and a fisherman."},
        {"id": "heat", "title": "Heat", "categories": ["Crime", "Drama"],
         "description": "A detective obsessively pursues a crew of professional bank robbers through Los Angeles."},
        {"id": "notebook", "title": "The Notebook", "categories": ["Romance", "Drama"],
         "description": "An elderly man reads to a woman with dementia the story of two young lovers separated by class and war in the 1940s."},
        {"id": "apollo", "title": "Apollo 13", "categories": ["Drama", "History"],
         "description": "Astronauts improvise to survive after an explosion cripples their spacecraft on the way to the Moon."},
        {"id": "ratatouille", "title": "Ratatouille", "categories": ["Animation", "Comedy"],
         "description": "A rat who dreams of becoming a chef teams up with a young kitchen worker in a famous Paris restaurant."}
    ]);
    let (s, b) = server.post("/v1/items", Some(key), items).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

async fn search(server: &TestServer, key: &str, query: &str) -> (StatusCode, Value, String) {
    let resp = server
        .client
        .get(format!("{}/v1/search", server.base))
        .query(&[("q", query)])
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let indexed = resp
        .headers()
        .get("x-marquee-indexed-items")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, resp.json().await.unwrap(), indexed)
}

async fn wait_indexed(server: &TestServer, key: &str, n: usize) {
    let started = Instant::now();
    loop {
        let (_, _, indexed) = search(server, key, "anything").await;
        if indexed == format!("{n}/{n}") {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "indexed only {indexed}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn semantic_search_finds_items_by_meaning_with_filters() {
    let server = server_with_models(ServerConfig::default()).await;
    let key = server.tenant_with_key("acme", "secret").await;
    seed_described_films(&server, &key).await;
    wait_indexed(&server, &key, 6).await;

    let (s, hits, _) = search(&server, &key, "a robot left alone on Earth falls in love").await;
    assert_eq!(s, StatusCode::OK, "{hits}");
    assert_eq!(ids(&hits)[0], "wall-e", "{hits}");
    assert_eq!(hits[0]["reason"]["kind"], "search_match");
    let (_, hits, _) = search(&server, &key, "a killer fish attacks swimmers").await;
    assert_eq!(ids(&hits)[0], "jaws", "{hits}");
    let (_, hits, _) = search(&server, &key, "cooking in France").await;
    assert_eq!(ids(&hits)[0], "ratatouille", "{hits}");

    // The recommend routes' filters apply.
    let resp = server
        .client
        .get(format!("{}/v1/search", server.base))
        .query(&[
            ("q", "space travel disaster"),
            ("category", "Animation"),
            ("n", "1"),
        ])
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let hits: Value = resp.json().await.unwrap();
    assert_eq!(ids(&hits), vec!["wall-e"], "{hits}");

    // A changed description is re-embedded; a hidden item is not found.
    let (s, _) = server
        .patch(
            "/v1/items/heat",
            Some(&key),
            json!({"description": "A pastry chef opens a bakery in a small mountain village."}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let started = Instant::now();
    loop {
        let (_, hits, _) = search(&server, &key, "baking bread and cakes").await;
        if ids(&hits)[0] == "heat" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not re-embedded: {hits}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server
        .patch("/v1/items/jaws", Some(&key), json!({"hidden": true}))
        .await;
    let (_, hits, _) = search(&server, &key, "a killer fish attacks swimmers").await;
    assert!(!ids(&hits).contains(&"jaws".to_string()));

    for q in ["", "   "] {
        let (s, err, _) = search(&server, &key, q).await;
        assert_error(s, &err, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    }
    let (s, err, _) = search(&server, &key, &"long ".repeat(1000)).await;
    assert_error(s, &err, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");

    // Without a model, search says what is missing.
    let bare = TestServer::start().await;
    let bare_key = bare.tenant_with_key("acme", "secret").await;
    let (s, err, _) = search(&bare, &bare_key, "robots").await;
    assert_error(s, &err, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
}

#[tokio::test]
async fn cold_items_are_similar_by_meaning() {
    let server = server_with_models(ServerConfig::default()).await;
    let key = server.tenant_with_key("acme", "secret").await;
    seed_described_films(&server, &key).await;
    let (s, b) = server
        .post(
            "/v1/items",
            Some(&key),
            json!([{"id": "interstellar", "title": "Interstellar", "categories": ["Drama"],
                    "description": "A crew of astronauts travels through a wormhole in search of a new home for humanity."}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    wait_indexed(&server, &key, 7).await;
    // No feedback, no trained model: similarity comes from the text alone.
    let (s, similar) = server
        .get("/v1/items/interstellar/similar?n=2", Some(&key))
        .await;
    assert_eq!(s, StatusCode::OK, "{similar}");
    assert_eq!(ids(&similar)[0], "apollo", "{similar}");
}

#[tokio::test]
async fn item_copy_is_drafted_and_stored_only_when_asked() {
    let server = server_with_models(ServerConfig::default()).await;
    let key = server.tenant_with_key("acme", "secret").await;
    seed_described_films(&server, &key).await;
    let (s, draft) = server
        .post(
            "/v1/items/wall-e/generate",
            Some(&key),
            json!({"kind": "tagline"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{draft}");
    assert_eq!(draft["kind"], "tagline");
    assert_eq!(draft["stored"], false);
    let text = draft["text"].as_str().unwrap();
    assert!(!text.is_empty() && text.len() < 300, "{text}");
    let (_, item) = server.get("/v1/items/wall-e", Some(&key)).await;
    assert!(item["metadata"].get("tagline").is_none());
    // Greedy by default: the same draft again, now stored.
    let (s, stored) = server
        .post(
            "/v1/items/wall-e/generate",
            Some(&key),
            json!({"kind": "tagline", "store": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(stored["text"], draft["text"]);
    let (_, item) = server.get("/v1/items/wall-e", Some(&key)).await;
    assert_eq!(item["metadata"]["tagline"], draft["text"]);

    let (s, err) = server
        .post(
            "/v1/items/nope/generate",
            Some(&key),
            json!({"kind": "tagline"}),
        )
        .await;
    assert_error(s, &err, StatusCode::NOT_FOUND, "not_found");
    // Another tenant's items do not exist for this caller, to draft or to find.
    let other = server.tenant_with_key("rival", "secret").await;
    let (s, err) = server
        .post(
            "/v1/items/wall-e/generate",
            Some(&other),
            json!({"kind": "tagline"}),
        )
        .await;
    assert_error(s, &err, StatusCode::NOT_FOUND, "not_found");
    let (s, hits, indexed) = search(&server, &other, "a robot left alone on Earth").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(hits, json!([]));
    assert_eq!(indexed, "0/0");
    let (s, err) = server
        .post(
            "/v1/items/wall-e/generate",
            Some(&key),
            json!({"kind": "poem"}),
        )
        .await;
    assert_error(s, &err, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
}

/// An upstream model at `base` (a server root; the OpenAI routes are under `/v1`), reached with
/// the upstream Marquee's key.
fn upstream_model(
    name: &str,
    base: &str,
    model: Option<&str>,
    kind: &str,
    timeout_secs: f64,
) -> UpstreamModel {
    UpstreamModel {
        name: name.into(),
        base_url: format!("{base}/v1"),
        model: model.map(str::to_string),
        api_key_env: Some("MARQUEE_TEST_UPSTREAM_KEY".into()),
        kind: kind.into(),
        timeout_secs,
    }
}

#[tokio::test]
async fn upstream_models_are_proxied_under_marquees_keys() {
    // The upstream: another Marquee with the chat model, behind its own key.
    let upstream = server_with_models(ServerConfig::default()).await;
    let upstream_key = upstream.tenant_with_key("provider", "secret").await;
    // SAFETY (env): set once, before the gateway reads it; no other test reads this variable.
    unsafe { std::env::set_var("MARQUEE_TEST_UPSTREAM_KEY", &upstream_key) };
    // A port that accepts connections and never answers, and one that refuses them.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let gateway = TestServer::start_with(ServerConfig {
        upstreams: vec![
            upstream_model("remote-smol", &upstream.base, Some(CHAT), "chat", 60.0),
            upstream_model(
                "remote-embed",
                &upstream.base,
                Some(EMBED),
                "embeddings",
                60.0,
            ),
            upstream_model(
                "silent",
                &format!("http://{silent_addr}"),
                None,
                "chat",
                0.5,
            ),
            upstream_model("down", &format!("http://{closed}"), None, "chat", 5.0),
        ],
        ..ServerConfig::default()
    })
    .await;
    let key = gateway.tenant_with_key("acme", "secret").await;
    let (_, listed) = gateway.get("/v1/models", Some(&key)).await;
    assert!(
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "remote-smol")
    );

    let request = json!({
        "model": "remote-smol",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "temperature": 0,
        "max_tokens": 12,
    });
    let (s, via) = gateway
        .post("/v1/chat/completions", Some(&key), request.clone())
        .await;
    assert_eq!(s, StatusCode::OK, "{via}");
    let mut direct_req = request.clone();
    direct_req["model"] = json!(CHAT);
    let (_, direct) = upstream
        .post("/v1/chat/completions", Some(&upstream_key), direct_req)
        .await;
    assert_eq!(
        via["choices"][0]["message"],
        direct["choices"][0]["message"]
    );

    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let resp = gateway
        .client
        .post(format!("{}/v1/chat/completions", gateway.base))
        .bearer_auth(&key)
        .json(&streamed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let payloads = sse_payloads(&resp.text().await.unwrap());
    assert_eq!(payloads.last().unwrap(), "[DONE]");
    let joined: String = payloads[..payloads.len() - 1]
        .iter()
        .map(|p| serde_json::from_str::<Value>(p).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        joined,
        direct["choices"][0]["message"]["content"].as_str().unwrap()
    );

    let (s, e) = gateway
        .post(
            "/v1/embeddings",
            Some(&key),
            json!({"model": "remote-embed", "input": "hello"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["data"][0]["embedding"].as_array().unwrap().len(), 384);

    // The gateway bills what the upstream reported it served.
    let (s, records) = gateway.get("/v1/usage/records?limit=100", Some(&key)).await;
    assert_eq!(s, StatusCode::OK, "{records}");
    let records = records["data"].as_array().unwrap();
    let billed = |model: &str| -> Vec<Value> {
        records
            .iter()
            .filter(|r| r["model"] == model)
            .map(|r| r["units"].clone())
            .collect()
    };
    assert_eq!(
        billed("remote-embed"),
        vec![json!({"embedding_tokens": e["usage"]["prompt_tokens"]})]
    );
    assert!(
        billed("remote-smol").contains(&json!({
            "input_tokens": via["usage"]["prompt_tokens"],
            "output_tokens": via["usage"]["completion_tokens"],
        })),
        "{records:?}"
    );

    // The gateway's own keys guard upstream models; the upstream's errors come back.
    let (s, _) = gateway
        .post("/v1/chat/completions", None, request.clone())
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let mut bad = request.clone();
    bad["n"] = json!(3);
    let (s, err) = gateway.post("/v1/chat/completions", Some(&key), bad).await;
    assert_error(s, &err, StatusCode::BAD_REQUEST, "invalid_request");

    let mut silent_req = request.clone();
    silent_req["model"] = json!("silent");
    let (s, err) = gateway
        .post("/v1/chat/completions", Some(&key), silent_req)
        .await;
    assert_error(s, &err, StatusCode::GATEWAY_TIMEOUT, "upstream_timeout");
    let mut down_req = request.clone();
    down_req["model"] = json!("down");
    let (s, err) = gateway
        .post("/v1/chat/completions", Some(&key), down_req)
        .await;
    assert_error(s, &err, StatusCode::BAD_GATEWAY, "upstream_unreachable");
    let _ = ADMIN_KEY;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_concurrency_limits_hold_on_model_calls_and_metrics_name_the_model() {
    let server = server_with_models(ServerConfig::default()).await;
    server.tenant_with_key("limited", "secret").await;
    let header = |h: &reqwest::header::HeaderMap, name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };

    // Tokens per minute: each generation takes its estimate (prompt + max_tokens) from the
    // bucket before it runs and gives back what it did not use; the headers say what is left.
    let (tpm, _) = server
        .key_with(
            "limited",
            json!({"kind": "secret", "limits": {"tokens_per_minute": 200}}),
        )
        .await;
    let chat = json!({
        "model": CHAT,
        "messages": [{"role": "user", "content": "Name a colour."}],
        "max_tokens": 8,
    });
    let mut remaining = Vec::new();
    let refused = loop {
        let (s, h, text) = server
            .send(
                Method::POST,
                "/v1/chat/completions",
                Some(&tpm),
                Some(chat.clone()),
                &[],
            )
            .await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            break (h, text);
        }
        assert_eq!(s, StatusCode::OK, "{text}");
        assert_eq!(
            header(&h, "x-ratelimit-limit-tokens").as_deref(),
            Some("200")
        );
        remaining.push(
            header(&h, "x-ratelimit-remaining-tokens")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no remaining-tokens header: {h:?}")),
        );
        assert!(header(&h, "x-ratelimit-reset-tokens").is_some(), "{h:?}");
        assert!(remaining.len() < 30, "never refused: {remaining:?}");
    };
    assert!(!remaining.is_empty());
    assert!(
        remaining.windows(2).all(|w| w[1] < w[0]),
        "remaining tokens do not fall: {remaining:?}"
    );
    let (h, text) = refused;
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_error(
        StatusCode::TOO_MANY_REQUESTS,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_exceeded",
    );
    assert_eq!(
        header(&h, "x-ratelimit-limit-tokens").as_deref(),
        Some("200")
    );
    assert!(header(&h, "retry-after").is_some(), "{h:?}");

    // Concurrent requests: one at a time for this key; a stream being answered holds the slot.
    let (one, _) = server
        .key_with(
            "limited",
            json!({"kind": "secret", "limits": {"concurrent_requests": 1}}),
        )
        .await;
    let long = json!({
        "model": CHAT,
        "messages": [{"role": "user", "content": "Tell me a very long story about a dragon."}],
        "max_tokens": 1500,
        "stream": true,
    });
    let mut stream = server
        .client
        .post(format!("{}/v1/chat/completions", server.base))
        .bearer_auth(&one)
        .json(&long)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(stream.chunk().await.unwrap().is_some());
    let (s, h, text) = server
        .send(Method::GET, "/v1/models", Some(&one), None, &[])
        .await;
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_error(
        s,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_exceeded",
    );
    assert!(header(&h, "retry-after").is_some(), "{h:?}");
    drop(stream);
    let started = Instant::now();
    loop {
        let (s, _) = server.get("/v1/models", Some(&one)).await;
        if s == StatusCode::OK {
            break;
        }
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the slot was not given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The operator's metrics count the generations under the model's name.
    let (s, _, metrics) = server
        .send(Method::GET, "/metrics", Some(ADMIN_KEY), None, &[])
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("marquee_http_requests_total{")
                && l.contains("route=\"/v1/chat/completions\"")
                && l.contains(&format!("model=\"{CHAT}\""))
                && l.contains("tenant=\"limited\"")),
        "no request count labelled with the model:\n{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("marquee_http_requests_total{")
                && l.contains("route=\"/v1/models\"")
                && l.contains("model=\"-\"")),
        "unbilled routes are not labelled `-`"
    );
}
