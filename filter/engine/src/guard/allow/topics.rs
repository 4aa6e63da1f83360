//! Topic guard: `deny` topics the request must not touch and `allow` topics
//! of which it must touch at least one. Every keyword of every topic sits in
//! one Aho-Corasick automaton, so each text part costs one pass, and the
//! caller feeds parts one at a time as the codec finds them.

use aho_corasick::{AhoCorasick, MatchKind};

use super::{violation, ConfigError, TopicsDoc, Violation};

const MAX_KEYWORDS: usize = 10_000;
const MAX_KEYWORD_CHARS: usize = 256;

/// Which list a keyword's topic belongs to, and its index there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TopicRef {
    Deny(usize),
    Allow(usize),
}

/// One keyword of the automaton: its topic, and whether its first and last
/// characters are word characters (only those edges need a word boundary,
/// so `c++` still matches before a `+`-free neighbour).
#[derive(Debug, Clone, Copy)]
struct Keyword {
    topic: TopicRef,
    word_start: bool,
    word_end: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Topics {
    automaton: AhoCorasick,
    keywords: Vec<Keyword>,
    deny_names: Vec<String>,
    allow_names: Vec<String>,
}

/// Progress of one request through [`super::AllowList::scan_topics`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicState {
    /// The first denied topic seen (by index); once set, nothing more is scanned.
    denied: Option<usize>,
    touched_allowed: bool,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl Topics {
    pub fn compile(doc: &TopicsDoc) -> Result<Option<Topics>, ConfigError> {
        let mut patterns: Vec<String> = Vec::new();
        let mut keywords: Vec<Keyword> = Vec::new();
        for (list_name, list) in [("deny", &doc.deny), ("allow", &doc.allow)] {
            for (topic_index, topic) in list.iter().enumerate() {
                let topic_path = format!("topics.{list_name}[{topic_index}]");
                if topic.name.trim().is_empty() {
                    return Err(ConfigError::new(format!("{topic_path}.name"), "a topic needs a name"));
                }
                if topic.keywords.is_empty() {
                    return Err(ConfigError::new(
                        format!("{topic_path}.keywords"),
                        "a topic needs at least one keyword",
                    ));
                }
                for (keyword_index, keyword) in topic.keywords.iter().enumerate() {
                    let path = format!("{topic_path}.keywords[{keyword_index}]");
                    let trimmed = keyword.trim();
                    if trimmed.is_empty() {
                        return Err(ConfigError::new(path, "a keyword must not be empty"));
                    }
                    if trimmed.chars().count() > MAX_KEYWORD_CHARS {
                        return Err(ConfigError::new(
                            path,
                            format!("a keyword is at most {MAX_KEYWORD_CHARS} characters"),
                        ));
                    }
                    let (Some(first), Some(last)) = (trimmed.chars().next(), trimmed.chars().last()) else {
                        return Err(ConfigError::new(path, "a keyword must not be empty"));
                    };
                    let topic_ref =
                        if list_name == "deny" { TopicRef::Deny(topic_index) } else { TopicRef::Allow(topic_index) };
                    patterns.push(trimmed.to_lowercase());
                    keywords.push(Keyword {
                        topic: topic_ref,
                        word_start: is_word_char(first),
                        word_end: is_word_char(last),
                    });
                }
            }
        }
        if patterns.is_empty() {
            return Ok(None);
        }
        if patterns.len() > MAX_KEYWORDS {
            return Err(ConfigError::new("topics", format!("more than {MAX_KEYWORDS} keywords in all")));
        }
        // Standard semantics with overlapping search: every keyword occurrence
        // is seen, so `new york` does not hide an overlapping `york times`.
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .ascii_case_insensitive(true)
            .build(&patterns)
            .map_err(|e| ConfigError::new("topics", format!("keywords do not compile: {e}")))?;
        Ok(Some(Topics {
            automaton,
            keywords,
            deny_names: doc.deny.iter().map(|t| t.name.clone()).collect(),
            allow_names: doc.allow.iter().map(|t| t.name.clone()).collect(),
        }))
    }

    /// Nothing later text could change: a denial is final, and with no deny
    /// topics one allowed hit settles the request.
    fn settled(&self, state: &TopicState) -> bool {
        state.denied.is_some() || (self.deny_names.is_empty() && state.touched_allowed)
    }

    pub fn scan(&self, state: &mut TopicState, text: &str) {
        if self.settled(state) {
            return;
        }
        // Keywords are lower-cased at compile time; ASCII text is matched
        // case-insensitively by the automaton, other text is lower-cased
        // first so `ÄRZTE` meets `ärzte`.
        let lowered;
        let haystack = if text.is_ascii() {
            text
        } else {
            lowered = text.to_lowercase();
            lowered.as_str()
        };
        let Ok(matches) = self.automaton.try_find_overlapping_iter(haystack) else {
            return;
        };
        for found in matches {
            let Some(keyword) = self.keywords.get(found.pattern().as_usize()) else {
                continue;
            };
            let before = haystack.get(..found.start()).and_then(|s| s.chars().next_back());
            let after = haystack.get(found.end()..).and_then(|s| s.chars().next());
            if (keyword.word_start && before.is_some_and(is_word_char))
                || (keyword.word_end && after.is_some_and(is_word_char))
            {
                continue;
            }
            match keyword.topic {
                TopicRef::Deny(index) => {
                    state.denied = Some(index);
                    return;
                }
                TopicRef::Allow(_) => state.touched_allowed = true,
            }
            if self.settled(state) {
                return;
            }
        }
    }

    pub fn finish(&self, state: &TopicState) -> Result<(), Violation> {
        if let Some(index) = state.denied {
            let name = self.deny_names.get(index).map_or("?", String::as_str);
            return Err(violation("allow.topic", format!("the request touches the denied topic `{name}`")));
        }
        if !self.allow_names.is_empty() && !state.touched_allowed {
            return Err(violation(
                "allow.topic",
                format!("the request touches none of the allowed topics ({})", self.allow_names.join(", ")),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::allow::TopicDoc;

    fn topic(name: &str, keywords: &[&str]) -> TopicDoc {
        TopicDoc { name: name.into(), keywords: keywords.iter().map(|k| k.to_string()).collect() }
    }

    fn compiled(deny: Vec<TopicDoc>, allow: Vec<TopicDoc>) -> Topics {
        match Topics::compile(&TopicsDoc { deny, allow }) {
            Ok(Some(topics)) => topics,
            other => panic!("did not compile: {other:?}"),
        }
    }

    #[test]
    fn the_first_denied_topic_is_final() {
        let topics = compiled(vec![topic("weapons", &["bomb"]), topic("gambling", &["casino"])], vec![]);
        let mut state = TopicState::default();
        topics.scan(&mut state, "a casino, then a bomb");
        let after_first = state.clone();
        topics.scan(&mut state, "bomb bomb");
        assert_eq!(state, after_first, "nothing is scanned once denied");
        let Err(v) = topics.finish(&state) else { panic!("accepted") };
        assert!(v.detail.contains("gambling"), "{}", v.detail);
    }

    #[test]
    fn one_allowed_hit_settles_a_list_without_deny_topics() {
        let topics = compiled(vec![], vec![topic("billing", &["invoice"])]);
        let mut state = TopicState::default();
        assert!(!topics.settled(&state));
        topics.scan(&mut state, "my invoice");
        assert!(topics.settled(&state));
        assert!(topics.finish(&state).is_ok());
    }

    #[test]
    fn an_empty_topics_member_compiles_to_nothing() {
        assert!(matches!(Topics::compile(&TopicsDoc::default()), Ok(None)));
    }

    #[test]
    fn keywords_are_trimmed_and_need_boundaries_only_at_word_edges() {
        let topics = compiled(vec![topic("net", &[" .onion "])], vec![]);
        let mut state = TopicState::default();
        topics.scan(&mut state, "visit abc.onion now");
        assert!(topics.finish(&state).is_err());
        let mut state = TopicState::default();
        topics.scan(&mut state, "abc.onions");
        assert!(topics.finish(&state).is_ok());
    }
}
