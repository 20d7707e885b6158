//! Recommendations, similar and popular items, and training.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use marquee_core::{AlgorithmConfig, RecommendOptions, Service, TrainingStatus};
use marquee_platform::Capability;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::billing::{billed, one_recommendation};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth, parse_json};

/// Query parameters shared by the recommend routes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendParams {
    #[serde(default = "default_n")]
    pub(crate) n: usize,
    /// Comma-separated; items in any of them (or all, with `category_match=all`).
    #[serde(default)]
    pub(crate) category: Option<String>,
    #[serde(default)]
    pub(crate) category_match: CategoryMatch,
    /// Comma-separated item ids never to return.
    #[serde(default)]
    pub(crate) exclude: Option<String>,
    #[serde(default = "yes")]
    pub(crate) exclude_seen: bool,
    /// Expression over item fields and metadata, e.g. `year >= 1990 AND NOT "Horror" IN categories`.
    #[serde(default)]
    pub(crate) filter: Option<String>,
    /// 0..1: trade relevance for variety.
    #[serde(default)]
    pub(crate) diversity: Option<f32>,
    #[serde(default)]
    pub(crate) max_per_category: Option<usize>,
    /// 0..0.5: share of the list for exploration.
    #[serde(default)]
    pub(crate) exploration: Option<f32>,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum CategoryMatch {
    #[default]
    Any,
    All,
}

fn default_n() -> usize {
    10
}

fn yes() -> bool {
    true
}

fn split_list(s: &Option<String>) -> Vec<String> {
    s.as_deref()
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl RecommendParams {
    pub(crate) fn options(&self) -> RecommendOptions {
        RecommendOptions {
            n: self.n,
            categories: split_list(&self.category),
            all_categories: self.category_match == CategoryMatch::All,
            exclude_seen: self.exclude_seen,
            exclude: split_list(&self.exclude),
            filter: self.filter.clone(),
            diversity: self.diversity,
            max_per_category: self.max_per_category,
            exploration: self.exploration,
        }
    }
}

/// `GET /v1/recommend/{user_id}`: a JSON array of recommended items for the user.
pub async fn for_user(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(user_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<RecommendParams>,
) -> ApiResult<Response> {
    let tenant = caller.tenant_for(Capability::Recommend)?;
    let charge = state.service.charge(&caller, None, one_recommendation())?;
    let list = state
        .service
        .recommend(tenant, &user_id, None, &params.options())?;
    billed(charge, one_recommendation(), Json(list)).await
}

/// `GET /recommend/{user_id}/{item_id}` (and under `/v1`): what to watch after `item_id`.
pub async fn for_user_in_context(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath((user_id, item_id)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<RecommendParams>,
) -> ApiResult<Response> {
    let tenant = caller.tenant_for(Capability::Recommend)?;
    let charge = state.service.charge(&caller, None, one_recommendation())?;
    let list = state
        .service
        .recommend(tenant, &user_id, Some(&item_id), &params.options())?;
    billed(charge, one_recommendation(), Json(list)).await
}

pub async fn similar(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(item_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<RecommendParams>,
) -> ApiResult<Response> {
    let tenant = caller.tenant_for(Capability::Recommend)?;
    let charge = state.service.charge(&caller, None, one_recommendation())?;
    let list = state
        .service
        .similar_items(tenant, &item_id, &params.options())?;
    billed(charge, one_recommendation(), Json(list)).await
}

pub async fn popular(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiQuery(params): ApiQuery<RecommendParams>,
) -> ApiResult<Response> {
    let tenant = caller.tenant_for(Capability::Recommend)?;
    let charge = state.service.charge(&caller, None, one_recommendation())?;
    let list = state.service.popular(tenant, &params.options())?;
    billed(charge, one_recommendation(), Json(list)).await
}

pub async fn trending(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiQuery(params): ApiQuery<RecommendParams>,
) -> ApiResult<Response> {
    let tenant = caller.tenant_for(Capability::Recommend)?;
    let charge = state.service.charge(&caller, None, one_recommendation())?;
    let list = state.service.trending(tenant, &params.options())?;
    billed(charge, one_recommendation(), Json(list)).await
}

/// Body of `POST /v1/recommend/session`: the items an anonymous session engaged with, and the
/// same options as the query parameters of the other recommend routes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionBody {
    items: Vec<String>,
    #[serde(default = "default_n")]
    n: usize,
    #[serde(default)]
    category: Option<Vec<String>>,
    #[serde(default)]
    category_match: CategoryMatch,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default = "yes")]
    exclude_seen: bool,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    diversity: Option<f32>,
    #[serde(default)]
    max_per_category: Option<usize>,
    /// 0..0.5: share of the list for exploration.
    #[serde(default)]
    exploration: Option<f32>,
}

pub async fn session(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<SessionBody>,
) -> ApiResult<Response> {
    let tenant = caller.tenant_for(Capability::Recommend)?;
    let options = RecommendOptions {
        n: body.n,
        categories: body.category.unwrap_or_default(),
        all_categories: body.category_match == CategoryMatch::All,
        exclude_seen: body.exclude_seen,
        exclude: body.exclude,
        filter: body.filter,
        diversity: body.diversity,
        max_per_category: body.max_per_category,
        exploration: body.exploration,
    };
    let charge = state.service.charge(&caller, None, one_recommendation())?;
    let list = state
        .service
        .recommend_session(tenant, &body.items, &options)?;
    billed(charge, one_recommendation(), Json(list)).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TrainParams {
    /// Wait for training to finish and return the new version.
    #[serde(default)]
    wait: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TrainBody {
    /// An explicit algorithm with its hyper-parameters; the automatic choice when absent.
    #[serde(default)]
    model: Option<AlgorithmConfig>,
}

/// `POST /v1/models/train[?wait=true]`: train a new model version now.
pub async fn train(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiQuery(params): ApiQuery<TrainParams>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let tenant = caller.tenant_for(Capability::Train)?.clone();
    let body: TrainBody = if body.is_empty() {
        TrainBody::default()
    } else {
        parse_json(&body)?
    };
    let config = body.model;
    if let Some(c) = &config {
        c.validate()
            .map_err(|e| ApiError::unprocessable(format!("model: {e}")))?;
    }
    if params.wait {
        let info = state.service.train_and_wait(&tenant, config).await?;
        return Ok((
            StatusCode::OK,
            Json(json!({"status": "trained", "model": info})),
        ));
    }
    let service = state.service.clone();
    tokio::spawn(async move {
        if let Err(e) = Service::train(&service, &tenant, config).await {
            tracing::warn!(error = %e, "requested training failed");
        }
    });
    Ok((StatusCode::ACCEPTED, Json(json!({"status": "started"}))))
}

pub async fn training_status(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
) -> ApiResult<Json<TrainingStatus>> {
    let tenant = caller.tenant_for(Capability::Train)?;
    Ok(Json(state.service.training_status(tenant).await?))
}
