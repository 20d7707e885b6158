//! Quality on the real MovieLens data, against the figures in /work/shared/ANCHORS.md.

mod common;

use recsys::eval::{self, EvalOptions};
use recsys::{AlgorithmConfig, train};

fn item_index(r: &recsys::data::Ratings, external: &str) -> u32 {
    r.items
        .iter()
        .position(|s| s == external)
        .expect("item present") as u32
}

#[test]
fn star_wars_neighbours_are_its_sequels_and_raiders() {
    let r = common::ml100k();
    let data = common::binary(&r);
    let star_wars = item_index(&r, "50");
    let jedi = item_index(&r, "181");
    let empire = item_index(&r, "172");
    let raiders = item_index(&r, "174");
    for config in [
        AlgorithmConfig::ItemKnn {
            neighbors: 50,
            shrinkage: 10.0,
        },
        AlgorithmConfig::ease(500.0),
    ] {
        let model = train(&config, &data).unwrap();
        let top5: Vec<u32> = model
            .similar_items(star_wars, 5)
            .iter()
            .map(|x| x.0)
            .collect();
        let top10: Vec<u32> = model
            .similar_items(star_wars, 10)
            .iter()
            .map(|x| x.0)
            .collect();
        assert!(
            top5.contains(&jedi) && top5.contains(&empire),
            "{config:?}: {top5:?}"
        );
        assert!(top10.contains(&raiders), "{config:?}: {top10:?}");
        assert!(!top10.contains(&star_wars));
        // A Star Wars fan's "because you watched" for Return of the Jedi names Star Wars.
        let history = [(star_wars, 1.0), (item_index(&r, "1"), 1.0)];
        let why = model.explain(&history, jedi, 1);
        assert_eq!(why.first().map(|x| x.0), Some(star_wars), "{config:?}");
    }
}

#[test]
fn protocol_a_ml100k_matches_anchors() {
    let r = common::ml100k();
    let split = eval::split(&r, &EvalOptions::item_stratified()).unwrap();
    assert_eq!(split.train.n_users(), 943);
    assert_eq!(split.train.n_items(), 1682);
    let ndcg = |config: AlgorithmConfig| {
        let model = train(&config, &split.train).unwrap();
        let m = eval::evaluate(&model, &split, 10);
        assert_eq!(
            m.test_users,
            split.test.iter().filter(|t| !t.is_empty()).count()
        );
        m.ndcg
    };
    let ease = ndcg(AlgorithmConfig::ease(500.0));
    assert!((ease - 0.4854).abs() <= 0.01, "EASE nDCG@10 {ease}");
    let pop = ndcg(AlgorithmConfig::Popularity {
        half_life_days: 0.0,
    });
    assert!((pop - 0.2503).abs() <= 0.015, "popularity nDCG@10 {pop}");
    let ials = ndcg(AlgorithmConfig::Ials {
        factors: 64,
        regularization: 50.0,
        alpha: 10.0,
        iterations: 15,
        seed: 42,
    });
    assert!(ials >= 0.36, "iALS nDCG@10 {ials}");
}

#[test]
fn protocol_b_ml_latest_small_matches_anchor() {
    let r = common::ml_latest_small();
    let split = eval::split(&r, &EvalOptions::user_holdout(Some(4.0))).unwrap();
    let model = train(&AlgorithmConfig::ease(200.0), &split.train).unwrap();
    let m = eval::evaluate(&model, &split, 10);
    // Anchor 0.2612 (numpy, its own shuffle); across split seeds 1–4 and 42 this implementation
    // measures 0.262–0.272, so the tolerance covers the split's sampling spread.
    assert!((m.ndcg - 0.2612).abs() <= 0.015, "EASE nDCG@10 {}", m.ndcg);
}
