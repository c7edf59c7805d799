//! What the examples say at start: which plans, and how many keys, serve the chosen stage.
//! Computed from the plans' `apiStages` and the `usagePlanKeys` links (of a loaded `Config`, or
//! of what a store serves), so a stage that no plan lists is caught before the first request
//! answers 403.
//! Shared by the examples and their tests (`#[path]`).
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::fmt;

use tower_usage_plans::config::Config;
use tower_usage_plans::model::UsagePlan;

/// A plan that lists the stage, and its keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanOnStage {
    /// The plan's id.
    pub id: String,
    /// The plan's name.
    pub name: String,
    /// Its keys that are enabled.
    pub enabled_keys: usize,
    /// All its keys, enabled or not.
    pub keys: usize,
}

/// Which plans serve `api_id`:`stage`, and which stages the config does list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageReport {
    /// The API id asked for.
    pub api_id: String,
    /// The stage asked for.
    pub stage: String,
    /// The plans that list it, in the config's order.
    pub plans: Vec<PlanOnStage>,
    /// Every `apiId:stage` some plan lists, sorted, without repeats.
    pub listed: Vec<String>,
}

impl StageReport {
    /// Reads `config` for `api_id`:`stage`.
    pub fn new(config: &Config, api_id: &str, stage: &str) -> Self {
        Self::from_parts(
            &config.usage_plans,
            &config.usage_plan_keys,
            |id| config.api_keys.iter().any(|k| k.id == id && k.enabled),
            api_id,
            stage,
        )
    }

    /// Reads `plans`, their links (plan id -> key ids) and which keys are enabled for
    /// `api_id`:`stage`: what a store serves, listed through its management API.
    pub fn from_parts(
        usage_plans: &[UsagePlan],
        links: &BTreeMap<String, Vec<String>>,
        enabled: impl Fn(&str) -> bool,
        api_id: &str,
        stage: &str,
    ) -> Self {
        let mut listed: Vec<String> = usage_plans
            .iter()
            .flat_map(|p| p.api_stages.iter())
            .map(|s| format!("{}:{}", s.api_id, s.stage))
            .collect();
        listed.sort();
        listed.dedup();
        let plans = usage_plans
            .iter()
            .filter(|p| {
                p.api_stages
                    .iter()
                    .any(|s| s.api_id == api_id && s.stage == stage)
            })
            .map(|p| {
                let ids = links.get(&p.id).map_or(&[][..], Vec::as_slice);
                let enabled_keys = ids.iter().filter(|id| enabled(id)).count();
                PlanOnStage {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    enabled_keys,
                    keys: ids.len(),
                }
            })
            .collect();
        StageReport {
            api_id: api_id.to_owned(),
            stage: stage.to_owned(),
            plans,
            listed,
        }
    }

    /// How many enabled keys the stage admits.
    pub fn enabled_keys(&self) -> usize {
        self.plans.iter().map(|p| p.enabled_keys).sum()
    }

    /// True when no enabled key can be admitted on the stage: every keyed request will be 403.
    pub fn admits_no_key(&self) -> bool {
        self.enabled_keys() == 0
    }
}

/// One line per plan; or, when no key can be admitted, a warning that starts with `WARNING:`
/// and says what to fix.
impl fmt::Display for StageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = format!("{}:{}", self.api_id, self.stage);
        for p in &self.plans {
            let disabled = p.keys - p.enabled_keys;
            write!(
                f,
                "Plan {} ({}) serves {stage} with {} key{}",
                p.id,
                p.name,
                p.enabled_keys,
                if p.enabled_keys == 1 { "" } else { "s" }
            )?;
            if disabled > 0 {
                write!(f, " ({disabled} more disabled)")?;
            }
            writeln!(f)?;
        }
        if self.admits_no_key() {
            let listed = if self.listed.is_empty() {
                "none".to_owned()
            } else {
                self.listed.join(", ")
            };
            if self.listed.is_empty() {
                writeln!(
                    f,
                    "WARNING: the configuration has no usage plan on any stage: every request \
                     that needs a key will be refused 403 Forbidden. Add a plan with {stage} in \
                     its apiStages, and link keys to it in usagePlanKeys."
                )?;
            } else if self.plans.is_empty() {
                writeln!(
                    f,
                    "WARNING: no usage plan lists the stage {stage}: every request that needs a \
                     key will be refused 403 Forbidden. The plans list: {listed}. Pick one of \
                     these with --api-id and --stage, or add {stage} to a plan's apiStages."
                )?;
            } else {
                writeln!(
                    f,
                    "WARNING: the plans on {stage} have no enabled key: every request that needs \
                     a key will be refused 403 Forbidden. Link an enabled key to one of them in \
                     usagePlanKeys."
                )?;
            }
        }
        Ok(())
    }
}
