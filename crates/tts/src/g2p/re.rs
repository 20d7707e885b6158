//! Thin layer over `fancy_regex` (the G2P patterns use look-around, as Python's `re` does) with
//! Python's `re.sub` / `findall` / `split` shapes, and errors instead of panics.

use fancy_regex::{Captures, Regex, RegexBuilder};

use crate::Error;

/// A compiled pattern. Compiling happens once, at load time; a pattern that does not compile is a
/// bug, reported as an error rather than a panic.
pub struct Re(Regex);

/// Backtracking steps allowed per search. fancy-regex counts them over the whole scan of a text, so
/// its default (1M) trips on long (but harmless) sentences; the patterns here have no nested
/// quantifiers, and sentences are bounded in length (`crate::MAX_SENTENCE_CHARS`).
const BACKTRACK_LIMIT: usize = 100_000_000;

fn runtime(e: fancy_regex::Error) -> Error {
    Error::Text(e.to_string())
}

impl Re {
    pub fn new(pattern: &str) -> Result<Re, Error> {
        RegexBuilder::new(pattern)
            .backtrack_limit(BACKTRACK_LIMIT)
            .build()
            .map(Re)
            .map_err(|e| Error::Text(format!("pattern {pattern:?}: {e}")))
    }

    /// `re.sub(pattern, f, text)`: `f` gets the captures and the whole text.
    pub fn sub(
        &self,
        text: &str,
        mut f: impl FnMut(&Captures<'_>, &str) -> String,
    ) -> Result<String, Error> {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for caps in self.0.captures_iter(text) {
            let caps = caps.map_err(runtime)?;
            let Some(m) = caps.get(0) else { continue };
            out.push_str(&text[last..m.start()]);
            out.push_str(&f(&caps, text));
            last = m.end();
        }
        out.push_str(&text[last..]);
        Ok(out)
    }

    /// `re.sub(pattern, literal, text)`.
    pub fn replace(&self, text: &str, with: &str) -> Result<String, Error> {
        self.sub(text, |_, _| with.to_string())
    }

    /// Match spans, left to right (`finditer`).
    pub fn spans(&self, text: &str) -> Result<Vec<(usize, usize)>, Error> {
        self.0
            .find_iter(text)
            .map(|m| m.map(|m| (m.start(), m.end())).map_err(runtime))
            .collect()
    }

    /// `re.findall` for a pattern without groups.
    pub fn find_all<'t>(&self, text: &'t str) -> Result<Vec<&'t str>, Error> {
        Ok(self
            .spans(text)?
            .into_iter()
            .map(|(a, b)| &text[a..b])
            .collect())
    }

    /// Captures of every match (`finditer` with groups).
    pub fn captures_all<'t>(&self, text: &'t str) -> Result<Vec<Captures<'t>>, Error> {
        self.0
            .captures_iter(text)
            .map(|c| c.map_err(runtime))
            .collect()
    }

    /// The first match's span (`search`).
    pub fn search(&self, text: &str) -> Result<Option<(usize, usize)>, Error> {
        Ok(self
            .0
            .find(text)
            .map_err(runtime)?
            .map(|m| (m.start(), m.end())))
    }

    pub fn is_match(&self, text: &str) -> Result<bool, Error> {
        self.0.is_match(text).map_err(runtime)
    }
}

/// `"|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))`.
pub fn alternation<S: AsRef<str>>(words: &[S]) -> String {
    let mut sorted: Vec<&str> = words.iter().map(AsRef::as_ref).collect();
    sorted.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
    sorted
        .iter()
        .map(|w| fancy_regex::escape(w).into_owned())
        .collect::<Vec<_>>()
        .join("|")
}

/// A capture group's text, or "" when it did not take part.
pub fn group<'t>(caps: &Captures<'t>, i: usize) -> &'t str {
    caps.get(i).map_or("", |m| m.as_str())
}
