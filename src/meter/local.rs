//! [`LocalMeter`]: the in-process meter: the limit policy ([`super::policy`]) over a concurrent
//! map of each counter's state.

use std::borrow::Borrow;
use std::fmt;
use std::future::Ready;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::{Mutex, MutexGuard};

use crate::clock::{Clock, Now, SystemClock, NANOS_PER_SEC};
use crate::error::MeterError;
use crate::period::Date;

use super::contract::{Charge, Counter, DayUsage, Meter};
use super::policy::Verdict;
use super::policy::{self, Limits, Receipt, State, MAX_COUNTERS};

/// Shards of the map: each is locked and grown on its own, so that a shard's growth, or the sweep
/// of one, holds up only the few requests that land on it, and briefly (a shard holds about 250
/// counters at 1,000,000).
const SHARDS: usize = 4096;

/// Shards of the spare records a sweep leaves for new counters (a new counter takes one of its
/// shard's under that shard's lock alone).
const SPARE_SHARDS: usize = 64;

/// The most spare records a sweep frees: what it forgot beyond what new counters took is freed
/// this many at a time, one batch a sweep. Freed from the sweeper's thread, a record goes to
/// glibc malloc's fast bins of the thread that allocated it, which consolidates them in one go at
/// its next larger allocation: on a request. 512 keeps that under a millisecond; 16,384 let a
/// request wait 25 ms and more (BENCHMARKS.md). The memory is not lost meanwhile: a new counter
/// takes a spare before it allocates, and glibc would keep freed records in the process anyway.
const SPARE_FREED_PER_SWEEP: usize = 512;

/// Everything metered of one counter (a subject on a plan).
#[derive(Debug, Default)]
struct KeyState {
    /// The first bucket's theoretical arrival time (monotonic nanoseconds; 0 or past: full).
    tat: u64,
    /// The policy's quota count (see [`State`]).
    window_used: i64,
    /// The quota window, in seconds since the epoch, kept in 32 bits (instants up to
    /// 2106-02-07; a later one is kept as that day).
    window_start: u32,
    window_end: u32,
    day: u32,
    /// Saturating at `u32::MAX` (4,294,967,295 a day: 49,710 requests a second all day).
    day_used: u32,
    /// The first bucket's name, `None` for none.
    bucket: Option<Arc<str>>,
    /// What a counter rarely has: more buckets, and usage of earlier days.
    rest: Option<Box<Rest>>,
}

#[derive(Debug, Default)]
struct Rest {
    /// Other buckets, by name, with their theoretical arrival times.
    buckets: Vec<(Arc<str>, u64)>,
    /// Earlier days with usage, oldest first, kept for the retention period.
    history: Vec<(u32, u64)>,
}

fn secs32(secs: u64) -> u32 {
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// Whether the bucket name `have` is `want`: the same text (the same allocation, usually).
#[inline]
fn same(have: &Arc<str>, want: &str) -> bool {
    std::ptr::eq(have.as_ptr(), want.as_ptr()) && have.len() == want.len() || **have == *want
}

impl KeyState {
    fn policy_state(&self, tat: u64) -> State {
        State {
            tat,
            window_start: u64::from(self.window_start),
            window_end: u64::from(self.window_end),
            window_used: self.window_used,
            day: self.day,
            day_used: u64::from(self.day_used),
        }
    }

    /// Keeps the policy's new state (`s.tat` as the arrival time of the bucket at `slot`), filing
    /// the day's usage in the history when the day turned.
    fn keep(&mut self, s: &State, slot: Slot, retention_days: u32) {
        // On a new day, the day the state kept goes to the history, unless it is already past
        // the retention (a counter idle for longer); what the history holds past it goes, and
        // the history with it once empty: nothing is left allocated for a sweep to free.
        if s.day != self.day {
            let oldest = s.day.saturating_sub(retention_days);
            if self.day_used > 0 && self.day >= oldest {
                let history = &mut self.rest.get_or_insert_with(Box::default).history;
                history.push((self.day, u64::from(self.day_used)));
            }
            if let Some(rest) = self.rest.as_mut() {
                let stale = rest.history.iter().take_while(|(d, _)| *d < oldest).count();
                rest.history.drain(..stale);
                if rest.history.is_empty() && rest.buckets.is_empty() {
                    self.rest = None;
                }
            }
        }
        match slot {
            Slot::None => {}
            Slot::First => self.tat = s.tat,
            Slot::Rest(i) => {
                if let Some(b) = self.rest.as_mut().and_then(|r| r.buckets.get_mut(i)) {
                    b.1 = s.tat;
                }
            }
        }
        self.window_start = secs32(s.window_start);
        self.window_end = secs32(s.window_end);
        self.window_used = s.window_used;
        self.day = s.day;
        self.day_used = u32::try_from(s.day_used).unwrap_or(u32::MAX);
    }

    /// Where the bucket named `name` is kept, making room for it if it is new: in the first
    /// place if that is free (none there, or its bucket is full again, the same as none), else
    /// among the rest.
    fn slot(&mut self, name: &Arc<str>, now: u64) -> (Slot, u64) {
        if let Some(b) = &self.bucket {
            if same(b, name) {
                return (Slot::First, self.tat);
            }
        }
        let rest = self
            .rest
            .as_ref()
            .and_then(|r| r.buckets.iter().position(|b| same(&b.0, name)));
        if let Some(i) = rest {
            return (
                Slot::Rest(i),
                self.rest.as_ref().map_or(0, |r| r.buckets[i].1),
            );
        }
        if self.bucket.is_none() || self.tat <= now {
            self.bucket = Some(name.clone());
            self.tat = 0;
            return (Slot::First, 0);
        }
        let buckets = &mut self.rest.get_or_insert_with(Box::default).buckets;
        buckets.push((name.clone(), 0));
        (Slot::Rest(buckets.len() - 1), 0)
    }

    /// The counter's bucket slot and arrival time for `counter`, if it has a bucket.
    fn bucket_of(&mut self, counter: &Counter<'_>, now: u64) -> (Slot, u64) {
        match (counter.limits.bucket, counter.bucket) {
            (Some(_), Some(name)) => self.slot(name, now),
            _ => (Slot::None, 0),
        }
    }

    /// Adds `delta` to the usage of `day`, an earlier day than the state's (kept in the history
    /// if it is still within the retention).
    fn correct_history(&mut self, day: u32, delta: i64) {
        let Some(rest) = self.rest.as_mut() else {
            if delta > 0 && day < self.day {
                self.rest.get_or_insert_with(Box::default).history = vec![(day, delta as u64)];
            }
            return;
        };
        match rest.history.binary_search_by_key(&day, |(d, _)| *d) {
            Ok(i) => rest.history[i].1 = policy::apply(rest.history[i].1, delta),
            Err(i) if delta > 0 && day < self.day => {
                rest.history.insert(i, (day, delta.unsigned_abs()))
            }
            Err(_) => {}
        }
    }
}

/// What persistence keeps of one counter: the quota window's count and the usage per day.
/// Buckets are not kept: a restarted meter starts them full.
#[cfg(feature = "sqlite")]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Saved {
    /// The quota window, in seconds since the epoch.
    pub(crate) window_start: u64,
    pub(crate) window_end: u64,
    pub(crate) window_used: i64,
    pub(crate) day: u32,
    pub(crate) day_used: u64,
    /// Earlier days with usage, oldest first.
    pub(crate) history: Vec<(u32, u64)>,
}

#[derive(Clone, Copy, Debug)]
enum Slot {
    None,
    First,
    Rest(usize),
}

/// One counter: told apart by the plan's id and the subject (compared as text).
#[derive(Debug)]
struct Record {
    plan: Arc<str>,
    subject: Arc<str>,
    state: Mutex<KeyState>,
}

/// A record's shared handle: `triomphe`'s `Arc`, which keeps no weak count (8 bytes a record
/// fewer than the standard `Arc`, on every counter the meter holds).
type RecordArc = triomphe::Arc<Record>;

/// The map's key: a record, found by its ids.
#[derive(Clone, Debug)]
struct Rec(RecordArc);

/// A plan's id and a subject, however they are held: what the map is searched by.
trait Ids {
    fn ids(&self) -> (&str, &str);
}

impl Ids for Rec {
    fn ids(&self) -> (&str, &str) {
        (&self.0.plan, &self.0.subject)
    }
}

/// A search by ids.
struct Probe<'a>(&'a str, &'a str);

impl Ids for Probe<'_> {
    fn ids(&self) -> (&str, &str) {
        (self.0, self.1)
    }
}

impl Hash for dyn Ids + '_ {
    /// The subject alone: a subject on several plans is rare, and equality compares both ids
    /// (the plan's id is then not hashed on every request).
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write(self.ids().1.as_bytes());
    }
}

impl PartialEq for dyn Ids + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.ids() == other.ids()
    }
}

impl Eq for dyn Ids + '_ {}

impl Hash for Rec {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (self as &dyn Ids).hash(h);
    }
}

impl PartialEq for Rec {
    fn eq(&self, other: &Self) -> bool {
        self.ids() == other.ids()
    }
}

impl Eq for Rec {}

impl<'a> Borrow<dyn Ids + 'a> for Rec {
    fn borrow(&self) -> &(dyn Ids + 'a) {
        self
    }
}

type Map = DashMap<Rec, (), foldhash::fast::RandomState>;

struct Inner<C> {
    clock: C,
    retention_days: u32,
    map: Map,
    /// Records a sweep forgot, kept for new counters (see [`SPARE_FREED_PER_SWEEP`]).
    spare: Box<[Mutex<Vec<RecordArc>>]>,
}

/// The in-process [`Meter`]: the crate's limit policy (GCRA token buckets with a cost, exact quota
/// counters, usage per UTC day) over a concurrent map of each counter's state.
///
/// Clones share the same state: give one meter to the layers of several stages, and a plan's
/// limits apply to a key summed over those stages, as AWS sums them.
///
/// A charge locks only its own counters' records, briefly, to run the policy (several in a fixed
/// order); no request waits for housekeeping beyond the growth of one of the map's 4,096 shards.
/// Memory stays bounded by [`sweep`](Self::sweep), which the application calls now and then (or,
/// with the `tokio` feature, `spawn_sweeper` calls): it forgets a counter
/// not seen for the retention period (90 days by default, counted in UTC days) once its quota
/// window has ended and its buckets have refilled, and drops usage older than the retention. A
/// sweep never drops an open quota window, nor usage inside the retention.
///
/// Its futures are [`std::future::Ready`]: it never waits.
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
            .field("counters", &self.len())
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

    /// How many UTC days of usage to keep, at least 1 (default 90). A counter not seen for this
    /// long is forgotten by [`LocalMeter::sweep`] once its quota window has ended.
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
                map: DashMap::with_hasher_and_shard_amount(
                    foldhash::fast::RandomState::default(),
                    SHARDS,
                ),
                spare: (0..SPARE_SHARDS).map(|_| Mutex::default()).collect(),
            }),
        }
    }
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

    /// How many counters (subjects on plans) the meter holds.
    pub fn len(&self) -> usize {
        self.inner.map.len()
    }

    /// Whether the meter holds no state.
    pub fn is_empty(&self) -> bool {
        self.inner.map.is_empty()
    }

    /// Forgets what is no longer needed, and returns how many counters were forgotten: the state
    /// of a counter not seen for the retention period whose quota window has ended and whose
    /// buckets have refilled; usage older than the retention; buckets that have refilled.
    ///
    /// It walks the map under each shard's read lock in turn (a request for a new counter in that
    /// shard waits for the walk of its few hundred records), and takes each forgotten state out
    /// under a write lock of its own. Call it from a background task (every few minutes is
    /// plenty; see `spawn_sweeper` with the `tokio` feature), never from a request.
    ///
    /// The records it forgets are not freed at once: they are kept for new counters (a counter
    /// created after the sweep takes one, allocating nothing), and what no new counter took is
    /// freed by the next sweeps, 512 records a sweep at most (a pool that drains slowly after a
    /// spike of counters). Freeing hundreds of thousands at once left them in glibc malloc's
    /// fast bins, which the next larger allocation consolidated in one go on the request thread
    /// that made it (about 100 ms for 700,000 records here); and a counter's history past the
    /// retention is dropped when the counter is next charged, not left for the sweep to free.
    /// During sweeps that forget 1,000,000 counters, the longest wait of a request was 1.6 to
    /// 7.9 ms here (median of nine runs 4.4 ms) on glibc's default allocator, as long as the
    /// machine's own hiccups (BENCHMARKS.md, section 0).
    pub fn sweep(&self) -> usize {
        let inner = &*self.inner;
        let now = inner.clock.now();
        let unix_secs = now.unix_nanos / NANOS_PER_SEC;
        let today = Date::from_unix_secs(unix_secs).days();
        let horizon = today.saturating_sub(inner.retention_days);
        // Trims what a state keeps; says whether the whole state can go.
        let trim = |st: &mut KeyState| -> bool {
            if let Some(rest) = st.rest.as_mut() {
                rest.buckets.retain(|(_, tat)| *tat > now.monotonic_nanos);
                let stale = rest
                    .history
                    .iter()
                    .take_while(|(d, _)| *d < horizon)
                    .count();
                rest.history.drain(..stale);
                if rest.buckets.is_empty() && rest.history.is_empty() {
                    st.rest = None;
                }
            }
            if st.bucket.is_some() && st.tat <= now.monotonic_nanos {
                st.bucket = None;
                st.tat = 0;
            }
            let idle = st.day < horizon;
            let window_open = u64::from(st.window_end) > unix_secs;
            idle && !window_open && st.bucket.is_none() && st.rest.is_none()
        };
        let idle: Vec<Rec> = inner
            .map
            .iter()
            .filter(|entry| trim(&mut entry.key().0.state.lock()))
            .map(|entry| entry.key().clone())
            .collect();
        // What the last sweep left spare and no new counter took: freed, a bounded batch.
        for shard in inner.spare.iter() {
            let mut spare = shard.lock();
            let keep = spare.len() - spare.len().min(SPARE_FREED_PER_SWEEP / SPARE_SHARDS);
            // Taken out under the lock, freed after it.
            let gone = spare.split_off(keep);
            drop(spare);
            drop(gone);
        }
        let mut forgotten = 0;
        for rec in idle {
            // Seen again since the walk? Then it stays.
            let removed = inner
                .map
                .remove_if(&rec, |rec, _| trim(&mut rec.0.state.lock()));
            if removed.is_some() {
                forgotten += 1;
                drop(removed);
                // Unless a request still holds it, the record is kept for a new counter rather
                // than freed here.
                let mut rec = rec.0;
                if let Some(r) = RecordArc::get_mut(&mut rec) {
                    *r.state.get_mut() = KeyState::default();
                    let shard = (RecordArc::as_ptr(&rec) as usize >> 7) % SPARE_SHARDS;
                    inner.spare[shard].lock().push(rec);
                }
            }
        }
        forgotten
    }

    /// How many forgotten records are kept for new counters (for tests).
    #[cfg(test)]
    fn spare_len(&self) -> usize {
        self.inner.spare.iter().map(|s| s.lock().len()).sum()
    }

    /// The record of `plan` and `subject`, created if new.
    #[inline]
    fn record(&self, plan: &Arc<str>, subject: &Arc<str>) -> RecordArc {
        let map = &self.inner.map;
        if let Some(found) = map.get(&Probe(plan, subject) as &dyn Ids) {
            return found.key().0.clone();
        }
        let rec = Rec(self.new_record(plan, subject));
        map.entry(rec).or_insert(()).key().0.clone()
    }

    /// A record for a new counter: one a sweep left spare, if its shard holds one (no
    /// allocation), else a new one.
    #[inline]
    fn new_record(&self, plan: &Arc<str>, subject: &Arc<str>) -> RecordArc {
        let shard = (Arc::as_ptr(subject).cast::<u8>() as usize >> 4) % SPARE_SHARDS;
        let spare = {
            let mut spare = self.inner.spare[shard].lock();
            spare.pop()
        };
        if let Some(mut rec) = spare {
            if let Some(r) = RecordArc::get_mut(&mut rec) {
                r.plan = plan.clone();
                r.subject = subject.clone();
                return rec;
            }
        }
        RecordArc::new(Record {
            plan: plan.clone(),
            subject: subject.clone(),
            state: Mutex::new(KeyState::default()),
        })
    }

    /// Runs `f` on the state of `plan` and `subject` under its lock, creating it if new.
    #[inline]
    fn with_state<R>(
        &self,
        plan: &Arc<str>,
        subject: &Arc<str>,
        f: impl FnOnce(&mut KeyState) -> R,
    ) -> R {
        let map = &self.inner.map;
        if let Some(found) = map.get(&Probe(plan, subject) as &dyn Ids) {
            // The shard's read lock is held while the record is locked: the record cannot be
            // swept meanwhile, and no other lock is taken under it.
            return f(&mut found.key().0.state.lock());
        }
        f(&mut self.record(plan, subject).state.lock())
    }

    /// Decides `charge` at the clock's now.
    pub(crate) fn decide(&self, charge: &Charge<'_>) -> Verdict {
        let now = self.inner.clock.now();
        match charge.counters {
            [c] => self.decide_one(c, charge.cost, now),
            counters => self.decide_many(counters, charge.cost, now),
        }
    }

    #[inline]
    fn decide_one(&self, c: &Counter<'_>, cost: u32, now: Now) -> Verdict {
        let retention = self.inner.retention_days;
        self.with_state(c.plan_id, c.subject, |st| {
            let (slot, tat) = st.bucket_of(c, now.monotonic_nanos);
            let mut s = [st.policy_state(tat)];
            let verdict = policy::decide(&mut s, std::slice::from_ref(&c.limits), now, cost);
            st.keep(&s[0], slot, retention);
            verdict
        })
    }

    /// Several counters: each record locked in the order of its address (so two charges never
    /// wait for each other in a circle), decided at once, kept.
    fn decide_many(&self, counters: &[Counter<'_>], cost: u32, now: Now) -> Verdict {
        let n = counters.len().min(MAX_COUNTERS);
        let recs: Vec<RecordArc> = counters[..n]
            .iter()
            .map(|c| self.record(c.plan_id, c.subject))
            .collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| RecordArc::as_ptr(&recs[i]) as usize);
        // The counters of a charge name distinct subjects (`Charge::new`): a record each.
        let mut guards: Vec<Option<MutexGuard<'_, KeyState>>> = (0..n).map(|_| None).collect();
        for &i in &order {
            guards[i] = Some(recs[i].state.lock());
        }
        let mut slots = [(Slot::None, 0u64); MAX_COUNTERS];
        let mut states = [State::default(); MAX_COUNTERS];
        let mut limits = [Limits::default(); MAX_COUNTERS];
        for (i, st) in guards.iter_mut().enumerate() {
            if let Some(st) = st.as_deref_mut() {
                slots[i] = st.bucket_of(&counters[i], now.monotonic_nanos);
                states[i] = st.policy_state(slots[i].1);
                limits[i] = counters[i].limits;
            }
        }
        let verdict = policy::decide(&mut states[..n], &limits[..n], now, cost);
        let retention = self.inner.retention_days;
        for (i, st) in guards.iter_mut().enumerate() {
            if let Some(st) = st.as_deref_mut() {
                st.keep(&states[i], slots[i].0, retention);
            }
        }
        verdict
    }

    /// Corrects a charge (see [`policy::adjust`]).
    pub(crate) fn correct(&self, charge: &Charge<'_>, receipt: &Receipt, delta: i64) {
        let retention = self.inner.retention_days;
        for (i, c) in charge.counters.iter().enumerate().take(MAX_COUNTERS) {
            self.with_state(c.plan_id, c.subject, |st| {
                let (next, earlier) = policy::adjust(
                    &st.policy_state(0),
                    receipt.window_ends[i],
                    receipt.day.days(),
                    receipt.cost,
                    delta,
                );
                st.keep(&next, Slot::None, retention);
                if earlier != 0 {
                    st.correct_history(receipt.day.days(), earlier);
                }
            });
        }
    }

    pub(crate) fn usage_now(
        &self,
        counter: &Counter<'_>,
        start: Date,
        end: Date,
    ) -> Result<Vec<DayUsage>, MeterError> {
        super::contract::check_range(start, end)?;
        let probe = Probe(counter.plan_id, counter.subject);
        let (history, state) = match self.inner.map.get(&probe as &dyn Ids) {
            Some(found) => {
                let st = found.key().0.state.lock();
                let history = st
                    .rest
                    .as_ref()
                    .map(|r| r.history.clone())
                    .unwrap_or_default();
                (history, st.policy_state(0))
            }
            None => (Vec::new(), State::default()),
        };
        let quota = counter.limits.quota;
        Ok(
            policy::usage(&history, &state, quota.as_ref(), start.days(), end.days())
                .into_iter()
                .map(|(d, used, remaining)| DayUsage::new(Date::from_days(d), used, remaining))
                .collect(),
        )
    }

    pub(crate) fn set_remaining_now(
        &self,
        counter: &Counter<'_>,
        remaining: u64,
    ) -> Result<(), MeterError> {
        let Some(q) = counter.limits.quota else {
            return Err(super::contract::no_quota(counter));
        };
        let unix_secs = self.inner.clock.unix_nanos() / NANOS_PER_SEC;
        self.with_state(counter.plan_id, counter.subject, |st| {
            let next = policy::set_remaining(&st.policy_state(0), &q, unix_secs, remaining);
            st.keep(&next, Slot::None, self.inner.retention_days);
        });
        Ok(())
    }
}

/// What persistence reads and restores (feature `sqlite`). Each takes no lock a request takes
/// but one record's own, one record at a time.
#[cfg(feature = "sqlite")]
impl<C: Clock + Clone> LocalMeter<C> {
    /// How many UTC days of usage the meter keeps.
    pub(crate) fn retention(&self) -> u32 {
        self.inner.retention_days
    }

    /// Today, in days since the epoch, by the meter's clock.
    pub(crate) fn today(&self) -> u32 {
        Date::from_unix_secs(self.inner.clock.unix_nanos() / NANOS_PER_SEC).days()
    }

    /// The quota count and usage of `subject` on `plan`, if the meter holds it.
    pub(crate) fn saved(&self, plan: &str, subject: &str) -> Option<Saved> {
        let found = self.inner.map.get(&Probe(plan, subject) as &dyn Ids)?;
        let st = found.key().0.state.lock();
        Some(Saved {
            window_start: u64::from(st.window_start),
            window_end: u64::from(st.window_end),
            window_used: st.window_used,
            day: st.day,
            day_used: u64::from(st.day_used),
            history: st
                .rest
                .as_ref()
                .map_or_else(Vec::new, |r| r.history.clone()),
        })
    }

    /// Every counter's ids (for a first export of a meter that counted before it was tracked).
    pub(crate) fn ids(&self) -> Vec<(Arc<str>, Arc<str>)> {
        self.inner
            .map
            .iter()
            .map(|e| (e.key().0.plan.clone(), e.key().0.subject.clone()))
            .collect()
    }

    /// Sets the quota count and usage of `subject` on `plan` to `saved`, as loaded at start
    /// (before the meter serves requests). Buckets are left as they are.
    pub(crate) fn restore(&self, plan: &Arc<str>, subject: &Arc<str>, saved: Saved) {
        self.with_state(plan, subject, |st| {
            st.window_start = secs32(saved.window_start);
            st.window_end = secs32(saved.window_end);
            st.window_used = saved.window_used;
            st.day = saved.day;
            st.day_used = u32::try_from(saved.day_used).unwrap_or(u32::MAX);
            if saved.history.is_empty() {
                if let Some(rest) = st.rest.as_mut() {
                    rest.history.clear();
                }
            } else {
                st.rest.get_or_insert_with(Box::default).history = saved.history;
            }
        });
    }
}

#[cfg(feature = "tokio")]
impl<C: Clock + Clone> LocalMeter<C> {
    /// Spawns a tokio task that calls [`sweep`](Self::sweep) every `every` (on the runtime's
    /// timer), on a blocking thread so that it never holds up the runtime's workers. The task
    /// ends by itself when every clone of the meter has been dropped; abort the handle to end it
    /// sooner.
    ///
    /// Needs a tokio runtime with its timer enabled (feature `tokio`).
    pub fn spawn_sweeper(&self, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let meter = LocalMeter { inner };
                if tokio::task::spawn_blocking(move || meter.sweep())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        })
    }
}

impl<C: Clock + Clone> Meter for LocalMeter<C> {
    type Admit = Ready<Result<Verdict, MeterError>>;
    type Adjust = Ready<Result<(), MeterError>>;

    #[inline]
    fn admit(&self, charge: &Charge<'_>) -> Self::Admit {
        std::future::ready(Ok(self.decide(charge)))
    }

    fn adjust(&self, charge: &Charge<'_>, receipt: &Receipt, delta: i64) -> Self::Adjust {
        self.correct(charge, receipt, delta);
        std::future::ready(Ok(()))
    }

    fn usage(
        &self,
        counter: &Counter<'_>,
        start: Date,
        end: Date,
    ) -> impl std::future::Future<Output = Result<Vec<DayUsage>, MeterError>> + Send {
        std::future::ready(self.usage_now(counter, start, end))
    }

    fn set_remaining(
        &self,
        counter: &Counter<'_>,
        remaining: u64,
    ) -> impl std::future::Future<Output = Result<(), MeterError>> + Send {
        std::future::ready(self.set_remaining_now(counter, remaining))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_compared_as_text() {
        let map: Map = DashMap::with_hasher_and_shard_amount(Default::default(), 4);
        let rec = Rec(RecordArc::new(Record {
            plan: "p".into(),
            subject: "k".into(),
            state: Mutex::default(),
        }));
        map.insert(rec, ());
        assert!(map.get(&Probe("p", "k") as &dyn Ids).is_some());
        assert!(map.get(&Probe("q", "k") as &dyn Ids).is_none());
        assert!(map.get(&Probe("p", "K") as &dyn Ids).is_none());
        // The ids are two fields, not their concatenation.
        assert!(map.get(&Probe("pk", "") as &dyn Ids).is_none());
    }

    #[test]
    fn a_bucket_is_found_by_its_name_not_its_allocation() {
        let mut st = KeyState::default();
        let a: Arc<str> = "/items/GET".into();
        let b: Arc<str> = "/items/GET".into();
        let c: Arc<str> = "/items/POST".into();
        let (slot, _) = st.slot(&a, 0);
        assert!(matches!(slot, Slot::First));
        st.tat = 100;
        assert!(matches!(st.slot(&b, 0), (Slot::First, 100)));
        assert!(matches!(st.slot(&c, 0), (Slot::Rest(0), 0)));
    }

    /// A meter on a manual clock keeping one day of usage, and a quota of 10 a UTC day.
    fn day_quota_meter() -> (
        crate::clock::ManualClock,
        LocalMeter<crate::clock::ManualClock>,
        crate::meter::policy::Limits,
    ) {
        use crate::meter::policy::{Limits, QuotaLimits};
        use crate::model::QuotaPeriod;
        use crate::period::Calendar;

        let clock = crate::clock::ManualClock::at_unix_secs(1_700_000_000);
        let meter = LocalMeter::builder()
            .clock(clock.clone())
            .retention_days(1)
            .build();
        let limits = Limits::new(
            None,
            Some(QuotaLimits::new(10, Calendar::aws(QuotaPeriod::Day, 0))),
        );
        (clock, meter, limits)
    }

    #[test]
    fn a_swept_record_is_kept_for_a_new_counter_and_spares_are_freed_in_batches() {
        let (clock, meter, limits) = day_quota_meter();
        let plan: Arc<str> = "p".into();
        let n = SPARE_FREED_PER_SWEEP + 1000;
        let keys: Vec<Arc<str>> = (0..n).map(|i| format!("k{i}").into()).collect();
        for k in &keys {
            let counters = [Counter::new(&plan, k, None, limits)];
            meter.decide(&Charge::new(&counters, 1).unwrap());
        }
        clock.advance(std::time::Duration::from_secs(3 * 86_400));
        assert_eq!(meter.sweep(), n);
        assert_eq!(
            meter.spare_len(),
            n,
            "every forgotten record kept, none freed yet"
        );
        // A new counter takes a spare record (from its shard, if that shard has one): the
        // counter starts from nothing, whatever the record held.
        let fresh: Vec<Arc<str>> = (0..64).map(|i| format!("new{i}").into()).collect();
        for k in &fresh {
            let counters = [Counter::new(&plan, k, None, limits)];
            let v = meter.decide(&Charge::new(&counters, 1).unwrap());
            assert_eq!(
                v.quota.unwrap().remaining,
                9,
                "a reused record starts empty"
            );
        }
        let taken = n - meter.spare_len();
        assert!(taken > 0, "no spare record was reused");
        // The next sweep frees at most a batch of what is left.
        meter.sweep();
        let left = meter.spare_len();
        assert!(
            left >= n - taken - SPARE_FREED_PER_SWEEP && left < n - taken,
            "{left} spare records left of {}",
            n - taken
        );
    }

    #[test]
    fn a_day_already_past_the_retention_is_not_kept_when_its_counter_comes_back() {
        let (clock, meter, limits) = day_quota_meter();
        let (plan, key): (Arc<str>, Arc<str>) = ("p".into(), "k".into());
        let counters = [Counter::new(&plan, &key, None, limits)];
        let charge = Charge::new(&counters, 1).unwrap();
        meter.decide(&charge);
        // The next day, within the retention: yesterday's usage is kept.
        clock.advance(std::time::Duration::from_secs(86_400));
        meter.decide(&charge);
        let kept = meter.with_state(&plan, &key, |st| {
            st.rest.as_ref().map(|r| r.history.clone())
        });
        assert_eq!(kept.map(|h| h.len()), Some(1));
        // Three days later, both earlier days are past the retention: nothing is kept for them,
        // and nothing is left allocated for a sweep to free (on glibc, frees from the sweeper's
        // thread that the request thread's allocator later consolidates).
        clock.advance(std::time::Duration::from_secs(3 * 86_400));
        meter.decide(&charge);
        meter.with_state(&plan, &key, |st| {
            assert!(st.rest.is_none(), "{:?}", st.rest);
            assert_eq!(st.day_used, 1);
        });
    }
}
