//! A real Marquee server on an ephemeral port, on a fresh SQLite database, for tests.

#![allow(dead_code)]

use std::sync::Arc;

use marquee_core::marquee_store::Store;
use marquee_core::{Service, ServiceConfig};
use marquee_server::ServerConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const ADMIN_KEY: &str = "mq_test_operator_key_0123456789";

pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub service: Arc<Service>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(ServerConfig::default()).await
    }

    pub async fn start_with(config: ServerConfig) -> Self {
        // Tuning retrains in the background; tests that count versions want only their own.
        Self::start_full(
            config,
            ServiceConfig {
                poll_interval_secs: 0.2,
                auto_tune: false,
                ..ServiceConfig::default()
            },
        )
        .await
    }

    pub async fn start_full(config: ServerConfig, service_config: ServiceConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_data_dir(dir.path()).await.unwrap();
        let service = Service::open_with_snapshots(
            store,
            service_config,
            Some(dir.path().join("recommenders")),
        )
        .await
        .unwrap();
        service.ensure_admin_key(Some(ADMIN_KEY)).await.unwrap();
        tokio::spawn(service.clone().run_background());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let router = marquee_server::router(service.clone(), config);
        let handle = tokio::spawn(marquee_server::serve(listener, router, async {
            let _ = rx.await;
        }));
        TestServer {
            base,
            client: reqwest::Client::new(),
            service,
            shutdown: Some(tx),
            handle: Some(handle),
            _dir: dir,
        }
    }

    /// Signals shutdown and waits for the server to finish its in-flight requests.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }

    /// Sends a request; returns the status and the JSON body (Null when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("non-JSON body for {path}: {text}"))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, key, None).await
    }

    pub async fn post(&self, path: &str, key: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, key, Some(body)).await
    }

    pub async fn put(&self, path: &str, key: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, key, Some(body)).await
    }

    pub async fn patch(&self, path: &str, key: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, key, Some(body)).await
    }

    pub async fn delete(&self, path: &str, key: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, key, None).await
    }

    /// Creates a tenant and returns a key of `kind` for it.
    pub async fn tenant_with_key(&self, name: &str, kind: &str) -> String {
        let (s, _) = self
            .post("/v1/admin/tenants", Some(ADMIN_KEY), json!({"name": name}))
            .await;
        assert!(
            s == StatusCode::CREATED || s == StatusCode::CONFLICT,
            "create tenant: {s}"
        );
        self.key(name, kind).await
    }

    pub async fn key(&self, tenant: &str, kind: &str) -> String {
        let (s, body) = self
            .post(
                &format!("/v1/admin/tenants/{tenant}/keys"),
                Some(ADMIN_KEY),
                json!({"kind": kind}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        body["key"].as_str().unwrap().to_string()
    }

    /// A small film catalogue with three viewers, trained.
    pub async fn seed_films(&self, key: &str) {
        let items = json!([
            {"id": "alien", "title": "Alien", "categories": ["Sci-Fi", "Horror"], "metadata": {"year": 1979}},
            {"id": "aliens", "title": "Aliens", "categories": ["Sci-Fi", "Action"]},
            {"id": "terminator", "title": "The Terminator", "categories": ["Sci-Fi", "Action"]},
            {"id": "t2", "title": "Terminator 2", "categories": ["Sci-Fi", "Action"]},
            {"id": "heat", "title": "Heat", "categories": ["Crime", "Drama"]},
            {"id": "casino", "title": "Casino", "categories": ["Crime", "Drama"]},
            {"id": "amelie", "title": "Amélie", "categories": ["Comedy", "Romance"]},
            {"id": "clueless", "title": "Clueless", "categories": ["Comedy"]}
        ]);
        let (s, b) = self.post("/v1/items", Some(key), items).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let mut events = Vec::new();
        let views: &[(&str, &[&str])] = &[
            ("ann", &["alien", "aliens", "terminator"]),
            ("bob", &["alien", "aliens", "t2", "terminator"]),
            ("cat", &["heat", "casino", "amelie"]),
            ("dan", &["heat", "casino", "clueless", "amelie"]),
            ("fay", &["heat", "casino"]),
            ("eve", &["aliens", "t2", "terminator"]),
        ];
        for (user, items) in views {
            for (n, item) in items.iter().enumerate() {
                events.push(json!({"user_id": user, "item_id": item, "type": "view", "timestamp": 1_700_000_000 + n as i64}));
            }
        }
        let (s, b) = self
            .post("/v1/feedback", Some(key), Value::Array(events))
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, b) = self
            .post("/v1/models/train?wait=true", Some(key), json!({}))
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
}

/// Asserts a JSON error body with the given status and code.
pub fn assert_error(status: StatusCode, body: &Value, want_status: StatusCode, want_code: &str) {
    assert_eq!(status, want_status, "body: {body}");
    assert_eq!(body["error"]["code"], want_code, "body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "body: {body}"
    );
}

pub fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| r["item_id"].as_str().unwrap().to_string())
        .collect()
}

impl TestServer {
    /// The data directory: the SQLite database (`marquee.db`, `-wal`, `-shm`) and snapshots.
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Makes the usage ledger refuse every insert, as a failing disk would: a trigger in the
    /// database file, through a connection of the test's own. [`TestServer::allow_usage_writes`]
    /// with that connection undoes it.
    pub async fn refuse_usage_writes(&self) -> sqlx::SqliteConnection {
        use sqlx::Connection;
        let db = self.data_dir().join("marquee.db");
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query(
            "CREATE TRIGGER refuse_usage BEFORE INSERT ON usage_ledger \
             BEGIN SELECT RAISE(ABORT, 'unwritable'); END",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn
    }

    /// Lets the usage ledger take writes again (see [`TestServer::refuse_usage_writes`]).
    pub async fn allow_usage_writes(&self, mut conn: sqlx::SqliteConnection) {
        use sqlx::Connection;
        sqlx::query("DROP TRIGGER refuse_usage")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }

    /// Sends a request with extra headers; returns the status, the headers and the raw body
    /// (for tests that read rate-limit, usage or CORS headers, or CSV answers).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.unwrap())
    }

    /// Creates a key for `tenant` with the operator key from a full key body (kind, scopes,
    /// limits, …); returns (secret, id).
    pub async fn key_with(&self, tenant: &str, body: Value) -> (String, String) {
        let (s, created) = self
            .post(
                &format!("/v1/admin/tenants/{tenant}/keys"),
                Some(ADMIN_KEY),
                body,
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{created}");
        (
            created["key"].as_str().unwrap().to_string(),
            created["id"].as_str().unwrap().to_string(),
        )
    }
}
