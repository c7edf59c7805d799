//! RedisMeter on a Redis Cluster with replicas (three masters, a replica each, on loopback) while
//! the master holding a key's state fails over: stopped (killed, its replica promoted once the
//! others deem it failed) or handed over (`CLUSTER FAILOVER` on its replica). Requests through
//! the layer get the configured outcome during the failover (503 with FailMode::Closed, admitted
//! unmetered with FailMode::Open), none waits past the response timeout, each refusal is counted
//! under `outcome="unavailable"`, and admission resumes on the promoted replica without a new
//! meter. A handed-over master loses nothing: the key's quota goes on where it was. A key that
//! another master serves is asked too while the master is down: it answers 200 or 503 (redis-rs's
//! cluster client may fail it while it looks for the lost master's successor), and the test
//! prints how many of each.
//!
//! Without redis-server these tests print SKIPPED and pass, unless `CI` is set: then they fail.
#![cfg(all(feature = "testing", feature = "redis", feature = "metrics"))]

use crate::app;
use crate::metrics_support;

use std::time::{Duration, Instant};

use crate::redis_server;
use axum::Router;
use http::{Request, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;
use redis_server::RedisCluster;
use tower::ServiceExt;
use tower_usage_plans::meter::RedisMeter;
use tower_usage_plans::model::{ApiKeyValue, ApiStage, Quota, QuotaPeriod, Throttle, UsagePlan};
use tower_usage_plans::store::Management;
use tower_usage_plans::store::NewApiKey;
use tower_usage_plans::{FailMode, MemoryStore};

const TIMEOUT: Duration = Duration::from_millis(300);
/// What a request may take beyond the timeout on a loaded machine.
const SLACK: Duration = Duration::from_millis(800);
const VALUE: &str = "FailoverTestKeyValue0123456789";
/// The key's quota a day: more than the requests of a failover (they are paced), so that the
/// test of a handed-over master can spend the rest after it.
const QUOTA: u64 = 2000;

/// A key on a plan with a quota of `QUOTA` a day and a throttle that never refuses (so every
/// 429 is the quota's), and eight others; answers the store, the key's id, and the others' ids
/// and values.
async fn store() -> (MemoryStore, String, Vec<(String, String)>) {
    let store = MemoryStore::new();
    let mut plan = UsagePlan::new("plan1", "Plan");
    plan.api_stages.push(ApiStage::new("api1", "prod"));
    plan.throttle = Some(Throttle::new(1e6, 1_000_000).unwrap());
    plan.quota = Some(Quota::new(QUOTA, QuotaPeriod::Day, 0).unwrap());
    store.create_usage_plan(plan).await.unwrap();
    let mut new = NewApiKey::named("k");
    new.value = Some(ApiKeyValue::new(VALUE).unwrap());
    let key = store.create_api_key(new).await.unwrap();
    store.create_usage_plan_key("plan1", &key.id).await.unwrap();
    let mut others = Vec::new();
    for i in 0..8 {
        let value = format!("FailoverOtherKeyValue{i:010}");
        let mut new = NewApiKey::named(format!("other{i}"));
        new.value = Some(ApiKeyValue::new(value.clone()).unwrap());
        let other = store.create_api_key(new).await.unwrap();
        store
            .create_usage_plan_key("plan1", &other.id)
            .await
            .unwrap();
        others.push((other.id.to_string(), value));
    }
    (store, key.id.to_string(), others)
}

/// Sends `GET /items` with the key; answers the status, after checking that it took less than
/// the timeout (and the slack).
async fn send(app: &Router) -> StatusCode {
    send_as(app, VALUE).await
}

/// Sends `GET /items` with the key of value `value`, as [`send`].
async fn send_as(app: &Router, value: &str) -> StatusCode {
    let start = Instant::now();
    let req = Request::get("/items")
        .header("x-api-key", value)
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let took = start.elapsed();
    assert!(took < TIMEOUT + SLACK, "a request took {took:?}");
    res.status()
}

/// What requests through both apps got while the cluster failed over.
#[derive(Debug, Default)]
struct During {
    admitted: u64,
    unavailable: u64,
    open_admitted: u64,
    /// A key another master serves: admitted, and refused (503).
    other_admitted: u64,
    other_unavailable: u64,
}

/// The cluster, on a thread of its own that waits until `replica` is a master and the cluster
/// is whole. Joined when dropped, also when the test panics, so that the cluster is dropped (its
/// servers stopped) before the test binary ends.
struct Waiting(Option<std::thread::JoinHandle<RedisCluster>>);

impl Waiting {
    fn until_master(cluster: RedisCluster, replica: usize) -> Self {
        Self(Some(std::thread::spawn(move || {
            cluster.wait_master(replica);
            cluster
        })))
    }

    fn is_finished(&self) -> bool {
        self.0
            .as_ref()
            .is_none_or(std::thread::JoinHandle::is_finished)
    }

    fn join(mut self) -> RedisCluster {
        self.0.take().unwrap().join().unwrap()
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}

/// Sends through both apps (or the closed one), one request each at a time, until `done` says the cluster is whole
/// again (bounded: the cluster's own waits are). Fail closed answers 200 or 503, fail open 200;
/// a key that another master serves (`other`'s value), 200 or 503 as well: redis-rs's cluster
/// client may fail it too while it looks for the lost master's successor.
async fn during(
    closed: &Router,
    open: Option<&Router>,
    other: Option<&str>,
    done: &Waiting,
) -> During {
    let mut d = During::default();
    let start = Instant::now();
    while !done.is_finished() {
        match send(closed).await {
            StatusCode::OK => d.admitted += 1,
            StatusCode::SERVICE_UNAVAILABLE => d.unavailable += 1,
            other => panic!("fail closed answered {other} during the failover"),
        }
        if let Some(open) = open {
            assert_eq!(send(open).await, StatusCode::OK, "fail open admits");
            d.open_admitted += 1;
        }
        if let Some(value) = other {
            match send_as(closed, value).await {
                StatusCode::OK => d.other_admitted += 1,
                StatusCode::SERVICE_UNAVAILABLE => d.other_unavailable += 1,
                other => panic!("a key on another master got {other}"),
            }
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no end in sight");
        // Pacing, not timing: a few hundred requests a failover, not tens of thousands.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    d
}

/// Sends through the closed app until it admits, bounded.
async fn until_admitted(closed: &Router, what: &str) {
    let start = Instant::now();
    loop {
        let status = send(closed).await;
        if status == StatusCode::OK {
            return;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: still {status} after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The count of requests under `outcome="unavailable"`.
fn unavailable(handle: &PrometheusHandle) -> u64 {
    let text = handle.render();
    text.lines()
        .find(|l| {
            l.starts_with("usage_plans_requests_total{") && l.contains("outcome=\"unavailable\"")
        })
        .map_or(0, |l| l.rsplit(' ').next().unwrap().parse().unwrap())
}

#[test]
fn a_stopped_master_fails_as_configured_and_admission_resumes_on_its_replica() {
    let Some(mut cluster) = RedisCluster::start_with_replicas() else {
        return;
    };
    let mut seen = During::default();
    let handle = metrics_support::with_metrics(async {
        let meter = RedisMeter::builder()
            .response_timeout(TIMEOUT)
            .connect_cluster(cluster.urls())
            .await
            .unwrap();
        let (store, key_id, others) = store().await;
        let master = cluster.master_of(&meter.state_key("plan1", &key_id));
        let replica = cluster.replica_of(master);
        let other = &others
            .iter()
            .find(|(id, _)| cluster.master_of(&meter.state_key("plan1", id)) != master)
            .expect("one of eight keys on another master")
            .1;
        let closed = app(store.clone(), meter.clone(), FailMode::Closed);
        let open = app(store, meter, FailMode::Open);
        assert_eq!(send(&closed).await, StatusCode::OK);

        let stopped = Instant::now();
        cluster.stop_node(master);
        // The others deem it failed only after cluster-node-timeout (2 s): until then, and until
        // its replica is promoted, its slots have no master.
        assert_eq!(send(&closed).await, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(send(&open).await, StatusCode::OK);
        let done = Waiting::until_master(cluster, replica);
        seen = during(&closed, Some(&open), Some(other), &done).await;
        let cluster = done.join();
        until_admitted(&closed, "after the replica took over").await;
        eprintln!(
            "while the master was down: {seen:?}; admitted again {:?} after it stopped",
            stopped.elapsed()
        );
        drop(cluster);
    });
    let n = unavailable(&handle);
    assert!(
        n > seen.unavailable,
        "every refusal for a failed meter is counted: {n}, {seen:?}"
    );
}

#[test]
fn a_handed_over_master_loses_nothing_and_admission_goes_on() {
    let Some(cluster) = RedisCluster::start_with_replicas() else {
        return;
    };
    let mut seen = During::default();
    let (mut before, mut after) = (0, 0);
    let handle = metrics_support::with_metrics(async {
        let meter = RedisMeter::builder()
            .response_timeout(TIMEOUT)
            .connect_cluster(cluster.urls())
            .await
            .unwrap();
        let (store, key_id, _) = store().await;
        let state = meter.state_key("plan1", &key_id);
        let master = cluster.master_of(&state);
        let replica = cluster.replica_of(master);
        let closed = app(store, meter, FailMode::Closed);
        for _ in 0..3 {
            assert_eq!(send(&closed).await, StatusCode::OK);
            before += 1;
        }

        cluster.failover(replica);
        let done = Waiting::until_master(cluster, replica);
        seen = during(&closed, None, None, &done).await;
        let cluster = done.join();
        assert_eq!(cluster.master_of(&state), replica, "the replica took over");
        // The rest of the quota, on the promoted replica.
        loop {
            match send(&closed).await {
                StatusCode::OK => after += 1,
                StatusCode::TOO_MANY_REQUESTS => break,
                other => panic!("after the handover: {other}"),
            }
            assert!(after <= QUOTA, "the quota no longer holds");
        }
    });
    eprintln!("before the handover: {before}; during it: {seen:?}; after it: {after}");
    let admitted = before + seen.admitted + after;
    // Had the replica lost the key's state, its quota would have started again from full.
    assert!(
        admitted <= QUOTA,
        "{admitted} admitted against a quota of {QUOTA}: the state was lost"
    );
    // A request given up at the timeout may still have spent its unit: at most one each.
    assert!(
        admitted + seen.unavailable >= QUOTA,
        "{admitted} admitted and {} refused against a quota of {QUOTA}",
        seen.unavailable
    );
    assert!(unavailable(&handle) >= seen.unavailable);
}
