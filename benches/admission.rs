//! What the layer costs per request, side by side with tower_governor, in one run.
//!
//! Every id drives the same `service_fn` through `ServiceBuilder`, synchronously: `poll_ready`,
//! `call`, and one poll of the future with a no-op waker (the in-memory store and meter answer on
//! the first poll; setup panics if an answer is not ready or has the wrong status, so a bench can
//! never silently measure the wrong path). Requests are built outside the timed loop
//! (`iter_batched`); the timed part includes dropping the response. Keys are picked at random
//! from a precomputed sequence.
//!
//! `cargo bench --bench admission`; see BENCHMARKS.md.

use std::convert::Infallible;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::Body;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use governor::{Quota as GovQuota, RateLimiter};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use tower::{service_fn, Service, ServiceBuilder};
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::GovernorLayer;
use tower_usage_plans::model::{
    ApiKey, ApiKeyValue, ApiStage, Quota, QuotaPeriod, Throttle, UsagePlan,
};
use tower_usage_plans::{MemoryStore, UsagePlanLayer};

#[path = "support/tg_key.rs"]
mod tg_key;
use tg_key::ApiKeyHeader;
use tower_usage_plans::store::Management;

#[path = "../examples/support/now.rs"]
mod now;
use now::now;

const API: &str = "abc123def4";
const STAGE: &str = "prod";
const KEYS: usize = 10_000;

/// The inner service every id drives.
async fn handler(_req: Request<Body>) -> Result<Response<Body>, Infallible> {
    Ok(Response::new(Body::empty()))
}

/// `n` distinct 40-character alphanumeric values.
fn key_values(n: usize, seed: u64) -> Vec<String> {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n)
        .map(|i| {
            // The index in the last 6 characters keeps the values distinct.
            let mut s: String = (0..34)
                .map(|_| char::from(ALPHABET[rng.usize(..62)]))
                .collect();
            let mut i = i;
            for _ in 0..6 {
                s.push(char::from(ALPHABET[i % 62]));
                i /= 62;
            }
            s
        })
        .collect()
}

/// A random sequence of indices below `n`, long enough to visit most of them.
fn sequence(n: usize, seed: u64) -> Vec<u32> {
    let len = n.clamp(1 << 16, 1 << 20);
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u32(..n as u32)).collect()
}

/// Requests to `GET /items` carrying the keys of a sequence, built outside the timed loop.
struct Requests {
    values: Vec<HeaderValue>,
    seq: Vec<u32>,
    at: usize,
}

impl Requests {
    fn new(keys: &[String], seed: u64) -> Self {
        Self {
            values: keys
                .iter()
                .map(|k| HeaderValue::from_str(k).unwrap())
                .collect(),
            seq: sequence(keys.len(), seed),
            at: 0,
        }
    }

    fn next(&mut self) -> Request<Body> {
        let i = self.seq[self.at] as usize;
        self.at = (self.at + 1) % self.seq.len();
        let mut req = Request::new(Body::empty());
        *req.method_mut() = Method::GET;
        *req.uri_mut() = Uri::from_static("/items");
        // A copy in a buffer of its own, as a request just parsed carries it: a clone would share
        // one buffer per key, cold in cache, with every request of that key.
        let value = HeaderValue::from_bytes(self.values[i].as_bytes()).unwrap();
        req.headers_mut().insert("x-api-key", value);
        req
    }

    /// One request per key, in order.
    fn each(&self) -> impl Iterator<Item = Request<Body>> + '_ {
        self.values.iter().map(|v| {
            let mut req = Request::new(Body::empty());
            *req.uri_mut() = Uri::from_static("/items");
            req.headers_mut().insert("x-api-key", v.clone());
            req
        })
    }
}

/// `poll_ready`, `call`, one poll: the answer, which must be ready.
#[inline]
fn drive<S, B>(svc: &mut S, req: Request<Body>) -> Response<B>
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        _ => panic!("service not ready"),
    }
    let fut = pin!(svc.call(req));
    match fut.poll(&mut cx) {
        Poll::Ready(Ok(res)) => res,
        Poll::Ready(Err(e)) => panic!("service failed: {e:?}"),
        Poll::Pending => panic!("the answer was not ready on the first poll"),
    }
}

/// Times `svc` on `reqs`, after checking that a sample is answered `expect`.
fn run<S, B>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: &str,
    svc: &mut S,
    reqs: &mut Requests,
    expect: StatusCode,
) where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..1000 {
        let status = drive(svc, reqs.next()).status();
        assert_eq!(
            status, expect,
            "{id}: the bench would measure the wrong path"
        );
    }
    c.bench_function(id, |b| {
        b.iter_batched(
            || reqs.next(),
            |req| drive(svc, req).status(),
            // Batches small enough that the requests built for them are still in cache when
            // timed, as a request just parsed is.
            BatchSize::NumIterations(256),
        )
    });
    // And after: nothing changed path while timed.
    for _ in 0..1000 {
        let status = drive(svc, reqs.next()).status();
        assert_eq!(status, expect, "{id}: the path changed while timed");
    }
}

/// A store of `keys`, all linked to one plan on abc123def4:prod.
fn store(keys: &[String], throttle: Throttle, quota: Quota) -> MemoryStore {
    let store = MemoryStore::new();
    let mut plan = UsagePlan::new("plan111", "BenchPlan");
    plan.api_stages.push(ApiStage::new(API, STAGE));
    plan.throttle = Some(throttle);
    plan.quota = Some(quota);
    now(store.create_usage_plan(plan)).unwrap();
    for (i, k) in keys.iter().enumerate() {
        let id = format!("k{i:09}");
        store
            .put_api_key(ApiKey::new(
                id.clone(),
                format!("c{i}"),
                ApiKeyValue::new(k.as_str()).unwrap(),
            ))
            .unwrap();
        now(store.create_usage_plan_key("plan111", &id)).unwrap();
    }
    store
}

/// Never throttles or runs out in a bench: a million tokens a second, a trillion a day.
fn open() -> (Throttle, Quota) {
    (
        Throttle::new(1e6, 1_000_000).unwrap(),
        Quota::new(1_000_000_000_000, QuotaPeriod::Day, 0).unwrap(),
    )
}

/// The layer on `store`, required on GET /items, around the handler.
fn layered(
    store: MemoryStore,
    headers: bool,
) -> impl Service<
    Request<Body>,
    Response = Response<tower_usage_plans::ResponseBody<Body>>,
    Error = Infallible,
> {
    let layer = UsagePlanLayer::builder(store)
        .stage(API, STAGE)
        .require_key(Method::GET, "/items")
        .rate_limit_headers(headers)
        .build()
        .unwrap();
    ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(handler))
}

fn admission(c: &mut Criterion) {
    let keys = key_values(KEYS, 1);
    let unknown = key_values(KEYS, 2);
    let mut g = c.benchmark_group("admission");

    let mut reqs = Requests::new(&keys, 3);
    let mut bare = ServiceBuilder::new().service(service_fn(handler));
    run(&mut g, "bare", &mut bare, &mut reqs, StatusCode::OK);

    let (t, q) = open();
    for (id, headers) in [("admit", false), ("admit_headers", true)] {
        let mut svc = layered(store(&keys, t, q), headers);
        for req in reqs.each() {
            assert_eq!(drive(&mut svc, req).status(), StatusCode::OK);
        }
        run(&mut g, id, &mut svc, &mut reqs, StatusCode::OK);
    }
    #[cfg(feature = "sqlite")]
    sqlite::admit_sqlite(&mut g, &keys, &mut reqs);

    // A token a million seconds, a bucket of one, spent in setup.
    let slow = Throttle::new(1e-6, 1).unwrap();
    let mut svc = layered(store(&keys, slow, q), false);
    for req in reqs.each() {
        assert_eq!(drive(&mut svc, req).status(), StatusCode::OK);
    }
    run(
        &mut g,
        "throttled",
        &mut svc,
        &mut reqs,
        StatusCode::TOO_MANY_REQUESTS,
    );

    // A quota of one, spent in setup.
    let one = Quota::new(1, QuotaPeriod::Month, 0).unwrap();
    let mut svc = layered(store(&keys, t, one), false);
    for req in reqs.each() {
        assert_eq!(drive(&mut svc, req).status(), StatusCode::OK);
    }
    run(
        &mut g,
        "quota_exceeded",
        &mut svc,
        &mut reqs,
        StatusCode::TOO_MANY_REQUESTS,
    );

    let mut svc = layered(store(&keys, t, q), false);
    let mut strangers = Requests::new(&unknown, 4);
    run(
        &mut g,
        "forbidden",
        &mut svc,
        &mut strangers,
        StatusCode::FORBIDDEN,
    );

    // tower_governor 0.8 keyed on x-api-key: a token a nanosecond, a bucket of 1000.
    let config = GovernorConfigBuilder::default()
        .key_extractor(ApiKeyHeader)
        .period(Duration::from_nanos(1))
        .burst_size(1000)
        .finish()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(GovernorLayer::new(config))
        .service(service_fn(handler));
    for req in reqs.each() {
        assert_eq!(drive(&mut svc, req).status(), StatusCode::OK);
    }
    run(
        &mut g,
        "tower_governor",
        &mut svc,
        &mut reqs,
        StatusCode::OK,
    );

    let config = GovernorConfigBuilder::default()
        .key_extractor(ApiKeyHeader)
        .period(Duration::from_nanos(1))
        .burst_size(1000)
        .use_headers()
        .finish()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(GovernorLayer::new(config))
        .service(service_fn(handler));
    for req in reqs.each() {
        assert_eq!(drive(&mut svc, req).status(), StatusCode::OK);
    }
    run(
        &mut g,
        "tower_governor_headers",
        &mut svc,
        &mut reqs,
        StatusCode::OK,
    );

    // A token a million seconds, a bucket of one, spent in setup.
    let config = GovernorConfigBuilder::default()
        .key_extractor(ApiKeyHeader)
        .period(Duration::from_secs(1_000_000))
        .burst_size(1)
        .finish()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(GovernorLayer::new(config))
        .service(service_fn(handler));
    for req in reqs.each() {
        assert_eq!(drive(&mut svc, req).status(), StatusCode::OK);
    }
    run(
        &mut g,
        "tower_governor_throttled",
        &mut svc,
        &mut reqs,
        StatusCode::TOO_MANY_REQUESTS,
    );

    // The floor: governor's keyed check on a 40-character String, nothing else.
    let limiter = RateLimiter::keyed(
        GovQuota::with_period(Duration::from_nanos(1))
            .unwrap()
            .allow_burst(NonZeroU32::new(1000).unwrap()),
    );
    for k in &keys {
        assert!(limiter.check_key(k).is_ok());
    }
    let seq = sequence(keys.len(), 3);
    let mut at = 0;
    g.bench_function("governor_keyed", |b| {
        b.iter(|| {
            let k = &keys[seq[at] as usize];
            at = (at + 1) % seq.len();
            limiter.check_key(k).is_ok()
        })
    });
    g.finish();
}

fn scale(c: &mut Criterion) {
    let mut g = c.benchmark_group("scale");
    let (t, q) = open();
    for (id, n) in [("keys_10k", 10_000), ("keys_1m", 1_000_000)] {
        let keys = key_values(n, 1);
        let mut svc = layered(store(&keys, t, q), false);
        let mut reqs = Requests::new(&keys, 3);
        for req in reqs.each() {
            assert_eq!(drive(&mut svc, req).status(), StatusCode::OK);
        }
        run(&mut g, id, &mut svc, &mut reqs, StatusCode::OK);
    }
    g.finish();
}

/// `admit` on the SQLite store with the persisted meter (feature `sqlite`): the same keys and
/// plan, loaded from a file in the temp dir, the meter flushing every second in the background.
#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use tower_usage_plans::meter::PersistedMeter;
    use tower_usage_plans::store::SqliteStore;

    pub(super) fn admit_sqlite(
        g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
        keys: &[String],
        reqs: &mut Requests,
    ) {
        let (t, q) = open();
        let dir = std::env::temp_dir().join(format!("tup-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bench.db");
        let _ = std::fs::remove_file(&path);
        let sqlite = SqliteStore::open(&path).unwrap();
        sqlite.replace_all(store(keys, t, q).to_config()).unwrap();
        drop(sqlite);
        let sqlite = SqliteStore::open(&path).unwrap();
        let meter = PersistedMeter::new(&sqlite, tower_usage_plans::LocalMeter::new()).unwrap();
        let layer = UsagePlanLayer::builder(sqlite)
            .meter(meter.clone())
            .stage(API, STAGE)
            .require_key(Method::GET, "/items")
            .rate_limit_headers(false)
            .build()
            .unwrap();
        let mut svc = ServiceBuilder::new()
            .layer(layer)
            .service(service_fn(handler));
        for req in reqs.each() {
            assert_eq!(drive(&mut svc, req).status(), StatusCode::OK);
        }
        run(g, "admit_sqlite", &mut svc, reqs, StatusCode::OK);
        meter.shutdown().unwrap();
        drop((svc, meter));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

criterion_group!(benches, admission, scale);
criterion_main!(benches);
