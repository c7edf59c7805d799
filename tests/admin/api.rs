//! The admin API on a real socket: AWS's wire shapes, its errors for bad input (and nothing
//! changed), SigV4 refusals (and nothing changed), key values only where AWS shows them, and a
//! change reaching the data path at its next request. The real aws CLI and boto3 run in
//! `.ci/admin-aws`.

use std::collections::HashMap;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;
use tower_usage_plans::admin::{AccessKey, AdminApi};
use tower_usage_plans::clock::ManualClock;
use tower_usage_plans::store::{Management, Resource};
use tower_usage_plans::{LocalMeter, MemoryStore, UsagePlanLayer};

const ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// An answer: status, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// Checks AWS's error form and returns the message.
    fn error(&self, status: u16, kind: &str) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.headers.get("x-amzn-errortype").map(String::as_str),
            Some(kind)
        );
        let body = self.json();
        body["message"].as_str().expect("a message").to_owned()
    }
}

/// A server on a free port; `base` is `127.0.0.1:PORT`.
async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// One HTTP/1.1 request on a new connection.
async fn send(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Answer {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    // A server may answer (and close) before reading a large body: ignore a failed write.
    let _ = s.write_all(body).await;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// The headers that sign a request as botocore does (host, x-amz-date, content-type).
fn signed(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
    (id, secret): (&str, &str),
    time: SystemTime,
) -> Vec<(String, String)> {
    let identity: Identity = Credentials::new(id, secret, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("apigateway")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let headers = [("host", addr), ("content-type", "application/json")];
    let req = SignableRequest::new(
        method,
        format!("http://{addr}{path}"),
        headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(req, &params).unwrap().into_parts();
    let mut out = vec![("content-type".to_owned(), "application/json".to_owned())];
    for (k, v) in instructions.headers() {
        out.push((k.to_owned(), v.to_owned()));
    }
    out
}

fn open_api(store: &MemoryStore, meter: &LocalMeter) -> axum::Router {
    AdminApi::new(store.clone(), meter.clone())
        .no_auth()
        .router()
        .unwrap()
}

/// Everything the store holds, as the admin API lists it (values included).
async fn snapshot(addr: &str) -> String {
    let keys = send(
        addr,
        "GET",
        "/apikeys?includeValues=true&limit=500",
        &[],
        b"",
    )
    .await;
    let plans = send(addr, "GET", "/usageplans?limit=500", &[], b"").await;
    format!("{}\n{}", keys.body, plans.body)
}

#[tokio::test]
async fn shapes_are_aws_s_and_values_show_only_where_aws_shows_them() {
    let (store, meter) = (MemoryStore::new(), LocalMeter::new());
    let addr = serve(open_api(&store, &meter)).await;

    let body = json!({"name": "ClientA-Free", "description": "free", "enabled": true});
    let created = send(&addr, "POST", "/apikeys", &[], body.to_string().as_bytes()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.headers["content-type"], "application/json");
    let key = created.json();
    let (id, value) = (key["id"].as_str().unwrap(), key["value"].as_str().unwrap());
    assert_eq!(value.len(), 40);
    assert!(
        key["createdDate"].is_i64(),
        "timestamps are epoch seconds: {key}"
    );
    assert_eq!(key["enabled"], true);

    // Without includeValue(s), no value.
    let got = send(&addr, "GET", &format!("/apikeys/{id}"), &[], b"")
        .await
        .json();
    assert_eq!(got["id"], id);
    assert!(got.get("value").is_none(), "{got}");
    let list = send(&addr, "GET", "/apikeys", &[], b"").await.json();
    assert!(list["item"][0].get("value").is_none(), "{list}");
    let with = send(
        &addr,
        "GET",
        &format!("/apikeys/{id}?includeValue=true"),
        &[],
        b"",
    )
    .await;
    assert_eq!(with.json()["value"], value);
    let list = send(
        &addr,
        "GET",
        "/apikeys?includeValues=true&name=Client",
        &[],
        b"",
    )
    .await;
    assert_eq!(list.json()["item"][0]["value"], value);
    let none = send(&addr, "GET", "/apikeys?name=Other", &[], b"")
        .await
        .json();
    assert_eq!(none["item"], json!([]));

    // AWS makes a key disabled unless create-api-key says enabled.
    let off = send(&addr, "POST", "/apikeys", &[], br#"{"name":"off"}"#)
        .await
        .json();
    assert_eq!(off["enabled"], false);

    // A plan, its key, get-usage with the map named `values`.
    let plan = json!({
        "name": "FreePlan",
        "apiStages": [{"apiId": "abc123def4", "stage": "prod"}],
        "throttle": {"burstLimit": 10, "rateLimit": 5},
        "quota": {"limit": 1000, "offset": 0, "period": "DAY"}
    });
    let plan = send(
        &addr,
        "POST",
        "/usageplans",
        &[],
        plan.to_string().as_bytes(),
    )
    .await;
    assert_eq!(plan.status, 201, "{}", plan.body);
    let plan_id = plan.json()["id"].as_str().unwrap().to_owned();
    let link = json!({"keyId": id, "keyType": "API_KEY"}).to_string();
    let link = send(
        &addr,
        "POST",
        &format!("/usageplans/{plan_id}/keys"),
        &[],
        link.as_bytes(),
    )
    .await;
    assert_eq!(link.status, 201, "{}", link.body);
    assert_eq!(
        link.json(),
        json!({"id": id, "type": "API_KEY", "name": "ClientA-Free"})
    );
    let keys = send(
        &addr,
        "GET",
        &format!("/usageplans/{plan_id}/keys"),
        &[],
        b"",
    )
    .await;
    assert_eq!(keys.json()["item"][0]["type"], "API_KEY");
    let one = send(
        &addr,
        "GET",
        &format!("/usageplans/{plan_id}/keys/{id}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(one.status, 200, "{}", one.body);
    let usage = send(
        &addr,
        "GET",
        &format!("/usageplans/{plan_id}/usage?startDate=2024-01-01&endDate=2024-01-02"),
        &[],
        b"",
    )
    .await
    .json();
    assert_eq!(
        usage["values"][id],
        json!([[0, 1000], [0, 1000]]),
        "{usage}"
    );
    assert_eq!(usage["startDate"], "2024-01-01");

    // update-usage grants more; the answer is today's usage.
    let grant =
        json!({"patchOperations": [{"op": "replace", "path": "/remaining", "value": "5000"}]});
    let granted = send(
        &addr,
        "PATCH",
        &format!("/usageplans/{plan_id}/keys/{id}/usage"),
        &[],
        grant.to_string().as_bytes(),
    )
    .await;
    assert_eq!(granted.status, 200, "{}", granted.body);
    assert_eq!(granted.json()["values"][id], json!([[0, 5000]]));

    // Deletes answer 202 and an unknown id is AWS's 404.
    let del = send(
        &addr,
        "DELETE",
        &format!("/usageplans/{plan_id}/keys/{id}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(del.status, 202);
    let gone = send(
        &addr,
        "GET",
        &format!("/usageplans/{plan_id}/keys/{id}"),
        &[],
        b"",
    )
    .await;
    gone.error(404, "NotFoundException");
    let del = send(&addr, "DELETE", &format!("/apikeys/{id}"), &[], b"").await;
    assert_eq!(del.status, 202);
    let msg = send(&addr, "GET", &format!("/apikeys/{id}"), &[], b"")
        .await
        .error(404, "NotFoundException");
    assert!(msg.contains(id), "{msg}");
    send(&addr, "GET", "/nowhere", &[], b"")
        .await
        .error(404, "NotFoundException");
}

#[tokio::test]
async fn bad_input_is_a_bad_request_that_names_the_fix_and_changes_nothing() {
    let (store, meter) = (MemoryStore::new(), LocalMeter::new());
    let addr = serve(open_api(&store, &meter)).await;
    let plan = json!({"name": "P", "throttle": {"burstLimit": 10, "rateLimit": 5}});
    let plan = send(
        &addr,
        "POST",
        "/usageplans",
        &[],
        plan.to_string().as_bytes(),
    )
    .await
    .json();
    let plan_id = plan["id"].as_str().unwrap().to_owned();
    let before = snapshot(&addr).await;

    let cases: Vec<(&str, String, Vec<u8>, &str)> = vec![
        (
            "POST",
            "/apikeys".into(),
            b"{\"name\": ".to_vec(),
            "not valid JSON",
        ),
        // serde would read a struct from an array: refused, as AWS refuses it.
        (
            "POST",
            "/apikeys".into(),
            b"[]".to_vec(),
            "not a JSON object",
        ),
        (
            "POST",
            "/usageplans".into(),
            br#"["P", null]"#.to_vec(),
            "not a JSON object",
        ),
        (
            "POST",
            "/apikeys".into(),
            br#"{"name": "a", "colour": "red"}"#.to_vec(),
            "colour",
        ),
        (
            "POST",
            "/apikeys".into(),
            br#"{"name": 5}"#.to_vec(),
            "name",
        ),
        (
            "POST",
            "/apikeys".into(),
            br#"{"value": "short"}"#.to_vec(),
            "20 to 128",
        ),
        (
            "POST",
            "/usageplans".into(),
            br#"{"name": "x", "throttle": {"burstLimit": -1}}"#.to_vec(),
            "throttle.burstLimit",
        ),
        (
            "POST",
            "/usageplans".into(),
            br#"{"name": "x", "quota": {"limit": 5, "period": "YEAR"}}"#.to_vec(),
            "quota.period",
        ),
        (
            "POST",
            "/usageplans".into(),
            br#"{"description": "no name"}"#.to_vec(),
            "name",
        ),
        (
            "PATCH",
            format!("/usageplans/{plan_id}"),
            br#"{"patchOperations": [{"op": "replace", "path": "/colour", "value": "red"}]}"#
                .to_vec(),
            "patchOperations[0].path",
        ),
        (
            "PATCH",
            format!("/usageplans/{plan_id}"),
            br#"{"patchOperations": [{"op": "explode", "path": "/name"}]}"#.to_vec(),
            "patchOperations[0].op",
        ),
        ("GET", "/apikeys?limit=0".into(), Vec::new(), "limit"),
        ("GET", "/apikeys?limit=1000".into(), Vec::new(), "limit"),
        ("GET", "/usageplans?limit=ten".into(), Vec::new(), "limit"),
        (
            "GET",
            "/apikeys?includeValues=yes".into(),
            Vec::new(),
            "includeValues",
        ),
        (
            "GET",
            format!("/usageplans/{plan_id}/usage?startDate=2024-01-01"),
            Vec::new(),
            "endDate",
        ),
        (
            "GET",
            format!("/usageplans/{plan_id}/usage?startDate=2024-01-01&endDate=2024-06-01"),
            Vec::new(),
            "90 days",
        ),
        (
            "POST",
            "/apikeys".into(),
            vec![b' '; 1_000_000],
            "larger than",
        ),
        (
            "POST",
            "/apikeys?mode=import&format=xml".into(),
            b"Key,Name\n".to_vec(),
            "format",
        ),
    ];
    for (method, path, body, names) in cases {
        let answer = send(&addr, method, &path, &[], &body).await;
        let msg = answer.error(400, "BadRequestException");
        assert!(
            msg.contains(names),
            "{method} {path}: {msg:?} should name {names:?}"
        );
    }
    assert_eq!(
        before,
        snapshot(&addr).await,
        "a refused request changed something"
    );
}

#[tokio::test]
async fn sigv4_refusals_are_aws_s_and_change_nothing() {
    let (store, meter) = (MemoryStore::new(), LocalMeter::new());
    let clock = ManualClock::at_unix_secs(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    );
    let router = AdminApi::new(store.clone(), meter.clone())
        .access_key(AccessKey::new(ID, SECRET))
        .clock(clock.clone())
        .router()
        .unwrap();
    let addr = serve(router).await;
    let body = br#"{"name":"ClientA-Free","enabled":true}"#;
    let now = SystemTime::now();
    let count = || async {
        store
            .get_api_keys(&Default::default())
            .await
            .unwrap()
            .items
            .len()
    };

    let msg = send(&addr, "POST", "/apikeys", &[], body)
        .await
        .error(403, "MissingAuthenticationTokenException");
    assert!(msg.contains("Signature Version 4"), "{msg}");
    let wrong = signed(&addr, "POST", "/apikeys", body, (ID, "not-the-secret"), now);
    send(&addr, "POST", "/apikeys", &wrong, body)
        .await
        .error(403, "InvalidSignatureException");
    let unknown = signed(&addr, "POST", "/apikeys", body, ("AKIDOTHER", SECRET), now);
    send(&addr, "POST", "/apikeys", &unknown, body)
        .await
        .error(403, "UnrecognizedClientException");
    // Signed for another body: the payload is part of the signature.
    let other = signed(
        &addr,
        "POST",
        "/apikeys",
        br#"{"name":"x"}"#,
        (ID, SECRET),
        now,
    );
    send(&addr, "POST", "/apikeys", &other, body)
        .await
        .error(403, "InvalidSignatureException");
    // Signed for another path.
    let path = signed(&addr, "POST", "/usageplans", body, (ID, SECRET), now);
    send(&addr, "POST", "/apikeys", &path, body)
        .await
        .error(403, "InvalidSignatureException");
    // Ten minutes off the server's clock.
    clock.advance(std::time::Duration::from_secs(600));
    let stale = signed(&addr, "POST", "/apikeys", body, (ID, SECRET), now);
    let msg = send(&addr, "POST", "/apikeys", &stale, body)
        .await
        .error(403, "InvalidSignatureException");
    assert!(msg.contains("clock"), "{msg}");
    let garbled = vec![(
        "authorization".to_owned(),
        "AWS4-HMAC-SHA256 Credential=x".to_owned(),
    )];
    send(&addr, "POST", "/apikeys", &garbled, body)
        .await
        .error(400, "IncompleteSignatureException");
    assert_eq!(count().await, 0, "a refused request created a key");

    // Within the window, and signed right: created.
    let fresh = SystemTime::now() + std::time::Duration::from_secs(590);
    let good = signed(&addr, "POST", "/apikeys", body, (ID, SECRET), fresh);
    let created = send(&addr, "POST", "/apikeys", &good, body).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(count().await, 1);
    // A query string is signed too.
    let q = "/apikeys?includeValues=true&limit=5";
    let good = signed(&addr, "GET", q, b"", (ID, SECRET), fresh);
    let list = send(&addr, "GET", q, &good, b"").await;
    assert_eq!(list.status, 200, "{}", list.body);
}

#[tokio::test]
async fn a_change_applies_to_the_data_path_at_the_next_request() {
    let (store, meter) = (MemoryStore::new(), LocalMeter::new());
    let addr = serve(open_api(&store, &meter)).await;
    let layer = UsagePlanLayer::builder(store.clone())
        .stage("abc123def4", "prod")
        .meter(meter.clone())
        .require_key(Method::GET, "/items")
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route("/items", axum::routing::get(|| async { "items" }))
        .layer(layer);
    let get = |value: String| {
        let app = app.clone();
        async move {
            let req = Request::get("/items")
                .header("x-api-key", value)
                .body(axum::body::Body::empty())
                .unwrap();
            let res = app.oneshot(req).await.unwrap();
            let status = res.status();
            let _ = res.into_body().collect().await;
            status
        }
    };

    let key = send(
        &addr,
        "POST",
        "/apikeys",
        &[],
        br#"{"name":"A","enabled":true}"#,
    )
    .await
    .json();
    let (id, value) = (
        key["id"].as_str().unwrap(),
        key["value"].as_str().unwrap().to_owned(),
    );
    assert_eq!(
        get(value.clone()).await,
        StatusCode::FORBIDDEN,
        "no plan yet"
    );
    let plan = json!({
        "name": "Free",
        "apiStages": [{"apiId": "abc123def4", "stage": "prod"}],
        "throttle": {"burstLimit": 2, "rateLimit": 0.001}
    });
    let plan = send(
        &addr,
        "POST",
        "/usageplans",
        &[],
        plan.to_string().as_bytes(),
    )
    .await
    .json();
    let plan_id = plan["id"].as_str().unwrap();
    let link = json!({"keyId": id, "keyType": "API_KEY"}).to_string();
    send(
        &addr,
        "POST",
        &format!("/usageplans/{plan_id}/keys"),
        &[],
        link.as_bytes(),
    )
    .await;
    assert_eq!(get(value.clone()).await, StatusCode::OK);
    assert_eq!(get(value.clone()).await, StatusCode::OK);
    assert_eq!(
        get(value.clone()).await,
        StatusCode::TOO_MANY_REQUESTS,
        "burst 2"
    );

    let off = json!({"patchOperations": [{"op": "replace", "path": "/enabled", "value": "false"}]});
    let patched = send(
        &addr,
        "PATCH",
        &format!("/apikeys/{id}"),
        &[],
        off.to_string().as_bytes(),
    )
    .await;
    assert_eq!(patched.json()["enabled"], false);
    assert_eq!(
        get(value).await,
        StatusCode::FORBIDDEN,
        "disabled at the next request"
    );
}

/// With `check_plans_with(&layer)`, a plan change the layer could never apply (a throttle on a
/// method that needs no key there, or on a path no request can have) is refused when made, with
/// a `BadRequestException` naming it, and nothing is stored; the layer's next build still
/// succeeds. Without it, such a change is stored and the next build refuses the plans.
#[tokio::test]
async fn a_plan_change_the_layer_could_never_apply_is_refused_when_made() {
    let (store, meter) = (MemoryStore::new(), LocalMeter::new());
    let build = |store: &MemoryStore| {
        UsagePlanLayer::builder(store.clone())
            .stage("abc123def4", "prod")
            .require_key(Method::GET, "/items")
            .no_key(Method::GET, "/health")
            .build_checked()
    };
    let layer = build(&store).await.unwrap();
    let checked = serve(
        AdminApi::new(store.clone(), meter.clone())
            .no_auth()
            .check_plans_with(&layer)
            .router()
            .unwrap(),
    )
    .await;
    let plan = send(
        &checked,
        "POST",
        "/usageplans",
        &[],
        br#"{"name":"Free","throttle":{"burstLimit":10,"rateLimit":5},"apiStages":[{"apiId":"abc123def4","stage":"prod"}]}"#,
    )
    .await;
    assert_eq!(plan.status, 201, "{}", plan.body);
    let id = plan.json()["id"].as_str().unwrap().to_owned();
    let before = snapshot(&checked).await;

    let patch = |path: &str| {
        json!({"patchOperations": [
            {"op": "replace", "path": format!("/apiStages/abc123def4:prod/throttle/{path}/rateLimit"), "value": "1"},
            {"op": "replace", "path": format!("/apiStages/abc123def4:prod/throttle/{path}/burstLimit"), "value": "1"},
        ]})
        .to_string()
    };
    for (path, says) in [
        ("health/GET", "/health/GET"),
        ("items~1{a}{b}/GET", "never match"),
    ] {
        let a = send(
            &checked,
            "PATCH",
            &format!("/usageplans/{id}"),
            &[],
            patch(path).as_bytes(),
        )
        .await;
        let message = a.error(400, "BadRequestException");
        assert!(message.contains(says), "{path}: {message}");
    }
    let create = send(
        &checked,
        "POST",
        "/usageplans",
        &[],
        br#"{"name":"Bad","throttle":{"burstLimit":10,"rateLimit":5},"apiStages":[{"apiId":"abc123def4","stage":"prod","throttle":{"/health/GET":{"burstLimit":1,"rateLimit":1}}}]}"#,
    )
    .await;
    assert!(create
        .error(400, "BadRequestException")
        .contains("/health/GET"));
    assert_eq!(snapshot(&checked).await, before, "nothing was stored");
    // A change the layer can apply passes.
    let a = send(
        &checked,
        "PATCH",
        &format!("/usageplans/{id}"),
        &[],
        patch("items/GET").as_bytes(),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(build(&store).await.is_ok());

    // Without the check, the change is stored, and the next build refuses the plans.
    let unchecked = serve(open_api(&store, &meter)).await;
    let a = send(
        &unchecked,
        "PATCH",
        &format!("/usageplans/{id}"),
        &[],
        patch("health/GET").as_bytes(),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(build(&store).await.is_err());
}

/// A request refused: method, path, body, status, error type, what the message names.
type Refusal = (
    &'static str,
    String,
    &'static [u8],
    u16,
    &'static str,
    &'static str,
);

/// `arn` as botocore writes it in a path: every byte but `A-Za-z0-9-_.~` percent-encoded.
fn encoded(arn: &str) -> String {
    arn.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn tags_round_trip_on_the_arns_aws_gives_keys_and_plans() {
    let (store, meter) = (MemoryStore::new(), LocalMeter::new());
    let addr = serve(open_api(&store, &meter)).await;
    // create-api-key --tags, create-usage-plan --tags
    let key = send(
        &addr,
        "POST",
        "/apikeys",
        &[],
        br#"{"name":"ClientA","enabled":true,"tags":{"team":"billing"}}"#,
    )
    .await;
    assert_eq!(key.status, 201, "{}", key.body);
    assert_eq!(key.json()["tags"], json!({"team": "billing"}));
    let key_id = key.json()["id"].as_str().unwrap().to_owned();
    let plan = send(
        &addr,
        "POST",
        "/usageplans",
        &[],
        br#"{"name":"Free","tags":{"tier":"free"}}"#,
    )
    .await;
    assert_eq!(plan.status, 201, "{}", plan.body);
    let plan_id = plan.json()["id"].as_str().unwrap().to_owned();

    for (arn, created) in [
        (
            format!("arn:aws:apigateway:us-east-1::/apikeys/{key_id}"),
            json!({"team": "billing"}),
        ),
        (
            format!("arn:aws:apigateway:eu-west-1::/usageplans/{plan_id}"),
            json!({"tier": "free"}),
        ),
    ] {
        let path = format!("/tags/{}", encoded(&arn));
        let got = send(&addr, "GET", &path, &[], b"").await;
        assert_eq!(got.status, 200, "{}", got.body);
        assert_eq!(got.json(), json!({ "tags": created }));
        // tag-resource: 204, adds and replaces.
        let body = br#"{"tags":{"team":"search","usageplans:soft-quota":"80"}}"#;
        let put = send(&addr, "PUT", &path, &[], body).await;
        assert_eq!(put.status, 204, "{}", put.body);
        let mut want = created.clone();
        want["team"] = json!("search");
        want["usageplans:soft-quota"] = json!("80");
        let got = send(&addr, "GET", &path, &[], b"").await;
        assert_eq!(got.json()["tags"], want);
        // untag-resource: tagKeys given once per key; an absent key is ignored.
        let del = send(
            &addr,
            "DELETE",
            &format!("{path}?tagKeys=team&tagKeys=absent"),
            &[],
            b"",
        )
        .await;
        assert_eq!(del.status, 204, "{}", del.body);
        want.as_object_mut().unwrap().remove("team");
        let got = send(&addr, "GET", &path, &[], b"").await;
        assert_eq!(got.json()["tags"], want);
        // The slashes left unencoded reach the same resource.
        let plain = send(&addr, "GET", &format!("/tags/{arn}"), &[], b"").await;
        assert_eq!(plain.json()["tags"], want, "{}", plain.body);
    }
    // The key and plan answer with their tags too.
    let got = send(&addr, "GET", &format!("/apikeys/{key_id}"), &[], b"").await;
    assert_eq!(got.json()["tags"], json!({"usageplans:soft-quota": "80"}));

    // Refusals: AWS's statuses, a message naming the fix, and nothing changed.
    let before = snapshot(&addr).await;
    let key_arn = encoded(&format!("arn:aws:apigateway:us-east-1::/apikeys/{key_id}"));
    // (method, path, body, status, error type, what the message names)
    let cases: Vec<Refusal> = vec![
        (
            "PUT",
            format!("/tags/{key_arn}"),
            br#"{"tags":{"aws:owner":"x"}}"#,
            400,
            "BadRequestException",
            "aws:",
        ),
        (
            "PUT",
            format!("/tags/{key_arn}"),
            br#"{"tags":{"usageplans:Soft_Quota":"1"}}"#,
            400,
            "BadRequestException",
            "kebab-case",
        ),
        (
            "PUT",
            format!("/tags/{key_arn}"),
            br#"{"tags":{"team":5}}"#,
            400,
            "BadRequestException",
            "tags.team",
        ),
        (
            "PUT",
            format!("/tags/{key_arn}"),
            br#"{"labels":{}}"#,
            400,
            "BadRequestException",
            "labels",
        ),
        (
            "DELETE",
            format!("/tags/{key_arn}"),
            b"",
            400,
            "BadRequestException",
            "tagKeys",
        ),
        (
            "GET",
            format!(
                "/tags/{}",
                encoded("arn:aws:apigateway:us-east-1:/apikeys/x")
            ),
            b"",
            400,
            "BadRequestException",
            "resource_arn",
        ),
        (
            "GET",
            "/tags/not-an-arn".to_owned(),
            b"",
            400,
            "BadRequestException",
            "resource_arn",
        ),
        (
            "PUT",
            format!(
                "/tags/{}",
                encoded("arn:aws:apigateway:us-east-1::/apikeys/nosuchkey")
            ),
            br#"{"tags":{"a":"b"}}"#,
            404,
            "NotFoundException",
            "nosuchkey",
        ),
        (
            "GET",
            format!(
                "/tags/{}",
                encoded("arn:aws:apigateway:us-east-1::/usageplans/nosuchplan")
            ),
            b"",
            404,
            "NotFoundException",
            "nosuchplan",
        ),
        (
            "GET",
            format!(
                "/tags/{}",
                encoded("arn:aws:apigateway:us-east-1::/restapis/a1b2c3")
            ),
            b"",
            404,
            "NotFoundException",
            "restapis",
        ),
        (
            "POST",
            "/apikeys".to_owned(),
            br#"{"name":"x","tags":{"aws:x":"y"}}"#,
            400,
            "BadRequestException",
            "aws:",
        ),
        (
            "POST",
            format!("/tags/{key_arn}"),
            b"",
            404,
            "NotFoundException",
            "no operation POST",
        ),
    ];
    for (method, path, body, status, kind, says) in cases {
        let msg = send(&addr, method, &path, &[], body)
            .await
            .error(status, kind);
        assert!(
            msg.contains(says),
            "{method} {path}: {msg:?} should say {says:?}"
        );
    }
    assert_eq!(
        before,
        snapshot(&addr).await,
        "a refused tag change changed something"
    );
}

#[tokio::test]
async fn tag_operations_are_signed_like_every_other() {
    let (store, meter) = (MemoryStore::new(), LocalMeter::new());
    let key = store
        .create_api_key(tower_usage_plans::store::NewApiKey::named("k"))
        .await
        .unwrap();
    let router = AdminApi::new(store.clone(), meter)
        .access_key(AccessKey::new(ID, SECRET))
        .router()
        .unwrap();
    let addr = serve(router).await;
    let path = format!(
        "/tags/{}",
        encoded(&format!(
            "arn:aws:apigateway:us-east-1::/apikeys/{}",
            key.id
        ))
    );
    let body = br#"{"tags":{"team":"billing"}}"#;
    send(&addr, "PUT", &path, &[], body)
        .await
        .error(403, "MissingAuthenticationTokenException");
    let resource = Resource::ApiKey(key.id.clone());
    assert!(store.get_tags(&resource).await.unwrap().is_empty());
    let now = SystemTime::now();
    let good = signed(&addr, "PUT", &path, body, (ID, SECRET), now);
    let put = send(&addr, "PUT", &path, &good, body).await;
    assert_eq!(put.status, 204, "{}", put.body);
    assert_eq!(store.get_tags(&resource).await.unwrap()["team"], "billing");
    // An unknown path is refused for its signature first, as before routing.
    send(&addr, "GET", "/restapis", &[], b"")
        .await
        .error(403, "MissingAuthenticationTokenException");
}
