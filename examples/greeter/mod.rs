//! The `helloworld.Greeter` service for the gRPC example and its tests: the code `tonic-build`
//! would generate from `helloworld.proto`, written by hand so that nothing needs `protoc`, a
//! greeter that counts its calls, and the example's keys and plans.
//!
//! ```proto
//! syntax = "proto3";
//! package helloworld;
//! service Greeter { rpc SayHello (HelloRequest) returns (HelloReply); }
//! message HelloRequest { string name = 1; }
//! message HelloReply { string message = 1; }
//! ```
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::Method;
use tower_usage_plans::model::{
    ApiKey, ApiKeyValue, ApiStage, Quota, QuotaPeriod, Throttle, UsagePlan,
};
use tower_usage_plans::store::Management;
use tower_usage_plans::{LocalMeter, MemoryStore, UsagePlanLayer, UsagePlanLayerBuilder};

#[path = "../support/now.rs"]
mod now;
use now::now;

/// The free key: 1 request per second, burst 2, 5 a day.
pub const FREE_KEY: &str = "FreeKey0123456789abcdefghij";
/// The premium key: 100 per second, burst 200, 100000 a month; `SayHello` at 10 per second,
/// burst 20 (the plan's per-method override).
pub const PREMIUM_KEY: &str = "PremiumKey0123456789abcdefghij";
/// The stage the layer serves.
pub const API: &str = "greeter01";
/// The stage's name.
pub const STAGE: &str = "prod";
/// `SayHello`'s path, the route the layer knows it by.
pub const SAY_HELLO: &str = "/helloworld.Greeter/SayHello";
/// `SayHello`'s key in a plan's per-method throttles: AWS's `"{resourcePath}/{METHOD}"`, and
/// every gRPC call is a `POST`.
pub const SAY_HELLO_METHOD: &str = "/helloworld.Greeter/SayHello/POST";

/// The example's keys and plans.
pub fn store() -> MemoryStore {
    let store = MemoryStore::new();
    for (id, name, value) in [
        ("freekey01", "Free client", FREE_KEY),
        ("premiumkey01", "Premium client", PREMIUM_KEY),
    ] {
        let value = ApiKeyValue::new(value).expect("a valid key value");
        store
            .put_api_key(ApiKey::new(id, name, value))
            .expect("a new key");
    }

    let mut free = UsagePlan::new("freeplan", "Free");
    free.throttle = Some(Throttle::new(1.0, 2).expect("a throttle"));
    free.quota = Some(Quota::new(5, QuotaPeriod::Day, 0).expect("a quota"));
    free.api_stages.push(ApiStage::new(API, STAGE));
    now(store.create_usage_plan(free)).expect("a new plan");

    let mut premium = UsagePlan::new("premiumplan", "Premium");
    premium.throttle = Some(Throttle::new(100.0, 200).expect("a throttle"));
    premium.quota = Some(Quota::new(100_000, QuotaPeriod::Month, 0).expect("a quota"));
    let mut stage = ApiStage::new(API, STAGE);
    stage.throttle.insert(
        SAY_HELLO_METHOD.into(),
        Throttle::new(10.0, 20).expect("a throttle"),
    );
    premium.api_stages.push(stage);
    now(store.create_usage_plan(premium)).expect("a new plan");

    now(store.create_usage_plan_key("freeplan", "freekey01")).expect("a plan key");
    now(store.create_usage_plan_key("premiumplan", "premiumkey01")).expect("a plan key");
    store
}

/// The example's layer on `store`, before its meter is chosen: `SayHello` requires a key.
pub fn layer(store: MemoryStore) -> UsagePlanLayerBuilder<MemoryStore, LocalMeter> {
    UsagePlanLayer::builder(store)
        .stage(API, STAGE)
        .require_key(Method::POST, SAY_HELLO)
}

/// A greeter that counts the calls that reach it.
#[derive(Clone, Debug, Default)]
pub struct MyGreeter {
    /// How many times `SayHello` ran.
    pub calls: Arc<AtomicUsize>,
}

impl MyGreeter {
    /// How many times `SayHello` ran.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[tonic::async_trait]
impl greeter_server::Greeter for MyGreeter {
    async fn say_hello(
        &self,
        request: tonic::Request<HelloRequest>,
    ) -> Result<tonic::Response<HelloReply>, tonic::Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(tonic::Response::new(HelloReply {
            message: format!("Hello {}!", request.into_inner().name),
        }))
    }
}

/// `helloworld.HelloRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    /// Who to greet.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `helloworld.HelloReply`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    /// The greeting.
    #[prost(string, tag = "1")]
    pub message: String,
}

/// The client, as `tonic-build` generates it.
pub mod greeter_client {
    use tonic::codegen::{http, Body, Bytes, GrpcMethod, InterceptedService, StdError};

    use super::{HelloReply, HelloRequest};

    /// A `helloworld.Greeter` client.
    #[derive(Debug, Clone)]
    pub struct GreeterClient<T> {
        inner: tonic::client::Grpc<T>,
    }

    impl GreeterClient<tonic::transport::Channel> {
        /// Connects to `dst` (`http://127.0.0.1:50051`).
        pub async fn connect<D>(dst: D) -> Result<Self, tonic::transport::Error>
        where
            D: TryInto<tonic::transport::Endpoint>,
            D::Error: Into<StdError>,
        {
            let conn = tonic::transport::Endpoint::new(dst)?.connect().await?;
            Ok(Self::new(conn))
        }
    }

    impl<T> GreeterClient<T> {
        /// A client on `inner`.
        pub fn new(inner: T) -> Self {
            Self {
                inner: tonic::client::Grpc::new(inner),
            }
        }

        /// A client on `inner` that runs `interceptor` on every request (to add metadata).
        pub fn with_interceptor<F>(
            inner: T,
            interceptor: F,
        ) -> GreeterClient<InterceptedService<T, F>>
        where
            F: tonic::service::Interceptor,
        {
            GreeterClient::new(InterceptedService::new(inner, interceptor))
        }
    }

    impl<T> GreeterClient<T>
    where
        T: tonic::client::GrpcService<tonic::body::Body>,
        T::Error: Into<StdError>,
        T::ResponseBody: Body<Data = Bytes> + Send + 'static,
        <T::ResponseBody as Body>::Error: Into<StdError> + Send,
    {
        /// Calls `helloworld.Greeter/SayHello`.
        pub async fn say_hello(
            &mut self,
            request: impl tonic::IntoRequest<HelloRequest>,
        ) -> Result<tonic::Response<HelloReply>, tonic::Status> {
            self.inner.ready().await.map_err(|e| {
                tonic::Status::unknown(format!("Service was not ready: {}", e.into()))
            })?;
            let codec = tonic_prost::ProstCodec::default();
            let path = http::uri::PathAndQuery::from_static("/helloworld.Greeter/SayHello");
            let mut req = request.into_request();
            req.extensions_mut()
                .insert(GrpcMethod::new("helloworld.Greeter", "SayHello"));
            self.inner.unary(req, path, codec).await
        }
    }
}

/// The server, as `tonic-build` generates it.
pub mod greeter_server {
    use std::convert::Infallible;

    use tonic::codegen::{http, Arc, Body, BoxFuture, Context, Poll, Service, StdError};

    use super::{HelloReply, HelloRequest};

    /// What a `helloworld.Greeter` implements.
    #[tonic::async_trait]
    pub trait Greeter: Send + Sync + 'static {
        /// `SayHello`.
        async fn say_hello(
            &self,
            request: tonic::Request<HelloRequest>,
        ) -> Result<tonic::Response<HelloReply>, tonic::Status>;
    }

    /// Serves a [`Greeter`] as `helloworld.Greeter`.
    #[derive(Debug)]
    pub struct GreeterServer<T> {
        inner: Arc<T>,
    }

    impl<T> GreeterServer<T> {
        /// Serves `inner`.
        pub fn new(inner: T) -> Self {
            Self {
                inner: Arc::new(inner),
            }
        }
    }

    impl<T> Clone for GreeterServer<T> {
        fn clone(&self) -> Self {
            Self {
                inner: self.inner.clone(),
            }
        }
    }

    impl<T, B> Service<http::Request<B>> for GreeterServer<T>
    where
        T: Greeter,
        B: Body + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
    {
        type Response = http::Response<tonic::body::Body>;
        type Error = Infallible;
        type Future = BoxFuture<Self::Response, Self::Error>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<B>) -> Self::Future {
            match req.uri().path() {
                "/helloworld.Greeter/SayHello" => {
                    struct SayHelloSvc<T>(Arc<T>);
                    impl<T: Greeter> tonic::server::UnaryService<HelloRequest> for SayHelloSvc<T> {
                        type Response = HelloReply;
                        type Future = BoxFuture<tonic::Response<HelloReply>, tonic::Status>;

                        fn call(&mut self, request: tonic::Request<HelloRequest>) -> Self::Future {
                            let inner = self.0.clone();
                            Box::pin(async move { inner.say_hello(request).await })
                        }
                    }
                    let inner = self.inner.clone();
                    Box::pin(async move {
                        let codec = tonic_prost::ProstCodec::default();
                        let mut grpc = tonic::server::Grpc::new(codec);
                        Ok(grpc.unary(SayHelloSvc(inner), req).await)
                    })
                }
                _ => Box::pin(async move {
                    Ok(tonic::Status::unimplemented("no such method").into_http())
                }),
            }
        }
    }

    impl<T> tonic::server::NamedService for GreeterServer<T> {
        const NAME: &'static str = "helloworld.Greeter";
    }
}
