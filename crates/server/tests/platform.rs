//! Acceptance tests of the provider platform, against a real server over HTTP: tenant
//! isolation on every route, budgets and quotas under concurrency, failing closed when usage
//! cannot be recorded, rate limits, encryption at rest with export and erasure, usage reports
//! and invoices that add up to what was served, and the life of an API key.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use futures_util::future::join_all;
use marquee_platform::{Capability, MasterKey, MasterKeys, Period, day_label};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Helpers

/// Every scope a key may hold, as written in key policies.
const ALL_SCOPES: &[&str] = &[
    "recommend",
    "feedback:write",
    "catalog:read",
    "catalog:write",
    "users:read",
    "users:write",
    "models:train",
    "experiments",
    "keys:manage",
    "models:embeddings",
    "models:chat",
    "models:speech",
    "models:vision",
    "usage:read",
];

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `YYYY-MM` of the current UTC month (the invoice period).
fn this_month() -> String {
    Period::Month.label(now_ms())
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Parses a non-negative decimal amount ("0.0057") into billionths, independently of the
/// server's own money type.
fn nanos(decimal: &str) -> i64 {
    let (whole, fraction) = decimal.split_once('.').unwrap_or((decimal, ""));
    assert!(fraction.len() <= 9, "more than 9 decimals: {decimal}");
    let whole: i64 = whole
        .parse()
        .unwrap_or_else(|_| panic!("not a decimal: {decimal}"));
    let fraction: i64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}")
            .parse()
            .unwrap_or_else(|_| panic!("not a decimal: {decimal}"))
    };
    whole * 1_000_000_000 + fraction
}

/// The shortest decimal of an amount in billionths ("0.0057", "12").
fn decimal(nanos: i64) -> String {
    let (whole, fraction) = (nanos / 1_000_000_000, nanos % 1_000_000_000);
    if fraction == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{}", format!("{fraction:09}").trim_end_matches('0'))
    }
}

/// Sets the operator's price table: `recommendations` at `price` per 1,000, USD, monthly.
async fn price_recommendations(server: &TestServer, price: &str) {
    let (s, b) = server
        .put(
            "/v1/admin/prices",
            Some(ADMIN_KEY),
            json!({"currency": "USD", "period": "month", "prices": {"recommendations": price}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

/// Sends `n` copies of a GET at once; returns each status, headers and JSON body.
async fn burst(
    server: &TestServer,
    key: &str,
    path: &str,
    n: usize,
) -> Vec<(StatusCode, HeaderMap, Value)> {
    let requests = (0..n).map(|_| server.send(Method::GET, path, Some(key), None, &[]));
    join_all(requests)
        .await
        .into_iter()
        .map(|(s, h, text)| {
            let body = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("non-JSON answer ({s}) to {path}: {text}"));
            (s, h, body)
        })
        .collect()
}

/// Every string of a JSON value: string values and object keys.
fn strings_in(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::String(s) => {
            out.insert(s.clone());
        }
        Value::Array(a) => a.iter().for_each(|v| strings_in(v, out)),
        Value::Object(m) => {
            for (k, v) in m {
                out.insert(k.clone());
                strings_in(v, out);
            }
        }
        _ => {}
    }
}

/// Asks for a recommendation every 100 ms until one is served (the ledger takes writes again),
/// at most 5 s; each refusal meanwhile must be 503 `ledger_unavailable`.
async fn until_served_again(server: &TestServer, key: &str) {
    let started = Instant::now();
    loop {
        let (s, body) = server.get("/v1/recommend/ann", Some(key)).await;
        if s == StatusCode::OK {
            return;
        }
        assert_error(
            s,
            &body,
            StatusCode::SERVICE_UNAVAILABLE,
            "ledger_unavailable",
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still refused after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The ledger rows of the current period, as `/v1/usage/records` lists them.
async fn usage_records(server: &TestServer, key: &str) -> Vec<Value> {
    let (s, b) = server.get("/v1/usage/records?limit=10000", Some(key)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["next"].is_null(), "one page holds them all: {b}");
    b["data"].as_array().unwrap().clone()
}

// ---------------------------------------------------------------------------------------------
// 1. Isolation

/// What a route needs of its caller.
#[derive(Clone, Copy, Debug)]
enum Need {
    /// Nothing: load balancers' probes, which answer without looking at keys.
    Keyless,
    /// Any valid key; the answer is the same for every tenant (prices, the model list).
    AnyKey,
    /// The operator's key (an admin key of no tenant).
    Operator,
    /// A tenant key holding every one of these scopes.
    Scopes(&'static [&'static str]),
}

/// What a key of another tenant (B) must get from a route called with tenant A's ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Foreign {
    /// The route addresses one of A's objects (or A itself, or is the operator's): refused
    /// with 401, 403 or 404.
    Denied,
    /// The route works on the caller's own tenant, so B acts on B's (mostly empty) data:
    /// any answer below 500 is fine as long as nothing of A's shows.
    Own,
    /// The route needs a model this test server does not load: B (who holds the scope) gets a
    /// 4xx, or a 503 saying the model is missing — never a 2xx, never A's data.
    NeedsModel,
}

struct RouteCase {
    method: Method,
    /// The route exactly as `routes/mod.rs` writes it.
    template: &'static str,
    need: Need,
    foreign: Foreign,
    body: Option<Value>,
    /// Appended to the concrete path (query parameters the route requires).
    query: &'static str,
}

fn case(
    method: Method,
    template: &'static str,
    need: Need,
    foreign: Foreign,
    body: Option<Value>,
) -> RouteCase {
    RouteCase {
        method,
        template,
        need,
        foreign,
        body,
        query: "",
    }
}

/// Every route of `routes/mod.rs`, with what it needs and a valid body (so that a refusal is
/// the access check's, not the body parser's).
fn route_cases() -> Vec<RouteCase> {
    use Foreign::*;
    use Need::*;
    let image = json!({"model": "no-such-model", "image": "aGVsbG8="});
    let mut cases = vec![
        case(Method::GET, "/healthz", Keyless, Own, None),
        case(Method::GET, "/readyz", Keyless, Own, None),
        // The API's description and docs page: public, and the same for everyone.
        case(Method::GET, "/openapi.json", Keyless, Own, None),
        case(Method::GET, "/docs", Keyless, Own, None),
        case(Method::GET, "/docs/", Keyless, Own, None),
        case(Method::GET, "/docs/{*file}", Keyless, Own, None),
        case(Method::GET, "/api/health/live", Keyless, Own, None),
        case(Method::GET, "/api/health/ready", Keyless, Own, None),
        case(Method::GET, "/metrics", Operator, Denied, None),
        case(
            Method::POST,
            "/v1/admin/tenants",
            Operator,
            Denied,
            Some(json!({"name": "intruder"})),
        ),
        case(Method::GET, "/v1/admin/tenants", Operator, Denied, None),
        case(
            Method::POST,
            "/v1/admin/tenants/{tenant}/keys",
            Scopes(&["keys:manage"]),
            Denied,
            Some(json!({"kind": "admin", "name": "intruder"})),
        ),
        case(
            Method::GET,
            "/v1/admin/tenants/{tenant}/keys",
            Scopes(&["keys:manage"]),
            Denied,
            None,
        ),
        case(
            Method::DELETE,
            "/v1/admin/keys/{key_id}",
            Scopes(&["keys:manage"]),
            Denied,
            None,
        ),
        case(
            Method::PATCH,
            "/v1/admin/keys/{key_id}",
            Scopes(&["keys:manage"]),
            Denied,
            Some(json!({"name": "hijacked", "budget": "0"})),
        ),
        case(
            Method::POST,
            "/v1/admin/keys/{key_id}/rotate",
            Scopes(&["keys:manage"]),
            Denied,
            Some(json!({"grace_seconds": 0})),
        ),
        case(
            Method::GET,
            "/v1/admin/tenants/{tenant}/policy",
            Scopes(&["keys:manage"]),
            Denied,
            None,
        ),
        case(
            Method::PUT,
            "/v1/admin/tenants/{tenant}/policy",
            Operator,
            Denied,
            Some(json!({"limits": {"requests_per_second": 1}, "budget": "0"})),
        ),
        case(
            Method::PUT,
            "/v1/admin/prices",
            Operator,
            Denied,
            Some(json!({"currency": "EUR", "period": "day", "prices": {"recommendations": "999"}})),
        ),
        case(Method::GET, "/v1/prices", AnyKey, Own, None),
        case(
            Method::GET,
            "/v1/audit",
            Scopes(&["keys:manage"]),
            Own,
            None,
        ),
        case(Method::GET, "/v1/usage", Scopes(&["usage:read"]), Own, None),
        case(
            Method::GET,
            "/v1/usage/records",
            Scopes(&["usage:read"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/v1/invoices/{month}",
            Scopes(&["usage:read"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/v1/items",
            Scopes(&["catalog:read"]),
            Own,
            None,
        ),
        case(
            Method::POST,
            "/v1/items",
            Scopes(&["catalog:write"]),
            Own,
            Some(json!([{"id": "b-own-item", "title": "B's own item"}])),
        ),
        case(
            Method::GET,
            "/v1/items/{item_id}",
            Scopes(&["catalog:read"]),
            Denied,
            None,
        ),
        case(
            Method::PUT,
            "/v1/items/{item_id}",
            Scopes(&["catalog:write"]),
            Own,
            Some(json!({"title": "Hijacked"})),
        ),
        case(
            Method::PATCH,
            "/v1/items/{item_id}",
            Scopes(&["catalog:write"]),
            Denied,
            Some(json!({"title": "Hijacked"})),
        ),
        case(
            Method::DELETE,
            "/v1/items/{item_id}",
            Scopes(&["catalog:write"]),
            Denied,
            None,
        ),
        case(Method::GET, "/v1/users", Scopes(&["users:read"]), Own, None),
        case(
            Method::POST,
            "/v1/users",
            Scopes(&["users:write"]),
            Own,
            Some(json!([{"id": "b-own-user", "attributes": {"plan": "b"}}])),
        ),
        case(
            Method::GET,
            "/v1/users/{user_id}",
            Scopes(&["users:read"]),
            Denied,
            None,
        ),
        case(
            Method::PUT,
            "/v1/users/{user_id}",
            Scopes(&["users:write"]),
            Own,
            Some(json!({"attributes": {"hijacked": true}})),
        ),
        case(
            Method::PATCH,
            "/v1/users/{user_id}",
            Scopes(&["users:write"]),
            Denied,
            Some(json!({"attributes": {"hijacked": true}})),
        ),
        case(
            Method::DELETE,
            "/v1/users/{user_id}",
            Scopes(&["users:write"]),
            Denied,
            None,
        ),
        case(
            Method::GET,
            "/v1/users/{user_id}/feedback",
            Scopes(&["users:read"]),
            Denied,
            None,
        ),
        case(
            Method::GET,
            "/v1/users/{user_id}/export",
            Scopes(&["users:read"]),
            Denied,
            None,
        ),
        case(
            Method::GET,
            "/v1/users/{user_id}/profile",
            Scopes(&["users:read"]),
            Denied,
            None,
        ),
        case(
            Method::POST,
            "/v1/feedback",
            Scopes(&["feedback:write"]),
            Own,
            Some(json!([{"user_id": "ann", "item_id": "alien", "type": "view"}])),
        ),
        case(
            Method::GET,
            "/v1/recommend/{user_id}",
            Scopes(&["recommend"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/v1/recommend/{user_id}/{item_id}",
            Scopes(&["recommend"]),
            Denied,
            None,
        ),
        case(
            Method::GET,
            "/recommend/{user_id}/{item_id}",
            Scopes(&["recommend"]),
            Denied,
            None,
        ),
        case(
            Method::GET,
            "/v1/items/{item_id}/similar",
            Scopes(&["recommend"]),
            Denied,
            None,
        ),
        case(
            Method::POST,
            "/v1/recommend/session",
            Scopes(&["recommend"]),
            Own,
            Some(json!({"items": ["alien"]})),
        ),
        case(
            Method::GET,
            "/v1/popular",
            Scopes(&["recommend"]),
            Own,
            None,
        ),
        RouteCase {
            query: "?q=alien",
            ..case(
                Method::GET,
                "/v1/search",
                Scopes(&["recommend"]),
                NeedsModel,
                None,
            )
        },
        case(
            Method::POST,
            "/v1/items/{item_id}/generate",
            Scopes(&["catalog:read", "models:chat"]),
            Denied,
            Some(json!({"kind": "tagline"})),
        ),
        case(
            Method::GET,
            "/v1/trending",
            Scopes(&["recommend"]),
            Own,
            None,
        ),
        case(
            Method::POST,
            "/v1/experiments",
            Scopes(&["experiments"]),
            Own,
            Some(
                json!({"name": "b-exp", "variants": [{"name": "a", "share": 1}, {"name": "b", "share": 1}]}),
            ),
        ),
        case(
            Method::GET,
            "/v1/experiments",
            Scopes(&["experiments"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/v1/experiments/{id}",
            Scopes(&["experiments"]),
            Denied,
            None,
        ),
        case(
            Method::POST,
            "/v1/experiments/{id}/stop",
            Scopes(&["experiments"]),
            Denied,
            None,
        ),
        case(
            Method::GET,
            "/v1/experiments/{id}/results",
            Scopes(&["experiments"]),
            Denied,
            None,
        ),
        case(Method::GET, "/v1/models", AnyKey, Own, None),
        case(Method::GET, "/v1/models/{model}", AnyKey, Own, None),
        case(
            Method::POST,
            "/v1/embeddings",
            Scopes(&["models:embeddings"]),
            NeedsModel,
            Some(json!({"model": "no-such-model", "input": "hello"})),
        ),
        case(
            Method::POST,
            "/v1/chat/completions",
            Scopes(&["models:chat"]),
            NeedsModel,
            Some(
                json!({"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}),
            ),
        ),
        case(
            Method::POST,
            "/v1/audio/speech",
            Scopes(&["models:speech"]),
            NeedsModel,
            Some(json!({"model": "no-such-model", "input": "hello", "voice": "alloy"})),
        ),
        case(
            Method::POST,
            "/v1/audio/transcriptions",
            Scopes(&["models:speech"]),
            NeedsModel,
            Some(json!({})),
        ),
        case(
            Method::POST,
            "/v1/images/classify",
            Scopes(&["models:vision"]),
            NeedsModel,
            Some(image.clone()),
        ),
        case(
            Method::POST,
            "/v1/items/{item_id}/image",
            Scopes(&["catalog:write", "models:vision"]),
            Denied,
            Some(image),
        ),
        case(
            Method::POST,
            "/v1/models/train",
            Scopes(&["models:train"]),
            Own,
            Some(json!({})),
        ),
        case(
            Method::GET,
            "/v1/training",
            Scopes(&["models:train"]),
            Own,
            None,
        ),
        // Gorse's API (`/api/…`): the same scopes as Marquee's equivalent routes. Lists and
        // lookups that Gorse answers with an empty list for unknown ids work on the caller's
        // own tenant.
        case(
            Method::POST,
            "/api/user",
            Scopes(&["users:write"]),
            Own,
            Some(json!({"UserId": "b-own-gorse-user", "Comment": "B's"})),
        ),
        case(
            Method::POST,
            "/api/users",
            Scopes(&["users:write"]),
            Own,
            Some(json!([{"UserId": "b-own-gorse-user-2"}])),
        ),
        case(
            Method::GET,
            "/api/users",
            Scopes(&["users:read"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/user/{user_id}",
            Scopes(&["users:read"]),
            Denied,
            None,
        ),
        case(
            Method::PATCH,
            "/api/user/{user_id}",
            Scopes(&["users:write"]),
            Denied,
            Some(json!({"Comment": "hijacked"})),
        ),
        case(
            Method::DELETE,
            "/api/user/{user_id}",
            Scopes(&["users:write"]),
            Denied,
            None,
        ),
        case(
            Method::POST,
            "/api/item",
            Scopes(&["catalog:write"]),
            Own,
            Some(json!({"ItemId": "b-own-gorse-item"})),
        ),
        case(
            Method::POST,
            "/api/items",
            Scopes(&["catalog:write"]),
            Own,
            Some(json!([{"ItemId": "b-own-gorse-item-2"}])),
        ),
        case(
            Method::GET,
            "/api/items",
            Scopes(&["catalog:read"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/item/{item_id}",
            Scopes(&["catalog:read"]),
            Denied,
            None,
        ),
        case(
            Method::PATCH,
            "/api/item/{item_id}",
            Scopes(&["catalog:write"]),
            Denied,
            Some(json!({"Comment": "hijacked", "IsHidden": true})),
        ),
        case(
            Method::DELETE,
            "/api/item/{item_id}",
            Scopes(&["catalog:write"]),
            Denied,
            None,
        ),
        case(
            Method::PUT,
            "/api/item/{item_id}/category/{category}",
            Scopes(&["catalog:write"]),
            Denied,
            None,
        ),
        case(
            Method::DELETE,
            "/api/item/{item_id}/category/{category}",
            Scopes(&["catalog:write"]),
            Denied,
            None,
        ),
        case(
            Method::POST,
            "/api/feedback",
            Scopes(&["feedback:write"]),
            Own,
            Some(json!([{"FeedbackType": "view", "UserId": "ann", "ItemId": "alien"}])),
        ),
        case(
            Method::PUT,
            "/api/feedback",
            Scopes(&["feedback:write"]),
            Own,
            Some(json!([{"FeedbackType": "view", "UserId": "ann", "ItemId": "alien"}])),
        ),
        case(
            Method::GET,
            "/api/feedback",
            Scopes(&["users:read"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/feedback/{feedback_type}",
            Scopes(&["users:read"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/feedback/{user_id}/{item_id}",
            Scopes(&["users:read"]),
            Own,
            None,
        ),
        case(
            Method::DELETE,
            "/api/feedback/{user_id}/{item_id}",
            Scopes(&["feedback:write"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/feedback/{feedback_type}/{user_id}/{item_id}",
            Scopes(&["users:read"]),
            Denied,
            None,
        ),
        case(
            Method::DELETE,
            "/api/feedback/{feedback_type}/{user_id}/{item_id}",
            Scopes(&["feedback:write"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/user/{user_id}/feedback",
            Scopes(&["users:read"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/user/{user_id}/feedback/{feedback_type}",
            Scopes(&["users:read"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/item/{item_id}/feedback",
            Scopes(&["users:read"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/item/{item_id}/feedback/",
            Scopes(&["users:read"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/item/{item_id}/feedback/{feedback_type}",
            Scopes(&["users:read"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/recommend/{user_id}",
            Scopes(&["recommend"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/recommend/{user_id}/",
            Scopes(&["recommend"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/recommend/{user_id}/{category}",
            Scopes(&["recommend"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/item/{item_id}/neighbors",
            Scopes(&["recommend"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/item/{item_id}/neighbors/",
            Scopes(&["recommend"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/item/{item_id}/neighbors/{category}",
            Scopes(&["recommend"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/user/{user_id}/neighbors",
            Scopes(&["recommend"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/user/{user_id}/neighbors/",
            Scopes(&["recommend"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/latest",
            Scopes(&["recommend"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/latest/",
            Scopes(&["recommend"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/latest/{category}",
            Scopes(&["recommend"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/popular",
            Scopes(&["recommend"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/popular/",
            Scopes(&["recommend"]),
            Own,
            None,
        ),
        case(
            Method::GET,
            "/api/popular/{category}",
            Scopes(&["recommend"]),
            Own,
            None,
        ),
        case(
            Method::POST,
            "/api/session/recommend",
            Scopes(&["recommend"]),
            Own,
            Some(json!([{"FeedbackType": "view", "UserId": "", "ItemId": "alien"}])),
        ),
        case(
            Method::POST,
            "/api/session/recommend/",
            Scopes(&["recommend"]),
            Own,
            Some(json!([{"FeedbackType": "view", "UserId": "", "ItemId": "alien"}])),
        ),
        case(
            Method::POST,
            "/api/session/recommend/{category}",
            Scopes(&["recommend"]),
            Own,
            Some(json!([{"FeedbackType": "view", "UserId": "", "ItemId": "alien"}])),
        ),
    ];
    // Keyless and any-key routes first (B knows nothing of A yet), then the ones that name A's
    // objects, then those that create B's own (so that B's objects named like A's, created by
    // the `Own` writes, cannot make a `Denied` lookup succeed).
    cases.sort_by_key(|c| match (c.need, c.foreign) {
        (Need::Keyless | Need::AnyKey, _) => 0,
        (_, Foreign::Denied) => 1,
        (_, Foreign::NeedsModel) => 2,
        (_, Foreign::Own) => 3,
    });
    cases
}

/// The (method, path) of every handler in the route table's source: each `.route(` call's
/// path and the `get(`/`post(`/`put(`/`patch(`/`delete(` calls inside it.
fn declared_routes(source: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut count = 0;
    let mut rest = source;
    while let Some(at) = rest.find(".route(") {
        let call = &rest[at + ".route(".len()..];
        let mut depth = 1usize;
        let mut end = call.len();
        for (i, c) in call.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let span = &call[..end];
        let path = span.split('"').nth(1).unwrap_or_default().to_string();
        for (method, pattern) in [
            ("GET", "get("),
            ("POST", "post("),
            ("PUT", "put("),
            ("PATCH", "patch("),
            ("DELETE", "delete("),
        ] {
            let mut from = 0;
            while let Some(i) = span[from..].find(pattern) {
                let pos = from + i;
                let before = span[..pos].chars().next_back();
                if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    out.insert((method.to_string(), path.clone()));
                    count += 1;
                }
                from = pos + pattern.len();
            }
        }
        rest = &call[end..];
    }
    assert_eq!(count, out.len(), "a (method, path) pair is declared twice");
    out
}

/// Like [`TestServer::call`], for routes whose answer may not be JSON (the docs page): such a
/// body comes back as a JSON string.
async fn call_any(
    server: &TestServer,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (s, _, text) = server.send(method, path, Some(key), body, &[]).await;
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (s, value)
}

/// Tenant A's ids that the walk puts into paths.
struct AIds {
    tenant: String,
    key_id: String,
    experiment: String,
}

fn concrete_path(c: &RouteCase, a: &AIds) -> String {
    let path = c
        .template
        .replace("{tenant}", &a.tenant)
        .replace("{key_id}", &a.key_id)
        .replace("{month}", &this_month())
        .replace("{item_id}", "alien")
        .replace("{user_id}", "ann")
        .replace("{id}", &a.experiment)
        .replace("{model}", "no-such-model")
        .replace("{*file}", "swagger-ui.css");
    format!("{path}{}", c.query)
}

/// Whether `body` is a JSON error with a code and a message.
/// Whether `body` is an error as the route's API writes them: Marquee's JSON error, or under
/// `/api/` (Gorse's API) Gorse's plain-text message.
fn is_error_body(template: &str, body: &Value) -> bool {
    if template.starts_with("/api/") {
        body.as_str().is_some_and(|t| !t.trim().is_empty())
    } else {
        is_json_error(body)
    }
}

/// The words of a plain-text answer (and the whole text), for the leak check.
fn text_words(text: &str, out: &mut BTreeSet<String>) {
    out.insert(text.to_string());
    for w in text.split(|c: char| c.is_whitespace() || ":,;\"'`()[]{}<>".contains(c)) {
        if !w.is_empty() {
            out.insert(w.to_string());
        }
    }
}

fn is_json_error(body: &Value) -> bool {
    body["error"]["code"]
        .as_str()
        .is_some_and(|c| !c.is_empty())
        && body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
}

#[tokio::test]
async fn no_route_lets_another_tenant_or_a_key_without_the_scope_through() {
    // The walk covers exactly the routes the route table declares: a new route fails this
    // test until it is listed here with what it needs.
    let cases = route_cases();
    let declared = declared_routes(include_str!("../src/routes/mod.rs"));
    let walked: BTreeSet<(String, String)> = cases
        .iter()
        .map(|c| (c.method.to_string(), c.template.to_string()))
        .collect();
    assert_eq!(walked.len(), cases.len(), "a route is listed twice");
    assert_eq!(
        cases.len(),
        declared.len(),
        "routes/mod.rs declares {} method handlers; the isolation walk lists {}",
        declared.len(),
        cases.len()
    );
    assert_eq!(walked, declared);
    // And every scope is one a key can hold (a new capability needs a line in ALL_SCOPES).
    let scopes: Vec<&str> = Capability::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(scopes, ALL_SCOPES);

    let server = TestServer::start().await;
    let a_secret = server.tenant_with_key("alpha", "secret").await;
    server.seed_films(&a_secret).await;
    let (s, b) = server
        .put(
            "/v1/users/ann",
            Some(&a_secret),
            json!({"attributes": {"email": "ann@alpha.example"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, exp) = server
        .post(
            "/v1/experiments",
            Some(&a_secret),
            json!({"name": "alpha-secret-experiment", "variants": [{"name": "a", "share": 1}, {"name": "b", "share": 1}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{exp}");
    let (a_admin, _) = server
        .key_with("alpha", json!({"kind": "admin", "name": "alpha-admin"}))
        .await;
    let (victim, victim_id) = server
        .key_with("alpha", json!({"kind": "secret", "name": "alpha-victim"}))
        .await;
    // One key of A per scope, holding every scope but that one.
    let mut lacking: HashMap<&str, String> = HashMap::new();
    for &scope in ALL_SCOPES {
        let others: Vec<&str> = ALL_SCOPES.iter().copied().filter(|s| *s != scope).collect();
        let (key, _) = server
            .key_with(
                "alpha",
                json!({"kind": "admin", "name": format!("without {scope}"), "scopes": others}),
            )
            .await;
        lacking.insert(scope, key);
    }
    let b_secret = server.tenant_with_key("beta", "secret").await;
    let b_admin = server.key("beta", "admin").await;

    let (_, a_keys) = server
        .get("/v1/admin/tenants/alpha/keys", Some(ADMIN_KEY))
        .await;
    let a_key_ids: Vec<String> = a_keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(a_key_ids.len(), 3 + ALL_SCOPES.len());
    let a = AIds {
        tenant: "alpha".into(),
        key_id: victim_id.clone(),
        experiment: exp["id"].as_str().unwrap().to_string(),
    };
    // What B must never see unless B itself sent it.
    let mut a_secrets: BTreeSet<String> = [
        "alien",
        "aliens",
        "terminator",
        "t2",
        "heat",
        "casino",
        "amelie",
        "clueless",
        "Alien",
        "Aliens",
        "The Terminator",
        "Terminator 2",
        "Heat",
        "Casino",
        "Amélie",
        "Clueless",
        "ann",
        "bob",
        "cat",
        "dan",
        "eve",
        "fay",
        "ann@alpha.example",
        "alpha",
        "alpha-secret-experiment",
        "alpha-admin",
        "alpha-victim",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    a_secrets.extend(a_key_ids.iter().cloned());
    a_secrets.insert(a.experiment.clone());

    let mut failures: Vec<String> = Vec::new();
    let mut api_doc_strings = BTreeSet::new();
    strings_in(
        &serde_json::to_value(marquee_server::openapi::document()).unwrap(),
        &mut api_doc_strings,
    );

    // (a) Tenant B's keys, secret and admin, on every route with A's ids.
    let mut sent: BTreeSet<String> = BTreeSet::new();
    // How B was answered, to show the walk did real work (B's own data served, A's absent).
    let (mut own_served, mut denied_absent) = (0, 0);
    for c in &cases {
        for (who, key) in [("B secret", &b_secret), ("B admin", &b_admin)] {
            let path = concrete_path(c, &a);
            let (s, body) = call_any(&server, c.method.clone(), &path, key, c.body.clone()).await;
            let what = format!("{who}: {} {path} -> {s} {body}", c.method);
            for part in path.split(['/', '?', '=', '&']) {
                sent.insert(part.to_string());
            }
            if let Some(b) = &c.body {
                strings_in(b, &mut sent);
            }
            let status_ok = match c.foreign {
                Foreign::Denied => {
                    [401, 403, 404].contains(&s.as_u16()) && is_error_body(c.template, &body)
                }
                Foreign::NeedsModel => {
                    (s.is_client_error()
                        || (s == StatusCode::SERVICE_UNAVAILABLE
                            && ["model_unavailable", "unavailable"]
                                .contains(&body["error"]["code"].as_str().unwrap_or(""))))
                        && is_error_body(c.template, &body)
                }
                // B's keys are valid: never 401 on B's own tenant.
                Foreign::Own => {
                    (s.as_u16() < 500 || ["/readyz", "/api/health/ready"].contains(&c.template))
                        && s != StatusCode::UNAUTHORIZED
                }
            };
            if !status_ok {
                failures.push(format!("{:?} expected: {what}", c.foreign));
            }
            match c.foreign {
                Foreign::Own if s.is_success() => own_served += 1,
                Foreign::Denied if s == StatusCode::NOT_FOUND => denied_absent += 1,
                _ => {}
            }
            let mut seen = BTreeSet::new();
            match &body {
                Value::String(text) => text_words(text, &mut seen),
                _ => strings_in(&body, &mut seen),
            }
            let leaked: Vec<&String> = seen
                .iter()
                .filter(|v| a_secrets.contains(*v) && !sent.contains(*v))
                // /readyz is the load balancers' probe: it lists each tenant's model readiness
                // by tenant name (no data, no ids), so the name is the one thing it may show.
                .filter(|v| !(c.template == "/readyz" && v.as_str() == a.tenant))
                // The OpenAPI document is built from the code, the same for every caller; its
                // strings (the iALS parameter `alpha`, say) are no tenant's data.
                .filter(|v| !(c.template == "/openapi.json" && api_doc_strings.contains(*v)))
                .collect();
            if !leaked.is_empty() {
                failures.push(format!("leaked {leaked:?}: {what}"));
            }
        }
    }

    // Both B keys are served on B's own tenant (all but the key-admin audit for the secret
    // key), and A's objects are absent for B's admin key and for every data route of the
    // secret key.
    assert!(
        own_served >= 40,
        "B was served {own_served} times on its own tenant"
    );
    assert!(
        denied_absent >= 35,
        "A's objects were absent {denied_absent} times"
    );

    // (b) A's own keys, each lacking exactly one scope the route needs: 403 naming that
    // scope, before any work. Operator routes refuse even A's full admin key. Keyless and
    // any-key routes answer every key alike and hold no tenant's data, so there is no scope
    // to lack.
    for c in &cases {
        let path = concrete_path(c, &a);
        match c.need {
            Need::Scopes(scopes) => {
                for &scope in scopes {
                    let (s, body) = call_any(
                        &server,
                        c.method.clone(),
                        &path,
                        &lacking[scope],
                        c.body.clone(),
                    )
                    .await;
                    // Gorse's API says it in plain text, as Gorse writes its errors.
                    let names_scope = match body.as_str() {
                        Some(text) => c.template.starts_with("/api/") && text.contains(scope),
                        None => {
                            body["error"]["code"] == "missing_scope"
                                && body["error"]["message"]
                                    .as_str()
                                    .is_some_and(|m| m.contains(scope))
                        }
                    };
                    if s != StatusCode::FORBIDDEN || !names_scope {
                        failures.push(format!(
                            "without {scope}: {} {path} -> {s} {body} (want 403 missing_scope naming {scope})",
                            c.method
                        ));
                    }
                }
            }
            Need::Operator => {
                for (who, key) in [("A admin", &a_admin), ("A secret", &a_secret)] {
                    let (s, body) = server
                        .call(c.method.clone(), &path, Some(key), c.body.clone())
                        .await;
                    if s != StatusCode::FORBIDDEN || body["error"]["code"] != "forbidden" {
                        failures.push(format!(
                            "{who} on an operator route: {} {path} -> {s} {body}",
                            c.method
                        ));
                    }
                }
            }
            Need::Keyless | Need::AnyKey => {}
        }
    }

    // Nothing of A's changed: not by B, and not by A's keys that lacked the scope.
    let (s, alien) = server.get("/v1/items/alien", Some(&a_secret)).await;
    if s != StatusCode::OK || alien["title"] != "Alien" {
        failures.push(format!("A's item changed: {s} {alien}"));
    }
    let (_, items) = server.get("/v1/items?limit=100", Some(&a_secret)).await;
    let mut item_ids: Vec<&str> = items["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    item_ids.sort_unstable();
    if item_ids
        != [
            "alien",
            "aliens",
            "amelie",
            "casino",
            "clueless",
            "heat",
            "t2",
            "terminator",
        ]
    {
        failures.push(format!("A's catalogue changed: {item_ids:?}"));
    }
    let (s, ann) = server.get("/v1/users/ann", Some(&a_secret)).await;
    if s != StatusCode::OK || ann["attributes"] != json!({"email": "ann@alpha.example"}) {
        failures.push(format!("A's user changed: {s} {ann}"));
    }
    let (_, feedback) = server.get("/v1/users/ann/feedback", Some(&a_secret)).await;
    if feedback["feedback"].as_array().map(Vec::len) != Some(3) {
        failures.push(format!("A's feedback changed: {feedback}"));
    }
    let (_, experiment) = server
        .get(
            &format!("/v1/experiments/{}", a.experiment),
            Some(&a_secret),
        )
        .await;
    if experiment["status"] != "running" || !experiment["stopped_at"].is_null() {
        failures.push(format!("A's experiment changed: {experiment}"));
    }
    let (s, _) = server.get("/v1/items", Some(&victim)).await;
    if s != StatusCode::OK {
        failures.push(format!("A's key stopped working: {s}"));
    }
    let (_, keys_after) = server
        .get("/v1/admin/tenants/alpha/keys", Some(ADMIN_KEY))
        .await;
    let victim_after = keys_after["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == victim_id.as_str())
        .cloned()
        .unwrap_or(Value::Null);
    if keys_after["keys"].as_array().unwrap().len() != a_key_ids.len()
        || victim_after["name"] != "alpha-victim"
        || !victim_after["rotated_to"].is_null()
        || !victim_after["expires_at"].is_null()
        || victim_after["policy"] != json!({})
    {
        failures.push(format!("A's keys changed: {keys_after}"));
    }
    let (_, policy) = server
        .get("/v1/admin/tenants/alpha/policy", Some(ADMIN_KEY))
        .await;
    if policy["policy"] != json!({}) {
        failures.push(format!("A's policy changed: {policy}"));
    }
    let (_, prices) = server.get("/v1/prices", Some(&a_secret)).await;
    if prices["currency"] != "USD" || prices["prices"] != json!({}) {
        failures.push(format!("the price table changed: {prices}"));
    }
    let (_, tenants) = server.get("/v1/admin/tenants", Some(ADMIN_KEY)).await;
    if tenants.to_string().contains("intruder") {
        failures.push(format!("a tenant was created: {tenants}"));
    }
    assert!(
        failures.is_empty(),
        "{} isolation failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Budgets and quotas under concurrency

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_and_quotas_hold_exactly_under_concurrent_requests() {
    let server = TestServer::start().await;
    price_recommendations(&server, "1").await;
    let owner = server.tenant_with_key("budgeted", "secret").await;
    server.seed_films(&owner).await;
    let (budgeted, budgeted_id) = server
        .key_with("budgeted", json!({"kind": "secret", "budget": "0.05"}))
        .await;
    let (quoted, quoted_id) = server
        .key_with(
            "budgeted",
            json!({"kind": "secret", "quotas": {"recommendations": 30}}),
        )
        .await;

    for (key, key_id, allowed, code) in [
        (&budgeted, &budgeted_id, 50_usize, "budget_exceeded"),
        (&quoted, &quoted_id, 30, "quota_exceeded"),
    ] {
        let answers = burst(&server, key, "/v1/recommend/ann", 200).await;
        let served: Vec<&(StatusCode, HeaderMap, Value)> = answers
            .iter()
            .filter(|(s, _, _)| *s == StatusCode::OK)
            .collect();
        assert_eq!(served.len(), allowed, "{code}: served {}", served.len());
        for (s, h, body) in &answers {
            if *s == StatusCode::OK {
                assert_eq!(
                    header(h, "x-marquee-units").as_deref(),
                    Some("recommendations=1")
                );
                assert_eq!(header(h, "x-marquee-cost").as_deref(), Some("0.001 USD"));
                assert!(body.as_array().is_some_and(|l| !l.is_empty()), "{body}");
            } else {
                assert_error(*s, body, StatusCode::TOO_MANY_REQUESTS, code);
                let retry: u64 = header(h, "retry-after")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("no Retry-After: {h:?}"));
                assert!(retry >= 1, "{retry}");
            }
        }

        // The usage report and the ledger hold exactly the served requests of this key.
        let (s, report) = server.get("/v1/usage?group_by=key", Some(&owner)).await;
        assert_eq!(s, StatusCode::OK, "{report}");
        let line = report["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["group"] == key_id.as_str())
            .unwrap_or_else(|| panic!("no usage line for {key_id}: {report}"));
        assert_eq!(line["requests"], allowed as i64, "{report}");
        assert_eq!(line["units"], json!({"recommendations": allowed}));
        assert_eq!(
            line["cost"],
            decimal(allowed as i64 * 1_000_000),
            "{report}"
        );
        let rows: Vec<Value> = usage_records(&server, &owner)
            .await
            .into_iter()
            .filter(|r| r["key_id"] == key_id.as_str())
            .collect();
        assert_eq!(rows.len(), allowed);
        for r in &rows {
            assert_eq!(r["route"], "/v1/recommend/{user_id}");
            assert_eq!(r["cost"], "0.001");
            assert_eq!(r["units"], json!({"recommendations": 1}));
            assert_eq!(r["status"], 200);
        }
    }
    let (_, report) = server.get("/v1/usage", Some(&owner)).await;
    assert_eq!(report["total"]["requests"], 80, "{report}");
    assert_eq!(report["total"]["cost"], "0.08", "{report}");
}

// ---------------------------------------------------------------------------------------------
// 3. Failing closed

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_refused_while_usage_cannot_be_recorded() {
    let server = TestServer::start().await;
    price_recommendations(&server, "1").await;
    let owner = server.tenant_with_key("closed", "secret").await;
    server.seed_films(&owner).await;
    // A budget of ten requests: refused requests must not use any of it.
    let (key, _) = server
        .key_with("closed", json!({"kind": "secret", "budget": "0.01"}))
        .await;

    let conn = server.refuse_usage_writes().await;

    // Recommendation requests are written behind: those answered before the first failed
    // write are served (and owed to the ledger); from that failure on, every request is refused.
    // One request per commit interval (50 ms), so that how many are answered before the first
    // write fails does not depend on how fast this machine serves them (back to back, a busy
    // machine answered the whole budget first).
    let mut served = 0;
    let mut refused_at = None;
    for attempt in 0..40 {
        let (s, h, text) = server
            .send(Method::GET, "/v1/recommend/ann", Some(&key), None, &[])
            .await;
        let body: Value = serde_json::from_str(&text).unwrap();
        if s == StatusCode::OK {
            assert!(refused_at.is_none(), "served after a refusal: {h:?}");
            served += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        assert_error(
            s,
            &body,
            StatusCode::SERVICE_UNAVAILABLE,
            "ledger_unavailable",
        );
        assert!(header(&h, "retry-after").is_some(), "{h:?}");
        assert!(header(&h, "x-marquee-cost").is_none(), "{h:?}");
        refused_at.get_or_insert(attempt);
        if attempt >= refused_at.unwrap() + 10 {
            break;
        }
        if refused_at == Some(attempt) {
            // Later requests are refused at once, without doing the work.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(
        refused_at.is_some(),
        "never refused while the ledger refused writes"
    );
    assert!(
        served <= 3,
        "{served} requests served while the ledger was failing"
    );
    let answers = burst(&server, &key, "/v1/recommend/ann", 20).await;
    for (s, h, body) in &answers {
        assert_error(
            *s,
            body,
            StatusCode::SERVICE_UNAVAILABLE,
            "ledger_unavailable",
        );
        assert!(header(h, "retry-after").is_some(), "{h:?}");
    }
    // Nothing reached the ledger yet; what was served is kept for the next write, and the
    // records are refused rather than listed without it.
    let (s, body) = server.get("/v1/usage/records", Some(&owner)).await;
    assert_error(
        s,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "ledger_unavailable",
    );

    server.allow_usage_writes(conn).await;

    // Served again within a few seconds (the refusal backs off for a moment, then retries).
    until_served_again(&server, &key).await;
    served += 1;
    // The budget counts the requests served during the failure: exactly ten in all, and the
    // ledger has a row for each, none lost, none twice.
    for _ in 0..15 {
        let (s, body) = server.get("/v1/recommend/ann", Some(&key)).await;
        if s == StatusCode::OK {
            served += 1;
        } else {
            assert_error(s, &body, StatusCode::TOO_MANY_REQUESTS, "budget_exceeded");
        }
    }
    assert_eq!(served, 10);
    let rows = usage_records(&server, &owner).await;
    assert_eq!(rows.len(), served);
    assert!(
        rows.iter()
            .all(|r| r["status"] == 200 && r["cost"] == "0.001")
    );
    let (_, report) = server.get("/v1/usage", Some(&owner)).await;
    assert_eq!(report["total"]["requests"], 10, "{report}");
    assert_eq!(report["total"]["cost"], "0.01", "{report}");
}

/// Reports, records and invoices are read once every request already answered is in the
/// ledger: while it cannot be written they are refused, rather than answered without requests
/// that were served (and owed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_reports_and_invoices_are_refused_while_served_requests_cannot_be_recorded() {
    let server = TestServer::start().await;
    price_recommendations(&server, "1").await;
    let owner = server.tenant_with_key("unrecorded", "secret").await;
    server.seed_films(&owner).await;
    let (s, b) = server.get("/v1/recommend/ann", Some(&owner)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, report) = server.get("/v1/usage", Some(&owner)).await;
    assert_eq!(s, StatusCode::OK, "{report}");
    assert_eq!(report["total"]["requests"], 1, "{report}");

    let conn = server.refuse_usage_writes().await;
    // Served before any write failed (written behind): owed to a ledger that refuses it.
    let (s, b) = server.get("/v1/recommend/ann", Some(&owner)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let month = this_month();
    let reads = [
        "/v1/usage".to_string(),
        "/v1/usage?group_by=route".to_string(),
        "/v1/usage?format=csv".to_string(),
        "/v1/usage/records".to_string(),
        "/v1/usage/records?format=csv".to_string(),
        format!("/v1/invoices/{month}"),
        format!("/v1/invoices/{month}?format=csv"),
    ];
    for path in &reads {
        let (s, h, text) = server
            .send(Method::GET, path, Some(&owner), None, &[])
            .await;
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: {text}"));
        assert_error(
            s,
            &body,
            StatusCode::SERVICE_UNAVAILABLE,
            "ledger_unavailable",
        );
        assert!(header(&h, "retry-after").is_some(), "{path}: {h:?}");
    }
    // The operator's reports too.
    let (s, body) = server
        .get("/v1/usage?group_by=tenant", Some(ADMIN_KEY))
        .await;
    assert_error(
        s,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "ledger_unavailable",
    );

    // Once the ledger takes writes again, every one answers, the request served during the
    // failure included.
    server.allow_usage_writes(conn).await;
    let started = Instant::now();
    let report = loop {
        let (s, report) = server.get("/v1/usage", Some(&owner)).await;
        if s == StatusCode::OK {
            break report;
        }
        assert_error(
            s,
            &report,
            StatusCode::SERVICE_UNAVAILABLE,
            "ledger_unavailable",
        );
        assert!(started.elapsed() < Duration::from_secs(5), "still refused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(report["total"]["requests"], 2, "{report}");
    assert_eq!(report["total"]["cost"], "0.002", "{report}");
    for path in &reads {
        let (s, _, text) = server
            .send(Method::GET, path, Some(&owner), None, &[])
            .await;
        assert_eq!(s, StatusCode::OK, "{path}: {text}");
    }
    assert_eq!(usage_records(&server, &owner).await.len(), 2);
    let (_, invoice) = server
        .get(&format!("/v1/invoices/{month}"), Some(&owner))
        .await;
    assert_eq!(invoice["requests"], 2, "{invoice}");
}

// ---------------------------------------------------------------------------------------------
// 4. Rate limits

/// `x-ratelimit-reset-requests` ("850ms", "1s", "1.5s") as a duration.
fn reset_duration(value: &str) -> Duration {
    if let Some(ms) = value.strip_suffix("ms") {
        Duration::from_millis(ms.parse().unwrap_or_else(|_| panic!("{value}")))
    } else if let Some(s) = value.strip_suffix('s') {
        Duration::from_secs_f64(s.parse().unwrap_or_else(|_| panic!("{value}")))
    } else {
        panic!("unexpected reset value {value:?}")
    }
}

#[tokio::test]
async fn rate_limits_of_keys_and_tenants_refuse_with_headers_and_recover() {
    let server = TestServer::start().await;
    server.tenant_with_key("limited", "secret").await;
    let (key, _) = server
        .key_with(
            "limited",
            json!({"kind": "secret", "limits": {"requests_per_second": 5}}),
        )
        .await;

    // A burst of five, then refusal. The bucket refills one request every 200 ms, so a slow
    // machine may fit one more per 200 ms spent.
    let started = Instant::now();
    let mut remaining = Vec::new();
    let refused = loop {
        let (s, h, text) = server
            .send(Method::GET, "/v1/items", Some(&key), None, &[])
            .await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            break (h, text);
        }
        assert_eq!(s, StatusCode::OK, "{text}");
        assert_eq!(
            header(&h, "x-ratelimit-limit-requests").as_deref(),
            Some("5")
        );
        remaining.push(
            header(&h, "x-ratelimit-remaining-requests")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap(),
        );
        let reset = reset_duration(&header(&h, "x-ratelimit-reset-requests").unwrap());
        assert!(reset <= Duration::from_secs(1), "{reset:?}");
        assert!(remaining.len() <= 12, "never refused: {remaining:?}");
    };
    let slack = (started.elapsed().as_millis() / 200) as usize;
    assert!(
        (5..=5 + slack).contains(&remaining.len()),
        "{} served before the refusal: {remaining:?}",
        remaining.len()
    );
    if slack == 0 {
        assert_eq!(remaining, [4, 3, 2, 1, 0]);
    } else {
        assert_eq!(remaining[0], 4, "{remaining:?}");
    }
    let (h, text) = refused;
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_error(
        StatusCode::TOO_MANY_REQUESTS,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_exceeded",
    );
    let retry: u64 = header(&h, "retry-after").unwrap().parse().unwrap();
    assert_eq!(retry, 1);
    assert_eq!(
        header(&h, "x-ratelimit-limit-requests").as_deref(),
        Some("5")
    );
    assert_eq!(
        header(&h, "x-ratelimit-remaining-requests").as_deref(),
        Some("0")
    );
    let reset = reset_duration(&header(&h, "x-ratelimit-reset-requests").unwrap());
    assert!(
        reset > Duration::ZERO && reset <= Duration::from_secs(1),
        "{reset:?}"
    );

    // Once the bucket is full again, the key is served with a full allowance.
    tokio::time::sleep(reset + Duration::from_millis(50)).await;
    let (s, h, _) = server
        .send(Method::GET, "/v1/items", Some(&key), None, &[])
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        header(&h, "x-ratelimit-remaining-requests").as_deref(),
        Some("4")
    );

    // A tenant's limit covers all of its keys together.
    let first = server.tenant_with_key("shared", "secret").await;
    let second = server.key("shared", "secret").await;
    let (s, b) = server
        .put(
            "/v1/admin/tenants/shared/policy",
            Some(ADMIN_KEY),
            json!({"limits": {"requests_per_second": 3}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["limits"]["requests_per_second"], 3);
    let started = Instant::now();
    let mut served = 0;
    let mut refused_by = BTreeSet::new();
    for round in 0..10 {
        let key = if round % 2 == 0 { &first } else { &second };
        let (s, h, text) = server
            .send(Method::GET, "/v1/items", Some(key), None, &[])
            .await;
        assert_eq!(
            header(&h, "x-ratelimit-limit-requests").as_deref(),
            Some("3"),
            "{text}"
        );
        if s == StatusCode::OK {
            served += 1;
        } else {
            let body: Value = serde_json::from_str(&text).unwrap();
            assert_error(
                s,
                &body,
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
            );
            refused_by.insert(round % 2);
        }
    }
    let slack = (started.elapsed().as_millis() / 333) as usize;
    assert!((3..=3 + slack).contains(&served), "served {served}");
    assert_eq!(
        refused_by.len(),
        2,
        "both keys are refused once the tenant's allowance is used"
    );
    // Without a tenant limit, neither key reports one.
    let (s, _) = server
        .put(
            "/v1/admin/tenants/shared/policy",
            Some(ADMIN_KEY),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, h, _) = server
        .send(Method::GET, "/v1/items", Some(&first), None, &[])
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(header(&h, "x-ratelimit-limit-requests").is_none(), "{h:?}");
}

// ---------------------------------------------------------------------------------------------
// 5. Encryption at rest, export and erasure

/// Files under `dir` (recursively) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

fn random_hex() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn user_attributes_are_sealed_on_disk_exportable_and_erasable() {
    let server = TestServer::start().await;
    let key = server.tenant_with_key("private", "secret").await;

    // Written before encryption is configured, then sealed by turning it on.
    let early_marker = format!("zqearly{}", random_hex());
    let early_note = format!("{early_marker}-note");
    let (s, b) = server
        .put(
            "/v1/users/early",
            Some(&key),
            json!({"attributes": {"note": early_note}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let sealed = server
        .service
        .set_master_keys(MasterKeys::new(MasterKey::generate()))
        .await
        .unwrap();
    assert_eq!(sealed, 1);
    assert!(server.service.encryption_enabled());

    // Every planted value shares a marker, so one scan per file finds any of them.
    let marker = format!("zqplanted{}", random_hex());
    let users: Vec<Value> = (0..100)
        .map(|n| {
            json!({"id": format!("person-{n}"), "attributes": {
                "email": format!("{marker}-{n}-{}@example.com", random_hex()),
                "note": format!("{marker}-secret-{n}-{}", random_hex()),
                "age": 20 + n,
            }})
        })
        .collect();
    let (s, b) = server
        .post("/v1/users", Some(&key), Value::Array(users.clone()))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["upserted"], 100);

    // Read back intact through the API.
    let (s, user) = server.get("/v1/users/person-42", Some(&key)).await;
    assert_eq!(s, StatusCode::OK, "{user}");
    assert_eq!(user["attributes"], users[42]["attributes"]);
    let (s, user) = server.get("/v1/users/early", Some(&key)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(user["attributes"], json!({"note": early_note}));

    // Feedback for the user who will be exported and erased.
    let (s, b) = server
        .post(
            "/v1/items",
            Some(&key),
            json!([{"id": "lamp", "title": "Lamp"}, {"id": "desk", "title": "Desk"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = server
        .post(
            "/v1/feedback",
            Some(&key),
            json!([
                {"user_id": "person-7", "item_id": "lamp", "type": "view", "timestamp": 1_700_000_000},
                {"user_id": "person-7", "item_id": "desk", "type": "purchase", "timestamp": 1_700_000_100}
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // No planted value is anywhere on disk: database, WAL, snapshots.
    let dir = server.data_dir();
    assert!(dir.join("marquee.db").exists());
    let plain = files_containing(dir, marker.as_bytes());
    assert!(plain.is_empty(), "attributes in plain text in {plain:?}");
    let plain = files_containing(dir, early_marker.as_bytes());
    assert!(
        plain.is_empty(),
        "an attribute written before sealing is still in plain text in {plain:?}"
    );
    // (The scan itself works: ids are not sealed, and are found.)
    assert!(!files_containing(dir, b"person-42").is_empty());

    // Export: everything held, attributes opened.
    let (s, export) = server.get("/v1/users/person-7/export", Some(&key)).await;
    assert_eq!(s, StatusCode::OK, "{export}");
    assert_eq!(export["user_id"], "person-7");
    assert_eq!(export["attributes"], users[7]["attributes"]);
    let events = export["feedback"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{export}");
    let kinds: BTreeSet<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, BTreeSet::from(["purchase", "view"]));

    // Erasure: attributes and events gone at once, recorded without the id.
    let (s, erased) = server.delete("/v1/users/person-7", Some(&key)).await;
    assert_eq!(s, StatusCode::OK, "{erased}");
    assert_eq!(erased["user_id"], "person-7");
    assert_eq!(erased["events_deleted"], 2);
    assert_eq!(erased["retrain_requested"], true);
    assert!(erased["erased_at"].is_string(), "{erased}");
    for path in [
        "/v1/users/person-7",
        "/v1/users/person-7/feedback",
        "/v1/users/person-7/export",
    ] {
        let (s, b) = server.get(path, Some(&key)).await;
        assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    }
    let (s, b) = server.delete("/v1/users/person-7", Some(&key)).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    // Others are untouched.
    let (s, user) = server.get("/v1/users/person-8", Some(&key)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(user["attributes"], users[8]["attributes"]);

    let (s, audit) = server.get("/v1/audit?action=user.", Some(ADMIN_KEY)).await;
    assert_eq!(s, StatusCode::OK, "{audit}");
    let entries = audit["data"].as_array().unwrap();
    let erase = entries
        .iter()
        .find(|e| e["action"] == "user.erase")
        .unwrap_or_else(|| panic!("no user.erase entry: {audit}"));
    assert_eq!(erase["tenant"], "private");
    assert!(erase["target"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(entries.iter().any(|e| e["action"] == "user.export"));
    assert!(
        !audit.to_string().contains("person-7"),
        "the audit log names the erased user: {audit}"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Usage reports and invoices add up

/// One request of the usage test: which key, which route, and what its answer said it cost.
struct Served {
    key_id: String,
    route: &'static str,
    cost_nanos: i64,
}

#[tokio::test]
async fn usage_reports_and_invoices_equal_the_sum_of_the_requests_served() {
    let server = TestServer::start().await;
    price_recommendations(&server, "0.3").await;
    let owner = server.tenant_with_key("billed", "secret").await;
    server.seed_films(&owner).await;
    let (first, first_id) = server
        .key_with("billed", json!({"kind": "secret", "name": "web"}))
        .await;
    let (second, second_id) = server
        .key_with("billed", json!({"kind": "secret", "name": "batch"}))
        .await;

    let calls: &[(&String, &String, Method, &str, &'static str, usize)] = &[
        (
            &first,
            &first_id,
            Method::GET,
            "/v1/recommend/ann",
            "/v1/recommend/{user_id}",
            7,
        ),
        (
            &first,
            &first_id,
            Method::GET,
            "/v1/popular",
            "/v1/popular",
            3,
        ),
        (
            &second,
            &second_id,
            Method::GET,
            "/v1/items/alien/similar",
            "/v1/items/{item_id}/similar",
            4,
        ),
        (
            &second,
            &second_id,
            Method::GET,
            "/v1/trending",
            "/v1/trending",
            1,
        ),
        (
            &second,
            &second_id,
            Method::POST,
            "/v1/recommend/session",
            "/v1/recommend/session",
            2,
        ),
        (
            &second,
            &second_id,
            Method::GET,
            "/recommend/bob/heat",
            "/recommend/{user_id}/{item_id}",
            2,
        ),
    ];
    let mut served: Vec<Served> = Vec::new();
    for (key, key_id, method, path, route, n) in calls {
        for _ in 0..*n {
            let body = (*method == Method::POST).then(|| json!({"items": ["alien", "aliens"]}));
            let (s, h, text) = server
                .send(method.clone(), path, Some(key), body, &[])
                .await;
            assert_eq!(s, StatusCode::OK, "{path}: {text}");
            assert_eq!(
                header(&h, "x-marquee-units").as_deref(),
                Some("recommendations=1")
            );
            let cost = header(&h, "x-marquee-cost").unwrap();
            let (amount, currency) = cost.split_once(' ').unwrap();
            assert_eq!(currency, "USD");
            served.push(Served {
                key_id: (*key_id).clone(),
                route,
                cost_nanos: nanos(amount),
            });
        }
    }
    // Failed requests are not billed: a search with no embedding model loaded, an unknown
    // context item.
    let (s, b) = server.get("/v1/search?q=space", Some(&first)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    let (s, b) = server
        .get("/v1/recommend/ann/no-such-item", Some(&first))
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");

    let count = served.len() as i64;
    assert_eq!(count, 19);
    assert!(served.iter().all(|r| r.cost_nanos == 300_000));
    let total_nanos: i64 = served.iter().map(|r| r.cost_nanos).sum();
    assert_eq!(decimal(total_nanos), "0.0057");
    let sums = |by: &dyn Fn(&Served) -> String| -> BTreeMap<String, (i64, i64)> {
        let mut out = BTreeMap::new();
        for r in &served {
            let e = out.entry(by(r)).or_insert((0, 0));
            e.0 += 1;
            e.1 += r.cost_nanos;
        }
        out
    };

    // The total.
    let (s, report) = server.get("/v1/usage", Some(&owner)).await;
    assert_eq!(s, StatusCode::OK, "{report}");
    assert_eq!(report["currency"], "USD");
    assert_eq!(report["tenant"], "billed");
    assert_eq!(report["total"]["requests"], count);
    assert_eq!(report["total"]["units"], json!({"recommendations": count}));
    assert_eq!(report["total"]["cost"], decimal(total_nanos));

    // Grouped by key, by route and by day.
    let groups = |report: &Value| -> BTreeMap<String, (i64, i64)> {
        report["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                assert_eq!(l["units"]["recommendations"], l["requests"], "{l}");
                (
                    l["group"].as_str().unwrap().to_string(),
                    (
                        l["requests"].as_i64().unwrap(),
                        nanos(l["cost"].as_str().unwrap()),
                    ),
                )
            })
            .collect()
    };
    let (_, by_key) = server.get("/v1/usage?group_by=key", Some(&owner)).await;
    assert_eq!(groups(&by_key), sums(&|r| r.key_id.clone()), "{by_key}");
    assert_eq!(by_key["total"]["cost"], "0.0057");
    let (_, by_route) = server.get("/v1/usage?group_by=route", Some(&owner)).await;
    assert_eq!(
        groups(&by_route),
        sums(&|r| r.route.to_string()),
        "{by_route}"
    );
    let (_, by_day) = server.get("/v1/usage?group_by=day", Some(&owner)).await;
    assert_eq!(
        groups(&by_day),
        BTreeMap::from([(day_label(now_ms()), (count, total_nanos))]),
        "{by_day}"
    );

    // CSV: the same lines.
    let (s, h, csv) = server
        .send(
            Method::GET,
            "/v1/usage?group_by=route&format=csv",
            Some(&owner),
            None,
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{csv}");
    assert!(header(&h, "content-type").unwrap().starts_with("text/csv"));
    let mut lines = csv.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(head[..3], ["group", "requests", "recommendations"]);
    assert_eq!(head[head.len() - 2..], ["cost", "currency"]);
    let from_csv: BTreeMap<String, (i64, i64)> = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), head.len(), "{l}");
            assert_eq!(f[1], f[2], "requests and recommendations: {l}");
            assert_eq!(f[f.len() - 1], "USD");
            (
                f[0].to_string(),
                (f[1].parse().unwrap(), nanos(f[f.len() - 2])),
            )
        })
        .collect();
    assert_eq!(from_csv, sums(&|r| r.route.to_string()));

    // The ledger has one record per request, each with the price of one recommendation.
    let records = usage_records(&server, &owner).await;
    assert_eq!(records.len(), served.len());
    let mut from_records: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for r in &records {
        let e = from_records
            .entry(r["route"].as_str().unwrap().to_string())
            .or_default();
        e.0 += 1;
        e.1 += nanos(r["cost"].as_str().unwrap());
    }
    assert_eq!(from_records, sums(&|r| r.route.to_string()));

    // The month's invoice: one line per route, the same sums.
    let month = this_month();
    let (s, invoice) = server
        .get(&format!("/v1/invoices/{month}"), Some(&owner))
        .await;
    assert_eq!(s, StatusCode::OK, "{invoice}");
    assert_eq!(invoice["period"], month.as_str());
    assert_eq!(invoice["currency"], "USD");
    assert_eq!(invoice["requests"], count);
    assert_eq!(invoice["units"], json!({"recommendations": count}));
    assert_eq!(invoice["total"], "0.0057");
    let invoice_lines: BTreeMap<String, (i64, i64)> = invoice["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            assert!(l["model"].is_null(), "{l}");
            (
                l["route"].as_str().unwrap().to_string(),
                (
                    l["requests"].as_i64().unwrap(),
                    nanos(l["amount"].as_str().unwrap()),
                ),
            )
        })
        .collect();
    assert_eq!(invoice_lines, sums(&|r| r.route.to_string()));
    let (s, _, csv) = server
        .send(
            Method::GET,
            &format!("/v1/invoices/{month}?format=csv"),
            Some(&owner),
            None,
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let total_line = csv.lines().last().unwrap();
    assert!(
        total_line.starts_with("total,,19,19,") && total_line.ends_with(",0.0057,USD"),
        "{total_line}"
    );
    // Another tenant's invoice is its own: empty.
    let other = server.tenant_with_key("unbilled", "secret").await;
    let (_, invoice) = server
        .get(&format!("/v1/invoices/{month}"), Some(&other))
        .await;
    assert_eq!(invoice["requests"], 0, "{invoice}");
    assert_eq!(invoice["total"], "0");
}

// ---------------------------------------------------------------------------------------------
// 7. Keys

#[tokio::test]
async fn keys_are_scoped_expire_rotate_revoke_and_are_audited_without_secrets() {
    let server = TestServer::start().await;
    let tenant_admin = server.tenant_with_key("keys", "admin").await;
    let keys_path = "/v1/admin/tenants/keys/keys";
    let create = |body: Value| {
        let server = &server;
        let tenant_admin = &tenant_admin;
        async move { server.post(keys_path, Some(tenant_admin), body).await }
    };
    let mut secrets: Vec<String> = vec![tenant_admin.clone()];

    // Scopes: a publishable key can never write the catalogue; a narrowed secret key is held
    // to its scopes.
    let (s, b) =
        create(json!({"kind": "publishable", "scopes": ["recommend", "catalog:write"]})).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("catalog:write"),
        "{b}"
    );
    let (s, narrow) = create(json!({"kind": "secret", "scopes": ["recommend"]})).await;
    assert_eq!(s, StatusCode::CREATED, "{narrow}");
    assert_eq!(narrow["policy"]["scopes"], json!(["recommend"]));
    let narrow_key = narrow["key"].as_str().unwrap().to_string();
    secrets.push(narrow_key.clone());
    let (s, b) = server.get("/v1/items", Some(&narrow_key)).await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "missing_scope");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("catalog:read"),
        "{b}"
    );
    let (s, b) = server.get("/v1/popular", Some(&narrow_key)).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // Models: a key limited to one model may not name another.
    let (s, modelled) = create(json!({"kind": "secret", "models": ["allowed-embedder"]})).await;
    assert_eq!(s, StatusCode::CREATED, "{modelled}");
    let modelled_key = modelled["key"].as_str().unwrap().to_string();
    secrets.push(modelled_key.clone());
    let (s, b) = server
        .post(
            "/v1/embeddings",
            Some(&modelled_key),
            json!({"model": "other", "input": "hi"}),
        )
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "model_not_allowed");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("other"),
        "{b}"
    );
    // The allowed model passes the check (and is then simply not loaded here).
    let (s, b) = server
        .post(
            "/v1/embeddings",
            Some(&modelled_key),
            json!({"model": "allowed-embedder", "input": "hi"}),
        )
        .await;
    assert_ne!(b["error"]["code"], "model_not_allowed", "{b}");
    assert_ne!(s, StatusCode::FORBIDDEN, "{b}");

    // Expiry.
    let (s, b) =
        create(json!({"kind": "secret", "expires_at": now_ms() as f64 / 1000.0 - 1.0})).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let expires_ms = now_ms() + 2_000;
    let (s, expiring) =
        create(json!({"kind": "secret", "expires_at": expires_ms as f64 / 1000.0})).await;
    assert_eq!(s, StatusCode::CREATED, "{expiring}");
    assert!(expiring["expires_at"].is_string(), "{expiring}");
    let expiring_key = expiring["key"].as_str().unwrap().to_string();
    secrets.push(expiring_key.clone());
    let (s, _) = server.get("/v1/items", Some(&expiring_key)).await;
    assert_eq!(s, StatusCode::OK);

    // Rotation: the new key works at once, the old one during the grace period.
    let (s, rotated) = create(json!({"kind": "secret", "name": "rotating"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let old_key = rotated["key"].as_str().unwrap().to_string();
    let old_id = rotated["id"].as_str().unwrap().to_string();
    secrets.push(old_key.clone());
    let (s, new) = server
        .post(
            &format!("/v1/admin/keys/{old_id}/rotate"),
            Some(&tenant_admin),
            json!({"grace_seconds": 60}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{new}");
    let new_key = new["key"].as_str().unwrap().to_string();
    let new_id = new["id"].as_str().unwrap().to_string();
    secrets.push(new_key.clone());
    assert_ne!(new_key, old_key);
    assert_eq!(new["name"], "rotating");
    for key in [&new_key, &old_key] {
        let (s, b) = server.get("/v1/items", Some(key)).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (s, b) = server
        .post(
            &format!("/v1/admin/keys/{old_id}/rotate"),
            Some(&tenant_admin),
            json!({}),
        )
        .await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    // With no grace, the replaced key stops at once.
    let (s, newest) = server
        .post(
            &format!("/v1/admin/keys/{new_id}/rotate"),
            Some(&tenant_admin),
            json!({"grace_seconds": 0}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{newest}");
    let newest_key = newest["key"].as_str().unwrap().to_string();
    let newest_id = newest["id"].as_str().unwrap().to_string();
    secrets.push(newest_key.clone());
    let (s, b) = server.get("/v1/items", Some(&new_key)).await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthorized");
    for key in [&newest_key, &old_key] {
        let (s, b) = server.get("/v1/items", Some(key)).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }

    // Revocation.
    let (s, _) = server
        .delete(&format!("/v1/admin/keys/{newest_id}"), Some(&tenant_admin))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = server.get("/v1/items", Some(&newest_key)).await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthorized");
    let (s, b) = server
        .delete(&format!("/v1/admin/keys/{newest_id}"), Some(&tenant_admin))
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");

    // Browser origins of publishable keys.
    let (s, b) =
        create(json!({"kind": "secret", "allowed_origins": ["https://app.example.com"]})).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let (s, public) =
        create(json!({"kind": "publishable", "allowed_origins": ["https://app.example.com"]}))
            .await;
    assert_eq!(s, StatusCode::CREATED, "{public}");
    let public_key = public["key"].as_str().unwrap().to_string();
    secrets.push(public_key.clone());
    let (s, _, text) = server
        .send(
            Method::GET,
            "/v1/popular",
            Some(&public_key),
            None,
            &[("origin", "https://evil.example")],
        )
        .await;
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_error(s, &body, StatusCode::FORBIDDEN, "origin_not_allowed");
    let (s, h, text) = server
        .send(
            Method::GET,
            "/v1/popular",
            Some(&public_key),
            None,
            &[("origin", "https://app.example.com")],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert_eq!(
        header(&h, "access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert!(
        header(&h, "access-control-expose-headers").is_some_and(|v| v.contains("x-marquee-cost")),
        "{h:?}"
    );
    let (s, h, _) = server
        .send(
            Method::OPTIONS,
            "/v1/popular",
            None,
            None,
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "authorization"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        header(&h, "access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert!(header(&h, "access-control-allow-methods").is_some_and(|m| m.contains("GET")));
    assert!(
        header(&h, "access-control-allow-headers").is_some_and(|m| m.contains("authorization"))
    );
    // A secret key's answers are not shared with web pages.
    let (s, h, _) = server
        .send(
            Method::GET,
            "/v1/popular",
            Some(&old_key),
            None,
            &[("origin", "https://app.example.com")],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(header(&h, "access-control-allow-origin").is_none(), "{h:?}");

    // Expired by now.
    let wait = expires_ms + 200 - now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
    let (s, b) = server.get("/v1/items", Some(&expiring_key)).await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthorized");

    // Listing never shows a secret; it shows the display prefix.
    let (s, list) = server.get(keys_path, Some(&tenant_admin)).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let text = list.to_string();
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret is listed: {list}"
        );
    }
    let listed_old = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == old_id.as_str())
        .unwrap();
    assert!(old_key.starts_with(listed_old["prefix"].as_str().unwrap()));
    assert!(listed_old["prefix"].as_str().unwrap().len() < old_key.len() / 2);
    assert_eq!(listed_old["rotated_to"], new_id.as_str());
    assert!(listed_old["expires_at"].is_string());

    // Bad input is refused, naming the field.
    for body in [
        json!({"kind": "secret", "budget": "-1"}),
        json!({"kind": "secret", "limits": {"requests_per_second": 0}}),
        json!({"kind": "secret", "scopes": ["catalog:everything"]}),
        json!({"kind": "secret", "quotas": {"tokens": 5}}),
    ] {
        let (s, b) = create(body).await;
        assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    }
    let (s, b) = server
        .patch(
            &format!("/v1/admin/keys/{old_id}"),
            Some(&tenant_admin),
            json!({"limits": {"requests_per_second": 0}}),
        )
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("requests_per_second"),
        "{b}"
    );
    for prices in [
        json!({"currency": "USD", "period": "month", "prices": {"recommendations": "-1"}}),
        json!({"currency": "usd", "period": "month", "prices": {"recommendations": "1"}}),
    ] {
        let (s, b) = server
            .put("/v1/admin/prices", Some(ADMIN_KEY), prices)
            .await;
        assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    }
    let (_, table) = server.get("/v1/prices", Some(&old_key)).await;
    assert_eq!(table["currency"], "USD");
    assert_eq!(table["prices"], json!({}));

    // The audit log: who created, rotated and revoked which key — never a secret.
    let (s, audit) = server
        .get("/v1/audit?action=key.&limit=1000", Some(&tenant_admin))
        .await;
    assert_eq!(s, StatusCode::OK, "{audit}");
    let entries = audit["data"].as_array().unwrap();
    let has = |action: &str, target: &str| {
        entries
            .iter()
            .any(|e| e["action"] == action && e["target"] == target && e["tenant"] == "keys")
    };
    assert!(has("key.create", &old_id), "{audit}");
    assert!(has("key.create", narrow["id"].as_str().unwrap()), "{audit}");
    assert!(has("key.rotate", &old_id), "{audit}");
    assert!(has("key.rotate", &new_id), "{audit}");
    assert!(has("key.revoke", &newest_id), "{audit}");
    let rotate = entries
        .iter()
        .find(|e| e["action"] == "key.rotate" && e["target"] == old_id.as_str())
        .unwrap();
    assert_eq!(rotate["detail"]["new_key"], new_id.as_str());
    assert!(entries.iter().all(|e| e["tenant"] == "keys"), "{audit}");
    let text = audit.to_string();
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret is in the audit log"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3b. Failing closed with rows committed before the answer, and on a stuck ledger

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_rows_committed_before_the_answer_every_request_is_refused_while_the_ledger_fails() {
    let server = TestServer::start_full(
        marquee_server::ServerConfig::default(),
        marquee_core::ServiceConfig {
            poll_interval_secs: 0.2,
            auto_tune: false,
            ledger_commit_before_answer: true,
            ..Default::default()
        },
    )
    .await;
    price_recommendations(&server, "1").await;
    let owner = server.tenant_with_key("strict", "secret").await;
    server.seed_films(&owner).await;
    let (key, key_id) = server
        .key_with("strict", json!({"kind": "secret", "budget": "0.05"}))
        .await;

    // Served normally: each answer's row is in the ledger when the answer arrives.
    for n in 1..=5 {
        let (s, b) = server.get("/v1/recommend/ann", Some(&key)).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(usage_records(&server, &owner).await.len(), n);
    }

    let conn = server.refuse_usage_writes().await;
    // 200 at once against an unwritable ledger: not one is served.
    let answers = burst(&server, &key, "/v1/recommend/ann", 200).await;
    for (s, h, body) in &answers {
        assert_error(
            *s,
            body,
            StatusCode::SERVICE_UNAVAILABLE,
            "ledger_unavailable",
        );
        assert!(header(h, "retry-after").is_some(), "{h:?}");
        assert!(header(h, "x-marquee-cost").is_none(), "{h:?}");
    }
    // And none a second later, when a request is let through to try the ledger again.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for _ in 0..5 {
        let (s, body) = server.get("/v1/recommend/ann", Some(&key)).await;
        assert_error(
            s,
            &body,
            StatusCode::SERVICE_UNAVAILABLE,
            "ledger_unavailable",
        );
    }
    server.allow_usage_writes(conn).await;
    assert_eq!(usage_records(&server, &owner).await.len(), 5);

    // Served again within a few seconds; the refused requests used none of the budget.
    until_served_again(&server, &key).await;
    let mut served = 6;
    let answers = burst(&server, &key, "/v1/recommend/ann", 200).await;
    served += answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::OK)
        .count();
    assert_eq!(served, 50);
    let rows: Vec<Value> = usage_records(&server, &owner)
        .await
        .into_iter()
        .filter(|r| r["key_id"] == key_id.as_str())
        .collect();
    assert_eq!(rows.len(), 50);
    let (_, report) = server.get("/v1/usage", Some(&owner)).await;
    assert_eq!(report["total"]["requests"], 50, "{report}");
    assert_eq!(report["total"]["cost"], "0.05", "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_refused_while_a_ledger_write_is_stuck_and_served_once_it_ends() {
    use sqlx::Connection;
    let server = TestServer::start().await;
    price_recommendations(&server, "1").await;
    let owner = server.tenant_with_key("stuck", "secret").await;
    server.seed_films(&owner).await;
    let (key, _) = server.key_with("stuck", json!({"kind": "secret"})).await;

    // Another connection holds the database's write lock: the ledger writer's next commit
    // waits for it (SQLite's busy timeout is longer than the refusal threshold of 5 s).
    let db = server.data_dir().join("marquee.db");
    let mut lock = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut lock)
        .await
        .unwrap();
    let locked_at = Instant::now();
    // Served at first (written behind; the writer is waiting for the lock)…
    let mut served = 0;
    let (s, b) = server.get("/v1/recommend/ann", Some(&key)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    served += 1;
    // …refused once the write has been stuck for 5 s.
    tokio::time::sleep(Duration::from_millis(6_000).saturating_sub(locked_at.elapsed())).await;
    let answers = burst(&server, &key, "/v1/recommend/ann", 20).await;
    for (s, _, body) in &answers {
        assert_error(
            *s,
            body,
            StatusCode::SERVICE_UNAVAILABLE,
            "ledger_unavailable",
        );
    }
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    lock.close().await.unwrap();

    until_served_again(&server, &key).await;
    served += 1;
    // Nothing served was lost.
    let rows = usage_records(&server, &owner).await;
    assert_eq!(rows.len(), served);
}

// ---------------------------------------------------------------------------------------------
// 6b. The operator's view across tenants

#[tokio::test]
async fn the_operator_sees_usage_of_every_tenant_and_tenants_see_only_their_own() {
    let server = TestServer::start().await;
    price_recommendations(&server, "1").await;
    let mut owners = Vec::new();
    for (tenant, calls) in [("north", 3), ("south", 5)] {
        let owner = server.tenant_with_key(tenant, "secret").await;
        server.seed_films(&owner).await;
        for _ in 0..calls {
            let (s, b) = server.get("/v1/recommend/ann", Some(&owner)).await;
            assert_eq!(s, StatusCode::OK, "{b}");
        }
        owners.push(owner);
    }
    let (s, all) = server
        .get("/v1/usage?group_by=tenant", Some(ADMIN_KEY))
        .await;
    assert_eq!(s, StatusCode::OK, "{all}");
    let lines: BTreeMap<String, (i64, String)> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["group"].as_str().unwrap().to_string(),
                (
                    l["requests"].as_i64().unwrap(),
                    l["cost"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect();
    assert_eq!(lines["north"], (3, "0.003".to_string()), "{all}");
    assert_eq!(lines["south"], (5, "0.005".to_string()), "{all}");
    assert_eq!(all["total"]["requests"], 8, "{all}");

    let (s, one) = server.get("/v1/usage?tenant=south", Some(ADMIN_KEY)).await;
    assert_eq!(s, StatusCode::OK, "{one}");
    assert_eq!(one["total"]["requests"], 5, "{one}");
    // A tenant's own key sees its own usage only, and cannot ask for another's.
    let (s, own) = server.get("/v1/usage", Some(&owners[0])).await;
    assert_eq!(s, StatusCode::OK, "{own}");
    assert_eq!(own["total"]["requests"], 3, "{own}");
    let (s, _) = server
        .get("/v1/usage?group_by=tenant", Some(&owners[0]))
        .await;
    assert!(s.is_client_error(), "{s}");
    // Naming a tenant is for the operator (422, whether or not the name exists).
    for name in ["south", "no-such-tenant"] {
        let (s, b) = server
            .get(&format!("/v1/usage?tenant={name}"), Some(&owners[0]))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(!b.to_string().contains("\"requests\""), "{b}");
    }
}

// ---------------------------------------------------------------------------------------------
// 5b. An erasure reaches the model and the kept model versions

/// Model versions with a snapshot on disk under the test server's data directory.
fn snapshot_versions(server: &TestServer) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    let root = server.data_dir().join("recommenders");
    for tenant in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(tenant.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = file.file_name().into_string().unwrap();
            if let Some(v) = name.strip_prefix('v').and_then(|n| n.strip_suffix(".mqr")) {
                out.insert(v.parse().unwrap());
            }
        }
    }
    out
}

#[tokio::test]
async fn an_erasure_retrains_the_model_and_deletes_the_versions_that_held_the_user() {
    let server = TestServer::start().await;
    let key = server.tenant_with_key("forgetful", "secret").await;
    server.seed_films(&key).await;
    for _ in 0..2 {
        let (s, b) = server
            .post("/v1/models/train?wait=true", Some(&key), json!({}))
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let before = snapshot_versions(&server);
    assert_eq!(before.len(), 3, "{before:?}");
    let (_, status) = server.get("/v1/training", Some(&key)).await;
    let current = status["current"]["version"].as_i64().unwrap();

    let (s, erased) = server.delete("/v1/users/bob", Some(&key)).await;
    assert_eq!(s, StatusCode::OK, "{erased}");
    assert_eq!(erased["retrain_requested"], true);
    // Masked at once: bob's events count nowhere, and his history is gone.
    let (s, b) = server.get("/v1/users/bob/feedback", Some(&key)).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");

    // Retrained without him within a few seconds (the background loop polls every 0.2 s)…
    let started = Instant::now();
    let retrained = loop {
        let (_, status) = server.get("/v1/training", Some(&key)).await;
        let v = status["current"]["version"].as_i64().unwrap_or(0);
        if v > current && status["state"] != "training" {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no retrain after the erasure: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let version = retrained["current"]["version"].as_i64().unwrap();
    // …on his events less (19 views, 4 of them his)…
    assert_eq!(status["current"]["interactions"], 19, "{status}");
    assert_eq!(retrained["current"]["interactions"], 15, "{retrained}");
    assert_eq!(retrained["current"]["users"], 5, "{retrained}");
    // …and the versions trained on his data are gone from disk (kept for rollback otherwise).
    let started = Instant::now();
    loop {
        let after = snapshot_versions(&server);
        if after == BTreeSet::from([version]) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "versions left after the erasure: {after:?} (new {version})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // An experiment can no longer pin them.
    let (s, b) = server
        .post(
            "/v1/experiments",
            Some(&key),
            json!({"name": "old model", "variants": [
                {"name": "old", "share": 0.5, "model_version": current},
                {"name": "new", "share": 0.5}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
}
