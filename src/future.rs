//! [`ResponseFuture`]: the answer of a [`UsagePlanService`](crate::UsagePlanService).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use crate::body::ResponseBody;
use crate::response::RateInfo;

/// A boxed answer, for requests that wait on a store or meter.
pub(crate) type BoxResponseFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

pin_project! {
    /// The future of a [`UsagePlanService`](crate::UsagePlanService): the inner service's
    /// answer (with the rate-limit headers added), or the layer's own.
    ///
    /// A request that the store and meter decide at once (the in-memory store and meter) is
    /// answered without allocating a future.
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
        // Durations for the `metrics` feature (a unit without it): crate::observe::Timer.
        timer: crate::observe::Timer,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Inner { #[pin] fut: F, rate: Option<RateInfo> },
        Ready { response: Option<Response<ResponseBody<B>>> },
        Boxed { fut: BoxResponseFuture<B, E> },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    pub(crate) fn inner(fut: F, rate: Option<RateInfo>) -> Self {
        Self {
            kind: Kind::Inner { fut, rate },
            timer: crate::observe::Timer::default(),
        }
    }

    pub(crate) fn ready(response: Response<ResponseBody<B>>) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
            },
            timer: crate::observe::Timer::default(),
        }
    }

    pub(crate) fn boxed(fut: BoxResponseFuture<B, E>) -> Self {
        Self {
            kind: Kind::Boxed { fut },
            timer: crate::observe::Timer::default(),
        }
    }

    /// The same future, timed by `timer` (feature `metrics`).
    #[inline]
    pub(crate) fn timed(mut self, timer: crate::observe::Timer) -> Self {
        self.timer = timer;
        self
    }
}

impl<F, B, E> fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Inner { .. } => "Inner",
            Kind::Ready { .. } => "Ready",
            Kind::Boxed { .. } => "Boxed",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

/// Wraps the inner service's response, adding the rate-limit headers.
#[inline]
pub(crate) fn wrap<B>(response: Response<B>, rate: Option<&RateInfo>) -> Response<ResponseBody<B>> {
    let mut response = response.map(ResponseBody::inner);
    if let Some(rate) = rate {
        rate.write(response.headers_mut());
    }
    response
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = match this.kind.project() {
            KindProj::Inner { fut, rate } => {
                let response = ready!(fut.poll(cx))?;
                Poll::Ready(Ok(wrap(response, rate.as_ref())))
            }
            KindProj::Ready { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after it completed"))),
            KindProj::Boxed { fut } => fut.as_mut().poll(cx),
        };
        if let Poll::Ready(Ok(response)) = &out {
            this.timer.finish(response.status());
        }
        out
    }
}
