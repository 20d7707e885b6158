//! Where the data lives and how to open it: shared by every subcommand that touches the store.
//!
//! Settings come from, in order of precedence: command-line flags, `MARQUEE_*` environment
//! variables (clap reads both), the `--config` TOML file, built-in defaults.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use marquee_core::{Service, ServiceConfig, marquee_store::Store};
use marquee_platform::{MasterKey, MasterKeys};
use serde::Deserialize;

/// Options every store-using subcommand takes.
#[derive(Args, Clone, Debug)]
pub struct StoreArgs {
    /// Directory of the embedded database (created if missing).
    #[arg(long, env = "MARQUEE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL instead of the embedded one: `postgres://user:pass@host/db` or `sqlite://PATH`.
    #[arg(
        long,
        env = "MARQUEE_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// TOML configuration file (see README: Configuration).
    #[arg(long, env = "MARQUEE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

pub const DEFAULT_DATA_DIR: &str = "marquee-data";

/// Where the master key comes from. It seals the tenants' data keys, which seal user data at
/// rest; it must never be stored beside the data (a copy of the database alone must reveal
/// nothing), so it is read from a file or the environment.
#[derive(Args, Clone, Debug, Default)]
pub struct MasterKeyArgs {
    /// File holding the master key (32 bytes, or their hex or base64). Default:
    /// `$XDG_CONFIG_HOME/marquee/master.key` (`~/.config/…`), created at first start.
    /// `MARQUEE_MASTER_KEY` (the key itself, base64 or hex) takes precedence over the file.
    #[arg(long, env = "MARQUEE_MASTER_KEY_FILE", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
    /// A previous master key still accepted while a rotation completes (see
    /// `marquee keys rotate-master`).
    #[arg(long, env = "MARQUEE_PREVIOUS_MASTER_KEY_FILE", value_name = "FILE")]
    pub previous_master_key_file: Option<PathBuf>,
}

/// The default master key file: in the user's configuration directory, apart from the data.
pub fn default_master_key_file() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("marquee").join("master.key")
}

/// Writes a new master key to `path` (readable by its owner only); fails if the file exists.
/// The file appears whole or not at all (written aside, then linked into place), so a process
/// starting at the same moment never reads a half-written key.
pub fn write_new_master_key(path: &Path) -> anyhow::Result<MasterKey> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let key = MasterKey::generate();
    let aside = path.with_extension(format!("partial-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = (|| -> std::io::Result<()> {
        use std::io::Write;
        let mut f = options.open(&aside)?;
        writeln!(f, "{}", key.to_base64())?;
        f.sync_all()?;
        std::fs::hard_link(&aside, path)
    })();
    let _ = std::fs::remove_file(&aside);
    written.with_context(|| format!("cannot create the master key file {}", path.display()))?;
    Ok(key)
}

impl MasterKeyArgs {
    /// The master keys: from `MARQUEE_MASTER_KEY`, the given file, the configuration file's
    /// `master_key_file`, or the default file — created there with a new key when `create` and
    /// no key exists yet.
    pub fn load(&self, file: &FileConfig, create: bool) -> anyhow::Result<MasterKeys> {
        let current = if let Some(value) = std::env::var("MARQUEE_MASTER_KEY")
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            MasterKey::from_material(value.as_bytes())
                .map_err(|e| anyhow::anyhow!("MARQUEE_MASTER_KEY: {e}"))?
        } else {
            let path = self
                .master_key_file
                .clone()
                .or_else(|| file.master_key_file.clone())
                .unwrap_or_else(default_master_key_file);
            let created = if !path.exists() && create {
                match write_new_master_key(&path) {
                    Ok(key) => {
                        tracing::warn!(
                            file = %path.display(),
                            "generated a master key for user data at rest; back it up: without \
                             it the encrypted user attributes cannot be read"
                        );
                        Some(key)
                    }
                    // Another process created it first: use theirs.
                    Err(_) if path.exists() => None,
                    Err(e) => return Err(e),
                }
            } else {
                None
            };
            if let Some(key) = created {
                key
            } else {
                MasterKey::from_file(&path)
                    .map_err(|e| anyhow::anyhow!("master key {}: {e}", path.display()))?
            }
        };
        let mut keys = MasterKeys::new(current);
        if let Some(previous) = &self.previous_master_key_file {
            keys.previous.push(
                MasterKey::from_file(previous)
                    .map_err(|e| anyhow::anyhow!("master key {}: {e}", previous.display()))?,
            );
        }
        Ok(keys)
    }
}

/// The configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    /// Largest request body, bytes.
    pub body_limit_bytes: Option<usize>,
    /// Tenant whose read-only recommend routes answer without a key.
    pub public_tenant: Option<String>,
    /// `text` or `json`.
    pub log_format: Option<String>,
    /// PEM certificate chain for HTTPS (with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS (with `tls_cert`).
    pub tls_key: Option<PathBuf>,
    /// Extra plain-HTTP listener serving only `GET /metrics`, without a key.
    pub metrics_listen: Option<String>,
    #[serde(default)]
    pub service: Option<ServiceConfig>,
    /// Where model weights are (`marquee models pull` puts them there).
    pub models_dir: Option<PathBuf>,
    /// Admission limits of the loaded models.
    #[serde(default)]
    pub models: Option<marquee_models::runtime::RuntimeConfig>,
    /// File holding the master key that seals user data at rest (see `--master-key-file`).
    pub master_key_file: Option<PathBuf>,
    /// Models served by upstream OpenAI-compatible engines (`[[upstream]]` tables).
    #[serde(default)]
    pub upstream: Vec<marquee_server::upstream::UpstreamModel>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("invalid configuration file {}", path.display()))
    }
}

impl StoreArgs {
    /// The data directory: given, or the default when no database URL is given. It holds the
    /// embedded database and the trained-model snapshots.
    pub fn data_dir(&self, file: &FileConfig) -> Option<PathBuf> {
        self.data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .or_else(|| {
                (self.database_url.is_none() && file.database_url.is_none())
                    .then(|| PathBuf::from(DEFAULT_DATA_DIR))
            })
    }

    /// The store these options point at, with the file configuration applied.
    pub async fn open_store(&self, file: &FileConfig) -> anyhow::Result<Store> {
        let url = self
            .database_url
            .clone()
            .or_else(|| file.database_url.clone());
        match (url, self.data_dir(file)) {
            (Some(url), _) => Store::open(&url).await.context("cannot open the database"),
            (None, Some(dir)) => Store::open_data_dir(&dir)
                .await
                .with_context(|| format!("cannot open the database in {}", dir.display())),
            (None, None) => unreachable!("data_dir defaults when there is no URL"),
        }
    }

    /// The service on this store (loads every tenant's serving state), keeping trained models
    /// in `<data dir>/recommenders`.
    /// The service without any tenant loaded, for work on one tenant (import, train).
    pub async fn open_service_lazy(&self) -> anyhow::Result<Arc<Service>> {
        let file = FileConfig::load(self.config.as_deref())?;
        let store = self.open_store(&file).await?;
        let snapshots = self.data_dir(&file).map(|d| d.join("recommenders"));
        Ok(Service::open_lazy(store, file.service.clone().unwrap_or_default(), snapshots).await?)
    }

    pub async fn open_service_with(&self, file: &FileConfig) -> anyhow::Result<Arc<Service>> {
        let store = self.open_store(file).await?;
        let snapshots = self.data_dir(file).map(|d| d.join("recommenders"));
        Ok(
            Service::open_with_snapshots(
                store,
                file.service.clone().unwrap_or_default(),
                snapshots,
            )
            .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every TOML example in the README is a valid configuration file.
    #[test]
    fn the_readme_configuration_examples_parse() {
        let readme = include_str!("../../../README.md");
        let blocks: Vec<&str> = readme
            .split("```toml\n")
            .skip(1)
            .map(|b| b.split("```").next().unwrap())
            .collect();
        assert!(blocks.len() >= 2);
        for block in blocks {
            let parsed: Result<FileConfig, _> = toml::from_str(block);
            assert!(parsed.is_ok(), "{block}\n{parsed:?}");
        }
    }
}
