//! Gorse's REST API (v0.5) under `/api/`, on the caller's tenant, so that an existing Gorse
//! client — PyGorse, gorse.js, or plain HTTP — works against Marquee unchanged.
//!
//! The shapes are Gorse's: `{"UserId","Labels","Subscribe","Comment"}` users,
//! `{"ItemId","IsHidden","Categories","Timestamp","Labels","Comment"}` items,
//! `{"FeedbackType","UserId","ItemId","Timestamp","Comment"}` feedback, `{"RowAffected": n}`
//! for writes, `{"Cursor", "Users"|"Items"|"Feedback"}` pages, and `{"Id","Score"}` for scored
//! lists (recommendations only with `X-API-Version: 2`; plain recommendations are item ids).
//! Bodies are read the way Go reads them: field names match case-insensitively, unknown
//! fields are ignored, `null` is an absent field, and only the first JSON value counts.
//!
//! They map onto Marquee's data as follows:
//! - a user's `Labels`, `Subscribe` and `Comment` are its attributes `labels`, `subscribe` and
//!   `comment` (sealed at rest like every attribute); a user with other attributes and no
//!   `labels` shows them as its `Labels` object;
//! - an item's `Labels` are its tags when they are a list of strings, its metadata when they
//!   are an object (Gorse 0.5 allows both); `Comment` is the description, `Timestamp` the
//!   publication time (Go's zero time when there is none), `IsHidden` hides it;
//! - feedback is Marquee's feedback (a `Value` is kept as the event's value; comments on
//!   feedback are not stored and read back empty).
//!
//! Marquee's guarantees still hold: each route needs the same scope as Marquee's equivalent
//! route (recommendations `recommend`, users `users:*`, items `catalog:*`, feedback writes
//! `feedback:write`, feedback reads `users:read`), the recommend-type routes are metered and
//! billed like Marquee's own, another tenant's objects are absent, and every deletion — of a
//! user, an item, feedback, an item's category — is in the audit log (who: the key, what,
//! when, from where), as deletions through Marquee's own routes are.
//!
//! # Errors, as Gorse answers them
//!
//! Gorse's server (go-restful) answers an error with its status and the error's text as a
//! plain-text body (`Response.WriteError`, called by `BadRequest`, `PageNotFound` and
//! `InternalServerError` in Gorse's `server/rest.go`), and so does every answer under `/api/`
//! here (`text/plain; charset=utf-8`; [`plain_text_errors`] turns the refusals made before a
//! handler runs — a wrong key, a rate limit, an unknown route — into the same form):
//! - no key or a wrong one: 401 `unauthorized` (Gorse's `AuthFilter`);
//! - a body: with a content type other than JSON, 400
//!   `[ServiceError:400] Unable to unmarshal content of type:…` (go-restful's `ReadEntity`);
//!   empty, 400 `EOF`; cut short, `unexpected EOF` (otherwise malformed, `invalid JSON: …`,
//!   where Go names the character); a value of the wrong JSON type, the message of Go's
//!   decoder (`json: cannot unmarshal number into Go struct field User.UserId of type
//!   string`, `… into Go value of type []data.User` for a batch that is not an array); labels
//!   Gorse's `ValidateLabels` refuses, its message (`unsupported labels: [true]`);
//! - `n` or `offset` not an integer: 400 with `strconv.Atoi`'s message (`strconv.Atoi: parsing
//!   "ten": invalid syntax`); `write-back-delay` not a duration: `time: invalid duration "…"`;
//! - an unknown user or item: 404 `<id>: user not found`, `<id>: item not found` (the text of
//!   Gorse's stores); an unknown route: 404 `404: Page Not Found`; another method on a route:
//!   405 `405: Method Not Allowed` (go-restful's router);
//! - deleting feedback that is not there: `{"RowAffected": 0}`.
//!
//! `GET /api/health/live` and `/api/health/ready` are Gorse's probes (no key): Gorse's
//! `HealthStatus`, ready when Marquee's `/readyz` is (else 503, its text that status).
//!
//! Where this answers otherwise than Gorse, it is to keep one of Marquee's guarantees:
//! - patching or deleting a user or an item that is not there: Gorse answers 200
//!   `{"RowAffected": 1}` without looking it up (and stores nothing); this answers 404 `<id>:
//!   user not found` / `<id>: item not found`, as Gorse's reads do. A 200 would acknowledge a
//!   write that was not made, and a key of another tenant must get only 401/403/404 on every
//!   route (Marquee's isolation rule), never a success about an id it cannot see;
//! - adding or removing a category of an unknown item: Gorse answers 500 (its store's "item
//!   not found" passed on as an internal error), this 404 with the same text (a 5xx here means
//!   the server failed); one typed feedback event that is not there: Gorse's handler indexes an
//!   empty list and the connection drops, this answers 404; a cursor this API did not write:
//!   Gorse 500 (it cannot decode it), this 400;
//! - Marquee's limits, which Gorse does not have, answer 400 with Marquee's message: ids are
//!   required and 1-256 bytes without control characters (Gorse stores an empty id), `n` and
//!   `offset` are not negative (Gorse hands a negative count to its store) and `offset + n` is
//!   at most [`MAX_RECOMMENDATIONS`], feedback types are 1-64 characters without spaces;
//! - an item's `Labels` are a list of strings (its tags, each kept once: `["a","a"]` reads back
//!   `["a"]`) or an object (its metadata); Gorse also takes a string, a number or a list of
//!   numbers, for which an item has no place here: 400. A user's labels are kept as sent;
//! - Marquee's own refusals keep their statuses and headers (403 for a missing scope, 413, 429
//!   and 503 with `Retry-After`), and a 500 does not carry the internal error (Gorse's does);
//! - answers are JSON whatever the `Accept` header (go-restful answers 406 to one without it).
//!
//! Each handler's `#[utoipa::path]` annotation describes it in `/openapi.json` (tag `gorse`,
//! with the scope it checks as `x-required-scope`); the shapes above are described there by
//! the `Gorse…` types of [`crate::openapi`], which its tests check against real answers.

use std::collections::HashSet;
use std::num::IntErrorKind;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use marquee_core::gorse::{check_feedback_type, format_time, parse_duration_ms, parse_time};
use marquee_core::{
    Feedback, FeedbackInput, Item, ItemInput, ItemPatch, MAX_RECOMMENDATIONS, RecommendOptions,
    ServiceError, Timestamp, User, UserInput,
};
use marquee_platform::Capability;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::billing::{billed, one_recommendation};
use crate::error::ApiError;
use crate::extract::Auth;

/// Gorse's default `n` (`server.default_n`).
const DEFAULT_N: usize = 10;

// ---------------------------------------------------------------------------------------------
// Errors, bodies and parameters the way Gorse reads them

/// An error of a Gorse route: its status (what Marquee answers with 422, a well-formed request
/// with wrong content, Gorse answers with 400) and its message as a plain-text body, as
/// go-restful's `WriteError` writes it. Marquee's headers (`Retry-After`, rate limits) stay.
pub struct GorseError(ApiError);

impl From<ApiError> for GorseError {
    fn from(e: ApiError) -> Self {
        GorseError(e)
    }
}

impl From<ServiceError> for GorseError {
    fn from(e: ServiceError) -> Self {
        match e {
            // The text of Gorse's stores: `errors.Annotate(ErrUserNotExist, userId)`, with
            // `ErrUserNotExist = errors.NotFoundf("user")` (storage/data/sql.go, database.go).
            ServiceError::NotFound { what, id } => GorseError(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{id}: {what} not found"),
            )),
            other => GorseError(other.into()),
        }
    }
}

impl IntoResponse for GorseError {
    fn into_response(self) -> Response {
        let mut e = self.0;
        if e.status == StatusCode::UNPROCESSABLE_ENTITY {
            e.status = StatusCode::BAD_REQUEST;
        }
        let message = if e.status == StatusCode::UNAUTHORIZED {
            // Gorse's AuthFilter: `resp.WriteError(http.StatusUnauthorized, fmt.Errorf("unauthorized"))`.
            "unauthorized".to_string()
        } else {
            std::mem::take(&mut e.message)
        };
        let mut response = e.into_response();
        text_body(&mut response, message);
        response
    }
}

/// Replaces an answer's body with `message` as plain text (what Go's `net/http` says of a body
/// written without a content type).
fn text_body(response: &mut Response, message: String) {
    *response.body_mut() = Body::from(message);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.remove(header::CONTENT_LENGTH);
}

/// Whether a request path is the Gorse API's.
pub fn is_gorse_path(path: &str) -> bool {
    path.starts_with("/api/")
}

/// The middleware (outside the access layer) that answers, under `/api/`, the errors made
/// before a Gorse handler runs — a missing or wrong key, a rate limit, an unknown route, a
/// method a route does not take, a panic — as Gorse's server does: plain text, with
/// go-restful's texts for the router's 404 and 405 and Gorse's `unauthorized` for 401.
/// Answers of the handlers are plain text already and pass unchanged, as do the other routes'.
pub async fn plain_text_errors(req: Request, next: Next) -> Response {
    let gorse = is_gorse_path(req.uri().path());
    let response = next.run(req).await;
    let status = response.status();
    if !gorse || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let message = match status {
        StatusCode::UNAUTHORIZED => "unauthorized".to_string(),
        // Only the router answers 404 in JSON here: the handlers' 404s are text already.
        StatusCode::NOT_FOUND => "404: Page Not Found".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => "405: Method Not Allowed".to_string(),
        _ => axum::body::to_bytes(body, 64 * 1024)
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string()),
    };
    let mut response = Response::from_parts(parts, Body::empty());
    text_body(&mut response, message);
    response
}

type GorseResult<T> = Result<T, GorseError>;

fn bad_request(message: impl Into<String>) -> GorseError {
    GorseError(ApiError::bad_request("invalid_request", message))
}

/// The JSON type of a value, as Go's decoder names it in its errors.
fn go_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Go's error for a JSON value that does not fit the Go type a handler decodes the body into
/// (`json.UnmarshalTypeError` of a whole value).
fn cannot_unmarshal(v: &Value, go_type: &str) -> GorseError {
    bad_request(format!(
        "json: cannot unmarshal {} into Go value of type {go_type}",
        go_kind(v)
    ))
}

/// A JSON body, read as go-restful's `ReadEntity` reads one: only with a JSON content type
/// (400 otherwise, go-restful's text), the first JSON value (what follows it is not read, as
/// with Go's `json.Decoder`); 400 when there is none or it is malformed.
pub struct GorseBody(Value);

impl FromRequest<Arc<AppState>> for GorseBody {
    type Rejection = GorseError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        // go-restful finds the reader by the content type, `application/json` contained in it
        // (entity_accessors.go), and `NewError(400, "Unable to unmarshal content of type:" +
        // contentType)` else; Gorse's handlers pass it to BadRequest (ServiceError.Error()).
        if !content_type
            .to_ascii_lowercase()
            .contains("application/json")
        {
            return Err(bad_request(format!(
                "[ServiceError:400] Unable to unmarshal content of type:{content_type}"
            )));
        }
        let bytes = crate::extract::read_bytes(req, state.config.body_limit).await?;
        let first = serde_json::Deserializer::from_slice(&bytes)
            .into_iter::<Value>()
            .next();
        match first {
            Some(Ok(value)) => Ok(GorseBody(value)),
            // What Go's decoder says of no value at all, and of one cut short.
            None => Err(GorseError(ApiError::bad_request("invalid_json", "EOF"))),
            Some(Err(e)) if e.is_eof() => Err(GorseError(ApiError::bad_request(
                "invalid_json",
                "unexpected EOF",
            ))),
            Some(Err(e)) => Err(GorseError(ApiError::bad_request(
                "invalid_json",
                format!("invalid JSON: {e}"),
            ))),
        }
    }
}

impl GorseBody {
    /// The elements of a batch body, which Gorse decodes into a Go slice (`[]data.User`, …):
    /// an array; `null` is an empty batch; anything else is refused as Go refuses it.
    fn elements(self, go_type: &str) -> GorseResult<Vec<Value>> {
        match self.0 {
            Value::Array(a) => Ok(a),
            Value::Null => Ok(Vec::new()),
            other => Err(cannot_unmarshal(&other, &format!("[]{go_type}"))),
        }
    }
}

/// The query string as name-value pairs; Gorse ignores parameters it does not know, and so
/// does this.
pub struct GorseQuery(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for GorseQuery {
    type Rejection = GorseError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        Ok(GorseQuery(
            form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}

/// Go's `strconv.Atoi`, with its error text.
fn atoi(text: &str) -> Result<i64, String> {
    text.parse::<i64>().map_err(|e| {
        let why = match e.kind() {
            IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => "value out of range",
            _ => "invalid syntax",
        };
        format!("strconv.Atoi: parsing {text:?}: {why}")
    })
}

impl GorseQuery {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every non-empty value of a repeated parameter.
    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// An integer as Gorse's `ParseInt` reads it (absent or empty: `default`; otherwise
    /// `strconv.Atoi`, and its error as the message); Marquee also refuses a negative one.
    fn int(&self, name: &str, default: usize) -> GorseResult<usize> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(v) => {
                let n = atoi(v).map_err(bad_request)?;
                usize::try_from(n)
                    .map_err(|_| bad_request(format!("query parameter {name}: {n} is negative")))
            }
        }
    }

    /// A page cursor (`cursor`; gorse.js sends `Cursor`).
    fn cursor(&self) -> &str {
        self.get("cursor")
            .or_else(|| self.get("Cursor"))
            .unwrap_or("")
    }
}

/// Positional path parameters, refused the way Gorse refuses bad input (400), not with
/// Marquee's 422.
pub struct GorseIds<T>(T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for GorseIds<T> {
    type Rejection = GorseError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| GorseIds(p.0))
            .map_err(|e| bad_request(format!("path: {}", e.body_text())))
    }
}

/// The path parameters of a route that several paths share (with and without a category,
/// say): the fields a path does not have are left at their defaults.
pub struct GorsePath<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for GorsePath<T> {
    type Rejection = GorseError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let mut fields = Map::new();
        match axum::extract::RawPathParams::from_request_parts(parts, state).await {
            Ok(params) => {
                for (name, value) in params.iter() {
                    fields.insert(name.to_string(), Value::String(value.to_string()));
                }
            }
            // A path without parameters.
            Err(axum::extract::rejection::RawPathParamsRejection::MissingPathParams(_)) => {}
            Err(e) => return Err(bad_request(format!("path: {}", e.body_text()))),
        }
        serde_json::from_value(Value::Object(fields))
            .map(GorsePath)
            .map_err(|e| bad_request(format!("path: {e}")))
    }
}

/// The fields of a JSON object decoded into a Go struct (`data.User`, `server.Item`, …): found
/// by name case-insensitively, as Go's `encoding/json` does, with Go's error when a value does
/// not fit the field's Go type.
struct Fields {
    map: Map<String, Value>,
    /// The Go struct's name (`User`), as Go's errors name it.
    go_struct: &'static str,
}

impl Fields {
    /// `value` decoded into the Go type `go_type` (`data.User`): an object; `null` decodes
    /// to no field at all, as in Go.
    fn of(value: Value, go_type: &'static str) -> GorseResult<Self> {
        let go_struct = go_type.rsplit('.').next().unwrap_or(go_type);
        match value {
            Value::Object(m) => Ok(Fields {
                map: m.into_iter().map(|(k, v)| (k.to_lowercase(), v)).collect(),
                go_struct,
            }),
            Value::Null => Ok(Fields {
                map: Map::new(),
                go_struct,
            }),
            other => Err(cannot_unmarshal(&other, go_type)),
        }
    }

    /// Go's error for the value of field `name` that does not fit its Go type `go_type`.
    fn mismatch(&self, name: &str, go_type: &str, got: &Value) -> GorseError {
        bad_request(format!(
            "json: cannot unmarshal {} into Go struct field {}.{name} of type {go_type}",
            go_kind(got),
            self.go_struct
        ))
    }

    /// The value of `name`; `None` when absent or null.
    fn raw(&self, name: &str) -> Option<&Value> {
        self.map.get(&name.to_lowercase()).filter(|v| !v.is_null())
    }

    fn string(&self, name: &str) -> GorseResult<Option<String>> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.mismatch(name, "string", v)),
        }
    }

    fn bool(&self, name: &str) -> GorseResult<Option<bool>> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.mismatch(name, "bool", v)),
        }
    }

    /// A number (`Value`, Marquee's own field: Gorse ignores it).
    fn number(&self, name: &str) -> GorseResult<Option<f64>> {
        match self.raw(name) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| bad_request(format!("{name}: expected a number"))),
        }
    }

    fn strings(&self, name: &str) -> GorseResult<Option<Vec<String>>> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.mismatch(name, "string", other)),
                })
                .collect::<GorseResult<Vec<_>>>()
                .map(Some),
            Some(v) => Err(self.mismatch(name, "[]string", v)),
        }
    }

    /// A time: a string in any format Gorse's `dateparse` reads (`go_type` is the field's Go
    /// type, for the error when it is not a string).
    fn time(&self, name: &str, go_type: &str) -> GorseResult<Option<Option<Timestamp>>> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::String(s)) => parse_time(s)
                .map(Some)
                .map_err(|e| bad_request(format!("{name}: {e}"))),
            Some(v) => Err(self.mismatch(name, go_type, v)),
        }
    }

    /// `Labels`, which Gorse decodes as any JSON and checks with `ValidateLabels`.
    fn labels(&self) -> GorseResult<Option<Value>> {
        match self.raw("Labels") {
            None => Ok(None),
            Some(v) => {
                validate_labels(v).map_err(bad_request)?;
                Ok(Some(v.clone()))
            }
        }
    }
}

/// Gorse's `data.ValidateLabels` (storage/data/database.go, v0.5): labels are a string, a
/// number, a list of strings, a list of numbers, or an object of labels; its error texts.
fn validate_labels(labels: &Value) -> Result<(), String> {
    let unsupported = |a: &Value| format!("unsupported labels: {a}");
    match labels {
        Value::Null | Value::String(_) | Value::Number(_) => Ok(()),
        Value::Array(list) => match list.first() {
            None => Ok(()),
            Some(Value::String(_)) if list.iter().all(Value::is_string) => Ok(()),
            Some(Value::Number(_)) if list.iter().all(Value::is_number) => Ok(()),
            Some(_) => Err(unsupported(labels)),
        },
        Value::Object(map) => map.values().try_for_each(validate_labels),
        // Go's `reflect.TypeOf` of a decoded JSON boolean.
        Value::Bool(_) => Err("unsupported type in labels: bool".to_string()),
    }
}

/// An item's labels as Marquee keeps them: a list of strings is its tags, an object its
/// metadata. (Gorse also takes a string, a number or a list of numbers; an item has no place
/// for them here.)
enum ItemLabels {
    Tags(Vec<String>),
    Metadata(Map<String, Value>),
}

fn item_labels(labels: Value) -> GorseResult<ItemLabels> {
    match labels {
        Value::Object(m) => Ok(ItemLabels::Metadata(m)),
        Value::Array(a) if a.iter().all(Value::is_string) => Ok(ItemLabels::Tags(
            a.into_iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
        )),
        _ => Err(bad_request(
            "Labels: an item's labels are a list of strings (its tags) or an object (its \
             metadata) in Marquee",
        )),
    }
}

/// Names the element of a batch a Marquee-specific error is about (Go's decoding errors do
/// not, and are left as Go writes them).
fn at(index: usize) -> impl Fn(GorseError) -> GorseError {
    move |GorseError(mut e)| {
        if !e.message.starts_with("json: ") {
            e.message = format!("element {index} of the batch: {}", e.message);
        }
        GorseError(e)
    }
}

fn success(rows: usize) -> Json<Value> {
    Json(json!({ "RowAffected": rows }))
}

fn scores<S: Into<f64>>(list: impl IntoIterator<Item = (String, S)>) -> Value {
    Value::Array(
        list.into_iter()
            .map(|(id, score)| json!({"Id": id, "Score": score.into()}))
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------------
// Shapes

fn user_json(user: &User) -> Value {
    let a = &user.attributes;
    let labels = match a.get("labels") {
        Some(v) => v.clone(),
        None => {
            let rest: Map<String, Value> = a
                .iter()
                .filter(|(k, _)| *k != "comment" && *k != "subscribe")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if rest.is_empty() {
                Value::Null
            } else {
                Value::Object(rest)
            }
        }
    };
    json!({
        "UserId": user.id,
        "Labels": labels,
        "Subscribe": a.get("subscribe").filter(|v| v.is_array()).cloned().unwrap_or(Value::Null),
        "Comment": a.get("comment").and_then(Value::as_str).unwrap_or(""),
    })
}

fn user_input(value: Value) -> GorseResult<UserInput> {
    // Decoded as Gorse decodes `data.User`, then its labels checked (`ValidateLabels`).
    let f = Fields::of(value, "data.User")?;
    let id = f.string("UserId")?.unwrap_or_default();
    let subscribe = f.strings("Subscribe")?;
    let comment = f.string("Comment")?;
    let mut attributes = Map::new();
    if let Some(labels) = f.labels()? {
        attributes.insert("labels".into(), labels);
    }
    if let Some(s) = subscribe {
        attributes.insert("subscribe".into(), json!(s));
    }
    if let Some(c) = comment.filter(|c| !c.is_empty()) {
        attributes.insert("comment".into(), Value::String(c));
    }
    Ok(UserInput {
        id: Some(id),
        attributes,
    })
}

fn item_json(item: &Item) -> Value {
    let labels = if !item.tags.is_empty() {
        json!(item.tags)
    } else if !item.metadata.is_empty() {
        Value::Object(item.metadata.clone())
    } else {
        Value::Null
    };
    json!({
        "ItemId": item.id,
        "IsHidden": item.hidden,
        "Categories": item.categories,
        "Timestamp": format_time(item.published_at),
        "Labels": labels,
        "Comment": item.description.as_deref().unwrap_or(""),
    })
}

fn item_input(value: Value) -> GorseResult<ItemInput> {
    // Decoded as Gorse decodes its `server.Item` (a string `Timestamp`), then its labels
    // checked.
    let f = Fields::of(value, "server.Item")?;
    let id = f.string("ItemId")?.unwrap_or_default();
    let hidden = f.bool("IsHidden")?.unwrap_or(false);
    let categories = f.strings("Categories")?.unwrap_or_default();
    let published_at = f.time("Timestamp", "string")?.flatten();
    let description = f.string("Comment")?.filter(|c| !c.is_empty());
    let (tags, metadata) = match f.labels()?.map(item_labels).transpose()? {
        None => (Vec::new(), None),
        Some(ItemLabels::Tags(t)) => (t, None),
        Some(ItemLabels::Metadata(m)) => (Vec::new(), Some(m)),
    };
    Ok(ItemInput {
        id: Some(id),
        title: None,
        categories,
        tags,
        description,
        metadata,
        published_at,
        available_from: None,
        available_until: None,
        hidden,
    })
}

fn feedback_json(f: &Feedback) -> Value {
    json!({
        "FeedbackType": f.kind,
        "UserId": f.user_id,
        "ItemId": f.item_id,
        "Timestamp": format_time(Some(f.timestamp)),
        "Comment": "",
    })
}

fn feedback_list(list: &[Feedback]) -> Json<Value> {
    Json(Value::Array(list.iter().map(feedback_json).collect()))
}

fn feedback_input(value: Value) -> GorseResult<FeedbackInput> {
    // Gorse's `server.Feedback`: the key fields (`data.FeedbackKey`, embedded), a string
    // `Timestamp` and a `Comment`.
    let f = Fields::of(value, "server.Feedback")?;
    let kind = f.string("FeedbackType")?.unwrap_or_default();
    let user_id = f.string("UserId")?.unwrap_or_default();
    let item_id = f.string("ItemId")?.unwrap_or_default();
    let timestamp = f.time("Timestamp", "string")?.flatten();
    f.string("Comment")?;
    Ok(FeedbackInput {
        user_id,
        item_id,
        kind,
        value: f.number("Value")?,
        timestamp,
        recommendation_id: None,
    })
}

/// A batch of feedback (Gorse reads a `[]server.Feedback`).
fn feedback_batch(body: GorseBody) -> GorseResult<Vec<FeedbackInput>> {
    body.elements("server.Feedback")?
        .into_iter()
        .enumerate()
        .map(|(i, v)| feedback_input(v).map_err(at(i)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Users

/// `POST /api/user`: inserts a user, replacing one with the same id.
#[utoipa::path(
    post,
    path = "/api/user",
    tag = "gorse",
    operation_id = "gorseInsertUser",
    summary = "Insert a user",
    description = "Creates the user, or replaces the one with the same `UserId` whole. `Labels`, `Subscribe` and `Comment` are stored as the user's attributes `labels`, `subscribe` and `comment` (sealed at rest like every attribute).",
    request_body = crate::openapi::GorseUserInput,
    responses((status = 200, description = "`RowAffected` is 1", body = crate::openapi::GorseRowAffected)),
    extensions(("x-required-scope" = json!("users:write"))),
)]
pub async fn insert_user(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    body: GorseBody,
) -> GorseResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::UsersWrite)?;
    let user = user_input(body.0)?;
    state.service.upsert_users(tenant, vec![user]).await?;
    Ok(success(1))
}

/// `POST /api/users`: inserts users, replacing those with the same ids.
#[utoipa::path(
    post,
    path = "/api/users",
    tag = "gorse",
    operation_id = "gorseInsertUsers",
    summary = "Insert users",
    description = "Each user replaces the one with the same `UserId` whole, or is created. An error names the element of the batch it is about.",
    request_body = crate::openapi::GorseUserBatch,
    responses((status = 200, description = "`RowAffected`: how many users were written", body = crate::openapi::GorseRowAffected)),
    extensions(("x-required-scope" = json!("users:write"))),
)]
pub async fn insert_users(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    body: GorseBody,
) -> GorseResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::UsersWrite)?;
    let users: Vec<UserInput> = body
        .elements("data.User")?
        .into_iter()
        .enumerate()
        .map(|(i, v)| user_input(v).map_err(at(i)))
        .collect::<GorseResult<_>>()?;
    if users.is_empty() {
        return Ok(success(0));
    }
    let n = state.service.upsert_users(tenant, users).await?.len();
    Ok(success(n))
}

/// `GET /api/users?n=&cursor=`.
#[utoipa::path(
    get,
    path = "/api/users",
    tag = "gorse",
    operation_id = "gorseListUsers",
    summary = "List users",
    description = "The tenant's users in pages, by id.",
    params(crate::openapi::GorsePage),
    responses((status = 200, description = "A page of users", body = crate::openapi::GorseUserPage)),
    extensions(("x-required-scope" = json!("users:read"))),
)]
pub async fn list_users(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    query: GorseQuery,
) -> GorseResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::UsersRead)?;
    let n = query.int("n", DEFAULT_N)?;
    let cursor = query.cursor();
    let (users, next) = state
        .service
        .list_users(tenant, (!cursor.is_empty()).then_some(cursor), n)
        .await?;
    Ok(Json(json!({
        "Cursor": next.unwrap_or_default(),
        "Users": users.iter().map(user_json).collect::<Vec<_>>(),
    })))
}

#[utoipa::path(
    get,
    path = "/api/user/{user_id}",
    tag = "gorse",
    operation_id = "gorseGetUser",
    summary = "Get a user",
    params(("user_id" = String, Path, description = "The user's id.")),
    responses((status = 200, description = "The user", body = crate::openapi::GorseUser), (status = 404)),
    extensions(("x-required-scope" = json!("users:read"))),
)]
pub async fn get_user(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    GorseIds(id): GorseIds<String>,
) -> GorseResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::UsersRead)?;
    Ok(Json(user_json(&state.service.get_user(tenant, &id).await?)))
}

/// `PATCH /api/user/{user-id}`: changes the fields given (null or absent: unchanged).
#[utoipa::path(
    patch,
    path = "/api/user/{user_id}",
    tag = "gorse",
    operation_id = "gorsePatchUser",
    summary = "Change some fields of a user",
    description = "Only the fields given change (absent or `null`: unchanged).",
    params(("user_id" = String, Path, description = "The user's id.")),
    request_body = crate::openapi::GorseUserPatch,
    responses((status = 200, description = "`RowAffected` is 1", body = crate::openapi::GorseRowAffected), (status = 404)),
    extensions(("x-required-scope" = json!("users:write"))),
)]
pub async fn patch_user(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    GorseIds(id): GorseIds<String>,
    body: GorseBody,
) -> GorseResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::UsersWrite)?;
    // Gorse's `data.UserPatch`: `Labels` (any, then `ValidateLabels`), `Subscribe`, `Comment`.
    let f = Fields::of(body.0, "data.UserPatch")?;
    let subscribe = f.strings("Subscribe")?;
    let comment = f.string("Comment")?;
    let mut changes = Map::new();
    if let Some(labels) = f.labels()? {
        changes.insert("labels".into(), labels);
    }
    if let Some(s) = subscribe {
        changes.insert("subscribe".into(), json!(s));
    }
    if let Some(c) = comment {
        // An empty comment removes it (it reads back empty either way).
        let value = if c.is_empty() {
            Value::Null
        } else {
            Value::String(c)
        };
        changes.insert("comment".into(), value);
    }
    // An unknown user is 404 (Gorse's `ModifyUser` does not look it up and answers 200; see
    // the module docs).
    state.service.patch_user(tenant, &id, changes).await?;
    Ok(success(1))
}

/// `DELETE /api/user/{user-id}`: erases the user and their feedback (Marquee's erasure,
/// recorded in the audit log). A user that is not there is 404 (Gorse's `deleteUser` answers
/// 200 whatever its store deleted; see the module docs).
#[utoipa::path(
    delete,
    path = "/api/user/{user_id}",
    tag = "gorse",
    operation_id = "gorseDeleteUser",
    summary = "Delete a user",
    description = "Erases the user and their feedback: Marquee's erasure, recorded in the audit log. A user that is not there is 404 (Gorse answers 200 without looking it up).",
    params(("user_id" = String, Path, description = "The user's id.")),
    responses((status = 200, description = "`RowAffected` is 1", body = crate::openapi::GorseRowAffected), (status = 404)),
    extensions(("x-required-scope" = json!("users:write"))),
)]
pub async fn delete_user(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    GorseIds(id): GorseIds<String>,
) -> GorseResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::UsersWrite)?;
    // Erased, and the erasure audited.
    state.service.erase_user(&caller, tenant, &id).await?;
    Ok(success(1))
}

// ---------------------------------------------------------------------------------------------
// Items

/// `POST /api/item`: inserts an item, replacing one with the same id.
#[utoipa::path(
    post,
    path = "/api/item",
    tag = "gorse",
    operation_id = "gorseInsertItem",
    summary = "Insert an item",
    description = "Creates the item, or replaces the one with the same `ItemId` whole. `Labels` are the item's tags when they are an array, its metadata when they are an object; `Comment` is its description, `Timestamp` its publication time, `IsHidden` hides it from recommendations.",
    request_body = crate::openapi::GorseItemInput,
    responses((status = 200, description = "`RowAffected` is 1", body = crate::openapi::GorseRowAffected)),
    extensions(("x-required-scope" = json!("catalog:write"))),
)]
pub async fn insert_item(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    body: GorseBody,
) -> GorseResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::CatalogWrite)?;
    let item = item_input(body.0)?;
    state.service.upsert_items(tenant, vec![item]).await?;
    Ok(success(1))
}

/// `POST /api/items`: inserts items, replacing those with the same ids.
#[utoipa::path(
    post,
    path = "/api/items",
    tag = "gorse",
    operation_id = "gorseInsertItems",
    summary = "Insert items",
    description = "Each item replaces the one with the same `ItemId` whole, or is created. An error names the element of the batch it is about.",
    request_body = crate::openapi::GorseItemBatch,
    responses((status = 200, description = "`RowAffected`: how many items were written", body = crate::openapi::GorseRowAffected)),
    extensions(("x-required-scope" = json!("catalog:write"))),
)]
pub async fn insert_items(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    body: GorseBody,
) -> GorseResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::CatalogWrite)?;
    let items: Vec<ItemInput> = body
        .elements("server.Item")?
        .into_iter()
        .enumerate()
        .map(|(i, v)| item_input(v).map_err(at(i)))
        .collect::<GorseResult<_>>()?;
    if items.is_empty() {
        return Ok(success(0));
    }
    let n = state.service.upsert_items(tenant, items).await?.len();
    Ok(success(n))
}

/// `GET /api/items?n=&cursor=` (with `q=`, the items whose id, title, description,
/// categories or labels contain it).
#[utoipa::path(
    get,
    path = "/api/items",
    tag = "gorse",
    operation_id = "gorseListItems",
    summary = "List items",
    description = "The catalogue in pages, by id; with `q`, the items whose id, title, description, categories or labels contain it (one page, no `Cursor`).",
    params(crate::openapi::GorsePage, ("q" = Option<String>, Query, nullable = false, description = "Search text (case-insensitive); `n` items at most.")),
    responses((status = 200, description = "A page of items", body = crate::openapi::GorseItemPage)),
    extensions(("x-required-scope" = json!("catalog:read"))),
)]
pub async fn list_items(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    query: GorseQuery,
) -> GorseResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::CatalogRead)?;
    let n = query.int("n", DEFAULT_N)?;
    if let Some(q) = query.get("q").filter(|q| !q.is_empty()) {
        let items = state.service.gorse_search_items(tenant, q, n).await?;
        return Ok(Json(json!({
            "Cursor": "",
            "Items": items.iter().map(item_json).collect::<Vec<_>>(),
        })));
    }
    let cursor = query.cursor();
    let (items, next) = state
        .service
        .list_items(tenant, (!cursor.is_empty()).then_some(cursor), n)
        .await?;
    Ok(Json(json!({
        "Cursor": next.unwrap_or_default(),
        "Items": items.iter().map(item_json).collect::<Vec<_>>(),
    })))
}

#[utoipa::path(
    get,
    path = "/api/item/{item_id}",
    tag = "gorse",
    operation_id = "gorseGetItem",
    summary = "Get an item",
    params(("item_id" = String, Path, description = "The item's id.")),
    responses((status = 200, description = "The item", body = crate::openapi::GorseItem), (status = 404)),
    extensions(("x-required-scope" = json!("catalog:read"))),
)]
pub async fn get_item(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    GorseIds(id): GorseIds<String>,
) -> GorseResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::CatalogRead)?;
    Ok(Json(item_json(&state.service.get_item(tenant, &id).await?)))
}

/// `PATCH /api/item/{item-id}`: changes the fields given (null or absent: unchanged). New
/// `Labels` replace the item's tags and metadata.
#[utoipa::path(
    patch,
    path = "/api/item/{item_id}",
    tag = "gorse",
    operation_id = "gorsePatchItem",
    summary = "Change some fields of an item",
    description = "Only the fields given change (absent or `null`: unchanged); new `Labels` replace the item's tags and metadata.",
    params(("item_id" = String, Path, description = "The item's id.")),
    request_body = crate::openapi::GorseItemPatch,
    responses((status = 200, description = "`RowAffected` is 1", body = crate::openapi::GorseRowAffected), (status = 404)),
    extensions(("x-required-scope" = json!("catalog:write"))),
)]
pub async fn patch_item(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    GorseIds(id): GorseIds<String>,
    body: GorseBody,
) -> GorseResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::CatalogWrite)?;
    // Gorse's `data.ItemPatch` (a `time.Time` timestamp), then `ValidateLabels`.
    let f = Fields::of(body.0, "data.ItemPatch")?;
    let mut patch = ItemPatch {
        hidden: f.bool("IsHidden")?,
        categories: f.strings("Categories")?,
        published_at: f.time("Timestamp", "time.Time")?,
        description: f.string("Comment")?.map(|c| (!c.is_empty()).then_some(c)),
        ..ItemPatch::default()
    };
    match f.labels()?.map(item_labels).transpose()? {
        None => {}
        Some(ItemLabels::Tags(t)) => {
            patch.tags = Some(t);
            patch.metadata = Some(Map::new());
        }
        Some(ItemLabels::Metadata(m)) => {
            patch.tags = Some(Vec::new());
            patch.metadata = Some(m);
        }
    }
    // As for users, an unknown item is 404.
    state.service.patch_item(tenant, &id, patch).await?;
    Ok(success(1))
}

/// `DELETE /api/item/{item-id}`: deletes the item and the feedback on it (audited). An item
/// that is not there is 404 (Gorse's `deleteItem` answers 200 without looking it up).
#[utoipa::path(
    delete,
    path = "/api/item/{item_id}",
    tag = "gorse",
    operation_id = "gorseDeleteItem",
    summary = "Delete an item",
    description = "Deletes the item and the feedback on it (recorded in the audit log). An item that is not there is 404 (Gorse answers 200 without looking it up).",
    params(("item_id" = String, Path, description = "The item's id.")),
    responses((status = 200, description = "`RowAffected` is 1", body = crate::openapi::GorseRowAffected), (status = 404)),
    extensions(("x-required-scope" = json!("catalog:write"))),
)]
pub async fn delete_item(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    GorseIds(id): GorseIds<String>,
) -> GorseResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::CatalogWrite)?;
    state.service.delete_item(tenant, &id).await?;
    // As Marquee's own `DELETE /v1/items/{id}` records it.
    state
        .service
        .audit(&caller, Some(tenant.id), "item.delete", Some(&id), None)
        .await?;
    Ok(success(1))
}

/// `PUT /api/item/{item-id}/category/{category}`. An unknown item is 404 `<id>: item not
/// found` (Gorse answers that text with 500; see the module docs).
#[utoipa::path(
    put,
    path = "/api/item/{item_id}/category/{category}",
    tag = "gorse",
    operation_id = "gorseInsertItemCategory",
    summary = "Add a category to an item",
    description = "Adds the category to the item's categories (once).",
    params(("item_id" = String, Path, description = "The item's id."), ("category" = String, Path, description = "The category.")),
    responses((status = 200, description = "`RowAffected` is 1", body = crate::openapi::GorseRowAffected), (status = 404)),
    extensions(("x-required-scope" = json!("catalog:write"))),
)]
pub async fn insert_item_category(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    GorseIds((id, category)): GorseIds<(String, String)>,
) -> GorseResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::CatalogWrite)?;
    state
        .service
        .gorse_set_item_category(tenant, &id, &category, true)
        .await?;
    Ok(success(1))
}

/// `DELETE /api/item/{item-id}/category/{category}`: removes the category (audited, as a
/// deletion). An unknown item is 404, as for `PUT`.
#[utoipa::path(
    delete,
    path = "/api/item/{item_id}/category/{category}",
    tag = "gorse",
    operation_id = "gorseDeleteItemCategory",
    summary = "Remove a category from an item",
    description = "Removes the category from the item's categories (recorded in the audit log as `item.category.delete`).",
    params(("item_id" = String, Path, description = "The item's id."), ("category" = String, Path, description = "The category.")),
    responses((status = 200, description = "`RowAffected` is 1", body = crate::openapi::GorseRowAffected), (status = 404)),
    extensions(("x-required-scope" = json!("catalog:write"))),
)]
pub async fn delete_item_category(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    GorseIds((id, category)): GorseIds<(String, String)>,
) -> GorseResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::CatalogWrite)?;
    state
        .service
        .gorse_set_item_category(tenant, &id, &category, false)
        .await?;
    state
        .service
        .audit(
            &caller,
            Some(tenant.id),
            "item.category.delete",
            Some(&id),
            Some(json!({ "category": category })),
        )
        .await?;
    Ok(success(1))
}

// ---------------------------------------------------------------------------------------------
// Feedback

/// `POST /api/feedback`: inserts feedback, leaving events already stored (same user, item and
/// type) as they are; creates missing users and items.
#[utoipa::path(
    post,
    path = "/api/feedback",
    tag = "gorse",
    operation_id = "gorseInsertFeedback",
    summary = "Insert feedback",
    description = "Inserts the events, leaving those already stored (same user, item and type) as they are; users and items they name are created when missing. All or nothing.",
    request_body = crate::openapi::GorseFeedbackBatch,
    responses((status = 200, description = "`RowAffected`: how many events were received", body = crate::openapi::GorseRowAffected)),
    extensions(("x-required-scope" = json!("feedback:write"))),
)]
pub async fn insert_feedback(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    body: GorseBody,
) -> GorseResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::FeedbackWrite)?;
    let events = feedback_batch(body)?;
    let n = state
        .service
        .gorse_insert_feedback(tenant, events, false)
        .await?;
    Ok(success(n))
}

/// `PUT /api/feedback`: inserts feedback, replacing events already stored.
#[utoipa::path(
    put,
    path = "/api/feedback",
    tag = "gorse",
    operation_id = "gorseUpsertFeedback",
    summary = "Insert or overwrite feedback",
    description = "Inserts the events, replacing those already stored (same user, item and type); users and items they name are created when missing. All or nothing.",
    request_body = crate::openapi::GorseFeedbackBatch,
    responses((status = 200, description = "`RowAffected`: how many events were received", body = crate::openapi::GorseRowAffected)),
    extensions(("x-required-scope" = json!("feedback:write"))),
)]
pub async fn upsert_feedback(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    body: GorseBody,
) -> GorseResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::FeedbackWrite)?;
    let events = feedback_batch(body)?;
    let n = state
        .service
        .gorse_insert_feedback(tenant, events, true)
        .await?;
    Ok(success(n))
}

/// Path of the feedback routes: any of the type, the user and the item.
#[derive(Deserialize)]
pub struct FeedbackPath {
    #[serde(default)]
    feedback_type: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    item_id: Option<String>,
}

/// `GET /api/feedback?n=&cursor=` and `GET /api/feedback/{feedback-type}?n=&cursor=`: the
/// tenant's feedback page by page.
#[utoipa::path(
    get,
    path = "/api/feedback/{feedback_type}",
    tag = "gorse",
    operation_id = "gorseListFeedbackOfType",
    summary = "List feedback of a type",
    description = "The tenant's feedback dated up to now, in pages: of every type at `/api/feedback`, of one type at `/api/feedback/{feedback_type}`.",
    params(("feedback_type" = String, Path, description = "A feedback type (`read`, `like`, …)."), crate::openapi::GorsePage),
    responses((status = 200, description = "A page of feedback", body = crate::openapi::GorseFeedbackPage)),
    extensions(("x-required-scope" = json!("users:read"))),
)]
pub async fn list_feedback(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    GorsePath(p): GorsePath<FeedbackPath>,
    query: GorseQuery,
) -> GorseResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::UsersRead)?;
    let kind = p.feedback_type;
    let n = query.int("n", DEFAULT_N)?;
    let (feedback, next) = state
        .service
        .gorse_feedback_page(tenant, kind.as_deref(), query.cursor(), n)
        .await?;
    Ok(Json(json!({
        "Cursor": next,
        "Feedback": feedback.iter().map(feedback_json).collect::<Vec<_>>(),
    })))
}

/// `GET /api/feedback/{user-id}/{item-id}`: the events between a user and an item, of every
/// type (empty when there are none, as in Gorse).
#[utoipa::path(
    get,
    path = "/api/feedback/{user_id}/{item_id}",
    tag = "gorse",
    operation_id = "gorseGetUserItemFeedback",
    summary = "The feedback between a user and an item",
    description = "The events between the user and the item, of every type; empty when there are none (the user and item are not looked up, as in Gorse).",
    params(("user_id" = String, Path, description = "The user's id."), ("item_id" = String, Path, description = "The item's id.")),
    responses((status = 200, description = "The events", body = Vec<crate::openapi::GorseFeedback>)),
    extensions(("x-required-scope" = json!("users:read"))),
)]
pub async fn user_item_feedback(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    GorsePath(p): GorsePath<FeedbackPath>,
) -> GorseResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::UsersRead)?;
    let (user, item) = (p.user_id.unwrap_or_default(), p.item_id.unwrap_or_default());
    let list = state
        .service
        .gorse_user_item_feedback(tenant, &user, &item, None)
        .await?;
    Ok(feedback_list(&list))
}

/// `GET /api/feedback/{feedback-type}/{user-id}/{item-id}`: one event; 404 when there is
/// none.
#[utoipa::path(
    get,
    path = "/api/feedback/{feedback_type}/{user_id}/{item_id}",
    tag = "gorse",
    operation_id = "gorseGetTypedUserItemFeedback",
    summary = "One feedback event",
    description = "The event of the type between the user and the item.",
    params(("feedback_type" = String, Path, description = "A feedback type (`read`, `like`, …)."), ("user_id" = String, Path, description = "The user's id."), ("item_id" = String, Path, description = "The item's id.")),
    responses((status = 200, description = "The event", body = crate::openapi::GorseFeedback), (status = 404)),
    extensions(("x-required-scope" = json!("users:read"))),
)]
pub async fn typed_user_item_feedback(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    GorsePath(p): GorsePath<FeedbackPath>,
) -> GorseResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::UsersRead)?;
    let kind = p.feedback_type.unwrap_or_default();
    let (user, item) = (p.user_id.unwrap_or_default(), p.item_id.unwrap_or_default());
    let list = state
        .service
        .gorse_user_item_feedback(tenant, &user, &item, Some(&kind))
        .await?;
    match list.first() {
        Some(f) => Ok(Json(feedback_json(f))),
        None => Err(ServiceError::not_found("feedback", format!("{kind} {user} {item}")).into()),
    }
}

/// `DELETE /api/feedback/{user-id}/{item-id}` and
/// `DELETE /api/feedback/{feedback-type}/{user-id}/{item-id}`: deletes the events between a
/// user and an item (of the type); `RowAffected` is how many there were.
#[utoipa::path(
    delete,
    path = "/api/feedback/{feedback_type}/{user_id}/{item_id}",
    tag = "gorse",
    operation_id = "gorseDeleteTypedUserItemFeedback",
    summary = "Delete the feedback of a type between a user and an item",
    description = "Deletes the events between the user and the item: of every type at `/api/feedback/{user_id}/{item_id}`, of one type at `/api/feedback/{feedback_type}/{user_id}/{item_id}`. `RowAffected` is how many there were: 0 when none. A deletion is recorded in the audit log (`feedback.delete`).",
    params(("feedback_type" = String, Path, description = "A feedback type (`read`, `like`, …)."), ("user_id" = String, Path, description = "The user's id."), ("item_id" = String, Path, description = "The item's id.")),
    responses((status = 200, description = "`RowAffected`: how many events were deleted", body = crate::openapi::GorseRowAffected)),
    extensions(("x-required-scope" = json!("feedback:write"))),
)]
pub async fn delete_user_item_feedback(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    GorsePath(p): GorsePath<FeedbackPath>,
) -> GorseResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::FeedbackWrite)?;
    let (user, item) = (p.user_id.unwrap_or_default(), p.item_id.unwrap_or_default());
    let kind = p.feedback_type;
    let n = state
        .service
        .gorse_delete_user_item_feedback(tenant, &user, &item, kind.as_deref())
        .await?;
    if n > 0 {
        // Who deleted which events: the user by the audit log's hash of the id, never the id.
        state
            .service
            .audit(
                &caller,
                Some(tenant.id),
                "feedback.delete",
                Some(&marquee_core::privacy::user_ref(tenant.id, &user)),
                Some(json!({ "item_id": item, "feedback_type": kind, "deleted": n })),
            )
            .await?;
    }
    Ok(success(n))
}

/// `GET /api/user/{user-id}/feedback[/{feedback-type}]`: a user's feedback, newest first.
#[utoipa::path(
    get,
    path = "/api/user/{user_id}/feedback/{feedback_type}",
    tag = "gorse",
    operation_id = "gorseUserFeedbackOfType",
    summary = "A user's feedback of a type",
    description = "The user's events, newest first (empty for an unknown user): of every type at `/api/user/{user_id}/feedback`, of one type at `/api/user/{user_id}/feedback/{feedback_type}`.",
    params(("user_id" = String, Path, description = "The user's id."), ("feedback_type" = String, Path, description = "A feedback type (`read`, `like`, …).")),
    responses((status = 200, description = "The events, newest first", body = Vec<crate::openapi::GorseFeedback>)),
    extensions(("x-required-scope" = json!("users:read"))),
)]
pub async fn user_feedback(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    GorsePath(p): GorsePath<FeedbackPath>,
) -> GorseResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::UsersRead)?;
    let list = state
        .service
        .gorse_user_feedback(
            tenant,
            &p.user_id.unwrap_or_default(),
            p.feedback_type.as_deref(),
        )
        .await?;
    Ok(feedback_list(&list))
}

/// `GET /api/item/{item-id}/feedback[/{feedback-type}]`: the feedback on an item, newest
/// first.
#[utoipa::path(
    get,
    path = "/api/item/{item_id}/feedback/{feedback_type}",
    tag = "gorse",
    operation_id = "gorseItemFeedbackOfType",
    summary = "The feedback of a type on an item",
    description = "The events on the item, newest first (empty for an unknown item): of every type at `/api/item/{item_id}/feedback` (and with an empty type, a trailing slash), of one type at `/api/item/{item_id}/feedback/{feedback_type}`.",
    params(("item_id" = String, Path, description = "The item's id."), ("feedback_type" = String, Path, description = "A feedback type (`read`, `like`, …).")),
    responses((status = 200, description = "The events, newest first", body = Vec<crate::openapi::GorseFeedback>)),
    extensions(("x-required-scope" = json!("users:read"))),
)]
pub async fn item_feedback(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    GorsePath(p): GorsePath<FeedbackPath>,
) -> GorseResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::UsersRead)?;
    let list = state
        .service
        .gorse_item_feedback(
            tenant,
            &p.item_id.unwrap_or_default(),
            p.feedback_type.as_deref(),
        )
        .await?;
    Ok(feedback_list(&list))
}

// ---------------------------------------------------------------------------------------------
// Recommendations

/// Path of the recommend-type routes: a user or an item, and an optional category (Gorse
/// clients also call the category routes with an empty category, a trailing slash).
#[derive(Deserialize)]
pub struct RecommendPath {
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    item_id: Option<String>,
    #[serde(default)]
    category: Option<String>,
}

impl RecommendPath {
    fn categories(&self) -> Vec<String> {
        self.category
            .iter()
            .filter(|c| !c.is_empty())
            .cloned()
            .collect()
    }
}

/// `n` and `offset`, with `offset + n` within what one list may hold.
fn window(query: &GorseQuery) -> GorseResult<(usize, usize)> {
    let n = query.int("n", DEFAULT_N)?;
    let offset = query.int("offset", 0)?;
    if offset.saturating_add(n) > MAX_RECOMMENDATIONS {
        return Err(bad_request(format!(
            "offset + n must be at most {MAX_RECOMMENDATIONS}"
        )));
    }
    Ok((offset, n))
}

fn options(n: usize, categories: Vec<String>) -> RecommendOptions {
    RecommendOptions {
        n,
        // Gorse keeps the items in every category asked for.
        all_categories: true,
        categories,
        ..RecommendOptions::default()
    }
}

/// `GET /api/recommend/{user-id}[/{category}]?n=&offset=&category=&write-back-type=&write-back-delay=`:
/// item ids for the user (unseen items; popular ones for a new user); with `X-API-Version: 2`,
/// `{"Id","Score"}` objects. `write-back-type` records the returned items as feedback of that
/// type (dated `write-back-delay` from now; existing events are kept), which also needs the
/// `feedback:write` scope.
#[utoipa::path(
    get,
    path = "/api/recommend/{user_id}/{category}",
    tag = "gorse",
    operation_id = "gorseRecommendInCategory",
    summary = "Recommend items to a user in a category",
    description = "Items the user has no feedback on, best first (popular items for a new user): item ids, or with `X-API-Version: 2` `{\"Id\", \"Score\"}` objects. Served at `/api/recommend/{user_id}`, with an empty category (`/api/recommend/{user_id}/`) and in a category (`/api/recommend/{user_id}/{category}`). With `write-back-type`, the returned items are recorded as feedback of that type, which needs the `feedback:write` scope too. Billed as one recommendation request.",
    params(("user_id" = String, Path, description = "The user's id."), ("category" = String, Path, description = "Only items in this category (`category` in the query takes its place)."), crate::openapi::GorseRecommendParams, ("X-API-Version" = Option<String>, Header, nullable = false, description = "`2`: answer `{\"Id\", \"Score\"}` objects instead of ids.")),
    responses((status = 200, description = "Recommended items, best first", body = crate::openapi::GorseRecommendation), (status = 503)),
    extensions(("x-required-scope" = json!("recommend"))),
)]
pub async fn recommend(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    headers: HeaderMap,
    GorsePath(p): GorsePath<RecommendPath>,
    query: GorseQuery,
) -> GorseResult<Response> {
    let tenant = caller.tenant_for(Capability::Recommend)?;
    let user_id = p.user_id.clone().unwrap_or_default();
    let (offset, n) = window(&query)?;
    let mut categories = query.all("category");
    if categories.is_empty() {
        categories = p.categories();
    }
    let write_back = query.get("write-back-type").filter(|t| !t.is_empty());
    let delay_ms = match query.get("write-back-delay").filter(|d| !d.is_empty()) {
        // Gorse's `ParseDuration` is Go's `time.ParseDuration`; its error text.
        Some(d) => parse_duration_ms(d)
            .map_err(|_| bad_request(format!("time: invalid duration {d:?}")))?,
        None => 0,
    };
    if let Some(kind) = write_back {
        caller.require(Capability::FeedbackWrite)?;
        check_feedback_type(kind)?;
    }
    let charge = state.service.charge(&caller, None, one_recommendation())?;
    let list = if n == 0 {
        Vec::new()
    } else {
        state
            .service
            .recommend(tenant, &user_id, None, &options(offset + n, categories))?
            .items()
            .iter()
            .skip(offset)
            .map(|r| (r.item_id.clone(), r.score))
            .collect()
    };
    if let Some(kind) = write_back
        && !list.is_empty()
    {
        let at = Timestamp(Timestamp::now().0.saturating_add(delay_ms));
        let events = list
            .iter()
            .map(|(item, _)| FeedbackInput {
                user_id: user_id.clone(),
                item_id: item.clone(),
                kind: kind.to_string(),
                value: None,
                timestamp: Some(at),
                recommendation_id: None,
            })
            .collect();
        state
            .service
            .gorse_insert_feedback(tenant, events, false)
            .await?;
    }
    let scored = headers
        .get("x-api-version")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "2");
    let answer = if scored {
        scores(list)
    } else {
        Value::Array(list.into_iter().map(|(id, _)| Value::String(id)).collect())
    };
    Ok(billed(charge, one_recommendation(), Json(answer)).await?)
}

/// `GET /api/item/{item-id}/neighbors[/{category}]?n=&offset=`: the most similar items, as
/// `{"Id","Score"}` (empty for an unknown item, as in Gorse).
#[utoipa::path(
    get,
    path = "/api/item/{item_id}/neighbors/{category}",
    tag = "gorse",
    operation_id = "gorseItemNeighborsInCategory",
    summary = "Items similar to an item, in a category",
    description = "The items most similar to the item, best first; empty for an unknown item, as in Gorse. Served at `/api/item/{item_id}/neighbors`, with an empty category (a trailing slash) and in a category (`/api/item/{item_id}/neighbors/{category}`). Billed as one recommendation request.",
    params(("item_id" = String, Path, description = "The item's id."), ("category" = String, Path, description = "Only items in this category."), crate::openapi::GorseWindow),
    responses((status = 200, description = "Similar items, best first", body = Vec<crate::openapi::GorseScore>), (status = 503)),
    extensions(("x-required-scope" = json!("recommend"))),
)]
pub async fn item_neighbors(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    GorsePath(p): GorsePath<RecommendPath>,
    query: GorseQuery,
) -> GorseResult<Response> {
    let tenant = caller.tenant_for(Capability::Recommend)?;
    let (offset, n) = window(&query)?;
    let charge = state.service.charge(&caller, None, one_recommendation())?;
    let item = p.item_id.clone().unwrap_or_default();
    let list: Vec<(String, f32)> = if n == 0 {
        Vec::new()
    } else {
        match state
            .service
            .similar_items(tenant, &item, &options(offset + n, p.categories()))
        {
            Ok(list) => list
                .into_iter()
                .skip(offset)
                .map(|r| (r.item_id, r.score))
                .collect(),
            Err(ServiceError::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        }
    };
    Ok(billed(charge, one_recommendation(), Json(scores(list))).await?)
}

/// `GET /api/user/{user-id}/neighbors?n=&offset=`: the users who engaged with the most of the
/// same items, as `{"Id","Score"}`.
#[utoipa::path(
    get,
    path = "/api/user/{user_id}/neighbors",
    tag = "gorse",
    operation_id = "gorseUserNeighbors",
    summary = "Users similar to a user",
    description = "The users who engaged with the most of the same items (cosine similarity of their positive feedback), best first; empty for an unknown user. Also served with a trailing slash. Billed as one recommendation request.",
    params(("user_id" = String, Path, description = "The user's id."), crate::openapi::GorseWindow),
    responses((status = 200, description = "Similar users, best first", body = Vec<crate::openapi::GorseScore>), (status = 503)),
    extensions(("x-required-scope" = json!("recommend"))),
)]
pub async fn user_neighbors(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    GorsePath(p): GorsePath<RecommendPath>,
    query: GorseQuery,
) -> GorseResult<Response> {
    let tenant = caller.tenant_for(Capability::Recommend)?;
    let (offset, n) = window(&query)?;
    let charge = state.service.charge(&caller, None, one_recommendation())?;
    let list = state.service.gorse_similar_users(
        tenant,
        &p.user_id.clone().unwrap_or_default(),
        offset,
        n,
    )?;
    Ok(billed(charge, one_recommendation(), Json(scores(list))).await?)
}

/// The items of `user-id` (Gorse's parameter to leave them out of popular and latest lists).
fn read_by(
    state: &AppState,
    tenant: &marquee_core::TenantState,
    query: &GorseQuery,
) -> HashSet<String> {
    match query.get("user-id").filter(|u| !u.is_empty()) {
        Some(user) => state.service.gorse_seen_items(tenant, user),
        None => HashSet::new(),
    }
}

/// `GET /api/popular[/{category}]?n=&offset=&user-id=`: the most popular items, as
/// `{"Id","Score"}`.
#[utoipa::path(
    get,
    path = "/api/popular/{category}",
    tag = "gorse",
    operation_id = "gorsePopularInCategory",
    summary = "The most popular items in a category",
    description = "Items by recent engagement (time-decayed), best first. Served at `/api/popular`, with an empty category (`/api/popular/`) and in a category (`/api/popular/{category}`). Billed as one recommendation request.",
    params(("category" = String, Path, description = "Only items in this category."), crate::openapi::GorseNonPersonalized),
    responses((status = 200, description = "Popular items, best first", body = Vec<crate::openapi::GorseScore>), (status = 503)),
    extensions(("x-required-scope" = json!("recommend"))),
)]
pub async fn popular(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    GorsePath(p): GorsePath<RecommendPath>,
    query: GorseQuery,
) -> GorseResult<Response> {
    let tenant = caller.tenant_for(Capability::Recommend)?;
    let (offset, n) = window(&query)?;
    let charge = state.service.charge(&caller, None, one_recommendation())?;
    let read = read_by(&state, tenant, &query);
    let list: Vec<(String, f32)> = if n == 0 {
        Vec::new()
    } else {
        let wanted = (offset + n + read.len()).min(MAX_RECOMMENDATIONS);
        state
            .service
            .popular(tenant, &options(wanted, p.categories()))?
            .into_iter()
            .filter(|r| !read.contains(&r.item_id))
            .skip(offset)
            .take(n)
            .map(|r| (r.item_id, r.score))
            .collect()
    };
    Ok(billed(charge, one_recommendation(), Json(scores(list))).await?)
}

/// `GET /api/latest[/{category}]?n=&offset=&user-id=`: the newest items, as `{"Id","Score"}`
/// with the item's timestamp in Unix seconds as the score.
#[utoipa::path(
    get,
    path = "/api/latest/{category}",
    tag = "gorse",
    operation_id = "gorseLatestInCategory",
    summary = "The newest items in a category",
    description = "Items by publication time, newest first; the score is the item's `Timestamp` in Unix seconds. Served at `/api/latest`, with an empty category (`/api/latest/`) and in a category (`/api/latest/{category}`). Billed as one recommendation request.",
    params(("category" = String, Path, description = "Only items in this category."), crate::openapi::GorseNonPersonalized),
    responses((status = 200, description = "The newest items", body = Vec<crate::openapi::GorseScore>), (status = 503)),
    extensions(("x-required-scope" = json!("recommend"))),
)]
pub async fn latest(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    GorsePath(p): GorsePath<RecommendPath>,
    query: GorseQuery,
) -> GorseResult<Response> {
    let tenant = caller.tenant_for(Capability::Recommend)?;
    let (offset, n) = window(&query)?;
    let charge = state.service.charge(&caller, None, one_recommendation())?;
    let read = read_by(&state, tenant, &query);
    let list = state
        .service
        .gorse_latest(tenant, &p.categories(), &read, offset, n);
    Ok(billed(charge, one_recommendation(), Json(scores(list))).await?)
}

/// `POST /api/session/recommend[/{category}]?n=&offset=`: recommendations for an anonymous
/// session, from the feedback in the body (its positive events are the session's history;
/// every item in it is left out), as `{"Id","Score"}`.
#[utoipa::path(
    post,
    path = "/api/session/recommend/{category}",
    tag = "gorse",
    operation_id = "gorseSessionRecommendInCategory",
    summary = "Recommend items to an anonymous session, in a category",
    description = "Recommendations from the feedback in the body (nothing is stored): its positive events are the session's history, and every item in it is left out. Served at `/api/session/recommend`, with an empty category (a trailing slash) and in a category (`/api/session/recommend/{category}`). Billed as one recommendation request.",
    params(("category" = String, Path, description = "Only items in this category."), crate::openapi::GorseWindow),
    request_body = crate::openapi::GorseFeedbackBatch,
    responses((status = 200, description = "Recommended items, best first", body = Vec<crate::openapi::GorseScore>), (status = 503)),
    extensions(("x-required-scope" = json!("recommend"))),
)]
pub async fn session_recommend(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    GorsePath(p): GorsePath<RecommendPath>,
    query: GorseQuery,
    body: GorseBody,
) -> GorseResult<Response> {
    let tenant = caller.tenant_for(Capability::Recommend)?;
    let (offset, n) = window(&query)?;
    let events = feedback_batch(body)?;
    let config = state.service.config();
    let mut history = Vec::new();
    let mut rejected = Vec::new();
    for e in &events {
        if config.is_positive(&e.kind, e.value) {
            history.push(e.item_id.clone());
        } else {
            rejected.push(e.item_id.clone());
        }
    }
    let charge = state.service.charge(&caller, None, one_recommendation())?;
    let list: Vec<(String, f32)> = if n == 0 {
        Vec::new()
    } else {
        let mut opts = options(offset + n, p.categories());
        opts.exclude = rejected;
        state
            .service
            .recommend_session(tenant, &history, &opts)?
            .into_iter()
            .skip(offset)
            .map(|r| (r.item_id, r.score))
            .collect()
    };
    Ok(billed(charge, one_recommendation(), Json(scores(list))).await?)
}

// ---------------------------------------------------------------------------------------------
// Health

/// Gorse's `HealthStatus` (server/rest.go), from Marquee's readiness: Marquee has one store,
/// which is both Gorse's data store and its cache store. Go marshals a nil error as `null` and
/// a failed ping's error (no exported fields) as `{}`; the fields are in Go's order.
fn health_status(ready: bool, store: bool) -> String {
    let error = if store { "null" } else { "{}" };
    format!(
        "{{\"Ready\":{ready},\"DataStoreError\":{error},\"CacheStoreError\":{error},\
         \"DataStoreConnected\":{store},\"CacheStoreConnected\":{store}}}"
    )
}

fn json_text(text: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        text,
    )
        .into_response()
}

/// `GET /api/health/live`: Gorse's liveness probe (no key): 200 and the health status once the
/// server answers.
#[utoipa::path(
    get,
    path = "/api/health/live",
    tag = "gorse",
    operation_id = "gorseHealthLive",
    summary = "Liveness (Gorse's probe)",
    description = "200 once the server answers, with Gorse's `HealthStatus`: `Ready` as Marquee's `/readyz` says, and whether the store answers (Marquee's one store is both Gorse's data store and its cache store).",
    security(()),
    responses((status = 200, description = "Gorse's health status", body = crate::openapi::GorseHealthStatus)),
    extensions(("x-required-scope" = json!("none"))),
)]
pub async fn health_live(State(state): State<Arc<AppState>>) -> Response {
    let r = state.service.readiness().await;
    json_text(health_status(r.ready, r.store))
}

/// `GET /api/health/ready`: Gorse's readiness probe (no key): 200 and the health status when
/// Marquee is ready (its `/readyz`), else 503 with the status as the error text, as Gorse's
/// `checkReady` answers.
#[utoipa::path(
    get,
    path = "/api/health/ready",
    tag = "gorse",
    operation_id = "gorseHealthReady",
    summary = "Readiness (Gorse's probe)",
    description = "200 with Gorse's `HealthStatus` when the server is ready (as Marquee's `/readyz` says: the store answers and every tenant with data has a model); else 503, the status being the text of the error, as Gorse answers it.",
    security(()),
    responses(
        (status = 200, description = "Ready: Gorse's health status", body = crate::openapi::GorseHealthStatus),
        (status = 503, description = "Not ready: Gorse's health status as the error's text", body = String, content_type = "text/plain"),
    ),
    extensions(("x-required-scope" = json!("none"))),
)]
pub async fn health_ready(State(state): State<Arc<AppState>>) -> Response {
    let r = state.service.readiness().await;
    let status = health_status(r.ready, r.store);
    if r.ready {
        json_text(status)
    } else {
        GorseError(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            status,
        ))
        .into_response()
    }
}
