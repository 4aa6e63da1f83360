//! Every built-in detector over arbitrary text: spans in bounds, on char
//! boundaries, non-empty, sorted and disjoint.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use meshward_engine::detect::{DetectorSet, EntityClass, Finding};

fn set() -> &'static DetectorSet {
    static S: OnceLock<DetectorSet> = OnceLock::new();
    S.get_or_init(|| DetectorSet::new(EntityClass::ALL))
}

fn check(text: &str, found: &[Finding]) {
    for f in found {
        assert!(f.start < f.end && f.end <= text.len(), "{f:?} in {} bytes", text.len());
        assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end), "{f:?}");
        assert!((0.0..=1.0).contains(&f.confidence), "{f:?}");
    }
    assert!(found.windows(2).all(|w| w[0].end <= w[1].start), "overlapping or unsorted: {found:?}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut found = Vec::new();
    set().scan(text, &mut found);
    check(text, &found);
    // Ranked by class (as a policy would by action): same guarantees.
    let mut ranked = Vec::new();
    set().scan_ranked(text, &mut ranked, |f| (f.class != EntityClass::Person).then_some(f.class as u8 % 3));
    check(text, &ranked);
    // Folding obfuscation must not move a span off the text.
    for f in &found {
        let _ = f.class.canonical(&text[f.start..f.end]);
    }
});
