//! [`CachingStore`]: a bounded cache with a time to live in front of any [`KeyStore`], such as a
//! store on your own database, so that a request whose answer is cached costs the backing store
//! nothing (feature `cache`).
//!
//! Two caches ([moka](https://docs.rs/moka)'s, bounded in entries, with a time to live):
//! - *found*: the grants the store answered, for up to [`time_to_live`](CachingStoreBuilder::time_to_live)
//!   (60 s by default), at most [`max_capacity`](CachingStoreBuilder::max_capacity) of them;
//! - *unknown*: the values no key has, for up to [`unknown_time_to_live`](CachingStoreBuilder::unknown_time_to_live)
//!   (10 s by default), at most [`max_unknown`](CachingStoreBuilder::max_unknown). A flood of
//!   random values costs the backing store one lookup per distinct value, and a value sent again
//!   costs nothing. The unknown values live in their own cache, so a flood cannot push the known
//!   keys out.
//!
//! A cache hit is answered without a future and without the backing store.
//!
//! # When the answers change
//!
//! - Management through the cache ([`Management`] is forwarded when the store implements it)
//!   empties both caches once the change returns: the next request sees the change.
//! - A store that keeps a [`version`](KeyStore::version) is asked for it at most once per
//!   [`version_interval`](CachingStoreBuilder::version_interval) (1 s by default), by a request;
//!   when it moved (a change made elsewhere: another instance, a script on the database), both
//!   caches are emptied. So changes made elsewhere reach the data path within that interval.
//! - A store that keeps none: changes made elsewhere reach the data path when the cached answer
//!   expires (the time to live; for a key just created, the unknown time to live).
//!
//! Answers the backing store gives while a change goes through the cache are not cached.
//!
//! # Key values
//!
//! The caches are keyed by the SHA-256 digest of the value and the stage, not by the value: a
//! 64-bit hash (the cache's own hasher) is a fine bucket tag but not an identity (two values that
//! collide would answer each other's key), while SHA-256 collisions are not found in practice.
//! The cache then holds no key value in clear, and every entry is the same 32 bytes whatever the
//! length of the value a flood sends. The digest costs a few hundred nanoseconds per request.
//!
//! # Examples
//!
//! ```
//! use tower_usage_plans::model::{ApiStage, StageRef, UsagePlan};
//! use tower_usage_plans::store::{CachingStore, KeyStore, Management, MemoryStore, NewApiKey};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Any KeyStore: your database's; here the in-memory one.
//! let store = CachingStore::new(MemoryStore::new());
//! let mut plan = UsagePlan::new("plan111", "FreePlan");
//! plan.api_stages.push(ApiStage::new("abc123def4", "prod"));
//! store.create_usage_plan(plan).await.unwrap();
//! let key = store.create_api_key(NewApiKey::named("ClientA")).await.unwrap();
//! store.create_usage_plan_key("plan111", &key.id).await.unwrap();
//!
//! let prod = StageRef::new("abc123def4", "prod");
//! let grant = store.lookup(key.value.expose(), &prod).await.unwrap().unwrap();
//! assert!(grant.enabled);
//!
//! // A change through the cache reaches the next lookup.
//! let off = tower_usage_plans::patch::PatchOperation::replace("/enabled", "false");
//! store.update_api_key(&key.id, &[off]).await.unwrap();
//! let grant = store.lookup(key.value.expose(), &prod).await.unwrap().unwrap();
//! assert!(!grant.enabled);
//!
//! // An unknown value is answered None, and cached as such.
//! assert!(store.lookup(&"x".repeat(40), &prod).await.unwrap().is_none());
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::clock::{Clock, SystemClock};
use crate::error::StoreError;
use crate::model::{ApiKey, StageRef, UsagePlan};
use crate::patch::PatchOperation;

use super::{
    ApiKeyInfo, ApiKeyQuery, ImportKey, ImportResult, ImportWarning, KeyGrant, KeyStore,
    Management, NewApiKey, Page, PageRequest, Resource, UsagePlanKey, UsagePlanQuery,
};

/// The default bound of each cache, in entries.
pub const DEFAULT_CAPACITY: u64 = 100_000;
/// The default time to live of a found key.
pub const DEFAULT_TIME_TO_LIVE: Duration = Duration::from_secs(60);
/// The default time to live of an unknown value.
pub const DEFAULT_UNKNOWN_TIME_TO_LIVE: Duration = Duration::from_secs(10);
/// The default interval between two reads of the backing store's version.
pub const DEFAULT_VERSION_INTERVAL: Duration = Duration::from_secs(1);

/// The SHA-256 of a value and a stage: a cache's key.
type Digest32 = [u8; 32];

fn digest(value: &str, stage: &StageRef) -> Digest32 {
    // Values are visible ASCII: 0xff separates them from the stage unambiguously.
    let mut h = Sha256::new();
    h.update(value.as_bytes());
    h.update([0xff, u8::from(stage.is_any())]);
    h.update(stage.api_id().as_bytes());
    h.update([0xff]);
    h.update(stage.stage().as_bytes());
    h.finalize().into()
}

/// A cached answer, with when it was cached (monotonic nanoseconds of the store's clock).
#[derive(Clone)]
struct Entry<T> {
    answer: T,
    at: u64,
}

struct Shared<C> {
    found: Cache<Digest32, Entry<KeyGrant>>,
    unknown: Cache<Digest32, Entry<()>>,
    ttl: u64,
    unknown_ttl: u64,
    clock: C,
    /// Bumped by every emptying: an answer fetched across one is not cached.
    generation: AtomicU64,
    /// The backing store's version when last read (`None` before the first read).
    version: Mutex<Option<u64>>,
    /// When the version is next due, in monotonic nanoseconds.
    version_due: AtomicU64,
    version_interval: u64,
    /// The backing store keeps no version: never ask again.
    no_version: AtomicBool,
}

impl<C: Clock> Shared<C> {
    fn now(&self) -> u64 {
        self.clock.monotonic_nanos()
    }

    /// The fresh cached answer for `key`: `Some(Some(grant))`, `Some(None)` for unknown, or
    /// `None` on a miss.
    fn cached(&self, key: &Digest32) -> Option<Option<KeyGrant>> {
        let now = self.now();
        if let Some(e) = self.found.get(key) {
            if now.saturating_sub(e.at) < self.ttl {
                return Some(Some(e.answer));
            }
        }
        if let Some(e) = self.unknown.get(key) {
            if now.saturating_sub(e.at) < self.unknown_ttl {
                return Some(None);
            }
        }
        None
    }

    /// Caches `answer` for `key` unless the caches were emptied since `generation` was read.
    fn keep(&self, key: Digest32, answer: &Option<KeyGrant>, generation: u64) {
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        let at = self.now();
        match answer {
            Some(grant) => {
                self.unknown.invalidate(&key);
                self.found.insert(
                    key,
                    Entry {
                        answer: grant.clone(),
                        at,
                    },
                );
            }
            None => {
                self.found.invalidate(&key);
                self.unknown.insert(key, Entry { answer: (), at });
            }
        }
        // An emptying between the check above and the insert: undo the insert.
        if self.generation.load(Ordering::Acquire) != generation {
            self.found.invalidate(&key);
            self.unknown.invalidate(&key);
        }
    }

    /// Empties both caches.
    fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.found.invalidate_all();
        self.unknown.invalidate_all();
    }

    /// Whether the version is due now; claims the read when `claim` (one request reads it).
    fn version_due(&self, claim: bool) -> bool {
        if self.no_version.load(Ordering::Relaxed) {
            return false;
        }
        let now = self.now();
        let due = self.version_due.load(Ordering::Acquire);
        if now < due {
            return false;
        }
        !claim
            || self
                .version_due
                .compare_exchange(
                    due,
                    now.saturating_add(self.version_interval),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    /// Takes in a version just read: empties the caches if it moved.
    fn saw_version(&self, version: Option<u64>) {
        let Some(v) = version else {
            self.no_version.store(true, Ordering::Relaxed);
            return;
        };
        let mut known = self.version.lock();
        if *known != Some(v) {
            *known = Some(v);
            drop(known);
            self.invalidate();
        }
    }
}

/// A [`KeyStore`] that caches another's answers, known keys and unknown values alike. See the
/// [module docs](self).
///
/// Clones share the caches.
pub struct CachingStore<S, C = SystemClock> {
    inner: Arc<S>,
    shared: Arc<Shared<C>>,
}

impl<S, C> Clone for CachingStore<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, C: Clock> fmt::Debug for CachingStore<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Entries are digests: not shown; their counts are.
        f.debug_struct("CachingStore")
            .field("inner", &self.inner)
            .field("found", &self.shared.found.entry_count())
            .field("unknown", &self.shared.unknown.entry_count())
            .field("ttl", &Duration::from_nanos(self.shared.ttl))
            .field(
                "unknown_ttl",
                &Duration::from_nanos(self.shared.unknown_ttl),
            )
            .finish_non_exhaustive()
    }
}

/// Sets a [`CachingStore`]'s bounds, times to live and clock. See the [module docs](self).
///
/// ```
/// use std::time::Duration;
/// use tower_usage_plans::store::{CachingStore, MemoryStore};
///
/// let store = CachingStore::builder(MemoryStore::new())
///     .max_capacity(10_000)
///     .time_to_live(Duration::from_secs(30))
///     .max_unknown(50_000)
///     .unknown_time_to_live(Duration::from_secs(5))
///     .version_interval(Duration::from_millis(500))
///     .build();
/// assert_eq!(store.entry_counts(), (0, 0));
/// ```
#[derive(Debug)]
#[must_use]
pub struct CachingStoreBuilder<S, C = SystemClock> {
    inner: S,
    clock: C,
    max_capacity: u64,
    ttl: Duration,
    max_unknown: u64,
    unknown_ttl: Duration,
    version_interval: Duration,
}

impl<S: KeyStore, C: Clock> CachingStoreBuilder<S, C> {
    /// At most this many found keys (per stage asked) are cached (default [`DEFAULT_CAPACITY`]).
    pub fn max_capacity(mut self, entries: u64) -> Self {
        self.max_capacity = entries;
        self
    }

    /// How long a found key's answer is kept (default [`DEFAULT_TIME_TO_LIVE`]).
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// At most this many unknown values are cached (default [`DEFAULT_CAPACITY`]).
    pub fn max_unknown(mut self, entries: u64) -> Self {
        self.max_unknown = entries;
        self
    }

    /// How long an unknown value's answer is kept (default [`DEFAULT_UNKNOWN_TIME_TO_LIVE`]): a
    /// key created elsewhere than through the cache, in a store that keeps no version, is
    /// refused for at most this long.
    pub fn unknown_time_to_live(mut self, ttl: Duration) -> Self {
        self.unknown_ttl = ttl;
        self
    }

    /// How often the backing store's [`version`](KeyStore::version) is read, if it keeps one
    /// (default [`DEFAULT_VERSION_INTERVAL`]).
    pub fn version_interval(mut self, interval: Duration) -> Self {
        self.version_interval = interval;
        self
    }

    /// The clock that times answers out and the version's reads (tests use
    /// [`ManualClock`](crate::clock::ManualClock)). The caches also drop expired entries by
    /// the system's time, to free their memory.
    pub fn clock<C2: Clock>(self, clock: C2) -> CachingStoreBuilder<S, C2> {
        CachingStoreBuilder {
            inner: self.inner,
            clock,
            max_capacity: self.max_capacity,
            ttl: self.ttl,
            max_unknown: self.max_unknown,
            unknown_ttl: self.unknown_ttl,
            version_interval: self.version_interval,
        }
    }

    /// The store.
    pub fn build(self) -> CachingStore<S, C> {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let found = Cache::builder()
            .max_capacity(self.max_capacity)
            .time_to_live(self.ttl)
            .build();
        let unknown = Cache::builder()
            .max_capacity(self.max_unknown)
            .time_to_live(self.unknown_ttl)
            .build();
        let now = self.clock.monotonic_nanos();
        CachingStore {
            inner: Arc::new(self.inner),
            shared: Arc::new(Shared {
                found,
                unknown,
                ttl: nanos(self.ttl),
                unknown_ttl: nanos(self.unknown_ttl),
                generation: AtomicU64::new(0),
                version: Mutex::new(None),
                version_due: AtomicU64::new(now),
                version_interval: nanos(self.version_interval),
                no_version: AtomicBool::new(false),
                clock: self.clock,
            }),
        }
    }
}

impl<S: KeyStore> CachingStore<S> {
    /// `inner` behind caches with the default bounds and times to live.
    pub fn new(inner: S) -> Self {
        Self::builder(inner).build()
    }

    /// A builder, to set the bounds, times to live and clock.
    pub fn builder(inner: S) -> CachingStoreBuilder<S> {
        CachingStoreBuilder {
            inner,
            clock: SystemClock,
            max_capacity: DEFAULT_CAPACITY,
            ttl: DEFAULT_TIME_TO_LIVE,
            max_unknown: DEFAULT_CAPACITY,
            unknown_ttl: DEFAULT_UNKNOWN_TIME_TO_LIVE,
            version_interval: DEFAULT_VERSION_INTERVAL,
        }
    }
}

impl<S: KeyStore, C: Clock> CachingStore<S, C> {
    /// The backing store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Empties both caches: for a change made elsewhere that must reach the data path now.
    pub fn invalidate_all(&self) {
        self.shared.invalidate();
    }

    /// How many (found, unknown) answers are cached, after the caches' pending housekeeping
    /// (which this runs: for monitoring and tests, not the request path).
    pub fn entry_counts(&self) -> (u64, u64) {
        self.shared.found.run_pending_tasks();
        self.shared.unknown.run_pending_tasks();
        (
            self.shared.found.entry_count(),
            self.shared.unknown.entry_count(),
        )
    }
}

impl<S: KeyStore, C: Clock> KeyStore for CachingStore<S, C> {
    type Lookup = CachedLookup<S, C>;

    /// A fresh cached answer is ready at once; a miss awaits the backing store's own future (a
    /// ready one stays ready) and caches its answer. When the backing store's version is due
    /// (one request per interval), that request reads it first, in a boxed future.
    fn lookup(&self, value: &str, stage: &StageRef) -> Self::Lookup {
        let shared = &self.shared;
        let key = digest(value, stage);
        if shared.version_due(true) {
            let (inner, shared) = (self.inner.clone(), self.shared.clone());
            let (value, stage) = (value.to_owned(), stage.clone());
            return CachedLookup {
                state: LookupState::Boxed {
                    fut: Box::pin(async move {
                        // A failed read is tried again an interval later; the cache answers
                        // meanwhile.
                        if let Ok(v) = inner.version().await {
                            shared.saw_version(v);
                        }
                        if let Some(answer) = shared.cached(&key) {
                            return Ok(answer);
                        }
                        let generation = shared.generation.load(Ordering::Acquire);
                        let answer = inner.lookup(&value, &stage).await?;
                        shared.keep(key, &answer, generation);
                        Ok(answer)
                    }),
                },
            };
        }
        if let Some(answer) = shared.cached(&key) {
            return CachedLookup {
                state: LookupState::Ready {
                    answer: Some(Ok(answer)),
                },
            };
        }
        let generation = shared.generation.load(Ordering::Acquire);
        CachedLookup {
            state: LookupState::Miss {
                fut: self.inner.lookup(value, stage),
                key,
                generation,
                shared: self.shared.clone(),
            },
        }
    }

    fn version(&self) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        self.inner.version()
    }
}

type BoxLookup =
    std::pin::Pin<Box<dyn Future<Output = Result<Option<KeyGrant>, StoreError>> + Send>>;

pin_project_lite::pin_project! {
    /// The future of [`CachingStore`]'s [`lookup`](KeyStore::lookup).
    pub struct CachedLookup<S: KeyStore, C> {
        #[pin]
        state: LookupState<S, C>,
    }
}

pin_project_lite::pin_project! {
    #[project = LookupProj]
    enum LookupState<S: KeyStore, C> {
        Ready { answer: Option<Result<Option<KeyGrant>, StoreError>> },
        Miss { #[pin] fut: S::Lookup, key: Digest32, generation: u64, shared: Arc<Shared<C>> },
        Boxed { fut: BoxLookup },
    }
}

impl<S: KeyStore, C> fmt::Debug for CachedLookup<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedLookup").finish_non_exhaustive()
    }
}

impl<S: KeyStore, C: Clock> Future for CachedLookup<S, C> {
    type Output = Result<Option<KeyGrant>, StoreError>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match self.project().state.project() {
            LookupProj::Ready { answer } => std::task::Poll::Ready(
                answer
                    .take()
                    .expect("CachedLookup polled after it completed"),
            ),
            LookupProj::Miss {
                fut,
                key,
                generation,
                shared,
            } => {
                let answer = std::task::ready!(fut.poll(cx));
                if let Ok(answer) = &answer {
                    shared.keep(*key, answer, *generation);
                }
                std::task::Poll::Ready(answer)
            }
            LookupProj::Boxed { fut } => fut.as_mut().poll(cx),
        }
    }
}

/// Forwards a change to the backing store, then empties the caches.
macro_rules! changes {
    ($self:ident, $call:expr) => {{
        let r = $call.await;
        $self.shared.invalidate();
        r
    }};
}

/// Management through the cache: reads are forwarded; every change is forwarded and then
/// empties the caches, so the next request sees it.
impl<S: KeyStore + Management, C: Clock> Management for CachingStore<S, C> {
    async fn create_api_key(&self, new: NewApiKey) -> Result<ApiKey, StoreError> {
        changes!(self, self.inner.create_api_key(new))
    }

    fn get_api_key(
        &self,
        id: &str,
        include_value: bool,
    ) -> impl Future<Output = Result<ApiKeyInfo, StoreError>> + Send {
        self.inner.get_api_key(id, include_value)
    }

    fn get_api_keys(
        &self,
        query: &ApiKeyQuery,
    ) -> impl Future<Output = Result<Page<ApiKeyInfo>, StoreError>> + Send {
        self.inner.get_api_keys(query)
    }

    async fn update_api_key(
        &self,
        id: &str,
        ops: &[PatchOperation],
    ) -> Result<ApiKeyInfo, StoreError> {
        changes!(self, self.inner.update_api_key(id, ops))
    }

    async fn delete_api_key(&self, id: &str) -> Result<(), StoreError> {
        changes!(self, self.inner.delete_api_key(id))
    }

    async fn create_usage_plan(&self, plan: UsagePlan) -> Result<UsagePlan, StoreError> {
        changes!(self, self.inner.create_usage_plan(plan))
    }

    fn get_usage_plan(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<UsagePlan, StoreError>> + Send {
        self.inner.get_usage_plan(id)
    }

    fn get_usage_plans(
        &self,
        query: &UsagePlanQuery,
    ) -> impl Future<Output = Result<Page<UsagePlan>, StoreError>> + Send {
        self.inner.get_usage_plans(query)
    }

    async fn update_usage_plan(
        &self,
        id: &str,
        ops: &[PatchOperation],
    ) -> Result<UsagePlan, StoreError> {
        changes!(self, self.inner.update_usage_plan(id, ops))
    }

    async fn delete_usage_plan(&self, id: &str) -> Result<(), StoreError> {
        changes!(self, self.inner.delete_usage_plan(id))
    }

    async fn create_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
    ) -> Result<UsagePlanKey, StoreError> {
        changes!(self, self.inner.create_usage_plan_key(plan_id, key_id))
    }

    fn get_usage_plan_keys(
        &self,
        plan_id: &str,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<UsagePlanKey>, StoreError>> + Send {
        self.inner.get_usage_plan_keys(plan_id, page)
    }

    async fn delete_usage_plan_key(&self, plan_id: &str, key_id: &str) -> Result<(), StoreError> {
        changes!(self, self.inner.delete_usage_plan_key(plan_id, key_id))
    }

    async fn import_api_keys(
        &self,
        keys: Vec<ImportKey>,
        warnings: Vec<ImportWarning>,
        fail_on_warnings: bool,
    ) -> Result<ImportResult, StoreError> {
        changes!(
            self,
            self.inner.import_api_keys(keys, warnings, fail_on_warnings)
        )
    }

    async fn tag_resource(
        &self,
        resource: &Resource,
        tags: BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        changes!(self, self.inner.tag_resource(resource, tags))
    }

    async fn untag_resource(&self, resource: &Resource, keys: &[String]) -> Result<(), StoreError> {
        changes!(self, self.inner.untag_resource(resource, keys))
    }

    fn get_tags(
        &self,
        resource: &Resource,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, StoreError>> + Send {
        self.inner.get_tags(resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_separates_value_and_stage() {
        let prod = StageRef::new("api", "prod");
        assert_ne!(
            digest("abc", &StageRef::new("api", "prod")),
            digest("abc", &StageRef::new("apip", "rod"))
        );
        assert_ne!(digest("abc", &prod), digest("abd", &prod));
        assert_ne!(
            digest("abc", &StageRef::any()),
            digest("abc", &StageRef::new("*", "*"))
        );
        assert_eq!(digest("abc", &prod), digest("abc", &prod.clone()));
    }
}
