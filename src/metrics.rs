//! Prometheus-style metrics through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`): install any recorder (metrics-exporter-prometheus, …) and the layer reports to it.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | [`REQUESTS_TOTAL`] `usage_plans_requests_total` | counter | `stage`, `plan`, `method`, `outcome` |
//! | [`REQUEST_DURATION`] `usage_plans_request_duration_seconds` | histogram | `stage`, `method`, `status` |
//! | [`INNER_DURATION`] `usage_plans_inner_duration_seconds` | histogram | `stage`, `method`, `status` |
//!
//! - `outcome`: `admitted`, `throttled`, `quota_exceeded`, `forbidden`, `unavailable`, `bypassed`
//!   (a method that needs no key).
//! - `method`: the route template and the HTTP method, `GET /items/{id}`, never the raw path (a
//!   layer without routes has one template per distinct path: give it routes,
//!   `UsagePlanLayerBuilder::route`, if paths carry ids).
//! - `status`: the status class of the answer, `2xx`, `4xx`, `5xx`.
//! - `plan`: the plan's id, empty where the request got no plan (bypassed, unknown key).
//!
//! The request duration is the whole request through the layer (CloudWatch's `Latency`); the
//! inner duration is the inner service alone (`IntegrationLatency`). No label ever carries a key's
//! id or value: per-key figures are what [`get_usage`](crate::usage::get_usage) is for, and
//! per-key labels would give a Prometheus server one series per client.
//!
//! # Examples
//!
//! ```
//! use tower_usage_plans::metrics::{REQUESTS_TOTAL, REQUEST_DURATION};
//! assert_eq!(REQUESTS_TOTAL, "usage_plans_requests_total");
//! assert_eq!(REQUEST_DURATION, "usage_plans_request_duration_seconds");
//! ```
//!
//! The README shows the PromQL for CloudWatch's `Count`, `4XXError`, `5XXError`, `Latency` and
//! `IntegrationLatency`.

use std::time::Instant;

use http::StatusCode;

use crate::observe::Seen;

/// The request counter's name.
pub const REQUESTS_TOTAL: &str = "usage_plans_requests_total";
/// The whole request's duration histogram (CloudWatch's `Latency`).
pub const REQUEST_DURATION: &str = "usage_plans_request_duration_seconds";
/// The inner service's duration histogram (CloudWatch's `IntegrationLatency`).
pub const INNER_DURATION: &str = "usage_plans_inner_duration_seconds";

/// Counts one request.
pub(crate) fn request(seen: Seen<'_>, outcome: &'static str) {
    ::metrics::counter!(
        REQUESTS_TOTAL,
        "stage" => seen.stage.to_string(),
        "plan" => seen.plan_id.unwrap_or("").to_owned(),
        "method" => format!("{} {}", seen.method, seen.route),
        "outcome" => outcome,
    )
    .increment(1);
}

fn class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[derive(Clone, Debug)]
struct Labels {
    start: Instant,
    inner: Option<Instant>,
    stage: String,
    method: String,
}

/// Times one request, from the layer's `call` to its answer.
#[derive(Clone, Debug, Default)]
pub(crate) struct Timer(Option<Box<Labels>>);

impl Timer {
    /// Starts timing `req`.
    pub(crate) fn start() -> Self {
        Self(Some(Box::new(Labels {
            start: Instant::now(),
            inner: None,
            stage: String::new(),
            method: String::new(),
        })))
    }

    /// Names what is timed: the stage, and the method with the route label (from the decision,
    /// which has resolved the route already).
    pub(crate) fn label(
        &mut self,
        stage: &crate::model::StageRef,
        method: &http::Method,
        route: &str,
    ) {
        if let Some(l) = &mut self.0 {
            l.stage = stage.to_string();
            l.method = format!("{method} {route}");
        }
    }

    /// The inner service is called now (by the response future).
    pub(crate) fn inner_started_now(&mut self) {
        if let Some(l) = &mut self.0 {
            l.inner = Some(Instant::now());
        }
    }

    /// Now, to time an inner call with [`inner_done`](Self::inner_done).
    pub(crate) fn now() -> Option<Instant> {
        Some(Instant::now())
    }

    /// The inner service, called at `since`, answered `status`.
    pub(crate) fn inner_done(&self, since: Option<Instant>, status: StatusCode) {
        if let (Some(l), Some(since)) = (&self.0, since) {
            ::metrics::histogram!(
                INNER_DURATION,
                "stage" => l.stage.clone(),
                "method" => l.method.clone(),
                "status" => class(status),
            )
            .record(since.elapsed().as_secs_f64());
        }
    }

    /// The layer answered `status`: records the durations, once.
    pub(crate) fn finish(&mut self, status: StatusCode) {
        let Some(l) = self.0.take() else { return };
        if let Some(inner) = l.inner {
            ::metrics::histogram!(
                INNER_DURATION,
                "stage" => l.stage.clone(),
                "method" => l.method.clone(),
                "status" => class(status),
            )
            .record(inner.elapsed().as_secs_f64());
        }
        ::metrics::histogram!(
            REQUEST_DURATION,
            "stage" => l.stage,
            "method" => l.method,
            "status" => class(status),
        )
        .record(l.start.elapsed().as_secs_f64());
    }
}
