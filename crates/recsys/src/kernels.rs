//! The scan at the heart of serving a factor model: one user vector against every item's
//! factors. It is memory-bound (the item matrix is streamed once per request), so the only
//! goals are to read each byte once, at full width, and to keep the arithmetic out of the way.
//!
//! The crate is built for the baseline x86-64 target (SSE2), which would halve the vector
//! width; the kernels are compiled a second time with AVX2 and FMA enabled and picked at run
//! time when the CPU has them — the same code, so both give the same answers up to rounding.

/// `out[j] = item_factors[j·f .. (j+1)·f] · user` for every item `j`
/// (`item_factors` row-major, `out.len()` items; extra rows or outputs are left alone).
pub fn scores(item_factors: &[f32], f: usize, user: &[f32], out: &mut [f32]) {
    if f == 0 {
        out.fill(0.0);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        unsafe { scores_avx2(item_factors, f, user, out) };
        return;
    }
    scores_generic::<false>(item_factors, f, user, out);
}

/// Whether this CPU runs the AVX2 + FMA builds of the numeric kernels (this scan, iALS's row
/// solver).
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scores_avx2(item_factors: &[f32], f: usize, user: &[f32], out: &mut [f32]) {
    scores_generic::<true>(item_factors, f, user, out);
}

fn scores_generic<const FUSED: bool>(
    item_factors: &[f32],
    f: usize,
    user: &[f32],
    out: &mut [f32],
) {
    let user = &user[..f.min(user.len())];
    for (o, row) in out.iter_mut().zip(item_factors.chunks_exact(f)) {
        *o = dot::<FUSED>(row, user);
    }
}

/// Dot product with eight independent accumulators: a plain `.sum()` is a strict sequential
/// float reduction that the compiler may not vectorise. `FUSED` uses fused multiply-adds, which
/// only pays where the caller is compiled with FMA (elsewhere it would call a slow libm `fmaf`).
#[inline(always)]
pub(crate) fn dot<const FUSED: bool>(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] = if FUSED {
                x[k].mul_add(y[k], acc[k])
            } else {
                acc[k] + x[k] * y[k]
            };
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_match_a_plain_dot_product() {
        let f = 13; // not a multiple of 8: the tail counts
        let items = 37;
        let factors: Vec<f32> = (0..items * f)
            .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let user: Vec<f32> = (0..f).map(|i| (i as f32 - 6.0) / 4.0).collect();
        let mut out = vec![f32::NAN; items];
        scores(&factors, f, &user, &mut out);
        for j in 0..items {
            let want: f32 = factors[j * f..(j + 1) * f]
                .iter()
                .zip(&user)
                .map(|(a, b)| a * b)
                .sum();
            assert!(
                (out[j] - want).abs() < 1e-4,
                "item {j}: {} vs {want}",
                out[j]
            );
        }
        let mut generic = vec![0f32; items];
        scores_generic::<false>(&factors, f, &user, &mut generic);
        for (a, b) in out.iter().zip(&generic) {
            assert!((a - b).abs() < 1e-5);
        }
    }
}
