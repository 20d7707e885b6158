//! Who is calling: API keys resolved in memory, kept in step with the store.
//!
//! Every request presents a key; looking it up in the database each time would put a round trip
//! on the hot path. The key ring holds the hashes of the active keys in memory. A key created or
//! revoked by another process (the CLI on the same data directory, or another node) is picked up
//! by [`KeyRing::refresh`], which the service runs every poll interval; a key not yet in memory is
//! also looked up in the store on first use, so a freshly created key works at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use marquee_platform::{Capability, KeyKind, KeyPolicy, hash_secret, looks_like_key};
use marquee_store::{ApiKeyRow, Store};
use parking_lot::{Mutex, RwLock};
use subtle::ConstantTimeEq;

use crate::error::ServiceError;
use crate::state::TenantState;

#[derive(Clone, Debug)]
pub struct KeyEntry {
    pub id: String,
    pub tenant_id: Option<i64>,
    pub kind: KeyKind,
    pub policy: Arc<KeyPolicy>,
    /// Unix ms after which the key no longer works (set by expiry or by rotation's grace).
    pub expires_at: Option<i64>,
    hash: String,
}

impl KeyEntry {
    /// `None` for a row this version cannot read — such a key does not work (fail closed).
    fn from_row(row: &ApiKeyRow) -> Option<Self> {
        let policy = match row.policy.as_deref() {
            None => KeyPolicy::default(),
            Some(text) => match serde_json::from_str(text) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(key = %row.id, error = %e, "unreadable key policy: the key is disabled");
                    return None;
                }
            },
        };
        Some(KeyEntry {
            id: row.id.clone(),
            tenant_id: row.tenant_id,
            kind: KeyKind::parse(&row.kind)?,
            policy: Arc::new(policy),
            expires_at: row.expires_at,
            hash: row.hash.clone(),
        })
    }

    fn expired(&self, now_ms: i64) -> bool {
        self.expires_at.is_some_and(|at| at <= now_ms)
    }
}

/// How long an unknown key is remembered as unknown, so that a client hammering with a bad key
/// does not turn every request into a database query.
const NEGATIVE_TTL: Duration = Duration::from_secs(2);
const NEGATIVE_CAPACITY: usize = 10_000;

#[derive(Default)]
pub struct KeyRing {
    by_hash: RwLock<HashMap<String, Arc<KeyEntry>>>,
    unknown: Mutex<HashMap<String, Instant>>,
    /// Ids of keys used since the last flush, for `last_used_at`.
    used: Mutex<Vec<String>>,
}

impl KeyRing {
    /// Replaces the ring's content with the store's active keys.
    pub async fn refresh(&self, store: &Store) -> Result<(), ServiceError> {
        let rows = store.active_api_keys().await?;
        let map: HashMap<String, Arc<KeyEntry>> = rows
            .iter()
            .filter_map(KeyEntry::from_row)
            .map(|k| (k.hash.clone(), Arc::new(k)))
            .collect();
        *self.by_hash.write() = map;
        Ok(())
    }

    pub fn insert(&self, row: &ApiKeyRow) {
        if let Some(k) = KeyEntry::from_row(row) {
            self.unknown.lock().remove(&k.hash);
            self.by_hash.write().insert(k.hash.clone(), Arc::new(k));
        }
    }

    pub fn remove_id(&self, id: &str) {
        self.by_hash.write().retain(|_, k| k.id != id);
    }

    /// Resolves a presented secret to its key, or `None`.
    pub async fn authenticate(&self, store: &Store, secret: &str) -> Option<Arc<KeyEntry>> {
        if !looks_like_key(secret) {
            return None;
        }
        let hash = hash_secret(secret);
        let found = self.by_hash.read().get(&hash).cloned();
        let entry = match found {
            Some(k) => k,
            None => {
                {
                    let mut unknown = self.unknown.lock();
                    if unknown
                        .get(&hash)
                        .is_some_and(|t| t.elapsed() < NEGATIVE_TTL)
                    {
                        return None;
                    }
                    unknown.remove(&hash);
                }
                let row = store.api_key_by_hash(&hash).await.ok().flatten();
                let now = marquee_store::now_ms();
                match row
                    .filter(|r| r.revoked_at.is_none() && r.expires_at.is_none_or(|at| at > now))
                {
                    Some(row) => {
                        self.insert(&row);
                        Arc::new(KeyEntry::from_row(&row)?)
                    }
                    None => {
                        let mut unknown = self.unknown.lock();
                        if unknown.len() >= NEGATIVE_CAPACITY {
                            unknown.clear();
                        }
                        unknown.insert(hash, Instant::now());
                        return None;
                    }
                }
            }
        };
        // The map lookup already matched; this keeps the final comparison constant-time as well.
        if !bool::from(entry.hash.as_bytes().ct_eq(hash.as_bytes())) {
            return None;
        }
        if entry.expired(marquee_store::now_ms()) {
            return None;
        }
        self.used.lock().push(entry.id.clone());
        Some(entry)
    }

    /// Ids used since the last call, deduplicated.
    pub fn take_used(&self) -> Vec<String> {
        let mut ids = std::mem::take(&mut *self.used.lock());
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// Where a request came from and which route it took: for the usage ledger and the audit log.
#[derive(Clone, Debug, Default)]
pub struct RequestMeta {
    /// The route's pattern (`/v1/recommend/{user_id}`), never the raw path (which may carry
    /// user ids); for calls that do not come over HTTP, what made them (`cli`).
    pub route: String,
    /// The request's `x-request-id`.
    pub request_id: Option<String>,
    /// The peer address.
    pub remote: Option<String>,
}

/// How a request is authorised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    Key {
        id: String,
        kind: KeyKind,
    },
    /// No key, on a tenant whose read-only recommend routes the operator published (`--demo`).
    Public,
}

/// The resolved caller of a request.
#[derive(Clone)]
pub struct Caller {
    pub access: Access,
    /// `None` only for the operator's admin keys.
    pub tenant: Option<Arc<TenantState>>,
    /// What the key may do beyond its kind's rules: scopes, models, origins, limits, budget.
    pub policy: Arc<KeyPolicy>,
    pub meta: Arc<RequestMeta>,
}

impl Caller {
    pub fn allows(&self, capability: Capability) -> bool {
        match &self.access {
            Access::Key { kind, .. } => self.policy.allows(*kind, capability),
            Access::Public => capability == Capability::Recommend,
        }
    }

    /// Ok if the caller may do `capability`; a keyless caller is told to bring a key (401), a
    /// key without the capability is refused (403, naming the missing scope).
    pub fn require(&self, capability: Capability) -> Result<(), ServiceError> {
        if self.allows(capability) {
            return Ok(());
        }
        Err(match self.access {
            Access::Public => ServiceError::Unauthorized,
            Access::Key { .. } => ServiceError::MissingScope(capability.as_str()),
        })
    }

    /// Ok if the key may use `model` (403 otherwise).
    pub fn require_model(&self, model: &str) -> Result<(), ServiceError> {
        if self.policy.allows_model(model) {
            Ok(())
        } else {
            Err(ServiceError::ModelNotAllowed(model.to_string()))
        }
    }

    /// The kind of key, if one was presented.
    pub fn kind(&self) -> Option<KeyKind> {
        match &self.access {
            Access::Key { kind, .. } => Some(*kind),
            Access::Public => None,
        }
    }

    /// The caller's tenant, if it may do `capability` there.
    pub fn tenant_for(&self, capability: Capability) -> Result<&Arc<TenantState>, ServiceError> {
        self.require(capability)?;
        self.tenant.as_ref().ok_or(ServiceError::Forbidden(
            "use tenant data with an operator key",
        ))
    }

    /// Operator: an admin key that belongs to no tenant.
    pub fn is_operator(&self) -> bool {
        matches!(
            self.access,
            Access::Key {
                kind: KeyKind::Admin,
                ..
            }
        ) && self.tenant.is_none()
    }

    pub fn key_id(&self) -> Option<&str> {
        match &self.access {
            Access::Key { id, .. } => Some(id),
            Access::Public => None,
        }
    }
}
