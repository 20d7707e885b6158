//! API key generation, hashing and the capabilities of each key kind.

use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a key is for.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// Operator key (no tenant) or tenant administrator key (with a tenant): everything a secret
    /// key may do, plus managing keys (and, without a tenant, tenants).
    Admin,
    /// Full access to its tenant's data; for the tenant's servers.
    Secret,
    /// Recommend and send feedback only: safe to ship inside a client app.
    Publishable,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Admin => "admin",
            KeyKind::Secret => "secret",
            KeyKind::Publishable => "publishable",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(KeyKind::Admin),
            "secret" => Some(KeyKind::Secret),
            "publishable" => Some(KeyKind::Publishable),
            _ => None,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            KeyKind::Admin => "mq_ak_",
            KeyKind::Secret => "mq_sk_",
            KeyKind::Publishable => "mq_pk_",
        }
    }

    /// Whether a key of this kind may do `capability` within its tenant.
    pub fn allows(self, capability: Capability) -> bool {
        use Capability::*;
        match self {
            KeyKind::Admin => true,
            KeyKind::Secret => !matches!(capability, ManageKeys),
            KeyKind::Publishable => matches!(capability, Recommend | FeedbackWrite),
        }
    }
}

/// The actions a route can require; a key's scopes are a subset of them.
///
/// Serialized as the scope string (`"catalog:read"`), which is also what operators and tenants
/// write in a key's policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Read recommendations, similar and popular items.
    Recommend,
    /// Send feedback events.
    FeedbackWrite,
    /// Read catalogue items.
    CatalogRead,
    /// Create, change and delete items.
    CatalogWrite,
    /// Read users and their feedback.
    UsersRead,
    /// Create, change and delete users.
    UsersWrite,
    /// Start training and read model versions.
    Train,
    /// Create, stop and read A/B experiments.
    Experiments,
    /// Create and revoke the tenant's keys.
    ManageKeys,
    /// Call embedding models (`/v1/embeddings`).
    ModelsEmbeddings,
    /// Call chat models (`/v1/chat/completions`, drafted copy).
    ModelsChat,
    /// Call speech models: synthesis (`/v1/audio/speech`) and transcription
    /// (`/v1/audio/transcriptions`).
    ModelsSpeech,
    /// Call vision models (`/v1/images/classify`, item image labels).
    ModelsVision,
    /// Read the tenant's usage and invoices.
    UsageRead,
}

impl Capability {
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Recommend => "recommend",
            Capability::FeedbackWrite => "feedback:write",
            Capability::CatalogRead => "catalog:read",
            Capability::CatalogWrite => "catalog:write",
            Capability::UsersRead => "users:read",
            Capability::UsersWrite => "users:write",
            Capability::Train => "models:train",
            Capability::Experiments => "experiments",
            Capability::ManageKeys => "keys:manage",
            Capability::ModelsEmbeddings => "models:embeddings",
            Capability::ModelsChat => "models:chat",
            Capability::ModelsSpeech => "models:speech",
            Capability::ModelsVision => "models:vision",
            Capability::UsageRead => "usage:read",
        }
    }

    /// Every capability, in declaration order.
    pub const ALL: &'static [Capability] = &[
        Capability::Recommend,
        Capability::FeedbackWrite,
        Capability::CatalogRead,
        Capability::CatalogWrite,
        Capability::UsersRead,
        Capability::UsersWrite,
        Capability::Train,
        Capability::Experiments,
        Capability::ManageKeys,
        Capability::ModelsEmbeddings,
        Capability::ModelsChat,
        Capability::ModelsSpeech,
        Capability::ModelsVision,
        Capability::UsageRead,
    ];

    /// The capability whose scope string is `s` (exact, case-sensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Capability {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Capability {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScopeVisitor;

        impl de::Visitor<'_> for ScopeVisitor {
            type Value = Capability;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scope string such as \"recommend\"")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Capability, E> {
                Capability::parse(s).ok_or_else(|| {
                    let shown: String = s.chars().take(64).collect();
                    let valid: Vec<&str> = Capability::ALL.iter().map(|c| c.as_str()).collect();
                    E::custom(format!(
                        "unknown scope `{shown}`; valid scopes are: {}",
                        valid.join(", ")
                    ))
                })
            }
        }

        deserializer.deserialize_str(ScopeVisitor)
    }
}

/// In the OpenAPI document: one of the scope strings.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Capability {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(Capability::ALL.iter().map(|c| c.as_str())))
            .description(Some(
                "A scope: what a key may do within its tenant (and what a route requires).",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Capability {}

/// A freshly generated key: the secret is shown once, only the hash is kept.
#[derive(Clone, Debug)]
pub struct GeneratedKey {
    /// Public id (`key_` + 16 hex digits), for listing and revoking.
    pub id: String,
    /// The whole secret, e.g. `mq_sk_3kF…`; give it to the caller and forget it.
    pub secret: String,
    /// The first characters of the secret, for display.
    pub display_prefix: String,
    /// Hex SHA-256 of the secret.
    pub hash: String,
}

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// 43 base-62 characters carry just over 256 bits.
const SECRET_CHARS: usize = 43;

impl GeneratedKey {
    pub fn new(kind: KeyKind) -> Self {
        let mut rng = rand::rng();
        let mut secret = String::from(kind.prefix());
        while secret.len() < kind.prefix().len() + SECRET_CHARS {
            // Rejection sampling keeps every character uniform: 62 * 4 = 248 < 256.
            let b = (rng.next_u32() & 0xff) as u8;
            if b < 248 {
                secret.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
        let mut id_bytes = [0u8; 8];
        rng.fill_bytes(&mut id_bytes);
        GeneratedKey {
            id: format!("key_{}", hex::encode(id_bytes)),
            display_prefix: secret[..kind.prefix().len() + 4].to_string(),
            hash: hash_secret(&secret),
            secret,
        }
    }

    /// A key whose secret the operator chose (e.g. `MARQUEE_ADMIN_KEY`).
    pub fn from_secret(secret: &str) -> Self {
        let mut id_bytes = [0u8; 8];
        rand::rng().fill_bytes(&mut id_bytes);
        let shown = secret.chars().take(10).collect::<String>();
        GeneratedKey {
            id: format!("key_{}", hex::encode(id_bytes)),
            display_prefix: shown,
            hash: hash_secret(secret),
            secret: secret.to_string(),
        }
    }
}

/// Hex SHA-256 of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares a presented secret with a stored hash in time independent of where they differ.
pub fn verify_hash(secret: &str, stored_hash: &str) -> bool {
    let presented = hash_secret(secret);
    presented.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

/// Cheap shape check before any lookup: printable ASCII, sane length.
pub fn looks_like_key(s: &str) -> bool {
    (16..=256).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_prefixed_unique_and_verifiable() {
        let a = GeneratedKey::new(KeyKind::Secret);
        let b = GeneratedKey::new(KeyKind::Secret);
        assert!(a.secret.starts_with("mq_sk_"));
        assert_eq!(a.secret.len(), 6 + SECRET_CHARS);
        assert_ne!(a.secret, b.secret);
        assert_ne!(a.id, b.id);
        assert!(verify_hash(&a.secret, &a.hash));
        assert!(!verify_hash(&b.secret, &a.hash));
        assert!(
            GeneratedKey::new(KeyKind::Publishable)
                .secret
                .starts_with("mq_pk_")
        );
        assert!(
            GeneratedKey::new(KeyKind::Admin)
                .secret
                .starts_with("mq_ak_")
        );
    }

    #[test]
    fn publishable_keys_only_recommend_and_send_feedback() {
        assert!(KeyKind::Publishable.allows(Capability::Recommend));
        assert!(KeyKind::Publishable.allows(Capability::FeedbackWrite));
        assert!(!KeyKind::Publishable.allows(Capability::CatalogRead));
        assert!(!KeyKind::Publishable.allows(Capability::UsersWrite));
        assert!(KeyKind::Secret.allows(Capability::CatalogWrite));
        assert!(!KeyKind::Secret.allows(Capability::ManageKeys));
        assert!(KeyKind::Admin.allows(Capability::ManageKeys));
        assert!(KeyKind::Admin.allows(Capability::UsageRead));
        assert!(KeyKind::Secret.allows(Capability::UsageRead));
        assert!(!KeyKind::Publishable.allows(Capability::UsageRead));
    }

    #[test]
    fn capabilities_round_trip_through_their_scope_strings() {
        assert_eq!(Capability::ALL.len(), 14);
        for &c in Capability::ALL {
            assert_eq!(Capability::parse(c.as_str()), Some(c));
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<Capability>(&json).unwrap(), c);
        }
        assert_eq!(Capability::parse("usage:read"), Some(Capability::UsageRead));
        assert_eq!(Capability::parse("Recommend"), None);
        assert_eq!(Capability::parse(""), None);
    }

    #[test]
    fn unknown_scopes_fail_to_deserialize_naming_the_valid_ones() {
        let err = serde_json::from_str::<Vec<Capability>>(r#"["recommend", "catalog:delete"]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown scope `catalog:delete`"), "{err}");
        assert!(
            err.contains("usage:read") && err.contains("feedback:write"),
            "{err}"
        );
        assert!(serde_json::from_str::<Capability>("3").is_err());
    }
}
