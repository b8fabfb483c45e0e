//! Preference tags (SPEC §1, MIMI R2).

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
