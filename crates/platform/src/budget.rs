//! Quotas and budgets that fail closed: reserve before the work, settle after it.
//!
//! Checking "spent < budget" and recording the spend after the request finishes lets every
//! request that starts while the budget is nearly spent go through: a hundred concurrent
//! generations could each see room for themselves and overshoot a budget by a hundred times
//! the cost of one. So a request first reserves its estimated units and cost against every
//! scope it counts toward (its key and its tenant), in one lock, and is refused when the
//! spend so far plus what in-flight requests have reserved plus its own estimate would pass a
//! limit. When it finishes it settles: the reservation is replaced by what it actually used.
//! A request that fails (the reservation is dropped unsettled) costs nothing.
//!
//! Counters are per billing period: the first request of a new period resets what was spent.
//! At start-up the spend so far in the current period is seeded from the usage ledger, so a
//! restart does not hand out a fresh budget.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::limits::Scope;
use crate::policy::Quotas;
use crate::pricing::{Money, Unit, Units};

/// The budget and quotas of one scope (either may be absent).
#[derive(Clone, Debug)]
pub struct Limit {
    pub scope: Scope,
    pub budget: Option<Money>,
    pub quotas: Quotas,
}

/// Why a reservation was refused.
#[derive(Clone, Debug, PartialEq)]
pub enum Exceeded {
    /// `used` is spent + reserved before this request.
    Budget {
        scope: Scope,
        limit: Money,
        used: Money,
    },
    /// `used` is spent + reserved before this request.
    Quota {
        scope: Scope,
        unit: Unit,
        limit: u64,
        used: u64,
    },
}

impl Exceeded {
    pub fn scope(&self) -> &Scope {
        match self {
            Exceeded::Budget { scope, .. } | Exceeded::Quota { scope, .. } => scope,
        }
    }
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exceeded::Budget { scope, limit, .. } => write!(
                f,
                "the budget of this {} for the current billing period ({limit}) is spent",
                scope.kind()
            ),
            Exceeded::Quota {
                scope, unit, limit, ..
            } => write!(
                f,
                "the {} quota of this {} for the current billing period ({limit}) is used up",
                unit.as_str().replace('_', " "),
                scope.kind()
            ),
        }
    }
}

impl std::error::Error for Exceeded {}

#[derive(Clone, Debug, Default)]
struct Account {
    /// Start (Unix ms) of the billing period `spent` and `units` belong to.
    period_start: i64,
    spent: Money,
    units: Units,
    /// Held by requests in flight (whatever period they started in).
    reserved: Money,
    reserved_units: Units,
}

impl Account {
    fn new(period_start: i64) -> Self {
        Account {
            period_start,
            ..Account::default()
        }
    }

    /// Starts a new period's counters when `period_start` is later than the one held.
    fn roll(&mut self, period_start: i64) {
        if period_start > self.period_start {
            self.period_start = period_start;
            self.spent = Money::ZERO;
            self.units = Units::default();
        }
    }
}

type Accounts = Arc<Mutex<HashMap<Scope, Account>>>;

/// Spend and reservations per scope in the current billing period. `Send + Sync`.
#[derive(Default)]
pub struct Accountant {
    accounts: Accounts,
}

impl fmt::Debug for Accountant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accountant")
            .field("scopes", &self.accounts.lock().len())
            .finish()
    }
}

impl Accountant {
    pub fn new() -> Self {
        Accountant::default()
    }

    /// Sets a scope's spend for the period starting at `period_start` (from the ledger at
    /// start-up), replacing what was there; reservations in flight are kept.
    pub fn seed(&self, scope: Scope, period_start: i64, spent: Money, units: Units) {
        let mut accounts = self.accounts.lock();
        let account = accounts
            .entry(scope)
            .or_insert_with(|| Account::new(period_start));
        account.period_start = period_start;
        account.spent = spent;
        account.units = units;
    }

    /// Atomically checks every limit and reserves `estimate_cost` / `estimate_units` against
    /// all of them.
    ///
    /// Refused when spent + reserved + estimate would pass a budget, or a quota of any unit
    /// the estimate uses. A scope's counters reset when `period_start` is later than the one
    /// it holds. Scopes without a budget or quotas are still tracked (for usage reports) but
    /// never refuse. A negative estimated cost counts as zero.
    pub fn reserve(
        &self,
        limits: &[Limit],
        period_start: i64,
        estimate_units: Units,
        estimate_cost: Money,
    ) -> Result<Reservation, Exceeded> {
        let estimate_cost = estimate_cost.max(Money::ZERO);
        let mut accounts = self.accounts.lock();
        for limit in limits {
            let account = accounts
                .entry(limit.scope.clone())
                .or_insert_with(|| Account::new(period_start));
            account.roll(period_start);
            if let Some(budget) = limit.budget {
                let used = account.spent.saturating_add(account.reserved);
                if used.saturating_add(estimate_cost) > budget {
                    return Err(Exceeded::Budget {
                        scope: limit.scope.clone(),
                        limit: budget,
                        used,
                    });
                }
            }
            for (&unit, &quota) in &limit.quotas {
                let wanted = estimate_units.get(unit);
                if wanted == 0 {
                    continue;
                }
                let used = account
                    .units
                    .get(unit)
                    .saturating_add(account.reserved_units.get(unit));
                if used.saturating_add(wanted) > quota {
                    return Err(Exceeded::Quota {
                        scope: limit.scope.clone(),
                        unit,
                        limit: quota,
                        used,
                    });
                }
            }
        }

        let mut scopes: Vec<Scope> = Vec::with_capacity(limits.len());
        for limit in limits {
            if scopes.contains(&limit.scope) {
                continue;
            }
            if let Some(account) = accounts.get_mut(&limit.scope) {
                account.reserved = account.reserved.saturating_add(estimate_cost);
                account.reserved_units.add(&estimate_units);
            }
            scopes.push(limit.scope.clone());
        }
        Ok(Reservation {
            accounts: Arc::clone(&self.accounts),
            scopes,
            period_start,
            units: estimate_units,
            cost: estimate_cost,
        })
    }

    /// (spent, reserved, units spent) of a scope in the period it last saw, if tracked.
    pub fn usage(&self, scope: &Scope) -> Option<(Money, Money, Units)> {
        let accounts = self.accounts.lock();
        let account = accounts.get(scope)?;
        Some((account.spent, account.reserved, account.units))
    }

    /// Like [`Accountant::usage`], but reports zero spend when the scope's counters belong to
    /// a period before `period_start` (nothing was used yet in the current one).
    pub fn usage_in(&self, scope: &Scope, period_start: i64) -> Option<(Money, Money, Units)> {
        let accounts = self.accounts.lock();
        let account = accounts.get(scope)?;
        if account.period_start < period_start {
            Some((Money::ZERO, account.reserved, Units::default()))
        } else {
            Some((account.spent, account.reserved, account.units))
        }
    }
}

/// Units and money held for one request in flight. Settle it with what the request actually
/// used; dropping it unsettled releases the hold and spends nothing. `Send + 'static`.
pub struct Reservation {
    accounts: Accounts,
    /// Empty once settled or released.
    scopes: Vec<Scope>,
    period_start: i64,
    units: Units,
    cost: Money,
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("scopes", &self.scopes)
            .field("units", &self.units)
            .field("cost", &self.cost)
            .finish()
    }
}

impl Reservation {
    /// Replaces the reservation by what was actually used (which may exceed the estimate). If
    /// a new billing period started meanwhile, the use counts toward the new one.
    pub fn settle(mut self, actual_units: Units, actual_cost: Money) {
        self.finish(Some((actual_units, actual_cost.max(Money::ZERO))));
    }

    /// What was reserved: (units, cost).
    pub fn estimate(&self) -> (Units, Money) {
        (self.units, self.cost)
    }

    fn finish(&mut self, actual: Option<(Units, Money)>) {
        if self.scopes.is_empty() {
            return;
        }
        let mut accounts = self.accounts.lock();
        for scope in self.scopes.drain(..) {
            let account = accounts
                .entry(scope)
                .or_insert_with(|| Account::new(self.period_start));
            account.reserved = account.reserved.saturating_sub(self.cost).max(Money::ZERO);
            account.reserved_units.saturating_sub(&self.units);
            if let Some((units, cost)) = &actual {
                account.spent = account.spent.saturating_add(*cost);
                account.units.add(units);
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.finish(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOVEMBER: i64 = 1_793_491_200_000;
    const DECEMBER: i64 = 1_796_083_200_000;

    fn key() -> Scope {
        Scope::Key("key_a".into())
    }

    fn budget(scope: Scope, units: i64) -> Limit {
        Limit {
            scope,
            budget: Some(Money::from_units(units)),
            quotas: Quotas::new(),
        }
    }

    fn quota(scope: Scope, unit: Unit, n: u64) -> Limit {
        Limit {
            scope,
            budget: None,
            quotas: Quotas::from([(unit, n)]),
        }
    }

    #[test]
    fn reservations_count_against_the_budget_until_settled() {
        let accountant = Accountant::new();
        let limits = [budget(key(), 10)];
        let first = accountant
            .reserve(&limits, NOVEMBER, Units::default(), Money::from_units(6))
            .unwrap();
        assert_eq!(first.estimate().1, Money::from_units(6));
        let refused = accountant
            .reserve(&limits, NOVEMBER, Units::default(), Money::from_units(5))
            .unwrap_err();
        assert_eq!(
            refused,
            Exceeded::Budget {
                scope: key(),
                limit: Money::from_units(10),
                used: Money::from_units(6),
            }
        );
        assert_eq!(
            refused.to_string(),
            "the budget of this key for the current billing period (10) is spent"
        );
        // The first request cost less than estimated: room opens up.
        first.settle(Units::one(Unit::Images, 2), Money::from_units(2));
        assert_eq!(
            accountant.usage(&key()),
            Some((
                Money::from_units(2),
                Money::ZERO,
                Units::one(Unit::Images, 2)
            ))
        );
        let second = accountant
            .reserve(&limits, NOVEMBER, Units::default(), Money::from_units(5))
            .unwrap();
        // Settling above the estimate is recorded in full: the budget is now overspent and
        // even a free request is refused.
        second.settle(Units::default(), Money::from_units(9));
        assert!(
            accountant
                .reserve(&limits, NOVEMBER, Units::default(), Money::ZERO)
                .is_err()
        );
    }

    #[test]
    fn dropping_a_reservation_spends_nothing() {
        let accountant = Accountant::new();
        let limits = [budget(key(), 1)];
        let reservation = accountant
            .reserve(
                &limits,
                NOVEMBER,
                Units::one(Unit::Images, 1),
                Money::from_units(1),
            )
            .unwrap();
        assert_eq!(
            accountant.usage(&key()),
            Some((Money::ZERO, Money::from_units(1), Units::default()))
        );
        drop(reservation);
        assert_eq!(
            accountant.usage(&key()),
            Some((Money::ZERO, Money::ZERO, Units::default()))
        );
        assert!(
            accountant
                .reserve(&limits, NOVEMBER, Units::default(), Money::from_units(1))
                .is_ok()
        );
    }

    #[test]
    fn quotas_refuse_only_units_the_request_uses() {
        let accountant = Accountant::new();
        let tenant = Scope::Tenant(9);
        let limits = [quota(tenant.clone(), Unit::Images, 3), budget(key(), 100)];
        let three = Units::one(Unit::Images, 3);
        accountant
            .reserve(&limits, NOVEMBER, three, Money::ZERO)
            .unwrap()
            .settle(three, Money::ZERO);
        let refused = accountant
            .reserve(&limits, NOVEMBER, Units::one(Unit::Images, 1), Money::ZERO)
            .unwrap_err();
        assert_eq!(
            refused,
            Exceeded::Quota {
                scope: tenant.clone(),
                unit: Unit::Images,
                limit: 3,
                used: 3,
            }
        );
        assert_eq!(
            refused.to_string(),
            "the images quota of this tenant for the current billing period (3) is used up"
        );
        assert_eq!(refused.scope(), &tenant);
        // Other units still go through, and the refusal reserved nothing on the key.
        assert!(
            accountant
                .reserve(
                    &limits,
                    NOVEMBER,
                    Units::one(Unit::InputTokens, 50),
                    Money::ZERO
                )
                .is_ok()
        );
        assert_eq!(accountant.usage(&key()).unwrap().1, Money::ZERO);
    }

    #[test]
    fn a_new_period_resets_spend_but_keeps_requests_in_flight() {
        let accountant = Accountant::new();
        let limits = [budget(key(), 10)];
        accountant.seed(
            key(),
            NOVEMBER,
            Money::from_units(10),
            Units::one(Unit::Images, 4),
        );
        assert!(
            accountant
                .reserve(&limits, NOVEMBER, Units::default(), Money::from_units(1))
                .is_err()
        );
        assert_eq!(
            accountant.usage_in(&key(), DECEMBER),
            Some((Money::ZERO, Money::ZERO, Units::default()))
        );
        let in_flight = accountant
            .reserve(&limits, DECEMBER, Units::default(), Money::from_units(4))
            .unwrap();
        assert_eq!(
            accountant.usage(&key()),
            Some((Money::ZERO, Money::from_units(4), Units::default()))
        );
        // A late request still carrying November's period start does not reset December.
        in_flight.settle(Units::default(), Money::from_units(3));
        let late = accountant
            .reserve(&limits, NOVEMBER, Units::default(), Money::from_units(7))
            .unwrap();
        drop(late);
        assert_eq!(accountant.usage(&key()).unwrap().0, Money::from_units(3));
        assert_eq!(accountant.usage(&Scope::Tenant(1)), None);
    }

    #[test]
    fn untracked_limits_still_record_usage() {
        let accountant = Accountant::new();
        let tenant = Scope::Tenant(2);
        let limits = [Limit {
            scope: tenant.clone(),
            budget: None,
            quotas: Quotas::new(),
        }];
        for _ in 0..3 {
            accountant
                .reserve(
                    &limits,
                    NOVEMBER,
                    Units::one(Unit::Recommendations, 1),
                    Money::from_nanos(500),
                )
                .unwrap()
                .settle(Units::one(Unit::Recommendations, 1), Money::from_nanos(500));
        }
        assert_eq!(
            accountant.usage(&tenant),
            Some((
                Money::from_nanos(1_500),
                Money::ZERO,
                Units::one(Unit::Recommendations, 3)
            ))
        );
    }

    #[test]
    fn a_scope_listed_twice_is_reserved_once() {
        let accountant = Accountant::new();
        let limits = [budget(key(), 10), budget(key(), 5)];
        let reservation = accountant
            .reserve(&limits, NOVEMBER, Units::default(), Money::from_units(5))
            .unwrap();
        assert_eq!(accountant.usage(&key()).unwrap().1, Money::from_units(5));
        reservation.settle(Units::default(), Money::from_units(5));
        assert_eq!(accountant.usage(&key()).unwrap().0, Money::from_units(5));
    }

    #[test]
    fn concurrent_requests_never_overshoot_the_budget() {
        fn assert_send_sync<T: Send + Sync>() {}
        fn assert_send_static<T: Send + 'static>() {}
        assert_send_sync::<Accountant>();
        assert_send_static::<Reservation>();

        let accountant = Accountant::new();
        let tenant = Scope::Tenant(1);
        let limits = [budget(key(), 1_000), budget(tenant.clone(), 50)];
        let cost = Money::from_units(1);
        let succeeded: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..200)
                .map(|_| {
                    let (accountant, limits) = (&accountant, &limits);
                    s.spawn(move || {
                        match accountant.reserve(limits, NOVEMBER, Units::default(), cost) {
                            Ok(reservation) => {
                                std::thread::yield_now();
                                reservation.settle(Units::one(Unit::Images, 1), cost);
                                1
                            }
                            Err(_) => 0,
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(succeeded, 50);
        assert_eq!(
            accountant.usage(&tenant),
            Some((
                Money::from_units(50),
                Money::ZERO,
                Units::one(Unit::Images, 50)
            ))
        );
    }
}
