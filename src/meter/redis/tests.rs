//! The differential test: the Lua policy, run by a real redis-server, against `policy::decide`,
//! with the same requests at the same times; every verdict and every state compared.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::clock::{ManualClock, Now};
use crate::meter::policy::{BucketLimits, QuotaLimits};
use crate::model::QuotaPeriod;
use crate::period::Calendar;
#[path = "../../../tests/support/redis.rs"]
mod redis_server;
use redis_server::RedisServer;

/// One of `xs`, at random.
fn pick<T: Copy>(rng: &mut fastrand::Rng, xs: &[T]) -> T {
    xs[rng.usize(..xs.len())]
}

/// A random counter's limits: a bucket (sometimes none, sometimes one that never admits) and a
/// quota (sometimes none) of AWS's calendars.
fn random_limits(rng: &mut fastrand::Rng) -> Limits {
    let bucket = (rng.u64(..4) != 0).then(|| {
        let t = crate::model::Throttle {
            rate_limit: pick(&mut *rng, &[0.01, 0.5, 1.0, 3.0, 7.3, 100.0, 1000.0, 1e6]),
            // 0 blocks; the model refuses it, the policy must still answer.
            burst_limit: pick(&mut *rng, &[0, 1, 2, 3, 5, 10, 40]),
        };
        BucketLimits::from_throttle(&t)
    });
    let quota = (rng.u64(..4) != 0).then(|| {
        let period = pick(
            &mut *rng,
            &[QuotaPeriod::Day, QuotaPeriod::Week, QuotaPeriod::Month],
        );
        let offset = match period {
            QuotaPeriod::Day => 0,
            QuotaPeriod::Week => rng.u64(..7) as u32,
            QuotaPeriod::Month => rng.u64(..28) as u32,
        };
        QuotaLimits::new(1 + rng.u64(..60), Calendar::aws(period, offset))
    });
    Limits::new(bucket, quota)
}

/// The reference: the policy's state of each subject, one arrival time per bucket name, the
/// days kept.
#[derive(Default)]
struct Reference {
    recs: HashMap<String, Rec>,
}

#[derive(Clone, Default)]
struct Rec {
    state: State,
    tats: HashMap<String, u64>,
    history: Vec<(u32, u64)>,
}

impl Reference {
    fn admit(&mut self, counters: &[Counter<'_>], now: Now, cost: u32, retention: u32) -> Verdict {
        let mut states: Vec<State> = counters
            .iter()
            .map(|c| {
                let rec = self.recs.get(&**c.subject).cloned().unwrap_or_default();
                let tat = c
                    .bucket_name()
                    .and_then(|b| rec.tats.get(b).copied())
                    .unwrap_or(0);
                State { tat, ..rec.state }
            })
            .collect();
        let limits: Vec<Limits> = counters.iter().map(|c| c.limits).collect();
        let verdict = policy::decide(&mut states, &limits, now, cost);
        for (c, s) in counters.iter().zip(states) {
            let rec = self.recs.entry(c.subject.to_string()).or_default();
            if s.day != rec.state.day && rec.state.day_used > 0 {
                rec.history.push((rec.state.day, rec.state.day_used));
                let oldest = s.day.saturating_sub(retention);
                rec.history.retain(|(d, _)| *d >= oldest);
            }
            if let Some(b) = c.bucket_name() {
                rec.tats.insert(b.to_owned(), s.tat);
            }
            rec.state = State { tat: 0, ..s };
        }
        verdict
    }

    fn adjust(&mut self, counters: &[Counter<'_>], receipt: &Receipt, delta: i64) {
        for (i, c) in counters.iter().enumerate() {
            let rec = self.recs.entry(c.subject.to_string()).or_default();
            let (next, earlier) = policy::adjust(
                &rec.state,
                receipt.window_ends[i],
                receipt.day.days(),
                receipt.cost,
                delta,
            );
            rec.state = next;
            let day = receipt.day.days();
            if earlier != 0 {
                match rec.history.iter_mut().find(|(d, _)| *d == day) {
                    Some(entry) => entry.1 = policy::apply(entry.1, earlier),
                    None if earlier > 0 && day < rec.state.day => {
                        rec.history.push((day, earlier as u64));
                        rec.history.sort_unstable();
                    }
                    None => {}
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lua_policy_gives_the_local_policys_verdicts() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let seed = std::env::var("TUP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    let mut rng = fastrand::Rng::with_seed(seed);
    let plan: Arc<str> = "p".into();
    let (key, group): (Arc<str>, Arc<str>) = ("k".into(), "group".into());
    let names: [Arc<str>; 2] = ["plan".into(), "/items/GET".into()];
    let mut decided = 0;
    for scenario in 0..60 {
        let retention = pick(&mut rng, &[1, 3, 90]);
        let start = Date::new(2024, 1, 1).unwrap().unix_secs() + rng.u64(..400 * 86_400);
        let clock = ManualClock::at_unix_nanos(start * NANOS_PER_SEC + rng.u64(..NANOS_PER_SEC));
        let meter = RedisMeter::builder()
            .retention_days(retention)
            .prefix(&format!("diff{scenario}:"))
            .clock(clock.clone())
            .connect(&server.url())
            .await
            .unwrap();
        let mut limits = random_limits(&mut rng);
        let mut shared = Limits::new(None, random_limits(&mut rng).quota);
        let mut reference = Reference::default();
        let mut last: Option<(Vec<Counter<'_>>, Receipt)> = None;
        for step in 0..250 {
            match rng.u64(..10) {
                0 => {}
                1..=4 => clock.advance(Duration::from_nanos(rng.u64(..NANOS_PER_SEC))),
                5 | 6 => clock.advance(Duration::from_secs(rng.u64(..10))),
                7 => clock.advance(Duration::from_secs(rng.u64(..3 * 3600))),
                8 => clock.advance(Duration::from_secs(rng.u64(..3 * 86_400))),
                _ => {
                    // The wall clock steps back; the monotonic clock stands still.
                    let back = rng.u64(..2 * 86_400) * NANOS_PER_SEC;
                    clock.set_unix_nanos(clock.unix_nanos().saturating_sub(back));
                }
            }
            if rng.u64(..40) == 0 {
                // The plan changes (same id): new limits over the same state.
                limits = random_limits(&mut rng);
                shared = Limits::new(None, random_limits(&mut rng).quota);
            }
            let now = Now {
                monotonic_nanos: clock.monotonic_nanos(),
                unix_nanos: clock.unix_nanos(),
            };
            let own = Counter::new(&plan, &key, Some(&names[rng.u64(..2) as usize]), limits);
            let ctx = format!("seed {seed} scenario {scenario} step {step} limits {limits:?}");
            if rng.u64(..25) == 0 {
                let left = rng.u64(..80);
                let res = meter.set_remaining(&own, left).await;
                match limits.quota {
                    Some(q) => {
                        res.unwrap();
                        let rec = reference.recs.entry("k".into()).or_default();
                        rec.state = policy::set_remaining(
                            &rec.state,
                            &q,
                            now.unix_nanos / NANOS_PER_SEC,
                            left,
                        );
                    }
                    None => assert!(res.is_err(), "{ctx}"),
                }
            }
            if rng.u64(..12) == 0 {
                if let Some((counters, receipt)) = &last {
                    let delta = rng.u64(..9) as i64 - 5;
                    let charge = Charge::new(counters, receipt.cost).unwrap();
                    meter.adjust(&charge, receipt, delta).await.unwrap();
                    reference.adjust(counters, receipt, delta);
                }
            }
            // A charge of the key's counter alone, or with a counter shared with other keys.
            let counters: Vec<Counter<'_>> = if rng.u64(..3) == 0 {
                vec![own, Counter::new(&plan, &group, None, shared)]
            } else {
                vec![own]
            };
            let cost = if rng.u64(..4) == 0 {
                1 + rng.u64(..12) as u32
            } else {
                1
            };
            let expected = reference.admit(&counters, now, cost, retention);
            let got = meter
                .admit(&Charge::new(&counters, cost).unwrap())
                .await
                .unwrap();
            assert_eq!(got, expected, "verdict: {ctx} cost {cost} now {now:?}");
            if let Some(r) = got.receipt {
                last = Some((counters.clone(), r));
            }
            decided += 1;

            // The state Redis keeps is the policy's.
            for c in &counters {
                let (state, history) = meter
                    .state("p", c.subject, c.bucket_name().unwrap_or(""))
                    .await
                    .unwrap();
                let rec = reference
                    .recs
                    .get(&**c.subject)
                    .cloned()
                    .unwrap_or_default();
                let want = State {
                    tat: c
                        .bucket_name()
                        .and_then(|b| rec.tats.get(b).copied())
                        .unwrap_or(0),
                    ..rec.state
                };
                assert_eq!(state, want, "state of {}: {ctx}", c.subject);
                assert_eq!(history, rec.history, "history of {}: {ctx}", c.subject);
            }
            if rng.u64(..20) == 0 {
                let today = Date::from_unix_secs(now.unix_nanos / NANOS_PER_SEC);
                let from = Date::from_days(today.days().saturating_sub(10));
                let got = meter.usage(&own, from, today).await.unwrap();
                let rec = reference.recs.get("k").cloned().unwrap_or_default();
                let want: Vec<_> = policy::usage(
                    &rec.history,
                    &rec.state,
                    limits.quota.as_ref(),
                    from.days(),
                    today.days(),
                );
                let got: Vec<_> = got
                    .iter()
                    .map(|u| (u.date.days(), u.used, u.remaining))
                    .collect();
                assert_eq!(got, want, "usage: {ctx}");
            }
        }
    }
    assert_eq!(decided, 60 * 250);
}

/// A hash written before windows were instants (its window in days) keeps its count.
#[tokio::test]
async fn a_hash_with_its_window_in_days_keeps_its_count() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let clock = ManualClock::at_unix_secs(Date::new(2026, 11, 6).unwrap().unix_secs() + 43_200);
    let meter = RedisMeter::builder()
        .clock(clock.clone())
        .connect(&server.url())
        .await
        .unwrap();
    // As the first version's script wrote it: the month of November 2026, 16 counted.
    let (plan, key): (Arc<str>, Arc<str>) = ("fixplan".into(), "fixkey1".into());
    let redis_key = meter.state_key(&plan, &key);
    let mut cmd = ::redis::cmd("HSET");
    cmd.arg(&redis_key);
    for a in [
        "ws", "20758", "we", "20788", "wu", "16", "d", "20763", "du", "4",
    ] {
        cmd.arg(a);
    }
    let _: i64 = meter.inner.conn.clone().query(&cmd).await.unwrap();
    let limits = Limits::new(
        None,
        Some(QuotaLimits::new(1000, Calendar::aws(QuotaPeriod::Month, 0))),
    );
    let counters = [Counter::new(&plan, &key, None, limits)];
    let v = meter
        .admit(&Charge::new(&counters, 1).unwrap())
        .await
        .unwrap();
    assert_eq!(v.quota.unwrap().remaining, 983);
    assert_eq!(v.quota.unwrap().window_secs, 30 * 86_400);
}

/// A clock that Redis's TIME stands for, stepping back whole (both readings), as a server's
/// clock does.
#[derive(Debug, Default)]
struct SteppingClock(AtomicU64);

impl Clock for SteppingClock {
    fn monotonic_nanos(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    fn unix_nanos(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn a_redis_clock_that_steps_back_never_locks_a_key_out() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let base = RedisMeter::builder().connect(&server.url()).await.unwrap();
    let clock = Arc::new(SteppingClock::default());
    let t0 =
        Date::new(2024, 3, 10).unwrap().unix_secs() * NANOS_PER_SEC + 12 * 3600 * NANOS_PER_SEC;
    clock.0.store(t0, Ordering::SeqCst);
    let meter = base.with_clock_and_prefix(clock.clone(), "back:");
    let (plan, key, bucket): (Arc<str>, Arc<str>, Arc<str>) =
        ("p".into(), "k".into(), "plan".into());
    let limits = Limits::new(Some(BucketLimits::new(NANOS_PER_SEC, 2)), None);
    let counters = [Counter::new(&plan, &key, Some(&bucket), limits)];
    let req = &Charge::new(&counters, 1).unwrap();
    for _ in 0..2 {
        assert_eq!(meter.admit(req).await.unwrap().outcome, Outcome::Admitted);
    }
    // Redis's clock steps back an hour: the empty bucket waits one token, not an hour.
    clock.0.store(t0 - 3600 * NANOS_PER_SEC, Ordering::SeqCst);
    assert_eq!(
        meter.admit(req).await.unwrap().outcome,
        Outcome::Throttled {
            retry_after_secs: 1
        }
    );
    clock.0.fetch_add(NANOS_PER_SEC, Ordering::SeqCst);
    assert_eq!(meter.admit(req).await.unwrap().outcome, Outcome::Admitted);
}

#[tokio::test]
async fn ids_that_would_break_the_hash_tag_are_escaped() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let meter = RedisMeter::builder()
        .prefix("x{y}:")
        .connect(&server.url())
        .await
        .unwrap();
    assert_eq!(
        meter.state_key("a:b", "c}{%"),
        "x%7By%7D:{a%3Ab:c%7D%7B%25}"
    );
    assert_ne!(meter.state_key("a:b", "c"), meter.state_key("a", "b:c"));
}

/// The counter of key `k` on plan `p`, with a bucket of `burst` tokens (refilling one a
/// thousand seconds: none during a test) and, if given, a quota a day.
struct LeasePlan {
    plan: Arc<str>,
    key: Arc<str>,
    bucket: Arc<str>,
    limits: Limits,
}

impl LeasePlan {
    fn new(burst: u32, quota: Option<u64>) -> Self {
        Self {
            plan: "p".into(),
            key: "k".into(),
            bucket: "plan".into(),
            limits: Limits::new(
                Some(BucketLimits::new(1000 * NANOS_PER_SEC, burst)),
                quota.map(|q| QuotaLimits::new(q, Calendar::aws(QuotaPeriod::Day, 0))),
            ),
        }
    }

    fn counter(&self) -> [Counter<'_>; 1] {
        [Counter::new(
            &self.plan,
            &self.key,
            Some(&self.bucket),
            self.limits,
        )]
    }
}

async fn leasing(server: &RedisServer, clock: &ManualClock, tokens: u32) -> RedisMeter {
    RedisMeter::builder()
        .clock(clock.clone())
        .lease(tokens, Duration::from_secs(1))
        .connect(&server.url())
        .await
        .unwrap()
}

/// What Redis has counted of the key's day.
async fn counted(meter: &RedisMeter) -> u64 {
    meter.state("p", "k", "plan").await.unwrap().0.day_used
}

/// Whether the meter answers `charge` without a round trip.
fn answered_at_once(meter: &RedisMeter, charge: &Charge<'_>) -> Option<Verdict> {
    match meter.admit(charge).0 {
        Kind::Ready(v) => Some(v.unwrap().unwrap()),
        Kind::Remote(_) => None,
    }
}

#[tokio::test]
async fn a_hot_key_is_served_from_its_lease_between_round_trips() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let meter = leasing(&server, &clock, 10).await;
    let plan = LeasePlan::new(100, Some(1000));
    let counters = plan.counter();
    let req = &Charge::new(&counters, 1).unwrap();
    let quota_left = |v: Verdict| v.quota.unwrap().remaining;

    // Seen once: its own token.
    assert_eq!(quota_left(meter.admit(req).await.unwrap()), 999);
    assert_eq!(counted(&meter).await, 1);
    // Seen again within the time to live: a lease of 10, one spent.
    let v = meter.admit(req).await.unwrap();
    assert_eq!(counted(&meter).await, 11);
    assert_eq!(
        quota_left(v),
        998,
        "the lease's unspent tokens count as left"
    );
    // The next 9 are the lease's: Redis sees none of them, and the layer gets them at once.
    for i in 0..9 {
        let v = answered_at_once(&meter, req).expect("answered from the lease");
        assert_eq!(v.outcome, Outcome::Admitted);
        assert_eq!(quota_left(v), 997 - i);
        assert_eq!(
            v.receipt.map(|r| r.cost),
            Some(1),
            "a leased token's receipt"
        );
    }
    assert_eq!(counted(&meter).await, 11);
    assert!(
        answered_at_once(&meter, req).is_none(),
        "the lease is spent"
    );
    meter.admit(req).await.unwrap();
    assert_eq!(
        counted(&meter).await,
        21,
        "the round trip took another lease"
    );

    // Quiet for longer than the time to live: the lease ends and the key is cold again.
    clock.advance(Duration::from_secs(2));
    meter.admit(req).await.unwrap();
    assert_eq!(counted(&meter).await, 22);
    assert_eq!(meter.inner.leases.as_ref().unwrap().len(), 1);
}

#[tokio::test]
async fn a_leased_token_given_back_is_given_back_in_redis() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let meter = leasing(&server, &clock, 10).await;
    let plan = LeasePlan::new(100, Some(1000));
    let counters = plan.counter();
    let req = &Charge::new(&counters, 1).unwrap();
    meter.admit(req).await.unwrap();
    meter.admit(req).await.unwrap();
    let v = answered_at_once(&meter, req).expect("from the lease");
    assert_eq!(counted(&meter).await, 11);
    meter.adjust(req, &v.receipt.unwrap(), -1).await.unwrap();
    assert_eq!(
        counted(&meter).await,
        10,
        "the refund reaches Redis's counts"
    );
}

#[tokio::test]
async fn a_charge_of_two_counters_never_takes_a_lease() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let meter = leasing(&server, &clock, 10).await;
    let plan = LeasePlan::new(100, Some(1000));
    let group: Arc<str> = "group".into();
    let [own] = plan.counter();
    let counters = [own, Counter::new(&plan.plan, &group, None, plan.limits)];
    let req = &Charge::new(&counters, 1).unwrap();
    for n in 1..=5 {
        meter.admit(req).await.unwrap();
        assert_eq!(counted(&meter).await, n, "exact: one round trip each");
    }
}

#[tokio::test]
async fn a_key_used_now_and_then_never_takes_a_lease() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let meter = leasing(&server, &clock, 10).await;
    let plan = LeasePlan::new(100, Some(1000));
    let counters = plan.counter();
    for n in 1..=5 {
        meter
            .admit(&Charge::new(&counters, 1).unwrap())
            .await
            .unwrap();
        assert_eq!(counted(&meter).await, n, "counted as used, no more");
        clock.advance(Duration::from_millis(1500));
    }
}

#[tokio::test]
async fn leases_never_let_instances_exceed_the_bucket() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let a = leasing(&server, &clock, 10).await;
    let b = leasing(&server, &clock, 10).await;
    let plan = LeasePlan::new(25, None);
    let counters = plan.counter();
    let req = &Charge::new(&counters, 1).unwrap();
    let mut admitted = 0;
    for i in 0..60 {
        let meter = if i % 2 == 0 { &a } else { &b };
        if meter.admit(req).await.unwrap().outcome == Outcome::Admitted {
            admitted += 1;
        }
    }
    // Each took a lease of 10 while the bucket held them; near empty, one token at a time.
    assert_eq!(admitted, 25, "exactly the bucket, across both instances");
}

#[tokio::test]
async fn setting_the_remaining_quota_drops_the_instances_lease() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let meter = leasing(&server, &clock, 10).await;
    let plan = LeasePlan::new(100, Some(100));
    let counters = plan.counter();
    let req = &Charge::new(&counters, 1).unwrap();
    meter.admit(req).await.unwrap();
    meter.admit(req).await.unwrap(); // a lease: 9 left on this instance
    meter.set_remaining(&counters[0], 0).await.unwrap();
    assert!(answered_at_once(&meter, req).is_none());
    assert!(matches!(
        meter.admit(req).await.unwrap().outcome,
        Outcome::QuotaExceeded { .. }
    ));
}
