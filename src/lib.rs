//! Tower middleware for Amazon API Gateway's *usage plans and API keys*: per-client API keys,
//! token-bucket throttling per key, daily/weekly/monthly quotas, per-method overrides, AWS's 403
//! and 429 answers, and a record of what each client used, enforced before the inner service
//! runs. It serves any `tower::Service<http::Request<_>>`: an axum router, a tonic server, a hyper
//! service.
//!
//! # Ten lines of axum
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower_usage_plans::{MemoryStore, UsagePlanLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::from_json(include_str!("../examples/quickstart.json"))?;
//! let app: Router = Router::new()
//!     .route("/items", get(|| async { "items" }))
//!     .layer(UsagePlanLayer::new(store.clone()));
//! # use tower::ServiceExt;
//! # let req = |key: Option<&str>| {
//! #     let mut r = http::Request::get("/items");
//! #     if let Some(k) = key { r = r.header("x-api-key", k); }
//! #     r.body(axum::body::Body::empty()).unwrap()
//! # };
//! # use tower_usage_plans::store::Management;
//! # let key = store.get_api_key("key111aaa", true).await?.value.unwrap();
//! # assert_eq!(app.clone().oneshot(req(None)).await?.status(), 403);
//! # assert_eq!(app.clone().oneshot(req(Some(key.expose()))).await?.status(), 200);
//! // No key: 403 {"message":"Forbidden"}; the free key: 200, until its burst (20 for GET /items)
//! // is spent: 429 {"message":"Too Many Requests"}, with Retry-After.
//! # Ok(())
//! # }
//! ```
//!
//! [`UsagePlanLayer::builder`] sets the stage the layer serves (`apiId` + stage name), which
//! routes require a key, the meter, where the key is read, the rate-limit headers and the answers.
//!
//! # The parts
//!
//! - [`model`]: AWS's shapes (keys, plans, throttles, quotas) and their validation;
//!   [`config`]: the whole configuration as AWS's CLI prints it, loaded and saved as JSON;
//!   [`patch`]: AWS's patch operations.
//! - [`store`]: the [`KeyStore`](store::KeyStore) trait (*who is this, and what plan are they
//!   on*, answered as an owned grant) and [`MemoryStore`], with the management operations.
//! - [`meter`]: the [`Meter`](meter::Meter) trait (*may this request go now*: a charge against
//!   counters, all or none, corrected after the response; and usage), its reference semantics
//!   [`meter::policy`] (GCRA token buckets with a cost, checked against governor itself; exact
//!   quota windows; usage per UTC day) and [`LocalMeter`], the policy over a concurrent map.
//! - [`period`]: quota windows and their [`Calendar`](period::Calendar); [`clock`]: a monotonic clock for buckets and UTC wall time
//!   for quotas, and a manual clock for tests.
//! - [`tags`]: AWS's rules for the tags on keys and plans, and the grammar of this crate's own
//!   (`usageplans:` keys), set with the aws CLI (`tag-resource`) or [`Management`](store::Management).
//! - [`response`]: the answers, their gRPC forms and the rate-limit headers; [`key`]: where the
//!   key is read; [`RequestCost`]: what a request counts.
//! - `testing` (feature `testing`): the conformance suites every store and meter passes.
//! - [`aws_semantics`]: what AWS does, and what this crate chose where AWS's documents disagree.
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `json` (default) | loading and saving the configuration as AWS-shaped JSON (serde) |
//! | `sqlite` | `SqliteStore` and `PersistedMeter`: keys, plans and usage that survive a restart (SQLite bundled: a C compiler builds it) |
//! | `cache` | `CachingStore`: a bounded cache in front of any `KeyStore` |
//! | `metrics` | request counters and duration histograms through the `metrics` facade |
//! | `csv` | `usage::import_csv`: import-api-keys from CSV |
//! | `redis` | `RedisMeter` and `RedisStore`: limits and keys shared by several instances |
//! | `tokio` | `LocalMeter::spawn_sweeper`, a background task that sweeps the meter |
//! | `axum` (default) | routes matched on axum's `OriginalUri` (the path the client sent, also inside `Router::nest`) |
//! | `testing` | `tower_usage_plans::testing`: the conformance suites for stores and meters |
//! | `admin` | `tower_usage_plans::admin`: API Gateway's management API (rest-json, SigV4) as an axum Router, for the aws CLI and boto3 |
//!
//! The default build is `axum` and `json`: what the ten lines above need. `axum` is on because
//! without it a layer inside axum's `Router::nest` sees the path with the nest's prefix stripped
//! and matches other routes than the client asked for, silently; an axum or tonic app (tonic's
//! router is axum's) compiles axum already, so it costs them nothing. A plain hyper or Tower
//! service turns it off: `default-features = false, features = ["json"]`. `sqlite` is a choice
//! of where state lives, and builds SQLite's C source, so it is asked for by name.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::await_holding_lock
)]

#[cfg(feature = "admin")]
pub mod admin;
mod admission;
#[doc = include_str!("../docs/aws-semantics.md")]
pub mod aws_semantics {}
mod body;
pub mod clock;
pub mod config;
pub mod error;
mod future;
mod headers;
pub mod key;
mod layer;
pub mod meter;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod model;
mod observe;
pub mod patch;
pub mod period;
mod plan;
#[cfg(feature = "redis")]
mod redis_conn;
mod rejection;
pub mod response;
mod route;
mod service;
pub mod store;
pub mod tags;
#[cfg(feature = "testing")]
pub mod testing;
pub mod usage;

pub use admission::{FailMode, RequestCost};
pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use layer::{UsagePlanLayer, UsagePlanLayerBuilder};
pub use meter::LocalMeter;
pub use service::UsagePlanService;
pub use store::MemoryStore;
