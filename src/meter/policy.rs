//! The limit policy, pure: the reference semantics every [`Meter`](super::Meter) follows.
//!
//! As governor's `gcra.rs` is to its state stores, this module is to the meters: it holds the
//! limits ([`Limits`]), the state one counter keeps ([`State`]) and the decision ([`decide`]),
//! with no storage, no clock and no lock. A meter stores each counter's [`State`] its own way,
//! reads its clock once, and runs [`decide`] on the states of every counter a
//! [`Charge`](super::Charge) names (the [`LocalMeter`](super::LocalMeter) in memory; the Redis
//! meter the same steps in Lua, held to this module by a differential test; a meter of your own
//! by calling these functions, checked by the conformance suite in `tower_usage_plans::testing`).
//!
//! The steps of [`decide`], in order, for a charge of `cost` (default 1) against counters
//! `0..n`:
//!
//! 1. **The day.** Each counter counts on the later of its state's day and today (UTC); a wall
//!    clock that steps back keeps counting on the latest day seen.
//! 2. **The quota window.** Each counter's window is the later of its state's and the one its
//!    [`Calendar`] says holds now; a wall clock that steps back never reopens a window already
//!    used. A change of the calendar applies from the end of the window in progress.
//! 3. **Every quota.** If any counter has fewer than `cost` left: refused until its window ends,
//!    and nothing is spent anywhere (no token, no count).
//! 4. **Every bucket** (GCRA, as governor's `gcra.rs`): one token every `period_nanos` of the
//!    monotonic clock, at most `burst`. If any bucket has fewer than `cost` tokens: refused until
//!    it has, and nothing is spent anywhere. A bucket of burst 0, with no refill, or smaller than
//!    the cost refuses everything ([`BLOCKED_RETRY_SECS`]).
//! 5. **Admitted**: every counter is charged: its bucket's new arrival time kept, `cost` counted
//!    against its quota and its day's usage. All counters or none.
//!
//! The state returned by a refusal differs from the state given only in the day and window it
//! moved on to (with their counts at zero), never in a token or a count.
//!
//! # Examples
//!
//! ```
//! use tower_usage_plans::clock::Now;
//! use tower_usage_plans::meter::policy::{decide, BucketLimits, Limits, QuotaLimits, State};
//! use tower_usage_plans::meter::Outcome;
//! use tower_usage_plans::model::QuotaPeriod;
//! use tower_usage_plans::period::Calendar;
//!
//! // A key's bucket (1 token a second, burst 2) and its customer's daily quota of 3.
//! let key = Limits::new(Some(BucketLimits::new(1_000_000_000, 2)), None);
//! let customer = Limits::new(None, Some(QuotaLimits::new(3, Calendar::aws(QuotaPeriod::Day, 0))));
//! let mut states = [State::default(), State::default()];
//! let at = |secs: u64| Now { monotonic_nanos: secs * 1_000_000_000, unix_nanos: (1_700_000_000 + secs) * 1_000_000_000 };
//!
//! let outcomes: Vec<Outcome> =
//!     (0..3).map(|_| decide(&mut states, &[key, customer], at(0), 1).outcome).collect();
//! assert_eq!(outcomes[..2], [Outcome::Admitted, Outcome::Admitted]);
//! assert_eq!(outcomes[2], Outcome::Throttled { retry_after_secs: 1 });
//! // The throttled request charged neither counter.
//! assert_eq!((states[0].day_used, states[1].window_used), (2, 2));
//! ```

use crate::clock::{Now, NANOS_PER_SEC};
use crate::model::Throttle;
use crate::period::{Calendar, Date, SECS_PER_DAY};

/// Seconds a client is told to wait for a bucket that never admits (burst 0, rate 0, or a cost
/// above the burst): such a bucket is switched off until its throttle is changed.
pub const BLOCKED_RETRY_SECS: u64 = 60;

/// The most counters one [`Charge`](super::Charge) may name: what a [`Receipt`] has room for.
pub const MAX_COUNTERS: usize = 4;

/// A token bucket: one token every `period_nanos` nanoseconds, at most `burst` tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BucketLimits {
    /// Nanoseconds per token; `u64::MAX` for a bucket that never refills.
    pub period_nanos: u64,
    /// The bucket's size, in tokens.
    pub burst: u32,
}

impl BucketLimits {
    /// A bucket of `burst` tokens, one every `period_nanos` nanoseconds (`u64::MAX`: never).
    pub const fn new(period_nanos: u64, burst: u32) -> Self {
        Self {
            period_nanos,
            burst,
        }
    }

    /// The bucket of an AWS throttle: `rateLimit` tokens a second (as governor's
    /// `Quota::with_period(1 / rate)`: at least one nanosecond a token; a rate of 0 never
    /// refills), `burstLimit` at most.
    pub fn from_throttle(t: &Throttle) -> Self {
        let period_nanos = if t.rate_limit <= 0.0 {
            u64::MAX
        } else {
            std::time::Duration::try_from_secs_f64(1.0 / t.rate_limit)
                .ok()
                .and_then(|d| u64::try_from(d.as_nanos()).ok())
                .unwrap_or(u64::MAX)
                .max(1)
        };
        Self::new(period_nanos, t.burst_limit)
    }

    /// Whether the bucket never admits anything (burst 0, or no refill).
    pub const fn is_blocked(&self) -> bool {
        self.burst == 0 || self.period_nanos == u64::MAX
    }

    /// Seconds for the empty bucket to fill, rounded up (at least 1); 0 for a blocked bucket.
    pub fn fill_secs(&self) -> u64 {
        if self.period_nanos == u64::MAX {
            return 0;
        }
        self.period_nanos
            .saturating_mul(u64::from(self.burst))
            .div_ceil(NANOS_PER_SEC)
            .max(1)
    }
}

/// A quota: `limit` units per window of its [`Calendar`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuotaLimits {
    /// Units a window allows.
    pub limit: u64,
    /// Which window holds an instant.
    pub calendar: Calendar,
}

impl QuotaLimits {
    /// `limit` units per window of `calendar`.
    pub const fn new(limit: u64, calendar: Calendar) -> Self {
        Self { limit, calendar }
    }
}

/// The limits of one counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Its token bucket, if it has one.
    pub bucket: Option<BucketLimits>,
    /// Its quota, if it has one.
    pub quota: Option<QuotaLimits>,
}

impl Limits {
    /// A counter's limits.
    pub const fn new(bucket: Option<BucketLimits>, quota: Option<QuotaLimits>) -> Self {
        Self { bucket, quota }
    }
}

/// What one counter keeps between decisions. A meter stores it as it likes; a new counter starts
/// from [`State::default`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct State {
    /// The bucket's theoretical arrival time, in monotonic nanoseconds (0 or past: full).
    pub tat: u64,
    /// The latest quota window seen, `[window_start, window_end)` in seconds since the epoch;
    /// `window_end` 0 for none yet.
    pub window_start: u64,
    /// See `window_start`.
    pub window_end: u64,
    /// Counted in that window. Negative when an operator granted more than the limit.
    pub window_used: i64,
    /// The latest UTC day decided on, in days since the epoch.
    pub day: u32,
    /// Counted on that day.
    pub day_used: u64,
}

/// What the meter decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Admitted, and charged to every counter.
    Admitted,
    /// A bucket is empty; enough tokens come in `retry_after_secs` (whole seconds, at least 1).
    Throttled {
        /// Seconds until the tokens are there, rounded up.
        retry_after_secs: u64,
    },
    /// A quota's window is used up; it resets in `retry_after_secs`.
    QuotaExceeded {
        /// Seconds until the window ends, rounded up.
        retry_after_secs: u64,
    },
}

/// Where one limit stands after a decision, for the rate-limit headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitState {
    /// The limit: the bucket's size, or the quota's limit.
    pub limit: u64,
    /// What is left.
    pub remaining: u64,
    /// Seconds until the limit is whole again (bucket full, or the quota window ends).
    pub reset_secs: u64,
    /// The window the limit is counted over, in seconds (the bucket's fill time, or the quota
    /// window's length).
    pub window_secs: u64,
}

impl LimitState {
    /// A limit's state.
    pub const fn new(limit: u64, remaining: u64, reset_secs: u64, window_secs: u64) -> Self {
        Self {
            limit,
            remaining,
            reset_secs,
            window_secs,
        }
    }
}

/// What an admitted charge landed on, for a correction after the response
/// ([`Meter::adjust`](super::Meter::adjust)): the day and, for each counter with a quota, the
/// window it was counted in, so that the correction lands there whenever it comes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Receipt {
    /// What was charged to each counter.
    pub cost: u32,
    /// The UTC day it was counted on.
    pub day: Date,
    /// The end of each counter's quota window (seconds since the epoch; 0 for no quota), by the
    /// counter's index in the charge.
    pub window_ends: [u64; MAX_COUNTERS],
}

impl Receipt {
    /// A receipt for `cost` counted on `day`, with no quota window yet.
    pub const fn new(cost: u32, day: Date) -> Self {
        Self {
            cost,
            day,
            window_ends: [0; MAX_COUNTERS],
        }
    }
}

/// A meter's decision on one charge, with the state of the limits it checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verdict {
    /// Admitted, or why not.
    pub outcome: Outcome,
    /// The bucket with the fewest tokens left (the refusing one, if a bucket refused), if the
    /// decision got as far as the buckets.
    pub burst: Option<LimitState>,
    /// The quota with the least left (the refusing one, if a quota refused).
    pub quota: Option<LimitState>,
    /// The index in the charge of the counter that refused, if one did.
    pub refused_by: Option<usize>,
    /// What an admitted charge landed on; `None` for a refusal.
    pub receipt: Option<Receipt>,
}

impl Verdict {
    /// A verdict, for a meter that decides by other means than [`decide`] (a lease spent, say).
    pub const fn new(
        outcome: Outcome,
        burst: Option<LimitState>,
        quota: Option<LimitState>,
        refused_by: Option<usize>,
        receipt: Option<Receipt>,
    ) -> Self {
        Self {
            outcome,
            burst,
            quota,
            refused_by,
            receipt,
        }
    }
}

fn ceil_secs(nanos: u64) -> u64 {
    nanos.div_ceil(NANOS_PER_SEC)
}

/// The window a quota counts in at `unix_secs`: the one the calendar says holds it, or the
/// state's if that is later (the wall clock stepped back). Returns `(start, end, used)`, `used`
/// 0 in a new window.
#[inline]
pub fn current_window(state: &State, q: &QuotaLimits, unix_secs: u64) -> (u64, u64, i64) {
    if state.window_end != 0 && state.window_start <= unix_secs && unix_secs < state.window_end {
        // Still in the state's window: no calendar to work out. (So a change of the calendar
        // applies from the end of the window in progress.)
        return (state.window_start, state.window_end, state.window_used);
    }
    let w = q.calendar.window_at(unix_secs);
    if state.window_end == 0 || w.start >= state.window_end {
        // No window yet, or the state's has ended: a new one.
        (w.start, w.end, 0)
    } else {
        // The same window, or an earlier one (the wall clock stepped back): keep counting in the
        // latest seen.
        (state.window_start, state.window_end, state.window_used)
    }
}

/// Takes `cost` tokens at `now` (monotonic nanoseconds) from a bucket whose theoretical arrival
/// time is `tat`: the new arrival time and the tokens left, or how many nanoseconds until there
/// are enough (`None`: never).
#[inline]
pub fn gcra(tat: u64, now: u64, b: BucketLimits, cost: u32) -> Result<(u64, u64), Option<u64>> {
    if b.is_blocked() || cost > b.burst {
        return Err(None);
    }
    let t = b.period_nanos.max(1);
    // The bucket's whole size, in time.
    let tau = t.saturating_mul(u64::from(b.burst));
    let next = tat
        .max(now)
        .saturating_add(t.saturating_mul(u64::from(cost)));
    let ahead = next - now;
    if ahead > tau {
        return Err(Some(ahead - tau));
    }
    Ok((next, (tau - ahead) / t))
}

/// What a quota of `limit` has left after `used` (negative: more was granted).
pub fn remaining(limit: u64, used: i64) -> u64 {
    if used < 0 {
        limit.saturating_add(used.unsigned_abs())
    } else {
        limit.saturating_sub(used.unsigned_abs())
    }
}

fn quota_state(s: &State, q: &QuotaLimits, unix_nanos: u64) -> LimitState {
    let end_nanos = s.window_end.saturating_mul(NANOS_PER_SEC);
    LimitState {
        limit: q.limit,
        remaining: remaining(q.limit, s.window_used),
        reset_secs: ceil_secs(end_nanos.saturating_sub(unix_nanos)).max(1),
        window_secs: s.window_end.saturating_sub(s.window_start),
    }
}

/// The tighter of two limit states: the one with less left.
fn tighter(a: Option<LimitState>, b: LimitState) -> Option<LimitState> {
    match a {
        Some(a) if a.remaining <= b.remaining => Some(a),
        _ => Some(b),
    }
}

/// One bucket's answer to a charge of `cost` at `now`: its new TAT and where it stands, or,
/// refused, where it stands (no tokens, and when enough come).
#[inline]
fn charge_bucket(
    tat: u64,
    now: u64,
    b: BucketLimits,
    cost: u32,
) -> Result<(u64, LimitState), LimitState> {
    let burst = u64::from(b.burst);
    match gcra(tat, now, b, cost) {
        Ok((tat, left)) => Ok((
            tat,
            LimitState::new(burst, left, ceil_secs(tat - now), b.fill_secs()),
        )),
        Err(wait) => {
            let retry = wait.map_or(BLOCKED_RETRY_SECS, |w| ceil_secs(w).max(1));
            Err(LimitState::new(burst, 0, retry, b.fill_secs()))
        }
    }
}

/// The refusal by counter `i`'s bucket, standing at `st`.
fn throttled(st: LimitState, quota: Option<LimitState>, i: usize) -> Verdict {
    let retry_after_secs = st.reset_secs;
    Verdict::new(
        Outcome::Throttled { retry_after_secs },
        Some(st),
        quota,
        Some(i),
        None,
    )
}

/// The refusal by counter `i`'s quota, standing at `st`.
fn quota_exceeded(st: LimitState, i: usize) -> Verdict {
    let retry_after_secs = st.reset_secs;
    Verdict::new(
        Outcome::QuotaExceeded { retry_after_secs },
        None,
        Some(st),
        Some(i),
        None,
    )
}

/// Decides a charge of `cost` at `now` against counters whose states are `states` and whose
/// limits are `limits` (the same length; extra entries of the longer are ignored), and updates
/// the states: all charged, or (refused) none. See the [module docs](self) for the steps.
///
/// The states are to be kept whatever the outcome: a refusal moves only the day and the quota
/// window on (to the ones now current), never a token or a count.
pub fn decide(states: &mut [State], limits: &[Limits], now: Now, cost: u32) -> Verdict {
    if let ([state], [limits]) = (&mut *states, limits) {
        return decide_one(state, limits, now, cost);
    }
    let unix_secs = now.unix_nanos / NANOS_PER_SEC;
    let today = Date::from_unix_secs(unix_secs).days();
    let n = states.len().min(limits.len());
    let (states, limits) = (&mut states[..n], &limits[..n]);

    // 1 and 2: the day and the window, never back.
    for (s, l) in states.iter_mut().zip(limits) {
        if today > s.day {
            s.day = today;
            s.day_used = 0;
        }
        if let Some(q) = &l.quota {
            let (start, end, used) = current_window(s, q, unix_secs);
            s.window_start = start;
            s.window_end = end;
            s.window_used = used;
        }
    }

    // 3. Every quota: a request refused for a quota takes no token.
    let mut quota = None;
    for (i, (s, l)) in states.iter().zip(limits).enumerate() {
        if let Some(q) = &l.quota {
            let st = quota_state(s, q, now.unix_nanos);
            if st.remaining < u64::from(cost) {
                return quota_exceeded(st, i);
            }
            quota = tighter(quota, st);
        }
    }

    // 4. Every bucket: a throttled request spends no quota.
    let mut burst = None;
    for (i, (s, l)) in states.iter().zip(limits).enumerate() {
        if let Some(b) = l.bucket {
            match charge_bucket(s.tat, now.monotonic_nanos, b, cost) {
                Ok((_, st)) => burst = tighter(burst, st),
                Err(st) => return throttled(st, quota, i),
            }
        }
    }

    // 5. Admitted: charge every counter.
    let mut receipt = Receipt::new(cost, Date::from_days(today));
    for (i, (s, l)) in states.iter_mut().zip(limits).enumerate() {
        if let Some(b) = l.bucket {
            if let Ok((tat, _)) = gcra(s.tat, now.monotonic_nanos, b, cost) {
                s.tat = tat;
            }
        }
        if l.quota.is_some() {
            s.window_used = s.window_used.saturating_add(i64::from(cost));
            if let Some(end) = receipt.window_ends.get_mut(i) {
                *end = s.window_end;
            }
        }
        s.day_used = s.day_used.saturating_add(u64::from(cost));
    }
    if let Some(q) = quota.as_mut() {
        q.remaining = q.remaining.saturating_sub(u64::from(cost));
    }
    Verdict::new(Outcome::Admitted, burst, quota, None, Some(receipt))
}

/// [`decide`] for one counter: the same steps, without the loops (the request path's case).
#[inline]
fn decide_one(s: &mut State, l: &Limits, now: Now, cost: u32) -> Verdict {
    let unix_secs = now.unix_nanos / NANOS_PER_SEC;
    let today = Date::from_unix_secs(unix_secs).days();
    if today > s.day {
        s.day = today;
        s.day_used = 0;
    }
    let mut quota = None;
    if let Some(q) = &l.quota {
        let (start, end, used) = current_window(s, q, unix_secs);
        s.window_start = start;
        s.window_end = end;
        s.window_used = used;
        let st = quota_state(s, q, now.unix_nanos);
        if st.remaining < u64::from(cost) {
            return quota_exceeded(st, 0);
        }
        quota = Some(st);
    }
    let mut burst = None;
    if let Some(b) = l.bucket {
        match charge_bucket(s.tat, now.monotonic_nanos, b, cost) {
            Ok((tat, st)) => {
                s.tat = tat;
                burst = Some(st);
            }
            Err(st) => return throttled(st, quota, 0),
        }
    }
    let mut receipt = Receipt::new(cost, Date::from_days(today));
    if let Some(q) = quota.as_mut() {
        s.window_used = s.window_used.saturating_add(i64::from(cost));
        receipt.window_ends[0] = s.window_end;
        q.remaining = q.remaining.saturating_sub(u64::from(cost));
    }
    s.day_used = s.day_used.saturating_add(u64::from(cost));
    Verdict::new(Outcome::Admitted, burst, quota, None, Some(receipt))
}

/// A correction of an admitted charge by `delta` units (negative: given back; positive: charged
/// more), for one counter whose charge ended in the quota window ending `window_end` (0: none)
/// on `day`, as its [`Receipt`] says.
///
/// Returns the new state and the change to make to the counter's usage of `day` if that day is
/// no longer the state's (the meter keeps earlier days itself). What it does:
/// - A refund gives back at most what was charged (`cost`), and never takes a count below zero
///   (a quota an operator raised keeps its grant).
/// - The quota window is corrected only while it is still the state's window: a correction after
///   the window ended leaves the new window alone. It may take the quota past its limit; the next
///   charge is then refused.
/// - The day's usage is corrected on the charge's day, wherever that is kept.
/// - Buckets are not touched: the tokens were spent on work the service did.
pub fn adjust(state: &State, window_end: u64, day: u32, cost: u32, delta: i64) -> (State, i64) {
    let delta = delta.max(-i64::from(cost));
    let mut next = *state;
    if window_end != 0 && state.window_end == window_end {
        next.window_used = if delta < 0 {
            state
                .window_used
                .saturating_add(delta)
                .max(state.window_used.min(0))
        } else {
            state.window_used.saturating_add(delta)
        };
    }
    if day == state.day {
        next.day_used = apply(state.day_used, delta);
        (next, 0)
    } else {
        (next, delta)
    }
}

/// `used` corrected by `delta`, never below zero.
pub fn apply(used: u64, delta: i64) -> u64 {
    if delta < 0 {
        used.saturating_sub(delta.unsigned_abs())
    } else {
        used.saturating_add(delta.unsigned_abs())
    }
}

/// Sets what is left of the quota in the window holding `unix_secs` to `left` (AWS's update-usage
/// `replace /remaining`); it lasts until that window ends.
pub fn set_remaining(state: &State, q: &QuotaLimits, unix_secs: u64, left: u64) -> State {
    let (start, end, _) = current_window(state, q, unix_secs);
    let limit = i128::from(q.limit);
    let used = (limit - i128::from(left)).clamp(i128::from(i64::MIN), i128::from(i64::MAX));
    State {
        window_start: start,
        window_end: end,
        window_used: used as i64,
        ..*state
    }
}

/// One counter's usage per UTC day from `start` to `end` inclusive (days since the epoch):
/// `(day, used, remaining)`, from the days kept (`history`, oldest first, then the state's own
/// day) and, for days of the state's quota window, its count.
///
/// `remaining` is what the quota had left at the end of each day, in the window holding it: in
/// the state's window, what it has left now plus what was used after that day; in an earlier
/// window, the limit less what was used in it up to that day.
pub fn usage(
    history: &[(u32, u64)],
    state: &State,
    quota: Option<&QuotaLimits>,
    start: u32,
    end: u32,
) -> Vec<(u32, u64, Option<u64>)> {
    let day_of = |secs: u64| u32::try_from(secs / SECS_PER_DAY).unwrap_or(u32::MAX);
    let used_in = |from: u32, to: u32| -> u64 {
        history
            .iter()
            .filter(|(d, _)| (from..=to).contains(d))
            .map(|(_, n)| n)
            .sum::<u64>()
            + if (from..=to).contains(&state.day) {
                state.day_used
            } else {
                0
            }
    };
    let (state_first, state_last) = (
        day_of(state.window_start),
        day_of(state.window_end.saturating_sub(1)),
    );
    (start..=end)
        .map(|d| {
            let remaining = quota.map(|q| {
                let in_state_window =
                    state.window_end != 0 && (state_first..=state_last).contains(&d);
                if in_state_window {
                    let left = remaining(q.limit, state.window_used);
                    left.saturating_add(used_in(d.saturating_add(1), state_last))
                } else {
                    let w = q.calendar.window_at(u64::from(d) * SECS_PER_DAY);
                    q.limit.saturating_sub(used_in(day_of(w.start), d))
                }
            });
            (d, used_in(d, d), remaining)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::QuotaPeriod;

    const SEC: u64 = NANOS_PER_SEC;
    /// 2023-11-14T22:13:20Z.
    const T0: u64 = 1_700_000_000;

    fn quota(limit: u64, period: QuotaPeriod) -> QuotaLimits {
        QuotaLimits::new(limit, Calendar::aws(period, 0))
    }

    fn limits(burst: u32, rate_per_sec: u64, q: Option<(u64, QuotaPeriod)>) -> Limits {
        Limits::new(
            Some(BucketLimits::new(SEC / rate_per_sec, burst)),
            q.map(|(l, p)| quota(l, p)),
        )
    }

    fn at(mono_secs: u64, unix_secs: u64) -> Now {
        Now {
            monotonic_nanos: mono_secs * SEC,
            unix_nanos: unix_secs * SEC,
        }
    }

    fn one(state: &State, l: &Limits, now: Now, cost: u32) -> (State, Verdict) {
        let mut s = [*state];
        let v = decide(&mut s, std::slice::from_ref(l), now, cost);
        (s[0], v)
    }

    /// Runs `n` requests at one instant, returning the outcomes.
    fn run(state: &mut State, l: &Limits, now: Now, n: usize, cost: u32) -> Vec<Outcome> {
        (0..n)
            .map(|_| {
                let (s, v) = one(state, l, now, cost);
                *state = s;
                v.outcome
            })
            .collect()
    }

    #[test]
    fn a_burst_then_one_token_per_period() {
        let l = limits(2, 1, None);
        let mut s = State::default();
        let out = run(&mut s, &l, at(0, T0), 3, 1);
        assert_eq!(out[..2], [Outcome::Admitted, Outcome::Admitted]);
        assert_eq!(
            out[2],
            Outcome::Throttled {
                retry_after_secs: 1
            }
        );
        assert_eq!(run(&mut s, &l, at(1, T0 + 1), 2, 1)[1], out[2]);
        assert_eq!(s.day_used, 3);
    }

    #[test]
    fn a_cost_takes_that_many_tokens_and_counts_that_many() {
        let l = limits(10, 1, Some((12, QuotaPeriod::Day)));
        let mut s = State::default();
        let (next, v) = one(&s, &l, at(0, T0), 4);
        assert_eq!(v.outcome, Outcome::Admitted);
        assert_eq!(v.burst.unwrap().remaining, 6);
        assert_eq!(v.quota.unwrap().remaining, 8);
        assert_eq!((next.window_used, next.day_used), (4, 4));
        s = next;
        // 6 tokens left: a cost of 7 waits one second, and spends nothing.
        let (next, v) = one(&s, &l, at(0, T0), 7);
        assert_eq!(
            v.outcome,
            Outcome::Throttled {
                retry_after_secs: 1
            }
        );
        assert_eq!(next, s);
        // A cost above the burst can never pass.
        let no_quota = Limits { quota: None, ..l };
        let (_, v) = one(&s, &no_quota, at(100, T0 + 100), 11);
        assert_eq!(
            v.outcome,
            Outcome::Throttled {
                retry_after_secs: BLOCKED_RETRY_SECS
            }
        );
        // 8 left of the quota: a cost of 9 is refused for the quota, taking no token.
        let (next, v) = one(&s, &l, at(100, T0 + 100), 9);
        assert!(matches!(v.outcome, Outcome::QuotaExceeded { .. }));
        assert_eq!(next.tat, s.tat);
    }

    #[test]
    fn a_throttled_request_spends_no_quota_and_a_quota_refusal_no_token() {
        let l = limits(1, 1, Some((2, QuotaPeriod::Day)));
        let mut s = State::default();
        let throttled = Outcome::Throttled {
            retry_after_secs: 1,
        };
        assert_eq!(
            run(&mut s, &l, at(0, T0), 3, 1),
            [Outcome::Admitted, throttled, throttled]
        );
        assert_eq!(s.window_used, 1);
        assert_eq!(run(&mut s, &l, at(1, T0 + 1), 1, 1), [Outcome::Admitted]);
        let tat = s.tat;
        let out = run(&mut s, &l, at(5, T0 + 5), 1, 1);
        assert!(matches!(out[0], Outcome::QuotaExceeded { .. }));
        assert_eq!(s.tat, tat, "no token taken");
    }

    #[test]
    fn a_refusal_by_one_counter_charges_none() {
        let key = limits(10, 1, Some((100, QuotaPeriod::Day)));
        let customer = Limits::new(None, Some(quota(2, QuotaPeriod::Day)));
        let both = [key, customer];
        let mut s = [State::default(); 2];
        for _ in 0..2 {
            assert_eq!(
                decide(&mut s, &both, at(0, T0), 1).outcome,
                Outcome::Admitted
            );
        }
        let before = s;
        let v = decide(&mut s, &both, at(0, T0), 1);
        assert!(matches!(v.outcome, Outcome::QuotaExceeded { .. }));
        assert_eq!(v.refused_by, Some(1));
        assert_eq!(s, before, "the key's bucket and quota are untouched");
        // The key's bucket refuses: the customer's quota is not charged either.
        let tight = [
            limits(1, 1, None),
            Limits::new(None, Some(quota(10, QuotaPeriod::Day))),
        ];
        let mut s = [State::default(); 2];
        assert_eq!(
            decide(&mut s, &tight, at(0, T0), 1).outcome,
            Outcome::Admitted
        );
        let v = decide(&mut s, &tight, at(0, T0), 1);
        assert_eq!(v.refused_by, Some(0));
        assert_eq!(s[1].window_used, 1);
    }

    #[test]
    fn zero_burst_or_zero_rate_blocks() {
        for b in [BucketLimits::new(SEC, 0), BucketLimits::new(u64::MAX, 10)] {
            let l = Limits::new(Some(b), None);
            let (s, v) = one(&State::default(), &l, at(0, T0), 1);
            assert_eq!(
                v.outcome,
                Outcome::Throttled {
                    retry_after_secs: BLOCKED_RETRY_SECS
                }
            );
            assert_eq!(s.day_used, 0);
        }
    }

    #[test]
    fn the_quota_resets_at_the_window_edge_and_never_reopens_a_used_window() {
        let l = Limits::new(None, Some(quota(2, QuotaPeriod::Day)));
        let midnight = (T0 / 86_400 + 1) * 86_400;
        let mut s = State::default();
        let out = run(&mut s, &l, at(0, midnight - 1), 3, 1);
        assert_eq!(
            out[2],
            Outcome::QuotaExceeded {
                retry_after_secs: 1
            }
        );
        // The wall clock steps back a day: still the latest window, still used up, and the wait
        // is until that window ends.
        let out = run(&mut s, &l, at(1, midnight - 86_400), 1, 1);
        assert_eq!(
            out[0],
            Outcome::QuotaExceeded {
                retry_after_secs: 86_400
            }
        );
        // At midnight: a new window.
        assert_eq!(
            run(&mut s, &l, at(2, midnight), 2, 1),
            [Outcome::Admitted, Outcome::Admitted]
        );
    }

    #[test]
    fn the_bucket_runs_on_the_monotonic_clock() {
        let l = limits(10, 5, Some((1000, QuotaPeriod::Day)));
        let mut s = State::default();
        assert_eq!(run(&mut s, &l, at(50, T0), 1, 1), [Outcome::Admitted]);
        // The wall clock steps back an hour; the monotonic clock goes on.
        assert_eq!(
            run(&mut s, &l, at(51, T0 - 3600), 1, 1),
            [Outcome::Admitted]
        );
        assert_eq!(s.window_used, 2);
    }

    #[test]
    fn the_day_never_goes_back() {
        let l = limits(100, 1, None);
        let mut s = State::default();
        run(&mut s, &l, at(0, T0), 2, 1);
        let day = s.day;
        run(&mut s, &l, at(1, T0 - 86_400), 1, 1);
        assert_eq!((s.day, s.day_used), (day, 3));
        run(&mut s, &l, at(2, T0 + 86_400), 1, 1);
        assert_eq!((s.day, s.day_used), (day + 1, 1));
    }

    #[test]
    fn set_remaining_lasts_until_the_window_ends() {
        let q = quota(10, QuotaPeriod::Day);
        let l = Limits::new(None, Some(q));
        let mut s = State::default();
        run(&mut s, &l, at(0, T0), 10, 1);
        s = set_remaining(&s, &q, T0, 15);
        let out = run(&mut s, &l, at(0, T0), 16, 1);
        assert_eq!(out.iter().filter(|o| **o == Outcome::Admitted).count(), 15);
        s = set_remaining(&s, &q, T0, 0);
        assert!(matches!(
            run(&mut s, &l, at(0, T0), 1, 1)[0],
            Outcome::QuotaExceeded { .. }
        ));
        assert_eq!(
            run(&mut s, &l, at(0, T0 + 86_400), 1, 1),
            [Outcome::Admitted]
        );
    }

    #[test]
    fn a_correction_lands_in_the_window_and_day_of_its_charge() {
        let l = Limits::new(None, Some(quota(5, QuotaPeriod::Day)));
        let mut s = [State::default()];
        let v = decide(&mut s, &[l], at(0, T0), 3);
        let r = v.receipt.unwrap();
        assert_eq!((s[0].window_used, s[0].day_used), (3, 3));
        // A refund of more than was charged gives back the charge only.
        let (next, earlier) = adjust(&s[0], r.window_ends[0], r.day.days(), r.cost, -10);
        assert_eq!((next.window_used, next.day_used, earlier), (0, 0, 0));
        // Charged more after the response: past the limit; the next request is refused.
        let (next, _) = adjust(&s[0], r.window_ends[0], r.day.days(), r.cost, 4);
        assert_eq!(next.window_used, 7);
        let mut st = [next];
        assert!(matches!(
            decide(&mut st, &[l], at(0, T0), 1).outcome,
            Outcome::QuotaExceeded { .. }
        ));
        // After midnight: the new window is left alone, and the old day's usage is the
        // caller's to correct.
        let mut s2 = s;
        decide(&mut s2, &[l], at(1, T0 + 86_400), 1);
        let (next, earlier) = adjust(&s2[0], r.window_ends[0], r.day.days(), r.cost, -2);
        assert_eq!((next.window_used, next.day_used, earlier), (1, 1, -2));
    }

    #[test]
    fn usage_gives_used_and_remaining_per_day() {
        let q = quota(10, QuotaPeriod::Week);
        // 2024-03-10 is a Sunday (day 19792): a week of Sunday..Saturday.
        let sunday = Date::new(2024, 3, 10).unwrap().days();
        let history = [(sunday - 1, 4), (sunday, 2), (sunday + 1, 3)];
        let state = State {
            window_start: u64::from(sunday) * SECS_PER_DAY,
            window_end: u64::from(sunday + 7) * SECS_PER_DAY,
            window_used: 6,
            day: sunday + 2,
            day_used: 1,
            ..State::default()
        };
        let u = usage(&history, &state, Some(&q), sunday - 1, sunday + 3);
        assert_eq!(
            u,
            [
                (sunday - 1, 4, Some(6)),
                (sunday, 2, Some(8)),
                (sunday + 1, 3, Some(5)),
                (sunday + 2, 1, Some(4)),
                (sunday + 3, 0, Some(4)),
            ]
        );
        assert_eq!(usage(&history, &state, None, sunday, sunday)[0].2, None);
    }
}
