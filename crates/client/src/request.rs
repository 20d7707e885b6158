//! Options of the calls that take more than an id: recommend lists, usage reports.
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
