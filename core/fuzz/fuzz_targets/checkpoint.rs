//! Checkpoint parsing (body and signed note) never panics and round-trips.
#![no_main]
use ledger_core::checkpoint::{Checkpoint, SignedCheckpoint};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cp) = SignedCheckpoint::parse(data) {
        assert_eq!(cp.to_bytes(), data);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(cp) = Checkpoint::parse_text(s) {
            assert_eq!(cp.to_text(), s);
        }
    }
});
