//! get-usage and update-usage over any store and meter.

use std::collections::BTreeMap;

use std::sync::Arc;

use crate::error::FieldError;
use crate::meter::policy::{Limits, QuotaLimits};
use crate::meter::{Counter, Meter};
use crate::model::UsagePlan;
use crate::patch::{PatchOp, PatchOperation};
use crate::period::{Calendar, Date};
use crate::store::{Management, Page, PageRequest, UsagePlanQuery, MAX_LIMIT};

use super::error::UsageError;

/// The longest range a report may cover, in days (AWS's limit).
pub const MAX_USAGE_DAYS: u32 = 90;

/// What to report ([`get_usage`]): AWS's `get-usage` parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageQuery {
    /// The plan.
    pub usage_plan_id: String,
    /// One key of the plan (AWS's `keyId`), or all of them, paged.
    pub key_id: Option<String>,
    /// The first day, UTC.
    pub start_date: Date,
    /// The last day, UTC, inclusive; at most [`MAX_USAGE_DAYS`] days from `start_date`, counting
    /// both.
    pub end_date: Date,
    /// Which page of keys.
    pub page: PageRequest,
}

impl UsageQuery {
    /// The first page of all the plan's keys, from `start_date` to `end_date` inclusive.
    pub fn new(usage_plan_id: impl Into<String>, start_date: Date, end_date: Date) -> Self {
        Self {
            usage_plan_id: usage_plan_id.into(),
            key_id: None,
            start_date,
            end_date,
            page: PageRequest::default(),
        }
    }

    /// The same query for one key.
    pub fn key(mut self, key_id: impl Into<String>) -> Self {
        self.key_id = Some(key_id.into());
        self
    }

    /// Checks the range: not reversed, at most [`MAX_USAGE_DAYS`] days.
    fn check(&self) -> Result<(), FieldError> {
        if self.end_date < self.start_date {
            return Err(FieldError::new(
                "endDate",
                format!(
                    "{} is before the start date {}; give the earlier date as startDate",
                    self.end_date, self.start_date
                ),
            ));
        }
        let days = self.end_date.days() - self.start_date.days() + 1;
        if days > MAX_USAGE_DAYS {
            return Err(FieldError::new(
                "endDate",
                format!(
                    "the range {}..={} covers {days} days; a report covers at most \
                     {MAX_USAGE_DAYS} days: ask for it in parts",
                    self.start_date, self.end_date
                ),
            ));
        }
        Ok(())
    }
}

/// A usage report: AWS's `{"usagePlanId","startDate","endDate","position","items"}`.
///
/// `items` maps each key id to one `(used, remaining)` pair per day of the range; `remaining` is
/// `None` for a plan without a quota. In JSON (feature `json`) a pair is `[used, remaining]`
/// (`[used, null]` without a quota) and dates are `YYYY-MM-DD`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usage {
    /// The plan.
    pub usage_plan_id: String,
    /// The first day.
    pub start_date: Date,
    /// The last day.
    pub end_date: Date,
    /// Where the next page of keys starts; `None` on the last.
    pub position: Option<String>,
    /// Per key id, one `(used, remaining)` per day.
    pub items: BTreeMap<String, Vec<(u64, Option<u64>)>>,
}

#[cfg(feature = "json")]
impl serde::Serialize for Usage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("usagePlanId", &self.usage_plan_id)?;
        m.serialize_entry("startDate", &self.start_date.to_string())?;
        m.serialize_entry("endDate", &self.end_date.to_string())?;
        if let Some(p) = &self.position {
            m.serialize_entry("position", p)?;
        }
        m.serialize_entry("items", &self.items)?;
        m.end()
    }
}

/// The limits a plan's usage is read and set by: its quota (no bucket: usage and update-usage
/// touch no token).
fn quota_limits(plan: &UsagePlan) -> Limits {
    Limits::new(
        None,
        plan.quota
            .map(|q| QuotaLimits::new(q.limit, Calendar::aws(q.period, q.offset))),
    )
}

/// Checks that `key_id` is a key of `plan_id` (NotFound naming the key otherwise).
async fn check_member<S: Management>(
    store: &S,
    plan_id: &str,
    key_id: &str,
) -> Result<(), UsageError> {
    let plans = store
        .get_usage_plans(&UsagePlanQuery {
            page: PageRequest::first(MAX_LIMIT),
            key_id: Some(key_id.to_owned()),
        })
        .await?;
    if plans.items.iter().any(|p| p.id == plan_id) {
        Ok(())
    } else {
        Err(crate::error::StoreError::NotFound {
            kind: "API key in this usage plan",
            id: key_id.to_owned(),
        }
        .into())
    }
}

/// AWS's `get-usage`: a page of the plan's keys (or the one asked for), each with one
/// `(used, remaining)` per day, from `store`'s keys and `meter`'s counts. See the
/// [module example](super).
///
/// Refused, with an error naming what to fix: a reversed range or one of more than
/// [`MAX_USAGE_DAYS`] days (`endDate`), a limit of 0 or above [`MAX_LIMIT`] (`limit`), an
/// unknown plan, or a key that is not in the plan.
pub async fn get_usage<S: Management, M: Meter>(
    store: &S,
    meter: &M,
    query: &UsageQuery,
) -> Result<Usage, UsageError> {
    query.check()?;
    query.page.checked_limit()?;
    let plan = store.get_usage_plan(&query.usage_plan_id).await?;
    let keys: Page<String> = match &query.key_id {
        Some(key_id) => {
            check_member(store, &plan.id, key_id).await?;
            Page {
                items: vec![key_id.clone()],
                position: None,
            }
        }
        None => {
            let page = store.get_usage_plan_keys(&plan.id, &query.page).await?;
            Page {
                items: page.items.into_iter().map(|k| k.id).collect(),
                position: page.position,
            }
        }
    };
    let (plan_id, limits): (Arc<str>, _) = (plan.id.as_str().into(), quota_limits(&plan));
    let mut items = BTreeMap::new();
    for key_id in keys.items {
        let subject: Arc<str> = key_id.as_str().into();
        let counter = Counter::new(&plan_id, &subject, None, limits);
        let days = meter
            .usage(&counter, query.start_date, query.end_date)
            .await?;
        items.insert(
            key_id,
            days.into_iter().map(|d| (d.used, d.remaining)).collect(),
        );
    }
    Ok(Usage {
        usage_plan_id: plan.id,
        start_date: query.start_date,
        end_date: query.end_date,
        position: keys.position,
        items,
    })
}

/// Sets what is left of `key_id`'s quota on `plan_id` in the current window (AWS's
/// `update-usage` with `replace /remaining`). It lasts until the window ends, and shows in the
/// next [`get_usage`] and the next request's `RateLimit` header. It may exceed the plan's limit:
/// more was granted.
///
/// Refused for an unknown plan, a key not in the plan, or a plan without a quota.
pub async fn set_remaining<S: Management, M: Meter>(
    store: &S,
    meter: &M,
    plan_id: &str,
    key_id: &str,
    remaining: u64,
) -> Result<(), UsageError> {
    let plan = store.get_usage_plan(plan_id).await?;
    check_member(store, plan_id, key_id).await?;
    if plan.quota.is_none() {
        return Err(FieldError::new(
            "remaining",
            format!(
                "usage plan {plan_id:?} has no quota to set what is left of; give it one first"
            ),
        )
        .into());
    }
    let (plan_id, subject): (Arc<str>, Arc<str>) = (plan.id.as_str().into(), key_id.into());
    let counter = Counter::new(&plan_id, &subject, None, quota_limits(&plan));
    meter.set_remaining(&counter, remaining).await?;
    Ok(())
}

/// AWS's `update-usage` as its patch operations say it: exactly `replace /remaining` with a
/// whole number, as [`set_remaining`].
///
/// ```
/// use tower_usage_plans::patch::PatchOperation;
/// use tower_usage_plans::usage::update_usage;
/// use tower_usage_plans::{LocalMeter, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (store, meter) = (MemoryStore::new(), LocalMeter::new());
/// let op = PatchOperation::replace("/remaining", "-5");
/// let err = update_usage(&store, &meter, "plan111", "key111", &[op]).await.unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "patchOperations[0].value: must be a whole number of requests from 0, not \"-5\""
/// );
/// # }
/// ```
pub async fn update_usage<S: Management, M: Meter>(
    store: &S,
    meter: &M,
    plan_id: &str,
    key_id: &str,
    ops: &[PatchOperation],
) -> Result<(), UsageError> {
    let [op] = ops else {
        return Err(FieldError::new(
            "patchOperations",
            format!(
                "must be exactly one operation, replace /remaining, not {}",
                ops.len()
            ),
        )
        .into());
    };
    if op.op != PatchOp::Replace || op.path != "/remaining" {
        return Err(FieldError::new(
            "patchOperations[0]",
            format!(
                "update-usage supports only replace /remaining, not {} {}",
                op.op, op.path
            ),
        )
        .into());
    }
    let text = op.value.as_deref().unwrap_or("");
    let remaining: u64 = text.trim().parse().map_err(|_| {
        FieldError::new(
            "patchOperations[0].value",
            format!("must be a whole number of requests from 0, not {text:?}"),
        )
    })?;
    set_remaining(store, meter, plan_id, key_id, remaining).await
}
