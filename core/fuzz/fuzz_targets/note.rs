//! Signed-note parsing never panics and round-trips what it accepts.
#![no_main]
use ledger_core::note::Note;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(note) = Note::parse(data) {
        assert_eq!(note.to_bytes(), data);
    }
});
