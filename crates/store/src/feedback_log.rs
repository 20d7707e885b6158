//! Feedback is acknowledged once it is appended to a log, and folded into the keyed table later.
//!
//! The `feedback` table is keyed by (tenant, user, item, type), so a batch of events from many
//! users lands all over its B-tree (and its by-item index): every commit rewrote a page per
//! event or so, megabytes of write-ahead log per batch, and that capped ingestion far below what
//! the disk can commit. `feedback_log` is appended in arrival order instead (a rowid table: new
//! rows go to its last page), which is what a commit must make durable; a fold then moves
//! everything logged so far into `feedback` in one transaction, sorted by key, so each page of
//! the table is written once per fold rather than once per batch, and empties the log.
//!
//! The keyed table is what every reader sees, so every function that reads or deletes feedback
//! folds first ([`Store::fold_feedback`], or [`fold_in`] inside its own write transaction):
//! nothing acknowledged is ever missing from a read, and a deletion cannot be undone by a
//! logged event folded after it. The service also folds in the background
//! (`Service::run_background`), so the log stays short.
//!
//! A fold applies the log in order: for one key the last event logged wins, as when events
//! were written to the table directly. Folds are serialized (SQLite writes are; PostgreSQL takes
//! an exclusive lock on the log, which also waits for appends still in flight, so no event with
//! a lower sequence number can become visible after a fold passed it).

use sqlx::{AssertSqlSafe, Row};

use crate::{Backend, Result, Store};

/// Moves every logged event into `feedback` and empties the log, inside `tx` (a write
/// transaction). Returns how many events were folded.
pub(crate) async fn fold_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
) -> Result<u64> {
    if backend == Backend::Postgres {
        sqlx::query("LOCK TABLE feedback_log IN EXCLUSIVE MODE")
            .execute(&mut **tx)
            .await?;
    }
    let last: Option<i64> = sqlx::query("SELECT MAX(seq) AS last FROM feedback_log")
        .fetch_one(&mut **tx)
        .await?
        .try_get("last")?;
    let Some(last) = last else {
        return Ok(0);
    };
    // SQLite upserts row by row in the SELECT's order, so the latest event of a key is applied
    // last; PostgreSQL refuses to update one row twice in a statement and keeps the latest.
    let fold = match backend {
        Backend::Sqlite => {
            "INSERT INTO feedback (tenant_id, user_id, item_id, kind, value, ts) \
             SELECT tenant_id, user_id, item_id, kind, value, ts FROM feedback_log \
             WHERE seq <= $1 ORDER BY tenant_id, user_id, item_id, kind, seq \
             ON CONFLICT (tenant_id, user_id, item_id, kind) DO UPDATE SET \
             value = excluded.value, ts = excluded.ts"
        }
        Backend::Postgres => {
            "INSERT INTO feedback (tenant_id, user_id, item_id, kind, value, ts) \
             SELECT DISTINCT ON (tenant_id, user_id, item_id, kind) \
             tenant_id, user_id, item_id, kind, value, ts FROM feedback_log \
             WHERE seq <= $1 ORDER BY tenant_id, user_id, item_id, kind, seq DESC \
             ON CONFLICT (tenant_id, user_id, item_id, kind) DO UPDATE SET \
             value = excluded.value, ts = excluded.ts"
        }
    };
    sqlx::query(AssertSqlSafe(fold))
        .bind(last)
        .execute(&mut **tx)
        .await?;
    let moved = sqlx::query("DELETE FROM feedback_log WHERE seq <= $1")
        .bind(last)
        .execute(&mut **tx)
        .await?;
    Ok(moved.rows_affected())
}

impl Store {
    /// Folds the feedback log into the keyed table (see the module docs); a no-op, without a
    /// write transaction, when the log is empty. Returns how many events were folded.
    pub async fn fold_feedback(&self) -> Result<u64> {
        if self.feedback_log_is_empty().await? {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let folded = fold_in(&mut tx, self.backend()).await?;
        tx.commit().await?;
        Ok(folded)
    }

    async fn feedback_log_is_empty(&self) -> Result<bool> {
        let row = sqlx::query("SELECT MAX(seq) AS last FROM feedback_log")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get::<Option<i64>, _>("last")?.is_none())
    }
}
