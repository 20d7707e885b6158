//! Text -> misaki-style English phonemes (hibari's `g2p` package, itself a port of misaki 0.9.4
//! without spaCy or espeak-ng): normalize -> tokenize (spaCy rules) -> tag (perceptron) -> lexicon
//! with part-of-speech and context rules -> OOV network for unknown words -> stress resolution.
//! The phoneme characters are the acoustic model's (`vocab.json`); `crate::Voice` maps them to ids.
//! Every step mirrors the Python line by line so the output matches it exactly.

mod lexicon;
mod normalize;
mod numbers;
mod oov;
mod pystr;
mod re;
mod tagger;
mod token;
mod tokenize;

use std::collections::HashMap;
use std::path::Path;

use lexicon::{
    Context, Lexicon, PRIMARY_STRESS, apply_stress, is_consonant, is_vowel, stress_weight,
};
use normalize::{Normalizer, Tables};
use oov::Oov;
use re::{Re, group};
use tagger::Tagger;
use token::{Tok, merge_tokens};
use tokenize::Tokenizer;

use crate::Error;
use crate::assets::read_json;

const PUNCTS: &str = ";:,.!?—…\"“”";
const NON_QUOTE_PUNCTS: &str = ";:,.!?—…";
const PUNCT_TAGS: [&str; 11] = [
    ".", ",", "-LRB-", "-RRB-", "``", "\"\"", "''", ":", "$", "#", "NFP",
];
const SUBTOKEN_JUNKS: &str = "',-._‘’/";

/// Whitespace-free runs longer than this are cut into pieces before reading. Real words are far
/// shorter; the cut bounds the tokenizer's and the sub-token search's worst cases (both superlinear
/// in the run length) on hostile input.
const MAX_RUN_CHARS: usize = 64;

fn is_junk(c: char) -> bool {
    SUBTOKEN_JUNKS.contains(c)
}

fn punct_tag_phonemes(tag: &str) -> Option<&'static str> {
    match tag {
        "-LRB-" => Some("("),
        "-RRB-" => Some(")"),
        "``" => Some("“"),
        "\"\"" | "''" => Some("”"),
        _ => None,
    }
}

/// What espeak said for symbols in the reference pipeline (used for unknown tokens only).
fn symbol_phonemes(c: char) -> &'static str {
    match c {
        '/' => "slˈæʃ",
        '=' => "ˈikwᵊlz",
        '+' => "plˈʌs",
        '&' => "ænd",
        '@' => "æt",
        '%' => "pəɹsˈɛnt",
        '#' => "hˈæʃ",
        '*' => "ˈæstəɹˌɪsk",
        '~' => "tˈɪldə",
        '^' => "kˈɛɹət",
        '<' => "lˈɛs ðən",
        '>' => "ɡɹˈATəɹ ðən",
        '—' => "—",
        _ => "",
    }
}

/// A word for the lexicon: one token, or sub-tokens written together ("don't", "B2B", "U.S.").
enum Word {
    One(Tok),
    Many(Vec<Tok>),
}

pub struct G2p {
    normalizer: Normalizer,
    tokenizer: Tokenizer,
    tagger: Tagger,
    lexicon: Lexicon,
    oov: Oov,
    subtoken: Re,
    link: Re,
    fallback_piece: Re,
}

impl G2p {
    pub fn load(dir: &Path) -> Result<G2p, Error> {
        let exceptions: HashMap<String, Vec<String>> = read_json(dir, "tokenizer_exceptions.json")?;
        Ok(G2p {
            normalizer: Normalizer::new(Tables::load(dir)?)?,
            tokenizer: Tokenizer::new(exceptions)?,
            tagger: Tagger::load(dir)?,
            lexicon: Lexicon::load(dir)?,
            oov: Oov::load(dir)?,
            subtoken: Re::new(concat!(
                r"^['‘’]+|[A-ZÀ-ÖØ-Þ](?=[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ])|(?:^-)?(?:\d?[,.]?\d)+|[-_]+|['‘’]{2,}",
                r"|[^\W\d_]*?(?:['‘’][^\W\d_])*?[a-zß-öø-ÿ](?=[A-ZÀ-ÖØ-Þ])|[^\W\d_]+(?:['‘’][^\W\d_])*",
                r"|[^\w\-'‘’]|['‘’]+$"
            ))?,
            link: Re::new(r"\[([^\]]+)\]\(([^\)]*)\)")?,
            fallback_piece: Re::new(r"[^\W\d_]+(?:['’][^\W\d_]+)*|\d+(?:[,.]\d+)*|[^\w\s]+")?,
        })
    }

    /// Abbreviation titles ("Dr", "St", ...): a period after one does not end a sentence.
    pub fn titles(&self) -> impl Iterator<Item = &str> {
        self.normalizer.titles()
    }

    /// The phoneme string of one sentence (spaces where the text had them).
    pub fn phonemize(&self, text: &str) -> Result<String, Error> {
        let text = cut_long_runs(text);
        let text = self.normalizer.normalize(&text)?;
        let tokens = self.phonemize_tokens(self.tokenize(&text)?)?;
        let mut out = String::new();
        for tk in &tokens {
            out.push_str(tk.phonemes.as_deref().unwrap_or(""));
            if tk.whitespace {
                out.push(' ');
            }
        }
        Ok(out.trim().to_string())
    }

    /// Tokens with tags; `[text](/phonemes/)` sets a token's phonemes directly.
    fn tokenize(&self, text: &str) -> Result<Vec<Tok>, Error> {
        let mut toks = Vec::new();
        let mut pos = 0;
        for caps in self.link.captures_all(text)? {
            let Some(m) = caps.get(0) else { continue };
            toks.extend(self.tagged_tokens(&text[pos..m.start()])?);
            let target = group(&caps, 2);
            let ps =
                (target.chars().count() > 1 && target.starts_with('/') && target.ends_with('/'))
                    .then(|| target[1..].trim_end_matches('/').to_string());
            let ws = text[m.end()..]
                .chars()
                .next()
                .is_some_and(char::is_whitespace);
            let mut tk = Tok::new(group(&caps, 1).to_string(), "NN".into(), ws);
            tk.phonemes = ps;
            tk.rating = Some(5);
            toks.push(tk);
            pos = m.end();
        }
        toks.extend(self.tagged_tokens(&text[pos..])?);
        Ok(toks)
    }

    fn tagged_tokens(&self, text: &str) -> Result<Vec<Tok>, Error> {
        let pieces = self.tokenizer.tokenize(text)?;
        if pieces.is_empty() {
            return Ok(Vec::new());
        }
        let words: Vec<&str> = pieces.iter().map(|(t, _)| t.as_str()).collect();
        let tags = self.tagger.tag(&words);
        Ok(pieces
            .into_iter()
            .zip(tags)
            .map(|((t, ws), tag)| Tok::new(t, tag, ws))
            .collect())
    }

    /// Splits tokens into sub-tokens and groups those written together (misaki `retokenize`).
    fn retokenize(&self, tokens: Vec<Tok>) -> Result<Vec<Word>, Error> {
        let mut words: Vec<Word> = Vec::new();
        let mut currency: Option<String> = None;
        let next_tags: Vec<Option<String>> = (0..tokens.len())
            .map(|i| tokens.get(i + 1).map(|t| t.tag.clone()))
            .collect();
        let count = tokens.len();
        for (i, token) in tokens.into_iter().enumerate() {
            let whitespace = token.whitespace;
            let mut tks: Vec<Tok> = if token.is_resolved() {
                vec![token]
            } else {
                let pieces = self.subtoken.find_all(&token.text)?;
                if pieces.is_empty() {
                    vec![token]
                } else {
                    pieces
                        .into_iter()
                        .map(|t| Tok {
                            text: t.to_string(),
                            whitespace: false,
                            is_head: true,
                            prespace: false,
                            ..token.clone()
                        })
                        .collect()
                }
            };
            if let Some(last) = tks.last_mut() {
                last.whitespace = whitespace;
            }
            let n = tks.len();
            for j in 0..n {
                let alias_to = 0 < j && j + 1 < n && tks[j].text == "2" && {
                    let mut pair = String::new();
                    pair.extend(pystr::last_char(&tks[j - 1].text));
                    pair.extend(tks[j + 1].text.chars().next());
                    pystr::is_alpha(&pair) && pair.chars().count() == 2
                };
                let tk = &mut tks[j];
                if tk.is_resolved() {
                } else if tk.tag == "$" && lexicon::currency_units(&tk.text).is_some() {
                    currency = Some(tk.text.clone());
                    tk.phonemes = Some(String::new());
                    tk.rating = Some(4);
                } else if tk.tag == ":" && (tk.text == "-" || tk.text == "–") {
                    tk.phonemes = Some("—".into());
                    tk.rating = Some(3);
                } else if PUNCT_TAGS.contains(&tk.tag.as_str())
                    && !tk.text.chars().all(|c| {
                        let mut l = c.to_lowercase();
                        matches!((l.next(), l.next()), (Some(l), None) if l.is_ascii_lowercase())
                    })
                {
                    let ps = match punct_tag_phonemes(&tk.tag) {
                        Some(p) => p.to_string(),
                        None => tk.text.chars().filter(|c| PUNCTS.contains(*c)).collect(),
                    };
                    tk.phonemes = Some(ps);
                    tk.rating = Some(4);
                } else if currency.is_some() {
                    if tk.tag != "CD" {
                        currency = None;
                    } else if j + 1 == n
                        && (i + 1 == count || next_tags[i].as_deref() != Some("CD"))
                    {
                        tk.currency = currency.clone();
                    }
                } else if alias_to {
                    tk.alias = Some("to".into());
                }
            }
            for tk in tks {
                if tk.is_resolved() {
                    words.push(Word::One(tk));
                    continue;
                }
                match words.last_mut() {
                    Some(Word::Many(group)) if group.last().is_some_and(|t| !t.whitespace) => {
                        let mut tk = tk;
                        tk.is_head = false;
                        group.push(tk);
                    }
                    _ => {
                        if tk.whitespace {
                            words.push(Word::One(tk));
                        } else {
                            words.push(Word::Many(vec![tk]));
                        }
                    }
                }
            }
        }
        Ok(words
            .into_iter()
            .map(|w| match w {
                Word::Many(mut g) if g.len() == 1 => Word::One(g.remove(0)),
                w => w,
            })
            .collect())
    }

    fn token_context(ctx: Context, ps: Option<&str>, token: &Tok) -> Context {
        let mut vowel = ctx.future_vowel;
        if let Some(ps) = ps.filter(|p| !p.is_empty())
            && let Some(c) = ps
                .chars()
                .find(|&c| is_vowel(c) || is_consonant(c) || NON_QUOTE_PUNCTS.contains(c))
        {
            vowel = if NON_QUOTE_PUNCTS.contains(c) {
                None
            } else {
                Some(is_vowel(c))
            };
        }
        let future_to = matches!(token.text.as_str(), "to" | "To")
            || (token.text == "TO" && matches!(token.tag.as_str(), "TO" | "IN"));
        Context {
            future_vowel: vowel,
            future_to,
        }
    }

    /// Spacing and stress of a group's sub-token readings (misaki `resolve_tokens`).
    fn resolve_tokens(tokens: &mut [Tok]) {
        let mut text = String::new();
        for (i, tk) in tokens.iter().enumerate() {
            text.push_str(&tk.text);
            if tk.whitespace && i + 1 < tokens.len() {
                text.push(' ');
            }
        }
        let classes: std::collections::HashSet<u8> = text
            .chars()
            .filter(|&c| !is_junk(c))
            .map(|c| {
                if c.is_alphabetic() {
                    0
                } else if c.is_ascii_digit() {
                    1
                } else {
                    2
                }
            })
            .collect();
        let prespace = text.contains(' ') || text.contains('/') || classes.len() > 1;
        let n = tokens.len();
        for (i, tk) in tokens.iter_mut().enumerate() {
            if tk.phonemes.is_none() {
                if i == n - 1 && tk.text.chars().count() == 1 && NON_QUOTE_PUNCTS.contains(&tk.text)
                {
                    tk.phonemes = Some(tk.text.clone());
                    tk.rating = Some(3);
                } else if tk.text.chars().all(is_junk) {
                    tk.phonemes = Some(String::new());
                    tk.rating = Some(3);
                }
            } else if i > 0 {
                tk.prespace = prespace;
            }
        }
        if prespace {
            return;
        }
        let mut indices: Vec<(bool, usize, usize)> = tokens
            .iter()
            .enumerate()
            .filter_map(|(i, tk)| {
                let ps = tk.phonemes.as_deref().filter(|p| !p.is_empty())?;
                Some((ps.contains(PRIMARY_STRESS), stress_weight(ps), i))
            })
            .collect();
        let lower = |tk: &mut Tok| {
            if let Some(ps) = &tk.phonemes {
                tk.phonemes = Some(apply_stress(ps, Some(-0.5)));
            }
        };
        if indices.len() == 2 && tokens[indices[0].2].text.chars().count() == 1 {
            let i = indices[1].2;
            lower(&mut tokens[i]);
            return;
        }
        let primaries = indices.iter().filter(|x| x.0).count();
        if indices.len() < 2 || primaries <= indices.len().div_ceil(2) {
            return;
        }
        indices.sort();
        let half = indices.len() / 2;
        for &(_, _, i) in &indices[..half] {
            lower(&mut tokens[i]);
        }
    }

    /// An unknown word: letters go to the OOV network, digit runs to the number reader, symbols to
    /// a small table.
    fn fallback(&self, tk: &Tok) -> Result<(String, i32), Error> {
        let mut out = Vec::new();
        for piece in self.fallback_piece.find_all(&tk.text)? {
            let Some(first) = piece.chars().next() else {
                continue;
            };
            let ps = if pystr::char_is_digit(first) {
                self.lexicon.get_number(piece, None, false).map(|r| r.0)
            } else if first.is_alphabetic() {
                self.oov.read(piece)?
            } else {
                Some(piece.chars().map(symbol_phonemes).collect())
            };
            if let Some(ps) = ps.filter(|p| !p.is_empty()) {
                out.push(ps);
            }
        }
        Ok(if out.is_empty() {
            (String::new(), 3)
        } else {
            (out.join(" "), 2)
        })
    }

    /// Fills in every token's phonemes, reading right to left (misaki `G2P.__call__`).
    fn phonemize_tokens(&self, tokens: Vec<Tok>) -> Result<Vec<Tok>, Error> {
        let mut words = self.retokenize(tokens)?;
        let mut ctx = Context::default();
        for w in words.iter_mut().rev() {
            match w {
                Word::One(tk) => {
                    if tk.phonemes.is_none()
                        && let Some((ps, rating)) = self.lexicon.read(tk, &ctx)
                    {
                        tk.phonemes = Some(ps);
                        tk.rating = Some(rating);
                    }
                    if tk.phonemes.is_none() {
                        let (ps, rating) = self.fallback(tk)?;
                        tk.phonemes = Some(ps);
                        tk.rating = Some(rating);
                    }
                    ctx = Self::token_context(ctx, tk.phonemes.as_deref(), tk);
                }
                Word::Many(group) => self.phonemize_group(group, &mut ctx)?,
            }
        }
        Ok(words
            .into_iter()
            .map(|w| {
                let mut tk = match w {
                    Word::One(tk) => tk,
                    Word::Many(group) => merge_tokens(&group, Some("")),
                };
                if let Some(ps) = &tk.phonemes {
                    tk.phonemes = Some(ps.replace('ɾ', "T").replace('ʔ', "t"));
                }
                tk
            })
            .collect())
    }

    /// Reads sub-tokens written together: the longest run the lexicon knows, right to left; if
    /// some part is unknown, the whole group goes to the fallback.
    fn phonemize_group(&self, w: &mut [Tok], ctx: &mut Context) -> Result<(), Error> {
        let (mut left, mut right) = (0, w.len());
        let mut should_fallback = false;
        while left < right {
            let span = &w[left..right];
            let reading = if span.iter().any(Tok::is_resolved) {
                None
            } else {
                let tk = merge_tokens(span, None);
                self.lexicon.read(&tk, ctx).map(|r| (r, tk))
            };
            if let Some(((ps, rating), tk)) = reading {
                for x in &mut w[left + 1..right] {
                    x.phonemes = Some(String::new());
                    x.rating = Some(rating);
                }
                *ctx = Self::token_context(*ctx, Some(&ps), &tk);
                w[left].phonemes = Some(ps);
                w[left].rating = Some(rating);
                right = left;
                left = 0;
            } else if left + 1 < right {
                left += 1;
            } else {
                right -= 1;
                let tk = &mut w[right];
                if tk.phonemes.is_none() {
                    if tk.text.chars().all(is_junk) {
                        tk.phonemes = Some(String::new());
                        tk.rating = Some(3);
                    } else {
                        should_fallback = true;
                        break;
                    }
                }
                left = 0;
            }
        }
        if should_fallback {
            let merged = merge_tokens(w, None);
            let (ps, rating) = self.fallback(&merged)?;
            w[0].phonemes = Some(ps);
            w[0].rating = Some(rating);
            for x in &mut w[1..] {
                x.phonemes = Some(String::new());
                x.rating = Some(rating);
            }
        } else {
            Self::resolve_tokens(w);
        }
        Ok(())
    }
}

/// Inserts a space into whitespace-free runs longer than [`MAX_RUN_CHARS`].
fn cut_long_runs(text: &str) -> std::borrow::Cow<'_, str> {
    let mut run = 0;
    let mut needs_cut = false;
    for c in text.chars() {
        run = if c.is_whitespace() { 0 } else { run + 1 };
        needs_cut |= run > MAX_RUN_CHARS;
    }
    if !needs_cut {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + text.len() / MAX_RUN_CHARS);
    run = 0;
    for c in text.chars() {
        if c.is_whitespace() {
            run = 0;
        } else {
            if run == MAX_RUN_CHARS {
                out.push(' ');
                run = 0;
            }
            run += 1;
        }
        out.push(c);
    }
    out.into()
}
