//! `--redis URL`: the quickstart's keys, plans and meter in Redis (feature `redis`), so that
//! several quickstarts on several ports share one set of keys and limits.
//!
//! `URL` is `redis://HOST:PORT` for one Redis, or a cluster's seed nodes separated by commas
//! (`redis://10.0.0.1:7000,redis://10.0.0.2:7000`). The first quickstart to find the store
//! empty loads `--config` into it; the others serve what it holds. With the admin API's flags,
//! each serves the admin API over the same Redis: a key made through one quickstart's admin API
//! works on every quickstart at once.

use tower_usage_plans::config::Config;

/// What the quickstart serves, and what to print about Redis.
pub type Served = (super::Served, String);

/// Seed nodes: several URLs mean a cluster.
fn nodes(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect()
}

/// The router (and the admin API, if asked for) on Redis's store and meter, having loaded
/// `config` if the store was empty; and what to print about it.
#[cfg(feature = "redis")]
pub async fn serve(
    url: &str,
    config: Config,
    args: &super::Args,
    candidates: &[super::Candidate],
) -> Result<Served, String> {
    use tower_usage_plans::meter::RedisMeter;
    use tower_usage_plans::store::RedisStore;

    let nodes = nodes(url);
    let failed = |what: &str, e: &dyn std::error::Error| {
        // Not the URL: it may hold a password.
        format!("error: --redis: {what}: {}", super::chain(e))
    };
    let (store, meter) = match nodes[..] {
        [] => return Err("error: --redis needs a URL, e.g. redis://127.0.0.1:6379".into()),
        [one] => (
            RedisStore::builder().connect(one).await,
            RedisMeter::builder().connect(one).await,
        ),
        _ => (
            RedisStore::builder().connect_cluster(nodes.clone()).await,
            RedisMeter::builder().connect_cluster(nodes.clone()).await,
        ),
    };
    let store = store.map_err(|e| failed("cannot read the store", &e))?;
    let meter = meter.map_err(|e| failed("cannot load the meter", &e))?;
    let held = store
        .to_config()
        .await
        .map_err(|e| failed("cannot read the store", &e))?;
    let note = if held.api_keys.is_empty() && held.usage_plans.is_empty() {
        store
            .replace_all(config)
            .await
            .map_err(|e| failed("cannot load --config into Redis", &e))?;
        "Keys, plans and limits in Redis: loaded --config into it".to_owned()
    } else {
        format!(
            "Keys, plans and limits in Redis: it holds {} keys and {} plans already; \
             --config was not loaded",
            held.api_keys.len(),
            held.usage_plans.len()
        )
    };
    Ok((super::serve_on(store, meter, args, candidates).await?, note))
}

/// Without the `redis` feature: says how to build with it.
#[cfg(not(feature = "redis"))]
pub async fn serve(
    url: &str,
    _config: Config,
    _args: &super::Args,
    _candidates: &[super::Candidate],
) -> Result<Served, String> {
    let _ = nodes(url);
    Err("error: --redis needs the redis feature: cargo run --example quickstart --features redis -- \
         --redis redis://127.0.0.1:6379"
        .into())
}
