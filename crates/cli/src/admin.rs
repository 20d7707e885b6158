//! `marquee tenants …` and `marquee keys …`: administration straight on the store.

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use marquee_core::admin;
use marquee_platform::KeyKind;

use crate::config::{FileConfig, MasterKeyArgs, StoreArgs};

#[derive(Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant; prints its name.
    Create {
        /// 1-64 characters of A-Z a-z 0-9 _ . -
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List tenants, one per line.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    /// Full access to the tenant's data (for the tenant's servers).
    Secret,
    /// Recommend and send feedback only (safe in client apps).
    Publishable,
    /// Manages keys: of its tenant with --tenant, of everything without.
    Admin,
}

impl From<Kind> for KeyKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Secret => KeyKind::Secret,
            Kind::Publishable => KeyKind::Publishable,
            Kind::Admin => KeyKind::Admin,
        }
    }
}

#[derive(Args)]
pub struct CreateKey {
    /// Tenant the key belongs to (required except for operator admin keys).
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long, value_enum)]
    kind: Kind,
    /// A label to tell keys apart.
    #[arg(long)]
    name: Option<String>,
    /// Comma-separated capability scopes (e.g. `recommend,feedback:write`); all the kind
    /// allows when absent.
    #[arg(long, value_delimiter = ',')]
    scopes: Option<Vec<String>>,
    /// Comma-separated models the key may use; all when absent.
    #[arg(long, value_delimiter = ',')]
    models: Option<Vec<String>>,
    /// The key's whole policy as JSON (scopes, models, allowed_origins, limits, quotas,
    /// budget), as in the HTTP API; --scopes and --models override its fields.
    #[arg(long, value_name = "JSON")]
    policy: Option<String>,
    /// The key stops working after this many days.
    #[arg(long, value_name = "DAYS")]
    expires_in_days: Option<u32>,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints only the key on stdout (it is shown once).
    Create(CreateKey),
    /// List a tenant's keys (or the operator keys without --tenant) as JSON lines; secrets are never shown.
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a key by its id (`key_…`).
    Revoke {
        key_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Write a new master key (the key that seals user data at rest) to FILE, readable by its
    /// owner only; prints nothing secret.
    GenerateMaster {
        /// Where to write it; must not exist.
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
    /// Re-wrap every tenant's data key with a new master key, without downtime: running servers
    /// keep serving with the data keys they hold; restart them with the new key (give the old
    /// one as --previous-master-key-file until all are restarted).
    RotateMaster {
        /// The new master key (see `marquee keys generate-master`).
        #[arg(long, value_name = "FILE")]
        new_key_file: std::path::PathBuf,
        #[command(flatten)]
        master: MasterKeyArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
}

async fn open(store: &StoreArgs) -> anyhow::Result<marquee_core::marquee_store::Store> {
    let file = FileConfig::load(store.config.as_deref())?;
    store.open_store(&file).await
}

pub async fn tenants(cmd: TenantsCommand) -> anyhow::Result<()> {
    match cmd {
        TenantsCommand::Create { name, store } => {
            let store = open(&store).await?;
            let tenant = admin::create_tenant(&store, &name).await?;
            marquee_core::audit::record_cli(
                &store,
                Some(tenant.id),
                "tenant.create",
                Some(&tenant.name),
                None,
            )
            .await?;
            println!("{}", tenant.name);
        }
        TenantsCommand::List { store } => {
            let store = open(&store).await?;
            for t in admin::list_tenants(&store).await? {
                println!("{}", t.name);
            }
        }
    }
    Ok(())
}

pub async fn keys(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Create(args) => {
            let store = open(&args.store).await?;
            let mut policy: marquee_platform::KeyPolicy = match &args.policy {
                Some(json) => serde_json::from_str(json).context("--policy")?,
                None => Default::default(),
            };
            if let Some(scopes) = &args.scopes {
                policy.scopes = Some(
                    scopes
                        .iter()
                        .map(|s| {
                            marquee_platform::Capability::parse(s.trim())
                                .ok_or_else(|| anyhow::anyhow!("--scopes: unknown scope `{s}`"))
                        })
                        .collect::<anyhow::Result<_>>()?,
                );
            }
            if let Some(models) = &args.models {
                policy.models = Some(models.clone());
            }
            let spec = admin::KeySpec {
                name: args.name,
                policy,
                expires_at: args
                    .expires_in_days
                    .map(|d| marquee_core::marquee_store::now_ms() + i64::from(d) * 86_400_000),
            };
            let (created, row) =
                admin::create_key(&store, args.tenant.as_deref(), args.kind.into(), spec).await?;
            marquee_core::audit::record_cli(
                &store,
                row.tenant_id,
                "key.create",
                Some(&row.id),
                Some(serde_json::json!({"kind": created.info.kind, "policy": created.info.policy})),
            )
            .await?;
            eprintln!(
                "created {} key {} (shown once; store it now)",
                created.info.kind, created.info.id
            );
            println!("{}", created.key);
        }
        KeysCommand::List { tenant, store } => {
            let store = open(&store).await?;
            for k in admin::list_keys(&store, tenant.as_deref()).await? {
                println!("{}", serde_json::to_string(&k)?);
            }
        }
        KeysCommand::Revoke { key_id, store } => {
            let store = open(&store).await?;
            let tenant_id = store
                .api_key_by_id(&key_id)
                .await?
                .and_then(|k| k.tenant_id);
            admin::revoke_key(&store, &key_id).await?;
            marquee_core::audit::record_cli(&store, tenant_id, "key.revoke", Some(&key_id), None)
                .await?;
            eprintln!("revoked {key_id}");
        }
        KeysCommand::GenerateMaster { out } => {
            let key = crate::config::write_new_master_key(&out)?;
            eprintln!(
                "wrote master key {} to {} (keep it apart from the data, and backed up)",
                key.id(),
                out.display()
            );
        }
        KeysCommand::RotateMaster {
            new_key_file,
            master,
            store,
        } => {
            let file = FileConfig::load(store.config.as_deref())?;
            let current = master.load(&file, false)?;
            let new = marquee_platform::MasterKey::from_file(&new_key_file)
                .map_err(|e| anyhow::anyhow!("{}: {e}", new_key_file.display()))?;
            let store = store.open_store(&file).await?;
            let n = marquee_core::privacy::rotate_master_key(&store, &current, &new).await?;
            marquee_core::audit::record_cli(
                &store,
                None,
                "master_key.rotate",
                Some(new.id()),
                Some(serde_json::json!({"data_keys": n, "from": current.current.id()})),
            )
            .await?;
            eprintln!(
                "re-wrapped {n} data key(s) with master key {}; restart servers with \
                 --master-key-file {} (the old key is no longer needed once all have restarted)",
                new.id(),
                new_key_file.display()
            );
        }
    }
    Ok(())
}
