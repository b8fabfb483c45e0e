//! Several Discovery Providers for one lookup (`--dp A --dp B …`): try them in order and take the
//! first answer that verifies (SPEC §6, all of it).
//!
//! DP mirrors serve the origin log's own checkpoints, so every DP's answer verifies with the same
//! trust file and none of them needs to be trusted: a DP can only be skipped, never believed. One
//! that is down, that refuses (a problem such as `outside-shard` from a sharded mirror, or
//! `overloaded`) or whose answer fails verification is skipped, and each skip is kept as a [`Skip`]
//! so that the caller reports it — a rejected answer loudly, as the lie it is — and so that a
//! failure names every DP that was tried. The exit status follows the single-DP rule: 2 when no DP
//! verified and at least one lied, 1 when none answered at all.

use ledger_core::lookup::{Step, Trust};
use ledger_core::sii::Sii;
use serde::Serialize;

use crate::http::{Http, HttpError};
use crate::lookup::{fetch_verified, Looked, LookupError};
use crate::util::VerificationFailed;

/// A DP that gave no verified answer, and why.
#[derive(Debug)]
pub struct Skip {
    /// The DP's base URL.
    pub dp: String,
    /// What went wrong there.
    pub error: LookupError,
}

/// The first verified answer, and the DPs skipped before it.
pub struct Found {
    /// The verified answer.
    pub looked: Looked,
    /// The DP that gave it.
    pub dp: String,
    /// The DPs tried before it, in order.
    pub skipped: Vec<Skip>,
}

/// A skip as `--json` shows it: `kind` is `unreachable`, `refused` (with the problem `slug`, when
/// the DP sent a problem document, and the HTTP `status`) or `rejected` (with the §6 `step`).
#[derive(Serialize)]
pub struct JsonSkip<'a> {
    dp: &'a str,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    slug: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<&'static str>,
    detail: String,
}

impl Skip {
    /// The kind of skip: `unreachable`, `refused` or `rejected`.
    pub fn kind(&self) -> &'static str {
        match &self.error {
            LookupError::Rejected { .. } => "rejected",
            LookupError::NoAnswer(HttpError::Problem { .. } | HttpError::Status { .. }) => {
                "refused"
            }
            LookupError::NoAnswer(_) => "unreachable",
        }
    }

    /// The step a rejected answer failed at.
    pub fn rejected_at(&self) -> Option<Step> {
        match &self.error {
            LookupError::Rejected { step, .. } => Some(*step),
            LookupError::NoAnswer(_) => None,
        }
    }

    /// The line reported on stderr when this DP is skipped: a rejected answer is named a lie.
    pub fn line(&self) -> String {
        let dp = &self.dp;
        match &self.error {
            LookupError::Rejected { step, detail } => format!(
                "REJECTED: DP {dp} served an answer that fails step {} ({}): {detail} \
                 (it lied; its answer is ignored)",
                step.number(),
                step.as_str()
            ),
            LookupError::NoAnswer(e) => format!("skipped DP {dp}: {}: {e}", self.kind()),
        }
    }

    /// One short clause naming the DP and what happened there, for the final error.
    fn summary(&self) -> String {
        let dp = &self.dp;
        match &self.error {
            LookupError::Rejected { step, detail } => format!(
                "{dp} served an answer that fails step {} ({}): {detail}",
                step.number(),
                step.as_str()
            ),
            LookupError::NoAnswer(e) => match (e.status(), e.slug()) {
                (Some(status), Some(slug)) => {
                    format!("{dp} refused ({status} {slug}): {}", e.reason())
                }
                (Some(status), None) => format!("{dp} refused (HTTP {status}): {}", e.reason()),
                _ => format!("{dp} unreachable: {}", e.reason()),
            },
        }
    }

    /// As `--json` shows it.
    pub fn json(&self) -> JsonSkip<'_> {
        let (status, slug, step, detail) = match &self.error {
            LookupError::Rejected { step, detail } => {
                (None, None, Some(step.as_str()), detail.clone())
            }
            LookupError::NoAnswer(e) => (e.status(), e.slug(), None, e.reason()),
        };
        JsonSkip {
            dp: &self.dp,
            kind: self.kind(),
            status,
            slug,
            step,
            detail,
        }
    }
}

/// Asks each DP of `dps` in order about `sii` and returns the first answer that verifies with
/// `trust`; `on_skip` hears of each DP skipped, as it is skipped. When none verifies, the skips of
/// all of them, in order.
pub fn first_verified(
    http: &Http,
    dps: &[String],
    sii: &Sii,
    trust: &Trust,
    mut on_skip: impl FnMut(&Skip),
) -> Result<Found, Vec<Skip>> {
    let mut skipped = Vec::new();
    for dp in dps {
        match fetch_verified(http, dp, sii, trust) {
            Ok(looked) => {
                return Ok(Found {
                    looked,
                    dp: dp.clone(),
                    skipped,
                })
            }
            Err(error) => {
                let skip = Skip {
                    dp: dp.clone(),
                    error,
                };
                on_skip(&skip);
                skipped.push(skip);
            }
        }
    }
    Err(skipped)
}

/// The error of a lookup where no DP verified: a [`VerificationFailed`] (exit 2) at the first
/// rejected answer's step when any DP lied, else a plain error (exit 1). It names every DP tried;
/// with one DP it is exactly that DP's error.
pub fn none_verified(mut skipped: Vec<Skip>) -> anyhow::Error {
    if skipped.len() == 1 {
        if let Some(skip) = skipped.pop() {
            return skip.error.into_error(&skip.dp);
        }
    }
    let n = skipped.len();
    let all = skipped
        .iter()
        .map(Skip::summary)
        .collect::<Vec<_>>()
        .join("; ");
    match skipped.iter().find_map(Skip::rejected_at) {
        Some(step) => VerificationFailed {
            step: Some(format!("{} ({})", step.number(), step.as_str())),
            detail: format!(
                "none of the {n} Discovery Providers tried gave a verified answer, and at least \
                 one lied: {all}"
            ),
        }
        .into(),
        None => anyhow::anyhow!(
            "none of the {n} Discovery Providers tried gave an answer to verify: {all}"
        ),
    }
}
