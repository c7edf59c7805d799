//! [`KeyGrant`] and [`KeyStore`]: the question the layer asks a store, and its answer.

use std::future::Future;
use std::sync::Arc;

use crate::error::StoreError;
use crate::model::StageRef;
use crate::plan::StagePlan;

/// A key and its plan on one stage, as a [`KeyStore`] answers it: owned, so the store holds no
/// lock or borrow once it has answered.
///
/// The plan is held compiled for the request path (its buckets, limits and rate-limit header
/// values worked out once); a store builds a grant with [`KeyGrant::new`] and, for a key with a
/// plan on the stage, [`with_plan`](KeyGrant::with_plan), and should keep grants (or the plans
/// they were built from) rather than build them anew on every lookup.
///
/// ```
/// use tower_usage_plans::model::{ApiStage, StageRef, UsagePlan};
/// use tower_usage_plans::store::KeyGrant;
///
/// let mut plan = UsagePlan::new("plan111", "FreePlan");
/// plan.api_stages.push(ApiStage::new("abc123def4", "prod"));
/// let prod = StageRef::new("abc123def4", "prod");
/// let grant = KeyGrant::new("key111", true).with_plan(&plan, &prod);
/// assert_eq!(grant.plan_id(), Some("plan111"));
/// // The plan lists no "dev" stage: no plan there (403).
/// let dev = StageRef::new("abc123def4", "dev");
/// assert_eq!(KeyGrant::new("key111", true).with_plan(&plan, &dev).plan_id(), None);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct KeyGrant {
    /// The key's id (never its value).
    pub key_id: Arc<str>,
    /// Whether the key is enabled; a disabled key is answered 403.
    pub enabled: bool,
    /// The key's plan on the stage asked about, compiled, or `None` if it has none there (403).
    plan: Option<Arc<StagePlan>>,
}

impl KeyGrant {
    /// A grant of the key `key_id`, enabled or not, with no plan on the stage (yet).
    pub fn new(key_id: impl Into<Arc<str>>, enabled: bool) -> Self {
        Self {
            key_id: key_id.into(),
            enabled,
            plan: None,
        }
    }

    /// The same grant with `plan` as the key's plan on `stage` (none if the plan does not list
    /// the stage; [`StageRef::any`] takes its first). The plan should have passed
    /// [`UsagePlan::validate`](crate::model::UsagePlan::validate).
    pub fn with_plan(mut self, plan: &crate::model::UsagePlan, stage: &StageRef) -> Self {
        self.plan = StagePlan::new(plan, stage).map(Arc::new);
        self
    }

    /// The id of the key's plan on the stage, if it has one there.
    pub fn plan_id(&self) -> Option<&str> {
        self.plan.as_deref().map(|p| &**p.id())
    }

    /// A grant with a plan already compiled (the crate's stores keep them so).
    pub(crate) fn compiled(key_id: Arc<str>, enabled: bool, plan: Option<Arc<StagePlan>>) -> Self {
        Self {
            key_id,
            enabled,
            plan,
        }
    }

    /// The compiled plan.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn plan(&self) -> Option<&Arc<StagePlan>> {
        self.plan.as_ref()
    }

    /// The grant taken apart.
    pub(crate) fn into_parts(self) -> (Arc<str>, bool, Option<Arc<StagePlan>>) {
        (self.key_id, self.enabled, self.plan)
    }
}

/// Answers *who is this and what plan are they on*. See the [module docs](crate::store).
///
/// The value passed in has been checked by the layer: 20 to 128 visible ASCII characters.
/// Implementations must not log it, put it in an error, or keep it in a `Debug` output.
///
/// The future is named, so that the layer holds it without boxing: a store that answers at once
/// (in memory) uses [`std::future::Ready`]; one that waits (a database) returns a boxed future
/// that owns what it needs (a copy of the value, an `Arc` of a pool):
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::sync::Arc;
/// use tower_usage_plans::error::StoreError;
/// use tower_usage_plans::model::{StageRef, UsagePlan};
/// use tower_usage_plans::store::{KeyGrant, KeyStore};
///
/// /// Keys and plans behind an async lock (a stand-in for a database).
/// #[derive(Clone)]
/// struct AsyncStore(Arc<tokio::sync::RwLock<Vec<(String, String, UsagePlan)>>>); // value, id, plan
///
/// impl KeyStore for AsyncStore {
///     type Lookup = Pin<Box<dyn Future<Output = Result<Option<KeyGrant>, StoreError>> + Send>>;
///
///     fn lookup(&self, value: &str, stage: &StageRef) -> Self::Lookup {
///         let (rows, value, stage) = (self.0.clone(), value.to_owned(), stage.clone());
///         Box::pin(async move {
///             let rows = rows.read().await; // really waits while a writer holds it
///             Ok(rows.iter().find(|r| r.0 == value).map(|(_, id, plan)| {
///                 KeyGrant::new(id.as_str(), true).with_plan(plan, &stage)
///             }))
///         })
///     }
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut plan = UsagePlan::new("plan111", "Free");
/// plan.api_stages.push(tower_usage_plans::model::ApiStage::new("abc123def4", "prod"));
/// let store = AsyncStore(Arc::new(tokio::sync::RwLock::new(vec![("v".repeat(20), "key1".into(), plan)])));
/// let grant = store.lookup(&"v".repeat(20), &StageRef::any()).await.unwrap().unwrap();
/// assert_eq!(grant.plan_id(), Some("plan111"));
/// # }
/// ```
pub trait KeyStore: Send + Sync + 'static {
    /// The future [`lookup`](Self::lookup) returns: `Unpin`, as [`std::future::Ready`] and a
    /// boxed future are, so that the layer polls an answer that is ready where it was made and
    /// keeps only a pending one.
    type Lookup: Future<Output = Result<Option<KeyGrant>, StoreError>> + Send + Unpin + 'static;

    /// The key whose secret value is `value`, with its plan on `stage`; `Ok(None)` if no key has
    /// this value. An error makes the layer answer 503, or admit unmetered
    /// ([`FailMode`](crate::FailMode)).
    fn lookup(&self, value: &str, stage: &StageRef) -> Self::Lookup;

    /// A number that changes whenever any answer of [`lookup`](Self::lookup) may have changed
    /// (a key, plan or link created, changed or deleted), for a cache in front of the store:
    /// while it reads the same, cached answers are still right. `Ok(None)` (the default) means the
    /// store keeps no such number; a cache must then expire its answers by time.
    fn version(&self) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        std::future::ready(Ok(None))
    }
}

impl<T: KeyStore> KeyStore for Arc<T> {
    type Lookup = T::Lookup;

    #[inline]
    fn lookup(&self, value: &str, stage: &StageRef) -> Self::Lookup {
        (**self).lookup(value, stage)
    }

    fn version(&self) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        (**self).version()
    }
}
