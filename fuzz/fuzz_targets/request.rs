//! `Engine::evaluate_request` with every class enabled over arbitrary
//! bodies: finding spans sit in the body, a rewritten JSON body is still
//! JSON, and a redacted value is gone from the rewritten body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshward_engine::policy::ClassAction;
use meshward_engine::{RequestMeta, Verdict};

#[path = "common.rs"]
mod common;

const PATHS: [&str; 3] = ["/v1/chat/completions", "/v1/messages", "/v1/other"];
const TYPES: [&str; 2] = ["application/json", "text/plain; charset=utf-8"];

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}

/// `out` with every placeholder-shaped `[A-Z_..._hex]` blanked: a value may
/// be a substring of its own placeholder (`ET_5dd8d1` in `[SECRET_5dd8d1]`).
fn without_placeholders(out: &[u8]) -> Vec<u8> {
    let mut v = out.to_vec();
    let mut i = 0;
    while let Some(open) = v[i..].iter().position(|&b| b == b'[').map(|p| p + i) {
        let body_len = v[open + 1..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
        let close = open + 1 + body_len;
        if body_len > 0 && v.get(close) == Some(&b']') && v[open + 1..close].contains(&b'_') {
            v[open..=close].fill(0);
        }
        i = open + 1;
    }
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else { return };
    let meta = RequestMeta {
        request_id: "fuzz",
        path: PATHS[usize::from(sel) % PATHS.len()],
        content_type: Some(TYPES[usize::from(sel / 3) % TYPES.len()]),
        ..RequestMeta::default()
    };
    let engine = common::engine();
    let d = engine.evaluate_request(&meta, body);
    for f in &d.findings {
        assert!(f.start < f.end && f.end <= body.len(), "{f:?}");
    }
    let Verdict::Rewrite(out) = &d.verdict else { return };
    if d.codec.requires_json() {
        assert!(common::is_json(body), "a rewrite of a body that is not JSON");
        assert!(common::is_json(out), "the rewrite is not JSON:\n{}", String::from_utf8_lossy(out));
    }
    for f in d.findings.iter().filter(|f| f.enforced && f.action != ClassAction::Flag) {
        let value = &body[f.start..f.end];
        // Only values that occur once and are long enough not to recur by chance.
        if value.len() >= 8 && count(body, value) == 1 {
            assert_eq!(
                count(&without_placeholders(out), value),
                0,
                "{f:?} survived in\n{}",
                String::from_utf8_lossy(out)
            );
        }
    }
});
