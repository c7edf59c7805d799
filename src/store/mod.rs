//! Who is this client, and what plan are they on: the [`KeyStore`] trait and [`MemoryStore`];
//! and management at run time: the [`Management`] trait.
//!
//! The layer asks its store one question per request that needs a key: *the key whose secret
//! value is this, and its plan on this stage*. The answer is an owned [`KeyGrant`]: the key's id,
//! whether it is enabled, and its plan on the stage (none if no plan of the key lists the
//! stage). The layer answers 403 for no key, a disabled key, or no plan. The layer holds nothing
//! of the store's while the meter, or any other code, runs: a grant is two reference-counted
//! pointers and a flag, copied out of the store.
//!
//! A store backed by a database returns a boxed future from [`KeyStore::lookup`] (its
//! [`Lookup`](KeyStore::Lookup) type; see the trait's example); [`KeyStore::version`] lets a cache in front of it know when its
//! answers may have changed. The conformance suite in `tower_usage_plans::testing` (feature
//! `testing`) checks any store against what the layer relies on.
//!
//! # Examples
//!
//! ```
//! use tower_usage_plans::model::{ApiStage, StageRef, Throttle, UsagePlan};
//! use tower_usage_plans::store::{KeyStore, Management, MemoryStore, NewApiKey};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = MemoryStore::new();
//! let key = store.create_api_key(NewApiKey::named("ClientA-Free")).await.unwrap();
//! let mut plan = UsagePlan::new("plan111", "FreePlan");
//! plan.api_stages.push(ApiStage::new("abc123def4", "prod"));
//! plan.throttle = Some(Throttle::new(5.0, 10).unwrap());
//! store.create_usage_plan(plan).await.unwrap();
//! store.create_usage_plan_key("plan111", &key.id).await.unwrap();
//!
//! let prod = StageRef::new("abc123def4", "prod");
//! let grant = store.lookup(key.value.expose(), &prod).await.unwrap().unwrap();
//! assert_eq!(&*grant.key_id, key.id.as_str());
//! assert!(grant.enabled);
//! assert_eq!(grant.plan_id(), Some("plan111"));
//! // No key has this value:
//! assert!(store.lookup("x".repeat(30).as_str(), &prod).await.unwrap().is_none());
//! # }
//! ```

#[cfg(feature = "cache")]
pub mod caching;
mod grant;
mod manage;
pub(crate) mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
pub mod sqlite;

#[cfg(feature = "cache")]
pub use caching::{CachingStore, CachingStoreBuilder};
pub use grant::{KeyGrant, KeyStore};
pub use manage::{
    ApiKeyInfo, ApiKeyQuery, ImportKey, ImportResult, ImportWarning, Management, NewApiKey, Page,
    PageRequest, Resource, UsagePlanKey, UsagePlanQuery, DEFAULT_LIMIT, MAX_LIMIT,
};
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::{RedisStore, RedisStoreBuilder};
#[cfg(feature = "sqlite")]
pub use sqlite::{OpenError, SqliteStore, SqliteStoreBuilder};
