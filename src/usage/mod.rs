//! Running usage plans: what each key used ([`get_usage`], AWS's `get-usage`), granting more
//! ([`update_usage`], AWS's `update-usage`), and importing keys from CSV (`import_csv`, feature
//! `csv`, AWS's `import-api-keys`).
//!
//! A report reads the keys of a plan from any [`Management`](crate::store::Management) store and
//! each key's days from any [`Meter`](crate::meter::Meter): one `[used, remaining]` pair per key
//! per UTC day of an inclusive range of at most 90 days, where `remaining` is what the quota had
//! left at the end of that day (now, for today) in the window holding it, and `None` for a plan
//! without a quota. Reports are paged by key (`position`, `limit`).
//!
//! # Examples
//!
//! Read a key's usage, grant it more, and see it in the next report:
//!
//! ```
//! use tower_usage_plans::clock::ManualClock;
//! use tower_usage_plans::meter::policy::{Limits, QuotaLimits};
//! use tower_usage_plans::meter::{Charge, Counter, Meter};
//! use tower_usage_plans::model::{ApiStage, Quota, QuotaPeriod, UsagePlan};
//! use tower_usage_plans::period::{Calendar, Date};
//! use tower_usage_plans::store::{Management, MemoryStore, NewApiKey};
//! use tower_usage_plans::usage::{get_usage, set_remaining, UsageQuery};
//! use tower_usage_plans::LocalMeter;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = MemoryStore::new();
//! let mut plan = UsagePlan::new("plan111", "FreePlan");
//! plan.api_stages.push(ApiStage::new("abc123def4", "prod"));
//! plan.quota = Some(Quota::new(1000, QuotaPeriod::Month, 0).unwrap());
//! store.create_usage_plan(plan.clone()).await.unwrap();
//! let key = store.create_api_key(NewApiKey::named("ClientA")).await.unwrap();
//! store.create_usage_plan_key("plan111", &key.id).await.unwrap();
//!
//! // 2024-01-15, three requests.
//! let meter = LocalMeter::with_clock(ManualClock::at_unix_secs(1_705_312_800));
//! // The key's counter on the plan, as the layer charges it (the plan has no throttle).
//! let (plan_id, id) = ("plan111".into(), key.id.as_str().into());
//! let quota = QuotaLimits::new(1000, Calendar::aws(QuotaPeriod::Month, 0));
//! let counters = [Counter::new(&plan_id, &id, None, Limits::new(None, Some(quota)))];
//! for _ in 0..3 {
//!     meter.admit(&Charge::new(&counters, 1).unwrap()).await.unwrap();
//! }
//!
//! let query = UsageQuery::new(
//!     "plan111",
//!     Date::new(2024, 1, 14).unwrap(),
//!     Date::new(2024, 1, 15).unwrap(),
//! );
//! let report = get_usage(&store, &meter, &query).await.unwrap();
//! assert_eq!(report.items[&key.id], [(0, Some(1000)), (3, Some(997))]);
//!
//! // Grant 5,000 more for this month: the next report shows it.
//! set_remaining(&store, &meter, "plan111", &key.id, 5997).await.unwrap();
//! let report = get_usage(&store, &meter, &query).await.unwrap();
//! assert_eq!(report.items[&key.id][1], (3, Some(5997)));
//!
//! // 91 days is one too many, and the error says so.
//! let long = UsageQuery::new("plan111", Date::new(2024, 1, 1).unwrap(), Date::new(2024, 3, 31).unwrap());
//! let err = get_usage(&store, &meter, &long).await.unwrap_err();
//! assert!(err.to_string().contains("at most 90 days"));
//! # }
//! ```

mod error;
#[cfg(feature = "csv")]
mod import;
mod report;

pub use error::UsageError;
#[cfg(feature = "csv")]
pub use import::import_csv;
pub use report::{get_usage, set_remaining, update_usage, Usage, UsageQuery, MAX_USAGE_DAYS};
