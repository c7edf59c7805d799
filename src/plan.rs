//! A usage plan as it applies on one stage, compiled for the request path.
//!
//! A [`KeyStore`](crate::store::KeyStore) answers a key's plan as a [`StagePlan`]: the plan's
//! throttle and quota and that stage's per-method throttles, parsed once when the plan is stored,
//! so that a request only compares a few strings to find its bucket.
//!
//! # Examples
//!
//! ```
//! use http::Method;
//! use tower_usage_plans::model::{ApiStage, StageRef, Throttle, UsagePlan};
//! use tower_usage_plans::plan::{Bucket, StagePlan};
//!
//! let mut plan = UsagePlan::new("plan111", "FreePlan");
//! plan.throttle = Some(Throttle::new(5.0, 10).unwrap());
//! let mut stage = ApiStage::new("abc123def4", "prod");
//! stage.throttle.insert("/items/GET".into(), Throttle::new(10.0, 20).unwrap());
//! plan.api_stages.push(stage);
//!
//! let prod = StagePlan::new(&plan, &StageRef::new("abc123def4", "prod")).unwrap();
//! assert_eq!(prod.bucket_for("/items", &Method::GET), Bucket::Method(0));
//! assert_eq!(prod.bucket_throttle(Bucket::Method(0)).unwrap().burst_limit, 20);
//! assert_eq!(prod.bucket_for("/items", &Method::POST), Bucket::Plan);
//! assert!(StagePlan::new(&plan, &StageRef::new("abc123def4", "dev")).is_none());
//! ```

use std::sync::Arc;

use http::Method;

use crate::model::{MethodPath, Quota, StageRef, Throttle, UsagePlan};

/// Which token bucket of a plan a request draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// The plan has no throttle: no bucket, only the quota (if any).
    None,
    /// The plan's own throttle.
    Plan,
    /// The per-method throttle at this index of [`StagePlan::methods`], which replaces the
    /// plan's throttle for that method, with its own bucket per key.
    Method(usize),
}

/// A per-method throttle of a plan on a stage.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodThrottle {
    /// The method it applies to.
    pub method: MethodPath,
    /// Its throttle.
    pub throttle: Throttle,
}

/// A usage plan as it applies on one stage. See the [module example](self).
#[derive(Clone, Debug)]
pub struct StagePlan {
    id: Arc<str>,
    /// The plan id's number in this process ([`plan_number`]), for the meter's records.
    number: u32,
    api_id: Box<str>,
    stage: Box<str>,
    throttle: Option<Throttle>,
    quota: Option<Quota>,
    methods: Box<[MethodThrottle]>,
    /// A tag per method bucket, the same for the same method in any build of the plan.
    tags: Box<[u64]>,
    /// Nanoseconds per token of the plan's bucket (index 0) and of each method's (index i + 1),
    /// worked out once here rather than on every request.
    periods: Box<[u64]>,
    /// The `RateLimit-Policy` value of each bucket (index as `periods`; [`Bucket::None`] last),
    /// built once here rather than on every request.
    policies: Box<[Option<http::HeaderValue>]>,
    /// The resources the per-method throttles name, matched against a request's route or path.
    resources: Resources,
}

/// The plan's own resource templates, routed once per plan: a request finds its per-method
/// throttle whatever routes the layer was built with, and a template added at run time applies
/// to the next request.
#[derive(Clone, Debug, Default)]
struct Resources {
    /// A template (parameters renamed by position, so `/items/{id}` and `/items/{itemId}` are one
    /// resource, as on AWS) -> index into `methods`.
    router: matchit::Router<usize>,
    /// Each resource's methods: (method, index into `StagePlan::methods`).
    methods: Vec<Vec<(Method, usize)>>,
    /// Each resource's template as the plan writes it (for an exact comparison first).
    templates: Vec<Box<str>>,
    /// The per-method throttles whose resource can never match a request, and why.
    unrouted: Vec<(MethodPath, String)>,
}

impl Resources {
    fn new(methods: &[MethodThrottle]) -> Self {
        let mut r = Self::default();
        // Each slot's template as routed, parameters renamed by position.
        let mut routed: Vec<String> = Vec::new();
        for (i, m) in methods.iter().enumerate() {
            let template = crate::route::matchit_template(m.method.resource(), true);
            let slot = match routed.iter().position(|t| *t == template) {
                Some(slot) => slot,
                None => {
                    let slot = routed.len();
                    if let Err(e) = r.router.insert(template.clone(), slot) {
                        r.unrouted.push((m.method.clone(), e.to_string()));
                        continue;
                    }
                    routed.push(template);
                    r.templates.push(m.method.resource().into());
                    r.methods.push(Vec::new());
                    slot
                }
            };
            r.methods[slot].push((m.method.method().clone(), i));
        }
        r
    }

    /// The index in `StagePlan::methods` of the throttle for `method` on `resource` (a route
    /// template, or a request's path): the method's own entry, else GET's for HEAD, else `ANY`.
    #[inline]
    fn find(&self, resource: &str, method: &Method) -> Option<usize> {
        let slot = match self.templates.iter().position(|t| **t == *resource) {
            Some(slot) => slot,
            None => *self.router.at(resource).ok()?.value,
        };
        // The same rule as the layer's routes.
        crate::route::setting(self.methods.get(slot)?, method)
    }
}

/// Nanoseconds per token, as `governor::Quota::with_period(1 / rate)` takes them (at least 1);
/// `u64::MAX` (never) for a rate of 0.
fn period_nanos(t: &Throttle) -> u64 {
    if t.rate_limit <= 0.0 {
        return u64::MAX;
    }
    std::time::Duration::try_from_secs_f64(1.0 / t.rate_limit)
        .ok()
        .and_then(|d| u64::try_from(d.as_nanos()).ok())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Texts and the numbers [`intern`] gave them, in the order given.
type Interned = std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<Box<str>, u32>>>;

/// The number `table` gives `text`: the same for the same text, 0, 1, 2, … in the order first
/// seen. Texts are compared whole, once per compiled plan (a management change), never per
/// request; the table keeps every text it was given.
fn intern(table: &Interned, text: &str) -> u32 {
    use std::sync::{Mutex, PoisonError};
    let mut numbers = table
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(n) = numbers.get(text) {
        return *n;
    }
    let n = u32::try_from(numbers.len()).unwrap_or(u32::MAX);
    numbers.insert(text.into(), n);
    n
}

/// The numbers [`plan_number`] gave, by plan id.
static NUMBERS: Interned = std::sync::OnceLock::new();

/// A number for each plan id this process has compiled a plan for, the same for the same id:
/// the meter keeps it in each key's record instead of the id's text (plans are few: AWS allows
/// 300 per account).
pub(crate) fn plan_number(id: &str) -> u32 {
    intern(&NUMBERS, id)
}

/// Every plan id [`plan_number`] has numbered, at the index of its number.
#[cfg(feature = "sqlite")]
pub(crate) fn plan_ids_by_number() -> Vec<Box<str>> {
    use std::sync::{Mutex, PoisonError};
    let numbers = NUMBERS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let mut ids = vec![Box::<str>::default(); numbers.len()];
    for (id, n) in numbers.iter() {
        if let Some(slot) = ids.get_mut(*n as usize) {
            slot.clone_from(id);
        }
    }
    ids
}

/// Seconds for an empty bucket of `burst` tokens, one every `period` nanoseconds, to fill, rounded
/// up (at least 1).
pub(crate) fn fill_secs(period: u64, burst: u32) -> u64 {
    period
        .saturating_mul(u64::from(burst))
        .div_ceil(crate::clock::NANOS_PER_SEC)
        .max(1)
}

/// The numbers [`bucket_number`] gave, by method path.
static BUCKETS: Interned = std::sync::OnceLock::new();

/// A number for each per-method throttle's method path (`/items/GET`) this process has compiled,
/// the same for the same path, from 2 up (0 names no bucket, 1 the plan's own): what the local
/// meter tells a key's buckets apart by. Exact, so two overrides never share a bucket by a
/// hash's luck.
fn bucket_number(method_path: &str) -> u64 {
    u64::from(intern(&BUCKETS, method_path)) + 2
}

impl StagePlan {
    /// The plan as it applies on `stage`, or `None` if the plan does not list that stage
    /// ([`StageRef::any`] takes the plan's first stage).
    ///
    /// The plan should have passed [`UsagePlan::validate`]; a per-method throttle whose key does
    /// not parse is skipped here, never a panic.
    pub fn new(plan: &UsagePlan, stage: &StageRef) -> Option<Self> {
        let st = plan.api_stages.iter().find(|s| s.is(stage))?;
        let methods = st
            .throttle
            .iter()
            .filter_map(|(k, t)| {
                Some(MethodThrottle {
                    method: k.parse().ok()?,
                    throttle: *t,
                })
            })
            .collect::<Box<[MethodThrottle]>>();
        let tags = methods
            .iter()
            .map(|m| bucket_number(&m.method.to_string()))
            .collect();
        let periods: Box<[u64]> = std::iter::once(plan.throttle.as_ref().map_or(0, period_nanos))
            .chain(methods.iter().map(|m| period_nanos(&m.throttle)))
            .collect();
        let throttles = std::iter::once(plan.throttle.as_ref())
            .chain(methods.iter().map(|m| Some(&m.throttle)))
            .chain(std::iter::once(None));
        let policies = throttles
            .zip(periods.iter().copied().chain(std::iter::once(0)))
            .map(|(t, period)| {
                // A blocked bucket: nothing, in the window a refused client is told to wait.
                let burst = t.map(|t| match t.is_blocked() {
                    true => (0, crate::meter::policy::BLOCKED_RETRY_SECS),
                    false => (u64::from(t.burst_limit), fill_secs(period, t.burst_limit)),
                });
                crate::response::policy_value(burst, plan.quota.as_ref())
            })
            .collect();
        let resources = Resources::new(&methods);
        Some(Self {
            id: plan.id.as_str().into(),
            number: plan_number(&plan.id),
            api_id: st.api_id.as_str().into(),
            stage: st.stage.as_str().into(),
            throttle: plan.throttle,
            quota: plan.quota,
            methods,
            tags,
            periods,
            policies,
            resources,
        })
    }

    /// Every stage the plan lists, each compiled.
    pub fn all(plan: &UsagePlan) -> Vec<Self> {
        plan.api_stages
            .iter()
            .filter_map(|s| StagePlan::new(plan, &StageRef::new(&*s.api_id, &*s.stage)))
            .collect()
    }

    /// The plan's id.
    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    /// The plan id's number in this process: equal numbers are equal ids.
    pub(crate) fn number(&self) -> u32 {
        self.number
    }

    /// The API's id of the stage.
    pub fn api_id(&self) -> &str {
        &self.api_id
    }

    /// The stage's name.
    pub fn stage(&self) -> &str {
        &self.stage
    }

    /// The plan's throttle.
    pub fn throttle(&self) -> Option<&Throttle> {
        self.throttle.as_ref()
    }

    /// The plan's quota.
    pub fn quota(&self) -> Option<&Quota> {
        self.quota.as_ref()
    }

    /// The stage's per-method throttles.
    pub fn methods(&self) -> &[MethodThrottle] {
        &self.methods
    }

    /// The bucket a request for `method` on `resource` draws from.
    ///
    /// `resource` is the request's path (or a template written as a route): it is matched
    /// against the plan's own templates (`/items/42` is `/items/{id}`; a static resource wins
    /// over a template, and parameter names do not matter). On that resource the method's own
    /// throttle applies; for HEAD without one, GET's (axum answers HEAD with the GET handler);
    /// else the resource's `ANY` throttle; else the plan's.
    ///
    /// ```
    /// use http::Method;
    /// use tower_usage_plans::model::{ApiStage, StageRef, Throttle, UsagePlan};
    /// use tower_usage_plans::plan::{Bucket, StagePlan};
    ///
    /// let mut plan = UsagePlan::new("plan111", "Free");
    /// plan.throttle = Some(Throttle::new(100.0, 100).unwrap());
    /// let mut stage = ApiStage::new("abc123def4", "prod");
    /// stage.throttle.insert("/items/ANY".into(), Throttle::new(1.0, 1).unwrap());
    /// stage.throttle.insert("/items/{id}/GET".into(), Throttle::new(2.0, 2).unwrap());
    /// plan.api_stages.push(stage);
    /// let p = StagePlan::new(&plan, &StageRef::new("abc123def4", "prod")).unwrap();
    ///
    /// assert_eq!(p.bucket_for("/items", &Method::DELETE), Bucket::Method(0)); // ANY
    /// assert_eq!(p.bucket_for("/items/42", &Method::GET), Bucket::Method(1));
    /// assert_eq!(p.bucket_for("/items/{itemId}", &Method::HEAD), Bucket::Method(1));
    /// assert_eq!(p.bucket_for("/items/42", &Method::POST), Bucket::Plan);
    /// ```
    #[inline]
    pub fn bucket_for(&self, resource: &str, method: &Method) -> Bucket {
        if self.throttle.is_none() {
            return Bucket::None;
        }
        if self.methods.is_empty() {
            return Bucket::Plan;
        }
        match self.resources.find(resource, method) {
            Some(i) => Bucket::Method(i),
            None => Bucket::Plan,
        }
    }

    /// The per-method throttles whose resource path can never match a request (a template the
    /// router cannot hold, such as `/items/{a}{b}`), each with why.
    pub fn unroutable(&self) -> &[(MethodPath, String)] {
        &self.resources.unrouted
    }

    /// A number that names a bucket of this plan in this process and stays the same when the
    /// plan is rebuilt (1 for the plan's own bucket, 0 for none, [`bucket_number`] for a
    /// method's), so that a meter keeps a method's bucket across changes of the plan.
    pub(crate) fn bucket_tag(&self, bucket: Bucket) -> u64 {
        match bucket {
            Bucket::Method(i) => self.tags.get(i).copied().unwrap_or(0),
            Bucket::Plan => 1,
            Bucket::None => 0,
        }
    }

    /// The name of a bucket of this plan that every process gives it: `plan` for the plan's own,
    /// the method path (`/items/GET`) for a method's, empty for none. What a shared meter (Redis)
    /// names the bucket's state by.
    #[cfg_attr(not(any(feature = "redis", test)), allow(dead_code))]
    pub(crate) fn bucket_name(&self, bucket: Bucket) -> std::borrow::Cow<'_, str> {
        match bucket {
            Bucket::Method(i) => self
                .methods
                .get(i)
                .map_or(std::borrow::Cow::Borrowed(""), |m| {
                    std::borrow::Cow::Owned(m.method.to_string())
                }),
            Bucket::Plan => std::borrow::Cow::Borrowed("plan"),
            Bucket::None => std::borrow::Cow::Borrowed(""),
        }
    }

    /// The `RateLimit-Policy` header value for a request drawing from `bucket`, if the plan has
    /// any limit to report.
    pub(crate) fn policy(&self, bucket: Bucket) -> Option<&http::HeaderValue> {
        let i = match bucket {
            Bucket::Plan => 0,
            Bucket::Method(i) => i + 1,
            Bucket::None => self.periods.len(),
        };
        self.policies.get(i)?.as_ref()
    }

    /// Nanoseconds per token of a bucket (0 for [`Bucket::None`]).
    pub(crate) fn bucket_period_nanos(&self, bucket: Bucket) -> u64 {
        let i = match bucket {
            Bucket::None => return 0,
            Bucket::Plan => 0,
            Bucket::Method(i) => i + 1,
        };
        self.periods.get(i).copied().unwrap_or(0)
    }

    /// The limits a request drawing from `bucket` is checked against, for the policy.
    #[inline]
    pub(crate) fn limits(&self, bucket: Bucket) -> crate::meter::policy::Limits {
        use crate::meter::policy::{BucketLimits, Limits, QuotaLimits};
        Limits {
            bucket: self.bucket_throttle(bucket).map(|t| BucketLimits {
                period_nanos: self.bucket_period_nanos(bucket),
                burst: t.burst_limit,
            }),
            quota: self.quota.map(|q| QuotaLimits {
                limit: q.limit,
                period: q.period,
                offset: q.offset,
            }),
        }
    }

    /// The throttle of a bucket.
    pub fn bucket_throttle(&self, bucket: Bucket) -> Option<&Throttle> {
        match bucket {
            Bucket::None => None,
            Bucket::Plan => self.throttle.as_ref(),
            Bucket::Method(i) => self.methods.get(i).map(|m| &m.throttle),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ApiStage, Throttle, UsagePlan};

    fn plan(id: &str, paths: &[&str]) -> StagePlan {
        let mut p = UsagePlan::new(id, id);
        p.throttle = Some(Throttle::new(10.0, 10).unwrap());
        let mut stage = ApiStage::new("api", "prod");
        for path in paths {
            stage
                .throttle
                .insert((*path).into(), Throttle::new(1.0, 1).unwrap());
        }
        p.api_stages.push(stage);
        StagePlan::new(&p, &StageRef::any()).unwrap()
    }

    #[test]
    fn each_method_path_names_its_own_bucket_exactly_and_keeps_it_across_rebuilds() {
        let paths = [
            "/items/GET",
            "/items/POST",
            "/orders/GET",
            "/items/{id}/GET",
        ];
        let a = plan("a", &paths);
        let tags: Vec<u64> = (0..paths.len())
            .map(|i| a.bucket_tag(Bucket::Method(i)))
            .collect();
        let mut distinct = tags.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), paths.len(), "{tags:?}");
        assert!(
            tags.iter().all(|t| *t >= 2),
            "0 and 1 are none and the plan's"
        );
        // The plan rebuilt with its overrides in another order: each keeps its tag and name.
        let mut reversed = paths;
        reversed.reverse();
        let b = plan("a", &reversed);
        for i in 0..paths.len() {
            let name = a.bucket_name(Bucket::Method(i));
            let j = (0..paths.len())
                .find(|&j| b.bucket_name(Bucket::Method(j)) == name)
                .unwrap();
            assert_eq!(
                a.bucket_tag(Bucket::Method(i)),
                b.bucket_tag(Bucket::Method(j))
            );
        }
        assert_eq!(a.bucket_name(Bucket::Plan), "plan");
        assert_eq!(a.bucket_tag(Bucket::Plan), 1);
    }
}
