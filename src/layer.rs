//! [`UsagePlanLayer`] and its builder.

use std::fmt;
use std::sync::Arc;

use http::Method;
use tower_layer::Layer;

use crate::admission::{FailMode, Gate};
use crate::error::ConfigError;
use crate::key::KeySource;
use crate::meter::{LocalMeter, Meter};
use crate::model::StageRef;
use crate::response::{GatewayResponse, ResponseType, Responses};
use crate::route::Routes;
use crate::service::UsagePlanService;
use crate::store::KeyStore;

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
    gate: Arc<Gate<St, M>>,
}

impl<St, M> Clone for UsagePlanLayer<St, M> {
    fn clone(&self) -> Self {
        Self {
            gate: self.gate.clone(),
        }
    }
}

impl<St: fmt::Debug, M: fmt::Debug> fmt::Debug for UsagePlanLayer<St, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &*self.gate;
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
        // With no routes, every method requires a key, so no per-method throttle is on a method
        // without one. Plans route their own templates: none is ever dropped.
        let builder = Self::builder(store);
        let routes = Routes::new(builder.default_required);
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
            pass_preflight: true,
            responses: Responses::default(),
            plans: Vec::new(),
        }
    }
}

impl<St, M> UsagePlanLayer<St, M> {
    /// Checks `plan` as [`UsagePlanLayerBuilder::build`] checks the store's plans: each
    /// per-method throttle on this layer's stage must have a resource path that can match a
    /// request, on a method this layer requires a key for (else the layer never meters it, and
    /// the throttle never applies). A plan that lists no stage of this layer passes.
    ///
    /// For a writer of plans at run time, so that a change the layer could never apply is
    /// refused when it is made, not at the next start:
    /// `AdminApi::check_plans_with` (feature `admin`) calls it, as AWS
    /// refuses a method throttle for a method its API does not have.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnreachableOverride`] or [`ConfigError::Route`], naming the plan and the
    /// throttle.
    ///
    /// # Examples
    ///
    /// ```
    /// use http::Method;
    /// use tower_usage_plans::model::{ApiStage, Throttle, UsagePlan};
    /// use tower_usage_plans::{MemoryStore, UsagePlanLayer};
    ///
    /// let layer = UsagePlanLayer::builder(MemoryStore::new())
    ///     .stage("abc123def4", "prod")
    ///     .require_key(Method::GET, "/items")
    ///     .no_key(Method::GET, "/health")
    ///     .build()
    ///     .unwrap();
    /// let mut plan = UsagePlan::new("plan111", "FreePlan");
    /// let mut stage = ApiStage::new("abc123def4", "prod");
    /// stage.throttle.insert("/items/GET".into(), Throttle::new(10.0, 20).unwrap());
    /// plan.api_stages.push(stage.clone());
    /// assert!(layer.check_plan(&plan).is_ok());
    ///
    /// // GET /health needs no key here: a throttle on it would never apply.
    /// plan.api_stages[0].throttle.insert("/health/GET".into(), Throttle::new(1.0, 1).unwrap());
    /// let err = layer.check_plan(&plan).unwrap_err();
    /// assert!(err.to_string().contains("/health/GET"));
    /// ```
    pub fn check_plan(&self, plan: &crate::model::UsagePlan) -> Result<(), ConfigError> {
        check_on(plan, &self.gate.stage, &self.gate.routes).map(drop)
    }
}

impl<S, St, M> Layer<S> for UsagePlanLayer<St, M> {
    type Service = UsagePlanService<S, St, M>;

    fn layer(&self, inner: S) -> Self::Service {
        UsagePlanService::new(inner, self.gate.clone())
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
    pass_preflight: bool,
    responses: Responses,
    /// Plans to check at build, as [`check_plans`](Self::check_plans) was given them.
    plans: Vec<crate::model::UsagePlan>,
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
            pass_preflight: self.pass_preflight,
            responses: self.responses,
            plans: self.plans,
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

    /// Whether a CORS preflight passes through untouched and uncounted (default `true`).
    ///
    /// A preflight is an `OPTIONS` request with an `Access-Control-Request-Method` header, which
    /// a browser sends before a cross-origin call and never with an API key (AWS users define
    /// `OPTIONS` with `apiKeyRequired = false` for this). Without this, a key required
    /// everywhere makes the API unusable from a browser. `false` checks preflights as any
    /// other `OPTIONS` request. A plain `OPTIONS` (no `Access-Control-Request-Method`) is
    /// always checked like any method.
    ///
    /// Put tower-http's `CorsLayer` *outside* this layer (added after it), exposing
    /// `Retry-After`, `RateLimit` and `RateLimit-Policy`: it then answers preflights itself and
    /// adds its headers to this layer's 403s and 429s too, which a browser can then read.
    ///
    /// ```
    /// use tower_usage_plans::{MemoryStore, UsagePlanLayer};
    ///
    /// // Refuse preflights that carry no key, as any other request.
    /// let layer = UsagePlanLayer::builder(MemoryStore::new())
    ///     .pass_cors_preflight(false)
    ///     .build()
    ///     .unwrap();
    /// # let _ = layer;
    /// ```
    pub fn pass_cors_preflight(mut self, on: bool) -> Self {
        self.pass_preflight = on;
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

    /// Plans that [`build`](Self::build) checks against the routes, as
    /// [`build_checked`](Self::build_checked) checks the store's (for a store without
    /// [`Management`](crate::store::Management), or plans not stored yet). Adds to what was
    /// given before.
    pub fn check_plans<'a>(
        mut self,
        plans: impl IntoIterator<Item = &'a crate::model::UsagePlan>,
    ) -> Self {
        self.plans.extend(plans.into_iter().cloned());
        self
    }

    /// Builds the layer, checking the routes and every per-method throttle on the layer's stage
    /// of the plans given to [`check_plans`](Self::check_plans), so that none is configured and
    /// silently never applies:
    ///
    /// - one on a method that requires no key (the article's Mistake 1) is refused with
    ///   [`ConfigError::UnreachableOverride`];
    /// - one whose resource path can never match a request (a template such as
    ///   `/items/{a}{b}`) is refused with [`ConfigError::Route`], naming the plan and the
    ///   throttle's key.
    ///
    /// [`build_checked`](Self::build_checked) checks the plans the store holds.
    ///
    /// Each plan routes its own templates (`/items/{id}/GET` applies to `GET /items/42` whether
    /// or not the layer names the route), so the templates of different plans never clash, and
    /// a templated throttle added at run time applies to the next request.
    pub fn build(self) -> Result<UsagePlanLayer<St, M>, ConfigError> {
        let routes = self.routes()?;
        for plan in &self.plans {
            check_on(plan, &self.stage, &routes)?;
        }
        Ok(self.finish(routes))
    }

    /// [`build`](Self::build), checking every plan the store holds too (read through its
    /// [`Management`](crate::store::Management), every page), and warning through `tracing`
    /// when no plan lists the layer's stage: every request that needs a key would then be
    /// answered 403.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build); and [`ConfigError::Store`] if the store cannot list its
    /// plans.
    ///
    /// # Examples
    ///
    /// ```
    /// use http::Method;
    /// use tower_usage_plans::error::ConfigError;
    /// use tower_usage_plans::model::{ApiStage, Throttle, UsagePlan};
    /// use tower_usage_plans::store::Management;
    /// use tower_usage_plans::{MemoryStore, UsagePlanLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let store = MemoryStore::new();
    /// let mut plan = UsagePlan::new("plan111", "FreePlan");
    /// plan.throttle = Some(Throttle::new(10.0, 20).unwrap());
    /// let mut stage = ApiStage::new("abc123def4", "prod");
    /// stage.throttle.insert("/health/GET".into(), Throttle::new(1.0, 1).unwrap());
    /// plan.api_stages.push(stage);
    /// store.create_usage_plan(plan).await.unwrap();
    ///
    /// // GET /health needs no key: its throttle would never apply.
    /// let err = UsagePlanLayer::builder(store)
    ///     .stage("abc123def4", "prod")
    ///     .no_key(Method::GET, "/health")
    ///     .build_checked()
    ///     .await
    ///     .unwrap_err();
    /// assert!(matches!(err, ConfigError::UnreachableOverride { .. }), "{err}");
    /// # }
    /// ```
    pub async fn build_checked(self) -> Result<UsagePlanLayer<St, M>, ConfigError>
    where
        St: crate::store::Management,
    {
        let routes = self.routes()?;
        let mut listed = false;
        let mut query = crate::store::UsagePlanQuery::default();
        loop {
            let page = self
                .store
                .get_usage_plans(&query)
                .await
                .map_err(ConfigError::Store)?;
            for plan in page.items.iter().chain(&self.plans) {
                listed |= check_on(plan, &self.stage, &routes)?;
            }
            match page.position {
                Some(position) => query.page.position = Some(position),
                None => break,
            }
        }
        if !listed {
            tracing::warn!(
                api_id = self.stage.api_id(),
                stage = self.stage.stage(),
                "no usage plan lists the stage this layer serves: every request that needs a key \
                 will be answered 403 until a plan lists it (UsagePlanLayerBuilder::stage)"
            );
        }
        Ok(self.finish(routes))
    }

    fn routes(&self) -> Result<Routes, ConfigError> {
        let mut routes = Routes::new(self.default_required);
        for (method, template, required) in &self.routes {
            routes.set(method.clone(), template, *required)?;
        }
        Ok(routes)
    }

    fn finish(self, routes: Routes) -> UsagePlanLayer<St, M> {
        UsagePlanLayer {
            gate: Arc::new(Gate {
                labels: crate::observe::LabelTable::new(&self.stage, &routes),
                store: self.store,
                meter: self.meter,
                stage: self.stage,
                routes,
                key_source: self.key_source,
                on_store_error: self.on_store_error,
                on_meter_error: self.on_meter_error,
                rate_headers: self.rate_headers,
                pass_preflight: self.pass_preflight,
                responses: self.responses,
            }),
        }
    }
}

/// Checks `plan` on each of its stages that `stage` matches ([`check_plan`]); answers whether
/// the plan lists such a stage.
fn check_on(
    plan: &crate::model::UsagePlan,
    stage: &StageRef,
    routes: &Routes,
) -> Result<bool, ConfigError> {
    let mut listed = false;
    for compiled in crate::plan::StagePlan::all(plan) {
        if stage.matches(compiled.api_id(), compiled.stage()) {
            listed = true;
            check_plan(&compiled, routes)?;
        }
    }
    Ok(listed)
}

/// Checks that every per-method throttle of `plan` can apply on `routes`: its resource path can
/// match a request, and a request to it needs a key (else the layer never meters it).
fn check_plan(plan: &crate::plan::StagePlan, routes: &Routes) -> Result<(), ConfigError> {
    if let Some((key, reason)) = plan.unroutable().first() {
        return Err(ConfigError::Route {
            method: key.method().to_string(),
            template: key.resource().to_owned(),
            reason: format!(
                "usage plan {:?} sets a throttle for \"{key}\" on stage {}:{}, whose \
                     resource path can never match a request ({reason}); fix or remove the \
                     throttle",
                plan.id(),
                plan.api_id(),
                plan.stage(),
            ),
        });
    }
    for m in plan.methods() {
        let (method, resource) = (m.method.method(), m.method.resource());
        let reachable = if method.as_str() == "ANY" {
            routes.any_method_requires_key(resource)
        } else {
            routes.resolve(method, resource).key_required
        };
        if !reachable {
            return Err(ConfigError::UnreachableOverride {
                plan: plan.id().to_string(),
                method_path: m.method.to_string(),
                method: method.to_string(),
                resource: resource.to_owned(),
            });
        }
    }
    Ok(())
}
