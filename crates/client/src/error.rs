//! One error type for every call.
//!
//! A caller mostly wants to know *whose* fault a failure is and whether trying again can help:
//! [`Error::Api`] is the server's answer (with its stable `code`, e.g. `not_found`,
//! `missing_scope`, `rate_limit_exceeded`), [`Error::Transport`] and [`Error::Timeout`] mean the
//! answer never arrived, [`Error::Decode`] means it arrived in a shape this client does not
//! understand (a version mismatch), and [`Error::InvalidArgument`] means nothing was sent because
//! the arguments could not be valid. No variant ever holds the API key.

use std::time::Duration;

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error status and Marquee's error body
    /// `{"error": {"code", "message", "type", "param"}}`.
    #[error("{status} {code}: {message}{}", param.as_deref().map(|p| format!(" (param `{p}`)")).unwrap_or_default())]
    Api {
        /// The HTTP status (401, 403, 404, 422, 429, 503, …).
        status: u16,
        /// The server's machine-readable code (`unauthorized`, `missing_scope`, `not_found`,
        /// `invalid_request`, `invalid_batch`, `rate_limit_exceeded`, …). Answers without
        /// Marquee's body (a proxy's) get `http_<status>`.
        code: String,
        /// The server's explanation, for people.
        message: String,
        /// The request field at fault, when the server names one.
        param: Option<String>,
        /// How long the server asked the caller to wait (`Retry-After`, on 429 and 503).
        retry_after: Option<Duration>,
    },
    /// The request could not be sent or the answer could not be read (connection refused or
    /// reset, DNS, TLS).
    #[error("transport error: {0}")]
    Transport(#[source] reqwest::Error),
    /// No complete answer within the configured timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The answer was not the JSON this client expects.
    #[error("cannot decode the answer to {what}: {message}")]
    Decode {
        /// The call (`GET /v1/items/{id}`), without query or key.
        what: String,
        message: String,
    },
    /// An argument was refused before anything was sent.
    #[error("invalid argument `{param}`: {message}")]
    InvalidArgument { param: String, message: String },
    /// A chunked upload stopped at a chunk the server refused or that could not be sent. The
    /// chunks before it were committed; resending everything is safe (uploads are idempotent).
    #[error(
        "batch stopped after {accepted} accepted, in the chunk starting at element {chunk_start}: {source}"
    )]
    Batch {
        /// Elements the server accepted before the failing chunk.
        accepted: usize,
        /// Index (in the caller's slice) of the failing chunk's first element; the server's
        /// message counts elements from there.
        chunk_start: usize,
        source: Box<Error>,
    },
}

impl Error {
    /// A stable code for the failure: the server's `code` for [`Error::Api`]; otherwise
    /// `transport_error`, `timeout`, `decode_error` or `invalid_argument`.
    pub fn code(&self) -> &str {
        match self {
            Error::Api { code, .. } => code,
            Error::Transport(_) => "transport_error",
            Error::Timeout(_) => "timeout",
            Error::Decode { .. } => "decode_error",
            Error::InvalidArgument { .. } => "invalid_argument",
            Error::Batch { source, .. } => source.code(),
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            Error::Batch { source, .. } => source.status(),
            _ => None,
        }
    }

    /// The server's `Retry-After`, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api { retry_after, .. } => *retry_after,
            Error::Batch { source, .. } => source.retry_after(),
            _ => None,
        }
    }

    pub(crate) fn invalid(param: &str, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            param: param.to_string(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
