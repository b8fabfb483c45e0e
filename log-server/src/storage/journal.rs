//! The map's values as a journal (SPEC §9): one record per batch with the new values of the map
//! keys it touched, appended to the flat file `<data>/map-journal` beside `hashes` and synced with
//! it before the index commit; the index's head records the journal's length, so a record is part
//! of the log exactly when its batch is (recovery cuts the file back to that length).
//!
//! Why a file and not index records: the journal is written once, in order, and only ever read
//! whole at start (replayed, later values winning, to rebuild the map in memory: [`crate::map`]),
//! so a key-value store adds nothing but its space amplification — measured at about 3.7× the
//! 72 bytes per key of a record in sled.
//!
//! A record: `u64be(tree size after the batch) ‖ u32be(n) ‖ n × (key ‖ u64be(count) ‖ chain)`.

use std::collections::HashMap;

use ledger_core::map::MapValue;
use ledger_core::Hash;

use super::StorageError;

/// Bytes of one item: key, count, chain.
const ITEM: usize = 72;
/// Bytes of a record's header: size, item count.
const HEADER: usize = 12;

fn corrupt(at: u64, reason: impl Into<String>) -> StorageError {
    StorageError::Corrupt {
        key: format!("map-journal at byte {at}"),
        reason: reason.into(),
    }
}

/// The record of the batch that ends at tree size `size` with the map's new `values`.
pub fn encode(size: u64, values: &[(Hash, MapValue)]) -> Result<Vec<u8>, StorageError> {
    let n = u32::try_from(values.len()).map_err(|_| corrupt(0, "too many values for a record"))?;
    let mut b = Vec::with_capacity(HEADER + values.len() * ITEM);
    b.extend_from_slice(&size.to_be_bytes());
    b.extend_from_slice(&n.to_be_bytes());
    for (key, v) in values {
        b.extend_from_slice(key);
        b.extend_from_slice(&v.count.to_be_bytes());
        b.extend_from_slice(&v.chain);
    }
    Ok(b)
}

/// Replays the whole journal `data`: every key with its last value, in key order. A journal that
/// does not end at a record boundary, or whose sizes do not grow, is corrupt.
pub fn replay(data: &[u8]) -> Result<Vec<(Hash, MapValue)>, StorageError> {
    let mut values: HashMap<Hash, MapValue> = HashMap::new();
    let mut rest = data;
    let mut at = 0u64;
    let mut last_size = 0u64;
    while !rest.is_empty() {
        let (header, tail) = rest
            .split_first_chunk::<HEADER>()
            .ok_or_else(|| corrupt(at, "a truncated record header"))?;
        let (size, n) = header.split_at(8);
        let size = u64::from_be_bytes(size.try_into().map_err(|_| corrupt(at, "size"))?);
        let n = u32::from_be_bytes(n.try_into().map_err(|_| corrupt(at, "count"))?) as usize;
        if size <= last_size && at > 0 {
            return Err(corrupt(at, format!("size {size} after size {last_size}")));
        }
        let len = n
            .checked_mul(ITEM)
            .ok_or_else(|| corrupt(at, "an impossible item count"))?;
        let (items, tail) = tail
            .split_at_checked(len)
            .ok_or_else(|| corrupt(at, format!("a record of {n} items is truncated")))?;
        for item in items.chunks_exact(ITEM) {
            let (key, rest) = item.split_at(32);
            let (count, chain) = rest.split_at(8);
            let (Ok(key), Ok(count), Ok(chain)) = (
                Hash::try_from(key),
                <[u8; 8]>::try_from(count),
                Hash::try_from(chain),
            ) else {
                return Err(corrupt(at, "an item of the wrong length"));
            };
            values.insert(
                key,
                MapValue {
                    count: u64::from_be_bytes(count),
                    chain,
                },
            );
        }
        at += (HEADER + len) as u64;
        last_size = size;
        rest = tail;
    }
    let mut out: Vec<(Hash, MapValue)> = values.into_iter().collect();
    out.sort_unstable_by_key(|(k, _)| *k);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(count: u64, chain: u8) -> MapValue {
        MapValue {
            count,
            chain: [chain; 32],
        }
    }

    #[test]
    fn later_values_win_and_damage_is_refused() {
        let mut j = encode(4, &[([0x80; 32], v(2, 5))]).expect("encode");
        j.extend(encode(6, &[([0x80; 32], v(3, 6)), ([0x01; 32], v(1, 1))]).expect("encode"));
        j.extend(encode(7, &[]).expect("encode"));
        assert_eq!(
            replay(&j).expect("replay"),
            vec![([0x01; 32], v(1, 1)), ([0x80; 32], v(3, 6))]
        );
        assert_eq!(replay(&[]).expect("empty"), Vec::new());
        for cut in [1, HEADER - 1, HEADER + 10, j.len() - HEADER - 1] {
            assert!(replay(&j[..cut]).is_err(), "cut at {cut}");
        }
        let mut shrinking = encode(6, &[]).expect("encode");
        shrinking.extend(encode(4, &[]).expect("encode"));
        assert!(replay(&shrinking).is_err());
    }
}
