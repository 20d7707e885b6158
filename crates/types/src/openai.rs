//! The model routes' shapes, in OpenAI's API: embeddings, and chat completions whole or streamed.
//!
//! Marquee serves OpenAI's API unchanged so that OpenAI's clients work against it. The server
//! writes its answers with these types and the Rust SDK reads them with the same ones.
//!
//! Fields are declared in alphabetical order because that is the order the server has always
//! written them in (it built them as `serde_json` maps, which sort their keys): the bytes on the
//! wire stay what OpenAI clients and recorded answers know. Answers are read leniently, since
//! Marquee relays an upstream model's answer as the upstream wrote it: what an OpenAI-compatible
//! server may leave out has a default, and unknown fields are ignored.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Embeddings

/// `POST /v1/embeddings`: one vector per input, in input order.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = EmbeddingList))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Embeddings {
    pub data: Vec<Embedding>,
    pub model: String,
    #[serde(default = "Embeddings::object")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, required = true, examples("list")))]
    pub object: Cow<'static, str>,
    pub usage: EmbeddingUsage,
}

impl Embeddings {
    /// The value of `object`.
    pub const OBJECT: &'static str = "list";

    fn object() -> Cow<'static, str> {
        Cow::Borrowed(Self::OBJECT)
    }

    pub fn new(model: impl Into<String>, data: Vec<Embedding>, prompt_tokens: u64) -> Self {
        Embeddings {
            data,
            model: model.into(),
            object: Self::object(),
            usage: EmbeddingUsage {
                prompt_tokens,
                total_tokens: prompt_tokens,
            },
        }
    }

    /// The vectors, in input order (an answer in base64, which the SDK never asks for, has
    /// empty ones).
    pub fn vectors(&self) -> Vec<&[f32]> {
        let mut data: Vec<&Embedding> = self.data.iter().collect();
        data.sort_by_key(|e| e.index);
        data.into_iter()
            .map(|e| e.embedding.as_floats().unwrap_or(&[]))
            .collect()
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    pub embedding: EmbeddingVector,
    /// The input's position in the request.
    pub index: usize,
    #[serde(default = "Embedding::object")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, required = true, examples("embedding")))]
    pub object: Cow<'static, str>,
}

impl Embedding {
    /// The value of `object`.
    pub const OBJECT: &'static str = "embedding";

    fn object() -> Cow<'static, str> {
        Cow::Borrowed(Self::OBJECT)
    }

    pub fn new(index: usize, embedding: EmbeddingVector) -> Self {
        Embedding {
            embedding,
            index,
            object: Self::object(),
        }
    }
}

/// Floats, or with `encoding_format: base64` the little-endian f32 bytes in base64.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingVector {
    /// `encoding_format: float`, the default.
    // Written as each f32's exact value (widened to f64), as the server has always written them.
    Float(#[serde(serialize_with = "widened")] Vec<f32>),
    Base64(String),
}

impl EmbeddingVector {
    /// The floats, unless the vector came in base64.
    pub fn as_floats(&self) -> Option<&[f32]> {
        match self {
            EmbeddingVector::Float(v) => Some(v),
            EmbeddingVector::Base64(_) => None,
        }
    }
}

impl From<Vec<f32>> for EmbeddingVector {
    fn from(v: Vec<f32>) -> Self {
        EmbeddingVector::Float(v)
    }
}

fn widened<S: Serializer>(v: &[f32], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|&x| f64::from(x)))
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingUsage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

// ---------------------------------------------------------------------------------------------
// Chat completions: the request the SDK sends

/// One message of a conversation, as the SDK sends it (the server also takes OpenAI's other
/// forms: content parts, `name`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct ChatMessage {
    /// `system`, `developer`, `user` or `assistant`.
    pub role: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }

    fn new(role: &str, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.to_string(),
            content: content.into(),
        }
    }
}

/// An answer's message, to send back as part of the conversation.
impl From<AssistantMessage> for ChatMessage {
    fn from(m: AssistantMessage) -> Self {
        ChatMessage {
            role: m.role,
            content: m.content,
        }
    }
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// `POST /v1/chat/completions` as the SDK sends it (it sets `stream` itself); the server takes
/// the rest of OpenAI's request too.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl ChatRequest {
    pub fn new(model: impl Into<String>, messages: Vec<ChatMessage>) -> Self {
        ChatRequest {
            model: model.into(),
            messages,
            ..Self::default()
        }
    }

    pub fn max_tokens(mut self, n: usize) -> Self {
        self.max_tokens = Some(n);
        self
    }

    pub fn temperature(mut self, t: f64) -> Self {
        self.temperature = Some(t);
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Chat completions: the answers

/// A whole completion (`stream: false`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct ChatCompletion {
    pub choices: Vec<ChatChoice>,
    /// Unix seconds.
    pub created: u64,
    pub id: String,
    pub model: String,
    #[serde(default = "ChatCompletion::object")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = String, required = true, examples("chat.completion"))
    )]
    pub object: Cow<'static, str>,
    /// The server's version (`marquee-0.1.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub system_fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub usage: Option<ChatUsage>,
}

impl ChatCompletion {
    /// The value of `object`.
    pub const OBJECT: &'static str = "chat.completion";

    fn object() -> Cow<'static, str> {
        Cow::Borrowed(Self::OBJECT)
    }

    /// A completion of one choice, with its usage.
    pub fn new(
        id: impl Into<String>,
        created: u64,
        model: impl Into<String>,
        system_fingerprint: Option<String>,
        message: AssistantMessage,
        finish_reason: impl Into<String>,
        usage: ChatUsage,
    ) -> Self {
        ChatCompletion {
            choices: vec![ChatChoice {
                finish_reason: Some(finish_reason.into()),
                index: 0,
                logprobs: None,
                message,
            }],
            created,
            id: id.into(),
            model: model.into(),
            object: Self::object(),
            system_fingerprint,
            usage: Some(usage),
        }
    }

    /// The first choice's text.
    pub fn text(&self) -> &str {
        self.choices
            .first()
            .map_or("", |c| c.message.content.as_str())
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct ChatChoice {
    /// `stop` or `length`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub finish_reason: Option<String>,
    pub index: usize,
    /// Always `null` (log probabilities are not supported).
    #[serde(default)]
    pub logprobs: Option<Value>,
    pub message: AssistantMessage,
}

/// The message of a completion.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct AssistantMessage {
    #[serde(default, deserialize_with = "null_as_empty")]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub content: String,
    /// Always `null` from Marquee's own models.
    #[serde(default)]
    pub refusal: Option<String>,
    #[serde(default = "AssistantMessage::role")]
    #[cfg_attr(feature = "openapi", schema(required = true, examples("assistant")))]
    pub role: String,
}

impl AssistantMessage {
    fn role() -> String {
        "assistant".to_string()
    }

    pub fn new(content: impl Into<String>) -> Self {
        AssistantMessage {
            content: content.into(),
            refusal: None,
            role: Self::role(),
        }
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct ChatUsage {
    pub completion_tokens: u64,
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

impl ChatUsage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        ChatUsage {
            completion_tokens,
            prompt_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

/// One server-sent event of a streamed completion (`stream: true`): `data: <chunk>` lines,
/// ending with `data: [DONE]`. A failure mid-stream is sent as an error body before `[DONE]`.
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(as = ChatCompletionChunk)
)]
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct ChatChunk {
    /// Empty in the last chunk when `stream_options.include_usage` is set.
    pub choices: Vec<ChunkChoice>,
    /// Unix seconds, the same in every chunk of a completion.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub created: u64,
    pub id: String,
    pub model: String,
    #[serde(default = "ChatChunk::object")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = String, required = true, examples("chat.completion.chunk"))
    )]
    pub object: Cow<'static, str>,
    /// The server's version (`marquee-0.1.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub system_fingerprint: Option<String>,
    /// Only in that last chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ChatUsage>,
}

impl ChatChunk {
    /// The value of `object`.
    pub const OBJECT: &'static str = "chat.completion.chunk";

    fn object() -> Cow<'static, str> {
        Cow::Borrowed(Self::OBJECT)
    }

    /// A chunk of one choice with an empty delta, to fill in.
    pub fn new(
        id: impl Into<String>,
        created: u64,
        model: impl Into<String>,
        system_fingerprint: Option<String>,
    ) -> Self {
        ChatChunk {
            choices: vec![ChunkChoice {
                delta: Delta::default(),
                finish_reason: None,
                index: 0,
                logprobs: None,
            }],
            created,
            id: id.into(),
            model: model.into(),
            object: Self::object(),
            system_fingerprint,
            usage: None,
        }
    }

    /// The text this chunk adds (empty for role and finish chunks).
    pub fn text(&self) -> &str {
        self.choices
            .first()
            .and_then(|c| c.delta.content.as_deref())
            .unwrap_or("")
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct ChunkChoice {
    /// `{"role": "assistant", "content": ""}` first, then `{"content": "…"}` pieces, and `{}`
    /// with the `finish_reason`.
    pub delta: Delta,
    /// `stop` or `length` in the last chunk of the choice; `null` before.
    #[serde(default)]
    pub finish_reason: Option<String>,
    pub index: usize,
    /// Always `null`.
    #[serde(default)]
    pub logprobs: Option<Value>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_requests_leave_out_unset_options() {
        let r = ChatRequest::new("m", vec![ChatMessage::user("hi")]).max_tokens(4);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
        );
    }

    #[test]
    fn answers_are_written_in_openai_field_order_and_read_back() {
        let c = ChatCompletion::new(
            "chatcmpl-1",
            7,
            "m",
            Some("fp".into()),
            AssistantMessage::new("Hi"),
            "stop",
            ChatUsage::new(3, 2),
        );
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(
            text,
            r#"{"choices":[{"finish_reason":"stop","index":0,"logprobs":null,"message":{"content":"Hi","refusal":null,"role":"assistant"}}],"created":7,"id":"chatcmpl-1","model":"m","object":"chat.completion","system_fingerprint":"fp","usage":{"completion_tokens":2,"prompt_tokens":3,"total_tokens":5}}"#
        );
        let back: ChatCompletion = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.text(), "Hi");

        let mut chunk = ChatChunk::new("c", 7, "m", None);
        chunk.choices[0].delta.content = Some("x".into());
        let text = serde_json::to_string(&chunk).unwrap();
        assert_eq!(
            text,
            r#"{"choices":[{"delta":{"content":"x"},"finish_reason":null,"index":0,"logprobs":null}],"created":7,"id":"c","model":"m","object":"chat.completion.chunk"}"#
        );
        assert_eq!(serde_json::from_str::<ChatChunk>(&text).unwrap(), chunk);

        let e = Embeddings::new(
            "e",
            vec![
                Embedding::new(1, vec![0.1].into()),
                Embedding::new(0, vec![0.5, -2.0].into()),
            ],
            4,
        );
        let text = serde_json::to_string(&e).unwrap();
        // Each float's exact value: 0.1f32 is 0.100000001490116…
        assert_eq!(
            text,
            r#"{"data":[{"embedding":[0.10000000149011612],"index":1,"object":"embedding"},{"embedding":[0.5,-2.0],"index":0,"object":"embedding"}],"model":"e","object":"list","usage":{"prompt_tokens":4,"total_tokens":4}}"#
        );
        let back: Embeddings = serde_json::from_str(&text).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.vectors(), vec![&[0.5, -2.0][..], &[0.1][..]]);
    }

    #[test]
    fn what_other_openai_servers_leave_out_is_not_required() {
        let c: ChatCompletion = serde_json::from_str(
            r#"{"id":"x","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null}}]}"#,
        )
        .unwrap();
        assert_eq!((c.text(), c.usage), ("", None));
        assert_eq!(c.object, ChatCompletion::OBJECT);
        let chunk: ChatChunk = serde_json::from_str(
            r#"{"id":"x","model":"m","choices":[{"index":0,"delta":{"content":"a"}}],"usage":null}"#,
        )
        .unwrap();
        assert_eq!(chunk.text(), "a");
        let e: Embeddings = serde_json::from_str(
            r#"{"data":[{"index":0,"embedding":"AAAAPw=="}],"model":"m","usage":{"prompt_tokens":1,"total_tokens":1}}"#,
        )
        .unwrap();
        assert_eq!(
            e.data[0].embedding,
            EmbeddingVector::Base64("AAAAPw==".into())
        );
        assert_eq!(e.vectors(), vec![&[] as &[f32]]);
    }
}
