//! The OpenAPI document (`/openapi.json`) and the docs page (`/docs`), against a real server.
//!
//! - Every route of `routes/mod.rs` is in the document with its method, and nothing else is:
//!   a new route without a `#[utoipa::path]` annotation fails here (the CI step of issue 7).
//! - The document is OpenAPI 3.1, every `$ref` resolves, operation ids are unique, path
//!   parameters match the templates, every operation has a known tag and says what key it needs,
//!   and every error answer is the shared error shape (plain text for the Gorse-compatible API,
//!   as Gorse's server answers errors).
//! - Real answers of the running server (successes and errors) match the schemas the document
//!   gives for them, checked by a small JSON Schema validator below.
//! - `/docs` is an HTML page whose scripts and styles the server serves itself (no CDN).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The docs page's own routes, which are not API operations.
fn is_docs_page(path: &str) -> bool {
    path == "/docs" || path.starts_with("/docs/")
}

const TAGS: &[&str] = &[
    "catalogue",
    "users",
    "feedback",
    "recommendations",
    "search",
    "experiments",
    "models",
    "usage",
    "admin",
    "health",
    "gorse",
];

const SCOPES: &[&str] = &[
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

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch"];

/// The (METHOD, path) of every handler in the route table's source: each `.route(` call's
/// path and the `get(`/`post(`/`put(`/`patch(`/`delete(` calls chained inside it.
fn declared_routes(source: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
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
        for method in METHODS {
            let pattern = format!("{method}(");
            let mut from = 0;
            while let Some(i) = span[from..].find(&pattern) {
                let pos = from + i;
                let before = span[..pos].chars().next_back();
                if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    out.insert((method.to_uppercase(), path.clone()));
                }
                from = pos + pattern.len();
            }
        }
        rest = &call[end..];
    }
    out
}

/// The (METHOD, path) of every operation in the document.
fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(*method).is_some() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(op) = item.get(*method) {
                out.push((method.to_uppercase(), path.clone(), op));
            }
        }
    }
    out
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    let mut v = v;
    while let Some(r) = v.get("$ref").and_then(Value::as_str) {
        let pointer = r.strip_prefix('#').expect("local $ref");
        v = doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling $ref {r}"));
    }
    v
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                out.push(r.clone());
            }
            o.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// A small JSON Schema validator: the keywords utoipa emits (type, properties, required,
// additionalProperties, items, oneOf, anyOf, allOf, enum, minimum, maximum, $ref).

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.as_i64().is_some() || v.as_u64().is_some(),
        other => panic!("unknown JSON Schema type {other}"),
    }
}

/// The properties an object schema names, its `allOf` parts' included.
fn known_properties(doc: &Value, schema: &Value, out: &mut BTreeSet<String>) {
    let schema = resolve(doc, schema);
    if let Some(p) = schema.get("properties").and_then(Value::as_object) {
        out.extend(p.keys().cloned());
    }
    for part in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        known_properties(doc, part, out);
    }
}

fn validate(doc: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    validate_part(doc, schema, v, at, true, errors);
}

/// `closed`: whether properties the schema does not name are an error (not for the parts of
/// an `allOf`, which each name only some).
fn validate_part(
    doc: &Value,
    schema: &Value,
    v: &Value,
    at: &str,
    closed: bool,
    errors: &mut Vec<String>,
) {
    let schema = resolve(doc, schema);
    if let Some(t) = schema.get("type") {
        let ok = match t {
            Value::String(t) => type_matches(t, v),
            Value::Array(ts) => ts.iter().any(|t| type_matches(t.as_str().unwrap(), v)),
            _ => panic!("bad type {t}"),
        };
        if !ok {
            errors.push(format!("{at}: {v} is not of type {t}"));
            return;
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array)
        && !values.contains(v)
    {
        errors.push(format!("{at}: {v} is not one of {values:?}"));
    }
    if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_f64), v.as_f64())
        && n < min
    {
        errors.push(format!("{at}: {n} < minimum {min}"));
    }
    if let (Some(max), Some(n)) = (schema.get("maximum").and_then(Value::as_f64), v.as_f64())
        && n > max
    {
        errors.push(format!("{at}: {n} > maximum {max}"));
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            validate_part(doc, s, v, at, false, errors);
        }
    }
    for (keyword, exactly_one) in [("oneOf", true), ("anyOf", false)] {
        if let Some(options) = schema.get(keyword).and_then(Value::as_array) {
            let mut failures = Vec::new();
            let matching = options
                .iter()
                .filter(|s| {
                    let mut e = Vec::new();
                    validate(doc, s, v, at, &mut e);
                    let ok = e.is_empty();
                    failures.extend(e);
                    ok
                })
                .count();
            if matching == 0 || (exactly_one && matching > 1) {
                errors.push(format!(
                    "{at}: {matching} of the {keyword} options match {v} ({failures:?})"
                ));
            }
        }
    }
    if let Value::Object(o) = v {
        let properties = schema.get("properties").and_then(Value::as_object);
        let mut known = BTreeSet::new();
        known_properties(doc, schema, &mut known);
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = name.as_str().unwrap();
            if !o.contains_key(name) {
                errors.push(format!("{at}: required `{name}` is missing from {v}"));
            }
        }
        for (name, value) in o {
            let here = format!("{at}.{name}");
            match properties.and_then(|p| p.get(name)) {
                Some(s) => validate(doc, s, value, &here, errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        errors.push(format!("{here}: not in the schema"));
                    }
                    Some(s @ Value::Object(_)) => validate(doc, s, value, &here, errors),
                    // A described object without `additionalProperties` is closed to what the
                    // server writes: an answer field the document does not know is drift.
                    _ if closed && !known.is_empty() && !known.contains(name) => {
                        errors.push(format!("{here}: not in the schema"));
                    }
                    _ => {}
                },
            }
        }
    }
    if let (Value::Array(a), Some(items)) = (v, schema.get("items")) {
        for (i, e) in a.iter().enumerate() {
            validate(doc, items, e, &format!("{at}[{i}]"), errors);
        }
    }
}

/// The schema the document gives for `status` of `method path` in `content_type`.
fn response_schema<'a>(
    doc: &'a Value,
    method: &str,
    path: &str,
    status: u16,
    content_type: &str,
) -> &'a Value {
    let op = &doc["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{method} {path} is not in the document");
    let response = op["responses"]
        .get(status.to_string())
        .unwrap_or_else(|| panic!("{method} {path}: status {status} is not documented"));
    let response = resolve(doc, response);
    let content = &response["content"][content_type];
    assert!(
        content.is_object(),
        "{method} {path} {status}: no {content_type} content in the document: {response}"
    );
    &content["schema"]
}

/// Calls the server and checks the answer against the document.
struct Checker<'a> {
    server: &'a TestServer,
    doc: &'a Value,
    failures: Vec<String>,
    checked: BTreeSet<(String, String)>,
}

impl Checker<'_> {
    /// Sends `method concrete` (documented as `template`), expects `want`, and validates the
    /// JSON body against the document. Returns the body.
    async fn check(
        &mut self,
        method: Method,
        template: &str,
        concrete: &str,
        key: Option<&str>,
        body: Option<Value>,
        want: u16,
    ) -> Value {
        self.check_with(method, template, concrete, key, &[], body, want)
            .await
    }

    /// [`Checker::check`] the way a Gorse client calls: the key in `X-API-Key`, with more
    /// headers.
    #[allow(clippy::too_many_arguments)]
    async fn gorse(
        &mut self,
        method: Method,
        template: &str,
        concrete: &str,
        key: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
        want: u16,
    ) -> Value {
        let mut all = vec![("X-API-Key", key)];
        all.extend_from_slice(headers);
        self.check_with(method, template, concrete, None, &all, body, want)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn check_with(
        &mut self,
        method: Method,
        template: &str,
        concrete: &str,
        key: Option<&str>,
        send_headers: &[(&str, &str)],
        body: Option<Value>,
        want: u16,
    ) -> Value {
        let (status, headers, text) = self
            .server
            .send(method.clone(), concrete, key, body, send_headers)
            .await;
        assert_eq!(status.as_u16(), want, "{method} {concrete}: {text}");
        self.checked
            .insert((method.to_string(), template.to_string()));
        if text.is_empty() {
            let op = &self.doc["paths"][template][method.as_str().to_lowercase()];
            let response = resolve(self.doc, &op["responses"][want.to_string()]);
            assert!(
                response.is_object() && response.get("content").is_none(),
                "{method} {template} {want}: an empty answer, documented as {response}"
            );
            return Value::Null;
        }
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let schema = response_schema(self.doc, method.as_str(), template, want, &content_type);
        if content_type != "application/json" {
            return Value::String(text);
        }
        let value: Value = serde_json::from_str(&text).unwrap();
        let mut errors = Vec::new();
        validate(self.doc, schema, &value, "$", &mut errors);
        if !errors.is_empty() {
            self.failures.push(format!(
                "{method} {concrete} -> {want}: the answer does not match the document:\n  {}\n  answer: {value}",
                errors.join("\n  ")
            ));
        }
        value
    }
}

async fn fetch_document(server: &TestServer) -> Value {
    let (status, headers, text) = server
        .send(Method::GET, "/openapi.json", None, None, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn every_route_of_the_route_table_is_documented_and_nothing_else() {
    let declared: BTreeSet<(String, String)> =
        declared_routes(include_str!("../src/routes/mod.rs"))
            .into_iter()
            .filter(|(_, path)| !is_docs_page(path))
            .collect();
    // The parser sees the route table: the health probes, a chained route, this document.
    for route in [
        ("GET", "/healthz"),
        ("PATCH", "/v1/items/{item_id}"),
        ("DELETE", "/v1/users/{user_id}"),
        ("POST", "/v1/chat/completions"),
        ("GET", "/openapi.json"),
        ("DELETE", "/api/feedback/{user_id}/{item_id}"),
        ("GET", "/api/recommend/{user_id}/"),
        ("POST", "/api/session/recommend/{category}"),
    ] {
        assert!(
            declared.contains(&(route.0.to_string(), route.1.to_string())),
            "the route parser missed {route:?}"
        );
    }
    assert!(declared.len() >= 101, "{} routes parsed", declared.len());

    let doc = serde_json::to_value(marquee_server::openapi::document()).unwrap();
    let documented = documented_routes(&doc);
    let missing: Vec<_> = declared.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&declared).collect();
    assert!(
        missing.is_empty(),
        "routes of routes/mod.rs missing from the OpenAPI document (add a #[utoipa::path] \
         annotation and list the handler in openapi.rs): {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "operations in the OpenAPI document that routes/mod.rs does not declare: {stale:?}"
    );
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_consistent() {
    let server = TestServer::start().await;
    // Public: no key needed, and a key changes nothing.
    let doc = fetch_document(&server).await;
    let (status, headers, with_key) = server
        .send(Method::GET, "/openapi.json", Some(ADMIN_KEY), None, &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_str::<Value>(&with_key).unwrap(), doc);
    assert!(headers.get("x-ratelimit-limit-requests").is_none());
    assert_eq!(
        doc,
        serde_json::to_value(marquee_server::openapi::document()).unwrap()
    );

    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "Marquee");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(doc["info"]["description"].as_str().unwrap().len() > 200);
    assert_eq!(doc["servers"][0]["url"], "/");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["api_key"]["type"], "apiKey");
    assert_eq!(schemes["api_key"]["in"], "header");
    assert_eq!(schemes["api_key"]["name"], "X-API-Key");
    let tags: Vec<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tags, TAGS);

    // Every $ref resolves.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 100, "{} refs", refs.len());
    for r in &refs {
        let pointer = r.strip_prefix('#').expect("only local $refs");
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
    }

    let error_schema = &doc["components"]["schemas"]["ErrorResponse"];
    assert_eq!(error_schema["required"], json!(["error"]));
    let mut operation_ids = BTreeSet::new();
    let mut used_tags = BTreeSet::new();
    let mut failures = Vec::new();
    for (method, path, op) in operations(&doc) {
        let what = format!("{method} {path}");
        let id = op["operationId"].as_str().unwrap_or_default();
        if !operation_ids.insert(id.to_string()) {
            failures.push(format!("{what}: operationId {id:?} is not unique"));
        }
        let op_tags = op["tags"].as_array().cloned().unwrap_or_default();
        if op_tags.len() != 1 || !TAGS.contains(&op_tags[0].as_str().unwrap()) {
            failures.push(format!("{what}: tags {op_tags:?}"));
        }
        used_tags.extend(op_tags.iter().map(|t| t.as_str().unwrap().to_string()));
        if op["summary"].as_str().is_none_or(str::is_empty) {
            failures.push(format!("{what}: no summary"));
        }
        // What key it needs: in the extension, and in words in the description.
        let scope = op["x-required-scope"].as_str().unwrap_or_default();
        let valid = ["none", "any", "operator"].contains(&scope)
            || (!scope.is_empty() && scope.split(' ').all(|s| SCOPES.contains(&s)));
        if !valid {
            failures.push(format!("{what}: x-required-scope {scope:?}"));
        }
        let description = op["description"].as_str().unwrap_or_default();
        if !(description.contains("**Scope:**") || description.contains("**Key:**")) {
            failures.push(format!(
                "{what}: the description does not name the key it needs"
            ));
        }
        // Keyless operations say so; the others need one of the two schemes.
        let security = op.get("security").or(doc.get("security")).unwrap();
        let anonymous = security
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_object().unwrap().is_empty());
        if anonymous != (scope == "none" || scope == "recommend") {
            failures.push(format!("{what}: security {security} for scope {scope:?}"));
        }
        // Path parameters match the template.
        let in_template: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_string)
            .collect();
        let declared: BTreeSet<String> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| resolve(&doc, p))
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        if in_template != declared {
            failures.push(format!(
                "{what}: path parameters {declared:?}, template {in_template:?}"
            ));
        }
        // Success answers are described; every error answer is the error shape.
        let responses = op["responses"].as_object().unwrap();
        if !responses.keys().any(|s| s.starts_with('2')) {
            failures.push(format!("{what}: no success answer"));
        }
        for (status, response) in responses {
            let response = resolve(&doc, response);
            if response["description"].as_str().is_none_or(str::is_empty) {
                failures.push(format!("{what} {status}: no description"));
            }
            if status.starts_with('4') || status.starts_with('5') {
                if path == "/readyz" {
                    continue;
                }
                if path.starts_with("/api/") {
                    // Gorse's errors: the error's text as a plain-text body (go-restful's
                    // `WriteError`).
                    let content = response["content"].as_object();
                    if content.is_none_or(|c| c.len() != 1)
                        || response["content"]["text/plain"]["schema"]["type"] != "string"
                    {
                        failures.push(format!("{what} {status}: not plain text: {response}"));
                    }
                    continue;
                }
                let schema = &response["content"]["application/json"]["schema"];
                if schema.get("$ref").and_then(Value::as_str)
                    != Some("#/components/schemas/ErrorResponse")
                {
                    failures.push(format!("{what} {status}: not the error shape: {response}"));
                }
            }
        }
        if scope != "none" {
            for status in ["401", "403", "429", "500"] {
                if !responses.contains_key(status) {
                    failures.push(format!("{what}: no {status} answer"));
                }
            }
        }
        // Gorse's routes answer malformed input with 400, as Gorse does; the others with 422.
        let gorse = op_tags.first().and_then(Value::as_str) == Some("gorse");
        if gorse != path.starts_with("/api/") {
            failures.push(format!("{what}: tagged {op_tags:?}"));
        }
        let takes_input = op.get("requestBody").is_some()
            || op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| resolve(&doc, p)["in"] == "query");
        if gorse {
            if takes_input && !responses.contains_key("400") {
                failures.push(format!("{what}: takes input but documents no 400"));
            }
            for status in ["415", "422"] {
                if responses.contains_key(status) {
                    failures.push(format!("{what}: Gorse's routes never answer {status}"));
                }
            }
        } else if op.get("requestBody").is_some() && !responses.contains_key("422") {
            failures.push(format!("{what}: takes a body but documents no 422"));
        }
    }
    let all: BTreeSet<String> = TAGS.iter().map(|t| t.to_string()).collect();
    assert_eq!(used_tags, all, "every tag has operations");
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // 429 and 503 tell clients when to come back.
    for name in ["TooManyRequests", "Unavailable"] {
        let headers = &doc["components"]["responses"][name]["headers"];
        assert!(headers["Retry-After"].is_object(), "{name}: {headers}");
    }
    // The scopes are the platform's own.
    let capability = &doc["components"]["schemas"]["Capability"]["enum"];
    assert_eq!(capability, &json!(SCOPES));

    // Bodies that are not JSON are described as what they are.
    let transcription = &doc["paths"]["/v1/audio/transcriptions"]["post"]["requestBody"]["content"];
    assert!(
        transcription["multipart/form-data"].is_object(),
        "{transcription}"
    );
    let form = resolve(&doc, &transcription["multipart/form-data"]["schema"]);
    assert!(form["properties"]["file"].is_object(), "{form}");
    let classify = &doc["paths"]["/v1/images/classify"]["post"]["requestBody"]["content"];
    for ct in ["multipart/form-data", "application/json", "image/*"] {
        assert!(classify[ct].is_object(), "{ct}: {classify}");
    }
    let speech = &doc["paths"]["/v1/audio/speech"]["post"]["responses"]["200"]["content"];
    assert!(speech["audio/wav"].is_object() && speech["audio/pcm"].is_object());
    let chat = &doc["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"];
    assert!(chat["text/event-stream"].is_object(), "{chat}");
    let usage = &doc["paths"]["/v1/usage"]["get"]["responses"]["200"]["content"];
    assert!(usage["text/csv"].is_object(), "{usage}");
    // Query parameters come from the routes' own parameter types.
    let params: Vec<&str> = doc["paths"]["/v1/recommend/{user_id}"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "user_id",
        "n",
        "category",
        "category_match",
        "exclude",
        "exclude_seen",
        "filter",
    ] {
        assert!(params.contains(&p), "{p} missing from {params:?}");
    }

    // The Gorse-compatible API: Gorse's own field names, all of them always in the answers.
    for (schema, fields) in [
        (
            "GorseUser",
            &["UserId", "Labels", "Subscribe", "Comment"][..],
        ),
        (
            "GorseItem",
            &[
                "ItemId",
                "IsHidden",
                "Categories",
                "Timestamp",
                "Labels",
                "Comment",
            ][..],
        ),
        (
            "GorseFeedback",
            &["FeedbackType", "UserId", "ItemId", "Timestamp", "Comment"][..],
        ),
        ("GorseRowAffected", &["RowAffected"][..]),
        ("GorseUserPage", &["Cursor", "Users"][..]),
        ("GorseItemPage", &["Cursor", "Items"][..]),
        ("GorseFeedbackPage", &["Cursor", "Feedback"][..]),
        ("GorseScore", &["Id", "Score"][..]),
    ] {
        let s = &doc["components"]["schemas"][schema];
        let names: BTreeSet<&str> = s["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{schema}: {s}"))
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(names, fields.iter().copied().collect(), "{schema}");
        let required: BTreeSet<&str> = s["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        assert_eq!(required, names, "{schema}: every field is always answered");
    }
    let input = &doc["components"]["schemas"]["GorseFeedbackInput"];
    for field in [
        "FeedbackType",
        "UserId",
        "ItemId",
        "Timestamp",
        "Value",
        "Comment",
    ] {
        assert!(input["properties"][field].is_object(), "{field}: {input}");
    }
    // Recommend: `n`/`offset`, the write-back and the answer's version, ids or scored items.
    let op = &doc["paths"]["/api/recommend/{user_id}"]["get"];
    let params: Vec<(&str, &str)> = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["in"].as_str().unwrap()))
        .collect();
    for p in [
        ("user_id", "path"),
        ("n", "query"),
        ("offset", "query"),
        ("category", "query"),
        ("write-back-type", "query"),
        ("write-back-delay", "query"),
        ("X-API-Version", "header"),
    ] {
        assert!(params.contains(&p), "{p:?} missing from {params:?}");
    }
    assert_eq!(op["x-required-scope"], "recommend");
    let answer = resolve(
        &doc,
        &op["responses"]["200"]["content"]["application/json"]["schema"],
    );
    let kinds: Vec<&Value> = answer["anyOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| resolve(&doc, &a["items"]))
        .collect();
    assert_eq!(kinds[0]["type"], "string", "{answer}");
    assert!(kinds[1]["properties"]["Score"].is_object(), "{answer}");
    // Each path form of a route is an operation of its own, with its own path parameters.
    for (path, id) in [
        (
            "/api/recommend/{user_id}/{category}",
            "gorseRecommendInCategory",
        ),
        ("/api/recommend/{user_id}", "gorseRecommend"),
        ("/api/recommend/{user_id}/", "gorseRecommendEmptyCategory"),
    ] {
        assert_eq!(doc["paths"][path]["get"]["operationId"], id);
    }
    // And each says what it needs, from the handler's own check.
    for (method, path, scope) in [
        ("post", "/api/user", "users:write"),
        ("get", "/api/users", "users:read"),
        (
            "put",
            "/api/item/{item_id}/category/{category}",
            "catalog:write",
        ),
        ("get", "/api/item/{item_id}", "catalog:read"),
        ("put", "/api/feedback", "feedback:write"),
        ("get", "/api/feedback", "users:read"),
        (
            "delete",
            "/api/feedback/{user_id}/{item_id}",
            "feedback:write",
        ),
        ("post", "/api/session/recommend/", "recommend"),
    ] {
        assert_eq!(
            doc["paths"][path][method]["x-required-scope"], scope,
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn real_answers_match_the_document() {
    let server = TestServer::start().await;
    let doc = fetch_document(&server).await;
    let key = server.tenant_with_key("films", "secret").await;
    server.seed_films(&key).await;
    let admin = server.key("films", "admin").await;
    let mut c = Checker {
        server: &server,
        doc: &doc,
        failures: Vec::new(),
        checked: BTreeSet::new(),
    };
    let k = Some(key.as_str());
    let op = Some(ADMIN_KEY);
    use Method as M;

    // Health.
    c.check(M::GET, "/healthz", "/healthz", None, None, 200)
        .await;
    c.check(M::GET, "/readyz", "/readyz", None, None, 200).await;
    c.check(M::GET, "/readyz", "/readyz", op, None, 200).await;
    // Gorse's probes, keyless as in Gorse.
    let live = c
        .check(
            M::GET,
            "/api/health/live",
            "/api/health/live",
            None,
            None,
            200,
        )
        .await;
    assert_eq!(live["DataStoreConnected"], true, "{live}");
    let ready = c
        .check(
            M::GET,
            "/api/health/ready",
            "/api/health/ready",
            None,
            None,
            200,
        )
        .await;
    assert_eq!(ready["Ready"], true, "{ready}");
    c.check(M::GET, "/openapi.json", "/openapi.json", None, None, 200)
        .await;

    // Catalogue and users.
    c.check(M::GET, "/v1/items", "/v1/items?limit=3", k, None, 200)
        .await;
    let items = json!([{"id": "se7en", "title": "Se7en", "categories": ["Crime"], "published_at": 811_987_200}]);
    c.check(M::POST, "/v1/items", "/v1/items", k, Some(items), 200)
        .await;
    let t = "/v1/items/{item_id}";
    let alien = c.check(M::GET, t, "/v1/items/alien", k, None, 200).await;
    // The validator tells a wrong answer from a right one.
    let item_schema = response_schema(&doc, "GET", t, 200, "application/json");
    for (change, want) in [
        (json!({"title": 7}), "is not of type"),
        (json!({"studio": "20th Century Fox"}), "not in the schema"),
        (json!({"categories": [1]}), "is not of type"),
        (json!({"hidden": "no"}), "is not of type"),
        (json!({"updated_at": null}), "options match"),
    ] {
        let mut wrong = alien.clone();
        for (k, v) in change.as_object().unwrap() {
            wrong[k] = v.clone();
        }
        let mut errors = Vec::new();
        validate(&doc, item_schema, &wrong, "$", &mut errors);
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "{change}: {errors:?}"
        );
    }
    let mut wrong = alien.clone();
    wrong.as_object_mut().unwrap().remove("id");
    let mut errors = Vec::new();
    validate(&doc, item_schema, &wrong, "$", &mut errors);
    assert!(
        errors.iter().any(|e| e.contains("required `id`")),
        "{errors:?}"
    );
    c.check(
        M::PUT,
        t,
        "/v1/items/fargo",
        k,
        Some(json!({"title": "Fargo", "metadata": {"year": 1996}})),
        200,
    )
    .await;
    c.check(
        M::PATCH,
        t,
        "/v1/items/fargo",
        k,
        Some(json!({"description": null, "tags": ["snow"]})),
        200,
    )
    .await;
    c.check(M::DELETE, t, "/v1/items/fargo", k, None, 204).await;
    c.check(M::GET, t, "/v1/items/fargo", k, None, 404).await;
    c.check(M::GET, "/v1/users", "/v1/users", k, None, 200)
        .await;
    c.check(
        M::POST,
        "/v1/users",
        "/v1/users",
        k,
        Some(json!({"id": "gus", "attributes": {"plan": "basic"}})),
        200,
    )
    .await;
    let t = "/v1/users/{user_id}";
    c.check(
        M::PUT,
        t,
        "/v1/users/ann",
        k,
        Some(json!({"attributes": {"country": "FR"}})),
        200,
    )
    .await;
    c.check(
        M::PATCH,
        t,
        "/v1/users/ann",
        k,
        Some(json!({"attributes": {"plan": "premium"}})),
        200,
    )
    .await;
    c.check(M::GET, t, "/v1/users/ann", k, None, 200).await;
    c.check(
        M::GET,
        "/v1/users/{user_id}/profile",
        "/v1/users/ann/profile?history=2",
        k,
        None,
        200,
    )
    .await;
    c.check(
        M::GET,
        "/v1/users/{user_id}/export",
        "/v1/users/bob/export",
        k,
        None,
        200,
    )
    .await;
    c.check(
        M::GET,
        "/v1/users/{user_id}/feedback",
        "/v1/users/ann/feedback?limit=2",
        k,
        None,
        200,
    )
    .await;
    let events = json!([{"user_id": "gus", "item_id": "heat", "type": "like", "value": 1.0, "timestamp": "2023-11-14T22:13:20Z"}]);
    c.check(
        M::POST,
        "/v1/feedback",
        "/v1/feedback",
        k,
        Some(events),
        200,
    )
    .await;
    c.check(M::DELETE, t, "/v1/users/gus", k, None, 200).await;

    // Recommendations.
    let recs = c
        .check(
            M::GET,
            "/v1/recommend/{user_id}",
            "/v1/recommend/ann?n=3&category=Sci-Fi",
            k,
            None,
            200,
        )
        .await;
    assert!(!recs.as_array().unwrap().is_empty(), "{recs}");
    c.check(
        M::GET,
        "/v1/recommend/{user_id}/{item_id}",
        "/v1/recommend/ann/heat",
        k,
        None,
        200,
    )
    .await;
    c.check(
        M::GET,
        "/recommend/{user_id}/{item_id}",
        "/recommend/ann/heat?n=2",
        k,
        None,
        200,
    )
    .await;
    c.check(
        M::GET,
        "/v1/items/{item_id}/similar",
        "/v1/items/alien/similar",
        k,
        None,
        200,
    )
    .await;
    c.check(
        M::GET,
        "/v1/popular",
        "/v1/popular?exploration=0.2",
        k,
        None,
        200,
    )
    .await;
    c.check(M::GET, "/v1/trending", "/v1/trending", k, None, 200)
        .await;
    c.check(
        M::POST,
        "/v1/recommend/session",
        "/v1/recommend/session",
        k,
        Some(json!({"items": ["heat"], "n": 2})),
        200,
    )
    .await;
    c.check(
        M::POST,
        "/v1/models/train",
        "/v1/models/train?wait=true",
        k,
        Some(json!({"model": {"algorithm": "item_knn", "neighbors": 20, "shrinkage": 1.0}})),
        200,
    )
    .await;
    c.check(M::GET, "/v1/training", "/v1/training", k, None, 200)
        .await;

    // Experiments.
    let exp = c
        .check(M::POST, "/v1/experiments", "/v1/experiments", k, Some(json!({"name": "knn-vs-ease", "variants": [{"name": "control", "share": 1}, {"name": "ease", "share": 1, "model": {"algorithm": "ease", "lambda": 100}}]})), 201)
        .await;
    let id = exp["id"].as_str().unwrap().to_string();
    c.check(M::GET, "/v1/experiments", "/v1/experiments", k, None, 200)
        .await;
    c.check(
        M::GET,
        "/v1/experiments/{id}",
        &format!("/v1/experiments/{id}"),
        k,
        None,
        200,
    )
    .await;
    c.check(
        M::GET,
        "/v1/experiments/{id}/results",
        &format!("/v1/experiments/{id}/results"),
        k,
        None,
        200,
    )
    .await;
    c.check(
        M::POST,
        "/v1/experiments/{id}/stop",
        &format!("/v1/experiments/{id}/stop"),
        k,
        None,
        200,
    )
    .await;

    // Administration.
    c.check(
        M::POST,
        "/v1/admin/tenants",
        "/v1/admin/tenants",
        op,
        Some(json!({"name": "studio"})),
        201,
    )
    .await;
    c.check(
        M::GET,
        "/v1/admin/tenants",
        "/v1/admin/tenants",
        op,
        None,
        200,
    )
    .await;
    let t = "/v1/admin/tenants/{tenant}/keys";
    let created = c
        .check(M::POST, t, "/v1/admin/tenants/films/keys", Some(&admin), Some(json!({"kind": "publishable", "name": "web", "scopes": ["recommend"], "allowed_origins": ["https://films.example"], "limits": {"requests_per_second": 5}, "quotas": {"recommendations": 1000}, "budget": "2.5"})), 201)
        .await;
    let key_id = created["id"].as_str().unwrap().to_string();
    c.check(
        M::GET,
        t,
        "/v1/admin/tenants/films/keys",
        Some(&admin),
        None,
        200,
    )
    .await;
    let t = "/v1/admin/keys/{key_id}";
    c.check(
        M::PATCH,
        t,
        &format!("/v1/admin/keys/{key_id}"),
        Some(&admin),
        Some(json!({"name": "website", "budget": null})),
        200,
    )
    .await;
    let rotated = c
        .check(
            M::POST,
            "/v1/admin/keys/{key_id}/rotate",
            &format!("/v1/admin/keys/{key_id}/rotate"),
            Some(&admin),
            Some(json!({"grace_seconds": 0})),
            201,
        )
        .await;
    let new_id = rotated["id"].as_str().unwrap().to_string();
    c.check(
        M::DELETE,
        t,
        &format!("/v1/admin/keys/{new_id}"),
        Some(&admin),
        None,
        204,
    )
    .await;
    let t = "/v1/admin/tenants/{tenant}/policy";
    c.check(M::PUT, t, "/v1/admin/tenants/films/policy", op, Some(json!({"limits": {"requests_per_minute": 6000}, "quotas": {"output_tokens": 100000}, "budget": 100})), 200).await;
    c.check(M::GET, t, "/v1/admin/tenants/films/policy", op, None, 200)
        .await;
    c.check(M::PUT, "/v1/admin/prices", "/v1/admin/prices", op, Some(json!({"currency": "EUR", "period": "month", "prices": {"recommendations": "0.5", "images": 0.002}})), 200).await;
    c.check(M::GET, "/v1/prices", "/v1/prices", k, None, 200)
        .await;
    c.check(
        M::GET,
        "/v1/audit",
        "/v1/audit?limit=5",
        Some(&admin),
        None,
        200,
    )
    .await;

    // Usage (after priced requests, so that costs are non-zero).
    c.check(M::GET, "/v1/popular", "/v1/popular", k, None, 200)
        .await;
    c.check(
        M::GET,
        "/v1/usage",
        "/v1/usage?group_by=route",
        k,
        None,
        200,
    )
    .await;
    c.check(M::GET, "/v1/usage", "/v1/usage?format=csv", k, None, 200)
        .await;
    c.check(
        M::GET,
        "/v1/usage/records",
        "/v1/usage/records?limit=2",
        k,
        None,
        200,
    )
    .await;
    let month = time_month();
    c.check(
        M::GET,
        "/v1/invoices/{month}",
        &format!("/v1/invoices/{month}"),
        k,
        None,
        200,
    )
    .await;

    // Models: none are loaded by this server, which the document says too.
    c.check(M::GET, "/v1/models", "/v1/models", k, None, 200)
        .await;
    c.check(
        M::GET,
        "/v1/models/{model}",
        "/v1/models/no-such-model",
        k,
        None,
        404,
    )
    .await;
    c.check(
        M::POST,
        "/v1/embeddings",
        "/v1/embeddings",
        k,
        Some(json!({"input": "a heist film"})),
        503,
    )
    .await;
    c.check(
        M::POST,
        "/v1/chat/completions",
        "/v1/chat/completions",
        k,
        Some(json!({"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]})),
        404,
    )
    .await;
    c.check(
        M::POST,
        "/v1/images/classify",
        "/v1/images/classify",
        k,
        Some(json!({"image": "aGVsbG8="})),
        503,
    )
    .await;
    c.check(M::GET, "/v1/search", "/v1/search?q=space", k, None, 503)
        .await;
    c.check(
        M::POST,
        "/v1/audio/speech",
        "/v1/audio/speech",
        k,
        Some(json!({"model": "no-such-model", "input": "Hello.", "voice": "alloy"})),
        404,
    )
    .await;
    // Transcription takes a form, not JSON.
    c.check(
        M::POST,
        "/v1/audio/transcriptions",
        "/v1/audio/transcriptions",
        k,
        Some(json!({"model": "whisper-1"})),
        415,
    )
    .await;
    c.check(
        M::POST,
        "/v1/items/{item_id}/image",
        "/v1/items/alien/image",
        k,
        Some(json!({"image": "aGVsbG8="})),
        503,
    )
    .await;
    c.check(
        M::POST,
        "/v1/items/{item_id}/generate",
        "/v1/items/alien/generate",
        k,
        Some(json!({"kind": "tagline"})),
        503,
    )
    .await;
    let metrics = c.check(M::GET, "/metrics", "/metrics", op, None, 200).await;
    assert!(metrics.as_str().unwrap().contains("# TYPE"), "{metrics}");

    // Errors, in the shape the document gives.
    c.check(M::GET, "/v1/items", "/v1/items", None, None, 401)
        .await;
    c.check(M::GET, "/v1/items", "/v1/items?limit=many", k, None, 422)
        .await;
    c.check(
        M::POST,
        "/v1/feedback",
        "/v1/feedback",
        k,
        Some(json!({"user_id": "ann"})),
        422,
    )
    .await;
    c.check(
        M::GET,
        "/v1/admin/tenants",
        "/v1/admin/tenants",
        k,
        None,
        403,
    )
    .await;
    c.check(
        M::POST,
        "/v1/admin/tenants",
        "/v1/admin/tenants",
        op,
        Some(json!({"name": "studio"})),
        409,
    )
    .await;

    // The Gorse-compatible API, called as Gorse's clients call it (the key in `X-API-Key`).
    // Users.
    let g = key.as_str();
    let done = json!({"RowAffected": 1});
    let b = c
        .gorse(M::POST, "/api/user", "/api/user", g, &[], Some(json!({"UserId": "gina", "Labels": ["noir"], "Subscribe": ["news"], "Comment": "from Gorse"})), 200)
        .await;
    assert_eq!(b, done);
    let b = c
        .gorse(
            M::POST,
            "/api/users",
            "/api/users",
            g,
            &[],
            Some(json!([{"UserId": "hal", "Labels": {"country": "FR"}}, {"userid": "ivy"}])),
            200,
        )
        .await;
    assert_eq!(b, json!({"RowAffected": 2}));
    let page = c
        .gorse(M::GET, "/api/users", "/api/users?n=2", g, &[], None, 200)
        .await;
    assert_eq!(page["Users"].as_array().unwrap().len(), 2, "{page}");
    assert!(!page["Cursor"].as_str().unwrap().is_empty(), "{page}");
    let t = "/api/user/{user_id}";
    let gina = c
        .gorse(M::GET, t, "/api/user/gina", g, &[], None, 200)
        .await;
    assert_eq!(
        gina,
        json!({"UserId": "gina", "Labels": ["noir"], "Subscribe": ["news"], "Comment": "from Gorse"})
    );
    // A user without attributes: nulls and an empty comment, as Gorse answers; one with
    // Marquee attributes shows them as its `Labels` object.
    let cat = c.gorse(M::GET, t, "/api/user/cat", g, &[], None, 200).await;
    assert_eq!(
        cat,
        json!({"UserId": "cat", "Labels": null, "Subscribe": null, "Comment": ""})
    );
    let ann = c.gorse(M::GET, t, "/api/user/ann", g, &[], None, 200).await;
    assert_eq!(ann["Labels"], json!({"country": "FR", "plan": "premium"}));
    let b = c
        .gorse(
            M::PATCH,
            t,
            "/api/user/gina",
            g,
            &[],
            Some(json!({"Comment": "patched"})),
            200,
        )
        .await;
    assert_eq!(b, done);
    c.gorse(M::DELETE, t, "/api/user/hal", g, &[], None, 200)
        .await;
    c.gorse(M::GET, t, "/api/user/hal", g, &[], None, 404).await;

    // Items.
    let b = c
        .gorse(M::POST, "/api/item", "/api/item", g, &[], Some(json!({"ItemId": "ronin", "IsHidden": false, "Categories": ["Action"], "Timestamp": "1998-09-25", "Labels": ["heist", "paris"], "Comment": "Car chases"})), 200)
        .await;
    assert_eq!(b, done);
    c.gorse(M::POST, "/api/items", "/api/items", g, &[], Some(json!([{"ItemId": "brazil", "Labels": {"year": 1985}}, {"ItemId": "gattaca", "Categories": ["Sci-Fi"]}])), 200)
        .await;
    let page = c
        .gorse(M::GET, "/api/items", "/api/items?n=3", g, &[], None, 200)
        .await;
    assert_eq!(page["Items"].as_array().unwrap().len(), 3, "{page}");
    let found = c
        .gorse(
            M::GET,
            "/api/items",
            "/api/items?q=car%20chase",
            g,
            &[],
            None,
            200,
        )
        .await;
    assert_eq!(found["Items"][0]["ItemId"], "ronin", "{found}");
    let t = "/api/item/{item_id}";
    let ronin = c
        .gorse(M::GET, t, "/api/item/ronin", g, &[], None, 200)
        .await;
    assert_eq!(
        ronin,
        json!({"ItemId": "ronin", "IsHidden": false, "Categories": ["Action"], "Timestamp": "1998-09-25T00:00:00Z", "Labels": ["heist", "paris"], "Comment": "Car chases"})
    );
    let brazil = c
        .gorse(M::GET, t, "/api/item/brazil", g, &[], None, 200)
        .await;
    assert_eq!(brazil["Labels"], json!({"year": 1985}));
    assert_eq!(brazil["Timestamp"], "0001-01-01T00:00:00Z");
    c.gorse(
        M::PATCH,
        t,
        "/api/item/brazil",
        g,
        &[],
        Some(json!({"IsHidden": true})),
        200,
    )
    .await;
    let tc = "/api/item/{item_id}/category/{category}";
    c.gorse(
        M::PUT,
        tc,
        "/api/item/ronin/category/Thriller",
        g,
        &[],
        None,
        200,
    )
    .await;
    c.gorse(
        M::DELETE,
        tc,
        "/api/item/ronin/category/Action",
        g,
        &[],
        None,
        200,
    )
    .await;
    let ronin = c
        .gorse(M::GET, t, "/api/item/ronin", g, &[], None, 200)
        .await;
    assert_eq!(ronin["Categories"], json!(["Thriller"]));
    c.gorse(M::DELETE, t, "/api/item/brazil", g, &[], None, 200)
        .await;

    // Feedback.
    let b = c
        .gorse(M::POST, "/api/feedback", "/api/feedback", g, &[], Some(json!([{"FeedbackType": "like", "UserId": "gina", "ItemId": "heat", "Timestamp": "2024-01-01T00:00:00Z"}])), 200)
        .await;
    assert_eq!(b, done);
    c.gorse(M::PUT, "/api/feedback", "/api/feedback", g, &[], Some(json!([{"FeedbackType": "like", "UserId": "gina", "ItemId": "casino", "Value": 2.0}, {"FeedbackType": "star", "UserId": "gina", "ItemId": "heat"}])), 200)
        .await;
    let page = c
        .gorse(
            M::GET,
            "/api/feedback",
            "/api/feedback?n=2",
            g,
            &[],
            None,
            200,
        )
        .await;
    assert_eq!(page["Feedback"].as_array().unwrap().len(), 2, "{page}");
    let likes = c
        .gorse(
            M::GET,
            "/api/feedback/{feedback_type}",
            "/api/feedback/like",
            g,
            &[],
            None,
            200,
        )
        .await;
    assert_eq!(likes["Feedback"].as_array().unwrap().len(), 2, "{likes}");
    let between = c
        .gorse(
            M::GET,
            "/api/feedback/{user_id}/{item_id}",
            "/api/feedback/gina/heat",
            g,
            &[],
            None,
            200,
        )
        .await;
    assert_eq!(between.as_array().unwrap().len(), 2, "{between}");
    let t = "/api/feedback/{feedback_type}/{user_id}/{item_id}";
    let like = c
        .gorse(M::GET, t, "/api/feedback/like/gina/heat", g, &[], None, 200)
        .await;
    assert_eq!(
        like,
        json!({"FeedbackType": "like", "UserId": "gina", "ItemId": "heat", "Timestamp": "2024-01-01T00:00:00Z", "Comment": ""})
    );
    c.gorse(M::GET, t, "/api/feedback/read/gina/heat", g, &[], None, 404)
        .await;
    let mine = c
        .gorse(
            M::GET,
            "/api/user/{user_id}/feedback",
            "/api/user/gina/feedback",
            g,
            &[],
            None,
            200,
        )
        .await;
    assert_eq!(mine.as_array().unwrap().len(), 3, "{mine}");
    c.gorse(
        M::GET,
        "/api/user/{user_id}/feedback/{feedback_type}",
        "/api/user/gina/feedback/star",
        g,
        &[],
        None,
        200,
    )
    .await;
    for (template, concrete) in [
        ("/api/item/{item_id}/feedback", "/api/item/heat/feedback"),
        ("/api/item/{item_id}/feedback/", "/api/item/heat/feedback/"),
        (
            "/api/item/{item_id}/feedback/{feedback_type}",
            "/api/item/heat/feedback/like",
        ),
    ] {
        let on_heat = c.gorse(M::GET, template, concrete, g, &[], None, 200).await;
        assert!(
            !on_heat.as_array().unwrap().is_empty(),
            "{concrete}: {on_heat}"
        );
    }
    let b = c
        .gorse(
            M::DELETE,
            t,
            "/api/feedback/star/gina/heat",
            g,
            &[],
            None,
            200,
        )
        .await;
    assert_eq!(b, done);
    let b = c
        .gorse(
            M::DELETE,
            "/api/feedback/{user_id}/{item_id}",
            "/api/feedback/gina/casino",
            g,
            &[],
            None,
            200,
        )
        .await;
    assert_eq!(b, done);

    // Recommendations: ids, or `{"Id","Score"}` with `X-API-Version: 2`.
    let ids = c
        .gorse(
            M::GET,
            "/api/recommend/{user_id}",
            "/api/recommend/ann?n=3",
            g,
            &[],
            None,
            200,
        )
        .await;
    assert_eq!(ids.as_array().unwrap().len(), 3, "{ids}");
    assert!(
        ids.as_array().unwrap().iter().all(Value::is_string),
        "{ids}"
    );
    let v2 = [("X-API-Version", "2")];
    let scored = c
        .gorse(
            M::GET,
            "/api/recommend/{user_id}",
            "/api/recommend/ann?n=3",
            g,
            &v2,
            None,
            200,
        )
        .await;
    let first = &scored[0];
    assert_eq!(first["Id"], ids[0], "{scored}");
    assert!(first["Score"].is_number(), "{scored}");
    c.gorse(
        M::GET,
        "/api/recommend/{user_id}/",
        "/api/recommend/ann/?n=2",
        g,
        &v2,
        None,
        200,
    )
    .await;
    let drama = c
        .gorse(
            M::GET,
            "/api/recommend/{user_id}/{category}",
            "/api/recommend/ann/Drama",
            g,
            &[],
            None,
            200,
        )
        .await;
    assert!(!drama.as_array().unwrap().is_empty(), "{drama}");
    let t = "/api/item/{item_id}/neighbors";
    let near = c
        .gorse(
            M::GET,
            t,
            "/api/item/alien/neighbors?n=2",
            g,
            &[],
            None,
            200,
        )
        .await;
    assert_eq!(near[0]["Id"], "aliens", "{near}");
    c.gorse(
        M::GET,
        "/api/item/{item_id}/neighbors/",
        "/api/item/alien/neighbors/",
        g,
        &[],
        None,
        200,
    )
    .await;
    c.gorse(
        M::GET,
        "/api/item/{item_id}/neighbors/{category}",
        "/api/item/alien/neighbors/Action",
        g,
        &[],
        None,
        200,
    )
    .await;
    let users = c
        .gorse(
            M::GET,
            "/api/user/{user_id}/neighbors",
            "/api/user/ann/neighbors",
            g,
            &[],
            None,
            200,
        )
        .await;
    assert_eq!(users[0]["Id"], "bob", "{users}");
    c.gorse(
        M::GET,
        "/api/user/{user_id}/neighbors/",
        "/api/user/ann/neighbors/?offset=1",
        g,
        &[],
        None,
        200,
    )
    .await;
    let latest = c
        .gorse(M::GET, "/api/latest", "/api/latest?n=1", g, &[], None, 200)
        .await;
    assert_eq!(latest, json!([{"Id": "ronin", "Score": 906_681_600.0}]));
    c.gorse(M::GET, "/api/latest/", "/api/latest/", g, &[], None, 200)
        .await;
    c.gorse(
        M::GET,
        "/api/latest/{category}",
        "/api/latest/Thriller",
        g,
        &[],
        None,
        200,
    )
    .await;
    c.gorse(
        M::GET,
        "/api/popular",
        "/api/popular?user-id=ann",
        g,
        &[],
        None,
        200,
    )
    .await;
    c.gorse(
        M::GET,
        "/api/popular/",
        "/api/popular/?n=2&offset=1",
        g,
        &[],
        None,
        200,
    )
    .await;
    let crime = c
        .gorse(
            M::GET,
            "/api/popular/{category}",
            "/api/popular/Crime",
            g,
            &[],
            None,
            200,
        )
        .await;
    assert!(!crime.as_array().unwrap().is_empty(), "{crime}");
    let session = json!([{"FeedbackType": "view", "UserId": "visitor", "ItemId": "alien"}]);
    let after_alien = c
        .gorse(
            M::POST,
            "/api/session/recommend",
            "/api/session/recommend?n=2",
            g,
            &[],
            Some(session.clone()),
            200,
        )
        .await;
    assert!(!after_alien.as_array().unwrap().is_empty(), "{after_alien}");
    assert!(
        !after_alien.to_string().contains("\"alien\""),
        "{after_alien}"
    );
    c.gorse(
        M::POST,
        "/api/session/recommend/",
        "/api/session/recommend/",
        g,
        &[],
        Some(session.clone()),
        200,
    )
    .await;
    c.gorse(
        M::POST,
        "/api/session/recommend/{category}",
        "/api/session/recommend/Action",
        g,
        &[],
        Some(session),
        200,
    )
    .await;

    // Gorse's errors, in Marquee's error shape: malformed input is 400, not 422.
    c.gorse(
        M::GET,
        "/api/user/{user_id}",
        "/api/user/nobody",
        g,
        &[],
        None,
        404,
    )
    .await;
    c.gorse(
        M::GET,
        "/api/recommend/{user_id}",
        "/api/recommend/ann?n=many",
        g,
        &[],
        None,
        400,
    )
    .await;
    c.gorse(
        M::POST,
        "/api/feedback",
        "/api/feedback",
        g,
        &[],
        Some(json!([{"FeedbackType": 5, "UserId": "gina", "ItemId": "heat"}])),
        400,
    )
    .await;
    c.check(M::GET, "/api/users", "/api/users", None, None, 401)
        .await;
    let (reader, _) = server
        .key_with("films", json!({"kind": "secret", "scopes": ["recommend"]}))
        .await;
    c.gorse(
        M::POST,
        "/api/item",
        "/api/item",
        &reader,
        &[],
        Some(json!({"ItemId": "x"})),
        403,
    )
    .await;

    assert!(c.failures.is_empty(), "{}", c.failures.join("\n"));
    // Every operation of the document was called.
    let unchecked: Vec<_> = documented_routes(&doc)
        .difference(&c.checked)
        .cloned()
        .collect();
    assert!(unchecked.is_empty(), "not called: {unchecked:?}");
}

/// `YYYY-MM` of now (UTC).
fn time_month() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}")
}

#[tokio::test]
async fn the_docs_page_is_served_by_marquee_itself() {
    let server = TestServer::start().await;
    // `/docs` leads to the page; no key is needed.
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{}/docs", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let page_url = response.url().clone();
    assert_eq!(page_url.path(), "/docs/");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = response.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");

    // Every script, style sheet and icon the page loads comes from this server.
    let mut urls = BTreeMap::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let url = part.split('"').next().unwrap();
            urls.insert(url.to_string(), page_url.join(url).unwrap());
        }
    }
    assert!(urls.len() >= 4, "{urls:?}");
    let mut scripts = 0;
    for (written, url) in &urls {
        assert_eq!(
            (url.scheme(), url.host_str(), url.port()),
            (page_url.scheme(), page_url.host_str(), page_url.port()),
            "the docs page loads {written} from another host"
        );
        let response = client.get(url.clone()).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{written}");
        let body = response.bytes().await.unwrap();
        assert!(!body.is_empty(), "{written}");
        scripts += usize::from(written.ends_with(".js"));
    }
    assert!(scripts >= 3, "{urls:?}");

    // The page reads this server's document, and sends it to no online validator.
    let init = client
        .get(page_url.join("swagger-initializer.js").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), StatusCode::OK);
    let init = init.text().await.unwrap();
    assert!(init.contains("\"url\": \"../openapi.json\""), "{init}");
    assert!(init.contains("\"validatorUrl\": \"none\""), "{init}");
    assert_eq!(
        page_url.join("../openapi.json").unwrap().path(),
        "/openapi.json"
    );

    // Unknown files are a JSON 404, like any unknown route.
    let (s, body) = server.get("/docs/no-such-file.js", None).await;
    assert_error(s, &body, StatusCode::NOT_FOUND, "not_found");
}
