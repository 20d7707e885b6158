//! Usage and invoices: what a tenant used and owes, summed from the usage ledger.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use marquee_core::usage::{GroupBy, UsageRecord};
use marquee_core::{Caller, ServiceError, Timestamp};
use marquee_platform::{Capability, Unit};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{ApiPath, ApiQuery, Auth};

/// The answer's format.
#[derive(Clone, Copy, Deserialize, Default, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Json,
    Csv,
}

/// Query of `GET /v1/usage`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    /// Start (RFC 3339); the start of the current billing period by default.
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    from: Option<Timestamp>,
    /// End (RFC 3339); now by default.
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    to: Option<Timestamp>,
    /// Lines per day, key, model, route (or tenant, for the operator).
    #[serde(default)]
    #[param(inline)]
    group_by: Option<GroupBy>,
    #[serde(default)]
    #[param(inline)]
    format: Format,
    /// Operator only: one tenant (all tenants without it).
    #[serde(default)]
    tenant: Option<String>,
}

/// The tenant a usage request is about: the caller's, or for the operator the one named (or
/// all, `None`).
fn usage_scope(
    state: &AppState,
    caller: &Caller,
    tenant: Option<&str>,
) -> Result<Option<i64>, ServiceError> {
    if caller.is_operator() {
        return match tenant {
            Some(name) => Ok(Some(
                state
                    .service
                    .tenant_by_name(name)
                    .ok_or_else(|| ServiceError::not_found("tenant", name))?
                    .id,
            )),
            None => Ok(None),
        };
    }
    if tenant.is_some() {
        return Err(ServiceError::invalid("tenant", "is for operator keys"));
    }
    Ok(Some(caller.tenant_for(Capability::UsageRead)?.id))
}

fn csv_response(text: String, filename: &str) -> Response {
    let mut response = text.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// Quotes a CSV field when it needs it (and defuses spreadsheet formulas).
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn unit_header() -> String {
    Unit::ALL
        .iter()
        .map(|u| u.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn unit_columns(units: &marquee_platform::Units) -> String {
    Unit::ALL
        .iter()
        .map(|u| units.get(*u).to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// `GET /v1/usage?from&to&group_by=day|key|model|route[&format=csv]`: the tenant's usage
/// (default: the current billing period); the operator's key sees every tenant (`group_by=tenant`)
/// or one (`tenant=`).
#[utoipa::path(
    get,
    path = "/v1/usage",
    tag = "usage",
    operation_id = "getUsage",
    summary = "Usage report",
    description = "Requests, units and cost of the tenant (default: the current billing period up to now), in total and grouped by day, key, model or route. The operator's key sees every tenant (`group_by=tenant`) or one (`tenant`).",
    params(UsageParams),
    responses((
        status = 200,
        description = "The report",
        content(
            (marquee_core::usage::UsageReport = "application/json"),
            (String = "text/csv", example = "group,requests,recommendations,input_tokens,output_tokens,embedding_tokens,tts_characters,images,audio_milliseconds,cost,currency"),
        ),
    )),
    extensions(("x-required-scope" = json!("usage:read"))),
)]
pub async fn usage(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiQuery(p): ApiQuery<UsageParams>,
) -> ApiResult<Response> {
    let tenant = usage_scope(&state, &caller, p.tenant.as_deref())?;
    let report = state
        .service
        .usage_report(tenant, p.from, p.to, p.group_by)
        .await?;
    if p.format == Format::Json {
        return Ok(Json(report).into_response());
    }
    let mut out = format!("group,requests,{},cost,currency\n", unit_header());
    let lines = if report.data.is_empty() {
        vec![report.total.clone()]
    } else {
        report.data.clone()
    };
    for l in &lines {
        out.push_str(&format!(
            "{},{},{},{},{}\n",
            csv_field(l.group.as_deref().unwrap_or("total")),
            l.requests,
            unit_columns(&l.units),
            l.cost,
            csv_field(&report.currency),
        ));
    }
    Ok(csv_response(out, "usage.csv"))
}

/// Query of `GET /v1/usage/records`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RecordParams {
    /// Start (RFC 3339); the start of the current billing period by default.
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    from: Option<Timestamp>,
    /// End (RFC 3339); now by default.
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    to: Option<Timestamp>,
    /// The `next` cursor of the previous page.
    #[serde(default)]
    after: Option<String>,
    /// Records per JSON page (1–10,000); CSV has every record of the window.
    #[serde(default = "default_limit")]
    #[param(default = 1000)]
    limit: usize,
    #[serde(default)]
    #[param(inline)]
    format: Format,
    /// Operator only: one tenant (all tenants without it).
    #[serde(default)]
    tenant: Option<String>,
}

fn default_limit() -> usize {
    1000
}

/// Most records in one page (JSON) or one CSV export.
const MAX_RECORDS: usize = 10_000;
const MAX_CSV_RECORDS: usize = 1_000_000;

fn parse_cursor(after: &str) -> Result<(i64, String), ServiceError> {
    let (at, id) = after
        .split_once(':')
        .ok_or_else(|| ServiceError::invalid("after", "is not a cursor from a previous page"))?;
    let at = at
        .parse()
        .map_err(|_| ServiceError::invalid("after", "is not a cursor from a previous page"))?;
    Ok((at, id.to_string()))
}

fn cursor(r: &UsageRecord) -> String {
    format!("{}:{}", r.at.0, r.id)
}

/// `GET /v1/usage/records`: the individual billed requests, oldest first, paged with `after`
/// (JSON), or all of them in the window as CSV (`format=csv`).
#[utoipa::path(
    get,
    path = "/v1/usage/records",
    tag = "usage",
    operation_id = "listUsageRecords",
    summary = "Billed requests",
    description = "The individual billed requests, oldest first: pages of JSON (`after`), or every one in the window as CSV (`format=csv`).",
    params(RecordParams),
    responses((
        status = 200,
        description = "The records",
        content(
            (crate::openapi::UsageRecordPage = "application/json"),
            (String = "text/csv"),
        ),
    )),
    extensions(("x-required-scope" = json!("usage:read"))),
)]
pub async fn records(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiQuery(p): ApiQuery<RecordParams>,
) -> ApiResult<Response> {
    let tenant = usage_scope(&state, &caller, p.tenant.as_deref())?;
    let mut after = p.after.as_deref().map(parse_cursor).transpose()?;
    if p.format == Format::Json {
        let limit = p.limit.clamp(1, MAX_RECORDS);
        let data = state
            .service
            .usage_records(tenant, p.from, p.to, after, limit)
            .await?;
        let next = (data.len() == limit)
            .then(|| data.last().map(cursor))
            .flatten();
        return Ok(Json(json!({"object": "list", "data": data, "next": next})).into_response());
    }
    let mut out = format!(
        "id,at,tenant,key_id,route,model,status,latency_ms,{},cost,currency,request_id\n",
        unit_header()
    );
    let mut written = 0;
    loop {
        let page = state
            .service
            .usage_records(tenant, p.from, p.to, after.clone(), MAX_RECORDS)
            .await?;
        for r in &page {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{},{}\n",
                r.id,
                r.at.to_rfc3339(),
                csv_field(&r.tenant),
                r.key_id.as_deref().unwrap_or(""),
                csv_field(&r.route),
                csv_field(r.model.as_deref().unwrap_or("")),
                r.status,
                r.latency_ms,
                unit_columns(&r.units),
                r.cost,
                csv_field(&r.currency),
                csv_field(r.request_id.as_deref().unwrap_or("")),
            ));
        }
        written += page.len();
        if page.len() < MAX_RECORDS || written >= MAX_CSV_RECORDS {
            break;
        }
        after = page.last().map(|r| (r.at.0, r.id.clone()));
    }
    Ok(csv_response(out, "usage-records.csv"))
}

/// Query of `GET /v1/invoices/{month}`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InvoiceParams {
    #[serde(default)]
    #[param(inline)]
    format: Format,
    /// Operator only, and then required: the tenant.
    #[serde(default)]
    tenant: Option<String>,
}

/// `GET /v1/invoices/{YYYY-MM}`: the tenant's invoice for a month, one line per route and
/// model, summed from the ledger.
#[utoipa::path(
    get,
    path = "/v1/invoices/{month}",
    tag = "usage",
    operation_id = "getInvoice",
    summary = "A month's invoice",
    description = "One line per route and model, summed from the same ledger as the usage report. An operator names the tenant (`tenant`).",
    params(
        ("month" = String, Path, description = "`YYYY-MM` (UTC).", example = "2026-11"),
        InvoiceParams,
    ),
    responses((
        status = 200,
        description = "The invoice",
        content(
            (marquee_core::usage::Invoice = "application/json"),
            (String = "text/csv"),
        ),
    )),
    extensions(("x-required-scope" = json!("usage:read"))),
)]
pub async fn invoice(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiPath(month): ApiPath<String>,
    ApiQuery(p): ApiQuery<InvoiceParams>,
) -> ApiResult<Response> {
    let tenant = usage_scope(&state, &caller, p.tenant.as_deref())?.ok_or_else(|| {
        ServiceError::invalid("tenant", "an operator must name the tenant (`?tenant=`)")
    })?;
    let invoice = state.service.invoice(tenant, &month).await?;
    if p.format == Format::Json {
        return Ok(Json(invoice).into_response());
    }
    let mut out = format!("route,model,requests,{},amount,currency\n", unit_header());
    for l in &invoice.lines {
        out.push_str(&format!(
            "{},{},{},{},{},{}\n",
            csv_field(&l.route),
            csv_field(l.model.as_deref().unwrap_or("")),
            l.requests,
            unit_columns(&l.units),
            l.amount,
            csv_field(&invoice.currency),
        ));
    }
    out.push_str(&format!(
        "total,,{},{},{},{}\n",
        invoice.requests,
        unit_columns(&invoice.units),
        invoice.total,
        csv_field(&invoice.currency),
    ));
    let name = format!("invoice-{}-{}.csv", invoice.tenant, invoice.period);
    Ok(csv_response(out, &name))
}
