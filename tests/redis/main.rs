//! Redis: RedisMeter and RedisStore against real redis-servers and clusters started here on
//! loopback; their failures and failovers; two quickstarts sharing one Redis.

#[path = "../support/example.rs"]
mod example_support;
#[path = "../support/metrics.rs"]
mod metrics_support;
#[path = "../support/redis.rs"]
mod redis_server;

mod failover;
mod failure;
mod meter;
mod quickstart;
mod store;

/// `GET /items` behind a layer for the stage `api1`/`prod` on `meter`, failing as `mode` says
/// when the meter does (the failure and failover tests).
#[cfg(feature = "metrics")]
fn app(
    store: tower_usage_plans::MemoryStore,
    meter: tower_usage_plans::meter::RedisMeter,
    mode: tower_usage_plans::FailMode,
) -> axum::Router {
    let layer = tower_usage_plans::UsagePlanLayer::builder(store)
        .stage("api1", "prod")
        .meter(meter)
        .on_meter_error(mode)
        .build()
        .unwrap();
    axum::Router::new()
        .route("/items", axum::routing::get(|| async { "items" }))
        .layer(layer)
}
