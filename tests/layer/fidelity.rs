//! What real configurations, AWS's tools and browsers send, replayed against the layer (issue 9):
//! zero throttles, `ANY`, templated overrides, an ambiguous key, HEAD, CORS preflights, and the
//! patch paths AWS's CLI and Terraform write.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use common::*;
use http::{Method, Request, StatusCode};
use tower_usage_plans::clock::ManualClock;
use tower_usage_plans::model::{ApiKey, ApiKeyValue, ApiStage, UsagePlan};
use tower_usage_plans::patch::PatchOperation;
use tower_usage_plans::store::Management;
use tower_usage_plans::{LocalMeter, MemoryStore, UsagePlanLayer};

const OTHER_API: &str = "zzz999yyy8";

/// A router whose every handler counts its runs: GET (and so HEAD), DELETE and OPTIONS on
/// `/items` and `/items/{id}`, and GET `/`.
fn router(hits: &Arc<AtomicUsize>) -> Router {
    let counted = |body: &'static str| {
        let hits = hits.clone();
        move || {
            hits.fetch_add(1, Ordering::SeqCst);
            async move { body }
        }
    };
    Router::new()
        .route("/", get(counted("root")))
        .route(
            "/items",
            get(counted("items"))
                .delete(counted("deleted"))
                .options(counted("preflight")),
        )
        .route(
            "/items/{id}",
            get(counted("item"))
                .delete(counted("deleted"))
                .options(counted("preflight")),
        )
}

/// One key (FREE, id key111aaa) in a plan of 100 rps / burst 100 on abc123def4:prod with these
/// per-method throttles.
fn store_with(overrides: &[(&str, f64, u32)]) -> MemoryStore {
    let store = MemoryStore::new();
    store
        .put_api_key(ApiKey::new(
            "key111aaa",
            "ClientA",
            ApiKeyValue::new(FREE).unwrap(),
        ))
        .unwrap();
    let mut plan = UsagePlan::new("plan111", "Plan");
    plan.throttle = Some(throttle(100.0, 100));
    let mut st = ApiStage::new(API, STAGE);
    for (k, rate, burst) in overrides {
        st.throttle.insert((*k).into(), throttle(*rate, *burst));
    }
    plan.api_stages.push(st);
    now(store.create_usage_plan(plan)).unwrap();
    now(store.create_usage_plan_key("plan111", "key111aaa")).unwrap();
    store
}

struct Fixture {
    router: Router,
    hits: Arc<AtomicUsize>,
    store: MemoryStore,
}

impl Fixture {
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    async fn send(&self, method: Method, path: &str, key: Option<&str>) -> Answer {
        send(&self.router, method, path, key).await
    }

    async fn statuses(&self, method: Method, path: &str, n: usize) -> Vec<u16> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(
                self.send(method.clone(), path, Some(FREE))
                    .await
                    .status
                    .as_u16(),
            );
        }
        out
    }
}

/// The layer from `builder` (stage abc123def4:prod, a manual clock) on [`router`].
fn fixture(
    store: MemoryStore,
    f: impl FnOnce(
        tower_usage_plans::UsagePlanLayerBuilder<MemoryStore, LocalMeter<ManualClock>>,
    )
        -> tower_usage_plans::UsagePlanLayerBuilder<MemoryStore, LocalMeter<ManualClock>>,
) -> Fixture {
    let clock = ManualClock::at_unix_secs(noon());
    let b = UsagePlanLayer::builder(store.clone())
        .stage(API, STAGE)
        .meter(LocalMeter::with_clock(clock));
    let layer = f(b).build().expect("the layer builds");
    let hits = Arc::new(AtomicUsize::new(0));
    Fixture {
        router: router(&hits).layer(layer),
        hits,
        store,
    }
}

// ---------------------------------------------------------------------- 1. zero throttles block

const ZERO_BURST: &str = r#"{
    "apiKeys": [{"id": "key111aaa", "value": "aBcDeFgHiJkLmNoPqRsTuVwXyZ123456789"}],
    "usagePlans": [{"id": "plan111", "name": "Terraform",
                    "apiStages": [{"apiId": "abc123def4", "stage": "prod"}],
                    "throttle": {"burstLimit": 0, "rateLimit": 10.0}}],
    "usagePlanKeys": {"plan111": [{"id": "key111aaa", "type": "API_KEY"}]}
}"#;

#[tokio::test]
async fn a_plan_with_burst_0_loads_and_every_request_gets_429_without_running_the_handler() {
    let store = MemoryStore::from_json(ZERO_BURST).expect("a zero burst loads, as on AWS");
    let f = fixture(store, |b| b);
    for _ in 0..3 {
        let a = f.send(Method::GET, "/items", Some(FREE)).await;
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(a.body, r#"{"message":"Too Many Requests"}"#);
        assert_eq!(a.header("retry-after"), Some("60"));
        assert_eq!(a.header("ratelimit-policy"), Some("\"burst\";q=0;w=60"));
    }
    assert_eq!(f.hits(), 0, "the inner service never runs");
}

#[tokio::test]
async fn a_method_switched_off_with_0_0_blocks_only_that_method() {
    let f = fixture(
        store_with(&[("/items/DELETE", 0.0, 0), ("/items/{id}/GET", 0.0, 5)]),
        |b| b,
    );
    assert_eq!(f.statuses(Method::DELETE, "/items", 2).await, [429, 429]);
    // A rate of 0 blocks too, whatever the burst.
    assert_eq!(f.statuses(Method::GET, "/items/7", 2).await, [429, 429]);
    assert_eq!(f.statuses(Method::GET, "/items", 2).await, [200, 200]);
    assert_eq!(f.hits(), 2);
}

#[tokio::test]
async fn patches_may_set_a_throttle_to_zero_and_back() {
    let f = fixture(store_with(&[]), |b| b);
    assert_eq!(f.statuses(Method::GET, "/items", 1).await, [200]);
    let at = "/apiStages/abc123def4:prod/throttle/items/GET";
    f.store
        .update_usage_plan(
            "plan111",
            &[
                PatchOperation::replace(format!("{at}/rateLimit"), "0"),
                PatchOperation::replace(format!("{at}/burstLimit"), "0"),
            ],
        )
        .await
        .expect("0/0 switches a method off, as the console and CDK do");
    assert_eq!(f.statuses(Method::GET, "/items", 1).await, [429]);
    f.store
        .update_usage_plan(
            "plan111",
            &[PatchOperation::replace("/throttle/burstLimit", "0")],
        )
        .await
        .expect("a plan's burst may be 0");
    assert_eq!(f.statuses(Method::GET, "/items/1", 1).await, [429]);
    f.store
        .update_usage_plan(
            "plan111",
            &[
                PatchOperation::replace("/throttle/burstLimit", "3"),
                PatchOperation::remove(at),
            ],
        )
        .await
        .unwrap();
    assert_eq!(f.statuses(Method::GET, "/items", 1).await, [200]);
}

// ------------------------------------------------------------ 2. limits that silently never apply

#[tokio::test]
async fn any_covers_every_method_of_the_resource_without_its_own_entry() {
    let f = fixture(
        store_with(&[("/items/ANY", 0.1, 1), ("/items/DELETE", 100.0, 100)]),
        |b| b,
    );
    assert_eq!(f.statuses(Method::GET, "/items", 2).await, [200, 429]);
    // DELETE has its own entry; another resource has the plan's throttle.
    assert_eq!(
        f.statuses(Method::DELETE, "/items", 3).await,
        [200, 200, 200]
    );
    assert_eq!(
        f.statuses(Method::GET, "/items/1", 3).await,
        [200, 200, 200]
    );
}

/// Plan A (FREE) on abc123def4 with `/items/{id}/GET` at burst 1; plan B (PREMIUM) on another
/// API with `/items/{itemId}/DELETE`: their templates clash in one router.
fn two_apis() -> MemoryStore {
    let store = store_with(&[("/items/{id}/GET", 0.001, 1)]);
    store
        .put_api_key(ApiKey::new(
            "key222bbb",
            "ClientB",
            ApiKeyValue::new(PREMIUM).unwrap(),
        ))
        .unwrap();
    let mut plan = UsagePlan::new("plan222", "Other API");
    plan.throttle = Some(throttle(100.0, 100));
    let mut st = ApiStage::new(OTHER_API, STAGE);
    st.throttle
        .insert("/items/{itemId}/DELETE".into(), throttle(0.001, 2));
    plan.api_stages.push(st);
    now(store.create_usage_plan(plan)).unwrap();
    now(store.create_usage_plan_key("plan222", "key222bbb")).unwrap();
    store
}

#[tokio::test]
async fn new_keeps_the_templated_overrides_of_plans_of_different_apis() {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = router(&hits).layer(UsagePlanLayer::new(two_apis()));
    let get = |key| send(&app, Method::GET, "/items/7", Some(key));
    assert_eq!(get(FREE).await.status, StatusCode::OK);
    assert_eq!(get(FREE).await.status, StatusCode::TOO_MANY_REQUESTS);
    let delete = || send(&app, Method::DELETE, "/items/7", Some(PREMIUM));
    assert_eq!(delete().await.status, StatusCode::OK);
    assert_eq!(delete().await.status, StatusCode::OK);
    assert_eq!(delete().await.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn build_names_the_plan_and_key_of_an_override_that_can_never_match() {
    for stage in [None, Some((API, STAGE))] {
        let store = store_with(&[("/items/{a}{b}/GET", 1.0, 1)]);
        let mut b = UsagePlanLayer::builder(store);
        if let Some((api, st)) = stage {
            b = b.stage(api, st);
        }
        let e = b.build_checked().await.unwrap_err().to_string();
        assert!(
            e.contains("plan111") && e.contains("/items/{a}{b}/GET"),
            "{e}"
        );
    }
    // Plans of different APIs never clash.
    let _ = UsagePlanLayer::builder(two_apis()).build().unwrap();
}

#[tokio::test]
async fn a_static_override_applies_under_a_templated_route() {
    let f = fixture(store_with(&[("/items/new/GET", 0.001, 1)]), |b| {
        b.require_key(Method::GET, "/items/{id}")
    });
    assert_eq!(f.statuses(Method::GET, "/items/new", 2).await, [200, 429]);
    assert_eq!(f.statuses(Method::GET, "/items/7", 2).await, [200, 200]);
}

#[tokio::test]
async fn a_templated_override_added_at_run_time_applies_to_the_next_request() {
    let f = fixture(store_with(&[]), |b| b);
    assert_eq!(
        f.statuses(Method::GET, "/items/7", 3).await,
        [200, 200, 200]
    );
    let at = "/apiStages/abc123def4:prod/throttle/items~1{id}/GET";
    f.store
        .update_usage_plan(
            "plan111",
            &[
                PatchOperation::replace(format!("{at}/burstLimit"), "1"),
                PatchOperation::replace(format!("{at}/rateLimit"), "0.001"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(f.statuses(Method::GET, "/items/8", 2).await, [200, 429]);
    // And a change of it too.
    f.store
        .update_usage_plan(
            "plan111",
            &[PatchOperation::replace(format!("{at}/burstLimit"), "3")],
        )
        .await
        .unwrap();
    assert_eq!(
        f.statuses(Method::GET, "/items/9", 3).await,
        [200, 200, 429]
    );
}

// ------------------------------------------------------------------- 3. an ambiguous credential

#[tokio::test]
async fn two_key_values_are_refused_whatever_their_order() {
    let f = fixture(store_with(&[]), |b| b);
    for pair in [
        [FREE, "x".repeat(30).as_str()],
        ["x".repeat(30).as_str(), FREE],
    ]
    .iter()
    .map(|p| p.map(str::to_owned))
    {
        let req = Request::get("/items")
            .header("x-api-key", &pair[0])
            .header("x-api-key", &pair[1])
            .body(Body::empty())
            .unwrap();
        let a = send_req(&f.router, req).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
    }
    // One field line holding two values, as a proxy may fold them, is refused too (a key value
    // holds no space).
    let req = Request::get("/items")
        .header("x-api-key", format!("{FREE}, {FREE}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send_req(&f.router, req).await.status, StatusCode::FORBIDDEN);
    assert_eq!(f.hits(), 0);
}

// ------------------------------------------------------------------- 4. HEAD and CORS preflights

#[tokio::test]
async fn head_follows_get_for_the_key_requirement() {
    let f = fixture(store_with(&[]), |b| {
        b.key_required_by_default(false)
            .require_key(Method::GET, "/items")
    });
    let a = f.send(Method::HEAD, "/items", None).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(f.hits(), 0, "the GET handler did not run");
    assert_eq!(f.statuses(Method::HEAD, "/items", 1).await, [200]);
    // HEAD configured on its own keeps its own setting.
    let f = fixture(store_with(&[]), |b| {
        b.require_key(Method::GET, "/items")
            .no_key(Method::HEAD, "/items")
    });
    assert_eq!(
        f.send(Method::HEAD, "/items", None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn head_draws_from_gets_bucket_unless_it_has_its_own() {
    let f = fixture(store_with(&[("/items/GET", 0.001, 2)]), |b| b);
    assert_eq!(f.statuses(Method::HEAD, "/items", 1).await, [200]);
    assert_eq!(f.statuses(Method::GET, "/items", 2).await, [200, 429]);
    assert_eq!(f.statuses(Method::HEAD, "/items", 1).await, [429]);
    let f = fixture(
        store_with(&[("/items/GET", 0.001, 1), ("/items/HEAD", 0.001, 3)]),
        |b| b,
    );
    assert_eq!(f.statuses(Method::GET, "/items", 2).await, [200, 429]);
    assert_eq!(
        f.statuses(Method::HEAD, "/items", 4).await,
        [200, 200, 200, 429]
    );
}

fn preflight(path: &str) -> Request<Body> {
    Request::options(path)
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "x-api-key")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn cors_preflights_pass_uncounted_by_default_and_can_be_checked() {
    let f = fixture(store_with(&[("/items/ANY", 0.001, 1)]), |b| b);
    for _ in 0..3 {
        let a = send_req(&f.router, preflight("/items")).await;
        assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "preflight"));
        assert!(a.header("ratelimit").is_none());
    }
    // Uncounted: the one token of /items/ANY is still there.
    assert_eq!(f.statuses(Method::GET, "/items", 2).await, [200, 429]);
    // A plain OPTIONS (no Access-Control-Request-Method) is an ordinary request.
    let a = f.send(Method::OPTIONS, "/items", None).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    let f = fixture(store_with(&[]), |b| b.pass_cors_preflight(false));
    let a = send_req(&f.router, preflight("/items")).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(f.hits(), 0);
}

// -------------------------------------------------------------------------- 5. patch grammar

#[tokio::test]
async fn every_form_of_a_method_throttle_path_is_stored_canonically() {
    let cases = [
        ("items/GET", "/items/GET"),
        ("~1items/GET", "/items/GET"),
        ("/items/GET", "/items/GET"),
        ("v1~1items/GET", "/v1/items/GET"),
        ("~1v1~1items/GET", "/v1/items/GET"),
        ("/v1/items/GET", "/v1/items/GET"),
        ("items~1{id}/GET", "/items/{id}/GET"),
        ("/GET", "//GET"),
        ("~1/GET", "//GET"),
        ("//GET", "//GET"),
    ];
    for (form, key) in cases {
        let store = store_with(&[]);
        let at = format!("/apiStages/abc123def4:prod/throttle/{form}");
        let plan = store
            .update_usage_plan(
                "plan111",
                &[
                    PatchOperation::replace(format!("{at}/rateLimit"), "1"),
                    PatchOperation::replace(format!("{at}/burstLimit"), "2"),
                ],
            )
            .await
            .unwrap_or_else(|e| panic!("{form}: {e}"));
        let keys: Vec<&String> = plan.api_stages[0].throttle.keys().collect();
        assert_eq!(keys, [key], "{form}");
        let plan = store
            .update_usage_plan("plan111", &[PatchOperation::remove(at.clone())])
            .await
            .unwrap_or_else(|e| panic!("remove {form}: {e}"));
        assert!(plan.api_stages[0].throttle.is_empty(), "{form}");
    }
}

#[tokio::test]
async fn the_clis_form_of_the_issue_applies() {
    let f = fixture(store_with(&[]), |b| b);
    f.store
        .update_usage_plan(
            "plan111",
            &[
                PatchOperation::replace(
                    "/apiStages/abc123def4:prod/throttle/~1items/GET/rateLimit",
                    "0.001",
                ),
                PatchOperation::replace(
                    "/apiStages/abc123def4:prod/throttle/~1items/GET/burstLimit",
                    "1",
                ),
            ],
        )
        .await
        .unwrap();
    assert_eq!(f.statuses(Method::GET, "/items", 2).await, [200, 429]);
    assert_eq!(f.statuses(Method::GET, "/", 2).await, [200, 200]);
}
