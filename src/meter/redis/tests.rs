//! The differential test: the Lua policy, run by a real redis-server, against `policy::decide`,
//! with the same requests at the same times; every verdict and every state compared.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::clock::ManualClock;
use crate::model::{ApiStage, Quota, StageRef, Throttle, UsagePlan};
use crate::testing::redis::RedisServer;

/// splitmix64: a small, seeded source of test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

fn random_plan(rng: &mut Rng) -> StagePlan {
    let mut p = UsagePlan::new("p", "p");
    let mut stage = ApiStage::new("api", "prod");
    let throttle = |rng: &mut Rng| Throttle {
        rate_limit: rng.pick(&[0.01, 0.5, 1.0, 3.0, 7.3, 100.0, 1000.0, 1e6]),
        // 0 blocks; the model refuses it, the policy must still answer.
        burst_limit: rng.pick(&[0, 1, 2, 3, 5, 10, 40]),
    };
    if rng.below(4) != 0 {
        p.throttle = Some(throttle(rng));
        if rng.below(2) == 0 {
            stage.throttle.insert("/items/GET".into(), throttle(rng));
        }
    }
    if rng.below(4) != 0 {
        let period = rng.pick(&[QuotaPeriod::Day, QuotaPeriod::Week, QuotaPeriod::Month]);
        let offset = match period {
            QuotaPeriod::Day => 0,
            QuotaPeriod::Week => rng.below(7) as u32,
            QuotaPeriod::Month => rng.below(28) as u32,
        };
        p.quota = Some(Quota::new(1 + rng.below(60), period, offset).unwrap());
    }
    p.api_stages.push(stage);
    StagePlan::new(&p, &StageRef::any()).unwrap()
}

/// The reference: the policy's state of one key, one arrival time per bucket, the days kept.
#[derive(Default)]
struct Reference {
    state: State,
    tats: HashMap<u64, u64>,
    history: Vec<(u32, u64)>,
}

impl Reference {
    fn admit(
        &mut self,
        plan: &StagePlan,
        bucket: Bucket,
        now: policy::Now,
        cost: u32,
        retention: u32,
    ) -> Verdict {
        let limits = plan.limits(bucket);
        let tag = plan.bucket_tag(bucket);
        let state = State {
            tat: self.tats.get(&tag).copied().unwrap_or(0),
            ..self.state
        };
        let (next, verdict) = policy::decide(&state, &limits, now, cost);
        if next.day != self.state.day && self.state.day_used > 0 {
            self.history.push((self.state.day, self.state.day_used));
            let oldest = next.day.saturating_sub(retention);
            self.history.retain(|(d, _)| *d >= oldest);
        }
        if limits.bucket.is_some() {
            self.tats.insert(tag, next.tat);
        }
        self.state = next;
        verdict
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
    let mut rng = Rng(seed);
    let key: Arc<str> = "k".into();
    let mut decided = 0;
    for scenario in 0..60 {
        let retention = rng.pick(&[1, 3, 90]);
        let start = Date::new(2024, 1, 1).unwrap().unix_secs() + rng.below(400 * 86_400);
        let clock = ManualClock::at_unix_nanos(start * NANOS_PER_SEC + rng.below(NANOS_PER_SEC));
        let meter = RedisMeter::builder()
            .retention_days(retention)
            .prefix(&format!("diff{scenario}:"))
            .clock(clock.clone())
            .connect(&server.url())
            .await
            .unwrap();
        let mut plan = random_plan(&mut rng);
        let mut reference = Reference::default();
        for step in 0..250 {
            match rng.below(10) {
                0 => {}
                1..=4 => clock.advance(Duration::from_nanos(rng.below(NANOS_PER_SEC))),
                5 | 6 => clock.advance(Duration::from_secs(rng.below(10))),
                7 => clock.advance(Duration::from_secs(rng.below(3 * 3600))),
                8 => clock.advance(Duration::from_secs(rng.below(3 * 86_400))),
                _ => {
                    // The wall clock steps back; the monotonic clock stands still.
                    let back = rng.below(2 * 86_400) * NANOS_PER_SEC;
                    clock.set_unix_nanos(clock.unix_nanos().saturating_sub(back));
                }
            }
            if rng.below(40) == 0 {
                // The plan changes (same id): new limits over the same state.
                plan = random_plan(&mut rng);
            }
            let now = policy::Now {
                monotonic: clock.monotonic_nanos(),
                unix: clock.unix_nanos(),
            };
            let ctx = format!("seed {seed} scenario {scenario} step {step} plan {plan:?}");
            if rng.below(25) == 0 {
                let left = rng.below(80);
                let res = meter.set_remaining(&plan, "k", left).await;
                match plan.limits(Bucket::None).quota {
                    Some(q) => {
                        res.unwrap();
                        reference.state = policy::set_remaining(
                            &reference.state,
                            &q,
                            now.unix / NANOS_PER_SEC,
                            left,
                        );
                    }
                    None => assert!(res.is_err(), "{ctx}"),
                }
            }
            let bucket = if plan.throttle().is_none() {
                Bucket::None
            } else if !plan.methods().is_empty() && rng.below(2) == 0 {
                Bucket::Method(0)
            } else {
                Bucket::Plan
            };
            let cost = if rng.below(4) == 0 {
                1 + rng.below(12) as u32
            } else {
                1
            };
            let expected = reference.admit(&plan, bucket, now, cost, retention);
            let got = meter
                .admit(Admission::new(&key, &plan, bucket).with_cost(cost))
                .await
                .unwrap();
            assert_eq!(
                got, expected,
                "verdict: {ctx} bucket {bucket:?} cost {cost} now {now:?}"
            );
            decided += 1;

            // The state Redis keeps is the policy's.
            let tag = plan.bucket_tag(bucket);
            let (state, history) = meter
                .state("p", "k", &plan.bucket_name(bucket))
                .await
                .unwrap();
            let want = State {
                tat: reference.tats.get(&tag).copied().unwrap_or(0),
                ..reference.state
            };
            assert_eq!(state, want, "state: {ctx}");
            assert_eq!(history, reference.history, "history: {ctx}");
            if rng.below(20) == 0 {
                let today = Date::from_unix_secs(now.unix / NANOS_PER_SEC);
                let from = Date::from_days(today.days().saturating_sub(10));
                let got = meter.usage(&plan, "k", from, today).await.unwrap();
                let quota = plan.limits(Bucket::None).quota;
                let want: Vec<_> = policy::usage(
                    &reference.history,
                    &reference.state,
                    quota.as_ref(),
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
    let mut p = UsagePlan::new("p", "p");
    p.api_stages.push(ApiStage::new("api", "prod"));
    p.throttle = Some(Throttle::new(1.0, 2).unwrap());
    let plan = StagePlan::new(&p, &StageRef::any()).unwrap();
    let key: Arc<str> = "k".into();
    let req = Admission::new(&key, &plan, Bucket::Plan);
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

/// A plan of `burst` tokens (refilling one a thousand seconds: none during a test) and, if
/// given, a quota a day.
fn lease_plan(burst: u32, quota: Option<u64>) -> StagePlan {
    let mut p = UsagePlan::new("p", "p");
    p.api_stages.push(ApiStage::new("api", "prod"));
    p.throttle = Some(Throttle::new(0.001, burst).unwrap());
    p.quota = quota.map(|q| Quota::new(q, QuotaPeriod::Day, 0).unwrap());
    StagePlan::new(&p, &StageRef::any()).unwrap()
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
async fn counted(meter: &RedisMeter, plan: &StagePlan) -> u64 {
    meter
        .state("p", "k", &plan.bucket_name(Bucket::Plan))
        .await
        .unwrap()
        .0
        .day_used
}

#[tokio::test]
async fn a_hot_key_is_served_from_its_lease_between_round_trips() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let meter = leasing(&server, &clock, 10).await;
    let plan = lease_plan(100, Some(1000));
    let key: Arc<str> = "k".into();
    let req = Admission::new(&key, &plan, Bucket::Plan);
    let quota_left = |v: Verdict| v.quota.unwrap().remaining;

    // Seen once: its own token.
    assert_eq!(quota_left(meter.admit(req).await.unwrap()), 999);
    assert_eq!(counted(&meter, &plan).await, 1);
    // Seen again within the time to live: a lease of 10, one spent.
    let v = meter.admit(req).await.unwrap();
    assert_eq!(counted(&meter, &plan).await, 11);
    assert_eq!(
        quota_left(v),
        998,
        "the lease's unspent tokens count as left"
    );
    // The next 9 are the lease's: Redis sees none of them, and the layer gets them at once.
    for i in 0..9 {
        let v = meter
            .admit_now(req, crate::sealed::Token(()))
            .expect("answered from the lease")
            .unwrap();
        assert_eq!(v.outcome, Outcome::Admitted);
        assert_eq!(quota_left(v), 997 - i);
    }
    assert_eq!(counted(&meter, &plan).await, 11);
    assert!(meter.admit_now(req, crate::sealed::Token(())).is_none());
    // Spent: the next takes another lease.
    meter.admit(req).await.unwrap();
    assert_eq!(counted(&meter, &plan).await, 21);

    // Quiet for longer than the time to live: the lease ends and the key is cold again.
    clock.advance(Duration::from_secs(2));
    meter.admit(req).await.unwrap();
    assert_eq!(counted(&meter, &plan).await, 22);
    assert_eq!(meter.inner.leases.as_ref().unwrap().len(), 1);
}

#[tokio::test]
async fn a_key_used_now_and_then_never_takes_a_lease() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let meter = leasing(&server, &clock, 10).await;
    let plan = lease_plan(100, Some(1000));
    let key: Arc<str> = "k".into();
    for n in 1..=5 {
        meter
            .admit(Admission::new(&key, &plan, Bucket::Plan))
            .await
            .unwrap();
        assert_eq!(counted(&meter, &plan).await, n, "counted as used, no more");
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
    let plan = lease_plan(25, None);
    let key: Arc<str> = "k".into();
    let req = Admission::new(&key, &plan, Bucket::Plan);
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
    let plan = lease_plan(100, Some(100));
    let key: Arc<str> = "k".into();
    let req = Admission::new(&key, &plan, Bucket::Plan);
    meter.admit(req).await.unwrap();
    meter.admit(req).await.unwrap(); // a lease: 9 left on this instance
    meter.set_remaining(&plan, "k", 0).await.unwrap();
    assert!(meter.admit_now(req, crate::sealed::Token(())).is_none());
    assert!(matches!(
        meter.admit(req).await.unwrap().outcome,
        Outcome::QuotaExceeded { .. }
    ));
}
