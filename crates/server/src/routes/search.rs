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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    q: String,
    #[serde(default = "default_n")]
    n: usize,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    category_match: CategoryMatch,
    #[serde(default)]
    exclude: Option<String>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    diversity: Option<f32>,
    #[serde(default)]
    max_per_category: Option<usize>,
}

fn default_n() -> usize {
    10
}

/// `GET /v1/search?q=…`: items whose text matches the query in meaning, best first.
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
