//! Who is this client, and what plan are they on: the [`KeyStore`] trait and [`MemoryStore`].
//!
//! The layer asks its store one question per request that needs a key: *the key whose secret
//! value is this, and its plan on this stage*. The answer is a [`KeyGrant`]: the key's id, whether
//! it is enabled, and its [`StagePlan`] on the stage (none if no plan of the key lists the stage).
//! The layer answers 403 for no key, a disabled key, or no plan.
//!
//! A store backed by a database implements [`KeyStore::lookup`] with an `async fn`. A store that
//! can answer without waiting (in memory, or from a cache) also implements
//! [`KeyStore::lookup_now`], which lets the layer admit a request without allocating a future,
//! and may lend a [`MeterSlot`] per key, where the meter keeps its way to the key's state so that
//! admitting makes one lookup, not two.
//!
//! # Examples
//!
//! ```
//! use tower_usage_plans::model::{ApiKeyValue, StageRef, Throttle, UsagePlan, ApiStage};
//! use tower_usage_plans::store::{KeyStore, MemoryStore, NewApiKey};
//!
//! let store = MemoryStore::new();
//! let key = store.create_api_key(NewApiKey::named("ClientA-Free")).unwrap();
//! let mut plan = UsagePlan::new("plan111", "FreePlan");
//! plan.api_stages.push(ApiStage::new("abc123def4", "prod"));
//! plan.throttle = Some(Throttle::new(5.0, 10).unwrap());
//! store.create_usage_plan(plan).unwrap();
//! store.create_usage_plan_key("plan111", &key.id).unwrap();
//!
//! let prod = StageRef::new("abc123def4", "prod");
//! let grant = store.lookup_now(key.value.expose(), &prod, |g| {
//!     g.map(|g| (g.enabled, g.plan.map(|p| p.id().to_string())))
//! });
//! assert_eq!(grant.ok(), Some(Some((true, Some("plan111".to_string())))));
//! ```

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::StoreError;
use crate::model::StageRef;
use crate::plan::StagePlan;

mod memory;

pub use memory::{MemoryStore, NewApiKey};

/// A key and its plan on one stage, as a [`KeyStore`] answers it.
#[derive(Clone, Debug)]
pub struct KeyGrant {
    /// The key's id (never its value).
    pub key_id: Arc<str>,
    /// Whether the key is enabled; a disabled key is answered 403.
    pub enabled: bool,
    /// The key's plan on the stage asked about, or `None` if it has none there (403).
    pub plan: Option<Arc<StagePlan>>,
}

impl KeyGrant {
    /// Borrows the grant.
    pub fn as_ref(&self) -> KeyRef<'_> {
        KeyRef {
            key_id: &self.key_id,
            enabled: self.enabled,
            plan: self.plan.as_ref(),
            meter_slot: None,
        }
    }
}

/// A borrowed [`KeyGrant`], as [`KeyStore::lookup_now`] lends it.
#[derive(Clone, Copy, Debug)]
pub struct KeyRef<'a> {
    /// The key's id (never its value).
    pub key_id: &'a Arc<str>,
    /// Whether the key is enabled.
    pub enabled: bool,
    /// The key's plan on the stage asked about.
    pub plan: Option<&'a Arc<StagePlan>>,
    /// The room the store keeps beside this key for the meter, if it keeps one.
    pub meter_slot: Option<&'a MeterSlot>,
}

/// Room a store keeps beside each key for the meter: where the meter finds the key's state without
/// a lookup of its own.
///
/// A store that holds its keys in memory keeps one per key and lends it with
/// [`KeyStore::lookup_now`] ([`KeyRef::meter_slot`]); the layer passes it on in the
/// [`Admission`](crate::meter::Admission). A slot belongs to one key, the one it was made for
/// ([`MeterSlot::new`]): a meter takes the slot's key for the request's. A meter must check that
/// what it finds is its own and for this plan, and fall back to its own lookup otherwise: the slot
/// is a shortcut, never the only way to the state.
pub struct MeterSlot {
    key_hash: u64,
    /// A number the meter chose; 0 for none. A plain load to read, no lock.
    value: AtomicU64,
}

impl MeterSlot {
    /// An empty slot for the key with this id.
    pub fn new(key_id: &str) -> Self {
        Self {
            key_hash: crate::plan::id_hash(key_id),
            value: AtomicU64::new(0),
        }
    }

    /// A fixed hash of the key's id, so a meter need not read the id to know the key.
    pub(crate) fn key_hash(&self) -> u64 {
        self.key_hash
    }

    /// What a meter left here (say, where it keeps the key's state): 0 if nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use tower_usage_plans::store::MeterSlot;
    ///
    /// let slot = MeterSlot::new("key111");
    /// assert_eq!(slot.get(), 0);
    /// slot.set(42);
    /// assert_eq!(slot.get(), 42);
    /// ```
    #[inline]
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }

    /// Leaves `value` here, replacing what was.
    #[inline]
    pub fn set(&self, value: u64) {
        self.value.store(value, Ordering::Relaxed);
    }
}

impl fmt::Debug for MeterSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MeterSlot")
    }
}

/// Answers *who is this and what plan are they on*. See the [module docs](self).
///
/// The value passed in has been checked by the layer: 20 to 128 visible ASCII characters.
/// Implementations must not log it.
pub trait KeyStore: Send + Sync + 'static {
    /// The key whose secret value is `value`, with its plan on `stage`; `Ok(None)` if no key has
    /// this value.
    fn lookup(
        &self,
        value: &str,
        stage: &StageRef,
    ) -> impl Future<Output = Result<Option<KeyGrant>, StoreError>> + Send;

    /// Answers at once, without waiting, by calling `f` with what [`lookup`](Self::lookup) would
    /// answer; or gives `f` back (`Err(f)`) when the store would have to wait, and the layer then
    /// awaits `lookup`. The default always gives `f` back.
    #[inline]
    fn lookup_now<F, R>(&self, value: &str, stage: &StageRef, f: F) -> Result<R, F>
    where
        F: FnOnce(Option<KeyRef<'_>>) -> R,
    {
        let _ = (value, stage);
        Err(f)
    }

    /// Every plan on `stage` as the store holds it now, if it can tell without waiting; the layer
    /// uses this when it is built to report per-method throttles that could never apply. The
    /// default answers `None` (nothing is checked).
    fn plans_now(&self, stage: &StageRef) -> Option<Vec<Arc<StagePlan>>> {
        let _ = stage;
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

    #[inline]
    fn lookup_now<F, R>(&self, value: &str, stage: &StageRef, f: F) -> Result<R, F>
    where
        F: FnOnce(Option<KeyRef<'_>>) -> R,
    {
        (**self).lookup_now(value, stage, f)
    }

    fn plans_now(&self, stage: &StageRef) -> Option<Vec<Arc<StagePlan>>> {
        (**self).plans_now(stage)
    }
}
