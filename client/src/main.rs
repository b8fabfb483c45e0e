//! `ledger`: the mimi-ledger client. Thin: arguments in, `ledger-core` calls, output out.
//!
//! Exit status: 0 done (and verified), 2 verification failed (the failed step is printed), 1 anything
//! else — so that scripts can tell a lying server from an unreachable one; `ledger watch` exits 3
//! when it reported changes; `claim --bulk` exits 4 when some rows were refused.

use std::process::ExitCode;

use clap::Parser;

mod bulk;
mod cli;
mod commands;
mod failover;
mod http;
mod keygen;
mod lookup;
mod oblivious;
mod prover;
mod tokens;
mod trust;
mod util;
mod watch;

fn main() -> ExitCode {
    // clap exits with 2 on bad arguments; 2 is reserved for failed verification here.
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            if let Some(v) = e.downcast_ref::<util::VerificationFailed>() {
                eprintln!("{v}");
                return ExitCode::from(2);
            }
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
