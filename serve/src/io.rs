//! The I/O wrapper between hyper and the socket (or TLS stream): it tells the connection's state
//! when request bytes arrive (a head's clock starts at its first byte), it fails a write that has
//! stalled for the write timeout (a client that stops reading its response must not hold the
//! connection forever), and it turns hyper's own bodiless refusals of unparsable requests into
//! problem+json.
//!
//! # Why rewrite hyper's bytes
//!
//! When a request head cannot be parsed hyper answers by itself, with no hook: `400` (bad method,
//! target, header or version), `414` (target too long) or `431` (head larger than the read
//! buffer), each a bare head with `content-length: 0`, then closes. The alternatives were worse:
//! pre-parsing every head with `httparse` means a second parser that must agree with hyper's on
//! every edge (and a second buffer per connection); limiting sizes in front of hyper still leaves
//! its 400s. So this wrapper recognises exactly that head on its way out and writes a problem+json
//! response in its place. What it recognises cannot be one of our own answers: every refusal the
//! servers build has a `content-type` and a body, and a write of such a head is always a whole
//! hyper write (hyper encodes a head into one buffer, and this wrapper sees the head before any
//! partial write could split it).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::StatusCode;
use ledger_core::problem::ProblemType;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::problem::raw_response;
use crate::registry::ConnState;

/// The wrapped stream.
pub(crate) struct ConnIo<T> {
    inner: T,
    state: Arc<ConnState>,
    /// A substitute response being written: its bytes, how many are written, and the length of
    /// the hyper write it replaces (reported as written once the substitute is out).
    pending: Option<(Vec<u8>, usize, usize)>,
    /// How long a write may stay blocked on a client that does not read.
    write_timeout: Duration,
    /// Running while a write is blocked.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> ConnIo<T> {
    pub(crate) fn new(inner: T, state: Arc<ConnState>, write_timeout: Duration) -> ConnIo<T> {
        ConnIo {
            inner,
            state,
            pending: None,
            write_timeout,
            stall: None,
        }
    }

    /// Passes a write-side result through, starting the stall timer on `Pending` and failing
    /// with `TimedOut` once it has run out; any progress stops it.
    fn guard_stall<R>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match r {
            Poll::Pending => {
                let timeout = self.write_timeout;
                let stall = self
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if stall.as_mut().poll(cx).is_ready() {
                    self.stall = None;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client has not read its response for the write timeout",
                    )));
                }
                Poll::Pending
            }
            done => {
                self.stall = None;
                done
            }
        }
    }

    /// The connection's state.
    pub(crate) fn state(&self) -> &Arc<ConnState> {
        &self.state
    }
}

/// Whether `buf` is hyper's automatic answer to an unparsable request, and its status.
pub(crate) fn hyper_refusal(buf: &[u8]) -> Option<StatusCode> {
    const MAX_HEAD: usize = 512;
    if buf.len() > MAX_HEAD || !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let rest = buf
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    let status = match rest.get(..4)? {
        b"400 " => StatusCode::BAD_REQUEST,
        b"414 " => StatusCode::URI_TOO_LONG,
        b"431 " => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        _ => return None,
    };
    let head = std::str::from_utf8(buf).ok()?.to_ascii_lowercase();
    (head.contains("\r\ncontent-length: 0\r\n") && !head.contains("\r\ncontent-type:"))
        .then_some(status)
}

/// The problem+json response that replaces hyper's bare one.
fn substitute(status: StatusCode) -> Vec<u8> {
    let (kind, detail) = match status {
        StatusCode::URI_TOO_LONG => (ProblemType::TooLarge, "request target too long"),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            ProblemType::TooLarge,
            "request head (request line and headers) too large",
        ),
        _ => (ProblemType::BadRequest, "malformed HTTP request head"),
    };
    raw_response(kind, status, detail)
}

impl<T: AsyncWrite + Unpin> ConnIo<T> {
    /// Writes the rest of a pending substitute; `Ready(Ok(n))` with the replaced write's length
    /// once it is all out.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        loop {
            let Some((bytes, written, replaced)) = self.pending.as_mut() else {
                return Poll::Ready(Ok(0));
            };
            if *written >= bytes.len() {
                let n = *replaced;
                self.pending = None;
                return Poll::Ready(Ok(n));
            }
            let r = Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]);
            let n = ready!(self.guard_stall(cx, r))?;
            let Some((_, written, _)) = self.pending.as_mut() else {
                return Poll::Ready(Ok(0));
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ConnIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.state.bytes_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ConnIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending.is_none() {
            match hyper_refusal(buf) {
                Some(status) => this.pending = Some((substitute(status), 0, buf.len())),
                None => {
                    let r = Pin::new(&mut this.inner).poll_write(cx, buf);
                    return this.guard_stall(cx, r);
                }
            }
        }
        this.poll_pending(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut nonempty = bufs.iter().filter(|b| !b.is_empty());
        let only = match (nonempty.next(), nonempty.next()) {
            (Some(first), None) => Some(first),
            _ => None,
        };
        match only {
            Some(b) if this.pending.is_some() || hyper_refusal(b).is_some() => {
                Pin::new(this).poll_write(cx, b)
            }
            _ => {
                let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
                this.guard_stall(cx, r)
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending.is_some() {
            ready!(this.poll_pending(cx))?;
        }
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.guard_stall(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending.is_some() {
            ready!(this.poll_pending(cx))?;
        }
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.guard_stall(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    /// A client that never reads: the writes fill the pipe, then fail after the write timeout.
    #[tokio::test]
    async fn a_stalled_write_fails_after_the_write_timeout() {
        let (server, _client) = tokio::io::duplex(1024);
        let registry = crate::registry::Registry::new(1);
        let slot = registry.admit().expect("admitted");
        let mut io = ConnIo::new(server, Arc::clone(&slot.state), Duration::from_millis(200));
        let started = std::time::Instant::now();
        let chunk = [b'x'; 4096];
        let err = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Err(e) = io.write_all(&chunk).await {
                    return e;
                }
            }
        })
        .await
        .expect("the write fails rather than blocking forever");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    /// hyper's bare 431 goes out as problem+json, and hyper is told its whole write was taken.
    #[tokio::test]
    async fn a_bare_refusal_is_rewritten_on_the_wire() {
        use tokio::io::AsyncReadExt as _;
        let (server, mut client) = tokio::io::duplex(64 * 1024);
        let registry = crate::registry::Registry::new(1);
        let slot = registry.admit().expect("admitted");
        let mut io = ConnIo::new(server, Arc::clone(&slot.state), Duration::from_secs(5));
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        let n = std::future::poll_fn(|cx| Pin::new(&mut io).poll_write(cx, bare))
            .await
            .expect("written");
        assert_eq!(n, bare.len());
        io.shutdown().await.expect("shutdown");
        drop(io);
        let mut got = String::new();
        client.read_to_string(&mut got).await.expect("read");
        assert!(got.starts_with("HTTP/1.1 431 "), "{got}");
        assert!(
            got.contains("content-type: application/problem+json\r\n"),
            "{got}"
        );
        assert!(
            got.ends_with(
                "\"status\":431,\"detail\":\"request head (request line and headers) too large\"}"
            ),
            "{got}"
        );
    }

    #[test]
    fn recognises_only_hyper_bare_refusals() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 06:00:00 GMT\r\n\r\n";
        assert_eq!(
            hyper_refusal(bare),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        let bad = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_refusal(bad), Some(StatusCode::BAD_REQUEST));
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_refusal(ours), None, "has a content type");
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n";
        assert_eq!(hyper_refusal(with_body), None);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_refusal(ok), None);
        assert_eq!(hyper_refusal(b"HTTP/1.1 400 "), None, "not a whole head");
    }
}
