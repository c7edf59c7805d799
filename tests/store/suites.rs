//! Stores: the conformance suite every `KeyStore` passes, stores that must be awaited, stores
//! that fail, a meter that changes the store while it admits, and configurations that load whole
//! or not at all.

use crate::common;
use crate::metrics_support;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use http::{Method, StatusCode};
use tower_usage_plans::clock::ManualClock;
use tower_usage_plans::error::{MeterError, StoreError};
use tower_usage_plans::meter::{Charge, Counter, DayUsage, LocalMeter, Meter, Receipt, Verdict};
use tower_usage_plans::model::StageRef;
use tower_usage_plans::patch::PatchOperation;
use tower_usage_plans::period::Date;
use tower_usage_plans::store::Management;
use tower_usage_plans::store::{KeyGrant, KeyStore};
use tower_usage_plans::testing::store::{self as suite, Change};
use tower_usage_plans::{FailMode, MemoryStore, UsagePlanLayer};

/// A store that must always be awaited (like a database), and can be made to fail.
#[derive(Clone)]
struct RemoteStore {
    inner: MemoryStore,
    down: Arc<AtomicBool>,
}

impl RemoteStore {
    fn new(inner: MemoryStore) -> Self {
        Self {
            inner,
            down: Arc::new(AtomicBool::new(false)),
        }
    }
}

type BoxFuture<T, E> = std::pin::Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl KeyStore for RemoteStore {
    type Lookup = BoxFuture<Option<KeyGrant>, StoreError>;

    fn lookup(&self, value: &str, stage: &StageRef) -> Self::Lookup {
        let (inner, down) = (self.inner.clone(), self.down.clone());
        let (value, stage) = (value.to_owned(), stage.clone());
        Box::pin(async move {
            tokio::task::yield_now().await;
            if down.load(Ordering::SeqCst) {
                return Err(StoreError::Backend("connection refused".into()));
            }
            inner.lookup(&value, &stage).await
        })
    }

    fn version(&self) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        let inner = self.inner.clone();
        async move {
            tokio::task::yield_now().await;
            inner.version().await
        }
    }
}

/// A meter that must always be awaited (like Redis), and can be made to fail.
#[derive(Clone)]
struct RemoteMeter {
    inner: LocalMeter<ManualClock>,
    down: Arc<AtomicBool>,
}

impl Meter for RemoteMeter {
    type Admit = BoxFuture<Verdict, MeterError>;
    type Adjust = BoxFuture<(), MeterError>;

    fn admit(&self, charge: &Charge<'_>) -> Self::Admit {
        let down = self.down.load(Ordering::SeqCst);
        // The in-process meter decides now; the answer is handed over after a wait.
        let verdict = if down {
            Err(MeterError::Backend("timeout".into()))
        } else {
            Ok(self.inner.admit(charge))
        };
        Box::pin(async move {
            tokio::task::yield_now().await;
            verdict?.await
        })
    }

    fn adjust(&self, charge: &Charge<'_>, receipt: &Receipt, delta: i64) -> Self::Adjust {
        let done = self.inner.adjust(charge, receipt, delta);
        Box::pin(done)
    }

    fn usage(
        &self,
        counter: &Counter<'_>,
        start: Date,
        end: Date,
    ) -> impl Future<Output = Result<Vec<DayUsage>, MeterError>> + Send {
        self.inner.usage(counter, start, end)
    }

    fn set_remaining(
        &self,
        counter: &Counter<'_>,
        remaining: u64,
    ) -> impl Future<Output = Result<(), MeterError>> + Send {
        self.inner.set_remaining(counter, remaining)
    }
}

/// Makes each change the conformance suite asks for on `store`.
fn apply(store: &MemoryStore, change: Change) -> std::future::Ready<()> {
    match change {
        Change::Disable { key_id } => {
            let off = PatchOperation::replace("/enabled", "false");
            now(store.update_api_key(&key_id, &[off])).unwrap();
        }
        Change::Unlink { plan_id, key_id } => {
            now(store.delete_usage_plan_key(&plan_id, &key_id)).unwrap();
        }
        Change::SetRateLimit {
            plan_id,
            rate_limit,
        } => {
            let op = PatchOperation::replace("/throttle/rateLimit", rate_limit.to_string());
            now(store.update_usage_plan(&plan_id, &[op])).unwrap();
        }
        Change::Delete { key_id } => now(store.delete_api_key(&key_id)).unwrap(),
        other => panic!("a change this test does not know: {other:?}"),
    }
    std::future::ready(())
}

fn fixture_store() -> MemoryStore {
    MemoryStore::from_config(suite::fixture()).unwrap()
}

#[tokio::test]
async fn memory_store_conforms() {
    suite::key_store(&fixture_store()).await;
    suite::key_store(&Arc::new(fixture_store())).await;
    let store = fixture_store();
    suite::key_store_changes(&store, |c| apply(&store, c)).await;
    // Loaded from JSON, it answers the same.
    #[cfg(feature = "json")]
    suite::key_store(&MemoryStore::from_json(&suite::fixture().to_json()).unwrap()).await;
}

#[tokio::test]
async fn a_store_that_must_be_awaited_conforms_and_serves_the_layer() {
    suite::key_store(&RemoteStore::new(fixture_store())).await;
    let remote = RemoteStore::new(fixture_store());
    suite::key_store_changes(&remote, |c| apply(&remote.inner, c)).await;

    let remote = RemoteStore::new(article_store());
    let down = remote.down.clone();
    let clock = ManualClock::at_unix_secs(noon());
    let layer = UsagePlanLayer::builder(remote)
        .stage(API, STAGE)
        .meter(LocalMeter::with_clock(clock))
        .build()
        .unwrap();
    let router = axum::Router::new()
        .route("/orders", axum::routing::post(|| async { "order" }))
        .layer(layer);
    let (ok, throttled) = burst(&router, Method::POST, "/orders", FREE, 7).await;
    assert_eq!((ok, throttled), (5, 2));
    assert_eq!(
        send(&router, Method::POST, "/orders", None).await.status,
        StatusCode::FORBIDDEN
    );

    // The store fails: closed by default, 503 and never the handler.
    down.store(true, Ordering::SeqCst);
    let a = send(&router, Method::POST, "/orders", Some(PREMIUM)).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.body, r#"{"message":"Service Unavailable"}"#);
}

/// A meter that disables a key, through the store, when its quota runs out: user code calling
/// the store while the layer decides a request.
struct DisablingMeter {
    inner: LocalMeter<ManualClock>,
    store: MemoryStore,
    disabled: Arc<AtomicUsize>,
}

impl Meter for DisablingMeter {
    type Admit = std::future::Ready<Result<Verdict, MeterError>>;
    type Adjust = std::future::Ready<Result<(), MeterError>>;

    fn admit(&self, charge: &Charge<'_>) -> Self::Admit {
        let verdict = self.inner.admit(charge).into_inner();
        if verdict
            .as_ref()
            .is_ok_and(|v| v.quota.is_some_and(|q| q.remaining == 0))
        {
            let off = PatchOperation::replace("/enabled", "false");
            let key_id = &**charge.counters[0].subject;
            now(self.store.update_api_key(key_id, &[off])).unwrap();
            self.disabled.fetch_add(1, Ordering::SeqCst);
        }
        std::future::ready(verdict)
    }

    fn adjust(&self, charge: &Charge<'_>, receipt: &Receipt, delta: i64) -> Self::Adjust {
        self.inner.adjust(charge, receipt, delta)
    }

    fn usage(
        &self,
        counter: &Counter<'_>,
        start: Date,
        end: Date,
    ) -> impl Future<Output = Result<Vec<DayUsage>, MeterError>> + Send {
        self.inner.usage(counter, start, end)
    }

    fn set_remaining(
        &self,
        counter: &Counter<'_>,
        remaining: u64,
    ) -> impl Future<Output = Result<(), MeterError>> + Send {
        self.inner.set_remaining(counter, remaining)
    }
}

/// Fault 1 of issue 8: a meter that called `update_api_key` while admitting deadlocked, as the
/// whole decision ran inside the store's shard lock.
#[tokio::test]
async fn a_meter_may_change_the_store_while_it_admits() {
    let store = article_store();
    store
        .update_usage_plan("plan111", &[PatchOperation::replace("/quota/limit", "2")])
        .await
        .unwrap();
    let disabled = Arc::new(AtomicUsize::new(0));
    let meter = DisablingMeter {
        inner: LocalMeter::with_clock(ManualClock::at_unix_secs(noon())),
        store: store.clone(),
        disabled: disabled.clone(),
    };
    let layer = UsagePlanLayer::builder(store.clone())
        .stage(API, STAGE)
        .meter(meter)
        .build()
        .unwrap();
    let router = axum::Router::new()
        .route("/items", axum::routing::get(|| async { "items" }))
        .layer(layer);
    let statuses = tokio::time::timeout(Duration::from_secs(5), async {
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(
                send(&router, Method::GET, "/items", Some(FREE))
                    .await
                    .status,
            );
        }
        statuses
    })
    .await
    .expect("a meter calling the store deadlocked the request");
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::OK, StatusCode::FORBIDDEN]
    );
    assert_eq!(disabled.load(Ordering::SeqCst), 1);
    assert!(!store.get_api_key("key111aaa", false).await.unwrap().enabled);
    // The other key is untouched.
    let a = send(&router, Method::GET, "/items", Some(PREMIUM)).await;
    assert_eq!(a.status, StatusCode::OK);
}

/// Lookups on many threads while keys, links and plans change: every lookup answers, none waits
/// on a change for long, and the last change is what the next lookup sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lookups_run_while_the_store_changes() {
    let store = article_store();
    let stop = Arc::new(AtomicBool::new(false));
    // The writer starts once every reader has made its first lookup, so that each runs while
    // the store changes.
    let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (store, stop, started) = (store.clone(), stop.clone(), started.clone());
            tokio::spawn(async move {
                let prod = StageRef::new(API, STAGE);
                let mut n = 0u64;
                while n == 0 || !stop.load(Ordering::Relaxed) {
                    let g = store.lookup(PREMIUM, &prod).await.unwrap().unwrap();
                    assert_eq!(&*g.key_id, "key222bbb");
                    n += 1;
                    if n == 1 {
                        started.fetch_add(1, Ordering::SeqCst);
                    }
                    if n.is_multiple_of(64) {
                        tokio::task::yield_now().await;
                    }
                }
                n
            })
        })
        .collect();
    let writer = {
        let (store, started) = (store.clone(), started.clone());
        tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while started.load(Ordering::SeqCst) < 3 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the readers never started"
                );
                std::thread::yield_now();
            }
            for i in 0..200 {
                let rate = format!("{}", 1 + i % 50);
                let op = PatchOperation::replace("/throttle/rateLimit", rate);
                now(store.update_usage_plan("plan222", &[op])).unwrap();
                let on = PatchOperation::replace("/enabled", (i % 2 == 0).to_string());
                now(store.update_api_key("key222bbb", &[on])).unwrap();
                now(store.delete_usage_plan_key("plan111", "key111aaa")).unwrap();
                now(store.create_usage_plan_key("plan111", "key111aaa")).unwrap();
            }
        })
    };
    tokio::time::timeout(Duration::from_secs(20), writer)
        .await
        .expect("changes stalled")
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.await.unwrap() > 0);
    }
    let g = store
        .lookup(PREMIUM, &StageRef::new(API, STAGE))
        .await
        .unwrap()
        .unwrap();
    assert!(!g.enabled, "the last change disabled the key");
    assert_eq!(g.plan_id(), Some("plan222"));
}

#[tokio::test]
async fn a_failing_store_can_fail_open() {
    let down = Arc::new(AtomicBool::new(true));
    let remote = RemoteStore {
        inner: article_store(),
        down,
    };
    let layer = tower_usage_plans::UsagePlanLayer::builder(remote)
        .on_store_error(FailMode::Open)
        .build()
        .unwrap();
    let router = axum::Router::new()
        .route("/items", axum::routing::get(|| async { "items" }))
        .layer(layer);
    let a = send(&router, Method::GET, "/items", Some(FREE)).await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "items"));
    // Failing open still refuses what needs no store: a missing key.
    assert_eq!(
        send(&router, Method::GET, "/items", None).await.status,
        StatusCode::FORBIDDEN
    );
}

/// A failed store is counted as `unavailable` whichever way the layer answers: refused (503) or
/// admitted unmetered.
#[cfg(feature = "metrics")]
#[test]
fn a_failed_store_is_counted_unavailable_whether_refused_or_admitted() {
    let handle = metrics_support::with_metrics(async {
        for (mode, want) in [
            (FailMode::Closed, StatusCode::SERVICE_UNAVAILABLE),
            (FailMode::Open, StatusCode::OK),
        ] {
            let remote = RemoteStore {
                inner: article_store(),
                down: Arc::new(AtomicBool::new(true)),
            };
            let layer = tower_usage_plans::UsagePlanLayer::builder(remote)
                .on_store_error(mode)
                .build()
                .unwrap();
            let router = axum::Router::new()
                .route("/items", axum::routing::get(|| async { "items" }))
                .layer(layer);
            let a = send(&router, Method::GET, "/items", Some(FREE)).await;
            assert_eq!(a.status, want, "{mode:?}");
        }
    });
    let text = handle.render();
    let count = |outcome: &str| -> u64 {
        text.lines()
            .filter(|l| {
                l.starts_with("usage_plans_requests_total{")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert_eq!(count("unavailable"), 2, "{text}");
    assert_eq!(count("admitted"), 0, "{text}");
}

#[tokio::test]
async fn a_meter_that_must_be_awaited_and_one_that_fails() {
    let clock = ManualClock::at_unix_secs(noon());
    let down = Arc::new(AtomicBool::new(false));
    let meter = RemoteMeter {
        inner: LocalMeter::with_clock(clock.clone()),
        down: down.clone(),
    };
    for mode in [FailMode::Closed, FailMode::Open] {
        down.store(false, Ordering::SeqCst);
        let layer = builder(article_store(), &clock)
            .meter(meter.clone())
            .on_meter_error(mode)
            .build()
            .unwrap();
        let router = axum::Router::new()
            .route("/orders", axum::routing::post(|| async { "order" }))
            .layer(layer);
        if mode == FailMode::Closed {
            let (ok, throttled) = burst(&router, Method::POST, "/orders", FREE, 6).await;
            assert_eq!((ok, throttled), (5, 1));
        }
        down.store(true, Ordering::SeqCst);
        let a = send(&router, Method::POST, "/orders", Some(PREMIUM)).await;
        let want = if mode == FailMode::Closed {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        assert_eq!(a.status, want, "{mode:?}");
    }
}

#[cfg(feature = "json")]
#[test]
fn a_bad_configuration_loads_nothing() {
    use tower_usage_plans::config::Config;
    let store = article_store();
    let mut bad = store.to_config();
    bad.usage_plan_keys
        .get_mut("plan111")
        .unwrap()
        .push("no-such-key".into());
    let err = store.replace_all(bad).unwrap_err();
    assert!(err.to_string().contains("no-such-key"), "{err}");
    assert_eq!(store.to_config().api_keys.len(), 2);
    let json = store.to_config().to_json();
    let nan = json.replacen("\"rateLimit\": 5.0", "\"rateLimit\": \"NaN\"", 1);
    assert_ne!(json, nan, "the fixture has the free plan's rate");
    let err = MemoryStore::from_json(&nan).unwrap_err().to_string();
    assert!(
        err.contains("plan111") && err.contains("throttle.rateLimit"),
        "{err}"
    );
    assert!(!err.contains(FREE));
    // A good one replaces everything at once, and round-trips.
    let reloaded = MemoryStore::from_json(&json).unwrap();
    assert_eq!(reloaded.to_config(), store.to_config());
    assert_eq!(Config::from_json(&json).unwrap(), store.to_config());
}

#[tokio::test]
async fn management_errors_say_what_to_fix() {
    let store = article_store();
    let err = store
        .create_usage_plan_key("nope", "key111aaa")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "no usage plan with id \"nope\"");
    let err = store
        .put_api_key(tower_usage_plans::model::ApiKey::new(
            "copy",
            "dup",
            tower_usage_plans::model::ApiKeyValue::new(FREE).unwrap(),
        ))
        .unwrap_err();
    assert!(err.to_string().contains("already has this value"), "{err}");
    assert!(!err.to_string().contains(FREE));
    let err = store
        .update_usage_plan(
            "plan111",
            &[tower_usage_plans::patch::PatchOperation::replace(
                "/quota/offset",
                "9",
            )],
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("offset"), "{err}");
    assert_eq!(
        store
            .get_usage_plan("plan111")
            .await
            .unwrap()
            .quota
            .unwrap()
            .offset,
        0,
        "nothing changed"
    );
    store.delete_api_key("key111aaa").await.unwrap();
    let gone = store.lookup(FREE, &StageRef::any()).await.unwrap();
    assert!(gone.is_none());
    let keys = store
        .get_usage_plan_keys("plan111", &Default::default())
        .await;
    assert!(keys.unwrap().items.is_empty());
}
