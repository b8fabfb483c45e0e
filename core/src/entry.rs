//! Log entries (SPEC §3): `enroll`, `claim`, `revoke`, `optout`, the log's own `map` leaf (§9), and
//! the embedded `attestation`.
//!
//! Every entry has exactly one byte form. Parsing is strict — fields in the listed order, one space
//! between key and value, no unknown or repeated field (except `tag`, whose values are a set written
//! in strictly increasing byte order), decimal numbers without leading zeros, canonical identifiers,
//! canonical base64 — so that `serialize(parse(b)) == b` for every accepted `b`. Two different byte
//! strings can therefore never carry the same claim, and a leaf hash identifies a claim.
//!
//! The check lives here, in the one parser every consumer calls (the log's admission, the monitor,
//! the client's lookup verification), rather than in any one of them: an entry that the log would
//! refuse is then refused identically everywhere, and [`Leaf::sign`] refuses to sign one, so no
//! honest builder can produce it. Builders that take tags from users use [`tag_set`].

use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::key::{KeyAlg, VerifierKey};
use crate::note::{Note, NoteError};
use crate::problem::ProblemType;
use crate::sii::{Name, Sii, SiiError, Ssi, Tag, MAX_TAGS};

/// The largest leaf (a whole signed note) the log stores, in bytes.
pub const MAX_LEAF_BYTES: usize = 8192;

/// The first word of every entry and attestation body.
pub const VERSION: &str = "mimi-ledger/v1";

/// What an enrolled key may sign.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A messaging service provider: signs claims and its own revocations.
    Msp,
    /// An identity prover: signs attestations, prover revocations and opt-outs.
    Prover,
}

impl Role {
    /// The text form used in entries and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Msp => "msp",
            Role::Prover => "prover",
        }
    }

    /// Parses `msp` or `prover`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "msp" => Some(Role::Msp),
            "prover" => Some(Role::Prover),
            _ => None,
        }
    }
}

/// What an attestation authorizes (the entry kind it is for).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Authorizes a claim (R1).
    Claim,
    /// Authorizes a revocation (R10).
    Revoke,
    /// Authorizes an opt-out (R5).
    Optout,
}

impl Action {
    /// The text form used in attestations.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Claim => "claim",
            Action::Revoke => "revoke",
            Action::Optout => "optout",
        }
    }

    fn parse(s: &str) -> Option<Action> {
        match s {
            "claim" => Some(Action::Claim),
            "revoke" => Some(Action::Revoke),
            "optout" => Some(Action::Optout),
            _ => None,
        }
    }
}

/// Why an entry or attestation was refused at the syntax level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// The leaf is larger than [`MAX_LEAF_BYTES`].
    #[error("leaf is {len} bytes; the limit is {MAX_LEAF_BYTES}")]
    TooLarge {
        /// The leaf's length.
        len: usize,
    },
    /// The leaf is not a well-formed signed note.
    #[error("not a signed note: {0}")]
    Note(#[from] NoteError),
    /// A leaf or attestation must carry exactly one signature (one byte form).
    #[error("expected exactly one signature line, found {0}")]
    SignatureCount(usize),
    /// The first line is not `mimi-ledger/v1 <kind>` for a known kind.
    #[error("first line must be `{VERSION} <enroll|claim|revoke|optout|map>`, found {0:?}")]
    UnknownKind(String),
    /// A line is not `key value` with exactly one space and a non-empty value without spaces.
    #[error("line {line}: {reason}")]
    Spacing {
        /// 1-based line number in the body.
        line: usize,
        /// What is wrong with the spacing.
        reason: &'static str,
    },
    /// A field this entry kind does not have.
    #[error("line {line}: unknown field {field:?} for a {kind} entry")]
    UnknownField {
        /// 1-based line number.
        line: usize,
        /// The field name found.
        field: String,
        /// The entry kind.
        kind: &'static str,
    },
    /// A field appears after one that must follow it.
    #[error("line {line}: field {field:?} is out of order (expected order: {order})")]
    OutOfOrder {
        /// 1-based line number.
        line: usize,
        /// The field name found.
        field: String,
        /// The required order.
        order: String,
    },
    /// A field that may appear once appears again.
    #[error("line {line}: field {field:?} is repeated")]
    Repeated {
        /// 1-based line number.
        line: usize,
        /// The field name.
        field: String,
    },
    /// A required field is missing.
    #[error("missing field {0:?}")]
    Missing(&'static str),
    /// More than [`MAX_TAGS`] tags.
    #[error("{0} tags; at most {MAX_TAGS} are allowed")]
    TooManyTags(usize),
    /// The same tag appears twice: tags are a set (SPEC §3), so a repeat would be a second byte form
    /// of the same claim.
    #[error("tag {tag:?} appears twice; tags are a set")]
    DuplicateTag {
        /// The repeated tag.
        tag: String,
    },
    /// A tag is not after the previous one in byte order: the one byte form of a set of tags is
    /// strictly increasing (SPEC §3).
    #[error(
        "tag {tag:?} comes after {previous:?}; tags must be in strictly increasing byte order"
    )]
    TagOutOfOrder {
        /// The misplaced tag.
        tag: String,
        /// The tag before it.
        previous: String,
    },
    /// A number that is not canonical decimal (digits, no leading zeros, fits in u64).
    #[error("field {field:?}: {value:?} is not a canonical decimal number")]
    BadNumber {
        /// The field name.
        field: &'static str,
        /// The value found.
        value: String,
    },
    /// The SII is not valid or not canonical.
    #[error("field \"sii\": {0}")]
    Sii(#[from] SiiError),
    /// A field value is invalid (name, SSI, tag, role, key, method…).
    #[error("field {field:?}: {reason}")]
    BadValue {
        /// The field name.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The map leaf's `root` is not the canonical standard base64 of 32 bytes.
    #[error("field \"root\": not the canonical standard base64 of 32 bytes")]
    RootBase64,
    /// The `attestation` field is not canonical standard base64.
    #[error("field \"attestation\": not canonical standard base64")]
    AttestationBase64,
    /// The embedded attestation is not a valid attestation note.
    #[error("embedded attestation: {0}")]
    Attestation(Box<EntryError>),
    /// `expires` is not after `time`.
    #[error("expires ({expires}) must be after time ({time})")]
    ExpiresBeforeTime {
        /// The entry time.
        time: u64,
        /// The expiry.
        expires: u64,
    },
    /// The shape is not allowed for this kind (e.g. an optout attestation naming an MSP).
    #[error("{0}")]
    Shape(&'static str),
}

impl EntryError {
    /// The SPEC §5 problem type this error is reported as.
    pub fn problem(&self) -> ProblemType {
        match self {
            EntryError::TooLarge { .. } => ProblemType::TooLarge,
            EntryError::Sii(e) if e.is_non_canonical() => ProblemType::NonCanonical,
            EntryError::Sii(_) => ProblemType::InvalidSii,
            EntryError::Spacing { .. }
            | EntryError::OutOfOrder { .. }
            | EntryError::Repeated { .. }
            | EntryError::BadNumber { .. }
            | EntryError::AttestationBase64
            | EntryError::RootBase64
            | EntryError::DuplicateTag { .. }
            | EntryError::TagOutOfOrder { .. }
            | EntryError::SignatureCount(_) => ProblemType::NonCanonical,
            EntryError::Attestation(inner) => match inner.problem() {
                ProblemType::Malformed | ProblemType::NonCanonical | ProblemType::InvalidSii => {
                    ProblemType::BadAttestation
                }
                other => other,
            },
            _ => ProblemType::Malformed,
        }
    }
}

/// `enroll`: the log binds a name and role to a verifier key from this index on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enroll {
    /// The role granted.
    pub role: Role,
    /// The enrolled name (MSP or prover).
    pub name: Name,
    /// The key enrolled; its name equals `name`.
    pub key: VerifierKey,
    /// Unix seconds.
    pub time: u64,
}

/// `claim`: an MSP maps an SII to one of its users' SSI (R1–R3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The identifier claimed.
    pub sii: Sii,
    /// The claiming MSP (the signer).
    pub msp: Name,
    /// The user at the MSP.
    pub ssi: Ssi,
    /// Unix seconds.
    pub time: u64,
    /// When the mapping stops being current, if ever.
    pub expires: Option<u64>,
    /// Preference tags (R2): a set of at most [`MAX_TAGS`], in strictly increasing byte order (build
    /// it with [`tag_set`]; [`Leaf::sign`] refuses any other order).
    pub tags: Vec<Tag>,
    /// The prover's authorization (R1), if any.
    pub attestation: Option<SignedAttestation>,
}

/// `revoke`: removes one (msp, ssi) mapping, by the MSP or by a prover (R10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revoke {
    /// The identifier.
    pub sii: Sii,
    /// The MSP whose mapping is removed.
    pub msp: Name,
    /// The SSI whose mapping is removed.
    pub ssi: Ssi,
    /// Unix seconds.
    pub time: u64,
    /// Required when a prover signs the revoke.
    pub attestation: Option<SignedAttestation>,
}

/// `optout`: the recipient's "do not map me" (R5), signed by a prover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Optout {
    /// The identifier.
    pub sii: Sii,
    /// Unix seconds.
    pub time: u64,
    /// The prover's proof that the recipient asked for this.
    pub attestation: SignedAttestation,
}

/// `map`: the log's commitment to the verifiable map after a batch (SPEC §3, §9), appended by the
/// log itself as the batch's last leaf and never submitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapLeaf {
    /// The leaf's own index: the map covers every leaf at an index below it.
    pub size: u64,
    /// The map's root over those leaves.
    pub root: crate::hash::Hash,
}

/// One log entry (a leaf's body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// See [`Enroll`].
    Enroll(Enroll),
    /// See [`Claim`].
    Claim(Claim),
    /// See [`Revoke`].
    Revoke(Revoke),
    /// See [`Optout`].
    Optout(Optout),
    /// See [`MapLeaf`].
    Map(MapLeaf),
}

/// The body of an attestation note (not a leaf; embedded in entries).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attestation {
    /// What the attestation authorizes.
    pub action: Action,
    /// The identifier whose control was proven.
    pub sii: Sii,
    /// The MSP (absent for optout).
    pub msp: Option<Name>,
    /// The SSI (absent for optout).
    pub ssi: Option<Ssi>,
    /// How control was proven (e.g. `sms-otp`).
    pub method: String,
    /// Unix seconds when issued.
    pub time: u64,
    /// Unix seconds after which it is no longer valid.
    pub expires: u64,
}

/// An attestation together with its signed note (as embedded, byte for byte).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedAttestation {
    /// The parsed body.
    pub attestation: Attestation,
    /// The signed note (exactly one signature, by the prover).
    pub note: Note,
}

/// A parsed leaf: the exact bytes, the note and the entry it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    bytes: Vec<u8>,
    note: Note,
    entry: Entry,
}

/// The field schema of one kind: (name, how often).
#[derive(Clone, Copy)]
enum Occurs {
    Once,
    Optional,
    Many,
}

const ENROLL_FIELDS: &[(&str, Occurs)] = &[
    ("role", Occurs::Once),
    ("name", Occurs::Once),
    ("key", Occurs::Once),
    ("time", Occurs::Once),
];
const CLAIM_FIELDS: &[(&str, Occurs)] = &[
    ("sii", Occurs::Once),
    ("msp", Occurs::Once),
    ("ssi", Occurs::Once),
    ("time", Occurs::Once),
    ("expires", Occurs::Optional),
    ("tag", Occurs::Many),
    ("attestation", Occurs::Optional),
];
const REVOKE_FIELDS: &[(&str, Occurs)] = &[
    ("sii", Occurs::Once),
    ("msp", Occurs::Once),
    ("ssi", Occurs::Once),
    ("time", Occurs::Once),
    ("attestation", Occurs::Optional),
];
const OPTOUT_FIELDS: &[(&str, Occurs)] = &[
    ("sii", Occurs::Once),
    ("time", Occurs::Once),
    ("attestation", Occurs::Once),
];
const MAP_FIELDS: &[(&str, Occurs)] = &[("size", Occurs::Once), ("root", Occurs::Once)];
const ATTESTATION_FIELDS: &[(&str, Occurs)] = &[
    ("action", Occurs::Once),
    ("sii", Occurs::Once),
    ("msp", Occurs::Optional),
    ("ssi", Occurs::Optional),
    ("method", Occurs::Once),
    ("time", Occurs::Once),
    ("expires", Occurs::Once),
];

/// The body's lines split into (field, value) pairs, checked against a schema for order and count.
struct Fields<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Fields<'a> {
    /// Splits `lines` (after the header) and enforces spacing, known fields, order and repetition.
    fn parse(
        lines: &[&'a str],
        schema: &[(&'static str, Occurs)],
        kind: &'static str,
    ) -> Result<Fields<'a>, EntryError> {
        let order = || {
            schema
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut pairs = Vec::with_capacity(lines.len());
        // Position in the schema of the last field seen; fields must not go backwards.
        let mut cursor: Option<usize> = None;
        for (i, line) in lines.iter().enumerate() {
            let line_no = i + 2;
            let (key, value) = split_line(line, line_no)?;
            let Some(pos) = schema.iter().position(|(n, _)| *n == key) else {
                return Err(EntryError::UnknownField {
                    line: line_no,
                    field: key.to_string(),
                    kind,
                });
            };
            match cursor {
                Some(c) if pos < c => {
                    return Err(EntryError::OutOfOrder {
                        line: line_no,
                        field: key.to_string(),
                        order: order(),
                    })
                }
                Some(c) if pos == c && !matches!(schema[pos].1, Occurs::Many) => {
                    return Err(EntryError::Repeated {
                        line: line_no,
                        field: key.to_string(),
                    })
                }
                _ => {}
            }
            cursor = Some(pos);
            pairs.push((key, value));
        }
        for (name, occurs) in schema {
            if matches!(occurs, Occurs::Once) && !pairs.iter().any(|(k, _)| k == name) {
                return Err(EntryError::Missing(name));
            }
        }
        Ok(Fields { pairs })
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    fn required(&self, name: &'static str) -> Result<&'a str, EntryError> {
        self.get(name).ok_or(EntryError::Missing(name))
    }

    fn all(&self, name: &str) -> impl Iterator<Item = &'a str> + '_ {
        let name = name.to_string();
        self.pairs
            .iter()
            .filter(move |(k, _)| *k == name)
            .map(|(_, v)| *v)
    }
}

/// Splits `key value`, refusing any spacing other than exactly one space and a space-free value.
fn split_line(line: &str, line_no: usize) -> Result<(&str, &str), EntryError> {
    let spacing = |reason| EntryError::Spacing {
        line: line_no,
        reason,
    };
    if line.is_empty() {
        return Err(spacing("empty line"));
    }
    if line.chars().any(|c| c.is_whitespace() && c != ' ') {
        return Err(spacing("whitespace other than a single space"));
    }
    let Some((key, value)) = line.split_once(' ') else {
        return Err(spacing("expected `key value`"));
    };
    if key.is_empty() {
        return Err(spacing("leading space"));
    }
    if value.is_empty() {
        return Err(spacing("empty value or trailing space"));
    }
    if value.contains(' ') {
        return Err(spacing("more than one space, or a space inside the value"));
    }
    Ok((key, value))
}

/// Parses a canonical decimal u64: digits only, no leading zero unless the number is 0.
pub fn parse_decimal(field: &'static str, value: &str) -> Result<u64, EntryError> {
    let bad = || EntryError::BadNumber {
        field,
        value: value.to_string(),
    };
    if value.is_empty()
        || !value.bytes().all(|b| b.is_ascii_digit())
        || (value.len() > 1 && value.starts_with('0'))
    {
        return Err(bad());
    }
    value.parse::<u64>().map_err(|_| bad())
}

fn bad_value(field: &'static str, reason: impl std::fmt::Display) -> EntryError {
    EntryError::BadValue {
        field,
        reason: reason.to_string(),
    }
}

fn parse_name(field: &'static str, value: &str) -> Result<Name, EntryError> {
    Name::parse(value).map_err(|e| bad_value(field, e))
}

fn parse_ssi(value: &str) -> Result<Ssi, EntryError> {
    Ssi::parse(value).map_err(|e| bad_value("ssi", e))
}

/// The map leaf's root: exactly the canonical standard base64 of 32 bytes (one byte form).
fn parse_root(value: &str) -> Result<crate::hash::Hash, EntryError> {
    let bytes = B64.decode(value).map_err(|_| EntryError::RootBase64)?;
    let root: crate::hash::Hash = bytes.try_into().map_err(|_| EntryError::RootBase64)?;
    if B64.encode(root) != value {
        return Err(EntryError::RootBase64);
    }
    Ok(root)
}

/// Attestation methods are short tokens such as `sms-otp` or `email-link`.
fn parse_method(value: &str) -> Result<String, EntryError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(value.to_string())
    } else {
        Err(bad_value(
            "method",
            "expected 1-64 characters of [A-Za-z0-9._-]",
        ))
    }
}

/// Splits a note body into its header kind and the field lines.
fn body_lines(text: &str) -> Result<(&str, Vec<&str>), EntryError> {
    let Some(body) = text.strip_suffix('\n') else {
        return Err(EntryError::Spacing {
            line: 1,
            reason: "body must end with a newline",
        });
    };
    let mut lines = body.split('\n');
    let header = lines.next().unwrap_or_default();
    let kind = header
        .strip_prefix(VERSION)
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or_else(|| EntryError::UnknownKind(header.to_string()))?;
    Ok((kind, lines.collect()))
}

/// The one order tags may be written in: sorted by bytes, each at most once (SPEC §3). Builders call
/// this on tags from users, so that an honest user's claim is never refused as non-canonical.
pub fn tag_set(tags: impl IntoIterator<Item = Tag>) -> Vec<Tag> {
    let mut tags: Vec<Tag> = tags.into_iter().collect();
    // `Tag` orders by its `String`, which is byte order.
    tags.sort_unstable();
    tags.dedup();
    tags
}

/// Refuses tags that are too many, repeated or out of byte order (SPEC §3: a set, one byte form).
fn check_tag_set(tags: &[Tag]) -> Result<(), EntryError> {
    if tags.len() > MAX_TAGS {
        return Err(EntryError::TooManyTags(tags.len()));
    }
    for pair in tags.windows(2) {
        let (previous, tag) = (pair[0].as_str(), pair[1].as_str());
        if tag == previous {
            return Err(EntryError::DuplicateTag {
                tag: tag.to_string(),
            });
        }
        if tag.as_bytes() < previous.as_bytes() {
            return Err(EntryError::TagOutOfOrder {
                tag: tag.to_string(),
                previous: previous.to_string(),
            });
        }
    }
    Ok(())
}

fn check_expiry(time: u64, expires: Option<u64>) -> Result<(), EntryError> {
    match expires {
        Some(e) if e <= time => Err(EntryError::ExpiresBeforeTime { time, expires: e }),
        _ => Ok(()),
    }
}

impl Entry {
    /// The kind word of this entry (`enroll`, `claim`, `revoke`, `optout`, `map`).
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::Enroll(_) => "enroll",
            Entry::Claim(_) => "claim",
            Entry::Revoke(_) => "revoke",
            Entry::Optout(_) => "optout",
            Entry::Map(_) => "map",
        }
    }

    /// The SII this entry is about (`None` for enroll and map leaves, which are no SII's entries).
    pub fn sii(&self) -> Option<&Sii> {
        match self {
            Entry::Enroll(_) | Entry::Map(_) => None,
            Entry::Claim(c) => Some(&c.sii),
            Entry::Revoke(r) => Some(&r.sii),
            Entry::Optout(o) => Some(&o.sii),
        }
    }

    /// The entry's time (Unix seconds); `None` for a map leaf, which has none.
    pub fn time(&self) -> Option<u64> {
        match self {
            Entry::Enroll(e) => Some(e.time),
            Entry::Claim(c) => Some(c.time),
            Entry::Revoke(r) => Some(r.time),
            Entry::Optout(o) => Some(o.time),
            Entry::Map(_) => None,
        }
    }

    /// The embedded attestation, if any.
    pub fn attestation(&self) -> Option<&SignedAttestation> {
        match self {
            Entry::Enroll(_) | Entry::Map(_) => None,
            Entry::Claim(c) => c.attestation.as_ref(),
            Entry::Revoke(r) => r.attestation.as_ref(),
            Entry::Optout(o) => Some(&o.attestation),
        }
    }

    /// Parses a note body strictly (see the module docs).
    pub fn parse_text(text: &str) -> Result<Entry, EntryError> {
        let (kind, lines) = body_lines(text)?;
        match kind {
            "enroll" => {
                let f = Fields::parse(&lines, ENROLL_FIELDS, "enroll")?;
                let role = Role::parse(f.required("role")?)
                    .ok_or_else(|| bad_value("role", "expected `msp` or `prover`"))?;
                let name = parse_name("name", f.required("name")?)?;
                let key_text = f.required("key")?;
                let key = VerifierKey::parse(key_text).map_err(|e| bad_value("key", e))?;
                if key.to_string() != key_text {
                    return Err(bad_value("key", "verifier key is not in canonical form"));
                }
                if key.alg() != KeyAlg::Ed25519 {
                    return Err(bad_value(
                        "key",
                        "enrolled keys must be Ed25519 (type 0x01)",
                    ));
                }
                if key.name() != name.as_str() {
                    return Err(bad_value(
                        "key",
                        format!(
                            "key name {:?} differs from name {:?}",
                            key.name(),
                            name.as_str()
                        ),
                    ));
                }
                let time = parse_decimal("time", f.required("time")?)?;
                Ok(Entry::Enroll(Enroll {
                    role,
                    name,
                    key,
                    time,
                }))
            }
            "claim" => {
                let f = Fields::parse(&lines, CLAIM_FIELDS, "claim")?;
                let sii = Sii::parse(f.required("sii")?)?;
                let msp = parse_name("msp", f.required("msp")?)?;
                let ssi = parse_ssi(f.required("ssi")?)?;
                let time = parse_decimal("time", f.required("time")?)?;
                let expires = f
                    .get("expires")
                    .map(|v| parse_decimal("expires", v))
                    .transpose()?;
                check_expiry(time, expires)?;
                let tags = f
                    .all("tag")
                    .map(|t| Tag::parse(t).map_err(|e| bad_value("tag", e)))
                    .collect::<Result<Vec<_>, _>>()?;
                check_tag_set(&tags)?;
                let attestation = f
                    .get("attestation")
                    .map(SignedAttestation::from_base64)
                    .transpose()?;
                Ok(Entry::Claim(Claim {
                    sii,
                    msp,
                    ssi,
                    time,
                    expires,
                    tags,
                    attestation,
                }))
            }
            "revoke" => {
                let f = Fields::parse(&lines, REVOKE_FIELDS, "revoke")?;
                Ok(Entry::Revoke(Revoke {
                    sii: Sii::parse(f.required("sii")?)?,
                    msp: parse_name("msp", f.required("msp")?)?,
                    ssi: parse_ssi(f.required("ssi")?)?,
                    time: parse_decimal("time", f.required("time")?)?,
                    attestation: f
                        .get("attestation")
                        .map(SignedAttestation::from_base64)
                        .transpose()?,
                }))
            }
            "optout" => {
                let f = Fields::parse(&lines, OPTOUT_FIELDS, "optout")?;
                Ok(Entry::Optout(Optout {
                    sii: Sii::parse(f.required("sii")?)?,
                    time: parse_decimal("time", f.required("time")?)?,
                    attestation: SignedAttestation::from_base64(f.required("attestation")?)?,
                }))
            }
            "map" => {
                let f = Fields::parse(&lines, MAP_FIELDS, "map")?;
                let size = parse_decimal("size", f.required("size")?)?;
                let root = parse_root(f.required("root")?)?;
                Ok(Entry::Map(MapLeaf { size, root }))
            }
            _ => Err(EntryError::UnknownKind(format!("{VERSION} {kind}"))),
        }
    }

    /// Serializes to the one canonical body text (ending in `\n`).
    pub fn to_text(&self) -> String {
        let mut s = String::with_capacity(256);
        let _ = writeln!(s, "{VERSION} {}", self.kind());
        match self {
            Entry::Enroll(e) => {
                let _ = writeln!(s, "role {}", e.role.as_str());
                let _ = writeln!(s, "name {}", e.name);
                let _ = writeln!(s, "key {}", e.key);
                let _ = writeln!(s, "time {}", e.time);
            }
            Entry::Claim(c) => {
                let _ = writeln!(s, "sii {}", c.sii);
                let _ = writeln!(s, "msp {}", c.msp);
                let _ = writeln!(s, "ssi {}", c.ssi);
                let _ = writeln!(s, "time {}", c.time);
                if let Some(e) = c.expires {
                    let _ = writeln!(s, "expires {e}");
                }
                for t in &c.tags {
                    let _ = writeln!(s, "tag {t}");
                }
                if let Some(a) = &c.attestation {
                    let _ = writeln!(s, "attestation {}", a.to_base64());
                }
            }
            Entry::Revoke(r) => {
                let _ = writeln!(s, "sii {}", r.sii);
                let _ = writeln!(s, "msp {}", r.msp);
                let _ = writeln!(s, "ssi {}", r.ssi);
                let _ = writeln!(s, "time {}", r.time);
                if let Some(a) = &r.attestation {
                    let _ = writeln!(s, "attestation {}", a.to_base64());
                }
            }
            Entry::Optout(o) => {
                let _ = writeln!(s, "sii {}", o.sii);
                let _ = writeln!(s, "time {}", o.time);
                let _ = writeln!(s, "attestation {}", o.attestation.to_base64());
            }
            Entry::Map(m) => {
                let _ = writeln!(s, "size {}", m.size);
                let _ = writeln!(s, "root {}", B64.encode(m.root));
            }
        }
        s
    }
}

impl Attestation {
    /// Parses an attestation body strictly.
    pub fn parse_text(text: &str) -> Result<Attestation, EntryError> {
        let (kind, lines) = body_lines(text)?;
        if kind != "attestation" {
            return Err(EntryError::UnknownKind(format!("{VERSION} {kind}")));
        }
        let f = Fields::parse(&lines, ATTESTATION_FIELDS, "attestation")?;
        let action = Action::parse(f.required("action")?)
            .ok_or_else(|| bad_value("action", "expected claim, revoke or optout"))?;
        let sii = Sii::parse(f.required("sii")?)?;
        let msp = f.get("msp").map(|v| parse_name("msp", v)).transpose()?;
        let ssi = f.get("ssi").map(parse_ssi).transpose()?;
        match (action, &msp, &ssi) {
            (Action::Optout, None, None) => {}
            (Action::Optout, _, _) => {
                return Err(EntryError::Shape(
                    "an optout attestation names no msp and no ssi",
                ))
            }
            (_, Some(_), Some(_)) => {}
            _ => {
                return Err(EntryError::Shape(
                    "a claim or revoke attestation names both msp and ssi",
                ))
            }
        }
        let method = parse_method(f.required("method")?)?;
        let time = parse_decimal("time", f.required("time")?)?;
        let expires = parse_decimal("expires", f.required("expires")?)?;
        check_expiry(time, Some(expires))?;
        Ok(Attestation {
            action,
            sii,
            msp,
            ssi,
            method,
            time,
            expires,
        })
    }

    /// Serializes to the one canonical body text.
    pub fn to_text(&self) -> String {
        let mut s = String::with_capacity(200);
        let _ = writeln!(s, "{VERSION} attestation");
        let _ = writeln!(s, "action {}", self.action.as_str());
        let _ = writeln!(s, "sii {}", self.sii);
        if let Some(m) = &self.msp {
            let _ = writeln!(s, "msp {m}");
        }
        if let Some(x) = &self.ssi {
            let _ = writeln!(s, "ssi {x}");
        }
        let _ = writeln!(s, "method {}", self.method);
        let _ = writeln!(s, "time {}", self.time);
        let _ = writeln!(s, "expires {}", self.expires);
        s
    }
}

impl SignedAttestation {
    /// Parses the note bytes of an attestation (exactly one signature; strict body).
    pub fn parse(bytes: &[u8]) -> Result<SignedAttestation, EntryError> {
        let wrap = |e: EntryError| EntryError::Attestation(Box::new(e));
        let note = Note::parse(bytes).map_err(|e| wrap(e.into()))?;
        if note.signatures().len() != 1 {
            return Err(wrap(EntryError::SignatureCount(note.signatures().len())));
        }
        let attestation = Attestation::parse_text(note.text()).map_err(wrap)?;
        Ok(SignedAttestation { attestation, note })
    }

    /// Parses the `attestation` field value: canonical standard base64 of the note bytes.
    pub fn from_base64(value: &str) -> Result<SignedAttestation, EntryError> {
        let bytes = B64
            .decode(value)
            .map_err(|_| EntryError::AttestationBase64)?;
        if B64.encode(&bytes) != value {
            return Err(EntryError::AttestationBase64);
        }
        SignedAttestation::parse(&bytes)
    }

    /// Signs `attestation` with a prover key.
    pub fn sign(
        attestation: Attestation,
        prover: &crate::key::SignerKey,
    ) -> Result<SignedAttestation, EntryError> {
        let mut note = Note::new(&attestation.to_text())?;
        note.sign(prover)?;
        Ok(SignedAttestation { attestation, note })
    }

    /// The `attestation` field value.
    pub fn to_base64(&self) -> String {
        B64.encode(self.note.to_bytes())
    }

    /// The name of the prover that signed it.
    pub fn signer_name(&self) -> &str {
        self.note
            .signatures()
            .first()
            .map(|s| s.name.as_str())
            .unwrap_or_default()
    }
}

impl Leaf {
    /// Parses leaf bytes: size limit, signed-note syntax, exactly one signature, strict entry body.
    /// Checks no signature (that needs the enrolled keys; see [`crate::admission`]).
    pub fn parse(bytes: &[u8]) -> Result<Leaf, EntryError> {
        if bytes.len() > MAX_LEAF_BYTES {
            return Err(EntryError::TooLarge { len: bytes.len() });
        }
        let note = Note::parse(bytes)?;
        if note.signatures().len() != 1 {
            return Err(EntryError::SignatureCount(note.signatures().len()));
        }
        let entry = Entry::parse_text(note.text())?;
        Ok(Leaf {
            bytes: bytes.to_vec(),
            note,
            entry,
        })
    }

    /// Signs `entry` with `key` and returns the leaf.
    ///
    /// Refuses a claim whose tags are not a set in byte order (see [`tag_set`]) or are too many, so
    /// that every leaf signed here parses again and is admitted as far as its form goes.
    pub fn sign(entry: Entry, key: &crate::key::SignerKey) -> Result<Leaf, EntryError> {
        if let Entry::Claim(c) = &entry {
            check_tag_set(&c.tags)?;
        }
        Leaf::sign_unchecked(entry, key)
    }

    /// Signs `entry` without the form checks of [`Leaf::sign`]: only for
    /// [`crate::testkit::sign_unchecked`], which builds the leaves of dishonest logs.
    pub(crate) fn sign_unchecked(
        entry: Entry,
        key: &crate::key::SignerKey,
    ) -> Result<Leaf, EntryError> {
        let mut note = Note::new(&entry.to_text())?;
        note.sign(key)?;
        let bytes = note.to_bytes();
        if bytes.len() > MAX_LEAF_BYTES {
            return Err(EntryError::TooLarge { len: bytes.len() });
        }
        Ok(Leaf { bytes, note, entry })
    }

    /// The exact leaf bytes (what is hashed into the tree).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The signed note.
    pub fn note(&self) -> &Note {
        &self.note
    }

    /// The entry.
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// The name on the (single) signature line.
    pub fn signer_name(&self) -> &str {
        self.note
            .signatures()
            .first()
            .map(|s| s.name.as_str())
            .unwrap_or_default()
    }

    /// The role whose enrolled key must have signed this leaf, per SPEC §3: claims by an MSP, revokes
    /// by the named MSP or else a prover, opt-outs by a prover; `None` for enrolls and map leaves
    /// (signed by the log).
    pub fn signer_role(&self) -> Option<Role> {
        match &self.entry {
            Entry::Enroll(_) | Entry::Map(_) => None,
            Entry::Claim(_) => Some(Role::Msp),
            Entry::Revoke(r) if r.msp.as_str() == self.signer_name() => Some(Role::Msp),
            Entry::Revoke(_) | Entry::Optout(_) => Some(Role::Prover),
        }
    }

    /// Consumes the leaf, returning the entry.
    pub fn into_entry(self) -> Entry {
        self.entry
    }
}
