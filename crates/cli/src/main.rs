//! `marquee`: one binary for the server and for the operator's offline work.

mod admin;
mod config;
mod demo;
mod eval;
mod import;
mod models_cmd;
mod remote;
mod serve;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "marquee",
    version,
    about = "Marquee: self-hosted recommendations and models as a service for entertainment apps",
    long_about = "Marquee stores a tenant's catalogue, users and feedback, trains recommendation models \
                  from them and serves recommendations over an HTTP API under API keys.\n\n\
                  Start with `marquee serve --demo` for a server preloaded with the MovieLens demo catalogue.",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(serve::ServeArgs),
    /// Load a dataset (MovieLens, or a CSV/TSV interaction log) into a tenant.
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Train a new recommendation model version for a tenant and print its report.
    Train(train::TrainArgs),
    /// Evaluate recommendation algorithms offline on a ratings file (train/test split, nDCG, …).
    Eval(eval::EvalArgs),
    /// Create and list tenants (works on the data directory, with or without a running server).
    #[command(subcommand)]
    Tenants(admin::TenantsCommand),
    /// Create, list and revoke API keys (works on the data directory, with or without a running server).
    #[command(subcommand)]
    Keys(admin::KeysCommand),
    /// Fetch model weights (embeddings, chat) into the models directory, and list them.
    #[command(subcommand)]
    Models(models_cmd::ModelsCommand),
    /// Use a running server's API (recommend, similar, popular, profile, send-feedback, usage)
    /// under an API key.
    Remote(remote::RemoteArgs),
}

/// mimalloc instead of glibc's malloc: cheaper per-request allocation across threads, and
/// freed memory goes back to the system instead of pooling per thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // TLS (model downloads, upstream engines) uses rustls with the ring provider, and trusts
    // the operating system's certificate store (corporate proxies add their CA there).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // candle asks for the thread count on every matrix multiply and, unless RAYON_NUM_THREADS
    // is set, recounts the CPUs each time (~60 µs, about 2 ms per image classified). Set it once,
    // before any thread exists, to what rayon would pick anyway.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: no other thread runs yet, so nothing reads the environment concurrently.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", cpus.to_string()) };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Import(cmd) => import::run(cmd).await,
            Command::Train(args) => train::run(args).await,
            Command::Eval(args) => return eval::run(args),
            Command::Tenants(cmd) => admin::tenants(cmd).await,
            Command::Keys(cmd) => admin::keys(cmd).await,
            Command::Models(cmd) => models_cmd::run(cmd).await,
            Command::Remote(args) => remote::run(args).await,
        }
        .map(|()| ExitCode::SUCCESS)
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
