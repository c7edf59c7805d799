//! The layer on a real axum router: who is admitted, and how the others are answered.

use crate::common;

use std::time::Duration;

use axum::body::Body;
use common::*;
use http::{Method, Request, StatusCode};
use tower_usage_plans::clock::ManualClock;
use tower_usage_plans::error::ConfigError;
use tower_usage_plans::key::{KeySource, UsageIdentifierKey};
use tower_usage_plans::model::{ApiKey, ApiKeyValue, ApiStage, QuotaPeriod, UsagePlan};
use tower_usage_plans::patch::PatchOperation;
use tower_usage_plans::period::window;
use tower_usage_plans::response::{GatewayResponse, ResponseType};
use tower_usage_plans::store::NewApiKey;
use tower_usage_plans::store::{ApiKeyQuery, Management};
use tower_usage_plans::{MemoryStore, UsagePlanLayer};

#[tokio::test]
async fn the_articles_step_5() {
    let app = app();
    let a = send(&app.router, Method::GET, "/items", None).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.body, r#"{"message":"Forbidden"}"#);
    assert_eq!(a.header("x-amzn-errortype"), Some("ForbiddenException"));
    assert_eq!(a.header("content-type"), Some("application/json"));
    let a = send(&app.router, Method::GET, "/items", Some(FREE)).await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "items"));
    assert_eq!(hits(&app), 1);
}

#[tokio::test]
async fn a_method_without_key_passes_untouched_and_uncounted() {
    let app = app();
    for _ in 0..50 {
        let a = send(&app.router, Method::GET, "/health", None).await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.header("ratelimit").is_none());
    }
    // With a key too: nothing is counted, so the free key still has its whole burst for /orders.
    send(&app.router, Method::GET, "/health", Some(FREE)).await;
    assert!(app.meter.is_empty());
    let (ok, throttled) = burst(&app.router, Method::POST, "/orders", FREE, 6).await;
    assert_eq!((ok, throttled), (5, 1));
}

#[tokio::test]
async fn bad_keys_get_403_and_never_reach_the_store_data() {
    let app = app();
    let one_off = format!("{}X", &FREE[..FREE.len() - 1]);
    let long = "a".repeat(4096);
    let cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        long.into_bytes(),
        vec![0xff; 30],
        b"short".to_vec(),
        one_off.into_bytes(),
        format!("{FREE} ").into_bytes(),
    ];
    for value in cases {
        let req = Request::get("/items")
            .header("x-api-key", http::HeaderValue::from_bytes(&value).unwrap())
            .body(Body::empty())
            .unwrap();
        let a = send_req(&app.router, req).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{value:?}");
        assert_eq!(a.body, r#"{"message":"Forbidden"}"#);
    }
    assert_eq!(hits(&app), 0);
    assert!(app.meter.is_empty(), "no meter state for unknown keys");
    let keys = app.store.get_api_keys(&Default::default()).await.unwrap();
    assert_eq!(keys.items.len(), 2);
}

#[tokio::test]
async fn burst_then_429_with_retry_after_and_no_quota_spent() {
    let app = app();
    // POST /orders: 2 rps, burst 5 (the plan's override).
    let (ok, throttled) = burst(&app.router, Method::POST, "/orders", FREE, 8).await;
    assert_eq!((ok, throttled), (5, 3));
    let a = send(&app.router, Method::POST, "/orders", Some(FREE)).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.body, r#"{"message":"Too Many Requests"}"#);
    assert_eq!(
        a.header("x-amzn-errortype"),
        Some("TooManyRequestsException")
    );
    assert_eq!(a.header("retry-after"), Some("1"));
    assert_eq!(hits(&app), 5);
    // Half a second later, one token (2 per second).
    app.clock.advance(Duration::from_millis(500));
    let (ok, throttled) = burst(&app.router, Method::POST, "/orders", FREE, 2).await;
    assert_eq!((ok, throttled), (1, 1));
    // Only the 6 admitted requests count against the quota of 1000.
    let a = send(&app.router, Method::GET, "/items", Some(FREE)).await;
    assert!(
        a.header("ratelimit").unwrap().contains("\"day\";r=993;"),
        "{:?}",
        a.headers
    );
}

#[tokio::test]
async fn fractional_rates_refill_slowly() {
    let store = article_store();
    store
        .update_usage_plan(
            "plan111",
            &[PatchOperation::replace("/throttle/rateLimit", "0.1")],
        )
        .await
        .unwrap();
    store
        .update_usage_plan(
            "plan111",
            &[PatchOperation::replace("/throttle/burstLimit", "1")],
        )
        .await
        .unwrap();
    let app = app_from(store, ManualClock::at_unix_secs(noon()), |b| b);
    assert_eq!(
        send(&app.router, Method::GET, "/items/1", Some(FREE))
            .await
            .status,
        StatusCode::OK
    );
    let a = send(&app.router, Method::GET, "/items/1", Some(FREE)).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.header("retry-after"), Some("10"));
    app.clock.advance(Duration::from_secs(9));
    let a = send(&app.router, Method::GET, "/items/1", Some(FREE)).await;
    assert_eq!(a.header("retry-after"), Some("1"));
    app.clock.advance(Duration::from_secs(1));
    assert_eq!(
        send(&app.router, Method::GET, "/items/1", Some(FREE))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_override_replaces_the_plan_throttle_with_its_own_bucket() {
    let app = app();
    // GET /items has burst 20, above the plan's own 10: it is not an extra bucket on top.
    let (ok, throttled) = burst(&app.router, Method::GET, "/items", FREE, 25).await;
    assert_eq!((ok, throttled), (20, 5));
    // GET /items/{id} uses the plan's bucket (10), untouched by /items.
    let (ok, throttled) = burst(&app.router, Method::GET, "/items/7", FREE, 12).await;
    assert_eq!((ok, throttled), (10, 2));
    // POST /orders has its own bucket of 5.
    let (ok, throttled) = burst(&app.router, Method::POST, "/orders", FREE, 7).await;
    assert_eq!((ok, throttled), (5, 2));
}

#[tokio::test]
async fn templated_overrides_match_concrete_paths() {
    let store = article_store();
    store
        .update_usage_plan(
            "plan222",
            &[
                PatchOperation::replace(
                    "/apiStages/abc123def4:prod/throttle/items~1{id}/GET/burstLimit",
                    "3",
                ),
                PatchOperation::replace(
                    "/apiStages/abc123def4:prod/throttle/items~1{id}/GET/rateLimit",
                    "1",
                ),
            ],
        )
        .await
        .unwrap();
    let app = app_from(store, ManualClock::at_unix_secs(noon()), |b| b);
    let (ok, throttled) = burst(&app.router, Method::GET, "/items/42", PREMIUM, 5).await;
    assert_eq!((ok, throttled), (3, 2));
    let (ok, _) = burst(&app.router, Method::GET, "/items", PREMIUM, 50).await;
    assert_eq!(ok, 50);
}

#[tokio::test]
async fn quota_used_up_is_429_limit_exceeded_until_midnight_utc() {
    let store = article_store();
    store
        .update_usage_plan("plan111", &[PatchOperation::replace("/quota/limit", "3")])
        .await
        .unwrap();
    let app = app_from(store, ManualClock::at_unix_secs(noon()), |b| b);
    let (ok, refused) = burst(&app.router, Method::GET, "/items", FREE, 5).await;
    assert_eq!((ok, refused), (3, 2));
    let a = send(&app.router, Method::GET, "/items", Some(FREE)).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.body, r#"{"message":"Limit Exceeded"}"#);
    assert_eq!(a.header("x-amzn-errortype"), Some("LimitExceededException"));
    assert_eq!(a.header("retry-after"), Some("43200"));
    // Retry-After counts down with the clock (each answer says its own figure).
    app.clock.advance(Duration::from_secs(100));
    let a = send(&app.router, Method::GET, "/items", Some(FREE)).await;
    assert_eq!(a.header("retry-after"), Some("43100"));
    // A refused-for-quota request takes no token: after the window turns, the burst is whole.
    app.clock.advance(Duration::from_secs(43_099));
    let a = send(&app.router, Method::GET, "/items", Some(FREE)).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.header("retry-after"), Some("1"));
    app.clock.advance(Duration::from_secs(1));
    let (ok, refused) = burst(&app.router, Method::GET, "/items", FREE, 4).await;
    assert_eq!((ok, refused), (3, 1));
    assert_eq!(hits(&app), 6);
}

#[tokio::test]
async fn rate_limit_headers_on_admitted_and_refused_answers() {
    let app = app();
    let a = send(&app.router, Method::POST, "/orders", Some(FREE)).await;
    assert_eq!(
        a.header("ratelimit-policy"),
        Some("\"burst\";q=5;w=3, \"day\";q=1000;w=86400")
    );
    assert_eq!(
        a.header("ratelimit"),
        Some("\"burst\";r=4;t=1, \"day\";r=999;t=43200")
    );
    burst(&app.router, Method::POST, "/orders", FREE, 4).await;
    let a = send(&app.router, Method::POST, "/orders", Some(FREE)).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        a.header("ratelimit"),
        Some("\"burst\";r=0;t=1, \"day\";r=995;t=43200")
    );
    assert_eq!(a.header("retry-after"), Some("1"));
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(
        a.header("x-amzn-errortype"),
        Some("TooManyRequestsException")
    );

    let off = app_from(article_store(), ManualClock::at_unix_secs(noon()), |b| {
        b.rate_limit_headers(false)
    });
    let a = send(&off.router, Method::POST, "/orders", Some(FREE)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.header("ratelimit").is_none() && a.header("ratelimit-policy").is_none());
}

#[tokio::test]
async fn each_plan_reports_its_own_policy_even_when_requests_alternate() {
    let app = app();
    let month = window(QuotaPeriod::Month, 0, noon()).len_secs();
    // GET /items: FreePlan's override (10 a second, 20 at once), PremiumPlan's throttle (50, 100).
    let free = "\"burst\";q=20;w=2, \"day\";q=1000;w=86400";
    let premium = format!("\"burst\";q=100;w=2, \"month\";q=100000;w={month}");
    for _ in 0..3 {
        let a = send(&app.router, Method::GET, "/items", Some(FREE)).await;
        assert_eq!(a.header("ratelimit-policy"), Some(free));
        let a = send(&app.router, Method::GET, "/items", Some(PREMIUM)).await;
        assert_eq!(a.header("ratelimit-policy"), Some(premium.as_str()));
    }
    // A changed plan reports its new limits from the next request.
    app.store
        .update_usage_plan(
            "plan222",
            &[PatchOperation::replace("/quota/limit", "5000")],
        )
        .await
        .unwrap();
    let a = send(&app.router, Method::GET, "/items", Some(PREMIUM)).await;
    assert_eq!(
        a.header("ratelimit-policy"),
        Some(format!("\"burst\";q=100;w=2, \"month\";q=5000;w={month}").as_str())
    );
}

#[tokio::test]
async fn answers_can_be_customised() {
    let app = app_from(article_store(), ManualClock::at_unix_secs(noon()), |b| {
        b.response(
            ResponseType::Forbidden,
            GatewayResponse::json(
                StatusCode::UNAUTHORIZED,
                r#"{"error":"get a key at example.com"}"#,
            ),
        )
        .response(
            ResponseType::Throttled,
            GatewayResponse::json(StatusCode::SERVICE_UNAVAILABLE, "slow down"),
        )
    });
    let a = send(&app.router, Method::GET, "/items", None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.body, r#"{"error":"get a key at example.com"}"#);
    burst(&app.router, Method::POST, "/orders", FREE, 5).await;
    let a = send(&app.router, Method::POST, "/orders", Some(FREE)).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "slow down")
    );
    assert_eq!(a.header("retry-after"), Some("1"));
    assert_eq!(
        a.header("x-amzn-errortype"),
        Some("TooManyRequestsException")
    );
}

#[tokio::test]
async fn a_custom_answers_own_headers_win_over_the_layers() {
    let store = article_store();
    store
        .update_usage_plan("plan111", &[PatchOperation::replace("/quota/limit", "1")])
        .await
        .unwrap();
    let mut custom = GatewayResponse::json(StatusCode::TOO_MANY_REQUESTS, "come back tomorrow");
    custom
        .headers
        .insert("retry-after", "86400".parse().unwrap());
    custom.headers.insert("ratelimit", "mine".parse().unwrap());
    custom.headers.insert("x-team", "billing".parse().unwrap());
    let app = app_from(store, ManualClock::at_unix_secs(noon()), |b| {
        b.response(ResponseType::QuotaExceeded, custom)
    });
    assert_eq!(
        send(&app.router, Method::GET, "/items", Some(FREE))
            .await
            .status,
        StatusCode::OK
    );
    let a = send(&app.router, Method::GET, "/items", Some(FREE)).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "come back tomorrow")
    );
    assert_eq!(a.header("retry-after"), Some("86400"));
    assert_eq!(a.header("ratelimit"), Some("mine"));
    assert_eq!(a.header("x-team"), Some("billing"));
    assert_eq!(a.header("x-amzn-errortype"), Some("LimitExceededException"));
    assert!(a.header("ratelimit-policy").is_some());
}

#[tokio::test]
async fn disabled_keys_and_keys_without_a_plan_on_the_stage_get_403() {
    let store = article_store();
    store
        .put_api_key(ApiKey::new(
            "lonely",
            "no plan",
            ApiKeyValue::new("L".repeat(30)).unwrap(),
        ))
        .unwrap();
    let mut dev = UsagePlan::new("devplan", "Dev");
    dev.api_stages.push(ApiStage::new(API, "dev"));
    store.create_usage_plan(dev).await.unwrap();
    store
        .put_api_key(ApiKey::new(
            "devkey",
            "dev only",
            ApiKeyValue::new("D".repeat(30)).unwrap(),
        ))
        .unwrap();
    store
        .create_usage_plan_key("devplan", "devkey")
        .await
        .unwrap();
    let app = app_from(store.clone(), ManualClock::at_unix_secs(noon()), |b| b);
    for key in ["L".repeat(30), "D".repeat(30)] {
        let a = send(&app.router, Method::GET, "/items", Some(&key)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
    }
    // Changes apply to the next request, with no rebuild.
    store
        .update_api_key("key111aaa", &[PatchOperation::replace("/enabled", "false")])
        .await
        .unwrap();
    assert_eq!(
        send(&app.router, Method::GET, "/items", Some(FREE))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    store
        .update_api_key("key111aaa", &[PatchOperation::replace("/enabled", "true")])
        .await
        .unwrap();
    assert_eq!(
        send(&app.router, Method::GET, "/items", Some(FREE))
            .await
            .status,
        StatusCode::OK
    );
    store
        .create_usage_plan_key("plan111", "lonely")
        .await
        .unwrap();
    assert_eq!(
        send(&app.router, Method::GET, "/items", Some(&"L".repeat(30)))
            .await
            .status,
        StatusCode::OK
    );
    store
        .delete_usage_plan_key("plan111", "lonely")
        .await
        .unwrap();
    assert_eq!(
        send(&app.router, Method::GET, "/items", Some(&"L".repeat(30)))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(hits(&app), 2);
}

#[tokio::test]
async fn runtime_plan_changes_apply_to_the_next_request() {
    let app = app();
    let (ok, _) = burst(&app.router, Method::GET, "/items/1", FREE, 10).await;
    assert_eq!(ok, 10);
    assert_eq!(
        send(&app.router, Method::GET, "/items/1", Some(FREE))
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A bigger bucket from the next request: the key keeps what it spent (10 of the 30), so a
    // plan change never hands out a fresh burst.
    app.store
        .update_usage_plan(
            "plan111",
            &[PatchOperation::replace("/throttle/burstLimit", "30")],
        )
        .await
        .unwrap();
    let (ok, throttled) = burst(&app.router, Method::GET, "/items/1", FREE, 21).await;
    assert_eq!((ok, throttled), (20, 1));
}

#[tokio::test]
async fn a_key_is_in_one_plan_per_stage() {
    let store = article_store();
    let err = store
        .create_usage_plan_key("plan222", "key111aaa")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("only one plan per stage"), "{err}");
    assert!(!err.to_string().contains(FREE));
    let app = app_from(store, ManualClock::at_unix_secs(noon()), |b| b);
    let a = send(&app.router, Method::GET, "/items", Some(FREE)).await;
    assert_eq!(
        a.header("ratelimit-policy"),
        Some("\"burst\";q=20;w=2, \"day\";q=1000;w=86400")
    );
}

#[tokio::test]
async fn mistake_1_an_override_on_a_method_without_key_is_reported() {
    let store = article_store();
    store
        .update_usage_plan(
            "plan111",
            &[
                PatchOperation::replace(
                    "/apiStages/abc123def4:prod/throttle/health/GET/burstLimit",
                    "1",
                ),
                PatchOperation::replace(
                    "/apiStages/abc123def4:prod/throttle/health/GET/rateLimit",
                    "1",
                ),
            ],
        )
        .await
        .unwrap();
    let err = builder(store.clone(), &ManualClock::default())
        .build_checked()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConfigError::UnreachableOverride { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("plan111") && msg.contains("/health/GET"),
        "{msg}"
    );
    // AWS's own default (no key unless marked) makes an unmarked method unreachable too.
    let store = article_store();
    let err = UsagePlanLayer::builder(store)
        .stage(API, STAGE)
        .key_required_by_default(false)
        .require_key(Method::GET, "/items")
        .build_checked()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/orders/POST"), "{err}");
    // The plans given to the builder are checked by `build` (no store read).
    let plan = article_store().get_usage_plan("plan111").await.unwrap();
    let err = UsagePlanLayer::builder(MemoryStore::new())
        .stage(API, STAGE)
        .no_key(Method::GET, "/items")
        .check_plans([&plan])
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("/items/GET"), "{err}");
}

#[tokio::test]
async fn other_key_sources() {
    let store = article_store();
    let app = app_from(store.clone(), ManualClock::at_unix_secs(noon()), |b| {
        b.key_source(KeySource::Header(http::HeaderName::from_static(
            "x-client-key",
        )))
    });
    assert_eq!(
        send(&app.router, Method::GET, "/items", Some(FREE))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let req = Request::get("/items")
        .header("x-client-key", FREE)
        .body(Body::empty())
        .unwrap();
    assert_eq!(send_req(&app.router, req).await.status, StatusCode::OK);

    // An authorizer in front puts the usage identifier key in the extensions.
    let layer = builder(store, &ManualClock::at_unix_secs(noon()))
        .key_source(KeySource::Authorizer)
        .build()
        .unwrap();
    let router = axum::Router::new()
        .route("/items", axum::routing::get(|| async { "items" }))
        .layer(layer)
        .layer(axum::middleware::from_fn(
            |mut req: axum::extract::Request, next: axum::middleware::Next| async move {
                if req
                    .headers()
                    .get("authorization")
                    .is_some_and(|v| v == "Bearer client-b")
                {
                    req.extensions_mut()
                        .insert(UsageIdentifierKey::new(PREMIUM));
                }
                next.run(req).await
            },
        ));
    let req = Request::get("/items")
        .header("authorization", "Bearer client-b")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send_req(&router, req).await.status, StatusCode::OK);
    let req = Request::get("/items")
        .header("x-api-key", PREMIUM)
        .body(Body::empty())
        .unwrap();
    assert_eq!(send_req(&router, req).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn new_serves_any_stage_and_requires_keys_everywhere() {
    let store = MemoryStore::new();
    let key = store.create_api_key(NewApiKey::named("c")).await.unwrap();
    let mut plan = UsagePlan::new("p", "P");
    plan.api_stages.push(ApiStage::new("api", "beta"));
    plan.throttle = Some(throttle(1.0, 2));
    store.create_usage_plan(plan).await.unwrap();
    store.create_usage_plan_key("p", &key.id).await.unwrap();
    let router = axum::Router::new()
        .route("/anything", axum::routing::get(|| async { "yes" }))
        .layer(UsagePlanLayer::new(store));
    assert_eq!(
        send(&router, Method::GET, "/anything", None).await.status,
        StatusCode::FORBIDDEN
    );
    let (ok, throttled) = burst(&router, Method::GET, "/anything", key.value.expose(), 3).await;
    assert_eq!((ok, throttled), (2, 1));
}

#[tokio::test]
async fn debug_output_never_shows_a_key_value() {
    let app = app();
    let layer = builder(app.store.clone(), &app.clock).build().unwrap();
    let text = format!(
        "{layer:?} {:?} {:?} {:?}",
        app.store,
        app.store
            .get_api_keys(&ApiKeyQuery {
                include_values: true,
                ..ApiKeyQuery::default()
            })
            .await
            .unwrap(),
        app.store.to_config()
    );
    assert!(!text.contains(FREE) && !text.contains(PREMIUM), "{text}");
}

#[tokio::test]
async fn the_root_resource_is_written_with_two_slashes() {
    let store = article_store();
    store
        .update_usage_plan(
            "plan222",
            &[
                PatchOperation::replace("/apiStages/abc123def4:prod/throttle//GET/burstLimit", "2"),
                PatchOperation::replace("/apiStages/abc123def4:prod/throttle//GET/rateLimit", "1"),
            ],
        )
        .await
        .unwrap();
    assert!(store.get_usage_plan("plan222").await.unwrap().api_stages[0]
        .throttle
        .contains_key("//GET"));
    let layer = builder(store, &ManualClock::at_unix_secs(noon()))
        .require_key(Method::GET, "/")
        .build()
        .unwrap();
    let router = axum::Router::new()
        .route("/", axum::routing::get(|| async { "root" }))
        .route("/items", axum::routing::get(|| async { "items" }))
        .layer(layer);
    let (ok, throttled) = burst(&router, Method::GET, "/", PREMIUM, 3).await;
    assert_eq!((ok, throttled), (2, 1));
    let (ok, _) = burst(&router, Method::GET, "/items", PREMIUM, 10).await;
    assert_eq!(ok, 10, "the root's bucket is its own");
}

/// Fault 4 of the engine re-lay: the wall clock ran the token buckets, so a clock stepped back
/// an hour answered 429 with Retry-After 3599.
#[tokio::test]
async fn a_wall_clock_stepped_back_never_locks_a_key_out() {
    let app = app();
    // FreePlan: burst 10, rate 5, 1000 a DAY; GET /items/1 draws from the plan's bucket.
    let a = send(&app.router, Method::GET, "/items/1", Some(FREE)).await;
    assert_eq!(a.status, StatusCode::OK);
    app.clock.set_unix_secs(noon() - 3600);
    let a = send(&app.router, Method::GET, "/items/1", Some(FREE)).await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "retry-after {:?}",
        a.header("retry-after")
    );
    // And the day's quota goes on counting in the day already seen.
    assert_eq!(
        a.header("ratelimit"),
        Some("\"burst\";r=8;t=1, \"day\";r=998;t=46800")
    );
}

/// A `RequestCost` set by a layer outside the usage-plan layer takes that many tokens and counts
/// that many against the quota.
#[tokio::test]
async fn a_request_cost_from_an_outer_layer_counts_that_many() {
    let app = app();
    let costly = app.router.clone().layer(axum::middleware::from_fn(
        |mut req: Request<Body>, next: axum::middleware::Next| async move {
            if req.uri().path() == "/items/7" {
                req.extensions_mut()
                    .insert(tower_usage_plans::RequestCost::new(4));
            }
            next.run(req).await
        },
    ));
    // FreePlan: burst 10, 1000 a DAY, on GET /items/{id}.
    let a = send(&costly, Method::GET, "/items/7", Some(FREE)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.header("ratelimit"),
        Some("\"burst\";r=6;t=1, \"day\";r=996;t=43200")
    );
    let a = send(&costly, Method::GET, "/items/1", Some(FREE)).await;
    assert_eq!(
        a.header("ratelimit"),
        Some("\"burst\";r=5;t=1, \"day\";r=995;t=43200")
    );
    // Cost 4 with 5 tokens left passes once more; then 1 token is left: 429.
    assert_eq!(
        send(&costly, Method::GET, "/items/7", Some(FREE))
            .await
            .status,
        StatusCode::OK
    );
    let a = send(&costly, Method::GET, "/items/7", Some(FREE)).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
}
