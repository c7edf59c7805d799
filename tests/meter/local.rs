//! The in-process meter: the conformance suite every meter passes, and what only `LocalMeter`
//! does (its sweep and retention).
#![cfg(feature = "testing")]

use std::sync::Arc;
use std::time::Duration;

use tower_usage_plans::clock::ManualClock;
use tower_usage_plans::meter::policy::{BucketLimits, Limits, QuotaLimits};
use tower_usage_plans::meter::{Charge, Counter, LocalMeter, Meter, Outcome};
use tower_usage_plans::model::QuotaPeriod;
use tower_usage_plans::period::{Calendar, Date};
use tower_usage_plans::testing::meter::{plan, TestPlan};

async fn admit(meter: &LocalMeter<ManualClock>, key: &Arc<str>, plan: &TestPlan) -> Outcome {
    let counters = [plan.counter(key)];
    meter
        .admit(&Charge::new(&counters, 1).unwrap())
        .await
        .unwrap()
        .outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_meter_conforms() {
    tower_usage_plans::testing::meter::meter(LocalMeter::with_clock).await;
}

#[tokio::test]
async fn idle_keys_are_reclaimed_by_the_sweep_not_by_requests() {
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let meter = LocalMeter::builder()
        .clock(clock.clone())
        .retention_days(2)
        .build();
    let plan = plan("p", None, Some((1.0, 5)));
    for i in 0..1000 {
        let key: Arc<str> = format!("key{i}").into();
        assert_eq!(admit(&meter, &key, &plan).await, Outcome::Admitted);
    }
    assert_eq!(meter.len(), 1000);
    clock.advance(Duration::from_secs(86_400));
    assert_eq!(meter.sweep(), 0, "seen within the retention");
    clock.advance(Duration::from_secs(2 * 86_400));
    // A new key arriving does not sweep: housekeeping is the caller's.
    admit(&meter, &"fresh".into(), &plan).await;
    assert_eq!(meter.len(), 1001);
    assert_eq!(meter.sweep(), 1000);
    assert_eq!(meter.len(), 1);
}

/// Fault 2 of the engine re-lay: a sweep forgot a quota window that was still open.
#[tokio::test]
async fn the_sweep_never_drops_an_open_quota_window() {
    let clock = ManualClock::at_unix_secs(Date::new(2024, 3, 1).unwrap().unix_secs() + 3600);
    let meter = LocalMeter::builder()
        .clock(clock.clone())
        .retention_days(1)
        .build();
    let monthly = plan("p", Some((3, QuotaPeriod::Month, 0)), None);
    let key: Arc<str> = "k".into();
    for _ in 0..3 {
        assert_eq!(admit(&meter, &key, &monthly).await, Outcome::Admitted);
    }
    clock.advance(Duration::from_secs(3 * 86_400));
    assert_eq!(meter.sweep(), 0, "the month's window is open");
    assert!(matches!(
        admit(&meter, &key, &monthly).await,
        Outcome::QuotaExceeded { .. }
    ));
    // Once the window has ended and the key is idle past the retention, it goes.
    clock.set_unix_secs(Date::new(2024, 4, 3).unwrap().unix_secs());
    assert_eq!(meter.sweep(), 1);
    assert!(meter.is_empty());
}

#[tokio::test]
async fn the_sweep_keeps_usage_inside_the_retention_only() {
    let day0 = Date::new(2024, 1, 1).unwrap();
    let clock = ManualClock::at_unix_secs(day0.unix_secs() + 3600);
    let meter = LocalMeter::builder()
        .clock(clock.clone())
        .retention_days(10)
        .build();
    let p = plan("p", None, Some((100.0, 100)));
    let key: Arc<str> = "k".into();
    for _ in 0..30 {
        admit(&meter, &key, &p).await;
        clock.advance(Duration::from_secs(86_400));
    }
    meter.sweep();
    let today = Date::from_days(day0.days() + 30);
    let usage = meter.usage(&p.counter(&key), day0, today).await.unwrap();
    let kept: Vec<u32> = usage
        .iter()
        .filter(|u| u.used > 0)
        .map(|u| today.days() - u.date.days())
        .collect();
    assert_eq!(kept, (1..=10).rev().collect::<Vec<_>>());
}

#[tokio::test]
async fn a_bucket_that_refilled_is_dropped_without_giving_extra_tokens() {
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let meter = LocalMeter::with_clock(clock.clone());
    let plan = plan("p", None, Some((0.01, 2))); // fills in 200 s
    let key: Arc<str> = "k".into();
    assert_eq!(admit(&meter, &key, &plan).await, Outcome::Admitted);
    assert_eq!(admit(&meter, &key, &plan).await, Outcome::Admitted);
    clock.advance(Duration::from_secs(150));
    meter.sweep(); // not yet refilled: the bucket stays
    assert_eq!(admit(&meter, &key, &plan).await, Outcome::Admitted);
    assert!(matches!(
        admit(&meter, &key, &plan).await,
        Outcome::Throttled { .. }
    ));
}

/// FNV-1a over the id's bytes and a 0xff terminator, low bit set: the 64-bit id hash the meter
/// used to tell records apart before the engine re-lay.
fn old_id_hash(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes().chain(std::iter::once(0xff)) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h | 1
}

/// Fault 5 of the engine re-lay: records were told apart by 64-bit hashes of the ids, and an
/// import can bring any id. These two key ids (found by a collision search) share that hash: each
/// must still get its own quota.
#[tokio::test]
async fn two_ids_with_the_same_64_bit_hash_have_their_own_quotas() {
    let (a, b): (Arc<str>, Arc<str>) = ("434297cd37220dda".into(), "7aed6936098d2ca6".into());
    assert_eq!(old_id_hash(&a), old_id_hash(&b), "the ids collide");
    let meter = LocalMeter::with_clock(ManualClock::at_unix_secs(1_700_000_000));
    let p = plan("p", Some((2, QuotaPeriod::Month, 0)), None);
    for key in [&a, &b] {
        for _ in 0..2 {
            assert_eq!(admit(&meter, key, &p).await, Outcome::Admitted, "key {key}");
        }
        assert!(matches!(
            admit(&meter, key, &p).await,
            Outcome::QuotaExceeded { .. }
        ));
    }
    assert_eq!(meter.len(), 2);
}

/// Ids that share a prefix, or that split differently between plan and key, are other records.
#[tokio::test]
async fn records_are_told_apart_by_their_ids() {
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let meter = LocalMeter::with_clock(clock);
    let one = Some((1, QuotaPeriod::Month, 0));
    let (pa, pab) = (plan("a", one, None), plan("ab", one, None));
    let (kbc, kc): (Arc<str>, Arc<str>) = ("bc".into(), "c".into());
    assert_eq!(admit(&meter, &kbc, &pa).await, Outcome::Admitted);
    assert_eq!(admit(&meter, &kc, &pab).await, Outcome::Admitted);
    assert_eq!(meter.len(), 2);
    for (k, p) in [(&kbc, &pa), (&kc, &pab)] {
        assert!(matches!(
            admit(&meter, k, p).await,
            Outcome::QuotaExceeded { .. }
        ));
    }
}

#[tokio::test]
async fn a_key_has_a_bucket_per_method_kept_across_plan_rebuilds() {
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let meter = LocalMeter::with_clock(clock);
    let (plan, key): (Arc<str>, Arc<str>) = ("p".into(), "k".into());
    let names: [Arc<str>; 3] = ["/a/GET".into(), "/b/GET".into(), "plan".into()];
    let limits = |burst: u32, quota: u64| {
        Limits::new(
            Some(BucketLimits::new(1_000_000_000, burst)),
            Some(QuotaLimits::new(quota, Calendar::aws(QuotaPeriod::Day, 0))),
        )
    };
    // `/a/GET` has a bucket of 2, `/b/GET` of 3, the plan's of 1.
    let bursts = [2, 3, 1];
    let mut admitted = Vec::new();
    for i in [0, 1, 2, 0, 1, 2, 0, 1] {
        let counters = [Counter::new(
            &plan,
            &key,
            Some(&names[i]),
            limits(bursts[i], 100),
        )];
        let v = meter
            .admit(&Charge::new(&counters, 1).unwrap())
            .await
            .unwrap();
        admitted.push(v.outcome == Outcome::Admitted);
    }
    assert_eq!(admitted, [true, true, true, true, true, false, false, true]);
    // The plan is changed (another quota) and rebuilt, its names in new allocations: the
    // buckets keep their state.
    let b: Arc<str> = String::from("/b/GET").into();
    let counters = [Counter::new(&plan, &key, Some(&b), limits(3, 200))];
    assert!(matches!(
        meter
            .admit(&Charge::new(&counters, 1).unwrap())
            .await
            .unwrap()
            .outcome,
        Outcome::Throttled { .. }
    ));
}

/// The background sweeper (feature `tokio`) forgets idle keys on its own, and ends once the
/// meter is dropped.
#[cfg(feature = "tokio")]
#[tokio::test(start_paused = true)]
async fn the_background_sweeper_forgets_idle_keys_and_ends_with_the_meter() {
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let meter = LocalMeter::builder()
        .clock(clock.clone())
        .retention_days(1)
        .build();
    let p = plan("p", None, Some((1.0, 5)));
    for i in 0..10 {
        admit(&meter, &format!("key{i}").into(), &p).await;
    }
    let sweeper = meter.spawn_sweeper(Duration::from_secs(60));
    clock.advance(Duration::from_secs(3 * 86_400));
    // Tokio's paused clock moves only when told to: a second at a time, while the sweep (on a
    // blocking thread) gets the real time it needs, up to ten seconds.
    let waited = std::time::Instant::now();
    while !meter.is_empty() && waited.elapsed() < Duration::from_secs(10) {
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    assert!(meter.is_empty(), "{} key states left", meter.len());
    drop(meter);
    tokio::time::advance(Duration::from_secs(61)).await;
    tokio::time::timeout(Duration::from_secs(5), sweeper)
        .await
        .expect("the sweeper ends once the meter is dropped")
        .unwrap();
}
