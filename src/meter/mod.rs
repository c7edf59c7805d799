//! May this request go now, and what has been used: the [`Meter`] trait, its reference
//! semantics ([`policy`]) and [`LocalMeter`].
//!
//! For each request with a key on a plan, the layer makes one call, [`Meter::admit`], with a
//! [`Charge`]: the [`Counter`]s the request draws from, each named by its identities (the plan's
//! id, the subject it counts for, the bucket's name) and carrying its [`Limits`](policy::Limits),
//! and the cost. The meter checks every counter first and charges all or none: a bucket's
//! tokens, a quota's count and the day's usage. Only an admitted charge counts: a throttled
//! request spends no quota, and a request refused for its quota spends no token. A remote meter
//! (Redis) makes that one round trip. An admitted charge comes with a
//! [`Receipt`], which [`Meter::adjust`] takes to correct the charge after the
//! response (a refund, or a cost known only then), in the window and on the day it was made.
//!
//! The counters a request names today: one, for its key on its plan (the plan's bucket or the
//! method's own, and the plan's quota). Later kinds (a customer's quota across its keys) are more
//! counters in the same charge.
//!
//! [`LocalMeter`] is the in-process meter: token buckets (governor's GCRA), exact quota counters
//! (N concurrent requests against a limit L admit exactly min(N, L)) and usage per counter per
//! UTC day. A meter of your own keeps [`State`](policy::State)s wherever it likes and runs
//! [`policy::decide`] on them; `tower_usage_plans::testing` (feature `testing`) checks it.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tower_usage_plans::clock::ManualClock;
//! use tower_usage_plans::meter::policy::{BucketLimits, Limits, QuotaLimits};
//! use tower_usage_plans::meter::{Charge, Counter, LocalMeter, Meter, Outcome};
//! use tower_usage_plans::model::QuotaPeriod;
//! use tower_usage_plans::period::Calendar;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (plan, key, bucket): (Arc<str>, Arc<str>, Arc<str>) =
//!     ("plan111".into(), "key111aaa".into(), "plan".into());
//! // 1 request a second, burst 2; 3 a day.
//! let limits = Limits::new(
//!     Some(BucketLimits::new(1_000_000_000, 2)),
//!     Some(QuotaLimits::new(3, Calendar::aws(QuotaPeriod::Day, 0))),
//! );
//! let counters = [Counter::new(&plan, &key, Some(&bucket), limits)];
//! let charge = Charge::new(&counters, 1).unwrap();
//!
//! let clock = ManualClock::at_unix_secs(1_700_000_000);
//! let meter = LocalMeter::with_clock(clock.clone());
//! let mut outcomes = Vec::new();
//! for _ in 0..3 {
//!     outcomes.push(meter.admit(&charge).await.unwrap().outcome);
//! }
//! assert_eq!(outcomes[..2], [Outcome::Admitted, Outcome::Admitted]);
//! assert_eq!(outcomes[2], Outcome::Throttled { retry_after_secs: 1 });
//! clock.advance(Duration::from_secs(1));
//! let third = meter.admit(&charge).await.unwrap();
//! assert_eq!(third.outcome, Outcome::Admitted);
//! clock.advance(Duration::from_secs(1));
//! // Three admitted: the day's quota is spent until midnight UTC.
//! let verdict = meter.admit(&charge).await.unwrap();
//! assert!(matches!(verdict.outcome, Outcome::QuotaExceeded { .. }));
//! assert_eq!(verdict.quota.unwrap().remaining, 0);
//! // The third request failed upstream: give it back, and one more goes today.
//! meter.adjust(&charge, &third.receipt.unwrap(), -1).await.unwrap();
//! clock.advance(Duration::from_secs(1));
//! assert_eq!(meter.admit(&charge).await.unwrap().outcome, Outcome::Admitted);
//! # }
//! ```

mod contract;
mod local;
#[cfg(feature = "sqlite")]
pub mod persist;
pub mod policy;
#[cfg(feature = "redis")]
pub mod redis;

pub use contract::{Charge, Counter, DayUsage, Meter};
pub use local::{LocalMeter, LocalMeterBuilder};
#[cfg(feature = "sqlite")]
pub use persist::PersistedMeter;
pub use policy::{LimitState, Outcome, Receipt, Verdict};
#[cfg(feature = "redis")]
pub use redis::{RedisMeter, RedisMeterBuilder};
