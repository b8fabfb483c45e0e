//! The web explorer (issue #16) at `/explorer/`: the static single-page app of `explorer/src/`
//! with `ledger-core` compiled to WebAssembly, as `scripts/build-explorer.sh` lays it out in
//! `explorer/dist/` (docs/explorer.md). The log and its DP mirrors serve it from the same router.
//!
//! # Why the files are embedded
//!
//! The files come from [`rust-embed`](https://docs.rs/rust-embed): a release build carries them
//! inside the binary, so a deployed log or mirror serves exactly the explorer it was built with,
//! with no folder to install beside it and nothing the server reads from disk at request time. A
//! debug build reads `explorer/dist/` from disk on each request instead (rust-embed's behaviour
//! without its `debug-embed` feature), so tests and local work see a fresh
//! `scripts/build-explorer.sh` without rebuilding the server. `allow_missing` lets the server build
//! without the folder (it is not committed): then `/explorer/` answers a problem+json 404 naming
//! the build script.
//!
//! # Headers
//!
//! Every answer here carries `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` and
//! this Content-Security-Policy ([`CSP`]):
//!
//! - `default-src 'none'`: nothing the page does not need;
//! - `script-src 'self' 'wasm-unsafe-eval'`: the page's own modules, and compiling the
//!   `ledger-core` WebAssembly module (no `'unsafe-eval'`, no inline script);
//! - `style-src 'self'`, `img-src 'self' data:`: its own stylesheet and images;
//! - `connect-src 'self' http: https:`: the page reads the log API of the DP that served it, or —
//!   with `?dp=URL` — of a DP the visitor names at run time, so the set of origins cannot be
//!   listed in advance. What it fetches is only data handed to the WebAssembly verifier, never
//!   script, and the page holds no secret to leak; every answer is verified against the visitor's
//!   trust file, so pointing it elsewhere cannot make a lie look verified;
//! - `base-uri 'none'`, `form-action 'none'`, `frame-ancestors 'none'`: no base or form
//!   redirection, no framing.
//!
//! Files are `Cache-Control: no-cache` with an `ETag` (the file's SHA-256), so a browser
//! revalidates cheaply and a new build is picked up at once; the build's file names carry no hash
//! that would allow `immutable`.
//!
//! [`cors`] adds `Access-Control-Allow-Origin: *` (no credentials) to the public read routes, so
//! a copy of the explorer on any static host can read this DP with `?dp=`.

use axum::extract::{Path, Request};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use ledger_core::problem::ProblemType;
use rust_embed::RustEmbed;

use crate::problem::ApiError;

/// The built explorer (`scripts/build-explorer.sh` writes it; see the module doc).
#[derive(RustEmbed)]
#[folder = "../explorer/dist/"]
#[allow_missing = true]
struct Dist;

/// The Content-Security-Policy of every explorer answer (see the module doc for each directive).
pub const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
style-src 'self'; img-src 'self' data:; connect-src 'self' http: https:; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The routes: `/explorer` (redirect), `/explorer/` (the page) and `/explorer/<file>`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/explorer", get(redirect))
        .route("/explorer/", get(index))
        .route("/explorer/{*path}", get(file))
}

/// `GET /explorer` — to the page.
#[utoipa::path(get, path = "/explorer", tag = "explorer",
    responses((status = 308, description = "Permanent redirect to `/explorer/`.", headers(("Location" = String, description = "`/explorer/`")))))]
pub(crate) async fn redirect() -> Redirect {
    Redirect::permanent("/explorer/")
}

/// `GET /explorer/` — the page.
#[utoipa::path(get, path = "/explorer/", tag = "explorer",
    responses(
        (status = 200, description = "The explorer's page; `Cache-Control: no-cache` with an `ETag`.", body = String, content_type = "text/html; charset=utf-8"),
        (status = 304, description = "Not modified (`If-None-Match` names the current `ETag`)."),
        (status = 404, description = "`not-found`: this server was built without the explorer.", body = ledger_core::api::Problem, content_type = "application/problem+json")))]
pub(crate) async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /explorer/<file>` — the page's scripts, styles, images and WebAssembly module.
#[utoipa::path(get, path = "/explorer/{path}", tag = "explorer",
    params(("path" = String, Path, description = "A file of the explorer's build (a folder's path serves its `index.html`).")),
    responses(
        (status = 200, description = "The file, with the media type of its extension; `Cache-Control: no-cache` with an `ETag`.", body = inline(crate::openapi::Binary), content_type = "*/*"),
        (status = 304, description = "Not modified (`If-None-Match` names the current `ETag`)."),
        (status = 404, description = "`not-found`: no such file.", body = ledger_core::api::Problem, content_type = "application/problem+json")))]
pub(crate) async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    // A folder's URL serves its index, as static hosts do.
    if path.is_empty() || path.ends_with('/') {
        return serve(&format!("{path}index.html"), &headers);
    }
    serve(&path, &headers)
}

/// The media type of an explorer file, by extension (the build has only these kinds).
pub fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" | "md" | "toml" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    // rust-embed looks names up in its own list (release) or below its folder after refusing
    // `..` components (debug); dot-files and odd paths are refused here as well.
    if path.split('/').any(|c| c.is_empty() || c.starts_with('.')) {
        return with_headers(missing(path));
    }
    let Some(file) = Dist::get(path) else {
        return with_headers(missing(path));
    };
    let etag = format!("\"{}\"", hex_lower(&file.metadata.sha256_hash()));
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = Response::new(axum::body::Body::from(file.data.into_owned()));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(path)),
        );
        r
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    with_headers(resp)
}

/// The 404 for a file the build does not have; when the build has no explorer at all, the detail
/// says how to make one.
fn missing(path: &str) -> Response {
    let detail = if Dist::get("index.html").is_none() {
        "this server was built without the explorer: run scripts/build-explorer.sh (it writes \
         explorer/dist/), then rebuild the log-server (a debug build reads the folder at run time)"
            .to_string()
    } else {
        format!("the explorer has no file {path:?}")
    };
    ApiError::new(ProblemType::NotFound, detail).into_response()
}

fn with_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `path` is one of the public read routes a cross-origin explorer may read.
pub fn is_public_read(path: &str) -> bool {
    matches!(
        path,
        "/checkpoint" | "/v1/info" | "/v1/lookup" | "/v1/entries"
    ) || path.starts_with("/v1/proof/")
        || path.starts_with("/tile/")
}

/// Middleware: `Access-Control-Allow-Origin: *` on `GET`/`HEAD` answers of the public read routes
/// (errors included, so a cross-origin page can show the problem), never with credentials. These
/// requests carry no custom header, so browsers send no preflight.
pub async fn cors(req: Request, next: Next) -> Response {
    let public =
        matches!(*req.method(), Method::GET | Method::HEAD) && is_public_read(req.uri().path());
    let mut resp = next.run(req).await;
    if public {
        resp.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(content_type("pkg/ledger_wasm_bg.wasm"), "application/wasm");
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("style.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }

    #[test]
    fn public_read_routes() {
        for p in [
            "/checkpoint",
            "/v1/info",
            "/v1/lookup",
            "/v1/entries",
            "/v1/proof/inclusion",
            "/v1/proof/consistency",
            "/tile/0/000",
        ] {
            assert!(is_public_read(p), "{p}");
        }
        for p in [
            "/v1/add",
            "/v1/admin/enroll",
            "/metrics",
            "/explorer/",
            "/healthz",
        ] {
            assert!(!is_public_read(p), "{p}");
        }
    }

    #[test]
    fn odd_paths_are_refused() {
        let h = HeaderMap::new();
        for p in ["../Cargo.toml", ".hidden", "a//b", "pkg/../x"] {
            let r = serve(p, &h);
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{p}");
            assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
    }
}
