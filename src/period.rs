//! Quota windows: the calendar window, in UTC, that holds an instant.
//!
//! A quota counts requests in windows that follow the calendar in UTC, as Amazon API Gateway's do.
//! The window's first day is set by the quota's `offset`, a day index (see the crate's [AWS semantics](crate::aws_semantics) page):
//!
//! | period | offset | the window |
//! |---|---|---|
//! | `DAY` | `0` only | midnight UTC to the next midnight |
//! | `WEEK` | `0..=6`, `0` = Sunday | seven days from 00:00 UTC of that weekday |
//! | `MONTH` | `0..=27` | from 00:00 UTC of day `offset + 1` of the month to the same day of the next month |
//!
//! # Examples
//!
//! ```
//! use tower_usage_plans::model::QuotaPeriod;
//! use tower_usage_plans::period::{window, Date};
//!
//! // 2024-03-10 was a Sunday; a WEEK quota with offset 1 runs Monday to Monday.
//! let now = Date::new(2024, 3, 10).unwrap().unix_secs() + 3600;
//! let w = window(QuotaPeriod::Week, 1, now);
//! assert_eq!(w.start_date(), Date::new(2024, 3, 4).unwrap());
//! assert_eq!(w.end_date(), Date::new(2024, 3, 11).unwrap());
//! assert_eq!(w.secs_until_end(now), 23 * 3600);
//! ```

use std::fmt;

use crate::model::QuotaPeriod;

/// Seconds in a day.
pub(crate) const SECS_PER_DAY: u64 = 86_400;

/// A day in the proleptic Gregorian calendar, UTC, as a count of days since 1970-01-01.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(u32);

impl Date {
    /// The date `year-month-day`, or `None` if there is no such day (or it is before 1970 or after
    /// the year 9999).
    pub fn new(year: u32, month: u32, day: u32) -> Option<Self> {
        if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) || day == 0 {
            return None;
        }
        if day > days_in_month(year, month) {
            return None;
        }
        let days = days_from_civil(i64::from(year), month, day);
        u32::try_from(days).ok().map(Date)
    }

    /// The day holding `unix_secs` seconds after the epoch.
    pub fn from_unix_secs(unix_secs: u64) -> Self {
        Date(u32::try_from(unix_secs / SECS_PER_DAY).unwrap_or(u32::MAX))
    }

    /// The day with this many days since 1970-01-01.
    pub const fn from_days(days: u32) -> Self {
        Date(days)
    }

    /// Days since 1970-01-01.
    pub const fn days(self) -> u32 {
        self.0
    }

    /// 00:00:00 UTC of this day, in seconds since the epoch.
    pub fn unix_secs(self) -> u64 {
        u64::from(self.0) * SECS_PER_DAY
    }

    /// `(year, month, day)`.
    pub fn ymd(self) -> (u32, u32, u32) {
        let (y, m, d) = civil_from_days(i64::from(self.0));
        (u32::try_from(y).unwrap_or(0), m, d)
    }

    /// The day of the week, `0` = Sunday to `6` = Saturday.
    pub fn weekday(self) -> u32 {
        // 1970-01-01 was a Thursday.
        (self.0 + 4) % 7
    }

    /// The next day.
    pub fn succ(self) -> Self {
        Date(self.0.saturating_add(1))
    }

    /// Parses `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = s.get(r)?;
            if part.bytes().all(|c| c.is_ascii_digit()) {
                part.parse().ok()
            } else {
                None
            }
        };
        Date::new(num(0..4)?, num(5..7)?, num(8..10)?)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

/// A quota window: from `start` (inclusive) to `end` (exclusive), in seconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// 00:00:00 UTC of the window's first day, in seconds since the epoch.
    pub start: u64,
    /// 00:00:00 UTC of the day after the window's last day, in seconds since the epoch.
    pub end: u64,
}

impl Window {
    /// The window's first day.
    pub fn start_date(&self) -> Date {
        Date::from_unix_secs(self.start)
    }

    /// The first day after the window.
    pub fn end_date(&self) -> Date {
        Date::from_unix_secs(self.end)
    }

    /// Whole seconds from `now` until the window ends, rounded up (0 once it has ended).
    pub fn secs_until_end(&self, now_secs: u64) -> u64 {
        self.end.saturating_sub(now_secs)
    }

    /// The window's length in seconds.
    pub fn len_secs(&self) -> u64 {
        self.end - self.start
    }
}

/// The calendar a quota counts in: which window holds an instant.
///
/// The crate's calendar code, handed to every meter with a quota's limit
/// ([`QuotaLimits`](crate::meter::policy::QuotaLimits)), so that no meter implements a calendar
/// of its own: a meter asks [`window_at`](Self::window_at) for the window holding its clock's
/// reading. Today's calendars are AWS's: UTC days, weeks from a weekday, months from a day
/// ([`window`]).
///
/// ```
/// use tower_usage_plans::model::QuotaPeriod;
/// use tower_usage_plans::period::{Calendar, Date};
///
/// let month = Calendar::aws(QuotaPeriod::Month, 4); // from the 5th of each month
/// let w = month.window_at(Date::new(2024, 3, 2).unwrap().unix_secs());
/// assert_eq!((w.start_date(), w.end_date()), (Date::new(2024, 2, 5).unwrap(), Date::new(2024, 3, 5).unwrap()));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Calendar {
    period: QuotaPeriod,
    offset: u32,
}

impl Calendar {
    /// AWS's calendar for a quota of `period` and `offset` (see the [module docs](self)).
    pub const fn aws(period: QuotaPeriod, offset: u32) -> Self {
        Self { period, offset }
    }

    /// The quota's period.
    pub const fn period(&self) -> QuotaPeriod {
        self.period
    }

    /// The quota's offset.
    pub const fn offset(&self) -> u32 {
        self.offset
    }

    /// The window that holds `unix_secs` (seconds since the epoch).
    #[inline]
    pub fn window_at(&self, unix_secs: u64) -> Window {
        window(self.period, self.offset, unix_secs)
    }
}

/// The window of a quota with this `period` and `offset` that holds `now_secs` (seconds since the
/// epoch, UTC).
///
/// `offset` is clamped to the period's range (`DAY`: 0; `WEEK`: 0..=6; `MONTH`: 0..=27): the model
/// refuses offsets outside it, so a clamp only guards against a hand-built value.
pub fn window(period: QuotaPeriod, offset: u32, now_secs: u64) -> Window {
    let today = Date::from_unix_secs(now_secs);
    let (start, end) = match period {
        QuotaPeriod::Day => (today, today.succ()),
        QuotaPeriod::Week => {
            let offset = offset.min(6);
            let back = (today.weekday() + 7 - offset) % 7;
            let start = Date(today.0 - back.min(today.0));
            (start, Date(start.0 + 7))
        }
        QuotaPeriod::Month => {
            let first = offset.min(27) + 1;
            let (y, m, d) = today.ymd();
            let (sy, sm) = if d >= first {
                (y, m)
            } else if m == 1 {
                (y - 1, 12)
            } else {
                (y, m - 1)
            };
            let (ey, em) = if sm == 12 { (sy + 1, 1) } else { (sy, sm + 1) };
            let start = Date::new(sy, sm, first).unwrap_or(Date(0));
            let end = Date::new(ey, em, first).unwrap_or(Date(u32::MAX));
            (start, end)
        }
    };
    Window {
        start: start.unix_secs(),
        end: end.unix_secs(),
    }
}

fn is_leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

// Howard Hinnant's `days_from_civil` and `civil_from_days`
// (http://howardhinnant.github.io/date_algorithms.html), on the proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: u32, m: u32, d: u32, h: u64, min: u64, s: u64) -> u64 {
        Date::new(y, m, d).unwrap().unix_secs() + h * 3600 + min * 60 + s
    }

    fn day(y: u32, m: u32, d: u32) -> Date {
        Date::new(y, m, d).unwrap()
    }

    #[test]
    fn dates_round_trip_over_four_centuries() {
        for days in (0..146_097 * 2).step_by(7) {
            let date = Date(days);
            let (y, m, d) = date.ymd();
            assert_eq!(Date::new(y, m, d), Some(date));
            assert_eq!(Date::parse(&date.to_string()), Some(date));
        }
        assert_eq!(day(1970, 1, 1).days(), 0);
        assert_eq!(day(2000, 3, 1).days(), 11_017);
        assert_eq!(Date::new(2023, 2, 29), None);
        assert_eq!(Date::parse("2024-02-30"), None);
        assert_eq!(Date::parse("2024-2-03"), None);
        assert_eq!(Date::parse("+024-02-03"), None);
    }

    #[test]
    fn weekdays() {
        assert_eq!(day(1970, 1, 1).weekday(), 4);
        assert_eq!(day(2024, 3, 10).weekday(), 0);
        assert_eq!(day(2024, 3, 11).weekday(), 1);
    }

    #[test]
    fn day_window_turns_at_midnight_utc() {
        let last = at(2024, 5, 1, 23, 59, 59);
        let w = window(QuotaPeriod::Day, 0, last);
        assert_eq!(
            (w.start_date(), w.end_date()),
            (day(2024, 5, 1), day(2024, 5, 2))
        );
        assert_eq!(w.secs_until_end(last), 1);
        let w2 = window(QuotaPeriod::Day, 0, last + 1);
        assert_eq!(w2.start_date(), day(2024, 5, 2));
        assert_eq!(w2.len_secs(), SECS_PER_DAY);
    }

    #[test]
    fn week_offset_0_starts_sunday() {
        // Saturday 2024-03-09 23:59:59 is in the week that began Sunday 2024-03-03.
        let sat = at(2024, 3, 9, 23, 59, 59);
        assert_eq!(
            window(QuotaPeriod::Week, 0, sat).start_date(),
            day(2024, 3, 3)
        );
        let sun = sat + 1;
        let w = window(QuotaPeriod::Week, 0, sun);
        assert_eq!(
            (w.start_date(), w.end_date()),
            (day(2024, 3, 10), day(2024, 3, 17))
        );
    }

    #[test]
    fn week_offset_1_starts_monday() {
        let sun = at(2024, 3, 10, 23, 59, 59);
        assert_eq!(
            window(QuotaPeriod::Week, 1, sun).start_date(),
            day(2024, 3, 4)
        );
        let mon = sun + 1;
        let w = window(QuotaPeriod::Week, 1, mon);
        assert_eq!(
            (w.start_date(), w.end_date()),
            (day(2024, 3, 11), day(2024, 3, 18))
        );
        assert_eq!(
            window(QuotaPeriod::Week, 6, mon).start_date(),
            day(2024, 3, 9)
        );
    }

    #[test]
    fn month_offset_0_turns_after_feb_28_and_29_and_the_31st() {
        let w = window(QuotaPeriod::Month, 0, at(2023, 2, 28, 23, 59, 59));
        assert_eq!(
            (w.start_date(), w.end_date()),
            (day(2023, 2, 1), day(2023, 3, 1))
        );
        assert_eq!(
            window(QuotaPeriod::Month, 0, at(2023, 3, 1, 0, 0, 0)).start_date(),
            day(2023, 3, 1)
        );
        let leap = window(QuotaPeriod::Month, 0, at(2024, 2, 29, 23, 59, 59));
        assert_eq!(
            (leap.start_date(), leap.end_date()),
            (day(2024, 2, 1), day(2024, 3, 1))
        );
        assert_eq!(leap.len_secs(), 29 * SECS_PER_DAY);
        let dec = window(QuotaPeriod::Month, 0, at(2024, 12, 31, 23, 59, 59));
        assert_eq!(
            (dec.start_date(), dec.end_date()),
            (day(2024, 12, 1), day(2025, 1, 1))
        );
        assert_eq!(
            window(QuotaPeriod::Month, 0, at(2025, 1, 1, 0, 0, 0)).start_date(),
            day(2025, 1, 1)
        );
    }

    #[test]
    fn month_offset_27_runs_from_the_28th() {
        let w = window(QuotaPeriod::Month, 27, at(2024, 2, 27, 23, 59, 59));
        assert_eq!(
            (w.start_date(), w.end_date()),
            (day(2024, 1, 28), day(2024, 2, 28))
        );
        let w = window(QuotaPeriod::Month, 27, at(2024, 2, 28, 0, 0, 0));
        assert_eq!(
            (w.start_date(), w.end_date()),
            (day(2024, 2, 28), day(2024, 3, 28))
        );
        // The 29th of a leap February and the 31st stay in the window that began on the 28th.
        assert_eq!(
            window(QuotaPeriod::Month, 27, at(2024, 2, 29, 12, 0, 0)).start_date(),
            day(2024, 2, 28)
        );
        let w = window(QuotaPeriod::Month, 27, at(2024, 1, 31, 23, 59, 59));
        assert_eq!(
            (w.start_date(), w.end_date()),
            (day(2024, 1, 28), day(2024, 2, 28))
        );
        // January's window starts in the December before.
        let w = window(QuotaPeriod::Month, 27, at(2025, 1, 5, 0, 0, 0));
        assert_eq!(
            (w.start_date(), w.end_date()),
            (day(2024, 12, 28), day(2025, 1, 28))
        );
    }
}
