//! Python `str` predicates and case mappings the G2P rules are written in terms of (`isalpha`,
//! `islower`, `capitalize`, slicing by code point, ...). The rules were tuned against Python's
//! behaviour, so they are reproduced here rather than approximated at each call site.

/// `s.isalpha()`: non-empty and every character a letter.
pub fn is_alpha(s: &str) -> bool {
    !s.is_empty() && s.chars().all(char::is_alphabetic)
}

/// `c.isdigit()` for one character (ASCII and other decimal digits, superscripts).
pub fn char_is_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric() && digit_value(c).is_some())
}

/// `s.isdigit()`.
pub fn is_digit_str(s: &str) -> bool {
    !s.is_empty() && s.chars().all(char_is_digit)
}

/// The value of a digit character (ASCII, superscript, subscript, fullwidth or another script's
/// decimal digit): `unicodedata.digit(c)` for the common ones.
pub fn digit_value(c: char) -> Option<u32> {
    if let Some(d) = c.to_digit(10) {
        return Some(d);
    }
    match c {
        '⁰' => Some(0),
        '¹' => Some(1),
        '²' => Some(2),
        '³' => Some(3),
        '⁴'..='⁹' => Some(c as u32 - '⁴' as u32 + 4),
        '₀'..='₉' => Some(c as u32 - '₀' as u32),
        _ => {
            // Decimal digits of other scripts come in runs of ten starting at a code point ending
            // in 0 or 6 (Arabic-Indic, Devanagari, fullwidth, ...); check the run's zero is a digit too.
            let cp = c as u32;
            for zero in [cp - cp % 16, cp - cp % 16 + 6] {
                if zero <= cp && cp < zero + 10 {
                    let z = char::from_u32(zero)?;
                    if z.is_numeric() && c.is_numeric() && !z.is_ascii() && is_decimal_run(zero) {
                        return Some(cp - zero);
                    }
                }
            }
            None
        }
    }
}

fn is_decimal_run(zero: u32) -> bool {
    (zero..zero + 10).all(|cp| char::from_u32(cp).is_some_and(char::is_numeric))
}

/// `s.islower()`: at least one cased character and no uppercase ones.
pub fn is_lower(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_uppercase() {
            return false;
        }
        cased |= c.is_lowercase();
    }
    cased
}

/// `s.isupper()`: at least one cased character and no lowercase ones.
pub fn is_upper(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_lowercase() {
            return false;
        }
        cased |= c.is_uppercase();
    }
    cased
}

/// `s.lower()`.
pub fn lower(s: &str) -> String {
    s.to_lowercase()
}

/// `s.upper()`.
pub fn upper(s: &str) -> String {
    s.to_uppercase()
}

/// `s.capitalize()`: first character upper, the rest lower.
pub fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => {
            let mut out: String = first.to_uppercase().collect();
            out.push_str(&chars.as_str().to_lowercase());
            out
        }
        None => String::new(),
    }
}

/// `s[1:]` (by character).
pub fn tail(s: &str) -> &str {
    let mut chars = s.chars();
    chars.next();
    chars.as_str()
}

/// `s[-n:]` (by character).
pub fn last_chars(s: &str, n: usize) -> &str {
    match s.char_indices().rev().nth(n.saturating_sub(1)) {
        Some((i, _)) if n > 0 => &s[i..],
        _ if n == 0 => "",
        _ => s,
    }
}

/// `s[:n]` (by character).
pub fn first_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `s[:-n]` (by character).
pub fn drop_last_chars(s: &str, n: usize) -> &str {
    let cut = last_chars(s, n).len();
    &s[..s.len() - cut]
}

/// `s[-1]`.
pub fn last_char(s: &str) -> Option<char> {
    s.chars().next_back()
}

/// `s[-2]`.
pub fn second_last_char(s: &str) -> Option<char> {
    s.chars().rev().nth(1)
}

/// `len(s)` (code points).
pub fn char_len(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_semantics() {
        assert!(is_alpha("Zoë") && !is_alpha("") && !is_alpha("a1"));
        assert!(is_lower("abc1") && !is_lower("123") && !is_lower("aB"));
        assert!(is_upper("ABC-1") && !is_upper("-"));
        assert_eq!(capitalize("hELLO"), "Hello");
        assert_eq!(tail("éab"), "ab");
        assert_eq!(last_chars("héllo", 3), "llo");
        assert_eq!(last_chars("hé", 3), "hé");
        assert_eq!(last_chars("hé", 0), "");
        assert_eq!(first_chars("héllo", 2), "hé");
        assert_eq!(drop_last_chars("héllo", 4), "h");
        assert_eq!(drop_last_chars("hé", 4), "");
        assert_eq!(digit_value('٣'), Some(3));
        assert_eq!(digit_value('²'), Some(2));
        assert_eq!(digit_value('½'), None);
        assert!(char_is_digit('7') && !char_is_digit('x'));
    }
}
