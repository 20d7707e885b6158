//! Trained models on disk, so a restart (or another process: `marquee train`) does not cost a
//! retraining.
//!
//! A snapshot is `<dir>/<tenant id>/v<version>.mqr`: a small header — magic, format version, the
//! JSON metadata (the model version's info and the item id of every model index) — followed by
//! the model in the engine's own checked format. The item ids let a loader line the catalogue
//! up with the model: model index `i` must be catalogue index `i`, and the catalogue's order is
//! ours to choose when it is loaded. The newest three versions are kept.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use recsys::Model;
use serde::{Deserialize, Serialize};

use crate::types::ModelVersionInfo;

const MAGIC: &[u8; 4] = b"MQRS";
const FORMAT: u32 = 1;
const KEEP: usize = 3;
/// Metadata above this is not a snapshot of ours (a million ids of 256 bytes is 256 MB; refuse more).
const MAX_META_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub info: ModelVersionInfo,
    /// Item id of each model index.
    pub item_ids: Vec<String>,
}

fn tenant_dir(dir: &Path, tenant_id: i64) -> PathBuf {
    dir.join(tenant_id.to_string())
}

fn file_name(version: i64) -> String {
    format!("v{version}.mqr")
}

/// Writes a snapshot atomically (temporary file, then rename) and prunes old versions.
pub fn save(
    dir: &Path,
    tenant_id: i64,
    meta: &SnapshotMeta,
    model: &Model,
) -> std::io::Result<PathBuf> {
    let tdir = tenant_dir(dir, tenant_id);
    std::fs::create_dir_all(&tdir)?;
    let path = tdir.join(file_name(meta.info.version));
    let tmp = tdir.join(format!(".{}.tmp", file_name(meta.info.version)));
    {
        let mut w = BufWriter::new(File::create(&tmp)?);
        let json = serde_json::to_vec(meta).map_err(std::io::Error::other)?;
        w.write_all(MAGIC)?;
        w.write_all(&FORMAT.to_le_bytes())?;
        w.write_all(&(json.len() as u64).to_le_bytes())?;
        w.write_all(&json)?;
        model.write_to(&mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    let mut versions = versions(dir, tenant_id);
    versions.sort_unstable_by(|a, b| b.cmp(a));
    for old in versions.into_iter().skip(KEEP) {
        let _ = std::fs::remove_file(tdir.join(file_name(old)));
    }
    Ok(path)
}

/// Deletes the snapshots, other than `keep`, of models whose training data was read before
/// `before_ms` (a user's erasure: those models still carry the user's influence). A model's
/// data is read when its training starts, `trained_at − train_ms`. Returns the versions deleted.
pub fn prune_trained_before(dir: &Path, tenant_id: i64, before_ms: i64, keep: i64) -> Vec<i64> {
    let mut deleted = Vec::new();
    for version in versions(dir, tenant_id) {
        if version == keep {
            continue;
        }
        let stale = match read_meta(dir, tenant_id, version) {
            Ok(meta) => meta.info.trained_at.0 - meta.info.train_ms < before_ms,
            // Unreadable: nothing can vouch for it.
            Err(_) => true,
        };
        if stale
            && std::fs::remove_file(tenant_dir(dir, tenant_id).join(file_name(version))).is_ok()
        {
            deleted.push(version);
        }
    }
    deleted.sort_unstable();
    deleted
}

/// Versions with a snapshot, in no particular order.
pub fn versions(dir: &Path, tenant_id: i64) -> Vec<i64> {
    let Ok(entries) = std::fs::read_dir(tenant_dir(dir, tenant_id)) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix('v')?.strip_suffix(".mqr")?.parse().ok()
        })
        .collect()
}

pub fn latest_version(dir: &Path, tenant_id: i64) -> Option<i64> {
    versions(dir, tenant_id).into_iter().max()
}

fn open(
    dir: &Path,
    tenant_id: i64,
    version: i64,
) -> std::io::Result<(BufReader<File>, SnapshotMeta)> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut r = BufReader::new(File::open(
        tenant_dir(dir, tenant_id).join(file_name(version)),
    )?);
    let mut head = [0u8; 16];
    r.read_exact(&mut head)?;
    if &head[..4] != MAGIC {
        return Err(bad("not a Marquee model snapshot"));
    }
    if u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) != FORMAT {
        return Err(bad("unsupported snapshot format version"));
    }
    let len = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
    if len > MAX_META_BYTES {
        return Err(bad("snapshot metadata is implausibly large"));
    }
    let mut json = Vec::new();
    (&mut r).take(len).read_to_end(&mut json)?;
    if json.len() as u64 != len {
        return Err(bad("snapshot is truncated"));
    }
    let meta: SnapshotMeta =
        serde_json::from_slice(&json).map_err(|e| bad(&format!("snapshot metadata: {e}")))?;
    Ok((r, meta))
}

/// Whether a model over `item_ids` can serve `catalog` as it is: model index `i` is catalogue
/// index `i` for every model item.
pub fn lines_up(item_ids: &[String], catalog: &crate::state::Catalog) -> bool {
    item_ids.len() <= catalog.items.len()
        && item_ids
            .iter()
            .zip(&catalog.items)
            .all(|(id, item)| **id == *item.id)
}

/// Reads only the metadata of a snapshot (the model's item order), not the model.
pub fn read_meta(dir: &Path, tenant_id: i64, version: i64) -> std::io::Result<SnapshotMeta> {
    open(dir, tenant_id, version).map(|(_, meta)| meta)
}

/// Reads a whole snapshot; the model must have one index per listed item id.
pub fn load(dir: &Path, tenant_id: i64, version: i64) -> std::io::Result<(SnapshotMeta, Model)> {
    let (mut r, meta) = open(dir, tenant_id, version)?;
    let model = Model::read_from(&mut r)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    if model.n_items() != meta.item_ids.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "snapshot item list does not match its model",
        ));
    }
    Ok((meta, model))
}

#[cfg(test)]
mod tests {
    use super::*;
    use recsys::{AlgorithmConfig, Interactions};

    fn model() -> Model {
        let data = Interactions::from_triples(
            3,
            3,
            [
                (0, 0, 1.0, 0),
                (0, 1, 1.0, 0),
                (1, 1, 1.0, 0),
                (2, 2, 1.0, 0),
            ],
        );
        recsys::train(
            &AlgorithmConfig::ItemKnn {
                neighbors: 10,
                shrinkage: 0.0,
            },
            &data,
        )
        .unwrap()
    }

    fn meta(version: i64) -> SnapshotMeta {
        SnapshotMeta {
            info: ModelVersionInfo {
                version,
                algorithm: serde_json::json!({"algorithm": "item_knn"}),
                trained_at: crate::types::Timestamp(1),
                users: 3,
                items: 3,
                interactions: 4,
                train_ms: 1,
            },
            item_ids: vec!["a".into(), "b".into(), "c".into()],
        }
    }

    #[test]
    fn snapshots_round_trip_and_old_ones_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let m = model();
        for v in 1..=5 {
            save(dir.path(), 7, &meta(v), &m).unwrap();
        }
        let mut kept = versions(dir.path(), 7);
        kept.sort();
        assert_eq!(kept, vec![3, 4, 5]);
        assert_eq!(latest_version(dir.path(), 7), Some(5));
        let (meta, loaded) = load(dir.path(), 7, 5).unwrap();
        assert_eq!(meta.item_ids, ["a", "b", "c"]);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        m.score_history(&[(0, 1.0)], &mut x);
        loaded.score_history(&[(0, 1.0)], &mut y);
        assert_eq!(x, y);
        assert_eq!(latest_version(dir.path(), 8), None);
    }

    #[test]
    fn damaged_snapshots_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = save(dir.path(), 1, &meta(1), &model()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 9]).unwrap();
        assert!(load(dir.path(), 1, 1).is_err());
        std::fs::write(
            &path,
            b"MQRS\x01\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff",
        )
        .unwrap();
        assert!(load(dir.path(), 1, 1).is_err());
        std::fs::write(&path, b"nope").unwrap();
        assert!(load(dir.path(), 1, 1).is_err());
    }
}
