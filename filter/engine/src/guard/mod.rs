//! Guards: deterministic checks that a prompt cannot argue with.
//!
//! Detection ([`crate::detect`]) finds values; guards decide about the
//! request as a whole — how sensitive it is ([`classify`]), whether it tries
//! to take over the model ([`injection`]), and whether it stays inside what
//! the tenant may use ([`allow`]). Each guard compiles its own member of the
//! policy once, at configure time, and is then only read.

pub mod allow;
pub mod classify;
pub mod injection;

/// A guard configuration error. `path` is relative to the guard's own
/// member of the policy (`levels[2]`, `tools.allow[0].name`); the policy
/// loader prefixes it with where that member sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError { path: path.into(), message: message.into() }
    }
}

/// Why a guard refused. `rule` is a stable identifier (for audit and
/// metrics); `detail` is safe to show the client: it names the rule, never
/// the sensitive input that tripped it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: String,
    pub detail: String,
}

use std::collections::BTreeMap;

use crate::codec::Role;
use crate::detect::EntityClass;
use crate::json::PathSeg;
use crate::policy::{Engine, Mode};
use crate::problem::ProblemKind;
use allow::{verify_approval, ToolDeclaration, TopicState};
use classify::{Classification, ClassificationState};
use injection::{GuardAction, Source};

/// How far a guard got with a request, as audit events report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardStatus {
    Scanned,
    /// It should have run but the request was refused first (malformed, too large).
    Skipped,
    /// The policy does not configure it.
    NotApplicable,
}

/// One guard's outcome on one request.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardReport {
    /// `classification`, `injection` or `allow`.
    pub name: &'static str,
    pub status: GuardStatus,
    /// What it found; `None` when it did not run.
    pub violation: Option<Violation>,
    /// Declarations it removed (`allow` with `tools.unlisted: strip`).
    pub stripped: usize,
    /// The policy reports this guard's violations without blocking
    /// (`injection.action: flag`).
    pub flag_only: bool,
}

impl GuardReport {
    /// `pass`, `block`, `strip`, `monitor` (a violation in monitor mode) or
    /// `flag` (a violation the policy reports without blocking).
    pub fn verdict(&self, mode: Mode) -> Option<&'static str> {
        if self.status != GuardStatus::Scanned {
            return None;
        }
        Some(match (&self.violation, mode) {
            (Some(_), _) if self.flag_only => "flag",
            (Some(_), Mode::Monitor) => "monitor",
            (Some(_), Mode::Enforce) => "block",
            (None, _) if self.stripped > 0 => "strip",
            (None, _) => "pass",
        })
    }
}

/// The problem type for a guard's violation: one stable `type` per rule family.
pub fn problem_kind(violation: &Violation) -> ProblemKind {
    let rule = violation.rule.as_str();
    match rule {
        "allow.model" => ProblemKind::ModelNotAllowed,
        "allow.max_tokens" => ProblemKind::MaxTokens,
        "allow.host" => ProblemKind::ProviderNotAllowed,
        "allow.topic" => ProblemKind::TopicNotAllowed,
        "allow.tool" => ProblemKind::ToolNotAllowed,
        "allow.tool_argument" => ProblemKind::ToolArguments,
        "allow.approval" => ProblemKind::ApprovalRequired,
        "allow.attachment" => ProblemKind::AttachmentNotAllowed,
        _ if rule.starts_with("injection") => ProblemKind::Injection,
        _ if rule.starts_with("classification") => ProblemKind::Classified,
        _ => ProblemKind::BlockedContent,
    }
}

/// The guards' view of one request as the JSON walk goes by: texts for the
/// classifier and topic lists, tool declarations and calls, attachments and
/// the requested output tokens. Everything decides in [`RequestGuards::finish`].
pub(crate) struct RequestGuards<'e> {
    engine: &'e Engine,
    classification: Option<ClassificationState>,
    topics: Option<TopicState>,
    max_tokens: Option<u64>,
    /// Tool declarations: (position in `tools`/`functions`, name).
    declarations: Vec<(DeclarationAt, String)>,
    /// Tool calls in the conversation: (message, call) → (name, arguments).
    calls: BTreeMap<(usize, usize), (Option<String>, Option<String>)>,
    attachment: Option<Violation>,
    attachments_seen: bool,
    /// The first text the injection guard tripped on.
    injection: Option<Violation>,
    /// Message texts seen before their message's `role` (key order is the
    /// client's): assessed when the walk ends and every role is known.
    pending: Vec<(usize, String, String)>,
}

/// Who wrote a text part, as far as the walk knows when it sees the text.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Author {
    Known(Role),
    /// A message whose `role` member comes later in the body.
    PendingMessage(usize),
}

/// Tool results (and tool declarations, which third-party tool servers
/// write) are indirect: text the user did not write, held to the stricter
/// threshold.
fn source_of(role: Role) -> Source {
    match role {
        Role::Tool | Role::ToolDeclaration => Source::Indirect,
        _ => Source::Direct,
    }
}

/// Where a tool declaration sits, so `strip` can remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum DeclarationAt {
    /// `tools[i]` (OpenAI, Anthropic).
    Tools(usize),
    /// `functions[i]` (legacy OpenAI).
    Functions(usize),
    /// `tools[i].functionDeclarations[k]` (Gemini): reported, never stripped.
    Gemini(usize, usize),
}

/// What the guards decided.
pub(crate) struct GuardsOutcome {
    pub reports: Vec<GuardReport>,
    pub classification: Option<Classification>,
    /// The first violation that blocks, in precedence order.
    pub blocking: Option<Violation>,
    /// Declarations to remove from the forwarded body.
    pub strip: Vec<DeclarationAt>,
}

impl<'e> RequestGuards<'e> {
    pub(crate) fn new(engine: &'e Engine) -> Self {
        RequestGuards {
            engine,
            classification: engine.classifier.as_ref().map(|c| c.start()),
            topics: engine.allow.topics_active().then(|| engine.allow.start_topics()),
            max_tokens: None,
            declarations: Vec::new(),
            calls: BTreeMap::new(),
            attachment: None,
            attachments_seen: false,
            injection: None,
            pending: Vec::new(),
        }
    }

    /// Whether the text guards want to see prose at all (saves working out
    /// each part's author when nothing reads it).
    pub(crate) fn wants_text(&self) -> bool {
        self.classification.is_some() || self.topics.is_some() || self.engine.injection.is_some()
    }

    /// A text part a model will read, decoded.
    pub(crate) fn text(&mut self, text: &str, location: &dyn std::fmt::Display, author: Author) {
        if let (Some(guard), None) = (&self.engine.injection, &self.injection) {
            match author {
                Author::Known(role) => self.injection = guard.assess(text, source_of(role)).violation(location),
                Author::PendingMessage(index) => self.pending.push((index, location.to_string(), text.to_owned())),
            }
        }
        if let (Some(classifier), Some(state)) = (&self.engine.classifier, self.classification.as_mut()) {
            classifier.scan(state, text, location);
        }
        if let Some(state) = self.topics.as_mut() {
            self.engine.allow.scan_topics(state, text);
        }
    }

    /// Whether a string leaf at `path` is structure a guard reads (tool
    /// names and arguments, inline attachments).
    pub(crate) fn wants_leaf(&self, path: &[PathSeg<'_>]) -> bool {
        let allow = &self.engine.allow;
        (allow.tools_active() && (declaration_at(path).is_some() || call_at(path).is_some()))
            || (allow.attachments_active() && is_attachment(path))
    }

    /// A string leaf [`Self::wants_leaf`] asked for, decoded.
    pub(crate) fn leaf(&mut self, path: &[PathSeg<'_>], value: &str) {
        if let Some(at) = declaration_at(path) {
            self.declarations.push((at, value.to_owned()));
        } else if let Some((key, member)) = call_at(path) {
            let entry = self.calls.entry(key).or_default();
            match member {
                CallMember::Name => entry.0 = Some(value.to_owned()),
                CallMember::Arguments => entry.1 = Some(value.to_owned()),
            }
        } else if is_attachment(path) {
            // `image_url.url` may be an ordinary URL; only inline data is judged.
            let inline = !path.last().is_some_and(|k| k.is_key("url")) || value.starts_with("data:");
            if inline {
                self.attachments_seen = true;
                if self.attachment.is_none() {
                    self.attachment = self.engine.allow.check_attachment(value).err();
                }
            }
        }
    }

    /// A number or literal at `path`: the requested output tokens.
    pub(crate) fn scalar(&mut self, path: &[PathSeg<'_>], raw: &str) {
        let is_cap = match path {
            [k] => ["max_tokens", "max_completion_tokens", "max_output_tokens"].iter().any(|n| k.is_key(n)),
            [config, k] => {
                (config.is_key("generationConfig") || config.is_key("generation_config"))
                    && (k.is_key("maxOutputTokens") || k.is_key("max_output_tokens"))
            }
            _ => false,
        };
        if is_cap {
            // A fractional or negative count is not a count; treat it as huge
            // so a cap refuses it rather than letting it through.
            let n = raw.parse::<u64>().unwrap_or(u64::MAX);
            self.max_tokens = Some(self.max_tokens.map_or(n, |m| m.max(n)));
        }
    }

    pub(crate) fn finish(
        self,
        model: Option<&str>,
        meta: &crate::RequestMeta<'_>,
        class_counts: &[(EntityClass, usize)],
        roles: &[(usize, Role)],
    ) -> GuardsOutcome {
        let engine = self.engine;
        let mut injection_violation = self.injection;
        if let Some(guard) = &engine.injection {
            for (index, location, text) in &self.pending {
                if injection_violation.is_some() {
                    break;
                }
                let role = roles.iter().rev().find(|(m, _)| m == index).map_or(Role::Other, |(_, r)| *r);
                injection_violation = guard.assess(text, source_of(role)).violation(location);
            }
        }
        let flag_injection = engine.injection.as_ref().is_some_and(|g| g.action() == GuardAction::Flag);
        let injection_report = GuardReport {
            name: "injection",
            status: if engine.injection.is_some() { GuardStatus::Scanned } else { GuardStatus::NotApplicable },
            violation: injection_violation.clone(),
            stripped: 0,
            flag_only: flag_injection,
        };
        let allow = &engine.allow;
        let mut strip = Vec::new();
        // Allow-lists, in the order an operator reads a refusal: where the
        // request goes, which model, which tools, what it carries, what about.
        let mut allow_violation =
            allow.check_host(meta.authority).and_then(|()| allow.check_model(model, self.max_tokens)).err();
        if allow.tools_active() {
            for (at, name) in &self.declarations {
                if allow_violation.is_some() {
                    break;
                }
                match allow.check_tool_declaration(name) {
                    ToolDeclaration::Allowed if allow.requires_approval(name) => {
                        let Some(key) = &engine.approval_key else {
                            allow_violation = Some(Violation {
                                rule: "allow.approval".into(),
                                detail: "approval tokens cannot be checked: no approval key is configured".into(),
                            });
                            break;
                        };
                        let tokens = meta.approval.unwrap_or_default();
                        allow_violation = verify_approval(key, tokens, &engine.tenant, name, meta.unix_time).err();
                    }
                    ToolDeclaration::Allowed => {}
                    ToolDeclaration::Deny(v) => allow_violation = Some(v),
                    ToolDeclaration::Strip => match at {
                        DeclarationAt::Tools(_) | DeclarationAt::Functions(_) => strip.push(*at),
                        // Nested declarations are not edited: refuse instead.
                        DeclarationAt::Gemini(..) => allow_violation = allow.check_tool_call(name, "{}").err(),
                    },
                }
            }
            for (name, arguments) in self.calls.values() {
                if allow_violation.is_some() {
                    break;
                }
                if let Some(name) = name {
                    allow_violation = allow.check_tool_call(name, arguments.as_deref().unwrap_or_default()).err();
                }
            }
        }
        if allow_violation.is_none() {
            allow_violation = self.attachment;
        }
        if allow_violation.is_none() {
            if let Some(state) = self.topics {
                allow_violation = allow.finish_topics(state).err();
            }
        }
        let allow_report = GuardReport {
            name: "allow",
            status: if allow.is_active() { GuardStatus::Scanned } else { GuardStatus::NotApplicable },
            violation: allow_violation.clone(),
            stripped: strip.len(),
            flag_only: false,
        };

        let classification = match (&engine.classifier, self.classification) {
            (Some(classifier), Some(state)) => Some(classifier.finish(state, class_counts)),
            _ => None,
        };
        let class_violation = classification.as_ref().and_then(Classification::violation);
        let class_report = GuardReport {
            name: "classification",
            status: if classification.is_some() { GuardStatus::Scanned } else { GuardStatus::NotApplicable },
            violation: class_violation.clone(),
            stripped: 0,
            flag_only: false,
        };

        let injection_blocks = if flag_injection { None } else { injection_violation };
        let blocking = allow_violation.or(injection_blocks).or(class_violation);
        GuardsOutcome { reports: vec![class_report, injection_report, allow_report], classification, blocking, strip }
    }
}

/// The reports of guards that never ran because the request was refused
/// before the walk (or had no body).
pub(crate) fn unrun_reports(engine: &Engine, status: GuardStatus) -> Vec<GuardReport> {
    let applies = |configured: bool| if configured { status } else { GuardStatus::NotApplicable };
    [
        ("classification", applies(engine.classifier.is_some())),
        ("injection", applies(engine.injection.is_some())),
        ("allow", applies(engine.allow.is_active())),
    ]
    .into_iter()
    .map(|(name, status)| GuardReport { name, status, violation: None, stripped: 0, flag_only: false })
    .collect()
}

fn declaration_at(path: &[PathSeg<'_>]) -> Option<DeclarationAt> {
    match path {
        [tools, i, function, name] if tools.is_key("tools") && function.is_key("function") && name.is_key("name") => {
            Some(DeclarationAt::Tools(i.index()?))
        }
        [tools, i, name] if tools.is_key("tools") && name.is_key("name") => Some(DeclarationAt::Tools(i.index()?)),
        [functions, i, name] if functions.is_key("functions") && name.is_key("name") => {
            Some(DeclarationAt::Functions(i.index()?))
        }
        [tools, i, declarations, k, name]
            if tools.is_key("tools")
                && (declarations.is_key("functionDeclarations") || declarations.is_key("function_declarations"))
                && name.is_key("name") =>
        {
            Some(DeclarationAt::Gemini(i.index()?, k.index()?))
        }
        _ => None,
    }
}

enum CallMember {
    Name,
    Arguments,
}

/// `messages[i].tool_calls[j].function.{name,arguments}` (OpenAI).
fn call_at(path: &[PathSeg<'_>]) -> Option<((usize, usize), CallMember)> {
    match path {
        [messages, i, calls, j, function, member]
            if messages.is_key("messages") && calls.is_key("tool_calls") && function.is_key("function") =>
        {
            let member = if member.is_key("name") {
                CallMember::Name
            } else if member.is_key("arguments") {
                CallMember::Arguments
            } else {
                return None;
            };
            Some(((i.index()?, j.index()?), member))
        }
        _ => None,
    }
}

/// Inline binary parts: OpenAI `image_url.url` / `input_audio.data` /
/// `file.file_data`, Anthropic `source.data`, Gemini `inlineData.data`.
fn is_attachment(path: &[PathSeg<'_>]) -> bool {
    let n = path.len();
    let (Some(parent), Some(last)) = (n.checked_sub(2).and_then(|i| path.get(i)), path.last()) else {
        return false;
    };
    (parent.is_key("image_url") && last.is_key("url"))
        || (last.is_key("image_url") && path.iter().any(|s| s.is_key("messages")))
        || (parent.is_key("input_audio") && last.is_key("data"))
        || (parent.is_key("file") && last.is_key("file_data"))
        || (parent.is_key("source") && last.is_key("data"))
        || ((parent.is_key("inlineData") || parent.is_key("inline_data")) && last.is_key("data"))
}
