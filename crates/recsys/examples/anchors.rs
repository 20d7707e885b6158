//! Reproduces the ANCHORS.md quality and speed rows.
//!
//! `cargo run --release -p marquee-recsys --example anchors -- <dataset> <config-json>...`
//! where dataset is `ml-100k` (protocol A), `ml-latest-small` (protocol B, ≥ 4) or `lastfm`
//! (protocol B, all), e.g. `'{"algorithm":"ease","lambda":500}'`. With no config, runs
//! `auto_select` on the training split and evaluates its choice.

use std::path::Path;
use std::time::Instant;

use recsys::data::{self, Format};
use recsys::eval::{self, EvalOptions};
use recsys::{AlgorithmConfig, auto_select_report, train};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = Path::new("/work/shared/data");
    let dataset = args.first().map_or("ml-100k", String::as_str);
    let (path, format, options) = match dataset {
        "ml-100k" => (
            root.join("ml-100k/u.data"),
            Format::Movielens100k,
            EvalOptions::item_stratified(),
        ),
        "ml-latest-small" => (
            root.join("ml-latest-small/ratings.csv"),
            Format::MovielensCsv,
            EvalOptions::user_holdout(Some(4.0)),
        ),
        "lastfm" => (
            root.join("hetrec2011-lastfm-2k/user_artists.dat"),
            Format::Triples,
            EvalOptions::user_holdout(None),
        ),
        other => return Err(format!("unknown dataset {other}").into()),
    };
    let mut options = options;
    if let Ok(seed) = std::env::var("SEED") {
        options.seed = seed.parse()?;
    }
    let ratings = data::load(&path, format)?;
    let split = eval::split(&ratings, &options)?;
    println!(
        "{dataset}: train {} users × {} items, {} interactions; {} test pairs",
        split.train.n_users(),
        split.train.n_items(),
        split.train.nnz(),
        split.n_test()
    );
    let mut configs: Vec<AlgorithmConfig> = args[1.min(args.len())..]
        .iter()
        .map(|s| serde_json::from_str(s))
        .collect::<Result<_, _>>()?;
    if configs.is_empty() {
        let start = Instant::now();
        let auto_seed = std::env::var("AUTO_SEED").map_or(Ok(7), |s| s.parse())?;
        let selection = auto_select_report(&split.train, auto_seed);
        println!(
            "auto_select ({:.2}s): {}",
            start.elapsed().as_secs_f64(),
            serde_json::to_string(&selection)?
        );
        configs.push(selection.best);
    }
    for config in configs {
        let start = Instant::now();
        let model = train(&config, &split.train)?;
        let fit = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let m = eval::evaluate(&model, &split, options.k);
        println!(
            "{} fit {fit:.3}s eval {:.3}s {}",
            serde_json::to_string(&config)?,
            start.elapsed().as_secs_f64(),
            serde_json::to_string(&m)?
        );
    }
    Ok(())
}
