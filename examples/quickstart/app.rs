//! The quickstart's app: the article's API on axum, behind the usage-plan layer.
//! Shared by `examples/quickstart.rs` and `tests/examples/quickstart.rs`, with the Step 5 commands the
//! quickstart prints.

use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::Method;
use tower_usage_plans::error::ConfigError;
use tower_usage_plans::meter::Meter;
use tower_usage_plans::store::KeyStore;
use tower_usage_plans::UsagePlanLayer;

/// GET /items, GET /items/{id} and POST /orders require a key; GET /health does not (used by
/// tests/examples/quickstart.rs; the quickstart uses [`app`]). Any store and meter: MemoryStore and
/// LocalMeter, or Redis's with `--redis`.
#[allow(dead_code)]
pub fn router<St: KeyStore, M: Meter>(
    store: St,
    meter: M,
    api_id: &str,
    stage: &str,
) -> Result<Router, ConfigError> {
    Ok(app(store, meter, api_id, stage)?.0)
}

/// [`router`], and its layer (for the admin API to check plan changes against).
pub fn app<St: KeyStore, M: Meter>(
    store: St,
    meter: M,
    api_id: &str,
    stage: &str,
) -> Result<(Router, UsagePlanLayer<St, M>), ConfigError> {
    let layer = UsagePlanLayer::builder(store)
        .stage(api_id, stage)
        .meter(meter)
        .require_key(Method::GET, "/items")
        .require_key(Method::GET, "/items/{id}")
        .require_key(Method::POST, "/orders")
        .no_key(Method::GET, "/health")
        .build()?;
    let router = Router::new()
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
        .layer(layer.clone());
    Ok((router, layer))
}

/// `s` quoted for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The line that sets `$KEY` to a demo key's value, shown as is (the bundled demo keys are
/// public).
pub fn demo_key_line(value: &str, name: &str) -> String {
    format!("KEY={}   # {name}, a demo key", sh_quote(value))
}

/// The line that sets `$KEY` from a config file with `jq`, so that a real key's value is never
/// printed.
pub fn jq_key_line(id: &str, name: &str, config: &str) -> String {
    let filter = format!(".apiKeys[] | select(.id == \"{id}\") | .value");
    format!(
        "KEY=$(jq -r {} {})   # {name} (needs jq)",
        sh_quote(&filter),
        sh_quote(config)
    )
}

/// The article's Step 5 as shell commands against `base` (`http://127.0.0.1:3000`), after
/// `key_line` sets `$KEY`. The README shows this text for the default address: keep them equal
/// (tests/examples/quickstart.rs checks).
///
/// The expected answers are written beside the commands for the bundled demo file (`demo`); for
/// another file they say only what the plans decide.
pub fn step_5(base: &str, key_line: &str, demo: bool) -> String {
    let text = format!(
        r#"The article's Step 5 (needs curl):
  {key_line}
  curl -s -o /dev/null -w "%{{http_code}}\n" {base}/items   # 403: no key
  curl -s -H "x-api-key: $KEY" {base}/items; echo   # 200 {{"items":[1,2,3]}}
  curl -s -i -H "x-api-key: $KEY" {base}/items | grep -i ratelimit   # the IETF headers
  for i in $(seq 30); do curl -s -o /dev/null -w "%{{http_code}} " -H "x-api-key: $KEY" {base}/items; done; echo   # about twenty 200s, then 429s
  curl -s -H "x-api-key: $KEY" -X POST {base}/orders; echo   # POST /orders: its own bucket
  curl -s {base}/health; echo   # no key needed
"#
    );
    if demo {
        text
    } else {
        text.replace(
            r#"# 200 {"items":[1,2,3]}"#,
            "# 200 with a key of a plan on the stage",
        )
        .replace(
            "# about twenty 200s, then 429s",
            "# 200s until the plan's burst is spent, then 429s",
        )
    }
}
