//! Contract tests of the public API on synthetic data.

mod common;

use common::{Rng, random_interactions};
use recsys::{
    AlgorithmConfig, BlendMember, Error, Interactions, Model, TrainOptions, top_k, train,
};

fn all_configs() -> Vec<AlgorithmConfig> {
    vec![
        AlgorithmConfig::Popularity {
            half_life_days: 30.0,
        },
        AlgorithmConfig::ItemKnn {
            neighbors: 20,
            shrinkage: 5.0,
        },
        AlgorithmConfig::ease(10.0),
        AlgorithmConfig::Ease {
            lambda: 5.0,
            dropout: 0.5,
            user_norm: 0.25,
            free_diagonal: false,
            session_seconds: 0.0,
            session_weight: 0.0,
        },
        AlgorithmConfig::Ease {
            lambda: 5.0,
            dropout: 0.5,
            user_norm: 0.0,
            free_diagonal: true,
            session_seconds: 0.0,
            session_weight: 0.0,
        },
        AlgorithmConfig::Ease {
            lambda: 5.0,
            dropout: 0.0,
            user_norm: 0.25,
            free_diagonal: false,
            session_seconds: 600.0,
            session_weight: 0.6,
        },
        AlgorithmConfig::Ials {
            factors: 8,
            regularization: 1.0,
            alpha: 5.0,
            iterations: 5,
            seed: 1,
        },
        AlgorithmConfig::Rp3Beta {
            alpha: 1.0,
            beta: 0.5,
            neighbors: 20,
        },
        AlgorithmConfig::Blend {
            members: vec![
                BlendMember {
                    weight: 0.6,
                    config: AlgorithmConfig::ease(10.0),
                },
                BlendMember {
                    weight: 0.4,
                    config: AlgorithmConfig::Ials {
                        factors: 8,
                        regularization: 1.0,
                        alpha: 5.0,
                        iterations: 5,
                        seed: 1,
                    },
                },
            ],
        },
    ]
}

#[test]
fn top_k_matches_full_sort() {
    let mut rng = Rng(7);
    for round in 0..200 {
        let n = rng.below(300) as usize;
        // Few distinct values so ties are common; some NaNs.
        let scores: Vec<f32> = (0..n)
            .map(|_| match rng.below(20) {
                0 => f32::NAN,
                x => (x % 7) as f32 - 3.0,
            })
            .collect();
        let k = rng.below(40) as usize;
        let modulus = 1 + rng.below(4) as u32;
        let keep = |i: u32| !i.is_multiple_of(modulus) || modulus == 1;
        let mut expected: Vec<(u32, f32)> = scores
            .iter()
            .enumerate()
            .filter(|(i, s)| !s.is_nan() && keep(*i as u32))
            .map(|(i, &s)| (i as u32, s))
            .collect();
        expected.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
        expected.truncate(k);
        assert_eq!(top_k(&scores, k, keep), expected, "round {round}");
    }
}

#[test]
fn from_triples_merges_duplicates_and_grows() {
    let d = Interactions::from_triples(
        1,
        2,
        [
            (0, 1, 2.0, 10),
            (0, 1, 5.0, 5),
            (0, 0, 1.0, 1),
            (2, 3, f32::NAN, 0),
            (2, 4, 1.0, 0),
        ],
    );
    assert_eq!((d.n_users(), d.n_items(), d.nnz()), (3, 5, 3));
    assert_eq!(d.user_items(0), &[0, 1]);
    assert_eq!(d.user_weights(0), &[1.0, 5.0]);
    assert_eq!(d.user_timestamps(0), &[1, 10]);
    assert!(d.user_items(1).is_empty() && d.user_items(99).is_empty());
}

/// Reference EASE in f64 with Gauss–Jordan: B = I − P/diag(P), P = (XᵀX + λI)⁻¹.
fn reference_ease(d: &Interactions, lambda: f64) -> Vec<Vec<f64>> {
    let n = d.n_items();
    let mut g = vec![vec![0f64; 2 * n]; n];
    for u in 0..d.n_users() as u32 {
        for (&i, &wi) in d.user_items(u).iter().zip(d.user_weights(u)) {
            for (&j, &wj) in d.user_items(u).iter().zip(d.user_weights(u)) {
                g[i as usize][j as usize] += (wi * wj) as f64;
            }
        }
    }
    for (i, row) in g.iter_mut().enumerate() {
        row[i] += lambda;
        row[n + i] = 1.0;
    }
    for c in 0..n {
        let p = g[c][c];
        g[c].iter_mut().for_each(|x| *x /= p);
        for r in 0..n {
            if r != c {
                let f = g[r][c];
                let pivot = g[c].clone();
                g[r].iter_mut().zip(&pivot).for_each(|(x, y)| *x -= f * y);
            }
        }
    }
    (0..n)
        .map(|i| {
            (0..n)
                .map(|j| {
                    if i == j {
                        0.0
                    } else {
                        -g[i][n + j] / g[j][n + j]
                    }
                })
                .collect()
        })
        .collect()
}

#[test]
fn ease_matches_reference_and_unseen_user_equals_trained_user() {
    let d = random_interactions(3, 40, 30, 8);
    let model = train(&AlgorithmConfig::ease(5.0), &d).unwrap();
    let b = reference_ease(&d, 5.0);
    let mut out = Vec::new();
    for u in 0..d.n_users() as u32 {
        let h = d.user_history(u);
        model.score_history(&h, &mut out);
        assert_eq!(out.len(), 30);
        for j in 0..30 {
            let expected: f64 = h.iter().map(|&(i, w)| w as f64 * b[i as usize][j]).sum();
            assert!((out[j] as f64 - expected).abs() < 1e-4, "user {u} item {j}");
        }
    }
    assert_unseen_equals_trained(&model, &d);
}

#[test]
fn item_knn_matches_reference_and_unseen_user_equals_trained_user() {
    let d = random_interactions(4, 50, 25, 6);
    let (neighbors, shrinkage) = (5, 2.0);
    let model = train(
        &AlgorithmConfig::ItemKnn {
            neighbors,
            shrinkage,
        },
        &d,
    )
    .unwrap();
    // Reference: cosine on binary co-occurrence, top `neighbors` per row.
    let n = d.n_items();
    let mut co = vec![vec![0f32; n]; n];
    for u in 0..d.n_users() as u32 {
        for &i in d.user_items(u) {
            for &j in d.user_items(u) {
                co[i as usize][j as usize] += 1.0;
            }
        }
    }
    let sim: Vec<Vec<f32>> = (0..n)
        .map(|i| {
            let row: Vec<f32> = (0..n)
                .map(|j| {
                    if i == j || co[i][j] == 0.0 {
                        0.0
                    } else {
                        co[i][j] / ((co[i][i] * co[j][j]).sqrt() + shrinkage)
                    }
                })
                .collect();
            let kept = top_k(&row, neighbors, |j| row[j as usize] > 0.0);
            let mut sparse = vec![0f32; n];
            kept.into_iter().for_each(|(j, s)| sparse[j as usize] = s);
            sparse
        })
        .collect();
    let mut out = Vec::new();
    for u in 0..d.n_users() as u32 {
        let h = d.user_history(u);
        model.score_history(&h, &mut out);
        for j in 0..n {
            let expected: f32 = h.iter().map(|&(i, w)| w * sim[i as usize][j]).sum();
            assert!((out[j] - expected).abs() < 1e-5, "user {u} item {j}");
        }
    }
    assert_unseen_equals_trained(&model, &d);
}

/// A user absent from training, with user 0's history in another order plus an unknown item,
/// gets exactly user 0's scores.
fn assert_unseen_equals_trained(model: &Model, d: &Interactions) {
    let trained = d.user_history(0);
    let mut unseen: Vec<(u32, f32)> = trained.iter().rev().copied().collect();
    unseen.push((d.n_items() as u32 + 7, 1.0));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    model.score_history(&trained, &mut a);
    model.score_history(&unseen, &mut b);
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-5 * x.abs().max(1.0));
    }
}

#[test]
fn ials_fold_in_ranks_history_neighbours_and_explains() {
    let d = random_interactions(5, 200, 60, 10);
    let config = AlgorithmConfig::Ials {
        factors: 16,
        regularization: 1.0,
        alpha: 10.0,
        iterations: 10,
        seed: 3,
    };
    let model = train(&config, &d).unwrap();
    let h = d.user_history(1);
    let mut out = Vec::new();
    model.score_history(&h, &mut out);
    assert_eq!(out.len(), 60);
    assert!(out.iter().all(|s| s.is_finite()));
    // The explanation terms add up to the score.
    let item = top_k(&out, 1, |_| true)[0].0;
    let why = model.explain(&h, item, h.len());
    assert!(!why.is_empty());
    assert!(why.windows(2).all(|w| w[0].1 >= w[1].1));
    // Same seed, same model.
    let again = train(&config, &d).unwrap();
    let mut out2 = Vec::new();
    again.score_history(&h, &mut out2);
    assert_eq!(out, out2);
    assert!(model.memory_bytes() >= 60 * 16 * 4);
}

#[test]
fn empty_history_is_popularity_and_popularity_decays() {
    let t = [(0, 0, 1.0, 0), (1, 0, 1.0, 0), (2, 1, 1.0, 86_400 * 100)];
    let d = Interactions::from_triples(3, 3, t);
    for config in all_configs() {
        let model = train(&config, &d).unwrap();
        let mut out = Vec::new();
        model.score_history(&[], &mut out);
        assert_eq!(out, model.popularity(), "{config:?}");
        model.score_history(&[(99, 1.0)], &mut out);
        assert_eq!(out, model.popularity(), "{config:?}");
    }
    let plain = train(
        &AlgorithmConfig::Popularity {
            half_life_days: 0.0,
        },
        &d,
    )
    .unwrap();
    assert_eq!(plain.popularity(), &[2.0, 1.0, 0.0]);
    // Two interactions 100 days before the newest one, half-life 50 days: 2 × ¼ < 1.
    let decayed = train(
        &AlgorithmConfig::Popularity {
            half_life_days: 50.0,
        },
        &d,
    )
    .unwrap();
    let p = decayed.popularity();
    assert!(
        (p[0] - 0.5).abs() < 1e-5 && (p[1] - 1.0).abs() < 1e-6,
        "{p:?}"
    );
}

#[test]
fn degenerate_data_trains_without_panic() {
    let cases = [
        Interactions::from_triples(0, 0, []),
        Interactions::from_triples(5, 0, []),
        Interactions::from_triples(0, 5, []),
        Interactions::from_triples(1, 1, [(0, 0, 1.0, 0)]),
        Interactions::from_triples(3, 1, [(0, 0, 1.0, 0), (2, 0, 1.0, 0)]),
        Interactions::from_triples(1, 4, [(0, 0, 1.0, 0), (0, 3, 2.0, 0)]),
        Interactions::from_triples(2, 3, [(0, 0, 0.0, 0), (1, 2, -1.0, 0)]),
        Interactions::from_triples(2, 2, [(0, 0, 1.0, i64::MIN), (1, 1, 1.0, i64::MAX)]),
    ];
    for d in &cases {
        let default = AlgorithmConfig::default_for(d);
        for config in all_configs().into_iter().chain([default]) {
            let model = train(&config, d).unwrap_or_else(|e| panic!("{config:?} on {d:?}: {e}"));
            let mut out = Vec::new();
            model.score_history(&[(0, 1.0)], &mut out);
            assert_eq!(out.len(), d.n_items());
            assert!(out.iter().all(|s| s.is_finite()), "{config:?} {out:?}");
            assert!(model.similar_items(0, 5).len() <= d.n_items().saturating_sub(1));
            assert!(model.similar_items(1000, 5).is_empty());
            assert!(model.explain(&[(0, 1.0)], 1000, 3).is_empty());
            let _ = model.explain(&[(0, 1.0), (1, 1.0)], 0, 3);
        }
    }
}

#[test]
fn invalid_configs_and_size_limits_are_errors() {
    let d = random_interactions(1, 10, 20, 3);
    for bad in [
        AlgorithmConfig::ease(0.0),
        AlgorithmConfig::ease(f32::NAN),
        AlgorithmConfig::Ease {
            lambda: 1.0,
            dropout: 1.0,
            user_norm: 0.0,
            free_diagonal: false,
            session_seconds: 0.0,
            session_weight: 0.0,
        },
        AlgorithmConfig::Ease {
            lambda: 1.0,
            dropout: 0.0,
            user_norm: -0.5,
            free_diagonal: false,
            session_seconds: 0.0,
            session_weight: 0.0,
        },
        AlgorithmConfig::Ease {
            lambda: 1.0,
            dropout: 0.0,
            user_norm: 0.0,
            free_diagonal: false,
            session_seconds: 60.0,
            session_weight: 1.5,
        },
        AlgorithmConfig::Ease {
            lambda: 1.0,
            dropout: 0.0,
            user_norm: 0.0,
            free_diagonal: false,
            session_seconds: 0.0,
            session_weight: 0.5,
        },
        AlgorithmConfig::ItemKnn {
            neighbors: 0,
            shrinkage: 1.0,
        },
        AlgorithmConfig::Ials {
            factors: 0,
            regularization: 1.0,
            alpha: 1.0,
            iterations: 1,
            seed: 0,
        },
    ] {
        assert!(
            matches!(train(&bad, &d), Err(Error::InvalidConfig(_))),
            "{bad:?}"
        );
    }
    let options = TrainOptions {
        max_dense_items: 10,
        ..TrainOptions::default()
    };
    let r = recsys::train_with_options(&AlgorithmConfig::ease(1.0), &d, &options);
    assert!(matches!(
        r,
        Err(Error::TooManyItems {
            n_items: 20,
            max: 10,
            ..
        })
    ));
}

#[test]
fn config_json_shape() {
    let c: AlgorithmConfig = serde_json::from_str(r#"{"algorithm":"ease","lambda":500}"#).unwrap();
    assert_eq!(c, AlgorithmConfig::ease(500.0));
    // Plain EASE keeps its one-field form; the normalisations appear only when set.
    assert_eq!(
        serde_json::to_string(&c).unwrap(),
        r#"{"algorithm":"ease","lambda":500.0}"#
    );
    let normalised: AlgorithmConfig =
        serde_json::from_str(r#"{"algorithm":"ease","lambda":100,"dropout":0.5,"user_norm":0.25}"#)
            .unwrap();
    assert_eq!(
        normalised,
        AlgorithmConfig::Ease {
            lambda: 100.0,
            dropout: 0.5,
            user_norm: 0.25,
            free_diagonal: false,
            session_seconds: 0.0,
            session_weight: 0.0,
        }
    );
    let dlae: AlgorithmConfig =
        serde_json::from_str(r#"{"algorithm":"ease","lambda":100,"free_diagonal":true}"#).unwrap();
    assert_eq!(
        serde_json::to_string(&dlae).unwrap(),
        r#"{"algorithm":"ease","lambda":100.0,"free_diagonal":true}"#
    );
    let session: AlgorithmConfig = serde_json::from_str(
        r#"{"algorithm":"ease","lambda":100,"session_seconds":120,"session_weight":0.5}"#,
    )
    .unwrap();
    assert_eq!(
        serde_json::to_string(&session).unwrap(),
        r#"{"algorithm":"ease","lambda":100.0,"session_seconds":120.0,"session_weight":0.5}"#
    );
    for c in all_configs() {
        let s = serde_json::to_string(&c).unwrap();
        assert!(
            s.starts_with(&format!(r#"{{"algorithm":"{}""#, c.name())),
            "{s}"
        );
        assert_eq!(serde_json::from_str::<AlgorithmConfig>(&s).unwrap(), c);
    }
    let small = random_interactions(2, 30, 100, 5);
    assert!(matches!(
        AlgorithmConfig::default_for(&small),
        AlgorithmConfig::Ease { .. }
    ));
    let wide = Interactions::from_triples(1, 20_000, [(0, 19_999, 1.0, 0)]);
    assert!(matches!(
        AlgorithmConfig::default_for(&wide),
        AlgorithmConfig::Ials { .. }
    ));
}

#[test]
fn model_is_send_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<Model>();
    check::<Interactions>();
}
