//! What the Gorse-compatible API (`/api/…` in the server) needs of the service beyond
//! Marquee's own operations.
//!
//! Gorse (gorse.io) addresses the same data — items, users, feedback keyed by (user, item,
//! type) — with a few different rules, and existing Gorse clients depend on them:
//! - `POST /api/feedback` inserts events but leaves existing ones as they are (`PUT` replaces
//!   them, as Marquee's own feedback route always does), and creates the users and the items
//!   that the feedback names (Gorse's `auto_insert_user` / `auto_insert_item`, on by default).
//! - Feedback can be listed page by page over the whole tenant, per (user, item) pair, per
//!   item, and deleted event by event; lists leave out events dated in the future (Gorse's
//!   delayed write-back feedback counts from its time on).
//! - "Latest items" ranks by the items' timestamps, and users have neighbours (users who
//!   engaged with the same items).
//! - Times arrive in whatever format the client had at hand (`dateparse` on Gorse's side) and
//!   delays as Go durations (`1h30m`).
//!
//! Everything here follows Marquee's write discipline: validate the whole request, commit to
//! the store under the tenant's write lock, then change the serving state.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use marquee_store::{FeedbackRow, ItemRow};
use serde_json::Value;

use crate::Service;
use crate::error::ServiceError;
use crate::state::{Catalog, ItemEntry, TenantState, Users};
use crate::types::*;
use crate::writes::{MAX_PAGE, into_item, item_from_row};

/// Most events one feedback list (a user's, an item's) returns: the newest ones.
pub const MAX_LISTED: usize = 10_000;

/// Most categories on one item (as for every item write).
const MAX_CATEGORIES: usize = 256;

/// A feedback event as listed: the key, the value and the time.
fn feedback_of(f: FeedbackRow) -> Feedback {
    Feedback {
        user_id: f.user_id,
        item_id: f.item_id,
        kind: f.kind,
        value: f.value,
        timestamp: Timestamp(f.timestamp),
    }
}

/// The type rules of Marquee's feedback writes: 1-64 characters, no spaces or control
/// characters.
pub fn check_feedback_type(kind: &str) -> Result<(), ServiceError> {
    if kind.is_empty()
        || kind.len() > 64
        || kind.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(ServiceError::invalid(
            "FeedbackType",
            "must be 1-64 characters without spaces or control characters",
        ));
    }
    Ok(())
}

/// Records committed events in the serving state (as Marquee's own feedback writes do): each
/// replaces the user's earlier event of the same item and type, and the item's count of
/// positive events follows.
fn apply(users: &mut Users, catalog: &mut Catalog, service: &Service, rows: &[FeedbackRow]) {
    for f in rows {
        if let Some(item) = catalog.live_index(&f.item_id) {
            crate::writes::apply_event(users, catalog, service.config(), item, f);
        }
    }
}

/// The stored row of an item.
fn item_row(item: &Item) -> ItemRow {
    ItemRow {
        id: item.id.clone(),
        title: item.title.clone(),
        categories: item.categories.clone(),
        tags: item.tags.clone(),
        description: item.description.clone(),
        metadata: Value::Object(item.metadata.clone()),
        published_at: item.published_at.map(|t| t.0),
        available_from: item.available_from.map(|t| t.0),
        available_until: item.available_until.map(|t| t.0),
        hidden: item.hidden,
        updated_at: item.updated_at.0,
    }
}

/// A page cursor of the feedback table: the key of the last event served, as hex of a JSON
/// array (opaque to clients, safe in a query string).
fn encode_cursor(f: &FeedbackRow) -> String {
    let key = serde_json::json!([f.user_id, f.item_id, f.kind]);
    hex::encode(key.to_string())
}

fn decode_cursor(cursor: &str) -> Result<(String, String, String), ServiceError> {
    let bad = || ServiceError::invalid("cursor", "is not a cursor this API returned");
    let bytes = hex::decode(cursor).map_err(|_| bad())?;
    let (u, i, k): (String, String, String) = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok((u, i, k))
}

impl Service {
    /// Gorse's feedback insert: `overwrite` false (`POST /api/feedback`) keeps the events
    /// already stored under the same (user, item, type) and inserts the others; true (`PUT`)
    /// replaces them. Users and items the events name are created when missing (items bare:
    /// only the id). All or nothing; returns the number of events received, as Gorse's
    /// `RowAffected` does.
    pub async fn gorse_insert_feedback(
        &self,
        tenant: &TenantState,
        inputs: Vec<FeedbackInput>,
        overwrite: bool,
    ) -> Result<usize, ServiceError> {
        if inputs.len() > self.config().max_batch {
            return Err(ServiceError::invalid(
                "body",
                format!(
                    "the batch has {} events; the limit is {}",
                    inputs.len(),
                    self.config().max_batch
                ),
            ));
        }
        let now = Timestamp::now();
        let mut rows = Vec::with_capacity(inputs.len());
        for (index, e) in inputs.into_iter().enumerate() {
            let check = || -> Result<(), ServiceError> {
                validate_id("UserId", &e.user_id)?;
                validate_id("ItemId", &e.item_id)?;
                check_feedback_type(&e.kind)?;
                if e.value.is_some_and(|v| !v.is_finite()) {
                    return Err(ServiceError::invalid("Value", "must be a finite number"));
                }
                Ok(())
            };
            check().map_err(|err| match err {
                ServiceError::Invalid { field, message } => ServiceError::InvalidBatchElement {
                    index,
                    message: format!("{field}: {message}"),
                },
                other => other,
            })?;
            rows.push(FeedbackRow {
                user_id: e.user_id,
                item_id: e.item_id,
                kind: e.kind,
                value: e.value,
                timestamp: e.timestamp.unwrap_or(now).0,
            });
        }
        if rows.is_empty() {
            return Ok(0);
        }

        let _guard = tenant.write_lock.lock().await;
        // The items to create: named by the feedback, absent from the catalogue.
        let mut missing: Vec<&str> = {
            let catalog = tenant.catalog.read();
            rows.iter()
                .map(|r| r.item_id.as_str())
                .filter(|id| catalog.live_index(id).is_none())
                .collect()
        };
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            let items: Vec<Item> = missing
                .iter()
                .map(|id| into_item(ItemInput::default(), id.to_string(), now))
                .collect();
            let item_rows: Vec<ItemRow> = items.iter().map(item_row).collect();
            let created: HashSet<String> = self
                .store
                .insert_missing_items(tenant.id, &item_rows)
                .await?
                .into_iter()
                .collect();
            let mut catalog = tenant.catalog.write();
            // In id order, as the store lists items created at the same time.
            for item in items.iter().filter(|i| created.contains(&i.id)) {
                catalog.upsert(ItemEntry::from_item(item));
            }
            drop(catalog);
            self.catalog_changed();
        }
        let applied = if overwrite {
            self.store.insert_feedback(tenant.id, &rows).await?;
            rows.clone()
        } else {
            self.store.insert_new_feedback(tenant.id, &rows).await?
        };
        {
            let mut catalog = tenant.catalog.write();
            let mut users = tenant.users.write();
            for r in &rows {
                users.ensure(&r.user_id);
            }
            apply(&mut users, &mut catalog, self, &applied);
        }
        tenant
            .events_since_training
            .fetch_add(applied.len() as u64, Ordering::AcqRel);
        Ok(rows.len())
    }

    /// A page of the tenant's feedback (of `kind`, or of every type) dated up to now, in key
    /// order, after `cursor` (empty: from the start); the next cursor is empty at the end.
    pub async fn gorse_feedback_page(
        &self,
        tenant: &TenantState,
        kind: Option<&str>,
        cursor: &str,
        n: usize,
    ) -> Result<(Vec<Feedback>, String), ServiceError> {
        if let Some(k) = kind {
            check_feedback_type(k)?;
        }
        let after = if cursor.is_empty() {
            None
        } else {
            Some(decode_cursor(cursor)?)
        };
        let limit = n.clamp(1, MAX_PAGE);
        let rows = self
            .store
            .feedback_page(
                tenant.id,
                kind,
                after
                    .as_ref()
                    .map(|(u, i, k)| (u.as_str(), i.as_str(), k.as_str())),
                marquee_store::now_ms(),
                limit,
            )
            .await?;
        let next = match rows.last() {
            Some(last) if rows.len() == limit => encode_cursor(last),
            _ => String::new(),
        };
        Ok((rows.into_iter().map(feedback_of).collect(), next))
    }

    /// The events between a user and an item (of `kind`, or of every type).
    pub async fn gorse_user_item_feedback(
        &self,
        tenant: &TenantState,
        user_id: &str,
        item_id: &str,
        kind: Option<&str>,
    ) -> Result<Vec<Feedback>, ServiceError> {
        validate_id("user_id", user_id)?;
        validate_id("item_id", item_id)?;
        if let Some(k) = kind {
            check_feedback_type(k)?;
        }
        let rows = self
            .store
            .user_item_feedback(tenant.id, user_id, item_id, kind)
            .await?;
        Ok(rows.into_iter().map(feedback_of).collect())
    }

    /// Deletes the events between a user and an item (of `kind`, or of every type); returns
    /// how many there were. They stop counting at once (history, popularity); the next
    /// retrain forgets them.
    pub async fn gorse_delete_user_item_feedback(
        &self,
        tenant: &TenantState,
        user_id: &str,
        item_id: &str,
        kind: Option<&str>,
    ) -> Result<usize, ServiceError> {
        validate_id("user_id", user_id)?;
        validate_id("item_id", item_id)?;
        if let Some(k) = kind {
            check_feedback_type(k)?;
        }
        let _guard = tenant.write_lock.lock().await;
        let deleted = self
            .store
            .delete_user_item_feedback(tenant.id, user_id, item_id, kind)
            .await?;
        if !deleted.is_empty() {
            let mut catalog = tenant.catalog.write();
            let mut users = tenant.users.write();
            let kind_id = kind.and_then(|k| users.kinds.iter().position(|x| x == k));
            if let (Some(u), Some(i)) = (users.live_index(user_id), catalog.index.get(item_id))
                && (kind.is_none() || kind_id.is_some())
            {
                let i = *i;
                let entry = &mut users.users[u as usize];
                let removed = entry
                    .remove_events(|e| e.item == i && kind_id.is_none_or(|k| e.kind as usize == k));
                let removed_positive = removed.iter().filter(|e| e.positive).count();
                catalog.add_positive(i, -(removed_positive as i64));
            }
            tenant
                .events_since_training
                .fetch_add(deleted.len() as u64, Ordering::AcqRel);
        }
        Ok(deleted.len())
    }

    /// A user's events (of `kind`, or of every type) dated up to now, newest first (at most
    /// [`MAX_LISTED`]). A user without feedback has an empty list, as in Gorse.
    pub async fn gorse_user_feedback(
        &self,
        tenant: &TenantState,
        user_id: &str,
        kind: Option<&str>,
    ) -> Result<Vec<Feedback>, ServiceError> {
        validate_id("user_id", user_id)?;
        if let Some(k) = kind {
            check_feedback_type(k)?;
        }
        let rows = self
            .store
            .user_feedback_until(
                tenant.id,
                user_id,
                kind,
                marquee_store::now_ms(),
                MAX_LISTED,
            )
            .await?;
        Ok(rows.into_iter().map(feedback_of).collect())
    }

    /// The events on an item (of `kind`, or of every type) dated up to now, newest first (at
    /// most [`MAX_LISTED`]).
    pub async fn gorse_item_feedback(
        &self,
        tenant: &TenantState,
        item_id: &str,
        kind: Option<&str>,
    ) -> Result<Vec<Feedback>, ServiceError> {
        validate_id("item_id", item_id)?;
        if let Some(k) = kind {
            check_feedback_type(k)?;
        }
        let rows = self
            .store
            .item_feedback_until(
                tenant.id,
                item_id,
                kind,
                marquee_store::now_ms(),
                MAX_LISTED,
            )
            .await?;
        Ok(rows.into_iter().map(feedback_of).collect())
    }

    /// Adds (`present`) or removes a category of an existing item, keeping the rest of the item
    /// as it is at that moment (under the tenant's write lock).
    pub async fn gorse_set_item_category(
        &self,
        tenant: &TenantState,
        item_id: &str,
        category: &str,
        present: bool,
    ) -> Result<Item, ServiceError> {
        validate_id("item_id", item_id)?;
        if category.is_empty() || category.len() > 256 || category.chars().any(char::is_control) {
            return Err(ServiceError::invalid(
                "category",
                "must be 1-256 bytes without control characters",
            ));
        }
        let _guard = tenant.write_lock.lock().await;
        let mut item = self
            .store
            .get_item(tenant.id, item_id)
            .await?
            .map(item_from_row)
            .ok_or_else(|| ServiceError::not_found("item", item_id))?;
        let has = item.categories.iter().any(|c| c == category);
        if present == has {
            return Ok(item);
        }
        if present {
            if item.categories.len() >= MAX_CATEGORIES {
                return Err(ServiceError::invalid(
                    "category",
                    format!("the item already has {MAX_CATEGORIES} categories"),
                ));
            }
            item.categories.push(category.to_string());
        } else {
            item.categories.retain(|c| c != category);
        }
        item.updated_at = Timestamp::now();
        self.store
            .upsert_items(tenant.id, &[item_row(&item)])
            .await?;
        tenant.catalog.write().upsert(ItemEntry::from_item(&item));
        self.catalog_changed();
        Ok(item)
    }

    /// The newest servable items by their timestamp (`published_at`), in all of `categories`
    /// (case-insensitive; none: every item), leaving out `exclude`: `n` of them after skipping
    /// `offset`, each with its timestamp in Unix seconds (Gorse's score for this list). Items
    /// without a timestamp are not "latest" and are left out.
    pub fn gorse_latest(
        &self,
        tenant: &TenantState,
        categories: &[String],
        exclude: &HashSet<String>,
        offset: usize,
        n: usize,
    ) -> Vec<(String, f64)> {
        let wanted: Vec<String> = categories.iter().map(|c| c.to_lowercase()).collect();
        let now = marquee_store::now_ms();
        let catalog = tenant.catalog.read();
        let mut dated: Vec<(&ItemEntry, i64)> = catalog
            .items
            .iter()
            .filter(|e| e.servable(now))
            .filter(|e| wanted.iter().all(|c| e.categories_lower.contains(c)))
            .filter(|e| !exclude.contains(&*e.id))
            .filter_map(|e| e.published_at.map(|t| (e, t)))
            .collect();
        dated.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.id.cmp(&b.0.id)));
        dated
            .into_iter()
            .skip(offset)
            .take(n)
            .map(|(e, t)| (e.id.to_string(), t as f64 / 1000.0))
            .collect()
    }

    /// Users most like `user_id`: cosine similarity of their sets of positively engaged
    /// items (the share of items they have in common). Best first, `n` after skipping
    /// `offset`. An unknown user, or one without positive feedback, has none.
    pub fn gorse_similar_users(
        &self,
        tenant: &TenantState,
        user_id: &str,
        offset: usize,
        n: usize,
    ) -> Result<Vec<(String, f32)>, ServiceError> {
        validate_id("user_id", user_id)?;
        let users = tenant.users.read();
        let Some(me) = users.live_index(user_id) else {
            return Ok(Vec::new());
        };
        let mine: HashSet<u32> = users.users[me as usize]
            .positive_history()
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        if mine.is_empty() {
            return Ok(Vec::new());
        }
        let mut theirs: Vec<u32> = Vec::new();
        let mut scored: Vec<(u32, f32)> = Vec::new();
        for (v, entry) in users.users.iter().enumerate() {
            if v == me as usize || entry.deleted {
                continue;
            }
            theirs.clear();
            theirs.extend(entry.events().iter().filter(|e| e.positive).map(|e| e.item));
            theirs.sort_unstable();
            theirs.dedup();
            let common = theirs.iter().filter(|i| mine.contains(i)).count();
            if common > 0 {
                let score = common as f32 / ((mine.len() * theirs.len()) as f32).sqrt();
                scored.push((v as u32, score));
            }
        }
        scored.sort_unstable_by(|a, b| {
            b.1.total_cmp(&a.1).then_with(|| {
                users.users[a.0 as usize]
                    .id
                    .cmp(&users.users[b.0 as usize].id)
            })
        });
        Ok(scored
            .into_iter()
            .skip(offset)
            .take(n)
            .map(|(v, s)| (users.users[v as usize].id.to_string(), s))
            .collect())
    }

    /// The items a user gave any feedback on (what Gorse's `user-id` parameter removes from
    /// the popular and latest lists).
    pub fn gorse_seen_items(&self, tenant: &TenantState, user_id: &str) -> HashSet<String> {
        let catalog = tenant.catalog.read();
        let users = tenant.users.read();
        match users.live_index(user_id) {
            Some(u) => users.users[u as usize]
                .seen()
                .into_iter()
                .filter_map(|i| catalog.items.get(i as usize).map(|e| e.id.to_string()))
                .collect(),
            None => HashSet::new(),
        }
    }

    /// Items whose id, title, description, categories or tags contain `query`
    /// (case-insensitive), in catalogue order, at most `n`.
    pub async fn gorse_search_items(
        &self,
        tenant: &TenantState,
        query: &str,
        n: usize,
    ) -> Result<Vec<Item>, ServiceError> {
        let needle = query.to_lowercase();
        let ids: Vec<String> = {
            let catalog = tenant.catalog.read();
            let contains = |s: &str| s.to_lowercase().contains(&needle);
            catalog
                .items
                .iter()
                .filter(|e| !e.deleted)
                .filter(|e| {
                    contains(&e.id)
                        || e.title.as_deref().is_some_and(contains)
                        || e.description.as_deref().is_some_and(contains)
                        || e.categories.iter().any(|c| contains(c))
                        || e.tags.iter().any(|t| contains(t))
                })
                .take(n.clamp(1, MAX_PAGE))
                .map(|e| e.id.to_string())
                .collect()
        };
        let mut items = Vec::with_capacity(ids.len());
        for id in ids {
            // Deleted since the scan: not a match any more.
            if let Some(row) = self.store.get_item(tenant.id, &id).await? {
                items.push(item_from_row(row));
            }
        }
        Ok(items)
    }
}

// ---------------------------------------------------------------------------------------------
// Times and durations as Gorse clients send them

/// Reads a time the way Gorse does (Go's `dateparse.ParseAny`, the formats clients use):
/// RFC 3339 (`2022-02-24T10:00:00Z`, with offset or fraction), a date and time without zone
/// (UTC; `T` or a space between), a date alone (`2022-02-24`, also with `/`), or a Unix time
/// in seconds, milliseconds, microseconds or nanoseconds (by number of digits). An empty
/// string, and Go's zero time (year 1), mean "no time".
pub fn parse_time(text: &str) -> Result<Option<Timestamp>, String> {
    let s = text.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || format!("cannot read {text:?} as a time");
    let ms: i64 = if s.bytes().all(|b| b.is_ascii_digit()) {
        let v: i64 = s.parse().map_err(|_| bad())?;
        match s.len() {
            ..=10 => v.checked_mul(1000).ok_or_else(bad)?,
            11..=13 => v,
            14..=16 => v / 1000,
            17..=19 => v / 1_000_000,
            _ => return Err(bad()),
        }
    } else {
        parse_calendar(s).ok_or_else(bad)?
    };
    // Go's zero time (`0001-01-01T00:00:00Z`) is how Gorse writes "no time".
    const GO_ZERO_MS: i64 = -62_135_596_800_000;
    if ms == GO_ZERO_MS {
        return Ok(None);
    }
    // Years 1-9999, so that every stored time formats again.
    if !(GO_ZERO_MS..=253_402_300_799_999).contains(&ms) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Some(Timestamp(ms)))
}

/// `YYYY-MM-DD` or `YYYY/MM/DD`, optionally followed by `T` or a space and
/// `HH:MM[:SS[.fraction]]`, optionally followed by `Z`, `UTC`, `±HH:MM`, `±HHMM` or `±HH`.
fn parse_calendar(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<u32> {
        let part = s.get(from..from + len)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let year = num(0, 4)? as i32;
    let sep = *b.get(4)?;
    if !(sep == b'-' || sep == b'/') || *b.get(7)? != sep {
        return None;
    }
    let month = time::Month::try_from(num(5, 2)? as u8).ok()?;
    let day = num(8, 2)? as u8;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let mut rest = &s[10..];
    let mut clock = time::Time::MIDNIGHT;
    if let Some(r) = rest.strip_prefix(['T', 't', ' ']) {
        let hour = r.get(0..2)?.parse::<u8>().ok()?;
        if r.as_bytes().get(2) != Some(&b':') {
            return None;
        }
        let minute = r.get(3..5)?.parse::<u8>().ok()?;
        let mut after = &r[5..];
        let (mut second, mut nanos) = (0u8, 0u32);
        if let Some(x) = after.strip_prefix(':') {
            second = x.get(0..2)?.parse().ok()?;
            after = &x[2..];
            if let Some(f) = after.strip_prefix(['.', ',']) {
                let digits = f.bytes().take_while(u8::is_ascii_digit).count();
                if digits == 0 {
                    return None;
                }
                let frac = &f[..digits.min(9)];
                nanos = frac.parse::<u32>().ok()? * 10u32.pow(9 - frac.len() as u32);
                after = &f[digits..];
            }
        }
        clock = time::Time::from_hms_nano(hour, minute, second, nanos).ok()?;
        rest = after;
    }
    let zone = rest.trim();
    let offset = match zone {
        "" | "Z" | "z" | "UTC" | "GMT" => time::UtcOffset::UTC,
        _ => {
            let (sign, digits) = match zone.as_bytes()[0] {
                b'+' => (1i8, &zone[1..]),
                b'-' => (-1i8, &zone[1..]),
                _ => return None,
            };
            let digits = digits.replace(':', "");
            if digits.len() != 2 && digits.len() != 4 {
                return None;
            }
            if !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let hours: i8 = digits[..2].parse().ok()?;
            let minutes: i8 = if digits.len() == 4 {
                digits[2..].parse().ok()?
            } else {
                0
            };
            time::UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()?
        }
    };
    let at = time::PrimitiveDateTime::new(date, clock).assume_offset(offset);
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Writes a time as Gorse (Go's `time.Time`) does: RFC 3339 with the fraction only when
/// there is one, and Go's zero time for "no time".
pub fn format_time(t: Option<Timestamp>) -> String {
    match t {
        Some(t) => t.to_rfc3339(),
        None => "0001-01-01T00:00:00Z".to_string(),
    }
}

/// Reads a Go duration (`300ms`, `1.5h`, `2h45m`, `-10s`; units ns, us, µs, ms, s, m, h) in
/// milliseconds; `0` alone needs no unit.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let bad = || format!("cannot read {text:?} as a duration such as 1h30m or 300ms");
    let mut s = text.trim();
    let negative = s.starts_with('-');
    s = s.strip_prefix(['-', '+']).unwrap_or(s);
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total_ns: f64 = 0.0;
    while !s.is_empty() {
        let number_len = s
            .bytes()
            .take_while(|c| c.is_ascii_digit() || *c == b'.')
            .count();
        if number_len == 0 {
            return Err(bad());
        }
        let value: f64 = s[..number_len].parse().map_err(|_| bad())?;
        s = &s[number_len..];
        let unit_len = s
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(s.len(), |(i, _)| i);
        let unit_ns = match &s[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        s = &s[unit_len..];
        total_ns += value * unit_ns;
    }
    // Go's durations end at about 292 years.
    if !total_ns.is_finite() || total_ns > 9.2e18 {
        return Err(bad());
    }
    let ms = (total_ns / 1e6).round() as i64;
    Ok(if negative { -ms } else { ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        parse_time(s).unwrap().unwrap().0
    }

    #[test]
    fn times_read_in_the_formats_gorse_clients_send() {
        let base = 1_645_696_800_000; // 2022-02-24T10:00:00Z
        assert_eq!(at("2022-02-24T10:00:00Z"), base);
        assert_eq!(at("2022-02-24T11:00:00+01:00"), base);
        assert_eq!(at("2022-02-24T10:00:00.250Z"), base + 250);
        assert_eq!(at("2022-02-24 10:00:00"), base);
        assert_eq!(at("2022-02-24T10:00:00"), base);
        assert_eq!(at("2022-02-24T10:00"), base);
        assert_eq!(at("2022-02-24 05:00:00 -0500"), base);
        assert_eq!(at("2010-01-01T01:01:01.000001"), 1_262_307_661_000);
        assert_eq!(at("2022-02-24"), base - 10 * 3_600_000);
        assert_eq!(at("2022/02/24"), base - 10 * 3_600_000);
        assert_eq!(at("1645696800"), base);
        assert_eq!(at("1645696800000"), base);
        assert_eq!(parse_time("").unwrap(), None);
        assert_eq!(parse_time("0001-01-01T00:00:00Z").unwrap(), None);
        for bad in [
            "yesterday",
            "2022-13-01",
            "2022-02-30",
            "2022-02-24T25:00:00Z",
            "2022-02",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_write_as_go_does() {
        assert_eq!(
            format_time(Some(Timestamp(1_645_696_800_000))),
            "2022-02-24T10:00:00Z"
        );
        assert_eq!(
            format_time(Some(Timestamp(1_645_696_800_250))),
            "2022-02-24T10:00:00.25Z"
        );
        assert_eq!(format_time(None), "0001-01-01T00:00:00Z");
    }

    #[test]
    fn durations_read_as_go_does() {
        assert_eq!(parse_duration_ms("0").unwrap(), 0);
        assert_eq!(parse_duration_ms("300ms").unwrap(), 300);
        assert_eq!(parse_duration_ms("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration_ms("0h0m10s").unwrap(), 10_000);
        assert_eq!(parse_duration_ms("1.5h").unwrap(), 5_400_000);
        assert_eq!(parse_duration_ms("-10s").unwrap(), -10_000);
        for bad in ["", "10", "1d", "h", "1h30", "abc"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        let row = FeedbackRow {
            user_id: "ann".into(),
            item_id: "a/b?c".into(),
            kind: "like".into(),
            value: None,
            timestamp: 0,
        };
        let c = encode_cursor(&row);
        assert_eq!(
            decode_cursor(&c).unwrap(),
            ("ann".into(), "a/b?c".into(), "like".into())
        );
        assert!(decode_cursor("zz").is_err());
        assert!(decode_cursor(&hex::encode("[1,2]")).is_err());
    }
}
