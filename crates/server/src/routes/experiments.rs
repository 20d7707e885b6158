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

#[utoipa::path(
    post,
    path = "/v1/experiments",
    tag = "experiments",
    operation_id = "createExperiment",
    summary = "Start an A/B experiment",
    description = "Splits the tenant's users between the variants by a stable hash of their id; each list served carries a `recommendation_id` naming the variant. A tenant runs one experiment at a time.",
    request_body = crate::openapi::ExperimentInput,
    responses(
        (status = 201, description = "The experiment, running", body = crate::openapi::Experiment),
        (status = 409),
    ),
    extensions(("x-required-scope" = json!("experiments"))),
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiJson(input): ApiJson<ExperimentInput>,
) -> ApiResult<(StatusCode, Json<Experiment>)> {
    let tenant = caller.tenant_for(Capability::Experiments)?;
    let experiment = state.service.create_experiment(tenant, input).await?;
    Ok((StatusCode::CREATED, Json(experiment)))
}

#[utoipa::path(
    get,
    path = "/v1/experiments",
    tag = "experiments",
    operation_id = "listExperiments",
    summary = "List experiments",
    responses((status = 200, description = "The tenant's experiments", body = crate::openapi::ExperimentList)),
    extensions(("x-required-scope" = json!("experiments"))),
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::Experiments)?;
    Ok(Json(
        json!({"experiments": state.service.list_experiments(tenant).await?}),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/experiments/{id}",
    tag = "experiments",
    operation_id = "getExperiment",
    summary = "Get an experiment",
    params(("id" = String, Path, description = "The experiment's id.")),
    responses(
        (status = 200, description = "The experiment", body = crate::openapi::Experiment),
        (status = 404),
    ),
    extensions(("x-required-scope" = json!("experiments"))),
)]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Experiment>> {
    let tenant = caller.tenant_for(Capability::Experiments)?;
    Ok(Json(state.service.get_experiment(tenant, &id).await?))
}

#[utoipa::path(
    post,
    path = "/v1/experiments/{id}/stop",
    tag = "experiments",
    operation_id = "stopExperiment",
    summary = "Stop an experiment",
    description = "Every user gets the tenant's model again; the results stay readable.",
    params(("id" = String, Path, description = "The experiment's id.")),
    responses(
        (status = 200, description = "The experiment, stopped", body = crate::openapi::Experiment),
        (status = 404),
    ),
    extensions(("x-required-scope" = json!("experiments"))),
)]
pub async fn stop(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Experiment>> {
    let tenant = caller.tenant_for(Capability::Experiments)?;
    Ok(Json(state.service.stop_experiment(tenant, &id).await?))
}

#[utoipa::path(
    get,
    path = "/v1/experiments/{id}/results",
    tag = "experiments",
    operation_id = "getExperimentResults",
    summary = "An experiment's results",
    description = "Impressions, clicks and conversions per variant, each compared with the first (the control) by a two-proportion z-test.",
    params(("id" = String, Path, description = "The experiment's id.")),
    responses(
        (status = 200, description = "The results", body = crate::openapi::ExperimentResults),
        (status = 404),
    ),
    extensions(("x-required-scope" = json!("experiments"))),
)]
pub async fn results(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ExperimentResults>> {
    let tenant = caller.tenant_for(Capability::Experiments)?;
    Ok(Json(state.service.experiment_results(tenant, &id).await?))
}
