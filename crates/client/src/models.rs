//! The model routes in their OpenAI shape: embeddings and chat completions (plain or streamed).
//!
//! These shapes are OpenAI's public API, which Marquee serves unchanged so that OpenAI clients
//! work against it; they are written out here (only the fields Marquee sends) rather than shared
//! with the server, whose handlers build them field by field. Unknown fields are ignored, so a
//! server that adds fields does not break this client.

use serde::{Deserialize, Deserializer, Serialize};

/// `POST /v1/embeddings`: one vector per input, in input order.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Embeddings {
    pub model: String,
    pub data: Vec<Embedding>,
    pub usage: EmbeddingUsage,
}

impl Embeddings {
    /// The vectors, in input order.
    pub fn vectors(&self) -> Vec<&[f32]> {
        let mut data: Vec<&Embedding> = self.data.iter().collect();
        data.sort_by_key(|e| e.index);
        data.into_iter().map(|e| e.embedding.as_slice()).collect()
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Embedding {
    pub index: usize,
    pub embedding: Vec<f32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct EmbeddingUsage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
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

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// `POST /v1/chat/completions` (the `stream` flag is set by the call, not here).
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

/// A whole completion.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct ChatCompletion {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    #[serde(default)]
    pub usage: Option<ChatUsage>,
}

impl ChatCompletion {
    /// The first choice's text.
    pub fn text(&self) -> &str {
        self.choices
            .first()
            .map_or("", |c| c.message.content.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct ChatChoice {
    pub index: usize,
    pub message: ChatMessage,
    /// `stop` or `length`.
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct ChatUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

/// One event of a streamed completion.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct ChatChunk {
    pub id: String,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    /// On the last chunk when usage was asked for.
    #[serde(default)]
    pub usage: Option<ChatUsage>,
}

impl ChatChunk {
    /// The text this chunk adds (empty for role and finish chunks).
    pub fn text(&self) -> &str {
        self.choices
            .first()
            .and_then(|c| c.delta.content.as_deref())
            .unwrap_or("")
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct ChunkChoice {
    pub index: usize,
    pub delta: Delta,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Delta {
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
}

/// Splits a server-sent-events byte stream into the `data` of each event.
#[derive(Default)]
pub(crate) struct SseParser {
    buffer: Vec<u8>,
}

impl SseParser {
    /// Adds bytes; returns the data of every event they complete.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some((end, sep)) = find_event_end(&self.buffer) {
            let raw: Vec<u8> = self.buffer.drain(..end + sep).collect();
            let text = String::from_utf8_lossy(&raw[..end]);
            let mut data = Vec::new();
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix("data:") {
                    data.push(rest.strip_prefix(' ').unwrap_or(rest).to_string());
                }
            }
            if !data.is_empty() {
                events.push(data.join("\n"));
            }
        }
        events
    }
}

/// The end of the first complete event (a blank line) and the separator's length.
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    (0..buf.len()).find_map(|i| {
        if buf[i..].starts_with(b"\r\n\r\n") {
            Some((i, 4))
        } else if buf[i..].starts_with(b"\n\n") {
            Some((i, 2))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_are_split_across_reads() {
        let mut p = SseParser::default();
        assert!(p.push(b"data: {\"a\"").is_empty());
        assert_eq!(
            p.push(b":1}\n\n: keep-alive\n\ndata: [DONE]\n\n"),
            vec!["{\"a\":1}".to_string(), "[DONE]".to_string()]
        );
        assert_eq!(p.push(b"data: x\r\n\r\n"), vec!["x".to_string()]);
    }

    #[test]
    fn chat_requests_leave_out_unset_options() {
        let r = ChatRequest::new("m", vec![ChatMessage::user("hi")]).max_tokens(4);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
        );
    }
}
