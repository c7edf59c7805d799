//! What the layer writes through `tracing`.
//!
//! These tests install a scoped subscriber (`tracing::subscriber::with_default`). tracing caches,
//! per call site, whether any subscriber is interested; a test on another thread that reaches a
//! call site while no scoped subscriber exists can cache "never" and hide the event from the
//! scoped one. So they live in their own test binary, and take `SERIAL` so that nothing else in
//! the process reaches the library's call sites while one of them runs.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use http::Method;
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

#[test]
fn refusals_are_traced_with_ids_and_never_a_value() {
    let _serial = serial();
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
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
    });
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
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
    let _serial = serial();
    let logs = Buf::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let _layer = UsagePlanLayer::builder(article_store())
            .stage("other", "prod")
            .build()
            .unwrap();
    });
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("no usage plan lists the stage"), "{text}");
    assert!(text.contains("other"), "{text}");
    assert!(!text.contains(FREE) && !text.contains(PREMIUM));

    // The article's own stage: nothing to warn about.
    let logs = Buf::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let _layer = UsagePlanLayer::builder(article_store())
            .stage(API, STAGE)
            .build()
            .unwrap();
    });
    assert!(logs.0.lock().unwrap().is_empty());
}
