//! What is held about a user, kept unreadable at rest, exportable and erasable.
//!
//! **Encryption at rest.** User attributes (and any free text the tenant stores about a user)
//! are sealed with the tenant's own data key (XChaCha20-Poly1305) before they reach the store,
//! bound to the tenant and the user id so that a sealed value cannot be moved to another user.
//! Data keys are stored wrapped by the operator's master key, which is given by file or
//! environment and never stored beside the data: a copy of the database alone reveals no user
//! attribute. Rotating the master key re-wraps the data keys only ([`rotate_master_key`]), so
//! the data itself is not rewritten and running servers, which hold the unwrapped data keys,
//! keep serving.
//!
//! **Export and erasure.** Everything held about a user can be exported; erasing a user removes
//! their attributes and events in one transaction, removes them from the serving state at once
//! (their own recommendations, popularity counts), asks for a retrain so the trained model loses
//! their influence too, and records that the erasure happened (with a hash, not the id).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use marquee_platform::{CryptoError, DataKey, MasterKey, MasterKeys};
use marquee_store::{Store, UserRow};
use parking_lot::RwLock;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::error::ServiceError;
use crate::state::TenantState;
use crate::types::{Timestamp, User, validate_id};

/// The master keys and the tenants' unwrapped data keys.
#[derive(Default)]
pub(crate) struct Crypto {
    master: RwLock<Option<Arc<MasterKeys>>>,
    data_keys: RwLock<HashMap<i64, Arc<DataKey>>>,
}

fn crypto_error(e: CryptoError) -> ServiceError {
    // Details (which key, which tenant) go to the log only.
    ServiceError::Internal(format!("user data cannot be decrypted: {e}"))
}

fn aad(tenant_id: i64, user_id: &str) -> Vec<u8> {
    format!("users.attributes|{tenant_id}|{user_id}").into_bytes()
}

impl Crypto {
    pub(crate) fn set_master(&self, keys: MasterKeys) {
        *self.master.write() = Some(Arc::new(keys));
    }

    pub(crate) fn enabled(&self) -> bool {
        self.master.read().is_some()
    }

    /// The tenant's data key, created (and stored wrapped) on first use; `None` when no master
    /// key is configured.
    async fn data_key(
        &self,
        store: &Store,
        tenant_id: i64,
    ) -> Result<Option<Arc<DataKey>>, ServiceError> {
        let Some(master) = self.master.read().clone() else {
            return Ok(None);
        };
        if let Some(k) = self.data_keys.read().get(&tenant_id) {
            return Ok(Some(Arc::clone(k)));
        }
        let (_, wrapped) = match store.data_key(tenant_id).await? {
            Some(found) => found,
            None => {
                let fresh = DataKey::generate();
                let wrapped = master.current.wrap(&fresh, tenant_id);
                // Another process may have stored one first: use whichever was stored.
                store
                    .insert_data_key(tenant_id, master.current.id(), &wrapped)
                    .await?
            }
        };
        let key = Arc::new(master.unwrap(&wrapped, tenant_id).map_err(crypto_error)?);
        self.data_keys.write().insert(tenant_id, Arc::clone(&key));
        Ok(Some(key))
    }

    /// The stored form of a user's attributes: sealed when a master key is configured.
    pub(crate) async fn seal(
        &self,
        store: &Store,
        tenant_id: i64,
        user_id: &str,
        attributes: &Map<String, Value>,
    ) -> Result<String, ServiceError> {
        let json = Value::Object(attributes.clone()).to_string();
        Ok(match self.data_key(store, tenant_id).await? {
            Some(key) => key.encrypt(json.as_bytes(), &aad(tenant_id, user_id)),
            None => json,
        })
    }

    /// A user's attributes from their stored form (sealed, or plain JSON written before
    /// encryption was configured).
    pub(crate) async fn open(
        &self,
        store: &Store,
        tenant_id: i64,
        user_id: &str,
        stored: &str,
    ) -> Result<Map<String, Value>, ServiceError> {
        let plain: Vec<u8> = if DataKey::is_encrypted(stored) {
            let key = self.data_key(store, tenant_id).await?.ok_or_else(|| {
                ServiceError::Unavailable(
                    "user data is encrypted and no master key is configured".into(),
                )
            })?;
            key.decrypt(stored, &aad(tenant_id, user_id))
                .map_err(crypto_error)?
        } else {
            stored.as_bytes().to_vec()
        };
        match serde_json::from_slice(&plain) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Ok(Map::new()),
            Err(e) => Err(ServiceError::Internal(format!(
                "stored user attributes are not JSON: {e}"
            ))),
        }
    }
}

/// Re-wraps every tenant's data key from `current` (the keys in use) to `new`, in one
/// transaction. Returns how many data keys were re-wrapped. Servers running with the old master
/// key keep serving (they hold the unwrapped data keys); restart them with the new one.
pub async fn rotate_master_key(
    store: &Store,
    current: &MasterKeys,
    new: &MasterKey,
) -> Result<u64, ServiceError> {
    let mut entries = Vec::new();
    for (tenant, master_id, wrapped) in store.all_data_keys().await? {
        if master_id == new.id() {
            continue;
        }
        let key = current
            .unwrap(&wrapped, tenant)
            .map_err(|e| ServiceError::Invalid {
                field: "master key".into(),
                message: format!("cannot unwrap the data key of tenant {tenant}: {e}"),
            })?;
        entries.push((
            tenant,
            wrapped,
            new.id().to_string(),
            new.wrap(&key, tenant),
        ));
    }
    Ok(store.rewrap_data_keys(&entries).await?)
}

/// Everything Marquee holds about one user.
#[derive(utoipa::ToSchema, Clone, Debug, Serialize)]
pub struct UserExport {
    pub user_id: String,
    pub attributes: Option<Map<String, Value>>,
    pub updated_at: Option<Timestamp>,
    pub feedback: Vec<ExportedEvent>,
    pub exported_at: Timestamp,
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize)]
pub struct ExportedEvent {
    pub item_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: Option<f64>,
    pub timestamp: Timestamp,
}

/// What an erasure removed.
#[derive(utoipa::ToSchema, Clone, Debug, Serialize)]
pub struct Erasure {
    pub user_id: String,
    pub events_deleted: u64,
    pub erased_at: Timestamp,
    /// The trained model still carries the user's influence until this retrain finishes.
    pub retrain_requested: bool,
}

/// The keyed hash recorded for an erasure: proves that a given user was erased (whoever knows
/// the id can recompute it) without keeping the id.
pub fn erasure_hash(tenant_id: i64, user_id: &str) -> String {
    hex::encode(Sha256::digest(
        format!("marquee-erasure|{tenant_id}|{user_id}").as_bytes(),
    ))
}

/// How the audit log names a user: by the start of their erasure hash, so that the log (which
/// is kept forever) does not keep the ids of erased users.
pub fn user_ref(tenant_id: i64, user_id: &str) -> String {
    format!("user:{}", &erasure_hash(tenant_id, user_id)[..16])
}

impl crate::Service {
    /// Sets the master keys used to seal user data, and seals any attributes still stored in
    /// plain text (written before encryption was configured). Returns how many were sealed.
    ///
    /// Fails, changing nothing, when a tenant's data key was wrapped by a master key that is
    /// not among `keys` (a server started with the wrong or an outdated key must not start).
    ///
    /// Every tenant's data key is unwrapped here, once, and kept: a `marquee keys rotate-master`
    /// run later re-wraps the stored keys under a master key this process does not hold, and it
    /// must go on serving every tenant's users until it is restarted. Data keys still wrapped
    /// by a previous master key (one given as `--previous-master-key-file`, e.g. a tenant
    /// created by a server that had not been restarted yet) are re-wrapped under the current
    /// one, so that the previous key can be dropped at the next start.
    pub async fn set_master_keys(&self, keys: MasterKeys) -> Result<u64, ServiceError> {
        let mut opened = HashMap::new();
        let mut stale = Vec::new();
        for (tenant, master_id, wrapped) in self.store.all_data_keys().await? {
            match keys.unwrap(&wrapped, tenant) {
                Ok(key) => {
                    if master_id != keys.current.id() {
                        let rewrapped = keys.current.wrap(&key, tenant);
                        stale.push((tenant, wrapped, keys.current.id().to_string(), rewrapped));
                    }
                    opened.insert(tenant, Arc::new(key));
                }
                Err(e) => {
                    return Err(ServiceError::Invalid {
                        field: "master key".into(),
                        message: format!(
                            "it does not open the stored data keys (tenant {tenant}'s is wrapped \
                             by master key {master_id}; this one is {}): {e}",
                            keys.current.id()
                        ),
                    });
                }
            }
        }
        if !stale.is_empty() {
            let n = self.store.rewrap_data_keys(&stale).await?;
            tracing::info!(
                data_keys = n,
                "data keys wrapped by a previous master key re-wrapped under the current one"
            );
        }
        self.crypto.set_master(keys);
        self.crypto.data_keys.write().extend(opened);
        let mut sealed = 0;
        // A page of users at a time: a tenant of millions at once was hundreds of megabytes
        // of rows in memory at every start.
        const PAGE: usize = 10_000;
        for tenant in self.store.list_tenants().await? {
            let mut after: Option<String> = None;
            loop {
                let page = self
                    .store
                    .list_users(tenant.id, after.as_deref(), PAGE)
                    .await?;
                let mut rows = Vec::new();
                for user in &page {
                    if DataKey::is_encrypted(&user.attributes) {
                        continue;
                    }
                    let attributes = self
                        .crypto
                        .open(&self.store, tenant.id, &user.id, &user.attributes)
                        .await?;
                    let text = self
                        .crypto
                        .seal(&self.store, tenant.id, &user.id, &attributes)
                        .await?;
                    rows.push((user.id.clone(), text));
                }
                if !rows.is_empty() {
                    sealed += self.store.set_user_attributes(tenant.id, &rows).await?;
                }
                if page.len() < PAGE {
                    break;
                }
                after = page.into_iter().last().map(|u| u.id);
            }
        }
        if sealed > 0 {
            // The plain text must not survive in the write-ahead log either.
            self.store.checkpoint().await?;
            tracing::info!(
                users = sealed,
                "sealed user attributes stored in plain text"
            );
        }
        Ok(sealed)
    }

    /// Whether user data is sealed at rest (a master key is configured).
    pub fn encryption_enabled(&self) -> bool {
        self.crypto.enabled()
    }

    pub(crate) async fn seal_user(
        &self,
        tenant_id: i64,
        user: &User,
    ) -> Result<UserRow, ServiceError> {
        Ok(UserRow {
            id: user.id.clone(),
            attributes: self
                .crypto
                .seal(&self.store, tenant_id, &user.id, &user.attributes)
                .await?,
            updated_at: user.updated_at.0,
        })
    }

    pub(crate) async fn open_user(
        &self,
        tenant_id: i64,
        row: UserRow,
    ) -> Result<User, ServiceError> {
        let attributes = self
            .crypto
            .open(&self.store, tenant_id, &row.id, &row.attributes)
            .await?;
        Ok(User {
            id: row.id,
            attributes,
            updated_at: Timestamp(row.updated_at),
        })
    }

    /// Everything held about `user_id`: attributes and every feedback event. Not found when
    /// nothing is held.
    pub async fn export_user(
        &self,
        caller: &Caller,
        tenant: &TenantState,
        user_id: &str,
    ) -> Result<UserExport, ServiceError> {
        validate_id("user_id", user_id)?;
        let row = self.store.get_user(tenant.id, user_id).await?;
        let events = self.store.user_feedback_all(tenant.id, user_id).await?;
        if row.is_none() && events.is_empty() {
            return Err(ServiceError::not_found("user", user_id));
        }
        let user = match row {
            Some(r) => Some(self.open_user(tenant.id, r).await?),
            None => None,
        };
        self.audit(
            caller,
            Some(tenant.id),
            "user.export",
            Some(&user_ref(tenant.id, user_id)),
            Some(serde_json::json!({"events": events.len()})),
        )
        .await?;
        Ok(UserExport {
            user_id: user_id.to_string(),
            updated_at: user.as_ref().map(|u| u.updated_at),
            attributes: user.map(|u| u.attributes),
            feedback: events
                .into_iter()
                .map(|e| ExportedEvent {
                    item_id: e.item_id,
                    kind: e.kind,
                    value: e.value,
                    timestamp: Timestamp(e.timestamp),
                })
                .collect(),
            exported_at: Timestamp::now(),
        })
    }

    /// Erases a user completely: attributes and events (one transaction, with an erasure
    /// record), their place in the serving state, and — by a retrain requested now — their
    /// influence on the trained model.
    pub async fn erase_user(
        &self,
        caller: &Caller,
        tenant: &TenantState,
        user_id: &str,
    ) -> Result<Erasure, ServiceError> {
        validate_id("user_id", user_id)?;
        let _guard = tenant.write_lock.lock().await;
        let now = marquee_store::now_ms();
        let deleted = self
            .store
            .erase_user(
                tenant.id,
                user_id,
                &erasure_hash(tenant.id, user_id),
                caller.key_id(),
                now,
            )
            .await?
            .ok_or_else(|| ServiceError::not_found("user", user_id))?;
        let had_events = {
            let mut catalog = tenant.catalog.write();
            let mut users = tenant.users.write();
            match users.index.get(user_id).copied() {
                Some(u) => {
                    let entry = &mut users.users[u as usize];
                    entry.deleted = true;
                    let had = !entry.events().is_empty();
                    for e in entry.remove_events(|_| true).iter().filter(|e| e.positive) {
                        catalog.add_positive(e.item, -1);
                    }
                    had
                }
                None => false,
            }
        };
        // The erased rows must not survive in the write-ahead log either (best effort: a
        // reader holding the log open delays it to a later checkpoint).
        if let Err(e) = self.store.checkpoint().await {
            tracing::warn!(error = %e, "checkpoint after an erasure failed");
        }
        let retrain = had_events || deleted > 0;
        if retrain {
            tenant.last_erasure_ms.fetch_max(now, Ordering::AcqRel);
            tenant.retrain_requested.store(true, Ordering::Release);
        }
        self.audit(
            caller,
            Some(tenant.id),
            "user.erase",
            Some(&user_ref(tenant.id, user_id)),
            Some(serde_json::json!({"events_deleted": deleted})),
        )
        .await?;
        Ok(Erasure {
            user_id: user_id.to_string(),
            events_deleted: deleted,
            erased_at: Timestamp(now),
            retrain_requested: retrain,
        })
    }
}
