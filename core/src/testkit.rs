//! Test support, behind the `testkit` cargo feature (not part of the production API): an in-memory log that admits real, signed entries and
//! answers lookups exactly like the log server, so that tests of the core, the client and the monitor
//! can build honest answers and then lie with them one change at a time.

use std::convert::Infallible;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::admission::{admit, KeyRegistry, Policy, Refusal};
use crate::api::LookupAnswer;
use crate::checkpoint::{Checkpoint, SignedCheckpoint};
use crate::entry::{
    tag_set, Action, Attestation, Claim, Enroll, Entry, Leaf, MapLeaf, Optout, Revoke, Role,
    SignedAttestation, MAX_LEAF_BYTES,
};
use crate::hash::{Hash, TreeHash};
use crate::key::{KeyAlg, SignerKey};
use crate::lookup::{build_answer, AnswerSource, Trust};
use crate::map::{self, MapProof, MapTree};
use crate::note::Note;
use crate::sii::{Name, Sii, Ssi, Tag};
use crate::tree::{prove_inclusion, MemoryHashStore};
use std::collections::BTreeMap;

pub mod taming;

/// A deterministic key for tests: the seed is derived from the name.
pub fn test_key(name: &str) -> SignerKey {
    let seed = TreeHash::Sha256.leaf_hash(name.as_bytes());
    SignerKey::from_seed(name, KeyAlg::Ed25519, seed).expect("valid test key name")
}

/// A deterministic witness (cosignature/v1) key for tests.
pub fn test_witness_key(name: &str) -> SignerKey {
    let seed = TreeHash::Sha256.leaf_hash(format!("witness {name}").as_bytes());
    SignerKey::from_seed(name, KeyAlg::Cosignature, seed).expect("valid test key name")
}

/// An in-memory log with real admission, tree, checkpoints and map.
///
/// Like the log server, it commits the map in a map leaf after a batch, but only when asked:
/// [`MemLog::seal`] ends the current batch (so tests keep their indexes until they seal, and can
/// build logs whose checkpoint does not end in a map leaf).
pub struct MemLog {
    /// The log's signer key (name = origin).
    pub key: SignerKey,
    /// The tree hash.
    pub hash: TreeHash,
    /// The admission policy.
    pub policy: Policy,
    /// The clock (Unix seconds) used for admission and folding.
    pub now: u64,
    store: MemoryHashStore,
    leaves: Vec<Leaf>,
    registry: KeyRegistry,
    /// The map as committed by each map leaf, by the checkpoint size that ends in it.
    maps: BTreeMap<u64, MapTree>,
    /// The map over every leaf so far (not yet committed if leaves followed the last seal).
    map: MapTree,
}

impl MemLog {
    /// A new empty log named `origin`.
    pub fn new(origin: &str, hash: TreeHash) -> MemLog {
        let key = test_key(origin);
        let registry = KeyRegistry::new(key.verifier());
        MemLog {
            key,
            hash,
            policy: Policy::default(),
            now: 1_764_158_400,
            store: MemoryHashStore::new(hash),
            leaves: Vec::new(),
            registry,
            maps: BTreeMap::new(),
            map: MapTree::new(hash),
        }
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// The trust a client of this log would have (no witnesses).
    pub fn trust(&self) -> Trust {
        Trust::new(self.key.verifier(), self.hash)
    }

    /// Admits `bytes` under the log's policy at `now`, like `POST /v1/add`.
    pub fn submit(&mut self, bytes: &[u8]) -> Result<u64, Refusal> {
        let index = self.size();
        let (leaf, _) = admit(bytes, &self.registry.at(index), &self.policy, self.now)?;
        Ok(self.push(leaf))
    }

    /// Appends a leaf without any check (for building dishonest logs), filing it in the map.
    pub fn push(&mut self, leaf: Leaf) -> u64 {
        let index = self.store.append_leaf(leaf.bytes());
        self.registry.add_entry(index, leaf.entry());
        let leaf_hash = self.hash.leaf_hash(leaf.bytes());
        if let Some(a) = map::addition(self.hash, index, &leaf_hash, leaf.entry()) {
            self.map.apply(&[a]).expect("in-memory map updates");
        }
        self.leaves.push(leaf);
        index
    }

    /// Ends the batch as the log server does: appends the log-signed map leaf committing the map
    /// over every leaf so far, at its own index (unless the last leaf already is a map leaf).
    /// Returns the map leaf's index.
    pub fn seal(&mut self) -> u64 {
        if let Some(last) = self.leaves.last() {
            if matches!(last.entry(), Entry::Map(_)) {
                return self.size() - 1;
            }
        }
        let root = self.map.root();
        let index = self.push(self.map_leaf(self.size(), root));
        self.maps.insert(self.size(), self.map.clone());
        index
    }

    /// A map leaf signed by this log's key, with any `size` and `root` (for dishonest logs).
    pub fn map_leaf(&self, size: u64, root: Hash) -> Leaf {
        Leaf::sign(Entry::Map(MapLeaf { size, root }), &self.key).expect("map leaf signs")
    }

    /// The map over every leaf so far (what a monitor rebuilds).
    pub fn map(&self) -> &MapTree {
        &self.map
    }

    /// Enrolls `key` with `role`, signed by the log.
    pub fn enroll(&mut self, role: Role, key: &SignerKey) -> u64 {
        let entry = Entry::Enroll(Enroll {
            role,
            name: Name::parse(key.name()).expect("test key names are DNS names"),
            key: key.verifier(),
            time: self.now,
        });
        let leaf = Leaf::sign(entry, &self.key).expect("enroll signs");
        self.submit(leaf.bytes()).expect("enroll is admitted")
    }

    /// Enrolls a verifier key made by other means (e.g. [`taming::CraftedKey`]), signed by the log.
    pub fn enroll_key(&mut self, role: Role, key: &crate::key::VerifierKey) -> u64 {
        let entry = Entry::Enroll(Enroll {
            role,
            name: Name::parse(key.name()).expect("test key names are DNS names"),
            key: key.clone(),
            time: self.now,
        });
        let leaf = Leaf::sign(entry, &self.key).expect("enroll signs");
        self.submit(leaf.bytes()).expect("enroll is admitted")
    }

    /// The signed checkpoint of the current tree.
    pub fn checkpoint(&self) -> SignedCheckpoint {
        let cp = Checkpoint {
            origin: self.key.name().to_string(),
            size: self.size(),
            root: self.store.root(),
        };
        SignedCheckpoint::sign(cp, &self.key).expect("checkpoint signs")
    }

    /// The keys enrolled so far, by index.
    pub fn registry(&self) -> &KeyRegistry {
        &self.registry
    }

    /// The leaf at `index`.
    pub fn leaf(&self, index: u64) -> &Leaf {
        &self.leaves[index as usize]
    }

    /// The honest DP answer for `sii` against the current checkpoint.
    pub fn lookup(&self, sii: &Sii) -> LookupAnswer {
        let entries: Vec<(u64, Leaf)> = self
            .leaves
            .iter()
            .enumerate()
            .filter(|(_, l)| l.entry().sii() == Some(sii))
            .map(|(i, l)| (i as u64, l.clone()))
            .collect();
        let cp = self.checkpoint();
        match build_answer(sii, &entries, &self.registry, &cp, self, self.now) {
            Ok(a) => a,
            Err(never) => match never {},
        }
    }
}

impl AnswerSource for MemLog {
    type Error = Infallible;

    fn tree_hash(&self) -> TreeHash {
        self.hash
    }

    /// The proof from the map as committed at `size`; for a `size` that does not end in a map
    /// leaf (a test that did not seal), from the current map, which the client will then reject.
    fn map_proof(&self, key: &Hash, size: u64) -> Result<MapProof, Infallible> {
        let store = self.maps.get(&size).unwrap_or(&self.map);
        Ok(store.prove(key).proof)
    }

    fn leaf(&self, index: u64) -> Result<Vec<u8>, Infallible> {
        Ok(self.leaves[index as usize].bytes().to_vec())
    }

    fn inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, Infallible> {
        Ok(prove_inclusion(self.hash, index, size, &self.store).expect("index below size"))
    }
}

/// Parses an SII in tests.
pub fn sii(s: &str) -> Sii {
    Sii::parse(s).expect("canonical test SII")
}

/// A signed claim.
pub fn claim(
    msp: &SignerKey,
    sii_text: &str,
    ssi: &str,
    time: u64,
    tags: &[&str],
    attestation: Option<SignedAttestation>,
) -> Leaf {
    let entry = Entry::Claim(Claim {
        sii: sii(sii_text),
        msp: Name::parse(msp.name()).expect("name"),
        ssi: Ssi::parse(ssi).expect("ssi"),
        time,
        expires: None,
        // Like every honest builder: tags are a set in byte order (SPEC §3), whatever order given.
        tags: tag_set(tags.iter().map(|t| Tag::parse(t).expect("tag"))),
        attestation,
    });
    Leaf::sign(entry, msp).expect("claim signs")
}

/// Signs `entry` with `key` without the form checks of [`Leaf::sign`] (e.g. a claim with repeated
/// or unordered tags), for building dishonest logs and answers that verifiers must refuse.
pub fn sign_unchecked(entry: Entry, key: &SignerKey) -> Leaf {
    Leaf::sign_unchecked(entry, key).expect("entry text is a valid note")
}

/// A signed revoke (by the MSP, or by a prover with an attestation).
pub fn revoke(
    signer: &SignerKey,
    msp: &str,
    sii_text: &str,
    ssi: &str,
    time: u64,
    attestation: Option<SignedAttestation>,
) -> Leaf {
    let entry = Entry::Revoke(Revoke {
        sii: sii(sii_text),
        msp: Name::parse(msp).expect("name"),
        ssi: Ssi::parse(ssi).expect("ssi"),
        time,
        attestation,
    });
    Leaf::sign(entry, signer).expect("revoke signs")
}

/// A signed opt-out with its attestation.
pub fn optout(prover: &SignerKey, sii_text: &str, time: u64) -> Leaf {
    let att = attestation(prover, Action::Optout, sii_text, None, time - 10);
    let entry = Entry::Optout(Optout {
        sii: sii(sii_text),
        time,
        attestation: att,
    });
    Leaf::sign(entry, prover).expect("optout signs")
}

/// A signed attestation valid from `time` for a day.
pub fn attestation(
    prover: &SignerKey,
    action: Action,
    sii_text: &str,
    msp_ssi: Option<(&str, &str)>,
    time: u64,
) -> SignedAttestation {
    let a = Attestation {
        action,
        sii: sii(sii_text),
        msp: msp_ssi.map(|(m, _)| Name::parse(m).expect("name")),
        ssi: msp_ssi.map(|(_, s)| Ssi::parse(s).expect("ssi")),
        method: "sms-otp".to_string(),
        time,
        expires: time + 86_400,
    };
    SignedAttestation::sign(a, prover).expect("attestation signs")
}

/// A small log with one attested mapping of `tel:+14155550100` to `msp-a.example`, and the trust for it.
pub fn example_answer() -> (Trust, LookupAnswer) {
    let mut log = MemLog::new("localhost/mimi-ledger", TreeHash::Blake3);
    let msp = test_key("msp-a.example");
    let prover = test_key("prover.example");
    log.enroll(Role::Msp, &msp);
    log.enroll(Role::Prover, &prover);
    let t = log.now;
    let att = attestation(
        &prover,
        Action::Claim,
        "tel:+14155550100",
        Some(("msp-a.example", "mimi://msp-a.example/u/alice")),
        t - 60,
    );
    let leaf = claim(
        &msp,
        "tel:+14155550100",
        "mimi://msp-a.example/u/alice",
        t,
        &["Personal"],
        Some(att),
    );
    log.submit(leaf.bytes()).expect("claim admitted");
    log.seal();
    (log.trust(), log.lookup(&sii("tel:+14155550100")))
}

/// Signs arbitrary body text as a note, bypassing every check of ours (to build bad leaves).
pub fn raw_note(text: &str, key: &SignerKey) -> Vec<u8> {
    let sig = key.sign(text.as_bytes());
    let mut blob = key.key_id().to_vec();
    blob.extend_from_slice(&sig);
    format!("{text}\n\u{2014} {} {}\n", key.name(), B64.encode(blob)).into_bytes()
}

/// One submission of [`admission_cases`] and how the log's admission (`admit`) judges it.
#[derive(Clone, Debug)]
pub struct AdmissionCase {
    /// What the case is.
    pub what: &'static str,
    /// The submitted bytes.
    pub bytes: Vec<u8>,
    /// The policy the log applies to it.
    pub policy: Policy,
    /// The SPEC §5 slug `admit` refuses it with at [`AdmissionCases::index`], or `None` when admitted.
    pub slug: Option<&'static str>,
    /// Whether only the log's policy or clock refuses it (so every verifier that does not judge
    /// those — the monitor, the client — accepts it).
    pub log_only: bool,
}

/// The admission cases and the log they are judged against.
pub struct AdmissionCases {
    /// A log with `msp-a.example`, `msp-b.example` (MSPs), `prover.example` (prover), and
    /// `msp-c.example` enrolled twice (its old key is no longer valid).
    pub log: MemLog,
    /// The index every case is judged at (the log's size: the keys are those enrolled before it).
    pub index: u64,
    /// The cases.
    pub cases: Vec<AdmissionCase>,
}

/// The claim lines of a good claim by `msp-a.example` for Alice's number at time `t`.
fn claim_lines(t: u64) -> Vec<String> {
    vec![
        "sii tel:+14155550100".into(),
        "msp msp-a.example".into(),
        "ssi mimi://msp-a.example/u/alice".into(),
        format!("time {t}"),
        "tag Personal".into(),
    ]
}

/// A claim's text from its field lines.
fn claim_text(lines: &[String]) -> String {
    let mut s = String::from("mimi-ledger/v1 claim\n");
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s
}

/// The leaves (signed by `msp_a`, one also by `msp_b`) that the strict parser refuses — a second
/// byte form of a valid claim, or not a claim at all — each with its SPEC §5 slug.
pub fn claim_syntax_cases(
    msp_a: &SignerKey,
    msp_b: &SignerKey,
    t: u64,
) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    const ALICE: &str = "tel:+14155550100";
    let with = |f: &dyn Fn(&mut Vec<String>)| {
        let mut l = claim_lines(t);
        f(&mut l);
        raw_note(&claim_text(&l), msp_a)
    };
    vec![
        ("reordered fields", with(&|l| l.swap(0, 1)), "non-canonical"),
        (
            "double space",
            with(&|l| l[1] = "msp  msp-a.example".into()),
            "non-canonical",
        ),
        (
            "trailing space",
            with(&|l| l[1] = "msp msp-a.example ".into()),
            "non-canonical",
        ),
        (
            "tab (a control character)",
            with(&|l| l[1] = "msp\tmsp-a.example".into()),
            "malformed",
        ),
        (
            "unknown field",
            with(&|l| l.insert(4, "color blue".into())),
            "malformed",
        ),
        (
            "repeated field",
            with(&|l| l.insert(1, format!("sii {ALICE}"))),
            "non-canonical",
        ),
        (
            "missing field",
            with(&|l| {
                l.remove(2);
            }),
            "malformed",
        ),
        (
            "leading zero time",
            with(&|l| l[3] = format!("time 0{t}")),
            "non-canonical",
        ),
        (
            "signed time",
            with(&|l| l[3] = format!("time +{t}")),
            "non-canonical",
        ),
        (
            "tel with spaces",
            with(&|l| l[0] = "sii tel:+1-415-555-0100".into()),
            "non-canonical",
        ),
        (
            "tel missing plus",
            with(&|l| l[0] = "sii tel:14155550100".into()),
            "non-canonical",
        ),
        (
            "upper-case mailto domain",
            with(&|l| l[0] = "sii mailto:bob@Example.com".into()),
            "non-canonical",
        ),
        (
            "invalid number",
            with(&|l| l[0] = "sii tel:+1415555".into()),
            "invalid-sii",
        ),
        (
            "unknown scheme",
            with(&|l| l[0] = "sii sip:bob@example.com".into()),
            "invalid-sii",
        ),
        (
            "tag #17",
            with(&|l| {
                for i in 0..16 {
                    l.push(format!("tag t{i}"));
                }
            }),
            "malformed",
        ),
        (
            "bad tag",
            with(&|l| l[4] = "tag no/slash".into()),
            "malformed",
        ),
        (
            "expires before time",
            with(&|l| l.insert(4, format!("expires {}", t - 1))),
            "malformed",
        ),
        (
            "empty line",
            with(&|l| l.insert(2, String::new())),
            "non-canonical",
        ),
        (
            "repeated tag",
            with(&|l| l.push("tag Personal".into())),
            "non-canonical",
        ),
        (
            "unordered tags",
            with(&|l| l.insert(4, "tag Work".into())),
            "non-canonical",
        ),
        (
            "tags in case-folded order",
            with(&|l| l.insert(4, "tag personal".into())),
            "non-canonical",
        ),
        (
            "wrong version",
            raw_note(&claim_text(&[]).replace("v1", "v2"), msp_a),
            "malformed",
        ),
        (
            "unknown kind",
            raw_note("mimi-ledger/v1 steal\n", msp_a),
            "malformed",
        ),
        (
            "CRLF line ends",
            String::from_utf8(raw_note(&claim_text(&claim_lines(t)), msp_a))
                .expect("utf-8")
                .replace('\n', "\r\n")
                .into_bytes(),
            "malformed",
        ),
        (
            "two signature lines",
            {
                let text = claim_text(&claim_lines(t));
                let mut two = raw_note(&text, msp_a);
                let extra = raw_note(&text, msp_b);
                let line = extra
                    .split(|b| *b == b'\n')
                    .rev()
                    .nth(1)
                    .unwrap_or_default();
                two.extend_from_slice(line);
                two.push(b'\n');
                two
            },
            "non-canonical",
        ),
        ("not UTF-8", b"\xff\xfe garbage".to_vec(), "malformed"),
        ("empty", Vec::new(), "malformed"),
        ("too large", vec![b'a'; MAX_LEAF_BYTES + 1], "too-large"),
    ]
}

/// Every refusal case of the core's admission tests (and a few admitted controls), in one table,
/// so that every verifier that re-checks entries (the monitor's batch path) can be shown to give
/// the core's verdict on each: a rule added to admission gets a case here, and with it a test of
/// each verifier. None of the cases is an enrollment, so judging one never changes the keys the
/// next is judged against.
pub fn admission_cases() -> AdmissionCases {
    const ALICE: &str = "tel:+14155550100";
    const ALICE_SSI: &str = "mimi://msp-a.example/u/alice";
    let mut log = MemLog::new("localhost/mimi-ledger", TreeHash::Blake3);
    let t = log.now;
    let msp_a = test_key("msp-a.example");
    let msp_b = test_key("msp-b.example");
    let prover = test_key("prover.example");
    let msp_c_old = SignerKey::from_seed("msp-c.example", KeyAlg::Ed25519, [3; 32]).expect("key");
    let msp_c_new = SignerKey::from_seed("msp-c.example", KeyAlg::Ed25519, [4; 32]).expect("key");
    log.enroll(Role::Msp, &msp_a);
    log.enroll(Role::Msp, &msp_b);
    log.enroll(Role::Prover, &prover);
    log.enroll(Role::Msp, &msp_c_old);
    log.enroll(Role::Msp, &msp_c_new);
    let index = log.size();
    let policy = Policy::default();

    let mut cases = Vec::new();
    let mut case = |what: &'static str, bytes: Vec<u8>, slug: Option<&'static str>| {
        cases.push(AdmissionCase {
            what,
            bytes,
            policy,
            slug,
            log_only: false,
        });
    };

    // Syntax and canonical form (the parser's refusals).
    let good_lines = || claim_lines(t);
    let syntax = claim_syntax_cases(&msp_a, &msp_b, t);
    for (what, bytes, slug) in syntax {
        case(what, bytes, Some(slug));
    }

    // Signers and enrollment.
    let impostor = SignerKey::from_seed("msp-a.example", KeyAlg::Ed25519, [7; 32]).expect("key");
    case(
        "right name, wrong key",
        claim(&impostor, ALICE, ALICE_SSI, t, &[], None)
            .bytes()
            .to_vec(),
        Some("unknown-signer"),
    );
    let rogue = test_key("rogue.example");
    case(
        "unenrolled MSP",
        claim(&rogue, ALICE, "mimi://rogue.example/u/x", t, &[], None)
            .bytes()
            .to_vec(),
        Some("unknown-signer"),
    );
    case(
        "a claim for one MSP signed by another",
        raw_note(&claim_text(&good_lines()), &msp_b),
        Some("bad-signature"),
    );
    let mut flipped = claim(&msp_a, ALICE, ALICE_SSI, t, &[], None)
        .bytes()
        .to_vec();
    let n = flipped.len();
    if let Some(b) = flipped.get_mut(n.saturating_sub(6)) {
        *b = if *b == b'A' { b'B' } else { b'A' };
    }
    case("a flipped signature byte", flipped, Some("bad-signature"));
    case(
        "a prover may not claim",
        claim(&prover, ALICE, "mimi://prover.example/u/x", t, &[], None)
            .bytes()
            .to_vec(),
        Some("unknown-signer"),
    );
    case(
        "an MSP may not opt out",
        raw_note(&optout(&prover, ALICE, t).entry().to_text(), &msp_a),
        Some("unknown-signer"),
    );
    case(
        "an MSP may not enroll",
        raw_note(&log.leaf(0).entry().to_text(), &msp_a),
        Some("bad-signature"),
    );
    case(
        "old key after re-enrollment",
        claim(&msp_c_old, ALICE, "mimi://msp-c.example/u/c", t, &[], None)
            .bytes()
            .to_vec(),
        Some("unknown-signer"),
    );
    case(
        "an unenrolled signer revokes",
        revoke(&rogue, "msp-a.example", ALICE, ALICE_SSI, t, None)
            .bytes()
            .to_vec(),
        Some("unknown-signer"),
    );
    case(
        "an unenrolled prover opts out",
        optout(&rogue, ALICE, t).bytes().to_vec(),
        Some("unknown-signer"),
    );

    // Attestations.
    let pair = Some(("msp-a.example", ALICE_SSI));
    let good = attestation(&prover, Action::Claim, ALICE, pair, t - 60);
    let attested = |att: SignedAttestation| {
        claim(&msp_a, ALICE, ALICE_SSI, t, &[], Some(att))
            .bytes()
            .to_vec()
    };
    let bad_atts: Vec<(&'static str, SignedAttestation)> = vec![
        (
            "attestation for another action",
            attestation(&prover, Action::Revoke, ALICE, pair, t - 60),
        ),
        (
            "attestation for another SII",
            attestation(&prover, Action::Claim, "tel:+14155550101", pair, t - 60),
        ),
        (
            "attestation for another MSP",
            attestation(
                &prover,
                Action::Claim,
                ALICE,
                Some(("msp-b.example", ALICE_SSI)),
                t - 60,
            ),
        ),
        (
            "attestation for another SSI",
            attestation(
                &prover,
                Action::Claim,
                ALICE,
                Some(("msp-a.example", "mimi://msp-a.example/u/eve")),
                t - 60,
            ),
        ),
        (
            "attestation issued after the entry",
            attestation(&prover, Action::Claim, ALICE, pair, t + 1),
        ),
        (
            "attestation expired",
            attestation(&prover, Action::Claim, ALICE, pair, t - 86_401),
        ),
        (
            "attestation by an unenrolled prover",
            attestation(
                &test_key("fake-prover.example"),
                Action::Claim,
                ALICE,
                pair,
                t - 60,
            ),
        ),
        (
            "attestation signed by an MSP",
            attestation(&msp_a, Action::Claim, ALICE, pair, t - 60),
        ),
        (
            "attestation by the prover's name with another key",
            attestation(
                &SignerKey::from_seed("prover.example", KeyAlg::Ed25519, [8; 32]).expect("key"),
                Action::Claim,
                ALICE,
                pair,
                t - 60,
            ),
        ),
    ];
    for (what, att) in bad_atts {
        case(what, attested(att), Some("bad-attestation"));
    }
    // An attestation whose signature does not verify: flip a bit of its signature, re-sign the claim.
    {
        let mut att_note = Note::new(good.note.text()).expect("a note text");
        if let Some(mut sig) = good.note.signatures().first().cloned() {
            if let Some(b) = sig.sig.first_mut() {
                *b ^= 1;
            }
            att_note.add_signature(sig).expect("one signature");
        }
        let att_note = att_note.to_bytes();
        let mut lines = good_lines();
        lines.push(format!("attestation {}", B64.encode(att_note)));
        case(
            "attestation with a bad signature",
            raw_note(&claim_text(&lines), &msp_a),
            Some("bad-attestation"),
        );
    }
    {
        let mut lines = good_lines();
        lines.push(format!("attestation {}", B64.encode("not a note")));
        case(
            "garbage in the attestation field",
            raw_note(&claim_text(&lines), &msp_a),
            Some("bad-attestation"),
        );
    }
    {
        let b64 = good.to_base64();
        let unpadded = b64.trim_end_matches('=');
        if unpadded != b64 {
            let mut lines = good_lines();
            lines.push(format!("attestation {unpadded}"));
            case(
                "attestation in unpadded base64",
                raw_note(&claim_text(&lines), &msp_a),
                Some("non-canonical"),
            );
        }
    }
    case(
        "a prover's revoke without attestation",
        revoke(&prover, "msp-a.example", ALICE, ALICE_SSI, t, None)
            .bytes()
            .to_vec(),
        Some("attestation-required"),
    );
    case(
        "a prover's revoke with a claim attestation",
        revoke(
            &prover,
            "msp-a.example",
            ALICE,
            ALICE_SSI,
            t,
            Some(attestation(&prover, Action::Claim, ALICE, pair, t - 60)),
        )
        .bytes()
        .to_vec(),
        Some("bad-attestation"),
    );
    {
        // A prover's revoke whose own signature is bad, and whose attestation is missing too:
        // the signature is checked first.
        let mut b = revoke(&prover, "msp-a.example", ALICE, ALICE_SSI, t, None)
            .bytes()
            .to_vec();
        let n = b.len();
        if let Some(x) = b.get_mut(n.saturating_sub(6)) {
            *x = if *x == b'A' { b'B' } else { b'A' };
        }
        case(
            "a prover's revoke with a bad signature and no attestation",
            b,
            Some("bad-signature"),
        );
    }
    {
        // A bad entry signature and a mismatched attestation: the signature is checked first.
        let mut b = attested(attestation(
            &prover,
            Action::Claim,
            "tel:+14155550101",
            pair,
            t - 60,
        ));
        let n = b.len();
        if let Some(x) = b.get_mut(n.saturating_sub(6)) {
            *x = if *x == b'A' { b'B' } else { b'A' };
        }
        case(
            "a bad signature and a mismatched attestation",
            b,
            Some("bad-signature"),
        );
    }

    // Admitted controls.
    case(
        "a good claim",
        claim(&msp_a, ALICE, ALICE_SSI, t, &["Personal"], None)
            .bytes()
            .to_vec(),
        None,
    );
    case("an attested claim", attested(good.clone()), None);
    case(
        "a claim by the re-enrolled key",
        claim(&msp_c_new, ALICE, "mimi://msp-c.example/u/c", t, &[], None)
            .bytes()
            .to_vec(),
        None,
    );
    case(
        "an MSP's revoke",
        revoke(&msp_a, "msp-a.example", ALICE, ALICE_SSI, t, None)
            .bytes()
            .to_vec(),
        None,
    );
    case(
        "a prover's attested revoke",
        revoke(
            &prover,
            "msp-a.example",
            ALICE,
            ALICE_SSI,
            t,
            Some(attestation(&prover, Action::Revoke, ALICE, pair, t - 60)),
        )
        .bytes()
        .to_vec(),
        None,
    );
    case(
        "an opt-out",
        optout(&prover, ALICE, t).bytes().to_vec(),
        None,
    );
    case(
        "clock skew at the edge",
        claim(&msp_a, ALICE, ALICE_SSI, t + policy.max_skew_s, &[], None)
            .bytes()
            .to_vec(),
        None,
    );

    // Refused by the log's policy and clock only.
    let mut log_only = |what: &'static str, bytes: Vec<u8>, policy: Policy, slug: &'static str| {
        cases.push(AdmissionCase {
            what,
            bytes,
            policy,
            slug: Some(slug),
            log_only: true,
        });
    };
    log_only(
        "clock skew ahead",
        claim(
            &msp_a,
            ALICE,
            ALICE_SSI,
            t + policy.max_skew_s + 1,
            &[],
            None,
        )
        .bytes()
        .to_vec(),
        policy,
        "clock-skew",
    );
    log_only(
        "clock skew behind",
        claim(
            &msp_a,
            ALICE,
            ALICE_SSI,
            t - policy.max_skew_s - 1,
            &[],
            None,
        )
        .bytes()
        .to_vec(),
        policy,
        "clock-skew",
    );
    log_only(
        "attestation required by the log's policy",
        claim(&msp_a, ALICE, ALICE_SSI, t, &[], None)
            .bytes()
            .to_vec(),
        Policy {
            require_attestation: true,
            ..policy
        },
        "attestation-required",
    );
    AdmissionCases { log, index, cases }
}
