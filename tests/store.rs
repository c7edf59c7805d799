//! Stores: one conformance suite every `KeyStore` passes, stores that must be awaited, stores that
//! fail, and configurations that load whole or not at all.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use http::{Method, StatusCode};
use tower_usage_plans::clock::ManualClock;
use tower_usage_plans::error::{MeterError, StoreError};
use tower_usage_plans::meter::{Admission, DayUsage, LocalMeter, Meter, Verdict};
use tower_usage_plans::model::StageRef;
use tower_usage_plans::period::Date;
use tower_usage_plans::plan::StagePlan;
use tower_usage_plans::store::{KeyGrant, KeyStore};
use tower_usage_plans::{FailMode, MemoryStore};

/// A store that must always be awaited (like a database), and can be made to fail.
#[derive(Clone)]
struct RemoteStore {
    inner: MemoryStore,
    down: Arc<AtomicBool>,
}

impl KeyStore for RemoteStore {
    fn lookup(
        &self,
        value: &str,
        stage: &StageRef,
    ) -> impl Future<Output = Result<Option<KeyGrant>, StoreError>> + Send {
        let (inner, down) = (self.inner.clone(), self.down.clone());
        let (value, stage) = (value.to_owned(), stage.clone());
        async move {
            tokio::task::yield_now().await;
            if down.load(Ordering::SeqCst) {
                return Err(StoreError::Backend("connection refused".into()));
            }
            inner.lookup(&value, &stage).await
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
    fn admit(
        &self,
        req: &Admission<'_>,
    ) -> impl Future<Output = Result<Verdict, MeterError>> + Send {
        let answer = if self.down.load(Ordering::SeqCst) {
            Err(MeterError::Backend("timeout".into()))
        } else {
            self.inner.admit_now(req).unwrap()
        };
        async move {
            tokio::task::yield_now().await;
            answer
        }
    }

    fn usage(
        &self,
        plan: &StagePlan,
        key_id: &str,
        start: Date,
        end: Date,
    ) -> impl Future<Output = Result<Vec<DayUsage>, MeterError>> + Send {
        self.inner.usage(plan, key_id, start, end)
    }
}

/// What every `KeyStore` must answer for the article's keys and plans.
async fn conformance<S: KeyStore>(store: S) {
    let prod = StageRef::new(API, STAGE);
    let grant = store
        .lookup(FREE, &prod)
        .await
        .unwrap()
        .expect("the free key");
    assert_eq!(&*grant.key_id, "key111aaa");
    assert!(grant.enabled);
    let plan = grant.plan.expect("FreePlan on prod");
    assert_eq!(&**plan.id(), "plan111");
    assert_eq!(plan.methods().len(), 2);
    let grant = store.lookup(PREMIUM, &prod).await.unwrap().unwrap();
    assert_eq!(&**grant.plan.unwrap().id(), "plan222");
    // No plan on another stage; the key is still known.
    let dev = StageRef::new(API, "dev");
    let grant = store.lookup(FREE, &dev).await.unwrap().unwrap();
    assert!(grant.plan.is_none());
    assert!(store
        .lookup(&"x".repeat(40), &prod)
        .await
        .unwrap()
        .is_none());
    let one_off = format!("{}!", &FREE[..FREE.len() - 1]);
    assert!(store.lookup(&one_off, &prod).await.unwrap().is_none());
    // Any stage takes the key's plan.
    let any = store.lookup(FREE, &StageRef::any()).await.unwrap().unwrap();
    assert_eq!(&**any.plan.unwrap().id(), "plan111");
    // Where the store answers at once, it answers the same.
    for value in [FREE, PREMIUM, "nobody-nobody-nobody-nobody"] {
        let awaited = store
            .lookup(value, &prod)
            .await
            .unwrap()
            .map(|g| g.key_id.to_string());
        if let Ok(now) = store.lookup_now(value, &prod, |g| g.map(|g| g.key_id.to_string())) {
            assert_eq!(now, awaited);
        }
    }
}

#[tokio::test]
async fn memory_store_conforms() {
    conformance(article_store()).await;
    conformance(Arc::new(article_store())).await;
}

#[tokio::test]
async fn a_store_that_must_be_awaited_conforms_and_serves_the_layer() {
    let down = Arc::new(AtomicBool::new(false));
    let remote = RemoteStore {
        inner: article_store(),
        down: down.clone(),
    };
    conformance(remote.clone()).await;

    let clock = ManualClock::at_unix_secs(noon());
    let layer = tower_usage_plans::UsagePlanLayer::builder(remote)
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
    assert_eq!(store.api_keys().len(), 2);
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

#[test]
fn management_errors_say_what_to_fix() {
    let store = article_store();
    let err = store
        .create_usage_plan_key("nope", "key111aaa")
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
        .unwrap_err();
    assert!(err.to_string().contains("offset"), "{err}");
    assert_eq!(
        store.usage_plan("plan111").unwrap().quota.unwrap().offset,
        0,
        "nothing changed"
    );
    store.delete_api_key("key111aaa").unwrap();
    let gone = store.lookup_now(FREE, &StageRef::any(), |g| g.is_none());
    assert!(matches!(gone, Ok(true)));
    assert!(store.usage_plan_keys("plan111").unwrap().is_empty());
}
