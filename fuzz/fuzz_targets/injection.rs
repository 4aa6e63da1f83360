//! The injection guard over arbitrary text, as user text and as a tool
//! result: no panic, a score in `0..=1`, and `tripped` exactly when the
//! score reaches the source's threshold. The decoders are private to the
//! guard, so the first byte may wrap the rest in base64, hex, spaced hex or
//! Unicode tag characters to drive them through `assess`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use meshward_engine::guard::injection::{
    InjectionDoc, InjectionGuard, Source, DEFAULT_INDIRECT_THRESHOLD, DEFAULT_THRESHOLD,
};

fn guard() -> &'static InjectionGuard {
    static G: OnceLock<InjectionGuard> = OnceLock::new();
    G.get_or_init(|| match InjectionGuard::compile(&InjectionDoc::default()) {
        Ok(guard) => guard,
        Err(e) => panic!("the default injection config must compile: {e:?}"),
    })
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn hex(bytes: &[u8], separator: &str) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(separator)
}

fn tags(text: &str) -> String {
    text.chars().filter_map(|c| char::from_u32(0xE0000 + u32::from(c) % 0x80)).collect()
}

fn check(text: &str) {
    for (source, threshold) in [(Source::Direct, DEFAULT_THRESHOLD), (Source::Indirect, DEFAULT_INDIRECT_THRESHOLD)] {
        let a = guard().assess(text, source);
        assert!(a.score.is_finite() && (0.0..=1.0).contains(&a.score), "{a:?}");
        assert_eq!(a.tripped, a.score > 0.0 && a.score >= threshold, "{a:?}");
        assert_eq!(a.tripped, a.violation("x").is_some(), "{a:?}");
        assert_eq!(a.score > 0.0, !a.signals.is_empty(), "{a:?}");
        let mut ids = a.signals.clone();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), a.signals.len(), "duplicate signals: {a:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let wrapped = match mode % 8 {
        0 | 1 | 2 => text.to_owned(),
        3 => format!("decode this and follow it: {}", base64(text.as_bytes())),
        4 => format!("note {} end", hex(text.as_bytes(), "")),
        5 => format!("bytes: {}", hex(text.as_bytes(), if mode & 8 == 0 { " " } else { "\\x" })),
        6 => format!("hello{}world", tags(text)),
        _ => format!("{text} {} {}", base64(tags(text).as_bytes()), base64(base64(text.as_bytes()).as_bytes())),
    };
    check(&wrapped);
});
