//! [`WriteGate`]: an HTTP proxy on 127.0.0.1 in front of `s3s-fs` that lets one write of an object
//! key through at a time, so that the test server's conditional writes are atomic, as they are on
//! every S3 the publisher is meant for.
//!
//! Why it exists: `s3s-fs` 0.14.1 (`crates/s3s-fs/src/s3.rs`, `put_object`) checks `If-None-Match:
//! *` and `If-Match` *before* it writes, with awaits in between, and keeps an object's bytes and its
//! ETag in two files. Two conditional PUTs of one key at the same moment can thus both pass their
//! check, and leave one writer's bytes under the other's ETag. AWS S3, R2, GCS and MinIO decide the
//! condition and the write as one step, and the publisher's one-writer-per-prefix rule
//! (`log-server/src/publish.rs`) relies on that: `tests/tests/publish.rs`'s race of two logs
//! claiming one fresh prefix failed once in CI inside `s3s-fs`'s window (both "claimed", and the
//! owner's next `If-Match` then failed against the loser's ETag). The gate makes the test server
//! keep the contract the code is written against, so the tests judge the publisher, not `s3s-fs`.
//!
//! Reads (`GET`, `HEAD`) pass straight through and in parallel; writes (`PUT`, `POST`, `DELETE`)
//! of one path wait for one another. Requests are forwarded with their headers (the `Host` the
//! client signed included, so SigV4 still verifies) and bodies buffered (test objects are small).
//! While `s3s-fs` is down (`S3Server::kill9`) the gate answers 502, as a load balancer in front of
//! a dead S3 would; the publisher retries that like any 5xx.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse as _, Response};

/// Headers that describe one hop's connection, not the message: never forwarded.
const HOP: [&str; 4] = ["connection", "keep-alive", "transfer-encoding", "upgrade"];

/// The running gate; dropping it stops it (without waiting: a client still holding a connection
/// must not hold up the test).
pub(crate) struct WriteGate {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

struct Gate {
    upstream: u16,
    http: reqwest::Client,
    /// One lock per object path that was ever written through the gate.
    writes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl WriteGate {
    /// Listens on a free port of 127.0.0.1 and forwards to `s3s-fs` on `upstream`.
    pub(crate) fn start(upstream: u16) -> WriteGate {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the S3 write gate");
        let port = listener.local_addr().expect("the gate's address").port();
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        let gate = Arc::new(Gate {
            upstream,
            http,
            writes: Mutex::new(HashMap::new()),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("s3-write-gate".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                    let app = axum::Router::new().fallback(forward).with_state(gate);
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })
            .expect("spawn the S3 write gate");
        WriteGate {
            port,
            stop: Some(stop),
        }
    }

    /// The port clients connect to.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for WriteGate {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Gate {
    fn lock_for(&self, path: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        writes.entry(path.to_string()).or_default().clone()
    }
}

async fn forward(State(gate): State<Arc<Gate>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("reading the body: {e}")).into_response()
        }
    };
    let writes = matches!(parts.method, Method::PUT | Method::POST | Method::DELETE);
    let lock = writes.then(|| gate.lock_for(parts.uri.path()));
    let _turn = match &lock {
        Some(l) => Some(l.lock().await),
        None => None,
    };
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("http://127.0.0.1:{}{target}", gate.upstream);
    let mut headers = parts.headers;
    for h in HOP {
        headers.remove(h);
    }
    let mut request = gate.http.request(parts.method, url).headers(headers);
    if !body.is_empty() {
        request = request.body(body);
    }
    let answer = match request.send().await {
        Ok(a) => a,
        Err(e) => return bad_gateway(format!("s3s-fs is unreachable: {e}")),
    };
    let status = answer.status();
    let mut headers = answer.headers().clone();
    for h in HOP {
        headers.remove(h);
    }
    let bytes = match answer.bytes().await {
        Ok(b) => b,
        Err(e) => return bad_gateway(format!("reading s3s-fs's answer: {e}")),
    };
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// 502: `s3s-fs` gave no answer to pass on.
fn bad_gateway(why: String) -> Response {
    (StatusCode::BAD_GATEWAY, why).into_response()
}

#[cfg(test)]
mod tests {
    use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};

    use crate::S3Server;

    /// Two conditional creates of one key at once: exactly one wins, each time. Straight against
    /// `s3s-fs` 0.14.1 both win in most rounds (measured: 285 of 300 with two parallel `curl`s).
    #[test]
    fn one_of_two_simultaneous_creates_wins() {
        let s3 = S3Server::start();
        let store = s3.store();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        for round in 0..40 {
            let key = object_store::path::Path::from(format!("race/{round}"));
            let put = |who: &'static str| {
                let (store, key) = (store.clone(), key.clone());
                async move {
                    store
                        .put_opts(
                            &key,
                            PutPayload::from(who.as_bytes().to_vec()),
                            PutOptions::from(PutMode::Create),
                        )
                        .await
                }
            };
            let (a, b) = runtime.block_on(async { tokio::join!(put("a"), put("b")) });
            let won: Vec<&str> = [("a", &a), ("b", &b)]
                .into_iter()
                .filter(|(_, r)| r.is_ok())
                .map(|(w, _)| w)
                .collect();
            assert_eq!(won.len(), 1, "round {round}: {a:?} / {b:?}");
            let lost = if a.is_ok() { b } else { a };
            assert!(
                matches!(lost, Err(object_store::Error::AlreadyExists { .. })),
                "round {round}: {lost:?}"
            );
            let stored = s3.get(&format!("race/{round}")).expect("the object");
            assert_eq!(stored, won[0].as_bytes(), "round {round}");
        }
    }
}
