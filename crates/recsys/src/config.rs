//! Algorithm choice and hyper-parameters, serialisable so the server can store and echo them.

use serde::{Deserialize, Serialize};

use crate::{Error, Interactions};

/// Half-life used for the popularity vector every model carries (the empty-history fallback)
/// when the algorithm itself is not [`AlgorithmConfig::Popularity`].
pub const DEFAULT_POPULARITY_HALF_LIFE_DAYS: f32 = 90.0;

/// Above this many items [`AlgorithmConfig::default_for`] picks iALS instead of EASE: EASE's
/// dense n×n inverse costs O(n³) time and 4n² bytes per copy (15k items: ~0.9 GB, a minute or two).
pub const EASE_DEFAULT_MAX_ITEMS: usize = 15_000;

/// Which algorithm to train, with its hyper-parameters.
///
/// JSON form: `{"algorithm": "ease", "lambda": 500.0}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "algorithm", rename_all = "snake_case")]
pub enum AlgorithmConfig {
    /// Time-decayed interaction counts: each interaction counts `0.5^(age / half_life)` where age is
    /// measured from the newest timestamp in the training data (not the wall clock), so a model
    /// retrained on the same data is identical. `half_life_days <= 0` means no decay (plain counts).
    Popularity { half_life_days: f32 },
    /// Item-item cosine similarity on binary co-occurrence, `co(i,j) / (sqrt(n_i n_j) + shrinkage)`,
    /// keeping the `neighbors` most similar items per item. Scores sum the rows of the history items,
    /// scaled by the history weights.
    ItemKnn { neighbors: usize, shrinkage: f32 },
    /// EASE (Steck 2019): `B = I - P / diag(P)`, `P = (XᵀX + λI)⁻¹`, in f32; the inverse goes
    /// through a Cholesky factorisation. `lambda > 0`.
    ///
    /// Two optional normalisations (both 0, and left out of the JSON, for plain EASE), from
    /// denoising linear autoencoders (Steck 2020) and data-adaptive normalisation (Park et al.
    /// 2025): `dropout` `p ∈ [0, 1)` adds `p/(1−p)` times the Gram matrix's diagonal to the
    /// penalty (item `i` is penalised in proportion to its popularity), and `user_norm` `β >= 0`
    /// weighs each user's row by `n_u^−β` in the Gram matrix (heavy users count less).
    /// `free_diagonal` (false, and left out, by default) drops the zero-diagonal constraint:
    /// `B = I − PΛ` (Steck's DLAE) instead of `I − P/diag(P)`.
    /// `session_seconds` `τ > 0` and `session_weight` `m ∈ (0, 1]` (both 0, and left out, by
    /// default) weigh each co-occurrence of two items in one user's history by
    /// `1 − m + m·e^(−|t_i − t_j|/τ)`: items engaged minutes apart (one session) count fully,
    /// items engaged months apart `1 − m`. Always the direct route. See `ease.rs`.
    Ease {
        lambda: f32,
        #[serde(default, skip_serializing_if = "is_zero")]
        dropout: f32,
        #[serde(default, skip_serializing_if = "is_zero")]
        user_norm: f32,
        #[serde(default, skip_serializing_if = "is_false")]
        free_diagonal: bool,
        #[serde(default, skip_serializing_if = "is_zero")]
        session_seconds: f32,
        #[serde(default, skip_serializing_if = "is_zero")]
        session_weight: f32,
    },
    /// Implicit ALS (Hu, Koren, Volinsky 2008): confidence `1 + alpha * max(w, 0)` on observed
    /// items, preference 1 on observed, 0 elsewhere; L2 `regularization`; conjugate-gradient
    /// updates (warm-started) parallel over users then items.
    Ials {
        factors: usize,
        regularization: f32,
        alpha: f32,
        iterations: usize,
        seed: u64,
    },
    /// RP3β (Paudel et al. 2017; Dacrema et al. 2019): a 3-step random walk item → user → item
    /// on binary data, `W[i,j] = deg(i)^-α · Σ_u∈U(i)∩U(j) deg(u)^-α · deg(j)^-β`; the `β`
    /// penalty on the destination's popularity is what lifts it above plain cosine. Keeps the
    /// `neighbors` largest weights per item. `alpha > 0`, `beta >= 0`.
    Rp3Beta {
        alpha: f32,
        beta: f32,
        neighbors: usize,
    },
    /// A weighted sum of other models' scores, each standardised per request (zero mean, unit
    /// variance over the catalogue) so that the weights are comparable across algorithms.
    /// Members may not be blends themselves.
    ///
    /// JSON form: `{"algorithm": "blend", "members": [{"weight": 0.7, "config": {...}}, ...]}`.
    Blend { members: Vec<BlendMember> },
}

/// One member of [`AlgorithmConfig::Blend`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BlendMember {
    /// Finite, `>= 0`; at least one member's weight must be positive.
    pub weight: f32,
    pub config: AlgorithmConfig,
}

fn is_zero(x: &f32) -> bool {
    *x == 0.0
}

fn is_false(x: &bool) -> bool {
    !*x
}

impl AlgorithmConfig {
    /// Plain EASE with penalty `lambda`.
    pub fn ease(lambda: f32) -> Self {
        AlgorithmConfig::Ease {
            lambda,
            dropout: 0.0,
            user_norm: 0.0,
            free_diagonal: false,
            session_seconds: 0.0,
            session_weight: 0.0,
        }
    }

    /// A sensible untuned choice for `data`: EASE up to [`EASE_DEFAULT_MAX_ITEMS`] items, iALS above,
    /// popularity when there is nothing to learn from.
    ///
    /// iALS defaults (64 factors, λ 50, α 10, 15 iterations) were the best of a small grid on all
    /// three anchor datasets (nDCG@10 .466 ML-100K/A, .263 ml-latest-small/B, .254 Last.fm/B);
    /// `implicit`'s customary λ ≈ 0.01–0.1 under-regularises badly with exact fold-in.
    ///
    /// EASE's λ scales with the mean number of interactions per item (the typical diagonal of XᵀX):
    /// `λ = 10 · nnz / n_items`, clamped to [10, 1000]. On the MovieLens / Last.fm anchors this lands
    /// within a factor ~2 of the tuned optimum, where EASE's nDCG curve is flat; use
    /// [`crate::auto_select`] to tune properly.
    pub fn default_for(data: &Interactions) -> Self {
        if data.n_items() == 0 || data.nnz() == 0 {
            return AlgorithmConfig::Popularity {
                half_life_days: DEFAULT_POPULARITY_HALF_LIFE_DAYS,
            };
        }
        if data.n_items() <= EASE_DEFAULT_MAX_ITEMS {
            let mean_degree = data.nnz() as f32 / data.n_items() as f32;
            AlgorithmConfig::ease((10.0 * mean_degree).clamp(10.0, 1000.0))
        } else {
            AlgorithmConfig::Ials {
                factors: 64,
                regularization: 50.0,
                alpha: 10.0,
                iterations: 15,
                seed: 42,
            }
        }
    }

    /// Short name of the algorithm, as in the JSON `algorithm` tag.
    pub fn name(&self) -> &'static str {
        match self {
            AlgorithmConfig::Popularity { .. } => "popularity",
            AlgorithmConfig::ItemKnn { .. } => "item_knn",
            AlgorithmConfig::Ease { .. } => "ease",
            AlgorithmConfig::Ials { .. } => "ials",
            AlgorithmConfig::Rp3Beta { .. } => "rp3_beta",
            AlgorithmConfig::Blend { .. } => "blend",
        }
    }

    /// Rejects hyper-parameters no algorithm can work with (NaN, negative, zero factors…).
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: String| Err(Error::InvalidConfig(what));
        match self {
            &AlgorithmConfig::Popularity { half_life_days } => {
                if half_life_days.is_nan() {
                    return bad("popularity: half_life_days is NaN".into());
                }
            }
            &AlgorithmConfig::ItemKnn {
                neighbors,
                shrinkage,
            } => {
                if neighbors == 0 {
                    return bad("item_knn: neighbors must be at least 1".into());
                }
                if !(shrinkage.is_finite() && shrinkage >= 0.0) {
                    return bad(format!(
                        "item_knn: shrinkage must be finite and >= 0, got {shrinkage}"
                    ));
                }
            }
            &AlgorithmConfig::Ease {
                lambda,
                dropout,
                user_norm,
                session_seconds,
                session_weight,
                ..
            } => {
                if !(lambda.is_finite() && lambda > 0.0) {
                    return bad(format!("ease: lambda must be finite and > 0, got {lambda}"));
                }
                if !(0.0..0.99).contains(&dropout) {
                    return bad(format!("ease: dropout must be in [0, 0.99), got {dropout}"));
                }
                if !(0.0..=2.0).contains(&user_norm) {
                    return bad(format!(
                        "ease: user_norm must be in [0, 2], got {user_norm}"
                    ));
                }
                if !(0.0..=1.0).contains(&session_weight) {
                    return bad(format!(
                        "ease: session_weight must be in [0, 1], got {session_weight}"
                    ));
                }
                if !(session_seconds.is_finite() && session_seconds >= 0.0)
                    || (session_weight > 0.0 && session_seconds == 0.0)
                {
                    return bad(format!(
                        "ease: session_seconds must be finite, and > 0 with a session_weight, got {session_seconds}"
                    ));
                }
            }
            &AlgorithmConfig::Ials {
                factors,
                regularization,
                alpha,
                ..
            } => {
                if factors == 0 || factors > 1024 {
                    return bad(format!("ials: factors must be in 1..=1024, got {factors}"));
                }
                if !(regularization.is_finite() && regularization > 0.0) {
                    return bad(format!(
                        "ials: regularization must be finite and > 0, got {regularization}"
                    ));
                }
                if !(alpha.is_finite() && alpha >= 0.0) {
                    return bad(format!("ials: alpha must be finite and >= 0, got {alpha}"));
                }
            }
            &AlgorithmConfig::Rp3Beta {
                alpha,
                beta,
                neighbors,
            } => {
                if neighbors == 0 {
                    return bad("rp3_beta: neighbors must be at least 1".into());
                }
                if !(alpha.is_finite() && alpha > 0.0 && beta.is_finite() && beta >= 0.0) {
                    return bad(format!(
                        "rp3_beta: need finite alpha > 0 and beta >= 0, got {alpha}, {beta}"
                    ));
                }
            }
            AlgorithmConfig::Blend { members } => {
                if members.is_empty() {
                    return bad("blend: needs at least one member".into());
                }
                for m in members {
                    if matches!(m.config, AlgorithmConfig::Blend { .. }) {
                        return bad("blend: members cannot be blends".into());
                    }
                    if !(m.weight.is_finite() && m.weight >= 0.0) {
                        return bad(format!(
                            "blend: weights must be finite and >= 0, got {}",
                            m.weight
                        ));
                    }
                    m.config.validate()?;
                }
                if members.iter().all(|m| m.weight == 0.0) {
                    return bad("blend: at least one weight must be positive".into());
                }
            }
        }
        Ok(())
    }
}
