//! Marquee's HTTP API.
//!
//! Routes are thin: extract and validate the request ([`extract`]), authorize the caller, call
//! one method of [`marquee_core::Service`], serialize the answer. Every failure is a JSON error
//! ([`error`]). [`serve`] runs the router on a listener until the shutdown future resolves, then
//! lets in-flight requests finish.

pub mod access;
mod billing;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod openapi;
mod routes;
pub mod tls;
pub mod upstream;

pub use tls::{load_tls_config, serve_tls};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderName, Request};
use marquee_core::Service;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, TraceLayer};

/// Settings of the HTTP layer.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Largest request body accepted, in bytes (413 beyond).
    pub body_limit: usize,
    /// Models served by upstream engines, proxied under Marquee's keys.
    pub upstreams: Vec<upstream::UpstreamModel>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            body_limit: 10 * 1024 * 1024,
            upstreams: Vec::new(),
        }
    }
}

pub struct AppState {
    pub service: Arc<Service>,
    pub config: ServerConfig,
    pub upstreams: upstream::Upstreams,
}

/// Makes rustls use the ring provider for every TLS client of the process (upstream engines,
/// model downloads); harmless when already done.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The full router, with logging, request ids and panic containment.
pub fn router(service: Arc<Service>, config: ServerConfig) -> Router {
    install_tls_provider();
    metrics::install_recorder();
    let upstreams = upstream::Upstreams::new(config.upstreams.clone());
    let state = Arc::new(AppState {
        service,
        config,
        upstreams,
    });
    let request_id = HeaderName::from_static("x-request-id");
    routes::routes()
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            access::admit,
        ))
        .with_state(state)
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            use axum::response::IntoResponse;
            error::ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal error; see the server log",
            )
            .into_response()
        }))
        // Under `/api/`, errors answered before a Gorse handler runs (a wrong key, a limit, an
        // unknown route, a panic) are plain text, as Gorse's server answers them.
        .layer(axum::middleware::from_fn(routes::gorse::plain_text_errors))
        .layer(
            TraceLayer::new_for_http()
                // 5xx answers (e.g. /readyz while training) are logged by whoever caused them.
                .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN))
                .make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                // The path only: query strings may carry user data.
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        // Outermost, so that panics turned into 500s are counted too.
        .layer(axum::middleware::from_fn(metrics::track_requests))
}

/// Serves `router` on `listener` until `shutdown` resolves; in-flight requests then finish
/// before this returns. Handlers see the peer address as `ConnectInfo<SocketAddr>`.
/// [`serve_tls`] does the same over TLS.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // TCP_NODELAY: without it, the last small segment of an answer written in pieces (a
    // streamed body's final chunk) waits for the client's ACK of the previous one (Nagle).
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
