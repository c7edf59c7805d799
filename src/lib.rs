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
//! # let key = store.api_key("key111aaa").unwrap();
//! # assert_eq!(app.clone().oneshot(req(None)).await?.status(), 403);
//! # assert_eq!(app.clone().oneshot(req(Some(key.value.expose()))).await?.status(), 200);
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
//!   on*) and [`MemoryStore`], with the management operations.
//! - [`meter`]: the [`Meter`](meter::Meter) trait (*may this request go now*) and
//!   [`LocalMeter`]: token buckets (governor's GCRA, checked against governor itself), exact
//!   quotas, usage per UTC day.
//! - [`period`]: quota windows in UTC; [`clock`]: the clock, and a manual one for tests.
//! - [`response`]: the answers, their gRPC forms and the rate-limit headers; [`key`]: where the
//!   key is read.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::await_holding_lock
)]

mod admission;
mod body;
pub mod clock;
pub mod config;
pub mod error;
mod future;
pub mod key;
mod layer;
pub mod meter;
pub mod model;
pub mod patch;
pub mod period;
pub mod plan;
pub mod response;
mod route;
mod service;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

/// The crate's own fast paths on its traits take this token, which only this crate can make.
#[doc(hidden)]
pub mod sealed {
    /// A token only this crate can make.
    #[derive(Clone, Copy, Debug)]
    pub struct Token(pub(crate) ());
}

pub use admission::{FailMode, RequestCost};
pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use layer::{UsagePlanLayer, UsagePlanLayerBuilder};
pub use meter::LocalMeter;
pub use service::UsagePlanService;
pub use store::MemoryStore;
