//! The Rust SDK against a real Marquee server (in process, on an ephemeral port, on a fresh
//! SQLite database): round trips through the shared types, real recommendation values, chunked
//! uploads, error mapping, retries that honour `Retry-After`, and timeouts. The retry rule shared
//! with the Python and TypeScript SDKs is also checked on answers scripted by a local HTTP server.
//! The model calls run the real weights (`marquee models pull`; `scripts/test` runs it).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use marquee_client::{
    CategoryMatch, ChatMessage, ChatRequest, Client, Error, FeedbackInput, GroupBy, ItemInput,
    ItemPatch, RecommendRequest, Timestamp, UsageQuery, UserInput,
};
use marquee_core::marquee_store::Store;
use marquee_core::{Service, ServiceConfig};
use marquee_server::ServerConfig;
use serde_json::{Map, Value, json};

const ADMIN_KEY: &str = "mq_test_operator_key_client_0123456789";

/// A real server; stopped when dropped (with its runtime).
struct TestServer {
    base: String,
    service: Arc<Service>,
    http: reqwest::Client,
    _shutdown: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_data_dir(dir.path()).await.unwrap();
        let config = ServiceConfig {
            poll_interval_secs: 0.2,
            auto_tune: false,
            ..ServiceConfig::default()
        };
        let service =
            Service::open_with_snapshots(store, config, Some(dir.path().join("recommenders")))
                .await
                .unwrap();
        service.ensure_admin_key(Some(ADMIN_KEY)).await.unwrap();
        tokio::spawn(service.clone().run_background());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let router = marquee_server::router(service.clone(), ServerConfig::default());
        tokio::spawn(marquee_server::serve(listener, router, async {
            let _ = rx.await;
        }));
        TestServer {
            base,
            service,
            http: reqwest::Client::new(),
            _shutdown: tx,
            _dir: dir,
        }
    }

    /// An operator call, straight over HTTP (the SDK has no admin calls).
    async fn admin(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(ADMIN_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// Creates `tenant` and a key for it from a key body (`{"kind": "secret", …}`).
    async fn tenant_key(&self, tenant: &str, key: Value) -> String {
        self.admin("/v1/admin/tenants", json!({ "name": tenant }))
            .await;
        self.key(tenant, key).await
    }

    async fn key(&self, tenant: &str, key: Value) -> String {
        let created = self
            .admin(&format!("/v1/admin/tenants/{tenant}/keys"), key)
            .await;
        created["key"].as_str().unwrap().to_string()
    }

    fn client(&self, key: &str) -> Client {
        Client::new(&self.base, key).unwrap()
    }

    /// `marquee_http_requests_total` for a route and status, of one tenant or of all (0 when
    /// absent).
    async fn requests_counted(&self, tenant: Option<&str>, route: &str, status: u16) -> u64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut wanted = vec![format!("route=\"{route}\""), format!("status=\"{status}\"")];
        wanted.extend(tenant.map(|t| format!("tenant=\"{t}\"")));
        text.lines()
            .filter(|l| l.starts_with("marquee_http_requests_total{"))
            .filter(|l| wanted.iter().all(|w| l.contains(w.as_str())))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
            .sum()
    }
}

fn item(id: &str, title: &str, categories: &[&str]) -> ItemInput {
    ItemInput {
        id: Some(id.into()),
        title: Some(title.into()),
        categories: categories.iter().map(|c| c.to_string()).collect(),
        ..ItemInput::default()
    }
}

fn view(user: &str, item: &str, at: i64) -> FeedbackInput {
    FeedbackInput {
        user_id: user.into(),
        item_id: item.into(),
        kind: "view".into(),
        value: None,
        timestamp: Some(Timestamp(at * 1000)),
        recommendation_id: None,
    }
}

/// A small film catalogue with six viewers, sent in chunks of 4, and a trained model.
async fn seed_films(client: &Client) {
    let items = vec![
        item("alien", "Alien", &["Sci-Fi", "Horror"]),
        item("aliens", "Aliens", &["Sci-Fi", "Action"]),
        item("terminator", "The Terminator", &["Sci-Fi", "Action"]),
        item("t2", "Terminator 2", &["Sci-Fi", "Action"]),
        item("heat", "Heat", &["Crime", "Drama"]),
        item("casino", "Casino", &["Crime", "Drama"]),
        item("amelie", "Amélie", &["Comedy", "Romance"]),
        item("clueless", "Clueless", &["Comedy"]),
    ];
    assert_eq!(client.upsert_items(&items).await.unwrap(), 8);
    let views: &[(&str, &[&str])] = &[
        ("ann", &["alien", "aliens", "terminator"]),
        ("bob", &["alien", "aliens", "t2", "terminator"]),
        ("cat", &["heat", "casino", "amelie"]),
        ("dan", &["heat", "casino", "clueless", "amelie"]),
        ("fay", &["heat", "casino"]),
        ("eve", &["aliens", "t2", "terminator"]),
    ];
    let mut events = Vec::new();
    for (user, items) in views {
        for (n, item) in items.iter().enumerate() {
            events.push(view(user, item, 1_700_000_000 + n as i64));
        }
    }
    assert_eq!(events.len(), 19);
    assert_eq!(client.send_feedback(&events).await.unwrap(), 19);
    train(client).await;
}

/// Trains a model on everything sent so far. `train?wait=true` that finds a training already
/// running (the tenant's first, started in the background by its first writes) waits for it and
/// answers with its outcome, which predates the last writes (or failed, with a 500, for lack of
/// data): a second request trains on all of them.
async fn train(client: &Client) {
    let _ = client.train(true).await;
    let trained = client.train(true).await.unwrap();
    assert_eq!(trained["status"], "trained", "{trained}");
}

fn ids(list: &[marquee_client::Recommendation]) -> Vec<&str> {
    list.iter().map(|r| r.item_id.as_str()).collect()
}

#[tokio::test]
async fn catalogue_and_users_round_trip_through_the_shared_types() {
    let server = TestServer::start().await;
    let key = server.tenant_key("crud", json!({"kind": "secret"})).await;
    let client = Client::builder()
        .base_url(&server.base)
        .api_key(&key)
        .batch_size(10)
        .build()
        .unwrap();

    // PUT then GET: every field comes back as sent, through the very types the server uses.
    let mut metadata = Map::new();
    metadata.insert("year".into(), json!(1995));
    metadata.insert("studio".into(), json!({"name": "Warner"}));
    let input = ItemInput {
        title: Some("Heat".into()),
        categories: vec!["Crime".into(), "Drama".into()],
        tags: vec!["heist".into()],
        description: Some("A thief and a detective.".into()),
        metadata: Some(metadata.clone()),
        published_at: Timestamp::parse_rfc3339("1995-12-15T00:00:00Z"),
        ..ItemInput::default()
    };
    let put = client.put_item("heat", &input).await.unwrap();
    assert_eq!(put.id, "heat");
    assert_eq!(put.title.as_deref(), Some("Heat"));
    assert_eq!(put.metadata, metadata);
    assert_eq!(put.published_at, Some(Timestamp(818_985_600_000)));
    assert!(!put.hidden);
    let got = client.get_item("heat").await.unwrap();
    assert_eq!(got, put);

    // PATCH: `Some(None)` clears, absent keeps.
    let patched = client
        .patch_item(
            "heat",
            &ItemPatch {
                description: Some(None),
                hidden: Some(true),
                ..ItemPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.description, None);
    assert!(patched.hidden);
    assert_eq!(patched.title.as_deref(), Some("Heat"));
    assert_eq!(patched.tags, vec!["heist".to_string()]);

    // Ids that need escaping in a path round trip.
    let odd = "films/heat? 1995 #2 é";
    client
        .put_item(odd, &item(odd, "Odd", &["Crime"]))
        .await
        .unwrap();
    assert_eq!(client.get_item(odd).await.unwrap().id, odd);

    // A batch of 25 in chunks of 10, then listings that follow cursors.
    let batch: Vec<ItemInput> = (0..25)
        .map(|i| item(&format!("film{i:02}"), &format!("Film {i}"), &["Drama"]))
        .collect();
    assert_eq!(client.upsert_items(&batch).await.unwrap(), 25);
    let first = client.list_items(None, 10).await.unwrap();
    assert_eq!(first.items.len(), 10);
    let cursor = first.next_cursor.clone().expect("more pages");
    let second = client.list_items(Some(&cursor), 10).await.unwrap();
    assert_eq!(second.items.len(), 10);
    assert!(second.items[0].id > first.items[9].id);
    let all = client.list_all_items().await.unwrap();
    assert_eq!(all.len(), 27);
    let mut sorted: Vec<&str> = all.iter().map(|i| i.id.as_str()).collect();
    sorted.sort();
    assert_eq!(
        sorted,
        all.iter().map(|i| i.id.as_str()).collect::<Vec<_>>()
    );
    let streamed: Vec<_> = client.items().collect().await;
    assert_eq!(streamed.len(), 27);
    assert!(streamed.iter().all(Result::is_ok));

    // DELETE: gone, and a second delete is a 404.
    client.delete_item("film00").await.unwrap();
    let err = client.get_item("film00").await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(404), "not_found"));
    assert!(matches!(
        client.delete_item("film00").await,
        Err(Error::Api { status: 404, .. })
    ));

    // Users: put, patch (merge), batch, list, erase.
    let mut attributes = Map::new();
    attributes.insert("plan".into(), json!("premium"));
    let user = client
        .put_user(
            "ann",
            &UserInput {
                id: None,
                attributes: attributes.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(user.id, "ann");
    assert_eq!(user.attributes, attributes);
    let mut more = Map::new();
    more.insert("country".into(), json!("FR"));
    let patched = client.patch_user("ann", &more).await.unwrap();
    assert_eq!(patched.attributes["plan"], "premium");
    assert_eq!(patched.attributes["country"], "FR");
    assert_eq!(client.get_user("ann").await.unwrap(), patched);
    let users: Vec<UserInput> = (0..12)
        .map(|i| UserInput {
            id: Some(format!("u{i:02}")),
            attributes: Map::new(),
        })
        .collect();
    assert_eq!(client.upsert_users(&users).await.unwrap(), 12);
    let page = client.list_users(None, 5).await.unwrap();
    assert_eq!(page.items.len(), 5);
    assert_eq!(client.list_all_users().await.unwrap().len(), 13);
    let erased = client.delete_user("ann").await.unwrap();
    assert!(erased.is_object(), "{erased}");
    let err = client.get_user("ann").await.unwrap_err();
    assert_eq!(err.code(), "not_found");

    // Arguments the server would refuse never leave the client.
    for err in [
        client.get_item("").await.unwrap_err(),
        client
            .put_item("a", &item("b", "B", &[]))
            .await
            .unwrap_err(),
        client.list_items(None, 0).await.unwrap_err(),
        client
            .upsert_items(&[ItemInput::default()])
            .await
            .unwrap_err(),
        client.get_user(&"x".repeat(257)).await.unwrap_err(),
    ] {
        assert_eq!(err.code(), "invalid_argument", "{err}");
        assert!(matches!(err, Error::InvalidArgument { .. }));
    }
}

#[tokio::test]
async fn recommendations_similar_items_and_profiles_carry_real_values() {
    let server = TestServer::start().await;
    let key = server.tenant_key("films", json!({"kind": "secret"})).await;
    let client = Client::builder()
        .base_url(&server.base)
        .api_key(&key)
        .batch_size(4)
        .build()
        .unwrap();
    seed_films(&client).await;

    // Ann watched three of the four sci-fi films; the fourth is what her neighbours watched.
    let recs = client
        .recommend("ann", &RecommendRequest::new().n(3))
        .await
        .unwrap();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0].item_id, "t2", "{recs:?}");
    assert_eq!(recs[0].title.as_deref(), Some("Terminator 2"));
    assert!(
        recs.windows(2).all(|w| w[0].score >= w[1].score),
        "{recs:?}"
    );
    assert!(
        recs.iter()
            .all(|r| !["alien", "aliens", "terminator"].contains(&r.item_id.as_str())),
        "seen items are left out: {recs:?}"
    );
    assert!(recs[0].recommendation_id.starts_with("rec_"));
    assert!(
        recs.iter()
            .all(|r| r.recommendation_id == recs[0].recommendation_id)
    );
    assert!(!recs[0].reason.message.is_empty());

    // Filters: a category, an exclusion, a filter expression.
    let crime = client
        .recommend(
            "ann",
            &RecommendRequest::new()
                .n(5)
                .category("crime")
                .category_match(CategoryMatch::Any)
                .exclude("casino"),
        )
        .await
        .unwrap();
    assert_eq!(ids(&crime), vec!["heat"]);
    let filtered = client
        .recommend(
            "ann",
            &RecommendRequest::new()
                .n(10)
                .filter("\"Comedy\" IN categories"),
        )
        .await
        .unwrap();
    let mut comedies = ids(&filtered);
    comedies.sort();
    assert_eq!(comedies, vec!["amelie", "clueless"]);

    // In the context of an item, and for a user nobody knows (popular items).
    let after = client
        .recommend("cat", &RecommendRequest::new().item("heat").n(3))
        .await
        .unwrap();
    assert!(!after.is_empty() && after.iter().all(|r| r.item_id != "heat"));
    let stranger = client
        .recommend("nobody", &RecommendRequest::new().n(2))
        .await
        .unwrap();
    assert_eq!(stranger.len(), 2);

    let similar = client
        .similar("heat", &RecommendRequest::new().n(3))
        .await
        .unwrap();
    assert_eq!(similar[0].item_id, "casino", "{similar:?}");
    let popular = client.popular(&RecommendRequest::new().n(4)).await.unwrap();
    assert_eq!(popular.len(), 4);
    let top: Vec<&str> = ids(&popular);
    assert!(
        top.contains(&"aliens") && top.contains(&"terminator"),
        "{top:?}"
    );
    let session = client
        .session(&["heat"], &RecommendRequest::new().n(2))
        .await
        .unwrap();
    assert_eq!(session[0].item_id, "casino", "{session:?}");
    let trending = client
        .trending(&RecommendRequest::new().n(3))
        .await
        .unwrap();
    assert!(trending.len() <= 3);

    // Ann's profile: the last film she saw, sci-fi first, her history with titles.
    let profile = client.profile("ann").await.unwrap();
    assert_eq!(profile.user_id, "ann");
    assert_eq!(profile.item_id.as_deref(), Some("terminator"));
    assert_eq!(profile.interests[0].name, "Sci-Fi", "{profile:?}");
    let weights: f32 = profile.interests.iter().map(|i| i.weight).sum();
    assert!((weights - 1.0).abs() < 1e-3, "{profile:?}");
    let history: Vec<(&str, Option<&str>)> = profile
        .history
        .iter()
        .map(|h| (h.item_id.as_str(), h.title.as_deref()))
        .collect();
    assert_eq!(
        history,
        vec![
            ("terminator", Some("The Terminator")),
            ("aliens", Some("Aliens")),
            ("alien", Some("Alien")),
        ]
    );
    let short = client.profile_with_history("ann", 1).await.unwrap();
    assert_eq!(short.history.len(), 1);
    let feedback = client.user_feedback("bob", 10).await.unwrap();
    assert_eq!(feedback.len(), 4);

    // Every recommend call above is on the usage report, grouped by day.
    let usage = client
        .usage(&UsageQuery {
            group_by: Some(GroupBy::Day),
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(usage.total.requests, 9, "{usage:?}");
    assert_eq!(usage.total.units.get("recommendations"), Some(&9));
    assert_eq!(usage.data.len(), 1);
    assert_eq!(usage.data[0].requests, 9);

    // Bad arguments are refused before sending.
    for err in [
        client
            .recommend("", &RecommendRequest::new())
            .await
            .unwrap_err(),
        client
            .recommend("ann", &RecommendRequest::new().n(0))
            .await
            .unwrap_err(),
        client
            .recommend("ann", &RecommendRequest::new().n(1001))
            .await
            .unwrap_err(),
        client
            .recommend("ann", &RecommendRequest::new().diversity(1.5))
            .await
            .unwrap_err(),
        client
            .similar("heat", &RecommendRequest::new().item("casino"))
            .await
            .unwrap_err(),
        client.profile_with_history("ann", 101).await.unwrap_err(),
    ] {
        assert_eq!(err.code(), "invalid_argument", "{err}");
    }
}

#[tokio::test]
async fn feedback_is_chunked_and_a_refused_chunk_says_where() {
    let server = TestServer::start().await;
    let key = server.tenant_key("chunks", json!({"kind": "secret"})).await;
    let client = Client::builder()
        .base_url(&server.base)
        .api_key(&key)
        .batch_size(3)
        .build()
        .unwrap();
    let items: Vec<ItemInput> = (0..5)
        .map(|i| item(&format!("i{i}"), &format!("Item {i}"), &["Drama"]))
        .collect();
    assert_eq!(client.upsert_items(&items).await.unwrap(), 5);
    // 8 events in chunks of 3, 3, 2.
    let events: Vec<FeedbackInput> = (0..8)
        .map(|n| {
            view(
                &format!("user{}", n % 2),
                &format!("i{}", n % 5),
                1_700_000_000 + n,
            )
        })
        .collect();
    assert_eq!(client.send_feedback(&events).await.unwrap(), 8);
    let counted = server
        .requests_counted(Some("chunks"), "/v1/feedback", 200)
        .await;
    assert_eq!(counted, 3, "three requests of at most three events");
    // Resending is harmless: the same events, the same state.
    assert_eq!(client.send_feedback(&events).await.unwrap(), 8);
    assert_eq!(client.user_feedback("user0", 100).await.unwrap().len(), 4);

    // The fifth event names an item that does not exist: the first chunk is committed, the
    // second refused whole.
    let mut bad = events.clone();
    bad[4].item_id = "missing".into();
    match client.send_feedback(&bad).await.unwrap_err() {
        Error::Batch {
            accepted,
            chunk_start,
            source,
        } => {
            assert_eq!((accepted, chunk_start), (3, 3));
            assert_eq!(source.status(), Some(422), "{source}");
            assert!(source.to_string().contains("missing"), "{source}");
        }
        other => panic!("expected a batch error, got {other:?}"),
    }
    // Refused before sending: an empty id, a non-finite value.
    let mut empty = events.clone();
    empty[6].user_id.clear();
    let err = client.send_feedback(&empty).await.unwrap_err();
    assert_eq!(err.code(), "invalid_argument");
    assert!(err.to_string().contains("element 6"), "{err}");
    let mut nan = events.clone();
    nan[0].value = Some(f64::NAN);
    assert_eq!(
        client.send_feedback(&nan).await.unwrap_err().code(),
        "invalid_argument"
    );
    assert_eq!(
        client.send_feedback(&[]).await.unwrap(),
        0,
        "nothing to send"
    );
}

#[tokio::test]
async fn server_errors_map_to_status_code_and_message() {
    let server = TestServer::start().await;
    let key = server.tenant_key("errors", json!({"kind": "secret"})).await;
    let publishable = server.key("errors", json!({"kind": "publishable"})).await;
    let client = server.client(&key);
    client
        .put_item("heat", &item("heat", "Heat", &["Crime"]))
        .await
        .unwrap();

    // 401: a key the server does not know. The key is in no error text nor Debug output.
    let wrong = "mq_sk_not_a_real_key_0123456789abcdef";
    let err = server.client(wrong).get_item("heat").await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(401), "unauthorized"));
    assert!(!err.to_string().contains(wrong) && !format!("{err:?}").contains(wrong));
    assert!(!format!("{:?}", server.client(wrong)).contains(wrong));

    // 403: a publishable key may recommend but not read the catalogue.
    let public = server.client(&publishable);
    let err = public.get_item("heat").await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(403), "missing_scope"));
    assert!(err.to_string().contains("catalog:read"), "{err}");
    public.popular(&RecommendRequest::new().n(1)).await.unwrap();

    // 404.
    let err = client.get_item("nope").await.unwrap_err();
    match &err {
        Error::Api {
            status,
            code,
            message,
            ..
        } => {
            assert_eq!((*status, code.as_str()), (404, "not_found"));
            assert!(message.contains("nope"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    // 422 with the parameter at fault.
    let err = client
        .recommend("ann", &RecommendRequest::new().filter("year >>> 3"))
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(422), "invalid_request"));
    assert!(err.to_string().contains("filter"), "{err}");

    // 503 (no embedding model) is retried for a read, then returned: three requests.
    let patient = Client::builder()
        .base_url(&server.base)
        .api_key(&key)
        .max_retries(2)
        .backoff(Duration::from_millis(20), Duration::from_millis(40))
        .build()
        .unwrap();
    let err = patient
        .search("heist films", &RecommendRequest::new())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503), "{err}");
    assert_eq!(
        server
            .requests_counted(Some("errors"), "/v1/search", 503)
            .await,
        3
    );
    // … and so is an embedding, which stores nothing.
    let err = patient.embed(None, &["heist"]).await.unwrap_err();
    assert_eq!(err.status(), Some(503), "{err}");
    assert_eq!(
        server
            .requests_counted(Some("errors"), "/v1/embeddings", 503)
            .await,
        3
    );
}

#[tokio::test]
async fn rate_limited_reads_wait_for_retry_after_and_other_calls_do_not_retry() {
    let server = TestServer::start().await;
    let key = server
        .tenant_key(
            "limited",
            json!({"kind": "secret", "limits": {"requests_per_second": 1}}),
        )
        .await;
    let client = server.client(&key);
    let impatient = Client::builder()
        .base_url(&server.base)
        .api_key(&key)
        .max_retries(0)
        .build()
        .unwrap();

    client.popular(&RecommendRequest::new().n(1)).await.unwrap();
    // What the server says to a second request within the second.
    let err = impatient
        .popular(&RecommendRequest::new().n(1))
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(429), "rate_limit_exceeded")
    );
    let retry_after = err.retry_after().expect("429 carries Retry-After");
    assert!(retry_after >= Duration::from_secs(1), "{retry_after:?}");

    // The retrying client waits as told and succeeds.
    let started = Instant::now();
    client.popular(&RecommendRequest::new().n(1)).await.unwrap();
    let waited = started.elapsed();
    assert!(waited >= retry_after, "waited {waited:?} < {retry_after:?}");
    assert!(
        waited < retry_after + Duration::from_secs(5),
        "waited {waited:?}"
    );

    // Training may not be repeated: its 429 comes back without a retry (one request;
    // refusals at admission are not labelled with the tenant, so this counts every tenant's —
    // only this test is rate limited on this route).
    let err = client.train(false).await.unwrap_err();
    assert_eq!(err.code(), "rate_limit_exceeded", "{err}");
    assert_eq!(
        server.requests_counted(None, "/v1/models/train", 429).await,
        1
    );

    // An exhausted quota waits for the next period: not worth waiting for, returned at once.
    server.tenant_key("quota", json!({"kind": "secret"})).await;
    let quota_key = server
        .key(
            "quota",
            json!({"kind": "secret", "quotas": {"recommendations": 1}}),
        )
        .await;
    let quota = server.client(&quota_key);
    quota.popular(&RecommendRequest::new()).await.unwrap();
    let err = quota.popular(&RecommendRequest::new()).await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(429), "quota_exceeded"));
    assert!(err.retry_after().is_some(), "{err:?}");
    assert_eq!(
        server
            .requests_counted(Some("quota"), "/v1/popular", 429)
            .await,
        1
    );
}

/// A listener that accepts connections and never answers; counts them.
async fn black_hole() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (base, accepted)
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_reported_and_reads_retried() {
    let (base, accepted) = black_hole().await;
    let client = Client::builder()
        .base_url(&base)
        .api_key("mq_sk_whatever")
        .timeout(Duration::from_millis(300))
        .max_retries(1)
        .backoff(Duration::from_millis(50), Duration::from_millis(50))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client.get_item("heat").await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert_eq!(err.code(), "timeout");
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "one retry of a read");

    let err = client
        .chat(&ChatRequest::new("m", vec![ChatMessage::user("hi")]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "timeout");
    assert_eq!(accepted.load(Ordering::SeqCst), 3, "no retry of a chat");

    // Nothing listens on a port just released: a transport error, after the retries.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let refused = Client::builder()
        .base_url(format!("http://127.0.0.1:{port}"))
        .max_retries(2)
        .backoff(Duration::from_millis(10), Duration::from_millis(20))
        .build()
        .unwrap();
    let err = refused.popular(&RecommendRequest::new()).await.unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    assert_eq!(err.code(), "transport_error");

    // A call that may not be repeated is not retried even when the connection was refused:
    // no backoff is waited (a read waits 2 × at least 150 ms here).
    let refused = Client::builder()
        .base_url(format!("http://127.0.0.1:{port}"))
        .max_retries(2)
        .backoff(Duration::from_millis(200), Duration::from_millis(200))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = refused.popular(&RecommendRequest::new()).await.unwrap_err();
    assert_eq!(err.code(), "transport_error");
    assert!(started.elapsed() >= Duration::from_millis(300), "retried");
    let started = Instant::now();
    let chat = ChatRequest::new("m", vec![ChatMessage::user("hi")]);
    let err = refused.chat(&chat).await.unwrap_err();
    assert_eq!(err.code(), "transport_error");
    let err = refused.train(false).await.unwrap_err();
    assert_eq!(err.code(), "transport_error");
    assert!(
        started.elapsed() < Duration::from_millis(150),
        "not retried: {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// The retry rule shared with the Python and TypeScript SDKs, on scripted answers.

/// A scripted answer: status, headers, body.
type Answer = (u16, Vec<(&'static str, String)>, String);

fn answer(status: u16, headers: &[(&'static str, &str)], body: &str) -> Answer {
    let headers = headers.iter().map(|(k, v)| (*k, v.to_string())).collect();
    (status, headers, body.to_string())
}

fn error_body(code: &str) -> String {
    json!({"error": {"code": code, "message": format!("{code} (scripted)"), "type": "t", "param": null}})
        .to_string()
}

/// Retry at once (the backoff is tested on its own).
const FAST: &[(&str, &str)] = &[("retry-after-ms", "1")];

/// Requests a [`scripted`] server received: `METHOD /path` and when.
type Seen = Arc<Mutex<Vec<(String, SystemTime)>>>;

/// A local HTTP server (on a thread) answering each request with the next scripted answer, then
/// 200 `{}` once the script is used up; one request per connection.
fn scripted(answers: Vec<Answer>) -> (String, Seen) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut answers = VecDeque::from(answers);
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut data = Vec::new();
            let mut buf = [0u8; 65536];
            let head_end = loop {
                if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break 0,
                    Ok(n) => data.extend_from_slice(&buf[..n]),
                }
            };
            if head_end == 0 {
                continue;
            }
            let head = String::from_utf8_lossy(&data[..head_end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while data.len() < head_end + length {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => data.extend_from_slice(&buf[..n]),
                }
            }
            let mut request = head.split_whitespace();
            let (method, target) = (request.next().unwrap_or(""), request.next().unwrap_or(""));
            let path = target.split('?').next().unwrap_or("");
            log.lock()
                .unwrap()
                .push((format!("{method} {path}"), SystemTime::now()));
            let (status, headers, body) = answers
                .pop_front()
                .unwrap_or_else(|| answer(200, &[], "{}"));
            let mut out = format!(
                "HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            out.push_str(&body);
            let _ = stream.write_all(out.as_bytes());
        }
    });
    (base, seen)
}

fn paths(seen: &Seen) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|(p, _)| p.clone())
        .collect()
}

/// Time between the first and the second request.
fn gap(seen: &Seen) -> Duration {
    let seen = seen.lock().unwrap();
    seen[1].1.duration_since(seen[0].1).unwrap()
}

fn scripted_client(base: &str) -> Client {
    Client::builder()
        .base_url(base)
        .api_key("mq_sk_scripted")
        .max_retries(4)
        .backoff(Duration::from_millis(1), Duration::from_millis(2))
        .build()
        .unwrap()
}

#[tokio::test]
async fn rule_gateway_errors_and_429_are_retried_for_calls_that_may_be_repeated() {
    let (base, seen) = scripted(vec![
        answer(502, FAST, "<html>Bad gateway</html>"),
        answer(504, FAST, ""),
        answer(503, FAST, &error_body("overloaded")),
        answer(429, FAST, &error_body("rate_limit_exceeded")),
        answer(200, &[], "[]"),
    ]);
    let recs = scripted_client(&base)
        .popular(&RecommendRequest::new())
        .await
        .unwrap();
    assert!(recs.is_empty());
    assert_eq!(paths(&seen), vec!["GET /v1/popular"; 5]);

    // Each call that cannot do anything twice, through two gateway errors. (The scripted 200
    // `{}` is not every call's answer: only the number of requests matters here.)
    let heat = item("heat", "Heat", &["Crime"]);
    let ann = UserInput {
        id: Some("ann".into()),
        ..UserInput::default()
    };
    for path in [
        "GET /v1/items/heat",
        "PUT /v1/items/heat",
        "PATCH /v1/items/heat",
        "DELETE /v1/items/heat",
        "DELETE /v1/users/ann",
        "POST /v1/feedback",
        "POST /v1/items",
        "POST /v1/users",
        "POST /v1/recommend/session",
        "POST /v1/embeddings",
    ] {
        let (base, seen) = scripted(vec![answer(502, FAST, ""), answer(504, FAST, "")]);
        let c = scripted_client(&base);
        let request = RecommendRequest::new();
        match path {
            "GET /v1/items/heat" => c.get_item("heat").await.map(drop),
            "PUT /v1/items/heat" => c.put_item("heat", &heat).await.map(drop),
            "PATCH /v1/items/heat" => c.patch_item("heat", &ItemPatch::default()).await.map(drop),
            "DELETE /v1/items/heat" => c.delete_item("heat").await,
            "DELETE /v1/users/ann" => c.delete_user("ann").await.map(drop),
            "POST /v1/feedback" => c.send_feedback(&[view("ann", "heat", 1)]).await.map(drop),
            "POST /v1/items" => c.upsert_items(std::slice::from_ref(&heat)).await.map(drop),
            "POST /v1/users" => c.upsert_users(std::slice::from_ref(&ann)).await.map(drop),
            "POST /v1/recommend/session" => c.session(&["heat"], &request).await.map(drop),
            "POST /v1/embeddings" => c.embed(None, &["heat"]).await.map(drop),
            _ => unreachable!(),
        }
        .ok();
        assert_eq!(paths(&seen), vec![path; 3], "{path}");
    }
}

#[tokio::test]
async fn rule_embeddings_are_retried_on_429() {
    let embeddings = json!({
        "object": "list", "model": "m",
        "data": [{"object": "embedding", "index": 0, "embedding": [1.0]}],
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    });
    let (base, seen) = scripted(vec![
        answer(429, FAST, &error_body("rate_limit_exceeded")),
        answer(200, &[], &embeddings.to_string()),
    ]);
    let out = scripted_client(&base)
        .embed(None, &["hello"])
        .await
        .unwrap();
    assert_eq!(out.vectors(), vec![&[1.0f32][..]]);
    assert_eq!(paths(&seen), vec!["POST /v1/embeddings"; 2]);
}

#[tokio::test]
async fn rule_chat_and_training_are_never_retried() {
    for status in [429, 502, 503, 504] {
        let (base, seen) = scripted(vec![answer(status, FAST, &error_body("busy")); 3]);
        let client = scripted_client(&base);
        let chat = ChatRequest::new("m", vec![ChatMessage::user("hi")]);
        let err = client.chat(&chat).await.unwrap_err();
        assert_eq!(err.status(), Some(status), "{err}");
        let err = client.chat_stream(&chat).await.err().unwrap();
        assert_eq!(err.status(), Some(status), "{err}");
        let err = client.train(false).await.unwrap_err();
        assert_eq!(err.status(), Some(status), "{err}");
        assert_eq!(
            paths(&seen),
            [
                "POST /v1/chat/completions",
                "POST /v1/chat/completions",
                "POST /v1/models/train"
            ]
        );
    }
}

#[tokio::test]
async fn rule_quota_and_budget_exceeded_are_not_retried() {
    for code in ["quota_exceeded", "budget_exceeded"] {
        let (base, seen) = scripted(vec![answer(
            429,
            &[("retry-after", "1")],
            &error_body(code),
        )]);
        let started = Instant::now();
        let err = scripted_client(&base)
            .popular(&RecommendRequest::new())
            .await
            .unwrap_err();
        assert_eq!((err.status(), err.code()), (Some(429), code));
        assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
        assert!(started.elapsed() < Duration::from_millis(900), "at once");
        assert_eq!(paths(&seen).len(), 1);
    }
}

#[tokio::test]
async fn rule_a_wait_over_max_retry_wait_is_returned_at_once() {
    let (base, seen) = scripted(vec![answer(
        503,
        &[("retry-after", "5")],
        &error_body("busy"),
    )]);
    let client = Client::builder()
        .base_url(&base)
        .max_retries(3)
        .max_retry_wait(Duration::from_secs(2))
        .build()
        .unwrap();
    let err = client.popular(&RecommendRequest::new()).await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
    assert_eq!(paths(&seen).len(), 1);
}

#[tokio::test]
async fn rule_retry_after_ms_seconds_and_http_dates_are_honoured() {
    // `retry-after-ms` wins over `Retry-After`.
    let (base, seen) = scripted(vec![
        answer(
            429,
            &[("retry-after-ms", "300"), ("retry-after", "30")],
            &error_body("rate_limit_exceeded"),
        ),
        answer(200, &[], "[]"),
    ]);
    scripted_client(&base)
        .popular(&RecommendRequest::new())
        .await
        .unwrap();
    let waited = gap(&seen);
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_millis(1330), "{waited:?}");

    // Fractional seconds.
    let (base, seen) = scripted(vec![answer(
        503,
        &[("retry-after", "0.4")],
        &error_body("busy"),
    )]);
    scripted_client(&base).get_item("heat").await.unwrap_err(); // the scripted `{}` is no item
    assert_eq!(paths(&seen).len(), 2);
    assert!(gap(&seen) >= Duration::from_millis(400), "{:?}", gap(&seen));

    // An HTTP date, in whole seconds: 0.5–1.5 s from now.
    let at = SystemTime::now() + Duration::from_millis(1500);
    let date = http_date(at);
    let (base, seen) = scripted(vec![
        answer(503, &[("retry-after", &date)], &error_body("busy")),
        answer(200, &[], "[]"),
    ]);
    scripted_client(&base)
        .popular(&RecommendRequest::new())
        .await
        .unwrap();
    let seen_at: Vec<SystemTime> = seen.lock().unwrap().iter().map(|(_, t)| *t).collect();
    assert_eq!(seen_at.len(), 2);
    let asked = SystemTime::UNIX_EPOCH
        + Duration::from_secs(at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs());
    assert!(seen_at[1] >= asked, "not before {date}");
    assert!(gap(&seen) < Duration::from_secs(3));
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), truncated to the second.
fn http_date(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[month as usize - 1],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[test]
fn http_dates_are_formatted_as_servers_send_them() {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
    assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_835_438_400);
    assert_eq!(http_date(t), "Tue, 29 Feb 2028 12:00:00 GMT");
}

// ---------------------------------------------------------------------------------------------
// Model calls, on the real weights.

const EMBED: &str = "all-minilm-l6-v2";
const CHAT: &str = "smollm2-135m-instruct";

fn model_runtime() -> Arc<marquee_models::Runtime> {
    runtime_of(&[EMBED, CHAT])
}

/// The named models from the pulled weights.
fn runtime_of(models: &[&str]) -> Arc<marquee_models::Runtime> {
    use marquee_models::manifest::Manifest;
    let dir = std::env::var_os("MARQUEE_MODELS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(marquee_models::pull::default_models_dir);
    for model in models {
        assert!(
            dir.join(model).is_dir(),
            "the test model {model} is not in {}: run `marquee models pull` (scripts/test does)",
            dir.display()
        );
    }
    let mut manifest = Manifest::builtin().clone();
    manifest
        .models
        .retain(|m| models.contains(&m.name.as_str()));
    Arc::new(marquee_models::Runtime::load(
        &dir,
        &manifest,
        &marquee_models::runtime::RuntimeConfig::default(),
    ))
}

#[tokio::test]
async fn embeddings_and_chat_plain_and_streamed_on_real_models() {
    let server = TestServer::start().await;
    server.service.set_models(model_runtime());
    let key = server.tenant_key("models", json!({"kind": "secret"})).await;
    let client = server.client(&key);

    let e = client
        .embed(Some(EMBED), &["a heist thriller", "a romantic comedy"])
        .await
        .unwrap();
    assert_eq!(e.model, EMBED);
    let vectors = e.vectors();
    assert_eq!(vectors.len(), 2);
    assert!(vectors.iter().all(|v| v.len() == 384));
    let norm: f32 = vectors[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "normalised: {norm}");
    assert!(e.usage.prompt_tokens > 4);
    let err = client.embed(Some(EMBED), &[""]).await.unwrap_err();
    assert_eq!(err.code(), "invalid_argument");

    let request = ChatRequest::new(
        CHAT,
        vec![ChatMessage::user("Name a famous film about a shark.")],
    )
    .max_tokens(6)
    .temperature(0.0)
    .seed(7);
    let whole = client.chat(&request).await.unwrap();
    assert_eq!(whole.model, CHAT);
    let usage = whole.usage.unwrap();
    assert!((1..=6).contains(&usage.completion_tokens), "{usage:?}");
    assert!(!whole.text().is_empty());
    assert!(matches!(
        whole.choices[0].finish_reason.as_deref(),
        Some("stop" | "length")
    ));

    // Streamed: the same greedy text, chunk by chunk, usage on the last chunk.
    let mut stream = std::pin::pin!(client.chat_stream(&request).await.unwrap());
    let mut text = String::new();
    let mut last_usage = None;
    let mut chunks = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        chunks += 1;
        text.push_str(chunk.text());
        if chunk.usage.is_some() {
            last_usage = chunk.usage;
        }
    }
    assert!(chunks >= 3, "role, text, finish: {chunks}");
    assert_eq!(text, whole.text());
    assert_eq!(last_usage, Some(usage));

    // A model the server does not have: 404 before any stream starts.
    let missing = ChatRequest::new("gpt-17", vec![ChatMessage::user("hi")]);
    let err = match client.chat_stream(&missing).await {
        Err(e) => e,
        Ok(_) => panic!("a stream for a missing model"),
    };
    assert_eq!((err.status(), err.code()), (Some(404), "model_not_found"));
}

const SPEECH: &str = "hibari";
const TRANSCRIBE: &str = "whisper-tiny-en";
const VISION: &str = "efficientnet-lite0";

fn sample(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/samples")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn speech_transcription_and_images_on_real_models() {
    use marquee_client::{
        AudioFormat, ImageRequest, SpeechRequest, TranscriptFormat, TranscriptionRequest,
    };
    let server = TestServer::start().await;
    server
        .service
        .set_models(runtime_of(&[SPEECH, TRANSCRIBE, VISION]));
    let key = server.tenant_key("media", json!({"kind": "secret"})).await;
    let client = server.client(&key);

    // Speech: a 16-bit mono WAV at 24 kHz, or the raw samples.
    let wav = client
        .speech(&SpeechRequest::new(
            "Coming this summer to a theater near you.",
        ))
        .await
        .unwrap();
    assert_eq!(&wav[..4], b"RIFF");
    let u16_at = |at: usize| u16::from_le_bytes([wav[at], wav[at + 1]]);
    let rate = u32::from_le_bytes(wav[24..28].try_into().unwrap());
    assert_eq!((u16_at(22), rate, u16_at(34)), (1, 24_000, 16));
    let seconds = (wav.len() - 44) as f64 / (2.0 * rate as f64);
    assert!((1.0..10.0).contains(&seconds), "{seconds} s");
    let pcm = client
        .speech(
            &SpeechRequest::new("Coming soon.")
                .format(AudioFormat::Pcm)
                .speed(1.2),
        )
        .await
        .unwrap();
    assert!(!pcm.starts_with(b"RIFF") && !pcm.is_empty() && pcm.len() % 2 == 0);

    // Transcription of a recording, as JSON, text, verbose JSON and subtitles.
    let recording = sample("speech_hibari_16k.wav");
    let options = TranscriptionRequest::new();
    let t = client.transcribe(&recording, &options).await.unwrap();
    assert!(t.text.to_lowercase().contains("dragons"), "{t:?}");
    assert_eq!(
        (t.usage.kind.as_str(), t.usage.seconds > 0),
        ("duration", true)
    );
    let text = client
        .transcribe_text(&recording, TranscriptFormat::Text, &options)
        .await
        .unwrap();
    assert_eq!(text.trim(), t.text.trim());
    let verbose = client
        .transcribe_verbose(&recording, &options.clone().temperature(0.0))
        .await
        .unwrap();
    assert_eq!(verbose.text, t.text);
    let (first, last) = (&verbose.segments[0], verbose.segments.last().unwrap());
    assert!(
        first.start < last.end && last.end <= verbose.duration + 0.5,
        "{verbose:?}"
    );
    let srt = client
        .transcribe_text(&recording, TranscriptFormat::Srt, &options)
        .await
        .unwrap();
    assert!(srt.starts_with("1\n") && srt.contains(" --> "), "{srt}");

    // What `speech` says, `transcribe` hears.
    let spoken = client
        .speech(&SpeechRequest::new("The heist begins at midnight."))
        .await
        .unwrap();
    let heard = client.transcribe(&spoken, &options).await.unwrap().text;
    assert!(heard.to_lowercase().contains("midnight"), "{heard}");

    // Image classification.
    let image = sample("chelsea.png");
    let answer = client
        .classify_image(&image, &ImageRequest::new().top_k(3))
        .await
        .unwrap();
    assert_eq!((answer.model.as_str(), answer.labels.len()), (VISION, 3));
    assert!(answer.labels[0].label.contains("cat"), "{answer:?}");
    assert!(answer.labels[0].score >= answer.labels[1].score);
    assert_eq!(
        (answer.image.width, answer.image.height, answer.usage.images),
        (451, 300, 1)
    );
    let same = client
        .classify_image(&image, &ImageRequest::new().top_k(1).min_score(0.1))
        .await
        .unwrap();
    assert_eq!(same.labels[0].label, answer.labels[0].label);

    // Refused before sending; and what the server refuses arrives as its error.
    for err in [
        client.speech(&SpeechRequest::new("")).await.unwrap_err(),
        client
            .speech(&SpeechRequest::new("x".repeat(4097)))
            .await
            .unwrap_err(),
        client
            .speech(&SpeechRequest::new("hi").speed(9.0))
            .await
            .unwrap_err(),
        client.transcribe(&[], &options).await.unwrap_err(),
        client
            .classify_image(&image, &ImageRequest::new().top_k(0))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(
            (err.status(), err.code()),
            (None, "invalid_argument"),
            "{err}"
        );
    }
    let err = client
        .speech(&SpeechRequest::new("hi").model("nope"))
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(404), "model_not_found"));
    let err = client
        .classify_image(b"not an image", &ImageRequest::new())
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(400), "unsupported_image_format")
    );
}
