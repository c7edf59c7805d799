//! The contract: [`Counter`], [`Charge`], [`DayUsage`] and the [`Meter`] trait (re-exported by
//! [`meter`](crate::meter), whose docs say how they fit).

use std::future::Future;
use std::sync::Arc;

use crate::error::{FieldError, MeterError};
use crate::period::Date;

use super::policy::{self, Receipt, Verdict};

/// One counter a charge draws from, named by its identities, with its limits.
///
/// Two counters are the same counter when their `plan_id` and `subject` are equal as text (they
/// share one quota window and one day's usage) and, for the bucket, when their `bucket` names
/// are equal too. The identities are reference-counted so that a meter keeps them without
/// copying the text.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Counter<'a> {
    /// The usage plan's id.
    pub plan_id: &'a Arc<str>,
    /// What the counter counts for: a key's id (never its value).
    pub subject: &'a Arc<str>,
    /// The bucket's name, if the counter has a bucket: `plan` for the plan's own, the method
    /// path (`/items/GET`) for a per-method throttle's.
    pub bucket: Option<&'a Arc<str>>,
    /// Its limits, as the plan sets them now.
    pub limits: policy::Limits,
    /// The subject whose counters this one is kept with, if not its own (a key's customer):
    /// counters that are charged together share it, so that a meter that partitions its state
    /// keeps them in one partition (the Redis meter, one Cluster hash slot). `None`: its own
    /// subject.
    pub group: Option<&'a Arc<str>>,
}

impl<'a> Counter<'a> {
    /// A counter of `subject` on the plan `plan_id`, drawing from the bucket `bucket` (if
    /// `limits` has one).
    pub fn new(
        plan_id: &'a Arc<str>,
        subject: &'a Arc<str>,
        bucket: Option<&'a Arc<str>>,
        limits: policy::Limits,
    ) -> Self {
        Self {
            plan_id,
            subject,
            bucket,
            limits,
            group: None,
        }
    }

    /// The same counter, kept with `group`'s counters (see [`group`](Self::group)).
    pub fn with_group(self, group: &'a Arc<str>) -> Self {
        Self {
            group: Some(group),
            ..self
        }
    }

    /// The name of the counter's bucket, if it has limits for one.
    pub fn bucket_name(&self) -> Option<&'a str> {
        self.limits.bucket.and(self.bucket.map(|b| &**b))
    }
}

/// A charge: `cost` units against every counter it names, all or none.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Charge<'a> {
    /// The counters, at most [`policy::MAX_COUNTERS`].
    pub counters: &'a [Counter<'a>],
    /// How many tokens it takes from each bucket, and how much it counts against each quota and
    /// day (1 unless a [`RequestCost`](crate::RequestCost) says otherwise).
    pub cost: u32,
}

impl<'a> Charge<'a> {
    /// A charge of `cost` against `counters`.
    ///
    /// # Errors
    ///
    /// [`MeterError::Invalid`] for no counter, more than [`policy::MAX_COUNTERS`], or two
    /// counters of the same subject on the same plan (one counter: its quota and day would be
    /// charged twice).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tower_usage_plans::meter::policy::Limits;
    /// use tower_usage_plans::meter::{Charge, Counter};
    ///
    /// let (plan, key): (Arc<str>, Arc<str>) = ("plan111".into(), "key111".into());
    /// let one = Counter::new(&plan, &key, None, Limits::default());
    /// assert!(Charge::new(&[one], 1).is_ok());
    /// assert!(Charge::new(&[one, one], 1).is_err());
    /// assert!(Charge::new(&[], 1).is_err());
    /// ```
    pub fn new(counters: &'a [Counter<'a>], cost: u32) -> Result<Self, MeterError> {
        if counters.is_empty() || counters.len() > policy::MAX_COUNTERS {
            return Err(FieldError::new(
                "counters",
                format!(
                    "a charge names 1 to {} counters, not {}",
                    policy::MAX_COUNTERS,
                    counters.len()
                ),
            )
            .into());
        }
        for (i, a) in counters.iter().enumerate() {
            if counters[i + 1..]
                .iter()
                .any(|b| a.plan_id == b.plan_id && a.subject == b.subject)
            {
                return Err(FieldError::new(
                    "counters",
                    format!(
                        "the subject {:?} is named twice on the plan {:?}: one counter a charge",
                        &**a.subject, &**a.plan_id
                    ),
                )
                .into());
            }
        }
        Ok(Self { counters, cost })
    }
}

/// One counter's use on one UTC day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DayUsage {
    /// The day.
    pub date: Date,
    /// Units counted that day (each request by its cost, corrections included).
    pub used: u64,
    /// What was left of the quota at the end of that day (or now, for today), if the counter
    /// has a quota.
    pub remaining: Option<u64>,
}

impl DayUsage {
    /// A day's usage.
    pub const fn new(date: Date, used: u64, remaining: Option<u64>) -> Self {
        Self {
            date,
            used,
            remaining,
        }
    }
}

/// The error for a usage range that ends before it starts.
pub(crate) fn check_range(start: Date, end: Date) -> Result<(), MeterError> {
    if start > end {
        return Err(
            FieldError::new("startDate", format!("{start} is after the end date {end}")).into(),
        );
    }
    Ok(())
}

/// The error for [`Meter::set_remaining`] on a counter without a quota.
pub(crate) fn no_quota(counter: &Counter<'_>) -> MeterError {
    FieldError::new(
        "remaining",
        format!(
            "usage plan {:?} has no quota to set what is left of",
            &**counter.plan_id
        ),
    )
    .into()
}

/// Answers *may this request go now, and what has been used*. See the [module docs](crate::meter).
///
/// An implementation keeps a [`State`](policy::State) per counter (per plan and subject, with
/// one arrival time per bucket name) and runs [`policy::decide`] on the states of a charge's
/// counters at once (under one lock, in one transaction, in one script), so that it keeps the
/// policy's promises: all counters charged or none, a throttled request spends no quota, a
/// quota refusal spends no token, N concurrent charges against a quota of L admit exactly
/// min(N, L), and a wall clock that steps back never reopens a used window. The conformance
/// suite in `tower_usage_plans::testing` (feature `testing`) checks them.
///
/// The futures are named, so that the layer holds them without boxing: a meter that answers at
/// once (in memory) uses [`std::future::Ready`]; one that waits returns a boxed future that owns
/// what it needs (clone an `Arc` of the meter's state into it):
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::sync::Arc;
/// use tower_usage_plans::error::MeterError;
/// use tower_usage_plans::meter::policy::{self, Receipt, State, Verdict};
/// use tower_usage_plans::meter::{Charge, Counter, DayUsage, Meter};
/// use tower_usage_plans::period::Date;
///
/// type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, MeterError>> + Send>>;
///
/// /// One state per plan and subject, behind an async lock (a stand-in for a database).
/// #[derive(Clone, Default)]
/// struct AsyncMeter(Arc<tokio::sync::Mutex<std::collections::HashMap<(String, String), State>>>);
///
/// impl Meter for AsyncMeter {
///     type Admit = BoxFuture<Verdict>;
///     type Adjust = BoxFuture<()>;
///
///     fn admit(&self, charge: &Charge<'_>) -> Self::Admit {
///         // Owned copies of what the future needs: it outlives the borrow of `charge`.
///         let ids: Vec<(String, String)> =
///             charge.counters.iter().map(|c| (c.plan_id.to_string(), c.subject.to_string())).collect();
///         let limits: Vec<policy::Limits> = charge.counters.iter().map(|c| c.limits).collect();
///         let (map, cost) = (self.0.clone(), charge.cost);
///         Box::pin(async move {
///             let mut map = map.lock().await; // really waits when another charge holds it
///             let mut states: Vec<State> =
///                 ids.iter().map(|id| map.get(id).copied().unwrap_or_default()).collect();
///             let now = tower_usage_plans::clock::Clock::now(&tower_usage_plans::clock::SystemClock);
///             let verdict = policy::decide(&mut states, &limits, now, cost);
///             for (id, s) in ids.into_iter().zip(states) {
///                 map.insert(id, s);
///             }
///             Ok(verdict)
///         })
///     }
///
///     fn adjust(&self, _: &Charge<'_>, _: &Receipt, _: i64) -> Self::Adjust {
///         Box::pin(async { Ok(()) }) // a real meter runs policy::adjust: see tests/meter/outside_meters.rs
///     }
///
///     async fn usage(&self, _: &Counter<'_>, _: Date, _: Date) -> Result<Vec<DayUsage>, MeterError> {
///         Ok(Vec::new())
///     }
///
///     async fn set_remaining(&self, _: &Counter<'_>, _: u64) -> Result<(), MeterError> {
///         Ok(())
///     }
/// }
/// ```
/// (Bucket names are left out here for brevity: a real meter keeps one arrival time per bucket
/// name; `tests/meter/outside_meters.rs` has two complete meters that pass the conformance suite.)
pub trait Meter: Send + Sync + 'static {
    /// The future [`admit`](Self::admit) returns: `Unpin`, as [`std::future::Ready`] and a
    /// boxed future are, so that the layer polls a verdict that is ready where it was made and
    /// keeps only a pending one.
    type Admit: Future<Output = Result<Verdict, MeterError>> + Send + Unpin + 'static;

    /// The future [`adjust`](Self::adjust) returns.
    type Adjust: Future<Output = Result<(), MeterError>> + Send + Unpin + 'static;

    /// Checks every counter of `charge` and charges all or none: takes `cost` tokens from each
    /// bucket, counts `cost` against each quota and each counter's day. An admitted verdict
    /// carries the [`Receipt`] that [`adjust`](Self::adjust) takes.
    fn admit(&self, charge: &Charge<'_>) -> Self::Admit;

    /// Corrects an admitted charge by `delta` units (negative: given back, at most what was
    /// charged; positive: charged more), in the quota window and on the day its `receipt` names,
    /// as [`policy::adjust`] says: never below zero, possibly past the quota's limit (the next
    /// charge is then refused), buckets untouched. `charge` names the same counters as the
    /// charge the receipt is for.
    fn adjust(&self, charge: &Charge<'_>, receipt: &Receipt, delta: i64) -> Self::Adjust;

    /// One counter's usage, one entry per UTC day from `start` to `end` inclusive (AWS's
    /// `get-usage`). A range that ends before it starts is an error.
    fn usage(
        &self,
        counter: &Counter<'_>,
        start: Date,
        end: Date,
    ) -> impl Future<Output = Result<Vec<DayUsage>, MeterError>> + Send;

    /// Sets what is left of the counter's quota in the current window to `remaining` (AWS's
    /// update-usage, `replace /remaining`). It lasts until the window ends; it may exceed the
    /// limit (more was granted). A counter without a quota is an error.
    fn set_remaining(
        &self,
        counter: &Counter<'_>,
        remaining: u64,
    ) -> impl Future<Output = Result<(), MeterError>> + Send;
}

impl<T: Meter> Meter for Arc<T> {
    type Admit = T::Admit;
    type Adjust = T::Adjust;

    #[inline]
    fn admit(&self, charge: &Charge<'_>) -> Self::Admit {
        (**self).admit(charge)
    }

    fn adjust(&self, charge: &Charge<'_>, receipt: &Receipt, delta: i64) -> Self::Adjust {
        (**self).adjust(charge, receipt, delta)
    }

    fn usage(
        &self,
        counter: &Counter<'_>,
        start: Date,
        end: Date,
    ) -> impl Future<Output = Result<Vec<DayUsage>, MeterError>> + Send {
        (**self).usage(counter, start, end)
    }

    fn set_remaining(
        &self,
        counter: &Counter<'_>,
        remaining: u64,
    ) -> impl Future<Output = Result<(), MeterError>> + Send {
        (**self).set_remaining(counter, remaining)
    }
}
