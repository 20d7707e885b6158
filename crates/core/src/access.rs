//! Admission of each request: rate limits, concurrency limits and web origins, checked in
//! memory before any work.
//!
//! Limits come from two places: the key's policy (set when the key is created or edited by the
//! tenant's admin) and the tenant's policy (set by the operator, covering all of the tenant's
//! keys and keyless public calls). A request must fit both. The buckets live in this process;
//! with several processes behind a load balancer each enforces the limits on the requests it
//! receives.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use marquee_platform::{ConcurrencyGuard, KeyKind, RateDecision, RateLimits, Scope, TenantPolicy};
use parking_lot::RwLock;

use crate::auth::{Access, Caller};
use crate::error::ServiceError;

/// What admitting a request gives the route layer: the decision for the rate-limit headers and
/// the concurrency slot, held until the answer has been sent.
pub struct Admitted {
    pub decision: Option<RateDecision>,
    pub guard: Option<ConcurrencyGuard>,
}

/// The tenants' policies, as last read from the store.
#[derive(Default)]
pub(crate) struct TenantPolicies {
    by_tenant: RwLock<HashMap<i64, Arc<TenantPolicy>>>,
}

impl TenantPolicies {
    pub(crate) fn get(&self, tenant: i64) -> Arc<TenantPolicy> {
        self.by_tenant
            .read()
            .get(&tenant)
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn set(&self, tenant: i64, policy: TenantPolicy) {
        self.by_tenant.write().insert(tenant, Arc::new(policy));
    }

    /// Replaces all policies with the store's.
    pub(crate) async fn refresh(&self, store: &marquee_store::Store) -> Result<(), ServiceError> {
        let mut map = HashMap::new();
        for (tenant, text) in store.all_tenant_policies().await? {
            match serde_json::from_str::<TenantPolicy>(&text) {
                Ok(p) => {
                    map.insert(tenant, Arc::new(p));
                }
                Err(e) => {
                    // Keep what was in force rather than lifting the tenant's limits.
                    tracing::error!(tenant, error = %e, "unreadable tenant policy; keeping the previous one");
                    if let Some(old) = self.by_tenant.read().get(&tenant) {
                        map.insert(tenant, Arc::clone(old));
                    }
                }
            }
        }
        *self.by_tenant.write() = map;
        Ok(())
    }
}

/// The (scope, limits) pairs a caller's requests count against.
pub(crate) fn scopes(caller: &Caller, tenant_policy: &TenantPolicy) -> Vec<(Scope, RateLimits)> {
    let mut out = Vec::with_capacity(2);
    if let Access::Key { id, .. } = &caller.access
        && caller.policy.limits != RateLimits::default()
    {
        out.push((Scope::Key(id.clone()), caller.policy.limits));
    }
    if let Some(t) = &caller.tenant
        && tenant_policy.limits != RateLimits::default()
    {
        out.push((Scope::Tenant(t.id), tenant_policy.limits));
    }
    out
}

impl crate::Service {
    /// Admits one request of `caller`: the browser origin (for publishable keys that list
    /// theirs), then the request rate and concurrency limits of the key and of its tenant.
    pub fn admit(&self, caller: &Caller, origin: Option<&str>) -> Result<Admitted, ServiceError> {
        if let Some(origin) = origin
            && caller.kind() == Some(KeyKind::Publishable)
            && !caller.policy.allows_origin(origin)
        {
            return Err(ServiceError::OriginNotAllowed(origin.to_string()));
        }
        let tenant_policy = match &caller.tenant {
            Some(t) => self.tenant_policies.get(t.id),
            None => {
                return Ok(Admitted {
                    decision: None,
                    guard: None,
                });
            }
        };
        let scopes = scopes(caller, &tenant_policy);
        if scopes.is_empty() {
            return Ok(Admitted {
                decision: None,
                guard: None,
            });
        }
        let guard = self.limiter.acquire_concurrency(&scopes).map_err(|scope| {
            let limit = scopes
                .iter()
                .find(|(s, _)| *s == scope)
                .and_then(|(_, l)| l.concurrent_requests)
                .map(u64::from);
            ServiceError::RateLimited {
                what: "concurrent requests",
                decision: RateDecision {
                    allowed: false,
                    limit,
                    remaining: 0,
                    reset: std::time::Duration::from_secs(1),
                    retry_after: std::time::Duration::from_secs(1),
                    scope: Some(scope),
                },
            }
        })?;
        // After the concurrency slot, so that a request refused for concurrency uses none of
        // the rate; one refused for rate releases its slot (the guard drops).
        let decision = self.limiter.check_requests(&scopes, Instant::now());
        if !decision.allowed {
            return Err(ServiceError::RateLimited {
                what: "requests",
                decision,
            });
        }
        Ok(Admitted {
            decision: Some(decision),
            guard: Some(guard),
        })
    }

    /// The policy of tenant `id` (limits, quotas, budget).
    pub fn tenant_policy(&self, id: i64) -> Arc<TenantPolicy> {
        self.tenant_policies.get(id)
    }

    /// Starts charging a billable request (see [`crate::metering`]). `None` for operator keys.
    pub fn charge(
        &self,
        caller: &Caller,
        model: Option<&str>,
        estimate: marquee_platform::Units,
    ) -> Result<Option<crate::metering::Charge>, ServiceError> {
        let policy = match &caller.tenant {
            Some(t) => self.tenant_policies.get(t.id),
            None => return Ok(None),
        };
        crate::metering::Charge::begin(&self.meter, caller, &policy, model, estimate)
    }

    /// The meter: prices, budgets, the ledger writer.
    pub fn meter(&self) -> &Arc<crate::metering::Meter> {
        &self.meter
    }
}
