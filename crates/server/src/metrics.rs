//! Prometheus metrics: what the platform served, to whom, how fast, and what it charged.
//!
//! One process-wide recorder ([`install_recorder`]) collects everything recorded through the
//! `metrics` macros, here and in the service layer (units served, spend); `GET /metrics`
//! renders it in the Prometheus text format. Labels are kept to bounded sets so that a scraper's
//! storage cannot be blown up by clients: the route is axum's route template (never the raw
//! path, which carries user and item ids), the method is one of the standard ones, the tenant is
//! a tenant's name.
//!
//! The main listener's `/metrics` needs the operator key, since per-tenant traffic and spend are
//! business data; [`scrape_router`] serves the same text without a key, for a separate listener
//! on a private network (`--metrics-listen`).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use marquee_core::ServiceError;
use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::{ApiError, ApiResult};
use crate::extract::Auth;

/// Requests answered, by `tenant`, `route`, `method`, `status`.
pub const HTTP_REQUESTS: &str = "marquee_http_requests_total";
/// Time to the response head, by `tenant`, `route`, `method` (seconds).
pub const HTTP_REQUEST_DURATION: &str = "marquee_http_request_duration_seconds";
/// Requests refused with 429, by `tenant`, `route`.
pub const RATE_LIMITED: &str = "marquee_rate_limited_total";
/// Billable units served, by `tenant`, `route`, `model`, `unit` (recorded by the service layer).
pub const UNITS: &str = "marquee_units_total";
/// Money charged in nano-units of `currency`, by `tenant`, `currency` (service layer).
pub const SPEND_NANOS: &str = "marquee_spend_nanos_total";
/// Usage records that could not be written to the ledger (service layer).
pub const LEDGER_WRITE_FAILURES: &str = "marquee_ledger_write_failures_total";

/// Histogram buckets for request durations, 0.1 ms to 10 s: cached recommendations answer in
/// well under a millisecond, model inference takes seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes, so that
/// memory stays bounded.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The Prometheus text exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The tenant a response was served for, as a metrics label. The authentication layer puts it
/// into the response's extensions; a response without it is counted under tenant `-`.
#[derive(Clone, Debug)]
pub struct TenantLabel(pub Arc<str>);

tokio::task_local! {
    /// The model the request being handled was billed for, noted by the billing code (see
    /// [`note_model`]) while [`track_requests`] waits for the handler in the same task.
    static MODEL: std::cell::RefCell<Option<Arc<str>>>;
}

/// Labels the current request's metrics with `model` (a no-op outside [`track_requests`]).
pub fn note_model(model: &str) {
    let _ = MODEL.try_with(|m| *m.borrow_mut() = Some(Arc::from(model)));
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder on first call and returns its handle; later
/// calls return the same handle. Every router calls it, so tests may build many.
pub fn install_recorder() -> PrometheusHandle {
    HANDLE.get_or_init(build_and_install).clone()
}

fn build_and_install() -> PrometheusHandle {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(HTTP_REQUEST_DURATION.to_string()),
            DURATION_BUCKETS,
        )
        .unwrap_or_else(|e| {
            // Only an empty bucket list is refused, and the list is a non-empty constant.
            tracing::warn!(error = %e, "default histogram buckets for request durations");
            PrometheusBuilder::new()
        });
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if let Err(e) = metrics::set_global_recorder(recorder) {
        tracing::warn!(
            error = %e,
            "another metrics recorder is installed: /metrics will show nothing"
        );
    }
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                upkeep.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no metrics upkeep thread; histograms drain only when scraped");
    }
    describe();
    handle
}

fn describe() {
    metrics::describe_counter!(
        HTTP_REQUESTS,
        Unit::Count,
        "HTTP requests answered, by tenant, route template, method and status"
    );
    metrics::describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "Time from request to response head, by tenant, route template and method"
    );
    metrics::describe_counter!(
        RATE_LIMITED,
        Unit::Count,
        "Requests refused with 429 (rate limit, quota or budget), by tenant and route template"
    );
    metrics::describe_counter!(
        UNITS,
        Unit::Count,
        "Billable units served (tokens, characters, seconds, images, requests), by tenant, route, model and unit"
    );
    metrics::describe_counter!(
        SPEND_NANOS,
        Unit::Count,
        "Money charged, in nano-units of the currency, by tenant and currency"
    );
    metrics::describe_counter!(
        LEDGER_WRITE_FAILURES,
        Unit::Count,
        "Usage records that could not be written to the ledger"
    );
}

/// The method as a label: the standard methods by name, anything else as `other` (clients
/// may send arbitrary extension methods).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Middleware (`axum::middleware::from_fn`) recording every request's count and duration, and
/// 429s. Added with `Router::layer`, it runs after routing, so the route template is known;
/// requests no route matched are labelled `unmatched`.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let (response, model) = MODEL
        .scope(std::cell::RefCell::new(None), async {
            let response = next.run(request).await;
            (response, MODEL.with(|m| m.borrow_mut().take()))
        })
        .await;
    let model = model.unwrap_or_else(|| Arc::from("-"));
    let elapsed = started.elapsed().as_secs_f64();
    let tenant: Arc<str> = response
        .extensions()
        .get::<TenantLabel>()
        .map_or_else(|| Arc::from("-"), |t| Arc::clone(&t.0));
    let status = response.status();

    metrics::counter!(
        HTTP_REQUESTS,
        "tenant" => Arc::clone(&tenant),
        "route" => route.clone(),
        "model" => Arc::clone(&model),
        "method" => method,
        "status" => status.as_u16().to_string(),
    )
    .increment(1);
    metrics::histogram!(
        HTTP_REQUEST_DURATION,
        "tenant" => Arc::clone(&tenant),
        "route" => route.clone(),
        "model" => model,
        "method" => method,
    )
    .record(elapsed);
    if status == StatusCode::TOO_MANY_REQUESTS {
        metrics::counter!(RATE_LIMITED, "tenant" => tenant, "route" => route).increment(1);
    }
    response
}

/// The current metrics in the Prometheus text format.
fn exposition() -> Response {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        install_recorder().render(),
    )
        .into_response()
}

/// `GET /metrics` on the main listener: the operator key only (401 without a key, 403 with any
/// other key).
pub async fn metrics_for_operator(Auth(caller): Auth) -> ApiResult<Response> {
    if caller.key_id().is_none() {
        // Keyless access to a published tenant's recommendations is no access to metrics.
        return Err(ServiceError::Unauthorized.into());
    }
    if !caller.is_operator() {
        return Err(ServiceError::Forbidden("read metrics (operator key required)").into());
    }
    Ok(exposition())
}

/// A router serving only `GET /metrics`, without a key, for a listener that only a Prometheus
/// scraper can reach. Everything else is a JSON 404 (405 for another method on `/metrics`).
pub fn scrape_router() -> Router {
    install_recorder();
    Router::new()
        .route("/metrics", get(|| async { exposition() }))
        .fallback(|| async { ApiError::not_found_route() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
}
