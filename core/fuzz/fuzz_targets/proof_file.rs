//! C2SP tlog-proof parsing never panics and round-trips.
#![no_main]
use ledger_core::proof_file::ProofFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = ProofFile::parse(data) {
        assert_eq!(p.to_bytes(), data);
    }
});
