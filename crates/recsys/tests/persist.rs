//! Model files: every algorithm round-trips exactly; damaged input is an error, never a panic.

mod common;

use common::random_interactions;
use recsys::{AlgorithmConfig, BlendMember, Error, Model, train};

fn configs() -> Vec<AlgorithmConfig> {
    let ials = AlgorithmConfig::Ials {
        factors: 6,
        regularization: 2.0,
        alpha: 5.0,
        iterations: 4,
        seed: 3,
    };
    vec![
        AlgorithmConfig::Popularity {
            half_life_days: 10.0,
        },
        AlgorithmConfig::ItemKnn {
            neighbors: 10,
            shrinkage: 2.0,
        },
        AlgorithmConfig::Rp3Beta {
            alpha: 0.8,
            beta: 0.4,
            neighbors: 10,
        },
        AlgorithmConfig::ease(5.0),
        ials.clone(),
        AlgorithmConfig::Blend {
            members: vec![
                BlendMember {
                    weight: 0.5,
                    config: AlgorithmConfig::ease(5.0),
                },
                BlendMember {
                    weight: 0.3,
                    config: ials,
                },
                BlendMember {
                    weight: 0.2,
                    config: AlgorithmConfig::Rp3Beta {
                        alpha: 1.0,
                        beta: 0.5,
                        neighbors: 5,
                    },
                },
            ],
        },
    ]
}

fn bytes_of(model: &Model) -> Vec<u8> {
    let mut out = Vec::new();
    model.write_to(&mut out).unwrap();
    out
}

#[test]
fn every_algorithm_round_trips_exactly() {
    let data = random_interactions(11, 40, 60, 6);
    let histories: [&[(u32, f32)]; 4] = [
        &[],
        &[(0, 1.0)],
        &[(3, 2.0), (7, 1.0), (59, 0.5)],
        &[(1000, 1.0)],
    ];
    for config in configs() {
        let model = train(&config, &data).unwrap();
        let bytes = bytes_of(&model);
        let loaded = Model::read_from(&mut bytes.as_slice()).unwrap();
        assert_eq!(loaded.config(), &config);
        assert_eq!(loaded.n_items(), model.n_items());
        assert_eq!(loaded.popularity(), model.popularity());
        for h in histories {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            model.score_history(h, &mut a);
            loaded.score_history(h, &mut b);
            assert_eq!(a, b, "{config:?} {h:?}");
            assert_eq!(model.explain(h, 5, 3), loaded.explain(h, 5, 3));
        }
        assert_eq!(model.similar_items(2, 5), loaded.similar_items(2, 5));
        // Writing the loaded model gives the same bytes.
        assert_eq!(bytes_of(&loaded), bytes, "{config:?}");
    }
}

#[test]
fn truncated_corrupt_or_foreign_input_is_an_error() {
    let data = random_interactions(5, 20, 30, 5);
    for config in configs() {
        let bytes = bytes_of(&train(&config, &data).unwrap());
        // Every truncation point.
        for cut in 0..bytes.len() {
            let r = Model::read_from(&mut &bytes[..cut]);
            assert!(
                matches!(r, Err(Error::InvalidModelFile(_))),
                "{config:?} cut at {cut}"
            );
        }
        // Every single-byte flip (sampled): caught by a structural check or the checksum.
        for pos in (0..bytes.len()).step_by(7) {
            let mut bad = bytes.clone();
            bad[pos] ^= 0x5a;
            let r = Model::read_from(&mut bad.as_slice());
            assert!(
                matches!(r, Err(Error::InvalidModelFile(_))),
                "{config:?} flip at {pos}"
            );
        }
    }
    // A huge stated length on a tiny input fails without trying to allocate it.
    let mut huge = bytes_of(&train(&configs()[0], &data).unwrap());
    let config_len = u32::from_le_bytes(huge[12..16].try_into().unwrap()) as usize;
    let at = 16 + config_len;
    huge[at..at + 8].copy_from_slice(&(u64::MAX / 16).to_le_bytes());
    assert!(matches!(
        Model::read_from(&mut huge.as_slice()),
        Err(Error::InvalidModelFile(_))
    ));
    // Wrong magic / unknown version.
    assert!(matches!(
        Model::read_from(&mut &b"PK\x03\x04 not a model at all"[..]),
        Err(Error::InvalidModelFile(_))
    ));
    let mut future = bytes_of(&train(&configs()[0], &data).unwrap());
    future[8..12].copy_from_slice(&99u32.to_le_bytes());
    let err = Model::read_from(&mut future.as_slice()).unwrap_err();
    assert!(err.to_string().contains("version 99"), "{err}");
}
