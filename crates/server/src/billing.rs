//! Putting what a request cost on its answer.
//!
//! Routes open a [`Charge`] before the work (see `marquee_core::metering`) and close it with
//! [`billed`] once they know what they served: the request is counted against its budgets and
//! its ledger row queued (or, with `ledger_commit_before_answer`, committed) before the answer
//! leaves, and the answer carries the units (`x-marquee-units`) and the price
//! (`x-marquee-cost`). Routes of OpenAI's API also put the units in their `usage` object.

use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
pub use marquee_core::metering::generation_units;
use marquee_core::metering::{Charge, Settlement};
use marquee_platform::{Unit, Units};

use crate::error::ApiResult;

/// One recommendation request: the unit of the recommend, similar, popular and search routes.
pub fn one_recommendation() -> Units {
    Units::one(Unit::Recommendations, 1)
}

/// Adds the `x-marquee-units` and `x-marquee-cost` headers of a settled request.
pub fn settlement_headers(response: &mut Response, s: &Settlement) {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&s.units.header_value()) {
        headers.insert("x-marquee-units", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{} {}", s.cost, s.currency)) {
        headers.insert("x-marquee-cost", v);
    }
}

/// Adds the units header of a request that is not billed (operator keys).
pub fn units_only(response: &mut Response, units: &Units) {
    if let Ok(v) = HeaderValue::from_str(&units.header_value()) {
        response.headers_mut().insert("x-marquee-units", v);
    }
}

/// Settles `charge` with `units` and returns `answer` with the usage headers; when the usage
/// cannot be recorded, the answer is dropped and the caller gets 503.
pub async fn billed(
    charge: Option<Charge>,
    units: Units,
    answer: impl IntoResponse,
) -> ApiResult<Response> {
    let tokens = charge.as_ref().and_then(|c| c.tokens.clone());
    if let Some(model) = charge.as_ref().and_then(|c| c.model()) {
        crate::metrics::note_model(model);
    }
    let settlement = match charge {
        Some(c) => Some(c.settle(units, 200).await?),
        None => None,
    };
    let mut response = answer.into_response();
    match &settlement {
        Some(s) => settlement_headers(&mut response, s),
        None => units_only(&mut response, &units),
    }
    if let Some(d) = tokens {
        for (name, value) in crate::access::rate_limit_headers("tokens", &d) {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}

/// A held charge that a streamed answer settles when it ends — or, if the client goes away
/// first, when the stream is dropped, with what was produced until then.
pub struct StreamCharge {
    charge: Option<Charge>,
    /// What has been served so far.
    pub units: Units,
}

impl StreamCharge {
    /// Holds `charge` (its pending ledger row is committed before the first byte).
    pub async fn hold(mut charge: Option<Charge>, units: Units) -> ApiResult<Self> {
        if let Some(model) = charge.as_ref().and_then(|c| c.model()) {
            crate::metrics::note_model(model);
        }
        if let Some(c) = &mut charge {
            c.hold().await?;
        }
        Ok(StreamCharge { charge, units })
    }

    /// Settles with the final count (`None` for operator keys, which are not billed).
    pub fn finish(&mut self, units: Units, status: u16) -> Option<Settlement> {
        self.units = units;
        self.charge.take().map(|c| c.settle_detached(units, status))
    }
}

impl Drop for StreamCharge {
    fn drop(&mut self) {
        if let Some(c) = self.charge.take() {
            c.settle_detached(self.units, 499);
        }
    }
}
