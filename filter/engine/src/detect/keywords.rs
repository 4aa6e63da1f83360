//! The keyword prefilter: one pass of the [`Literals`] filter (ASCII
//! case-insensitive) over every trigger word the enabled classes need,
//! built once at configure time. Detectors that need a keyword only look at
//! its hits, so a text without any trigger costs this one pass.
//!
//! Hits are leftmost-longest and non-overlapping, as the Aho-Corasick DFA
//! this replaced reported them (the same findings on every bench corpus).
//! What overlapping matches would add is recovered at build time: a
//! pattern also carries the triggers of every other pattern that is a
//! prefix of it (`sk-proj-` also fires `sk-`, `secret_` also fires
//! `secret`), each with its own length.

use super::literals::Literals;
use super::{context, secret, ClassMask, EntityClass};

/// What a keyword triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kw {
    /// A vendor secret prefix: index into [`secret::VENDOR`].
    Vendor(u16),
    /// A structured secret (JWT, PEM, URL password, ...).
    Special(secret::Special),
    /// A `password`/`token`/`api_key`-style key of a generic assignment.
    Assign,
    /// A health condition term.
    Condition,
    /// A birth cue ("born", "date of birth", "DOB").
    Birth,
    /// A passport cue.
    Passport,
    /// An age phrase ("years old", "aged").
    Age(context::AgeCue),
}

impl Kw {
    fn class(self) -> EntityClass {
        match self {
            Kw::Vendor(_) | Kw::Special(_) | Kw::Assign => EntityClass::Secret,
            Kw::Condition => EntityClass::Health,
            Kw::Birth => EntityClass::DateOfBirth,
            Kw::Passport => EntityClass::Passport,
            Kw::Age(_) => EntityClass::Minor,
        }
    }

    /// Word cues must start and end at word boundaries; secret triggers
    /// are checked by their validators (keys sit inside identifiers).
    fn is_word(self) -> bool {
        !matches!(self, Kw::Vendor(_) | Kw::Special(_) | Kw::Assign)
    }
}

/// One keyword occurrence in the normalised text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub start: usize,
    pub end: usize,
    pub kw: Kw,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Keywords {
    literals: Option<Literals>,
    /// Per pattern id: its length.
    lens: Vec<usize>,
    /// Per pattern id: what it triggers and the length of the keyword that
    /// triggers it (its own, or that of a shorter pattern it starts with).
    tags: Vec<Vec<(Kw, usize)>>,
}

impl Keywords {
    pub(crate) fn build(enabled: ClassMask) -> Keywords {
        let mut patterns: Vec<String> = Vec::new();
        let mut tags: Vec<Vec<Kw>> = Vec::new();
        let all = secret::triggers().into_iter().chain(context::triggers());
        for (word, kw) in all.filter(|(_, kw)| enabled.has(kw.class())) {
            let lower = word.to_ascii_lowercase();
            match patterns.iter().position(|p| *p == lower) {
                Some(i) => {
                    if let Some(t) = tags.get_mut(i) {
                        if !t.contains(&kw) {
                            t.push(kw);
                        }
                    }
                }
                None => {
                    patterns.push(lower);
                    tags.push(vec![kw]);
                }
            }
        }
        if patterns.is_empty() {
            return Keywords::default();
        }
        let tags: Vec<Vec<(Kw, usize)>> = patterns
            .iter()
            .map(|p| {
                let mut all = Vec::new();
                for (q, kws) in patterns.iter().zip(&tags) {
                    if p.starts_with(q.as_str()) {
                        all.extend(kws.iter().map(|&kw| (kw, q.len())));
                    }
                }
                all
            })
            .collect();
        let lens = patterns.iter().map(String::len).collect();
        Keywords { literals: Some(Literals::new(&patterns)), lens, tags }
    }

    /// The leftmost-longest, non-overlapping pattern occurrences in
    /// `text`: `(start, pattern id)`, by start.
    fn matches(&self, text: &[u8]) -> Vec<(usize, usize)> {
        let Some(literals) = &self.literals else {
            return Vec::new();
        };
        let len = |pattern: usize| self.lens.get(pattern).copied().unwrap_or(0);
        // By start, the longest first. Occurrences come ordered by the
        // two-byte unit their first (at most 8) bytes end in, so each lands
        // a few places from the back: an insertion from there, not a sort
        // (whose code would add 50 KB to the `.wasm`).
        let key = |&(start, pattern): &(usize, usize)| (start, usize::MAX - len(pattern));
        let mut found: Vec<(usize, usize)> = Vec::new();
        literals.for_each(text, |start, pattern| {
            let at = found.iter().rposition(|f| key(f) <= key(&(start, pattern))).map_or(0, |p| p + 1);
            found.insert(at, (start, pattern));
        });
        let mut next = 0;
        found.retain(|&(start, pattern)| {
            let keep = start >= next;
            if keep {
                next = start + len(pattern);
            }
            keep
        });
        found
    }

    /// Every trigger occurrence, sorted by start.
    pub(crate) fn hits(&self, text: &str) -> Vec<Hit> {
        let mut hits = Vec::new();
        let bytes = text.as_bytes();
        for (start, pattern) in self.matches(bytes) {
            let Some(kws) = self.tags.get(pattern) else { continue };
            let word_start = start == 0 || !bytes.get(start - 1).copied().is_some_and(|b| b.is_ascii_alphanumeric());
            for &(kw, len) in kws {
                let end = start + len;
                let word_end = !bytes.get(end).copied().is_some_and(|b| b.is_ascii_alphanumeric());
                if kw.is_word() && !(word_start && word_end) {
                    continue;
                }
                hits.push(Hit { start, end, kw });
            }
        }
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_enabled_classes_get_keywords() {
        let none = Keywords::build(ClassMask::of(&[EntityClass::Email]));
        assert!(none.hits("password = hunter22, diabetes").is_empty());
        let all = Keywords::build(ClassMask::of(&EntityClass::ALL));
        let hits = all.hits("PASSWORD = hunter22, born on");
        assert!(hits.iter().any(|h| h.kw == Kw::Assign && h.start == 0));
        assert!(hits.iter().any(|h| h.kw == Kw::Birth));
    }

    #[test]
    fn shorter_patterns_fire_inside_longer_ones() {
        let k = Keywords::build(ClassMask::of(&[EntityClass::Secret, EntityClass::DateOfBirth]));
        let kinds = |t: &str| k.hits(t).iter().map(|h| (h.kw, h.end - h.start)).collect::<Vec<_>>();
        // "secret_" (a vendor prefix) also fires the generic "secret" key.
        assert!(kinds("secret_key = x").contains(&(Kw::Assign, 6)));
        // "born on" also fires "born".
        assert_eq!(kinds("born on").len(), 2);
    }

    /// The leftmost-longest semantics the detectors were written against,
    /// checked against `aho-corasick` (a normal dependency elsewhere).
    fn leftmost_longest(k: &Keywords, patterns: &[String], text: &str) -> bool {
        let ac = aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(patterns)
            .unwrap();
        let want: Vec<(usize, usize)> = ac.find_iter(text).map(|m| (m.start(), m.pattern().as_usize())).collect();
        k.matches(text.as_bytes()) == want
    }

    fn trigger_patterns() -> Vec<String> {
        let mut patterns: Vec<String> = Vec::new();
        for (w, _) in secret::triggers().into_iter().chain(context::triggers()) {
            let w = w.to_ascii_lowercase();
            if !patterns.contains(&w) {
                patterns.push(w);
            }
        }
        patterns
    }

    #[test]
    fn matches_are_leftmost_longest() {
        let k = Keywords::build(ClassMask::of(&EntityClass::ALL));
        let patterns = trigger_patterns();
        for text in [
            "sk-proj-abc and SK-ant-api03-x; born on 1 May, date of birth: type 1 diabetes",
            "password=secret_token age of 7 years-old y/o",
            "eyJeyJeyJ sk-sk-sk- xoxe.xoxb-1 ---------BEGIN ",
        ] {
            assert!(leftmost_longest(&k, &patterns, text), "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn matches_agree_with_aho_corasick(
            words in proptest::collection::vec(
                proptest::sample::select(trigger_patterns()), 0..12),
            glue in proptest::collection::vec("[a-zA-Z0-9 _.:/-]{0,4}", 12),
        ) {
            let text: String = words.iter().zip(&glue).flat_map(|(w, g)| [w.to_uppercase(), g.clone(), w.clone()]).collect();
            let k = Keywords::build(ClassMask::of(&EntityClass::ALL));
            proptest::prop_assert!(leftmost_longest(&k, &trigger_patterns(), &text), "{}", text);
        }
    }

    #[test]
    fn word_cues_need_word_boundaries() {
        let k = Keywords::build(ClassMask::of(&[EntityClass::Health]));
        assert!(k.hits("prediabetes").is_empty());
        assert!(k.hits("Diabetes").iter().any(|h| h.kw == Kw::Condition));
    }
}
