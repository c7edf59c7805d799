//! The decision for one request, in one place: route, key, store, bucket, meter, answer.
//!
//! The Tower glue ([`UsagePlanService`](crate::UsagePlanService)) calls [`Gate::start`] for each
//! request; it decides at once when the store and meter can answer without waiting (the in-memory
//! ones), and otherwise hands back what is left to await as an owned [`Pending`], which
//! [`Gate::finish`] decides. Nothing borrowed from the store outlives its answer: the store's
//! [`KeyGrant`] is owned, so no lock of the store is held while the meter, or any other code,
//! runs.

use std::fmt;
use std::sync::Arc;

use http::header::CONTENT_TYPE;
use http::{HeaderMap, Method, Request, Version};

use crate::key::KeySource;
use crate::meter::{Admission, Meter, Outcome, Verdict};
use crate::model::StageRef;
use crate::plan::{Bucket, StagePlan};
use crate::response::{Grpc, RateInfo, Rejection, Responses};
use crate::route::Routes;
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

/// The start of a decision.
#[derive(Debug)]
pub(crate) enum Start {
    /// The method requires no key: pass it through, uncounted.
    Pass,
    /// Decided.
    Done(Decision),
    /// The store or the meter must be awaited.
    Wait(Pending),
}

/// What is left to decide, owned.
#[derive(Debug)]
pub(crate) struct Pending {
    step: Step,
    cost: u32,
    at: crate::observe::At,
}

enum Step {
    /// The store must be awaited for this key value (never shown in `Debug`).
    Store {
        value: Box<str>,
        /// The path per-method throttles are matched against (the method is in `Pending::at`).
        path: Box<str>,
    },
    /// The store answered; the meter must be awaited.
    Meter {
        key_id: Arc<str>,
        plan: Arc<StagePlan>,
        bucket: Bucket,
    },
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Store { .. } => f.write_str("Store"),
            Step::Meter { key_id, .. } => f.debug_struct("Meter").field("key_id", key_id).finish(),
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
    let grant = grant.ok_or((None, Rejection::InvalidKey))?;
    if !grant.enabled {
        return Err((Some(grant.key_id), Rejection::DisabledKey));
    }
    let Some(plan) = grant.plan else {
        return Err((Some(grant.key_id), Rejection::NoPlan));
    };
    Ok((grant.key_id, plan))
}

impl<St: KeyStore, M: Meter> Gate<St, M> {
    /// Decides at once if the store and meter can; else says what is left to await.
    #[inline]
    pub(crate) fn start<B>(&self, req: &Request<B>, timer: &mut crate::observe::Timer) -> Start {
        let (method, path) = target(req);
        let route = self.routes.resolve(method, path);
        let label = crate::observe::route_label(&route);
        let labels = self.labels.get(&route, method);
        timer.label(&labels);
        let seen = crate::observe::Seen::new(&self.stage, label, method, &labels);
        if !route.key_required || (self.pass_preflight && is_preflight(req)) {
            crate::observe::bypassed(seen);
            return Start::Pass;
        }
        let value = match self.key_source.read(req) {
            Ok(value) => value,
            Err(rejection) => {
                return Start::Done(crate::observe::done(
                    seen,
                    Decision::Reject(rejection, None),
                ))
            }
        };
        let cost = req.extensions().get::<RequestCost>().map_or(1, |c| c.get());
        let grant = match self
            .store
            .lookup_now(value, &self.stage, crate::sealed::Token(()))
        {
            Some(Ok(grant)) => grant,
            Some(Err(e)) => {
                return Start::Done(crate::observe::store_failed(seen, &e, self.store_failed()))
            }
            None => {
                return Start::Wait(Pending {
                    step: Step::Store {
                        value: value.into(),
                        path: path.into(),
                    },
                    cost,
                    at: crate::observe::At::new(label, method, &labels),
                })
            }
        };
        let (key_id, plan) = match plan_of(grant) {
            Ok(found) => found,
            Err((key_id, rejection)) => {
                let seen = seen.with(key_id.as_deref().unwrap_or("-"), None);
                return Start::Done(crate::observe::done(
                    seen,
                    Decision::Reject(rejection, None),
                ));
            }
        };
        let bucket = plan.bucket_for(path, method);
        let admission = Admission::new(&key_id, &plan, bucket).with_cost(cost);
        match self.meter.admit_now(admission, crate::sealed::Token(())) {
            Some(verdict) => Start::Done(crate::observe::metered(
                seen.with(&key_id, Some(plan.id())),
                verdict,
                |v| self.decision(v, &plan, bucket),
            )),
            None => Start::Wait(Pending {
                step: Step::Meter {
                    key_id,
                    plan,
                    bucket,
                },
                cost,
                at: crate::observe::At::new(label, method, &labels),
            }),
        }
    }

    /// Decides what [`start`](Self::start) left to await.
    pub(crate) async fn finish(&self, pending: Pending) -> Decision {
        let at = &pending.at;
        let seen = crate::observe::Seen::new(&self.stage, &at.route, &at.method, &at.labels);
        let (key_id, plan, bucket) = match pending.step {
            Step::Meter {
                key_id,
                plan,
                bucket,
            } => (key_id, plan, bucket),
            Step::Store { value, path } => {
                let grant = match self.store.lookup(&value, &self.stage).await {
                    Ok(grant) => grant,
                    Err(e) => return crate::observe::store_failed(seen, &e, self.store_failed()),
                };
                match plan_of(grant) {
                    Ok((key_id, plan)) => {
                        let bucket = plan.bucket_for(&path, &pending.at.method);
                        (key_id, plan, bucket)
                    }
                    Err((key_id, rejection)) => {
                        let seen = seen.with(key_id.as_deref().unwrap_or("-"), None);
                        return crate::observe::done(seen, Decision::Reject(rejection, None));
                    }
                }
            }
        };
        let admission = Admission::new(&key_id, &plan, bucket).with_cost(pending.cost);
        let verdict = self.meter.admit(admission).await;
        let seen = seen.with(&key_id, Some(plan.id()));
        crate::observe::metered(seen, verdict, |v| self.decision(v, &plan, bucket))
    }

    fn store_failed(&self) -> Decision {
        match self.on_store_error {
            FailMode::Closed => Decision::Reject(Rejection::StoreUnavailable, None),
            FailMode::Open => Decision::Admit(None),
        }
    }

    #[inline]
    fn decision(
        &self,
        verdict: Result<Verdict, crate::error::MeterError>,
        plan: &StagePlan,
        bucket: Bucket,
    ) -> Decision {
        let verdict = match verdict {
            Ok(verdict) => verdict,
            Err(_) => {
                return match self.on_meter_error {
                    FailMode::Closed => Decision::Reject(Rejection::MeterUnavailable, None),
                    FailMode::Open => Decision::Admit(None),
                }
            }
        };
        let rate = if self.rate_headers {
            RateInfo::new(&verdict, plan, bucket)
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
