//! Tenant and key administration on the store alone, without loading any serving state, so the
//! CLI can manage a data directory whether or not a server is running on it. A running server
//! picks up what this writes (see [`crate::auth`]).

use std::sync::Arc;

use marquee_platform::{Capability, GeneratedKey, KeyKind, KeyPolicy, PriceTable, TenantPolicy};
use marquee_store::{ApiKeyRow, Store, StoreError, Tenant};

use crate::auth::Caller;
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

/// What a new key is for and how far it may go.
#[derive(Clone, Debug, Default)]
pub struct KeySpec {
    pub name: Option<String>,
    pub policy: KeyPolicy,
    /// Unix ms after which the key stops working.
    pub expires_at: Option<i64>,
}

fn check_key_name(name: &Option<String>) -> Result<(), ServiceError> {
    if let Some(n) = name
        && (n.len() > 200 || n.chars().any(char::is_control))
    {
        return Err(ServiceError::invalid(
            "name",
            "must be at most 200 printable characters",
        ));
    }
    Ok(())
}

pub(crate) fn check_policy(policy: &KeyPolicy, kind: KeyKind) -> Result<(), ServiceError> {
    policy
        .validate(kind)
        .map_err(|e| ServiceError::invalid(e.field, e.message))
}

fn policy_text(policy: &KeyPolicy) -> Option<String> {
    (*policy != KeyPolicy::default()).then(|| serde_json::to_string(policy).unwrap_or_default())
}

/// Creates a key. `tenant` is required except for operator admin keys.
pub async fn create_key(
    store: &Store,
    tenant: Option<&str>,
    kind: KeyKind,
    spec: KeySpec,
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
    check_key_name(&spec.name)?;
    let mut spec = spec;
    spec.policy.normalize();
    check_policy(&spec.policy, kind)?;
    if let Some(at) = spec.expires_at
        && at <= marquee_store::now_ms()
    {
        return Err(ServiceError::invalid("expires_at", "must be in the future"));
    }
    let generated = GeneratedKey::new(kind);
    let mut row = key_row(&generated, tenant_id, kind, spec.name);
    row.policy = policy_text(&spec.policy);
    row.expires_at = spec.expires_at;
    store.insert_api_key(&row).await?;
    let created = CreatedKey {
        info: key_info(&row, tenant.map(str::to_string)),
        key: generated.secret,
    };
    Ok((created, row))
}

fn key_row(
    generated: &GeneratedKey,
    tenant_id: Option<i64>,
    kind: KeyKind,
    name: Option<String>,
) -> ApiKeyRow {
    ApiKeyRow {
        id: generated.id.clone(),
        tenant_id,
        kind: kind.as_str().to_string(),
        name,
        prefix: generated.display_prefix.clone(),
        hash: generated.hash.clone(),
        created_at: marquee_store::now_ms(),
        revoked_at: None,
        last_used_at: None,
        policy: None,
        expires_at: None,
        rotated_to: None,
    }
}

pub(crate) async fn insert_key(
    store: &Store,
    generated: &GeneratedKey,
    tenant_id: Option<i64>,
    kind: KeyKind,
    name: Option<String>,
) -> Result<ApiKeyRow, ServiceError> {
    let row = key_row(generated, tenant_id, kind, name);
    store.insert_api_key(&row).await?;
    Ok(row)
}

/// Longest grace period of a rotation: long enough to redeploy, short enough that a leaked old
/// key does not live on.
pub const MAX_ROTATION_GRACE_SECS: u64 = 30 * 24 * 3600;

/// Replaces a key's secret: a new key with the same kind, tenant, name and policy; the old one
/// keeps working for `grace_secs` and then expires.
pub async fn rotate_key(
    store: &Store,
    old: &ApiKeyRow,
    tenant: Option<String>,
    grace_secs: u64,
) -> Result<(CreatedKey, ApiKeyRow), ServiceError> {
    if grace_secs > MAX_ROTATION_GRACE_SECS {
        return Err(ServiceError::invalid(
            "grace_seconds",
            format!("must be at most {MAX_ROTATION_GRACE_SECS}"),
        ));
    }
    let kind = KeyKind::parse(&old.kind)
        .ok_or_else(|| ServiceError::Internal(format!("key {} has an unknown kind", old.id)))?;
    let generated = GeneratedKey::new(kind);
    let mut row = key_row(&generated, old.tenant_id, kind, old.name.clone());
    row.policy = old.policy.clone();
    row.expires_at = old.expires_at;
    let old_expires = marquee_store::now_ms() + (grace_secs as i64) * 1000;
    if !store.rotate_api_key(&old.id, &row, old_expires).await? {
        return Err(ServiceError::Conflict(format!(
            "key {} was revoked or already rotated",
            old.id
        )));
    }
    let created = CreatedKey {
        info: key_info(&row, tenant),
        key: generated.secret,
    };
    Ok((created, row))
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
        expires_at: row.expires_at.map(Timestamp),
        rotated_to: row.rotated_to.clone(),
        policy: row
            .policy
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------------------------
// The same, for a caller of the running service: authorised, applied to the in-memory key ring,
// and audited.

/// Changes to a key's name or policy; absent fields stay as they are.
#[derive(Clone, Debug, Default)]
pub struct KeyUpdate {
    pub name: Option<Option<String>>,
    pub policy: Option<KeyPolicy>,
}

impl crate::Service {
    /// Creates a tenant (operator only) and records it.
    pub async fn create_tenant_as(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<TenantInfo, ServiceError> {
        if !caller.is_operator() {
            return Err(ServiceError::Forbidden(
                "manage tenants (operator key required)",
            ));
        }
        let info = self.create_tenant(name).await?;
        let id = self.tenant_by_name(name).map(|t| t.id);
        self.audit(caller, id, "tenant.create", Some(name), None)
            .await?;
        Ok(info)
    }

    /// Creates a key for `tenant` (or, with `None`, an operator key), on behalf of `caller`.
    pub async fn create_key(
        &self,
        caller: &Caller,
        tenant: Option<&str>,
        kind: KeyKind,
        spec: KeySpec,
    ) -> Result<CreatedKey, ServiceError> {
        let (created, row) = create_key(&self.store, tenant, kind, spec).await?;
        self.keys.insert(&row);
        self.audit(
            caller,
            row.tenant_id,
            "key.create",
            Some(&row.id),
            Some(serde_json::json!({"kind": kind.as_str(), "policy": created.info.policy})),
        )
        .await?;
        Ok(created)
    }

    pub async fn list_keys(&self, tenant: Option<&str>) -> Result<Vec<KeyInfo>, ServiceError> {
        list_keys(&self.store, tenant).await
    }

    /// The key `key_id` if `caller` may manage it: the operator any key, a tenant admin its
    /// tenant's. Any other key looks like one that does not exist.
    async fn manageable_key(
        &self,
        caller: &Caller,
        key_id: &str,
    ) -> Result<ApiKeyRow, ServiceError> {
        let row = self
            .store
            .api_key_by_id(key_id)
            .await?
            .filter(|r| r.revoked_at.is_none())
            .ok_or_else(|| ServiceError::not_found("key", key_id))?;
        let allowed = caller.is_operator()
            || (caller.allows(Capability::ManageKeys)
                && caller.tenant.as_ref().map(|t| t.id) == row.tenant_id
                && row.tenant_id.is_some());
        if allowed {
            Ok(row)
        } else {
            Err(ServiceError::not_found("key", key_id))
        }
    }

    fn tenant_name_of(&self, row: &ApiKeyRow) -> Option<String> {
        row.tenant_id
            .and_then(|id| self.tenant(id))
            .map(|t| t.name.clone())
    }

    /// A key the caller may manage.
    pub async fn key_info(&self, caller: &Caller, key_id: &str) -> Result<KeyInfo, ServiceError> {
        let row = self.manageable_key(caller, key_id).await?;
        Ok(key_info(&row, self.tenant_name_of(&row)))
    }

    /// Revokes a key the caller may manage.
    pub async fn revoke_key(&self, caller: &Caller, key_id: &str) -> Result<(), ServiceError> {
        let row = self.manageable_key(caller, key_id).await?;
        revoke_key(&self.store, key_id).await?;
        self.keys.remove_id(key_id);
        self.audit(caller, row.tenant_id, "key.revoke", Some(key_id), None)
            .await?;
        Ok(())
    }

    /// Changes a key's name or policy (scopes, models, origins, limits, quotas, budget).
    pub async fn update_key(
        &self,
        caller: &Caller,
        key_id: &str,
        update: KeyUpdate,
    ) -> Result<KeyInfo, ServiceError> {
        let row = self.manageable_key(caller, key_id).await?;
        let kind = KeyKind::parse(&row.kind)
            .ok_or_else(|| ServiceError::Internal(format!("key {key_id} has an unknown kind")))?;
        if let Some(name) = &update.name {
            check_key_name(name)?;
        }
        let mut update = update;
        if let Some(policy) = &mut update.policy {
            policy.normalize();
            check_policy(policy, kind)?;
        }
        let before = key_info(&row, self.tenant_name_of(&row));
        let policy_text = update.policy.as_ref().map(policy_text);
        if let Some(text) = &policy_text
            && !self
                .store
                .update_api_key_policy(key_id, text.as_deref())
                .await?
        {
            return Err(ServiceError::not_found("key", key_id));
        }
        if let Some(name) = &update.name {
            self.store.rename_api_key(key_id, name.as_deref()).await?;
        }
        let row = self
            .store
            .api_key_by_id(key_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("key", key_id))?;
        self.keys.insert(&row);
        let after = key_info(&row, self.tenant_name_of(&row));
        self.audit(
            caller,
            row.tenant_id,
            "key.update",
            Some(key_id),
            Some(serde_json::json!({"before": before.policy, "after": after.policy, "name": update.name.is_some()})),
        )
        .await?;
        Ok(after)
    }

    /// Rotates a key: a new secret now, the old one valid for `grace_secs` more.
    pub async fn rotate_key(
        &self,
        caller: &Caller,
        key_id: &str,
        grace_secs: u64,
    ) -> Result<CreatedKey, ServiceError> {
        let old = self.manageable_key(caller, key_id).await?;
        if old.rotated_to.is_some() {
            return Err(ServiceError::Conflict(format!(
                "key {key_id} was already rotated"
            )));
        }
        let (created, row) =
            rotate_key(&self.store, &old, self.tenant_name_of(&old), grace_secs).await?;
        self.keys.insert(&row);
        if let Some(old) = self.store.api_key_by_id(key_id).await? {
            self.keys.insert(&old);
        }
        self.audit(
            caller,
            row.tenant_id,
            "key.rotate",
            Some(key_id),
            Some(serde_json::json!({"new_key": row.id, "grace_seconds": grace_secs})),
        )
        .await?;
        Ok(created)
    }

    /// Whether `caller` may manage the keys of tenant `name`.
    pub fn may_manage_tenant(&self, caller: &Caller, name: &str) -> bool {
        caller.is_operator()
            || (caller.allows(Capability::ManageKeys)
                && caller.tenant.as_ref().is_some_and(|t| t.name == name))
    }

    /// Sets a tenant's limits, quotas and budget (operator only: a tenant does not set its own).
    pub async fn set_tenant_policy(
        &self,
        caller: &Caller,
        tenant: &str,
        policy: TenantPolicy,
    ) -> Result<TenantPolicy, ServiceError> {
        if !caller.is_operator() {
            return Err(ServiceError::Forbidden(
                "set tenant limits (operator key required)",
            ));
        }
        policy
            .validate()
            .map_err(|e| ServiceError::invalid(e.field, e.message))?;
        let id = tenant_id(&self.store, tenant).await?;
        let before = self.tenant_policies.get(id);
        let text =
            serde_json::to_string(&policy).map_err(|e| ServiceError::Internal(e.to_string()))?;
        self.store.put_tenant_policy(id, &text).await?;
        self.tenant_policies.set(id, policy.clone());
        self.audit(
            caller,
            Some(id),
            "tenant.policy.update",
            Some(tenant),
            Some(serde_json::json!({"before": *before, "after": policy})),
        )
        .await?;
        Ok(policy)
    }

    /// The operator's price table.
    pub fn prices(&self) -> Arc<PriceTable> {
        self.meter.prices()
    }

    /// Replaces the price table (operator only). Takes effect for requests that start after it.
    pub async fn set_prices(
        &self,
        caller: &Caller,
        table: PriceTable,
    ) -> Result<PriceTable, ServiceError> {
        if !caller.is_operator() {
            return Err(ServiceError::Forbidden(
                "set prices (operator key required)",
            ));
        }
        table
            .validate()
            .map_err(|e| ServiceError::invalid(e.field, e.message))?;
        let before = self.meter.prices();
        let text =
            serde_json::to_string(&table).map_err(|e| ServiceError::Internal(e.to_string()))?;
        self.store
            .put_setting(crate::metering::PRICE_TABLE_SETTING, &text)
            .await?;
        self.meter.set_prices(table.clone());
        self.audit(
            caller,
            None,
            "prices.update",
            None,
            Some(serde_json::json!({"before": *before, "after": table})),
        )
        .await?;
        Ok(table)
    }
}
