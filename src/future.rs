//! [`ResponseFuture`]: the answer of a [`UsagePlanService`](crate::UsagePlanService).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::response::RateInfo;

/// A boxed answer, for requests that wait on a store or meter, or whose refused body is read.
pub(crate) type BoxResponseFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

pin_project! {
    /// The future of a [`UsagePlanService`](crate::UsagePlanService): the inner service's
    /// answer (with the rate-limit headers added), or the layer's own.
    ///
    /// An admitted request waits here for the inner service to be ready (the layer itself is
    /// always ready, so that refusals never wait for a busy inner service). A request that the
    /// store and meter decide at once (the in-memory store and meter) is answered without
    /// allocating a future.
    pub struct ResponseFuture<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        kind: Kind<S, ReqBody, ResBody>,
        // Durations for the `metrics` feature (a unit without it).
        timer: crate::observe::Timer,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>>,
    {
        // Admitted: waits for a clone of the inner service to be ready, then calls it.
        Admitted { svc: S, req: Option<Request<ReqBody>>, rate: Option<RateInfo> },
        Inner { #[pin] fut: S::Future, rate: Option<RateInfo> },
        Ready { response: Option<Response<ResponseBody<ResBody>>> },
        Boxed { fut: BoxResponseFuture<ResBody, S::Error> },
    }
}

impl<S, ReqBody, ResBody> ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>>,
{
    /// Calls `svc` with `req` once `svc` is ready.
    pub(crate) fn admitted(svc: S, req: Request<ReqBody>, rate: Option<RateInfo>) -> Self {
        Self {
            kind: Kind::Admitted {
                svc,
                req: Some(req),
                rate,
            },
            timer: crate::observe::Timer::none(),
        }
    }

    pub(crate) fn ready(response: Response<ResponseBody<ResBody>>) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
            },
            timer: crate::observe::Timer::none(),
        }
    }

    pub(crate) fn boxed(fut: BoxResponseFuture<ResBody, S::Error>) -> Self {
        Self {
            kind: Kind::Boxed { fut },
            timer: crate::observe::Timer::none(),
        }
    }

    /// The same future, timed by `timer` (feature `metrics`).
    #[inline]
    pub(crate) fn timed(mut self, timer: crate::observe::Timer) -> Self {
        self.timer = timer;
        self
    }
}

impl<S, ReqBody, ResBody> fmt::Debug for ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Admitted { .. } => "Admitted",
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

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let this = self.as_mut().project();
            let inner = match this.kind.project() {
                KindProj::Admitted { svc, req, rate } => {
                    ready!(svc.poll_ready(cx))?;
                    let req = req
                        .take()
                        .expect("ResponseFuture polled after it completed");
                    this.timer.inner_started_now();
                    Kind::Inner {
                        fut: svc.call(req),
                        rate: rate.take(),
                    }
                }
                KindProj::Inner { fut, rate } => {
                    let response = ready!(fut.poll(cx))?;
                    this.timer.finish(response.status());
                    return Poll::Ready(Ok(wrap(response, rate.as_ref())));
                }
                KindProj::Ready { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after it completed");
                    this.timer.finish(response.status());
                    return Poll::Ready(Ok(response));
                }
                KindProj::Boxed { fut } => {
                    let out = ready!(fut.as_mut().poll(cx));
                    if let Ok(response) = &out {
                        this.timer.finish(response.status());
                    }
                    return Poll::Ready(out);
                }
            };
            self.as_mut().project().kind.set(inner);
        }
    }
}
