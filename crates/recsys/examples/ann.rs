//! The approximate top-k index (`recsys::ann`, HNSW) against the exact scan it replaces:
//! recall@10 of its lists against the exact lists, time per query of each, build time and
//! memory (issue 8, "large catalogue").
//!
//! `cargo run --release -p marquee-recsys --example ann -- <dataset> [users items interactions]`
//!
//! * `synthetic` (default 200000 users × 100000 items × 4000000 interactions): power-law item
//!   popularity and Pareto user activity as in `scale.rs`, plus taste: items belong to one of
//!   200 groups, each user to one group, and 70 % of a user's interactions are drawn from their
//!   group (by popularity within it), the rest from the whole catalogue. Without such structure
//!   every user's best items are the popular ones, and any index finds them.
//! * `ml-latest-small`, `lastfm`: the real datasets (all ratings / plays as implicit feedback);
//!   small catalogues (9.7k / 17.6k items), where the server keeps the exact scan, but real
//!   factors.
//!
//! iALS with 64 factors (`ITERATIONS`, default 10). Queries: `QUERIES` (default 1000) users
//! drawn at random, each asking for 10 items it has not interacted with, one at a time on one
//! thread. Per `ef` (candidates searched): recall@10 and p50/p99 ms per query of the index's
//! search plus exact rescoring; the last row is the serving path itself,
//! `Model::top_k_for_history` with its default `ef`, against the exact scan (fold-in included
//! in both).

use std::path::Path;
use std::time::Instant;

use recsys::ann::{EF_SEARCH, FactorIndex};
use recsys::bench_internals::{SplitMix64 as Rng, factor_scores, ials_parts, user_vector};
use recsys::data::{self, Format};
use recsys::{AlgorithmConfig, Interactions, top_k, train};

const GROUPS: usize = 200;
const IN_GROUP: f64 = 0.7;

/// Zipf-like cumulative weights over `n` ranks.
fn zipf_cdf(n: usize) -> Vec<f64> {
    let mut total = 0f64;
    (0..n)
        .map(|r| {
            total += 1.0 / ((r + 10) as f64).powf(0.9);
            total
        })
        .collect()
}

fn draw(rng: &mut Rng, cdf: &[f64]) -> usize {
    let x = rng.next_f64_open() * cdf[cdf.len() - 1];
    cdf.partition_point(|&c| c < x).min(cdf.len() - 1)
}

fn synthetic(n_users: usize, n_items: usize, target: usize, seed: u64) -> Interactions {
    let mut rng = Rng::new(seed);
    let mut id_of_rank: Vec<u32> = (0..n_items as u32).collect();
    for i in (1..n_items).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        id_of_rank.swap(i, j);
    }
    // Each group's items, most popular first (ranks ascend).
    let mut groups: Vec<Vec<u32>> = vec![Vec::new(); GROUPS];
    for &item in &id_of_rank {
        groups[(rng.next_u64() % GROUPS as u64) as usize].push(item);
    }
    let global = zipf_cdf(n_items);
    let group_cdfs: Vec<Vec<f64>> = groups.iter().map(|g| zipf_cdf(g.len().max(1))).collect();
    let raw: Vec<f64> = (0..n_users)
        .map(|_| (1.0 / rng.next_f64_open().sqrt()).min(5000.0))
        .collect();
    let scale = target as f64 / raw.iter().sum::<f64>();
    let mut triples = Vec::with_capacity(target + n_users);
    for (u, r) in raw.iter().enumerate() {
        let group = (rng.next_u64() % GROUPS as u64) as usize;
        let n = ((r * scale).round() as usize).clamp(1, 5000);
        for _ in 0..n {
            let item = if rng.next_f64_open() <= IN_GROUP && !groups[group].is_empty() {
                groups[group][draw(&mut rng, &group_cdfs[group])]
            } else {
                id_of_rank[draw(&mut rng, &global)]
            };
            triples.push((u as u32, item, 1.0f32, 1_700_000_000 + u as i64));
        }
    }
    Interactions::from_triples(n_users, n_items, triples)
}

/// Every rating or play as one implicit interaction.
fn implicit(r: data::Ratings) -> Interactions {
    let triples = r.triples.iter().map(|&(u, i, _, t)| (u, i, 1.0, t));
    Interactions::from_triples(r.users.len(), r.items.len(), triples)
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |pages| pages * 4096.0 / (1 << 20) as f64)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    (percentile(&ms, 0.5), percentile(&ms, 0.99))
}

fn recall(exact: &[Vec<u32>], approx: &[Vec<u32>]) -> f64 {
    let (mut found, mut total) = (0usize, 0usize);
    for (e, a) in exact.iter().zip(approx) {
        found += a.iter().filter(|i| e.contains(i)).count();
        total += e.len();
    }
    found as f64 / total.max(1) as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dataset = args.first().map_or("synthetic", String::as_str);
    let num = |i: usize, default: usize| -> Result<usize, Box<dyn std::error::Error>> {
        Ok(args.get(i).map_or(Ok(default), |s| s.parse())?)
    };
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let root = Path::new("/work/shared/data");
    let data = match dataset {
        "synthetic" => synthetic(num(1, 200_000)?, num(2, 100_000)?, num(3, 4_000_000)?, 1),
        "ml-latest-small" => implicit(data::load(
            &root.join("ml-latest-small/ratings.csv"),
            Format::MovielensCsv,
        )?),
        "lastfm" => implicit(data::load(
            &root.join("hetrec2011-lastfm-2k/user_artists.dat"),
            Format::Triples,
        )?),
        other => return Err(format!("unknown dataset {other}").into()),
    };
    let k = 10;
    let queries = env("QUERIES", 1000);
    let config = AlgorithmConfig::Ials {
        factors: 64,
        regularization: 50.0,
        alpha: 10.0,
        iterations: env("ITERATIONS", 10),
        seed: 42,
    };
    let start = Instant::now();
    let model = train(&config, &data)?;
    println!(
        "{dataset}: {} users × {} items, {} interactions; iALS trained in {:.1}s",
        data.n_users(),
        data.n_items(),
        data.nnz(),
        start.elapsed().as_secs_f64()
    );

    // The queries: users drawn at random, with their histories.
    let mut rng = Rng::new(9);
    let histories: Vec<Vec<(u32, f32)>> = (0..queries)
        .map(|_| data.user_history((rng.next_u64() % data.n_users() as u64) as u32))
        .filter(|h| !h.is_empty())
        .collect();
    let unseen = |h: &[(u32, f32)]| {
        let mut seen: Vec<u32> = h.iter().map(|x| x.0).collect();
        seen.sort_unstable();
        move |i: u32| seen.binary_search(&i).is_err()
    };

    // Exact: the serving path before an index exists (fold-in, scan, top-k).
    let mut exact = Vec::new();
    let mut exact_ms = Vec::new();
    for h in &histories {
        let t = Instant::now();
        let list = model.top_k_for_history(h, k, unseen(h));
        exact_ms.push(t.elapsed().as_secs_f64() * 1e3);
        exact.push(list.into_iter().map(|x| x.0).collect::<Vec<_>>());
    }

    let (factors, f) = ials_parts(&model).ok_or("not a factor model")?;
    let before = rss_mib();
    let t = Instant::now();
    let index = FactorIndex::build(factors, f);
    let build_s = t.elapsed().as_secs_f64();
    println!(
        "index of {} items built in {build_s:.1}s (rayon, {} threads); RSS +{:.0} MiB",
        index.len(),
        rayon::current_num_threads(),
        rss_mib() - before
    );
    let users: Vec<Vec<f32>> = histories.iter().map(|h| user_vector(&model, h)).collect();
    // The exact scan alone (no fold-in), for the per-ef rows.
    let mut scan_ms = Vec::new();
    let mut scores = vec![0f32; data.n_items()];
    for (u, h) in users.iter().zip(&histories) {
        let t = Instant::now();
        factor_scores(factors, f, u, &mut scores);
        let list = top_k(&scores, k, unseen(h));
        scan_ms.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(list);
    }
    let (scan_p50, scan_p99) = summary(scan_ms);
    println!("\n| path | ef | recall@10 | p50 ms | p99 ms | × exact p50 |");
    println!("|---|---|---|---|---|---|");
    println!("| exact scan + top-10 | – | 1.000 | {scan_p50:.3} | {scan_p99:.3} | 1.00 |");
    for ef in [32, 64, 128, 256] {
        let mut approx = Vec::new();
        let mut ms = Vec::new();
        for (u, h) in users.iter().zip(&histories) {
            let keep = unseen(h);
            let t = Instant::now();
            let mut found: Vec<(u32, f32)> = index
                .search(u, k, ef, &keep)
                .into_iter()
                .map(|i| {
                    let mut s = [0f32];
                    factor_scores(&factors[i as usize * f..(i as usize + 1) * f], f, u, &mut s);
                    (i, s[0])
                })
                .collect();
            found.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            approx.push(found.into_iter().map(|x| x.0).collect::<Vec<_>>());
        }
        let (p50, p99) = summary(ms);
        println!(
            "| HNSW search + rescoring | {ef} | {:.3} | {p50:.3} | {p99:.3} | {:.3} |",
            recall(&exact, &approx),
            p50 / scan_p50
        );
    }

    // The serving path with the model's own index (built again inside the model).
    model.build_index(1);
    let mut served = Vec::new();
    let mut served_ms = Vec::new();
    for h in &histories {
        let t = Instant::now();
        let list = model.top_k_for_history(h, k, unseen(h));
        served_ms.push(t.elapsed().as_secs_f64() * 1e3);
        served.push(list.into_iter().map(|x| x.0).collect::<Vec<_>>());
    }
    let (e50, e99) = summary(exact_ms);
    let (s50, s99) = summary(served_ms);
    println!(
        "\nserving path (`Model::top_k_for_history`, fold-in included): exact p50 {e50:.3} / p99 \
         {e99:.3} ms; with the index (ef {EF_SEARCH}) p50 {s50:.3} / p99 {s99:.3} ms ({:.1}× \
         faster at p50), recall@10 {:.3}",
        e50 / s50,
        recall(&exact, &served)
    );
    Ok(())
}
