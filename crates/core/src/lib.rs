//! Marquee's service layer.
//!
//! [`Service`] is what the HTTP server and the CLI call: it owns the store, the key ring and the
//! in-memory serving state of every tenant, applies writes (store first, then memory), answers
//! recommendation queries from memory, and trains models in the background. It knows nothing
//! of HTTP — routes parse, call one method here, and serialize.

pub mod access;
pub mod admin;
pub mod audit;
pub mod auth;
pub mod config;
pub mod error;
pub mod experiments;
pub mod filter;
pub mod generate;
pub mod gorse;
pub mod image_labels;
pub mod import;
pub mod list_cache;
pub mod metering;
pub mod privacy;
mod profile;
mod recommend;
pub mod semantic;
pub mod snapshots;
pub mod state;
mod training;
pub mod types;
pub mod usage;
mod writes;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use marquee_platform::{GeneratedKey, KeyKind};
use marquee_store::{Store, Tenant};
use parking_lot::RwLock;
use tokio::sync::Semaphore;

/// How often the feedback log is folded into the keyed table (see `Service::run_background`).
const FOLD_INTERVAL: Duration = Duration::from_secs(1);

pub use access::Admitted;
pub use admin::{KeySpec, KeyUpdate};
pub use auth::{Access, Caller, RequestMeta};
pub use config::ServiceConfig;
pub use error::ServiceError;
pub use marquee_models::{self, ModelError};
pub use marquee_store;
pub use recommend::RecommendationList;
pub use recsys::AlgorithmConfig;
pub use state::TenantState;
pub use types::*;

/// Result of making sure an operator admin key exists at start-up.
#[derive(Debug)]
pub enum AdminKeySetup {
    /// `MARQUEE_ADMIN_KEY` was given and is registered.
    FromEnvironment,
    /// An operator key already existed; nothing to show.
    Existing,
    /// A new key was generated: show it once.
    Generated(String),
}

pub struct Service {
    store: Store,
    config: ServiceConfig,
    keys: auth::KeyRing,
    tenants: RwLock<HashMap<i64, Arc<TenantState>>>,
    /// A tenant whose read-only recommend routes answer without a key.
    public_tenant: RwLock<Option<String>>,
    /// Training is CPU-bound; one at a time leaves cores for serving.
    training_slots: Arc<Semaphore>,
    /// Where trained models are kept (see [`snapshots`]); none: retrain at every start.
    snapshot_dir: Option<PathBuf>,
    /// Whether tenants are loaded to serve (their saved models too) or, in the CLI's one-off
    /// import and train, only their data.
    serving: bool,
    /// The loaded models (embeddings, chat); empty unless the server loads some.
    models: arc_swap::ArcSwap<marquee_models::Runtime>,
    /// Wakes the item embedder after catalogue writes.
    embed_wakeup: tokio::sync::Notify,
    /// Request-rate, concurrency and token buckets of keys and tenants.
    limiter: Arc<marquee_platform::RateLimiter>,
    tenant_policies: access::TenantPolicies,
    /// Prices, budgets and quotas, and the usage ledger's writer.
    meter: Arc<metering::Meter>,
    /// Sealing of user data at rest.
    crypto: privacy::Crypto,
    /// Held while experiment impressions move from memory to the store.
    impression_flush: tokio::sync::Mutex<()>,
}

impl Service {
    /// Opens the service on a store: loads keys and every tenant's serving state.
    pub async fn open(store: Store, config: ServiceConfig) -> Result<Arc<Self>, ServiceError> {
        Self::open_with_snapshots(store, config, None).await
    }

    /// Like [`Service::open`], keeping trained models in `snapshot_dir` and starting from the
    /// newest one found there.
    pub async fn open_with_snapshots(
        store: Store,
        config: ServiceConfig,
        snapshot_dir: Option<PathBuf>,
    ) -> Result<Arc<Self>, ServiceError> {
        let service = Self::build(store, config, snapshot_dir, true).await?;
        for tenant in service.store.list_tenants().await? {
            service.load_tenant(&tenant).await?;
        }
        Ok(service)
    }

    /// Opens the service without loading any tenant: for one-off work on a single tenant (the
    /// CLI's import and train), which loads it with [`Service::load_tenant_by_name`]. Tenants
    /// are loaded without their saved models, which such work does not use.
    pub async fn open_lazy(
        store: Store,
        config: ServiceConfig,
        snapshot_dir: Option<PathBuf>,
    ) -> Result<Arc<Self>, ServiceError> {
        Self::build(store, config, snapshot_dir, false).await
    }

    async fn build(
        store: Store,
        config: ServiceConfig,
        snapshot_dir: Option<PathBuf>,
        serving: bool,
    ) -> Result<Arc<Self>, ServiceError> {
        let limiter = Arc::new(marquee_platform::RateLimiter::default());
        let meter = metering::Meter::start(
            store.clone(),
            Arc::clone(&limiter),
            config.ledger_commit_before_answer,
        );
        let service = Arc::new(Service {
            store,
            config,
            keys: auth::KeyRing::default(),
            tenants: RwLock::default(),
            public_tenant: RwLock::default(),
            training_slots: Arc::new(Semaphore::new(1)),
            snapshot_dir,
            serving,
            models: arc_swap::ArcSwap::from_pointee(marquee_models::Runtime::empty()),
            embed_wakeup: tokio::sync::Notify::new(),
            limiter,
            tenant_policies: access::TenantPolicies::default(),
            meter,
            crypto: privacy::Crypto::default(),
            impression_flush: tokio::sync::Mutex::new(()),
        });
        service.keys.refresh(&service.store).await?;
        service.tenant_policies.refresh(&service.store).await?;
        service.meter.load_prices(&service.store).await?;
        if serving {
            service.meter.settle_stale(&service.store).await?;
            service.meter.seed(&service.store).await?;
        }
        Ok(service)
    }

    /// The serving state of an existing tenant, loaded if needed; `None` if there is no such
    /// tenant.
    pub async fn load_tenant_by_name(
        &self,
        name: &str,
    ) -> Result<Option<Arc<TenantState>>, ServiceError> {
        if let Some(t) = self.tenant_by_name(name) {
            return Ok(Some(t));
        }
        match self.store.tenant_by_name(name).await? {
            Some(row) => Ok(Some(self.load_tenant(&row).await?)),
            None => Ok(None),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// Publishes (or with `None`, unpublishes) a tenant's read-only recommend routes to callers
    /// without a key.
    pub fn set_public_tenant(&self, name: Option<String>) {
        *self.public_tenant.write() = name;
    }

    // ------------------------------------------------------------------------------------
    // Tenants

    /// Loads a tenant's serving state from the store. Two loads of a tenant may race (a request
    /// and the background poll both seeing a new tenant): the state already in place wins, so
    /// writes applied to it are never dropped. Only a reload for a newer generation (data
    /// changed by another process) replaces it.
    async fn load_tenant(&self, tenant: &Tenant) -> Result<Arc<TenantState>, ServiceError> {
        self.load_tenant_from(tenant, false).await
    }

    /// Loads a tenant, starting from its newest model snapshot when there is one (the
    /// catalogue is laid out in the model's item order). `replace` forces the new state in
    /// (a newer snapshot that does not line up with the catalogue in memory).
    async fn load_tenant_from(
        &self,
        tenant: &Tenant,
        replace: bool,
    ) -> Result<Arc<TenantState>, ServiceError> {
        let state = Arc::new(TenantState::new(
            tenant.id,
            tenant.name.clone(),
            tenant.generation,
            self.config.list_cache_mb as u64 * (1 << 20),
        ));
        let snapshot = self.read_snapshot(tenant.id, self.serving).await;
        let order = snapshot.as_ref().map(|(meta, _)| meta.item_ids.as_slice());
        writes::load_state(&self.store, &self.config, &state, order).await?;
        if let Some((meta, model)) = snapshot {
            // Retrains keep the saved model's configuration, whether or not the model is loaded.
            if let Ok(config) =
                serde_json::from_value::<recsys::AlgorithmConfig>(meta.info.algorithm.clone())
            {
                *state.preferred_config.lock() = Some(config);
                state.tuned.store(true, Ordering::Release);
            }
            if let Some(model) = model {
                let positives: u64 = state
                    .catalog
                    .read()
                    .positive_counts()
                    .iter()
                    .map(|&c| c as u64)
                    .sum();
                state.events_since_training.store(
                    positives.saturating_sub(meta.info.interactions as u64),
                    Ordering::Release,
                );
                tracing::info!(tenant = %tenant.name, version = meta.info.version, "model loaded from its snapshot");
                // A user erased after this model's data was read (the retrain the erasure asked
                // for did not finish before a restart): ask again.
                let data_read_at = meta.info.trained_at.0 - meta.info.train_ms;
                if let Some((_, _, _, erased_at)) =
                    self.store.user_erasures(tenant.id, 1).await?.first()
                    && *erased_at >= data_read_at
                {
                    state.last_erasure_ms.store(*erased_at, Ordering::Release);
                    state.retrain_requested.store(true, Ordering::Release);
                }
                state.model.store(Some(state::ServingModel::start(
                    model,
                    meta.info,
                    self.config.ann_min_items,
                )));
            }
        }
        experiments::load_running(&self.store, &state).await?;
        let mut tenants = self.tenants.write();
        match tenants.get(&tenant.id) {
            Some(existing)
                if !replace
                    && existing.generation.load(Ordering::Acquire) >= tenant.generation as u64 =>
            {
                Ok(existing.clone())
            }
            _ => {
                tenants.insert(tenant.id, state.clone());
                Ok(state)
            }
        }
    }

    /// The newest readable snapshot of a tenant's model, if snapshots are kept.
    /// With `with_model` false only the metadata is read (the item order), not the model.
    async fn read_snapshot(
        &self,
        tenant_id: i64,
        with_model: bool,
    ) -> Option<(snapshots::SnapshotMeta, Option<recsys::Model>)> {
        let dir = self.snapshot_dir.clone()?;
        let version = snapshots::latest_version(&dir, tenant_id)?;
        let loaded = tokio::task::spawn_blocking(move || {
            if with_model {
                snapshots::load(&dir, tenant_id, version).map(|(meta, model)| (meta, Some(model)))
            } else {
                snapshots::read_meta(&dir, tenant_id, version).map(|meta| (meta, None))
            }
        })
        .await;
        match loaded {
            Ok(Ok(s)) => Some(s),
            Ok(Err(e)) => {
                tracing::warn!(tenant_id, version, error = %e, "ignoring an unreadable model snapshot");
                None
            }
            Err(e) => {
                tracing::warn!(tenant_id, error = %e, "reading a model snapshot failed");
                None
            }
        }
    }

    /// Picks up a model version trained by another process (`marquee train`, another node).
    async fn adopt_newer_model(&self, tenant: &Arc<TenantState>) -> Result<(), ServiceError> {
        let Some(dir) = self.snapshot_dir.clone() else {
            return Ok(());
        };
        let Some(latest) = snapshots::latest_version(&dir, tenant.id) else {
            return Ok(());
        };
        let current = tenant.model.load().as_ref().map_or(0, |m| m.info.version);
        if latest <= current || tenant.training.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some((meta, Some(model))) = self.read_snapshot(tenant.id, true).await else {
            return Ok(());
        };
        let aligned = snapshots::lines_up(&meta.item_ids, &tenant.catalog.read());
        if aligned {
            tracing::info!(tenant = %tenant.name, version = meta.info.version, "adopting a model trained elsewhere");
            tenant.events_since_training.store(0, Ordering::Release);
            *tenant.preferred_config.lock() = Some(model.config().clone());
            tenant.tuned.store(true, Ordering::Release);
            tenant.model.store(Some(state::ServingModel::start(
                model,
                meta.info,
                self.config.ann_min_items,
            )));
        } else if let Some(row) = self.store.tenant_by_id(tenant.id).await? {
            // The other process laid the catalogue out differently: reload in the model's order.
            self.load_tenant_from(&row, true).await?;
        }
        Ok(())
    }

    pub fn tenant(&self, id: i64) -> Option<Arc<TenantState>> {
        self.tenants.read().get(&id).cloned()
    }

    pub fn tenant_by_name(&self, name: &str) -> Option<Arc<TenantState>> {
        self.tenants
            .read()
            .values()
            .find(|t| t.name == name)
            .cloned()
    }

    pub fn tenants(&self) -> Vec<Arc<TenantState>> {
        let mut all: Vec<_> = self.tenants.read().values().cloned().collect();
        all.sort_by_key(|t| t.id);
        all
    }

    pub async fn create_tenant(&self, name: &str) -> Result<TenantInfo, ServiceError> {
        let tenant = admin::create_tenant(&self.store, name).await?;
        self.load_tenant(&tenant).await?;
        Ok(TenantInfo {
            name: tenant.name,
            created_at: Timestamp(tenant.created_at),
        })
    }

    /// The tenant named `name`, created if missing (for imports and the demo).
    pub async fn ensure_tenant(&self, name: &str) -> Result<Arc<TenantState>, ServiceError> {
        if let Some(t) = self.tenant_by_name(name) {
            return Ok(t);
        }
        let tenant = admin::ensure_tenant(&self.store, name).await?;
        self.load_tenant(&tenant).await
    }

    pub async fn list_tenants(&self) -> Result<Vec<TenantInfo>, ServiceError> {
        admin::list_tenants(&self.store).await
    }

    // ------------------------------------------------------------------------------------
    // Keys

    /// Resolves the secret presented with a request. `None` (no key given) resolves to the
    /// published tenant, if there is one, for read-only recommend routes.
    pub async fn authenticate(
        &self,
        secret: Option<&str>,
        meta: Arc<RequestMeta>,
    ) -> Result<Caller, ServiceError> {
        let Some(secret) = secret else {
            let public = self.public_tenant.read().clone();
            let tenant = public.and_then(|name| self.tenant_by_name(&name));
            return match tenant {
                Some(t) => Ok(Caller {
                    access: Access::Public,
                    tenant: Some(t),
                    policy: Default::default(),
                    meta,
                }),
                None => Err(ServiceError::Unauthorized),
            };
        };
        let key = self
            .keys
            .authenticate(&self.store, secret)
            .await
            .ok_or(ServiceError::Unauthorized)?;
        let tenant = match key.tenant_id {
            Some(id) => Some(match self.tenant(id) {
                Some(t) => t,
                // Created by another process since our last poll.
                None => {
                    let row = self
                        .store
                        .tenant_by_id(id)
                        .await?
                        .ok_or(ServiceError::Unauthorized)?;
                    self.load_tenant(&row).await?
                }
            }),
            None => None,
        };
        Ok(Caller {
            access: Access::Key {
                id: key.id.clone(),
                kind: key.kind,
            },
            tenant,
            policy: Arc::clone(&key.policy),
            meta,
        })
    }

    /// Makes sure the operator can get in: registers `MARQUEE_ADMIN_KEY` if given, otherwise
    /// generates an operator key the first time (and only then).
    pub async fn ensure_admin_key(
        &self,
        from_env: Option<&str>,
    ) -> Result<AdminKeySetup, ServiceError> {
        if let Some(secret) = from_env {
            if !marquee_platform::looks_like_key(secret) {
                return Err(ServiceError::invalid(
                    "MARQUEE_ADMIN_KEY",
                    "must be 16-256 printable ASCII characters without spaces",
                ));
            }
            let hash = marquee_platform::hash_secret(secret);
            match self.store.api_key_by_hash(&hash).await? {
                Some(row) if row.revoked_at.is_none() && row.tenant_id.is_none() => {}
                Some(_) => {
                    return Err(ServiceError::Conflict(
                        "MARQUEE_ADMIN_KEY matches a revoked or tenant key".into(),
                    ));
                }
                None => {
                    let generated = GeneratedKey::from_secret(secret);
                    let row = admin::insert_key(
                        &self.store,
                        &generated,
                        None,
                        KeyKind::Admin,
                        Some("MARQUEE_ADMIN_KEY".into()),
                    )
                    .await?;
                    self.keys.insert(&row);
                }
            }
            return Ok(AdminKeySetup::FromEnvironment);
        }
        let existing = self.store.list_api_keys(None).await?;
        if existing.iter().any(|k| k.revoked_at.is_none()) {
            return Ok(AdminKeySetup::Existing);
        }
        let generated = GeneratedKey::new(KeyKind::Admin);
        let row = admin::insert_key(
            &self.store,
            &generated,
            None,
            KeyKind::Admin,
            Some("generated at first start".into()),
        )
        .await?;
        self.keys.insert(&row);
        Ok(AdminKeySetup::Generated(generated.secret))
    }

    // ------------------------------------------------------------------------------------
    // Background work

    /// The loaded models.
    pub fn models(&self) -> Arc<marquee_models::Runtime> {
        self.models.load_full()
    }

    /// Puts a set of loaded models in service (at start-up).
    pub fn set_models(&self, runtime: Arc<marquee_models::Runtime>) {
        self.models.store(runtime);
        self.embed_wakeup.notify_one();
    }

    /// Picks up changes made by other processes (keys, tenants, imports), records key use,
    /// and retrains tenants that have enough new feedback; folds the feedback log (in a task of
    /// its own). Runs until the process ends.
    pub async fn run_background(self: Arc<Self>) {
        tokio::spawn(Arc::clone(&self).fold_feedback_log());
        let interval = Duration::from_secs_f64(self.config.poll_interval_secs.max(0.1));
        loop {
            if let Err(e) = self.poll_once().await {
                tracing::warn!(error = %e, "background poll failed");
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// Keeps the store's feedback log short: acknowledged events are folded into the keyed
    /// feedback table every [`FOLD_INTERVAL`] (readers fold on their own as well, so this is
    /// about the log's size, not about correctness).
    async fn fold_feedback_log(self: Arc<Self>) {
        loop {
            tokio::time::sleep(FOLD_INTERVAL).await;
            if let Err(e) = self.store.fold_feedback().await {
                tracing::warn!(error = %e, "folding the feedback log failed; retrying");
            }
        }
    }

    async fn poll_once(self: &Arc<Self>) -> Result<(), ServiceError> {
        self.keys.refresh(&self.store).await?;
        self.tenant_policies.refresh(&self.store).await?;
        self.meter.load_prices(&self.store).await?;
        self.meter.settle_stale(&self.store).await?;
        let used = self.keys.take_used();
        if !used.is_empty() {
            self.store
                .touch_api_keys(&used, marquee_store::now_ms())
                .await?;
        }
        for tenant in self.store.list_tenants().await? {
            let current = self.tenant(tenant.id);
            let stale = current
                .as_ref()
                .is_none_or(|t| t.generation.load(Ordering::Acquire) != tenant.generation as u64);
            if stale {
                tracing::info!(tenant = %tenant.name, "loading tenant data changed by another process");
                self.load_tenant(&tenant).await?;
            }
        }
        for tenant in self.tenants() {
            self.adopt_newer_model(&tenant).await?;
            // Adopting may have replaced the tenant's state.
            let Some(tenant) = self.tenant(tenant.id) else {
                continue;
            };
            self.flush_impressions(&tenant).await?;
            if self.needs_training(&tenant) {
                self.spawn_training(tenant);
            }
        }
        Ok(())
    }

    /// Store reachable, and every tenant with feedback has a model (or its training failed,
    /// which `/readyz` reports).
    pub async fn readiness(&self) -> Readiness {
        let store_ok = self.store.ping().await.is_ok();
        let tenants = self
            .tenants()
            .iter()
            .map(|t| {
                let model = t.model.load();
                let has_data = t.users.read().event_count() > 0;
                TenantReadiness {
                    tenant: t.name.clone(),
                    model_version: model.as_ref().map(|m| m.info.version),
                    training: t.training.load(Ordering::Acquire),
                    waiting_for_model: has_data && model.is_none(),
                    last_error: t.training_state.lock().last_error.clone(),
                }
            })
            .collect::<Vec<_>>();
        let ready = store_ok
            && tenants
                .iter()
                .all(|t| !t.waiting_for_model || (t.last_error.is_some() && !t.training));
        Readiness {
            ready,
            store: store_ok,
            tenants,
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct TenantReadiness {
    pub tenant: String,
    pub model_version: Option<i64>,
    pub training: bool,
    pub waiting_for_model: bool,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub store: bool,
    pub tenants: Vec<TenantReadiness>,
}
