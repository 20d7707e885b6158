//! `marquee tenants …` and `marquee keys …`: administration straight on the store.

use clap::{Args, Subcommand, ValueEnum};
use marquee_core::admin;
use marquee_platform::KeyKind;

use crate::config::{FileConfig, StoreArgs};

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
            let (created, _) =
                admin::create_key(&store, args.tenant.as_deref(), args.kind.into(), args.name)
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
            admin::revoke_key(&store, &key_id).await?;
            eprintln!("revoked {key_id}");
        }
    }
    Ok(())
}
