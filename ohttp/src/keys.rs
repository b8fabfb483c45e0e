//! The gateway's key ring: one key file per key in `<data>/ohttp/` (mode 0600, written through
//! `ledger-secret-file`), the newest key current, the one before it still accepted for an
//! overlap after it was superseded, so that clients that pinned it have time to re-pin.
//!
//! A key file holds the 32 random bytes the key pair is derived from (HPKE `DeriveKeyPair`),
//! its key id and when it became current:
//!
//! ```text
//! # mimi-ledger OHTTP gateway key (RFC 9458): secret, keep it 0600.
//! ohttp-gateway-key v1
//! id 1
//! created 1700000000
//! ikm <base64 of 32 bytes>
//! ```
//!
//! Rotation ([`KeyRing::rotate`]) writes a new key with the next free key id; the previous one
//! is accepted until `its successor's created + overlap`, and its file is removed at the first
//! start after that. `/ohttp-keys` lists the valid keys, the current one first.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ohttp::hpke::{Aead, Kdf, Kem};
use ohttp::{KeyConfig, SymmetricSuite};
use rand_core::{OsRng, RngCore as _};

use crate::config;

/// The folder of the key files, inside the data folder.
pub const KEY_DIR: &str = "ohttp";
/// The default overlap: how long a superseded key stays valid (7 days).
pub const DEFAULT_OVERLAP_S: u64 = 7 * 24 * 3600;

const MAGIC: &str = "ohttp-gateway-key v1";
const IKM_LEN: usize = 32;

/// Why the key ring could not be loaded or rotated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyRingError {
    /// Reading, listing, writing or removing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A key file does not parse.
    #[error("{}: not an OHTTP gateway key file: {what}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Two key files claim the same key id.
    #[error("two OHTTP gateway key files have key id {0}")]
    DuplicateId(u8),
    /// Every key id is in use by a valid key.
    #[error("all 256 OHTTP key ids are in use by valid keys")]
    NoFreeId,
    /// The HPKE library refused the key.
    #[error("deriving the OHTTP key pair: {0}")]
    Hpke(String),
}

/// One gateway key.
#[derive(Debug)]
pub struct GatewayKey {
    id: u8,
    created: u64,
    path: PathBuf,
    server: ohttp::Server,
    encoded: Vec<u8>,
}

impl GatewayKey {
    /// The key id.
    pub fn id(&self) -> u8 {
        self.id
    }
    /// When the key became current (Unix seconds).
    pub fn created(&self) -> u64 {
        self.created
    }
    /// Its public key configuration (RFC 9458 §3), without the list's length prefix.
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }
    /// The decapsulating side.
    pub fn server(&self) -> &ohttp::Server {
        &self.server
    }
}

/// The suites the gateway accepts, in order of preference.
fn suites() -> Vec<SymmetricSuite> {
    vec![
        SymmetricSuite::new(Kdf::HkdfSha256, Aead::Aes128Gcm),
        SymmetricSuite::new(Kdf::HkdfSha256, Aead::ChaCha20Poly1305),
    ]
}

fn derive(id: u8, ikm: &[u8]) -> Result<(ohttp::Server, Vec<u8>), KeyRingError> {
    let hpke = |e: ohttp::Error| KeyRingError::Hpke(e.to_string());
    let cfg = KeyConfig::derive(id, Kem::X25519Sha256, suites(), ikm).map_err(hpke)?;
    let encoded = cfg.encode().map_err(hpke)?;
    let server = ohttp::Server::new(cfg).map_err(hpke)?;
    Ok((server, encoded))
}

/// The gateway's keys, newest first.
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<GatewayKey>,
    overlap_s: u64,
    dir: PathBuf,
}

/// What [`KeyRing::load_or_create`] did, for the server's log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// A key was created (a new data folder, or a rotation).
    pub created: Option<u8>,
    /// Key files removed because their overlap had ended.
    pub expired: Vec<u8>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyRingError + '_ {
    move |source| KeyRingError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn parse_file(path: &Path, text: &str) -> Result<(u8, u64, Vec<u8>), KeyRingError> {
    let bad = |what: &str| KeyRingError::BadFile {
        path: path.to_path_buf(),
        what: what.to_string(),
    };
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    if lines.next() != Some(MAGIC) {
        return Err(bad("missing the `ohttp-gateway-key v1` line"));
    }
    let (mut id, mut created, mut ikm) = (None, None, None);
    for line in lines {
        let (k, v) = line
            .split_once(' ')
            .ok_or_else(|| bad("a line without a value"))?;
        match k {
            "id" => id = Some(v.parse::<u8>().map_err(|_| bad("id is not 0..=255"))?),
            "created" => created = Some(v.parse::<u64>().map_err(|_| bad("bad created time"))?),
            "ikm" => {
                let raw = STANDARD.decode(v).map_err(|_| bad("ikm is not base64"))?;
                if raw.len() != IKM_LEN {
                    return Err(bad("ikm is not 32 bytes"));
                }
                ikm = Some(raw);
            }
            _ => return Err(bad("unknown line")),
        }
    }
    match (id, created, ikm) {
        (Some(i), Some(c), Some(k)) => Ok((i, c, k)),
        _ => Err(bad("id, created and ikm are all required")),
    }
}

impl KeyRing {
    /// Loads the keys in `<data>/ohttp/`, removes those whose overlap ended before `now`, and
    /// creates a key when there is none or `rotate` is set.
    pub fn load_or_create(
        data: &Path,
        overlap_s: u64,
        rotate: bool,
        now: u64,
    ) -> Result<(KeyRing, LoadReport), KeyRingError> {
        let dir = data.join(KEY_DIR);
        if !dir.is_dir() {
            ledger_secret_file::create_private_dir(&dir).map_err(io(&dir))?;
        }
        let mut keys = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("key") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            let (id, created, ikm) = parse_file(&path, &text)?;
            let (server, encoded) = derive(id, &ikm)?;
            keys.push(GatewayKey {
                id,
                created,
                path,
                server,
                encoded,
            });
        }
        keys.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
        let mut ring = KeyRing {
            keys,
            overlap_s,
            dir,
        };
        let mut report = LoadReport::default();
        // Forget the expired ones (their files first, so a crash leaves at worst a stale file).
        let valid = ring.valid_count(now);
        for gone in ring.keys.split_off(valid) {
            std::fs::remove_file(&gone.path).map_err(io(&gone.path))?;
            report.expired.push(gone.id);
        }
        let mut seen = [false; 256];
        for k in &ring.keys {
            if std::mem::replace(&mut seen[usize::from(k.id)], true) {
                return Err(KeyRingError::DuplicateId(k.id));
            }
        }
        if ring.keys.is_empty() || rotate {
            report.created = Some(ring.rotate(now)?);
        }
        Ok((ring, report))
    }

    /// How many keys (from the newest) are valid at `now`: the current one, and each older one
    /// whose successor became current less than the overlap ago.
    fn valid_count(&self, now: u64) -> usize {
        let mut n = usize::from(!self.keys.is_empty());
        while n < self.keys.len() {
            let successor = self.keys[n - 1].created;
            if successor.saturating_add(self.overlap_s) > now {
                n += 1;
            } else {
                break;
            }
        }
        n
    }

    /// Makes a new key current (the next free key id after the current one) and writes its file.
    pub fn rotate(&mut self, now: u64) -> Result<u8, KeyRingError> {
        let start = self.keys.first().map_or(1, |k| k.id.wrapping_add(1));
        let id = (0..=255u8)
            .map(|i| start.wrapping_add(i))
            .find(|id| self.keys.iter().all(|k| k.id != *id))
            .ok_or(KeyRingError::NoFreeId)?;
        // Strictly newer than the current key, so the order never depends on the clock alone.
        let created = self
            .keys
            .first()
            .map_or(now, |k| now.max(k.created.saturating_add(1)));
        let mut ikm = [0u8; IKM_LEN];
        OsRng.fill_bytes(&mut ikm);
        let (server, encoded) = derive(id, &ikm)?;
        let path = self.dir.join(format!("gateway-{created}-{id}.key"));
        let text = format!(
            "# mimi-ledger OHTTP gateway key (RFC 9458): secret, keep it 0600.\n{MAGIC}\nid {id}\ncreated {created}\nikm {}\n",
            STANDARD.encode(ikm)
        );
        ledger_secret_file::write_secret(&path, text.as_bytes()).map_err(|e| KeyRingError::Io {
            path: path.clone(),
            source: e.into(),
        })?;
        self.keys.insert(
            0,
            GatewayKey {
                id,
                created,
                path,
                server,
                encoded,
            },
        );
        Ok(id)
    }

    /// The current key.
    pub fn current(&self) -> Option<&GatewayKey> {
        self.keys.first()
    }

    /// The keys valid at `now`, the current one first.
    pub fn valid(&self, now: u64) -> &[GatewayKey] {
        &self.keys[..self.valid_count(now)]
    }

    /// The valid key with `key_id`, if any.
    pub fn key_for(&self, key_id: u8, now: u64) -> Option<&GatewayKey> {
        self.valid(now).iter().find(|k| k.id == key_id)
    }

    /// The `application/ohttp-keys` body at `now`: the valid keys, the current one first.
    pub fn encoded_list(&self, now: u64) -> Vec<u8> {
        config::encode_list(self.valid(now).iter().map(|k| k.encoded()))
    }

    /// The overlap, in seconds.
    pub fn overlap_s(&self) -> u64 {
        self.overlap_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn creates_reloads_rotates_and_expires() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ring, report) = KeyRing::load_or_create(dir.path(), 100, false, 1000).expect("create");
        assert_eq!(report.created, Some(1));
        let first = ring.current().expect("a key").encoded().to_vec();
        let files: Vec<_> = std::fs::read_dir(dir.path().join(KEY_DIR))
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .collect();
        assert_eq!(files.len(), 1);
        let mode = std::fs::metadata(&files[0])
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);

        // Reloading gives the same key; the list parses and names it.
        let (ring, report) = KeyRing::load_or_create(dir.path(), 100, false, 1001).expect("load");
        assert_eq!(report, LoadReport::default());
        assert_eq!(ring.current().expect("key").encoded(), first.as_slice());
        let list = config::parse_list(&ring.encoded_list(1001)).expect("list");
        assert_eq!(list.len(), 1);
        assert!(list[0].supported());

        // Rotation: the new key first, the old one still valid during the overlap.
        let (ring, report) = KeyRing::load_or_create(dir.path(), 100, true, 2000).expect("rotate");
        assert_eq!(report.created, Some(2));
        let ids: Vec<u8> = ring.valid(2050).iter().map(GatewayKey::id).collect();
        assert_eq!(ids, vec![2, 1]);
        assert!(ring.key_for(1, 2099).is_some());
        assert!(ring.key_for(1, 2100).is_none());
        let list = config::parse_list(&ring.encoded_list(2050)).expect("list");
        assert_eq!(
            list.iter().map(|c| c.key_id).collect::<Vec<_>>(),
            vec![2, 1]
        );

        // After the overlap the old file is removed at the next start.
        let (ring, report) = KeyRing::load_or_create(dir.path(), 100, false, 2100).expect("expire");
        assert_eq!(report.expired, vec![1]);
        assert_eq!(ring.valid(2100).len(), 1);
    }

    #[test]
    fn refuses_a_damaged_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join(KEY_DIR)).expect("mkdir");
        std::fs::write(
            dir.path().join(KEY_DIR).join("x.key"),
            "ohttp-gateway-key v1\nid 300\n",
        )
        .expect("write");
        assert!(matches!(
            KeyRing::load_or_create(dir.path(), 100, false, 1),
            Err(KeyRingError::BadFile { .. })
        ));
    }
}
