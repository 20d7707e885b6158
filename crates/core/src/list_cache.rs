//! Ranked lists kept per user, so that asking again does not rescore the catalogue.
//!
//! Scoring every item for a user is the main cost of a recommend request (on ml-latest-small
//! it reads a hundred rows of a 9,724² matrix), and apps ask for the same user's list again
//! and again: on every page view, from several widgets at once. A list is an exact function
//! of what it was computed from, so it can be reused for as long as none of that changes:
//!
//! - the model that scored it (a new version, or an experiment variant's own model),
//! - the catalogue (any item written or deleted),
//! - the user's own feedback (so feedback changes the user's next list at once),
//! - the items' text vectors (new items compete through them),
//! - the live counts of positive feedback, only when the list used them (cold start and the
//!   popular fill),
//! - the clock, only at the next instant an item's availability window opens or closes.
//!
//! Each entry records all of these when it is computed and a lookup compares them: nothing has
//! to be told to invalidate anything, and a stale list is never served. Lists with random
//! exploration are never kept. The cache is bounded by memory (`list_cache_mb` per tenant);
//! what is used least goes first (quick_cache's CLOCK-Pro).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::types::{Reason, RecommendOptions, Recommendation};

/// Bytes a kept list costs beyond its strings: the entry, its key and the item structs.
const ENTRY_OVERHEAD: u64 = 256;
const ITEM_OVERHEAD: u64 = 160;

/// What a list was computed from (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// [`crate::state::ServingModel::serial`] of the model used, if any.
    pub model: Option<u64>,
    pub catalog: u64,
    pub user: u32,
    pub vectors: u64,
    /// The catalogue's positive-count revision, when the list depended on live counts.
    pub counts: Option<u64>,
}

/// A request, as far as its answer depends on it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ListKey {
    user: u32,
    context: Option<u32>,
    n: usize,
    categories: Vec<String>,
    all_categories: bool,
    exclude_seen: bool,
    exclude: Vec<String>,
    filter: Option<String>,
    diversity_bits: Option<u32>,
    max_per_category: Option<usize>,
}

impl ListKey {
    /// `None` for requests whose answer is random (exploration), which are never kept.
    pub fn new(user: u32, context: Option<u32>, options: &RecommendOptions) -> Option<Self> {
        if options.exploration.is_some_and(|r| r > 0.0) {
            return None;
        }
        Some(ListKey {
            user,
            context,
            n: options.n,
            categories: options.categories.clone(),
            all_categories: options.all_categories,
            exclude_seen: options.exclude_seen,
            exclude: options.exclude.clone(),
            filter: options.filter.clone(),
            diversity_bits: options.diversity.map(f32::to_bits),
            max_per_category: options.max_per_category,
        })
    }
}

/// A ranked list as kept: its items without the per-answer ids (`recommendation_id`,
/// `variant`), and their JSON, rendered once for all the answers that serve the list.
#[derive(Debug, Default)]
pub struct RankedList {
    pub items: Vec<Recommendation>,
    json: OnceLock<Vec<String>>,
}

impl RankedList {
    pub fn new(items: Vec<Recommendation>) -> Self {
        RankedList {
            items,
            json: OnceLock::new(),
        }
    }

    /// Each item's JSON object up to its per-answer ids: `{"item_id":…,"categories":[…]`,
    /// without the closing brace.
    pub fn json_heads(&self) -> &[String] {
        self.json.get_or_init(|| {
            /// [`Recommendation`]'s fields before the ids, by reference, in its order.
            #[derive(serde::Serialize)]
            struct Head<'a> {
                item_id: &'a str,
                title: Option<&'a str>,
                score: f32,
                reason: &'a Reason,
                categories: &'a [String],
            }
            self.items
                .iter()
                .map(|r| {
                    let mut json = serde_json::to_string(&Head {
                        item_id: &r.item_id,
                        title: r.title.as_deref(),
                        score: r.score,
                        reason: &r.reason,
                        categories: &r.categories,
                    })
                    .unwrap_or_else(|_| "{".into());
                    json.pop();
                    json
                })
                .collect()
        })
    }
}

struct Entry {
    stamp: Stamp,
    /// The first instant (ms) at which an item's availability changes after the list was made.
    valid_until: Option<i64>,
    list: Arc<RankedList>,
}

/// Weighs a kept list by the memory it holds: its strings twice (the items and their JSON,
/// rendered on the first answer), plus fixed overheads.
#[derive(Clone)]
struct ByMemory;

impl quick_cache::Weighter<ListKey, Arc<Entry>> for ByMemory {
    fn weight(&self, key: &ListKey, entry: &Arc<Entry>) -> u64 {
        let text = |s: &str| s.len() as u64;
        let items: u64 = entry
            .list
            .items
            .iter()
            .map(|r| {
                ITEM_OVERHEAD
                    + 2 * (text(&r.item_id)
                        + r.title.as_deref().map_or(0, text)
                        + text(&r.reason.kind)
                        + text(&r.reason.message)
                        + r.reason.items.iter().map(|s| text(s) + 24).sum::<u64>()
                        + r.categories.iter().map(|s| text(s) + 24).sum::<u64>())
            })
            .sum();
        let key_text: u64 = key
            .categories
            .iter()
            .chain(&key.exclude)
            .map(|s| text(s))
            .sum::<u64>()
            + key.filter.as_deref().map_or(0, text);
        ENTRY_OVERHEAD + key_text + items
    }
}

/// A tenant's kept lists.
pub struct ListCache {
    /// `None` when keeping lists is turned off.
    entries: Option<quick_cache::sync::Cache<ListKey, Arc<Entry>, ByMemory>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ListCache {
    /// A cache holding at most `bytes` (as [`ByMemory`] weighs them); 0 keeps nothing.
    pub fn new(bytes: u64) -> Self {
        let entries = (bytes > 0).then(|| {
            // quick_cache sizes its tables from an estimate of the count: ~4 KB per list.
            let estimated = (bytes / 4096).clamp(16, 10_000_000) as usize;
            quick_cache::sync::Cache::with_weighter(estimated, bytes, ByMemory)
        });
        ListCache {
            entries,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The list kept for `key`, if it was computed from exactly `stamp` and is still valid at
    /// `now_ms`. `counts` is the catalogue's current count revision, compared only for lists
    /// that used the counts.
    pub fn get(
        &self,
        key: &ListKey,
        stamp: &Stamp,
        counts: u64,
        now_ms: i64,
    ) -> Option<Arc<RankedList>> {
        let found = self.entries.as_ref()?.get(key).filter(|e| {
            let s = &e.stamp;
            s.model == stamp.model
                && s.catalog == stamp.catalog
                && s.user == stamp.user
                && s.vectors == stamp.vectors
                && s.counts.is_none_or(|c| c == counts)
                && e.valid_until.is_none_or(|t| now_ms < t)
        });
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found.map(|e| e.list.clone())
    }

    pub fn insert(
        &self,
        key: ListKey,
        stamp: Stamp,
        valid_until: Option<i64>,
        list: Arc<RankedList>,
    ) {
        let Some(entries) = &self.entries else {
            return;
        };
        entries.insert(
            key,
            Arc::new(Entry {
                stamp,
                valid_until,
                list,
            }),
        );
    }

    /// Lookups answered from the cache and lookups that were not, since the start.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| e.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Memory held, as weighed (see [`ByMemory`]).
    pub fn weight(&self) -> u64 {
        self.entries.as_ref().map_or(0, |e| e.weight())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp() -> Stamp {
        Stamp {
            model: Some(1),
            catalog: 3,
            user: 2,
            vectors: 0,
            counts: None,
        }
    }

    fn list() -> Arc<RankedList> {
        Arc::new(RankedList::default())
    }

    #[test]
    fn a_list_is_served_only_while_everything_it_came_from_is_unchanged() {
        let cache = ListCache::new(1 << 20);
        let key = ListKey::new(7, None, &RecommendOptions::default()).unwrap();
        cache.insert(key.clone(), stamp(), Some(1_000), list());
        assert!(cache.get(&key, &stamp(), 0, 999).is_some());
        for changed in [
            Stamp {
                model: Some(2),
                ..stamp()
            },
            Stamp {
                catalog: 4,
                ..stamp()
            },
            Stamp { user: 3, ..stamp() },
            Stamp {
                vectors: 1,
                ..stamp()
            },
        ] {
            assert!(cache.get(&key, &changed, 0, 0).is_none(), "{changed:?}");
        }
        // An availability window opens or closes at 1,000.
        assert!(cache.get(&key, &stamp(), 0, 1_000).is_none());
        assert_eq!(cache.hits_and_misses(), (1, 5));
    }

    #[test]
    fn memory_bounds_what_is_kept_and_zero_keeps_nothing() {
        let big = || {
            let r = Recommendation {
                item_id: "i".repeat(1000),
                title: None,
                score: 1.0,
                reason: Reason {
                    kind: "popular".into(),
                    items: Vec::new(),
                    message: String::new(),
                },
                categories: Vec::new(),
                recommendation_id: String::new(),
                variant: None,
            };
            Arc::new(RankedList::new(vec![r; 10]))
        };
        let cache = ListCache::new(200_000);
        for user in 0..100 {
            let key = ListKey::new(user, None, &RecommendOptions::default()).unwrap();
            cache.insert(key, stamp(), None, big());
        }
        assert!(cache.weight() <= 200_000, "{}", cache.weight());
        assert!(cache.len() < 100 && !cache.is_empty(), "{}", cache.len());

        let off = ListCache::new(0);
        let key = ListKey::new(1, None, &RecommendOptions::default()).unwrap();
        off.insert(key.clone(), stamp(), None, big());
        assert!(off.get(&key, &stamp(), 0, 0).is_none());
        assert!(off.is_empty());
    }

    #[test]
    fn live_counts_matter_only_to_lists_that_used_them() {
        let cache = ListCache::new(1 << 20);
        let key = ListKey::new(1, None, &RecommendOptions::default()).unwrap();
        cache.insert(key.clone(), stamp(), None, list());
        assert!(cache.get(&key, &stamp(), 99, 0).is_some());
        let used = Stamp {
            counts: Some(5),
            ..stamp()
        };
        cache.insert(key.clone(), used, None, list());
        assert!(cache.get(&key, &stamp(), 5, 0).is_some());
        assert!(cache.get(&key, &stamp(), 6, 0).is_none());
    }

    #[test]
    fn requests_differ_by_every_option_and_random_ones_are_not_kept() {
        let base = RecommendOptions::default();
        let a = ListKey::new(1, None, &base).unwrap();
        assert_ne!(a, ListKey::new(1, Some(4), &base).unwrap());
        assert_ne!(a, ListKey::new(2, None, &base).unwrap());
        let variants = [
            RecommendOptions {
                n: 5,
                ..base.clone()
            },
            RecommendOptions {
                categories: vec!["drama".into()],
                ..base.clone()
            },
            RecommendOptions {
                exclude_seen: false,
                ..base.clone()
            },
            RecommendOptions {
                filter: Some("year > 1990".into()),
                ..base.clone()
            },
            RecommendOptions {
                diversity: Some(0.3),
                ..base.clone()
            },
        ];
        for v in &variants {
            assert_ne!(a, ListKey::new(1, None, v).unwrap());
        }
        let exploring = RecommendOptions {
            exploration: Some(0.2),
            ..base
        };
        assert!(ListKey::new(1, None, &exploring).is_none());
    }
}
