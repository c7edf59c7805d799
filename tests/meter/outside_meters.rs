//! Two meters written as a user of the crate would write them, with its public API only (the
//! policy, the contract's data types, the clock), each passing the meter conformance suite:
//! one over a `std::sync::Mutex<HashMap>` that answers at once, one whose futures really wait
//! (behind a `tokio::sync::Mutex`, as a meter on a database would). The second also serves a
//! layer.
#![cfg(feature = "testing")]

use std::collections::HashMap;
use std::future::{Future, Ready};
use std::pin::Pin;
use std::sync::Arc;

use http::{Request, StatusCode};
use tower::ServiceExt;
use tower_usage_plans::clock::{Clock, ManualClock, Now};
use tower_usage_plans::error::{FieldError, MeterError};
use tower_usage_plans::meter::policy::{self, Limits, Receipt, State, Verdict, MAX_COUNTERS};
use tower_usage_plans::meter::{Charge, Counter, DayUsage, Meter};
use tower_usage_plans::model::{ApiStage, Quota, QuotaPeriod, Throttle, UsagePlan};
use tower_usage_plans::period::Date;
use tower_usage_plans::store::Management;
use tower_usage_plans::store::NewApiKey;
use tower_usage_plans::{MemoryStore, UsagePlanLayer};

/// What the meter keeps of one counter (a subject on a plan).
#[derive(Clone, Debug, Default)]
struct Record {
    state: State,
    /// Arrival times by bucket name.
    tats: HashMap<String, u64>,
    /// Earlier days with usage, oldest first.
    history: Vec<(u32, u64)>,
}

/// Every counter's record, by (plan id, subject): the meter's whole state, decided on under one
/// lock.
#[derive(Debug, Default)]
struct Book {
    records: HashMap<(String, String), Record>,
}

fn ids(c: &Counter<'_>) -> (String, String) {
    (c.plan_id.to_string(), c.subject.to_string())
}

impl Book {
    fn admit(&mut self, charge: &Charge<'_>, now: Now) -> Verdict {
        let counters = &charge.counters[..charge.counters.len().min(MAX_COUNTERS)];
        let mut states: Vec<State> = counters
            .iter()
            .map(|c| {
                let rec = self.records.get(&ids(c)).cloned().unwrap_or_default();
                let mut s = rec.state;
                s.tat = c
                    .bucket_name()
                    .and_then(|b| rec.tats.get(b).copied())
                    .unwrap_or(0);
                s
            })
            .collect();
        let limits: Vec<Limits> = counters.iter().map(|c| c.limits).collect();
        let verdict = policy::decide(&mut states, &limits, now, charge.cost);
        for (c, s) in counters.iter().zip(states) {
            let rec = self.records.entry(ids(c)).or_default();
            // A day that ended is kept with its usage.
            if s.day != rec.state.day && rec.state.day_used > 0 {
                rec.history.push((rec.state.day, rec.state.day_used));
            }
            if let Some(b) = c.bucket_name() {
                rec.tats.insert(b.to_owned(), s.tat);
            }
            rec.state = s;
        }
        verdict
    }

    fn adjust(&mut self, charge: &Charge<'_>, receipt: &Receipt, delta: i64) {
        let day = receipt.day.days();
        for (i, c) in charge.counters.iter().enumerate().take(MAX_COUNTERS) {
            let rec = self.records.entry(ids(c)).or_default();
            let (next, earlier) =
                policy::adjust(&rec.state, receipt.window_ends[i], day, receipt.cost, delta);
            rec.state = next;
            if earlier != 0 {
                match rec.history.iter_mut().find(|(d, _)| *d == day) {
                    Some(entry) => entry.1 = policy::apply(entry.1, earlier),
                    None if earlier > 0 && day < rec.state.day => {
                        rec.history.push((day, earlier as u64));
                        rec.history.sort_unstable();
                    }
                    None => {}
                }
            }
        }
    }

    fn usage(&self, c: &Counter<'_>, start: Date, end: Date) -> Result<Vec<DayUsage>, MeterError> {
        if start > end {
            return Err(FieldError::new("startDate", "after the end date").into());
        }
        let rec = self.records.get(&ids(c)).cloned().unwrap_or_default();
        Ok(policy::usage(
            &rec.history,
            &rec.state,
            c.limits.quota.as_ref(),
            start.days(),
            end.days(),
        )
        .into_iter()
        .map(|(d, used, remaining)| DayUsage::new(Date::from_days(d), used, remaining))
        .collect())
    }

    fn set_remaining(&mut self, c: &Counter<'_>, left: u64, now: Now) -> Result<(), MeterError> {
        let Some(q) = c.limits.quota else {
            return Err(FieldError::new("remaining", "the plan has no quota").into());
        };
        let rec = self.records.entry(ids(c)).or_default();
        rec.state = policy::set_remaining(&rec.state, &q, now.unix_nanos / 1_000_000_000, left);
        Ok(())
    }
}

/// A meter over a `Mutex<HashMap>`: it never waits, so its futures are `Ready`.
#[derive(Clone)]
struct MapMeter {
    book: Arc<std::sync::Mutex<Book>>,
    clock: ManualClock,
}

impl MapMeter {
    fn new(clock: ManualClock) -> Self {
        Self {
            book: Arc::default(),
            clock,
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Meter for MapMeter {
    type Admit = Ready<Result<Verdict, MeterError>>;
    type Adjust = Ready<Result<(), MeterError>>;

    fn admit(&self, charge: &Charge<'_>) -> Self::Admit {
        std::future::ready(Ok(self.book().admit(charge, self.clock.now())))
    }

    fn adjust(&self, charge: &Charge<'_>, receipt: &Receipt, delta: i64) -> Self::Adjust {
        self.book().adjust(charge, receipt, delta);
        std::future::ready(Ok(()))
    }

    async fn usage(
        &self,
        counter: &Counter<'_>,
        start: Date,
        end: Date,
    ) -> Result<Vec<DayUsage>, MeterError> {
        self.book().usage(counter, start, end)
    }

    async fn set_remaining(&self, counter: &Counter<'_>, remaining: u64) -> Result<(), MeterError> {
        self.book()
            .set_remaining(counter, remaining, self.clock.now())
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, MeterError>> + Send>>;

/// A counter's names: plan id, subject, bucket.
type Names = (Arc<str>, Arc<str>, Option<Arc<str>>);

/// What a charge names, owned, for a future that outlives the borrow of the charge.
struct OwnedCharge {
    ids: Vec<Names>,
    limits: Vec<Limits>,
    cost: u32,
}

impl OwnedCharge {
    fn of(charge: &Charge<'_>) -> Self {
        Self {
            ids: charge
                .counters
                .iter()
                .map(|c| (c.plan_id.clone(), c.subject.clone(), c.bucket.cloned()))
                .collect(),
            limits: charge.counters.iter().map(|c| c.limits).collect(),
            cost: charge.cost,
        }
    }

    /// The charge again, borrowed from here, for `f`.
    fn with<R>(&self, f: impl FnOnce(&Charge<'_>) -> R) -> R {
        let counters: Vec<Counter<'_>> = self
            .ids
            .iter()
            .zip(&self.limits)
            .map(|((p, s, b), l)| Counter::new(p, s, b.as_ref(), *l))
            .collect();
        f(&Charge::new(&counters, self.cost).expect("the charge was valid"))
    }
}

/// A meter whose every answer waits for an async lock (a stand-in for a database) and a turn of
/// the runtime: its futures are boxed, and they really wait.
#[derive(Clone)]
struct WaitingMeter {
    book: Arc<tokio::sync::Mutex<Book>>,
    clock: ManualClock,
}

impl Meter for WaitingMeter {
    type Admit = BoxFuture<Verdict>;
    type Adjust = BoxFuture<()>;

    fn admit(&self, charge: &Charge<'_>) -> Self::Admit {
        let (book, clock, charge) = (
            self.book.clone(),
            self.clock.clone(),
            OwnedCharge::of(charge),
        );
        Box::pin(async move {
            tokio::task::yield_now().await;
            let mut book = book.lock().await;
            // The clock is read once the lock is held: charges are decided in the order they
            // got the lock.
            let now = clock.now();
            Ok(charge.with(|c| book.admit(c, now)))
        })
    }

    fn adjust(&self, charge: &Charge<'_>, receipt: &Receipt, delta: i64) -> Self::Adjust {
        let (book, charge, receipt) = (self.book.clone(), OwnedCharge::of(charge), *receipt);
        Box::pin(async move {
            tokio::task::yield_now().await;
            let mut book = book.lock().await;
            charge.with(|c| book.adjust(c, &receipt, delta));
            Ok(())
        })
    }

    async fn usage(
        &self,
        counter: &Counter<'_>,
        start: Date,
        end: Date,
    ) -> Result<Vec<DayUsage>, MeterError> {
        tokio::task::yield_now().await;
        self.book.lock().await.usage(counter, start, end)
    }

    async fn set_remaining(&self, counter: &Counter<'_>, remaining: u64) -> Result<(), MeterError> {
        tokio::task::yield_now().await;
        let now = self.clock.now();
        self.book
            .lock()
            .await
            .set_remaining(counter, remaining, now)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meter_over_a_mutex_and_a_hash_map_conforms() {
    tower_usage_plans::testing::meter::meter(MapMeter::new).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meter_whose_futures_wait_conforms() {
    tower_usage_plans::testing::meter::meter(|clock| WaitingMeter {
        book: Arc::default(),
        clock,
    })
    .await;
}

/// The layer decides with a meter that waits exactly as with the in-process one: the article's
/// burst, then 429 with `Retry-After`, and the quota in the `RateLimit` header.
#[tokio::test]
async fn a_layer_serves_through_a_meter_that_waits() {
    let store = MemoryStore::new();
    let key = store
        .create_api_key(NewApiKey::named("ClientA"))
        .await
        .unwrap();
    let mut plan = UsagePlan::new("plan111", "FreePlan");
    plan.api_stages.push(ApiStage::new("abc123def4", "prod"));
    plan.throttle = Some(Throttle::new(1.0, 3).unwrap());
    plan.quota = Some(Quota::new(100, QuotaPeriod::Day, 0).unwrap());
    store.create_usage_plan(plan).await.unwrap();
    store
        .create_usage_plan_key("plan111", &key.id)
        .await
        .unwrap();
    let meter = WaitingMeter {
        book: Arc::default(),
        clock: ManualClock::at_unix_secs(1_700_000_000),
    };
    let layer = UsagePlanLayer::builder(store)
        .stage("abc123def4", "prod")
        .meter(meter)
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route("/items", axum::routing::get(|| async { "items" }))
        .layer(layer);
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..4 {
        let req = Request::get("/items")
            .header("x-api-key", key.value.expose())
            .body(axum::body::Body::empty())
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        statuses.push(res.status());
        last = Some(res);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let last = last.unwrap();
    assert_eq!(last.headers()["retry-after"], "1");
    let rate = last.headers()["ratelimit"].to_str().unwrap();
    assert!(rate.contains("\"day\";r=97"), "{rate}");
}
