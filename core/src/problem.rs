//! The stable problem types of SPEC §5 (RFC 9457 `type` URIs).
//!
//! Every refusal anywhere in mimi-ledger maps to exactly one of these, so a client can branch on the
//! `type` without parsing prose, and the slug set can be tested exhaustively.

use std::fmt;

/// A SPEC §5 problem type; `slug()` is the stable part of `urn:mimi-ledger:problem:<slug>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProblemType {
    /// The body is not a well-formed note or entry.
    Malformed,
    /// The content is valid but not in its one canonical byte form.
    NonCanonical,
    /// The SII is not a valid identifier.
    InvalidSii,
    /// The signer is not enrolled (with that role and key) at this index.
    UnknownSigner,
    /// A signature does not verify, or the entry is not signed by whom it must be.
    BadSignature,
    /// The log's policy requires an attestation and none was given.
    AttestationRequired,
    /// The attestation is invalid for this entry.
    BadAttestation,
    /// The entry's time is too far from the log's clock.
    ClockSkew,
    /// The body exceeds the size limit.
    TooLarge,
    /// The request itself (parameters, content type, JSON) is wrong.
    BadRequest,
    /// The resource does not exist.
    NotFound,
    /// Missing or wrong credentials.
    Unauthorized,
    /// Too many requests from this client.
    RateLimited,
    /// The server is at capacity; retry later.
    Overloaded,
    /// The log's disk is below its free-space floor: writes are refused until space is freed,
    /// and resume by themselves (reads go on).
    StorageFull,
    /// The log's store failed (an I/O error): it stopped writing, and only an operator's restart
    /// brings writes back (reads go on).
    StorageFailed,
    /// Writing the log's files failed on an I/O error: nothing of the write was stored, the log
    /// goes on; retry later (reads go on).
    StorageUnavailable,
    /// A submission bundle (`POST /v1/add-bundle`) is not well framed, empty or has too many
    /// leaves: the whole request is refused and nothing is stored.
    BadBundle,
    /// The server is a read-only mirror (DP) of a log: writes go to the log itself, which the
    /// problem's detail names (its origin and URL).
    ReadOnlyMirror,
    /// A sharded mirror holds only the SIIs under its prefixes and this SII is under none of
    /// them: ask another DP (`GET /v1/info` lists the mirror's shards).
    OutsideShard,
    /// A DP that requires Privacy Pass tokens (RFC 9577) got a lookup without one: 401 with a
    /// `WWW-Authenticate: PrivateToken` challenge naming the issuer.
    TokenRequired,
    /// The token is malformed, or not signed by the issuer key this DP accepts.
    BadToken,
    /// The token was already redeemed (each token pays for one lookup).
    TokenSpent,
    /// The issuer's daily token budget for this credential is used up.
    BudgetExhausted,
}

impl ProblemType {
    /// Every problem type, for exhaustive tests and documentation.
    pub const ALL: [ProblemType; 24] = [
        ProblemType::Malformed,
        ProblemType::NonCanonical,
        ProblemType::InvalidSii,
        ProblemType::UnknownSigner,
        ProblemType::BadSignature,
        ProblemType::AttestationRequired,
        ProblemType::BadAttestation,
        ProblemType::ClockSkew,
        ProblemType::TooLarge,
        ProblemType::BadRequest,
        ProblemType::NotFound,
        ProblemType::Unauthorized,
        ProblemType::RateLimited,
        ProblemType::Overloaded,
        ProblemType::StorageFull,
        ProblemType::StorageFailed,
        ProblemType::StorageUnavailable,
        ProblemType::BadBundle,
        ProblemType::ReadOnlyMirror,
        ProblemType::OutsideShard,
        ProblemType::TokenRequired,
        ProblemType::BadToken,
        ProblemType::TokenSpent,
        ProblemType::BudgetExhausted,
    ];

    /// The SPEC §5 slug.
    pub fn slug(self) -> &'static str {
        match self {
            ProblemType::Malformed => "malformed",
            ProblemType::NonCanonical => "non-canonical",
            ProblemType::InvalidSii => "invalid-sii",
            ProblemType::UnknownSigner => "unknown-signer",
            ProblemType::BadSignature => "bad-signature",
            ProblemType::AttestationRequired => "attestation-required",
            ProblemType::BadAttestation => "bad-attestation",
            ProblemType::ClockSkew => "clock-skew",
            ProblemType::TooLarge => "too-large",
            ProblemType::BadRequest => "bad-request",
            ProblemType::NotFound => "not-found",
            ProblemType::Unauthorized => "unauthorized",
            ProblemType::RateLimited => "rate-limited",
            ProblemType::Overloaded => "overloaded",
            ProblemType::StorageFull => "storage-full",
            ProblemType::StorageFailed => "storage-failed",
            ProblemType::StorageUnavailable => "storage-unavailable",
            ProblemType::BadBundle => "bad-bundle",
            ProblemType::ReadOnlyMirror => "read-only-mirror",
            ProblemType::OutsideShard => "outside-shard",
            ProblemType::TokenRequired => "token-required",
            ProblemType::BadToken => "bad-token",
            ProblemType::TokenSpent => "token-spent",
            ProblemType::BudgetExhausted => "budget-exhausted",
        }
    }

    /// The RFC 9457 `type` member: `urn:mimi-ledger:problem:<slug>`.
    pub fn uri(self) -> String {
        format!("urn:mimi-ledger:problem:{}", self.slug())
    }

    /// The HTTP status code that goes with this problem.
    pub fn status(self) -> u16 {
        match self {
            ProblemType::TooLarge => 413,
            ProblemType::NotFound => 404,
            ProblemType::Unauthorized
            | ProblemType::TokenRequired
            | ProblemType::BadToken
            | ProblemType::TokenSpent => 401,
            ProblemType::BudgetExhausted => 429,
            ProblemType::RateLimited => 429,
            ProblemType::Overloaded
            | ProblemType::StorageFull
            | ProblemType::StorageFailed
            | ProblemType::StorageUnavailable => 503,
            ProblemType::UnknownSigner | ProblemType::BadSignature => 403,
            ProblemType::AttestationRequired
            | ProblemType::BadAttestation
            | ProblemType::ClockSkew
            | ProblemType::InvalidSii
            | ProblemType::NonCanonical => 422,
            ProblemType::Malformed | ProblemType::BadRequest | ProblemType::BadBundle => 400,
            // 405 would say the method is wrong; the method is right, this server is not the log.
            ProblemType::ReadOnlyMirror => 403,
            ProblemType::OutsideShard => 404,
        }
    }

    /// A short human title (the RFC 9457 `title` member).
    pub fn title(self) -> &'static str {
        match self {
            ProblemType::Malformed => "Malformed entry",
            ProblemType::NonCanonical => "Entry is not in canonical form",
            ProblemType::InvalidSii => "Invalid service independent identifier",
            ProblemType::UnknownSigner => "Signer is not enrolled",
            ProblemType::BadSignature => "Bad signature",
            ProblemType::AttestationRequired => "Attestation required",
            ProblemType::BadAttestation => "Bad attestation",
            ProblemType::ClockSkew => "Entry time outside the allowed clock skew",
            ProblemType::TooLarge => "Request body too large",
            ProblemType::BadRequest => "Bad request",
            ProblemType::NotFound => "Not found",
            ProblemType::Unauthorized => "Unauthorized",
            ProblemType::RateLimited => "Rate limited",
            ProblemType::Overloaded => "Overloaded",
            ProblemType::StorageFull => "The log's disk is full",
            ProblemType::StorageFailed => "The log's store failed",
            ProblemType::StorageUnavailable => "Writing to the log's files failed",
            ProblemType::BadBundle => "Malformed submission bundle",
            ProblemType::ReadOnlyMirror => "This server is a read-only mirror of the log",
            ProblemType::OutsideShard => "This mirror does not hold that SII's shard",
            ProblemType::TokenRequired => "A Privacy Pass token is required",
            ProblemType::BadToken => "The Privacy Pass token is not valid here",
            ProblemType::TokenSpent => "The Privacy Pass token was already spent",
            ProblemType::BudgetExhausted => "The token budget for today is used up",
        }
    }

    /// Parses a slug back (e.g. from a `type` URI's last part).
    pub fn from_slug(slug: &str) -> Option<ProblemType> {
        ProblemType::ALL.into_iter().find(|p| p.slug() == slug)
    }
}

/// The JSON Schema of a problem document's `type` member: one of the `urn:mimi-ledger:problem:<slug>`
/// URIs of [`ProblemType::ALL`] (generated from the list, so the document cannot miss a slug), with
/// each slug's status in the description. For the log-server's OpenAPI document.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ProblemType {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let mut description = String::from(
            "The problem type, `urn:mimi-ledger:problem:<slug>`; clients branch on the slug. \
             Each slug and the HTTP status it goes with (`bad-request` is also answered with 405 \
             for a wrong method and 415 for a wrong content type):\n",
        );
        for p in ProblemType::ALL {
            description.push_str(&format!(
                "\n- `{}` ({}): {}",
                p.slug(),
                p.status(),
                p.title()
            ));
        }
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
            .enum_values(Some(ProblemType::ALL.map(ProblemType::uri)))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ProblemType {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("ProblemType")
    }
}

impl fmt::Display for ProblemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_distinct_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for p in ProblemType::ALL {
            assert!(seen.insert(p.slug()), "duplicate slug {}", p.slug());
            assert_eq!(ProblemType::from_slug(p.slug()), Some(p));
            assert!(p.uri().starts_with("urn:mimi-ledger:problem:"));
        }
        assert_eq!(ProblemType::RateLimited.status(), 429);
        assert_eq!(ProblemType::Overloaded.status(), 503);
        assert_eq!(ProblemType::from_slug("nope"), None);
    }

    /// `ALL` is the list the OpenAPI document's enum of `type` URIs is generated from: it must hold
    /// every variant. The match is exhaustive, so a new variant does not compile until it is given
    /// the next position here, and the test then fails until `ALL` holds it at that position.
    #[test]
    fn all_lists_every_variant() {
        fn position(p: ProblemType) -> usize {
            match p {
                ProblemType::Malformed => 0,
                ProblemType::NonCanonical => 1,
                ProblemType::InvalidSii => 2,
                ProblemType::UnknownSigner => 3,
                ProblemType::BadSignature => 4,
                ProblemType::AttestationRequired => 5,
                ProblemType::BadAttestation => 6,
                ProblemType::ClockSkew => 7,
                ProblemType::TooLarge => 8,
                ProblemType::BadRequest => 9,
                ProblemType::NotFound => 10,
                ProblemType::Unauthorized => 11,
                ProblemType::RateLimited => 12,
                ProblemType::Overloaded => 13,
                ProblemType::StorageFull => 14,
                ProblemType::StorageFailed => 15,
                ProblemType::StorageUnavailable => 16,
                ProblemType::BadBundle => 17,
                ProblemType::ReadOnlyMirror => 18,
                ProblemType::OutsideShard => 19,
                ProblemType::TokenRequired => 20,
                ProblemType::BadToken => 21,
                ProblemType::TokenSpent => 22,
                ProblemType::BudgetExhausted => 23,
            }
        }
        let positions: Vec<usize> = ProblemType::ALL.into_iter().map(position).collect();
        assert_eq!(positions, (0..ProblemType::ALL.len()).collect::<Vec<_>>());
        // Declaration order too: `ALL` follows the enum, whose discriminants count from 0.
        for (i, p) in ProblemType::ALL.into_iter().enumerate() {
            assert_eq!(p as usize, i, "{p} out of declaration order in ALL");
        }
    }

    #[cfg(feature = "openapi")]
    #[test]
    fn schema_enumerates_every_type_uri() {
        let schema = serde_json::to_value(<ProblemType as utoipa::PartialSchema>::schema())
            .expect("schema json");
        let uris: Vec<String> = ProblemType::ALL.into_iter().map(ProblemType::uri).collect();
        assert_eq!(schema["enum"], serde_json::json!(uris));
        assert_eq!(schema["type"], "string");
    }
}
