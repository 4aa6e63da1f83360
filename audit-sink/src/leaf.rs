//! The log leaf: one line of canonical JSON per stored event.
//!
//! ```text
//! {"event":{…},"index":N,"received":"RFC 3339","v":1,"webhook_id":"msg_…","webhook_ts":1649367553}
//! ```
//!
//! Canonical JSON here means: object keys sorted by their UTF-8 bytes, no
//! insignificant whitespace, strings escaped minimally plus U+2028/U+2029
//! (so that no line-splitting tool sees a line break inside a leaf), numbers
//! as serde_json prints them. A leaf therefore never contains a `\n` byte and
//! is exactly one line of the JSONL export; its Merkle leaf hash is
//! `SHA-256(0x00 || line)`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

pub const LEAF_VERSION: u32 = 1;

pub fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                if let Some(val) = map.get(k) {
                    write_canonical(val, out);
                }
            }
            out.push(b'}');
        }
    }
}

pub fn write_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// Builds the leaf bytes for one event.
pub fn build(index: u64, received: &str, webhook_id: &str, webhook_ts: i64, event_canonical: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(event_canonical.len() + 160);
    out.extend_from_slice(b"{\"event\":");
    out.extend_from_slice(event_canonical);
    out.extend_from_slice(format!(",\"index\":{index},\"received\":").as_bytes());
    write_str(received, &mut out);
    out.extend_from_slice(format!(",\"v\":{LEAF_VERSION},\"webhook_id\":").as_bytes());
    write_str(webhook_id, &mut out);
    out.extend_from_slice(format!(",\"webhook_ts\":{webhook_ts}}}").as_bytes());
    out
}

/// The members of a leaf the sink indexes (everything else is ignored here).
#[derive(Debug, Deserialize)]
pub struct LeafView {
    pub index: u64,
    pub received: String,
    pub webhook_id: String,
    pub webhook_ts: i64,
    pub event: EventView,
}

#[derive(Debug, Deserialize)]
pub struct EventView {
    pub tenant: String,
    pub time: String,
    pub action: String,
    pub request_id: String,
    #[serde(default)]
    pub findings: BTreeMap<String, u64>,
    pub instance_id: String,
    pub seq: u64,
}

pub fn parse(leaf: &[u8]) -> Result<LeafView, String> {
    serde_json::from_slice(leaf).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_and_never_breaks_lines() {
        let v: Value =
            serde_json::from_str(r#"{"b": [1, 2.5, "x\ny\u2028z"], "a": {"d": null, "c": true}, "é": "\u0001\t"}"#)
                .unwrap();
        let mut out = Vec::new();
        write_canonical(&v, &mut out);
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s, r#"{"a":{"c":true,"d":null},"b":[1,2.5,"x\ny\u2028z"],"é":"\u0001\t"}"#);
        assert!(!s.contains('\n') && !s.contains('\u{2028}'));
        // Canonical output re-parses to the same value.
        assert_eq!(serde_json::from_str::<Value>(&s).unwrap(), v);
    }

    #[test]
    fn leaf_is_one_line_and_parses_back() {
        let event = br#"{"action":"allow","findings":{"EMAIL":1},"instance_id":"i","request_id":"r\n1","seq":3,"tenant":"t","time":"2026-01-01T00:00:00.000Z"}"#;
        let leaf = build(42, "2026-01-01T00:00:01.000Z", "msg_\"1", 1_700_000_000, event);
        assert!(!leaf.contains(&b'\n'));
        let v = parse(&leaf).unwrap();
        assert_eq!((v.index, v.webhook_id.as_str(), v.event.seq), (42, "msg_\"1", 3));
        assert_eq!(v.event.request_id, "r\n1");
        let value: Value = serde_json::from_slice(&leaf).unwrap();
        let mut canon = Vec::new();
        write_canonical(&value, &mut canon);
        assert_eq!(canon, leaf, "the leaf is itself canonical");
    }
}
