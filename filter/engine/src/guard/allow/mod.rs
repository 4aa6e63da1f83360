//! Allow-list guard: what a tenant may use — which models (and how many
//! output tokens), which provider hosts (data residency), which topics,
//! which tools with which arguments (some only with a signed approval), and
//! which kinds of attachment. Everything is compiled once from the policy
//! member `allow`; each check is then a read of that compiled form.
//!
//! Each part is optional: a member the policy leaves out allows everything
//! it would have checked, and its `*_active` method says false so the glue
//! can skip the work (and report the guard as not applicable).
//!
//! Decisions left to this guard where the wire is silent:
//! - a request that names no model fails a model allow-list ("not stated");
//! - a request that asks for no output-token count passes a `max_tokens` cap
//!   unless `require_max_tokens` is set (the cap bounds what is asked for);
//! - with `topics.allow` set, a request must touch one of its topics, so a
//!   request without any text fails it;
//! - a JSON pointer that finds nothing passes unless the rule is `required`;
//! - a call to an unlisted tool is refused even with `unlisted: "strip"`.

mod approval;
mod attachment;
mod b64;
mod pattern;
mod tools;
mod topics;

use serde::Deserialize;

pub use approval::{mint_approval, verify_approval, ApprovalKey, APPROVAL_HEADER, MIN_KEY_BYTES};
pub use topics::TopicState;

use super::{ConfigError, Violation};
use attachment::Attachments;
use pattern::{host_pattern_problem, normalize_authority, Glob, HostPattern};
use tools::Tools;
use topics::Topics;

/// The policy member `allow`, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowDoc {
    pub models: Option<ModelsDoc>,
    pub hosts: Option<HostsDoc>,
    pub topics: Option<TopicsDoc>,
    pub tools: Option<ToolsDoc>,
    pub attachments: Option<AttachmentsDoc>,
}

/// `models`: name patterns (`*` wildcards, case-insensitive) and a cap on
/// requested output tokens.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsDoc {
    pub allow: Option<Vec<String>>,
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub require_max_tokens: bool,
}

/// `hosts`: provider hosts by `:authority`; `*.example.com` means one or
/// more labels before `example.com`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostsDoc {
    pub allow: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsDoc {
    #[serde(default)]
    pub deny: Vec<TopicDoc>,
    #[serde(default)]
    pub allow: Vec<TopicDoc>,
}

/// A topic: matched when any keyword occurs as whole words, any case.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicDoc {
    pub name: String,
    pub keywords: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsDoc {
    #[serde(default)]
    pub allow: Vec<ToolDoc>,
    #[serde(default)]
    pub unlisted: Unlisted,
}

/// What happens to a declared tool that is not on the list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unlisted {
    /// The request is refused.
    #[default]
    Deny,
    /// The declaration is removed from the request, which goes on.
    Strip,
}

/// One allowed tool; `name` may hold `*` wildcards (first match wins).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolDoc {
    pub name: String,
    #[serde(default)]
    pub arguments: Vec<ArgumentDoc>,
    #[serde(default)]
    pub approval: bool,
}

/// A constraint on the value a JSON pointer finds in a call's arguments.
/// All given checks must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgumentDoc {
    pub pointer: String,
    /// Regex (regex-lite syntax) the whole string must match.
    pub pattern: Option<String>,
    /// Allowed values: strings, numbers, booleans or null.
    #[serde(rename = "enum")]
    pub one_of: Option<Vec<serde_json::Value>>,
    /// Longest allowed string, in characters.
    pub max_length: Option<usize>,
    #[serde(default)]
    pub required: bool,
}

/// `attachments`: allowed types by sniffed content (`image/png`, `image/*`),
/// and the largest decoded size.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentsDoc {
    pub allow: Option<Vec<String>>,
    pub max_bytes: Option<u64>,
}

/// What to do with one tool declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolDeclaration {
    Allowed,
    Deny(Violation),
    /// Remove the declaration (policy `unlisted: "strip"`).
    Strip,
}

#[derive(Debug, Clone)]
struct Models {
    allow: Option<Vec<Glob>>,
    max_tokens: Option<u64>,
    require_max_tokens: bool,
}

/// The compiled `allow` member.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    models: Option<Models>,
    hosts: Option<Vec<HostPattern>>,
    host_names: Vec<String>,
    topics: Option<Topics>,
    tools: Option<Tools>,
    attachments: Option<Attachments>,
}

pub(crate) fn violation(rule: &str, detail: impl Into<String>) -> Violation {
    Violation { rule: rule.to_string(), detail: detail.into() }
}

fn compile_models(doc: &ModelsDoc) -> Result<Models, ConfigError> {
    let allow = match &doc.allow {
        None => None,
        Some(patterns) if patterns.is_empty() => {
            return Err(ConfigError::new(
                "models.allow",
                "an empty list would refuse every model; leave it out instead",
            ))
        }
        Some(patterns) => {
            if let Some(i) = patterns.iter().position(|p| p.trim().is_empty()) {
                return Err(ConfigError::new(format!("models.allow[{i}]"), "a model pattern must not be empty"));
            }
            Some(patterns.iter().map(|p| Glob::new(p.trim(), true)).collect())
        }
    };
    if doc.require_max_tokens && doc.max_tokens.is_none() {
        return Err(ConfigError::new("models.require_max_tokens", "needs `max_tokens`"));
    }
    Ok(Models { allow, max_tokens: doc.max_tokens, require_max_tokens: doc.require_max_tokens })
}

fn compile_hosts(doc: &HostsDoc) -> Result<Vec<HostPattern>, ConfigError> {
    if doc.allow.is_empty() {
        return Err(ConfigError::new(
            "hosts.allow",
            "an empty list would refuse every host; leave `hosts` out instead",
        ));
    }
    doc.allow
        .iter()
        .enumerate()
        .map(|(i, pattern)| match host_pattern_problem(pattern.trim()) {
            Some(problem) => Err(ConfigError::new(format!("hosts.allow[{i}]"), format!("a host pattern {problem}"))),
            None => Ok(HostPattern::new(pattern.trim())),
        })
        .collect()
}

impl AllowList {
    pub fn compile(doc: &AllowDoc) -> Result<AllowList, ConfigError> {
        let models = doc.models.as_ref().map(compile_models).transpose()?;
        let hosts = doc.hosts.as_ref().map(compile_hosts).transpose()?;
        let host_names = doc.hosts.as_ref().map(|h| h.allow.clone()).unwrap_or_default();
        let topics = match &doc.topics {
            Some(topics) => Topics::compile(topics)?,
            None => None,
        };
        let tools = doc.tools.as_ref().map(Tools::compile).transpose()?;
        let attachments = doc.attachments.as_ref().map(Attachments::compile).transpose()?;
        Ok(AllowList { models, hosts, host_names, topics, tools, attachments })
    }

    /// `max_tokens` is the largest of `max_tokens`, `max_completion_tokens`
    /// and `max_output_tokens` the request states, if any.
    pub fn check_model(&self, model: Option<&str>, max_tokens: Option<u64>) -> Result<(), Violation> {
        let Some(models) = &self.models else {
            return Ok(());
        };
        if let Some(patterns) = &models.allow {
            let listed = || patterns.iter().map(|g| g.source.as_str()).collect::<Vec<_>>().join(", ");
            let Some(model) = model.map(str::trim).filter(|m| !m.is_empty()) else {
                return Err(violation(
                    "allow.model",
                    format!("the request does not state a model (allowed: {})", listed()),
                ));
            };
            if !patterns.iter().any(|glob| glob.matches(model)) {
                return Err(violation("allow.model", format!("the model is not on the allow-list ({})", listed())));
            }
        }
        if let Some(cap) = models.max_tokens {
            match max_tokens {
                Some(asked) if asked > cap => {
                    return Err(violation(
                        "allow.max_tokens",
                        format!("the request asks for more than the {cap} output tokens the policy allows"),
                    ))
                }
                None if models.require_max_tokens => {
                    return Err(violation(
                        "allow.max_tokens",
                        format!("the request must state an output token limit of at most {cap}"),
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// `authority` is the request's `:authority` (or `host`) header.
    pub fn check_host(&self, authority: Option<&str>) -> Result<(), Violation> {
        let Some(patterns) = &self.hosts else {
            return Ok(());
        };
        let refuse = |what: &str| {
            Err(violation("allow.host", format!("{what} (allowed hosts: {})", self.host_names.join(", "))))
        };
        let Some(host) = authority.and_then(normalize_authority) else {
            return refuse("the request has no usable :authority");
        };
        if patterns.iter().any(|pattern| pattern.matches(&host)) {
            Ok(())
        } else {
            refuse("the provider host is not on the allow-list")
        }
    }

    /// Whether any part of the allow-list is configured.
    pub fn is_active(&self) -> bool {
        self.models.is_some()
            || self.hosts.is_some()
            || self.topics.is_some()
            || self.tools.is_some()
            || self.attachments.is_some()
    }

    pub fn topics_active(&self) -> bool {
        self.topics.is_some()
    }

    pub fn start_topics(&self) -> TopicState {
        TopicState::default()
    }

    /// Feed every text part of the request, in any order; a keyword never
    /// spans two parts.
    pub fn scan_topics(&self, state: &mut TopicState, text: &str) {
        if let Some(topics) = &self.topics {
            topics.scan(state, text);
        }
    }

    pub fn finish_topics(&self, state: TopicState) -> Result<(), Violation> {
        match &self.topics {
            Some(topics) => topics.finish(&state),
            None => Ok(()),
        }
    }

    pub fn tools_active(&self) -> bool {
        self.tools.is_some()
    }

    pub fn check_tool_declaration(&self, name: &str) -> ToolDeclaration {
        match &self.tools {
            Some(tools) => tools.declaration(name),
            None => ToolDeclaration::Allowed,
        }
    }

    /// Whether calls of `tool` need a token (see [`verify_approval`]).
    /// Whether some tool needs an approval token, so `MESHWARD_APPROVAL_KEY`.
    pub fn needs_approval_key(&self) -> bool {
        self.tools.as_ref().is_some_and(Tools::any_approval)
    }

    pub fn requires_approval(&self, tool: &str) -> bool {
        self.tools.as_ref().is_some_and(|tools| tools.requires_approval(tool))
    }

    /// `arguments_json` is the call's arguments as JSON text (OpenAI's
    /// `function.arguments`, or Anthropic's `input` re-serialised).
    pub fn check_tool_call(&self, name: &str, arguments_json: &str) -> Result<(), Violation> {
        match &self.tools {
            Some(tools) => tools.check_call(name, arguments_json),
            None => Ok(()),
        }
    }

    pub fn attachments_active(&self) -> bool {
        self.attachments.is_some()
    }

    /// `data` is a `data:<mime>;base64,...` URL or bare base64.
    pub fn check_attachment(&self, data: &str) -> Result<(), Violation> {
        match &self.attachments {
            Some(attachments) => attachments.check(data),
            None => Ok(()),
        }
    }
}
