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
