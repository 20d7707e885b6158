//! A/B experiments on recommendations.
//!
//! An experiment splits a tenant's users between variants — each the tenant's current model, or
//! an algorithm with its own hyper-parameters trained beside it — by a stable hash of the user
//! id, so a user always sees the same variant. Every list served under an experiment carries a
//! `recommendation_id` that names the experiment and the variant; feedback that sends it back is
//! attributed (a list counts once as clicked and once as converted, however many events name
//! it). Results compare each variant with the first (the control) by a two-proportion z-test.
//!
//! Impressions are counted in memory on the hot path and added to the store every poll interval;
//! outcomes are written when the feedback is.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use marquee_store::{ExperimentRow, Store};
use rand::RngCore;
use recsys::AlgorithmConfig;
use serde::{Deserialize, Serialize};

use crate::Service;
use crate::error::ServiceError;
use crate::state::TenantState;
use crate::types::Timestamp;

const MAX_VARIANTS: usize = 10;

fn default_click_types() -> Vec<String> {
    ["click", "view", "play", "watch"]
        .map(String::from)
        .to_vec()
}

fn default_conversion_types() -> Vec<String> {
    ["purchase", "conversion", "subscribe", "rent", "like"]
        .map(String::from)
        .to_vec()
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VariantSpec {
    pub name: String,
    /// Relative share of users (shares are normalised over the variants).
    pub share: f64,
    /// The algorithm for this variant, trained beside the tenant's model and retrained with it.
    #[serde(default)]
    pub model: Option<AlgorithmConfig>,
    /// A kept earlier model version of the tenant (see `GET /v1/training`).
    #[serde(default)]
    pub model_version: Option<i64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentInput {
    pub name: String,
    pub variants: Vec<VariantSpec>,
    /// Feedback types that count as a click on a list (default: click, view, play, watch).
    #[serde(default)]
    pub click_types: Option<Vec<String>>,
    /// Feedback types that count as a conversion (default: purchase, conversion, subscribe, rent, like).
    #[serde(default)]
    pub conversion_types: Option<Vec<String>>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
struct Definition {
    variants: Vec<VariantSpec>,
    click_types: Vec<String>,
    conversion_types: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Experiment {
    pub id: String,
    pub name: String,
    pub status: String,
    pub variants: Vec<VariantSpec>,
    pub click_types: Vec<String>,
    pub conversion_types: Vec<String>,
    pub created_at: Timestamp,
    pub stopped_at: Option<Timestamp>,
}

#[derive(Clone, Debug, Serialize)]
pub struct VariantResult {
    pub name: String,
    pub share: f64,
    /// Lists served.
    pub impressions: u64,
    /// Lists with at least one click.
    pub clicks: u64,
    pub ctr: f64,
    /// Lists with at least one conversion.
    pub conversions: u64,
    pub conversion_rate: f64,
    /// Two-sided p-value of this variant's CTR against the control's (none for the control).
    pub ctr_p_value: Option<f64>,
    pub conversion_p_value: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ExperimentResults {
    pub experiment: Experiment,
    pub variants: Vec<VariantResult>,
}

/// The running experiment of a tenant, as the recommend path uses it.
pub struct RunningExperiment {
    pub id: String,
    pub variants: Vec<VariantSpec>,
    click_types: Vec<String>,
    conversion_types: Vec<String>,
    /// Upper bounds of each variant's share of [0, 1).
    cumulative: Vec<f64>,
    /// Impressions not yet added to the store.
    pending: Vec<AtomicU64>,
}

impl RunningExperiment {
    fn new(id: String, d: Definition) -> Self {
        let total: f64 = d.variants.iter().map(|v| v.share).sum();
        let mut acc = 0.0;
        let cumulative = d
            .variants
            .iter()
            .map(|v| {
                acc += v.share / total;
                acc
            })
            .collect();
        RunningExperiment {
            pending: d.variants.iter().map(|_| AtomicU64::new(0)).collect(),
            id,
            variants: d.variants,
            click_types: d.click_types,
            conversion_types: d.conversion_types,
            cumulative,
        }
    }

    /// The user's variant: stable for a user within an experiment, independent across experiments.
    pub fn bucket(&self, user_id: &str) -> usize {
        // FNV-1a, 64-bit: stable across processes and versions, unlike std's hasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.id.bytes().chain([0u8]).chain(user_id.bytes()) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Finalise (splitmix64) so nearby ids spread over the unit interval.
        h ^= h >> 30;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 27;
        h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
        let x = (h >> 11) as f64 / (1u64 << 53) as f64;
        self.cumulative
            .iter()
            .position(|&c| x < c)
            .unwrap_or(self.variants.len() - 1)
    }

    pub fn count_impression(&self, variant: usize) {
        self.pending[variant].fetch_add(1, Ordering::Relaxed);
    }

    fn pending(&self, variant: usize) -> u64 {
        self.pending[variant].load(Ordering::Relaxed)
    }
}

/// A new list id; names the experiment and variant when there is one.
pub fn new_recommendation_id(experiment: Option<(&str, usize)>) -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    let random = hex::encode(bytes);
    match experiment {
        Some((id, v)) => format!("rec_{id}.{v}.{random}"),
        None => format!("rec_{random}"),
    }
}

/// `(experiment id, variant)` of a list id made by [`new_recommendation_id`].
pub fn parse_recommendation_id(id: &str) -> Result<Option<(&str, usize)>, &'static str> {
    let rest = id
        .strip_prefix("rec_")
        .ok_or("is not a recommendation_id returned by Marquee")?;
    let parts: Vec<&str> = rest.split('.').collect();
    match parts.as_slice() {
        [random] if random.len() == 16 => Ok(None),
        [exp, variant, random] if random.len() == 16 && exp.starts_with("exp_") => {
            let v = variant
                .parse()
                .map_err(|_| "is not a recommendation_id returned by Marquee")?;
            Ok(Some((exp, v)))
        }
        _ => Err("is not a recommendation_id returned by Marquee"),
    }
}

/// Two-sided p-value of the difference between two proportions (pooled z-test); `None` when a
/// side has no trials or nothing varies.
pub fn two_proportion_p_value(
    successes_a: u64,
    trials_a: u64,
    successes_b: u64,
    trials_b: u64,
) -> Option<f64> {
    if trials_a == 0 || trials_b == 0 {
        return None;
    }
    let (na, nb) = (trials_a as f64, trials_b as f64);
    let pooled = (successes_a + successes_b) as f64 / (na + nb);
    let se = (pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb)).sqrt();
    if se == 0.0 {
        return None;
    }
    let z = (successes_b as f64 / nb - successes_a as f64 / na) / se;
    Some(erfc(z.abs() / std::f64::consts::SQRT_2).clamp(0.0, 1.0))
}

/// Complementary error function (W. J. Cody's rational Chebyshev approximation as given in
/// Numerical Recipes, `erfcc`; relative error below 1.2e-7 everywhere).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

fn to_experiment(row: &ExperimentRow) -> Result<Experiment, ServiceError> {
    let d: Definition = serde_json::from_value(row.definition.clone())
        .map_err(|e| ServiceError::Internal(format!("stored experiment {}: {e}", row.id)))?;
    Ok(Experiment {
        id: row.id.clone(),
        name: row.name.clone(),
        status: row.status.clone(),
        variants: d.variants,
        click_types: d.click_types,
        conversion_types: d.conversion_types,
        created_at: Timestamp(row.created_at),
        stopped_at: row.stopped_at.map(Timestamp),
    })
}

/// Loads the running experiment of a tenant into its state (at start and on reload).
pub(crate) async fn load_running(store: &Store, tenant: &TenantState) -> Result<(), ServiceError> {
    let running = store
        .experiments(tenant.id)
        .await?
        .into_iter()
        .find(|e| e.status == "running");
    let state = match running {
        Some(row) => {
            let d: Definition = serde_json::from_value(row.definition.clone()).map_err(|e| {
                ServiceError::Internal(format!("stored experiment {}: {e}", row.id))
            })?;
            Some(Arc::new(RunningExperiment::new(row.id, d)))
        }
        None => None,
    };
    tenant.experiment.store(state);
    Ok(())
}

impl Service {
    pub async fn create_experiment(
        self: &Arc<Self>,
        tenant: &Arc<TenantState>,
        input: ExperimentInput,
    ) -> Result<Experiment, ServiceError> {
        if input.name.trim().is_empty()
            || input.name.len() > 200
            || input.name.chars().any(char::is_control)
        {
            return Err(ServiceError::invalid(
                "name",
                "must be 1-200 printable characters",
            ));
        }
        if !(2..=MAX_VARIANTS).contains(&input.variants.len()) {
            return Err(ServiceError::invalid(
                "variants",
                format!("needs 2 to {MAX_VARIANTS} variants"),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, v) in input.variants.iter().enumerate() {
            if v.name.trim().is_empty()
                || v.name.len() > 100
                || v.name.chars().any(char::is_control)
            {
                return Err(ServiceError::invalid(
                    format!("variants[{i}].name"),
                    "must be 1-100 printable characters",
                ));
            }
            if !names.insert(v.name.clone()) {
                return Err(ServiceError::invalid(
                    format!("variants[{i}].name"),
                    "is used twice",
                ));
            }
            if !(v.share.is_finite() && v.share > 0.0 && v.share <= 1e6) {
                return Err(ServiceError::invalid(
                    format!("variants[{i}].share"),
                    "must be a positive number",
                ));
            }
            if let Some(m) = &v.model {
                m.validate().map_err(|e| {
                    ServiceError::invalid(format!("variants[{i}].model"), e.to_string())
                })?;
            }
            if let Some(version) = v.model_version {
                let field = format!("variants[{i}].model_version");
                if v.model.is_some() {
                    return Err(ServiceError::invalid(
                        field,
                        "give either model or model_version",
                    ));
                }
                let kept = self
                    .snapshot_dir
                    .as_deref()
                    .map(|dir| crate::snapshots::versions(dir, tenant.id))
                    .unwrap_or_default();
                if !kept.contains(&version) {
                    let mut kept = kept;
                    kept.sort_unstable();
                    return Err(ServiceError::invalid(
                        field,
                        format!("model version {version} is not kept (kept: {kept:?})"),
                    ));
                }
            }
        }
        let types = |given: Option<Vec<String>>, field: &str, default: fn() -> Vec<String>| {
            let list = given.unwrap_or_else(default);
            if list.is_empty()
                || list.len() > 50
                || list.iter().any(|t| t.is_empty() || t.len() > 64)
            {
                return Err(ServiceError::invalid(
                    field,
                    "must list 1-50 feedback types",
                ));
            }
            Ok(list)
        };
        let definition = Definition {
            variants: input.variants,
            click_types: types(input.click_types, "click_types", default_click_types)?,
            conversion_types: types(
                input.conversion_types,
                "conversion_types",
                default_conversion_types,
            )?,
        };
        let _guard = tenant.write_lock.lock().await;
        if let Some(running) = tenant.experiment.load().as_ref() {
            return Err(ServiceError::Conflict(format!(
                "experiment {} is running; stop it before starting another",
                running.id
            )));
        }
        let mut id_bytes = [0u8; 6];
        rand::rng().fill_bytes(&mut id_bytes);
        let row = ExperimentRow {
            id: format!(
                "exp_{}",
                id_bytes
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            ),
            name: input.name,
            definition: serde_json::to_value(&definition)
                .map_err(|e| ServiceError::Internal(e.to_string()))?,
            status: "running".into(),
            created_at: marquee_store::now_ms(),
            stopped_at: None,
        };
        self.store.insert_experiment(tenant.id, &row).await?;
        tenant
            .experiment
            .store(Some(Arc::new(RunningExperiment::new(
                row.id.clone(),
                definition,
            ))));
        drop(_guard);
        // Variants with their own algorithm need their own model.
        let service = self.clone();
        let t = tenant.clone();
        tokio::spawn(async move {
            if let Err(e) = service.train_variants(&t).await {
                tracing::warn!(tenant = %t.name, error = %e, "training experiment variants failed");
            }
        });
        to_experiment(&row)
    }

    pub async fn list_experiments(
        &self,
        tenant: &TenantState,
    ) -> Result<Vec<Experiment>, ServiceError> {
        self.store
            .experiments(tenant.id)
            .await?
            .iter()
            .map(to_experiment)
            .collect()
    }

    async fn experiment_row(
        &self,
        tenant: &TenantState,
        id: &str,
    ) -> Result<ExperimentRow, ServiceError> {
        self.store
            .experiments(tenant.id)
            .await?
            .into_iter()
            .find(|e| e.id == id)
            .ok_or_else(|| ServiceError::not_found("experiment", id))
    }

    pub async fn get_experiment(
        &self,
        tenant: &TenantState,
        id: &str,
    ) -> Result<Experiment, ServiceError> {
        to_experiment(&self.experiment_row(tenant, id).await?)
    }

    /// Stops an experiment: its users get the default model again; results stay readable.
    pub async fn stop_experiment(
        &self,
        tenant: &TenantState,
        id: &str,
    ) -> Result<Experiment, ServiceError> {
        let _guard = tenant.write_lock.lock().await;
        self.experiment_row(tenant, id).await?;
        self.flush_impressions(tenant).await?;
        if !self.store.stop_experiment(tenant.id, id).await? {
            return Err(ServiceError::Conflict(format!(
                "experiment {id} is not running"
            )));
        }
        if tenant
            .experiment
            .load()
            .as_ref()
            .is_some_and(|e| e.id == id)
        {
            tenant.experiment.store(None);
            tenant.variant_models.write().clear();
        }
        to_experiment(&self.experiment_row(tenant, id).await?)
    }

    pub async fn experiment_results(
        &self,
        tenant: &TenantState,
        id: &str,
    ) -> Result<ExperimentResults, ServiceError> {
        let experiment = to_experiment(&self.experiment_row(tenant, id).await?)?;
        let counts = self.store.experiment_counts(tenant.id, id).await?;
        let running = tenant.experiment.load_full().filter(|e| e.id == id);
        let mut variants: Vec<VariantResult> = experiment
            .variants
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let c = counts.get(&(i as i64)).cloned().unwrap_or_default();
                let impressions =
                    c.impressions as u64 + running.as_ref().map_or(0, |r| r.pending(i));
                let rate = |x: i64| {
                    if impressions == 0 {
                        0.0
                    } else {
                        x as f64 / impressions as f64
                    }
                };
                VariantResult {
                    name: v.name.clone(),
                    share: v.share,
                    impressions,
                    clicks: c.clicks as u64,
                    ctr: rate(c.clicks),
                    conversions: c.conversions as u64,
                    conversion_rate: rate(c.conversions),
                    ctr_p_value: None,
                    conversion_p_value: None,
                }
            })
            .collect();
        if let Some((control, others)) = variants.split_first_mut() {
            for v in others {
                v.ctr_p_value = two_proportion_p_value(
                    control.clicks,
                    control.impressions,
                    v.clicks,
                    v.impressions,
                );
                v.conversion_p_value = two_proportion_p_value(
                    control.conversions,
                    control.impressions,
                    v.conversions,
                    v.impressions,
                );
            }
        }
        Ok(ExperimentResults {
            experiment,
            variants,
        })
    }

    /// Adds the impressions counted in memory to the store.
    /// Flushes are serialized: a reader that flushes before reading the store (the results)
    /// must not see counts that a concurrent flush took from memory but has not written yet.
    pub(crate) async fn flush_impressions(&self, tenant: &TenantState) -> Result<(), ServiceError> {
        let _one_at_a_time = self.impression_flush.lock().await;
        let Some(running) = tenant.experiment.load_full() else {
            return Ok(());
        };
        for (v, pending) in running.pending.iter().enumerate() {
            let delta = pending.swap(0, Ordering::AcqRel);
            if delta == 0 {
                continue;
            }
            if let Err(e) = self
                .store
                .add_impressions(tenant.id, &running.id, v as i64, delta as i64)
                .await
            {
                pending.fetch_add(delta, Ordering::AcqRel);
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Attributes feedback that names a list of the running experiment.
    pub(crate) async fn attribute(
        &self,
        tenant: &TenantState,
        events: &[(String, String)],
    ) -> Result<(), ServiceError> {
        let Some(running) = tenant.experiment.load_full() else {
            return Ok(());
        };
        for (recommendation_id, kind) in events {
            let Ok(Some((exp, variant))) = parse_recommendation_id(recommendation_id) else {
                continue;
            };
            if exp != running.id || variant >= running.variants.len() {
                continue;
            }
            if running.click_types.contains(kind) {
                self.store
                    .record_outcome(tenant.id, exp, variant as i64, recommendation_id, "click")
                    .await?;
            }
            if running.conversion_types.contains(kind) {
                self.store
                    .record_outcome(
                        tenant.id,
                        exp,
                        variant as i64,
                        recommendation_id,
                        "conversion",
                    )
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_values_match_the_normal_distribution() {
        // z = 1.96 → p ≈ 0.05.
        assert!((erfc(1.959_964 / std::f64::consts::SQRT_2) - 0.05).abs() < 1e-6);
        assert!((erfc(0.0) - 1.0).abs() < 1e-7);
        // 100/1000 vs 150/1000: z ≈ 3.38, p ≈ 0.00072.
        let p = two_proportion_p_value(100, 1000, 150, 1000).unwrap();
        assert!((p - 0.000_72).abs() < 0.000_05, "{p}");
        assert!(two_proportion_p_value(100, 1000, 100, 1000).unwrap() > 0.99);
        assert_eq!(two_proportion_p_value(0, 0, 1, 10), None);
    }

    #[test]
    fn bucketing_is_stable_and_follows_shares() {
        let d = Definition {
            variants: vec![
                VariantSpec {
                    name: "a".into(),
                    share: 3.0,
                    model: None,
                    model_version: None,
                },
                VariantSpec {
                    name: "b".into(),
                    share: 1.0,
                    model: None,
                    model_version: None,
                },
            ],
            click_types: vec![],
            conversion_types: vec![],
        };
        let e = RunningExperiment::new("exp_1".into(), d);
        let mut counts = [0usize; 2];
        for u in 0..20_000 {
            let user = format!("user{u}");
            let v = e.bucket(&user);
            assert_eq!(v, e.bucket(&user));
            counts[v] += 1;
        }
        let share_b = counts[1] as f64 / 20_000.0;
        assert!((share_b - 0.25).abs() < 0.02, "{counts:?}");
    }

    #[test]
    fn recommendation_ids_round_trip() {
        let id = new_recommendation_id(Some(("exp_abc", 2)));
        assert_eq!(parse_recommendation_id(&id).unwrap(), Some(("exp_abc", 2)));
        let plain = new_recommendation_id(None);
        assert_eq!(parse_recommendation_id(&plain).unwrap(), None);
        assert!(parse_recommendation_id("rec_x").is_err());
        assert!(parse_recommendation_id("hello").is_err());
    }
}
