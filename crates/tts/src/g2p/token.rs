//! The token record shared by the tokenizer, tagger and lexicon (misaki's `MToken`, flattened).

#[derive(Debug, Clone, Default)]
pub struct Tok {
    pub text: String,
    pub tag: String,
    /// Whitespace followed the token in the text.
    pub whitespace: bool,
    pub phonemes: Option<String>,
    pub is_head: bool,
    pub alias: Option<String>,
    pub stress: Option<f64>,
    pub currency: Option<String>,
    pub prespace: bool,
    pub rating: Option<i32>,
}

impl Tok {
    pub fn new(text: String, tag: String, whitespace: bool) -> Tok {
        Tok {
            text,
            tag,
            whitespace,
            is_head: true,
            ..Tok::default()
        }
    }

    /// The word the lexicon reads (an alias such as "to" for "2" in "B2B", else the text).
    pub fn word(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.text)
    }

    pub fn is_resolved(&self) -> bool {
        self.alias.is_some() || self.phonemes.is_some()
    }
}

/// Several sub-tokens read as one word (misaki `merge_tokens`). With `unk`, the phonemes are joined
/// too (a space where a sub-token asked for one), unknown ones replaced by `unk`.
pub fn merge_tokens(tokens: &[Tok], unk: Option<&str>) -> Tok {
    let Some(last) = tokens.last() else {
        return Tok::default();
    };
    // the stress all sub-tokens agree on, if any (Python: the set of stresses has one element)
    let mut stresses = tokens.iter().filter_map(|t| t.stress);
    let stress = stresses
        .next()
        .filter(|&first| stresses.all(|s| s == first));
    let currency = tokens.iter().filter_map(|t| t.currency.clone()).max();
    let rating = if tokens.iter().any(|t| t.rating.is_none()) {
        None
    } else {
        tokens.iter().filter_map(|t| t.rating).min()
    };
    let phonemes = unk.map(|unk| {
        let mut ps = String::new();
        for tk in tokens {
            let has = tk.phonemes.as_deref().is_some_and(|p| !p.is_empty());
            if tk.prespace && !ps.is_empty() && !ps.ends_with(char::is_whitespace) && has {
                ps.push(' ');
            }
            ps.push_str(tk.phonemes.as_deref().unwrap_or(unk));
        }
        ps
    });
    let mut text = String::new();
    for tk in &tokens[..tokens.len() - 1] {
        text.push_str(&tk.text);
        if tk.whitespace {
            text.push(' ');
        }
    }
    text.push_str(&last.text);
    // the tag of the sub-token with the most weight (capitals count double); the first on ties
    let weight = |t: &Tok| -> usize {
        t.text
            .chars()
            .map(|c| if c.to_lowercase().eq([c]) { 1 } else { 2 })
            .sum()
    };
    let mut best = &tokens[0];
    for tk in &tokens[1..] {
        if weight(tk) > weight(best) {
            best = tk;
        }
    }
    Tok {
        text,
        tag: best.tag.clone(),
        whitespace: last.whitespace,
        phonemes,
        is_head: tokens[0].is_head,
        alias: None,
        stress,
        currency,
        prespace: tokens[0].prespace,
        rating,
    }
}
