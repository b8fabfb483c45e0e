//! The `application/ohttp-keys` format (RFC 9540 §3): a list of key configurations, each prefixed
//! by its length as two bytes, each (RFC 9458 §3) a key id, a KEM id, the public key and the
//! symmetric suites (KDF id, AEAD id) it accepts.

/// The KEM this project uses: DHKEM(X25519, HKDF-SHA256).
pub const KEM_X25519_SHA256: u16 = 0x0020;
/// HKDF-SHA256.
pub const KDF_HKDF_SHA256: u16 = 0x0001;
/// AES-128-GCM.
pub const AEAD_AES_128_GCM: u16 = 0x0001;
/// ChaCha20-Poly1305.
pub const AEAD_CHACHA20_POLY1305: u16 = 0x0003;
/// The length of an X25519 public key (and of the `enc` value of a request).
pub const X25519_KEY_LEN: usize = 32;

/// Why a key configuration list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The list holds no configuration.
    #[error("the key configuration list is empty")]
    Empty,
    /// It ends in the middle of an item.
    #[error("the key configuration list is truncated")]
    Truncated,
    /// An item's own structure does not add up.
    #[error("key configuration {key_id}: {what}")]
    Malformed {
        /// The key id of the item.
        key_id: u8,
        /// What is wrong.
        what: &'static str,
    },
}

/// One parsed key configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyConfigInfo {
    /// The key id.
    pub key_id: u8,
    /// The KEM id.
    pub kem: u16,
    /// The public key.
    pub public_key: Vec<u8>,
    /// The (KDF, AEAD) pairs accepted.
    pub suites: Vec<(u16, u16)>,
    /// The item as encoded (without its length prefix), what `ohttp` parses.
    pub encoded: Vec<u8>,
}

impl KeyConfigInfo {
    /// Whether a client of this project can use it: X25519 with HKDF-SHA256 and AES-128-GCM or
    /// ChaCha20-Poly1305.
    pub fn supported(&self) -> bool {
        self.kem == KEM_X25519_SHA256
            && self.suites.iter().any(|&(kdf, aead)| {
                kdf == KDF_HKDF_SHA256
                    && (aead == AEAD_AES_128_GCM || aead == AEAD_CHACHA20_POLY1305)
            })
    }
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if b.len() < n {
        return None;
    }
    let (head, tail) = b.split_at(n);
    *b = tail;
    Some(head)
}

fn u16_at(b: &mut &[u8]) -> Option<u16> {
    take(b, 2).map(|s| u16::from_be_bytes([s[0], s[1]]))
}

/// Parses a list: every item must be well-formed (the public key's length is known only for
/// X25519, so other KEMs are refused as malformed here), and the list non-empty.
pub fn parse_list(mut list: &[u8]) -> Result<Vec<KeyConfigInfo>, ConfigError> {
    let mut out = Vec::new();
    while !list.is_empty() {
        let len = usize::from(u16_at(&mut list).ok_or(ConfigError::Truncated)?);
        let item = take(&mut list, len).ok_or(ConfigError::Truncated)?;
        out.push(parse_one(item)?);
    }
    if out.is_empty() {
        return Err(ConfigError::Empty);
    }
    Ok(out)
}

fn parse_one(item: &[u8]) -> Result<KeyConfigInfo, ConfigError> {
    let mut b = item;
    let key_id = *take(&mut b, 1)
        .ok_or(ConfigError::Truncated)?
        .first()
        .ok_or(ConfigError::Truncated)?;
    let bad = |what| ConfigError::Malformed { key_id, what };
    let kem = u16_at(&mut b).ok_or(bad("truncated KEM id"))?;
    if kem != KEM_X25519_SHA256 {
        return Err(bad("not DHKEM(X25519, HKDF-SHA256)"));
    }
    let public_key = take(&mut b, X25519_KEY_LEN)
        .ok_or(bad("truncated public key"))?
        .to_vec();
    let suites_len = usize::from(u16_at(&mut b).ok_or(bad("truncated suite list"))?);
    if suites_len == 0 || suites_len % 4 != 0 {
        return Err(bad(
            "the suite list is empty or not a whole number of suites",
        ));
    }
    let mut suites_bytes = take(&mut b, suites_len).ok_or(bad("truncated suite list"))?;
    if !b.is_empty() {
        return Err(bad("trailing bytes after the suite list"));
    }
    let mut suites = Vec::new();
    while !suites_bytes.is_empty() {
        let kdf = u16_at(&mut suites_bytes).ok_or(bad("truncated suite"))?;
        let aead = u16_at(&mut suites_bytes).ok_or(bad("truncated suite"))?;
        suites.push((kdf, aead));
    }
    Ok(KeyConfigInfo {
        key_id,
        kem,
        public_key,
        suites,
        encoded: item.to_vec(),
    })
}

/// Encodes items (each as [`KeyConfigInfo::encoded`]) as a list.
pub fn encode_list<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        // Our items are 43 bytes (one X25519 key, two suites); a u16 always holds them.
        let len = u16::try_from(item.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&item[..usize::from(len)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: u8) -> Vec<u8> {
        let mut v = vec![id, 0x00, 0x20];
        v.extend_from_slice(&[7u8; 32]);
        v.extend_from_slice(&[0, 8, 0, 1, 0, 1, 0, 1, 0, 3]);
        v
    }

    #[test]
    fn list_round_trips_and_keeps_order() {
        let list = encode_list([item(5).as_slice(), item(4).as_slice()]);
        assert_eq!(list.len(), 2 * (2 + 45));
        let parsed = parse_list(&list).expect("parses");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].key_id, 5);
        assert_eq!(parsed[1].key_id, 4);
        assert_eq!(parsed[0].suites, vec![(1, 1), (1, 3)]);
        assert!(parsed[0].supported());
        assert_eq!(parsed[0].encoded, item(5));
    }

    #[test]
    fn refuses_broken_lists() {
        assert_eq!(parse_list(&[]), Err(ConfigError::Empty));
        let list = encode_list([item(1).as_slice()]);
        for cut in 1..list.len() {
            assert!(parse_list(&list[..cut]).is_err(), "cut at {cut}");
        }
        let mut other_kem = item(2);
        other_kem[2] = 0x10;
        assert!(matches!(
            parse_list(&encode_list([other_kem.as_slice()])),
            Err(ConfigError::Malformed { key_id: 2, .. })
        ));
        let mut trailing = item(3);
        trailing.push(0);
        assert!(parse_list(&encode_list([trailing.as_slice()])).is_err());
        let mut odd = item(3);
        odd[36] = 6; // suite list length 6
        assert!(parse_list(&encode_list([odd.as_slice()])).is_err());
    }

    #[test]
    fn unsupported_suites_are_visible() {
        let mut v = vec![9, 0x00, 0x20];
        v.extend_from_slice(&[1u8; 32]);
        v.extend_from_slice(&[0, 4, 0, 2, 0, 2]);
        let parsed = parse_list(&encode_list([v.as_slice()])).expect("parses");
        assert!(!parsed[0].supported());
    }
}
