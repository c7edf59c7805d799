//! Stores: the conformance suites, stores that must be awaited, and `CachingStore` in front of them.

#[path = "../common/mod.rs"]
mod common;
#[path = "../support/metrics.rs"]
mod metrics_support;

mod caching;
mod suites;
