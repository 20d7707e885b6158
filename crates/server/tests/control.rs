//! What product teams control: filters, diversity, sessions, new items, trending.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn expression_and_category_filters() {
    let server = TestServer::start().await;
    let key = server.tenant_with_key("films", "secret").await;
    server.seed_films(&key).await;
    server
        .patch(
            "/v1/items/aliens",
            Some(&key),
            json!({"metadata": {"year": 1986, "studio": {"name": "Fox"}}}),
        )
        .await;
    server
        .patch(
            "/v1/items/t2",
            Some(&key),
            json!({"metadata": {"year": 1991}}),
        )
        .await;

    let f = encode("year >= 1980 AND NOT \"Horror\" IN categories");
    let (s, recs) = server
        .get(&format!("/v1/popular?n=8&filter={f}"), Some(&key))
        .await;
    assert_eq!(s, StatusCode::OK, "{recs}");
    let mut got = ids(&recs);
    got.sort();
    assert_eq!(got, ["aliens", "t2"]);

    let f = encode("studio.name = 'fox' OR title CONTAINS 'casino'");
    let (_, recs) = server
        .get(&format!("/v1/popular?n=8&filter={f}"), Some(&key))
        .await;
    let mut got = ids(&recs);
    got.sort();
    assert_eq!(got, ["aliens", "casino"]);

    // The same filter on the personal and context routes.
    let f = encode("year < 1990");
    let (_, recs) = server
        .get(&format!("/v1/recommend/eve?n=8&filter={f}"), Some(&key))
        .await;
    assert!(ids(&recs).iter().all(|i| i == "alien"), "{recs}");
    let (_, recs) = server
        .get(
            &format!("/recommend/eve/t2?n=8&exclude_seen=false&filter={f}"),
            Some(&key),
        )
        .await;
    assert!(
        ids(&recs)
            .iter()
            .all(|i| ["alien", "aliens"].contains(&i.as_str())),
        "{recs}"
    );

    // Categories: any (default) or all.
    let (_, recs) = server
        .get("/v1/popular?n=8&category=Horror,Comedy", Some(&key))
        .await;
    assert_eq!(ids(&recs).len(), 3, "{recs}");
    let (_, recs) = server
        .get(
            "/v1/popular?n=8&category=Sci-Fi,Horror&category_match=all",
            Some(&key),
        )
        .await;
    assert_eq!(ids(&recs), ["alien"]);

    // Bad expressions: 422 with the reason.
    for (expr, needle) in [
        ("year >=", "ends too early"),
        ("colour = 'red'", "colour"),
        ("(year > 1", ")"),
        ("year ~ 2", "unexpected"),
    ] {
        let (s, b) = server
            .get(
                &format!("/v1/recommend/ann?filter={}", encode(expr)),
                Some(&key),
            )
            .await;
        assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
        let msg = b["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("filter") && msg.contains(needle),
            "{expr}: {msg}"
        );
    }
    let long = encode(&format!("title = '{}'", "x".repeat(3000)));
    let (s, b) = server
        .get(&format!("/v1/popular?filter={long}"), Some(&key))
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let (s, b) = server
        .get("/v1/popular?category_match=some", Some(&key))
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
}

#[tokio::test]
async fn diversity_spreads_the_list_over_categories() {
    let server = TestServer::start().await;
    let key = server.tenant_with_key("films", "secret").await;
    // Ten action films watched by many, ten comedies by fewer.
    let mut items = Vec::new();
    for i in 0..10 {
        items.push(json!({"id": format!("act{i}"), "title": format!("Action {i}"), "categories": ["Action"]}));
        items.push(json!({"id": format!("com{i}"), "title": format!("Comedy {i}"), "categories": ["Comedy"]}));
    }
    server
        .post("/v1/items", Some(&key), Value::Array(items))
        .await;
    let mut events = Vec::new();
    for u in 0..20 {
        for i in 0..10 {
            events.push(
                json!({"user_id": format!("u{u}"), "item_id": format!("act{i}"), "type": "view"}),
            );
            if u < 10 {
                events.push(json!({"user_id": format!("u{u}"), "item_id": format!("com{i}"), "type": "view"}));
            }
        }
    }
    server
        .post("/v1/feedback", Some(&key), Value::Array(events))
        .await;
    server
        .post("/v1/models/train?wait=true", Some(&key), json!({}))
        .await;

    let count = |recs: &Value, cat: &str| {
        recs.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["categories"][0] == cat)
            .count()
    };
    let (_, plain) = server.get("/v1/popular?n=6", Some(&key)).await;
    assert_eq!(count(&plain, "Action"), 6, "{plain}");
    let (_, capped) = server
        .get("/v1/popular?n=6&max_per_category=3", Some(&key))
        .await;
    assert_eq!(
        (count(&capped, "Action"), count(&capped, "Comedy")),
        (3, 3),
        "{capped}"
    );
    let (_, mixed) = server
        .get("/v1/popular?n=6&diversity=0.7", Some(&key))
        .await;
    assert!(count(&mixed, "Comedy") >= 2, "{mixed}");
    assert_eq!(
        mixed[0]["item_id"], plain[0]["item_id"],
        "the most relevant item stays first"
    );
    let (s, b) = server.get("/v1/popular?diversity=1.5", Some(&key)).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let (s, b) = server
        .get("/v1/recommend/newbie?max_per_category=0", Some(&key))
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
}

#[tokio::test]
async fn exploration_gives_a_share_of_the_list_to_other_candidates() {
    let server = TestServer::start().await;
    let key = server.tenant_with_key("films", "secret").await;
    server.seed_films(&key).await;
    let (s, recs) = server
        .get("/v1/recommend/ann?n=2&exploration=0.5", Some(&key))
        .await;
    assert_eq!(s, StatusCode::OK, "{recs}");
    let kinds: Vec<&str> = recs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["because_you_engaged", "exploration"], "{recs}");
    let (_, plain) = server.get("/v1/recommend/ann?n=2", Some(&key)).await;
    assert_eq!(
        recs[0]["item_id"], plain[0]["item_id"],
        "the best item keeps its place"
    );
    assert_ne!(recs[1]["item_id"], plain[1]["item_id"]);
    let (s, b) = server
        .get("/v1/recommend/ann?exploration=0.9", Some(&key))
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
}

#[tokio::test]
async fn anonymous_sessions_get_recommendations() {
    let server = TestServer::start().await;
    let key = server.tenant_with_key("films", "secret").await;
    let publishable = server.key("films", "publishable").await;
    server.seed_films(&key).await;
    let (s, recs) = server
        .post(
            "/v1/recommend/session",
            Some(&publishable),
            json!({"items": ["heat", "amelie"], "n": 2}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{recs}");
    let got = ids(&recs);
    assert_eq!(got.len(), 2);
    assert!(
        got.iter()
            .all(|i| ["casino", "clueless"].contains(&i.as_str())),
        "{recs}"
    );
    assert_eq!(recs[0]["reason"]["kind"], "because_you_engaged");
    // Unknown items in a session are ignored; an empty session gets popular items.
    let (s, recs) = server
        .post(
            "/v1/recommend/session",
            Some(&key),
            json!({"items": ["nope"], "n": 3, "category": ["Crime"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        recs.as_array()
            .unwrap()
            .iter()
            .all(|r| r["reason"]["kind"] == "popular")
    );
    let (s, b) = server
        .post("/v1/recommend/session", Some(&key), json!({"n": 3}))
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let (s, b) = server
        .post(
            "/v1/recommend/session",
            Some(&key),
            json!({"items": ["a\u{0}b"]}),
        )
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
}

#[tokio::test]
async fn a_new_item_is_recommendable_at_once_through_its_content() {
    let server = TestServer::start().await;
    let key = server.tenant_with_key("films", "secret").await;
    server.seed_films(&key).await;
    // Added after training, with no feedback at all.
    let (s, _) = server
        .put(
            "/v1/items/alien3",
            Some(&key),
            json!({"title": "Alien 3", "categories": ["Sci-Fi", "Horror"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, recs) = server.get("/v1/recommend/ann?n=3", Some(&key)).await;
    let new = recs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["item_id"] == "alien3")
        .unwrap_or_else(|| panic!("not proposed: {recs}"));
    assert_eq!(new["reason"]["kind"], "new_item");
    // A crime fan does not get it.
    let (_, recs) = server.get("/v1/recommend/cat?n=3", Some(&key)).await;
    assert!(!ids(&recs).contains(&"alien3".to_string()), "{recs}");
    // Similar items fall back on content for it.
    let (s, sim) = server.get("/v1/items/alien3/similar?n=2", Some(&key)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(sim[0]["item_id"], "alien", "{sim}");
    // With feedback it is popular before any retraining.
    server
        .post(
            "/v1/feedback",
            Some(&key),
            json!([
                {"user_id": "x1", "item_id": "alien3", "type": "view"},
                {"user_id": "x2", "item_id": "alien3", "type": "view"},
                {"user_id": "x3", "item_id": "alien3", "type": "view"},
                {"user_id": "x4", "item_id": "alien3", "type": "view"}
            ]),
        )
        .await;
    let (_, pop) = server.get("/v1/popular?n=3", Some(&key)).await;
    assert!(ids(&pop).contains(&"alien3".to_string()), "{pop}");
}

#[tokio::test]
async fn trending_follows_the_latest_week() {
    let server = TestServer::start().await;
    let key = server.tenant_with_key("films", "secret").await;
    server.seed_films(&key).await;
    let week = 7 * 24 * 3600;
    let now = 1_800_000_000i64;
    let mut events = Vec::new();
    // heat: steady (4 a week for a month, 4 this week); clueless: a jump this week.
    for u in 0..16 {
        events.push(json!({"user_id": format!("old{u}"), "item_id": "heat", "type": "view", "timestamp": now - 2 * week - u}));
    }
    for u in 0..4 {
        events.push(json!({"user_id": format!("new{u}"), "item_id": "heat", "type": "view", "timestamp": now - u}));
    }
    for u in 0..8 {
        events.push(json!({"user_id": format!("hot{u}"), "item_id": "clueless", "type": "view", "timestamp": now - u}));
    }
    server
        .post("/v1/feedback", Some(&key), Value::Array(events))
        .await;
    let (s, trending) = server.get("/v1/trending?n=3", Some(&key)).await;
    assert_eq!(s, StatusCode::OK, "{trending}");
    assert_eq!(trending[0]["item_id"], "clueless", "{trending}");
    assert_eq!(trending[0]["reason"]["kind"], "trending");
    assert!(
        !ids(&trending).contains(&"heat".to_string()),
        "steady is not trending: {trending}"
    );
}

#[tokio::test]
async fn experiments_bucket_users_and_attribute_feedback() {
    let server = TestServer::start().await;
    let key = server.tenant_with_key("films", "secret").await;
    let publishable = server.key("films", "publishable").await;
    server.seed_films(&key).await;

    let (s, b) = server
        .post(
            "/v1/experiments",
            Some(&key),
            json!({"name": "one", "variants": [{"name": "a", "share": 1}]}),
        )
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let (s, b) = server.post("/v1/experiments", Some(&key), json!({"name": "neg", "variants": [{"name": "a", "share": 1}, {"name": "b", "share": -1}]})).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let (s, b) = server.post("/v1/experiments", Some(&key), json!({"name": "bad", "variants": [{"name": "a", "share": 1}, {"name": "b", "share": 1, "model": {"algorithm": "ease", "lambda": 0}}]})).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let (s, b) = server
        .post(
            "/v1/experiments",
            Some(&publishable),
            json!({"name": "x", "variants": []}),
        )
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "missing_scope");

    let (s, exp) = server
        .post(
            "/v1/experiments",
            Some(&key),
            json!({"name": "knn vs default", "variants": [
                {"name": "control", "share": 1},
                {"name": "knn", "share": 1, "model": {"algorithm": "item_knn", "neighbors": 20, "shrinkage": 0}}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{exp}");
    let id = exp["id"].as_str().unwrap().to_string();
    let (s, b) = server.post("/v1/experiments", Some(&key), json!({"name": "second", "variants": [{"name": "a", "share": 1}, {"name": "b", "share": 1}]})).await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");

    // Many users, each always in the same variant; every list names its variant and id.
    let mut variant_of = std::collections::HashMap::new();
    let mut lists = Vec::new();
    for u in 0..40 {
        let user = format!("viewer{u}");
        for _ in 0..2 {
            let (s, recs) = server
                .get(&format!("/v1/recommend/{user}?n=2"), Some(&publishable))
                .await;
            assert_eq!(s, StatusCode::OK);
            let v = recs[0]["variant"].as_str().unwrap().to_string();
            assert_eq!(
                variant_of.entry(user.clone()).or_insert(v.clone()),
                &v,
                "stable bucket"
            );
            let rid = recs[0]["recommendation_id"].as_str().unwrap().to_string();
            assert!(rid.contains(&id), "{rid}");
            assert!(
                recs.as_array()
                    .unwrap()
                    .iter()
                    .all(|r| r["recommendation_id"] == rid)
            );
            lists.push((
                user.clone(),
                v,
                rid,
                recs[0]["item_id"].as_str().unwrap().to_string(),
            ));
        }
    }
    let knn_users = variant_of.values().filter(|v| *v == "knn").count();
    assert!(
        (8..=32).contains(&knn_users),
        "both variants get users: {knn_users}"
    );

    // Clicks: every "knn" list is clicked, one "control" list in four; one conversion in knn.
    let mut events = Vec::new();
    let mut clicked = 0;
    for (n, (user, v, rid, item)) in lists.iter().enumerate() {
        if v == "knn" || n % 4 == 0 {
            events.push(json!({"user_id": user, "item_id": item, "type": "click", "recommendation_id": rid}));
            // A second click on the same list counts once.
            events.push(
                json!({"user_id": user, "item_id": item, "type": "view", "recommendation_id": rid}),
            );
            if v == "knn" {
                clicked += 1;
            }
        }
    }
    let (user, _, rid, item) = lists.iter().find(|l| l.1 == "knn").unwrap();
    events.push(
        json!({"user_id": user, "item_id": item, "type": "purchase", "recommendation_id": rid}),
    );
    let (s, b) = server
        .post(
            "/v1/feedback",
            Some(&publishable),
            Value::Array(events.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Retried: counted once.
    server
        .post("/v1/feedback", Some(&publishable), Value::Array(events))
        .await;

    let (s, results) = server
        .get(&format!("/v1/experiments/{id}/results"), Some(&key))
        .await;
    assert_eq!(s, StatusCode::OK, "{results}");
    let control = &results["variants"][0];
    let knn = &results["variants"][1];
    assert_eq!(
        control["impressions"].as_u64().unwrap() + knn["impressions"].as_u64().unwrap(),
        80
    );
    assert_eq!(knn["clicks"].as_u64().unwrap(), clicked);
    assert_eq!(
        knn["impressions"].as_u64().unwrap(),
        clicked,
        "every knn list was clicked"
    );
    assert_eq!(knn["ctr"].as_f64().unwrap(), 1.0);
    assert_eq!(knn["conversions"], 1);
    assert!(control["ctr"].as_f64().unwrap() < 0.5);
    assert!(knn["ctr_p_value"].as_f64().unwrap() < 0.01, "{results}");
    assert!(control["ctr_p_value"].is_null());

    // A recommendation_id that is not ours is refused with its index.
    let (s, b) = server.post("/v1/feedback", Some(&key), json!([{"user_id": "u", "item_id": "heat", "type": "click", "recommendation_id": "forged"}])).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_batch");

    let (s, list) = server.get("/v1/experiments", Some(&key)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["experiments"][0]["status"], "running");
    let (s, stopped) = server
        .post(&format!("/v1/experiments/{id}/stop"), Some(&key), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{stopped}");
    assert_eq!(stopped["status"], "stopped");
    let (s, b) = server
        .post(&format!("/v1/experiments/{id}/stop"), Some(&key), json!({}))
        .await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    let (_, recs) = server.get("/v1/recommend/viewer1", Some(&key)).await;
    assert!(recs[0]["variant"].is_null());
    // Results stay readable, with the impressions flushed at stop.
    let (_, after) = server
        .get(&format!("/v1/experiments/{id}/results"), Some(&key))
        .await;
    assert_eq!(after["variants"][1]["clicks"], knn["clicks"]);
    let total: u64 = after["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["impressions"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 80);
    let (s, b) = server
        .get("/v1/experiments/exp_nothing/results", Some(&key))
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
}

/// `../shared/data` beside the repository (or `MARQUEE_SHARED_DATA`).
fn shared_data() -> std::path::PathBuf {
    let dir = std::env::var_os("MARQUEE_SHARED_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
        });
    assert!(
        dir.join("ml-100k/u.data").exists(),
        "the shared datasets are missing at {}",
        dir.display()
    );
    dir
}

/// Imports ML-100K (items and ratings) into a new tenant `ml`; returns a secret key of it.
async fn import_ml100k(server: &TestServer) -> String {
    let key = server.tenant_with_key("ml", "secret").await;
    let tenant = server.service.tenant_by_name("ml").unwrap();
    let data = marquee_core::import::movielens_dir(&shared_data().join("ml-100k")).unwrap();
    server
        .service
        .import(&tenant, data.items, data.feedback, &|_| {})
        .await
        .unwrap();
    key
}

#[tokio::test]
async fn feedback_reshapes_the_next_list_within_a_second_without_retraining() {
    let server = TestServer::start().await;
    let key = import_ml100k(&server).await;
    let (s, trained) = server
        .post("/v1/models/train?wait=true", Some(&key), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{trained}");
    let version = trained["model"]["version"].as_i64().unwrap();

    // A newcomer watches five horror films.
    let horror = ["184", "200", "201", "218", "219"]; // Army of Darkness, The Shining, Evil Dead II, Cape Fear, A Nightmare on Elm Street
    let (_, before) = server.get("/v1/recommend/newcomer?n=10", Some(&key)).await;
    let started = std::time::Instant::now();
    let events: Vec<Value> = horror
        .iter()
        .map(|i| json!({"user_id": "newcomer", "item_id": i, "type": "like"}))
        .collect();
    let (s, b) = server
        .post("/v1/feedback", Some(&key), Value::Array(events))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, after) = server.get("/v1/recommend/newcomer?n=10", Some(&key)).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < std::time::Duration::from_secs(1),
        "took {elapsed:?}"
    );
    assert_ne!(ids(&before), ids(&after));
    let horror_count = |list: &Value| {
        list.as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["categories"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("Horror"))
            })
            .count()
    };
    assert!(horror_count(&after) >= 5, "mostly horror now: {after}");
    assert!(horror_count(&before) <= 1);
    assert_eq!(after[0]["reason"]["kind"], "because_you_engaged");
    assert!(
        after
            .as_array()
            .unwrap()
            .iter()
            .all(|r| !horror.contains(&r["item_id"].as_str().unwrap()))
    );
    let (_, status) = server.get("/v1/training", Some(&key)).await;
    assert_eq!(
        status["current"]["version"].as_i64().unwrap(),
        version,
        "no retraining happened"
    );
}

#[tokio::test]
async fn the_first_model_is_tuned_in_the_background() {
    let server = TestServer::start_full(
        marquee_server::ServerConfig::default(),
        marquee_core::ServiceConfig {
            poll_interval_secs: 0.2,
            ..marquee_core::ServiceConfig::default()
        },
    )
    .await;
    let key = import_ml100k(&server).await;
    let tenant = server.service.tenant_by_name("ml").unwrap();
    // The background trains a first model, then tunes; wait for the tuning to settle.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    use std::sync::atomic::Ordering::Acquire;
    while !tenant.tuned.load(Acquire) || tenant.training.load(Acquire) {
        assert!(
            std::time::Instant::now() < deadline,
            "tuning did not finish"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let chosen = tenant
        .preferred_config
        .lock()
        .clone()
        .expect("a configuration was chosen");
    let (_, status) = server.get("/v1/training", Some(&key)).await;
    assert_eq!(
        status["current"]["algorithm"],
        serde_json::to_value(&chosen).unwrap(),
        "{status}"
    );
    let versions = status["versions"].as_array().unwrap();
    assert!(!versions.is_empty() && versions.len() <= 2, "{status}");
    // A retrain without a configuration keeps the tuned one.
    let (s, b) = server
        .post("/v1/models/train?wait=true", Some(&key), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b["model"]["algorithm"],
        serde_json::to_value(&chosen).unwrap()
    );
}

#[tokio::test]
async fn an_experiment_can_pit_a_kept_model_version_against_the_current_one() {
    let server = TestServer::start().await;
    let key = server.tenant_with_key("films", "secret").await;
    server.seed_films(&key).await; // version 1
    let (s, b) = server
        .post(
            "/v1/models/train?wait=true",
            Some(&key),
            json!({"model": {"algorithm": "item_knn", "neighbors": 5, "shrinkage": 0}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = server
        .post("/v1/experiments", Some(&key), json!({"name": "old vs new", "variants": [{"name": "current", "share": 1}, {"name": "v9", "share": 1, "model_version": 9}]}))
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("not kept"),
        "{b}"
    );
    let (s, exp) = server
        .post("/v1/experiments", Some(&key), json!({"name": "old vs new", "variants": [{"name": "current", "share": 1}, {"name": "v1", "share": 1, "model_version": 1}]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{exp}");
    let tenant = server.service.tenant_by_name("films").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(m) = tenant.variant_models.read().get(&1) {
            assert_eq!(m.info.version, 1);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the kept version was not loaded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut seen = std::collections::HashSet::new();
    for u in 0..20 {
        let (s, recs) = server
            .get(&format!("/v1/recommend/x{u}?n=1"), Some(&key))
            .await;
        assert_eq!(s, StatusCode::OK);
        seen.insert(recs[0]["variant"].as_str().unwrap().to_string());
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
}

/// A server with ML-100K imported and an iALS model trained (the same model for the same
/// data: training is deterministic), serving large catalogues from `ann_min_items` items on.
async fn ml100k_on_ials(ann_min_items: usize) -> (TestServer, String) {
    let server = TestServer::start_full(
        marquee_server::ServerConfig::default(),
        marquee_core::ServiceConfig {
            auto_tune: false,
            ann_min_items,
            ..marquee_core::ServiceConfig::default()
        },
    )
    .await;
    let key = import_ml100k(&server).await;
    let (s, b) = server
        .post(
            "/v1/models/train?wait=true",
            Some(&key),
            json!({"model": {"algorithm": "ials", "factors": 32, "regularization": 10.0,
                             "alpha": 10.0, "iterations": 6, "seed": 3}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    (server, key)
}

#[tokio::test]
async fn large_factor_models_are_served_from_an_approximate_index() {
    // ML-100K has 1,682 films: with the threshold at 1,000 items its model gets an index.
    let ((approx, akey), (exact, ekey)) = tokio::join!(ml100k_on_ials(1_000), ml100k_on_ials(0));
    let (_, status) = exact.get("/v1/training", Some(&ekey)).await;
    assert_eq!(status["ranking"], "exact", "{status}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, status) = approx.get("/v1/training", Some(&akey)).await;
        if status["ranking"] == "approximate" {
            break;
        }
        assert_eq!(status["ranking"], "indexing", "{status}");
        assert!(
            std::time::Instant::now() < deadline,
            "the index was not built"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // The same users' lists from the index and from the exact scan: nearly the same items,
    // never one the user has seen, and filters still hold.
    let (mut found, mut total) = (0usize, 0usize);
    for user in 1..=100 {
        let path = format!("/v1/recommend/{user}?n=10");
        let (s, a) = approx.get(&path, Some(&akey)).await;
        assert_eq!(s, StatusCode::OK, "{a}");
        let (_, e) = exact.get(&path, Some(&ekey)).await;
        let (a, e) = (ids(&a), ids(&e));
        assert_eq!(a.len(), 10);
        let (_, seen) = approx
            .get(
                &format!("/v1/users/{user}/feedback?limit=1000"),
                Some(&akey),
            )
            .await;
        let seen: Vec<&str> = seen["feedback"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["item_id"].as_str().unwrap())
            .collect();
        assert!(!seen.is_empty());
        assert!(a.iter().all(|i| !seen.contains(&i.as_str())), "user {user}");
        found += a.iter().filter(|i| e.contains(i)).count();
        total += e.len();
    }
    let recall = found as f64 / total as f64;
    assert!(
        recall >= 0.95,
        "recall@10 against the exact lists: {recall}"
    );

    let (s, horror) = approx
        .get("/v1/recommend/7?n=10&category=Horror", Some(&akey))
        .await;
    assert_eq!(s, StatusCode::OK, "{horror}");
    let (_, horror_exact) = exact
        .get("/v1/recommend/7?n=10&category=Horror", Some(&ekey))
        .await;
    assert_eq!(ids(&horror).len(), 10);
    let overlap = ids(&horror)
        .iter()
        .filter(|i| ids(&horror_exact).contains(i))
        .count();
    assert!(overlap >= 8, "{horror} vs {horror_exact}");
    for item in horror.as_array().unwrap() {
        let (_, it) = approx
            .get(
                &format!("/v1/items/{}", item["item_id"].as_str().unwrap()),
                Some(&akey),
            )
            .await;
        assert!(
            it["categories"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == "Horror"),
            "{it}"
        );
    }
}
