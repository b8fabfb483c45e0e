//! The state the claim rules need — the current mappings of every tracked SII and each MSP's
//! `claim-burst` window — held in memory in a compact form, and made durable as a journal of
//! operations (one record per catch-up step, committed atomically with the step's progress) plus
//! occasional snapshots.
//!
//! Why not one store record per SII: with a million distinct SIIs, a sled `get` of a missing key
//! plus an insert per claimed SII cost ~50 µs on our 2-core machine — more than verifying the
//! entry's signatures, and the reason catch-up ran at half the target rate. Here a claim costs a
//! hash-map update and ~53 journal bytes; a snapshot is written when the journal has grown as
//! large as the last snapshot, so the bytes written stay linear in the log and a restart replays
//! at most one snapshot's worth of journal.
//!
//! SIIs and SSIs are kept as truncated SHA-256 digests (16 and 8 bytes): the rules only compare
//! them, and alerts take the SII text from the entry at hand. A 128-bit collision between two SIIs
//! is not a practical concern; two SSIs of one MSP colliding in 64 bits would only make a revoke
//! of one remove the other's mapping from the monitor's view.
//!
//! Every operation carries what it needs to be replayed literally (expiry times, window floors),
//! so replay does not depend on the configuration at restart.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;

use sha2::{Digest, Sha256};
use smallvec::SmallVec;

use crate::codec::{
    self, checked_body, put_u32, put_u64, read_snapshot_file, write_snapshot_file, Damaged, Summed,
};

/// An SII, as the rules keep it: the first 16 bytes of SHA-256 of its canonical text.
pub type SiiKey = [u8; 16];

/// The key of `sii` (canonical text).
pub fn sii_key(sii: &str) -> SiiKey {
    let d = Sha256::digest(sii.as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

/// An SSI, as the rules keep it: the first 8 bytes of SHA-256 of its text.
pub fn ssi_tag(ssi: &str) -> u64 {
    let d = Sha256::digest(ssi.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

/// "Never expires", in [`Mapping::expires`].
pub const NEVER: u64 = u64::MAX;

/// The keys are already uniformly distributed digests: mixing their first bytes is enough, and
/// much cheaper than SipHash on the hot path.
#[derive(Default)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
}

type Fast = BuildHasherDefault<DigestHasher>;

/// One current mapping of an SII.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The MSP (interned id).
    pub msp: u32,
    /// The SSI (see [`ssi_tag`]).
    pub ssi: u64,
    /// The claim's index.
    pub index: u64,
    /// The claim's expiry, or [`NEVER`].
    pub expires: u64,
}

/// The distinct SIIs one MSP claimed within its window, by time and by SII.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Window {
    by_time: BTreeSet<(u64, SiiKey)>,
    latest: HashMap<SiiKey, u64, Fast>,
}

/// One change to the rule state, as journaled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// MSP name `name` gets id `id` (ids are dense, in order of first appearance).
    Msp {
        /// The id.
        id: u32,
        /// The name.
        name: String,
    },
    /// A claim, for `conflicting-claim`: drop the SII's mappings that expired before `time`,
    /// replace the MSP's mapping to the same SSI, add this one.
    Claim {
        /// The SII.
        sii: SiiKey,
        /// The MSP.
        msp: u32,
        /// The SSI.
        ssi: u64,
        /// The claim's index.
        index: u64,
        /// The claim's expiry, or [`NEVER`].
        expires: u64,
        /// The claim's time.
        time: u64,
    },
    /// A revocation of one mapping.
    Revoke {
        /// The SII.
        sii: SiiKey,
        /// The MSP.
        msp: u32,
        /// The SSI.
        ssi: u64,
    },
    /// An opt-out: every mapping of the SII goes.
    Optout {
        /// The SII.
        sii: SiiKey,
    },
    /// A claim, for `claim-burst`: the MSP's window forgets SIIs last claimed at or before
    /// `floor`, then records `sii` at `time`.
    Burst {
        /// The MSP.
        msp: u32,
        /// The SII.
        sii: SiiKey,
        /// The claim's time.
        time: u64,
        /// The window's lower bound (exclusive).
        floor: u64,
    },
    /// After a `claim-burst` alert the MSP's window starts over.
    BurstClear {
        /// The MSP.
        msp: u32,
    },
}

/// What applying an [`Op`] found, for the rules to decide on alerts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// For a claim: the other MSPs' current mappings of the SII, as (MSP id, index).
    pub others: Vec<(u32, u64)>,
    /// For a burst step: the distinct SIIs now in the MSP's window.
    pub window: usize,
}

/// A journal record or a snapshot that does not decode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The bytes are not what this version writes (damaged, or another version).
    #[error("rule state {what}: {reason}")]
    Damaged {
        /// Which record or file.
        what: String,
        /// Why it does not decode.
        reason: String,
    },
    /// The snapshot file could not be read or written.
    #[error("rule state snapshot {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

type Maps = SmallVec<[Mapping; 1]>;

/// The SIIs' mappings in 16 maps chosen by the key's first byte: a hash map that doubles holds
/// its old and new tables at once, and one map of a million SIIs would briefly need 1.5 times its
/// size; sixteen grow one at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Shards(Vec<HashMap<SiiKey, Maps, Fast>>);

impl Default for Shards {
    fn default() -> Self {
        Shards((0..16).map(|_| HashMap::default()).collect())
    }
}

impl Shards {
    fn shard(&self, k: &SiiKey) -> &HashMap<SiiKey, Maps, Fast> {
        &self.0[usize::from(k[0] & 15)]
    }

    fn shard_mut(&mut self, k: &SiiKey) -> &mut HashMap<SiiKey, Maps, Fast> {
        &mut self.0[usize::from(k[0] & 15)]
    }

    fn len(&self) -> usize {
        self.0.iter().map(HashMap::len).sum()
    }

    fn iter(&self) -> impl Iterator<Item = (&SiiKey, &Maps)> {
        self.0.iter().flat_map(|m| m.iter())
    }
}

/// The rule state of one log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleState {
    position: u64,
    msp_names: Vec<String>,
    msp_ids: HashMap<String, u32>,
    siis: Shards,
    windows: HashMap<u32, Window>,
}

impl RuleState {
    /// The log size the state describes (entries `0..position` applied).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Records that the entries up to `position` are applied.
    pub fn set_position(&mut self, position: u64) {
        self.position = position;
    }

    /// The name of MSP `id`.
    pub fn msp_name(&self, id: u32) -> &str {
        self.msp_names
            .get(id as usize)
            .map(String::as_str)
            .unwrap_or("?")
    }

    /// The id of MSP `name`, when the state has seen it.
    pub fn known_msp(&self, name: &str) -> Option<u32> {
        self.msp_ids.get(name).copied()
    }

    /// The id of MSP `name`; a new name is interned and its [`Op::Msp`] appended to `journal`.
    pub fn msp_id(&mut self, name: &str, journal: &mut Vec<u8>) -> u32 {
        if let Some(&id) = self.msp_ids.get(name) {
            return id;
        }
        let op = Op::Msp {
            id: self.msp_names.len() as u32,
            name: name.to_string(),
        };
        encode_op(&op, journal);
        self.apply(&op);
        self.msp_names.len() as u32 - 1
    }

    /// The SIIs with at least one current mapping.
    pub fn mapped_siis(&self) -> usize {
        self.siis.len()
    }

    /// The current mappings of `sii`.
    pub fn mappings(&self, sii: &SiiKey) -> &[Mapping] {
        self.siis
            .shard(sii)
            .get(sii)
            .map(|m| m.as_slice())
            .unwrap_or(&[])
    }

    /// Applies one operation (live, after journaling it, or in replay).
    pub fn apply(&mut self, op: &Op) -> Applied {
        let mut out = Applied::default();
        match op {
            Op::Msp { id, name } => {
                // Ids are dense: a replayed definition of a known id is a no-op.
                if *id as usize == self.msp_names.len() {
                    self.msp_names.push(name.clone());
                    self.msp_ids.insert(name.clone(), *id);
                }
            }
            Op::Claim {
                sii,
                msp,
                ssi,
                index,
                expires,
                time,
            } => {
                let maps = self.siis.shard_mut(sii).entry(*sii).or_default();
                maps.retain(|m| m.expires >= *time);
                out.others = maps
                    .iter()
                    .filter(|m| m.msp != *msp)
                    .map(|m| (m.msp, m.index))
                    .collect();
                maps.retain(|m| !(m.msp == *msp && m.ssi == *ssi));
                maps.push(Mapping {
                    msp: *msp,
                    ssi: *ssi,
                    index: *index,
                    expires: *expires,
                });
            }
            Op::Revoke { sii, msp, ssi } => {
                let shard = self.siis.shard_mut(sii);
                if let Some(maps) = shard.get_mut(sii) {
                    maps.retain(|m| !(m.msp == *msp && m.ssi == *ssi));
                    if maps.is_empty() {
                        shard.remove(sii);
                    }
                }
            }
            Op::Optout { sii } => {
                self.siis.shard_mut(sii).remove(sii);
            }
            Op::Burst {
                msp,
                sii,
                time,
                floor,
            } => {
                let w = self.windows.entry(*msp).or_default();
                while let Some(&(t, k)) = w.by_time.first() {
                    if t > *floor {
                        break;
                    }
                    w.by_time.pop_first();
                    w.latest.remove(&k);
                }
                if let Some(old) = w.latest.insert(*sii, *time) {
                    w.by_time.remove(&(old, *sii));
                }
                w.by_time.insert((*time, *sii));
                out.window = w.latest.len();
            }
            Op::BurstClear { msp } => {
                self.windows.remove(msp);
            }
        }
        out
    }

    /// Replays one journal record (the operations of the step that ended at `position`).
    pub fn replay(&mut self, record: &[u8], position: u64) -> Result<(), StateError> {
        let mut r = Reader::new(record, format!("journal record at {position}"));
        while !r.done() {
            let op = decode_op(&mut r)?;
            self.apply(&op);
        }
        self.position = position;
        Ok(())
    }

    /// The snapshot bytes: a versioned header, the state, and a SHA-256 trailer that makes a torn
    /// or damaged file detectable.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut out = Summed::new(Vec::new());
        // Writing to a Vec cannot fail.
        let _ = self.write_snapshot_to(&mut out);
        out.finish().unwrap_or_default()
    }

    /// Streams the snapshot body to `w` (a snapshot of millions of SIIs is never held in memory
    /// whole); the caller adds the trailer.
    fn write_snapshot_to<W: std::io::Write>(&self, w: &mut Summed<W>) -> std::io::Result<()> {
        let mut b = Vec::with_capacity(4096);
        let flush = |w: &mut Summed<W>, b: &mut Vec<u8>| -> std::io::Result<()> {
            w.write_all(b)?;
            b.clear();
            Ok(())
        };
        b.extend_from_slice(SNAPSHOT_MAGIC);
        put_u64(&mut b, self.position);
        put_u32(&mut b, self.msp_names.len() as u32);
        for n in &self.msp_names {
            put_str(&mut b, n);
        }
        put_u64(&mut b, self.siis.len() as u64);
        for (k, maps) in self.siis.iter() {
            b.extend_from_slice(k);
            put_u32(&mut b, maps.len() as u32);
            for m in maps {
                put_u32(&mut b, m.msp);
                put_u64(&mut b, m.ssi);
                put_u64(&mut b, m.index);
                put_u64(&mut b, m.expires);
            }
            if b.len() >= 4000 {
                flush(w, &mut b)?;
            }
        }
        put_u32(&mut b, self.windows.len() as u32);
        for (msp, win) in &self.windows {
            put_u32(&mut b, *msp);
            put_u64(&mut b, win.by_time.len() as u64);
            for (t, k) in &win.by_time {
                put_u64(&mut b, *t);
                b.extend_from_slice(k);
                if b.len() >= 4000 {
                    flush(w, &mut b)?;
                }
            }
        }
        flush(w, &mut b)
    }

    /// Parses [`RuleState::encode_snapshot`] bytes.
    pub fn decode_snapshot(bytes: &[u8], what: &str) -> Result<RuleState, StateError> {
        let damaged = |reason: &str| StateError::Damaged {
            what: what.to_string(),
            reason: reason.to_string(),
        };
        let body = checked_body(bytes).map_err(|e| damaged(&e.0))?;
        let rest = body
            .strip_prefix(SNAPSHOT_MAGIC)
            .ok_or_else(|| damaged("not a version 1 rule-state snapshot"))?;
        let mut r = Reader::new(rest, what.to_string());
        let mut s = RuleState {
            position: r.u64()?,
            ..RuleState::default()
        };
        for id in 0..r.u32()? {
            let name = r.string()?;
            s.apply(&Op::Msp { id, name });
        }
        for _ in 0..r.u64()? {
            let k = r.key()?;
            let n = r.u32()?;
            let mut maps = SmallVec::new();
            for _ in 0..n {
                maps.push(Mapping {
                    msp: r.u32()?,
                    ssi: r.u64()?,
                    index: r.u64()?,
                    expires: r.u64()?,
                });
            }
            s.siis.shard_mut(&k).insert(k, maps);
        }
        for _ in 0..r.u32()? {
            let msp = r.u32()?;
            let mut w = Window::default();
            for _ in 0..r.u64()? {
                let t = r.u64()?;
                let k = r.key()?;
                w.by_time.insert((t, k));
                w.latest.insert(k, t);
            }
            s.windows.insert(msp, w);
        }
        if !r.done() {
            return Err(damaged("trailing bytes"));
        }
        Ok(s)
    }

    /// Reads the snapshot at `path`; `None` when there is none.
    pub fn read_snapshot(path: &Path) -> Result<Option<RuleState>, StateError> {
        match read_snapshot_file(path) {
            Ok(Some(b)) => RuleState::decode_snapshot(&b, &path.display().to_string()).map(Some),
            Ok(None) => Ok(None),
            Err(source) => Err(StateError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Writes the snapshot crash-safely (temporary file, fsync, rename, fsync of the folder) and
    /// returns its size.
    pub fn write_snapshot(&self, path: &Path) -> Result<u64, StateError> {
        write_snapshot_file(path, |w| self.write_snapshot_to(w)).map_err(|source| StateError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

const SNAPSHOT_MAGIC: &[u8] = b"mimi-ledger monitor rule state v1\n";

const TAG_MSP: u8 = 1;
const TAG_CLAIM: u8 = 2;
const TAG_REVOKE: u8 = 3;
const TAG_OPTOUT: u8 = 4;
const TAG_BURST: u8 = 5;
const TAG_BURST_CLEAR: u8 = 6;

fn put_str(b: &mut Vec<u8>, s: &str) {
    put_u32(b, s.len() as u32);
    b.extend_from_slice(s.as_bytes());
}

/// Appends the journal form of `op` to `out`.
pub fn encode_op(op: &Op, out: &mut Vec<u8>) {
    match op {
        Op::Msp { id, name } => {
            out.push(TAG_MSP);
            put_u32(out, *id);
            put_str(out, name);
        }
        Op::Claim {
            sii,
            msp,
            ssi,
            index,
            expires,
            time,
        } => {
            out.push(TAG_CLAIM);
            out.extend_from_slice(sii);
            put_u32(out, *msp);
            put_u64(out, *ssi);
            put_u64(out, *index);
            put_u64(out, *expires);
            put_u64(out, *time);
        }
        Op::Revoke { sii, msp, ssi } => {
            out.push(TAG_REVOKE);
            out.extend_from_slice(sii);
            put_u32(out, *msp);
            put_u64(out, *ssi);
        }
        Op::Optout { sii } => {
            out.push(TAG_OPTOUT);
            out.extend_from_slice(sii);
        }
        Op::Burst {
            msp,
            sii,
            time,
            floor,
        } => {
            out.push(TAG_BURST);
            put_u32(out, *msp);
            out.extend_from_slice(sii);
            put_u64(out, *time);
            put_u64(out, *floor);
        }
        Op::BurstClear { msp } => {
            out.push(TAG_BURST_CLEAR);
            put_u32(out, *msp);
        }
    }
}

fn decode_op(r: &mut Reader<'_>) -> Result<Op, StateError> {
    Ok(match r.u8()? {
        TAG_MSP => Op::Msp {
            id: r.u32()?,
            name: r.string()?,
        },
        TAG_CLAIM => Op::Claim {
            sii: r.key()?,
            msp: r.u32()?,
            ssi: r.u64()?,
            index: r.u64()?,
            expires: r.u64()?,
            time: r.u64()?,
        },
        TAG_REVOKE => Op::Revoke {
            sii: r.key()?,
            msp: r.u32()?,
            ssi: r.u64()?,
        },
        TAG_OPTOUT => Op::Optout { sii: r.key()? },
        TAG_BURST => Op::Burst {
            msp: r.u32()?,
            sii: r.key()?,
            time: r.u64()?,
            floor: r.u64()?,
        },
        TAG_BURST_CLEAR => Op::BurstClear { msp: r.u32()? },
        t => return Err(r.damaged(&format!("unknown operation tag {t}"))),
    })
}

/// The shared cursor ([`codec::Reader`]), naming what it reads in its errors.
struct Reader<'a> {
    r: codec::Reader<'a>,
    what: String,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8], what: String) -> Self {
        Reader {
            r: codec::Reader::new(b),
            what,
        }
    }

    fn done(&self) -> bool {
        self.r.done()
    }

    fn damaged(&self, reason: &str) -> StateError {
        StateError::Damaged {
            what: self.what.clone(),
            reason: reason.to_string(),
        }
    }

    fn map<T>(&self, r: Result<T, Damaged>) -> Result<T, StateError> {
        r.map_err(|e| self.damaged(&e.0))
    }

    fn u8(&mut self) -> Result<u8, StateError> {
        let r = self.r.u8();
        self.map(r)
    }

    fn u32(&mut self) -> Result<u32, StateError> {
        let r = self.r.u32();
        self.map(r)
    }

    fn u64(&mut self) -> Result<u64, StateError> {
        let r = self.r.u64();
        self.map(r)
    }

    fn key(&mut self) -> Result<SiiKey, StateError> {
        let r = self.r.array();
        self.map(r)
    }

    fn string(&mut self) -> Result<String, StateError> {
        let n = self.u32()? as usize;
        let r = self.r.take(n);
        let b = self.map(r)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.damaged("MSP name is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(
        s: &mut RuleState,
        j: &mut Vec<u8>,
        sii: &str,
        msp: &str,
        ssi: &str,
        index: u64,
    ) -> Applied {
        let msp = s.msp_id(msp, j);
        let op = Op::Claim {
            sii: sii_key(sii),
            msp,
            ssi: ssi_tag(ssi),
            index,
            expires: NEVER,
            time: 100 + index,
        };
        encode_op(&op, j);
        s.apply(&op)
    }

    #[test]
    fn conflicts_revokes_and_optouts() {
        let mut s = RuleState::default();
        let mut j = Vec::new();
        assert!(claim(&mut s, &mut j, "tel:+1", "a", "x", 1)
            .others
            .is_empty());
        assert!(
            claim(&mut s, &mut j, "tel:+1", "a", "y", 2)
                .others
                .is_empty(),
            "one MSP may map an SII twice"
        );
        let b = s.msp_id("b", &mut j);
        let got = claim(&mut s, &mut j, "tel:+1", "b", "z", 3).others;
        assert_eq!(got, vec![(0, 1), (0, 2)]);
        assert_eq!(s.msp_name(b), "b");
        let op = Op::Revoke {
            sii: sii_key("tel:+1"),
            msp: 0,
            ssi: ssi_tag("x"),
        };
        encode_op(&op, &mut j);
        s.apply(&op);
        assert_eq!(s.mappings(&sii_key("tel:+1")).len(), 2);
        let op = Op::Optout {
            sii: sii_key("tel:+1"),
        };
        encode_op(&op, &mut j);
        s.apply(&op);
        assert_eq!(s.mapped_siis(), 0);
        // The journal replays to the same state.
        let mut r = RuleState::default();
        r.replay(&j, 9).unwrap();
        s.set_position(9);
        assert_eq!(r, s);
    }

    #[test]
    fn expired_mappings_do_not_conflict() {
        let mut s = RuleState::default();
        let k = sii_key("tel:+1");
        s.apply(&Op::Claim {
            sii: k,
            msp: 0,
            ssi: 1,
            index: 1,
            expires: 150,
            time: 100,
        });
        let a = s.apply(&Op::Claim {
            sii: k,
            msp: 1,
            ssi: 2,
            index: 2,
            expires: NEVER,
            time: 151,
        });
        assert!(a.others.is_empty());
        assert_eq!(s.mappings(&k).len(), 1);
    }

    #[test]
    fn burst_window_expires_by_time_and_counts_distinct_siis() {
        let mut s = RuleState::default();
        let burst = |s: &mut RuleState, sii: &str, time: u64| {
            s.apply(&Op::Burst {
                msp: 0,
                sii: sii_key(sii),
                time,
                floor: time.saturating_sub(10),
            })
            .window
        };
        assert_eq!(burst(&mut s, "a", 100), 1);
        assert_eq!(burst(&mut s, "b", 105), 2);
        assert_eq!(
            burst(&mut s, "a", 108),
            2,
            "a again: still distinct count 2"
        );
        assert_eq!(
            burst(&mut s, "c", 112),
            3,
            "a was refreshed at 108; b (105) is within 10 s"
        );
        assert_eq!(burst(&mut s, "d", 116), 3, "b (105 <= 106) expired");
        assert_eq!(burst(&mut s, "e", 200), 1);
        s.apply(&Op::BurstClear { msp: 0 });
        assert_eq!(burst(&mut s, "f", 201), 1);
    }

    #[test]
    fn snapshot_round_trip_and_damage_detected() {
        let mut s = RuleState::default();
        let mut j = Vec::new();
        for i in 0..50u64 {
            let msp = if i % 3 == 0 { "a" } else { "b" };
            claim(&mut s, &mut j, &format!("tel:+1{}", i % 20), msp, "x", i);
            let id = s.msp_id(msp, &mut j);
            s.apply(&Op::Burst {
                msp: id,
                sii: sii_key(&format!("tel:+1{i}")),
                time: i,
                floor: i.saturating_sub(5),
            });
        }
        s.set_position(50);
        let bytes = s.encode_snapshot();
        assert_eq!(RuleState::decode_snapshot(&bytes, "t").unwrap(), s);
        for i in [0, 40, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(
                RuleState::decode_snapshot(&bad, "t").is_err(),
                "flip at {i}"
            );
        }
        assert!(RuleState::decode_snapshot(&bytes[..bytes.len() - 1], "t").is_err());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r").join("x.snap");
        assert_eq!(RuleState::read_snapshot(&p).unwrap(), None);
        s.write_snapshot(&p).unwrap();
        assert_eq!(RuleState::read_snapshot(&p).unwrap(), Some(s));
    }

    #[test]
    fn damaged_journal_is_an_error_not_a_panic() {
        let mut j = Vec::new();
        encode_op(
            &Op::Revoke {
                sii: [1; 16],
                msp: 0,
                ssi: 2,
            },
            &mut j,
        );
        let mut s = RuleState::default();
        for n in 0..j.len() {
            assert!(s.replay(&j[..n], 1).is_err() || n == 0);
        }
        assert!(s.replay(&[99], 1).is_err());
    }

    /// One step of a generated history of one log: (kind 0 claim, 1 revoke, 2 opt-out; SII; MSP;
    /// SSI; time offset; expiry offset, if any).
    type Event = (u8, usize, usize, usize, u64, Option<u64>);

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// The digest-form fold the rules keep (driven through the rules' own `Step`, so the
        /// translation of entries into operations is the production one) agrees with the core's
        /// `state::fold` on every SII: the same current mappings (MSP, SSI, index), in the same
        /// order, for a clock at or after every entry.
        #[test]
        fn digest_fold_agrees_with_the_core_fold(
            events in proptest::collection::vec(
                (0u8..3, 0usize..2, 0usize..3, 0usize..2, 0u64..100, proptest::option::of(0u64..150)),
                1..40,
            ),
            later in 0u64..200,
        ) {
            digest_fold_case(&events, later)?;
        }
    }

    fn digest_fold_case(
        events: &[Event],
        later: u64,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        use crate::config::Rules;
        use crate::rules::{RuleSet, Step};
        use crate::store::Store;
        use crate::verify::Verdict;
        use ledger_core::entry::{Claim, Entry, Leaf, Role};
        use ledger_core::sii::{Name, Sii, Ssi};
        use ledger_core::state::fold;
        use ledger_core::testkit::{optout, revoke, test_key};

        const SIIS: [&str; 2] = ["tel:+14155550100", "mailto:bob@example.com"];
        const MSPS: [&str; 3] = ["msp-a.example", "msp-b.example", "msp-c.example"];
        let t0 = 1_764_158_400u64;
        let msps: Vec<_> = MSPS.iter().map(|m| test_key(m)).collect();
        let prover = test_key("prover.example");
        let ssi = |m: usize, s: usize| format!("mimi://{}/u/{s}", MSPS[m]);
        let mut leaves: Vec<Leaf> = Vec::new();
        let mut now = t0;
        for &(kind, i, m, s, dt, exp) in events {
            let time = t0 + dt;
            now = now.max(time);
            let leaf = match kind {
                0 => {
                    let entry = Entry::Claim(Claim {
                        sii: Sii::parse(SIIS[i]).expect("sii"),
                        msp: Name::parse(MSPS[m]).expect("name"),
                        ssi: Ssi::parse(&ssi(m, s)).expect("ssi"),
                        time,
                        expires: exp.map(|e| time + e),
                        tags: Vec::new(),
                        attestation: None,
                    });
                    Leaf::sign(entry, &msps[m]).expect("claim signs")
                }
                1 => revoke(&msps[m], MSPS[m], SIIS[i], &ssi(m, s), time, None),
                _ => optout(&prover, SIIS[i], time),
            };
            leaves.push(leaf);
        }
        let now = now + later;

        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let rules = RuleSet {
            watches: Vec::new(),
            rules: Rules::default(),
        };
        let mut state = RuleState::default();
        {
            let mut step = Step::new(&store, &rules, "example.com/log", &mut state);
            for (index, leaf) in leaves.iter().enumerate() {
                let role = match leaf.entry() {
                    Entry::Optout(_) => Role::Prover,
                    _ => Role::Msp,
                };
                let verdict = Verdict::Good {
                    leaf: leaf.clone(),
                    signer_role: Some(role),
                    attested_by: None,
                };
                step.apply(index as u64, &verdict).expect("rules apply");
            }
        }
        for sii in SIIS {
            let parsed = Sii::parse(sii).expect("sii");
            let core = fold(
                leaves
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.entry().sii() == Some(&parsed))
                    .map(|(i, l)| (i as u64, l.entry())),
                now,
            );
            let want: Vec<(String, u64, u64)> = core
                .mappings
                .iter()
                .map(|m| (m.msp.to_string(), ssi_tag(m.ssi.as_str()), m.index))
                .collect();
            let got: Vec<(String, u64, u64)> = state
                .mappings(&sii_key(sii))
                .iter()
                .filter(|m| m.expires >= now)
                .map(|m| (state.msp_name(m.msp).to_string(), m.ssi, m.index))
                .collect();
            proptest::prop_assert_eq!(got, want, "{} at {}", sii, now);
        }
        Ok(())
    }
}
