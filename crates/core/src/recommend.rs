//! Recommendation queries, answered from memory.
//!
//! For a user, the current model scores the catalogue from the user's *current* history (the
//! history in memory includes feedback that arrived after training, so lists react at once).
//! Items the model has not seen (added since training, or never engaged with) compete through
//! their content: the categories and tags they share with what the user engaged with. In the
//! context of an item ("what to watch after this one") the user's scores are blended with the
//! item's nearest neighbours. With no usable history, the context's neighbours or the
//! time-decayed popularity answer. Filters apply before ranking, diversity after; every result
//! says why it was chosen.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use recsys::top_k;

use crate::Service;
use crate::error::ServiceError;
use crate::experiments::new_recommendation_id;
use crate::filter::Expr;
use crate::list_cache::{ListKey, RankedList, Stamp};
use crate::semantic::{ItemVectors, embedding_similarity};
use crate::state::{Catalog, ServingModel, TenantState};
use crate::types::*;

/// Weight of the context item's similarity against the user's own scores (both normalised to
/// [0, 1]) on the context route.
const CONTEXT_WEIGHT: f32 = 0.5;
/// Candidates taken from each source before blending and re-ranking.
const CANDIDATE_POOL: usize = 300;
/// History items named in a "because you engaged with" reason.
const REASON_ITEMS: usize = 3;
/// Content similarity an unseen-by-the-model item needs to be proposed.
const MIN_CONTENT_SIMILARITY: f32 = 0.2;
/// The same for the cosine of text embeddings (unrelated texts score about 0 to 0.2).
const MIN_EMBEDDING_SIMILARITY: f32 = 0.3;
/// Trending compares the last week with the four weeks before it.
const TRENDING_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;

/// Decides which items may appear in a result.
struct Filter<'a> {
    catalog: &'a Catalog,
    now: i64,
    categories: Vec<String>,
    all_categories: bool,
    expr: Option<Expr>,
    excluded: Vec<u32>,
}

impl<'a> Filter<'a> {
    fn new(
        catalog: &'a Catalog,
        options: &RecommendOptions,
        mut excluded: Vec<u32>,
    ) -> Result<Self, ServiceError> {
        excluded.extend(
            options
                .exclude
                .iter()
                .filter_map(|id| catalog.index.get(id.as_str()).copied()),
        );
        excluded.sort_unstable();
        excluded.dedup();
        let expr = match options.filter.as_deref() {
            Some(text) => Some(Expr::parse(text, &catalog.metadata_keys)?),
            None => None,
        };
        Ok(Filter {
            catalog,
            now: marquee_store::now_ms(),
            categories: options
                .categories
                .iter()
                .map(|c| c.to_lowercase())
                .collect(),
            all_categories: options.all_categories,
            expr,
            excluded,
        })
    }

    fn keep(&self, i: u32) -> bool {
        let Some(item) = self.catalog.items.get(i as usize) else {
            return false;
        };
        let categories_ok = self.categories.is_empty()
            || if self.all_categories {
                self.categories
                    .iter()
                    .all(|c| item.categories_lower.contains(c))
            } else {
                item.categories_lower
                    .iter()
                    .any(|c| self.categories.contains(c))
            };
        item.servable(self.now)
            && categories_ok
            && self.excluded.binary_search(&i).is_err()
            && self.expr.as_ref().is_none_or(|e| e.matches(&item.view()))
    }
}

fn validate(options: &RecommendOptions) -> Result<(), ServiceError> {
    if options.n == 0 || options.n > MAX_RECOMMENDATIONS {
        return Err(ServiceError::invalid(
            "n",
            format!("must be between 1 and {MAX_RECOMMENDATIONS}"),
        ));
    }
    if options.exclude.len() > MAX_RECOMMENDATIONS {
        return Err(ServiceError::invalid("exclude", "lists too many items"));
    }
    if let Some(d) = options.diversity
        && !(0.0..=1.0).contains(&d)
    {
        return Err(ServiceError::invalid(
            "diversity",
            "must be between 0 and 1",
        ));
    }
    if let Some(e) = options.exploration
        && !(0.0..=0.5).contains(&e)
    {
        return Err(ServiceError::invalid(
            "exploration",
            "must be between 0 and 0.5",
        ));
    }
    if options.max_per_category == Some(0) {
        return Err(ServiceError::invalid(
            "max_per_category",
            "must be at least 1",
        ));
    }
    Ok(())
}

fn title_of(catalog: &Catalog, i: u32) -> String {
    let item = &catalog.items[i as usize];
    item.title.as_deref().unwrap_or(&item.id).to_string()
}

fn list_titles(catalog: &Catalog, items: &[u32]) -> String {
    let titles: Vec<String> = items.iter().map(|&i| title_of(catalog, i)).collect();
    match titles.len() {
        0 => String::new(),
        1 => titles[0].clone(),
        _ => format!(
            "{} and {}",
            titles[..titles.len() - 1].join(", "),
            titles[titles.len() - 1]
        ),
    }
}

fn popular_reason() -> Reason {
    Reason {
        kind: "popular".into(),
        items: Vec::new(),
        message: "Popular right now".into(),
    }
}

/// Popularity of every catalogue item: the model's time-decayed scores where it has them, the
/// live count of positive feedback for items it has not seen (and for everything before the
/// first model).
fn popularity(catalog: &Catalog, model: Option<&ServingModel>) -> Vec<f32> {
    let live = catalog.positive_counts().iter().map(|&c| c as f32);
    match model {
        Some(m) => {
            let trained = m.model.popularity();
            // Live counts on a comparable scale: the model's popularity per training interaction.
            let scale = trained.iter().sum::<f32>() / (m.info.interactions.max(1) as f32);
            live.enumerate()
                .map(|(i, c)| match trained.get(i) {
                    Some(&p) if p > 0.0 => p,
                    _ => c * scale.max(f32::MIN_POSITIVE),
                })
                .collect()
        }
        None => live.collect(),
    }
}

/// A user's taste in content: how often each category and tag appears in their history.
fn content_profile(catalog: &Catalog, history: &[(u32, f32)]) -> HashMap<String, f32> {
    let mut profile: HashMap<String, f32> = HashMap::new();
    for &(i, w) in history {
        if let Some(item) = catalog.items.get(i as usize) {
            for f in item.features() {
                *profile.entry(f.clone()).or_default() += w;
            }
        }
    }
    profile
}

/// Cosine between a profile and an item's (binary) features.
fn content_similarity(profile: &HashMap<String, f32>, norm: f32, catalog: &Catalog, i: u32) -> f32 {
    let features = catalog.items[i as usize].features();
    if features.is_empty() || norm == 0.0 {
        return 0.0;
    }
    let dot: f32 = features.iter().filter_map(|f| profile.get(f)).sum();
    dot / (norm * (features.len() as f32).sqrt())
}

/// Items the model cannot score: added after training, or without any training interaction.
fn unseen_by_model(catalog: &Catalog, model: Option<&ServingModel>) -> Vec<u32> {
    let Some(m) = model else { return Vec::new() };
    let pop = m.model.popularity();
    (0..catalog.items.len() as u32)
        .filter(|&i| {
            pop.get(i as usize).is_none_or(|&p| p <= 0.0) && !catalog.items[i as usize].deleted
        })
        .collect()
}

/// Re-ranks `ranked` (best first) for variety: maximal marginal relevance with content overlap
/// (mean Jaccard of categories and tags against the items already chosen) as the redundancy, then an optional cap per primary category.
fn diversify(
    catalog: &Catalog,
    ranked: Vec<Picked>,
    n: usize,
    diversity: f32,
    cap: Option<usize>,
) -> Vec<Picked> {
    let mut pool = ranked;
    let mut out: Vec<Picked> = Vec::with_capacity(n);
    if diversity > 0.0 && pool.len() > 1 {
        let max = pool.iter().map(|p| p.score).fold(f32::MIN, f32::max);
        let min = pool.iter().map(|p| p.score).fold(f32::MAX, f32::min);
        let span = (max - min).max(f32::EPSILON);
        let features: Vec<HashSet<&str>> = pool
            .iter()
            .map(|p| {
                catalog.items[p.item as usize]
                    .features()
                    .iter()
                    .map(String::as_str)
                    .collect()
            })
            .collect();
        let mut chosen: Vec<usize> = Vec::new();
        let mut left: Vec<usize> = (0..pool.len()).collect();
        while chosen.len() < n && !left.is_empty() {
            let (pos, _) = left
                .iter()
                .enumerate()
                .map(|(pos, &c)| {
                    let relevance = (pool[c].score - min) / span;
                    // Mean (not max) overlap with what is chosen: once every category is on
                    // the list, max overlap is 1 for everything and stops spreading.
                    let overlap = chosen
                        .iter()
                        .map(|&o| {
                            let (a, b) = (&features[c], &features[o]);
                            let union = a.union(b).count();
                            if union == 0 {
                                0.0
                            } else {
                                a.intersection(b).count() as f32 / union as f32
                            }
                        })
                        .sum::<f32>()
                        / chosen.len().max(1) as f32;
                    (pos, (1.0 - diversity) * relevance - diversity * overlap)
                })
                .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
                .expect("left is not empty");
            chosen.push(left.remove(pos));
        }
        let mut taken: Vec<Option<Picked>> = pool.into_iter().map(Some).collect();
        pool = chosen.into_iter().filter_map(|c| taken[c].take()).collect();
    }
    let mut per_category: HashMap<String, usize> = HashMap::new();
    for p in pool {
        if out.len() == n {
            break;
        }
        if let Some(cap) = cap
            && let Some(primary) = catalog.items[p.item as usize].categories_lower.first()
        {
            let count = per_category.entry(primary.clone()).or_default();
            if *count >= cap {
                continue;
            }
            *count += 1;
        }
        out.push(p);
    }
    out
}

/// Replaces the tail of `list` (a `rate` share of `n`, at least one slot) with items drawn at
/// random from the model's next-best candidates: lesser-known items get a chance to be seen
/// and to earn feedback (epsilon-greedy exploration).
fn explore(list: &mut Vec<Picked>, candidates: &[(u32, f32)], n: usize, rate: f32) {
    let slots = ((n as f32 * rate).round() as usize).clamp(1, n);
    let in_list: HashSet<u32> = list.iter().map(|p| p.item).collect();
    let mut pool: Vec<(u32, f32)> = candidates
        .iter()
        .skip(n)
        .take(n * 5)
        .filter(|c| !in_list.contains(&c.0))
        .copied()
        .collect();
    let mut rng = rand::rng();
    let keep = list.len().min(n).saturating_sub(slots.min(pool.len()));
    list.truncate(keep);
    while list.len() < n && !pool.is_empty() {
        let (item, score) = pool.swap_remove(rand::Rng::random_range(&mut rng, 0..pool.len()));
        list.push(Picked {
            item,
            score,
            reason: Reason {
                kind: "exploration".into(),
                items: Vec::new(),
                message: "Something different you might like".into(),
            },
        });
    }
}

/// A list as answered: the ranked items (shared with the list cache, never copied) and the ids
/// this answer gives them. [`RecommendationList::to_json`] writes it as the JSON array of
/// [`Recommendation`]s.
#[derive(Clone, Debug)]
pub struct RecommendationList {
    items: Arc<RankedList>,
    pub recommendation_id: String,
    pub variant: Option<String>,
}

impl RecommendationList {
    /// The ranked items as kept: `recommendation_id` and `variant` are not filled in.
    pub fn items(&self) -> &[Recommendation] {
        &self.items.items
    }

    /// The JSON array of the list's [`Recommendation`]s, written from each item's JSON
    /// rendered once when the list was first served (string escaping was the largest single
    /// cost of a recommend answer).
    pub fn to_json(&self) -> Vec<u8> {
        let tail = format!(
            ",\"recommendation_id\":{},\"variant\":{}}}",
            serde_json::Value::from(self.recommendation_id.as_str()),
            serde_json::Value::from(self.variant.as_deref()),
        );
        let heads = self.items.json_heads();
        let mut out = Vec::with_capacity(
            2 + heads
                .iter()
                .map(|h| h.len() + tail.len() + 1)
                .sum::<usize>(),
        );
        out.push(b'[');
        for (i, head) in heads.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(tail.as_bytes());
        }
        out.push(b']');
        out
    }

    /// The items with their ids filled in.
    pub fn into_vec(self) -> Vec<Recommendation> {
        self.items
            .items
            .iter()
            .map(|r| Recommendation {
                recommendation_id: self.recommendation_id.clone(),
                variant: self.variant.clone(),
                ..r.clone()
            })
            .collect()
    }
}

struct Picked {
    item: u32,
    score: f32,
    reason: Reason,
}

impl Service {
    /// Recommendations for `user_id`, optionally in the context of `context_item`.
    /// An unknown user gets popular items (or the context's neighbours); an unknown context item
    /// is an error.
    pub fn recommend(
        &self,
        tenant: &TenantState,
        user_id: &str,
        context_item: Option<&str>,
        options: &RecommendOptions,
    ) -> Result<RecommendationList, ServiceError> {
        validate_id("user_id", user_id)?;
        let catalog = tenant.catalog.read();
        let context = match context_item {
            Some(id) => {
                validate_id("item_id", id)?;
                Some(
                    catalog
                        .live_index(id)
                        .ok_or_else(|| ServiceError::not_found("item", id))?,
                )
            }
            None => None,
        };
        // Unknown users all get the same list (no history): one cache slot serves them all.
        // The revision is read before the history (below, on a miss): a list is never kept
        // under a revision newer than the history it was computed from.
        let (user, revision) = {
            let users = tenant.users.read();
            match users.live_index(user_id) {
                Some(u) => (u, users.users[u as usize].revision()),
                None => (u32::MAX, 0),
            }
        };
        // Users in a running experiment get their variant's model (the default model for
        // variants without their own, or while theirs is training).
        let experiment = tenant.experiment.load_full();
        let variant = experiment.as_ref().map(|e| e.bucket(user_id));
        let model = match (&experiment, variant) {
            (Some(_), Some(v)) => tenant
                .variant_models
                .read()
                .get(&v)
                .cloned()
                .or_else(|| tenant.model.load_full()),
            _ => tenant.model.load_full(),
        };
        let vectors = tenant.vectors.read();
        let key = ListKey::new(user, context, options);
        let stamp = Stamp {
            model: model.as_ref().map(|m| m.serial),
            catalog: catalog.version,
            user: revision,
            vectors: vectors.revision,
            counts: None,
        };
        let now = marquee_store::now_ms();
        let kept = key
            .as_ref()
            .and_then(|k| tenant.lists.get(k, &stamp, catalog.counts_revision(), now));
        let items: Arc<RankedList> = match kept {
            Some(list) => list,
            None => {
                let (history, seen) = {
                    let users = tenant.users.read();
                    match users.users.get(user as usize).filter(|e| !e.deleted) {
                        Some(entry) => (
                            entry.positive_history(),
                            if options.exclude_seen {
                                entry.seen()
                            } else {
                                Vec::new()
                            },
                        ),
                        None => (Vec::new(), Vec::new()),
                    }
                };
                let (list, used_counts) = self.rank(
                    model.as_deref(),
                    &catalog,
                    &vectors,
                    &history,
                    seen,
                    context,
                    options,
                )?;
                let list = Arc::new(RankedList::new(list));
                if let Some(key) = key {
                    let stamp = Stamp {
                        counts: used_counts.then(|| catalog.counts_revision()),
                        ..stamp
                    };
                    let valid_until = catalog.next_availability_change(now);
                    tenant.lists.insert(key, stamp, valid_until, list.clone());
                }
                list
            }
        };
        drop(vectors);
        let (recommendation_id, variant_name) = match (&experiment, variant) {
            (Some(e), Some(v)) => {
                e.count_impression(v);
                (
                    new_recommendation_id(Some((&e.id, v))),
                    Some(e.variants[v].name.clone()),
                )
            }
            _ => (new_recommendation_id(None), None),
        };
        Ok(RecommendationList {
            items,
            recommendation_id,
            variant: variant_name,
        })
    }

    /// Recommendations for an anonymous session: the items it engaged with, in any order.
    pub fn recommend_session(
        &self,
        tenant: &TenantState,
        items: &[String],
        options: &RecommendOptions,
    ) -> Result<Vec<Recommendation>, ServiceError> {
        if items.len() > MAX_RECOMMENDATIONS {
            return Err(ServiceError::invalid(
                "items",
                format!("at most {MAX_RECOMMENDATIONS} items"),
            ));
        }
        let catalog = tenant.catalog.read();
        let mut history = Vec::with_capacity(items.len());
        for (i, id) in items.iter().enumerate() {
            validate_id(&format!("items[{i}]"), id)?;
            // Unknown or deleted items are ignored: a session may mention anything the app showed.
            if let Some(idx) = catalog.live_index(id) {
                history.push((idx, 1.0));
            }
        }
        history.sort_unstable_by_key(|h| h.0);
        history.dedup_by_key(|h| h.0);
        let seen = if options.exclude_seen {
            history.iter().map(|h| h.0).collect()
        } else {
            Vec::new()
        };
        let model = tenant.model.load_full();
        let vectors = tenant.vectors.read();
        let (list, _) = self.rank(
            model.as_deref(),
            &catalog,
            &vectors,
            &history,
            seen,
            None,
            options,
        )?;
        Ok(with_list_id(list))
    }

    /// The list, and whether it depended on the live feedback counts (popular items filled
    /// it).
    #[allow(clippy::too_many_arguments)]
    fn rank(
        &self,
        model: Option<&ServingModel>,
        catalog: &Catalog,
        vectors: &ItemVectors,
        history: &[(u32, f32)],
        mut excluded: Vec<u32>,
        context: Option<u32>,
        options: &RecommendOptions,
    ) -> Result<(Vec<Recommendation>, bool), ServiceError> {
        validate(options)?;
        excluded.extend(context);
        let filter = Filter::new(catalog, options, excluded)?;
        let n = options.n;
        // With re-ranking, rank a larger pool and let diversity choose from it.
        let reranking =
            options.diversity.is_some_and(|d| d > 0.0) || options.max_per_category.is_some();
        let pool_n = if reranking {
            (n * 5).min(MAX_RECOMMENDATIONS * 5)
        } else {
            n
        };

        // The user's own scores, when there is a model and a history it knows.
        let user_top: Vec<(u32, f32)> = match model {
            Some(m)
                if history
                    .iter()
                    .any(|&(i, _)| (i as usize) < m.model.n_items()) =>
            {
                // A wider pool only where it is blended with the context item's neighbours, or
                // where exploration draws from the candidates after the list (`explore`);
                // otherwise the list is the first `pool_n`.
                let k = if context.is_some() {
                    CANDIDATE_POOL.max(pool_n)
                } else if options.exploration.is_some_and(|r| r > 0.0) {
                    pool_n.max(n * 6)
                } else {
                    pool_n
                };
                m.model.top_k_for_history(history, k, |i| filter.keep(i))
            }
            _ => Vec::new(),
        };
        let context_top: Vec<(u32, f32)> = match (model, context) {
            (Some(m), Some(c)) => m
                .model
                .similar_items(c, CANDIDATE_POOL.max(pool_n) * 2)
                .into_iter()
                .filter(|&(i, s)| s > 0.0 && filter.keep(i))
                .collect(),
            _ => Vec::new(),
        };

        // Made on the first reason that needs it, shared by the rest of the list.
        let explainer = std::cell::OnceCell::new();
        let because = |i: u32| -> Reason {
            let items: Vec<u32> = explainer
                .get_or_init(|| model.map(|m| m.model.explainer(history)))
                .as_ref()
                .map(|e| e.explain(i, REASON_ITEMS))
                .unwrap_or_default()
                .into_iter()
                .map(|(h, _)| h)
                .collect();
            if items.is_empty() {
                return Reason {
                    kind: "because_you_engaged".into(),
                    items: Vec::new(),
                    message: "Matches your history".into(),
                };
            }
            Reason {
                kind: "because_you_engaged".into(),
                message: format!("Because you engaged with {}", list_titles(catalog, &items)),
                items: items
                    .iter()
                    .map(|&h| catalog.items[h as usize].id.to_string())
                    .collect(),
            }
        };
        let similar_reason = |c: u32| Reason {
            kind: "similar_to_context".into(),
            items: vec![catalog.items[c as usize].id.to_string()],
            message: format!("Similar to {}", title_of(catalog, c)),
        };

        let mut picked: Vec<Picked> = Vec::with_capacity(pool_n);
        if let Some(c) = context.filter(|_| !context_top.is_empty()) {
            // Blend: each source normalised by its best candidate, so neither dominates by scale.
            let user_max = user_top
                .first()
                .map(|x| x.1)
                .filter(|&m| m > 0.0)
                .unwrap_or(1.0);
            let ctx_max = context_top
                .first()
                .map(|x| x.1)
                .filter(|&m| m > 0.0)
                .unwrap_or(1.0);
            let mut blended: HashMap<u32, (f32, f32)> = HashMap::new();
            for &(i, s) in &user_top {
                blended.entry(i).or_default().0 = (s / user_max).max(0.0);
            }
            for &(i, s) in &context_top {
                blended.entry(i).or_default().1 = s / ctx_max;
            }
            let user_weight = if user_top.is_empty() {
                0.0
            } else {
                1.0 - CONTEXT_WEIGHT
            };
            let mut scored: Vec<(u32, f32, f32, f32)> = blended
                .into_iter()
                .map(|(i, (u, s))| (i, user_weight * u + CONTEXT_WEIGHT * s, u, s))
                .collect();
            scored.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            for (i, score, u, s) in scored.into_iter().take(pool_n) {
                let reason = if CONTEXT_WEIGHT * s >= user_weight * u {
                    similar_reason(c)
                } else {
                    because(i)
                };
                picked.push(Picked {
                    item: i,
                    score,
                    reason,
                });
            }
        } else {
            for &(i, s) in user_top.iter().take(pool_n) {
                picked.push(Picked {
                    item: i,
                    score: s,
                    reason: because(i),
                });
            }
        }

        // Items the model has not seen compete through their content, in a bounded share of
        // the list, scored on the scale of the model's candidates.
        let unseen: Vec<u32> = if history.is_empty() {
            Vec::new()
        } else {
            unseen_by_model(catalog, model)
                .into_iter()
                .filter(|&i| filter.keep(i))
                .collect()
        };
        if !unseen.is_empty() {
            // By meaning (text embeddings) where the items have vectors, else by shared
            // categories and tags.
            let profile = content_profile(catalog, history);
            let norm = profile.values().map(|v| v * v).sum::<f32>().sqrt();
            let by_meaning = vectors.profile(history);
            let mut fresh: Vec<(u32, f32)> = unseen
                .into_iter()
                .filter_map(|i| {
                    let semantic = by_meaning
                        .as_ref()
                        .zip(vectors.get(i))
                        .map(|(p, v)| p.iter().zip(v).map(|(a, b)| a * b).sum::<f32>());
                    match semantic {
                        Some(s) => (s >= MIN_EMBEDDING_SIMILARITY).then_some((i, s)),
                        None => {
                            let s = content_similarity(&profile, norm, catalog, i);
                            (s >= MIN_CONTENT_SIMILARITY).then_some((i, s))
                        }
                    }
                })
                .collect();
            fresh.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let share = if picked.is_empty() {
                pool_n
            } else {
                pool_n.div_ceil(4)
            };
            let top = picked
                .first()
                .map(|p| p.score)
                .filter(|s| *s > 0.0)
                .unwrap_or(1.0);
            for (i, s) in fresh.into_iter().take(share) {
                let item = &catalog.items[i as usize];
                let shared: Vec<String> = item.categories.iter().take(2).cloned().collect();
                picked.push(Picked {
                    item: i,
                    score: s * top,
                    reason: Reason {
                        kind: "new_item".into(),
                        items: Vec::new(),
                        message: if shared.is_empty() {
                            "New, and close to what you like".into()
                        } else {
                            format!("New in {}, which you like", shared.join(" and "))
                        },
                    },
                });
            }
            picked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
            picked.truncate(pool_n);
        }

        let used_counts = picked.len() < pool_n;
        if used_counts {
            // Cold start, or not enough candidates after filtering: fill with popular items.
            let pop = popularity(catalog, model);
            let already: HashSet<u32> = picked.iter().map(|p| p.item).collect();
            for (i, s) in top_k(&pop, pool_n - picked.len(), |i| {
                filter.keep(i) && !already.contains(&i)
            }) {
                picked.push(Picked {
                    item: i,
                    score: s,
                    reason: popular_reason(),
                });
            }
        }
        let picked = if reranking {
            diversify(
                catalog,
                picked,
                n,
                options.diversity.unwrap_or(0.0),
                options.max_per_category,
            )
        } else {
            picked
        };
        let mut list: Vec<Picked> = picked.into_iter().take(n).collect();
        if let Some(rate) = options.exploration.filter(|&r| r > 0.0) {
            explore(&mut list, &user_top, n, rate);
        }
        let list = list
            .into_iter()
            .map(|p| to_recommendation(catalog, p.item, p.score, p.reason))
            .collect();
        Ok((list, used_counts))
    }

    /// Items most similar to `item_id` (by co-engagement, or by content for items the model has
    /// not seen), filtered like recommendations.
    pub fn similar_items(
        &self,
        tenant: &TenantState,
        item_id: &str,
        options: &RecommendOptions,
    ) -> Result<Vec<Recommendation>, ServiceError> {
        validate_id("item_id", item_id)?;
        validate(options)?;
        let model_guard = tenant.model.load();
        let model = model_guard.as_deref();
        let catalog = tenant.catalog.read();
        let item = catalog
            .live_index(item_id)
            .ok_or_else(|| ServiceError::not_found("item", item_id))?;
        let filter = Filter::new(&catalog, options, vec![item])?;
        let reason = Reason {
            kind: "similar_item".into(),
            items: vec![item_id.to_string()],
            message: format!("Often enjoyed together with {}", title_of(&catalog, item)),
        };
        let mut out: Vec<Picked> = match model {
            Some(m) => m
                .model
                .similar_items(item, CANDIDATE_POOL.max(options.n) * 2)
                .into_iter()
                .filter(|&(i, s)| s > 0.0 && filter.keep(i))
                .take(options.n * 5)
                .map(|(i, s)| Picked {
                    item: i,
                    score: s,
                    reason: reason.clone(),
                })
                .collect(),
            None => Vec::new(),
        };
        if out.len() < options.n {
            // By content: the items closest in meaning (text embeddings), or, without
            // vectors, the items sharing most categories and tags.
            let already: HashSet<u32> = out.iter().map(|p| p.item).collect();
            let vectors = tenant.vectors.read();
            let mut scores =
                match embedding_similarity(&vectors, &[(item, 1.0)], catalog.items.len()) {
                    Some(s) => s,
                    None => {
                        let profile = content_profile(&catalog, &[(item, 1.0)]);
                        let norm = profile.values().map(|v| v * v).sum::<f32>().sqrt();
                        (0..catalog.items.len() as u32)
                            .map(|i| content_similarity(&profile, norm, &catalog, i))
                            .collect()
                    }
                };
            drop(vectors);
            for &i in &already {
                scores[i as usize] = 0.0;
            }
            let content_reason = Reason {
                kind: "similar_item".into(),
                items: vec![item_id.to_string()],
                message: format!("Like {}", title_of(&catalog, item)),
            };
            // Below every co-engagement neighbour.
            let floor = out.last().map(|p| p.score).unwrap_or(1.0);
            for (i, s) in top_k(&scores, options.n * 5 - out.len().min(options.n * 5), |i| {
                filter.keep(i) && scores[i as usize] > 0.0
            }) {
                out.push(Picked {
                    item: i,
                    score: s * floor,
                    reason: content_reason.clone(),
                });
            }
        }
        let out =
            if options.diversity.is_some_and(|d| d > 0.0) || options.max_per_category.is_some() {
                diversify(
                    &catalog,
                    out,
                    options.n,
                    options.diversity.unwrap_or(0.0),
                    options.max_per_category,
                )
            } else {
                out
            };
        Ok(with_list_id(
            out.into_iter()
                .take(options.n)
                .map(|p| to_recommendation(&catalog, p.item, p.score, p.reason))
                .collect(),
        ))
    }

    /// The most popular servable items (time-decayed), filtered.
    pub fn popular(
        &self,
        tenant: &TenantState,
        options: &RecommendOptions,
    ) -> Result<Vec<Recommendation>, ServiceError> {
        validate(options)?;
        let model_guard = tenant.model.load();
        let catalog = tenant.catalog.read();
        let filter = Filter::new(&catalog, options, Vec::new())?;
        let pop = popularity(&catalog, model_guard.as_deref());
        let ranked: Vec<Picked> = top_k(&pop, options.n * 5, |i| {
            filter.keep(i) && pop[i as usize] > 0.0
        })
        .into_iter()
        .map(|(i, s)| Picked {
            item: i,
            score: s,
            reason: popular_reason(),
        })
        .collect();
        let ranked = diversify(
            &catalog,
            ranked,
            options.n,
            options.diversity.unwrap_or(0.0),
            options.max_per_category,
        );
        Ok(with_list_id(
            ranked
                .into_iter()
                .map(|p| to_recommendation(&catalog, p.item, p.score, p.reason))
                .collect(),
        ))
    }

    /// Items gaining attention: positive feedback in the last week against the weekly rate of
    /// the four weeks before (a Poisson-style lift with one event of smoothing), relative to the
    /// newest feedback the tenant has, so a replayed or historical dataset trends too.
    pub fn trending(
        &self,
        tenant: &TenantState,
        options: &RecommendOptions,
    ) -> Result<Vec<Recommendation>, ServiceError> {
        validate(options)?;
        let catalog = tenant.catalog.read();
        let filter = Filter::new(&catalog, options, Vec::new())?;
        let mut recent = vec![0f32; catalog.items.len()];
        let mut before = vec![0f32; catalog.items.len()];
        {
            let users = tenant.users.read();
            let newest = users
                .users
                .iter()
                .flat_map(|u| u.events().iter().map(|e| e.timestamp))
                .max()
                .unwrap_or(0);
            for e in users
                .users
                .iter()
                .flat_map(|u| u.events().iter())
                .filter(|e| e.positive)
            {
                let age = newest - e.timestamp;
                if age < TRENDING_WINDOW_MS {
                    recent[e.item as usize] += 1.0;
                } else if age < 5 * TRENDING_WINDOW_MS {
                    before[e.item as usize] += 1.0;
                }
            }
        }
        // Lift over the expected weekly count, weighted by volume so one event is not a trend.
        let scores: Vec<f32> = recent
            .iter()
            .zip(&before)
            .map(|(&r, &b)| {
                if r < 2.0 {
                    0.0
                } else {
                    (r - b / 4.0) * (r / (b / 4.0 + 1.0)).ln().max(0.0)
                }
            })
            .collect();
        Ok(with_list_id(
            top_k(&scores, options.n, |i| {
                filter.keep(i) && scores[i as usize] > 0.0
            })
            .into_iter()
            .map(|(i, s)| {
                let reason = Reason {
                    kind: "trending".into(),
                    items: Vec::new(),
                    message: format!(
                        "Trending: {} engagements this week",
                        recent[i as usize] as u32
                    ),
                };
                to_recommendation(&catalog, i, s, reason)
            })
            .collect(),
        ))
    }
}

/// The best `5 n` items by `scores` that pass the options' filters and `accept`.
pub(crate) fn filtered_top(
    catalog: &Catalog,
    options: &RecommendOptions,
    scores: &[f32],
    accept: impl Fn(f32) -> bool,
) -> Result<Vec<(u32, f32)>, ServiceError> {
    validate(options)?;
    let filter = Filter::new(catalog, options, Vec::new())?;
    Ok(top_k(scores, options.n * 5, |i| {
        filter.keep(i) && accept(scores[i as usize])
    }))
}

/// Diversifies (when asked), cuts to `n` and labels a ranked list.
pub(crate) fn finish_list(
    catalog: &Catalog,
    ranked: impl Iterator<Item = (u32, f32, Reason)>,
    options: &RecommendOptions,
) -> Vec<Recommendation> {
    let picked: Vec<Picked> = ranked
        .map(|(item, score, reason)| Picked {
            item,
            score,
            reason,
        })
        .collect();
    let picked = if options.diversity.is_some_and(|d| d > 0.0) || options.max_per_category.is_some()
    {
        diversify(
            catalog,
            picked,
            options.n,
            options.diversity.unwrap_or(0.0),
            options.max_per_category,
        )
    } else {
        picked
    };
    with_list_id(
        picked
            .into_iter()
            .take(options.n)
            .map(|p| to_recommendation(catalog, p.item, p.score, p.reason))
            .collect(),
    )
}

fn to_recommendation(catalog: &Catalog, i: u32, score: f32, reason: Reason) -> Recommendation {
    let item = &catalog.items[i as usize];
    Recommendation {
        item_id: item.id.to_string(),
        title: item.title.as_deref().map(str::to_string),
        score: if score.is_finite() { score } else { 0.0 },
        reason,
        categories: item.categories.to_vec(),
        recommendation_id: String::new(),
        variant: None,
    }
}

/// Gives every item of a list the list's id.
fn with_list_id(mut list: Vec<Recommendation>) -> Vec<Recommendation> {
    let id = new_recommendation_id(None);
    for r in &mut list {
        r.recommendation_id.clone_from(&id);
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_served_list_serializes_as_its_recommendations_with_their_ids() {
        let item = |id: &str, reason_items: Vec<String>| Recommendation {
            item_id: id.into(),
            title: (id == "a").then(|| "Alien \"director's cut\"".into()),
            score: 0.5,
            reason: Reason {
                kind: "because_you_engaged".into(),
                items: reason_items,
                message: "Because you engaged with Heat".into(),
            },
            categories: vec!["Sci-Fi".into()],
            recommendation_id: String::new(),
            variant: None,
        };
        let list = RecommendationList {
            items: Arc::new(RankedList::new(vec![
                item("a", vec!["h".into()]),
                item("b", Vec::new()),
            ])),
            recommendation_id: "rec_1".into(),
            variant: Some("treatment".into()),
        };
        let expected = list.clone().into_vec();
        assert!(expected.iter().all(|r| r.recommendation_id == "rec_1"));
        let json = serde_json::to_string(&expected).unwrap();
        assert_eq!(String::from_utf8(list.to_json()).unwrap(), json);
        let empty = RecommendationList {
            items: Arc::default(),
            recommendation_id: "rec_2".into(),
            variant: None,
        };
        assert_eq!(empty.to_json(), b"[]");
    }
}
