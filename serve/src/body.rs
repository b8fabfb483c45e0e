//! Request and response body wrappers: a request body must arrive whole before its deadline (and
//! stops at shutdown), and a response body marks its request finished when it is done.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::watch;

use crate::registry::ConnState;

/// Why a request body stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body did not arrive whole within the body timeout.
    #[error("the request body did not arrive within {0:?}")]
    Timeout(Duration),
    /// The server is shutting down; the request was not processed.
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// Shared between a request's body and its service call, so the call can answer what stopped
/// the body (the handler only sees a failed read).
pub(crate) const STOP_NONE: u8 = 0;
pub(crate) const STOP_TIMEOUT: u8 = 1;
pub(crate) const STOP_SHUTDOWN: u8 = 2;

type Stop = Pin<Box<dyn Future<Output = u8> + Send>>;

/// A request body with a deadline for the whole of it.
pub(crate) struct DeadlineBody {
    inner: hyper::body::Incoming,
    stop: Option<Stop>,
    timeout: Duration,
    why: Arc<AtomicU8>,
}

impl DeadlineBody {
    /// `inner` must end within `timeout` from now, and before `shutdown` turns true.
    pub(crate) fn new(
        inner: hyper::body::Incoming,
        timeout: Duration,
        mut shutdown: watch::Receiver<bool>,
        why: Arc<AtomicU8>,
    ) -> DeadlineBody {
        let deadline = tokio::time::Instant::now() + timeout;
        // Not armed for a body that is already complete (no body, or all of it in the head's read).
        let stop: Option<Stop> = if inner.is_end_stream() {
            None
        } else {
            Some(Box::pin(async move {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => STOP_TIMEOUT,
                    _ = shutdown.wait_for(|v| *v) => STOP_SHUTDOWN,
                }
            }))
        };
        DeadlineBody {
            inner,
            stop,
            timeout,
            why,
        }
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => return Poll::Ready(Some(Ok(f))),
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => {
                this.stop = None;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        let Some(stop) = this.stop.as_mut() else {
            return Poll::Pending;
        };
        match stop.as_mut().poll(cx) {
            Poll::Ready(why) => {
                this.stop = None;
                this.why.store(why, Ordering::Release);
                let err = if why == STOP_TIMEOUT {
                    BodyError::Timeout(this.timeout)
                } else {
                    BodyError::ShuttingDown
                };
                Poll::Ready(Some(Err(Box::new(err))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Marks a request in progress from its start until dropped.
pub(crate) struct InFlight(Arc<ConnState>);

impl InFlight {
    pub(crate) fn start(state: Arc<ConnState>) -> InFlight {
        state.request_started();
        InFlight(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A response body that ends its request's [`InFlight`] when hyper is done with it.
pub(crate) struct GuardBody {
    pub(crate) inner: axum::body::Body,
    pub(crate) _guard: InFlight,
}

impl Body for GuardBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
