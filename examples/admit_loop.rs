//! A measurement, not a usage example: the layer alone over many keys, timed per request (the
//! harness behind the before/after figures in BENCHMARKS.md that criterion's noise could not
//! resolve).
//!
//! ```text
//! N=10000 cargo run --release --example admit_loop -- 1000000   # keys, requests
//! ```
//!
//! Admits GET /items with a random key of N on the in-memory store and meter (headers off; `H=1`
//! for on), 256 requests built ahead of each timed batch, and prints nanoseconds per request.
//! `MODE=bare` times the inner service alone, `MODE=tg` tower_governor keyed on the header, on the
//! same requests. `CASE=throttled` (a token a million seconds, spent first), `CASE=quota` (a quota
//! of one a month, spent first) and `CASE=forbidden` (unknown keys) time the layer's refusals.
use axum::body::Body;
use clap::Parser;
use http::{HeaderValue, Method, Request, Response, Uri};
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use tower::{service_fn, Service, ServiceBuilder};
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::GovernorLayer;
use tower_usage_plans::model::*;
use tower_usage_plans::{MemoryStore, UsagePlanLayer};

#[path = "../benches/support/tg_key.rs"]
mod tg_key;
use tg_key::ApiKeyHeader;
use tower_usage_plans::store::Management;

#[path = "support/now.rs"]
mod now;
use now::now;

/// Times the layer alone per request over N keys (see BENCHMARKS.md).
#[derive(Debug, Parser)]
#[command(
    name = "admit_loop",
    after_help = "Environment: N keys (default 10000); MODE=bare (the inner service alone) or \
                  MODE=tg (tower_governor); CASE=throttled, CASE=quota or CASE=forbidden (the \
                  layer's refusals); H=1 turns the rate-limit headers on."
)]
struct Args {
    /// How many requests to time.
    #[arg(value_name = "REQUESTS", default_value_t = 1_000_000)]
    requests: usize,
}

fn main() {
    let args = Args::parse();
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let keys: Vec<String> = (0..n).map(|i| format!("key-value-{i:030}")).collect();
    let store = MemoryStore::new();
    let mut plan = UsagePlan::new("p", "P");
    let case = std::env::var("CASE").unwrap_or_default();
    plan.throttle = Some(match &*case {
        "throttled" => Throttle::new(1e-6, 1).unwrap(),
        _ => Throttle::new(1e6, 1_000_000).unwrap(),
    });
    plan.quota = Some(match &*case {
        "quota" => Quota::new(1, QuotaPeriod::Month, 0).unwrap(),
        _ => Quota::new(1_000_000_000_000, QuotaPeriod::Day, 0).unwrap(),
    });
    plan.api_stages.push(ApiStage::new("a", "s"));
    now(store.create_usage_plan(plan)).unwrap();
    for (i, k) in keys.iter().enumerate() {
        store
            .put_api_key(ApiKey::new(
                format!("id{i}"),
                "n",
                ApiKeyValue::new(k.clone()).unwrap(),
            ))
            .unwrap();
        now(store.create_usage_plan_key("p", &format!("id{i}"))).unwrap();
    }
    let layer = UsagePlanLayer::builder(store)
        .stage("a", "s")
        .require_key(Method::GET, "/items")
        .rate_limit_headers(std::env::var_os("H").is_some())
        .build()
        .unwrap();
    let inner =
        service_fn(|_r: Request<Body>| async { Ok::<_, Infallible>(Response::new(Body::empty())) });
    let mode = std::env::var("MODE").unwrap_or_default();
    let (sent, status) = match &*case {
        "throttled" | "quota" => (keys.clone(), 429),
        "forbidden" => (
            (0..n).map(|i| format!("unknown-key-{i:028}")).collect(),
            403,
        ),
        _ => (keys.clone(), 200),
    };
    let per_req = match &*mode {
        "bare" => time(inner, &sent, 200, args.requests),
        "tg" => {
            let config = GovernorConfigBuilder::default()
                .key_extractor(ApiKeyHeader)
                .period(std::time::Duration::from_nanos(1))
                .burst_size(1000)
                .finish()
                .unwrap();
            time(
                ServiceBuilder::new()
                    .layer(GovernorLayer::new(config))
                    .service(inner),
                &sent,
                200,
                args.requests,
            )
        }
        _ => {
            let mut svc = ServiceBuilder::new().layer(layer).service(inner);
            // Spend each key's token or quota first (and meet every key once).
            let mut cx = Context::from_waker(Waker::noop());
            for k in &keys {
                let mut req = Request::new(Body::empty());
                *req.uri_mut() = Uri::from_static("/items");
                req.headers_mut()
                    .insert("x-api-key", HeaderValue::from_str(k).unwrap());
                let _ = svc.poll_ready(&mut cx);
                let _ = pin!(svc.call(req)).poll(&mut cx);
            }
            time(svc, &sent, status, args.requests)
        }
    };
    println!("{per_req:.1} ns/req");
}

/// Nanoseconds per request through `svc` over `iters` requests, a random key of `keys` each,
/// answered `status`.
fn time<S, B>(mut svc: S, keys: &[String], status: u16, iters: usize) -> f64
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let n = keys.len();
    let vals: Vec<HeaderValue> = keys
        .iter()
        .map(|k| HeaderValue::from_str(k).unwrap())
        .collect();
    let mut cx = Context::from_waker(Waker::noop());
    let mut x = 12345u64;
    let mut reqs = Vec::with_capacity(256);
    let mut total = std::time::Duration::ZERO;
    for _ in 0..iters / 256 {
        reqs.clear();
        for _ in 0..256 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut req = Request::new(Body::empty());
            *req.method_mut() = Method::GET;
            *req.uri_mut() = Uri::from_static("/items");
            req.headers_mut()
                .insert("x-api-key", fresh(&vals[(x % n as u64) as usize]));
            reqs.push(req);
        }
        let t = std::time::Instant::now();
        for req in reqs.drain(..) {
            let _ = svc.poll_ready(&mut cx);
            let fut = pin!(svc.call(req));
            match fut.poll(&mut cx) {
                Poll::Ready(Ok(r)) => assert_eq!(r.status(), status),
                _ => panic!(),
            }
        }
        total += t.elapsed();
    }
    total.as_nanos() as f64 / iters as f64
}

/// A copy of `v` in a buffer of its own, as a request just parsed would carry it (a clone would
/// share one buffer per key, cold in cache, with every request of that key).
fn fresh(v: &HeaderValue) -> HeaderValue {
    HeaderValue::from_bytes(v.as_bytes()).unwrap()
}
