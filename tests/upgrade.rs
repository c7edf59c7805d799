//! State written by the first version of the meters (commit a2d8042, before the contract's second
//! edition: quota windows kept in days) keeps its quotas and usage: the SQLite file and the
//! Redis hashes in `tests/fixtures/v1/`, made by that code (its README says how), are read by
//! this version with the figures that code read back.
#![cfg(all(feature = "testing", feature = "sqlite"))]

use std::sync::Arc;
use std::time::Duration;

use http::{Request, StatusCode};
use tower::ServiceExt;
use tower_usage_plans::clock::ManualClock;
use tower_usage_plans::meter::{Charge, LocalMeter, Meter, PersistedMeter};
use tower_usage_plans::model::QuotaPeriod;
use tower_usage_plans::period::Date;
use tower_usage_plans::store::SqliteStore;
use tower_usage_plans::testing::meter::plan;
use tower_usage_plans::usage::{get_usage, UsageQuery};
use tower_usage_plans::UsagePlanLayer;

/// 2026-11-06T12:00:00Z, when the fixtures were last read.
const NOON: u64 = 1_793_966_400;
const KEY1: &str = "FixtureKeyOne-0123456789abcdef";

/// What the first version read back, 2026-11-01 to 2026-11-06: (used, remaining) a day.
const FIXKEY1: [(u64, Option<u64>); 6] = [
    (0, Some(1000)),
    (0, Some(1000)),
    (5, Some(995)),
    (0, Some(995)),
    (7, Some(988)),
    (4, Some(984)),
];
const FIXKEY2: [(u64, Option<u64>); 6] = [
    (0, Some(50)),
    (0, Some(50)),
    (0, Some(50)),
    (0, Some(50)),
    (0, Some(50)),
    (3, Some(47)),
];

fn days() -> (Date, Date) {
    (
        Date::new(2026, 11, 1).unwrap(),
        Date::new(2026, 11, 6).unwrap(),
    )
}

#[tokio::test]
async fn a_sqlite_file_of_the_first_version_keeps_its_quotas_and_usage() {
    let dir = std::env::temp_dir().join(format!("tup-upgrade-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.db");
    // A copy: opening migrates the file.
    std::fs::copy("tests/fixtures/v1/state.db", &path).unwrap();
    let clock = ManualClock::at_unix_secs(NOON);
    let store = SqliteStore::open(&path).unwrap();
    let meter = PersistedMeter::new(&store, LocalMeter::with_clock(clock.clone())).unwrap();
    let (start, end) = days();
    for (plan, key, want) in [
        ("fixplan", "fixkey1", FIXKEY1),
        ("fixday", "fixkey2", FIXKEY2),
    ] {
        let mut q = UsageQuery::new(plan, start, end);
        q.key_id = Some(key.into());
        let report = get_usage(&store, &meter, &q).await.unwrap();
        assert_eq!(report.items[key], want, "{plan}/{key}");
    }
    // A request through the layer counts on: 983 left of the month, and the day's usage goes on.
    let layer = UsagePlanLayer::builder(store.clone())
        .stage("abc123def4", "prod")
        .meter(meter.clone())
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route("/items", axum::routing::get(|| async { "items" }))
        .layer(layer);
    let req = Request::get("/items")
        .header("x-api-key", KEY1)
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let rate = res.headers()["ratelimit"].to_str().unwrap();
    assert!(rate.contains("\"month\";r=983"), "{rate}");
    meter.shutdown().unwrap();
    drop((meter, store));

    // Reopened after the upgrade: still there, with today's request.
    let store = SqliteStore::open(&path).unwrap();
    let meter = PersistedMeter::new(&store, LocalMeter::with_clock(clock)).unwrap();
    let mut q = UsageQuery::new("fixplan", start, end);
    q.key_id = Some("fixkey1".into());
    let report = get_usage(&store, &meter, &q).await.unwrap();
    assert_eq!(report.items["fixkey1"][5], (5, Some(983)));
    drop((meter, store));
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "redis")]
#[path = "support/redis.rs"]
mod redis_server;

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_hashes_of_the_first_version_keep_their_quotas_and_usage() {
    use crate::redis_server::RedisServer;
    use tower_usage_plans::meter::RedisMeter;

    let Some(server) = RedisServer::start() else {
        return;
    };
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let text = std::fs::read_to_string("tests/fixtures/v1/redis.txt").unwrap();
    for line in text.lines() {
        let mut parts = line.splitn(3, '\t');
        let (key, field, value) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let _: i64 = redis::cmd("HSET")
            .arg(key)
            .arg(field)
            .arg(value)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    // The fixtures' clock: monotonic 0 at 2026-11-01T00:00Z; now 2026-11-06T12:00Z.
    let clock = ManualClock::at_unix_secs(NOON - 5 * 86_400 - 43_200);
    clock.advance(Duration::from_secs(5 * 86_400 + 43_200));
    let meter = RedisMeter::builder()
        .clock(clock.clone())
        .connect(&server.url())
        .await
        .unwrap();
    let fixplan = plan(
        "fixplan",
        Some((1000, QuotaPeriod::Month, 0)),
        Some((100.0, 100)),
    );
    let fixday = plan("fixday", Some((50, QuotaPeriod::Day, 0)), None);
    let (start, end) = days();
    for (p, key, want) in [
        (&fixplan, "fixkey1", FIXKEY1),
        (&fixday, "fixkey2", FIXKEY2),
    ] {
        let key: Arc<str> = key.into();
        let got: Vec<(u64, Option<u64>)> = meter
            .usage(&p.counter(&key), start, end)
            .await
            .unwrap()
            .iter()
            .map(|d| (d.used, d.remaining))
            .collect();
        assert_eq!(got, want, "{key}");
    }
    // One more request: 983 left of the month, 46 of the day.
    for (p, key, left) in [(&fixplan, "fixkey1", 983), (&fixday, "fixkey2", 46)] {
        let key: Arc<str> = key.into();
        let v = meter
            .admit(&Charge::new(&[p.counter(&key)], 1).unwrap())
            .await
            .unwrap();
        assert_eq!(v.quota.unwrap().remaining, left, "{key}");
    }
}
