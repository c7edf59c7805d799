//! RedisMeter when Redis fails, against a real redis-server this test stops, restarts, freezes
//! (`SIGSTOP`) and lets go on: the layer answers 503 (FailMode::Closed) or admits unmetered
//! (FailMode::Open) within the response timeout, counts it under `outcome="unavailable"`, and
//! admits again when Redis is back, without a restart. Also: a RedisStore keeps answering lookups
//! from its copy while Redis is down, and its management fails within the timeout.
//!
//! Without redis-server these tests print SKIPPED and pass, unless `CI` is set: then they fail.
#![cfg(feature = "metrics")]

use crate::app;
use crate::metrics_support;

use std::time::{Duration, Instant};

use crate::redis_server;
use axum::Router;
use http::{Request, StatusCode};
use redis_server::RedisServer;
use tower::ServiceExt;
use tower_usage_plans::meter::RedisMeter;
use tower_usage_plans::model::{ApiStage, StageRef, Throttle, UsagePlan};
use tower_usage_plans::store::{KeyStore, Management, NewApiKey, RedisStore};
use tower_usage_plans::{FailMode, MemoryStore};

const TIMEOUT: Duration = Duration::from_millis(200);
/// What a request may take beyond the timeout on a loaded machine.
const SLACK: Duration = Duration::from_millis(800);
const VALUE: &str = "FailureTestKeyValue0123456789";

async fn store() -> MemoryStore {
    let store = MemoryStore::new();
    let mut plan = UsagePlan::new("plan1", "Plan");
    plan.api_stages.push(ApiStage::new("api1", "prod"));
    plan.throttle = Some(Throttle::new(1000.0, 1000).unwrap());
    store.create_usage_plan(plan).await.unwrap();
    let mut new = NewApiKey::named("k");
    new.value = Some(tower_usage_plans::model::ApiKeyValue::new(VALUE).unwrap());
    let key = store.create_api_key(new).await.unwrap();
    store.create_usage_plan_key("plan1", &key.id).await.unwrap();
    store
}

/// Sends `GET /items` with the key; answers the status and how long it took.
async fn send(app: &Router) -> (StatusCode, Duration) {
    let start = Instant::now();
    let req = Request::get("/items")
        .header("x-api-key", VALUE)
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    (res.status(), start.elapsed())
}

/// Sends until the closed app answers 200, bounded.
async fn until_admitted(app: &Router, what: &str) -> Duration {
    let start = Instant::now();
    loop {
        let (status, took) = send(app).await;
        assert!(took < TIMEOUT + SLACK, "{what}: a request took {took:?}");
        if status == StatusCode::OK {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: still {status} after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn the_meter_fails_as_configured_within_the_timeout_counts_it_and_resumes() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let handle = metrics_support::with_metrics(async {
        let meter = RedisMeter::builder()
            .response_timeout(TIMEOUT)
            .connect(&server.url())
            .await
            .unwrap();
        let store = store().await;
        let closed = app(store.clone(), meter.clone(), FailMode::Closed);
        let open = app(store, meter, FailMode::Open);
        assert_eq!(send(&closed).await.0, StatusCode::OK);

        // Down: refused connections.
        server.stop();
        for _ in 0..3 {
            let (status, took) = send(&closed).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert!(took < TIMEOUT + SLACK, "a request took {took:?}");
            let (status, took) = send(&open).await;
            assert_eq!(status, StatusCode::OK, "fail open admits unmetered");
            assert!(took < TIMEOUT + SLACK, "a request took {took:?}");
        }

        // Back (empty, on the same port): admitted again, without a new meter.
        server.restart();
        let took = until_admitted(&closed, "after a restart").await;
        eprintln!("admitted again {took:?} after Redis restarted");

        // Frozen: accepts, answers nothing. Each request ends at the timeout.
        server.pause();
        let (status, took) = send(&closed).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            took >= TIMEOUT && took < TIMEOUT + SLACK,
            "a request on a frozen Redis took {took:?}"
        );
        let (status, took) = send(&open).await;
        assert_eq!(status, StatusCode::OK);
        assert!(took < TIMEOUT + SLACK, "a request took {took:?}");
        server.resume();
        until_admitted(&closed, "after a freeze").await;
    });
    let text = handle.render();
    let unavailable = text
        .lines()
        .find(|l| {
            l.starts_with("usage_plans_requests_total{") && l.contains("outcome=\"unavailable\"")
        })
        .unwrap_or_else(|| panic!("no unavailable count in:\n{text}"));
    let n: u64 = unavailable.rsplit(' ').next().unwrap().parse().unwrap();
    // Four refused (503) and four admitted unmetered (fail open), besides the waits for Redis.
    assert!(
        n >= 8,
        "every request that met a failed meter is counted, refused or admitted: {unavailable}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_store_answers_from_its_copy_while_redis_is_down() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::builder()
        .response_timeout(TIMEOUT)
        .refresh_interval(Duration::from_millis(20))
        .connect(&server.url())
        .await
        .unwrap();
    let mut plan = UsagePlan::new("plan1", "Plan");
    plan.api_stages.push(ApiStage::new("api1", "prod"));
    store.create_usage_plan(plan).await.unwrap();
    let key = store.create_api_key(NewApiKey::named("k")).await.unwrap();
    store.create_usage_plan_key("plan1", &key.id).await.unwrap();
    let prod = StageRef::new("api1", "prod");

    server.pause();
    let start = Instant::now();
    let err = store
        .create_api_key(NewApiKey::named("later"))
        .await
        .unwrap_err();
    assert!(start.elapsed() < TIMEOUT + SLACK, "{:?}", start.elapsed());
    assert!(err.to_string().contains("backend"), "{err}");
    let g = store.lookup(key.value.expose(), &prod).await.unwrap();
    assert!(g.is_some_and(|g| g.enabled), "lookups go on from the copy");

    server.stop();
    let g = store.lookup(key.value.expose(), &prod).await.unwrap();
    assert!(g.is_some(), "lookups go on from the copy");
    assert!(store.get_api_key(&key.id, false).await.is_err());

    // Back, empty: the store follows Redis (here: nothing), without a restart.
    server.restart();
    let start = Instant::now();
    loop {
        if store.refresh().await.is_ok() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no refresh");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(store
        .lookup(key.value.expose(), &prod)
        .await
        .unwrap()
        .is_none());
    store
        .create_api_key(NewApiKey::named("again"))
        .await
        .unwrap();
}
