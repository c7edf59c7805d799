//! [`UsagePlanService`]: the service a [`UsagePlanLayer`](crate::UsagePlanLayer) wraps around
//! another.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::header::{CONNECTION, EXPECT};
use http::{HeaderValue, Request, Response, Version};
use tower_service::Service;

use crate::admission::{grpc_flavour, Decision, Gate, Start};
use crate::body::ResponseBody;
use crate::future::{wrap, ResponseFuture};
use crate::meter::{LocalMeter, Meter};
use crate::response::{reject, RateInfo, Rejection};
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

/// How much of a refused HTTP/1.1 request's body the layer reads and discards before answering,
/// so that the connection stays usable and a client that writes its whole body before reading
/// (Python's `http.client`, Node's `fetch`) sees the refusal. A larger body, or one behind
/// `Expect: 100-continue`, is not read: the refusal says `Connection: close`.
pub(crate) const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;

/// What a refusal does with the request's body.
#[derive(Debug, PartialEq, Eq)]
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

/// Reads and discards `body`, at most [`DRAIN_LIMIT`] bytes; whether it ended.
async fn drain<B: http_body::Body>(body: B) -> bool {
    let mut body = std::pin::pin!(body);
    let mut read = 0u64;
    loop {
        match std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            None => return true,
            Some(Err(_)) => return false,
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    read = read.saturating_add(data.remaining() as u64);
                }
                if read > DRAIN_LIMIT {
                    return false;
                }
            }
        }
    }
}

/// `Connection: close`.
fn close<B>(response: &mut Response<B>) {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
}

impl<S, St, M, ReqBody, ResBody> Service<Request<ReqBody>> for UsagePlanService<S, St, M>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    St: KeyStore,
    M: Meter,
    ReqBody: http_body::Body + Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, ResBody>;

    /// Always ready: the layer answers refusals itself, at once, however busy the inner service
    /// is. An admitted request waits for the inner service's readiness in its
    /// [`ResponseFuture`].
    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The layer never readied `self.inner` (it does not forward `poll_ready`): an admitted
        // request readies a clone of its own and calls that, so that no clone is called unready,
        // see https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services
        let mut timer = crate::observe::Timer::start();
        let pending = match self.gate.start(&req, &mut timer) {
            Start::Pass => {
                return ResponseFuture::admitted(self.inner.clone(), req, None).timed(timer)
            }
            Start::Done(Decision::Admit(rate)) => {
                return ResponseFuture::admitted(self.inner.clone(), req, rate).timed(timer)
            }
            Start::Done(Decision::Reject(rejection, rate)) => {
                let mut response = refusal(&self.gate, &req, rejection, rate);
                let fut = match unread(&req) {
                    Unread::Nothing => ResponseFuture::ready(response),
                    Unread::Close => {
                        close(&mut response);
                        ResponseFuture::ready(response)
                    }
                    Unread::Drain => ResponseFuture::boxed(Box::pin(async move {
                        if !drain(req.into_body()).await {
                            close(&mut response);
                        }
                        Ok(response)
                    })),
                };
                return fut.timed(timer);
            }
            Start::Wait(pending) => pending,
        };

        // A store or meter that must be awaited.
        let mut inner = self.inner.clone();
        let gate = self.gate.clone();
        let probe = timer.clone();
        ResponseFuture::boxed(Box::pin(async move {
            match gate.finish(pending).await {
                Decision::Admit(rate) => {
                    std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
                    let since = crate::observe::Timer::now();
                    let response = inner.call(req).await?;
                    probe.inner_done(since, response.status());
                    Ok(wrap(response, rate.as_ref()))
                }
                Decision::Reject(rejection, rate) => {
                    let mut response = refusal(&gate, &req, rejection, rate);
                    match unread(&req) {
                        Unread::Nothing => {}
                        Unread::Close => close(&mut response),
                        Unread::Drain => {
                            if !drain(req.into_body()).await {
                                close(&mut response);
                            }
                        }
                    }
                    Ok(response)
                }
            }
        }))
        .timed(timer)
    }
}

/// The answer to a refused request, in its protocol's form.
fn refusal<St, M, B, ResBody>(
    gate: &Gate<St, M>,
    req: &Request<B>,
    rejection: Rejection,
    rate: Option<RateInfo>,
) -> Response<ResponseBody<ResBody>> {
    reject(
        rejection,
        rate.as_ref(),
        grpc_flavour(req.headers()),
        &gate.responses,
        &gate.key_source,
    )
}
