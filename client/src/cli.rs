//! Command-line definition and dispatch.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::commands::{self, AttestationArgs, SubmitArgs};
use crate::watch::{self, WatchArgs};

/// The mimi-ledger client: keys, claims, revocations, opt-outs, verified lookups and watching.
///
/// Exit status: 0 done and verified; 2 verification failed (the failed step is printed);
/// 1 anything else (bad arguments, unreachable server, refused request); `watch` exits 3 when it
/// reported changes; `claim --bulk` exits 4 when some rows were refused.
///
/// Example:
///   ledger trust init --log https://log.example
///   ledger lookup "+1 (415) 555-0100"
#[derive(Debug, Parser)]
#[command(
    name = "ledger",
    version,
    about,
    verbatim_doc_comment,
    propagate_version = true
)]
pub struct Cli {
    /// The trust file (TOML): the log's origin, key and tree hash, witnesses, provers.
    #[arg(
        long,
        global = true,
        env = "LEDGER_TRUST",
        default_value = "trust.toml",
        value_name = "FILE"
    )]
    trust: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate an Ed25519 signer key for an MSP, a prover or a log.
    ///
    /// Writes the signer key (`PRIVATE+KEY+<name>+...`) to FILE with mode 0600 and prints the verifier
    /// key on stdout, to be enrolled in the log.
    ///
    /// Example:
    ///   ledger keygen --name msp-a.example --out msp-a.key
    #[command(verbatim_doc_comment)]
    Keygen {
        /// The key name: the MSP's or prover's DNS name (e.g. msp-a.example).
        #[arg(long)]
        name: String,
        /// Where to write the signer key; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Manage the trust file (what this client trusts about a log).
    ///
    /// Example:
    ///   ledger --trust trust.toml trust init --log http://127.0.0.1:8080
    #[command(subcommand, verbatim_doc_comment)]
    Trust(TrustCommand),
    /// Enroll an MSP or prover verifier key in the log (log operators; needs the admin token).
    ///
    /// Fetches the new enroll leaf and verifies the log's receipt for it.
    ///
    /// Example:
    ///   ledger enroll --log http://127.0.0.1:8080 --admin-token-file data/admin.token \
    ///       --role msp --name msp-a.example --vkey "$(ledger keygen --name msp-a.example --out msp-a.key)"
    #[command(verbatim_doc_comment)]
    Enroll {
        /// The log's base URL (default: the trust file's log_url).
        #[arg(long, value_name = "URL")]
        log: Option<String>,
        /// A file holding the log's admin bearer token.
        #[arg(long, value_name = "FILE")]
        admin_token_file: PathBuf,
        /// `msp` or `prover`.
        #[arg(long)]
        role: String,
        /// The MSP's or prover's name (the key's name).
        #[arg(long)]
        name: String,
        /// The verifier key, as text or a file holding it.
        #[arg(long, value_name = "VKEY")]
        vkey: String,
    },
    /// Claim a mapping SII -> SSI for an MSP: canonicalize, sign, submit, verify the receipt.
    ///
    /// With --prover, the recipient proves control of the SII to an identity prover first (a
    /// one-time code, asked for on the terminal or read from --code-from-outbox).
    ///
    /// With --bulk FILE.csv, claims every row of the CSV (columns `sii,ssi,tags[,attestation]`,
    /// tags separated by `;`, an attestation as a note file path relative to the CSV; a header
    /// row `sii,...` is skipped), signed as one claim is, sent in bundles of up to 1,000
    /// (`POST /v1/add-bundle`), every receipt verified. Refused rows (row, SII, slug, detail) are
    /// written to FILE.csv.refused (or --report); progress is kept in FILE.csv.state (or
    /// --state), so running the same command again after a crash or Ctrl-C resumes where it
    /// stopped, and no row is stored twice. Exit status: 0 all rows admitted, 4 some refused
    /// (see the report), 2 a receipt failed verification, 1 any other error.
    ///
    /// Example:
    ///   ledger claim --key msp-a.key --sii "+1 (415) 555-0100" --ssi mimi://msp-a.example/u/alice \
    ///       --tag Personal --expires 365d --prover http://127.0.0.1:8090 --receipt claim.proof
    ///   ledger claim --key msp-a.key --bulk users.csv --region US --expires 365d
    #[command(verbatim_doc_comment)]
    Claim {
        #[command(flatten)]
        submit: SubmitOpts,
        /// The SII as a person types it (a phone number or an e-mail address).
        #[arg(long, required_unless_present = "bulk")]
        sii: Option<String>,
        /// The region for phone numbers without a country code (e.g. US, CH).
        #[arg(long, value_name = "CC")]
        region: Option<String>,
        /// The user's SSI at the MSP (an absolute URI).
        #[arg(long, required_unless_present = "bulk")]
        ssi: Option<String>,
        /// Claim every row of this CSV file (see above) instead of one SII.
        #[arg(
            long,
            value_name = "FILE.csv",
            conflicts_with_all = ["sii", "ssi", "tags", "receipt", "leaf_out", "attestation", "prover"]
        )]
        bulk: Option<PathBuf>,
        /// With --bulk: the state file (default FILE.csv.state).
        #[arg(long, value_name = "FILE", requires = "bulk")]
        state: Option<PathBuf>,
        /// With --bulk: the refused-rows report (default FILE.csv.refused).
        #[arg(long, value_name = "FILE", requires = "bulk")]
        report: Option<PathBuf>,
        /// With --bulk: claims per bundle (1..=1000).
        #[arg(long, value_name = "N", default_value_t = 1000, requires = "bulk")]
        bundle_size: usize,
        /// A preference tag (repeatable, at most 16).
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// How long the mapping stays current (e.g. 365d, 12h).
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        #[command(flatten)]
        attestation: AttestationOpts,
    },
    /// Revoke a mapping: by the MSP itself, or by a prover with the recipient's attestation.
    ///
    /// With an MSP key, --msp defaults to the key's name. With a prover key, name the MSP and
    /// give --attestation or --prover.
    ///
    /// Example:
    ///   ledger revoke --key msp-a.key --sii tel:+14155550100 --ssi mimi://msp-a.example/u/alice
    #[command(verbatim_doc_comment)]
    Revoke {
        #[command(flatten)]
        submit: SubmitOpts,
        /// The SII as a person types it.
        #[arg(long)]
        sii: String,
        /// The region for phone numbers without a country code.
        #[arg(long, value_name = "CC")]
        region: Option<String>,
        /// The MSP of the mapping (default: the key's name).
        #[arg(long)]
        msp: Option<String>,
        /// The SSI of the mapping.
        #[arg(long)]
        ssi: String,
        #[command(flatten)]
        attestation: AttestationOpts,
    },
    /// Record the recipient's opt-out ("do not map me"), signed by an enrolled prover.
    ///
    /// Example:
    ///   ledger optout --key prover.key --sii "+1 415 555 0100" --prover http://127.0.0.1:8090
    #[command(verbatim_doc_comment)]
    Optout {
        #[command(flatten)]
        submit: SubmitOpts,
        /// The SII as a person types it.
        #[arg(long)]
        sii: String,
        /// The region for phone numbers without a country code.
        #[arg(long, value_name = "CC")]
        region: Option<String>,
        #[command(flatten)]
        attestation: AttestationOpts,
    },
    /// Look up an SII at a Discovery Provider and verify the answer (SPEC §6) before showing it.
    ///
    /// Prints a table of the current mappings, `no mapping` or `opted out`, and the checkpoint the
    /// answer is complete as of (step 5: the log's map proves no entry was left out). Exit 2 when
    /// the answer fails verification, naming the failed step.
    ///
    /// With several --dp (the log and its mirrors), they are tried in order and the first answer
    /// that verifies is shown (exit 0, even when a DP before it lied: that lie is reported on
    /// stderr, and in `skipped` with --json). When none verifies: exit 2 if any answer was
    /// rejected, else 1; the error names every DP tried.
    ///
    /// Example:
    ///   ledger lookup "+1 (415) 555-0100" --dp http://127.0.0.1:8080
    ///   ledger lookup tel:+14155550100 --dp https://mirror-1.example --dp https://log.example
    ///   ledger lookup alice@example.org --json
    #[command(verbatim_doc_comment)]
    Lookup {
        /// The SII as a person types it.
        sii: String,
        /// The region for phone numbers without a country code.
        #[arg(long, value_name = "CC")]
        region: Option<String>,
        /// A Discovery Provider's base URL (default: the trust file's log_url). Repeatable: the
        /// DPs are tried in order and the first answer that verifies is shown; each DP skipped
        /// (unreachable, refused, or rejected: it lied) is reported on stderr.
        #[arg(long = "dp", value_name = "URL")]
        dps: Vec<String>,
        /// Print the verified result (or the failure) as JSON.
        #[arg(long)]
        json: bool,
        /// Then ask this auditor (`POST <URL>/v1/audit`) whether the verified checkpoint is
        /// consistent with its view; exit 2 if it is `inconsistent`.
        #[arg(long, value_name = "URL")]
        audit: Option<String>,
        /// Send the lookup through this Oblivious HTTP relay (RFC 9458), encapsulated for the
        /// gateway key configuration pinned in the trust file, so the DP does not learn who asks
        /// (docs/privacy.md). The relay's gateway is the DP; --dp names its authority.
        #[arg(long, value_name = "URL")]
        relay: Option<String>,
        /// Spend a Privacy Pass token on the lookup, failing if none is stored (without it, one
        /// is spent whenever the state file holds a token for the DP; see `ledger token`).
        #[arg(long)]
        token: bool,
    },
    /// Privacy Pass lookup tokens (for DPs started with --require-token).
    #[command(subcommand)]
    Token(crate::tokens::TokenCommand),
    /// Watch SIIs you own: report every new claim, revoke and opt-out once (owner monitoring).
    ///
    /// Each SII gets the verified lookup of `ledger lookup` (complete as of its checkpoint), and
    /// every entry the state file has not seen is reported as one SPEC §8 alert line (JSON), on
    /// stdout or appended to --alerts: `unexpected-claimant` (a claim by an MSP not in --allowed),
    /// `unattested-claim`, `revoked-by-prover`, else `new-entry`; the detail names the signer and
    /// the attesting prover. A first run reports every entry already there, unless --baseline.
    ///
    /// Exit status: 0 no change; 3 changes reported; 2 an answer was rejected or contradicts the
    /// last run (a lying DP, a rollback: that SII's state is kept, nothing is reported for it);
    /// 1 any other error.
    ///
    /// Example:
    ///   ledger watch "+1 (415) 555-0100" --allowed msp-a.example --state watch.json
    ///   ledger watch --file numbers.txt --state /var/lib/ledger/watch.json --alerts alerts.jsonl
    #[command(verbatim_doc_comment)]
    Watch(WatchOpts),
    /// Verify a saved receipt (C2SP tlog-proof file) offline against the trust file.
    ///
    /// Example:
    ///   ledger verify-receipt claim.proof --leaf claim.proof.leaf
    #[command(verbatim_doc_comment)]
    VerifyReceipt {
        /// The tlog-proof file written by `--receipt`.
        file: PathBuf,
        /// The leaf (entry note) the receipt is for.
        #[arg(long, value_name = "FILE")]
        leaf: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TrustCommand {
    /// Fetch a log's /v1/info and checkpoint and write a trust file (trust on first use).
    ///
    /// Example:
    ///   ledger --trust trust.toml trust init --log http://127.0.0.1:8080 --require-attestation
    #[command(verbatim_doc_comment)]
    Init {
        /// The log's base URL.
        #[arg(long, value_name = "URL")]
        log: String,
        /// Replace an existing trust file.
        #[arg(long)]
        force: bool,
        /// Only count attestations by this prover verifier key (repeatable).
        #[arg(long = "prover-key", value_name = "VKEY")]
        provers: Vec<String>,
        /// Require every claim to carry a valid attestation.
        #[arg(long)]
        require_attestation: bool,
        /// The newest witness cosignature must be at most this old (e.g. 1h).
        #[arg(long, value_name = "DURATION")]
        max_age: Option<String>,
    },
    /// Re-pin the log's OHTTP gateway key configuration (`GET <log>/ohttp-keys`) after a
    /// documented key rotation; `ledger lookup --relay` uses only the pinned one.
    ///
    /// Example:
    ///   ledger --trust trust.toml trust update-ohttp --log https://log.example
    #[command(verbatim_doc_comment)]
    UpdateOhttp {
        /// The log's base URL (default: the trust file's log_url).
        #[arg(long, value_name = "URL")]
        log: Option<String>,
    },
}

#[derive(Debug, Args)]
struct SubmitOpts {
    /// The log's base URL (default: the trust file's log_url).
    #[arg(long, value_name = "URL")]
    log: Option<String>,
    /// The signer key file (from `ledger keygen`).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Save the receipt as a C2SP tlog-proof file (and the leaf as FILE.leaf).
    #[arg(long, value_name = "FILE")]
    receipt: Option<PathBuf>,
    /// Save the signed leaf here.
    #[arg(long, value_name = "FILE")]
    leaf_out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct WatchOpts {
    /// SIIs as a person types them.
    #[arg(value_name = "SII")]
    siis: Vec<String>,
    /// Also watch the SIIs in this file, one per line (`#` starts a comment line).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// The region for phone numbers without a country code.
    #[arg(long, value_name = "CC")]
    region: Option<String>,
    /// A Discovery Provider's base URL (default: the trust file's log_url). Repeatable: for each
    /// SII the DPs are tried in order, as `ledger lookup` does.
    #[arg(long = "dp", value_name = "URL")]
    dps: Vec<String>,
    /// The state file: what was seen of each SII (written crash-safely after each run).
    #[arg(long, value_name = "FILE", default_value = "watch-state.json")]
    state: PathBuf,
    /// An MSP allowed to claim these SIIs (repeatable, or comma-separated); a claim by any
    /// other is `unexpected-claimant`. Without it, no claimant is unexpected.
    #[arg(long = "allowed", value_name = "MSP", value_delimiter = ',')]
    allowed: Vec<String>,
    /// Append the alert lines to this file (synced; each alert once, even across a crash)
    /// instead of printing them.
    #[arg(long, value_name = "FILE")]
    alerts: Option<PathBuf>,
    /// For SIIs the state file does not know yet, record their entries without reporting them.
    #[arg(long)]
    baseline: bool,
}

#[derive(Debug, Args)]
struct AttestationOpts {
    /// An attestation note file (as an identity prover returns it).
    #[arg(long, value_name = "FILE", conflicts_with = "prover")]
    attestation: Option<PathBuf>,
    /// Prove control of the SII with this identity prover.
    #[arg(long, value_name = "URL")]
    prover: Option<String>,
    /// Read the prover's one-time code from this outbox folder (demos and scripts).
    #[arg(long, value_name = "DIR", requires = "prover")]
    code_from_outbox: Option<PathBuf>,
}

impl SubmitOpts {
    fn into_args(self) -> SubmitArgs {
        SubmitArgs {
            log: self.log,
            key: self.key,
            receipt: self.receipt,
            leaf_out: self.leaf_out,
        }
    }
}

impl WatchOpts {
    fn into_args(self) -> WatchArgs {
        WatchArgs {
            siis: self.siis,
            file: self.file,
            region: self.region,
            dps: self.dps,
            state: self.state,
            allowed: self.allowed,
            alerts: self.alerts,
            baseline: self.baseline,
        }
    }
}

impl AttestationOpts {
    fn into_args(self) -> AttestationArgs {
        AttestationArgs {
            file: self.attestation,
            prover: self.prover,
            code_from_outbox: self.code_from_outbox,
        }
    }
}

/// Runs the parsed command and gives its exit status (errors are the caller's to report).
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let trust = cli.trust;
    let done = match cli.command {
        Command::Watch(opts) => return watch::watch(&trust, &opts.into_args()),
        Command::Keygen { name, out } => crate::keygen::keygen(&name, &out),
        Command::Trust(TrustCommand::Init {
            log,
            force,
            provers,
            require_attestation,
            max_age,
        }) => commands::trust_init(
            &trust,
            &log,
            force,
            &provers,
            require_attestation,
            max_age.as_deref(),
        ),
        Command::Trust(TrustCommand::UpdateOhttp { log }) => {
            crate::oblivious::update_pin(&trust, log.as_deref())
        }
        Command::Enroll {
            log,
            admin_token_file,
            role,
            name,
            vkey,
        } => commands::enroll(
            &trust,
            log.as_deref(),
            &admin_token_file,
            &role,
            &name,
            &vkey,
        ),
        Command::Claim {
            submit,
            bulk: Some(csv),
            state,
            report,
            bundle_size,
            region,
            expires,
            ..
        } => {
            let args = crate::bulk::BulkArgs {
                csv,
                state,
                report,
                bundle_size,
                region,
                expires,
            };
            return commands::claim_bulk(&trust, &submit.into_args(), &args);
        }
        Command::Claim {
            submit,
            sii,
            region,
            ssi,
            tags,
            expires,
            attestation,
            ..
        } => commands::claim(
            &trust,
            &submit.into_args(),
            sii.as_deref().unwrap_or_default(),
            region.as_deref(),
            ssi.as_deref().unwrap_or_default(),
            &tags,
            expires.as_deref(),
            &attestation.into_args(),
        ),
        Command::Revoke {
            submit,
            sii,
            region,
            msp,
            ssi,
            attestation,
        } => commands::revoke(
            &trust,
            &submit.into_args(),
            &sii,
            region.as_deref(),
            msp.as_deref(),
            &ssi,
            &attestation.into_args(),
        ),
        Command::Optout {
            submit,
            sii,
            region,
            attestation,
        } => commands::optout(
            &trust,
            &submit.into_args(),
            &sii,
            region.as_deref(),
            &attestation.into_args(),
        ),
        Command::Lookup {
            sii,
            region,
            dps,
            json,
            audit,
            relay,
            token,
        } => match relay {
            Some(relay) => crate::oblivious::lookup(
                &trust,
                &sii,
                region.as_deref(),
                &relay,
                dps.first().map(String::as_str),
                json,
                token,
            ),
            None => crate::lookup::lookup(
                &trust,
                &sii,
                region.as_deref(),
                &dps,
                json,
                audit.as_deref(),
                token,
            ),
        },
        Command::Token(cmd) => crate::tokens::run(&trust, cmd),
        Command::VerifyReceipt { file, leaf } => commands::verify_receipt(&trust, &file, &leaf),
    };
    done.map(|()| ExitCode::SUCCESS)
}
