//! The demo catalogue: MovieLens latest-small, shipped inside the binary (see
//! `demo/ml-latest-small/README.txt` for its licence), loaded into tenant `demo`.

use std::sync::Arc;

use anyhow::Context;
use marquee_core::{Service, import};

pub const TENANT: &str = "demo";

const MOVIES: &[u8] = include_bytes!("../../../demo/ml-latest-small/movies.csv");
const RATINGS: &[u8] = include_bytes!("../../../demo/ml-latest-small/ratings.csv");
const TAGS: &[u8] = include_bytes!("../../../demo/ml-latest-small/tags.csv");
const LINKS: &[u8] = include_bytes!("../../../demo/ml-latest-small/links.csv");

/// Creates tenant `demo` and fills it with the demo catalogue, unless it already has items.
pub async fn load(service: &Arc<Service>) -> anyhow::Result<()> {
    let tenant = service.ensure_tenant(TENANT).await?;
    if tenant.catalog.read().live_count() > 0 {
        tracing::info!("demo tenant already loaded");
        return Ok(());
    }
    let data = import::movielens_csv(MOVIES, RATINGS, Some(TAGS), Some(LINKS))
        .context("the embedded demo catalogue is unreadable")?;
    let started = std::time::Instant::now();
    let (items, events) = (data.items.len(), data.feedback.len());
    service
        .import(&tenant, data.items, data.feedback, &|_| {})
        .await?;
    tracing::info!(
        items,
        events,
        ms = started.elapsed().as_millis() as u64,
        "loaded the demo catalogue"
    );
    Ok(())
}

/// The name of the demo tenant's key made at each `--demo` start.
const KEY_NAME: &str = "demo key (printed at start)";

/// A fresh secret key of the demo tenant, for the SDK examples (profiles and user data need
/// more than the public read-only routes); the one printed at the previous start is revoked.
pub async fn key(service: &Arc<Service>) -> anyhow::Result<String> {
    let store = service.store();
    for old in marquee_core::admin::list_keys(store, Some(TENANT)).await? {
        if old.name.as_deref() == Some(KEY_NAME) && old.revoked_at.is_none() {
            marquee_core::admin::revoke_key(store, &old.id).await?;
        }
    }
    let spec = marquee_core::KeySpec {
        name: Some(KEY_NAME.into()),
        ..Default::default()
    };
    let (created, _) = marquee_core::admin::create_key(
        store,
        Some(TENANT),
        marquee_platform::KeyKind::Secret,
        spec,
    )
    .await?;
    Ok(created.key)
}
