//! Models served by upstream OpenAI-compatible engines (vLLM, TGI, Ollama, another Marquee),
//! proxied under Marquee's own keys.
//!
//! The operator names each upstream model in the configuration; a request for that name is
//! forwarded with the upstream's own key and model id, and the answer (streamed or not) is
//! passed back as it arrives. Failures are Marquee errors: 502 when the upstream cannot be
//! reached or answers garbage, 504 when it does not answer in time; the upstream's own 4xx
//! errors are passed through, so a client sees the reason.

mod conn;

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use axum::response::Response;
use http_body_util::Full;
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

/// The proxy: connection pools for every upstream.
pub struct Upstreams {
    models: Vec<UpstreamModel>,
    /// `http://` upstreams: connections driven by the requests' own tasks (see [`conn`]).
    plain: Arc<conn::Pool>,
    /// `https://` upstreams.
    tls: reqwest::Client,
}

/// Longest wait for a new connection to an upstream.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Upstreams {
    pub fn new(models: Vec<UpstreamModel>) -> Self {
        // Connections are reused; time limits are per request (each upstream has its own).
        let tls = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Upstreams {
            models,
            plain: Arc::default(),
            tls,
        }
    }

    pub fn models(&self) -> &[UpstreamModel] {
        &self.models
    }

    pub fn get(&self, name: &str) -> Option<&UpstreamModel> {
        self.models.iter().find(|m| m.name == name)
    }

    /// Sends the JSON `body` to the upstream's `path`; the answer's head is back when this
    /// returns.
    async fn send(
        &self,
        upstream: &UpstreamModel,
        path: &str,
        body: Bytes,
    ) -> Result<UpstreamAnswer, SendError> {
        let url = format!("{}/{}", upstream.base_url.trim_end_matches('/'), path);
        let key = upstream
            .api_key_env
            .as_ref()
            .and_then(|var| std::env::var(var).ok());
        let uri: Uri = url
            .parse()
            .map_err(|e| SendError::Unreachable(format!("bad url {url}: {e}")))?;
        if uri.scheme_str() == Some("http")
            && let Some(authority) = uri.authority()
        {
            let address = match authority.port_u16() {
                Some(_) => authority.as_str().to_string(),
                None => format!("{}:80", authority.host()),
            };
            let target = uri.path_and_query().map_or("/", |p| p.as_str());
            let bearer = key.and_then(|k| HeaderValue::try_from(format!("Bearer {k}")).ok());
            let make = || {
                let mut request = Request::new(Full::new(body.clone()));
                *request.method_mut() = Method::POST;
                *request.uri_mut() = Uri::try_from(target).unwrap_or_default();
                let headers = request.headers_mut();
                if let Ok(host) = HeaderValue::try_from(authority.as_str()) {
                    headers.insert(header::HOST, host);
                }
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                if let Some(b) = &bearer {
                    headers.insert(header::AUTHORIZATION, b.clone());
                }
                request
            };
            return self
                .plain
                .send(&address, CONNECT_TIMEOUT, make)
                .await
                .map(UpstreamAnswer::Plain)
                .map_err(|e| match e {
                    conn::ConnError::ConnectTimeout(_) => SendError::TimedOut,
                    e => SendError::Unreachable(e.to_string()),
                });
        }
        let mut request = self
            .tls
            .post(&url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send().await.map(UpstreamAnswer::Tls).map_err(|e| {
            if e.is_timeout() {
                SendError::TimedOut
            } else {
                SendError::Unreachable(e.to_string())
            }
        })
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
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let timeout = Duration::from_secs_f64(upstream.timeout_secs.max(0.1));
        let mut answer = match tokio::time::timeout(timeout, self.send(upstream, path, body)).await
        {
            Err(_) | Ok(Err(SendError::TimedOut)) => return Err(timed_out(&upstream.name)),
            Ok(Err(SendError::Unreachable(e))) => {
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
            Ok(Ok(answer)) => answer,
        };
        let status = answer.status();
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
        let content_type = answer
            .content_type()
            .unwrap_or(HeaderValue::from_static("application/json"));
        if status.is_client_error() {
            // Refused upstream: nothing served, nothing billed.
            billing.finish(Units::default(), status.as_u16());
        } else {
            // From here on the caller is being served: if the stream is cut, the estimate is due.
            billing.units = estimate;
        }
        let embeddings = path == "embeddings";
        let mut scan = UsageScan {
            billing,
            tail: Vec::new(),
            embeddings,
        };
        // A whole JSON answer of known, bounded length is read first and sent on in one piece
        // (with its length): fewer wake-ups and writes than relaying it chunk by chunk.
        let streamed = content_type.as_bytes().starts_with(b"text/event-stream");
        if !streamed
            && let Some(length) = answer.content_length()
            && length <= WHOLE_ANSWER_BYTES
        {
            // Usually one piece, passed on as it is; copied together only when it came in several.
            let read_all = async {
                let mut parts = Vec::new();
                while let Some(chunk) = answer.chunk().await? {
                    parts.push(chunk);
                }
                Ok::<_, BoxError>(match parts.len() {
                    1 => parts.swap_remove(0),
                    _ => Bytes::from(parts.concat()),
                })
            };
            let bytes = match tokio::time::timeout(timeout, read_all).await {
                Ok(Ok(bytes)) => bytes,
                Ok(Err(e)) => {
                    tracing::warn!(upstream = %upstream.name, error = %e, "upstream answer broke");
                    return Err(ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        "upstream_error",
                        format!(
                            "the upstream of model `{}` broke off its answer",
                            upstream.name
                        ),
                    ));
                }
                Err(_) => return Err(timed_out(&upstream.name)),
            };
            scan.push(&bytes);
            scan.finish(status.as_u16());
            let mut out = Response::new(Body::from(bytes));
            *out.status_mut() = status;
            out.headers_mut().insert(header::CONTENT_TYPE, content_type);
            return Ok(out);
        }
        // Stream the body through; a stalled upstream ends the stream after the timeout.
        let name = upstream.name.clone();
        let stream = futures_util::stream::unfold(
            (answer, false, scan),
            move |(mut answer, done, mut scan)| {
                let name = name.clone();
                async move {
                    if done {
                        return None;
                    }
                    match tokio::time::timeout(timeout, answer.chunk()).await {
                        Ok(Ok(Some(bytes))) => {
                            scan.push(&bytes);
                            Some((Ok(bytes), (answer, false, scan)))
                        }
                        Ok(Ok(None)) => {
                            scan.finish(status.as_u16());
                            None
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(upstream = %name, error = %e, "upstream stream broke");
                            Some((Err(std::io::Error::other(e)), (answer, true, scan)))
                        }
                        Err(_) => {
                            tracing::warn!(upstream = %name, "upstream stream stalled");
                            Some((
                                Err(std::io::Error::other("upstream timed out")),
                                (answer, true, scan),
                            ))
                        }
                    }
                }
            },
        );
        let mut out = Response::new(Body::from_stream(stream));
        *out.status_mut() = status;
        out.headers_mut().insert(header::CONTENT_TYPE, content_type);
        Ok(out)
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why an upstream's answer did not start: no answer within the connect timeout (504, as for
/// any time limit), or no connection at all (502).
enum SendError {
    TimedOut,
    Unreachable(String),
}

/// An upstream's answer, from either kind of connection.
enum UpstreamAnswer {
    Plain(conn::Answer),
    Tls(reqwest::Response),
}

impl UpstreamAnswer {
    fn status(&self) -> StatusCode {
        let code = match self {
            UpstreamAnswer::Plain(a) => a.status.as_u16(),
            UpstreamAnswer::Tls(r) => r.status().as_u16(),
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY)
    }

    fn content_type(&self) -> Option<HeaderValue> {
        let value = match self {
            UpstreamAnswer::Plain(a) => a.headers.get(header::CONTENT_TYPE),
            UpstreamAnswer::Tls(r) => r.headers().get(header::CONTENT_TYPE),
        };
        value.cloned()
    }

    fn content_length(&self) -> Option<u64> {
        match self {
            UpstreamAnswer::Plain(a) => a.content_length(),
            UpstreamAnswer::Tls(r) => r.content_length(),
        }
    }

    async fn chunk(&mut self) -> Result<Option<Bytes>, BoxError> {
        match self {
            UpstreamAnswer::Plain(a) => Ok(a.chunk().await?),
            UpstreamAnswer::Tls(r) => Ok(r.chunk().await?),
        }
    }
}

/// The end of an upstream answer is kept (bounded) to read its `usage` when it finishes.
struct UsageScan {
    billing: StreamCharge,
    tail: Vec<u8>,
    embeddings: bool,
}

/// How much of an upstream answer's end is kept to find its usage.
const USAGE_TAIL_BYTES: usize = 64 * 1024;
/// The longest JSON answer read whole before it is passed on; longer ones are relayed as they
/// arrive.
const WHOLE_ANSWER_BYTES: u64 = 4 * 1024 * 1024;

impl UsageScan {
    fn push(&mut self, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > USAGE_TAIL_BYTES {
            let cut = self.tail.len() - USAGE_TAIL_BYTES;
            self.tail.drain(..cut);
        }
    }

    fn finish(&mut self, status: u16) {
        let units = usage_of(&self.tail, self.embeddings);
        let billed = units.unwrap_or(self.billing.units);
        self.billing.finish(billed, status);
    }
}

/// The usage an OpenAI-compatible answer reports: its JSON body's `usage`, or that of the last
/// server-sent event carrying one.
///
/// The object is found from the end: OpenAI-shaped answers put `usage` after the (possibly
/// large) data, and a key `"usage"` followed by `:` cannot occur inside a JSON string, whose
/// quotes are escaped. Only that object is parsed, not the embeddings or text before it.
fn usage_of(tail: &[u8], embeddings: bool) -> Option<Units> {
    let mut end = tail.len();
    while let Some(at) = memchr::memmem::rfind(&tail[..end], b"\"usage\"") {
        end = at;
        let rest = &tail[at + b"\"usage\"".len()..];
        let Some(colon) = rest.iter().position(|b| !b.is_ascii_whitespace()) else {
            continue;
        };
        if rest[colon] != b':' {
            continue;
        }
        let mut values =
            serde_json::Deserializer::from_slice(&rest[colon + 1..]).into_iter::<UsageObject>();
        if let Some(Ok(usage)) = values.next() {
            return Some(if embeddings {
                Units::one(marquee_platform::Unit::EmbeddingTokens, usage.prompt_tokens)
            } else {
                generation_units(
                    usage.prompt_tokens as usize,
                    usage.completion_tokens.unwrap_or(0) as usize,
                )
            });
        }
    }
    None
}

/// OpenAI's `usage` object, as much of it as billing reads.
#[derive(Deserialize)]
struct UsageObject {
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

fn timed_out(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "upstream_timeout",
        format!("the upstream of model `{name}` did not answer in time"),
    )
}

#[cfg(test)]
mod tests {
    use marquee_platform::Unit;

    use super::*;

    #[test]
    fn usage_is_read_from_the_answer_end() {
        let body = br#"{"object":"list","data":[{"embedding":[0.1,-0.2],"index":0}],"model":"m","usage":{"prompt_tokens":7,"total_tokens":7}}"#;
        let units = usage_of(body, true).unwrap();
        assert_eq!(units.get(Unit::EmbeddingTokens), 7);

        // A `"usage"` inside text is not the key; the object after the data is.
        let chat = br#"{"choices":[{"message":{"content":"see \"usage\": {\"prompt_tokens\": 99}"}}], "usage" : {"prompt_tokens":3,"completion_tokens":5}}"#;
        let units = usage_of(chat, false).unwrap();
        assert_eq!(units, generation_units(3, 5));

        // A stream: the chunks' `"usage": null` are skipped for the last event's object.
        let stream =
            b"data: {\"choices\":[{\"delta\":{\"content\":\"usage\"}}],\"usage\":null}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2}}\n\n\
data: [DONE]\n\n";
        assert_eq!(usage_of(stream, false).unwrap(), generation_units(4, 2));

        assert!(usage_of(b"{\"data\":[]}", true).is_none());
        assert!(usage_of(b"data: {\"usage\":null}\n\ndata: [DONE]\n\n", false).is_none());
    }
}
