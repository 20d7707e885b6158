//! The provider side of Marquee: who is calling, what they may do, how much, and at what price.
//!
//! Pure, synchronous and thread-safe: no HTTP, database or async runtime here, so every rule
//! is unit-tested on its own and the server only wires it to requests and storage.
//!
//! - [`keys`]: API keys are random 256-bit secrets with a readable prefix that says their kind
//!   (`mq_sk_` secret, `mq_pk_` publishable, `mq_ak_` admin). Only their SHA-256 is stored: a
//!   leaked database does not leak usable keys, and because the secrets are uniformly random,
//!   a fast hash is as strong as a slow password hash here. Checks compare hashes in constant
//!   time.
//! - [`policy`]: what a key may do within its kind (scopes, models, browser origins) and the
//!   limits, quotas and budgets of keys and tenants, validated with errors that name the field.
//! - [`limits`]: request and token rates as token buckets, which give OpenAI-style
//!   `x-ratelimit-limit/remaining/reset` headers and `retry-after` directly, checked against a
//!   key and its tenant all or nothing; concurrency slots released on drop.
//! - [`budget`]: quotas and budgets fail closed. A request reserves its estimated cost before
//!   the work and settles the actual cost after it, so concurrent requests cannot together
//!   overshoot a budget that each of them alone would fit.
//! - [`pricing`]: billable units, the operator's price table and billing periods. Money is an
//!   integer count of nano-units, so per-token prices and their sums are exact.
//! - [`crypto`]: envelope encryption of tenant data: per-tenant data keys, stored only wrapped
//!   by a master key that never sits beside the data; rotating the master key rewraps the
//!   data keys, not the data.

pub mod budget;
pub mod crypto;
pub mod keys;
pub mod limits;
pub mod policy;
pub mod pricing;

pub use budget::{Accountant, Exceeded, Limit, Reservation};
pub use crypto::{CryptoError, DataKey, MasterKey, MasterKeys};
pub use keys::{Capability, GeneratedKey, KeyKind, hash_secret, looks_like_key, verify_hash};
pub use limits::{ConcurrencyGuard, RateDecision, RateLimiter, Scope};
pub use policy::{KeyPolicy, PolicyError, Quotas, RateLimits, TenantPolicy, normalize_origin};
pub use pricing::{Money, Period, PriceTable, Unit, Units, day_label, month_range};
