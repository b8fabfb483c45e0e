//! SSIs (SPEC §1): the URI a mapping points to.

use super::identifier::is_uri_scheme;

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
