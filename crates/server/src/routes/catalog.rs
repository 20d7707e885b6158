//! Items, users and feedback.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use marquee_core::{FeedbackInput, Item, ItemInput, ItemPatch, Page, User, UserInput};
use marquee_platform::Capability;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth, Batch};

/// The query of a listing; the answer is a [`Page`].
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    cursor: Option<String>,
    /// Entries per page (1–1000).
    #[serde(default = "default_limit")]
    #[param(default = 100)]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

// ---------------------------------------------------------------------------------------------
// Items

#[utoipa::path(
    get,
    path = "/v1/items",
    tag = "catalogue",
    operation_id = "listItems",
    summary = "List items",
    description = "The catalogue in pages, by id.",
    params(PageParams),
    responses((status = 200, description = "A page of items", body = marquee_core::ItemPage)),
    extensions(("x-required-scope" = json!("catalog:read"))),
)]
pub async fn list_items(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<Item>>> {
    let tenant = caller.tenant_for(Capability::CatalogRead)?;
    let (items, next_cursor) = state
        .service
        .list_items(tenant, page.cursor.as_deref(), page.limit)
        .await?;
    Ok(Json(Page { items, next_cursor }))
}

#[utoipa::path(
    post,
    path = "/v1/items",
    tag = "catalogue",
    operation_id = "upsertItems",
    summary = "Create or replace items",
    description = "Each element replaces the item with its `id` whole, or creates it. An error names the element's index and field (`invalid_batch`), and nothing of the batch is written.",
    request_body = crate::openapi::ItemBatch,
    responses((status = 200, description = "How many items were written", body = crate::openapi::Upserted)),
    extensions(("x-required-scope" = json!("catalog:write"))),
)]
pub async fn upsert_items(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    Batch(items): Batch<ItemInput>,
) -> ApiResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::CatalogWrite)?;
    let written = state.service.upsert_items(tenant, items).await?;
    Ok(Json(json!({"upserted": written.len()})))
}

#[utoipa::path(
    get,
    path = "/v1/items/{item_id}",
    tag = "catalogue",
    operation_id = "getItem",
    summary = "Get an item",
    params(("item_id" = String, Path, description = "The item's id (1–256 bytes, chosen by the tenant).")),
    responses(
        (status = 200, description = "The item", body = marquee_core::Item),
        (status = 404),
    ),
    extensions(("x-required-scope" = json!("catalog:read"))),
)]
pub async fn get_item(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Item>> {
    let tenant = caller.tenant_for(Capability::CatalogRead)?;
    Ok(Json(state.service.get_item(tenant, &id).await?))
}

#[utoipa::path(
    put,
    path = "/v1/items/{item_id}",
    tag = "catalogue",
    operation_id = "putItem",
    summary = "Create or replace an item",
    description = "The body's `id`, if given, must be the path's.",
    params(("item_id" = String, Path, description = "The item's id (1–256 bytes, chosen by the tenant).")),
    request_body = marquee_core::ItemInput,
    responses((status = 200, description = "The item as stored", body = marquee_core::Item)),
    extensions(("x-required-scope" = json!("catalog:write"))),
)]
pub async fn put_item(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<ItemInput>,
) -> ApiResult<Json<Item>> {
    let tenant = caller.tenant_for(Capability::CatalogWrite)?;
    Ok(Json(state.service.put_item(tenant, &id, input).await?))
}

#[utoipa::path(
    patch,
    path = "/v1/items/{item_id}",
    tag = "catalogue",
    operation_id = "patchItem",
    summary = "Change some fields of an item",
    description = "Only the fields present change; `null` clears an optional field.",
    params(("item_id" = String, Path, description = "The item's id (1–256 bytes, chosen by the tenant).")),
    request_body = marquee_core::ItemPatch,
    responses(
        (status = 200, description = "The item as stored", body = marquee_core::Item),
        (status = 404),
    ),
    extensions(("x-required-scope" = json!("catalog:write"))),
)]
pub async fn patch_item(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<ItemPatch>,
) -> ApiResult<Json<Item>> {
    let tenant = caller.tenant_for(Capability::CatalogWrite)?;
    Ok(Json(state.service.patch_item(tenant, &id, patch).await?))
}

#[utoipa::path(
    delete,
    path = "/v1/items/{item_id}",
    tag = "catalogue",
    operation_id = "deleteItem",
    summary = "Delete an item",
    description = "The item is no longer served; the deletion is recorded in the audit log.",
    params(("item_id" = String, Path, description = "The item's id (1–256 bytes, chosen by the tenant).")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404),
    ),
    extensions(("x-required-scope" = json!("catalog:write"))),
)]
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

#[utoipa::path(
    get,
    path = "/v1/users",
    tag = "users",
    operation_id = "listUsers",
    summary = "List users",
    params(PageParams),
    responses((status = 200, description = "A page of users", body = marquee_core::UserPage)),
    extensions(("x-required-scope" = json!("users:read"))),
)]
pub async fn list_users(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<User>>> {
    let tenant = caller.tenant_for(Capability::UsersRead)?;
    let (items, next_cursor) = state
        .service
        .list_users(tenant, page.cursor.as_deref(), page.limit)
        .await?;
    Ok(Json(Page { items, next_cursor }))
}

#[utoipa::path(
    post,
    path = "/v1/users",
    tag = "users",
    operation_id = "upsertUsers",
    summary = "Create or replace users",
    description = "Each element replaces the user with its `id` whole, or creates it.",
    request_body = crate::openapi::UserBatch,
    responses((status = 200, description = "How many users were written", body = crate::openapi::Upserted)),
    extensions(("x-required-scope" = json!("users:write"))),
)]
pub async fn upsert_users(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    Batch(users): Batch<UserInput>,
) -> ApiResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::UsersWrite)?;
    let written = state.service.upsert_users(tenant, users).await?;
    Ok(Json(json!({"upserted": written.len()})))
}

#[utoipa::path(
    get,
    path = "/v1/users/{user_id}",
    tag = "users",
    operation_id = "getUser",
    summary = "Get a user",
    params(("user_id" = String, Path, description = "The user's id (1–256 bytes, chosen by the tenant).")),
    responses(
        (status = 200, description = "The user", body = marquee_core::User),
        (status = 404),
    ),
    extensions(("x-required-scope" = json!("users:read"))),
)]
pub async fn get_user(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<User>> {
    let tenant = caller.tenant_for(Capability::UsersRead)?;
    Ok(Json(state.service.get_user(tenant, &id).await?))
}

#[utoipa::path(
    put,
    path = "/v1/users/{user_id}",
    tag = "users",
    operation_id = "putUser",
    summary = "Create or replace a user",
    params(("user_id" = String, Path, description = "The user's id (1–256 bytes, chosen by the tenant).")),
    request_body = marquee_core::UserInput,
    responses((status = 200, description = "The user as stored", body = marquee_core::User)),
    extensions(("x-required-scope" = json!("users:write"))),
)]
pub async fn put_user(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<UserInput>,
) -> ApiResult<Json<User>> {
    let tenant = caller.tenant_for(Capability::UsersWrite)?;
    Ok(Json(state.service.put_user(tenant, &id, input).await?))
}

/// Attributes to set (`null` removes one); the others stay.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    attributes: Map<String, Value>,
}

#[utoipa::path(
    patch,
    path = "/v1/users/{user_id}",
    tag = "users",
    operation_id = "patchUser",
    summary = "Change some attributes of a user",
    description = "The attributes given are set (`null` removes one); the others stay.",
    params(("user_id" = String, Path, description = "The user's id (1–256 bytes, chosen by the tenant).")),
    request_body = UserPatch,
    responses(
        (status = 200, description = "The user as stored", body = marquee_core::User),
        (status = 404),
    ),
    extensions(("x-required-scope" = json!("users:write"))),
)]
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
#[utoipa::path(
    delete,
    path = "/v1/users/{user_id}",
    tag = "users",
    operation_id = "eraseUser",
    summary = "Erase a user",
    description = "Removes the user completely — attributes, events, their place in served results (a retrain removes their influence on the model) — and records the erasure in the audit log.",
    params(("user_id" = String, Path, description = "The user's id (1–256 bytes, chosen by the tenant).")),
    responses(
        (status = 200, description = "What was erased", body = marquee_core::privacy::Erasure),
        (status = 404),
    ),
    extensions(("x-required-scope" = json!("users:write"))),
)]
pub async fn delete_user(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<marquee_core::privacy::Erasure>> {
    let tenant = caller.tenant_for(Capability::UsersWrite)?;
    Ok(Json(state.service.erase_user(&caller, tenant, &id).await?))
}

/// Query of `GET /v1/users/{id}/profile`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProfileParams {
    /// Entries of recent history (default 20, at most 100).
    #[serde(default = "default_history")]
    #[param(default = 20)]
    history: usize,
}

fn default_history() -> usize {
    20
}

/// `GET /v1/users/{id}/profile`: the most recent item, weighted interests and recent history
/// (with titles) of a user — what the SDKs' `get_user_data` returns.
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/profile",
    tag = "users",
    operation_id = "getUserProfile",
    summary = "A user's interests and history",
    description = "The most recent item, weighted interests and recent history (with titles) of a user: what the SDKs' `get_user_data` returns.",
    params(("user_id" = String, Path, description = "The user's id (1–256 bytes, chosen by the tenant)."), ProfileParams),
    responses(
        (status = 200, description = "The profile", body = marquee_core::UserProfile),
        (status = 404),
    ),
    extensions(("x-required-scope" = json!("users:read"))),
)]
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
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/export",
    tag = "users",
    operation_id = "exportUser",
    summary = "Export everything held about a user",
    description = "Attributes and every feedback event (for a data subject's access request); recorded in the audit log.",
    params(("user_id" = String, Path, description = "The user's id (1–256 bytes, chosen by the tenant).")),
    responses(
        (status = 200, description = "The user's data", body = marquee_core::privacy::UserExport),
        (status = 404),
    ),
    extensions(("x-required-scope" = json!("users:read"))),
)]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FeedbackPage {
    /// Most events returned (1–1000).
    #[serde(default = "default_limit")]
    #[param(default = 100)]
    limit: usize,
}

#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/feedback",
    tag = "feedback",
    operation_id = "listUserFeedback",
    summary = "A user's feedback",
    description = "The user's most recent events, newest first.",
    params(("user_id" = String, Path, description = "The user's id (1–256 bytes, chosen by the tenant)."), FeedbackPage),
    responses(
        (status = 200, description = "The events", body = crate::openapi::FeedbackList),
        (status = 404),
    ),
    extensions(("x-required-scope" = json!("users:read"))),
)]
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

#[utoipa::path(
    post,
    path = "/v1/feedback",
    tag = "feedback",
    operation_id = "insertFeedback",
    summary = "Record feedback events",
    description = "Views, likes, ratings, purchases…: the tenant's own vocabulary. Unknown users are created; events about unknown items are refused. Send back a list's `recommendation_id` to attribute the event to an experiment.",
    request_body = crate::openapi::FeedbackBatch,
    responses((status = 200, description = "How many events were recorded", body = crate::openapi::FeedbackAccepted)),
    extensions(("x-required-scope" = json!("feedback:write"))),
)]
pub async fn insert_feedback(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    Batch(events): Batch<FeedbackInput>,
) -> ApiResult<Json<Value>> {
    let tenant = caller.tenant_for(Capability::FeedbackWrite)?;
    let accepted = state.service.insert_feedback(tenant, events).await?;
    Ok(Json(json!({"accepted": accepted})))
}
