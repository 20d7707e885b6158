//! The models a server has loaded, each behind admission control.
//!
//! Why: a CPU model takes tens of milliseconds to seconds per request, so unbounded queues turn
//! a burst into minutes of latency for everyone. Every model has a bounded queue and a fixed
//! number of workers; a request that finds the queue full is refused at once with
//! [`ModelError::Overloaded`] (the server answers 503 with `Retry-After`), never left hanging.
//!
//! - Embeddings: one worker thread per model drains its queue into **dynamic batches** (all
//!   texts waiting, up to a limit, go through the encoder together). Requests from API callers
//!   are served before background work (catalogue text), which fills the rest of a batch.
//! - Chat: at most `chat_concurrency` generations run at once (each on a blocking thread with
//!   its own key/value cache); up to `chat_queue` more wait for a slot.
//! - Speech, transcription and vision: the same [`Admission`] (a fixed number of running
//!   requests, a bounded number waiting), each request on a blocking thread.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::chat::{ChatModel, ChatTemplate, Generation, GenerationParams, Message};
use crate::embed::{Embedder, Embeddings, Overflow};
use crate::manifest::{Manifest, ModelKind, ModelSpec};
use crate::speech::SpeechService;
use crate::transcription::TranscriptionService;
use crate::vision::VisionService;

/// Everything that can go wrong between a request and a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("the model `{0}` does not exist")]
    NotFound(String),
    #[error("the model `{model}` is a {kind} model and cannot serve this request")]
    WrongKind { model: String, kind: String },
    #[error("the model `{model}` is not available: {reason}")]
    Unavailable { model: String, reason: String },
    #[error("input {index} has {tokens} tokens; this model reads at most {limit}")]
    InputTooLong {
        index: usize,
        tokens: usize,
        limit: usize,
    },
    #[error(
        "this model's maximum context length is {limit} tokens; the request needs {tokens} (prompt plus max_tokens)"
    )]
    ContextTooLong { tokens: usize, limit: usize },
    #[error("the model is busy (queue full); retry after {retry_after_secs} s")]
    Overloaded { retry_after_secs: u64 },
    /// The caller's input cannot be used (an unknown voice, a corrupt image, audio too long).
    #[error("{message}")]
    InvalidInput {
        code: &'static str,
        message: String,
        /// The request field at fault.
        param: Option<&'static str>,
    },
    /// The caller went away; the work stopped.
    #[error("the request was cancelled")]
    Cancelled,
    #[error("cannot load the model: {0}")]
    Load(String),
    #[error("inference failed: {0}")]
    Inference(String),
}

impl ModelError {
    /// Stable code for error bodies (OpenAI's where it has one).
    pub fn code(&self) -> &'static str {
        match self {
            ModelError::NotFound(_) => "model_not_found",
            ModelError::WrongKind { .. } => "invalid_model",
            ModelError::Unavailable { .. } => "model_unavailable",
            ModelError::InputTooLong { .. } | ModelError::ContextTooLong { .. } => {
                "context_length_exceeded"
            }
            ModelError::Overloaded { .. } => "overloaded",
            ModelError::InvalidInput { code, .. } => code,
            ModelError::Cancelled => "cancelled",
            ModelError::Load(_) | ModelError::Inference(_) => "internal_error",
        }
    }

    /// Whether the caller is at fault (a 4xx).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            ModelError::NotFound(_)
                | ModelError::WrongKind { .. }
                | ModelError::InputTooLong { .. }
                | ModelError::ContextTooLong { .. }
                | ModelError::InvalidInput { .. }
        )
    }

    pub(crate) fn invalid(
        code: &'static str,
        param: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ModelError::InvalidInput {
            code,
            message: message.into(),
            param: Some(param),
        }
    }
}

/// Admission limits; the defaults suit a small machine.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Requests that may wait for an embedding model (API callers).
    pub embed_queue: usize,
    /// Texts in one dynamic batch.
    pub embed_max_batch: usize,
    /// Generations running at once per chat model.
    pub chat_concurrency: usize,
    /// Generations that may wait for a slot.
    pub chat_queue: usize,
    /// Syntheses running at once per speech model.
    pub speech_concurrency: usize,
    /// Syntheses that may wait for a slot.
    pub speech_queue: usize,
    /// Transcriptions running at once per transcription model.
    pub transcription_concurrency: usize,
    /// Transcriptions that may wait for a slot.
    pub transcription_queue: usize,
    /// Images classified at once per vision model.
    pub vision_concurrency: usize,
    /// Images that may wait for a slot.
    pub vision_queue: usize,
    /// Longest audio accepted for transcription, in seconds.
    pub max_audio_seconds: f64,
    /// Largest audio file accepted, in bytes (OpenAI's limit is 25 MB).
    pub max_audio_bytes: usize,
    /// Largest image file accepted, in bytes.
    pub max_image_bytes: usize,
    /// Most pixels (width × height) an image may declare; refused before it is decoded.
    pub max_image_pixels: u64,
    /// What `Retry-After` says when a queue is full.
    pub retry_after_secs: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            embed_queue: 256,
            embed_max_batch: 64,
            chat_concurrency: 2,
            chat_queue: 16,
            speech_concurrency: 2,
            speech_queue: 16,
            transcription_concurrency: 1,
            transcription_queue: 8,
            vision_concurrency: 2,
            vision_queue: 64,
            max_audio_seconds: 600.0,
            max_audio_bytes: 25 * 1024 * 1024,
            max_image_bytes: 20 * 1024 * 1024,
            max_image_pixels: 40_000_000,
            retry_after_secs: 1,
        }
    }
}

/// What `/v1/models` and `/readyz` say about a model.
#[derive(Clone, Debug, Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub kind: ModelKind,
    /// `ready` or `failed`.
    pub status: &'static str,
    pub error: Option<String>,
    /// Unix seconds: when the weights were put in place.
    pub created: u64,
    pub dimensions: Option<usize>,
    pub max_tokens: Option<usize>,
    pub context_tokens: Option<usize>,
    /// Other names the API accepts for it.
    pub aliases: Vec<String>,
    /// Speech: the voices.
    pub voices: Vec<String>,
}

enum Loaded {
    Embeddings(Arc<EmbeddingService>),
    Chat(Arc<ChatService>),
    Speech(Arc<SpeechService>),
    Transcription(Arc<TranscriptionService>),
    Vision(Arc<VisionService>),
    Failed(String),
}

impl Loaded {
    fn kind_name(&self) -> &'static str {
        match self {
            Loaded::Embeddings(_) => "embeddings",
            Loaded::Chat(_) => "chat",
            Loaded::Speech(_) => "speech",
            Loaded::Transcription(_) => "transcription",
            Loaded::Vision(_) => "vision",
            Loaded::Failed(_) => "failed",
        }
    }
}

struct Entry {
    spec: ModelSpec,
    created: u64,
    loaded: Loaded,
}

/// The loaded models.
pub struct Runtime {
    entries: Vec<Entry>,
    models_dir: Option<PathBuf>,
}

impl Runtime {
    /// No models (recommendations only).
    pub fn empty() -> Self {
        Runtime {
            entries: Vec::new(),
            models_dir: None,
        }
    }

    /// Loads every manifest model whose files are in `models_dir`. A model that fails to load is
    /// kept as failed (reported, never served); the others load regardless.
    pub fn load(models_dir: &Path, manifest: &Manifest, config: &RuntimeConfig) -> Self {
        let mut entries = Vec::new();
        for spec in &manifest.models {
            let dir = models_dir.join(&spec.name);
            let status = crate::pull::status(models_dir, spec);
            match &status.state {
                crate::pull::ModelState::Present => {}
                crate::pull::ModelState::Missing => continue,
                crate::pull::ModelState::Incomplete(why) => {
                    tracing::warn!(model = %spec.name, problem = %why, "model skipped: run `marquee models pull` again");
                    continue;
                }
            }
            let created = spec
                .files
                .first()
                .and_then(|f| std::fs::metadata(dir.join(&f.to)).ok())
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let started = std::time::Instant::now();
            let loaded = match load_one(spec, &dir, config) {
                Ok(l) => {
                    tracing::info!(model = %spec.name, seconds = started.elapsed().as_secs_f64(), "model loaded");
                    l
                }
                Err(e) => {
                    tracing::error!(model = %spec.name, error = %e, "model failed to load");
                    Loaded::Failed(e.to_string())
                }
            };
            entries.push(Entry {
                spec: spec.clone(),
                created,
                loaded,
            });
        }
        Runtime {
            entries,
            models_dir: Some(models_dir.to_path_buf()),
        }
    }

    pub fn models_dir(&self) -> Option<&Path> {
        self.models_dir.as_deref()
    }

    /// Every model that is present, loaded or failed.
    pub fn models(&self) -> Vec<ModelInfo> {
        self.entries
            .iter()
            .map(|e| {
                let (status, error) = match &e.loaded {
                    Loaded::Failed(msg) => ("failed", Some(msg.clone())),
                    _ => ("ready", None),
                };
                ModelInfo {
                    name: e.spec.name.clone(),
                    kind: e.spec.kind,
                    status,
                    error,
                    created: e.created,
                    dimensions: match &e.loaded {
                        Loaded::Embeddings(s) => Some(s.dimensions()),
                        _ => None,
                    },
                    max_tokens: match &e.loaded {
                        Loaded::Embeddings(s) => Some(s.max_tokens()),
                        _ => None,
                    },
                    context_tokens: match &e.loaded {
                        Loaded::Chat(s) => Some(s.model().context_tokens()),
                        _ => None,
                    },
                    aliases: e.spec.aliases.clone(),
                    voices: e.spec.voices.clone(),
                }
            })
            .collect()
    }

    /// The model called `name`, or with `name` as an alias.
    fn entry(&self, name: &str) -> Result<&Entry, ModelError> {
        self.entries
            .iter()
            .find(|e| e.spec.name == name)
            .or_else(|| {
                self.entries
                    .iter()
                    .find(|e| e.spec.aliases.iter().any(|a| a == name))
            })
            .ok_or_else(|| ModelError::NotFound(name.to_string()))
    }

    /// Whether a model of this name (or alias) is loaded here (ready or failed).
    pub fn has(&self, name: &str) -> bool {
        self.entry(name).is_ok()
    }

    /// The model `name` if it is loaded and of the kind `pick` takes.
    fn service<T>(&self, name: &str, pick: impl Fn(&Loaded) -> Option<T>) -> Result<T, ModelError> {
        let entry = self.entry(name)?;
        if let Some(service) = pick(&entry.loaded) {
            return Ok(service);
        }
        Err(match &entry.loaded {
            Loaded::Failed(reason) => ModelError::Unavailable {
                model: name.into(),
                reason: reason.clone(),
            },
            other => ModelError::WrongKind {
                model: name.into(),
                kind: other.kind_name().into(),
            },
        })
    }

    /// The embedding model `name`.
    pub fn embeddings(&self, name: &str) -> Result<Arc<EmbeddingService>, ModelError> {
        self.service(name, |l| match l {
            Loaded::Embeddings(s) => Some(Arc::clone(s)),
            _ => None,
        })
    }

    /// The chat model `name`.
    pub fn chat(&self, name: &str) -> Result<Arc<ChatService>, ModelError> {
        self.service(name, |l| match l {
            Loaded::Chat(s) => Some(Arc::clone(s)),
            _ => None,
        })
    }

    /// The speech model `name`.
    pub fn speech(&self, name: &str) -> Result<Arc<SpeechService>, ModelError> {
        self.service(name, |l| match l {
            Loaded::Speech(s) => Some(Arc::clone(s)),
            _ => None,
        })
    }

    /// The transcription model `name`.
    pub fn transcription(&self, name: &str) -> Result<Arc<TranscriptionService>, ModelError> {
        self.service(name, |l| match l {
            Loaded::Transcription(s) => Some(Arc::clone(s)),
            _ => None,
        })
    }

    /// The vision model `name`.
    pub fn vision(&self, name: &str) -> Result<Arc<VisionService>, ModelError> {
        self.service(name, |l| match l {
            Loaded::Vision(s) => Some(Arc::clone(s)),
            _ => None,
        })
    }

    /// The first ready vision model (item images are labelled with it).
    pub fn first_vision(&self) -> Option<Arc<VisionService>> {
        self.entries.iter().find_map(|e| match &e.loaded {
            Loaded::Vision(s) => Some(Arc::clone(s)),
            _ => None,
        })
    }

    /// The first ready model of a kind (the catalogue uses the first embedding model).
    pub fn first_embeddings(&self) -> Option<Arc<EmbeddingService>> {
        self.entries.iter().find_map(|e| match &e.loaded {
            Loaded::Embeddings(s) => Some(Arc::clone(s)),
            _ => None,
        })
    }

    pub fn first_chat(&self) -> Option<Arc<ChatService>> {
        self.entries.iter().find_map(|e| match &e.loaded {
            Loaded::Chat(s) => Some(Arc::clone(s)),
            _ => None,
        })
    }
}

fn load_one(spec: &ModelSpec, dir: &Path, config: &RuntimeConfig) -> Result<Loaded, ModelError> {
    match spec.kind {
        ModelKind::Embeddings => {
            let embedder = Embedder::load(dir, spec.max_tokens.unwrap_or(256))?;
            Ok(Loaded::Embeddings(EmbeddingService::start(
                spec.name.clone(),
                embedder,
                config,
            )))
        }
        ModelKind::Chat => {
            let file = spec
                .files
                .iter()
                .find(|f| f.to.ends_with(".gguf"))
                .ok_or_else(|| ModelError::Load("no .gguf file in the manifest entry".into()))?;
            let template = match spec.chat_template.as_deref().unwrap_or("chatml") {
                "chatml" => ChatTemplate::ChatMl,
                other => {
                    return Err(ModelError::Load(format!("unknown chat template {other:?}")));
                }
            };
            let model = ChatModel::load(
                &dir.join(&file.to),
                template,
                spec.context_tokens.unwrap_or(2048),
                &spec.stop,
                spec.default_system.clone(),
            )?;
            Ok(Loaded::Chat(Arc::new(ChatService::new(
                spec.name.clone(),
                model,
                config,
            ))))
        }
        ModelKind::Speech => Ok(Loaded::Speech(Arc::new(SpeechService::load(
            spec, dir, config,
        )?))),
        ModelKind::Transcription => Ok(Loaded::Transcription(Arc::new(
            TranscriptionService::load(spec, dir, config)?,
        ))),
        ModelKind::Vision => Ok(Loaded::Vision(Arc::new(VisionService::load(
            spec, dir, config,
        )?))),
        #[allow(unreachable_patterns)]
        other => Err(ModelError::Load(format!(
            "{other:?} models are not served by this version"
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Embeddings: one worker, a bounded interactive queue and a background queue, dynamic batches.

struct EmbedJob {
    texts: Vec<String>,
    overflow: Overflow,
    reply: oneshot::Sender<Result<Embeddings, ModelError>>,
}

#[derive(Default)]
struct EmbedQueues {
    interactive: VecDeque<EmbedJob>,
    background: VecDeque<EmbedJob>,
    closed: bool,
}

/// An embedding model with its worker.
pub struct EmbeddingService {
    name: String,
    embedder: Arc<Embedder>,
    queues: Arc<(Mutex<EmbedQueues>, Condvar)>,
    interactive_cap: usize,
    background_cap: usize,
    retry_after_secs: u64,
}

impl EmbeddingService {
    /// Starts the worker thread for `embedder`.
    pub fn start(name: String, embedder: Embedder, config: &RuntimeConfig) -> Arc<Self> {
        let embedder = Arc::new(embedder);
        let queues = Arc::new((Mutex::new(EmbedQueues::default()), Condvar::new()));
        let worker_queues = Arc::clone(&queues);
        let worker_model = Arc::clone(&embedder);
        let max_batch = config.embed_max_batch.max(1);
        let thread_name = format!("embed-{name}");
        std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || embed_worker(worker_model, worker_queues, max_batch))
            .expect("spawning a thread at start-up");
        Arc::new(EmbeddingService {
            name,
            embedder,
            queues,
            interactive_cap: config.embed_queue.max(1),
            background_cap: 4,
            retry_after_secs: config.retry_after_secs,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dimensions(&self) -> usize {
        self.embedder.dimensions()
    }

    pub fn max_tokens(&self) -> usize {
        self.embedder.max_tokens()
    }

    /// Tokens per text (cheap; no model run).
    pub fn count_tokens(&self, texts: &[&str]) -> Result<Vec<usize>, ModelError> {
        self.embedder.count_tokens(texts)
    }

    /// Embeds texts for an API caller; refused at once when the queue is full.
    pub async fn embed(
        &self,
        texts: Vec<String>,
        overflow: Overflow,
    ) -> Result<Embeddings, ModelError> {
        self.submit(texts, overflow, false).await
    }

    /// Embeds texts for background work (catalogue): waits behind API callers; refused when the
    /// small background queue is full (the caller retries later).
    pub async fn embed_background(&self, texts: Vec<String>) -> Result<Embeddings, ModelError> {
        self.submit(texts, Overflow::Truncate, true).await
    }

    async fn submit(
        &self,
        texts: Vec<String>,
        overflow: Overflow,
        background: bool,
    ) -> Result<Embeddings, ModelError> {
        if texts.is_empty() {
            return Ok(Embeddings {
                vectors: Vec::new(),
                tokens: Vec::new(),
            });
        }
        let (tx, rx) = oneshot::channel();
        {
            let (lock, cv) = &*self.queues;
            let mut q = lock.lock();
            let (queue, cap) = if background {
                (&mut q.background, self.background_cap)
            } else {
                (&mut q.interactive, self.interactive_cap)
            };
            if queue.len() >= cap {
                return Err(ModelError::Overloaded {
                    retry_after_secs: self.retry_after_secs,
                });
            }
            queue.push_back(EmbedJob {
                texts,
                overflow,
                reply: tx,
            });
            cv.notify_one();
        }
        rx.await
            .unwrap_or_else(|_| Err(ModelError::Inference("the model worker stopped".into())))
    }
}

impl Drop for EmbeddingService {
    fn drop(&mut self) {
        let (lock, cv) = &*self.queues;
        lock.lock().closed = true;
        cv.notify_all();
    }
}

fn embed_worker(
    embedder: Arc<Embedder>,
    queues: Arc<(Mutex<EmbedQueues>, Condvar)>,
    max_batch: usize,
) {
    let (lock, cv) = &*queues;
    loop {
        // Take interactive jobs first, then background ones, up to `max_batch` texts.
        let mut jobs = Vec::new();
        {
            let mut q = lock.lock();
            while q.interactive.is_empty() && q.background.is_empty() && !q.closed {
                cv.wait(&mut q);
            }
            if q.closed && q.interactive.is_empty() && q.background.is_empty() {
                return;
            }
            let mut texts = 0;
            while texts < max_batch {
                let Some(job) = q
                    .interactive
                    .pop_front()
                    .or_else(|| q.background.pop_front())
                else {
                    break;
                };
                texts += job.texts.len();
                jobs.push(job);
            }
        }
        // Refuse over-long inputs per job, so one caller's bad input fails only that caller.
        let mut ready = Vec::with_capacity(jobs.len());
        for job in jobs {
            if job.overflow == Overflow::Reject {
                let refs: Vec<&str> = job.texts.iter().map(String::as_str).collect();
                if let Err(e) = embedder.check_lengths(&refs) {
                    let _ = job.reply.send(Err(e));
                    continue;
                }
            }
            ready.push(job);
        }
        if ready.is_empty() {
            continue;
        }
        let all: Vec<&str> = ready
            .iter()
            .flat_map(|j| j.texts.iter().map(String::as_str))
            .collect();
        match embedder.embed(&all, Overflow::Truncate) {
            Ok(result) => {
                let mut vectors = result.vectors.into_iter();
                let mut tokens = result.tokens.into_iter();
                for job in ready {
                    let n = job.texts.len();
                    let part = Embeddings {
                        vectors: vectors.by_ref().take(n).collect(),
                        tokens: tokens.by_ref().take(n).collect(),
                    };
                    let _ = job.reply.send(Ok(part));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for job in ready {
                    let _ = job.reply.send(Err(ModelError::Inference(msg.clone())));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Admission: a semaphore of running requests and a bounded number of waiters.

/// At most `concurrency` requests run; at most `queue` more wait; the rest are refused at once.
pub struct Admission {
    concurrency: usize,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue_cap: usize,
    retry_after_secs: u64,
}

impl Admission {
    pub fn new(concurrency: usize, queue: usize, retry_after_secs: u64) -> Self {
        let concurrency = concurrency.max(1);
        Admission {
            concurrency,
            slots: Arc::new(Semaphore::new(concurrency)),
            waiting: AtomicUsize::new(0),
            queue_cap: queue,
            retry_after_secs,
        }
    }

    /// Requests running now.
    pub fn active(&self) -> usize {
        self.concurrency - self.slots.available_permits()
    }

    /// A slot: at once if one is free, after waiting if fewer than `queue` wait, else
    /// [`ModelError::Overloaded`]. The slot is held until the permit is dropped.
    pub async fn enter(&self) -> Result<OwnedSemaphorePermit, ModelError> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue_cap {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(ModelError::Overloaded {
                retry_after_secs: self.retry_after_secs,
            });
        }
        // Counted as waiting until this future finishes or is dropped (the caller went away).
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _waiting = Waiting(&self.waiting);
        Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| ModelError::Inference("the model is shutting down".into()))
    }
}

/// Sets a flag when dropped: a blocking job polls it and stops when the request that started
/// it is gone (the client disconnected and axum dropped the handler's future).
pub(crate) struct CancelOnDrop(pub Arc<std::sync::atomic::AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Runs `job` on a blocking thread under a slot of `admission`; if the returned future is
/// dropped, `cancel` is set so the job can stop early.
pub(crate) async fn run_admitted<T: Send + 'static>(
    admission: &Admission,
    cancel: Arc<std::sync::atomic::AtomicBool>,
    job: impl FnOnce() -> Result<T, ModelError> + Send + 'static,
) -> Result<T, ModelError> {
    let permit = admission.enter().await?;
    let _cancel_on_drop = CancelOnDrop(cancel);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        job()
    })
    .await
    .map_err(|e| ModelError::Inference(format!("the model's worker failed: {e}")))?
}

// ---------------------------------------------------------------------------------------------
// Chat: admission, each generation on a blocking thread.

/// A generation model with its admission control.
pub struct ChatService {
    name: String,
    model: Arc<ChatModel>,
    admission: Admission,
}

/// A piece of a streamed generation.
pub enum ChatEvent {
    Text(String),
    Done(Result<Generation, ModelError>),
}

impl ChatService {
    pub fn new(name: String, model: ChatModel, config: &RuntimeConfig) -> Self {
        ChatService {
            name,
            model: Arc::new(model),
            admission: Admission::new(
                config.chat_concurrency,
                config.chat_queue,
                config.retry_after_secs,
            ),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn model(&self) -> &ChatModel {
        &self.model
    }

    /// Generations running now.
    pub fn active(&self) -> usize {
        self.admission.active()
    }

    /// Renders and tokenises a conversation, and checks it fits with `max_tokens`.
    pub fn prepare(
        &self,
        messages: &[Message],
        max_tokens: Option<usize>,
    ) -> Result<Vec<u32>, ModelError> {
        let prompt = self.model.render(messages);
        let ids = self.model.tokenize(&prompt)?;
        self.model.budget(ids.len(), max_tokens)?;
        Ok(ids)
    }

    /// Starts a generation once a slot is free (refused at once when too many wait). Text
    /// arrives on the returned channel as it is produced, then one `Done`. Dropping the receiver
    /// stops the generation at the next token.
    pub async fn start(
        &self,
        prompt: Vec<u32>,
        params: GenerationParams,
    ) -> Result<mpsc::Receiver<ChatEvent>, ModelError> {
        let permit = self.admission.enter().await?;
        let (tx, rx) = mpsc::channel(64);
        let model = Arc::clone(&self.model);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let result = model.generate(&prompt, &params, |piece| {
                tx.blocking_send(ChatEvent::Text(piece.to_string())).is_ok()
            });
            let _ = tx.blocking_send(ChatEvent::Done(result));
        });
        Ok(rx)
    }

    /// Runs a generation to the end.
    pub async fn complete(
        &self,
        prompt: Vec<u32>,
        params: GenerationParams,
    ) -> Result<Generation, ModelError> {
        let mut rx = self.start(prompt, params).await?;
        while let Some(event) = rx.recv().await {
            if let ChatEvent::Done(result) = event {
                return result;
            }
        }
        Err(ModelError::Inference(
            "the generation stopped unexpectedly".into(),
        ))
    }
}
