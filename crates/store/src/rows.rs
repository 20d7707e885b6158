//! Plain row types, decoded by hand from `AnyRow` (no compile-time macros: they would build the
//! database drivers twice and need a live database at build time).

use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, StoreError};

#[derive(Clone, Debug, PartialEq)]
pub struct Tenant {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
    /// Bumped by writers outside the serving process; a server reloads a tenant whose
    /// generation moved.
    pub generation: i64,
}

impl Tenant {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(Tenant {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            created_at: r.try_get("created_at")?,
            generation: r.try_get("generation")?,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ApiKeyRow {
    /// Public identifier (`key_…`), safe to show and to put in URLs.
    pub id: String,
    /// `None` for the operator's admin keys, which span tenants.
    pub tenant_id: Option<i64>,
    pub kind: String,
    pub name: Option<String>,
    /// The first characters of the secret (`mq_sk_ab12`), so people can tell keys apart.
    pub prefix: String,
    /// Hex SHA-256 of the whole secret; the secret itself is never stored.
    pub hash: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    /// What the key may do and how much (scopes, rate limits, quotas), as JSON chosen by the
    /// platform; `None`: the defaults of its kind.
    pub policy: Option<String>,
    /// Unix milliseconds after which the key no longer authenticates; `None`: never.
    pub expires_at: Option<i64>,
    /// The id of the key that replaced this one by rotation.
    pub rotated_to: Option<String>,
}

impl ApiKeyRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(ApiKeyRow {
            id: r.try_get("id")?,
            tenant_id: r.try_get("tenant_id")?,
            kind: r.try_get("kind")?,
            name: r.try_get("name")?,
            prefix: r.try_get("prefix")?,
            hash: r.try_get("hash")?,
            created_at: r.try_get("created_at")?,
            revoked_at: r.try_get("revoked_at")?,
            last_used_at: r.try_get("last_used_at")?,
            policy: r.try_get("policy")?,
            expires_at: r.try_get("expires_at")?,
            rotated_to: r.try_get("rotated_to")?,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ItemRow {
    pub id: String,
    pub title: Option<String>,
    pub categories: Vec<String>,
    pub tags: Vec<String>,
    pub description: Option<String>,
    /// A JSON object of the tenant's own fields.
    pub metadata: Value,
    pub published_at: Option<i64>,
    pub available_from: Option<i64>,
    pub available_until: Option<i64>,
    pub hidden: bool,
    pub updated_at: i64,
}

impl ItemRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(ItemRow {
            id: r.try_get("id")?,
            title: r.try_get("title")?,
            categories: json_list(r.try_get("categories")?)?,
            tags: json_list(r.try_get("tags")?)?,
            description: r.try_get("description")?,
            metadata: json_value(r.try_get("metadata")?)?,
            published_at: r.try_get("published_at")?,
            available_from: r.try_get("available_from")?,
            available_until: r.try_get("available_until")?,
            hidden: r.try_get::<i64, _>("hidden")? != 0,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct UserRow {
    pub id: String,
    /// The tenant's own fields as stored: a JSON object, or its ciphertext when encryption at
    /// rest is on. The store keeps the text as it is and never parses it.
    pub attributes: String,
    pub updated_at: i64,
}

impl UserRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(UserRow {
            id: r.try_get("id")?,
            attributes: r.try_get("attributes")?,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct FeedbackRow {
    pub user_id: String,
    pub item_id: String,
    /// `view`, `like`, `rating`, `purchase`, … (the tenant's vocabulary).
    pub kind: String,
    pub value: Option<f64>,
    /// Unix milliseconds.
    pub timestamp: i64,
}

impl FeedbackRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(FeedbackRow {
            user_id: r.try_get("user_id")?,
            item_id: r.try_get("item_id")?,
            kind: r.try_get("kind")?,
            value: r.try_get("value")?,
            timestamp: r.try_get("ts")?,
        })
    }
}

#[derive(Clone, Debug)]
pub struct NewModelVersion {
    /// The algorithm and its hyperparameters, as JSON.
    pub algorithm: Value,
    pub trained_at: i64,
    pub users: i64,
    pub items: i64,
    pub interactions: i64,
    pub train_ms: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelVersionRow {
    pub version: i64,
    pub algorithm: Value,
    pub trained_at: i64,
    pub users: i64,
    pub items: i64,
    pub interactions: i64,
    pub train_ms: i64,
}

impl ModelVersionRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(ModelVersionRow {
            version: r.try_get("version")?,
            algorithm: json_value(r.try_get("algorithm")?)?,
            trained_at: r.try_get("trained_at")?,
            users: r.try_get("users")?,
            items: r.try_get("items")?,
            interactions: r.try_get("interactions")?,
            train_ms: r.try_get("train_ms")?,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExperimentRow {
    /// `exp_…`, chosen by the service.
    pub id: String,
    pub name: String,
    /// Variants, shares and outcome types, as JSON.
    pub definition: Value,
    /// `running` or `stopped`.
    pub status: String,
    pub created_at: i64,
    pub stopped_at: Option<i64>,
}

impl ExperimentRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(ExperimentRow {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            definition: json_value(r.try_get("definition")?)?,
            status: r.try_get("status")?,
            created_at: r.try_get("created_at")?,
            stopped_at: r.try_get("stopped_at")?,
        })
    }
}

/// Counts of one variant of an experiment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VariantCounts {
    pub impressions: i64,
    pub clicks: i64,
    pub conversions: i64,
}

fn json_list(text: String) -> Result<Vec<String>> {
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("list column: {e}")))
}

fn json_value(text: String) -> Result<Value> {
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("json column: {e}")))
}
