//! The Gorse-compatible API (`/api/…`) against a real server: PyGorse, Gorse's official
//! Python client, doing its whole round trip (`tests/gorse_client.py`), and HTTP calls made
//! the way Gorse's clients and docs make them — Gorse's JSON shapes, status codes and
//! plain-text errors, `X-API-Version: 2`, cursors, category routes (also with the empty
//! category gorse.js and PyGorse send), bad input, health probes, metering, the audit log of
//! deletions, and tenant isolation.
//!
//! What Gorse answers is taken from its source, v0.5 (`server/rest.go` of gorse-io/gorse, and
//! go-restful v3, which serves it); the comments name the functions.
//!
//! The PyGorse test needs `python3` with `PyGorse==0.5.1` (`python3 -m pip install
//! PyGorse==0.5.1`; scripts/test installs it); `MARQUEE_TEST_PYTHON` names another
//! interpreter.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn python() -> String {
    std::env::var("MARQUEE_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Sends a request the way Gorse clients do (`X-API-Key`; none when `key` is empty), with
/// extra headers; returns the status, the headers and the body: JSON (Null when empty), or
/// for an error its plain text as a JSON string (checked to be `text/plain`, as Gorse writes
/// errors: go-restful's `Response.WriteError` writes the status and `err.Error()`, and Go's
/// `net/http` types that body `text/plain; charset=utf-8`).
async fn gorse(
    server: &TestServer,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = server
        .client
        .request(method, format!("{}{}", server.base, path));
    if !key.is_empty() {
        req = req.header("X-API-Key", key);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let value = if status.is_client_error() || status.is_server_error() {
        let content_type = headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        assert_eq!(
            content_type, "text/plain; charset=utf-8",
            "{path}: an error in plain text, as Gorse writes it: {text}"
        );
        Value::String(text)
    } else if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("non-JSON body for {path}: {text}"))
    };
    (status, headers, value)
}

/// Asserts a Gorse error: the status and the exact plain-text body.
#[track_caller]
fn assert_text(status: StatusCode, body: &Value, want_status: StatusCode, want: &str) {
    assert_eq!(
        (status, body.as_str()),
        (want_status, Some(want)),
        "body: {body}"
    );
}

/// Asserts a Gorse error whose text is Marquee's own (a limit Gorse does not have): the status,
/// and a text that contains `part`.
#[track_caller]
fn assert_text_has(status: StatusCode, body: &Value, want_status: StatusCode, part: &str) {
    assert_eq!(status, want_status, "body: {body}");
    assert!(
        body.as_str().is_some_and(|t| t.contains(part)),
        "{part:?} not in {body}"
    );
}

async fn get(server: &TestServer, path: &str, key: &str) -> (StatusCode, Value) {
    let (s, _, b) = gorse(server, Method::GET, path, key, None, &[]).await;
    (s, b)
}

async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    key: &str,
    body: Value,
) -> (StatusCode, Value) {
    let (s, _, b) = gorse(server, method, path, key, Some(body), &[]).await;
    (s, b)
}

/// The ids of a list of `{"Id","Score"}` objects.
fn score_ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|s| s["Id"].as_str().unwrap().to_string())
        .collect()
}

fn strings(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// The small film catalogue of `common::seed_films`, written through the Gorse API, and
/// trained.
async fn seed(server: &TestServer, key: &str) {
    let films = [
        ("alien", json!(["Sci-Fi", "Horror"]), "1979-05-25"),
        ("aliens", json!(["Sci-Fi", "Action"]), "1986-07-18"),
        ("terminator", json!(["Sci-Fi", "Action"]), "1984-10-26"),
        ("t2", json!(["Sci-Fi", "Action"]), "1991-07-03"),
        ("heat", json!(["Crime", "Drama"]), "1995-12-15"),
        ("casino", json!(["Crime", "Drama"]), "1995-11-22"),
        ("amelie", json!(["Comedy", "Romance"]), "2001-04-25"),
        ("clueless", json!(["Comedy"]), "1995-07-19"),
    ];
    let items: Vec<Value> = films
        .iter()
        .map(|(id, categories, date)| {
            json!({"ItemId": id, "IsHidden": false, "Categories": categories, "Timestamp": date})
        })
        .collect();
    let (s, b) = send(server, Method::POST, "/api/items", key, Value::Array(items)).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"RowAffected": 8})));
    let views: &[(&str, &[&str])] = &[
        ("ann", &["alien", "aliens", "terminator"]),
        ("bob", &["alien", "aliens", "t2", "terminator"]),
        ("cat", &["heat", "casino", "amelie"]),
        ("dan", &["heat", "casino", "clueless", "amelie"]),
        ("fay", &["heat", "casino"]),
        ("eve", &["aliens", "t2", "terminator"]),
    ];
    let mut events = Vec::new();
    for (user, items) in views {
        for (n, item) in items.iter().enumerate() {
            events.push(
                json!({"FeedbackType": "view", "UserId": user, "ItemId": item,
                "Timestamp": (1_700_000_000 + n as i64).to_string()}),
            );
        }
    }
    let (s, b) = send(
        server,
        Method::POST,
        "/api/feedback",
        key,
        Value::Array(events),
    )
    .await;
    assert_eq!((s, b), (StatusCode::OK, json!({"RowAffected": 19})));
    let (s, b) = server
        .post("/v1/models/train?wait=true", Some(key), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pygorse_does_its_round_trip_against_marquee() {
    let out = Command::new(python())
        .args(["-c", "import gorse, requests, aiohttp"])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "this test runs Gorse's Python client, which is not installed for {}: run \
         `python3 -m pip install PyGorse==0.5.1` (scripts/test does)\n{}",
        python(),
        String::from_utf8_lossy(&out.stderr)
    );
    let server = TestServer::start().await;
    let key = server.tenant_with_key("gorse", "secret").await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gorse_client.py");
    let base = server.base.clone();
    let secret = key.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(script)
            .env("MARQUEE_GORSE_ENDPOINT", base)
            .env("MARQUEE_GORSE_KEY", secret)
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("pygorse: all checks passed"),
        "PyGorse's round trip failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // What PyGorse wrote is Marquee's data, seen through Marquee's own API.
    let (s, ann) = server.get("/v1/users/ann", Some(&key)).await;
    assert_eq!(s, StatusCode::OK, "{ann}");
    assert_eq!(
        ann["attributes"],
        json!({"labels": ["a", "b", "c"], "subscribe": ["d", "e"], "comment": "comment"})
    );
    let (s, alien) = server.get("/v1/items/alien", Some(&key)).await;
    assert_eq!(s, StatusCode::OK, "{alien}");
    assert_eq!(alien["categories"], json!(["Sci-Fi", "Horror"]));
    assert_eq!(alien["description"], "Alien");
    assert_eq!(alien["published_at"], "1979-05-25T00:00:00Z");
    let (s, _) = server.get("/v1/items/clueless", Some(&key)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "deleted through PyGorse");
    let (s, _) = server.get("/v1/users/fay", Some(&key)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "erased through PyGorse");
}

#[tokio::test]
async fn users_items_and_feedback_have_gorses_shapes_and_map_onto_marquees_data() {
    let server = TestServer::start().await;
    let key = server.tenant_with_key("shapes", "secret").await;

    // Field names match case-insensitively (Go's encoding/json); unknown fields are ignored.
    let (s, b) = send(
        &server,
        Method::POST,
        "/api/item",
        &key,
        json!({"itemid": "heat", "categories": ["Crime"], "TIMESTAMP": "1995-12-15 10:30:00",
               "Labels": {"director": "Michael Mann", "year": 1995}, "Comment": "Heat",
               "Score": 3, "SomethingNew": true}),
    )
    .await;
    assert_eq!((s, b), (StatusCode::OK, json!({"RowAffected": 1})));
    let (s, heat) = get(&server, "/api/item/heat", &key).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        heat,
        json!({"ItemId": "heat", "IsHidden": false, "Categories": ["Crime"],
               "Timestamp": "1995-12-15T10:30:00Z",
               "Labels": {"director": "Michael Mann", "year": 1995}, "Comment": "Heat"})
    );
    // Object labels are the item's metadata (usable in Marquee's filters); list labels its tags.
    let (_, marquee) = server.get("/v1/items/heat", Some(&key)).await;
    assert_eq!(
        marquee["metadata"],
        json!({"director": "Michael Mann", "year": 1995})
    );
    assert_eq!(marquee["description"], "Heat");
    let (s, b) = send(
        &server,
        Method::PATCH,
        "/api/item/heat",
        &key,
        json!({"Labels": ["heist"], "IsHidden": true, "Categories": null, "Timestamp": null}),
    )
    .await;
    assert_eq!((s, b), (StatusCode::OK, json!({"RowAffected": 1})));
    let (_, heat) = get(&server, "/api/item/heat", &key).await;
    assert_eq!(heat["Labels"], json!(["heist"]));
    assert_eq!(heat["IsHidden"], true);
    assert_eq!(
        heat["Categories"],
        json!(["Crime"]),
        "null leaves a field as it is"
    );
    assert_eq!(heat["Timestamp"], "1995-12-15T10:30:00Z");
    let (_, marquee) = server.get("/v1/items/heat", Some(&key)).await;
    assert_eq!(marquee["tags"], json!(["heist"]));
    assert_eq!(marquee["metadata"], json!({}));
    assert_eq!(marquee["hidden"], true);

    // An item without a time shows Go's zero time, as Gorse does.
    let (s, _) = send(
        &server,
        Method::POST,
        "/api/item",
        &key,
        json!({"ItemId": "bare"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, bare) = get(&server, "/api/item/bare", &key).await;
    assert_eq!(
        bare,
        json!({"ItemId": "bare", "IsHidden": false, "Categories": [],
               "Timestamp": "0001-01-01T00:00:00Z", "Labels": null, "Comment": ""})
    );

    // Categories one at a time.
    let (s, _, b) = gorse(
        &server,
        Method::PUT,
        "/api/item/bare/category/Drama",
        &key,
        None,
        &[],
    )
    .await;
    assert_eq!((s, b), (StatusCode::OK, json!({"RowAffected": 1})));
    gorse(
        &server,
        Method::PUT,
        "/api/item/bare/category/Crime",
        &key,
        None,
        &[],
    )
    .await;
    gorse(
        &server,
        Method::PUT,
        "/api/item/bare/category/Drama",
        &key,
        None,
        &[],
    )
    .await;
    let (_, bare) = get(&server, "/api/item/bare", &key).await;
    assert_eq!(
        bare["Categories"],
        json!(["Drama", "Crime"]),
        "added once each"
    );
    let (s, _, b) = gorse(
        &server,
        Method::DELETE,
        "/api/item/bare/category/Drama",
        &key,
        None,
        &[],
    )
    .await;
    assert_eq!((s, b), (StatusCode::OK, json!({"RowAffected": 1})));
    let (_, bare) = get(&server, "/api/item/bare", &key).await;
    assert_eq!(bare["Categories"], json!(["Crime"]));
    // An unknown item: Gorse's insertItemCategory passes its store's error (`<id>: item not
    // found`) to InternalServerError, a 500; Marquee answers the same text with 404, a 5xx
    // being a failure of the server here.
    for method in [Method::PUT, Method::DELETE] {
        let (s, _, b) = gorse(
            &server,
            method,
            "/api/item/nothing/category/Drama",
            &key,
            None,
            &[],
        )
        .await;
        assert_text(s, &b, StatusCode::NOT_FOUND, "nothing: item not found");
    }

    // Users: Gorse's fields are attributes; other attributes show as the Labels object.
    let (s, b) = send(
        &server,
        Method::POST,
        "/api/users",
        &key,
        json!([{"UserId": "ann", "Labels": {"age": 31}, "Subscribe": ["Drama"]}, {"UserId": "bob"}]),
    )
    .await;
    assert_eq!((s, b), (StatusCode::OK, json!({"RowAffected": 2})));
    let (_, ann) = get(&server, "/api/user/ann", &key).await;
    assert_eq!(
        ann,
        json!({"UserId": "ann", "Labels": {"age": 31}, "Subscribe": ["Drama"], "Comment": ""})
    );
    let (s, b) = send(
        &server,
        Method::PATCH,
        "/api/user/ann",
        &key,
        json!({"Comment": "vip"}),
    )
    .await;
    assert_eq!((s, b), (StatusCode::OK, json!({"RowAffected": 1})));
    let (_, ann) = get(&server, "/api/user/ann", &key).await;
    assert_eq!(ann["Comment"], "vip");
    assert_eq!(ann["Labels"], json!({"age": 31}), "unchanged by the patch");
    let (s, b) = server
        .put(
            "/v1/users/cat",
            Some(&key),
            json!({"attributes": {"plan": "family"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, cat) = get(&server, "/api/user/cat", &key).await;
    assert_eq!(
        cat,
        json!({"UserId": "cat", "Labels": {"plan": "family"}, "Subscribe": null, "Comment": ""})
    );

    // Feedback: POST inserts and keeps existing events; it creates users and items it names.
    let event = |user: &str, item: &str, kind: &str, at: &str| json!({"FeedbackType": kind, "UserId": user, "ItemId": item, "Timestamp": at, "Comment": "ignored"});
    let (s, b) = send(
        &server,
        Method::POST,
        "/api/feedback",
        &key,
        json!([
            event("ann", "heat", "like", "2024-01-01T00:00:00Z"),
            event("dan", "new-film", "view", "2024-01-02T00:00:00Z")
        ]),
    )
    .await;
    assert_eq!((s, b), (StatusCode::OK, json!({"RowAffected": 2})));
    let (s, film) = get(&server, "/api/item/new-film", &key).await;
    assert_eq!(s, StatusCode::OK, "created by its feedback: {film}");
    let (s, _) = get(&server, "/api/user/dan", &key).await;
    assert_eq!(s, StatusCode::OK, "created by their feedback");
    let (s, b) = send(
        &server,
        Method::POST,
        "/api/feedback",
        &key,
        json!([event("ann", "heat", "like", "2024-06-01T00:00:00Z")]),
    )
    .await;
    assert_eq!((s, b), (StatusCode::OK, json!({"RowAffected": 1})));
    let (s, like) = get(&server, "/api/feedback/like/ann/heat", &key).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        like,
        json!({"FeedbackType": "like", "UserId": "ann", "ItemId": "heat",
               "Timestamp": "2024-01-01T00:00:00Z", "Comment": ""}),
        "POST keeps the event already there"
    );
    // PUT replaces it.
    let (s, b) = send(
        &server,
        Method::PUT,
        "/api/feedback",
        &key,
        json!([event("ann", "heat", "like", "2024-06-01T00:00:00Z")]),
    )
    .await;
    assert_eq!((s, b), (StatusCode::OK, json!({"RowAffected": 1})));
    let (_, like) = get(&server, "/api/feedback/like/ann/heat", &key).await;
    assert_eq!(like["Timestamp"], "2024-06-01T00:00:00Z");

    // The pair's events of every type; the user's and the item's lists, by type too.
    send(
        &server,
        Method::POST,
        "/api/feedback",
        &key,
        json!([event("ann", "heat", "view", "2024-05-01T00:00:00Z")]),
    )
    .await;
    let (_, pair) = get(&server, "/api/feedback/ann/heat", &key).await;
    assert_eq!(
        pair.as_array()
            .unwrap()
            .iter()
            .map(|f| f["FeedbackType"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["like", "view"]
    );
    let (_, of_user) = get(&server, "/api/user/ann/feedback", &key).await;
    assert_eq!(of_user.as_array().unwrap().len(), 2);
    assert_eq!(of_user[0]["FeedbackType"], "like", "newest first");
    let (_, views) = get(&server, "/api/user/ann/feedback/view", &key).await;
    assert_eq!(views.as_array().unwrap().len(), 1);
    for path in ["/api/item/heat/feedback", "/api/item/heat/feedback/"] {
        let (s, of_item) = get(&server, path, &key).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(of_item.as_array().unwrap().len(), 2, "{path}");
    }
    let (_, likes) = get(&server, "/api/item/heat/feedback/like", &key).await;
    assert_eq!(likes.as_array().unwrap().len(), 1);
    // No feedback: empty lists (Gorse does not look the user up), but one missing event is 404.
    let (s, none) = get(&server, "/api/user/nobody/feedback", &key).await;
    assert_eq!((s, none), (StatusCode::OK, json!([])));
    let (s, none) = get(&server, "/api/feedback/nobody/heat", &key).await;
    assert_eq!((s, none), (StatusCode::OK, json!([])));
    // (Gorse's getTypedUserItemFeedback indexes the empty list, `feedback[0]`, and the
    // connection drops; Marquee answers 404.)
    let (s, b) = get(&server, "/api/feedback/like/nobody/heat", &key).await;
    assert_text(
        s,
        &b,
        StatusCode::NOT_FOUND,
        "like nobody heat: feedback not found",
    );

    // Deleting one type, then the rest.
    let (s, _, b) = gorse(
        &server,
        Method::DELETE,
        "/api/feedback/like/ann/heat",
        &key,
        None,
        &[],
    )
    .await;
    assert_eq!((s, b), (StatusCode::OK, json!({"RowAffected": 1})));
    let (s, _, b) = gorse(
        &server,
        Method::DELETE,
        "/api/feedback/ann/heat",
        &key,
        None,
        &[],
    )
    .await;
    assert_eq!((s, b), (StatusCode::OK, json!({"RowAffected": 1})));
    let (_, pair) = get(&server, "/api/feedback/ann/heat", &key).await;
    assert_eq!(pair, json!([]));
    let (_, marquee) = server.get("/v1/users/ann/feedback", Some(&key)).await;
    assert_eq!(
        marquee["feedback"],
        json!([]),
        "gone from Marquee's view too"
    );

    // Deleting users and items. Gone, they are 404 with the text of Gorse's stores
    // (`errors.Annotate(ErrItemNotExist, itemId)`: `<id>: item not found`; getItem and getUser
    // answer it with PageNotFound).
    let (s, _, b) = gorse(
        &server,
        Method::DELETE,
        "/api/item/new-film",
        &key,
        None,
        &[],
    )
    .await;
    assert_eq!((s, b), (StatusCode::OK, json!({"RowAffected": 1})));
    let (s, b) = get(&server, "/api/item/new-film", &key).await;
    assert_text(s, &b, StatusCode::NOT_FOUND, "new-film: item not found");
    let (s, _, b) = gorse(&server, Method::DELETE, "/api/user/dan", &key, None, &[]).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"RowAffected": 1})));
    let (s, b) = get(&server, "/api/user/dan", &key).await;
    assert_text(s, &b, StatusCode::NOT_FOUND, "dan: user not found");
    // Deleting or patching them again: Gorse's deleteUser/deleteItem and modifyUser/modifyItem
    // do not look them up and answer `Success{RowAffected: 1}` whatever their store did;
    // Marquee answers 404 with the text of Gorse's reads (it does not acknowledge a write it
    // did not make, and keys of other tenants get only 401/403/404 — see the module docs), and
    // creates nothing.
    for (path, text) in [
        ("/api/item/new-film", "new-film: item not found"),
        ("/api/user/dan", "dan: user not found"),
    ] {
        let (s, _, b) = gorse(&server, Method::DELETE, path, &key, None, &[]).await;
        assert_text(s, &b, StatusCode::NOT_FOUND, text);
        let (s, b) = send(
            &server,
            Method::PATCH,
            path,
            &key,
            json!({"Comment": "back?"}),
        )
        .await;
        assert_text(s, &b, StatusCode::NOT_FOUND, text);
        let (s, _) = get(&server, path, &key).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path} stays deleted");
    }

    // Every deletion is in the audit log, as those of Marquee's own routes are: the key, the
    // action, the target, when and from where. Users are named by a hash, never by their id.
    let (s, audit) = server.get("/v1/audit?limit=1000", Some(ADMIN_KEY)).await;
    assert_eq!(s, StatusCode::OK, "{audit}");
    let entries: Vec<&Value> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["tenant"] == "shapes")
        .collect();
    let find = |action: &str, detail: Value| {
        entries
            .iter()
            .find(|e| e["action"] == action && (detail.is_null() || e["detail"] == detail))
            .unwrap_or_else(|| panic!("no {action} {detail} entry: {audit}"))
    };
    let typed = find(
        "feedback.delete",
        json!({"item_id": "heat", "feedback_type": "like", "deleted": 1}),
    );
    let untyped = find(
        "feedback.delete",
        json!({"item_id": "heat", "feedback_type": null, "deleted": 1}),
    );
    let category = find("item.category.delete", json!({"category": "Drama"}));
    let item = find("item.delete", Value::Null);
    let user = find("user.erase", Value::Null);
    assert_eq!(category["target"], "bare");
    assert_eq!(item["target"], "new-film");
    for e in [typed, untyped, category, item, user] {
        assert!(e["key_id"].as_str().is_some_and(|k| !k.is_empty()), "{e}");
        assert!(e["remote"].as_str().is_some_and(|r| !r.is_empty()), "{e}");
        assert!(e["at"].is_string() || e["at"].is_number(), "{e}");
    }
    for e in [typed, untyped, user] {
        let target = e["target"].as_str().unwrap();
        assert!(
            !target.is_empty() && target != "ann" && target != "dan",
            "{e}"
        );
    }
    assert_eq!(typed["target"], untyped["target"], "the same user, hashed");
    // Deletions that deleted nothing are not entries: one per deleted object above.
    assert_eq!(
        entries
            .iter()
            .filter(|e| e["action"] == "item.delete")
            .count(),
        1
    );
}

#[tokio::test]
async fn recommendations_are_ids_or_scores_and_category_routes_take_an_empty_category() {
    let server = TestServer::start().await;
    let key = server.tenant_with_key("films", "secret").await;
    seed(&server, &key).await;

    // Plain: item ids; with X-API-Version: 2, {"Id","Score"} objects, best first.
    let (s, headers, plain) = gorse(
        &server,
        Method::GET,
        "/api/recommend/ann?n=3",
        &key,
        None,
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{plain}");
    let ids = strings(&plain);
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], "t2", "the film her neighbours watched: {plain}");
    assert!(
        ids.iter()
            .all(|i| !["alien", "aliens", "terminator"].contains(&i.as_str()))
    );
    assert_eq!(
        headers["x-marquee-units"].to_str().unwrap(),
        "recommendations=1",
        "metered like Marquee's own recommend route"
    );
    let (s, _, scored) = gorse(
        &server,
        Method::GET,
        "/api/recommend/ann?n=3",
        &key,
        None,
        &[("X-API-Version", "2")],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(score_ids(&scored), ids);
    let scores: Vec<f64> = scored
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scored}");
    for o in scored.as_array().unwrap() {
        assert_eq!(o.as_object().unwrap().len(), 2, "only Id and Score: {o}");
    }

    // The empty category (a trailing slash) is no category; a category filters.
    let (_, slash) = get(&server, "/api/recommend/ann/?n=3", &key).await;
    assert_eq!(strings(&slash), ids);
    let (s, comedies) = get(&server, "/api/recommend/ann/Comedy?n=5", &key).await;
    assert_eq!(s, StatusCode::OK);
    let comedies = strings(&comedies);
    assert!(!comedies.is_empty());
    assert!(
        comedies
            .iter()
            .all(|i| ["amelie", "clueless"].contains(&i.as_str()))
    );
    // Several categories as query parameters: items in all of them.
    let (_, both) = get(
        &server,
        "/api/recommend/ann?category=Comedy&category=Romance&n=5",
        &key,
    )
    .await;
    assert_eq!(strings(&both), ["amelie"]);
    // offset.
    let (_, shifted) = get(&server, "/api/recommend/ann?n=2&offset=1", &key).await;
    assert_eq!(strings(&shifted), ids[1..3]);

    // Item neighbours, with and without a category and trailing slash.
    for path in [
        "/api/item/terminator/neighbors?n=3",
        "/api/item/terminator/neighbors/?n=3",
    ] {
        let (s, n) = get(&server, path, &key).await;
        assert_eq!(s, StatusCode::OK, "{path}: {n}");
        let got = score_ids(&n);
        assert!(!got.is_empty());
        assert!(
            got.iter()
                .all(|i| ["alien", "aliens", "t2"].contains(&i.as_str())),
            "{path}: {n}"
        );
    }
    let (_, action) = get(&server, "/api/item/terminator/neighbors/Action?n=5", &key).await;
    assert!(
        score_ids(&action)
            .iter()
            .all(|i| ["aliens", "t2"].contains(&i.as_str())),
        "{action}"
    );
    let (s, none) = get(&server, "/api/item/no-such-film/neighbors", &key).await;
    assert_eq!((s, none), (StatusCode::OK, json!([])), "as Gorse answers");

    // User neighbours: those who watched the most of the same films.
    for path in ["/api/user/ann/neighbors", "/api/user/ann/neighbors/"] {
        let (s, n) = get(&server, path, &key).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(score_ids(&n), ["bob", "eve"], "{path}: {n}");
        let bob = n[0]["Score"].as_f64().unwrap();
        assert!(
            (bob - 3.0 / 12f64.sqrt()).abs() < 1e-5,
            "cosine of 3 shared of 3 and 4: {n}"
        );
    }
    let (_, none) = get(&server, "/api/user/stranger/neighbors", &key).await;
    assert_eq!(none, json!([]));

    // Latest: by timestamp, the score being Unix seconds.
    let (s, latest) = get(&server, "/api/latest?n=3", &key).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(score_ids(&latest), ["amelie", "heat", "casino"]);
    assert_eq!(latest[0]["Score"].as_f64(), Some(988_156_800.0));
    let (_, slash) = get(&server, "/api/latest/?n=3", &key).await;
    assert_eq!(slash, latest);
    let (_, drama) = get(&server, "/api/latest/Drama?n=5&offset=1", &key).await;
    assert_eq!(score_ids(&drama), ["casino"]);
    let (_, unseen) = get(&server, "/api/latest?n=2&user-id=cat", &key).await;
    assert_eq!(
        score_ids(&unseen),
        ["clueless", "t2"],
        "cat's films left out"
    );

    // Popular.
    let (s, popular) = get(&server, "/api/popular?n=2", &key).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(popular.as_array().unwrap().len(), 2);
    let (_, slash) = get(&server, "/api/popular/?n=2", &key).await;
    assert_eq!(score_ids(&slash), score_ids(&popular));
    let (_, comedy) = get(&server, "/api/popular/Comedy", &key).await;
    assert!(
        score_ids(&comedy)
            .iter()
            .all(|i| ["amelie", "clueless"].contains(&i.as_str()))
    );
    let (_, unseen) = get(&server, "/api/popular?n=8&user-id=ann", &key).await;
    assert!(
        score_ids(&unseen)
            .iter()
            .all(|i| !["alien", "aliens", "terminator"].contains(&i.as_str()))
    );

    // Session recommendations from a list of feedback; negative feedback only excludes.
    for path in ["/api/session/recommend?n=2", "/api/session/recommend/?n=2"] {
        let (s, session) = send(
            &server,
            Method::POST,
            path,
            &key,
            json!([{"FeedbackType": "view", "UserId": "", "ItemId": "heat", "Timestamp": "2024-01-01"},
                   {"FeedbackType": "dislike", "UserId": "", "ItemId": "amelie", "Timestamp": "2024-01-01"}]),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{path}: {session}");
        let got = score_ids(&session);
        assert_eq!(got.len(), 2);
        assert!(!got.contains(&"heat".into()) && !got.contains(&"amelie".into()));
        assert_eq!(got[0], "casino", "{session}");
    }
    let (_, sci_fi) = send(
        &server,
        Method::POST,
        "/api/session/recommend/Action?n=3",
        &key,
        json!([{"FeedbackType": "view", "ItemId": "alien"}]),
    )
    .await;
    assert!(
        score_ids(&sci_fi)
            .iter()
            .all(|i| ["aliens", "terminator", "t2"].contains(&i.as_str())),
        "{sci_fi}"
    );

    // Write-back: the returned items become feedback of that type.
    let (_, first) = get(&server, "/api/recommend/fay?n=2&write-back-type=read", &key).await;
    let (_, read) = get(&server, "/api/user/fay/feedback/read", &key).await;
    let mut written: Vec<String> = read
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["ItemId"].as_str().unwrap().to_string())
        .collect();
    written.sort();
    let mut returned = strings(&first);
    returned.sort();
    assert_eq!(written, returned);
    // Delayed: dated in the future, so not listed yet, but no longer recommended.
    let (_, delayed) = get(
        &server,
        "/api/recommend/eve?n=1&write-back-type=read&write-back-delay=1h30m",
        &key,
    )
    .await;
    let (_, read) = get(&server, "/api/user/eve/feedback/read", &key).await;
    assert_eq!(read, json!([]));
    let (_, again) = get(&server, "/api/recommend/eve?n=5", &key).await;
    assert!(!strings(&again).contains(&strings(&delayed)[0]));
}

#[tokio::test]
async fn cursors_page_through_users_items_and_feedback() {
    let server = TestServer::start().await;
    let key = server.tenant_with_key("pages", "secret").await;
    let items: Vec<Value> = (0..25)
        .map(|i| json!({"ItemId": format!("item-{i:02}")}))
        .collect();
    let (s, b) = send(
        &server,
        Method::POST,
        "/api/items",
        &key,
        Value::Array(items),
    )
    .await;
    assert_eq!((s, b), (StatusCode::OK, json!({"RowAffected": 25})));
    let users: Vec<Value> = (0..7)
        .map(|i| json!({"UserId": format!("user-{i}")}))
        .collect();
    send(
        &server,
        Method::POST,
        "/api/users",
        &key,
        Value::Array(users),
    )
    .await;
    let mut events = Vec::new();
    for u in 0..7 {
        for i in 0..5 {
            let kind = if i % 2 == 0 { "view" } else { "like" };
            events.push(json!({"FeedbackType": kind, "UserId": format!("user-{u}"),
                "ItemId": format!("item-{:02}", u + i), "Timestamp": "2024-03-01T12:00:00Z"}));
        }
    }
    let (s, b) = send(
        &server,
        Method::POST,
        "/api/feedback",
        &key,
        Value::Array(events),
    )
    .await;
    assert_eq!((s, b), (StatusCode::OK, json!({"RowAffected": 35})));

    // Follows the cursor (`cursor`, or gorse.js's `Cursor`) until it comes back empty.
    async fn all(
        server: &TestServer,
        key: &str,
        path: &str,
        field: &str,
        param: &str,
    ) -> (Vec<Value>, usize) {
        let (mut out, mut cursor, mut pages) = (Vec::new(), String::new(), 0);
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let (s, page) = get(server, &format!("{path}{sep}{param}={cursor}"), key).await;
            assert_eq!(s, StatusCode::OK, "{page}");
            out.extend(page[field].as_array().unwrap().iter().cloned());
            pages += 1;
            cursor = page["Cursor"].as_str().unwrap().to_string();
            if cursor.is_empty() {
                return (out, pages);
            }
            assert!(pages < 100, "the cursor does not end");
        }
    }
    let (items, pages) = all(&server, &key, "/api/items?n=10", "Items", "cursor").await;
    assert_eq!(items.len(), 25);
    assert_eq!(pages, 3);
    assert_eq!(items[24]["ItemId"], "item-24");
    let (users, _) = all(&server, &key, "/api/users?n=3", "Users", "Cursor").await;
    assert_eq!(users.len(), 7);
    let (feedback, pages) = all(&server, &key, "/api/feedback?n=10", "Feedback", "cursor").await;
    assert_eq!(feedback.len(), 35);
    assert_eq!(pages, 4);
    let keys: std::collections::HashSet<String> = feedback
        .iter()
        .map(|f| format!("{}/{}/{}", f["UserId"], f["ItemId"], f["FeedbackType"]))
        .collect();
    assert_eq!(keys.len(), 35, "no event twice");
    let (likes, _) = all(
        &server,
        &key,
        "/api/feedback/like?n=4",
        "Feedback",
        "cursor",
    )
    .await;
    assert_eq!(likes.len(), 14);
    assert!(likes.iter().all(|f| f["FeedbackType"] == "like"));
    // Gorse's default page is 10.
    let (_, page) = get(&server, "/api/items", &key).await;
    assert_eq!(page["Items"].as_array().unwrap().len(), 10);
    // Search (PyGorse's `search_items`): items whose id or text contains the query.
    let (_, found) = get(&server, "/api/items?q=item-2&n=100", &key).await;
    assert_eq!(found["Items"].as_array().unwrap().len(), 5, "{found}");
    // A cursor this API did not write is refused: 400 (Gorse's stores fail to decode it and
    // Gorse answers 500; nothing failed on the server here).
    let (s, b) = get(&server, "/api/feedback?cursor=not-a-cursor", &key).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
}

#[tokio::test]
async fn bad_input_is_answered_as_gorse_answers_it() {
    let server = TestServer::start().await;
    let key = server.tenant_with_key("strict", "secret").await;
    // Sends a raw body with a content type; returns the status and the body (JSON, or an
    // error's text as a JSON string).
    let raw = |method: Method,
               path: &'static str,
               content_type: Option<&'static str>,
               body: &'static str| {
        let server = &server;
        let key = key.clone();
        async move {
            let mut req = server
                .client
                .request(method, format!("{}{path}", server.base))
                .header("X-API-Key", key)
                .body(body);
            if let Some(ct) = content_type {
                req = req.header("Content-Type", ct);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let text_plain = resp
                .headers()
                .get("content-type")
                .is_some_and(|v| v.to_str().unwrap() == "text/plain; charset=utf-8");
            let text = resp.text().await.unwrap();
            if status.is_success() {
                (status, serde_json::from_str::<Value>(&text).unwrap())
            } else {
                assert!(text_plain, "{path}: not plain text: {text}");
                (status, Value::String(text))
            }
        }
    };
    let post = |path: &'static str, body: &'static str| {
        raw(Method::POST, path, Some("application/json"), body)
    };

    // Bodies. Gorse's handlers pass whatever `request.ReadEntity` returns to BadRequest: 400
    // with the error's text. go-restful reads a body only as its content type says
    // (`Unable to unmarshal content of type:` otherwise, a ServiceError), with Go's
    // `json.Decoder`: nothing is `EOF`, a value cut short `unexpected EOF`, a value of the
    // wrong type Go's UnmarshalTypeError; only the first value is read.
    let (s, b) = post("/api/feedback", "").await;
    assert_text(s, &b, StatusCode::BAD_REQUEST, "EOF");
    let (s, b) = post("/api/feedback", "[{").await;
    assert_text(s, &b, StatusCode::BAD_REQUEST, "unexpected EOF");
    let (s, b) = post("/api/feedback", "[}").await;
    assert_text_has(s, &b, StatusCode::BAD_REQUEST, "invalid JSON");
    let (s, b) = raw(
        Method::POST,
        "/api/item",
        Some("text/plain"),
        r#"{"ItemId": "t"}"#,
    )
    .await;
    assert_text(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "[ServiceError:400] Unable to unmarshal content of type:text/plain",
    );
    let (s, b) = raw(Method::POST, "/api/item", None, r#"{"ItemId": "t"}"#).await;
    assert_text(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "[ServiceError:400] Unable to unmarshal content of type:",
    );
    let (s, b) = raw(
        Method::POST,
        "/api/item",
        Some("application/json; charset=utf-8"),
        r#"{"ItemId": "t"} and what follows"#,
    )
    .await;
    assert_eq!((s, b), (StatusCode::OK, json!({"RowAffected": 1})));
    // insertItem decodes a `server.Item`, insertUsers a `[]data.User`, insertFeedback a
    // `[]server.Feedback`, modifyItem a `data.ItemPatch`.
    let (s, b) = post("/api/item", r#"{"ItemId": 7}"#).await;
    assert_text(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "json: cannot unmarshal number into Go struct field Item.ItemId of type string",
    );
    let (s, b) = post("/api/item", r#"{"ItemId": "x", "Categories": "Drama"}"#).await;
    assert_text(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "json: cannot unmarshal string into Go struct field Item.Categories of type []string",
    );
    let (s, b) = post("/api/users", r#"[{"UserId": "u", "Subscribe": ["a", 1]}]"#).await;
    assert_text(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "json: cannot unmarshal number into Go struct field User.Subscribe of type string",
    );
    let (s, b) = post("/api/users", r#""users""#).await;
    assert_text(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "json: cannot unmarshal string into Go value of type []data.User",
    );
    let (s, b) = post("/api/feedback", r#"{"FeedbackType": "view"}"#).await;
    assert_text(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "json: cannot unmarshal object into Go value of type []server.Feedback",
    );
    let (s, b) = post("/api/user", r#"["u"]"#).await;
    assert_text(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "json: cannot unmarshal array into Go value of type data.User",
    );
    let (s, b) = raw(
        Method::PATCH,
        "/api/item/t",
        Some("application/json"),
        r#"{"IsHidden": "yes"}"#,
    )
    .await;
    assert_text(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "json: cannot unmarshal string into Go struct field ItemPatch.IsHidden of type bool",
    );
    // An empty batch, or `null` (a nil slice in Go), affects no row.
    for body in ["[]", "null"] {
        let (s, b) = post("/api/items", body).await;
        assert_eq!(
            (s, b),
            (StatusCode::OK, json!({"RowAffected": 0})),
            "{body}"
        );
    }

    // Labels: Gorse's ValidateLabels (storage/data/database.go) takes a string, a number, a
    // list of strings or of numbers, or an object of those, duplicates included; it refuses
    // the rest with its texts.
    let (s, b) = post("/api/user", r#"{"UserId": "u", "Labels": ["a", "a"]}"#).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"RowAffected": 1})));
    let (_, u) = get(&server, "/api/user/u", &key).await;
    assert_eq!(
        u["Labels"],
        json!(["a", "a"]),
        "a user's labels are kept as sent"
    );
    let (s, b) = post("/api/user", r#"{"UserId": "v", "Labels": 3}"#).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"RowAffected": 1})));
    let (s, b) = post(
        "/api/user",
        r#"{"UserId": "w", "Labels": {"size": [1, 2], "city": "Oslo"}}"#,
    )
    .await;
    assert_eq!((s, b), (StatusCode::OK, json!({"RowAffected": 1})));
    let (s, b) = post("/api/user", r#"{"UserId": "u", "Labels": ["a", 1]}"#).await;
    assert_text(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        r#"unsupported labels: ["a",1]"#,
    );
    let (s, b) = post("/api/user", r#"{"UserId": "u", "Labels": {"ok": [true]}}"#).await;
    assert_text(s, &b, StatusCode::BAD_REQUEST, "unsupported labels: [true]");
    let (s, b) = post("/api/user", r#"{"UserId": "u", "Labels": true}"#).await;
    assert_text(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "unsupported type in labels: bool",
    );
    // An item keeps its list labels as tags, each once (a deviation: Gorse keeps ["a", "a"]),
    // and has no place for the labels Gorse also takes that are neither a list of strings nor
    // an object (Marquee's 400).
    let (s, b) = post("/api/item", r#"{"ItemId": "d", "Labels": ["a", "a", "b"]}"#).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"RowAffected": 1})));
    let (_, d) = get(&server, "/api/item/d", &key).await;
    assert_eq!(d["Labels"], json!(["a", "b"]));
    let (s, b) = post("/api/item", r#"{"ItemId": "n", "Labels": [1, 2]}"#).await;
    assert_text_has(s, &b, StatusCode::BAD_REQUEST, "Labels");

    // Marquee's own limits (Gorse has none of them): 400 with Marquee's text.
    let (s, b) = post(
        "/api/item",
        r#"{"ItemId": "x", "Timestamp": "next tuesday"}"#,
    )
    .await;
    assert_text_has(s, &b, StatusCode::BAD_REQUEST, "next tuesday");
    let (s, b) = post("/api/item", r#"{"Comment": "no id"}"#).await;
    assert_text_has(s, &b, StatusCode::BAD_REQUEST, "id");
    let (s, b) = post(
        "/api/feedback",
        r#"[{"FeedbackType": "view", "UserId": "u"}]"#,
    )
    .await;
    assert_text_has(s, &b, StatusCode::BAD_REQUEST, "element 0 of the batch");

    // Query parameters. Gorse's ParseInt is `strconv.Atoi`, whose error BadRequest answers;
    // ParseDuration is `time.ParseDuration`, whose error text is `time: invalid duration "…"`.
    for (path, text) in [
        (
            "/api/recommend/u?n=ten",
            r#"strconv.Atoi: parsing "ten": invalid syntax"#,
        ),
        (
            "/api/items?n=x",
            r#"strconv.Atoi: parsing "x": invalid syntax"#,
        ),
        (
            "/api/users?n=%205",
            r#"strconv.Atoi: parsing " 5": invalid syntax"#,
        ),
        (
            "/api/popular?n=1.5",
            r#"strconv.Atoi: parsing "1.5": invalid syntax"#,
        ),
        (
            "/api/latest?offset=99999999999999999999",
            r#"strconv.Atoi: parsing "99999999999999999999": value out of range"#,
        ),
        (
            "/api/recommend/u?write-back-type=read&write-back-delay=soon",
            r#"time: invalid duration "soon""#,
        ),
    ] {
        let (s, b) = get(&server, path, &key).await;
        assert_text(s, &b, StatusCode::BAD_REQUEST, text);
    }
    // Marquee's limits: no negative counts (Gorse hands them to its store), at most 1000 in a
    // list, feedback types without spaces.
    for path in [
        "/api/recommend/u?offset=-1",
        "/api/recommend/u?n=900&offset=200",
        "/api/recommend/u?write-back-type=two%20words",
    ] {
        let (s, b) = get(&server, path, &key).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {b}");
        assert!(b.as_str().is_some_and(|t| !t.is_empty()), "{path}: {b}");
    }
    // Empty values fall back to the defaults, as Gorse's ParseInt does.
    let (s, _) = get(&server, "/api/items?n=&cursor=", &key).await;
    assert_eq!(s, StatusCode::OK);

    // Unknown objects: 404 with the text of Gorse's stores.
    let (s, b) = get(&server, "/api/user/nobody", &key).await;
    assert_text(s, &b, StatusCode::NOT_FOUND, "nobody: user not found");
    let (s, b) = get(&server, "/api/item/nothing", &key).await;
    assert_text(s, &b, StatusCode::NOT_FOUND, "nothing: item not found");

    // No key or a wrong one: Gorse's AuthFilter, `WriteError(401, fmt.Errorf("unauthorized"))`.
    let (s, b) = get(&server, "/api/users", "mq_sk_wrong_key_0000000000000").await;
    assert_text(s, &b, StatusCode::UNAUTHORIZED, "unauthorized");
    let (s, b) = get(&server, "/api/users", "").await;
    assert_text(s, &b, StatusCode::UNAUTHORIZED, "unauthorized");
    let (s, _, b) = gorse(&server, Method::DELETE, "/api/user/u", "", None, &[]).await;
    assert_text(s, &b, StatusCode::UNAUTHORIZED, "unauthorized");
    let (_, u) = get(&server, "/api/user/u", &key).await;
    assert_eq!(u["UserId"], "u", "the refused deletion deleted nothing");

    // go-restful's router: an unknown route is `404: Page Not Found`, a route without the
    // method `405: Method Not Allowed`, key or no key.
    for k in [key.as_str(), ""] {
        let (s, b) = get(&server, "/api/no-such-route", k).await;
        assert_text(s, &b, StatusCode::NOT_FOUND, "404: Page Not Found");
        let (s, _, b) = gorse(&server, Method::PATCH, "/api/users", k, None, &[]).await;
        assert_text(
            s,
            &b,
            StatusCode::METHOD_NOT_ALLOWED,
            "405: Method Not Allowed",
        );
    }
    // Marquee's own routes keep Marquee's error bodies.
    let (s, b) = server.get("/v1/no-such-route", Some(&key)).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn gorses_health_probes_need_no_key() {
    // Gorse's `/api/health/live` and `/api/health/ready` (checkLive, checkReady), which its
    // AuthFilter lets through whatever the key: Gorse's HealthStatus.
    let server = TestServer::start().await;
    for key in ["", "mq_sk_wrong_key_0000000000000"] {
        for path in ["/api/health/live", "/api/health/ready"] {
            let (s, b) = get(&server, path, key).await;
            assert_eq!(s, StatusCode::OK, "{path}: {b}");
            assert_eq!(
                b,
                json!({"Ready": true, "DataStoreError": null, "CacheStoreError": null,
                       "DataStoreConnected": true, "CacheStoreConnected": true}),
                "{path}"
            );
        }
    }
}

#[tokio::test]
async fn the_gorse_api_keeps_tenants_apart_and_keys_to_their_scopes() {
    let server = TestServer::start().await;
    let a = server.tenant_with_key("alpha", "secret").await;
    seed(&server, &a).await;
    let (s, _) = send(
        &server,
        Method::POST,
        "/api/user",
        &a,
        json!({"UserId": "ann", "Comment": "alpha's customer"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let b = server.tenant_with_key("beta", "secret").await;

    // B sees none of A's objects...
    for (path, text) in [
        ("/api/user/ann", "ann: user not found"),
        ("/api/item/alien", "alien: item not found"),
        (
            "/api/feedback/view/ann/alien",
            "view ann alien: feedback not found",
        ),
    ] {
        let (s, body) = get(&server, path, &b).await;
        assert_text(s, &body, StatusCode::NOT_FOUND, text);
    }
    for path in [
        "/api/users",
        "/api/items",
        "/api/feedback",
        "/api/user/ann/feedback",
        "/api/item/alien/feedback",
        "/api/feedback/ann/alien",
        "/api/latest",
        "/api/popular",
        "/api/item/alien/neighbors",
        "/api/user/ann/neighbors",
    ] {
        let (s, body) = get(&server, path, &b).await;
        assert_eq!(s, StatusCode::OK, "{path}: {body}");
        let text = body.to_string();
        for secret in ["alien", "ann", "alpha's customer", "t2", "heat"] {
            assert!(!text.contains(secret), "{path} shows A's {secret}: {body}");
        }
    }
    let (_, recs) = get(&server, "/api/recommend/ann", &b).await;
    assert_eq!(recs, json!([]), "B has no items to recommend");
    // ...and cannot change them: deleting or patching A's objects finds nothing. The answers
    // are those for objects that are not there — the same whether A has them or not, so they
    // tell B nothing — and A's objects stay as they are.
    for (path, text) in [
        ("/api/item/alien", "alien: item not found"),
        ("/api/user/ann", "ann: user not found"),
    ] {
        let (s, _, body) = gorse(&server, Method::DELETE, path, &b, None, &[]).await;
        assert_text(s, &body, StatusCode::NOT_FOUND, text);
        let (s, body) = send(&server, Method::PATCH, path, &b, json!({"Comment": "B's"})).await;
        assert_text(s, &body, StatusCode::NOT_FOUND, text);
        let (s, body) = get(&server, path, &a).await;
        assert_eq!(s, StatusCode::OK, "{path} is still A's: {body}");
        assert_ne!(body["Comment"], "B's", "{path}");
        let (s, _) = get(&server, path, &b).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: B created nothing");
    }
    let (s, ann_feedback) = get(&server, "/api/user/ann/feedback", &a).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!ann_feedback.as_array().unwrap().is_empty());
    let (s, _, body) = gorse(
        &server,
        Method::DELETE,
        "/api/feedback/ann/alien",
        &b,
        None,
        &[],
    )
    .await;
    assert_eq!((s, body), (StatusCode::OK, json!({"RowAffected": 0})));
    // B's feedback naming "alien" creates B's own item, not a link to A's.
    let (s, _) = send(
        &server,
        Method::POST,
        "/api/feedback",
        &b,
        json!([{"FeedbackType": "like", "UserId": "ann", "ItemId": "alien"}]),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, b_alien) = get(&server, "/api/item/alien", &b).await;
    assert_eq!(b_alien["Categories"], json!([]));
    let (_, a_alien) = get(&server, "/api/item/alien", &a).await;
    assert_eq!(a_alien["Categories"], json!(["Sci-Fi", "Horror"]));
    let (_, a_likes) = get(&server, "/api/user/ann/feedback/like", &a).await;
    assert_eq!(a_likes, json!([]));
    let (_, a_ann) = get(&server, "/api/user/ann", &a).await;
    assert_eq!(a_ann["Comment"], "alpha's customer");

    // Scopes: a recommend-only key recommends, but writes nothing, not even by write-back.
    let (reader, _) = server
        .key_with("alpha", json!({"kind": "secret", "scopes": ["recommend"]}))
        .await;
    let (s, recs) = get(&server, "/api/recommend/ann?n=2", &reader).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(recs.as_array().unwrap().len(), 2);
    // (Gorse has no scopes: Marquee's 403, in Gorse's plain-text form.)
    let (s, body) = get(&server, "/api/recommend/ann?write-back-type=read", &reader).await;
    assert_text_has(s, &body, StatusCode::FORBIDDEN, "feedback:write");
    let (s, body) = send(
        &server,
        Method::POST,
        "/api/item",
        &reader,
        json!({"ItemId": "x"}),
    )
    .await;
    assert_text_has(s, &body, StatusCode::FORBIDDEN, "catalog:write");
    let (s, body) = get(&server, "/api/user/ann/feedback", &reader).await;
    assert_text_has(s, &body, StatusCode::FORBIDDEN, "users:read");
    let (_, read) = get(&server, "/api/user/ann/feedback/read", &a).await;
    assert_eq!(read, json!([]), "the refused write-back wrote nothing");

    // Catalogue and user routes are not metered; recommend-type routes are.
    let (_, headers, _) = gorse(&server, Method::GET, "/api/items", &a, None, &[]).await;
    assert!(headers.get("x-marquee-units").is_none());
    for path in [
        "/api/popular",
        "/api/latest",
        "/api/item/alien/neighbors",
        "/api/user/ann/neighbors",
        "/api/recommend/ann/Action",
    ] {
        let (s, headers, _) = gorse(&server, Method::GET, path, &a, None, &[]).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            headers["x-marquee-units"].to_str().unwrap(),
            "recommendations=1",
            "{path}"
        );
    }
}
