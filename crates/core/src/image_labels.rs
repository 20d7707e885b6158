//! Labels of an item's image, from a vision model, kept on the item.
//!
//! Why on the item: a poster or thumbnail says what a title is about even when its text is thin,
//! so its labels join the item's text for semantic search (see [`crate::semantic::item_text`])
//! and its content features for cold-start recommendations (`i:<label>` beside the genre and tag
//! features, see [`crate::state::ItemEntry`]). They live in `metadata.image_labels` as
//! `[{"label": "tabby", "score": 0.52}, …]`, most likely first, so they are visible, filterable
//! and replaceable like any other metadata. The image itself is not kept.

use serde_json::{Map, Value, json};

use crate::error::ServiceError;
use crate::types::Item;
use crate::{Service, TenantState as Tenant};

/// The metadata key.
pub const METADATA_KEY: &str = "image_labels";
/// Labels less likely than this are not stored (the most likely one always is).
pub const DEFAULT_MIN_SCORE: f32 = 0.1;

/// The labels stored in an item's metadata, most likely first (empty when there are none or
/// the value is not in the shape this module writes).
pub fn image_labels(metadata: &Map<String, Value>) -> Vec<&str> {
    metadata
        .get(METADATA_KEY)
        .and_then(Value::as_array)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|l| l.get("label").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

impl Service {
    /// Stores `labels` (label, score), most likely first, as the item's image labels,
    /// replacing earlier ones.
    pub async fn set_image_labels(
        &self,
        tenant: &Tenant,
        item_id: &str,
        labels: &[(String, f32)],
    ) -> Result<Item, ServiceError> {
        let value = Value::Array(
            labels
                .iter()
                .map(|(label, score)| {
                    // Three decimals are plenty and keep the metadata readable.
                    json!({"label": label, "score": (score * 1000.0).round() / 1000.0})
                })
                .collect(),
        );
        self.set_item_metadata(tenant, item_id, METADATA_KEY, value)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes_and_ignores_other_shapes() {
        let mut m = Map::new();
        assert!(image_labels(&m).is_empty());
        m.insert(
            METADATA_KEY.into(),
            json!([{"label": "tabby", "score": 0.5}, {"label": "tiger cat", "score": 0.2}]),
        );
        assert_eq!(image_labels(&m), ["tabby", "tiger cat"]);
        m.insert(METADATA_KEY.into(), json!("tabby"));
        assert!(image_labels(&m).is_empty());
    }
}
