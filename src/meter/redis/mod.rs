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
//!
//! With `tokens` = 20, a key busy on every instance costs one round trip per 20 requests.
//! Keys not seen for a few `ttl`s are forgotten by a background task, never by a request.
//!
//! # Examples
//!
//! ```no_run
//! use std::sync::Arc;
//! use tower_usage_plans::meter::{Admission, Meter, Outcome, RedisMeter};
//! use tower_usage_plans::model::{ApiStage, Quota, QuotaPeriod, StageRef, UsagePlan};
//! use tower_usage_plans::plan::{Bucket, StagePlan};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let meter = RedisMeter::builder().connect("redis://127.0.0.1:6379").await?;
//! // Or a cluster, from any of its nodes:
//! // RedisMeter::builder().connect_cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
//!
//! let mut plan = UsagePlan::new("plan111", "FreePlan");
//! plan.api_stages.push(ApiStage::new("abc123def4", "prod"));
//! plan.quota = Some(Quota::new(1000, QuotaPeriod::Day, 0)?);
//! let plan = StagePlan::new(&plan, &StageRef::any()).unwrap();
//! let key: Arc<str> = "key111aaa".into();
//! let verdict = meter.admit(Admission::new(&key, &plan, Bucket::None)).await?;
//! assert_eq!(verdict.outcome, Outcome::Admitted);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, NANOS_PER_SEC};
use crate::error::{BoxError, FieldError, MeterError};
use crate::model::QuotaPeriod;
use crate::period::Date;
use crate::plan::{Bucket, StagePlan};
use crate::redis_conn::Conn;

use super::policy::{self, Limits, State};
use super::{Admission, DayUsage, LimitState, Meter, Outcome, Verdict};

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

    /// Runs the script with these arguments (`op` and what follows the clock and retention).
    async fn call(&self, key: String, args: Args) -> Result<Vec<i64>, MeterError> {
        let inner = &*self.inner;
        let mut inv = inner.script.key(key);
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
            .arg(args.bucket)
            .arg(args.blocked)
            .arg(args.t)
            .arg(args.tau)
            .arg(args.tc)
            .arg(args.period)
            .arg(args.offset)
            .arg(args.limit)
            .arg(args.left);
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

    /// The policy's state of a key on a plan, with the arrival time of the bucket named
    /// `bucket` ([`StagePlan::bucket_name`]), as Redis holds it (for the differential test), and
    /// the earlier days' usage.
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
}

/// The script's arguments after the clock and the retention.
#[derive(Default)]
struct Args {
    op: &'static str,
    cost: u32,
    bucket: String,
    blocked: u8,
    t: u64,
    tau: u64,
    tc: u64,
    period: &'static str,
    offset: u32,
    limit: u64,
    left: u64,
}

impl Args {
    fn quota(&mut self, limits: &Limits) {
        if let Some(q) = &limits.quota {
            self.period = match q.period {
                QuotaPeriod::Day => "D",
                QuotaPeriod::Week => "W",
                QuotaPeriod::Month => "M",
            };
            self.offset = q.offset;
            self.limit = q.limit;
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

/// The policy's state from the hash's fields; the bucket `tag`'s arrival time in nanoseconds.
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
    history.sort_unstable();
    (s, history)
}

/// The verdict from the script's reply.
fn verdict(reply: &[i64], limits: &Limits) -> Result<Verdict, MeterError> {
    let [outcome, retry, b_rem, b_reset, q_rem, q_reset, ws, we] = reply else {
        return Err(backend(format!(
            "the meter's script answered {} values, not 8",
            reply.len()
        )));
    };
    let n = |v: &i64| u64::try_from(*v).unwrap_or(0);
    let burst = |remaining, reset| {
        limits.bucket.map(|b| LimitState {
            limit: u64::from(b.burst),
            remaining,
            reset_secs: reset,
            window_secs: if b.period_nanos == u64::MAX {
                0
            } else {
                crate::plan::fill_secs(b.period_nanos, b.burst)
            },
        })
    };
    let quota = limits.quota.map(|q| LimitState {
        limit: q.limit,
        remaining: n(q_rem),
        reset_secs: n(q_reset),
        window_secs: n(we).saturating_sub(n(ws)) * crate::period::SECS_PER_DAY,
    });
    Ok(match outcome {
        0 => Verdict {
            outcome: Outcome::Admitted,
            burst: burst(n(b_rem), n(b_reset)),
            quota,
        },
        1 => Verdict {
            outcome: Outcome::Throttled {
                retry_after_secs: n(retry),
            },
            burst: burst(0, n(retry)),
            quota,
        },
        _ => Verdict {
            outcome: Outcome::QuotaExceeded {
                retry_after_secs: n(retry),
            },
            burst: None,
            quota,
        },
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

/// The admit call's arguments for a request, asking for `cost` tokens.
fn admit_args(req: &Admission<'_>, limits: &Limits, cost: u32) -> Args {
    let mut args = Args {
        op: "a",
        cost,
        ..Args::default()
    };
    if let Some(b) = limits.bucket {
        args.bucket = format!("b:{}", req.plan.bucket_name(req.bucket));
        // As policy::gcra.
        let t = b.period_nanos.max(1);
        args.blocked = u8::from(b.burst == 0 || b.period_nanos == u64::MAX || cost > b.burst);
        args.t = t;
        args.tau = t.saturating_mul(u64::from(b.burst));
        args.tc = t.saturating_mul(u64::from(cost));
    }
    args.quota(limits);
    args
}

impl Meter for RedisMeter {
    fn admit(
        &self,
        req: Admission<'_>,
    ) -> impl Future<Output = Result<Verdict, MeterError>> + Send {
        let limits = req.plan.limits(req.bucket);
        let tag = req.plan.bucket_tag(req.bucket);
        let (plan, cost) = (req.plan.number(), req.cost);
        // With leases: spent from this instance's lease, or what to ask Redis for.
        let (taken, lease) = match &self.inner.leases {
            Some(leases) => match leases.take(plan, req.key_id, tag, cost) {
                Some(v) => (Some(v), None),
                None => {
                    let burst = limits.bucket.map(|b| b.burst);
                    match leases.ask(plan, req.key_id, tag, cost, burst) {
                        Ask::Lease(tokens) => (
                            None,
                            Some((leases.clone(), tokens, admit_args(&req, &limits, tokens))),
                        ),
                        Ask::Own => (None, None),
                    }
                }
            },
            None => (None, None),
        };
        let args = admit_args(&req, &limits, cost);
        let key = self.state_key(req.plan.id(), req.key_id);
        let key_id = req.key_id.clone();
        async move {
            if let Some(v) = taken {
                return Ok(v);
            }
            if let Some((leases, tokens, lease_args)) = lease {
                let v = verdict(&self.call(key.clone(), lease_args).await?, &limits)?;
                if v.outcome == Outcome::Admitted {
                    return Ok(leases.granted(plan, &key_id, tag, tokens, cost, v));
                }
                // Not that many left: the request alone, as without leases.
            }
            let reply = self.call(key, args).await?;
            verdict(&reply, &limits)
        }
    }

    /// A request its instance's lease covers is answered here, without a round trip.
    #[inline]
    fn admit_now(
        &self,
        req: Admission<'_>,
        _: crate::sealed::Token,
    ) -> Option<Result<Verdict, MeterError>> {
        let leases = self.inner.leases.as_ref()?;
        let tag = req.plan.bucket_tag(req.bucket);
        leases
            .take(req.plan.number(), req.key_id, tag, req.cost)
            .map(Ok)
    }

    fn usage(
        &self,
        plan: &StagePlan,
        key_id: &str,
        start: Date,
        end: Date,
    ) -> impl Future<Output = Result<Vec<DayUsage>, MeterError>> + Send {
        let quota = plan.limits(Bucket::None).quota;
        let key = self.state_key(plan.id(), key_id);
        async move {
            if start > end {
                return Err(FieldError::new(
                    "startDate",
                    format!("{start} is after the end date {end}"),
                )
                .into());
            }
            let fields = self.read(key).await?;
            let (state, history) = parse_state(&fields, "");
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
    }

    fn set_remaining(
        &self,
        plan: &StagePlan,
        key_id: &str,
        remaining: u64,
    ) -> impl Future<Output = Result<(), MeterError>> + Send {
        let limits = plan.limits(Bucket::None);
        let key = self.state_key(plan.id(), key_id);
        let plan_id = plan.id().clone();
        let (number, key_id) = (plan.number(), key_id.to_owned());
        async move {
            if limits.quota.is_none() {
                return Err(FieldError::new(
                    "remaining",
                    format!("usage plan {plan_id:?} has no quota to set what is left of"),
                )
                .into());
            }
            let mut args = Args {
                op: "s",
                left: remaining,
                ..Args::default()
            };
            args.quota(&limits);
            self.call(key, args).await?;
            if let Some(leases) = &self.inner.leases {
                leases.forget(number, &key_id);
            }
            Ok(())
        }
    }
}
