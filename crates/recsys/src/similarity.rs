//! Sparse item-item cosine neighbours from co-occurrence counts, and time-decayed popularity.
//!
//! Co-occurrences are counted item by item (rayon over items) by walking, for each user of the
//! item, that user's other items into a dense per-thread accumulator. Work is Σ_u n_u², memory is
//! one n_items accumulator per thread plus the kept neighbours — never a dense n×n matrix.

use rayon::prelude::*;

use crate::Interactions;
use crate::interactions::ItemMajor;

/// Row-sparse matrix: for row i, `(col, value)` pairs sorted by value descending (then col).
#[derive(Clone, Debug, Default)]
pub(crate) struct SparseRows {
    indptr: Vec<usize>,
    cols: Vec<u32>,
    vals: Vec<f32>,
}

impl SparseRows {
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        if i + 1 >= self.indptr.len() {
            return (&[], &[]);
        }
        let r = self.indptr[i]..self.indptr[i + 1];
        (&self.cols[r.clone()], &self.vals[r])
    }

    /// Value at (i, j), 0 when not stored. Linear in the row length.
    pub fn get(&self, i: usize, j: u32) -> f32 {
        let (c, v) = self.row(i);
        c.iter().position(|&x| x == j).map_or(0.0, |p| v[p])
    }

    pub fn memory_bytes(&self) -> usize {
        self.indptr.len() * 8 + self.cols.len() * 4 + self.vals.len() * 4
    }

    /// The raw CSR arrays, for serialisation.
    pub fn parts(&self) -> (&[usize], &[u32], &[f32]) {
        (&self.indptr, &self.cols, &self.vals)
    }

    /// Rebuilds from raw arrays, checking that they form a valid `n_rows` × `n_cols` CSR
    /// matrix (so that [`SparseRows::row`] and scoring can never index out of bounds).
    pub fn from_parts(
        n_rows: usize,
        n_cols: usize,
        indptr: Vec<usize>,
        cols: Vec<u32>,
        vals: Vec<f32>,
    ) -> Result<Self, String> {
        if indptr.len() != n_rows + 1 || indptr[0] != 0 {
            return Err(format!(
                "sparse rows: {} row pointers for {n_rows} rows",
                indptr.len()
            ));
        }
        if indptr.windows(2).any(|w| w[0] > w[1]) || indptr[n_rows] != cols.len() {
            return Err("sparse rows: row pointers are not monotone or do not match".into());
        }
        if cols.len() != vals.len() {
            return Err("sparse rows: columns and values differ in length".into());
        }
        if cols.iter().any(|&c| c as usize >= n_cols) {
            return Err("sparse rows: column index out of range".into());
        }
        if vals.iter().any(|v| !v.is_finite()) {
            return Err("sparse rows: non-finite value".into());
        }
        Ok(SparseRows { indptr, cols, vals })
    }

    /// `n_rows` empty rows.
    pub fn empty(n_rows: usize) -> Self {
        SparseRows {
            indptr: vec![0; n_rows + 1],
            cols: Vec::new(),
            vals: Vec::new(),
        }
    }

    fn from_rows(rows: Vec<Vec<(u32, f32)>>) -> Self {
        let nnz = rows.iter().map(Vec::len).sum();
        let mut out = SparseRows {
            indptr: Vec::with_capacity(rows.len() + 1),
            cols: Vec::with_capacity(nnz),
            vals: Vec::with_capacity(nnz),
        };
        out.indptr.push(0);
        for r in rows {
            for (c, v) in r {
                out.cols.push(c);
                out.vals.push(v);
            }
            out.indptr.push(out.cols.len());
        }
        out
    }
}

/// For every item, its `top_n` most cosine-similar other items on binary co-occurrence,
/// `co(i,j) / (sqrt(n_i n_j) + shrinkage)`; only pairs that co-occur at least once are kept.
pub(crate) fn cosine_neighbours(
    data: &Interactions,
    by_item: &ItemMajor,
    top_n: usize,
    shrinkage: f32,
) -> SparseRows {
    let counts: Vec<f32> = (0..data.n_items())
        .map(|i| by_item.users(i).len() as f32)
        .collect();
    co_occurrence_rows(
        data,
        by_item,
        top_n,
        |_| 1.0,
        |i, j, co| co / ((counts[i] * counts[j as usize]).sqrt() + shrinkage),
    )
}

/// RP3β item-item weights (see [`crate::AlgorithmConfig::Rp3Beta`]), top `top_n` per item:
/// each user contributes `deg(u)^-alpha` to every pair of their items.
pub(crate) fn rp3beta_neighbours(
    data: &Interactions,
    by_item: &ItemMajor,
    alpha: f32,
    beta: f32,
    top_n: usize,
) -> SparseRows {
    let user_step: Vec<f32> = (0..data.n_users())
        .map(|u| {
            let d = data.user_items(u as u32).len() as f32;
            if d > 0.0 { d.powf(-alpha) } else { 0.0 }
        })
        .collect();
    // Per-item factors, computed once rather than per pair.
    let (out_step, in_weight): (Vec<f32>, Vec<f32>) = (0..data.n_items())
        .map(|i| {
            let d = by_item.users(i).len() as f32;
            (d.max(1.0).powf(-alpha), d.powf(-beta))
        })
        .unzip();
    co_occurrence_rows(
        data,
        by_item,
        top_n,
        |u| user_step[u as usize],
        |i, j, walk| out_step[i] * walk * in_weight[j as usize],
    )
}

/// The traversal both neighbour indexes share: for each item `i`, sums `user_weight(u)` over
/// the users `u` of `i` into every other item `j` of `u`, turns each sum into a weight with
/// `score(i, j, sum)`, and keeps the `top_n` best per item (parallel over items).
fn co_occurrence_rows(
    data: &Interactions,
    by_item: &ItemMajor,
    top_n: usize,
    user_weight: impl Fn(u32) -> f32 + Sync,
    score: impl Fn(usize, u32, f32) -> f32 + Sync,
) -> SparseRows {
    let n = data.n_items();
    let rows: Vec<Vec<(u32, f32)>> = (0..n)
        .into_par_iter()
        .map_init(
            || (vec![0f32; n], Vec::<u32>::new()),
            |(acc, touched), i| {
                for &u in by_item.users(i) {
                    let step = user_weight(u);
                    for &j in data.user_items(u) {
                        if j as usize != i {
                            let a = &mut acc[j as usize];
                            if *a == 0.0 {
                                touched.push(j);
                            }
                            *a += step;
                        }
                    }
                }
                let mut row: Vec<(u32, f32)> = touched
                    .drain(..)
                    .map(|j| (j, score(i, j, std::mem::take(&mut acc[j as usize]))))
                    .collect();
                keep_top(&mut row, top_n);
                row
            },
        )
        .collect();
    SparseRows::from_rows(rows)
}

/// Keeps the `top_n` largest values of `row`, sorted by value descending then column.
fn keep_top(row: &mut Vec<(u32, f32)>, top_n: usize) {
    let by_rank = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if row.len() > top_n {
        row.select_nth_unstable_by(top_n, by_rank);
        row.truncate(top_n);
    }
    row.sort_unstable_by(by_rank);
    // The row was collected from every co-occurring item (up to all n): without this, each kept
    // row holds on to that capacity until `from_rows` copies it — gigabytes on 100k items.
    row.shrink_to_fit();
}

/// Time-decayed interaction counts per item; `half_life_days <= 0` (or infinite) means plain counts.
pub(crate) fn popularity(data: &Interactions, half_life_days: f32) -> Vec<f32> {
    let mut pop = vec![0f64; data.n_items()];
    let newest = data.max_timestamp().unwrap_or(0);
    let decay = half_life_days > 0.0 && half_life_days.is_finite();
    let rate = if decay {
        std::f64::consts::LN_2 / (half_life_days as f64 * 86_400.0)
    } else {
        0.0
    };
    for (_, i, _, ts) in data.iter() {
        let age = newest.saturating_sub(ts).max(0) as f64;
        pop[i as usize] += if decay { (-rate * age).exp() } else { 1.0 };
    }
    pop.into_iter().map(|p| p as f32).collect()
}
