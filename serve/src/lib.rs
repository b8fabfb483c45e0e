//! # ledger-serve
//!
//! The one HTTP(S) server loop of every mimi-ledger server (log-server, auditor, identity prover,
//! the monitor's metrics endpoint): it serves an axum [`Router`] over HTTP/1.1, with or without
//! TLS, under [`Limits`] that bound what a client can hold:
//!
//! - **a connection cap** ([`Limits::max_connections`]): at the cap a new connection closes the one
//!   that has gone longest without a request in progress, so connections that send nothing cannot
//!   keep new clients out; only when every connection has a request in progress is the new one
//!   refused (`503` problem+json `overloaded` over plain HTTP, a closed socket over TLS).
//! - **header, idle and body timeouts**: a request head must arrive within
//!   [`Limits::header_timeout`] (of the connection's start, or of its first byte on a keep-alive
//!   connection), a keep-alive connection may wait [`Limits::idle_timeout`] for its next request,
//!   and a whole request body must arrive within [`Limits::body_timeout`] (a total, not a gap
//!   between bytes, so a trickle or an endless chunked body ends too; answered `408`); a response
//!   write blocked that long on a client that does not read closes the connection too.
//! - **a head size limit** ([`Limits::max_header_bytes`], also the connection's read buffer):
//!   `431`; a request target over [`limits::MAX_URI_BYTES`]: `414`.
//! - **problem+json refusals**: hyper's own bodiless `400`/`414`/`431` answers are rewritten on
//!   their way out (see the `io` module for why), and this crate's refusals use the servers'
//!   RFC 9457 shape and SPEC §5 slugs ([`problem`]).
//! - **a prompt drain**: on the shutdown future it stops accepting, closes connections without a
//!   request in progress at once, fails request bodies still arriving, lets the remaining
//!   requests finish for up to [`Limits::drain_timeout`], then drops them.
//!
//! Handlers get the peer address as axum's `ConnectInfo<SocketAddr>`, as with
//! `into_make_service_with_connect_info`.
//!
//! ```no_run
//! # async fn example() -> Result<(), ledger_serve::ServeError> {
//! let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok\n" }));
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let stop = async { let _ = tokio::signal::ctrl_c().await; };
//! ledger_serve::serve(listener, app, ledger_serve::Limits::default(), None, stop).await
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod body;
pub mod client;
mod io;
pub mod limits;
pub mod problem;
pub mod process;
mod registry;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use ledger_core::problem::ProblemType;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

pub use body::BodyError;
pub use limits::{LimitSettings, Limits, LimitsError};
pub use process::{log_filter, shutdown_signal, LOG_FILTER_VAR};

use body::{DeadlineBody, GuardBody, InFlight, STOP_SHUTDOWN, STOP_TIMEOUT};
use io::ConnIo;
use registry::{ConnState, Registry, Slot};

/// Most refused connections being answered `503` at once; beyond it they are just closed, so a
/// flood cannot turn the refusals themselves into held sockets.
const MAX_REFUSALS_IN_PROGRESS: usize = 64;
/// How long a refused connection gets to receive its `503`.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The listening socket cannot be used.
    #[error("listener: {0}")]
    Listener(#[from] std::io::Error),
    /// The TLS certificate chain cannot be read.
    #[error("TLS certificate {path}: {reason}")]
    TlsCert {
        /// The PEM file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The TLS private key cannot be read.
    #[error("TLS key {path}: {reason}")]
    TlsKey {
        /// The PEM file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the certificate and key together.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// A rustls server configuration (ring, TLS 1.2 and 1.3, ALPN `http/1.1`) from a PEM certificate
/// chain and a PEM private key.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let cert_err = |reason: String| ServeError::TlsCert {
        path: cert.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(cert_err("no certificate in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| ServeError::TlsKey {
        path: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `router` on `listener` (HTTPS when `tls` is given) under `limits` until `shutdown`
/// resolves, then drains (see the crate docs) and returns.
pub async fn serve<F>(
    listener: std::net::TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: F,
) -> Result<(), ServeError>
where
    F: Future<Output = ()> + Send,
{
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let registry = Registry::new(limits.max_connections);
    let (stop_tx, stop_rx) = watch::channel(false);
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_PROGRESS));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut tasks = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => r,
        };
        while tasks.try_join_next().is_some() {}
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors (EMFILE/ENFILE) or similar: free one by closing the
                // idlest connection, and do not spin.
                tracing::warn!(error = %e, "accept failed");
                registry.evict_one();
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Small answers must not wait for Nagle's algorithm and delayed ACKs.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        match registry.admit() {
            Some(slot) => {
                let conn = Conn {
                    peer,
                    router: router.clone(),
                    limits,
                    stop: stop_rx.clone(),
                };
                tasks.spawn(conn.run(tcp, slot, acceptor.clone()));
            }
            None => refuse(tcp, peer, acceptor.is_none(), &refusals),
        }
    }
    drop(listener);
    tracing::info!(
        connections = tasks.len(),
        "stopped accepting; draining requests in progress"
    );
    let _ = stop_tx.send(true);
    registry.close_idle();
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.drain_timeout, drain)
        .await
        .is_err()
    {
        tracing::warn!(
            left = tasks.len(),
            "requests did not finish within the drain timeout; closing them"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    Ok(())
}

/// Answers a connection over the cap: `503` problem+json over plain HTTP (then it is closed, its
/// request unread), just a close over TLS (a handshake would cost more than the refusal).
fn refuse(mut tcp: TcpStream, peer: SocketAddr, plain: bool, refusals: &Arc<Semaphore>) {
    tracing::debug!(%peer, "connection cap reached with every connection busy; refused");
    if !plain {
        return;
    }
    let Ok(permit) = Arc::clone(refusals).try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let raw = problem::raw_response(
            ProblemType::Overloaded,
            StatusCode::SERVICE_UNAVAILABLE,
            "too many connections; retry later",
        );
        let answer = async {
            tcp.write_all(&raw).await?;
            tcp.shutdown().await?;
            // Read what the client sent until it closes, so that closing does not reset the
            // connection before the client has read the answer.
            let mut sink = [0u8; 1024];
            while tcp.read(&mut sink).await? > 0 {}
            Ok::<(), std::io::Error>(())
        };
        let _ = tokio::time::timeout(REFUSAL_TIMEOUT, answer).await;
    });
}

/// What every connection task needs.
struct Conn {
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    stop: watch::Receiver<bool>,
}

impl Conn {
    async fn run(self, tcp: TcpStream, slot: Slot, tls: Option<tokio_rustls::TlsAcceptor>) {
        let state = Arc::clone(&slot.state);
        match tls {
            None => {
                let timeout = self.limits.body_timeout;
                self.drive(ConnIo::new(tcp, state, timeout)).await
            }
            Some(acceptor) => {
                // The handshake counts as the head: it must finish within the header timeout,
                // and the connection may be closed meanwhile (cap, shutdown).
                let handshake =
                    tokio::time::timeout(self.limits.header_timeout, acceptor.accept(tcp));
                let mut handshake = pin!(handshake);
                let tls = loop {
                    tokio::select! {
                        r = &mut handshake => break r,
                        _ = state.wake.notified() => {
                            if state.is_closed() {
                                return;
                            }
                        }
                    }
                };
                match tls {
                    Ok(Ok(stream)) => {
                        let timeout = self.limits.body_timeout;
                        self.drive(ConnIo::new(stream, state, timeout)).await
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed")
                    }
                    Err(_) => tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
                }
            }
        }
        drop(slot);
    }

    /// Serves HTTP/1.1 on one connection until it ends, times out, is closed by the registry, or
    /// the drain ends it.
    async fn drive<I>(self, io: ConnIo<I>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let state = Arc::clone(io.state());
        let peer = self.peer;
        let limits = self.limits;
        let mut stop = self.stop.clone();
        let service = ConnService {
            router: self.router,
            peer,
            state: Arc::clone(&state),
            body_timeout: limits.body_timeout,
            stop: self.stop,
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .max_buf_size(limits.max_header_bytes)
            .keep_alive(true)
            // Our own deadlines (below) replace hyper's header timer: they also cover the idle
            // keep-alive wait and the connection's start separately.
            .header_read_timeout(None::<Duration>);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        let mut conn = pin!(conn);
        let mut draining = false;
        loop {
            if state.is_closed() {
                tracing::debug!(%peer, "connection closed (cap or shutdown)");
                return;
            }
            let deadline = state.deadline(&limits);
            let timer = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = state.wake.notified() => {}
                _ = timer => {
                    if state
                        .deadline(&limits)
                        .is_some_and(|d| d <= std::time::Instant::now())
                    {
                        tracing::debug!(%peer, "connection timed out waiting for a request");
                        return;
                    }
                }
                _ = stop.wait_for(|v| *v), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// The per-connection service: request accounting, the target-length check, the body deadline,
/// `ConnectInfo`, and the answers for bodies that stopped.
#[derive(Clone)]
struct ConnService {
    router: Router,
    peer: SocketAddr,
    state: Arc<ConnState>,
    body_timeout: Duration,
    stop: watch::Receiver<bool>,
}

type ServiceFuture = Pin<Box<dyn Future<Output = Result<Response<GuardBody>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<GuardBody>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn call(&self, req: Request<Incoming>) -> ServiceFuture {
        let guard = InFlight::start(Arc::clone(&self.state));
        let target_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len())
            + req.uri().authority().map_or(0, |a| a.as_str().len());
        if target_len > limits::MAX_URI_BYTES {
            let resp = problem::response(
                ProblemType::TooLarge,
                StatusCode::URI_TOO_LONG,
                &format!(
                    "request target of {target_len} bytes; at most {} are accepted",
                    limits::MAX_URI_BYTES
                ),
            );
            return Box::pin(std::future::ready(Ok(resp.map(|inner| GuardBody {
                inner,
                _guard: guard,
            }))));
        }
        let why = Arc::new(AtomicU8::new(body::STOP_NONE));
        let (parts, body) = req.into_parts();
        let body = DeadlineBody::new(body, self.body_timeout, self.stop.clone(), Arc::clone(&why));
        let mut req = Request::from_parts(parts, axum::body::Body::new(body));
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let mut router = self.router.clone();
        let body_timeout = self.body_timeout;
        Box::pin(async move {
            use tower_service::Service;
            type Req = Request<axum::body::Body>;
            let resp = match std::future::poll_fn(|cx| Service::<Req>::poll_ready(&mut router, cx))
                .await
            {
                Ok(()) => match router.call(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                },
                Err(never) => match never {},
            };
            // The handler saw a failed body read and answered something generic; say what
            // happened instead.
            let resp = match why.load(Ordering::Acquire) {
                STOP_TIMEOUT => problem::response(
                    ProblemType::BadRequest,
                    StatusCode::REQUEST_TIMEOUT,
                    &format!("the request body did not arrive within {body_timeout:?}"),
                ),
                STOP_SHUTDOWN => problem::response(
                    ProblemType::Overloaded,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the server is shutting down; retry later",
                ),
                _ => resp,
            };
            Ok(resp.map(|inner| GuardBody {
                inner,
                _guard: guard,
            }))
        })
    }
}
