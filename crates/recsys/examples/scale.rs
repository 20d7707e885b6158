//! Scale check: a synthetic catalogue of the size the issue asks for (default 1M users × 100k
//! items × 20M interactions), trained in release, for `bench/scale.sh` to measure under
//! `/usr/bin/time -v` (wall time and peak RSS).
//!
//! `cargo run --release -p marquee-recsys --example scale -- <mode> [users items interactions]`
//!
//! * `ials` (default): `train` iALS, 64 factors, λ 50, α 10, `ITERATIONS` (env, default 15)
//!   iterations: the whole `train()` (popularity, cosine neighbours for `similar_items`, iALS);
//! * `default`: `train(AlgorithmConfig::default_for(data))`;
//! * `auto`: `auto_select_report` (seed 7), then prints the report; no final fit.
//! * `gen`: generation and `Interactions::from_triples` only (the baseline memory).
//! * `tsv`: the generated interactions on stdout as `user<TAB>item<TAB>1<TAB>timestamp` lines
//!   (ids `u…` and `i…`), for `marquee import interactions` (`bench/large.sh`); the summary goes
//!   to stderr.
//!
//! Data (deterministic, SplitMix-style generator, seed `SEED`, default 1): item popularity is
//! Zipf-like, `P(item of rank r) ∝ 1 / (r + 10)^0.9` (a power law with a softened head, so the
//! top item is not in every history); user activity is Pareto-like (shape 2, the mean set so the
//! draws total `interactions`, at least 1, at most 5000 per user). Duplicate (user, item) draws
//! are merged by `from_triples`, so `nnz` comes out a little below `interactions`. Items are
//! shuffled so popularity is not correlated with the index.

use std::time::Instant;

use recsys::bench_internals::SplitMix64 as Rng;
use recsys::{AlgorithmConfig, Interactions, auto_select_report, train};

fn generate(n_users: usize, n_items: usize, target: usize, seed: u64) -> Interactions {
    let mut rng = Rng::new(seed);
    // Item popularity: cumulative Zipf-like weights over ranks, ranks mapped to shuffled ids.
    let mut cdf = Vec::with_capacity(n_items);
    let mut total = 0f64;
    for r in 0..n_items {
        total += 1.0 / ((r + 10) as f64).powf(0.9);
        cdf.push(total);
    }
    let mut id_of_rank: Vec<u32> = (0..n_items as u32).collect();
    for i in (1..n_items).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        id_of_rank.swap(i, j);
    }
    // User activity: Pareto(shape 2), scale set for the target total.
    let raw: Vec<f64> = (0..n_users)
        .map(|_| (1.0 / rng.next_f64_open().sqrt()).min(5000.0))
        .collect();
    let scale = target as f64 / raw.iter().sum::<f64>();
    let t0: i64 = 1_700_000_000;
    let mut triples = Vec::with_capacity(target + n_users);
    for (u, r) in raw.iter().enumerate() {
        let n = ((r * scale).round() as usize).clamp(1, 5000);
        for _ in 0..n {
            let x = rng.next_f64_open() * total;
            let rank = cdf.partition_point(|&c| c < x).min(n_items - 1);
            let ts = t0 + (rng.next_u64() % (365 * 86_400)) as i64;
            triples.push((u as u32, id_of_rank[rank], 1.0f32, ts));
        }
    }
    Interactions::from_triples(n_users, n_items, triples)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("ials", String::as_str);
    let num = |i: usize, default: usize| -> Result<usize, Box<dyn std::error::Error>> {
        Ok(args.get(i).map_or(Ok(default), |s| s.parse())?)
    };
    let (n_users, n_items, target) = (num(1, 1_000_000)?, num(2, 100_000)?, num(3, 20_000_000)?);
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let seed = env("SEED", 1);
    let iterations = env("ITERATIONS", 15) as usize;

    let start = Instant::now();
    let data = generate(n_users, n_items, target, seed);
    let top = {
        let mut deg = vec![0u32; data.n_items()];
        for (_, i, _, _) in data.iter() {
            deg[i as usize] += 1;
        }
        deg.sort_unstable_by(|a, b| b.cmp(a));
        (deg[0], deg[deg.len() / 100], deg[deg.len() / 2])
    };
    let max_user = (0..data.n_users() as u32)
        .map(|u| data.user_items(u).len())
        .max()
        .unwrap_or(0);
    eprintln!(
        "generated {} users × {} items, {} interactions in {:.1}s; item degree max {} / p99 {} / \
         median {}; max user history {max_user}",
        data.n_users(),
        data.n_items(),
        data.nnz(),
        start.elapsed().as_secs_f64(),
        top.0,
        top.1,
        top.2,
    );
    let start = Instant::now();
    match mode {
        "gen" => {}
        "tsv" => {
            use std::io::Write;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for (u, i, _, ts) in data.iter() {
                writeln!(out, "u{u}\ti{i}\t1\t{ts}")?;
            }
            out.flush()?;
        }
        "ials" | "default" => {
            let config = if mode == "ials" {
                AlgorithmConfig::Ials {
                    factors: 64,
                    regularization: 50.0,
                    alpha: 10.0,
                    iterations,
                    seed: 42,
                }
            } else {
                AlgorithmConfig::default_for(&data)
            };
            let model = train(&config, &data)?;
            println!(
                "train {} in {:.1}s; model {:.0} MiB",
                serde_json::to_string(&config)?,
                start.elapsed().as_secs_f64(),
                model.memory_bytes() as f64 / (1 << 20) as f64
            );
            let history = data.user_history(0);
            let t = Instant::now();
            let mut scores = Vec::new();
            model.score_history(&history, &mut scores);
            let recs = recsys::top_k(&scores, 10, |i| !history.iter().any(|h| h.0 == i));
            println!(
                "one request ({} history items): {:.2} ms, top item {:?}; similar_items(0): {:?}",
                history.len(),
                t.elapsed().as_secs_f64() * 1e3,
                recs.first(),
                model.similar_items(0, 3)
            );
        }
        "auto" => {
            let selection = auto_select_report(&data, 7);
            println!(
                "auto_select in {:.1}s: best {}",
                start.elapsed().as_secs_f64(),
                serde_json::to_string(&selection.best)?
            );
            for c in &selection.candidates {
                println!(
                    "  {:>7} {:6.1}s {}",
                    c.ndcg.map_or("failed".into(), |n| format!("{n:.4}")),
                    c.train_seconds,
                    serde_json::to_string(&c.config)?
                );
            }
        }
        other => {
            return Err(
                format!("unknown mode {other}; use ials, default, auto, gen or tsv").into(),
            );
        }
    }
    Ok(())
}
