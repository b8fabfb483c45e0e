//! `ledger`: the mimi-ledger client. Thin: arguments in, `ledger-core` calls, output out.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod keygen;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
