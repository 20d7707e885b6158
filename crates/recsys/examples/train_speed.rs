//! Marquee's side of `bench/train_speed.sh`: EASE and iALS fit times and nDCG@10 on the
//! protocol-B split of a dataset, as one JSON line, plus the split itself written out so the
//! Python side (numpy EASE, `implicit` ALS) trains and scores on exactly the same data.
//!
//! `cargo run --release -p marquee-recsys --example train_speed -- <ml-100k|ml-latest-small|lastfm>
//! <out-dir> [ease-lambda]`. Writes `<out-dir>/train.tsv` and `<out-dir>/test.tsv`
//! (`user \t item`, dense split indices).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use recsys::bench_internals;
use recsys::data::{self, Format};
use recsys::eval::{self, EvalOptions};
use recsys::{AlgorithmConfig, train};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dataset = args.first().map_or("ml-100k", String::as_str);
    let out_dir = PathBuf::from(args.get(1).map_or("bench/.work", String::as_str));
    let root = Path::new("/work/shared/data");
    let (path, format, threshold, lambda) = match dataset {
        "ml-100k" => (
            root.join("ml-100k/u.data"),
            Format::Movielens100k,
            None,
            500.0,
        ),
        "ml-latest-small" => (
            root.join("ml-latest-small/ratings.csv"),
            Format::MovielensCsv,
            Some(4.0),
            200.0,
        ),
        "lastfm" => (
            root.join("hetrec2011-lastfm-2k/user_artists.dat"),
            Format::Triples,
            None,
            50.0,
        ),
        other => return Err(format!("unknown dataset {other}").into()),
    };
    let lambda: f32 = args.get(2).map_or(Ok(lambda), |s| s.parse())?;
    let options = EvalOptions::user_holdout(threshold);
    let split = eval::split(&data::load(&path, format)?, &options)?;
    std::fs::create_dir_all(&out_dir)?;
    let mut train_file = BufWriter::new(std::fs::File::create(out_dir.join("train.tsv"))?);
    for (u, i, _, _) in split.train.iter() {
        writeln!(train_file, "{u}\t{i}")?;
    }
    train_file.flush()?;
    let mut test_file = BufWriter::new(std::fs::File::create(out_dir.join("test.tsv"))?);
    for (u, items) in split.test.iter().enumerate() {
        for i in items {
            writeln!(test_file, "{u}\t{i}")?;
        }
    }
    test_file.flush()?;

    // Every time is the median of `REPEATS` (env, default 3) runs, as on the Python side; a fit
    // that took over 10 s is not repeated.
    let repeats: usize = std::env::var("REPEATS").map_or(Ok(3), |s| s.parse())?;
    let timed = |config: &AlgorithmConfig| -> Result<(f64, f64), recsys::Error> {
        let (seconds, model) = median_time(repeats, || train(config, &split.train))?;
        Ok((seconds, eval::evaluate(&model, &split, 10).ndcg))
    };
    let (ease_s, ease_ndcg) = timed(&AlgorithmConfig::ease(lambda))?;
    // The fit alone, by the route `train()` takes (no popularity vector or similar-items index),
    // and by the direct (n×n) route whatever the shape, for reference.
    let (ease_fit_s, _) = median_time(repeats, || bench_internals::ease_fit(&split.train, lambda))?;
    let (ease_direct_s, _) = median_time(repeats, || {
        bench_internals::ease_direct(&split.train, lambda)
    })?;
    // The same loss as `implicit` at α 10: its confidence on an observed pair is α·r = 10,
    // Marquee's 1 + α·r.
    let ials = AlgorithmConfig::Ials {
        factors: 64,
        regularization: 50.0,
        alpha: 9.0,
        iterations: 15,
        seed: 42,
    };
    let (ials_s, ials_ndcg) = timed(&ials)?;
    // `train` also builds the popularity vector and cosine neighbours every model carries
    // (for `similar_items`); timed on its own so the algorithm's share is visible.
    let (popularity_s, _) = timed(&AlgorithmConfig::Popularity {
        half_life_days: 0.0,
    })?;
    println!(
        "{}",
        serde_json::json!({
            "dataset": dataset,
            "users": split.train.n_users(),
            "items": split.train.n_items(),
            "train_nnz": split.train.nnz(),
            "test_pairs": split.n_test(),
            "threads": rayon::current_num_threads(),
            "repeats": repeats.max(1),
            "ease_lambda": lambda,
            "ease_route": if bench_internals::ease_uses_woodbury(&split.train) { "woodbury" } else { "direct" },
            "ease_train_s": ease_s,
            "ease_fit_s": ease_fit_s,
            "ease_direct_fit_s": ease_direct_s,
            "ease_ndcg": ease_ndcg,
            "ials_config": ials,
            "ials_train_s": ials_s,
            "ials_ndcg": ials_ndcg,
            "common_train_s": popularity_s,
        })
    );
    Ok(())
}

/// Runs `run` `repeats` times (at least once; only once when the first run took over 10 s) and
/// returns the median time in seconds with the last run's result.
fn median_time<T, E>(repeats: usize, mut run: impl FnMut() -> Result<T, E>) -> Result<(f64, T), E> {
    let mut times = Vec::new();
    let mut last;
    loop {
        let start = Instant::now();
        last = run()?;
        times.push(start.elapsed().as_secs_f64());
        if times.len() >= repeats || times[0] > 10.0 {
            break;
        }
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], last))
}
