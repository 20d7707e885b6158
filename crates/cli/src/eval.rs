//! `marquee eval`: offline evaluation on a ratings file. Scripts depend on this interface:
//! only the JSON (with `--json`) goes to stdout, progress to stderr, and bad input exits with
//! code 2 before anything is printed on stdout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, ValueEnum};
use recsys::AlgorithmConfig;
use recsys::data::{self, Format};
use recsys::eval::{self, EvalOptions, Protocol};
use serde_json::json;

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    /// MovieLens 100K `u.data` (tab-separated, no header).
    #[value(name = "movielens-100k")]
    Movielens100k,
    /// MovieLens `ratings.csv` (userId,movieId,rating,timestamp).
    #[value(name = "movielens-csv")]
    MovielensCsv,
    /// Whitespace- or tab-separated `user item value [timestamp]`, optional header.
    Triples,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProtocolArg {
    /// Per item, a fraction of its interactions to test (default 0.25).
    #[value(name = "item-stratified")]
    ItemStratified,
    /// Per user, a fraction of their positives to test (default 0.2).
    #[value(name = "user-holdout")]
    UserHoldout,
}

#[derive(Args)]
pub struct EvalArgs {
    /// Ratings file.
    #[arg(long)]
    ratings: PathBuf,
    #[arg(long, value_enum)]
    format: FormatArg,
    #[arg(long, value_enum)]
    protocol: ProtocolArg,
    /// Fraction held out for test (default: 0.25 item-stratified, 0.2 user-holdout).
    #[arg(long)]
    test_fraction: Option<f64>,
    /// Keep only interactions with value >= T (default: keep all).
    #[arg(long, value_name = "T")]
    positive_threshold: Option<f32>,
    /// popularity, item-knn, ease, ials, auto (tuned on a validation split of the training part),
    /// or a JSON configuration such as '{"algorithm":"ease","lambda":500}'.
    #[arg(long, default_value = "auto")]
    model: String,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Print one JSON object on stdout (otherwise a readable summary).
    #[arg(long)]
    json: bool,
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    if args.k == 0 {
        return Ok(fail("--k must be at least 1"));
    }
    if let Some(f) = args.test_fraction
        && !(f > 0.0 && f < 1.0)
    {
        return Ok(fail("--test-fraction must be between 0 and 1"));
    }
    let format = match args.format {
        FormatArg::Movielens100k => Format::Movielens100k,
        FormatArg::MovielensCsv => Format::MovielensCsv,
        FormatArg::Triples => Format::Triples,
    };
    let protocol = match args.protocol {
        ProtocolArg::ItemStratified => Protocol::ItemStratified,
        ProtocolArg::UserHoldout => Protocol::UserHoldout,
    };
    let ratings = match data::load(&args.ratings, format) {
        Ok(r) => r,
        Err(e) => return Ok(fail(e)),
    };
    eprintln!(
        "loaded {} interactions ({} users, {} items)",
        ratings.triples.len(),
        ratings.users.len(),
        ratings.items.len()
    );
    let options = EvalOptions {
        protocol,
        test_fraction: args.test_fraction,
        positive_threshold: args.positive_threshold,
        seed: args.seed,
        k: args.k,
    };
    let split = match eval::split(&ratings, &options) {
        Ok(s) => s,
        Err(e) => return Ok(fail(e)),
    };
    let started = Instant::now();
    let config = match args.model.as_str() {
        "auto" => {
            eprintln!("choosing the algorithm on a validation split of the training part…");
            recsys::auto_select(&split.train, args.seed)
        }
        "popularity" | "item-knn" | "ease" | "ials" => {
            let default = AlgorithmConfig::default_for(&split.train);
            match args.model.as_str() {
                "popularity" => AlgorithmConfig::Popularity {
                    half_life_days: recsys::DEFAULT_POPULARITY_HALF_LIFE_DAYS,
                },
                "item-knn" => AlgorithmConfig::ItemKnn {
                    neighbors: 100,
                    shrinkage: 10.0,
                },
                "ease" => match default {
                    c @ AlgorithmConfig::Ease { .. } => c,
                    _ => AlgorithmConfig::ease(500.0),
                },
                _ => AlgorithmConfig::Ials {
                    factors: 64,
                    regularization: 1.0,
                    alpha: 10.0,
                    iterations: 15,
                    seed: args.seed,
                },
            }
        }
        json_text if json_text.trim_start().starts_with('{') => {
            match serde_json::from_str(json_text) {
                Ok(c) => c,
                Err(e) => return Ok(fail(format!("--model is not a valid configuration: {e}"))),
            }
        }
        other => {
            return Ok(fail(format!(
                "unknown --model {other:?}; use popularity, item-knn, ease, ials, auto or a JSON configuration"
            )));
        }
    };
    eprintln!("training {}…", serde_json::to_string(&config)?);
    let model = match recsys::train(&config, &split.train) {
        Ok(m) => m,
        Err(e) => return Ok(fail(e)),
    };
    let train_seconds = started.elapsed().as_secs_f64();
    let metrics = eval::evaluate(&model, &split, args.k);
    let k = args.k;
    let report = json!({
        "model": config,
        "protocol": match protocol { Protocol::ItemStratified => "item-stratified", Protocol::UserHoldout => "user-holdout" },
        "users": split.train.n_users(),
        "items": split.train.n_items(),
        "train_interactions": split.train.nnz(),
        "test_interactions": split.n_test(),
        "test_users": metrics.test_users,
        format!("ndcg@{k}"): metrics.ndcg,
        format!("precision@{k}"): metrics.precision,
        format!("recall@{k}"): metrics.recall,
        "recall@20": metrics.recall_at_20,
        "train_seconds": train_seconds,
    });
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(ExitCode::SUCCESS)
}
