//! [`RedisMeter`]: the meter's state shared by several instances in Redis or Redis Cluster
//! (feature `redis`).
//!
//! Each decided request is one round trip (unless [hot-key leases](#hot-key-leases) are on): one
//! Lua script (`policy.lua`, loaded once and called
//! by its SHA, loaded again if the server answers `NOSCRIPT`) runs the crate's limit policy (GCRA
//! with a cost, the quota window counter, the day's usage) on the key's state and keeps the new
//! state, atomically. N instances against one Redis admit exactly what one instance would.
//!
//! # Where the state lives
//!
//! One hash per key on a plan, named `{prefix}{plan:key}` with the ids percent-escaped (`%`, `:`,
//! `{`, `}`), so that any id works and the whole hash is one Cluster hash tag, in one slot. It
//! holds the quota window and its count, the day and its usage, earlier days' usage (kept for the
//! retention, 90 days by default) and one field per bucket. Every write sets the hash to expire
//! once its key has been idle for the retention and its quota window has ended: idle state goes
//! by itself, never before the usage it holds is past the retention.
//!
//! # Time
//!
//! The script reads Redis's own clock (`TIME`), never the instance's: instances whose clocks
//! disagree still share one set of windows and buckets. It is one clock for the buckets and the
//! quotas. If Redis's clock steps back (NTP, a failover to a replica whose clock is behind):
//! quota windows and days never go back (the policy keeps the latest seen), and a bucket counts
//! the step as no time passed (its arrival time is kept relative to the instant it was written),
//! so a step back never throttles a key longer than its bucket would have anyway; it only refills
//! later by the size of the step.
//!
//! Arithmetic in Redis's Lua is on doubles: it is exact (the same verdicts as the local meter, as
//! the differential test checks) for quota limits up to 2^53 and buckets that fill in under 2^52
//! nanoseconds (52 days). A slower bucket (a rate below `burst / 52 days`) may answer a
//! `Retry-After` a second off.
//!
//! # When Redis is down, slow or failing over
//!
//! Every round trip is given up after the builder's
//! [`response_timeout`](RedisMeterBuilder::response_timeout) (1 second by default): an admission
//! then fails with [`MeterError::Backend`], which the layer answers as its
//! [`FailMode`](crate::FailMode) says (503 by default, or admitted unmetered) and counts under
//! the metrics' `outcome="unavailable"`. A request never waits on Redis longer than the timeout.
//! A Redis that refuses connections fails at once. redis-rs's connection manager (or the
//! cluster client) reconnects by itself, and the script is loaded again when a restarted or
//! promoted server does not know it (`NOSCRIPT`), so admissions resume when Redis is back,
//! without a restart. State held only by a Redis that was lost (no persistence, no replica) is
//! lost with it: quotas and buckets start again from full.
//!
//! # Hot-key leases
//!
//! Off by default, [`RedisMeterBuilder::lease`]`(tokens, ttl)` trades exact accounting of busy
//! keys for fewer round trips. A key seen twice within `ttl` on an instance is *hot* there: its
//! next round trip takes `tokens` tokens at once (at most its bucket's burst) through the same
//! script, and the instance spends them on the key's next requests with no round trip (the layer
//! answers them without awaiting) until they are spent or `ttl` has passed. If Redis has fewer
//! left than a lease, the request asks for its own tokens only: near its limits a key is
//! metered exactly.
//!
//! What it trades, and what it does not:
//! - The bucket and the quota are never exceeded, across any number of instances: a lease's
//!   tokens are taken from them in Redis before they are spent.
//! - Tokens count when leased. When a hot key goes quiet, what its lease holds unspent (at most
//!   `tokens - 1` per instance) stays counted: against its quota, in its usage report
//!   (`get-usage`), and out of its bucket until that refills. A key seen less than twice per
//!   `ttl` never takes a lease, so it is never charged for tokens it did not use.
//! - A lease taken before `update-usage` (`set_remaining`) on another instance is spent on that
//!   instance until it ends; the instance that sets the quota drops its own leases of the key.
//! - A lease taken just before a quota window or a UTC day ends counts in that window and day.
//! - The rate-limit headers of a leased request count the lease's unspent tokens as left.
//! - Only a charge of one counter takes or spends a lease: a charge of several (a key and its
//!   customer) is always one exact round trip, all or none, since a lease of one counter could
//!   not be exact for the others.
//! - A request spent from a lease has its own receipt (its cost, the lease's window and day): a
//!   correction of it ([`Meter::adjust`]) goes to Redis, through the same script, and changes the
//!   counts there; the lease itself is not refilled (its tokens were taken from the bucket).
//!
//! With `tokens` = 20, a key busy on every instance costs one round trip per 20 requests.
//! Keys not seen for a few `ttl`s are forgotten by a background task, never by a request.
//!
//! # Several counters in one charge
//!
//! A charge's counters are decided in one script call, all charged or none, so their hashes
//! must be in one hash slot on a Cluster. A counter's hash is named by its plan and subject
//! (`{prefix}{plan:subject}`, the hash tag), or, for a counter kept with another subject's (its
//! [`group`](Counter::group), a key's customer), by its plan and group:
//! `{prefix}{plan:group}subject`. Counters of several subjects charged together must share a
//! group on a Cluster (else it refuses them: `CROSSSLOT`); on a single Redis any counters go
//! together. Leases are taken only for charges of
//! one counter: a charge of several is always one exact round trip.
//!
//! # Examples
//!
//! ```no_run
//! use std::sync::Arc;
//! use tower_usage_plans::meter::policy::{Limits, QuotaLimits};
//! use tower_usage_plans::meter::{Charge, Counter, Meter, Outcome, RedisMeter};
//! use tower_usage_plans::model::QuotaPeriod;
//! use tower_usage_plans::period::Calendar;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let meter = RedisMeter::builder().connect("redis://127.0.0.1:6379").await?;
//! // Or a cluster, from any of its nodes:
//! // RedisMeter::builder().connect_cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
//!
//! let (plan, key): (Arc<str>, Arc<str>) = ("plan111".into(), "key111aaa".into());
//! let quota = QuotaLimits::new(1000, Calendar::aws(QuotaPeriod::Day, 0));
//! let counters = [Counter::new(&plan, &key, None, Limits::new(None, Some(quota)))];
//! let verdict = meter.admit(&Charge::new(&counters, 1)?).await?;
//! assert_eq!(verdict.outcome, Outcome::Admitted);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::clock::{Clock, NANOS_PER_SEC};
use crate::error::{BoxError, MeterError};
use crate::period::{Date, SECS_PER_DAY};
use crate::redis_conn::Conn;

use super::contract::{Charge, Counter, DayUsage, Meter};
use super::policy::{self, Limits, Receipt, State};
use super::policy::{LimitState, Outcome, Verdict};

mod lease;
#[cfg(all(test, feature = "testing"))]
mod tests;

use lease::{Ask, LeaseConfig, Leases};

/// The policy, in Lua; see the file's head for its fields and arguments.
const SCRIPT: &str = include_str!("policy.lua");

/// How long a round trip to Redis may take by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// The default prefix of the meter's keys in Redis.
pub const DEFAULT_PREFIX: &str = "tup:m:";

struct Inner {
    conn: Conn,
    script: ::redis::Script,
    prefix: Box<str>,
    retention_days: u32,
    /// How long a round trip may take.
    timeout: Duration,
    /// A test's clock, whose readings are sent to the script instead of its reading `TIME`.
    clock: Option<Arc<dyn Clock>>,
    /// Hot-key leases, if the builder turned them on.
    leases: Option<Arc<Leases>>,
}

/// The [`Meter`] whose state lives in Redis or Redis Cluster, shared by every instance that uses
/// the same Redis and prefix. See the [module docs](self).
///
/// Clones share the connection. Built by [`RedisMeter::builder`].
#[derive(Clone)]
pub struct RedisMeter {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisMeter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisMeter")
            .field("conn", &self.inner.conn.kind())
            .field("prefix", &self.inner.prefix)
            .field("retention_days", &self.inner.retention_days)
            .field("script", &self.inner.script.get_hash())
            .field("leases", &self.inner.leases)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RedisMeter`].
#[derive(Clone, Debug)]
#[must_use]
pub struct RedisMeterBuilder {
    prefix: String,
    retention_days: u32,
    timeout: Duration,
    clock: Option<Arc<dyn Clock>>,
    lease: Option<LeaseConfig>,
}

fn backend(e: impl Into<BoxError>) -> MeterError {
    MeterError::Backend(e.into())
}

fn timed_out(timeout: Duration) -> MeterError {
    backend(format!(
        "Redis did not answer within {timeout:?} (RedisMeterBuilder::response_timeout)"
    ))
}

impl RedisMeter {
    /// A builder: prefix, retention, then [`connect`](RedisMeterBuilder::connect) or
    /// [`connect_cluster`](RedisMeterBuilder::connect_cluster).
    pub fn builder() -> RedisMeterBuilder {
        RedisMeterBuilder {
            prefix: DEFAULT_PREFIX.to_owned(),
            retention_days: 90,
            timeout: DEFAULT_TIMEOUT,
            clock: None,
            lease: None,
        }
    }

    /// The SHA1 of the script the meter calls (`EVALSHA`).
    pub fn script_sha(&self) -> &str {
        self.inner.script.get_hash()
    }

    /// The Redis key holding `key_id`'s state on the plan `plan_id`: `{prefix}{plan:key}`, the
    /// ids percent-escaped.
    pub fn state_key(&self, plan_id: &str, key_id: &str) -> String {
        self.counter_key(plan_id, key_id, None)
    }

    /// The Redis key of a counter: [`state_key`](Self::state_key), or for a counter kept with
    /// another subject's (its [`group`](Counter::group)), `{prefix}{plan:group}subject`: in the
    /// group's hash slot.
    fn counter_key(&self, plan_id: &str, key_id: &str, group: Option<&str>) -> String {
        if let Some(group) = group.filter(|g| *g != key_id) {
            let mut out = self.counter_key(plan_id, group, None);
            escape(key_id, &mut out);
            return out;
        }
        let mut out =
            String::with_capacity(self.inner.prefix.len() + plan_id.len() + key_id.len() + 3);
        out.push_str(&self.inner.prefix);
        out.push('{');
        escape(plan_id, &mut out);
        out.push(':');
        escape(key_id, &mut out);
        out.push('}');
        out
    }

    /// A meter on the same connection with another prefix and clock (feature `testing`): the
    /// conformance suite's `make`, which must build a meter without awaiting.
    ///
    /// With a clock, the meter sends the clock's readings to the script instead of letting it
    /// read Redis's `TIME`, so that a test drives time by hand. Never in production: instances
    /// would each bring their own clock.
    #[cfg(feature = "testing")]
    pub fn with_clock_and_prefix(&self, clock: impl Clock, prefix: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                conn: self.inner.conn.clone(),
                script: self.inner.script.clone(),
                prefix: prefix.into(),
                retention_days: self.inner.retention_days,
                timeout: self.inner.timeout,
                clock: Some(Arc::new(clock)),
                leases: None,
            }),
        }
    }

    /// Runs the script with these keys and arguments (`op` and what follows the clock and the
    /// retention).
    async fn call(&self, keys: Vec<String>, args: Args) -> Result<Vec<i64>, MeterError> {
        let inner = &*self.inner;
        let mut inv = inner.script.prepare_invoke();
        for key in keys {
            inv.key(key);
        }
        let (ms, mn, us, un) = match &inner.clock {
            Some(c) => {
                let (m, u) = (c.monotonic_nanos(), c.unix_nanos());
                (
                    (m / NANOS_PER_SEC).to_string(),
                    m % NANOS_PER_SEC,
                    u / NANOS_PER_SEC,
                    u % NANOS_PER_SEC,
                )
            }
            None => (String::new(), 0, 0, 0),
        };
        inv.arg(args.op)
            .arg(ms)
            .arg(mn)
            .arg(us)
            .arg(un)
            .arg(inner.retention_days)
            .arg(args.cost)
            .arg(args.value)
            .arg(args.day);
        for c in &args.counters {
            inv.arg(&c.bucket)
                .arg(c.blocked)
                .arg(c.t)
                .arg(c.tau)
                .arg(c.tc)
                .arg(&c.limit)
                .arg(c.window.0)
                .arg(c.window.1)
                .arg(c.window.2)
                .arg(c.charged_end);
        }
        self.timed(inner.conn.clone().invoke(&inv)).await
    }

    /// `reply`, or an error once the response timeout has passed.
    async fn timed<T>(
        &self,
        reply: impl Future<Output = ::redis::RedisResult<T>>,
    ) -> Result<T, MeterError> {
        match tokio::time::timeout(self.inner.timeout, reply).await {
            Ok(r) => r.map_err(backend),
            Err(_) => Err(timed_out(self.inner.timeout)),
        }
    }

    /// The key's whole hash.
    async fn read(&self, key: String) -> Result<Vec<(String, String)>, MeterError> {
        let mut cmd = ::redis::cmd("HGETALL");
        cmd.arg(key);
        self.timed(self.inner.conn.clone().query(&cmd)).await
    }

    /// The policy's state of a subject on a plan, with the arrival time of the bucket named
    /// `bucket`, as Redis holds it (for the differential test), and the earlier days' usage.
    #[cfg(all(test, feature = "testing"))]
    pub(crate) async fn state(
        &self,
        plan_id: &str,
        key_id: &str,
        bucket: &str,
    ) -> Result<(State, Vec<(u32, u64)>), MeterError> {
        let fields = self.read(self.state_key(plan_id, key_id)).await?;
        Ok(parse_state(&fields, bucket))
    }

    /// The Redis keys of a charge's counters.
    fn keys(&self, charge: &Charge<'_>) -> Vec<String> {
        charge
            .counters
            .iter()
            .map(|c| self.counter_key(c.plan_id, c.subject, c.group.map(|g| &**g)))
            .collect()
    }

    /// The wall clock's seconds by which the crate works out each quota's window: the test's
    /// clock, or this instance's.
    fn unix_secs(&self) -> u64 {
        let nanos = match &self.inner.clock {
            Some(c) => c.unix_nanos(),
            None => crate::clock::SystemClock.unix_nanos(),
        };
        nanos / NANOS_PER_SEC
    }

    /// One round trip for `charge` (its own cost, or `cost` tokens for a lease).
    async fn admit_remote(
        self,
        keys: Vec<String>,
        args: Args,
        limits: Vec<Limits>,
    ) -> Result<Verdict, MeterError> {
        let reply = self.call(keys, args).await?;
        verdict(&reply, &limits)
    }
}

/// One counter's arguments to the script.
#[derive(Default)]
struct CounterArgs {
    bucket: String,
    blocked: u8,
    t: u64,
    tau: u64,
    tc: u64,
    /// The quota's limit; empty for none.
    limit: String,
    /// The quota window holding the caller's now, and the end of the one after it.
    window: (u64, u64, u64),
    /// For a correction: the end of the window the charge was counted in.
    charged_end: u64,
}

impl CounterArgs {
    fn new(c: &Counter<'_>, cost: u32, unix_secs: u64) -> Self {
        let mut a = CounterArgs::default();
        if let (Some(b), Some(name)) = (c.limits.bucket, c.bucket) {
            a.bucket = format!("b:{name}");
            // As policy::gcra.
            let t = b.period_nanos.max(1);
            a.blocked = u8::from(b.is_blocked() || cost > b.burst);
            a.t = t;
            a.tau = t.saturating_mul(u64::from(b.burst));
            a.tc = t.saturating_mul(u64::from(cost));
        }
        if let Some(q) = &c.limits.quota {
            a.limit = q.limit.to_string();
            let w = q.calendar.window_at(unix_secs);
            let next = q.calendar.window_at(w.end);
            a.window = (w.start, w.end, next.end);
        }
        a
    }
}

/// The script's arguments after the clock and the retention.
#[derive(Default)]
struct Args {
    op: &'static str,
    cost: u32,
    /// What is left (`s`), or the correction (`j`).
    value: i64,
    /// The charge's day (`j`).
    day: u32,
    counters: Vec<CounterArgs>,
}

impl Args {
    fn admit(charge: &Charge<'_>, cost: u32, unix_secs: u64) -> Self {
        Args {
            op: "a",
            cost,
            counters: charge
                .counters
                .iter()
                .map(|c| CounterArgs::new(c, cost, unix_secs))
                .collect(),
            ..Args::default()
        }
    }
}

fn escape(id: &str, out: &mut String) {
    for c in id.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
}

/// The policy's state from the hash's fields; the bucket `bucket`'s arrival time in nanoseconds.
fn parse_state(fields: &[(String, String)], bucket: &str) -> (State, Vec<(u32, u64)>) {
    let mut s = State::default();
    let mut history = Vec::new();
    let bucket = format!("b:{bucket}");
    for (f, v) in fields {
        match f.as_str() {
            "ws" => s.window_start = v.parse().unwrap_or(0),
            "we" => s.window_end = v.parse().unwrap_or(0),
            "wu" => s.window_used = v.parse().unwrap_or(0),
            "d" => s.day = v.parse().unwrap_or(0),
            "du" => s.day_used = v.parse().unwrap_or(0),
            f if f == bucket => {
                let mut parts = v.split(' ').map(|p| p.parse::<u64>().unwrap_or(0));
                let (secs, nanos, ahead) = (
                    parts.next().unwrap_or(0),
                    parts.next().unwrap_or(0),
                    parts.next().unwrap_or(0),
                );
                s.tat = secs
                    .saturating_mul(NANOS_PER_SEC)
                    .saturating_add(nanos)
                    .saturating_add(ahead);
            }
            f => {
                if let Some(day) = f.strip_prefix("u:").and_then(|d| d.parse().ok()) {
                    history.push((day, v.parse().unwrap_or(0)));
                }
            }
        }
    }
    if s.window_end != 0 && s.window_end < 10_000_000 {
        // Written when windows were days.
        s.window_start *= SECS_PER_DAY;
        s.window_end *= SECS_PER_DAY;
    }
    history.sort_unstable();
    (s, history)
}

/// The verdict from the script's reply to a charge whose counters have `limits`.
fn verdict(reply: &[i64], limits: &[Limits]) -> Result<Verdict, MeterError> {
    let [outcome, retry, b_rem, b_reset, b_i, q_rem, q_reset, ws, we, q_i, refused, day, ends @ ..] =
        reply
    else {
        return Err(backend(format!(
            "the meter's script answered {} values, not 12 or more",
            reply.len()
        )));
    };
    let n = |v: &i64| u64::try_from(*v).unwrap_or(0);
    let of = |i: &i64| usize::try_from(*i).ok().and_then(|i| i.checked_sub(1));
    let burst = |remaining, reset| {
        let b = limits.get(of(b_i)?)?.bucket?;
        Some(LimitState::new(
            u64::from(b.burst),
            remaining,
            reset,
            b.fill_secs(),
        ))
    };
    let quota = of(q_i)
        .and_then(|i| limits.get(i)?.quota)
        .map(|q| LimitState::new(q.limit, n(q_rem), n(q_reset), n(we).saturating_sub(n(ws))));
    let refused_by = of(refused);
    let day = Date::from_days(u32::try_from(*day).unwrap_or(0));
    Ok(match outcome {
        0 => {
            // The cost is set by the caller (`with_cost`): the script does not repeat it.
            let mut receipt = Receipt::new(0, day);
            for (slot, end) in receipt.window_ends.iter_mut().zip(ends) {
                *slot = n(end);
            }
            Verdict::new(
                Outcome::Admitted,
                burst(n(b_rem), n(b_reset)),
                quota,
                None,
                Some(receipt),
            )
        }
        1 => Verdict::new(
            Outcome::Throttled {
                retry_after_secs: n(retry),
            },
            burst(0, n(retry)),
            quota,
            refused_by,
            None,
        ),
        _ => Verdict::new(
            Outcome::QuotaExceeded {
                retry_after_secs: n(retry),
            },
            None,
            quota,
            refused_by,
            None,
        ),
    })
}

impl RedisMeterBuilder {
    /// The prefix of the meter's keys (default [`DEFAULT_PREFIX`]). Instances that share limits
    /// use the same prefix. A `{` or `}` in it would break the keys' hash tag: they are escaped.
    pub fn prefix(mut self, prefix: &str) -> Self {
        let mut out = String::new();
        for c in prefix.chars() {
            match c {
                '{' => out.push_str("%7B"),
                '}' => out.push_str("%7D"),
                c => out.push(c),
            }
        }
        self.prefix = out;
        self
    }

    /// How many UTC days of usage to keep, at least 1 (default 90). A key's state expires once
    /// it has been idle this long and its quota window has ended.
    pub fn retention_days(mut self, days: u32) -> Self {
        self.retention_days = days.max(1);
        self
    }

    /// How long to wait for Redis's answer to each round trip, and for a connection (default
    /// 1 second, at least 1 ms): past it, an admission fails with [`MeterError::Backend`] and the
    /// layer answers as its [`FailMode`](crate::FailMode) says. See the
    /// [module docs](self#when-redis-is-down-slow-or-failing-over).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_usage_plans::meter::RedisMeter;
    ///
    /// let builder = RedisMeter::builder().response_timeout(Duration::from_millis(250));
    /// assert!(format!("{builder:?}").contains("250ms"));
    /// ```
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Turns on hot-key leases (off by default): a key seen twice within `ttl` on this instance
    /// takes `tokens` tokens from Redis in one round trip (at most its bucket's burst), and the
    /// instance spends them on the key's next requests without a round trip, for up to `ttl`.
    /// See [the module docs](self#hot-key-leases) for what this trades. `tokens` below 2 leave
    /// leases off; `ttl` is at least 1 ms.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_usage_plans::meter::RedisMeter;
    ///
    /// // A busy key costs one round trip per 20 requests, per instance.
    /// let builder = RedisMeter::builder().lease(20, Duration::from_millis(200));
    /// assert!(format!("{builder:?}").contains("tokens: 20"));
    /// ```
    pub fn lease(mut self, tokens: u32, ttl: Duration) -> Self {
        self.lease = (tokens >= 2).then(|| LeaseConfig {
            tokens,
            ttl: ttl.max(Duration::from_millis(1)),
        });
        self
    }

    /// A clock whose readings the meter sends to the script instead of letting it read Redis's
    /// `TIME` (feature `testing`): for deterministic tests only. Every instance would bring its
    /// own clock: never in production.
    #[cfg(feature = "testing")]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Connects to one Redis at `url` (`redis://host:port/db`) through redis-rs's connection
    /// manager, which reconnects by itself, and loads the script.
    pub async fn connect(self, url: &str) -> Result<RedisMeter, MeterError> {
        let conn = Conn::single(url, self.timeout)
            .await
            .map_err(MeterError::Backend)?;
        self.build(conn).await
    }

    /// Connects to a Redis Cluster from some of its nodes (`redis://host:port` each), and loads
    /// the script.
    pub async fn connect_cluster<I, T>(self, nodes: I) -> Result<RedisMeter, MeterError>
    where
        I: IntoIterator<Item = T>,
        T: ::redis::IntoConnectionInfo,
    {
        let conn = Conn::cluster(nodes, self.timeout)
            .await
            .map_err(MeterError::Backend)?;
        self.build(conn).await
    }

    async fn build(self, mut conn: Conn) -> Result<RedisMeter, MeterError> {
        let script = ::redis::Script::new(SCRIPT);
        // Loaded now so that a script Redis refuses fails here, not on the first request; a
        // server that forgets it (a restart, SCRIPT FLUSH, a failover) gets it again on NOSCRIPT.
        tokio::time::timeout(self.timeout, conn.load(&script))
            .await
            .map_err(|_| timed_out(self.timeout))?
            .map_err(backend)?;
        let leases = self.lease.map(|config| {
            let clock = self
                .clock
                .clone()
                .unwrap_or_else(|| Arc::new(crate::clock::SystemClock));
            let leases = Arc::new(Leases::new(config, clock));
            lease::spawn_trimmer(
                Arc::downgrade(&leases),
                (config.ttl * 4).max(Duration::from_secs(1)),
            );
            leases
        });
        Ok(RedisMeter {
            inner: Arc::new(Inner {
                conn,
                script,
                prefix: self.prefix.into(),
                retention_days: self.retention_days,
                timeout: self.timeout,
                clock: self.clock,
                leases,
            }),
        })
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner").finish_non_exhaustive()
    }
}

/// The future of [`RedisMeter`]'s [`admit`](Meter::admit): a verdict at once (a lease spent),
/// or a round trip.
pub struct RedisAdmit(Kind);

enum Kind {
    Ready(Option<Result<Verdict, MeterError>>),
    Remote(Pin<Box<dyn Future<Output = Result<Verdict, MeterError>> + Send>>),
}

impl fmt::Debug for RedisAdmit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.0 {
            Kind::Ready(_) => "Ready",
            Kind::Remote(_) => "Remote",
        };
        f.debug_tuple("RedisAdmit").field(&kind).finish()
    }
}

impl Future for RedisAdmit {
    type Output = Result<Verdict, MeterError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            Kind::Ready(v) => Poll::Ready(v.take().expect("RedisAdmit polled after it completed")),
            Kind::Remote(f) => f.as_mut().poll(cx),
        }
    }
}

/// A boxed future of the meter's.
type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, MeterError>> + Send>>;

impl Meter for RedisMeter {
    type Admit = RedisAdmit;
    type Adjust = BoxFuture<()>;

    fn admit(&self, charge: &Charge<'_>) -> Self::Admit {
        let cost = charge.cost;
        let limits: Vec<Limits> = charge.counters.iter().map(|c| c.limits).collect();
        let unix_secs = self.unix_secs();
        let keys = self.keys(charge);
        // With leases, a charge of one counter: spent from this instance's lease, or what to
        // ask Redis for.
        let lease = match (&self.inner.leases, charge.counters) {
            (Some(leases), [c]) => {
                let key = lease::LeaseKey {
                    plan: c.plan_id.clone(),
                    subject: c.subject.clone(),
                    bucket: c.bucket_name().unwrap_or_default().into(),
                };
                if let Some(v) = leases.take(&key, cost) {
                    return RedisAdmit(Kind::Ready(Some(Ok(v))));
                }
                let burst = c.limits.bucket.map(|b| b.burst);
                match leases.ask(&key, cost, burst) {
                    Ask::Lease(tokens) => Some((
                        leases.clone(),
                        key,
                        tokens,
                        Args::admit(charge, tokens, unix_secs),
                    )),
                    Ask::Own => None,
                }
            }
            _ => None,
        };
        let args = Args::admit(charge, cost, unix_secs);
        let meter = self.clone();
        RedisAdmit(Kind::Remote(Box::pin(async move {
            if let Some((leases, key, tokens, lease_args)) = lease {
                let v = meter
                    .clone()
                    .admit_remote(keys.clone(), lease_args, limits.clone())
                    .await?;
                if v.outcome == Outcome::Admitted {
                    return Ok(leases.granted(key, tokens, cost, with_cost(v, cost)));
                }
                // Not that many left: the request alone, as without leases.
            }
            meter
                .admit_remote(keys, args, limits)
                .await
                .map(|v| with_cost(v, cost))
        })))
    }

    fn adjust(&self, charge: &Charge<'_>, receipt: &Receipt, delta: i64) -> Self::Adjust {
        let keys = self.keys(charge);
        let unix_secs = self.unix_secs();
        let args = Args {
            op: "j",
            cost: receipt.cost,
            value: delta,
            day: receipt.day.days(),
            counters: charge
                .counters
                .iter()
                .zip(receipt.window_ends)
                .map(|(c, end)| CounterArgs {
                    charged_end: end,
                    ..CounterArgs::new(c, 0, unix_secs)
                })
                .collect(),
        };
        let meter = self.clone();
        Box::pin(async move { meter.call(keys, args).await.map(drop) })
    }

    fn usage(
        &self,
        counter: &Counter<'_>,
        start: Date,
        end: Date,
    ) -> impl Future<Output = Result<Vec<DayUsage>, MeterError>> + Send {
        let quota = counter.limits.quota;
        let key = self.counter_key(
            counter.plan_id,
            counter.subject,
            counter.group.map(|g| &**g),
        );
        async move {
            super::contract::check_range(start, end)?;
            let fields = self.read(key).await?;
            let (state, history) = parse_state(&fields, "");
            Ok(
                policy::usage(&history, &state, quota.as_ref(), start.days(), end.days())
                    .into_iter()
                    .map(|(d, used, remaining)| DayUsage::new(Date::from_days(d), used, remaining))
                    .collect(),
            )
        }
    }

    fn set_remaining(
        &self,
        counter: &Counter<'_>,
        remaining: u64,
    ) -> impl Future<Output = Result<(), MeterError>> + Send {
        let key = self.counter_key(
            counter.plan_id,
            counter.subject,
            counter.group.map(|g| &**g),
        );
        let no_quota = counter
            .limits
            .quota
            .is_none()
            .then(|| super::contract::no_quota(counter));
        let args = Args {
            op: "s",
            value: i64::try_from(remaining).unwrap_or(i64::MAX),
            counters: vec![CounterArgs::new(counter, 0, self.unix_secs())],
            ..Args::default()
        };
        let ids = (counter.plan_id.clone(), counter.subject.clone());
        async move {
            if let Some(e) = no_quota {
                return Err(e);
            }
            self.call(vec![key], args).await?;
            if let Some(leases) = &self.inner.leases {
                leases.forget(&ids.0, &ids.1);
            }
            Ok(())
        }
    }
}

/// `v` with its receipt's cost set to `cost` (the script does not repeat it).
fn with_cost(mut v: Verdict, cost: u32) -> Verdict {
    if let Some(r) = v.receipt.as_mut() {
        r.cost = cost;
    }
    v
}
