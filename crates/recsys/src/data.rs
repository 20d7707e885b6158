//! Loaders for the public rating datasets used to evaluate Marquee (MovieLens, Last.fm, …).
//!
//! External ids are kept as strings and mapped to dense `u32` indices in order of first
//! appearance, so the same file always yields the same indices.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// A ratings file mapped to dense indices.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ratings {
    /// External user id of each user index.
    pub users: Vec<String>,
    /// External item id of each item index.
    pub items: Vec<String>,
    /// `(user index, item index, value, unix timestamp)`, in file order; timestamp 0 when absent.
    pub triples: Vec<(u32, u32, f32, i64)>,
}

/// File layouts understood by [`load`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// MovieLens 100K `u.data`: `user \t item \t rating \t timestamp`, no header.
    Movielens100k,
    /// MovieLens CSV (`ratings.csv`): header `userId,movieId,rating,timestamp`, comma-separated.
    MovielensCsv,
    /// Whitespace- or tab-separated `user item value [timestamp]`; an optional header line is
    /// recognised by its value field not being a number (e.g. Last.fm's `userID artistID weight`).
    Triples,
}

/// Why a file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Malformed {
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        message: String,
    },
}

#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn get(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.ids.insert(s.to_owned(), i);
        self.names.push(s.to_owned());
        i
    }
}

/// Loads `path` in `format`. Blank lines are skipped; any other line that does not parse is an
/// error naming the file and its 1-based line number.
pub fn load(path: &Path, format: Format) -> Result<Ratings, DataError> {
    let io = |source| DataError::Io {
        path: path.to_owned(),
        source,
    };
    let reader = BufReader::new(File::open(path).map_err(io)?);
    let mut users = Interner::default();
    let mut items = Interner::default();
    let mut triples = Vec::new();
    let mut seen_content = false;
    for (idx, line) in reader.lines().enumerate() {
        let line = line.map_err(io)?;
        let lineno = idx + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let first = !seen_content;
        seen_content = true;
        let malformed = |message: String| DataError::Malformed {
            path: path.to_owned(),
            line: lineno,
            message,
        };
        let fields: Vec<&str> = match format {
            Format::MovielensCsv => line.split(',').map(str::trim).collect(),
            Format::Movielens100k | Format::Triples => line.split_whitespace().collect(),
        };
        let (min, max) = match format {
            Format::Movielens100k | Format::MovielensCsv => (4, 4),
            Format::Triples => (3, 4),
        };
        let is_header = first
            && match format {
                Format::MovielensCsv => fields
                    .first()
                    .is_some_and(|f| f.eq_ignore_ascii_case("userId")),
                Format::Triples => fields.get(2).is_some_and(|f| f.parse::<f32>().is_err()),
                Format::Movielens100k => false,
            };
        if is_header {
            continue;
        }
        if fields.len() < min || fields.len() > max {
            return Err(malformed(format!(
                "expected {} fields, found {}",
                if min == max {
                    min.to_string()
                } else {
                    format!("{min} to {max}")
                },
                fields.len()
            )));
        }
        if fields[0].is_empty() || fields[1].is_empty() {
            return Err(malformed("empty user or item id".into()));
        }
        let value: f32 = fields[2]
            .parse()
            .ok()
            .filter(|v: &f32| v.is_finite())
            .ok_or_else(|| malformed(format!("value {:?} is not a finite number", fields[2])))?;
        let ts: i64 = match fields.get(3) {
            Some(t) => t
                .parse()
                .map_err(|_| malformed(format!("timestamp {t:?} is not an integer")))?,
            None => 0,
        };
        triples.push((users.get(fields[0]), items.get(fields[1]), value, ts));
    }
    Ok(Ratings {
        users: users.names,
        items: items.names,
        triples,
    })
}
