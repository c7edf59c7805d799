//! What the black-box tests share: the article's keys and plans, an axum app, a manual clock.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::routing::{get, post};
use axum::Router;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_usage_plans::clock::ManualClock;
use tower_usage_plans::model::{
    ApiKey, ApiKeyValue, ApiStage, Quota, QuotaPeriod, Throttle, UsagePlan,
};
use tower_usage_plans::period::Date;
use tower_usage_plans::store::Management;
use tower_usage_plans::{LocalMeter, MemoryStore, UsagePlanLayer, UsagePlanLayerBuilder};

pub const FREE: &str = "aBcDeFgHiJkLmNoPqRsTuVwXyZ123456789";
pub const PREMIUM: &str = "zYxWvUtSrQpOnMlKjIhGfEdCbA987654321";
pub const API: &str = "abc123def4";
pub const STAGE: &str = "prod";

/// 2024-03-10 (a Sunday) at 12:00:00 UTC.
pub fn noon() -> u64 {
    Date::new(2024, 3, 10).unwrap().unix_secs() + 12 * 3600
}

pub fn throttle(rate: f64, burst: u32) -> Throttle {
    Throttle::new(rate, burst).unwrap()
}

#[path = "../../examples/support/now.rs"]
mod now_support;
/// Polls a future of the in-memory store to its end (it never waits): for fixtures outside a
/// runtime.
pub use now_support::now;

/// FreePlan (5 rps, burst 10, 1000/DAY; GET /items at 10 rps burst 20, POST /orders at 2 rps
/// burst 5) and PremiumPlan (50 rps, burst 100, 100000/MONTH) on abc123def4:prod, with the
/// article's two keys.
pub fn article_store() -> MemoryStore {
    let store = MemoryStore::new();
    store
        .put_api_key(ApiKey::new(
            "key111aaa",
            "ClientA-Free",
            ApiKeyValue::new(FREE).unwrap(),
        ))
        .unwrap();
    store
        .put_api_key(ApiKey::new(
            "key222bbb",
            "ClientB-Premium",
            ApiKeyValue::new(PREMIUM).unwrap(),
        ))
        .unwrap();
    let mut free = UsagePlan::new("plan111", "FreePlan");
    free.throttle = Some(throttle(5.0, 10));
    free.quota = Some(Quota::new(1000, QuotaPeriod::Day, 0).unwrap());
    let mut st = ApiStage::new(API, STAGE);
    st.throttle.insert("/items/GET".into(), throttle(10.0, 20));
    st.throttle.insert("/orders/POST".into(), throttle(2.0, 5));
    free.api_stages.push(st);
    now(store.create_usage_plan(free)).unwrap();
    let mut premium = UsagePlan::new("plan222", "PremiumPlan");
    premium.throttle = Some(throttle(50.0, 100));
    premium.quota = Some(Quota::new(100_000, QuotaPeriod::Month, 0).unwrap());
    premium.api_stages.push(ApiStage::new(API, STAGE));
    now(store.create_usage_plan(premium)).unwrap();
    now(store.create_usage_plan_key("plan111", "key111aaa")).unwrap();
    now(store.create_usage_plan_key("plan222", "key222bbb")).unwrap();
    store
}

pub struct App {
    pub router: Router,
    pub clock: ManualClock,
    pub meter: LocalMeter<ManualClock>,
    pub store: MemoryStore,
    /// How many times a handler ran.
    pub hits: Arc<AtomicUsize>,
}

/// The article's routes: GET /items, GET /items/{id}, POST /orders need a key, GET /health not.
pub fn builder(
    store: MemoryStore,
    clock: &ManualClock,
) -> UsagePlanLayerBuilder<MemoryStore, LocalMeter<ManualClock>> {
    UsagePlanLayer::builder(store)
        .stage(API, STAGE)
        .meter(LocalMeter::with_clock(clock.clone()))
        .require_key(Method::GET, "/items")
        .require_key(Method::GET, "/items/{id}")
        .require_key(Method::POST, "/orders")
        .no_key(Method::GET, "/health")
}

pub fn app_from(
    store: MemoryStore,
    clock: ManualClock,
    f: impl FnOnce(
        UsagePlanLayerBuilder<MemoryStore, LocalMeter<ManualClock>>,
    ) -> UsagePlanLayerBuilder<MemoryStore, LocalMeter<ManualClock>>,
) -> App {
    let meter = LocalMeter::with_clock(clock.clone());
    let layer = f(builder(store.clone(), &clock).meter(meter.clone()))
        .build()
        .expect("layer builds");
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = |hits: &Arc<AtomicUsize>, body: &'static str| {
        let hits = hits.clone();
        move || {
            hits.fetch_add(1, Ordering::SeqCst);
            async move { body }
        }
    };
    let router = Router::new()
        .route("/items", get(counted(&hits, "items")))
        .route("/items/{id}", get(counted(&hits, "item")))
        .route("/orders", post(counted(&hits, "order")))
        .route("/health", get(counted(&hits, "ok")))
        .layer(layer);
    App {
        router,
        clock,
        meter,
        store,
        hits,
    }
}

pub fn app() -> App {
    app_from(article_store(), ManualClock::at_unix_secs(noon()), |b| b)
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

pub async fn send_req(router: &Router, req: Request<Body>) -> Answer {
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

pub async fn send(router: &Router, method: Method, path: &str, key: Option<&str>) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(key) = key {
        req = req.header("x-api-key", key);
    }
    send_req(router, req.body(Body::empty()).unwrap()).await
}

/// Sends `n` requests and counts the answers by status.
pub async fn burst(
    router: &Router,
    method: Method,
    path: &str,
    key: &str,
    n: usize,
) -> (usize, usize) {
    let (mut ok, mut throttled) = (0, 0);
    for _ in 0..n {
        let a = send(router, method.clone(), path, Some(key)).await;
        match a.status {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => throttled += 1,
            other => panic!("unexpected {other}: {}", a.body),
        }
    }
    (ok, throttled)
}

pub fn hits(app: &App) -> usize {
    app.hits.load(Ordering::SeqCst)
}
