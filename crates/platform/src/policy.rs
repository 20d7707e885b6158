//! What a key or a tenant may do, and how much of it.
//!
//! A key's policy narrows what its kind allows: fewer scopes, fewer models, the browser
//! origins a publishable key may be used from, and its own rate limits, quotas and budget.
//! A tenant's policy caps all its keys together. Policies are written by people (operators
//! and tenant admins), so validation names the offending field and says what is wrong, and
//! refuses values that are certainly mistakes (a limit of zero, a budget of a trillion)
//! rather than storing them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

use crate::keys::{Capability, KeyKind};
use crate::pricing::{Money, Unit};

/// A policy value that cannot be accepted: which field, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    /// Where the problem is, e.g. `"limits.requests_per_second"` or `"allowed_origins[1]"`.
    pub field: String,
    pub message: String,
}

impl PolicyError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        PolicyError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for PolicyError {}

/// Request-rate limits; `None` means no limit of that kind.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrent_requests: Option<u32>,
    /// Generation tokens (prompt + completion) per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
}

const MAX_REQUESTS_PER_SECOND: u32 = 1_000_000;
const MAX_REQUESTS_PER_MINUTE: u32 = 60_000_000;
const MAX_CONCURRENT_REQUESTS: u32 = 100_000;
const MAX_TOKENS_PER_MINUTE: u64 = 10_000_000_000;
/// The most entries a list in a policy (scopes, models, origins) may have.
pub const MAX_LIST_ENTRIES: usize = 100;
/// The largest quota of any unit per billing period.
pub const MAX_QUOTA: u64 = 1_000_000_000_000_000;
const MAX_MODEL_NAME_LEN: usize = 128;

impl RateLimits {
    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == RateLimits::default()
    }

    /// Refuses limits of zero (leave a limit out instead) and absurdly large ones. Fields are
    /// named `limits.<name>`.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let checks: [(&str, Option<u64>, u64); 4] = [
            (
                "requests_per_second",
                self.requests_per_second.map(u64::from),
                u64::from(MAX_REQUESTS_PER_SECOND),
            ),
            (
                "requests_per_minute",
                self.requests_per_minute.map(u64::from),
                u64::from(MAX_REQUESTS_PER_MINUTE),
            ),
            (
                "concurrent_requests",
                self.concurrent_requests.map(u64::from),
                u64::from(MAX_CONCURRENT_REQUESTS),
            ),
            (
                "tokens_per_minute",
                self.tokens_per_minute,
                MAX_TOKENS_PER_MINUTE,
            ),
        ];
        for (name, value, max) in checks {
            match value {
                Some(0) => {
                    return Err(PolicyError::new(
                        format!("limits.{name}"),
                        "must be at least 1 (leave it out for no limit)",
                    ));
                }
                Some(n) if n > max => {
                    return Err(PolicyError::new(
                        format!("limits.{name}"),
                        format!("{n} is more than the maximum of {max}"),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Units allowed per billing period; units not listed are unlimited.
pub type Quotas = BTreeMap<Unit, u64>;

fn validate_quotas(quotas: &Quotas) -> Result<(), PolicyError> {
    for (unit, &quota) in quotas {
        if quota > MAX_QUOTA {
            return Err(PolicyError::new(
                format!("quotas.{unit}"),
                format!("{quota} is more than the maximum of {MAX_QUOTA}"),
            ));
        }
    }
    Ok(())
}

fn validate_budget(budget: Option<Money>) -> Result<(), PolicyError> {
    match budget {
        Some(b) if b < Money::ZERO => Err(PolicyError::new("budget", "must not be negative")),
        Some(b) if b > Money::MAX_AMOUNT => Err(PolicyError::new(
            "budget",
            format!("{b} is more than the maximum of {}", Money::MAX_AMOUNT),
        )),
        _ => Ok(()),
    }
}

fn validate_list_length<T>(field: &str, list: &[T]) -> Result<(), PolicyError> {
    if list.is_empty() {
        return Err(PolicyError::new(
            field,
            "must not be empty (leave it out for no restriction)",
        ));
    }
    if list.len() > MAX_LIST_ENTRIES {
        return Err(PolicyError::new(
            field,
            format!(
                "has {} entries; at most {MAX_LIST_ENTRIES} are allowed",
                list.len()
            ),
        ));
    }
    Ok(())
}

/// The canonical form of a browser origin (`http(s)://host[:port]`): scheme and host
/// lower-cased, a default port (80 for http, 443 for https) dropped. `None` when `origin` is
/// not such an origin (a path, query, credentials, a wildcard or `null` are refused).
pub fn normalize_origin(origin: &str) -> Option<String> {
    parse_origin(origin).ok()
}

fn parse_origin(origin: &str) -> Result<String, &'static str> {
    const SHAPE: &str = "must look like https://app.example.com or http://localhost:3000";
    let lower = origin.to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://").ok_or(SHAPE)?;
    let default_port = match scheme {
        "https" => "443",
        "http" => "80",
        _ => return Err("the scheme must be http or https"),
    };
    if rest.contains(['/', '?', '#']) {
        return Err("must not have a path, query or fragment (not even a trailing slash)");
    }
    if rest.contains('@') {
        return Err("must not contain credentials");
    }
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let (address, after) = bracketed.split_once(']').ok_or(SHAPE)?;
        address
            .parse::<Ipv6Addr>()
            .map_err(|_| "has a malformed IPv6 address")?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(SHAPE)?),
        };
        (&rest[..address.len() + 2], port)
    } else {
        let (host, port) = match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        };
        if !is_dns_name(host) {
            return Err("has a malformed host name");
        }
        (host, port)
    };
    let port = match port {
        None => None,
        Some(p) => {
            let valid = !p.is_empty()
                && p.len() <= 5
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u32>().is_ok_and(|n| (1..=65_535).contains(&n));
            if !valid {
                return Err("has a port that is not a number from 1 to 65535");
            }
            let trimmed = p.trim_start_matches('0');
            (trimmed != default_port).then_some(trimmed)
        }
    };
    Ok(match port {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

/// A lower-case DNS name or IPv4 address: dot-separated labels of letters, digits and inner
/// hyphens.
fn is_dns_name(host: &str) -> bool {
    (1..=253).contains(&host.len())
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// What one API key may do, within what its kind allows.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPolicy {
    /// `None`: everything the key's kind allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<Capability>>,
    /// `None`: every model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// Publishable keys only: the exact browser origins (CORS) the key may be used from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_origins: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "RateLimits::is_empty")]
    pub limits: RateLimits,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<Unit, u64>))]
    pub quotas: Quotas,
    /// Money per billing period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Money>,
}

impl KeyPolicy {
    /// Problems worth a 422, naming the field: a scope the kind never allows, empty or overlong
    /// lists, malformed model names or origins, origins on a key that is not publishable,
    /// limits of zero or absurd size, quotas above 10^15, a budget above [`Money::MAX_AMOUNT`].
    pub fn validate(&self, kind: KeyKind) -> Result<(), PolicyError> {
        if let Some(scopes) = &self.scopes {
            validate_list_length("scopes", scopes)?;
            if let Some(scope) = scopes.iter().find(|&&scope| !kind.allows(scope)) {
                return Err(PolicyError::new(
                    "scopes",
                    format!("a {} key can never have the scope `{scope}`", kind.as_str()),
                ));
            }
        }
        if let Some(models) = &self.models {
            validate_list_length("models", models)?;
            for (i, model) in models.iter().enumerate() {
                let valid = (1..=MAX_MODEL_NAME_LEN).contains(&model.len())
                    && model.bytes().all(|b| (b' '..=b'~').contains(&b));
                if !valid {
                    return Err(PolicyError::new(
                        format!("models[{i}]"),
                        format!(
                            "a model name is 1 to {MAX_MODEL_NAME_LEN} printable ASCII characters"
                        ),
                    ));
                }
            }
        }
        if let Some(origins) = &self.allowed_origins {
            if kind != KeyKind::Publishable {
                return Err(PolicyError::new(
                    "allowed_origins",
                    format!(
                        "only publishable keys are used from browsers; a {} key must not be",
                        kind.as_str()
                    ),
                ));
            }
            validate_list_length("allowed_origins", origins)?;
            for (i, origin) in origins.iter().enumerate() {
                parse_origin(origin)
                    .map_err(|why| PolicyError::new(format!("allowed_origins[{i}]"), why))?;
            }
        }
        self.limits.validate()?;
        validate_quotas(&self.quotas)?;
        validate_budget(self.budget)
    }

    /// Rewrites valid allowed origins to their canonical form (see [`normalize_origin`]), the
    /// form to store.
    pub fn normalize(&mut self) {
        for origin in self.allowed_origins.iter_mut().flatten() {
            if let Some(canonical) = normalize_origin(origin) {
                *origin = canonical;
            }
        }
    }

    /// Whether a key of `kind` with this policy may do `capability`.
    pub fn allows(&self, kind: KeyKind, capability: Capability) -> bool {
        kind.allows(capability)
            && self
                .scopes
                .as_ref()
                .is_none_or(|scopes| scopes.contains(&capability))
    }

    pub fn allows_model(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|models| models.iter().any(|m| m == model))
    }

    /// No restriction allows every origin; otherwise the request's origin must equal one of
    /// the allowed ones after both are put in canonical form (case of scheme and host,
    /// default ports).
    pub fn allows_origin(&self, origin: &str) -> bool {
        let Some(allowed) = &self.allowed_origins else {
            return true;
        };
        let Some(origin) = normalize_origin(origin) else {
            return false;
        };
        allowed
            .iter()
            .any(|a| normalize_origin(a).is_some_and(|a| a == origin))
    }
}

/// Limits on everything a tenant's keys do together.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantPolicy {
    #[serde(default, skip_serializing_if = "RateLimits::is_empty")]
    pub limits: RateLimits,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<Unit, u64>))]
    pub quotas: Quotas,
    /// Money per billing period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Money>,
}

impl TenantPolicy {
    pub fn validate(&self) -> Result<(), PolicyError> {
        self.limits.validate()?;
        validate_quotas(&self.quotas)?;
        validate_budget(self.budget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_policy(json: &str) -> KeyPolicy {
        serde_json::from_str(json).unwrap()
    }

    fn field_of(policy: &KeyPolicy, kind: KeyKind) -> String {
        policy.validate(kind).unwrap_err().field
    }

    #[test]
    fn an_empty_policy_allows_what_the_kind_allows_and_serializes_to_nothing() {
        let policy = KeyPolicy::default();
        policy.validate(KeyKind::Secret).unwrap();
        assert_eq!(serde_json::to_string(&policy).unwrap(), "{}");
        assert_eq!(key_policy("{}"), policy);
        assert!(policy.allows(KeyKind::Secret, Capability::CatalogWrite));
        assert!(!policy.allows(KeyKind::Secret, Capability::ManageKeys));
        assert!(!policy.allows(KeyKind::Publishable, Capability::CatalogRead));
        assert!(policy.allows_model("anything"));
        assert!(policy.allows_origin("https://evil.example"));
    }

    #[test]
    fn scopes_and_models_narrow_what_a_key_may_do() {
        let policy = key_policy(
            r#"{"scopes": ["models:chat", "usage:read"], "models": ["qwen2.5-0.5b"],
                "limits": {"requests_per_minute": 60}, "quotas": {"output_tokens": 1000}, "budget": "12.5"}"#,
        );
        policy.validate(KeyKind::Secret).unwrap();
        assert!(policy.allows(KeyKind::Secret, Capability::ModelsChat));
        assert!(policy.allows(KeyKind::Secret, Capability::UsageRead));
        assert!(!policy.allows(KeyKind::Secret, Capability::ModelsEmbeddings));
        assert!(policy.allows_model("qwen2.5-0.5b"));
        assert!(!policy.allows_model("Qwen2.5-0.5b"));
        assert_eq!(policy.budget, Some(Money::from_nanos(12_500_000_000)));
        let json = serde_json::to_string(&policy).unwrap();
        assert_eq!(key_policy(&json), policy);
        assert!(json.contains(r#""budget":"12.5""#), "{json}");
        assert!(!json.contains("requests_per_second"), "{json}");
    }

    #[test]
    fn validation_names_the_offending_field() {
        let publishable_writer = key_policy(r#"{"scopes": ["recommend", "catalog:write"]}"#);
        let err = publishable_writer
            .validate(KeyKind::Publishable)
            .unwrap_err();
        assert_eq!(err.field, "scopes");
        assert!(err.message.contains("catalog:write"), "{err}");
        publishable_writer.validate(KeyKind::Secret).unwrap();

        let cases = [
            (r#"{"scopes": []}"#, "scopes"),
            (r#"{"models": []}"#, "models"),
            (r#"{"models": ["ok", ""]}"#, "models[1]"),
            (r#"{"models": ["tab\there"]}"#, "models[0]"),
            (
                r#"{"limits": {"requests_per_second": 0}}"#,
                "limits.requests_per_second",
            ),
            (
                r#"{"limits": {"requests_per_second": 1000001}}"#,
                "limits.requests_per_second",
            ),
            (
                r#"{"limits": {"requests_per_minute": 60000001}}"#,
                "limits.requests_per_minute",
            ),
            (
                r#"{"limits": {"concurrent_requests": 100001}}"#,
                "limits.concurrent_requests",
            ),
            (
                r#"{"limits": {"tokens_per_minute": 10000000001}}"#,
                "limits.tokens_per_minute",
            ),
            (
                r#"{"quotas": {"images": 1000000000000001}}"#,
                "quotas.images",
            ),
            (r#"{"budget": 1000000000.5}"#, "budget"),
            (
                r#"{"allowed_origins": ["https://a.example"]}"#,
                "allowed_origins",
            ),
        ];
        for (json, field) in cases {
            let policy: Result<KeyPolicy, _> = serde_json::from_str(json);
            match policy {
                Ok(policy) => assert_eq!(field_of(&policy, KeyKind::Secret), field, "{json}"),
                // A budget beyond the maximum is refused while reading it.
                Err(e) => assert_eq!(field, "budget", "{json}: {e}"),
            }
        }
        let too_many = KeyPolicy {
            models: Some((0..101).map(|i| format!("m{i}")).collect()),
            ..KeyPolicy::default()
        };
        assert_eq!(field_of(&too_many, KeyKind::Secret), "models");
        let negative_budget = KeyPolicy {
            budget: Some(Money::from_nanos(-1)),
            ..KeyPolicy::default()
        };
        assert_eq!(field_of(&negative_budget, KeyKind::Secret), "budget");
    }

    #[test]
    fn negative_and_unknown_values_fail_to_deserialize_clearly() {
        let err = serde_json::from_str::<KeyPolicy>(r#"{"limits": {"requests_per_second": -1}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("-1") && err.contains("u32"), "{err}");
        let err = serde_json::from_str::<TenantPolicy>(r#"{"quotas": {"images": -5}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("-5"), "{err}");
        assert!(serde_json::from_str::<TenantPolicy>(r#"{"budget": -1}"#).is_err());
        assert!(serde_json::from_str::<KeyPolicy>(r#"{"scope": ["recommend"]}"#).is_err());
        assert!(serde_json::from_str::<RateLimits>(r#"{"rps": 1}"#).is_err());
        assert!(serde_json::from_str::<KeyPolicy>(r#"{"quotas": {"tokens": 5}}"#).is_err());
    }

    #[test]
    fn origins_are_exact_http_origins_on_publishable_keys() {
        let mut policy = key_policy(
            r#"{"allowed_origins": ["HTTPS://App.Example.com", "http://localhost:3000", "https://[::1]:8443", "https://shop.example:443"]}"#,
        );
        policy.validate(KeyKind::Publishable).unwrap();
        assert!(policy.allows_origin("https://app.example.com"));
        assert!(policy.allows_origin("https://APP.example.com:443"));
        assert!(policy.allows_origin("http://localhost:3000"));
        assert!(policy.allows_origin("https://[::1]:8443"));
        assert!(policy.allows_origin("https://shop.example"));
        assert!(!policy.allows_origin("http://app.example.com"));
        assert!(!policy.allows_origin("https://app.example.com.evil.net"));
        assert!(!policy.allows_origin("http://localhost:3001"));
        assert!(!policy.allows_origin("null"));
        policy.normalize();
        assert_eq!(
            policy.allowed_origins.as_deref().unwrap(),
            [
                "https://app.example.com",
                "http://localhost:3000",
                "https://[::1]:8443",
                "https://shop.example"
            ]
        );

        for bad in [
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://app.example.com?x=1",
            "ftp://app.example.com",
            "app.example.com",
            "https://user@app.example.com",
            "https://*.example.com",
            "https://app.example.com:0",
            "https://app.example.com:99999",
            "https://app.example.com:",
            "https://-bad.example",
            "https://",
            "https://[::zz]",
            "null",
        ] {
            let policy = KeyPolicy {
                allowed_origins: Some(vec!["https://ok.example".into(), bad.into()]),
                ..KeyPolicy::default()
            };
            assert_eq!(
                field_of(&policy, KeyKind::Publishable),
                "allowed_origins[1]",
                "{bad}"
            );
            assert_eq!(normalize_origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn tenant_policies_validate_limits_quotas_and_budget() {
        let policy: TenantPolicy = serde_json::from_str(
            r#"{"limits": {"tokens_per_minute": 100000, "concurrent_requests": 8}, "quotas": {"recommendations": 1000000}, "budget": 250}"#,
        )
        .unwrap();
        policy.validate().unwrap();
        assert_eq!(policy.budget, Some(Money::from_units(250)));
        assert_eq!(
            serde_json::to_string(&TenantPolicy::default()).unwrap(),
            "{}"
        );
        let zero = TenantPolicy {
            limits: RateLimits {
                concurrent_requests: Some(0),
                ..RateLimits::default()
            },
            ..TenantPolicy::default()
        };
        assert_eq!(
            zero.validate().unwrap_err().to_string(),
            "limits.concurrent_requests: must be at least 1 (leave it out for no limit)"
        );
        assert!(serde_json::from_str::<TenantPolicy>(r#"{"scopes": []}"#).is_err());
    }
}
