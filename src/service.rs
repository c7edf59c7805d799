//! [`UsagePlanService`]: the service a [`UsagePlanLayer`](crate::UsagePlanLayer) wraps around
//! another.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response};
use tower_service::Service;

use crate::admission::{Decide, Gate};
use crate::body::ResponseBody;
use crate::future::ResponseFuture;
use crate::meter::{LocalMeter, Meter};
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
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    St: KeyStore,
    M: Meter,
    ReqBody: http_body::Body,
    ResBody: http_body::Body<Data = Bytes>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, St, M, ReqBody, ResBody>;

    /// Always ready: the layer answers refusals itself, at once, however busy the inner service
    /// is. An admitted request waits for the inner service's readiness in its
    /// [`ResponseFuture`].
    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    /// Decides the request and, if it is admitted, calls a clone of the inner service, readied
    /// first: the layer never readies `self.inner` (it does not forward `poll_ready`), so no
    /// clone is called unready, see
    /// <https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services>.
    ///
    /// Both are begun here, with a waker that does nothing: a store and a meter that answer at
    /// once (the in-memory ones, a `Ready` future) decide the request before `call` returns, and
    /// a clone that is ready at once (an axum `Router` always is) is called here too, so the
    /// [`ResponseFuture`] holds only the inner service's future. A store's or meter's future that
    /// is pending, or a clone that is not ready, is kept and polled again by the response future
    /// with its task's waker, as the `Future` and `Service` contracts allow (only the waker of
    /// the latest poll is to be woken).
    #[inline]
    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let mut timer = crate::observe::Timer::start();
        let mut state = Decide::Start;
        let mut cx = Context::from_waker(Waker::noop());
        let decided = self.gate.poll_decide(&mut state, &mut cx, &req, &mut timer);
        ResponseFuture::new(
            &self.gate,
            &mut state,
            decided,
            self.inner.clone(),
            req,
            timer,
        )
    }
}
