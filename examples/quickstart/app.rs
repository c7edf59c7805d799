//! The quickstart's app: the article's API on axum, behind the usage-plan layer.
//! Shared by `examples/quickstart.rs` and `tests/quickstart.rs`.

use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::Method;
use tower_usage_plans::clock::Clock;
use tower_usage_plans::error::ConfigError;
use tower_usage_plans::{LocalMeter, MemoryStore, UsagePlanLayer};

/// GET /items, GET /items/{id} and POST /orders require a key; GET /health does not.
pub fn router<C: Clock + Clone>(
    store: MemoryStore,
    meter: LocalMeter<C>,
    api_id: &str,
    stage: &str,
) -> Result<Router, ConfigError> {
    let layer = UsagePlanLayer::builder(store)
        .stage(api_id, stage)
        .meter(meter)
        .require_key(Method::GET, "/items")
        .require_key(Method::GET, "/items/{id}")
        .require_key(Method::POST, "/orders")
        .no_key(Method::GET, "/health")
        .build()?;
    Ok(Router::new()
        .route(
            "/items",
            get(|| async { Json(serde_json::json!({ "items": [1, 2, 3] })) }),
        )
        .route(
            "/items/{id}",
            get(|Path(id): Path<String>| async move { Json(serde_json::json!({ "id": id })) }),
        )
        .route(
            "/orders",
            post(|| async { Json(serde_json::json!({ "order": "accepted" })) }),
        )
        .route("/health", get(|| async { "ok" }))
        .layer(layer))
}
