//! May this request go now, and what has been used: the [`Meter`] trait and [`LocalMeter`].
//!
//! For each request with a key on a plan, the layer makes one call, [`Meter::admit`], which
//! takes a token from the key's bucket (the plan's, or the method's own where the plan overrides
//! the method), checks and counts the key's quota, and records the day's usage, all at once. Only
//! an admitted request counts: a throttled request spends no quota, and a request refused for its
//! quota spends no token. A remote meter (Redis) makes that one round trip.
//!
//! [`LocalMeter`] is the in-process meter: token buckets (governor's GCRA), exact quota counters
//! (N concurrent requests against a limit L admit exactly min(N, L)) and usage per key per UTC day.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tower_usage_plans::clock::ManualClock;
//! use tower_usage_plans::meter::{Admission, LocalMeter, Meter, Outcome};
//! use tower_usage_plans::model::{ApiStage, Quota, QuotaPeriod, StageRef, Throttle, UsagePlan};
//! use tower_usage_plans::plan::{Bucket, StagePlan};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut plan = UsagePlan::new("plan111", "FreePlan");
//! plan.api_stages.push(ApiStage::new("abc123def4", "prod"));
//! plan.throttle = Some(Throttle::new(1.0, 2).unwrap());
//! plan.quota = Some(Quota::new(3, QuotaPeriod::Day, 0).unwrap());
//! let plan = StagePlan::new(&plan, &StageRef::any()).unwrap();
//!
//! let clock = ManualClock::at_unix_secs(1_700_000_000);
//! let meter = LocalMeter::with_clock(clock.clone());
//! let key: Arc<str> = "key111aaa".into();
//! let req = Admission::new(&key, &plan, Bucket::Plan);
//! let mut outcomes = Vec::new();
//! for _ in 0..3 {
//!     outcomes.push(meter.admit(req).await.unwrap().outcome);
//! }
//! assert_eq!(outcomes[..2], [Outcome::Admitted, Outcome::Admitted]);
//! assert_eq!(outcomes[2], Outcome::Throttled { retry_after_secs: 1 });
//! clock.advance(Duration::from_secs(1));
//! assert_eq!(meter.admit(req).await.unwrap().outcome, Outcome::Admitted);
//! clock.advance(Duration::from_secs(1));
//! // Three admitted: the day's quota is spent until midnight UTC.
//! let verdict = meter.admit(req).await.unwrap();
//! assert!(matches!(verdict.outcome, Outcome::QuotaExceeded { .. }));
//! assert_eq!(verdict.quota.unwrap().remaining, 0);
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;

use crate::error::MeterError;
use crate::period::Date;
use crate::plan::{Bucket, StagePlan};

mod local;
#[cfg(feature = "sqlite")]
pub mod persist;
pub(crate) mod policy;
#[cfg(feature = "redis")]
pub mod redis;

pub use local::{LocalMeter, LocalMeterBuilder};
#[cfg(feature = "sqlite")]
pub use persist::PersistedMeter;
#[cfg(feature = "redis")]
pub use redis::{RedisMeter, RedisMeterBuilder};

/// One request to admit: whose, on which plan, from which bucket, at what cost.
#[derive(Clone, Copy, Debug)]
pub struct Admission<'a> {
    /// The key's id.
    pub key_id: &'a Arc<str>,
    /// The key's plan on the layer's stage.
    pub plan: &'a StagePlan,
    /// The bucket the request draws from ([`StagePlan::bucket_for`]).
    pub bucket: Bucket,
    /// How many tokens the request takes, and how many it counts against the quota and the
    /// day's usage (1 unless a [`RequestCost`](crate::RequestCost) says otherwise).
    pub cost: u32,
}

impl<'a> Admission<'a> {
    /// A request of cost 1 by `key_id` on `plan`, drawing from `bucket`.
    pub fn new(key_id: &'a Arc<str>, plan: &'a StagePlan, bucket: Bucket) -> Self {
        Self {
            key_id,
            plan,
            bucket,
            cost: 1,
        }
    }

    /// The same request with another cost.
    pub fn with_cost(self, cost: u32) -> Self {
        Self { cost, ..self }
    }
}

/// What the meter decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Admitted, and counted.
    Admitted,
    /// The bucket is empty; a token comes in `retry_after_secs` (whole seconds, at least 1).
    Throttled {
        /// Seconds until the next token, rounded up.
        retry_after_secs: u64,
    },
    /// The quota of the current window is used up; it resets in `retry_after_secs`.
    QuotaExceeded {
        /// Seconds until the window ends, rounded up.
        retry_after_secs: u64,
    },
}

/// Where one limit stands after a decision, for the rate-limit headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitState {
    /// The limit: the bucket's size, or the quota's limit.
    pub limit: u64,
    /// What is left.
    pub remaining: u64,
    /// Seconds until the limit is whole again (bucket full, or the quota window ends).
    pub reset_secs: u64,
    /// The window the limit is counted over, in seconds (the bucket's fill time, or the quota
    /// window's length).
    pub window_secs: u64,
}

/// A meter's decision on one request, with the state of the limits it checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Admitted, or why not.
    pub outcome: Outcome,
    /// The bucket's state, if the request drew from one (and got as far).
    pub burst: Option<LimitState>,
    /// The quota's state, if the plan has one.
    pub quota: Option<LimitState>,
}

/// One key's use of one plan on one UTC day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DayUsage {
    /// The day.
    pub date: Date,
    /// Requests admitted that day (each counted by its cost).
    pub used: u64,
    /// What was left of the quota at the end of that day (or now, for today), if the plan has a
    /// quota.
    pub remaining: Option<u64>,
}

/// Answers *may this request go now, and what has been used*. See the [module docs](self).
///
/// Implementations run the crate's limit policy (GCRA with a cost, the quota window counter, the
/// day's usage) on their own state, and must keep its promises: only an admitted request counts,
/// a throttled request spends no quota, a quota refusal spends no token, N concurrent requests
/// against a quota of L admit exactly min(N, L), and a wall clock that steps back never reopens
/// a used window. The conformance suite in `tower_usage_plans::testing` (feature `testing`)
/// checks them.
pub trait Meter: Send + Sync + 'static {
    /// Takes `cost` tokens from the bucket, checks and counts the quota, and records the day's
    /// usage, at once.
    fn admit(&self, req: Admission<'_>)
        -> impl Future<Output = Result<Verdict, MeterError>> + Send;

    /// One key's usage of `plan`, one entry per UTC day from `start` to `end` inclusive (AWS's
    /// `get-usage`). A range that ends before it starts is an error.
    fn usage(
        &self,
        plan: &StagePlan,
        key_id: &str,
        start: Date,
        end: Date,
    ) -> impl Future<Output = Result<Vec<DayUsage>, MeterError>> + Send;

    /// Sets what is left of `key_id`'s quota on `plan` in the current window to `remaining`
    /// (AWS's update-usage, `replace /remaining`). It lasts until the window ends; it may exceed
    /// the limit (more was granted). A plan without a quota is an error.
    fn set_remaining(
        &self,
        plan: &StagePlan,
        key_id: &str,
        remaining: u64,
    ) -> impl Future<Output = Result<(), MeterError>> + Send;

    /// The crate's own fast path: [`admit`](Self::admit) answered without a future, by meters
    /// that never wait. Not for use outside this crate (its token cannot be made there).
    #[doc(hidden)]
    #[inline]
    fn admit_now(
        &self,
        req: Admission<'_>,
        _: crate::sealed::Token,
    ) -> Option<Result<Verdict, MeterError>> {
        let _ = req;
        None
    }
}

impl<T: Meter> Meter for Arc<T> {
    fn admit(
        &self,
        req: Admission<'_>,
    ) -> impl Future<Output = Result<Verdict, MeterError>> + Send {
        (**self).admit(req)
    }

    fn usage(
        &self,
        plan: &StagePlan,
        key_id: &str,
        start: Date,
        end: Date,
    ) -> impl Future<Output = Result<Vec<DayUsage>, MeterError>> + Send {
        (**self).usage(plan, key_id, start, end)
    }

    fn set_remaining(
        &self,
        plan: &StagePlan,
        key_id: &str,
        remaining: u64,
    ) -> impl Future<Output = Result<(), MeterError>> + Send {
        (**self).set_remaining(plan, key_id, remaining)
    }

    #[inline]
    fn admit_now(
        &self,
        req: Admission<'_>,
        token: crate::sealed::Token,
    ) -> Option<Result<Verdict, MeterError>> {
        (**self).admit_now(req, token)
    }
}
