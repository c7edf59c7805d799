//! [`MemoryStore`]: keys, plans and their links in process memory, with AWS's management
//! operations.
//!
//! Two tables. The lookup index, a [`DashMap`] from a key's value to what a request reads (its id,
//! enabled flag and plans), answers a request with one hash of the value and one shard read lock,
//! released before the answer is returned. Everything else (keys by id, plans, links) sits behind
//! one management lock that only changes and management reads take; each change updates the
//! index before it lets go. The value is kept once: the index's key and the key's record share
//! the allocation.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::Mutex;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::error::{ConfigError, StoreError};
use crate::model::{random_id, ApiKey, ApiKeyValue, StageRef, UsagePlan};
use crate::patch::{self, PatchOperation};

use super::manage::{NewApiKey, Resource};
use super::{KeyGrant, KeyStore};

mod data;
mod manage;
#[cfg(test)]
mod tests;

use data::{plan_ids, stage_conflict, Cold, Data, Hasher, Hot, KeyPlans, PlanRec};

/// A key or plan as a change of its tags left it ([`MemoryStore::retag`]): what a store that
/// writes through writes.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) enum Retagged {
    Key(ApiKey),
    Plan(UsagePlan),
}

/// Shards of the lookup index: each grows on its own, so a growth (under a change) holds up only
/// the requests that land on that shard, briefly.
const SHARDS: usize = 64;

/// The lookup index: key value -> what a request reads.
type Index = DashMap<Arc<str>, Hot, Hasher>;

struct Inner {
    index: Index,
    data: Mutex<Data>,
    /// Bumped after every change; see [`KeyStore::version`].
    version: AtomicU64,
    /// What `createdDate` and `lastUpdatedDate` are read from.
    clock: Arc<dyn Clock>,
}

/// The embedded [`KeyStore`]: keys, usage plans and their links in memory, with AWS's management
/// operations.
///
/// Clones share the same data. Every change applies to the next request of every layer built on
/// the store, without rebuilding anything. A failed change changes nothing. A lookup takes no
/// global lock (one shard of the index, read, and let go before it answers) and hands back an
/// owned [`KeyGrant`]; changes take the management lock, and no code but the store's own runs
/// under it, so a meter or handler may call the management methods while it serves a request.
///
/// See the [module example](crate::store).
///
/// # Examples
///
/// A change reaches the next lookup, and moves [`version`](KeyStore::version):
///
/// ```
/// use tower_usage_plans::model::StageRef;
/// use tower_usage_plans::patch::PatchOperation;
/// use tower_usage_plans::store::{KeyStore, Management, MemoryStore, NewApiKey};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MemoryStore::new();
/// let key = store.create_api_key(NewApiKey::named("ClientA")).await.unwrap();
/// let before = store.version().await.unwrap();
/// store
///     .update_api_key(&key.id, &[PatchOperation::replace("/enabled", "false")])
///     .await
///     .unwrap();
/// let grant = store.lookup(key.value.expose(), &StageRef::any()).await.unwrap().unwrap();
/// assert!(!grant.enabled);
/// assert_ne!(store.version().await.unwrap(), before);
/// // Debug output counts, and never shows a value.
/// assert!(!format!("{store:?}").contains(key.value.expose()));
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = self.inner.data.lock();
        f.debug_struct("MemoryStore")
            .field("api_keys", &data.keys.len())
            .field("usage_plans", &data.plans.len())
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

fn not_found(kind: &'static str, id: &str) -> StoreError {
    StoreError::NotFound {
        kind,
        id: id.to_owned(),
    }
}

impl Inner {
    /// Now, in whole seconds since the epoch, by the store's clock (for `createdDate` and
    /// `lastUpdatedDate`).
    fn unix_now(&self) -> i64 {
        i64::try_from(self.clock.unix_nanos() / 1_000_000_000).unwrap_or(i64::MAX)
    }

    /// Marks a change done: called once it is in the index, so that a cache that reads the old
    /// number after the change will read a new one later.
    fn changed(&self) {
        self.version.fetch_add(1, Ordering::Release);
    }

    /// The index's own copy of `value` if it holds one, so the value is kept once; else a new one.
    fn shared_value(&self, value: &str) -> Arc<str> {
        match self.index.get(value) {
            Some(found) => found.key().clone(),
            None => value.into(),
        }
    }

    /// Stores `key`, keeping the plans of the key it replaces.
    fn put_key(&self, data: &mut Data, key: &ApiKey) -> Result<(), StoreError> {
        key.validate()?;
        let value = key.value.expose();
        let holder = self.index.get(value).map(|h| h.key_id.clone());
        if let Some(other) = holder.filter(|other| **other != *key.id) {
            return Err(StoreError::Conflict(format!(
                "API key {other:?} already has this value; values must be unique"
            )));
        }
        let (id, old) = match data.keys.get_key_value(key.id.as_str()) {
            Some((id, cold)) => (id.clone(), Some((cold.value.clone(), cold.plans.clone()))),
            None => (Arc::from(key.id.as_str()), None),
        };
        let (old_value, plans) = old.unzip();
        let cold = Cold::new(key, self.shared_value(value), plans.flatten());
        self.index.insert(cold.value.clone(), cold.hot(&id));
        if let Some(old_value) = old_value.filter(|v| **v != *value) {
            self.index.remove(&*old_value);
        }
        data.keys.insert(id, cold);
        Ok(())
    }

    /// Gives the key `id` these plans.
    fn set_plans(&self, data: &mut Data, id: &str, plans: Option<Arc<KeyPlans>>) {
        if let Some(cold) = data.keys.get_mut(id) {
            if let Some(mut hot) = self.index.get_mut(&*cold.value) {
                hot.plans = plans.clone();
            }
            cold.plans = plans;
        }
    }

    /// Gives each key holding one of the first plan lists the second.
    fn relink(&self, data: &mut Data, swaps: &[(Arc<KeyPlans>, Option<Arc<KeyPlans>>)]) {
        if swaps.is_empty() {
            return;
        }
        for cold in data.keys.values_mut() {
            let Some(old) = &cold.plans else { continue };
            let Some((_, new)) = swaps.iter().find(|(o, _)| Arc::ptr_eq(o, old)) else {
                continue;
            };
            if let Some(mut hot) = self.index.get_mut(&*cold.value) {
                hot.plans = new.clone();
            }
            cold.plans = new.clone();
        }
    }

    /// Links the key `key_id` to the plan `plan_id`, unless it is in it or in another plan on one
    /// of its stages.
    fn link_key(&self, data: &mut Data, plan_id: &str, key_id: &str) -> Result<(), StoreError> {
        let plan = &data
            .plans
            .get(plan_id)
            .ok_or_else(|| not_found("usage plan", plan_id))?
            .plan;
        let (key_arc, cold) = data
            .keys
            .get_key_value(key_id)
            .ok_or_else(|| not_found("API key", key_id))?;
        let key_arc = key_arc.clone();
        let linked = plan_ids(&cold.plans);
        if linked.iter().any(|p| **p == *plan_id) {
            return Err(StoreError::Conflict(format!(
                "API key {key_id:?} is already in usage plan {plan_id:?}"
            )));
        }
        if let Some(c) = stage_conflict(data, linked, plan) {
            return Err(c.error(key_id));
        }
        let mut ids = linked.to_vec();
        ids.push(plan_id.into());
        let new = data.intern(ids);
        if let Some(p) = data.plans.get_mut(plan_id) {
            p.listed = true;
        }
        data.link(plan_id, &key_arc);
        self.set_plans(data, key_id, new);
        Ok(())
    }

    /// Stores `plan`, keeping its keys, unless one of them would then be in two plans on a stage.
    fn put_plan(&self, data: &mut Data, plan: UsagePlan) -> Result<(), StoreError> {
        plan.validate()?;
        let affected = data.combos_with(&plan.id);
        // A conflict is the same for every key with the same plans: name the first such key.
        let conflicting: Vec<&Arc<KeyPlans>> = affected
            .iter()
            .filter(|p| stage_conflict(data, &p.ids, &plan).is_some())
            .collect();
        if !conflicting.is_empty() {
            let first = data
                .keys
                .iter()
                .filter_map(|(id, cold)| {
                    let p = cold.plans.as_ref()?;
                    let c = conflicting.iter().find(|c| Arc::ptr_eq(c, p))?;
                    Some((id, *c))
                })
                .min_by(|a, b| a.0.cmp(b.0));
            if let Some((key_id, p)) = first {
                if let Some(c) = stage_conflict(data, &p.ids, &plan) {
                    return Err(c.error(key_id));
                }
            }
        }
        let listed = data.plans.get(&plan.id).is_some_and(|p| p.listed);
        data.plans
            .insert(plan.id.clone(), PlanRec::new(plan, listed));
        let swaps: Vec<_> = affected
            .into_iter()
            .map(|old| {
                let new = data.rebuild(&old);
                (old, Some(new))
            })
            .collect();
        self.relink(data, &swaps);
        Ok(())
    }
}

impl MemoryStore {
    /// An empty store, dating keys by the system's clock.
    pub fn new() -> Self {
        Self::with_clock(SystemClock)
    }

    /// An empty store that dates keys (`createdDate`, `lastUpdatedDate`) by `clock`.
    ///
    /// ```
    /// use tower_usage_plans::clock::ManualClock;
    /// use tower_usage_plans::store::{Management, MemoryStore, NewApiKey};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let store = MemoryStore::with_clock(ManualClock::at_unix_secs(1_700_000_000));
    /// let key = store.create_api_key(NewApiKey::named("ClientA")).await.unwrap();
    /// assert_eq!(key.created_date, Some(1_700_000_000));
    /// # }
    /// ```
    pub fn with_clock(clock: impl Clock) -> Self {
        Self {
            inner: Arc::new(Inner {
                index: DashMap::with_hasher_and_shard_amount(Hasher::default(), SHARDS),
                data: Mutex::new(Data::default()),
                version: AtomicU64::new(0),
                clock: Arc::new(clock),
            }),
        }
    }

    /// A store holding `config`, which is validated first.
    pub fn from_config(config: Config) -> Result<Self, ConfigError> {
        let store = Self::new();
        store.replace_all(config)?;
        Ok(store)
    }

    /// A store holding the configuration in `json` (AWS's shapes, see [`Config`]).
    #[cfg(feature = "json")]
    pub fn from_json(json: &str) -> Result<Self, ConfigError> {
        Self::from_config(Config::from_json(json)?)
    }

    /// Replaces everything the store holds by `config`, all at once: if `config` is invalid,
    /// nothing changes. Usage already counted by a meter is kept (it is the meter's).
    ///
    /// A key in both the old and the new configuration is answered throughout; requests made
    /// while the replacement runs may see some keys old and some new.
    pub fn replace_all(&self, config: Config) -> Result<(), ConfigError> {
        config.validate()?;
        let inner = &*self.inner;
        let mut new = Data::default();
        for plan in config.usage_plans {
            new.plans.insert(plan.id.clone(), PlanRec::new(plan, false));
        }
        // key id -> plan ids, in the order of the plans' ids.
        let mut key_plans: HashMap<String, Vec<Box<str>>> = HashMap::new();
        for (plan_id, key_ids) in config.usage_plan_keys {
            if let Some(p) = new.plans.get_mut(&plan_id) {
                p.listed = true;
            }
            for key_id in key_ids {
                key_plans
                    .entry(key_id)
                    .or_default()
                    .push(plan_id.as_str().into());
            }
        }
        let mut data = inner.data.lock();
        // Put every new entry in before taking stale ones out, so that no request in between is
        // refused for a key that is in both the old and the new configuration.
        for key in &config.api_keys {
            let plan_ids = key_plans.remove(&key.id).unwrap_or_default();
            let id: Arc<str> = key.id.as_str().into();
            for plan_id in &plan_ids {
                new.link(plan_id, &id);
            }
            let plans = new.intern(plan_ids);
            let cold = Cold::new(key, inner.shared_value(key.value.expose()), plans);
            inner.index.insert(cold.value.clone(), cold.hot(&id));
            new.keys.insert(id, cold);
        }
        inner.index.retain(|value, hot| {
            new.keys
                .get(&*hot.key_id)
                .is_some_and(|c| Arc::ptr_eq(&c.value, value))
        });
        *data = new;
        inner.changed();
        Ok(())
    }

    /// Everything the store holds, in AWS's shapes (keys with their values).
    pub fn to_config(&self) -> Config {
        let data = self.inner.data.lock();
        let mut usage_plan_keys: BTreeMap<String, Vec<String>> = data
            .plans
            .iter()
            .filter(|(_, p)| p.listed)
            .map(|(id, _)| (id.clone(), Vec::new()))
            .collect();
        let mut api_keys = Vec::with_capacity(data.keys.len());
        for (id, cold) in &data.keys {
            for plan_id in plan_ids(&cold.plans) {
                if let Some(keys) = usage_plan_keys.get_mut(&**plan_id) {
                    keys.push(id.to_string());
                }
            }
            api_keys.push(cold.api_key(id));
        }
        api_keys.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        for keys in usage_plan_keys.values_mut() {
            keys.sort_unstable();
        }
        Config {
            api_keys,
            usage_plans: data.plans.values().map(|p| p.plan.clone()).collect(),
            usage_plan_keys,
        }
    }

    /// Creates a key; see [`Management::create_api_key`](super::Management::create_api_key).
    pub(crate) fn insert_new_key(&self, new: NewApiKey) -> Result<ApiKey, StoreError> {
        crate::tags::check(&new.tags)?;
        let mut key = ApiKey::new(
            random_id(),
            new.name,
            new.value.unwrap_or_else(ApiKeyValue::generate),
        );
        key.description = new.description;
        key.enabled = new.enabled.unwrap_or(true);
        key.customer_id = new.customer_id;
        key.tags = new.tags;
        key.created_date = Some(self.inner.unix_now());
        key.last_updated_date = key.created_date;
        let mut data = self.inner.data.lock();
        while data.keys.contains_key(key.id.as_str()) {
            key.id = random_id();
        }
        self.inner.put_key(&mut data, &key)?;
        self.inner.changed();
        Ok(key)
    }

    /// Stores `key` as it is, id and dates included, replacing any key with that id and keeping
    /// its plans: for fixtures and migrations that need a key under a chosen id (AWS's
    /// `create-api-key`, [`Management::create_api_key`](super::Management::create_api_key), always makes a new id). Refused if another
    /// key has the same value. To change a key, use [`Management::update_api_key`](super::Management::update_api_key).
    pub fn put_api_key(&self, key: ApiKey) -> Result<(), StoreError> {
        let mut data = self.inner.data.lock();
        self.inner.put_key(&mut data, &key)?;
        self.inner.changed();
        Ok(())
    }

    /// The key with this id.
    pub(crate) fn key(&self, id: &str) -> Option<ApiKey> {
        let data = self.inner.data.lock();
        data.keys.get(id).map(|cold| cold.api_key(id))
    }

    /// Changes a key with AWS's patch operations; see [`Management::update_api_key`](super::Management::update_api_key).
    pub(crate) fn patch_key(&self, id: &str, ops: &[PatchOperation]) -> Result<ApiKey, StoreError> {
        let mut data = self.inner.data.lock();
        let old = data
            .keys
            .get(id)
            .ok_or_else(|| not_found("API key", id))?
            .api_key(id);
        let mut key = patch::apply_to_key(&old, ops)?;
        key.last_updated_date = Some(self.inner.unix_now());
        self.inner.put_key(&mut data, &key)?;
        self.inner.changed();
        Ok(key)
    }

    /// Deletes a key and its links to plans.
    pub(crate) fn remove_key(&self, id: &str) -> Result<(), StoreError> {
        let mut data = self.inner.data.lock();
        let cold = data
            .keys
            .remove(id)
            .ok_or_else(|| not_found("API key", id))?;
        for plan_id in plan_ids(&cold.plans) {
            data.unlink(plan_id, id);
        }
        self.inner.index.remove(&*cold.value);
        self.inner.changed();
        Ok(())
    }

    /// Creates a plan; see [`Management::create_usage_plan`](super::Management::create_usage_plan). Refused if a plan with the id
    /// exists.
    pub(crate) fn insert_plan(&self, mut plan: UsagePlan) -> Result<UsagePlan, StoreError> {
        crate::tags::check(&plan.tags)?;
        let mut data = self.inner.data.lock();
        if plan.id.is_empty() {
            plan.id = random_id();
            while data.plans.contains_key(&plan.id) {
                plan.id = random_id();
            }
        } else if data.plans.contains_key(&plan.id) {
            return Err(StoreError::Conflict(format!(
                "a usage plan with id {:?} exists",
                plan.id
            )));
        }
        self.inner.put_plan(&mut data, plan.clone())?;
        self.inner.changed();
        Ok(plan)
    }

    /// Stores `plan` under its id, replacing any plan with that id and keeping its keys. Refused
    /// with [`StoreError::Conflict`] if a key of the plan would then be in two plans on a stage.
    #[cfg(test)]
    pub(crate) fn put_usage_plan(&self, plan: UsagePlan) -> Result<(), StoreError> {
        let mut data = self.inner.data.lock();
        self.inner.put_plan(&mut data, plan)?;
        self.inner.changed();
        Ok(())
    }

    /// The plan with this id.
    pub(crate) fn plan(&self, id: &str) -> Option<UsagePlan> {
        self.inner.data.lock().plans.get(id).map(|p| p.plan.clone())
    }

    /// Changes a plan with AWS's patch operations; see [`Management::update_usage_plan`](super::Management::update_usage_plan).
    pub(crate) fn patch_plan(
        &self,
        id: &str,
        ops: &[PatchOperation],
    ) -> Result<UsagePlan, StoreError> {
        let mut data = self.inner.data.lock();
        let old = data
            .plans
            .get(id)
            .ok_or_else(|| not_found("usage plan", id))?;
        let plan = patch::apply_to_plan(&old.plan, ops)?;
        self.inner.put_plan(&mut data, plan.clone())?;
        self.inner.changed();
        Ok(plan)
    }

    /// Deletes a plan; its keys stay, without it.
    pub(crate) fn remove_plan(&self, id: &str) -> Result<(), StoreError> {
        let mut data = self.inner.data.lock();
        data.plans
            .remove(id)
            .ok_or_else(|| not_found("usage plan", id))?;
        data.plan_keys.remove(id);
        let affected = data.combos_with(id);
        let mut swaps = Vec::with_capacity(affected.len());
        for old in affected {
            data.forget(&old.ids);
            let rest = old.ids.iter().filter(|p| ***p != *id).cloned().collect();
            let new = data.intern(rest);
            swaps.push((old, new));
        }
        self.inner.relink(&mut data, &swaps);
        self.inner.changed();
        Ok(())
    }

    /// Links a key to a plan. Refused with [`StoreError::Conflict`] if the key is already in
    /// another plan on one of the plan's stages.
    pub(crate) fn link(&self, plan_id: &str, key_id: &str) -> Result<(), StoreError> {
        let mut data = self.inner.data.lock();
        self.inner.link_key(&mut data, plan_id, key_id)?;
        self.inner.changed();
        Ok(())
    }

    /// Unlinks a key from a plan.
    pub(crate) fn unlink(&self, plan_id: &str, key_id: &str) -> Result<(), StoreError> {
        let mut data = self.inner.data.lock();
        let rest: Option<Vec<Box<str>>> = data
            .keys
            .get(key_id)
            .and_then(|cold| cold.plans.as_deref())
            .filter(|p| p.has(plan_id))
            .map(|p| p.ids.iter().filter(|p| ***p != *plan_id).cloned().collect());
        let Some(rest) = rest else {
            return Err(StoreError::NotFound {
                kind: "usage plan key",
                id: format!("{plan_id}:{key_id}"),
            });
        };
        let new = data.intern(rest);
        data.unlink(plan_id, key_id);
        self.inner.set_plans(&mut data, key_id, new);
        self.inner.changed();
        Ok(())
    }

    /// Adds the tags `add` to a key or plan and removes those keyed `remove` (unknown ones are
    /// ignored); the key or plan as it now is. Each tag added is checked
    /// ([`tags::check_tag`](crate::tags::check_tag)), and their number if any is added.
    pub(crate) fn retag(
        &self,
        resource: &Resource,
        add: BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<Retagged, StoreError> {
        for (k, v) in &add {
            crate::tags::check_tag(k, v)?;
        }
        let change = |tags: &mut BTreeMap<String, String>| -> Result<(), StoreError> {
            for k in remove {
                tags.remove(k);
            }
            let adds = !add.is_empty();
            tags.extend(add);
            if adds && tags.len() > crate::tags::MAX_TAGS {
                return Err(crate::tags::check(tags)
                    .expect_err("more than MAX_TAGS")
                    .into());
            }
            Ok(())
        };
        let mut data = self.inner.data.lock();
        let out = match resource {
            Resource::ApiKey(id) => {
                let cold = data.keys.get(id.as_str());
                let mut key = cold.ok_or_else(|| not_found("API key", id))?.api_key(id);
                change(&mut key.tags)?;
                self.inner.put_key(&mut data, &key)?;
                Retagged::Key(key)
            }
            Resource::UsagePlan(id) => {
                let rec = data.plans.get(id.as_str());
                let mut plan = rec.ok_or_else(|| not_found("usage plan", id))?.plan.clone();
                change(&mut plan.tags)?;
                self.inner.put_plan(&mut data, plan.clone())?;
                Retagged::Plan(plan)
            }
        };
        self.inner.changed();
        Ok(out)
    }

    /// The ids of the plans the key `id` is in, in the order it was linked (none for an unknown
    /// key): what a store that writes through keeps of a key's links.
    #[cfg(feature = "sqlite")]
    pub(crate) fn key_plan_ids(&self, id: &str) -> Vec<String> {
        let data = self.inner.data.lock();
        data.keys
            .get(id)
            .map(|cold| {
                plan_ids(&cold.plans)
                    .iter()
                    .map(|p| p.to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The grant for `value` on `stage`: the index's shard is read, and let go before this
    /// returns.
    #[inline]
    pub(crate) fn grant(&self, value: &str, stage: &StageRef) -> Option<KeyGrant> {
        self.inner.index.get(value).map(|hot| hot.grant(stage))
    }
}

impl KeyStore for MemoryStore {
    type Lookup = std::future::Ready<Result<Option<KeyGrant>, StoreError>>;

    #[inline]
    fn lookup(&self, value: &str, stage: &StageRef) -> Self::Lookup {
        std::future::ready(Ok(self.grant(value, stage)))
    }

    /// Counts changes: bumped once each change is in place.
    fn version(&self) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        std::future::ready(Ok(Some(self.inner.version.load(Ordering::Acquire))))
    }
}
