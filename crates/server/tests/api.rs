//! The HTTP API end to end: a real server on an ephemeral port, driven over HTTP.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn health_answers_without_a_key_and_readiness_reports_models() {
    let server = TestServer::start().await;
    let (s, b) = server.get("/healthz", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["status"], "ok");
    let (s, b) = server.get("/readyz", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["store"], "ok");

    let key = server.tenant_with_key("films", "secret").await;
    server.seed_films(&key).await;
    let (s, b) = server.get("/readyz", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Without the operator key, tenants (customers) are only counted.
    assert_eq!(
        b["recommenders"],
        json!({"tenants": 1, "not_ready": 0}),
        "{b}"
    );
    assert!(!b.to_string().contains("films"), "{b}");
    let (s, b) = server.get("/readyz", Some(ADMIN_KEY)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let films = b["recommenders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "films")
        .unwrap()
        .clone();
    assert!(films["model_version"].as_i64().unwrap() >= 1, "{b}");
}

#[tokio::test]
async fn every_tenant_route_needs_a_key() {
    let server = TestServer::start().await;
    let routes: &[(Method, &str)] = &[
        (Method::GET, "/v1/items"),
        (Method::POST, "/v1/items"),
        (Method::GET, "/v1/items/x"),
        (Method::PUT, "/v1/items/x"),
        (Method::PATCH, "/v1/items/x"),
        (Method::DELETE, "/v1/items/x"),
        (Method::GET, "/v1/items/x/similar"),
        (Method::GET, "/v1/users"),
        (Method::POST, "/v1/users"),
        (Method::GET, "/v1/users/u"),
        (Method::PUT, "/v1/users/u"),
        (Method::PATCH, "/v1/users/u"),
        (Method::DELETE, "/v1/users/u"),
        (Method::GET, "/v1/users/u/feedback"),
        (Method::POST, "/v1/feedback"),
        (Method::GET, "/v1/recommend/u"),
        (Method::GET, "/v1/recommend/u/x"),
        (Method::GET, "/recommend/u/x"),
        (Method::GET, "/v1/popular"),
        (Method::GET, "/v1/trending"),
        (Method::POST, "/v1/recommend/session"),
        (Method::POST, "/v1/experiments"),
        (Method::GET, "/v1/experiments"),
        (Method::GET, "/v1/experiments/exp_1"),
        (Method::POST, "/v1/experiments/exp_1/stop"),
        (Method::GET, "/v1/experiments/exp_1/results"),
        (Method::POST, "/v1/models/train"),
        (Method::GET, "/v1/training"),
        (Method::GET, "/v1/admin/tenants"),
        (Method::POST, "/v1/admin/tenants"),
        (Method::GET, "/v1/admin/tenants/t/keys"),
        (Method::POST, "/v1/admin/tenants/t/keys"),
        (Method::DELETE, "/v1/admin/keys/key_1"),
    ];
    for (method, path) in routes {
        let body = matches!(*method, Method::POST | Method::PUT | Method::PATCH).then(|| json!({}));
        for key in [None, Some("mq_sk_not_a_real_key_at_all_0000000000000000")] {
            let (s, b) = server.call(method.clone(), path, key, body.clone()).await;
            assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthorized");
        }
    }
    // A malformed Authorization header is refused the same way.
    let resp = server
        .client
        .get(format!("{}/v1/items", server.base))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn keys_work_as_bearer_or_x_api_key_and_stop_working_when_revoked() {
    let server = TestServer::start().await;
    server.tenant_with_key("shop", "secret").await;
    let (s, created) = server
        .post(
            "/v1/admin/tenants/shop/keys",
            Some(ADMIN_KEY),
            json!({"kind": "secret", "name": "backend"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with("mq_sk_"));
    assert_eq!(created["name"], "backend");

    let (s, _) = server.get("/v1/items", Some(key)).await;
    assert_eq!(s, StatusCode::OK);
    let resp = server
        .client
        .get(format!("{}/v1/items", server.base))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // Listing shows the key without its secret.
    let (s, list) = server
        .get("/v1/admin/tenants/shop/keys", Some(ADMIN_KEY))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(!list.to_string().contains(key));
    let id = created["id"].as_str().unwrap();
    assert!(
        list["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == id)
    );

    let (s, _) = server
        .delete(&format!("/v1/admin/keys/{id}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = server.get("/v1/items", Some(key)).await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthorized");
    let (s, b) = server
        .delete(&format!("/v1/admin/keys/{id}"), Some(ADMIN_KEY))
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn key_kinds_limit_what_a_key_may_do() {
    let server = TestServer::start().await;
    let secret = server.tenant_with_key("films", "secret").await;
    let publishable = server.key("films", "publishable").await;
    let tenant_admin = server.key("films", "admin").await;
    assert!(publishable.starts_with("mq_pk_"));
    server.seed_films(&secret).await;

    // Publishable: recommend and feedback only.
    let (s, _) = server.get("/v1/recommend/ann", Some(&publishable)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = server.get("/recommend/ann/alien", Some(&publishable)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = server
        .post(
            "/v1/feedback",
            Some(&publishable),
            json!([{"user_id": "zed", "item_id": "heat", "type": "like"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for (method, path) in [
        (Method::GET, "/v1/items"),
        (Method::GET, "/v1/users/ann"),
        (Method::DELETE, "/v1/items/heat"),
        (Method::POST, "/v1/models/train"),
    ] {
        let body = (method == Method::POST).then(|| json!({}));
        let (s, b) = server.call(method, path, Some(&publishable), body).await;
        assert_error(s, &b, StatusCode::FORBIDDEN, "missing_scope");
    }
    let (s, b) = server
        .put("/v1/items/new", Some(&publishable), json!({"title": "New"}))
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "missing_scope");

    // Secret: everything in its tenant but keys and tenants.
    let (s, b) = server
        .post(
            "/v1/admin/tenants/films/keys",
            Some(&secret),
            json!({"kind": "secret"}),
        )
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "missing_scope");
    let (s, b) = server
        .post("/v1/admin/tenants", Some(&secret), json!({"name": "other"}))
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");

    // Tenant admin: its own tenant's keys, nobody else's, and no tenants.
    let (s, b) = server
        .post(
            "/v1/admin/tenants/films/keys",
            Some(&tenant_admin),
            json!({"kind": "publishable"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    server.tenant_with_key("music", "secret").await;
    let (s, b) = server
        .post(
            "/v1/admin/tenants/music/keys",
            Some(&tenant_admin),
            json!({"kind": "secret"}),
        )
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = server.get("/v1/admin/tenants", Some(&tenant_admin)).await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");

    // The operator key is not a tenant key.
    let (s, b) = server.get("/v1/items", Some(ADMIN_KEY)).await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, b) = server.get("/v1/admin/tenants", Some(ADMIN_KEY)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["tenants"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn tenants_are_validated_and_unique() {
    let server = TestServer::start().await;
    let (s, _) = server
        .post(
            "/v1/admin/tenants",
            Some(ADMIN_KEY),
            json!({"name": "acme"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, b) = server
        .post(
            "/v1/admin/tenants",
            Some(ADMIN_KEY),
            json!({"name": "acme"}),
        )
        .await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    let (s, b) = server
        .post(
            "/v1/admin/tenants",
            Some(ADMIN_KEY),
            json!({"name": "no spaces"}),
        )
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let (s, b) = server
        .post(
            "/v1/admin/tenants/acme/keys",
            Some(ADMIN_KEY),
            json!({"kind": "root"}),
        )
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("kind"),
        "{b}"
    );
    let (s, b) = server
        .post(
            "/v1/admin/tenants/nobody/keys",
            Some(ADMIN_KEY),
            json!({"kind": "secret"}),
        )
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn items_can_be_created_read_updated_listed_and_deleted() {
    let server = TestServer::start().await;
    let key = server.tenant_with_key("films", "secret").await;
    let item = json!({
        "title": "Heat", "categories": ["Crime", "Drama"], "tags": ["heist"],
        "description": "A group of professional bank robbers…", "metadata": {"year": 1995, "director": "Michael Mann"},
        "published_at": "1995-12-15T00:00:00Z", "hidden": false
    });
    let (s, created) = server.put("/v1/items/heat", Some(&key), item.clone()).await;
    assert_eq!(s, StatusCode::OK, "{created}");
    let (s, got) = server.get("/v1/items/heat", Some(&key)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["title"], "Heat");
    assert_eq!(got["metadata"]["director"], "Michael Mann");
    assert_eq!(got["published_at"], "1995-12-15T00:00:00Z");

    // Idempotent: the same write leaves the same state.
    let (s, _) = server.put("/v1/items/heat", Some(&key), item).await;
    assert_eq!(s, StatusCode::OK);
    let (_, again) = server.get("/v1/items/heat", Some(&key)).await;
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("updated_at");
        v
    };
    assert_eq!(strip(again), strip(got));

    // PATCH changes only the given fields; null clears.
    let (s, patched) = server
        .patch(
            "/v1/items/heat",
            Some(&key),
            json!({"tags": ["heist", "la"], "description": null}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(patched["tags"], json!(["heist", "la"]));
    assert_eq!(patched["description"], Value::Null);
    assert_eq!(patched["title"], "Heat");

    // Cursor pagination over a batch upsert.
    let batch: Vec<Value> = (0..25)
        .map(|i| json!({"id": format!("film-{i:02}"), "title": format!("Film {i}")}))
        .collect();
    let (s, b) = server
        .post("/v1/items", Some(&key), Value::Array(batch))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["upserted"], 25);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/items?limit=10&cursor={c}"),
            None => "/v1/items?limit=10".to_string(),
        };
        let (s, page) = server.get(&path, Some(&key)).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 26);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "pages are ordered and disjoint");

    let (s, _) = server.delete("/v1/items/heat", Some(&key)).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = server.get("/v1/items/heat", Some(&key)).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = server.delete("/v1/items/heat", Some(&key)).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn users_and_their_feedback() {
    let server = TestServer::start().await;
    let key = server.tenant_with_key("films", "secret").await;
    server.seed_films(&key).await;
    let (s, u) = server
        .put(
            "/v1/users/ann",
            Some(&key),
            json!({"attributes": {"country": "FR", "plan": "premium"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    let (s, u) = server
        .patch(
            "/v1/users/ann",
            Some(&key),
            json!({"attributes": {"plan": null, "age": 31}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["attributes"], json!({"country": "FR", "age": 31}));
    let (s, list) = server.get("/v1/users?limit=2", Some(&key)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["users"].as_array().unwrap().len(), 2);
    assert!(list["next_cursor"].is_string());
    let (s, b) = server
        .post(
            "/v1/users",
            Some(&key),
            json!([{"id": "fay", "attributes": {"a": 1}}, {"id": "gus"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let (s, fb) = server.get("/v1/users/ann/feedback", Some(&key)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(fb["feedback"].as_array().unwrap().len(), 3);
    assert_eq!(
        fb["feedback"][0]["item_id"], "terminator",
        "newest first: {fb}"
    );

    // Deleting a user erases them and their feedback; the id then is unknown.
    let (s, erased) = server.delete("/v1/users/ann", Some(&key)).await;
    assert_eq!(s, StatusCode::OK, "{erased}");
    assert_eq!(erased["user_id"], "ann");
    assert!(erased["events_deleted"].as_u64().unwrap() >= 1, "{erased}");
    let (s, b) = server.get("/v1/users/ann", Some(&key)).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = server.get("/v1/users/ann/feedback", Some(&key)).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let rows = server
        .service
        .store()
        .all_feedback(server.service.tenant_by_name("films").unwrap().id)
        .await
        .unwrap();
    assert!(rows.iter().all(|f| f.user_id != "ann"));
    // …and ann is a cold-start user again: popular items, nothing personal.
    let (s, recs) = server.get("/v1/recommend/ann", Some(&key)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        recs.as_array()
            .unwrap()
            .iter()
            .all(|r| r["reason"]["kind"] == "popular"),
        "{recs}"
    );
}

#[tokio::test]
async fn feedback_batches_are_all_or_nothing_and_idempotent() {
    let server = TestServer::start().await;
    let key = server.tenant_with_key("films", "secret").await;
    server.seed_films(&key).await;
    let tenant = server.service.tenant_by_name("films").unwrap();
    let count = || async {
        server
            .service
            .store()
            .count_feedback(tenant.id)
            .await
            .unwrap()
    };
    let before = count().await;

    // One bad event (index 2: unknown item) → 422 naming it, nothing applied.
    let batch = json!([
        {"user_id": "new1", "item_id": "heat", "type": "view"},
        {"user_id": "new1", "item_id": "casino", "type": "like", "value": 1},
        {"user_id": "new1", "item_id": "no-such-film", "type": "view"}
    ]);
    let (s, b) = server.post("/v1/feedback", Some(&key), batch).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_batch");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("element 2"),
        "{b}"
    );
    assert_eq!(count().await, before);
    let (s, _) = server.get("/v1/users/new1", Some(&key)).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "the user of a refused batch is not created"
    );

    // Wrong type in element 1 → 422 naming the element and the field.
    let (s, b) = server.post("/v1/feedback", Some(&key), json!([{"user_id": "a", "item_id": "heat", "type": "view"}, {"user_id": "a", "item_id": "heat", "type": "view", "value": "high"}])).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_batch");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(msg.contains("element 1") && msg.contains("value"), "{b}");
    // Unknown field → 422 naming it.
    let (s, b) = server
        .post(
            "/v1/feedback",
            Some(&key),
            json!([{"user_id": "a", "item_id": "heat", "type": "view", "colour": "red"}]),
        )
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_batch");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("colour"),
        "{b}"
    );
    assert_eq!(count().await, before);

    // A good batch, sent twice: the same state.
    let good = json!([
        {"user_id": "new1", "item_id": "heat", "type": "view", "timestamp": "2024-01-01T10:00:00Z"},
        {"user_id": "new1", "item_id": "casino", "type": "rating", "value": 4.5, "timestamp": 1704103200}
    ]);
    let (s, b) = server.post("/v1/feedback", Some(&key), good.clone()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["accepted"], 2);
    assert_eq!(count().await, before + 2);
    let (s, _) = server.post("/v1/feedback", Some(&key), good).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(count().await, before + 2);

    // Over the batch limit → 422.
    let big: Vec<Value> = (0..10_001)
        .map(|i| json!({"user_id": format!("u{i}"), "item_id": "heat", "type": "view"}))
        .collect();
    let (s, b) = server
        .post("/v1/feedback", Some(&key), Value::Array(big))
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    // Exactly the limit is fine.
    let full: Vec<Value> = (0..10_000)
        .map(|i| json!({"user_id": format!("bulk{i}"), "item_id": "heat", "type": "view"}))
        .collect();
    let (s, b) = server
        .post("/v1/feedback", Some(&key), Value::Array(full))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(count().await, before + 2 + 10_000);
}

#[tokio::test]
async fn recommendations_exclude_seen_items_explain_themselves_and_follow_the_context() {
    let server = TestServer::start().await;
    let key = server.tenant_with_key("films", "secret").await;
    server.seed_films(&key).await;

    let (s, recs) = server.get("/v1/recommend/ann?n=3", Some(&key)).await;
    assert_eq!(s, StatusCode::OK, "{recs}");
    let got = ids(&recs);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], "t2", "the film her neighbours watched: {recs}");
    for seen in ["alien", "aliens", "terminator"] {
        assert!(!got.contains(&seen.to_string()));
    }
    let first = &recs[0];
    assert!(first["title"].is_string() && first["score"].is_number());
    assert_eq!(first["reason"]["kind"], "because_you_engaged");
    assert!(
        first["reason"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| ["alien", "aliens", "terminator"].contains(&i.as_str().unwrap()))
    );

    // The spec's route: a JSON array of items with item_id, title, score, reason.
    let (s, recs) = server.get("/recommend/cat/heat", Some(&key)).await;
    assert_eq!(s, StatusCode::OK);
    let arr = recs.as_array().unwrap();
    assert!(!arr.is_empty());
    for r in arr {
        for field in ["item_id", "title", "score", "reason"] {
            assert!(!r[field].is_null(), "{field} missing in {r}");
        }
        assert_ne!(r["item_id"], "heat", "the context item is not recommended");
        assert!(
            !["heat", "casino", "amelie"].contains(&r["item_id"].as_str().unwrap()),
            "seen items are excluded"
        );
    }
    assert_eq!(arr[0]["item_id"], "clueless");
    let (s, v1) = server.get("/v1/recommend/cat/heat", Some(&key)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&v1), ids(&recs));

    // Unknown user: popular items (or the context's neighbours), not an error.
    let (s, recs) = server.get("/v1/recommend/stranger?n=4", Some(&key)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(recs.as_array().unwrap().len(), 4);
    assert!(
        recs.as_array()
            .unwrap()
            .iter()
            .all(|r| r["reason"]["kind"] == "popular")
    );
    let (s, recs) = server
        .get("/recommend/stranger/alien?n=2", Some(&key))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(recs[0]["reason"]["kind"], "similar_to_context", "{recs}");
    assert!(["aliens", "terminator", "t2"].contains(&recs[0]["item_id"].as_str().unwrap()));

    // Unknown context item: 404.
    let (s, b) = server.get("/recommend/ann/no-such-film", Some(&key)).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");

    // Filters: category, exclude, exclude_seen.
    let (s, recs) = server
        .get("/v1/recommend/ann?category=comedy", Some(&key))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        recs.as_array().unwrap().iter().all(|r| r["categories"]
            .as_array()
            .unwrap()
            .contains(&json!("Comedy"))),
        "{recs}"
    );
    let (_, recs) = server.get("/v1/recommend/ann?exclude=t2", Some(&key)).await;
    assert!(!ids(&recs).contains(&"t2".to_string()));
    let (_, recs) = server
        .get("/v1/recommend/ann?exclude_seen=false&n=8", Some(&key))
        .await;
    assert!(ids(&recs).contains(&"alien".to_string()), "{recs}");

    // Similar and popular.
    let (s, sim) = server
        .get("/v1/items/terminator/similar?n=3", Some(&key))
        .await;
    assert_eq!(s, StatusCode::OK);
    let sim_ids = ids(&sim);
    assert!(
        sim_ids
            .iter()
            .all(|i| ["alien", "aliens", "t2"].contains(&i.as_str())),
        "{sim}"
    );
    assert_eq!(sim[0]["reason"]["kind"], "similar_item");
    let (s, b) = server.get("/v1/items/nothing/similar", Some(&key)).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, pop) = server.get("/v1/popular?n=2", Some(&key)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(pop.as_array().unwrap().len(), 2);
    assert_eq!(pop[0]["reason"]["kind"], "popular");
    let (_, pop) = server.get("/v1/popular?category=Crime", Some(&key)).await;
    assert_eq!(ids(&pop).len(), 2);
}

#[tokio::test]
async fn feedback_and_hiding_take_effect_at_once() {
    let server = TestServer::start().await;
    let key = server.tenant_with_key("films", "secret").await;
    server.seed_films(&key).await;

    // A newcomer who watches crime films gets crime films without retraining.
    let (s, _) = server
        .post(
            "/v1/feedback",
            Some(&key),
            json!([{"user_id": "newbie", "item_id": "heat", "type": "view"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, recs) = server.get("/v1/recommend/newbie?n=1", Some(&key)).await;
    assert_eq!(ids(&recs), ["casino"], "{recs}");
    assert_eq!(recs[0]["reason"]["items"], json!(["heat"]));

    // Hidden from the moment the PATCH returns; visible again when unhidden.
    let (s, _) = server
        .patch("/v1/items/casino", Some(&key), json!({"hidden": true}))
        .await;
    assert_eq!(s, StatusCode::OK);
    for path in [
        "/v1/recommend/newbie?n=8",
        "/v1/popular?n=8",
        "/v1/items/heat/similar?n=8",
        "/recommend/newbie/heat?n=8",
        "/v1/recommend/stranger?n=8",
    ] {
        let (_, recs) = server.get(path, Some(&key)).await;
        assert!(
            !ids(&recs).contains(&"casino".to_string()),
            "{path}: {recs}"
        );
    }
    server
        .patch("/v1/items/casino", Some(&key), json!({"hidden": false}))
        .await;
    let (_, recs) = server.get("/v1/recommend/newbie?n=1", Some(&key)).await;
    assert_eq!(ids(&recs), ["casino"]);

    // Deleted: gone everywhere, and feedback on it is refused.
    let (s, _) = server.delete("/v1/items/casino", Some(&key)).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    for path in [
        "/v1/recommend/newbie?n=8",
        "/v1/popular?n=8",
        "/v1/items/heat/similar?n=8",
    ] {
        let (_, recs) = server.get(path, Some(&key)).await;
        assert!(
            !ids(&recs).contains(&"casino".to_string()),
            "{path}: {recs}"
        );
    }
    let (s, b) = server
        .post(
            "/v1/feedback",
            Some(&key),
            json!([{"user_id": "newbie", "item_id": "casino", "type": "view"}]),
        )
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_batch");

    // Availability windows.
    server
        .patch(
            "/v1/items/amelie",
            Some(&key),
            json!({"available_from": "2999-01-01T00:00:00Z"}),
        )
        .await;
    let (_, pop) = server.get("/v1/popular?n=8", Some(&key)).await;
    assert!(!ids(&pop).contains(&"amelie".to_string()));
}

#[tokio::test]
async fn kept_lists_never_outlive_what_they_came_from() {
    // Lists are kept per user (core::list_cache); every change they depend on shows at once.
    let server = TestServer::start().await;
    let key = server.tenant_with_key("films", "secret").await;
    server.seed_films(&key).await;
    let path = "/v1/recommend/ann?n=3";
    let (_, first) = server.get(path, Some(&key)).await;
    let (_, again) = server.get(path, Some(&key)).await;
    assert_eq!(ids(&first), ids(&again));
    assert_eq!(first[0]["title"], again[0]["title"]);
    // Each answer is its own list for attribution.
    assert_ne!(first[0]["recommendation_id"], again[0]["recommendation_id"]);
    let top = ids(&first)[0].clone();

    // A new title shows on the next answer.
    let (s, _) = server
        .patch(
            &format!("/v1/items/{top}"),
            Some(&key),
            json!({"title": "Renamed"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, renamed) = server.get(path, Some(&key)).await;
    assert_eq!(renamed[0]["item_id"], top.as_str());
    assert_eq!(renamed[0]["title"], "Renamed");

    // The user's own feedback: the item they just watched leaves their list.
    let (s, _) = server
        .post(
            "/v1/feedback",
            Some(&key),
            json!([{"user_id": "ann", "item_id": top, "type": "view"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, after) = server.get(path, Some(&key)).await;
    assert!(!ids(&after).contains(&top), "{after}");

    // An item whose window opens a moment from now joins the kept list when it opens.
    let (_, before) = server.get("/v1/recommend/stranger?n=8", Some(&key)).await;
    let opening = ids(&before)[0].clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let (s, b) = server
        .patch(
            &format!("/v1/items/{opening}"),
            Some(&key),
            json!({"available_from": now + 1.5}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, closed) = server.get("/v1/recommend/stranger?n=8", Some(&key)).await;
    assert!(!ids(&closed).contains(&opening), "{closed}");
    tokio::time::sleep(std::time::Duration::from_millis(1_700)).await;
    let (_, open) = server.get("/v1/recommend/stranger?n=8", Some(&key)).await;
    assert!(ids(&open).contains(&opening), "{open}");

    // Other users' feedback on an item the model has not seen moves the popularity an
    // unknown user's list is made of.
    let (s, _) = server
        .post(
            "/v1/items",
            Some(&key),
            json!([{"id": "fresh", "title": "Fresh"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, cold) = server.get("/v1/recommend/nobody?n=1", Some(&key)).await;
    let events: Vec<Value> = (0..20)
        .map(|u| json!({"user_id": format!("fan{u}"), "item_id": "fresh", "type": "view"}))
        .collect();
    let (s, _) = server
        .post("/v1/feedback", Some(&key), Value::Array(events))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, warm) = server.get("/v1/recommend/nobody?n=1", Some(&key)).await;
    assert_ne!(ids(&cold), ["fresh"]);
    assert_eq!(ids(&warm), ["fresh"], "{warm}");
}

#[tokio::test]
async fn training_on_request_versions_models() {
    let server = TestServer::start().await;
    let key = server.tenant_with_key("films", "secret").await;
    server.seed_films(&key).await;
    let (s, status) = server.get("/v1/training", Some(&key)).await;
    assert_eq!(s, StatusCode::OK);
    let v = status["current"]["version"].as_i64().unwrap();
    let (s, b) = server
        .post(
            "/v1/models/train?wait=true",
            Some(&key),
            json!({"model": {"algorithm": "item_knn", "neighbors": 50, "shrinkage": 0.0}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["model"]["version"].as_i64().unwrap(), v + 1);
    assert_eq!(b["model"]["algorithm"]["algorithm"], "item_knn");
    let (_, status) = server.get("/v1/training", Some(&key)).await;
    assert_eq!(status["current"]["version"].as_i64().unwrap(), v + 1);
    assert!(status["versions"].as_array().unwrap().len() >= 2);
    let (s, b) = server.post("/v1/models/train", Some(&key), json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let (s, b) = server
        .post(
            "/v1/models/train",
            Some(&key),
            json!({"model": {"algorithm": "ease", "lambda": -1}}),
        )
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let (s, b) = server
        .post(
            "/v1/models/train",
            Some(&key),
            json!({"model": {"algorithm": "magic"}}),
        )
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
}

#[tokio::test]
async fn tenants_cannot_see_each_other() {
    let server = TestServer::start().await;
    let a = server.tenant_with_key("alpha", "secret").await;
    let b = server.tenant_with_key("beta", "secret").await;
    server.seed_films(&b).await;
    let (s, exp) = server.post("/v1/experiments", Some(&b), json!({"name": "e", "variants": [{"name": "a", "share": 1}, {"name": "b", "share": 1}]})).await;
    assert_eq!(s, StatusCode::CREATED);
    let exp_id = exp["id"].as_str().unwrap().to_string();
    for path in [
        format!("/v1/experiments/{exp_id}"),
        format!("/v1/experiments/{exp_id}/results"),
    ] {
        let (s, body) = server.get(&path, Some(&a)).await;
        assert_error(s, &body, StatusCode::NOT_FOUND, "not_found");
    }
    let (s, body) = server
        .post(
            &format!("/v1/experiments/{exp_id}/stop"),
            Some(&a),
            json!({}),
        )
        .await;
    assert_error(s, &body, StatusCode::NOT_FOUND, "not_found");
    let (s, recs) = server
        .post(
            "/v1/recommend/session",
            Some(&a),
            json!({"items": ["heat", "casino"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        recs.as_array().unwrap().is_empty(),
        "beta's items mean nothing to alpha: {recs}"
    );
    let (_, trending) = server.get("/v1/trending", Some(&a)).await;
    assert!(trending.as_array().unwrap().is_empty());
    let (_, list) = server.get("/v1/experiments", Some(&a)).await;
    assert!(list["experiments"].as_array().unwrap().is_empty());
    // Beta's users and items are absent for alpha on every route.
    let not_found: &[(Method, &str, Option<Value>)] = &[
        (Method::GET, "/v1/items/heat", None),
        (Method::PATCH, "/v1/items/heat", Some(json!({"title": "x"}))),
        (Method::DELETE, "/v1/items/heat", None),
        (Method::GET, "/v1/items/heat/similar", None),
        (Method::GET, "/v1/users/ann", None),
        (
            Method::PATCH,
            "/v1/users/ann",
            Some(json!({"attributes": {}})),
        ),
        (Method::DELETE, "/v1/users/ann", None),
        (Method::GET, "/v1/users/ann/feedback", None),
        (Method::GET, "/v1/recommend/ann/heat", None),
        (Method::GET, "/recommend/ann/heat", None),
    ];
    for (method, path, body) in not_found {
        let (s, body) = server
            .call(method.clone(), path, Some(&a), body.clone())
            .await;
        assert_error(s, &body, StatusCode::NOT_FOUND, "not_found");
    }
    let (s, body) = server
        .post(
            "/v1/feedback",
            Some(&a),
            json!([{"user_id": "ann", "item_id": "heat", "type": "view"}]),
        )
        .await;
    assert_error(s, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_batch");
    // Lists and recommendations of alpha show nothing of beta's.
    let (_, items) = server.get("/v1/items", Some(&a)).await;
    assert!(items["items"].as_array().unwrap().is_empty());
    let (_, users) = server.get("/v1/users", Some(&a)).await;
    assert!(users["users"].as_array().unwrap().is_empty());
    let (s, recs) = server.get("/v1/recommend/ann", Some(&a)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(recs.as_array().unwrap().is_empty());
    let (_, pop) = server.get("/v1/popular", Some(&a)).await;
    assert!(pop.as_array().unwrap().is_empty());
    // And nothing alpha did touched beta.
    let (s, _) = server.get("/v1/items/heat", Some(&b)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = server.get("/v1/users/ann", Some(&b)).await;
    assert_eq!(s, StatusCode::OK);
    // Beta's key ids cannot be revoked by alpha's admin.
    let alpha_admin = server.key("alpha", "admin").await;
    let (_, keys) = server
        .get("/v1/admin/tenants/beta/keys", Some(ADMIN_KEY))
        .await;
    let beta_key_id = keys["keys"][0]["id"].as_str().unwrap().to_string();
    let (s, body) = server
        .delete(&format!("/v1/admin/keys/{beta_key_id}"), Some(&alpha_admin))
        .await;
    assert_error(s, &body, StatusCode::NOT_FOUND, "not_found");
    let (s, body) = server
        .get("/v1/admin/tenants/beta/keys", Some(&alpha_admin))
        .await;
    assert_error(s, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn bad_input_gets_clear_json_errors() {
    let server = TestServer::start().await;
    let key = server.tenant_with_key("films", "secret").await;
    let raw = |method: Method, path: &str, content_type: Option<&str>, body: &'static str| {
        let mut req = server
            .client
            .request(method, format!("{}{}", server.base, path))
            .bearer_auth(&key)
            .body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    // Malformed JSON → 400.
    let (s, b) = raw(
        Method::PUT,
        "/v1/items/x",
        Some("application/json"),
        "{\"title\": ",
    )
    .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_json");
    let (s, b) = raw(
        Method::POST,
        "/v1/feedback",
        Some("application/json"),
        "[{]",
    )
    .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_json");
    let (s, b) = raw(Method::PUT, "/v1/items/x", Some("application/json"), "").await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_json");
    let (s, b) = raw(
        Method::PUT,
        "/v1/items/x",
        Some("application/json"),
        "{} trailing",
    )
    .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_json");
    // Not JSON at all → 415.
    let (s, b) = raw(Method::PUT, "/v1/items/x", Some("text/plain"), "title=x").await;
    assert_error(
        s,
        &b,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    // Unknown field / wrong type → 422 naming the field.
    let (s, b) = server
        .put(
            "/v1/items/x",
            Some(&key),
            json!({"title": "X", "rating": 5}),
        )
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("rating"),
        "{b}"
    );
    let (s, b) = server
        .put(
            "/v1/items/x",
            Some(&key),
            json!({"title": "X", "categories": "Drama"}),
        )
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("categories"),
        "{b}"
    );
    let (s, b) = server
        .put(
            "/v1/items/x",
            Some(&key),
            json!({"published_at": "last tuesday"}),
        )
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("published_at"),
        "{b}"
    );
    let (s, b) = server
        .post(
            "/v1/items",
            Some(&key),
            json!([{"id": "a"}, {"title": "no id"}]),
        )
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_batch");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("element 1"),
        "{b}"
    );
    let (s, _) = server.get("/v1/items/a", Some(&key)).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "nothing of a refused batch is applied"
    );
    let (s, b) = server
        .post("/v1/items", Some(&key), json!("not a batch"))
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let (s, b) = server.post("/v1/items", Some(&key), json!([])).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let (s, b) = server
        .put(
            "/v1/items/x",
            Some(&key),
            json!({"available_from": 2000, "available_until": 1000}),
        )
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    // Ids: too long, control characters, mismatch with the path.
    let long = "x".repeat(257);
    let (s, b) = server
        .put(&format!("/v1/items/{long}"), Some(&key), json!({}))
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let (s, b) = server
        .put(
            &format!("/v1/items/{}", "x".repeat(256)),
            Some(&key),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "256 bytes is allowed: {b}");
    let (s, b) = server
        .put("/v1/items/bad%0Aid", Some(&key), json!({}))
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let (s, b) = server
        .post(
            "/v1/feedback",
            Some(&key),
            json!([{"user_id": "u\u{1}", "item_id": "x", "type": "view"}]),
        )
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_batch");
    let (s, b) = server
        .post("/v1/users", Some(&key), json!([{"id": long}]))
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_batch");
    let (s, b) = server
        .put("/v1/items/one", Some(&key), json!({"id": "two"}))
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let (s, b) = server
        .post(
            "/v1/feedback",
            Some(&key),
            json!([{"user_id": "u", "item_id": "x", "type": "has space"}]),
        )
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_batch");
    // Query parameters.
    for path in [
        "/v1/recommend/u?n=0",
        "/v1/recommend/u?n=1001",
        "/v1/recommend/u?n=ten",
        "/v1/recommend/u?colour=red",
        "/v1/popular?n=-1",
        "/v1/items?limit=x",
    ] {
        let (s, b) = server.get(path, Some(&key)).await;
        assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    }
    let (s, _) = server.get("/v1/recommend/u?n=1000", Some(&key)).await;
    assert_eq!(s, StatusCode::OK);
    // Unknown route and method.
    let (s, b) = server.get("/v1/nothing-here", Some(&key)).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = server.get("/nothing", None).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = server
        .call(Method::DELETE, "/v1/feedback", Some(&key), None)
        .await;
    assert_error(s, &b, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    // The server is still fine.
    let (s, _) = server.get("/healthz", None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let server = TestServer::start_with(marquee_server::ServerConfig {
        body_limit: 4096,
        ..Default::default()
    })
    .await;
    let key = server.tenant_with_key("films", "secret").await;
    let (s, b) = server
        .put(
            "/v1/items/x",
            Some(&key),
            json!({"description": "d".repeat(5000)}),
        )
        .await;
    assert_error(s, &b, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let (s, _) = server
        .put(
            "/v1/items/x",
            Some(&key),
            json!({"description": "d".repeat(1000)}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // Default limit: 10 MiB.
    let server = TestServer::start().await;
    let key = server.tenant_with_key("films", "secret").await;
    let huge = "x".repeat(11 * 1024 * 1024);
    let resp = server
        .client
        .post(format!("{}/v1/feedback", server.base))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let mut server = TestServer::start().await;
    let key = server.tenant_with_key("films", "secret").await;
    server.seed_films(&key).await;
    // A large write in flight while shutdown is requested still completes and is stored: the
    // request is sent in two parts over a raw connection, with the shutdown in between, so it
    // is certainly in flight.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let batch: Vec<Value> = (0..10_000)
        .map(|i| json!({"user_id": format!("late{i}"), "item_id": "heat", "type": "view"}))
        .collect();
    let body = serde_json::to_vec(&batch).unwrap();
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/feedback HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body[..body.len() / 2]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let stopping = tokio::spawn(async move {
        server.stop().await;
        server
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    conn.write_all(&body[body.len() / 2..]).await.unwrap();
    let mut response = Vec::new();
    conn.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let server = stopping.await.unwrap();
    let tenant = server.service.tenant_by_name("films").unwrap();
    let n = server
        .service
        .store()
        .count_feedback(tenant.id)
        .await
        .unwrap();
    assert!(n >= 10_000, "{n}");
}

#[tokio::test]
async fn a_profile_gives_the_latest_item_weighted_interests_and_titled_history() {
    let server = TestServer::start().await;
    let key = server.tenant_with_key("films", "secret").await;
    server.seed_films(&key).await;
    server
        .put(
            "/v1/users/ann",
            Some(&key),
            json!({"attributes": {"plan": "premium"}}),
        )
        .await;
    let (s, p) = server.get("/v1/users/ann/profile", Some(&key)).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["user_id"], "ann");
    // ann viewed alien, aliens, terminator, in that order: the newest is terminator.
    assert_eq!(p["item_id"], "terminator", "{p}");
    assert_eq!(p["attributes"]["plan"], "premium");
    let interests = p["interests"].as_array().unwrap();
    assert_eq!(interests[0]["kind"], "category");
    assert_eq!(interests[0]["name"], "Sci-Fi", "{p}");
    let total: f64 = interests
        .iter()
        .map(|i| i["weight"].as_f64().unwrap())
        .sum();
    assert!((total - 1.0).abs() < 1e-4, "{p}");
    assert!(
        interests.iter().all(|i| i["name"] != "Comedy"),
        "nothing ann did not watch: {p}"
    );
    let history = p["history"].as_array().unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[0]["item_id"], "terminator");
    assert_eq!(history[0]["title"], "The Terminator");
    assert_eq!(history[0]["type"], "view");

    let (s, b) = server.get("/v1/users/nobody/profile", Some(&key)).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = server
        .get("/v1/users/ann/profile?history=1", Some(&key))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["history"].as_array().unwrap().len(), 1);
}
