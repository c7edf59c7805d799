//! Hot-key leases: an instance takes several tokens of a busy key from Redis in one round trip
//! and spends them locally (off by default; [`RedisMeterBuilder::lease`](super::RedisMeterBuilder::lease)).
//!
//! A key is *hot* on an instance once it has been seen there twice within the lease's time to
//! live. A hot key's next round trip asks for `tokens` at once (the same script, with that
//! cost); if Redis admits them, the instance keeps what the request did not spend and answers
//! the key's next requests from it, without Redis, until it is spent or its time to live ends. If
//! Redis refuses the lease (the bucket or the quota has less left), the request is asked for on
//! its own, as without leases: near its limits a key is metered exactly.

use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use crate::clock::Clock;
use crate::meter::policy::{LimitState, Outcome, Receipt, Verdict};

/// What leases are, for a meter: how many tokens, for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct LeaseConfig {
    pub(super) tokens: u32,
    pub(super) ttl: Duration,
}

/// Which counter (plan and subject) and bucket a lease is of.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct LeaseKey {
    pub(super) plan: Arc<str>,
    pub(super) subject: Arc<str>,
    /// The bucket's name; empty for none.
    pub(super) bucket: Arc<str>,
}

/// One key's lease on this instance.
#[derive(Clone, Copy, Debug)]
struct Lease {
    /// Tokens taken from Redis and not yet spent.
    left: u32,
    /// When the tokens may no longer be spent (monotonic nanoseconds).
    until: u64,
    /// Until when the key counts as hot (seen within the time to live).
    hot_until: u64,
    /// The verdict Redis gave the lease, with nothing of it spent yet.
    verdict: Option<Verdict>,
}

/// An instance's leases.
pub(super) struct Leases {
    config: LeaseConfig,
    clock: Arc<dyn Clock>,
    map: DashMap<LeaseKey, Lease>,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases")
            .field("tokens", &self.config.tokens)
            .field("ttl", &self.config.ttl)
            .field("held", &self.map.len())
            .finish()
    }
}

/// What to ask Redis for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ask {
    /// The request's own cost.
    Own,
    /// A lease of this many tokens (at least the request's cost).
    Lease(u32),
}

impl Leases {
    pub(super) fn new(config: LeaseConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            config,
            clock,
            map: DashMap::new(),
        }
    }

    fn ttl_nanos(&self) -> u64 {
        u64::try_from(self.config.ttl.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Spends `cost` of the key's lease, if it holds that many and has not ended: the verdict,
    /// with what the lease still holds counted as left.
    pub(super) fn take(&self, key: &LeaseKey, cost: u32) -> Option<Verdict> {
        let now = self.clock.monotonic_nanos();
        let mut lease = self.map.get_mut(key)?;
        if now >= lease.until || lease.left < cost {
            return None;
        }
        let v = lease.verdict?;
        lease.left -= cost;
        lease.hot_until = now.saturating_add(self.ttl_nanos());
        Some(with_left(v, lease.left, cost))
    }

    /// What to ask Redis for, when [`take`](Self::take) could not answer: a lease if the key is
    /// hot (seen within the time to live) and its bucket holds more than the request needs.
    /// Notes that the key was seen.
    pub(super) fn ask(&self, key: &LeaseKey, cost: u32, burst: Option<u32>) -> Ask {
        let now = self.clock.monotonic_nanos();
        let ttl = self.ttl_nanos();
        let hot = match self.map.entry(key.clone()) {
            Entry::Occupied(mut e) => {
                let lease = e.get_mut();
                let hot = now < lease.hot_until;
                lease.hot_until = now.saturating_add(ttl);
                hot
            }
            Entry::Vacant(e) => {
                e.insert(Lease {
                    left: 0,
                    until: 0,
                    hot_until: now.saturating_add(ttl),
                    verdict: None,
                });
                false
            }
        };
        // A lease never asks for more than the bucket holds, or less than the request needs.
        let tokens = burst.map_or(self.config.tokens, |b| self.config.tokens.min(b));
        if hot && tokens > cost {
            Ask::Lease(tokens)
        } else {
            Ask::Own
        }
    }

    /// Redis admitted a lease of `tokens` for a request of `cost`: keeps the rest. Answers the
    /// request's verdict.
    pub(super) fn granted(
        &self,
        key: LeaseKey,
        tokens: u32,
        cost: u32,
        verdict: Verdict,
    ) -> Verdict {
        let now = self.clock.monotonic_nanos();
        let until = now.saturating_add(self.ttl_nanos());
        let mut left = tokens - cost;
        match self.map.entry(key) {
            Entry::Occupied(mut e) => {
                let lease = e.get_mut();
                // Another request's lease, granted meanwhile and not ended: its tokens stay.
                if now < lease.until {
                    left = left.saturating_add(lease.left);
                }
                *lease = Lease {
                    left,
                    until,
                    hot_until: until,
                    verdict: Some(verdict),
                };
            }
            Entry::Vacant(e) => {
                e.insert(Lease {
                    left,
                    until,
                    hot_until: until,
                    verdict: Some(verdict),
                });
            }
        }
        with_left(verdict, left, cost)
    }

    /// Drops what this instance holds of the counter's leases (its quota was set anew).
    pub(super) fn forget(&self, plan: &str, subject: &str) {
        self.map
            .retain(|k, _| !(&*k.plan == plan && &*k.subject == subject));
    }

    /// Forgets the keys not seen within the time to live.
    fn trim(&self) {
        let now = self.clock.monotonic_nanos();
        self.map.retain(|_, l| l.hot_until > now || l.until > now);
    }

    /// How many keys this instance tracks (for tests).
    #[cfg(all(test, feature = "testing"))]
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }
}

/// `v`, with `left` more tokens counted as left in the bucket and the quota (the lease's, which
/// are the key's to spend), for a request of `cost`: its receipt names the lease's window and
/// day, and its own cost, so that a correction gives back what it spent.
fn with_left(v: Verdict, left: u32, cost: u32) -> Verdict {
    let more = |s: Option<LimitState>| {
        s.map(|s| LimitState {
            remaining: s.remaining.saturating_add(u64::from(left)).min(s.limit),
            ..s
        })
    };
    let receipt = v.receipt.map(|r| Receipt { cost, ..r });
    Verdict::new(
        Outcome::Admitted,
        more(v.burst),
        more(v.quota),
        None,
        receipt,
    )
}

/// Trims `leases` every few time-to-lives on a tokio task, until the meter is dropped: no request
/// pays for forgetting keys.
pub(super) fn spawn_trimmer(leases: Weak<Leases>, every: Duration) {
    crate::redis_conn::spawn_every(leases, every, |leases| async move { leases.trim() });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn keys_not_seen_within_the_time_to_live_are_forgotten() {
        let clock = ManualClock::at_unix_secs(1_700_000_000);
        let leases = Leases::new(
            LeaseConfig {
                tokens: 10,
                ttl: Duration::from_secs(1),
            },
            Arc::new(clock.clone()),
        );
        let key = |k: &str| LeaseKey {
            plan: "p".into(),
            subject: k.into(),
            bucket: "plan".into(),
        };
        let (a, b) = (key("a"), key("b"));
        assert_eq!(leases.ask(&a, 1, Some(100)), Ask::Own, "cold");
        assert_eq!(
            leases.ask(&a, 1, Some(5)),
            Ask::Lease(5),
            "hot: at most the burst"
        );
        assert_eq!(
            leases.ask(&a, 5, Some(5)),
            Ask::Own,
            "no lease of what one needs"
        );
        clock.advance(Duration::from_millis(600));
        leases.ask(&b, 1, None);
        clock.advance(Duration::from_millis(600));
        leases.trim();
        assert_eq!(leases.map.len(), 1, "a went quiet 1.2 s ago; b 0.6 s ago");
        clock.advance(Duration::from_millis(600));
        leases.trim();
        assert_eq!(leases.map.len(), 0);
    }
}
