//! The request pipeline: limits → codec → detectors → splice → [`Decision`].
//!
//! Replacements are spliced into the original bytes, so the client's key
//! order, whitespace and escapes survive, and an unchanged body is passed on
//! as is (the glue then never calls `set_body`).

use std::collections::BTreeMap;

use crate::codec::{Codec, Role, Scope};
use crate::detect::{EntityClass, Finding};
use crate::guard::classify::Classification;
use crate::guard::{self, Author, DeclarationAt, GuardReport, GuardStatus, GuardsOutcome, RequestGuards};
use crate::json::{self, PathSeg, StringLeaf, Visitor};
use crate::placeholder::PlaceholderKey;
use crate::policy::{ClassAction, Direction, Engine, Mode};
use crate::problem::{Problem, ProblemKind};
use crate::restore::RestoreMap;

/// What the glue knows about a request from its headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestMeta<'a> {
    pub request_id: &'a str,
    pub path: &'a str,
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    /// `:authority`: the provider endpoint the request is going to.
    pub authority: Option<&'a str>,
    /// `x-meshward-approval`: approval tokens for approval-required tools.
    pub approval: Option<&'a str>,
    /// Seconds since the Unix epoch (approval tokens expire).
    pub unix_time: u64,
}

/// What to do with the request.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Forward the body unchanged.
    Allow,
    /// Forward this body instead.
    Rewrite(Vec<u8>),
    /// Answer with this problem; nothing goes upstream.
    Block(Problem),
}

/// One finding as reported to the CLI, logs and audit (never the value).
#[derive(Debug, Clone, PartialEq)]
pub struct FindingReport {
    pub class: EntityClass,
    /// The finer kind within the class (secret format, phone plan, card
    /// network, custom detector name), if the detector knows one.
    pub subtype: Option<std::borrow::Cow<'static, str>>,
    pub rule: &'static str,
    /// JSON path of the text part, `$` for a non-JSON body.
    pub location: String,
    pub role: Role,
    /// Byte offsets into the original body.
    pub start: usize,
    pub end: usize,
    pub confidence: f32,
    pub action: ClassAction,
    /// False in monitor mode: the action is what *would* have happened.
    pub enforced: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub verdict: Verdict,
    pub codec: Codec,
    pub findings: Vec<FindingReport>,
    /// The requested model (top-level `model` of a known API), for audit.
    pub model: Option<String>,
    /// Placeholders issued for `reversible` classes and their values, for
    /// restoring this request's response. In memory only; never logged.
    pub restore: RestoreMap,
    /// An OpenAI Chat Completions stream whose client did not ask for token
    /// usage: `stream_options.include_usage` was set to `true` in the body
    /// sent upstream, so the response stream must drop the extra usage-only
    /// chunk (after reading its usage) — see
    /// [`crate::response::ResponseStream::with_injected_usage`].
    pub injected_usage: bool,
    /// The guards besides PII detection, in the order audit events list them.
    pub guards: Vec<GuardReport>,
    /// The classification, when the policy has a ladder and the body was read.
    pub classification: Option<Classification>,
}

impl Decision {
    /// How many findings of each class, for audit events and metrics.
    pub fn counts_by_class(&self) -> Vec<(EntityClass, usize)> {
        count_classes(self.findings.iter().map(|f| f.class))
    }
}

/// Findings per class, sorted by class: what audit events and logs carry
/// instead of values.
pub fn count_classes(classes: impl IntoIterator<Item = EntityClass>) -> Vec<(EntityClass, usize)> {
    let mut counts: Vec<(EntityClass, usize)> = Vec::new();
    for class in classes {
        match counts.iter_mut().find(|(c, _)| *c == class) {
            Some((_, n)) => *n += 1,
            None => counts.push((class, 1)),
        }
    }
    counts.sort();
    counts
}

/// A byte range of the original body and what replaces it.
struct Edit {
    start: usize,
    end: usize,
    replacement: String,
}

impl Engine {
    /// The body-size limit, checked as the body arrives so an oversized
    /// body is refused before it is all buffered.
    pub fn check_body_size(&self, meta: &RequestMeta<'_>, size: usize) -> Result<(), Problem> {
        if size <= self.limits.max_body_bytes {
            return Ok(());
        }
        let detail = format!("the body is at least {size} bytes; the limit is {} bytes", self.limits.max_body_bytes);
        let instance = meta.path.split('?').next().unwrap_or_default();
        Err(Problem::new(ProblemKind::BodyTooLarge, detail, instance, meta.request_id))
    }

    /// Decides what happens to a complete request body.
    pub fn evaluate_request(&self, meta: &RequestMeta<'_>, body: &[u8]) -> Decision {
        let codec = Codec::for_request(meta.path, meta.content_type);
        let instance = meta.path.split('?').next().unwrap_or_default();
        let refused = |verdict: Verdict| Decision {
            verdict,
            codec,
            findings: Vec::new(),
            model: None,
            restore: RestoreMap::default(),
            injected_usage: false,
            guards: guard::unrun_reports(self, GuardStatus::Skipped),
            classification: None,
        };
        let block = |kind: ProblemKind, detail: String| {
            refused(Verdict::Block(Problem::new(kind, detail, instance, meta.request_id)))
        };

        if let Err(problem) = self.check_body_size(meta, body.len()) {
            return refused(Verdict::Block(problem));
        }
        if let Some(encoding) = meta.content_encoding.map(str::trim).filter(|e| !e.eq_ignore_ascii_case("identity")) {
            let detail = format!(
                "content-encoding '{}' cannot be inspected; send the body uncompressed",
                encoding.chars().take(32).collect::<String>()
            );
            return block(ProblemKind::UnsupportedEncoding, detail);
        }
        if body.is_empty() {
            return Decision {
                guards: guard::unrun_reports(self, GuardStatus::NotApplicable),
                ..refused(Verdict::Allow)
            };
        }
        let text = match crate::utf8::str_from(body) {
            Ok(text) => text,
            Err(e) => {
                let detail = format!("invalid UTF-8 sequence at byte {}", e.valid_up_to());
                return block(ProblemKind::InvalidUtf8, detail);
            }
        };

        let mut scan = Scan::new(self, codec, text);
        if codec.requires_json() {
            if let Err(e) = json::walk(text, self.limits.max_json_depth, &mut scan) {
                return block(ProblemKind::MalformedJson, e.to_string());
            }
        } else {
            scan.part(Scope::Other, None, StringLeaf { start: 0, end: text.len(), escaped: false });
        }
        let Scan { findings, edits, roles, internal_error, model, restore, usage, guards, over_limit, .. } = scan;
        if let Some(detail) = over_limit {
            return block(ProblemKind::LimitExceeded, detail);
        }
        let findings = resolve_roles(findings, &roles);
        let counts = count_classes(findings.iter().map(|f| f.class));
        let guarded = guards.finish(model.as_deref(), meta, &counts, &roles);

        let block = |kind, detail, findings| Decision {
            model: model.clone(),
            findings,
            guards: guarded.reports.clone(),
            classification: guarded.classification.clone(),
            ..block(kind, detail)
        };
        if let Some(detail) = internal_error {
            return block(ProblemKind::Internal, detail, findings);
        }
        let enforce = self.mode == Mode::Enforce;
        if let (true, Some(violation)) = (enforce, &guarded.blocking) {
            return block(guard::problem_kind(violation), violation.detail.clone(), findings);
        }
        let blocked: Vec<_> = findings.iter().filter(|f| f.action == ClassAction::Block).map(|f| f.class).collect();
        if enforce && !blocked.is_empty() {
            let mut classes: Vec<_> = blocked.iter().map(|c| c.name()).collect();
            classes.dedup();
            let detail = format!("the request contains data of class {} which policy blocks", classes.join(", "));
            return block(ProblemKind::BlockedContent, detail, findings);
        }
        // Redactions are edits in enforce mode only (`Scan::part`).
        let redacted = enforce && !edits.is_empty();
        let mut edits = if redacted { edits } else { Vec::new() };
        // The usage injection gives the audit event token usage for every
        // stream (the extra chunk is stripped again). Monitor mode promises
        // that nothing is rewritten, so it asks for no usage there.
        let usage_edit = if enforce { usage.edit(codec, text) } else { None };
        let injected_usage = match usage_edit {
            Some(edit) => {
                edits.push(edit);
                // A zero-width insert at a `}` or a literal's span: never
                // inside a redacted string, so sorting keeps edits disjoint.
                edits.sort_by_key(|e| e.start);
                true
            }
            None => false,
        };
        let mut verdict = if edits.is_empty() {
            Verdict::Allow
        } else {
            match splice(body, &edits) {
                Some(rewritten) => Verdict::Rewrite(rewritten),
                None => return block(ProblemKind::Internal, "replacement spans out of order".into(), findings),
            }
        };
        if enforce && !guarded.strip.is_empty() {
            let current = match &verdict {
                Verdict::Rewrite(rewritten) => rewritten.as_slice(),
                _ => body,
            };
            match strip_declarations(current, &guarded.strip) {
                Some(stripped) => verdict = Verdict::Rewrite(stripped),
                None => return block(ProblemKind::Internal, "cannot remove tool declarations".into(), findings),
            }
        }
        // Nothing was replaced (monitor mode, or a block): nothing to restore.
        let restore = if redacted { restore } else { RestoreMap::default() };
        let GuardsOutcome { reports, classification, .. } = guarded;
        Decision { verdict, codec, findings, model, restore, injected_usage, guards: reports, classification }
    }
}

/// Per-request scanning state, fed by the JSON walk.
struct Scan<'e, 't> {
    engine: &'e Engine,
    codec: Codec,
    text: &'t str,
    findings: Vec<(Scope, FindingReport)>,
    edits: Vec<Edit>,
    roles: Vec<(usize, Role)>,
    internal_error: Option<String>,
    model: Option<String>,
    restore: RestoreMap,
    usage: UsageProbe,
    guards: RequestGuards<'e>,
    /// Set when the body crosses a `limits` bound; the walk then does no
    /// more work and the request is refused.
    over_limit: Option<String>,
    text_parts: usize,
    // Reused buffers: one allocation per request, not per string.
    found: Vec<Finding>,
    offset_map: json::OffsetMap,
    /// Each placeholder made so far, by class name, NUL and value: a value
    /// repeated in one body (a chat's history repeats every earlier turn)
    /// costs one HMAC, not one per occurrence. Keys are looked up from
    /// `memo_key`, reused, so only a new value allocates.
    placeholders: BTreeMap<Box<str>, String>,
    memo_key: String,
}

impl<'e, 't> Scan<'e, 't> {
    fn new(engine: &'e Engine, codec: Codec, text: &'t str) -> Self {
        Scan {
            engine,
            codec,
            text,
            findings: Vec::new(),
            edits: Vec::new(),
            roles: Vec::new(),
            internal_error: None,
            model: None,
            restore: RestoreMap::default(),
            usage: UsageProbe::default(),
            guards: RequestGuards::new(engine),
            over_limit: None,
            text_parts: 0,
            found: Vec::new(),
            offset_map: json::OffsetMap::default(),
            placeholders: BTreeMap::new(),
            memo_key: String::new(),
        }
    }

    fn part(&mut self, scope: Scope, path: Option<&[PathSeg<'_>]>, leaf: StringLeaf) {
        let limits = &self.engine.limits;
        self.text_parts += 1;
        if self.text_parts > limits.max_text_parts {
            self.over_limit =
                Some(format!("the body has more than {} text parts (limits.max_text_parts)", limits.max_text_parts));
            return;
        }
        let Some(raw) = self.text.get(leaf.start..leaf.end) else {
            self.internal_error = Some("string span outside the body".into());
            return;
        };
        self.found.clear();
        let decoded;
        let scanned: &str = if leaf.escaped {
            decoded = json::unescape(raw, Some(&mut self.offset_map));
            &decoded
        } else {
            raw
        };
        // Below-threshold findings are dropped and stronger actions win
        // overlaps before the overlaps are resolved, so neither can hide a
        // value another rule would have replaced.
        let engine = self.engine;
        engine.detectors.scan_ranked(scanned, &mut self.found, |f| engine.rank(f, Direction::Request));
        if self.guards.wants_text() {
            let author = match scope {
                Scope::Message(i) => match self.roles.iter().rev().find(|(m, _)| *m == i) {
                    Some((_, role)) => Author::Known(*role),
                    None => Author::PendingMessage(i),
                },
                Scope::ToolDeclaration => Author::Known(Role::ToolDeclaration),
                Scope::Other => Author::Known(Role::Other),
            };
            self.guards.text(scanned, &json::Location(path), author);
        }
        let enforce = self.engine.mode == Mode::Enforce;
        for f in &self.found {
            let Some(rule) = self.engine.rule(f.class) else {
                continue;
            };
            if f.confidence < rule.min_confidence {
                continue;
            }
            let (start, end) = if leaf.escaped {
                match (self.offset_map.get(f.start), self.offset_map.get(f.end)) {
                    (Some(s), Some(e)) => (leaf.start + s, leaf.start + e),
                    _ => {
                        self.internal_error = Some("finding outside its text part".into());
                        return;
                    }
                }
            } else {
                (leaf.start + f.start, leaf.start + f.end)
            };
            if matches!(rule.action, ClassAction::Redact | ClassAction::Reversible) && enforce {
                let (Some(key), Some(value)) = (&self.engine.placeholder_key, scanned.get(f.start..f.end)) else {
                    self.internal_error = Some("redaction requested without a placeholder key".into());
                    return;
                };
                // The first few placeholders skip the memo, whose
                // allocations cost more than the HMACs it could save them.
                let placeholder = if self.edits.len() < MEMO_FROM {
                    key.placeholder(f.class, value)
                } else {
                    placeholder_for(&mut self.placeholders, &mut self.memo_key, key, f.class, value)
                };
                if rule.action == ClassAction::Reversible {
                    self.restore.insert(placeholder.clone(), value.to_owned());
                }
                self.edits.push(Edit { start, end, replacement: placeholder });
            }
            let location = json::Location(path).render();
            let report = FindingReport {
                class: f.class,
                subtype: f.subtype.clone(),
                rule: f.rule,
                location,
                role: Role::Other,
                start,
                end,
                confidence: f.confidence,
                action: rule.action,
                enforced: enforce,
            };
            self.findings.push((scope, report));
        }
        if self.findings.len() > limits.max_findings {
            self.over_limit =
                Some(format!("the body holds more than {} findings (limits.max_findings)", limits.max_findings));
        }
    }

    /// A number inside a message (`"content": 4111111111111111`) is
    /// scanned like a string: a card or an id sent as a JSON number must not
    /// reach the provider either. A redacted number becomes a string, the
    /// only way a placeholder stays valid JSON; the provider would refuse a
    /// number there anyway.
    fn number_part(&mut self, path: &[PathSeg<'_>], start: usize, end: usize) {
        const MIN_DIGITS: usize = 6;
        let Some(token) = self.text.get(start..end) else { return };
        if !token.bytes().next().is_some_and(|b| b == b'-' || b.is_ascii_digit())
            || token.bytes().filter(u8::is_ascii_digit).count() < MIN_DIGITS
            || self.internal_error.is_some()
            || self.over_limit.is_some()
        {
            return;
        }
        // Only inside messages: a top-level `seed` or `user` id may be any
        // number, and turning it into a string would break the request.
        let Some(scope @ Scope::Message(_)) = self.codec.classify(path) else { return };
        let before = self.edits.len();
        self.part(scope, Some(path), StringLeaf { start, end, escaped: false });
        if self.edits.len() == before {
            return;
        }
        let mut inner: Vec<Edit> = self.edits.drain(before..).collect();
        inner.sort_by_key(|e| e.start);
        let mut quoted = String::with_capacity(token.len() + 32);
        quoted.push('"');
        let mut pos = start;
        for edit in &inner {
            quoted.push_str(self.text.get(pos..edit.start).unwrap_or_default());
            quoted.push_str(&edit.replacement);
            pos = edit.end;
        }
        quoted.push_str(self.text.get(pos..end).unwrap_or_default());
        quoted.push('"');
        self.edits.push(Edit { start, end, replacement: quoted });
    }

    /// Checks the bounds a JSON string can cross by where it is or how long
    /// it is; records the first one crossed.
    fn check_leaf_limits(&mut self, path: &[PathSeg<'_>], leaf: &StringLeaf) {
        let limits = &self.engine.limits;
        let bytes = leaf.end - leaf.start;
        if bytes > limits.max_string_bytes {
            let detail =
                format!("a string of {bytes} bytes exceeds limits.max_string_bytes ({})", limits.max_string_bytes);
            self.over_limit = Some(detail);
            return;
        }
        if self.codec == Codec::OpenAiChat {
            if let [messages, index, ..] = path {
                if messages.is_key("messages") && index.index().is_some_and(|i| i >= limits.max_messages) {
                    self.over_limit =
                        Some(format!("the body has more than {} messages (limits.max_messages)", limits.max_messages));
                }
            }
        }
    }
}

impl<'a> Visitor<'a> for Scan<'_, '_> {
    fn string(&mut self, path: &[PathSeg<'a>], leaf: StringLeaf) {
        if self.internal_error.is_some() || self.over_limit.is_some() {
            return;
        }
        self.check_leaf_limits(path, &leaf);
        if self.over_limit.is_some() {
            return;
        }
        if self.codec == Codec::OpenAiChat {
            self.usage.value(path, UsageValue::Other);
        }
        if self.codec != Codec::PlainText && matches!(path, [top] if top.is_key("model")) {
            let raw = self.text.get(leaf.start..leaf.end).unwrap_or_default();
            // Bounded: a model name is short; anything else is not worth auditing whole.
            self.model = Some(json::unescape(raw, None).chars().take(128).collect());
        }
        if self.guards.wants_leaf(path) {
            let text = self.text;
            let raw = text.get(leaf.start..leaf.end).unwrap_or_default();
            if leaf.escaped {
                self.guards.leaf(path, &json::unescape(raw, None));
            } else {
                self.guards.leaf(path, raw);
            }
        }
        if let Some(index) = self.codec.message_role_index(path) {
            let raw = self.text.get(leaf.start..leaf.end).unwrap_or_default();
            let role = if leaf.escaped {
                Role::from_message_role(&json::unescape(raw, None))
            } else {
                Role::from_message_role(raw)
            };
            self.roles.push((index, role));
            return;
        }
        if let Some(scope) = self.codec.classify(path) {
            self.part(scope, Some(path), leaf);
        }
    }

    fn scalar(&mut self, path: &[PathSeg<'a>], start: usize, end: usize) {
        if path.len() <= 2 {
            self.guards.scalar(path, self.text.get(start..end).unwrap_or_default());
        }
        self.number_part(path, start, end);
        if self.codec == Codec::OpenAiChat {
            let value = match self.text.get(start..end) {
                Some("true") => UsageValue::True,
                Some("false") => UsageValue::Literal(start, end),
                Some("null") => UsageValue::Literal(start, end),
                _ => UsageValue::Other,
            };
            self.usage.value(path, value);
        }
    }

    fn object_end(&mut self, path: &[PathSeg<'a>], close: usize, empty: bool) {
        if self.codec == Codec::OpenAiChat {
            match path {
                [] => self.usage.top = Some(close),
                _ => self.usage.value(path, UsageValue::Object(close, empty)),
            }
        }
    }
}

/// A top-level member the usage injection cares about, as the walk saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UsageValue {
    True,
    /// `false` or `null`, and its span.
    Literal(usize, usize),
    /// An object: its closing `}` and whether it is empty.
    Object(usize, bool),
    /// A string, a number or anything else.
    Other,
}

/// What an OpenAI Chat Completions request says about streaming and usage:
/// `stream`, `stream_options`, `stream_options.include_usage` (the last
/// occurrence of a duplicated key wins, as in most JSON parsers).
#[derive(Debug, Default)]
struct UsageProbe {
    stream: Option<UsageValue>,
    options: Option<UsageValue>,
    include_usage: Option<UsageValue>,
    /// The closing `}` of the top-level object.
    top: Option<usize>,
}

impl UsageProbe {
    fn value(&mut self, path: &[PathSeg<'_>], value: UsageValue) {
        match path {
            [k] if k.is_key("stream") => self.stream = Some(value),
            [k] if k.is_key("stream_options") => self.options = Some(value),
            [o, k] if o.is_key("stream_options") && k.is_key("include_usage") => self.include_usage = Some(value),
            // Something nested inside `include_usage` (an invalid request):
            // it is there, and not `true`; leave it for the provider to refuse.
            [o, k, ..] if o.is_key("stream_options") && k.is_key("include_usage") => {
                self.include_usage = Some(UsageValue::Other)
            }
            _ => {}
        }
    }

    /// The edit that makes a streaming Chat Completions request report token
    /// usage in a final chunk, if the client did not ask for it.
    ///
    /// An explicit `"include_usage": false` (or `null`) is overridden to
    /// `true` like an absent one: the client still gets what it asked for —
    /// no usage chunk, because the response stream strips the injected one —
    /// and the audit event gets the usage it needs. Respecting `false` would
    /// only lose the audit record's token counts, with no difference the
    /// client could observe. A value of any other type is left alone for
    /// the provider to reject.
    fn edit(&self, codec: Codec, text: &str) -> Option<Edit> {
        if codec != Codec::OpenAiChat || self.stream != Some(UsageValue::True) {
            return None;
        }
        let insert = |at: usize, replacement: &str| Edit { start: at, end: at, replacement: replacement.to_owned() };
        match (self.options, self.include_usage) {
            (_, Some(UsageValue::True | UsageValue::Object(..) | UsageValue::Other)) => None,
            (_, Some(UsageValue::Literal(start, end))) => Some(Edit { start, end, replacement: "true".into() }),
            (Some(UsageValue::Object(close, empty)), None) => {
                Some(insert(close, if empty { "\"include_usage\":true" } else { ",\"include_usage\":true" }))
            }
            (Some(UsageValue::Literal(start, end)), None) if text.get(start..end) == Some("null") => {
                Some(Edit { start, end, replacement: "{\"include_usage\":true}".into() })
            }
            (Some(_), None) => None,
            // `stream` is a member, so the top-level object is not empty.
            (None, None) => self.top.map(|close| insert(close, ",\"stream_options\":{\"include_usage\":true}")),
        }
    }
}

fn resolve_roles(findings: Vec<(Scope, FindingReport)>, roles: &[(usize, Role)]) -> Vec<FindingReport> {
    findings
        .into_iter()
        .map(|(scope, mut report)| {
            report.role = match scope {
                Scope::Message(i) => roles.iter().rev().find(|(m, _)| *m == i).map_or(Role::Other, |(_, r)| *r),
                Scope::ToolDeclaration => Role::ToolDeclaration,
                Scope::Other => Role::Other,
            };
            report
        })
        .collect()
}

/// Removes tool declarations (`tools.unlisted: strip`). Rare, so it
/// re-serialises the body rather than splicing: key order and spacing of
/// the forwarded body change, its meaning does not. A `tools` array left
/// empty is removed with `tool_choice`, which providers refuse without tools.
fn strip_declarations(body: &[u8], strip: &[DeclarationAt]) -> Option<Vec<u8>> {
    let mut doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    let object = doc.as_object_mut()?;
    for (member, choice) in [("tools", "tool_choice"), ("functions", "function_call")] {
        let mut indexes: Vec<usize> = strip
            .iter()
            .filter_map(|at| match (at, member) {
                (DeclarationAt::Tools(i), "tools") | (DeclarationAt::Functions(i), "functions") => Some(*i),
                _ => None,
            })
            .collect();
        if indexes.is_empty() {
            continue;
        }
        indexes.sort_unstable();
        indexes.dedup();
        let list = object.get_mut(member)?.as_array_mut()?;
        for i in indexes.into_iter().rev() {
            if i < list.len() {
                list.remove(i);
            }
        }
        if list.is_empty() {
            object.remove(member);
            object.remove(choice);
        }
    }
    serde_json::to_vec(&doc).ok()
}

/// From how many placeholders in a body on they are memoised: each costs
/// an HMAC (two SHA-256 blocks, about 5,000 wasm operators), the memo's
/// first entry about as much in allocations.
const MEMO_FROM: usize = 8;

/// The placeholder of `value`, made once per class and value of a body
/// (see `Scan::placeholders`). Out of line: inlined, it made the rest of
/// `Scan::part` cost more even in bodies with one value.
#[inline(never)]
fn placeholder_for(
    made: &mut BTreeMap<Box<str>, String>,
    memo_key: &mut String,
    key: &PlaceholderKey,
    class: EntityClass,
    value: &str,
) -> String {
    memo_key.clear();
    memo_key.extend([class.name(), "\0", value]);
    if let Some(placeholder) = made.get(memo_key.as_str()) {
        return placeholder.clone();
    }
    let placeholder = key.placeholder(class, value);
    made.insert(memo_key.as_str().into(), placeholder.clone());
    placeholder
}

/// Applies non-overlapping, ordered edits; `None` if they are not.
fn splice(body: &[u8], edits: &[Edit]) -> Option<Vec<u8>> {
    let extra: usize = edits.iter().map(|e| e.replacement.len()).sum();
    let mut out = Vec::with_capacity(body.len() + extra);
    let mut pos = 0;
    for edit in edits {
        out.extend_from_slice(body.get(pos..edit.start)?);
        out.extend_from_slice(edit.replacement.as_bytes());
        pos = edit.end;
    }
    out.extend_from_slice(body.get(pos..)?);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Secrets;
    use serde_json::Value;

    const KEY: &str = "unit-test-placeholder-key-0123456789";

    fn engine_with(classes: &str, mode: &str) -> Engine {
        let policy = format!(
            r#"{{"meshward_policy":1,"name":"t","version":"1","mode":"{mode}","detection":{{"classes":{classes}}},"limits":{{"max_body_bytes":4096,"max_json_depth":16}}}}"#
        );
        Engine::from_json(policy.as_bytes(), &Secrets { placeholder_key: Some(KEY.into()), ..Secrets::default() })
            .unwrap()
    }

    fn engine() -> Engine {
        engine_with(r#"{"EMAIL":{"action":"redact"},"CREDIT_CARD":{"action":"redact"}}"#, "enforce")
    }

    fn chat(path: &str) -> RequestMeta<'_> {
        RequestMeta { request_id: "req-42", path, content_type: Some("application/json"), ..Default::default() }
    }

    fn rewritten(d: &Decision) -> String {
        match &d.verdict {
            Verdict::Rewrite(body) => String::from_utf8(body.clone()).unwrap(),
            other => panic!("expected a rewrite, got {other:?}"),
        }
    }

    fn problem(d: &Decision) -> &Problem {
        match &d.verdict {
            Verdict::Block(p) => p,
            other => panic!("expected a block, got {other:?}"),
        }
    }

    #[test]
    fn redacts_every_text_part_of_a_chat_request_and_keeps_formatting() {
        let body = r#"{"model":"gpt-4o",
  "messages":[
    {"role":"system","content":"Support desk. Escalate to ops@corp.example."},
    {"content":[{"type":"text","text":"I am jane@example.com, card 4111 1111 1111 1111"}],"role":"user"},
    {"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"lookup","arguments":"{\"email\":\"jane@example.com\"}"}}]},
    {"role":"tool","tool_call_id":"c1","content":"found 5555-5555-5555-4444"}
  ],
  "user":"jane@example.com"}"#;
        let d = engine().evaluate_request(&chat("/v1/chat/completions"), body.as_bytes());
        let out = rewritten(&d);
        for raw in ["ops@corp.example", "jane@example.com", "4111 1111 1111 1111", "5555-5555-5555-4444"] {
            assert!(!out.contains(raw), "{raw} survived: {out}");
        }
        let v: Value = serde_json::from_str(&out).expect("still JSON");
        assert_eq!(v["model"], "gpt-4o");
        // Same value, same placeholder, across parts and even inside tool arguments.
        let user_text = v["messages"][1]["content"][0]["text"].as_str().unwrap();
        let email_ph = &user_text[5..user_text.find(',').unwrap()];
        assert!(email_ph.starts_with("[EMAIL_") && email_ph.len() == "[EMAIL_123456]".len(), "{email_ph}");
        assert_eq!(v["user"], email_ph);
        assert!(v["messages"][2]["tool_calls"][0]["function"]["arguments"].as_str().unwrap().contains(email_ph));
        // Untouched bytes keep the client's layout.
        assert!(out.starts_with("{\"model\":\"gpt-4o\",\n  \"messages\":[\n"));
        let roles: Vec<_> = d.findings.iter().map(|f| (f.class, f.role)).collect();
        assert_eq!(
            roles,
            [
                (EntityClass::Email, Role::System),
                (EntityClass::Email, Role::User),
                (EntityClass::CreditCard, Role::User),
                (EntityClass::Email, Role::Assistant),
                (EntityClass::CreditCard, Role::Tool),
                (EntityClass::Email, Role::Other),
            ]
        );
        for f in &d.findings {
            let original = &body[f.start..f.end];
            assert!(original.contains('@') || original.chars().filter(char::is_ascii_digit).count() == 16);
        }
    }

    /// Repeated values, before and after the memo takes over, get the
    /// placeholder the key makes afresh.
    #[test]
    fn repeated_values_get_the_placeholder_the_key_makes() {
        let meta = RequestMeta { content_type: Some("text/plain"), ..chat("/upload") };
        let one = "a@b.co, A@B.CO, 4111 1111 1111 1111 and c@d.co; 4111-1111-1111-1111";
        let body = [one; 2 * MEMO_FROM].join("\n");
        let out = rewritten(&engine().evaluate_request(&meta, body.as_bytes()));
        let key = engine().placeholder_key.clone().unwrap();
        let email = key.placeholder(EntityClass::Email, "a@b.co");
        let other = key.placeholder(EntityClass::Email, "c@d.co");
        let card = key.placeholder(EntityClass::CreditCard, "4111111111111111");
        let want = format!("{email}, {email}, {card} and {other}; {card}");
        assert_eq!(out, [want.as_str(); 2 * MEMO_FROM].join("\n"));
    }

    #[test]
    fn escaped_strings_are_decoded_scanned_and_spliced_exactly() {
        // "jane@example.com" with the '@' and an 'e' written as escapes.
        let body = r#"{"messages":[{"role":"user","content":"line1\nmail: jan\u0065\u0040example.com\tend"}]}"#;
        let d = engine().evaluate_request(&chat("/v1/chat/completions"), body.as_bytes());
        let out = rewritten(&d);
        let v: Value = serde_json::from_str(&out).unwrap();
        let content = v["messages"][0]["content"].as_str().unwrap();
        assert!(content.starts_with("line1\nmail: [EMAIL_") && content.ends_with("]\tend"), "{content}");
        assert_eq!(&body[d.findings[0].start..d.findings[0].end], r"jan\u0065\u0040example.com");
    }

    #[test]
    fn clean_bodies_are_allowed_without_a_rewrite() {
        let body = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"order 41111 shipped, v1.2.3"}]}"#;
        let d = engine().evaluate_request(&chat("/v1/chat/completions"), body);
        assert_eq!(d.verdict, Verdict::Allow);
        assert!(d.findings.is_empty());
    }

    #[test]
    fn malformed_json_is_a_400_problem_with_the_request_id() {
        let d = engine().evaluate_request(&chat("/v1/chat/completions"), br#"{"messages":[{"role":"user","#);
        let p = problem(&d);
        assert_eq!((p.kind, p.status()), (ProblemKind::MalformedJson, 400));
        assert_eq!(p.request_id, "req-42");
        assert!(p.detail.contains("byte"), "{}", p.detail);
    }

    #[test]
    fn chat_paths_require_json_whatever_the_content_type() {
        let meta = RequestMeta { content_type: Some("text/plain"), ..chat("/v1/chat/completions") };
        assert_eq!(problem(&engine().evaluate_request(&meta, b"hello a@b.co")).kind, ProblemKind::MalformedJson);
    }

    #[test]
    fn unknown_json_paths_are_walked_generically() {
        let body = br#"{"a":{"b":["x","reach me: a@b.co"]},"n":4111111111111111}"#;
        let d = engine().evaluate_request(&chat("/v1/embeddings"), body);
        assert_eq!(d.codec, Codec::GenericJson);
        let out = rewritten(&d);
        assert!(!out.contains("a@b.co"));
        assert_eq!(d.findings[0].location, "a.b[1]");
        // Numbers are not text parts (documented limitation).
        assert!(out.contains("4111111111111111"));
    }

    #[test]
    fn plain_text_bodies_are_scanned_whole() {
        let meta = RequestMeta { content_type: Some("text/plain"), ..chat("/upload") };
        let out = rewritten(&engine().evaluate_request(&meta, b"to a@b.co: 4111-1111-1111-1111"));
        assert!(out.starts_with("to [EMAIL_") && out.contains(": [CREDIT_CARD_"), "{out}");
    }

    #[test]
    fn limits_encoding_and_utf8_fail_closed() {
        let e = engine();
        let big = vec![b' '; 4097];
        assert_eq!(problem(&e.evaluate_request(&chat("/v1/chat/completions"), &big)).status(), 413);
        let gz = RequestMeta { content_encoding: Some("gzip"), ..chat("/v1/chat/completions") };
        assert_eq!(problem(&e.evaluate_request(&gz, b"{}")).status(), 415);
        let identity = RequestMeta { content_encoding: Some("identity"), ..chat("/v1/chat/completions") };
        assert_eq!(e.evaluate_request(&identity, b"{}").verdict, Verdict::Allow);
        let p = e.evaluate_request(&chat("/v1/chat/completions"), b"{\"a\":\"\xff\"}");
        assert_eq!(problem(&p).kind, ProblemKind::InvalidUtf8);
        let deep = format!("{}{}", "[".repeat(17), "]".repeat(17));
        assert_eq!(problem(&e.evaluate_request(&chat("/v1/x"), deep.as_bytes())).kind, ProblemKind::MalformedJson);
    }

    #[test]
    fn block_and_flag_actions() {
        let e = engine_with(r#"{"EMAIL":{"action":"flag"},"CREDIT_CARD":{"action":"block"}}"#, "enforce");
        let flagged = e.evaluate_request(&chat("/v1/chat/completions"), br#"{"messages":[{"content":"a@b.co"}]}"#);
        assert_eq!(flagged.verdict, Verdict::Allow);
        assert_eq!(flagged.findings[0].action, ClassAction::Flag);
        let body = br#"{"messages":[{"content":"4111111111111111"}]}"#;
        let d = e.evaluate_request(&chat("/v1/chat/completions"), body);
        let p = problem(&d);
        assert_eq!(p.status(), 403);
        assert!(p.detail.contains("CREDIT_CARD") && !p.detail.contains("4111"));
    }

    #[test]
    fn monitor_mode_reports_but_changes_nothing() {
        let e = engine_with(r#"{"EMAIL":{"action":"redact"},"CREDIT_CARD":{"action":"block"}}"#, "monitor");
        let body = br#"{"messages":[{"content":"a@b.co 4111111111111111"}]}"#;
        let d = e.evaluate_request(&chat("/v1/chat/completions"), body);
        assert_eq!(d.verdict, Verdict::Allow);
        assert_eq!(d.findings.len(), 2);
        assert!(d.findings.iter().all(|f| !f.enforced));
    }

    #[test]
    fn min_confidence_drops_weak_findings() {
        let e = engine_with(r#"{"CREDIT_CARD":{"action":"redact","min_confidence":0.95}}"#, "enforce");
        let body = br#"{"messages":[{"content":"ref 4111111111111111, visa 5555555555554444"}]}"#;
        let d = e.evaluate_request(&chat("/v1/chat/completions"), body);
        assert_eq!(d.findings.len(), 1);
        assert!(rewritten(&d).contains("ref 4111111111111111"));
    }

    #[test]
    fn counts_by_class() {
        let body = br#"{"messages":[{"content":"a@b.co c@d.co 4111111111111111"}]}"#;
        let d = engine().evaluate_request(&chat("/v1/chat/completions"), body);
        assert_eq!(d.counts_by_class(), [(EntityClass::Email, 2), (EntityClass::CreditCard, 1)]);
    }

    /// The body sent upstream (the original when allowed) and the flag.
    fn usage_injection(e: &Engine, path: &str, body: &str) -> (String, bool) {
        let d = e.evaluate_request(&chat(path), body.as_bytes());
        let out = match &d.verdict {
            Verdict::Allow => body.to_owned(),
            Verdict::Rewrite(b) => String::from_utf8(b.clone()).unwrap(),
            Verdict::Block(p) => panic!("unexpected block {p:?}"),
        };
        serde_json::from_str::<Value>(&out).unwrap_or_else(|err| panic!("{err}: {out}"));
        (out, d.injected_usage)
    }

    #[test]
    fn streaming_chat_requests_get_include_usage_spliced_in() {
        let e = engine();
        let path = "/v1/chat/completions";
        let cases: &[(&str, &str)] = &[
            // No stream_options: a member before the top-level `}`.
            (
                r#"{"model":"m","stream":true,"messages":[]}"#,
                r#"{"model":"m","stream":true,"messages":[],"stream_options":{"include_usage":true}}"#,
            ),
            // Whitespace before the `}` is kept as it was.
            (
                "{\"stream\" : true,\n \"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]\n}",
                "{\"stream\" : true,\n \"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]\n,\"stream_options\":{\"include_usage\":true}}",
            ),
            // An empty stream_options, and one with other members.
            (r#"{"stream_options":{},"stream":true}"#, r#"{"stream_options":{"include_usage":true},"stream":true}"#),
            (
                r#"{"stream":true,"stream_options":{"x":1 },"n":1}"#,
                r#"{"stream":true,"stream_options":{"x":1 ,"include_usage":true},"n":1}"#,
            ),
            (r#"{"stream":true,"stream_options":null}"#, r#"{"stream":true,"stream_options":{"include_usage":true}}"#),
            // Explicit false (or null) is overridden; the stream strips the chunk.
            (
                r#"{"stream":true,"stream_options":{"include_usage":false}}"#,
                r#"{"stream":true,"stream_options":{"include_usage":true}}"#,
            ),
            (
                r#"{"stream":true,"stream_options":{"include_usage":null,"y":2}}"#,
                r#"{"stream":true,"stream_options":{"include_usage":true,"y":2}}"#,
            ),
            // Escaped keys are the same keys.
            (
                r#"{"str\u0065am":true,"stream_options":{"include_\u0075sage":false}}"#,
                r#"{"str\u0065am":true,"stream_options":{"include_\u0075sage":true}}"#,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(usage_injection(&e, path, body), ((*want).to_owned(), true), "{body}");
        }
        // Azure deployments and query strings are Chat Completions too.
        let azure = "/openai/deployments/d/chat/completions?api-version=2024-06-01";
        assert!(usage_injection(&e, azure, r#"{"stream":true}"#).1);
    }

    #[test]
    fn include_usage_the_client_asked_for_and_other_requests_are_untouched() {
        let e = engine();
        let untouched: &[(&str, &str)] = &[
            ("/v1/chat/completions", r#"{"stream":true,"stream_options":{"include_usage":true},"messages":[]}"#),
            ("/v1/chat/completions", r#"{"stream":false,"messages":[]}"#),
            ("/v1/chat/completions", r#"{"messages":[]}"#),
            ("/v1/chat/completions", r#"{"stream":"true","messages":[]}"#),
            ("/v1/chat/completions", r#"{"stream":1}"#),
            // Nested `stream` members are not the request's.
            ("/v1/chat/completions", r#"{"metadata":{"stream":true}}"#),
            // Invalid stream_options: left for the provider to refuse.
            ("/v1/chat/completions", r#"{"stream":true,"stream_options":"x"}"#),
            ("/v1/chat/completions", r#"{"stream":true,"stream_options":false}"#),
            ("/v1/chat/completions", r#"{"stream":true,"stream_options":{"include_usage":"no"}}"#),
            ("/v1/chat/completions", r#"{"stream":true,"stream_options":{"include_usage":{"a":1}}}"#),
            // Other APIs stream usage on their own terms.
            ("/v1/responses", r#"{"stream":true,"input":"hi"}"#),
            ("/v1/messages", r#"{"stream":true,"messages":[]}"#),
            ("/v1/embeddings", r#"{"stream":true,"input":"hi"}"#),
        ];
        for (path, body) in untouched {
            assert_eq!(usage_injection(&e, path, body), ((*body).to_owned(), false), "{path} {body}");
        }
    }

    #[test]
    fn usage_injection_composes_with_redaction_and_monitor_mode() {
        let body = r#"{"stream":true,"messages":[{"role":"user","content":"mail a@b.co"}]}"#;
        let d = engine().evaluate_request(&chat("/v1/chat/completions"), body.as_bytes());
        let out = rewritten(&d);
        assert!(d.injected_usage);
        assert!(out.starts_with(r#"{"stream":true,"messages":[{"role":"user","content":"mail [EMAIL_"#), "{out}");
        assert!(out.ends_with(r#""}],"stream_options":{"include_usage":true}}"#), "{out}");
        // Reversible values are kept for the response only when redacted.
        let e = engine_with(r#"{"EMAIL":{"action":"reversible"}}"#, "enforce");
        assert_eq!(e.evaluate_request(&chat("/v1/chat/completions"), body.as_bytes()).restore.len(), 1);
        // Monitor mode rewrites nothing at all: no redaction, no usage
        // injection, no restore map.
        let e = engine_with(r#"{"EMAIL":{"action":"reversible"}}"#, "monitor");
        let d = e.evaluate_request(&chat("/v1/chat/completions"), body.as_bytes());
        assert_eq!(d.verdict, Verdict::Allow);
        assert!(!d.injected_usage);
        assert!(d.restore.is_empty());
        // A block sends nothing upstream and injects nothing.
        let e = engine_with(r#"{"EMAIL":{"action":"block"}}"#, "enforce");
        let d = e.evaluate_request(&chat("/v1/chat/completions"), body.as_bytes());
        assert!(matches!(d.verdict, Verdict::Block(_)) && !d.injected_usage);
    }

    #[test]
    fn numbers_where_text_goes_are_scanned_and_redacted_into_strings() {
        let e = engine();
        let body = r#"{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":4111111111111111},{"role":"user","content":123456789}]}"#;
        let d = e.evaluate_request(&chat("/v1/chat/completions"), body.as_bytes());
        let Verdict::Rewrite(out) = &d.verdict else { panic!("{:?}", d.verdict) };
        let out = String::from_utf8(out.clone()).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        let content = v["messages"][0]["content"].as_str().expect("the number became a string");
        assert!(content.starts_with("[CREDIT_CARD_") && !out.contains("4111111111111111"), "{out}");
        // Numbers that hold nothing stay numbers, where they are.
        assert_eq!(v["messages"][1]["content"], 123456789);
        assert_eq!(v["max_tokens"], 4096);
        assert_eq!(d.findings.len(), 1);
        assert_eq!(d.findings[0].location, "messages[0].content");
        // Outside the scanned paths a number is left alone.
        let body = r#"{"model":"m","seed":4111111111111111,"messages":[{"role":"user","content":"hi"}]}"#;
        let d = e.evaluate_request(&chat("/v1/chat/completions"), body.as_bytes());
        assert!(matches!(d.verdict, Verdict::Allow) && d.findings.is_empty(), "{:?}", d.verdict);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn fragment() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-z ]{0,12}",
                "[a-z]{1,8}@[a-z]{1,8}\\.(com|org|io)",
                Just("4111 1111 1111 1111".to_string()),
                Just("5555-5555-5555-4444".to_string()),
                Just("\\n\\\"\\u00e9".to_string()),
                "[0-9 -]{0,20}",
            ]
        }

        proptest! {
            #[test]
            fn redacted_bodies_hold_no_detected_value_and_stay_valid_json(
                parts in proptest::collection::vec(proptest::collection::vec(fragment(), 0..6), 1..5)
            ) {
                let messages: Vec<String> = parts
                    .iter()
                    .map(|p| format!(r#"{{"role":"user","content":"{}"}}"#, p.concat()))
                    .collect();
                let body = format!(r#"{{"model":"m","messages":[{}]}}"#, messages.join(","));
                let e = engine();
                let d = e.evaluate_request(&chat("/v1/chat/completions"), body.as_bytes());
                let out = match &d.verdict {
                    Verdict::Allow => body.clone(),
                    Verdict::Rewrite(b) => String::from_utf8(b.clone()).unwrap(),
                    Verdict::Block(p) => panic!("unexpected block {p:?}"),
                };
                let v: Value = serde_json::from_str(&out).unwrap();
                // Re-scanning the output finds nothing: every value was replaced.
                let again = e.evaluate_request(&chat("/v1/chat/completions"), out.as_bytes());
                prop_assert!(again.findings.is_empty(), "{:?} in {}", again.findings, out);
                prop_assert_eq!(v["messages"].as_array().unwrap().len(), parts.len());
            }
        }
    }
}
