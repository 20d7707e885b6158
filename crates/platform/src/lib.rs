//! The provider side of Marquee: who is calling and what they may do.
//!
//! API keys are random 256-bit secrets with a readable prefix that says their kind
//! (`mq_sk_` secret, `mq_pk_` publishable, `mq_ak_` admin). Only their SHA-256 is stored: a
//! leaked database does not leak usable keys, and because the secrets are uniformly random, a
//! fast hash is as strong as a slow password hash here. Checks compare hashes in constant time.

pub mod keys;

pub use keys::{Capability, GeneratedKey, KeyKind, hash_secret, looks_like_key, verify_hash};
