//! `auditor`: loads the configuration and runs the witness, gossip and audit service.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// mimi-ledger auditor: a C2SP witness that cosigns, gossips and catches split views.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The configuration file (see docs/auditor.md).
    #[arg(long, default_value = "auditor.toml")]
    config: PathBuf,
    /// Listen address, overriding the configuration (`127.0.0.1:0` picks a free port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Connection cap and client timeouts, over the file's (see docs/operations.md).
    #[command(flatten)]
    limits: ledger_serve::LimitSettings,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Writes a new cosignature/v1 witness key to FILE and prints its verifier key.
    Keygen {
        /// The witness name (e.g. `auditor-1.example`).
        #[arg(long)]
        name: String,
        /// Where to write the private key (refuses to overwrite).
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(ledger_serve::log_filter())
        .init();
    let cli = Cli::parse();
    if let Some(Cmd::Keygen { name, out }) = cli.cmd {
        let key = auditor::witness::generate_key(&name)?;
        // The witness signer key: 0600 from creation (not the umask's 0644), never overwritten.
        ledger_secret_file::write_secret(&out, format!("{}\n", key.to_text()).as_bytes())?;
        println!("{}", key.verifier());
        return Ok(());
    }
    let mut config = auditor::Config::load(&cli.config)?;
    config.limits = cli.limits.or(config.limits);
    tokio::runtime::Runtime::new()?.block_on(auditor::run(config, cli.listen))
}
