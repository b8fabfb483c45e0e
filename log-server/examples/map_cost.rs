//! What the map (SPEC §9) costs the sequencer per batch, against the same commits without it:
//! `cargo run --release -p log-server --example map_cost -- [keys] [batch]`. Prints the time of
//! the map update (over the nodes in memory, as the log keeps them) and of the commit (writes +
//! sync) with and without the touched keys' values.

use std::time::{Duration, Instant};

use ledger_core::map::{self, MapAddition};
use ledger_core::TreeHash;
use log_server::storage::sled::SledStorage;
use log_server::storage::{Commit, Meta, Storage};

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
        let s = SledStorage::open(dir.path(), 256 << 20, false).expect("open");
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
        let mut mem = MemNodes::default();
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
            let (writes, values) = if with_map {
                let up = map::update(th, &mem, &additions).expect("update");
                let touched: std::collections::HashSet<_> =
                    additions.iter().map(|a| a.key).collect();
                let values: Vec<_> = up
                    .writes
                    .iter()
                    .filter_map(|(_, n)| match n {
                        map::MapNode::Leaf { key, value } if touched.contains(key) => {
                            Some((*key, *value))
                        }
                        _ => None,
                    })
                    .collect();
                (up.writes, values)
            } else {
                (Vec::new(), Vec::new())
            };
            t_update += t0.elapsed();
            nodes += writes.len();
            for (id, n) in writes {
                mem.insert(id, n);
            }
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

/// The map's nodes in memory, as the log keeps them.
#[derive(Default)]
struct MemNodes(std::collections::HashMap<map::NodeId, map::MapNode>);

impl MemNodes {
    fn insert(&mut self, id: map::NodeId, n: map::MapNode) {
        self.0.insert(id, n);
    }
}

impl map::MapNodeReader for MemNodes {
    fn read_node(&self, id: &map::NodeId) -> Result<Option<map::MapNode>, map::MapError> {
        Ok(self.0.get(id).copied())
    }
}
