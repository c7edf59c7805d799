//! The limit policy, pure: one key's state on one plan, the plan's limits and the time in, the new
//! state and the verdict out. No storage, no clock, no lock: every meter stores [`State`] its own
//! way and runs [`decide`] (the local meter in memory; a Redis meter the same steps in Lua, tested
//! against this one).
//!
//! The steps, in order, for a request of cost `n` (default 1):
//!
//! 1. **The day.** The day counted is the later of the state's day and today (UTC); a wall clock
//!    that steps back keeps counting on the latest day seen.
//! 2. **The quota.** The window is the latest of the state's window and the window holding now; a
//!    wall clock that steps back never opens a window already used. A change of the quota's
//!    period or offset applies from the end of the window in progress. If fewer than `n` requests
//!    are left: refused, until the window ends, and nothing is spent (no token).
//! 3. **The bucket** (GCRA, as governor's `gcra.rs`): one token every `period` nanoseconds of the
//!    monotonic clock, at most `burst`. If fewer than `n` tokens are there: refused, until they
//!    are, and nothing is spent (no quota). A bucket of burst 0, or with no refill, refuses all.
//! 4. **Admitted**: the bucket's new arrival time kept, `n` counted against the quota and the
//!    day's usage.

use crate::clock::NANOS_PER_SEC;
use crate::model::QuotaPeriod;
use crate::period::{window, Date, Window, SECS_PER_DAY};

use super::{LimitState, Outcome, Verdict};

/// Seconds a client is told to wait for a bucket that never admits (burst 0, rate 0, or a cost
/// above the burst): such a bucket is switched off until its throttle is changed.
pub(crate) const BLOCKED_RETRY_SECS: u64 = 60;

/// A token bucket: one token every `period_nanos`, at most `burst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BucketLimits {
    /// Nanoseconds per token; `u64::MAX` for a bucket that never refills.
    pub(crate) period_nanos: u64,
    /// The bucket's size, in tokens.
    pub(crate) burst: u32,
}

/// A quota: `limit` requests per window of `period`, the window starting on day `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct QuotaLimits {
    pub(crate) limit: u64,
    pub(crate) period: QuotaPeriod,
    pub(crate) offset: u32,
}

/// The limits a request is checked against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) bucket: Option<BucketLimits>,
    pub(crate) quota: Option<QuotaLimits>,
}

/// The time, as the two clocks read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Now {
    /// Monotonic nanoseconds, for the bucket.
    pub(crate) monotonic: u64,
    /// UTC wall time in nanoseconds since the epoch, for the quota window and the day.
    pub(crate) unix: u64,
}

/// One key's state on one plan and one bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct State {
    /// The bucket's theoretical arrival time, in monotonic nanoseconds (0 or past: full).
    pub(crate) tat: u64,
    /// The latest quota window seen, in days since the epoch, `[start, end)`; `end` 0 for none.
    pub(crate) window_start: u32,
    pub(crate) window_end: u32,
    /// Counted in that window. Negative when an operator granted more than the limit.
    pub(crate) window_used: i64,
    /// The latest UTC day a request was decided on, in days since the epoch.
    pub(crate) day: u32,
    /// Admitted on that day.
    pub(crate) day_used: u64,
}

fn ceil_secs(nanos: u64) -> u64 {
    nanos.div_ceil(NANOS_PER_SEC)
}

fn days(w: &Window) -> (u32, u32) {
    let d = |s: u64| u32::try_from(s / SECS_PER_DAY).unwrap_or(u32::MAX);
    (d(w.start), d(w.end))
}

/// The window a quota counts in now: the one holding `unix_secs`, or the state's if that is later
/// (the wall clock stepped back). Returns `(start, end, used)` with `used` 0 in a new window.
pub(crate) fn current_window(state: &State, q: &QuotaLimits, unix_secs: u64) -> (u32, u32, i64) {
    let today = u32::try_from(unix_secs / SECS_PER_DAY).unwrap_or(u32::MAX);
    if state.window_end != 0 && state.window_start <= today && today < state.window_end {
        // Still in the state's window: no calendar to work out. (So a change of the quota's
        // period or offset applies from the end of the window in progress.)
        return (state.window_start, state.window_end, state.window_used);
    }
    let (start, end) = days(&window(q.period, q.offset, unix_secs));
    if state.window_end == 0 || start >= state.window_end {
        // No window yet, or the state's has ended: a new one.
        (start, end, 0)
    } else {
        // The same window, or an earlier one (the wall clock stepped back): keep counting in the
        // latest seen.
        (state.window_start, state.window_end, state.window_used)
    }
}

/// Takes `cost` tokens at `now` from a bucket whose theoretical arrival time is `tat`: the new
/// arrival time and the tokens left, or how many nanoseconds until there are enough (`None`:
/// never).
pub(crate) fn gcra(
    tat: u64,
    now: u64,
    b: BucketLimits,
    cost: u32,
) -> Result<(u64, u64), Option<u64>> {
    if b.burst == 0 || b.period_nanos == u64::MAX || cost > b.burst {
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

/// Decides one request of `cost` at `now`: the state to keep, and the verdict.
///
/// The state returned is to be kept whatever the outcome: a refusal changes only the day and the
/// quota window (to the ones now current), never a token or a count.
pub(crate) fn decide(state: &State, limits: &Limits, now: Now, cost: u32) -> (State, Verdict) {
    let unix_secs = now.unix / NANOS_PER_SEC;
    let mut next = *state;

    // 1. The day: never back.
    let today = Date::from_unix_secs(unix_secs).days();
    if today > next.day {
        next.day = today;
        next.day_used = 0;
    }

    // 2. The quota: a request refused for its quota takes no token.
    let mut quota_state = None;
    if let Some(q) = &limits.quota {
        let (start, end, used) = current_window(state, q, unix_secs);
        next.window_start = start;
        next.window_end = end;
        next.window_used = used;
        let end_nanos = u64::from(end)
            .saturating_mul(SECS_PER_DAY)
            .saturating_mul(NANOS_PER_SEC);
        let reset_secs = ceil_secs(end_nanos.saturating_sub(now.unix)).max(1);
        let left = remaining(q.limit, used);
        let state = LimitState {
            limit: q.limit,
            remaining: left,
            reset_secs,
            window_secs: u64::from(end - start) * SECS_PER_DAY,
        };
        if left < u64::from(cost) {
            let verdict = Verdict {
                outcome: Outcome::QuotaExceeded {
                    retry_after_secs: reset_secs,
                },
                burst: None,
                quota: Some(state),
            };
            return (next, verdict);
        }
        quota_state = Some(state);
    }

    // 3. The bucket: a throttled request spends no quota.
    let mut burst_state = None;
    if let Some(b) = limits.bucket {
        let window_secs = if b.period_nanos == u64::MAX {
            0
        } else {
            crate::plan::fill_secs(b.period_nanos, b.burst)
        };
        match gcra(state.tat, now.monotonic, b, cost) {
            Ok((tat, left)) => {
                next.tat = tat;
                burst_state = Some(LimitState {
                    limit: u64::from(b.burst),
                    remaining: left,
                    reset_secs: ceil_secs(tat - now.monotonic),
                    window_secs,
                });
            }
            Err(wait) => {
                let retry = wait.map_or(BLOCKED_RETRY_SECS, |w| ceil_secs(w).max(1));
                let verdict = Verdict {
                    outcome: Outcome::Throttled {
                        retry_after_secs: retry,
                    },
                    burst: Some(LimitState {
                        limit: u64::from(b.burst),
                        remaining: 0,
                        reset_secs: retry,
                        window_secs,
                    }),
                    quota: quota_state,
                };
                return (next, verdict);
            }
        }
    }

    // 4. Admitted: count it.
    if let Some(q) = quota_state.as_mut() {
        next.window_used = next.window_used.saturating_add(i64::from(cost));
        q.remaining -= u64::from(cost);
    }
    next.day_used = next.day_used.saturating_add(u64::from(cost));
    let verdict = Verdict {
        outcome: Outcome::Admitted,
        burst: burst_state,
        quota: quota_state,
    };
    (next, verdict)
}

/// What a quota of `limit` has left after `used` (negative: more was granted).
pub(crate) fn remaining(limit: u64, used: i64) -> u64 {
    if used < 0 {
        limit.saturating_add(used.unsigned_abs())
    } else {
        limit.saturating_sub(used.unsigned_abs())
    }
}

/// Sets what is left of the quota in the window holding `unix_secs` to `left` (AWS's update-usage
/// `replace /remaining`); it lasts until that window ends.
pub(crate) fn set_remaining(state: &State, q: &QuotaLimits, unix_secs: u64, left: u64) -> State {
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

/// One key's usage on one plan per day from `start` to `end` inclusive (days since the epoch):
/// `(day, used, remaining)`, from the days kept (`history`, oldest first, then the state's own
/// day) and, for days of the state's quota window, its count.
///
/// `remaining` is what the quota had left at the end of each day, in the window holding it: in
/// the state's window, what it has left now plus what was used after that day; in an earlier
/// window, the limit less what was used in it up to that day.
pub(crate) fn usage(
    history: &[(u32, u64)],
    state: &State,
    quota: Option<&QuotaLimits>,
    start: u32,
    end: u32,
) -> Vec<(u32, u64, Option<u64>)> {
    let used_on = |d: u32| -> u64 {
        let past: u64 = history
            .iter()
            .filter(|(day, _)| *day == d)
            .map(|(_, n)| n)
            .sum();
        past + if state.day == d { state.day_used } else { 0 }
    };
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
    (start..=end)
        .map(|d| {
            let remaining = quota.map(|q| {
                let in_state_window =
                    state.window_end != 0 && (state.window_start..state.window_end).contains(&d);
                if in_state_window {
                    let left = remaining(q.limit, state.window_used);
                    left.saturating_add(used_in(d + 1, state.window_end - 1))
                } else {
                    let w = window(q.period, q.offset, u64::from(d) * SECS_PER_DAY);
                    let (first, _) = days(&w);
                    q.limit.saturating_sub(used_in(first, d))
                }
            });
            (d, used_on(d), remaining)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = NANOS_PER_SEC;
    /// 2023-11-14T22:13:20Z.
    const T0: u64 = 1_700_000_000;

    fn limits(burst: u32, rate_per_sec: u64, quota: Option<(u64, QuotaPeriod)>) -> Limits {
        Limits {
            bucket: Some(BucketLimits {
                period_nanos: SEC / rate_per_sec,
                burst,
            }),
            quota: quota.map(|(limit, period)| QuotaLimits {
                limit,
                period,
                offset: 0,
            }),
        }
    }

    fn at(mono_secs: u64, unix_secs: u64) -> Now {
        Now {
            monotonic: mono_secs * SEC,
            unix: unix_secs * SEC,
        }
    }

    /// Runs `n` requests at one instant, returning the outcomes.
    fn run(state: &mut State, l: &Limits, now: Now, n: usize, cost: u32) -> Vec<Outcome> {
        (0..n)
            .map(|_| {
                let (s, v) = decide(state, l, now, cost);
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
        let (next, v) = decide(&s, &l, at(0, T0), 4);
        assert_eq!(v.outcome, Outcome::Admitted);
        assert_eq!(v.burst.unwrap().remaining, 6);
        assert_eq!(v.quota.unwrap().remaining, 8);
        assert_eq!((next.window_used, next.day_used), (4, 4));
        s = next;
        // 6 tokens left: a cost of 7 waits one second, and spends nothing.
        let (next, v) = decide(&s, &l, at(0, T0), 7);
        assert_eq!(
            v.outcome,
            Outcome::Throttled {
                retry_after_secs: 1
            }
        );
        assert_eq!(next, s);
        // A cost above the burst can never pass.
        let no_quota = Limits { quota: None, ..l };
        let (_, v) = decide(&s, &no_quota, at(100, T0 + 100), 11);
        assert_eq!(
            v.outcome,
            Outcome::Throttled {
                retry_after_secs: BLOCKED_RETRY_SECS
            }
        );
        // 8 left of the quota: a cost of 9 is refused for the quota, taking no token.
        let (next, v) = decide(&s, &l, at(100, T0 + 100), 9);
        assert!(matches!(v.outcome, Outcome::QuotaExceeded { .. }));
        assert_eq!(next.tat, s.tat);
    }

    #[test]
    fn a_throttled_request_spends_no_quota_and_a_quota_refusal_no_token() {
        let l = limits(1, 1, Some((2, QuotaPeriod::Day)));
        let mut s = State::default();
        assert_eq!(
            run(&mut s, &l, at(0, T0), 3, 1),
            [
                Outcome::Admitted,
                Outcome::Throttled {
                    retry_after_secs: 1
                },
                Outcome::Throttled {
                    retry_after_secs: 1
                }
            ]
        );
        assert_eq!(s.window_used, 1);
        assert_eq!(run(&mut s, &l, at(1, T0 + 1), 1, 1), [Outcome::Admitted]);
        let tat = s.tat;
        let out = run(&mut s, &l, at(5, T0 + 5), 1, 1);
        assert!(matches!(out[0], Outcome::QuotaExceeded { .. }));
        assert_eq!(s.tat, tat, "no token taken");
    }

    #[test]
    fn zero_burst_or_zero_rate_blocks() {
        for b in [
            BucketLimits {
                period_nanos: SEC,
                burst: 0,
            },
            BucketLimits {
                period_nanos: u64::MAX,
                burst: 10,
            },
        ] {
            let l = Limits {
                bucket: Some(b),
                quota: None,
            };
            let (s, v) = decide(&State::default(), &l, at(0, T0), 1);
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
        let l = Limits {
            bucket: None,
            quota: Some(QuotaLimits {
                limit: 2,
                period: QuotaPeriod::Day,
                offset: 0,
            }),
        };
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
        let q = QuotaLimits {
            limit: 10,
            period: QuotaPeriod::Day,
            offset: 0,
        };
        let l = Limits {
            bucket: None,
            quota: Some(q),
        };
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
    fn usage_gives_used_and_remaining_per_day() {
        let q = QuotaLimits {
            limit: 10,
            period: QuotaPeriod::Week,
            offset: 0,
        };
        // 2024-03-10 is a Sunday (day 19792): a week of Sunday..Saturday.
        let sunday = Date::new(2024, 3, 10).unwrap().days();
        let history = [(sunday - 1, 4), (sunday, 2), (sunday + 1, 3)];
        let state = State {
            window_start: sunday,
            window_end: sunday + 7,
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
