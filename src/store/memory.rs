//! [`MemoryStore`]: keys, plans and their links in process memory; also the management API.
//!
//! Each key is one record, found by its value (the lookup index, read by every request) and by
//! its id (a table of two 32-bit hashes, for the management calls). The record holds what a
//! request reads next to the value, and what only management reads before it; a key's links are
//! its list of plans, shared by every key linked to the same plans.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use hashbrown::hash_table::HashTable;
use parking_lot::Mutex;

use crate::config::Config;
use crate::error::{ConfigError, StoreError};
use crate::model::{random_id, ApiKey, ApiKeyValue, StageRef, UsagePlan};
use crate::patch::{self, PatchOperation};
use crate::plan::StagePlan;
use crate::shard::{widen, Keyed, ShardedTable};

use super::{KeyGrant, KeyStore};

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

/// The plans a key is linked to, in the order it was linked: one value shared by every key linked
/// to the same plans in the same order.
struct KeyPlans {
    /// Each plan compiled for each stage it lists, in link order: what a request reads.
    compiled: Box<[Arc<StagePlan>]>,
    /// The plans' ids, in link order.
    ids: Box<[Box<str>]>,
}

impl KeyPlans {
    fn has(&self, plan_id: &str) -> bool {
        self.ids.iter().any(|p| **p == *plan_id)
    }
}

/// The plan ids of a key's plans (none for `None`).
fn plan_ids(plans: &Option<Arc<KeyPlans>>) -> &[Box<str>] {
    plans.as_deref().map_or(&[], |p| &p.ids)
}

/// What few keys have: kept behind one pointer.
#[derive(Clone, Default)]
struct Rare {
    description: Option<String>,
    customer_id: Option<String>,
    tags: BTreeMap<String, String>,
    /// The name, if too long to sit in the entry.
    name: Option<String>,
}

/// [`Entry::dates`]: `created_date` is set.
const CREATED: u8 = 1;
/// [`Entry::dates`]: `last_updated_date` is set.
const UPDATED: u8 = 2;

/// A key: one allocation, found by its value in the lookup index (`T` is `[u8; N]` when built,
/// `[u8]` in the index).
///
/// The fields are laid out in this order (`repr(C)`): first those only management reads, then
/// those a request reads, ending where the value starts, so that a request touches one run of
/// 28 bytes plus the value. The tail holds the value, then the name, then zeros up to its size
/// class.
#[repr(C)]
struct Entry<T: ?Sized = [u8]> {
    // Management only.
    key_id: Arc<str>,
    created_date: i64,
    last_updated_date: i64,
    rare: Option<Box<Rare>>,
    // Read by requests.
    plans: Option<Arc<KeyPlans>>,
    enabled: bool,
    /// The value's length.
    len: u8,
    /// The name's length, after the value (0 when the name is in `rare`).
    name_len: u8,
    /// [`CREATED`] | [`UPDATED`].
    dates: u8,
    /// The value, then the name, then zeros.
    tail: T,
}

/// An entry's fields but its tail.
struct Head {
    key_id: Arc<str>,
    created_date: i64,
    last_updated_date: i64,
    rare: Option<Box<Rare>>,
    plans: Option<Arc<KeyPlans>>,
    enabled: bool,
    len: u8,
    name_len: u8,
    dates: u8,
}

type Boxed = Box<Entry>;

/// An entry whose tail is `N` bytes.
fn sized<const N: usize>(h: Head, tail: &[u8]) -> Boxed {
    let mut buf = [0u8; N];
    buf[..tail.len()].copy_from_slice(tail);
    Box::new(Entry {
        key_id: h.key_id,
        created_date: h.created_date,
        last_updated_date: h.last_updated_date,
        rare: h.rare,
        plans: h.plans,
        enabled: h.enabled,
        len: h.len,
        name_len: h.name_len,
        dates: h.dates,
        tail: buf,
    })
}

/// The longest tail: a value of at most 128 bytes and a name of at least 132 fit.
const MAX_TAIL: usize = 260;

/// Builds an entry with the smallest tail of the sizes listed that holds `$tail`. The sizes are
/// 4 more than multiples of 8: the fields before the tail take 68 bytes, so that an entry of each
/// size has no padding.
macro_rules! by_tail_size {
    ($head:expr, $tail:expr; $($n:literal)*) => {
        match $tail.len() {
            $(len if len <= $n => sized::<$n>($head, $tail),)*
            _ => unreachable!("a tail is at most MAX_TAIL bytes"),
        }
    };
}

impl Entry {
    /// The entry for `key`, with this id and these plans.
    fn new(key: &ApiKey, key_id: Arc<str>, plans: Option<Arc<KeyPlans>>) -> Boxed {
        let value = key.value.expose().as_bytes();
        let name = key.name.as_bytes();
        let name_inline =
            value.len() + name.len() <= MAX_TAIL && name.len() <= usize::from(u8::MAX);
        let rare = (key.description.is_some()
            || key.customer_id.is_some()
            || !key.tags.is_empty()
            || !name_inline)
            .then(|| {
                Box::new(Rare {
                    description: key.description.clone(),
                    customer_id: key.customer_id.clone(),
                    tags: key.tags.clone(),
                    name: (!name_inline).then(|| key.name.clone()),
                })
            });
        let mut buf = [0u8; MAX_TAIL];
        buf[..value.len()].copy_from_slice(value);
        let mut end = value.len();
        if name_inline {
            buf[end..end + name.len()].copy_from_slice(name);
            end += name.len();
        }
        let head = Head {
            key_id,
            created_date: key.created_date.unwrap_or(0),
            last_updated_date: key.last_updated_date.unwrap_or(0),
            rare,
            plans,
            enabled: key.enabled,
            // An `ApiKeyValue` has at most 128 bytes.
            len: u8::try_from(value.len()).unwrap_or(u8::MAX),
            name_len: if name_inline {
                u8::try_from(name.len()).unwrap_or(u8::MAX)
            } else {
                0
            },
            dates: if key.created_date.is_some() {
                CREATED
            } else {
                0
            } | if key.last_updated_date.is_some() {
                UPDATED
            } else {
                0
            },
        };
        by_tail_size!(head, &buf[..end];
            20 28 36 44 52 60 68 76 84 92 100 108 116 124 132 140 148 156 164 172 180 188 196
            204 212 220 228 236 244 252 260)
    }

    #[inline]
    fn value(&self) -> &[u8] {
        &self.tail[..usize::from(self.len)]
    }

    fn name(&self) -> &str {
        match self.rare.as_ref().and_then(|r| r.name.as_deref()) {
            Some(name) => name,
            None => {
                let start = usize::from(self.len);
                std::str::from_utf8(&self.tail[start..start + usize::from(self.name_len)])
                    .expect("a name is stored from a String")
            }
        }
    }

    /// The key, as it was stored.
    fn api_key(&self) -> ApiKey {
        let value = std::str::from_utf8(self.value()).expect("a key value is ASCII");
        let rare = self.rare.as_deref();
        ApiKey {
            id: self.key_id.to_string(),
            value: ApiKeyValue::new(value).expect("a stored value was checked"),
            name: self.name().to_owned(),
            description: rare.and_then(|r| r.description.clone()),
            enabled: self.enabled,
            created_date: (self.dates & CREATED != 0).then_some(self.created_date),
            last_updated_date: (self.dates & UPDATED != 0).then_some(self.last_updated_date),
            customer_id: rare.and_then(|r| r.customer_id.clone()),
            tags: rare.map(|r| r.tags.clone()).unwrap_or_default(),
        }
    }

    #[inline]
    fn grant(&self, stage: &StageRef) -> KeyGrant {
        KeyGrant {
            key_id: self.key_id.clone(),
            enabled: self.enabled,
            plan: self.plans.as_deref().and_then(|p| {
                p.compiled
                    .iter()
                    .find(|p| stage.matches(p.api_id(), p.stage()))
                    .cloned()
            }),
        }
    }
}

impl Keyed for Boxed {
    #[inline]
    fn key(&self) -> &[u8] {
        self.value()
    }
}

/// A key in the table by id: the 32-bit hashes of its id and of its value, which find its entry
/// in the index. Two keys whose id hashes and value hashes are both equal have equal `IdRef`s,
/// and either one then serves both.
#[derive(Clone, Copy, PartialEq, Eq)]
struct IdRef {
    id: u32,
    value: u32,
}

/// A plan as the store holds it.
struct PlanRec {
    plan: UsagePlan,
    /// The plan compiled for each stage it lists.
    compiled: Vec<Arc<StagePlan>>,
    /// Whether `to_config` lists the plan in `usage_plan_keys`, even without keys: it was listed
    /// there when loaded, or a key was linked to it since.
    listed: bool,
}

/// The canonical data but the keys (which are in the index), changed only under the management
/// lock.
#[derive(Default)]
struct Data {
    /// Every key, by id.
    ids: HashTable<IdRef>,
    plans: BTreeMap<String, PlanRec>,
    /// The plan lists keys have, by their plan ids; an unused one is dropped now and then.
    combos: HashMap<Box<[Box<str>]>, Arc<KeyPlans>>,
    /// How many combos there may be before unused ones are dropped.
    combos_gc: usize,
}

impl Data {
    /// The shared value for keys linked to `ids` in this order; `None` for no plans.
    fn intern(&mut self, ids: Vec<Box<str>>) -> Option<Arc<KeyPlans>> {
        if ids.is_empty() {
            return None;
        }
        if let Some(p) = self.combos.get(&ids[..]) {
            return Some(p.clone());
        }
        if self.combos.len() >= self.combos_gc {
            self.drop_unused_combos();
            self.combos_gc = 2 * self.combos.len() + 16;
        }
        let ids: Box<[Box<str>]> = ids.into();
        let p = Arc::new(KeyPlans {
            compiled: self.compile(&ids),
            ids: ids.clone(),
        });
        self.combos.insert(ids, p.clone());
        Some(p)
    }

    fn compile(&self, ids: &[Box<str>]) -> Box<[Arc<StagePlan>]> {
        ids.iter()
            .filter_map(|id| self.plans.get(&**id))
            .flat_map(|p| p.compiled.iter().cloned())
            .collect()
    }

    /// Drops the plan lists no key holds.
    fn drop_unused_combos(&mut self) {
        self.combos.retain(|_, p| Arc::strong_count(p) > 1);
    }

    /// The plan lists in use that hold `plan_id`.
    fn combos_with(&mut self, plan_id: &str) -> Vec<Arc<KeyPlans>> {
        self.drop_unused_combos();
        self.combos
            .values()
            .filter(|p| p.has(plan_id))
            .cloned()
            .collect()
    }
}

struct Inner {
    data: Mutex<Data>,
    index: ShardedTable<Boxed>,
}

impl Inner {
    fn id_hash(&self, id: &str) -> u32 {
        self.index.hash32(id.as_bytes())
    }

    /// Where the key with this id is.
    fn find(&self, data: &Data, id: &str) -> Option<IdRef> {
        let h = self.id_hash(id);
        data.ids
            .find(widen(h), |r| r.id == h && self.holds(*r, id))
            .copied()
    }

    /// Whether `r` leads to the key with this id.
    fn holds(&self, r: IdRef, id: &str) -> bool {
        self.index
            .read(widen(r.value), |e| *e.key_id == *id, |e| e.is_some())
    }

    /// Calls `f` on the entry of the key with this id, found at `r`.
    fn read_key<R>(&self, r: IdRef, id: &str, f: impl FnOnce(&Entry) -> R) -> R {
        self.index.read(
            widen(r.value),
            |e| *e.key_id == *id,
            |e| f(e.expect("a key in the id table is in the index")),
        )
    }

    /// Changes the plans of the key with this id, found at `r`.
    fn set_plans(&self, r: IdRef, id: &str, plans: Option<Arc<KeyPlans>>) {
        self.index
            .update(widen(r.value), |e| *e.key_id == *id, |e| e.plans = plans);
    }

    /// Gives each key holding one of the first plan lists the second.
    fn relink(&self, swaps: &[(Arc<KeyPlans>, Option<Arc<KeyPlans>>)]) {
        if swaps.is_empty() {
            return;
        }
        self.index.for_each_mut(|e| {
            let Some(old) = &e.plans else { return };
            if let Some((_, new)) = swaps.iter().find(|(o, _)| Arc::ptr_eq(o, old)) {
                e.plans = new.clone();
            }
        });
    }

    /// Every key holding `plan_id`, by id.
    fn keys_of(&self, plan_id: &str) -> Vec<ApiKey> {
        let mut keys = Vec::new();
        self.index.for_each(|e| {
            if e.plans.as_deref().is_some_and(|p| p.has(plan_id)) {
                keys.push(e.api_key());
            }
        });
        keys.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        keys
    }
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
            .field("api_keys", &data.ids.len())
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

fn compile(plan: &UsagePlan) -> Vec<Arc<StagePlan>> {
    StagePlan::all(plan).into_iter().map(Arc::new).collect()
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
        let inner = &*self.inner;
        let mut data = Data::default();
        for plan in config.usage_plans {
            data.plans.insert(
                plan.id.clone(),
                PlanRec {
                    compiled: compile(&plan),
                    plan,
                    listed: false,
                },
            );
        }
        // key id -> plan ids, in the order of the plans' ids.
        let mut key_plans: HashMap<String, Vec<Box<str>>> = HashMap::new();
        for (plan_id, key_ids) in config.usage_plan_keys {
            if let Some(p) = data.plans.get_mut(&plan_id) {
                p.listed = true;
            }
            for key_id in key_ids {
                key_plans
                    .entry(key_id)
                    .or_default()
                    .push(plan_id.as_str().into());
            }
        }
        let mut guard = inner.data.lock();
        // Put every new entry in before taking stale ones out, so that no request in between is
        // refused for a key that is in both the old and the new configuration.
        for key in &config.api_keys {
            let plans = data.intern(key_plans.remove(&key.id).unwrap_or_default());
            let entry = Entry::new(key, key.id.as_str().into(), plans);
            let value = key.value.expose().as_bytes();
            let vh = inner.index.hash32(value);
            inner.index.insert(widen(vh), |e| e.value() == value, entry);
            let r = IdRef {
                id: inner.id_hash(&key.id),
                value: vh,
            };
            data.ids.insert_unique(widen(r.id), r, |r| widen(r.id));
        }
        let values: HashSet<&[u8]> = config
            .api_keys
            .iter()
            .map(|k| k.value.expose().as_bytes())
            .collect();
        inner.index.retain(|e| values.contains(e.value()));
        *guard = data;
        Ok(())
    }

    /// Everything the store holds, in AWS's shapes (keys with their values).
    pub fn to_config(&self) -> Config {
        let data = self.inner.data.lock();
        let mut api_keys = Vec::with_capacity(data.ids.len());
        let mut usage_plan_keys: BTreeMap<String, Vec<String>> = data
            .plans
            .iter()
            .filter(|(_, p)| p.listed)
            .map(|(id, _)| (id.clone(), Vec::new()))
            .collect();
        self.inner.index.for_each(|e| {
            for plan_id in plan_ids(&e.plans) {
                if let Some(keys) = usage_plan_keys.get_mut(&**plan_id) {
                    keys.push(e.key_id.to_string());
                }
            }
            api_keys.push(e.api_key());
        });
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
        while self.inner.find(&data, &key.id).is_some() {
            key.id = random_id();
        }
        self.put_key_locked(&mut data, &key)?;
        Ok(key)
    }

    /// Stores `key` under its id, replacing any key with that id (an import). Refused if another
    /// key has the same value.
    pub fn put_api_key(&self, key: ApiKey) -> Result<(), StoreError> {
        let mut data = self.inner.data.lock();
        self.put_key_locked(&mut data, &key)
    }

    /// Stores `key`, keeping the plans of the key it replaces.
    fn put_key_locked(&self, data: &mut Data, key: &ApiKey) -> Result<(), StoreError> {
        key.validate()?;
        let inner = &*self.inner;
        let value = key.value.expose().as_bytes();
        let vh = inner.index.hash32(value);
        let holder = inner.index.read(
            widen(vh),
            |e| e.value() == value,
            |e| e.map(|e| e.key_id.to_string()),
        );
        if let Some(other) = holder.filter(|other| *other != key.id) {
            return Err(StoreError::Conflict(format!(
                "API key {other:?} already has this value; values must be unique"
            )));
        }
        let id = key.id.as_str();
        let ih = inner.id_hash(id);
        match inner.find(data, id) {
            None => {
                let r = IdRef { id: ih, value: vh };
                data.ids.insert_unique(widen(ih), r, |r| widen(r.id));
                let entry = Entry::new(key, id.into(), None);
                inner.index.insert(widen(vh), |e| e.value() == value, entry);
            }
            Some(old) => {
                let (key_id, plans, same_value) = inner.read_key(old, id, |e| {
                    (e.key_id.clone(), e.plans.clone(), e.value() == value)
                });
                if old.value != vh {
                    let r = data
                        .ids
                        .find_mut(widen(ih), |r| *r == old)
                        .expect("found above");
                    r.value = vh;
                }
                if !same_value {
                    inner
                        .index
                        .remove(widen(old.value), |e| *e.key_id == *key.id);
                }
                let entry = Entry::new(key, key_id, plans);
                inner.index.insert(widen(vh), |e| e.value() == value, entry);
            }
        }
        Ok(())
    }

    /// The key with this id.
    pub fn api_key(&self, id: &str) -> Option<ApiKey> {
        let data = self.inner.data.lock();
        let r = self.inner.find(&data, id)?;
        Some(self.inner.read_key(r, id, Entry::api_key))
    }

    /// Every key, by id.
    pub fn api_keys(&self) -> Vec<ApiKey> {
        let data = self.inner.data.lock();
        let mut keys = Vec::with_capacity(data.ids.len());
        self.inner.index.for_each(|e| keys.push(e.api_key()));
        keys.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        keys
    }

    /// Changes a key with AWS's patch operations (`/name`, `/description`, `/enabled`,
    /// `/customerId`); see [`patch`](crate::patch).
    pub fn update_api_key(&self, id: &str, ops: &[PatchOperation]) -> Result<ApiKey, StoreError> {
        let mut data = self.inner.data.lock();
        let r = self
            .inner
            .find(&data, id)
            .ok_or_else(|| not_found("API key", id))?;
        let old = self.inner.read_key(r, id, Entry::api_key);
        let mut key = patch::apply_to_key(&old, ops)?;
        key.last_updated_date = Some(unix_now());
        self.put_key_locked(&mut data, &key)?;
        Ok(key)
    }

    /// Deletes a key and its links to plans.
    pub fn delete_api_key(&self, id: &str) -> Result<(), StoreError> {
        let mut data = self.inner.data.lock();
        let r = self
            .inner
            .find(&data, id)
            .ok_or_else(|| not_found("API key", id))?;
        if let Ok(found) = data.ids.find_entry(widen(r.id), |x| *x == r) {
            found.remove();
        }
        self.inner
            .index
            .remove(widen(r.value), |e| *e.key_id == *id);
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
        let affected = data.combos_with(&plan.id);
        // A conflict is the same for every key with the same plans: name the first such key.
        let conflicting: Vec<&Arc<KeyPlans>> = affected
            .iter()
            .filter(|p| stage_conflict(data, &p.ids, &plan).is_some())
            .collect();
        if !conflicting.is_empty() {
            let mut first: Option<(Arc<str>, &Arc<KeyPlans>)> = None;
            self.inner.index.for_each(|e| {
                let Some(p) = e.plans.as_ref() else { return };
                let Some(c) = conflicting.iter().find(|c| Arc::ptr_eq(c, p)) else {
                    return;
                };
                if first.as_ref().is_none_or(|(id, _)| *e.key_id < **id) {
                    first = Some((e.key_id.clone(), c));
                }
            });
            if let Some((key_id, p)) = first {
                if let Some(c) = stage_conflict(data, &p.ids, &plan) {
                    return Err(c.error(&key_id));
                }
            }
        }
        let id = plan.id.clone();
        let listed = data.plans.get(&id).is_some_and(|p| p.listed);
        data.plans.insert(
            id,
            PlanRec {
                compiled: compile(&plan),
                plan,
                listed,
            },
        );
        let swaps: Vec<_> = affected
            .into_iter()
            .map(|old| {
                let new = Arc::new(KeyPlans {
                    compiled: data.compile(&old.ids),
                    ids: old.ids.clone(),
                });
                data.combos.insert(old.ids.clone(), new.clone());
                (old, Some(new))
            })
            .collect();
        self.inner.relink(&swaps);
        Ok(())
    }

    /// The plan with this id.
    pub fn usage_plan(&self, id: &str) -> Option<UsagePlan> {
        self.inner.data.lock().plans.get(id).map(|p| p.plan.clone())
    }

    /// Every plan, by id.
    pub fn usage_plans(&self) -> Vec<UsagePlan> {
        self.inner
            .data
            .lock()
            .plans
            .values()
            .map(|p| p.plan.clone())
            .collect()
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
        let plan = patch::apply_to_plan(&old.plan, ops)?;
        self.put_plan_locked(&mut data, plan.clone())?;
        Ok(plan)
    }

    /// Deletes a plan; its keys stay, without it.
    pub fn delete_usage_plan(&self, id: &str) -> Result<(), StoreError> {
        let mut data = self.inner.data.lock();
        data.plans
            .remove(id)
            .ok_or_else(|| not_found("usage plan", id))?;
        let affected = data.combos_with(id);
        let mut swaps = Vec::with_capacity(affected.len());
        for old in affected {
            data.combos.remove(&old.ids);
            let rest = old.ids.iter().filter(|p| ***p != *id).cloned().collect();
            let new = data.intern(rest);
            swaps.push((old, new));
        }
        self.inner.relink(&swaps);
        Ok(())
    }

    /// Links a key to a plan (AWS's `create-usage-plan-key`). Refused with
    /// [`StoreError::Conflict`] if the key is already in another plan on one of the plan's stages.
    pub fn create_usage_plan_key(&self, plan_id: &str, key_id: &str) -> Result<(), StoreError> {
        let mut data = self.inner.data.lock();
        let plan = &data
            .plans
            .get(plan_id)
            .ok_or_else(|| not_found("usage plan", plan_id))?
            .plan;
        let r = self
            .inner
            .find(&data, key_id)
            .ok_or_else(|| not_found("API key", key_id))?;
        let old = self.inner.read_key(r, key_id, |e| e.plans.clone());
        let linked = plan_ids(&old);
        if linked.iter().any(|p| **p == *plan_id) {
            return Err(StoreError::Conflict(format!(
                "API key {key_id:?} is already in usage plan {plan_id:?}"
            )));
        }
        if let Some(c) = stage_conflict(&data, linked, plan) {
            return Err(c.error(key_id));
        }
        let mut ids = linked.to_vec();
        ids.push(plan_id.into());
        drop(old);
        let new = data.intern(ids);
        if let Some(p) = data.plans.get_mut(plan_id) {
            p.listed = true;
        }
        self.inner.set_plans(r, key_id, new);
        Ok(())
    }

    /// Unlinks a key from a plan.
    pub fn delete_usage_plan_key(&self, plan_id: &str, key_id: &str) -> Result<(), StoreError> {
        let mut data = self.inner.data.lock();
        let old = self
            .inner
            .find(&data, key_id)
            .map(|r| (r, self.inner.read_key(r, key_id, |e| e.plans.clone())));
        let Some((r, Some(old))) = old.filter(|(_, p)| p.as_ref().is_some_and(|p| p.has(plan_id)))
        else {
            return Err(StoreError::NotFound {
                kind: "usage plan key",
                id: format!("{plan_id}:{key_id}"),
            });
        };
        let rest = old
            .ids
            .iter()
            .filter(|p| ***p != *plan_id)
            .cloned()
            .collect();
        drop(old);
        let new = data.intern(rest);
        self.inner.set_plans(r, key_id, new);
        Ok(())
    }

    /// The keys linked to a plan (AWS's `get-usage-plan-keys`), by id.
    pub fn usage_plan_keys(&self, plan_id: &str) -> Result<Vec<ApiKey>, StoreError> {
        let data = self.inner.data.lock();
        if !data.plans.contains_key(plan_id) {
            return Err(not_found("usage plan", plan_id));
        }
        Ok(self.inner.keys_of(plan_id))
    }
}

/// A key in two plans on one stage: the other plan and the stage.
struct StageConflict<'a> {
    other_id: &'a str,
    api_id: &'a str,
    stage: &'a str,
}

impl StageConflict<'_> {
    fn error(&self, key_id: &str) -> StoreError {
        StoreError::Conflict(format!(
            "API key {key_id:?} is in usage plan {:?}, which also lists stage {}:{}; a key may \
             be in only one plan per stage",
            self.other_id, self.api_id, self.stage
        ))
    }
}

/// The conflict if a key linked to the plans `linked`, linked to `plan`, would be in two plans on
/// one stage.
fn stage_conflict<'a>(
    data: &'a Data,
    linked: &'a [Box<str>],
    plan: &'a UsagePlan,
) -> Option<StageConflict<'a>> {
    for other_id in linked {
        if **other_id == *plan.id {
            continue;
        }
        let Some(other) = data.plans.get(&**other_id) else {
            continue;
        };
        for st in &plan.api_stages {
            if other
                .plan
                .api_stages
                .iter()
                .any(|o| o.api_id == st.api_id && o.stage == st.stage)
            {
                return Some(StageConflict {
                    other_id,
                    api_id: &st.api_id,
                    stage: &st.stage,
                });
            }
        }
    }
    None
}

impl MemoryStore {
    #[inline]
    fn grant(&self, value: &str, stage: &StageRef) -> Option<KeyGrant> {
        let index = &self.inner.index;
        let value = value.as_bytes();
        index.read(
            index.hash(value),
            |e| e.value() == value,
            |e| e.map(|e| e.grant(stage)),
        )
    }
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
        std::future::ready(Ok(self.grant(value, stage)))
    }

    #[inline]
    fn lookup_now(
        &self,
        value: &str,
        stage: &StageRef,
        _: crate::sealed::Token,
    ) -> Option<Result<Option<KeyGrant>, StoreError>> {
        Some(Ok(self.grant(value, stage)))
    }

    fn plans_now(&self, stage: &StageRef) -> Option<Vec<Arc<StagePlan>>> {
        let data = self.inner.data.lock();
        Some(
            data.plans
                .values()
                .flat_map(|p| p.compiled.iter())
                .filter(|p| stage.matches(p.api_id(), p.stage()))
                .cloned()
                .collect(),
        )
    }
}

#[cfg(any())] // rewritten with the store
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;
    use crate::model::ApiStage;

    fn value(i: usize) -> ApiKeyValue {
        ApiKeyValue::new(format!("testvalue{i:031}")).unwrap()
    }

    fn plan(id: &str, api: &str) -> UsagePlan {
        let mut p = UsagePlan::new(id, id);
        p.api_stages.push(ApiStage::new(api, "prod"));
        p
    }

    fn plan_of(store: &MemoryStore, value: &ApiKeyValue, stage: &StageRef) -> Option<String> {
        store
            .lookup_now(value.expose(), stage, |g| {
                g.and_then(|g| g.plan.map(|p| p.id().to_string()))
            })
            .ok()
            .flatten()
    }

    #[test]
    fn an_entry_has_no_padding_and_its_hot_fields_end_at_the_value() {
        assert_eq!(offset_of!(Entry<[u8; 20]>, meter_slot), 40);
        assert_eq!(offset_of!(Entry<[u8; 20]>, tail), 68);
        // A 40-byte value and a name of up to 12 bytes: 120 bytes in all.
        assert_eq!(size_of::<Entry<[u8; 52]>>(), 120);
        assert_eq!(size_of::<Entry<[u8; 20]>>(), 88);
        assert_eq!(size_of::<Entry<[u8; MAX_TAIL]>>(), 68 + MAX_TAIL);
        assert_eq!(size_of::<IdRef>(), 8);
    }

    #[test]
    fn a_key_comes_back_as_it_was_stored() {
        let store = MemoryStore::new();
        let mut full = ApiKey::new("full", "x".repeat(300), value(1));
        full.description = Some("d".into());
        full.enabled = false;
        full.created_date = Some(0);
        full.last_updated_date = Some(-5);
        full.customer_id = Some("c".into());
        full.tags.insert("t".into(), "v".into());
        let long = ApiKey::new(
            "long",
            "ü".repeat(60),
            ApiKeyValue::new("v".repeat(128)).unwrap(),
        );
        let bare = ApiKey::new("bare", "", ApiKeyValue::new("w".repeat(20)).unwrap());
        for key in [&full, &long, &bare] {
            store.put_api_key(key.clone()).unwrap();
            assert_eq!(store.api_key(&key.id).as_ref(), Some(key));
        }
        let mut dated = bare.clone();
        dated.created_date = Some(i64::MIN);
        store.put_api_key(dated.clone()).unwrap();
        assert_eq!(store.api_key("bare"), Some(dated.clone()));
        assert_eq!(store.api_keys(), vec![dated, full, long]);
    }

    #[test]
    fn links_keep_their_order_and_survive_plan_changes() {
        let store = MemoryStore::new();
        store.create_usage_plan(plan("b", "api1")).unwrap();
        store.create_usage_plan(plan("a", "api2")).unwrap();
        for i in 0..3 {
            store
                .put_api_key(ApiKey::new(format!("k{i}"), "n", value(i)))
                .unwrap();
        }
        // k0 is linked to b then a; k1 to a only; k2 to none.
        store.create_usage_plan_key("b", "k0").unwrap();
        store.create_usage_plan_key("a", "k0").unwrap();
        store.create_usage_plan_key("a", "k1").unwrap();
        let any = StageRef::any();
        assert_eq!(plan_of(&store, &value(0), &any).as_deref(), Some("b"));
        assert_eq!(plan_of(&store, &value(1), &any).as_deref(), Some("a"));
        assert_eq!(plan_of(&store, &value(2), &any), None);
        let ids = |plan: &str| -> Vec<String> {
            let keys = store.usage_plan_keys(plan).unwrap();
            keys.into_iter().map(|k| k.id).collect()
        };
        assert_eq!(ids("a"), ["k0", "k1"]);
        assert_eq!(ids("b"), ["k0"]);

        // A plan moved onto the other's stage conflicts for k0, and changes nothing.
        let err = store.put_usage_plan(plan("a", "api1")).unwrap_err();
        assert!(
            err.to_string().contains("\"k0\" is in usage plan \"b\""),
            "{err}"
        );
        assert_eq!(store.usage_plan("a").unwrap().api_stages[0].api_id, "api2");
        // A change that conflicts with nothing reaches every key on the plan.
        store.put_usage_plan(plan("a", "api3")).unwrap();
        let api3 = StageRef::new("api3", "prod");
        assert_eq!(plan_of(&store, &value(0), &api3).as_deref(), Some("a"));
        assert_eq!(plan_of(&store, &value(1), &api3).as_deref(), Some("a"));

        // Without b, k0 and k1 hold the same plans: one shared list.
        store.delete_usage_plan("b").unwrap();
        assert_eq!(plan_of(&store, &value(0), &any).as_deref(), Some("a"));
        {
            let mut data = store.inner.data.lock();
            data.drop_unused_combos();
            assert_eq!(data.combos.len(), 1);
        }
        let config = store.to_config();
        assert_eq!(config.usage_plan_keys.len(), 1);
        assert_eq!(config.usage_plan_keys["a"], ["k0", "k1"]);

        // Unlinking every key keeps the plan's (empty) list in the configuration.
        store.delete_usage_plan_key("a", "k0").unwrap();
        store.delete_usage_plan_key("a", "k1").unwrap();
        assert!(store.delete_usage_plan_key("a", "k1").is_err());
        assert!(store.delete_usage_plan_key("a", "nobody").is_err());
        assert_eq!(plan_of(&store, &value(0), &any), None);
        let config = store.to_config();
        assert_eq!(config.usage_plan_keys["a"], Vec::<String>::new());
        assert_eq!(
            MemoryStore::from_config(config.clone())
                .unwrap()
                .to_config(),
            config
        );
    }

    #[test]
    fn replace_all_keeps_keys_that_stay() {
        let store = MemoryStore::new();
        store.create_usage_plan(plan("p", "api")).unwrap();
        for i in 0..100 {
            store
                .put_api_key(ApiKey::new(format!("k{i}"), "n", value(i)))
                .unwrap();
            store.create_usage_plan_key("p", &format!("k{i}")).unwrap();
        }
        let mut config = store.to_config();
        // Half the keys go, one changes its value, one changes its id.
        config.api_keys.retain(|k| k.id.as_str() < "k5");
        config.api_keys[0].value = value(1000);
        config.api_keys[1].id = "renamed".into();
        for keys in config.usage_plan_keys.values_mut() {
            keys.retain(|k| k.as_str() < "k5" && k != "k1");
        }
        store.replace_all(config.clone()).unwrap();
        let mut want = config.clone();
        want.api_keys.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(store.to_config(), want);
        assert_eq!(store.inner.index.len(), want.api_keys.len());
        let any = StageRef::any();
        let found = |v: &ApiKeyValue| {
            store
                .lookup_now(v.expose(), &any, |g| g.map(|g| g.key_id.to_string()))
                .ok()
                .flatten()
        };
        assert_eq!(found(&value(1000)).as_deref(), Some("k0"));
        assert_eq!(found(&value(0)), None);
        assert_eq!(found(&value(1)).as_deref(), Some("renamed"));
        assert_eq!(found(&value(99)), None);
        assert_eq!(plan_of(&store, &value(10), &any).as_deref(), Some("p"));
        assert_eq!(plan_of(&store, &value(1), &any), None);
        assert!(store.api_key("k1").is_none());
        assert!(store.api_key("renamed").is_some());
    }

    /// Many keys put, changed, relinked and deleted, checked against a plain model.
    #[test]
    fn many_changes_agree_with_a_model() {
        let store = MemoryStore::new();
        for p in ["p0", "p1", "p2"] {
            store.create_usage_plan(plan(p, p)).unwrap();
        }
        let mut model: BTreeMap<String, (ApiKey, Vec<&str>)> = BTreeMap::new();
        let mut seed = 12345u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for step in 0..20_000 {
            let id = format!("key{}", next(2000));
            match next(6) {
                0 | 1 => {
                    let v = value(step + 10_000);
                    let mut key = ApiKey::new(id.clone(), format!("n{step}"), v);
                    key.enabled = step % 3 != 0;
                    store.put_api_key(key.clone()).unwrap();
                    let plans = model.remove(&id).map(|(_, p)| p).unwrap_or_default();
                    model.insert(id, (key, plans));
                }
                2 => {
                    let gone = store.delete_api_key(&id).is_ok();
                    assert_eq!(gone, model.remove(&id).is_some());
                }
                3 | 4 => {
                    let p = ["p0", "p1", "p2"][next(3)];
                    let linked = store.create_usage_plan_key(p, &id).is_ok();
                    let want = model.get_mut(&id).is_some_and(|(_, ps)| {
                        !ps.contains(&p) && {
                            ps.push(p);
                            true
                        }
                    });
                    assert_eq!(linked, want);
                }
                _ => {
                    let p = ["p0", "p1", "p2"][next(3)];
                    let unlinked = store.delete_usage_plan_key(p, &id).is_ok();
                    let want = model.get_mut(&id).is_some_and(|(_, ps)| {
                        let before = ps.len();
                        ps.retain(|x| *x != p);
                        ps.len() < before
                    });
                    assert_eq!(unlinked, want);
                }
            }
        }
        let keys: Vec<ApiKey> = model.values().map(|(k, _)| k.clone()).collect();
        assert_eq!(store.api_keys(), keys);
        assert_eq!(store.inner.index.len(), model.len());
        for (id, (key, plans)) in &model {
            assert_eq!(store.api_key(id).as_ref(), Some(key));
            assert_eq!(
                plan_of(&store, &key.value, &StageRef::any()).as_deref(),
                plans.first().copied()
            );
        }
        for p in ["p0", "p1", "p2"] {
            let want: Vec<&str> = model
                .iter()
                .filter(|(_, (_, ps))| ps.contains(&p))
                .map(|(id, _)| id.as_str())
                .collect();
            let got: Vec<String> = store
                .usage_plan_keys(p)
                .unwrap()
                .into_iter()
                .map(|k| k.id)
                .collect();
            assert_eq!(got, want);
        }
        assert!(store.inner.data.lock().combos.len() < 64);
    }
}
