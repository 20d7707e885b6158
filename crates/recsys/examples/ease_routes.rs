//! EASE's two routes side by side, to calibrate `ease::prefers_woodbury` and check the
//! Woodbury route's precision choice.
//!
//! `cargo run --release -p marquee-recsys --example ease_routes -- [repeats] [case]`: median
//! fit times (seconds, wall) of the direct (n×n) and Woodbury (u×u) routes at λ 100 on the
//! protocol-B train splits of ML-100K, ml-latest-small and Last.fm 2K and on subsets and a
//! transpose of them, alternating the routes, with the route `train()` picks.
//!
//! `... --example ease_routes -- accuracy`: the largest off-diagonal error of `B` on ML-100K
//! against `B` computed in f64, relative to its largest entry, for the direct route and the
//! Woodbury route with its inverse in f32 and in f64, at several λ.

use std::path::Path;
use std::time::Instant;

use faer::linalg::solvers::DenseSolveCore;
use recsys::Interactions;
use recsys::bench_internals as bi;
use recsys::data::{self, Format};
use recsys::eval::{self, EvalOptions};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The first `users` users and `items` items of `d` (transposed if `swap`).
fn subset(d: &Interactions, users: u32, items: u32, swap: bool) -> Interactions {
    let t: Vec<_> = d
        .iter()
        .filter(|&(u, i, _, _)| u < users && i < items)
        .map(|(u, i, x, ts)| if swap { (i, u, x, ts) } else { (u, i, x, ts) })
        .collect();
    let (nu, ni) = (
        (users as usize).min(d.n_users()),
        (items as usize).min(d.n_items()),
    );
    if swap {
        Interactions::from_triples(ni, nu, t)
    } else {
        Interactions::from_triples(nu, ni, t)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = Path::new("/work/shared/data");
    let train =
        |path: &str, format, threshold| -> Result<Interactions, Box<dyn std::error::Error>> {
            let ratings = data::load(&root.join(path), format)?;
            Ok(eval::split(&ratings, &EvalOptions::user_holdout(threshold))?.train)
        };
    let ml = train("ml-100k/u.data", Format::Movielens100k, None)?;
    if args.first().map(String::as_str) == Some("accuracy") {
        return accuracy(&ml);
    }
    let repeats: usize = args.first().map_or(Ok(5), |s| s.parse())?;
    let only = args.get(1);
    let fm = train(
        "hetrec2011-lastfm-2k/user_artists.dat",
        Format::Triples,
        None,
    )?;
    let cases: Vec<(&str, Interactions)> = vec![
        ("ml-100k", ml.clone()),
        ("ml-100k transposed", subset(&ml, u32::MAX, u32::MAX, true)),
        ("ml-100k, 500 users", subset(&ml, 500, u32::MAX, false)),
        ("ml-100k, 700 items", subset(&ml, u32::MAX, 700, false)),
        ("ml-100k, 1000 items", subset(&ml, u32::MAX, 1000, false)),
        ("ml-100k, 1200 items", subset(&ml, u32::MAX, 1200, false)),
        (
            "ml-latest-small",
            train(
                "ml-latest-small/ratings.csv",
                Format::MovielensCsv,
                Some(4.0),
            )?,
        ),
        ("lastfm, 4000 items", subset(&fm, u32::MAX, 4000, false)),
        (
            "lastfm, 1000 users, 3000 items",
            subset(&fm, 1000, 3000, false),
        ),
        ("lastfm", fm),
    ];
    for (name, d) in cases
        .iter()
        .filter(|(name, _)| only.is_none_or(|o| o == name))
    {
        // The direct route takes ~35 s at Last.fm's 15k items: not timed there.
        let direct = d.n_items() <= 8000;
        let (mut td, mut tw) = (Vec::new(), Vec::new());
        for _ in 0..if direct { repeats } else { 1 } {
            if direct {
                let start = Instant::now();
                std::hint::black_box(bi::ease_direct(d, 100.0)?);
                td.push(start.elapsed().as_secs_f64());
            }
            let start = Instant::now();
            std::hint::black_box(bi::ease_woodbury(d, 100.0, None)?);
            tw.push(start.elapsed().as_secs_f64());
        }
        println!(
            "{name:32} {:5} users {:5} items {:6} nnz  direct {:.4} s  woodbury {:.4} s  train() takes {}",
            d.n_users(),
            d.n_items(),
            d.nnz(),
            median(td),
            median(tw),
            if bi::ease_uses_woodbury(d) {
                "woodbury"
            } else {
                "direct"
            }
        );
    }
    Ok(())
}

fn accuracy(d: &Interactions) -> Result<(), Box<dyn std::error::Error>> {
    let n = d.n_items();
    for lambda in [500.0f32, 50.0, 25.0, 5.0, 1.0] {
        let mut g = faer::Mat::<f64>::zeros(n, n);
        for u in 0..d.n_users() as u32 {
            let (items, weights) = (d.user_items(u), d.user_weights(u));
            for (&i, &wi) in items.iter().zip(weights) {
                for (&j, &wj) in items.iter().zip(weights) {
                    g[(i as usize, j as usize)] += wi as f64 * wj as f64;
                }
            }
        }
        for i in 0..n {
            g[(i, i)] += lambda as f64;
        }
        let p = g
            .llt(faer::Side::Lower)
            .map_err(|e| format!("{e:?}"))?
            .inverse();
        let max = (0..n)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .filter(|(i, j)| i != j)
            .fold(0f64, |m, (i, j)| m.max((p[(i, j)] / p[(j, j)]).abs()));
        let err = |b: Vec<f32>| {
            let mut e = 0f64;
            for i in 0..n {
                for j in (0..n).filter(|&j| j != i) {
                    e = e.max((b[i * n + j] as f64 + p[(i, j)] / p[(j, j)]).abs());
                }
            }
            e / max
        };
        let chosen =
            bi::ease_woodbury(d, lambda, None)? == bi::ease_woodbury(d, lambda, Some(true))?;
        println!(
            "ML-100K λ {lambda}: direct {:.1e}  Woodbury, inverse in f32 {:.1e}, in f64 {:.1e} (train() uses {})",
            err(bi::ease_direct(d, lambda)?),
            err(bi::ease_woodbury(d, lambda, Some(true))?),
            err(bi::ease_woodbury(d, lambda, Some(false))?),
            if chosen { "f32" } else { "f64" },
        );
    }
    Ok(())
}
