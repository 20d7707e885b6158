//! Recommendation queries, answered from memory.
//!
//! For a user, the current model scores the catalogue from the user's *current* history (the
//! history in memory includes feedback that arrived after training, so lists react at once).
//! In the context of an item ("what to watch after this one") the user's scores are blended
//! with the item's nearest neighbours. With no usable history, the context's neighbours or the
//! time-decayed popularity answer instead. Every result says why it was chosen.

use std::collections::HashMap;
use std::sync::Arc;

use recsys::top_k;

use crate::Service;
use crate::error::ServiceError;
use crate::state::{Catalog, ServingModel, TenantState};
use crate::types::*;

/// Weight of the context item's similarity against the user's own scores (both normalised to
/// [0, 1]) on the context route.
const CONTEXT_WEIGHT: f32 = 0.5;
/// Candidates taken from each source before blending.
const CANDIDATE_POOL: usize = 300;
/// History items named in a "because you engaged with" reason.
const REASON_ITEMS: usize = 3;

/// Decides which items may appear in a result.
struct Filter<'a> {
    catalog: &'a Catalog,
    now: i64,
    categories: Vec<String>,
    excluded: Vec<u32>,
}

impl Filter<'_> {
    fn keep(&self, i: u32) -> bool {
        let Some(item) = self.catalog.items.get(i as usize) else {
            return false;
        };
        item.servable(self.now)
            && self.excluded.binary_search(&i).is_err()
            && (self.categories.is_empty()
                || item
                    .categories_lower
                    .iter()
                    .any(|c| self.categories.contains(c)))
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
        kind: "popular",
        items: Vec::new(),
        message: "Popular right now".into(),
    }
}

/// Popularity of every catalogue item: the model's time-decayed scores, or plain positive
/// counts while no model is trained yet.
fn popularity(tenant: &TenantState, model: Option<&ServingModel>, n_items: usize) -> Vec<f32> {
    match model {
        Some(m) => {
            let mut p = m.model.popularity().to_vec();
            p.resize(n_items, 0.0);
            p
        }
        None => {
            let mut counts = vec![0.0f32; n_items];
            for user in tenant.users.read().users.iter() {
                for e in user.events.iter().filter(|e| e.positive) {
                    if let Some(c) = counts.get_mut(e.item as usize) {
                        *c += 1.0;
                    }
                }
            }
            counts
        }
    }
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
    ) -> Result<Vec<Recommendation>, ServiceError> {
        validate_id("user_id", user_id)?;
        validate(options)?;
        let model_guard = tenant.model.load();
        let model: Option<&ServingModel> = model_guard.as_deref();
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
        let (history, seen) = {
            let users = tenant.users.read();
            match users.live_index(user_id) {
                Some(u) => {
                    let entry = &users.users[u as usize];
                    (
                        entry.positive_history(),
                        if options.exclude_seen {
                            entry.seen()
                        } else {
                            Vec::new()
                        },
                    )
                }
                None => (Vec::new(), Vec::new()),
            }
        };
        let mut excluded = seen;
        excluded.extend(
            options
                .exclude
                .iter()
                .filter_map(|id| catalog.index.get(id.as_str()).copied()),
        );
        excluded.extend(context);
        excluded.sort_unstable();
        excluded.dedup();
        let filter = Filter {
            catalog: &catalog,
            now: marquee_store::now_ms(),
            categories: options
                .categories
                .iter()
                .map(|c| c.to_lowercase())
                .collect(),
            excluded,
        };
        let n = options.n;

        // The user's own scores, when there is a model and a history it knows.
        let user_top: Vec<(u32, f32)> = match model {
            Some(m)
                if history
                    .iter()
                    .any(|&(i, _)| (i as usize) < m.model.n_items()) =>
            {
                let mut scores = Vec::new();
                m.model.score_history(&history, &mut scores);
                top_k(&scores, CANDIDATE_POOL.max(n), |i| filter.keep(i))
            }
            _ => Vec::new(),
        };
        let context_top: Vec<(u32, f32)> = match (model, context) {
            (Some(m), Some(c)) => m
                .model
                .similar_items(c, CANDIDATE_POOL.max(n) * 2)
                .into_iter()
                .filter(|&(i, s)| s > 0.0 && filter.keep(i))
                .collect(),
            _ => Vec::new(),
        };

        let because = |i: u32| -> Reason {
            let items: Vec<u32> = model
                .map(|m| m.model.explain(&history, i, REASON_ITEMS))
                .unwrap_or_default()
                .into_iter()
                .map(|(h, _)| h)
                .collect();
            if items.is_empty() {
                return Reason {
                    kind: "because_you_engaged",
                    items: Vec::new(),
                    message: "Matches your history".into(),
                };
            }
            Reason {
                kind: "because_you_engaged",
                message: format!("Because you engaged with {}", list_titles(&catalog, &items)),
                items: items
                    .iter()
                    .map(|&h| catalog.items[h as usize].id.to_string())
                    .collect(),
            }
        };
        let similar_reason = |c: u32| Reason {
            kind: "similar_to_context",
            items: vec![catalog.items[c as usize].id.to_string()],
            message: format!("Similar to {}", title_of(&catalog, c)),
        };

        let mut picked: Vec<(u32, f32, Reason)> = Vec::with_capacity(n);
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
            for (i, score, u, s) in scored.into_iter().take(n) {
                let reason = if CONTEXT_WEIGHT * s >= user_weight * u {
                    similar_reason(c)
                } else {
                    because(i)
                };
                picked.push((i, score, reason));
            }
        } else if !user_top.is_empty() {
            for &(i, s) in user_top.iter().take(n) {
                picked.push((i, s, because(i)));
            }
        }

        if picked.len() < n {
            // Cold start, or not enough candidates after filtering: fill with popular items.
            let pop = popularity(tenant, model, catalog.items.len());
            let already: Vec<u32> = picked.iter().map(|p| p.0).collect();
            for (i, s) in top_k(&pop, n, |i| filter.keep(i) && !already.contains(&i)) {
                if picked.len() == n {
                    break;
                }
                picked.push((i, s, popular_reason()));
            }
        }
        Ok(picked
            .into_iter()
            .map(|(i, score, reason)| to_recommendation(&catalog, i, score, reason))
            .collect())
    }

    /// Items most similar to `item_id` (by co-engagement), filtered like recommendations.
    pub fn similar_items(
        &self,
        tenant: &TenantState,
        item_id: &str,
        options: &RecommendOptions,
    ) -> Result<Vec<Recommendation>, ServiceError> {
        validate_id("item_id", item_id)?;
        validate(options)?;
        let model_guard = tenant.model.load();
        let catalog = tenant.catalog.read();
        let item = catalog
            .live_index(item_id)
            .ok_or_else(|| ServiceError::not_found("item", item_id))?;
        let mut excluded: Vec<u32> = options
            .exclude
            .iter()
            .filter_map(|id| catalog.index.get(id.as_str()).copied())
            .collect();
        excluded.push(item);
        excluded.sort_unstable();
        let filter = Filter {
            catalog: &catalog,
            now: marquee_store::now_ms(),
            categories: options
                .categories
                .iter()
                .map(|c| c.to_lowercase())
                .collect(),
            excluded,
        };
        let reason = Reason {
            kind: "similar_item",
            items: vec![item_id.to_string()],
            message: format!("Often enjoyed together with {}", title_of(&catalog, item)),
        };
        let neighbours = match model_guard.as_deref() {
            Some(m) => m
                .model
                .similar_items(item, CANDIDATE_POOL.max(options.n) * 2),
            None => Vec::new(),
        };
        Ok(neighbours
            .into_iter()
            .filter(|&(i, s)| s > 0.0 && filter.keep(i))
            .take(options.n)
            .map(|(i, s)| to_recommendation(&catalog, i, s, reason.clone()))
            .collect())
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
        let mut excluded: Vec<u32> = options
            .exclude
            .iter()
            .filter_map(|id| catalog.index.get(id.as_str()).copied())
            .collect();
        excluded.sort_unstable();
        let filter = Filter {
            catalog: &catalog,
            now: marquee_store::now_ms(),
            categories: options
                .categories
                .iter()
                .map(|c| c.to_lowercase())
                .collect(),
            excluded,
        };
        let pop = popularity(tenant, model_guard.as_deref(), catalog.items.len());
        Ok(
            top_k(&pop, options.n, |i| filter.keep(i) && pop[i as usize] > 0.0)
                .into_iter()
                .map(|(i, s)| to_recommendation(&catalog, i, s, popular_reason()))
                .collect(),
        )
    }

    /// The serving model of a tenant, if trained.
    pub fn current_model(tenant: &TenantState) -> Option<Arc<ServingModel>> {
        tenant.model.load_full()
    }
}

fn to_recommendation(catalog: &Catalog, i: u32, score: f32, reason: Reason) -> Recommendation {
    let item = &catalog.items[i as usize];
    Recommendation {
        item_id: item.id.to_string(),
        title: item.title.as_deref().map(str::to_string),
        score: if score.is_finite() { score } else { 0.0 },
        reason,
        categories: item.categories.to_vec(),
    }
}
