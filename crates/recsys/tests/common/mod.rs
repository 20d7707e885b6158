//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use recsys::Interactions;
use recsys::data::{self, Format, Ratings};

pub fn data_dir() -> PathBuf {
    Path::new("/work/shared/data").to_owned()
}

pub fn ml100k() -> Ratings {
    data::load(&data_dir().join("ml-100k/u.data"), Format::Movielens100k).expect("ml-100k")
}

pub fn ml_latest_small() -> Ratings {
    data::load(
        &data_dir().join("ml-latest-small/ratings.csv"),
        Format::MovielensCsv,
    )
    .expect("ml-latest-small")
}

/// All ratings as binary implicit feedback.
pub fn binary(r: &Ratings) -> Interactions {
    Interactions::from_triples(
        r.users.len(),
        r.items.len(),
        r.triples.iter().map(|&(u, i, _, ts)| (u, i, 1.0, ts)),
    )
}

/// Tiny deterministic generator for test data (SplitMix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Random interactions with a popularity skew: `n_users` × `n_items`, about `per_user` each.
pub fn random_interactions(seed: u64, n_users: u32, n_items: u32, per_user: u32) -> Interactions {
    let mut rng = Rng(seed);
    let mut t = Vec::new();
    for u in 0..n_users {
        for _ in 0..per_user {
            // Squaring skews towards low item ids, like real popularity.
            let x = rng.unit();
            let i = ((x * x) * n_items as f32) as u32 % n_items;
            t.push((u, i, 1.0 + rng.below(3) as f32, rng.below(1_000_000) as i64));
        }
    }
    Interactions::from_triples(n_users as usize, n_items as usize, t)
}
