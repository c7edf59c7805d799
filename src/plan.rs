//! A usage plan as it applies on one stage, compiled for the request path (crate-private).
//!
//! A [`KeyStore`](crate::store::KeyStore) answers a key's plan inside its grant; the stores keep
//! each plan compiled here: the plan's throttle and quota and that stage's per-method throttles,
//! parsed once when the plan is stored, with each bucket's name, limits and `RateLimit-Policy`
//! value, so that a request only compares a few strings to find its bucket and hands the meter
//! a [`Counter`](crate::meter::Counter) made of references.

use std::sync::Arc;

use http::Method;

use crate::meter::policy::{BucketLimits, Limits, QuotaLimits, BLOCKED_RETRY_SECS};
use crate::meter::Counter;
use crate::model::{MethodPath, Quota, StageRef, Throttle, UsagePlan};
use crate::period::Calendar;

/// Which token bucket of a plan a request draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Bucket {
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
pub(crate) struct MethodThrottle {
    /// The method it applies to.
    pub(crate) method: MethodPath,
    /// Its throttle.
    pub(crate) throttle: Throttle,
}

/// A usage plan as it applies on one stage. See the [module docs](self).
#[derive(Clone, Debug)]
pub(crate) struct StagePlan {
    id: Arc<str>,
    api_id: Box<str>,
    stage: Box<str>,
    quota: Option<Quota>,
    methods: Box<[MethodThrottle]>,
    /// Each bucket's name, limits and `RateLimit-Policy` value: the plan's own (index 0), each
    /// method's (index i + 1), and no bucket (last), worked out once here rather than on every
    /// request.
    buckets: Box<[BucketInfo]>,
    /// The resources the per-method throttles name, matched against a request's route or path.
    resources: Resources,
}

/// What a request drawing from one bucket of the plan needs.
#[derive(Clone, Debug)]
struct BucketInfo {
    /// `plan`, or the method path (`/items/GET`): what every meter names the bucket by.
    name: Arc<str>,
    /// The bucket's limits (none for no bucket) and the plan's quota.
    limits: Limits,
    /// The `RateLimit-Policy` header's value, if the plan has any limit to report.
    policy: Option<http::HeaderValue>,
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

impl StagePlan {
    /// The plan as it applies on `stage`, or `None` if the plan does not list that stage
    /// ([`StageRef::any`] takes the plan's first stage).
    ///
    /// The plan should have passed [`UsagePlan::validate`]; a per-method throttle whose key does
    /// not parse is skipped here, never a panic.
    pub(crate) fn new(plan: &UsagePlan, stage: &StageRef) -> Option<Self> {
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
        let quota = plan
            .quota
            .map(|q| QuotaLimits::new(q.limit, Calendar::aws(q.period, q.offset)));
        let info = |name: Arc<str>, t: Option<&Throttle>| {
            let bucket = t.map(BucketLimits::from_throttle);
            // A blocked bucket: nothing, in the window a refused client is told to wait.
            let burst = bucket.map(|b| match b.is_blocked() {
                true => (0, BLOCKED_RETRY_SECS),
                false => (u64::from(b.burst), b.fill_secs()),
            });
            BucketInfo {
                name,
                limits: Limits::new(bucket, quota),
                policy: crate::headers::policy_value(burst, plan.quota.as_ref()),
            }
        };
        let buckets = std::iter::once(info("plan".into(), plan.throttle.as_ref()))
            .chain(
                methods
                    .iter()
                    .map(|m| info(m.method.to_string().into(), Some(&m.throttle))),
            )
            .chain(std::iter::once(info("".into(), None)))
            .collect();
        let resources = Resources::new(&methods);
        Some(Self {
            id: plan.id.as_str().into(),
            api_id: st.api_id.as_str().into(),
            stage: st.stage.as_str().into(),
            quota: plan.quota,
            methods,
            buckets,
            resources,
        })
    }

    /// Every stage the plan lists, each compiled.
    pub(crate) fn all(plan: &UsagePlan) -> Vec<Self> {
        plan.api_stages
            .iter()
            .filter_map(|s| StagePlan::new(plan, &StageRef::new(&*s.api_id, &*s.stage)))
            .collect()
    }

    /// The plan's id.
    pub(crate) fn id(&self) -> &Arc<str> {
        &self.id
    }

    /// The API's id of the stage.
    pub(crate) fn api_id(&self) -> &str {
        &self.api_id
    }

    /// The stage's name.
    pub(crate) fn stage(&self) -> &str {
        &self.stage
    }

    /// The plan's quota.
    pub(crate) fn quota(&self) -> Option<&Quota> {
        self.quota.as_ref()
    }

    /// The stage's per-method throttles.
    pub(crate) fn methods(&self) -> &[MethodThrottle] {
        &self.methods
    }

    /// The bucket a request for `method` on `resource` draws from.
    ///
    /// `resource` is the request's path (or a template written as a route): it is matched
    /// against the plan's own templates (`/items/42` is `/items/{id}`; a static resource wins
    /// over a template, and parameter names do not matter). On that resource the method's own
    /// throttle applies; for HEAD without one, GET's (axum answers HEAD with the GET handler);
    /// else the resource's `ANY` throttle; else the plan's.
    #[inline]
    pub(crate) fn bucket_for(&self, resource: &str, method: &Method) -> Bucket {
        if self.buckets[0].limits.bucket.is_none() {
            // No throttle on the plan: no bucket, per-method throttles included (as before).
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
    pub(crate) fn unroutable(&self) -> &[(MethodPath, String)] {
        &self.resources.unrouted
    }

    #[inline]
    fn info(&self, bucket: Bucket) -> &BucketInfo {
        let i = match bucket {
            Bucket::Plan => 0,
            Bucket::Method(i) => i + 1,
            Bucket::None => self.buckets.len() - 1,
        };
        // `buckets` has one entry per method, the plan's and none's: `i` is in range.
        &self.buckets[i.min(self.buckets.len() - 1)]
    }

    /// The counter of `subject` on this plan, drawing from `bucket`.
    #[inline]
    pub(crate) fn counter<'a>(&'a self, subject: &'a Arc<str>, bucket: Bucket) -> Counter<'a> {
        let info = self.info(bucket);
        let name = info.limits.bucket.map(|_| &info.name);
        Counter::new(&self.id, subject, name, info.limits)
    }

    /// The `RateLimit-Policy` header value for a request drawing from `bucket`, if the plan has
    /// any limit to report.
    #[inline]
    pub(crate) fn policy(&self, bucket: Bucket) -> Option<&http::HeaderValue> {
        self.info(bucket).policy.as_ref()
    }

    /// The name of a bucket (`plan`, a method path, or empty for none).
    #[cfg(test)]
    pub(crate) fn bucket_name(&self, bucket: Bucket) -> &str {
        &self.info(bucket).name
    }

    /// The throttle of a bucket.
    #[cfg(test)]
    pub(crate) fn bucket_limits(&self, bucket: Bucket) -> Option<BucketLimits> {
        self.info(bucket).limits.bucket
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
    fn each_bucket_is_named_by_its_method_path_in_any_build_of_the_plan() {
        let paths = ["/items/GET", "/items/POST", "/items/{id}/GET"];
        let a = plan("a", &paths);
        let mut reversed = paths;
        reversed.reverse();
        let b = plan("a", &reversed);
        for (path, method) in [
            ("/items", Method::GET),
            ("/items/1", Method::GET),
            ("/items", Method::POST),
        ] {
            let (ba, bb) = (a.bucket_for(path, &method), b.bucket_for(path, &method));
            assert_eq!(a.bucket_name(ba), b.bucket_name(bb));
            assert!(matches!(ba, Bucket::Method(_)));
        }
        assert_eq!(a.bucket_name(Bucket::Plan), "plan");
        assert_eq!(a.bucket_for("/orders", &Method::GET), Bucket::Plan);
        assert_eq!(
            a.bucket_limits(a.bucket_for("/items", &Method::GET))
                .unwrap()
                .burst,
            1
        );
    }

    #[test]
    fn a_plan_without_a_throttle_has_no_bucket() {
        let mut p = UsagePlan::new("p", "p");
        p.api_stages.push(ApiStage::new("api", "prod"));
        let c = StagePlan::new(&p, &StageRef::any()).unwrap();
        assert_eq!(c.bucket_for("/orders", &Method::GET), Bucket::None);
        let key: Arc<str> = "k".into();
        assert!(c.counter(&key, Bucket::None).bucket.is_none());
    }
}
