//! [`PersistedMeter`]: a [`LocalMeter`] whose quota counts and daily usage are written to the
//! [`SqliteStore`]'s file off the request path, and loaded at start.
//!
//! A request runs the [`LocalMeter`] as before: no I/O, no lock but its own record's. A
//! background thread copies out the states that changed every flush interval (1 second by
//! default) and writes them in one transaction; the last clone's drop, or
//! [`shutdown`](PersistedMeter::shutdown), writes what is left. Buckets are not kept: after a
//! restart every bucket starts full.
//!
//! # What the file keeps
//!
//! What [`LocalMeter::sweep`] would forget goes from the file too, at start and then once a day
//! (by the meter's clock) after a flush: usage of days before the meter's
//! [retention](crate::meter::LocalMeterBuilder::retention_days), and the state of each key idle
//! since before then whose quota window has ended. So the file holds the keys used within the
//! retention, not every key ever seen.
//!
//! # What a crash can lose
//!
//! A graceful shutdown loses nothing. A crash (SIGKILL, a panic that aborts, a power loss with
//! the WAL's `synchronous = NORMAL`) loses what was counted since the last flush that completed:
//! at most one flush interval of requests. So after a crash a key can exceed its quota by at most
//! what it could send in one interval: for each bucket it draws from (the plan's, and each
//! per-method override's), the burst plus the rate times the interval (for a plan of 10 rps
//! burst 20 without overrides and the default 1 s, 30 requests). A plan with a quota and no
//! throttle bounds it only by what the key sent in that interval.
//!
//! A quota set by hand ([`Meter::set_remaining`], AWS's `update-usage`) is written before the
//! call returns, with whatever else changed: it is never lost once confirmed.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use tower_usage_plans::clock::ManualClock;
//! use tower_usage_plans::meter::policy::{Limits, QuotaLimits};
//! use tower_usage_plans::meter::{Charge, Counter, LocalMeter, Meter, PersistedMeter};
//! use tower_usage_plans::model::QuotaPeriod;
//! use tower_usage_plans::period::Calendar;
//! use tower_usage_plans::store::SqliteStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! # let dir = std::env::temp_dir().join(format!("tup-doc-persist-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! # let path = dir.join("usage.db");
//! # let _ = std::fs::remove_file(&path);
//! let (plan, key): (Arc<str>, Arc<str>) = ("plan111".into(), "key111".into());
//! let quota = QuotaLimits::new(5, Calendar::aws(QuotaPeriod::Day, 0));
//! let counters = [Counter::new(&plan, &key, None, Limits::new(None, Some(quota)))];
//! let charge = Charge::new(&counters, 1).unwrap();
//! let clock = ManualClock::at_unix_secs(1_700_000_000);
//!
//! let store = SqliteStore::open(&path).unwrap();
//! let meter = PersistedMeter::new(&store, LocalMeter::with_clock(clock.clone())).unwrap();
//! for _ in 0..3 {
//!     meter.admit(&charge).await.unwrap();
//! }
//! meter.shutdown().unwrap(); // writes what is left
//! drop((meter, store));
//!
//! // Restarted: the quota goes on where it was.
//! let store = SqliteStore::open(&path).unwrap();
//! let meter = PersistedMeter::new(&store, LocalMeter::with_clock(clock)).unwrap();
//! let verdict = meter.admit(&charge).await.unwrap();
//! assert_eq!(verdict.quota.unwrap().remaining, 1);
//! # drop((meter, store));
//! # let _ = std::fs::remove_dir_all(&dir);
//! # }
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::{Future, Ready};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::params;

use crate::clock::{Clock, SystemClock};
use crate::error::MeterError;
use crate::period::Date;
use crate::store::sqlite::Db;
use crate::store::SqliteStore;

use super::contract::{Charge, Counter, DayUsage, Meter};
use super::local::LocalMeter;
use super::local::Saved;
use super::policy::Verdict;
use super::policy::{Outcome, Receipt};

/// The default flush interval.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

fn backend(e: rusqlite::Error) -> MeterError {
    MeterError::Backend(Box::new(e))
}

/// Shards of [`Changes`]: a counter goes in one chosen by its subject, so that requests of
/// different keys seldom meet on one lock.
const CHANGE_SHARDS: usize = 64;

/// A counter's ids: plan id, subject.
type Ids = (Arc<str>, Arc<str>);

/// The counters charged since the last flush (a counter may be there many times; a flush reads
/// each once).
struct Changes {
    shards: Box<[Mutex<Vec<Ids>>]>,
}

impl Changes {
    fn new() -> Self {
        Self {
            shards: (0..CHANGE_SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// Notes that the counters of `charge` changed.
    #[inline]
    fn note(&self, charge: &Charge<'_>) {
        for c in charge.counters {
            let shard = (Arc::as_ptr(c.subject).cast::<u8>() as usize >> 4) % CHANGE_SHARDS;
            self.shards[shard]
                .lock()
                .push((c.plan_id.clone(), c.subject.clone()));
        }
    }

    /// Every counter noted since the last call, once each.
    fn take(&self) -> HashSet<Ids> {
        let mut all = HashSet::new();
        for shard in self.shards.iter() {
            all.extend(std::mem::take(&mut *shard.lock()));
        }
        all
    }
}

/// Writes what changed.
struct Writer<C: Clock + Clone> {
    meter: LocalMeter<C>,
    db: Arc<Db>,
    changes: Changes,
    /// States copied out but not yet written (a write failed): written with the next flush.
    pending: Mutex<HashMap<Ids, Saved>>,
    /// The day (since the epoch) the file was last pruned of what the meter no longer keeps.
    pruned: std::sync::atomic::AtomicU32,
}

impl<C: Clock + Clone> Writer<C> {
    /// Copies out what changed and writes it, with anything a failed flush left; answers how
    /// many states were written.
    ///
    /// Each state is written with its day's usage and the last two days of its history (the
    /// day that ended since the last flush, however the flushes and the days fell), so the file
    /// holds every day's usage without rewriting a counter's whole history each time.
    fn flush(&self) -> Result<usize, MeterError> {
        let mut pending = self.pending.lock();
        for ids in self.changes.take() {
            if let Some(saved) = self.meter.saved(&ids.0, &ids.1) {
                pending.insert(ids, saved);
            }
        }
        if pending.is_empty() {
            self.prune_daily()?;
            return Ok(0);
        }
        let mut conn = self.db.conn.lock();
        let tx = conn.transaction().map_err(backend)?;
        {
            let mut state = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO meter_state (plan_id, key_id, window_start, \
                     window_end, window_used, day, day_used) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(backend)?;
            let mut usage = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO meter_usage (plan_id, key_id, day, used) \
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(backend)?;
            for ((plan, key), s) in pending.iter() {
                state
                    .execute(params![
                        &**plan,
                        &**key,
                        s.window_start as i64,
                        s.window_end as i64,
                        s.window_used,
                        s.day,
                        s.day_used as i64
                    ])
                    .map_err(backend)?;
                let recent = s.history.len().saturating_sub(2);
                for (day, used) in &s.history[recent..] {
                    usage
                        .execute(params![&**plan, &**key, day, *used as i64])
                        .map_err(backend)?;
                }
            }
        }
        tx.commit().map_err(backend)?;
        drop(conn);
        let written = pending.len();
        pending.clear();
        self.prune_daily()?;
        Ok(written)
    }

    /// [`prune`](Self::prune)s once a day (by the meter's clock).
    fn prune_daily(&self) -> Result<(), MeterError> {
        use std::sync::atomic::Ordering;
        let today = self.meter.today();
        if self.pruned.load(Ordering::Relaxed) != today {
            self.prune(&self.db.conn.lock())?;
            self.pruned.store(today, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Deletes from the file what [`LocalMeter::sweep`] forgets: the usage of days before the
    /// meter's retention, and each counter's state that has been idle since before it and whose
    /// quota window has ended (restoring either would give the key nothing it has not got
    /// without it). Answers how many rows went.
    fn prune(&self, conn: &rusqlite::Connection) -> Result<usize, MeterError> {
        let today = self.meter.today();
        let horizon = today.saturating_sub(self.meter.retention());
        let usage = conn
            .execute("DELETE FROM meter_usage WHERE day < ?1", [horizon])
            .map_err(backend)?;
        let states = conn
            .execute(
                "DELETE FROM meter_state WHERE day < ?1 AND window_end <= ?2",
                [i64::from(horizon), i64::from(today) * 86_400],
            )
            .map_err(backend)?;
        Ok(usage + states)
    }

    /// Loads every saved state into the meter; answers how many.
    fn load(&self) -> Result<usize, MeterError> {
        let conn = self.db.conn.lock();
        self.prune(&conn)?;
        self.pruned
            .store(self.meter.today(), std::sync::atomic::Ordering::Relaxed);
        let mut history: HashMap<(String, String), Vec<(u32, u64)>> = HashMap::new();
        let mut stmt = conn
            .prepare("SELECT plan_id, key_id, day, used FROM meter_usage ORDER BY day")
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    (r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                    (r.get::<_, u32>(2)?, r.get::<_, i64>(3)?),
                ))
            })
            .map_err(backend)?;
        for row in rows {
            let (ids, (day, used)) = row.map_err(backend)?;
            history
                .entry(ids)
                .or_default()
                .push((day, u64::try_from(used).unwrap_or(0)));
        }
        let mut stmt = conn
            .prepare(
                "SELECT plan_id, key_id, window_start, window_end, window_used, day, day_used \
                 FROM meter_state",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    (r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                    Saved {
                        window_start: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                        window_end: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                        window_used: r.get(4)?,
                        day: r.get(5)?,
                        day_used: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
                        history: Vec::new(),
                    },
                ))
            })
            .map_err(backend)?;
        let mut loaded = 0;
        for row in rows {
            let (ids, mut saved) = row.map_err(backend)?;
            if let Some(h) = history.remove(&ids) {
                saved.history = h.into_iter().filter(|(d, _)| *d < saved.day).collect();
            }
            let (plan, key): Ids = (ids.0.into(), ids.1.into());
            self.meter.restore(&plan, &key, saved);
            loaded += 1;
        }
        Ok(loaded)
    }
}

/// Stops the flushing thread when the last clone goes.
struct Guard {
    stop: Mutex<Option<mpsc::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Guard {
    /// Stops the thread, which writes what is left, and waits for it.
    fn stop(&self) {
        drop(self.stop.lock().take());
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A [`LocalMeter`] whose quota counts and daily usage persist in a [`SqliteStore`]'s file. See
/// the [module docs](self).
///
/// It notes the counters each admitted charge and each correction touched, and its flush copies
/// out those (not the whole map) and writes them. Clones share the meter and its flushing
/// thread; the last clone's drop writes what is left. Its futures are
/// [`std::future::Ready`], but for [`set_remaining`](Meter::set_remaining), which writes to the
/// file before it answers.
#[derive(Clone)]
pub struct PersistedMeter<C: Clock + Clone = SystemClock> {
    meter: LocalMeter<C>,
    writer: Arc<Writer<C>>,
    guard: Arc<Guard>,
}

impl<C: Clock + Clone> fmt::Debug for PersistedMeter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersistedMeter")
            .field("meter", &self.meter)
            .field("path", &self.writer.db.path)
            .finish()
    }
}

impl<C: Clock + Clone> PersistedMeter<C> {
    /// Loads the counts `store`'s file holds into `meter` (which should be new) and starts writing
    /// what changes every [`DEFAULT_FLUSH_INTERVAL`].
    pub fn new(store: &SqliteStore, meter: LocalMeter<C>) -> Result<Self, MeterError> {
        Self::with_flush_interval(store, meter, DEFAULT_FLUSH_INTERVAL)
    }

    /// As [`new`](Self::new), writing every `interval`: the most a crash can lose.
    pub fn with_flush_interval(
        store: &SqliteStore,
        meter: LocalMeter<C>,
        interval: Duration,
    ) -> Result<Self, MeterError> {
        let writer = Arc::new(Writer {
            meter: meter.clone(),
            db: store.db().clone(),
            changes: Changes::new(),
            pending: Mutex::default(),
            pruned: std::sync::atomic::AtomicU32::new(0),
        });
        // What the meter counted before it was given here is written with the first flush.
        for ids in meter.ids() {
            writer.changes.shards[0].lock().push(ids);
        }
        writer.load()?;
        let (stop, stopped) = mpsc::channel::<()>();
        let background = writer.clone();
        let thread = std::thread::Builder::new()
            .name("usage-plans-flush".into())
            .spawn(move || loop {
                let last = matches!(
                    stopped.recv_timeout(interval),
                    Err(RecvTimeoutError::Disconnected)
                );
                if let Err(e) = background.flush() {
                    tracing::warn!(error = %e, "cannot write the meter's counts; will try again");
                }
                if last {
                    return;
                }
            })
            .map_err(|e| MeterError::Backend(Box::new(e)))?;
        Ok(Self {
            meter,
            writer,
            guard: Arc::new(Guard {
                stop: Mutex::new(Some(stop)),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// The meter itself, for [`LocalMeter::sweep`] and its size. Charge through the
    /// `PersistedMeter`: what is charged through the `LocalMeter` directly is not written.
    pub fn local(&self) -> &LocalMeter<C> {
        &self.meter
    }

    /// Writes what changed now; answers how many counters' states were written.
    pub fn flush(&self) -> Result<usize, MeterError> {
        self.writer.flush()
    }

    /// Stops the flushing thread and writes what is left: call it at a graceful shutdown, after
    /// the server stopped taking requests. Counts made after it are written only by another
    /// [`flush`](Self::flush).
    pub fn shutdown(&self) -> Result<(), MeterError> {
        self.guard.stop();
        self.writer.flush().map(drop)
    }
}

impl<C: Clock + Clone> Meter for PersistedMeter<C> {
    type Admit = Ready<Result<Verdict, MeterError>>;
    type Adjust = Ready<Result<(), MeterError>>;

    #[inline]
    fn admit(&self, charge: &Charge<'_>) -> Self::Admit {
        let verdict = self.meter.decide(charge);
        if verdict.outcome == Outcome::Admitted {
            self.writer.changes.note(charge);
        }
        std::future::ready(Ok(verdict))
    }

    fn adjust(&self, charge: &Charge<'_>, receipt: &Receipt, delta: i64) -> Self::Adjust {
        self.meter.correct(charge, receipt, delta);
        self.writer.changes.note(charge);
        std::future::ready(Ok(()))
    }

    fn usage(
        &self,
        counter: &Counter<'_>,
        start: Date,
        end: Date,
    ) -> impl Future<Output = Result<Vec<DayUsage>, MeterError>> + Send {
        std::future::ready(self.meter.usage_now(counter, start, end))
    }

    fn set_remaining(
        &self,
        counter: &Counter<'_>,
        remaining: u64,
    ) -> impl Future<Output = Result<(), MeterError>> + Send {
        let set = self
            .meter
            .set_remaining_now(counter, remaining)
            .and_then(|()| {
                self.writer
                    .changes
                    .note(&Charge::new(std::slice::from_ref(counter), 0)?);
                // update-usage is a management change: in the file before it returns, as the
                // store's changes are (not at the next flush, which a crash could lose).
                self.writer.flush().map(drop)
            });
        std::future::ready(set)
    }
}
