//! A bare axum + reqwest reverse proxy for `POST /v1/embeddings` — no keys, limits, metering
//! or logs — used by `bench/gateway.sh` as a baseline: what any proxy on this stack (Tokio,
//! hyper, reqwest) costs on the machine, beside nginx's hop and Marquee's gateway.
//!
//! `bare_proxy UPSTREAM_URL LISTEN_ADDR`, e.g.
//! `bare_proxy http://127.0.0.1:8000/v1/embeddings 127.0.0.1:9000`; the caller's
//! `Authorization` header is passed on.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

#[derive(Clone)]
struct Upstream {
    client: reqwest::Client,
    url: String,
}

async fn proxy(State(up): State<Upstream>, headers: HeaderMap, body: Bytes) -> Response {
    let mut request = up
        .client
        .post(&up.url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body);
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        request = request.header(header::AUTHORIZATION, auth);
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    match answer.bytes().await {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(listen)) = (args.next(), args.next()) else {
        eprintln!("usage: bare_proxy UPSTREAM_URL LISTEN_ADDR");
        std::process::exit(2);
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let upstream = Upstream {
        client: reqwest::Client::new(),
        url,
    };
    let app = Router::new()
        .route("/v1/embeddings", post(proxy))
        .with_state(upstream);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .unwrap_or_else(|e| panic!("bind {listen}: {e}"));
    axum::serve(listener, app).await.expect("serve");
}
