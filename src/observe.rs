//! What the layer tells the world about each request: tracing events for refusals and failures,
//! and (feature `metrics`) the request counter and duration histograms of
//! [`metrics`](crate::metrics).
//!
//! The admission code calls one function here per decision; the Tower glue carries a [`Timer`].
//! Nothing here ever sees a key's value: only its id.

use std::error::Error as StdError;

use http::Method;

use crate::admission::Decision;
use crate::model::StageRef;
use crate::response::Rejection;

/// Where a decision was made: what the events and labels say about it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seen<'a> {
    pub(crate) stage: &'a StageRef,
    /// The route template (or the path, when no route matched).
    pub(crate) route: &'a str,
    pub(crate) method: &'a Method,
    pub(crate) key_id: Option<&'a str>,
    pub(crate) plan_id: Option<&'a std::sync::Arc<str>>,
    /// The metrics' labels of the route and method.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) labels: &'a Labels,
}

/// The outcome label of a decision.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) fn outcome(decision: &Decision) -> &'static str {
    match decision {
        Decision::Admit(_) => "admitted",
        Decision::Reject(r, _) => match r {
            Rejection::Throttled { .. } => "throttled",
            Rejection::QuotaExceeded { .. } => "quota_exceeded",
            Rejection::StoreUnavailable | Rejection::MeterUnavailable => "unavailable",
            _ => "forbidden",
        },
    }
}

fn reason(r: &Rejection) -> &'static str {
    match r {
        Rejection::MissingKey => "missing key",
        Rejection::InvalidKey => "unknown or malformed key",
        Rejection::DisabledKey => "disabled key",
        Rejection::NoPlan => "key in no plan on this stage",
        Rejection::Throttled { .. } => "throttled",
        Rejection::QuotaExceeded { .. } => "quota exceeded",
        Rejection::StoreUnavailable => "key store unavailable",
        Rejection::MeterUnavailable => "meter unavailable",
    }
}

/// A request that needs no key went through, uncounted.
#[inline]
pub(crate) fn bypassed(seen: Seen<'_>) {
    #[cfg(feature = "metrics")]
    crate::metrics::request(seen, "bypassed");
    let _ = seen;
}

/// A decision was made: counted, and a refusal is a tracing event.
#[inline]
pub(crate) fn decided(seen: Seen<'_>, decision: &Decision) {
    #[cfg(feature = "metrics")]
    crate::metrics::request(seen, outcome(decision));
    refused(seen, decision);
}

/// A refusal is a tracing event.
#[inline]
fn refused(seen: Seen<'_>, decision: &Decision) {
    if let Decision::Reject(r, _) = decision {
        tracing::info!(
            target: "tower_usage_plans",
            stage = %seen.stage,
            route = %format_args!("{} {}", seen.method, seen.route),
            key_id = seen.key_id.unwrap_or("-"),
            plan_id = seen.plan_id.map_or("-", |p| &**p),
            reason = reason(r),
            retry_after = r.retry_after(),
            status = r.status().as_u16(),
            "request refused"
        );
    }
}

/// The store or the meter failed on a request.
#[cold]
pub(crate) fn failed(seen: Seen<'_>, what: &'static str, error: &(dyn StdError + 'static)) {
    tracing::error!(
        target: "tower_usage_plans",
        stage = %seen.stage,
        route = %format_args!("{} {}", seen.method, seen.route),
        key_id = seen.key_id.unwrap_or("-"),
        plan_id = seen.plan_id.map_or("-", |p| &**p),
        error = error,
        "{what} failed"
    );
}

#[cfg(feature = "metrics")]
pub(crate) use crate::metrics::{LabelTable, Labels, Timer};

/// Without the `metrics` feature, no labels.
#[cfg(not(feature = "metrics"))]
#[derive(Clone, Debug, Default)]
pub(crate) struct Labels;

/// Without the `metrics` feature, no labels.
#[cfg(not(feature = "metrics"))]
#[derive(Debug)]
pub(crate) struct LabelTable;

#[cfg(not(feature = "metrics"))]
impl LabelTable {
    pub(crate) fn new(_: &StageRef, _: &crate::route::Routes) -> Self {
        Self
    }
    #[inline]
    pub(crate) fn get(&self, _: &crate::route::RouteMatch<'_>, _: &Method) -> Labels {
        Labels
    }
}

/// Without the `metrics` feature, a timer that times nothing.
#[cfg(not(feature = "metrics"))]
#[derive(Clone, Debug, Default)]
pub(crate) struct Timer;

#[cfg(not(feature = "metrics"))]
impl Timer {
    #[inline]
    pub(crate) fn start() -> Self {
        Self
    }
    #[inline]
    pub(crate) fn none() -> Self {
        Self
    }
    #[inline]
    pub(crate) fn label(&mut self, _: &Labels) {}
    #[inline]
    pub(crate) fn inner_started_now(&mut self) {}
    #[inline]
    pub(crate) fn inner_done(&self, _: Option<std::time::Instant>, _: http::StatusCode) {}
    #[inline]
    pub(crate) fn finish(&mut self, _: http::StatusCode) {}
    #[inline]
    pub(crate) fn now() -> Option<std::time::Instant> {
        None
    }
}

/// How metrics and logs name a request's route: the layer's route template that matched, or `*`
/// when none did (a raw path is the client's choice, and would make a label per path).
#[inline]
pub(crate) fn route_label<'a>(route: &crate::route::RouteMatch<'a>) -> &'a str {
    route.template.unwrap_or("*")
}

impl<'a> Seen<'a> {
    /// A request on `stage` to `method route`, before its key is known.
    #[inline]
    pub(crate) fn new(
        stage: &'a StageRef,
        route: &'a str,
        method: &'a Method,
        labels: &'a Labels,
    ) -> Self {
        Self {
            stage,
            route,
            method,
            key_id: None,
            plan_id: None,
            labels,
        }
    }

    /// The same, with the key and plan known.
    #[inline]
    pub(crate) fn with(self, key_id: &'a str, plan_id: Option<&'a std::sync::Arc<str>>) -> Self {
        Self {
            key_id: Some(key_id),
            plan_id,
            ..self
        }
    }
}

/// The route and method of a request that waits for its store or meter, owned.
#[derive(Debug)]
pub(crate) struct At {
    pub(crate) route: Box<str>,
    pub(crate) method: Method,
    pub(crate) labels: Labels,
}

impl At {
    pub(crate) fn new(route: &str, method: &Method, labels: &Labels) -> Self {
        Self {
            route: route.into(),
            method: method.clone(),
            labels: labels.clone(),
        }
    }
}

/// [`decided`], handing the decision on.
#[inline]
pub(crate) fn done(seen: Seen<'_>, decision: Decision) -> Decision {
    decided(seen, &decision);
    decision
}

/// The store failed: a tracing event, and counted as `unavailable` whether the layer refuses
/// (503) or admits unmetered ([`FailMode::Open`](crate::FailMode)); hands `decision` on.
#[cold]
pub(crate) fn store_failed(
    seen: Seen<'_>,
    error: &crate::error::StoreError,
    decision: Decision,
) -> Decision {
    failed(seen, "key store", error);
    unavailable(seen, decision)
}

/// [`done`] for a decision made because the store or meter failed.
#[cold]
fn unavailable(seen: Seen<'_>, decision: Decision) -> Decision {
    #[cfg(feature = "metrics")]
    crate::metrics::request(seen, "unavailable");
    refused(seen, &decision);
    decision
}

/// The meter answered `verdict`: a failure is a tracing event; `decide` makes the decision, which
/// is then [`done`].
#[inline]
pub(crate) fn metered<V>(
    seen: Seen<'_>,
    verdict: Result<V, crate::error::MeterError>,
    decide: impl FnOnce(Result<V, crate::error::MeterError>) -> Decision,
) -> Decision {
    if let Err(e) = &verdict {
        failed(seen, "meter", e);
        return unavailable(seen, decide(verdict));
    }
    done(seen, decide(verdict))
}
