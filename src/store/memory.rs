//! [`MemoryStore`]: keys, plans and their links in process memory; also the management API.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::Config;
use crate::error::{ConfigError, StoreError};
use crate::model::{random_id, ApiKey, ApiKeyValue, StageRef, UsagePlan, MAX_KEY_LEN};
use crate::patch::{self, PatchOperation};
use crate::plan::StagePlan;
use crate::shard::ShardedTable;

use super::{KeyGrant, KeyRef, KeyStore, MeterSlot};

/// What to create a key with; see [`MemoryStore::create_api_key`].
#[derive(Clone, Debug, Default)]
pub struct NewApiKey {
    /// A name.
    pub name: String,
    /// A description.
    pub description: Option<String>,
    /// Whether the key starts enabled (`None`: enabled).
    pub enabled: Option<bool>,
    /// The secret value; `None` generates 40 characters from the CSPRNG.
    pub value: Option<ApiKeyValue>,
    /// An AWS Marketplace customer id.
    pub customer_id: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

impl NewApiKey {
    /// An enabled key with this name and a generated value.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// A key's plans, in the order the key was linked; one plan, the usual case, without a pointer
/// to follow.
enum Plans {
    One(Arc<StagePlan>),
    // A thin pointer keeps `Plans` at 16 bytes; a key with several plans is rare.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Arc<StagePlan>>>),
}

impl Plans {
    fn new(mut plans: Vec<Arc<StagePlan>>) -> Self {
        if plans.len() == 1 {
            Plans::One(plans.pop().expect("one plan"))
        } else {
            Plans::Many(Box::new(plans))
        }
    }

    #[inline]
    fn as_slice(&self) -> &[Arc<StagePlan>] {
        match self {
            Plans::One(p) => std::slice::from_ref(p),
            Plans::Many(ps) => ps,
        }
    }
}

/// One entry of the lookup index: what a request needs of a key, found by its value, in one
/// allocation with the value inline (`V` is `[u8; N]` when built, `[u8]` in the index).
struct Entry<V: ?Sized = [u8]> {
    key_id: Arc<str>,
    /// Where the meter keeps its way to this key's state.
    meter_slot: MeterSlot,
    /// The key's plans, each compiled for each stage it lists.
    plans: Plans,
    enabled: bool,
    len: u8,
    /// The value, then zeros.
    value: V,
}

/// Entries by the length of their value: a few sizes, so that an entry wastes little.
type Boxed = Box<Entry>;

fn sized<const N: usize>(key_id: Arc<str>, plans: Plans, enabled: bool, value: &[u8]) -> Boxed {
    let mut buf = [0u8; N];
    buf[..value.len()].copy_from_slice(value);
    Box::new(Entry {
        meter_slot: MeterSlot::new(&key_id),
        key_id,
        plans,
        enabled,
        len: u8::try_from(value.len()).unwrap_or(u8::MAX),
        value: buf,
    })
}

impl Entry {
    /// An entry, or `None` for a value longer than [`MAX_KEY_LEN`] (which no [`ApiKeyValue`]
    /// is).
    fn new(key_id: Arc<str>, plans: Plans, enabled: bool, value: &str) -> Option<Boxed> {
        let v = value.as_bytes();
        Some(match v.len() {
            0..=24 => sized::<24>(key_id, plans, enabled, v),
            25..=32 => sized::<32>(key_id, plans, enabled, v),
            33..=40 => sized::<40>(key_id, plans, enabled, v),
            41..=48 => sized::<48>(key_id, plans, enabled, v),
            49..=64 => sized::<64>(key_id, plans, enabled, v),
            65..=96 => sized::<96>(key_id, plans, enabled, v),
            97..=MAX_KEY_LEN => sized::<MAX_KEY_LEN>(key_id, plans, enabled, v),
            _ => return None,
        })
    }

    #[inline]
    fn value(&self) -> &[u8] {
        &self.value[..usize::from(self.len)]
    }

    #[inline]
    fn grant(&self, stage: &StageRef) -> KeyRef<'_> {
        KeyRef {
            key_id: &self.key_id,
            enabled: self.enabled,
            plan: self
                .plans
                .as_slice()
                .iter()
                .find(|p| stage.matches(p.api_id(), p.stage())),
            meter_slot: Some(&self.meter_slot),
        }
    }
}

/// The canonical data, changed only under the management lock.
#[derive(Default)]
struct Data {
    keys: BTreeMap<String, ApiKey>,
    plans: BTreeMap<String, UsagePlan>,
    compiled: HashMap<String, Vec<Arc<StagePlan>>>,
    /// plan id -> key ids
    links: BTreeMap<String, BTreeSet<String>>,
    /// key id -> plan ids, in the order they were linked
    key_plans: HashMap<String, Vec<String>>,
}

struct Inner {
    data: Mutex<Data>,
    index: ShardedTable<Boxed>,
}

/// The embedded [`KeyStore`]: keys, usage plans and their links in memory, with AWS's management
/// operations.
///
/// Clones share the same data. Every change applies to the next request of every layer built on
/// the store, without rebuilding anything. A failed change changes nothing. Lookups take no global
/// lock: the index is sharded, and changes take the management lock only.
///
/// See the [module example](crate::store).
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

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                data: Mutex::new(Data::default()),
                index: ShardedTable::default(),
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
    pub fn replace_all(&self, config: Config) -> Result<(), ConfigError> {
        config.validate()?;
        let mut data = Data::default();
        for key in config.api_keys {
            data.keys.insert(key.id.clone(), key);
        }
        for plan in config.usage_plans {
            data.compiled.insert(
                plan.id.clone(),
                StagePlan::all(&plan).into_iter().map(Arc::new).collect(),
            );
            data.plans.insert(plan.id.clone(), plan);
        }
        for (plan_id, key_ids) in config.usage_plan_keys {
            for key_id in key_ids {
                data.key_plans
                    .entry(key_id.clone())
                    .or_default()
                    .push(plan_id.clone());
                data.links
                    .entry(plan_id.clone())
                    .or_default()
                    .insert(key_id);
            }
        }
        let mut guard = self.inner.data.lock();
        // Put every new entry in before taking stale ones out, so that no request in between is
        // refused for a key that is in both the old and the new configuration.
        for key in data.keys.values() {
            self.index_key(&data, key);
        }
        let values: std::collections::HashSet<&str> =
            data.keys.values().map(|k| k.value.expose()).collect();
        self.inner
            .index
            .retain(|e| std::str::from_utf8(e.value()).is_ok_and(|v| values.contains(v)));
        *guard = data;
        Ok(())
    }

    /// Everything the store holds, in AWS's shapes (keys with their values).
    pub fn to_config(&self) -> Config {
        let data = self.inner.data.lock();
        Config {
            api_keys: data.keys.values().cloned().collect(),
            usage_plans: data.plans.values().cloned().collect(),
            usage_plan_keys: data
                .links
                .iter()
                .map(|(p, ks)| (p.clone(), ks.iter().cloned().collect()))
                .collect(),
        }
    }

    /// Creates a key (AWS's `create-api-key`), with a generated id, and a generated value unless
    /// one is given.
    pub fn create_api_key(&self, new: NewApiKey) -> Result<ApiKey, StoreError> {
        let mut key = ApiKey::new(
            random_id(),
            new.name,
            new.value.unwrap_or_else(ApiKeyValue::generate),
        );
        key.description = new.description;
        key.enabled = new.enabled.unwrap_or(true);
        key.customer_id = new.customer_id;
        key.tags = new.tags;
        key.created_date = Some(unix_now());
        key.last_updated_date = key.created_date;
        let mut data = self.inner.data.lock();
        while data.keys.contains_key(&key.id) {
            key.id = random_id();
        }
        self.put_key_locked(&mut data, key.clone())?;
        Ok(key)
    }

    /// Stores `key` under its id, replacing any key with that id (an import). Refused if another
    /// key has the same value.
    pub fn put_api_key(&self, key: ApiKey) -> Result<(), StoreError> {
        let mut data = self.inner.data.lock();
        self.put_key_locked(&mut data, key)
    }

    fn put_key_locked(&self, data: &mut Data, key: ApiKey) -> Result<(), StoreError> {
        key.validate()?;
        let hash = self.inner.index.hash(key.value.expose());
        let holder = self.inner.index.read(
            hash,
            |e| e.value() == key.value.expose().as_bytes(),
            |e| e.map(|e| e.key_id.to_string()),
        );
        if let Some(other) = holder.filter(|other| *other != key.id) {
            return Err(StoreError::Conflict(format!(
                "API key {other:?} already has this value; values must be unique"
            )));
        }
        if let Some(old) = data.keys.get(&key.id) {
            if old.value != key.value {
                self.unindex_value(old.value.expose());
            }
        }
        self.index_key(data, &key);
        data.keys.insert(key.id.clone(), key);
        Ok(())
    }

    /// The key with this id.
    pub fn api_key(&self, id: &str) -> Option<ApiKey> {
        self.inner.data.lock().keys.get(id).cloned()
    }

    /// Every key, by id.
    pub fn api_keys(&self) -> Vec<ApiKey> {
        self.inner.data.lock().keys.values().cloned().collect()
    }

    /// Changes a key with AWS's patch operations (`/name`, `/description`, `/enabled`,
    /// `/customerId`); see [`patch`](crate::patch).
    pub fn update_api_key(&self, id: &str, ops: &[PatchOperation]) -> Result<ApiKey, StoreError> {
        let mut data = self.inner.data.lock();
        let old = data.keys.get(id).ok_or_else(|| not_found("API key", id))?;
        let mut key = patch::apply_to_key(old, ops)?;
        key.last_updated_date = Some(unix_now());
        self.put_key_locked(&mut data, key.clone())?;
        Ok(key)
    }

    /// Deletes a key and its links to plans.
    pub fn delete_api_key(&self, id: &str) -> Result<(), StoreError> {
        let mut data = self.inner.data.lock();
        let key = data
            .keys
            .remove(id)
            .ok_or_else(|| not_found("API key", id))?;
        self.unindex_value(key.value.expose());
        for plan in data.key_plans.remove(id).unwrap_or_default() {
            if let Some(ks) = data.links.get_mut(&plan) {
                ks.remove(id);
            }
        }
        Ok(())
    }

    /// Creates a plan (AWS's `create-usage-plan`); an empty id is replaced by a generated one.
    /// Refused if a plan with the id exists.
    pub fn create_usage_plan(&self, mut plan: UsagePlan) -> Result<UsagePlan, StoreError> {
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
        self.put_plan_locked(&mut data, plan.clone())?;
        Ok(plan)
    }

    /// Stores `plan` under its id, replacing any plan with that id and keeping its keys.
    pub fn put_usage_plan(&self, plan: UsagePlan) -> Result<(), StoreError> {
        let mut data = self.inner.data.lock();
        self.put_plan_locked(&mut data, plan)
    }

    fn put_plan_locked(&self, data: &mut Data, plan: UsagePlan) -> Result<(), StoreError> {
        plan.validate()?;
        if let Some(keys) = data.links.get(&plan.id) {
            for key_id in keys {
                if let Some(c) = stage_conflict(data, key_id, &plan) {
                    return Err(c);
                }
            }
        }
        let id = plan.id.clone();
        data.compiled.insert(
            id.clone(),
            StagePlan::all(&plan).into_iter().map(Arc::new).collect(),
        );
        data.plans.insert(id.clone(), plan);
        self.reindex_plan_keys(data, &id);
        Ok(())
    }

    /// The plan with this id.
    pub fn usage_plan(&self, id: &str) -> Option<UsagePlan> {
        self.inner.data.lock().plans.get(id).cloned()
    }

    /// Every plan, by id.
    pub fn usage_plans(&self) -> Vec<UsagePlan> {
        self.inner.data.lock().plans.values().cloned().collect()
    }

    /// Changes a plan with AWS's patch operations (throttle, quota, stages, per-method
    /// throttles); see [`patch`](crate::patch). All or nothing.
    pub fn update_usage_plan(
        &self,
        id: &str,
        ops: &[PatchOperation],
    ) -> Result<UsagePlan, StoreError> {
        let mut data = self.inner.data.lock();
        let old = data
            .plans
            .get(id)
            .ok_or_else(|| not_found("usage plan", id))?;
        let plan = patch::apply_to_plan(old, ops)?;
        self.put_plan_locked(&mut data, plan.clone())?;
        Ok(plan)
    }

    /// Deletes a plan; its keys stay, without it.
    pub fn delete_usage_plan(&self, id: &str) -> Result<(), StoreError> {
        let mut data = self.inner.data.lock();
        data.plans
            .remove(id)
            .ok_or_else(|| not_found("usage plan", id))?;
        data.compiled.remove(id);
        let keys = data.links.remove(id).unwrap_or_default();
        for key_id in &keys {
            if let Some(ps) = data.key_plans.get_mut(key_id) {
                ps.retain(|p| p != id);
            }
            if let Some(key) = data.keys.get(key_id) {
                self.index_key(&data, key);
            }
        }
        Ok(())
    }

    /// Links a key to a plan (AWS's `create-usage-plan-key`). Refused with
    /// [`StoreError::Conflict`] if the key is already in another plan on one of the plan's stages.
    pub fn create_usage_plan_key(&self, plan_id: &str, key_id: &str) -> Result<(), StoreError> {
        let mut data = self.inner.data.lock();
        let plan = data
            .plans
            .get(plan_id)
            .ok_or_else(|| not_found("usage plan", plan_id))?;
        if !data.keys.contains_key(key_id) {
            return Err(not_found("API key", key_id));
        }
        if data
            .links
            .get(plan_id)
            .is_some_and(|ks| ks.contains(key_id))
        {
            return Err(StoreError::Conflict(format!(
                "API key {key_id:?} is already in usage plan {plan_id:?}"
            )));
        }
        if let Some(c) = stage_conflict(&data, key_id, plan) {
            return Err(c);
        }
        data.links
            .entry(plan_id.to_owned())
            .or_default()
            .insert(key_id.to_owned());
        data.key_plans
            .entry(key_id.to_owned())
            .or_default()
            .push(plan_id.to_owned());
        if let Some(key) = data.keys.get(key_id) {
            self.index_key(&data, key);
        }
        Ok(())
    }

    /// Unlinks a key from a plan.
    pub fn delete_usage_plan_key(&self, plan_id: &str, key_id: &str) -> Result<(), StoreError> {
        let mut data = self.inner.data.lock();
        let removed = data
            .links
            .get_mut(plan_id)
            .is_some_and(|ks| ks.remove(key_id));
        if !removed {
            return Err(StoreError::NotFound {
                kind: "usage plan key",
                id: format!("{plan_id}:{key_id}"),
            });
        }
        if let Some(ps) = data.key_plans.get_mut(key_id) {
            ps.retain(|p| p != plan_id);
        }
        if let Some(key) = data.keys.get(key_id) {
            self.index_key(&data, key);
        }
        Ok(())
    }

    /// The keys linked to a plan (AWS's `get-usage-plan-keys`).
    pub fn usage_plan_keys(&self, plan_id: &str) -> Result<Vec<ApiKey>, StoreError> {
        let data = self.inner.data.lock();
        if !data.plans.contains_key(plan_id) {
            return Err(not_found("usage plan", plan_id));
        }
        Ok(data
            .links
            .get(plan_id)
            .into_iter()
            .flatten()
            .filter_map(|k| data.keys.get(k).cloned())
            .collect())
    }

    fn index_key(&self, data: &Data, key: &ApiKey) {
        let plans: Vec<Arc<StagePlan>> = data
            .key_plans
            .get(&key.id)
            .into_iter()
            .flatten()
            .filter_map(|p| data.compiled.get(p))
            .flatten()
            .cloned()
            .collect();
        let value = key.value.expose();
        let hash = self.inner.index.hash(value);
        // The key's id is shared with the entry it replaces, if any.
        let key_id = self
            .inner
            .index
            .read(
                hash,
                |e| e.value() == value.as_bytes(),
                |e| e.filter(|e| *e.key_id == *key.id).map(|e| e.key_id.clone()),
            )
            .unwrap_or_else(|| key.id.as_str().into());
        if let Some(entry) = Entry::new(key_id, Plans::new(plans), key.enabled, value) {
            self.inner
                .index
                .insert(hash, |e| e.value() == value.as_bytes(), entry);
        }
    }

    fn unindex_value(&self, value: &str) {
        let hash = self.inner.index.hash(value);
        self.inner
            .index
            .remove(hash, |e| e.value() == value.as_bytes());
    }

    fn reindex_plan_keys(&self, data: &Data, plan_id: &str) {
        for key_id in data.links.get(plan_id).into_iter().flatten() {
            if let Some(key) = data.keys.get(key_id) {
                self.index_key(data, key);
            }
        }
    }
}

/// The conflict if `key_id`, linked to `plan`, would be in two plans on one stage.
fn stage_conflict(data: &Data, key_id: &str, plan: &UsagePlan) -> Option<StoreError> {
    for other_id in data.key_plans.get(key_id).into_iter().flatten() {
        if *other_id == plan.id {
            continue;
        }
        let Some(other) = data.plans.get(other_id) else {
            continue;
        };
        for st in &plan.api_stages {
            if other
                .api_stages
                .iter()
                .any(|o| o.api_id == st.api_id && o.stage == st.stage)
            {
                return Some(StoreError::Conflict(format!(
                    "API key {key_id:?} is in usage plan {other_id:?}, which also lists stage \
                     {}:{}; a key may be in only one plan per stage",
                    st.api_id, st.stage
                )));
            }
        }
    }
    None
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl KeyStore for MemoryStore {
    fn lookup(
        &self,
        value: &str,
        stage: &StageRef,
    ) -> impl Future<Output = Result<Option<KeyGrant>, StoreError>> + Send {
        let grant = self
            .lookup_now(value, stage, |g| {
                g.map(|g| KeyGrant {
                    key_id: g.key_id.clone(),
                    enabled: g.enabled,
                    plan: g.plan.cloned(),
                })
            })
            .unwrap_or(None);
        std::future::ready(Ok(grant))
    }

    #[inline]
    fn lookup_now<F, R>(&self, value: &str, stage: &StageRef, f: F) -> Result<R, F>
    where
        F: FnOnce(Option<KeyRef<'_>>) -> R,
    {
        let index = &self.inner.index;
        let hash = index.hash(value);
        Ok(index.read(
            hash,
            |e| e.value() == value.as_bytes(),
            |e| f(e.map(|e| e.grant(stage))),
        ))
    }

    fn plans_now(&self, stage: &StageRef) -> Option<Vec<Arc<StagePlan>>> {
        let data = self.inner.data.lock();
        Some(
            data.compiled
                .values()
                .flatten()
                .filter(|p| stage.matches(p.api_id(), p.stage()))
                .cloned()
                .collect(),
        )
    }
}
