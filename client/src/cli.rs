//! Command-line definition and dispatch.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The mimi-ledger client: keys, claims, revocations and verified lookups.
#[derive(Debug, Parser)]
#[command(name = "ledger", version, about, propagate_version = true)]
pub struct Cli {
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
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Keygen { name, out } => crate::keygen::keygen(&name, &out),
    }
}
