//! Items, users and feedback.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use marquee_core::{FeedbackInput, Item, ItemInput, ItemPatch, User, UserInput};
use marquee_platform::Capability;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth, Batch};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

// ---------------------------------------------------------------------------------------------
// Items

pub async fn list_items(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::CatalogRead)?;
    let (items, next) = state
        .service
        .list_items(tenant, page.cursor.as_deref(), page.limit)
        .await?;
    Ok(Json(json!({"items": items, "next_cursor": next})))
}

pub async fn upsert_items(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    Batch(items): Batch<ItemInput>,
) -> ApiResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::CatalogWrite)?;
    let written = state.service.upsert_items(tenant, items).await?;
    Ok(Json(json!({"upserted": written.len()})))
}

pub async fn get_item(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Item>> {
    let tenant = caller.tenant_for(Capability::CatalogRead)?;
    Ok(Json(state.service.get_item(tenant, &id).await?))
}

pub async fn put_item(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<ItemInput>,
) -> ApiResult<Json<Item>> {
    let tenant = caller.tenant_for(Capability::CatalogWrite)?;
    Ok(Json(state.service.put_item(tenant, &id, input).await?))
}

pub async fn patch_item(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<ItemPatch>,
) -> ApiResult<Json<Item>> {
    let tenant = caller.tenant_for(Capability::CatalogWrite)?;
    Ok(Json(state.service.patch_item(tenant, &id, patch).await?))
}

pub async fn delete_item(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let tenant = caller.tenant_for(Capability::CatalogWrite)?;
    state.service.delete_item(tenant, &id).await?;
    state
        .service
        .audit(&caller, Some(tenant.id), "item.delete", Some(&id), None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Users

pub async fn list_users(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::UsersRead)?;
    let (users, next) = state
        .service
        .list_users(tenant, page.cursor.as_deref(), page.limit)
        .await?;
    Ok(Json(json!({"users": users, "next_cursor": next})))
}

pub async fn upsert_users(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    Batch(users): Batch<UserInput>,
) -> ApiResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::UsersWrite)?;
    let written = state.service.upsert_users(tenant, users).await?;
    Ok(Json(json!({"upserted": written.len()})))
}

pub async fn get_user(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<User>> {
    let tenant = caller.tenant_for(Capability::UsersRead)?;
    Ok(Json(state.service.get_user(tenant, &id).await?))
}

pub async fn put_user(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<UserInput>,
) -> ApiResult<Json<User>> {
    let tenant = caller.tenant_for(Capability::UsersWrite)?;
    Ok(Json(state.service.put_user(tenant, &id, input).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    attributes: Map<String, Value>,
}

pub async fn patch_user(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> ApiResult<Json<User>> {
    let tenant = caller.tenant_for(Capability::UsersWrite)?;
    Ok(Json(
        state
            .service
            .patch_user(tenant, &id, patch.attributes)
            .await?,
    ))
}

/// `DELETE /v1/users/{id}`: erases the user completely — attributes, events, their place in
/// served results (a retrain removes their influence on the model) — and records the erasure.
pub async fn delete_user(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<marquee_core::privacy::Erasure>> {
    let tenant = caller.tenant_for(Capability::UsersWrite)?;
    Ok(Json(state.service.erase_user(&caller, tenant, &id).await?))
}

/// Query of `GET /v1/users/{id}/profile`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileParams {
    /// Entries of recent history (default 20, at most 100).
    #[serde(default = "default_history")]
    history: usize,
}

fn default_history() -> usize {
    20
}

/// `GET /v1/users/{id}/profile`: the most recent item, weighted interests and recent history
/// (with titles) of a user — what the SDKs' `get_user_data` returns.
pub async fn user_profile(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<ProfileParams>,
) -> ApiResult<Json<marquee_core::UserProfile>> {
    let tenant = caller.tenant_for(Capability::UsersRead)?;
    Ok(Json(
        state.service.user_profile(tenant, &id, p.history).await?,
    ))
}

/// `GET /v1/users/{id}/export`: everything held about the user (recorded in the audit log).
pub async fn export_user(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<marquee_core::privacy::UserExport>> {
    let tenant = caller.tenant_for(Capability::UsersRead)?;
    Ok(Json(state.service.export_user(&caller, tenant, &id).await?))
}

// ---------------------------------------------------------------------------------------------
// Feedback

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackPage {
    #[serde(default = "default_limit")]
    limit: usize,
}

pub async fn user_feedback(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(page): ApiQuery<FeedbackPage>,
) -> ApiResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::UsersRead)?;
    let feedback = state.service.user_feedback(tenant, &id, page.limit).await?;
    Ok(Json(json!({"feedback": feedback})))
}

pub async fn insert_feedback(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    Batch(events): Batch<FeedbackInput>,
) -> ApiResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::FeedbackWrite)?;
    let accepted = state.service.insert_feedback(tenant, events).await?;
    Ok(Json(json!({"accepted": accepted})))
}
