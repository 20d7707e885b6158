//! Word tokenizer with spaCy's English rules (hibari `tokenize.py`, after spaCy, MIT): special cases
//! (contractions, "Mr.", "10am") from `tokenizer_exceptions.json`, then prefixes and suffixes are
//! peeled off each whitespace-separated chunk, infixes (hyphens, slashes) split what is left, and
//! adjacent pieces that spell a special case are joined back ("Sept" + "." -> "Sept.").

use std::collections::HashMap;

use super::re::Re;
use crate::Error;

const LO: &str = "a-zß-öø-ÿ";
const UP: &str = "A-ZÀ-ÖØ-Þ";
const Q: &str = "'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉";
const PUNCT: &str = "…,:;!?¿¡()[]{}<>_#*&。？！，、；：～·";
const ICONS: &str = "™®©°§¶†‡•";
const CURRENCY: &str = r"\$|£|€|¥|฿|US\$|C\$|A\$|₽|₹|₩|₪|₺|₴|₦|₫|₱|₲|₵|₸|₼|₾|₿";
const UNITS: &str = r"km|km²|km³|m|m²|m³|dm|dm²|dm³|cm|cm²|cm³|mm|mm²|mm³|ha|µm|nm|yd|in|ft|kg|g|mg|µg|t|lb|oz|m/s|km/h|kmh|mph|hPa|Pa|mbar|mb|MB|kb|KB|gb|GB|tb|TB|T|G|M|K|%";

/// One token and whether whitespace followed it.
pub type Piece = (String, bool);

pub struct Tokenizer {
    special: HashMap<String, Vec<String>>,
    prefix: Re,
    suffix: Re,
    infix: Re,
    url: Re,
    chunk: Re,
}

fn escape_each(chars: &str) -> Vec<String> {
    chars
        .chars()
        .map(|c| fancy_regex::escape(&c.to_string()).into_owned())
        .collect()
}

/// `s` escaped for use inside a character class (only the characters that are special there).
fn class_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if matches!(c, '\\' | '[' | ']' | '^' | '-' | '&' | '~') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Tokenizer {
    pub fn new(special: HashMap<String, Vec<String>>) -> Result<Tokenizer, Error> {
        let punct = escape_each(PUNCT);
        let quotes = escape_each(Q);
        let icons = format!("[{}]", class_escape(ICONS));
        let mut prefixes: Vec<String> = ["§", "%", "=", "—", "–", r"\+(?![0-9])", "…", "……"]
            .map(String::from)
            .to_vec();
        prefixes.extend(punct.iter().cloned());
        prefixes.extend([r"\.\.+".to_string(), "…".to_string()]);
        prefixes.extend(quotes.iter().cloned());
        prefixes.push(CURRENCY.to_string());
        prefixes.push(icons.clone());

        let mut suffixes: Vec<String> = vec!["…".into(), "……".into()];
        suffixes.extend(punct.iter().cloned());
        suffixes.extend([r"\.\.+".to_string(), "…".to_string()]);
        suffixes.extend(quotes.iter().cloned());
        suffixes.push(icons.clone());
        suffixes.extend(["'s", "'S", "’s", "’S", "—", "–"].map(String::from));
        suffixes.push(r"(?<=[0-9])\+".into());
        suffixes.push(r"(?<=°[FfCcKk])\.".into());
        suffixes.push(format!(r"(?<=[0-9])(?:{CURRENCY})"));
        suffixes.push(format!(r"(?<=[0-9])(?:{UNITS})"));
        suffixes.push(format!(
            r"(?<=[0-9{LO}%²\-\+{}{}])\.",
            class_escape(PUNCT),
            class_escape(Q)
        ));
        suffixes.push(format!(r"(?<=[{UP}][{UP}])\."));

        let letter = r"[^\W\d_]";
        let infixes = [
            r"\.\.+".to_string(),
            "…".to_string(),
            icons,
            r"(?<=[0-9])[+\-\*^](?=[0-9-])".to_string(),
            format!(r"(?<=[{LO}{q}])\.(?=[{UP}{q}])", q = class_escape(Q)),
            format!(r"(?<={letter}),(?={letter})"),
            format!(r"(?<=[^\W_])(?:-|–|—|--|---|——|~)(?={letter})"),
            format!(r"(?<=[^\W_])[:<>=/](?={letter})"),
        ];
        let join = |parts: Vec<String>| parts.join("|");
        Ok(Tokenizer {
            special,
            prefix: Re::new(&join(
                prefixes.iter().map(|p| format!("^(?:{p})")).collect(),
            ))?,
            suffix: Re::new(&join(
                suffixes.iter().map(|s| format!("(?:{s})$")).collect(),
            ))?,
            infix: Re::new(&join(infixes.iter().map(|i| format!("(?:{i})")).collect()))?,
            url: Re::new(
                r"(?i)^(?:(?:https?|ftp)://|www\.)\S+$|^[\w.+-]+@[\w-]+(?:\.[\w-]+)+$|^(?:[\w-]+\.)+(?:com|org|net|edu|gov|io|co|uk|de|fr|info|biz|us|ca|au|tv|me|ly|ai)(?:/\S*)?$",
            )?,
            chunk: Re::new(r"\S+")?,
        })
    }

    /// Tokens of a text with their trailing-whitespace flags.
    pub fn tokenize(&self, text: &str) -> Result<Vec<Piece>, Error> {
        let mut out = Vec::new();
        for (a, b) in self.chunk.spans(text)? {
            let toks = self.split(&text[a..b])?;
            let ws = b < text.len();
            let last = toks.len().saturating_sub(1);
            out.extend(
                toks.into_iter()
                    .enumerate()
                    .map(|(i, t)| (t, ws && i == last)),
            );
        }
        Ok(out)
    }

    fn split(&self, chunk: &str) -> Result<Vec<String>, Error> {
        let special = &self.special;
        if let Some(toks) = special.get(chunk) {
            return Ok(toks.clone());
        }
        let mut s: &str = chunk;
        let mut pre: Vec<String> = Vec::new();
        let mut suf: Vec<String> = Vec::new();
        let mut last = usize::MAX;
        while !s.is_empty() && s.len() != last && !special.contains_key(s) {
            last = s.len();
            let pre_len = self.prefix.search(s)?.map_or(0, |(_, e)| e);
            if pre_len > 0 {
                let minus_pre = &s[pre_len..];
                if !minus_pre.is_empty() && special.contains_key(minus_pre) {
                    pre.push(s[..pre_len].to_string());
                    s = minus_pre;
                    break;
                }
            }
            let suf_len = self.suffix.search(&s[pre_len..])?.map_or(0, |(a, b)| b - a);
            if suf_len > 0 {
                let minus_suf = &s[..s.len() - suf_len];
                if !minus_suf.is_empty() && special.contains_key(minus_suf) {
                    suf.push(s[s.len() - suf_len..].to_string());
                    s = minus_suf;
                    break;
                }
            }
            if pre_len > 0 && suf_len > 0 && pre_len + suf_len <= s.len() {
                pre.push(s[..pre_len].to_string());
                suf.push(s[s.len() - suf_len..].to_string());
                s = &s[pre_len..s.len() - suf_len];
            } else if pre_len > 0 {
                pre.push(s[..pre_len].to_string());
                s = &s[pre_len..];
            } else if suf_len > 0 {
                suf.push(s[s.len() - suf_len..].to_string());
                s = &s[..s.len() - suf_len];
            }
        }
        let mut toks = pre;
        if !s.is_empty() {
            if let Some(sp) = special.get(s) {
                toks.extend(sp.iter().cloned());
            } else if self.url.is_match(s)? {
                toks.push(s.to_string());
            } else {
                let mut start = 0;
                for (a, b) in self.infix.spans(s)? {
                    if a == 0 || a == b {
                        continue;
                    }
                    if a > start {
                        toks.push(s[start..a].to_string());
                    }
                    toks.push(s[a..b].to_string());
                    start = b;
                }
                if start < s.len() {
                    toks.push(s[start..].to_string());
                }
            }
        }
        toks.extend(suf.into_iter().rev());
        Ok(if toks.len() > 1 {
            self.rejoin(toks)
        } else {
            toks
        })
    }

    /// spaCy's special-case pass over the split pieces: "Sept" "." -> "Sept.".
    fn rejoin(&self, toks: Vec<String>) -> Vec<String> {
        let mut out = Vec::with_capacity(toks.len());
        let mut i = 0;
        'outer: while i < toks.len() {
            for k in [3, 2] {
                if i + k <= toks.len() {
                    let joined: String = toks[i..i + k].concat();
                    if let Some(sp) = self.special.get(&joined) {
                        out.extend(sp.iter().cloned());
                        i += k;
                        continue 'outer;
                    }
                }
            }
            out.push(toks[i].clone());
            i += 1;
        }
        out
    }
}
