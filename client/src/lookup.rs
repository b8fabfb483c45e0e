//! `ledger lookup`, and the verified lookup it shares with `ledger watch`: fetch a Discovery
//! Provider's answer and verify it per SPEC §6 — steps 1 to 5, so a verified answer holds every
//! entry of the SII as of its checkpoint (§9) — before anything of it is used.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ledger_core::api::{AuditAnswer, LookupAnswer, Verdict};
use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::lookup::{verify_lookup_for, Step, Trust, Verified};
use ledger_core::sii::{Sii, Tag};
use ledger_core::state::Status;
use serde::Serialize;

use crate::commands::canonical_sii;
use crate::failover::{first_verified, none_verified, Found, JsonSkip, Skip};
use crate::http::{ctx, join, query_escape, Http, HttpError};
use crate::trust::{TrustFile, TrustFileExt as _};
use crate::util::{now, utc, VerificationFailed};

/// A verified answer together with the answer itself (its leaves, for callers that need their
/// bytes: `ledger watch` hashes them and reads their signature lines).
pub struct Looked {
    /// What verification established.
    pub verified: Verified,
    /// The answer as the DP sent it; `answer.entries[i]` is `verified.entries[i]`.
    pub answer: LookupAnswer,
}

/// Why a lookup gave nothing to rely on.
#[derive(Debug)]
pub enum LookupError {
    /// The answer was rejected at a SPEC §6 step (exit 2: the DP or the log lied).
    Rejected {
        /// The step that failed (`malformed-answer` for an answer that does not even parse).
        step: Step,
        /// What exactly was wrong.
        detail: String,
    },
    /// No answer to verify: the DP could not be reached or refused the request (exit 1).
    NoAnswer(HttpError),
}

impl LookupError {
    /// As the error `ledger` reports: a [`VerificationFailed`] naming the step, or the failure.
    pub fn into_error(self, dp: &str) -> anyhow::Error {
        match self {
            LookupError::Rejected { step, detail } => VerificationFailed {
                step: Some(format!("{} ({})", step.number(), step.as_str())),
                detail: format!("the answer from {dp} was rejected: {detail}"),
            }
            .into(),
            LookupError::NoAnswer(e) => ctx("the Discovery Provider did not answer")(e),
        }
    }
}

/// Asks the DP at `dp` about `sii` and verifies the answer per SPEC §6 (steps 1–5) with `trust`.
pub fn fetch_verified(
    http: &Http,
    dp: &str,
    sii: &Sii,
    trust: &Trust,
) -> Result<Looked, LookupError> {
    let url = join(
        dp,
        &format!("/v1/lookup?sii={}", query_escape(sii.as_str())),
    );
    let body = http.get_bytes(&url).map_err(LookupError::NoAnswer)?;
    verify_body(sii, &body, trust)
}

/// Verifies a DP answer's bytes per SPEC §6 (steps 1–5), however they arrived (directly, or
/// through an OHTTP relay).
pub(crate) fn verify_body(sii: &Sii, body: &[u8], trust: &Trust) -> Result<Looked, LookupError> {
    let answer =
        serde_json::from_slice::<LookupAnswer>(body).map_err(|e| LookupError::Rejected {
            step: Step::Malformed,
            detail: e.to_string(),
        })?;
    let verified =
        verify_lookup_for(sii, &answer, trust, now()).map_err(|r| LookupError::Rejected {
            step: r.step(),
            detail: r.detail().to_string(),
        })?;
    Ok(Looked { verified, answer })
}

/// Remembers `size` as the newest verified checkpoint size in the trust file, when it is larger
/// than the one recorded: a later, smaller checkpoint is a rollback (SPEC §6 step 1).
pub fn remember_size(tf: &TrustFile, trust_path: &Path, size: u64) -> anyhow::Result<()> {
    if size > tf.last_seen_size {
        let mut updated = tf.clone();
        updated.last_seen_size = size;
        updated.save(trust_path)?;
    }
    Ok(())
}

#[derive(Serialize)]
struct JsonMapping<'a> {
    index: u64,
    msp: &'a str,
    ssi: &'a str,
    tags: Vec<&'a str>,
    attested_by: Option<&'a str>,
    time: u64,
    expires: Option<u64>,
}

#[derive(Serialize)]
struct JsonResult<'a> {
    verified: bool,
    sii: &'a str,
    /// The DP whose answer verified (none when no answer did).
    #[serde(skip_serializing_if = "Option::is_none")]
    dp: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint: Option<JsonCheckpoint<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completeness: Option<JsonCompleteness>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mappings: Option<Vec<JsonMapping<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    /// The DPs tried before the one that answered (or all of them), and why each was skipped.
    skipped: Vec<JsonSkip<'a>>,
}

#[derive(Serialize)]
struct JsonCheckpoint<'a> {
    origin: &'a str,
    size: u64,
    root: String,
    cosigners: Vec<&'a str>,
}

/// Step 5 of a verified answer: it holds every entry of the SII as of checkpoint `as_of_checkpoint`,
/// by the map leaf at `map_index` (`as_of_checkpoint − 1`; `null` for the empty log).
#[derive(Serialize)]
struct JsonCompleteness {
    as_of_checkpoint: u64,
    map_index: Option<u64>,
}

/// `ledger lookup`: ask the DPs in order (`dps`; none: the trust file's log URL) and print the
/// first answer that verifies per SPEC §6 ([`first_verified`]); nothing unverified is printed.
///
/// Each DP skipped on the way is reported on stderr (when there are several), and with `--json`
/// in `skipped`. A rejected answer (a lie) skipped before a verified one does not change the exit
/// status: the answer shown is verified all the same, and the lie is reported. When no DP gives a
/// verified answer the error names every DP tried: exit 2 when one lied, else 1.
pub fn lookup(
    trust_path: &Path,
    sii: &str,
    region: Option<&str>,
    dps: &[String],
    json: bool,
    audit: Option<&str>,
    use_token: bool,
) -> anyhow::Result<()> {
    let tf = TrustFile::load(trust_path)?;
    let trust = tf.trust()?;
    let dps = if dps.is_empty() {
        vec![tf.url(None, "--dp")?]
    } else {
        dps.iter()
            .map(|d| tf.url(Some(d), "--dp"))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let sii = canonical_sii(sii, region)?;
    let http = crate::tokens::lookup_http(Http::new()?, trust_path, &dps, use_token)?;
    let several = dps.len() > 1;
    let report = |skip: &Skip| {
        if several {
            eprintln!("{}", skip.line());
        }
    };
    let found = match first_verified(&http, &dps, &sii, &trust, report) {
        Ok(found) => found,
        Err(skipped) => {
            if json {
                let rejected = skipped.iter().find_map(|s| match &s.error {
                    LookupError::Rejected { step, detail } => Some((*step, detail.as_str())),
                    LookupError::NoAnswer(_) => None,
                });
                let out = JsonResult {
                    verified: false,
                    sii: sii.as_str(),
                    dp: None,
                    status: None,
                    checkpoint: None,
                    completeness: None,
                    mappings: None,
                    step: rejected.map(|(step, _)| step.as_str()),
                    detail: rejected.map(|(_, detail)| detail),
                    skipped: skipped.iter().map(Skip::json).collect(),
                };
                println!("{}", serde_json::to_string_pretty(&out)?);
            }
            let hint = crate::tokens::hint(&skipped, trust_path);
            return Err(crate::tokens::with_hint(none_verified(skipped), hint));
        }
    };
    let v = &found.looked.verified;
    remember_size(&tf, trust_path, v.checkpoint.checkpoint.size)?;
    if several {
        let lies = found
            .skipped
            .iter()
            .filter(|s| s.rejected_at().is_some())
            .count();
        eprintln!(
            "verified answer from {}{}",
            found.dp,
            match lies {
                0 => String::new(),
                n => format!(" (after {n} DP{} that lied: see above)", plural(n)),
            }
        );
    }
    if json {
        print_json(v, &found)?;
    } else {
        print_table(v);
    }
    match audit {
        Some(auditor) => audit_checkpoint(&http, auditor, &v.checkpoint, json),
        None => Ok(()),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `--audit URL`: asks an auditor whether the checkpoint this lookup was verified against is
/// consistent with what it has seen (SPEC §7). `inconsistent` is a failed verification (exit 2):
/// the log showed us a view that contradicts the auditor's. `unknown-log` and `unverifiable` are
/// reported but prove nothing either way. The line goes to stderr with `--json`.
fn audit_checkpoint(
    http: &Http,
    auditor: &str,
    checkpoint: &SignedCheckpoint,
    json: bool,
) -> anyhow::Result<()> {
    let url = join(auditor.trim_end_matches('/'), "/v1/audit");
    let answer: AuditAnswer = http
        .post_text(&url, checkpoint.to_bytes())
        .map_err(ctx("the auditor did not answer"))?;
    let detail = answer.detail.as_str();
    let line = if detail.is_empty() {
        format!("audit by {auditor}: {}", answer.verdict)
    } else {
        format!("audit by {auditor}: {} ({detail})", answer.verdict)
    };
    if json {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
    if answer.verdict == Verdict::Inconsistent {
        return Err(VerificationFailed {
            step: Some("audit".into()),
            detail: format!(
                "the auditor {auditor} holds a checkpoint that contradicts the one this lookup was \
                 verified against (split view): {detail}"
            ),
        }
        .into());
    }
    Ok(())
}

pub(crate) fn print_json(v: &Verified, found: &Found) -> anyhow::Result<()> {
    let cp = &v.checkpoint.checkpoint;
    let out = JsonResult {
        verified: true,
        sii: v.sii.as_str(),
        dp: Some(&found.dp),
        status: Some(v.status.as_str()),
        checkpoint: Some(JsonCheckpoint {
            origin: &cp.origin,
            size: cp.size,
            root: B64.encode(cp.root),
            cosigners: v.cosigners.iter().map(|(k, _)| k.name()).collect(),
        }),
        completeness: Some(JsonCompleteness {
            as_of_checkpoint: cp.size,
            map_index: v.map_index,
        }),
        mappings: Some(
            v.mappings
                .iter()
                .map(|m| JsonMapping {
                    index: m.index,
                    msp: m.msp.as_str(),
                    ssi: m.ssi.as_str(),
                    tags: m.tags.iter().map(Tag::as_str).collect(),
                    attested_by: m.attested_by.as_deref(),
                    time: m.time,
                    expires: m.expires,
                })
                .collect(),
        ),
        step: None,
        detail: None,
        skipped: found.skipped.iter().map(Skip::json).collect(),
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// The line that says what step 5 proved: the answer holds every entry of the SII as of the
/// checkpoint (the map leaf that ends it is the proof).
pub fn completeness_line(v: &Verified) -> String {
    let size = v.checkpoint.checkpoint.size;
    match v.map_index {
        Some(index) => format!(
            "complete as of checkpoint {size}: the log's map (leaf {index}) proves no entry for {} is left out",
            v.sii
        ),
        None => format!("complete as of checkpoint {size}: the log is empty"),
    }
}

pub(crate) fn print_table(v: &Verified) {
    let cp = &v.checkpoint.checkpoint;
    println!(
        "{}: {} (verified: {} entries against {} checkpoint size {}, {} witness cosignature{})",
        v.sii,
        v.status.as_str(),
        v.entries.len(),
        cp.origin,
        cp.size,
        v.cosigners.len(),
        if v.cosigners.len() == 1 { "" } else { "s" }
    );
    println!("{}", completeness_line(v));
    match v.status {
        Status::None => println!("no mapping"),
        Status::OptedOut => println!("opted out: the owner of {} asked not to be mapped", v.sii),
        Status::Mapped => {
            let rows: Vec<[String; 6]> = v
                .mappings
                .iter()
                .map(|m| {
                    [
                        m.msp.to_string(),
                        m.ssi.to_string(),
                        if m.tags.is_empty() {
                            "-".to_string()
                        } else {
                            m.tags.iter().map(Tag::as_str).collect::<Vec<_>>().join(",")
                        },
                        m.attested_by.clone().unwrap_or_else(|| "-".to_string()),
                        m.index.to_string(),
                        utc(m.time),
                    ]
                })
                .collect();
            let header = ["MSP", "SSI", "TAGS", "ATTESTED BY", "INDEX", "TIME"];
            let mut widths = header.map(str::len);
            for r in &rows {
                for (w, c) in widths.iter_mut().zip(r.iter()) {
                    *w = (*w).max(c.chars().count());
                }
            }
            let line = |cells: Vec<&str>| {
                let mut s = String::new();
                for (i, (c, w)) in cells.iter().zip(widths.iter()).enumerate() {
                    if i + 1 == cells.len() {
                        s.push_str(c);
                    } else {
                        s.push_str(&format!("{c:<w$}  "));
                    }
                }
                println!("{}", s.trim_end());
            };
            line(header.to_vec());
            for r in &rows {
                line(r.iter().map(String::as_str).collect());
            }
        }
    }
}
