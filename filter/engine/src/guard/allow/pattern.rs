//! Name patterns: `*` globs for model and tool names, and host patterns for
//! provider authorities. Both compile once and match in time linear in the
//! name times the (policy-bounded) number of pattern pieces.

/// A name pattern where `*` stands for any run of characters (also none).
/// Matching is ASCII case-insensitive when built with `fold_case`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    /// The pattern as written in the policy, for messages.
    pub source: String,
    /// The literal pieces between the stars.
    pieces: Vec<String>,
    /// Whether the pattern holds a star at all (else `pieces` is one exact name).
    has_star: bool,
    fold_case: bool,
}

impl Glob {
    pub fn new(pattern: &str, fold_case: bool) -> Glob {
        let folded = if fold_case { pattern.to_ascii_lowercase() } else { pattern.to_string() };
        Glob {
            source: pattern.to_string(),
            pieces: folded.split('*').map(str::to_string).collect(),
            has_star: pattern.contains('*'),
            fold_case,
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        let folded;
        let name = if self.fold_case {
            folded = name.to_ascii_lowercase();
            folded.as_str()
        } else {
            name
        };
        let (Some(first), Some(last)) = (self.pieces.first(), self.pieces.last()) else {
            return false;
        };
        if !self.has_star {
            return name == first;
        }
        if name.len() < first.len() + last.len() || !name.starts_with(first.as_str()) || !name.ends_with(last.as_str())
        {
            return false;
        }
        // Between the fixed prefix and suffix, place each middle piece as
        // early as possible: for star-only globs the leftmost placement
        // never loses a match that a later one would find.
        let Some(mut rest) = name.get(first.len()..name.len() - last.len()) else {
            return false;
        };
        let middle = self.pieces.get(1..self.pieces.len() - 1).unwrap_or(&[]);
        for piece in middle {
            let Some(at) = memchr::memmem::find(rest.as_bytes(), piece.as_bytes()) else {
                return false;
            };
            let Some(after) = rest.get(at + piece.len()..) else {
                return false;
            };
            rest = after;
        }
        true
    }
}

/// Why a host pattern is not usable.
pub(crate) fn host_pattern_problem(pattern: &str) -> Option<&'static str> {
    let body = pattern.strip_prefix("*.").unwrap_or(pattern);
    if body.is_empty() {
        return Some("is empty");
    }
    if body.contains('*') {
        return Some("may only use `*.` at the start (one or more labels)");
    }
    if body.starts_with('[') {
        return None;
    }
    if body.contains(':') {
        return Some("must not carry a port (ports are ignored when matching)");
    }
    if !body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
        return Some("may only hold letters, digits, `-` and `.`");
    }
    if body.split('.').any(str::is_empty) {
        return Some("has an empty label");
    }
    None
}

/// A provider host pattern: an exact host, or `*.suffix` for any host with
/// one or more labels before `suffix` (never `suffix` itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostPattern {
    Exact(String),
    /// Holds `.suffix`, dot included.
    Subdomains(String),
}

impl HostPattern {
    /// Expects a pattern that [`host_pattern_problem`] accepted.
    pub fn new(pattern: &str) -> HostPattern {
        let lower = pattern.to_ascii_lowercase();
        let lower = lower.strip_suffix('.').unwrap_or(&lower).to_string();
        match lower.strip_prefix('*') {
            Some(dot_suffix) => HostPattern::Subdomains(dot_suffix.to_string()),
            None => HostPattern::Exact(lower),
        }
    }

    /// `host` must come from [`normalize_authority`].
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(exact) => host == exact,
            HostPattern::Subdomains(dot_suffix) => host
                .strip_suffix(dot_suffix.as_str())
                .is_some_and(|labels| labels.split('.').all(|label| !label.is_empty())),
        }
    }
}

/// The host of an `:authority`, lower-cased, without port or trailing dot,
/// or `None` when it is not a plain `host[:port]` (userinfo, paths, spaces,
/// a non-numeric port are refused rather than guessed at).
pub(crate) fn normalize_authority(authority: &str) -> Option<String> {
    let authority = authority.trim();
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        let port = match rest {
            "" => None,
            _ => Some(rest.strip_prefix(':')?),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let plain =
        host.starts_with('[') || host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if host.is_empty() || !plain {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_edges() {
        let cases = [
            ("gpt-4o*", "gpt-4o", true),
            ("gpt-4o*", "gpt-4o-mini-2024-07-18", true),
            ("gpt-4o*", "gpt-4", false),
            ("gpt-4o*", "xgpt-4o", false),
            ("claude-3-5-*", "claude-3-5-sonnet-latest", true),
            ("claude-3-5-*", "claude-3-5", false),
            ("*", "", true),
            ("*", "anything", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "acb", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("*mini*", "gpt-4o-mini", true),
            ("gpt-4o", "gpt-4o-mini", false),
            ("GPT-4o", "gpt-4O", true),
            ("**", "x", true),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(Glob::new(pattern, true).matches(name), expected, "{pattern} vs {name}");
        }
        assert!(!Glob::new("Tool", false).matches("tool"));
    }

    #[test]
    fn authority_normalisation() {
        assert_eq!(normalize_authority("API.OpenAI.com:443").as_deref(), Some("api.openai.com"));
        assert_eq!(normalize_authority("api.openai.com.").as_deref(), Some("api.openai.com"));
        assert_eq!(normalize_authority("[::1]:8080").as_deref(), Some("[::1]"));
        assert_eq!(normalize_authority("10.0.0.1").as_deref(), Some("10.0.0.1"));
        for bad in ["", "host:", "host:http", "user@host", "evil.com/api.openai.com", "a b", "[::1", "[::1]x"] {
            assert_eq!(normalize_authority(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn subdomain_patterns_need_at_least_one_label() {
        let pattern = HostPattern::new("*.openai.azure.com");
        assert!(pattern.matches("eu.openai.azure.com"));
        assert!(pattern.matches("a.b.openai.azure.com"));
        assert!(!pattern.matches("openai.azure.com"));
        assert!(!pattern.matches("xopenai.azure.com"));
        assert!(!pattern.matches(".openai.azure.com"));
        assert!(!pattern.matches("a..openai.azure.com"));
    }

    #[test]
    fn host_pattern_problems() {
        assert_eq!(host_pattern_problem("api.openai.com"), None);
        assert_eq!(host_pattern_problem("*.openai.azure.com"), None);
        assert!(host_pattern_problem("api.*.com").is_some());
        assert!(host_pattern_problem("api.openai.com:443").is_some());
        assert!(host_pattern_problem("*.").is_some());
        assert!(host_pattern_problem("a..b").is_some());
        assert!(host_pattern_problem("https://api.openai.com").is_some());
    }
}
