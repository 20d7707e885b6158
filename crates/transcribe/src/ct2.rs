//! Reader for CTranslate2 model binaries (`model.bin`, format version 6).
//!
//! The published Whisper tiny.en weights we pull are a CTranslate2 export. The format is
//! small enough to read directly, which spares a Python conversion step:
//!
//! ```text
//! u32 binary_version (6)
//! str spec_name ("WhisperSpec"), u32 spec_revision
//! u32 n_variables, then per variable:
//!     str name, u8 rank, u32 dims[rank], u8 dtype, u32 n_bytes, n_bytes of little-endian data
//! u32 n_aliases, then per alias: str alias, str target
//! ```
//!
//! where `str` is a u16 length (counting a trailing NUL) followed by the bytes. Every length
//! read from the file is checked against the bytes that remain, so a corrupt file yields an
//! error, never a panic or an allocation the header asks for.

use std::ops::Range;

/// The only layout version this reader has been checked against.
pub const SUPPORTED_VERSION: u32 = 6;

/// Element type of a stored variable (CTranslate2's `DataType` enum order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct2DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl Ct2DType {
    fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Ct2DType::F32,
            1 => Ct2DType::I8,
            2 => Ct2DType::I16,
            3 => Ct2DType::I32,
            4 => Ct2DType::F16,
            5 => Ct2DType::BF16,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            Ct2DType::I8 => 1,
            Ct2DType::I16 | Ct2DType::F16 | Ct2DType::BF16 => 2,
            Ct2DType::F32 | Ct2DType::I32 => 4,
        }
    }
}

/// One named tensor; `data` indexes into the buffer given to [`parse`].
#[derive(Debug, Clone)]
pub struct Variable {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: Ct2DType,
    pub data: Range<usize>,
}

/// The parsed table of contents of a model binary.
#[derive(Debug)]
pub struct Ct2Model {
    pub spec: String,
    pub spec_revision: u32,
    pub variables: Vec<Variable>,
    /// `(alias, target)` pairs: `alias` names the same tensor as `target`.
    pub aliases: Vec<(String, String)>,
}

impl Ct2Model {
    /// Looks a variable up by name, following aliases.
    pub fn get(&self, name: &str) -> Option<&Variable> {
        let target = self
            .aliases
            .iter()
            .find(|(alias, _)| alias == name)
            .map_or(name, |(_, target)| target.as_str());
        self.variables.iter().find(|v| v.name == target)
    }

    /// Reads a scalar integer variable (CTranslate2 stores head counts and flags this way).
    pub fn scalar_int(&self, bytes: &[u8], name: &str) -> Option<i64> {
        let var = self.get(name)?;
        if !var.shape.is_empty() {
            return None;
        }
        let raw = bytes.get(var.data.clone())?;
        Some(match var.dtype {
            Ct2DType::I8 => i64::from(i8::from_le_bytes(raw.try_into().ok()?)),
            Ct2DType::I16 => i64::from(i16::from_le_bytes(raw.try_into().ok()?)),
            Ct2DType::I32 => i64::from(i32::from_le_bytes(raw.try_into().ok()?)),
            _ => return None,
        })
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "truncated: {what} needs {n} bytes at offset {} but the file has {}",
                    self.pos,
                    self.bytes.len()
                )
            })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, String> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        let len = usize::from(self.u16(what)?);
        let raw = self.take(len, what)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }
}

/// Parses the table of contents of a CTranslate2 binary held in `bytes`.
pub fn parse(bytes: &[u8]) -> Result<Ct2Model, String> {
    let mut cur = Cursor { bytes, pos: 0 };
    let version = cur.u32("binary version")?;
    if version != SUPPORTED_VERSION {
        return Err(format!(
            "unsupported CTranslate2 binary version {version} (this reader handles {SUPPORTED_VERSION})"
        ));
    }
    let spec = cur.string("spec name")?;
    let spec_revision = cur.u32("spec revision")?;
    let n_variables = cur.u32("variable count")? as usize;
    // Each variable takes at least 8 bytes of header; refuse counts the file cannot hold.
    if n_variables > bytes.len() / 8 {
        return Err(format!(
            "variable count {n_variables} is impossible for a {}-byte file",
            bytes.len()
        ));
    }
    let mut variables = Vec::with_capacity(n_variables);
    for index in 0..n_variables {
        let name = cur.string("variable name")?;
        let rank = usize::from(cur.u8("rank")?);
        let mut shape = Vec::with_capacity(rank);
        for _ in 0..rank {
            shape.push(cur.u32("dimension")? as usize);
        }
        let type_id = cur.u8("dtype")?;
        let dtype = Ct2DType::from_id(type_id)
            .ok_or_else(|| format!("variable {name}: unknown dtype id {type_id}"))?;
        let n_bytes = cur.u32("byte count")? as usize;
        let expected = shape
            .iter()
            .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| format!("variable {name}: shape {shape:?} overflows"))?;
        if expected != n_bytes {
            return Err(format!(
                "variable {index} ({name}): shape {shape:?} of {dtype:?} needs {expected} bytes, header says {n_bytes}"
            ));
        }
        let start = cur.pos;
        cur.take(n_bytes, &format!("data of {name}"))?;
        variables.push(Variable {
            name,
            shape,
            dtype,
            data: start..cur.pos,
        });
    }
    let n_aliases = cur.u32("alias count")? as usize;
    if n_aliases > bytes.len() / 4 {
        return Err(format!("alias count {n_aliases} is impossible"));
    }
    let mut aliases = Vec::with_capacity(n_aliases);
    for _ in 0..n_aliases {
        let alias = cur.string("alias")?;
        let target = cur.string("alias target")?;
        aliases.push((alias, target));
    }
    if cur.pos != bytes.len() {
        return Err(format!(
            "{} unexpected trailing bytes after the alias table",
            bytes.len() - cur.pos
        ));
    }
    Ok(Ct2Model {
        spec,
        spec_revision,
        variables,
        aliases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push_str(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    /// A two-variable, one-alias file laid out as CTranslate2 writes it.
    fn sample_file() -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&6u32.to_le_bytes());
        push_str(&mut out, "WhisperSpec");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&2u32.to_le_bytes());
        push_str(&mut out, "encoder/num_heads");
        out.push(0);
        out.push(2);
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(&6i16.to_le_bytes());
        push_str(&mut out, "w");
        out.push(2);
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(&3u32.to_le_bytes());
        out.push(0);
        out.extend_from_slice(&24u32.to_le_bytes());
        for i in 0..6 {
            out.extend_from_slice(&(i as f32).to_le_bytes());
        }
        out.extend_from_slice(&1u32.to_le_bytes());
        push_str(&mut out, "w_alias");
        push_str(&mut out, "w");
        out
    }

    #[test]
    fn parses_variables_scalars_and_aliases() {
        let bytes = sample_file();
        let model = parse(&bytes).unwrap();
        assert_eq!(model.spec, "WhisperSpec");
        assert_eq!(model.spec_revision, 3);
        assert_eq!(model.scalar_int(&bytes, "encoder/num_heads"), Some(6));
        let w = model.get("w_alias").unwrap();
        assert_eq!(w.shape, vec![2, 3]);
        assert_eq!(w.dtype, Ct2DType::F32);
        assert_eq!(&bytes[w.data.clone()][4..8], &1f32.to_le_bytes());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = sample_file();
        for len in 0..bytes.len() {
            assert!(
                parse(&bytes[..len]).is_err(),
                "prefix of {len} bytes parsed"
            );
        }
    }

    #[test]
    fn rejects_other_versions_and_inconsistent_sizes() {
        let mut bytes = sample_file();
        bytes[0] = 5;
        assert!(parse(&bytes).unwrap_err().contains("version 5"));
        let mut bytes = sample_file();
        // Corrupt the byte count of `w` (24 -> 25).
        let pos = bytes
            .windows(4)
            .position(|w| w == 24u32.to_le_bytes())
            .unwrap();
        bytes[pos] = 25;
        assert!(parse(&bytes).is_err());
    }
}
