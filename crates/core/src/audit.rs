//! The audit log: who (key id) did what to which target, when and from where — for key and
//! tenant administration, policy, budget and price changes, deletions, exports and erasures.
//!
//! Entries are appended and never changed: the store refuses updates and deletes of the table
//! (a database trigger), so even a bug here cannot rewrite history. Entries name users by a
//! hash (see [`crate::privacy::user_ref`]), never by id, and never hold secrets.

use marquee_store::{AuditFilter, NewAudit};
use serde::Serialize;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::ServiceError;
use crate::types::Timestamp;

/// One entry as the API shows it.
#[derive(utoipa::ToSchema, Clone, Debug, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    /// `None` for operator-level actions (tenants, prices).
    pub tenant: Option<String>,
    /// The key that acted (`None`: the CLI on the data directory).
    pub key_id: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<Value>,
    /// The peer address of the request.
    pub remote: Option<String>,
    pub at: Timestamp,
}

/// Which entries to read.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// Exact action, or a prefix ending in `.` (`key.`).
    pub action: Option<String>,
    /// Entries older than this id (paging).
    pub before: Option<i64>,
    pub limit: usize,
}

pub const MAX_AUDIT_PAGE: usize = 1_000;

impl crate::Service {
    /// Appends an entry for an action `caller` took. An action that cannot be audited is
    /// reported as failed, so the caller knows the record is missing.
    pub async fn audit(
        &self,
        caller: &Caller,
        tenant_id: Option<i64>,
        action: &str,
        target: Option<&str>,
        detail: Option<Value>,
    ) -> Result<(), ServiceError> {
        let entry = NewAudit {
            tenant_id,
            key_id: caller.key_id().map(str::to_string),
            action: action.to_string(),
            target: target.map(str::to_string),
            detail: detail.map(|d| d.to_string()),
            remote: caller.meta.remote.clone(),
            at: marquee_store::now_ms(),
        };
        self.store.append_audit(&entry).await.map_err(|e| {
            tracing::error!(action, error = %e, "the audit log could not be written");
            ServiceError::from(e)
        })?;
        Ok(())
    }

    /// Reads the audit log: a tenant's entries, or with `None` (operator) every entry.
    pub async fn audit_log(
        &self,
        tenant_id: Option<i64>,
        query: &AuditQuery,
    ) -> Result<Vec<AuditEntry>, ServiceError> {
        if let Some(a) = &query.action
            && (a.is_empty() || a.len() > 64)
        {
            return Err(ServiceError::invalid("action", "must be 1-64 characters"));
        }
        let rows = self
            .store
            .list_audit(&AuditFilter {
                tenant_id,
                from_ms: query.from.map(|t| t.0),
                to_ms: query.to.map(|t| t.0),
                action: query.action.clone(),
                before_id: query.before,
                limit: query.limit.clamp(1, MAX_AUDIT_PAGE),
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| AuditEntry {
                id: r.id,
                tenant: r.tenant_id.map(|id| {
                    self.tenant(id)
                        .map_or_else(|| id.to_string(), |t| t.name.clone())
                }),
                key_id: r.key_id,
                action: r.action,
                target: r.target,
                detail: r.detail.and_then(|d| serde_json::from_str(&d).ok()),
                remote: r.remote,
                at: Timestamp(r.at),
            })
            .collect())
    }
}

/// Records an action taken on the data directory by the command line (no key, no network
/// peer: `remote` says `cli`).
pub async fn record_cli(
    store: &marquee_store::Store,
    tenant_id: Option<i64>,
    action: &str,
    target: Option<&str>,
    detail: Option<Value>,
) -> Result<(), ServiceError> {
    store
        .append_audit(&NewAudit {
            tenant_id,
            key_id: None,
            action: action.to_string(),
            target: target.map(str::to_string),
            detail: detail.map(|d| d.to_string()),
            remote: Some("cli".into()),
            at: marquee_store::now_ms(),
        })
        .await?;
    Ok(())
}
