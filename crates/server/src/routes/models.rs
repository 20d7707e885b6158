//! OpenAI-compatible model routes: `/v1/models`, `/v1/embeddings`, `/v1/chat/completions`.
//!
//! Request and response shapes follow OpenAI's API so that its official clients work
//! unchanged; the answers are written with `marquee-types`' shapes, which the Rust SDK reads.
//! So do errors (`error.message`, `error.type`, `error.code`, `error.param`), and an
//! unknown request field is refused the way OpenAI refuses it. Models loaded in this process
//! answer here; a model name registered as an upstream is proxied (see [`crate::upstream`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::StreamExt;
use marquee_core::{
    AssistantMessage, ChatChunk, ChatCompletion, ChatUsage, Delta, Embedding, EmbeddingVector,
    Embeddings,
};
use marquee_models::ModelError;
use marquee_models::chat::{FinishReason, GenerationParams, Message};
use marquee_models::embed::Overflow;
use marquee_models::runtime::ChatEvent;
use marquee_platform::{Capability, Unit, Units};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::billing::{StreamCharge, billed, generation_units};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Auth};

/// Completion tokens reserved for an upstream chat request that names no limit.
const UPSTREAM_DEFAULT_MAX_TOKENS: u64 = 4096;

/// Most inputs in one embeddings request (OpenAI's limit).
const MAX_EMBEDDING_INPUTS: usize = 2048;
/// Most stop sequences (OpenAI's limit).
const MAX_STOP: usize = 4;
/// Most messages in one conversation.
const MAX_MESSAGES: usize = 1000;

/// The `system_fingerprint` of chat answers: the server's version.
const SYSTEM_FINGERPRINT: &str = concat!("marquee-", env!("CARGO_PKG_VERSION"));

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Models

fn model_object(info: &marquee_models::runtime::ModelInfo) -> Value {
    json!({
        "id": info.name,
        "object": "model",
        "created": info.created,
        "owned_by": "marquee",
        "kind": info.kind,
        "status": info.status,
        "error": info.error,
        "dimensions": info.dimensions,
        "max_input_tokens": info.max_tokens,
        "context_length": info.context_tokens,
        "aliases": info.aliases,
        "voices": info.voices,
    })
}

/// `GET /v1/models`: the models this server answers for (loaded here, or upstream).
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "models",
    operation_id = "listModels",
    summary = "List models",
    description = "The models this server answers for: loaded here, or served by an upstream engine through Marquee. OpenAI-compatible.",
    responses((status = 200, description = "The models", body = crate::openapi::ModelList)),
    extensions(("x-required-scope" = json!("any"))),
)]
pub async fn list(State(state): State<Arc<AppState>>, Auth(_caller): Auth) -> Json<Value> {
    let mut data: Vec<Value> = state
        .service
        .models()
        .models()
        .iter()
        .map(model_object)
        .collect();
    for u in state.upstreams.models() {
        data.push(json!({
            "id": u.name,
            "object": "model",
            "created": 0,
            "owned_by": "upstream",
            "kind": u.kind,
            "status": "upstream",
        }));
    }
    Json(json!({"object": "list", "data": data}))
}

/// `GET /v1/models/{model}`.
#[utoipa::path(
    get,
    path = "/v1/models/{model}",
    tag = "models",
    operation_id = "retrieveModel",
    summary = "Get a model",
    description = "By name or alias. OpenAI-compatible.",
    params(("model" = String, Path, description = "The model's name or an alias.")),
    responses(
        (status = 200, description = "The model", body = crate::openapi::ModelObject),
        (status = 404),
    ),
    extensions(("x-required-scope" = json!("any"))),
)]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Auth(_caller): Auth,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    if let Some(info) = state
        .service
        .models()
        .models()
        .iter()
        .find(|m| m.name == name || m.aliases.contains(&name))
    {
        return Ok(Json(model_object(info)));
    }
    if let Some(u) = state.upstreams.get(&name) {
        return Ok(Json(json!({
            "id": u.name, "object": "model", "created": 0, "owned_by": "upstream",
            "kind": u.kind, "status": "upstream",
        })));
    }
    Err(ModelError::NotFound(name).into())
}

// ---------------------------------------------------------------------------------------------
// Embeddings

/// A text or a list of texts (token ids are refused).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
    #[allow(dead_code)]
    Tokens(Vec<u32>),
    #[allow(dead_code)]
    TokenLists(Vec<Vec<u32>>),
}

#[derive(Deserialize, Clone, Copy, Default, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum EncodingFormat {
    #[default]
    Float,
    Base64,
}

/// OpenAI's embeddings request.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = EmbeddingRequest)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingsRequest {
    /// Up to 2,048 non-empty texts.
    #[schema(value_type = EmbeddingInput)]
    input: Value,
    /// An embedding model by name; the first loaded one when absent.
    /// Read from the raw body before parsing (to route upstream models).
    #[serde(default)]
    #[allow(dead_code)]
    model: Option<String>,
    #[serde(default)]
    encoding_format: EncodingFormat,
    /// Must be the model's own (vectors are not shortened).
    #[serde(default)]
    dimensions: Option<usize>,
    #[serde(default)]
    #[allow(dead_code)]
    user: Option<String>,
}

/// `POST /v1/embeddings`.
#[utoipa::path(
    post,
    path = "/v1/embeddings",
    tag = "models",
    operation_id = "createEmbedding",
    summary = "Embed text",
    description = "One vector per input, with an embedding model (the first loaded one when `model` is absent). OpenAI-compatible; billed by the token.",
    request_body = EmbeddingsRequest,
    responses(
        (status = 200, description = "The vectors", body = Embeddings),
        (status = 404),
        (status = 503),
    ),
    extensions(("x-required-scope" = json!("models:embeddings"))),
)]
pub async fn embeddings(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    caller.require(Capability::ModelsEmbeddings)?;
    let model_name = body
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(name) = &model_name {
        caller.require_model(name)?;
    }
    if let Some(name) = &model_name
        && !state.service.models().has(name)
        && let Some(upstream) = state.upstreams.get(name)
    {
        let estimate = Units::one(Unit::EmbeddingTokens, body_text_bytes(&body["input"]));
        let charge = state.service.charge(&caller, Some(name), estimate)?;
        return state
            .upstreams
            .forward(upstream, "embeddings", body, charge, estimate)
            .await;
    }
    let request: EmbeddingsRequest = openai_parse(body)?;
    let input: EmbeddingInput = serde_json::from_value(request.input)
        .map_err(|_| invalid_param("input", "`input` must be a string or an array of strings"))?;
    let texts = match input {
        EmbeddingInput::One(s) => vec![s],
        EmbeddingInput::Many(v) => v,
        EmbeddingInput::Tokens(_) | EmbeddingInput::TokenLists(_) => {
            return Err(invalid_param(
                "input",
                "token-id input is not supported by this server; send text",
            ));
        }
    };
    if texts.is_empty() {
        return Err(invalid_param("input", "`input` must not be empty"));
    }
    if texts.len() > MAX_EMBEDDING_INPUTS {
        return Err(invalid_param(
            "input",
            format!(
                "`input` has {} items; at most {MAX_EMBEDDING_INPUTS}",
                texts.len()
            ),
        ));
    }
    if let Some(i) = texts.iter().position(|t| t.is_empty()) {
        return Err(invalid_param(
            "input",
            format!("input[{i}] is an empty string"),
        ));
    }
    let runtime = state.service.models();
    let service = match &model_name {
        Some(name) => runtime.embeddings(name)?,
        None => runtime.first_embeddings().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "model_unavailable",
                "no embedding model is loaded: run `marquee models pull` and restart",
            )
        })?,
    };
    if let Some(d) = request.dimensions
        && d != service.dimensions()
    {
        return Err(invalid_param(
            "dimensions",
            format!(
                "model `{}` produces {} dimensions and cannot shorten them",
                service.name(),
                service.dimensions()
            ),
        ));
    }
    caller.require_model(service.name())?;
    // At most one token per byte, plus the two markers around each input.
    let estimate: u64 = texts.iter().map(|t| t.len() as u64 + 2).sum();
    let charge = state.service.charge(
        &caller,
        Some(service.name()),
        Units::one(Unit::EmbeddingTokens, estimate),
    )?;
    let result = service.embed(texts, Overflow::Reject).await?;
    let tokens: usize = result.tokens.iter().sum();
    let data: Vec<Embedding> = result
        .vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = match request.encoding_format {
                EncodingFormat::Float => EmbeddingVector::Float(v),
                EncodingFormat::Base64 => {
                    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    EmbeddingVector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
            };
            Embedding::new(index, embedding)
        })
        .collect();
    let answer = Json(Embeddings::new(service.name(), data, tokens as u64));
    billed(
        charge,
        Units::one(Unit::EmbeddingTokens, tokens as u64),
        answer,
    )
    .await
}

/// Bytes of text in a JSON value (strings, nested in arrays): an upper bound on its tokens.
pub(crate) fn body_text_bytes(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.len() as u64 + 2,
        Value::Array(a) => a.iter().map(body_text_bytes).sum(),
        Value::Object(o) => o.values().map(body_text_bytes).sum(),
        _ => 1,
    }
}

// ---------------------------------------------------------------------------------------------
// Chat completions

/// Text, or a list of text parts.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = ChatContent)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// A part of a message; only `text` parts are supported.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = ChatContentPart)]
#[serde(deny_unknown_fields)]
struct ContentPart {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ChatMessage {
    /// `system`, `developer`, `user` or `assistant`.
    role: String,
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    #[allow(dead_code)]
    name: Option<String>,
}

/// Up to 4 sequences that end the completion.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = ChatStop)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[schema(as = ChatStreamOptions)]
#[serde(deny_unknown_fields)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// OpenAI's chat completion request (`n` must be 1; `logprobs` and non-text
/// `response_format`s are refused).
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = ChatCompletionRequest)]
#[serde(deny_unknown_fields)]
struct ChatRequest {
    model: String,
    /// Up to 1,000 messages.
    messages: Vec<ChatMessage>,
    #[serde(default)]
    max_tokens: Option<usize>,
    #[serde(default)]
    max_completion_tokens: Option<usize>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    n: Option<usize>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    stop: Option<Stop>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    frequency_penalty: Option<f32>,
    #[serde(default)]
    presence_penalty: Option<f32>,
    #[serde(default)]
    logprobs: Option<bool>,
    #[serde(default)]
    response_format: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    user: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    store: Option<bool>,
    #[serde(default)]
    #[allow(dead_code)]
    metadata: Option<Value>,
}

/// `POST /v1/chat/completions`, plain or streamed.
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "models",
    operation_id = "createChatCompletion",
    summary = "Chat completion",
    description = "The assistant's next message, whole or streamed as server-sent events (`stream: true`). OpenAI-compatible; billed by input and output token.",
    request_body = ChatRequest,
    responses(
        (
            status = 200,
            description = "The completion; with `stream: true`, `data:` events of chunks ending with `data: [DONE]`",
            content(
                (ChatCompletion = "application/json"),
                (ChatChunk = "text/event-stream"),
            ),
        ),
        (status = 404),
        (status = 503),
    ),
    extensions(("x-required-scope" = json!("models:chat"))),
)]
pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    caller.require(Capability::ModelsChat)?;
    if let Some(name) = body.get("model").and_then(Value::as_str) {
        caller.require_model(name)?;
        if !state.service.models().has(name)
            && let Some(upstream) = state.upstreams.get(name)
        {
            let max_tokens = body
                .get("max_completion_tokens")
                .or_else(|| body.get("max_tokens"))
                .and_then(Value::as_u64)
                .unwrap_or(UPSTREAM_DEFAULT_MAX_TOKENS);
            let estimate = generation_units(
                body_text_bytes(&body["messages"]) as usize,
                max_tokens as usize,
            );
            let charge = state.service.charge(&caller, Some(name), estimate)?;
            return state
                .upstreams
                .forward(upstream, "chat/completions", body, charge, estimate)
                .await;
        }
    }
    let request: ChatRequest = openai_parse(body)?;
    let (messages, params) = validate_chat(&request)?;
    let service = state.service.models().chat(&request.model)?;
    caller.require_model(service.name())?;
    let prompt = service.prepare(&messages, params.max_tokens)?;
    let completion_budget = service.model().budget(prompt.len(), params.max_tokens)?;
    let estimate = generation_units(prompt.len(), completion_budget);
    let charge = state
        .service
        .charge(&caller, Some(service.name()), estimate)?;
    let prompt_tokens = prompt.len();
    let id = format!("chatcmpl-{}", random_hex());
    let created = unix_now();
    let model = service.name().to_string();
    if !request.stream {
        let g = service.complete(prompt, params).await?;
        let units = generation_units(g.prompt_tokens, g.completion_tokens);
        let answer = Json(ChatCompletion::new(
            id,
            created,
            model,
            Some(SYSTEM_FINGERPRINT.to_string()),
            AssistantMessage::new(g.text),
            g.finish_reason.as_str(),
            usage(g.prompt_tokens, g.completion_tokens),
        ));
        return billed(charge, units, answer).await;
    }
    let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
    // Paid for before the first byte; settled with the real count when the stream ends, or
    // with what was generated so far if the client goes away.
    let mut billing = StreamCharge::hold(charge, generation_units(prompt_tokens, 0)).await?;
    let rx = match service.start(prompt, params).await {
        Ok(rx) => rx,
        Err(e) => {
            billing.finish(Units::default(), 503);
            return Err(e.into());
        }
    };
    let mut chunks = Chunks(ChatChunk::new(
        id,
        created,
        model,
        Some(SYSTEM_FINGERPRINT.to_string()),
    ));
    let first = chunks.event(
        Delta {
            content: Some(String::new()),
            role: Some("assistant".to_string()),
        },
        None,
    );
    // The generation stops when this stream is dropped (the client went away): the receiver
    // goes with it, and the generating thread's next send fails.
    let body = futures_util::stream::unfold(Some((rx, chunks, billing)), move |state| async move {
        let (mut rx, mut chunks, mut billing) = state?;
        match rx.recv().await {
            Some(ChatEvent::Text(text)) => {
                let event = chunks.event(
                    Delta {
                        content: Some(text),
                        role: None,
                    },
                    None,
                );
                let generated = billing.units.get(Unit::OutputTokens) + 1;
                billing.units.set(Unit::OutputTokens, generated);
                Some((vec![event], Some((rx, chunks, billing))))
            }
            Some(ChatEvent::Done(Ok(g))) => {
                billing.finish(generation_units(g.prompt_tokens, g.completion_tokens), 200);
                let finish = match g.finish_reason {
                    FinishReason::Length => "length",
                    _ => "stop",
                };
                let mut events = vec![chunks.event(Delta::default(), Some(finish))];
                if include_usage {
                    events.push(chunks.usage(usage(g.prompt_tokens, g.completion_tokens)));
                }
                events.push(Event::default().data("[DONE]"));
                Some((events, None))
            }
            Some(ChatEvent::Done(Err(e))) => {
                tracing::warn!(error = %e, "generation failed mid-stream");
                let served = billing.units;
                billing.finish(served, 500);
                let err = ApiError::from(marquee_core::ServiceError::from(e));
                Some((
                    vec![
                        Event::default().data(err.body().to_string()),
                        Event::default().data("[DONE]"),
                    ],
                    None,
                ))
            }
            None => None,
        }
    })
    .flat_map(futures_util::stream::iter);
    let stream = futures_util::stream::iter(vec![first])
        .chain(body)
        .map(Ok::<Event, Infallible>);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The chunks of one streamed completion: one chunk, refilled for each event, so that a chunk
/// per token copies neither the id nor the model (about 4× faster than building each as a
/// `serde_json` map, as the handler did before).
struct Chunks(ChatChunk);

impl Chunks {
    /// The event of a chunk with `delta` (and the choice's `finish_reason`).
    fn event(&mut self, delta: Delta, finish: Option<&str>) -> Event {
        if let Some(choice) = self.0.choices.first_mut() {
            choice.delta = delta;
            choice.finish_reason = finish.map(str::to_string);
        }
        sse(&self.0)
    }

    /// The event of the last chunk, which has no choice and carries the usage.
    fn usage(mut self, usage: ChatUsage) -> Event {
        self.0.choices.clear();
        self.0.usage = Some(usage);
        sse(&self.0)
    }
}

fn sse(chunk: &ChatChunk) -> Event {
    // Written whole, then framed: much faster than `Event::json_data`'s many small writes.
    // Cannot fail (a chunk has no map keyed by anything but strings).
    Event::default().data(serde_json::to_string(chunk).unwrap_or_default())
}

fn usage(prompt: usize, completion: usize) -> ChatUsage {
    ChatUsage::new(prompt as u64, completion as u64)
}

fn validate_chat(r: &ChatRequest) -> ApiResult<(Vec<Message>, GenerationParams)> {
    if r.messages.is_empty() {
        return Err(invalid_param("messages", "`messages` must not be empty"));
    }
    if r.messages.len() > MAX_MESSAGES {
        return Err(invalid_param(
            "messages",
            format!("at most {MAX_MESSAGES} messages"),
        ));
    }
    let mut messages = Vec::with_capacity(r.messages.len());
    for (i, m) in r.messages.iter().enumerate() {
        if !matches!(
            m.role.as_str(),
            "system" | "developer" | "user" | "assistant"
        ) {
            return Err(invalid_param(
                &format!("messages[{i}].role"),
                format!(
                    "role {:?} is not supported (system, developer, user, assistant)",
                    m.role
                ),
            ));
        }
        let content = match &m.content {
            None => String::new(),
            Some(Content::Text(s)) => s.clone(),
            Some(Content::Parts(parts)) => {
                let mut out = String::new();
                for (j, p) in parts.iter().enumerate() {
                    match (p.kind.as_str(), &p.text) {
                        ("text", Some(t)) => out.push_str(t),
                        _ => {
                            return Err(invalid_param(
                                &format!("messages[{i}].content[{j}]"),
                                "only text content parts are supported by this model",
                            ));
                        }
                    }
                }
                out
            }
        };
        messages.push(Message {
            role: m.role.clone(),
            content,
        });
    }
    if r.n.is_some_and(|n| n != 1) {
        return Err(invalid_param("n", "only n = 1 is supported"));
    }
    if r.logprobs == Some(true) {
        return Err(invalid_param("logprobs", "logprobs are not supported"));
    }
    if let Some(f) = &r.response_format
        && f.get("type").and_then(Value::as_str) != Some("text")
    {
        return Err(invalid_param(
            "response_format",
            "only {\"type\": \"text\"} is supported by this model",
        ));
    }
    let temperature = r.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(invalid_param("temperature", "must be between 0 and 2"));
    }
    let top_p = r.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(invalid_param(
            "top_p",
            "must be greater than 0 and at most 1",
        ));
    }
    let max_tokens = r.max_completion_tokens.or(r.max_tokens);
    if max_tokens == Some(0) {
        return Err(invalid_param("max_tokens", "must be at least 1"));
    }
    let stop = match &r.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s.clone()],
        Some(Stop::Many(v)) => v.clone(),
    };
    if stop.len() > MAX_STOP {
        return Err(invalid_param(
            "stop",
            format!("at most {MAX_STOP} sequences"),
        ));
    }
    for (name, value) in [
        ("frequency_penalty", r.frequency_penalty),
        ("presence_penalty", r.presence_penalty),
    ] {
        if let Some(v) = value
            && !(-2.0..=2.0).contains(&v)
        {
            return Err(invalid_param(name, "must be between -2 and 2"));
        }
    }
    Ok((
        messages,
        GenerationParams {
            max_tokens,
            temperature,
            top_p,
            seed: r.seed,
            stop,
            frequency_penalty: r.frequency_penalty.unwrap_or(0.0),
            presence_penalty: r.presence_penalty.unwrap_or(0.0),
        },
    ))
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Decodes an OpenAI request body; an unknown field is refused as OpenAI refuses it.
pub(crate) fn openai_parse<T: serde::de::DeserializeOwned>(body: Value) -> ApiResult<T> {
    serde_path_to_error::deserialize(body).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.inner().to_string();
        if let Some(field) = inner
            .strip_prefix("unknown field `")
            .and_then(|r| r.split('`').next())
        {
            return unknown_parameter(field);
        }
        if path == "." || path.is_empty() {
            invalid_param("", inner)
        } else {
            invalid_param(&path, format!("{path}: {inner}"))
        }
    })
}

/// A request argument the route does not know, refused the way OpenAI refuses it.
pub(crate) fn unknown_parameter(name: &str) -> ApiError {
    let mut e = invalid_param(
        name,
        format!("Unrecognized request argument supplied: {name}"),
    );
    e.code = "unknown_parameter";
    e
}

/// Refuses the first form field not in `known` (OpenAI's multipart routes are strict too).
pub(crate) fn check_form_fields(form: &crate::extract::Form, known: &[&str]) -> ApiResult<()> {
    match form
        .fields
        .iter()
        .find(|(n, _)| !known.contains(&n.as_str()))
    {
        Some((name, _)) => Err(unknown_parameter(name)),
        None => Ok(()),
    }
}

pub(crate) fn invalid_param(param: &str, message: impl Into<String>) -> ApiError {
    let mut e = ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message);
    if !param.is_empty() {
        e.param = Some(param.to_string());
    }
    e
}

fn random_hex() -> String {
    let mut bytes = [0u8; 12];
    rand::fill(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answers as the handlers wrote them before `marquee-types` had their shapes (as
    /// `serde_json` maps): the bytes on the wire must not have changed.
    #[test]
    fn answers_are_the_bytes_they_were() {
        let v = vec![0.1f32, -0.25, 1e-8, 3.0, f32::MIN_POSITIVE];
        let old = json!({
            "object": "list",
            "data": [
                json!({"object": "embedding", "index": 0, "embedding": json!(&v)}),
                json!({"object": "embedding", "index": 1, "embedding": json!("AACAPw==")}),
            ],
            "model": "all-minilm-l6-v2",
            "usage": {"prompt_tokens": 9, "total_tokens": 9},
        });
        let new = Embeddings::new(
            "all-minilm-l6-v2",
            vec![
                Embedding::new(0, EmbeddingVector::Float(v.clone())),
                Embedding::new(1, EmbeddingVector::Base64("AACAPw==".into())),
            ],
            9,
        );
        assert_eq!(serde_json::to_string(&new).unwrap(), old.to_string());

        let fingerprint = format!("marquee-{}", env!("CARGO_PKG_VERSION"));
        assert_eq!(SYSTEM_FINGERPRINT, fingerprint);
        let old_usage = |p: usize, c: usize| json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c});
        let old = json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_700_000_000u64,
            "model": "smollm2-135m-instruct",
            "system_fingerprint": fingerprint,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "Jaws \"1975\"\n", "refusal": null},
                "logprobs": null,
                "finish_reason": "length",
            }],
            "usage": old_usage(12, 4),
        });
        let new = ChatCompletion::new(
            "chatcmpl-1",
            1_700_000_000,
            "smollm2-135m-instruct",
            Some(SYSTEM_FINGERPRINT.to_string()),
            AssistantMessage::new("Jaws \"1975\"\n"),
            "length",
            usage(12, 4),
        );
        assert_eq!(serde_json::to_string(&new).unwrap(), old.to_string());

        let old_chunk = |delta: Value, finish: Option<&str>| {
            json!({
                "id": "chatcmpl-2",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000u64,
                "model": "m",
                "system_fingerprint": fingerprint,
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            })
        };
        let mut last = old_chunk(json!({}), None);
        last["choices"] = json!([]);
        last["usage"] = old_usage(3, 2);
        let old = [
            old_chunk(json!({"role": "assistant", "content": ""}), None),
            old_chunk(json!({"content": " shark"}), None),
            old_chunk(json!({}), Some("stop")),
            last,
        ];
        let mut chunk = ChatChunk::new(
            "chatcmpl-2",
            1_700_000_000,
            "m",
            Some(SYSTEM_FINGERPRINT.to_string()),
        );
        let mut new = Vec::new();
        for (delta, finish) in [
            (
                Delta {
                    content: Some(String::new()),
                    role: Some("assistant".into()),
                },
                None,
            ),
            (
                Delta {
                    content: Some(" shark".into()),
                    role: None,
                },
                None,
            ),
            (Delta::default(), Some("stop")),
        ] {
            chunk.choices[0].delta = delta;
            chunk.choices[0].finish_reason = finish.map(str::to_string);
            new.push(serde_json::to_string(&chunk).unwrap());
        }
        chunk.choices.clear();
        chunk.usage = Some(usage(3, 2));
        new.push(serde_json::to_string(&chunk).unwrap());
        let old: Vec<String> = old.iter().map(Value::to_string).collect();
        assert_eq!(new, old);
    }

    /// What the Rust SDK sends is a request this route takes.
    #[test]
    fn the_sdk_request_is_accepted() {
        let mut request = marquee_core::ChatRequest::new(
            "m",
            vec![
                marquee_core::ChatMessage::system("Be brief."),
                marquee_core::ChatMessage::user("A shark film?"),
                marquee_core::ChatMessage::assistant("Jaws."),
                marquee_core::ChatMessage::user("Another?"),
            ],
        )
        .max_tokens(8)
        .temperature(0.5)
        .seed(7);
        request.top_p = Some(0.9);
        request.stop = vec!["\n".into()];
        let mut body = serde_json::to_value(&request).unwrap();
        body["stream"] = true.into();
        body["stream_options"] = json!({"include_usage": true});
        let parsed: ChatRequest = match openai_parse(body) {
            Ok(r) => r,
            Err(e) => panic!("refused: {}", e.body()),
        };
        let Ok((messages, params)) = validate_chat(&parsed) else {
            panic!("refused")
        };
        assert_eq!(messages.len(), 4);
        assert_eq!(
            (params.max_tokens, params.seed, params.stop),
            (Some(8), Some(7), vec!["\n".to_string()])
        );
    }
}
