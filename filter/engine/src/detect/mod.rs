//! Detectors: each finds one class of sensitive value in a text part.
//!
//! Every detector is a hand-written linear scanner anchored on a cheap
//! trigger byte (`@` for e-mail, an ASCII digit for cards) so a text with no
//! trigger costs one `memchr`-speed pass, and validation (Luhn, issuer
//! ranges, label rules) only runs at candidates.

mod card;
mod email;

use std::borrow::Cow;
use std::fmt;

pub use card::{luhn_valid, CardNetwork};

/// The classes of sensitive value meshward knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityClass {
    Email,
    CreditCard,
}

impl EntityClass {
    pub const ALL: [EntityClass; 2] = [EntityClass::Email, EntityClass::CreditCard];

    /// The name used in policies, placeholders and audit events.
    pub fn name(self) -> &'static str {
        match self {
            EntityClass::Email => "EMAIL",
            EntityClass::CreditCard => "CREDIT_CARD",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The form of a value that decides its placeholder, so `4111-1111…` and
    /// `4111 1111…`, or `Jane@Example.com` and `jane@example.com`, get the
    /// same placeholder.
    pub fn canonical<'t>(self, value: &'t str) -> Cow<'t, str> {
        match self {
            EntityClass::Email => Cow::Owned(value.to_ascii_lowercase()),
            EntityClass::CreditCard => Cow::Owned(value.chars().filter(char::is_ascii_digit).collect()),
        }
    }
}

impl fmt::Display for EntityClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One detected value: `start..end` are byte offsets into the scanned text.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub class: EntityClass,
    pub start: usize,
    pub end: usize,
    /// In [0, 1]; raised by checksums and context words.
    pub confidence: f32,
    /// The rule that fired, e.g. `credit_card.luhn.visa`.
    pub rule: &'static str,
}

/// The detectors a policy enabled, compiled once at configure time.
#[derive(Debug, Clone, Default)]
pub struct DetectorSet {
    classes: Vec<EntityClass>,
}

impl DetectorSet {
    pub fn new(classes: impl IntoIterator<Item = EntityClass>) -> Self {
        let mut classes: Vec<_> = classes.into_iter().collect();
        classes.sort();
        classes.dedup();
        DetectorSet { classes }
    }

    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// Appends the findings in `text`, sorted by start, without overlaps.
    pub fn scan(&self, text: &str, out: &mut Vec<Finding>) {
        let first = out.len();
        for class in &self.classes {
            match class {
                EntityClass::Email => email::detect(text, out),
                EntityClass::CreditCard => card::detect(text, out),
            }
        }
        if let Some(found) = out.get_mut(first..) {
            if found.len() > 1 {
                resolve_overlaps(found);
                let kept = found.iter().filter(|f| f.end > f.start).count();
                out.truncate(first + kept);
            }
        }
    }
}

/// Sorts by position and, where findings overlap, keeps the longer one
/// (then the more confident). Dropped findings are moved to the end as
/// empty spans so the caller can truncate them.
fn resolve_overlaps(found: &mut [Finding]) {
    found.sort_by(|a, b| {
        a.start
            .cmp(&b.start)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(b.confidence.total_cmp(&a.confidence))
    });
    let mut last_end = 0;
    let mut kept = 0;
    for i in 0..found.len() {
        let Some(f) = found.get(i).cloned() else {
            break;
        };
        if kept > 0 && f.start < last_end {
            continue;
        }
        last_end = f.end;
        found.swap(kept, i);
        kept += 1;
    }
    for f in found.iter_mut().skip(kept) {
        f.end = f.start;
    }
}

/// Whether `b` can continue a word, so a match glued to one is no match.
pub(crate) fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(text: &str) -> Vec<(EntityClass, &str)> {
        let mut out = Vec::new();
        DetectorSet::new(EntityClass::ALL).scan(text, &mut out);
        out.iter().map(|f| (f.class, &text[f.start..f.end])).collect()
    }

    #[test]
    fn finds_every_class_in_order() {
        assert_eq!(
            classes("mail a.b@example.org, card 4111 1111 1111 1111, bye"),
            [(EntityClass::Email, "a.b@example.org"), (EntityClass::CreditCard, "4111 1111 1111 1111")]
        );
    }

    #[test]
    fn overlaps_keep_the_longer_finding() {
        let mut f = vec![
            Finding { class: EntityClass::CreditCard, start: 5, end: 9, confidence: 0.9, rule: "a" },
            Finding { class: EntityClass::Email, start: 0, end: 12, confidence: 0.5, rule: "b" },
            Finding { class: EntityClass::Email, start: 20, end: 22, confidence: 0.5, rule: "c" },
        ];
        resolve_overlaps(&mut f);
        let kept: Vec<_> = f.iter().filter(|f| f.end > f.start).map(|f| f.rule).collect();
        assert_eq!(kept, ["b", "c"]);
    }

    #[test]
    fn class_names_round_trip() {
        for c in EntityClass::ALL {
            assert_eq!(EntityClass::from_name(c.name()), Some(c));
        }
        assert_eq!(EntityClass::from_name("email"), None);
    }

    #[test]
    fn canonical_forms_ignore_case_and_separators() {
        assert_eq!(EntityClass::Email.canonical("Jane@Example.COM"), "jane@example.com");
        assert_eq!(EntityClass::CreditCard.canonical("4111-1111 1111-1111"), "4111111111111111");
    }
}
