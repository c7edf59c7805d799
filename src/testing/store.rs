//! The conformance suite for [`KeyStore`]s: what the layer relies on a store to answer.
//!
//! Load [`fixture()`] into your store (keys, plans and links in AWS's shapes), then run
//! [`key_store`], which only looks up. If the store can change at run time, run
//! [`key_store_changes`] on a fresh copy too: it asks your closure to make each [`Change`] through
//! the store's own management, and checks that the next lookup sees it and that
//! [`version`](KeyStore::version), when the store keeps one, moves.
//!
//! What is checked:
//! - a known value answers its key's id, enabled flag, and its plan on a stage the plan lists,
//!   compiled from the plan (throttle, quota, per-method throttles);
//! - a key on no plan for the stage asked answers `plan: None`, and the right one of its plans
//!   for each stage it has one on;
//! - an unknown value answers `Ok(None)`, values that differ in one character are different keys,
//!   and values of 20 and 128 characters work;
//! - a disabled key answers `enabled: false` (with its plan: the layer decides);
//! - [`StageRef::any`] answers one of the key's plans;
//! - lookups leave [`version`](KeyStore::version) alone, and a grant's `Debug` output holds no
//!   value;
//! - after each change, the next lookup sees it, and the version (if any) has moved.
//!
//! Each check panics with a message naming the promise broken.
//!
//! # Examples
//!
//! ```
//! use tower_usage_plans::patch::PatchOperation;
//! use tower_usage_plans::store::Management;
//! use tower_usage_plans::testing::store::{self as suite, Change};
//! use tower_usage_plans::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = MemoryStore::from_config(suite::fixture()).unwrap();
//! suite::key_store(&store).await;
//!
//! let store = MemoryStore::from_config(suite::fixture()).unwrap();
//! suite::key_store_changes(&store, |change| {
//!     let store = store.clone();
//!     async move {
//!         match change {
//!             Change::Disable { key_id } => {
//!                 let off = PatchOperation::replace("/enabled", "false");
//!                 store.update_api_key(&key_id, &[off]).await.unwrap();
//!             }
//!             Change::Unlink { plan_id, key_id } => {
//!                 store.delete_usage_plan_key(&plan_id, &key_id).await.unwrap();
//!             }
//!             Change::SetRateLimit { plan_id, rate_limit } => {
//!                 let op = PatchOperation::replace("/throttle/rateLimit", rate_limit.to_string());
//!                 store.update_usage_plan(&plan_id, &[op]).await.unwrap();
//!             }
//!             Change::Delete { key_id } => store.delete_api_key(&key_id).await.unwrap(),
//!             other => panic!("a change this test does not know: {other:?}"),
//!         }
//!     }
//! })
//! .await;
//! # }
//! ```

use std::collections::BTreeMap;
use std::future::Future;

use crate::config::Config;
use crate::model::{
    ApiKey, ApiKeyValue, ApiStage, Quota, QuotaPeriod, StageRef, Throttle, UsagePlan,
};
use crate::plan::{Bucket, StagePlan};
use crate::store::{KeyGrant, KeyStore};

/// The API the fixture's plans are on.
pub const API: &str = "conformapi";
/// Another API, listed by [`PLAN_WIDE`] only.
pub const OTHER_API: &str = "otherapi01";
/// The stage most checks ask about.
pub const PROD: &str = "prod";
/// A stage only [`PLAN_DEV`] lists.
pub const DEV: &str = "dev";

/// On `API:prod`: throttle 5 rps burst 10, 1000 a DAY, `GET /items` at 10 rps burst 20.
pub const PLAN_PROD: &str = "plan-prod";
/// On `API:prod` and `OTHER_API:prod`: throttle 50 rps burst 100, no quota.
pub const PLAN_WIDE: &str = "plan-wide";
/// On `API:dev`: no throttle, 10 a WEEK.
pub const PLAN_DEV: &str = "plan-dev";

/// Enabled, in [`PLAN_PROD`].
pub const ENABLED_KEY: &str = "key-enabled";
/// [`ENABLED_KEY`]'s value: 40 characters.
pub const ENABLED_VALUE: &str = "EnabledKeyValue0123456789abcdefghijklmno";
/// Disabled, in [`PLAN_PROD`].
pub const DISABLED_KEY: &str = "key-disabled";
/// [`DISABLED_KEY`]'s value: 40 characters, [`ENABLED_VALUE`] but for its last character.
pub const DISABLED_VALUE: &str = "EnabledKeyValue0123456789abcdefghijklmnp";
/// Enabled, in [`PLAN_WIDE`] then [`PLAN_DEV`]; its value has 128 characters ([`two_plan_value`]).
pub const TWO_PLAN_KEY: &str = "key-two-plans";
/// Enabled, in no plan; its value has 20 characters.
pub const PLANLESS_KEY: &str = "key-planless";
/// [`PLANLESS_KEY`]'s value.
pub const PLANLESS_VALUE: &str = "Planless!#$%&()*+,-.";

/// [`TWO_PLAN_KEY`]'s value: 128 characters.
pub fn two_plan_value() -> String {
    "T".repeat(64) + &"w".repeat(63) + "~"
}

/// Values no fixture key has: a prefix, an extension, another case, a one-character change.
fn unknown_values() -> Vec<String> {
    vec![
        ENABLED_VALUE[..39].to_string() + "!",
        ENABLED_VALUE.to_lowercase(),
        format!("{ENABLED_VALUE}x"),
        ENABLED_VALUE[..20].to_string(),
        "x".repeat(128),
        two_plan_value()[..127].to_string() + "}",
    ]
}

/// The keys, plans and links the suite expects a store to hold, in AWS's shapes.
pub fn fixture() -> Config {
    let key = |id: &str, value: &str, enabled: bool| {
        let mut k = ApiKey::new(id, id, ApiKeyValue::new(value).expect("a valid value"));
        k.enabled = enabled;
        k
    };
    let throttle = |rate, burst| Throttle::new(rate, burst).expect("a valid throttle");

    let mut prod = UsagePlan::new(PLAN_PROD, "Prod");
    prod.throttle = Some(throttle(5.0, 10));
    prod.quota = Some(Quota::new(1000, QuotaPeriod::Day, 0).expect("a valid quota"));
    let mut stage = ApiStage::new(API, PROD);
    stage
        .throttle
        .insert("/items/GET".into(), throttle(10.0, 20));
    prod.api_stages.push(stage);

    let mut wide = UsagePlan::new(PLAN_WIDE, "Wide");
    wide.throttle = Some(throttle(50.0, 100));
    wide.api_stages.push(ApiStage::new(API, PROD));
    wide.api_stages.push(ApiStage::new(OTHER_API, PROD));

    let mut dev = UsagePlan::new(PLAN_DEV, "Dev");
    dev.quota = Some(Quota::new(10, QuotaPeriod::Week, 0).expect("a valid quota"));
    dev.api_stages.push(ApiStage::new(API, DEV));

    let links = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Config {
        api_keys: vec![
            key(ENABLED_KEY, ENABLED_VALUE, true),
            key(DISABLED_KEY, DISABLED_VALUE, false),
            key(TWO_PLAN_KEY, &two_plan_value(), true),
            key(PLANLESS_KEY, PLANLESS_VALUE, true),
        ],
        usage_plans: vec![prod, wide, dev],
        usage_plan_keys: BTreeMap::from([
            (PLAN_PROD.to_string(), links(&[ENABLED_KEY, DISABLED_KEY])),
            (PLAN_WIDE.to_string(), links(&[TWO_PLAN_KEY])),
            (PLAN_DEV.to_string(), links(&[TWO_PLAN_KEY])),
        ]),
    }
}

/// Makes `change` through the store's own management operations: the `apply` to give
/// [`key_store_changes`] for any store that implements [`Management`](crate::store::Management).
/// Panics, naming the change, if the store refuses it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tower_usage_plans::testing::store::{apply_with_management, fixture, key_store_changes};
/// use tower_usage_plans::MemoryStore;
///
/// let store = MemoryStore::from_config(fixture()).unwrap();
/// key_store_changes(&store, |change| {
///     let store = store.clone();
///     async move { apply_with_management(&store, change).await }
/// })
/// .await;
/// # }
/// ```
pub async fn apply_with_management<S: crate::store::Management>(store: &S, change: Change) {
    use crate::patch::PatchOperation;
    let done = match &change {
        Change::Disable { key_id } => {
            let off = PatchOperation::replace("/enabled", "false");
            store.update_api_key(key_id, &[off]).await.map(drop)
        }
        Change::Unlink { plan_id, key_id } => store.delete_usage_plan_key(plan_id, key_id).await,
        Change::SetRateLimit {
            plan_id,
            rate_limit,
        } => {
            let op = PatchOperation::replace("/throttle/rateLimit", rate_limit.to_string());
            store.update_usage_plan(plan_id, &[op]).await.map(drop)
        }
        Change::Delete { key_id } => store.delete_api_key(key_id).await,
    };
    if let Err(e) = done {
        panic!("the store refused {change:?}: {e}");
    }
}

/// A change [`key_store_changes`] asks the store to make, through its own management.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Change {
    /// Disable the key with this id (AWS: `replace /enabled false`).
    Disable {
        /// The key's id.
        key_id: String,
    },
    /// Unlink the key from the plan (AWS: `delete-usage-plan-key`).
    Unlink {
        /// The plan's id.
        plan_id: String,
        /// The key's id.
        key_id: String,
    },
    /// Set the plan's throttle rate (AWS: `replace /throttle/rateLimit`).
    SetRateLimit {
        /// The plan's id.
        plan_id: String,
        /// Requests per second.
        rate_limit: f64,
    },
    /// Delete the key with this id (AWS: `delete-api-key`).
    Delete {
        /// The key's id.
        key_id: String,
    },
}

/// `store`'s answer for `value` on `stage`.
async fn lookup<S: KeyStore>(store: &S, value: &str, stage: &StageRef) -> Option<KeyGrant> {
    let grant = match store.lookup(value, stage).await {
        Ok(grant) => grant,
        Err(e) => panic!("lookup on {stage} failed: {e}"),
    };
    if let Some(g) = &grant {
        let debug = format!("{g:?}");
        assert!(
            !debug.contains(value),
            "a grant's Debug output shows the key's value"
        );
    }
    grant
}

/// The grant for `value` on `stage`, which must exist, with id `key_id`.
async fn known<S: KeyStore>(store: &S, value: &str, key_id: &str, stage: &StageRef) -> KeyGrant {
    let Some(grant) = lookup(store, value, stage).await else {
        panic!("the value of {key_id:?} answered no key on {stage}");
    };
    assert_eq!(&*grant.key_id, key_id, "a value answered another key's id");
    grant
}

/// The id of the plan in `grant`, checked to be compiled for `stage`.
fn plan_id(grant: &KeyGrant, stage: &StageRef) -> Option<String> {
    let plan = grant.plan()?;
    assert!(
        stage.matches(plan.api_id(), plan.stage()),
        "key {:?}: the plan answered for {stage} is compiled for {}:{}",
        grant.key_id,
        plan.api_id(),
        plan.stage()
    );
    Some(plan.id().to_string())
}

async fn version<S: KeyStore>(store: &S) -> Option<u64> {
    store
        .version()
        .await
        .unwrap_or_else(|e| panic!("version failed: {e}"))
}

/// Checks a store that holds exactly [`fixture()`]: see the [module docs](self). Only looks up.
///
/// # Panics
///
/// When the store breaks a promise, with a message saying which.
pub async fn key_store<S: KeyStore>(store: &S) {
    let prod = StageRef::new(API, PROD);
    let dev = StageRef::new(API, DEV);
    let other = StageRef::new(OTHER_API, PROD);
    let nowhere = StageRef::new(API, "staging");
    let two = two_plan_value();
    let v0 = version(store).await;

    // A known value: its id, enabled, its plan compiled for the stage.
    let g = known(store, ENABLED_VALUE, ENABLED_KEY, &prod).await;
    assert!(g.enabled, "an enabled key answered disabled");
    assert_eq!(plan_id(&g, &prod).as_deref(), Some(PLAN_PROD));
    let plan = g.plan().expect("checked above");
    let want = StagePlan::new(&fixture().usage_plans[0], &prod).expect("the fixture's plan");
    let key: std::sync::Arc<str> = "k".into();
    assert_eq!(
        plan.counter(&key, Bucket::Plan).limits,
        want.counter(&key, Bucket::Plan).limits,
        "the plan's throttle and quota"
    );
    assert_eq!(plan.quota(), want.quota(), "the plan's quota");
    assert_eq!(
        plan.methods(),
        want.methods(),
        "the plan's per-method throttles"
    );

    // A stage no plan of the key lists: the key, without a plan.
    for stage in [&dev, &other, &nowhere] {
        let g = known(store, ENABLED_VALUE, ENABLED_KEY, stage).await;
        assert!(g.plan().is_none(), "a plan answered on {stage}, not listed");
    }

    // A disabled key: known, disabled, with its plan.
    let g = known(store, DISABLED_VALUE, DISABLED_KEY, &prod).await;
    assert!(!g.enabled, "a disabled key answered enabled");
    assert_eq!(plan_id(&g, &prod).as_deref(), Some(PLAN_PROD));

    // A key in two plans: the one listing each stage.
    let g = known(store, &two, TWO_PLAN_KEY, &prod).await;
    assert_eq!(plan_id(&g, &prod).as_deref(), Some(PLAN_WIDE));
    let g = known(store, &two, TWO_PLAN_KEY, &other).await;
    assert_eq!(plan_id(&g, &other).as_deref(), Some(PLAN_WIDE));
    let g = known(store, &two, TWO_PLAN_KEY, &dev).await;
    assert_eq!(plan_id(&g, &dev).as_deref(), Some(PLAN_DEV));
    assert!(
        g.plan()
            .is_some_and(|p| p.bucket_for("/", &http::Method::GET) == Bucket::None),
        "{PLAN_DEV} has no throttle"
    );
    let g = known(store, &two, TWO_PLAN_KEY, &nowhere).await;
    assert!(
        g.plan().is_none(),
        "a plan answered on {nowhere}, not listed"
    );

    // A key on no plan.
    let g = known(store, PLANLESS_VALUE, PLANLESS_KEY, &prod).await;
    assert!(g.enabled && g.plan().is_none(), "a key on no plan");

    // Any stage: one of the key's plans.
    let any = StageRef::any();
    let g = known(store, ENABLED_VALUE, ENABLED_KEY, &any).await;
    assert_eq!(plan_id(&g, &any).as_deref(), Some(PLAN_PROD));
    let g = known(store, &two, TWO_PLAN_KEY, &any).await;
    let id = plan_id(&g, &any);
    assert!(
        matches!(id.as_deref(), Some(PLAN_WIDE | PLAN_DEV)),
        "any stage answered {id:?} for a key in {PLAN_WIDE} and {PLAN_DEV}"
    );
    let g = known(store, PLANLESS_VALUE, PLANLESS_KEY, &any).await;
    assert!(
        g.plan().is_none(),
        "a key on no plan answered one on any stage"
    );

    // Unknown values.
    for value in unknown_values() {
        for stage in [&prod, &any] {
            assert!(
                lookup(store, &value, stage).await.is_none(),
                "a value no key has (of {} characters) answered a key",
                value.len()
            );
        }
    }

    assert_eq!(version(store).await, v0, "a lookup changed the version");
}

/// Checks that `store`, which holds [`fixture()`], answers changes at once: `apply` must make
/// each [`Change`] it is given through the store's own management and finish it before its
/// future ends; then the next lookup must see the change, and the version (if the store keeps
/// one) must differ from before. See the [module example](self).
///
/// # Panics
///
/// When the store breaks a promise, with a message saying which.
pub async fn key_store_changes<S, F, Fut>(store: &S, mut apply: F)
where
    S: KeyStore,
    F: FnMut(Change) -> Fut,
    Fut: Future<Output = ()>,
{
    let prod = StageRef::new(API, PROD);
    let dev = StageRef::new(API, DEV);
    let two = two_plan_value();

    let mut step = async |change: Change| {
        let before = version(store).await;
        apply(change.clone()).await;
        let after = version(store).await;
        if let (Some(b), Some(a)) = (before, after) {
            assert_ne!(a, b, "the version did not change after {change:?}");
        }
        assert_eq!(
            before.is_some(),
            after.is_some(),
            "the store keeps a version only sometimes"
        );
    };

    step(Change::Disable {
        key_id: ENABLED_KEY.into(),
    })
    .await;
    let g = known(store, ENABLED_VALUE, ENABLED_KEY, &prod).await;
    assert!(!g.enabled, "a key disabled is still answered enabled");
    assert_eq!(plan_id(&g, &prod).as_deref(), Some(PLAN_PROD));

    step(Change::Unlink {
        plan_id: PLAN_DEV.into(),
        key_id: TWO_PLAN_KEY.into(),
    })
    .await;
    let g = known(store, &two, TWO_PLAN_KEY, &dev).await;
    assert!(g.plan().is_none(), "a key unlinked still has its plan");
    let g = known(store, &two, TWO_PLAN_KEY, &prod).await;
    assert_eq!(plan_id(&g, &prod).as_deref(), Some(PLAN_WIDE));

    step(Change::SetRateLimit {
        plan_id: PLAN_WIDE.into(),
        rate_limit: 7.0,
    })
    .await;
    let g = known(store, &two, TWO_PLAN_KEY, &prod).await;
    let key: std::sync::Arc<str> = "k".into();
    let rate = g
        .plan()
        .and_then(|p| p.counter(&key, Bucket::Plan).limits.bucket)
        .map(|b| b.period_nanos);
    let seven = crate::model::Throttle::new(7.0, 1).expect("a throttle");
    assert_eq!(
        rate,
        Some(crate::meter::policy::BucketLimits::from_throttle(&seven).period_nanos),
        "a plan's new throttle did not reach its key"
    );

    step(Change::Delete {
        key_id: PLANLESS_KEY.into(),
    })
    .await;
    assert!(
        lookup(store, PLANLESS_VALUE, &prod).await.is_none(),
        "a deleted key is still answered"
    );
    // The others are untouched.
    let g = known(store, DISABLED_VALUE, DISABLED_KEY, &prod).await;
    assert!(!g.enabled);
    assert_eq!(plan_id(&g, &prod).as_deref(), Some(PLAN_PROD));
}
