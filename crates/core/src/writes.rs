//! Catalogue, users and feedback: validation, the store write, then the in-memory update.
//!
//! Every write validates the whole request first (a batch with one bad element is refused whole,
//! naming the element), commits it to the store in one transaction, and only then changes the
//! serving state — so memory never shows what the store might not have.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use marquee_store::{FeedbackRow, ItemRow, Store, UserRow};
use serde_json::{Map, Value};

use crate::config::ServiceConfig;
use crate::error::ServiceError;
use crate::state::{Catalog, Event, ItemEntry, TenantState, Users};
use crate::types::*;
use crate::{Service, TenantState as Tenant};

/// Longest title, description, category or tag, in bytes.
const MAX_TEXT_BYTES: usize = 65_536;
/// Most categories or tags on one item.
const MAX_LABELS: usize = 256;
/// Largest JSON object accepted as item metadata or user attributes, serialized.
const MAX_OBJECT_BYTES: usize = 65_536;
/// Page size bounds for list routes.
pub const MAX_PAGE: usize = 1000;

/// Rebuilds a tenant's serving state from the store.
/// With `order` (the item ids of a saved model, by model index), the catalogue is laid out in
/// that order first — items since deleted keep their slot as deleted entries — so the model's
/// indices are the catalogue's; the other items follow in the store's order.
pub(crate) async fn load_state(
    store: &Store,
    config: &ServiceConfig,
    state: &TenantState,
    order: Option<&[String]>,
) -> Result<(), ServiceError> {
    let items = store.all_items(state.id).await?;
    let user_ids = store.all_user_ids(state.id).await?;
    {
        let mut catalog = state.catalog.write();
        let mut by_id: HashMap<&str, &ItemRow> = items.iter().map(|r| (r.id.as_str(), r)).collect();
        for id in order.unwrap_or_default() {
            match by_id.remove(id.as_str()) {
                Some(row) => {
                    catalog.upsert(ItemEntry::from_item(&item_from_row(row.clone())));
                }
                None => {
                    let mut gone = ItemEntry::from_item(&into_item(
                        ItemInput::default(),
                        id.clone(),
                        Timestamp(0),
                    ));
                    gone.deleted = true;
                    catalog.upsert(gone);
                }
            }
        }
        for row in items.iter().filter(|r| by_id.contains_key(r.id.as_str())) {
            catalog.upsert(ItemEntry::from_item(&item_from_row(row.clone())));
        }
    }
    {
        let mut users = state.users.write();
        for id in &user_ids {
            users.ensure(id);
        }
    }
    drop(user_ids);
    // Feedback a page at a time, in key order: all of a tenant's rows at once cost ~200 bytes
    // per event while loading, and the allocator could not give that back from among the
    // entries that stay.
    let mut events = 0usize;
    let mut after: Option<FeedbackRow> = None;
    loop {
        let page = store
            .feedback_page(
                state.id,
                None,
                after
                    .as_ref()
                    .map(|f| (f.user_id.as_str(), f.item_id.as_str(), f.kind.as_str())),
                i64::MAX,
                LOAD_PAGE,
            )
            .await?;
        let mut catalog = state.catalog.write();
        let mut users = state.users.write();
        for f in &page {
            if let Some(item) = catalog.live_index(&f.item_id) {
                apply_event(&mut users, &mut catalog, config, item, f);
            }
        }
        events += page.len();
        if page.len() < LOAD_PAGE {
            break;
        }
        after = page.into_iter().last();
    }
    let catalog = state.catalog.read();
    let mut users = state.users.write();
    users.settle_loaded();
    tracing::debug!(
        tenant = %state.name,
        items = catalog.items.len(),
        users = users.users.len(),
        events,
        "loaded tenant state"
    );
    Ok(())
}

/// Feedback rows read per query while loading a tenant.
const LOAD_PAGE: usize = 50_000;

/// Takes the tenant's write lock and commits every queued feedback batch in one transaction,
/// then applies them to memory and tells each batch's request (see `Service::write_feedback`).
/// Finds the queue empty when an earlier holder of the lock already committed it.
async fn commit_queued_feedback(store: Store, config: ServiceConfig, tenant: Arc<Tenant>) {
    let _guard = tenant.write_lock.lock().await;
    let queued = std::mem::take(&mut *tenant.feedback_queue.lock());
    if queued.is_empty() {
        return;
    }
    let all: Vec<FeedbackRow> = queued
        .iter()
        .flat_map(|(rows, _)| rows.iter().cloned())
        .collect();
    let committed = match store.insert_feedback(tenant.id, &all).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(tenant = %tenant.name, error = %e, events = all.len(), "feedback commit failed");
            false
        }
    };
    if committed {
        let mut catalog = tenant.catalog.write();
        let mut users = tenant.users.write();
        for f in &all {
            // The item may have been deleted between validation and here; the store then holds
            // an orphan row that the next load skips, and memory must skip it too.
            if let Some(item) = catalog.live_index(&f.item_id) {
                apply_event(&mut users, &mut catalog, &config, item, f);
            }
        }
        tenant
            .events_since_training
            .fetch_add(all.len() as u64, Ordering::AcqRel);
    }
    for (_, done) in queued {
        let _ = done.send(committed);
    }
}

/// Records one committed event in the serving state: it replaces the user's earlier event of
/// the same item and type, and the item's count of positive events follows.
pub(crate) fn apply_event(
    users: &mut Users,
    catalog: &mut Catalog,
    config: &ServiceConfig,
    item: u32,
    f: &FeedbackRow,
) {
    let kind = users.kind_id(&f.kind);
    let u = users.ensure(&f.user_id);
    let positive = config.is_positive(&f.kind, f.value);
    let replaced = users.users[u as usize].record(Event {
        item,
        kind,
        positive,
        timestamp: f.timestamp,
    });
    let delta = i64::from(positive) - i64::from(replaced.is_some_and(|old| old.positive));
    catalog.add_positive(item, delta);
}

pub(crate) fn item_from_row(row: ItemRow) -> Item {
    Item {
        id: row.id,
        title: row.title,
        categories: row.categories,
        tags: row.tags,
        description: row.description,
        metadata: match row.metadata {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        published_at: row.published_at.map(Timestamp),
        available_from: row.available_from.map(Timestamp),
        available_until: row.available_until.map(Timestamp),
        hidden: row.hidden,
        updated_at: Timestamp(row.updated_at),
    }
}

fn item_to_row(item: &Item) -> ItemRow {
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

fn check_text(field: &str, text: &str) -> Result<(), ServiceError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(ServiceError::invalid(
            field,
            format!("is longer than {MAX_TEXT_BYTES} bytes"),
        ));
    }
    Ok(())
}

fn check_labels(field: &str, labels: &[String]) -> Result<(), ServiceError> {
    if labels.len() > MAX_LABELS {
        return Err(ServiceError::invalid(
            field,
            format!("has more than {MAX_LABELS} entries"),
        ));
    }
    for (i, l) in labels.iter().enumerate() {
        if l.is_empty() || l.len() > 256 || l.chars().any(char::is_control) {
            return Err(ServiceError::invalid(
                format!("{field}[{i}]"),
                "must be 1-256 bytes without control characters",
            ));
        }
    }
    Ok(())
}

fn check_object(field: &str, object: &Map<String, Value>) -> Result<(), ServiceError> {
    let size = serde_json::to_string(object)
        .map(|s| s.len())
        .unwrap_or(usize::MAX);
    if size > MAX_OBJECT_BYTES {
        return Err(ServiceError::invalid(
            field,
            format!("is larger than {MAX_OBJECT_BYTES} bytes"),
        ));
    }
    Ok(())
}

fn validate_item(item: &Item) -> Result<(), ServiceError> {
    validate_id("id", &item.id)?;
    if let Some(t) = &item.title {
        check_text("title", t)?;
    }
    if let Some(d) = &item.description {
        check_text("description", d)?;
    }
    check_labels("categories", &item.categories)?;
    check_labels("tags", &item.tags)?;
    check_object("metadata", &item.metadata)?;
    if let (Some(from), Some(until)) = (item.available_from, item.available_until)
        && from >= until
    {
        return Err(ServiceError::invalid(
            "available_until",
            "must be after available_from",
        ));
    }
    Ok(())
}

fn dedup_labels(mut labels: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    labels.retain(|l| seen.insert(l.clone()));
    labels
}

/// The stored form of `input` for item `id`.
pub fn into_item(input: ItemInput, id: String, now: Timestamp) -> Item {
    Item {
        id,
        title: input.title,
        categories: dedup_labels(input.categories),
        tags: dedup_labels(input.tags),
        description: input.description,
        metadata: input.metadata.unwrap_or_default(),
        published_at: input.published_at,
        available_from: input.available_from,
        available_until: input.available_until,
        hidden: input.hidden,
        updated_at: now,
    }
}

/// Turns a batch-element error into one that names the element.
fn at_index(index: usize) -> impl Fn(ServiceError) -> ServiceError {
    move |e| match e {
        ServiceError::Invalid { field, message } => ServiceError::InvalidBatchElement {
            index,
            message: format!("{field}: {message}"),
        },
        other => other,
    }
}

impl Service {
    fn check_batch_size(&self, len: usize) -> Result<(), ServiceError> {
        if len == 0 {
            return Err(ServiceError::invalid("body", "the batch is empty"));
        }
        if len > self.config.max_batch {
            return Err(ServiceError::invalid(
                "body",
                format!(
                    "the batch has {len} elements; the limit is {}",
                    self.config.max_batch
                ),
            ));
        }
        Ok(())
    }

    // ------------------------------------------------------------------------------------
    // Items

    /// Creates or replaces items. Every element must carry an `id`.
    pub async fn upsert_items(
        &self,
        tenant: &Tenant,
        inputs: Vec<ItemInput>,
    ) -> Result<Vec<Item>, ServiceError> {
        self.check_batch_size(inputs.len())?;
        let now = Timestamp::now();
        let mut items = Vec::with_capacity(inputs.len());
        for (index, mut input) in inputs.into_iter().enumerate() {
            let id = input
                .id
                .take()
                .ok_or_else(|| ServiceError::invalid("id", "is required"))
                .map_err(at_index(index))?;
            let item = into_item(input, id, now);
            validate_item(&item).map_err(at_index(index))?;
            items.push(item);
        }
        self.write_items(tenant, &items).await?;
        Ok(items)
    }

    /// Creates or replaces one item.
    pub async fn put_item(
        &self,
        tenant: &Tenant,
        id: &str,
        mut input: ItemInput,
    ) -> Result<Item, ServiceError> {
        validate_id("item_id", id)?;
        if let Some(body_id) = input.id.take()
            && body_id != id
        {
            return Err(ServiceError::invalid(
                "id",
                "differs from the id in the path",
            ));
        }
        let item = into_item(input, id.to_string(), Timestamp::now());
        validate_item(&item)?;
        self.write_items(tenant, std::slice::from_ref(&item))
            .await?;
        Ok(item)
    }

    /// Changes the given fields of an existing item.
    pub async fn patch_item(
        &self,
        tenant: &Tenant,
        id: &str,
        patch: ItemPatch,
    ) -> Result<Item, ServiceError> {
        self.modify_item(tenant, id, move |item| {
            if let Some(v) = patch.title {
                item.title = v;
            }
            if let Some(v) = patch.categories {
                item.categories = dedup_labels(v);
            }
            if let Some(v) = patch.tags {
                item.tags = dedup_labels(v);
            }
            if let Some(v) = patch.description {
                item.description = v;
            }
            if let Some(v) = patch.metadata {
                item.metadata = v;
            }
            if let Some(v) = patch.published_at {
                item.published_at = v;
            }
            if let Some(v) = patch.available_from {
                item.available_from = v;
            }
            if let Some(v) = patch.available_until {
                item.available_until = v;
            }
            if let Some(v) = patch.hidden {
                item.hidden = v;
            }
        })
        .await
    }

    /// Sets one metadata key of an existing item, leaving the rest as it is at that moment
    /// (under the tenant's write lock, so a concurrent change is not lost).
    pub async fn set_item_metadata(
        &self,
        tenant: &Tenant,
        id: &str,
        key: &str,
        value: Value,
    ) -> Result<Item, ServiceError> {
        self.modify_item(tenant, id, |item| {
            item.metadata.insert(key.to_string(), value);
        })
        .await
    }

    /// Reads an item, changes it with `change`, validates and stores it, all under the
    /// tenant's write lock.
    async fn modify_item(
        &self,
        tenant: &Tenant,
        id: &str,
        change: impl FnOnce(&mut Item),
    ) -> Result<Item, ServiceError> {
        validate_id("item_id", id)?;
        let _guard = tenant.write_lock.lock().await;
        let mut item = self
            .store
            .get_item(tenant.id, id)
            .await?
            .map(item_from_row)
            .ok_or_else(|| ServiceError::not_found("item", id))?;
        change(&mut item);
        item.updated_at = Timestamp::now();
        validate_item(&item)?;
        self.store
            .upsert_items(tenant.id, &[item_to_row(&item)])
            .await?;
        tenant.catalog.write().upsert(ItemEntry::from_item(&item));
        self.catalog_changed();
        Ok(item)
    }

    async fn write_items(&self, tenant: &Tenant, items: &[Item]) -> Result<(), ServiceError> {
        let rows: Vec<ItemRow> = items.iter().map(item_to_row).collect();
        let _guard = tenant.write_lock.lock().await;
        self.store.upsert_items(tenant.id, &rows).await?;
        let mut catalog = tenant.catalog.write();
        // New items of a batch share their creation time, so the store lists them by id: add
        // them in that order too, and a restart lays the catalogue out as it is now.
        let mut sorted: Vec<&Item> = items.iter().collect();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        for item in sorted {
            catalog.upsert(ItemEntry::from_item(item));
        }
        drop(catalog);
        self.catalog_changed();
        Ok(())
    }

    pub async fn get_item(&self, tenant: &Tenant, id: &str) -> Result<Item, ServiceError> {
        validate_id("item_id", id)?;
        self.store
            .get_item(tenant.id, id)
            .await?
            .map(item_from_row)
            .ok_or_else(|| ServiceError::not_found("item", id))
    }

    /// A page of items in id order after `cursor`; the next cursor when more may follow.
    pub async fn list_items(
        &self,
        tenant: &Tenant,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Item>, Option<String>), ServiceError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let rows = self.store.list_items(tenant.id, cursor, limit).await?;
        let next = (rows.len() == limit)
            .then(|| rows.last().map(|r| r.id.clone()))
            .flatten();
        Ok((rows.into_iter().map(item_from_row).collect(), next))
    }

    /// Deletes an item and the feedback on it. From the moment this returns, it is never
    /// recommended.
    pub async fn delete_item(&self, tenant: &Tenant, id: &str) -> Result<(), ServiceError> {
        validate_id("item_id", id)?;
        let _guard = tenant.write_lock.lock().await;
        if !self.store.delete_item(tenant.id, id).await? {
            return Err(ServiceError::not_found("item", id));
        }
        let index = {
            let mut catalog = tenant.catalog.write();
            let index = catalog.index.get(id).copied();
            if let Some(i) = index {
                catalog.mark_deleted(i);
            }
            index
        };
        if let Some(i) = index {
            for user in tenant.users.write().users.iter_mut() {
                user.remove_events(|e| e.item == i);
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------------------------
    // Users

    pub async fn upsert_users(
        &self,
        tenant: &Tenant,
        inputs: Vec<UserInput>,
    ) -> Result<Vec<User>, ServiceError> {
        self.check_batch_size(inputs.len())?;
        let now = Timestamp::now();
        let mut users = Vec::with_capacity(inputs.len());
        for (index, input) in inputs.into_iter().enumerate() {
            let check = || -> Result<User, ServiceError> {
                let id = input
                    .id
                    .clone()
                    .ok_or_else(|| ServiceError::invalid("id", "is required"))?;
                validate_id("id", &id)?;
                check_object("attributes", &input.attributes)?;
                Ok(User {
                    id,
                    attributes: input.attributes.clone(),
                    updated_at: now,
                })
            };
            users.push(check().map_err(at_index(index))?);
        }
        self.write_users(tenant, &users).await?;
        Ok(users)
    }

    pub async fn put_user(
        &self,
        tenant: &Tenant,
        id: &str,
        input: UserInput,
    ) -> Result<User, ServiceError> {
        validate_id("user_id", id)?;
        if input.id.as_deref().is_some_and(|b| b != id) {
            return Err(ServiceError::invalid(
                "id",
                "differs from the id in the path",
            ));
        }
        check_object("attributes", &input.attributes)?;
        let user = User {
            id: id.to_string(),
            attributes: input.attributes,
            updated_at: Timestamp::now(),
        };
        self.write_users(tenant, std::slice::from_ref(&user))
            .await?;
        Ok(user)
    }

    /// Merges `attributes` into an existing user's (a `null` value removes that attribute).
    pub async fn patch_user(
        &self,
        tenant: &Tenant,
        id: &str,
        attributes: Map<String, Value>,
    ) -> Result<User, ServiceError> {
        validate_id("user_id", id)?;
        let _guard = tenant.write_lock.lock().await;
        let row = self
            .store
            .get_user(tenant.id, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("user", id))?;
        let mut user = self.open_user(tenant.id, row).await?;
        for (k, v) in attributes {
            if v.is_null() {
                user.attributes.remove(&k);
            } else {
                user.attributes.insert(k, v);
            }
        }
        check_object("attributes", &user.attributes)?;
        user.updated_at = Timestamp::now();
        let row = self.seal_user(tenant.id, &user).await?;
        self.store.upsert_users(tenant.id, &[row]).await?;
        tenant.users.write().ensure(id);
        Ok(user)
    }

    async fn write_users(&self, tenant: &Tenant, users: &[User]) -> Result<(), ServiceError> {
        let mut rows: Vec<UserRow> = Vec::with_capacity(users.len());
        for user in users {
            rows.push(self.seal_user(tenant.id, user).await?);
        }
        let _guard = tenant.write_lock.lock().await;
        self.store.upsert_users(tenant.id, &rows).await?;
        let mut mem = tenant.users.write();
        for u in users {
            mem.ensure(&u.id);
        }
        Ok(())
    }

    pub async fn get_user(&self, tenant: &Tenant, id: &str) -> Result<User, ServiceError> {
        validate_id("user_id", id)?;
        let row = self
            .store
            .get_user(tenant.id, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("user", id))?;
        self.open_user(tenant.id, row).await
    }

    pub async fn list_users(
        &self,
        tenant: &Tenant,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<User>, Option<String>), ServiceError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let rows = self.store.list_users(tenant.id, cursor, limit).await?;
        let next = (rows.len() == limit)
            .then(|| rows.last().map(|r| r.id.clone()))
            .flatten();
        let mut users = Vec::with_capacity(rows.len());
        for row in rows {
            users.push(self.open_user(tenant.id, row).await?);
        }
        Ok((users, next))
    }

    // ------------------------------------------------------------------------------------
    // Feedback

    /// Records a batch of feedback events: all or nothing. Users are created as needed; items
    /// must exist.
    pub async fn insert_feedback(
        &self,
        tenant: &Arc<Tenant>,
        inputs: Vec<FeedbackInput>,
    ) -> Result<usize, ServiceError> {
        self.check_batch_size(inputs.len())?;
        let now = Timestamp::now();
        let mut attributed: Vec<(String, String)> = Vec::new();
        let mut rows = Vec::with_capacity(inputs.len());
        {
            let catalog = tenant.catalog.read();
            for (index, e) in inputs.into_iter().enumerate() {
                let check = || -> Result<(), ServiceError> {
                    validate_id("user_id", &e.user_id)?;
                    validate_id("item_id", &e.item_id)?;
                    if e.kind.is_empty()
                        || e.kind.len() > 64
                        || e.kind.chars().any(|c| c.is_control() || c.is_whitespace())
                    {
                        return Err(ServiceError::invalid(
                            "type",
                            "must be 1-64 characters without spaces or control characters",
                        ));
                    }
                    if e.value.is_some_and(|v| !v.is_finite()) {
                        return Err(ServiceError::invalid("value", "must be a finite number"));
                    }
                    if catalog.live_index(&e.item_id).is_none() {
                        return Err(ServiceError::invalid(
                            "item_id",
                            format!("item {:?} does not exist; create it first", e.item_id),
                        ));
                    }
                    if let Some(r) = &e.recommendation_id
                        && let Err(m) = crate::experiments::parse_recommendation_id(r)
                    {
                        return Err(ServiceError::invalid("recommendation_id", m));
                    }
                    Ok(())
                };
                check().map_err(at_index(index))?;
                if let Some(r) = e.recommendation_id {
                    attributed.push((r, e.kind.clone()));
                }
                rows.push(FeedbackRow {
                    user_id: e.user_id,
                    item_id: e.item_id,
                    kind: e.kind,
                    value: e.value,
                    timestamp: e.timestamp.unwrap_or(now).0,
                });
            }
        }
        let accepted = rows.len();
        self.write_feedback(tenant, rows).await?;
        // After the commit: attribution is idempotent, so a retried batch counts once.
        self.attribute(tenant, &attributed).await?;
        Ok(accepted)
    }

    /// Commits feedback rows already validated, then applies them to memory; returns once they
    /// are committed.
    ///
    /// Group commit: batches that arrive while another commit runs wait in the tenant's queue,
    /// and whoever takes the write lock next commits everything queued in one transaction.
    /// A commit costs about the same for one batch as for ten (its cost is the index pages it
    /// dirties and the fsync), so concurrent senders share it. Memory applies the rows in the
    /// order they were queued, which is the order the store saw them. The commit runs in its
    /// own task, so a client that goes away cannot cancel a commit other requests wait for.
    pub(crate) async fn write_feedback(
        &self,
        tenant: &Arc<Tenant>,
        rows: Vec<FeedbackRow>,
    ) -> Result<(), ServiceError> {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        tenant.feedback_queue.lock().push((rows, done_tx));
        tokio::spawn(commit_queued_feedback(
            self.store.clone(),
            self.config.clone(),
            Arc::clone(tenant),
        ));
        match done_rx.await {
            Ok(true) => Ok(()),
            _ => Err(ServiceError::Internal(
                "the feedback could not be stored; nothing of this request was recorded".into(),
            )),
        }
    }

    /// A user's most recent feedback, newest first.
    pub async fn user_feedback(
        &self,
        tenant: &Tenant,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<Feedback>, ServiceError> {
        validate_id("user_id", user_id)?;
        if tenant.users.read().live_index(user_id).is_none() {
            return Err(ServiceError::not_found("user", user_id));
        }
        let rows = self
            .store
            .user_feedback(tenant.id, user_id, limit.clamp(1, MAX_PAGE))
            .await?;
        Ok(rows
            .into_iter()
            .map(|f| Feedback {
                user_id: f.user_id,
                item_id: f.item_id,
                kind: f.kind,
                value: f.value,
                timestamp: Timestamp(f.timestamp),
            })
            .collect())
    }

    /// Bulk load for imports: items, then feedback, in large transactions, without the
    /// per-request batch limit. Memory is updated as for ordinary writes.
    pub async fn import(
        &self,
        tenant: &Arc<Tenant>,
        items: Vec<Item>,
        feedback: Vec<FeedbackRow>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), ServiceError> {
        for (i, item) in items.iter().enumerate() {
            validate_item(item).map_err(at_index(i))?;
        }
        const CHUNK: usize = 20_000;
        for chunk in items.chunks(CHUNK) {
            self.write_items(tenant, chunk).await?;
            progress(chunk.len() as u64);
        }
        for chunk in feedback.chunks(CHUNK) {
            self.write_feedback(tenant, chunk.to_vec()).await?;
            progress(chunk.len() as u64);
        }
        // Leave the imported events in the keyed table, not in the log.
        self.store.fold_feedback().await?;
        Ok(())
    }
}
