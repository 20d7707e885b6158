//! Bounded top-k selection, the last step of every recommendation request.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A candidate ordered so that the heap's maximum is the *worst* kept entry:
/// lower score is worse, and among equal scores the higher index is worse.
#[derive(Clone, Copy)]
struct Worst(f32, u32);

impl Worst {
    /// `Less` when `self` ranks before `other` (better).
    fn rank_cmp(&self, other: &Self) -> Ordering {
        other
            .0
            .partial_cmp(&self.0)
            .unwrap_or(Ordering::Equal)
            .then(self.1.cmp(&other.1))
    }
}

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.rank_cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank_cmp(other)
    }
}

/// The `k` best `(index, score)` pairs of `scores` among indices where `keep(index)` is true,
/// best first. Ties are broken by the lower index; NaN scores are never returned.
///
/// Uses a bounded heap: O(n + m log k) where m is the number of entries that beat the
/// current k-th best, and O(k) extra memory.
pub fn top_k(scores: &[f32], k: usize, keep: impl Fn(u32) -> bool) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut heap: BinaryHeap<Worst> = BinaryHeap::with_capacity(k.min(scores.len()) + 1);
    for (i, &s) in scores.iter().enumerate() {
        if s.is_nan() {
            continue;
        }
        if heap.len() == k {
            // Cheap rejection before calling `keep`: equal scores lose to the kept lower index.
            let worst = heap.peek().map_or(f32::NEG_INFINITY, |w| w.0);
            if s <= worst {
                continue;
            }
        }
        let i = i as u32;
        if !keep(i) {
            continue;
        }
        if heap.len() < k {
            heap.push(Worst(s, i));
        } else if let Some(mut top) = heap.peek_mut() {
            *top = Worst(s, i);
        }
    }
    heap.into_sorted_vec()
        .into_iter()
        .map(|w| (w.1, w.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_and_nan() {
        let s = [1.0, f32::NAN, 3.0, 3.0, -1.0, 0.0, -0.0];
        assert_eq!(top_k(&s, 3, |_| true), vec![(2, 3.0), (3, 3.0), (0, 1.0)]);
        assert_eq!(top_k(&s, 10, |i| i != 2).len(), 5);
        let r = top_k(&s, 10, |_| true);
        assert_eq!(
            r.iter().map(|x| x.0).collect::<Vec<_>>(),
            vec![2, 3, 0, 5, 6, 4]
        );
        assert!(top_k(&s, 0, |_| true).is_empty());
        assert!(top_k(&[], 5, |_| true).is_empty());
    }
}
