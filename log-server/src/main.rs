//! `log-server`: placeholder binary; the issue that fills it has not landed yet.

fn main() {
    println!("log-server: not implemented yet (see the project's open issues)");
    println!();
    println!("Usage: log-server --help");
    if !std::env::args().any(|a| a == "--help" || a == "-h") {
        std::process::exit(2);
    }
}
