//! The decision for one request, in one place: route, key, store, bucket, meter, answer.
//!
//! One state machine, [`Decide`], advanced by [`Gate::poll_decide`]: the store's future, then
//! the meter's, each polled where it was made. The service's `call` begins it; an in-memory
//! store and meter answer with ready futures, so the whole decision is made there, without
//! allocating; a store or meter that waits is awaited by the response future
//! ([`ResponseFuture`](crate::ResponseFuture)) in the same code. Nothing borrowed from the store outlives its answer: the store's
//! [`KeyGrant`] is owned, so no lock of the store is held while the meter, or any other code,
//! runs. Observability is told once, at the end.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::CONTENT_TYPE;
use http::{HeaderMap, Method, Request, Version};

use crate::headers::RateInfo;
use crate::key::KeySource;
use crate::meter::{Charge, Meter, Outcome, Verdict};
use crate::model::StageRef;
use crate::observe::{Seen, Told};
use crate::plan::{Bucket, StagePlan};
use crate::rejection::Rejection;
use crate::response::{Grpc, Responses};
use crate::route::{RouteMatch, Routes};
use crate::store::{KeyGrant, KeyStore};

/// What the layer does when its store or meter fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailMode {
    /// Refuse the request: 503 `{"message":"Service Unavailable"}` (the default).
    #[default]
    Closed,
    /// Let the request through, unmetered, as AWS does when its plan check fails.
    Open,
}

/// How many tokens a request takes, and how much it counts against the quota and the day's
/// usage: 1 unless a layer that runs before [`UsagePlanLayer`](crate::UsagePlanLayer) (one
/// added outside it) puts another value in the request's extensions. A layer inside (an axum
/// `route_layer`) runs after the decision: too late.
///
/// A cost of `n` takes `n` tokens from the key's bucket and counts `n` against the quota. A cost
/// above the bucket's burst can never pass: it is answered 429 with `Retry-After: 60`, as a
/// switched-off (zero) throttle is. A cost of 0 checks the key and its limits but spends nothing.
///
/// # Examples
///
/// ```
/// use tower_usage_plans::RequestCost;
///
/// let mut req = http::Request::new(());
/// // An export endpoint counts as ten requests.
/// req.extensions_mut().insert(RequestCost::new(10));
/// assert_eq!(req.extensions().get::<RequestCost>().unwrap().get(), 10);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestCost(u32);

impl RequestCost {
    /// A cost of `n` tokens and `n` counted requests.
    pub const fn new(n: u32) -> Self {
        Self(n)
    }

    /// The cost.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl Default for RequestCost {
    fn default() -> Self {
        Self(1)
    }
}

/// What to do with a request, once decided.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Call the inner service, adding these headers.
    Admit(Option<RateInfo>),
    /// Answer this.
    Reject(Rejection, Option<RateInfo>),
}

/// Where a decision stands: not started, awaiting the store, awaiting the meter, or done. The
/// store's and the meter's futures are `Unpin` (a boxed future is), so a future that answered at
/// once is never stored here.
pub(crate) enum Decide<St: KeyStore, M: Meter> {
    Start,
    Lookup {
        fut: St::Lookup,
        cost: u32,
    },
    Admit {
        fut: M::Admit,
        key_id: Arc<str>,
        plan: Arc<StagePlan>,
        bucket: Bucket,
    },
    Done,
}

impl<St: KeyStore, M: Meter> fmt::Debug for Decide<St, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decide::Start => f.write_str("Start"),
            Decide::Lookup { .. } => f.write_str("Lookup"),
            Decide::Admit { key_id, .. } => {
                f.debug_struct("Admit").field("key_id", key_id).finish()
            }
            Decide::Done => f.write_str("Done"),
        }
    }
}

/// The state every service of one layer shares, and the decision.
pub(crate) struct Gate<St, M> {
    pub(crate) store: St,
    pub(crate) meter: M,
    pub(crate) stage: StageRef,
    pub(crate) routes: Routes,
    pub(crate) key_source: KeySource,
    pub(crate) on_store_error: FailMode,
    pub(crate) on_meter_error: FailMode,
    pub(crate) rate_headers: bool,
    /// Whether CORS preflights pass uncounted.
    pub(crate) pass_preflight: bool,
    pub(crate) responses: Responses,
    /// The metrics' labels of each route (feature `metrics`).
    pub(crate) labels: crate::observe::LabelTable,
}

/// Which gRPC protocol the request speaks, from its content type (`application/grpc`,
/// `application/grpc+proto`, `application/grpc-web`, `application/grpc-web-text+proto`, …;
/// compared without case, parameters ignored); `None` for anything else.
#[inline]
pub(crate) fn grpc_flavour(headers: &HeaderMap) -> Option<Grpc> {
    let value = headers.get(CONTENT_TYPE)?;
    let bytes = value.as_bytes();
    let essence = bytes
        .split(|b| *b == b';')
        .next()
        .unwrap_or(bytes)
        .trim_ascii();
    let kind = |name: &[u8]| {
        essence.len() >= name.len()
            && essence[..name.len()].eq_ignore_ascii_case(name)
            && matches!(essence.get(name.len()), None | Some(b'+'))
    };
    if kind(b"application/grpc") {
        Some(Grpc::Plain)
    } else if kind(b"application/grpc-web") {
        Some(Grpc::Web(value.clone()))
    } else if kind(b"application/grpc-web-text") {
        Some(Grpc::WebText(value.clone()))
    } else {
        None
    }
}

/// The method and path the layer matches routes on: the ones the router acts on, as the client
/// sent them.
///
/// - The path is the client's: inside axum's `Router::nest`, axum strips the nest's prefix from
///   the URI but keeps the client's in its `OriginalUri` extension, which the layer reads with the
///   `axum` feature. Without it, the request's own URI.
/// - A WebSocket opened over HTTP/2 (extended CONNECT, RFC 8441: `CONNECT` with a path) is the
///   HTTP/1.1 handshake's `GET`, which is what a route for it names.
#[inline]
pub(crate) fn target<B>(req: &Request<B>) -> (&Method, &str) {
    #[cfg(feature = "axum")]
    let path = match req.extensions().get::<axum::extract::OriginalUri>() {
        Some(original) => original.0.path(),
        None => req.uri().path(),
    };
    #[cfg(not(feature = "axum"))]
    let path = req.uri().path();
    let method = req.method();
    if method == Method::CONNECT && req.version() >= Version::HTTP_2 && path.starts_with('/') {
        static GET: Method = Method::GET;
        return (&GET, path);
    }
    (method, path)
}

/// Whether the request is a CORS preflight: `OPTIONS` with `Access-Control-Request-Method`.
#[inline]
fn is_preflight<B>(req: &Request<B>) -> bool {
    req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// A refused key: its id, if it has one, and why.
type Refused = (Option<Arc<str>>, Rejection);

/// The grant's key and plan, or why the key is refused.
#[inline]
fn plan_of(grant: Option<KeyGrant>) -> Result<(Arc<str>, Arc<StagePlan>), Refused> {
    let (key_id, enabled, plan) = grant.ok_or((None, Rejection::InvalidKey))?.into_parts();
    if !enabled {
        return Err((Some(key_id), Rejection::DisabledKey));
    }
    let Some(plan) = plan else {
        return Err((Some(key_id), Rejection::NoPlan));
    };
    Ok((key_id, plan))
}

/// What a decision says about the request, for the one report at its end.
struct Report<'a> {
    key_id: Option<&'a str>,
    plan_id: Option<&'a Arc<str>>,
    told: Told<'a>,
}

impl<St: KeyStore, M: Meter> Gate<St, M> {
    /// Advances the decision on `req`: `Ready(None)` for a request that needs no key (pass it
    /// through, uncounted), `Ready(Some(decision))` once decided. A store or meter future that
    /// is pending is kept in `state`, and polled again from there.
    #[inline]
    pub(crate) fn poll_decide<B>(
        &self,
        state: &mut Decide<St, M>,
        cx: &mut Context<'_>,
        req: &Request<B>,
        timer: &mut crate::observe::Timer,
    ) -> Poll<Option<Decision>> {
        // What the start worked out, kept for the rest of this poll (a later poll works it out
        // again from the request: only a store or meter that waited pays for that).
        let mut at = None;
        let (mut fut, cost) = if let Decide::Start = state {
            // Not moved out of `state`: the start holds nothing.
            let (method, path) = target(req);
            let route = self.routes.resolve(method, path);
            let labels = self.labels.get(&route, method);
            timer.label(&labels);
            if !route.key_required || (self.pass_preflight && is_preflight(req)) {
                *state = Decide::Done;
                self.report(
                    req,
                    Some((method, path, &route)),
                    Report::new(Told::Bypassed),
                );
                return Poll::Ready(None);
            }
            let value = match self.key_source.read(req) {
                Ok(value) => value,
                Err(rejection) => {
                    *state = Decide::Done;
                    let told = Report::new(Told::Refused(&rejection));
                    self.report(req, Some((method, path, &route)), told);
                    return Poll::Ready(Some(Decision::Reject(rejection, None)));
                }
            };
            let cost = req.extensions().get::<RequestCost>().map_or(1, |c| c.get());
            at = Some((method, path, route));
            *state = Decide::Done;
            (self.store.lookup(value, &self.stage), cost)
        } else {
            match std::mem::replace(state, Decide::Done) {
                Decide::Lookup { fut, cost } => (fut, cost),
                Decide::Admit {
                    fut,
                    key_id,
                    plan,
                    bucket,
                } => return self.poll_admit(state, fut, key_id, plan, bucket, cx, req, None),
                Decide::Start | Decide::Done => return Poll::Ready(None),
            }
        };
        let grant = match Pin::new(&mut fut).poll(cx) {
            Poll::Ready(grant) => grant,
            Poll::Pending => {
                *state = Decide::Lookup { fut, cost };
                return Poll::Pending;
            }
        };
        let (method, path) = match &at {
            Some((m, p, _)) => (*m, *p),
            None => target(req),
        };
        let place = at.as_ref().map(|(m, p, r)| (*m, *p, r));
        let grant = match grant {
            Ok(grant) => grant,
            Err(e) => {
                let decision = self.store_failed();
                let told = Told::Failed {
                    what: "key store",
                    error: &e,
                    refused: refusal(&decision),
                };
                self.report(req, place, Report::new(told));
                return Poll::Ready(Some(decision));
            }
        };
        let (key_id, plan) = match plan_of(grant) {
            Ok(found) => found,
            Err((key_id, rejection)) => {
                let told = Report {
                    key_id: Some(key_id.as_deref().unwrap_or("-")),
                    plan_id: None,
                    told: Told::Refused(&rejection),
                };
                self.report(req, place, told);
                return Poll::Ready(Some(Decision::Reject(rejection, None)));
            }
        };
        let bucket = plan.bucket_for(path, method);
        let counters = [plan.counter(&key_id, bucket)];
        let fut = self.meter.admit(&Charge {
            counters: &counters,
            cost,
        });
        self.poll_admit(state, fut, key_id, plan, bucket, cx, req, place)
    }

    /// Polls the meter's future, and decides on its verdict.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn poll_admit<B>(
        &self,
        state: &mut Decide<St, M>,
        mut fut: M::Admit,
        key_id: Arc<str>,
        plan: Arc<StagePlan>,
        bucket: Bucket,
        cx: &mut Context<'_>,
        req: &Request<B>,
        place: Option<(&Method, &str, &RouteMatch<'_>)>,
    ) -> Poll<Option<Decision>> {
        let verdict = match Pin::new(&mut fut).poll(cx) {
            Poll::Ready(verdict) => verdict,
            Poll::Pending => {
                *state = Decide::Admit {
                    fut,
                    key_id,
                    plan,
                    bucket,
                };
                return Poll::Pending;
            }
        };
        let (decision, told) = match &verdict {
            Ok(verdict) => {
                let decision = self.decision(verdict, &plan, bucket);
                (decision, None)
            }
            Err(_) => (self.meter_failed(), Some("meter")),
        };
        let told = match (&verdict, told, &decision) {
            (Err(e), Some(what), d) => Told::Failed {
                what,
                error: e,
                refused: refusal(d),
            },
            (_, _, Decision::Admit(_)) => Told::Admitted,
            (_, _, Decision::Reject(r, _)) => Told::Refused(r),
        };
        let report = Report {
            key_id: Some(&key_id),
            plan_id: Some(plan.id()),
            told,
        };
        self.report(req, place, report);
        Poll::Ready(Some(decision))
    }

    /// Tells observability what became of `req`, once; `place` is its method, path and route
    /// if the decision still has them (else they are worked out again).
    #[inline]
    fn report<B>(
        &self,
        req: &Request<B>,
        place: Option<(&Method, &str, &RouteMatch<'_>)>,
        report: Report<'_>,
    ) {
        let (method, route) = match place {
            Some((method, _, route)) => (method, *route),
            None => {
                let (method, path) = target(req);
                (method, self.routes.resolve(method, path))
            }
        };
        let labels = self.labels.get(&route, method);
        let seen = Seen {
            stage: &self.stage,
            route: crate::observe::route_label(&route),
            method,
            key_id: report.key_id,
            plan_id: report.plan_id,
            labels: &labels,
        };
        crate::observe::tell(seen, report.told);
    }

    fn store_failed(&self) -> Decision {
        match self.on_store_error {
            FailMode::Closed => Decision::Reject(Rejection::StoreUnavailable, None),
            FailMode::Open => Decision::Admit(None),
        }
    }

    fn meter_failed(&self) -> Decision {
        match self.on_meter_error {
            FailMode::Closed => Decision::Reject(Rejection::MeterUnavailable, None),
            FailMode::Open => Decision::Admit(None),
        }
    }

    #[inline]
    fn decision(&self, verdict: &Verdict, plan: &StagePlan, bucket: Bucket) -> Decision {
        let rate = if self.rate_headers {
            RateInfo::new(verdict, plan.policy(bucket), plan.quota().map(|q| q.period))
        } else {
            None
        };
        match verdict.outcome {
            Outcome::Throttled { retry_after_secs } => {
                Decision::Reject(Rejection::Throttled { retry_after_secs }, rate)
            }
            Outcome::QuotaExceeded { retry_after_secs } => {
                Decision::Reject(Rejection::QuotaExceeded { retry_after_secs }, rate)
            }
            Outcome::Admitted => Decision::Admit(rate),
        }
    }
}

impl<'a> Report<'a> {
    fn new(told: Told<'a>) -> Self {
        Self {
            key_id: None,
            plan_id: None,
            told,
        }
    }
}

/// The refusal in a decision, if it is one.
fn refusal(decision: &Decision) -> Option<&Rejection> {
    match decision {
        Decision::Reject(r, _) => Some(r),
        Decision::Admit(_) => None,
    }
}
