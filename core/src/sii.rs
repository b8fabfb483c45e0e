//! Identifiers (SPEC §1): the SII a mapping is about, the names of MSPs and provers, the SSI a
//! mapping points to, and preference tags.
//!
//! Every identifier has exactly one accepted byte form, because entries are signed notes and
//! SPEC §2 demands one encoding per content: two spellings of one phone number would let an MSP
//! hide a claim from a monitor watching the other spelling. So the `parse` constructors are
//! strict and never rewrite their input; only [`Sii::from_human`] canonicalizes, for clients
//! reading what a person typed.
//!
//! # SII canonical forms
//!
//! * `tel:+<digits>` — exactly `tel:` followed by the E.164 form that libphonenumber (the
//!   [`phonenumber`] crate) formats for the number (`phonenumber::format(&n).mode(Mode::E164)`),
//!   and the number must be valid per `phonenumber::is_valid`. No visual separators, no RFC 3966
//!   parameters, no extension (an extension or ISDN subaddress names a different endpoint, and
//!   E.164 has no place for it, so such input is refused rather than silently truncated).
//! * `mailto:<local>@<domain>` — the RFC 6068 form of a single RFC 5322 `addr-spec`, written
//!   without percent-encoding:
//!   * `local` is kept exactly as given (local parts are case-sensitive, RFC 5321 §2.4):
//!     1 to 64 bytes (RFC 5321 §4.5.3.1.1) of ASCII letters, digits, `.` and
//!     ``!$&'*+-/=^_`{|}~`` (RFC 5322 `atext`, minus `#`, `%` and `?`, which are delimiters in a
//!     `mailto:` URI), or non-ASCII characters (RFC 6532) other than whitespace and controls.
//!     Quoted local parts are not supported. Dots are not checked for the dot-atom shape,
//!     because real addresses (e.g. some mobile carriers') violate it.
//!   * `domain` is the IDNA ASCII form (UTS #46 ToASCII with STD3 rules, CheckHyphens and DNS
//!     length checks, i.e. `idna::domain_to_ascii_strict`), hence lowercase LDH labels of 1..=63
//!     bytes, at most 253 bytes, no trailing dot; its last label is not all-numeric (so that it
//!     is not an IPv4 address); address literals (`[192.0.2.1]`) are not supported.
//!   * the address `<local>@<domain>` is at most 254 bytes (RFC 5321 §4.5.3.1.3 path limit
//!     less the angle brackets); the `mailto:` prefix is not counted.
//!
//! [`Sii::parse`] accepts a string `s` exactly when `Sii::from_human(s, None)` yields `s` itself;
//! when it yields something else the error is [`SiiError::NonCanonical`] carrying that canonical
//! form, and when it fails the error says why.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Implements the string plumbing shared by all identifier newtypes: `as_str`, `Display`,
/// `FromStr` (= the strict `parse`), `AsRef<str>`, `Borrow<str>`, `From<_> for String`, and
/// serde as a plain string whose deserialization goes through `parse`.
macro_rules! string_identifier {
    ($ty:ident, $err:ty) => {
        impl $ty {
            /// The canonical text, exactly as it appears in a log entry.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Consumes the identifier, returning its canonical text.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $ty {
            type Err = $err;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::parse(s)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        // Sound: the derived `Eq`, `Ord` and `Hash` of the newtype are those of its `String`,
        // which agree with `str`'s.
        impl Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<$ty> for String {
            fn from(value: $ty) -> String {
                value.0
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                $ty::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// SII
// ---------------------------------------------------------------------------------------------

/// A canonical SII (service independent identifier, SPEC §1): `tel:+<E.164>` or
/// `mailto:<local>@<idna-ascii lowercase domain>`. See the [module docs](self) for the exact
/// rules. Only canonical values can be constructed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sii(String);

/// Which URI scheme an [`Sii`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SiiKind {
    /// A phone number, `tel:+<E.164>`.
    Tel,
    /// An e-mail address, `mailto:<local>@<domain>`.
    Mailto,
}

/// Why a string is not a (canonical) SII.
///
/// Admission (SPEC §3/§5) maps [`SiiError::NonCanonical`] to the problem slug `non-canonical`
/// and every other variant to `invalid-sii`; see [`SiiError::is_non_canonical`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SiiError {
    /// The text denotes a valid SII, but is not its one canonical byte form.
    #[error("SII {given:?} is not canonical; the canonical form is {canonical:?}")]
    NonCanonical {
        /// The text as given.
        given: String,
        /// The canonical form of the same identifier.
        canonical: String,
    },
    /// The input is empty (or only whitespace).
    #[error("the SII is empty")]
    Empty,
    /// The input is longer than anything that could canonicalize to an SII.
    #[error("the input is {len} bytes long, more than the {max} bytes allowed")]
    InputTooLong {
        /// Length of the input in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The input contains a control character.
    #[error("control character at byte {position}")]
    ControlCharacter {
        /// Byte offset of the character in the input.
        position: usize,
    },
    /// The URI scheme is neither `tel` nor `mailto`.
    #[error("unknown SII scheme {scheme:?}: only `tel` and `mailto` are allowed")]
    UnknownScheme {
        /// The scheme as given.
        scheme: String,
    },
    /// The default region is not a CLDR region code known to libphonenumber.
    #[error("unknown region {region:?}: expected a two-letter region code such as `CH`")]
    BadRegion {
        /// The region as given.
        region: String,
    },
    /// A phone number without `+` and country code, and no region to read it in.
    #[error("the phone number has no `+` and country code, and no default region was given")]
    MissingCountryCode,
    /// A character that has no place in a phone number.
    #[error("character {ch:?} is not allowed in a phone number")]
    TelCharacter {
        /// The offending character.
        ch: char,
    },
    /// A `tel:` URI parameter that is not allowed or not supported.
    #[error("tel: URI parameter {parameter:?} is not allowed here")]
    TelParameter {
        /// The parameter as given (name and value).
        parameter: String,
    },
    /// A phone number with an extension, which an E.164 SII cannot carry.
    #[error("phone number extensions are not allowed in an SII")]
    TelExtension,
    /// libphonenumber cannot read the text as a phone number.
    #[error("not a phone number: {reason}")]
    UnparseablePhoneNumber {
        /// libphonenumber's reason.
        reason: String,
    },
    /// libphonenumber reads the number but says it is not a valid number.
    #[error("{number} is not a valid phone number")]
    InvalidPhoneNumber {
        /// The number in E.164 form.
        number: String,
    },
    /// Whitespace inside an e-mail address.
    #[error("whitespace is not allowed in an e-mail address")]
    Whitespace,
    /// A `mailto:` URI with header fields (`?subject=…`, `?to=…`).
    #[error("mailto: header fields (`?…`) are not allowed in an SII")]
    MailtoHeaders,
    /// A `%` that does not start a valid percent-encoded UTF-8 sequence.
    #[error("bad percent-encoding in the mailto: URI")]
    BadPercentEncoding,
    /// Not exactly one `@` in the address.
    #[error("an e-mail address needs exactly one `@`, found {found}")]
    AtSignCount {
        /// How many `@` the address has.
        found: usize,
    },
    /// The local part (before the `@`) is empty.
    #[error("the local part of the e-mail address is empty")]
    EmptyLocalPart,
    /// The local part is longer than 64 bytes (RFC 5321 §4.5.3.1.1).
    #[error("the local part is {len} bytes long, more than 64")]
    LocalPartTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A character not allowed in the local part.
    #[error("character {ch:?} is not allowed in the local part of an e-mail address")]
    LocalPartCharacter {
        /// The offending character.
        ch: char,
    },
    /// The domain is not a valid (IDNA) domain name.
    #[error("bad e-mail domain {domain:?}: {reason}")]
    BadDomain {
        /// The domain as given.
        domain: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The address `<local>@<domain>` is longer than 254 bytes.
    #[error("the e-mail address is {len} bytes long, more than 254")]
    AddressTooLong {
        /// Its length in bytes (ASCII domain form).
        len: usize,
    },
}

impl SiiError {
    /// Whether the input was a valid SII in a non-canonical spelling (problem slug
    /// `non-canonical`) rather than not an SII at all (`invalid-sii`).
    pub fn is_non_canonical(&self) -> bool {
        matches!(self, SiiError::NonCanonical { .. })
    }

    /// The canonical form the input should have been written in, for
    /// [`SiiError::NonCanonical`].
    pub fn canonical(&self) -> Option<&str> {
        match self {
            SiiError::NonCanonical { canonical, .. } => Some(canonical),
            _ => None,
        }
    }
}

/// The longest input [`Sii::from_human`] considers; nothing longer can be a formatted phone
/// number or a 254-byte address, even percent-encoded.
pub const MAX_HUMAN_INPUT_LEN: usize = 1024;

/// The longest e-mail address `<local>@<domain>`, in bytes (RFC 5321 §4.5.3.1.3).
pub const MAX_ADDRESS_LEN: usize = 254;

/// The longest local part of an e-mail address, in bytes (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART_LEN: usize = 64;

impl Sii {
    /// Parses an SII in its canonical form — what the log accepts (SPEC §3 admission).
    ///
    /// Accepts `s` exactly when [`Sii::from_human`]`(s, None)` returns `s` unchanged. Text that
    /// canonicalizes to something else is refused with [`SiiError::NonCanonical`] (e.g.
    /// `tel:+1-415-555-0100`, `TEL:+14155550100`, `tel:14155550100`,
    /// `mailto:Alice@Example.COM`); anything else with the error saying what is wrong.
    ///
    /// Canonical phone numbers take a fast path that evaluates libphonenumber's own metadata
    /// with precompiled patterns and gives the same answer as the library (see the tests),
    /// because the library serializes every pattern match behind one global lock.
    pub fn parse(s: &str) -> Result<Sii, SiiError> {
        if let Some(digits) = s.strip_prefix("tel:+") {
            if e164::is_canonical_valid(digits) {
                return Ok(Sii(s.to_owned()));
            }
        }
        match Sii::from_human(s, None) {
            Ok(sii) if sii.0 == s => Ok(sii),
            Ok(sii) => Err(SiiError::NonCanonical {
                given: s.to_owned(),
                canonical: sii.0,
            }),
            Err(e) => Err(e),
        }
    }

    /// Canonicalizes what a person typed (SPEC §1: clients canonicalize first).
    ///
    /// Leading and trailing whitespace is ignored. A `tel:` or `mailto:` scheme is optional and
    /// case-insensitive; without one, input containing `@` is an e-mail address and anything
    /// else a phone number.
    ///
    /// Phone numbers may contain spaces, `-`, `.`, `(`, `)`, `/` and Unicode dashes. A number
    /// is read, in this order: after a `+` as international; in a `tel:` URI with
    /// `;phone-context=+<cc>` (RFC 3966 §5.1.5) in that context; in `default_region` (a CLDR
    /// region such as `CH`, `US`, `GB`, case-insensitive, `UK` meaning `GB`; it also lets
    /// libphonenumber strip that region's international prefix, e.g. `0041…` in `CH`); in a
    /// `tel:` URI that lacks the mandatory `+`, as international anyway (`tel:14155550100`);
    /// otherwise it is refused with [`SiiError::MissingCountryCode`]. Extensions and other
    /// `tel:` parameters are refused.
    ///
    /// E-mail addresses get their domain converted to IDNA ASCII (`Bücher.Example` →
    /// `xn--bcher-kva.example`); `mailto:` URIs are percent-decoded; the local part is kept.
    pub fn from_human(input: &str, default_region: Option<&str>) -> Result<Sii, SiiError> {
        let region = default_region.map(parse_region).transpose()?;
        if input.len() > MAX_HUMAN_INPUT_LEN {
            return Err(SiiError::InputTooLong {
                len: input.len(),
                max: MAX_HUMAN_INPUT_LEN,
            });
        }
        if let Some((position, _)) = input
            .char_indices()
            .find(|(_, c)| c.is_control() && !c.is_whitespace())
        {
            return Err(SiiError::ControlCharacter { position });
        }
        let text = input.trim();
        if text.is_empty() {
            return Err(SiiError::Empty);
        }
        if let Some((position, _)) = text.char_indices().find(|(_, c)| c.is_control()) {
            let offset = input.len() - input.trim_start().len();
            return Err(SiiError::ControlCharacter {
                position: offset + position,
            });
        }
        match split_scheme(text) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("tel") => {
                canonical_tel(rest, true, region).map(Sii)
            }
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("mailto") => {
                canonical_mailto(rest, true).map(Sii)
            }
            Some((scheme, _)) => Err(SiiError::UnknownScheme {
                scheme: scheme.to_owned(),
            }),
            None if text.contains('@') => canonical_mailto(text, false).map(Sii),
            None => canonical_tel(text, false, region).map(Sii),
        }
    }

    /// Whether this is a phone number or an e-mail address.
    pub fn kind(&self) -> SiiKind {
        if self.0.starts_with("tel:") {
            SiiKind::Tel
        } else {
            SiiKind::Mailto
        }
    }
}

string_identifier!(Sii, SiiError);

/// Splits `scheme:rest` when the text starts with an RFC 3986 scheme
/// (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`) followed by `:`.
fn split_scheme(text: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = text.split_once(':')?;
    is_uri_scheme(scheme).then_some((scheme, rest))
}

/// RFC 3986 §3.1 `scheme`.
fn is_uri_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
}

/// Reads a CLDR region code (`CH`, case-insensitive) that libphonenumber has metadata for.
fn parse_region(region: &str) -> Result<phonenumber::country::Id, SiiError> {
    let bad = || SiiError::BadRegion {
        region: region.to_owned(),
    };
    if region.len() != 2 || !region.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(bad());
    }
    let mut upper = region.to_ascii_uppercase();
    if upper == "UK" {
        // ISO 3166-1 "exceptionally reserved" code, common in human input.
        upper = "GB".to_owned();
    }
    let id: phonenumber::country::Id = upper.parse().map_err(|_| bad())?;
    // The library unwraps this lookup when parsing with a region, so check it here.
    if phonenumber::metadata::DATABASE
        .by_id(upper.as_str())
        .is_none()
    {
        return Err(bad());
    }
    Ok(id)
}

/// Visual separators accepted inside a human-written phone number: RFC 3966 `visual-separator`,
/// spaces (also no-break), `/`, and the Unicode dashes libphonenumber treats as punctuation.
fn is_phone_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '\u{a0}' | '-' | '.' | '(' | ')' | '/' | '\u{2010}'..='\u{2015}' | '\u{2212}'
    )
}

/// Canonicalizes a phone number (the part after an optional `tel:`) to `tel:+<E.164>`.
fn canonical_tel(
    text: &str,
    has_scheme: bool,
    region: Option<phonenumber::country::Id>,
) -> Result<String, SiiError> {
    // RFC 3966 parameters only exist in `tel:` URIs.
    let (number, params) = match text.split_once(';') {
        Some((number, params)) if has_scheme => (number, Some(params)),
        Some(_) => return Err(SiiError::TelCharacter { ch: ';' }),
        None => (text, None),
    };
    let mut context: Option<String> = None;
    for param in params.into_iter().flat_map(|p| p.split(';')) {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        let is_context = name.eq_ignore_ascii_case("phone-context");
        if name.eq_ignore_ascii_case("ext") {
            return Err(SiiError::TelExtension);
        }
        // Only a global-number context (`+<digits>`, RFC 3966 §5.1.5), once.
        let digits = value
            .strip_prefix('+')
            .filter(|d| d.bytes().any(|b| b.is_ascii_digit()))
            .filter(|d| {
                d.chars()
                    .all(|c| c.is_ascii_digit() || is_phone_separator(c))
            });
        match digits {
            Some(d) if is_context && context.is_none() => {
                context = Some(d.chars().filter(char::is_ascii_digit).collect());
            }
            _ => {
                return Err(SiiError::TelParameter {
                    parameter: param.to_owned(),
                })
            }
        }
    }

    let mut digits = String::with_capacity(number.len());
    let mut plus = false;
    for c in number.chars() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if !plus && digits.is_empty() => plus = true,
            c if is_phone_separator(c) => {}
            c => return Err(SiiError::TelCharacter { ch: c }),
        }
    }
    if digits.is_empty() {
        return Err(SiiError::UnparseablePhoneNumber {
            reason: "no digits".to_owned(),
        });
    }

    let parsed = match (plus, context, region) {
        (true, Some(_), _) => {
            // RFC 3966: a global number carries no phone-context.
            return Err(SiiError::TelParameter {
                parameter: "phone-context".to_owned(),
            });
        }
        (true, None, _) => phonenumber::parse(None, format!("+{digits}")),
        (false, Some(context), _) => phonenumber::parse(None, format!("+{context}{digits}")),
        (false, None, Some(region)) => phonenumber::parse(Some(region), &digits),
        (false, None, None) if has_scheme && !digits.starts_with('0') => {
            phonenumber::parse(None, format!("+{digits}"))
        }
        (false, None, None) => return Err(SiiError::MissingCountryCode),
    };
    let number = parsed.map_err(|e| SiiError::UnparseablePhoneNumber {
        reason: e.to_string(),
    })?;
    if number.extension().is_some() {
        return Err(SiiError::TelExtension);
    }
    let mut e164 = String::with_capacity(20);
    {
        use std::fmt::Write as _;
        // The formatter fails (rather than panics) only for an unknown country code.
        write!(
            e164,
            "{}",
            phonenumber::format(&number).mode(phonenumber::Mode::E164)
        )
        .map_err(|_| SiiError::UnparseablePhoneNumber {
            reason: "unknown country code".to_owned(),
        })?;
    }
    if !phonenumber::is_valid(&number) {
        return Err(SiiError::InvalidPhoneNumber { number: e164 });
    }
    Ok(format!("tel:{e164}"))
}

/// Canonicalizes an e-mail address (the part after an optional `mailto:`) to
/// `mailto:<local>@<ascii domain>`.
fn canonical_mailto(text: &str, has_scheme: bool) -> Result<String, SiiError> {
    let decoded;
    let address = if has_scheme {
        // RFC 6068 §2: `?` starts header fields, which could add recipients or change meaning.
        if text.contains('?') {
            return Err(SiiError::MailtoHeaders);
        }
        decoded = percent_decode(text)?;
        decoded.as_str()
    } else {
        text
    };
    if address.chars().any(char::is_whitespace) {
        return Err(SiiError::Whitespace);
    }
    let found = address.matches('@').count();
    let Some((local, domain)) = address.split_once('@').filter(|_| found == 1) else {
        return Err(SiiError::AtSignCount { found });
    };
    check_local_part(local)?;
    let domain = ascii_domain(domain)?;
    let len = local.len() + 1 + domain.len();
    if len > MAX_ADDRESS_LEN {
        return Err(SiiError::AddressTooLong { len });
    }
    Ok(format!("mailto:{local}@{domain}"))
}

/// Decodes RFC 3986 percent-encoding; the result must be UTF-8 without control characters.
fn percent_decode(text: &str) -> Result<String, SiiError> {
    if !text.contains('%') {
        return Ok(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .ok_or(SiiError::BadPercentEncoding)?;
            let hex = std::str::from_utf8(hex).map_err(|_| SiiError::BadPercentEncoding)?;
            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                return Err(SiiError::BadPercentEncoding);
            }
            out.push(u8::from_str_radix(hex, 16).map_err(|_| SiiError::BadPercentEncoding)?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    let s = String::from_utf8(out).map_err(|_| SiiError::BadPercentEncoding)?;
    if s.chars().any(char::is_control) {
        return Err(SiiError::BadPercentEncoding);
    }
    Ok(s)
}

/// The local part: 1..=64 bytes of RFC 5322 `atext` (minus the URI delimiters `#`, `%`, `?`),
/// `.`, or non-ASCII characters other than whitespace and controls (RFC 6532).
fn check_local_part(local: &str) -> Result<(), SiiError> {
    if local.is_empty() {
        return Err(SiiError::EmptyLocalPart);
    }
    if local.len() > MAX_LOCAL_PART_LEN {
        return Err(SiiError::LocalPartTooLong { len: local.len() });
    }
    let allowed = |c: char| match c {
        'a'..='z' | 'A'..='Z' | '0'..='9' => true,
        '!' | '$' | '&' | '\'' | '*' | '+' | '-' | '/' | '=' | '^' | '_' | '`' | '{' | '|'
        | '}' | '~' | '.' => true,
        c => !c.is_ascii() && !c.is_whitespace() && !c.is_control(),
    };
    match local.chars().find(|&c| !allowed(c)) {
        Some(ch) => Err(SiiError::LocalPartCharacter { ch }),
        None => Ok(()),
    }
}

/// The IDNA ASCII form of an e-mail domain: UTS #46 ToASCII with STD3 rules, CheckHyphens and
/// VerifyDnsLength (no trailing dot), and a top-level label that is not all digits.
fn ascii_domain(domain: &str) -> Result<String, SiiError> {
    let bad = |reason| SiiError::BadDomain {
        domain: domain.to_owned(),
        reason,
    };
    if domain.is_empty() {
        return Err(bad("empty"));
    }
    if domain.ends_with('.') {
        return Err(bad("trailing dot"));
    }
    let ascii = idna::domain_to_ascii_strict(domain)
        .map_err(|_| bad("not a valid IDNA domain name (UTS #46, STD3, DNS lengths)"))?;
    // Belt and braces: the result is what `Name` accepts, i.e. lowercase LDH labels.
    if Name::parse(&ascii).is_err() {
        return Err(bad(
            "not a valid IDNA domain name (UTS #46, STD3, DNS lengths)",
        ));
    }
    let top = ascii.rsplit('.').next().unwrap_or_default();
    if top.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("all-numeric top-level label"));
    }
    Ok(ascii)
}

// ---------------------------------------------------------------------------------------------
// Names, SSIs, tags
// ---------------------------------------------------------------------------------------------

/// The name of an MSP or a prover (SPEC §1): a lowercase DNS name such as `msp-a.example`.
///
/// Lowercase LDH labels (RFC 1123 §2.1: letters, digits, `-`, not starting or ending with `-`)
/// of 1..=63 bytes, joined by `.`, at most 253 bytes, without a trailing dot. The name is also
/// the signed-note key name (C2SP signed-note), where it must not contain `+` or whitespace,
/// which this guarantees.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

/// Why a string is not a [`Name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("the name is empty")]
    Empty,
    /// The name is longer than 253 bytes.
    #[error("the name is {len} bytes long, more than 253")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// An uppercase letter: names are written in lowercase.
    #[error("uppercase letter {ch:?} at byte {position}: names must be lowercase")]
    Uppercase {
        /// The letter.
        ch: char,
        /// Its byte offset.
        position: usize,
    },
    /// A character other than `a-z`, `0-9`, `-` and `.`.
    #[error("character {ch:?} at byte {position} is not allowed in a name")]
    InvalidCharacter {
        /// The character.
        ch: char,
        /// Its byte offset.
        position: usize,
    },
    /// The name ends with a dot.
    #[error("the name ends with a dot")]
    TrailingDot,
    /// An empty label (a leading dot or two dots in a row).
    #[error("empty label at byte {position}")]
    EmptyLabel {
        /// Byte offset where the label should start.
        position: usize,
    },
    /// A label longer than 63 bytes.
    #[error("label at byte {position} is {len} bytes long, more than 63")]
    LabelTooLong {
        /// Byte offset of the label.
        position: usize,
        /// Its length.
        len: usize,
    },
    /// A label that starts or ends with `-`.
    #[error("label at byte {position} starts or ends with `-`")]
    HyphenAtLabelEdge {
        /// Byte offset of the label.
        position: usize,
    },
}

impl Name {
    /// The longest name, in bytes.
    pub const MAX_LEN: usize = 253;
    /// The longest label, in bytes.
    pub const MAX_LABEL_LEN: usize = 63;

    /// Parses a name; accepts only the canonical (lowercase, no trailing dot) form.
    pub fn parse(s: &str) -> Result<Name, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > Self::MAX_LEN {
            return Err(NameError::TooLong { len: s.len() });
        }
        for (position, ch) in s.char_indices() {
            match ch {
                'a'..='z' | '0'..='9' | '-' | '.' => {}
                'A'..='Z' => return Err(NameError::Uppercase { ch, position }),
                _ => return Err(NameError::InvalidCharacter { ch, position }),
            }
        }
        if s.ends_with('.') {
            return Err(NameError::TrailingDot);
        }
        let mut position = 0;
        for label in s.split('.') {
            if label.is_empty() {
                return Err(NameError::EmptyLabel { position });
            }
            if label.len() > Self::MAX_LABEL_LEN {
                return Err(NameError::LabelTooLong {
                    position,
                    len: label.len(),
                });
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(NameError::HyphenAtLabelEdge { position });
            }
            position += label.len() + 1;
        }
        Ok(Name(s.to_owned()))
    }
}

string_identifier!(Name, NameError);

/// An SSI (service specific identifier, SPEC §1): the absolute URI a mapping points to, such as
/// `mimi://msp-a.example/u/alice`.
///
/// An RFC 3986 scheme (`[A-Za-z][A-Za-z0-9+.-]*`), `:`, then at least one more character; at
/// most 512 bytes of printable ASCII (a URI is ASCII, RFC 3986 §2; no whitespace or controls).
/// It is kept byte for byte as given: a mapping is identified by the exact (MSP, SSI) pair, so
/// nothing is normalized.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ssi(String);

/// Why a string is not an [`Ssi`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SsiError {
    /// The SSI is empty.
    #[error("the SSI is empty")]
    Empty,
    /// The SSI is longer than 512 bytes.
    #[error("the SSI is {len} bytes long, more than 512")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// Whitespace in the SSI.
    #[error("whitespace at byte {position}")]
    Whitespace {
        /// Byte offset.
        position: usize,
    },
    /// A control character in the SSI.
    #[error("control character at byte {position}")]
    ControlCharacter {
        /// Byte offset.
        position: usize,
    },
    /// A non-ASCII character (an IRI must be converted to a URI first, RFC 3987 §3.1).
    #[error("non-ASCII character {ch:?} at byte {position}")]
    NonAscii {
        /// The character.
        ch: char,
        /// Byte offset.
        position: usize,
    },
    /// The SSI does not start with `scheme:`.
    #[error("the SSI does not start with a URI scheme and `:`")]
    MissingScheme,
    /// Nothing follows `scheme:`.
    #[error("nothing follows the scheme")]
    NothingAfterScheme,
}

impl Ssi {
    /// The longest SSI, in bytes.
    pub const MAX_LEN: usize = 512;

    /// Parses an SSI; it is accepted exactly as given, or refused.
    pub fn parse(s: &str) -> Result<Ssi, SsiError> {
        if s.is_empty() {
            return Err(SsiError::Empty);
        }
        if s.len() > Self::MAX_LEN {
            return Err(SsiError::TooLong { len: s.len() });
        }
        for (position, ch) in s.char_indices() {
            if ch.is_whitespace() {
                return Err(SsiError::Whitespace { position });
            }
            if ch.is_control() {
                return Err(SsiError::ControlCharacter { position });
            }
            if !ch.is_ascii() {
                return Err(SsiError::NonAscii { ch, position });
            }
        }
        match s.split_once(':') {
            Some((scheme, _)) if !is_uri_scheme(scheme) => Err(SsiError::MissingScheme),
            Some((_, "")) => Err(SsiError::NothingAfterScheme),
            Some(_) => Ok(Ssi(s.to_owned())),
            None => Err(SsiError::MissingScheme),
        }
    }
}

string_identifier!(Ssi, SsiError);

/// A preference tag (SPEC §1, MIMI requirement R2): `[A-Za-z0-9._-]{1,64}`, e.g. `Personal`.
/// Tags are case-sensitive and kept as given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

/// The most tags one entry may carry (SPEC §1).
pub const MAX_TAGS: usize = 16;

/// Why a string is not a [`Tag`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TagError {
    /// The tag is empty.
    #[error("the tag is empty")]
    Empty,
    /// The tag is longer than 64 bytes.
    #[error("the tag is {len} bytes long, more than 64")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A character other than `A-Z`, `a-z`, `0-9`, `.`, `_`, `-`.
    #[error("character {ch:?} at byte {position} is not allowed in a tag")]
    InvalidCharacter {
        /// The character.
        ch: char,
        /// Its byte offset.
        position: usize,
    },
}

impl Tag {
    /// The longest tag, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Parses a tag; it is accepted exactly as given, or refused.
    pub fn parse(s: &str) -> Result<Tag, TagError> {
        if s.is_empty() {
            return Err(TagError::Empty);
        }
        if let Some((position, ch)) = s
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(TagError::InvalidCharacter { ch, position });
        }
        if s.len() > Self::MAX_LEN {
            return Err(TagError::TooLong { len: s.len() });
        }
        Ok(Tag(s.to_owned()))
    }
}

string_identifier!(Tag, TagError);

// ---------------------------------------------------------------------------------------------
// Fast path for canonical phone numbers
// ---------------------------------------------------------------------------------------------

/// Decides "is `+<digits>` a valid number that libphonenumber formats back to exactly itself"
/// without the library's regex cache.
///
/// `phonenumber` keeps its patterns in one process-wide LRU cache of 100 compiled regexes behind
/// a mutex, looked up by the pattern text on every match. Numbers from many countries thrash
/// that cache (milliseconds per number) and every thread contends for the lock. This module
/// walks the same metadata (`phonenumber::metadata::DATABASE`) with the same steps as
/// `phonenumber::parse(None, "+<digits>")`, `phonenumber::is_valid` and the E.164 formatter, but
/// with its own compiled copies of the patterns (same source and flags).
///
/// It is only ever trusted to say "yes": whenever it answers `false` — or meets anything it does
/// not model — [`Sii::parse`] falls back to the library, which then decides. The tests compare
/// both on every example number in the metadata and on random numbers.
mod e164 {
    use phonenumber::metadata::{Descriptor, Metadata, DATABASE};
    use regex::{Regex, RegexBuilder};
    use std::borrow::Cow;
    use std::collections::HashMap;
    use std::sync::{LazyLock, OnceLock};

    /// Something the model does not cover (where the library would panic, or metadata it does
    /// not expect): answer `false` and let the library decide.
    struct Bail;

    /// A pattern only ever asked "is there a match starting at 0?" (what the library computes
    /// as `find(value).map(|m| m.start() == 0)`: the leftmost match starts at 0 exactly when
    /// some match does). Compiled anchored, `^(?:…)`, so the search stops early; the line
    /// breaks end any `#` comment the pattern could contain in ignore-whitespace mode.
    struct Prefix(Regex);

    impl Prefix {
        fn compile(source: &str) -> Option<Prefix> {
            compile(&format!("^(?:\n{source}\n)")).map(Prefix)
        }

        fn matches_at_start(&self, value: &str) -> bool {
            self.0.is_match(value)
        }
    }

    /// A compiled `Descriptor` (phonenumber `metadata::Descriptor::is_match`).
    struct Desc {
        re: Prefix,
        possible_length: &'static [u16],
    }

    impl Desc {
        fn compile(d: &'static Descriptor) -> Option<Desc> {
            Some(Desc {
                re: Prefix::compile(d.national_number().as_str())?,
                possible_length: d.possible_length(),
            })
        }

        /// Same as the library: a possible length, and a match starting at 0 (not a full match).
        fn is_match(&self, value: &str) -> bool {
            let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
            (self.possible_length.is_empty() || self.possible_length.contains(&len))
                && self.re.matches_at_start(value)
        }
    }

    /// The patterns of one region's metadata.
    struct RegionRx {
        leading_digits: Option<Prefix>,
        national_prefix_for_parsing: Option<Regex>,
        general: Desc,
        /// The descriptors `validator::number_type` tries after `general`, in its order.
        types: Vec<Desc>,
    }

    /// One region's metadata with its patterns compiled on first use.
    struct Region {
        meta: &'static Metadata,
        rx: OnceLock<Option<RegionRx>>,
    }

    impl Region {
        fn new(meta: &'static Metadata) -> Region {
            Region {
                meta,
                rx: OnceLock::new(),
            }
        }

        fn rx(&self) -> Result<&RegionRx, Bail> {
            self.rx
                .get_or_init(|| compile_region(self.meta))
                .as_ref()
                .ok_or(Bail)
        }
    }

    /// How `validator::source_for` picks the metadata for a country calling code.
    enum CodeEntry {
        /// One region for the code: its metadata, if the library finds any.
        Single(Option<Region>),
        /// Several regions, tried in order; `None` where the library would panic.
        Multi(Vec<Option<Region>>),
    }

    /// The regex flags of `phonenumber`'s `CachedRegexBuilder` (regex-cache defaults plus
    /// `ignore_whitespace`), except Unicode mode: the haystacks here are ASCII digits only, on
    /// which `\d`, `\w`, `\s` and `\b` mean the same with or without it, and without it the
    /// compiled patterns take a tenth of the memory and time (`\d{9}` is otherwise nine copies
    /// of a UTF-8 automaton for every Unicode decimal digit).
    fn compile(source: &str) -> Option<Regex> {
        RegexBuilder::new(source)
            .ignore_whitespace(true)
            .unicode(false)
            .size_limit(10 * (1 << 20))
            .dfa_size_limit(2 * (1 << 20))
            .build()
            .ok()
    }

    fn compile_region(meta: &'static Metadata) -> Option<RegionRx> {
        let d = meta.descriptors();
        let optional = |r: Option<&'static phonenumber::metadata::Descriptor>| match r {
            Some(r) => Desc::compile(r).map(Some),
            None => Some(None),
        };
        let mut types = Vec::new();
        for desc in [
            d.premium_rate(),
            d.toll_free(),
            d.shared_cost(),
            d.voip(),
            d.personal_number(),
            d.pager(),
            d.uan(),
            d.voicemail(),
            d.fixed_line(),
            d.mobile(),
        ] {
            types.extend(optional(desc)?);
        }
        Some(RegionRx {
            leading_digits: match meta.leading_digits() {
                Some(r) => Some(Prefix::compile(r.as_str())?),
                None => None,
            },
            national_prefix_for_parsing: match meta.national_prefix_for_parsing() {
                Some(r) => Some(compile(r.as_str())?),
                None => None,
            },
            general: Desc::compile(d.general())?,
            types,
        })
    }

    /// Country calling code → regions, as `Database::region`/`by_id`/`by_code` give them.
    static CODES: LazyLock<HashMap<u16, CodeEntry>> = LazyLock::new(|| {
        let db: &'static phonenumber::metadata::Database = &DATABASE;
        let mut codes = HashMap::new();
        for code in 1..=999u16 {
            let Some(regions) = db.region(&code) else {
                continue;
            };
            let entry = match regions.as_slice() {
                [] => continue,
                ["001"] => CodeEntry::Single(
                    db.by_code(&code)
                        .and_then(|m| m.into_iter().next())
                        .map(Region::new),
                ),
                [one] => CodeEntry::Single(
                    one.parse::<phonenumber::country::Id>()
                        .ok()
                        .and_then(|id| db.by_id(id.as_ref()))
                        .map(Region::new),
                ),
                many => CodeEntry::Multi(
                    many.iter()
                        .map(|r| {
                            r.parse::<phonenumber::country::Id>()
                                .ok()
                                .and_then(|id| db.by_id(id.as_ref()))
                                .map(Region::new)
                        })
                        .collect(),
                ),
            };
            codes.insert(code, entry);
        }
        codes
    });

    /// `validator::number_type(meta, value) != Type::Unknown`.
    fn known_type(rx: &RegionRx, value: &str) -> bool {
        rx.general.is_match(value) && rx.types.iter().any(|d| d.is_match(value))
    }

    /// `validator::source_for`: the metadata for `national` under a calling code.
    fn source_for<'a>(entry: &'a CodeEntry, national: &str) -> Result<Option<&'a Region>, Bail> {
        match entry {
            CodeEntry::Single(region) => Ok(region.as_ref()),
            CodeEntry::Multi(regions) => {
                for region in regions {
                    let region = region.as_ref().ok_or(Bail)?;
                    let rx = region.rx()?;
                    let hit = match &rx.leading_digits {
                        Some(re) => re.matches_at_start(national),
                        None => known_type(rx, national),
                    };
                    if hit {
                        return Ok(Some(region));
                    }
                }
                Ok(None)
            }
        }
    }

    /// `parser::helper::national_number`: strips a national prefix (or applies the transform
    /// rule) when the metadata says so; the carrier code it extracts does not matter here.
    fn national_number<'n>(
        region: &Region,
        rx: &RegionRx,
        n: &'n str,
    ) -> Result<Cow<'n, str>, Bail> {
        let Some(parsing) = &rx.national_prefix_for_parsing else {
            if let Some(rest) = region
                .meta
                .national_prefix()
                .and_then(|p| n.strip_prefix(p))
            {
                return Ok(Cow::Borrowed(rest));
            }
            return Ok(Cow::Borrowed(n));
        };
        let Some(m) = parsing.find(n) else {
            return Ok(Cow::Borrowed(n));
        };
        if m.start() != 0 {
            return Ok(Cow::Borrowed(n));
        }
        let viable = rx.general.is_match(n);
        let caps = parsing.captures(n).ok_or(Bail)?;
        let first = caps.get(1);
        let last = caps.get(caps.len().saturating_sub(1));
        match region.meta.national_prefix_transform_rule() {
            Some(transform) if last.is_some() => {
                let transformed = parsing.replace(n, transform).into_owned();
                if viable && !rx.general.is_match(&transformed) {
                    return Ok(Cow::Borrowed(n));
                }
                if first.is_none() {
                    return Err(Bail); // the library unwraps the first group here
                }
                Ok(Cow::Owned(transformed))
            }
            _ => {
                let rest = n.get(m.start()..).ok_or(Bail)?;
                if viable && !rx.general.is_match(rest) {
                    return Ok(Cow::Borrowed(n));
                }
                Ok(Cow::Borrowed(n.get(m.end()..).ok_or(Bail)?))
            }
        }
    }

    /// `validator::length(meta, number, Type::Unknown) != Validation::TooShort`.
    fn not_too_short(meta: &Metadata, len: usize) -> bool {
        let general = meta.descriptors().general();
        let possible = general.possible_length();
        let len = u16::try_from(len).unwrap_or(u16::MAX);
        match possible.first() {
            None => true,
            Some(&min) => general.possible_local_length().contains(&len) || len >= min,
        }
    }

    /// Compiles every region's patterns; returns the (code, region) pairs that fail to compile
    /// or that the table cannot resolve, for which the fast path always defers to the library.
    #[cfg(test)]
    pub(super) fn uncompiled_regions() -> Vec<(u16, String)> {
        let mut failed = Vec::new();
        for (code, entry) in CODES.iter() {
            let regions: Vec<Option<&Region>> = match entry {
                CodeEntry::Single(r) => r.iter().map(Some).collect(),
                CodeEntry::Multi(rs) => rs.iter().map(Option::as_ref).collect(),
            };
            for region in regions {
                match region {
                    Some(r) if r.rx().is_ok() => {}
                    Some(r) => failed.push((*code, r.meta.id().to_owned())),
                    None => failed.push((*code, "?".to_owned())),
                }
            }
        }
        failed
    }

    /// Whether `tel:+<digits>` is a canonical, valid SII. `false` means "ask the library".
    pub(super) fn is_canonical_valid(digits: &str) -> bool {
        check(digits).unwrap_or(false)
    }

    fn check(d: &str) -> Result<bool, Bail> {
        let bytes = d.as_bytes();
        // `is_viable` wants 3 digits; no calling code starts with 0; a national number has at
        // most 17 digits.
        if bytes.len() < 3
            || bytes.len() > 20
            || !bytes.iter().all(u8::is_ascii_digit)
            || bytes[0] == b'0'
        {
            return Ok(false);
        }
        // `helper::country_code`: the shortest prefix that is a known calling code.
        let mut found = None;
        for k in 1..=3 {
            let code: u16 = d.get(..k).ok_or(Bail)?.parse().map_err(|_| Bail)?;
            if let Some(entry) = CODES.get(&code) {
                found = Some((k, entry));
                break;
            }
        }
        let Some((k, entry)) = found else {
            return Ok(false);
        };
        let n = d.get(k..).ok_or(Bail)?;

        // `parser::parse_with`: national prefix handling with the metadata found for the number
        // without leading zeros. The number is canonical only if it is left unchanged.
        if let Some(region) = source_for(entry, n.trim_start_matches('0'))? {
            let rx = region.rx()?;
            let mut potential = national_number(region, rx, n)?;
            if let Some(prefix) = region.meta.national_prefix() {
                if let Some(rest) = potential.strip_prefix(prefix) {
                    potential = Cow::Owned(rest.to_owned());
                }
            }
            if not_too_short(region.meta, potential.len()) && potential != n {
                return Ok(false);
            }
        }
        // Length limits and `NationalNumber::from_str` (leading zeros, then a u64 below 2^56).
        if n.len() < 2 || n.len() > 17 {
            return Ok(false);
        }
        let value = n.trim_start_matches('0');
        match value.parse::<u64>() {
            Ok(v) if v < (1 << 56) => {}
            _ => return Ok(false),
        }
        // `is_valid`: the metadata for the national number as formatted (with its zeros).
        let Some(region) = source_for(entry, n)? else {
            return Ok(false);
        };
        Ok(known_type(region.rx()?, n))
    }
}

#[cfg(test)]
mod tests {
    //! The fast path for canonical phone numbers against the library it models.

    use super::*;

    /// The library's answer: `from_human` never takes the fast path.
    fn library_says_canonical(digits: &str) -> bool {
        let text = format!("tel:+{digits}");
        matches!(Sii::from_human(&text, None), Ok(sii) if sii.as_str() == text)
    }

    fn assert_same(digits: &str) {
        assert_eq!(
            e164::is_canonical_valid(digits),
            library_says_canonical(digits),
            "fast path and library disagree on +{digits}"
        );
    }

    /// Every example number of every region and number type in the metadata, by calling code,
    /// grouped by code so that the library's small regex cache stays warm.
    fn examples() -> Vec<(u16, String)> {
        let db = &phonenumber::metadata::DATABASE;
        let mut out = Vec::new();
        for code in 1..=999u16 {
            for meta in db.by_code(&code).unwrap_or_default() {
                let d = meta.descriptors();
                let all = [
                    Some(d.general()),
                    d.fixed_line(),
                    d.mobile(),
                    d.toll_free(),
                    d.premium_rate(),
                    d.shared_cost(),
                    d.personal_number(),
                    d.voip(),
                    d.pager(),
                    d.uan(),
                    d.voicemail(),
                    d.emergency(),
                    d.short_code(),
                    d.standard_rate(),
                    d.carrier(),
                    d.no_international(),
                ];
                for example in all.into_iter().flatten().filter_map(|d| d.example()) {
                    out.push((code, example.to_owned()));
                }
            }
        }
        out
    }

    #[test]
    fn every_region_compiles_for_the_fast_path() {
        assert_eq!(e164::uncompiled_regions(), Vec::<(u16, String)>::new());
    }

    #[test]
    fn fast_path_agrees_on_metadata_examples_and_their_mutations() {
        let examples = examples();
        assert!(examples.len() > 1000, "only {} examples", examples.len());
        let mut accepted = 0;
        for (code, national) in &examples {
            let digits = format!("{code}{national}");
            assert_same(&digits);
            accepted += usize::from(library_says_canonical(&digits));
            // With a national (trunk) prefix, one digit more or less, a changed first digit.
            assert_same(&format!("{code}0{national}"));
            assert_same(&format!("{code}{national}5"));
            assert_same(&digits[..digits.len() - 1]);
            for first in ['0', '1', '7', '9'] {
                assert_same(&format!("{code}{first}{}", national.get(1..).unwrap_or("")));
            }
        }
        // Most examples are valid numbers; the test must not pass by both sides saying no.
        assert!(
            accepted * 10 > examples.len() * 9,
            "{accepted} of {}",
            examples.len()
        );
    }

    #[test]
    fn fast_path_agrees_on_random_numbers() {
        // xorshift64*: deterministic, no dependency.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let db = &phonenumber::metadata::DATABASE;
        let codes: Vec<u16> = (1..=999u16).filter(|c| db.by_code(c).is_some()).collect();
        for code in codes {
            for _ in 0..12 {
                let len = 4 + (next() % 11) as usize;
                let national: String = (0..len)
                    .map(|_| char::from(b'0' + (next() % 10) as u8))
                    .collect();
                assert_same(&format!("{code}{national}"));
            }
        }
        for _ in 0..300 {
            let len = 1 + (next() % 19) as usize;
            let digits: String = (0..len)
                .map(|_| char::from(b'0' + (next() % 10) as u8))
                .collect();
            assert_same(&digits);
        }
    }
}
