//! `ledger claim --bulk FILE.csv`: bulk onboarding (issue #13). Each CSV row becomes a claim
//! signed exactly as `ledger claim` signs one; the claims go to the log in bundles of up to 1,000
//! through `POST /v1/add-bundle`, every receipt is verified, refused rows are reported, and a
//! crashed or interrupted run resumes where it stopped.
//!
//! **CSV**: columns `sii,ssi,tags[,attestation]`; `tags` holds zero or more tags separated by
//! `;` (a set: the order does not matter); `attestation` is the path of an attestation note file,
//! relative to the CSV's folder. Fields may be quoted (RFC 4180: `"a,b"`, `""` for a quote). A
//! first row whose first field is `sii` is a header. Empty lines and lines starting with `#` are
//! skipped. Rows are numbered by their line in the file (1-based), as an editor shows them.
//!
//! **Resuming without duplicates.** The log is idempotent for identical leaf bytes only: a claim
//! signed again after a crash has a new `time`, hence new bytes, hence a second entry. So the
//! signed leaves of a bundle are written to the state file (crash-safely, with
//! [`crate::util::replace_file`]) *before* the bundle is sent, and a resumed run sends exactly
//! those bytes again: the log answers every leaf it already holds with its original receipt and
//! stores each row once, however the previous run ended (before the request, during it, or after
//! the answer but before the state was updated). Re-signing deterministically instead would need
//! the entry time in the state anyway and would break if the key or the attestation file changed
//! between the runs; persisting the bytes has neither problem and costs one state write per
//! bundle. The state also records the first row not yet acknowledged, the refused rows and a
//! fingerprint of the CSV (a changed CSV is refused rather than resumed at the wrong row).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use ledger_core::bundle::{encode_bundle, BundleItem, MAX_BUNDLE_LEAVES};
use ledger_core::entry::{Action, Leaf};
use ledger_core::key::SignerKey;
use ledger_core::problem::ProblemType;
use ledger_core::sii::{Name, Sii, Ssi};
use ledger_core::TreeHash;
use serde::{Deserialize, Serialize};

use crate::http::{join, Http, HttpError};
use crate::prover::{self, Wanted};
use crate::util::{parse_duration, replace_file};

/// Exit status when every row was read and sent but some were refused (bad CSV row or a
/// refusal by the log); the report file lists them. (0: all admitted; 1: error; 2: a receipt
/// failed verification.)
pub const EXIT_SOME_REFUSED: u8 = 4;

/// The slug reported for a CSV row that could not be made into a claim (not a log slug: the
/// row was never sent).
pub const BAD_ROW: &str = "bad-row";

/// The separator of tags inside the `tags` field.
pub const TAG_SEPARATOR: char = ';';

/// Test hook: after this many bundles were answered, exit with status 101 *before* the state
/// records the answer, as a crash at the worst moment would (the log holds the leaves, the state
/// still has them in flight). Used by the end-to-end resume test.
pub const CRASH_AFTER_ENV: &str = "LEDGER_BULK_CRASH_AFTER_BUNDLES";

/// What `ledger claim --bulk` was asked to do.
#[derive(Clone, Debug)]
pub struct BulkArgs {
    /// The CSV file.
    pub csv: PathBuf,
    /// The state file (default `<csv>.state`).
    pub state: Option<PathBuf>,
    /// The refused-rows report (default `<csv>.refused`).
    pub report: Option<PathBuf>,
    /// Leaves per bundle (1..=1000).
    pub bundle_size: usize,
    /// The region for phone numbers without a country code.
    pub region: Option<String>,
    /// How long each mapping stays current.
    pub expires: Option<String>,
}

/// One row that was not admitted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedRow {
    /// The row's line number in the CSV.
    pub row: usize,
    /// The SII as written in the CSV.
    pub sii: String,
    /// The log's problem slug, or [`BAD_ROW`].
    pub slug: String,
    /// What was wrong.
    pub detail: String,
}

/// One signed leaf of the bundle in flight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct InFlightLeaf {
    row: usize,
    sii: String,
    leaf: String,
}

/// The bundle being sent: the rows `[from, to)` of the data rows; its signed leaves and the
/// rows of that range that could not be made into claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct InFlight {
    to: usize,
    leaves: Vec<InFlightLeaf>,
    bad: Vec<RefusedRow>,
}

/// The state file (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    /// SHA-256 of the CSV's bytes, hex.
    csv_sha256: String,
    /// The first data row (position in the parsed rows, not a line number) not yet acknowledged.
    next: usize,
    /// Rows admitted so far.
    admitted: usize,
    /// Rows refused so far.
    refused: Vec<RefusedRow>,
    /// The bundle sent but not yet acknowledged, if any.
    inflight: Option<InFlight>,
}

/// A data row of the CSV.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Its line number.
    pub line: usize,
    /// Its fields.
    pub fields: Vec<String>,
}

/// Runs `ledger claim --bulk`.
pub fn run(
    http: &Http,
    log: &str,
    trust: &ledger_core::lookup::Trust,
    key: &SignerKey,
    args: &BulkArgs,
) -> anyhow::Result<ExitCode> {
    if args.bundle_size == 0 || args.bundle_size > MAX_BUNDLE_LEAVES {
        bail!("--bundle-size must be 1..={MAX_BUNDLE_LEAVES}");
    }
    let msp = Name::parse(key.name())
        .map_err(|e| anyhow!("the --key name {:?} is not an MSP name: {e}", key.name()))?;
    let lifetime = args.expires.as_deref().map(parse_duration).transpose()?;
    if lifetime == Some(0) {
        bail!("--expires must be more than 0");
    }
    let bytes = std::fs::read(&args.csv)
        .with_context(|| format!("cannot read the CSV {}", args.csv.display()))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| anyhow!("the CSV {} is not UTF-8: {e}", args.csv.display()))?;
    let rows = parse_csv(text).with_context(|| format!("the CSV {}", args.csv.display()))?;
    let fingerprint: String = sha256(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    let state_path = args
        .state
        .clone()
        .unwrap_or_else(|| with_suffix(&args.csv, ".state"));
    let report_path = args
        .report
        .clone()
        .unwrap_or_else(|| with_suffix(&args.csv, ".refused"));
    let mut state = match std::fs::read(&state_path) {
        Ok(b) => {
            let s: State = serde_json::from_slice(&b)
                .with_context(|| format!("the state file {} is not valid", state_path.display()))?;
            if s.csv_sha256 != fingerprint {
                bail!(
                    "{} changed since the state file {} was written; delete the state file to \
                     start over (rows already admitted are then answered with their receipts)",
                    args.csv.display(),
                    state_path.display()
                );
            }
            eprintln!(
                "resuming from {}: {} of {} rows done",
                state_path.display(),
                s.next,
                rows.len()
            );
            s
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => State {
            csv_sha256: fingerprint,
            next: 0,
            admitted: 0,
            refused: Vec::new(),
            inflight: None,
        },
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", state_path.display())),
    };
    let base = args.csv.parent().unwrap_or(Path::new("."));
    let signer = RowSigner {
        key,
        msp,
        region: args.region.as_deref(),
        lifetime,
        base,
        trust,
    };
    let bar = progress_bar(rows.len(), state.next);
    let crash_after: Option<usize> = std::env::var(CRASH_AFTER_ENV)
        .ok()
        .and_then(|v| v.parse().ok());
    let mut sent = 0usize;
    let mut verifier = ReceiptVerifier::new(trust);
    let url = join(log, "/v1/add-bundle");
    loop {
        let inflight = match state.inflight.take() {
            Some(f) => f,
            None if state.next >= rows.len() => break,
            None => {
                let f = signer.bundle(&rows, state.next, args.bundle_size);
                state.inflight = Some(f.clone());
                save(&state_path, &state)?;
                f
            }
        };
        let answers = if inflight.leaves.is_empty() {
            Vec::new()
        } else {
            send_bundle(http, &url, &inflight.leaves)?
        };
        sent += 1;
        if crash_after.is_some_and(|n| sent >= n) {
            eprintln!("{CRASH_AFTER_ENV}: exiting after {sent} bundles, state not updated");
            std::process::exit(101);
        }
        let mut refused = inflight.bad.clone();
        for (leaf, answer) in inflight.leaves.iter().zip(&answers) {
            match answer {
                BundleItem::Receipt(r) => {
                    verifier.verify(r, leaf.leaf.as_bytes())?;
                    state.admitted += 1;
                }
                BundleItem::Problem(p) => refused.push(RefusedRow {
                    row: leaf.row,
                    sii: leaf.sii.clone(),
                    slug: p
                        .kind()
                        .map(ProblemType::slug)
                        .unwrap_or(p.type_.as_str())
                        .to_string(),
                    detail: p.detail.clone(),
                }),
            }
        }
        refused.sort_by_key(|r| r.row);
        state.refused.extend(refused);
        state.next = inflight.to;
        state.inflight = None;
        save(&state_path, &state)?;
        write_report(&report_path, &state.refused)?;
        if let Some(b) = &bar {
            b.set_position(state.next as u64);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    write_report(&report_path, &state.refused)?;
    println!(
        "{} rows: {} admitted, {} refused{}",
        rows.len(),
        state.admitted,
        state.refused.len(),
        if state.refused.is_empty() {
            String::new()
        } else {
            format!(" (see {})", report_path.display())
        }
    );
    Ok(if state.refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_SOME_REFUSED)
    })
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    // H(0x00 ‖ bytes) with SHA-256: a fingerprint is all that is needed, and the core has it.
    TreeHash::Sha256.leaf_hash(bytes)
}

/// A bar on a terminal (stderr), nothing otherwise.
fn progress_bar(total: usize, done: usize) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows, {per_sec}, eta {eta}")
    {
        bar.set_style(style);
    }
    bar.set_position(done as u64);
    Some(bar)
}

fn save(path: &Path, state: &State) -> anyhow::Result<()> {
    let json = serde_json::to_vec(state).context("cannot encode the state")?;
    replace_file(path, &json)
}

/// Writes the refused rows as CSV: `row,sii,slug,detail`, with a header.
fn write_report(path: &Path, refused: &[RefusedRow]) -> anyhow::Result<()> {
    let mut out = String::from("row,sii,slug,detail\n");
    for r in refused {
        out.push_str(&format!(
            "{},{},{},{}\n",
            r.row,
            csv_field(&r.sii),
            csv_field(&r.slug),
            csv_field(&r.detail)
        ));
    }
    replace_file(path, out.as_bytes())
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Whether a problem says the log was busy or could not write for now, so that sending the same
/// leaf again is the answer (SPEC §4 idempotence makes it safe).
fn is_transient(kind: Option<ProblemType>) -> bool {
    matches!(
        kind,
        Some(
            ProblemType::Overloaded
                | ProblemType::RateLimited
                | ProblemType::StorageFull
                | ProblemType::StorageUnavailable
        )
    )
}

/// Sends one bundle, retrying while the log answers that it is busy (`overloaded`,
/// `rate-limited`, `storage-full`, `storage-unavailable`) for the whole bundle or for some of its
/// leaves: nothing of those was stored, and the leaves already admitted are answered again with
/// their receipts, so sending the same bytes again is safe. Any other failure ends the run (the
/// state keeps the bundle in flight for the next run).
fn send_bundle(http: &Http, url: &str, leaves: &[InFlightLeaf]) -> anyhow::Result<Vec<BundleItem>> {
    let texts: Vec<&[u8]> = leaves.iter().map(|l| l.leaf.as_bytes()).collect();
    let body = encode_bundle(&texts).map_err(|e| anyhow!("cannot frame the bundle: {e}"))?;
    let mut attempt = 0u32;
    loop {
        let busy = match http.post_octets::<Vec<BundleItem>>(url, body.clone()) {
            Ok(items) if items.len() == leaves.len() => {
                let transient = items.iter().find_map(|i| match i {
                    BundleItem::Problem(p) if is_transient(p.kind()) => p.kind(),
                    _ => None,
                });
                match transient {
                    Some(kind) if attempt < 30 => kind,
                    _ => return Ok(items),
                }
            }
            Ok(items) => bail!(
                "{url} answered {} items for a bundle of {} leaves",
                items.len(),
                leaves.len()
            ),
            Err(HttpError::Problem { problem, .. })
                if attempt < 30 && is_transient(problem.kind()) =>
            {
                problem.kind().unwrap_or(ProblemType::Overloaded)
            }
            Err(e) => {
                return Err(
                    anyhow!(e).context("the log did not take the bundle (run again to resume)")
                )
            }
        };
        attempt += 1;
        let wait = Duration::from_millis(250 * u64::from(attempt.min(20)));
        eprintln!("the log is busy ({}): retrying in {wait:?}", busy.slug());
        std::thread::sleep(wait);
    }
}

/// Verifies receipts, checking each distinct checkpoint once (a bundle's receipts share a few).
struct ReceiptVerifier<'a> {
    trust: &'a ledger_core::lookup::Trust,
    checked: Option<String>,
}

impl<'a> ReceiptVerifier<'a> {
    fn new(trust: &'a ledger_core::lookup::Trust) -> ReceiptVerifier<'a> {
        ReceiptVerifier {
            trust,
            checked: None,
        }
    }

    fn verify(&mut self, r: &ledger_core::api::Receipt, leaf: &[u8]) -> anyhow::Result<()> {
        if self.checked.as_deref() == Some(r.checkpoint.as_str()) {
            // Same checkpoint as the last receipt: only the leaf hash and inclusion are new.
            let cp = ledger_core::checkpoint::SignedCheckpoint::parse(r.checkpoint.as_bytes())
                .map_err(|e| anyhow!("receipt checkpoint: {e}"))?;
            let th = self.trust.log.hash;
            if th.leaf_hash(leaf) != r.leaf_hash {
                return Err(receipt_failed(r.index, "the leaf hash is not this leaf's"));
            }
            ledger_core::tree::verify_inclusion(
                th,
                r.index,
                cp.checkpoint.size,
                &r.leaf_hash,
                &r.inclusion,
                &cp.checkpoint.root,
            )
            .map_err(|e| receipt_failed(r.index, &e.to_string()))?;
            return Ok(());
        }
        crate::commands::verify_receipt_of(r, leaf, self.trust)?;
        self.checked = Some(r.checkpoint.clone());
        Ok(())
    }
}

fn receipt_failed(index: u64, detail: &str) -> anyhow::Error {
    crate::util::VerificationFailed {
        step: None,
        detail: format!("the log's receipt for index {index}: {detail}"),
    }
    .into()
}

/// Makes claims of CSV rows, as `ledger claim` makes one.
struct RowSigner<'a> {
    key: &'a SignerKey,
    msp: Name,
    region: Option<&'a str>,
    lifetime: Option<u64>,
    base: &'a Path,
    trust: &'a ledger_core::lookup::Trust,
}

impl RowSigner<'_> {
    /// The next bundle: rows from `from` until `size` leaves are signed (bad rows do not count).
    fn bundle(&self, rows: &[Row], from: usize, size: usize) -> InFlight {
        let mut leaves = Vec::new();
        let mut bad = Vec::new();
        let mut to = from;
        while to < rows.len() && leaves.len() < size {
            let Some(row) = rows.get(to) else { break };
            let sii = row.fields.first().cloned().unwrap_or_default();
            match self.sign(row) {
                Ok(leaf) => leaves.push(InFlightLeaf {
                    row: row.line,
                    sii,
                    leaf,
                }),
                Err(e) => bad.push(RefusedRow {
                    row: row.line,
                    sii,
                    slug: BAD_ROW.into(),
                    detail: format!("{e:#}"),
                }),
            }
            to += 1;
        }
        InFlight { to, leaves, bad }
    }

    /// The signed claim of one row, as text.
    fn sign(&self, row: &Row) -> anyhow::Result<String> {
        let f = &row.fields;
        if f.len() < 3 || f.len() > 4 {
            bail!("{} fields; expected sii,ssi,tags[,attestation]", f.len());
        }
        let (sii_text, ssi_text, tags_text) = (&f[0], &f[1], &f[2]);
        let sii =
            Sii::from_human(sii_text, self.region).map_err(|e| anyhow!("SII {sii_text:?}: {e}"))?;
        let ssi = Ssi::parse(ssi_text).map_err(|e| anyhow!("SSI {ssi_text:?}: {e}"))?;
        let tags: Vec<String> = tags_text
            .split(TAG_SEPARATOR)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        let tags = crate::commands::claim_tags(&tags)?;
        let attestation = match f.get(3).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            None => None,
            Some(path) => {
                let path = self.base.join(path);
                let a = prover::load(&path)?;
                let wanted = Wanted {
                    action: Action::Claim,
                    sii: sii.clone(),
                    msp: Some(self.msp.clone()),
                    ssi: Some(ssi.clone()),
                    tags: tags.clone(),
                };
                prover::check(&a, &wanted, &self.trust.provers)
                    .with_context(|| format!("attestation {}", path.display()))?;
                Some(a)
            }
        };
        let entry = crate::commands::claim_entry(
            sii,
            self.msp.clone(),
            ssi,
            tags,
            attestation,
            self.lifetime,
        )?;
        let leaf =
            Leaf::sign(entry, self.key).map_err(|e| anyhow!("cannot sign the claim: {e}"))?;
        String::from_utf8(leaf.bytes().to_vec()).map_err(|_| anyhow!("the leaf is not UTF-8"))
    }
}

/// Parses the CSV into data rows (RFC 4180 quoting; the header, empty lines and `#` lines
/// skipped). An unterminated quote is an error of the whole file (it swallows every later row).
pub fn parse_csv(text: &str) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut line = 1usize;
    let mut chars = text.chars().peekable();
    let mut first = true;
    while chars.peek().is_some() {
        let start_line = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut raw = String::new();
        loop {
            let Some(c) = chars.next() else {
                if quoted {
                    bail!("line {start_line}: a quoted field is not closed");
                }
                break;
            };
            raw.push(c);
            if quoted {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    '"' => quoted = false,
                    '\n' => {
                        line += 1;
                        field.push(c);
                    }
                    _ => field.push(c),
                }
                continue;
            }
            match c {
                '"' if field.is_empty() => quoted = true,
                ',' => fields.push(std::mem::take(&mut field)),
                '\n' => {
                    line += 1;
                    break;
                }
                '\r' if chars.peek() == Some(&'\n') => {}
                _ => field.push(c),
            }
        }
        fields.push(field);
        let blank = fields.len() == 1 && fields[0].trim().is_empty();
        let comment = raw.starts_with('#');
        let header = first && fields[0].trim().eq_ignore_ascii_case("sii");
        if !blank && !comment {
            first = false;
        }
        if blank || comment || header {
            continue;
        }
        let fields = fields.into_iter().map(|f| f.trim().to_string()).collect();
        rows.push(Row {
            line: start_line,
            fields,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_quotes_header_and_comments() {
        let rows = parse_csv(
            "sii,ssi,tags\n# a comment\n+14155550100,mimi://a/u/1,Personal;Work\n\n\"mailto:a,b@x.example\",\"mimi://a/u/\"\"2\",,att.note\r\n",
        )
        .expect("parses");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 3);
        assert_eq!(
            rows[0].fields,
            ["+14155550100", "mimi://a/u/1", "Personal;Work"]
        );
        assert_eq!(rows[1].line, 5);
        assert_eq!(
            rows[1].fields,
            ["mailto:a,b@x.example", "mimi://a/u/\"2", "", "att.note"]
        );
        assert!(parse_csv("\"open,x\n").is_err());
        // No header: the first row is data.
        assert_eq!(parse_csv("a,b,c").expect("parses")[0].line, 1);
    }

    #[test]
    fn report_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a, \"b\""), "\"a, \"\"b\"\"\"");
    }
}
