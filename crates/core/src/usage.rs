//! Usage reports and invoices, read from the usage ledger.
//!
//! Every figure here is a sum of ledger rows — the same rows whose costs were charged — so a
//! report, an invoice and the individual requests always agree, whatever the prices were when
//! each request ran.
//!
//! They are read only after every request already answered has reached the ledger
//! ([`crate::metering::Meter::flush`]): while the ledger cannot be written they are refused
//! (`ledger_unavailable`), rather than silently leave out requests that were served.

use marquee_platform::{Money, Period, Units, month_range};
use marquee_store::{UsageFilter, UsageGroupBy, UsageRow, UsageSummaryRow};
use serde::Serialize;

use crate::error::ServiceError;
use crate::metering::units_from_columns;
use crate::types::Timestamp;

pub use marquee_types::GroupBy;

/// A usage report: the shape the SDK reads ([`marquee_types::UsageReport`]), with the exact
/// units and amounts.
pub type UsageReport = marquee_types::UsageReport<Units, Money>;

/// One line of a report: a group's requests, units and cost.
pub type UsageLine = marquee_types::UsageLine<Units, Money>;

fn store_group(g: GroupBy) -> UsageGroupBy {
    match g {
        GroupBy::Day => UsageGroupBy::Day,
        GroupBy::Key => UsageGroupBy::Key,
        GroupBy::Model => UsageGroupBy::Model,
        GroupBy::Route => UsageGroupBy::Route,
        GroupBy::Tenant => UsageGroupBy::Tenant,
    }
}

/// Waits for every request already answered to be in the ledger; refused while it cannot be
/// written, since what is read next would leave out requests that were served.
async fn flushed(meter: &crate::metering::Meter) -> Result<(), ServiceError> {
    if meter.flush().await {
        Ok(())
    } else {
        Err(ServiceError::LedgerUnavailable)
    }
}

/// One billed request, as exported.
#[derive(utoipa::ToSchema, Clone, Debug, Serialize)]
pub struct UsageRecord {
    pub id: String,
    pub tenant: String,
    pub key_id: Option<String>,
    pub route: String,
    pub model: Option<String>,
    pub units: Units,
    pub cost: Money,
    pub currency: String,
    pub latency_ms: i64,
    pub status: i64,
    pub request_id: Option<String>,
    pub at: Timestamp,
}

/// A month's invoice for one tenant.
#[derive(utoipa::ToSchema, Clone, Debug, Serialize)]
pub struct Invoice {
    pub object: &'static str,
    pub tenant: String,
    /// `2026-11`.
    pub period: String,
    /// `open` while the month runs, `final` after it.
    pub status: &'static str,
    pub from: Timestamp,
    pub to: Timestamp,
    pub currency: String,
    /// One line per route and model.
    pub lines: Vec<InvoiceLine>,
    pub requests: i64,
    pub units: Units,
    pub total: Money,
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize)]
pub struct InvoiceLine {
    pub route: String,
    pub model: Option<String>,
    pub requests: i64,
    pub units: Units,
    pub amount: Money,
}

/// Where a report starts and ends: given, or the current billing period up to now.
pub fn report_window(
    period: Period,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) -> Result<(i64, i64), ServiceError> {
    let now = marquee_store::now_ms();
    let from = from.map_or_else(|| period.start_of(now), |t| t.0);
    let to = to.map_or(now + 1, |t| t.0);
    if to <= from {
        return Err(ServiceError::invalid("to", "must be later than `from`"));
    }
    Ok((from, to))
}

fn line(row: UsageSummaryRow, group: Option<String>) -> UsageLine {
    UsageLine {
        group,
        requests: row.requests,
        units: units_from_columns(&row.units),
        cost: Money::from_nanos(row.cost_nanos),
    }
}

fn total_of(lines: &[UsageLine]) -> UsageLine {
    let mut total = UsageLine {
        group: None,
        requests: 0,
        units: Units::default(),
        cost: Money::ZERO,
    };
    for l in lines {
        total.requests += l.requests;
        total.units.add(&l.units);
        total.cost = total.cost.saturating_add(l.cost);
    }
    total
}

impl crate::Service {
    fn tenant_label(&self, id: i64) -> String {
        self.tenant(id)
            .map_or_else(|| id.to_string(), |t| t.name.clone())
    }

    /// Usage between `from` and `to` (default: the current billing period), for one tenant or
    /// (operator, `None`) all of them, optionally grouped.
    pub async fn usage_report(
        &self,
        tenant_id: Option<i64>,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        group_by: Option<GroupBy>,
    ) -> Result<UsageReport, ServiceError> {
        if group_by == Some(GroupBy::Tenant) && tenant_id.is_some() {
            return Err(ServiceError::invalid(
                "group_by",
                "`tenant` is for operator reports across tenants",
            ));
        }
        let prices = self.meter.prices();
        let (from_ms, to_ms) = report_window(prices.period, from, to)?;
        flushed(&self.meter).await?;
        let filter = UsageFilter {
            tenant_id,
            key_id: None,
            from_ms,
            to_ms,
        };
        let rows = self
            .store
            .usage_summary(&filter, group_by.map_or(UsageGroupBy::Total, store_group))
            .await?;
        let data: Vec<UsageLine> = rows
            .into_iter()
            .map(|r| {
                let group = match group_by {
                    Some(GroupBy::Day) => r
                        .group
                        .as_deref()
                        .and_then(|d| d.parse::<i64>().ok())
                        .map(|d| marquee_platform::day_label(d * 86_400_000)),
                    Some(GroupBy::Tenant) => r
                        .group
                        .as_deref()
                        .and_then(|t| t.parse::<i64>().ok())
                        .map(|t| self.tenant_label(t)),
                    _ => r.group.clone(),
                };
                line(r, group)
            })
            .collect();
        let total = total_of(&data);
        Ok(UsageReport {
            object: "usage".into(),
            tenant: tenant_id.map(|t| self.tenant_label(t)),
            from: Timestamp(from_ms),
            to: Timestamp(to_ms),
            group_by,
            currency: prices.currency.clone(),
            data: if group_by.is_some() { data } else { Vec::new() },
            total,
        })
    }

    /// Individual ledger rows in time order, after `after` (a record id from the previous
    /// page's last record, with its time).
    pub async fn usage_records(
        &self,
        tenant_id: Option<i64>,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<UsageRecord>, ServiceError> {
        let prices = self.meter.prices();
        let (from_ms, to_ms) = report_window(prices.period, from, to)?;
        let filter = UsageFilter {
            tenant_id,
            key_id: None,
            from_ms,
            to_ms,
        };
        flushed(&self.meter).await?;
        let rows = self.store.usage_rows(&filter, after, limit).await?;
        Ok(rows.into_iter().map(|r| self.record(r)).collect())
    }

    fn record(&self, r: UsageRow) -> UsageRecord {
        UsageRecord {
            tenant: self.tenant_label(r.tenant_id),
            units: units_from_columns(&r.units),
            cost: Money::from_nanos(r.cost_nanos),
            id: r.id,
            key_id: r.key_id,
            route: r.route,
            model: r.model,
            currency: r.currency,
            latency_ms: r.latency_ms,
            status: r.status,
            request_id: r.request_id,
            at: Timestamp(r.at),
        }
    }

    /// The invoice of `month` (`YYYY-MM`, UTC) for a tenant.
    pub async fn invoice(&self, tenant_id: i64, month: &str) -> Result<Invoice, ServiceError> {
        let (from_ms, to_ms) =
            month_range(month).ok_or_else(|| ServiceError::invalid("month", "must be YYYY-MM"))?;
        flushed(&self.meter).await?;
        let filter = UsageFilter {
            tenant_id: Some(tenant_id),
            key_id: None,
            from_ms,
            to_ms,
        };
        let rows = self
            .store
            .usage_summary(&filter, UsageGroupBy::RouteModel)
            .await?;
        let mut lines = Vec::with_capacity(rows.len());
        for r in rows {
            let (route, model) = match r.group.as_deref() {
                Some(g) => match g.split_once(marquee_store::GROUP_SEPARATOR) {
                    Some((route, model)) => (
                        route.to_string(),
                        (!model.is_empty()).then(|| model.to_string()),
                    ),
                    None => (g.to_string(), None),
                },
                None => (String::new(), None),
            };
            lines.push(InvoiceLine {
                route,
                model,
                requests: r.requests,
                units: units_from_columns(&r.units),
                amount: Money::from_nanos(r.cost_nanos),
            });
        }
        let mut units = Units::default();
        let mut total = Money::ZERO;
        let mut requests = 0;
        for l in &lines {
            units.add(&l.units);
            total = total.saturating_add(l.amount);
            requests += l.requests;
        }
        Ok(Invoice {
            object: "invoice",
            tenant: self.tenant_label(tenant_id),
            period: month.to_string(),
            status: if marquee_store::now_ms() < to_ms {
                "open"
            } else {
                "final"
            },
            from: Timestamp(from_ms),
            to: Timestamp(to_ms),
            currency: self.meter.prices().currency.clone(),
            lines,
            requests,
            units,
            total,
        })
    }
}
