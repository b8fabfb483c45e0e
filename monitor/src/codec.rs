//! The byte form shared by the monitor's journal records and snapshot files (the rule state's and
//! the map's): little-endian integers read through a bounds-checked cursor, and snapshot files
//! written crash-safely with a SHA-256 trailer that makes a torn or damaged file detectable.

use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Why bytes do not decode: what was being read is the caller's to say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Damaged(pub(crate) String);

/// Appends `v`, little-endian.
pub(crate) fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}

/// Appends `v`, little-endian.
pub(crate) fn put_u64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_le_bytes());
}

/// A bounds-checked cursor over journal or snapshot bytes.
pub(crate) struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Reader { b }
    }

    pub(crate) fn done(&self) -> bool {
        self.b.is_empty()
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Damaged> {
        if self.b.len() < n {
            return Err(Damaged("truncated".into()));
        }
        let (head, tail) = self.b.split_at(n);
        self.b = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], Damaged> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Damaged> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Damaged> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Damaged> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

/// A writer that hashes what passes through it (the snapshot's trailer).
pub(crate) struct Summed<W> {
    inner: W,
    sum: Sha256,
}

impl<W: Write> Summed<W> {
    pub(crate) fn new(inner: W) -> Self {
        Summed {
            inner,
            sum: Sha256::new(),
        }
    }

    pub(crate) fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.sum.update(b);
        self.inner.write_all(b)
    }

    /// Writes the SHA-256 of everything written so far, and flushes.
    pub(crate) fn finish(mut self) -> std::io::Result<W> {
        let sum = self.sum.finalize_reset();
        self.inner.write_all(&sum)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

/// The body of snapshot `bytes` once its SHA-256 trailer checks.
pub(crate) fn checked_body(bytes: &[u8]) -> Result<&[u8], Damaged> {
    let body_len = bytes
        .len()
        .checked_sub(32)
        .ok_or_else(|| Damaged("shorter than its checksum".into()))?;
    let (body, sum) = bytes.split_at(body_len);
    if Sha256::digest(body).as_slice() != sum {
        return Err(Damaged("checksum mismatch (torn or damaged file)".into()));
    }
    Ok(body)
}

/// Writes a snapshot file crash-safely — `write` streams the body into a temporary file, the
/// trailer follows, then fsync, rename over `path`, fsync of the folder — and returns its size.
pub(crate) fn write_snapshot_file(
    path: &Path,
    write: impl FnOnce(&mut Summed<&mut std::io::BufWriter<std::fs::File>>) -> std::io::Result<()>,
) -> std::io::Result<u64> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let len = {
        let f = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        let mut summed = Summed::new(&mut w);
        write(&mut summed)?;
        summed.finish()?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        f.metadata()?.len()
    };
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all())?;
    Ok(len)
}

/// Reads the snapshot file at `path`; `None` when there is none.
pub(crate) fn read_snapshot_file(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_refuses_to_read_past_the_end() {
        let mut b = Vec::new();
        put_u32(&mut b, 7);
        put_u64(&mut b, 9);
        let mut r = Reader::new(&b);
        assert_eq!(r.u32(), Ok(7));
        assert_eq!(r.u64(), Ok(9));
        assert!(r.done());
        assert!(r.u8().is_err());
        assert!(Reader::new(&[1, 2, 3]).u32().is_err());
    }

    #[test]
    fn snapshot_files_round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub").join("x.snap");
        assert_eq!(read_snapshot_file(&p).unwrap(), None);
        let len = write_snapshot_file(&p, |w| w.write_all(b"hello")).unwrap();
        assert_eq!(len, 5 + 32);
        let bytes = read_snapshot_file(&p).unwrap().unwrap();
        assert_eq!(checked_body(&bytes), Ok(&b"hello"[..]));
        let mut bad = bytes.clone();
        bad[1] ^= 1;
        assert!(checked_body(&bad).is_err());
        assert!(checked_body(&bytes[..20]).is_err());
        assert!(!p.with_extension("tmp").exists());
    }
}
