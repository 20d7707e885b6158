//! English number words: the subset of `num2words` that misaki's number reading uses (cardinal,
//! ordinal, year, decimal), written out so the readings match hibari's `numbers.py` word for word.
//! The caller splits the results on non-letters, so punctuation ("thirty-four", "one thousand, two")
//! only has to be placed the way num2words places it.

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];
const SCALES: [&str; 12] = [
    "",
    "thousand",
    "million",
    "billion",
    "trillion",
    "quadrillion",
    "quintillion",
    "sextillion",
    "septillion",
    "octillion",
    "nonillion",
    "decillion",
];

/// The largest number `cardinal` can name (below 1000 decillion); bigger ones are read digit by digit
/// by the callers (the Python original raises there).
pub const MAX_CARDINAL: u128 = 10u128.pow(36) - 1;

fn below_1000(mut n: u128, words: &mut Vec<String>) {
    let start = words.len();
    if n >= 100 {
        words.push(ONES[(n / 100) as usize].to_string());
        words.push("hundred".to_string());
        n %= 100;
        if n != 0 {
            words.push("and".to_string());
        }
    }
    if n >= 20 {
        let tens = TENS[(n / 10) as usize];
        if !n.is_multiple_of(10) {
            words.push(format!("{tens}-{}", ONES[(n % 10) as usize]));
        } else {
            words.push(tens.to_string());
        }
    } else if n != 0 || words.len() == start {
        words.push(ONES[n as usize].to_string());
    }
}

fn below_1000_text(n: u128) -> String {
    let mut words = Vec::new();
    below_1000(n, &mut words);
    words.join(" ")
}

/// `num2words(n)`: "one thousand, two hundred and thirty-four". `n` must be at most [`MAX_CARDINAL`].
pub fn cardinal(n: u128) -> String {
    if n < 1000 {
        return below_1000_text(n);
    }
    let mut groups = Vec::new();
    let mut scale = 0;
    let mut rest = n;
    while rest != 0 {
        let g = rest % 1000;
        rest /= 1000;
        if g != 0 {
            let mut text = below_1000_text(g);
            if scale != 0 {
                text.push(' ');
                text.push_str(SCALES.get(scale).copied().unwrap_or(""));
            }
            groups.push(text);
        }
        scale += 1;
    }
    groups.reverse();
    let last = groups.last().cloned().unwrap_or_default();
    let after_and = last.rsplit(" and ").next().unwrap_or("");
    if groups.len() > 1 && !after_and.contains(' ') && !last.contains("hundred") {
        let head = groups[..groups.len() - 1].join(", ");
        return format!("{head} and {last}");
    }
    groups.join(", ")
}

fn ordinal_word(w: &str) -> String {
    match w {
        "one" => "first".into(),
        "two" => "second".into(),
        "three" => "third".into(),
        "five" => "fifth".into(),
        "eight" => "eighth".into(),
        "nine" => "ninth".into(),
        "twelve" => "twelfth".into(),
        _ => match w.strip_suffix('y') {
            Some(stem) => format!("{stem}ieth"),
            None => format!("{w}th"),
        },
    }
}

/// `num2words(n, to='ordinal')`: "twenty-third", "one hundred and first", "one thousandth".
pub fn ordinal(n: u128) -> String {
    let c = cardinal(n);
    let (head, last) = match c.rfind(' ') {
        Some(i) => (&c[..=i], &c[i + 1..]),
        None => ("", c.as_str()),
    };
    let last = match last.rfind('-') {
        Some(i) => format!("{}-{}", &last[..i], ordinal_word(&last[i + 1..])),
        None => ordinal_word(last),
    };
    format!("{head}{last}")
}

/// `num2words(n, to='year')`: "nineteen oh-five", "two thousand and five", "twenty ten".
pub fn year(n: u128) -> String {
    let (high, low) = (n / 100, n % 100);
    if high == 0 || (high % 10 == 0 && low < 10) || high >= 100 {
        return cardinal(n);
    }
    let low_text = if low == 0 {
        "hundred".to_string()
    } else if low < 10 {
        format!("oh-{}", cardinal(low))
    } else {
        cardinal(low)
    };
    format!("{} {low_text}", cardinal(high))
}

/// `num2words(float(s))` for a plain decimal string: "3.14" -> "three point one four" (trailing zeros
/// of the fraction dropped, as `float()` does). `None` when the integer part is too big to name.
pub fn decimal(s: &str) -> Option<String> {
    let (int_part, frac) = s.split_once('.').unwrap_or((s, ""));
    let frac = frac.trim_end_matches('0');
    let int_value = if int_part.is_empty() {
        0
    } else {
        parse_cardinal(int_part)?
    };
    let mut words = cardinal(int_value);
    if !frac.is_empty() {
        words.push_str(" point");
        for c in frac.chars() {
            words.push(' ');
            words.push_str(ONES[c.to_digit(10)? as usize]);
        }
    }
    Some(words)
}

/// An ASCII digit string as a number `cardinal` can name; `None` when it is not one.
pub fn parse_cardinal(s: &str) -> Option<u128> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = s.trim_start_matches('0');
    if digits.len() > 36 {
        return None;
    }
    let n: u128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    (n <= MAX_CARDINAL).then_some(n)
}

/// Number words for a digit string: `cardinal` when it can be named, else the digits one by one.
pub fn cardinal_text(s: &str) -> String {
    match parse_cardinal(s) {
        Some(n) => cardinal(n),
        None => digits_text(s),
    }
}

/// Number words for an ordinal written in digits; digit by digit when too big to name.
pub fn ordinal_text(s: &str) -> String {
    match parse_cardinal(s) {
        Some(n) => ordinal(n),
        None => digits_text(s),
    }
}

/// "one two three" for "123" (non-digits are skipped).
pub fn digits_text(s: &str) -> String {
    s.chars()
        .filter_map(|c| c.to_digit(10))
        .map(|d| ONES[d as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings() {
        assert_eq!(cardinal(0), "zero");
        assert_eq!(cardinal(1234), "one thousand, two hundred and thirty-four");
        assert_eq!(cardinal(1001), "one thousand and one");
        assert_eq!(cardinal(1250), "one thousand, two hundred and fifty");
        assert_eq!(cardinal(2_000_020), "two million and twenty");
        assert_eq!(ordinal(23), "twenty-third");
        assert_eq!(ordinal(101), "one hundred and first");
        assert_eq!(ordinal(1000), "one thousandth");
        assert_eq!(ordinal(40), "fortieth");
        assert_eq!(year(1905), "nineteen oh-five");
        assert_eq!(year(2005), "two thousand and five");
        assert_eq!(year(2010), "twenty ten");
        assert_eq!(year(1900), "nineteen hundred");
        assert_eq!(decimal("3.140").unwrap(), "three point one four");
        assert_eq!(decimal("2.0").unwrap(), "two");
        assert_eq!(cardinal_text(&"9".repeat(40)).split(' ').count(), 40);
    }
}
