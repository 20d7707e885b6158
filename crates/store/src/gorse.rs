//! Queries for the Gorse-compatible API (`/api/…`), which addresses feedback in ways Marquee's
//! own API does not: the whole feedback table page by page, one (user, item) pair with or
//! without a type, an item's feedback, deletion of single events, and Gorse's `POST /api/feedback`,
//! which inserts events but leaves existing ones untouched (Marquee's own writes replace them).
//!
//! Feedback is keyed by (user, item, type) as everywhere else; pages follow that key, so a
//! cursor is the key of the last row served and a page never skips or repeats a row however
//! the table changes between calls.

use sqlx::{AssertSqlSafe, Row};

use crate::{
    Conditions, FeedbackRow, ItemRow, Param, ROWS_PER_STATEMENT, Result, Store, json_text,
    push_placeholders, sql_limit,
};

const FEEDBACK_COLUMNS: &str = "user_id, item_id, kind, value, ts";

impl Store {
    /// A page of a tenant's feedback in key order (user, item, type), after the key `after`
    /// (user, item, type), of events of `kind` (any when `None`) that happened at or before
    /// `until` (Unix ms).
    pub async fn feedback_page(
        &self,
        tenant_id: i64,
        kind: Option<&str>,
        after: Option<(&str, &str, &str)>,
        until: i64,
        limit: usize,
    ) -> Result<Vec<FeedbackRow>> {
        self.fold_feedback().await?;
        let mut c = Conditions::default();
        let t = c.param(Param::Int(tenant_id));
        c.push(format!("tenant_id = {t}"));
        let u = c.param(Param::Int(until));
        c.push(format!("ts <= {u}"));
        if let Some(k) = kind {
            let k = c.param(Param::Text(k.to_string()));
            c.push(format!("kind = {k}"));
        }
        if let Some((user, item, k)) = after {
            let (u, i, k) = (
                c.param(Param::Text(user.to_string())),
                c.param(Param::Text(item.to_string())),
                c.param(Param::Text(k.to_string())),
            );
            c.push(format!("(user_id, item_id, kind) > ({u}, {i}, {k})"));
        }
        let limit = c.param(Param::Int(sql_limit(limit)));
        let sql = format!(
            "SELECT {FEEDBACK_COLUMNS} FROM feedback{} ORDER BY user_id, item_id, kind LIMIT {limit}",
            c.where_sql()
        );
        let rows = c
            .bind(sqlx::query(AssertSqlSafe(sql)))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(FeedbackRow::from_row).collect()
    }

    /// The events between one user and one item (of `kind`, or of every type), by type.
    pub async fn user_item_feedback(
        &self,
        tenant_id: i64,
        user_id: &str,
        item_id: &str,
        kind: Option<&str>,
    ) -> Result<Vec<FeedbackRow>> {
        self.fold_feedback().await?;
        let c = pair_conditions(tenant_id, user_id, item_id, kind);
        let sql = format!(
            "SELECT {FEEDBACK_COLUMNS} FROM feedback{} ORDER BY kind",
            c.where_sql()
        );
        let rows = c
            .bind(sqlx::query(AssertSqlSafe(sql)))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(FeedbackRow::from_row).collect()
    }

    /// Deletes the events between one user and one item (of `kind`, or of every type) and
    /// returns them.
    pub async fn delete_user_item_feedback(
        &self,
        tenant_id: i64,
        user_id: &str,
        item_id: &str,
        kind: Option<&str>,
    ) -> Result<Vec<FeedbackRow>> {
        let c = pair_conditions(tenant_id, user_id, item_id, kind);
        let mut tx = self.begin_write().await?;
        crate::feedback_log::fold_in(&mut tx, self.backend).await?;
        let select = format!("SELECT {FEEDBACK_COLUMNS} FROM feedback{}", c.where_sql());
        let rows = c
            .bind(sqlx::query(AssertSqlSafe(select)))
            .fetch_all(&mut *tx)
            .await?;
        let delete = format!("DELETE FROM feedback{}", c.where_sql());
        c.bind(sqlx::query(AssertSqlSafe(delete)))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter().map(FeedbackRow::from_row).collect()
    }

    /// A user's events (of `kind`, or of every type) up to `until`, newest first.
    pub async fn user_feedback_until(
        &self,
        tenant_id: i64,
        user_id: &str,
        kind: Option<&str>,
        until: i64,
        limit: usize,
    ) -> Result<Vec<FeedbackRow>> {
        self.feedback_of("user_id", tenant_id, user_id, kind, until, limit, "item_id")
            .await
    }

    /// The events on an item (of `kind`, or of every type) up to `until`, newest first.
    pub async fn item_feedback_until(
        &self,
        tenant_id: i64,
        item_id: &str,
        kind: Option<&str>,
        until: i64,
        limit: usize,
    ) -> Result<Vec<FeedbackRow>> {
        self.feedback_of("item_id", tenant_id, item_id, kind, until, limit, "user_id")
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn feedback_of(
        &self,
        column: &'static str,
        tenant_id: i64,
        id: &str,
        kind: Option<&str>,
        until: i64,
        limit: usize,
        then_by: &'static str,
    ) -> Result<Vec<FeedbackRow>> {
        self.fold_feedback().await?;
        let mut c = Conditions::default();
        let t = c.param(Param::Int(tenant_id));
        c.push(format!("tenant_id = {t}"));
        let i = c.param(Param::Text(id.to_string()));
        c.push(format!("{column} = {i}"));
        let u = c.param(Param::Int(until));
        c.push(format!("ts <= {u}"));
        if let Some(k) = kind {
            let k = c.param(Param::Text(k.to_string()));
            c.push(format!("kind = {k}"));
        }
        let limit = c.param(Param::Int(sql_limit(limit)));
        let sql = format!(
            "SELECT {FEEDBACK_COLUMNS} FROM feedback{} ORDER BY ts DESC, {then_by}, kind LIMIT {limit}",
            c.where_sql()
        );
        let rows = c
            .bind(sqlx::query(AssertSqlSafe(sql)))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(FeedbackRow::from_row).collect()
    }

    /// Inserts the events whose (user, item, type) is not stored yet and leaves the others as
    /// they are; creates the users they name that do not exist. One transaction. Returns the
    /// events inserted (within `events`, the first of a key wins, as a later one would be
    /// "already there").
    pub async fn insert_new_feedback(
        &self,
        tenant_id: i64,
        events: &[FeedbackRow],
    ) -> Result<Vec<FeedbackRow>> {
        let mut seen = std::collections::HashSet::with_capacity(events.len());
        let events: Vec<&FeedbackRow> = events
            .iter()
            .filter(|e| seen.insert((&e.user_id, &e.item_id, &e.kind)))
            .collect();
        let mut tx = self.begin_write().await?;
        // Whether a key is "already there" must count the events still in the log.
        crate::feedback_log::fold_in(&mut tx, self.backend).await?;
        self.create_missing_users(
            &mut tx,
            tenant_id,
            events.iter().map(|e| e.user_id.as_str()),
        )
        .await?;
        let mut inserted = Vec::new();
        for chunk in events.chunks(ROWS_PER_STATEMENT / 2) {
            let mut sql = String::from(
                "INSERT INTO feedback (tenant_id, user_id, item_id, kind, value, ts) VALUES ",
            );
            push_placeholders(self.backend, &mut sql, chunk.len(), 6);
            sql.push_str(
                " ON CONFLICT (tenant_id, user_id, item_id, kind) DO NOTHING \
                 RETURNING user_id, item_id, kind, value, ts",
            );
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
            for row in q.fetch_all(&mut *tx).await? {
                inserted.push(FeedbackRow::from_row(&row)?);
            }
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// Inserts the items whose id is not stored yet, leaving existing ones untouched; returns
    /// the ids inserted. (Gorse creates the items that feedback names.)
    pub async fn insert_missing_items(
        &self,
        tenant_id: i64,
        items: &[ItemRow],
    ) -> Result<Vec<String>> {
        let mut tx = self.begin_write().await?;
        let mut inserted = Vec::new();
        for chunk in items.chunks(ROWS_PER_STATEMENT / 13) {
            let mut sql = String::from(
                "INSERT INTO items (tenant_id, id, title, categories, tags, description, metadata, \
                 published_at, available_from, available_until, hidden, created_at, updated_at) VALUES ",
            );
            push_placeholders(self.backend, &mut sql, chunk.len(), 13);
            sql.push_str(" ON CONFLICT (tenant_id, id) DO NOTHING RETURNING id");
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
            for row in q.fetch_all(&mut *tx).await? {
                inserted.push(row.try_get::<String, _>("id")?);
            }
        }
        tx.commit().await?;
        Ok(inserted)
    }
}

/// `tenant_id = … AND user_id = … AND item_id = … [AND kind = …]`.
fn pair_conditions(tenant_id: i64, user_id: &str, item_id: &str, kind: Option<&str>) -> Conditions {
    let mut c = Conditions::default();
    let t = c.param(Param::Int(tenant_id));
    c.push(format!("tenant_id = {t}"));
    let u = c.param(Param::Text(user_id.to_string()));
    c.push(format!("user_id = {u}"));
    let i = c.param(Param::Text(item_id.to_string()));
    c.push(format!("item_id = {i}"));
    if let Some(k) = kind {
        let k = c.param(Param::Text(k.to_string()));
        c.push(format!("kind = {k}"));
    }
    c
}
