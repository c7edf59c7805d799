//! Time, read through one trait so that every time-based behaviour has a deterministic test.
//!
//! A [`Clock`] gives two readings, because a usage plan needs two kinds of time:
//!
//! - a **monotonic** instant ([`Clock::monotonic_nanos`]), which never goes back: token buckets
//!   run on it, so a wall clock stepped back (NTP, a resumed VM) never locks a key out;
//! - the **UTC wall time** ([`Clock::unix_nanos`]): quota windows (calendar days, weeks, months)
//!   and the day a request is counted on are read from it. It may step back; the meter then keeps
//!   counting in the latest quota window and day it has seen, so a used window never opens again.
//!
//! [`SystemClock`] is the default; [`ManualClock`] is the clock for tests: it stands still until
//! told to move, and every clone shares one time.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use tower_usage_plans::clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::at_unix_secs(1_700_000_000);
//! let shared = clock.clone();
//! clock.advance(Duration::from_millis(1500));
//! assert_eq!(shared.unix_nanos(), 1_700_000_001_500_000_000);
//! assert_eq!(shared.monotonic_nanos(), 1_500_000_000);
//!
//! // The wall clock steps back an hour (NTP): the monotonic clock stands still.
//! clock.set_unix_secs(1_700_000_001 - 3600);
//! assert_eq!(shared.unix_nanos(), (1_700_000_001 - 3600) * 1_000_000_000);
//! assert_eq!(shared.monotonic_nanos(), 1_500_000_000);
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Nanoseconds per second.
pub(crate) const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A source of time: a monotonic instant for token buckets, and UTC wall time for quota windows.
///
/// Implementations must be cheap: the meter reads both on every request it decides.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Nanoseconds since an origin fixed for the clock's life. Never goes back.
    fn monotonic_nanos(&self) -> u64;

    /// The UTC wall time, in nanoseconds since 1970-01-01T00:00:00Z. May step back.
    fn unix_nanos(&self) -> u64;

    /// Both readings, as the meter takes them once per request. The default reads each;
    /// [`SystemClock`] reads the system's wall clock at most once a second (see there).
    #[inline]
    fn now(&self) -> Now {
        Now {
            monotonic_nanos: self.monotonic_nanos(),
            unix_nanos: self.unix_nanos(),
        }
    }
}

/// Both readings of a [`Clock`] at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// [`Clock::monotonic_nanos`].
    pub monotonic_nanos: u64,
    /// [`Clock::unix_nanos`].
    pub unix_nanos: u64,
}

impl<C: Clock> Clock for Arc<C> {
    fn monotonic_nanos(&self) -> u64 {
        (**self).monotonic_nanos()
    }

    fn unix_nanos(&self) -> u64 {
        (**self).unix_nanos()
    }

    fn now(&self) -> Now {
        (**self).now()
    }
}

/// The system's clocks: [`Instant`] (monotonic, from the first reading in this process) and
/// [`SystemTime`] (wall). A wall clock set before 1970 reads as the epoch.
///
/// [`now`](Clock::now), which the meter calls once per request, reads the monotonic clock each
/// time but the wall clock at most once a second: in between it moves the last wall reading on by
/// the monotonic clock. A request then pays for one clock read instead of two, and a step of the
/// system's wall clock (NTP) is seen within a second. [`unix_nanos`](Clock::unix_nanos) always
/// reads the wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

/// The wall clock less the monotonic clock at the last wall reading (wrapping).
static WALL_OFFSET: AtomicU64 = AtomicU64::new(0);
/// The monotonic time from which the wall clock must be read again; 0 until first read.
static WALL_READ_BY: AtomicU64 = AtomicU64::new(0);

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Clock for SystemClock {
    #[inline]
    fn monotonic_nanos(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(origin()))
    }

    #[inline]
    fn unix_nanos(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, nanos)
    }

    #[inline]
    fn now(&self) -> Now {
        let monotonic_nanos = self.monotonic_nanos();
        // Acquire: an offset stored before this deadline is seen with it.
        if monotonic_nanos < WALL_READ_BY.load(Ordering::Acquire) {
            return Now {
                monotonic_nanos,
                unix_nanos: monotonic_nanos.wrapping_add(WALL_OFFSET.load(Ordering::Relaxed)),
            };
        }
        let unix_nanos = self.unix_nanos();
        WALL_OFFSET.store(unix_nanos.wrapping_sub(monotonic_nanos), Ordering::Relaxed);
        WALL_READ_BY.store(
            monotonic_nanos.saturating_add(NANOS_PER_SEC).max(1),
            Ordering::Release,
        );
        Now {
            monotonic_nanos,
            unix_nanos,
        }
    }
}

/// A clock that moves only when told to; clones share the same time.
///
/// Its monotonic reading starts at 0. [`advance`](Self::advance) moves both readings, as time
/// passing does; [`set_unix_secs`](Self::set_unix_secs) sets the wall clock, and moves the
/// monotonic clock by as much when it goes forward, but not when it goes back, as a wall clock
/// stepped back by NTP does. See the [module example](self).
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    inner: Arc<Times>,
}

#[derive(Debug, Default)]
struct Times {
    monotonic: AtomicU64,
    unix: AtomicU64,
}

impl ManualClock {
    /// A clock whose wall time is `nanos` nanoseconds after the Unix epoch.
    pub fn at_unix_nanos(nanos: u64) -> Self {
        let clock = Self::default();
        clock.inner.unix.store(nanos, Ordering::SeqCst);
        clock
    }

    /// A clock whose wall time is `secs` seconds after the Unix epoch.
    pub fn at_unix_secs(secs: u64) -> Self {
        Self::at_unix_nanos(secs.saturating_mul(NANOS_PER_SEC))
    }

    /// Moves both readings forward by `by` (saturating at `u64::MAX` nanoseconds).
    pub fn advance(&self, by: Duration) {
        let by = nanos(by);
        for t in [&self.inner.monotonic, &self.inner.unix] {
            let _ = t.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(by))
            });
        }
    }

    /// Sets the wall clock to `nanos` nanoseconds after the Unix epoch. Forward, the monotonic
    /// clock moves as much (time passed); back, it stands still (the wall clock was stepped).
    pub fn set_unix_nanos(&self, nanos: u64) {
        let before = self.inner.unix.swap(nanos, Ordering::SeqCst);
        if let Some(passed) = nanos.checked_sub(before) {
            let _ = self
                .inner
                .monotonic
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    Some(n.saturating_add(passed))
                });
        }
    }

    /// Sets the wall clock to `secs` seconds after the Unix epoch; see
    /// [`set_unix_nanos`](Self::set_unix_nanos).
    pub fn set_unix_secs(&self, secs: u64) {
        self.set_unix_nanos(secs.saturating_mul(NANOS_PER_SEC));
    }
}

impl Clock for ManualClock {
    #[inline]
    fn monotonic_nanos(&self) -> u64 {
        self.inner.monotonic.load(Ordering::SeqCst)
    }

    #[inline]
    fn unix_nanos(&self) -> u64 {
        self.inner.unix.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_after_2020_and_monotonic() {
        assert!(SystemClock.unix_nanos() > 1_577_836_800 * NANOS_PER_SEC);
        let a = SystemClock.monotonic_nanos();
        assert!(SystemClock.monotonic_nanos() >= a);
    }

    #[test]
    fn system_now_keeps_the_wall_clock_within_a_second() {
        for _ in 0..1000 {
            let before = SystemClock.unix_nanos();
            let now = SystemClock.now();
            let after = SystemClock.unix_nanos();
            // Moved on by the monotonic clock from a reading at most a second old: never ahead
            // of the wall clock by more than the clocks' drift, never behind by a second.
            assert!(now.unix_nanos + NANOS_PER_SEC >= before, "{now:?} {before}");
            assert!(
                now.unix_nanos <= after + NANOS_PER_SEC / 100,
                "{now:?} {after}"
            );
        }
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at_unix_secs(10);
        assert_eq!(c.unix_nanos(), 10 * NANOS_PER_SEC);
        assert_eq!(c.monotonic_nanos(), 0);
        c.advance(Duration::from_nanos(5));
        assert_eq!(c.unix_nanos(), 10 * NANOS_PER_SEC + 5);
        assert_eq!(c.monotonic_nanos(), 5);
        c.set_unix_secs(3);
        assert_eq!(c.unix_nanos(), 3 * NANOS_PER_SEC);
        assert_eq!(
            c.monotonic_nanos(),
            5,
            "a step back leaves the monotonic clock"
        );
        c.set_unix_secs(13);
        assert_eq!(c.monotonic_nanos(), 5 + 10 * NANOS_PER_SEC);
        c.advance(Duration::MAX);
        assert_eq!(c.unix_nanos(), u64::MAX);
        assert_eq!(c.monotonic_nanos(), u64::MAX);
    }
}
