//! misaki's English lexicon logic (misaki 0.9.4 `en.py`, Apache-2.0, via hibari `lexicon.py`), so
//! text is read the way the acoustic model was trained to hear it: gold then silver dictionaries,
//! part-of-speech entries, function words that depend on the next word ("the" before a vowel),
//! capitalisation stress, -s/-ed/-ing suffix rules and number reading. American English only (the
//! British variants are not shipped).

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

use super::numbers as n;
use super::pystr::{self, char_len};
use crate::Error;
use crate::assets::read_json;

pub const PRIMARY_STRESS: char = 'ˈ';
pub const SECONDARY_STRESS: char = 'ˌ';
const VOWELS: &str = "AIOQWYaiuæɑɒɔəɛɜɪʊʌᵻ";
const CONSONANTS: &str = "bdfhjklmnpstvwzðŋɡɹɾʃʒʤʧθ";
const DIPHTHONGS: &str = "AIOQWYʤʧ";
const US_TAUS: &str = "AIOWYiuæɑəɛɪɹʊʌ";
const ORDINALS: [&str; 4] = ["st", "nd", "rd", "th"];

pub fn is_vowel(c: char) -> bool {
    VOWELS.contains(c)
}

pub fn is_consonant(c: char) -> bool {
    CONSONANTS.contains(c)
}

fn is_stress(c: char) -> bool {
    c == PRIMARY_STRESS || c == SECONDARY_STRESS
}

/// The currency words misaki reads after an amount: ($ -> dollar/cent, ...).
pub fn currency_units(symbol: &str) -> Option<(&'static str, &'static str)> {
    match symbol {
        "$" => Some(("dollar", "cent")),
        "£" => Some(("pound", "pence")),
        "€" => Some(("euro", "cent")),
        _ => None,
    }
}

fn symbol_word(word: &str) -> Option<&'static str> {
    match word {
        "%" => Some("percent"),
        "&" => Some("and"),
        "+" => Some("plus"),
        "@" => Some("at"),
        _ => None,
    }
}

pub fn stress_weight(ps: &str) -> usize {
    ps.chars()
        .map(|c| if DIPHTHONGS.contains(c) { 2 } else { 1 })
        .sum()
}

/// misaki `apply_stress`: lower, raise or add stress marks (`stress` None leaves `ps` alone).
pub fn apply_stress(ps: &str, stress: Option<f64>) -> String {
    let Some(stress) = stress else {
        return ps.to_string();
    };
    let has_primary = ps.contains(PRIMARY_STRESS);
    let has_any = ps.chars().any(is_stress);
    let has_vowel = ps.chars().any(is_vowel);
    if stress < -1.0 {
        ps.replace([PRIMARY_STRESS, SECONDARY_STRESS], "")
    } else if stress == -1.0 || ((stress == 0.0 || stress == -0.5) && has_primary) {
        ps.replace(SECONDARY_STRESS, "")
            .replace(PRIMARY_STRESS, &SECONDARY_STRESS.to_string())
    } else if (stress == 0.0 || stress == 0.5 || stress == 1.0) && !has_any {
        if !has_vowel {
            return ps.to_string();
        }
        restress(&format!("{SECONDARY_STRESS}{ps}"))
    } else if stress >= 1.0 && !has_primary && ps.contains(SECONDARY_STRESS) {
        ps.replace(SECONDARY_STRESS, &PRIMARY_STRESS.to_string())
    } else if stress > 1.0 && !has_any {
        if !has_vowel {
            return ps.to_string();
        }
        restress(&format!("{PRIMARY_STRESS}{ps}"))
    } else {
        ps.to_string()
    }
}

/// Moves each stress mark to just before the next vowel.
fn restress(ps: &str) -> String {
    let chars: Vec<char> = ps.chars().collect();
    let mut keyed: Vec<(f64, char)> = chars
        .iter()
        .enumerate()
        .map(|(i, &c)| (i as f64, c))
        .collect();
    for (i, &c) in chars.iter().enumerate() {
        if is_stress(c)
            && let Some(j) = (i..chars.len()).find(|&j| is_vowel(chars[j]))
        {
            keyed[i].0 = j as f64 - 0.5;
        }
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    keyed.into_iter().map(|(_, c)| c).collect()
}

/// `re.match(r"^[0-9]+$", text)`.
pub fn is_ascii_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn parent_tag(tag: &str) -> &str {
    if tag.starts_with("VB") {
        "VERB"
    } else if tag.starts_with("NN") {
        "NOUN"
    } else if tag.starts_with("ADV") || tag.starts_with("RB") {
        "ADV"
    } else if tag.starts_with("ADJ") || tag.starts_with("JJ") {
        "ADJ"
    } else {
        tag
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum Entry {
    Word(String),
    /// part-of-speech (or "DEFAULT" / "None") -> reading
    Pos(HashMap<String, Option<String>>),
}

/// A misaki dictionary, with its `grow_dictionary` done at lookup time: a lowercase key also answers
/// to its Capitalized form and vice versa, unless that form has its own entry.
pub struct Dict(HashMap<String, Entry>);

impl Dict {
    fn load(dir: &Path, name: &str) -> Result<Dict, Error> {
        Ok(Dict(read_json(dir, name)?))
    }

    pub fn get(&self, w: &str) -> Option<&Entry> {
        if let Some(v) = self.0.get(w) {
            return Some(v);
        }
        if char_len(w) < 2 {
            return None;
        }
        let lower = pystr::lower(w);
        if w == lower {
            let c = pystr::capitalize(w);
            return if c != w { self.0.get(&c) } else { None };
        }
        if w == pystr::capitalize(&lower) {
            return self.0.get(&lower);
        }
        None
    }

    pub fn contains(&self, w: &str) -> bool {
        self.get(w).is_some()
    }

    fn word(&self, w: &str) -> Option<String> {
        match self.get(w)? {
            Entry::Word(s) => Some(s.clone()),
            Entry::Pos(_) => None,
        }
    }
}

/// What the lexicon knows about the words after the current one (it reads right to left).
#[derive(Debug, Clone, Copy, Default)]
pub struct Context {
    /// Whether the next word starts with a vowel sound (None: unknown / end of clause).
    pub future_vowel: Option<bool>,
    /// The next word is "to".
    pub future_to: bool,
}

/// A reading and its confidence (misaki's rating: 5 user-given, 4 gold, 3 silver/rules, 2 guessed).
pub type Reading = (String, i32);

pub struct Lexicon {
    golds: Dict,
    silvers: Dict,
}

impl Lexicon {
    pub fn load(dir: &Path) -> Result<Lexicon, Error> {
        let golds = Dict::load(dir, "lexicon_us_gold.json.gz")?;
        let silvers = Dict::load(dir, "lexicon_us_silver.json.gz")?;
        Ok(Lexicon { golds, silvers })
    }

    fn get_nnp(&self, word: &str) -> Option<Reading> {
        let mut ps = String::new();
        for c in word.chars().filter(|c| c.is_alphabetic()) {
            ps.push_str(&self.golds.word(&c.to_uppercase().collect::<String>())?);
        }
        let ps = apply_stress(&ps, Some(0.0));
        let ps = match ps.rfind(SECONDARY_STRESS) {
            Some(i) => format!(
                "{}{PRIMARY_STRESS}{}",
                &ps[..i],
                &ps[i + SECONDARY_STRESS.len_utf8()..]
            ),
            None => ps,
        };
        Some((ps, 3))
    }

    fn get_special_case(
        &self,
        word: &str,
        tag: &str,
        stress: Option<f64>,
        ctx: &Context,
    ) -> Option<Reading> {
        if tag == "ADD" && (word == "." || word == "/") {
            let w = if word == "." { "dot" } else { "slash" };
            return self.lookup(w, None, Some(-0.5), Some(ctx));
        }
        if let Some(w) = symbol_word(word) {
            return self.lookup(w, None, None, Some(ctx));
        }
        let inner = word.trim_matches('.');
        let undotted = word.replace('.', "");
        if inner.contains('.')
            && pystr::is_alpha(&undotted)
            && word.split('.').map(char_len).max().unwrap_or(0) < 3
        {
            return self.get_nnp(word);
        }
        match word {
            "a" | "A" => return Some((if tag == "DT" { "ɐ" } else { "ˈA" }.into(), 4)),
            "am" | "Am" | "AM" => {
                if tag.starts_with("NN") {
                    return self.get_nnp(word);
                }
                if ctx.future_vowel.is_none() || word != "am" || stress.is_some_and(|s| s > 0.0) {
                    return self.golds.word("am").map(|p| (p, 4));
                }
                return Some(("ɐm".into(), 4));
            }
            "an" | "An" | "AN" => {
                if word == "AN" && tag.starts_with("NN") {
                    return self.get_nnp(word);
                }
                return Some(("ɐn".into(), 4));
            }
            "I" if tag == "PRP" => return Some((format!("{SECONDARY_STRESS}I"), 4)),
            "by" | "By" | "BY" if parent_tag(tag) == "ADV" => return Some(("bˈI".into(), 4)),
            _ => {}
        }
        if matches!(word, "to" | "To") || (word == "TO" && matches!(tag, "TO" | "IN")) {
            return match ctx.future_vowel {
                None => self.golds.word("to").map(|p| (p, 4)),
                Some(false) => Some(("tə".into(), 4)),
                Some(true) => Some(("tʊ".into(), 4)),
            };
        }
        if matches!(word, "in" | "In") || (word == "IN" && tag != "NNP") {
            let stress = if ctx.future_vowel.is_none() || tag != "IN" {
                "ˈ"
            } else {
                ""
            };
            return Some((format!("{stress}ɪn"), 4));
        }
        if matches!(word, "the" | "The") || (word == "THE" && tag == "DT") {
            return Some((
                if ctx.future_vowel == Some(true) {
                    "ði"
                } else {
                    "ðə"
                }
                .into(),
                4,
            ));
        }
        if tag == "IN" && matches!(word.to_lowercase().as_str(), "vs" | "vs.") {
            return self.lookup("versus", None, None, Some(ctx));
        }
        if matches!(word, "used" | "Used" | "USED") {
            let key = if matches!(tag, "VBD" | "JJ") && ctx.future_to {
                "VBD"
            } else {
                "DEFAULT"
            };
            if let Some(Entry::Pos(m)) = self.golds.get("used") {
                return m.get(key).cloned().flatten().map(|p| (p, 4));
            }
        }
        None
    }

    fn is_known(&self, word: &str) -> bool {
        if self.golds.contains(word) || symbol_word(word).is_some() || self.silvers.contains(word) {
            return true;
        }
        let lexicon_chars = |c: char| c == '\'' || c == '-' || c.is_ascii_alphabetic();
        if !pystr::is_alpha(word) || !word.chars().all(lexicon_chars) {
            return false;
        }
        if char_len(word) == 1 {
            return true;
        }
        if word == pystr::upper(word) && self.golds.contains(&pystr::lower(word)) {
            return true;
        }
        let rest = pystr::tail(word);
        rest == pystr::upper(rest)
    }

    pub fn lookup(
        &self,
        word: &str,
        tag: Option<&str>,
        stress: Option<f64>,
        ctx: Option<&Context>,
    ) -> Option<Reading> {
        let mut word = word.to_string();
        let mut is_nnp = false;
        if word == pystr::upper(&word) && !self.golds.contains(&word) {
            word = pystr::lower(&word);
            is_nnp = tag == Some("NNP");
        }
        let mut entry = self.golds.get(&word).map(|e| (e, 4));
        if entry.is_none() && !is_nnp {
            entry = self.silvers.get(&word).map(|e| (e, 3));
        }
        let (ps, rating) = match entry {
            None => (None, 3),
            Some((Entry::Word(s), r)) => (Some(s.clone()), r),
            Some((Entry::Pos(m), r)) => {
                let key: Option<&str> =
                    if ctx.is_some_and(|c| c.future_vowel.is_none()) && m.contains_key("None") {
                        Some("None")
                    } else if tag.is_some_and(|t| m.contains_key(t)) {
                        tag
                    } else {
                        tag.map(parent_tag)
                    };
                let ps = match key.and_then(|k| m.get(k)) {
                    Some(v) => v.clone(),
                    None => m.get("DEFAULT").cloned().flatten(),
                };
                (ps, r)
            }
        };
        match ps {
            Some(ps) if !is_nnp || ps.contains(PRIMARY_STRESS) => {
                Some((apply_stress(&ps, stress), rating))
            }
            _ => self.get_nnp(&word),
        }
    }

    fn suffix_s(stem: &str) -> Option<String> {
        let last = pystr::last_char(stem)?;
        Some(if "ptkfθ".contains(last) {
            format!("{stem}s")
        } else if "szʃʒʧʤ".contains(last) {
            format!("{stem}ᵻz")
        } else {
            format!("{stem}z")
        })
    }

    fn stem_s(
        &self,
        word: &str,
        tag: Option<&str>,
        stress: Option<f64>,
        ctx: Option<&Context>,
    ) -> Option<Reading> {
        let len = char_len(word);
        if len < 3 || !word.ends_with('s') {
            return None;
        }
        let stem = if !word.ends_with("ss") && self.is_known(pystr::drop_last_chars(word, 1)) {
            pystr::drop_last_chars(word, 1).to_string()
        } else if (word.ends_with("'s")
            || (len > 4 && word.ends_with("es") && !word.ends_with("ies")))
            && self.is_known(pystr::drop_last_chars(word, 2))
        {
            pystr::drop_last_chars(word, 2).to_string()
        } else if len > 4
            && word.ends_with("ies")
            && self.is_known(&format!("{}y", pystr::drop_last_chars(word, 3)))
        {
            format!("{}y", pystr::drop_last_chars(word, 3))
        } else {
            return None;
        };
        let (stem, rating) = self.lookup(&stem, tag, stress, ctx)?;
        Some((Self::suffix_s(&stem)?, rating))
    }

    fn suffix_ed(stem: &str) -> Option<String> {
        let last = pystr::last_char(stem)?;
        Some(if "pkfθʃsʧ".contains(last) {
            format!("{stem}t")
        } else if last == 'd' {
            format!("{stem}ᵻd")
        } else if last != 't' {
            format!("{stem}d")
        } else if char_len(stem) < 2 {
            format!("{stem}ɪd")
        } else if pystr::second_last_char(stem).is_some_and(|c| US_TAUS.contains(c)) {
            format!("{}ɾᵻd", pystr::drop_last_chars(stem, 1))
        } else {
            format!("{stem}ᵻd")
        })
    }

    fn stem_ed(
        &self,
        word: &str,
        tag: Option<&str>,
        stress: Option<f64>,
        ctx: Option<&Context>,
    ) -> Option<Reading> {
        let len = char_len(word);
        if len < 4 || !word.ends_with('d') {
            return None;
        }
        let stem = if !word.ends_with("dd") && self.is_known(pystr::drop_last_chars(word, 1)) {
            pystr::drop_last_chars(word, 1)
        } else if len > 4
            && word.ends_with("ed")
            && !word.ends_with("eed")
            && self.is_known(pystr::drop_last_chars(word, 2))
        {
            pystr::drop_last_chars(word, 2)
        } else {
            return None;
        };
        let (stem, rating) = self.lookup(stem, tag, stress, ctx)?;
        Some((Self::suffix_ed(&stem)?, rating))
    }

    fn suffix_ing(stem: &str) -> Option<String> {
        pystr::last_char(stem)?;
        let flap = char_len(stem) > 1
            && pystr::last_char(stem) == Some('t')
            && pystr::second_last_char(stem).is_some_and(|c| US_TAUS.contains(c));
        Some(if flap {
            format!("{}ɾɪŋ", pystr::drop_last_chars(stem, 1))
        } else {
            format!("{stem}ɪŋ")
        })
    }

    fn stem_ing(
        &self,
        word: &str,
        tag: Option<&str>,
        stress: Option<f64>,
        ctx: Option<&Context>,
    ) -> Option<Reading> {
        let len = char_len(word);
        if len < 5 || !word.ends_with("ing") {
            return None;
        }
        let base = pystr::drop_last_chars(word, 3);
        let doubled = {
            // ([bcdgklmnprstvxz])\1ing$ | cking$
            let mut rev = base.chars().rev();
            let (a, b) = (rev.next(), rev.next());
            (a == b && a.is_some_and(|c| "bcdgklmnprstvxz".contains(c))) || word.ends_with("cking")
        };
        let stem = if len > 5 && self.is_known(base) {
            base.to_string()
        } else if self.is_known(&format!("{base}e")) {
            format!("{base}e")
        } else if len > 5 && doubled && self.is_known(pystr::drop_last_chars(word, 4)) {
            pystr::drop_last_chars(word, 4).to_string()
        } else {
            return None;
        };
        let (stem, rating) = self.lookup(&stem, tag, stress, ctx)?;
        Some((Self::suffix_ing(&stem)?, rating))
    }

    fn get_word(
        &self,
        word: &str,
        tag: &str,
        stress: Option<f64>,
        ctx: &Context,
    ) -> Option<Reading> {
        if let Some(r) = self.get_special_case(word, tag, stress, ctx) {
            return Some(r);
        }
        let wl = pystr::lower(word);
        let t = Some(tag);
        let c = Some(ctx);
        let mut word = word.to_string();
        let rest = pystr::tail(&word);
        if char_len(&word) > 1
            && pystr::is_alpha(&word.replace('\'', ""))
            && word != wl
            && (tag != "NNP" || char_len(&word) > 7)
            && !self.golds.contains(&word)
            && !self.silvers.contains(&word)
            && (word == pystr::upper(&word) || rest == pystr::lower(rest))
            && (self.golds.contains(&wl)
                || self.silvers.contains(&wl)
                || self
                    .stem_s(&wl, t, stress, c)
                    .is_some_and(|r| !r.0.is_empty())
                || self
                    .stem_ed(&wl, t, stress, c)
                    .is_some_and(|r| !r.0.is_empty())
                || self
                    .stem_ing(&wl, t, stress, c)
                    .is_some_and(|r| !r.0.is_empty()))
        {
            word = wl;
        }
        if self.is_known(&word) {
            return self.lookup(&word, t, stress, c);
        }
        if let Some(stem) = word.strip_suffix("s'") {
            let possessive = format!("{stem}'s");
            if self.is_known(&possessive) {
                return self.lookup(&possessive, t, stress, c);
            }
        }
        if let Some(stem) = word.strip_suffix('\'')
            && self.is_known(stem)
        {
            return self.lookup(stem, t, stress, c);
        }
        if let Some(r) = self.stem_s(&word, t, stress, c) {
            return Some(r);
        }
        if let Some(r) = self.stem_ed(&word, t, stress, c) {
            return Some(r);
        }
        self.stem_ing(&word, t, Some(stress.unwrap_or(0.5)), c)
    }

    /// Words of a number reading, looked up one by one (misaki's `extend_num`).
    fn extend_num(&self, words: &str, out: &mut Vec<Reading>) {
        // re.split(r"[^a-z]+", words): separator runs split once; empty pieces only at the ends
        let mut pieces: Vec<&str> = Vec::new();
        let mut start: Option<usize> = Some(0);
        for (i, c) in words.char_indices() {
            match (c.is_ascii_lowercase(), start) {
                (false, Some(s)) => {
                    pieces.push(&words[s..i]);
                    start = None;
                }
                (true, None) => start = Some(i),
                _ => {}
            }
        }
        pieces.push(start.map_or("", |s| &words[s..]));
        for w in pieces {
            if w != "and" {
                let stress = if w == "point" { Some(-2.0) } else { None };
                if let Some(r) = self.lookup(w, None, stress, None) {
                    out.push(r);
                }
            }
        }
    }

    fn extend_digits(&self, num: &str, out: &mut Vec<Reading>) {
        for d in num.chars() {
            self.extend_num(&n::cardinal_text(&d.to_string()), out);
        }
    }

    /// misaki `get_number`: digits with optional sign, separators, currency and suffix.
    pub fn get_number(&self, word: &str, currency: Option<&str>, is_head: bool) -> Option<Reading> {
        let suffix_start = word
            .char_indices()
            .rev()
            .take_while(|&(_, c)| c.is_ascii_lowercase() || c == '\'')
            .last()
            .map(|(i, _)| i);
        let (mut word, suffix) = match suffix_start {
            Some(i) => (&word[..i], Some(&word[i..])),
            None => (word, None),
        };
        let ordinal_suffix = suffix.is_some_and(|s| ORDINALS.contains(&s));
        let mut result: Vec<Reading> = Vec::new();
        if let Some(rest) = word.strip_prefix('-') {
            if let Some(r) = self.lookup("minus", None, None, None) {
                result.push(r);
            }
            word = rest;
        }
        let currency_units = currency.and_then(currency_units);
        if is_ascii_digits(word) && ordinal_suffix {
            self.extend_num(&n::ordinal_text(word), &mut result);
        } else if result.is_empty()
            && char_len(word) == 4
            && currency_units.is_none()
            && is_ascii_digits(word)
        {
            self.extend_num(&n::year(word.parse().unwrap_or(0)), &mut result);
        } else if !is_head && !word.contains('.') {
            let num = word.replace(',', "");
            let digits: Vec<char> = num.chars().collect();
            if digits.first() == Some(&'0') || digits.len() > 3 {
                self.extend_digits(&num, &mut result);
            } else if digits.len() == 3 && !num.ends_with("00") {
                self.extend_num(&n::cardinal_text(&digits[0].to_string()), &mut result);
                if digits[1] == '0' {
                    if let Some(r) = self.lookup("O", None, Some(-2.0), None) {
                        result.push(r);
                    }
                    self.extend_digits(&digits[2].to_string(), &mut result);
                } else {
                    self.extend_num(&n::cardinal_text(pystr::tail(&num)), &mut result);
                }
            } else if !num.is_empty() {
                self.extend_num(&n::cardinal_text(&num), &mut result);
            }
        } else if word.matches('.').count() > 1 || !is_head {
            for num in word.replace(',', "").split('.') {
                if num.is_empty() {
                    continue;
                }
                let rest = pystr::tail(num);
                if num.starts_with('0') || (char_len(num) != 2 && rest.chars().any(|c| c != '0')) {
                    self.extend_digits(num, &mut result);
                } else {
                    self.extend_num(&n::cardinal_text(num), &mut result);
                }
            }
        } else if let Some((unit, subunit)) = currency_units.filter(|_| is_currency_amount(word)) {
            let plain = word.replace(',', "");
            let mut pairs: Vec<(u128, &str, &str)> = Vec::new();
            for (num, unit) in plain.split('.').zip([unit, subunit]) {
                let value = if num.is_empty() {
                    Some(0)
                } else {
                    n::parse_cardinal(num)
                };
                pairs.push((value.unwrap_or(u128::MAX), num, unit));
            }
            if pairs.len() > 1 {
                if pairs[1].0 == 0 {
                    pairs.truncate(1);
                } else if pairs[0].0 == 0 {
                    pairs.remove(0);
                }
            }
            for (i, &(value, digits, unit)) in pairs.iter().enumerate() {
                if i > 0
                    && let Some(r) = self.lookup("and", None, None, None)
                {
                    result.push(r);
                }
                if value == u128::MAX {
                    self.extend_digits(digits, &mut result);
                } else {
                    self.extend_num(&n::cardinal(value), &mut result);
                }
                let reading = if value != 1 && unit != "pence" {
                    self.stem_s(&format!("{unit}s"), None, None, None)
                } else {
                    self.lookup(unit, None, None, None)
                };
                result.extend(reading);
            }
        } else {
            let words = if is_ascii_digits(word) {
                n::cardinal_text(word)
            } else if !word.contains('.') {
                let plain = word.replace(',', "");
                if ordinal_suffix {
                    n::ordinal_text(&plain)
                } else {
                    n::cardinal_text(&plain)
                }
            } else {
                let plain = word.replace(',', "");
                if let Some(frac) = plain.strip_prefix('.') {
                    let mut w = "point".to_string();
                    for d in frac.chars() {
                        w.push(' ');
                        w.push_str(&n::cardinal_text(&d.to_string()));
                    }
                    w
                } else {
                    n::decimal(&plain).unwrap_or_else(|| n::digits_text(&plain))
                }
            };
            self.extend_num(&words, &mut result);
        }
        if result.is_empty() {
            return None;
        }
        let rating = result.iter().map(|r| r.1).min().unwrap_or(3);
        let ps = result
            .into_iter()
            .map(|r| r.0)
            .collect::<Vec<_>>()
            .join(" ");
        let ps = match suffix {
            Some("s" | "'s") => Self::suffix_s(&ps)?,
            Some("ed" | "'d") => Self::suffix_ed(&ps)?,
            Some("ing") => Self::suffix_ing(&ps)?,
            _ => ps,
        };
        Some((ps, rating))
    }

    fn append_currency(&self, ps: String, currency: Option<&str>) -> String {
        let Some((unit, _)) = currency.and_then(currency_units) else {
            return ps;
        };
        match self.stem_s(&format!("{unit}s"), None, None, None) {
            Some((word, _)) if !word.is_empty() => format!("{ps} {word}"),
            _ => ps,
        }
    }

    /// misaki `is_number`: digits (with separators, a leading minus at the head and a suffix).
    fn is_number(word: &str, is_head: bool) -> bool {
        if !word.chars().any(|c| c.is_ascii_digit()) {
            return false;
        }
        let mut word = word;
        for s in ["ing", "'d", "ed", "'s", "st", "nd", "rd", "th", "s"] {
            if let Some(stem) = word.strip_suffix(s) {
                word = stem;
                break;
            }
        }
        word.chars().enumerate().all(|(i, c)| {
            c.is_ascii_digit() || c == ',' || c == '.' || (is_head && i == 0 && c == '-')
        })
    }

    /// The reading of one token in its right-hand context (misaki `Lexicon.__call__`).
    pub fn read(&self, tk: &super::token::Tok, ctx: &Context) -> Option<Reading> {
        let word = tk.word().replace(['‘', '’'], "'");
        let word: String = word.nfkc().collect();
        let word: String = word
            .chars()
            .map(|c| match pystr::digit_value(c) {
                Some(d) if !c.is_ascii_digit() => char::from_digit(d, 10).unwrap_or(c),
                _ => c,
            })
            .collect();
        let stress = if word == pystr::lower(&word) {
            None
        } else if word == pystr::upper(&word) {
            Some(2.0)
        } else {
            Some(0.5)
        };
        if let Some((ps, rating)) = self.get_word(&word, &tk.tag, stress, ctx) {
            let ps = self.append_currency(ps, tk.currency.as_deref());
            return Some((apply_stress(&ps, tk.stress), rating));
        }
        if Self::is_number(&word, tk.is_head) {
            let (ps, rating) = self.get_number(&word, tk.currency.as_deref(), tk.is_head)?;
            return Some((apply_stress(&ps, tk.stress), rating));
        }
        None
    }
}

/// misaki `is_currency`: at most one point and at most two decimals.
fn is_currency_amount(word: &str) -> bool {
    match word.split_once('.') {
        None => true,
        Some((_, cents)) => !cents.contains('.') && char_len(cents) < 3,
    }
}
