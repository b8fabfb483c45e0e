//! SII parsing never panics; accepted SIIs are fixed points of canonicalization.
#![no_main]
use ledger_core::sii::Sii;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(sii) = Sii::parse(s) {
            assert_eq!(sii.as_str(), s);
            assert_eq!(Sii::from_human(s, None).as_ref(), Ok(&sii));
        }
        let _ = Sii::from_human(s, Some("US"));
    }
});
