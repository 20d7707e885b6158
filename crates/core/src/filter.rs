//! A small expression language for filtering recommended items by their fields and metadata:
//!
//! ```text
//! year >= 1990 AND NOT "Horror" IN categories
//! (categories CONTAINS "Comedy" OR tags CONTAINS "feel-good") AND metadata.age_rating != "R"
//! title = "Heat" OR id IN ["1", "2"]
//! ```
//!
//! Operators: `=` (`==`), `!=`, `<`, `<=`, `>`, `>=`, `IN` (value in list, or substring in text),
//! `CONTAINS` (list contains value, or text contains substring); `AND`, `OR`, `NOT`, parentheses.
//! Keywords are case-insensitive; string comparisons too. Fields: `id`, `title`, `description`,
//! `categories`, `tags`, `published_at` (Unix seconds), and any metadata key (`year` or
//! `metadata.year`; dotted paths reach into nested objects). A field that no item of the catalogue
//! has is an error, so a typo does not silently filter everything out. A missing value compares
//! false (and `NOT` of that true).

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::error::ServiceError;

/// Longest expression accepted, in bytes.
pub const MAX_FILTER_BYTES: usize = 2048;
const MAX_DEPTH: usize = 32;

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Num(f64),
    Op(&'static str),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(Operand, CmpOp, Operand),
    /// A bare operand: true when the value is truthy (`hidden`, `metadata.kids`).
    Truthy(Operand),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Contains,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    Field(Vec<String>),
    Literal(Value),
    List(Vec<Operand>),
}

fn err(message: impl Into<String>) -> ServiceError {
    ServiceError::invalid("filter", message)
}

fn tokenize(input: &str) -> Result<Vec<Token>, ServiceError> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push(Token::LParen);
                i += 1
            }
            ')' => {
                tokens.push(Token::RParen);
                i += 1
            }
            '[' => {
                tokens.push(Token::LBracket);
                i += 1
            }
            ']' => {
                tokens.push(Token::RBracket);
                i += 1
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1
            }
            '"' | '\'' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err("unterminated string")),
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some(&e) => s.push(e),
                                None => return Err(err("unterminated string")),
                            }
                            i += 2;
                        }
                        Some(&q) if q == quote => {
                            i += 1;
                            break;
                        }
                        Some(&other) => {
                            s.push(other);
                            i += 1;
                        }
                    }
                }
                tokens.push(Token::Str(s));
            }
            '=' | '!' | '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    ('=', Some('=')) => ("=", 2),
                    ('=', _) => ("=", 1),
                    ('!', Some('=')) => ("!=", 2),
                    ('<', Some('=')) => ("<=", 2),
                    ('<', Some('>')) => ("!=", 2),
                    ('<', _) => ("<", 1),
                    ('>', Some('=')) => (">=", 2),
                    ('>', _) => (">", 1),
                    _ => return Err(err(format!("unexpected {c:?} at character {}", i + 1))),
                };
                tokens.push(Token::Op(op));
                i += len;
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_digit() || matches!(chars[i], '.' | 'e' | 'E' | '_'))
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().filter(|&&c| c != '_').collect();
                let n: f64 = text
                    .parse()
                    .map_err(|_| err(format!("{text:?} is not a number")))?;
                tokens.push(Token::Num(n));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.' | '-'))
                {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(err(format!("unexpected {other:?} at character {}", i + 1))),
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
    depth: usize,
}

fn keyword(t: Option<&Token>, word: &str) -> bool {
    matches!(t, Some(Token::Ident(s)) if s.eq_ignore_ascii_case(word))
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn enter(&mut self) -> Result<(), ServiceError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err("the expression is nested too deeply"));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, ServiceError> {
        self.enter()?;
        let mut left = self.and()?;
        while keyword(self.peek(), "or") {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ServiceError> {
        let mut left = self.not()?;
        while keyword(self.peek(), "and") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ServiceError> {
        if keyword(self.peek(), "not") {
            self.pos += 1;
            self.enter()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, ServiceError> {
        if self.peek() == Some(&Token::LParen) {
            self.pos += 1;
            let inner = self.expr()?;
            if self.next() != Some(Token::RParen) {
                return Err(err("missing )"));
            }
            return Ok(inner);
        }
        let left = self.operand()?;
        let op = match self.peek() {
            Some(Token::Op(o)) => Some(match *o {
                "=" => CmpOp::Eq,
                "!=" => CmpOp::Ne,
                "<" => CmpOp::Lt,
                "<=" => CmpOp::Le,
                ">" => CmpOp::Gt,
                _ => CmpOp::Ge,
            }),
            t if keyword(t, "in") => Some(CmpOp::In),
            t if keyword(t, "contains") => Some(CmpOp::Contains),
            _ => None,
        };
        match op {
            Some(op) => {
                self.pos += 1;
                let right = self.operand()?;
                Ok(Expr::Compare(left, op, right))
            }
            None => Ok(Expr::Truthy(left)),
        }
    }

    fn operand(&mut self) -> Result<Operand, ServiceError> {
        match self.next() {
            Some(Token::Str(s)) => Ok(Operand::Literal(Value::String(s))),
            Some(Token::Num(n)) => Ok(Operand::Literal(
                serde_json::Number::from_f64(n)
                    .map(Value::Number)
                    .unwrap_or(Value::Null),
            )),
            Some(Token::LBracket) => {
                let mut items = Vec::new();
                if self.peek() == Some(&Token::RBracket) {
                    self.pos += 1;
                    return Ok(Operand::List(items));
                }
                loop {
                    items.push(self.operand()?);
                    match self.next() {
                        Some(Token::Comma) => continue,
                        Some(Token::RBracket) => return Ok(Operand::List(items)),
                        _ => return Err(err("expected , or ] in a list")),
                    }
                }
            }
            Some(Token::Ident(word)) => {
                let lower = word.to_ascii_lowercase();
                match lower.as_str() {
                    "true" => Ok(Operand::Literal(Value::Bool(true))),
                    "false" => Ok(Operand::Literal(Value::Bool(false))),
                    "null" => Ok(Operand::Literal(Value::Null)),
                    "and" | "or" | "not" | "in" | "contains" => {
                        Err(err(format!("expected a value, found {word}")))
                    }
                    _ => {
                        let path: Vec<String> = word.split('.').map(str::to_string).collect();
                        if path.iter().any(String::is_empty) {
                            return Err(err(format!("{word:?} is not a field name")));
                        }
                        Ok(Operand::Field(path))
                    }
                }
            }
            Some(other) => Err(err(format!("expected a value, found {other:?}"))),
            None => Err(err("the expression ends too early")),
        }
    }
}

/// Built-in item fields (everything else is looked up in the metadata).
const BUILTIN: [&str; 7] = [
    "id",
    "title",
    "description",
    "categories",
    "tags",
    "published_at",
    "hidden",
];

impl Expr {
    /// Parses `input`; fields must be built-in or among `known_metadata` (the metadata keys
    /// present in the catalogue).
    pub fn parse(input: &str, known_metadata: &HashSet<String>) -> Result<Expr, ServiceError> {
        if input.len() > MAX_FILTER_BYTES {
            return Err(err(format!("is longer than {MAX_FILTER_BYTES} bytes")));
        }
        let tokens = tokenize(input)?;
        if tokens.is_empty() {
            return Err(err("is empty"));
        }
        let mut p = Parser {
            tokens: &tokens,
            pos: 0,
            depth: 0,
        };
        let expr = p.expr()?;
        if p.pos < tokens.len() {
            return Err(err(format!(
                "unexpected {:?} after the end of the expression",
                tokens[p.pos]
            )));
        }
        expr.check_fields(known_metadata)?;
        Ok(expr)
    }

    fn check_fields(&self, known: &HashSet<String>) -> Result<(), ServiceError> {
        let check = |o: &Operand| o.check_fields(known);
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.check_fields(known)?;
                b.check_fields(known)
            }
            Expr::Not(a) => a.check_fields(known),
            Expr::Compare(a, _, b) => {
                check(a)?;
                check(b)
            }
            Expr::Truthy(a) => check(a),
        }
    }

    /// Whether an item passes.
    pub fn matches(&self, item: &ItemView<'_>) -> bool {
        match self {
            Expr::And(a, b) => a.matches(item) && b.matches(item),
            Expr::Or(a, b) => a.matches(item) || b.matches(item),
            Expr::Not(a) => !a.matches(item),
            Expr::Truthy(a) => truthy(&a.eval(item)),
            Expr::Compare(a, op, b) => compare(&a.eval(item), *op, &b.eval(item)),
        }
    }
}

impl Operand {
    fn check_fields(&self, known: &HashSet<String>) -> Result<(), ServiceError> {
        match self {
            Operand::Field(path) => {
                let head = path[0].as_str();
                let ok = (path.len() == 1 && BUILTIN.contains(&head))
                    || (head == "metadata" && path.len() > 1 && known.contains(&path[1]))
                    || known.contains(head);
                if ok {
                    Ok(())
                } else {
                    Err(err(format!("unknown field {:?}", path.join("."))))
                }
            }
            Operand::List(items) => items.iter().try_for_each(|o| o.check_fields(known)),
            Operand::Literal(_) => Ok(()),
        }
    }

    fn eval(&self, item: &ItemView<'_>) -> Value {
        match self {
            Operand::Literal(v) => v.clone(),
            Operand::List(items) => Value::Array(items.iter().map(|o| o.eval(item)).collect()),
            Operand::Field(path) => item.field(path),
        }
    }
}

/// What the filter can see of an item.
pub struct ItemView<'a> {
    pub id: &'a str,
    pub title: Option<&'a str>,
    pub description: Option<&'a str>,
    pub categories: &'a [String],
    pub tags: &'a [String],
    pub published_at: Option<i64>,
    pub hidden: bool,
    pub metadata: &'a Map<String, Value>,
}

impl ItemView<'_> {
    fn field(&self, path: &[String]) -> Value {
        let strings =
            |v: &[String]| Value::Array(v.iter().map(|s| Value::String(s.clone())).collect());
        let opt = |v: Option<&str>| {
            v.map(|s| Value::String(s.to_string()))
                .unwrap_or(Value::Null)
        };
        if path.len() == 1 {
            match path[0].as_str() {
                "id" => return Value::String(self.id.to_string()),
                "title" => return opt(self.title),
                "description" => return opt(self.description),
                "categories" => return strings(self.categories),
                "tags" => return strings(self.tags),
                "published_at" => {
                    return self
                        .published_at
                        .map(|t| Value::from(t / 1000))
                        .unwrap_or(Value::Null);
                }
                "hidden" => return Value::Bool(self.hidden),
                _ => {}
            }
        }
        let rest = if path[0] == "metadata" && path.len() > 1 {
            &path[1..]
        } else {
            path
        };
        let mut current = match self.metadata.get(&rest[0]) {
            Some(v) => v,
            None => return Value::Null,
        };
        for key in &rest[1..] {
            current = match current.get(key) {
                Some(v) => v,
                None => return Value::Null,
            };
        }
        current.clone()
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => {
            x.eq_ignore_ascii_case(y) || x.to_lowercase() == y.to_lowercase()
        }
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        // A number stored as text, or the other way round, still compares.
        (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s)) => {
            s.trim().parse::<f64>().ok() == n.as_f64()
        }
        (x, y) => x == y,
    }
}

fn order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    let num = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => match (a, b) {
            (Value::String(x), Value::String(y)) => Some(x.to_lowercase().cmp(&y.to_lowercase())),
            _ => None,
        },
    }
}

fn contains(container: &Value, needle: &Value) -> bool {
    match container {
        Value::Array(items) => items.iter().any(|i| equal(i, needle)),
        Value::String(s) => match needle {
            Value::String(n) => s.to_lowercase().contains(&n.to_lowercase()),
            _ => false,
        },
        _ => false,
    }
}

fn compare(a: &Value, op: CmpOp, b: &Value) -> bool {
    use std::cmp::Ordering::*;
    if a.is_null() && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
        return false;
    }
    match op {
        CmpOp::Eq => equal(a, b),
        CmpOp::Ne => !equal(a, b),
        CmpOp::Lt => order(a, b) == Some(Less),
        CmpOp::Le => matches!(order(a, b), Some(Less | Equal)),
        CmpOp::Gt => order(a, b) == Some(Greater),
        CmpOp::Ge => matches!(order(a, b), Some(Greater | Equal)),
        CmpOp::In => contains(b, a),
        CmpOp::Contains => contains(a, b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn known() -> HashSet<String> {
        ["year", "rating", "studio"]
            .into_iter()
            .map(String::from)
            .collect()
    }

    fn film<'a>(categories: &'a [String], metadata: &'a Map<String, Value>) -> ItemView<'a> {
        ItemView {
            id: "50",
            title: Some("Star Wars (1977)"),
            description: None,
            categories,
            tags: &[],
            published_at: Some(220_924_800_000),
            hidden: false,
            metadata,
        }
    }

    fn check(expr: &str, expect: bool) {
        let cats = vec!["Action".to_string(), "Sci-Fi".to_string()];
        let meta = json!({"year": 1977, "rating": "PG", "studio": {"name": "Lucasfilm"}})
            .as_object()
            .unwrap()
            .clone();
        let e = Expr::parse(expr, &known()).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(e.matches(&film(&cats, &meta)), expect, "{expr}");
    }

    #[test]
    fn evaluates_the_documented_forms() {
        check("year >= 1990 AND NOT \"Horror\" IN categories", false);
        check("year < 1990 AND NOT \"Horror\" IN categories", true);
        check("\"sci-fi\" in categories", true);
        check("categories CONTAINS 'Action' OR tags CONTAINS 'x'", true);
        check("metadata.year = 1977", true);
        check("year == \"1977\"", true);
        check("rating != 'R' and (year > 1970 or id = 'x')", true);
        check("id IN ['1', '50']", true);
        check("title CONTAINS 'star'", true);
        check("'Wars' IN title", true);
        check("studio.name = 'Lucasfilm'", true);
        check("published_at < 300000000", true);
        check("NOT hidden", true);
        check("metadata.year > 2000 OR NOT NOT true", true);
    }

    #[test]
    fn missing_values_compare_false() {
        let meta = Map::new();
        let e = Expr::parse("year >= 1990", &known()).unwrap();
        assert!(!e.matches(&film(&[], &meta)));
        let e = Expr::parse("NOT year >= 1990", &known()).unwrap();
        assert!(e.matches(&film(&[], &meta)));
    }

    #[test]
    fn bad_expressions_are_clear_errors() {
        for bad in [
            "",
            "year >=",
            "year >= 1990 AND",
            "(year > 1",
            "\"open",
            "year @ 3",
            "colour = 'red'",
            "metadata.colour = 1",
            "year > 1 1",
            "AND year",
            "[1, 2",
        ] {
            let e = Expr::parse(bad, &known()).unwrap_err();
            assert!(
                matches!(e, ServiceError::Invalid { ref field, .. } if field == "filter"),
                "{bad}: {e}"
            );
        }
        assert!(Expr::parse(&"(".repeat(100), &known()).is_err());
        assert!(Expr::parse(&format!("year = '{}'", "x".repeat(3000)), &known()).is_err());
        let e = Expr::parse("colour = 'red'", &known()).unwrap_err();
        assert!(e.to_string().contains("colour"));
    }
}
