//! `CachingStore`: the conformance suites through it, what it saves a backing store that must be
//! awaited (counted), its bounds, its times to live and the backing store's version on a manual
//! clock, and the layer answering from it.
#![cfg(feature = "cache")]

use crate::common;
use fastrand::Rng;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use http::{Method, StatusCode};
use tower_usage_plans::clock::ManualClock;
use tower_usage_plans::error::StoreError;
use tower_usage_plans::model::{ApiKey, ApiKeyValue, ApiStage, StageRef, UsagePlan};
use tower_usage_plans::patch::PatchOperation;
use tower_usage_plans::store::{
    ApiKeyInfo, ApiKeyQuery, CachingStore, ImportKey, ImportResult, ImportWarning, KeyGrant,
    KeyStore, Management, NewApiKey, Page, PageRequest, Resource, UsagePlanKey, UsagePlanQuery,
};
use tower_usage_plans::testing::store::{self as suite, Change};
use tower_usage_plans::{LocalMeter, MemoryStore, UsagePlanLayer};

/// A store that must be awaited, like a database, and counts the lookups it answers.
#[derive(Clone, Debug)]
struct Counting {
    inner: MemoryStore,
    lookups: Arc<AtomicUsize>,
    /// Whether it offers the inner store's version.
    versioned: bool,
    down: Arc<AtomicBool>,
}

impl Counting {
    fn new(inner: MemoryStore, versioned: bool) -> Self {
        Self {
            inner,
            lookups: Arc::default(),
            versioned,
            down: Arc::default(),
        }
    }

    fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }
}

impl KeyStore for Counting {
    type Lookup =
        std::pin::Pin<Box<dyn Future<Output = Result<Option<KeyGrant>, StoreError>> + Send>>;

    fn lookup(&self, value: &str, stage: &StageRef) -> Self::Lookup {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let (inner, down) = (self.inner.clone(), self.down.load(Ordering::SeqCst));
        let (value, stage) = (value.to_owned(), stage.clone());
        Box::pin(async move {
            tokio::task::yield_now().await;
            if down {
                return Err(StoreError::Backend("connection refused".into()));
            }
            inner.lookup(&value, &stage).await
        })
    }

    fn version(&self) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        let (inner, versioned) = (self.inner.clone(), self.versioned);
        async move {
            tokio::task::yield_now().await;
            if versioned {
                inner.version().await
            } else {
                Ok(None)
            }
        }
    }
}

/// Management as the backing store's own (a database's would write its tables).
impl Management for Counting {
    fn create_api_key(
        &self,
        new: NewApiKey,
    ) -> impl Future<Output = Result<ApiKey, StoreError>> + Send {
        self.inner.create_api_key(new)
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
    fn update_api_key(
        &self,
        id: &str,
        ops: &[PatchOperation],
    ) -> impl Future<Output = Result<ApiKeyInfo, StoreError>> + Send {
        self.inner.update_api_key(id, ops)
    }
    fn delete_api_key(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.delete_api_key(id)
    }
    fn create_usage_plan(
        &self,
        plan: UsagePlan,
    ) -> impl Future<Output = Result<UsagePlan, StoreError>> + Send {
        self.inner.create_usage_plan(plan)
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
    fn update_usage_plan(
        &self,
        id: &str,
        ops: &[PatchOperation],
    ) -> impl Future<Output = Result<UsagePlan, StoreError>> + Send {
        self.inner.update_usage_plan(id, ops)
    }
    fn delete_usage_plan(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.delete_usage_plan(id)
    }
    fn create_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
    ) -> impl Future<Output = Result<UsagePlanKey, StoreError>> + Send {
        self.inner.create_usage_plan_key(plan_id, key_id)
    }
    fn get_usage_plan_keys(
        &self,
        plan_id: &str,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<UsagePlanKey>, StoreError>> + Send {
        self.inner.get_usage_plan_keys(plan_id, page)
    }
    fn delete_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.delete_usage_plan_key(plan_id, key_id)
    }
    fn import_api_keys(
        &self,
        keys: Vec<ImportKey>,
        warnings: Vec<ImportWarning>,
        fail_on_warnings: bool,
    ) -> impl Future<Output = Result<ImportResult, StoreError>> + Send {
        self.inner.import_api_keys(keys, warnings, fail_on_warnings)
    }
    fn tag_resource(
        &self,
        resource: &Resource,
        tags: BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.tag_resource(resource, tags)
    }
    fn untag_resource(
        &self,
        resource: &Resource,
        keys: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.untag_resource(resource, keys)
    }
}

/// Makes a change the suite asks for through the cache's own management.
async fn apply<S: Management>(store: &S, change: Change) {
    suite::apply_with_management(store, change).await;
}

fn fixture_store() -> MemoryStore {
    MemoryStore::from_config(suite::fixture()).unwrap()
}

#[tokio::test]
async fn the_conformance_suites_pass_through_the_cache() {
    // Over a store that answers at once (the fast path) and one that must be awaited; each run
    // twice, so that the second answers from the cache.
    let fast = CachingStore::new(fixture_store());
    suite::key_store(&fast).await;
    suite::key_store(&fast).await;
    let slow = CachingStore::new(Counting::new(fixture_store(), true));
    suite::key_store(&slow).await;
    let first = slow.inner().lookups();
    suite::key_store(&slow).await;
    assert_eq!(
        slow.inner().lookups(),
        first,
        "the second run asked the backing store"
    );
    let unversioned = CachingStore::new(Counting::new(fixture_store(), false));
    suite::key_store(&unversioned).await;
    suite::key_store(&unversioned).await;

    // Changes through the cache reach the next lookup, with answers cached before each change.
    let store = CachingStore::new(fixture_store());
    suite::key_store(&store).await;
    suite::key_store_changes(&store, |c| apply(&store, c)).await;
    let store = CachingStore::new(Counting::new(fixture_store(), false));
    suite::key_store(&store).await;
    suite::key_store_changes(&store, |c| apply(&store, c)).await;
}

/// A 40-character value of letters and digits.
fn value(rng: &mut Rng) -> String {
    (0..40).map(|_| rng.alphanumeric()).collect()
}

/// 1,000 keys on one plan, and 100,000 values no key has.
fn thousand_keys(rng: &mut Rng) -> (MemoryStore, Vec<String>, Vec<String>) {
    let store = MemoryStore::new();
    let mut plan = UsagePlan::new("plan1", "Plan");
    plan.api_stages.push(ApiStage::new(API, STAGE));
    now(store.create_usage_plan(plan)).unwrap();
    let valid: Vec<String> = (0..1_000).map(|_| value(rng)).collect();
    for (i, value) in valid.iter().enumerate() {
        let id = format!("key{i:04}");
        store
            .put_api_key(ApiKey::new(&id, &id, ApiKeyValue::new(value).unwrap()))
            .unwrap();
        now(store.create_usage_plan_key("plan1", &id)).unwrap();
    }
    let invalid: Vec<String> = (0..100_000).map(|_| value(rng)).collect();
    (store, valid, invalid)
}

/// Sends `requests` lookups, each drawn at random from the 101,000 values; answers how many
/// were known.
async fn send_lookups<S: KeyStore>(
    store: &S,
    rng: &mut Rng,
    valid: &[String],
    invalid: &[String],
    requests: usize,
) -> usize {
    let prod = StageRef::new(API, STAGE);
    let mut known = 0;
    for _ in 0..requests {
        let i = rng.usize(..valid.len() + invalid.len());
        let value = valid.get(i).unwrap_or_else(|| &invalid[i - valid.len()]);
        let grant = store.lookup(value, &prod).await.unwrap();
        assert_eq!(grant.is_some(), i < valid.len());
        known += usize::from(grant.is_some());
    }
    known
}

/// The figures in BENCHMARKS.md: 100,000 requests drawn at random from 1,000 valid keys and
/// 100,000 random invalid values, against a backing store that counts its lookups; then the same
/// number again (the flood goes on).
#[tokio::test]
async fn the_cache_saves_the_backing_store_lookups_counted() {
    const REQUESTS: usize = 100_000;
    let mut rng = Rng::with_seed(11);
    let (store, valid, invalid) = thousand_keys(&mut rng);

    let bare = Counting::new(store.clone(), true);
    let mut requests = Rng::with_seed(12);
    send_lookups(&bare, &mut requests, &valid, &invalid, REQUESTS).await;
    let without = bare.lookups();
    assert_eq!(without, REQUESTS);

    // Times to live longer than the run, on a clock that stands still: the figures count the
    // cache's bounds, not the speed of the machine.
    let hour = Duration::from_secs(3600);
    let clock = ManualClock::at_unix_secs(noon());
    let cached = CachingStore::builder(Counting::new(store.clone(), true))
        .time_to_live(hour)
        .unknown_time_to_live(hour)
        .clock(clock.clone())
        .build();
    let mut requests = Rng::with_seed(12);
    let known = send_lookups(&cached, &mut requests, &valid, &invalid, REQUESTS).await;
    let first = cached.inner().lookups();
    // One backing lookup per distinct value sent, and no more.
    let mut requests = Rng::with_seed(12);
    let mut distinct = std::collections::HashSet::new();
    for _ in 0..REQUESTS {
        distinct.insert(requests.usize(..101_000));
    }
    assert_eq!(first, distinct.len());
    // The same 100,000 requests again (the flood replayed): nothing more.
    let mut requests = Rng::with_seed(12);
    send_lookups(&cached, &mut requests, &valid, &invalid, REQUESTS).await;
    let replayed = cached.inner().lookups() - first;
    assert_eq!(replayed, 0);
    // 100,000 more, drawn afresh from the same values: only the values not sent before.
    send_lookups(&cached, &mut requests, &valid, &invalid, REQUESTS).await;
    let fresh = cached.inner().lookups() - first;
    let (found, unknown) = cached.entry_counts();
    println!(
        "100000 requests ({known} with one of 1000 valid keys, the others one of 100000 random \
         invalid values): backing lookups without the cache {without}, with it {first} (one per \
         distinct value); the same requests replayed: {replayed} more; 100000 more drawn afresh: \
         {fresh} more; cached: {found} found, {unknown} unknown"
    );

    // The unknown values are bounded apart from the keys: a flood of unknown values larger than
    // the bound keeps the known keys cached.
    let bounded = CachingStore::builder(Counting::new(store, true))
        .max_unknown(10_000)
        .time_to_live(hour)
        .unknown_time_to_live(hour)
        .clock(clock)
        .build();
    let prod = StageRef::new(API, STAGE);
    for value in &valid {
        bounded.lookup(value, &prod).await.unwrap().unwrap();
    }
    let mut requests = Rng::with_seed(13);
    send_lookups(&bounded, &mut requests, &valid, &invalid, REQUESTS).await;
    let (found, unknown) = bounded.entry_counts();
    assert!(unknown <= 10_000, "{unknown} unknown values kept");
    assert_eq!(found, 1_000, "the known keys were pushed out");
    let before = bounded.inner().lookups();
    for value in &valid {
        bounded.lookup(value, &prod).await.unwrap().unwrap();
    }
    assert_eq!(bounded.inner().lookups(), before);
    println!(
        "with max_unknown 10000: {} backing lookups for the 1000 keys then the 100000 requests, \
         {unknown} unknown values kept, all 1000 keys still cached",
        before
    );
}

#[tokio::test]
async fn answers_expire_by_the_clock_and_a_backing_version_that_moves_empties_the_cache() {
    let clock = ManualClock::at_unix_secs(noon());
    let backing = article_store();
    // No version: answers live their time to live.
    let store = CachingStore::builder(Counting::new(backing.clone(), false))
        .time_to_live(Duration::from_secs(60))
        .unknown_time_to_live(Duration::from_secs(10))
        .clock(clock.clone())
        .build();
    let prod = StageRef::new(API, STAGE);
    let unknown = "u".repeat(30);
    assert!(store.lookup(FREE, &prod).await.unwrap().unwrap().enabled);
    assert!(store.lookup(&unknown, &prod).await.unwrap().is_none());
    assert_eq!(store.inner().lookups(), 2);
    // A change made behind the cache's back: not seen until the answer expires.
    let off = PatchOperation::replace("/enabled", "false");
    backing.update_api_key("key111aaa", &[off]).await.unwrap();
    clock.advance(Duration::from_secs(59));
    assert!(store.lookup(FREE, &prod).await.unwrap().unwrap().enabled);
    assert!(store.lookup(&unknown, &prod).await.unwrap().is_none());
    assert_eq!(
        store.inner().lookups(),
        3,
        "the unknown value expired at 10 s"
    );
    clock.advance(Duration::from_secs(1));
    assert!(!store.lookup(FREE, &prod).await.unwrap().unwrap().enabled);
    assert_eq!(store.inner().lookups(), 4);

    // A store that keeps a version: a change behind the cache's back is seen once the version
    // is read again (every second by default), not before.
    let backing = article_store();
    let store = CachingStore::builder(Counting::new(backing.clone(), true))
        .clock(clock.clone())
        .build();
    assert!(store.lookup(FREE, &prod).await.unwrap().unwrap().enabled);
    let on_cache = store.inner().lookups();
    assert!(store.lookup(FREE, &prod).await.unwrap().unwrap().enabled);
    assert_eq!(store.inner().lookups(), on_cache);
    let off = PatchOperation::replace("/enabled", "false");
    backing.update_api_key("key111aaa", &[off]).await.unwrap();
    clock.advance(Duration::from_millis(999));
    assert!(store.lookup(FREE, &prod).await.unwrap().unwrap().enabled);
    clock.advance(Duration::from_millis(1));
    assert!(!store.lookup(FREE, &prod).await.unwrap().unwrap().enabled);

    // A backing store that fails: cached answers still serve; others are its error.
    store.inner().down.store(true, Ordering::SeqCst);
    assert!(!store.lookup(FREE, &prod).await.unwrap().unwrap().enabled);
    assert!(store.lookup(PREMIUM, &prod).await.is_err());
    let debug = format!("{store:?}");
    assert!(!debug.contains(FREE) && !debug.contains(PREMIUM), "{debug}");
}

#[tokio::test]
async fn the_layer_answers_hits_from_the_cache_and_sees_changes_made_through_it() {
    let backing = Counting::new(article_store(), true);
    let store = CachingStore::new(backing.clone());
    let layer = UsagePlanLayer::builder(store.clone())
        .stage(API, STAGE)
        .meter(LocalMeter::with_clock(ManualClock::at_unix_secs(noon())))
        .build()
        .unwrap();
    let router = axum::Router::new()
        .route("/items", axum::routing::get(|| async { "items" }))
        .layer(layer);
    let (ok, _) = burst(&router, Method::GET, "/items", FREE, 5).await;
    assert_eq!(ok, 5);
    let flood = "f".repeat(40);
    for _ in 0..5 {
        let a = send(&router, Method::GET, "/items", Some(&flood)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(backing.lookups(), 2, "one lookup per distinct value");

    let off = PatchOperation::replace("/enabled", "false");
    Management::update_api_key(&store, "key111aaa", &[off])
        .await
        .unwrap();
    let a = send(&router, Method::GET, "/items", Some(FREE)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(backing.lookups(), 3);
}
