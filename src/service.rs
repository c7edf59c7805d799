//! [`UsagePlanService`]: the service a [`UsagePlanLayer`](crate::UsagePlanLayer) wraps around
//! another.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Request, Response};
use tower_service::Service;

use crate::body::ResponseBody;
use crate::future::{wrap, ResponseFuture};
use crate::layer::{Decision, FailMode, Shared, Step};
use crate::meter::{LocalMeter, Meter};
use crate::response::{reject, Rejection};
use crate::store::{KeyStore, MemoryStore};

/// Enforces usage plans and API keys before calling the inner service `S`.
///
/// Made by [`UsagePlanLayer`](crate::UsagePlanLayer); see there.
pub struct UsagePlanService<S, St = MemoryStore, M = LocalMeter> {
    inner: S,
    shared: Arc<Shared<St, M>>,
}

impl<S, St, M> UsagePlanService<S, St, M> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<St, M>>) -> Self {
        Self { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, St, M> Clone for UsagePlanService<S, St, M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, St, M> fmt::Debug for UsagePlanService<S, St, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsagePlanService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// Whether the request is gRPC (`content-type: application/grpc`, `application/grpc+proto`, …).
#[inline]
fn is_grpc(headers: &HeaderMap) -> bool {
    crate::key::header(headers, &CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// What is still to be awaited, owned, for the slow path.
enum Pending {
    /// The store must be awaited for this key value.
    Store(Box<str>),
    /// The store answered; the meter must be awaited for this bucket.
    Meter(crate::store::KeyGrant, crate::plan::Bucket),
}

impl<S, St, M, ReqBody, ResBody> Service<Request<ReqBody>> for UsagePlanService<S, St, M>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    St: KeyStore,
    M: Meter,
    ReqBody: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let shared = &*self.shared;
        let route = shared.routes.resolve(req.method(), req.uri().path());
        if !route.key_required {
            return ResponseFuture::inner(self.inner.call(req), None);
        }
        let pending = match shared.key_source.read(&req) {
            Err(rejection) => Err(Decision::Reject(rejection, None)),
            Ok(value) => match shared.store.lookup_now(value, &shared.stage, |grant| {
                shared.decide_now(grant, route.resource, req.method())
            }) {
                Ok(Step::Done(decision)) => Err(decision),
                Ok(Step::Meter(grant, bucket)) => Ok(Pending::Meter(grant, bucket)),
                Err(_) => Ok(Pending::Store(value.into())),
            },
        };
        let pending = match pending {
            Err(Decision::Admit(rate)) => return ResponseFuture::inner(self.inner.call(req), rate),
            Err(Decision::Reject(rejection, rate)) => {
                // Only a refusal needs to know how the client speaks.
                let grpc = is_grpc(req.headers());
                return ResponseFuture::ready(reject(
                    rejection,
                    rate.as_ref(),
                    grpc,
                    &shared.responses,
                ));
            }
            Ok(pending) => pending,
        };

        // The slow path: a store or meter that must be awaited. Take the service that
        // `poll_ready` readied and leave a clone in its place, see
        // https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services
        let grpc = is_grpc(req.headers());
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        let resource: Box<str> = route.resource.into();
        let method = req.method().clone();
        ResponseFuture::boxed(Box::pin(async move {
            let decision = match pending {
                // The store answered at once and the meter named the bucket: only the meter is
                // left to await.
                Pending::Meter(grant, bucket) => shared.admit_later(&grant, bucket).await,
                Pending::Store(value) => {
                    let grant = match shared.store.lookup(&value, &shared.stage).await {
                        Ok(grant) => grant,
                        Err(_) => match shared.on_store_error {
                            FailMode::Closed => {
                                return Ok(reject(
                                    Rejection::StoreUnavailable,
                                    None,
                                    grpc,
                                    &shared.responses,
                                ))
                            }
                            FailMode::Open => return Ok(wrap(inner.call(req).await?, None)),
                        },
                    };
                    shared
                        .decide(grant.as_ref().map(|g| g.as_ref()), &resource, &method)
                        .await
                }
            };
            match decision {
                Decision::Admit(rate) => Ok(wrap(inner.call(req).await?, rate.as_ref())),
                Decision::Reject(rejection, rate) => {
                    Ok(reject(rejection, rate.as_ref(), grpc, &shared.responses))
                }
            }
        }))
    }
}
