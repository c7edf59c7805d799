//! The quickstart answers as the article's Step 5 says, for its own config and for any other of
//! that shape: 403 without a key, 200 with one, 429 "Too Many Requests" once the burst is spent,
//! 429 "Limit Exceeded" once the quota is, and each per-method throttle on its own bucket.
#![cfg(feature = "json")]

use crate::app;

use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_usage_plans::clock::ManualClock;
use tower_usage_plans::config::Config;
use tower_usage_plans::period::Date;
use tower_usage_plans::{LocalMeter, MemoryStore};

async fn call(
    router: &Router,
    method: &Method,
    path: &str,
    key: Option<&str>,
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method.clone()).uri(path);
    if let Some(key) = key {
        req = req.header("x-api-key", key);
    }
    let res = router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// A request path for a plan's method path: `{id}` becomes `7`.
fn concrete(resource: &str) -> String {
    resource
        .split('/')
        .map(|s| if s.starts_with('{') { "7" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// Replays Step 5 for every key of `config` that has a plan on `api_id`:`stage`, checking each
/// figure against the config's own numbers.
async fn step_5(config: Config, api_id: &str, stage: &str) {
    // Monday 2024-01-01, 00:00:05 UTC: the start of a DAY, WEEK (offset 1) and MONTH window.
    let clock = ManualClock::at_unix_secs(Date::new(2024, 1, 1).unwrap().unix_secs() + 5);
    let store = MemoryStore::from_config(config.clone()).unwrap();
    let router = app::router(store, LocalMeter::with_clock(clock.clone()), api_id, stage).unwrap();
    let (status, body) = call(&router, &Method::GET, "/items", None).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::FORBIDDEN, r#"{"message":"Forbidden"}"#)
    );
    assert_eq!(
        call(&router, &Method::GET, "/health", None).await.0,
        StatusCode::OK
    );

    let mut checked = 0;
    for (plan_id, key_ids) in &config.usage_plan_keys {
        let plan = config
            .usage_plans
            .iter()
            .find(|p| &p.id == plan_id)
            .unwrap();
        let Some(st) = plan
            .api_stages
            .iter()
            .find(|s| s.api_id == api_id && s.stage == stage)
        else {
            continue;
        };
        for key_id in key_ids {
            let key = config.api_keys.iter().find(|k| &k.id == key_id).unwrap();
            let value = key.value.expose();
            let (status, body) = call(&router, &Method::GET, "/items", Some(value)).await;
            if !key.enabled {
                assert_eq!(status, StatusCode::FORBIDDEN);
                continue;
            }
            assert_eq!(
                (status, body.as_str()),
                (StatusCode::OK, r#"{"items":[1,2,3]}"#)
            );
            let Some(throttle) = plan.throttle else {
                continue;
            };
            // Each method with its own bucket: spend it whole, then one more is 429.
            let mut methods: Vec<(Method, String, u32)> = st
                .throttle
                .iter()
                .map(|(k, t)| {
                    let (resource, m) = k.rsplit_once('/').unwrap();
                    let resource = if resource.is_empty() { "/" } else { resource };
                    (
                        Method::from_bytes(m.as_bytes()).unwrap(),
                        concrete(resource),
                        t.burst_limit,
                    )
                })
                .filter(|(m, path, _)| {
                    matches!(
                        (m.as_str(), path.as_str()),
                        ("GET", "/items") | ("GET", "/items/7") | ("POST", "/orders")
                    )
                })
                .collect();
            // A method no override names draws from the plan's own bucket.
            for (m, path) in [
                (Method::GET, "/items"),
                (Method::GET, "/items/7"),
                (Method::POST, "/orders"),
            ] {
                if !methods.iter().any(|(mm, p, _)| *mm == m && p == path) {
                    methods.push((m, path.to_owned(), throttle.burst_limit));
                    break;
                }
            }
            let mut spent = 1u64;
            for (method, path, burst) in methods {
                clock.advance(Duration::from_secs(3600)); // every bucket full again
                let remaining = plan.quota.map_or(u64::MAX, |q| q.limit - spent);
                if remaining == 0 {
                    break;
                }
                let mut ok = 0u64;
                let mut refused = None;
                for _ in 0..=burst {
                    let (status, body) = call(&router, &method, &path, Some(value)).await;
                    if status == StatusCode::OK {
                        ok += 1;
                    } else {
                        refused = Some((status, body));
                        break;
                    }
                }
                spent += ok;
                assert_eq!(
                    ok,
                    u64::from(burst).min(remaining),
                    "{key_id} {method} {path}"
                );
                let (status, body) = refused.expect("the bucket or the quota ran out");
                assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
                let want = if u64::from(burst) < remaining {
                    r#"{"message":"Too Many Requests"}"#
                } else {
                    r#"{"message":"Limit Exceeded"}"#
                };
                assert_eq!(body, want, "{key_id} {method} {path}");
            }
            // Then spend the quota, a bucket at a time, and the next request is Limit Exceeded.
            if let Some(q) = plan.quota {
                assert!(q.limit <= 200_000, "keep the test's configs small");
                let step = Duration::from_secs_f64(1.0 / throttle.rate_limit);
                let mut admitted = spent;
                let mut last = (StatusCode::OK, String::new());
                let mut guard = 0;
                while admitted <= q.limit && guard < 4 * q.limit + 10 {
                    guard += 1;
                    last = call(&router, &Method::GET, "/items/7", Some(value)).await;
                    match last.0 {
                        StatusCode::OK => admitted += 1,
                        _ if last.1.contains("Limit Exceeded") => break,
                        _ => {
                            clock.advance(step.max(Duration::from_millis(1)) * throttle.burst_limit)
                        }
                    }
                }
                assert_eq!(admitted, q.limit, "{key_id}: exactly the quota is admitted");
                assert_eq!(last.0, StatusCode::TOO_MANY_REQUESTS, "{key_id}");
                assert_eq!(last.1, r#"{"message":"Limit Exceeded"}"#, "{key_id}");
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no key has a plan on {api_id}:{stage}");
}

#[tokio::test]
async fn the_quickstart_config_answers_as_step_5_says() {
    let config = Config::from_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/quickstart.json"
    ))
    .unwrap();
    let mut small = config.clone();
    // The article's numbers, with quotas small enough to spend in a test.
    for plan in &mut small.usage_plans {
        if let Some(q) = plan.quota.as_mut() {
            q.limit = q.limit.min(300);
        }
    }
    step_5(small, "abc123def4", "prod").await;
}

#[tokio::test]
async fn any_config_of_that_shape_answers_as_step_5_says() {
    let json = r#"{
      "apiKeys": [
        {"id": "k1", "value": "k1-0123456789abcdefghijklmn", "name": "one", "enabled": true,
         "createdDate": "2024-01-15T10:00:00+00:00", "stageKeys": [], "tags": {"team": "a"}},
        {"id": "k2", "value": "k2-0123456789abcdefghijklmn", "name": "two", "enabled": false},
        {"id": "k3", "value": "k3-0123456789abcdefghijklmn", "name": "three"}
      ],
      "usagePlans": [
        {"id": "gold", "name": "Gold", "productCode": "x",
         "apiStages": [{"apiId": "shop", "stage": "live",
                        "throttle": {"/items/{id}/GET": {"burstLimit": 4, "rateLimit": 1.5},
                                     "/orders/POST": {"burstLimit": 2, "rateLimit": 0.5}}}],
         "throttle": {"burstLimit": 3, "rateLimit": 2.0},
         "quota": {"limit": 40, "offset": 1, "period": "WEEK"}},
        {"id": "tin", "name": "Tin",
         "apiStages": [{"apiId": "shop", "stage": "live"}],
         "throttle": {"burstLimit": 2, "rateLimit": 0.25},
         "quota": {"limit": 12, "offset": 0, "period": "MONTH"}}
      ],
      "usagePlanKeys": {
        "gold": [{"id": "k1", "type": "API_KEY", "name": "one"}, {"id": "k2", "type": "API_KEY"}],
        "tin": [{"id": "k3", "type": "API_KEY"}]
      }
    }"#;
    step_5(Config::from_json(json).unwrap(), "shop", "live").await;
}

#[tokio::test]
async fn the_quickstart_serves_over_a_real_socket() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = Config::from_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/quickstart.json"
    ))
    .unwrap();
    let value = config.api_keys[0].value.expose().to_owned();
    let router = app::router(
        MemoryStore::from_config(config).unwrap(),
        LocalMeter::new(),
        "abc123def4",
        "prod",
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    for (key, want) in [
        (None, "HTTP/1.1 403"),
        (Some(value.as_str()), "HTTP/1.1 200"),
    ] {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let header = key
            .map(|k| format!("x-api-key: {k}\r\n"))
            .unwrap_or_default();
        s.write_all(
            format!("GET /items HTTP/1.1\r\nhost: x\r\n{header}connection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with(want), "{out}");
    }
    server.abort();
}

/// The README shows the Step 5 commands the quickstart prints for its default address and demo
/// config, word for word (tests/examples/cli.rs runs them as printed).
#[test]
fn the_readme_shows_the_step_5_the_quickstart_prints() {
    let config = Config::from_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/quickstart.json"
    ))
    .unwrap();
    let key = &config.api_keys[0];
    let printed = app::step_5(
        "http://127.0.0.1:3000",
        &app::demo_key_line(key.value.expose(), &key.name),
        true,
    );
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let body = printed.split_once('\n').unwrap().1;
    assert!(
        readme.contains(body),
        "README.md should show, in its Step 5 block:\n{body}"
    );
}
