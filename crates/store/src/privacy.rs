//! Encryption at rest and the rights of end users: per-tenant data keys, user attributes the
//! platform encrypts before they reach the store, access to everything held about a user, and
//! erasure with proof.
//!
//! The store never sees a plaintext key or decrypts anything: it keeps each tenant's data key
//! wrapped by a master key (named by `master_id`) and swaps wrappings atomically when the master
//! key rotates. An erasure leaves a record (a keyed hash of the user, never the id) so that the
//! operator can show it happened without keeping what was erased.

use sqlx::{AssertSqlSafe, Row};

use crate::{
    FeedbackRow, ROWS_PER_STATEMENT, Result, Store, UserRow, dedup_last_wins, now_ms,
    push_placeholders, sql_limit,
};

impl Store {
    // ----------------------------------------------------------------------------------------
    // Data keys

    /// The tenant's wrapped data key: `(master_id, wrapped)`.
    pub async fn data_key(&self, tenant_id: i64) -> Result<Option<(String, String)>> {
        let row =
            sqlx::query("SELECT master_id, wrapped FROM tenant_data_keys WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_optional(self.pool())
                .await?;
        row.map(|r| -> Result<(String, String)> {
            Ok((r.try_get("master_id")?, r.try_get("wrapped")?))
        })
        .transpose()
    }

    /// Stores the tenant's wrapped data key unless one exists, and returns the one stored: when
    /// two processes create a key for the same tenant at once, both end up using the winner's.
    pub async fn insert_data_key(
        &self,
        tenant_id: i64,
        master_id: &str,
        wrapped: &str,
    ) -> Result<(String, String)> {
        sqlx::query(
            "INSERT INTO tenant_data_keys (tenant_id, master_id, wrapped, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(master_id)
        .bind(wrapped)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        // The row exists now, ours or the one that won the race; it is never deleted.
        self.data_key(tenant_id).await?.ok_or_else(|| {
            crate::StoreError::Corrupt(format!("data key of tenant {tenant_id} vanished"))
        })
    }

    /// Every wrapped data key: `(tenant_id, master_id, wrapped)`, by tenant.
    pub async fn all_data_keys(&self) -> Result<Vec<(i64, String, String)>> {
        let rows = sqlx::query(
            "SELECT tenant_id, master_id, wrapped FROM tenant_data_keys ORDER BY tenant_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("tenant_id")?,
                    r.try_get("master_id")?,
                    r.try_get("wrapped")?,
                ))
            })
            .collect()
    }

    /// Re-wraps data keys in ONE transaction. Each entry is `(tenant_id, old_wrapped,
    /// new_master_id, new_wrapped)` and replaces the row only if it still holds `old_wrapped`
    /// (compare-and-swap: a concurrent re-wrap is not overwritten). Returns how many rows changed.
    pub async fn rewrap_data_keys(&self, entries: &[(i64, String, String, String)]) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let mut changed = 0;
        for (tenant_id, old_wrapped, new_master_id, new_wrapped) in entries {
            changed += sqlx::query(
                "UPDATE tenant_data_keys SET master_id = $1, wrapped = $2 \
                 WHERE tenant_id = $3 AND wrapped = $4",
            )
            .bind(new_master_id)
            .bind(new_wrapped)
            .bind(*tenant_id)
            .bind(old_wrapped)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(changed)
    }

    // ----------------------------------------------------------------------------------------
    // Users

    /// Every user of a tenant, oldest first.
    pub async fn all_users(&self, tenant_id: i64) -> Result<Vec<UserRow>> {
        let rows = sqlx::query(
            "SELECT id, attributes, updated_at FROM users WHERE tenant_id = $1 \
             ORDER BY created_at, id",
        )
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(UserRow::from_row).collect()
    }

    /// Rewrites the stored attributes text of existing users, `(user_id, attributes)`, leaving
    /// `updated_at` alone: this changes how the data is stored (encrypting rows written before
    /// encryption was on), not the data. Unknown users are skipped; returns how many rows changed.
    pub async fn set_user_attributes(
        &self,
        tenant_id: i64,
        rows: &[(String, String)],
    ) -> Result<u64> {
        // One row is updated from at most one input row (the last), on both backends.
        let rows = dedup_last_wins(rows, |r| r.0.as_str());
        let mut tx = self.begin_write().await?;
        let mut changed = 0;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            // `VALUES` names its columns column1, column2 on SQLite and PostgreSQL alike.
            let mut values = String::new();
            push_placeholders(self.backend, &mut values, chunk.len(), 2);
            let tenant = 2 * chunk.len() + 1;
            let sql = format!(
                "UPDATE users SET attributes = v.column2 FROM (VALUES {values}) AS v \
                 WHERE users.tenant_id = ${tenant} AND users.id = v.column1"
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (id, attributes) in chunk {
                q = q.bind(id).bind(attributes);
            }
            changed += q.bind(tenant_id).execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(changed)
    }

    // ----------------------------------------------------------------------------------------
    // Access and erasure

    /// Every feedback event of a user, oldest first (what a subject access request returns).
    pub async fn user_feedback_all(
        &self,
        tenant_id: i64,
        user_id: &str,
    ) -> Result<Vec<FeedbackRow>> {
        self.fold_feedback().await?;
        let rows = sqlx::query(
            "SELECT user_id, item_id, kind, value, ts FROM feedback \
             WHERE tenant_id = $1 AND user_id = $2 ORDER BY ts, item_id, kind",
        )
        .bind(tenant_id)
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(FeedbackRow::from_row).collect()
    }

    /// Erases a user in ONE transaction: their feedback, their user row, and a `user_erasures`
    /// record of it (`user_hash`, the acting key, how many events went). Returns the number of
    /// events deleted, or `None` — recording nothing — when the tenant held neither a user row nor
    /// feedback for `user_id`.
    pub async fn erase_user(
        &self,
        tenant_id: i64,
        user_id: &str,
        user_hash: &str,
        key_id: Option<&str>,
        at: i64,
    ) -> Result<Option<u64>> {
        let mut tx = self.begin_write().await?;
        crate::feedback_log::fold_in(&mut tx, self.backend).await?;
        let events = sqlx::query("DELETE FROM feedback WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let users = sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if events == 0 && users == 0 {
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO user_erasures (tenant_id, user_hash, key_id, events_deleted, at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(tenant_id)
        .bind(user_hash)
        .bind(key_id)
        .bind(i64::try_from(events).unwrap_or(i64::MAX))
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(events))
    }

    /// A tenant's erasure records, newest first: `(user_hash, key_id, events_deleted, at)`.
    pub async fn user_erasures(
        &self,
        tenant_id: i64,
        limit: usize,
    ) -> Result<Vec<(String, Option<String>, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT user_hash, key_id, events_deleted, at FROM user_erasures \
             WHERE tenant_id = $1 ORDER BY at DESC, user_hash LIMIT $2",
        )
        .bind(tenant_id)
        .bind(sql_limit(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("user_hash")?,
                    r.try_get("key_id")?,
                    r.try_get("events_deleted")?,
                    r.try_get("at")?,
                ))
            })
            .collect()
    }
}
