//! [`LocalMeter`]: the in-process meter: the limit policy ([`super::policy`]) over a concurrent
//! map of each key's state on each plan.

use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::Mutex;

use crate::clock::{Clock, SystemClock, NANOS_PER_SEC};
use crate::error::{FieldError, MeterError};
use crate::period::Date;
use crate::plan::StagePlan;

use super::policy::{self, Now, State};
use super::{Admission, DayUsage, Meter, Verdict};

/// Shards of the map: each is locked and grown on its own, so that a shard's growth, or the sweep
/// of one, holds up only the few requests that land on it, and briefly (a shard holds about 250
/// keys at 1,000,000, and grows without reading them: each record keeps its hash).
const SHARDS: usize = 4096;

/// Everything metered of one key on one plan.
#[derive(Debug, Default)]
struct KeyState {
    /// The first bucket's theoretical arrival time (monotonic nanoseconds; 0 or past: full).
    tat: u64,
    /// The policy's quota count, day and day's usage (see [`State`]).
    window_used: i64,
    /// Saturating at `u32::MAX` (4,294,967,295 a day: 49,710 requests a second all day).
    day_used: u32,
    window_start: u32,
    window_end: u32,
    day: u32,
    /// The first bucket's tag ([`StagePlan::bucket_tag`]: a small number, exact), 0 for none.
    bucket: u32,
    /// What a key rarely has: more buckets, and usage of earlier days.
    rest: Option<Box<Rest>>,
    /// The quota count or usage changed since [`LocalMeter::export_changed`] last copied it.
    changed: bool,
}

#[derive(Debug, Default)]
struct Rest {
    /// Other buckets, by tag, with their theoretical arrival times.
    buckets: Vec<(u32, u64)>,
    /// Earlier days with usage, oldest first, kept for the retention period.
    history: Vec<(u32, u64)>,
    /// The latest day of the history that export has copied.
    #[cfg(feature = "sqlite")]
    history_saved: u32,
}

impl KeyState {
    fn policy_state(&self, tat: u64) -> State {
        State {
            tat,
            window_start: self.window_start,
            window_end: self.window_end,
            window_used: self.window_used,
            day: self.day,
            day_used: u64::from(self.day_used),
        }
    }

    /// Keeps the policy's new state (`s.tat` as the arrival time of the bucket at `slot`), filing
    /// the day's usage in the history when the day turned.
    fn keep(&mut self, s: &State, slot: Slot, retention_days: u32) {
        self.changed |= s.window_start != self.window_start
            || s.window_end != self.window_end
            || s.window_used != self.window_used
            || s.day != self.day
            || s.day_used != u64::from(self.day_used);
        if s.day != self.day && self.day_used > 0 {
            let history = &mut self.rest.get_or_insert_with(Box::default).history;
            history.push((self.day, u64::from(self.day_used)));
            let oldest = s.day.saturating_sub(retention_days);
            let stale = history.iter().take_while(|(d, _)| *d < oldest).count();
            history.drain(..stale);
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
        self.window_start = s.window_start;
        self.window_end = s.window_end;
        self.window_used = s.window_used;
        self.day = s.day;
        self.day_used = u32::try_from(s.day_used).unwrap_or(u32::MAX);
    }

    /// Where the bucket tagged `tag` is kept, making room for it if it is new: in the first place
    /// if that is free (none there, or its bucket is full again, the same as none), else among
    /// the rest.
    fn slot(&mut self, tag: u32, now: u64) -> (Slot, u64) {
        if tag == 0 {
            return (Slot::None, 0);
        }
        if self.bucket == tag {
            return (Slot::First, self.tat);
        }
        let rest = self
            .rest
            .as_ref()
            .and_then(|r| r.buckets.iter().position(|b| b.0 == tag));
        if let Some(i) = rest {
            return (
                Slot::Rest(i),
                self.rest.as_ref().map_or(0, |r| r.buckets[i].1),
            );
        }
        if self.bucket == 0 || self.tat <= now {
            self.bucket = tag;
            self.tat = 0;
            return (Slot::First, 0);
        }
        let buckets = &mut self.rest.get_or_insert_with(Box::default).buckets;
        buckets.push((tag, 0));
        (Slot::Rest(buckets.len() - 1), 0)
    }
}

/// What persistence keeps of one key's state on one plan: the quota window's count and the usage
/// per day. Buckets are not kept: a restarted meter starts them full.
#[cfg(feature = "sqlite")]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Saved {
    pub(crate) window_start: u32,
    pub(crate) window_end: u32,
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

/// One key on one plan: told apart by the key's id itself (compared as text) and the plan's
/// number ([`StagePlan`]'s, equal for equal ids).
#[derive(Debug)]
struct Record {
    /// [`Inner::hash`] of the ids, kept so that a shard grows without reading them again.
    hash: u64,
    plan: u32,
    key: Arc<str>,
    state: Mutex<KeyState>,
}

/// The map's key: a record, found by its ids.
#[derive(Clone, Debug)]
struct Rec(Arc<Record>);

/// A plan's number and a key's id, and their hash, however they are held: what the map is
/// searched by.
trait Ids {
    fn hash64(&self) -> u64;
    fn ids(&self) -> (u32, &str);
}

impl Ids for Rec {
    fn hash64(&self) -> u64 {
        self.0.hash
    }

    fn ids(&self) -> (u32, &str) {
        (self.0.plan, &self.0.key)
    }
}

/// A search: the hash worked out once, and the ids.
struct Probe<'a> {
    hash: u64,
    plan: u32,
    key: &'a str,
}

impl Ids for Probe<'_> {
    fn hash64(&self) -> u64 {
        self.hash
    }

    fn ids(&self) -> (u32, &str) {
        (self.plan, self.key)
    }
}

impl Hash for dyn Ids + '_ {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.hash64());
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
    /// Hashes the ids once per request; the map then hashes that number.
    ids_hasher: foldhash::fast::RandomState,
    map: Map,
    /// The records whose quota count or usage changed since the last export, once each, for a
    /// [`PersistedMeter`](crate::meter::PersistedMeter): an export then reads those, not the
    /// whole map.
    #[cfg(feature = "sqlite")]
    changes: Changes,
}

/// Shards of [`Changes`]: a record goes in its hash's, so that requests of different keys seldom
/// meet on one lock.
#[cfg(feature = "sqlite")]
const CHANGE_SHARDS: usize = 64;

/// The records changed since the last export, kept only once an export asked for them.
#[cfg(feature = "sqlite")]
#[derive(Debug)]
struct Changes {
    tracked: std::sync::atomic::AtomicBool,
    shards: Box<[Mutex<Vec<Arc<Record>>>]>,
}

#[cfg(feature = "sqlite")]
impl Default for Changes {
    fn default() -> Self {
        Self {
            tracked: std::sync::atomic::AtomicBool::new(false),
            shards: (0..CHANGE_SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

#[cfg(feature = "sqlite")]
impl Changes {
    /// Notes that `rec` (locked by the caller) changed after its last export.
    fn note(&self, rec: &Arc<Record>) {
        if self.tracked.load(std::sync::atomic::Ordering::Relaxed) {
            self.shards[rec.hash as usize % CHANGE_SHARDS]
                .lock()
                .push(rec.clone());
        }
    }
}

impl<C> Inner<C> {
    fn probe<'a>(&self, plan: u32, key: &'a str) -> Probe<'a> {
        use std::hash::BuildHasher;
        Probe {
            hash: self.ids_hasher.hash_one((plan, key)),
            plan,
            key,
        }
    }
}

/// The in-process [`Meter`]: the crate's limit policy (GCRA token buckets with a cost, exact quota
/// counters, usage per UTC day) over a concurrent map of each key's state on each plan.
///
/// Clones share the same state: give one meter to the layers of several stages, and a plan's
/// limits apply to a key summed over those stages, as AWS sums them.
///
/// A request locks only its own key's record, briefly, to run the policy; no request waits for
/// housekeeping beyond the growth of one of the map's 4,096 shards. Memory stays bounded by
/// [`sweep`](Self::sweep), which the application calls now and then (or, with the `tokio`
/// feature, [`spawn_sweeper`](Self::spawn_sweeper) calls): it forgets a key not seen for the
/// retention period (90 days by default, counted in UTC days) once its quota window has ended and
/// its buckets have refilled, and drops usage older than the retention. A sweep never drops an
/// open quota window, nor usage inside the retention.
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

    /// How many UTC days of usage to keep, at least 1 (default 90). A key not seen for this long
    /// is forgotten by [`LocalMeter::sweep`] once its quota window has ended.
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
                ids_hasher: foldhash::fast::RandomState::default(),
                map: DashMap::with_hasher_and_shard_amount(
                    foldhash::fast::RandomState::default(),
                    SHARDS,
                ),
                #[cfg(feature = "sqlite")]
                changes: Changes::default(),
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

    /// How many key-and-plan states the meter holds.
    pub fn len(&self) -> usize {
        self.inner.map.len()
    }

    /// Whether the meter holds no state.
    pub fn is_empty(&self) -> bool {
        self.inner.map.is_empty()
    }

    fn now(&self) -> Now {
        let now = self.inner.clock.now();
        Now {
            monotonic: now.monotonic_nanos,
            unix: now.unix_nanos,
        }
    }

    /// Forgets what is no longer needed, and returns how many key-and-plan states were forgotten:
    /// the state of a key not seen for the retention period whose quota window has ended and
    /// whose buckets have refilled; usage older than the retention; buckets that have refilled.
    ///
    /// It walks the map under each shard's read lock in turn (a request for a new key in that
    /// shard waits for the walk of its few thousand records), and takes each forgotten state out
    /// under a write lock of its own. Call it from a background task (every few minutes is
    /// plenty; see `spawn_sweeper` with the `tokio` feature), never from a request.
    ///
    /// On glibc, forgetting hundreds of thousands of keys at once leaves their records in
    /// malloc's fast bins, which the next larger allocation consolidates in one go (about 25 ms
    /// for 700,000 records, on the thread that makes it): a service that sweeps that many should
    /// run with `GLIBC_TUNABLES=glibc.malloc.mxfast=0` or another allocator.
    pub fn sweep(&self) -> usize {
        let inner = &*self.inner;
        let now = self.now();
        let unix_secs = now.unix / NANOS_PER_SEC;
        let today = Date::from_unix_secs(unix_secs).days();
        let horizon = today.saturating_sub(inner.retention_days);
        // Trims what a state keeps; says whether the whole state can go.
        let trim = |st: &mut KeyState| -> bool {
            if let Some(rest) = st.rest.as_mut() {
                rest.buckets.retain(|&(_, tat)| tat > now.monotonic);
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
            if st.bucket != 0 && st.tat <= now.monotonic {
                st.bucket = 0;
                st.tat = 0;
            }
            let idle = st.day < horizon;
            let window_open = u64::from(st.window_end) * 86_400 > unix_secs;
            idle && !window_open && st.bucket == 0 && st.rest.is_none()
        };
        let idle: Vec<Rec> = inner
            .map
            .iter()
            .filter(|entry| trim(&mut entry.key().0.state.lock()))
            .map(|entry| entry.key().clone())
            .collect();
        idle.iter()
            .filter(|rec| {
                // Seen again since the walk? Then it stays.
                inner
                    .map
                    .remove_if(*rec, |rec, _| trim(&mut rec.0.state.lock()))
                    .is_some()
            })
            .count()
    }

    /// Runs `f` on the state of `key_id` on `plan`, creating it if new.
    #[inline]
    fn with_state<R>(&self, plan: u32, key_id: &Arc<str>, f: impl FnOnce(&mut KeyState) -> R) -> R {
        let map = &self.inner.map;
        let probe = self.inner.probe(plan, key_id);
        if let Some(found) = map.get(&probe as &dyn Ids) {
            return self.run(&found.key().0, f);
        }
        let rec = Rec(Arc::new(Record {
            hash: probe.hash,
            plan,
            key: key_id.clone(),
            state: Mutex::new(KeyState::default()),
        }));
        let entry = map.entry(rec).or_insert(());
        self.run(&entry.key().0, f)
    }

    /// Runs `f` on `rec`'s state under its lock, noting the record if `f` changed what an export
    /// copies.
    #[inline]
    fn run<R>(&self, rec: &Arc<Record>, f: impl FnOnce(&mut KeyState) -> R) -> R {
        let mut st = rec.state.lock();
        #[cfg(feature = "sqlite")]
        let was = st.changed;
        let r = f(&mut st);
        #[cfg(feature = "sqlite")]
        if st.changed && !was {
            self.inner.changes.note(rec);
        }
        r
    }

    fn decide(&self, req: Admission<'_>) -> Verdict {
        let now = self.now();
        let limits = req.plan.limits(req.bucket);
        // The tag names the bucket across rebuilds of the plan: a number this process gave its
        // method path (fewer than 2^32 of them: exact in 32 bits).
        let tag = req.plan.bucket_tag(req.bucket) as u32;
        let retention = self.inner.retention_days;
        self.with_state(req.plan.number(), req.key_id, |st| {
            let (slot, tat) = if limits.bucket.is_some() {
                st.slot(tag, now.monotonic)
            } else {
                (Slot::None, 0)
            };
            let (next, verdict) = policy::decide(&st.policy_state(tat), &limits, now, req.cost);
            st.keep(&next, slot, retention);
            verdict
        })
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
        let probe = self.inner.probe(plan.number(), key_id);
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
        let quota = plan.limits(crate::plan::Bucket::None).quota;
        Ok(
            policy::usage(&history, &state, quota.as_ref(), start.days(), end.days())
                .into_iter()
                .map(|(d, used, remaining)| DayUsage {
                    date: Date::from_days(d),
                    used,
                    remaining,
                })
                .collect(),
        )
    }

    fn set_remaining_now(
        &self,
        plan: &StagePlan,
        key_id: &str,
        remaining: u64,
    ) -> Result<(), MeterError> {
        let Some(q) = plan.limits(crate::plan::Bucket::None).quota else {
            return Err(FieldError::new(
                "remaining",
                format!(
                    "usage plan {:?} has no quota to set what is left of",
                    plan.id()
                ),
            )
            .into());
        };
        let unix_secs = self.now().unix / NANOS_PER_SEC;
        let key_id: Arc<str> = key_id.into();
        self.with_state(plan.number(), &key_id, |st| {
            let next = policy::set_remaining(&st.policy_state(0), &q, unix_secs, remaining);
            st.keep(&next, Slot::None, self.inner.retention_days);
        });
        Ok(())
    }
}

/// Export and import of the quota counts and usage, for persistence (feature `sqlite`). Neither
/// takes a lock a request takes but one record's own, one record at a time.
#[cfg(feature = "sqlite")]
impl<C: Clock + Clone> LocalMeter<C> {
    /// How many UTC days of usage the meter keeps.
    pub(crate) fn retention(&self) -> u32 {
        self.inner.retention_days
    }

    /// Today, in days since the epoch, by the meter's clock.
    pub(crate) fn today(&self) -> u32 {
        Date::from_unix_secs(self.now().unix / NANOS_PER_SEC).days()
    }

    /// Copies out each state whose quota count or usage changed since the last call, with its
    /// plan number and key id, and marks it unchanged; of its history, only the days filed since
    /// the last copy.
    ///
    /// The first call walks the whole map (each shard under its read lock in turn, each record
    /// locked briefly, as [`sweep`](Self::sweep) does) and from then on the meter notes each
    /// record as it changes: later calls read only those, so an export of a few changed keys
    /// among millions costs what those few cost. A record swept from the map after it changed is
    /// still exported.
    pub(crate) fn export_changed(&self) -> Vec<(u32, Arc<str>, Saved)> {
        let changes = &self.inner.changes;
        let mut out = Vec::new();
        if !changes
            .tracked
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            // Changes made before now were not noted: find them. (A record changed while this
            // walks may be noted too; the second time it is found unchanged.)
            for entry in self.inner.map.iter() {
                export(&entry.key().0, &mut out);
            }
        }
        for shard in changes.shards.iter() {
            let noted = std::mem::take(&mut *shard.lock());
            for rec in &noted {
                export(rec, &mut out);
            }
        }
        out
    }

    /// Sets the quota count and usage of `key_id` on the plan numbered `plan` to `saved`, as
    /// loaded at start (before the meter serves requests). Buckets are left as they are.
    pub(crate) fn import(&self, plan: u32, key_id: &Arc<str>, saved: Saved) {
        self.with_state(plan, key_id, |st| {
            st.window_start = saved.window_start;
            st.window_end = saved.window_end;
            st.window_used = saved.window_used;
            st.day = saved.day;
            st.day_used = u32::try_from(saved.day_used).unwrap_or(u32::MAX);
            if let Some(&(last, _)) = saved.history.last() {
                let rest = st.rest.get_or_insert_with(Box::default);
                rest.history = saved.history;
                rest.history_saved = last;
            } else if let Some(rest) = st.rest.as_mut() {
                rest.history.clear();
            }
            st.changed = false;
        });
    }
}

/// Copies `rec`'s state into `out` and marks it unchanged, if it changed since its last copy.
#[cfg(feature = "sqlite")]
fn export(rec: &Record, out: &mut Vec<(u32, Arc<str>, Saved)>) {
    let mut st = rec.state.lock();
    if !st.changed {
        return;
    }
    st.changed = false;
    out.push((
        rec.plan,
        rec.key.clone(),
        Saved {
            window_start: st.window_start,
            window_end: st.window_end,
            window_used: st.window_used,
            day: st.day,
            day_used: u64::from(st.day_used),
            history: st.rest.as_ref().map_or_else(Vec::new, |r| {
                r.history
                    .iter()
                    .filter(|(d, _)| *d > r.history_saved)
                    .copied()
                    .collect()
            }),
        },
    ));
    if let Some(rest) = st.rest.as_mut() {
        if let Some(&(last, _)) = rest.history.last() {
            rest.history_saved = rest.history_saved.max(last);
        }
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
    fn admit(
        &self,
        req: Admission<'_>,
    ) -> impl Future<Output = Result<Verdict, MeterError>> + Send {
        std::future::ready(Ok(self.decide(req)))
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

    fn set_remaining(
        &self,
        plan: &StagePlan,
        key_id: &str,
        remaining: u64,
    ) -> impl Future<Output = Result<(), MeterError>> + Send {
        std::future::ready(self.set_remaining_now(plan, key_id, remaining))
    }

    #[inline]
    fn admit_now(
        &self,
        req: Admission<'_>,
        _: crate::sealed::Token,
    ) -> Option<Result<Verdict, MeterError>> {
        Some(Ok(self.decide(req)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_compared_not_only_hashed() {
        let inner = Inner {
            clock: (),
            retention_days: 1,
            ids_hasher: Default::default(),
            map: DashMap::with_hasher_and_shard_amount(Default::default(), 4),
            #[cfg(feature = "sqlite")]
            changes: Changes::default(),
        };
        let probe = inner.probe(1, "k");
        let rec = Rec(Arc::new(Record {
            hash: probe.hash,
            plan: 1,
            key: "k".into(),
            state: Mutex::default(),
        }));
        inner.map.insert(rec, ());
        assert!(inner.map.get(&inner.probe(1, "k") as &dyn Ids).is_some());
        assert!(inner.map.get(&inner.probe(2, "k") as &dyn Ids).is_none());
        assert!(inner.map.get(&inner.probe(1, "K") as &dyn Ids).is_none());
        // The same hash with other ids is another record.
        let forged = Probe {
            hash: probe.hash,
            plan: 1,
            key: "j",
        };
        assert!(inner.map.get(&forged as &dyn Ids).is_none());
    }
}
