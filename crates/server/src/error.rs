//! One error shape for every route: `{"error": {"code": "...", "message": "..."}}`.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use marquee_core::ServiceError;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The request field at fault, when one is (OpenAI's `param`).
    pub param: Option<String>,
    /// Seconds a client should wait before retrying (503 when a model is busy).
    pub retry_after: Option<u64>,
    /// More headers for the answer (the `x-ratelimit-*` of a 429).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            param: None,
            retry_after: None,
            headers: Vec::new(),
        }
    }

    /// The JSON body: `{"error": {"code", "message", "type", "param"}}` — Marquee's shape, which
    /// is also OpenAI's (`type` says whether the caller or the server is at fault).
    pub fn body(&self) -> serde_json::Value {
        let kind = if self.status.is_server_error() {
            "server_error"
        } else {
            match self.status {
                StatusCode::UNAUTHORIZED => "authentication_error",
                StatusCode::FORBIDDEN => "permission_error",
                StatusCode::NOT_FOUND => "not_found_error",
                StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
                _ => "invalid_request_error",
            }
        };
        json!({"error": {
            "code": self.code,
            "message": self.message,
            "type": kind,
            "param": self.param,
        }})
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }

    pub fn not_found_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such route")
    }
}

impl From<marquee_core::ModelError> for ApiError {
    fn from(e: marquee_core::ModelError) -> Self {
        ServiceError::Model(e).into()
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        use marquee_core::ModelError;
        let retry_after = match &e {
            ServiceError::Model(ModelError::Overloaded { retry_after_secs }) => {
                Some(*retry_after_secs)
            }
            ServiceError::RateLimited { decision, .. } => Some(
                marquee_core::metering::retry_after_secs(decision.retry_after),
            ),
            ServiceError::QuotaExceeded {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            ServiceError::LedgerUnavailable => Some(1),
            _ => None,
        };
        let headers = match &e {
            ServiceError::RateLimited { what, decision } => {
                crate::access::rate_limit_headers(what, decision)
            }
            _ => Vec::new(),
        };
        let param = match &e {
            ServiceError::Invalid { field, .. } => Some(field.clone()),
            ServiceError::Model(ModelError::InputTooLong { .. }) => Some("input".to_string()),
            ServiceError::Model(ModelError::ContextTooLong { .. }) => Some("messages".to_string()),
            ServiceError::Model(ModelError::InvalidInput { param, .. }) => {
                param.map(str::to_string)
            }
            _ => None,
        };
        let status = match &e {
            ServiceError::Model(m) => match m {
                ModelError::NotFound(_) => StatusCode::NOT_FOUND,
                ModelError::WrongKind { .. }
                | ModelError::InputTooLong { .. }
                | ModelError::ContextTooLong { .. }
                | ModelError::InvalidInput { .. } => StatusCode::BAD_REQUEST,
                // Nobody is listening any more; the status is for the log.
                ModelError::Cancelled => StatusCode::SERVICE_UNAVAILABLE,
                ModelError::Unavailable { .. } | ModelError::Overloaded { .. } => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                ModelError::Load(_) | ModelError::Inference(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ServiceError::NotFound { .. } => StatusCode::NOT_FOUND,
            ServiceError::Invalid { .. } | ServiceError::InvalidBatchElement { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ServiceError::Conflict(_) => StatusCode::CONFLICT,
            ServiceError::Unauthorized => StatusCode::UNAUTHORIZED,
            ServiceError::Forbidden(_)
            | ServiceError::MissingScope(_)
            | ServiceError::ModelNotAllowed(_)
            | ServiceError::OriginNotAllowed(_) => StatusCode::FORBIDDEN,
            ServiceError::RateLimited { .. } | ServiceError::QuotaExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ServiceError::LedgerUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ServiceError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServiceError::Store(_) | ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            // Details go to the log, not to the caller.
            tracing::error!(error = %e, "request failed");
            "internal error; see the server log".to_string()
        } else {
            e.to_string()
        };
        ApiError {
            status,
            code: e.code(),
            message,
            param,
            retry_after,
            headers,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
