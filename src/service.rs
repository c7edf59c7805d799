//! [`UsagePlanService`]: the service a [`UsagePlanLayer`](crate::UsagePlanLayer) wraps around
//! another.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower_service::Service;

use crate::admission::{is_grpc, Decision, Gate, Start};
use crate::body::ResponseBody;
use crate::future::{wrap, ResponseFuture};
use crate::meter::{LocalMeter, Meter};
use crate::response::reject;
use crate::store::{KeyStore, MemoryStore};

/// Enforces usage plans and API keys before calling the inner service `S`.
///
/// Made by [`UsagePlanLayer`](crate::UsagePlanLayer); see there.
pub struct UsagePlanService<S, St = MemoryStore, M = LocalMeter> {
    inner: S,
    gate: Arc<Gate<St, M>>,
}

impl<S, St, M> UsagePlanService<S, St, M> {
    pub(crate) fn new(inner: S, gate: Arc<Gate<St, M>>) -> Self {
        Self { inner, gate }
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
            gate: self.gate.clone(),
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
        let timer = crate::observe::Timer::start(&self.gate, &req);
        let pending = match self.gate.start(&req) {
            Start::Pass => {
                return ResponseFuture::inner(self.inner.call(req), None)
                    .timed(timer.inner_started())
            }
            Start::Done(Decision::Admit(rate)) => {
                return ResponseFuture::inner(self.inner.call(req), rate)
                    .timed(timer.inner_started())
            }
            Start::Done(Decision::Reject(rejection, rate)) => {
                let grpc = is_grpc(req.headers());
                return ResponseFuture::ready(reject(
                    rejection,
                    rate.as_ref(),
                    grpc,
                    &self.gate.responses,
                ))
                .timed(timer);
            }
            Start::Wait(pending) => pending,
        };

        // A store or meter that must be awaited. Take the service that `poll_ready` readied and
        // leave a clone in its place, see
        // https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let gate = self.gate.clone();
        let probe = timer.clone();
        ResponseFuture::boxed(Box::pin(async move {
            match gate.finish(pending).await {
                Decision::Admit(rate) => {
                    let since = crate::observe::Timer::now();
                    let response = inner.call(req).await?;
                    probe.inner_done(since, response.status());
                    Ok(wrap(response, rate.as_ref()))
                }
                Decision::Reject(rejection, rate) => {
                    let grpc = is_grpc(req.headers());
                    Ok(reject(rejection, rate.as_ref(), grpc, &gate.responses))
                }
            }
        }))
        .timed(timer)
    }
}
