//! Metering: what a billable request may cost, checked before the work and recorded after it.
//!
//! Every billable request goes through a [`Charge`]:
//!
//! 1. **Reserve.** Before any work, the estimated units are priced from the price table and
//!    reserved against every budget and quota that applies (the tenant's and the key's), under
//!    one lock. Concurrent requests therefore see each other's reservations: they can never
//!    overshoot a budget by more than the one request whose actual use exceeds its estimate.
//!    Generation tokens are also taken from the tokens-per-minute buckets here.
//! 2. **Work.** The route does what was asked.
//! 3. **Record.** The actual units are priced and counted against the budgets at once, and a
//!    ledger row — one per request, keyed by a server-generated id so a retried write never
//!    counts twice — is queued for the ledger writer before the answer leaves.
//!
//! **Written behind the answer (the default).** The answer does not wait for the row's commit: a
//! commit with fsync costs more than serving a recommendation, and the budgets, enforced in
//! memory, already count the request. The writer commits whatever has queued up in one
//! transaction (group commit: thousands of requests per second cost a few transactions, each
//! within milliseconds of its requests), keeps every row until it is committed — retrying after
//! a failure — and from the first failed write on, every new billable request is refused (503
//! `ledger_unavailable`) until a write succeeds; so is every request while a write has been
//! stuck for [`STALL_MS`] (a locked or very slow database fails slowly, not at once). So a
//! request is never served for free while the process lives, and budgets hold; what a crash can
//! lose is the last commit interval's rows, and what is served between the ledger breaking and
//! the first failed write (one commit interval) is owed to it, not lost.
//!
//! **Committed before the answer** (`ledger_commit_before_answer`, for operators who must not
//! serve a single request the ledger has not taken): the answer waits for the commit of its
//! row; when that commit fails the answer is refused with 503 (and its row is not written later:
//! nothing was served). Rows waiting for an answer are committed at once, not after the commit
//! interval, and still share a transaction with whatever queued meanwhile. The price is the
//! commit's latency on every billable answer.
//!
//! Usage reports first wait for the queue to drain ([`Meter::flush`]), so they include every
//! request already answered.
//!
//! A streamed answer cannot know its final count before the first byte, so a streaming route
//! first *holds* the charge: a pending row with the estimate is queued before the work starts
//! (and is committed while the work runs), and replaced by the final row when the stream ends.
//! Should the process die in between, the pending row is settled at its estimate
//! ([`Meter::settle_stale`]).
//!
//! Budgets and quotas are counted in this process's memory, seeded from the ledger at start;
//! with several processes on one store each enforces them on its own share (see the README).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use marquee_platform::{
    Accountant, Limit, Money, PriceTable, RateDecision, RateLimiter, RateLimits, Reservation,
    Scope, Unit, Units,
};
use marquee_store::{Store, UsageRow};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::auth::Caller;
use crate::error::ServiceError;

/// The setting under which the operator's price table is stored.
pub const PRICE_TABLE_SETTING: &str = "price_table";

/// With rows committed before the answer, new billable requests are refused at once for this
/// long after a failed write instead of each doing its work only to be refused at the end; then
/// one is let through to try again. (Written behind, refusal lasts until the writer's retry of
/// the rows it owes succeeds.)
const FAILURE_BACKOFF_MS: i64 = 1_000;
/// A ledger write still running after this long (a locked or very slow database) counts as a
/// failure for admission: new billable requests are refused until it ends.
const STALL_MS: i64 = 5_000;
/// Pending rows older than this belong to a request that can no longer be running.
const STALE_PENDING_MS: i64 = 15 * 60 * 1000;
/// Most ledger operations committed in one transaction.
const MAX_BATCH: usize = 4_096;
const QUEUE: usize = 65_536;
/// Rows kept for another try after a failed write. Past this, the oldest are dropped (and
/// logged): the ledger has then been failing for a long while and new requests have been
/// refused all along.
const MAX_RETRY_ROWS: usize = 1_000_000;
/// How soon a failed write is tried again when no new work arrives.
const RETRY_INTERVAL: Duration = Duration::from_millis(200);
/// Shortest time between two ledger commits while requests keep coming: rows that arrive
/// meanwhile wait and share the next commit. Without it a busy server commits (and fsyncs)
/// after every few requests, and the commits and the thread wake-ups around them cost more
/// CPU than the requests. A usage report ([`Op::Flush`]) does not wait for it.
const COMMIT_INTERVAL: Duration = Duration::from_millis(50);

/// Told whether the row it came with was committed; on failure the row is dropped, not retried
/// (its request is refused).
type Committed = oneshot::Sender<bool>;

enum Op {
    /// A held request's row at its estimate.
    Pending(UsageRow, Option<Committed>),
    /// A request's final row.
    Final(UsageRow, Option<Committed>),
    /// Answered once everything queued before it has been through a write.
    Flush(oneshot::Sender<bool>),
}

/// Prices, budgets, token buckets and the ledger writer.
pub struct Meter {
    prices: ArcSwap<PriceTable>,
    accountant: Accountant,
    limiter: Arc<RateLimiter>,
    tx: mpsc::Sender<Op>,
    /// Wakes the ledger writer from its commit interval for a queued [`Op::Flush`].
    flush_signal: Arc<Notify>,
    /// Unix ms of the last failed ledger write; 0 when the last write succeeded.
    last_failure: Arc<AtomicI64>,
    /// Unix ms when the running ledger write began; 0 when none runs.
    write_started: Arc<AtomicI64>,
    /// Answers wait for the commit of their row (see the module docs).
    commit_before_answer: bool,
}

/// What a settled request cost.
#[derive(Clone, Debug)]
pub struct Settlement {
    pub units: Units,
    pub cost: Money,
    pub currency: String,
}

impl Meter {
    /// Starts the ledger writer on `store`. Must be called inside a Tokio runtime.
    /// `commit_before_answer`: see the module docs.
    pub(crate) fn start(
        store: Store,
        limiter: Arc<RateLimiter>,
        commit_before_answer: bool,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let last_failure = Arc::new(AtomicI64::new(0));
        let write_started = Arc::new(AtomicI64::new(0));
        let flush_signal = Arc::new(Notify::new());
        tokio::spawn(write_ledger(
            store,
            rx,
            Arc::clone(&flush_signal),
            Arc::clone(&last_failure),
            Arc::clone(&write_started),
        ));
        Arc::new(Meter {
            prices: ArcSwap::from_pointee(PriceTable::default()),
            accountant: Accountant::default(),
            limiter,
            tx,
            flush_signal,
            last_failure,
            write_started,
            commit_before_answer,
        })
    }

    pub fn prices(&self) -> Arc<PriceTable> {
        self.prices.load_full()
    }

    pub(crate) fn set_prices(&self, table: PriceTable) {
        self.prices.store(Arc::new(table));
    }

    /// Reads the price table from the store (another process may have changed it).
    pub(crate) async fn load_prices(&self, store: &Store) -> Result<(), ServiceError> {
        if let Some(text) = store.get_setting(PRICE_TABLE_SETTING).await? {
            match serde_json::from_str::<PriceTable>(&text) {
                Ok(table) => self.set_prices(table),
                Err(e) => {
                    tracing::error!(error = %e, "the stored price table is unreadable; keeping the one in memory")
                }
            }
        }
        Ok(())
    }

    /// Seeds budgets and quotas with what the ledger holds for the current period.
    pub(crate) async fn seed(&self, store: &Store) -> Result<(), ServiceError> {
        let prices = self.prices();
        let start = prices.period.start_of(marquee_store::now_ms());
        let mut tenants: std::collections::HashMap<i64, (Money, Units)> = Default::default();
        for (tenant, key, units, cost) in store.usage_totals_since(start).await? {
            let units = units_from_columns(&units);
            let cost = Money::from_nanos(cost);
            let entry = tenants.entry(tenant).or_default();
            entry.0 = entry.0.saturating_add(cost);
            entry.1.add(&units);
            if let Some(key) = key {
                self.accountant.seed(Scope::Key(key), start, cost, units);
            }
        }
        for (tenant, (cost, units)) in tenants {
            self.accountant
                .seed(Scope::Tenant(tenant), start, cost, units);
        }
        Ok(())
    }

    /// Settles pending rows left by requests that cannot still be running (a crash mid-stream):
    /// they are charged their estimate.
    pub(crate) async fn settle_stale(&self, store: &Store) -> Result<usize, ServiceError> {
        let now = marquee_store::now_ms();
        let stale: Vec<UsageRow> = store
            .pending_usage()
            .await?
            .into_iter()
            .filter(|r| now - r.at > STALE_PENDING_MS)
            .collect();
        if !stale.is_empty() {
            store.write_usage(&[], &stale).await?;
            tracing::warn!(
                rows = stale.len(),
                "settled usage of interrupted requests at their estimate"
            );
        }
        Ok(stale.len())
    }

    /// (spent, reserved, units) of a scope in the current period.
    pub fn usage(&self, scope: &Scope) -> Option<(Money, Money, Units)> {
        self.accountant.usage(scope)
    }

    /// Whether new billable requests are refused: the last ledger write failed, or one has been
    /// running for longer than [`STALL_MS`]. Written behind, a failure holds until a write
    /// succeeds (the writer retries the rows it owes every [`RETRY_INTERVAL`]); committed
    /// before the answer, nothing is owed after a failure, so after [`FAILURE_BACKOFF_MS`] the
    /// next request is let through as the retry (its answer waits for its own commit).
    fn ledger_failing(&self) -> bool {
        let failed = self.last_failure.load(Ordering::Acquire);
        let started = self.write_started.load(Ordering::Acquire);
        if failed == 0 && started == 0 {
            // The usual case, on every billable request: no clock read.
            return false;
        }
        let now = marquee_store::now_ms();
        if failed != 0 && (!self.commit_before_answer || now - failed < FAILURE_BACKOFF_MS) {
            return true;
        }
        started != 0 && now - started > STALL_MS
    }

    /// Queues `op` (a row with its commit waiter) and waits for the commit; false when it failed
    /// (the row is then dropped) or the writer is gone.
    async fn commit(&self, op: Op, committed: oneshot::Receiver<bool>) -> bool {
        if self.tx.send(op).await.is_err() {
            return false;
        }
        self.flush_signal.notify_one();
        committed.await.unwrap_or(false)
    }

    /// Waits until every row queued so far (written-behind ones included) has been through a
    /// ledger write, so that a usage report read next includes every request already answered.
    /// Returns whether that write succeeded (on failure the rows stay queued for a retry).
    pub async fn flush(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Op::Flush(tx)).await.is_err() {
            return false;
        }
        self.flush_signal.notify_one();
        rx.await.unwrap_or(false)
    }

    /// Queues a row for the writer; waits only while the queue is full.
    async fn enqueue(&self, op: Op) -> Result<(), ServiceError> {
        self.tx.send(op).await.map_err(|_| ledger_unavailable())
    }
}

fn ledger_unavailable() -> ServiceError {
    ServiceError::LedgerUnavailable
}

/// Store columns (in [`marquee_store::UNIT_COLUMNS`] order, the same as [`Unit::ALL`]) to units.
pub fn units_from_columns(columns: &[i64; 7]) -> Units {
    Units(columns.map(|n| n.max(0) as u64))
}

fn units_to_columns(units: &Units) -> [i64; 7] {
    units.0.map(|n| n.min(i64::MAX as u64) as i64)
}

/// Units of a text generation.
pub fn generation_units(prompt_tokens: usize, completion_tokens: usize) -> Units {
    let mut u = Units::default();
    u.set(Unit::InputTokens, prompt_tokens as u64);
    u.set(Unit::OutputTokens, completion_tokens as u64);
    u
}

fn generation_tokens(units: &Units) -> u64 {
    units
        .get(Unit::InputTokens)
        .saturating_add(units.get(Unit::OutputTokens))
}

/// The group-commit loop: one transaction for everything queued since the previous one (at
/// most one commit per [`COMMIT_INTERVAL`], unless a usage report waits). Rows of a failed
/// write are kept and go into the next one (tried again after [`RETRY_INTERVAL`] when nothing
/// new arrives).
async fn write_ledger(
    store: Store,
    mut rx: mpsc::Receiver<Op>,
    flush_signal: Arc<Notify>,
    last_failure: Arc<AtomicI64>,
    write_started: Arc<AtomicI64>,
) {
    let mut batch = Vec::new();
    let mut pending: Vec<UsageRow> = Vec::new();
    let mut finals: Vec<UsageRow> = Vec::new();
    let mut last_commit = tokio::time::Instant::now();
    loop {
        let owed = !pending.is_empty() || !finals.is_empty();
        let next = if owed {
            match tokio::time::timeout(RETRY_INTERVAL, rx.recv()).await {
                Ok(op) => op.map(Some),
                Err(_) => Some(None),
            }
        } else {
            rx.recv().await.map(Some)
        };
        match next {
            Some(Some(op)) => batch.push(op),
            Some(None) => {}
            None => {
                // Shutting down: one last try for what is owed.
                if owed && let Err(e) = store.write_usage(&pending, &finals).await {
                    tracing::error!(error = %e, rows = pending.len() + finals.len(), "usage ledger rows lost at shutdown");
                }
                break;
            }
        }
        // Sleep out the interval since the last commit, then take everything queued meanwhile.
        // Rows queued during the sleep do not wake the writer (only a usage report does, by
        // `flush_signal`): one wake-up per commit, not one per request.
        let deadline = last_commit + COMMIT_INTERVAL;
        let someone_waits = batch.iter().any(|op| {
            matches!(
                op,
                Op::Flush(_) | Op::Pending(_, Some(_)) | Op::Final(_, Some(_))
            )
        });
        if !someone_waits && deadline > tokio::time::Instant::now() {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = flush_signal.notified() => {}
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let mut flushes = Vec::new();
        // Rows whose answer waits for this commit: (id, waiter).
        let mut waiting: Vec<(String, Committed)> = Vec::new();
        for op in batch.drain(..) {
            match op {
                Op::Pending(row, waiter) => {
                    if let Some(w) = waiter {
                        waiting.push((row.id.clone(), w));
                    }
                    pending.push(row);
                }
                Op::Final(row, waiter) => {
                    if let Some(w) = waiter {
                        waiting.push((row.id.clone(), w));
                    }
                    finals.push(row);
                }
                Op::Flush(ack) => flushes.push(ack),
            }
        }
        last_commit = tokio::time::Instant::now();
        write_started.store(marquee_store::now_ms().max(1), Ordering::Release);
        let written = store.write_usage(&pending, &finals).await;
        write_started.store(0, Ordering::Release);
        let ok = match written {
            Ok(_) => {
                last_failure.store(0, Ordering::Release);
                pending.clear();
                finals.clear();
                true
            }
            Err(e) => {
                tracing::error!(error = %e, rows = pending.len() + finals.len(), "usage ledger write failed: refusing billable requests");
                metrics::counter!("marquee_ledger_write_failures_total").increment(1);
                last_failure.store(marquee_store::now_ms().max(1), Ordering::Release);
                if !waiting.is_empty() {
                    // Their requests are refused: nothing was served, nothing is owed.
                    let refused: std::collections::HashSet<&str> =
                        waiting.iter().map(|(id, _)| id.as_str()).collect();
                    pending.retain(|r| !refused.contains(r.id.as_str()));
                    finals.retain(|r| !refused.contains(r.id.as_str()));
                }
                for rows in [&mut pending, &mut finals] {
                    if rows.len() > MAX_RETRY_ROWS {
                        let lost = rows.len() - MAX_RETRY_ROWS;
                        tracing::error!(
                            rows = lost,
                            "usage ledger retry buffer full: oldest rows dropped"
                        );
                        metrics::counter!("marquee_ledger_rows_dropped_total")
                            .increment(lost as u64);
                        rows.drain(..lost);
                    }
                }
                false
            }
        };
        for ack in flushes {
            let _ = ack.send(ok);
        }
        for (_, w) in waiting {
            let _ = w.send(ok);
        }
    }
}

/// A billable request in progress. Dropped without [`Charge::settle`], it releases its
/// reservation (nothing was served) — unless it was held, in which case the estimate is charged.
pub struct Charge {
    meter: Arc<Meter>,
    reservation: Option<Reservation>,
    row: UsageRow,
    tenant_label: Arc<str>,
    estimate: Units,
    token_scopes: Vec<(Scope, RateLimits)>,
    tokens_reserved: u64,
    started: Instant,
    held: bool,
    done: bool,
    /// The tokens-per-minute decision, for the `x-ratelimit-*-tokens` headers.
    pub tokens: Option<RateDecision>,
}

impl Charge {
    /// Starts charging `caller`'s tenant for a request estimated at `estimate`. Refused with
    /// 429 when a budget, a quota or the tokens-per-minute limit would be exceeded, with 503
    /// while the ledger cannot be written. `None` for the operator's own keys, which belong to
    /// no tenant and are not billed.
    pub(crate) fn begin(
        meter: &Arc<Meter>,
        caller: &Caller,
        tenant_policy: &marquee_platform::TenantPolicy,
        model: Option<&str>,
        estimate: Units,
    ) -> Result<Option<Charge>, ServiceError> {
        let Some(tenant) = &caller.tenant else {
            return Ok(None);
        };
        if meter.ledger_failing() {
            return Err(ledger_unavailable());
        }
        let prices = meter.prices();
        let now = marquee_store::now_ms();
        let mut limits = vec![Limit {
            scope: Scope::Tenant(tenant.id),
            budget: tenant_policy.budget,
            quotas: tenant_policy.quotas.clone(),
        }];
        let mut token_scopes = vec![(Scope::Tenant(tenant.id), tenant_policy.limits)];
        if let Some(key) = caller.key_id() {
            limits.push(Limit {
                scope: Scope::Key(key.to_string()),
                budget: caller.policy.budget,
                quotas: caller.policy.quotas.clone(),
            });
            token_scopes.push((Scope::Key(key.to_string()), caller.policy.limits));
        }
        let estimate_cost = prices.cost(&estimate);
        let reservation = meter
            .accountant
            .reserve(
                &limits,
                prices.period.start_of(now),
                estimate,
                estimate_cost,
            )
            .map_err(|e| ServiceError::QuotaExceeded {
                code: match e {
                    marquee_platform::Exceeded::Budget { .. } => "budget_exceeded",
                    marquee_platform::Exceeded::Quota { .. } => "quota_exceeded",
                },
                message: e.to_string(),
                retry_after_secs: ((prices.period.next_start(now) - now) / 1000).max(1) as u64,
            })?;
        let tokens_reserved = generation_tokens(&estimate);
        token_scopes.retain(|(_, l)| l.tokens_per_minute.is_some());
        let tokens = if tokens_reserved > 0 && !token_scopes.is_empty() {
            let decision =
                meter
                    .limiter
                    .reserve_tokens(&token_scopes, tokens_reserved, Instant::now());
            if !decision.allowed {
                return Err(ServiceError::RateLimited {
                    what: "tokens",
                    decision,
                });
            }
            Some(decision)
        } else {
            None
        };
        let row = UsageRow {
            id: new_usage_id(),
            tenant_id: tenant.id,
            key_id: caller.key_id().map(str::to_string),
            route: caller.meta.route.clone(),
            model: model.map(str::to_string),
            units: units_to_columns(&estimate),
            cost_nanos: estimate_cost.nanos(),
            currency: prices.currency.clone(),
            latency_ms: 0,
            status: 0,
            request_id: caller.meta.request_id.clone(),
            at: now,
        };
        Ok(Some(Charge {
            meter: Arc::clone(meter),
            reservation: Some(reservation),
            row,
            tenant_label: Arc::from(tenant.name.as_str()),
            estimate,
            token_scopes,
            tokens_reserved,
            started: Instant::now(),
            held: false,
            done: false,
            tokens,
        }))
    }

    /// Queues a pending row with the estimate before a streamed answer starts, so that the
    /// request is paid for even if the process dies before it ends. With rows committed before
    /// the answer, waits for that row's commit and refuses the request (503) when it fails.
    pub async fn hold(&mut self) -> Result<(), ServiceError> {
        if self.meter.commit_before_answer {
            let (tx, rx) = oneshot::channel();
            let op = Op::Pending(self.row.clone(), Some(tx));
            if !self.meter.commit(op, rx).await {
                return Err(ledger_unavailable());
            }
        } else {
            self.meter
                .enqueue(Op::Pending(self.row.clone(), None))
                .await?;
        }
        self.held = true;
        Ok(())
    }

    fn finish(&mut self, actual: Units, status: u16) -> (UsageRow, Settlement) {
        self.done = true;
        let prices = self.meter.prices();
        let cost = prices.cost(&actual);
        let mut row = self.row.clone();
        row.units = units_to_columns(&actual);
        row.cost_nanos = cost.nanos();
        row.currency = prices.currency.clone();
        row.status = status as i64;
        row.latency_ms = self.started.elapsed().as_millis().min(i64::MAX as u128) as i64;
        let used_tokens = generation_tokens(&actual);
        if self.tokens_reserved > 0 && !self.token_scopes.is_empty() {
            self.meter.limiter.adjust_tokens(
                &self.token_scopes,
                self.tokens_reserved,
                used_tokens,
                Instant::now(),
            );
        }
        (
            row,
            Settlement {
                units: actual,
                cost,
                currency: prices.currency.clone(),
            },
        )
    }

    fn account(&mut self, settlement: &Settlement) {
        if let Some(r) = self.reservation.take() {
            r.settle(settlement.units, settlement.cost);
        }
        let tenant = self.tenant_label.to_string();
        let route = self.row.route.clone();
        let model = self.row.model.clone().unwrap_or_else(|| "-".into());
        for (unit, n) in settlement.units.iter() {
            metrics::counter!("marquee_units_total", "tenant" => tenant.clone(), "route" => route.clone(), "model" => model.clone(), "unit" => unit.as_str())
                .increment(n);
        }
        if settlement.cost.nanos() > 0 {
            metrics::counter!("marquee_spend_nanos_total", "tenant" => tenant, "route" => route, "model" => model, "currency" => settlement.currency.clone())
                .increment(settlement.cost.nanos() as u64);
        }
    }

    /// Records what was actually served: counted at once, the row queued for the ledger (see
    /// the module doc) — or, with rows committed before the answer, committed. Fails when the
    /// ledger writer is gone or (committed before the answer) the commit failed; the request is
    /// then not served and its reservation is released.
    pub async fn settle(mut self, actual: Units, status: u16) -> Result<Settlement, ServiceError> {
        let (row, settlement) = self.finish(actual, status);
        if self.meter.commit_before_answer {
            let (tx, rx) = oneshot::channel();
            if !self.meter.commit(Op::Final(row, Some(tx)), rx).await {
                return Err(ledger_unavailable());
            }
        } else {
            self.meter.enqueue(Op::Final(row, None)).await?;
        }
        self.account(&settlement);
        Ok(settlement)
    }

    /// Records the end of a held (streamed) request from synchronous code (a stream's end or
    /// drop): its pending row already guarantees it is paid for.
    pub fn settle_detached(mut self, actual: Units, status: u16) -> Settlement {
        let (row, settlement) = self.finish(actual, status);
        let meter = Arc::clone(&self.meter);
        if let Err(mpsc::error::TrySendError::Full(op)) = meter.tx.try_send(Op::Final(row, None)) {
            tokio::spawn(async move {
                if meter.tx.send(op).await.is_err() {
                    tracing::warn!(
                        "usage ledger closed; the pending row will be settled at its estimate"
                    );
                }
            });
        }
        self.account(&settlement);
        settlement
    }

    /// The model the request names, if any (for metrics labels).
    pub fn model(&self) -> Option<&str> {
        self.row.model.as_deref()
    }

    /// The estimate this charge reserved.
    pub fn estimate(&self) -> Units {
        self.estimate
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.held {
            // A held request that ended without a count (the stream was dropped): charge the
            // estimate, as its pending row already says.
            let estimate = self.estimate;
            let (row, settlement) = self.finish(estimate, 499);
            let meter = Arc::clone(&self.meter);
            if let Err(mpsc::error::TrySendError::Full(op)) =
                meter.tx.try_send(Op::Final(row, None))
                && let Ok(handle) = tokio::runtime::Handle::try_current()
            {
                handle.spawn(async move {
                    let _ = meter.tx.send(op).await;
                });
            }
            self.account(&settlement);
        } else if self.tokens_reserved > 0 && !self.token_scopes.is_empty() {
            self.meter.limiter.adjust_tokens(
                &self.token_scopes,
                self.tokens_reserved,
                0,
                Instant::now(),
            );
        }
        // The reservation (if any is left) is released by its own drop.
    }
}

/// `use_` + the time in ms (12 hex digits) + 80 random bits: unique, and ascending with time,
/// so the ledger's primary-key index grows at its right edge instead of splitting pages all
/// over (random ids made each group commit touch pages across the whole index).
fn new_usage_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 10];
    rand::rng().fill_bytes(&mut bytes);
    let ms = marquee_store::now_ms().clamp(0, 0xFFFF_FFFF_FFFF);
    format!("use_{ms:012x}{}", hex::encode(bytes))
}

/// Seconds a client should wait for a rate-limited request, at least 1.
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0).max(u64::from(d.is_zero()))
}
