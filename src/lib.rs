//! Tower middleware for Amazon API Gateway's usage plans and API keys.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::await_holding_lock
)]

pub mod clock;
pub mod error;
pub mod model;
pub mod patch;
pub mod period;
