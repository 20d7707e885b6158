//! Listings in pages: `GET /v1/items` and `GET /v1/users`.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Item, User};

/// What a listing pages through, and the field of a page that holds it.
pub trait Listed {
    /// `items`, `users`.
    const FIELD: &'static str;
    /// The page's name in the OpenAPI document.
    const PAGE_SCHEMA: &'static str;
}

impl Listed for Item {
    const FIELD: &'static str = "items";
    const PAGE_SCHEMA: &'static str = "ItemPage";
}

impl Listed for User {
    const FIELD: &'static str = "users";
    const PAGE_SCHEMA: &'static str = "UserPage";
}

/// One page of a listing, and the cursor of the next (`None` on the last page): on the wire
/// `{"items": […], "next_cursor": "…"}` (`users` for users); pass `next_cursor` as `cursor`
/// for the next page.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// `GET /v1/items`.
pub type ItemPage = Page<Item>;

/// `GET /v1/users`.
pub type UserPage = Page<User>;

impl<T: Listed + Serialize> Serialize for Page<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut page = s.serialize_struct("Page", 2)?;
        // In name order, as the server has always written pages.
        if T::FIELD < "next_cursor" {
            page.serialize_field(T::FIELD, &self.items)?;
            page.serialize_field("next_cursor", &self.next_cursor)?;
        } else {
            page.serialize_field("next_cursor", &self.next_cursor)?;
            page.serialize_field(T::FIELD, &self.items)?;
        }
        page.end()
    }
}

impl<'de, T: Listed + Deserialize<'de>> Deserialize<'de> for Page<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PageVisitor<T>(PhantomData<T>);

        impl<'de, T: Listed + Deserialize<'de>> Visitor<'de> for PageVisitor<T> {
            type Value = Page<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a page of {}", T::FIELD)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Page<T>, A::Error> {
                let mut items = None;
                let mut next_cursor = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == T::FIELD {
                        if items.is_some() {
                            return Err(de::Error::duplicate_field(T::FIELD));
                        }
                        items = Some(map.next_value()?);
                    } else if key == "next_cursor" {
                        next_cursor = map.next_value()?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Page {
                    items: items.ok_or_else(|| de::Error::missing_field(T::FIELD))?,
                    next_cursor,
                })
            }
        }

        d.deserialize_map(PageVisitor(PhantomData))
    }
}

/// In the OpenAPI document: `ItemPage` and `UserPage`.
#[cfg(feature = "openapi")]
impl<T: Listed + utoipa::ToSchema> utoipa::PartialSchema for Page<T> {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
        use utoipa::openapi::{Ref, schema::SchemaType};
        let description = format!(
            "A page of {}; pass `next_cursor` as `cursor` for the next one.",
            T::FIELD
        );
        ObjectBuilder::new()
            .property(
                T::FIELD,
                ArrayBuilder::new().items(Ref::from_schema_name(T::name())),
            )
            .required(T::FIELD)
            .property(
                "next_cursor",
                ObjectBuilder::new()
                    .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                    .description(Some("`null` on the last page.")),
            )
            .required("next_cursor")
            .description(Some(description))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl<T: Listed + utoipa::ToSchema> utoipa::ToSchema for Page<T> {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed(T::PAGE_SCHEMA)
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((T::name().into(), T::schema()));
        T::schemas(schemas);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_name_their_field_after_what_they_list() {
        let users = Page::<User> {
            items: vec![],
            next_cursor: Some("u9".into()),
        };
        let text = serde_json::to_string(&users).unwrap();
        assert_eq!(text, r#"{"next_cursor":"u9","users":[]}"#);
        assert_eq!(serde_json::from_str::<Page<User>>(&text).unwrap(), users);
        let items = Page::<Item> {
            items: vec![],
            next_cursor: None,
        };
        let text = serde_json::to_string(&items).unwrap();
        assert_eq!(text, r#"{"items":[],"next_cursor":null}"#);
        assert_eq!(serde_json::from_str::<Page<Item>>(&text).unwrap(), items);
        assert!(serde_json::from_str::<Page<Item>>(r#"{"users":[]}"#).is_err());
    }
}
