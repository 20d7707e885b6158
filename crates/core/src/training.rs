//! Background training: snapshot a tenant's interactions, train off the async runtime, record
//! the version, swap it in atomically. Requests keep being served by the previous model until
//! the swap; nothing waits on training.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use marquee_store::NewModelVersion;
use recsys::{AlgorithmConfig, Interactions};

use crate::Service;
use crate::error::ServiceError;
use crate::state::{ServingModel, TenantState};
use crate::types::{ModelVersionInfo, Timestamp, TrainingStatus};

/// Clears the tenant's `training` flag when training ends, however it ends.
struct TrainingGuard(Arc<TenantState>);

impl Drop for TrainingGuard {
    fn drop(&mut self) {
        self.0.training.store(false, Ordering::Release);
    }
}

/// The tenant's positive interactions as a training matrix. Item indices are the catalogue's,
/// so the model scores catalogue items directly; users without positive feedback are left out.
fn snapshot(tenant: &TenantState) -> (Interactions, usize) {
    let n_items = tenant.catalog.read().items.len();
    snapshot_items(tenant, n_items)
}

/// The training matrix over the first `n_items` catalogue items.
fn snapshot_items(tenant: &TenantState, n_items: usize) -> (Interactions, usize) {
    let users = tenant.users.read();
    let mut triples = Vec::with_capacity(users.event_count());
    let mut n_users = 0u32;
    for user in users.users.iter().filter(|u| !u.deleted) {
        let before = triples.len();
        for e in user
            .events()
            .iter()
            .filter(|e| e.positive && (e.item as usize) < n_items)
        {
            triples.push((n_users, e.item, 1.0f32, e.timestamp / 1000));
        }
        if triples.len() > before {
            n_users += 1;
        }
    }
    (
        Interactions::from_triples(n_users as usize, n_items, triples),
        n_users as usize,
    )
}

impl Service {
    /// One of the training slots (training is CPU-bound: one at a time leaves cores for serving).
    async fn training_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ServiceError> {
        self.training_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ServiceError::Unavailable("shutting down".into()))
    }

    /// Whether `tenant` has feedback and no model, or enough new feedback since its model.
    pub(crate) fn needs_training(&self, tenant: &TenantState) -> bool {
        if tenant.training.load(Ordering::Acquire) {
            return false;
        }
        let new = tenant.events_since_training.load(Ordering::Acquire);
        let model = tenant.model.load();
        if model.is_some() && tenant.retrain_requested.load(Ordering::Acquire) {
            return true;
        }
        match model.as_ref() {
            None => {
                // Don't retry a failed training until something changed.
                let failed = tenant.training_state.lock().last_error.is_some();
                tenant.users.read().event_count() > 0 && (!failed || new > 0)
            }
            Some(m) => {
                let total = m.info.interactions.max(1) as f64;
                new >= self.config.retrain_min_new_events
                    && new as f64 >= self.config.retrain_min_new_fraction * total
            }
        }
    }

    /// Starts training `tenant` in the background unless it is already training.
    pub(crate) fn spawn_training(self: &Arc<Self>, tenant: Arc<TenantState>) {
        let service = self.clone();
        tokio::spawn(async move {
            match service.train(&tenant, None).await {
                Ok(Some(_))
                    if service.config.auto_tune && !tenant.tuned.load(Ordering::Acquire) =>
                {
                    if let Err(e) = service.tune(&tenant).await {
                        tracing::warn!(tenant = %tenant.name, error = %e, "tuning failed");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(tenant = %tenant.name, error = %e, "training failed"),
            }
        });
    }

    /// Chooses the algorithm and its hyper-parameters for `tenant` on a validation split of its
    /// own data (the engine's `auto_select`), and trains that model if it differs from the one
    /// serving. The first model of a tenant is a fast untuned one, so the tenant is served while
    /// this runs; later retrains reuse the chosen configuration.
    pub async fn tune(&self, tenant: &Arc<TenantState>) -> Result<(), ServiceError> {
        if tenant.training.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let guard = TrainingGuard(tenant.clone());
        let slot = self.training_slot().await?;
        let (data, _) = snapshot(tenant);
        let started = Instant::now();
        let selection = tokio::task::spawn_blocking(move || recsys::auto_select_report(&data, 42))
            .await
            .map_err(|e| {
                // Not retried: a failure here would fail again.
                tenant.tuned.store(true, Ordering::Release);
                ServiceError::Internal(format!("tuning task: {e}"))
            })?;
        tracing::info!(
            tenant = %tenant.name,
            ms = started.elapsed().as_millis() as u64,
            chosen = %serde_json::to_string(&selection.best).unwrap_or_default(),
            "tuned"
        );
        *tenant.preferred_config.lock() = Some(selection.best.clone());
        drop(slot);
        drop(guard);
        let serving = tenant
            .model
            .load()
            .as_ref()
            .map(|m| m.model.config().clone());
        // `tuned` is set only once the tuned model serves (or needs no retraining), so whoever
        // waits for it sees the tuned model.
        let retrained = if serving.as_ref() != Some(&selection.best) {
            self.train(tenant, Some(selection.best)).await.map(|_| ())
        } else {
            Ok(())
        };
        tenant.tuned.store(true, Ordering::Release);
        retrained
    }

    /// Trains a new model for `tenant` now (with `config`, or the automatic choice) and swaps
    /// it in. Returns `Ok(None)` when the tenant is already training.
    pub async fn train(
        &self,
        tenant: &Arc<TenantState>,
        config: Option<AlgorithmConfig>,
    ) -> Result<Option<ModelVersionInfo>, ServiceError> {
        if tenant.training.swap(true, Ordering::AcqRel) {
            return Ok(None);
        }
        let _guard = TrainingGuard(tenant.clone());
        let _slot = self.training_slot().await?;
        let events_at_start = tenant.events_since_training.load(Ordering::Acquire);
        // Erasures from here on ask for another retrain; earlier ones are in this one's data.
        tenant.retrain_requested.store(false, Ordering::Release);
        let erased_before = tenant.last_erasure_ms.load(Ordering::Acquire);
        let item_ids: Vec<String> = tenant
            .catalog
            .read()
            .items
            .iter()
            .map(|i| i.id.to_string())
            .collect();
        let (data, n_users) = snapshot_items(tenant, item_ids.len());
        let explicit = config.is_some();
        let config = config
            .or_else(|| tenant.preferred_config.lock().clone())
            .unwrap_or_else(|| AlgorithmConfig::default_for(&data));
        let started = Instant::now();
        tracing::info!(tenant = %tenant.name, users = n_users, items = data.n_items(), interactions = data.nnz(), algorithm = config.name(), "training");
        let trained = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || {
                let model = recsys::train(&config, &data);
                (model, data.nnz(), data.n_items())
            })
            .await
            .map_err(|e| ServiceError::Internal(format!("training task: {e}")))?
        };
        let (model, interactions, n_items) = trained;
        let model = match model {
            Ok(m) => m,
            Err(e) => {
                tenant.training_state.lock().last_error = Some(e.to_string());
                return Err(ServiceError::Internal(format!("training failed: {e}")));
            }
        };
        let train_ms = started.elapsed().as_millis() as i64;
        let algorithm = serde_json::to_value(&config).unwrap_or_default();
        let trained_at = marquee_store::now_ms();
        let version = self
            .store
            .record_model_version(
                tenant.id,
                &NewModelVersion {
                    algorithm: algorithm.clone(),
                    trained_at,
                    users: n_users as i64,
                    items: n_items as i64,
                    interactions: interactions as i64,
                    train_ms,
                },
            )
            .await?;
        let info = ModelVersionInfo {
            version,
            algorithm,
            trained_at: Timestamp(trained_at),
            users: n_users as i64,
            items: n_items as i64,
            interactions: interactions as i64,
            train_ms,
        };
        let serving = ServingModel::start(model, info.clone(), self.config.ann_min_items);
        tenant.model.store(Some(serving.clone()));
        if let Some(dir) = self.snapshot_dir.clone() {
            let meta = crate::snapshots::SnapshotMeta {
                info: info.clone(),
                item_ids,
            };
            let tenant_id = tenant.id;
            let saved = tokio::task::spawn_blocking(move || {
                let path = crate::snapshots::save(&dir, tenant_id, &meta, &serving.model)?;
                // The kept older versions still hold erased users' influence: gone with them.
                let pruned = if erased_before > 0 {
                    crate::snapshots::prune_trained_before(&dir, tenant_id, erased_before, version)
                } else {
                    Vec::new()
                };
                Ok::<_, std::io::Error>((path, pruned))
            })
            .await;
            match saved {
                Ok(Ok((path, pruned))) => {
                    tracing::debug!(path = %path.display(), "model snapshot saved");
                    if !pruned.is_empty() {
                        tracing::info!(tenant = %tenant.name, versions = ?pruned, "model snapshots trained before a user's erasure deleted");
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(tenant = %tenant.name, error = %e, "saving the model snapshot failed")
                }
                Err(e) => {
                    tracing::warn!(tenant = %tenant.name, error = %e, "saving the model snapshot failed")
                }
            }
        }
        tenant
            .events_since_training
            .fetch_sub(events_at_start, Ordering::AcqRel);
        tenant.training_state.lock().last_error = None;
        if explicit {
            // A configuration asked for explicitly is kept for later retrains.
            *tenant.preferred_config.lock() = Some(config.clone());
            tenant.tuned.store(true, Ordering::Release);
        }
        tracing::info!(tenant = %tenant.name, version, train_ms, "model swapped in");
        drop(_slot);
        if let Err(e) = self.train_variants(tenant).await {
            tracing::warn!(tenant = %tenant.name, error = %e, "training experiment variants failed");
        }
        Ok(Some(info))
    }

    /// Like [`Service::train`], but when the tenant is already training, waits for that run to
    /// end and then trains, so the model returned has seen every write made before the call.
    pub async fn train_and_wait(
        &self,
        tenant: &Arc<TenantState>,
        config: Option<AlgorithmConfig>,
    ) -> Result<ModelVersionInfo, ServiceError> {
        // A training already running may have started before the caller's latest writes: wait
        // for it to end, then train (again) so the answer includes everything written so far.
        loop {
            if let Some(info) = self.train(tenant, config.clone()).await? {
                return Ok(info);
            }
            while tenant.training.load(Ordering::Acquire) {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }

    /// Trains the models of the running experiment's variants that name their own algorithm.
    /// They are not recorded as versions: they live as long as the experiment.
    pub async fn train_variants(&self, tenant: &Arc<TenantState>) -> Result<(), ServiceError> {
        let Some(experiment) = tenant.experiment.load_full() else {
            return Ok(());
        };
        let configs: Vec<(usize, AlgorithmConfig)> = experiment
            .variants
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.model.clone().map(|m| (i, m)))
            .collect();
        let mut models = std::collections::HashMap::new();
        // Kept versions, lined up with the catalogue (or left to the default model).
        for (i, v) in experiment.variants.iter().enumerate() {
            let (Some(version), Some(dir)) = (v.model_version, self.snapshot_dir.clone()) else {
                continue;
            };
            let tenant_id = tenant.id;
            let loaded = tokio::task::spawn_blocking(move || {
                crate::snapshots::load(&dir, tenant_id, version)
            })
            .await
            .map_err(|e| ServiceError::Internal(format!("loading a model version: {e}")))?;
            match loaded {
                Ok((meta, model)) => {
                    if crate::snapshots::lines_up(&meta.item_ids, &tenant.catalog.read()) {
                        models.insert(
                            i,
                            ServingModel::start(model, meta.info, self.config.ann_min_items),
                        );
                    } else {
                        tracing::warn!(tenant = %tenant.name, version, "model version does not line up with the catalogue; the variant uses the current model");
                    }
                }
                Err(e) => {
                    tracing::warn!(tenant = %tenant.name, version, error = %e, "model version unreadable; the variant uses the current model")
                }
            }
        }
        if configs.is_empty() {
            if tenant
                .experiment
                .load()
                .as_ref()
                .is_some_and(|e| e.id == experiment.id)
            {
                *tenant.variant_models.write() = models;
            }
            return Ok(());
        }
        let _slot = self.training_slot().await?;
        let (data, n_users) = snapshot(tenant);
        let trained = tokio::task::spawn_blocking(move || {
            configs
                .into_iter()
                .map(|(i, config)| {
                    let started = Instant::now();
                    let model = recsys::train(&config, &data);
                    (i, config, model, started.elapsed().as_millis() as i64)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("training task: {e}")))?;
        for (i, config, model, train_ms) in trained {
            let model = model.map_err(|e| ServiceError::Internal(format!("variant {i}: {e}")))?;
            let info = ModelVersionInfo {
                version: 0,
                algorithm: serde_json::to_value(&config).unwrap_or_default(),
                trained_at: Timestamp::now(),
                users: n_users as i64,
                items: model.n_items() as i64,
                interactions: 0,
                train_ms,
            };
            models.insert(
                i,
                ServingModel::start(model, info, self.config.ann_min_items),
            );
        }
        // Only if the experiment is still the running one.
        if tenant
            .experiment
            .load()
            .as_ref()
            .is_some_and(|e| e.id == experiment.id)
        {
            *tenant.variant_models.write() = models;
        }
        Ok(())
    }

    pub async fn training_status(
        &self,
        tenant: &TenantState,
    ) -> Result<TrainingStatus, ServiceError> {
        let versions = self.store.model_versions(tenant.id, 20).await?;
        let last_error = tenant.training_state.lock().last_error.clone();
        let training = tenant.training.load(Ordering::Acquire);
        let serving = tenant.model.load_full();
        Ok(TrainingStatus {
            state: if training {
                "training"
            } else if last_error.is_some() {
                "failed"
            } else {
                "idle"
            },
            current: serving.as_ref().map(|m| m.info.clone()),
            ranking: serving.as_ref().map(|m| {
                if m.model.has_index() {
                    "approximate"
                } else if m.model.wants_index(self.config.ann_min_items) {
                    "indexing"
                } else {
                    "exact"
                }
            }),
            last_error,
            events_since_training: tenant.events_since_training.load(Ordering::Acquire),
            versions: versions
                .into_iter()
                .map(|v| ModelVersionInfo {
                    version: v.version,
                    algorithm: v.algorithm,
                    trained_at: Timestamp(v.trained_at),
                    users: v.users,
                    items: v.items,
                    interactions: v.interactions,
                    train_ms: v.train_ms,
                })
                .collect(),
        })
    }
}
