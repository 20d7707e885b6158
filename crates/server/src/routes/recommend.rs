//! Recommendations, similar and popular items, and training.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use marquee_core::{AlgorithmConfig, RecommendOptions, Service, TrainingStatus};
use marquee_platform::Capability;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::billing::{billed, one_recommendation};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth, parse_json};

/// Query parameters shared by the recommend routes.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RecommendParams {
    /// How many items (1–1000).
    #[serde(default = "default_n")]
    #[param(default = 10, minimum = 1, maximum = 1000)]
    pub(crate) n: usize,
    /// Comma-separated; items in any of them (or all, with `category_match=all`).
    #[serde(default)]
    pub(crate) category: Option<String>,
    #[serde(default)]
    #[param(inline)]
    pub(crate) category_match: CategoryMatch,
    /// Comma-separated item ids never to return.
    #[serde(default)]
    pub(crate) exclude: Option<String>,
    /// Leave out items the user already engaged with.
    #[serde(default = "yes")]
    #[param(default = true)]
    pub(crate) exclude_seen: bool,
    /// Expression over item fields and metadata, e.g. `year >= 1990 AND NOT "Horror" IN categories`.
    #[serde(default)]
    pub(crate) filter: Option<String>,
    /// 0..1: trade relevance for variety.
    #[serde(default)]
    pub(crate) diversity: Option<f32>,
    /// At most this many items per primary (first) category.
    #[serde(default)]
    pub(crate) max_per_category: Option<usize>,
    /// 0..0.5: share of the list for exploration.
    #[serde(default)]
    pub(crate) exploration: Option<f32>,
}

/// Whether an item must be in any (default) or all of the `category` list.
#[derive(Deserialize, Default, Clone, Copy, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CategoryMatch {
    #[default]
    Any,
    All,
}

/// A JSON body already rendered (see `RecommendationList::to_json`).
fn json_answer(body: Vec<u8>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
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
#[utoipa::path(
    get,
    path = "/v1/recommend/{user_id}",
    tag = "recommendations",
    operation_id = "recommendForUser",
    summary = "Recommendations for a user",
    description = "What the user is likely to engage with next, from their history, filtered and re-ranked as asked. Billed as one recommendation request.",
    params(("user_id" = String, Path, description = "The user's id; a user without history gets popular items."), RecommendParams),
    responses((status = 200, description = "Recommended items, best first, each with the reason it was chosen", body = [marquee_core::Recommendation])),
    extensions(("x-required-scope" = json!("recommend"))),
)]
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
    billed(charge, one_recommendation(), json_answer(list.to_json())).await
}

/// `GET /recommend/{user_id}/{item_id}` (and under `/v1`): what to watch after `item_id`.
#[utoipa::path(
    get,
    path = "/v1/recommend/{user_id}/{item_id}",
    tag = "recommendations",
    operation_id = "recommendForUserInContext",
    summary = "What to watch after an item",
    description = "Recommendations for a user who is looking at (or just finished) `item_id`, in the context of that item. An unknown user gets the item's neighbours; an unknown item is a 404. Also served at `/recommend/{user_id}/{item_id}`.",
    params(("user_id" = String, Path, description = "The user's id; a user without history gets popular items."), ("item_id" = String, Path, description = "The item's id."), RecommendParams),
    responses((status = 200, description = "Recommended items, best first, each with the reason it was chosen", body = [marquee_core::Recommendation]), (status = 404)),
    extensions(("x-required-scope" = json!("recommend"))),
)]
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
    billed(charge, one_recommendation(), json_answer(list.to_json())).await
}

#[utoipa::path(
    get,
    path = "/v1/items/{item_id}/similar",
    tag = "recommendations",
    operation_id = "similarItems",
    summary = "Items similar to an item",
    description = "\"More like this\": items most similar by co-engagement, or by content for items the model has not seen yet.",
    params(("item_id" = String, Path, description = "The item's id."), RecommendParams),
    responses((status = 200, description = "Recommended items, best first, each with the reason it was chosen", body = [marquee_core::Recommendation]), (status = 404)),
    extensions(("x-required-scope" = json!("recommend"))),
)]
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

#[utoipa::path(
    get,
    path = "/v1/popular",
    tag = "recommendations",
    operation_id = "popularItems",
    summary = "Popular items",
    description = "Items by recent engagement (time-decayed).",
    params(RecommendParams),
    responses((status = 200, description = "Recommended items, best first, each with the reason it was chosen", body = [marquee_core::Recommendation])),
    extensions(("x-required-scope" = json!("recommend"))),
)]
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

#[utoipa::path(
    get,
    path = "/v1/trending",
    tag = "recommendations",
    operation_id = "trendingItems",
    summary = "Trending items",
    description = "Items gaining attention: positive feedback in the last week against the weekly rate of the four weeks before.",
    params(RecommendParams),
    responses((status = 200, description = "Recommended items, best first, each with the reason it was chosen", body = [marquee_core::Recommendation])),
    extensions(("x-required-scope" = json!("recommend"))),
)]
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
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = SessionRecommendRequest)]
#[serde(deny_unknown_fields)]
pub struct SessionBody {
    /// The items the session engaged with, in any order.
    items: Vec<String>,
    /// How many items (1–1000).
    #[serde(default = "default_n")]
    #[schema(default = 10, minimum = 1, maximum = 1000)]
    n: usize,
    /// Items in any of these categories (or all, with `category_match: all`).
    #[serde(default)]
    category: Option<Vec<String>>,
    #[serde(default)]
    category_match: CategoryMatch,
    /// Item ids never to return.
    #[serde(default)]
    exclude: Vec<String>,
    /// Leave out the session's own items.
    #[serde(default = "yes")]
    #[schema(default = true)]
    exclude_seen: bool,
    /// Expression over item fields and metadata, as in the query of the other routes.
    #[serde(default)]
    filter: Option<String>,
    /// 0..1: trade relevance for variety.
    #[serde(default)]
    diversity: Option<f32>,
    /// At most this many items per primary (first) category.
    #[serde(default)]
    max_per_category: Option<usize>,
    /// 0..0.5: share of the list for exploration.
    #[serde(default)]
    exploration: Option<f32>,
}

#[utoipa::path(
    post,
    path = "/v1/recommend/session",
    tag = "recommendations",
    operation_id = "recommendForSession",
    summary = "Recommendations for an anonymous session",
    description = "From the items a visitor engaged with in this session (no user id, nothing stored).",
    request_body = SessionBody,
    responses((status = 200, description = "Recommended items, best first, each with the reason it was chosen", body = [marquee_core::Recommendation])),
    extensions(("x-required-scope" = json!("recommend"))),
)]
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

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TrainParams {
    /// Wait for training to finish and return the new version.
    #[serde(default)]
    wait: bool,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[schema(as = TrainRequest)]
#[serde(deny_unknown_fields)]
pub struct TrainBody {
    /// An explicit algorithm with its hyper-parameters; the automatic choice when absent.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::AlgorithmConfig>)]
    model: Option<AlgorithmConfig>,
}

/// `POST /v1/models/train[?wait=true]`: train a new model version now.
#[utoipa::path(
    post,
    path = "/v1/models/train",
    tag = "recommendations",
    operation_id = "trainRecommender",
    summary = "Train a new recommender version",
    description = "Trains on the tenant's feedback now (training also runs by itself as feedback arrives). The body may be empty: the algorithm is then chosen automatically.",
    params(TrainParams),
    request_body(content = Option<TrainBody>, description = "Optional"),
    responses(
        (status = 200, description = "Trained (`wait=true`)", body = crate::openapi::Trained),
        (status = 202, description = "Training started", body = crate::openapi::TrainingStarted),
    ),
    extensions(("x-required-scope" = json!("models:train"))),
)]
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

#[utoipa::path(
    get,
    path = "/v1/training",
    tag = "recommendations",
    operation_id = "getTrainingStatus",
    summary = "Training status and model versions",
    responses((status = 200, description = "The serving version, the kept versions and the last error", body = marquee_core::TrainingStatus)),
    extensions(("x-required-scope" = json!("models:train"))),
)]
pub async fn training_status(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
) -> ApiResult<Json<TrainingStatus>> {
    let tenant = caller.tenant_for(Capability::Train)?;
    Ok(Json(state.service.training_status(tenant).await?))
}
