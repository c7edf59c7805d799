//! The README's "Ten lines of axum", whole: `cargo run --example ten_lines`, then
//! `curl -i -H "x-api-key: aBcDeFgHiJkLmNoPqRsTuVwXyZ123456789" http://127.0.0.1:3000/items/1`.
//!
//! It serves `examples/quickstart.json` (the article's keys and plans) on 127.0.0.1:3000.

use axum::{routing::get, Router};
use http::Method;
use tower_usage_plans::{LocalMeter, MemoryStore, UsagePlanLayer};

async fn item() -> &'static str {
    "an item"
}

async fn health() -> &'static str {
    "ok"
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = MemoryStore::from_json(&std::fs::read_to_string("examples/quickstart.json")?)?;
    let meter = LocalMeter::new(); // kept, to read usage (`meter.usage`) and to sweep it
    let layer = UsagePlanLayer::builder(store.clone())
        .stage("abc123def4", "prod") // the stage this app is
        .meter(meter.clone())
        .require_key(Method::GET, "/items/{id}") // AWS's apiKeyRequired
        .no_key(Method::GET, "/health")
        .build_checked() // reads the store's plans: refuses overrides that could never apply
        .await?;
    let app = Router::new()
        .route("/items/{id}", get(item))
        .route("/health", get(health))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("serving on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
