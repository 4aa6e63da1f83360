//! Shared by every target: the engines under test and how fuzz input is cut
//! into chunks. Included with `#[path]`, so each target uses what it needs.
#![allow(dead_code)]

use std::sync::OnceLock;

use meshward_engine::detect::EntityClass;
use meshward_engine::policy::Secrets;
use meshward_engine::restore::RestoreMap;
use meshward_engine::{Engine, RequestMeta, Verdict};

/// The key of `tests/streams.rs`, so the fixtures' placeholders are this request's.
pub const KEY: &str = "test-placeholder-key-0123456789";

/// A policy that scans every class: `EMAIL` reversible (so responses have
/// placeholders to restore), the rest `redact`, or `CREDIT_CARD` `block`.
fn compile(block_cards: bool) -> Engine {
    let classes: Vec<String> = EntityClass::ALL
        .iter()
        .map(|c| {
            let action = match c {
                EntityClass::Email => "reversible",
                EntityClass::CreditCard if block_cards => "block",
                _ => "redact",
            };
            format!(r#""{}":{{"action":"{action}"}}"#, c.name())
        })
        .collect();
    let policy = format!(
        r#"{{"meshward_policy":1,"name":"fuzz","version":"1","detection":{{"classes":{{{}}}}}}}"#,
        classes.join(",")
    );
    match Engine::from_json(policy.as_bytes(), &Secrets { placeholder_key: Some(KEY.into()), ..Secrets::default() }) {
        Ok(e) => e,
        Err(e) => panic!("the fuzz policy must compile: {e}"),
    }
}

pub fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| compile(false))
}

pub fn blocking_engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| compile(true))
}

/// The placeholders a real request leaves behind, for responses to restore.
pub fn restore() -> &'static RestoreMap {
    static R: OnceLock<RestoreMap> = OnceLock::new();
    R.get_or_init(|| {
        let body = br#"{"messages":[{"role":"user","content":"mail jane@example.com and bob.o'neil@corp.example"}]}"#;
        let meta = RequestMeta {
            request_id: "fuzz",
            path: "/v1/chat/completions",
            content_type: Some("application/json"),
            ..RequestMeta::default()
        };
        let d = engine().evaluate_request(&meta, body);
        assert!(matches!(d.verdict, Verdict::Rewrite(_)), "{:?}", d.verdict);
        d.restore
    })
}

/// `data[0] % 8` split points follow as single bytes, each a fraction
/// (n/255) of the rest; returns the sorted cut offsets and the payload.
pub fn cuts(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&n, rest)) = data.split_first() else { return (Vec::new(), data) };
    let n = usize::from(n % 8).min(rest.len());
    let (points, payload) = rest.split_at(n);
    let mut cuts: Vec<usize> = points.iter().map(|&p| usize::from(p) * payload.len() / 255).collect();
    cuts.sort_unstable();
    (cuts, payload)
}

/// `payload` cut at `cuts` (empty pieces included: a zero-length chunk is a
/// real thing a host may deliver).
pub fn pieces<'a>(payload: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut from = 0;
    for &c in cuts {
        let c = c.clamp(from, payload.len());
        out.push(&payload[from..c]);
        from = c;
    }
    out.push(&payload[from..]);
    out
}

/// Whether `bytes` is one JSON document (escapes not decoded, so lone
/// surrogates are fine, as they are for `json::walk`).
/// No recursion limit: the engine's depth limit is the one under test.
pub fn is_json(bytes: &[u8]) -> bool {
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    serde::de::IgnoredAny::deserialize(&mut de).is_ok() && de.end().is_ok()
}
