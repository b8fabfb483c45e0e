//! Test support, behind the `testkit` cargo feature (not part of the production API): an in-memory log that admits real, signed entries and
//! answers lookups exactly like the log server, so that tests of the core, the client and the monitor
//! can build honest answers and then lie with them one change at a time.

use std::convert::Infallible;

use crate::admission::{admit, KeyRegistry, Policy, Refusal};
use crate::api::LookupAnswer;
use crate::checkpoint::{Checkpoint, SignedCheckpoint};
use crate::entry::{
    tag_set, Action, Attestation, Claim, Enroll, Entry, Leaf, Optout, Revoke, Role,
    SignedAttestation,
};
use crate::hash::{Hash, TreeHash};
use crate::key::{KeyAlg, SignerKey};
use crate::lookup::{build_answer, AnswerSource, Trust};
use crate::sii::{Name, Sii, Ssi, Tag};
use crate::tree::{prove_inclusion, MemoryHashStore};

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

/// An in-memory log with real admission, tree and checkpoints.
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

    /// Appends a leaf without any check (for building dishonest logs).
    pub fn push(&mut self, leaf: Leaf) -> u64 {
        let index = self.store.append_leaf(leaf.bytes());
        self.registry.add_entry(index, leaf.entry());
        self.leaves.push(leaf);
        index
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

    /// The signed checkpoint of the current tree.
    pub fn checkpoint(&self) -> SignedCheckpoint {
        let cp = Checkpoint {
            origin: self.key.name().to_string(),
            size: self.size(),
            root: self.store.root(),
        };
        SignedCheckpoint::sign(cp, &self.key).expect("checkpoint signs")
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
    (log.trust(), log.lookup(&sii("tel:+14155550100")))
}
