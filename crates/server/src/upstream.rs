//! Models served by upstream OpenAI-compatible engines (vLLM, TGI, Ollama, another Marquee),
//! proxied under Marquee's own keys.
//!
//! The operator names each upstream model in the configuration; a request for that name is
//! forwarded with the upstream's own key and model id, and the answer (streamed or not) is
//! passed back as it arrives. Failures are Marquee errors: 502 when the upstream cannot be
//! reached or answers garbage, 504 when it does not answer in time; the upstream's own 4xx
//! errors are passed through, so a client sees the reason.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

/// One model served by an upstream engine.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamModel {
    /// The name clients use (`model` in requests, `id` in `/v1/models`).
    pub name: String,
    /// The engine's OpenAI-compatible base URL, e.g. `http://10.0.0.5:8000/v1`.
    pub base_url: String,
    /// The model id at the upstream; the same as `name` when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// The upstream's API key (sent as `Authorization: Bearer …`); read from this environment
    /// variable, so the key stays out of the file.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// `chat` or `embeddings`.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Longest wait for the upstream's response headers (and for each streamed chunk).
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
}

fn default_kind() -> String {
    "chat".into()
}

fn default_timeout() -> f64 {
    120.0
}

/// The proxy: one connection pool for every upstream.
pub struct Upstreams {
    models: Vec<UpstreamModel>,
    client: reqwest::Client,
}

impl Upstreams {
    pub fn new(models: Vec<UpstreamModel>) -> Self {
        // Connections are reused; time limits are per request (each upstream has its own).
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Upstreams { models, client }
    }

    pub fn models(&self) -> &[UpstreamModel] {
        &self.models
    }

    pub fn get(&self, name: &str) -> Option<&UpstreamModel> {
        self.models.iter().find(|m| m.name == name)
    }

    /// Forwards `body` (a JSON request whose `model` is `upstream.name`) to `path` (e.g.
    /// `chat/completions`) and returns the upstream's answer as it arrives.
    pub async fn forward(
        &self,
        upstream: &UpstreamModel,
        path: &str,
        mut body: Value,
    ) -> Result<Response, ApiError> {
        if let Some(m) = &upstream.model {
            body["model"] = Value::String(m.clone());
        }
        let url = format!("{}/{}", upstream.base_url.trim_end_matches('/'), path);
        let timeout = Duration::from_secs_f64(upstream.timeout_secs.max(0.1));
        let mut request = self.client.post(&url).json(&body);
        if let Some(var) = &upstream.api_key_env
            && let Ok(key) = std::env::var(var)
        {
            request = request.bearer_auth(key);
        }
        let response = match tokio::time::timeout(timeout, request.send()).await {
            Err(_) => return Err(timed_out(&upstream.name)),
            Ok(Err(e)) if e.is_timeout() => return Err(timed_out(&upstream.name)),
            Ok(Err(e)) => {
                tracing::warn!(upstream = %upstream.name, error = %e, "upstream unreachable");
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_unreachable",
                    format!(
                        "the upstream of model `{}` cannot be reached",
                        upstream.name
                    ),
                ));
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        if status.is_server_error() {
            tracing::warn!(upstream = %upstream.name, %status, "upstream failed");
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                format!(
                    "the upstream of model `{}` failed ({status})",
                    upstream.name
                ),
            ));
        }
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("application/json"));
        // Stream the body through; a stalled upstream ends the stream after the timeout.
        let name = upstream.name.clone();
        let stream =
            futures_util::stream::unfold((response, false), move |(mut response, done)| {
                let name = name.clone();
                async move {
                    if done {
                        return None;
                    }
                    match tokio::time::timeout(timeout, response.chunk()).await {
                        Ok(Ok(Some(bytes))) => Some((Ok(bytes), (response, false))),
                        Ok(Ok(None)) => None,
                        Ok(Err(e)) => {
                            tracing::warn!(upstream = %name, error = %e, "upstream stream broke");
                            Some((Err(std::io::Error::other(e)), (response, true)))
                        }
                        Err(_) => {
                            tracing::warn!(upstream = %name, "upstream stream stalled");
                            Some((
                                Err(std::io::Error::other("upstream timed out")),
                                (response, true),
                            ))
                        }
                    }
                }
            });
        let mut out = Response::new(Body::from_stream(stream));
        *out.status_mut() =
            StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        out.headers_mut().insert(header::CONTENT_TYPE, content_type);
        Ok(out)
    }
}

fn timed_out(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "upstream_timeout",
        format!("the upstream of model `{name}` did not answer in time"),
    )
}
