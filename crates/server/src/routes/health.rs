//! Liveness and readiness, the only routes that never need a key.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::AppState;

/// The process is up and answering.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "getHealth",
    summary = "Liveness",
    description = "The process is up and answering.",
    security(()),
    responses((status = 200, description = "Up", body = crate::openapi::Health)),
    extensions(("x-required-scope" = json!("none"))),
)]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The store answers and every tenant with data has a trained model: 200, else 503. The body
/// says which part is not ready, and lists the loaded models (one that failed to load is listed
/// as `failed` with its error; it does not make the server unready, since everything else
/// serves). Tenants are customers: without the operator key only their count is shown (the
/// probe needs no key), with it each tenant's model.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    operation_id = "getReadiness",
    summary = "Readiness",
    description = "Ready when the store answers and every tenant with data has a trained model. Without the operator's key only the number of tenants is shown; with it, each tenant's model.",
    security((), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Ready", body = crate::openapi::Readiness),
        (status = 503, description = "Not ready: the body says which part", body = crate::openapi::Readiness),
    ),
    extensions(("x-required-scope" = json!("none"))),
)]
pub async fn readyz(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    let operator = match crate::access::presented_key(&headers) {
        Ok(Some(secret)) => state
            .service
            .authenticate(Some(&secret), Default::default())
            .await
            .is_ok_and(|c| c.is_operator()),
        _ => false,
    };
    let r = state.service.readiness().await;
    let not_ready = r.tenants.iter().filter(|t| t.waiting_for_model).count();
    let recommenders = if operator {
        json!(r.tenants)
    } else {
        json!({"tenants": r.tenants.len(), "not_ready": not_ready})
    };
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
            "recommenders": recommenders,
            "models": state.service.models().models().iter().map(|m| json!({
                "name": m.name,
                "kind": m.kind,
                "status": m.status,
                "error": m.error,
            })).collect::<Vec<_>>(),
        })),
    )
}
