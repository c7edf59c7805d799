//! What the layer tells the world about each request: tracing events for refusals and failures,
//! and (feature `metrics`) the request counter and duration histograms of
//! [`metrics`](crate::metrics).
//!
//! The admission code calls one function here per decision; the Tower glue carries a [`Timer`].
//! Nothing here ever sees a key's value: only its id.

use std::error::Error as StdError;
use std::sync::Arc;

use http::Method;

use crate::model::StageRef;
use crate::rejection::Rejection;

/// Where a decision was made: what the events and labels say about it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seen<'a> {
    pub(crate) stage: &'a StageRef,
    /// The route template (or `*`, when no route matched).
    pub(crate) route: &'a str,
    pub(crate) method: &'a Method,
    pub(crate) key_id: Option<&'a str>,
    pub(crate) plan_id: Option<&'a Arc<str>>,
    /// The metrics' labels of the route and method.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) labels: &'a Labels,
}

/// What became of a request: what the decision tells this module, once, at its end.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Told<'a> {
    /// It needs no key: passed through, uncounted.
    Bypassed,
    /// Admitted and counted.
    Admitted,
    /// Refused.
    Refused(&'a Rejection),
    /// The store or the meter failed: refused (503) or, failing open, admitted unmetered.
    Failed {
        what: &'static str,
        error: &'a (dyn StdError + 'static),
        refused: Option<&'a Rejection>,
    },
}

/// The outcome label of a decision.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
fn outcome(told: &Told<'_>) -> &'static str {
    match told {
        Told::Bypassed => "bypassed",
        Told::Admitted => "admitted",
        Told::Failed { .. } => "unavailable",
        Told::Refused(r) => match r {
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

/// The one call a decision makes: counted (feature `metrics`), and a refusal or a failure is a
/// tracing event.
#[inline]
pub(crate) fn tell(seen: Seen<'_>, told: Told<'_>) {
    #[cfg(feature = "metrics")]
    crate::metrics::request(seen.labels, seen.plan_id, outcome(&told));
    match told {
        Told::Bypassed | Told::Admitted => {}
        Told::Refused(r) => refused(seen, r),
        Told::Failed {
            what,
            error,
            refused: r,
        } => {
            failed(seen, what, error);
            if let Some(r) = r {
                refused(seen, r);
            }
        }
    }
}

/// A refusal is a tracing event.
#[cold]
fn refused(seen: Seen<'_>, r: &Rejection) {
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

/// The store or the meter failed on a request.
#[cold]
fn failed(seen: Seen<'_>, what: &'static str, error: &(dyn StdError + 'static)) {
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
    pub(crate) fn label(&mut self, _: &Labels) {}
    #[inline]
    pub(crate) fn inner_started_now(&mut self) {}
    #[inline]
    pub(crate) fn finish(&mut self, _: http::StatusCode) {}
}

/// How metrics and logs name a request's route: the layer's route template that matched, or `*`
/// when none did (a raw path is the client's choice, and would make a label per path).
#[inline]
pub(crate) fn route_label<'a>(route: &crate::route::RouteMatch<'a>) -> &'a str {
    route.template.unwrap_or("*")
}
