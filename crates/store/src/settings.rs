//! Operator settings (such as the price table) and per-tenant policies (limits, quotas, budgets).
//!
//! Both are opaque text to the store — the platform layer owns their format — and live in the
//! database rather than in a config file so that every node serving the same database enforces
//! the same prices and limits, and a change made through the API survives a restart.

use sqlx::Row;

use crate::{Result, Store, now_ms};

impl Store {
    pub async fn get_setting(&self, name: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    /// Creates or replaces a setting.
    pub async fn put_setting(&self, name: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(value)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn tenant_policy(&self, tenant_id: i64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT policy FROM tenant_policies WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.try_get("policy")).transpose()?)
    }

    /// Creates or replaces a tenant's policy. The tenant must exist: PostgreSQL checks it, SQLite
    /// (foreign keys off) does not.
    pub async fn put_tenant_policy(&self, tenant_id: i64, policy: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO tenant_policies (tenant_id, policy, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id) DO UPDATE SET policy = excluded.policy, \
             updated_at = excluded.updated_at",
        )
        .bind(tenant_id)
        .bind(policy)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Every tenant's policy, by tenant id.
    pub async fn all_tenant_policies(&self) -> Result<Vec<(i64, String)>> {
        let rows = sqlx::query("SELECT tenant_id, policy FROM tenant_policies ORDER BY tenant_id")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("tenant_id")?, r.try_get("policy")?)))
            .collect()
    }
}
