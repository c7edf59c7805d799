//! A request the inner service answers 404 (a route the router does not have) is admitted and
//! counted like any other: the layer does not know the router's routes. With
//! `key_required_by_default(false)` and `require_key` on each real route, it passes uncounted.
#![cfg(feature = "json")]

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_usage_plans::{MemoryStore, UsagePlanLayer};

const KEY: &str = "quota-of-two-0123456789abcdef";

/// One key on a plan with a quota of 2 a month and a throttle that never bites.
fn store() -> MemoryStore {
    MemoryStore::from_json(&format!(
        r#"{{
          "apiKeys": [{{"id": "k1", "value": "{KEY}", "name": "client", "enabled": true}}],
          "usagePlans": [{{"id": "p1", "name": "Two",
            "apiStages": [{{"apiId": "api", "stage": "prod"}}],
            "throttle": {{"burstLimit": 100, "rateLimit": 100.0}},
            "quota": {{"limit": 2, "offset": 0, "period": "MONTH"}}}}],
          "usagePlanKeys": {{"p1": [{{"id": "k1", "type": "API_KEY"}}]}}
        }}"#
    ))
    .unwrap()
}

async fn get_with_key(router: &Router, path: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header("x-api-key", KEY)
        .body(Body::empty())
        .unwrap();
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn items() -> Router {
    Router::new().route("/items", get(|| async { "items" }))
}

#[tokio::test]
async fn a_request_the_router_answers_404_is_counted_against_the_quota() {
    let layer = UsagePlanLayer::builder(store())
        .stage("api", "prod")
        .require_key(Method::GET, "/items")
        .build()
        .unwrap();
    let router = items().layer(layer);
    assert_eq!(
        get_with_key(&router, "/no-such-route").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get_with_key(&router, "/items").await,
        (StatusCode::OK, "items".to_owned())
    );
    // The quota of 2 is spent: the 404 took one.
    assert_eq!(
        get_with_key(&router, "/items").await,
        (
            StatusCode::TOO_MANY_REQUESTS,
            r#"{"message":"Limit Exceeded"}"#.to_owned()
        )
    );
}

#[tokio::test]
async fn with_keys_required_only_on_real_routes_a_404_is_not_counted() {
    let layer = UsagePlanLayer::builder(store())
        .stage("api", "prod")
        .key_required_by_default(false)
        .require_key(Method::GET, "/items")
        .build()
        .unwrap();
    let router = items().layer(layer);
    for _ in 0..3 {
        assert_eq!(
            get_with_key(&router, "/no-such-route").await.0,
            StatusCode::NOT_FOUND
        );
    }
    for _ in 0..2 {
        assert_eq!(
            get_with_key(&router, "/items").await,
            (StatusCode::OK, "items".to_owned())
        );
    }
    assert_eq!(
        get_with_key(&router, "/items").await,
        (
            StatusCode::TOO_MANY_REQUESTS,
            r#"{"message":"Limit Exceeded"}"#.to_owned()
        )
    );
}
