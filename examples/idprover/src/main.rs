//! `idprover`: run the example identity prover.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use clap::Parser;
use idprover::{parse_duration, parse_rate, AppState, Config, Limits, Store};
use ledger_core::key::SignerKey;

/// An example identity prover for mimi-ledger: proves control of an SII with a one-time code and
/// signs an attestation (SPEC §3).
///
/// Codes are delivered through an outbox folder (one file per SII, for demos and tests) or an HTTP
/// webhook (a real SMS/e-mail gateway). Enroll the prover's verifier key in the log as a `prover`.
///
/// Example:
///   ledger keygen --name prover.example --out prover.key
///   idprover --key prover.key --listen 127.0.0.1:8090 --outbox ./outbox
#[derive(Debug, Parser)]
#[command(name = "idprover", version, about, verbatim_doc_comment)]
struct Args {
    /// The prover's signer key file (`PRIVATE+KEY+...`, from `ledger keygen`).
    #[arg(long, env = "IDPROVER_KEY", value_name = "FILE")]
    key: PathBuf,
    /// Address to listen on (`127.0.0.1:0` picks a free port; the address is printed).
    #[arg(
        long,
        env = "IDPROVER_LISTEN",
        default_value = "127.0.0.1:8090",
        value_name = "ADDR"
    )]
    listen: SocketAddr,
    /// Deliver codes as files in this folder (one per SII).
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "webhook",
        required_unless_present = "webhook"
    )]
    outbox: Option<PathBuf>,
    /// Deliver codes by POSTing JSON to this URL.
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,
    /// A file holding a bearer token for the webhook.
    #[arg(long, value_name = "FILE", requires = "webhook")]
    webhook_token_file: Option<PathBuf>,
    /// How long a code is valid.
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    code_ttl: String,
    /// Wrong codes before a challenge locks.
    #[arg(long, default_value_t = 5)]
    max_tries: u32,
    /// How long an attestation is valid.
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    attestation_ttl: String,
    /// Challenges per SII (COUNT/WINDOW).
    #[arg(long, default_value = "5/15m", value_name = "RATE")]
    sii_rate: String,
    /// Challenges per client address (COUNT/WINDOW).
    #[arg(long, default_value = "30/15m", value_name = "RATE")]
    client_rate: String,
    /// Digits per code (6 to 10).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(6..=10))]
    code_digits: u32,
    /// The attestation `method` (default: sms-otp for phone numbers, email-otp for e-mail).
    #[arg(long)]
    method: Option<String>,
    /// Connection cap and client timeouts (see docs/operations.md).
    #[command(flatten)]
    server_limits: ledger_serve::LimitSettings,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(ledger_serve::log_filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let key_text = std::fs::read_to_string(&args.key)
        .with_context(|| format!("cannot read --key {}", args.key.display()))?;
    let key = SignerKey::parse(key_text.trim())
        .map_err(|e| anyhow!("--key {} is not a signer key: {e}", args.key.display()))?;
    let code_ttl = parse_duration(&args.code_ttl).map_err(|e| anyhow!("--code-ttl: {e}"))?;
    let attestation_ttl =
        parse_duration(&args.attestation_ttl).map_err(|e| anyhow!("--attestation-ttl: {e}"))?;
    if attestation_ttl.as_secs() == 0 {
        return Err(anyhow!("--attestation-ttl must be at least 1s"));
    }
    if args.max_tries == 0 {
        return Err(anyhow!("--max-tries must be at least 1"));
    }
    if let Some(m) = &args.method {
        let ok = !m.is_empty()
            && m.len() <= 64
            && m.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(anyhow!(
                "--method {m:?}: expected 1-64 characters of [A-Za-z0-9._-] (SPEC §3)"
            ));
        }
    }
    let server_limits = args
        .server_limits
        .resolve()
        .map_err(|e| anyhow!("connection limits: {e}"))?;
    let limits = Limits {
        code_digits: args.code_digits,
        code_ttl,
        max_tries: args.max_tries,
        per_sii: parse_rate(&args.sii_rate).map_err(|e| anyhow!("--sii-rate: {e}"))?,
        per_client: parse_rate(&args.client_rate).map_err(|e| anyhow!("--client-rate: {e}"))?,
        ..Limits::default()
    };
    let sender: Box<dyn idprover::Sender> = match (&args.outbox, &args.webhook) {
        (Some(dir), _) => Box::new(
            idprover::OutboxSender::new(dir.clone())
                .with_context(|| format!("cannot create --outbox {}", dir.display()))?,
        ),
        (None, Some(url)) => {
            let token = args
                .webhook_token_file
                .as_ref()
                .map(|p| {
                    std::fs::read_to_string(p)
                        .map(|t| t.trim().to_string())
                        .with_context(|| {
                            format!("cannot read --webhook-token-file {}", p.display())
                        })
                })
                .transpose()?;
            Box::new(idprover::WebhookSender::new(url.clone(), token)?)
        }
        (None, None) => return Err(anyhow!("give --outbox DIR or --webhook URL")),
    };
    let vkey = key.verifier();
    let state = Arc::new(AppState::new(
        Config {
            key,
            attestation_ttl_s: attestation_ttl.as_secs(),
            method: args.method,
        },
        Store::new(limits),
        sender,
    ));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let listener = std::net::TcpListener::bind(args.listen)
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr().context("local address")?;
        println!("prover key {vkey}");
        println!("listening on {addr}");
        use std::io::Write as _;
        std::io::stdout().flush().ok();
        // Timeouts, the connection cap, problem+json refusals and the drain: see ledger-serve.
        // It gives the handlers ConnectInfo<SocketAddr> (the per-client rate).
        ledger_serve::serve(
            listener,
            idprover::router(state),
            server_limits,
            None,
            ledger_serve::shutdown_signal(),
        )
        .await
        .context("server error")
    })
}
