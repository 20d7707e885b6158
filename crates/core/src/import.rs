//! Readers for datasets people load into Marquee: MovieLens (100K and the `latest` CSV layout,
//! with titles, genres, tags) and generic CSV/TSV interaction logs.
//!
//! Each reader turns files into items and feedback rows and keeps the dataset's own ids as
//! Marquee ids, so results can be checked against the dataset. A malformed line is an error that
//! names the file and its line; nothing is half-imported.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use marquee_store::FeedbackRow;
use serde_json::{Map, Value};

use crate::types::{Item, Timestamp};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}: {message}")]
    Malformed {
        file: String,
        line: u64,
        message: String,
    },
    #[error("{0}")]
    Layout(String),
}

/// Items and feedback read from a dataset.
#[derive(Debug, Default)]
pub struct Dataset {
    pub items: Vec<Item>,
    pub feedback: Vec<FeedbackRow>,
}

/// The standard MovieLens 100K genres, in the order of `u.item`'s flags (used when `u.genre`
/// is absent).
const ML100K_GENRES: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

fn open(path: &Path) -> Result<Vec<u8>, ImportError> {
    std::fs::read(path).map_err(|source| ImportError::Io {
        path: path.to_owned(),
        source,
    })
}

fn malformed(file: &str, line: u64, message: impl Into<String>) -> ImportError {
    ImportError::Malformed {
        file: file.to_string(),
        line,
        message: message.into(),
    }
}

/// Reads a MovieLens directory: `u.data` + `u.item` (100K) or `ratings.csv` + `movies.csv`
/// (+ `tags.csv`, `links.csv`) (latest / 20M / 25M layout).
pub fn movielens_dir(dir: &Path) -> Result<Dataset, ImportError> {
    if dir.join("u.data").exists() && dir.join("u.item").exists() {
        let genres = if dir.join("u.genre").exists() {
            Some(open(&dir.join("u.genre"))?)
        } else {
            None
        };
        movielens_100k(
            &open(&dir.join("u.data"))?,
            &open(&dir.join("u.item"))?,
            genres.as_deref(),
        )
    } else if dir.join("ratings.csv").exists() && dir.join("movies.csv").exists() {
        let optional = |name: &str| -> Result<Option<Vec<u8>>, ImportError> {
            let p = dir.join(name);
            if p.exists() {
                open(&p).map(Some)
            } else {
                Ok(None)
            }
        };
        movielens_csv(
            &open(&dir.join("movies.csv"))?,
            &open(&dir.join("ratings.csv"))?,
            optional("tags.csv")?.as_deref(),
            optional("links.csv")?.as_deref(),
        )
    } else {
        Err(ImportError::Layout(format!(
            "{} holds neither u.data + u.item (MovieLens 100K) nor ratings.csv + movies.csv (MovieLens latest)",
            dir.display()
        )))
    }
}

/// `u.item` is Latin-1; every byte maps to the code point of the same value.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

/// `01-Jan-1995` → Unix ms.
fn parse_ml_date(s: &str) -> Option<i64> {
    let mut parts = s.split('-');
    let day: u8 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i32 = parts.next()?.parse().ok()?;
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1000)
}

/// The release year at the end of a MovieLens title, `Heat (1995)` → 1995.
fn title_year(title: &str) -> Option<i64> {
    let t = title.trim_end();
    let inner = t.strip_suffix(')')?;
    let open = inner.rfind('(')?;
    let year = &inner[open + 1..];
    (year.len() == 4).then(|| year.parse().ok()).flatten()
}

fn movie(id: String, title: String, categories: Vec<String>, metadata: Map<String, Value>) -> Item {
    Item {
        id,
        title: Some(title),
        categories,
        tags: Vec::new(),
        description: None,
        metadata,
        published_at: None,
        available_from: None,
        available_until: None,
        hidden: false,
        updated_at: Timestamp::now(),
    }
}

/// MovieLens 100K from the bytes of `u.data`, `u.item` and optionally `u.genre`.
pub fn movielens_100k(
    u_data: &[u8],
    u_item: &[u8],
    u_genre: Option<&[u8]>,
) -> Result<Dataset, ImportError> {
    let genres: Vec<String> = match u_genre {
        Some(bytes) => {
            let text = latin1(bytes);
            let mut by_index: Vec<(usize, String)> = Vec::new();
            for (n, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let (name, index) = line
                    .rsplit_once('|')
                    .ok_or_else(|| malformed("u.genre", n as u64 + 1, "expected name|index"))?;
                let index: usize = index
                    .trim()
                    .parse()
                    .map_err(|_| malformed("u.genre", n as u64 + 1, "bad index"))?;
                by_index.push((index, name.to_string()));
            }
            by_index.sort();
            by_index.into_iter().map(|(_, n)| n).collect()
        }
        None => ML100K_GENRES.iter().map(|s| s.to_string()).collect(),
    };
    let mut items = Vec::new();
    for (n, line) in latin1(u_item).lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let line_no = n as u64 + 1;
        let fields: Vec<&str> = line.split('|').collect();
        if fields.len() < 5 + genres.len() {
            return Err(malformed(
                "u.item",
                line_no,
                format!(
                    "expected {} fields, found {}",
                    5 + genres.len(),
                    fields.len()
                ),
            ));
        }
        let id = fields[0].trim();
        if id.parse::<u64>().is_err() {
            return Err(malformed("u.item", line_no, "movie id is not a number"));
        }
        let categories: Vec<String> = genres
            .iter()
            .enumerate()
            .filter(|(g, _)| fields[5 + g].trim() == "1")
            .map(|(_, name)| name.clone())
            .filter(|name| name != "unknown")
            .collect();
        let title = fields[1].to_string();
        let mut metadata = Map::new();
        if let Some(year) = title_year(&title) {
            metadata.insert("year".into(), year.into());
        }
        if !fields[4].is_empty() {
            metadata.insert("imdb_url".into(), fields[4].into());
        }
        let mut item = movie(id.to_string(), title, categories, metadata);
        item.published_at = parse_ml_date(fields[2].trim()).map(Timestamp);
        items.push(item);
    }
    let mut feedback = Vec::new();
    let text = std::str::from_utf8(u_data).map_err(|_| malformed("u.data", 0, "not UTF-8"))?;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let line_no = n as u64 + 1;
        if f.len() != 4 {
            return Err(malformed(
                "u.data",
                line_no,
                "expected user, item, rating, timestamp",
            ));
        }
        let value: f64 = f[2]
            .parse()
            .map_err(|_| malformed("u.data", line_no, "rating is not a number"))?;
        let ts: i64 = f[3]
            .parse()
            .map_err(|_| malformed("u.data", line_no, "timestamp is not a number"))?;
        feedback.push(FeedbackRow {
            user_id: f[0].to_string(),
            item_id: f[1].to_string(),
            kind: "rating".into(),
            value: Some(value),
            timestamp: ts * 1000,
        });
    }
    Ok(Dataset { items, feedback })
}

fn csv_records(bytes: &[u8], delimiter: u8) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes)
}

fn header_index(headers: &csv::StringRecord, file: &str, name: &str) -> Result<usize, ImportError> {
    headers
        .iter()
        .position(|h| h.trim() == name)
        .ok_or_else(|| malformed(file, 1, format!("missing column {name:?}")))
}

/// MovieLens `latest` layout from the bytes of `movies.csv`, `ratings.csv` and optionally
/// `tags.csv` (tags become item tags) and `links.csv` (IMDb/TMDB ids into metadata).
pub fn movielens_csv(
    movies: &[u8],
    ratings: &[u8],
    tags: Option<&[u8]>,
    links: Option<&[u8]>,
) -> Result<Dataset, ImportError> {
    let mut links_by_movie: HashMap<String, (String, String)> = HashMap::new();
    if let Some(bytes) = links {
        let mut r = csv_records(bytes, b',');
        let h = r
            .headers()
            .map_err(|e| malformed("links.csv", 1, e.to_string()))?
            .clone();
        let (m, imdb, tmdb) = (
            header_index(&h, "links.csv", "movieId")?,
            header_index(&h, "links.csv", "imdbId")?,
            header_index(&h, "links.csv", "tmdbId")?,
        );
        for (n, rec) in r.records().enumerate() {
            let rec = rec.map_err(|e| malformed("links.csv", n as u64 + 2, e.to_string()))?;
            links_by_movie.insert(
                rec[m].to_string(),
                (rec[imdb].to_string(), rec[tmdb].to_string()),
            );
        }
    }
    let mut tags_by_movie: HashMap<String, BTreeMap<String, usize>> = HashMap::new();
    if let Some(bytes) = tags {
        let mut r = csv_records(bytes, b',');
        let h = r
            .headers()
            .map_err(|e| malformed("tags.csv", 1, e.to_string()))?
            .clone();
        let (m, t) = (
            header_index(&h, "tags.csv", "movieId")?,
            header_index(&h, "tags.csv", "tag")?,
        );
        for (n, rec) in r.records().enumerate() {
            let rec = rec.map_err(|e| malformed("tags.csv", n as u64 + 2, e.to_string()))?;
            let tag = rec[t].trim();
            if !tag.is_empty() && tag.len() <= 256 && !tag.chars().any(char::is_control) {
                *tags_by_movie
                    .entry(rec[m].to_string())
                    .or_default()
                    .entry(tag.to_string())
                    .or_default() += 1;
            }
        }
    }

    let mut items = Vec::new();
    let mut r = csv_records(movies, b',');
    let h = r
        .headers()
        .map_err(|e| malformed("movies.csv", 1, e.to_string()))?
        .clone();
    let (mi, ti, gi) = (
        header_index(&h, "movies.csv", "movieId")?,
        header_index(&h, "movies.csv", "title")?,
        header_index(&h, "movies.csv", "genres")?,
    );
    for (n, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| malformed("movies.csv", n as u64 + 2, e.to_string()))?;
        let id = rec[mi].trim().to_string();
        let title = rec[ti].trim().to_string();
        let categories: Vec<String> = rec[gi]
            .split('|')
            .map(str::trim)
            .filter(|g| !g.is_empty() && *g != "(no genres listed)")
            .map(str::to_string)
            .collect();
        let mut metadata = Map::new();
        if let Some(year) = title_year(&title) {
            metadata.insert("year".into(), year.into());
        }
        if let Some((imdb, tmdb)) = links_by_movie.get(&id) {
            if !imdb.is_empty() {
                metadata.insert("imdb_id".into(), format!("tt{imdb}").into());
            }
            if let Ok(t) = tmdb.parse::<i64>() {
                metadata.insert("tmdb_id".into(), t.into());
            }
        }
        let mut item = movie(id, title, categories, metadata);
        if let Some(tags) = tags_by_movie.remove(&item.id) {
            // Most used first, at most 256 per item.
            let mut tags: Vec<(String, usize)> = tags.into_iter().collect();
            tags.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            item.tags = tags.into_iter().take(256).map(|(t, _)| t).collect();
        }
        items.push(item);
    }

    let mut feedback = Vec::new();
    let mut r = csv_records(ratings, b',');
    let h = r
        .headers()
        .map_err(|e| malformed("ratings.csv", 1, e.to_string()))?
        .clone();
    let (ui, mi, ri, tsi) = (
        header_index(&h, "ratings.csv", "userId")?,
        header_index(&h, "ratings.csv", "movieId")?,
        header_index(&h, "ratings.csv", "rating")?,
        header_index(&h, "ratings.csv", "timestamp")?,
    );
    for (n, rec) in r.records().enumerate() {
        let line = n as u64 + 2;
        let rec = rec.map_err(|e| malformed("ratings.csv", line, e.to_string()))?;
        let value: f64 = rec[ri]
            .trim()
            .parse()
            .map_err(|_| malformed("ratings.csv", line, "rating is not a number"))?;
        let ts: i64 = rec[tsi]
            .trim()
            .parse()
            .map_err(|_| malformed("ratings.csv", line, "timestamp is not a number"))?;
        feedback.push(FeedbackRow {
            user_id: rec[ui].trim().to_string(),
            item_id: rec[mi].trim().to_string(),
            kind: "rating".into(),
            value: Some(value),
            timestamp: ts * 1000,
        });
    }
    Ok(Dataset { items, feedback })
}

/// Options for a generic interactions file.
#[derive(Clone, Debug)]
pub struct InteractionsFormat {
    /// Field separator; `None` guesses from the first line (tab, comma, semicolon, whitespace).
    pub delimiter: Option<u8>,
    /// Feedback type for rows without a type column.
    pub default_type: String,
}

impl Default for InteractionsFormat {
    fn default() -> Self {
        InteractionsFormat {
            delimiter: None,
            default_type: "view".into(),
        }
    }
}

/// A generic CSV/TSV interaction log: columns `user`, `item`, and optionally `type`, `value`,
/// `timestamp` (Unix seconds or RFC 3339). A header row names them (common spellings such as
/// `user_id`, `userId`, `item_id`, `movieId`, `rating`, `weight` are recognised); without a
/// header the columns are taken as `user item [value [timestamp]]`. Items not otherwise known
/// are created with their id as the only information.
pub fn interactions_file(path: &Path, format: &InteractionsFormat) -> Result<Dataset, ImportError> {
    let bytes = open(path)?;
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    interactions(&bytes, &file, format)
}

pub fn interactions(
    bytes: &[u8],
    file: &str,
    format: &InteractionsFormat,
) -> Result<Dataset, ImportError> {
    let text = std::str::from_utf8(bytes).map_err(|_| malformed(file, 0, "not UTF-8"))?;
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let delimiter = format.delimiter.unwrap_or_else(|| {
        [b'\t', b',', b';']
            .into_iter()
            .find(|d| first.as_bytes().contains(d))
            .unwrap_or(b' ')
    });
    let split = |line: &str| -> Vec<String> {
        if delimiter == b' ' {
            line.split_whitespace().map(str::to_string).collect()
        } else if !line.contains('"') {
            // No quoting: a plain split (a CSV reader per line would allocate its buffers each time).
            line.split(delimiter as char)
                .map(|f| f.trim().to_string())
                .collect()
        } else {
            let mut r = csv::ReaderBuilder::new()
                .delimiter(delimiter)
                .has_headers(false)
                .from_reader(line.as_bytes());
            r.records()
                .next()
                .and_then(Result::ok)
                .map(|rec| rec.iter().map(|s| s.trim().to_string()).collect())
                .unwrap_or_default()
        }
    };
    let head = split(first);
    let lower: Vec<String> = head.iter().map(|h| h.to_lowercase()).collect();
    let find = |names: &[&str]| lower.iter().position(|h| names.contains(&h.as_str()));
    let user_col = find(&["user", "user_id", "userid", "uid"]);
    let item_col = find(&[
        "item",
        "item_id",
        "itemid",
        "movieid",
        "movie_id",
        "artistid",
        "artist_id",
        "product_id",
    ]);
    let has_header = user_col.is_some()
        || item_col.is_some()
        || head.get(2).is_some_and(|v| v.parse::<f64>().is_err());
    let (u, i, t, v, ts) = if has_header {
        (
            user_col.ok_or_else(|| malformed(file, 1, "no user column (user, user_id, userId)"))?,
            item_col
                .ok_or_else(|| malformed(file, 1, "no item column (item, item_id, movieId, …)"))?,
            find(&["type", "feedback_type", "event", "kind"]),
            find(&["value", "rating", "weight", "score", "count", "plays"]),
            find(&["timestamp", "ts", "time", "date"]),
        )
    } else {
        (
            0,
            1,
            None,
            (head.len() > 2).then_some(2),
            (head.len() > 3).then_some(3),
        )
    };
    let mut feedback = Vec::new();
    let mut items: Vec<Item> = Vec::new();
    let mut known = std::collections::HashSet::new();
    let now = Timestamp::now();
    for (n, line) in text
        .lines()
        .enumerate()
        .skip(if has_header { 1 } else { 0 })
    {
        if line.trim().is_empty() {
            continue;
        }
        let line_no = n as u64 + 1;
        let f = split(line);
        let get = |c: usize| {
            f.get(c)
                .map(String::as_str)
                .ok_or_else(|| malformed(file, line_no, format!("missing column {}", c + 1)))
        };
        let user = get(u)?;
        let item = get(i)?;
        for (name, id) in [("user", user), ("item", item)] {
            crate::types::validate_id(name, id)
                .map_err(|e| malformed(file, line_no, e.to_string()))?;
        }
        let value = match v {
            Some(c) => Some(
                get(c)?
                    .parse::<f64>()
                    .map_err(|_| malformed(file, line_no, "value is not a number"))?,
            ),
            None => None,
        };
        let timestamp = match ts {
            Some(c) => {
                let raw = get(c)?;
                match raw.parse::<f64>() {
                    Ok(s) if s.is_finite() => (s * 1000.0) as i64,
                    _ => {
                        Timestamp::parse_rfc3339(raw)
                            .ok_or_else(|| {
                                malformed(
                                    file,
                                    line_no,
                                    "timestamp is neither Unix seconds nor RFC 3339",
                                )
                            })?
                            .0
                    }
                }
            }
            None => now.0,
        };
        let kind = match t {
            Some(c) => get(c)?.to_string(),
            None if v.is_some() && lower.get(v.unwrap_or(0)).is_some_and(|h| h == "rating") => {
                "rating".into()
            }
            None => format.default_type.clone(),
        };
        if known.insert(item.to_string()) {
            let mut it = movie(item.to_string(), String::new(), Vec::new(), Map::new());
            it.title = None;
            it.updated_at = now;
            items.push(it);
        }
        feedback.push(FeedbackRow {
            user_id: user.to_string(),
            item_id: item.to_string(),
            kind,
            value,
            timestamp,
        });
    }
    Ok(Dataset { items, feedback })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ml100k_items_carry_genres_dates_and_years() {
        let item =
            b"50|Star Wars (1977)|01-Jan-1977||http://x|0|1|1|0|0|0|0|0|0|0|0|0|0|0|1|1|0|1|0\n";
        let data = b"1\t50\t5\t874965954\n";
        let d = movielens_100k(data, item, None).unwrap();
        assert_eq!(d.items[0].title.as_deref(), Some("Star Wars (1977)"));
        assert_eq!(
            d.items[0].categories,
            ["Action", "Adventure", "Romance", "Sci-Fi", "War"]
        );
        assert_eq!(d.items[0].metadata["year"], 1977);
        assert_eq!(d.items[0].published_at, Some(Timestamp(220_924_800_000)));
        assert_eq!(d.feedback[0].value, Some(5.0));
        assert_eq!(d.feedback[0].timestamp, 874_965_954_000);
    }

    #[test]
    fn malformed_lines_are_reported_with_their_number() {
        let err = movielens_100k(b"1\t2\t3\t4\n1\t2\tx\t4\n", b"", None).unwrap_err();
        assert_eq!(err.to_string(), "u.data:2: rating is not a number");
        let err = movielens_csv(
            b"movieId,title,genres\n1,A,B\n",
            b"userId,movieId,rating,timestamp\n1,1,4,5\n1,1\n",
            None,
            None,
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("ratings.csv:3:"), "{err}");
    }

    #[test]
    fn movielens_csv_reads_quoted_titles_tags_and_links() {
        let movies = b"movieId,title,genres\n11,\"American President, The (1995)\",Comedy|Drama|Romance\n12,X,(no genres listed)\n";
        let ratings = b"userId,movieId,rating,timestamp\n1,11,4.5,964982703\n";
        let tags =
            b"userId,movieId,tag,timestamp\n1,11,politics,1\n2,11,politics,2\n2,11,funny,2\n";
        let links = b"movieId,imdbId,tmdbId\n11,0112346,9087\n12,1,\n";
        let d = movielens_csv(movies, ratings, Some(tags), Some(links)).unwrap();
        assert_eq!(
            d.items[0].title.as_deref(),
            Some("American President, The (1995)")
        );
        assert_eq!(d.items[0].categories, ["Comedy", "Drama", "Romance"]);
        assert_eq!(d.items[0].tags, ["politics", "funny"]);
        assert_eq!(d.items[0].metadata["tmdb_id"], 9087);
        assert!(d.items[1].categories.is_empty());
        assert_eq!(d.feedback.len(), 1);
    }

    #[test]
    fn generic_interactions_with_and_without_header() {
        let with = interactions(b"user_id,item_id,type,timestamp\nu1,i1,like,1700000000\nu2,i1,view,2023-11-14T22:13:20Z\n", "x.csv", &InteractionsFormat::default()).unwrap();
        assert_eq!(with.feedback.len(), 2);
        assert_eq!(with.items.len(), 1);
        assert_eq!(with.feedback[0].kind, "like");
        assert_eq!(with.feedback[0].timestamp, with.feedback[1].timestamp);
        let without = interactions(
            b"u1\ti1\t3.5\nu1\ti2\t1\n",
            "x.tsv",
            &InteractionsFormat::default(),
        )
        .unwrap();
        assert_eq!(without.feedback[0].value, Some(3.5));
        assert_eq!(without.feedback[0].kind, "view");
        let lastfm = interactions(
            b"userID\tartistID\tweight\n2\t51\t13883\n",
            "user_artists.dat",
            &InteractionsFormat::default(),
        )
        .unwrap();
        assert_eq!(lastfm.feedback[0].item_id, "51");
        assert_eq!(lastfm.feedback[0].value, Some(13883.0));
        let quoted = interactions(
            b"user,item,type\n\"doe, jane\",i1,like\nbob,i2,view\n",
            "q.csv",
            &InteractionsFormat::default(),
        )
        .unwrap();
        assert_eq!(quoted.feedback[0].user_id, "doe, jane");
        assert_eq!(quoted.feedback[1].user_id, "bob");
        let bad = interactions(
            b"user,item,value\nu1,i1,abc\n",
            "bad.csv",
            &InteractionsFormat::default(),
        )
        .unwrap_err();
        assert_eq!(bad.to_string(), "bad.csv:2: value is not a number");
    }
}
