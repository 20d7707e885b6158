//! An async Rust client for Marquee's HTTP API.
//!
//! ```no_run
//! # async fn run() -> Result<(), marquee_client::Error> {
//! use marquee_client::{Client, FeedbackInput, RecommendRequest};
//!
//! let client = Client::new("http://127.0.0.1:8080", "mq_sk_…")?;
//! let profile = client.profile("ann").await?;
//! let request = RecommendRequest { item_id: profile.item_id.clone(), n: Some(10), ..Default::default() };
//! for r in client.recommend("ann", &request).await? {
//!     println!("{} {:.3} {}", r.item_id, r.score, r.reason.message);
//! }
//! client
//!     .send_feedback(&[FeedbackInput {
//!         user_id: "ann".into(),
//!         item_id: "heat".into(),
//!         kind: "view".into(),
//!         value: None,
//!         timestamp: None,
//!         recommendation_id: None,
//!     }])
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! **Shared types.** Items, users, feedback, recommendations and profiles are the very types the
//! server serializes ([`marquee_types`], re-exported here), so client and server cannot drift.
//!
//! **Errors** are one [`Error`] whose [`Error::code`] is the server's stable code
//! (`not_found`, `missing_scope`, `rate_limit_exceeded`, …) or the client's own
//! (`invalid_argument`, `timeout`, `transport_error`, `decode_error`). Arguments the server would
//! refuse (empty ids, `n` outside 1–1000, …) are refused before anything is sent.
//!
//! **Retries.** The Python, TypeScript and Rust SDKs share one retry rule:
//!
//! - **Retried:** answers 429, 502, 503 and 504, and transport failures (connection refused or
//!   reset, timeouts), up to *max retries* times after the first attempt (default 2).
//! - **Never retried:** an error whose code is `quota_exceeded` or `budget_exceeded`, or whose wait
//!   (`Retry-After`) is longer than the *max retry wait* (default 60 s): it is raised at once (an
//!   exhausted quota or budget lasts until the billing period ends).
//! - **Only calls that cannot do anything twice when repeated:** `GET`, `HEAD`, `PUT`, `PATCH`
//!   (Marquee's patches set fields, they never add to them) and `DELETE`; and the `POST`s of
//!   feedback batches (an event is keyed by user, item and type), item and user batch upserts (by
//!   id), session recommendations, embeddings, speech, transcriptions and image classification
//!   (read-only computations). Chat completions, training, key creation and rotation, experiment
//!   creation, item copy generation and every other `POST` are never retried, not even after a
//!   connection error: the request may have reached the server.
//! - **Wait:** the `retry-after-ms` header if present, else `Retry-After` as delta-seconds
//!   (fractions allowed) or an HTTP date; never earlier than asked, plus up to 10 % (at most
//!   250 ms) of jitter. Without either header: exponential backoff 0.5 s, 1 s, 2 s, … capped at
//!   8 s, each shortened at random by up to a quarter.
//!
//! Here *max retries* is [`ClientBuilder::max_retries`] and the *max retry wait*
//! [`ClientBuilder::max_retry_wait`]; [`ClientBuilder::backoff`] changes the backoff's start and
//! cap. The waited-for error's [`Error::retry_after`] is the wait the server asked for.
//!
//! **Keys.** The API key is sent as a sensitive `Authorization` header and never appears in
//! `Debug` output, errors or logs.

mod error;
mod models;
mod request;
mod validate;

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::{Stream, StreamExt};
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub use error::{Error, Result};
pub use marquee_types::*;
pub use request::{
    AudioFormat, CategoryMatch, DEFAULT_SPEECH_MODEL, DEFAULT_TRANSCRIPTION_MODEL, DEFAULT_VOICE,
    ImageRequest, MAX_SPEECH_CHARS, RecommendRequest, SpeechRequest, TranscriptFormat,
    TranscriptionRequest, UsageQuery,
};

use validate::{validate_element_id, validate_id};

/// Largest batch the server accepts in one request (its default `max_batch`).
pub const DEFAULT_BATCH_SIZE: usize = 10_000;

/// Most bytes of JSON per batch request by default: under the server's default body limit
/// (10 MiB, beyond which it answers 413), with room to spare.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Largest page the listing routes return.
pub const MAX_PAGE_SIZE: usize = 1000;

/// Most history entries a profile returns.
pub const MAX_PROFILE_HISTORY: usize = 100;

/// The API key: sent, never shown.
#[derive(Clone)]
struct ApiKey(HeaderValue);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Configures a [`Client`]: `Client::builder().base_url(…).api_key(…).timeout(…).build()`.
#[derive(Clone)]
pub struct ClientBuilder {
    base_url: Option<String>,
    api_key: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    max_retries: u32,
    max_retry_wait: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
    batch_size: usize,
    max_batch_bytes: usize,
    user_agent: Option<String>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_retries", &self.max_retries)
            .field("max_retry_wait", &self.max_retry_wait)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            base_url: None,
            api_key: None,
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            max_retries: 2,
            max_retry_wait: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            batch_size: DEFAULT_BATCH_SIZE,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            user_agent: None,
        }
    }
}

impl ClientBuilder {
    /// The server's address, e.g. `http://127.0.0.1:8080` (a path prefix is kept: a server
    /// behind `https://example.com/marquee/` works).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// A secret, publishable or admin key (`mq_sk_…`). Without one only public routes work
    /// (`--demo` serves its recommendations without a key).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The longest one attempt may take, answer body included (default 60 s). Streamed chat
    /// applies it to the wait for the answer and for each chunk.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The longest connecting may take (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Retries after the first attempt of a retryable request (default 2; 0 disables).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// The longest `Retry-After` worth waiting for (default 60 s); longer ones are returned.
    pub fn max_retry_wait(mut self, wait: Duration) -> Self {
        self.max_retry_wait = wait;
        self
    }

    /// The first backoff without `Retry-After` (default 0.5 s), doubled on each retry up to
    /// `max_backoff` (default 8 s).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Elements per request of the batch uploads (`send_feedback`, `upsert_items`,
    /// `upsert_users`): 1 to the server's limit, default 10,000.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// Most bytes of JSON per request of the batch uploads (default 8 MiB, under the server's
    /// 10 MiB body limit): a chunk is also cut before it would grow past this, and one element
    /// larger than this alone is refused before anything is sent.
    pub fn max_batch_bytes(mut self, n: usize) -> Self {
        self.max_batch_bytes = n;
        self
    }

    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = Some(ua.into());
        self
    }

    pub fn build(self) -> Result<Client> {
        let raw = self
            .base_url
            .as_deref()
            .ok_or_else(|| Error::invalid("base_url", "is required"))?;
        let mut base = Url::parse(raw.trim())
            .map_err(|e| Error::invalid("base_url", format!("{raw:?} is not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::invalid(
                "base_url",
                format!("{raw:?} is not an http(s) URL"),
            ));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(Error::invalid(
                "base_url",
                "must not have a query or fragment",
            ));
        }
        // Paths are appended segment by segment: drop a trailing slash so that
        // `http://host/` and `http://host` mean the same.
        if base.path().ends_with('/') {
            let trimmed = base.path().trim_end_matches('/').to_string();
            base.set_path(&trimmed);
        }
        let key = match self.api_key {
            None => None,
            Some(k) => {
                let k = k.trim();
                if k.is_empty() {
                    return Err(Error::invalid("api_key", "must not be empty"));
                }
                let mut value = HeaderValue::from_str(&format!("Bearer {k}")).map_err(|_| {
                    Error::invalid("api_key", "contains characters a header cannot carry")
                })?;
                value.set_sensitive(true);
                Some(ApiKey(value))
            }
        };
        if self.batch_size == 0 {
            return Err(Error::invalid("batch_size", "must be at least 1"));
        }
        if self.max_batch_bytes < 2 {
            return Err(Error::invalid("max_batch_bytes", "must be at least 2"));
        }
        if self.timeout.is_zero() {
            return Err(Error::invalid("timeout", "must be positive"));
        }
        // reqwest is built without a default crypto provider (no aws-lc); the ring one is
        // installed for the process, unless someone installed one already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http =
            reqwest::Client::builder()
                .connect_timeout(self.connect_timeout)
                .user_agent(self.user_agent.unwrap_or_else(|| {
                    format!("marquee-client-rust/{}", env!("CARGO_PKG_VERSION"))
                }))
                .build()
                .map_err(Error::Transport)?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                key,
                timeout: self.timeout,
                max_retries: self.max_retries,
                max_retry_wait: self.max_retry_wait,
                initial_backoff: self.initial_backoff,
                max_backoff: self.max_backoff,
                batch_size: self.batch_size,
                max_batch_bytes: self.max_batch_bytes,
            }),
        })
    }
}

/// A client of one Marquee server under one key. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    key: Option<ApiKey>,
    timeout: Duration,
    max_retries: u32,
    max_retry_wait: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
    batch_size: usize,
    max_batch_bytes: usize,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Client")
            .field("base_url", &i.base.as_str())
            .field("api_key", &i.key)
            .field("timeout", &i.timeout)
            .field("max_retries", &i.max_retries)
            .field("batch_size", &i.batch_size)
            .finish()
    }
}

/// Whether a request may be sent again after a failure that may have reached the server.
/// `Idempotent` allows it only where [`may_repeat`] does too; `Never` forbids it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    Idempotent,
    Never,
}

/// Answers worth sending a call again for: rate limited, or a gateway or server overloaded.
const RETRY_STATUSES: [u16; 4] = [429, 502, 503, 504];

/// Error codes never retried: exhausted until the billing period ends, waiting seconds will not
/// help.
const NO_RETRY_CODES: [&str; 2] = ["quota_exceeded", "budget_exceeded"];

/// The `POST`s that cannot do anything twice when repeated (paths below the base URL). Every
/// other `POST` (chat completions, training, key creation or rotation, experiments, item copy
/// generation, …) is never retried.
const RETRYABLE_POSTS: [&str; 8] = [
    "/v1/feedback",          // an event is keyed by (user, item, type)
    "/v1/items",             // upserts by id
    "/v1/users",             // upserts by id
    "/v1/recommend/session", // a read
    "/v1/embeddings",        // read-only computations: they store nothing
    "/v1/audio/speech",
    "/v1/audio/transcriptions",
    "/v1/images/classify",
];

/// Whether a call (its method and its path below the base URL) may be sent again after a
/// retryable failure, transport failures included: a request that failed on the way may still
/// have reached the server.
fn may_repeat(method: &Method, path: &str) -> bool {
    match *method {
        Method::GET | Method::HEAD | Method::PUT | Method::PATCH | Method::DELETE => true,
        Method::POST => RETRYABLE_POSTS.contains(&path),
        _ => false,
    }
}

/// One request, kept so that it can be sent again.
struct Call {
    method: Method,
    url: Url,
    body: Option<Vec<u8>>,
    /// The body's media type: JSON unless set.
    content_type: Option<String>,
    retry: Retry,
}

impl Client {
    /// A client of the server at `base_url` using `api_key`, with the default timeout (60 s),
    /// retries (2) and batch size (10,000).
    pub fn new(base_url: &str, api_key: impl Into<String>) -> Result<Client> {
        Client::builder()
            .base_url(base_url)
            .api_key(api_key)
            .build()
    }

    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client configured from `MARQUEE_BASE_URL` (default `http://127.0.0.1:8080`) and
    /// `MARQUEE_API_KEY` (optional), as the Python SDK's default client is.
    pub fn from_env() -> Result<Client> {
        let mut b = Client::builder().base_url(
            std::env::var("MARQUEE_BASE_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into()),
        );
        if let Ok(key) = std::env::var("MARQUEE_API_KEY")
            && !key.is_empty()
        {
            b = b.api_key(key);
        }
        b.build()
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        self.inner.base.as_str()
    }

    // -----------------------------------------------------------------------------------------
    // Recommendations

    /// `GET /v1/recommend/{user}` (or `/v1/recommend/{user}/{item}` with `item_id`): the user's
    /// recommendations, best first. An unknown user gets popular items.
    pub async fn recommend(
        &self,
        user_id: &str,
        request: &RecommendRequest,
    ) -> Result<Vec<Recommendation>> {
        validate_id("user_id", user_id)?;
        request.validate()?;
        let (url, what) = match &request.item_id {
            Some(item) => (
                self.url(&["v1", "recommend", user_id, item], &request.query()),
                "GET /v1/recommend/{user_id}/{item_id}",
            ),
            None => (
                self.url(&["v1", "recommend", user_id], &request.query()),
                "GET /v1/recommend/{user_id}",
            ),
        };
        self.json(Method::GET, url, what, None::<&()>, Retry::Idempotent)
            .await
    }

    /// `GET /v1/items/{item}/similar`: items like this one.
    pub async fn similar(
        &self,
        item_id: &str,
        request: &RecommendRequest,
    ) -> Result<Vec<Recommendation>> {
        validate_id("item_id", item_id)?;
        request.validate()?;
        request.without_item("similar")?;
        let url = self.url(&["v1", "items", item_id, "similar"], &request.query());
        self.json(
            Method::GET,
            url,
            "GET /v1/items/{item_id}/similar",
            None::<&()>,
            Retry::Idempotent,
        )
        .await
    }

    /// `GET /v1/popular`: the most popular items (time-decayed).
    pub async fn popular(&self, request: &RecommendRequest) -> Result<Vec<Recommendation>> {
        request.validate()?;
        request.without_item("popular")?;
        let url = self.url(&["v1", "popular"], &request.query());
        self.json(
            Method::GET,
            url,
            "GET /v1/popular",
            None::<&()>,
            Retry::Idempotent,
        )
        .await
    }

    /// `GET /v1/trending`: what gained most in the last week against the four before.
    pub async fn trending(&self, request: &RecommendRequest) -> Result<Vec<Recommendation>> {
        request.validate()?;
        request.without_item("trending")?;
        let url = self.url(&["v1", "trending"], &request.query());
        self.json(
            Method::GET,
            url,
            "GET /v1/trending",
            None::<&()>,
            Retry::Idempotent,
        )
        .await
    }

    /// `POST /v1/recommend/session`: recommendations for an anonymous session that engaged with
    /// `items` (most relevant last or first: order does not matter).
    pub async fn session<S: AsRef<str>>(
        &self,
        items: &[S],
        request: &RecommendRequest,
    ) -> Result<Vec<Recommendation>> {
        request.validate()?;
        request.without_item("session")?;
        let items: Vec<String> = items.iter().map(|s| s.as_ref().to_string()).collect();
        for i in &items {
            validate_id("items", i)?;
        }
        let url = self.url(&["v1", "recommend", "session"], &[]);
        self.json(
            Method::POST,
            url,
            "POST /v1/recommend/session",
            Some(&request.session_body(items)),
            Retry::Idempotent,
        )
        .await
    }

    /// `GET /v1/search?q=…`: items whose text matches `query` in meaning (needs an embedding
    /// model on the server). `exclude_seen` and `exploration` do not apply.
    pub async fn search(
        &self,
        query: &str,
        request: &RecommendRequest,
    ) -> Result<Vec<Recommendation>> {
        if query.trim().is_empty() {
            return Err(Error::invalid("query", "must not be empty"));
        }
        request.validate()?;
        request.without_item("search")?;
        if request.exclude_seen.is_some() || request.exploration.is_some() {
            return Err(Error::invalid(
                "request",
                "search takes no `exclude_seen` or `exploration`",
            ));
        }
        let mut q = vec![("q", query.to_string())];
        q.extend(request.query());
        let url = self.url(&["v1", "search"], &q);
        self.json(
            Method::GET,
            url,
            "GET /v1/search",
            None::<&()>,
            Retry::Idempotent,
        )
        .await
    }

    /// `GET /v1/users/{user}/profile`: the item the user engaged with most recently, their
    /// weighted interests and their 20 most recent events with titles (the SDKs'
    /// `get_user_data`).
    pub async fn profile(&self, user_id: &str) -> Result<UserProfile> {
        self.profile_with_history(user_id, 20).await
    }

    /// [`Client::profile`] with `history` recent events (0–100).
    pub async fn profile_with_history(&self, user_id: &str, history: usize) -> Result<UserProfile> {
        validate_id("user_id", user_id)?;
        if history > MAX_PROFILE_HISTORY {
            return Err(Error::invalid(
                "history",
                format!("must be at most {MAX_PROFILE_HISTORY}"),
            ));
        }
        let url = self.url(
            &["v1", "users", user_id, "profile"],
            &[("history", history.to_string())],
        );
        self.json(
            Method::GET,
            url,
            "GET /v1/users/{user_id}/profile",
            None::<&()>,
            Retry::Idempotent,
        )
        .await
    }

    // -----------------------------------------------------------------------------------------
    // Catalogue

    pub async fn get_item(&self, item_id: &str) -> Result<Item> {
        validate_id("item_id", item_id)?;
        let url = self.url(&["v1", "items", item_id], &[]);
        self.json(
            Method::GET,
            url,
            "GET /v1/items/{item_id}",
            None::<&()>,
            Retry::Idempotent,
        )
        .await
    }

    /// `PUT /v1/items/{id}`: creates or replaces the item. `input.id`, if set, must be `item_id`.
    pub async fn put_item(&self, item_id: &str, input: &ItemInput) -> Result<Item> {
        validate_id("item_id", item_id)?;
        if input.id.as_deref().is_some_and(|id| id != item_id) {
            return Err(Error::invalid("id", "differs from `item_id`"));
        }
        let url = self.url(&["v1", "items", item_id], &[]);
        self.json(
            Method::PUT,
            url,
            "PUT /v1/items/{item_id}",
            Some(input),
            Retry::Idempotent,
        )
        .await
    }

    /// `PATCH /v1/items/{id}`: changes the fields present in `patch` (`Some(None)` clears one).
    pub async fn patch_item(&self, item_id: &str, patch: &ItemPatch) -> Result<Item> {
        validate_id("item_id", item_id)?;
        let url = self.url(&["v1", "items", item_id], &[]);
        self.json(
            Method::PATCH,
            url,
            "PATCH /v1/items/{item_id}",
            Some(patch),
            Retry::Idempotent,
        )
        .await
    }

    /// `DELETE /v1/items/{id}`: deletes the item and the feedback on it.
    pub async fn delete_item(&self, item_id: &str) -> Result<()> {
        validate_id("item_id", item_id)?;
        let url = self.url(&["v1", "items", item_id], &[]);
        self.empty(Method::DELETE, url, Retry::Idempotent).await
    }

    /// `POST /v1/items`: creates or replaces many items (each with its `id`), in chunks of the
    /// batch size; returns how many were written.
    pub async fn upsert_items(&self, items: &[ItemInput]) -> Result<usize> {
        for (i, item) in items.iter().enumerate() {
            validate_element_id("items", i, item.id.as_deref())?;
        }
        self.batches(items, &["v1", "items"], "POST /v1/items", "upserted")
            .await
    }

    /// One page of `GET /v1/items` (`limit` 1–1000), in id order.
    pub async fn list_items(&self, cursor: Option<&str>, limit: usize) -> Result<Page<Item>> {
        self.page(&["v1", "items"], "items", cursor, limit).await
    }

    /// Every item, page after page, as a stream (pages of 1000).
    pub fn items(&self) -> impl Stream<Item = Result<Item>> + Send + 'static {
        self.clone().pages(&["v1", "items"], "items")
    }

    /// Every item, collected.
    pub async fn list_all_items(&self) -> Result<Vec<Item>> {
        collect(self.items()).await
    }

    // -----------------------------------------------------------------------------------------
    // Users

    pub async fn get_user(&self, user_id: &str) -> Result<User> {
        validate_id("user_id", user_id)?;
        let url = self.url(&["v1", "users", user_id], &[]);
        self.json(
            Method::GET,
            url,
            "GET /v1/users/{user_id}",
            None::<&()>,
            Retry::Idempotent,
        )
        .await
    }

    /// `PUT /v1/users/{id}`: creates or replaces the user's attributes.
    pub async fn put_user(&self, user_id: &str, input: &UserInput) -> Result<User> {
        validate_id("user_id", user_id)?;
        if input.id.as_deref().is_some_and(|id| id != user_id) {
            return Err(Error::invalid("id", "differs from `user_id`"));
        }
        let url = self.url(&["v1", "users", user_id], &[]);
        self.json(
            Method::PUT,
            url,
            "PUT /v1/users/{user_id}",
            Some(input),
            Retry::Idempotent,
        )
        .await
    }

    /// `PATCH /v1/users/{id}`: sets the attributes given, keeps the others.
    pub async fn patch_user(&self, user_id: &str, attributes: &Map<String, Value>) -> Result<User> {
        validate_id("user_id", user_id)?;
        let url = self.url(&["v1", "users", user_id], &[]);
        let body = serde_json::json!({ "attributes": attributes });
        self.json(
            Method::PATCH,
            url,
            "PATCH /v1/users/{user_id}",
            Some(&body),
            Retry::Idempotent,
        )
        .await
    }

    /// `DELETE /v1/users/{id}`: erases the user (attributes, feedback, their place in served
    /// results). Returns the server's erasure record.
    pub async fn delete_user(&self, user_id: &str) -> Result<Value> {
        validate_id("user_id", user_id)?;
        let url = self.url(&["v1", "users", user_id], &[]);
        self.json(
            Method::DELETE,
            url,
            "DELETE /v1/users/{user_id}",
            None::<&()>,
            Retry::Idempotent,
        )
        .await
    }

    /// `POST /v1/users`: creates or replaces many users (each with its `id`), chunked.
    pub async fn upsert_users(&self, users: &[UserInput]) -> Result<usize> {
        for (i, user) in users.iter().enumerate() {
            validate_element_id("users", i, user.id.as_deref())?;
        }
        self.batches(users, &["v1", "users"], "POST /v1/users", "upserted")
            .await
    }

    /// One page of `GET /v1/users` (`limit` 1–1000), in id order.
    pub async fn list_users(&self, cursor: Option<&str>, limit: usize) -> Result<Page<User>> {
        self.page(&["v1", "users"], "users", cursor, limit).await
    }

    /// Every user, page after page, as a stream.
    pub fn users(&self) -> impl Stream<Item = Result<User>> + Send + 'static {
        self.clone().pages(&["v1", "users"], "users")
    }

    /// Every user, collected.
    pub async fn list_all_users(&self) -> Result<Vec<User>> {
        collect(self.users()).await
    }

    /// `GET /v1/users/{id}/feedback`: the user's most recent feedback (`limit` 1–1000).
    pub async fn user_feedback(&self, user_id: &str, limit: usize) -> Result<Vec<Feedback>> {
        validate_id("user_id", user_id)?;
        check_limit(limit)?;
        let url = self.url(
            &["v1", "users", user_id, "feedback"],
            &[("limit", limit.to_string())],
        );
        let body: Value = self
            .json(
                Method::GET,
                url,
                "GET /v1/users/{user_id}/feedback",
                None::<&()>,
                Retry::Idempotent,
            )
            .await?;
        field(body, "feedback", "GET /v1/users/{user_id}/feedback")
    }

    // -----------------------------------------------------------------------------------------
    // Feedback

    /// `POST /v1/feedback`: records events, in chunks of the batch size (10,000 by default, the
    /// server's limit); returns how many the server accepted. Safe to resend: an event is keyed
    /// by (user, item, type). Items must exist; users are created on their first event.
    pub async fn send_feedback(&self, events: &[FeedbackInput]) -> Result<usize> {
        for (i, e) in events.iter().enumerate() {
            validate_element_id("user_id", i, Some(&e.user_id))?;
            validate_element_id("item_id", i, Some(&e.item_id))?;
            if e.kind.trim().is_empty() {
                return Err(Error::invalid(
                    "type",
                    format!("element {i}: must not be empty"),
                ));
            }
            if e.value.is_some_and(|v| !v.is_finite()) {
                return Err(Error::invalid(
                    "value",
                    format!("element {i}: must be a finite number"),
                ));
            }
        }
        self.batches(events, &["v1", "feedback"], "POST /v1/feedback", "accepted")
            .await
    }

    // -----------------------------------------------------------------------------------------
    // Usage, training

    /// `GET /v1/usage`: requests, units and cost in a window (default: the current period).
    pub async fn usage(&self, query: &UsageQuery) -> Result<UsageReport> {
        if let (Some(from), Some(to)) = (query.from, query.to)
            && from > to
        {
            return Err(Error::invalid("from", "is after `to`"));
        }
        let url = self.url(&["v1", "usage"], &query.query());
        self.json(
            Method::GET,
            url,
            "GET /v1/usage",
            None::<&()>,
            Retry::Idempotent,
        )
        .await
    }

    /// `POST /v1/models/train`: trains a new recommendation model now; with `wait`, returns
    /// once it serves (`{"status": "trained", "model": {…}}`), else at once
    /// (`{"status": "started"}`). Not retried.
    pub async fn train(&self, wait: bool) -> Result<Value> {
        let query = if wait {
            vec![("wait", "true".to_string())]
        } else {
            Vec::new()
        };
        let url = self.url(&["v1", "models", "train"], &query);
        self.json(
            Method::POST,
            url,
            "POST /v1/models/train",
            Some(&serde_json::json!({})),
            Retry::Never,
        )
        .await
    }

    // -----------------------------------------------------------------------------------------
    // Models

    /// `POST /v1/embeddings`: one vector per text (`model`: the server's first embedding model
    /// when `None`). Retried like a read: it stores nothing.
    pub async fn embed<S: AsRef<str>>(
        &self,
        model: Option<&str>,
        input: &[S],
    ) -> Result<Embeddings> {
        if input.is_empty() {
            return Err(Error::invalid("input", "must not be empty"));
        }
        if let Some(i) = input.iter().position(|s| s.as_ref().is_empty()) {
            return Err(Error::invalid(
                "input",
                format!("input[{i}] is an empty string"),
            ));
        }
        if model.is_some_and(str::is_empty) {
            return Err(Error::invalid("model", "must not be empty"));
        }
        let mut body = serde_json::json!({
            "input": input.iter().map(AsRef::as_ref).collect::<Vec<&str>>(),
        });
        if let Some(m) = model {
            body["model"] = m.into();
        }
        let url = self.url(&["v1", "embeddings"], &[]);
        self.json(
            Method::POST,
            url,
            "POST /v1/embeddings",
            Some(&body),
            Retry::Idempotent,
        )
        .await
    }

    /// `POST /v1/chat/completions`, whole. Not retried.
    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatCompletion> {
        let body = chat_body(request, false)?;
        let url = self.url(&["v1", "chat", "completions"], &[]);
        self.json(
            Method::POST,
            url,
            "POST /v1/chat/completions",
            Some(&body),
            Retry::Never,
        )
        .await
    }

    /// `POST /v1/chat/completions` with `stream: true`: the chunks as they are generated (the
    /// last one carries `usage`). Dropping the stream stops the generation on the server. An
    /// error before the first byte is returned at once; one during generation ends the stream
    /// with an [`Error::Api`].
    pub async fn chat_stream(
        &self,
        request: &ChatRequest,
    ) -> Result<impl Stream<Item = Result<ChatChunk>> + Send + 'static> {
        let body = chat_body(request, true)?;
        let call = Call {
            method: Method::POST,
            url: self.url(&["v1", "chat", "completions"], &[]),
            body: Some(json_body(&body)?),
            content_type: None,
            retry: Retry::Never,
        };
        let response = self.execute(&call, false).await?;
        let timeout = self.inner.timeout;
        let bytes = response.bytes_stream();
        let state = (bytes, models::SseParser::default(), VecDeque::new(), false);
        Ok(futures_util::stream::unfold(
            state,
            move |(mut bytes, mut parser, mut pending, mut done)| async move {
                loop {
                    if let Some(data) = pending.pop_front() {
                        let data: String = data;
                        if data == "[DONE]" {
                            return None;
                        }
                        let item = parse_stream_event(&data);
                        if item.is_err() {
                            pending.clear();
                            done = true;
                        }
                        return Some((item, (bytes, parser, pending, done)));
                    }
                    if done {
                        return None;
                    }
                    match tokio::time::timeout(timeout, bytes.next()).await {
                        Err(_) => {
                            done = true;
                            return Some((
                                Err(Error::Timeout(timeout)),
                                (bytes, parser, pending, done),
                            ));
                        }
                        Ok(None) => return None,
                        Ok(Some(Err(e))) => {
                            done = true;
                            return Some((
                                Err(transport_error(e, timeout)),
                                (bytes, parser, pending, done),
                            ));
                        }
                        Ok(Some(Ok(chunk))) => pending.extend(parser.push(&chunk)),
                    }
                }
            },
        ))
    }

    // -----------------------------------------------------------------------------------------
    // Voice and vision

    /// `POST /v1/audio/speech`: the request's text spoken, as the bytes of a WAV file (or raw
    /// 16-bit PCM at the model's rate). Retried like a read: synthesis stores nothing.
    pub async fn speech(&self, request: &SpeechRequest) -> Result<Vec<u8>> {
        let call = Call {
            method: Method::POST,
            url: self.url(&["v1", "audio", "speech"], &[]),
            body: Some(json_body(&request.body()?)?),
            content_type: None,
            retry: Retry::Idempotent,
        };
        self.bytes(&call).await
    }

    /// `POST /v1/audio/transcriptions`: the text of a recording (a WAV file's bytes).
    pub async fn transcribe(
        &self,
        audio: &[u8],
        options: &TranscriptionRequest,
    ) -> Result<Transcription> {
        let bytes = self.transcription(audio, options, "json").await?;
        decode(TRANSCRIPTIONS, &bytes)
    }

    /// [`Client::transcribe`] with the timed segments (`verbose_json`).
    pub async fn transcribe_verbose(
        &self,
        audio: &[u8],
        options: &TranscriptionRequest,
    ) -> Result<VerboseTranscription> {
        let bytes = self.transcription(audio, options, "verbose_json").await?;
        decode(TRANSCRIPTIONS, &bytes)
    }

    /// [`Client::transcribe`] as plain text or subtitles (SRT, WebVTT).
    pub async fn transcribe_text(
        &self,
        audio: &[u8],
        format: TranscriptFormat,
        options: &TranscriptionRequest,
    ) -> Result<String> {
        let bytes = self.transcription(audio, options, format.as_str()).await?;
        String::from_utf8(bytes).map_err(|e| Error::Decode {
            what: TRANSCRIPTIONS.into(),
            message: e.to_string(),
        })
    }

    /// The answer's bytes of a transcription in `response_format`.
    async fn transcription(
        &self,
        audio: &[u8],
        options: &TranscriptionRequest,
        response_format: &str,
    ) -> Result<Vec<u8>> {
        if audio.is_empty() {
            return Err(Error::invalid("audio", "must not be empty"));
        }
        let fields = options.fields(response_format)?;
        let call = self.upload(
            &["v1", "audio", "transcriptions"],
            &fields,
            ("audio.wav", "audio/wav", audio),
        );
        self.bytes(&call).await
    }

    /// `POST /v1/images/classify`: the most likely ImageNet labels of a PNG, JPEG or WebP
    /// image (its bytes), most likely first.
    pub async fn classify_image(
        &self,
        image: &[u8],
        options: &ImageRequest,
    ) -> Result<ImageClassification> {
        if image.is_empty() {
            return Err(Error::invalid("image", "must not be empty"));
        }
        let fields = options.fields()?;
        let call = self.upload(
            &["v1", "images", "classify"],
            &fields,
            ("image", "application/octet-stream", image),
        );
        decode("POST /v1/images/classify", &self.bytes(&call).await?)
    }

    /// A retryable multipart `POST` of `fields` and one `file` (see [`multipart`]).
    fn upload(
        &self,
        segments: &[&str],
        fields: &[(&str, String)],
        file: (&str, &str, &[u8]),
    ) -> Call {
        let (content_type, body) = multipart(fields, file);
        Call {
            method: Method::POST,
            url: self.url(segments, &[]),
            body: Some(body),
            content_type: Some(content_type),
            retry: Retry::Idempotent,
        }
    }

    /// Sends `call` and reads the whole answer.
    async fn bytes(&self, call: &Call) -> Result<Vec<u8>> {
        let response = self.execute(call, true).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(e, self.inner.timeout))?;
        Ok(bytes.into())
    }

    // -----------------------------------------------------------------------------------------
    // Transport

    /// `base` + the path segments (each percent-encoded: an id may hold `/` or `?`) + query.
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.inner.base.clone();
        {
            // The builder checked that the base URL can be a base.
            let mut path = url
                .path_segments_mut()
                .expect("http(s) URLs have path segments");
            path.pop_if_empty();
            path.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    async fn json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        what: &str,
        body: Option<&B>,
        retry: Retry,
    ) -> Result<T> {
        let call = Call {
            method,
            url,
            body: body.map(json_body).transpose()?,
            content_type: None,
            retry,
        };
        decode(what, &self.bytes(&call).await?)
    }

    async fn empty(&self, method: Method, url: Url, retry: Retry) -> Result<()> {
        let call = Call {
            method,
            url,
            body: None,
            content_type: None,
            retry,
        };
        self.execute(&call, true).await.map(drop)
    }

    /// Sends `call`, retrying as the crate documentation says; returns a successful answer
    /// (its body unread) or the last error. `whole`: the timeout covers the whole body.
    async fn execute(&self, call: &Call, whole: bool) -> Result<reqwest::Response> {
        let repeatable =
            call.retry == Retry::Idempotent && may_repeat(&call.method, self.route_path(&call.url));
        let mut attempt = 0;
        loop {
            let result = self.attempt(call, whole).await;
            let Err(error) = &result else {
                return result;
            };
            if !repeatable || attempt >= self.inner.max_retries {
                return result;
            }
            let Some(wait) = self.retry_wait(error, attempt) else {
                return result;
            };
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, call: &Call, whole: bool) -> Result<reqwest::Response> {
        let timeout = self.inner.timeout;
        let mut req = self
            .inner
            .http
            .request(call.method.clone(), call.url.clone());
        if whole {
            req = req.timeout(timeout);
        }
        if let Some(key) = &self.inner.key {
            req = req.header(AUTHORIZATION, key.0.clone());
        }
        if let Some(body) = &call.body {
            let content_type = call.content_type.as_deref().unwrap_or("application/json");
            req = req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body.clone());
        }
        let send = req.send();
        let response = if whole {
            send.await
        } else {
            match tokio::time::timeout(timeout, send).await {
                Ok(r) => r,
                Err(_) => return Err(Error::Timeout(timeout)),
            }
        }
        .map_err(|e| transport_error(e, timeout))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers(), SystemTime::now());
        // With `whole`, reqwest's timeout covers the body; otherwise bound it here.
        let text = match tokio::time::timeout(timeout, response.text()).await {
            Ok(t) => t.map_err(|e| transport_error(e, timeout))?,
            Err(_) => return Err(Error::Timeout(timeout)),
        };
        Err(api_error(status, &text, retry_after))
    }

    /// The path of `url` below the base URL (`/v1/feedback`), as [`may_repeat`] knows routes.
    fn route_path<'a>(&self, url: &'a Url) -> &'a str {
        let base = self.inner.base.path().trim_end_matches('/');
        url.path().strip_prefix(base).unwrap_or(url.path())
    }

    /// How long to wait before retrying after `error`, or `None` when it is not worth retrying
    /// (the call itself was found repeatable already).
    fn retry_wait(&self, error: &Error, attempt: u32) -> Option<Duration> {
        let retryable = match error {
            Error::Api { status, code, .. } => {
                RETRY_STATUSES.contains(status) && !NO_RETRY_CODES.contains(&code.as_str())
            }
            Error::Transport(_) | Error::Timeout(_) => true,
            _ => false,
        };
        if !retryable {
            return None;
        }
        let jitter: f64 = rand::random();
        if let Some(after) = error.retry_after() {
            if after > self.inner.max_retry_wait {
                return None;
            }
            return Some(jittered_wait(after, jitter));
        }
        let backoff = self
            .inner
            .initial_backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.inner.max_backoff);
        // Shortened by up to a quarter at random.
        Some(backoff.mul_f64(1.0 - 0.25 * jitter))
    }

    /// One page of a listing.
    async fn page<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        field_name: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<T>> {
        check_limit(limit)?;
        let mut q = vec![("limit", limit.to_string())];
        if let Some(c) = cursor {
            if c.is_empty() {
                return Err(Error::invalid("cursor", "must not be empty"));
            }
            q.push(("cursor", c.to_string()));
        }
        let what = format!("GET /{}", segments.join("/"));
        let url = self.url(segments, &q);
        let mut body: Value = self
            .json(Method::GET, url, &what, None::<&()>, Retry::Idempotent)
            .await?;
        let next_cursor = match body.get_mut("next_cursor").map(Value::take) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        Ok(Page {
            items: field(body, field_name, &what)?,
            next_cursor,
        })
    }

    /// Every element of a listing, following `next_cursor`.
    fn pages<T: DeserializeOwned + Send + 'static>(
        self,
        segments: &'static [&'static str],
        field_name: &'static str,
    ) -> impl Stream<Item = Result<T>> + Send + 'static {
        struct State<T> {
            client: Client,
            buffer: VecDeque<T>,
            cursor: Option<String>,
            done: bool,
        }
        let state = State {
            client: self,
            buffer: VecDeque::new(),
            cursor: None,
            done: false,
        };
        futures_util::stream::unfold(state, move |mut s| async move {
            loop {
                if let Some(item) = s.buffer.pop_front() {
                    return Some((Ok(item), s));
                }
                if s.done {
                    return None;
                }
                match s
                    .client
                    .page::<T>(segments, field_name, s.cursor.as_deref(), MAX_PAGE_SIZE)
                    .await
                {
                    Ok(page) => {
                        s.done = page.next_cursor.is_none();
                        s.cursor = page.next_cursor;
                        s.buffer.extend(page.items);
                    }
                    Err(e) => {
                        s.done = true;
                        return Some((Err(e), s));
                    }
                }
            }
        })
    }

    /// Sends `elements` in chunks of the batch size; sums the answers' `count_field`.
    async fn batches<T: Serialize>(
        &self,
        elements: &[T],
        segments: &[&str],
        what: &str,
        count_field: &str,
    ) -> Result<usize> {
        let ranges = batch_ranges(elements, self.inner.batch_size, self.inner.max_batch_bytes)?;
        let mut total = 0;
        for (start, end) in ranges {
            let chunk = &elements[start..end];
            let url = self.url(segments, &[]);
            let answer: Result<Value> = self
                .json(Method::POST, url, what, Some(chunk), Retry::Idempotent)
                .await;
            let count = answer.and_then(|a| {
                a.get(count_field)
                    .and_then(Value::as_u64)
                    .map(|c| c as usize)
                    .ok_or_else(|| Error::Decode {
                        what: what.to_string(),
                        message: format!("no `{count_field}` count in {a}"),
                    })
            });
            match count {
                Ok(c) => total += c,
                Err(e) => {
                    return Err(Error::Batch {
                        accepted: total,
                        chunk_start: start,
                        source: Box::new(e),
                    });
                }
            }
        }
        Ok(total)
    }
}

/// Cuts `elements` into consecutive `(start, end)` ranges of at most `max_count` elements whose
/// JSON array is at most `max_bytes` long; an element too large to go alone is refused.
fn batch_ranges<T: Serialize>(
    elements: &[T],
    max_count: usize,
    max_bytes: usize,
) -> Result<Vec<(usize, usize)>> {
    let mut ranges = Vec::new();
    let (mut start, mut bytes) = (0, 2); // `[` and `]`
    for (i, e) in elements.iter().enumerate() {
        let size = serde_json::to_vec(e)
            .map_err(|err| Error::invalid("elements", format!("element {i}: {err}")))?
            .len();
        if size + 2 > max_bytes {
            return Err(Error::invalid(
                "elements",
                format!(
                    "element {i} is {size} bytes of JSON, more than one request may carry \
                     ({max_bytes} bytes)"
                ),
            ));
        }
        let comma = usize::from(i > start);
        if i > start && (i - start == max_count || bytes + comma + size > max_bytes) {
            ranges.push((start, i));
            (start, bytes) = (i, 2);
        }
        bytes += usize::from(i > start) + size;
    }
    if start < elements.len() {
        ranges.push((start, elements.len()));
    }
    Ok(ranges)
}

fn check_limit(limit: usize) -> Result<()> {
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(Error::invalid(
            "limit",
            format!("must be between 1 and {MAX_PAGE_SIZE}, not {limit}"),
        ));
    }
    Ok(())
}

fn chat_body(request: &ChatRequest, stream: bool) -> Result<Value> {
    if request.model.is_empty() {
        return Err(Error::invalid("model", "must not be empty"));
    }
    if request.messages.is_empty() {
        return Err(Error::invalid("messages", "must not be empty"));
    }
    if request.max_tokens == Some(0) {
        return Err(Error::invalid("max_tokens", "must be at least 1"));
    }
    if request
        .temperature
        .is_some_and(|t| !(0.0..=2.0).contains(&t))
    {
        return Err(Error::invalid("temperature", "must be between 0 and 2"));
    }
    let mut body = serde_json::to_value(request)
        .map_err(|e| Error::invalid("request", format!("cannot serialize: {e}")))?;
    if stream {
        body["stream"] = true.into();
        body["stream_options"] = serde_json::json!({"include_usage": true});
    }
    Ok(body)
}

/// A chunk of a stream, or the error the server sent in its place.
fn parse_stream_event(data: &str) -> Result<ChatChunk> {
    let what = "POST /v1/chat/completions (stream)";
    let value: Value = serde_json::from_str(data).map_err(|e| decode_error(what, e))?;
    if value.get("error").is_some() {
        // Generation failed after the answer's 200: the server's error, as a server error.
        return Err(api_error(StatusCode::INTERNAL_SERVER_ERROR, data, None));
    }
    serde_json::from_value(value).map_err(|e| decode_error(what, e))
}

/// Takes `name` out of a JSON object and decodes it.
fn field<T: DeserializeOwned>(mut body: Value, name: &str, what: &str) -> Result<T> {
    let v = body
        .get_mut(name)
        .map(Value::take)
        .ok_or_else(|| Error::Decode {
            what: what.to_string(),
            message: format!("the answer has no `{name}`"),
        })?;
    serde_json::from_value(v).map_err(|e| decode_error(what, e))
}

async fn collect<T>(stream: impl Stream<Item = Result<T>>) -> Result<Vec<T>> {
    let mut out = Vec::new();
    let mut stream = std::pin::pin!(stream);
    while let Some(x) = stream.next().await {
        out.push(x?);
    }
    Ok(out)
}

/// A request body as JSON.
fn json_body<B: Serialize + ?Sized>(body: &B) -> Result<Vec<u8>> {
    serde_json::to_vec(body).map_err(|e| Error::invalid("body", format!("cannot serialize: {e}")))
}

/// The JSON answer of the call `what`.
fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| decode_error(what, e))
}

const TRANSCRIPTIONS: &str = "POST /v1/audio/transcriptions";

/// A `multipart/form-data` body of text `fields` and one file `(filename, media type, bytes)`
/// under the name `file`, and its `Content-Type` (with the boundary). Built whole, so that a
/// retry sends the same bytes; the boundary is drawn until it occurs in no part.
fn multipart(fields: &[(&str, String)], file: (&str, &str, &[u8])) -> (String, Vec<u8>) {
    let (filename, media_type, data) = file;
    let boundary = loop {
        let b = format!("marquee-{:032x}", rand::random::<u128>());
        let inside = |hay: &[u8]| hay.windows(b.len()).any(|w| w == b.as_bytes());
        if !inside(data) && !fields.iter().any(|(_, v)| inside(v.as_bytes())) {
            break b;
        }
    };
    let mut body = Vec::with_capacity(data.len() + 256 * (fields.len() + 1));
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {media_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn decode_error(what: &str, e: serde_json::Error) -> Error {
    Error::Decode {
        what: what.to_string(),
        message: e.to_string(),
    }
}

fn transport_error(e: reqwest::Error, timeout: Duration) -> Error {
    if e.is_timeout() {
        Error::Timeout(timeout)
    } else {
        // The URL in reqwest's message holds ids but never the key (a header).
        Error::Transport(e)
    }
}

/// What the server asked to wait, never less, plus up to 10 % (at most 250 ms) of it (`jitter`
/// in 0–1), so that clients told the same moment do not all come back at once.
fn jittered_wait(asked: Duration, jitter: f64) -> Duration {
    let extra = (asked.as_secs_f64() * 0.1).min(0.25) * jitter.clamp(0.0, 1.0);
    asked + Duration::from_secs_f64(extra)
}

/// The wait an answer asks for: `retry-after-ms`, else `Retry-After` in seconds (fractions
/// allowed) or as an HTTP date (a date past is no wait). `None` when absent or unreadable.
fn retry_after(headers: &reqwest::header::HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let seconds = |v: &str| v.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0);
    if let Some(ms) = text("retry-after-ms").and_then(seconds) {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = text(RETRY_AFTER.as_str())?;
    if let Some(s) = seconds(value) {
        return Some(Duration::from_secs_f64(s));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// An HTTP date (RFC 9110 §5.6.7): the IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, or the
/// obsolete RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`)
/// forms.
fn parse_http_date(text: &str) -> Option<SystemTime> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = |m: &str| MONTHS.iter().position(|n| *n == m).map(|i| i as u32 + 1);
    let words: Vec<&str> = text.split_whitespace().collect();
    let (year, month, day, time) = match words.as_slice() {
        // IMF-fixdate.
        [_weekday, day, mon, year, time, "GMT"] => (
            year.parse::<i64>().ok()?,
            month(mon)?,
            day.parse::<u32>().ok()?,
            *time,
        ),
        // RFC 850, with a two-digit year: 00–69 are 20xx, 70–99 19xx.
        [_weekday, date, time, "GMT"] => {
            let mut parts = date.split('-');
            let (day, mon, yy) = (parts.next()?, parts.next()?, parts.next()?);
            let yy: i64 = yy.parse().ok()?;
            let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
            (year, month(mon)?, day.parse::<u32>().ok()?, *time)
        }
        // asctime.
        [_weekday, mon, day, time, year] => (
            year.parse::<i64>().ok()?,
            month(mon)?,
            day.parse::<u32>().ok()?,
            *time,
        ),
        _ => return None,
    };
    let mut hms = time.split(':').map(|p| p.parse::<u32>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some()
        || !(1970..=9999).contains(&year)
        || !(1..=31).contains(&day)
        || h > 23
        || m > 59
        || s > 60
    {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(s);
    let secs = u64::try_from(secs).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// An error answer: Marquee's body when it is one, else the status and the start of the text.
fn api_error(status: StatusCode, text: &str, retry_after: Option<Duration>) -> Error {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let get = |k: &str| {
        err.and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let code = get("code").unwrap_or_else(|| format!("http_{}", status.as_u16()));
    let message = get("message").unwrap_or_else(|| {
        let t: String = text.trim().chars().take(200).collect();
        if t.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("no explanation")
                .to_string()
        } else {
            t
        }
    });
    Error::Api {
        status: status.as_u16(),
        code,
        message,
        param: get("param"),
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_cut_by_count_and_by_bytes() {
        let ids: Vec<String> = (0..10).map(|i| format!("item-{i}")).collect();
        // `"item-0"` is 8 bytes: an array of n is 2 + 8n + (n - 1) bytes.
        assert_eq!(
            batch_ranges(&ids, 4, 1 << 20).unwrap(),
            [(0, 4), (4, 8), (8, 10)]
        );
        // 28 bytes hold three (2 + 24 + 2 = 28), not four.
        assert_eq!(
            batch_ranges(&ids, 100, 28).unwrap(),
            [(0, 3), (3, 6), (6, 9), (9, 10)]
        );
        assert_eq!(batch_ranges(&ids, 100, 27).unwrap().len(), 5);
        // Every chunk as sent fits.
        for (a, b) in batch_ranges(&ids, 100, 27).unwrap() {
            assert!(serde_json::to_vec(&ids[a..b]).unwrap().len() <= 27);
        }
        let big = vec!["x".repeat(100)];
        let err = batch_ranges(&big, 10, 50).unwrap_err();
        assert!(err.to_string().contains("element 0"), "{err}");
        assert!(batch_ranges::<String>(&[], 10, 50).unwrap().is_empty());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let c = Client::new("http://127.0.0.1:1/", "mq_sk_secret_value_123").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("secret_value"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
        let b = Client::builder().api_key("mq_sk_secret_value_123");
        assert!(!format!("{b:?}").contains("secret_value"));
    }

    #[test]
    fn urls_encode_ids_and_keep_a_base_path() {
        let c = Client::new("https://example.com/marquee/", "k").unwrap();
        let url = c.url(&["v1", "items", "a/b?c"], &[("n", "5".into())]);
        assert_eq!(
            url.as_str(),
            "https://example.com/marquee/v1/items/a%2Fb%3Fc?n=5"
        );
        assert!(Client::new("ftp://x", "k").is_err());
        assert!(Client::new("not a url", "k").is_err());
        assert!(Client::new("http://x", " ").is_err());
    }

    #[test]
    fn the_calls_that_may_be_repeated() {
        for m in [
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            assert!(may_repeat(&m, "/v1/anything"), "{m}");
        }
        for path in RETRYABLE_POSTS {
            assert!(may_repeat(&Method::POST, path), "{path}");
        }
        for path in [
            "/v1/chat/completions",
            "/v1/models/train",
            "/v1/admin/tenants/t/keys",
            "/v1/keys/k/rotate",
            "/v1/experiments",
            "/v1/items/heat/copy",
            "/v1/anything-new",
        ] {
            assert!(!may_repeat(&Method::POST, path), "{path}");
        }
        // Routes are matched below the base URL's path.
        let c = Client::new("https://example.com/marquee/", "k").unwrap();
        let url = c.url(&["v1", "feedback"], &[("x", "1".into())]);
        assert_eq!(c.route_path(&url), "/v1/feedback");
        let c = Client::new("http://127.0.0.1:8080", "k").unwrap();
        assert_eq!(
            c.route_path(&c.url(&["v1", "embeddings"], &[])),
            "/v1/embeddings"
        );
    }

    #[test]
    fn retry_after_in_milliseconds_seconds_or_a_date() {
        use reqwest::header::{HeaderMap, HeaderName};
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // 1994-11-06 08:49:37
        let headers = |pairs: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            h
        };
        let wait = |pairs: &[(&str, &str)]| retry_after(&headers(pairs), now);
        assert_eq!(wait(&[("retry-after", "2")]), Some(Duration::from_secs(2)));
        assert_eq!(
            wait(&[("retry-after", " 0.25 ")]),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            wait(&[("retry-after-ms", "1500"), ("retry-after", "30")]),
            Some(Duration::from_millis(1500)),
            "retry-after-ms wins"
        );
        assert_eq!(
            wait(&[("retry-after-ms", "soon"), ("retry-after", "3")]),
            Some(Duration::from_secs(3))
        );
        for date in [
            "Sun, 06 Nov 1994 08:49:47 GMT",
            "Sunday, 06-Nov-94 08:49:47 GMT",
            "Sun Nov  6 08:49:47 1994",
        ] {
            assert_eq!(
                wait(&[("retry-after", date)]),
                Some(Duration::from_secs(10)),
                "{date}"
            );
        }
        assert_eq!(
            wait(&[("retry-after", "Sun, 06 Nov 1994 08:00:00 GMT")]),
            Some(Duration::ZERO),
            "a date past"
        );
        for bad in [
            "soon",
            "-1",
            "NaN",
            "Sun, 06 Nov 1994 25:00:00 GMT",
            "Sun, 06 Foo 1994 08:00:00 GMT",
        ] {
            assert_eq!(wait(&[("retry-after", bad)]), None, "{bad}");
        }
        assert_eq!(wait(&[]), None);
        assert_eq!(
            parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(SystemTime::UNIX_EPOCH)
        );
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_835_438_400))
        );
    }

    #[test]
    fn waits_are_never_shorter_than_asked_and_jitter_is_bounded() {
        for (asked, most) in [
            (0, 0),
            (1000, 1100),
            (2000, 2200),
            (10_000, 10_250),
            (60_000, 60_250),
        ] {
            let asked = Duration::from_millis(asked);
            for jitter in [0.0, 0.3, 0.999, 1.0] {
                let w = jittered_wait(asked, jitter);
                assert!(
                    w >= asked && w <= Duration::from_millis(most),
                    "{asked:?} {w:?}"
                );
            }
        }
        let c = Client::new("http://127.0.0.1:1", "k").unwrap();
        let busy = |status, code: &str, after| Error::Api {
            status,
            code: code.into(),
            message: String::new(),
            param: None,
            retry_after: after,
        };
        for (attempt, full) in [(0, 500), (1, 1000), (2, 2000), (3, 4000), (10, 8000)] {
            let w = c
                .retry_wait(&busy(503, "overloaded", None), attempt)
                .unwrap();
            let full = Duration::from_millis(full);
            assert!(w >= full.mul_f64(0.75) && w <= full, "{attempt}: {w:?}");
        }
        for status in [429, 502, 503, 504] {
            assert!(
                c.retry_wait(&busy(status, "x", None), 0).is_some(),
                "{status}"
            );
        }
        for status in [400, 401, 404, 409, 413, 422, 500] {
            assert!(
                c.retry_wait(&busy(status, "x", None), 0).is_none(),
                "{status}"
            );
        }
        for code in ["quota_exceeded", "budget_exceeded"] {
            let e = busy(429, code, Some(Duration::from_secs(1)));
            assert!(c.retry_wait(&e, 0).is_none(), "{code}");
        }
        let long = busy(503, "overloaded", Some(Duration::from_secs(61)));
        assert!(c.retry_wait(&long, 0).is_none(), "over max_retry_wait");
        let asked = busy(429, "rate_limit_exceeded", Some(Duration::from_secs(3)));
        let w = c.retry_wait(&asked, 0).unwrap();
        assert!(
            w >= Duration::from_secs(3) && w <= Duration::from_millis(3250),
            "{w:?}"
        );
    }

    #[test]
    fn error_bodies_are_read_and_others_kept_short() {
        let e = api_error(
            StatusCode::NOT_FOUND,
            r#"{"error": {"code": "not_found", "message": "no item x", "type": "not_found_error", "param": null}}"#,
            None,
        );
        assert_eq!(e.code(), "not_found");
        assert_eq!(e.status(), Some(404));
        assert_eq!(e.to_string(), "404 not_found: no item x");
        let e = api_error(StatusCode::BAD_GATEWAY, &"x".repeat(1000), None);
        assert_eq!(e.code(), "http_502");
        assert!(e.to_string().len() < 250);
    }
}
