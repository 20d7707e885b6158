//! What a request costs: billable units, exact money, billing periods and the operator's price table.
//!
//! Money is an integer count of billionths of the currency unit. Prices per token are tiny
//! (0.00000015 per input token is 0.15 per million): in nano-units they are exact integers,
//! so a month of usage adds up to the same total however it is split into requests, and
//! nothing drifts the way binary floating point does. A price applies to a block of units
//! (a million tokens, a thousand recommendations, an audio minute) because that is how
//! providers quote prices; the cost of a request rounds up to the next nano-unit.
//!
//! Billing periods are UTC calendar months or days, so that quotas, budgets and invoices reset
//! at the same instant for every tenant, wherever the server runs.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use time::{Date, Month};

use crate::policy::PolicyError;

/// Billable unit types, in this fixed order (the store keeps one column per unit in the same order).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Recommendation responses (one per request to a recommend endpoint).
    Recommendations,
    /// Prompt tokens sent to a chat model.
    InputTokens,
    /// Completion tokens a chat model generated.
    OutputTokens,
    /// Tokens embedded by an embedding model.
    EmbeddingTokens,
    /// Characters of text synthesised to speech.
    TtsCharacters,
    /// Images classified or labelled.
    Images,
    /// Milliseconds of audio transcribed.
    AudioMilliseconds,
}

impl Unit {
    /// Every unit, in storage order.
    pub const ALL: [Unit; 7] = [
        Unit::Recommendations,
        Unit::InputTokens,
        Unit::OutputTokens,
        Unit::EmbeddingTokens,
        Unit::TtsCharacters,
        Unit::Images,
        Unit::AudioMilliseconds,
    ];

    /// Position in [`Unit::ALL`] (and in [`Units`]).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The snake_case name used in JSON, headers and price tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Recommendations => "recommendations",
            Unit::InputTokens => "input_tokens",
            Unit::OutputTokens => "output_tokens",
            Unit::EmbeddingTokens => "embedding_tokens",
            Unit::TtsCharacters => "tts_characters",
            Unit::Images => "images",
            Unit::AudioMilliseconds => "audio_milliseconds",
        }
    }

    /// The unit named `s` (exact snake_case name).
    pub fn parse(s: &str) -> Option<Unit> {
        Unit::ALL.into_iter().find(|u| u.as_str() == s)
    }

    /// How many units one price applies to: recommendations 1,000, tokens 1,000,000,
    /// TTS characters 1,000, images 1, audio milliseconds 60,000 (a price per audio minute).
    pub fn block(self) -> u64 {
        match self {
            Unit::Recommendations => 1_000,
            Unit::InputTokens | Unit::OutputTokens | Unit::EmbeddingTokens => 1_000_000,
            Unit::TtsCharacters => 1_000,
            Unit::Images => 1,
            Unit::AudioMilliseconds => 60_000,
        }
    }

    /// What a price of this unit is quoted per, for price lists and invoices.
    pub fn block_label(self) -> &'static str {
        match self {
            Unit::Recommendations => "per 1,000 recommendations",
            Unit::InputTokens => "per 1M input tokens",
            Unit::OutputTokens => "per 1M output tokens",
            Unit::EmbeddingTokens => "per 1M embedding tokens",
            Unit::TtsCharacters => "per 1,000 TTS characters",
            Unit::Images => "per image",
            Unit::AudioMilliseconds => "per audio minute",
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Quantities of each unit, indexed by [`Unit::index`].
///
/// Serialized as a JSON object of the non-zero units: `{"input_tokens": 12, "output_tokens": 30}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Units(pub [u64; 7]);

impl Units {
    /// `n` of one unit and nothing else.
    pub fn one(unit: Unit, n: u64) -> Self {
        let mut units = Units::default();
        units.set(unit, n);
        units
    }

    pub fn get(&self, unit: Unit) -> u64 {
        self.0[unit.index()]
    }

    pub fn set(&mut self, unit: Unit, n: u64) {
        self.0[unit.index()] = n;
    }

    /// Adds `other` unit by unit, saturating at `u64::MAX`.
    pub fn add(&mut self, other: &Units) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine = mine.saturating_add(theirs);
        }
    }

    /// Subtracts `other` unit by unit, stopping at zero.
    pub fn saturating_sub(&mut self, other: &Units) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine = mine.saturating_sub(theirs);
        }
    }

    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|&n| n == 0)
    }

    /// The non-zero units, in storage order.
    pub fn iter(&self) -> impl Iterator<Item = (Unit, u64)> {
        let values = self.0;
        Unit::ALL.into_iter().zip(values).filter(|&(_, n)| n > 0)
    }

    /// `x-marquee-units` header value: `"recommendations=1"` or
    /// `"input_tokens=12, output_tokens=30"`; empty when there are no units.
    pub fn header_value(&self) -> String {
        self.iter()
            .map(|(unit, n)| format!("{unit}={n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Serialize for Units {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter().map(|(unit, n)| (unit.as_str(), n)))
    }
}

impl<'de> Deserialize<'de> for Units {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<Unit, u64>::deserialize(deserializer)?;
        let mut units = Units::default();
        for (unit, n) in map {
            units.set(unit, n);
        }
        Ok(units)
    }
}

/// In the OpenAPI document: an object with a count per unit name (answers leave out the units
/// with a zero count).
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Units {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
        let mut object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .description(Some(
                "Billable units by unit name; answers leave out units with a zero count.",
            ));
        for unit in Unit::ALL {
            object = object.property(
                unit.as_str(),
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            );
        }
        object.into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Units {}

/// In the OpenAPI document: a decimal string (requests may also send a JSON number).
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^[0-9]+(\.[0-9]{1,9})?$"))
                    .examples(["0.5", "12", "0.00000015"]),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .minimum(Some(0))
                    .description(Some("accepted in requests only")),
            )
            .description(Some(
                "An amount of money in the price table's currency, exact to nine decimal places.",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Money {}

const NANOS_PER_UNIT: i64 = 1_000_000_000;

/// An amount of money in billionths of the currency unit (nano-units), so that a price per
/// token is exact.
///
/// Displays and serializes as the shortest exact decimal (`"0.5"`, `"12"`, `"0.00000015"`);
/// deserializes from that string or from a JSON number (read through its decimal text, so
/// `0.15` is exactly 150,000,000 nanos).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(pub i64);

impl Money {
    pub const ZERO: Money = Money(0);

    /// The largest amount [`Money::parse`] and deserialization accept: one billion currency
    /// units (1e18 nanos; an `i64` of nanos cannot hold more than about 9.2e9 units).
    pub const MAX_AMOUNT: Money = Money(1_000_000_000 * NANOS_PER_UNIT);

    pub const fn from_nanos(nanos: i64) -> Self {
        Money(nanos)
    }

    /// Whole currency units, saturating.
    pub const fn from_units(units: i64) -> Self {
        Money(units.saturating_mul(NANOS_PER_UNIT))
    }

    pub const fn nanos(self) -> i64 {
        self.0
    }

    /// Parses a non-negative decimal (`"0.5"`, `"12"`, `"0.000000150"`) with at most 9
    /// decimals and a value of at most [`Money::MAX_AMOUNT`].
    pub fn parse(s: &str) -> Result<Money, PolicyError> {
        let shown: String = s.chars().take(40).collect();
        let error = |message: String| PolicyError::new("amount", message);
        let not_a_number = || error(format!("`{shown}` is not a decimal amount like 12 or 0.5"));
        if s.starts_with('-') {
            return Err(error(format!(
                "`{shown}` is negative; amounts must be zero or more"
            )));
        }
        let (whole, fraction) = match s.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (s, None),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(not_a_number());
        }
        let too_large = || {
            error(format!(
                "`{shown}` is too large; amounts are at most {}",
                Money::MAX_AMOUNT
            ))
        };
        let significant = whole.trim_start_matches('0');
        if significant.len() > 10 {
            return Err(too_large());
        }
        let whole_units: i64 = if significant.is_empty() {
            0
        } else {
            significant.parse().map_err(|_| not_a_number())?
        };
        let mut fraction_nanos: i64 = 0;
        if let Some(fraction) = fraction {
            if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
                return Err(not_a_number());
            }
            if fraction.len() > 9 {
                return Err(error(format!(
                    "`{shown}` has more than 9 decimals; amounts are exact to a billionth"
                )));
            }
            for (position, digit) in fraction.bytes().enumerate() {
                let place = 10_i64.pow(8 - position as u32);
                fraction_nanos += i64::from(digit - b'0') * place;
            }
        }
        let nanos = whole_units
            .checked_mul(NANOS_PER_UNIT)
            .and_then(|n| n.checked_add(fraction_nanos))
            .ok_or_else(too_large)?;
        if nanos > Money::MAX_AMOUNT.0 {
            return Err(too_large());
        }
        Ok(Money(nanos))
    }

    pub fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: Money) -> Money {
        Money(self.0.saturating_sub(other.0))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let magnitude = self.0.unsigned_abs();
        let per_unit = NANOS_PER_UNIT as u64;
        let (whole, fraction) = (magnitude / per_unit, magnitude % per_unit);
        if self.0 < 0 {
            f.write_str("-")?;
        }
        write!(f, "{whole}")?;
        if fraction != 0 {
            let digits = format!("{fraction:09}");
            write!(f, ".{}", digits.trim_end_matches('0'))?;
        }
        Ok(())
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MoneyVisitor;

        impl de::Visitor<'_> for MoneyVisitor {
            type Value = Money;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative decimal amount, as a string or a number")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Money, E> {
                Money::parse(s).map_err(|e| E::custom(e.message))
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Money, E> {
                self.visit_str(&n.to_string())
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Money, E> {
                self.visit_str(&n.to_string())
            }

            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Money, E> {
                if !n.is_finite() {
                    return Err(E::custom(format!("{n} is not an amount of money")));
                }
                if n == 0.0 {
                    return Ok(Money::ZERO);
                }
                // `Display` for f64 writes the shortest decimal that reads back as the same
                // number, without an exponent: 0.15 becomes "0.15", not 0.1499999….
                self.visit_str(&n.to_string())
            }
        }

        deserializer.deserialize_any(MoneyVisitor)
    }
}

/// A billing period: quotas, budgets and invoices count within one.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// UTC calendar months.
    Month,
    /// UTC calendar days.
    Day,
}

const DAY_MS: i64 = 86_400_000;
/// Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;
/// -9999-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: the range of the `time` crate's dates.
/// Timestamps outside it are clamped to it (no period computation panics).
const MIN_MS: i64 = -377_705_116_800_000;
const MAX_MS: i64 = 253_402_300_799_999;

/// The UTC date containing `at_ms`, clamped to the supported range.
fn date_of(at_ms: i64) -> Date {
    let days = at_ms.clamp(MIN_MS, MAX_MS).div_euclid(DAY_MS) + UNIX_EPOCH_JULIAN_DAY;
    let fallback = if at_ms < 0 { Date::MIN } else { Date::MAX };
    i32::try_from(days)
        .ok()
        .and_then(|days| Date::from_julian_day(days).ok())
        .unwrap_or(fallback)
}

/// Unix milliseconds of the start of `date` (UTC).
fn start_ms(date: Date) -> i64 {
    (i64::from(date.to_julian_day()) - UNIX_EPOCH_JULIAN_DAY) * DAY_MS
}

fn first_of_month(date: Date) -> Date {
    Date::from_calendar_date(date.year(), date.month(), 1).unwrap_or(date)
}

impl Period {
    /// Start (Unix ms) of the period containing `at_ms`.
    pub fn start_of(self, at_ms: i64) -> i64 {
        let date = date_of(at_ms);
        match self {
            Period::Day => start_ms(date),
            Period::Month => start_ms(first_of_month(date)),
        }
    }

    /// Start (Unix ms) of the period after the one containing `at_ms`.
    pub fn next_start(self, at_ms: i64) -> i64 {
        let date = date_of(at_ms);
        let days = match self {
            Period::Day => 1,
            Period::Month => i64::from(date.month().length(date.year())),
        };
        self.start_of(at_ms) + days * DAY_MS
    }

    /// `"2026-11"` for a month, `"2026-11-30"` for a day.
    pub fn label(self, at_ms: i64) -> String {
        match self {
            Period::Day => day_label(at_ms),
            Period::Month => {
                let date = date_of(at_ms);
                format!("{:04}-{:02}", date.year(), u8::from(date.month()))
            }
        }
    }
}

/// Parses `"YYYY-MM"` into `[start_ms, end_ms)` of that UTC month; `None` if malformed or out
/// of range (years 1970..=9999).
pub fn month_range(label: &str) -> Option<(i64, i64)> {
    let bytes = label.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = bytes.get(range)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(part.iter().fold(0, |n, &b| n * 10 + u32::from(b - b'0')))
    };
    if bytes.len() != 7 || bytes[4] != b'-' {
        return None;
    }
    let year = i32::try_from(digits(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(digits(5..7)?).ok()?).ok()?;
    if !(1970..=9999).contains(&year) {
        return None;
    }
    let start = start_ms(Date::from_calendar_date(year, month, 1).ok()?);
    Some((start, start + i64::from(month.length(year)) * DAY_MS))
}

/// `"YYYY-MM-DD"` for the UTC day containing `at_ms`.
pub fn day_label(at_ms: i64) -> String {
    let date = date_of(at_ms);
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// The most a price may be, in currency units per block: far above any real price, low
/// enough that a typo of a few extra zeros is caught.
const MAX_PRICE_UNITS: i64 = 1_000_000;

/// Operator-editable prices. Unlisted units are free.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    /// ISO 4217 style: three upper-case ASCII letters.
    pub currency: String,
    /// The billing period for quotas, budgets and invoices.
    pub period: Period,
    /// Price per `unit.block()` units.
    #[serde(default)]
    pub prices: BTreeMap<Unit, Money>,
}

impl Default for PriceTable {
    fn default() -> Self {
        PriceTable {
            currency: "USD".to_string(),
            period: Period::Month,
            prices: BTreeMap::new(),
        }
    }
}

impl PriceTable {
    /// Checks the currency code and that every price is between 0 and 1,000,000 per block.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let currency_ok =
            self.currency.len() == 3 && self.currency.bytes().all(|b| b.is_ascii_uppercase());
        if !currency_ok {
            return Err(PolicyError::new(
                "currency",
                "must be three upper-case letters, like USD or EUR",
            ));
        }
        for (unit, price) in &self.prices {
            if *price < Money::ZERO || *price > Money::from_units(MAX_PRICE_UNITS) {
                return Err(PolicyError::new(
                    format!("prices.{unit}"),
                    format!(
                        "{price} {} is out of range (0 to {MAX_PRICE_UNITS})",
                        unit.block_label()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The price of one block of `unit` (zero when unlisted).
    pub fn price(&self, unit: Unit) -> Money {
        self.prices.get(&unit).copied().unwrap_or(Money::ZERO)
    }

    /// Cost of `units`: the sum over units of `ceil(n * price / block)`, in exact integer
    /// arithmetic, saturating at `i64::MAX` nanos.
    pub fn cost(&self, units: &Units) -> Money {
        let total = units.iter().fold(0_i128, |total, (unit, n)| {
            let product = i128::from(n).saturating_mul(i128::from(self.price(unit).nanos()));
            total.saturating_add(div_ceil(product, i128::from(unit.block())))
        });
        let clamped = total.clamp(i128::from(i64::MIN), i128::from(i64::MAX));
        Money(i64::try_from(clamped).unwrap_or(i64::MAX))
    }
}

/// `ceil(numerator / denominator)` for a positive denominator, whatever the numerator's sign.
fn div_ceil(numerator: i128, denominator: i128) -> i128 {
    let quotient = numerator / denominator;
    if numerator % denominator > 0 {
        quotient + 1
    } else {
        quotient
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    #[test]
    fn units_keep_their_fixed_order_and_names() {
        for (i, unit) in Unit::ALL.into_iter().enumerate() {
            assert_eq!(unit.index(), i);
            assert_eq!(Unit::parse(unit.as_str()), Some(unit));
            let json = serde_json::to_string(&unit).unwrap();
            assert_eq!(json, format!("\"{}\"", unit.as_str()));
        }
        assert_eq!(Unit::AudioMilliseconds.as_str(), "audio_milliseconds");
        assert_eq!(Unit::parse("tokens"), None);
        assert_eq!(Unit::InputTokens.block(), 1_000_000);
        assert_eq!(Unit::AudioMilliseconds.block(), 60_000);
        assert_eq!(Unit::AudioMilliseconds.block_label(), "per audio minute");
        assert_eq!(
            Unit::Recommendations.block_label(),
            "per 1,000 recommendations"
        );
    }

    #[test]
    fn units_serialize_only_what_is_nonzero() {
        let mut units = Units::one(Unit::InputTokens, 12);
        units.add(&Units::one(Unit::OutputTokens, 30));
        assert_eq!(
            serde_json::to_string(&units).unwrap(),
            r#"{"input_tokens":12,"output_tokens":30}"#
        );
        assert_eq!(units.header_value(), "input_tokens=12, output_tokens=30");
        assert_eq!(
            Units::one(Unit::Recommendations, 1).header_value(),
            "recommendations=1"
        );
        assert_eq!(Units::default().header_value(), "");
        assert_eq!(serde_json::to_string(&Units::default()).unwrap(), "{}");
        let back: Units =
            serde_json::from_str(r#"{"input_tokens":12,"output_tokens":30}"#).unwrap();
        assert_eq!(back, units);
        assert!(serde_json::from_str::<Units>(r#"{"tokens":1}"#).is_err());
        assert!(serde_json::from_str::<Units>(r#"{"images":-1}"#).is_err());

        let mut full = Units::one(Unit::Images, u64::MAX - 1);
        full.add(&Units::one(Unit::Images, 5));
        assert_eq!(full.get(Unit::Images), u64::MAX);
        full.saturating_sub(&Units::one(Unit::Images, u64::MAX));
        assert!(full.is_zero());
    }

    #[test]
    fn money_parses_exact_decimals_and_rejects_the_rest() {
        assert_eq!(money("0.5").nanos(), 500_000_000);
        assert_eq!(money("12").nanos(), 12_000_000_000);
        assert_eq!(money("0.000000150").nanos(), 150);
        assert_eq!(money("0").nanos(), 0);
        assert_eq!(money("1000000000"), Money::MAX_AMOUNT);
        for bad in [
            "",
            "-1",
            "1.",
            ".5",
            "1e3",
            "+1",
            " 1",
            "abc",
            "0.0000000001",
            "1000000000.000000001",
            "99999999999999999999999",
            "1.2.3",
        ] {
            assert!(Money::parse(bad).is_err(), "{bad:?} parsed");
        }
        let err = Money::parse("-3").unwrap_err();
        assert!(err.message.contains("negative"), "{err}");
    }

    #[test]
    fn money_displays_the_shortest_exact_decimal() {
        assert_eq!(money("0.5").to_string(), "0.5");
        assert_eq!(money("12").to_string(), "12");
        assert_eq!(money("0.000000150").to_string(), "0.00000015");
        assert_eq!(money("12.340").to_string(), "12.34");
        assert_eq!(Money::from_nanos(-1_500_000_000).to_string(), "-1.5");
        assert_eq!(
            Money::from_nanos(i64::MIN).to_string(),
            "-9223372036.854775808"
        );
        assert_eq!(Money::ZERO.to_string(), "0");
    }

    #[test]
    fn money_serializes_as_a_string_and_reads_numbers_through_their_decimal_text() {
        assert_eq!(serde_json::to_string(&money("0.15")).unwrap(), "\"0.15\"");
        let read = |json: &str| serde_json::from_str::<Money>(json);
        assert_eq!(read("0.15").unwrap().nanos(), 150_000_000);
        assert_eq!(read("\"0.15\"").unwrap().nanos(), 150_000_000);
        assert_eq!(read("3").unwrap(), Money::from_units(3));
        assert_eq!(read("1.5e-7").unwrap().nanos(), 150);
        assert_eq!(read("0.0").unwrap(), Money::ZERO);
        assert!(read("-1").is_err());
        assert!(read("-0.5").is_err());
        assert!(read("1e-10").is_err());
        assert!(read("1e12").is_err());
        assert!(read("\"1e3\"").is_err());
        assert!(read("true").is_err());
    }

    #[test]
    fn money_arithmetic_saturates() {
        let max = Money::from_nanos(i64::MAX);
        assert_eq!(max.saturating_add(Money::from_nanos(1)), max);
        assert_eq!(
            Money::from_nanos(i64::MIN).saturating_sub(Money::from_nanos(1)),
            Money::from_nanos(i64::MIN)
        );
        assert_eq!(money("1.5").saturating_sub(money("0.25")), money("1.25"));
    }

    // 2026-11-30T23:59:59.999Z and the instant after it.
    const END_OF_NOVEMBER: i64 = 1_796_083_199_999;
    const START_OF_DECEMBER: i64 = 1_796_083_200_000;

    #[test]
    fn periods_follow_utc_calendar_months_and_days() {
        let november = month_range("2026-11").unwrap();
        assert_eq!(november.1, START_OF_DECEMBER);
        assert_eq!(november.1 - november.0, 30 * DAY_MS);
        assert_eq!(Period::Month.start_of(END_OF_NOVEMBER), november.0);
        assert_eq!(Period::Month.next_start(END_OF_NOVEMBER), START_OF_DECEMBER);
        assert_eq!(Period::Month.start_of(START_OF_DECEMBER), START_OF_DECEMBER);
        assert_eq!(Period::Month.label(END_OF_NOVEMBER), "2026-11");
        assert_eq!(Period::Month.label(START_OF_DECEMBER), "2026-12");
        assert_eq!(Period::Day.label(END_OF_NOVEMBER), "2026-11-30");
        assert_eq!(day_label(START_OF_DECEMBER), "2026-12-01");
        assert_eq!(
            Period::Day.start_of(END_OF_NOVEMBER),
            START_OF_DECEMBER - DAY_MS
        );
        assert_eq!(Period::Day.next_start(END_OF_NOVEMBER), START_OF_DECEMBER);
        assert_eq!(day_label(0), "1970-01-01");
        assert_eq!(Period::Month.start_of(-1), -31 * DAY_MS);

        let (start, end) = month_range("2024-02").unwrap();
        assert_eq!(end - start, 29 * DAY_MS);
        assert_eq!(Period::Month.label(start), "2024-02");
        assert_eq!(Period::Month.next_start(start), end);
        let (_, december_9999_end) = month_range("9999-12").unwrap();
        assert_eq!(Period::Month.next_start(i64::MAX), december_9999_end);
        assert_eq!(Period::Day.label(i64::MIN), "-9999-01-01");
    }

    #[test]
    fn month_labels_outside_the_supported_shape_are_refused() {
        assert_eq!(month_range("1970-01"), Some((0, 31 * DAY_MS)));
        for bad in [
            "1969-12",
            "2026-13",
            "2026-00",
            "2026-1",
            "26-11",
            "2026/11",
            "2026-11-01",
            "+026-11",
            "",
        ] {
            assert_eq!(month_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn cost_rounds_each_unit_up_to_the_next_nano() {
        let table: PriceTable = serde_json::from_str(
            r#"{"currency": "EUR", "period": "month",
                "prices": {"input_tokens": 0.15, "output_tokens": "0.6", "recommendations": 0.5, "images": 0.002}}"#,
        )
        .unwrap();
        table.validate().unwrap();
        assert_eq!(table.period, Period::Month);
        // 12 input tokens at 0.15 per million: 1,800 nanos; 30 output at 0.6: 18,000 nanos.
        let mut units = Units::one(Unit::InputTokens, 12);
        units.set(Unit::OutputTokens, 30);
        assert_eq!(table.cost(&units).nanos(), 1_800 + 18_000);
        // One recommendation at 0.5 per 1,000: exactly 500,000 nanos.
        assert_eq!(
            table.cost(&Units::one(Unit::Recommendations, 1)).nanos(),
            500_000
        );
        // One input token costs exactly 150 nanos.
        assert_eq!(table.cost(&Units::one(Unit::InputTokens, 1)).nanos(), 150);
        // A billionth per million embedding tokens: fractions of a nano round up.
        let mut tiny = table.clone();
        tiny.prices
            .insert(Unit::EmbeddingTokens, money("0.000000001"));
        assert_eq!(tiny.cost(&Units::one(Unit::EmbeddingTokens, 1)).nanos(), 1);
        assert_eq!(
            tiny.cost(&Units::one(Unit::EmbeddingTokens, 2_500_000))
                .nanos(),
            3
        );
        assert_eq!(
            tiny.cost(&Units::one(Unit::EmbeddingTokens, 3_000_000))
                .nanos(),
            3
        );
        // Unlisted units are free.
        assert_eq!(
            table.cost(&Units::one(Unit::TtsCharacters, 5_000)),
            Money::ZERO
        );
        assert_eq!(
            table.cost(&Units::one(Unit::Images, u64::MAX)).nanos(),
            i64::MAX
        );
        assert_eq!(PriceTable::default().cost(&units), Money::ZERO);
    }

    #[test]
    fn price_tables_are_validated() {
        let mut table = PriceTable::default();
        assert_eq!(table.currency, "USD");
        table.validate().unwrap();
        table.currency = "usd".into();
        assert_eq!(table.validate().unwrap_err().field, "currency");
        table.currency = "USD".into();
        table
            .prices
            .insert(Unit::Images, Money::from_units(1_000_001));
        assert_eq!(table.validate().unwrap_err().field, "prices.images");
        table.prices.insert(Unit::Images, Money::from_nanos(-1));
        assert!(table.validate().is_err());
        table.prices.insert(Unit::Images, money("0.04"));
        table.validate().unwrap();
        assert!(
            serde_json::from_str::<PriceTable>(r#"{"currency":"USD","period":"month","extra":1}"#)
                .is_err()
        );
        assert!(
            serde_json::from_str::<PriceTable>(r#"{"currency":"USD","period":"week"}"#).is_err()
        );
        let round_trip: PriceTable =
            serde_json::from_str(&serde_json::to_string(&table).unwrap()).unwrap();
        assert_eq!(round_trip, table);
    }
}
