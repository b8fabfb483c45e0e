//! The client side: encapsulating a request for a pinned key configuration list and opening the
//! answer.

use crate::config::{self, ConfigError};

/// Why a request could not be encapsulated or its response opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The pinned list does not parse.
    #[error("the pinned OHTTP key configuration is unusable: {0}")]
    Config(#[from] ConfigError),
    /// No configuration in it uses this project's suite.
    #[error("the pinned OHTTP key configuration offers no supported suite (X25519, HKDF-SHA256, AES-128-GCM or ChaCha20-Poly1305)")]
    Unsupported,
    /// HPKE or the response's AEAD failed.
    #[error("OHTTP: {0}")]
    Crypto(String),
}

/// An encapsulated request, waiting for its response.
pub struct Pending {
    response: ohttp::ClientResponse,
    /// The key id the request was encapsulated for.
    pub key_id: u8,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("key_id", &self.key_id)
            .finish()
    }
}

/// Encapsulates `request` (Binary HTTP) for the first supported configuration of the pinned
/// `list` (the gateway lists its current key first).
pub fn encapsulate(list: &[u8], request: &[u8]) -> Result<(Vec<u8>, Pending), ClientError> {
    let configs = config::parse_list(list)?;
    let chosen = configs
        .iter()
        .find(|c| c.supported())
        .ok_or(ClientError::Unsupported)?;
    let req = ohttp::ClientRequest::from_encoded_config(&chosen.encoded)
        .map_err(|e| ClientError::Crypto(e.to_string()))?;
    let (enc, response) = req
        .encapsulate(request)
        .map_err(|e| ClientError::Crypto(e.to_string()))?;
    Ok((
        enc,
        Pending {
            response,
            key_id: chosen.key_id,
        },
    ))
}

impl Pending {
    /// Opens the encapsulated response (its Binary HTTP bytes).
    pub fn open(self, encapsulated: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.response
            .decapsulate(encapsulated)
            .map_err(|e| ClientError::Crypto(e.to_string()))
    }
}

/// The HPKE `enc` value of an encapsulated request for an X25519 key (bytes 7..39), which the
/// gateway's replay window remembers.
pub fn request_enc(encapsulated: &[u8]) -> Option<&[u8]> {
    encapsulated.get(7..7 + config::X25519_KEY_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyRing;
    use crate::message;

    #[test]
    fn end_to_end_through_the_ring() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ring, _) = KeyRing::load_or_create(dir.path(), 60, false, 10).expect("ring");
        let list = ring.encoded_list(10);
        let req = message::encode_get("dp", "/v1/info", std::time::SystemTime::now()).expect("m");
        let (enc, pending) = encapsulate(&list, &req).expect("encapsulate");
        assert_eq!(enc[0], pending.key_id);
        assert!(request_enc(&enc).is_some());
        let key = ring.key_for(enc[0], 10).expect("key");
        let (inner, resp) = key.server().decapsulate(&enc).expect("decapsulate");
        assert_eq!(inner, req);
        let answer = message::encode_response(200, Some("text/plain"), b"hi").expect("resp");
        let sealed = resp.encapsulate(&answer).expect("seal");
        let opened = pending.open(&sealed).expect("open");
        assert_eq!(message::decode_response(&opened).expect("dec").body, b"hi");

        // Another ring's key (same id) cannot open it.
        let dir2 = tempfile::tempdir().expect("tempdir");
        let (other, _) = KeyRing::load_or_create(dir2.path(), 60, false, 10).expect("ring");
        let key2 = other.key_for(enc[0], 10).expect("same id");
        assert!(key2.server().decapsulate(&enc).is_err());
    }
}
