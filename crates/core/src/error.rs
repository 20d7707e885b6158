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
            ServiceError::Unavailable(_) => "unavailable",
            ServiceError::Store(_) | ServiceError::Internal(_) => "internal_error",
            ServiceError::Model(e) => e.code(),
        }
    }
}
