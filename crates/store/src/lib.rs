//! Durable storage for Marquee.
//!
//! Everything a tenant sends — catalogue, users, feedback — and everything the platform needs to
//! stay consistent across restarts (tenants, API keys, model versions) lives here. The store is the
//! source of truth: the serving layer keeps an in-memory copy for speed, but a write is
//! acknowledged only after this crate has committed it.
//!
//! The provider platform keeps its records here too: key policies and rotation, operator
//! settings and tenant policies (`settings.rs`), the usage ledger billing is computed from
//! (`usage.rs`), the audit log (`audit.rs`), and wrapped data keys and erasure records
//! (`privacy.rs`). The ledger and the audit log are append-only in the database itself.
//!
//! One set of SQL serves both backends through sqlx's `Any` driver: SQLite (embedded, the default,
//! in WAL mode) and PostgreSQL (for several stateless nodes on one database). The queries use only
//! what both dialects share — `$n` placeholders, `INSERT … ON CONFLICT … DO UPDATE`, `RETURNING`,
//! integers for booleans and timestamps (Unix milliseconds), JSON as text — and the schema has one
//! variant per backend where the DDL differs.

mod audit;
mod feedback_log;
mod gorse;
mod migrations;
mod privacy;
mod rows;
mod settings;
mod usage;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, AssertSqlSafe, Row};

pub use audit::*;
pub use rows::*;
pub use usage::*;

/// Which database is behind the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("unsupported database url {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0} already exists")]
    Conflict(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A query on the `Any` driver whose arguments are already encoded.
pub(crate) type AnyQuery = sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments>;

/// Rows per multi-row `INSERT`: keeps each statement well under SQLite's 32,766 and PostgreSQL's
/// 65,535 bound parameters while amortising the per-statement cost.
const ROWS_PER_STATEMENT: usize = 400;

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// Milliseconds since the Unix epoch, the one time unit stored.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating if needed) the embedded SQLite database `marquee.db` in `data_dir`.
    pub async fn open_data_dir(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Corrupt(format!(
                "cannot create data dir {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join("marquee.db");
        Self::open(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    /// Opens a store from a URL (`sqlite://PATH?mode=rwc`, `sqlite::memory:`, `postgres://…`) and
    /// brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let mut pool_options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        if backend == Backend::Sqlite {
            // WAL lets readers run beside the single writer (and beside a CLI process writing to
            // the same file). synchronous=FULL: a commit is on disk before it is acknowledged.
            pool_options = pool_options.max_connections(8).after_connect(|conn, _| {
                Box::pin(async move {
                    for pragma in [
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA synchronous = FULL",
                        "PRAGMA busy_timeout = 10000",
                        // Overwritten and deleted rows are zeroed, so that plain text replaced
                        // by sealed text (or erased) does not linger in free pages.
                        "PRAGMA secure_delete = ON",
                        // Folding the feedback log writes all over the feedback table and
                        // its index: with SQLite's 2 MB default cache a fold spilled dirty
                        // pages mid-transaction and read pages back from disk. The cache fills
                        // as pages are read and each of the 8 connections has its own, so a
                        // larger one costs up to 8× its size of memory (32 MB each was 256 MB
                        // of a server's RSS after a large tenant was loaded).
                        "PRAGMA cache_size = -8192",
                        // A batch of events dirties pages across the whole feedback index; with
                        // the default (a checkpoint past 1,000 WAL pages) nearly every commit
                        // also copied them all into the database file. Past 10,000 pages
                        // (40 MB), a page changed by several commits is copied once.
                        "PRAGMA wal_autocheckpoint = 10000",
                        // Statement journals (for upserts) in memory, not in temporary files.
                        "PRAGMA temp_store = MEMORY",
                    ] {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            });
        } else {
            pool_options = pool_options.max_connections(16);
        }
        let pool = pool_options.connect_with(options).await?;
        let store = Store { pool, backend };
        migrations::run(&store).await?;
        Ok(store)
    }

    /// A write transaction. On SQLite it takes the write lock at `BEGIN IMMEDIATE`: a deferred
    /// transaction that reads first fails with SQLITE_BUSY_SNAPSHOT ("database is locked") when
    /// another connection commits between its read and its first write, which the busy timeout
    /// cannot retry — and the usage ledger's writer commits every few milliseconds.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Moves the SQLite write-ahead log into the database file and truncates it, so that
    /// older versions of rewritten rows (plain text before it was sealed, erased users) no
    /// longer sit in the log. Nothing to do on PostgreSQL.
    /// A reader in another connection makes the checkpoint give up (`busy`): it is retried
    /// for up to a second.
    pub async fn checkpoint(&self) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Ok(());
        }
        for _ in 0..50 {
            let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.pool)
                .await?;
            let busy: i64 = row.try_get(0).unwrap_or(1);
            if busy == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::warn!("the write-ahead log could not be truncated: readers kept it busy");
        Ok(())
    }

    /// Cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ----------------------------------------------------------------------------------------
    // Tenants

    pub async fn create_tenant(&self, name: &str) -> Result<Tenant> {
        let now = now_ms();
        let row = sqlx::query(
            "INSERT INTO tenants (name, created_at, generation) VALUES ($1, $2, 0) \
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(name)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Tenant {
                id: row.try_get("id")?,
                name: name.to_string(),
                created_at: now,
                generation: 0,
            }),
            None => Err(StoreError::Conflict(format!("tenant {name:?}"))),
        }
    }

    pub async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>> {
        let row =
            sqlx::query("SELECT id, name, created_at, generation FROM tenants WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| Tenant::from_row(&r)).transpose()
    }

    pub async fn tenant_by_id(&self, id: i64) -> Result<Option<Tenant>> {
        let row = sqlx::query("SELECT id, name, created_at, generation FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Tenant::from_row(&r)).transpose()
    }

    pub async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let rows = sqlx::query("SELECT id, name, created_at, generation FROM tenants ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Tenant::from_row).collect()
    }

    /// Marks a tenant's data as changed by a writer outside the serving process (the CLI's
    /// import), so running servers reload it.
    pub async fn bump_generation(&self, tenant_id: i64) -> Result<()> {
        sqlx::query("UPDATE tenants SET generation = generation + 1 WHERE id = $1")
            .bind(tenant_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ----------------------------------------------------------------------------------------
    // API keys

    pub async fn insert_api_key(&self, key: &ApiKeyRow) -> Result<()> {
        Self::insert_api_key_query(key).execute(&self.pool).await?;
        Ok(())
    }

    fn insert_api_key_query(key: &ApiKeyRow) -> AnyQuery {
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, kind, name, prefix, hash, created_at, \
             revoked_at, last_used_at, policy, expires_at, rotated_to) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&key.id)
        .bind(key.tenant_id)
        .bind(&key.kind)
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(&key.hash)
        .bind(key.created_at)
        .bind(key.revoked_at)
        .bind(key.last_used_at)
        .bind(&key.policy)
        .bind(key.expires_at)
        .bind(&key.rotated_to)
    }

    const KEY_COLUMNS: &'static str = "id, tenant_id, kind, name, prefix, hash, created_at, \
        revoked_at, last_used_at, policy, expires_at, rotated_to";

    pub async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRow>> {
        let sql = format!("SELECT {} FROM api_keys WHERE hash = $1", Self::KEY_COLUMNS);
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| ApiKeyRow::from_row(&r)).transpose()
    }

    pub async fn api_key_by_id(&self, id: &str) -> Result<Option<ApiKeyRow>> {
        let sql = format!("SELECT {} FROM api_keys WHERE id = $1", Self::KEY_COLUMNS);
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| ApiKeyRow::from_row(&r)).transpose()
    }

    /// Keys of one tenant, or the operator's tenant-less admin keys when `tenant_id` is `None`.
    pub async fn list_api_keys(&self, tenant_id: Option<i64>) -> Result<Vec<ApiKeyRow>> {
        let sql = match tenant_id {
            Some(_) => format!(
                "SELECT {} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id",
                Self::KEY_COLUMNS
            ),
            None => format!(
                "SELECT {} FROM api_keys WHERE tenant_id IS NULL ORDER BY created_at, id",
                Self::KEY_COLUMNS
            ),
        };
        let mut query = sqlx::query(AssertSqlSafe(sql));
        if let Some(t) = tenant_id {
            query = query.bind(t);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(ApiKeyRow::from_row).collect()
    }

    /// Every key that is neither revoked nor expired, for the in-memory key ring.
    pub async fn active_api_keys(&self) -> Result<Vec<ApiKeyRow>> {
        let sql = format!(
            "SELECT {} FROM api_keys WHERE revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $1)",
            Self::KEY_COLUMNS
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(now_ms())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(ApiKeyRow::from_row).collect()
    }

    /// Replaces the policy of a key that is not revoked; false if there is no such key.
    pub async fn update_api_key_policy(&self, id: &str, policy: Option<&str>) -> Result<bool> {
        let done =
            sqlx::query("UPDATE api_keys SET policy = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(policy)
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Renames an un-revoked key; false if there is none with that id.
    pub async fn rename_api_key(&self, id: &str, name: Option<&str>) -> Result<bool> {
        let done =
            sqlx::query("UPDATE api_keys SET name = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(name)
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Rotates a key in one transaction: the old key (present, not revoked, not rotated before)
    /// keeps working until `old_expires_at` at the latest (an earlier expiry stays) and points to
    /// its successor, and `new_key` is inserted. False, with nothing changed, when the old key is
    /// missing, revoked or already rotated.
    pub async fn rotate_api_key(
        &self,
        old_id: &str,
        new_key: &ApiKeyRow,
        old_expires_at: i64,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE api_keys SET \
             expires_at = CASE WHEN expires_at IS NOT NULL AND expires_at < $1 \
                 THEN expires_at ELSE $2 END, \
             rotated_to = $3 \
             WHERE id = $4 AND revoked_at IS NULL AND rotated_to IS NULL",
        )
        .bind(old_expires_at)
        .bind(old_expires_at)
        .bind(&new_key.id)
        .bind(old_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        Self::insert_api_key_query(new_key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Returns whether a key was revoked by this call (false: unknown or already revoked).
    pub async fn revoke_api_key(&self, id: &str) -> Result<bool> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn touch_api_keys(&self, ids: &[String], at: i64) -> Result<()> {
        for id in ids {
            sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                .bind(at)
                .bind(id)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    // ----------------------------------------------------------------------------------------
    // Items

    /// Inserts or replaces items (same id → same state), all in one transaction.
    pub async fn upsert_items(&self, tenant_id: i64, items: &[ItemRow]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for chunk in items.chunks(ROWS_PER_STATEMENT / 4) {
            let mut sql = String::from(
                "INSERT INTO items (tenant_id, id, title, categories, tags, description, metadata, \
                 published_at, available_from, available_until, hidden, created_at, updated_at) VALUES ",
            );
            push_placeholders(self.backend, &mut sql, chunk.len(), 13);
            sql.push_str(
                " ON CONFLICT (tenant_id, id) DO UPDATE SET title = excluded.title, \
                 categories = excluded.categories, tags = excluded.tags, \
                 description = excluded.description, metadata = excluded.metadata, \
                 published_at = excluded.published_at, available_from = excluded.available_from, \
                 available_until = excluded.available_until, hidden = excluded.hidden, \
                 updated_at = excluded.updated_at",
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for item in chunk {
                q = q
                    .bind(tenant_id)
                    .bind(&item.id)
                    .bind(&item.title)
                    .bind(json_text(&item.categories))
                    .bind(json_text(&item.tags))
                    .bind(&item.description)
                    .bind(item.metadata.to_string())
                    .bind(item.published_at)
                    .bind(item.available_from)
                    .bind(item.available_until)
                    .bind(item.hidden as i64)
                    .bind(item.updated_at)
                    .bind(item.updated_at);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    const ITEM_COLUMNS: &'static str = "id, title, categories, tags, description, metadata, \
        published_at, available_from, available_until, hidden, updated_at";

    pub async fn get_item(&self, tenant_id: i64, id: &str) -> Result<Option<ItemRow>> {
        let sql = format!(
            "SELECT {} FROM items WHERE tenant_id = $1 AND id = $2",
            Self::ITEM_COLUMNS
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| ItemRow::from_row(&r)).transpose()
    }

    /// A page of items ordered by id, starting after `after` (the cursor).
    pub async fn list_items(
        &self,
        tenant_id: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ItemRow>> {
        let sql = format!(
            "SELECT {} FROM items WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            Self::ITEM_COLUMNS
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(tenant_id)
            .bind(after.unwrap_or(""))
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(ItemRow::from_row).collect()
    }

    pub async fn all_items(&self, tenant_id: i64) -> Result<Vec<ItemRow>> {
        let sql = format!(
            "SELECT {} FROM items WHERE tenant_id = $1 ORDER BY created_at, id",
            Self::ITEM_COLUMNS
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(ItemRow::from_row).collect()
    }

    /// Deletes an item and the feedback on it. Returns whether it existed.
    pub async fn delete_item(&self, tenant_id: i64, id: &str) -> Result<bool> {
        self.delete_with_feedback(
            tenant_id,
            id,
            "DELETE FROM feedback WHERE tenant_id = $1 AND item_id = $2",
            "DELETE FROM items WHERE tenant_id = $1 AND id = $2",
        )
        .await
    }

    /// Runs two deletes keyed by (tenant, id) in one transaction: the feedback naming the
    /// entity, then the entity. Returns whether the entity existed.
    async fn delete_with_feedback(
        &self,
        tenant_id: i64,
        id: &str,
        feedback_sql: &'static str,
        entity_sql: &'static str,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        // Logged events must go too, not be folded in after the delete.
        crate::feedback_log::fold_in(&mut tx, self.backend).await?;
        sqlx::query(feedback_sql)
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(entity_sql)
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    // ----------------------------------------------------------------------------------------
    // Users

    pub async fn upsert_users(&self, tenant_id: i64, users: &[UserRow]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for chunk in users.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO users (tenant_id, id, attributes, created_at, updated_at) VALUES ",
            );
            push_placeholders(self.backend, &mut sql, chunk.len(), 5);
            sql.push_str(
                " ON CONFLICT (tenant_id, id) DO UPDATE SET attributes = excluded.attributes, \
                 updated_at = excluded.updated_at",
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for user in chunk {
                q = q
                    .bind(tenant_id)
                    .bind(&user.id)
                    .bind(&user.attributes)
                    .bind(user.updated_at)
                    .bind(user.updated_at);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_user(&self, tenant_id: i64, id: &str) -> Result<Option<UserRow>> {
        let row = sqlx::query(
            "SELECT id, attributes, updated_at FROM users WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| UserRow::from_row(&r)).transpose()
    }

    pub async fn list_users(
        &self,
        tenant_id: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<UserRow>> {
        let rows = sqlx::query(
            "SELECT id, attributes, updated_at FROM users WHERE tenant_id = $1 AND id > $2 \
             ORDER BY id LIMIT $3",
        )
        .bind(tenant_id)
        .bind(after.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(UserRow::from_row).collect()
    }

    pub async fn all_user_ids(&self, tenant_id: i64) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM users WHERE tenant_id = $1 ORDER BY created_at, id")
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("id").map_err(Into::into))
            .collect()
    }

    /// Deletes a user and all their feedback, in one transaction. Returns whether the user existed.
    pub async fn delete_user(&self, tenant_id: i64, id: &str) -> Result<bool> {
        self.delete_with_feedback(
            tenant_id,
            id,
            "DELETE FROM feedback WHERE tenant_id = $1 AND user_id = $2",
            "DELETE FROM users WHERE tenant_id = $1 AND id = $2",
        )
        .await
    }

    // ----------------------------------------------------------------------------------------
    // Feedback

    /// Records feedback events and creates the users they name that do not exist yet, in one
    /// transaction. An event is keyed by (user, item, kind): sending it again updates its value and
    /// time instead of adding a duplicate, so a retried batch leaves the same state. Within
    /// `events`, a later event with the same key wins. The events are appended to the feedback
    /// log, read through the keyed table once folded (see [`feedback_log`]).
    pub async fn insert_feedback(&self, tenant_id: i64, events: &[FeedbackRow]) -> Result<()> {
        let events = dedup_last_wins(events, |e| (&e.user_id, &e.item_id, &e.kind));
        let mut tx = self.begin_write().await?;
        self.create_missing_users(
            &mut tx,
            tenant_id,
            events.iter().map(|e| e.user_id.as_str()),
        )
        .await?;
        for chunk in events.chunks(ROWS_PER_STATEMENT / 2) {
            let mut sql = String::from(
                "INSERT INTO feedback_log (tenant_id, user_id, item_id, kind, value, ts) VALUES ",
            );
            push_placeholders(self.backend, &mut sql, chunk.len(), 6);
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for e in chunk {
                q = q
                    .bind(tenant_id)
                    .bind(&e.user_id)
                    .bind(&e.item_id)
                    .bind(&e.kind)
                    .bind(e.value)
                    .bind(e.timestamp);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Creates the users among `ids` that do not exist yet, inside `tx`.
    pub(crate) async fn create_missing_users<'a>(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        tenant_id: i64,
        ids: impl Iterator<Item = &'a str>,
    ) -> Result<()> {
        let mut ids: Vec<&str> = ids.collect();
        ids.sort_unstable();
        ids.dedup();
        let now = now_ms();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO users (tenant_id, id, attributes, created_at, updated_at) VALUES ",
            );
            push_placeholders(self.backend, &mut sql, chunk.len(), 5);
            sql.push_str(" ON CONFLICT (tenant_id, id) DO NOTHING");
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(tenant_id).bind(*id).bind("{}").bind(now).bind(now);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// A user's feedback, newest first (see [`Store::user_feedback_all`] for every event).
    pub async fn user_feedback(
        &self,
        tenant_id: i64,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<FeedbackRow>> {
        self.fold_feedback().await?;
        let rows = sqlx::query(
            "SELECT user_id, item_id, kind, value, ts FROM feedback \
             WHERE tenant_id = $1 AND user_id = $2 ORDER BY ts DESC, item_id LIMIT $3",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(FeedbackRow::from_row).collect()
    }

    /// Every feedback event of a tenant, for loading the serving state and training.
    pub async fn all_feedback(&self, tenant_id: i64) -> Result<Vec<FeedbackRow>> {
        self.fold_feedback().await?;
        let rows = sqlx::query(
            "SELECT user_id, item_id, kind, value, ts FROM feedback WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(FeedbackRow::from_row).collect()
    }

    pub async fn count_feedback(&self, tenant_id: i64) -> Result<i64> {
        self.fold_feedback().await?;
        let row = sqlx::query("SELECT COUNT(*) AS n FROM feedback WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    // ----------------------------------------------------------------------------------------
    // Item embeddings (semantic search): one vector per item and embedding model, with a hash of
    // the text it was computed from so that unchanged items are not embedded again.

    /// Stores embeddings: `(item_id, text_hash, vector as little-endian f32 bytes)`.
    pub async fn put_item_embeddings(
        &self,
        tenant_id: i64,
        model: &str,
        rows: &[(String, String, Vec<u8>)],
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT / 5) {
            let mut sql = String::from(
                "INSERT INTO item_embeddings (tenant_id, model, item_id, text_hash, vector) VALUES ",
            );
            push_placeholders(self.backend, &mut sql, chunk.len(), 5);
            sql.push_str(
                " ON CONFLICT (tenant_id, model, item_id) DO UPDATE SET \
                 text_hash = excluded.text_hash, vector = excluded.vector",
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (item, hash, vector) in chunk {
                q = q
                    .bind(tenant_id)
                    .bind(model)
                    .bind(item)
                    .bind(hash)
                    .bind(vector.clone());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every stored embedding of a tenant for `model`: `(item_id, text_hash, vector bytes)`.
    pub async fn item_embeddings(
        &self,
        tenant_id: i64,
        model: &str,
    ) -> Result<Vec<(String, String, Vec<u8>)>> {
        let rows = sqlx::query(
            "SELECT item_id, text_hash, vector FROM item_embeddings \
             WHERE tenant_id = $1 AND model = $2",
        )
        .bind(tenant_id)
        .bind(model)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("item_id")?,
                    r.try_get("text_hash")?,
                    r.try_get("vector")?,
                ))
            })
            .collect()
    }

    // ----------------------------------------------------------------------------------------
    // Model versions

    /// Records a trained model and returns its version number (1, 2, … per tenant).
    pub async fn record_model_version(
        &self,
        tenant_id: i64,
        version: &NewModelVersion,
    ) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT COALESCE(MAX(version), 0) AS v FROM model_versions WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_one(&mut *tx)
        .await?;
        let next: i64 = row.try_get::<i64, _>("v")? + 1;
        sqlx::query(
            "INSERT INTO model_versions (tenant_id, version, algorithm, trained_at, users, items, \
             interactions, train_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(tenant_id)
        .bind(next)
        .bind(version.algorithm.to_string())
        .bind(version.trained_at)
        .bind(version.users)
        .bind(version.items)
        .bind(version.interactions)
        .bind(version.train_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(next)
    }

    pub async fn model_versions(
        &self,
        tenant_id: i64,
        limit: usize,
    ) -> Result<Vec<ModelVersionRow>> {
        let rows = sqlx::query(
            "SELECT version, algorithm, trained_at, users, items, interactions, train_ms \
             FROM model_versions WHERE tenant_id = $1 ORDER BY version DESC LIMIT $2",
        )
        .bind(tenant_id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ModelVersionRow::from_row).collect()
    }
}

impl Store {
    // ----------------------------------------------------------------------------------------
    // Experiments

    pub async fn insert_experiment(&self, tenant_id: i64, e: &ExperimentRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO experiments (tenant_id, id, name, definition, status, created_at, stopped_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(tenant_id)
        .bind(&e.id)
        .bind(&e.name)
        .bind(e.definition.to_string())
        .bind(&e.status)
        .bind(e.created_at)
        .bind(e.stopped_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn experiments(&self, tenant_id: i64) -> Result<Vec<ExperimentRow>> {
        let rows = sqlx::query(
            "SELECT id, name, definition, status, created_at, stopped_at FROM experiments \
             WHERE tenant_id = $1 ORDER BY created_at DESC, id",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ExperimentRow::from_row).collect()
    }

    /// Marks a running experiment stopped; false if it was not running.
    pub async fn stop_experiment(&self, tenant_id: i64, id: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE experiments SET status = 'stopped', stopped_at = $1 \
             WHERE tenant_id = $2 AND id = $3 AND status = 'running'",
        )
        .bind(now_ms())
        .bind(tenant_id)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Adds served lists to a variant's impression count.
    pub async fn add_impressions(
        &self,
        tenant_id: i64,
        experiment_id: &str,
        variant: i64,
        delta: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO experiment_impressions (tenant_id, experiment_id, variant, impressions) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, experiment_id, variant) \
             DO UPDATE SET impressions = experiment_impressions.impressions + excluded.impressions",
        )
        .bind(tenant_id)
        .bind(experiment_id)
        .bind(variant)
        .bind(delta)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records that the list `recommendation_id` led to `outcome` (`click` or `conversion`); each
    /// list counts once per outcome, however many events name it.
    pub async fn record_outcome(
        &self,
        tenant_id: i64,
        experiment_id: &str,
        variant: i64,
        recommendation_id: &str,
        outcome: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO experiment_outcomes (tenant_id, experiment_id, variant, recommendation_id, outcome, at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, recommendation_id, outcome) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(experiment_id)
        .bind(variant)
        .bind(recommendation_id)
        .bind(outcome)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Persisted counts per variant index.
    pub async fn experiment_counts(
        &self,
        tenant_id: i64,
        experiment_id: &str,
    ) -> Result<std::collections::BTreeMap<i64, VariantCounts>> {
        let mut out: std::collections::BTreeMap<i64, VariantCounts> = Default::default();
        let rows = sqlx::query(
            "SELECT variant, impressions FROM experiment_impressions WHERE tenant_id = $1 AND experiment_id = $2",
        )
        .bind(tenant_id)
        .bind(experiment_id)
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            out.entry(r.try_get("variant")?).or_default().impressions = r.try_get("impressions")?;
        }
        let rows = sqlx::query(
            "SELECT variant, outcome, COUNT(*) AS n FROM experiment_outcomes \
             WHERE tenant_id = $1 AND experiment_id = $2 GROUP BY variant, outcome",
        )
        .bind(tenant_id)
        .bind(experiment_id)
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            let entry = out.entry(r.try_get("variant")?).or_default();
            let n: i64 = r.try_get("n")?;
            match r.try_get::<String, _>("outcome")?.as_str() {
                "click" => entry.clicks = n,
                _ => entry.conversions = n,
            }
        }
        Ok(out)
    }
}

/// Appends `rows` groups of `columns` placeholders: `(?, ?), (?, ?)` on SQLite, `($1, $2), ($3, $4)`
/// on PostgreSQL.
///
/// SQLite gets anonymous `?` placeholders: sqlx binds each parameter after looking up its name,
/// which SQLite finds by a linear scan over the named ones, so `$n` names made a multi-row
/// insert quadratic in its parameters (a fifth of a busy server's CPU went there).
fn push_placeholders(backend: Backend, sql: &mut String, rows: usize, columns: usize) {
    use std::fmt::Write;
    let mut n = 1;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..columns {
            if c > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    let _ = write!(sql, "${n}");
                }
            }
            n += 1;
        }
        sql.push(')');
    }
}

/// A `LIMIT` argument: `usize` values past `i64::MAX` mean "no limit" rather than wrapping.
pub(crate) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A value bound to a query whose conditions are chosen at run time.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Param {
    Int(i64),
    Text(String),
}

/// `WHERE` conditions built at run time, with their placeholders numbered as they are added.
#[derive(Debug, Default)]
pub(crate) struct Conditions {
    clauses: Vec<String>,
    params: Vec<Param>,
}

impl Conditions {
    /// Binds `value` and returns its placeholder (`$n`) for the next clause.
    pub(crate) fn param(&mut self, value: Param) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    pub(crate) fn push(&mut self, clause: String) {
        self.clauses.push(clause);
    }

    /// ` WHERE a AND b`, or nothing when there is no condition.
    pub(crate) fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// Binds the values in placeholder order.
    pub(crate) fn bind(&self, mut query: AnyQuery) -> AnyQuery {
        for value in &self.params {
            query = match value {
                Param::Int(v) => query.bind(*v),
                Param::Text(v) => query.bind(v),
            };
        }
        query
    }
}

fn json_text(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

/// Keeps the last of each group of rows with the same key, in the order of their last occurrence.
/// (PostgreSQL refuses an upsert that touches one row twice in a statement.)
fn dedup_last_wins<'a, T, K: Eq + std::hash::Hash>(
    rows: &'a [T],
    key: impl Fn(&'a T) -> K,
) -> Vec<&'a T> {
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    let mut out: Vec<&T> = rows.iter().rev().filter(|r| seen.insert(key(r))).collect();
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_across_rows() {
        let mut sql = String::new();
        push_placeholders(Backend::Postgres, &mut sql, 2, 3);
        assert_eq!(sql, "($1, $2, $3), ($4, $5, $6)");
        let mut sql = String::new();
        push_placeholders(Backend::Sqlite, &mut sql, 2, 3);
        assert_eq!(sql, "(?, ?, ?), (?, ?, ?)");
    }

    #[test]
    fn conditions_number_their_placeholders_in_order() {
        let mut c = Conditions::default();
        assert_eq!(c.where_sql(), "");
        let a = c.param(Param::Int(3));
        c.push(format!("x = {a}"));
        let b = c.param(Param::Text("k".into()));
        c.push(format!("y > {b}"));
        assert_eq!(c.where_sql(), " WHERE x = $1 AND y > $2");
        assert_eq!(c.params, vec![Param::Int(3), Param::Text("k".into())]);
    }

    #[test]
    fn limits_past_i64_do_not_wrap() {
        assert_eq!(sql_limit(10), 10);
        assert_eq!(sql_limit(usize::MAX), i64::MAX);
    }

    #[test]
    fn dedup_keeps_the_last_occurrence() {
        let rows = [(1, 'a'), (2, 'b'), (1, 'c')];
        let kept = dedup_last_wins(&rows, |r| r.0);
        assert_eq!(kept, vec![&(2, 'b'), &(1, 'c')]);
    }
}
