//! The model file: a compact binary snapshot of a trained [`Model`], so a server can restart or
//! scale out without retraining.
//!
//! Layout (all integers and floats little-endian):
//!
//! ```text
//! magic "MARQMODL" | format version u32 | config JSON (u32 length + UTF-8)
//! | popularity (array f32, one per item) | similar-items CSR (see below)
//! | scorer payload, shaped by the config | FNV-1a 64 checksum of every preceding byte (u64)
//! array   = u64 element count + the elements
//! CSR     = row pointers (array u64, n_items + 1) + columns (array u32) + values (array f32)
//! scorer  = popularity: nothing; item_knn / rp3_beta: CSR; ease: array f32 (n²);
//!           ials: item factors (array f32, n·f) + YᵀY + λI (array f64, f²);
//!           blend: each member's payload in config order
//! ```
//!
//! Why this shape: the config comes first as JSON so that a reader knows exactly which arrays
//! follow and how long each must be; every stated length is checked against the config and
//! `n_items` before reading, and arrays are read in bounded chunks, so a corrupt length can at
//! worst cost reading the (truncated) input, never a huge up-front allocation. Indices are
//! range-checked and floats checked finite, so a model that loads can never index out of bounds
//! at serving time; the checksum catches the corruption that leaves the structure intact.

use std::io::{self, Read, Write};

use crate::ials::IalsModel;
use crate::model::Scorer;
use crate::similarity::SparseRows;
use crate::{AlgorithmConfig, Error, Model};

const MAGIC: &[u8; 8] = b"MARQMODL";
/// Bumped on any incompatible layout change; readers reject versions they do not know.
const FORMAT_VERSION: u32 = 1;
/// The config JSON is tiny; anything bigger is corruption.
const MAX_CONFIG_BYTES: u32 = 1 << 20;
/// Bytes read (and allocated) at a time for an array.
const CHUNK_BYTES: usize = 1 << 20;

fn corrupt(what: impl Into<String>) -> Error {
    Error::InvalidModelFile(what.into())
}

fn io_error(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        corrupt("truncated")
    } else {
        Error::Io(e)
    }
}

/// FNV-1a, 64-bit: dependency-free and fast enough (about a GB/s) next to the disk.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Plain old data that has a fixed little-endian encoding.
trait Le: Copy {
    const SIZE: usize;
    fn put(self, out: &mut Vec<u8>);
    fn get(bytes: &[u8]) -> Self;
}

macro_rules! le {
    ($($t:ty),*) => {$(
        impl Le for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("caller passes SIZE bytes"))
            }
        }
    )*};
}
le!(u32, u64, f32, f64);

struct HashingWriter<'a, W: Write> {
    inner: &'a mut W,
    hash: Fnv,
    buf: Vec<u8>,
}

impl<W: Write> HashingWriter<'_, W> {
    fn bytes(&mut self, b: &[u8]) -> io::Result<()> {
        self.hash.update(b);
        self.inner.write_all(b)
    }

    fn scalar<T: Le>(&mut self, v: T) -> io::Result<()> {
        let mut b = Vec::with_capacity(T::SIZE);
        v.put(&mut b);
        self.bytes(&b)
    }

    fn array<T: Le>(&mut self, values: &[T]) -> io::Result<()> {
        self.scalar(values.len() as u64)?;
        let mut buf = std::mem::take(&mut self.buf);
        for chunk in values.chunks(CHUNK_BYTES / T::SIZE) {
            buf.clear();
            chunk.iter().for_each(|v| v.put(&mut buf));
            self.bytes(&buf)?;
        }
        self.buf = buf;
        Ok(())
    }

    fn sparse(&mut self, s: &SparseRows) -> io::Result<()> {
        let (indptr, cols, vals) = s.parts();
        let indptr: Vec<u64> = indptr.iter().map(|&p| p as u64).collect();
        self.array(&indptr)?;
        self.array(cols)?;
        self.array(vals)
    }

    fn scorer(&mut self, s: &Scorer) -> io::Result<()> {
        match s {
            Scorer::Popularity => Ok(()),
            Scorer::Neighbours(rows) => self.sparse(rows),
            Scorer::Ease(b) => self.array(b),
            Scorer::Ials(m) => {
                let (factors, gram) = m.parts();
                self.array(factors)?;
                self.array(gram)
            }
            Scorer::Blend(members) => members.iter().try_for_each(|(_, m)| self.scorer(m)),
        }
    }
}

struct HashingReader<'a, R: Read> {
    inner: &'a mut R,
    hash: Fnv,
}

impl<R: Read> HashingReader<'_, R> {
    fn bytes(&mut self, out: &mut [u8]) -> Result<(), Error> {
        self.inner.read_exact(out).map_err(io_error)?;
        self.hash.update(out);
        Ok(())
    }

    fn scalar<T: Le>(&mut self) -> Result<T, Error> {
        let mut b = [0u8; 8];
        self.bytes(&mut b[..T::SIZE])?;
        Ok(T::get(&b[..T::SIZE]))
    }

    /// Reads an array whose length must be `expected` (when known) and at most `max`.
    fn array<T: Le>(
        &mut self,
        what: &str,
        expected: Option<usize>,
        max: usize,
    ) -> Result<Vec<T>, Error> {
        let len = self.scalar::<u64>()?;
        let len = usize::try_from(len).map_err(|_| corrupt(format!("{what}: length {len}")))?;
        if expected.is_some_and(|e| e != len) || len > max {
            return Err(corrupt(format!(
                "{what}: {len} elements, expected {}",
                expected.map_or(format!("at most {max}"), |e| e.to_string())
            )));
        }
        // Grows with the data actually read, so a lying length on a short input costs nothing.
        let mut out = Vec::with_capacity(len.min(CHUNK_BYTES / T::SIZE));
        let mut buf = vec![0u8; CHUNK_BYTES.min(len.saturating_mul(T::SIZE))];
        let mut left = len;
        while left > 0 {
            let take = left.min(CHUNK_BYTES / T::SIZE);
            let bytes = &mut buf[..take * T::SIZE];
            self.bytes(bytes)?;
            out.extend(bytes.chunks_exact(T::SIZE).map(T::get));
            left -= take;
        }
        Ok(out)
    }

    fn floats(&mut self, what: &str, expected: usize) -> Result<Vec<f32>, Error> {
        let v: Vec<f32> = self.array(what, Some(expected), expected)?;
        if v.iter().any(|x| !x.is_finite()) {
            return Err(corrupt(format!("{what}: non-finite value")));
        }
        Ok(v)
    }

    fn sparse(&mut self, what: &str, n: usize) -> Result<SparseRows, Error> {
        let indptr: Vec<u64> = self.array(what, Some(n + 1), n + 1)?;
        let max_nnz = n.saturating_mul(n);
        let indptr: Vec<usize> = indptr
            .into_iter()
            .map(|p| usize::try_from(p).unwrap_or(usize::MAX))
            .collect();
        let cols: Vec<u32> = self.array(what, None, max_nnz)?;
        let vals: Vec<f32> = self.array(what, Some(cols.len()), max_nnz)?;
        SparseRows::from_parts(n, n, indptr, cols, vals)
            .map_err(|e| corrupt(format!("{what}: {e}")))
    }

    fn scorer(&mut self, config: &AlgorithmConfig, n: usize) -> Result<Scorer, Error> {
        Ok(match config {
            AlgorithmConfig::Popularity { .. } => Scorer::Popularity,
            AlgorithmConfig::ItemKnn { .. } | AlgorithmConfig::Rp3Beta { .. } => {
                Scorer::Neighbours(self.sparse(config.name(), n)?)
            }
            AlgorithmConfig::Ease { .. } => {
                let len = n
                    .checked_mul(n)
                    .ok_or_else(|| corrupt("ease: too many items"))?;
                Scorer::Ease(self.floats("ease weights", len)?)
            }
            &AlgorithmConfig::Ials { factors, alpha, .. } => {
                let len = n
                    .checked_mul(factors)
                    .ok_or_else(|| corrupt("ials: too many items"))?;
                let item_factors = self.floats("ials item factors", len)?;
                let gram: Vec<f64> =
                    self.array("ials gram", Some(factors * factors), factors * factors)?;
                if gram.iter().any(|x| !x.is_finite()) {
                    return Err(corrupt("ials gram: non-finite value"));
                }
                Scorer::Ials(IalsModel::from_parts(factors, alpha, item_factors, gram))
            }
            AlgorithmConfig::Blend { members } => Scorer::Blend(
                members
                    .iter()
                    .map(|m| Ok((m.weight, self.scorer(&m.config, n)?)))
                    .collect::<Result<_, Error>>()?,
            ),
        })
    }
}

pub(crate) fn write_model<W: Write>(model: &Model, w: &mut W) -> io::Result<()> {
    let mut out = HashingWriter {
        inner: w,
        hash: Fnv::new(),
        buf: Vec::new(),
    };
    out.bytes(MAGIC)?;
    out.scalar(FORMAT_VERSION)?;
    let config = serde_json::to_vec(model.config()).map_err(io::Error::other)?;
    out.scalar(config.len() as u32)?;
    out.bytes(&config)?;
    let (popularity, similar, scorer) = model.parts();
    out.array(popularity)?;
    out.sparse(similar)?;
    out.scorer(scorer)?;
    let checksum = out.hash.0;
    out.inner.write_all(&checksum.to_le_bytes())?;
    out.inner.flush()
}

pub(crate) fn read_model<R: Read>(r: &mut R) -> Result<Model, Error> {
    let mut input = HashingReader {
        inner: r,
        hash: Fnv::new(),
    };
    let mut magic = [0u8; 8];
    input.bytes(&mut magic)?;
    if &magic != MAGIC {
        return Err(corrupt("not a Marquee model file (bad magic)"));
    }
    let version: u32 = input.scalar()?;
    if version != FORMAT_VERSION {
        return Err(Error::InvalidModelFile(format!(
            "unsupported model format version {version} (this build reads {FORMAT_VERSION})"
        )));
    }
    let config_len: u32 = input.scalar()?;
    if config_len > MAX_CONFIG_BYTES {
        return Err(corrupt(format!("config of {config_len} bytes")));
    }
    let mut config = vec![0u8; config_len as usize];
    input.bytes(&mut config)?;
    let config: AlgorithmConfig =
        serde_json::from_slice(&config).map_err(|e| corrupt(format!("config: {e}")))?;
    config
        .validate()
        .map_err(|e| corrupt(format!("config: {e}")))?;
    let popularity: Vec<f32> = input.array("popularity", None, usize::MAX / 8)?;
    if popularity.iter().any(|x| !x.is_finite()) {
        return Err(corrupt("popularity: non-finite value"));
    }
    let n = popularity.len();
    if n > u32::MAX as usize {
        return Err(corrupt("more items than u32 indices"));
    }
    let similar = input.sparse("similar items", n)?;
    let scorer = input.scorer(&config, n)?;
    let computed = input.hash.0;
    let mut stored = [0u8; 8];
    input.inner.read_exact(&mut stored).map_err(io_error)?;
    if u64::from_le_bytes(stored) != computed {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(Model::from_parts(config, popularity, similar, scorer))
}
