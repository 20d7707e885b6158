//! Rate limits in memory: token buckets per scope (a key, a tenant) and window.
//!
//! A token bucket holds up to `limit` tokens and refills continuously (a per-minute limit of
//! 60 refills one token a second), so a client may burst up to its limit and then proceeds at
//! the steady rate. Unlike fixed windows there is no double burst at a window boundary, and
//! each bucket answers exactly what OpenAI-style `x-ratelimit-limit/remaining/reset` headers
//! and `retry-after` need: its capacity, its whole tokens left, and how long until it is full
//! again or until a refused request would fit.
//!
//! A request is checked against the key's buckets and its tenant's together, all or nothing:
//! a request refused by the tenant's limit consumes none of the key's allowance.
//!
//! Levels are kept as integers in "token-nanoseconds" (tokens × window length in ns), so
//! refilling `limit` tokens per window is exact integer arithmetic with no drift, and a limit
//! that is edited keeps the current level (clamped to the new capacity) instead of granting a
//! fresh burst. Buckets idle for longer than their window are full, so they are dropped from
//! memory and recreated full when next needed.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::policy::RateLimits;

/// Who a limit, quota or budget applies to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// A tenant: all its keys together.
    Tenant(i64),
    /// One API key, by its public id.
    Key(String),
}

impl Scope {
    /// `"tenant"` or `"key"`, for messages to the caller.
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Tenant(_) => "tenant",
            Scope::Key(_) => "key",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Tenant(id) => write!(f, "tenant {id}"),
            Scope::Key(id) => write!(f, "key {id}"),
        }
    }
}

/// The outcome of a rate-limit check, with what the response headers report.
#[derive(Clone, Debug, PartialEq)]
pub struct RateDecision {
    pub allowed: bool,
    /// The limit reported to the caller (`x-ratelimit-limit-*`): the most constraining
    /// configured window (`None`: no limit configured).
    pub limit: Option<u64>,
    /// Whole requests (or tokens) left in that window after this one (0 when `limit` is None).
    pub remaining: u64,
    /// Until that bucket is full again (`x-ratelimit-reset-*`).
    pub reset: Duration,
    /// Until the refused request would fit (zero when allowed); at least 1 ms when refused.
    pub retry_after: Duration,
    /// Which scope refused (or is the most constraining).
    pub scope: Option<Scope>,
}

impl RateDecision {
    fn unlimited() -> Self {
        RateDecision {
            allowed: true,
            limit: None,
            remaining: 0,
            reset: Duration::ZERO,
            retry_after: Duration::ZERO,
            scope: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Window {
    Second,
    Minute,
    /// Generation tokens per minute.
    Tokens,
}

impl Window {
    fn nanos(self) -> u128 {
        match self {
            Window::Second => 1_000_000_000,
            Window::Minute | Window::Tokens => 60_000_000_000,
        }
    }

    fn duration(self) -> Duration {
        match self {
            Window::Second => Duration::from_secs(1),
            Window::Minute | Window::Tokens => Duration::from_secs(60),
        }
    }

    fn capacity(self, limits: &RateLimits) -> Option<u64> {
        match self {
            Window::Second => limits.requests_per_second.map(u64::from),
            Window::Minute => limits.requests_per_minute.map(u64::from),
            Window::Tokens => limits.tokens_per_minute,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    /// Tokens × window nanoseconds; full is `capacity × window nanoseconds`.
    level: u128,
    updated: Instant,
}

impl Bucket {
    fn full(capacity: u64, window: Window, now: Instant) -> Self {
        Bucket {
            level: u128::from(capacity) * window.nanos(),
            updated: now,
        }
    }

    /// Refills for the time since the last update and clamps to `capacity` (which may have
    /// been edited since: a lower limit never leaves more than the new capacity, a higher one
    /// does not add tokens that were not earned).
    fn refill(&mut self, capacity: u64, window: Window, now: Instant) {
        let full = u128::from(capacity) * window.nanos();
        if now > self.updated {
            let elapsed = now.duration_since(self.updated).as_nanos();
            self.level = self
                .level
                .saturating_add(elapsed.saturating_mul(u128::from(capacity)));
            self.updated = now;
        }
        self.level = self.level.min(full);
    }

    fn whole_tokens(&self, window: Window) -> u64 {
        u64::try_from(self.level / window.nanos()).unwrap_or(u64::MAX)
    }

    /// How long until the level reaches `target` at `capacity` tokens per window.
    fn time_until(&self, target: u128, capacity: u64, window: Window) -> Duration {
        if self.level >= target {
            return Duration::ZERO;
        }
        if capacity == 0 {
            return window.duration();
        }
        let nanos = (target - self.level).div_ceil(u128::from(capacity));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    fn time_until_full(&self, capacity: u64, window: Window) -> Duration {
        self.time_until(u128::from(capacity) * window.nanos(), capacity, window)
    }
}

type BucketKey = (Scope, Window);

#[derive(Default)]
struct Buckets {
    map: HashMap<BucketKey, Bucket>,
    last_sweep: Option<Instant>,
}

/// How often idle buckets are looked for.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

impl Buckets {
    /// Drops buckets idle for at least their window: they have refilled completely, so a fresh
    /// full bucket is the same thing.
    fn sweep(&mut self, now: Instant) {
        let last = *self.last_sweep.get_or_insert(now);
        if now.saturating_duration_since(last) < SWEEP_INTERVAL {
            return;
        }
        self.map.retain(|(_, window), bucket| {
            now.saturating_duration_since(bucket.updated) < window.duration()
        });
        self.last_sweep = Some(now);
    }

    fn bucket(
        &mut self,
        scope: &Scope,
        window: Window,
        capacity: u64,
        now: Instant,
    ) -> &mut Bucket {
        let bucket = self
            .map
            .entry((scope.clone(), window))
            .or_insert_with(|| Bucket::full(capacity, window, now));
        bucket.refill(capacity, window, now);
        bucket
    }
}

/// The same scope listed twice counts once, under the tighter of each limit.
fn merge_scopes(scopes: &[(Scope, RateLimits)]) -> Vec<(&Scope, RateLimits)> {
    fn tighter<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    let mut merged: Vec<(&Scope, RateLimits)> = Vec::with_capacity(scopes.len());
    for (scope, limits) in scopes {
        match merged.iter_mut().find(|(s, _)| *s == scope) {
            Some((_, existing)) => {
                *existing = RateLimits {
                    requests_per_second: tighter(
                        existing.requests_per_second,
                        limits.requests_per_second,
                    ),
                    requests_per_minute: tighter(
                        existing.requests_per_minute,
                        limits.requests_per_minute,
                    ),
                    concurrent_requests: tighter(
                        existing.concurrent_requests,
                        limits.concurrent_requests,
                    ),
                    tokens_per_minute: tighter(
                        existing.tokens_per_minute,
                        limits.tokens_per_minute,
                    ),
                };
            }
            None => merged.push((scope, *limits)),
        }
    }
    merged
}

/// One configured bucket's verdict on a request, before anything is consumed.
struct Verdict<'a> {
    scope: &'a Scope,
    window: Window,
    capacity: u64,
    /// Level to take away when the request goes ahead.
    cost: u128,
    /// Until the bucket could serve the request (zero when it can now).
    wait: Duration,
}

/// In-memory rate limiter for request rates, token rates and concurrency. `Send + Sync`.
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<Buckets>,
    in_flight: Arc<Mutex<HashMap<Scope, u32>>>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("buckets", &self.buckets.lock().map.len())
            .field("scopes_in_flight", &self.in_flight.lock().len())
            .finish()
    }
}

impl RateLimiter {
    pub fn new() -> Self {
        RateLimiter::default()
    }

    /// One request against every `(scope, limits)` pair (a key's and its tenant's):
    /// per-second and per-minute token buckets (capacity = the limit, refilled continuously).
    /// All or nothing: if any bucket lacks a whole token, nothing is consumed and the request
    /// is refused with the retry time of the bucket that will take longest to have one.
    pub fn check_requests(&self, scopes: &[(Scope, RateLimits)], now: Instant) -> RateDecision {
        self.take(scopes, &[Window::Second, Window::Minute], 1, now)
    }

    /// Reserves `tokens` generation tokens against each scope's `tokens_per_minute`, all or
    /// nothing. An estimate larger than a bucket's capacity is allowed when that bucket is
    /// full (else such a request could never run); the bucket then goes to zero.
    pub fn reserve_tokens(
        &self,
        scopes: &[(Scope, RateLimits)],
        tokens: u64,
        now: Instant,
    ) -> RateDecision {
        self.take(scopes, &[Window::Tokens], tokens, now)
    }

    /// Gives back tokens reserved but not used (`reserved - actual`, the bucket capped at its
    /// capacity), or takes the excess when `actual > reserved` (the bucket stops at zero).
    pub fn adjust_tokens(
        &self,
        scopes: &[(Scope, RateLimits)],
        reserved: u64,
        actual: u64,
        now: Instant,
    ) {
        if reserved == actual {
            return;
        }
        let window = Window::Tokens;
        let mut buckets = self.buckets.lock();
        for (scope, limits) in merge_scopes(scopes) {
            let Some(capacity) = window.capacity(&limits) else {
                continue;
            };
            let bucket = buckets.bucket(scope, window, capacity, now);
            if actual < reserved {
                let refund = u128::from(reserved - actual) * window.nanos();
                let full = u128::from(capacity) * window.nanos();
                bucket.level = bucket.level.saturating_add(refund).min(full);
            } else {
                let excess = u128::from(actual - reserved) * window.nanos();
                bucket.level = bucket.level.saturating_sub(excess);
            }
        }
    }

    /// Takes a concurrency slot in every scope that limits concurrent requests. `Err(scope)`
    /// names a scope already at its limit (nothing is taken then); the guard gives the slots
    /// back when dropped.
    pub fn acquire_concurrency(
        &self,
        scopes: &[(Scope, RateLimits)],
    ) -> Result<ConcurrencyGuard, Scope> {
        let limited: Vec<(&Scope, u32)> = merge_scopes(scopes)
            .into_iter()
            .filter_map(|(scope, limits)| limits.concurrent_requests.map(|limit| (scope, limit)))
            .collect();
        let mut taken = Vec::with_capacity(limited.len());
        if !limited.is_empty() {
            let mut in_flight = self.in_flight.lock();
            for &(scope, limit) in &limited {
                if in_flight.get(scope).copied().unwrap_or(0) >= limit {
                    return Err(scope.clone());
                }
            }
            for (scope, _) in limited {
                *in_flight.entry(scope.clone()).or_insert(0) += 1;
                taken.push(scope.clone());
            }
        }
        Ok(ConcurrencyGuard {
            in_flight: Arc::clone(&self.in_flight),
            taken,
        })
    }

    /// Requests of `scope` currently holding a concurrency slot (only scopes with a
    /// concurrency limit are counted).
    pub fn in_flight(&self, scope: &Scope) -> u32 {
        self.in_flight.lock().get(scope).copied().unwrap_or(0)
    }

    fn take(
        &self,
        scopes: &[(Scope, RateLimits)],
        windows: &[Window],
        amount: u64,
        now: Instant,
    ) -> RateDecision {
        let merged = merge_scopes(scopes);
        let mut buckets = self.buckets.lock();
        buckets.sweep(now);

        let mut verdicts = Vec::new();
        for (scope, limits) in &merged {
            for &window in windows {
                let Some(capacity) = window.capacity(limits) else {
                    continue;
                };
                let bucket = buckets.bucket(scope, window, capacity, now);
                let full = u128::from(capacity) * window.nanos();
                let wanted = u128::from(amount) * window.nanos();
                // Larger than the whole bucket: runs when the bucket is full, and empties it.
                let (needed, cost) = if wanted > full {
                    (full, full)
                } else {
                    (wanted, wanted)
                };
                let wait = if capacity == 0 {
                    window.duration()
                } else {
                    bucket.time_until(needed, capacity, window)
                };
                verdicts.push(Verdict {
                    scope,
                    window,
                    capacity,
                    cost,
                    wait,
                });
            }
        }

        if let Some(refusal) = verdicts
            .iter()
            .filter(|v| !v.wait.is_zero())
            .max_by_key(|v| v.wait)
        {
            let bucket = buckets.bucket(refusal.scope, refusal.window, refusal.capacity, now);
            return RateDecision {
                allowed: false,
                limit: Some(refusal.capacity),
                remaining: bucket.whole_tokens(refusal.window),
                reset: bucket.time_until_full(refusal.capacity, refusal.window),
                retry_after: refusal.wait.max(Duration::from_millis(1)),
                scope: Some(refusal.scope.clone()),
            };
        }

        let mut decision = RateDecision::unlimited();
        for verdict in &verdicts {
            let bucket = buckets.bucket(verdict.scope, verdict.window, verdict.capacity, now);
            bucket.level = bucket.level.saturating_sub(verdict.cost);
            let remaining = bucket.whole_tokens(verdict.window);
            let more_constraining = match decision.limit {
                None => true,
                Some(limit) => (remaining, verdict.capacity) < (decision.remaining, limit),
            };
            if more_constraining {
                decision = RateDecision {
                    allowed: true,
                    limit: Some(verdict.capacity),
                    remaining,
                    reset: bucket.time_until_full(verdict.capacity, verdict.window),
                    retry_after: Duration::ZERO,
                    scope: Some(verdict.scope.clone()),
                };
            }
        }
        decision
    }
}

/// Concurrency slots held by one request; dropping it gives them back.
pub struct ConcurrencyGuard {
    in_flight: Arc<Mutex<HashMap<Scope, u32>>>,
    taken: Vec<Scope>,
}

impl fmt::Debug for ConcurrencyGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyGuard")
            .field("scopes", &self.taken)
            .finish()
    }
}

impl Drop for ConcurrencyGuard {
    fn drop(&mut self) {
        if self.taken.is_empty() {
            return;
        }
        let mut in_flight = self.in_flight.lock();
        for scope in self.taken.drain(..) {
            if let Some(count) = in_flight.get_mut(&scope) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    in_flight.remove(&scope);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn per_second(n: u32) -> RateLimits {
        RateLimits {
            requests_per_second: Some(n),
            ..RateLimits::default()
        }
    }

    fn per_minute(n: u32) -> RateLimits {
        RateLimits {
            requests_per_minute: Some(n),
            ..RateLimits::default()
        }
    }

    fn tokens_per_minute(n: u64) -> RateLimits {
        RateLimits {
            tokens_per_minute: Some(n),
            ..RateLimits::default()
        }
    }

    fn key() -> Scope {
        Scope::Key("key_a".into())
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_the_steady_rate() {
        let limiter = RateLimiter::new();
        let start = Instant::now();
        let scopes = [(key(), per_minute(60))];
        for i in 0..60 {
            let decision = limiter.check_requests(&scopes, start);
            assert!(decision.allowed, "request {i}");
            assert_eq!(decision.limit, Some(60));
            assert_eq!(decision.remaining, 59 - i);
        }
        let refused = limiter.check_requests(&scopes, start);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        assert_eq!(refused.reset, Duration::from_secs(60));
        assert_eq!(refused.scope, Some(key()));

        // One token back per second.
        let later = start + Duration::from_millis(1_500);
        let decision = limiter.check_requests(&scopes, later);
        assert!(decision.allowed);
        assert_eq!(decision.remaining, 0);
        let refused = limiter.check_requests(&scopes, later);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_millis(500));
    }

    #[test]
    fn no_configured_limit_allows_everything_and_stores_nothing() {
        let limiter = RateLimiter::new();
        let decision = limiter.check_requests(&[(key(), RateLimits::default())], Instant::now());
        assert!(decision.allowed);
        assert_eq!(decision.limit, None);
        assert_eq!(decision.scope, None);
        assert!(limiter.buckets.lock().map.is_empty());
        assert!(limiter.check_requests(&[], Instant::now()).allowed);
    }

    #[test]
    fn the_key_and_its_tenant_are_checked_all_or_nothing() {
        let limiter = RateLimiter::new();
        let now = Instant::now();
        let tenant = Scope::Tenant(7);
        let scopes = [(key(), per_second(5)), (tenant.clone(), per_second(2))];
        assert!(limiter.check_requests(&scopes, now).allowed);
        let decision = limiter.check_requests(&scopes, now);
        assert!(decision.allowed);
        // The tenant's bucket is the tighter one.
        assert_eq!(decision.scope, Some(tenant.clone()));
        assert_eq!((decision.limit, decision.remaining), (Some(2), 0));
        let refused = limiter.check_requests(&scopes, now);
        assert!(!refused.allowed);
        assert_eq!(refused.scope, Some(tenant));
        assert_eq!(refused.retry_after, Duration::from_millis(500));
        // The refusal took nothing from the key: it still has 3 of 5.
        let key_only = limiter.check_requests(&[(key(), per_second(5))], now);
        assert_eq!(key_only.remaining, 2);
    }

    #[test]
    fn the_most_constraining_window_is_reported() {
        let limiter = RateLimiter::new();
        let now = Instant::now();
        let both = RateLimits {
            requests_per_second: Some(10),
            requests_per_minute: Some(3),
            ..RateLimits::default()
        };
        let decision = limiter.check_requests(&[(key(), both)], now);
        assert_eq!((decision.limit, decision.remaining), (Some(3), 2));
        assert_eq!(decision.reset, Duration::from_secs(20));
        limiter.check_requests(&[(key(), both)], now);
        limiter.check_requests(&[(key(), both)], now);
        let refused = limiter.check_requests(&[(key(), both)], now);
        assert!(!refused.allowed);
        assert_eq!(refused.limit, Some(3));
        assert_eq!(refused.retry_after, Duration::from_secs(20));
    }

    #[test]
    fn an_edited_limit_adopts_the_new_capacity_without_a_burst() {
        let limiter = RateLimiter::new();
        let now = Instant::now();
        for _ in 0..10 {
            assert!(
                limiter
                    .check_requests(&[(key(), per_minute(10))], now)
                    .allowed
            );
        }
        // Raising the limit does not refill the bucket.
        let raised = limiter.check_requests(&[(key(), per_minute(100))], now);
        assert!(!raised.allowed);
        assert_eq!(raised.limit, Some(100));
        // ...but it refills at the new rate: 100 a minute is one every 600 ms.
        let soon = now + Duration::from_millis(600);
        assert!(
            limiter
                .check_requests(&[(key(), per_minute(100))], soon)
                .allowed
        );

        // Lowering it clamps a full bucket to the new capacity.
        let limiter = RateLimiter::new();
        assert!(
            limiter
                .check_requests(&[(key(), per_minute(100))], now)
                .allowed
        );
        let lowered = limiter.check_requests(&[(key(), per_minute(2))], now);
        assert!(lowered.allowed);
        assert_eq!(lowered.remaining, 1);
    }

    #[test]
    fn tokens_are_reserved_and_adjusted_to_actual_use() {
        let limiter = RateLimiter::new();
        let now = Instant::now();
        let scopes = [(key(), tokens_per_minute(1_000))];
        let decision = limiter.reserve_tokens(&scopes, 800, now);
        assert!(decision.allowed);
        assert_eq!(decision.remaining, 200);
        let refused = limiter.reserve_tokens(&scopes, 300, now);
        assert!(!refused.allowed);
        // 100 missing tokens at 1,000 a minute: 6 s.
        assert_eq!(refused.retry_after, Duration::from_secs(6));
        // Only 500 were used: 300 come back.
        limiter.adjust_tokens(&scopes, 800, 500, now);
        assert!(limiter.reserve_tokens(&scopes, 500, now).allowed);
        // Using more than reserved takes the excess, down to zero.
        limiter.adjust_tokens(&scopes, 0, 10_000, now);
        let empty = limiter.reserve_tokens(&scopes, 1, now);
        assert!(!empty.allowed);
        assert_eq!(empty.remaining, 0);
        // A refund never fills the bucket beyond its capacity.
        limiter.adjust_tokens(&scopes, 1_000_000, 0, now);
        assert_eq!(limiter.reserve_tokens(&scopes, 0, now).remaining, 1_000);
    }

    #[test]
    fn an_estimate_beyond_capacity_runs_only_on_a_full_bucket() {
        let limiter = RateLimiter::new();
        let now = Instant::now();
        let scopes = [(key(), tokens_per_minute(1_000))];
        let decision = limiter.reserve_tokens(&scopes, 5_000, now);
        assert!(decision.allowed);
        assert_eq!(decision.remaining, 0);
        let refused = limiter.reserve_tokens(&scopes, 5_000, now + Duration::from_secs(30));
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_secs(30));
        assert!(
            limiter
                .reserve_tokens(&scopes, 5_000, now + Duration::from_secs(60))
                .allowed
        );
    }

    #[test]
    fn a_zero_limit_refuses_everything() {
        let limiter = RateLimiter::new();
        let now = Instant::now();
        let refused = limiter.check_requests(&[(key(), per_second(0))], now);
        assert!(!refused.allowed);
        assert!(refused.retry_after >= Duration::from_millis(1));
        assert!(
            !limiter
                .reserve_tokens(&[(key(), tokens_per_minute(0))], 10, now)
                .allowed
        );
    }

    #[test]
    fn time_going_backwards_neither_panics_nor_refills() {
        let limiter = RateLimiter::new();
        let later = Instant::now() + Duration::from_secs(10);
        let earlier = later - Duration::from_secs(5);
        assert!(
            limiter
                .check_requests(&[(key(), per_second(1))], later)
                .allowed
        );
        assert!(
            !limiter
                .check_requests(&[(key(), per_second(1))], earlier)
                .allowed
        );
    }

    #[test]
    fn idle_buckets_are_evicted() {
        let limiter = RateLimiter::new();
        let start = Instant::now();
        limiter.check_requests(&[(key(), per_second(1))], start);
        limiter.check_requests(&[(Scope::Tenant(1), per_minute(1))], start);
        assert_eq!(limiter.buckets.lock().map.len(), 2);
        // After a minute both are idle longer than their window; the sweep drops them.
        let later = start + Duration::from_secs(61);
        let decision = limiter.check_requests(&[(Scope::Tenant(2), per_second(1))], later);
        assert!(decision.allowed);
        assert_eq!(limiter.buckets.lock().map.len(), 1);
    }

    #[test]
    fn concurrency_slots_are_taken_together_and_released_on_drop() {
        let limiter = RateLimiter::new();
        let tenant = Scope::Tenant(3);
        let limits = |n| RateLimits {
            concurrent_requests: Some(n),
            ..RateLimits::default()
        };
        let scopes = [(key(), limits(2)), (tenant.clone(), limits(1))];
        let guard = limiter.acquire_concurrency(&scopes).unwrap();
        assert_eq!(limiter.in_flight(&key()), 1);
        assert_eq!(limiter.acquire_concurrency(&scopes).unwrap_err(), tenant);
        // The refusal took no slot from the key.
        assert_eq!(limiter.in_flight(&key()), 1);
        let key_only = limiter.acquire_concurrency(&scopes[..1]).unwrap();
        assert_eq!(
            limiter.acquire_concurrency(&scopes[..1]).unwrap_err(),
            key()
        );
        drop(guard);
        assert_eq!(limiter.in_flight(&tenant), 0);
        let again = limiter
            .acquire_concurrency(&[(tenant.clone(), limits(1))])
            .unwrap();
        drop(key_only);
        drop(again);
        assert!(limiter.in_flight.lock().is_empty());
        // Unlimited scopes take nothing.
        let free = limiter
            .acquire_concurrency(&[(key(), RateLimits::default())])
            .unwrap();
        assert!(limiter.in_flight.lock().is_empty());
        drop(free);
    }

    #[test]
    fn a_scope_listed_twice_counts_once_under_the_tighter_limit() {
        let limiter = RateLimiter::new();
        let now = Instant::now();
        let scopes = [(key(), per_second(3)), (key(), per_second(2))];
        assert_eq!(limiter.check_requests(&scopes, now).remaining, 1);
        assert_eq!(limiter.check_requests(&scopes, now).remaining, 0);
        assert!(!limiter.check_requests(&scopes, now).allowed);
    }

    #[test]
    fn the_limiter_and_guards_cross_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        fn assert_send_static<T: Send + 'static>() {}
        assert_send_sync::<RateLimiter>();
        assert_send_static::<ConcurrencyGuard>();

        let limiter = Arc::new(RateLimiter::new());
        let now = Instant::now();
        let allowed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let limiter = Arc::clone(&limiter);
                    s.spawn(move || {
                        (0..25)
                            .filter(|_| {
                                limiter
                                    .check_requests(&[(key(), per_minute(100))], now)
                                    .allowed
                            })
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(allowed, 100);
    }
}
