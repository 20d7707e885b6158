//! Catalogue intelligence: semantic search and drafted copy.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use marquee_core::generate::{CopyDraft, CopyRequest};
use marquee_platform::Capability;
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use crate::routes::recommend::{CategoryMatch, RecommendParams};

/// Query of `GET /v1/search`: the text, and the recommend routes' filters.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// What to look for, in words (at most 2,000 characters).
    q: String,
    /// How many items (1–1000).
    #[serde(default = "default_n")]
    #[param(default = 10, minimum = 1, maximum = 1000)]
    n: usize,
    /// Comma-separated; items in any of them (or all, with `category_match=all`).
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    #[param(inline)]
    category_match: CategoryMatch,
    /// Comma-separated item ids never to return.
    #[serde(default)]
    exclude: Option<String>,
    /// Expression over item fields and metadata, e.g. `year >= 1990`.
    #[serde(default)]
    filter: Option<String>,
    /// 0..1: trade relevance for variety.
    #[serde(default)]
    diversity: Option<f32>,
    /// At most this many items per primary (first) category.
    #[serde(default)]
    max_per_category: Option<usize>,
}

fn default_n() -> usize {
    10
}

/// `GET /v1/search?q=…`: items whose text matches the query in meaning, best first.
#[utoipa::path(
    get,
    path = "/v1/search",
    tag = "search",
    operation_id = "searchItems",
    summary = "Semantic search",
    description = "Items whose text (title, description, categories, tags, metadata, image labels) matches the query in meaning, best first, with the recommend routes' filters. Needs an embedding model (503 without one). The answer's `x-marquee-indexed-items` header says how much of the catalogue is indexed yet (`indexed/items`).",
    params(SearchParams),
    responses(
        (status = 200, description = "Matching items, best first", body = [marquee_core::Recommendation]),
        (status = 503),
    ),
    extensions(("x-required-scope" = json!("recommend"))),
)]
pub async fn search(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiQuery(p): ApiQuery<SearchParams>,
) -> ApiResult<Response> {
    let tenant = caller.tenant_for(Capability::Recommend)?;
    let options = RecommendParams {
        n: p.n,
        category: p.category,
        category_match: p.category_match,
        exclude: p.exclude,
        exclude_seen: false,
        filter: p.filter,
        diversity: p.diversity,
        max_per_category: p.max_per_category,
        exploration: None,
    }
    .options();
    let charge = state
        .service
        .charge(&caller, None, crate::billing::one_recommendation())?;
    let (hits, stats) = state.service.search(tenant, &p.q, &options).await?;
    let mut response =
        crate::billing::billed(charge, crate::billing::one_recommendation(), Json(hits)).await?;
    let headers = response.headers_mut();
    if let Ok(v) = format!("{}/{}", stats.indexed, stats.items).parse() {
        headers.insert("x-marquee-indexed-items", v);
    }
    if let Ok(v) = stats.model.parse() {
        headers.insert("x-marquee-model", v);
    }
    Ok(response)
}

/// `POST /v1/items/{id}/generate`: drafts a tagline or synopsis from the item's metadata.
#[utoipa::path(
    post,
    path = "/v1/items/{item_id}/generate",
    tag = "catalogue",
    operation_id = "draftItemCopy",
    summary = "Draft a tagline or synopsis",
    description = "Drafts copy from what the catalogue knows about the item, with a chat model. It is returned for an editor to read, and stored in the item's metadata only with `store: true` (which needs `catalog:write` instead of `catalog:read`).",
    params(("item_id" = String, Path, description = "The item's id.")),
    request_body = crate::openapi::CopyRequest,
    responses(
        (status = 200, description = "The draft", body = crate::openapi::CopyDraft),
        (status = 404),
        (status = 503),
    ),
    extensions(("x-required-scope" = json!("catalog:read models:chat"))),
)]
pub async fn generate(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(item_id): ApiPath<String>,
    ApiJson(request): ApiJson<CopyRequest>,
) -> ApiResult<Response> {
    let tenant = caller.tenant_for(if request.store {
        Capability::CatalogWrite
    } else {
        Capability::CatalogRead
    })?;
    caller.require(Capability::ModelsChat)?;
    let draft: CopyDraft = state
        .service
        .draft_copy(&caller, tenant, &item_id, &request)
        .await?;
    let settlement = draft.settlement.clone();
    let mut response = Json(draft).into_response();
    if let Some(s) = &settlement {
        crate::billing::settlement_headers(&mut response, s);
    }
    Ok(response)
}
