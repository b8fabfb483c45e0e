//! The commands that talk to a log, a Discovery Provider or an identity prover.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use ledger_core::api::{EntriesPage, Info, Receipt};
use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::entry::{
    tag_set, Action, Claim, Entry, Leaf, Optout, Revoke, Role, SignedAttestation,
};
use ledger_core::key::{SignerKey, VerifierKey};
use ledger_core::proof_file::ProofFile;
use ledger_core::sii::{Name, Sii, Ssi, Tag, MAX_TAGS};
use ledger_core::trust::{CheckpointRefused, TrustedLog};
use serde::Serialize;

use crate::http::{ctx, join, Http};
use crate::prover::{self, CodeSource, Wanted};
use crate::trust::{TrustFile, TrustFileExt as _};
use crate::util::{now, parse_duration, utc, VerificationFailed};

/// Where an attestation comes from.
#[derive(Clone, Debug, Default)]
pub struct AttestationArgs {
    /// A file holding the attestation note.
    pub file: Option<PathBuf>,
    /// An identity prover to run the challenge/verify flow with.
    pub prover: Option<String>,
    /// Read the one-time code from this outbox folder instead of the terminal.
    pub code_from_outbox: Option<PathBuf>,
}

/// Options shared by the commands that append an entry.
#[derive(Clone, Debug, Default)]
pub struct SubmitArgs {
    /// The log URL (else the trust file's).
    pub log: Option<String>,
    /// The signer key file.
    pub key: PathBuf,
    /// Write the receipt as a C2SP tlog-proof file here.
    pub receipt: Option<PathBuf>,
    /// Write the submitted leaf here (default: `<receipt>.leaf`).
    pub leaf_out: Option<PathBuf>,
}

// -------------------------------------------------------------------------------------------------
// trust init
// -------------------------------------------------------------------------------------------------

/// `ledger trust init`: fetch `/v1/info` and the checkpoint, write a trust file for review.
pub fn trust_init(
    trust_path: &Path,
    log: &str,
    force: bool,
    provers: &[String],
    require_attestation: bool,
    max_age: Option<&str>,
) -> anyhow::Result<()> {
    if trust_path.exists() && !force {
        bail!(
            "{} already exists; pass --force to replace it (it pins the keys you trust)",
            trust_path.display()
        );
    }
    let http = Http::new()?;
    let log = log.trim_end_matches('/');
    let info: Info = http
        .get_json(&join(log, "/v1/info"))
        .map_err(ctx("cannot fetch the log's /v1/info"))?;
    if info.vkey.split('+').next() != Some(info.origin.as_str()) {
        bail!(
            "the log's /v1/info is inconsistent: vkey {:?} is not named after origin {:?}",
            info.vkey,
            info.origin
        );
    }
    let log_key = VerifierKey::parse(&info.vkey)
        .map_err(|e| anyhow!("the log's /v1/info vkey {:?}: {e}", info.vkey))?;
    let cp_bytes = http
        .get_bytes(&join(log, "/checkpoint"))
        .map_err(ctx("cannot fetch the log's /checkpoint"))?;
    let cp = SignedCheckpoint::verify(&cp_bytes, &log_key)
        .map_err(|e| anyhow!("the log's /checkpoint does not verify with its own vkey: {e}"))?;
    for p in provers {
        VerifierKey::parse(p).map_err(|e| anyhow!("--prover {p:?}: {e}"))?;
    }
    let file = TrustFile {
        log_url: Some(log.to_string()),
        origin: info.origin.clone(),
        log_vkey: info.vkey.clone(),
        hash: info.hash,
        witnesses: info.witnesses.clone(),
        quorum: info.quorum,
        max_age_s: max_age.map(parse_duration).transpose()?,
        provers: provers.to_vec(),
        require_attestation,
        last_seen_size: cp.checkpoint.size,
        ohttp_keys: crate::oblivious::fetch_keys(&http, log).ok(),
    };
    file.trust()
        .context("the log's /v1/info does not make a valid trust file")?;
    file.save(trust_path)?;
    println!("wrote {}", trust_path.display());
    println!("  origin      {}", file.origin);
    println!("  log key     {}", file.log_vkey);
    println!("  tree hash   {}", file.hash.name());
    println!(
        "  witnesses   {} (quorum {})",
        file.witnesses.len(),
        file.quorum
    );
    println!("  checkpoint  size {}", file.last_seen_size);
    match &file.ohttp_keys {
        Some(k) => println!("  ohttp keys  {}", crate::oblivious::describe(k)),
        None => {
            println!("  ohttp keys  none (the log serves no /ohttp-keys; --relay is unavailable)")
        }
    }
    println!(
        "TRUST ON FIRST USE: these keys came from {log} itself. Compare the log key with one \
         published out of band before relying on lookups."
    );
    Ok(())
}

// -------------------------------------------------------------------------------------------------
// enroll
// -------------------------------------------------------------------------------------------------

#[derive(Serialize)]
struct EnrollRequest<'a> {
    role: &'a str,
    name: &'a str,
    key: &'a str,
}

/// `ledger enroll`: the log operator enrolls an MSP or prover key (`POST /v1/admin/enroll`), then
/// the enroll leaf is fetched and its receipt verified.
pub fn enroll(
    trust_path: &Path,
    log: Option<&str>,
    token_file: &Path,
    role: &str,
    name: &str,
    vkey: &str,
) -> anyhow::Result<()> {
    let tf = TrustFile::load(trust_path)?;
    let trust = tf.trust()?;
    let log = tf.url(log, "--log")?;
    let role =
        Role::parse(role).ok_or_else(|| anyhow!("--role {role:?}: expected msp or prover"))?;
    Name::parse(name).map_err(|e| anyhow!("--name {name:?}: {e}"))?;
    let key = read_vkey(vkey)?;
    if key.name() != name {
        bail!("--vkey is named {:?} but --name is {name:?}", key.name());
    }
    let token = std::fs::read_to_string(token_file)
        .with_context(|| format!("cannot read --admin-token-file {}", token_file.display()))?;
    let http = Http::new()?;
    let key_text = key.to_string();
    let receipt: Receipt = http
        .post_json(
            &join(&log, "/v1/admin/enroll"),
            &EnrollRequest {
                role: role.as_str(),
                name,
                key: &key_text,
            },
            Some(token.trim()),
        )
        .map_err(ctx("the log did not enroll the key"))?;
    let page: EntriesPage = http
        .get_json(&join(
            &log,
            &format!("/v1/entries?start={}&count=1", receipt.index),
        ))
        .map_err(ctx("cannot fetch the enroll leaf"))?;
    let leaf_text = page
        .entries
        .iter()
        .find(|e| e.index == receipt.index)
        .map(|e| e.leaf.clone())
        .ok_or_else(|| {
            anyhow!(
                "the log has no leaf at the receipt's index {}",
                receipt.index
            )
        })?;
    let leaf = Leaf::parse(leaf_text.as_bytes())
        .map_err(|e| anyhow!("the enroll leaf at {} does not parse: {e}", receipt.index))?;
    match leaf.entry() {
        Entry::Enroll(e) if e.role == role && e.name.as_str() == name && e.key == key => {}
        other => {
            return Err(VerificationFailed {
                step: None,
                detail: format!(
                    "the leaf at index {} is not the requested enroll (found a {})",
                    receipt.index,
                    other.kind()
                ),
            }
            .into())
        }
    }
    let cp = verify_receipt_of(&receipt, leaf.bytes(), &trust)?;
    println!(
        "enrolled {} {name} at index {} (receipt verified against {} size {})",
        role.as_str(),
        receipt.index,
        trust.origin(),
        cp.checkpoint.size
    );
    Ok(())
}

fn read_vkey(arg: &str) -> anyhow::Result<VerifierKey> {
    match VerifierKey::parse(arg.trim()) {
        Ok(k) => Ok(k),
        Err(text_err) => match std::fs::read_to_string(arg) {
            Ok(text) => VerifierKey::parse(text.trim())
                .map_err(|e| anyhow!("--vkey file {arg}: not a verifier key: {e}")),
            Err(_) => Err(anyhow!(
                "--vkey {arg:?} is neither a verifier key ({text_err}) nor a readable file"
            )),
        },
    }
}

// -------------------------------------------------------------------------------------------------
// claim, revoke, optout
// -------------------------------------------------------------------------------------------------

fn load_key(path: &Path) -> anyhow::Result<SignerKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --key {}", path.display()))?;
    SignerKey::parse(text.trim())
        .map_err(|e| anyhow!("--key {} is not a signer key: {e}", path.display()))
}

/// Canonicalizes the SII a person typed and says what it became.
pub fn canonical_sii(input: &str, region: Option<&str>) -> anyhow::Result<Sii> {
    let sii = Sii::from_human(input, region).map_err(|e| anyhow!("SII {input:?}: {e}"))?;
    if sii.as_str() == input {
        eprintln!("SII: {sii}");
    } else {
        eprintln!("SII: {sii} (canonical form of {input:?})");
    }
    Ok(sii)
}

fn get_attestation(
    http: &Http,
    args: &AttestationArgs,
    wanted: &Wanted,
    trust: &ledger_core::lookup::Trust,
) -> anyhow::Result<Option<SignedAttestation>> {
    let att = match (&args.file, &args.prover) {
        (Some(_), Some(_)) => bail!("give either --attestation or --prover, not both"),
        (Some(f), None) => {
            let a = prover::load(f)?;
            prover::check(&a, wanted, &trust.provers)
                .with_context(|| format!("--attestation {}", f.display()))?;
            a
        }
        (None, Some(url)) => {
            let source = match &args.code_from_outbox {
                Some(d) => CodeSource::Outbox(d.clone()),
                None => CodeSource::Terminal,
            };
            prover::obtain(http, url, wanted, &source, &trust.provers)?
        }
        (None, None) => return Ok(None),
    };
    let a = &att.attestation;
    if a.expires < now() {
        bail!("the attestation expired at {}", utc(a.expires));
    }
    eprintln!(
        "attestation: {} proven by {} ({}), valid until {}",
        a.sii,
        att.signer_name(),
        a.method,
        utc(a.expires)
    );
    Ok(Some(att))
}

/// The time for an entry carrying `att`: now, but never before the attestation's own time (a
/// prover's clock may run slightly ahead; SPEC §3 wants `att.time ≤ entry.time`).
pub(crate) fn entry_time(att: Option<&SignedAttestation>) -> u64 {
    let t = now();
    att.map_or(t, |a| t.max(a.attestation.time))
}

/// The claim entry `ledger claim` and `ledger claim --bulk` sign: dated now (or at its
/// attestation's time, if later), expiring `lifetime` seconds after that.
pub(crate) fn claim_entry(
    sii: Sii,
    msp: Name,
    ssi: Ssi,
    tags: Vec<Tag>,
    attestation: Option<SignedAttestation>,
    lifetime: Option<u64>,
) -> anyhow::Result<Entry> {
    let time = entry_time(attestation.as_ref());
    let expires = match lifetime {
        Some(0) => bail!("--expires must be more than 0"),
        Some(l) => Some(
            time.checked_add(l)
                .ok_or_else(|| anyhow!("--expires is too far in the future"))?,
        ),
        None => None,
    };
    Ok(Entry::Claim(Claim {
        sii,
        msp,
        ssi,
        time,
        expires,
        tags,
        attestation,
    }))
}

/// `ledger claim`.
#[allow(clippy::too_many_arguments)]
pub fn claim(
    trust_path: &Path,
    submit: &SubmitArgs,
    sii: &str,
    region: Option<&str>,
    ssi: &str,
    tags: &[String],
    expires: Option<&str>,
    att_args: &AttestationArgs,
) -> anyhow::Result<()> {
    let cx = SubmissionContext::open(trust_path, submit)?;
    let key = &cx.key;
    let msp = Name::parse(key.name())
        .map_err(|e| anyhow!("the --key name {:?} is not an MSP name: {e}", key.name()))?;
    let sii = canonical_sii(sii, region)?;
    let ssi = Ssi::parse(ssi).map_err(|e| anyhow!("--ssi {ssi:?}: {e}"))?;
    let tags = claim_tags(tags)?;
    let lifetime = expires.map(parse_duration).transpose()?;
    let wanted = Wanted {
        action: Action::Claim,
        sii: sii.clone(),
        msp: Some(msp.clone()),
        ssi: Some(ssi.clone()),
        tags: tags.clone(),
    };
    let attestation = cx.attestation(att_args, &wanted)?;
    let entry = claim_entry(sii, msp, ssi, tags, attestation, lifetime)?;
    cx.submit(entry, submit)
}

/// `ledger claim --bulk`: see [`crate::bulk`].
pub fn claim_bulk(
    trust_path: &Path,
    submit: &SubmitArgs,
    args: &crate::bulk::BulkArgs,
) -> anyhow::Result<std::process::ExitCode> {
    let cx = SubmissionContext::open(trust_path, submit)?;
    crate::bulk::run(&cx.http, &cx.log, &cx.trust, &cx.key, args)
}

/// The `--tag` values as the set SPEC §3 requires (byte order, each once), so that the log never
/// refuses the claim as non-canonical. The order given does not matter (a set has none), but a tag
/// given twice is refused: it is most likely a typo for another tag.
pub(crate) fn claim_tags(tags: &[String]) -> anyhow::Result<Vec<Tag>> {
    let mut parsed = Vec::with_capacity(tags.len());
    for t in tags {
        let tag = Tag::parse(t).map_err(|e| anyhow!("--tag {t:?}: {e}"))?;
        if parsed.contains(&tag) {
            bail!("--tag {t:?} is given twice; tags are a set, give each once");
        }
        parsed.push(tag);
    }
    if parsed.len() > MAX_TAGS {
        bail!(
            "{} --tag values; at most {MAX_TAGS} are allowed",
            parsed.len()
        );
    }
    Ok(tag_set(parsed))
}

/// `ledger revoke`: by the MSP itself (key named `msp`), or by a prover with an attestation.
#[allow(clippy::too_many_arguments)]
pub fn revoke(
    trust_path: &Path,
    submit: &SubmitArgs,
    sii: &str,
    region: Option<&str>,
    msp: Option<&str>,
    ssi: &str,
    att_args: &AttestationArgs,
) -> anyhow::Result<()> {
    let cx = SubmissionContext::open(trust_path, submit)?;
    let key = &cx.key;
    let msp_text = msp.unwrap_or(key.name());
    let msp = Name::parse(msp_text).map_err(|e| anyhow!("--msp {msp_text:?}: {e}"))?;
    let by_prover = msp.as_str() != key.name();
    let sii = canonical_sii(sii, region)?;
    let ssi = Ssi::parse(ssi).map_err(|e| anyhow!("--ssi {ssi:?}: {e}"))?;
    let wanted = Wanted {
        action: Action::Revoke,
        sii: sii.clone(),
        msp: Some(msp.clone()),
        ssi: Some(ssi.clone()),
        tags: Vec::new(),
    };
    let attestation = cx.attestation(att_args, &wanted)?;
    if by_prover && attestation.is_none() {
        bail!(
            "--key {} is not {msp}'s key: a revocation by a prover needs --attestation or --prover \
             (the recipient's proof of control, SPEC §3)",
            key.name()
        );
    }
    let entry = Entry::Revoke(Revoke {
        sii,
        msp,
        ssi,
        time: entry_time(attestation.as_ref()),
        attestation,
    });
    cx.submit(entry, submit)
}

/// `ledger optout`: signed by an enrolled prover, with the recipient's attestation.
pub fn optout(
    trust_path: &Path,
    submit: &SubmitArgs,
    sii: &str,
    region: Option<&str>,
    att_args: &AttestationArgs,
) -> anyhow::Result<()> {
    let cx = SubmissionContext::open(trust_path, submit)?;
    let sii = canonical_sii(sii, region)?;
    let wanted = Wanted {
        action: Action::Optout,
        sii: sii.clone(),
        msp: None,
        ssi: None,
        tags: Vec::new(),
    };
    let Some(attestation) = cx.attestation(att_args, &wanted)? else {
        bail!(
            "an opt-out needs the recipient's attestation: give --attestation FILE or --prover URL"
        );
    };
    let entry = Entry::Optout(Optout {
        sii,
        time: entry_time(Some(&attestation)),
        attestation,
    });
    cx.submit(entry, submit)
}

/// What every command that appends an entry (claim, revoke, opt-out) needs, set up once: the
/// trust file's verification settings, the log's URL, the signer key and an HTTP client.
struct SubmissionContext {
    trust: ledger_core::lookup::Trust,
    log: String,
    key: SignerKey,
    http: Http,
}

impl SubmissionContext {
    /// Loads the trust file, picks the log URL (`--log` or the trust file's) and the key.
    fn open(trust_path: &Path, submit: &SubmitArgs) -> anyhow::Result<SubmissionContext> {
        let tf = TrustFile::load(trust_path)?;
        let trust = tf.trust()?;
        let log = tf.url(submit.log.as_deref(), "--log")?;
        let key = load_key(&submit.key)?;
        Ok(SubmissionContext {
            trust,
            log,
            key,
            http: Http::new()?,
        })
    }

    /// The attestation for `wanted`, from a file or a prover run, checked against the trust.
    fn attestation(
        &self,
        args: &AttestationArgs,
        wanted: &Wanted,
    ) -> anyhow::Result<Option<SignedAttestation>> {
        get_attestation(&self.http, args, wanted, &self.trust)
    }

    /// Signs `entry`, submits it and verifies the receipt (see [`submit_entry`]).
    fn submit(&self, entry: Entry, args: &SubmitArgs) -> anyhow::Result<()> {
        submit_entry(&self.http, &self.log, &self.trust, entry, &self.key, args)
    }
}

/// Signs `entry` with `key`, posts it to the log, verifies the receipt (SPEC §6 step 1 and the
/// inclusion proof) and saves what `args` asks for.
fn submit_entry(
    http: &Http,
    log: &str,
    trust: &ledger_core::lookup::Trust,
    entry: Entry,
    key: &SignerKey,
    args: &SubmitArgs,
) -> anyhow::Result<()> {
    let kind = entry.kind();
    let leaf = Leaf::sign(entry, key).map_err(|e| anyhow!("cannot build the {kind} entry: {e}"))?;
    let receipt: Receipt = http
        .post_text(&join(log, "/v1/add"), leaf.bytes().to_vec())
        .map_err(ctx("the log did not accept the entry"))?;
    let cp = verify_receipt_of(&receipt, leaf.bytes(), trust)?;
    if let Some(path) = &args.receipt {
        let pf = receipt
            .to_proof_file()
            .map_err(|e| anyhow!("cannot make a proof file from the receipt: {e}"))?;
        write_new(path, &pf.to_bytes())?;
        let leaf_path = args.leaf_out.clone().unwrap_or_else(|| {
            let mut p = path.clone().into_os_string();
            p.push(".leaf");
            PathBuf::from(p)
        });
        write_new(&leaf_path, leaf.bytes())?;
        eprintln!(
            "saved the receipt to {} and the leaf to {} (check with `ledger verify-receipt`)",
            path.display(),
            leaf_path.display()
        );
    } else if let Some(p) = &args.leaf_out {
        write_new(p, leaf.bytes())?;
    }
    println!(
        "{kind} accepted: index {} (receipt verified against {} size {})",
        receipt.index,
        trust.origin(),
        cp.checkpoint.size
    );
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

pub(crate) fn verify_receipt_of(
    receipt: &Receipt,
    leaf: &[u8],
    trust: &ledger_core::lookup::Trust,
) -> anyhow::Result<SignedCheckpoint> {
    let cp = receipt
        .verify(leaf, trust.log.hash, &trust.log.log_key)
        .map_err(|e| VerificationFailed {
            step: None,
            detail: format!("the log's receipt for index {}: {e}", receipt.index),
        })?;
    verify_step_one(
        &trust.log,
        &cp,
        &format!("the log's receipt for index {}", receipt.index),
    )?;
    Ok(cp)
}

/// SPEC §6 step 1 on a receipt's checkpoint, as for a lookup: log signature, witness quorum and
/// maximum age. A failed quorum or age is reported at the `witness-quorum` step.
fn verify_step_one(log: &TrustedLog, cp: &SignedCheckpoint, what: &str) -> anyhow::Result<()> {
    log.verify(cp, now()).map_err(|e| match e {
        CheckpointRefused::Witnesses(e) => VerificationFailed {
            step: Some("witness-quorum".into()),
            detail: e.to_string(),
        },
        e => VerificationFailed {
            step: None,
            detail: format!("{what}: {e}"),
        },
    })?;
    Ok(())
}

// -------------------------------------------------------------------------------------------------
// verify-receipt
// -------------------------------------------------------------------------------------------------

/// `ledger verify-receipt`: checks a saved C2SP tlog-proof file offline.
pub fn verify_receipt(trust_path: &Path, file: &Path, leaf_path: &Path) -> anyhow::Result<()> {
    let tf = TrustFile::load(trust_path)?;
    let trust = tf.trust()?;
    let bytes = std::fs::read(file)
        .with_context(|| format!("cannot read the receipt {}", file.display()))?;
    let leaf = std::fs::read(leaf_path)
        .with_context(|| format!("cannot read --leaf {}", leaf_path.display()))?;
    let pf = ProofFile::parse(&bytes).map_err(|e| VerificationFailed {
        step: None,
        detail: format!("{} is not a tlog-proof file: {e}", file.display()),
    })?;
    pf.verify(trust.log.hash, &leaf, &trust.log.log_key)
        .map_err(|e| VerificationFailed {
            step: None,
            detail: format!("{}: {e}", file.display()),
        })?;
    verify_step_one(&trust.log, &pf.checkpoint, &file.display().to_string())?;
    println!(
        "receipt verified: leaf at index {} in {} (checkpoint size {})",
        pf.index,
        trust.origin(),
        pf.checkpoint.checkpoint.size
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(tags: &[&str]) -> Vec<String> {
        tags.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn claim_tags_are_sorted_into_a_set_and_repeats_are_refused() {
        let tags = claim_tags(&strings(&["Work", "Personal", "a"])).expect("tags");
        assert_eq!(
            tags.iter().map(Tag::as_str).collect::<Vec<_>>(),
            ["Personal", "Work", "a"]
        );
        let err = claim_tags(&strings(&["Work", "Personal", "Work"])).unwrap_err();
        assert!(err.to_string().contains("\"Work\" is given twice"), "{err}");
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert!(claim_tags(&many).is_err());
        assert!(claim_tags(&strings(&["no/slash"])).is_err());
    }
}
