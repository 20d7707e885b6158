//! EASE: the closed-form item-item linear autoencoder (Steck, WWW 2019).
//!
//! Two exact routes to `B`, picked by a cost model ([`prefers_woodbury`]):
//!
//! * **Woodbury (users-side)**, for fewer users than items unless interactions are too many
//!   (ML-100K's 943 × 1656, ml-latest-small, Last.fm 2K): `P = (I − Xᵀ(XXᵀ + λI)⁻¹X)/λ`. Only
//!   the u×u matrix `K = XXᵀ + λI` is inverted (`M = K⁻¹`, faer's Cholesky and inverse, u³
//!   flops), then `Z = MX` (u × n) costs u·nnz multiply-adds, X being sparse, and `XᵀZ` nnz·n;
//!   the `1/λ` cancels in `B`, whose entry is `B[i,j] = (XᵀMX)[i,j] / (1 − q_j)` with
//!   `q_j = x_jᵀ M x_j` summed in f64 (the subtraction `1 − q_j` is where precision is lost).
//!   At ML-100K that is 0.6 G multiply-adds instead of the direct route's n³/2 = 2.3 G.
//!   Both passes are register-blocked (32–64 accumulators) over tiles of `M` and `Z` laid out
//!   contiguously to stay in cache, and compiled a second time for AVX2 + FMA (as `kernels`).
//!   `M`'s entries are ~1/λ and cancel in `MX`, so `M` is computed and applied in f64 unless `K`
//!   is well conditioned ([`single_precision_suffices`]: ML-100K for λ ≥ 23), where f32 is more
//!   exact than the direct route (0.3–0.6 times its error); `Z` and `B` are f32. With `M` in f64 the route is 4–16
//!   times more exact than the direct one (`examples/ease_routes.rs accuracy`).
//!   ML-100K on 2 cores: 0.06–0.08 s, vs 0.08–0.15 s by the direct route; Last.fm: 1.1–5 s
//!   (first-touching the 945 MB `B` dominates and varies), vs ~35 s.
//! * **Direct (items-side)**, otherwise (below).
//!
//! A dense variant of the Woodbury route was measured and dropped: `X` as a dense u × n matrix,
//! `K = LLᵀ`, `W = L⁻¹X` (faer's triangular solve), `S = WᵀW = XᵀMX` (one triangle, faer's
//! triangular product), `B[i,j] = S[i,j]/(1 − q_j)`. It costs u³/6 + u²n/2 + n²u/2 = 2.2 G
//! multiply-adds at ML-100K, no fewer than the direct route, and ran no faster (0.13–0.19 s vs
//! 0.12–0.19 s for the direct route in the same runs, with `K`'s Cholesky in f32 or f64 and
//! each step parallel or sequential, at load 3.5–5 on 2 cores): its solve and `WᵀW` reached
//! only 30–45 GFlop/s. The sparse passes above avoid the n²u product altogether.
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
//! **Session weighting** (`session_seconds` τ, `session_weight` m). People engage with related
//! items together: a run of films rated in one sitting, an album's tracks in one evening. Plain
//! EASE counts a co-occurrence the same whether the two events were a minute or a year apart.
//! Here the Gram matrix is `G = Σ_u X_uᵀ (K_u ⊙ x_u x_uᵀ)`, where `K_u[i,j] = 1 − m +
//! m·e^(−|t_i − t_j|/τ)` (the exponential kernel is positive definite, so `G` is too, and its
//! diagonal is unchanged: `K[i,i] = 1`); the penalty and the zero-diagonal solution are as
//! above. `G` is no longer `X̃ᵀX̃` of a sparse `X̃`, so only the direct route applies; building it
//! costs one kernel evaluation per co-occurrence (skipped beyond 30 τ). The off-diagonal mass
//! shrinks (by ~0.42 at τ 1 min, m 0.6 on ML-100K) while the diagonal does not, so λ shrinks
//! with it ([`session_shrink`]). On ML-100K protocol A (outer seed 42, numpy on the same split)
//! plain EASE's best is .4812 and session-weighted EASE's .4898–.4909 over τ 30 s – 2 min;
//! ml-latest-small protocol B .2722 → .2827. Serving is unchanged (`B` is scored the same way).
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
use crate::{Error, Interactions, kernels};

/// EASE's hyper-parameters (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct EaseParams {
    pub lambda: f32,
    pub dropout: f32,
    pub user_norm: f32,
    /// Drop the zero-diagonal constraint (DLAE instead of EDLAE, see the module docs).
    pub free_diagonal: bool,
    /// Session weighting `τ` (seconds) and `m` (see the module docs); off when `m` is 0.
    pub session_seconds: f32,
    pub session_weight: f32,
}

impl EaseParams {
    pub fn plain(lambda: f32) -> Self {
        EaseParams {
            lambda,
            dropout: 0.0,
            user_norm: 0.0,
            free_diagonal: false,
            session_seconds: 0.0,
            session_weight: 0.0,
        }
    }

    /// Whether co-occurrences are weighted by time (which needs the direct route).
    pub fn is_session(&self) -> bool {
        self.session_weight > 0.0
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
    fit_by(data, p, prefers_woodbury(data))
}

/// [`fit`] by the route given (`woodbury`: users-side), whatever the shape of the data.
fn fit_by(data: &Interactions, p: EaseParams, woodbury: bool) -> Result<Vec<f32>, Error> {
    if p.is_session() {
        return fit_session(data, p);
    }
    let plain = |data: &Interactions, lambda: f32| {
        if woodbury {
            fit_woodbury(data, lambda, p.free_diagonal, None)
        } else {
            fit_direct(data, lambda, p.free_diagonal)
        }
    };
    if p.is_plain() {
        return plain(data, p.lambda);
    }
    let n = data.n_items();
    let (scaled, root) = normalised(data, p);
    let mut b = plain(&scaled, 1.0)?;
    b.par_chunks_mut(n.max(1)).zip(&root).for_each(|(row, ri)| {
        let inv = 1.0 / ri;
        for (x, rj) in row.iter_mut().zip(&root) {
            *x *= inv * rj;
        }
    });
    Ok(b)
}

/// Seconds per n³ of the direct route (faer's blocked f32 Cholesky, triangular inverse and
/// product) on 2 cores.
const DIRECT_S_PER_N3: f64 = 1.2e-11;

/// Whether the Woodbury route is expected to be faster: a cost model in seconds on 2 cores
/// (release). The direct route costs 1.2e-11 s per n³ plus 4e-9 s per n² (two n×n buffers,
/// first touched: page faults and the kernel's zeroing). The Woodbury route costs 4e-11 s per
/// u³ (the inverse, sequential f64; f32 is faster, but the choice must hold for any λ), 1.2e-10 s
/// per u·nnz (the `Z = MX` pass, f64), 8e-11 s per nnz·n (the `XᵀZ` pass) and 2e-9 s per n²
/// (`B`). The sparse builds of `K` and `G` (Σ_i n_i² vs Σ_u n_u² scattered adds, ~0.01 s at
/// ML-100K) are alike and left out. Measured with `examples/ease_routes.rs` (direct vs
/// Woodbury, λ 100, load ~4): ML-100K (943 × 1656) 0.15 s vs 0.06 s; its first 1000 / 1200
/// items 0.040 / 0.036 s vs 0.054 / 0.042 s (direct chosen); transposed 0.03 s vs 0.13 s;
/// ml-latest-small (609 × 5.7k) 2.6 s vs 0.08 s; Last.fm's first 4000 items (1.9k users) 1.6 s
/// vs 0.30 s.
pub(crate) fn prefers_woodbury(data: &Interactions) -> bool {
    let (u, n, nnz) = (
        data.n_users() as f64,
        data.n_items() as f64,
        data.nnz() as f64,
    );
    let woodbury = 4e-11 * u * u * u + 1.2e-10 * u * nnz + 8e-11 * nnz * n + 2e-9 * n * n;
    let direct = DIRECT_S_PER_N3 * n * n * n + 4e-9 * n * n;
    data.n_users() > 0 && woodbury < direct
}

/// Defines `$name(a, n, par)`: the inverse of a symmetric positive definite n×n matrix `a`
/// given column-major (lower triangle read), returned in full, column-major.
macro_rules! spd_inverse {
    ($name:ident, $t:ty) => {
        fn $name(mut a: Vec<$t>, n: usize, par: Par) -> Result<Vec<$t>, Error> {
            let mut buf = MemBuffer::new(
                factor::cholesky_in_place_scratch::<$t>(n, par, Default::default())
                    .or(inverse::inverse_scratch::<$t>(n, par)),
            );
            factor::cholesky_in_place(
                MatMut::from_column_major_slice_mut(&mut a, n, n),
                LltRegularization::default(),
                par,
                MemStack::new(&mut buf),
                Default::default(),
            )
            .map_err(|e| Error::Numerical(format!("ease: Cholesky factorisation failed: {e:?}")))?;
            let mut out = zeroed_matrix::<$t>(n * n);
            inverse::inverse(
                MatMut::from_column_major_slice_mut(&mut out, n, n),
                MatRef::from_column_major_slice(&a, n, n),
                par,
                MemStack::new(&mut buf),
            );
            symmetrize_from_lower(&mut out, n);
            Ok(out)
        }
    };
}
spd_inverse!(spd_inverse_f32, f32);
spd_inverse!(spd_inverse_f64, f64);

/// `K = XXᵀ + λI` (u×u, f64), built sparsely, one triangle (the factorisation reads the lower
/// one, column-major): column `u` holds `K[v, u]` for `v ≥ u`, a suffix of each item's
/// ascending user list.
fn users_side_gram(data: &Interactions, by_item: &ItemMajor, lambda: f32) -> Vec<f64> {
    let nu = data.n_users();
    let mut k = zeroed_matrix::<f64>(nu * nu);
    k.par_chunks_mut(nu.max(1))
        .enumerate()
        .for_each(|(u, col)| {
            for (&i, &wi) in data
                .user_items(u as u32)
                .iter()
                .zip(data.user_weights(u as u32))
            {
                let (users, weights) = (by_item.users(i as usize), by_item.weights(i as usize));
                let from = users.partition_point(|&v| (v as usize) < u);
                let wi = wi as f64;
                for (&v, &wv) in users[from..].iter().zip(&weights[from..]) {
                    col[v as usize] += wi * wv as f64;
                }
            }
            col[u] += lambda as f64;
        });
    k
}

/// `K`'s condition number below which the Woodbury route inverts it in f32 (see
/// [`single_precision_suffices`]).
const MAX_F32_CONDITION: f64 = 2000.0;

/// Whether `M = K⁻¹` may be computed and applied in f32: whether the Gershgorin bound on the
/// condition number of `K = XXᵀ + λI`, `1 + max_u Σ_v |K_uv| / λ` (the row sums bounded by
/// `Σ_i |x_ui| Σ_v |x_vi|`, O(nnz)), is at most [`MAX_F32_CONDITION`]. `M`'s entries are ~1/λ
/// and cancel in `Z = MX`, so the error of an f32 `M` grows with the condition number: against
/// `B` in f64 on ML-100K (bound 92 at λ 500, 1,830 at λ 25, 9,150 at λ 5) it was 0.3 times
/// the direct route's error at λ 50 and 500, 0.6 times at λ 25, 1.4 times at λ 5 and 2.5 times
/// at λ 1, while with `M` in f64 it is 4–16 times below the direct route's error
/// (`examples/ease_routes.rs accuracy`). Where the bound allows f32 the fit is ~1.5 times
/// faster (ML-100K: 0.072 s vs 0.108 s, medians of 25 alternating runs at load ~4).
fn single_precision_suffices(data: &Interactions, lambda: f32) -> bool {
    let mut col_sums = vec![0f64; data.n_items()];
    for u in 0..data.n_users() as u32 {
        for (&i, &w) in data.user_items(u).iter().zip(data.user_weights(u)) {
            col_sums[i as usize] += w.abs() as f64;
        }
    }
    let row_sum = (0..data.n_users() as u32)
        .map(|u| {
            data.user_items(u)
                .iter()
                .zip(data.user_weights(u))
                .map(|(&i, &w)| w.abs() as f64 * col_sums[i as usize])
                .sum::<f64>()
        })
        .fold(0f64, f64::max);
    1.0 + row_sum / lambda as f64 <= MAX_F32_CONDITION
}

/// The users-side inverse `M = (XXᵀ + λI)⁻¹` (u×u, f64, symmetric) and the column scale
/// `1 / (1 − q_j)`, `q_j = x_jᵀ M x_j` (all ones with a free diagonal: `−λP` off the diagonal
/// is `XᵀMX` itself), for [`woodbury_user_scores`].
fn woodbury_core(
    data: &Interactions,
    by_item: &ItemMajor,
    lambda: f32,
    free_diagonal: bool,
) -> Result<(Vec<f64>, Vec<f32>), Error> {
    let (nu, n) = (data.n_users(), data.n_items());
    let m = spd_inverse_f64(users_side_gram(data, by_item, lambda), nu, inverse_par())?;
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
    Ok((m, woodbury_scale(&q, free_diagonal)?))
}

/// The column scale of `B` from `q_j = x_jᵀ M x_j`: `1 / (1 − q_j)`, or 1 with a free diagonal.
fn woodbury_scale(q: &[f64], free_diagonal: bool) -> Result<Vec<f32>, Error> {
    if let Some(j) = q.iter().position(|q| !(q.is_finite() && *q < 1.0)) {
        return Err(Error::Numerical(format!(
            "ease: non-positive diagonal of the inverse at item {j}"
        )));
    }
    Ok(q.iter()
        .map(|q| {
            if free_diagonal {
                1.0
            } else {
                (1.0 / (1.0 - q)) as f32
            }
        })
        .collect())
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

/// Items per tile of the `XᵀZ` pass: 64 f32 accumulators (eight AVX2 registers); `Z` is laid
/// out by such tiles.
const S_COLS: usize = 64;
/// Rows of `B` per task of the `XᵀZ` pass.
const S_ROWS: usize = 64;
/// Bytes of `Z` per sweep of the `XᵀZ` pass over the rows of `B` (a share of a 32 MB L3 shared
/// with other tenants): ML-100K's 6.3 MB in two sweeps, Last.fm's 118 MB in 30.
const S_GROUP_BYTES: usize = 4 << 20;

/// The Woodbury route (see the module docs); `single`: `M` in f32 (`None`: where
/// [`single_precision_suffices`]).
pub(crate) fn fit_woodbury(
    data: &Interactions,
    lambda: f32,
    free_diagonal: bool,
    single: Option<bool>,
) -> Result<Vec<f32>, Error> {
    let single = single.unwrap_or_else(|| single_precision_suffices(data, lambda));
    fit_woodbury_with(data, lambda, free_diagonal, single, kernels::has_avx2_fma())
}

/// [`fit_woodbury`] with `M` in f32 (`single`) or f64, and with the AVX2 + FMA kernels (`fast`,
/// only where the CPU has them) or the baseline ones.
fn fit_woodbury_with(
    data: &Interactions,
    lambda: f32,
    free_diagonal: bool,
    single: bool,
    fast: bool,
) -> Result<Vec<f32>, Error> {
    #[cfg(not(target_arch = "x86_64"))]
    let _ = fast;
    let (nu, n) = (data.n_users(), data.n_items());
    if n == 0 {
        return Ok(Vec::new());
    }
    let len = n.checked_mul(n).ok_or(Error::TooManyItems {
        algorithm: "ease",
        n_items: n,
        max: 0,
    })?;
    if nu == 0 {
        return Ok(zeroed_matrix::<f32>(len));
    }
    let by_item = data.by_item();
    let k = users_side_gram(data, &by_item, lambda);
    let (z, nu_pad, q) = if single {
        let m = spd_inverse_f32(k.iter().map(|&x| x as f32).collect(), nu, inverse_par())?;
        // 64 f32 accumulators: eight AVX2 registers, as the f64 case's 32.
        z_pass::<f32, 64>(&m, nu, n, &by_item, fast)
    } else {
        let m = spd_inverse_f64(k, nu, inverse_par())?;
        z_pass::<f64, 32>(&m, nu, n, &by_item, fast)
    };
    let scale = woodbury_scale(&q, free_diagonal)?;
    // B = XᵀZ · diag(scale), by groups of tiles of S_COLS columns (a group is read from memory
    // once, then from cache by every row), the rows in parallel.
    let tile_len = nu_pad * S_COLS;
    let group = (S_GROUP_BYTES / (4 * tile_len)).max(1);
    let mut b = zeroed_matrix::<f32>(len);
    for (g, z_group) in z.as_ref().chunks(group * tile_len).enumerate() {
        b.par_chunks_mut(S_ROWS * n)
            .enumerate()
            .for_each(|(t, block)| {
                let rows = S_ROWS * t..S_ROWS * t + block.len() / n;
                for (c, z_tile) in z_group.chunks_exact(tile_len).enumerate() {
                    let c0 = (g * group + c) * S_COLS;
                    let cols = c0..(c0 + S_COLS).min(n);
                    #[cfg(target_arch = "x86_64")]
                    if fast {
                        // SAFETY: `fast` is only true when the CPU has AVX2 and FMA.
                        unsafe { s_tile_avx2(z_tile, &by_item, &scale, rows.clone(), cols, block) };
                        continue;
                    }
                    s_tile::<false>(z_tile, &by_item, &scale, rows.clone(), cols, block);
                }
            });
    }
    Ok(b)
}

/// How faer inverts the users-side matrix: in parallel. At ML-100K's 943 users on 2 cores the
/// whole fit took 0.0645 / 0.0651 s with a parallel inverse vs 0.0675 / 0.0715 s with a
/// sequential one (two sets of 31 alternating runs, `M` in f32, idle machine); at load ~4 the
/// sequential one was as fast with `M` in f32 (0.070 s vs 0.072 s) and faster in f64 (0.089 s vs
/// 0.102 s: faer's parallel kernels wait at barriers for a preempted thread).
fn inverse_par() -> Par {
    Par::rayon(0)
}

/// The element type of `M` in the Z pass, and of its accumulators.
trait Elem: Copy + Default + Send + Sync {
    fn of(w: f32) -> Self;
    /// `self · a + b`, fused where `FUSED`.
    fn mul_add_<const FUSED: bool>(self, a: Self, b: Self) -> Self;
    fn to_f64(self) -> f64;
}

impl Elem for f32 {
    #[inline(always)]
    fn of(w: f32) -> Self {
        w
    }
    #[inline(always)]
    fn mul_add_<const FUSED: bool>(self, a: Self, b: Self) -> Self {
        if FUSED {
            self.mul_add(a, b)
        } else {
            self * a + b
        }
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Elem for f64 {
    #[inline(always)]
    fn of(w: f32) -> Self {
        w as f64
    }
    #[inline(always)]
    fn mul_add_<const FUSED: bool>(self, a: Self, b: Self) -> Self {
        if FUSED {
            self.mul_add(a, b)
        } else {
            self * a + b
        }
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}

/// `Z = MX` (u × n, f32) from the full symmetric `M` (u×u, row-major), laid out by tiles of
/// S_COLS items, each tile contiguous (`nu_pad × S_COLS`, zero past u or n: how the `XᵀZ` pass
/// reads it), with `nu_pad` (u rounded up to R) and `q_j = x_jᵀ M x_j`. Task `t` takes users
/// `tR..tR + R`: `M`'s columns for them are packed into one contiguous tile (u × R, 240 KB at
/// ML-100K, which stays in L2 while the task reads its rows at random).
fn z_pass<T: Elem, const R: usize>(
    m: &[T],
    nu: usize,
    n: usize,
    by_item: &ItemMajor,
    fast: bool,
) -> (AlignedBuf<f32>, usize, Vec<f64>) {
    #[cfg(not(target_arch = "x86_64"))]
    let _ = fast;
    let tiles = nu.div_ceil(R);
    let nu_pad = tiles * R;
    let mut m_tiles = AlignedBuf::<T>::zeroed(nu_pad * nu);
    m_tiles
        .as_mut()
        .par_chunks_mut(R * nu)
        .enumerate()
        .for_each(|(t, tile)| {
            let (r0, width) = (t * R, R.min(nu - t * R));
            for (v, row) in tile.chunks_exact_mut(R).enumerate() {
                row[..width].copy_from_slice(&m[v * nu + r0..v * nu + r0 + width]);
            }
        });
    let mut z = AlignedBuf::<f32>::zeroed(n.div_ceil(S_COLS) * nu_pad * S_COLS);
    let mut pieces: Vec<Vec<&mut [f32]>> = (0..tiles).map(|_| Vec::new()).collect();
    for tile in z.as_mut().chunks_mut(nu_pad * S_COLS) {
        for (t, piece) in tile.chunks_mut(R * S_COLS).enumerate() {
            pieces[t].push(piece);
        }
    }
    let m_tiles = m_tiles.as_ref();
    let q_parts: Vec<Vec<f64>> = pieces
        .into_par_iter()
        .enumerate()
        .map(|(t, mut pieces)| {
            let tile = &m_tiles[t * R * nu..(t + 1) * R * nu];
            let mut q = vec![0f64; n];
            #[cfg(target_arch = "x86_64")]
            if fast {
                // SAFETY: `fast` is only true when the CPU has AVX2 and FMA.
                unsafe { z_tile_avx2::<T, R>(tile, by_item, t * R, &mut pieces, &mut q) };
                return q;
            }
            z_tile::<T, R, false>(tile, by_item, t * R, &mut pieces, &mut q);
            q
        })
        .collect();
    let mut q = vec![0f64; n];
    for part in &q_parts {
        for (a, b) in q.iter_mut().zip(part) {
            *a += b;
        }
    }
    (z, nu_pad, q)
}

/// One task of the Z pass: for users `r0..r0 + R` (`m_tile[v·R + k] = M[v, r0 + k]`) and every
/// item `j`, `Z[r0 + k, j] = Σ_v x_vj M[v, r0 + k]`, accumulated in registers and stored as f32
/// into `pieces[j / S_COLS]` (row `k`, column `j % S_COLS`); and this task's share of
/// `q_j = Σ_v x_vj Z[v, j]` (the users `v` of item `j` among its own), before rounding.
#[inline(always)]
fn z_tile<T: Elem, const R: usize, const FUSED: bool>(
    m_tile: &[T],
    by_item: &ItemMajor,
    r0: usize,
    pieces: &mut [&mut [f32]],
    q: &mut [f64],
) {
    for (j, qj) in q.iter_mut().enumerate() {
        let (users, weights) = (by_item.users(j), by_item.weights(j));
        let mut acc = [T::default(); R];
        for (&v, &w) in users.iter().zip(weights) {
            let w = T::of(w);
            let row: &[T; R] = m_tile[v as usize * R..(v as usize + 1) * R]
                .try_into()
                .expect("a tile row");
            for k in 0..R {
                acc[k] = w.mul_add_::<FUSED>(row[k], acc[k]);
            }
        }
        let (piece, col) = (&mut pieces[j / S_COLS], j % S_COLS);
        for (k, &a) in acc.iter().enumerate() {
            piece[k * S_COLS + col] = a.to_f64() as f32;
        }
        let from = users.partition_point(|&v| (v as usize) < r0);
        *qj = users[from..]
            .iter()
            .zip(&weights[from..])
            .take_while(|(v, _)| (**v as usize) < r0 + R)
            .map(|(&v, &w)| w as f64 * acc[v as usize - r0].to_f64())
            .sum();
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn z_tile_avx2<T: Elem, const R: usize>(
    m_tile: &[T],
    by_item: &ItemMajor,
    r0: usize,
    pieces: &mut [&mut [f32]],
    q: &mut [f64],
) {
    z_tile::<T, R, true>(m_tile, by_item, r0, pieces, q)
}

/// Columns `cols` (one tile of S_COLS or fewer) of rows `rows` of `B` (`block`, row-major):
/// `B[i, j] = (XᵀZ)[i, j] · scale_j`, zero on the diagonal; each row sums its users' segments
/// of the tile of `Z` (`z_tile[u·S_COLS + k] = Z[u, cols.start + k]`) in registers.
#[inline(always)]
fn s_tile<const FUSED: bool>(
    z_tile: &[f32],
    by_item: &ItemMajor,
    scale: &[f32],
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    block: &mut [f32],
) {
    let n = scale.len();
    let scale = &scale[cols.clone()];
    for (i, row) in rows.zip(block.chunks_exact_mut(n)) {
        let mut acc = [0f32; S_COLS];
        for (&u, &w) in by_item.users(i).iter().zip(by_item.weights(i)) {
            let seg: &[f32; S_COLS] = z_tile[u as usize * S_COLS..(u as usize + 1) * S_COLS]
                .try_into()
                .expect("a tile row");
            for k in 0..S_COLS {
                acc[k] = w.mul_add_::<FUSED>(seg[k], acc[k]);
            }
        }
        for ((o, a), s) in row[cols.clone()].iter_mut().zip(acc).zip(scale) {
            *o = a * s;
        }
        if cols.contains(&i) {
            row[i] = 0.0;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn s_tile_avx2(
    z_tile: &[f32],
    by_item: &ItemMajor,
    scale: &[f32],
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    block: &mut [f32],
) {
    s_tile::<true>(z_tile, by_item, scale, rows, cols, block)
}

/// A zeroed buffer whose visible part starts on a 64-byte boundary, so that the kernels'
/// register-wide segments never straddle cache lines.
struct AlignedBuf<T> {
    buf: Vec<T>,
    offset: usize,
    len: usize,
}

impl<T: Copy + Default> AlignedBuf<T> {
    fn zeroed(len: usize) -> Self {
        let size = std::mem::size_of::<T>();
        let buf = zeroed_matrix::<T>(len + 64 / size);
        let offset = (64 - buf.as_ptr() as usize % 64) % 64 / size;
        AlignedBuf { buf, offset, len }
    }

    fn as_ref(&self) -> &[T] {
        &self.buf[self.offset..self.offset + self.len]
    }

    fn as_mut(&mut self) -> &mut [T] {
        &mut self.buf[self.offset..self.offset + self.len]
    }
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
    let mut g = gram_lower(data, None, None::<fn(u64) -> f32>)?;
    for i in 0..n {
        g[i * n + i] += lambda;
    }
    solve_direct(g, n, |_, d| if free_diagonal { -lambda } else { -1.0 / d })
}

/// `n²` as a buffer length, or the error of a catalogue too large to square.
fn square(n: usize) -> Result<usize, Error> {
    n.checked_mul(n).ok_or(Error::TooManyItems {
        algorithm: "ease",
        n_items: n,
        max: 0,
    })
}

/// The Gram matrix `Σ_u w_u · k(|t_i − t_j|) · x_ui x_uj` (user weights `w`, all 1 when
/// `None`; `k` of the two events' time apart, in seconds, 1 when `None`: the timestamps are then
/// not read — reading them cost plain EASE's direct fit on ML-100K ~6 %, `examples/ease_routes.rs`),
/// without the penalty. Symmetric, so
/// row i is column i; only the triangle the factorisation reads is built (column-major lower:
/// entries j >= i of row i), which halves the work: a user's items are sorted, so it is a suffix
/// of each list, starting at `i` itself.
fn gram_lower(
    data: &Interactions,
    user_weights: Option<&[f32]>,
    kernel: Option<impl Fn(u64) -> f32 + Sync>,
) -> Result<Vec<f32>, Error> {
    let n = data.n_items();
    let by_item = data.by_item();
    let mut g = zeroed_matrix::<f32>(square(n)?);
    g.par_chunks_mut(n.max(1)).enumerate().for_each(|(i, row)| {
        for (&u, &wi) in by_item.users(i).iter().zip(by_item.weights(i)) {
            let (items, weights) = (data.user_items(u), data.user_weights(u));
            let from = items.partition_point(|&j| (j as usize) < i);
            let (items, weights) = (&items[from..], &weights[from..]);
            let wui = user_weights.map_or(1.0, |w| w[u as usize]) * wi;
            let Some(kernel) = &kernel else {
                for (&j, &wj) in items.iter().zip(weights) {
                    row[j as usize] += wui * wj;
                }
                continue;
            };
            let times = &data.user_timestamps(u)[from..];
            for ((&j, &wj), &tj) in items.iter().zip(weights).zip(times) {
                row[j as usize] += wui * wj * kernel(times[0].abs_diff(tj));
            }
        }
    });
    Ok(g)
}

/// Co-occurrences closer in time than this many `τ` get the kernel computed; farther ones
/// count `1 − m` (`e^−30` is below f32's resolution next to 1).
const SESSION_CUTOFF: f32 = 30.0;

/// Session weighting's weight of a co-occurrence `dt` seconds apart:
/// `1 − m + m·e^(−dt/τ)` (`inv_tau` = 1/τ).
fn session_kernel(dt: u64, inv_tau: f32, m: f32) -> f32 {
    let x = dt as f32 * inv_tau;
    if x < SESSION_CUTOFF {
        1.0 - m + m * (-x).exp()
    } else {
        1.0 - m
    }
}

/// How much session weighting `(τ, m)` shrinks the off-diagonal mass of the Gram matrix
/// (`Σ_{i≠j} G_τ[i,j] / Σ_{i≠j} (XᵀX)[i,j]`, one user's co-occurrences at a time), so that a
/// penalty tuned without it can be carried over: on ML-100K the best λ moved with it.
pub(crate) fn session_shrink(
    data: &Interactions,
    session_seconds: f32,
    session_weight: f32,
) -> f32 {
    let inv_tau = 1.0 / session_seconds;
    let (num, den) = (0..data.n_users() as u32)
        .into_par_iter()
        .map(|u| {
            let (ws, ts) = (data.user_weights(u), data.user_timestamps(u));
            let (mut num, mut den) = (0f64, 0f64);
            for a in 0..ws.len() {
                for b in a + 1..ws.len() {
                    let co = ws[a] as f64 * ws[b] as f64;
                    let k = session_kernel(ts[a].abs_diff(ts[b]), inv_tau, session_weight);
                    num += co * k as f64;
                    den += co;
                }
            }
            (num, den)
        })
        .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    if den > 0.0 { (num / den) as f32 } else { 1.0 }
}

/// EASE on the session-weighted Gram matrix: the direct route always (with the time kernel the
/// Gram matrix is no longer `X̃ᵀX̃` of a sparse `X̃`, which the Woodbury route needs), the
/// penalty `Λ = λ + p/(1−p)·diag(G)` added to it directly.
fn fit_session(data: &Interactions, p: EaseParams) -> Result<Vec<f32>, Error> {
    let n = data.n_items();
    if n == 0 {
        return Ok(Vec::new());
    }
    let w = user_weights(data, p.user_norm);
    let (m, inv_tau) = (p.session_weight, 1.0 / p.session_seconds);
    let kernel = |dt| session_kernel(dt, inv_tau, m);
    let mut g = gram_lower(data, Some(&w), Some(kernel))?;
    let emphasis = p.dropout / (1.0 - p.dropout);
    let penalty: Vec<f32> = (0..n).map(|i| p.lambda + emphasis * g[i * n + i]).collect();
    for (i, l) in penalty.iter().enumerate() {
        g[i * n + i] += l;
    }
    let free_diagonal = p.free_diagonal;
    solve_direct(
        g,
        n,
        |j, d| {
            if free_diagonal { -penalty[j] } else { -1.0 / d }
        },
    )
}

/// `B` from the penalised Gram matrix `g` (n×n, column-major, lower triangle read): Cholesky
/// `G = LLᵀ`, `L⁻¹`, `P = L⁻ᵀL⁻¹`, then `B[i, j] = scale(j, P[j, j])·P[i, j]` off the
/// diagonal, zero on it (row-major; `P` is symmetric).
fn solve_direct(
    mut g: Vec<f32>,
    n: usize,
    scale: impl Fn(usize, f32) -> f32,
) -> Result<Vec<f32>, Error> {
    let len = g.len();
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
    let mut linv = zeroed_matrix::<f32>(len);
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
    let scale: Vec<f32> = diag.iter().enumerate().map(|(j, &d)| scale(j, d)).collect();
    // Column i of the symmetric P, scaled, is row i of B.
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
fn zeroed_matrix<T: Copy + Default>(len: usize) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(len);
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = v.as_mut_ptr() as usize;
        let end = start + len * std::mem::size_of::<T>();
        let (from, to) = ((start + PAGE - 1) & !(PAGE - 1), end & !(PAGE - 1));
        if to > from && to - from >= 4 << 20 {
            // SAFETY: [from, to) is page-aligned and inside the allocation just made; the advice
            // only changes how the kernel backs those pages (a failure is harmless).
            unsafe {
                libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
            }
        }
    }
    v.resize(len, T::default());
    v
}

/// Copies the lower triangle of a column-major n×n matrix onto its upper triangle, tile by tile
/// so both the reads and the writes stay in cache.
fn symmetrize_from_lower<T: Copy>(p: &mut [T], n: usize) {
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
                // Sessions of a few minutes, days apart.
                let ts = rng.below(20) as i64 * 86_400 + rng.below(600) as i64;
                t.push((u, i, 0.5 + rng.next_f32(), ts));
            }
        }
        Interactions::from_triples(nu as usize, ni as usize + 3, t)
    }

    #[test]
    fn woodbury_equals_direct() {
        for free in [false, true] {
            // Partial and whole tiles of users (32) and items (64), no users, one user.
            for (nu, ni) in [(30, 200), (200, 30), (1, 5), (64, 125), (97, 300), (0, 4)] {
                let d = random(nu, ni, 8, nu as u64);
                let a = fit_direct(&d, 3.0, free).unwrap();
                let max = a.iter().fold(0f32, |m, x| m.max(x.abs()));
                // `M` in f32 and f64; both kernel builds (AVX2 + FMA where the CPU has it, and
                // the baseline one).
                for (single, fast) in [
                    (true, kernels::has_avx2_fma()),
                    (false, kernels::has_avx2_fma()),
                    (true, false),
                    (false, false),
                ] {
                    let b = fit_woodbury_with(&d, 3.0, free, single, fast).unwrap();
                    assert_eq!(a.len(), b.len());
                    let err = a
                        .iter()
                        .zip(&b)
                        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                    assert!(err <= 1e-4 * max.max(1e-3), "{nu}×{ni}: {err} vs max {max}");
                }
            }
        }
    }

    /// Against `B` in f64 the Woodbury route with `M` in f64 is at least as exact as the direct
    /// route (all f32), down to a small λ where `M`'s entries are ~1/λ and cancel in `MX`; with
    /// `M` in f32 where [`single_precision_suffices`] allows, so is the route `fit` takes.
    #[test]
    fn woodbury_is_as_exact_as_direct() {
        let d = random(60, 150, 12, 3);
        for lambda in [300.0, 3.0, 0.3, 0.003] {
            let p = EaseParams::plain(lambda);
            let want = normalised_by_definition(&d, p);
            let max = want.iter().fold(0f64, |m, x| m.max(x.abs()));
            let n = d.n_items();
            let err = |b: Vec<f32>| max_off_diagonal_err(&b, &want, n);
            let direct = err(fit_direct(&d, lambda, false).unwrap());
            let f64_ = err(fit_woodbury(&d, lambda, false, Some(false)).unwrap());
            let chosen = err(fit_woodbury(&d, lambda, false, None).unwrap());
            let floor = 1e-6 * max;
            assert!(f64_ <= direct.max(floor), "λ {lambda}: {f64_} vs {direct}");
            assert!(
                chosen <= direct.max(floor),
                "λ {lambda}: {chosen} vs {direct}"
            );
        }
        // The bound is 1 + g/λ, with g (a bound on XXᵀ's row sums) between 6 and 600 here.
        assert!(single_precision_suffices(&d, 0.3));
        assert!(!single_precision_suffices(&d, 0.003));
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
        let b = fit_woodbury(&d, 3.0, false, None).unwrap();
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

    /// `Σ_u n_u^−β x_u x_uᵀ ⊙ K_u` in f64, n×n (see [`normalised_by_definition`]).
    fn gram_by_definition(d: &Interactions, p: EaseParams) -> Vec<f64> {
        let n = d.n_items();
        let mut g = vec![0f64; n * n];
        for u in 0..d.n_users() as u32 {
            let w = (d.user_items(u).len().max(1) as f64).powf(-p.user_norm as f64);
            let (items, xs, ts) = (d.user_items(u), d.user_weights(u), d.user_timestamps(u));
            for ((&i, &xi), &ti) in items.iter().zip(xs).zip(ts) {
                for ((&j, &xj), &tj) in items.iter().zip(xs).zip(ts) {
                    let k = if p.is_session() {
                        let m = p.session_weight as f64;
                        let x = (ti - tj).abs() as f64 / p.session_seconds as f64;
                        1.0 - m + m * (-x).exp()
                    } else {
                        1.0
                    };
                    g[i as usize * n + j as usize] += w * xi as f64 * xj as f64 * k;
                }
            }
        }
        g
    }

    /// `B` of normalised EASE computed from its definition in f64: `G = Σ_u n_u^−β x_u x_uᵀ ⊙
    /// K_u + Λ` (`K_u[i,j] = 1 − m + m·e^(−|t_i − t_j|/τ)`, all ones without session weighting),
    /// `Λ_i = λ + p/(1−p)·G_ii`, `P = G⁻¹` (Gauss–Jordan), `B = −P/diag(P)`, zero diagonal
    /// (free diagonal: `B = I − PΛ`, compared off the diagonal only).
    fn normalised_by_definition(d: &Interactions, p: EaseParams) -> Vec<f64> {
        let n = d.n_items();
        let mut g = gram_by_definition(d, p);
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

    /// Both diagonal constraints, on data with more items than users and the other way round.
    fn diagonals_and_shapes() -> impl Iterator<Item = (bool, (u32, u32))> {
        [false, true]
            .into_iter()
            .flat_map(|f| [(f, (30, 120)), (f, (150, 25))])
    }

    #[test]
    fn normalised_ease_matches_its_definition() {
        for (free_diagonal, (nu, ni)) in diagonals_and_shapes() {
            let p = EaseParams {
                lambda: 2.0,
                dropout: 0.4,
                user_norm: 0.5,
                free_diagonal,
                session_seconds: 0.0,
                session_weight: 0.0,
            };
            let d = random(nu, ni, 8, 11 + nu as u64);
            let want = normalised_by_definition(&d, p);
            let max = want.iter().fold(0f64, |m, x| m.max(x.abs()));
            // Both shapes, both routes, and the one `fit` picks.
            for got in [
                fit(&d, p).unwrap(),
                fit_by(&d, p, false).unwrap(),
                fit_by(&d, p, true).unwrap(),
            ] {
                let err = max_off_diagonal_err(&got, &want, d.n_items());
                assert!(
                    err <= 1e-4 * max,
                    "{nu}×{ni} free {free_diagonal}: {err} vs max {max}"
                );
            }
            // And it is not plain EASE at the same λ.
            let plain = fit(&d, EaseParams::plain(2.0)).unwrap();
            let diff = max_off_diagonal_err(&plain, &want, d.n_items());
            assert!(
                diff > 0.05 * max,
                "{nu}×{ni}: normalisation changed nothing"
            );
        }
    }

    #[test]
    fn session_weighted_ease_matches_its_definition() {
        for (free_diagonal, (nu, ni)) in diagonals_and_shapes() {
            let p = EaseParams {
                lambda: 2.0,
                dropout: 0.3,
                user_norm: 0.25,
                free_diagonal,
                session_seconds: 120.0,
                session_weight: 0.7,
            };
            let d = random(nu, ni, 8, 17 + nu as u64);
            let want = normalised_by_definition(&d, p);
            let max = want.iter().fold(0f64, |m, x| m.max(x.abs()));
            let got = fit(&d, p).unwrap();
            let err = max_off_diagonal_err(&got, &want, d.n_items());
            assert!(err <= 1e-4 * max, "{nu}×{ni}: {err} vs max {max}");
            // Timestamps matter: without them (or with m = 0) it is normalised EASE.
            let unweighted = EaseParams {
                session_weight: 0.0,
                ..p
            };
            let diff =
                max_off_diagonal_err(&got, &normalised_by_definition(&d, unweighted), d.n_items());
            assert!(
                diff > 0.05 * max,
                "{nu}×{ni}: session weighting changed nothing"
            );
            let timeless = Interactions::from_triples(
                0,
                d.n_items(),
                d.iter().map(|(u, i, w, _)| (u, i, w, 0)),
            );
            let err = max_off_diagonal_err(
                &fit(&timeless, p).unwrap(),
                &normalised_by_definition(&timeless, unweighted),
                d.n_items(),
            );
            assert!(err <= 1e-4 * max, "{nu}×{ni} without timestamps: {err}");
        }
    }

    #[test]
    fn session_shrink_is_the_off_diagonal_mass_ratio() {
        let d = random(30, 60, 8, 3);
        let p = EaseParams {
            session_seconds: 300.0,
            session_weight: 0.6,
            ..EaseParams::plain(1.0)
        };
        let off = |g: &[f64]| -> f64 {
            let n = d.n_items();
            (0..n * n).filter(|k| k / n != k % n).map(|k| g[k]).sum()
        };
        let want =
            off(&gram_by_definition(&d, p)) / off(&gram_by_definition(&d, EaseParams::plain(1.0)));
        let got = session_shrink(&d, 300.0, 0.6) as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        assert!(got > 0.4 && got < 1.0);
    }

    #[test]
    fn normalised_woodbury_user_scores_are_b_scaled_per_user() {
        for free_diagonal in [false, true] {
            woodbury_user_scores_are_b_scaled_per_user(EaseParams {
                lambda: 2.0,
                dropout: 0.5,
                user_norm: 0.25,
                free_diagonal,
                session_seconds: 0.0,
                session_weight: 0.0,
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
