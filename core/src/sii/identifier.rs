//! The SII (SPEC §1): `tel:` and `mailto:` identifiers in their one canonical form; see the
//! [parent module](super) for the exact rules.

use super::{e164, Name};

/// A canonical SII (service independent identifier, SPEC §1): `tel:+<E.164>` or
/// `mailto:<local>@<idna-ascii lowercase domain>`. See the [module docs](crate::sii) for the exact
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
pub(super) fn is_uri_scheme(s: &str) -> bool {
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
