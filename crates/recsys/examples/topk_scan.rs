//! The brute-force top-k path of a factor model against the memory-bandwidth bound of scanning
//! its item matrix, measured in the same run (issue 8, "large catalogue").
//!
//! `cargo run --release -p marquee-recsys --example topk_scan -- [items] [factors] [queries]`
//! (defaults 100000 64 400).
//!
//! * **bound**: one thread summing a buffer of exactly the item matrix's size (same cache
//!   behaviour as the scan: whatever part of it the caches hold, they hold for both), and a
//!   1 GiB buffer (main memory), each best of 5 passes after a warm-up. A request is served on
//!   one thread, so one thread's bandwidth is its bound.
//! * **scan**: per query, `out[j] = item_j · user` over all items (the serving kernel,
//!   `bench_internals::factor_scores`) then the bounded-heap `top_k(10)` skipping 50 "seen"
//!   items; p50/p99 per query and the bytes of the matrix per second at the median.
//!
//! Item factors are random with power-law norms (a few items score high for everybody, as
//! popular items do in a trained model); users are random unit-scale vectors.

use std::hint::black_box;
use std::time::Instant;

use recsys::bench_internals::{SplitMix64 as Rng, factor_scores};
use recsys::top_k;

/// Sum of a buffer, eight lanes of eight accumulators, AVX2 where the CPU has it: reads every
/// byte once at full width, as the scan does, with no other work.
fn sum(buffer: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            #[target_feature(enable = "avx2")]
            unsafe fn sum_avx2(b: &[f32]) -> f32 {
                sum_generic(b)
            }
            // SAFETY: AVX2 checked above.
            return unsafe { sum_avx2(buffer) };
        }
    }
    sum_generic(buffer)
}

#[inline(always)]
fn sum_generic(b: &[f32]) -> f32 {
    let mut acc = [0f32; 64];
    let chunks = b.chunks_exact(64);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for k in 0..64 {
            acc[k] += c[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Best-of-5 single-thread read bandwidth over `buffer`, in GB/s.
fn bandwidth(buffer: &[f32]) -> f64 {
    black_box(sum(buffer));
    let bytes = std::mem::size_of_val(buffer) as f64;
    let mut best = f64::MAX;
    let reps = (2e9 / bytes).ceil().max(1.0) as usize; // ~2 GB read per pass
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..reps {
            black_box(sum(black_box(buffer)));
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    bytes / best / 1e9
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers: items factors queries"))
        .collect();
    let items = args.first().copied().unwrap_or(100_000);
    let f = args.get(1).copied().unwrap_or(64);
    let queries = args.get(2).copied().unwrap_or(400);
    let mut rng = Rng::new(1);

    let mut factors = vec![0f32; items * f];
    for (j, row) in factors.chunks_exact_mut(f).enumerate() {
        let norm = 1.0 / ((j % 9973) as f32 + 10.0).powf(0.3);
        for v in row {
            *v = (rng.next_f32() * 2.0 - 1.0) * norm;
        }
    }
    let matrix_bytes = (items * f * 4) as f64;

    let same_size = vec![1f32; items * f];
    let bound = bandwidth(&same_size);
    drop(same_size);
    let dram = bandwidth(&vec![1f32; 1 << 28]);

    let mut out = vec![0f32; items];
    let mut times = Vec::with_capacity(queries);
    let mut scan_only = Vec::with_capacity(queries);
    for q in 0..queries + 20 {
        let user: Vec<f32> = (0..f).map(|_| rng.next_f32() * 2.0 - 1.0).collect();
        let seen: Vec<u32> = (0..50)
            .map(|_| (rng.next_u64() % items as u64) as u32)
            .collect();
        let t = Instant::now();
        factor_scores(&factors, f, &user, &mut out);
        let scanned = t.elapsed().as_secs_f64();
        let best = top_k(&out, 10, |i| !seen.contains(&i));
        let total = t.elapsed().as_secs_f64();
        black_box(best);
        if q >= 20 {
            times.push(total);
            scan_only.push(scanned);
        }
    }
    times.sort_by(f64::total_cmp);
    scan_only.sort_by(f64::total_cmp);
    let p50 = percentile(&times, 0.5);
    let achieved = matrix_bytes / p50 / 1e9;
    let scan_achieved = matrix_bytes / percentile(&scan_only, 0.5) / 1e9;
    println!(
        "{{\"items\": {items}, \"factors\": {f}, \"matrix_mb\": {:.1}, \"bound_same_size_gbps\": {bound:.2}, \"bound_dram_gbps\": {dram:.2}, \"query_p50_ms\": {:.3}, \"query_p99_ms\": {:.3}, \"query_gbps\": {achieved:.2}, \"scores_only_gbps\": {scan_achieved:.2}, \"of_bound\": {:.3}, \"of_dram\": {:.3}}}",
        matrix_bytes / 1e6,
        p50 * 1e3,
        percentile(&times, 0.99) * 1e3,
        achieved / bound,
        achieved / dram,
    );
}
