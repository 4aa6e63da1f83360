//! The classification guard: how sensitive is this request?
//!
//! A ladder of levels (by default the Australian PSPF one: UNOFFICIAL,
//! OFFICIAL, OFFICIAL:Sensitive, PROTECTED, SECRET, TOP SECRET). A request's
//! level is the highest of everything that applies to it:
//!
//! - protective markings written in its text ([`marking`] has the rules
//!   that keep "the secret to good bread" from counting);
//! - the policy's keyword dictionaries;
//! - minimum levels implied by what detection found (`AU_TFN` ≥ 1 →
//!   OFFICIAL:Sensitive);
//! - `default_level`, which is a floor: evidence raises the level but never
//!   lowers it, so a prompt cannot talk itself down by writing UNOFFICIAL.
//!
//! Every decision carries a short rationale naming the rules that set the
//! level (only those at the final level), and a request at or above
//! `block_at` is blocked.
//!
//! Policy member `classification` (every field optional):
//!
//! ```json
//! {
//!   "levels": ["PUBLIC", "INTERNAL", "CONFIDENTIAL"],
//!   "markings": "levels",
//!   "default_level": "PUBLIC",
//!   "block_at": "CONFIDENTIAL",
//!   "keywords": [{ "level": "INTERNAL", "keywords": ["Project Falcon"], "case_insensitive": true }],
//!   "class_minimums": [{ "class": "AU_TFN", "min_count": 1, "level": "CONFIDENTIAL" }]
//! }
//! ```
//!
//! `markings` is `"pspf"` (the PSPF variant table: `OFFICIAL: Sensitive`,
//! `TOP-SECRET`, caveats, legacy DLMs, `[SEC=…]`), `"levels"` (the ladder's
//! own names, exactly as written or in upper case, in the same marking
//! positions) or `"off"`. It defaults to `"pspf"` for the PSPF ladder and
//! `"levels"` for any other; `"pspf"` with another ladder is an error.
//! Level names in the policy are matched ignoring case and whitespace
//! (`"official: sensitive"` names OFFICIAL:Sensitive). Keywords match on
//! word boundaries; `case_insensitive` defaults to true and folds ASCII
//! only.

mod marking;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use serde::Deserialize;

use super::{ConfigError, Violation};
use crate::detect::EntityClass;
use marking::{Anchor, Markings};

/// The default ladder, lowest first.
pub const PSPF_LEVELS: [&str; 6] =
    ["UNOFFICIAL", "OFFICIAL", "OFFICIAL:Sensitive", "PROTECTED", "SECRET", "TOP SECRET"];

/// At most this many rationale entries per decision.
const MAX_RATIONALE: usize = 16;
/// Marking text named in a rationale is cut to this many bytes.
const MAX_MARKING_LEN: usize = 80;

/// The policy member `classification`. The default is the PSPF ladder with
/// markings recognised, no keywords, no class minimums and no blocking.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassificationDoc {
    /// The ladder, lowest first; replaces the PSPF one.
    #[serde(default)]
    pub levels: Option<Vec<String>>,
    #[serde(default)]
    pub markings: Option<MarkingMode>,
    /// The level without evidence (a floor); the lowest by default.
    #[serde(default)]
    pub default_level: Option<String>,
    /// Requests at or above this level are blocked.
    #[serde(default)]
    pub block_at: Option<String>,
    #[serde(default)]
    pub keywords: Vec<KeywordRuleDoc>,
    #[serde(default)]
    pub class_minimums: Vec<ClassMinimumDoc>,
}

/// Which protective markings written in the text are recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarkingMode {
    /// The PSPF variant table (PSPF ladder only).
    Pspf,
    /// The ladder's own level names.
    Levels,
    Off,
}

/// `{ "level": "PROTECTED", "keywords": ["budget measure"], "case_insensitive": true }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeywordRuleDoc {
    pub level: String,
    pub keywords: Vec<String>,
    #[serde(default = "yes")]
    pub case_insensitive: bool,
}

/// `{ "class": "AU_TFN", "min_count": 1, "level": "OFFICIAL:Sensitive" }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassMinimumDoc {
    pub class: String,
    #[serde(default = "one")]
    pub min_count: usize,
    pub level: String,
}

fn yes() -> bool {
    true
}

fn one() -> usize {
    1
}

/// What an automaton pattern triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Marking(Anchor),
    /// Index into [`Classifier::keywords`].
    Keyword(usize),
}

#[derive(Debug, Clone)]
struct Keyword {
    text: String,
    level: usize,
    case_sensitive: bool,
}

#[derive(Debug, Clone)]
struct ClassMinimum {
    class: EntityClass,
    min_count: usize,
    level: usize,
}

/// The compiled `classification` member; built once, then only read.
#[derive(Debug, Clone)]
pub struct Classifier {
    levels: Vec<String>,
    default_level: usize,
    block_at: Option<usize>,
    markings: Option<Markings>,
    /// One ASCII case-insensitive automaton over marking anchors and
    /// keywords; `None` when there is nothing to look for.
    automaton: Option<AhoCorasick>,
    /// Per pattern id, what it triggers (patterns are deduplicated).
    actions: Vec<Vec<Action>>,
    keywords: Vec<Keyword>,
    class_minimums: Vec<ClassMinimum>,
}

/// Per-request evidence, fed by [`Classifier::scan`] and consumed by
/// [`Classifier::finish`]. Holds only the entries at the highest level so
/// far, so it stays small whatever the request.
#[derive(Debug, Clone, Default)]
pub struct ClassificationState {
    evidence: Option<usize>,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    rule: &'static str,
    /// The marking as written, the keyword as configured, or (for a class)
    /// the whole detail.
    subject: String,
    location: String,
    /// Further occurrences of the same subject.
    more: usize,
}

impl ClassificationState {
    fn note(&mut self, rule: &'static str, level: usize, subject: &str, location: &dyn std::fmt::Display) {
        match self.evidence {
            Some(current) if level < current => return,
            Some(current) if level == current => {}
            _ => {
                self.evidence = Some(level);
                self.entries.clear();
            }
        }
        if let Some(entry) = self.entries.iter_mut().find(|e| e.rule == rule && e.subject == subject) {
            entry.more += 1;
        } else if self.entries.len() < MAX_RATIONALE {
            self.entries.push(Entry { rule, subject: subject.to_owned(), location: location.to_string(), more: 0 });
        }
    }
}

/// The decision for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// Index into [`Classifier::levels`].
    pub level: usize,
    pub level_name: String,
    pub rationale: Vec<Rationale>,
    pub blocked: bool,
    /// The `block_at` level name, when the policy sets one.
    pub block_at: Option<String>,
}

/// One reason for the level. `detail` names a marking, a policy keyword or
/// a class and where it was seen, never a detected value.
#[derive(Debug, Clone, PartialEq)]
pub struct Rationale {
    /// "marking" | "keyword" | "class" | "default"
    pub rule: &'static str,
    pub level: String,
    pub detail: String,
}

impl Classification {
    /// The refusal, when the request is at or above `block_at`.
    pub fn violation(&self) -> Option<Violation> {
        if !self.blocked {
            return None;
        }
        let threshold = self.block_at.as_deref().unwrap_or(&self.level_name);
        Some(Violation {
            rule: format!("classification.{}", self.level_name),
            detail: format!(
                "request classified {}; requests classified {} or higher are blocked",
                self.level_name, threshold
            ),
        })
    }
}

impl Classifier {
    pub fn compile(doc: &ClassificationDoc) -> Result<Classifier, ConfigError> {
        let (levels, pspf_ladder) = match &doc.levels {
            None => (PSPF_LEVELS.iter().map(|l| l.to_string()).collect::<Vec<_>>(), true),
            Some(names) => {
                let levels = compile_ladder(names)?;
                let pspf = levels.len() == PSPF_LEVELS.len()
                    && levels.iter().zip(PSPF_LEVELS).all(|(l, p)| level_key(l) == level_key(p));
                (levels, pspf)
            }
        };
        let mode = match doc.markings {
            None if pspf_ladder => MarkingMode::Pspf,
            None => MarkingMode::Levels,
            Some(MarkingMode::Pspf) if !pspf_ladder => {
                return Err(ConfigError::new(
                    "markings",
                    "\"pspf\" needs the PSPF ladder (UNOFFICIAL … TOP SECRET); use \"levels\" to recognise this \
                     ladder's own names, or \"off\"",
                ))
            }
            Some(mode) => mode,
        };
        let markings = match mode {
            MarkingMode::Pspf => Some(Markings::pspf()),
            MarkingMode::Levels => Some(Markings::levels(&levels)),
            MarkingMode::Off => None,
        };
        let level_of = |path: &str, name: &str| {
            let key = level_key(name);
            levels.iter().position(|l| level_key(l) == key).ok_or_else(|| {
                ConfigError::new(path, format!("unknown level \"{name}\"; levels: {}", levels.join(", ")))
            })
        };
        let default_level = match &doc.default_level {
            Some(name) => level_of("default_level", name)?,
            None => 0,
        };
        let block_at = doc.block_at.as_deref().map(|name| level_of("block_at", name)).transpose()?;

        let mut keywords = Vec::new();
        for (i, rule) in doc.keywords.iter().enumerate() {
            let level = level_of(&format!("keywords[{i}].level"), &rule.level)?;
            if rule.keywords.is_empty() {
                return Err(ConfigError::new(format!("keywords[{i}].keywords"), "must list at least one keyword"));
            }
            for (j, word) in rule.keywords.iter().enumerate() {
                let word = word.trim();
                if word.is_empty() {
                    return Err(ConfigError::new(format!("keywords[{i}].keywords[{j}]"), "must not be blank"));
                }
                keywords.push(Keyword { text: word.to_owned(), level, case_sensitive: !rule.case_insensitive });
            }
        }

        let mut class_minimums = Vec::new();
        for (i, rule) in doc.class_minimums.iter().enumerate() {
            let Some(class) = EntityClass::from_name(&rule.class) else {
                let known: Vec<&str> = EntityClass::ALL.iter().map(|c| c.name()).collect();
                return Err(ConfigError::new(
                    format!("class_minimums[{i}].class"),
                    format!("unknown class \"{}\"; known classes: {}", rule.class, known.join(", ")),
                ));
            };
            if rule.min_count == 0 {
                return Err(ConfigError::new(format!("class_minimums[{i}].min_count"), "must be at least 1"));
            }
            let level = level_of(&format!("class_minimums[{i}].level"), &rule.level)?;
            class_minimums.push(ClassMinimum { class, min_count: rule.min_count, level });
        }

        let mut patterns: Vec<String> = Vec::new();
        let mut actions: Vec<Vec<Action>> = Vec::new();
        let anchors = markings.as_ref().map(Markings::anchors).unwrap_or_default();
        let marking_patterns = anchors.into_iter().map(|(p, a)| (p, Action::Marking(a)));
        let keyword_patterns =
            keywords.iter().enumerate().map(|(i, k)| (k.text.to_ascii_lowercase(), Action::Keyword(i)));
        for (pattern, action) in marking_patterns.chain(keyword_patterns) {
            match patterns.iter().position(|p| *p == pattern) {
                Some(i) => {
                    if let Some(list) = actions.get_mut(i) {
                        list.push(action);
                    }
                }
                None => {
                    patterns.push(pattern);
                    actions.push(vec![action]);
                }
            }
        }
        let automaton = if patterns.is_empty() {
            None
        } else {
            // A DFA when it fits (fastest per byte); otherwise whatever the
            // crate picks for a large keyword list.
            let builder = |kind| {
                AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .kind(kind)
                    .build(&patterns)
            };
            let built = builder(Some(AhoCorasickKind::DFA))
                .or_else(|_| builder(None))
                .map_err(|e| ConfigError::new("keywords", format!("cannot build the keyword matcher: {e}")))?;
            Some(built)
        };

        Ok(Classifier { levels, default_level, block_at, markings, automaton, actions, keywords, class_minimums })
    }

    /// The ladder, lowest first.
    pub fn levels(&self) -> &[String] {
        &self.levels
    }

    pub fn start(&self) -> ClassificationState {
        ClassificationState::default()
    }

    /// Adds the evidence of one text part; `location` (its JSON path) is
    /// only used in the rationale. One automaton pass over `text`, plus a
    /// bounded local check per anchor hit.
    pub fn scan(&self, state: &mut ClassificationState, text: &str, location: impl std::fmt::Display) {
        let Some(automaton) = &self.automaton else { return };
        // Overlapping: a keyword may contain a marking word or the reverse,
        // and both must be seen.
        for hit in automaton.find_overlapping_iter(text) {
            let Some(actions) = self.actions.get(hit.pattern().as_usize()) else { continue };
            for &action in actions {
                match action {
                    Action::Marking(anchor) => {
                        let Some(markings) = &self.markings else { continue };
                        let Some(found) = markings.check(text, hit.start(), hit.end(), anchor) else { continue };
                        let written = text.get(found.start..found.end).unwrap_or_default();
                        state.note("marking", found.level, &tidy_marking(written), &location);
                    }
                    Action::Keyword(i) => {
                        let Some(keyword) = self.keywords.get(i) else { continue };
                        let exact = !keyword.case_sensitive || text.get(hit.start()..hit.end()) == Some(&keyword.text);
                        if exact && marking::bounded(text, hit.start(), hit.end()) {
                            state.note("keyword", keyword.level, &keyword.text, &location);
                        }
                    }
                }
            }
        }
    }

    /// The decision: evidence from every scanned part, class minimums from
    /// the request's finding counts, the default floor, `block_at`.
    pub fn finish(&self, state: ClassificationState, class_counts: &[(EntityClass, usize)]) -> Classification {
        let mut state = state;
        for rule in &self.class_minimums {
            let count: usize = class_counts.iter().filter(|(c, _)| *c == rule.class).map(|(_, n)| n).sum();
            if count >= rule.min_count {
                let subject = format!(
                    "class {}: {count} finding{} (minimum {})",
                    rule.class.name(),
                    if count == 1 { "" } else { "s" },
                    rule.min_count
                );
                state.note("class", rule.level, &subject, &"");
            }
        }
        let name = |level: usize| self.levels.get(level).cloned().unwrap_or_default();
        let (level, rationale) = match state.evidence {
            Some(evidence) if evidence >= self.default_level => {
                let rationale = state
                    .entries
                    .into_iter()
                    .map(|e| Rationale { rule: e.rule, level: name(evidence), detail: render(&e) })
                    .collect();
                (evidence, rationale)
            }
            _ => {
                let detail = format!(
                    "no marking, keyword or class evidence above the default level {}",
                    name(self.default_level)
                );
                (self.default_level, vec![Rationale { rule: "default", level: name(self.default_level), detail }])
            }
        };
        Classification {
            level,
            level_name: name(level),
            rationale,
            blocked: self.block_at.is_some_and(|b| level >= b),
            block_at: self.block_at.map(name),
        }
    }
}

fn compile_ladder(names: &[String]) -> Result<Vec<String>, ConfigError> {
    if names.is_empty() {
        return Err(ConfigError::new("levels", "must name at least one level"));
    }
    let mut levels: Vec<String> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let name = name.trim();
        let path = format!("levels[{i}]");
        if name.is_empty() {
            return Err(ConfigError::new(path, "must not be blank"));
        }
        if name.chars().any(char::is_control) {
            return Err(ConfigError::new(path, "must not contain control characters"));
        }
        if let Some(j) = levels.iter().position(|l| level_key(l) == level_key(name)) {
            return Err(ConfigError::new(path, format!("duplicate level name (same as levels[{j}])")));
        }
        levels.push(name.to_owned());
    }
    Ok(levels)
}

/// Level names compare ignoring case and whitespace.
fn level_key(name: &str) -> String {
    name.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase).collect()
}

/// A marking as written, whitespace collapsed and length capped.
fn tidy_marking(written: &str) -> String {
    let mut out = written.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.len() > MAX_MARKING_LEN {
        let cut = (0..=MAX_MARKING_LEN).rev().find(|&i| out.is_char_boundary(i)).unwrap_or(0);
        out.truncate(cut);
        out.push('…');
    }
    out
}

fn render(entry: &Entry) -> String {
    let mut detail = match entry.rule {
        "marking" => format!("marking {}", entry.subject),
        "keyword" => format!("keyword \"{}\"", entry.subject),
        _ => entry.subject.clone(),
    };
    if !entry.location.is_empty() {
        detail.push_str(" at ");
        detail.push_str(&entry.location);
    }
    if entry.more > 0 {
        detail.push_str(&format!(" (+{} more)", entry.more));
    }
    detail
}

#[cfg(test)]
mod tests;
