//! A measurement, not a usage example: what the in-memory store and meter hold per key, with a
//! counting allocator.
//!
//! `cargo run --release --example memory [KEYS]` (default 1,000,000): a [`MemoryStore`] of KEYS
//! keys with 40-character values and short names, all linked to one plan; then a [`LocalMeter`]
//! after admitting one request per key through the layer. Prints the bytes allocated (minus
//! freed) per key for each, and the heap allocations per request on the layer's paths.
//!
//! See BENCHMARKS.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use clap::Parser;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::Empty;
use tower::{service_fn, Service, ServiceBuilder};
use tower_usage_plans::model::{
    ApiKey, ApiKeyValue, ApiStage, Quota, QuotaPeriod, Throttle, UsagePlan,
};
use tower_usage_plans::store::Management;
use tower_usage_plans::{LocalMeter, MemoryStore, UsagePlanLayer};

#[path = "support/now.rs"]
mod now;
use now::now;

/// The system allocator, counting live bytes and allocations.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::SeqCst)
}

fn allocs() -> usize {
    ALLOCS.load(Ordering::SeqCst)
}

/// The process's resident memory, in bytes, from /proc (0 elsewhere).
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// The `i`th key's value: 40 characters.
fn value(i: usize) -> String {
    format!("benchkey{i:032}")
}

async fn handler(_req: Request<Empty<Bytes>>) -> Result<Response<String>, Infallible> {
    Ok(Response::new(String::new()))
}

fn drive<S, B>(svc: &mut S, req: Request<Empty<Bytes>>) -> Response<B>
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    let fut = pin!(svc.call(req));
    match fut.poll(&mut cx) {
        Poll::Ready(Ok(res)) => res,
        _ => panic!("not answered at once"),
    }
}

fn request(value: &HeaderValue) -> Request<Empty<Bytes>> {
    let mut req = Request::new(Empty::new());
    *req.uri_mut() = Uri::from_static("/items");
    req.headers_mut().insert("x-api-key", value.clone());
    req
}

/// A store of `n` keys on one plan, and the bytes it took.
fn store(n: usize, throttle: Throttle, quota: Quota) -> (MemoryStore, isize) {
    let before = live();
    let store = MemoryStore::new();
    let mut plan = UsagePlan::new("plan111", "BenchPlan");
    plan.api_stages.push(ApiStage::new("abc123def4", "prod"));
    plan.throttle = Some(throttle);
    plan.quota = Some(quota);
    now(store.create_usage_plan(plan)).unwrap();
    for i in 0..n {
        let id = format!("k{i:09}");
        store
            .put_api_key(ApiKey::new(
                id.clone(),
                format!("c{i}"),
                ApiKeyValue::new(value(i)).unwrap(),
            ))
            .unwrap();
        now(store.create_usage_plan_key("plan111", &id)).unwrap();
    }
    (store, live() - before)
}

/// Heap allocations per request over `n` requests from `reqs`, answered `expect`.
fn allocs_per_request<S, B>(
    svc: &mut S,
    reqs: &[Request<Empty<Bytes>>],
    expect: StatusCode,
) -> (f64, isize)
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let reqs: Vec<Request<Empty<Bytes>>> = reqs
        .iter()
        .map(|r| {
            let mut x = Request::new(Empty::new());
            *x.uri_mut() = r.uri().clone();
            *x.headers_mut() = r.headers().clone();
            x
        })
        .collect();
    let n = reqs.len();
    // Each request's own allocations are made above; count only the layer's and the answer's.
    let (a0, l0) = (allocs(), live());
    let mut statuses = Vec::with_capacity(n);
    for req in reqs {
        let res = drive(svc, req);
        statuses.push(res.status());
    }
    let (a1, l1) = (allocs(), live());
    for s in statuses {
        assert_eq!(s, expect);
    }
    ((a1 - a0) as f64 / n as f64, l1 - l0)
}

/// Measures what the in-memory store and meter hold per key (see BENCHMARKS.md).
#[derive(Debug, Parser)]
#[command(name = "memory")]
struct Args {
    /// How many keys.
    #[arg(value_name = "KEYS", default_value_t = 1_000_000)]
    keys: usize,
}

fn main() {
    let n = Args::parse().keys;
    let open = Throttle::new(1e6, 1_000_000).unwrap();
    let big = Quota::new(1_000_000_000_000, QuotaPeriod::Day, 0).unwrap();

    println!("keys: {n}, values of 40 characters, names of up to 8, one plan");
    let rss0 = rss();
    let (st, store_bytes) = store(n, open, big);
    let rss1 = rss();
    println!(
        "store: {store_bytes} bytes allocated, {:.1} bytes per key (resident: +{:.1} bytes per key)",
        store_bytes as f64 / n as f64,
        rss1.saturating_sub(rss0) as f64 / n as f64
    );

    let meter = LocalMeter::new();
    let layer = UsagePlanLayer::builder(st.clone())
        .stage("abc123def4", "prod")
        .meter(meter.clone())
        .require_key(Method::GET, "/items")
        .rate_limit_headers(false)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(handler));
    let values: Vec<HeaderValue> = (0..n)
        .map(|i| HeaderValue::from_str(&value(i)).unwrap())
        .collect();
    // Cloning a `HeaderValue` made from a string shares its bytes on the first clone, which
    // allocates: do it before counting.
    for v in &values {
        drop(v.clone());
    }
    let before = live();
    let allocs0 = allocs();
    let rss2 = rss();
    for v in &values {
        assert_eq!(drive(&mut svc, request(v)).status(), StatusCode::OK);
    }
    let meter_bytes = live() - before;
    let meter_allocs = allocs() - allocs0;
    let rss3 = rss();
    assert_eq!(meter.len(), n);
    println!(
        "meter: {meter_bytes} bytes allocated, {:.1} bytes per active key in {:.2} allocations (resident: +{:.1} bytes per key)",
        meter_bytes as f64 / n as f64,
        meter_allocs as f64 / n as f64,
        rss3.saturating_sub(rss2) as f64 / n as f64
    );

    // Allocations per request, on each path, after the meter holds every key.
    let sample: Vec<Request<Empty<Bytes>>> = values.iter().take(10_000).map(request).collect();
    let (a, _) = allocs_per_request(&mut svc, &sample, StatusCode::OK);
    println!("allocations per request, admitted, headers off: {a:.2}");
    let unknown: Vec<Request<Empty<Bytes>>> = (0..10_000)
        .map(|i| request(&HeaderValue::from_str(&format!("strangerkey{i:029}")).unwrap()))
        .collect();
    let len = meter.len();
    let (a, _) = allocs_per_request(&mut svc, &unknown, StatusCode::FORBIDDEN);
    assert_eq!(meter.len(), len, "no meter state for an unknown key");
    println!("allocations per request, forbidden (unknown key): {a:.2}; meter state created: 0");

    let layer = UsagePlanLayer::builder(st.clone())
        .stage("abc123def4", "prod")
        .require_key(Method::GET, "/items")
        .rate_limit_headers(true)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(handler));
    let (a, _) = allocs_per_request(&mut svc, &sample, StatusCode::OK);
    let (a2, _) = allocs_per_request(&mut svc, &sample, StatusCode::OK);
    println!(
        "allocations per request, admitted, headers on: {a2:.2} (first request of each key: {a:.2})"
    );

    let (slow, _) = store(10_000, Throttle::new(1e-6, 1).unwrap(), big);
    let layer = UsagePlanLayer::builder(slow)
        .stage("abc123def4", "prod")
        .require_key(Method::GET, "/items")
        .rate_limit_headers(false)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(handler));
    allocs_per_request(&mut svc, &sample, StatusCode::OK);
    let (a, _) = allocs_per_request(&mut svc, &sample, StatusCode::TOO_MANY_REQUESTS);
    println!("allocations per request, throttled (429): {a:.2}");
}
