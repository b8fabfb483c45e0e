//! Leaf parsing never panics, and what it accepts has exactly one byte form.
#![no_main]
use ledger_core::entry::{Entry, Leaf};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(leaf) = Leaf::parse(data) {
        assert_eq!(leaf.note().to_bytes(), data);
        let text = leaf.entry().to_text();
        assert_eq!(Entry::parse_text(&text).as_ref(), Ok(leaf.entry()));
    }
});
