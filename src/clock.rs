//! Time, read through one trait so that every time-based behaviour has a deterministic test.
//!
//! The layer reads the clock once per request, through [`Clock::now`], as nanoseconds since the
//! Unix epoch in UTC. Token buckets use it as a steady count of nanoseconds; quota windows and the
//! daily usage use it as a calendar instant. [`SystemClock`] is the default; [`ManualClock`] is the
//! clock for tests: it stands still until told to move, and every clone shares one time.
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
//! assert_eq!(shared.now(), 1_700_000_001_500_000_000);
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds per second.
pub(crate) const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A source of the current time, in nanoseconds since the Unix epoch (UTC).
///
/// Implementations must be cheap: the layer calls `now` on every request that needs a key.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time, in nanoseconds since 1970-01-01T00:00:00Z.
    fn now(&self) -> u64;
}

/// The system's wall clock ([`SystemTime`]). A clock set before 1970 reads as the epoch.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
            d.as_secs()
                .saturating_mul(NANOS_PER_SEC)
                .saturating_add(u64::from(d.subsec_nanos()))
        })
    }
}

/// A clock that moves only when told to; clones share the same time.
///
/// See the [module example](self).
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at `nanos` nanoseconds after the Unix epoch.
    pub fn at_unix_nanos(nanos: u64) -> Self {
        Self {
            nanos: Arc::new(AtomicU64::new(nanos)),
        }
    }

    /// A clock standing at `secs` seconds after the Unix epoch.
    pub fn at_unix_secs(secs: u64) -> Self {
        Self::at_unix_nanos(secs.saturating_mul(NANOS_PER_SEC))
    }

    /// Moves the clock forward by `by` (saturating at `u64::MAX` nanoseconds).
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(by))
            });
    }

    /// Sets the clock to `nanos` nanoseconds after the Unix epoch (it may move backwards).
    pub fn set_unix_nanos(&self, nanos: u64) {
        self.nanos.store(nanos, Ordering::SeqCst);
    }

    /// Sets the clock to `secs` seconds after the Unix epoch.
    pub fn set_unix_secs(&self, secs: u64) {
        self.set_unix_nanos(secs.saturating_mul(NANOS_PER_SEC));
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now(&self) -> u64 {
        self.nanos.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now() > 1_577_836_800 * NANOS_PER_SEC);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at_unix_secs(10);
        assert_eq!(c.now(), 10 * NANOS_PER_SEC);
        c.advance(Duration::from_nanos(5));
        assert_eq!(c.now(), 10 * NANOS_PER_SEC + 5);
        c.set_unix_secs(3);
        assert_eq!(c.now(), 3 * NANOS_PER_SEC);
        c.advance(Duration::MAX);
        assert_eq!(c.now(), u64::MAX);
    }
}
