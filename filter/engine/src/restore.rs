//! Reversible placeholders: what this request replaced, so the response can
//! give it back.
//!
//! The request pipeline records `placeholder → original value` for every
//! finding of a class in `reversible` mode ([`crate::policy::ClassAction::Reversible`]).
//! The map lives in memory for one request only, is never logged (its
//! `Debug` shows a count), and the response side expands exactly the
//! placeholders in it: a placeholder-shaped string the client or the model
//! made up, or one issued for another request, stays as it is.

use std::collections::BTreeMap;
use std::fmt;

/// Placeholder → the value it stands for, for one request.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RestoreMap {
    entries: BTreeMap<String, String>,
    max_len: usize,
}

impl fmt::Debug for RestoreMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RestoreMap({} entries)", self.entries.len())
    }
}

/// A placeholder found in a text: `start..end` in bytes, and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placeholder<'m> {
    pub start: usize,
    pub end: usize,
    pub value: &'m str,
}

impl RestoreMap {
    pub fn new() -> RestoreMap {
        RestoreMap::default()
    }

    /// Records a placeholder; the first value seen for it wins (equal
    /// values in different spellings share one placeholder).
    pub fn insert(&mut self, placeholder: String, value: String) {
        self.max_len = self.max_len.max(placeholder.len());
        self.entries.entry(placeholder).or_insert(value);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The value behind `placeholder`, if this request issued it.
    pub fn get(&self, placeholder: &str) -> Option<&str> {
        self.entries.get(placeholder).map(String::as_str)
    }

    /// The longest placeholder issued: the restore hold-back window.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Every issued placeholder in `text`, in order.
    pub fn find_in(&self, text: &str) -> Vec<Placeholder<'_>> {
        let mut out = Vec::new();
        if self.entries.is_empty() {
            return out;
        }
        let bytes = text.as_bytes();
        let mut from = 0;
        while let Some(open) = bytes.get(from..).and_then(|rest| memchr::memchr(b'[', rest)).map(|i| from + i) {
            from = open + 1;
            let window_end = (open + self.max_len).min(bytes.len());
            let Some(close) = bytes.get(open..window_end).and_then(|w| memchr::memchr(b']', w)).map(|i| open + i)
            else {
                continue;
            };
            if let Some(value) = text.get(open..=close).and_then(|p| self.get(p)) {
                out.push(Placeholder { start: open, end: close + 1, value });
                from = close + 1;
            }
        }
        out
    }

    /// Where a placeholder may have begun in the tail of `text` without
    /// being complete yet: text from there on must wait for more deltas.
    pub fn partial_start(&self, text: &str) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        let bytes = text.as_bytes();
        let floor = bytes.len().saturating_sub(self.max_len.saturating_sub(1));
        let open = memchr::memrchr(b'[', bytes.get(floor..)?)? + floor;
        let tail = text.get(open..)?;
        // Issued placeholders are `[`, ASCII letters, digits and `_`, `]`.
        let could_be = tail.bytes().skip(1).all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && self.entries.range(tail.to_owned()..).next().is_some_and(|(p, _)| p.starts_with(tail));
        could_be.then_some(open)
    }
}

/// Appends `text` escaped for the inside of a JSON string literal.
pub fn json_escape_into(out: &mut String, text: &str) {
    let mut run_start = 0;
    for (i, b) in text.bytes().enumerate() {
        let esc: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0x08 => Some("\\b"),
            0x0c => Some("\\f"),
            0x00..=0x1f => None,
            _ => continue,
        };
        out.push_str(text.get(run_start..i).unwrap_or_default());
        match esc {
            Some(e) => out.push_str(e),
            None => {
                out.push_str("\\u00");
                out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
                out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
            }
        }
        run_start = i + 1;
    }
    out.push_str(text.get(run_start..).unwrap_or_default());
}

/// `text` escaped for the inside of a JSON string literal.
pub fn json_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    json_escape_into(&mut out, text);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> RestoreMap {
        let mut m = RestoreMap::new();
        m.insert("[EMAIL_1a2b3c]".into(), "jane@example.com".into());
        m.insert("[CREDIT_CARD_0f0f0f]".into(), "4111 1111 1111 1111".into());
        m
    }

    #[test]
    fn finds_only_issued_placeholders() {
        let m = map();
        let text = "a [EMAIL_1a2b3c] b [EMAIL_ffffff] [[CREDIT_CARD_0f0f0f]] [EMAIL_1a2b3c";
        let found: Vec<_> = m.find_in(text).iter().map(|p| (&text[p.start..p.end], p.value)).collect();
        assert_eq!(found, [("[EMAIL_1a2b3c]", "jane@example.com"), ("[CREDIT_CARD_0f0f0f]", "4111 1111 1111 1111")]);
        assert!(RestoreMap::new().find_in(text).is_empty());
    }

    #[test]
    fn partial_placeholders_at_the_tail_are_held() {
        let m = map();
        assert_eq!(m.partial_start("hello [EM"), Some(6));
        assert_eq!(m.partial_start("hello ["), Some(6));
        assert_eq!(m.partial_start("hello [EMAIL_1a2b3"), Some(6));
        assert_eq!(m.partial_start("hello [CREDIT_CARD_0"), Some(6));
        // Not a prefix of any issued placeholder, or already closed.
        assert_eq!(m.partial_start("hello [note"), None);
        assert_eq!(m.partial_start("hello [EMAIL_1a2b3c]"), None);
        assert_eq!(m.partial_start("hello [EMAIL_9"), None);
        assert_eq!(m.partial_start("hello"), None);
        assert_eq!(RestoreMap::new().partial_start("x ["), None);
    }

    #[test]
    fn debug_never_shows_values() {
        assert_eq!(format!("{:?}", map()), "RestoreMap(2 entries)");
    }

    #[test]
    fn escaping_matches_serde_json() {
        for s in ["plain", "q\"b\\s", "\n\r\t\u{8}\u{c}\u{1}\u{1f}", "é😀/"] {
            let ours = format!("\"{}\"", json_escape(s));
            assert_eq!(serde_json::from_str::<String>(&ours).unwrap(), s);
        }
    }
}
