//! Text normalization before tokenizing (hibari `normalize.py`): the readings the lexicon rules cannot
//! produce on their own — times, dates, units, abbreviations and titles, other currencies, symbols,
//! phone numbers, ranges, fractions, Roman numerals. Plain numbers ($/£/€ amounts, ordinals, years,
//! decimals, percents) are left for the lexicon layer, as in misaki. The word tables come from the
//! model directory's `normalize.json`.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::numbers as n;
use super::re::{Re, alternation, group};
use crate::Error;
use crate::assets::{Ordered, read_json};

#[derive(Deserialize)]
pub struct Tables {
    pub months: Ordered<String>,
    pub titles: Ordered<String>,
    pub abbreviations: HashMap<String, String>,
    pub units: HashMap<String, [String; 2]>,
    pub symbols: Ordered<String>,
    pub currency: HashMap<String, [String; 2]>,
    pub roman_cardinal: Vec<String>,
    pub roman_ordinal: Vec<String>,
}

impl Tables {
    pub fn load(dir: &Path) -> Result<Tables, Error> {
        let t: Tables = read_json(dir, "normalize.json")?;
        if t.months.0.len() != 12 {
            return Err(Error::invalid_model("normalize.json", "expected 12 months"));
        }
        for key in ["¢", "$", "£", "€"] {
            if !t.currency.contains_key(key) {
                return Err(Error::invalid_model(
                    "normalize.json",
                    format!("no currency {key}"),
                ));
            }
        }
        Ok(t)
    }
}

pub struct Normalizer {
    t: Tables,
    month_names: Vec<String>,
    /// symbol, its pattern, its replacement
    symbols: Vec<(String, Re, String)>,
    ws: Re,
    time: Re,
    date_us: Re,
    date_iso: Re,
    month_day: Re,
    day_month: Re,
    unit: Re,
    deg: Re,
    cents: Re,
    currency: Re,
    big_money: Re,
    title: Re,
    abbrev: Re,
    no: Re,
    hash: Re,
    roman_c: Re,
    roman_o: Re,
    phone: Re,
    range: Re,
    fraction: Re,
    plus: Re,
    space_punct: Re,
}

const NUM: &str = r"\d+(?:,\d{3})*(?:\.\d+)?";
const ROMAN_NUMERAL: &str =
    r"((?=[IVXLC])M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3}))";

impl Normalizer {
    pub fn new(t: Tables) -> Result<Normalizer, Error> {
        let month_names: Vec<String> = t.months.0.iter().map(|(_, v)| v.clone()).collect();
        let mut month_words = month_names.clone();
        month_words.extend(t.months.keys().map(super::pystr::capitalize));
        month_words.push("Sept".into());
        let months = alternation(&month_words);
        let units: Vec<&String> = t.units.keys().collect();
        let titles: Vec<&str> = t.titles.keys().collect();
        let abbrevs: Vec<&String> = t.abbreviations.keys().collect();
        let mut symbols = Vec::new();
        for (sym, word) in &t.symbols.0 {
            let esc = fancy_regex::escape(sym);
            let pattern = if sym.chars().count() == 1 && "=<>~".contains(sym.as_str()) {
                format!(r"(?<=\S) ?{esc} ?(?=\S)")
            } else {
                esc.into_owned()
            };
            let with = if word.is_empty() {
                " ".to_string()
            } else {
                format!(" {word} ")
            };
            symbols.push((sym.clone(), Re::new(&pattern)?, with));
        }
        Ok(Normalizer {
            ws: Re::new(r"\s+")?,
            time: Re::new(
                r"\b(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s?([AaPp])\.?[Mm]\.?(?![A-Za-z]))?(?!\d)",
            )?,
            date_us: Re::new(r"\b(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})\b")?,
            date_iso: Re::new(r"\b(\d{4})-(\d{2})-(\d{2})\b")?,
            month_day: Re::new(&format!(
                r"\b({months})\.? (\d{{1,2}})(?:st|nd|rd|th)?\b(?![\d:%])(,? \d{{4}}\b)?"
            ))?,
            day_month: Re::new(&format!(r"\b(the )?(\d{{1,2}}) (?:of )?({months})\b\.?"))?,
            unit: Re::new(&format!(
                r"(?<![\w.])(-?{NUM})\s?({})(?![\w])",
                alternation(&units)
            ))?,
            deg: Re::new(&format!(r"(?<![\w.])(-?{NUM})\s?°\s?([CF])?(?![\w])"))?,
            cents: Re::new(&format!(r"(?<![\w.])({NUM})\s?¢"))?,
            currency: Re::new(&format!(
                r"(?<![\w])([¥₹₩]|Rs\.?|USD|EUR|GBP)\s?({NUM})(?:\s?(hundred|thousand|million|billion|trillion|[kKmMbB]\b))?"
            ))?,
            big_money: Re::new(&format!(
                r"([$£€])({NUM})\s?(hundred|thousand|million|billion|trillion|[kKmMbB]\b)"
            ))?,
            title: Re::new(&format!(r"\b({})\.? (?=[A-Z])", alternation(&titles)))?,
            abbrev: Re::new(&format!(r"(?<![\w.])({})(?![\w])", alternation(&abbrevs)))?,
            no: Re::new(r"\b(No|Nos)\. ?(?=\d)")?,
            hash: Re::new(r"(?<![\w&])#(?=\d)")?,
            roman_c: Re::new(&format!(
                r"\b({}) {ROMAN_NUMERAL}\b(?![.'’]\w)",
                alternation(&t.roman_cardinal)
            ))?,
            roman_o: Re::new(&format!(
                r"\b({}) {ROMAN_NUMERAL}\b(?![.'’]\w)",
                alternation(&t.roman_ordinal)
            ))?,
            phone: Re::new(r"(?<![\w.\-])(?:\d{3}-)?\d{3}-\d{4}(?![\w.\-])")?,
            range: Re::new(r"(?<![\w.\-])(\d{1,4})\s?[-–]\s?(\d{1,4})(?![\w.\-%])")?,
            fraction: Re::new(r"(?<![\w./])(\d{1,2})/(\d{1,2})(?![\w./])")?,
            plus: Re::new(r"(?<![\w+])\+(?=\d)")?,
            space_punct: Re::new(r" +([,.;:!?])")?,
            month_names,
            symbols,
            t,
        })
    }

    pub fn titles(&self) -> impl Iterator<Item = &str> {
        self.t.titles.keys()
    }

    fn month(&self, written: &str) -> String {
        let key: String = written.to_lowercase().chars().take(3).collect();
        self.t
            .months
            .get(&key)
            .cloned()
            .unwrap_or_else(|| written.to_string())
    }

    fn date(&self, year: Option<&str>, month: u32, day: u32) -> Option<String> {
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return None;
        }
        let mut out = format!(
            "{} {}",
            self.month_names[month as usize - 1],
            n::ordinal(day.into())
        );
        if let Some(y) = year.filter(|y| !y.is_empty()) {
            out.push_str(", ");
            out.push_str(y);
        }
        Some(out)
    }

    /// The normalized text of one sentence.
    pub fn normalize(&self, text: &str) -> Result<String, Error> {
        let text = self.ws.replace(text, " ")?;
        let text = text.trim();
        if text.is_empty() {
            return Ok(String::new());
        }
        let text = text
            .replace('\u{a0}', " ")
            .replace('’', "'")
            .replace('‒', "-")
            .replace('―', "—");
        let text = self.time.sub(&text, |c, s| {
            let whole = group(c, 0);
            let (h, mi, sec, ap) = (group(c, 1), group(c, 2), group(c, 3), group(c, 4));
            let (Ok(h), Ok(mi)) = (h.parse::<u128>(), mi.parse::<u128>()) else {
                return whole.to_string();
            };
            let sec: Option<u128> = if sec.is_empty() {
                None
            } else {
                sec.parse().ok()
            };
            if h > 24 || mi > 59 || sec.is_some_and(|s| s > 59) {
                return whole.to_string();
            }
            let mut words = n::cardinal(h);
            if mi == 0 {
                if ap.is_empty() && sec.is_none() {
                    words.push_str(" o'clock");
                }
            } else if mi < 10 {
                words.push_str(" oh ");
                words.push_str(&n::cardinal(mi));
            } else {
                words.push(' ');
                words.push_str(&n::cardinal(mi));
            }
            if let Some(sec) = sec {
                words.push_str(" and ");
                words.push_str(&n::cardinal(sec));
                words.push_str(if sec == 1 { " second" } else { " seconds" });
            }
            if !ap.is_empty() {
                let end = c.get(0).map_or(0, |m| m.end());
                words.push(' ');
                words.push_str(&ap.to_uppercase());
                words.push_str(".M");
                if !s[end..].starts_with('.') {
                    words.push('.');
                }
            }
            words
        })?;
        let text = self.date_iso.sub(&text, |c, _| {
            let (y, mo, d) = (group(c, 1), group(c, 2), group(c, 3));
            let (Ok(mo), Ok(d)) = (mo.parse(), d.parse()) else {
                return group(c, 0).into();
            };
            self.date(Some(y), mo, d)
                .unwrap_or_else(|| group(c, 0).into())
        })?;
        let text = self.date_us.sub(&text, |c, _| {
            let (Ok(a), Ok(b)) = (group(c, 1).parse::<u32>(), group(c, 2).parse::<u32>()) else {
                return group(c, 0).into();
            };
            let mut y = group(c, 3).to_string();
            if y.len() == 2 {
                let century = if y.parse::<u32>().unwrap_or(0) > 30 {
                    "19"
                } else {
                    "20"
                };
                y = format!("{century}{y}");
            }
            let (mo, d) = if a <= 12 { (a, b) } else { (b, a) };
            self.date(Some(&y), mo, d)
                .unwrap_or_else(|| group(c, 0).into())
        })?;
        let text = self.big_money.sub(&text, |c, _| {
            let (sym, num, big) = (group(c, 1), group(c, 2), group(c, 3));
            let words = &self.t.currency[sym];
            format!("{num} {} {}", big_word(big), words[1])
        })?;
        let text = self.cents.sub(&text, |c, _| {
            let num = group(c, 1);
            format!("{num} {}", plural(num, &self.t.currency["¢"]))
        })?;
        let text = self.currency.sub(&text, |c, _| {
            let (sym, num, big) = (group(c, 1), group(c, 2), group(c, 3));
            let Some(words) = self.t.currency.get(sym.trim_end_matches('.')) else {
                return group(c, 0).into();
            };
            if big.is_empty() {
                format!("{num} {}", plural(num, words))
            } else {
                format!("{num} {} {}", big_word(big), words[1])
            }
        })?;
        let text = self.deg.sub(&text, |c, _| {
            let (num, scale) = (group(c, 1), group(c, 2));
            let mut words = format!(
                "{num} {}",
                plural(num, &["degree".into(), "degrees".into()])
            );
            match scale {
                "C" => words.push_str(" Celsius"),
                "F" => words.push_str(" Fahrenheit"),
                _ => {}
            }
            words
        })?;
        let text = self.unit.sub(&text, |c, _| {
            let (num, unit) = (group(c, 1), group(c, 2));
            match self.t.units.get(unit) {
                Some(words) => format!("{num} {}", plural(num, words)),
                None => group(c, 0).into(),
            }
        })?;
        let text = self.month_day.sub(&text, |c, _| {
            let (month, day, year) = (group(c, 1), group(c, 2), group(c, 3));
            match day.parse::<u32>() {
                Ok(d) if (1..=31).contains(&d) => {
                    format!("{} {}{year}", self.month(month), n::ordinal(d.into()))
                }
                _ => group(c, 0).into(),
            }
        })?;
        let text = self.day_month.sub(&text, |c, _| {
            let (day, month) = (group(c, 2), group(c, 3));
            match day.parse::<u32>() {
                Ok(d) if (1..=31).contains(&d) => {
                    format!("the {} of {}", n::ordinal(d.into()), self.month(month))
                }
                _ => group(c, 0).into(),
            }
        })?;
        let text = self.title.sub(&text, |c, _| {
            let t = group(c, 1);
            format!("{} ", self.t.titles.get(t).map_or(t, String::as_str))
        })?;
        let text = self.abbrev.sub(&text, |c, s| {
            let a = group(c, 1);
            let mut out = self
                .t
                .abbreviations
                .get(a)
                .cloned()
                .unwrap_or_else(|| a.to_string());
            if c.get(0).is_some_and(|m| m.end() == s.len()) && a.ends_with('.') {
                out.push('.');
            }
            out
        })?;
        let text = self.no.sub(&text, |c, _| {
            if group(c, 1) == "No" {
                "Number ".into()
            } else {
                "Numbers ".into()
            }
        })?;
        let text = self.hash.replace(&text, "number ")?;
        let text = self.roman_c.sub(&text, |c, _| {
            format!("{} {}", group(c, 1), roman(group(c, 2)))
        })?;
        let text = self.roman_o.sub(&text, |c, _| {
            format!("{} the {}", group(c, 1), n::ordinal(roman(group(c, 2))))
        })?;
        let text = self.phone.sub(&text, |c, _| {
            let spaced = group(c, 0).replace('-', ", ");
            let chars: Vec<String> = spaced.chars().map(String::from).collect();
            chars.join(" ")
        })?;
        let text = self.fraction.sub(&text, |c, _| {
            let (Ok(a), Ok(b)) = (group(c, 1).parse::<u32>(), group(c, 2).parse::<u32>()) else {
                return group(c, 0).into();
            };
            fraction(a, b)
                .or_else(|| {
                    ((1..=12).contains(&a) && (1..=31).contains(&b))
                        .then(|| self.date(None, a, b))
                        .flatten()
                })
                .unwrap_or_else(|| format!("{a} slash {b}"))
        })?;
        let text = self
            .range
            .sub(&text, |c, _| format!("{} to {}", group(c, 1), group(c, 2)))?;
        let mut text = self.plus.replace(&text, "plus ")?;
        for (sym, pattern, with) in &self.symbols {
            if text.contains(sym.as_str()) {
                text = pattern.replace(&text, with)?;
            }
        }
        let text = self.ws.replace(&text, " ")?;
        let text = self
            .space_punct
            .sub(&text, |c, _| group(c, 1).to_string())?;
        Ok(text.trim().to_string())
    }
}

fn big_word(big: &str) -> &str {
    match big {
        "k" | "K" => "thousand",
        "m" | "M" => "million",
        "b" | "B" => "billion",
        other => other,
    }
}

fn plural<'a>(num: &str, words: &'a [String; 2]) -> &'a str {
    if matches!(num.replace(',', "").as_str(), "1" | "1.0" | "-1") {
        &words[0]
    } else {
        &words[1]
    }
}

fn roman(s: &str) -> u128 {
    let value = |c: char| -> i64 {
        match c {
            'I' => 1,
            'V' => 5,
            'X' => 10,
            'L' => 50,
            'C' => 100,
            'D' => 500,
            'M' => 1000,
            _ => 0,
        }
    };
    let chars: Vec<char> = s.chars().collect();
    let mut total: i64 = 0;
    for (i, &c) in chars.iter().enumerate() {
        let v = value(c);
        if chars.get(i + 1).is_some_and(|&next| value(next) > v) {
            total -= v;
        } else {
            total += v;
        }
    }
    total.max(0) as u128
}

fn fraction(a: u32, b: u32) -> Option<String> {
    if !(0 < a && a < b && b <= 10) {
        return None;
    }
    let unit = match b {
        2 => "half",
        3 => "third",
        4 => "quarter",
        5 => "fifth",
        6 => "sixth",
        7 => "seventh",
        8 => "eighth",
        9 => "ninth",
        _ => "tenth",
    };
    Some(if unit == "half" {
        if a == 1 {
            "one half".to_string()
        } else {
            format!("{a} halves")
        }
    } else if a == 1 {
        format!("{a} {unit}")
    } else {
        format!("{a} {unit}s")
    })
}
