//! The in-process meter's token buckets decide exactly as governor's own rate limiter does, for
//! the same throttle and the same request times (a differential test against governor 0.10).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use governor::{Quota, RateLimiter};
use tower_usage_plans::clock::ManualClock;
use tower_usage_plans::meter::policy::{BucketLimits, Limits};
use tower_usage_plans::meter::{Charge, Counter, LocalMeter, Meter, Outcome};
use tower_usage_plans::model::Throttle;

#[tokio::test]
async fn buckets_match_governor_request_by_request() {
    let throttles = [
        (5.0, 10),
        (0.1, 1),
        (2.0, 5),
        (50.0, 100),
        (0.5, 3),
        (1000.0, 1),
    ];
    let mut rng = fastrand::Rng::with_seed(0x9e37_79b9_7f4a_7c15);
    for (rate, burst) in throttles {
        // The bucket an AWS throttle gives, as the layer builds it from a plan.
        let throttle = Throttle::new(rate, burst).unwrap();
        let limits = Limits::new(Some(BucketLimits::from_throttle(&throttle)), None);
        let (plan, bucket): (Arc<str>, Arc<str>) = ("p".into(), "plan".into());

        let start = 1_700_000_000;
        let clock = ManualClock::at_unix_secs(start);
        let meter = LocalMeter::with_clock(clock.clone());
        let key: Arc<str> = "k".into();
        let counters = [Counter::new(&plan, &key, Some(&bucket), limits)];
        let req = &Charge::new(&counters, 1).unwrap();

        let gov_clock = FakeRelativeClock::default();
        let quota = Quota::with_period(Duration::from_secs_f64(1.0 / rate))
            .unwrap()
            .allow_burst(NonZeroU32::new(burst).unwrap());
        let governor = RateLimiter::direct_with_clock(quota, gov_clock.clone());

        let period_ns = (1e9 / rate) as u64;
        let (mut admitted, mut refused) = (0, 0);
        for i in 0..5_000 {
            // Mostly bursts, sometimes pauses up to three refill periods.
            let gap = match rng.u64(..4) {
                0 => rng.u64(..=3 * period_ns),
                _ => rng.u64(..=period_ns / 4),
            };
            clock.advance(Duration::from_nanos(gap));
            gov_clock.advance(Duration::from_nanos(gap));
            let ours = meter.admit(req).await.unwrap().outcome;
            let theirs = governor.check();
            match (&ours, &theirs) {
                (Outcome::Admitted, Ok(())) => admitted += 1,
                (Outcome::Throttled { retry_after_secs }, Err(not_until)) => {
                    refused += 1;
                    let wait = not_until.wait_time_from(governor::clock::Clock::now(&gov_clock));
                    let want = wait.as_nanos().div_ceil(1_000_000_000).max(1) as u64;
                    assert_eq!(
                        *retry_after_secs, want,
                        "rate {rate} burst {burst}, request {i}"
                    );
                }
                _ => panic!(
                    "rate {rate} burst {burst}, request {i}: ours {ours:?}, governor {theirs:?}"
                ),
            }
        }
        assert!(
            admitted > 0 && refused > 0,
            "rate {rate}: {admitted} admitted, {refused} refused"
        );
    }
}
