//! A measurement, not a usage example: what the management and usage operations cost, and what they
//! cost the request path.
//!
//! `cargo run --release --example operate_bench --features csv,metrics` times, on the in-memory
//! store and meter:
//!
//! 1. get-usage for a plan of 10,000 keys over 90 days: one page of 100 keys, and all pages;
//! 2. listing the keys of a plan of 10 keys in a store of 1,000,000 keys;
//! 3. importing a CSV of 100,000 keys;
//!
//! and, while each runs on one thread, requests through the layer on another, one at a time,
//! reporting the worst request latency seen during the operation (target: none over 1 ms).
//! See BENCHMARKS.md.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use clap::Parser;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::Empty;
use tower::{service_fn, Service, ServiceBuilder};
use tower_usage_plans::clock::ManualClock;
use tower_usage_plans::meter::policy::{BucketLimits, Limits, QuotaLimits};
use tower_usage_plans::meter::{Charge, Counter, Meter};
use tower_usage_plans::model::{
    ApiKey, ApiKeyValue, ApiStage, Quota, QuotaPeriod, Throttle, UsagePlan,
};
use tower_usage_plans::period::Calendar;
use tower_usage_plans::period::Date;
use tower_usage_plans::store::{Management, PageRequest};
use tower_usage_plans::usage::{get_usage, import_csv, UsageQuery};
use tower_usage_plans::{LocalMeter, MemoryStore, UsagePlanLayer};

#[path = "support/now.rs"]
mod now;
use now::now;

type Body = Empty<bytes::Bytes>;

async fn handler(_req: Request<Body>) -> Result<Response<String>, Infallible> {
    Ok(Response::new(String::new()))
}

fn value(prefix: &str, i: usize) -> String {
    format!("{prefix}{i:032}")
}

fn add_plan(store: &MemoryStore, id: &str) {
    let mut plan = UsagePlan::new(id, id);
    plan.api_stages.push(ApiStage::new("abc123def4", "prod"));
    plan.throttle = Some(Throttle::new(1e6, 1_000_000).expect("a throttle"));
    plan.quota = Some(Quota::new(1 << 40, QuotaPeriod::Month, 0).expect("a quota"));
    now(store.create_usage_plan(plan)).expect("a plan");
}

fn add_keys(store: &MemoryStore, plan: &str, prefix: &str, n: usize) {
    for i in 0..n {
        let id = format!("{prefix}{i:09}");
        store
            .put_api_key(ApiKey::new(
                id.clone(),
                "c",
                ApiKeyValue::new(value(prefix, i)).expect("a value"),
            ))
            .expect("a key");
        now(store.create_usage_plan_key(plan, &id)).expect("a link");
    }
}

/// Requests through the layer on another thread while `op` runs; the op's time and the worst
/// request latency seen meanwhile.
fn with_requests<R>(
    store: &MemoryStore,
    meter: &LocalMeter<ManualClock>,
    op: impl FnOnce() -> R,
) -> (R, Duration, Duration, u64) {
    let layer = UsagePlanLayer::builder(store.clone())
        .stage("abc123def4", "prod")
        .meter(meter.clone())
        .require_key(Method::GET, "/items")
        .build()
        .expect("a layer");
    let stop = Arc::new(AtomicBool::new(false));
    let worst = Arc::new(AtomicU64::new(0));
    let count = Arc::new(AtomicU64::new(0));
    let requester = {
        let (stop, worst, count) = (stop.clone(), worst.clone(), count.clone());
        std::thread::spawn(move || {
            let mut svc = ServiceBuilder::new()
                .layer(layer)
                .service(service_fn(handler));
            let key = HeaderValue::try_from(value("probe", 0)).expect("a header");
            let mut cx = Context::from_waker(Waker::noop());
            while !stop.load(Ordering::Relaxed) {
                let mut req = Request::new(Body::new());
                *req.uri_mut() = Uri::from_static("/items");
                req.headers_mut().insert("x-api-key", key.clone());
                let t = Instant::now();
                assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
                // The in-memory store and meter answer at once; the admitted request's future
                // readies the inner service, then calls it.
                let Poll::Ready(res) = pin!(svc.call(req)).poll(&mut cx) else {
                    unreachable!("the in-memory path answers at once");
                };
                let res = res.expect("infallible");
                let took = t.elapsed().as_nanos() as u64;
                assert_eq!(res.status(), StatusCode::OK);
                worst.fetch_max(took, Ordering::Relaxed);
                count.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // Let the requester start before timing.
    while count.load(Ordering::Relaxed) < 1000 {
        std::hint::spin_loop();
    }
    worst.store(0, Ordering::Relaxed);
    count.store(0, Ordering::Relaxed);
    let t = Instant::now();
    let out = op();
    let took = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    requester.join().expect("the requester");
    (
        out,
        took,
        Duration::from_nanos(worst.load(Ordering::Relaxed)),
        count.load(Ordering::Relaxed),
    )
}

fn report(name: &str, took: Duration, worst: Duration, requests: u64) {
    println!(
        "{name}: {:.3} ms; meanwhile {requests} requests, the worst {:.3} ms ({})",
        took.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3,
        if worst <= Duration::from_millis(1) {
            "within 1 ms"
        } else {
            "OVER 1 ms"
        }
    );
}

/// Times get-usage, a plan's keys in a large store and a CSV import, and the worst request latency
/// while each runs (see the file's head and BENCHMARKS.md). Takes no arguments.
#[derive(Debug, Parser)]
#[command(name = "operate_bench")]
struct Args {}

fn main() {
    let Args {} = Args::parse();
    // 1. get-usage: a plan of 10,000 keys, each with a request on each of 90 days.
    let store = MemoryStore::new();
    add_plan(&store, "big");
    add_keys(&store, "big", "big", 10_000);
    add_keys(&store, "big", "probe", 1);
    let day0 = Date::new(2024, 1, 1).expect("a date");
    let clock = ManualClock::at_unix_secs(day0.unix_secs() + 3600);
    let meter = LocalMeter::with_clock(clock.clone());
    // The counter of each key on the plan, as the layer charges it.
    let big = now(store.get_usage_plan("big")).expect("the plan");
    let limits = Limits::new(
        big.throttle.as_ref().map(BucketLimits::from_throttle),
        big.quota
            .map(|q| QuotaLimits::new(q.limit, Calendar::aws(q.period, q.offset))),
    );
    let (plan_id, bucket): (Arc<str>, Arc<str>) = ("big".into(), "plan".into());
    let ids: Vec<Arc<str>> = (0..10_000).map(|i| format!("big{i:09}").into()).collect();
    for _ in 0..90 {
        for id in &ids {
            let counters = [Counter::new(&plan_id, id, Some(&bucket), limits)];
            now(meter.admit(&Charge::new(&counters, 1).unwrap())).expect("admitted");
        }
        clock.advance(Duration::from_secs(86_400));
    }
    let end = Date::from_days(day0.days() + 89);
    let page = |position: Option<String>, limit: u32| {
        let mut q = UsageQuery::new("big", day0, end);
        q.page = PageRequest {
            position,
            limit: Some(limit),
        };
        q
    };
    println!("get-usage: a plan of 10,001 keys, 90 days");
    let (usage, took, worst, n) = with_requests(&store, &meter, || {
        now(get_usage(&store, &meter, &page(None, 100))).expect("a page")
    });
    assert_eq!(usage.items.len(), 100);
    report("  one page of 100 keys", took, worst, n);
    let (keys, took, worst, n) = with_requests(&store, &meter, || {
        let mut position = None;
        let mut keys = 0;
        loop {
            let usage = now(get_usage(&store, &meter, &page(position, 500))).expect("a page");
            keys += usage.items.len();
            match usage.position {
                Some(p) => position = Some(p),
                None => break keys,
            }
        }
    });
    assert_eq!(keys, 10_001);
    report("  all pages (500 keys a page)", took, worst, n);

    // 2. A plan of 10 keys in a store of 1,000,000.
    let store = MemoryStore::new();
    add_plan(&store, "small");
    add_plan(&store, "other");
    add_keys(&store, "small", "small", 10);
    add_keys(&store, "other", "other", 999_989);
    add_keys(&store, "other", "probe", 1);
    let meter = LocalMeter::with_clock(ManualClock::at_unix_secs(day0.unix_secs()));
    println!("a plan of 10 keys in a store of 1,000,000 keys");
    let (listed, took, worst, n) = with_requests(&store, &meter, || {
        now(store.get_usage_plan_keys("small", &PageRequest::default())).expect("a page")
    });
    assert_eq!(listed.items.len(), 10);
    report("  get-usage-plan-keys", took, worst, n);

    // 3. Importing 100,000 keys from CSV.
    let store = MemoryStore::new();
    add_plan(&store, "imported");
    add_keys(&store, "imported", "probe", 1);
    let mut csv = String::from("Name,Key,Description,Enabled,UsagePlanIds\n");
    for i in 0..100_000 {
        csv.push_str(&format!(
            "client{i},{},imported,true,imported\n",
            value("csvkey", i)
        ));
    }
    println!(
        "import-api-keys: a CSV of 100,000 keys ({} bytes)",
        csv.len()
    );
    let (result, took, worst, n) = with_requests(&store, &meter, || {
        now(import_csv(&store, csv.as_bytes(), true)).expect("imported")
    });
    assert_eq!(result.ids.len(), 100_000);
    report("  import", took, worst, n);
}
