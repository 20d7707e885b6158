//! Tenants (operator only) and API keys (operator, or the tenant's own admin keys).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use marquee_core::{CreatedKey, KeyInfo, ServiceError, TenantInfo};
use marquee_platform::KeyKind;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, Auth};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    name: String,
}

fn operator_only(caller: &marquee_core::Caller) -> Result<(), ServiceError> {
    if caller.is_operator() {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(
            "manage tenants (operator key required)",
        ))
    }
}

pub async fn create_tenant(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<NewTenant>,
) -> ApiResult<(StatusCode, Json<TenantInfo>)> {
    operator_only(&caller)?;
    let tenant = state.service.create_tenant(&body.name).await?;
    Ok((StatusCode::CREATED, Json(tenant)))
}

pub async fn list_tenants(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Value>> {
    operator_only(&caller)?;
    Ok(Json(
        json!({"tenants": state.service.list_tenants().await?}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    kind: KeyKind,
    #[serde(default)]
    name: Option<String>,
}

/// A tenant the caller may not manage looks like one that does not exist.
fn manageable(
    state: &AppState,
    caller: &marquee_core::Caller,
    tenant: &str,
) -> Result<(), ServiceError> {
    if state.service.may_manage_tenant(caller, tenant) {
        Ok(())
    } else if caller.tenant.is_some()
        && caller.key_id().is_some()
        && !caller.allows(marquee_platform::Capability::ManageKeys)
    {
        Err(ServiceError::Forbidden("manage keys"))
    } else {
        Err(ServiceError::not_found("tenant", tenant))
    }
}

pub async fn create_key(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<NewKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    manageable(&state, &caller, &tenant)?;
    let key = state
        .service
        .create_key(Some(&tenant), body.kind, body.name)
        .await?;
    Ok((StatusCode::CREATED, Json(key)))
}

pub async fn list_keys(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    manageable(&state, &caller, &tenant)?;
    let keys: Vec<KeyInfo> = state.service.list_keys(Some(&tenant)).await?;
    Ok(Json(json!({"keys": keys})))
}

pub async fn revoke_key(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(key_id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    if !caller.allows(marquee_platform::Capability::ManageKeys) {
        return Err(ServiceError::Forbidden("manage keys").into());
    }
    state.service.revoke_key(&caller, &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
