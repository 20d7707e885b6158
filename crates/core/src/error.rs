//! Errors of the service layer, each with a stable machine-readable code. The HTTP layer maps
//! them to status codes; nothing here knows about HTTP.

use marquee_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The resource does not exist *for this caller* (foreign tenants' data looks absent).
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    /// A field of the request is invalid.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// One element of a batch is invalid; nothing of the batch was applied.
    #[error("element {index} of the batch: {message}")]
    InvalidBatchElement { index: usize, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("this key may not {0}")]
    Forbidden(&'static str),
    /// The key lacks a capability scope.
    #[error("this key lacks the scope `{0}`")]
    MissingScope(&'static str),
    /// The key is restricted to other models.
    #[error("this key may not use the model `{0}`")]
    ModelNotAllowed(String),
    /// A publishable key used from a web origin it does not list.
    #[error("this key may not be used from the origin {0:?}")]
    OriginNotAllowed(String),
    /// Over a rate limit (`what`: requests, tokens or concurrency).
    #[error("rate limit reached for {what}; retry after {retry:?}", retry = decision.retry_after)]
    RateLimited {
        what: &'static str,
        decision: marquee_platform::RateDecision,
    },
    /// A quota or budget of the period is used up (`code`: quota_exceeded, budget_exceeded).
    #[error("{message}")]
    QuotaExceeded {
        code: &'static str,
        message: String,
        retry_after_secs: u64,
    },
    /// The usage ledger cannot be written: billable requests are refused, never served free.
    #[error("usage cannot be recorded right now; the request was not served")]
    LedgerUnavailable,
    #[error("{0}")]
    Unavailable(String),
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
    /// A model refused or failed the request (the HTTP layer maps each case).
    #[error(transparent)]
    Model(#[from] marquee_models::ModelError),
}

impl ServiceError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn not_found(what: &'static str, id: impl Into<String>) -> Self {
        ServiceError::NotFound {
            what,
            id: id.into(),
        }
    }

    /// Stable code for the error body.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::NotFound { .. } => "not_found",
            ServiceError::Invalid { .. } => "invalid_request",
            ServiceError::InvalidBatchElement { .. } => "invalid_batch",
            ServiceError::Conflict(_) => "conflict",
            ServiceError::Unauthorized => "unauthorized",
            ServiceError::Forbidden(_) => "forbidden",
            ServiceError::MissingScope(_) => "missing_scope",
            ServiceError::ModelNotAllowed(_) => "model_not_allowed",
            ServiceError::OriginNotAllowed(_) => "origin_not_allowed",
            ServiceError::RateLimited { .. } => "rate_limit_exceeded",
            ServiceError::QuotaExceeded { code, .. } => code,
            ServiceError::LedgerUnavailable => "ledger_unavailable",
            ServiceError::Unavailable(_) => "unavailable",
            ServiceError::Store(_) | ServiceError::Internal(_) => "internal_error",
            ServiceError::Model(e) => e.code(),
        }
    }
}
