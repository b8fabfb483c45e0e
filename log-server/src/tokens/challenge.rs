//! The token challenge a DP issues and accepts (RFC 9577 §2.1), and the encodings shared by the
//! DP, the issuer and the client.
//!
//! Tokens are time-bound through the challenge's redemption context: it is
//! `SHA-256("mimi-ledger lookup tokens v1" || 0x00 || day)`, `day` the UTC day number (days since
//! 1970-01-01, big-endian u32). A DP accepts tokens whose challenge is that of today or yesterday,
//! so a token lives at most until the end of the day after it was fetched, and the spent set only
//! needs those two days. The origin name (`--token-origin`, default the log's origin) binds the
//! token to the DP; the issuer name says where to get tokens.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use privacypass::auth::authenticate::TokenChallenge;
use privacypass::public_tokens::PublicKey;
use privacypass::TokenType;
use sha2::{Digest, Sha256};

/// Domain separation of the redemption context.
const CONTEXT_LABEL: &[u8] = b"mimi-ledger lookup tokens v1";

/// Seconds in a day.
pub const DAY_S: u64 = 86_400;

/// base64url, padded or not (RFC 9577 values are base64url; some encoders pad).
pub const B64URL_ANY: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The UTC day number of a Unix time.
pub fn utc_day(unix_s: u64) -> u32 {
    u32::try_from(unix_s / DAY_S).unwrap_or(u32::MAX)
}

/// The redemption context of `day`'s tokens.
pub fn redemption_context(day: u32) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(CONTEXT_LABEL);
    h.update([0u8]);
    h.update(day.to_be_bytes());
    h.finalize().into()
}

/// The challenge of `day` for tokens of `issuer_name` spent at `origin`.
pub fn challenge(issuer_name: &str, origin: &str, day: u32) -> TokenChallenge {
    TokenChallenge::new(
        TokenType::Public,
        issuer_name,
        Some(redemption_context(day)),
        &[origin.to_string()],
    )
}

/// Errors decoding a key or a value.
#[derive(Debug, thiserror::Error)]
pub enum EncodingError {
    /// Not base64url.
    #[error("not base64url: {0}")]
    Base64(#[from] base64::DecodeError),
    /// Not an RSA-PSS SubjectPublicKeyInfo.
    #[error("not an RSA public key (SPKI): {0}")]
    Key(String),
}

/// The key as it travels: base64url (no padding) of its DER SubjectPublicKeyInfo.
pub fn encode_key(key: &PublicKey) -> Result<String, EncodingError> {
    let der = key
        .to_spki()
        .map_err(|e| EncodingError::Key(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(der))
}

/// The inverse of [`encode_key`] (padding accepted).
pub fn decode_key(text: &str) -> Result<PublicKey, EncodingError> {
    let der = B64URL_ANY.decode(text.trim())?;
    PublicKey::from_spki(&der).map_err(|e| EncodingError::Key(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_differ_per_day_and_days_are_utc() {
        assert_ne!(redemption_context(1), redemption_context(2));
        assert_eq!(utc_day(DAY_S * 3 - 1), 2);
        assert_eq!(utc_day(DAY_S * 3), 3);
        let a = challenge("i", "o", 5).digest().expect("digest");
        let b = challenge("i", "o", 6).digest().expect("digest");
        let c = challenge("i", "p", 5).digest().expect("digest");
        assert_ne!(a, b);
        assert_ne!(a, c);
    }
}
