//! Tower middleware for Amazon API Gateway's usage plans and API keys.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::await_holding_lock
)]

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
mod shard;
pub mod store;

pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use layer::{FailMode, UsagePlanLayer, UsagePlanLayerBuilder};
pub use meter::LocalMeter;
pub use service::UsagePlanService;
pub use store::MemoryStore;
