//! Catalogue intelligence: item text embedded with the loaded embedding model, semantic search,
//! and content similarity for items the recommender has not seen.
//!
//! Why in the background: embedding costs milliseconds per item on a CPU, and ingestion must not
//! wait for it. A write only wakes the embedder; it finds the items whose text changed (a hash
//! of the text each vector was computed from is kept beside it), embeds them in small batches
//! behind API callers' requests, stores the vectors (so a restart does not redo the work) and
//! then puts them in memory. Until an item has its vector, search does not find it and content
//! similarity falls back to shared categories and tags.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use marquee_models::ModelError;
use marquee_models::embed::Overflow;
use marquee_models::runtime::EmbeddingService;
use sha2::{Digest, Sha256};

use crate::Service;
use crate::error::ServiceError;
use crate::state::{Catalog, ItemEntry, TenantState};
use crate::types::RecommendOptions;

/// Items embedded per background batch: small, so API callers never wait long behind it.
const BATCH: usize = 32;
/// Longest search query, in characters.
pub const MAX_QUERY_CHARS: usize = 2_000;

/// Vectors of a tenant's items, by catalogue index.
#[derive(Default)]
pub struct ItemVectors {
    /// The model the vectors come from.
    pub model: Option<String>,
    pub dims: usize,
    data: Vec<f32>,
    /// Hash of the text each vector was computed from; `None`: no vector.
    hashes: Vec<Option<String>>,
    /// Whether the stored vectors have been read (once per tenant state).
    pub loaded: bool,
    /// The catalogue version whose items all have current vectors.
    pub checked_version: Option<u64>,
    /// Where the next search for items to embed starts (after the last batch), so that a
    /// large catalogue is indexed in one pass rather than rescanned for every batch.
    cursor: usize,
    /// Changes with every vector set (kept lists that compared items by meaning are redone).
    pub revision: u64,
}

impl ItemVectors {
    pub fn get(&self, i: u32) -> Option<&[f32]> {
        let i = i as usize;
        self.hashes.get(i)?.as_ref()?;
        Some(&self.data[i * self.dims..(i + 1) * self.dims])
    }

    fn hash(&self, i: u32) -> Option<&str> {
        self.hashes.get(i as usize)?.as_deref()
    }

    fn set(&mut self, i: u32, hash: String, v: &[f32]) {
        let i = i as usize;
        if self.hashes.len() <= i {
            self.hashes.resize(i + 1, None);
            self.data.resize((i + 1) * self.dims, 0.0);
        }
        self.data[i * self.dims..(i + 1) * self.dims].copy_from_slice(v);
        self.hashes[i] = Some(hash);
        self.revision += 1;
    }

    /// How many items have a vector.
    pub fn count(&self) -> usize {
        self.hashes.iter().filter(|h| h.is_some()).count()
    }

    /// The weighted mean direction of some items' vectors (unit length), if any has one.
    pub fn profile(&self, items: &[(u32, f32)]) -> Option<Vec<f32>> {
        let mut acc = vec![0.0f32; self.dims];
        let mut any = false;
        for &(i, w) in items {
            if let Some(v) = self.get(i) {
                any = true;
                acc.iter_mut().zip(v).for_each(|(a, x)| *a += w * x);
            }
        }
        let norm = acc.iter().map(|x| x * x).sum::<f32>().sqrt();
        (any && norm > 0.0).then(|| acc.into_iter().map(|x| x / norm).collect())
    }

    /// Cosine of every item with a vector to `query` (0 for items without one).
    pub fn scores(&self, query: &[f32], n_items: usize) -> Vec<f32> {
        (0..n_items as u32)
            .map(|i| match self.get(i) {
                Some(v) => v.iter().zip(query).map(|(a, b)| a * b).sum(),
                None => 0.0,
            })
            .collect()
    }
}

/// The text that stands for an item: title, description, categories, tags, and generated
/// copy stored in its metadata.
pub fn item_text(item: &ItemEntry) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(t) = item.title.as_deref() {
        parts.push(t.to_string());
    }
    for key in ["tagline", "synopsis"] {
        if let Some(s) = item.metadata.get(key).and_then(|v| v.as_str()) {
            parts.push(s.to_string());
        }
    }
    if let Some(d) = item.description.as_deref() {
        parts.push(d.to_string());
    }
    if !item.categories.is_empty() {
        parts.push(format!("Genres: {}", item.categories.join(", ")));
    }
    if !item.tags.is_empty() {
        parts.push(format!("Tags: {}", item.tags.join(", ")));
    }
    let image = crate::image_labels::image_labels(&item.metadata);
    if !image.is_empty() {
        parts.push(format!("Image: {}", image.join(", ")));
    }
    if parts.is_empty() {
        parts.push(item.id.to_string());
    }
    parts.join(". ")
}

fn text_hash(model: &str, text: &str) -> String {
    let mut h = Sha256::new();
    h.update(model.as_bytes());
    h.update([0]);
    h.update(text.as_bytes());
    hex::encode(&h.finalize()[..12])
}

fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// A search result before it becomes a response.
pub struct SearchHit {
    pub item: u32,
    pub score: f32,
}

impl Service {
    /// Wakes the background embedder (after catalogue writes).
    pub(crate) fn catalog_changed(&self) {
        self.embed_wakeup.notify_one();
    }

    /// Embeds new and changed item text of every tenant, forever. Runs only when an embedding
    /// model is loaded.
    pub async fn run_item_embedder(self: Arc<Self>) {
        loop {
            let Some(embedder) = self.models().first_embeddings() else {
                // Models are set at start-up; nothing to do without one.
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            };
            let mut worked = false;
            for tenant in self.tenants() {
                match self.embed_pending(&tenant, &embedder).await {
                    Ok(n) => worked |= n > 0,
                    Err(e) => {
                        tracing::warn!(tenant = %tenant.name, error = %e, "embedding item text failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            if !worked {
                let _ = tokio::time::timeout(Duration::from_secs(2), self.embed_wakeup.notified())
                    .await;
            }
        }
    }

    /// Reads a tenant's stored vectors for `model` into memory (once per tenant state).
    async fn load_vectors(
        &self,
        tenant: &TenantState,
        embedder: &EmbeddingService,
    ) -> Result<(), ServiceError> {
        let rows = self
            .store
            .item_embeddings(tenant.id, embedder.name())
            .await?;
        let catalog = tenant.catalog.read();
        let mut vectors = tenant.vectors.write();
        vectors.model = Some(embedder.name().to_string());
        vectors.dims = embedder.dimensions();
        for (id, hash, bytes) in rows {
            let v = from_bytes(&bytes);
            if v.len() != vectors.dims {
                continue;
            }
            if let Some(i) = catalog.live_index(&id) {
                vectors.set(i, hash, &v);
            }
        }
        vectors.loaded = true;
        Ok(())
    }

    /// Embeds up to one batch of a tenant's items whose text has no current vector; returns how
    /// many were embedded.
    async fn embed_pending(
        &self,
        tenant: &Arc<TenantState>,
        embedder: &EmbeddingService,
    ) -> Result<usize, ServiceError> {
        if !tenant.vectors.read().loaded {
            self.load_vectors(tenant, embedder).await?;
        }
        let model = embedder.name();
        let version;
        let pending: Vec<(u32, String, String, String)> = {
            let catalog = tenant.catalog.read();
            let vectors = tenant.vectors.read();
            version = catalog.version;
            if vectors.checked_version == Some(version) {
                return Ok(0);
            }
            let n = catalog.items.len();
            let start = vectors.cursor.min(n);
            (start..n)
                .chain(0..start)
                .map(|i| (i, &catalog.items[i]))
                .filter(|(_, item)| !item.deleted)
                .filter_map(|(i, item)| {
                    let text = item_text(item);
                    let hash = text_hash(model, &text);
                    (vectors.hash(i as u32) != Some(hash.as_str()))
                        .then(|| (i as u32, item.id.to_string(), hash, text))
                })
                .take(BATCH)
                .collect()
        };
        if pending.is_empty() {
            tenant.vectors.write().checked_version = Some(version);
            return Ok(0);
        }
        let texts: Vec<String> = pending.iter().map(|p| p.3.clone()).collect();
        let embedded = loop {
            match embedder.embed_background(texts.clone()).await {
                Ok(e) => break e,
                Err(ModelError::Overloaded { .. }) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(ServiceError::Internal(e.to_string())),
            }
        };
        let rows: Vec<(String, String, Vec<u8>)> = pending
            .iter()
            .zip(&embedded.vectors)
            .map(|(p, v)| (p.1.clone(), p.2.clone(), to_bytes(v)))
            .collect();
        self.store
            .put_item_embeddings(tenant.id, model, &rows)
            .await?;
        let catalog = tenant.catalog.read();
        let mut vectors = tenant.vectors.write();
        vectors.cursor = pending.last().map_or(0, |p| p.0 as usize + 1);
        for (p, v) in pending.iter().zip(&embedded.vectors) {
            // The item may have changed (or moved) while it was being embedded: the next pass
            // picks it up again.
            if catalog.live_index(&p.1) == Some(p.0) {
                vectors.set(p.0, p.2.clone(), v);
            }
        }
        tenant
            .embedded_items
            .store(vectors.count() as u64, Ordering::Relaxed);
        Ok(pending.len())
    }

    /// Items whose text matches `query` in meaning, best first, filtered like recommendations.
    pub async fn search(
        &self,
        tenant: &TenantState,
        query: &str,
        options: &RecommendOptions,
    ) -> Result<(Vec<crate::types::Recommendation>, SearchStats), ServiceError> {
        let query = query.trim();
        if query.is_empty() {
            return Err(ServiceError::invalid("q", "must not be empty"));
        }
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(ServiceError::invalid(
                "q",
                format!("is longer than {MAX_QUERY_CHARS} characters"),
            ));
        }
        let embedder = self.models().first_embeddings().ok_or_else(|| {
            ServiceError::Unavailable(
                "semantic search needs an embedding model: run `marquee models pull` and restart"
                    .into(),
            )
        })?;
        let q = embedder
            .embed(vec![query.to_string()], Overflow::Truncate)
            .await?;
        let qv = q.vectors.into_iter().next().unwrap_or_default();
        let catalog = tenant.catalog.read();
        let vectors = tenant.vectors.read();
        let scores = vectors.scores(&qv, catalog.items.len());
        let stats = SearchStats {
            indexed: vectors.count(),
            items: catalog.items.iter().filter(|i| !i.deleted).count(),
            model: embedder.name().to_string(),
        };
        drop(vectors);
        let hits = self.rank_search(&catalog, &scores, query, options)?;
        Ok((hits, stats))
    }

    fn rank_search(
        &self,
        catalog: &Catalog,
        scores: &[f32],
        query: &str,
        options: &RecommendOptions,
    ) -> Result<Vec<crate::types::Recommendation>, ServiceError> {
        let hits: Vec<SearchHit> =
            crate::recommend::filtered_top(catalog, options, scores, |s| s > 0.0)?
                .into_iter()
                .map(|(item, score)| SearchHit { item, score })
                .collect();
        let reason = crate::types::Reason {
            kind: "search_match".into(),
            items: Vec::new(),
            message: format!("Matches \u{201c}{}\u{201d}", truncate_chars(query, 80)),
        };
        Ok(crate::recommend::finish_list(
            catalog,
            hits.into_iter().map(|h| (h.item, h.score, reason.clone())),
            options,
        ))
    }
}

/// What a search looked through.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SearchStats {
    /// Items with a vector (searchable now).
    pub indexed: usize,
    /// Live items in the catalogue.
    pub items: usize,
    pub model: String,
}

fn truncate_chars(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// Content similarity of every item to some seed items by their embeddings, when the seeds
/// have vectors; `None` otherwise (callers fall back to shared categories and tags).
pub(crate) fn embedding_similarity(
    vectors: &ItemVectors,
    seeds: &[(u32, f32)],
    n_items: usize,
) -> Option<Vec<f32>> {
    let profile = vectors.profile(seeds)?;
    Some(vectors.scores(&profile, n_items))
}
