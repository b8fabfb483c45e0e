//! `ledger-issuer`: the Privacy Pass issuer of lookup tokens (see `log_server::issuer` and
//! docs/privacy.md). A process of its own, with its own data folder, so that it holds
//! nothing of the DPs' lookups.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use log_server::issuer::{Credentials, Issuer};

/// Issues Privacy Pass tokens (type 2, blind RSA) to MSPs within their daily budgets.
#[derive(Parser, Debug)]
#[command(name = "ledger-issuer", version)]
struct Cli {
    /// The data folder: issuer.key (0600), issuer-public.key, budget/ [default: issuer-data].
    #[arg(long, env = "LEDGER_ISSUER_DATA", default_value = "issuer-data")]
    data: PathBuf,
    /// The listen address [default: 127.0.0.1:8090].
    #[arg(long, env = "LEDGER_ISSUER_LISTEN", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// The MSPs' credentials (TOML `[[msp]]` tables: name, credential, daily_budget).
    #[arg(long, env = "LEDGER_ISSUER_CREDENTIALS", value_name = "FILE")]
    issuer_credentials: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(ledger_serve::log_filter())
        .with_writer(std::io::stderr)
        .init();
    let credentials = Credentials::load(&cli.issuer_credentials)?;
    let issuer = Issuer::open(&cli.data, credentials)?;
    tracing::info!(key = issuer.key_text(), "issuer opened");
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(log_server::issuer::serve(Arc::new(issuer), cli.listen))?;
    Ok(())
}
