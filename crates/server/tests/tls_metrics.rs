//! TLS termination (`serve_tls`, `load_tls_config`) and Prometheus metrics (`/metrics`, the
//! request middleware, the keyless scrape listener).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::StatusCode as AxumStatus;
use axum::response::IntoResponse;
use axum::routing::get;
use marquee_core::marquee_store::Store;
use marquee_core::{Service, ServiceConfig};
use marquee_server::ServerConfig;
use marquee_server::metrics::TenantLabel;
use marquee_server::tls::TlsError;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const ADMIN_KEY: &str = "mq_test_operator_key_0123456789";

/// A service on a fresh SQLite store, with the operator key set.
async fn service(dir: &Path) -> Arc<Service> {
    let store = Store::open_data_dir(dir).await.unwrap();
    let service = Service::open_with_snapshots(
        store,
        ServiceConfig {
            auto_tune: false,
            ..ServiceConfig::default()
        },
        Some(dir.join("recommenders")),
    )
    .await
    .unwrap();
    service.ensure_admin_key(Some(ADMIN_KEY)).await.unwrap();
    service
}

/// A running server and the means to stop it.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Running {
    async fn plain(router: Router) -> Self {
        Self::start(router, None).await
    }

    async fn tls(router: Router, tls: Arc<rustls::ServerConfig>) -> Self {
        Self::start(router, Some(tls)).await
    }

    async fn start(router: Router, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async {
            let _ = rx.await;
        };
        let task = match tls {
            Some(tls) => tokio::spawn(marquee_server::serve_tls(listener, router, tls, shutdown)),
            None => tokio::spawn(marquee_server::serve(listener, router, shutdown)),
        };
        Running {
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Signals shutdown and waits until the server has returned.
    async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the server stops within 10 s")
                .unwrap()
                .unwrap();
        }
    }
}

/// A self-signed certificate for `localhost`, written as PEM files.
struct SelfSigned {
    cert_pem: String,
    cert: PathBuf,
    key: PathBuf,
}

fn self_signed(dir: &Path, name: &str) -> SelfSigned {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = generated.cert.pem();
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    SelfSigned {
        cert_pem,
        cert,
        key,
    }
}

/// A client trusting only `cert_pem`, reaching `localhost` at `addr`.
fn https_client(cert_pem: &str, addr: SocketAddr, http1_only: bool) -> reqwest::Client {
    marquee_server::install_tls_provider();
    let cert = reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap();
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([cert])
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(10));
    if http1_only {
        builder = builder.http1_only();
    }
    builder.build().unwrap()
}

/// Answers with the peer address the server saw.
fn peer_router() -> Router {
    Router::new().route(
        "/peer",
        get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
    )
}

#[tokio::test]
async fn tls_serves_https_over_http2_and_http1_and_refuses_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let pair = self_signed(dir.path(), "server");
    let tls = marquee_server::load_tls_config(&pair.cert, &pair.key).unwrap();
    let service = service(dir.path()).await;
    let mut server = Running::tls(
        marquee_server::router(service, ServerConfig::default()),
        tls,
    )
    .await;
    let port = server.addr.port();
    let url = format!("https://localhost:{port}/healthz");

    // A client that connects and never starts the handshake must not hold up anyone else.
    let _idle = tokio::net::TcpStream::connect(server.addr).await.unwrap();

    let client = https_client(&pair.cert_pem, server.addr, false);
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.version(),
        reqwest::Version::HTTP_2,
        "ALPN offers h2"
    );
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );

    let http1 = https_client(&pair.cert_pem, server.addr, true);
    let response = http1.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let refused = plain
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(refused.is_err(), "plain HTTP answered: {refused:?}");

    // A client that does not trust the certificate is refused by its own verifier.
    let stranger = self_signed(dir.path(), "stranger");
    let untrusting = https_client(&stranger.cert_pem, server.addr, true);
    assert!(untrusting.get(&url).send().await.is_err());

    // The failed handshakes broke nothing.
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn both_listeners_give_handlers_the_peer_address() {
    let dir = tempfile::tempdir().unwrap();
    let pair = self_signed(dir.path(), "server");
    let tls = marquee_server::load_tls_config(&pair.cert, &pair.key).unwrap();

    let mut secure = Running::tls(peer_router(), tls).await;
    let client = https_client(&pair.cert_pem, secure.addr, false);
    let peer = client
        .get(format!("https://localhost:{}/peer", secure.addr.port()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    assert_eq!(peer.ip().to_string(), "127.0.0.1");
    assert_ne!(
        peer.port(),
        secure.addr.port(),
        "the client's port, not ours"
    );
    secure.stop().await;

    let mut plain = Running::plain(peer_router()).await;
    let peer = reqwest::get(format!("http://{}/peer", plain.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    assert_eq!(peer.ip().to_string(), "127.0.0.1");
    plain.stop().await;
}

#[tokio::test]
async fn bad_tls_files_give_errors_that_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pair = self_signed(dir.path(), "server");
    let other = self_signed(dir.path(), "other");

    let garbage = dir.path().join("garbage.key");
    std::fs::write(&garbage, "this is not a key\n").unwrap();
    let err = marquee_server::load_tls_config(&pair.cert, &garbage).unwrap_err();
    assert!(matches!(err, TlsError::Invalid { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("private key"), "{message}");
    assert!(
        message.contains(&garbage.display().to_string()),
        "{message}"
    );

    // A key block whose content is not a key.
    let corrupt = dir.path().join("corrupt.key");
    std::fs::write(
        &corrupt,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = marquee_server::load_tls_config(&pair.cert, &corrupt).unwrap_err();
    assert!(
        err.to_string().contains(&corrupt.display().to_string()),
        "{err}"
    );

    let missing = dir.path().join("missing.key");
    let err = marquee_server::load_tls_config(&pair.cert, &missing).unwrap_err();
    assert!(matches!(err, TlsError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains(&missing.display().to_string()));

    // A key file given as the certificate: no certificate in it.
    let err = marquee_server::load_tls_config(&pair.key, &pair.key).unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::Invalid {
                role: "certificate",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(&pair.key.display().to_string()));

    let err = marquee_server::load_tls_config(&pair.cert, &other.key).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&pair.cert.display().to_string()),
        "{message}"
    );
    assert!(
        message.contains(&other.key.display().to_string()),
        "{message}"
    );
}

/// Sends a GET and returns the status, the content type and the body.
async fn fetch(
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
) -> (StatusCode, String, String) {
    let mut request = client.get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, content_type, response.text().await.unwrap())
}

/// The sample lines of `metric` whose labels include every one of `labels`.
fn samples<'a>(text: &'a str, metric: &str, labels: &[&str]) -> Vec<&'a str> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .collect()
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_for_the_operator_only() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path()).await;
    let mut server = Running::plain(marquee_server::router(service, ServerConfig::default())).await;
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::new();

    let (status, _, _) = fetch(&client, &format!("{base}/healthz"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = fetch(&client, &format!("{base}/healthz"), None).await;
    assert_eq!(status, StatusCode::OK);
    // A user id in the path must never become a label value.
    let (status, _, _) = fetch(&client, &format!("{base}/v1/users/user-4711-private"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = fetch(&client, &format!("{base}/no/such/route-0815"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Tenant keys, even admin ones, are refused; no key is told to bring one.
    let created = client
        .post(format!("{base}/v1/admin/tenants"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    for kind in ["secret", "admin"] {
        let key: Value = client
            .post(format!("{base}/v1/admin/tenants/acme/keys"))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"kind": kind}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let key = key["key"].as_str().unwrap();
        let (status, _, body) = fetch(&client, &format!("{base}/metrics"), Some(key)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{kind}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], "forbidden");
    }
    let (status, _, body) = fetch(&client, &format!("{base}/metrics"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    let (status, content_type, text) =
        fetch(&client, &format!("{base}/metrics"), Some(ADMIN_KEY)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(content_type, "text/plain; version=0.0.4");
    assert!(
        text.contains("# TYPE marquee_http_requests_total counter"),
        "{text}"
    );
    let healthz = samples(
        &text,
        "marquee_http_requests_total",
        &[
            r#"tenant="-""#,
            r#"route="/healthz""#,
            r#"method="GET""#,
            r#"status="200""#,
        ],
    );
    assert_eq!(healthz.len(), 1, "{text}");
    let count: f64 = healthz[0].rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 2.0, "{}", healthz[0]);
    assert_eq!(
        samples(
            &text,
            "marquee_http_requests_total",
            &[r#"route="/v1/users/{user_id}""#, r#"status="401""#],
        )
        .len(),
        1,
        "{text}"
    );
    assert_eq!(
        samples(
            &text,
            "marquee_http_requests_total",
            &[r#"route="unmatched""#, r#"status="404""#],
        )
        .len(),
        1,
        "{text}"
    );
    assert!(!text.contains("user-4711-private"), "{text}");
    assert!(!text.contains("route-0815"), "{text}");
    // The duration histogram has the fine buckets for sub-millisecond answers.
    assert!(
        !samples(
            &text,
            "marquee_http_request_duration_seconds_bucket",
            &[r#"route="/healthz""#, r#"le="0.0001""#],
        )
        .is_empty(),
        "{text}"
    );
    assert!(
        text.contains("# HELP marquee_http_request_duration_seconds"),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_tenant_label_comes_from_the_response_and_429s_are_counted() {
    marquee_server::metrics::install_recorder();
    let router = Router::new()
        .route(
            "/limited/{user}",
            get(|| async {
                let mut response = AxumStatus::TOO_MANY_REQUESTS.into_response();
                response
                    .extensions_mut()
                    .insert(TenantLabel(Arc::from("label-tenant")));
                response
            }),
        )
        .layer(axum::middleware::from_fn(
            marquee_server::metrics::track_requests,
        ));
    let mut server = Running::plain(router).await;
    let (status, _, _) = fetch(
        &reqwest::Client::new(),
        &format!("http://{}/limited/u1", server.addr),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    server.stop().await;

    let text = marquee_server::metrics::install_recorder().render();
    let limited = samples(
        &text,
        "marquee_rate_limited_total",
        &[r#"tenant="label-tenant""#, r#"route="/limited/{user}""#],
    );
    assert_eq!(
        limited,
        [r#"marquee_rate_limited_total{tenant="label-tenant",route="/limited/{user}"} 1"#],
        "{text}"
    );
    assert_eq!(
        samples(
            &text,
            "marquee_http_requests_total",
            &[r#"tenant="label-tenant""#, r#"status="429""#],
        )
        .len(),
        1,
        "{text}"
    );
}

#[tokio::test]
async fn the_scrape_listener_serves_only_metrics_and_needs_no_key() {
    let mut scrape = Running::plain(marquee_server::metrics::scrape_router()).await;
    // Something described to report, whichever test ran first.
    metrics::counter!(marquee_server::metrics::LEDGER_WRITE_FAILURES).increment(0);
    let client = reqwest::Client::new();
    let base = format!("http://{}", scrape.addr);

    let (status, content_type, text) = fetch(&client, &format!("{base}/metrics"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/plain; version=0.0.4");
    assert!(
        text.contains("# HELP marquee_ledger_write_failures_total"),
        "{text}"
    );

    let (status, _, body) = fetch(&client, &format!("{base}/healthz"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let refused = client.post(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
    scrape.stop().await;
}
