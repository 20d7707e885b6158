//! The user × item interaction matrix every algorithm trains on.
//!
//! Stored as CSR by user (items sorted ascending within a user) because both training
//! (per-user solves, co-occurrence counting) and evaluation walk users' histories.
//! The item-major transpose is derived on demand by the algorithms that need it.

/// Implicit-feedback interactions: for every user, the items they touched, with a weight
/// (rating, play count, 1.0 for a plain event…) and the unix timestamp (seconds) of the event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Interactions {
    n_users: usize,
    n_items: usize,
    indptr: Vec<usize>,
    items: Vec<u32>,
    weights: Vec<f32>,
    timestamps: Vec<i64>,
}

impl Interactions {
    /// Builds the matrix from `(user, item, weight, timestamp)` triples in any order.
    ///
    /// * Duplicate (user, item) pairs are merged: the max weight and the latest timestamp are kept.
    /// * Triples with a non-finite weight (NaN, ±∞) are dropped.
    /// * A triple whose user or item index is out of range grows the matrix to cover it
    ///   (so `n_users()`/`n_items()` may exceed the arguments), rather than panicking or being lost.
    pub fn from_triples(
        n_users: usize,
        n_items: usize,
        triples: impl IntoIterator<Item = (u32, u32, f32, i64)>,
    ) -> Self {
        let mut t: Vec<(u32, u32, f32, i64)> =
            triples.into_iter().filter(|x| x.2.is_finite()).collect();
        let n_users = t
            .iter()
            .map(|x| x.0 as usize + 1)
            .max()
            .unwrap_or(0)
            .max(n_users);
        let n_items = t
            .iter()
            .map(|x| x.1 as usize + 1)
            .max()
            .unwrap_or(0)
            .max(n_items);
        t.sort_unstable_by_key(|x| (x.0, x.1));
        let mut indptr = vec![0usize; n_users + 1];
        let mut items = Vec::with_capacity(t.len());
        let mut weights = Vec::with_capacity(t.len());
        let mut timestamps: Vec<i64> = Vec::with_capacity(t.len());
        let mut last: Option<(u32, u32)> = None;
        for (u, i, w, ts) in t {
            if last == Some((u, i)) {
                let k = items.len() - 1;
                weights[k] = f32::max(weights[k], w);
                timestamps[k] = timestamps[k].max(ts);
                continue;
            }
            last = Some((u, i));
            indptr[u as usize + 1] += 1;
            items.push(i);
            weights.push(w);
            timestamps.push(ts);
        }
        for u in 0..n_users {
            indptr[u + 1] += indptr[u];
        }
        Interactions {
            n_users,
            n_items,
            indptr,
            items,
            weights,
            timestamps,
        }
    }

    /// Number of users (rows).
    pub fn n_users(&self) -> usize {
        self.n_users
    }

    /// Number of items (columns).
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// Number of stored (user, item) interactions.
    pub fn nnz(&self) -> usize {
        self.items.len()
    }

    fn range(&self, u: u32) -> std::ops::Range<usize> {
        let u = u as usize;
        if u < self.n_users {
            self.indptr[u]..self.indptr[u + 1]
        } else {
            0..0
        }
    }

    /// Items of user `u`, ascending. Empty for an unknown user.
    pub fn user_items(&self, u: u32) -> &[u32] {
        &self.items[self.range(u)]
    }

    /// Weights of user `u`'s interactions, aligned with [`Interactions::user_items`].
    pub fn user_weights(&self, u: u32) -> &[f32] {
        &self.weights[self.range(u)]
    }

    /// Timestamps of user `u`'s interactions, aligned with [`Interactions::user_items`].
    pub fn user_timestamps(&self, u: u32) -> &[i64] {
        &self.timestamps[self.range(u)]
    }

    /// User `u`'s history as `(item, weight)` pairs, the shape [`crate::Model::score_history`] takes.
    pub fn user_history(&self, u: u32) -> Vec<(u32, f32)> {
        self.user_items(u)
            .iter()
            .copied()
            .zip(self.user_weights(u).iter().copied())
            .collect()
    }

    /// Newest timestamp in the data (`None` when empty).
    pub fn max_timestamp(&self) -> Option<i64> {
        self.timestamps.iter().copied().max()
    }

    /// Same matrix with every weight replaced by 1.0 (binary implicit feedback).
    pub fn binarized(&self) -> Self {
        let mut out = self.clone();
        out.weights.iter_mut().for_each(|w| *w = 1.0);
        out
    }

    /// Same matrix with every weight replaced by `f(user, item, weight)`.
    pub(crate) fn map_weights(&self, f: impl Fn(u32, u32, f32) -> f32) -> Self {
        let mut out = self.clone();
        for u in 0..self.n_users {
            let r = self.indptr[u]..self.indptr[u + 1];
            for k in r {
                out.weights[k] = f(u as u32, self.items[k], self.weights[k]);
            }
        }
        out
    }

    /// Iterates over all `(user, item, weight, timestamp)` entries, user-major.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32, f32, i64)> + '_ {
        (0..self.n_users).flat_map(move |u| {
            let r = self.indptr[u]..self.indptr[u + 1];
            r.map(move |k| (u as u32, self.items[k], self.weights[k], self.timestamps[k]))
        })
    }

    /// Item-major transpose (CSC): for each item, the users who touched it and their weights.
    pub(crate) fn by_item(&self) -> ItemMajor {
        let mut indptr = vec![0usize; self.n_items + 1];
        for &i in &self.items {
            indptr[i as usize + 1] += 1;
        }
        for i in 0..self.n_items {
            indptr[i + 1] += indptr[i];
        }
        let mut next = indptr.clone();
        let mut users = vec![0u32; self.items.len()];
        let mut weights = vec![0f32; self.items.len()];
        for u in 0..self.n_users {
            for k in self.indptr[u]..self.indptr[u + 1] {
                let i = self.items[k] as usize;
                users[next[i]] = u as u32;
                weights[next[i]] = self.weights[k];
                next[i] += 1;
            }
        }
        ItemMajor {
            indptr,
            users,
            weights,
        }
    }
}

/// CSC view: users (ascending) and weights per item.
pub(crate) struct ItemMajor {
    pub indptr: Vec<usize>,
    pub users: Vec<u32>,
    pub weights: Vec<f32>,
}

impl ItemMajor {
    pub fn users(&self, i: usize) -> &[u32] {
        &self.users[self.indptr[i]..self.indptr[i + 1]]
    }
    pub fn weights(&self, i: usize) -> &[f32] {
        &self.weights[self.indptr[i]..self.indptr[i + 1]]
    }
}
