//! The in-memory serving state of one tenant.
//!
//! Recommending reads the catalogue, the user's history and the trained model on every request;
//! going to the database for them would put a round trip in the hot path. So each tenant keeps
//! them in memory, written *after* the store commits (the store stays the source of truth and
//! rebuilds this state at start).
//!
//! Items and users get dense indices that never move: a deleted item keeps its slot (marked
//! deleted) so the indices a trained model uses stay valid until the next training. Reads take
//! short `parking_lot` locks and never hold them across an `.await`; writes are serialized per
//! tenant by `write_lock` so memory applies them in the order the store committed them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use parking_lot::{Mutex, RwLock};
use recsys::Model;
use serde_json::{Map, Value};

use crate::types::{Item, ModelVersionInfo};

/// What the recommend path needs of an item: what it shows, what filters and explanations
/// read, and what content-based scoring compares.
#[derive(Clone, Debug)]
pub struct ItemEntry {
    pub id: Arc<str>,
    pub title: Option<Arc<str>>,
    pub description: Option<Arc<str>>,
    pub categories: Arc<[String]>,
    /// Lower-cased categories, for case-insensitive filters.
    pub categories_lower: Arc<[String]>,
    pub tags: Arc<[String]>,
    /// Content features, built once here rather than on every request that compares content.
    features: Arc<[String]>,
    pub metadata: Arc<Map<String, Value>>,
    pub published_at: Option<i64>,
    pub hidden: bool,
    pub deleted: bool,
    pub available_from: Option<i64>,
    pub available_until: Option<i64>,
}

impl ItemEntry {
    pub fn from_item(item: &Item) -> Self {
        let categories_lower: Arc<[String]> =
            item.categories.iter().map(|c| c.to_lowercase()).collect();
        let features = categories_lower
            .iter()
            .map(|c| format!("c:{c}"))
            .chain(item.tags.iter().map(|t| format!("t:{}", t.to_lowercase())))
            .chain(
                crate::image_labels::image_labels(&item.metadata)
                    .into_iter()
                    .map(|l| format!("i:{}", l.to_lowercase())),
            )
            .collect();
        ItemEntry {
            features,
            id: Arc::from(item.id.as_str()),
            title: item.title.as_deref().map(Arc::from),
            description: item.description.as_deref().map(Arc::from),
            categories: Arc::from(item.categories.clone()),
            categories_lower,
            tags: Arc::from(item.tags.clone()),
            metadata: Arc::new(item.metadata.clone()),
            published_at: item.published_at.map(|t| t.0),
            hidden: item.hidden,
            deleted: false,
            available_from: item.available_from.map(|t| t.0),
            available_until: item.available_until.map(|t| t.0),
        }
    }

    /// The item as the filter language sees it.
    pub fn view(&self) -> crate::filter::ItemView<'_> {
        crate::filter::ItemView {
            id: &self.id,
            title: self.title.as_deref(),
            description: self.description.as_deref(),
            categories: &self.categories,
            tags: &self.tags,
            published_at: self.published_at,
            hidden: self.hidden,
            metadata: &self.metadata,
        }
    }

    /// Lower-cased categories, tags and image labels (`c:…`, `t:…`, `i:…`): the item's content
    /// features.
    pub fn features(&self) -> &[String] {
        &self.features
    }

    /// Whether the item may be shown to anyone at `now_ms`.
    pub fn servable(&self, now_ms: i64) -> bool {
        !self.deleted
            && !self.hidden
            && self.available_from.is_none_or(|t| t <= now_ms)
            && self.available_until.is_none_or(|t| now_ms < t)
    }
}

#[derive(Default)]
pub struct Catalog {
    pub items: Vec<ItemEntry>,
    pub index: HashMap<Arc<str>, u32>,
    /// Positive feedback events per item, kept current with every write: popularity before the
    /// first model, and for items the model has not seen.
    positive_counts: Vec<u32>,
    /// Changes with every change of `positive_counts`.
    counts_revision: u64,
    /// Every metadata key used in the catalogue (filters refuse other names).
    pub metadata_keys: HashSet<String>,
    /// Changes with every item write (the item embedder skips unchanged catalogues, kept
    /// lists are recomputed).
    pub version: u64,
    /// Instants at which some item's availability window opens or closes, with how many items
    /// have that edge: a list is valid until the next one.
    availability_edges: BTreeMap<i64, u32>,
}

impl Catalog {
    /// Index of a live (not deleted) item.
    pub fn live_index(&self, id: &str) -> Option<u32> {
        self.index
            .get(id)
            .copied()
            .filter(|&i| !self.items[i as usize].deleted)
    }

    /// Inserts or replaces, reusing the slot of an earlier item with the same id.
    pub fn upsert(&mut self, entry: ItemEntry) -> u32 {
        self.version += 1;
        for key in entry.metadata.keys() {
            if !self.metadata_keys.contains(key) {
                self.metadata_keys.insert(key.clone());
            }
        }
        for t in entry.available_from.iter().chain(&entry.available_until) {
            *self.availability_edges.entry(*t).or_default() += 1;
        }
        match self.index.get(&*entry.id) {
            Some(&i) => {
                let old = std::mem::replace(&mut self.items[i as usize], entry);
                for t in old.available_from.iter().chain(&old.available_until) {
                    if let Some(c) = self.availability_edges.get_mut(t) {
                        *c -= 1;
                        if *c == 0 {
                            self.availability_edges.remove(t);
                        }
                    }
                }
                i
            }
            None => {
                let i = self.items.len() as u32;
                self.index.insert(entry.id.clone(), i);
                self.items.push(entry);
                self.positive_counts.push(0);
                i
            }
        }
    }

    pub fn live_count(&self) -> usize {
        self.items.iter().filter(|e| !e.deleted).count()
    }

    /// Marks an item deleted (its slot stays) and forgets its feedback count.
    pub fn mark_deleted(&mut self, i: u32) {
        self.version += 1;
        self.items[i as usize].deleted = true;
        self.set_positive_count(i, 0);
    }

    /// Positive feedback events per item (see the field).
    pub fn positive_counts(&self) -> &[u32] {
        &self.positive_counts
    }

    /// Adds `delta` (may be negative) to an item's positive count, never below zero.
    pub fn add_positive(&mut self, i: u32, delta: i64) {
        let c = self.positive_counts[i as usize] as i64;
        self.set_positive_count(i, (c + delta).clamp(0, u32::MAX as i64) as u32);
    }

    fn set_positive_count(&mut self, i: u32, count: u32) {
        let c = &mut self.positive_counts[i as usize];
        if *c != count {
            *c = count;
            self.counts_revision += 1;
        }
    }

    /// Changes with every change of the positive counts.
    pub fn counts_revision(&self) -> u64 {
        self.counts_revision
    }

    /// The first instant after `now_ms` at which an item becomes available or stops being.
    pub fn next_availability_change(&self, now_ms: i64) -> Option<i64> {
        self.availability_edges
            .range(now_ms.saturating_add(1)..)
            .next()
            .map(|(&t, _)| t)
    }
}

/// One feedback event as kept in memory.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    pub item: u32,
    pub kind: u16,
    pub positive: bool,
    pub timestamp: i64,
}

#[derive(Default)]
pub struct UserEntry {
    pub id: Arc<str>,
    pub deleted: bool,
    /// At most one event per (item, kind), like the store. Changed only through the methods
    /// below, which count the changes in `revision`.
    events: Vec<Event>,
    /// Changes with every change of `events` (kept lists of the user are recomputed).
    revision: u32,
}

impl UserEntry {
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn revision(&self) -> u32 {
        self.revision
    }

    /// Removes the events `remove` accepts; returns them.
    pub fn remove_events(&mut self, mut remove: impl FnMut(&Event) -> bool) -> Vec<Event> {
        let mut removed = Vec::new();
        self.events.retain(|e| {
            let hit = remove(e);
            if hit {
                removed.push(*e);
            }
            !hit
        });
        if !removed.is_empty() {
            self.revision = self.revision.wrapping_add(1);
        }
        removed
    }

    /// Items with positive feedback, each once, weight 1 (what the models are trained on).
    pub fn positive_history(&self) -> Vec<(u32, f32)> {
        let mut items: Vec<u32> = self
            .events
            .iter()
            .filter(|e| e.positive)
            .map(|e| e.item)
            .collect();
        items.sort_unstable();
        items.dedup();
        items.into_iter().map(|i| (i, 1.0)).collect()
    }

    /// Every item with any feedback (positive or not): what "exclude seen" removes.
    pub fn seen(&self) -> Vec<u32> {
        let mut items: Vec<u32> = self.events.iter().map(|e| e.item).collect();
        items.sort_unstable();
        items.dedup();
        items
    }

    /// Records an event, replacing an earlier one with the same item and kind (returned).
    pub fn record(&mut self, event: Event) -> Option<Event> {
        self.revision = self.revision.wrapping_add(1);
        match self
            .events
            .iter_mut()
            .find(|e| e.item == event.item && e.kind == event.kind)
        {
            Some(existing) => Some(std::mem::replace(existing, event)),
            None => {
                self.events.push(event);
                None
            }
        }
    }
}

#[derive(Default)]
pub struct Users {
    pub users: Vec<UserEntry>,
    pub index: HashMap<Arc<str>, u32>,
    /// Interned feedback types.
    pub kinds: Vec<String>,
}

impl Users {
    pub fn live_index(&self, id: &str) -> Option<u32> {
        self.index
            .get(id)
            .copied()
            .filter(|&u| !self.users[u as usize].deleted)
    }

    /// Index of a user, creating (or reviving) the entry.
    pub fn ensure(&mut self, id: &str) -> u32 {
        if let Some(&u) = self.index.get(id) {
            self.users[u as usize].deleted = false;
            return u;
        }
        let u = self.users.len() as u32;
        let id: Arc<str> = Arc::from(id);
        self.index.insert(id.clone(), u);
        self.users.push(UserEntry {
            id,
            ..UserEntry::default()
        });
        u
    }

    pub fn kind_id(&mut self, kind: &str) -> u16 {
        match self.kinds.iter().position(|k| k == kind) {
            Some(i) => i as u16,
            None => {
                self.kinds.push(kind.to_string());
                (self.kinds.len() - 1) as u16
            }
        }
    }

    pub fn live_count(&self) -> usize {
        self.users.iter().filter(|u| !u.deleted).count()
    }

    /// After a load (which reads events in key order): each user's events in time order, as
    /// live writes leave them, and no spare capacity (most users have a few events).
    pub fn settle_loaded(&mut self) {
        for u in &mut self.users {
            u.events.sort_by_key(|e| e.timestamp);
            u.events.shrink_to_fit();
        }
        self.users.shrink_to_fit();
    }

    pub fn event_count(&self) -> usize {
        self.users.iter().map(|u| u.events.len()).sum()
    }
}

/// A trained model as served: immutable, swapped atomically when a new version is ready.
pub struct ServingModel {
    pub model: Model,
    pub info: ModelVersionInfo,
    /// Unique in the process: what kept lists remember the model by.
    pub serial: u64,
}

impl ServingModel {
    /// Puts `model` into service. A factor model of at least `ann_min_items` items (see
    /// [`crate::config::ServiceConfig::ann_min_items`]) gets its approximate top-k index built
    /// on a thread of its own; until it is ready, requests use the exact scan.
    pub fn start(model: Model, info: ModelVersionInfo, ann_min_items: usize) -> Arc<Self> {
        let serving = Arc::new(ServingModel::new(model, info));
        if serving.model.wants_index(ann_min_items) {
            let building = Arc::clone(&serving);
            let spawned = std::thread::Builder::new()
                .name("ann-index".into())
                .spawn(move || {
                    let started = std::time::Instant::now();
                    building.model.build_index(ann_min_items);
                    tracing::info!(
                        version = building.info.version,
                        items = building.model.n_items(),
                        seconds = started.elapsed().as_secs_f64(),
                        "approximate top-k index ready"
                    );
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "no thread for the approximate index; serving the exact scan");
            }
        }
        serving
    }

    pub fn new(model: Model, info: ModelVersionInfo) -> Self {
        static SERIAL: AtomicU64 = AtomicU64::new(1);
        ServingModel {
            model,
            info,
            serial: SERIAL.fetch_add(1, Ordering::Relaxed),
        }
    }
}

#[derive(Default)]
pub struct TrainingState {
    pub last_error: Option<String>,
}

pub struct TenantState {
    pub id: i64,
    pub name: String,
    pub catalog: RwLock<Catalog>,
    pub users: RwLock<Users>,
    pub model: ArcSwapOption<ServingModel>,
    /// The running A/B experiment, if any.
    pub experiment: ArcSwapOption<crate::experiments::RunningExperiment>,
    /// Models of the running experiment's variants that have their own algorithm, by variant.
    pub variant_models: RwLock<HashMap<usize, Arc<ServingModel>>>,
    /// Serializes writes: store commit, then memory update, in one order.
    pub write_lock: tokio::sync::Mutex<()>,
    /// Feedback batches waiting for the next commit, each with the sender that tells its
    /// request whether the commit went through (see `Service::write_feedback`).
    pub(crate) feedback_queue: Mutex<
        Vec<(
            Vec<marquee_store::FeedbackRow>,
            tokio::sync::oneshot::Sender<bool>,
        )>,
    >,
    pub events_since_training: AtomicU64,
    /// Set by a user's erasure: retrain so the model loses their influence, however few
    /// events changed.
    pub retrain_requested: AtomicBool,
    /// Unix ms of the latest erasure of a user with events (0: none known). The retrain that
    /// follows one deletes the kept model snapshots whose data still held the user.
    pub last_erasure_ms: AtomicI64,
    /// The configuration retrains use (tuned, asked for, or the loaded model's); the
    /// engine's default for the data when none.
    pub preferred_config: Mutex<Option<recsys::AlgorithmConfig>>,
    /// Whether the configuration was chosen (tuned or asked for) rather than defaulted.
    pub tuned: AtomicBool,
    pub training: AtomicBool,
    pub training_state: Mutex<TrainingState>,
    /// The store's generation this state was loaded at (see `Store::bump_generation`).
    pub generation: AtomicU64,
    /// Text embeddings of the items (semantic search, content similarity).
    pub vectors: RwLock<crate::semantic::ItemVectors>,
    /// Items with a vector, for status reports.
    pub embedded_items: AtomicU64,
    /// Ranked lists kept until something they came from changes.
    pub lists: crate::list_cache::ListCache,
}

impl TenantState {
    /// `list_cache_bytes`: memory for kept lists (0: none are kept).
    pub fn new(id: i64, name: String, generation: i64, list_cache_bytes: u64) -> Self {
        TenantState {
            id,
            name,
            catalog: RwLock::default(),
            users: RwLock::default(),
            model: ArcSwapOption::empty(),
            experiment: ArcSwapOption::empty(),
            variant_models: RwLock::default(),
            write_lock: tokio::sync::Mutex::new(()),
            feedback_queue: Mutex::new(Vec::new()),
            events_since_training: AtomicU64::new(0),
            retrain_requested: AtomicBool::new(false),
            last_erasure_ms: AtomicI64::new(0),
            preferred_config: Mutex::new(None),
            tuned: AtomicBool::new(false),
            training: AtomicBool::new(false),
            training_state: Mutex::default(),
            generation: AtomicU64::new(generation as u64),
            vectors: RwLock::default(),
            embedded_items: AtomicU64::new(0),
            lists: crate::list_cache::ListCache::new(list_cache_bytes),
        }
    }
}
