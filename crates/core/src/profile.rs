//! A user's profile: what they engaged with lately and what they are into, derived from their
//! feedback — for "because you watched" rows and for the SDKs' `get_user_data`.
//!
//! Interests weigh each positive event by its recency (half-life of 30 days, counted back from
//! the user's newest event, so a user who was away keeps their tastes) and by its strength (a
//! rating relative to the scale's middle, otherwise 1), and spread it over the item's categories
//! (full weight) and tags (half). Negative feedback (`dislike`, …) counts against.

use std::collections::HashMap;

use marquee_types::{HistoryEntry, Interest, UserProfile};

use crate::error::ServiceError;
use crate::state::TenantState;
use crate::types::{Timestamp, validate_id};

/// Events the interests are computed from (the newest).
const INTEREST_EVENTS: usize = 1_000;
/// Entries of history returned.
pub const MAX_HISTORY: usize = 100;
/// Interests returned.
const MAX_INTERESTS: usize = 20;
const HALF_LIFE_MS: f64 = 30.0 * 86_400_000.0;
const TAG_SHARE: f32 = 0.5;

impl crate::Service {
    /// The profile of `user_id`: most recent item, weighted interests, recent history with
    /// titles, attributes. Not found when nothing is known about the user.
    pub async fn user_profile(
        &self,
        tenant: &TenantState,
        user_id: &str,
        history: usize,
    ) -> Result<UserProfile, ServiceError> {
        validate_id("user_id", user_id)?;
        let row = self.store.get_user(tenant.id, user_id).await?;
        let mut events = self.store.user_feedback_all(tenant.id, user_id).await?;
        if row.is_none() && events.is_empty() {
            return Err(ServiceError::not_found("user", user_id));
        }
        let attributes = match row {
            Some(r) => self.open_user(tenant.id, r).await?.attributes,
            None => Default::default(),
        };
        // Newest first.
        events.sort_by_key(|e| std::cmp::Reverse(e.timestamp));
        let newest = events.first().map_or(0, |e| e.timestamp);
        let catalog = tenant.catalog.read();
        let mut weights: HashMap<(&'static str, String), f32> = HashMap::new();
        let mut last_item = None;
        for e in events.iter().take(INTEREST_EVENTS) {
            let positive = self.config.is_positive(&e.kind, e.value);
            let Some(i) = catalog.live_index(&e.item_id) else {
                continue;
            };
            if positive && last_item.is_none() {
                last_item = Some(e.item_id.clone());
            }
            let age = (newest - e.timestamp).max(0) as f64;
            let recency = 0.5f64.powf(age / HALF_LIFE_MS) as f32;
            let strength = match (e.kind.as_str(), e.value) {
                // Ratings above the middle of a 1-5 scale count more, below less.
                ("rating", Some(v)) => ((v as f32) - 2.5).clamp(-2.5, 2.5) / 2.5,
                _ if positive => 1.0,
                _ => -1.0,
            };
            let w = recency * strength;
            let item = &catalog.items[i as usize];
            for c in item.categories.iter() {
                *weights.entry(("category", c.clone())).or_default() += w;
            }
            for t in item.tags.iter() {
                *weights.entry(("tag", t.clone())).or_default() += w * TAG_SHARE;
            }
        }
        let mut interests: Vec<Interest> = weights
            .into_iter()
            .filter(|(_, w)| *w > 0.0)
            .map(|((kind, name), weight)| Interest {
                kind: kind.to_string(),
                name,
                weight,
            })
            .collect();
        interests.sort_by(|a, b| {
            b.weight
                .total_cmp(&a.weight)
                .then_with(|| a.name.cmp(&b.name))
        });
        interests.truncate(MAX_INTERESTS);
        let total: f32 = interests.iter().map(|i| i.weight).sum();
        if total > 0.0 {
            for i in &mut interests {
                i.weight /= total;
            }
        }
        let history = events
            .iter()
            .take(history.clamp(0, MAX_HISTORY))
            .map(|e| HistoryEntry {
                item_id: e.item_id.clone(),
                title: catalog.live_index(&e.item_id).and_then(|i| {
                    catalog.items[i as usize]
                        .title
                        .as_deref()
                        .map(str::to_string)
                }),
                kind: e.kind.clone(),
                value: e.value,
                timestamp: Timestamp(e.timestamp),
            })
            .collect();
        Ok(UserProfile {
            user_id: user_id.to_string(),
            item_id: last_item,
            interests,
            history,
            attributes,
        })
    }
}
