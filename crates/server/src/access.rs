//! Who is calling, and may they call now: the layer in front of every route.
//!
//! For each request it resolves the key once (or the published tenant for keyless calls),
//! checks the browser origin of publishable keys, applies the key's and the tenant's request
//! rate and concurrency limits, and hands the resolved [`Caller`] to the route through the
//! request's extensions. Answers get OpenAI's `x-ratelimit-*` headers, CORS headers for
//! browsers, and the tenant's name for the metrics layer.
//!
//! Routes still decide what a caller may do (scopes): a request without a key passes through
//! here, and the route's [`crate::extract::Auth`] refuses it unless the route is public.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use marquee_core::{Caller, RequestMeta, ServiceError};
use marquee_platform::{KeyKind, RateDecision};

use crate::AppState;
use crate::error::ApiError;

/// Routes that answer without looking at keys at all: load balancers' health checks, and the
/// API's description and docs page (read before one has a key; they hold no tenant's data).
const KEYLESS_ROUTES: &[&str] = &[
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/docs",
    "/docs/",
    "/docs/{*file}",
    // Gorse's probes, which Gorse's AuthFilter lets through whatever the key.
    "/api/health/live",
    "/api/health/ready",
];

/// Headers a browser script may read from Marquee's answers.
const EXPOSED_HEADERS: &str = "x-request-id, x-marquee-units, x-marquee-cost, retry-after, \
     x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests, \
     x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens";

/// Formats a duration the way OpenAI's `x-ratelimit-reset-*` headers do: `20ms`, `1s`, `1.5s`,
/// `6m0s`.
pub fn format_reset(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        let rounded = (secs * 1000.0).ceil() / 1000.0;
        return format!("{rounded}s");
    }
    let whole = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    format!("{}m{}s", whole / 60, whole % 60)
}

/// The `x-ratelimit-*-{requests|tokens}` headers of a decision (none when no limit applies).
pub fn rate_limit_headers(what: &str, d: &RateDecision) -> Vec<(HeaderName, HeaderValue)> {
    let Some(limit) = d.limit else {
        return Vec::new();
    };
    let suffix = if what == "tokens" {
        "tokens"
    } else {
        "requests"
    };
    let mut out = Vec::with_capacity(3);
    let mut push = |name: String, value: String| {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            out.push((n, v));
        }
    };
    push(format!("x-ratelimit-limit-{suffix}"), limit.to_string());
    push(
        format!("x-ratelimit-remaining-{suffix}"),
        d.remaining.to_string(),
    );
    push(format!("x-ratelimit-reset-{suffix}"), format_reset(d.reset));
    out
}

/// The key presented with a request: `Authorization: Bearer …` or `X-API-Key: …`.
pub fn presented_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let bad = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send the key as `Authorization: Bearer <key>` or `X-API-Key: <key>`",
        )
    };
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.to_str().map_err(|_| bad())?;
        let (scheme, token) = v.split_once(' ').ok_or_else(bad)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(bad());
        }
        return Ok(Some(token.trim().to_string()));
    }
    if let Some(v) = headers.get("x-api-key") {
        return Ok(Some(v.to_str().map_err(|_| bad())?.trim().to_string()));
    }
    Ok(None)
}

/// The request's context for the ledger and the audit log.
pub fn request_meta(req: &Request) -> RequestMeta {
    RequestMeta {
        route: req
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string()),
        request_id: req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(128).collect()),
        remote: req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string()),
    }
}

fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Answer to a CORS preflight. It cannot know the key (browsers send none), so it allows the
/// request to be tried; the actual request is then checked against the key's origins.
fn preflight(origin: &str, requested_headers: Option<String>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"),
    );
    let allowed = requested_headers
        .and_then(|r| HeaderValue::from_str(&r).ok())
        .unwrap_or(HeaderValue::from_static(
            "authorization, x-api-key, content-type",
        ));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allowed);
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    h.insert(header::VARY, HeaderValue::from_static("origin"));
    response
}

/// Lets a browser page read the answer when the caller is meant for browsers: a publishable
/// key (whose origins were checked) or the published tenant. Secret and admin keys do not
/// belong in a web page, so their answers are not shared with scripts.
fn cors(response: &mut Response, origin: Option<&str>, caller: Option<&Caller>) {
    let Some(origin) = origin else { return };
    let for_browsers = caller.is_none_or(|c| c.kind().is_none_or(|k| k == KeyKind::Publishable));
    let h = response.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("origin"));
    if for_browsers && let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
    }
}

/// The layer itself (see the module docs).
pub async fn admit(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let origin = header_str(req.headers(), header::ORIGIN);
    if req.method() == Method::OPTIONS
        && let Some(o) = &origin
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return preflight(
            o,
            header_str(req.headers(), header::ACCESS_CONTROL_REQUEST_HEADERS),
        );
    }
    let meta = request_meta(&req);
    if KEYLESS_ROUTES.contains(&meta.route.as_str()) {
        return next.run(req).await;
    }
    let refuse = |e: ApiError, caller: Option<&Caller>| {
        let mut r = e.into_response();
        if let Some(tenant) = caller.and_then(|c| c.tenant.as_ref()) {
            r.extensions_mut()
                .insert(crate::metrics::TenantLabel(Arc::from(tenant.name.as_str())));
        }
        cors(&mut r, origin.as_deref(), caller);
        r
    };
    let secret = match presented_key(req.headers()) {
        Ok(s) => s,
        Err(e) => return refuse(e, None),
    };
    let caller = match state
        .service
        .authenticate(secret.as_deref(), Arc::new(meta))
        .await
    {
        Ok(c) => Some(c),
        // No key and nothing published: the route says 401 if it needs a key.
        Err(ServiceError::Unauthorized) if secret.is_none() => None,
        Err(e) => return refuse(e.into(), None),
    };
    let mut decision = None;
    let mut guard = None;
    if let Some(caller) = &caller {
        match state.service.admit(caller, origin.as_deref()) {
            Ok(admitted) => {
                decision = admitted.decision;
                guard = admitted.guard;
            }
            Err(e) => return refuse(e.into(), Some(caller)),
        }
        req.extensions_mut().insert(caller.clone());
    }
    let mut response = next.run(req).await;
    if let Some(d) = &decision {
        for (name, value) in rate_limit_headers("requests", d) {
            response.headers_mut().insert(name, value);
        }
    }
    if let Some(tenant) = caller.as_ref().and_then(|c| c.tenant.as_ref()) {
        response
            .extensions_mut()
            .insert(crate::metrics::TenantLabel(Arc::from(tenant.name.as_str())));
    }
    cors(&mut response, origin.as_deref(), caller.as_ref());
    match guard {
        // The concurrency slot is held until the body has been sent (streams included).
        Some(guard) => response.map(|body| {
            use futures_util::StreamExt;
            Body::from_stream(body.into_data_stream().map(move |chunk| {
                let _ = &guard;
                chunk
            }))
        }),
        None => response,
    }
}
