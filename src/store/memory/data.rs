//! What a [`MemoryStore`](super::MemoryStore) holds: the record a request reads ([`Hot`]), the
//! rest of a key ([`Cold`]), plans, and the plan lists keys share ([`KeyPlans`]).
//!
//! [`Data`] is the canonical copy, changed only under the store's management lock; the lookup
//! index holds a [`Hot`] per key value, derived from it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::model::{ApiKey, ApiKeyValue, StageRef, UsagePlan};
use crate::plan::StagePlan;
use crate::store::KeyGrant;

/// The hasher of the store's tables (the key value is hashed once per request).
pub(super) type Hasher = foldhash::fast::RandomState;

/// The plans a key is linked to, in the order it was linked: one value shared by every key linked
/// to the same plans in the same order.
pub(super) struct KeyPlans {
    /// Each plan compiled for each stage it lists, in link order: what a request reads.
    pub(super) compiled: Box<[Arc<StagePlan>]>,
    /// The plans' ids, in link order.
    pub(super) ids: Box<[Box<str>]>,
}

impl KeyPlans {
    pub(super) fn has(&self, plan_id: &str) -> bool {
        self.ids.iter().any(|p| **p == *plan_id)
    }
}

/// The plan ids of a key's plans (none for `None`).
pub(super) fn plan_ids(plans: &Option<Arc<KeyPlans>>) -> &[Box<str>] {
    plans.as_deref().map_or(&[], |p| &p.ids)
}

/// What a request reads about a key, in the lookup index under the key's value.
pub(super) struct Hot {
    pub(super) key_id: Arc<str>,
    pub(super) plans: Option<Arc<KeyPlans>>,
    pub(super) enabled: bool,
}

impl Hot {
    /// The key's grant on `stage`: two reference counts and a flag, copied out.
    #[inline]
    pub(super) fn grant(&self, stage: &StageRef) -> KeyGrant {
        KeyGrant::compiled(
            self.key_id.clone(),
            self.enabled,
            self.plans.as_deref().and_then(|p| {
                p.compiled
                    .iter()
                    .find(|p| stage.matches(p.api_id(), p.stage()))
                    .cloned()
            }),
        )
    }
}

/// What few keys have: kept behind one pointer.
#[derive(Clone, Default)]
pub(super) struct Rare {
    description: Option<String>,
    customer_id: Option<String>,
    tags: BTreeMap<String, String>,
}

/// A key as management reads it (its id is the key of [`Data::keys`]). The value is the same
/// allocation as the index's key.
pub(super) struct Cold {
    pub(super) value: Arc<str>,
    name: Box<str>,
    created_date: Option<i64>,
    last_updated_date: Option<i64>,
    rare: Option<Box<Rare>>,
    pub(super) plans: Option<Arc<KeyPlans>>,
    pub(super) enabled: bool,
}

impl Cold {
    /// `key`, with its value shared as `value` and these plans.
    pub(super) fn new(key: &ApiKey, value: Arc<str>, plans: Option<Arc<KeyPlans>>) -> Box<Self> {
        let rare = (key.description.is_some() || key.customer_id.is_some() || !key.tags.is_empty())
            .then(|| {
                Box::new(Rare {
                    description: key.description.clone(),
                    customer_id: key.customer_id.clone(),
                    tags: key.tags.clone(),
                })
            });
        Box::new(Self {
            value,
            name: key.name.as_str().into(),
            created_date: key.created_date,
            last_updated_date: key.last_updated_date,
            rare,
            plans,
            enabled: key.enabled,
        })
    }

    /// What the index holds for this key.
    pub(super) fn hot(&self, key_id: &Arc<str>) -> Hot {
        Hot {
            key_id: key_id.clone(),
            plans: self.plans.clone(),
            enabled: self.enabled,
        }
    }

    /// The key, as it was stored.
    pub(super) fn api_key(&self, id: &str) -> ApiKey {
        let rare = self.rare.as_deref();
        ApiKey {
            id: id.to_owned(),
            value: ApiKeyValue::new(&*self.value).expect("a stored value was checked"),
            name: self.name.to_string(),
            description: rare.and_then(|r| r.description.clone()),
            enabled: self.enabled,
            created_date: self.created_date,
            last_updated_date: self.last_updated_date,
            customer_id: rare.and_then(|r| r.customer_id.clone()),
            tags: rare.map(|r| r.tags.clone()).unwrap_or_default(),
        }
    }
}

/// A plan as the store holds it.
pub(super) struct PlanRec {
    pub(super) plan: UsagePlan,
    /// The plan compiled for each stage it lists.
    pub(super) compiled: Vec<Arc<StagePlan>>,
    /// Whether `to_config` lists the plan in `usage_plan_keys`, even without keys: it was listed
    /// there when loaded, or a key was linked to it since.
    pub(super) listed: bool,
}

impl PlanRec {
    pub(super) fn new(plan: UsagePlan, listed: bool) -> Self {
        Self {
            compiled: StagePlan::all(&plan).into_iter().map(Arc::new).collect(),
            plan,
            listed,
        }
    }
}

/// Everything the store holds, changed only under the management lock.
#[derive(Default)]
pub(super) struct Data {
    /// Every key, by id, in order (management pages through them by id).
    pub(super) keys: BTreeMap<Arc<str>, Box<Cold>>,
    pub(super) plans: BTreeMap<String, PlanRec>,
    /// The keys of each plan, by plan id, in order: a plan's keys are listed without scanning
    /// every key. Kept by [`link`](Self::link) and [`unlink`](Self::unlink).
    pub(super) plan_keys: HashMap<Box<str>, BTreeSet<Arc<str>>, Hasher>,
    /// The plan lists keys have, by their plan ids; an unused one is dropped now and then.
    combos: HashMap<Box<[Box<str>]>, Arc<KeyPlans>, Hasher>,
    /// How many combos there may be before unused ones are dropped.
    combos_gc: usize,
}

impl Data {
    /// Notes that the key `key_id` is in the plan `plan_id`.
    pub(super) fn link(&mut self, plan_id: &str, key_id: &Arc<str>) {
        match self.plan_keys.get_mut(plan_id) {
            Some(keys) => {
                keys.insert(key_id.clone());
            }
            None => {
                self.plan_keys
                    .insert(plan_id.into(), BTreeSet::from([key_id.clone()]));
            }
        }
    }

    /// Notes that the key `key_id` is no longer in the plan `plan_id`.
    pub(super) fn unlink(&mut self, plan_id: &str, key_id: &str) {
        if let Some(keys) = self.plan_keys.get_mut(plan_id) {
            keys.remove(key_id);
            if keys.is_empty() {
                self.plan_keys.remove(plan_id);
            }
        }
    }

    /// The shared value for keys linked to `ids` in this order; `None` for no plans.
    pub(super) fn intern(&mut self, ids: Vec<Box<str>>) -> Option<Arc<KeyPlans>> {
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

    /// The plans `ids` compiled, in order.
    fn compile(&self, ids: &[Box<str>]) -> Box<[Arc<StagePlan>]> {
        ids.iter()
            .filter_map(|id| self.plans.get(&**id))
            .flat_map(|p| p.compiled.iter().cloned())
            .collect()
    }

    /// The plan list `old` built again from the plans as they are now, replacing `old` as the
    /// shared list for its ids.
    pub(super) fn rebuild(&mut self, old: &KeyPlans) -> Arc<KeyPlans> {
        let new = Arc::new(KeyPlans {
            compiled: self.compile(&old.ids),
            ids: old.ids.clone(),
        });
        self.combos.insert(old.ids.clone(), new.clone());
        new
    }

    /// Forgets the shared list for these ids.
    pub(super) fn forget(&mut self, ids: &[Box<str>]) {
        self.combos.remove(ids);
    }

    /// Drops the plan lists no key holds.
    pub(super) fn drop_unused_combos(&mut self) {
        self.combos.retain(|_, p| Arc::strong_count(p) > 1);
    }

    /// How many plan lists are kept.
    #[cfg(test)]
    pub(super) fn combos_len(&self) -> usize {
        self.combos.len()
    }

    /// The plan lists in use that hold `plan_id`.
    pub(super) fn combos_with(&mut self, plan_id: &str) -> Vec<Arc<KeyPlans>> {
        self.drop_unused_combos();
        self.combos
            .values()
            .filter(|p| p.has(plan_id))
            .cloned()
            .collect()
    }
}

/// A key in two plans on one stage: the other plan and the stage.
pub(super) struct StageConflict<'a> {
    other_id: &'a str,
    api_id: &'a str,
    stage: &'a str,
}

impl StageConflict<'_> {
    pub(super) fn error(&self, key_id: &str) -> crate::error::StoreError {
        crate::error::StoreError::Conflict(format!(
            "API key {key_id:?} is in usage plan {:?}, which also lists stage {}:{}; a key may \
             be in only one plan per stage",
            self.other_id, self.api_id, self.stage
        ))
    }
}

/// The conflict if a key linked to the plans `linked`, linked to `plan`, would be in two plans on
/// one stage.
pub(super) fn stage_conflict<'a>(
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
