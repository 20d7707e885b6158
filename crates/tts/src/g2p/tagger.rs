//! Averaged-perceptron part-of-speech tagger (Penn Treebank tags; hibari `tagger.py`) with the
//! weights in `tagger.json.gz`. It was trained on spaCy's tags so the lexicon's part-of-speech
//! entries ("read", "live", "record") and function-word rules get the reference pipeline's answers.
//! A word with one dominant tag is answered from the tag dictionary, everything else by summing the
//! weights of its context features (in the same order as the Python, so float ties resolve alike).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use super::pystr;
use crate::Error;
use crate::assets::read_json;

#[derive(Deserialize)]
struct Model {
    tags: Vec<String>,
    tagdict: HashMap<String, String>,
    #[serde(default)]
    vocab: Option<Vec<String>>,
    weights: HashMap<String, HashMap<String, f64>>,
}

pub struct Tagger {
    tags: Vec<String>,
    tagdict: HashMap<String, String>,
    vocab: Option<HashSet<String>>,
    /// feature -> (index into `tags`, weight)
    weights: HashMap<String, Vec<(usize, f64)>>,
}

const START: [&str; 2] = ["-START2-", "-START-"];
const END: [&str; 2] = ["-END-", "-END2-"];

fn norm(w: &str) -> String {
    if w.contains('-') && !w.starts_with('-') {
        "!HYPHEN".into()
    } else if pystr::is_digit_str(w) && pystr::char_len(w) == 4 {
        "!YEAR".into()
    } else if w.chars().next().is_some_and(pystr::char_is_digit) {
        "!DIGITS".into()
    } else {
        pystr::lower(w)
    }
}

fn shape(w: &str) -> String {
    if pystr::is_alpha(w) {
        if pystr::is_lower(w) {
            "x".into()
        } else if pystr::is_upper(w) {
            if pystr::char_len(w) > 1 {
                "XX".into()
            } else {
                "X1".into()
            }
        } else if w.chars().next().is_some_and(char::is_uppercase)
            && pystr::is_lower(pystr::tail(w))
        {
            "Xx".into()
        } else {
            "xX".into()
        }
    } else if pystr::is_digit_str(w) {
        "d".into()
    } else {
        pystr::first_chars(w, 4)
            .chars()
            .map(|c| {
                if pystr::char_is_digit(c) {
                    'd'
                } else if c.is_alphabetic() {
                    'x'
                } else {
                    c
                }
            })
            .collect()
    }
}

impl Tagger {
    pub fn load(dir: &Path) -> Result<Tagger, Error> {
        let m: Model = read_json(dir, "tagger.json.gz")?;
        let index: HashMap<&str, usize> = m
            .tags
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i))
            .collect();
        let weights = m
            .weights
            .into_iter()
            .map(|(feature, ws)| {
                let ws = ws
                    .into_iter()
                    .filter_map(|(tag, w)| index.get(tag.as_str()).map(|&i| (i, w)))
                    .collect();
                (feature, ws)
            })
            .collect();
        Ok(Tagger {
            vocab: m.vocab.map(|v| v.into_iter().collect()),
            tagdict: m.tagdict,
            weights,
            tags: m.tags,
        })
    }

    /// One tag per word.
    pub fn tag(&self, words: &[&str]) -> Vec<String> {
        let mut ctx: Vec<String> = START.iter().map(|s| s.to_string()).collect();
        for w in words {
            let n = norm(w);
            let known = self.vocab.as_ref().is_none_or(|v| v.contains(&n));
            ctx.push(if known { n } else { format!("<{}>", shape(w)) });
        }
        ctx.extend(END.iter().map(|s| s.to_string()));
        let mut prev = START[1].to_string();
        let mut prev2 = START[0].to_string();
        let mut tags = Vec::with_capacity(words.len());
        let mut scores = vec![0.0f64; self.tags.len()];
        let mut seen = vec![false; self.tags.len()];
        for (i, w) in words.iter().enumerate() {
            let tag = match self.tagdict.get(*w) {
                Some(t) => t.clone(),
                None => {
                    let j = i + 2;
                    let features = [
                        "b".to_string(),
                        format!("s3={}", pystr::last_chars(w, 3)),
                        format!("p1={}", w.chars().next().unwrap_or(' ')),
                        format!("w={}", ctx[j]),
                        format!("sh={}", shape(w)),
                        if i == 0 { "i0".into() } else { "i+".into() },
                        format!("t-1={prev}"),
                        format!("t-2={prev2}"),
                        format!("t-12={prev},{prev2}"),
                        format!("w-1={}", ctx[j - 1]),
                        format!("s3-1={}", pystr::last_chars(&ctx[j - 1], 3)),
                        format!("w-2={}", ctx[j - 2]),
                        format!("w+1={}", ctx[j + 1]),
                        format!("s3+1={}", pystr::last_chars(&ctx[j + 1], 3)),
                        format!("w+2={}", ctx[j + 2]),
                    ];
                    self.predict(&features, &mut scores, &mut seen)
                }
            };
            prev2 = std::mem::replace(&mut prev, tag.clone());
            tags.push(tag);
        }
        tags
    }

    fn predict(&self, features: &[String], scores: &mut [f64], seen: &mut [bool]) -> String {
        scores.fill(0.0);
        seen.fill(false);
        for f in features {
            if let Some(ws) = self.weights.get(f) {
                for &(t, w) in ws {
                    scores[t] += w;
                    seen[t] = true;
                }
            }
        }
        if !seen.iter().any(|&s| s) {
            return "NN".into();
        }
        // max by (score, tag name), as Python's max(tags, key=lambda t: (scores.get(t, 0), t))
        let mut best = 0;
        for t in 1..self.tags.len() {
            let better = scores[t] > scores[best]
                || (scores[t] == scores[best] && self.tags[t] > self.tags[best]);
            if better {
                best = t;
            }
        }
        self.tags[best].clone()
    }
}
