//! EASE: the closed-form item-item linear autoencoder (Steck, WWW 2019).
//!
//! `G = XᵀX + λI` is built sparsely (rayon over rows of G, Σ_u n_u² work); `P = G⁻¹` via a
//! Cholesky factorisation `G = LLᵀ` (G is symmetric positive definite for λ > 0, so LU would be
//! wasted work and less stable), `L⁻¹` by triangular inversion, and `P = L⁻ᵀL⁻¹` as a triangular
//! product — about n³ flops in all, in f32, with faer's rayon parallelism. Peak memory is two n×n
//! f32 matrices; the model keeps one, `B` row-major, so scoring a history sums contiguous rows.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{self, LltRegularization};
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::linalg::triangular_inverse::invert_lower_triangular;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

use crate::{Error, Interactions};

/// Returns `B` row-major (n×n), zero diagonal.
pub(crate) fn fit(data: &Interactions, lambda: f32) -> Result<Vec<f32>, Error> {
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
    // Gram matrix; symmetric, so row-major == column-major.
    let mut g = vec![0f32; len];
    g.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        for (&u, &wi) in by_item.users(i).iter().zip(by_item.weights(i)) {
            for (&j, &wj) in data.user_items(u).iter().zip(data.user_weights(u)) {
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
    let mut linv = vec![0f32; len];
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
    let scale: Vec<f32> = diag.iter().map(|d| -1.0 / d).collect();
    // B[i, j] = -P[i, j] / P[j, j]: column i of the symmetric P, scaled, is row i of B.
    p.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        for (x, s) in row.iter_mut().zip(&scale) {
            *x *= s;
        }
        row[i] = 0.0;
    });
    Ok(p)
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
