//! MSP and prover names (SPEC §1).

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
