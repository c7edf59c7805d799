//! Prometheus-style metrics through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`): install any recorder (metrics-exporter-prometheus, …) and the layer reports to it.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | [`REQUESTS_TOTAL`] `usage_plans_requests_total` | counter | `stage`, `plan`, `method`, `outcome` |
//! | [`REQUEST_DURATION`] `usage_plans_request_duration_seconds` | histogram | `stage`, `method`, `status` |
//! | [`INNER_DURATION`] `usage_plans_inner_duration_seconds` | histogram | `stage`, `method`, `status` |
//!
//! - `outcome`: `admitted`, `throttled`, `quota_exceeded`, `forbidden`, `bypassed` (a method that
//!   needs no key, or a CORS preflight), `unavailable` (the store or the meter failed: answered
//!   503, or admitted unmetered with [`FailMode::Open`](crate::FailMode)).
//! - `method`: the HTTP method and the layer's route template that matched, `GET /items/{id}`, or
//!   `*` for a path no route names; never the raw path. A method outside the standard nine
//!   (`GET`, `POST`, … `TRACE`) is `_OTHER`, so that clients cannot make series at will.
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
//! docs/operating.md shows the PromQL for CloudWatch's `Count`, `4XXError`, `5XXError`, `Latency` and
//! `IntegrationLatency`.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use http::{Method, StatusCode};
use metrics::{Key, Label, Level, Metadata, SharedString};

use crate::model::StageRef;

/// The request counter's name.
pub const REQUESTS_TOTAL: &str = "usage_plans_requests_total";
/// The whole request's duration histogram (CloudWatch's `Latency`).
pub const REQUEST_DURATION: &str = "usage_plans_request_duration_seconds";
/// The inner service's duration histogram (CloudWatch's `IntegrationLatency`).
pub const INNER_DURATION: &str = "usage_plans_inner_duration_seconds";

/// What the `metrics` macros would pass the recorder for this crate's metrics.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The status classes, in the order of [`RouteLabels`]' histogram keys.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn class(status: StatusCode) -> usize {
    match status.as_u16() {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

/// The labels of one route template and method on one stage, and its histograms' keys, built
/// once per layer: a request's metrics then cost no formatting and no allocation but the
/// counter's label list (its plan label is the plan's own shared id).
#[derive(Debug)]
pub(crate) struct RouteLabels {
    stage: Label,
    method: Label,
    /// [`REQUEST_DURATION`] by status class ([`CLASSES`]).
    request: [Key; 5],
    /// [`INNER_DURATION`] by status class.
    inner: [Key; 5],
}

impl RouteLabels {
    fn new(stage: &SharedString, method: &str, route: &str) -> Self {
        let stage = Label::new("stage", stage.clone());
        let method = Label::new("method", shared(format!("{method} {route}")));
        let keys = |name: &'static str| {
            CLASSES.map(|class| {
                Key::from_parts(
                    name,
                    vec![
                        stage.clone(),
                        method.clone(),
                        Label::from_static_parts("status", class),
                    ],
                )
            })
        };
        Self {
            request: keys(REQUEST_DURATION),
            inner: keys(INNER_DURATION),
            stage,
            method,
        }
    }
}

/// A label value that clones by reference count (an owned one would copy itself each clone).
fn shared(s: String) -> SharedString {
    SharedString::from(Arc::<str>::from(s))
}

/// The methods a [`LabelTable`] labels by name; any other is `_OTHER`.
const METHODS: [Method; 9] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::HEAD,
    Method::OPTIONS,
    Method::CONNECT,
    Method::TRACE,
];

/// A layer's [`RouteLabels`]: for each of its route templates and `*` (no route matched), and
/// each standard method, built the first time a request needs them (most routes see only a
/// method or two).
#[derive(Debug)]
pub(crate) struct LabelTable {
    stage: SharedString,
    /// `[*, template 0, template 1, …]`, each by [`METHODS`] and then `_OTHER`.
    routes: Vec<[OnceLock<Labels>; 10]>,
    templates: Vec<Box<str>>,
}

impl LabelTable {
    /// The labels of `stage` and `routes`.
    pub(crate) fn new(stage: &StageRef, routes: &crate::route::Routes) -> Self {
        let templates: Vec<Box<str>> = routes.templates().map(Into::into).collect();
        Self {
            stage: shared(stage.to_string()),
            routes: (0..=templates.len())
                .map(|_| std::array::from_fn(|_| OnceLock::new()))
                .collect(),
            templates,
        }
    }

    /// The labels of a request to `method` that matched `route`.
    #[inline]
    pub(crate) fn get(&self, route: &crate::route::RouteMatch<'_>, method: &Method) -> Labels {
        let at = route.index.map_or(0, |i| i + 1);
        let m = METHODS.iter().position(|m| m == method);
        self.routes[at][m.unwrap_or(METHODS.len())]
            .get_or_init(|| {
                let template = route.index.map_or("*", |i| &*self.templates[i]);
                let method = m.map_or("_OTHER", |_| method.as_str());
                Labels(Arc::new(RouteLabels::new(&self.stage, method, template)))
            })
            .clone()
    }
}

/// One request's [`RouteLabels`], shared with the layer.
#[derive(Clone, Debug)]
pub(crate) struct Labels(Arc<RouteLabels>);

/// Counts one request.
pub(crate) fn request(labels: &Labels, plan_id: Option<&Arc<str>>, outcome: &'static str) {
    let l = &labels.0;
    let plan = match plan_id {
        Some(id) => SharedString::from(Arc::clone(id)),
        None => SharedString::const_str(""),
    };
    let key = Key::from_parts(
        REQUESTS_TOTAL,
        vec![
            l.stage.clone(),
            Label::new("plan", plan),
            l.method.clone(),
            Label::from_static_parts("outcome", outcome),
        ],
    );
    ::metrics::with_recorder(|r| r.register_counter(&key, &METADATA)).increment(1);
}

/// Times one request, from the layer's `call` to its answer.
#[derive(Clone, Debug, Default)]
pub(crate) struct Timer {
    start: Option<Instant>,
    inner: Option<Instant>,
    labels: Option<Labels>,
}

impl Timer {
    /// Starts timing a request.
    pub(crate) fn start() -> Self {
        Self {
            start: Some(Instant::now()),
            inner: None,
            labels: None,
        }
    }

    /// Names what is timed: the stage, and the method with the route label (from the decision,
    /// which has resolved the route already).
    pub(crate) fn label(&mut self, labels: &Labels) {
        if self.start.is_some() {
            self.labels = Some(labels.clone());
        }
    }

    /// The inner service is called now (by the response future).
    pub(crate) fn inner_started_now(&mut self) {
        if self.start.is_some() {
            self.inner = Some(Instant::now());
        }
    }

    /// The layer answered `status`: records the durations, once.
    pub(crate) fn finish(&mut self, status: StatusCode) {
        let (Some(start), Some(l)) = (self.start.take(), self.labels.take()) else {
            return;
        };
        let class = class(status);
        if let Some(inner) = self.inner.take() {
            record(&l.0.inner[class], inner);
        }
        record(&l.0.request[class], start);
    }
}

fn record(key: &Key, since: Instant) {
    let secs = since.elapsed().as_secs_f64();
    ::metrics::with_recorder(|r| r.register_histogram(key, &METADATA)).record(secs);
}
