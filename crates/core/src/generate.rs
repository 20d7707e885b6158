//! Drafting copy for catalogue items (taglines, synopses) with the loaded chat model.
//!
//! The prompt carries only what the catalogue knows about the item — title, categories, tags,
//! description, year — so the draft stays about this item. A draft is returned for an editor to
//! read; it is stored in the item's metadata (`tagline` or `synopsis`) only when the caller asks,
//! and then feeds search like the rest of the item's text.

use marquee_models::chat::{GenerationParams, Message};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Service;
use crate::error::ServiceError;
use crate::state::TenantState;
use crate::types::ChatUsage;

/// What to draft.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CopyKind {
    Tagline,
    Synopsis,
}

impl CopyKind {
    fn metadata_key(self) -> &'static str {
        match self {
            CopyKind::Tagline => "tagline",
            CopyKind::Synopsis => "synopsis",
        }
    }
}

/// A request to draft copy.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyRequest {
    pub kind: CopyKind,
    /// A chat model by name; the first loaded one when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// Store the draft in the item's metadata.
    #[serde(default)]
    pub store: bool,
    #[serde(default)]
    pub max_tokens: Option<usize>,
    /// 0 (the default) gives the same draft every time.
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub seed: Option<u64>,
}

/// A drafted piece of copy.
#[derive(Clone, Debug, Serialize)]
pub struct CopyDraft {
    pub item_id: String,
    pub kind: CopyKind,
    pub text: String,
    pub model: String,
    pub stored: bool,
    /// OpenAI's `usage` object, as chat completions have it.
    pub usage: ChatUsage,
    /// What the draft cost (for the answer's headers); `None` for operator keys.
    #[serde(skip)]
    pub settlement: Option<crate::metering::Settlement>,
}

impl Service {
    /// Drafts a tagline or synopsis for an item from its metadata.
    pub async fn draft_copy(
        &self,
        caller: &crate::Caller,
        tenant: &TenantState,
        item_id: &str,
        request: &CopyRequest,
    ) -> Result<CopyDraft, ServiceError> {
        if let Some(t) = request.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(ServiceError::invalid(
                "temperature",
                "must be between 0 and 2",
            ));
        }
        if request.max_tokens == Some(0) || request.max_tokens.is_some_and(|n| n > 1024) {
            return Err(ServiceError::invalid(
                "max_tokens",
                "must be between 1 and 1024",
            ));
        }
        let item = self.get_item(tenant, item_id).await?;
        let runtime = self.models();
        let chat = match &request.model {
            Some(name) => runtime.chat(name)?,
            None => runtime.first_chat().ok_or_else(|| {
                ServiceError::Unavailable(
                    "drafting copy needs a chat model: run `marquee models pull` and restart"
                        .into(),
                )
            })?,
        };
        let mut facts = Vec::new();
        facts.push(format!(
            "Title: {}",
            item.title.as_deref().unwrap_or(&item.id)
        ));
        if let Some(year) = item.metadata.get("year") {
            facts.push(format!("Year: {year}"));
        }
        if !item.categories.is_empty() {
            facts.push(format!("Genres: {}", item.categories.join(", ")));
        }
        if !item.tags.is_empty() {
            facts.push(format!("Tags: {}", item.tags.join(", ")));
        }
        if let Some(d) = &item.description {
            facts.push(format!("Description: {d}"));
        }
        let (instruction, default_tokens) = match request.kind {
            CopyKind::Tagline => (
                "Write one short, catchy tagline (at most 15 words) for this title. \
                 Answer with the tagline only.",
                40,
            ),
            CopyKind::Synopsis => (
                "Write a synopsis of this title in two or three sentences, without spoilers. \
                 Answer with the synopsis only.",
                160,
            ),
        };
        let messages = vec![
            Message {
                role: "system".into(),
                content: "You write short, accurate marketing copy for a streaming catalogue."
                    .into(),
            },
            Message {
                role: "user".into(),
                content: format!("{}\n\n{instruction}", facts.join("\n")),
            },
        ];
        caller.require_model(chat.name())?;
        let max_tokens = request.max_tokens.unwrap_or(default_tokens);
        let prompt = chat.prepare(&messages, Some(max_tokens))?;
        let charge = self.charge(
            caller,
            Some(chat.name()),
            crate::metering::generation_units(prompt.len(), max_tokens),
        )?;
        let params = GenerationParams {
            max_tokens: Some(max_tokens),
            temperature: request.temperature.unwrap_or(0.0),
            seed: request.seed,
            ..Default::default()
        };
        let g = chat.complete(prompt, params).await?;
        let settlement = match charge {
            Some(c) => Some(
                c.settle(
                    crate::metering::generation_units(g.prompt_tokens, g.completion_tokens),
                    200,
                )
                .await?,
            ),
            None => None,
        };
        let text = g.text.trim().trim_matches('"').trim().to_string();
        if request.store && !text.is_empty() {
            self.set_item_metadata(
                tenant,
                item_id,
                request.kind.metadata_key(),
                Value::String(text.clone()),
            )
            .await?;
        }
        Ok(CopyDraft {
            item_id: item.id,
            kind: request.kind,
            text,
            model: chat.name().to_string(),
            stored: request.store,
            usage: ChatUsage::new(g.prompt_tokens as u64, g.completion_tokens as u64),
            settlement,
        })
    }
}
