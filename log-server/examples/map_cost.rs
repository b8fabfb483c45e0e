//! What the map (SPEC §9) costs the sequencer per batch, against the same commits without it:
//! `cargo run --release -p log-server --example map_cost -- [keys] [batch]`. Prints the time of
//! the map update (staging and committing the core's in-memory `MapTree`, as the log does) and of
//! the store commit (writes + sync) with and without the touched keys' values.

use std::time::{Duration, Instant};

use ledger_core::map::{MapAddition, MapTree};
use ledger_core::TreeHash;
use log_server::storage::sled::SledIndex;
use log_server::storage::{Commit, Meta};

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let keys = args.first().copied().unwrap_or(200_000);
    let batch = args.get(1).copied().unwrap_or(256);
    let th = TreeHash::Blake3;
    for with_map in [false, true] {
        let dir = tempfile::tempdir().expect("tmp");
        let s = SledIndex::open(dir.path(), 256 << 20, false).expect("open");
        s.create(
            &Meta {
                origin: "o".into(),
                hash: th,
                vkey: "v".into(),
                created: 0,
            },
            b"cp0",
        )
        .expect("create");
        let (mut t_update, mut t_commit, mut nodes) = (Duration::ZERO, Duration::ZERO, 0usize);
        let mut index = 0u64;
        let mut tree = MapTree::new(th).with_history(16);
        let started = Instant::now();
        while index < keys {
            let additions: Vec<MapAddition> = (index..index + batch)
                .map(|i| MapAddition {
                    key: th.leaf_hash(&i.to_be_bytes()),
                    index: i,
                    leaf_hash: th.leaf_hash(&i.to_le_bytes()),
                })
                .collect();
            let t0 = Instant::now();
            let staged = if with_map {
                Some(tree.stage(&additions).expect("stage"))
            } else {
                None
            };
            let values = staged
                .as_ref()
                .map_or(Vec::new(), |st| st.values().to_vec());
            nodes += staged.as_ref().map_or(0, |st| st.nodes_written());
            t_update += t0.elapsed();
            // A stand-in for the batch's other writes: one leaf-hash index record per leaf.
            let leaves = additions
                .iter()
                .map(|a| log_server::storage::NewLeaf {
                    index: a.index,
                    bytes: vec![b'x'; 600],
                    leaf_hash: a.leaf_hash,
                    sii: None,
                    enroll: false,
                })
                .collect();
            let t1 = Instant::now();
            s.commit(&Commit {
                leaves,
                hashes_start: index * 2,
                hashes: vec![[7; 32]; batch as usize * 2],
                size: index + batch,
                checkpoint: b"cp".to_vec(),
                map: values,
            })
            .expect("commit");
            t_commit += t1.elapsed();
            if let Some(st) = staged {
                let t2 = Instant::now();
                tree.commit(st, index + batch).expect("map commit");
                t_update += t2.elapsed();
            }
            index += batch;
        }
        let batches = (keys / batch) as f64;
        println!(
            "map={with_map} keys={keys} batch={batch}: total {:.2?}, per batch: update {:.0} µs, commit {:.0} µs, {:.0} node writes; disk {} MB",
            started.elapsed(),
            t_update.as_micros() as f64 / batches,
            t_commit.as_micros() as f64 / batches,
            nodes as f64 / batches,
            s.size_on_disk().unwrap_or(0) >> 20
        );
    }
}
