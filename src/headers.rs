//! The IETF rate-limit header fields (draft-ietf-httpapi-ratelimit-headers-10): the
//! `RateLimit-Policy` value a compiled plan builds once per bucket, and the `RateLimit` value a
//! decision reports.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::meter::{LimitState, Verdict};
use crate::model::{Quota, QuotaPeriod};

pub(crate) static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub(crate) static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The name a quota's period goes by in the rate-limit headers.
fn period_name(p: QuotaPeriod) -> &'static str {
    match p {
        QuotaPeriod::Day => "day",
        QuotaPeriod::Week => "week",
        QuotaPeriod::Month => "month",
    }
}

/// A `RateLimit-Policy` value: `"burst";q=10;w=2, "day";q=1000;w=86400`, for a bucket of this
/// size and fill time (seconds) and this quota; `None` with neither. Built once per compiled plan
/// and bucket.
pub(crate) fn policy_value(
    burst: Option<(u64, u64)>,
    quota: Option<&Quota>,
) -> Option<HeaderValue> {
    let mut items = Vec::with_capacity(2);
    if let Some((q, w)) = burst {
        items.push(format!("\"burst\";q={q};w={w}"));
    }
    if let Some(quota) = quota {
        let w = match quota.period {
            QuotaPeriod::Day => 86_400,
            QuotaPeriod::Week => 7 * 86_400,
            // A month's length varies: the policy names the longest, 31 days.
            QuotaPeriod::Month => 31 * 86_400,
        };
        items.push(format!(
            "\"{}\";q={};w={w}",
            period_name(quota.period),
            quota.limit
        ));
    }
    if items.is_empty() {
        return None;
    }
    HeaderValue::try_from(items.join(", ")).ok()
}

/// What the rate-limit headers report: the plan's policy value for the bucket, and the state of
/// each limit after the decision.
#[derive(Clone, Debug)]
pub(crate) struct RateInfo {
    policy: HeaderValue,
    /// What is left of the bucket, and seconds until it is whole.
    burst: Option<(u64, u64)>,
    /// What is left of the quota, seconds until its window ends, and its period.
    quota: Option<(u64, u64, QuotaPeriod)>,
}

impl RateInfo {
    /// The headers for `verdict`, with the policy value of the request's bucket (none: nothing
    /// to report) and the period of its quota.
    #[inline]
    pub(crate) fn new(
        verdict: &Verdict,
        policy: Option<&HeaderValue>,
        period: Option<QuotaPeriod>,
    ) -> Option<Self> {
        let left = |s: &LimitState| (s.remaining, s.reset_secs);
        Some(Self {
            policy: policy?.clone(),
            burst: verdict.burst.as_ref().map(left),
            quota: verdict
                .quota
                .as_ref()
                .zip(period)
                .map(|(q, p)| (q.remaining, q.reset_secs, p)),
        })
    }

    /// Adds `RateLimit-Policy` and `RateLimit`.
    pub(crate) fn write(&self, headers: &mut HeaderMap) {
        // Two items of at most 40 bytes each.
        let mut line = [0u8; 96];
        let mut len = 0;
        let mut put = |s: &[u8]| {
            let end = (len + s.len()).min(line.len());
            line[len..end].copy_from_slice(&s[..end - len]);
            len = end;
        };
        let mut buf = itoa::Buffer::new();
        let quota = self.quota.map(|(r, t, p)| (period_name(p), (r, t)));
        for (i, (name, (remaining, reset))) in self
            .burst
            .map(|b| ("burst", b))
            .into_iter()
            .chain(quota)
            .enumerate()
        {
            if i > 0 {
                put(b", ");
            }
            put(b"\"");
            put(name.as_bytes());
            put(b"\";r=");
            put(buf.format(remaining).as_bytes());
            put(b";t=");
            put(buf.format(reset).as_bytes());
        }
        if let Ok(state) = HeaderValue::from_bytes(&line[..len]) {
            headers.insert(RATELIMIT_POLICY.clone(), self.policy.clone());
            headers.insert(RATELIMIT.clone(), state);
        }
    }
}
