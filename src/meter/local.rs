//! [`LocalMeter`]: the in-process meter: GCRA token buckets (governor's algorithm), exact quota
//! counters and the day's usage, per key and plan, in one small record each.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use hashbrown::hash_table::HashTable;
use parking_lot::{Mutex, RwLock};

use crate::clock::{Clock, SystemClock, NANOS_PER_SEC};
use crate::error::{FieldError, MeterError};
use crate::period::{window, Date, SECS_PER_DAY};
use crate::plan::{Bucket, StagePlan};

use super::{Admission, DayUsage, LimitState, Meter, Outcome, Verdict};
use crate::store::MeterSlot;

/// Numbers the meters of this process.
static METERS: AtomicU64 = AtomicU64::new(1);

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
    /// Takes a token at `now` from a bucket whose theoretical arrival time is `tat` (0 for a full
    /// bucket): the tokens left, or how long until one comes, in nanoseconds.
    #[inline]
    fn check(self, tat: &mut u64, now: u64) -> Result<u64, u64> {
        let t = self.t;
        let tau = t.saturating_mul(u64::from(self.burst) - 1);
        let at = if *tat == 0 { now } else { *tat };
        let earliest = at.saturating_sub(tau);
        if now < earliest {
            return Err(earliest - now);
        }
        let next = at.max(now).saturating_add(t);
        *tat = next;
        let room = now
            .saturating_add(tau)
            .saturating_add(t)
            .saturating_sub(next);
        Ok(room.min(tau.saturating_add(t)) / t)
    }

    /// Seconds for an empty bucket to fill, rounded up (at least 1).
    fn fill_secs(self) -> u64 {
        ceil_secs(self.t.saturating_mul(u64::from(self.burst))).max(1)
    }
}

/// Names a bucket in a record: 32 bits of its tag and parameters, never 0. Changed parameters
/// give another name, so a changed throttle starts a new, full bucket (two names collide with a
/// chance of one in 2³², and then the bucket keeps its state through the change).
fn bucket_name(tag: u64, gcra: Gcra) -> u32 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let h = (tag ^ gcra.t.rotate_left(17) ^ u64::from(gcra.burst).rotate_left(43)).wrapping_mul(K);
    ((h >> 32) as u32) | 1
}

/// What a key rarely has: usage of earlier days, and buckets beyond its first.
#[derive(Debug, Default)]
struct Cold {
    /// Earlier days with usage, oldest first, kept for the retention period.
    history: Vec<(u32, u64)>,
    /// Other buckets, by [`bucket_name`], with their theoretical arrival times.
    buckets: Vec<(u32, u64)>,
}

/// Everything metered of one key on one plan.
struct KeyMeter {
    /// The theoretical arrival time of the first bucket's next token (0: full).
    tat: u64,
    quota_used: u64,
    cold: Option<Box<Cold>>,
    /// [`bucket_name`] of the first bucket, 0 for none.
    bucket: u32,
    /// Requests admitted on `day` (saturating).
    day_used: u32,
    /// First day of the quota window counted in `quota_used`, in days since the epoch.
    quota_start: u32,
    /// The UTC day the key was last seen on (admitted or refused); `day_used` counts it.
    day: u32,
}

impl KeyMeter {
    const NEW: Self = Self {
        tat: 0,
        quota_used: 0,
        cold: None,
        bucket: 0,
        day_used: 0,
        quota_start: 0,
        day: 0,
    };
}

/// One key on one plan, in one 64-byte cache line: whose it is and its state. Records sit in
/// [`Records`] and never move; a record that the sweep takes back is free (`plan` and `key` 0)
/// until it is given to another key.
#[repr(align(64))]
struct Record {
    /// The plan's and the key's ids, as fixed 64-bit hashes ([`crate::plan::id_hash`]): the
    /// record never reads an id's text, and two ids that share both hashes (a chance of about
    /// one in 10¹⁹ per pair) would share a record. Changed only under the record's lock and its
    /// shard's write lock.
    plan: AtomicU64,
    key: AtomicU64,
    state: Mutex<KeyMeter>,
}

impl Record {
    #[inline]
    fn is(&self, plan: u64, key: u64) -> bool {
        self.plan.load(Ordering::Relaxed) == plan && self.key.load(Ordering::Relaxed) == key
    }
}

/// Records in chunks that never move: chunk `k` holds `FIRST_CHUNK << k` records, so a record
/// is found by its index with a little arithmetic and no lock.
const FIRST_CHUNK: usize = 1024;
const CHUNKS: usize = 23;

struct Records {
    chunks: [OnceLock<Box<[Record]>>; CHUNKS],
    /// The next index never used, and the indices the sweep freed.
    alloc: Mutex<(u32, Vec<u32>)>,
}

impl Records {
    fn new() -> Self {
        Self {
            chunks: std::array::from_fn(|_| OnceLock::new()),
            alloc: Mutex::new((0, Vec::new())),
        }
    }

    /// The chunk and the place in it of record `i`.
    #[inline]
    fn locate(i: u32) -> (usize, usize) {
        let n = i as usize / FIRST_CHUNK + 1;
        let k = (usize::BITS - 1 - n.leading_zeros()) as usize;
        (k, i as usize - FIRST_CHUNK * ((1 << k) - 1))
    }

    #[inline]
    fn get(&self, i: u32) -> Option<&Record> {
        let (k, at) = Self::locate(i);
        self.chunks.get(k)?.get()?.get(at)
    }

    /// A free record, made for `plan` and `key` with a new state.
    fn take(&self, plan: u64, key: u64, day: u32) -> Option<(u32, &Record)> {
        let i = {
            let mut alloc = self.alloc.lock();
            match alloc.1.pop() {
                Some(i) => i,
                None => {
                    let i = alloc.0;
                    alloc.0 = alloc.0.checked_add(1)?;
                    i
                }
            }
        };
        let (k, _) = Self::locate(i);
        self.chunks.get(k)?.get_or_init(|| {
            (0..FIRST_CHUNK << k)
                .map(|_| Record {
                    plan: AtomicU64::new(0),
                    key: AtomicU64::new(0),
                    state: Mutex::new(KeyMeter::NEW),
                })
                .collect()
        });
        let record = self.get(i)?;
        let mut st = record.state.lock();
        *st = KeyMeter {
            day,
            ..KeyMeter::NEW
        };
        record.plan.store(plan, Ordering::Relaxed);
        record.key.store(key, Ordering::Relaxed);
        drop(st);
        Some((i, record))
    }

    /// How many bytes the chunks take.
    fn bytes(&self) -> usize {
        self.chunks
            .iter()
            .filter_map(OnceLock::get)
            .map(|c| std::mem::size_of_val(&**c))
            .sum()
    }
}

/// A table of record indices.
type Shard = RwLock<HashTable<u32>>;

struct Inner<C> {
    /// A number no other meter of this process has, to know its own records in a [`MeterSlot`].
    id: u32,
    clock: C,
    retention_days: u32,
    hasher: foldhash::fast::RandomState,
    records: Records,
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

    /// What this meter leaves in a [`MeterSlot`] for record `i`.
    #[inline]
    fn lend(&self, i: u32) -> u64 {
        (u64::from(self.id) << 32) | u64::from(i)
    }

    /// The record a [`MeterSlot`] value of this meter names.
    #[inline]
    fn lent(&self, value: u64) -> Option<&Record> {
        if value >> 32 != u64::from(self.id) {
            return None;
        }
        self.records.get(value as u32)
    }

    /// The record of `plan` and `key` in the table, by its index.
    #[inline]
    fn find<'a>(
        &'a self,
        table: &HashTable<u32>,
        hash: u64,
        plan: u64,
        key: u64,
    ) -> Option<(u32, &'a Record)> {
        let i = *table.find(hash, |&i| {
            self.records.get(i).is_some_and(|r| r.is(plan, key))
        })?;
        Some((i, self.records.get(i)?))
    }

    fn rehash(&self, i: u32) -> u64 {
        self.records.get(i).map_or(0, |r| {
            self.hash(
                r.plan.load(Ordering::Relaxed),
                r.key.load(Ordering::Relaxed),
            )
        })
    }
}

/// The in-process [`Meter`]: one token bucket per key and bucket (governor's GCRA), an exact quota
/// counter and the usage per UTC day, per key and plan, in sharded memory.
///
/// Clones share the same state: give one meter to the layers of several stages, and a plan's
/// limits apply to a key summed over those stages, as AWS sums them.
///
/// A key's state is one 64-byte record (one cache line). Memory stays bounded: a key's record is
/// reclaimed once the key has not been seen for the retention period (90 days by default, counted
/// in UTC days, which also keeps 90 days of usage), and a bucket that has refilled is dropped, both
/// by a sweep that runs at most once an hour when a new key arrives, or when
/// [`sweep`](Self::sweep) is called. Reclaimed records are reused for new keys; the chunks that
/// hold them are kept until the meter is dropped ([`record_bytes`](Self::record_bytes)).
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
                // Truncated: a slot of another meter with the same number names a record of
                // this one, which the record's ids then refuse.
                id: METERS.fetch_add(1, Ordering::Relaxed) as u32,
                clock: self.clock,
                retention_days: self.retention_days,
                hasher: foldhash::fast::RandomState::default(),
                records: Records::new(),
                shards: (0..SHARDS).map(|_| RwLock::new(HashTable::new())).collect(),
                next_sweep: AtomicU64::new(0),
            }),
        }
    }
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
        let today = Date::from_unix_secs(now / NANOS_PER_SEC).days();
        let horizon = today.saturating_sub(inner.retention_days);
        let mut freed = Vec::new();
        for shard in inner.shards.iter() {
            let mut shard = shard.write();
            shard.retain(|&mut i| {
                let Some(record) = inner.records.get(i) else {
                    return false;
                };
                let mut st = record.state.lock();
                if st.day < horizon {
                    record.plan.store(0, Ordering::Relaxed);
                    record.key.store(0, Ordering::Relaxed);
                    *st = KeyMeter::NEW;
                    freed.push(i);
                    return false;
                }
                // A bucket whose arrival time has passed is full: the same as none.
                if st.bucket != 0 && st.tat <= now {
                    st.bucket = 0;
                    st.tat = 0;
                }
                if let Some(cold) = st.cold.as_mut() {
                    cold.buckets.retain(|&(_, tat)| tat > now);
                    if cold.buckets.is_empty() && cold.history.is_empty() {
                        st.cold = None;
                    }
                }
                true
            });
            if shard.capacity() > 64 && shard.len() < shard.capacity() / 4 {
                shard.shrink_to_fit(|&i| inner.rehash(i));
            }
        }
        let removed = freed.len();
        inner.records.alloc.lock().1.extend(freed);
        removed
    }

    /// How many bytes the meter's records take (they are kept in chunks that grow as keys come,
    /// and are reused once swept), not counting its tables.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tower_usage_plans::meter::{Admission, LocalMeter, Meter};
    /// use tower_usage_plans::model::{ApiStage, StageRef, Throttle, UsagePlan};
    /// use tower_usage_plans::plan::{Bucket, StagePlan};
    ///
    /// let meter = LocalMeter::new();
    /// assert_eq!(meter.record_bytes(), 0);
    /// let mut plan = UsagePlan::new("plan111", "FreePlan");
    /// plan.api_stages.push(ApiStage::new("abc123def4", "prod"));
    /// plan.throttle = Some(Throttle::new(10.0, 10).unwrap());
    /// let plan = StagePlan::new(&plan, &StageRef::any()).unwrap();
    /// let key: Arc<str> = "key111".into();
    /// meter.admit_now(&Admission::new(&key, &plan, Bucket::Plan));
    /// // The first chunk: 1,024 records of 64 bytes.
    /// assert_eq!(meter.record_bytes(), 1024 * 64);
    /// ```
    pub fn record_bytes(&self) -> usize {
        self.inner.records.bytes()
    }

    fn decide(&self, req: &Admission<'_>) -> Result<Verdict, MeterError> {
        let inner = &*self.inner;
        let now = inner.clock.now();
        let plan = req.plan.id_hash();
        let key = req
            .meter_slot
            .map_or_else(|| crate::plan::id_hash(req.key_id), MeterSlot::key_hash);

        // The store's slot for the key leads straight to its record: no hash, no table.
        if let Some(record) = req.meter_slot.and_then(|m| inner.lent(m.get())) {
            let mut st = record.state.lock();
            if record.is(plan, key) {
                return Ok(self.decide_locked(&mut st, req, now));
            }
        }

        let hash = inner.hash(plan, key);
        let shard = inner.shard(hash);
        let found = {
            let table = shard.read();
            inner
                .find(&table, hash, plan, key)
                .map(|(i, record)| (i, self.decide_locked(&mut record.state.lock(), req, now)))
        };
        let (i, verdict, inserted) = match found {
            Some((i, verdict)) => (i, verdict, false),
            None => {
                let mut table = shard.write();
                let (i, record, inserted) = match inner.find(&table, hash, plan, key) {
                    Some((i, record)) => (i, record, false),
                    None => {
                        let today = Date::from_unix_secs(now / NANOS_PER_SEC).days();
                        let Some((i, record)) = inner.records.take(plan, key, today) else {
                            // 2³² records in use: nothing left to meter with.
                            return Err(MeterError::Backend("the meter holds 2^32 keys".into()));
                        };
                        table.insert_unique(hash, i, |&i| inner.rehash(i));
                        (i, record, true)
                    }
                };
                let verdict = self.decide_locked(&mut record.state.lock(), req, now);
                (i, verdict, inserted)
            }
        };
        if let Some(meter_slot) = req.meter_slot {
            let lent = inner.lend(i);
            if meter_slot.get() != lent {
                meter_slot.set(lent);
            }
        }
        let secs = now / NANOS_PER_SEC;
        if inserted && secs >= inner.next_sweep.load(Ordering::Relaxed) {
            inner.next_sweep.store(secs + 3600, Ordering::Relaxed);
            self.sweep();
        }
        Ok(verdict)
    }

    /// Takes a token at `now` from the key's bucket named `name`: the first bucket if it is that
    /// one, or free (none, or full again); else one of the rare others.
    #[inline]
    fn take(st: &mut KeyMeter, name: u32, gcra: Gcra, now: u64) -> Result<u64, u64> {
        if st.bucket == name {
            return gcra.check(&mut st.tat, now);
        }
        let in_cold = st
            .cold
            .as_ref()
            .and_then(|c| c.buckets.iter().position(|b| b.0 == name));
        if in_cold.is_none() && (st.bucket == 0 || (st.tat != 0 && st.tat <= now)) {
            st.bucket = name;
            st.tat = 0;
            return gcra.check(&mut st.tat, now);
        }
        let cold = st.cold.get_or_insert_with(Box::default);
        let at = match in_cold {
            Some(at) => at,
            None => {
                cold.buckets.push((name, 0));
                cold.buckets.len() - 1
            }
        };
        gcra.check(&mut cold.buckets[at].1, now)
    }

    /// Files the usage of the key's last day and starts counting `day`.
    #[cold]
    fn turn_day(&self, st: &mut KeyMeter, day: u32) {
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

    #[inline]
    fn decide_locked(&self, st: &mut KeyMeter, req: &Admission<'_>, now: u64) -> Verdict {
        let secs = now / NANOS_PER_SEC;
        // The day turns for every request, admitted or not: `day` is also when the key was last
        // seen, which the sweep reads.
        let day = Date::from_unix_secs(secs).days();
        if st.day != day {
            self.turn_day(st, day);
        }

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
            match Self::take(st, bucket_name(tag, gcra), gcra, now) {
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
            if let Some((_, record)) = self.inner.find(&table, hash, plan_hash, key_hash) {
                let st = record.state.lock();
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
        std::future::ready(self.decide(req))
    }

    #[inline]
    fn admit_now(&self, req: &Admission<'_>) -> Option<Result<Verdict, MeterError>> {
        Some(self.decide(req))
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
    use super::*;

    /// A key's record is one 64-byte line, and a table slot one index: BENCHMARKS.md's 128 bytes
    /// per active key rests on it.
    #[test]
    fn a_record_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Record>(), 64);
        assert_eq!(std::mem::align_of::<Record>(), 64);
    }

    #[test]
    fn record_indices_map_to_chunks_without_gaps() {
        let mut expected = (0, 0);
        for i in 0..(FIRST_CHUNK * 7) as u32 {
            assert_eq!(Records::locate(i), expected, "record {i}");
            expected.1 += 1;
            if expected.1 == FIRST_CHUNK << expected.0 {
                expected = (expected.0 + 1, 0);
            }
        }
        let (k, at) = Records::locate(u32::MAX);
        assert!(k < CHUNKS && at < FIRST_CHUNK << k);
    }
}
