//! `marquee serve`: the HTTP server.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use marquee_core::AdminKeySetup;
use marquee_server::ServerConfig;
use tracing_subscriber::EnvFilter;

use crate::config::{FileConfig, StoreArgs};
use crate::demo;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "MARQUEE_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
    /// Load the demo catalogue (MovieLens latest-small) into tenant `demo`, train, and answer the
    /// demo tenant's read-only recommend routes without a key.
    #[arg(long)]
    demo: bool,
    #[command(flatten)]
    models: crate::models_cmd::ModelsDirArgs,
    /// Start without loading any model (recommendations only).
    #[arg(long)]
    no_models: bool,
    /// Log format.
    #[arg(long, env = "MARQUEE_LOG_FORMAT", value_parser = ["text", "json"])]
    log_format: Option<String>,
}

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

fn init_logging(format: &str) {
    let filter = EnvFilter::try_from_env("MARQUEE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let file = FileConfig::load(args.store.config.as_deref())?;
    init_logging(
        args.log_format
            .as_deref()
            .or(file.log_format.as_deref())
            .unwrap_or("text"),
    );
    let listen = args
        .listen
        .clone()
        .or_else(|| file.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.into());
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("--listen {listen:?} is not an address like 127.0.0.1:8080"))?;

    let service = args.store.open_service_with(&file).await?;

    let admin_env = std::env::var("MARQUEE_ADMIN_KEY")
        .ok()
        .filter(|s| !s.is_empty());
    match service.ensure_admin_key(admin_env.as_deref()).await? {
        AdminKeySetup::Generated(secret) => {
            println!("Operator admin key (shown once, store it now): {secret}");
        }
        AdminKeySetup::FromEnvironment => {
            tracing::info!("operator admin key from MARQUEE_ADMIN_KEY")
        }
        AdminKeySetup::Existing => {}
    }

    if args.demo {
        demo::load(&service).await?;
        service.set_public_tenant(Some(demo::TENANT.into()));
    } else if let Some(public) = &file.public_tenant {
        service.set_public_tenant(Some(public.clone()));
    }

    if !args.no_models {
        let dir = args
            .models
            .models_dir
            .clone()
            .or_else(|| file.models_dir.clone())
            .unwrap_or_else(marquee_models::pull::default_models_dir);
        let config = file.models.clone().unwrap_or_default();
        let runtime = tokio::task::spawn_blocking(move || {
            marquee_models::Runtime::load(
                &dir,
                marquee_models::manifest::Manifest::builtin(),
                &config,
            )
        })
        .await?;
        let infos = runtime.models();
        if infos.is_empty() {
            tracing::info!(
                "no models in the models directory: recommendations only (add models with `marquee models pull`)"
            );
        }
        service.set_models(Arc::new(runtime));
    }

    tokio::spawn(Arc::clone(&service).run_background());
    tokio::spawn(Arc::clone(&service).run_item_embedder());

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let config = ServerConfig {
        body_limit: file
            .body_limit_bytes
            .unwrap_or(ServerConfig::default().body_limit),
        upstreams: file.upstream.clone(),
    };
    println!("Marquee listening on http://{local}");
    if args.demo {
        println!("Demo tenant `demo` is public (read-only recommend routes, no key). Try:");
        println!("  curl http://{local}/recommend/1/1");
        println!("  curl 'http://{local}/v1/recommend/1?n=5&category=Comedy'");
        println!("  curl http://{local}/v1/items/260/similar");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    marquee_server::serve(
        listener,
        marquee_server::router(service.clone(), config),
        shutdown_signal(),
    )
    .await?;
    service.store().close().await;
    tracing::info!("stopped");
    Ok(())
}
