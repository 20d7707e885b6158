//! Options of the calls that take more than an id: recommend lists, usage reports, speech,
//! transcription and image classification.
//!
//! The server's own types (items, users, feedback, recommendations, profiles, pages, usage
//! reports, the model answers) come from `marquee-types` and are re-exported by the crate; the
//! types here describe *query options*,
//! which the server reads from query strings rather than JSON bodies, so there is nothing to
//! share with it. Each is `Default` with public fields, and has chainable setters:
//!
//! ```
//! use marquee_client::RecommendRequest;
//! let r = RecommendRequest::new().n(5).category("Crime").exclude("heat");
//! assert_eq!(r.n, Some(5));
//! ```

use marquee_types::{GroupBy, MAX_RECOMMENDATIONS, Timestamp};

use crate::error::{Error, Result};
use crate::validate::validate_id;

/// Whether a list's items must be in any (default) or all of the requested categories.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CategoryMatch {
    #[default]
    Any,
    All,
}

impl CategoryMatch {
    fn as_str(self) -> &'static str {
        match self {
            CategoryMatch::Any => "any",
            CategoryMatch::All => "all",
        }
    }
}

/// Options of every recommend route (`recommend`, `similar`, `popular`, `trending`, `session`,
/// `search`); unset fields take the server's defaults. See README "Recommendations".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecommendRequest {
    /// For [`crate::Client::recommend`]: recommend in the context of this item ("what to watch
    /// after it"). Refused by the other calls.
    pub item_id: Option<String>,
    /// 1–1000 items (server default 10).
    pub n: Option<usize>,
    /// Keep items in these categories (case-insensitive).
    pub category: Vec<String>,
    pub category_match: Option<CategoryMatch>,
    /// Item ids never to return.
    pub exclude: Vec<String>,
    /// Leave out what the user already engaged with (server default `true`).
    pub exclude_seen: Option<bool>,
    /// An expression over item fields and metadata: `year >= 1990 AND NOT "Horror" IN categories`.
    pub filter: Option<String>,
    /// 0–1: re-rank for variety.
    pub diversity: Option<f32>,
    /// At most this many items per primary category (≥ 1).
    pub max_per_category: Option<usize>,
    /// 0–0.5: share of the list given to exploration.
    pub exploration: Option<f32>,
}

impl RecommendRequest {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn item(mut self, item_id: impl Into<String>) -> Self {
        self.item_id = Some(item_id.into());
        self
    }

    pub fn n(mut self, n: usize) -> Self {
        self.n = Some(n);
        self
    }

    /// Adds a category (call again for more).
    pub fn category(mut self, category: impl Into<String>) -> Self {
        self.category.push(category.into());
        self
    }

    pub fn category_match(mut self, m: CategoryMatch) -> Self {
        self.category_match = Some(m);
        self
    }

    /// Adds an item never to return (call again for more).
    pub fn exclude(mut self, item_id: impl Into<String>) -> Self {
        self.exclude.push(item_id.into());
        self
    }

    pub fn exclude_seen(mut self, yes: bool) -> Self {
        self.exclude_seen = Some(yes);
        self
    }

    pub fn filter(mut self, expression: impl Into<String>) -> Self {
        self.filter = Some(expression.into());
        self
    }

    pub fn diversity(mut self, d: f32) -> Self {
        self.diversity = Some(d);
        self
    }

    pub fn max_per_category(mut self, m: usize) -> Self {
        self.max_per_category = Some(m);
        self
    }

    pub fn exploration(mut self, e: f32) -> Self {
        self.exploration = Some(e);
        self
    }

    /// The checks the server would make, so that a bad argument fails before the request.
    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(item) = &self.item_id {
            validate_id("item_id", item)?;
        }
        if let Some(n) = self.n
            && !(1..=MAX_RECOMMENDATIONS).contains(&n)
        {
            return Err(Error::invalid(
                "n",
                format!("must be between 1 and {MAX_RECOMMENDATIONS}, not {n}"),
            ));
        }
        for c in &self.category {
            if c.trim().is_empty() || c.contains(',') {
                return Err(Error::invalid(
                    "category",
                    format!("{c:?} is empty or contains a comma"),
                ));
            }
        }
        if self.exclude.len() > MAX_RECOMMENDATIONS {
            return Err(Error::invalid(
                "exclude",
                format!("lists more than {MAX_RECOMMENDATIONS} items"),
            ));
        }
        for e in &self.exclude {
            validate_id("exclude", e)?;
            if e.contains(',') {
                return Err(Error::invalid(
                    "exclude",
                    format!("{e:?} contains a comma, which the query string cannot carry"),
                ));
            }
        }
        if let Some(d) = self.diversity
            && !(0.0..=1.0).contains(&d)
        {
            return Err(Error::invalid("diversity", "must be between 0 and 1"));
        }
        if let Some(e) = self.exploration
            && !(0.0..=0.5).contains(&e)
        {
            return Err(Error::invalid("exploration", "must be between 0 and 0.5"));
        }
        if self.max_per_category == Some(0) {
            return Err(Error::invalid("max_per_category", "must be at least 1"));
        }
        if self.filter.as_deref().is_some_and(|f| f.trim().is_empty()) {
            return Err(Error::invalid("filter", "must not be empty"));
        }
        Ok(())
    }

    /// Refuses `item_id` for the calls that have no context item.
    pub(crate) fn without_item(&self, call: &str) -> Result<()> {
        if self.item_id.is_some() {
            return Err(Error::invalid(
                "item_id",
                format!("{call} takes no context item (it is for `recommend`)"),
            ));
        }
        Ok(())
    }

    /// The query parameters, as the recommend routes read them.
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(n) = self.n {
            q.push(("n", n.to_string()));
        }
        if !self.category.is_empty() {
            q.push(("category", self.category.join(",")));
        }
        if let Some(m) = self.category_match {
            q.push(("category_match", m.as_str().to_string()));
        }
        if !self.exclude.is_empty() {
            q.push(("exclude", self.exclude.join(",")));
        }
        if let Some(e) = self.exclude_seen {
            q.push(("exclude_seen", e.to_string()));
        }
        if let Some(f) = &self.filter {
            q.push(("filter", f.clone()));
        }
        if let Some(d) = self.diversity {
            q.push(("diversity", d.to_string()));
        }
        if let Some(m) = self.max_per_category {
            q.push(("max_per_category", m.to_string()));
        }
        if let Some(e) = self.exploration {
            q.push(("exploration", e.to_string()));
        }
        q
    }

    /// The body of `POST /v1/recommend/session`: the same options as JSON.
    pub(crate) fn session_body(&self, items: Vec<String>) -> serde_json::Value {
        let mut body = serde_json::Map::new();
        body.insert("items".into(), items.into());
        if let Some(n) = self.n {
            body.insert("n".into(), n.into());
        }
        if !self.category.is_empty() {
            body.insert("category".into(), self.category.clone().into());
        }
        if let Some(m) = self.category_match {
            body.insert("category_match".into(), m.as_str().into());
        }
        if !self.exclude.is_empty() {
            body.insert("exclude".into(), self.exclude.clone().into());
        }
        if let Some(e) = self.exclude_seen {
            body.insert("exclude_seen".into(), e.into());
        }
        if let Some(f) = &self.filter {
            body.insert("filter".into(), f.clone().into());
        }
        if let Some(d) = self.diversity {
            body.insert("diversity".into(), f64::from(d).into());
        }
        if let Some(m) = self.max_per_category {
            body.insert("max_per_category".into(), m.into());
        }
        if let Some(e) = self.exploration {
            body.insert("exploration".into(), f64::from(e).into());
        }
        serde_json::Value::Object(body)
    }
}

/// Options of [`crate::Client::usage`]; the default is the current billing period, ungrouped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UsageQuery {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub group_by: Option<GroupBy>,
    /// Operator keys only: one tenant's usage.
    pub tenant: Option<String>,
}

impl UsageQuery {
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(t) = self.from {
            q.push(("from", t.to_rfc3339()));
        }
        if let Some(t) = self.to {
            q.push(("to", t.to_rfc3339()));
        }
        if let Some(g) = self.group_by {
            q.push(("group_by", g.as_str().to_string()));
        }
        if let Some(t) = &self.tenant {
            q.push(("tenant", t.clone()));
        }
        q
    }
}

/// The speech model [`SpeechRequest::new`] asks for (the one `marquee models pull` fetches).
pub const DEFAULT_SPEECH_MODEL: &str = "hibari";
/// The voice [`SpeechRequest::new`] asks for.
pub const DEFAULT_VOICE: &str = "heart";
/// The transcription model [`TranscriptionRequest::default`] asks for.
pub const DEFAULT_TRANSCRIPTION_MODEL: &str = "whisper-tiny-en";
/// Longest text one speech call accepts, in characters (OpenAI's limit, the server's too).
pub const MAX_SPEECH_CHARS: usize = 4096;

/// What [`crate::Client::speech`] returns: a WAV file, or raw 16-bit little-endian mono samples
/// at the model's rate (24 kHz).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AudioFormat {
    #[default]
    Wav,
    Pcm,
}

impl AudioFormat {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AudioFormat::Wav => "wav",
            AudioFormat::Pcm => "pcm",
        }
    }
}

/// `POST /v1/audio/speech`: `SpeechRequest::new("Coming soon.").voice("heart").speed(1.2)`.
#[derive(Clone, Debug, PartialEq)]
pub struct SpeechRequest {
    /// The text to speak: 1–4096 characters.
    pub input: String,
    pub model: String,
    /// One of the model's voices (`GET /v1/models/{model}` lists them).
    pub voice: String,
    pub format: AudioFormat,
    /// 0.25–4 (server default 1).
    pub speed: Option<f32>,
}

impl SpeechRequest {
    /// `input` in [`DEFAULT_SPEECH_MODEL`]'s [`DEFAULT_VOICE`], as WAV.
    pub fn new(input: impl Into<String>) -> Self {
        SpeechRequest {
            input: input.into(),
            model: DEFAULT_SPEECH_MODEL.into(),
            voice: DEFAULT_VOICE.into(),
            format: AudioFormat::Wav,
            speed: None,
        }
    }

    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    pub fn voice(mut self, voice: impl Into<String>) -> Self {
        self.voice = voice.into();
        self
    }

    pub fn format(mut self, format: AudioFormat) -> Self {
        self.format = format;
        self
    }

    pub fn speed(mut self, speed: f32) -> Self {
        self.speed = Some(speed);
        self
    }

    pub(crate) fn body(&self) -> Result<serde_json::Value> {
        if self.input.is_empty() || self.input.chars().count() > MAX_SPEECH_CHARS {
            return Err(Error::invalid(
                "input",
                format!("must be 1–{MAX_SPEECH_CHARS} characters"),
            ));
        }
        non_empty("model", &self.model)?;
        non_empty("voice", &self.voice)?;
        let mut body = serde_json::json!({
            "input": self.input,
            "model": self.model,
            "voice": self.voice,
            "response_format": self.format.as_str(),
        });
        if let Some(speed) = self.speed {
            body["speed"] = in_range("speed", speed, 0.25, 4.0)?.into();
        }
        Ok(body)
    }
}

/// A transcript as text rather than JSON ([`crate::Client::transcribe_text`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TranscriptFormat {
    /// The text, one line.
    Text,
    /// SubRip subtitles.
    Srt,
    /// WebVTT subtitles.
    Vtt,
}

impl TranscriptFormat {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TranscriptFormat::Text => "text",
            TranscriptFormat::Srt => "srt",
            TranscriptFormat::Vtt => "vtt",
        }
    }
}

/// Options of the transcription calls; `TranscriptionRequest::default()` uses
/// [`DEFAULT_TRANSCRIPTION_MODEL`].
#[derive(Clone, Debug, PartialEq)]
pub struct TranscriptionRequest {
    pub model: String,
    /// Text the speech is likely to contain (names, terms).
    pub prompt: Option<String>,
    /// 0–1 (server default 0: greedy).
    pub temperature: Option<f32>,
    /// `en` only, with the English models.
    pub language: Option<String>,
}

impl Default for TranscriptionRequest {
    fn default() -> Self {
        TranscriptionRequest {
            model: DEFAULT_TRANSCRIPTION_MODEL.into(),
            prompt: None,
            temperature: None,
            language: None,
        }
    }
}

impl TranscriptionRequest {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    pub fn prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompt = Some(prompt.into());
        self
    }

    pub fn temperature(mut self, temperature: f32) -> Self {
        self.temperature = Some(temperature);
        self
    }

    pub fn language(mut self, language: impl Into<String>) -> Self {
        self.language = Some(language.into());
        self
    }

    /// The form fields besides the file.
    pub(crate) fn fields(&self, response_format: &str) -> Result<Vec<(&'static str, String)>> {
        non_empty("model", &self.model)?;
        let mut fields = vec![
            ("model", self.model.clone()),
            ("response_format", response_format.to_string()),
        ];
        if let Some(p) = &self.prompt {
            fields.push(("prompt", p.clone()));
        }
        if let Some(t) = self.temperature {
            fields.push((
                "temperature",
                in_range("temperature", t, 0.0, 1.0)?.to_string(),
            ));
        }
        if let Some(l) = &self.language {
            non_empty("language", l)?;
            fields.push(("language", l.clone()));
        }
        Ok(fields)
    }
}

/// Options of [`crate::Client::classify_image`]; unset fields take the server's defaults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageRequest {
    /// A vision model by name; the server's first one when `None`.
    pub model: Option<String>,
    /// Labels to return, 1–1000 (server default 5).
    pub top_k: Option<usize>,
    /// Leave out labels scoring below this, 0–1.
    pub min_score: Option<f32>,
}

impl ImageRequest {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    pub fn top_k(mut self, top_k: usize) -> Self {
        self.top_k = Some(top_k);
        self
    }

    pub fn min_score(mut self, min_score: f32) -> Self {
        self.min_score = Some(min_score);
        self
    }

    pub(crate) fn fields(&self) -> Result<Vec<(&'static str, String)>> {
        let mut fields = Vec::new();
        if let Some(m) = &self.model {
            non_empty("model", m)?;
            fields.push(("model", m.clone()));
        }
        if let Some(k) = self.top_k {
            if !(1..=1000).contains(&k) {
                return Err(Error::invalid("top_k", format!("must be 1–1000, got {k}")));
            }
            fields.push(("top_k", k.to_string()));
        }
        if let Some(s) = self.min_score {
            fields.push(("min_score", in_range("min_score", s, 0.0, 1.0)?.to_string()));
        }
        Ok(fields)
    }
}

fn non_empty(param: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(param, "must not be empty"));
    }
    Ok(())
}

fn in_range(param: &str, value: f32, lo: f32, hi: f32) -> Result<f32> {
    if !(lo..=hi).contains(&value) {
        return Err(Error::invalid(
            param,
            format!("must be {lo}–{hi}, got {value}"),
        ));
    }
    Ok(value)
}
