//! The audit log: who did what to which tenant, and from where.
//!
//! It answers "who created this key, who changed that budget" after the fact, so it is
//! append-only: the database refuses UPDATE and DELETE on it (see the migrations), and entries are
//! read newest first by id, which a writer cannot choose.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::{Conditions, Param, Result, Store, sql_limit};

/// An entry to append.
#[derive(Clone, Debug, PartialEq)]
pub struct NewAudit {
    /// `None`: an operator-level action (tenants, settings).
    pub tenant_id: Option<i64>,
    /// The API key that acted, if any.
    pub key_id: Option<String>,
    /// Dotted verb such as `key.create` or `budget.update`.
    pub action: String,
    /// What was acted on (a key id, a setting name…).
    pub target: Option<String>,
    /// Further detail as JSON.
    pub detail: Option<String>,
    /// The client's address.
    pub remote: Option<String>,
    /// Unix milliseconds.
    pub at: i64,
}

/// A stored entry.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRow {
    /// Increases with every append: the order of the log.
    pub id: i64,
    pub tenant_id: Option<i64>,
    pub key_id: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub remote: Option<String>,
    pub at: i64,
}

impl AuditRow {
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(AuditRow {
            id: r.try_get("id")?,
            tenant_id: r.try_get("tenant_id")?,
            key_id: r.try_get("key_id")?,
            action: r.try_get("action")?,
            target: r.try_get("target")?,
            detail: r.try_get("detail")?,
            remote: r.try_get("remote")?,
            at: r.try_get("at")?,
        })
    }
}

/// Which entries [`Store::list_audit`] returns.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// `None`: every tenant and the operator-level entries.
    pub tenant_id: Option<i64>,
    /// Inclusive lower bound on `at` (Unix milliseconds).
    pub from_ms: Option<i64>,
    /// Exclusive upper bound on `at`.
    pub to_ms: Option<i64>,
    /// An exact action, or every action under a prefix when it ends with `.` (`key.`).
    pub action: Option<String>,
    /// Paging cursor: only entries older than this id.
    pub before_id: Option<i64>,
    /// At most this many entries (0 returns none).
    pub limit: usize,
}

impl Store {
    /// Appends an entry and returns its id.
    pub async fn append_audit(&self, entry: &NewAudit) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO audit_log (tenant_id, key_id, action, target, detail, remote, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(entry.tenant_id)
        .bind(&entry.key_id)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(&entry.detail)
        .bind(&entry.remote)
        .bind(entry.at)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("id")?)
    }

    /// Entries `filter` selects, newest first (by id).
    pub async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>> {
        let mut c = Conditions::default();
        if let Some(tenant_id) = filter.tenant_id {
            let p = c.param(Param::Int(tenant_id));
            c.push(format!("tenant_id = {p}"));
        }
        if let Some(from) = filter.from_ms {
            let p = c.param(Param::Int(from));
            c.push(format!("at >= {p}"));
        }
        if let Some(to) = filter.to_ms {
            let p = c.param(Param::Int(to));
            c.push(format!("at < {p}"));
        }
        if let Some(action) = &filter.action {
            if action.ends_with('.') {
                // A prefix compared as a substring rather than with LIKE, whose wildcards would
                // need escaping and which ignores ASCII case on SQLite.
                let length = c.param(Param::Int(action.chars().count() as i64));
                let prefix = c.param(Param::Text(action.clone()));
                c.push(format!(
                    "substr(action, 1, CAST({length} AS INTEGER)) = {prefix}"
                ));
            } else {
                let p = c.param(Param::Text(action.clone()));
                c.push(format!("action = {p}"));
            }
        }
        if let Some(before) = filter.before_id {
            let p = c.param(Param::Int(before));
            c.push(format!("id < {p}"));
        }
        let limit = c.param(Param::Int(sql_limit(filter.limit)));
        let sql = format!(
            "SELECT id, tenant_id, key_id, action, target, detail, remote, at FROM audit_log{} \
             ORDER BY id DESC LIMIT {limit}",
            c.where_sql()
        );
        let rows = c
            .bind(sqlx::query(AssertSqlSafe(sql)))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(AuditRow::from_row).collect()
    }
}
