//! Reader for PyTorch's legacy (non-zip) `torch.save` format, enough for a state dict of f32
//! tensors.
//!
//! The upstream EfficientNet-Lite0 checkpoint predates the zip format that candle's `.pth` reader
//! expects. A legacy file is a run of pickles — a magic number, the protocol version, system info,
//! the state dict (whose tensors point at storages by persistent id), the list of storage keys —
//! followed by each listed storage's raw little-endian bytes, each preceded by its element count
//! as a little-endian `u64`. The pickle opcodes are read with `candle_core::pickle`; this module
//! walks the resulting objects and slices the storages.

use std::collections::HashMap;
use std::io::Cursor;

use candle_core::pickle::{Object, Stack};

/// The first pickle of every legacy file: protocol 2, `LONG1` of the magic number
/// 0x1950a86a20f9469cfc6c, `STOP`. Compared byte for byte (candle's `LONG1` decoder is limited to
/// 8 bytes and this one has 10).
const MAGIC_PICKLE: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];
/// `torch.save`'s legacy protocol version.
const PROTOCOL_VERSION: i64 = 1001;

/// One f32 tensor of the state dict, made contiguous (row-major).
#[derive(Debug, Clone)]
pub(crate) struct PthTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Where a tensor's elements live in a storage.
struct TensorRef {
    name: String,
    storage_key: String,
    storage_class: String,
    offset: usize,
    shape: Vec<usize>,
    strides: Vec<usize>,
}

/// Reads the f32 tensors of a legacy `torch.save` state dict, in file order. Tensors of other
/// dtypes (e.g. batch norm's `num_batches_tracked` counters) are skipped.
pub(crate) fn read_state_dict(bytes: &[u8]) -> Result<Vec<(String, PthTensor)>, String> {
    if bytes.starts_with(b"PK\x03\x04") {
        return Err(
            "this is a zip-format checkpoint; expected the legacy torch.save format".into(),
        );
    }
    if !bytes.starts_with(&MAGIC_PICKLE) {
        return Err("not a legacy torch.save file (bad magic number)".into());
    }
    let mut cursor = Cursor::new(bytes);
    cursor.set_position(MAGIC_PICKLE.len() as u64);

    let version = read_pickle(&mut cursor, "protocol version")?;
    if !matches!(version, Object::Int(v) if i64::from(v) == PROTOCOL_VERSION) {
        return Err(format!("unsupported protocol version {version:?}"));
    }
    let sys_info = read_pickle(&mut cursor, "system info")?;
    let little_endian = dict_entries(sys_info)
        .into_iter()
        .find(|(k, _)| matches!(k, Object::Unicode(k) if k == "little_endian"))
        .map(|(_, v)| v);
    if little_endian != Some(Object::Bool(true)) {
        return Err("only little-endian checkpoints are supported".into());
    }

    let state_dict = read_pickle(&mut cursor, "state dict")?;
    let mut tensors = Vec::new();
    for (key, value) in dict_entries(state_dict) {
        let Object::Unicode(name) = key else { continue };
        if let Some(tensor) = tensor_ref(name, value)? {
            tensors.push(tensor);
        }
    }

    let keys = match read_pickle(&mut cursor, "storage keys")? {
        Object::List(keys) => keys,
        other => return Err(format!("storage key list is {other:?}")),
    };
    // The storages follow in key-list order; each needs its element size to be skipped over.
    let class_of: HashMap<&str, &str> = tensors
        .iter()
        .map(|t| (t.storage_key.as_str(), t.storage_class.as_str()))
        .collect();
    let mut position = cursor.position() as usize;
    let mut storages: HashMap<String, &[u8]> = HashMap::new();
    for key in keys {
        let Object::Unicode(key) = key else {
            return Err(format!("storage key {key:?} is not a string"));
        };
        let class = class_of
            .get(key.as_str())
            .ok_or_else(|| format!("storage {key} is not used by any tensor"))?;
        let element_size = element_size(class)?;
        let count = bytes
            .get(position..position + 8)
            .ok_or_else(|| format!("file ends before storage {key}"))?;
        let count = u64::from_le_bytes(count.try_into().expect("8 bytes")) as usize;
        let start = position + 8;
        let end = count
            .checked_mul(element_size)
            .and_then(|len| start.checked_add(len))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| format!("file ends inside storage {key}"))?;
        storages.insert(key, &bytes[start..end]);
        position = end;
    }
    if position != bytes.len() {
        return Err(format!(
            "{} unexpected bytes after the last storage",
            bytes.len() - position
        ));
    }

    tensors
        .into_iter()
        .filter(|t| t.storage_class == "FloatStorage")
        .map(|t| {
            let storage = storages
                .get(&t.storage_key)
                .ok_or_else(|| format!("{}: storage {} is missing", t.name, t.storage_key))?;
            let data = gather_f32(storage, &t).map_err(|e| format!("{}: {e}", t.name))?;
            Ok((
                t.name,
                PthTensor {
                    shape: t.shape,
                    data,
                },
            ))
        })
        .collect()
}

fn read_pickle(cursor: &mut Cursor<&[u8]>, what: &str) -> Result<Object, String> {
    let mut stack = Stack::empty();
    stack
        .read_loop(cursor)
        .and_then(|()| stack.finalize())
        .map_err(|e| format!("cannot read the {what} pickle: {e}"))
}

/// The entries of a pickled dict (an `OrderedDict` reads as a dict too); empty for anything else.
fn dict_entries(object: Object) -> Vec<(Object, Object)> {
    match object {
        Object::Dict(entries) => entries,
        _ => Vec::new(),
    }
}

/// Parses `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` (possibly wrapped
/// in `_rebuild_parameter`); `None` for a value that is not a tensor (e.g. `_metadata`).
fn tensor_ref(name: String, value: Object) -> Result<Option<TensorRef>, String> {
    let Object::Reduce { callable, args } = value else {
        return Ok(None);
    };
    let (callable, args) = match (*callable, *args) {
        (Object::Class { class_name, .. }, Object::Tuple(mut args))
            if class_name == "_rebuild_parameter" && !args.is_empty() =>
        {
            match args.swap_remove(0) {
                Object::Reduce { callable, args } => (*callable, *args),
                _ => return Ok(None),
            }
        }
        (callable, args) => (callable, args),
    };
    match callable {
        Object::Class {
            module_name,
            class_name,
        } if module_name == "torch._utils" && class_name == "_rebuild_tensor_v2" => {}
        _ => return Ok(None),
    }
    let bad = |what: &str| format!("{name}: malformed tensor record ({what})");
    let Object::Tuple(args) = args else {
        return Err(bad("arguments"));
    };
    let mut args = args.into_iter();
    let (Some(storage), Some(offset), Some(shape), Some(strides)) =
        (args.next(), args.next(), args.next(), args.next())
    else {
        return Err(bad("argument count"));
    };
    // Persistent id: ('storage', storage_type, key, location, numel[, view_metadata]).
    let Object::PersistentLoad(storage) = storage else {
        return Err(bad("storage"));
    };
    let Object::Tuple(storage) = *storage else {
        return Err(bad("storage id"));
    };
    let (Some(Object::Class { class_name, .. }), Some(Object::Unicode(storage_key))) =
        (storage.get(1).cloned(), storage.get(2).cloned())
    else {
        return Err(bad("storage id fields"));
    };
    Ok(Some(TensorRef {
        offset: as_usize(offset).ok_or_else(|| bad("offset"))?,
        shape: as_usizes(shape).ok_or_else(|| bad("size"))?,
        strides: as_usizes(strides).ok_or_else(|| bad("stride"))?,
        name,
        storage_key,
        storage_class: class_name,
    }))
}

fn as_usize(object: Object) -> Option<usize> {
    object
        .int_or_long()
        .ok()
        .and_then(|v| usize::try_from(v).ok())
}

fn as_usizes(object: Object) -> Option<Vec<usize>> {
    match object {
        Object::Tuple(items) => items.into_iter().map(as_usize).collect(),
        _ => None,
    }
}

fn element_size(storage_class: &str) -> Result<usize, String> {
    Ok(match storage_class {
        "ByteStorage" | "CharStorage" | "BoolStorage" => 1,
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
        "FloatStorage" | "IntStorage" => 4,
        "DoubleStorage" | "LongStorage" => 8,
        other => return Err(format!("unsupported storage type {other}")),
    })
}

/// Copies a (possibly strided) f32 tensor out of its storage into row-major order.
fn gather_f32(storage: &[u8], t: &TensorRef) -> Result<Vec<f32>, String> {
    if t.shape.len() != t.strides.len() {
        return Err("size and stride ranks differ".into());
    }
    let element = |index: usize| -> Option<f32> {
        let start = index.checked_mul(4)?;
        let bytes = storage.get(start..start.checked_add(4)?)?;
        Some(f32::from_le_bytes(bytes.try_into().ok()?))
    };
    let count: usize = t.shape.iter().product();
    let mut data = Vec::with_capacity(count);
    let mut index = vec![0usize; t.shape.len()];
    for _ in 0..count {
        let at = index
            .iter()
            .zip(&t.strides)
            .try_fold(t.offset, |at, (i, s)| at.checked_add(i.checked_mul(*s)?));
        data.push(
            at.and_then(element)
                .ok_or("tensor extends past its storage")?,
        );
        // Advance the row-major multi-index.
        for dim in (0..index.len()).rev() {
            index[dim] += 1;
            if index[dim] < t.shape[dim] {
                break;
            }
            index[dim] = 0;
        }
    }
    Ok(data)
}
