//! Request extractors whose failures are JSON errors that name the offending field.
//!
//! axum's own extractors answer bad input with plain-text bodies and status codes that do not
//! tell a syntax error (400) from a well-formed body with wrong content (422); these do.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use marquee_core::{Caller, Service};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::AppState;
use crate::error::ApiError;

/// Describes a serde error with the path of the field it concerns.
fn describe<E: std::fmt::Display>(err: &serde_path_to_error::Error<E>) -> String {
    let path = err.path().to_string();
    if path == "." || path.is_empty() {
        err.inner().to_string()
    } else {
        format!("{path}: {}", err.inner())
    }
}

/// Reads the body up to the configured limit: 413 beyond it.
async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if too_large {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body is larger than {limit} bytes"),
            )
        } else {
            ApiError::bad_request("invalid_body", format!("cannot read the request body: {e}"))
        }
    })
}

/// Parses JSON: 400 for malformed JSON, 422 (naming the field) for unknown fields or wrong types.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        use serde_json::error::Category;
        match err.inner().classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::bad_request("invalid_json", format!("malformed JSON: {}", err.inner()))
            }
            Category::Data => ApiError::unprocessable(describe(&err)),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request("invalid_json", format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// A JSON body.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("");
            let mime = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if !(mime == "application/json" || mime.ends_with("+json")) {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!("expected application/json, got {ct:?}"),
                ));
            }
        }
        let bytes = read_body(req.into_body(), state.config.body_limit).await?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_json",
                "the request body is empty",
            ));
        }
        parse_json(&bytes).map(ApiJson)
    }
}

/// A batch body: a JSON array (or one object, a batch of one). Each element is decoded on its
/// own, so an error names the element's index and field.
pub struct Batch<T>(pub Vec<T>);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for Batch<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let ApiJson(value) = ApiJson::<Value>::from_request(req, state).await?;
        let elements = match value {
            Value::Array(a) => a,
            object @ Value::Object(_) => vec![object],
            _ => return Err(ApiError::unprocessable("expected a JSON array of objects")),
        };
        let max = state.service.config().max_batch;
        if elements.len() > max {
            return Err(ApiError::unprocessable(format!(
                "the batch has {} elements; the limit is {max}",
                elements.len()
            )));
        }
        let mut out = Vec::with_capacity(elements.len());
        for (index, element) in elements.into_iter().enumerate() {
            let parsed: T = serde_path_to_error::deserialize(element).map_err(|err| {
                let mut e = ApiError::unprocessable(format!(
                    "element {index} of the batch: {}",
                    describe(&err)
                ));
                e.code = "invalid_batch";
                e
            })?;
            out.push(parsed);
        }
        Ok(Batch(out))
    }
}

/// Query parameters; unknown parameters and bad values are 422 naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|err| ApiError::unprocessable(format!("query parameter {}", describe(&err))))
    }
}

/// Path parameters.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::unprocessable(format!("path: {}", e.body_text())))
    }
}

/// The authenticated caller, as resolved by the access layer ([`crate::access`]); a request
/// that reached the route without one (no key, nothing published) is refused with 401.
pub struct Auth(pub Caller);

impl FromRequestParts<Arc<AppState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(Auth(caller.clone()));
        }
        let secret = crate::access::presented_key(&parts.headers)?;
        let meta = std::sync::Arc::new(marquee_core::RequestMeta::default());
        let caller = Service::authenticate(&state.service, secret.as_deref(), meta).await?;
        Ok(Auth(caller))
    }
}

/// A `multipart/form-data` body, read whole (within a limit) and split into text fields and
/// files. OpenAI's audio routes take their input this way.
#[derive(Debug, Default)]
pub struct Form {
    /// Text fields, in order (a name may repeat, e.g. `timestamp_granularities[]`).
    pub fields: Vec<(String, String)>,
    pub files: Vec<FormFile>,
}

/// A file part of a form.
#[derive(Debug)]
pub struct FormFile {
    /// The form field's name (`file`).
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: axum::body::Bytes,
}

/// Most parts in one form.
const MAX_FORM_PARTS: usize = 64;
/// Longest text field.
const MAX_FORM_FIELD: usize = 64 * 1024;

impl Form {
    /// The last value of the text field `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Takes the file part `name`.
    pub fn take_file(&mut self, name: &str) -> Option<FormFile> {
        let i = self.files.iter().position(|f| f.name == name)?;
        Some(self.files.swap_remove(i))
    }
}

/// Whether the request says it carries `multipart/form-data`.
pub fn is_multipart(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("multipart/form-data")
        })
}

/// Reads a `multipart/form-data` body of at most `limit` bytes (413 beyond, without reading
/// further) into a [`Form`]; 400 for a malformed form, 415 for another content type.
pub async fn read_form(req: Request, limit: usize) -> Result<Form, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if !is_multipart(req.headers()) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("expected multipart/form-data, got {content_type:?}"),
        ));
    }
    let boundary = multer::parse_boundary(&content_type).map_err(|e| {
        ApiError::bad_request("invalid_form", format!("bad multipart content type: {e}"))
    })?;
    let bytes = read_body(req.into_body(), limit).await?;
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(bytes) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let bad = |e: multer::Error| {
        ApiError::bad_request("invalid_form", format!("malformed multipart body: {e}"))
    };
    let mut form = Form::default();
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        if form.fields.len() + form.files.len() >= MAX_FORM_PARTS {
            return Err(ApiError::bad_request(
                "invalid_form",
                format!("the form has more than {MAX_FORM_PARTS} parts"),
            ));
        }
        let name = field.name().unwrap_or("").to_string();
        let filename = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(|m| m.to_string());
        let data = field.bytes().await.map_err(bad)?;
        if filename.is_some() {
            form.files.push(FormFile {
                name,
                filename,
                content_type,
                data,
            });
        } else {
            if data.len() > MAX_FORM_FIELD {
                return Err(ApiError::bad_request(
                    "invalid_form",
                    format!("form field `{name}` is longer than {MAX_FORM_FIELD} bytes"),
                ));
            }
            let value = String::from_utf8(data.to_vec()).map_err(|_| {
                ApiError::bad_request(
                    "invalid_form",
                    format!("form field `{name}` is not UTF-8 text"),
                )
            })?;
            form.fields.push((name, value));
        }
    }
    Ok(form)
}

/// Reads a raw body of at most `limit` bytes (413 beyond).
pub async fn read_bytes(req: Request, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    read_body(req.into_body(), limit).await
}
