//! Tenant and key administration on the store alone, without loading any serving state, so the
//! CLI can manage a data directory whether or not a server is running on it. A running server
//! picks up what this writes (see [`crate::auth`]).

use marquee_platform::{GeneratedKey, KeyKind};
use marquee_store::{ApiKeyRow, Store, StoreError, Tenant};

use crate::error::ServiceError;
use crate::types::{CreatedKey, KeyInfo, TenantInfo, Timestamp};

/// Tenant names: 1–64 characters of `[A-Za-z0-9_.-]`, so they are safe in URLs and logs.
pub fn validate_tenant_name(name: &str) -> Result<(), ServiceError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::invalid(
            "name",
            "must be 1-64 characters of A-Z a-z 0-9 _ . -",
        ))
    }
}

pub async fn create_tenant(store: &Store, name: &str) -> Result<Tenant, ServiceError> {
    validate_tenant_name(name)?;
    match store.create_tenant(name).await {
        Ok(t) => Ok(t),
        Err(StoreError::Conflict(m)) => Err(ServiceError::Conflict(m)),
        Err(e) => Err(e.into()),
    }
}

/// The tenant named `name`, created if missing.
pub async fn ensure_tenant(store: &Store, name: &str) -> Result<Tenant, ServiceError> {
    validate_tenant_name(name)?;
    if let Some(t) = store.tenant_by_name(name).await? {
        return Ok(t);
    }
    match store.create_tenant(name).await {
        Ok(t) => Ok(t),
        // Created concurrently by another process.
        Err(StoreError::Conflict(_)) => store
            .tenant_by_name(name)
            .await?
            .ok_or_else(|| ServiceError::Internal("tenant vanished".into())),
        Err(e) => Err(e.into()),
    }
}

pub async fn list_tenants(store: &Store) -> Result<Vec<TenantInfo>, ServiceError> {
    Ok(store
        .list_tenants()
        .await?
        .into_iter()
        .map(|t| TenantInfo {
            name: t.name,
            created_at: Timestamp(t.created_at),
        })
        .collect())
}

async fn tenant_id(store: &Store, name: &str) -> Result<i64, ServiceError> {
    Ok(store
        .tenant_by_name(name)
        .await?
        .ok_or_else(|| ServiceError::not_found("tenant", name))?
        .id)
}

/// Creates a key. `tenant` is required except for operator admin keys.
pub async fn create_key(
    store: &Store,
    tenant: Option<&str>,
    kind: KeyKind,
    name: Option<String>,
) -> Result<(CreatedKey, ApiKeyRow), ServiceError> {
    let tenant_id = match tenant {
        Some(t) => Some(tenant_id(store, t).await?),
        None if kind == KeyKind::Admin => None,
        None => {
            return Err(ServiceError::invalid(
                "tenant",
                "is required for this kind of key",
            ));
        }
    };
    if let Some(n) = &name
        && (n.len() > 200 || n.chars().any(char::is_control))
    {
        return Err(ServiceError::invalid(
            "name",
            "must be at most 200 printable characters",
        ));
    }
    let generated = GeneratedKey::new(kind);
    let row = insert_key(store, &generated, tenant_id, kind, name).await?;
    let created = CreatedKey {
        info: key_info(&row, tenant.map(str::to_string)),
        key: generated.secret,
    };
    Ok((created, row))
}

pub(crate) async fn insert_key(
    store: &Store,
    generated: &GeneratedKey,
    tenant_id: Option<i64>,
    kind: KeyKind,
    name: Option<String>,
) -> Result<ApiKeyRow, ServiceError> {
    let row = ApiKeyRow {
        id: generated.id.clone(),
        tenant_id,
        kind: kind.as_str().to_string(),
        name,
        prefix: generated.display_prefix.clone(),
        hash: generated.hash.clone(),
        created_at: marquee_store::now_ms(),
        revoked_at: None,
        last_used_at: None,
    };
    store.insert_api_key(&row).await?;
    Ok(row)
}

/// Keys of a tenant, or the operator's keys with `None`.
pub async fn list_keys(store: &Store, tenant: Option<&str>) -> Result<Vec<KeyInfo>, ServiceError> {
    let id = match tenant {
        Some(t) => Some(tenant_id(store, t).await?),
        None => None,
    };
    let rows = store.list_api_keys(id).await?;
    Ok(rows
        .iter()
        .map(|r| key_info(r, tenant.map(str::to_string)))
        .collect())
}

/// Revokes a key by id; not found if it does not exist or is already revoked.
pub async fn revoke_key(store: &Store, key_id: &str) -> Result<(), ServiceError> {
    if store.revoke_api_key(key_id).await? {
        Ok(())
    } else {
        Err(ServiceError::not_found("key", key_id))
    }
}

pub(crate) fn key_info(row: &ApiKeyRow, tenant: Option<String>) -> KeyInfo {
    KeyInfo {
        id: row.id.clone(),
        tenant,
        kind: KeyKind::parse(&row.kind)
            .map(KeyKind::as_str)
            .unwrap_or("unknown"),
        name: row.name.clone(),
        prefix: row.prefix.clone(),
        created_at: Timestamp(row.created_at),
        revoked_at: row.revoked_at.map(Timestamp),
        last_used_at: row.last_used_at.map(Timestamp),
    }
}
