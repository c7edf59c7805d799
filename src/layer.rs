//! [`UsagePlanLayer`] and its builder.

use std::fmt;
use std::sync::Arc;

use http::Method;
use tower_layer::Layer;

use crate::error::ConfigError;
use crate::error::MeterError;
use crate::key::KeySource;
use crate::meter::{Admission, LocalMeter, Meter, Outcome, Verdict};
use crate::model::StageRef;
use crate::plan::{Bucket, StagePlan};
use crate::response::{GatewayResponse, RateInfo, Rejection, ResponseType, Responses};
use crate::route::Routes;
use crate::service::UsagePlanService;
use crate::store::{KeyGrant, KeyRef, KeyStore};

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

/// The state every service of one layer shares.
pub(crate) struct Shared<St, M> {
    pub(crate) store: St,
    pub(crate) meter: M,
    pub(crate) stage: StageRef,
    pub(crate) routes: Routes,
    pub(crate) key_source: KeySource,
    pub(crate) on_store_error: FailMode,
    pub(crate) on_meter_error: FailMode,
    pub(crate) rate_headers: bool,
    pub(crate) responses: Responses,
}

/// What to do with a request, once decided.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Call the inner service, adding these headers.
    Admit(Option<RateInfo>),
    /// Answer this.
    Reject(Rejection, Option<RateInfo>),
}

/// A decision, or what is still to be awaited.
pub(crate) enum Step {
    Done(Decision),
    /// The store answered; the meter must be awaited for this bucket.
    Meter(KeyGrant, Bucket),
}

impl<St: KeyStore, M: Meter> Shared<St, M> {
    /// The key's plan, or why the key is refused.
    #[inline]
    fn plan<'a>(
        grant: Option<KeyRef<'a>>,
    ) -> Result<(&'a Arc<str>, &'a Arc<StagePlan>), Rejection> {
        let grant = grant.ok_or(Rejection::InvalidKey)?;
        if !grant.enabled {
            return Err(Rejection::DisabledKey);
        }
        let plan = grant.plan.ok_or(Rejection::NoPlan)?;
        Ok((grant.key_id, plan))
    }

    #[inline]
    fn verdict(&self, verdict: Verdict, plan: &StagePlan) -> Decision {
        let rate = if self.rate_headers {
            RateInfo::new(&verdict, plan.quota().map(|q| q.period))
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

    fn meter_failed(&self) -> Decision {
        match self.on_meter_error {
            FailMode::Closed => Decision::Reject(Rejection::MeterUnavailable, None),
            FailMode::Open => Decision::Admit(None),
        }
    }

    /// Decides at once if the meter can.
    #[inline]
    pub(crate) fn decide_now(
        &self,
        grant: Option<KeyRef<'_>>,
        resource: &str,
        method: &Method,
    ) -> Step {
        let meter_slot = grant.and_then(|g| g.meter_slot);
        let (key_id, plan) = match Self::plan(grant) {
            Ok(found) => found,
            Err(rejection) => return Step::Done(Decision::Reject(rejection, None)),
        };
        let bucket = plan.bucket_for(resource, method);
        let req = Admission {
            key_id,
            plan,
            bucket,
            meter_slot,
            limits: self.rate_headers,
        };
        match self.meter.admit_now(&req) {
            Some(verdict) => Step::Done(self.decision(verdict, plan)),
            None => Step::Meter(
                KeyGrant {
                    key_id: key_id.clone(),
                    enabled: true,
                    plan: Some(plan.clone()),
                },
                bucket,
            ),
        }
    }

    /// Decides, awaiting the meter if it cannot answer at once.
    pub(crate) async fn decide(
        &self,
        grant: Option<KeyRef<'_>>,
        resource: &str,
        method: &Method,
    ) -> Decision {
        match self.decide_now(grant, resource, method) {
            Step::Done(decision) => decision,
            Step::Meter(grant, bucket) => self.admit_later(&grant, bucket).await,
        }
    }

    /// Awaits the meter, for a key the store has answered and the meter could not decide at once.
    pub(crate) async fn admit_later(&self, grant: &KeyGrant, bucket: Bucket) -> Decision {
        let Some(plan) = grant.plan.as_deref() else {
            return Decision::Reject(Rejection::NoPlan, None);
        };
        let req = Admission {
            limits: self.rate_headers,
            ..Admission::new(&grant.key_id, plan, bucket)
        };
        self.decision(self.meter.admit(&req).await, plan)
    }

    #[inline]
    fn decision(&self, verdict: Result<Verdict, MeterError>, plan: &StagePlan) -> Decision {
        match verdict {
            Ok(verdict) => self.verdict(verdict, plan),
            Err(_) => self.meter_failed(),
        }
    }
}

/// Tower layer that enforces usage plans and API keys before the inner service runs.
///
/// `UsagePlanLayer::new(store)` serves any stage, requires a key on every route, and meters in
/// process; [`UsagePlanLayer::builder`] sets the stage, the routes that need a key, the meter,
/// the key source, the rate-limit headers, the answers, and what a failing store does.
///
/// Cloning a layer, or the services it makes, shares one state: the limits hold across all of
/// them.
///
/// # Examples
///
/// ```
/// use axum::{routing::get, Router};
/// use http::Method;
/// use tower_usage_plans::{MemoryStore, UsagePlanLayer};
///
/// let store = MemoryStore::new();
/// let layer = UsagePlanLayer::builder(store.clone())
///     .stage("abc123def4", "prod")
///     .require_key(Method::GET, "/items")
///     .no_key(Method::GET, "/health")
///     .build()
///     .expect("routes and plans agree");
/// let app: Router = Router::new()
///     .route("/items", get(|| async { "items" }))
///     .route("/health", get(|| async { "ok" }))
///     .layer(layer);
/// # let _ = app;
/// ```
#[must_use]
pub struct UsagePlanLayer<St, M = LocalMeter> {
    shared: Arc<Shared<St, M>>,
}

impl<St, M> Clone for UsagePlanLayer<St, M> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<St: fmt::Debug, M: fmt::Debug> fmt::Debug for UsagePlanLayer<St, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &*self.shared;
        f.debug_struct("UsagePlanLayer")
            .field("store", &s.store)
            .field("meter", &s.meter)
            .field("stage", &s.stage)
            .field("key_source", &s.key_source)
            .field("rate_headers", &s.rate_headers)
            .finish_non_exhaustive()
    }
}

impl<St: KeyStore> UsagePlanLayer<St, LocalMeter> {
    /// A layer on `store` with every default: any stage, a key required on every route, an
    /// in-process [`LocalMeter`], the `x-api-key` header, rate-limit headers on, failing closed.
    pub fn new(store: St) -> Self {
        let builder = Self::builder(store);
        // With no routes declared and a key required by default, only a plan's per-method
        // template that the router refuses can fail here: serve without the plans' templates
        // rather than panic.
        let routes = builder
            .routes()
            .unwrap_or_else(|_| Routes::new(builder.default_required));
        builder.finish(routes)
    }

    /// A builder for a layer on `store`.
    pub fn builder(store: St) -> UsagePlanLayerBuilder<St, LocalMeter> {
        UsagePlanLayerBuilder {
            store,
            meter: LocalMeter::new(),
            stage: StageRef::any(),
            routes: Vec::new(),
            default_required: true,
            key_source: KeySource::default(),
            on_store_error: FailMode::Closed,
            on_meter_error: FailMode::Closed,
            rate_headers: true,
            responses: Responses::default(),
        }
    }
}

impl<S, St, M> Layer<S> for UsagePlanLayer<St, M> {
    type Service = UsagePlanService<S, St, M>;

    fn layer(&self, inner: S) -> Self::Service {
        UsagePlanService::new(inner, self.shared.clone())
    }
}

/// Builds a [`UsagePlanLayer`]. See [`UsagePlanLayer::builder`].
#[must_use]
pub struct UsagePlanLayerBuilder<St, M> {
    store: St,
    meter: M,
    stage: StageRef,
    routes: Vec<(Method, String, bool)>,
    default_required: bool,
    key_source: KeySource,
    on_store_error: FailMode,
    on_meter_error: FailMode,
    rate_headers: bool,
    responses: Responses,
}

impl<St: fmt::Debug, M: fmt::Debug> fmt::Debug for UsagePlanLayerBuilder<St, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsagePlanLayerBuilder")
            .field("store", &self.store)
            .field("meter", &self.meter)
            .field("stage", &self.stage)
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl<St: KeyStore, M: Meter> UsagePlanLayerBuilder<St, M> {
    /// The stage the layer serves: plans that do not list it admit none of their keys here.
    pub fn stage(mut self, api_id: impl Into<String>, stage: impl Into<String>) -> Self {
        self.stage = StageRef::new(api_id, stage);
        self
    }

    /// The meter (default: a new [`LocalMeter`] on the system clock).
    pub fn meter<M2: Meter>(self, meter: M2) -> UsagePlanLayerBuilder<St, M2> {
        UsagePlanLayerBuilder {
            store: self.store,
            meter,
            stage: self.stage,
            routes: self.routes,
            default_required: self.default_required,
            key_source: self.key_source,
            on_store_error: self.on_store_error,
            on_meter_error: self.on_meter_error,
            rate_headers: self.rate_headers,
            responses: self.responses,
        }
    }

    /// `method` on `template` (`/items/{id}`; AWS's `{proxy+}` too) requires an API key (AWS's
    /// `apiKeyRequired = true`).
    pub fn require_key(mut self, method: Method, template: impl Into<String>) -> Self {
        self.routes.push((method, template.into(), true));
        self
    }

    /// `method` on `template` requires no key: it passes through untouched and uncounted (AWS's
    /// `apiKeyRequired = false`).
    pub fn no_key(mut self, method: Method, template: impl Into<String>) -> Self {
        self.routes.push((method, template.into(), false));
        self
    }

    /// Whether a method that no route names requires a key (default `true`). `false` is AWS's
    /// default, where every method must be marked; `true` refuses what was forgotten.
    pub fn key_required_by_default(mut self, required: bool) -> Self {
        self.default_required = required;
        self
    }

    /// Where the key is read (default: the `x-api-key` header).
    pub fn key_source(mut self, source: KeySource) -> Self {
        self.key_source = source;
        self
    }

    /// Whether answers carry `RateLimit-Policy` and `RateLimit` (default `true`).
    pub fn rate_limit_headers(mut self, on: bool) -> Self {
        self.rate_headers = on;
        self
    }

    /// What to do when the store fails (default [`FailMode::Closed`]).
    pub fn on_store_error(mut self, mode: FailMode) -> Self {
        self.on_store_error = mode;
        self
    }

    /// What to do when the meter fails (default [`FailMode::Closed`]).
    pub fn on_meter_error(mut self, mode: FailMode) -> Self {
        self.on_meter_error = mode;
        self
    }

    /// Answers `kind` with `response` instead of AWS's default (AWS's gateway responses).
    /// `Retry-After`, the rate-limit headers and `x-amzn-ErrorType` are still added.
    pub fn response(mut self, kind: ResponseType, response: GatewayResponse) -> Self {
        self.responses.set(kind, response);
        self
    }

    /// Builds the layer, checking the routes and every per-method throttle the store's plans
    /// set on the stage: one on a method that requires no key could never apply (the article's
    /// Mistake 1), and is refused with [`ConfigError::UnreachableOverride`]. A per-method
    /// template (`/items/{id}`) that no route names becomes a route, with the default.
    pub fn build(self) -> Result<UsagePlanLayer<St, M>, ConfigError> {
        let routes = self.routes()?;
        Ok(self.finish(routes))
    }

    fn routes(&self) -> Result<Routes, ConfigError> {
        let mut routes = Routes::new(self.default_required);
        for (method, template, required) in &self.routes {
            routes.set(method.clone(), template, *required)?;
        }
        let plans = self.store.plans_now(&self.stage).unwrap_or_default();
        for plan in &plans {
            for m in plan.methods() {
                let (method, resource) = (m.method.method(), m.method.resource());
                if resource.contains('{') && !routes.has_template(resource) {
                    routes.set(method.clone(), resource, self.default_required)?;
                }
                if !routes.key_required_for(method, resource) {
                    return Err(ConfigError::UnreachableOverride {
                        plan: plan.id().to_string(),
                        method_path: m.method.to_string(),
                        method: method.to_string(),
                        resource: resource.to_owned(),
                    });
                }
            }
        }
        Ok(routes)
    }

    fn finish(self, routes: Routes) -> UsagePlanLayer<St, M> {
        UsagePlanLayer {
            shared: Arc::new(Shared {
                store: self.store,
                meter: self.meter,
                stage: self.stage,
                routes,
                key_source: self.key_source,
                on_store_error: self.on_store_error,
                on_meter_error: self.on_meter_error,
                rate_headers: self.rate_headers,
                responses: self.responses,
            }),
        }
    }
}
