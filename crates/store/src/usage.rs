//! The usage ledger: one row per billable request, what it used and what it cost.
//!
//! The ledger is what tenants are billed from, so it is append-only (the database refuses UPDATE
//! and DELETE, see the migrations) and idempotent: a row's id is chosen by the server before the
//! first write, and writing it again changes nothing, so a batch retried after an uncertain
//! commit never counts twice.
//!
//! A streamed response is billed before it ends: its reservation is kept in `usage_pending` and
//! replaced by the final row when the stream closes. Reservations left by a process that died are
//! settled at the next start, so budgets fail closed — spend in flight counts against them.
//!
//! The ledger writer batches rows from many requests into one transaction (group commit) with
//! multi-row `INSERT`s: per-request transactions would cap the throughput at the disk's flush
//! rate.

use std::collections::HashSet;

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::{
    AnyQuery, Conditions, Param, ROWS_PER_STATEMENT, Result, Store, dedup_last_wins,
    push_placeholders, sql_limit,
};

/// The unit counters of a usage row, in the order of [`UsageRow::units`].
pub const UNIT_COLUMNS: [&str; 7] = [
    "u_recommendations",
    "u_input_tokens",
    "u_output_tokens",
    "u_embedding_tokens",
    "u_tts_characters",
    "u_images",
    "u_audio_ms",
];

/// Every column of `usage_ledger` and `usage_pending`, in binding order.
const USAGE_COLUMNS: &str = "id, tenant_id, key_id, route, model, u_recommendations, \
    u_input_tokens, u_output_tokens, u_embedding_tokens, u_tts_characters, u_images, u_audio_ms, \
    cost_nanos, currency, latency_ms, status, request_id, at";

/// Number of columns in [`USAGE_COLUMNS`].
const USAGE_COLUMN_COUNT: usize = 18;

/// Usage rows per multi-row statement: 100 rows × 18 columns = 1,800 bound parameters.
const USAGE_ROWS_PER_STATEMENT: usize = ROWS_PER_STATEMENT / 4;
const _: () = assert!(USAGE_ROWS_PER_STATEMENT * USAGE_COLUMN_COUNT < 32_766);

/// One billable request (or, in `usage_pending`, the reservation of one still running).
#[derive(Clone, Debug, PartialEq)]
pub struct UsageRow {
    /// Chosen by the server; the same id is never billed twice.
    pub id: String,
    pub tenant_id: i64,
    /// The API key that made the request; `None` for requests not made with a key.
    pub key_id: Option<String>,
    /// The route pattern (`/v1/...`), not the concrete path.
    pub route: String,
    pub model: Option<String>,
    /// Counters in the order of [`UNIT_COLUMNS`].
    pub units: [i64; 7],
    /// Price in billionths of a currency unit.
    pub cost_nanos: i64,
    pub currency: String,
    pub latency_ms: i64,
    /// The HTTP status answered.
    pub status: i64,
    /// The client's request id (`x-request-id`), to reconcile with its own logs.
    pub request_id: Option<String>,
    /// Unix milliseconds.
    pub at: i64,
}

impl UsageRow {
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(UsageRow {
            id: r.try_get("id")?,
            tenant_id: r.try_get("tenant_id")?,
            key_id: r.try_get("key_id")?,
            route: r.try_get("route")?,
            model: r.try_get("model")?,
            units: units_from_row(r)?,
            cost_nanos: r.try_get("cost_nanos")?,
            currency: r.try_get("currency")?,
            latency_ms: r.try_get("latency_ms")?,
            status: r.try_get("status")?,
            request_id: r.try_get("request_id")?,
            at: r.try_get("at")?,
        })
    }

    /// Binds the row's values in the order of [`USAGE_COLUMNS`].
    fn bind(&self, query: AnyQuery) -> AnyQuery {
        let mut query = query
            .bind(&self.id)
            .bind(self.tenant_id)
            .bind(&self.key_id)
            .bind(&self.route)
            .bind(&self.model);
        for unit in self.units {
            query = query.bind(unit);
        }
        query
            .bind(self.cost_nanos)
            .bind(&self.currency)
            .bind(self.latency_ms)
            .bind(self.status)
            .bind(&self.request_id)
            .bind(self.at)
    }
}

fn units_from_row(r: &AnyRow) -> Result<[i64; 7]> {
    let mut units = [0i64; 7];
    for (unit, column) in units.iter_mut().zip(UNIT_COLUMNS) {
        *unit = r.try_get(column)?;
    }
    Ok(units)
}

/// Which ledger rows a summary or an export covers.
#[derive(Clone, Debug, Default)]
pub struct UsageFilter {
    /// `None`: every tenant.
    pub tenant_id: Option<i64>,
    /// `None`: every key (and requests made without one).
    pub key_id: Option<String>,
    /// Start of the time range, inclusive (Unix milliseconds).
    pub from_ms: i64,
    /// End of the time range, exclusive: a range with `to_ms <= from_ms` selects nothing.
    pub to_ms: i64,
}

impl UsageFilter {
    fn conditions(&self) -> Conditions {
        let mut c = Conditions::default();
        let from = c.param(Param::Int(self.from_ms));
        c.push(format!("at >= {from}"));
        let to = c.param(Param::Int(self.to_ms));
        c.push(format!("at < {to}"));
        if let Some(tenant_id) = self.tenant_id {
            let p = c.param(Param::Int(tenant_id));
            c.push(format!("tenant_id = {p}"));
        }
        if let Some(key_id) = &self.key_id {
            let p = c.param(Param::Text(key_id.clone()));
            c.push(format!("key_id = {p}"));
        }
        c
    }
}

/// How [`Store::usage_summary`] groups the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageGroupBy {
    Total,
    /// UTC days: the group is the day index since the Unix epoch (`at / 86_400_000`).
    Day,
    Key,
    Model,
    Route,
    Tenant,
    /// Route and model together (invoice lines): the group is `route|model`, the model part
    /// empty for rows without one. Routes never contain [`GROUP_SEPARATOR`].
    RouteModel,
}

/// Separates the route from the model in [`UsageGroupBy::RouteModel`] groups.
pub const GROUP_SEPARATOR: char = '|';

impl UsageGroupBy {
    /// The SQL expression grouped on, or `None` for one total.
    fn expression(self) -> Option<&'static str> {
        match self {
            UsageGroupBy::Total => None,
            UsageGroupBy::Day => Some("at / 86400000"),
            UsageGroupBy::Key => Some("key_id"),
            UsageGroupBy::Model => Some("model"),
            UsageGroupBy::Route => Some("route"),
            UsageGroupBy::Tenant => Some("tenant_id"),
            UsageGroupBy::RouteModel => Some("route || '|' || COALESCE(model, '')"),
        }
    }

    fn is_numeric(self) -> bool {
        matches!(self, UsageGroupBy::Day | UsageGroupBy::Tenant)
    }
}

/// Requests, units and cost of one group of ledger rows.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageSummaryRow {
    /// The day index or tenant id as a decimal string, the key id, model or route; `None` for the
    /// total and for rows without a key or model.
    pub group: Option<String>,
    pub requests: i64,
    pub units: [i64; 7],
    pub cost_nanos: i64,
}

/// `CAST(COALESCE(SUM(c), 0) AS BIGINT) AS c` for every unit column and the cost: PostgreSQL sums
/// BIGINTs as NUMERIC, which the `Any` driver cannot decode.
fn sums_sql() -> String {
    UNIT_COLUMNS
        .iter()
        .chain(std::iter::once(&"cost_nanos"))
        .map(|c| format!("CAST(COALESCE(SUM({c}), 0) AS BIGINT) AS {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The group key as decoded, so that groups sort numerically or by text, `None` first, the same
/// on both backends.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum GroupKey {
    Number(i64),
    Text(Option<String>),
}

impl GroupKey {
    fn into_label(self) -> Option<String> {
        match self {
            GroupKey::Number(n) => Some(n.to_string()),
            GroupKey::Text(t) => t,
        }
    }
}

impl Store {
    /// Group commit of the ledger writer, in ONE transaction: stores the reservations `pending`
    /// (a reservation sent again replaces the earlier one), appends `finals` to the ledger (an id
    /// already there is skipped, so a retried batch never double-counts) and removes the
    /// reservations the finals settle. Returns how many ledger rows were newly inserted.
    pub async fn write_usage(&self, pending: &[UsageRow], finals: &[UsageRow]) -> Result<u64> {
        if pending.is_empty() && finals.is_empty() {
            return Ok(0);
        }
        let final_ids: Vec<&str> = {
            let mut seen = HashSet::with_capacity(finals.len());
            finals
                .iter()
                .map(|r| r.id.as_str())
                .filter(|id| seen.insert(*id))
                .collect()
        };
        let settled: HashSet<&str> = final_ids.iter().copied().collect();
        // A reservation settled in this same batch is not worth writing; PostgreSQL refuses an
        // upsert that touches one row twice, hence the dedup.
        let pending: Vec<&UsageRow> = dedup_last_wins(pending, |r| r.id.as_str())
            .into_iter()
            .filter(|r| !settled.contains(r.id.as_str()))
            .collect();

        let mut tx = self.begin_write().await?;
        for chunk in pending.chunks(USAGE_ROWS_PER_STATEMENT) {
            let mut sql = format!("INSERT INTO usage_pending ({USAGE_COLUMNS}) VALUES ");
            push_placeholders(self.backend, &mut sql, chunk.len(), USAGE_COLUMN_COUNT);
            sql.push_str(" ON CONFLICT (id) DO UPDATE SET ");
            let updates: Vec<String> = USAGE_COLUMNS
                .split(", ")
                .filter(|c| *c != "id")
                .map(|c| format!("{c} = excluded.{c}"))
                .collect();
            sql.push_str(&updates.join(", "));
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for row in chunk {
                q = row.bind(q);
            }
            q.execute(&mut *tx).await?;
        }
        let mut inserted = 0;
        for chunk in finals.chunks(USAGE_ROWS_PER_STATEMENT) {
            let mut sql = format!("INSERT INTO usage_ledger ({USAGE_COLUMNS}) VALUES ");
            push_placeholders(self.backend, &mut sql, chunk.len(), USAGE_COLUMN_COUNT);
            sql.push_str(" ON CONFLICT (id) DO NOTHING");
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for row in chunk {
                q = row.bind(q);
            }
            inserted += q.execute(&mut *tx).await?.rows_affected();
        }
        for chunk in final_ids.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::from("DELETE FROM usage_pending WHERE id IN ");
            push_placeholders(self.backend, &mut sql, 1, chunk.len());
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// Every reservation still pending, oldest first (settled into the ledger at start-up).
    pub async fn pending_usage(&self) -> Result<Vec<UsageRow>> {
        let sql = format!("SELECT {USAGE_COLUMNS} FROM usage_pending ORDER BY at, id");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(UsageRow::from_row).collect()
    }

    /// Requests, units and cost of the ledger rows `filter` selects, per group, ordered by group
    /// (days and tenants numerically, text bytewise, missing keys or models first). `Total`
    /// always answers one row, zero when nothing matched.
    pub async fn usage_summary(
        &self,
        filter: &UsageFilter,
        group_by: UsageGroupBy,
    ) -> Result<Vec<UsageSummaryRow>> {
        let conditions = filter.conditions();
        let sums = sums_sql();
        let sql = match group_by.expression() {
            Some(g) => format!(
                "SELECT {g} AS g, COUNT(*) AS requests, {sums} FROM usage_ledger{} GROUP BY {g}",
                conditions.where_sql()
            ),
            None => format!(
                "SELECT COUNT(*) AS requests, {sums} FROM usage_ledger{}",
                conditions.where_sql()
            ),
        };
        let rows = conditions
            .bind(sqlx::query(AssertSqlSafe(sql)))
            .fetch_all(self.pool())
            .await?;
        let mut groups = Vec::with_capacity(rows.len());
        for r in &rows {
            let key = match group_by {
                UsageGroupBy::Total => GroupKey::Text(None),
                g if g.is_numeric() => GroupKey::Number(r.try_get("g")?),
                _ => GroupKey::Text(r.try_get("g")?),
            };
            let summary = UsageSummaryRow {
                group: None,
                requests: r.try_get("requests")?,
                units: units_from_row(r)?,
                cost_nanos: r.try_get("cost_nanos")?,
            };
            groups.push((key, summary));
        }
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(groups
            .into_iter()
            .map(|(key, summary)| UsageSummaryRow {
                group: key.into_label(),
                ..summary
            })
            .collect())
    }

    /// Ledger rows `filter` selects in (at, id) order, after the cursor `after` (exclusive) —
    /// for CSV export and paging: pass the last row's (at, id) to get the next page.
    pub async fn usage_rows(
        &self,
        filter: &UsageFilter,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<UsageRow>> {
        let mut conditions = filter.conditions();
        if let Some((at, id)) = after {
            let at = conditions.param(Param::Int(at));
            let id = conditions.param(Param::Text(id));
            conditions.push(format!("(at, id) > ({at}, {id})"));
        }
        let limit = conditions.param(Param::Int(sql_limit(limit)));
        let sql = format!(
            "SELECT {USAGE_COLUMNS} FROM usage_ledger{} ORDER BY at, id LIMIT {limit}",
            conditions.where_sql()
        );
        let rows = conditions
            .bind(sqlx::query(AssertSqlSafe(sql)))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(UsageRow::from_row).collect()
    }

    /// Units and cost since `from_ms` per (tenant, key), ledger and pending reservations
    /// together (a reservation already settled counts once): seeds the in-memory budgets at
    /// start-up. Ordered by tenant, then key (`None` first).
    pub async fn usage_totals_since(
        &self,
        from_ms: i64,
    ) -> Result<Vec<(i64, Option<String>, [i64; 7], i64)>> {
        let counted = UNIT_COLUMNS.join(", ");
        let sql = format!(
            "SELECT tenant_id, key_id, {sums} FROM ( \
                 SELECT tenant_id, key_id, {counted}, cost_nanos FROM usage_ledger WHERE at >= $1 \
                 UNION ALL \
                 SELECT tenant_id, key_id, {counted}, cost_nanos FROM usage_pending AS p \
                 WHERE at >= $2 AND NOT EXISTS (SELECT 1 FROM usage_ledger AS l WHERE l.id = p.id) \
             ) AS u GROUP BY tenant_id, key_id",
            sums = sums_sql(),
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(from_ms)
            .bind(from_ms)
            .fetch_all(self.pool())
            .await?;
        let mut totals = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("tenant_id")?,
                    r.try_get("key_id")?,
                    units_from_row(r)?,
                    r.try_get("cost_nanos")?,
                ))
            })
            .collect::<Result<Vec<(i64, Option<String>, [i64; 7], i64)>>>()?;
        totals.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        Ok(totals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_list_matches_the_units_and_the_count() {
        let columns: Vec<&str> = USAGE_COLUMNS.split(", ").collect();
        assert_eq!(columns.len(), USAGE_COLUMN_COUNT);
        assert_eq!(&columns[5..12], &UNIT_COLUMNS[..]);
    }

    #[test]
    fn groups_sort_numbers_numerically_and_missing_text_first() {
        let mut keys = [
            GroupKey::Number(10),
            GroupKey::Number(9),
            GroupKey::Number(100),
        ];
        keys.sort();
        let labels: Vec<_> = keys.into_iter().map(GroupKey::into_label).collect();
        assert_eq!(
            labels,
            vec![Some("9".into()), Some("10".into()), Some("100".into())]
        );
        let mut keys = [
            GroupKey::Text(Some("b".into())),
            GroupKey::Text(None),
            GroupKey::Text(Some("a".into())),
        ];
        keys.sort();
        assert_eq!(keys[0], GroupKey::Text(None));
        assert_eq!(keys[2], GroupKey::Text(Some("b".into())));
    }
}
