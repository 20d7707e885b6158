//! `GET /v1/usage`: what was used in a window, summed from the server's usage ledger.
//!
//! The report is generic over how it holds units and amounts. The server fills it with its
//! exact types (a counter per unit, money in billionths); the SDK reads the same fields with the
//! defaults: a map of unit name to count (the non-zero counters: `recommendations`,
//! `input_tokens`, `output_tokens`, `embedding_tokens`, `tts_characters`, `images`,
//! `audio_milliseconds`) and exact decimal strings (`"0.0004"`), as the server writes them.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// How `GET /v1/usage` groups its lines.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Day,
    Key,
    Model,
    Route,
    /// Operator reports only.
    Tenant,
}

impl GroupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Day => "day",
            GroupBy::Key => "key",
            GroupBy::Model => "model",
            GroupBy::Route => "route",
            GroupBy::Tenant => "tenant",
        }
    }
}

/// Usage in a window: one line per group (none without `group_by`), and the total.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageReport<Units = BTreeMap<String, u64>, Money = String> {
    /// `usage`.
    #[serde(default = "usage_object")]
    pub object: Cow<'static, str>,
    /// The tenant, on operator reports about one tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub from: Timestamp,
    pub to: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<GroupBy>,
    pub currency: String,
    /// One line per group (empty without `group_by`).
    pub data: Vec<UsageLine<Units, Money>>,
    pub total: UsageLine<Units, Money>,
}

fn usage_object() -> Cow<'static, str> {
    Cow::Borrowed("usage")
}

/// One line of a [`UsageReport`]: a group's requests, units and cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageLine<Units = BTreeMap<String, u64>, Money = String> {
    /// The day (`2026-11-30`), key id, model, route or tenant; absent in totals and for
    /// requests without a key or a model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub requests: i64,
    pub units: Units,
    /// Exact decimal amount in the report's currency.
    pub cost: Money,
}

/// In the OpenAPI document: `UsageReport` and `UsageLine`, whose units and cost refer to the
/// schemas of the server's types. (Written out rather than derived: a derived schema of a generic
/// type inlines its parameters and names itself after them, `UsageLine_Units_Money`.)
#[cfg(feature = "openapi")]
mod schema {
    use std::borrow::Cow;

    use utoipa::openapi::schema::{
        ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, SchemaType,
        Type,
    };
    use utoipa::openapi::{Ref, RefOr};
    use utoipa::{PartialSchema, ToSchema};

    use super::{GroupBy, UsageLine, UsageReport};
    use crate::Timestamp;

    type Schemas = Vec<(String, RefOr<Schema>)>;

    fn push<T: ToSchema>(schemas: &mut Schemas) {
        schemas.push((T::name().into(), T::schema()));
        T::schemas(schemas);
    }

    fn nullable_string(description: &str) -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .description(Some(description))
    }

    impl<U: ToSchema, M: ToSchema> PartialSchema for UsageLine<U, M> {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .description(Some(
                    "One line of a report: a group's requests, units and cost.",
                ))
                .property(
                    "group",
                    nullable_string(
                        "The day (`2026-11-30`), key id, model, route or tenant; absent in \
                         totals and for requests without a key or a model.",
                    ),
                )
                .property(
                    "requests",
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))),
                )
                .required("requests")
                .property("units", Ref::from_schema_name(U::name()))
                .required("units")
                .property("cost", Ref::from_schema_name(M::name()))
                .required("cost")
                .into()
        }
    }

    impl<U: ToSchema, M: ToSchema> ToSchema for UsageLine<U, M> {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed("UsageLine")
        }

        fn schemas(schemas: &mut Schemas) {
            push::<U>(schemas);
            push::<M>(schemas);
        }
    }

    impl<U: ToSchema, M: ToSchema> PartialSchema for UsageReport<U, M> {
        fn schema() -> RefOr<Schema> {
            let line = || Ref::from_schema_name(UsageLine::<U, M>::name());
            ObjectBuilder::new()
                .description(Some(
                    "Usage in a window: one line per group (none without `group_by`), and the \
                     total.",
                ))
                .property(
                    "object",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .examples(["usage"]),
                )
                .required("object")
                .property(
                    "tenant",
                    nullable_string("The tenant, on operator reports about one tenant."),
                )
                .property("from", Ref::from_schema_name(Timestamp::name()))
                .required("from")
                .property("to", Ref::from_schema_name(Timestamp::name()))
                .required("to")
                .property(
                    "group_by",
                    OneOfBuilder::new()
                        .item(Ref::from_schema_name(GroupBy::name()))
                        .item(ObjectBuilder::new().schema_type(Type::Null)),
                )
                .property("currency", ObjectBuilder::new().schema_type(Type::String))
                .required("currency")
                .property(
                    "data",
                    ArrayBuilder::new()
                        .items(line())
                        .description(Some("One line per group (empty without `group_by`).")),
                )
                .required("data")
                .property("total", line())
                .required("total")
                .into()
        }
    }

    impl<U: ToSchema, M: ToSchema> ToSchema for UsageReport<U, M> {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed("UsageReport")
        }

        fn schemas(schemas: &mut Schemas) {
            push::<Timestamp>(schemas);
            push::<GroupBy>(schemas);
            push::<UsageLine<U, M>>(schemas);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_read_what_the_server_writes() {
        let text = r#"{"object":"usage","from":"2026-11-01T00:00:00Z","to":"2026-11-30T09:00:00Z","group_by":"day","currency":"USD","data":[{"group":"2026-11-30","requests":2,"units":{"recommendations":2},"cost":"0.002"}],"total":{"requests":2,"units":{"recommendations":2},"cost":"0.002"}}"#;
        let report: UsageReport = serde_json::from_str(text).unwrap();
        assert_eq!(report.group_by, Some(GroupBy::Day));
        assert_eq!(report.total.units.get("recommendations"), Some(&2));
        assert_eq!(report.total.cost, "0.002");
        assert_eq!(report.tenant, None);
        assert_eq!(serde_json::to_string(&report).unwrap(), text);
    }
}
