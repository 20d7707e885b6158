//! Approximate top-k for factor models on large catalogues.
//!
//! Serving a factor model exactly reads the whole item matrix per request (100k items × 64
//! factors = 25.6 MB), so at saturation the machine's memory bandwidth, not its CPU, caps the
//! request rate. A graph over the item factors ([`hnsw_rs`]'s HNSW) visits a few thousand items
//! instead.
//!
//! A user's scores are inner products. The graph is built and searched with the inner product
//! itself as its dissimilarity (`M² − a·b`, shifted by the largest squared item norm `M²` to
//! stay non-negative, the query scaled to norm `M`; neither changes any ranking): the
//! non-metric "ip-NSW" of Morozov & Babenko (NeurIPS 2018). The textbook reduction to a
//! Euclidean search (one more coordinate, `√(M² − ‖y‖²)`, Bachrach et al. 2014) was measured
//! first and failed here: an iALS model's many long-tail items have near-zero factors, so they
//! become near-duplicate points of the augmented space that capture the graph's links, and
//! recall@10 stayed at 0.14–0.27 on the synthetic catalogue of `examples/ann.rs`, against
//! 0.96 for this one at the same cost (`BENCHMARKS.md`). The items found are rescored with the
//! serving kernel, so an approximate list carries the scores the exact scan gives its items.

use hnsw_rs::prelude::{Distance, Hnsw};

/// Links per node (layer 0 keeps twice as many). 16 is the usual default for tens of
/// dimensions.
const LINKS: usize = 16;
/// Candidates kept while inserting: the graph's quality against its build time.
const EF_CONSTRUCTION: usize = 200;
/// Hierarchy depth cap (`ln(100k) ≈ 11.5`).
const MAX_LAYERS: usize = 16;
/// Candidates a search asks for, at least (`max(2k, EF_SEARCH)`): recall against time per
/// query (recall@10 0.96 at 0.2× the exact scan's time on the synthetic 100k catalogue).
pub const EF_SEARCH: usize = 64;

/// The most candidates one search asks the graph for: a search for 256 already costs about
/// 0.8× the exact scan of 100k items × 64 factors (`BENCHMARKS.md`), so past this the caller
/// scans instead.
pub const MAX_CANDIDATES: usize = 256;

/// `M² − a·b`: inner products as a distance, shifted by the largest squared norm `M²` so that
/// it is never negative (all items and queries have norms of at most `M`).
#[derive(Clone, Copy, Default)]
struct ShiftedInnerProduct {
    m2: f32,
}

impl Distance<f32> for ShiftedInnerProduct {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (self.m2 - crate::kernels::dot::<false>(a, b)).max(0.0)
    }
}

/// An HNSW graph over a factor model's items, searched by inner product.
pub struct FactorIndex {
    graph: Hnsw<'static, f32, ShiftedInnerProduct>,
    f: usize,
    n_items: usize,
    /// The largest item norm: the radius of the sphere the augmented items lie on.
    max_norm: f32,
}

impl FactorIndex {
    /// Builds the graph over `item_factors` (row-major, `f` per item), on the rayon pool.
    pub fn build(item_factors: &[f32], f: usize) -> FactorIndex {
        let n_items = item_factors.len().checked_div(f).unwrap_or(0);
        let rows = || item_factors.chunks_exact(f.max(1)).take(n_items);
        let max_norm2 = rows()
            .map(|y| y.iter().map(|v| v * v).sum::<f32>())
            .fold(0f32, f32::max);
        let graph = Hnsw::new(
            LINKS,
            n_items,
            MAX_LAYERS,
            EF_CONSTRUCTION,
            ShiftedInnerProduct { m2: max_norm2 },
        );
        let points: Vec<(&[f32], usize)> = rows().enumerate().map(|(i, v)| (v, i)).collect();
        graph.parallel_insert_slice(&points);
        FactorIndex {
            graph,
            f,
            n_items,
            max_norm: max_norm2.sqrt(),
        }
    }

    /// Number of items indexed.
    pub fn len(&self) -> usize {
        self.n_items
    }

    pub fn is_empty(&self) -> bool {
        self.n_items == 0
    }

    /// Up to `k` items among those `keep` accepts with (approximately) the highest `user · y`,
    /// as item indices, best first by the index's distance.
    ///
    /// The graph is searched without the filter (hnsw_rs's filtered search gives up its early
    /// stop and wanders), for `ef` candidates at first (at least `2k`), then four times as many
    /// while fewer than `k` pass `keep`, up to [`MAX_CANDIDATES`]. Fewer than `k` come back when
    /// even that many candidates hold too few accepted items: the caller then scans instead.
    pub fn search(
        &self,
        user: &[f32],
        k: usize,
        ef: usize,
        keep: &dyn Fn(u32) -> bool,
    ) -> Vec<u32> {
        if k == 0 || self.n_items == 0 {
            return Vec::new();
        }
        let user = &user[..self.f.min(user.len())];
        let norm = user.iter().map(|v| v * v).sum::<f32>().sqrt();
        let scale = if norm > 0.0 && norm.is_finite() {
            self.max_norm / norm
        } else {
            1.0
        };
        let query: Vec<f32> = user.iter().map(|v| v * scale).collect();
        let mut want = ef.max(2 * k).min(self.n_items);
        loop {
            let found = self.graph.search(&query, want, want);
            let exhausted = found.len() < want || want >= self.n_items;
            let kept: Vec<u32> = found
                .into_iter()
                .map(|n| n.d_id as u32)
                .filter(|&i| (i as usize) < self.n_items && keep(i))
                .take(k)
                .collect();
            if kept.len() >= k || exhausted || want >= MAX_CANDIDATES {
                return kept;
            }
            want = (want * 4).min(MAX_CANDIDATES).min(self.n_items);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top_k;

    #[test]
    fn finds_the_highest_inner_products_with_their_filter() {
        // Items with very different norms: nearest in plain Euclidean distance is not highest
        // in inner product, so this checks the reduction, not just the graph.
        let (n, f) = (3000usize, 8usize);
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        let factors: Vec<f32> = (0..n)
            .flat_map(|i| {
                let scale = 0.2 + 3.0 * (i % 17) as f32 / 17.0;
                (0..f).map(|_| scale * next()).collect::<Vec<_>>()
            })
            .collect();
        let index = FactorIndex::build(&factors, f);
        assert_eq!(index.len(), n);
        let mut found = 0;
        let mut total = 0;
        for _ in 0..50 {
            let user: Vec<f32> = (0..f).map(|_| next()).collect();
            let scores: Vec<f32> = factors
                .chunks_exact(f)
                .map(|y| y.iter().zip(&user).map(|(a, b)| a * b).sum())
                .collect();
            let keep = |i: u32| !i.is_multiple_of(3);
            let exact: Vec<u32> = top_k(&scores, 10, keep).into_iter().map(|x| x.0).collect();
            let approx = index.search(&user, 10, EF_SEARCH, &keep);
            assert_eq!(approx.len(), 10);
            assert!(approx.iter().all(|&i| keep(i)));
            found += approx.iter().filter(|i| exact.contains(i)).count();
            total += 10;
        }
        let recall = found as f64 / total as f64;
        assert!(recall >= 0.95, "recall@10 {recall}");
    }

    #[test]
    fn degenerate_inputs_give_empty_answers() {
        let index = FactorIndex::build(&[], 4);
        assert!(index.is_empty());
        assert!(index.search(&[1.0; 4], 10, EF_SEARCH, &|_| true).is_empty());
        let one = FactorIndex::build(&[1.0, 0.0], 2);
        assert_eq!(one.search(&[1.0, 1.0], 10, EF_SEARCH, &|_| true), vec![0]);
        assert!(
            one.search(&[1.0, 1.0], 10, EF_SEARCH, &|_| false)
                .is_empty()
        );
    }
}
