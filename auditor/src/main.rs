//! `auditor`: placeholder binary; the issue that fills it has not landed yet.

fn main() {
    println!("auditor: not implemented yet (see the project's open issues)");
    println!();
    println!("Usage: auditor --help");
    if !std::env::args().any(|a| a == "--help" || a == "-h") {
        std::process::exit(2);
    }
}
