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
        let plans = self.store.plans_now(&self.stage);
        if plans.as_ref().is_some_and(Vec::is_empty) {
            tracing::warn!(
                api_id = self.stage.api_id(),
                stage = self.stage.stage(),
                "no usage plan lists the stage this layer serves: every request that needs a key \
                 will be answered 403 until a plan lists it (UsagePlanLayerBuilder::stage)"
            );
        }
        let plans = plans.unwrap_or_default();
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
            gate: Arc::new(Gate {
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
