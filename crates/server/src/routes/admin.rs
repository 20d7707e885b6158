//! Tenants (operator only) and API keys (operator, or the tenant's own admin keys).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use marquee_core::audit::AuditQuery;
use marquee_core::{CreatedKey, KeyInfo, KeySpec, KeyUpdate, ServiceError, TenantInfo, Timestamp};
use marquee_platform::{
    Capability, KeyKind, Money, PriceTable, Quotas, RateLimits, TenantPolicy, Unit,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, Auth};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// 1–64 characters of `A-Z a-z 0-9 _ . -`; unique.
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$", examples("acme"))]
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

#[utoipa::path(
    post,
    path = "/v1/admin/tenants",
    tag = "admin",
    operation_id = "createTenant",
    summary = "Create a tenant",
    request_body = NewTenant,
    responses(
        (status = 201, description = "The tenant", body = marquee_core::TenantInfo),
        (status = 409),
    ),
    extensions(("x-required-scope" = json!("operator"))),
)]
pub async fn create_tenant(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<NewTenant>,
) -> ApiResult<(StatusCode, Json<TenantInfo>)> {
    let tenant = state.service.create_tenant_as(&caller, &body.name).await?;
    Ok((StatusCode::CREATED, Json(tenant)))
}

#[utoipa::path(
    get,
    path = "/v1/admin/tenants",
    tag = "admin",
    operation_id = "listTenants",
    summary = "List tenants",
    responses((status = 200, description = "Every tenant", body = crate::openapi::TenantList)),
    extensions(("x-required-scope" = json!("operator"))),
)]
pub async fn list_tenants(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Value>> {
    operator_only(&caller)?;
    Ok(Json(
        json!({"tenants": state.service.list_tenants().await?}),
    ))
}

/// Body of `POST /v1/admin/tenants/{tenant}/keys`: the kind, and optionally a name, an
/// expiry and the key's policy (scopes, models, allowed origins, limits, quotas, budget).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    kind: KeyKind,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    expires_at: Option<Timestamp>,
    #[serde(default)]
    scopes: Option<Vec<Capability>>,
    #[serde(default)]
    models: Option<Vec<String>>,
    #[serde(default)]
    allowed_origins: Option<Vec<String>>,
    #[serde(default)]
    limits: RateLimits,
    /// Units allowed per billing period, by unit name; unlisted units are unlimited.
    #[serde(default)]
    #[schema(inline)]
    quotas: Quotas,
    #[serde(default)]
    budget: Option<Money>,
}

/// A tenant the caller may not manage looks like one that does not exist; a key of the tenant
/// itself without the scope is told which scope it lacks.
fn manageable(
    state: &AppState,
    caller: &marquee_core::Caller,
    tenant: &str,
) -> Result<(), ServiceError> {
    if state.service.may_manage_tenant(caller, tenant) {
        Ok(())
    } else if caller.tenant.is_some()
        && caller.key_id().is_some()
        && !caller.allows(Capability::ManageKeys)
    {
        Err(ServiceError::MissingScope(Capability::ManageKeys.as_str()))
    } else {
        Err(ServiceError::not_found("tenant", tenant))
    }
}

#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{tenant}/keys",
    tag = "admin",
    operation_id = "createKey",
    summary = "Create a key for a tenant",
    description = "The secret is in the answer once and never again (only its hash is kept). The operator's key, or an admin key of the tenant.",
    params(("tenant" = String, Path, description = "The tenant's name.")),
    request_body = NewKey,
    responses(
        (status = 201, description = "The key, secret included", body = marquee_core::CreatedKey),
        (status = 404),
    ),
    extensions(("x-required-scope" = json!("keys:manage"))),
)]
pub async fn create_key(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<NewKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    manageable(&state, &caller, &tenant)?;
    let spec = KeySpec {
        name: body.name,
        expires_at: body.expires_at.map(|t| t.0),
        policy: marquee_platform::KeyPolicy {
            scopes: body.scopes,
            models: body.models,
            allowed_origins: body.allowed_origins,
            limits: body.limits,
            quotas: body.quotas,
            budget: body.budget,
        },
    };
    let key = state
        .service
        .create_key(&caller, Some(&tenant), body.kind, spec)
        .await?;
    Ok((StatusCode::CREATED, Json(key)))
}

#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{tenant}/keys",
    tag = "admin",
    operation_id = "listKeys",
    summary = "List a tenant's keys",
    description = "Without secrets. The operator's key, or an admin key of the tenant.",
    params(("tenant" = String, Path, description = "The tenant's name.")),
    responses(
        (status = 200, description = "The keys", body = crate::openapi::KeyList),
        (status = 404),
    ),
    extensions(("x-required-scope" = json!("keys:manage"))),
)]
pub async fn list_keys(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    manageable(&state, &caller, &tenant)?;
    let keys: Vec<KeyInfo> = state.service.list_keys(Some(&tenant)).await?;
    Ok(Json(json!({"keys": keys})))
}

#[utoipa::path(
    delete,
    path = "/v1/admin/keys/{key_id}",
    tag = "admin",
    operation_id = "revokeKey",
    summary = "Revoke a key",
    description = "The key stops working at once.",
    params(("key_id" = String, Path, description = "The key's id (not its secret).")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404),
    ),
    extensions(("x-required-scope" = json!("keys:manage"))),
)]
pub async fn revoke_key(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(key_id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    require_key_admin(&caller)?;
    state.service.revoke_key(&caller, &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn require_key_admin(caller: &marquee_core::Caller) -> Result<(), ServiceError> {
    if caller.allows(Capability::ManageKeys) {
        Ok(())
    } else {
        Err(ServiceError::MissingScope(Capability::ManageKeys.as_str()))
    }
}

/// Body of `PATCH /v1/admin/keys/{key_id}`: the fields to change. A policy field given
/// replaces that part of the policy; `null` removes the restriction.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyPatch {
    #[serde(default, deserialize_with = "some")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "some")]
    scopes: Option<Option<Vec<Capability>>>,
    #[serde(default, deserialize_with = "some")]
    models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "some")]
    allowed_origins: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "some")]
    limits: Option<Option<RateLimits>>,
    #[serde(default, deserialize_with = "some")]
    #[schema(inline)]
    quotas: Option<Option<Quotas>>,
    #[serde(default, deserialize_with = "some")]
    budget: Option<Option<Money>>,
}

/// Tells a field given as `null` (Some(None)) from one left out (None).
fn some<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `PATCH /v1/admin/keys/{key_id}`: change a key's name or policy.
#[utoipa::path(
    patch,
    path = "/v1/admin/keys/{key_id}",
    tag = "admin",
    operation_id = "updateKey",
    summary = "Change a key's name or policy",
    params(("key_id" = String, Path, description = "The key's id (not its secret).")),
    request_body = KeyPatch,
    responses(
        (status = 200, description = "The key", body = marquee_core::KeyInfo),
        (status = 404),
    ),
    extensions(("x-required-scope" = json!("keys:manage"))),
)]
pub async fn update_key(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(key_id): ApiPath<String>,
    ApiJson(patch): ApiJson<KeyPatch>,
) -> ApiResult<Json<KeyInfo>> {
    require_key_admin(&caller)?;
    let current = state.service.key_info(&caller, &key_id).await?.policy;
    let policy_changed = patch.scopes.is_some()
        || patch.models.is_some()
        || patch.allowed_origins.is_some()
        || patch.limits.is_some()
        || patch.quotas.is_some()
        || patch.budget.is_some();
    let mut policy = current;
    if let Some(v) = patch.scopes {
        policy.scopes = v;
    }
    if let Some(v) = patch.models {
        policy.models = v;
    }
    if let Some(v) = patch.allowed_origins {
        policy.allowed_origins = v;
    }
    if let Some(v) = patch.limits {
        policy.limits = v.unwrap_or_default();
    }
    if let Some(v) = patch.quotas {
        policy.quotas = v.unwrap_or_default();
    }
    if let Some(v) = patch.budget {
        policy.budget = v;
    }
    let update = KeyUpdate {
        name: patch.name,
        policy: policy_changed.then_some(policy),
    };
    Ok(Json(
        state.service.update_key(&caller, &key_id, update).await?,
    ))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// How long the old secret keeps working (default 24 hours; 0 ends it now).
    #[serde(default)]
    grace_seconds: Option<u64>,
}

/// `POST /v1/admin/keys/{key_id}/rotate`: a new secret; the old one works for the grace period.
#[utoipa::path(
    post,
    path = "/v1/admin/keys/{key_id}/rotate",
    tag = "admin",
    operation_id = "rotateKey",
    summary = "Rotate a key",
    description = "A new key with the same policy; the old secret keeps working for the grace period. The body may be empty.",
    params(("key_id" = String, Path, description = "The key's id (not its secret).")),
    request_body(content = Option<RotateBody>, description = "Optional"),
    responses(
        (status = 201, description = "The new key, secret included", body = marquee_core::CreatedKey),
        (status = 404),
    ),
    extensions(("x-required-scope" = json!("keys:manage"))),
)]
pub async fn rotate_key(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(key_id): ApiPath<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    require_key_admin(&caller)?;
    let body: RotateBody = if body.is_empty() {
        RotateBody::default()
    } else {
        crate::extract::parse_json(&body)?
    };
    let key = state
        .service
        .rotate_key(&caller, &key_id, body.grace_seconds.unwrap_or(86_400))
        .await?;
    Ok((StatusCode::CREATED, Json(key)))
}

/// `GET /v1/admin/tenants/{tenant}/policy`: the tenant's limits, quotas and budget, with what
/// it has used of them this period.
#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{tenant}/policy",
    tag = "admin",
    operation_id = "getTenantPolicy",
    summary = "A tenant's limits, quotas and budget",
    description = "With what the tenant used of them in the current billing period. The operator's key, or an admin key of the tenant.",
    params(("tenant" = String, Path, description = "The tenant's name.")),
    responses(
        (status = 200, description = "The policy and its use", body = crate::openapi::TenantPolicyReport),
        (status = 404),
    ),
    extensions(("x-required-scope" = json!("keys:manage"))),
)]
pub async fn get_tenant_policy(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    manageable(&state, &caller, &tenant)?;
    let t = state
        .service
        .tenant_by_name(&tenant)
        .ok_or_else(|| ServiceError::not_found("tenant", &tenant))?;
    let policy = state.service.tenant_policy(t.id);
    let used = state
        .service
        .meter()
        .usage(&marquee_platform::Scope::Tenant(t.id));
    Ok(Json(json!({
        "tenant": tenant,
        "policy": *policy,
        "period": state.service.prices().period,
        "used": used.map(|(spent, reserved, units)| json!({
            "spent": spent, "reserved": reserved, "units": units,
        })),
    })))
}

/// `PUT /v1/admin/tenants/{tenant}/policy` (operator): set the tenant's limits, quotas, budget.
#[utoipa::path(
    put,
    path = "/v1/admin/tenants/{tenant}/policy",
    tag = "admin",
    operation_id = "putTenantPolicy",
    summary = "Set a tenant's limits, quotas and budget",
    description = "Limits on everything the tenant's keys do together; recorded in the audit log.",
    params(("tenant" = String, Path, description = "The tenant's name.")),
    request_body = marquee_platform::TenantPolicy,
    responses(
        (status = 200, description = "The policy", body = marquee_platform::TenantPolicy),
        (status = 404),
    ),
    extensions(("x-required-scope" = json!("operator"))),
)]
pub async fn put_tenant_policy(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(policy): ApiJson<TenantPolicy>,
) -> ApiResult<Json<TenantPolicy>> {
    operator_only(&caller)?;
    Ok(Json(
        state
            .service
            .set_tenant_policy(&caller, &tenant, policy)
            .await?,
    ))
}

/// The price table with each unit's block spelled out.
fn price_json(table: &PriceTable) -> Value {
    let units: Vec<Value> = Unit::ALL
        .iter()
        .map(|u| {
            json!({
                "unit": u.as_str(),
                "per": u.block(),
                "label": u.block_label(),
                "price": table.prices.get(u).copied().unwrap_or(Money::ZERO),
            })
        })
        .collect();
    json!({
        "currency": table.currency,
        "period": table.period,
        "prices": table.prices,
        "units": units,
    })
}

/// `GET /v1/prices`: the price table (any key of a tenant may read what it pays).
#[utoipa::path(
    get,
    path = "/v1/prices",
    tag = "usage",
    operation_id = "getPrices",
    summary = "The price table",
    description = "What each unit costs, per block (1,000 recommendations, 1M tokens, …).",
    responses((status = 200, description = "The prices", body = crate::openapi::PriceList)),
    extensions(("x-required-scope" = json!("any"))),
)]
pub async fn get_prices(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Value>> {
    if caller.key_id().is_none() {
        return Err(ServiceError::Unauthorized.into());
    }
    Ok(Json(price_json(&state.service.prices())))
}

/// `PUT /v1/admin/prices` (operator): replace the price table.
#[utoipa::path(
    put,
    path = "/v1/admin/prices",
    tag = "admin",
    operation_id = "putPrices",
    summary = "Replace the price table",
    description = "Applies to requests from now on; recorded in the audit log.",
    request_body = marquee_platform::PriceTable,
    responses((status = 200, description = "The prices", body = crate::openapi::PriceList)),
    extensions(("x-required-scope" = json!("operator"))),
)]
pub async fn put_prices(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiJson(table): ApiJson<PriceTable>,
) -> ApiResult<Json<Value>> {
    operator_only(&caller)?;
    let table = state.service.set_prices(&caller, table).await?;
    Ok(Json(price_json(&table)))
}

/// Query of `GET /v1/audit`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Earliest time (RFC 3339).
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    from: Option<Timestamp>,
    /// Latest time (RFC 3339).
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    to: Option<Timestamp>,
    /// One action only (`key.create`, `item.delete`, `user.erase`, …).
    #[serde(default)]
    action: Option<String>,
    /// Entries with a smaller `id` (the last `id` of the previous page).
    #[serde(default)]
    before: Option<i64>,
    /// Entries per page (1–1000).
    #[serde(default = "default_audit_limit")]
    #[param(default = 100)]
    limit: usize,
    /// Operator only: one tenant's entries.
    #[serde(default)]
    tenant: Option<String>,
}

fn default_audit_limit() -> usize {
    100
}

/// `GET /v1/audit`: the audit log of the caller's tenant (admin keys), or with the operator
/// key every tenant's (or `?tenant=`).
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "admin",
    operation_id = "listAuditEntries",
    summary = "The audit log",
    description = "Who (key id) did what to which target, when and from where: keys, tenants, policies, prices, deletions, exports, erasures. An admin key reads its tenant's entries; the operator's key every tenant's (or one, with `tenant`).",
    params(AuditParams),
    responses((status = 200, description = "Entries, newest first", body = crate::openapi::AuditPage)),
    extensions(("x-required-scope" = json!("keys:manage"))),
)]
pub async fn audit_log(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    crate::extract::ApiQuery(p): crate::extract::ApiQuery<AuditParams>,
) -> ApiResult<Json<Value>> {
    require_key_admin(&caller)?;
    let tenant_id = if caller.is_operator() {
        match &p.tenant {
            Some(name) => Some(
                state
                    .service
                    .tenant_by_name(name)
                    .ok_or_else(|| ServiceError::not_found("tenant", name))?
                    .id,
            ),
            None => None,
        }
    } else {
        if p.tenant.is_some() {
            return Err(ServiceError::invalid("tenant", "is for operator keys").into());
        }
        Some(caller.tenant_for(Capability::ManageKeys)?.id)
    };
    let query = AuditQuery {
        from: p.from,
        to: p.to,
        action: p.action,
        before: p.before,
        limit: p.limit,
    };
    let entries = state.service.audit_log(tenant_id, &query).await?;
    Ok(Json(json!({"object": "list", "data": entries})))
}
