//! Envelope encryption of tenant data at rest.
//!
//! Each tenant has its own random data key, which encrypts that tenant's sensitive values
//! (user attributes, for instance). The data key is stored in the database only wrapped
//! (encrypted) by the operator's master key, and the master key lives elsewhere (a file or
//! secret store), never beside the data: a copy of the database alone reveals nothing.
//! Rotating the master key only rewraps the small data keys; old master keys stay accepted
//! for unwrapping until every data key is rewrapped. Deleting a tenant's data key makes all
//! its encrypted values unreadable at once.
//!
//! The cipher is XChaCha20-Poly1305: its 24-byte nonces are large enough to be drawn at
//! random for every value without any risk of reuse. Associated data binds each ciphertext to
//! where it belongs (a wrapped key to its tenant and master key; a value to its table, tenant
//! and row), so a ciphertext copied elsewhere fails to decrypt instead of being misread.
//!
//! Formats (base64 URL-safe without padding):
//! - wrapped data key: `mqk1:<master id>:<b64(nonce || ciphertext || tag)>`
//! - encrypted value: `mq1:<b64(nonce || ciphertext || tag)>`

use std::fmt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const VALUE_PREFIX: &str = "mq1:";
const WRAPPED_PREFIX: &str = "mqk1:";
/// Domain separation for master key fingerprints.
const MASTER_ID_LABEL: &[u8] = b"marquee master key id v1\0";
/// Domain separation for the associated data of wrapped data keys.
const WRAP_AAD_LABEL: &str = "marquee data key v1";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("bad master key material: {0}")]
    BadKeyMaterial(String),
    #[error("the data key was wrapped with master key {0}, which is not configured")]
    UnknownMasterKey(String),
    #[error("the encrypted value is corrupt, was altered, or belongs elsewhere")]
    Corrupt,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// `nonce || ciphertext || tag` of `plaintext` under `key`.
fn seal(key: &[u8; KEY_LEN], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(<&Key>::from(key));
    let nonce_bytes = random_bytes::<NONCE_LEN>();
    let sealed = cipher
        .encrypt(
            <&XNonce>::from(&nonce_bytes),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        // XChaCha20-Poly1305 refuses only messages of 256 GiB or more, which cannot be held in
        // memory alongside their ciphertext and its base64 text on any machine this runs on.
        .expect("XChaCha20-Poly1305 encrypts any message below 256 GiB");
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&sealed);
    out
}

/// Opens what [`seal`] produced; `Corrupt` on any mismatch.
fn open(key: &[u8; KEY_LEN], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Corrupt);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce = <&XNonce>::try_from(nonce).map_err(|_| CryptoError::Corrupt)?;
    XChaCha20Poly1305::new(<&Key>::from(key))
        .decrypt(
            nonce,
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Corrupt)
}

/// The operator's key-encryption key. Never stored beside the data. Zeroized on drop; `Debug`
/// shows only its id.
pub struct MasterKey {
    bytes: [u8; KEY_LEN],
    id: String,
}

impl MasterKey {
    fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(MASTER_ID_LABEL);
        hasher.update(bytes);
        let id = hex::encode(&hasher.finalize()[..8]);
        MasterKey { bytes, id }
    }

    pub fn generate() -> Self {
        MasterKey::from_bytes(random_bytes())
    }

    /// Accepts 32 raw bytes, or (after trimming whitespace) 64 hex characters or base64
    /// (standard or URL-safe, padded or not) of 32 bytes.
    ///
    /// 32 bytes that are all printable ASCII are read as text, not as a raw key: a random key
    /// is that by chance once in about 10^14, while a 32-character password or a base64
    /// string of the wrong length is exactly that, and must not silently become a weak key.
    pub fn from_material(bytes: &[u8]) -> Result<Self, CryptoError> {
        let is_text = bytes
            .iter()
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
        if !is_text && let Ok(raw) = <[u8; KEY_LEN]>::try_from(bytes) {
            return Ok(MasterKey::from_bytes(raw));
        }
        let text = bytes.trim_ascii();
        let decoded: Option<Zeroizing<Vec<u8>>> = if text.len() == 2 * KEY_LEN {
            hex::decode(text).ok().map(Zeroizing::new)
        } else {
            [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
                .into_iter()
                .find_map(|engine| engine.decode(text).ok())
                .map(Zeroizing::new)
        };
        let Some(decoded) = decoded else {
            return Err(CryptoError::BadKeyMaterial(format!(
                "expected 32 raw bytes, 64 hex characters or base64 of 32 bytes; got {} bytes \
                 that are none of these",
                bytes.len()
            )));
        };
        let raw = <[u8; KEY_LEN]>::try_from(decoded.as_slice()).map_err(|_| {
            CryptoError::BadKeyMaterial(format!(
                "the key must be 32 bytes; the material decodes to {}",
                decoded.len()
            ))
        })?;
        Ok(MasterKey::from_bytes(raw))
    }

    /// Reads key material (any form [`MasterKey::from_material`] accepts) from a file.
    pub fn from_file(path: &Path) -> Result<Self, CryptoError> {
        let material = std::fs::read(path).map_err(|e| {
            CryptoError::BadKeyMaterial(format!("cannot read {}: {e}", path.display()))
        })?;
        MasterKey::from_material(&Zeroizing::new(material))
    }

    /// URL-safe base64 without padding: what `marquee keys generate-master` prints or writes.
    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.bytes)
    }

    /// 16 hex characters: a fingerprint (SHA-256 of a domain-separation label and the key),
    /// safe to store and show.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Wraps a data key for one tenant: `mqk1:<master id>:<b64(nonce || ciphertext)>`; the
    /// associated data binds the tenant id and the master id.
    pub fn wrap(&self, key: &DataKey, tenant_id: i64) -> String {
        let aad = wrap_aad(tenant_id, &self.id);
        let sealed = seal(&self.bytes, &key.bytes, aad.as_bytes());
        format!(
            "{WRAPPED_PREFIX}{}:{}",
            self.id,
            URL_SAFE_NO_PAD.encode(sealed)
        )
    }
}

fn wrap_aad(tenant_id: i64, master_id: &str) -> String {
    format!("{WRAP_AAD_LABEL}|{tenant_id}|{master_id}")
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish()
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

/// The current master key plus earlier ones still accepted for unwrapping (during a
/// rotation). New wraps use `current`.
#[derive(Debug)]
pub struct MasterKeys {
    pub current: MasterKey,
    pub previous: Vec<MasterKey>,
}

impl MasterKeys {
    pub fn new(current: MasterKey) -> Self {
        MasterKeys {
            current,
            previous: Vec::new(),
        }
    }

    /// Unwraps a tenant's data key with whichever configured master key wrapped it.
    /// `UnknownMasterKey(id)` when none has that id; `Corrupt` when the value is malformed, was
    /// altered, or was wrapped for another tenant.
    pub fn unwrap(&self, wrapped: &str, tenant_id: i64) -> Result<DataKey, CryptoError> {
        let rest = wrapped
            .strip_prefix(WRAPPED_PREFIX)
            .ok_or(CryptoError::Corrupt)?;
        let (id, payload) = rest.split_once(':').ok_or(CryptoError::Corrupt)?;
        let master = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.id == id)
            .ok_or_else(|| {
                let shown: String = id.chars().take(32).collect();
                CryptoError::UnknownMasterKey(shown)
            })?;
        let sealed = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| CryptoError::Corrupt)?;
        let opened = Zeroizing::new(open(
            &master.bytes,
            &sealed,
            wrap_aad(tenant_id, id).as_bytes(),
        )?);
        let bytes =
            <[u8; KEY_LEN]>::try_from(opened.as_slice()).map_err(|_| CryptoError::Corrupt)?;
        Ok(DataKey { bytes })
    }

    /// The master key id inside a wrapped data key (to find keys still wrapped by an old
    /// master key).
    pub fn wrapped_id(wrapped: &str) -> Option<&str> {
        let (id, _) = wrapped.strip_prefix(WRAPPED_PREFIX)?.split_once(':')?;
        (!id.is_empty()).then_some(id)
    }
}

/// A tenant's data key. Zeroized on drop; `Debug` is redacted.
#[derive(Clone)]
pub struct DataKey {
    bytes: [u8; KEY_LEN],
}

impl DataKey {
    pub fn generate() -> Self {
        DataKey {
            bytes: random_bytes(),
        }
    }

    /// `"mq1:" + b64(nonce || ciphertext || tag)`. `aad` binds the value to where it belongs,
    /// e.g. `b"users.attributes|<tenant>|<user id>"`; decrypting needs the same `aad`.
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> String {
        let sealed = seal(&self.bytes, plaintext, aad);
        format!("{VALUE_PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed))
    }

    /// Decrypts what [`DataKey::encrypt`] produced; `Corrupt` on a wrong key, wrong `aad`,
    /// tampering or a malformed value.
    pub fn decrypt(&self, stored: &str, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let payload = stored
            .strip_prefix(VALUE_PREFIX)
            .ok_or(CryptoError::Corrupt)?;
        let sealed = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| CryptoError::Corrupt)?;
        open(&self.bytes, &sealed, aad)
    }

    /// Whether `stored` has the encrypted-value prefix (plain values written before
    /// encryption was enabled do not).
    pub fn is_encrypted(stored: &str) -> bool {
        stored.starts_with(VALUE_PREFIX)
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_every_encryption_differs() {
        let key = DataKey::generate();
        let aad = b"users.attributes|1|u42";
        let a = key.encrypt(b"{\"plan\":\"gold\"}", aad);
        let b = key.encrypt(b"{\"plan\":\"gold\"}", aad);
        assert_ne!(a, b);
        assert!(DataKey::is_encrypted(&a));
        assert!(!DataKey::is_encrypted("{\"plan\":\"gold\"}"));
        assert_eq!(key.decrypt(&a, aad).unwrap(), b"{\"plan\":\"gold\"}");
        assert_eq!(key.decrypt(&b, aad).unwrap(), b"{\"plan\":\"gold\"}");
        let empty = key.encrypt(b"", aad);
        assert_eq!(key.decrypt(&empty, aad).unwrap(), b"");
        assert_eq!(
            key.clone().decrypt(&a, aad).unwrap(),
            b"{\"plan\":\"gold\"}"
        );
    }

    #[test]
    fn a_wrong_key_aad_or_any_tampering_fails() {
        let key = DataKey::generate();
        let stored = key.encrypt(b"secret", b"users.attributes|1|u1");
        assert!(matches!(
            key.decrypt(&stored, b"users.attributes|1|u2"),
            Err(CryptoError::Corrupt)
        ));
        assert!(
            DataKey::generate()
                .decrypt(&stored, b"users.attributes|1|u1")
                .is_err()
        );

        let mut sealed = URL_SAFE_NO_PAD
            .decode(&stored[VALUE_PREFIX.len()..])
            .unwrap();
        for i in [0, NONCE_LEN, sealed.len() - 1] {
            sealed[i] ^= 1;
            let tampered = format!("{VALUE_PREFIX}{}", URL_SAFE_NO_PAD.encode(&sealed));
            assert!(
                key.decrypt(&tampered, b"users.attributes|1|u1").is_err(),
                "byte {i}"
            );
            sealed[i] ^= 1;
        }
        for malformed in ["", "mq1:", "mq1:!!!", "mq2:AAAA", "plain text", "mq1:AAAA"] {
            assert!(matches!(
                key.decrypt(malformed, b""),
                Err(CryptoError::Corrupt)
            ));
        }
    }

    #[test]
    fn data_keys_are_wrapped_per_tenant_and_master_key() {
        let master = MasterKey::generate();
        let data_key = DataKey::generate();
        let wrapped = master.wrap(&data_key, 7);
        assert!(wrapped.starts_with(&format!("mqk1:{}:", master.id())));
        assert_eq!(MasterKeys::wrapped_id(&wrapped), Some(master.id()));
        assert_ne!(wrapped, master.wrap(&data_key, 7));

        let keys = MasterKeys::new(master);
        let unwrapped = keys.unwrap(&wrapped, 7).unwrap();
        let value = data_key.encrypt(b"hello", b"aad");
        assert_eq!(unwrapped.decrypt(&value, b"aad").unwrap(), b"hello");
        // Another tenant's row cannot use this wrapped key.
        assert!(matches!(
            keys.unwrap(&wrapped, 8),
            Err(CryptoError::Corrupt)
        ));
        // Pretending another master id breaks the binding too.
        let forged = wrapped.replacen(keys.current.id(), "0123456789abcdef", 1);
        assert!(matches!(
            keys.unwrap(&forged, 7),
            Err(CryptoError::UnknownMasterKey(id)) if id == "0123456789abcdef"
        ));
        let mut tampered = wrapped.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(keys.unwrap(&tampered, 7).is_err());
        for malformed in ["", "mqk1:", "mqk1:abc", "mq1:abc:def", "mqk1:x:y"] {
            assert!(keys.unwrap(malformed, 7).is_err(), "{malformed}");
        }
        assert_eq!(MasterKeys::wrapped_id("mqk1::abc"), None);
        assert_eq!(MasterKeys::wrapped_id("mq1:abc"), None);
    }

    #[test]
    fn earlier_master_keys_still_unwrap_during_a_rotation() {
        let old = MasterKey::generate();
        let data_key = DataKey::generate();
        let wrapped_by_old = old.wrap(&data_key, 1);
        let new = MasterKey::generate();
        assert_ne!(old.id(), new.id());
        let only_new =
            MasterKeys::new(MasterKey::from_material(new.to_base64().as_bytes()).unwrap());
        assert!(matches!(
            only_new.unwrap(&wrapped_by_old, 1),
            Err(CryptoError::UnknownMasterKey(id)) if id == old.id()
        ));
        let rotating = MasterKeys {
            current: new,
            previous: vec![old],
        };
        let unwrapped = rotating.unwrap(&wrapped_by_old, 1).unwrap();
        let rewrapped = rotating.current.wrap(&unwrapped, 1);
        assert_eq!(
            MasterKeys::wrapped_id(&rewrapped),
            Some(rotating.current.id())
        );
        assert!(rotating.unwrap(&rewrapped, 1).is_ok());
    }

    #[test]
    fn master_key_material_comes_raw_hex_or_base64() {
        let raw: [u8; 32] = std::array::from_fn(|i| (i * 7 + 3) as u8);
        let id = MasterKey::from_material(&raw).unwrap().id().to_string();
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        let encodings = [
            hex::encode(raw),
            format!("  {}\n", hex::encode_upper(raw)),
            STANDARD.encode(raw),
            STANDARD_NO_PAD.encode(raw),
            URL_SAFE.encode(raw),
            format!("{}\n", URL_SAFE_NO_PAD.encode(raw)),
        ];
        for material in &encodings {
            let key = MasterKey::from_material(material.as_bytes()).unwrap();
            assert_eq!(key.id(), id, "{material:?}");
        }
        let key = MasterKey::from_material(&raw).unwrap();
        assert_eq!(
            MasterKey::from_material(key.to_base64().as_bytes())
                .unwrap()
                .id(),
            id
        );

        let bad_materials: Vec<Vec<u8>> = vec![
            raw[..31].to_vec(),
            vec![0; 33],
            Vec::new(),
            hex::encode(&raw[..31]).into_bytes(),
            STANDARD.encode([0u8; 31]).into_bytes(),
            URL_SAFE_NO_PAD.encode([0u8; 33]).into_bytes(),
            // 32 printable characters: a password, not a key.
            b"correct horse battery staple 123".to_vec(),
            b"not a key at all, not even close!!".to_vec(),
        ];
        for bad in &bad_materials {
            assert!(
                matches!(
                    MasterKey::from_material(bad),
                    Err(CryptoError::BadKeyMaterial(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn master_keys_load_from_files() {
        let dir = std::env::temp_dir().join(format!("marquee-platform-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("master.key");
        let generated = MasterKey::generate();
        std::fs::write(&path, format!("{}\n", generated.to_base64())).unwrap();
        assert_eq!(MasterKey::from_file(&path).unwrap().id(), generated.id());
        let missing = MasterKey::from_file(&dir.join("absent.key")).unwrap_err();
        assert!(missing.to_string().contains("absent.key"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debug_output_shows_no_key_bytes() {
        let raw = [0xabu8; 32];
        let master = MasterKey::from_material(&raw).unwrap();
        let keys = MasterKeys::new(MasterKey::from_material(&raw).unwrap());
        let shown = format!("{master:?} {keys:?}");
        assert!(shown.contains(master.id()));
        let data_key = DataKey::generate();
        assert_eq!(format!("{data_key:?}"), "DataKey(<redacted>)");
        for leak in [
            master.to_base64(),
            hex::encode(raw),
            format!("{raw:?}"),
            "171, 171".to_string(),
        ] {
            assert!(!shown.contains(&leak), "{shown} contains {leak}");
        }
    }
}
