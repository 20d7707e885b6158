//! Reading the model directory's data files: JSON, gzip'd JSON (with a decompression bound), and JSON
//! objects whose key order matters (Python dicts keep insertion order; the normalizer's symbol table
//! is applied in file order).

use std::fmt;
use std::io::Read;
use std::marker::PhantomData;
use std::path::Path;

use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::Error;

/// The largest file or decompressed stream accepted (the biggest asset, a lexicon, is ~10 MB).
const MAX_ASSET_BYTES: u64 = 256 << 20;

pub fn read_bytes(dir: &Path, name: &str) -> Result<Vec<u8>, Error> {
    let path = dir.join(name);
    let file = std::fs::File::open(&path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::ModelMissing { path: path.clone() }
        } else {
            Error::Io {
                path: path.clone(),
                source,
            }
        }
    })?;
    let mut out = Vec::new();
    let limited = file.take(MAX_ASSET_BYTES + 1);
    if name.ends_with(".gz") {
        flate2::read::GzDecoder::new(limited)
            .take(MAX_ASSET_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
    } else {
        { limited }
            .read_to_end(&mut out)
            .map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
    }
    if out.len() as u64 > MAX_ASSET_BYTES {
        return Err(Error::invalid_model(name, "file too large"));
    }
    Ok(out)
}

/// A JSON (or `.json.gz`) file of the model directory.
pub fn read_json<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<T, Error> {
    let bytes = read_bytes(dir, name)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::invalid_model(name, e))
}

/// A JSON object as its entries in file order.
#[derive(Debug, Clone)]
pub struct Ordered<V>(pub Vec<(String, V)>);

impl<V> Ordered<V> {
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Ordered<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
            type Value = Ordered<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((k, v)) = map.next_entry::<String, V>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V2(PhantomData))
    }
}
