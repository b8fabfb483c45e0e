//! The I/O wrapper between hyper and the socket (or TLS stream): it tells the connection's state
//! when request bytes arrive (a head's clock starts at its first byte), and it turns hyper's own
//! bodiless refusals of unparsable requests into problem+json.
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

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

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
}

impl<T> ConnIo<T> {
    pub(crate) fn new(inner: T, state: Arc<ConnState>) -> ConnIo<T> {
        ConnIo {
            inner,
            state,
            pending: None,
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
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
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
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
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
            _ => Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
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
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending.is_some() {
            ready!(this.poll_pending(cx))?;
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
