//! API key generation, hashing and the capabilities of each key kind.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a key is for.
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

/// The actions a route can require.
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
        }
    }
}

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
    }
}
