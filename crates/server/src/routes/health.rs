//! Liveness and readiness, the only routes that never need a key.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::AppState;

/// The process is up and answering.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The store answers and every tenant with data has a trained model: 200, else 503. The body
/// says which part is not ready, and lists the loaded models (one that failed to load is listed
/// as `failed` with its error; it does not make the server unready, since everything else
/// serves).
pub async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    let r = state.service.readiness().await;
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if r.ready { "ready" } else { "not_ready" },
            "store": if r.store { "ok" } else { "unreachable" },
            "recommenders": r.tenants,
            "models": state.service.models().models().iter().map(|m| json!({
                "name": m.name,
                "kind": m.kind,
                "status": m.status,
                "error": m.error,
            })).collect::<Vec<_>>(),
        })),
    )
}
