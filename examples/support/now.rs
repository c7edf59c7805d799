//! Polls a future that never waits to its end: what the sync examples and benches set their
//! in-memory stores up with (every `MemoryStore` operation answers at once).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// The output of `fut`, which must be ready on its first poll (the in-memory store and meter).
pub fn now<F: Future>(fut: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(fut).poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the in-memory store and meter never wait"),
    }
}
