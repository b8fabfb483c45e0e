//! The HTTP API (SPEC §5): C2SP tlog-tiles reads, the JSON API, admin enrollment, metrics and
//! health. Every error is an RFC 9457 problem document (see [`crate::problem`]), including unknown
//! routes, wrong methods and axum's own extractor rejections.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use ledger_core::api::{
    ConsistencyProof, EntriesPage, InclusionProof, IndexedLeaf, Info, LookupAnswer, Problem,
    Receipt,
};
use ledger_core::bundle::{decode_bundle, BundleItem, MAX_BUNDLE_BYTES};
use ledger_core::entry::MAX_LEAF_BYTES;
use ledger_core::key::SignerKey;
use ledger_core::problem::ProblemType;
use ledger_core::sii::Sii;
use ledger_core::tree::prove_consistency;
use ledger_core::Hash;
use serde::{Deserialize, Serialize};

use crate::admission::AdmissionPool;
use crate::enroll::{current_enrollment, enroll_leaf, EnrollRequest};
use crate::error::LogError;
use crate::keys::bearer_matches;
use crate::ledger::Ledger;
use crate::problem::ApiError;
use crate::sequencer::SequencerHandle;
use crate::submit::{submit, submit_bundle};
use ledger_core::time::now_unix;

/// The largest `POST /v1/add` body read: one leaf (8 KiB) plus slack, so an oversized leaf gets
/// the precise `too-large` detail from the entry parser, and anything larger is cut off unread.
pub const ADD_BODY_LIMIT: usize = MAX_LEAF_BYTES + 1024;
/// The largest admin JSON body.
pub const ADMIN_BODY_LIMIT: usize = 16 * 1024;
/// The most entries one `/v1/entries` page returns.
pub const MAX_ENTRIES_PAGE: u64 = 1000;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const NO_CACHE: &str = "no-cache";

/// Everything the handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The open log (or a mirror's copy of it).
    pub ledger: Arc<Ledger>,
    /// What writes need; `None` on a read-only DP mirror ([`crate::mirror`]).
    pub writer: Option<Writer>,
    /// A mirror's follower (status, shards); `None` on the log itself.
    pub mirror: Option<crate::mirror::Running>,
    /// Per-client limit on the write routes, when configured (see [`crate::ratelimit`]).
    pub rate_limiter: Option<crate::ratelimit::RateLimiter>,
    /// Lookup rate limit and Privacy Pass redemption (see [`crate::tokens`]).
    pub lookup_guard: crate::tokens::LookupGuard,
}

/// The log's writing side, which a mirror does not have.
#[derive(Clone, Debug)]
pub struct Writer {
    /// The sequencer's queue.
    pub sequencer: SequencerHandle,
    /// The log key (signs enroll leaves for the admin API).
    pub signer: Arc<SignerKey>,
    /// The admin bearer token.
    pub admin_token: Arc<str>,
    /// Threads for the stateless checks of admission, signatures batch-verified.
    pub pool: AdmissionPool,
}

impl AppState {
    /// The writing side, or the `read-only-mirror` refusal naming the log to write to.
    fn writer(&self) -> Result<&Writer, ApiError> {
        self.writer.as_ref().ok_or_else(|| {
            let of = self
                .mirror
                .as_ref()
                .map(|m| m.status.info(false).of)
                .unwrap_or_default();
            ApiError::new(
                ProblemType::ReadOnlyMirror,
                format!(
                    "this server is a read-only mirror of the log {} (followed at {of}); send writes to the log itself",
                    self.ledger.origin()
                ),
            )
        })
    }
}

/// The routes of SPEC §5, with problem+json fallbacks and the metrics layer.
pub fn router(state: AppState) -> Router {
    // Shared behind one `Arc`: axum clones the state for every request (and every middleware
    // layer), and a clone of the struct itself was ~3% of the server's CPU under load.
    let state = Arc::new(state);
    Router::new()
        .route("/checkpoint", get(checkpoint))
        .route("/tile/{*path}", get(tile))
        .route("/v1/add", post(add))
        .route("/v1/add-bundle", post(add_bundle))
        .route("/v1/info", get(info))
        .route("/v1/entries", get(entries))
        .route("/v1/proof/inclusion", get(inclusion))
        .route("/v1/proof/consistency", get(consistency))
        .route("/v1/lookup", get(lookup))
        .route("/v1/admin/enroll", post(enroll))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route(crate::openapi::PATH, get(crate::openapi::serve))
        .merge(crate::explorer::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(ADMIN_BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            state.rate_limiter.clone(),
            crate::ratelimit::middleware,
        ))
        .layer(middleware::from_fn_with_state(
            state.lookup_guard.clone(),
            crate::tokens::middleware,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), serving_guard))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(middleware::from_fn(crate::explorer::cors))
        .with_state(state)
}

/// Every route of [`router`], as axum spells it: the metric labels (a fixed set, so labels stay
/// bounded), and the list the OpenAPI document is tested against ([`crate::openapi`]).
pub const ROUTES: [&str; 16] = [
    "/checkpoint",
    "/tile/{*path}",
    "/v1/add",
    "/v1/add-bundle",
    "/v1/info",
    "/v1/entries",
    "/v1/proof/inclusion",
    "/v1/proof/consistency",
    "/v1/lookup",
    "/v1/admin/enroll",
    "/metrics",
    "/healthz",
    crate::openapi::PATH,
    "/explorer",
    "/explorer/",
    "/explorer/{*path}",
];

/// The metric label for a matched route.
fn route_label(path: Option<&MatchedPath>) -> &'static str {
    path.and_then(|p| ROUTES.iter().find(|r| **r == p.as_str()).copied())
        .unwrap_or("unmatched")
}

/// Counts every answer by route, status and result (`ok` or the problem slug).
async fn track(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = route_label(req.extensions().get::<MatchedPath>());
    let resp = next.run(req).await;
    let result = resp
        .extensions()
        .get::<ProblemType>()
        .map(|p| p.slug())
        .unwrap_or("ok");
    state
        .ledger
        .metrics
        .request(route, resp.status().as_u16(), result);
    resp
}

/// The routes a mirror serves before it verified a checkpoint: its status, and the API document.
pub const OPEN_ROUTES: [&str; 4] = ["/v1/info", "/metrics", "/healthz", crate::openapi::PATH];

/// Whether a mirror serves `path` before it verified a checkpoint: the [`OPEN_ROUTES`] and the
/// explorer's files.
pub fn is_open(path: &str) -> bool {
    OPEN_ROUTES.contains(&path) || path.starts_with("/explorer")
}

/// A mirror that has not verified a checkpoint yet serves no view: its data routes answer 503
/// `overloaded` with `Retry-After` (the [`OPEN_ROUTES`] and the explorer's files still answer).
async fn serving_guard(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let open = is_open(req.uri().path());
    if open || state.ledger.serving() {
        return next.run(req).await;
    }
    ApiError::new(
        ProblemType::Overloaded,
        "this mirror has not verified a checkpoint of the log yet (it is catching up); see GET /v1/info",
    )
    .into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such resource")
}

async fn method_not_allowed() -> ApiError {
    ApiError::bad_request("method not allowed for this resource").with_status(405)
}

fn text_response(
    body: impl Into<Body>,
    content_type: &'static str,
    cache: &'static str,
) -> Response {
    let mut resp = Response::new(body.into());
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    resp
}

/// `GET /checkpoint` — the latest signed checkpoint note (C2SP tlog-checkpoint).
#[utoipa::path(get, path = "/checkpoint", tag = "tiles",
    responses((status = 200, description = "The latest signed checkpoint note (C2SP tlog-checkpoint); `Cache-Control: no-cache`.", body = String, content_type = "text/plain; charset=utf-8")))]
pub(crate) async fn checkpoint(State(s): State<Arc<AppState>>) -> Response {
    let head = s.ledger.head();
    text_response(
        head.checkpoint.to_string(),
        "text/plain; charset=utf-8",
        NO_CACHE,
    )
}

/// `GET /tile/<L>/<N>[.p/<W>]` and `GET /tile/entries/<N>[.p/<W>]` (C2SP tlog-tiles).
#[utoipa::path(get, path = "/tile/{path}", tag = "tiles",
    params(("path" = String, Path, description = "The rest of the C2SP tlog-tiles path: `<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`, `<N>` in 3-digit groups with `x` prefixes (`x001/234`); the slashes are part of the value (a client encodes them as `%2F`, or sends them as they are).")),
    responses(
        (status = 200, description = "The tile (hashes) or entry bundle; full tiles are `immutable`, partial ones `no-cache`.", body = inline(crate::openapi::Binary), content_type = "application/octet-stream"),
        (status = 404, description = "`not-found`: no such tile (the path is not a tile path, or the tree does not reach it yet).", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn tile(
    State(s): State<Arc<AppState>>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let path = format!("tile/{path}");
    let ledger = Arc::clone(&s.ledger);
    let (data, full) = tokio::task::spawn_blocking(move || crate::tiles::read_tile(&ledger, &path))
        .await
        .map_err(|e| LogError::Storage(format!("the tile read failed: {e}")))??;
    Ok(text_response(
        data,
        "application/octet-stream",
        if full { IMMUTABLE } else { NO_CACHE },
    ))
}

/// Whether the request's Content-Type is `text/plain` (any parameters).
fn is_text_plain(headers: &HeaderMap) -> bool {
    is_content_type(headers, "text/plain")
}

/// Whether the request declares a `Content-Length` above `limit` (refused before any byte is
/// read; a body without one is cut off at the limit while it is read).
fn declares_more_than(headers: &HeaderMap, limit: usize) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > limit as u64)
}

/// Whether the request's Content-Type is `mime` (any parameters).
fn is_content_type(headers: &HeaderMap, mime: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(mime))
}

/// `POST /v1/add` — one leaf note as `text/plain`; answers the receipt once durable.
#[utoipa::path(post, path = "/v1/add", tag = "log",
    request_body(content = String, content_type = "text/plain", description = "One leaf note (SPEC §3), at most 8 KiB."),
    responses(
        (status = 200, description = "The receipt, answered once the leaf is durable and covered by a signed checkpoint.", body = Receipt),
        (status = 400, description = "`malformed`: not a well-formed note or entry.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`unknown-signer`, `bad-signature`; `read-only-mirror` on a DP mirror.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`too-large`: the body exceeds the leaf limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`bad-request`: the Content-Type is not `text/plain`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`non-canonical`, `invalid-sii`, `attestation-required`, `bad-attestation`, `clock-skew`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`overloaded` (queue full), `storage-full`, `storage-failed`, `storage-unavailable`; `Retry-After` where retrying helps.", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn add(
    State(s): State<Arc<AppState>>,
    req: Request,
) -> Result<Response, ApiError> {
    let w = s.writer()?;
    if !is_text_plain(req.headers()) {
        return Err(ApiError::bad_request(
            "the body must be one leaf note with Content-Type: text/plain",
        )
        .with_status(415));
    }
    if declares_more_than(req.headers(), ADD_BODY_LIMIT) {
        return Err(too_large());
    }
    let bytes = read_limited(req.into_body(), ADD_BODY_LIMIT, too_large).await?;
    let submitted = submit(&s.ledger, &w.sequencer, &w.pool, bytes.to_vec()).await?;
    Ok(Json(submitted.receipt).into_response())
}

/// `POST /v1/add-bundle` — up to 1,000 leaves in the entry-bundle framing
/// (`application/octet-stream`); answers `200` with one element per leaf, in order: its receipt
/// or its problem document, as `POST /v1/add` would answer that leaf alone. A body that is not
/// a well-framed bundle (`bad-bundle`, 400), is too large (`too-large`, 413), or meets a log
/// that is not writing or has too few free queue slots (503) is refused as a whole, storing
/// nothing. The rate limiter charges one token per leaf (see [`crate::ratelimit`]).
#[utoipa::path(post, path = "/v1/add-bundle", tag = "log",
    request_body(content = inline(crate::openapi::Binary), content_type = "application/octet-stream", description = "1 to 1,000 leaves, each a big-endian u16 length and its bytes (the C2SP entry-bundle framing)."),
    responses(
        (status = 200, description = "One element per leaf, in order: its receipt or the problem document `POST /v1/add` would answer for it.", body = Vec<BundleItem>),
        (status = 400, description = "`bad-bundle`: not well framed, empty or more than 1,000 leaves; nothing is stored.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`read-only-mirror` on a DP mirror.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`too-large`: the body exceeds the bundle limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`bad-request`: the Content-Type is not `application/octet-stream`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`overloaded` (too few queue slots), `storage-full`, `storage-failed`, `storage-unavailable`; nothing is stored.", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn add_bundle(
    State(s): State<Arc<AppState>>,
    req: Request,
) -> Result<Response, ApiError> {
    let w = s.writer()?;
    if !is_content_type(req.headers(), "application/octet-stream") {
        return Err(ApiError::bad_request(
            "the body must be a bundle of leaves with Content-Type: application/octet-stream",
        )
        .with_status(415));
    }
    if declares_more_than(req.headers(), MAX_BUNDLE_BYTES) {
        return Err(bundle_too_large());
    }
    let client = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let body = read_limited(req.into_body(), MAX_BUNDLE_BYTES, bundle_too_large).await?;
    let leaves =
        decode_bundle(&body).map_err(|e| ApiError::new(ProblemType::BadBundle, e.to_string()))?;
    if let Some(limiter) = &s.rate_limiter {
        // The middleware took one token for the request; the other leaves pay here.
        let extra = u32::try_from(leaves.len().saturating_sub(1)).unwrap_or(u32::MAX);
        limiter.charge(client, extra, std::time::Instant::now());
    }
    let leaves: Vec<Vec<u8>> = leaves.into_iter().map(<[u8]>::to_vec).collect();
    drop(body);
    let answers = submit_bundle(&s.ledger, &w.sequencer, &w.pool, leaves).await?;
    let items: Vec<BundleItem> = answers
        .into_iter()
        .map(|a| match a {
            Ok(submitted) => BundleItem::Receipt(submitted.receipt),
            Err(e) => BundleItem::Problem(ApiError::from(e).problem()),
        })
        .collect();
    Ok(Json(items).into_response())
}

fn too_large() -> ApiError {
    ApiError::new(
        ProblemType::TooLarge,
        format!("the body exceeds {ADD_BODY_LIMIT} bytes (a leaf is at most {MAX_LEAF_BYTES})"),
    )
}

fn bundle_too_large() -> ApiError {
    ApiError::new(
        ProblemType::TooLarge,
        format!(
            "the bundle exceeds {MAX_BUNDLE_BYTES} bytes (at most {} leaves of at most {MAX_LEAF_BYTES})",
            ledger_core::bundle::MAX_BUNDLE_LEAVES
        ),
    )
}

/// Reads at most `limit` bytes of `body`; stops reading and refuses (`too_large()`) past it.
async fn read_limited(
    body: Body,
    limit: usize,
    too_large: fn() -> ApiError,
) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let inner = e.into_inner();
        if inner
            .downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()
        {
            too_large()
        } else {
            ApiError::bad_request(format!("reading the body: {inner}"))
        }
    })
}

/// `GET /v1/info`: [`Info`], plus a `publish` object when publishing to object storage, and on a
/// mirror its `mirror` member ([`crate::mirror::MirrorInfo`]).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct InfoAnswer {
    #[serde(flatten)]
    info: Info,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    publish: Option<crate::publish::PublishInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    mirror: Option<crate::mirror::MirrorInfo>,
}

/// `GET /v1/info`.
#[utoipa::path(get, path = "/v1/info", tag = "log",
    responses((status = 200, description = "The log's parameters and size (0 on a mirror that has no verified view yet), with `publish` when publishing and `mirror` on a DP mirror.", body = InfoAnswer)))]
pub(crate) async fn info(State(s): State<Arc<AppState>>) -> Json<InfoAnswer> {
    let l = &s.ledger;
    let w = l.witnesses();
    Json(InfoAnswer {
        info: Info {
            origin: l.origin().to_string(),
            vkey: l.vkey().to_string(),
            hash: l.tree_hash(),
            size: if l.serving() { l.head().size } else { 0 },
            witnesses: w.keys,
            quorum: w.quorum,
            policy: l.policy(),
        },
        publish: l.metrics.publish.get().map(|p| p.info()),
        mirror: s.mirror.as_ref().map(|m| m.status.info(l.serving())),
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct EntriesQuery {
    start: Option<u64>,
    count: Option<u64>,
}

/// `GET /v1/entries?start=S&count=C` (1 ≤ C ≤ 1000); stops at the current size.
#[utoipa::path(get, path = "/v1/entries", tag = "log",
    params(
        ("start" = u64, Query, description = "The first index.", minimum = 0, example = 0),
        ("count" = u64, Query, description = "How many entries at most (the page stops at the current size).", minimum = 1, maximum = 1000, example = 10)),
    responses(
        (status = 200, description = "The leaves from `start`, at most `count`, stopping at the current size (empty at or past it).", body = EntriesPage),
        (status = 400, description = "`bad-request`: a parameter is missing or out of range.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`overloaded`: reading the store failed.", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn entries(
    State(s): State<Arc<AppState>>,
    q: Result<Query<EntriesQuery>, QueryRejection>,
) -> Result<Json<EntriesPage>, ApiError> {
    let Query(q) = q?;
    let start = q
        .start
        .ok_or_else(|| ApiError::bad_request("missing parameter start"))?;
    let count = q
        .count
        .ok_or_else(|| ApiError::bad_request("missing parameter count"))?;
    if count == 0 || count > MAX_ENTRIES_PAGE {
        return Err(ApiError::bad_request(format!(
            "count must be 1..={MAX_ENTRIES_PAGE}"
        )));
    }
    let size = s.ledger.head().size;
    let end = start.saturating_add(count).min(size);
    let ledger = Arc::clone(&s.ledger);
    let leaves = tokio::task::spawn_blocking(move || ledger.storage().leaves(start, end))
        .await
        .map_err(|e| LogError::Storage(format!("the entries read failed: {e}")))?
        .map_err(LogError::from)?;
    // `start..end`, not `start..`: a range from u64::MAX overflows when it is stepped, even past
    // an empty page (found by schemathesis; tests/tests/bad_input.rs keeps it).
    let entries = (start..end)
        .zip(leaves)
        .map(|(index, bytes)| {
            String::from_utf8(bytes)
                .map(|leaf| IndexedLeaf { index, leaf })
                .map_err(|_| LogError::Storage(format!("leaf {index} is not UTF-8")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(EntriesPage { entries }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct InclusionQuery {
    index: Option<u64>,
    leaf_hash: Option<String>,
    size: Option<u64>,
}

/// Decodes a base64url (or standard base64) hash, padding optional.
pub fn decode_leaf_hash(s: &str) -> Result<Hash, ApiError> {
    const CFG: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let url = GeneralPurpose::new(&base64::alphabet::URL_SAFE, CFG);
    let std = GeneralPurpose::new(&base64::alphabet::STANDARD, CFG);
    let bytes = url
        .decode(s)
        .or_else(|_| std.decode(s))
        .map_err(|e| ApiError::bad_request(format!("leaf_hash: not base64url: {e}")))?;
    Hash::try_from(bytes.as_slice()).map_err(|_| {
        ApiError::bad_request(format!("leaf_hash: {} bytes, expected 32", bytes.len()))
    })
}

/// `GET /v1/proof/inclusion?index=I&size=N` or `?leaf_hash=H&size=N` (size defaults to the
/// current size).
#[utoipa::path(get, path = "/v1/proof/inclusion", tag = "log",
    params(
        ("index" = Option<u64>, Query, description = "The leaf index (give this or `leaf_hash`, not both).", minimum = 0, example = 0),
        ("leaf_hash" = Option<String>, Query, description = "The leaf hash, base64url or standard base64, padding optional (give this or `index`, not both)."),
        ("size" = Option<u64>, Query, description = "The tree size [default: the current size].", minimum = 0)),
    responses(
        (status = 200, description = "The RFC 9162 inclusion proof.", body = InclusionProof),
        (status = 400, description = "`bad-request`: neither or both of `index` and `leaf_hash`, a bad hash, `index` ≥ `size` or `size` beyond the tree.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not-found`: no leaf with that hash in the tree of that size.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`overloaded`: reading the store failed.", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn inclusion(
    State(s): State<Arc<AppState>>,
    q: Result<Query<InclusionQuery>, QueryRejection>,
) -> Result<Json<InclusionProof>, ApiError> {
    let Query(q) = q?;
    let head = s.ledger.head();
    let size = q.size.unwrap_or(head.size);
    if size > head.size {
        return Err(ApiError::bad_request(format!(
            "size {size} is beyond the current tree size {}",
            head.size
        )));
    }
    let index = match (q.index, q.leaf_hash) {
        (Some(i), None) => i,
        (None, Some(h)) => {
            let h = decode_leaf_hash(&h)?;
            match s.ledger.storage().leaf_index(&h).map_err(LogError::from)? {
                Some(i) if i < size => i,
                _ => {
                    return Err(ApiError::not_found(format!(
                        "no leaf with this hash in the tree of size {size}"
                    )))
                }
            }
        }
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of index and leaf_hash",
            ))
        }
    };
    if index >= size {
        return Err(ApiError::bad_request(format!(
            "index {index} is not below size {size}"
        )));
    }
    Ok(Json(InclusionProof {
        index,
        size,
        inclusion: s.ledger.inclusion(index, size)?,
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ConsistencyQuery {
    from: Option<u64>,
    to: Option<u64>,
}

/// `GET /v1/proof/consistency?from=M&to=N` with 1 ≤ M ≤ N ≤ size (`to` defaults to the size).
#[utoipa::path(get, path = "/v1/proof/consistency", tag = "log",
    params(
        ("from" = u64, Query, description = "The older size, 1 ≤ from ≤ to.", minimum = 1, example = 1),
        ("to" = Option<u64>, Query, description = "The newer size, at most the current size [default: the current size].", minimum = 1)),
    responses(
        (status = 200, description = "The RFC 9162 consistency proof.", body = ConsistencyProof),
        (status = 400, description = "`bad-request`: `from` missing, or not 1 ≤ from ≤ to ≤ size.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`overloaded`: reading the store failed.", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn consistency(
    State(s): State<Arc<AppState>>,
    q: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Json<ConsistencyProof>, ApiError> {
    let Query(q) = q?;
    let size = s.ledger.head().size;
    let from = q
        .from
        .ok_or_else(|| ApiError::bad_request("missing parameter from"))?;
    let to = q.to.unwrap_or(size);
    if from == 0 || from > to || to > size {
        return Err(ApiError::bad_request(format!(
            "need 1 <= from <= to <= {size} (the current size); got from={from} to={to}"
        )));
    }
    let proof = prove_consistency(s.ledger.tree_hash(), from, to, &s.ledger.reader())
        .map_err(LogError::from)?;
    Ok(Json(ConsistencyProof {
        from,
        to,
        consistency: proof,
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct LookupQuery {
    sii: Option<String>,
}

/// `GET /v1/lookup?sii=<uri>` — the DP answer.
#[utoipa::path(get, path = "/v1/lookup", tag = "lookup",
    params(("sii" = String, Query, description = "The service independent identifier, e.g. `tel:+14155550100` (SPEC §2), in its canonical form.", example = "tel:+14155550100")),
    responses(
        (status = 200, description = "The DP answer with its proofs (SPEC §5, verified per §6); `Cache-Control: no-store`.", body = LookupAnswer),
        (status = 400, description = "`bad-request`: `sii` missing.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`outside-shard`: this sharded mirror does not hold the SII.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-sii`, `non-canonical`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`overloaded`: reading the store failed.", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn lookup(
    State(s): State<Arc<AppState>>,
    q: Result<Query<LookupQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q?;
    let raw = q
        .sii
        .ok_or_else(|| ApiError::bad_request("missing parameter sii"))?;
    let sii = Sii::parse(&raw).map_err(|e| {
        let kind = if e.is_non_canonical() {
            ProblemType::NonCanonical
        } else {
            ProblemType::InvalidSii
        };
        ApiError::new(kind, format!("sii {raw:?}: {e}"))
    })?;
    if let Some(m) = s.mirror.as_ref().filter(|m| !m.shards.holds(sii.as_str())) {
        return Err(ApiError::new(
            ProblemType::OutsideShard,
            format!(
                "this mirror holds only the SIIs under {}; ask another Discovery Provider (GET /v1/info lists this mirror's shards)",
                m.shards.prefixes().join(", ")
            ),
        ));
    }
    let answer = crate::lookup::lookup(&s.ledger, &sii, now_unix())?;
    let mut resp = Json(answer).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// `POST /v1/admin/enroll` — bearer-authenticated; appends a log-signed enroll leaf through the
/// sequencer and answers its receipt.
#[utoipa::path(post, path = "/v1/admin/enroll", tag = "admin",
    request_body(content = EnrollRequest, content_type = "application/json"),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The receipt of the log-signed enroll leaf (or of the one already in force: idempotent).", body = Receipt),
        (status = 400, description = "`bad-request`: the JSON, the role, the name or the key is wrong.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no or a wrong admin bearer token (`WWW-Authenticate: Bearer`).", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`read-only-mirror` on a DP mirror; `unknown-signer`, `bad-signature` as for `POST /v1/add`.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`too-large`: the body exceeds 16 KiB.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`bad-request`: the Content-Type is not `application/json`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`non-canonical`, `invalid-sii`, `clock-skew`… as for `POST /v1/add`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`overloaded`, `storage-full`, `storage-failed`, `storage-unavailable`.", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn enroll(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Json<EnrollRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let w = s.writer()?;
    let auth = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    if !bearer_matches(auth, &w.admin_token) {
        return Err(ApiError::new(
            ProblemType::Unauthorized,
            "a valid `Authorization: Bearer <admin token>` header is required",
        ));
    }
    let Json(req) = body?;
    let leaf = enroll_leaf(&req, &w.signer, now_unix())?;
    if let Some(receipt) = current_enrollment(&s.ledger, &leaf)? {
        // Enrolling the key that is already in force appends nothing (idempotent admin calls).
        return Ok(Json(receipt).into_response());
    }
    tracing::info!(role = %req.role, name = %req.name, "admin enroll");
    let submitted = submit(&s.ledger, &w.sequencer, &w.pool, leaf.bytes().to_vec()).await?;
    Ok(Json(submitted.receipt).into_response())
}

/// `GET /metrics` — Prometheus text.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition; `Cache-Control: no-store`.", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8")))]
pub(crate) async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    let disk = s.ledger.storage().size_on_disk().ok();
    let depth = s.writer.as_ref().map_or(0, |w| w.sequencer.depth() as u64);
    let mut text = s.ledger.metrics.render(depth, disk);
    if let Some(m) = &s.mirror {
        m.status.render(&mut text, s.ledger.serving());
    }
    text_response(text, "text/plain; version=0.0.4; charset=utf-8", "no-store")
}

/// `GET /healthz` — `ok` while the log writes; 503 `storage-full` while the disk is below its
/// free-space floor (writes resume by themselves), 503 `storage-failed` after the sequencer
/// stopped on a storage error (a restart is needed). Reads are served in every state.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses(
        (status = 200, description = "`ok` while the log writes.", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 503, description = "`storage-full` (writes resume by themselves) or `storage-failed` (a restart is needed); reads go on.", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn healthz(State(s): State<Arc<AppState>>) -> Response {
    if let Some(refusal) = crate::submit::write_refusal(&s.ledger.write_state()) {
        return ApiError::from(refusal).into_response();
    }
    let mut resp = text_response("ok\n", "text/plain; charset=utf-8", "no-store");
    *resp.status_mut() = StatusCode::OK;
    resp
}
