//! The keyword prefilter: one Aho-Corasick pass (ASCII case-insensitive,
//! DFA) over every trigger word the enabled classes need, built once at
//! configure time. Detectors that need a keyword only look at its hits, so
//! a text without any trigger costs this one pass.
//!
//! The search is leftmost-longest and non-overlapping (measured 1.5–1.7×
//! faster than reporting every overlapping match). What that would lose is
//! recovered at build time: a pattern also carries the triggers of every
//! other pattern that is a prefix of it (`sk-proj-` also fires `sk-`,
//! `secret_` also fires `secret`), each with its own length.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

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
    automaton: Option<AhoCorasick>,
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
        let automaton = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&patterns)
            .or_else(|_| AhoCorasick::builder().ascii_case_insensitive(true).build(&patterns))
            .ok();
        Keywords { automaton, tags }
    }

    /// Every trigger occurrence, sorted by start.
    pub(crate) fn hits(&self, text: &str) -> Vec<Hit> {
        let mut hits = Vec::new();
        let Some(ac) = &self.automaton else {
            return hits;
        };
        let bytes = text.as_bytes();
        for m in ac.find_iter(text) {
            let Some(kws) = self.tags.get(m.pattern().as_usize()) else { continue };
            let start = m.start();
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

    #[test]
    fn word_cues_need_word_boundaries() {
        let k = Keywords::build(ClassMask::of(&[EntityClass::Health]));
        assert!(k.hits("prediabetes").is_empty());
        assert!(k.hits("Diabetes").iter().any(|h| h.kw == Kw::Condition));
    }
}
