//! `ohttp-relay`: the Oblivious HTTP relay (RFC 9458 §2) in front of ONE gateway.
//!
//! `POST /` (or `/relay`) with a `message/ohttp-req` body is forwarded to `--gateway URL` in a
//! fresh request that carries only `content-type` (no client address, no `X-Forwarded-For`, no
//! cookies, no other header of the client), and the gateway's answer body is returned with its
//! status and content type. The relay cannot read either body.
//!
//! Bounds: a body over `--max-body-bytes` (default 64 KiB) is refused with 413 `too-large`, and
//! each client address (IPv6 by its /64) has a token bucket (`--rate-per-s`, `--rate-burst`):
//! an empty one is answered 429 `rate-limited` with `Retry-After`. Buckets live in memory only.
//!
//! The log holds no client address: requests are counted by outcome, and the counts are logged
//! every `--report-s` seconds and served at `GET /metrics`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use ledger_core::problem::ProblemType;
use ledger_ohttp::{REQUEST_MEDIA_TYPE, RESPONSE_MEDIA_TYPE};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "ohttp-relay",
    version,
    about = "Oblivious HTTP relay for one mimi-ledger gateway"
)]
struct Cli {
    /// The gateway's URL (`http(s)://HOST/.well-known/ohttp-gateway`).
    #[arg(long, env = "LEDGER_RELAY_GATEWAY", value_name = "URL")]
    gateway: String,
    /// Address to listen on.
    #[arg(
        long,
        env = "LEDGER_RELAY_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8090"
    )]
    listen: SocketAddr,
    /// Largest encapsulated request accepted, bytes.
    #[arg(long, value_name = "BYTES", default_value_t = ledger_ohttp::MAX_MESSAGE_BYTES)]
    max_body_bytes: usize,
    /// Sustained requests per second per client address.
    #[arg(long, value_name = "N", default_value_t = 10)]
    rate_per_s: u32,
    /// Requests a client address may send at once after being idle.
    #[arg(long, value_name = "N", default_value_t = 20)]
    rate_burst: u32,
    /// How long the gateway may take to answer, ms.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    gateway_timeout_ms: u64,
    /// Log the request counts this often, seconds (0: never).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    report_s: u64,
    /// Connection cap and client timeouts (as the other servers).
    #[command(flatten)]
    limits: ledger_serve::LimitSettings,
}

/// Outcome counters (the only thing the relay records about requests).
#[derive(Debug, Default)]
struct Counts {
    relayed: AtomicU64,
    too_large: AtomicU64,
    rate_limited: AtomicU64,
    bad_type: AtomicU64,
    gateway_failed: AtomicU64,
}

impl Counts {
    fn render(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "# TYPE ohttp_relay_requests_total counter\n\
             ohttp_relay_requests_total{{result=\"relayed\"}} {}\n\
             ohttp_relay_requests_total{{result=\"too-large\"}} {}\n\
             ohttp_relay_requests_total{{result=\"rate-limited\"}} {}\n\
             ohttp_relay_requests_total{{result=\"bad-type\"}} {}\n\
             ohttp_relay_requests_total{{result=\"gateway-failed\"}} {}\n",
            g(&self.relayed),
            g(&self.too_large),
            g(&self.rate_limited),
            g(&self.bad_type),
            g(&self.gateway_failed)
        )
    }
}

/// A per-address token bucket, in memory.
#[derive(Debug)]
struct Buckets {
    per_s: f64,
    burst: f64,
    map: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

/// Above this many addresses, full buckets are forgotten (a full bucket is the same as none).
const PRUNE_ABOVE: usize = 65_536;

impl Buckets {
    fn new(per_s: u32, burst: u32) -> Buckets {
        Buckets {
            per_s: f64::from(per_s.max(1)),
            burst: f64::from(burst.max(1)),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `ip`, or says how many seconds until one is there.
    fn take(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let key = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
                }
            },
            v4 => v4,
        };
        let (rate, burst) = (self.per_s, self.burst);
        let level = |(t, at): (f64, Instant)| {
            (t + now.saturating_duration_since(at).as_secs_f64() * rate).min(burst)
        };
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= PRUNE_ABOVE && !map.contains_key(&key) {
            map.retain(|_, b| level(*b) < burst);
        }
        let b = map.entry(key).or_insert((burst, now));
        let tokens = level(*b);
        if tokens >= 1.0 {
            *b = (tokens - 1.0, now);
            Ok(())
        } else {
            *b = (tokens, now);
            Err(((1.0 - tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

#[derive(Clone, Debug)]
struct Relay {
    gateway: Arc<str>,
    client: reqwest::Client,
    max_body: usize,
    buckets: Arc<Buckets>,
    counts: Arc<Counts>,
}

fn problem(kind: ProblemType, status: StatusCode, detail: &str) -> Response {
    let mut r = ledger_serve::problem::response(kind, status, detail);
    // These refusals read the whole request; the connection may stay open.
    r.headers_mut().remove(header::CONNECTION);
    r
}

fn is_ohttp_req(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(REQUEST_MEDIA_TYPE))
}

async fn relay(
    State(r): State<Relay>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: axum::extract::Request,
) -> Response {
    // The address decides the bucket and is then forgotten: it is neither logged nor forwarded.
    if let Err(secs) = r.buckets.take(peer.ip(), Instant::now()) {
        r.counts.rate_limited.fetch_add(1, Ordering::Relaxed);
        let mut resp = problem(
            ProblemType::RateLimited,
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests from this address; retry later",
        );
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    if !is_ohttp_req(req.headers()) {
        r.counts.bad_type.fetch_add(1, Ordering::Relaxed);
        return problem(
            ProblemType::BadRequest,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be message/ohttp-req",
        );
    }
    let body: Bytes = match axum::body::to_bytes(req.into_body(), r.max_body).await {
        Ok(b) => b,
        Err(_) => {
            r.counts.too_large.fetch_add(1, Ordering::Relaxed);
            let mut resp = problem(
                ProblemType::TooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("an encapsulated request is at most {} bytes", r.max_body),
            );
            // The rest of the body was not read.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return resp;
        }
    };
    // A fresh request: the content type and the opaque body, nothing of the client's.
    let sent = r
        .client
        .post(&*r.gateway)
        .header(header::CONTENT_TYPE, REQUEST_MEDIA_TYPE)
        .body(body)
        .send()
        .await;
    let answer = match sent {
        Ok(a) => a,
        Err(e) => {
            r.counts.gateway_failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e.without_url(), "the gateway did not answer");
            return problem(
                ProblemType::Overloaded,
                StatusCode::BAD_GATEWAY,
                "the gateway did not answer",
            );
        }
    };
    let status = answer.status();
    let ct = answer.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = match ledger_serve::client::read_limited(answer).await {
        Ok(b) => b,
        Err(e) => {
            r.counts.gateway_failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "reading the gateway's answer failed");
            return problem(
                ProblemType::Overloaded,
                StatusCode::BAD_GATEWAY,
                "the gateway's answer could not be read",
            );
        }
    };
    r.counts.relayed.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(status = status.as_u16(), "relayed");
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        ct.and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
            .unwrap_or(HeaderValue::from_static(RESPONSE_MEDIA_TYPE)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn router(r: Relay) -> Router {
    let counts = Arc::clone(&r.counts);
    let limit = r.max_body;
    Router::new()
        .route("/", post(relay))
        .route("/relay", post(relay))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || {
                let c = Arc::clone(&counts);
                async move { c.render() }
            }),
        )
        .fallback(|| async {
            problem(
                ProblemType::NotFound,
                StatusCode::NOT_FOUND,
                "no such resource",
            )
        })
        .method_not_allowed_fallback(|| async {
            problem(
                ProblemType::BadRequest,
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed for this resource",
            )
        })
        // Our own limit decides (with a problem answer); axum's default 2 MiB must not cut first.
        .layer(DefaultBodyLimit::max(limit.saturating_add(1)))
        .with_state(r)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let limits = cli.limits.resolve().context("the connection limits")?;
    let gateway: reqwest::Url = cli.gateway.parse().context("--gateway is not a URL")?;
    anyhow::ensure!(
        matches!(gateway.scheme(), "http" | "https"),
        "--gateway must be an http(s) URL"
    );
    let r = Relay {
        gateway: gateway.as_str().into(),
        client: ledger_serve::client::http_client(Duration::from_millis(cli.gateway_timeout_ms)),
        max_body: cli.max_body_bytes,
        buckets: Arc::new(Buckets::new(cli.rate_per_s, cli.rate_burst)),
        counts: Arc::new(Counts::default()),
    };
    if cli.report_s > 0 {
        let counts = Arc::clone(&r.counts);
        let every = Duration::from_secs(cli.report_s);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
                tracing::info!(
                    relayed = g(&counts.relayed),
                    too_large = g(&counts.too_large),
                    rate_limited = g(&counts.rate_limited),
                    gateway_failed = g(&counts.gateway_failed),
                    "relay counts"
                );
            }
        });
    }
    let listener = std::net::TcpListener::bind(cli.listen)
        .with_context(|| format!("listening on {}", cli.listen))?;
    let addr = listener.local_addr()?;
    println!("listening on {addr}");
    tracing::info!(%addr, gateway = %gateway, "relaying");
    ledger_serve::serve(
        listener,
        router(r),
        limits,
        None,
        ledger_serve::shutdown_signal(),
    )
    .await
    .context("serving")?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(ledger_serve::log_filter())
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ohttp-relay: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ohttp-relay: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
