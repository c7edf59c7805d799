//! The layer in front of a real tonic server, called by a real tonic client over loopback: gRPC
//! status codes instead of 403 and 429, the key in the `x-api-key` metadata, per-method
//! throttles on `/pkg.Service/Method/POST`, and one layer serving plain HTTP and gRPC.

#[path = "../examples/greeter/mod.rs"]
mod greeter;

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use greeter::greeter_client::GreeterClient;
use greeter::greeter_server::GreeterServer;
use greeter::{HelloRequest, MyGreeter, FREE_KEY, PREMIUM_KEY, SAY_HELLO};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Code, Status};
use tower::ServiceExt;
use tower_usage_plans::clock::ManualClock;
use tower_usage_plans::meter::Meter;
use tower_usage_plans::period::Date;
use tower_usage_plans::{LocalMeter, MemoryStore, UsagePlanLayer};

/// 2024-03-10 at 12:00:00 UTC: the free key's daily quota resets in 12 hours.
fn noon() -> u64 {
    Date::new(2024, 3, 10).unwrap().unix_secs() + 12 * 3600
}

struct Running {
    addr: SocketAddr,
    greeter: MyGreeter,
    client: GreeterClient<Channel>,
}

async fn listen() -> (SocketAddr, TcpIncoming) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (addr, TcpIncoming::from(listener))
}

async fn client(addr: SocketAddr) -> GreeterClient<Channel> {
    GreeterClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

/// Serves the greeter on 127.0.0.1:0 behind `layer`, as a user would:
/// `Server::builder().layer(layer).add_service(..)`.
async fn serve<M: Meter>(layer: UsagePlanLayer<MemoryStore, M>) -> Running {
    let (addr, incoming) = listen().await;
    let greeter = MyGreeter::default();
    let server = Server::builder()
        .layer(layer)
        .add_service(GreeterServer::new(greeter.clone()))
        .serve_with_incoming(incoming);
    tokio::spawn(async move { server.await.unwrap() });
    Running {
        addr,
        greeter,
        client: client(addr).await,
    }
}

/// The example's layer, metered on a manual clock at noon.
async fn example() -> (Running, ManualClock) {
    let clock = ManualClock::at_unix_secs(noon());
    let layer = greeter::layer(greeter::store())
        .meter(LocalMeter::with_clock(clock.clone()))
        .build()
        .unwrap();
    (serve(layer).await, clock)
}

/// Calls `SayHello` with `key` in the `x-api-key` metadata.
async fn hello(client: &mut GreeterClient<Channel>, key: Option<&str>) -> Result<String, Status> {
    let mut req = tonic::Request::new(HelloRequest { name: "you".into() });
    if let Some(key) = key {
        req.metadata_mut().insert("x-api-key", key.parse().unwrap());
    }
    client.say_hello(req).await.map(|r| r.into_inner().message)
}

fn retry_after(status: &Status) -> Option<&str> {
    status
        .metadata()
        .get("retry-after")
        .map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn layer_new_on_a_tonic_server_builder() {
    let layer = UsagePlanLayer::new(greeter::store());
    let mut s = serve(layer).await;
    let e = hello(&mut s.client, None).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert_eq!(
        hello(&mut s.client, Some(FREE_KEY)).await.unwrap(),
        "Hello you!"
    );
    assert_eq!(s.greeter.calls(), 1);
}

#[tokio::test]
async fn no_key_is_unauthenticated_and_a_bad_key_permission_denied() {
    let (mut s, _clock) = example().await;
    let e = hello(&mut s.client, None).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(e.message().contains("x-api-key"), "{e:?}");
    assert!(retry_after(&e).is_none());

    let unknown = "NoSuchKey0123456789abcdefghij";
    for bad in [unknown, "short", "   "] {
        let e = hello(&mut s.client, Some(bad)).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{bad:?}: {e:?}");
        assert_eq!(e.message(), "Forbidden");
    }
    assert_eq!(s.greeter.calls(), 0, "the handler never ran");
}

#[tokio::test]
async fn the_key_travels_as_x_api_key_metadata() {
    let (mut s, _clock) = example().await;
    // Set on the request.
    let mut req = tonic::Request::new(HelloRequest {
        name: "metadata".into(),
    });
    req.metadata_mut()
        .insert("x-api-key", PREMIUM_KEY.parse().unwrap());
    let res = s.client.say_hello(req).await.unwrap();
    assert_eq!(res.get_ref().message, "Hello metadata!");
    // Admitted answers carry the rate-limit headers as metadata.
    let ratelimit = res.metadata().get("ratelimit").unwrap().to_str().unwrap();
    assert!(ratelimit.contains("\"burst\";r=19;"), "{ratelimit}");

    // Set by an interceptor, as a client usually does.
    let channel = Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut intercepted = GreeterClient::with_interceptor(channel, |mut req: tonic::Request<()>| {
        req.metadata_mut()
            .insert("x-api-key", FREE_KEY.parse().unwrap());
        Ok(req)
    });
    let res = intercepted
        .say_hello(HelloRequest {
            name: "interceptor".into(),
        })
        .await
        .unwrap();
    assert_eq!(res.into_inner().message, "Hello interceptor!");
    assert_eq!(s.greeter.calls(), 2);
}

#[tokio::test]
async fn throttled_then_quota_exhausted_are_resource_exhausted_with_retry_after() {
    let (mut s, clock) = example().await;
    // The free key: 1 rps, burst 2, 5 a day.
    for _ in 0..2 {
        hello(&mut s.client, Some(FREE_KEY)).await.unwrap();
    }
    let throttled = hello(&mut s.client, Some(FREE_KEY)).await.unwrap_err();
    assert_eq!(throttled.code(), Code::ResourceExhausted);
    assert!(throttled.message().contains("throttled"), "{throttled:?}");
    assert_eq!(retry_after(&throttled), Some("1"));
    assert_eq!(s.greeter.calls(), 2);

    // A token a second; the refused call was not counted against the quota.
    for _ in 0..3 {
        clock.advance(Duration::from_secs(1));
        hello(&mut s.client, Some(FREE_KEY)).await.unwrap();
    }
    assert_eq!(s.greeter.calls(), 5);
    clock.advance(Duration::from_secs(1));
    let quota = hello(&mut s.client, Some(FREE_KEY)).await.unwrap_err();
    assert_eq!(quota.code(), Code::ResourceExhausted);
    assert!(quota.message().contains("quota"), "{quota:?}");
    assert_ne!(quota.message(), throttled.message());
    // Until midnight UTC: 12 hours less the 4 seconds that passed.
    assert_eq!(retry_after(&quota), Some("43196"));
    assert_eq!(
        s.greeter.calls(),
        5,
        "the handler never ran for a refused call"
    );

    // The premium key is another client: admitted.
    hello(&mut s.client, Some(PREMIUM_KEY)).await.unwrap();
    // The next day, the free key is admitted again.
    clock.advance(Duration::from_secs(43_196));
    hello(&mut s.client, Some(FREE_KEY)).await.unwrap();
    assert_eq!(s.greeter.calls(), 7);
}

#[tokio::test]
async fn the_per_method_override_on_the_grpc_method_has_its_own_burst() {
    let (mut s, clock) = example().await;
    // PremiumPlan: burst 200, but "/helloworld.Greeter/SayHello/POST" has burst 20, 10 rps.
    for i in 0..20 {
        hello(&mut s.client, Some(PREMIUM_KEY))
            .await
            .unwrap_or_else(|e| panic!("call {i}: {e:?}"));
    }
    let e = hello(&mut s.client, Some(PREMIUM_KEY)).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(e.message().contains("throttled"), "{e:?}");
    assert_eq!(retry_after(&e), Some("1"));
    assert_eq!(s.greeter.calls(), 20);
    // 10 per second: a tenth of a second gives one token.
    clock.advance(Duration::from_millis(100));
    hello(&mut s.client, Some(PREMIUM_KEY)).await.unwrap();
    assert!(hello(&mut s.client, Some(PREMIUM_KEY)).await.is_err());
    assert_eq!(s.greeter.calls(), 21);
}

#[tokio::test]
async fn on_the_wire_a_refusal_is_http_200_trailers_only() {
    let (s, _clock) = example().await;
    let channel = Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let req = http::Request::post(format!("http://{}{SAY_HELLO}", s.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::empty())
        .unwrap();
    let res = channel.oneshot(req).await.unwrap();
    assert_eq!(res.status(), http::StatusCode::OK);
    let h = res.headers();
    assert_eq!(h["content-type"], "application/grpc");
    assert_eq!(h["grpc-status"], "16");
    assert!(h.contains_key("grpc-message"));
    let body = res.into_body().collect().await.unwrap();
    assert!(
        body.trailers().is_none(),
        "trailers-only: the status is in the headers"
    );
    assert!(body.to_bytes().is_empty());
    assert_eq!(s.greeter.calls(), 0);
}

/// Sends a plain HTTP/1.1 request, returns the status code and body.
async fn http1(addr: SocketAddr, path: &str, key: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let key = key.map_or(String::new(), |k| format!("x-api-key: {k}\r\n"));
    let req = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n{key}connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let status = raw[9..12].parse().unwrap();
    let body = raw.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

#[tokio::test]
async fn one_layer_serves_plain_http_and_grpc() {
    let clock = ManualClock::at_unix_secs(noon());
    let layer = greeter::layer(greeter::store())
        .meter(LocalMeter::with_clock(clock.clone()))
        .require_key(http::Method::GET, "/items")
        .build()
        .unwrap();
    let greeter = MyGreeter::default();
    // An axum app with the tonic service routed in, behind one layer.
    let app = axum::Router::new()
        .route("/items", get(|| async { "items" }))
        .merge(tonic::service::Routes::new(GreeterServer::new(greeter.clone())).into_axum_router())
        .layer(layer);
    let (addr, incoming) = listen().await;
    let server = Server::builder()
        .accept_http1(true)
        .add_routes(tonic::service::Routes::from(app))
        .serve_with_incoming(incoming);
    tokio::spawn(async move { server.await.unwrap() });

    // Plain HTTP: AWS's answers.
    let (status, body) = http1(addr, "/items", None).await;
    assert_eq!((status, body.as_str()), (403, r#"{"message":"Forbidden"}"#));
    let (status, body) = http1(addr, "/items", Some(FREE_KEY)).await;
    assert_eq!((status, body.as_str()), (200, "items"));

    // gRPC: status codes.
    let mut client = client(addr).await;
    let e = hello(&mut client, None).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert_eq!(
        hello(&mut client, Some(FREE_KEY)).await.unwrap(),
        "Hello you!"
    );
    // The free key's burst of 2 is shared by both: the third call is throttled, as either.
    let e = hello(&mut client, Some(FREE_KEY)).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    let (status, body) = http1(addr, "/items", Some(FREE_KEY)).await;
    assert_eq!(
        (status, body.as_str()),
        (429, r#"{"message":"Too Many Requests"}"#)
    );
    assert_eq!(greeter.calls(), 1);
}
