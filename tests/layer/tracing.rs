//! What the layer writes through `tracing`.
//!
//! These tests install a scoped subscriber (`tracing::subscriber::with_default`). tracing caches,
//! per call site, whether any subscriber is interested; a test on another thread that reaches a
//! call site while no scoped subscriber exists can cache "never" and hide the event from the
//! scoped one. So they live in their own test binary, and take `SERIAL` so that nothing else in
//! the process reaches the library's call sites while one of them runs.

use crate::common;

use std::sync::{Arc, Mutex};

use std::future::Future;

use common::*;
use http::Method;
use tower_usage_plans::error::{MeterError, StoreError};
use tower_usage_plans::meter::{Charge, Counter, DayUsage, Meter, Receipt, Verdict};
use tower_usage_plans::model::StageRef;
use tower_usage_plans::period::Date;
use tower_usage_plans::store::{KeyGrant, KeyStore};
use tower_usage_plans::UsagePlanLayer;

/// Held by every test in this binary: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes tracing output into a shared buffer.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the layer logs (at TRACE and up, plain text) while `run` runs on a current-thread
/// runtime, one test at a time.
fn logged<F: std::future::Future<Output = ()>>(run: impl FnOnce() -> F) -> String {
    let _serial = serial();
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run());
    });
    let out = buf.0.lock().unwrap().clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn refusals_are_traced_with_ids_and_never_a_value() {
    let out = logged(|| async {
        let app = app();
        // POST /orders: burst 5, then 429.
        for _ in 0..6 {
            send(&app.router, Method::POST, "/orders", Some(FREE)).await;
        }
        send(
            &app.router,
            Method::GET,
            "/items",
            Some("not-a-key-but-long-enough-1234"),
        )
        .await;
        send(&app.router, Method::GET, "/items", None).await;
    });
    assert!(
        !out.contains(FREE),
        "a key's value must never be logged:\n{out}"
    );
    assert!(
        !out.contains("not-a-key-but-long-enough-1234"),
        "nor an unknown value:\n{out}"
    );
    let throttled = out
        .lines()
        .find(|l| l.contains("reason=\"throttled\""))
        .unwrap_or_else(|| panic!("no throttled event:\n{out}"));
    for part in [
        "key_id=\"key111aaa\"",
        "plan_id=\"plan111\"",
        "route=POST /orders",
        "retry_after=1",
    ] {
        assert!(throttled.contains(part), "{part} missing: {throttled}");
    }
    assert!(out.contains("reason=\"missing key\""), "{out}");
    assert!(out.contains("reason=\"unknown or malformed key\""), "{out}");
}

/// Issue 15: a stage that no plan lists starts normally and then refuses every valid key; the
/// builder says so through tracing.
#[test]
fn building_for_a_stage_no_plan_lists_warns() {
    let text = logged(|| async {
        let _layer = UsagePlanLayer::builder(article_store())
            .stage("other", "prod")
            .build_checked()
            .await
            .unwrap();
    });
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("no usage plan lists the stage"), "{text}");
    assert!(text.contains("other"), "{text}");
    assert!(!text.contains(FREE) && !text.contains(PREMIUM));

    // The article's own stage: nothing to warn about.
    let text = logged(|| async {
        let _layer = UsagePlanLayer::builder(article_store())
            .stage(API, STAGE)
            .build_checked()
            .await
            .unwrap();
    });
    assert!(text.is_empty(), "{text}");
}

/// A store whose every lookup fails.
#[derive(Clone)]
struct DownStore;

impl KeyStore for DownStore {
    type Lookup = std::future::Ready<Result<Option<KeyGrant>, StoreError>>;

    fn lookup(&self, _: &str, _: &StageRef) -> Self::Lookup {
        std::future::ready(Err(StoreError::Backend("connection refused".into())))
    }
}

/// A meter whose every admission fails.
#[derive(Clone)]
struct DownMeter;

impl Meter for DownMeter {
    type Admit = std::future::Ready<Result<Verdict, MeterError>>;
    type Adjust = std::future::Ready<Result<(), MeterError>>;

    fn admit(&self, _: &Charge<'_>) -> Self::Admit {
        std::future::ready(Err(MeterError::Backend("timed out".into())))
    }
    fn adjust(&self, _: &Charge<'_>, _: &Receipt, _: i64) -> Self::Adjust {
        std::future::ready(Ok(()))
    }
    fn usage(
        &self,
        _: &Counter<'_>,
        _: Date,
        _: Date,
    ) -> impl Future<Output = Result<Vec<DayUsage>, MeterError>> + Send {
        std::future::ready(Ok(Vec::new()))
    }
    fn set_remaining(
        &self,
        _: &Counter<'_>,
        _: u64,
    ) -> impl Future<Output = Result<(), MeterError>> + Send {
        std::future::ready(Ok(()))
    }
}

/// A failed store or meter is an ERROR event naming what failed, the route and (for the meter)
/// the key's id and plan, never the key's value.
#[test]
fn store_and_meter_failures_are_errors_with_ids_and_never_a_value() {
    let out = logged(|| async {
        let down_store = axum::Router::new()
            .route("/items", axum::routing::get(|| async { "items" }))
            .layer(
                UsagePlanLayer::builder(DownStore)
                    .require_key(Method::GET, "/items")
                    .build()
                    .unwrap(),
            );
        let a = send(&down_store, Method::GET, "/items", Some(FREE)).await;
        assert_eq!(a.status, 503);
        let down_meter = axum::Router::new()
            .route("/items", axum::routing::get(|| async { "items" }))
            .layer(
                UsagePlanLayer::builder(article_store())
                    .require_key(Method::GET, "/items")
                    .meter(DownMeter)
                    .build()
                    .unwrap(),
            );
        let a = send(&down_meter, Method::GET, "/items", Some(FREE)).await;
        assert_eq!(a.status, 503);
    });
    assert!(
        !out.contains(FREE),
        "a key's value must never be logged:\n{out}"
    );
    let line = |what: &str| {
        out.lines()
            .find(|l| l.contains("ERROR") && l.contains(what))
            .unwrap_or_else(|| panic!("no ERROR event for {what}:\n{out}"))
            .to_owned()
    };
    let store = line("key store failed");
    assert!(store.contains("connection refused"), "{store}");
    assert!(store.contains("route=GET /items"), "{store}");
    let meter = line("meter failed");
    for part in ["timed out", "key_id=\"key111aaa\"", "plan_id=\"plan111\""] {
        assert!(meter.contains(part), "{part} missing: {meter}");
    }
}
