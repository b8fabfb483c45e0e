//! The HTTP helpers of [`TestLog`]: SPEC §5 requests answered with the `ledger_core::api` wire
//! types, [`TestLog::verify_tree`], which recomputes a checkpoint's root from the tiles, and
//! [`assert_map_rebuilds`], which recomputes every map leaf's root from the leaves before it.

use std::time::Duration;

use ledger_core::api::{
    ConsistencyProof, EntriesPage, InclusionProof, Info, LookupAnswer, Receipt,
};
use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::entry::{Entry, Leaf, Role};
use ledger_core::key::{SignerKey, VerifierKey};
use ledger_core::map::{self, MapTree};
use ledger_core::tile::{
    decode_entry_bundle, entry_bundles_for_size, tiles_for_size, Tile, TileHashReader,
};
use ledger_core::tree::{tree_root, verify_consistency, MemoryHashStore};
use ledger_core::TreeHash;

use crate::*;

impl TestLog {
    // -----------------------------------------------------------------------------------------
    // HTTP.
    // -----------------------------------------------------------------------------------------

    /// The shared blocking HTTP client.
    pub fn http(&self) -> &reqwest::blocking::Client {
        &self.http
    }

    /// `GET <path>` (path includes the query); panics on transport errors.
    pub fn get(&self, path: &str) -> Response {
        self.try_get(path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}; output:\n{}", self.output()))
    }

    /// `GET <path>`, with transport errors returned (for tests that kill the server).
    pub fn try_get(&self, path: &str) -> Result<Response, reqwest::Error> {
        Response::from(self.http.get(format!("{}{path}", self.url())).send()?)
    }

    /// `POST <path>` with a body and content type; panics on transport errors.
    pub fn post(&self, path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        let body = body.into();
        self.http
            .post(format!("{}{path}", self.url()))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .and_then(Response::from)
            .unwrap_or_else(|e| panic!("POST {path}: {e}; output:\n{}", self.output()))
    }

    /// `POST /v1/add` with `text/plain`; the raw response.
    pub fn add_raw(&self, body: impl Into<Vec<u8>>) -> Response {
        self.post("/v1/add", "text/plain", body)
    }

    /// Submits a leaf; `Ok(receipt)` on 200, else the refusal.
    pub fn submit(&self, leaf: &[u8]) -> Result<Receipt, Box<Response>> {
        let r = self.add_raw(leaf.to_vec());
        if r.status == 200 {
            Ok(r.json())
        } else {
            Err(Box::new(r))
        }
    }

    /// Submits a leaf that must be admitted, and checks its receipt (leaf hash, inclusion proof
    /// against a checkpoint signed by the log key). Returns the receipt.
    pub fn submit_ok(&self, leaf: &Leaf) -> Receipt {
        let receipt = self.submit(leaf.bytes()).unwrap_or_else(|r| {
            panic!(
                "submission refused: {} {}\nleaf:\n{}",
                r.status,
                r.text(),
                String::from_utf8_lossy(leaf.bytes())
            )
        });
        if let Err(e) = receipt.verify(leaf.bytes(), self.hash(), self.vkey()) {
            panic!("receipt for index {} does not verify: {e}", receipt.index);
        }
        receipt
    }

    /// `POST /v1/admin/enroll` with the admin token; the raw response.
    pub fn enroll_raw(&self, role: Role, key: &VerifierKey) -> Response {
        let body = serde_json::json!({
            "role": role.as_str(),
            "name": key.name(),
            "key": key.to_string(),
        });
        self.post_admin(
            "/v1/admin/enroll",
            Some(&self.admin_token()),
            body.to_string(),
        )
    }

    /// `POST` JSON to an admin route with an optional bearer token.
    pub fn post_admin(&self, path: &str, token: Option<&str>, json: String) -> Response {
        let mut req = self
            .http
            .post(format!("{}{path}", self.url()))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json);
        if let Some(t) = token {
            req = req.header(reqwest::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        req.send()
            .and_then(Response::from)
            .unwrap_or_else(|e| panic!("POST {path}: {e}; output:\n{}", self.output()))
    }

    /// Enrolls `key` with `role`; panics unless 200. Returns the enroll leaf's index when the answer
    /// names one.
    pub fn enroll(&self, role: Role, key: &SignerKey) -> Option<u64> {
        let r = self.enroll_raw(role, &key.verifier());
        assert_eq!(
            r.status,
            200,
            "enroll {} as {}: {}",
            key.name(),
            role.as_str(),
            r.text()
        );
        let v: serde_json::Value = r.json();
        v.get("index").and_then(serde_json::Value::as_u64)
    }

    /// Sends `head` (request line and headers, without the final empty line) and then `body` on a
    /// raw TCP connection, without finishing whatever the headers promise, and reads the answer
    /// (for requests a well-behaved client cannot send: bodies that never end, lying lengths).
    pub fn raw_request(&self, head: &str, body: &[u8]) -> Response {
        use std::io::Write as _;
        let mut s = std::net::TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("read timeout");
        let mut req = format!("{head}\r\nHost: {}\r\n\r\n", self.addr).into_bytes();
        req.extend_from_slice(body);
        // The server may answer and close before it has read everything: ignore write errors.
        let _ = s.write_all(&req);
        let _ = s.flush();
        parse_http_response(&mut s).unwrap_or_else(|e| panic!("raw {head:?}: {e}"))
    }

    /// `GET /v1/info`.
    pub fn info(&self) -> Info {
        let r = self.get("/v1/info");
        assert_eq!(r.status, 200, "/v1/info: {}", r.text());
        r.json()
    }

    /// `GET /checkpoint`, verified with the log key.
    pub fn checkpoint(&self) -> SignedCheckpoint {
        let r = self.get("/checkpoint");
        assert_eq!(r.status, 200, "/checkpoint: {}", r.text());
        self.verify_checkpoint(&r.body)
    }

    /// Verifies checkpoint note bytes with the log key and checks the origin.
    pub fn verify_checkpoint(&self, bytes: &[u8]) -> SignedCheckpoint {
        let cp = SignedCheckpoint::verify(bytes, self.vkey()).unwrap_or_else(|e| {
            panic!(
                "checkpoint does not verify: {e}:\n{}",
                String::from_utf8_lossy(bytes)
            )
        });
        assert_eq!(cp.checkpoint.origin, self.opts.origin, "checkpoint origin");
        cp
    }

    /// `GET /v1/entries?start=&count=`.
    pub fn entries(&self, start: u64, count: u64) -> EntriesPage {
        let r = self.get(&format!("/v1/entries?start={start}&count={count}"));
        assert_eq!(
            r.status,
            200,
            "/v1/entries start={start} count={count}: {}",
            r.text()
        );
        r.json()
    }

    /// All leaves `0..size`, paging `/v1/entries` by up to 1000 (following short pages).
    pub fn all_entries(&self, size: u64) -> Vec<String> {
        let mut out = Vec::with_capacity(size as usize);
        while (out.len() as u64) < size {
            let start = out.len() as u64;
            let page = self.entries(start, (size - start).min(1000));
            assert!(
                !page.entries.is_empty(),
                "/v1/entries start={start} returned no entry"
            );
            for (i, e) in page.entries.into_iter().enumerate() {
                assert_eq!(e.index, start + i as u64, "/v1/entries index order");
                if e.index < size {
                    out.push(e.leaf);
                }
            }
        }
        out
    }

    /// `GET /v1/proof/inclusion?index=&size=`.
    pub fn inclusion(&self, index: u64, size: u64) -> InclusionProof {
        let r = self.get(&format!("/v1/proof/inclusion?index={index}&size={size}"));
        assert_eq!(
            r.status,
            200,
            "inclusion index={index} size={size}: {}",
            r.text()
        );
        r.json()
    }

    /// `GET /v1/proof/consistency?from=&to=`.
    pub fn consistency(&self, from: u64, to: u64) -> ConsistencyProof {
        let r = self.get(&format!("/v1/proof/consistency?from={from}&to={to}"));
        assert_eq!(
            r.status,
            200,
            "consistency from={from} to={to}: {}",
            r.text()
        );
        r.json()
    }

    /// Checks with `/v1/proof/consistency` that `old` is a prefix of `new` (equal sizes: equal
    /// roots). Panics with both checkpoints otherwise.
    pub fn assert_consistent(&self, old: &SignedCheckpoint, new: &SignedCheckpoint) {
        let (o, n) = (&old.checkpoint, &new.checkpoint);
        assert!(
            o.size <= n.size,
            "checkpoint size went back from {} to {}",
            o.size,
            n.size
        );
        if o.size == n.size {
            assert_eq!(
                o.root, n.root,
                "two checkpoints of size {} with different roots",
                o.size
            );
            return;
        }
        if o.size == 0 {
            assert_eq!(o.root, self.hash().empty_root(), "size-0 checkpoint root");
            return;
        }
        let p = self.consistency(o.size, n.size);
        assert_eq!((p.from, p.to), (o.size, n.size), "consistency answer sizes");
        if let Err(e) = verify_consistency(
            self.hash(),
            o.size,
            n.size,
            &o.root,
            &n.root,
            &p.consistency,
        ) {
            panic!(
                "consistency proof {} -> {} does not verify: {e}",
                o.size, n.size
            );
        }
    }

    /// How many of the log's leaves are entries: every leaf but the map leaves that close the
    /// batches (SPEC §9), whose number depends on how submissions fell into batches.
    pub fn entry_count(&self) -> u64 {
        let size = self.info().size;
        self.all_entries(size)
            .iter()
            .filter(|l| !is_map_leaf(l.as_bytes()))
            .count() as u64
    }

    /// `GET /v1/lookup?sii=<sii>` (URL-encoded); the raw response.
    pub fn lookup_raw(&self, sii: &str) -> Response {
        self.get(&format!("/v1/lookup?sii={}", url_encode(sii)))
    }

    /// `GET /v1/lookup`, which must answer 200.
    pub fn lookup(&self, sii: &str) -> LookupAnswer {
        let r = self.lookup_raw(sii);
        assert_eq!(r.status, 200, "/v1/lookup {sii}: {}", r.text());
        r.json()
    }

    /// `GET` a tile or entry bundle; the raw response.
    pub fn tile_raw(&self, tile: &Tile) -> Response {
        self.get(&format!("/{}", tile.path()))
    }

    /// `GET` a tile or entry bundle, which must answer 200.
    pub fn tile(&self, tile: &Tile) -> Vec<u8> {
        let r = self.tile_raw(tile);
        assert_eq!(r.status, 200, "GET /{}: {}", tile.path(), r.text());
        r.body
    }

    /// Downloads every entry bundle and hash tile of the tree of `cp`'s size and checks, against the
    /// verified checkpoint:
    /// 1. each bundle holds exactly `width` entries, and their leaf hashes equal the level-0 tiles;
    /// 2. the root of the leaves (hashed here, in memory) equals the checkpoint's root;
    /// 3. the root recomputed from the hash tiles alone (`TileHashReader` + `tree_root`) equals it.
    ///
    /// Returns the leaves in index order. The log must not have grown past a partial tile since
    /// `cp` (call it on a quiet log, or with `cp` = the current checkpoint).
    pub fn verify_tree(&self, cp: &SignedCheckpoint) -> Vec<Vec<u8>> {
        verify_tiles(self.hash(), cp, |tile| self.tile(tile))
    }

    /// [`TestLog::verify_tree`] over the files of the data folder's `public/` tree (what a static
    /// web server would serve), not over HTTP: also checks `public/checkpoint` is `cp`'s note.
    pub fn verify_public_files(&self, cp: &SignedCheckpoint) -> Vec<Vec<u8>> {
        let public = self.data_dir().join("public");
        let note = std::fs::read(public.join("checkpoint")).expect("public/checkpoint");
        assert_eq!(
            self.verify_checkpoint(&note).checkpoint,
            cp.checkpoint,
            "public/checkpoint is not the checkpoint being checked"
        );
        verify_tiles(self.hash(), cp, |tile| {
            std::fs::read(public.join(tile.path()))
                .unwrap_or_else(|e| panic!("public/{}: {e}", tile.path()))
        })
    }
}

/// The checks of [`TestLog::verify_tree`], over tiles from `fetch`.
pub fn verify_tiles(
    th: TreeHash,
    cp: &SignedCheckpoint,
    fetch: impl Fn(&Tile) -> Vec<u8>,
) -> Vec<Vec<u8>> {
    let size = cp.checkpoint.size;
    let mut leaves: Vec<Vec<u8>> = Vec::with_capacity(size as usize);
    for bundle in entry_bundles_for_size(size) {
        let data = fetch(&bundle);
        let entries = decode_entry_bundle(&data)
            .unwrap_or_else(|e| panic!("/{}: bad entry bundle: {e}", bundle.path()));
        assert_eq!(
            entries.len(),
            usize::from(bundle.width),
            "/{} entry count",
            bundle.path()
        );
        leaves.extend(entries);
    }
    assert_eq!(leaves.len() as u64, size, "leaves in the entry bundles");

    let mut store = MemoryHashStore::new(th);
    for leaf in &leaves {
        store.append_leaf(leaf);
    }
    assert_eq!(
        store.root(),
        cp.checkpoint.root,
        "root of the entry bundles' leaves differs from the checkpoint's (size {size})"
    );

    let mut reader = TileHashReader::new(th);
    for tile in tiles_for_size(size) {
        let data = fetch(&tile);
        assert_eq!(data.len(), tile.hash_data_len(), "/{} length", tile.path());
        if tile.level == 0 {
            let first = tile.index * 256;
            for (i, chunk) in data.chunks(32).enumerate() {
                let leaf = &leaves[(first as usize) + i];
                assert_eq!(
                    chunk,
                    th.leaf_hash(leaf).as_slice(),
                    "/{} hash {i} is not the leaf hash of entry {}",
                    tile.path(),
                    first as usize + i
                );
            }
        }
        reader
            .insert(tile, data)
            .unwrap_or_else(|e| panic!("/{}: {e}", tile.path()));
    }
    let from_tiles =
        tree_root(th, size, &reader).unwrap_or_else(|e| panic!("root from tiles: {e}"));
    assert_eq!(
        from_tiles, cp.checkpoint.root,
        "root from the hash tiles differs (size {size})"
    );
    leaves
}

/// Whether `leaf` is a map leaf (SPEC §3 `map`).
pub fn is_map_leaf(leaf: &[u8]) -> bool {
    Leaf::parse(leaf).is_ok_and(|l| matches!(l.entry(), Entry::Map(_)))
}

/// Rebuilds the map (SPEC §9) from `leaves` (a log's leaves from index 0, in order) as a monitor
/// does, and asserts that every map leaf among them is at its own index (`size`) and commits the
/// root of the map of every leaf before it, and that the last leaf is a map leaf (every
/// checkpoint of size > 0 ends in one). Returns the rebuilt map and the number of map leaves.
pub fn assert_map_rebuilds(th: TreeHash, leaves: &[Vec<u8>]) -> (MapTree, usize) {
    let mut rebuilt = MapTree::new(th);
    let mut map_leaves = 0;
    for (i, bytes) in leaves.iter().enumerate() {
        let leaf = Leaf::parse(bytes).unwrap_or_else(|e| panic!("leaf {i}: {e}"));
        if let Entry::Map(m) = leaf.entry() {
            assert_eq!(
                m.size, i as u64,
                "the map leaf at index {i} says size {}",
                m.size
            );
            assert_eq!(
                m.root,
                rebuilt.root(),
                "the map leaf at index {i} does not commit the map of the leaves before it"
            );
            map_leaves += 1;
        } else if let Some(a) = map::addition(th, i as u64, &th.leaf_hash(bytes), leaf.entry()) {
            rebuilt.apply(&[a]).expect("in-memory map");
        }
    }
    if let Some(last) = leaves.last() {
        assert!(
            is_map_leaf(last),
            "the checkpoint of size {} does not end in a map leaf",
            leaves.len()
        );
    }
    (rebuilt, map_leaves)
}
