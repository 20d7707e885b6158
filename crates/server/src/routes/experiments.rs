//! A/B experiments: create, list, read, stop, results.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use marquee_core::experiments::{Experiment, ExperimentInput, ExperimentResults};
use marquee_platform::Capability;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, Auth};

pub async fn create(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiJson(input): ApiJson<ExperimentInput>,
) -> ApiResult<(StatusCode, Json<Experiment>)> {
    let tenant = caller.tenant_for(Capability::Experiments)?;
    let experiment = state.service.create_experiment(tenant, input).await?;
    Ok((StatusCode::CREATED, Json(experiment)))
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::Experiments)?;
    Ok(Json(
        json!({"experiments": state.service.list_experiments(tenant).await?}),
    ))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Experiment>> {
    let tenant = caller.tenant_for(Capability::Experiments)?;
    Ok(Json(state.service.get_experiment(tenant, &id).await?))
}

pub async fn stop(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Experiment>> {
    let tenant = caller.tenant_for(Capability::Experiments)?;
    Ok(Json(state.service.stop_experiment(tenant, &id).await?))
}

pub async fn results(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ExperimentResults>> {
    let tenant = caller.tenant_for(Capability::Experiments)?;
    Ok(Json(state.service.experiment_results(tenant, &id).await?))
}
