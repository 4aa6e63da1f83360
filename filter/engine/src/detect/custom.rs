//! Policy-defined detectors: regular expressions (in `regex-lite`, a
//! linear-time engine with no backtracking, so no pattern can blow up on
//! any input) and keyword lists (one Aho-Corasick automaton per detector).
//! Each names the class its findings belong to; the detector's name is the
//! finding's subtype.

use std::borrow::Cow;
use std::fmt;

use aho_corasick::{AhoCorasick, MatchKind};

use super::{EntityClass, Finding};

/// A custom detector as written in a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomSpec {
    pub name: String,
    pub class: EntityClass,
    pub pattern: Option<String>,
    pub keywords: Vec<String>,
    pub confidence: f32,
    pub case_insensitive: bool,
}

/// Why a custom detector does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomError {
    /// The regular expression is invalid or too large.
    Pattern(String),
    /// The keyword list is unusable.
    Keywords(String),
    /// Neither or both of `pattern` and `keywords` were given.
    Shape,
}

impl fmt::Display for CustomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CustomError::Pattern(e) => write!(f, "the pattern does not compile: {e}"),
            CustomError::Keywords(e) => write!(f, "the keyword list does not compile: {e}"),
            CustomError::Shape => f.write_str("give exactly one of \"pattern\" and \"keywords\""),
        }
    }
}

#[derive(Debug, Clone)]
enum Matcher {
    Regex(regex_lite::Regex),
    Keywords(AhoCorasick),
}

/// A compiled custom detector.
#[derive(Debug, Clone)]
pub struct CustomDetector {
    name: Cow<'static, str>,
    class: EntityClass,
    confidence: f32,
    matcher: Matcher,
}

/// Compiled regex programs above this are refused (a policy is not a place
/// for megabyte automata inside every sidecar).
const REGEX_SIZE_LIMIT: usize = 1 << 20;
const REGEX_NEST_LIMIT: u32 = 64;
const MAX_KEYWORDS: usize = 10_000;

impl CustomDetector {
    pub fn compile(spec: &CustomSpec) -> Result<CustomDetector, CustomError> {
        let matcher = match (&spec.pattern, spec.keywords.is_empty()) {
            (Some(pattern), true) => {
                let regex = regex_lite::RegexBuilder::new(pattern)
                    .case_insensitive(spec.case_insensitive)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .nest_limit(REGEX_NEST_LIMIT)
                    .build()
                    .map_err(|e| CustomError::Pattern(e.to_string()))?;
                if regex.is_match("") {
                    return Err(CustomError::Pattern("the pattern matches the empty string".into()));
                }
                Matcher::Regex(regex)
            }
            (None, false) => {
                if spec.keywords.len() > MAX_KEYWORDS {
                    return Err(CustomError::Keywords(format!("more than {MAX_KEYWORDS} keywords")));
                }
                if let Some(i) = spec.keywords.iter().position(|k| k.trim().is_empty()) {
                    return Err(CustomError::Keywords(format!("keyword {i} is empty")));
                }
                let ac = AhoCorasick::builder()
                    .ascii_case_insensitive(spec.case_insensitive)
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&spec.keywords)
                    .map_err(|e| CustomError::Keywords(e.to_string()))?;
                Matcher::Keywords(ac)
            }
            _ => return Err(CustomError::Shape),
        };
        Ok(CustomDetector {
            name: Cow::Owned(spec.name.clone()),
            class: spec.class,
            confidence: spec.confidence.clamp(0.0, 1.0),
            matcher,
        })
    }

    pub fn class(&self) -> EntityClass {
        self.class
    }

    pub(crate) fn detect(&self, text: &str, out: &mut Vec<Finding>) {
        let bytes = text.as_bytes();
        let finding = |start: usize, end: usize, rule: &'static str| Finding {
            class: self.class,
            subtype: Some(self.name.clone()),
            start,
            end,
            confidence: self.confidence,
            rule,
        };
        match &self.matcher {
            Matcher::Regex(re) => {
                for m in re.find_iter(text) {
                    if m.end() > m.start() {
                        out.push(finding(m.start(), m.end(), "custom.regex"));
                    }
                }
            }
            Matcher::Keywords(ac) => {
                let word = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
                for m in ac.find_iter(text) {
                    let before = m.start().checked_sub(1).and_then(|i| bytes.get(i));
                    if !word(before) && !word(bytes.get(m.end())) {
                        out.push(finding(m.start(), m.end(), "custom.keyword"));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(pattern: Option<&str>, keywords: &[&str]) -> CustomSpec {
        CustomSpec {
            name: "employee_id".into(),
            class: EntityClass::Custom,
            pattern: pattern.map(Into::into),
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
            confidence: 0.9,
            case_insensitive: true,
        }
    }

    fn spans(d: &CustomDetector, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        d.detect(text, &mut out);
        out.iter().map(|f| text[f.start..f.end].to_string()).collect()
    }

    #[test]
    fn regex_and_keywords() {
        let re = CustomDetector::compile(&spec(Some(r"\bEMP-\d{6}\b"), &[])).unwrap();
        assert_eq!(spans(&re, "ids emp-123456 and EMP-654321, not EMP-1234567"), ["emp-123456", "EMP-654321"]);
        let kw = CustomDetector::compile(&spec(None, &["Project Falcon", "bluebird"])).unwrap();
        assert_eq!(spans(&kw, "project falcon and Bluebird, not bluebirds"), ["project falcon", "Bluebird"]);
    }

    #[test]
    fn bad_specs_are_errors() {
        assert!(matches!(CustomDetector::compile(&spec(Some("(unclosed"), &[])), Err(CustomError::Pattern(_))));
        assert!(matches!(CustomDetector::compile(&spec(Some("a*"), &[])), Err(CustomError::Pattern(_))));
        assert!(matches!(CustomDetector::compile(&spec(None, &[])), Err(CustomError::Shape)));
        assert!(matches!(CustomDetector::compile(&spec(Some("a"), &["b"])), Err(CustomError::Shape)));
        assert!(matches!(CustomDetector::compile(&spec(None, &[" "])), Err(CustomError::Keywords(_))));
    }

    #[test]
    fn pathological_patterns_stay_linear() {
        // Catastrophic for a backtracking engine; linear here.
        let d = CustomDetector::compile(&spec(Some("(a+)+b"), &[])).unwrap();
        let text = "a".repeat(1 << 16);
        let start = std::time::Instant::now();
        assert!(spans(&d, &text).is_empty());
        assert!(start.elapsed().as_secs() < 20);
    }
}
