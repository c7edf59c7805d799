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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::Method;

use crate::model::{MethodPath, Quota, StageRef, Throttle, UsagePlan};
use crate::period::{window, Window};

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

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// A usage plan as it applies on one stage. See the [module example](self).
#[derive(Clone, Debug)]
pub struct StagePlan {
    id: Arc<str>,
    /// [`id_hash`] of `id`.
    id_hash: u64,
    generation: u64,
    api_id: Box<str>,
    stage: Box<str>,
    throttle: Option<Throttle>,
    quota: Option<Quota>,
    methods: Box<[MethodThrottle]>,
    /// A tag per method bucket, the same for the same stage and method in any build of the plan.
    tags: Box<[u64]>,
    /// Nanoseconds per token of the plan's bucket (index 0) and of each method's (index i + 1),
    /// worked out once here rather than on every request.
    periods: Box<[u64]>,
    /// The quota window last worked out, so that most requests skip the calendar.
    window: WindowCache,
}

/// A quota window, start and end in seconds since the epoch packed in one word (0: none yet).
/// Any value it holds is a true window of the plan's quota; a reader checks that it covers now.
#[derive(Debug, Default)]
struct WindowCache(AtomicU64);

impl Clone for WindowCache {
    fn clone(&self) -> Self {
        Self(AtomicU64::new(self.0.load(Ordering::Relaxed)))
    }
}

/// Nanoseconds per token, as `governor::Quota::with_period(1 / rate)` takes them (at least 1).
fn period_nanos(t: &Throttle) -> u64 {
    std::time::Duration::try_from_secs_f64(1.0 / t.rate_limit)
        .ok()
        .and_then(|d| u64::try_from(d.as_nanos()).ok())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// A fixed hash of an id (FNV-1a), the same in every build and process: meters keep ids as these
/// numbers. Ids are the server's own, not a client's, so a fixed hash is safe here.
pub(crate) fn id_hash(id: &str) -> u64 {
    tag(&[id])
}

/// FNV-1a: a fixed hash, so a method's bucket keeps its tag when its plan is rebuilt.
fn tag(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h | 1
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
            .map(|m| tag(&[&st.api_id, &st.stage, &m.method.to_string()]))
            .collect();
        let periods = std::iter::once(plan.throttle.as_ref().map_or(0, period_nanos))
            .chain(methods.iter().map(|m| period_nanos(&m.throttle)))
            .collect();
        Some(Self {
            id: plan.id.as_str().into(),
            id_hash: id_hash(&plan.id),
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            api_id: st.api_id.as_str().into(),
            stage: st.stage.as_str().into(),
            throttle: plan.throttle,
            quota: plan.quota,
            methods,
            tags,
            periods,
            window: WindowCache::default(),
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

    /// A fixed hash of the plan's id.
    pub(crate) fn id_hash(&self) -> u64 {
        self.id_hash
    }

    /// A number that differs between any two `StagePlan`s built in this process, so that a meter
    /// can tell a changed plan from the one it built its buckets for.
    pub fn generation(&self) -> u64 {
        self.generation
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

    /// The quota and its window at `now_secs`, the window worked out once per window rather than
    /// once per request.
    #[inline]
    pub(crate) fn quota_window(&self, now_secs: u64) -> Option<(&Quota, Window)> {
        let q = self.quota.as_ref()?;
        let cached = self.window.0.load(Ordering::Relaxed);
        let (start, end) = (cached >> 32, cached & u64::from(u32::MAX));
        if start <= now_secs && now_secs < end {
            return Some((q, Window { start, end }));
        }
        let w = window(q.period, q.offset, now_secs);
        if let (Ok(start), Ok(end)) = (u32::try_from(w.start), u32::try_from(w.end)) {
            let packed = (u64::from(start) << 32) | u64::from(end);
            self.window.0.store(packed, Ordering::Relaxed);
        }
        Some((q, w))
    }

    /// The stage's per-method throttles.
    pub fn methods(&self) -> &[MethodThrottle] {
        &self.methods
    }

    /// The bucket a request for `method` on `resource` (the matched route template, or the path
    /// itself when no template matched) draws from.
    #[inline]
    pub fn bucket_for(&self, resource: &str, method: &Method) -> Bucket {
        if self.throttle.is_none() {
            return Bucket::None;
        }
        match self
            .methods
            .iter()
            .position(|m| m.method.method() == method && m.method.resource() == resource)
        {
            Some(i) => Bucket::Method(i),
            None => Bucket::Plan,
        }
    }

    /// A number that names a bucket of this plan and stays the same when the plan is rebuilt
    /// (0 for the plan's own bucket), so that a meter keeps a method's bucket across changes.
    pub fn bucket_tag(&self, bucket: Bucket) -> u64 {
        match bucket {
            Bucket::Method(i) => self.tags.get(i).copied().unwrap_or(0),
            Bucket::None | Bucket::Plan => 0,
        }
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

    /// The throttle of a bucket.
    pub fn bucket_throttle(&self, bucket: Bucket) -> Option<&Throttle> {
        match bucket {
            Bucket::None => None,
            Bucket::Plan => self.throttle.as_ref(),
            Bucket::Method(i) => self.methods.get(i).map(|m| &m.throttle),
        }
    }
}
