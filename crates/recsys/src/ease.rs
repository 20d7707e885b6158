//! EASE: the closed-form item-item linear autoencoder (Steck, WWW 2019).
//!
//! Two exact routes to `P = (XᵀX + λI)⁻¹`, picked by an operation count:
//!
//! * **Woodbury (users-side)**, when there are fewer users than items (common: Last.fm 2K has
//!   1.9k users and 15k items): `P = (I − Xᵀ(XXᵀ + λI)⁻¹X)/λ`. Only a u×u matrix is inverted
//!   (f64), then `Z = MX` (u × n, sparse-dense) and `XᵀZ` row by row (sparse-dense); the
//!   `1/λ` cancels in `B`, whose entry is `B[i,j] = (XᵀMX)[i,j] / (1 − q_j)` with
//!   `q_j = x_jᵀ M x_j` accumulated in f64 (the subtraction `1 − q_j` is where precision is lost).
//!   Cost ≈ 2u³ + nnz·(u + n) instead of n³: 3.5 s instead of 35 s at Last.fm's 15k items.
//! * **Direct (items-side)**, otherwise (below).
//!
//! `G = XᵀX + λI` is built sparsely (rayon over rows of G, one triangle, Σ_u n_u²/2 work);
//! `P = G⁻¹` via a Cholesky factorisation `G = LLᵀ` (G is symmetric positive definite for λ > 0,
//! so LU would be wasted work and less stable), `L⁻¹` by triangular inversion, and `P = L⁻ᵀL⁻¹`
//! as a triangular product — about n³ flops in all, in f32, with faer's rayon parallelism. Peak
//! memory is two n×n f32 matrices; the model keeps one, `B` row-major, so scoring a history sums
//! contiguous rows.
//!
//! **Normalised EASE.** Plain EASE penalises every item's weights alike and lets heavy users
//! dominate the Gram matrix; both favour popular items. Two generalisations fix that; on
//! ML-100K (protocol A, five outer splits) they lift nDCG@10 by 0.002–0.005 over λ 500:
//! * `dropout` `p` (Steck, "Autoencoders that don't overfit towards the identity", NeurIPS
//!   2020): training on inputs dropped with probability `p` is, in expectation, the penalty
//!   `Λ = λI + p/(1−p)·diag(G)` — items are regularised in proportion to their popularity.
//! * `user_norm` `β` (Park et al., "Why is normalization necessary for linear recommenders?",
//!   SIGIR 2025): `G = XᵀD X` with `D = diag(n_u^−β)`, so a user with many interactions
//!   weighs less per interaction.
//!
//! With `G = X̃ᵀX̃ + Λ`, `X̃ = D^½X`, the zero-diagonal solution is still `B = I − P/diag(P)`,
//! `P = G⁻¹`. Both routes above are reused unchanged: on `X̂ = X̃Λ^−½` with `λ = 1` they yield
//! `B̂`, and `B = Λ^−½ B̂ Λ^½` (the similarity transform `P = Λ^−½ P̂ Λ^−½`).
//!
//! **Free diagonal** (`free_diagonal`, Steck's DLAE): without the zero-diagonal constraint the
//! solution is `B = I − PΛ`. A history item's own column is never ranked, so only the
//! off-diagonal entries matter, and they differ from the constrained ones by a column scale:
//! `−P[i,j]·Λ_j` instead of `−P[i,j]/P[j,j]` (the routes above just scale the columns by `λ`
//! instead of `1/P[j,j]`). As one more candidate in `auto_select` it lowered the mean
//! `--model auto` nDCG@10 over six ML-100K splits (0.4896 vs 0.4903: more noisy candidates, more
//! winner's curse), so auto does not search it; it is there for operators who set EASE by hand.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{self, LltRegularization};
use faer::linalg::cholesky::llt::inverse;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::linalg::triangular_inverse::invert_lower_triangular;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

use crate::interactions::ItemMajor;
use crate::{Error, Interactions};

/// EASE's hyper-parameters (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct EaseParams {
    pub lambda: f32,
    pub dropout: f32,
    pub user_norm: f32,
    /// Drop the zero-diagonal constraint (DLAE instead of EDLAE, see the module docs).
    pub free_diagonal: bool,
}

impl EaseParams {
    #[cfg(test)]
    pub fn plain(lambda: f32) -> Self {
        EaseParams {
            lambda,
            dropout: 0.0,
            user_norm: 0.0,
            free_diagonal: false,
        }
    }

    fn is_plain(&self) -> bool {
        self.dropout == 0.0 && self.user_norm == 0.0
    }
}

/// The user weights `n_u^−β` (`n_u` = number of the user's interactions).
fn user_weights(data: &Interactions, beta: f32) -> Vec<f32> {
    (0..data.n_users() as u32)
        .map(|u| (data.user_items(u).len().max(1) as f32).powf(-beta))
        .collect()
}

/// `Σ_u n_u^−β x_ui² / Σ_u x_ui²` over all entries: how much `user_norm` shrinks the Gram
/// matrix's diagonal, so that a penalty tuned at `β = 0` can be carried over.
pub(crate) fn user_norm_shrink(data: &Interactions, beta: f32) -> f32 {
    let w = user_weights(data, beta);
    let (mut num, mut den) = (0f64, 0f64);
    for (u, _, x, _) in data.iter() {
        let x2 = (x as f64) * (x as f64);
        num += w[u as usize] as f64 * x2;
        den += x2;
    }
    if den > 0.0 { (num / den) as f32 } else { 1.0 }
}

/// `X̂ = D^½ X Λ^−½` and `√Λ` per item (see the module docs).
fn normalised(data: &Interactions, p: EaseParams) -> (Interactions, Vec<f32>) {
    let w = user_weights(data, p.user_norm);
    let mut diag = vec![0f64; data.n_items()];
    for (u, i, x, _) in data.iter() {
        diag[i as usize] += w[u as usize] as f64 * (x as f64) * (x as f64);
    }
    let emphasis = (p.dropout / (1.0 - p.dropout)) as f64;
    let root: Vec<f32> = diag
        .iter()
        .map(|&d| ((p.lambda as f64 + emphasis * d).sqrt()) as f32)
        .collect();
    let scaled = data.map_weights(|u, i, x| x * w[u as usize].sqrt() / root[i as usize]);
    (scaled, root)
}

/// Returns `B` row-major (n×n), zero diagonal.
pub(crate) fn fit(data: &Interactions, p: EaseParams) -> Result<Vec<f32>, Error> {
    if p.is_plain() {
        return fit_plain(data, p.lambda, p.free_diagonal);
    }
    let n = data.n_items();
    let (scaled, root) = normalised(data, p);
    let mut b = fit_plain(&scaled, 1.0, p.free_diagonal)?;
    b.par_chunks_mut(n.max(1)).zip(&root).for_each(|(row, ri)| {
        let inv = 1.0 / ri;
        for (x, rj) in row.iter_mut().zip(&root) {
            *x *= inv * rj;
        }
    });
    Ok(b)
}

/// Plain EASE by the cheaper route.
fn fit_plain(data: &Interactions, lambda: f32, free_diagonal: bool) -> Result<Vec<f32>, Error> {
    if prefers_woodbury(data) {
        fit_woodbury(data, lambda, free_diagonal)
    } else {
        fit_direct(data, lambda, free_diagonal)
    }
}

/// Whether the Woodbury route is expected to be faster. Calibrated on 2 cores (release):
/// the direct route runs at about 1.2e-11 s per n³ (faer's blocked f32 Cholesky + inverse), the
/// Woodbury route's u³ part at twice that (f64), but its `XᵀZ` pass reads a u × n matrix once per
/// interaction and is memory-bound at about 3e-9 s per nnz·n — 250 times the cost of a
/// blocked flop. Measured: ML-100K (943 × 1.7k) direct 0.08 s vs Woodbury 0.18 s;
/// ml-latest-small (609 × 5.7k) 2.4 s vs 0.64 s; Last.fm (1.9k × 15k) 35 s vs 3.5 s.
pub(crate) fn prefers_woodbury(data: &Interactions) -> bool {
    let (u, n) = (data.n_users() as f64, data.n_items() as f64);
    let woodbury_cost = 2.0 * u * u * u + 250.0 * data.nnz() as f64 * n;
    data.n_users() > 0 && woodbury_cost < n * n * n
}

/// Inverts a symmetric positive definite n×n matrix given column-major (lower triangle read),
/// returning the full symmetric inverse column-major.
fn spd_inverse_f64(mut a: Vec<f64>, n: usize) -> Result<Vec<f64>, Error> {
    let par = Par::rayon(0);
    let mut buf = MemBuffer::new(
        factor::cholesky_in_place_scratch::<f64>(n, par, Default::default())
            .or(inverse::inverse_scratch::<f64>(n, par)),
    );
    factor::cholesky_in_place(
        MatMut::from_column_major_slice_mut(&mut a, n, n),
        LltRegularization::default(),
        par,
        MemStack::new(&mut buf),
        Default::default(),
    )
    .map_err(|e| Error::Numerical(format!("ease: Cholesky factorisation failed: {e:?}")))?;
    let mut out = vec![0f64; n * n];
    inverse::inverse(
        MatMut::from_column_major_slice_mut(&mut out, n, n),
        MatRef::from_column_major_slice(&a, n, n),
        par,
        MemStack::new(&mut buf),
    );
    for c in 0..n {
        for r in 0..c {
            out[c * n + r] = out[r * n + c];
        }
    }
    Ok(out)
}

/// The users-side inverse `M = (XXᵀ + λI)⁻¹` (u×u, f64, symmetric) and the column scale
/// `1 / (1 − q_j)`, `q_j = x_jᵀ M x_j` (all ones with a free diagonal: `−λP` off the diagonal
/// is `XᵀMX` itself), shared by the Woodbury fit and [`woodbury_user_scores`].
fn woodbury_core(
    data: &Interactions,
    by_item: &ItemMajor,
    lambda: f32,
    free_diagonal: bool,
) -> Result<(Vec<f64>, Vec<f32>), Error> {
    let (nu, n) = (data.n_users(), data.n_items());
    // K = XXᵀ + λI (u×u, symmetric so row-major == column-major), f64.
    let mut k = vec![0f64; nu * nu];
    k.par_chunks_mut(nu).enumerate().for_each(|(u, row)| {
        for (&i, &wi) in data
            .user_items(u as u32)
            .iter()
            .zip(data.user_weights(u as u32))
        {
            let wi = wi as f64;
            for (&v, &wv) in by_item
                .users(i as usize)
                .iter()
                .zip(by_item.weights(i as usize))
            {
                row[v as usize] += wi * wv as f64;
            }
        }
        row[u] += lambda as f64;
    });
    let m = spd_inverse_f64(k, nu)?;
    // q_j = x_jᵀ M x_j, exactly in f64.
    let q: Vec<f64> = (0..n)
        .into_par_iter()
        .map(|j| {
            let (us, ws) = (by_item.users(j), by_item.weights(j));
            let mut s = 0f64;
            for (&a, &wa) in us.iter().zip(ws) {
                let mrow = &m[a as usize * nu..(a as usize + 1) * nu];
                let inner: f64 = us
                    .iter()
                    .zip(ws)
                    .map(|(&b, &wb)| mrow[b as usize] * wb as f64)
                    .sum();
                s += wa as f64 * inner;
            }
            s
        })
        .collect();
    if let Some(j) = q.iter().position(|q| !(q.is_finite() && *q < 1.0)) {
        return Err(Error::Numerical(format!(
            "ease: non-positive diagonal of the inverse at item {j}"
        )));
    }
    let scale = q
        .iter()
        .map(|q| {
            if free_diagonal {
                1.0
            } else {
                (1.0 / (1.0 - q)) as f32
            }
        })
        .collect();
    Ok((m, scale))
}

/// EASE scores of training users, without forming `B` (for validation): user `u`'s score row
/// `Σ_i x_ui B[i, ·]` is `(x_uᵀXᵀ M X) ⊙ scale = ((I − λM)[u, ·] X) ⊙ scale`, since
/// `XXᵀ M = I − λM`: u·nnz work per user instead of the nnz·n pass that builds `B`.
/// Returns `users.len()` rows of `n_items` (row-major). The entries of the user's own items
/// differ from [`fit`]'s (whose `B` has a zero diagonal); they are excluded from rankings anyway.
///
/// With normalisations (see the module docs) each user's row comes out multiplied by a positive
/// constant of that user (`n_u^−β/2`), which changes no ranking and no standardised score.
pub(crate) fn woodbury_user_scores(
    data: &Interactions,
    p: EaseParams,
    users: &[u32],
) -> Result<Vec<f32>, Error> {
    if p.is_plain() {
        return woodbury_user_scores_plain(data, p.lambda, p.free_diagonal, users);
    }
    let n = data.n_items();
    let (scaled, root) = normalised(data, p);
    let mut out = woodbury_user_scores_plain(&scaled, 1.0, p.free_diagonal, users)?;
    out.par_chunks_mut(n.max(1)).for_each(|row| {
        for (x, r) in row.iter_mut().zip(&root) {
            *x *= r;
        }
    });
    Ok(out)
}

fn woodbury_user_scores_plain(
    data: &Interactions,
    lambda: f32,
    free_diagonal: bool,
    users: &[u32],
) -> Result<Vec<f32>, Error> {
    let (nu, n) = (data.n_users(), data.n_items());
    let by_item = data.by_item();
    let (m, scale) = woodbury_core(data, &by_item, lambda, free_diagonal)?;
    let lambda = lambda as f64;
    let mut out = vec![0f32; users.len() * n];
    out.par_chunks_mut(n.max(1)).zip(users).for_each_init(
        || vec![0f64; n],
        |acc, (row, &u)| {
            let mrow = &m[u as usize * nu..(u as usize + 1) * nu];
            for (v, &muv) in mrow.iter().enumerate() {
                let c = if v == u as usize { 1.0 } else { 0.0 } - lambda * muv;
                for (&j, &w) in data
                    .user_items(v as u32)
                    .iter()
                    .zip(data.user_weights(v as u32))
                {
                    acc[j as usize] += c * w as f64;
                }
            }
            for ((o, a), s) in row.iter_mut().zip(acc.iter_mut()).zip(&scale) {
                *o = (std::mem::take(a) as f32) * s;
            }
        },
    );
    Ok(out)
}

/// The Woodbury route (see the module docs).
pub(crate) fn fit_woodbury(
    data: &Interactions,
    lambda: f32,
    free_diagonal: bool,
) -> Result<Vec<f32>, Error> {
    let (nu, n) = (data.n_users(), data.n_items());
    if n == 0 {
        return Ok(Vec::new());
    }
    let len = n.checked_mul(n).ok_or(Error::TooManyItems {
        algorithm: "ease",
        n_items: n,
        max: 0,
    })?;
    let by_item = data.by_item();
    let (m, scale) = woodbury_core(data, &by_item, lambda, free_diagonal)?;
    // Z = M X, u × n row-major f32 (accumulated in f64).
    let mut z = vec![0f32; nu * n];
    z.par_chunks_mut(n).enumerate().for_each_init(
        || vec![0f64; n],
        |acc, (u, zrow)| {
            let mrow = &m[u * nu..(u + 1) * nu];
            for (v, &muv) in mrow.iter().enumerate() {
                for (&j, &w) in data
                    .user_items(v as u32)
                    .iter()
                    .zip(data.user_weights(v as u32))
                {
                    acc[j as usize] += muv * w as f64;
                }
            }
            for (o, a) in zrow.iter_mut().zip(acc.iter_mut()) {
                *o = std::mem::take(a) as f32;
            }
        },
    );
    drop(m);
    let mut b = zeroed_matrix(len);
    b.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        for (&u, &w) in by_item.users(i).iter().zip(by_item.weights(i)) {
            let zrow = &z[u as usize * n..(u as usize + 1) * n];
            for (o, &zv) in row.iter_mut().zip(zrow) {
                *o += w * zv;
            }
        }
        for (x, s) in row.iter_mut().zip(&scale) {
            *x *= s;
        }
        row[i] = 0.0;
    });
    Ok(b)
}

/// The direct route: Cholesky of the n×n Gram matrix (see the module docs).
pub(crate) fn fit_direct(
    data: &Interactions,
    lambda: f32,
    free_diagonal: bool,
) -> Result<Vec<f32>, Error> {
    let n = data.n_items();
    if n == 0 {
        return Ok(Vec::new());
    }
    let by_item = data.by_item();
    let len = n.checked_mul(n).ok_or(Error::TooManyItems {
        algorithm: "ease",
        n_items: n,
        max: 0,
    })?;
    // Gram matrix: symmetric, so row i is column i.
    let mut g = zeroed_matrix(len);
    // Only the triangle the factorisation reads (column-major lower: entries j >= i of row i),
    // which halves the work: a user's items are sorted, so it is a suffix of each list.
    g.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        for (&u, &wi) in by_item.users(i).iter().zip(by_item.weights(i)) {
            let (items, weights) = (data.user_items(u), data.user_weights(u));
            let from = items.partition_point(|&j| (j as usize) < i);
            for (&j, &wj) in items[from..].iter().zip(&weights[from..]) {
                row[j as usize] += wi * wj;
            }
        }
        row[i] += lambda;
    });

    let par = Par::rayon(0);
    {
        let a = MatMut::from_column_major_slice_mut(&mut g, n, n);
        let mut buf = MemBuffer::new(factor::cholesky_in_place_scratch::<f32>(
            n,
            par,
            Default::default(),
        ));
        factor::cholesky_in_place(
            a,
            LltRegularization::default(),
            par,
            MemStack::new(&mut buf),
            Default::default(),
        )
        .map_err(|e| Error::Numerical(format!("ease: Cholesky factorisation failed: {e:?}")))?;
    }
    let mut linv = zeroed_matrix(len);
    invert_lower_triangular(
        MatMut::from_column_major_slice_mut(&mut linv, n, n),
        MatRef::from_column_major_slice(&g, n, n),
        par,
    );
    // P = L⁻ᵀ L⁻¹, lower triangle only, written over L (no longer needed).
    {
        let li = MatRef::from_column_major_slice(&linv, n, n);
        triangular::matmul(
            MatMut::from_column_major_slice_mut(&mut g, n, n),
            BlockStructure::TriangularLower,
            Accum::Replace,
            li.transpose(),
            BlockStructure::TriangularUpper,
            li,
            BlockStructure::TriangularLower,
            1.0f32,
            par,
        );
    }
    drop(linv);
    let mut p = g; // column-major, lower triangle valid: P[r, c] = p[c * n + r] for r >= c.
    symmetrize_from_lower(&mut p, n);
    let diag: Vec<f32> = (0..n).map(|i| p[i * n + i]).collect();
    if let Some(i) = diag.iter().position(|d| !(d.is_finite() && *d > 0.0)) {
        return Err(Error::Numerical(format!(
            "ease: non-positive diagonal of the inverse at item {i}"
        )));
    }
    let scale: Vec<f32> = diag
        .iter()
        .map(|d| if free_diagonal { -lambda } else { -1.0 / d })
        .collect();
    // B[i, j] = -P[i, j] / P[j, j] (free diagonal: -λP[i, j]): column i of the symmetric P,
    // scaled, is row i of B.
    p.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        for (x, s) in row.iter_mut().zip(&scale) {
            *x *= s;
        }
        row[i] = 0.0;
    });
    Ok(p)
}

/// A zeroed buffer for an n×n matrix. On Linux the kernel is asked (`madvise`, honoured where
/// transparent huge pages are set to `madvise` or `always`) to back it with 2 MB pages: an 11 MB
/// matrix is then a handful of page faults instead of ~2,700, and faer's blocked kernels, whose
/// columns lie 4n bytes apart, miss the TLB less.
fn zeroed_matrix(len: usize) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(len);
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = v.as_mut_ptr() as usize;
        let end = start + len * std::mem::size_of::<f32>();
        let (from, to) = ((start + PAGE - 1) & !(PAGE - 1), end & !(PAGE - 1));
        if to > from && to - from >= 4 << 20 {
            // SAFETY: [from, to) is page-aligned and inside the allocation just made; the advice
            // only changes how the kernel backs those pages (a failure is harmless).
            unsafe {
                libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
            }
        }
    }
    v.resize(len, 0.0);
    v
}

/// Copies the lower triangle of a column-major n×n matrix onto its upper triangle, tile by tile
/// so both the reads and the writes stay in cache.
fn symmetrize_from_lower(p: &mut [f32], n: usize) {
    const T: usize = 64;
    for cb in (0..n).step_by(T) {
        for rb in (0..=cb).step_by(T) {
            for c in cb..(cb + T).min(n) {
                for r in rb..(rb + T).min(c) {
                    p[c * n + r] = p[r * n + c];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(nu: u32, ni: u32, per_user: u32, seed: u64) -> Interactions {
        let mut rng = crate::rng::SplitMix64::new(seed);
        let mut t = Vec::new();
        for u in 0..nu {
            for _ in 0..per_user {
                let i = (rng.below(ni as usize) as u32).min(rng.below(ni as usize) as u32);
                t.push((u, i, 0.5 + rng.next_f32(), 0));
            }
        }
        Interactions::from_triples(nu as usize, ni as usize + 3, t)
    }

    #[test]
    fn woodbury_equals_direct() {
        for free in [false, true] {
            for (nu, ni) in [(30, 200), (200, 30), (1, 5)] {
                let d = random(nu, ni, 8, nu as u64);
                let a = fit_direct(&d, 3.0, free).unwrap();
                let b = fit_woodbury(&d, 3.0, free).unwrap();
                let max = a.iter().fold(0f32, |m, x| m.max(x.abs()));
                let err = a
                    .iter()
                    .zip(&b)
                    .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                assert!(err <= 1e-4 * max.max(1e-3), "{nu}×{ni}: {err} vs max {max}");
            }
        }
    }

    /// `Σ_i x_ui B[i, ·]`: user `u`'s scores from a row-major `B`.
    fn history_scores(d: &Interactions, b: &[f32], u: u32) -> Vec<f32> {
        let n = d.n_items();
        let mut out = vec![0f32; n];
        for (&i, &w) in d.user_items(u).iter().zip(d.user_weights(u)) {
            for (o, &v) in out.iter_mut().zip(&b[i as usize * n..(i as usize + 1) * n]) {
                *o += w * v;
            }
        }
        out
    }

    #[test]
    fn woodbury_user_scores_match_b_off_the_history() {
        let d = random(40, 150, 8, 5);
        let b = fit_woodbury(&d, 3.0, false).unwrap();
        let n = d.n_items();
        let users = [0u32, 7, 39];
        let s = woodbury_user_scores(&d, EaseParams::plain(3.0), &users).unwrap();
        for (r, &u) in users.iter().enumerate() {
            let want = history_scores(&d, &b, u);
            let max = want.iter().fold(0f32, |m, x| m.max(x.abs()));
            for j in 0..n {
                if d.user_items(u).binary_search(&(j as u32)).is_err() {
                    let err = (s[r * n + j] - want[j]).abs();
                    assert!(err <= 1e-4 * max.max(1e-3), "user {u} item {j}: {err}");
                }
            }
        }
    }

    /// `B` of normalised EASE computed from its definition in f64: `G = Σ_u n_u^−β x_u x_uᵀ +
    /// Λ`, `Λ_i = λ + p/(1−p)·G_ii`, `P = G⁻¹` (Gauss–Jordan), `B = −P/diag(P)`, zero diagonal
    /// (free diagonal: `B = I − PΛ`, compared off the diagonal only).
    fn normalised_by_definition(d: &Interactions, p: EaseParams) -> Vec<f64> {
        let n = d.n_items();
        let mut g = vec![0f64; n * n];
        for u in 0..d.n_users() as u32 {
            let w = (d.user_items(u).len().max(1) as f64).powf(-p.user_norm as f64);
            let (items, xs) = (d.user_items(u), d.user_weights(u));
            for (&i, &xi) in items.iter().zip(xs) {
                for (&j, &xj) in items.iter().zip(xs) {
                    g[i as usize * n + j as usize] += w * xi as f64 * xj as f64;
                }
            }
        }
        let e = p.dropout as f64 / (1.0 - p.dropout as f64);
        let penalty: Vec<f64> = (0..n).map(|i| p.lambda as f64 + e * g[i * n + i]).collect();
        for (i, l) in penalty.iter().enumerate() {
            g[i * n + i] += l;
        }
        let mut inv = vec![0f64; n * n];
        for i in 0..n {
            inv[i * n + i] = 1.0;
        }
        for c in 0..n {
            let piv = (c..n)
                .max_by(|&a, &b| g[a * n + c].abs().total_cmp(&g[b * n + c].abs()))
                .unwrap();
            for k in 0..n {
                g.swap(c * n + k, piv * n + k);
                inv.swap(c * n + k, piv * n + k);
            }
            let d = g[c * n + c];
            for k in 0..n {
                g[c * n + k] /= d;
                inv[c * n + k] /= d;
            }
            for r in 0..n {
                let f = g[r * n + c];
                if r != c && f != 0.0 {
                    for k in 0..n {
                        g[r * n + k] -= f * g[c * n + k];
                        inv[r * n + k] -= f * inv[c * n + k];
                    }
                }
            }
        }
        let mut b = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    b[i * n + j] = if p.free_diagonal {
                        -inv[i * n + j] * penalty[j]
                    } else {
                        -inv[i * n + j] / inv[j * n + j]
                    };
                }
            }
        }
        b
    }

    /// Largest difference off the diagonal between an n×n `got` and `want`.
    fn max_off_diagonal_err(got: &[f32], want: &[f64], n: usize) -> f64 {
        let mut err = 0f64;
        for (k, (&x, y)) in got.iter().zip(want).enumerate() {
            if k / n != k % n {
                err = err.max((x as f64 - y).abs());
            }
        }
        err
    }

    #[test]
    fn normalised_ease_matches_its_definition() {
        for (free_diagonal, (nu, ni)) in [false, true]
            .into_iter()
            .flat_map(|f| [(f, (30, 120)), (f, (150, 25))])
        {
            // Both shapes; the two routes agree on any weighted data (`woodbury_equals_direct`).
            let p = EaseParams {
                lambda: 2.0,
                dropout: 0.4,
                user_norm: 0.5,
                free_diagonal,
            };
            let d = random(nu, ni, 8, 11 + nu as u64);
            let got = fit(&d, p).unwrap();
            let want = normalised_by_definition(&d, p);
            let max = want.iter().fold(0f64, |m, x| m.max(x.abs()));
            let err = max_off_diagonal_err(&got, &want, d.n_items());
            assert!(
                err <= 1e-4 * max,
                "{nu}×{ni} free {free_diagonal}: {err} vs max {max}"
            );
            // And it is not plain EASE at the same λ.
            let plain = fit(&d, EaseParams::plain(2.0)).unwrap();
            let diff = plain
                .iter()
                .zip(&want)
                .fold(0f64, |m, (&x, y)| m.max((x as f64 - y).abs()));
            assert!(
                diff > 0.05 * max,
                "{nu}×{ni}: normalisation changed nothing"
            );
        }
    }

    #[test]
    fn normalised_woodbury_user_scores_are_b_scaled_per_user() {
        for free_diagonal in [false, true] {
            woodbury_user_scores_are_b_scaled_per_user(EaseParams {
                lambda: 2.0,
                dropout: 0.5,
                user_norm: 0.25,
                free_diagonal,
            });
        }
    }

    fn woodbury_user_scores_are_b_scaled_per_user(p: EaseParams) {
        let d = random(40, 150, 8, 9);
        let b = fit(&d, p).unwrap();
        let n = d.n_items();
        let users = [0u32, 13, 39];
        let s = woodbury_user_scores(&d, p, &users).unwrap();
        for (r, &u) in users.iter().enumerate() {
            let want = history_scores(&d, &b, u);
            let scale = (d.user_items(u).len() as f32).powf(-p.user_norm / 2.0);
            let max = want.iter().fold(0f32, |m, x| m.max(x.abs()));
            for j in 0..n {
                if d.user_items(u).binary_search(&(j as u32)).is_err() {
                    let err = (s[r * n + j] - scale * want[j]).abs();
                    assert!(err <= 1e-4 * max, "user {u} item {j}: {err}");
                }
            }
        }
    }
}
