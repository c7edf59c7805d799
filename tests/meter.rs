//! The in-process meter: exact quotas under concurrency, usage per UTC day, bounded memory.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use tower_usage_plans::clock::{Clock, ManualClock};
use tower_usage_plans::meter::{Admission, LocalMeter, Meter, Outcome};
use tower_usage_plans::model::{ApiStage, Quota, QuotaPeriod, StageRef, Throttle, UsagePlan};
use tower_usage_plans::period::Date;
use tower_usage_plans::plan::{Bucket, StagePlan};
use tower_usage_plans::store::MeterSlot;

fn plan(quota: Option<Quota>, throttle: Option<Throttle>) -> StagePlan {
    let mut p = UsagePlan::new("plan", "Plan");
    p.api_stages.push(ApiStage::new("api", "prod"));
    p.quota = quota;
    p.throttle = throttle;
    StagePlan::new(&p, &StageRef::new("api", "prod")).unwrap()
}

fn admit(meter: &LocalMeter<ManualClock>, key: &Arc<str>, plan: &StagePlan) -> Outcome {
    let bucket = if plan.throttle().is_some() {
        Bucket::Plan
    } else {
        Bucket::None
    };
    let req = Admission::new(key, plan, bucket);
    meter.admit_now(&req).unwrap().unwrap().outcome
}

#[test]
fn n_concurrent_requests_against_a_quota_of_l_admit_exactly_min_n_l() {
    for (threads, per_thread, limit) in [(8usize, 500usize, 1000u64), (8, 100, 5000), (4, 250, 1)] {
        let clock = ManualClock::at_unix_secs(1_700_000_000);
        let meter = LocalMeter::with_clock(clock);
        let plan = Arc::new(plan(
            Some(Quota::new(limit, QuotaPeriod::Month, 0).unwrap()),
            None,
        ));
        let key: Arc<str> = "k".into();
        let start = Arc::new(Barrier::new(threads));
        // Half the threads come through one store slot, as the layer does, half without.
        let slot = Arc::new(MeterSlot::new("k"));
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (meter, plan, key, start, slot) = (
                    meter.clone(),
                    plan.clone(),
                    key.clone(),
                    start.clone(),
                    slot.clone(),
                );
                std::thread::spawn(move || {
                    start.wait();
                    (0..per_thread)
                        .filter(|_| {
                            let outcome = if t % 2 == 0 {
                                admit_via(&meter, &slot, &key, &plan)
                            } else {
                                admit(&meter, &key, &plan)
                            };
                            outcome == Outcome::Admitted
                        })
                        .count()
                })
            })
            .collect();
        let admitted: usize = handles.into_iter().map(|t| t.join().unwrap()).sum();
        let n = threads * per_thread;
        assert_eq!(admitted as u64, (n as u64).min(limit), "N={n} L={limit}");
    }
}

#[test]
fn a_plan_is_summed_over_the_stages_that_share_a_meter() {
    let mut p = UsagePlan::new("plan", "Plan");
    p.api_stages.push(ApiStage::new("api", "prod"));
    p.api_stages.push(ApiStage::new("api", "beta"));
    p.quota = Some(Quota::new(3, QuotaPeriod::Day, 0).unwrap());
    let prod = StagePlan::new(&p, &StageRef::new("api", "prod")).unwrap();
    let beta = StagePlan::new(&p, &StageRef::new("api", "beta")).unwrap();
    let meter = LocalMeter::with_clock(ManualClock::at_unix_secs(1_700_000_000));
    let key: Arc<str> = "k".into();
    assert_eq!(admit(&meter, &key, &prod), Outcome::Admitted);
    assert_eq!(admit(&meter, &key, &beta), Outcome::Admitted);
    assert_eq!(admit(&meter, &key, &prod), Outcome::Admitted);
    assert!(matches!(
        admit(&meter, &key, &beta),
        Outcome::QuotaExceeded { .. }
    ));
}

#[tokio::test]
async fn usage_per_utc_day_is_kept_for_90_days() {
    let day0 = Date::new(2024, 1, 1).unwrap();
    let clock = ManualClock::at_unix_secs(day0.unix_secs() + 3600);
    let meter = LocalMeter::with_clock(clock.clone());
    let plan = plan(Some(Quota::new(20, QuotaPeriod::Week, 1).unwrap()), None);
    let key: Arc<str> = "k".into();
    // Day i: i % 3 + 1 requests, for 100 days.
    for i in 0..100u32 {
        for _ in 0..(i % 3 + 1) {
            admit(&meter, &key, &plan);
        }
        clock.advance(Duration::from_secs(86_400));
    }
    let today = Date::from_days(day0.days() + 100);
    let first = Date::from_days(today.days() - 90);
    let usage = meter
        .usage(&plan, "k", first, Date::from_days(today.days() - 1))
        .await
        .unwrap();
    assert_eq!(usage.len(), 90);
    for u in &usage {
        let i = u.date.days() - day0.days();
        assert_eq!(u.used, u64::from(i % 3 + 1), "{}", u.date);
    }
    // [used, remaining]: remaining counts down within each Monday-to-Monday week.
    let monday = usage.iter().find(|u| u.date.weekday() == 1).unwrap();
    assert_eq!(monday.remaining, Some(20 - monday.used));
    let tuesday = usage
        .iter()
        .find(|u| u.date.days() == monday.date.days() + 1)
        .unwrap();
    assert_eq!(tuesday.remaining, Some(20 - monday.used - tuesday.used));
    // Older than the retention: gone.
    let old = meter.usage(&plan, "k", day0, day0).await.unwrap();
    assert_eq!(old[0].used, 0);
    assert!(meter.usage(&plan, "k", today, first).await.is_err());
}

#[test]
fn idle_keys_are_reclaimed() {
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let meter = LocalMeter::builder()
        .clock(clock.clone())
        .retention_days(2)
        .build();
    let plan = plan(None, Some(Throttle::new(1.0, 5).unwrap()));
    for i in 0..1000 {
        let key: Arc<str> = format!("key{i}").into();
        assert_eq!(admit(&meter, &key, &plan), Outcome::Admitted);
    }
    assert_eq!(meter.len(), 1000);
    clock.advance(Duration::from_secs(86_400));
    assert_eq!(meter.sweep(), 0, "seen within the retention");
    clock.advance(Duration::from_secs(2 * 86_400));
    // A new key arriving runs the hourly sweep.
    admit(&meter, &"fresh".into(), &plan);
    assert_eq!(meter.len(), 1);
}

#[test]
fn a_bucket_that_refilled_is_dropped_without_giving_extra_tokens() {
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let meter = LocalMeter::with_clock(clock.clone());
    let plan = plan(None, Some(Throttle::new(0.01, 2).unwrap())); // fills in 200 s
    let key: Arc<str> = "k".into();
    assert_eq!(admit(&meter, &key, &plan), Outcome::Admitted);
    assert_eq!(admit(&meter, &key, &plan), Outcome::Admitted);
    clock.advance(Duration::from_secs(150));
    meter.sweep(); // not yet refilled: the bucket stays
    assert_eq!(admit(&meter, &key, &plan), Outcome::Admitted);
    assert!(matches!(
        admit(&meter, &key, &plan),
        Outcome::Throttled { .. }
    ));
}

/// A quota of 1, used up just before its window ends: refused until the very second it turns.
fn spent_until_the_edge(
    period: QuotaPeriod,
    offset: u32,
    last: (u32, u32, u32),
    next: (u32, u32, u32),
) {
    let plan = plan(Some(Quota::new(1, period, offset).unwrap()), None);
    let key: Arc<str> = "k".into();
    let last_second = Date::new(last.0, last.1, last.2).unwrap().unix_secs() + 86_399;
    let clock = ManualClock::at_unix_secs(last_second);
    let meter = LocalMeter::with_clock(clock.clone());
    assert_eq!(admit(&meter, &key, &plan), Outcome::Admitted);
    assert_eq!(
        admit(&meter, &key, &plan),
        Outcome::QuotaExceeded {
            retry_after_secs: 1
        },
        "{period:?}/{offset} at {last:?} 23:59:59"
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        Date::from_unix_secs(clock.now() / 1_000_000_000),
        Date::new(next.0, next.1, next.2).unwrap()
    );
    assert_eq!(
        admit(&meter, &key, &plan),
        Outcome::Admitted,
        "{period:?}/{offset} at {next:?} 00:00:00"
    );
}

#[test]
fn quota_windows_turn_at_their_edges() {
    spent_until_the_edge(QuotaPeriod::Day, 0, (2024, 5, 1), (2024, 5, 2));
    // 2024-03-09 is a Saturday: offset 0 weeks turn on Sunday.
    spent_until_the_edge(QuotaPeriod::Week, 0, (2024, 3, 9), (2024, 3, 10));
    // Offset 1 weeks turn on Monday 2024-03-11.
    spent_until_the_edge(QuotaPeriod::Week, 1, (2024, 3, 10), (2024, 3, 11));
    spent_until_the_edge(QuotaPeriod::Month, 0, (2023, 2, 28), (2023, 3, 1));
    spent_until_the_edge(QuotaPeriod::Month, 0, (2024, 2, 29), (2024, 3, 1));
    spent_until_the_edge(QuotaPeriod::Month, 0, (2024, 12, 31), (2025, 1, 1));
    spent_until_the_edge(QuotaPeriod::Month, 27, (2024, 2, 27), (2024, 2, 28));
    spent_until_the_edge(QuotaPeriod::Month, 27, (2024, 12, 27), (2024, 12, 28));
}

#[test]
fn a_quota_is_not_reset_inside_its_window() {
    // A WEEK quota (offset 1) spent on Monday stays spent through Sunday night.
    let plan = plan(Some(Quota::new(1, QuotaPeriod::Week, 1).unwrap()), None);
    let key: Arc<str> = "k".into();
    let monday = Date::new(2024, 3, 11).unwrap().unix_secs();
    let clock = ManualClock::at_unix_secs(monday);
    let meter = LocalMeter::with_clock(clock.clone());
    assert_eq!(admit(&meter, &key, &plan), Outcome::Admitted);
    clock.advance(Duration::from_secs(7 * 86_400 - 1));
    assert_eq!(
        admit(&meter, &key, &plan),
        Outcome::QuotaExceeded {
            retry_after_secs: 1
        }
    );
}

/// Admits through a store's meter slot, as the layer does with a `MemoryStore`.
fn admit_via(
    meter: &LocalMeter<ManualClock>,
    slot: &MeterSlot,
    key: &Arc<str>,
    plan: &StagePlan,
) -> Outcome {
    let mut req = Admission::new(key, plan, Bucket::None);
    req.meter_slot = Some(slot);
    meter.admit_now(&req).unwrap().unwrap().outcome
}

#[test]
fn the_meter_slot_is_a_shortcut_never_a_second_count() {
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let quota3 = plan(Some(Quota::new(3, QuotaPeriod::Month, 0).unwrap()), None);
    let key: Arc<str> = "k".into();
    let slot = MeterSlot::new("k");

    // Two meters on one store: each counts its own, through the same slot or not.
    let a = LocalMeter::with_clock(clock.clone());
    let b = LocalMeter::with_clock(clock.clone());
    let mut admitted = (0, 0);
    for _ in 0..5 {
        admitted.0 += usize::from(admit_via(&a, &slot, &key, &quota3) == Outcome::Admitted);
        admitted.1 += usize::from(admit_via(&b, &slot, &key, &quota3) == Outcome::Admitted);
    }
    assert_eq!(admitted, (3, 3));
    // With and without the slot, one record: the count goes on.
    assert!(matches!(
        admit(&a, &key, &quota3),
        Outcome::QuotaExceeded { .. }
    ));
    assert_eq!((a.len(), b.len()), (1, 1));

    // The key moves to another plan: the other plan's record, not this one's.
    let mut p = UsagePlan::new("plan2", "Plan 2");
    p.api_stages.push(ApiStage::new("api", "prod"));
    p.quota = Some(Quota::new(1, QuotaPeriod::Month, 0).unwrap());
    let plan2 = StagePlan::new(&p, &StageRef::new("api", "prod")).unwrap();
    assert_eq!(admit_via(&a, &slot, &key, &plan2), Outcome::Admitted);
    assert!(matches!(
        admit_via(&a, &slot, &key, &plan2),
        Outcome::QuotaExceeded { .. }
    ));
    assert!(matches!(
        admit_via(&a, &slot, &key, &quota3),
        Outcome::QuotaExceeded { .. }
    ));
}

#[test]
fn a_swept_record_behind_a_slot_is_not_used_again() {
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let meter = LocalMeter::builder()
        .clock(clock.clone())
        .retention_days(1)
        .build();
    let daily = plan(Some(Quota::new(2, QuotaPeriod::Day, 0).unwrap()), None);
    let key: Arc<str> = "k".into();
    let slot = MeterSlot::new("k");
    assert_eq!(admit_via(&meter, &slot, &key, &daily), Outcome::Admitted);
    clock.advance(Duration::from_secs(3 * 86_400));
    assert_eq!(meter.sweep(), 1);
    assert!(meter.is_empty());
    // The slot still holds the swept record; the meter makes a new one, in its table.
    assert_eq!(admit_via(&meter, &slot, &key, &daily), Outcome::Admitted);
    assert_eq!(meter.len(), 1);
    assert_eq!(admit(&meter, &key, &daily), Outcome::Admitted);
    assert!(matches!(
        admit_via(&meter, &slot, &key, &daily),
        Outcome::QuotaExceeded { .. }
    ));
}

#[test]
fn without_limits_asked_the_outcome_and_the_counts_are_the_same() {
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let both = plan(
        Some(Quota::new(3, QuotaPeriod::Day, 0).unwrap()),
        Some(Throttle::new(1.0, 2).unwrap()),
    );
    let key: Arc<str> = "k".into();
    let asked = LocalMeter::with_clock(clock.clone());
    let quiet = LocalMeter::with_clock(clock.clone());
    let mut outcomes = (Vec::new(), Vec::new());
    for _ in 0..4 {
        for _ in 0..3 {
            let req = Admission::new(&key, &both, Bucket::Plan);
            let v = asked.admit_now(&req).unwrap().unwrap();
            assert!(v.quota.is_some());
            outcomes.0.push(v.outcome);
            let req = Admission {
                limits: false,
                ..req
            };
            let v = quiet.admit_now(&req).unwrap().unwrap();
            assert_eq!((v.burst, v.quota), (None, None));
            outcomes.1.push(v.outcome);
        }
        clock.advance(Duration::from_secs(1));
    }
    // Throttled and quota refusals come at the same requests, with the same Retry-After.
    assert_eq!(outcomes.0, outcomes.1);
    assert!(outcomes.1.contains(&Outcome::Throttled {
        retry_after_secs: 1
    }));
    assert_eq!(
        outcomes
            .1
            .iter()
            .filter(|o| **o == Outcome::Admitted)
            .count(),
        3
    );
    assert!(matches!(
        outcomes.1.last(),
        Some(Outcome::QuotaExceeded { .. })
    ));
}

#[test]
fn a_slot_naming_another_record_never_counts_for_the_wrong_key() {
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let meter = LocalMeter::with_clock(clock);
    let quota2 = plan(Some(Quota::new(2, QuotaPeriod::Month, 0).unwrap()), None);
    let (k1, k2): (Arc<str>, Arc<str>) = ("k1".into(), "k2".into());
    let (s1, s2) = (MeterSlot::new("k1"), MeterSlot::new("k2"));
    assert_eq!(admit_via(&meter, &s1, &k1, &quota2), Outcome::Admitted);
    assert_eq!(admit_via(&meter, &s2, &k2, &quota2), Outcome::Admitted);
    assert_ne!(s1.get(), 0);
    // k1's slot now names k2's record, then nothing this meter has, then garbage.
    for wrong in [s2.get(), s2.get() + 1000, u64::MAX] {
        s1.set(wrong);
        assert_eq!(meter.len(), 2);
    }
    assert_eq!(admit_via(&meter, &s1, &k1, &quota2), Outcome::Admitted);
    assert!(matches!(
        admit_via(&meter, &s1, &k1, &quota2),
        Outcome::QuotaExceeded { .. }
    ));
    // k2 has used one of its two.
    assert_eq!(admit_via(&meter, &s2, &k2, &quota2), Outcome::Admitted);
    assert_eq!(meter.len(), 2);
}
