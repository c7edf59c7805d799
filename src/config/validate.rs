//! Checks of a whole configuration: each item, and every cross-reference.

use std::collections::{HashMap, HashSet};

use super::Config;
use crate::error::{ConfigError, FieldError};
use crate::model::shown;

/// `apiKeys[0] (id "key111aaa")`, or `apiKeys[0]` when the id is unknown.
pub(crate) fn item_name(list: &str, index: usize, id: Option<&str>) -> String {
    match id {
        Some(id) => format!("{list}[{index}] (id {})", shown(id)),
        None => format!("{list}[{index}]"),
    }
}

/// `usagePlanKeys["plan111"]`.
pub(crate) fn plan_keys_name(plan: &str) -> String {
    format!("usagePlanKeys[{}]", shown(plan))
}

impl Config {
    /// Checks every item and every cross-reference; the first problem is returned as
    /// [`ConfigError::Invalid`] naming the item and the field. No message holds a key's value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // An item is named by its id, unless that id is a key's secret value (pasted where the
        // id belongs): then by its place alone.
        let secrets: HashSet<&str> = self.api_keys.iter().map(|k| k.value.expose()).collect();
        let key_item = |i: usize| {
            let id = self.api_keys[i].id.as_str();
            item_name("apiKeys", i, (!secrets.contains(id)).then_some(id))
        };
        let plan_item = |i: usize| {
            let id = self.usage_plans[i].id.as_str();
            item_name("usagePlans", i, (!secrets.contains(id)).then_some(id))
        };

        let mut key_ids: HashMap<&str, usize> = HashMap::with_capacity(self.api_keys.len());
        let mut key_values: HashMap<&str, usize> = HashMap::with_capacity(self.api_keys.len());
        for (i, key) in self.api_keys.iter().enumerate() {
            key.validate()
                .map_err(|e| ConfigError::invalid(key_item(i), e))?;
            if let Some(&first) = key_ids.get(key.id.as_str()) {
                return Err(ConfigError::invalid(
                    key_item(i),
                    FieldError::new(
                        "id",
                        format!("{} has the same id; ids must be unique", key_item(first)),
                    ),
                ));
            }
            key_ids.insert(&key.id, i);
            if let Some(&first) = key_values.get(key.value.expose()) {
                return Err(ConfigError::invalid(
                    key_item(i),
                    FieldError::new(
                        "value",
                        format!(
                            "{} has the same value; API key values must be unique",
                            key_item(first)
                        ),
                    ),
                ));
            }
            key_values.insert(key.value.expose(), i);
        }

        let mut plans: HashMap<&str, usize> = HashMap::with_capacity(self.usage_plans.len());
        for (i, plan) in self.usage_plans.iter().enumerate() {
            plan.validate()
                .map_err(|e| ConfigError::invalid(plan_item(i), e))?;
            if let Some(&first) = plans.get(plan.id.as_str()) {
                return Err(ConfigError::invalid(
                    plan_item(i),
                    FieldError::new(
                        "id",
                        format!("{} has the same id; ids must be unique", plan_item(first)),
                    ),
                ));
            }
            plans.insert(&plan.id, i);
        }

        // A string from usagePlanKeys is shown in a message unless it is a key's secret value
        // (someone pasted the value where the id belongs).
        let shown_id = |s: &str| -> String {
            match key_values.get(s) {
                Some(&i) => format!(
                    "<the value of {}, not an id; link keys by their id>",
                    key_item(i)
                ),
                None => shown(s),
            }
        };

        // (key id, apiId, stage) -> the plan that already gives the key that stage.
        let mut stage_owner: HashMap<(&str, &str, &str), &str> = HashMap::new();
        for (plan_id, keys) in &self.usage_plan_keys {
            let Some(&plan_index) = plans.get(plan_id.as_str()) else {
                let name = if key_values.contains_key(plan_id.as_str()) {
                    "usagePlanKeys[<an API key's value>]".to_owned()
                } else {
                    plan_keys_name(plan_id)
                };
                return Err(ConfigError::invalid(
                    name,
                    FieldError::new(
                        "usagePlanId",
                        format!("no usage plan with id {} in usagePlans", shown_id(plan_id)),
                    ),
                ));
            };
            let plan = &self.usage_plans[plan_index];
            let mut linked: HashMap<&str, usize> = HashMap::with_capacity(keys.len());
            for (j, key_id) in keys.iter().enumerate() {
                let here = || format!("{}[{j}]", plan_keys_name(plan_id));
                if !key_ids.contains_key(key_id.as_str()) {
                    return Err(ConfigError::invalid(
                        here(),
                        FieldError::new(
                            "id",
                            format!("no API key with id {} in apiKeys", shown_id(key_id)),
                        ),
                    ));
                }
                if let Some(&first) = linked.get(key_id.as_str()) {
                    return Err(ConfigError::invalid(
                        here(),
                        FieldError::new(
                            "id",
                            format!(
                                "API key {key_id:?} is already linked to this plan at {}[{first}]",
                                plan_keys_name(plan_id)
                            ),
                        ),
                    ));
                }
                linked.insert(key_id, j);
                for st in &plan.api_stages {
                    let slot = (key_id.as_str(), st.api_id.as_str(), st.stage.as_str());
                    if let Some(other) = stage_owner.insert(slot, plan_id) {
                        return Err(ConfigError::invalid(
                            here(),
                            FieldError::new(
                                "id",
                                format!(
                                    "API key {key_id:?} is in usage plans {other:?} and {plan_id:?}, \
                                     which both list stage {}:{}; a key may be in only one plan per \
                                     stage (AWS's ConflictException)",
                                    st.api_id, st.stage
                                ),
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}
