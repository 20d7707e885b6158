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
use marquee_core::metering::Charge;
use marquee_platform::Units;
use serde::Deserialize;
use serde_json::Value;

use crate::billing::{StreamCharge, generation_units};
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
    ///
    /// Billing: `charge` (reserved at `estimate`) is held before the call. When the answer
    /// ends, it is settled with the `usage` the upstream reported (OpenAI's object, in the JSON
    /// body or the last stream events); an upstream that reports none is billed the estimate,
    /// and a refused request (4xx) nothing.
    pub async fn forward(
        &self,
        upstream: &UpstreamModel,
        path: &str,
        mut body: Value,
        charge: Option<Charge>,
        estimate: Units,
    ) -> Result<Response, ApiError> {
        let mut billing = StreamCharge::hold(charge, Units::default()).await?;
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
        if status.is_client_error() {
            // Refused upstream: nothing served, nothing billed.
            billing.finish(Units::default(), status.as_u16());
        } else {
            // From here on the caller is being served: if the stream is cut, the estimate is due.
            billing.units = estimate;
        }
        let embeddings = path == "embeddings";
        // Stream the body through; a stalled upstream ends the stream after the timeout.
        let name = upstream.name.clone();
        let scan = UsageScan {
            billing,
            tail: Vec::new(),
            truncated: false,
            embeddings,
        };
        let stream = futures_util::stream::unfold(
            (response, false, scan),
            move |(mut response, done, mut scan)| {
                let name = name.clone();
                async move {
                    if done {
                        return None;
                    }
                    match tokio::time::timeout(timeout, response.chunk()).await {
                        Ok(Ok(Some(bytes))) => {
                            scan.push(&bytes);
                            Some((Ok(bytes), (response, false, scan)))
                        }
                        Ok(Ok(None)) => {
                            scan.finish(status.as_u16());
                            None
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(upstream = %name, error = %e, "upstream stream broke");
                            Some((Err(std::io::Error::other(e)), (response, true, scan)))
                        }
                        Err(_) => {
                            tracing::warn!(upstream = %name, "upstream stream stalled");
                            Some((
                                Err(std::io::Error::other("upstream timed out")),
                                (response, true, scan),
                            ))
                        }
                    }
                }
            },
        );
        let mut out = Response::new(Body::from_stream(stream));
        *out.status_mut() =
            StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        out.headers_mut().insert(header::CONTENT_TYPE, content_type);
        Ok(out)
    }
}

/// The end of an upstream answer is kept (bounded) to read its `usage` when it finishes.
struct UsageScan {
    billing: StreamCharge,
    tail: Vec<u8>,
    /// Whether the start of the body was dropped from `tail`.
    truncated: bool,
    embeddings: bool,
}

/// How much of an upstream answer's end is kept to find its usage.
const USAGE_TAIL_BYTES: usize = 64 * 1024;

impl UsageScan {
    fn push(&mut self, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > USAGE_TAIL_BYTES {
            let cut = self.tail.len() - USAGE_TAIL_BYTES;
            self.tail.drain(..cut);
            self.truncated = true;
        }
    }

    fn finish(&mut self, status: u16) {
        let units = usage_of(&self.tail, self.truncated, self.embeddings);
        let billed = units.unwrap_or(self.billing.units);
        self.billing.finish(billed, status);
    }
}

/// The usage an OpenAI-compatible answer reports: its JSON body's `usage`, or that of the last
/// server-sent event carrying one.
fn usage_of(tail: &[u8], truncated: bool, embeddings: bool) -> Option<Units> {
    let text = String::from_utf8_lossy(tail);
    let object = |v: &Value| -> Option<Units> {
        let usage = v.get("usage")?;
        let prompt = usage.get("prompt_tokens")?.as_u64()?;
        Some(if embeddings {
            Units::one(marquee_platform::Unit::EmbeddingTokens, prompt)
        } else {
            let completion = usage
                .get("completion_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            generation_units(prompt as usize, completion as usize)
        })
    };
    if !truncated && let Ok(v) = serde_json::from_str::<Value>(text.trim()) {
        return object(&v);
    }
    text.lines()
        .rev()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find_map(|v| object(&v))
}

fn timed_out(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "upstream_timeout",
        format!("the upstream of model `{name}` did not answer in time"),
    )
}
