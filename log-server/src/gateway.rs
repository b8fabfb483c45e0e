//! The Oblivious HTTP gateway (RFC 9458): `POST /.well-known/ohttp-gateway` takes a
//! `message/ohttp-req`, opens it with one of the gateway's keys, answers the Binary HTTP request
//! inside by calling this server's own router in-process, and returns the answer sealed as
//! `message/ohttp-res`; `GET /ohttp-keys` serves the key configuration list
//! (`application/ohttp-keys`, RFC 9540), the current key first.
//!
//! Inside, only what a client needs for a lookup is served: `GET /v1/lookup`, `GET /v1/info` and
//! `GET /checkpoint`; any other path is a Binary HTTP 404, another method on those paths a 405.
//! Nothing else of the outer request (headers, peer address) reaches the inner one.
//!
//! Keys: `<data>/ohttp/*.key` ([`ledger_ohttp::keys`]), created on first start;
//! `--ohttp-rotate-key` makes a new key current at start, the previous one stays valid for
//! `--ohttp-key-overlap-s` (default 7 days). Replays: every inner request carries a `date`; one
//! dated more than `--ohttp-replay-window-s` from our clock is refused, and the `enc` of every
//! request answered is remembered for twice that window, so a copy gets no second answer
//! ([`ledger_ohttp::replay`]).
//!
//! Refusals of the outer request (an unknown key id, a request that does not decrypt, a replay)
//! are plain problem+json answers, as RFC 9458 §5.2 wants: they are readable by the relay, so they
//! say nothing about the request. Each gateway request is logged with the address it came from —
//! the relay's, never the client's.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use ledger_core::problem::ProblemType;
use ledger_core::time::now_unix;
use ledger_ohttp::keys::{KeyRing, KeyRingError};
use ledger_ohttp::replay::{ReplayWindow, Verdict};
use ledger_ohttp::{message, GATEWAY_PATH, KEYS_MEDIA_TYPE, KEYS_PATH, MAX_MESSAGE_BYTES};
use tower::ServiceExt as _;

use crate::problem::ApiError;

/// The inner paths the gateway serves (all `GET`).
pub const INNER_PATHS: [&str; 3] = ["/v1/lookup", "/v1/info", "/checkpoint"];
/// The largest inner answer relayed (a lookup answer with its proofs is a few KiB).
const MAX_INNER_ANSWER: usize = 1024 * 1024;

/// The gateway's settings (`--ohttp-*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayConfig {
    /// How long a superseded key stays valid, seconds.
    pub overlap_s: u64,
    /// Make a new key current at start.
    pub rotate: bool,
    /// How far an inner request's date may be from our clock, seconds.
    pub replay_window_s: u64,
}

impl Default for GatewayConfig {
    fn default() -> GatewayConfig {
        GatewayConfig {
            overlap_s: ledger_ohttp::keys::DEFAULT_OVERLAP_S,
            rotate: false,
            replay_window_s: ledger_ohttp::replay::DEFAULT_WINDOW_S,
        }
    }
}

/// The gateway's state.
#[derive(Debug)]
pub struct Gateway {
    keys: KeyRing,
    replay: Mutex<ReplayWindow>,
    inner: Router,
}

impl Gateway {
    /// Loads (or creates, or rotates) the keys in `data` for a gateway in front of `inner`.
    pub fn open(
        data: &std::path::Path,
        config: &GatewayConfig,
        inner: Router,
    ) -> Result<Gateway, KeyRingError> {
        let (keys, report) =
            KeyRing::load_or_create(data, config.overlap_s, config.rotate, now_unix())?;
        if let Some(id) = report.created {
            tracing::info!(key_id = id, "created an OHTTP gateway key (now current)");
        }
        for id in report.expired {
            tracing::info!(
                key_id = id,
                "removed an OHTTP gateway key whose overlap ended"
            );
        }
        if let Some(k) = keys.current() {
            tracing::info!(
                key_id = k.id(),
                valid = keys.valid(now_unix()).len(),
                "OHTTP gateway ready"
            );
        }
        Ok(Gateway {
            keys,
            replay: Mutex::new(ReplayWindow::new(
                config.replay_window_s,
                ledger_ohttp::replay::DEFAULT_CAPACITY,
            )),
            inner,
        })
    }
}

/// `app` with the gateway's two routes added (their own body limit; the inner calls go through
/// `app` itself, with all its layers).
pub fn attach(
    app: Router,
    data: &std::path::Path,
    config: &GatewayConfig,
) -> Result<Router, KeyRingError> {
    let gw = Arc::new(Gateway::open(data, config, app.clone())?);
    let routes = Router::new()
        .route(GATEWAY_PATH, post(gateway))
        .route(KEYS_PATH, get(keys))
        .layer(DefaultBodyLimit::max(MAX_MESSAGE_BYTES))
        .with_state(gw);
    Ok(routes.merge(app))
}

/// `GET /ohttp-keys`.
#[utoipa::path(get, path = "/ohttp-keys", tag = "ohttp",
    responses((status = 200, description = "The gateway's key configurations (RFC 9540 `application/ohttp-keys`), the current key first; `Cache-Control: max-age=3600`.", body = inline(crate::openapi::Binary), content_type = "application/ohttp-keys")))]
pub(crate) async fn keys(State(gw): State<Arc<Gateway>>) -> Response {
    let mut resp = Response::new(Body::from(gw.keys.encoded_list(now_unix())));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(KEYS_MEDIA_TYPE),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=3600"),
    );
    resp
}

fn is_ohttp_req(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case(ledger_ohttp::REQUEST_MEDIA_TYPE)
            })
        })
}

/// `POST /.well-known/ohttp-gateway`.
#[utoipa::path(post, path = "/.well-known/ohttp-gateway", tag = "ohttp",
    request_body(content = inline(crate::openapi::Binary), content_type = "message/ohttp-req", description = "An encapsulated request (RFC 9458) holding a Binary HTTP `GET` of `/v1/lookup`, `/v1/info` or `/checkpoint`, dated."),
    responses(
        (status = 200, description = "The encapsulated Binary HTTP answer (`message/ohttp-res`): the inner status, even a refusal, is inside.", body = inline(crate::openapi::Binary), content_type = "message/ohttp-res"),
        (status = 400, description = "`bad-request`: empty, an unknown key id, does not decrypt, or replayed.", body = ledger_core::api::Problem, content_type = "application/problem+json"),
        (status = 413, description = "`too-large`: over the encapsulated request limit.", body = ledger_core::api::Problem, content_type = "application/problem+json"),
        (status = 415, description = "`bad-request`: the Content-Type is not `message/ohttp-req`.", body = ledger_core::api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`overloaded`: the replay window is full (`Retry-After`).", body = ledger_core::api::Problem, content_type = "application/problem+json")))]
pub(crate) async fn gateway(State(gw): State<Arc<Gateway>>, req: Request<Body>) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |p| p.0.to_string());
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_MESSAGE_BYTES).await;
    let resp = answer(&gw, &parts.headers, body).await;
    let (status, inner) = match &resp {
        Ok((inner, _)) => (200, *inner),
        Err(e) => (e.status.unwrap_or(e.kind.status()), 0),
    };
    // The address is the relay's: clients reach the gateway only through it.
    tracing::info!(%peer, status, inner, "ohttp gateway request");
    match resp {
        Ok((_, r)) => r,
        Err(e) => e.into_response(),
    }
}

async fn answer(
    gw: &Gateway,
    headers: &HeaderMap,
    body: Result<Bytes, axum::Error>,
) -> Result<(u16, Response), ApiError> {
    if !is_ohttp_req(headers) {
        return Err(ApiError::bad_request(format!(
            "the body must be {}",
            ledger_ohttp::REQUEST_MEDIA_TYPE
        ))
        .with_status(415));
    }
    let body = body.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::new(
                ProblemType::TooLarge,
                format!("an encapsulated request is at most {MAX_MESSAGE_BYTES} bytes"),
            )
        } else {
            ApiError::bad_request(format!("reading the request body: {e}"))
        }
    })?;
    let now = now_unix();
    let key_id = *body
        .first()
        .ok_or_else(|| ApiError::bad_request("empty encapsulated request"))?;
    let key = gw.keys.key_for(key_id, now).ok_or_else(|| {
        ApiError::bad_request(format!(
            "key mismatch: this gateway has no valid key with id {key_id} (GET {KEYS_PATH} lists its keys)"
        ))
    })?;
    let (inner, sealer) = key.server().decapsulate(&body).map_err(|_| {
        ApiError::bad_request(format!(
            "key mismatch: the request does not decrypt with this gateway's key {key_id}"
        ))
    })?;
    let seal = |status: u16, content_type: Option<&str>, content: &[u8]| {
        message::encode_response(status, content_type, content)
            .map_err(|e| ApiError::new(ProblemType::BadRequest, e.to_string()).with_status(500))
    };
    let bhttp = match message::decode_request(&inner) {
        Err(e) => seal(400, Some("text/plain"), e.to_string().as_bytes())?,
        Ok(req) => {
            let enc = ledger_ohttp::client::request_enc(&body).unwrap_or(&[]);
            let verdict = match req.date {
                None => Verdict::OutsideWindow,
                Some(date) => gw
                    .replay
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .check(enc, date, now),
            };
            match verdict {
                Verdict::Fresh => {
                    let (status, ct, content) = dispatch(&gw.inner, &req).await;
                    seal(status, ct.as_deref(), &content)?
                }
                Verdict::Replayed => {
                    return Err(ApiError::bad_request(
                        "replayed: this encapsulated request was answered already",
                    ))
                }
                Verdict::Full => {
                    return Err(ApiError::overloaded(
                        "the gateway's replay window is full; retry shortly",
                    ))
                }
                Verdict::OutsideWindow => seal(
                    400,
                    Some("text/plain"),
                    format!(
                        "the request's date is missing or more than {} s from the gateway's clock ({now})",
                        gw.replay
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .window_s()
                    )
                    .as_bytes(),
                )?,
            }
        }
    };
    let status = message::decode_response(&bhttp).map_or(0, |r| r.status);
    let sealed = sealer
        .encapsulate(&bhttp)
        .map_err(|e| ApiError::bad_request(format!("sealing the answer: {e}")).with_status(500))?;
    let mut resp = Response::new(Body::from(sealed));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(ledger_ohttp::RESPONSE_MEDIA_TYPE),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok((status, resp))
}

/// Answers an inner request with the server's own router (only [`INNER_PATHS`], only `GET`).
async fn dispatch(app: &Router, req: &message::InnerRequest) -> (u16, Option<String>, Vec<u8>) {
    let path_only = req.path.split('?').next().unwrap_or("");
    if !INNER_PATHS.contains(&path_only) {
        return problem(ApiError::not_found(
            "the gateway serves only GET /v1/lookup, /v1/info and /checkpoint",
        ))
        .await;
    }
    if req.method != "GET" {
        return problem(ApiError::bad_request("only GET is served").with_status(405)).await;
    }
    let mut built = Request::builder()
        .method(Method::GET)
        .uri(req.path.as_str());
    // The one field of the client's that reaches the router: a Privacy Pass token (RFC 9577) for
    // a DP started with --require-token.
    if let Some(a) = &req.authorization {
        built = built.header(header::AUTHORIZATION, a.as_str());
    }
    let built = built.body(Body::empty());
    let inner = match built {
        Ok(r) => r,
        Err(e) => return problem(ApiError::bad_request(format!("bad path: {e}"))).await,
    };
    let resp = match app.clone().oneshot(inner).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match axum::body::to_bytes(resp.into_body(), MAX_INNER_ANSWER).await {
        Ok(b) => (status, ct, b.to_vec()),
        Err(e) => {
            problem(ApiError::bad_request(format!("reading the answer: {e}")).with_status(500))
                .await
        }
    }
}

async fn problem(e: ApiError) -> (u16, Option<String>, Vec<u8>) {
    let resp = e.into_response();
    let status = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), MAX_INNER_ANSWER)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    (status, Some(crate::problem::PROBLEM_JSON.to_string()), body)
}
