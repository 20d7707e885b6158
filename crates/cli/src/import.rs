//! `marquee import …`: bulk loads into a tenant, with a progress bar.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use marquee_core::import::{self, Dataset, InteractionsFormat};

use crate::config::StoreArgs;

#[derive(Subcommand)]
pub enum ImportCommand {
    /// A MovieLens directory: 100K (`u.data`, `u.item`) or latest/20M/25M (`ratings.csv`,
    /// `movies.csv`, optional `tags.csv`, `links.csv`). Titles, genres (as categories), tags and
    /// ratings (as `rating` feedback) are loaded under the dataset's own ids.
    Movielens {
        /// The dataset's directory.
        path: PathBuf,
        /// Tenant to load into (created if missing).
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// A CSV/TSV interaction log with columns user, item and optionally type, value, timestamp
    /// (a header names them; without one: `user item [value [timestamp]]`). Unknown items are
    /// created with their id only.
    Interactions {
        path: PathBuf,
        #[arg(long)]
        tenant: String,
        /// Field separator (default: guessed from the first line).
        #[arg(long)]
        delimiter: Option<char>,
        /// Feedback type for rows without a type column.
        #[arg(long, default_value = "view")]
        r#type: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(cmd: ImportCommand) -> anyhow::Result<()> {
    let (tenant_name, store, data) = match cmd {
        ImportCommand::Movielens {
            path,
            tenant,
            store,
        } => {
            let data = import::movielens_dir(&path)?;
            (tenant, store, data)
        }
        ImportCommand::Interactions {
            path,
            tenant,
            delimiter,
            r#type,
            store,
        } => {
            let delimiter = match delimiter {
                Some(c) if c.is_ascii() => Some(c as u8),
                Some(c) => anyhow::bail!("the delimiter must be an ASCII character, not {c:?}"),
                None => None,
            };
            let format = InteractionsFormat {
                delimiter,
                default_type: r#type,
            };
            let data = import::interactions_file(&path, &format)?;
            (tenant, store, data)
        }
    };
    load(&tenant_name, &store, data).await
}

async fn load(tenant_name: &str, store: &StoreArgs, data: Dataset) -> anyhow::Result<()> {
    let service = store.open_service_lazy().await?;
    let tenant = service.ensure_tenant(tenant_name).await?;
    // Generic logs name items the catalogue may already describe better: keep those.
    let items: Vec<_> = {
        let catalog = tenant.catalog.read();
        data.items
            .into_iter()
            .filter(|i| i.title.is_some() || catalog.live_index(&i.id).is_none())
            .collect()
    };
    let (n_items, n_events) = (items.len(), data.feedback.len());
    let bar = ProgressBar::new((n_items + n_events) as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("importing into {tenant_name}"));
    let started = std::time::Instant::now();
    service
        .import(&tenant, items, data.feedback, &|n| bar.inc(n))
        .await
        .context("import failed; nothing of the failing batch was stored")?;
    bar.finish_and_clear();
    // Tell running servers to reload this tenant.
    service.store().bump_generation(tenant.id).await?;
    eprintln!(
        "imported {n_items} items and {n_events} feedback events into tenant {tenant_name} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
