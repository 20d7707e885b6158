//! `marquee serve`: the HTTP server.

use std::net::SocketAddr;
use std::path::PathBuf;
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
    #[command(flatten)]
    master: crate::config::MasterKeyArgs,
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
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, env = "MARQUEE_TLS_CERT", value_name = "PATH")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, env = "MARQUEE_TLS_KEY", value_name = "PATH")]
    tls_key: Option<PathBuf>,
    /// Also serve `GET /metrics` without a key, over plain HTTP, on this address (keep it on a
    /// private network: the main listener's /metrics needs the operator key).
    #[arg(long, env = "MARQUEE_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<String>,
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

/// The TLS configuration, when both a certificate and a key are given; an error when only one
/// is, since serving plain HTTP instead of the HTTPS asked for would be a silent downgrade.
fn tls_config(
    args: &ServeArgs,
    file: &FileConfig,
) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    let cert = args.tls_cert.clone().or_else(|| file.tls_cert.clone());
    let key = args.tls_key.clone().or_else(|| file.tls_key.clone());
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(marquee_server::load_tls_config(&cert, &key)?)),
        (Some(_), None) => {
            anyhow::bail!("--tls-cert needs --tls-key (or `tls_key` in the configuration file)")
        }
        (None, Some(_)) => {
            anyhow::bail!("--tls-key needs --tls-cert (or `tls_cert` in the configuration file)")
        }
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
    let metrics_addr: Option<SocketAddr> = args
        .metrics_listen
        .clone()
        .or_else(|| file.metrics_listen.clone())
        .map(|m| {
            m.parse().with_context(|| {
                format!("--metrics-listen {m:?} is not an address like 127.0.0.1:9090")
            })
        })
        .transpose()?;
    // Checked before the store is opened: a TLS mistake should stop start-up at once.
    let tls = tls_config(&args, &file)?;

    let service = args.store.open_service_with(&file).await?;
    // User data is sealed at rest with the tenants' data keys, wrapped by this master key.
    let master = args.master.load(&file, true)?;
    tracing::info!(
        master_key = master.current.id(),
        "user data is encrypted at rest"
    );
    service.set_master_keys(master).await?;

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

    let mut demo_key = None;
    if args.demo {
        demo::load(&service).await?;
        service.set_public_tenant(Some(demo::TENANT.into()));
        demo_key = Some(demo::key(&service).await?);
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
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("Marquee listening on {scheme}://{local}");
    if args.demo {
        println!("Demo tenant `demo` is public (read-only recommend routes, no key). Try:");
        println!("  curl {scheme}://{local}/recommend/1/1");
        println!("  curl '{scheme}://{local}/v1/recommend/1?n=5&category=Comedy'");
        println!("  curl {scheme}://{local}/v1/items/260/similar");
        if let Some(key) = &demo_key {
            println!("Demo tenant key: {key}");
            println!(
                "  (a secret key of `demo`, for the SDK examples: MARQUEE_BASE_URL={scheme}://{local} MARQUEE_API_KEY=… MARQUEE_USER_ID=1)"
            );
        }
    }

    // One shutdown signal for every listener.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let metrics_server = match metrics_addr {
        Some(metrics_addr) => {
            let metrics_listener = tokio::net::TcpListener::bind(metrics_addr)
                .await
                .with_context(|| format!("cannot listen on {metrics_addr} for metrics"))?;
            println!(
                "Metrics (no key) on http://{}/metrics",
                metrics_listener.local_addr()?
            );
            Some(tokio::spawn(marquee_server::serve(
                metrics_listener,
                marquee_server::metrics::scrape_router(),
                stopped(stop_rx.clone()),
            )))
        }
        None => None,
    };
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let router = marquee_server::router(service.clone(), config);
    match tls {
        Some(tls) => marquee_server::serve_tls(listener, router, tls, stopped(stop_rx)).await?,
        None => marquee_server::serve(listener, router, stopped(stop_rx)).await?,
    }
    if let Some(metrics_server) = metrics_server {
        match metrics_server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the metrics listener failed"),
            Err(e) => tracing::warn!(error = %e, "the metrics listener task failed"),
        }
    }
    // Usage rows are written behind the answers: commit what the last requests queued.
    if !service.meter().flush().await {
        tracing::error!("usage rows of the last requests could not be written to the ledger");
    }
    service.store().close().await;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn tls_from(flags: &[&str], file: &str) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
        let cli = Cli::try_parse_from(std::iter::once("serve").chain(flags.iter().copied()))
            .expect("flags parse");
        let file: FileConfig = toml::from_str(file).expect("configuration parses");
        tls_config(&cli.serve, &file)
    }

    #[test]
    fn tls_needs_both_certificate_and_key() {
        assert!(tls_from(&[], "").unwrap().is_none());
        let err = tls_from(&["--tls-cert", "server.crt"], "").unwrap_err();
        assert!(err.to_string().contains("--tls-key"), "{err}");
        let err = tls_from(&[], "tls_key = \"server.key\"").unwrap_err();
        assert!(err.to_string().contains("--tls-cert"), "{err}");
        // Both given, from flag and file: the files are read, and these do not exist.
        let err = tls_from(
            &["--tls-key", "/nonexistent/server.key"],
            "tls_cert = \"/nonexistent/server.crt\"",
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/server.crt"), "{err}");
    }
}
