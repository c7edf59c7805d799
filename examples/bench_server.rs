//! A measurement, not a usage example: the quickstart's shape for `wrk`: GET /items needing a key,
//! with 10,000 keys registered whose values the wrk script can compute (`benchkey` and the index on
//! 32 digits).
//!
//! ```text
//! cargo run --release --example bench_server -- [--listen ADDR] [--keys N] [--no-layer] [--no-headers]
//! cargo run --example bench_server -- --help
//! wrk -t1 -c32 -d15s --latency -s benches/wrk-keys.lua http://127.0.0.1:3001/items
//! ```
//!
//! `--no-layer` serves the same router without the layer. The plan never throttles or runs out
//! (a million requests a second, a trillion a day), so every answer is a 200 and the figure is
//! the layer's cost; the rate-limit headers are on, as by default (`--no-headers` turns them
//! off, to see what they cost on the wire). One thread (tokio's current
//! thread runtime), so that pinning the server to one core measures one core. See BENCHMARKS.md.

use std::process::ExitCode;

use axum::routing::get;
use axum::Router;
use clap::Parser;
use http::Method;
use tower_usage_plans::model::{
    ApiKey, ApiKeyValue, ApiStage, Quota, QuotaPeriod, Throttle, UsagePlan,
};
use tower_usage_plans::store::Management;
use tower_usage_plans::{MemoryStore, UsagePlanLayer};

#[path = "support/now.rs"]
mod now;
use now::now;

/// The `i`th key's value, as benches/wrk-keys.lua computes it.
fn value(i: usize) -> String {
    format!("benchkey{i:032}")
}

fn store(keys: usize) -> MemoryStore {
    let store = MemoryStore::new();
    let mut plan = UsagePlan::new("plan111", "BenchPlan");
    plan.api_stages.push(ApiStage::new("abc123def4", "prod"));
    plan.throttle = Some(Throttle::new(1e6, 1_000_000).expect("a valid throttle"));
    plan.quota = Some(Quota::new(1_000_000_000_000, QuotaPeriod::Day, 0).expect("a valid quota"));
    now(store.create_usage_plan(plan)).expect("a new plan");
    for i in 0..keys {
        let id = format!("k{i:09}");
        let value = ApiKeyValue::new(value(i)).expect("a valid value");
        store
            .put_api_key(ApiKey::new(id.clone(), format!("c{i}"), value))
            .expect("a new key");
        now(store.create_usage_plan_key("plan111", &id)).expect("a new link");
    }
    store
}

/// Serves GET /items behind usage plans with N keys that never throttle or run out, for wrk
/// (benches/wrk-keys.lua computes the key values).
#[derive(Debug, Parser)]
#[command(name = "bench_server")]
struct Args {
    /// Where to listen: HOST:PORT, HOST a name or an IP address.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:3001")]
    listen: String,
    /// How many keys to register (benchkey and the index on 32 digits).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    keys: usize,
    /// Serve the same router without the layer (the baseline).
    #[arg(long)]
    no_layer: bool,
    /// Turn the rate-limit headers off, to see what they cost on the wire.
    #[arg(long)]
    no_headers: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let (listen, keys, layer, headers) = (args.listen, args.keys, !args.no_layer, !args.no_headers);
    let router = Router::new().route("/items", get(|| async { r#"{"items":[]}"# }));
    let router = if layer {
        let layer = UsagePlanLayer::builder(store(keys))
            .stage("abc123def4", "prod")
            .require_key(Method::GET, "/items")
            .rate_limit_headers(headers)
            .build()
            .expect("the routes and the plan agree");
        router.layer(layer)
    } else {
        router
    };
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on --listen {listen}: {e} (give HOST:PORT)");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "serving GET /items on {listen} {} ({keys} keys)",
        if layer {
            "with the layer"
        } else {
            "without the layer"
        }
    );
    if let Err(e) = axum::serve(listener, router).await {
        eprintln!("server failed: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
