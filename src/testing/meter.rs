//! The conformance suite for [`Meter`]s: what the layer and AWS's semantics rely on.
//!
//! [`meter`] runs every check on meters that `make` builds on a [`ManualClock`] (one new meter
//! per check, so that checks never share state). Each check panics, naming itself, when the
//! meter gets it wrong. The meter must be `Clone` (clones sharing one state, as the layer's
//! services do), and the suite must run on a multi-threaded tokio runtime
//! (`#[tokio::test(flavor = "multi_thread")]`): the concurrency check spawns tasks, and refuses
//! to run where they could not race.
//!
//! | check | what it asserts |
//! |---|---|
//! | exact quota | N concurrent requests against a quota of L admit exactly min(N, L) |
//! | throttled spends no quota | a request refused by the bucket counts nothing |
//! | quota refusal spends no token | a request refused by the quota takes no token |
//! | window edges | DAY, WEEK and MONTH quotas used up at 23:59:59 open at 00:00:00 UTC, never before |
//! | cost | a request of cost n takes n tokens and counts n (quota and usage) |
//! | daily usage | `usage` gives each UTC day's count, and what the quota had left that day |
//! | retention | usage of 89 days ago is still reported |
//! | wall clock back | a wall clock stepped back an hour neither throttles a key nor reopens its used quota window |
//! | set_remaining | sets what is left until the window ends |
//! | all or none | a charge against two counters refused by either charges neither; N concurrent charges from two subjects against a shared counter of L admit exactly min(N, L) |
//! | buckets by name | two buckets of one counter (a plan's and a method's) are apart; the same name is the same bucket |
//! | adjust | a refund gives back at most the charge, in its window and on its day (after midnight too); a late charge may pass the limit and the next is refused |
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! use tower_usage_plans::LocalMeter;
//!
//! tower_usage_plans::testing::meter::meter(LocalMeter::with_clock).await;
//! # }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::ManualClock;
use crate::meter::policy::{BucketLimits, Limits, QuotaLimits};
use crate::meter::{Charge, Counter, Meter, Outcome, Verdict};
use crate::model::QuotaPeriod;
use crate::period::{Calendar, Date};

/// 2024-03-10 (a Sunday) at 12:00:00 UTC.
fn noon() -> u64 {
    Date::new(2024, 3, 10).map_or(0, Date::unix_secs) + 12 * 3600
}

/// A plan's id and limits, and the name of its bucket: what a check charges against.
#[derive(Clone, Debug)]
pub struct TestPlan {
    /// The plan's id.
    pub id: Arc<str>,
    /// Its bucket's name (`plan`).
    pub bucket: Arc<str>,
    /// Its limits.
    pub limits: Limits,
}

impl TestPlan {
    /// The counter of `subject` on this plan.
    pub fn counter<'a>(&'a self, subject: &'a Arc<str>) -> Counter<'a> {
        Counter::new(&self.id, subject, Some(&self.bucket), self.limits)
    }
}

/// A plan `id` with a quota of `limit` per `period` (AWS's calendar, `offset`) and a throttle
/// of `rate` requests a second, `burst` at most.
pub fn plan(
    id: &str,
    quota: Option<(u64, QuotaPeriod, u32)>,
    throttle: Option<(f64, u32)>,
) -> TestPlan {
    let bucket = throttle.map(|(rate, burst)| {
        let t = crate::model::Throttle::new(rate, burst).expect("a valid throttle");
        BucketLimits::from_throttle(&t)
    });
    let quota =
        quota.map(|(limit, period, offset)| QuotaLimits::new(limit, Calendar::aws(period, offset)));
    TestPlan {
        id: id.into(),
        bucket: "plan".into(),
        limits: Limits::new(bucket, quota),
    }
}

fn quota(limit: u64, period: QuotaPeriod, offset: u32) -> Option<(u64, QuotaPeriod, u32)> {
    Some((limit, period, offset))
}

fn throttle(rate: f64, burst: u32) -> Option<(f64, u32)> {
    Some((rate, burst))
}

async fn charge<M: Meter>(meter: &M, counters: &[Counter<'_>], cost: u32) -> Verdict {
    let charge = Charge::new(counters, cost).expect("a valid charge");
    meter.admit(&charge).await.expect("the meter answers")
}

async fn admit<M: Meter>(meter: &M, key: &Arc<str>, plan: &TestPlan, cost: u32) -> Verdict {
    charge(meter, &[plan.counter(key)], cost).await
}

async fn outcome<M: Meter>(meter: &M, key: &Arc<str>, plan: &TestPlan) -> Outcome {
    admit(meter, key, plan, 1).await.outcome
}

async fn usage<M: Meter>(
    meter: &M,
    plan: &TestPlan,
    key: &str,
    start: Date,
    end: Date,
) -> Result<Vec<crate::meter::DayUsage>, crate::error::MeterError> {
    let key: Arc<str> = key.into();
    meter.usage(&plan.counter(&key), start, end).await
}

async fn set_left<M: Meter>(
    meter: &M,
    plan: &TestPlan,
    key: &str,
    left: u64,
) -> Result<(), crate::error::MeterError> {
    let key: Arc<str> = key.into();
    meter.set_remaining(&plan.counter(&key), left).await
}

/// Runs every check of the suite; see the [module docs](self).
pub async fn meter<M, F>(make: F)
where
    M: Meter + Clone,
    F: Fn(ManualClock) -> M,
{
    assert_eq!(
        tokio::runtime::Handle::current().runtime_flavor(),
        tokio::runtime::RuntimeFlavor::MultiThread,
        "run the meter conformance suite on a multi-threaded tokio runtime \
         (#[tokio::test(flavor = \"multi_thread\")]): its concurrency check needs tasks that race"
    );
    exact_quota_under_concurrency(&make).await;
    throttled_spends_no_quota(&make).await;
    quota_refusal_spends_no_token(&make).await;
    window_edges(&make).await;
    cost(&make).await;
    daily_usage_and_retention(&make).await;
    wall_clock_back(&make).await;
    set_remaining(&make).await;
    all_or_none(&make).await;
    buckets_by_name(&make).await;
    adjust(&make).await;
}

/// N concurrent requests against a quota of L admit exactly min(N, L).
pub async fn exact_quota_under_concurrency<M, F>(make: &F)
where
    M: Meter + Clone,
    F: Fn(ManualClock) -> M,
{
    for (tasks, per_task, limit) in [(8, 50, 100), (8, 10, 1000), (4, 25, 1), (16, 20, 319)] {
        let meter = make(ManualClock::at_unix_secs(noon()));
        let plan = Arc::new(plan("p", quota(limit, QuotaPeriod::Month, 0), None));
        let key: Arc<str> = "k".into();
        let admitted = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let (meter, plan, key, admitted) =
                    (meter.clone(), plan.clone(), key.clone(), admitted.clone());
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        if outcome(&meter, &key, &plan).await == Outcome::Admitted {
                            admitted.fetch_add(1, Ordering::SeqCst);
                        }
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.expect("a task of the exact-quota check panicked");
        }
        let n = tasks * per_task;
        assert_eq!(
            admitted.load(Ordering::SeqCst),
            n.min(limit),
            "exact quota: N={n} L={limit}"
        );
    }
}

/// A request refused by the bucket counts nothing against the quota or the day's usage.
pub async fn throttled_spends_no_quota<M, F>(make: &F)
where
    M: Meter + Clone,
    F: Fn(ManualClock) -> M,
{
    let clock = ManualClock::at_unix_secs(noon());
    let meter = make(clock.clone());
    let plan = plan("p", quota(5, QuotaPeriod::Day, 0), throttle(1.0, 2));
    let key: Arc<str> = "k".into();
    for _ in 0..2 {
        assert_eq!(outcome(&meter, &key, &plan).await, Outcome::Admitted);
    }
    for _ in 0..10 {
        assert_eq!(
            outcome(&meter, &key, &plan).await,
            Outcome::Throttled {
                retry_after_secs: 1
            },
            "throttled spends no quota: the bucket of 2 is empty"
        );
    }
    clock.advance(Duration::from_secs(10));
    let v = admit(&meter, &key, &plan, 1).await;
    assert_eq!(v.outcome, Outcome::Admitted);
    assert_eq!(
        v.quota.map(|q| q.remaining),
        Some(2),
        "throttled spends no quota: 3 of 5 used"
    );
}

/// A request refused by the quota takes no token.
pub async fn quota_refusal_spends_no_token<M, F>(make: &F)
where
    M: Meter + Clone,
    F: Fn(ManualClock) -> M,
{
    let clock = ManualClock::at_unix_secs(noon());
    let meter = make(clock.clone());
    let daily = plan("p", quota(2, QuotaPeriod::Day, 0), throttle(0.001, 3));
    let key: Arc<str> = "k".into();
    for _ in 0..2 {
        assert_eq!(outcome(&meter, &key, &daily).await, Outcome::Admitted);
    }
    for _ in 0..5 {
        assert!(
            matches!(
                outcome(&meter, &key, &daily).await,
                Outcome::QuotaExceeded { .. }
            ),
            "quota refusal spends no token: the quota of 2 is used"
        );
    }
    // One token is left of the bucket of 3 (it refills one per 1,000 s): the quota refusals
    // took none. The same plan id with a larger quota (the plan was changed) shows it.
    let bigger = plan("p", quota(100, QuotaPeriod::Day, 0), throttle(0.001, 3));
    let v = admit(&meter, &key, &bigger, 1).await;
    assert_eq!(v.outcome, Outcome::Admitted);
    assert_eq!(
        v.burst.map(|b| b.remaining),
        Some(0),
        "quota refusals took no token"
    );
    let _ = clock;
    // With a bucket of 2 and a quota of 1: the same.
    let meter = make(ManualClock::at_unix_secs(noon()));
    let tight = plan("p", quota(1, QuotaPeriod::Day, 0), throttle(0.001, 2));
    assert_eq!(outcome(&meter, &key, &tight).await, Outcome::Admitted);
    for _ in 0..3 {
        assert!(matches!(
            outcome(&meter, &key, &tight).await,
            Outcome::QuotaExceeded { .. }
        ));
    }
    let other = plan("p", quota(100, QuotaPeriod::Day, 0), throttle(0.001, 2));
    // The same plan id with a larger quota (the plan was changed): one token is left.
    let v = admit(&meter, &key, &other, 1).await;
    assert_eq!(
        v.outcome,
        Outcome::Admitted,
        "one token left after quota refusals"
    );
    assert!(matches!(
        outcome(&meter, &key, &other).await,
        Outcome::Throttled { .. }
    ));
}

/// A quota of 1 used up at 23:59:59 of the window's last day opens at 00:00:00, never before.
async fn spent_until_the_edge<M, F>(make: &F, period: QuotaPeriod, offset: u32, last: Date)
where
    M: Meter + Clone,
    F: Fn(ManualClock) -> M,
{
    let p = plan("p", quota(1, period, offset), None);
    let key: Arc<str> = "k".into();
    let clock = ManualClock::at_unix_secs(last.unix_secs() + 86_399);
    let meter = make(clock.clone());
    assert_eq!(outcome(&meter, &key, &p).await, Outcome::Admitted);
    assert_eq!(
        outcome(&meter, &key, &p).await,
        Outcome::QuotaExceeded {
            retry_after_secs: 1
        },
        "window edges: {period:?}/{offset} at {last} 23:59:59"
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        outcome(&meter, &key, &p).await,
        Outcome::Admitted,
        "window edges: {period:?}/{offset} after {last}, at 00:00:00"
    );
}

/// DAY, WEEK and MONTH windows turn at 00:00:00 UTC of their first day.
pub async fn window_edges<M, F>(make: &F)
where
    M: Meter + Clone,
    F: Fn(ManualClock) -> M,
{
    let d = |y, m, d| Date::new(y, m, d).expect("a date");
    spent_until_the_edge(make, QuotaPeriod::Day, 0, d(2024, 5, 1)).await;
    // 2024-03-09 is a Saturday: offset 0 weeks turn on Sunday; offset 1 on Monday.
    spent_until_the_edge(make, QuotaPeriod::Week, 0, d(2024, 3, 9)).await;
    spent_until_the_edge(make, QuotaPeriod::Week, 1, d(2024, 3, 10)).await;
    spent_until_the_edge(make, QuotaPeriod::Month, 0, d(2024, 2, 29)).await;
    spent_until_the_edge(make, QuotaPeriod::Month, 0, d(2024, 12, 31)).await;
    spent_until_the_edge(make, QuotaPeriod::Month, 27, d(2024, 2, 27)).await;

    // Inside the window it is not reset: a WEEK quota (offset 1) spent on Monday stays spent
    // until the next Monday.
    let p = plan("p", quota(1, QuotaPeriod::Week, 1), None);
    let key: Arc<str> = "k".into();
    let clock = ManualClock::at_unix_secs(d(2024, 3, 11).unix_secs());
    let meter = make(clock.clone());
    assert_eq!(outcome(&meter, &key, &p).await, Outcome::Admitted);
    clock.advance(Duration::from_secs(7 * 86_400 - 1));
    assert_eq!(
        outcome(&meter, &key, &p).await,
        Outcome::QuotaExceeded {
            retry_after_secs: 1
        },
        "window edges: a week's quota is not reset inside the week"
    );
}

/// A request of cost n takes n tokens and counts n against the quota and the day's usage.
pub async fn cost<M, F>(make: &F)
where
    M: Meter + Clone,
    F: Fn(ManualClock) -> M,
{
    let clock = ManualClock::at_unix_secs(noon());
    let meter = make(clock.clone());
    let p = plan("p", quota(10, QuotaPeriod::Day, 0), throttle(1.0, 5));
    let key: Arc<str> = "k".into();
    let v = admit(&meter, &key, &p, 4).await;
    assert_eq!(v.outcome, Outcome::Admitted);
    assert_eq!(v.burst.map(|b| b.remaining), Some(1), "cost: 4 of 5 tokens");
    assert_eq!(
        v.quota.map(|q| q.remaining),
        Some(6),
        "cost: 4 of 10 counted"
    );
    // Two tokens are not there: refused, and nothing spent.
    let v = admit(&meter, &key, &p, 2).await;
    assert!(
        matches!(v.outcome, Outcome::Throttled { .. }),
        "cost: 2 > 1 token"
    );
    // A cost above the burst never passes.
    clock.advance(Duration::from_secs(60));
    let v = admit(&meter, &key, &p, 6).await;
    assert!(
        matches!(v.outcome, Outcome::Throttled { .. }),
        "cost above the burst"
    );
    // Five tokens again; 6 of the quota left: a cost of 5 passes, then 1 is left of the quota.
    let v = admit(&meter, &key, &p, 5).await;
    assert_eq!(v.outcome, Outcome::Admitted);
    assert_eq!(v.quota.map(|q| q.remaining), Some(1));
    clock.advance(Duration::from_secs(60));
    let v = admit(&meter, &key, &p, 2).await;
    assert!(
        matches!(v.outcome, Outcome::QuotaExceeded { .. }),
        "cost: 2 > 1 left"
    );
    let today = Date::from_unix_secs(noon());
    let days = usage(&meter, &p, "k", today, today).await.expect("usage");
    assert_eq!(days[0].used, 9, "cost: the day's usage counts costs");
}

/// `usage` gives each UTC day's count and what the quota had left at the end of it; usage of 89
/// days ago is still there.
pub async fn daily_usage_and_retention<M, F>(make: &F)
where
    M: Meter + Clone,
    F: Fn(ManualClock) -> M,
{
    let day0 = Date::new(2024, 1, 1).expect("a date");
    let clock = ManualClock::at_unix_secs(day0.unix_secs() + 3600);
    let meter = make(clock.clone());
    // 2024-01-01 was a Monday: WEEK offset 1 runs Monday to Monday.
    let p = plan("p", quota(20, QuotaPeriod::Week, 1), None);
    let key: Arc<str> = "k".into();
    for i in 0..90u32 {
        for _ in 0..(i % 3 + 1) {
            assert_eq!(outcome(&meter, &key, &p).await, Outcome::Admitted);
        }
        clock.advance(Duration::from_secs(86_400));
    }
    let last = Date::from_days(day0.days() + 89);
    let days = usage(&meter, &p, "k", day0, last).await.expect("usage");
    assert_eq!(days.len(), 90, "daily usage: one entry per day");
    for (i, u) in days.iter().enumerate() {
        assert_eq!(u.date, Date::from_days(day0.days() + i as u32));
        assert_eq!(u.used, i as u64 % 3 + 1, "daily usage on {}", u.date);
    }
    // Remaining counts down within each Monday-to-Monday week.
    assert_eq!(days[0].remaining, Some(20 - 1));
    assert_eq!(days[1].remaining, Some(20 - 1 - 2));
    assert_eq!(days[7].remaining, Some(20 - days[7].used));
    // A day with no use: 0, and the quota's remaining of that day.
    let next = Date::from_days(last.days() + 1);
    let u = usage(&meter, &p, "k", next, next).await.expect("usage");
    assert_eq!(u[0].used, 0);
    // A reversed range is an error.
    assert!(
        usage(&meter, &p, "k", last, day0).await.is_err(),
        "usage: a reversed range is refused"
    );
    // A plan without a quota has no remaining.
    let unlimited = plan("u", None, throttle(100.0, 100));
    assert_eq!(outcome(&meter, &key, &unlimited).await, Outcome::Admitted);
    let today = Date::from_days(day0.days() + 90);
    let u = usage(&meter, &unlimited, "k", today, today)
        .await
        .expect("usage");
    assert_eq!((u[0].used, u[0].remaining), (1, None));
}

/// A wall clock stepped back neither throttles a key (buckets run on the monotonic clock) nor
/// reopens a quota window already used.
pub async fn wall_clock_back<M, F>(make: &F)
where
    M: Meter + Clone,
    F: Fn(ManualClock) -> M,
{
    let clock = ManualClock::at_unix_secs(noon());
    let meter = make(clock.clone());
    let p = plan("p", quota(1000, QuotaPeriod::Day, 0), throttle(5.0, 10));
    let key: Arc<str> = "k".into();
    assert_eq!(outcome(&meter, &key, &p).await, Outcome::Admitted);
    clock.set_unix_secs(noon() - 3600);
    assert_eq!(
        outcome(&meter, &key, &p).await,
        Outcome::Admitted,
        "wall clock back: an hour back must not throttle"
    );
    // A DAY quota used up at 00:00:30; the wall clock steps back to the day before: still used.
    let midnight = Date::from_unix_secs(noon()).succ().unix_secs();
    let clock = ManualClock::at_unix_secs(midnight + 30);
    let meter = make(clock.clone());
    let p = plan("p", quota(2, QuotaPeriod::Day, 0), None);
    for _ in 0..2 {
        assert_eq!(outcome(&meter, &key, &p).await, Outcome::Admitted);
    }
    clock.set_unix_secs(midnight - 60);
    assert!(
        matches!(
            outcome(&meter, &key, &p).await,
            Outcome::QuotaExceeded { .. }
        ),
        "wall clock back: the used window must not reopen"
    );
}

/// `set_remaining` sets what is left of the current window, until it ends.
pub async fn set_remaining<M, F>(make: &F)
where
    M: Meter + Clone,
    F: Fn(ManualClock) -> M,
{
    let clock = ManualClock::at_unix_secs(noon());
    let meter = make(clock.clone());
    let p = plan("p", quota(3, QuotaPeriod::Day, 0), None);
    let key: Arc<str> = "k".into();
    for _ in 0..3 {
        assert_eq!(outcome(&meter, &key, &p).await, Outcome::Admitted);
    }
    set_left(&meter, &p, "k", 5).await.expect("set_remaining");
    let v = admit(&meter, &key, &p, 1).await;
    assert_eq!(v.outcome, Outcome::Admitted, "set_remaining: 5 granted");
    assert_eq!(v.quota.map(|q| q.remaining), Some(4));
    set_left(&meter, &p, "k", 0).await.expect("set_remaining");
    assert!(matches!(
        outcome(&meter, &key, &p).await,
        Outcome::QuotaExceeded { .. }
    ));
    clock.advance(Duration::from_secs(86_400));
    let v = admit(&meter, &key, &p, 1).await;
    assert_eq!(
        v.quota.map(|q| q.remaining),
        Some(2),
        "set_remaining lasts until the window ends"
    );
    // A plan without a quota: an error.
    let unlimited = plan("u", None, throttle(1.0, 1));
    assert!(set_left(&meter, &unlimited, "k", 1).await.is_err());
}

/// A charge against two counters (a key's bucket and quota, and a quota shared by two keys)
/// lands all or none: refused by either, neither is charged; and N concurrent charges from two
/// keys against a shared quota of L admit exactly min(N, L).
pub async fn all_or_none<M, F>(make: &F)
where
    M: Meter + Clone,
    F: Fn(ManualClock) -> M,
{
    let clock = ManualClock::at_unix_secs(noon());
    let meter = make(clock.clone());
    let key_plan = plan("p", quota(100, QuotaPeriod::Day, 0), throttle(0.001, 3));
    let shared = TestPlan {
        bucket: "".into(),
        ..plan("p", quota(2, QuotaPeriod::Day, 0), None)
    };
    let (a, b, group): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "group".into());
    // The keys' counters are kept with the group's (one partition of a partitioned meter).
    let both = |k| {
        [
            key_plan.counter(k).with_group(&group),
            shared.counter(&group),
        ]
    };
    assert_eq!(
        charge(&meter, &both(&a), 1).await.outcome,
        Outcome::Admitted
    );
    assert_eq!(
        charge(&meter, &both(&b), 1).await.outcome,
        Outcome::Admitted
    );
    // The shared quota of 2 is used: a's charge is refused by it (the second counter) ...
    let v = charge(&meter, &both(&a), 1).await;
    assert!(
        matches!(v.outcome, Outcome::QuotaExceeded { .. }),
        "all or none: {v:?}"
    );
    assert_eq!(
        v.refused_by,
        Some(1),
        "all or none: the shared quota refused"
    );
    // ... and charged neither a's bucket (2 of 3 tokens left) nor a's quota (99 left).
    let own = |k| [key_plan.counter(k).with_group(&group)];
    let v = charge(&meter, &own(&a), 1).await;
    assert_eq!(v.outcome, Outcome::Admitted);
    assert_eq!(
        v.burst.map(|b| b.remaining),
        Some(1),
        "all or none: no token taken"
    );
    assert_eq!(
        v.quota.map(|q| q.remaining),
        Some(98),
        "all or none: no count"
    );
    // A new day (the buckets full again, the shared quota's window new): c's bucket is
    // emptied alone, then c's charge with the shared quota is refused by the bucket (the first
    // counter) and the shared quota is not charged: a gets exactly its two.
    clock.advance(Duration::from_secs(86_400));
    let c: Arc<str> = "c".into();
    assert_eq!(charge(&meter, &own(&c), 3).await.outcome, Outcome::Admitted);
    let v = charge(&meter, &both(&c), 1).await;
    assert!(
        matches!(v.outcome, Outcome::Throttled { .. }),
        "all or none: {v:?}"
    );
    assert_eq!(
        v.refused_by,
        Some(0),
        "all or none: the key's bucket refused"
    );
    let mut day2 = Vec::new();
    for _ in 0..3 {
        day2.push(charge(&meter, &both(&a), 1).await.outcome);
    }
    assert_eq!(
        day2.iter().filter(|o| **o == Outcome::Admitted).count(),
        2,
        "all or none: a throttled charge left the shared quota alone: {day2:?}"
    );

    // Concurrency: two keys, each with its own quota of 1000, sharing one of L.
    for (tasks, per_task, limit) in [(8, 25, 60), (4, 10, 1)] {
        let meter = make(ManualClock::at_unix_secs(noon()));
        let key_plan = Arc::new(plan("p", quota(1000, QuotaPeriod::Month, 0), None));
        let shared = Arc::new(TestPlan {
            bucket: "".into(),
            ..plan("p", quota(limit, QuotaPeriod::Month, 0), None)
        });
        let admitted = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let (meter, key_plan, shared, admitted) = (
                    meter.clone(),
                    key_plan.clone(),
                    shared.clone(),
                    admitted.clone(),
                );
                tokio::spawn(async move {
                    let key: Arc<str> = if t % 2 == 0 { "a".into() } else { "b".into() };
                    let group: Arc<str> = "group".into();
                    for _ in 0..per_task {
                        let counters = [
                            key_plan.counter(&key).with_group(&group),
                            shared.counter(&group),
                        ];
                        if charge(&meter, &counters, 1).await.outcome == Outcome::Admitted {
                            admitted.fetch_add(1, Ordering::SeqCst);
                        }
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.expect("a task of the all-or-none check panicked");
        }
        let n = tasks * per_task;
        assert_eq!(
            admitted.load(Ordering::SeqCst),
            n.min(limit),
            "all or none under concurrency: N={n} L={limit}"
        );
        // What the keys' own quotas counted is what the shared one admitted.
        let day = Date::from_unix_secs(noon());
        let used: u64 = {
            let mut sum = 0;
            for k in ["a", "b"] {
                let (k, group): (Arc<str>, Arc<str>) = (k.into(), "group".into());
                let counter = key_plan.counter(&k).with_group(&group);
                sum += meter.usage(&counter, day, day).await.expect("usage")[0].used;
            }
            sum
        };
        assert_eq!(used, n.min(limit), "all or none: the keys' counts agree");
    }
}

/// Buckets are told apart by name within one counter, and found again by it.
pub async fn buckets_by_name<M, F>(make: &F)
where
    M: Meter + Clone,
    F: Fn(ManualClock) -> M,
{
    let meter = make(ManualClock::at_unix_secs(noon()));
    let p = plan("p", quota(100, QuotaPeriod::Day, 0), throttle(0.001, 1));
    let items_get: Arc<str> = "/items/GET".into();
    let method = Counter::new(&p.id, &p.id, Some(&items_get), p.limits);
    let key: Arc<str> = "k".into();
    let own = p.counter(&key);
    let by_method = Counter {
        subject: &key,
        ..method
    };
    assert_eq!(charge(&meter, &[own], 1).await.outcome, Outcome::Admitted);
    assert_eq!(
        charge(&meter, &[by_method], 1).await.outcome,
        Outcome::Admitted,
        "buckets by name: the method's own bucket"
    );
    assert!(matches!(
        charge(&meter, &[own], 1).await.outcome,
        Outcome::Throttled { .. }
    ));
    // The same name in another allocation is the same bucket.
    let again: Arc<str> = String::from("/items/GET").into();
    let same = Counter {
        bucket: Some(&again),
        ..by_method
    };
    assert!(
        matches!(
            charge(&meter, &[same], 1).await.outcome,
            Outcome::Throttled { .. }
        ),
        "buckets by name: the name, not the allocation"
    );
    // Both buckets counted against the one quota: 2 of 100.
    let day = Date::from_unix_secs(noon());
    assert_eq!(
        usage(&meter, &p, "k", day, day).await.expect("usage")[0].used,
        2
    );
}

/// A correction lands in the window and on the day of its charge, gives back at most what was
/// charged, never goes below zero, and may take the quota past its limit.
pub async fn adjust<M, F>(make: &F)
where
    M: Meter + Clone,
    F: Fn(ManualClock) -> M,
{
    let clock = ManualClock::at_unix_secs(noon());
    let meter = make(clock.clone());
    let p = plan("p", quota(5, QuotaPeriod::Day, 0), throttle(100.0, 100));
    let key: Arc<str> = "k".into();
    let counters = [p.counter(&key)];
    let c = Charge::new(&counters, 3).expect("a charge");
    let v = meter.admit(&c).await.expect("admit");
    let receipt = v.receipt.expect("adjust: an admitted charge has a receipt");
    assert_eq!(receipt.cost, 3);
    // A refund of more than was charged gives back 3.
    meter.adjust(&c, &receipt, -10).await.expect("adjust");
    let today = Date::from_unix_secs(noon());
    let u = usage(&meter, &p, "k", today, today).await.expect("usage");
    assert_eq!(
        (u[0].used, u[0].remaining),
        (0, Some(5)),
        "adjust: refunded, not below zero"
    );
    // Charged 2 more after the response than the 1 admitted: 3 counted.
    let one = Charge::new(&counters, 1).expect("a charge");
    let v = meter.admit(&one).await.expect("admit");
    meter
        .adjust(&one, &v.receipt.expect("receipt"), 2)
        .await
        .expect("adjust");
    let u = usage(&meter, &p, "k", today, today).await.expect("usage");
    assert_eq!(u[0].used, 3, "adjust: charged more");
    // Past the limit: 3 + 2 admitted, then a late correction of +4; the next is refused.
    let v = meter
        .admit(&Charge::new(&counters, 2).expect("a charge"))
        .await
        .expect("admit");
    meter
        .adjust(&one, &v.receipt.expect("receipt"), 4)
        .await
        .expect("adjust");
    assert!(
        matches!(
            outcome(&meter, &key, &p).await,
            Outcome::QuotaExceeded { .. }
        ),
        "adjust: a correction past the limit refuses the next"
    );
    // A refund after midnight: yesterday's usage and window change, today's do not.
    let clock2 = ManualClock::at_unix_secs(noon());
    let meter = make(clock2.clone());
    let v = meter.admit(&c).await.expect("admit");
    let receipt = v.receipt.expect("receipt");
    clock2.advance(Duration::from_secs(86_400));
    assert_eq!(outcome(&meter, &key, &p).await, Outcome::Admitted);
    meter.adjust(&c, &receipt, -2).await.expect("adjust");
    let tomorrow = today.succ();
    let u = usage(&meter, &p, "k", today, tomorrow)
        .await
        .expect("usage");
    assert_eq!(u[0].used, 1, "adjust: lands on the charge's day");
    assert_eq!(
        (u[1].used, u[1].remaining),
        (1, Some(4)),
        "adjust: today's count and window untouched"
    );
}
