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
//!
//! # Files
//!
//! One file per identifier type — [`Sii`] (`identifier.rs`), [`Name`] (`name.rs`), [`Ssi`]
//! (`ssi.rs`), [`Tag`] (`tag.rs`) — and `e164.rs`, the fast path that decides canonical phone
//! numbers without the `phonenumber` crate's regex cache.

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

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ::std::str::FromStr for $ty {
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
        impl ::std::borrow::Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<$ty> for String {
            fn from(value: $ty) -> String {
                value.0
            }
        }

        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                let text = <String as ::serde::Deserialize>::deserialize(deserializer)?;
                $ty::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

mod e164;
mod identifier;
mod name;
mod ssi;
mod tag;

pub use identifier::{
    Sii, SiiError, SiiKind, MAX_ADDRESS_LEN, MAX_HUMAN_INPUT_LEN, MAX_LOCAL_PART_LEN,
};
pub use name::{Name, NameError};
pub use ssi::{Ssi, SsiError};
pub use tag::{Tag, TagError, MAX_TAGS};
