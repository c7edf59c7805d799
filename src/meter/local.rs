//! [`LocalMeter`]: the in-process meter, with token buckets on `governor`.

use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota as GovQuota, RateLimiter};
use parking_lot::Mutex;

use crate::clock::{Clock, SystemClock, NANOS_PER_SEC};
use crate::error::{FieldError, MeterError};
use crate::model::Throttle;
use crate::period::{window, Date, SECS_PER_DAY};
use crate::plan::{Bucket, StagePlan};
use crate::shard::ShardedTable;

use super::{Admission, DayUsage, LimitState, Meter, Outcome, Verdict};

/// Our clock, as governor reads clocks.
#[derive(Clone, Debug)]
struct GovClock<C>(C);

impl<C: Clock + Clone> governor::clock::Clock for GovClock<C> {
    type Instant = Nanos;

    #[inline]
    fn now(&self) -> Nanos {
        Nanos::from(self.0.now())
    }
}

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, GovClock<C>, StateInformationMiddleware>;

/// One token bucket of one key.
struct BucketState<C: Clock + Clone> {
    /// [`StagePlan::bucket_tag`] of the bucket.
    tag: u64,
    /// The throttle the limiter was built for; a changed throttle gets a new, full bucket.
    throttle: Throttle,
    limiter: Limiter<C>,
}

/// Everything metered of one key on one plan.
struct KeyMeter<C: Clock + Clone> {
    buckets: Vec<BucketState<C>>,
    /// Start of the quota window counted in `quota_used`, in seconds since the epoch.
    quota_start: u64,
    quota_used: u64,
    /// The UTC day counted in `day_used`.
    day: u32,
    day_used: u64,
    /// Earlier days with usage, oldest first, kept for the retention period.
    history: Vec<(u32, u64)>,
    /// When the key was last admitted or refused, in seconds since the epoch.
    last_seen: u64,
}

struct Slot<C: Clock + Clone> {
    plan_id: Arc<str>,
    key_id: Arc<str>,
    state: Mutex<KeyMeter<C>>,
}

struct Inner<C: Clock + Clone> {
    clock: C,
    retention_days: u32,
    table: ShardedTable<Slot<C>>,
    /// When the next sweep is due, in seconds since the epoch.
    next_sweep: AtomicU64,
}

/// The in-process [`Meter`]: one token bucket per key and bucket (governor's GCRA), an exact quota
/// counter and the usage per UTC day, per key and plan, in sharded memory.
///
/// Clones share the same state: give one meter to the layers of several stages, and a plan's
/// limits apply to a key summed over those stages, as AWS sums them.
///
/// Memory stays bounded: a key's state is reclaimed once the key has not been seen for the
/// retention period (90 days by default, which also keeps 90 days of usage), and a bucket that
/// has refilled is dropped, both by a sweep that runs at most once an hour when a new key arrives,
/// or when [`sweep`](Self::sweep) is called.
///
/// See the [module example](crate::meter).
#[derive(Clone)]
pub struct LocalMeter<C: Clock + Clone = SystemClock> {
    inner: Arc<Inner<C>>,
}

impl<C: Clock + Clone> fmt::Debug for LocalMeter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalMeter")
            .field("clock", &self.inner.clock)
            .field("retention_days", &self.inner.retention_days)
            .field("keys", &self.inner.table.len())
            .finish()
    }
}

impl LocalMeter {
    /// A meter on the system clock, keeping 90 days of usage.
    pub fn new() -> Self {
        Self::with_clock(SystemClock)
    }

    /// A builder, to set the clock and the retention.
    pub fn builder() -> LocalMeterBuilder<SystemClock> {
        LocalMeterBuilder {
            clock: SystemClock,
            retention_days: 90,
        }
    }
}

impl Default for LocalMeter {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds a [`LocalMeter`].
#[derive(Clone, Debug)]
#[must_use]
pub struct LocalMeterBuilder<C> {
    clock: C,
    retention_days: u32,
}

impl<C: Clock + Clone> LocalMeterBuilder<C> {
    /// The clock the meter reads.
    pub fn clock<C2: Clock + Clone>(self, clock: C2) -> LocalMeterBuilder<C2> {
        LocalMeterBuilder {
            clock,
            retention_days: self.retention_days,
        }
    }

    /// How many days of usage to keep, at least 1 (default 90). A key not seen for this long is
    /// forgotten.
    pub fn retention_days(mut self, days: u32) -> Self {
        self.retention_days = days.max(1);
        self
    }

    /// The meter.
    pub fn build(self) -> LocalMeter<C> {
        LocalMeter {
            inner: Arc::new(Inner {
                clock: self.clock,
                retention_days: self.retention_days,
                table: ShardedTable::default(),
                next_sweep: AtomicU64::new(0),
            }),
        }
    }
}

fn gov_quota(t: &Throttle) -> GovQuota {
    let burst = NonZeroU32::new(t.burst_limit).unwrap_or(NonZeroU32::MIN);
    Duration::try_from_secs_f64(1.0 / t.rate_limit)
        .ok()
        .and_then(GovQuota::with_period)
        .map_or_else(|| GovQuota::per_second(burst), |q| q.allow_burst(burst))
}

fn ceil_secs(nanos: u64) -> u64 {
    nanos.div_ceil(NANOS_PER_SEC)
}

impl<C: Clock + Clone> LocalMeter<C> {
    /// A meter reading `clock`, keeping 90 days of usage.
    pub fn with_clock(clock: C) -> Self {
        LocalMeter::builder().clock(clock).build()
    }

    /// The meter's clock.
    pub fn clock(&self) -> &C {
        &self.inner.clock
    }

    /// How many key-and-plan states the meter holds.
    pub fn len(&self) -> usize {
        self.inner.table.len()
    }

    /// Whether the meter holds no state.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reclaims the state of keys not seen for the retention period, and the buckets that have
    /// refilled since they were last used; returns how many keys were forgotten.
    pub fn sweep(&self) -> usize {
        let now = self.inner.clock.now();
        let secs = now / NANOS_PER_SEC;
        let horizon = secs.saturating_sub(u64::from(self.inner.retention_days) * SECS_PER_DAY);
        self.inner.table.retain(|slot| {
            let st = slot.state.get_mut();
            if st.last_seen < horizon {
                return false;
            }
            let idle = secs.saturating_sub(st.last_seen);
            st.buckets.retain(|b| idle < b.throttle.fill_secs());
            if st.buckets.is_empty() {
                st.buckets = Vec::new();
            }
            true
        })
    }

    fn hash(&self, plan_id: &str, key_id: &str) -> u64 {
        self.inner.table.hash(&(plan_id, key_id))
    }

    fn decide(&self, req: &Admission<'_>) -> Verdict {
        let inner = &*self.inner;
        let now = inner.clock.now();
        let secs = now / NANOS_PER_SEC;
        let plan_id = req.plan.id();
        let hash = self.hash(plan_id, req.key_id);
        let mut inserted = false;
        let verdict = inner.table.read_or_insert(
            hash,
            |s| *s.key_id == **req.key_id && *s.plan_id == **plan_id,
            || {
                inserted = true;
                Slot {
                    plan_id: plan_id.clone(),
                    key_id: req.key_id.clone(),
                    state: Mutex::new(KeyMeter {
                        buckets: Vec::new(),
                        quota_start: 0,
                        quota_used: 0,
                        day: 0,
                        day_used: 0,
                        history: Vec::new(),
                        last_seen: secs,
                    }),
                }
            },
            |slot| self.decide_locked(&mut slot.state.lock(), req, now),
        );
        if inserted && secs >= inner.next_sweep.load(Ordering::Relaxed) {
            inner.next_sweep.store(secs + 3600, Ordering::Relaxed);
            self.sweep();
        }
        verdict
    }

    fn decide_locked(&self, st: &mut KeyMeter<C>, req: &Admission<'_>, now: u64) -> Verdict {
        let secs = now / NANOS_PER_SEC;
        st.last_seen = secs;

        // The quota first: a request refused for its quota takes no token.
        let mut quota_state = None;
        if let Some(q) = req.plan.quota() {
            let w = window(q.period, q.offset, secs);
            if st.quota_start != w.start {
                st.quota_start = w.start;
                st.quota_used = 0;
            }
            let reset_secs = ceil_secs((w.end * NANOS_PER_SEC).saturating_sub(now)).max(1);
            let state = LimitState {
                limit: q.limit,
                remaining: q.limit.saturating_sub(st.quota_used),
                reset_secs,
                window_secs: w.len_secs(),
            };
            if st.quota_used >= q.limit {
                return Verdict {
                    outcome: Outcome::QuotaExceeded {
                        retry_after_secs: reset_secs,
                    },
                    burst: None,
                    quota: Some(state),
                };
            }
            quota_state = Some(state);
        }

        // Then the bucket: a throttled request spends no quota.
        let mut burst_state = None;
        if let (Some(t), true) = (
            req.plan.bucket_throttle(req.bucket),
            req.bucket != Bucket::None,
        ) {
            let tag = req.plan.bucket_tag(req.bucket);
            let i = match st.buckets.iter().position(|b| b.tag == tag) {
                Some(i) => i,
                None => {
                    st.buckets.push(self.new_bucket(tag, t));
                    st.buckets.len() - 1
                }
            };
            if st.buckets[i].throttle != *t {
                st.buckets[i] = self.new_bucket(tag, t);
            }
            let limit = u64::from(t.burst_limit);
            match st.buckets[i].limiter.check() {
                Ok(snapshot) => {
                    let remaining = u64::from(snapshot.remaining_burst_capacity());
                    let empty = (limit - remaining.min(limit)) as f64;
                    burst_state = Some(LimitState {
                        limit,
                        remaining,
                        reset_secs: (empty / t.rate_limit).ceil() as u64,
                        window_secs: t.fill_secs(),
                    });
                }
                Err(not_until) => {
                    let wait = not_until.wait_time_from(Nanos::from(now));
                    let retry = ceil_secs(u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX));
                    let retry = retry.max(1);
                    return Verdict {
                        outcome: Outcome::Throttled {
                            retry_after_secs: retry,
                        },
                        burst: Some(LimitState {
                            limit,
                            remaining: 0,
                            reset_secs: retry,
                            window_secs: t.fill_secs(),
                        }),
                        quota: quota_state,
                    };
                }
            }
        }

        // Admitted: count it.
        if let Some(q) = quota_state.as_mut() {
            st.quota_used += 1;
            q.remaining -= 1;
        }
        let day = Date::from_unix_secs(secs).days();
        if st.day != day {
            if st.day_used > 0 {
                st.history.push((st.day, st.day_used));
            }
            let oldest = day.saturating_sub(self.inner.retention_days);
            let stale = st.history.iter().take_while(|(d, _)| *d < oldest).count();
            st.history.drain(..stale);
            st.day = day;
            st.day_used = 0;
        }
        st.day_used += 1;
        Verdict {
            outcome: Outcome::Admitted,
            burst: burst_state,
            quota: quota_state,
        }
    }

    fn new_bucket(&self, tag: u64, t: &Throttle) -> BucketState<C> {
        BucketState {
            tag,
            throttle: *t,
            limiter: RateLimiter::direct_with_clock(
                gov_quota(t),
                GovClock(self.inner.clock.clone()),
            )
            .with_middleware::<StateInformationMiddleware>(),
        }
    }

    fn usage_now(
        &self,
        plan: &StagePlan,
        key_id: &str,
        start: Date,
        end: Date,
    ) -> Result<Vec<DayUsage>, MeterError> {
        if start > end {
            return Err(FieldError::new(
                "startDate",
                format!("{start} is after the end date {end}"),
            )
            .into());
        }
        if end.days() - start.days() > 366 {
            return Err(FieldError::new("endDate", "the range may span at most 366 days").into());
        }
        let mut days: Vec<(u32, u64)> = Vec::new();
        let hash = self.hash(plan.id(), key_id);
        self.inner.table.read(
            hash,
            |s| *s.key_id == *key_id && *s.plan_id == **plan.id(),
            |slot| {
                if let Some(slot) = slot {
                    let st = slot.state.lock();
                    days.extend_from_slice(&st.history);
                    if st.day_used > 0 {
                        days.push((st.day, st.day_used));
                    }
                }
            },
        );
        let used_on = |d: u32| -> u64 {
            days.iter()
                .find(|(day, _)| *day == d)
                .map_or(0, |(_, n)| *n)
        };
        Ok((start.days()..=end.days())
            .map(|d| {
                let used = used_on(d);
                let remaining = plan.quota().map(|q| {
                    let w = window(q.period, q.offset, u64::from(d) * SECS_PER_DAY);
                    let first = Date::from_unix_secs(w.start).days();
                    let spent: u64 = days
                        .iter()
                        .filter(|(day, _)| (first..=d).contains(day))
                        .map(|(_, n)| n)
                        .sum();
                    q.limit.saturating_sub(spent)
                });
                DayUsage {
                    date: Date::from_days(d),
                    used,
                    remaining,
                }
            })
            .collect())
    }
}

impl<C: Clock + Clone> Meter for LocalMeter<C> {
    fn admit(
        &self,
        req: &Admission<'_>,
    ) -> impl Future<Output = Result<Verdict, MeterError>> + Send {
        std::future::ready(Ok(self.decide(req)))
    }

    #[inline]
    fn admit_now(&self, req: &Admission<'_>) -> Option<Result<Verdict, MeterError>> {
        Some(Ok(self.decide(req)))
    }

    fn usage(
        &self,
        plan: &StagePlan,
        key_id: &str,
        start: Date,
        end: Date,
    ) -> impl Future<Output = Result<Vec<DayUsage>, MeterError>> + Send {
        std::future::ready(self.usage_now(plan, key_id, start, end))
    }
}
