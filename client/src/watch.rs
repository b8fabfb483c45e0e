//! `ledger watch`: owner monitoring (KEYTRANS's term) of a few SIIs, without reading the whole log.
//!
//! Each SII gets the verified lookup of `ledger lookup` ([`first_verified`]: the first answer of
//! the DPs, tried in order, that passes SPEC §6 steps 1–5, so the answer holds *every* entry of
//! the SII as of its checkpoint). What it shows is compared with what the state file recorded on
//! the last run, and every entry that is new — a claim, a revoke, an opt-out — becomes one SPEC §8
//! alert line naming who signed it and who attested it. So an owner learns of every change to its
//! SIIs from lookups alone, and a DP cannot hide one: hiding it fails verification, so that DP is
//! skipped (reported as a lie) and a later DP's verified answer is used, or, when no DP verifies,
//! the run fails (exit 2); it is never "no change".
//!
//! The state (per SII: the checkpoint last seen and the entries seen, by index and leaf hash) is
//! replaced crash-safely after the alerts are written. Alerts written to a file (`--alerts`) are
//! delivered exactly once even across a crash: the state records the file's length, and a tail
//! written after the last saved state (by a run killed before saving it) is cut, then written
//! again, as its changes are found again. On stdout a crash between printing and saving can
//! print a change twice, never lose one.
//!
//! An answer that contradicts the last run is refused like a lie (exit 2), and that SII's state is
//! kept: a checkpoint smaller than the last one (rollback), another root at the same size (split
//! view), an entry seen before that is missing or changed, or a new entry below the last
//! checkpoint (the last complete answer did not hold it, so the log's history changed).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context as _};
use ledger_core::api::{b64, Alert, AlertKind};
use ledger_core::entry::{Entry, Leaf};
use ledger_core::sii::{Name, Sii};
use ledger_core::{Hash, TreeHash};
use serde::{Deserialize, Serialize};

use crate::failover::{first_verified, none_verified, Skip};
use crate::http::Http;
use crate::lookup::{completeness_line, remember_size, Looked};
use crate::trust::{TrustFile, TrustFileExt as _};
use crate::util::{now, replace_file, VerificationFailed};

/// The exit status of a run that reported changes (0: no change; 2: a lookup was rejected or
/// contradicts the last run; 1: any other error, as for every `ledger` command).
pub const EXIT_CHANGES: u8 = 3;

/// What `ledger watch` was asked to do.
#[derive(Clone, Debug, Default)]
pub struct WatchArgs {
    /// SIIs as a person types them.
    pub siis: Vec<String>,
    /// A file with one SII per line (blank lines and lines starting with `#` are skipped).
    pub file: Option<PathBuf>,
    /// The region for phone numbers without a country code.
    pub region: Option<String>,
    /// The Discovery Providers, tried in order for each SII (none: the trust file's log URL).
    pub dps: Vec<String>,
    /// The state file.
    pub state: PathBuf,
    /// The MSPs allowed to claim these SIIs; a claim by any other is `unexpected-claimant`. Empty:
    /// no MSP is unexpected.
    pub allowed: Vec<String>,
    /// Append the alert lines to this file instead of printing them.
    pub alerts: Option<PathBuf>,
    /// For SIIs the state does not know yet: record their entries without reporting them.
    pub baseline: bool,
}

// -------------------------------------------------------------------------------------------------
// The state file.
// -------------------------------------------------------------------------------------------------

const STATE_VERSION: u32 = 1;

/// The on-disk state (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    /// The format version ([`STATE_VERSION`]).
    version: u32,
    /// The log these SIIs were watched in (the trust file's origin).
    origin: String,
    /// The alerts file and its length when this state was saved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alerts: Option<AlertsFile>,
    /// What was seen of each SII, by canonical SII.
    siis: BTreeMap<String, Seen>,
}

/// An alerts file and its length as of the state that records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsFile {
    path: String,
    len: u64,
}

/// What the last verified lookup of one SII showed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Seen {
    /// The checkpoint the answer was verified against (and complete as of).
    checkpoint_size: u64,
    #[serde(with = "b64::hash")]
    checkpoint_root: Hash,
    /// Every entry of the SII, in log order.
    entries: Vec<SeenEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeenEntry {
    index: u64,
    #[serde(with = "b64::hash")]
    leaf_hash: Hash,
}

impl State {
    /// Reads the state file; a missing file is a first run. A file that does not parse, or is
    /// about another log, is an error: starting afresh would silently re-baseline.
    fn load(path: &Path, origin: &str) -> anyhow::Result<State> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State {
                    version: STATE_VERSION,
                    origin: origin.to_string(),
                    alerts: None,
                    siis: BTreeMap::new(),
                })
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read the state {}", path.display()))
            }
        };
        let state: State = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "the state {} is not a `ledger watch` state file (move it away to start afresh)",
                path.display()
            )
        })?;
        if state.version != STATE_VERSION {
            bail!(
                "the state {} has version {}; this ledger reads version {STATE_VERSION}",
                path.display(),
                state.version
            );
        }
        if state.origin != origin {
            bail!(
                "the state {} is for the log {:?}, but the trust file is for {origin:?}",
                path.display(),
                state.origin
            );
        }
        Ok(state)
    }

    /// Replaces the state file crash-safely.
    fn save(&self, path: &Path) -> anyhow::Result<()> {
        let mut body = serde_json::to_vec_pretty(self).context("cannot serialize the state")?;
        body.push(b'\n');
        replace_file(path, &body)
            .with_context(|| format!("cannot save the state {}", path.display()))
    }
}

// -------------------------------------------------------------------------------------------------
// What changed.
// -------------------------------------------------------------------------------------------------

/// How new entries are judged and reported.
struct Policy<'a> {
    origin: &'a str,
    allowed: &'a [Name],
    /// Record an SII the state does not know without reporting its entries.
    baseline: bool,
    now: u64,
}

/// The result of comparing one verified lookup with the state: the alerts for the new entries and
/// what to record, or why the answer contradicts the last run.
#[derive(Debug)]
struct Changes {
    alerts: Vec<Alert>,
    seen: Seen,
}

/// Compares a verified, complete answer with what the last run saw of the SII (`None`: never seen).
fn compare(
    prev: Option<&Seen>,
    looked: &Looked,
    hash: TreeHash,
    policy: &Policy,
) -> Result<Changes, String> {
    let cp = &looked.verified.checkpoint.checkpoint;
    let mut entries = Vec::with_capacity(looked.answer.entries.len());
    for p in &looked.answer.entries {
        entries.push(SeenEntry {
            index: p.index,
            leaf_hash: hash.leaf_hash(p.leaf.as_bytes()),
        });
    }
    let seen = Seen {
        checkpoint_size: cp.size,
        checkpoint_root: cp.root,
        entries,
    };
    let new: Vec<usize> = match prev {
        None if policy.baseline => Vec::new(),
        None => (0..seen.entries.len()).collect(),
        Some(prev) => {
            check_history(prev, &seen)?;
            let known: BTreeSet<u64> = prev.entries.iter().map(|e| e.index).collect();
            (0..seen.entries.len())
                .filter(|&i| !known.contains(&seen.entries[i].index))
                .collect()
        }
    };
    let mut alerts = Vec::with_capacity(new.len());
    for i in new {
        let (Some(p), Some((index, entry))) =
            (looked.answer.entries.get(i), looked.verified.entries.get(i))
        else {
            return Err(format!(
                "entry {i} of the answer is missing after verification"
            ));
        };
        let leaf = Leaf::parse(p.leaf.as_bytes())
            .map_err(|e| format!("entry {index} does not parse after verification: {e}"))?;
        alerts.push(alert_for(
            *index,
            entry,
            &leaf,
            &looked.verified.sii,
            cp.size,
            policy,
        ));
    }
    Ok(Changes { alerts, seen })
}

/// The answer must extend what the last run saw: no smaller checkpoint, the same root at the same
/// size, every entry seen before still there unchanged, and nothing new below the last checkpoint.
fn check_history(prev: &Seen, seen: &Seen) -> Result<(), String> {
    if seen.checkpoint_size < prev.checkpoint_size {
        return Err(format!(
            "rollback: checkpoint size {} is below the size {} seen on the last run",
            seen.checkpoint_size, prev.checkpoint_size
        ));
    }
    if seen.checkpoint_size == prev.checkpoint_size && seen.checkpoint_root != prev.checkpoint_root
    {
        return Err(format!(
            "split view: checkpoint size {} has another root than on the last run",
            seen.checkpoint_size
        ));
    }
    let now: BTreeMap<u64, &Hash> = seen
        .entries
        .iter()
        .map(|e| (e.index, &e.leaf_hash))
        .collect();
    for e in &prev.entries {
        match now.get(&e.index) {
            None => {
                return Err(format!(
                    "entry {} seen on the last run is not in this complete answer: the log's history changed",
                    e.index
                ))
            }
            Some(h) if **h != e.leaf_hash => {
                return Err(format!(
                    "entry {} is not the leaf seen on the last run: the log's history changed",
                    e.index
                ))
            }
            Some(_) => {}
        }
    }
    let known: BTreeSet<u64> = prev.entries.iter().map(|e| e.index).collect();
    if let Some(e) = seen
        .entries
        .iter()
        .find(|e| e.index < prev.checkpoint_size && !known.contains(&e.index))
    {
        return Err(format!(
            "entry {} is below checkpoint {} of the last run, whose complete answer did not hold it: the log's history changed",
            e.index, prev.checkpoint_size
        ));
    }
    Ok(())
}

/// The alert for one new entry: `unexpected-claimant` for a claim by an MSP not in `--allowed`,
/// `unattested-claim` for a claim without an attestation, `revoked-by-prover` for a revoke a prover
/// signed, and `new-entry` for every other claim, revoke and opt-out. The detail names the signer
/// and the attesting prover.
fn alert_for(
    index: u64,
    entry: &Entry,
    leaf: &Leaf,
    sii: &Sii,
    size: u64,
    policy: &Policy,
) -> Alert {
    let signer = leaf.signer_name();
    let attested = match entry.attestation() {
        Some(a) => format!("attested by {} ({})", a.signer_name(), a.attestation.method),
        None => "no attestation".to_string(),
    };
    let (kind, msp, what) = match entry {
        Entry::Claim(c) => {
            let tags = if c.tags.is_empty() {
                String::new()
            } else {
                let t: Vec<&str> = c.tags.iter().map(|t| t.as_str()).collect();
                format!(" (tags {})", t.join(","))
            };
            let mut what = format!("claim of {sii} for {}{tags}", c.ssi);
            let kind = if !policy.allowed.is_empty() && !policy.allowed.contains(&c.msp) {
                what.push_str(&format!("; {} is not an allowed MSP", c.msp));
                AlertKind::UnexpectedClaimant
            } else if c.attestation.is_none() {
                AlertKind::UnattestedClaim
            } else {
                AlertKind::NewEntry
            };
            (kind, Some(c.msp.to_string()), what)
        }
        Entry::Revoke(r) => {
            let kind = if r.msp.as_str() == signer {
                AlertKind::NewEntry
            } else {
                AlertKind::RevokedByProver
            };
            let what = format!("revoke of {}'s mapping of {sii} to {}", r.msp, r.ssi);
            (kind, Some(r.msp.to_string()), what)
        }
        Entry::Optout(_) => (AlertKind::NewEntry, None, format!("opt-out of {sii}")),
        // Verification admits only entries about the SII, which these two never are.
        Entry::Enroll(_) | Entry::Map(_) => (
            AlertKind::NewEntry,
            None,
            format!("{} leaf listed for {sii}", entry.kind()),
        ),
    };
    let detail = format!(
        "{what}; signed by {signer}; {attested}; verified complete as of checkpoint {size}"
    );
    let alert = Alert::at(policy.now, kind, policy.origin, Some(index), detail).sii(sii.as_str());
    match msp {
        Some(m) => alert.msp(m),
        None => alert,
    }
}

// -------------------------------------------------------------------------------------------------
// Where the alerts go.
// -------------------------------------------------------------------------------------------------

/// The alert sink: stdout, or a file appended to and synced.
enum Sink {
    Stdout,
    File { path: PathBuf, file: File, len: u64 },
}

impl Sink {
    /// Opens the sink. For a file, a tail beyond the length the state recorded was written by a run
    /// that was killed before it saved its state: it is cut (its changes are found and written
    /// again). The file's length is recorded in the state *before* anything is appended, so that
    /// a crash after appending is always recognised.
    fn open(alerts: Option<&Path>, state: &mut State, state_path: &Path) -> anyhow::Result<Sink> {
        let Some(path) = alerts else {
            return Ok(Sink::Stdout);
        };
        let io = |what: &'static str| {
            move |e: std::io::Error| {
                anyhow!("cannot {what} the alerts file {}: {e}", path.display())
            }
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io("open"))?;
        let mut len = file.metadata().map_err(io("read"))?.len();
        let key = path.display().to_string();
        if let Some(rec) = state.alerts.as_ref().filter(|r| r.path == key) {
            if len > rec.len {
                file.set_len(rec.len)
                    .and_then(|()| file.sync_all())
                    .map_err(io("cut"))?;
                eprintln!(
                    "{}: cut {} bytes that a killed run wrote after its last saved state; those changes are reported again",
                    path.display(),
                    len - rec.len
                );
                len = rec.len;
            }
        }
        let record = AlertsFile { path: key, len };
        if state.alerts.as_ref() != Some(&record) {
            state.alerts = Some(record);
            state.save(state_path)?;
        }
        Ok(Sink::File {
            path: path.to_path_buf(),
            file,
            len,
        })
    }

    /// Writes every alert, one line each, and makes them durable (file) or flushed (stdout).
    fn write(&mut self, alerts: &[Alert]) -> anyhow::Result<()> {
        if alerts.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for a in alerts {
            text.push_str(&a.to_line());
            text.push('\n');
        }
        match self {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .context("cannot write the alerts to stdout")
            }
            Sink::File { path, file, len } => {
                file.write_all(text.as_bytes())
                    .and_then(|()| file.sync_data())
                    .with_context(|| format!("cannot write the alerts file {}", path.display()))?;
                *len += text.len() as u64;
                Ok(())
            }
        }
    }

    /// The file and length to record in the state, if alerts go to a file.
    fn record(&self) -> Option<AlertsFile> {
        match self {
            Sink::Stdout => None,
            Sink::File { path, len, .. } => Some(AlertsFile {
                path: path.display().to_string(),
                len: *len,
            }),
        }
    }

    fn describe(&self) -> String {
        match self {
            Sink::Stdout => "stdout".into(),
            Sink::File { path, .. } => path.display().to_string(),
        }
    }
}

// -------------------------------------------------------------------------------------------------
// The command.
// -------------------------------------------------------------------------------------------------

/// The SIIs to watch, canonical, each once, in the order given (arguments, then the file).
fn collect_siis(args: &WatchArgs) -> anyhow::Result<Vec<Sii>> {
    let region = args.region.as_deref();
    let mut out: Vec<Sii> = Vec::new();
    let mut push = |sii: Sii| {
        if !out.contains(&sii) {
            out.push(sii);
        }
    };
    for s in &args.siis {
        push(Sii::from_human(s, region).map_err(|e| anyhow!("SII {s:?}: {e}"))?);
    }
    if let Some(f) = &args.file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read --file {}", f.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let sii = Sii::from_human(line, region)
                .map_err(|e| anyhow!("--file {} line {}: SII {line:?}: {e}", f.display(), n + 1))?;
            push(sii);
        }
    }
    if out.is_empty() {
        bail!("no SII to watch: give SIIs as arguments or --file FILE");
    }
    Ok(out)
}

/// `ledger watch`. Returns the exit status: 0 no change, [`EXIT_CHANGES`] changes reported; a
/// rejected or contradicting answer is a [`VerificationFailed`] (exit 2) once every SII was tried.
pub fn watch(trust_path: &Path, args: &WatchArgs) -> anyhow::Result<ExitCode> {
    let tf = TrustFile::load(trust_path)?;
    let trust = tf.trust()?;
    let dps = if args.dps.is_empty() {
        vec![tf.url(None, "--dp")?]
    } else {
        args.dps
            .iter()
            .map(|d| tf.url(Some(d), "--dp"))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let siis = collect_siis(args)?;
    let allowed = args
        .allowed
        .iter()
        .map(|m| Name::parse(m).map_err(|e| anyhow!("--allowed {m:?}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut state = State::load(&args.state, trust.origin())?;
    let mut sink = Sink::open(args.alerts.as_deref(), &mut state, &args.state)?;
    let http = Http::new()?;
    let policy = Policy {
        origin: trust.origin(),
        allowed: &allowed,
        baseline: args.baseline,
        now: now(),
    };

    let mut alerts: Vec<Alert> = Vec::new();
    let mut updates: Vec<(String, Seen)> = Vec::new();
    let mut rejected: Vec<String> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    let mut newest = 0;
    let several = dps.len() > 1;
    for sii in &siis {
        let prev = state.siis.get(sii.as_str());
        let report = |skip: &Skip| {
            if several {
                eprintln!("{sii}: {}", skip.line());
            }
        };
        let (looked, dp) = match first_verified(&http, &dps, sii, &trust, report) {
            Ok(found) => (found.looked, found.dp),
            Err(skipped) => {
                let lied = skipped.iter().any(|s| s.rejected_at().is_some());
                let e = none_verified(skipped);
                match e.downcast_ref::<VerificationFailed>() {
                    Some(v) => eprintln!("{sii}: {v}"),
                    None => eprintln!("{sii}: error: {e:#}"),
                }
                if lied {
                    rejected.push(sii.to_string());
                } else {
                    failed.push(sii.to_string());
                }
                continue;
            }
        };
        let changes = match compare(prev, &looked, trust.log.hash, &policy) {
            Ok(c) => c,
            Err(why) => {
                eprintln!(
                    "{sii}: VERIFICATION FAILED: the answer from {dp} contradicts the last run: {why}"
                );
                rejected.push(sii.to_string());
                continue;
            }
        };
        let size = changes.seen.checkpoint_size;
        newest = newest.max(size);
        let complete = completeness_line(&looked.verified);
        match prev {
            None if args.baseline => eprintln!(
                "{sii}: baseline: {} entries recorded, not reported (--baseline); {complete}",
                changes.seen.entries.len()
            ),
            None => eprintln!(
                "{sii}: first run: {} entries, each reported; {complete}",
                changes.alerts.len()
            ),
            Some(p) if changes.alerts.is_empty() => eprintln!(
                "{sii}: no change since checkpoint {}; {complete}",
                p.checkpoint_size
            ),
            Some(p) => eprintln!(
                "{sii}: {} new entr{} since checkpoint {}; {complete}",
                changes.alerts.len(),
                if changes.alerts.len() == 1 {
                    "y"
                } else {
                    "ies"
                },
                p.checkpoint_size
            ),
        }
        alerts.extend(changes.alerts);
        updates.push((sii.to_string(), changes.seen));
    }

    // The alerts first, durably; then the state that says they were reported. A crash in between
    // reports them again (a file's unrecorded tail is cut first, so a file gets them once).
    sink.write(&alerts)?;
    let before = state.clone();
    for (sii, seen) in updates {
        state.siis.insert(sii, seen);
    }
    state.alerts = sink.record();
    if state != before || !args.state.exists() {
        state.save(&args.state)?;
    }
    remember_size(&tf, trust_path, newest)?;

    let tried = siis.len();
    if !rejected.is_empty() {
        return Err(VerificationFailed {
            step: None,
            detail: format!(
                "{} of {tried} SIIs not verified ({}): their state is kept and nothing is reported for them{}",
                rejected.len(),
                rejected.join(", "),
                if alerts.is_empty() {
                    String::new()
                } else {
                    format!("; {} changes of the others reported to {}", alerts.len(), sink.describe())
                }
            ),
        }
        .into());
    }
    if !failed.is_empty() {
        bail!(
            "{} of {tried} SIIs could not be looked up ({}){}",
            failed.len(),
            failed.join(", "),
            if alerts.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} changes of the others reported to {}",
                    alerts.len(),
                    sink.describe()
                )
            }
        );
    }
    if alerts.is_empty() {
        eprintln!(
            "watch: no change in {tried} SII{}",
            if tried == 1 { "" } else { "s" }
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "watch: {} change{} reported to {}",
            alerts.len(),
            if alerts.len() == 1 { "" } else { "s" },
            sink.describe()
        );
        Ok(ExitCode::from(EXIT_CHANGES))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::entry::{Action, Role};
    use ledger_core::lookup::verify_lookup_at;
    use ledger_core::testkit::{attestation, claim, optout, revoke, sii, test_key, MemLog};

    const ALICE: &str = "tel:+14155550100";

    struct World {
        log: MemLog,
        msp_a: ledger_core::key::SignerKey,
        msp_b: ledger_core::key::SignerKey,
        prover: ledger_core::key::SignerKey,
    }

    fn world() -> World {
        let mut log = MemLog::new("log.example/watch", TreeHash::Blake3);
        let (msp_a, msp_b, prover) = (
            test_key("msp-a.example"),
            test_key("msp-b.example"),
            test_key("prover.example"),
        );
        log.enroll(Role::Msp, &msp_a);
        log.enroll(Role::Msp, &msp_b);
        log.enroll(Role::Prover, &prover);
        log.seal();
        World {
            log,
            msp_a,
            msp_b,
            prover,
        }
    }

    impl World {
        fn looked(&self) -> Looked {
            let answer = self.log.lookup(&sii(ALICE));
            let verified =
                verify_lookup_at(&answer, &self.log.trust(), self.log.now).expect("verifies");
            Looked { verified, answer }
        }

        fn submit(&mut self, leaf: Leaf) -> u64 {
            let i = self.log.submit(leaf.bytes()).expect("admitted");
            self.log.seal();
            i
        }

        fn attested_claim(&self, msp: &ledger_core::key::SignerKey, ssi: &str) -> Leaf {
            let t = self.log.now;
            let att = attestation(
                &self.prover,
                Action::Claim,
                ALICE,
                Some((msp.name(), ssi)),
                t - 5,
            );
            claim(msp, ALICE, ssi, t, &["Personal"], Some(att))
        }
    }

    fn policy(allowed: &[Name], baseline: bool) -> Policy<'_> {
        Policy {
            origin: "log.example/watch",
            allowed,
            baseline,
            now: 7,
        }
    }

    fn kinds(c: &Changes) -> Vec<(&'static str, Option<u64>, Option<&str>)> {
        c.alerts
            .iter()
            .map(|a| (a.kind.as_str(), a.index, a.msp.as_deref()))
            .collect()
    }

    #[test]
    fn every_new_entry_is_one_alert_naming_signer_and_prover_and_only_once() {
        let mut w = world();
        let allowed = [Name::parse("msp-a.example").unwrap()];
        let p = policy(&allowed, false);
        let th = TreeHash::Blake3;
        // Nothing yet: the first run records an empty SII.
        let first = compare(None, &w.looked(), th, &p).unwrap();
        assert!(first.alerts.is_empty());
        assert!(first.seen.entries.is_empty());

        let a = w.submit(w.attested_claim(&w.msp_a.clone(), "mimi://msp-a.example/u/alice"));
        let c = compare(Some(&first.seen), &w.looked(), th, &p).unwrap();
        assert_eq!(kinds(&c), [("new-entry", Some(a), Some("msp-a.example"))]);
        let d = &c.alerts[0].detail;
        assert!(
            d.contains("signed by msp-a.example")
                && d.contains("attested by prover.example (sms-otp)")
                && d.contains(&format!("complete as of checkpoint {}", w.log.size())),
            "{d}"
        );
        assert_eq!(c.alerts[0].sii.as_deref(), Some(ALICE));
        assert_eq!(c.alerts[0].log, "log.example/watch");
        // Not again.
        let again = compare(Some(&c.seen), &w.looked(), th, &p).unwrap();
        assert!(again.alerts.is_empty());

        // A claim by an MSP that is not allowed; one without an attestation.
        let b = w.submit(w.attested_claim(&w.msp_b.clone(), "mimi://msp-b.example/u/al"));
        let t = w.log.now;
        let u = w.submit(claim(
            &w.msp_a,
            ALICE,
            "mimi://msp-a.example/u/x",
            t,
            &[],
            None,
        ));
        let c2 = compare(Some(&c.seen), &w.looked(), th, &p).unwrap();
        assert_eq!(
            kinds(&c2),
            [
                ("unexpected-claimant", Some(b), Some("msp-b.example")),
                ("unattested-claim", Some(u), Some("msp-a.example")),
            ]
        );
        assert!(c2.alerts[0].detail.contains("not an allowed MSP"));
        assert_eq!(c2.alerts[0].severity.as_str(), "critical");
        assert!(c2.alerts[1].detail.contains("no attestation"));

        // A revoke by the MSP, one by a prover, and an opt-out.
        let r1 = w.submit(revoke(
            &w.msp_a,
            "msp-a.example",
            ALICE,
            "mimi://msp-a.example/u/x",
            t,
            None,
        ));
        let ratt = attestation(
            &w.prover,
            Action::Revoke,
            ALICE,
            Some(("msp-b.example", "mimi://msp-b.example/u/al")),
            t - 5,
        );
        let r2 = w.submit(revoke(
            &w.prover,
            "msp-b.example",
            ALICE,
            "mimi://msp-b.example/u/al",
            t,
            Some(ratt),
        ));
        let o = w.submit(optout(&w.prover, ALICE, t));
        let c3 = compare(Some(&c2.seen), &w.looked(), th, &p).unwrap();
        assert_eq!(
            kinds(&c3),
            [
                ("new-entry", Some(r1), Some("msp-a.example")),
                ("revoked-by-prover", Some(r2), Some("msp-b.example")),
                ("new-entry", Some(o), None),
            ]
        );
        assert!(c3.alerts[1].detail.contains("signed by prover.example"));
        assert!(c3.alerts[2].detail.starts_with(
            "opt-out of tel:+14155550100; signed by prover.example; attested by prover.example"
        ));

        // Without --allowed nobody is unexpected; a first run reports what is there, unless
        // --baseline.
        let open = policy(&[], false);
        let all = compare(None, &w.looked(), th, &open).unwrap();
        assert_eq!(all.alerts.len(), 6);
        assert!(all
            .alerts
            .iter()
            .all(|a| a.kind != AlertKind::UnexpectedClaimant));
        let quiet = compare(None, &w.looked(), th, &policy(&[], true)).unwrap();
        assert!(quiet.alerts.is_empty());
        assert_eq!(quiet.seen, all.seen);
    }

    #[test]
    fn an_answer_that_contradicts_the_last_run_is_refused() {
        let mut w = world();
        let p = policy(&[], false);
        let th = TreeHash::Blake3;
        w.submit(w.attested_claim(&w.msp_a.clone(), "mimi://msp-a.example/u/alice"));
        let old = w.looked();
        let seen = compare(None, &old, th, &p).unwrap().seen;
        w.submit(w.attested_claim(&w.msp_b.clone(), "mimi://msp-b.example/u/al"));
        let newer = compare(Some(&seen), &w.looked(), th, &p).unwrap().seen;

        // An older checkpoint than the last run's.
        let err = compare(Some(&newer), &old, th, &p).unwrap_err();
        assert!(err.starts_with("rollback"), "{err}");
        // The same size with another root.
        let mut other = seen.clone();
        other.checkpoint_root[0] ^= 1;
        let err = compare(Some(&other), &old, th, &p).unwrap_err();
        assert!(err.starts_with("split view"), "{err}");
        // An entry seen before that is gone, or changed.
        let mut gone = seen.clone();
        gone.entries.push(SeenEntry {
            index: 1,
            leaf_hash: [0; 32],
        });
        gone.checkpoint_size -= 1;
        let err = compare(Some(&gone), &old, th, &p).unwrap_err();
        assert!(err.contains("entry 1 seen on the last run"), "{err}");
        let mut changed = seen.clone();
        changed.entries[0].leaf_hash[0] ^= 1;
        let err = compare(Some(&changed), &old, th, &p).unwrap_err();
        assert!(err.contains("not the leaf seen"), "{err}");
        // A new entry below the last checkpoint: the last complete answer should have held it.
        let mut short = newer.clone();
        short.entries.pop();
        let err = compare(Some(&short), &w.looked(), th, &p).unwrap_err();
        assert!(err.contains("did not hold it"), "{err}");
    }

    #[test]
    fn the_state_round_trips_and_refuses_another_log_or_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let fresh = State::load(&path, "log.example/a").unwrap();
        assert!(fresh.siis.is_empty());
        let mut s = fresh.clone();
        s.siis.insert(
            ALICE.into(),
            Seen {
                checkpoint_size: 9,
                checkpoint_root: [3; 32],
                entries: vec![SeenEntry {
                    index: 4,
                    leaf_hash: [5; 32],
                }],
            },
        );
        s.alerts = Some(AlertsFile {
            path: "alerts.jsonl".into(),
            len: 12,
        });
        s.save(&path).unwrap();
        assert_eq!(State::load(&path, "log.example/a").unwrap(), s);
        let err = State::load(&path, "log.example/b").unwrap_err();
        assert!(format!("{err:#}").contains("log.example/b"), "{err:#}");
        std::fs::write(&path, b"{\"version\": 1, \"orig").unwrap();
        let err = State::load(&path, "log.example/a").unwrap_err();
        assert!(
            format!("{err:#}").contains("not a `ledger watch` state file"),
            "{err:#}"
        );
    }

    #[test]
    fn a_file_sink_cuts_a_tail_written_after_the_last_saved_state() {
        let dir = tempfile::tempdir().unwrap();
        let state_path = dir.path().join("state.json");
        let alerts = dir.path().join("alerts.jsonl");
        let mut state = State::load(&state_path, "l").unwrap();
        // The first open records the (empty) file before anything is appended.
        let mut sink = Sink::open(Some(&alerts), &mut state, &state_path).unwrap();
        assert_eq!(
            State::load(&state_path, "l").unwrap().alerts.unwrap().len,
            0
        );
        let a = Alert::at(1, AlertKind::NewEntry, "l", Some(3), "d");
        sink.write(std::slice::from_ref(&a)).unwrap();
        state.alerts = sink.record();
        state.save(&state_path).unwrap();
        let one = std::fs::read_to_string(&alerts).unwrap();
        assert_eq!(one, format!("{}\n", a.to_line()));
        // A run that appended (part of) a line and was killed before saving its state.
        std::fs::write(&alerts, format!("{one}{{\"time\":2,\"ki")).unwrap();
        let mut state = State::load(&state_path, "l").unwrap();
        let _sink = Sink::open(Some(&alerts), &mut state, &state_path).unwrap();
        assert_eq!(std::fs::read_to_string(&alerts).unwrap(), one);
        // A file that shrank (rotated) is recorded at its new length before anything is appended.
        std::fs::write(&alerts, b"").unwrap();
        let mut state = State::load(&state_path, "l").unwrap();
        let _sink = Sink::open(Some(&alerts), &mut state, &state_path).unwrap();
        assert_eq!(
            State::load(&state_path, "l").unwrap().alerts.unwrap().len,
            0
        );
    }
}
