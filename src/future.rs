//! [`ResponseFuture`]: the answer of a [`UsagePlanService`](crate::UsagePlanService).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use http::header::{CONNECTION, EXPECT};
use http::{HeaderValue, Version};

use crate::admission::{grpc_flavour, Decide, Decision, Gate};
use crate::body::ResponseBody;
use crate::headers::RateInfo;
use crate::meter::Meter;
use crate::rejection::Rejection;
use crate::response::reject;
use crate::store::KeyStore;

pin_project! {
    /// The future of a [`UsagePlanService`](crate::UsagePlanService): the inner service's
    /// answer (with the rate-limit headers added), or the layer's own.
    ///
    /// The request is decided first (its key, its plan, its meter), then, if admitted, a clone
    /// of the inner service is readied and called (the layer itself is always ready, so that
    /// refusals never wait for a busy inner service). With an in-memory store and meter and an
    /// inner service that is always ready, both happen in the service's `call`, and nothing is
    /// allocated on the way; what waits is awaited here. A refused HTTP/1.1 request's unread
    /// body is read and discarded here before the answer.
    pub struct ResponseFuture<S, St, M, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>>,
        St: KeyStore,
        M: Meter,
    {
        #[pin]
        kind: Kind<S, St, M, ReqBody, ResBody>,
        // Durations for the `metrics` feature (a unit without it).
        timer: crate::observe::Timer,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, St, M, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>>,
        St: KeyStore,
        M: Meter,
    {
        // Deciding: a store's or a meter's future that was pending when the service was called
        // (boxed: only a store or meter that waits pays for its size).
        Deciding { deciding: Box<Deciding<S, St, M, ReqBody>> },
        // Admitted: waits for a clone of the inner service to be ready, then calls it.
        Admitted { svc: S, req: Option<Request<ReqBody>>, rate: Option<RateInfo> },
        Inner { #[pin] fut: S::Future, rate: Option<RateInfo> },
        // The inner service failed to become ready: its error is the answer.
        Failed { error: Option<S::Error> },
        // Refused: reads what is left of the request's body (HTTP/1.1), then answers.
        Draining { #[pin] body: ReqBody, read: u64, response: Option<Response<ResponseBody<ResBody>>> },
        Ready { response: Option<Response<ResponseBody<ResBody>>> },
    }
}

/// A decision waiting for a store or a meter, with what follows it.
struct Deciding<S, St: KeyStore, M: Meter, ReqBody> {
    decide: Decide<St, M>,
    gate: Arc<Gate<St, M>>,
    svc: Option<S>,
    req: Option<Request<ReqBody>>,
}

impl<S, St, M, ReqBody, ResBody> ResponseFuture<S, St, M, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>>,
    St: KeyStore,
    M: Meter,
{
    /// A future for `req`, which `gate` has begun to decide (`state`): decided at once (the
    /// in-memory store and meter), or waiting for a store or meter.
    #[inline(always)]
    pub(crate) fn new(
        gate: &Arc<Gate<St, M>>,
        state: &mut Decide<St, M>,
        decided: Poll<Option<Decision>>,
        svc: S,
        req: Request<ReqBody>,
        mut timer: crate::observe::Timer,
    ) -> Self
    where
        ReqBody: http_body::Body,
    {
        let kind = match decided {
            Poll::Ready(decision) => {
                // No waker to register yet: a clone that is not ready at once is polled again,
                // with the task's waker, by the future.
                let mut cx = Context::from_waker(std::task::Waker::noop());
                Kind::decided(gate, decision, svc, req, &mut cx, &mut timer)
            }
            Poll::Pending => Kind::Deciding {
                deciding: Box::new(Deciding {
                    decide: std::mem::replace(state, Decide::Done),
                    gate: gate.clone(),
                    svc: Some(svc),
                    req: Some(req),
                }),
            },
        };
        Self { kind, timer }
    }
}

impl<S, St, M, ReqBody, ResBody> Kind<S, St, M, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>>,
    St: KeyStore,
    M: Meter,
{
    /// What follows a decision: the refusal; or the inner service's future, if the clone `svc`
    /// is ready now (polled with `cx`); or waiting for it to be.
    #[inline(always)]
    fn decided(
        gate: &Gate<St, M>,
        decision: Option<Decision>,
        mut svc: S,
        req: Request<ReqBody>,
        cx: &mut Context<'_>,
        timer: &mut crate::observe::Timer,
    ) -> Self
    where
        ReqBody: http_body::Body,
    {
        let rate = match decision {
            // No key needed: passed through, uncounted.
            None => None,
            Some(Decision::Admit(rate)) => rate,
            Some(Decision::Reject(rejection, rate)) => {
                let (response, unread) = refusal(gate, &req, rejection, rate);
                return match unread {
                    Unread::Drain => Kind::Draining {
                        body: req.into_body(),
                        read: 0,
                        response: Some(response),
                    },
                    Unread::Nothing | Unread::Close => Kind::Ready {
                        response: Some(response),
                    },
                };
            }
        };
        match svc.poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                timer.inner_started_now();
                Kind::Inner {
                    fut: svc.call(req),
                    rate,
                }
            }
            Poll::Ready(Err(error)) => Kind::Failed { error: Some(error) },
            Poll::Pending => Kind::Admitted {
                svc,
                req: Some(req),
                rate,
            },
        }
    }
}

impl<S, St, M, ReqBody, ResBody> fmt::Debug for ResponseFuture<S, St, M, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>>,
    St: KeyStore,
    M: Meter,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Deciding { .. } => "Deciding",
            Kind::Admitted { .. } => "Admitted",
            Kind::Inner { .. } => "Inner",
            Kind::Failed { .. } => "Failed",
            Kind::Draining { .. } => "Draining",
            Kind::Ready { .. } => "Ready",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

/// Wraps the inner service's response, adding the rate-limit headers.
#[inline]
fn wrap<B>(response: Response<B>, rate: Option<&RateInfo>) -> Response<ResponseBody<B>> {
    let mut response = response.map(ResponseBody::inner);
    if let Some(rate) = rate {
        rate.write(response.headers_mut());
    }
    response
}

const COMPLETED: &str = "ResponseFuture polled after it completed";

impl<S, St, M, ReqBody, ResBody> Future for ResponseFuture<S, St, M, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    St: KeyStore,
    M: Meter,
    ReqBody: http_body::Body,
    ResBody: http_body::Body<Data = Bytes>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let this = self.as_mut().project();
            let next = match this.kind.project() {
                KindProj::Deciding { deciding } => {
                    let Deciding {
                        decide,
                        gate,
                        svc,
                        req,
                    } = &mut **deciding;
                    let request = req.as_ref().expect(COMPLETED);
                    let decision = ready!(gate.poll_decide(decide, cx, request, this.timer));
                    let (svc, req) = (svc.take().expect(COMPLETED), req.take().expect(COMPLETED));
                    Kind::decided(gate, decision, svc, req, cx, this.timer)
                }
                KindProj::Admitted { svc, req, rate } => {
                    ready!(svc.poll_ready(cx))?;
                    let req = req.take().expect(COMPLETED);
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
                KindProj::Failed { error } => {
                    return Poll::Ready(Err(error.take().expect(COMPLETED)));
                }
                KindProj::Draining {
                    mut body,
                    read,
                    response,
                } => {
                    // Reads and discards the body, at most DRAIN_LIMIT bytes; past it, or on an
                    // error, the connection is closed after the answer.
                    let ended = loop {
                        match ready!(body.as_mut().poll_frame(cx)) {
                            None => break true,
                            Some(Err(_)) => break false,
                            Some(Ok(frame)) => {
                                if let Some(data) = frame.data_ref() {
                                    *read = read.saturating_add(data.remaining() as u64);
                                }
                                if *read > DRAIN_LIMIT {
                                    break false;
                                }
                            }
                        }
                    };
                    let mut response = response.take().expect(COMPLETED);
                    if !ended {
                        close(&mut response);
                    }
                    Kind::Ready {
                        response: Some(response),
                    }
                }
                KindProj::Ready { response } => {
                    let response = response.take().expect(COMPLETED);
                    this.timer.finish(response.status());
                    return Poll::Ready(Ok(response));
                }
            };
            self.as_mut().project().kind.set(next);
        }
    }
}

/// How much of a refused HTTP/1.1 request's body the layer reads and discards before answering,
/// so that the connection stays usable and a client that writes its whole body before reading
/// (Python's `http.client`, Node's `fetch`) sees the refusal. A larger body, or one behind
/// `Expect: 100-continue`, is not read: the refusal says `Connection: close`.
const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;

/// What a refusal does with the request's body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unread {
    /// Nothing to read: the body is empty, or HTTP/2 and later end the stream on their own.
    Nothing,
    /// Read and discard it (at most [`DRAIN_LIMIT`] bytes), then answer.
    Drain,
    /// Answer at once and close the connection (`Connection: close`).
    Close,
}

fn unread<B: http_body::Body>(req: &Request<B>) -> Unread {
    if req.version() >= Version::HTTP_2 || req.body().is_end_stream() {
        // HTTP/2: hyper ends the request's stream with RST_STREAM(NO_ERROR) once the answer is
        // sent (RFC 9113, section 8.1); the connection is unaffected.
        return Unread::Nothing;
    }
    // A client waiting for `100 Continue` has sent no body: reading it would ask for it.
    if req.headers().contains_key(EXPECT) || req.body().size_hint().lower() > DRAIN_LIMIT {
        return Unread::Close;
    }
    Unread::Drain
}

/// `Connection: close`.
fn close<B>(response: &mut Response<B>) {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
}

/// The answer to a refused request, in its protocol's form, and what to do with its body.
fn refusal<St, M, B, ResBody>(
    gate: &Gate<St, M>,
    req: &Request<B>,
    rejection: Rejection,
    rate: Option<RateInfo>,
) -> (Response<ResponseBody<ResBody>>, Unread)
where
    B: http_body::Body,
{
    let mut response = reject(
        rejection,
        rate.as_ref(),
        grpc_flavour(req.headers()),
        &gate.responses,
        &gate.key_source,
    );
    let unread = unread(req);
    if unread == Unread::Close {
        close(&mut response);
    }
    (response, unread)
}
