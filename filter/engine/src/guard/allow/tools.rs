//! Tool guard: which tools a request may declare and how the model may call
//! them. Argument constraints address values by JSON pointer (RFC 6901) in
//! the call's arguments, which arrive as JSON text and are parsed here with
//! a size bound; a repeated object key is refused, because an executor that
//! keeps the first copy would run what we never checked.

use std::fmt;

use regex_lite::Regex;
use serde::de::{Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Number, Value};

use super::pattern::Glob;
use super::{violation, ConfigError, ToolDeclaration, ToolsDoc, Unlisted, Violation};

/// Arguments above this are refused rather than parsed: constraints must
/// hold on what the tool receives, so what we cannot check we do not pass.
pub(crate) const MAX_ARGUMENTS_BYTES: usize = 256 * 1024;
/// Longest string a `pattern` is run on (keeps the regex work bounded).
pub(crate) const MAX_PATTERN_INPUT_BYTES: usize = 32 * 1024;
const REGEX_SIZE_LIMIT: usize = 64 * 1024;
const REGEX_NEST_LIMIT: u32 = 32;

#[derive(Debug, Clone)]
struct ArgumentRule {
    /// As written in the policy, for messages.
    pointer: String,
    /// The pointer's reference tokens, already unescaped.
    tokens: Vec<String>,
    /// Anchored at both ends: the whole value must match.
    pattern: Option<Regex>,
    one_of: Option<Vec<Value>>,
    max_length: Option<usize>,
    required: bool,
}

#[derive(Debug, Clone)]
struct ToolRule {
    name: Glob,
    arguments: Vec<ArgumentRule>,
    approval: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Tools {
    rules: Vec<ToolRule>,
    unlisted: Unlisted,
}

/// Splits an RFC 6901 pointer into unescaped reference tokens.
pub(crate) fn parse_pointer(pointer: &str) -> Result<Vec<String>, &'static str> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err("a JSON pointer is empty or starts with `/`");
    };
    rest.split('/')
        .map(|token| {
            let mut out = String::with_capacity(token.len());
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => out.push('~'),
                    Some('1') => out.push('/'),
                    _ => return Err("`~` in a JSON pointer must be followed by `0` or `1`"),
                }
            }
            Ok(out)
        })
        .collect()
}

/// Follows reference tokens into a value, without recursion.
pub(crate) fn resolve<'v>(root: &'v Value, tokens: &[String]) -> Option<&'v Value> {
    let mut current = root;
    for token in tokens {
        current = match current {
            Value::Object(map) => map.get(token)?,
            Value::Array(items) => {
                let canonical = !token.is_empty()
                    && token.bytes().all(|b| b.is_ascii_digit())
                    && (token == "0" || !token.starts_with('0'));
                if !canonical {
                    return None;
                }
                items.get(token.parse::<usize>().ok()?)?
            }
            _ => return None,
        };
    }
    Some(current)
}

fn numbers_equal(a: &Number, b: &Number) -> bool {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x == y;
    }
    matches!((a.as_f64(), b.as_f64()), (Some(x), Some(y)) if x == y)
}

/// Equality of a value with a (scalar) enum member; numbers compare by
/// value, so `1`, `1.0` and `1e0` are one number.
fn same_scalar(value: &Value, member: &Value) -> bool {
    match (value, member) {
        (Value::Number(a), Value::Number(b)) => numbers_equal(a, b),
        _ => value == member,
    }
}

/// A name the request supplied, shown only when it is a plain identifier.
pub(crate) fn shown_name(name: &str) -> String {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if plain {
        format!("`{name}`")
    } else {
        "(unprintable name)".to_string()
    }
}

impl Tools {
    pub fn compile(doc: &ToolsDoc) -> Result<Tools, ConfigError> {
        let mut rules: Vec<ToolRule> = Vec::with_capacity(doc.allow.len());
        for (tool_index, tool) in doc.allow.iter().enumerate() {
            let tool_path = format!("tools.allow[{tool_index}]");
            if tool.name.trim().is_empty() {
                return Err(ConfigError::new(format!("{tool_path}.name"), "a tool needs a name"));
            }
            if rules.iter().any(|rule| rule.name.source == tool.name) {
                return Err(ConfigError::new(
                    format!("{tool_path}.name"),
                    format!("tool `{}` is listed twice", tool.name),
                ));
            }
            let mut arguments = Vec::with_capacity(tool.arguments.len());
            for (argument_index, argument) in tool.arguments.iter().enumerate() {
                let path = format!("{tool_path}.arguments[{argument_index}]");
                arguments.push(compile_argument(argument, &path)?);
            }
            rules.push(ToolRule { name: Glob::new(&tool.name, false), arguments, approval: tool.approval });
        }
        Ok(Tools { rules, unlisted: doc.unlisted })
    }

    /// The first rule whose name pattern matches: list order is precedence.
    fn rule(&self, name: &str) -> Option<&ToolRule> {
        self.rules.iter().find(|rule| rule.name.matches(name))
    }

    pub fn declaration(&self, name: &str) -> ToolDeclaration {
        if self.rule(name).is_some() {
            return ToolDeclaration::Allowed;
        }
        match self.unlisted {
            Unlisted::Deny => ToolDeclaration::Deny(unlisted_violation(name)),
            Unlisted::Strip => ToolDeclaration::Strip,
        }
    }

    pub fn requires_approval(&self, name: &str) -> bool {
        self.rule(name).is_some_and(|rule| rule.approval)
    }

    /// Whether any listed tool needs an approval token (and so the key).
    pub fn any_approval(&self) -> bool {
        self.rules.iter().any(|rule| rule.approval)
    }

    /// A call to an unlisted tool is refused in both modes: `strip` only
    /// edits declarations, a call the model makes anyway is still out of policy.
    pub fn check_call(&self, name: &str, arguments_json: &str) -> Result<(), Violation> {
        let Some(rule) = self.rule(name) else {
            return Err(unlisted_violation(name));
        };
        if rule.arguments.is_empty() {
            return Ok(());
        }
        let tool = shown_name(name);
        if arguments_json.len() > MAX_ARGUMENTS_BYTES {
            return Err(violation(
                "allow.tool_argument",
                format!("the arguments of tool {tool} exceed {MAX_ARGUMENTS_BYTES} bytes and cannot be checked"),
            ));
        }
        // Some clients send "" for a call without arguments.
        let root = if arguments_json.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            match serde_json::from_str::<StrictJson>(arguments_json) {
                Ok(StrictJson(value)) => value,
                Err(_) => {
                    return Err(violation(
                        "allow.tool_argument",
                        format!("the arguments of tool {tool} are not valid JSON (or repeat a key)"),
                    ))
                }
            }
        };
        rule.arguments.iter().try_for_each(|argument| argument.check(&root, &tool))
    }
}

fn unlisted_violation(name: &str) -> Violation {
    violation("allow.tool", format!("tool {} is not on the allow-list", shown_name(name)))
}

fn compile_argument(doc: &super::ArgumentDoc, path: &str) -> Result<ArgumentRule, ConfigError> {
    let tokens = parse_pointer(&doc.pointer).map_err(|m| ConfigError::new(format!("{path}.pointer"), m))?;
    if doc.pattern.is_none() && doc.one_of.is_none() && doc.max_length.is_none() && !doc.required {
        return Err(ConfigError::new(
            path,
            "an argument rule needs `pattern`, `enum`, `max_length` or `required: true`",
        ));
    }
    let pattern = match &doc.pattern {
        None => None,
        Some(source) => Some(compile_full_match(source).map_err(|m| ConfigError::new(format!("{path}.pattern"), m))?),
    };
    if let Some(members) = &doc.one_of {
        if members.is_empty() {
            return Err(ConfigError::new(format!("{path}.enum"), "an enum needs at least one value"));
        }
        if let Some(i) = members.iter().position(|m| m.is_array() || m.is_object()) {
            return Err(ConfigError::new(
                format!("{path}.enum[{i}]"),
                "enum values are strings, numbers, booleans or null",
            ));
        }
    }
    Ok(ArgumentRule {
        pointer: doc.pointer.clone(),
        tokens,
        pattern,
        one_of: doc.one_of.clone(),
        max_length: doc.max_length,
        required: doc.required,
    })
}

fn build_regex(source: &str) -> Result<Regex, String> {
    regex_lite::RegexBuilder::new(source)
        .size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(REGEX_NEST_LIMIT)
        .build()
        .map_err(|e| format!("the pattern does not compile: {e}"))
}

/// The pattern must hold on the whole value. It is compiled alone first, so
/// a fragment like `a)|(b` cannot become valid only once wrapped.
fn compile_full_match(source: &str) -> Result<Regex, String> {
    build_regex(source)?;
    build_regex(&format!(r"\A(?:{source})\z"))
}

impl ArgumentRule {
    fn check(&self, root: &Value, tool: &str) -> Result<(), Violation> {
        let pointer = &self.pointer;
        let refuse =
            |what: &str| Err(violation("allow.tool_argument", format!("argument `{pointer}` of tool {tool} {what}")));
        // A pointer that finds nothing is no violation unless required:
        // optional parameters are usually left out.
        let Some(value) = resolve(root, &self.tokens) else {
            return if self.required { refuse("is required but missing") } else { Ok(()) };
        };
        if self.max_length.is_some() || self.pattern.is_some() {
            let Some(text) = value.as_str() else {
                return refuse("must be a string");
            };
            if let Some(max) = self.max_length {
                if text.chars().count() > max {
                    return refuse(&format!("is longer than {max} characters"));
                }
            }
            if let Some(pattern) = &self.pattern {
                if text.len() > MAX_PATTERN_INPUT_BYTES {
                    return refuse(&format!(
                        "is longer than the {MAX_PATTERN_INPUT_BYTES} bytes a pattern is checked on"
                    ));
                }
                if !pattern.is_match(text) {
                    return refuse("does not match the policy's pattern");
                }
            }
        }
        if let Some(members) = &self.one_of {
            if !members.iter().any(|member| same_scalar(value, member)) {
                return refuse("is not one of the policy's values");
            }
        }
        Ok(())
    }
}

/// A JSON value parsed by serde_json (whose recursion limit bounds nesting)
/// that refuses objects repeating a key.
struct StrictJson(Value);

impl<'de> Deserialize<'de> for StrictJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<StrictJson, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictJson;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<StrictJson, E> {
        Ok(StrictJson(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<StrictJson, E> {
        Ok(StrictJson(Value::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<StrictJson, E> {
        Ok(StrictJson(Value::from(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<StrictJson, E> {
        Ok(StrictJson(Value::from(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<StrictJson, E> {
        Ok(StrictJson(Value::String(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<StrictJson, E> {
        Ok(StrictJson(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<StrictJson, E> {
        Ok(StrictJson(Value::Null))
    }

    fn visit_none<E>(self) -> Result<StrictJson, E> {
        Ok(StrictJson(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrictJson, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictJson(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(StrictJson(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictJson, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(A::Error::custom("an object repeats a key"));
            }
            let StrictJson(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(StrictJson(Value::Object(object)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointer_escapes_and_errors() {
        assert_eq!(parse_pointer(""), Ok(vec![]));
        assert_eq!(parse_pointer("/a~1b/m~0n/~01"), Ok(vec!["a/b".to_string(), "m~n".to_string(), "~1".to_string()]));
        assert_eq!(parse_pointer("/"), Ok(vec![String::new()]));
        assert!(parse_pointer("a/b").is_err());
        assert!(parse_pointer("/a~2").is_err());
        assert!(parse_pointer("/a~").is_err());
    }

    #[test]
    fn resolution_follows_objects_and_canonical_indexes() {
        let doc = json!({"a/b": {"m~n": [10, 20]}, "": 1, "list": ["x"]});
        let at = |p: &str| resolve(&doc, &parse_pointer(p).unwrap_or_default()).cloned();
        assert_eq!(at("/a~1b/m~0n/1"), Some(json!(20)));
        assert_eq!(at("/"), Some(json!(1)));
        assert_eq!(at(""), Some(doc.clone()));
        assert_eq!(at("/list/01"), None);
        assert_eq!(at("/list/-"), None);
        assert_eq!(at("/list/1"), None);
        assert_eq!(at("/list/0/deeper"), None);
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(same_scalar(&json!(1), &json!(1.0)));
        assert!(same_scalar(&json!(-3), &json!(-3)));
        assert!(!same_scalar(&json!(1), &json!("1")));
        assert!(!same_scalar(&json!(u64::MAX), &json!(-1)));
        assert!(same_scalar(&json!(null), &json!(null)));
    }

    #[test]
    fn strict_json_refuses_repeated_keys_at_any_depth() {
        assert!(serde_json::from_str::<StrictJson>(r#"{"a":1,"a":2}"#).is_err());
        assert!(serde_json::from_str::<StrictJson>(r#"{"x":[{"a":1,"a":2}]}"#).is_err());
        let Ok(StrictJson(value)) = serde_json::from_str::<StrictJson>(r#"{"a":[1,2.5,"s",null,true],"b":{}}"#) else {
            panic!("valid JSON refused");
        };
        assert_eq!(value, json!({"a":[1,2.5,"s",null,true],"b":{}}));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(serde_json::from_str::<StrictJson>(&deep).is_err());
    }

    #[test]
    fn full_match_cannot_be_escaped_by_a_fragment() {
        assert!(compile_full_match("a)|(b").is_err());
        let Ok(regex) = compile_full_match("[a-z]+|x") else { panic!("valid pattern refused") };
        assert!(regex.is_match("abc"));
        assert!(!regex.is_match("abc1"));
        assert!(!regex.is_match("1x"));
    }
}
