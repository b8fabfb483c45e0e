//! The OpenAPI 3.1 document of the HTTP API, served at `GET /openapi.json` (by the log and by DP
//! mirrors alike: it is part of [`crate::routes::router`]).
//!
//! It is generated, not written: the schemas come from the wire types themselves (`ToSchema` on
//! `ledger_core::api` behind ledger-core's `openapi` feature, and on the few server-side types),
//! the operations from the `#[utoipa::path]` attributes on the handlers in [`crate::routes`] and
//! [`crate::gateway`], so a field renamed or made optional changes the document with it. What the
//! handlers cannot say — the answers that the layers around every route give (the mirror's
//! `serving_guard`, the rate limiters, Privacy Pass redemption, the connection-level refusals of
//! `ledger-serve`) — is added here by [`Layers`] from the same constants those layers use. A test
//! checks that every route of the router is in the document, and `tests/tests/openapi.rs`
//! validates it and fuzzes a running server against it (schemathesis).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use ledger_core::api::Problem;
use ledger_core::problem::ProblemType;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::problem::{ApiError, PROBLEM_JSON};

/// Where the document is served.
pub const PATH: &str = "/openapi.json";

/// The document's definition: every operation and the schemas they name.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "mimi-ledger log server",
        description = "The HTTP API of a mimi-ledger log and of its Discovery Provider mirrors \
            (SPEC §5): C2SP tlog-tiles reads, the JSON API with receipts and proofs, lookups, \
            admin enrollment, metrics and health, and the OHTTP gateway for private lookups. \
            Every error is an RFC 9457 `application/problem+json` document whose `type` is \
            `urn:mimi-ledger:problem:<slug>`; clients branch on the slug. A wrong method on a \
            known path is answered 405 and an unknown path 404, both `bad-request`/`not-found` \
            problem documents.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        crate::routes::checkpoint,
        crate::routes::tile,
        crate::routes::add,
        crate::routes::add_bundle,
        crate::routes::info,
        crate::routes::entries,
        crate::routes::inclusion,
        crate::routes::consistency,
        crate::routes::lookup,
        crate::routes::enroll,
        crate::routes::metrics,
        crate::routes::healthz,
        serve,
        crate::gateway::gateway,
        crate::gateway::keys,
        crate::explorer::redirect,
        crate::explorer::index,
        crate::explorer::file,
    ),
    components(schemas(Problem, ProblemType)),
    modifiers(&Layers),
    tags(
        (name = "tiles", description = "C2SP tlog-checkpoint and tlog-tiles: the log's data, as static files would serve it."),
        (name = "log", description = "The JSON API: submissions with receipts, the log's parameters, entries and proofs."),
        (name = "lookup", description = "The Discovery Provider answer, with the proofs a client verifies (SPEC §6)."),
        (name = "admin", description = "Enrollment of MSP and prover keys, with the admin bearer token."),
        (name = "operations", description = "Metrics, health and this document."),
        (name = "explorer", description = "The web explorer: static files, verified in the browser by ledger-core compiled to WebAssembly."),
        (name = "ohttp", description = "The Oblivious HTTP gateway (RFC 9458) and its keys (RFC 9540), for lookups through a relay."),
    )
)]
pub struct ApiDoc;

/// `GET /openapi.json` — this document (built once).
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", body = Object, content_type = "application/json")))]
pub(crate) async fn serve() -> Response {
    static JSON: OnceLock<Result<String, String>> = OnceLock::new();
    let json = JSON.get_or_init(|| serde_json::to_string(&document()).map_err(|e| e.to_string()));
    match json {
        Ok(text) => {
            let mut resp = text.clone().into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            resp
        }
        Err(e) => ApiError::internal(format!("the OpenAPI document: {e}")).into_response(),
    }
}

/// The schema of a binary body (tiles, bundles, OHTTP messages): bytes, not a JSON array.
pub struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Binary,
            )))
            .into()
    }
}

impl utoipa::ToSchema for Binary {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Binary")
    }
}

/// The document as served.
///
/// utoipa (with `non_strict_integers`) names the unsigned formats `u-int64`, `u-int32`, … (its
/// enum's kebab-case spelling); the OpenAPI format registry's names are `uint64`, `uint32`, …, so
/// they are renamed here. And the format's upper bound becomes an explicit `maximum` where none is
/// given (the server parses a u64 query parameter up to 2^64 − 1 and refuses more), since a
/// validator knows no bound of an unknown format, and utoipa's bounds are `f64`, which cannot
/// write 2^64 − 1.
pub fn document() -> serde_json::Value {
    fn rename_formats(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                let mut max = None;
                if let Some(serde_json::Value::String(f)) = map.get_mut("format") {
                    if let Some(bits) = f.strip_prefix("u-int") {
                        max = match bits {
                            "8" => Some(u64::from(u8::MAX)),
                            "16" => Some(u64::from(u16::MAX)),
                            "32" => Some(u64::from(u32::MAX)),
                            "64" => Some(u64::MAX),
                            _ => None,
                        };
                        *f = format!("uint{bits}");
                    }
                }
                if let Some(max) = max {
                    map.entry("maximum").or_insert(max.into());
                }
                map.values_mut().for_each(rename_formats);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(rename_formats),
            _ => {}
        }
    }
    // Serializing the document's own types cannot fail; `Null` would be refused by every test.
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    rename_formats(&mut doc);
    doc
}

/// The OpenAPI path of an axum route (`/tile/{*path}` is `/tile/{path}`).
pub fn openapi_path(route: &str) -> String {
    route.replace("{*", "{")
}

/// Adds what the layers around the handlers answer to every operation they wrap, and the admin
/// token's security scheme.
struct Layers;

/// A response with a problem document; `retry_after` adds the `Retry-After` header.
fn problem_response(description: &str, retry_after: bool) -> RefOr<utoipa::openapi::Response> {
    let mut b = ResponseBuilder::new().description(description).content(
        PROBLEM_JSON,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    );
    if retry_after {
        b = b.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0)),
                )
                .description(Some("Seconds after which the client may retry."))
                .build(),
        );
    }
    b.build().into()
}

/// Adds `(status, description)` to `op`: a new problem response, or the description appended to
/// the one the handler already documents.
fn add(op: &mut Operation, status: u16, description: &str, retry_after: bool) {
    let responses = &mut op.responses.responses;
    match responses.get_mut(&status.to_string()) {
        Some(RefOr::T(r)) => {
            if !r.description.contains(description) {
                r.description = format!("{} Also: {description}", r.description);
            }
            if retry_after {
                if let RefOr::T(with) = problem_response("", true) {
                    r.headers.extend(with.headers);
                }
            }
        }
        _ => {
            responses.insert(
                status.to_string(),
                problem_response(description, retry_after),
            );
        }
    }
}

/// The problem types answered with HTTP `status`: those whose own status it is, and those
/// answered with an overridden one (`ApiError::with_status` and ledger-serve's refusals:
/// `bad-request` as 405 for a wrong method, 408 for a body that is not sent in time and 415 for
/// a wrong content type; `too-large` as 414 and 431 for a request target or head too long).
pub fn problem_types_of(status: u16) -> Vec<ProblemType> {
    let overridden: &[ProblemType] = match status {
        405 | 408 | 415 => &[ProblemType::BadRequest],
        414 | 431 => &[ProblemType::TooLarge],
        _ => &[],
    };
    ProblemType::ALL
        .into_iter()
        .filter(|p| p.status() == status)
        .chain(overridden.iter().copied())
        .collect()
}

/// `Problem<status>`: a [`Problem`] whose `status` member is the HTTP status and whose `type` is
/// one of [`problem_types_of`] it, so a validator checks that a refusal's slug goes with its
/// status.
fn problem_of_status(status: u16) -> RefOr<utoipa::openapi::schema::Schema> {
    let uris: Vec<String> = problem_types_of(status)
        .into_iter()
        .map(ProblemType::uri)
        .collect();
    utoipa::openapi::schema::AllOfBuilder::new()
        .item(Ref::from_schema_name("Problem"))
        .item(
            ObjectBuilder::new()
                .property(
                    "type",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(uris)),
                )
                .property(
                    "status",
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .enum_values(Some([status])),
                ),
        )
        .description(Some(format!(
            "A problem document answered with HTTP status {status}: its `status` member says \
             {status} too, and its `type` is one of the slugs that go with that status."
        )))
        .into()
}

/// Points every problem+json response at the `Problem<status>` of its status.
fn specialize_problems(doc: &mut utoipa::openapi::OpenApi) {
    let mut used = std::collections::BTreeSet::new();
    for item in doc.paths.paths.values_mut() {
        for op in [
            item.get.as_mut(),
            item.post.as_mut(),
            item.put.as_mut(),
            item.delete.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            for (status, resp) in op.responses.responses.iter_mut() {
                let (RefOr::T(resp), Ok(code)) = (resp, status.parse::<u16>()) else {
                    continue;
                };
                if let Some(content) = resp.content.get_mut(PROBLEM_JSON) {
                    content.schema = Some(Ref::from_schema_name(format!("Problem{code}")).into());
                    used.insert(code);
                }
            }
        }
    }
    let components = doc.components.get_or_insert_with(Default::default);
    for code in used {
        components
            .schemas
            .insert(format!("Problem{code}"), problem_of_status(code));
    }
}

impl Modify for Layers {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin bearer token (`admin.token` in the log's data folder).",
                    ))
                    .build(),
            ),
        );
        let routed: Vec<String> = crate::routes::ROUTES
            .iter()
            .map(|r| openapi_path(r))
            .collect();
        for (path, item) in doc.paths.paths.iter_mut() {
            let in_router = routed.contains(path);
            let ops: BTreeMap<&str, &mut Operation> = [
                ("get", item.get.as_mut()),
                ("post", item.post.as_mut()),
                ("put", item.put.as_mut()),
                ("delete", item.delete.as_mut()),
            ]
            .into_iter()
            .filter_map(|(m, op)| op.map(|op| (m, op)))
            .collect();
            for (method, op) in ops {
                // ledger-serve, before any handler: a malformed or oversized request head, a
                // request target over its limit, a body that is not sent in time, too many
                // connections or a shutdown.
                add(
                    op,
                    400,
                    "`bad-request`: a malformed HTTP request head.",
                    false,
                );
                add(
                    op,
                    408,
                    "`bad-request`: the request body did not arrive in time.",
                    false,
                );
                add(
                    op,
                    414,
                    "`too-large`: the request target is too long.",
                    false,
                );
                add(
                    op,
                    431,
                    "`too-large`: the request head is too large.",
                    false,
                );
                add(
                    op,
                    503,
                    "`overloaded`: too many connections, or the server is shutting down.",
                    false,
                );
                if in_router && !crate::routes::is_open(path) {
                    add(
                        op,
                        503,
                        "`overloaded`: a DP mirror that has not verified a checkpoint yet (`GET /v1/info` says how far it is).",
                        false,
                    );
                }
                if method == "post"
                    && crate::ratelimit::LIMITED_ROUTES
                        .iter()
                        .any(|r| openapi_path(r) == *path)
                {
                    add(
                        op,
                        429,
                        "`rate-limited`: this address's write budget is used up (`--rate-limit-per-s`).",
                        true,
                    );
                }
                if method == "get" && path == crate::tokens::LOOKUP_ROUTE {
                    add(
                        op,
                        401,
                        "`token-required`, `bad-token`, `token-spent`: a DP started with `--require-token` needs an unspent Privacy Pass token (`Authorization: PrivateToken token=…`; the refusal's `WWW-Authenticate: PrivateToken` is the challenge).",
                        false,
                    );
                    add(
                        op,
                        429,
                        "`rate-limited`: too many lookups without a token from this address (`--lookup-rate-limit-per-s`).",
                        true,
                    );
                    add(
                        op,
                        503,
                        "`storage-failed`: the spent-token record could not be written.",
                        false,
                    );
                }
            }
        }
        specialize_problems(doc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> serde_json::Value {
        document()
    }

    /// Unsigned integers have the registry's format names and their own range, not int64's.
    #[test]
    fn unsigned_formats_are_the_registry_names() {
        let doc = doc();
        let text = doc.to_string();
        assert!(!text.contains("u-int"), "a utoipa format name is left");
        let start = &doc["paths"]["/v1/entries"]["get"]["parameters"][0]["schema"];
        assert_eq!(start["format"], "uint64");
        assert_eq!(start["minimum"], 0);
        assert_eq!(start["maximum"], u64::MAX);
        let count = &doc["paths"]["/v1/entries"]["get"]["parameters"][1]["schema"];
        assert_eq!(count["maximum"], 1000);
    }

    /// Every route of the router (and of the OHTTP gateway) is in the document, and the document
    /// has no path the server does not route: the document cannot drift from the router.
    #[test]
    fn every_route_is_documented() {
        let doc = doc();
        let paths = doc["paths"].as_object().expect("paths");
        let mut expected: Vec<String> = crate::routes::ROUTES
            .iter()
            .map(|r| openapi_path(r))
            .collect();
        expected.push(ledger_ohttp::GATEWAY_PATH.to_string());
        expected.push(ledger_ohttp::KEYS_PATH.to_string());
        for p in &expected {
            assert!(paths.contains_key(p), "{p} is not in the OpenAPI document");
        }
        let mut documented: Vec<&String> = paths.keys().collect();
        documented.sort();
        let mut want: Vec<&String> = expected.iter().collect();
        want.sort();
        assert_eq!(documented, want);
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    }

    /// The layers' answers are on the operations they wrap, and only there.
    #[test]
    fn layer_responses_are_added() {
        let doc = doc();
        let op = |path: &str, m: &str| doc["paths"][path][m]["responses"].clone();
        assert!(op("/v1/add", "post")["429"]["headers"]["Retry-After"].is_object());
        assert!(op("/v1/lookup", "get")["401"].is_object());
        assert!(op("/v1/lookup", "get")["429"].is_object());
        assert!(op("/v1/info", "get")["429"].is_null());
        assert!(op("/v1/entries", "get")["503"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("mirror")));
        assert!(!op("/v1/info", "get")["503"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("mirror")));
        assert_eq!(
            op("/v1/entries", "get")["400"]["content"][PROBLEM_JSON]["schema"]["$ref"],
            "#/components/schemas/Problem400"
        );
    }

    /// Each `Problem<status>` names the slugs that go with its status, and every status a
    /// problem is answered with has at least one.
    #[test]
    fn problem_schemas_by_status() {
        let doc = doc();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let by_status: Vec<(&String, &serde_json::Value)> = schemas
            .iter()
            .filter(|(k, _)| k.starts_with("Problem") && k.len() == "Problem".len() + 3)
            .collect();
        assert!(by_status.len() >= 10, "{:?}", schemas.keys());
        for (name, schema) in by_status {
            let status: u16 = name["Problem".len()..].parse().expect("status");
            let narrowed = &schema["allOf"][1]["properties"];
            assert_eq!(narrowed["status"]["enum"], serde_json::json!([status]));
            let types = narrowed["type"]["enum"].as_array().expect("type enum");
            assert!(!types.is_empty(), "{name} allows no problem type");
        }
        let uris = |s: u16| {
            schemas[&format!("Problem{s}")]["allOf"][1]["properties"]["type"]["enum"].clone()
        };
        assert_eq!(
            uris(415),
            serde_json::json!(["urn:mimi-ledger:problem:bad-request"])
        );
        let u401 = uris(401);
        for slug in ["unauthorized", "token-required", "bad-token", "token-spent"] {
            let uri = format!("urn:mimi-ledger:problem:{slug}");
            assert!(
                u401.as_array().is_some_and(|a| a.contains(&uri.into())),
                "401 lacks {slug}"
            );
        }
        assert!(!uris(400)
            .as_array()
            .is_some_and(|a| a.contains(&"urn:mimi-ledger:problem:not-found".into())));
    }

    /// The problem `type` is the enum of every slug's URI, and hashes are base64 strings whose
    /// pattern matches what the serde helpers write.
    #[test]
    fn schemas_match_the_wire_format() {
        let doc = doc();
        let schemas = &doc["components"]["schemas"];
        let uris: Vec<String> = ProblemType::ALL.into_iter().map(ProblemType::uri).collect();
        assert_eq!(schemas["ProblemType"]["enum"], serde_json::json!(uris));
        assert_eq!(
            schemas["Problem"]["properties"]["type"]["$ref"],
            "#/components/schemas/ProblemType"
        );
        let pattern = schemas["Hash"]["pattern"].as_str().expect("hash pattern");
        assert_eq!(pattern, ledger_core::api::schema::B64_HASH_PATTERN);
        let re = regex::Regex::new(pattern).expect("the hash pattern is a regex");
        for h in [[0u8; 32], [0xff; 32], [7; 32]] {
            let s = ledger_core::api::b64::encode_hash(&h);
            assert!(re.is_match(&s), "{s} does not match {pattern}");
        }
        assert!(!re.is_match("AAAA"));
        assert!(!re.is_match(&ledger_core::api::b64::encode_hash(&[0; 32]).replace('=', "")));
    }
}
