//! Who is this client, and what plan are they on: the [`KeyStore`] trait and [`MemoryStore`];
//! and management at run time: the [`Management`] trait.
//!
//! The layer asks its store one question per request that needs a key: *the key whose secret
//! value is this, and its plan on this stage*. The answer is an owned [`KeyGrant`]: the key's id,
//! whether it is enabled, and its [`StagePlan`] on the stage (none if no plan of the key lists the
//! stage). The layer answers 403 for no key, a disabled key, or no plan. The layer holds nothing
//! of the store's while the meter, or any other code, runs: a grant is two reference-counted
//! pointers and a flag, copied out of the store.
//!
//! A store backed by a database implements [`KeyStore::lookup`] with an `async fn` (or a function
//! returning `impl Future`); [`KeyStore::version`] lets a cache in front of it know when its
//! answers may have changed. The conformance suite in `tower_usage_plans::testing` (feature
//! `testing`) checks any store against what the layer relies on.
//!
//! # Examples
//!
//! ```
//! use tower_usage_plans::model::{ApiStage, StageRef, Throttle, UsagePlan};
//! use tower_usage_plans::store::{KeyStore, MemoryStore, NewApiKey};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = MemoryStore::new();
//! let key = store.create_api_key(NewApiKey::named("ClientA-Free")).unwrap();
//! let mut plan = UsagePlan::new("plan111", "FreePlan");
//! plan.api_stages.push(ApiStage::new("abc123def4", "prod"));
//! plan.throttle = Some(Throttle::new(5.0, 10).unwrap());
//! store.create_usage_plan(plan).unwrap();
//! store.create_usage_plan_key("plan111", &key.id).unwrap();
//!
//! let prod = StageRef::new("abc123def4", "prod");
//! let grant = store.lookup(key.value.expose(), &prod).await.unwrap().unwrap();
//! assert_eq!(&*grant.key_id, key.id.as_str());
//! assert!(grant.enabled);
//! assert_eq!(&**grant.plan.unwrap().id(), "plan111");
//! // No key has this value:
//! assert!(store.lookup("x".repeat(30).as_str(), &prod).await.unwrap().is_none());
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;

use crate::error::StoreError;
use crate::model::StageRef;
use crate::plan::StagePlan;

#[cfg(feature = "cache")]
pub mod caching;
mod manage;
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
pub mod sqlite;

#[cfg(feature = "cache")]
pub use caching::{CachingStore, CachingStoreBuilder};
pub use manage::{
    ApiKeyInfo, ApiKeyQuery, ImportKey, ImportResult, ImportWarning, Management, Page, PageRequest,
    UsagePlanKey, UsagePlanQuery, DEFAULT_LIMIT, MAX_LIMIT,
};
pub use memory::{MemoryStore, NewApiKey};
#[cfg(feature = "redis")]
pub use redis::{RedisStore, RedisStoreBuilder};
#[cfg(feature = "sqlite")]
pub use sqlite::{OpenError, SqliteStore, SqliteStoreBuilder};

/// A key and its plan on one stage, as a [`KeyStore`] answers it: owned, so the store holds no
/// lock or borrow once it has answered.
#[derive(Clone, Debug)]
pub struct KeyGrant {
    /// The key's id (never its value).
    pub key_id: Arc<str>,
    /// Whether the key is enabled; a disabled key is answered 403.
    pub enabled: bool,
    /// The key's plan on the stage asked about, or `None` if it has none there (403).
    pub plan: Option<Arc<StagePlan>>,
}

/// Answers *who is this and what plan are they on*. See the [module docs](self).
///
/// The value passed in has been checked by the layer: 20 to 128 visible ASCII characters.
/// Implementations must not log it, put it in an error, or keep it in a `Debug` output.
pub trait KeyStore: Send + Sync + 'static {
    /// The key whose secret value is `value`, with its plan on `stage`; `Ok(None)` if no key has
    /// this value. An error makes the layer answer 503, or admit unmetered
    /// ([`FailMode`](crate::FailMode)).
    fn lookup(
        &self,
        value: &str,
        stage: &StageRef,
    ) -> impl Future<Output = Result<Option<KeyGrant>, StoreError>> + Send;

    /// A number that changes whenever any answer of [`lookup`](Self::lookup) may have changed
    /// (a key, plan or link created, changed or deleted), for a cache in front of the store:
    /// while it reads the same, cached answers are still right. `Ok(None)` (the default) means the
    /// store keeps no such number; a cache must then expire its answers by time.
    fn version(&self) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        std::future::ready(Ok(None))
    }

    /// Every plan on `stage` as the store holds it now, if it can tell without waiting; the layer's
    /// builder uses this to report per-method throttles that could never apply and stages no plan
    /// lists. The default answers `None` (nothing is checked).
    fn plans_now(&self, stage: &StageRef) -> Option<Vec<Arc<StagePlan>>> {
        let _ = stage;
        None
    }

    /// The crate's own fast path: [`lookup`](Self::lookup) answered without a future, by stores
    /// that never wait. Not for use outside this crate (its token cannot be made there).
    #[doc(hidden)]
    #[inline]
    fn lookup_now(
        &self,
        value: &str,
        stage: &StageRef,
        _: crate::sealed::Token,
    ) -> Option<Result<Option<KeyGrant>, StoreError>> {
        let _ = (value, stage);
        None
    }
}

impl<T: KeyStore> KeyStore for Arc<T> {
    fn lookup(
        &self,
        value: &str,
        stage: &StageRef,
    ) -> impl Future<Output = Result<Option<KeyGrant>, StoreError>> + Send {
        (**self).lookup(value, stage)
    }

    fn version(&self) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        (**self).version()
    }

    fn plans_now(&self, stage: &StageRef) -> Option<Vec<Arc<StagePlan>>> {
        (**self).plans_now(stage)
    }

    #[inline]
    fn lookup_now(
        &self,
        value: &str,
        stage: &StageRef,
        token: crate::sealed::Token,
    ) -> Option<Result<Option<KeyGrant>, StoreError>> {
        (**self).lookup_now(value, stage, token)
    }
}
