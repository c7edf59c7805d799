//! [`LocalMeter`]: the in-process meter: GCRA token buckets (governor's algorithm), exact quota
//! counters and the day's usage, per key and plan, in one small record each.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hashbrown::hash_table::{Entry as TableEntry, HashTable};
use parking_lot::{Mutex, RwLock};

use crate::clock::{Clock, SystemClock, NANOS_PER_SEC};
use crate::error::{FieldError, MeterError};
use crate::period::{window, Date, SECS_PER_DAY};
use crate::plan::{Bucket, StagePlan};

use super::{Admission, DayUsage, LimitState, Meter, Outcome, Verdict};
use crate::store::MeterSlot;

/// Numbers the meters of this process.
static METERS: AtomicU64 = AtomicU64::new(1);

/// `KeyMeter::day` of a record the sweep took out of the table: a [`MeterSlot`] that still holds
/// it must not use it.
const SWEPT: u32 = u32::MAX;

/// Shards of the table: enough that two cores rarely meet on one lock.
const SHARDS: usize = 64;

/// A bucket's parameters, as governor derives them from a quota: one token every `t`
/// nanoseconds, `burst` at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Gcra {
    t: u64,
    burst: u32,
}

impl Gcra {
    /// Seconds for an empty bucket to fill, rounded up (at least 1).
    fn fill_secs(self) -> u64 {
        ceil_secs(self.t.saturating_mul(u64::from(self.burst))).max(1)
    }
}

/// One token bucket of a key: governor's GCRA on the meter's clock, kept as the theoretical
/// arrival time of the next token (`tat`, nanoseconds since the epoch; 0 for a full bucket).
#[derive(Clone, Copy, Debug)]
struct BucketState {
    /// [`StagePlan::bucket_tag`] of the bucket.
    tag: u64,
    /// The bucket's parameters; `t == 0` for no bucket. Changed parameters get a new, full bucket.
    t: u64,
    tat: u64,
    burst: u32,
}

impl BucketState {
    fn is_some(&self) -> bool {
        self.t != 0
    }

    fn gcra(&self) -> Gcra {
        Gcra {
            t: self.t,
            burst: self.burst,
        }
    }

    /// Takes a token at `now`: the tokens left, or how long until one comes, in nanoseconds.
    #[inline]
    fn check(&mut self, now: u64) -> Result<u64, u64> {
        let t = self.t;
        let tau = t.saturating_mul(u64::from(self.burst) - 1);
        let tat = if self.tat == 0 { now } else { self.tat };
        let earliest = tat.saturating_sub(tau);
        if now < earliest {
            return Err(earliest - now);
        }
        let next = tat.max(now).saturating_add(t);
        self.tat = next;
        let room = now
            .saturating_add(tau)
            .saturating_add(t)
            .saturating_sub(next);
        Ok(room.min(tau.saturating_add(t)) / t)
    }
}

/// A [`BucketState`] packed into the record: its tag cut to 32 bits beside its size.
#[derive(Clone, Copy, Debug)]
struct InlineBucket {
    tag: u32,
    burst: u32,
    t: u64,
    tat: u64,
}

impl InlineBucket {
    const NONE: Self = Self {
        tag: 0,
        burst: 0,
        t: 0,
        tat: 0,
    };
}

/// What a key rarely has: usage of earlier days, and buckets beyond its first.
#[derive(Debug, Default)]
struct Cold {
    /// Earlier days with usage, oldest first, kept for the retention period.
    history: Vec<(u32, u64)>,
    buckets: Vec<BucketState>,
}

/// Everything metered of one key on one plan.
struct KeyMeter {
    /// The first bucket the key drew from, usually the plan's.
    bucket: InlineBucket,
    quota_used: u64,
    cold: Option<Box<Cold>>,
    /// Requests admitted on `day` (saturating).
    day_used: u32,
    /// First day of the quota window counted in `quota_used`, in days since the epoch.
    quota_start: u32,
    /// The UTC day counted in `day_used`.
    day: u32,
    /// When the key was last admitted or refused, in seconds since the epoch.
    last_seen: u32,
}

/// One key on one plan: its identity and its record, allocated once, when the key first comes.
/// The store's [`MeterSlot`] of the key may hold it too, so the meter finds it without a lookup.
struct Slot {
    /// The [`Inner::id`] of the meter that made it.
    owner: u64,
    /// The plan's and the key's ids, as fixed 64-bit hashes ([`crate::plan::id_hash`]): the
    /// record never reads an id's text, and two ids that share both hashes (a chance of about
    /// one in 10¹⁹ per pair) would share a record.
    plan: u64,
    key: u64,
    state: Mutex<KeyMeter>,
}

impl Slot {
    #[inline]
    fn is(&self, plan: u64, key: u64) -> bool {
        self.plan == plan && self.key == key
    }
}

type Shard = RwLock<HashTable<Arc<Slot>>>;

struct Inner<C> {
    /// A number no other meter of this process has, to know its own records in a [`MeterSlot`].
    id: u64,
    clock: C,
    retention_days: u32,
    hasher: foldhash::fast::RandomState,
    /// The records, each behind a pointer: a table slot is one pointer, and a record is never
    /// moved when the table grows.
    shards: Box<[Shard]>,
    /// When the next sweep is due, in seconds since the epoch.
    next_sweep: AtomicU64,
}

impl<C> Inner<C> {
    #[inline]
    fn hash(&self, plan: u64, key: u64) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one((plan, key))
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Shard {
        &self.shards[((hash >> 32) as usize) % SHARDS]
    }
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
            .field("keys", &self.len())
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
                id: METERS.fetch_add(1, Ordering::Relaxed),
                clock: self.clock,
                retention_days: self.retention_days,
                hasher: foldhash::fast::RandomState::default(),
                shards: (0..SHARDS).map(|_| RwLock::new(HashTable::new())).collect(),
                next_sweep: AtomicU64::new(0),
            }),
        }
    }
}

fn ceil_secs(nanos: u64) -> u64 {
    nanos.div_ceil(NANOS_PER_SEC)
}

/// Seconds since the epoch as the record keeps them (until 2106).
fn secs32(secs: u64) -> u32 {
    u32::try_from(secs).unwrap_or(u32::MAX)
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
        self.inner.shards.iter().map(|s| s.read().len()).sum()
    }

    /// Whether the meter holds no state.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reclaims the state of keys not seen for the retention period, and the buckets that have
    /// refilled since they were last used; returns how many keys were forgotten.
    pub fn sweep(&self) -> usize {
        let inner = &*self.inner;
        let now = inner.clock.now();
        let secs = now / NANOS_PER_SEC;
        let horizon = secs.saturating_sub(u64::from(inner.retention_days) * SECS_PER_DAY);
        let mut removed = 0;
        for shard in inner.shards.iter() {
            let mut shard = shard.write();
            let before = shard.len();
            shard.retain(|slot| {
                let mut st = slot.state.lock();
                if u64::from(st.last_seen) < horizon {
                    st.day = SWEPT;
                    return false;
                }
                let idle = secs.saturating_sub(u64::from(st.last_seen));
                let inline = Gcra {
                    t: st.bucket.t,
                    burst: st.bucket.burst,
                };
                if st.bucket.t != 0 && idle >= inline.fill_secs() {
                    st.bucket = InlineBucket::NONE;
                }
                if let Some(cold) = st.cold.as_mut() {
                    cold.buckets.retain(|b| idle < b.gcra().fill_secs());
                    if cold.buckets.is_empty() && cold.history.is_empty() {
                        st.cold = None;
                    }
                }
                true
            });
            removed += before - shard.len();
            if shard.capacity() > 64 && shard.len() < shard.capacity() / 4 {
                shard.shrink_to_fit(|s| inner.hash(s.plan, s.key));
            }
        }
        removed
    }

    fn decide(&self, req: &Admission<'_>) -> Verdict {
        let inner = &*self.inner;
        let now = inner.clock.now();
        let secs = now / NANOS_PER_SEC;
        let plan = req.plan.id_hash();
        let key = req
            .meter_slot
            .map_or_else(|| crate::plan::id_hash(req.key_id), MeterSlot::key_hash);

        // The store's slot for the key leads straight to its record: no hash, no table.
        if let Some(meter_slot) = req.meter_slot {
            let found = meter_slot.with(|cached| {
                let slot = cached?.downcast_ref::<Slot>()?;
                if slot.owner != inner.id || !slot.is(plan, key) {
                    return None;
                }
                let mut st = slot.state.lock();
                (st.day != SWEPT).then(|| self.decide_locked(&mut st, req, now))
            });
            if let Some(verdict) = found {
                return verdict;
            }
        }

        let hash = inner.hash(plan, key);
        let shard = inner.shard(hash);
        let found = {
            let table = shard.read();
            table.find(hash, |s| s.is(plan, key)).map(|slot| {
                let verdict = self.decide_locked(&mut slot.state.lock(), req, now);
                (verdict, Self::to_lend(req.meter_slot, slot))
            })
        };
        let (verdict, slot, inserted) = match found {
            Some((verdict, slot)) => (verdict, slot, false),
            None => {
                let mut table = shard.write();
                let mut inserted = false;
                let slot =
                    match table.entry(hash, |s| s.is(plan, key), |s| inner.hash(s.plan, s.key)) {
                        TableEntry::Occupied(o) => o.into_mut(),
                        TableEntry::Vacant(v) => {
                            inserted = true;
                            v.insert(Arc::new(Slot {
                                owner: inner.id,
                                plan,
                                key,
                                state: Mutex::new(KeyMeter {
                                    bucket: InlineBucket::NONE,
                                    quota_used: 0,
                                    day_used: 0,
                                    cold: None,
                                    quota_start: 0,
                                    day: 0,
                                    last_seen: secs32(secs),
                                }),
                            }))
                            .into_mut()
                        }
                    };
                let verdict = self.decide_locked(&mut slot.state.lock(), req, now);
                (verdict, Self::to_lend(req.meter_slot, slot), inserted)
            }
        };
        if let (Some(meter_slot), Some(slot)) = (req.meter_slot, slot) {
            let _ = meter_slot.set(slot);
        }
        if inserted && secs >= inner.next_sweep.load(Ordering::Relaxed) {
            inner.next_sweep.store(secs + 3600, Ordering::Relaxed);
            self.sweep();
        }
        verdict
    }

    /// The record to leave in the store's slot: only into an empty slot, which is set once.
    #[inline]
    fn to_lend(meter_slot: Option<&MeterSlot>, slot: &Arc<Slot>) -> Option<Arc<Slot>> {
        meter_slot
            .filter(|m| m.with(|v| v.is_none()))
            .map(|_| slot.clone())
    }

    /// Takes a token at `now` from the bucket tagged `tag` of a key, made (full) if the key has
    /// none or its parameters changed.
    #[inline]
    fn take(st: &mut KeyMeter, tag: u64, gcra: Gcra, now: u64) -> Result<u64, u64> {
        let fresh = BucketState {
            tag,
            t: gcra.t,
            tat: 0,
            burst: gcra.burst,
        };
        let renew = |b: &mut BucketState| {
            if !b.is_some() || b.gcra() != gcra {
                *b = fresh;
            }
        };
        // The inline bucket keeps 32 bits of the tag (plan: 0; methods: odd, never 0).
        let short = tag as u32;
        if st.bucket.t == 0 || st.bucket.tag == short {
            let mut b = BucketState {
                tag: u64::from(st.bucket.tag),
                t: st.bucket.t,
                tat: st.bucket.tat,
                burst: st.bucket.burst,
            };
            if b.tag != u64::from(short) {
                b.t = 0;
            }
            renew(&mut b);
            let taken = b.check(now);
            st.bucket = InlineBucket {
                tag: short,
                burst: b.burst,
                t: b.t,
                tat: b.tat,
            };
            return taken;
        }
        let cold = st.cold.get_or_insert_with(Box::default);
        let b = match cold.buckets.iter().position(|b| b.tag == tag) {
            Some(i) => &mut cold.buckets[i],
            None => {
                cold.buckets.push(fresh);
                cold.buckets.last_mut().expect("just pushed")
            }
        };
        renew(b);
        b.check(now)
    }

    #[inline]
    fn decide_locked(&self, st: &mut KeyMeter, req: &Admission<'_>, now: u64) -> Verdict {
        let secs = now / NANOS_PER_SEC;
        st.last_seen = secs32(secs);

        // The quota first: a request refused for its quota takes no token.
        let mut quota_state = None;
        let mut counted = false;
        if let Some((q, w)) = req.plan.quota_window(secs) {
            let start = Date::from_unix_secs(w.start).days();
            if st.quota_start != start {
                st.quota_start = start;
                st.quota_used = 0;
            }
            let exceeded = st.quota_used >= q.limit;
            // The state is worked out only for a caller that reads it, or for a refusal.
            if exceeded || req.limits {
                let reset_secs = ceil_secs((w.end * NANOS_PER_SEC).saturating_sub(now)).max(1);
                let state = LimitState {
                    limit: q.limit,
                    remaining: q.limit.saturating_sub(st.quota_used),
                    reset_secs,
                    window_secs: w.len_secs(),
                };
                if exceeded {
                    return Verdict {
                        outcome: Outcome::QuotaExceeded {
                            retry_after_secs: reset_secs,
                        },
                        burst: None,
                        quota: req.limits.then_some(state),
                    };
                }
                quota_state = Some(state);
            }
            counted = true;
        }

        // Then the bucket: a throttled request spends no quota.
        let mut burst_state = None;
        if let (Some(t), true) = (
            req.plan.bucket_throttle(req.bucket),
            req.bucket != Bucket::None,
        ) {
            let tag = req.plan.bucket_tag(req.bucket);
            let limit = u64::from(t.burst_limit);
            let gcra = Gcra {
                t: req.plan.bucket_period_nanos(req.bucket),
                burst: t.burst_limit.max(1),
            };
            match Self::take(st, tag, gcra, now) {
                Ok(remaining) => {
                    if req.limits {
                        let empty = limit - remaining.min(limit);
                        burst_state = Some(LimitState {
                            limit,
                            remaining,
                            reset_secs: ceil_secs(empty.saturating_mul(gcra.t)),
                            window_secs: gcra.fill_secs(),
                        });
                    }
                }
                Err(wait) => {
                    let retry = ceil_secs(wait).max(1);
                    return Verdict {
                        outcome: Outcome::Throttled {
                            retry_after_secs: retry,
                        },
                        burst: req.limits.then(|| LimitState {
                            limit,
                            remaining: 0,
                            reset_secs: retry,
                            window_secs: gcra.fill_secs(),
                        }),
                        quota: quota_state,
                    };
                }
            }
        }

        // Admitted: count it.
        if counted {
            st.quota_used += 1;
            if let Some(q) = quota_state.as_mut() {
                q.remaining -= 1;
            }
        }
        let day = Date::from_unix_secs(secs).days();
        if st.day != day {
            if st.day_used > 0 {
                let cold = st.cold.get_or_insert_with(Box::default);
                cold.history.push((st.day, u64::from(st.day_used)));
            }
            if let Some(cold) = st.cold.as_mut() {
                let oldest = day.saturating_sub(self.inner.retention_days);
                let stale = cold.history.iter().take_while(|(d, _)| *d < oldest).count();
                cold.history.drain(..stale);
            }
            st.day = day;
            st.day_used = 0;
        }
        st.day_used = st.day_used.saturating_add(1);
        Verdict {
            outcome: Outcome::Admitted,
            burst: burst_state,
            quota: quota_state,
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
        let (plan_hash, key_hash) = (plan.id_hash(), crate::plan::id_hash(key_id));
        let hash = self.inner.hash(plan_hash, key_hash);
        {
            let table = self.inner.shard(hash).read();
            let slot = table.find(hash, |s| s.is(plan_hash, key_hash));
            if let Some(slot) = slot {
                let st = slot.state.lock();
                if let Some(cold) = &st.cold {
                    days.extend_from_slice(&cold.history);
                }
                if st.day_used > 0 {
                    days.push((st.day, u64::from(st.day_used)));
                }
            }
        }
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
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    /// A key's record is one allocation of at most 88 bytes (104 with `Arc`'s two counts), and a
    /// table slot one pointer: BENCHMARKS.md's 128 bytes per active key rests on it.
    #[test]
    fn a_record_is_small() {
        assert!(std::mem::size_of::<super::Slot>() <= 88);
        assert_eq!(std::mem::size_of::<Arc<super::Slot>>(), 8);
    }
}
