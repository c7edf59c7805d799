//! One connection to Redis or to a Redis Cluster, as [`RedisMeter`](crate::meter::RedisMeter)
//! and [`RedisStore`](crate::store::RedisStore) both hold it: connecting within a timeout, and
//! sending a command or a script on either kind; and their background tasks' timer.

use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, FromRedisValue, RedisResult, Script, ScriptInvocation};

use crate::error::BoxError;

/// A connection to one Redis (redis-rs's connection manager, which reconnects by itself), or to
/// a cluster. Clones share it.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

fn no_connection(timeout: Duration) -> BoxError {
    format!("no connection to Redis within {timeout:?} (the builder's response_timeout)").into()
}

impl Conn {
    /// Connects to one Redis at `url` (`redis://host:port/db`), each round trip and the
    /// connection itself limited to `timeout`.
    pub(crate) async fn single(url: &str, timeout: Duration) -> Result<Self, BoxError> {
        let client = ::redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(timeout))
            .set_number_of_retries(1);
        let conn =
            tokio::time::timeout(timeout, ConnectionManager::new_with_config(client, config))
                .await
                .map_err(|_| no_connection(timeout))??;
        Ok(Self::Single(conn))
    }

    /// Connects to a Redis Cluster from some of its nodes, limited as [`single`](Self::single).
    pub(crate) async fn cluster<I, T>(nodes: I, timeout: Duration) -> Result<Self, BoxError>
    where
        I: IntoIterator<Item = T>,
        T: ::redis::IntoConnectionInfo,
    {
        let client = ::redis::cluster::ClusterClientBuilder::new(nodes)
            .response_timeout(timeout)
            .connection_timeout(timeout)
            .build()?;
        let conn = tokio::time::timeout(timeout, client.get_async_connection())
            .await
            .map_err(|_| no_connection(timeout))??;
        Ok(Self::Cluster(conn))
    }

    /// `"single"` or `"cluster"`, for `Debug` output.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Single(_) => "single",
            Self::Cluster(_) => "cluster",
        }
    }

    /// Sends `cmd`.
    pub(crate) async fn query<T: FromRedisValue>(mut self, cmd: &Cmd) -> RedisResult<T> {
        match &mut self {
            Self::Single(c) => cmd.query_async(c).await,
            Self::Cluster(c) => cmd.query_async(c).await,
        }
    }

    /// Runs a script by its SHA (loading it again if Redis answers NOSCRIPT).
    pub(crate) async fn invoke<T: FromRedisValue>(
        mut self,
        inv: &ScriptInvocation<'_>,
    ) -> RedisResult<T> {
        match &mut self {
            Self::Single(c) => inv.invoke_async(c).await,
            Self::Cluster(c) => inv.invoke_async(c).await,
        }
    }

    /// Loads `script` into Redis, so that one it refuses fails now.
    pub(crate) async fn load(&mut self, script: &Script) -> RedisResult<String> {
        match self {
            Self::Single(c) => script.prepare_invoke().load_async(c).await,
            Self::Cluster(c) => script.prepare_invoke().load_async(c).await,
        }
    }
}

/// Runs `task` on what `owner` points to every `every` (the first time after one period), on a
/// tokio task that ends once the owner is dropped: housekeeping no request pays for.
pub(crate) fn spawn_every<T, F, Fut>(owner: std::sync::Weak<T>, every: std::time::Duration, task: F)
where
    T: Send + Sync + 'static,
    F: Fn(std::sync::Arc<T>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(owner) = owner.upgrade() else {
                return;
            };
            task(owner).await;
        }
    });
}
