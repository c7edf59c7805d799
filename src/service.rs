//! [`UsagePlanService`]: the service a [`UsagePlanLayer`](crate::UsagePlanLayer) wraps around
//! another.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONNECTION, EXPECT};
use http::{HeaderValue, Request, Response, Version};
use tower_service::Service;

use crate::admission::{grpc_flavour, Gate};
use crate::body::ResponseBody;
use crate::future::ResponseFuture;
use crate::headers::RateInfo;
use crate::meter::{LocalMeter, Meter};
use crate::rejection::Rejection;
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

/// How much of a refused HTTP/1.1 request's body the layer reads and discards before answering,
/// so that the connection stays usable and a client that writes its whole body before reading
/// (Python's `http.client`, Node's `fetch`) sees the refusal. A larger body, or one behind
/// `Expect: 100-continue`, is not read: the refusal says `Connection: close`.
pub(crate) const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;

/// What a refusal does with the request's body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unread {
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
pub(crate) fn close<B>(response: &mut Response<B>) {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
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

    /// Hands the request to its [`ResponseFuture`], which decides it (in its first poll, at once
    /// for an in-memory store and meter) and then calls a clone of the inner service, readied
    /// there: the layer never readies `self.inner` (it does not forward `poll_ready`), so no
    /// clone is called unready, see
    /// <https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services>.
    #[inline]
    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        ResponseFuture::new(self.gate.clone(), self.inner.clone(), req)
    }
}

/// The answer to a refused request, in its protocol's form, and what to do with its body.
pub(crate) fn refusal<St, M, B, ResBody>(
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
