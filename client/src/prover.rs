//! The client side of an identity prover (SPEC §3 attestations, draft-peterson-mimi-idprover):
//! ask for a challenge, get the one-time code from the user (or a demo outbox folder), and exchange
//! it for a signed attestation — then check that the attestation says exactly what was asked.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use ledger_core::entry::{Action, SignedAttestation};
use ledger_core::key::VerifierKey;
use ledger_core::sii::{Name, Sii, Ssi, Tag};
use serde::{Deserialize, Serialize};

use crate::http::{ctx, join, Http};
use crate::util::outbox_file_name;

/// What an attestation is asked for.
#[derive(Clone, Debug)]
pub struct Wanted {
    /// The action.
    pub action: Action,
    /// The SII whose control is proven.
    pub sii: Sii,
    /// The MSP (claim and revoke).
    pub msp: Option<Name>,
    /// The SSI (claim and revoke).
    pub ssi: Option<Ssi>,
    /// The preference tags, shown to the user in the code message.
    pub tags: Vec<Tag>,
}

/// Where the one-time code comes from.
#[derive(Clone, Debug)]
pub enum CodeSource {
    /// Ask on the terminal.
    Terminal,
    /// Read it from the prover's demo outbox folder (scripts and tests).
    Outbox(PathBuf),
}

#[derive(Serialize)]
struct ChallengeRequest<'a> {
    sii: &'a str,
    action: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    msp: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ssi: Option<&'a str>,
    tags: Vec<&'a str>,
}

#[derive(Deserialize)]
struct ChallengeAnswer {
    challenge: String,
    expires: u64,
}

#[derive(Serialize)]
struct VerifyRequest<'a> {
    challenge: &'a str,
    code: &'a str,
}

#[derive(Deserialize)]
struct VerifyAnswer {
    attestation: String,
}

/// How long to wait for the code to appear in an outbox folder.
const OUTBOX_DEADLINE: Duration = Duration::from_secs(20);

/// Runs the challenge/verify flow with the prover at `url`.
pub fn obtain(
    http: &Http,
    url: &str,
    wanted: &Wanted,
    source: &CodeSource,
    trusted: &[VerifierKey],
) -> anyhow::Result<SignedAttestation> {
    let req = ChallengeRequest {
        sii: wanted.sii.as_str(),
        action: wanted.action.as_str(),
        msp: wanted.msp.as_ref().map(Name::as_str),
        ssi: wanted.ssi.as_ref().map(Ssi::as_str),
        tags: wanted.tags.iter().map(Tag::as_str).collect(),
    };
    let ch: ChallengeAnswer = http
        .post_json(&join(url, "/v1/challenge"), &req, None)
        .map_err(ctx("the identity prover did not start a challenge"))?;
    eprintln!(
        "identity prover: a one-time code was sent to {} (valid until {})",
        wanted.sii,
        crate::util::utc(ch.expires)
    );
    let code = match source {
        CodeSource::Terminal => ask_code(&wanted.sii)?,
        CodeSource::Outbox(dir) => read_outbox(dir, &wanted.sii, &ch.challenge)?,
    };
    let ans: VerifyAnswer = http
        .post_json(
            &join(url, "/v1/verify"),
            &VerifyRequest {
                challenge: &ch.challenge,
                code: &code,
            },
            None,
        )
        .map_err(ctx("the identity prover did not accept the code"))?;
    let att = SignedAttestation::parse(ans.attestation.as_bytes())
        .context("the identity prover's attestation is not a valid attestation note")?;
    check(&att, wanted, trusted)?;
    Ok(att)
}

/// Reads an attestation from a file: the note text as the prover returns it, or its base64.
pub fn load(path: &Path) -> anyhow::Result<SignedAttestation> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the attestation file {}", path.display()))?;
    match SignedAttestation::parse(&bytes) {
        Ok(a) => Ok(a),
        Err(note_err) => {
            let text = String::from_utf8_lossy(&bytes);
            SignedAttestation::from_base64(text.trim()).map_err(|_| {
                anyhow::anyhow!(
                    "{} is not an attestation note (nor its base64): {note_err}",
                    path.display()
                )
            })
        }
    }
}

/// Checks that an attestation is for exactly `wanted` and, when provers are pinned, by one of them.
/// (The log and every verifier check the signature against the enrolled prover key.)
pub fn check(
    att: &SignedAttestation,
    wanted: &Wanted,
    trusted: &[VerifierKey],
) -> anyhow::Result<()> {
    let a = &att.attestation;
    if a.action != wanted.action {
        bail!(
            "the attestation is for action {}, not {}",
            a.action.as_str(),
            wanted.action.as_str()
        );
    }
    if a.sii != wanted.sii {
        bail!("the attestation is for {}, not {}", a.sii, wanted.sii);
    }
    if a.msp != wanted.msp || a.ssi != wanted.ssi {
        bail!(
            "the attestation names msp {:?} and ssi {:?}, not {:?} and {:?}",
            a.msp.as_ref().map(Name::as_str),
            a.ssi.as_ref().map(Ssi::as_str),
            wanted.msp.as_ref().map(Name::as_str),
            wanted.ssi.as_ref().map(Ssi::as_str)
        );
    }
    if !trusted.is_empty() {
        let ok = trusted
            .iter()
            .any(|k| att.note.verify(std::slice::from_ref(k)).is_ok());
        if !ok {
            bail!(
                "the attestation is signed by {:?}, which is not a prover key in the trust file",
                att.signer_name()
            );
        }
    }
    Ok(())
}

fn ask_code(sii: &Sii) -> anyhow::Result<String> {
    eprint!("enter the code sent to {sii}: ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the code from the terminal")?;
    let code = line.trim().to_string();
    if code.is_empty() {
        bail!("no code entered");
    }
    Ok(code)
}

/// Waits (with a deadline) for the outbox file of `sii` to hold `challenge`, and returns its code.
fn read_outbox(dir: &Path, sii: &Sii, challenge: &str) -> anyhow::Result<String> {
    let path = dir.join(outbox_file_name(sii.as_str()));
    let deadline = Instant::now() + OUTBOX_DEADLINE;
    loop {
        if let Ok(text) = std::fs::read_to_string(&path) {
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
                    .map(str::to_string)
            };
            if field("challenge").as_deref() == Some(challenge) {
                if let Some(code) = field("code") {
                    return Ok(code);
                }
            }
        }
        if Instant::now() > deadline {
            bail!(
                "no code for challenge {challenge} appeared in {} within {}s",
                path.display(),
                OUTBOX_DEADLINE.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
