//! The response pipeline: restore this request's reversible placeholders,
//! then run response-direction detection over the model's output — in a
//! buffered JSON body ([`Engine::evaluate_response`]) or in a stream,
//! incrementally ([`ResponseStream`]).
//!
//! Which parts are model output is the provider's API (chosen from the
//! *request* path, [`Api`]) and its framing (from the response
//! `content-type`, [`Framing`]):
//!
//! | API | JSON | stream |
//! |---|---|---|
//! | OpenAI Chat Completions | `choices[].message.content`, `.refusal`, `tool_calls[].function.arguments` | SSE chunks, `delta.content` / `delta.tool_calls[].function.arguments`, `[DONE]` |
//! | OpenAI Responses | `output[].content[].text`, `output[].arguments` | SSE `response.output_text.delta`, `response.function_call_arguments.delta`, `*.done`, `response.completed` |
//! | Anthropic Messages | `content[].text`, `content[].input` | SSE `content_block_delta` (`text_delta`, `input_json_delta`) |
//! | Gemini | `candidates[].content.parts[].text`, `functionCall.args` | SSE (`alt=sse`) or a JSON array delivered piecemeal |
//! | Bedrock Converse | `output.message.content[].text`, `toolUse.input` | `application/vnd.amazon.eventstream` frames, re-encoded with fresh CRCs |
//! | anything else | every string leaf | SSE: every string leaf of each JSON event |
//!
//! In a stream every text channel (one choice's content, one tool call's
//! arguments, one content block) has a hold-back window
//! ([`crate::stream::holdback`]): text goes out as soon as no entity or
//! placeholder can straddle the boundary, in the provider's own event shape
//! (the event that carried the delta, with the released text spliced in;
//! text still held when a channel ends goes out in one synthesized delta
//! event of the same shape just before the event that ends it). Unchanged
//! events are forwarded byte for byte. Output depends only on the events,
//! never on how the transport cut the bytes.
//!
//! Tool-call arguments are JSON text inside a JSON string: a restored value
//! is escaped for the inner JSON string, then the whole for the outer one.
//!
//! Blocking mid-stream (a class whose action is `block` appears in the
//! output) drops the event that carried it, emits an error event in the
//! provider's format and swallows the rest, so the success terminator
//! (`[DONE]`, `message_stop`, `]`, `messageStop`) never comes.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::detect::{EntityClass, Finding};
use crate::json::{self, PathSeg, StringLeaf, Visitor};
use crate::policy::{ClassAction, ClassRule, Direction, Engine, Mode};
use crate::problem::{Problem, ProblemKind};
use crate::restore::{json_escape, json_escape_into, RestoreMap};
use crate::stream::eventstream::{EventStreamDecoder, Message};
use crate::stream::holdback;
use crate::stream::json_array::{JsonArrayParser, Piece};
use crate::stream::sse::{self, SseEvent, SseParser};

/// The provider API a response belongs to, from the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    OpenAiChat,
    OpenAiResponses,
    Anthropic,
    Gemini,
    Bedrock,
    Unknown,
}

impl Api {
    pub fn for_request_path(path: &str) -> Api {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        if path.ends_with("/chat/completions") {
            Api::OpenAiChat
        } else if path.ends_with("/responses") {
            Api::OpenAiResponses
        } else if path.ends_with("/messages") {
            Api::Anthropic
        } else if path.contains(":generateContent") || path.contains(":streamGenerateContent") {
            Api::Gemini
        } else if path.ends_with("/converse") || path.ends_with("/converse-stream") {
            Api::Bedrock
        } else {
            Api::Unknown
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Api::OpenAiChat => "openai.chat_completions",
            Api::OpenAiResponses => "openai.responses",
            Api::Anthropic => "anthropic.messages",
            Api::Gemini => "gemini.generate_content",
            Api::Bedrock => "bedrock.converse",
            Api::Unknown => "unknown",
        }
    }
}

/// How a response body is framed, from its `content-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One JSON document: buffered to the end, then evaluated.
    Json,
    /// `text/event-stream`.
    Sse,
    /// Gemini `:streamGenerateContent` without `alt=sse`.
    JsonArray,
    /// `application/vnd.amazon.eventstream`.
    EventStream,
    /// Anything else: buffered and treated as text.
    Text,
}

impl Framing {
    pub fn of(api: Api, request_path: &str, content_type: Option<&str>) -> Framing {
        let media = content_type.unwrap_or_default().split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let query = request_path.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let alt_sse = query.split('&').any(|kv| kv.eq_ignore_ascii_case("alt=sse"));
        if media == "text/event-stream" {
            Framing::Sse
        } else if media == "application/vnd.amazon.eventstream" {
            Framing::EventStream
        } else if media == "application/json" || media.ends_with("+json") {
            if api == Api::Gemini && request_path.contains(":streamGenerateContent") && !alt_sse {
                Framing::JsonArray
            } else {
                Framing::Json
            }
        } else {
            Framing::Text
        }
    }

    /// Streams are rewritten chunk by chunk and never paused.
    pub fn is_stream(self) -> bool {
        matches!(self, Framing::Sse | Framing::JsonArray | Framing::EventStream)
    }
}

/// What the glue knows about a response.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseMeta<'a> {
    pub request_id: &'a str,
    /// The request's `:path` (it decides the API).
    pub request_path: &'a str,
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub status: u16,
}

impl ResponseMeta<'_> {
    pub fn api(&self) -> Api {
        Api::for_request_path(self.request_path)
    }

    pub fn framing(&self) -> Framing {
        Framing::of(self.api(), self.request_path, self.content_type)
    }

    fn instance(&self) -> &str {
        self.request_path.split('?').next().unwrap_or_default()
    }
}

/// Token usage as the provider reported it (for the audit event).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
}

impl Usage {
    fn merge(&mut self, input: Option<u64>, output: Option<u64>, total: Option<u64>) {
        self.input_tokens = input.or(self.input_tokens);
        self.output_tokens = output.or(self.output_tokens);
        self.total_tokens = total.or(self.total_tokens);
    }

    /// Reads a usage object in any provider's member names.
    fn read(&mut self, usage: &Value) {
        let n = |keys: &[&str]| keys.iter().find_map(|k| usage.get(*k).and_then(Value::as_u64));
        self.merge(
            n(&["prompt_tokens", "input_tokens", "inputTokens", "promptTokenCount"]),
            n(&["completion_tokens", "output_tokens", "outputTokens", "candidatesTokenCount"]),
            n(&["total_tokens", "totalTokens", "totalTokenCount"]),
        );
    }

    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }
}

/// One finding in model output (never the value).
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseFinding {
    pub class: EntityClass,
    pub rule: &'static str,
    pub confidence: f32,
    pub action: ClassAction,
    /// False in monitor mode.
    pub enforced: bool,
}

/// What happened to one response, for logs, metrics and the audit event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponseReport {
    pub findings: Vec<ResponseFinding>,
    /// Placeholders of this request expanded back into their values.
    pub restored: usize,
    pub usage: Usage,
    /// Set when the response was blocked or could not be inspected.
    pub problem: Option<Problem>,
}

impl ResponseReport {
    pub fn counts_by_class(&self) -> Vec<(EntityClass, usize)> {
        crate::request::count_classes(self.findings.iter().map(|f| f.class))
    }

    fn blocked_classes(&self) -> Vec<&'static str> {
        let mut classes: Vec<_> = self
            .findings
            .iter()
            .filter(|f| f.enforced && f.action == ClassAction::Block)
            .map(|f| f.class.name())
            .collect();
        classes.sort_unstable();
        classes.dedup();
        classes
    }
}

/// What to do with a buffered (JSON or text) response body.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseVerdict {
    Allow,
    Rewrite(Vec<u8>),
    /// Replace the body with this problem (headers have already gone).
    Block(Problem),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResponseDecision {
    pub verdict: ResponseVerdict,
    pub report: ResponseReport,
}

// ---------------------------------------------------------------------------
// Text: restore + detect over one piece of model output.

/// How a text is embedded, which decides how a restored value is escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextKind {
    /// Prose: the value goes in as is (the caller escapes the whole text).
    Prose,
    /// JSON text (tool-call arguments): the value goes inside a JSON string.
    JsonText,
}

/// The rule that applies to a class in model output.
///
/// The policy has one rule per class today; when per-direction modes land
/// this is the one place that picks the response-direction rule.
fn response_rule(engine: &Engine, class: EntityClass) -> Option<ClassRule> {
    engine.rule_for(class, Direction::Response)
}

fn response_classes(engine: &Engine) -> Vec<EntityClass> {
    engine.response_classes().collect()
}

/// Processes `pending`: returns how many bytes were consumed and the text
/// to release for them. With `at_end` everything is consumed.
fn process(
    engine: &Engine,
    restore: &RestoreMap,
    report: &mut ResponseReport,
    classes: &[EntityClass],
    pending: &str,
    at_end: bool,
    kind: TextKind,
) -> (usize, String) {
    let mut cut = if at_end { pending.len() } else { holdback::safe_cut(pending, classes, restore) };
    let found: Vec<Finding> =
        if classes.is_empty() { Vec::new() } else { engine.scan_text_for(pending, Direction::Response) };
    let placeholders = restore.find_in(pending);
    // Nothing that straddles the cut may go out in part.
    loop {
        let before = cut;
        for (start, end) in found.iter().map(|f| (f.start, f.end)).chain(placeholders.iter().map(|p| (p.start, p.end)))
        {
            if start < cut && end > cut {
                cut = start;
            }
        }
        if cut == before {
            break;
        }
    }
    let enforce = engine.mode == Mode::Enforce;
    let mut out = String::with_capacity(cut + 16);
    let mut pos = 0;
    let mut fi = found.iter().filter(|f| f.end <= cut).peekable();
    let mut pi = placeholders.iter().filter(|p| p.end <= cut).peekable();
    loop {
        let take_placeholder = match (fi.peek(), pi.peek()) {
            (None, None) => break,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some(f), Some(p)) => p.start <= f.start,
        };
        if take_placeholder {
            let Some(p) = pi.next() else { break };
            if p.start < pos {
                continue;
            }
            out.push_str(pending.get(pos..p.start).unwrap_or_default());
            match kind {
                TextKind::Prose => out.push_str(p.value),
                TextKind::JsonText => json_escape_into(&mut out, p.value),
            }
            report.restored += 1;
            pos = p.end;
            continue;
        }
        let Some(f) = fi.next() else { break };
        if f.start < pos {
            continue;
        }
        let Some(rule) = response_rule(engine, f.class) else { continue };
        report.findings.push(ResponseFinding {
            class: f.class,
            rule: f.rule,
            confidence: f.confidence,
            action: rule.action,
            enforced: enforce,
        });
        let replace = enforce && matches!(rule.action, ClassAction::Redact | ClassAction::Reversible);
        let value = pending.get(f.start..f.end).unwrap_or_default();
        if let (true, Some(key)) = (replace, &engine.placeholder_key) {
            out.push_str(pending.get(pos..f.start).unwrap_or_default());
            out.push_str(&key.placeholder(f.class, value));
            pos = f.end;
        }
    }
    out.push_str(pending.get(pos..cut).unwrap_or_default());
    (cut, out)
}

// ---------------------------------------------------------------------------
// JSON helpers.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

impl Seg {
    fn is(&self, name: &str) -> bool {
        matches!(self, Seg::Key(k) if k == name)
    }

    fn index(&self) -> Option<usize> {
        match self {
            Seg::Index(i) => Some(*i),
            Seg::Key(_) => None,
        }
    }
}

/// Every string leaf of `src` whose path `select` accepts.
fn leaves(
    src: &str,
    max_depth: usize,
    select: impl Fn(&[PathSeg<'_>]) -> bool,
) -> Result<Vec<(Vec<Seg>, StringLeaf)>, json::JsonError> {
    struct Collect<F> {
        select: F,
        out: Vec<(Vec<Seg>, StringLeaf)>,
    }
    impl<'a, F: Fn(&[PathSeg<'_>]) -> bool> Visitor<'a> for Collect<F> {
        fn string(&mut self, path: &[PathSeg<'a>], leaf: StringLeaf) {
            if (self.select)(path) {
                let owned = path
                    .iter()
                    .map(|s| match s {
                        PathSeg::Key(k) if k.contains('\\') => Seg::Key(json::unescape(k, None)),
                        PathSeg::Key(k) => Seg::Key((*k).to_owned()),
                        PathSeg::Index(i) => Seg::Index(*i),
                    })
                    .collect();
                self.out.push((owned, leaf));
            }
        }
    }
    let mut c = Collect { select, out: Vec::new() };
    json::walk(src, max_depth, &mut c)?;
    Ok(c.out)
}

fn decode(src: &str, leaf: StringLeaf) -> String {
    let raw = src.get(leaf.start..leaf.end).unwrap_or_default();
    if leaf.escaped {
        json::unescape(raw, None)
    } else {
        raw.to_owned()
    }
}

/// Applies ordered, non-overlapping `(start, end, replacement)` edits.
fn splice(src: &str, edits: &[(usize, usize, String)]) -> String {
    let mut out = String::with_capacity(src.len() + 64);
    let mut pos = 0;
    for (start, end, replacement) in edits {
        if *start < pos {
            continue;
        }
        out.push_str(src.get(pos..*start).unwrap_or_default());
        out.push_str(replacement);
        pos = *end;
    }
    out.push_str(src.get(pos..).unwrap_or_default());
    out
}

fn is_key(seg: Option<&PathSeg<'_>>, name: &str) -> bool {
    seg.is_some_and(|s| s.is_key(name))
}

/// Which string leaves of a complete (non-stream) response are model output.
fn json_output_kind(api: Api, path: &[PathSeg<'_>]) -> Option<TextKind> {
    let last = path.last()?;
    let has = |name: &str| path.iter().any(|s| s.is_key(name));
    match api {
        Api::OpenAiChat => {
            if !is_key(path.first(), "choices") || !is_key(path.get(2), "message") {
                return None;
            }
            if last.is_key("arguments") {
                Some(TextKind::JsonText)
            } else if path.len() == 4 && ["content", "refusal", "reasoning_content"].iter().any(|k| last.is_key(k)) {
                Some(TextKind::Prose)
            } else {
                // Content parts: choices[].message.content[].text
                (last.is_key("text") && has("content")).then_some(TextKind::Prose)
            }
        }
        Api::OpenAiResponses => {
            let in_output = is_key(path.first(), "output") || (is_key(path.first(), "response") && has("output"));
            if !in_output {
                return (path.len() == 1 && last.is_key("output_text")).then_some(TextKind::Prose);
            }
            if last.is_key("arguments") {
                Some(TextKind::JsonText)
            } else {
                last.is_key("text").then_some(TextKind::Prose)
            }
        }
        Api::Anthropic => {
            if !is_key(path.first(), "content") {
                return None;
            }
            if has("input") {
                Some(TextKind::Prose)
            } else {
                last.is_key("text").then_some(TextKind::Prose)
            }
        }
        Api::Gemini => {
            if !is_key(path.first(), "candidates") || !has("parts") {
                return None;
            }
            if has("args") || last.is_key("text") {
                Some(TextKind::Prose)
            } else {
                None
            }
        }
        Api::Bedrock => {
            if !is_key(path.first(), "output") || !has("content") {
                return None;
            }
            if has("input") || last.is_key("text") {
                Some(TextKind::Prose)
            } else {
                None
            }
        }
        Api::Unknown => Some(TextKind::Prose),
    }
}

impl Engine {
    /// Decides what happens to a complete (buffered) response body.
    pub fn evaluate_response(&self, meta: &ResponseMeta<'_>, body: &[u8], restore: &RestoreMap) -> ResponseDecision {
        let mut report = ResponseReport::default();
        let unreadable = |detail: String, report: ResponseReport| {
            let problem = Problem::new(ProblemKind::UpstreamUnreadable, detail, meta.instance(), meta.request_id);
            ResponseDecision {
                verdict: ResponseVerdict::Block(problem.clone()),
                report: ResponseReport { problem: Some(problem), ..report },
            }
        };
        if let Some(encoding) = meta.content_encoding.map(str::trim).filter(|e| !e.eq_ignore_ascii_case("identity")) {
            let detail = format!(
                "the provider sent a '{}'-encoded response although the request asked for identity; it cannot be inspected",
                encoding.chars().take(32).collect::<String>()
            );
            return unreadable(detail, report);
        }
        if body.len() > self.limits.max_body_bytes {
            let detail =
                format!("the response is {} bytes; the limit is {} bytes", body.len(), self.limits.max_body_bytes);
            return unreadable(detail, report);
        }
        let Ok(text) = crate::utf8::str_from(body) else {
            return unreadable("the response is not valid UTF-8".into(), report);
        };
        let classes = response_classes(self);
        let api = meta.api();
        let framing = Framing::of(api, meta.request_path, meta.content_type);
        let new_text = if framing == Framing::Json {
            let found = match leaves(text, self.limits.max_json_depth, |p| json_output_kind(api, p).is_some()) {
                Ok(found) => found,
                // Not JSON after all (an HTML error page...): scan it as text.
                Err(_) => return self.evaluate_text_response(meta, text, restore, report),
            };
            // Usage is for the audit event alone: a second parse of the
            // reply that nothing reads unless the profile audits.
            if self.audit.enabled {
                read_usage(api, text, &mut report.usage);
            }
            let mut edits = Vec::new();
            for (path, leaf) in &found {
                let kind =
                    if path.last().is_some_and(|s| s.is("arguments")) { TextKind::JsonText } else { TextKind::Prose };
                let decoded = decode(text, *leaf);
                let (_, out) = process(self, restore, &mut report, &classes, &decoded, true, kind);
                if out != decoded {
                    edits.push((leaf.start, leaf.end, json_escape(&out)));
                }
            }
            (!edits.is_empty()).then(|| splice(text, &edits))
        } else {
            return self.evaluate_text_response(meta, text, restore, report);
        };
        finish_buffered(self, meta, report, new_text)
    }

    fn evaluate_text_response(
        &self,
        meta: &ResponseMeta<'_>,
        text: &str,
        restore: &RestoreMap,
        mut report: ResponseReport,
    ) -> ResponseDecision {
        let classes = response_classes(self);
        let (_, out) = process(self, restore, &mut report, &classes, text, true, TextKind::Prose);
        let new_text = (out != text).then_some(out);
        finish_buffered(self, meta, report, new_text)
    }

    /// Starts processing a streamed response (see [`Framing::is_stream`]).
    pub fn response_stream(&self, meta: &ResponseMeta<'_>, restore: RestoreMap) -> ResponseStream {
        ResponseStream::new(self, meta, restore)
    }
}

fn finish_buffered(
    engine: &Engine,
    meta: &ResponseMeta<'_>,
    mut report: ResponseReport,
    new_text: Option<String>,
) -> ResponseDecision {
    let blocked = report.blocked_classes();
    if !blocked.is_empty() {
        let detail = format!("the model's output contains data of class {} which policy blocks", blocked.join(", "));
        let problem = Problem::new(ProblemKind::ResponseBlocked, detail, meta.instance(), meta.request_id);
        report.problem = Some(problem.clone());
        return ResponseDecision { verdict: ResponseVerdict::Block(problem), report };
    }
    let verdict = match new_text {
        Some(t) if engine.mode == Mode::Enforce => ResponseVerdict::Rewrite(t.into_bytes()),
        _ => ResponseVerdict::Allow,
    };
    ResponseDecision { verdict, report }
}

/// The members a buffered reply's token usage can sit in. Deserialising
/// only these skips the rest of the document without building it: a whole
/// `Value` of every reply cost more than finding its text.
#[derive(Deserialize)]
struct UsageMembers<'a> {
    usage: Option<Value>,
    #[serde(rename = "usageMetadata")]
    usage_metadata: Option<Value>,
    #[serde(borrow)]
    response: Option<&'a RawValue>,
    #[serde(borrow)]
    message: Option<&'a RawValue>,
}

/// `usage` one level down (`response.usage`, `message.usage`).
#[derive(Deserialize)]
struct NestedUsage {
    usage: Option<Value>,
}

fn read_usage(api: Api, text: &str, usage: &mut Usage) {
    let Ok(members) = serde_json::from_str::<UsageMembers<'_>>(text) else { return };
    let nested = |raw: Option<&RawValue>| {
        raw.and_then(|r| serde_json::from_str::<NestedUsage>(r.get()).ok()).and_then(|n| n.usage)
    };
    let u = match api {
        Api::Gemini => members.usage_metadata,
        Api::OpenAiResponses => members.usage.or_else(|| nested(members.response)),
        Api::Anthropic => members.usage.or_else(|| nested(members.message)),
        _ => members.usage,
    };
    if let Some(u) = u.filter(Value::is_object) {
        usage.read(&u);
    }
}

// ---------------------------------------------------------------------------
// Streams.

/// One text channel of a stream and its held-back text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum ChannelKey {
    /// OpenAI chat: a choice's content.
    ChoiceContent(u64),
    /// OpenAI chat: a choice's tool call's arguments.
    ChoiceTool(u64, u64),
    /// Anthropic / Bedrock: a content block.
    Block(u64),
    /// Gemini: a candidate's text.
    Candidate(u64),
    /// OpenAI Responses: output item, content part.
    OutputText(u64, u64),
    /// OpenAI Responses: a function call's arguments.
    OutputArgs(u64),
    /// Unknown APIs: no hold-back across events.
    None,
}

#[derive(Debug)]
struct Channel {
    key: ChannelKey,
    kind: TextKind,
    pending: String,
    /// Fields the synthesized flush event needs (Responses `item_id`).
    item_id: Option<String>,
}

#[derive(Debug)]
enum Parser {
    Sse(SseParser),
    JsonArray(JsonArrayParser),
    EventStream(EventStreamDecoder),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Live,
    /// Blocked or failed: the error event went out, the rest is dropped.
    Stopped,
}

/// A streamed response in flight. Feed it every chunk as it arrives;
/// forward what it returns (possibly nothing) in place of the chunk.
#[derive(Debug)]
pub struct ResponseStream {
    api: Api,
    parser: Parser,
    restore: RestoreMap,
    classes: Vec<EntityClass>,
    channels: Vec<Channel>,
    report: ResponseReport,
    state: State,
    request_id: String,
    instance: String,
    /// OpenAI chat: `id`, `object`, `created`, `model`, `system_fingerprint`
    /// of the last chunk, for synthesized chunks.
    envelope: Vec<(String, Value)>,
    /// Gemini JSON array: elements forwarded so far.
    elements: usize,
    /// Gemini JSON array: an element is being processed.
    in_element: bool,
    max_depth: usize,
    /// OpenAI chat: the request was given `stream_options.include_usage`
    /// by meshward, so the usage-only chunk is read and then dropped.
    strip_usage: bool,
    /// The event just dropped ended in a CR whose LF may arrive alone (the
    /// SSE parser hands it out as a data-less event): drop that LF too.
    dropped_cr: bool,
    /// Text held back, summed over the channels (`limits.max_hold_back_bytes`);
    /// kept as a running total because a stream may open any number of them.
    held: usize,
}

impl ResponseStream {
    fn new(engine: &Engine, meta: &ResponseMeta<'_>, restore: RestoreMap) -> ResponseStream {
        let max = engine.limits.max_stream_event_bytes;
        let parser = match meta.framing() {
            Framing::JsonArray => Parser::JsonArray(JsonArrayParser::new(max)),
            Framing::EventStream => Parser::EventStream(EventStreamDecoder::new(max)),
            _ => Parser::Sse(SseParser::new(max)),
        };
        ResponseStream {
            api: meta.api(),
            parser,
            restore,
            classes: response_classes(engine),
            channels: Vec::new(),
            report: ResponseReport::default(),
            state: State::Live,
            request_id: meta.request_id.to_owned(),
            instance: meta.instance().to_owned(),
            envelope: Vec::new(),
            elements: 0,
            in_element: false,
            max_depth: engine.limits.max_json_depth,
            strip_usage: false,
            dropped_cr: false,
            held: 0,
        }
    }

    /// Tells the stream that meshward injected `stream_options.include_usage`
    /// into the request ([`crate::Decision::injected_usage`]): the final
    /// usage-only chunk (`choices` empty, `usage` set) of an OpenAI Chat
    /// Completions stream is then read for the report and not forwarded, so
    /// the client sees the stream it asked for.
    pub fn with_injected_usage(mut self, injected: bool) -> ResponseStream {
        self.strip_usage = injected && self.api == Api::OpenAiChat;
        self
    }

    /// Everything seen so far: findings, restored placeholders, usage, and
    /// the problem if the stream was stopped.
    pub fn report(&self) -> &ResponseReport {
        &self.report
    }

    /// The problem that stopped the stream, if any.
    pub fn problem(&self) -> Option<&Problem> {
        self.report.problem.as_ref()
    }

    pub fn is_stopped(&self) -> bool {
        self.state == State::Stopped
    }

    /// Takes one received chunk; returns the bytes to send on instead.
    pub fn push(&mut self, engine: &Engine, chunk: &[u8]) -> Vec<u8> {
        if self.state == State::Stopped {
            return Vec::new();
        }
        match &mut self.parser {
            Parser::Sse(p) => p.push(chunk),
            Parser::JsonArray(p) => p.push(chunk),
            Parser::EventStream(p) => p.push(chunk),
        }
        let mut out = Vec::with_capacity(chunk.len() + 64);
        self.drain(engine, &mut out, false);
        out
    }

    /// At the end of the stream: the tail, and any text still held.
    pub fn finish(&mut self, engine: &Engine) -> Vec<u8> {
        let mut out = Vec::new();
        if self.state == State::Stopped {
            return out;
        }
        self.drain(engine, &mut out, true);
        if self.state == State::Live {
            // The stream ended without a terminator we flush on: held text
            // goes last (unless it holds a blocked value).
            let flush = self.flush_all(engine);
            if !self.stop_if_blocked(&mut out) {
                out.extend(flush);
            }
        }
        out
    }

    fn drain(&mut self, engine: &Engine, out: &mut Vec<u8>, at_end: bool) {
        loop {
            if self.state == State::Stopped {
                return;
            }
            let step = match &mut self.parser {
                Parser::Sse(p) => match p.next_event() {
                    Ok(Some(e)) => Step::Sse(e),
                    Ok(None) if at_end => match p.finish() {
                        Ok(Some(e)) => Step::Sse(e),
                        Ok(None) => return,
                        Err(e) => Step::Error(e.to_string()),
                    },
                    Ok(None) => return,
                    Err(e) => Step::Error(e.to_string()),
                },
                Parser::JsonArray(p) => match p.next_piece() {
                    Ok(Some(piece)) => Step::Piece(piece),
                    Ok(None) if at_end => match p.finish() {
                        Ok(Some(rest)) => Step::Error(format!(
                            "the streamed JSON array ended inside an element ({} bytes)",
                            rest.len()
                        )),
                        Ok(None) => return,
                        Err(e) => Step::Error(e.to_string()),
                    },
                    Ok(None) => return,
                    Err(e) => Step::Error(e.to_string()),
                },
                Parser::EventStream(p) => match p.next_frame() {
                    Ok(Some(f)) => Step::Frame(f.raw, f.message),
                    Ok(None) if at_end && p.buffered() > 0 => {
                        Step::Error(format!("the event stream ended inside a frame ({} bytes)", p.buffered()))
                    }
                    Ok(None) => return,
                    Err(e) => Step::Error(e.to_string()),
                },
            };
            let result = match step {
                Step::Sse(e) => self.sse_event(engine, e),
                Step::Piece(p) => self.array_piece(engine, p),
                Step::Frame(raw, m) => self.frame(engine, raw, m),
                Step::Error(detail) => Err(detail),
            };
            match result {
                // Over the bound, the stream ends (fail closed) rather than
                // holding more or releasing text unchecked.
                Ok(_) if self.held > engine.limits.max_hold_back_bytes => {
                    let detail = format!(
                        "the stream holds back more than limits.max_hold_back_bytes ({} bytes) of unreleased text",
                        engine.limits.max_hold_back_bytes
                    );
                    self.fail(out, ProblemKind::LimitExceeded, detail);
                }
                Ok(bytes) => {
                    if !self.stop_if_blocked(out) {
                        out.extend(bytes);
                    }
                }
                Err(detail) => self.fail(out, ProblemKind::UpstreamUnreadable, detail),
            }
        }
    }

    /// If a finding blocked the stream: append the error event and stop.
    fn stop_if_blocked(&mut self, out: &mut Vec<u8>) -> bool {
        let blocked = self.report.blocked_classes();
        if blocked.is_empty() {
            return false;
        }
        let detail = format!("the model's output contains data of class {} which policy blocks", blocked.join(", "));
        self.fail(out, ProblemKind::ResponseBlocked, detail);
        true
    }

    fn fail(&mut self, out: &mut Vec<u8>, kind: ProblemKind, detail: String) {
        let problem = Problem::new(kind, detail, &self.instance, &self.request_id);
        out.extend(self.error_event(&problem));
        self.report.problem = Some(problem);
        self.state = State::Stopped;
    }

    /// The provider's own mid-stream error shape.
    fn error_event(&self, problem: &Problem) -> Vec<u8> {
        let message = format!("meshward: {} (request id {})", problem.detail, problem.request_id);
        let code = problem.kind.slug();
        let error_type = if problem.status() == 403 { "permission_error" } else { "api_error" };
        match (&self.parser, self.api) {
            (Parser::EventStream(_), _) => {
                let payload = serde_json::json!({ "message": message }).to_string();
                let kind = if problem.status() == 403 { "validationException" } else { "modelStreamErrorException" };
                Message::exception(kind, payload.into_bytes()).encode()
            }
            (Parser::JsonArray(_), _) => {
                let status = if problem.status() == 403 { "PERMISSION_DENIED" } else { "INTERNAL" };
                let element =
                    serde_json::json!({ "error": { "code": problem.status(), "message": message, "status": status } });
                let sep = if self.elements > 0 { ",\n" } else { "" };
                format!("{sep}{element}").into_bytes()
            }
            (Parser::Sse(_), Api::Anthropic) => {
                let data = serde_json::json!({ "type": "error", "error": { "type": error_type, "message": message } });
                sse::named_event("error", &data.to_string())
            }
            (Parser::Sse(_), Api::OpenAiResponses) => {
                let data = serde_json::json!({ "type": "error", "code": code, "message": message, "param": null });
                sse::named_event("error", &data.to_string())
            }
            (Parser::Sse(_), Api::Gemini) => {
                let status = if problem.status() == 403 { "PERMISSION_DENIED" } else { "INTERNAL" };
                let data =
                    serde_json::json!({ "error": { "code": problem.status(), "message": message, "status": status } });
                sse::data_event(&data.to_string())
            }
            (Parser::Sse(_), _) => {
                let data = serde_json::json!({ "error": { "message": message, "type": error_type, "code": code } });
                sse::data_event(&data.to_string())
            }
        }
    }

    // -- channels -----------------------------------------------------------

    fn channel_index(&mut self, key: &ChannelKey, kind: TextKind) -> usize {
        if let Some(i) = self.channels.iter().position(|c| &c.key == key) {
            return i;
        }
        self.channels.push(Channel { key: key.clone(), kind, pending: String::new(), item_id: None });
        self.channels.len() - 1
    }

    /// Appends a delta to a channel; returns the text to release now.
    fn feed(&mut self, engine: &Engine, key: ChannelKey, kind: TextKind, delta: &str, at_end: bool) -> String {
        if key == ChannelKey::None {
            let (_, out) = process(engine, &self.restore, &mut self.report, &self.classes, delta, true, kind);
            return out;
        }
        let i = self.channel_index(&key, kind);
        let Some(ch) = self.channels.get_mut(i) else { return delta.to_owned() };
        let before = ch.pending.len();
        ch.pending.push_str(delta);
        let (used, out) = process(engine, &self.restore, &mut self.report, &self.classes, &ch.pending, at_end, kind);
        ch.pending.drain(..used.min(ch.pending.len()));
        self.held = self.held.saturating_sub(before).saturating_add(ch.pending.len());
        out
    }

    /// Releases everything a channel holds (the channel ends).
    fn flush(&mut self, engine: &Engine, key: &ChannelKey) -> Option<(TextKind, String, Option<String>)> {
        let i = self.channels.iter().position(|c| &c.key == key)?;
        let ch = self.channels.get_mut(i)?;
        if ch.pending.is_empty() {
            return None;
        }
        let pending = std::mem::take(&mut ch.pending);
        self.held = self.held.saturating_sub(pending.len());
        let (kind, item_id) = (ch.kind, ch.item_id.clone());
        let (_, out) = process(engine, &self.restore, &mut self.report, &self.classes, &pending, true, kind);
        Some((kind, out, item_id))
    }

    /// Every channel with held text, flushed in synthesized events.
    fn flush_all(&mut self, engine: &Engine) -> Vec<u8> {
        let keys: Vec<ChannelKey> =
            self.channels.iter().filter(|c| !c.pending.is_empty()).map(|c| c.key.clone()).collect();
        let mut out = Vec::new();
        for key in keys {
            if let Some((kind, text, item_id)) = self.flush(engine, &key) {
                out.extend(self.synthesize(&key, kind, &text, item_id.as_deref()));
            }
        }
        out
    }

    /// A delta event in the provider's shape carrying `text` for `key`.
    fn synthesize(&mut self, key: &ChannelKey, kind: TextKind, text: &str, item_id: Option<&str>) -> Vec<u8> {
        if text.is_empty() {
            return Vec::new();
        }
        let t = json_escape(text);
        match (self.api, key) {
            (Api::OpenAiChat, ChannelKey::ChoiceContent(i) | ChannelKey::ChoiceTool(i, _)) => {
                let mut s = String::from("{");
                for (k, v) in &self.envelope {
                    s.push_str(&format!("\"{}\":{},", json_escape(k), v));
                }
                let delta = match key {
                    ChannelKey::ChoiceTool(_, tool) => {
                        format!("{{\"tool_calls\":[{{\"index\":{tool},\"function\":{{\"arguments\":\"{t}\"}}}}]}}")
                    }
                    _ => format!("{{\"content\":\"{t}\"}}"),
                };
                s.push_str(&format!("\"choices\":[{{\"index\":{i},\"delta\":{delta},\"finish_reason\":null}}]}}"));
                sse::data_event(&s)
            }
            (Api::Anthropic, ChannelKey::Block(i)) => {
                let delta = match kind {
                    TextKind::JsonText => format!("{{\"type\":\"input_json_delta\",\"partial_json\":\"{t}\"}}"),
                    TextKind::Prose => format!("{{\"type\":\"text_delta\",\"text\":\"{t}\"}}"),
                };
                let data = format!("{{\"type\":\"content_block_delta\",\"index\":{i},\"delta\":{delta}}}");
                sse::named_event("content_block_delta", &data)
            }
            (Api::Bedrock, ChannelKey::Block(i)) => {
                let delta = match kind {
                    TextKind::JsonText => format!("{{\"toolUse\":{{\"input\":\"{t}\"}}}}"),
                    TextKind::Prose => format!("{{\"text\":\"{t}\"}}"),
                };
                let payload = format!("{{\"contentBlockIndex\":{i},\"delta\":{delta}}}");
                Message::event("contentBlockDelta", payload.into_bytes()).encode()
            }
            (Api::Gemini, ChannelKey::Candidate(i)) => {
                let element =
                    format!("{{\"candidates\":[{{\"content\":{{\"parts\":[{{\"text\":\"{t}\"}}],\"role\":\"model\"}},\"index\":{i}}}]}}");
                match self.parser {
                    // Before the element being processed (its separator has
                    // gone out already), or before the closing bracket.
                    Parser::JsonArray(_) if self.in_element => {
                        self.elements += 1;
                        format!("{element},\n").into_bytes()
                    }
                    Parser::JsonArray(_) => {
                        let sep = if self.elements > 0 { ",\n" } else { "" };
                        self.elements += 1;
                        format!("{sep}{element}").into_bytes()
                    }
                    _ => sse::data_event(&element),
                }
            }
            (Api::OpenAiResponses, ChannelKey::OutputText(o, c)) => {
                let item = json_escape(item_id.unwrap_or_default());
                let data = format!(
                    "{{\"type\":\"response.output_text.delta\",\"item_id\":\"{item}\",\"output_index\":{o},\"content_index\":{c},\"delta\":\"{t}\"}}"
                );
                sse::named_event("response.output_text.delta", &data)
            }
            (Api::OpenAiResponses, ChannelKey::OutputArgs(o)) => {
                let item = json_escape(item_id.unwrap_or_default());
                let data = format!(
                    "{{\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"{item}\",\"output_index\":{o},\"delta\":\"{t}\"}}"
                );
                sse::named_event("response.function_call_arguments.delta", &data)
            }
            _ => Vec::new(),
        }
    }

    /// Flushes, in synthesized events, every channel `which` selects.
    fn flush_where(&mut self, engine: &Engine, which: impl Fn(&ChannelKey) -> bool) -> Vec<u8> {
        let keys: Vec<ChannelKey> =
            self.channels.iter().filter(|c| !c.pending.is_empty() && which(&c.key)).map(|c| c.key.clone()).collect();
        let mut out = Vec::new();
        for key in keys {
            if let Some((kind, text, item_id)) = self.flush(engine, &key) {
                out.extend(self.synthesize(&key, kind, &text, item_id.as_deref()));
            }
        }
        out
    }

    // -- framings -----------------------------------------------------------

    fn sse_event(&mut self, engine: &Engine, e: SseEvent) -> Result<Vec<u8>, String> {
        if std::mem::take(&mut self.dropped_cr) && e.data.is_none() && e.raw == b"\n" {
            return Ok(Vec::new());
        }
        let Some(data) = e.data.as_deref() else {
            return Ok(e.raw);
        };
        if data.trim() == "[DONE]" {
            let mut out = self.flush_all(engine);
            out.extend_from_slice(&e.raw);
            return Ok(out);
        }
        let event_type = e.event.clone();
        match self.json_payload(engine, event_type.as_deref(), data)? {
            Payload::Same(pre) if pre.is_empty() => Ok(e.raw),
            Payload::Same(mut pre) => {
                pre.extend_from_slice(&e.raw);
                Ok(pre)
            }
            Payload::Changed(mut pre, new) => {
                pre.extend(e.with_data(&new));
                Ok(pre)
            }
            Payload::Drop(pre) => {
                self.dropped_cr = e.raw.last() == Some(&b'\r');
                Ok(pre)
            }
        }
    }

    fn array_piece(&mut self, engine: &Engine, piece: Piece) -> Result<Vec<u8>, String> {
        match piece {
            Piece::Between(b) => Ok(b),
            Piece::End(b) => {
                let mut out = self.flush_all(engine);
                out.extend(b);
                Ok(out)
            }
            Piece::Element(b) => {
                let text = String::from_utf8(b).map_err(|_| "a streamed JSON element is not UTF-8".to_owned())?;
                self.in_element = true;
                let payload = self.json_payload(engine, None, &text);
                self.in_element = false;
                let payload = payload?;
                self.elements += 1;
                Ok(match payload {
                    Payload::Same(mut pre) => {
                        pre.extend(text.into_bytes());
                        pre
                    }
                    Payload::Changed(mut pre, new) => {
                        pre.extend(new.into_bytes());
                        pre
                    }
                    // Only OpenAI chat SSE drops events; never a JSON-array element.
                    Payload::Drop(mut pre) => {
                        pre.extend(text.into_bytes());
                        pre
                    }
                })
            }
        }
    }

    fn frame(&mut self, engine: &Engine, raw: Vec<u8>, m: Message) -> Result<Vec<u8>, String> {
        if m.header_str(":message-type").is_some_and(|t| t != "event") {
            return Ok(raw);
        }
        let event_type = m.header_str(":event-type").map(str::to_owned);
        let Ok(text) = crate::utf8::str_from(&m.payload) else {
            return Err("an event-stream payload is not UTF-8".into());
        };
        if text.trim().is_empty() {
            return Ok(raw);
        }
        match self.json_payload(engine, event_type.as_deref(), text)? {
            Payload::Same(mut pre) => {
                pre.extend(raw);
                Ok(pre)
            }
            Payload::Changed(mut pre, new) => {
                pre.extend(Message { headers: m.headers, payload: new.into_bytes() }.encode());
                Ok(pre)
            }
            Payload::Drop(pre) => Ok(pre),
        }
    }

    // -- dialects -----------------------------------------------------------

    /// One JSON event payload: returns synthesized events to send before
    /// it, and the payload rewritten if it changed.
    fn json_payload(&mut self, engine: &Engine, event_type: Option<&str>, data: &str) -> Result<Payload, String> {
        let v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(_) if self.api == Api::Unknown => {
                // Unknown API, plain-text data: scan it as text.
                let (_, out) =
                    process(engine, &self.restore, &mut self.report, &self.classes, data, true, TextKind::Prose);
                return Ok(if out == data { Payload::Same(Vec::new()) } else { Payload::Changed(Vec::new(), out) });
            }
            Err(e) => return Err(format!("a streamed event is not JSON: {e}")),
        };
        if v.get("error").is_some() {
            return Ok(Payload::Same(Vec::new()));
        }
        match self.api {
            Api::OpenAiChat => self.openai_chat(engine, &v, data),
            Api::Anthropic => self.anthropic(engine, &v, data),
            Api::Gemini => self.gemini(engine, &v, data),
            Api::Bedrock => self.bedrock(engine, event_type, &v, data),
            Api::OpenAiResponses => self.openai_responses(engine, &v, data),
            Api::Unknown => self.unknown(engine, data),
        }
    }

    fn leaves(
        &self,
        data: &str,
        select: impl Fn(&[PathSeg<'_>]) -> bool,
    ) -> Result<Vec<(Vec<Seg>, StringLeaf)>, String> {
        leaves(data, self.max_depth, select).map_err(|e| format!("a streamed event is not JSON: {e}"))
    }

    fn openai_chat(&mut self, engine: &Engine, v: &Value, data: &str) -> Result<Payload, String> {
        let usage = v.get("usage").filter(|u| u.is_object());
        if let Some(u) = usage {
            self.report.usage.read(u);
            let usage_only = v.get("choices").and_then(Value::as_array).is_some_and(Vec::is_empty);
            if self.strip_usage && usage_only {
                return Ok(Payload::Drop(Vec::new()));
            }
        }
        let envelope: Vec<(String, Value)> = ["id", "object", "created", "model", "system_fingerprint"]
            .iter()
            .filter_map(|k| v.get(*k).map(|x| ((*k).to_owned(), x.clone())))
            .collect();
        if !envelope.is_empty() {
            self.envelope = envelope;
        }
        let choices = v.get("choices").and_then(Value::as_array).cloned().unwrap_or_default();
        if choices.is_empty() {
            return Ok(Payload::Same(Vec::new()));
        }
        let found = self.leaves(data, |p| {
            matches!(p, [c, _, d, content] if c.is_key("choices") && d.is_key("delta") && (content.is_key("content") || content.is_key("refusal")))
                || matches!(p, [c, _, d, t, _, f, a] if c.is_key("choices") && d.is_key("delta") && t.is_key("tool_calls") && f.is_key("function") && a.is_key("arguments"))
        })?;
        let choice_index = |k: usize| -> (u64, bool) {
            let c = choices.get(k);
            let index = c.and_then(|c| c.get("index")).and_then(Value::as_u64).unwrap_or(k as u64);
            let finished = c.and_then(|c| c.get("finish_reason")).is_some_and(|f| !f.is_null());
            (index, finished)
        };
        let mut edits = Vec::new();
        for (path, leaf) in &found {
            let Some(k) = path.get(1).and_then(Seg::index) else { continue };
            let (index, finished) = choice_index(k);
            let (key, kind) = if path.get(3).is_some_and(|s| s.is("tool_calls")) {
                let m = path.get(4).and_then(Seg::index).unwrap_or(0);
                let tool = choices
                    .get(k)
                    .and_then(|c| c.pointer(&format!("/delta/tool_calls/{m}/index")))
                    .and_then(Value::as_u64)
                    .unwrap_or(m as u64);
                (ChannelKey::ChoiceTool(index, tool), TextKind::JsonText)
            } else if path.get(3).is_some_and(|s| s.is("refusal")) {
                // Refusals are short and come whole: no hold-back.
                (ChannelKey::None, TextKind::Prose)
            } else {
                (ChannelKey::ChoiceContent(index), TextKind::Prose)
            };
            let delta = decode(data, *leaf);
            let out = self.feed(engine, key, kind, &delta, finished);
            if out != delta {
                edits.push((leaf.start, leaf.end, json_escape(&out)));
            }
        }
        // A choice that finished: text its channels still hold goes out first.
        let finished: Vec<u64> = (0..choices.len()).map(choice_index).filter(|(_, f)| *f).map(|(i, _)| i).collect();
        let pre = self.flush_where(engine, |key| match key {
            ChannelKey::ChoiceContent(i) | ChannelKey::ChoiceTool(i, _) => finished.contains(i),
            _ => false,
        });
        Ok(Payload::new(pre, data, edits))
    }

    fn anthropic(&mut self, engine: &Engine, v: &Value, data: &str) -> Result<Payload, String> {
        let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "message_start" => {
                if let Some(u) = v.pointer("/message/usage") {
                    self.report.usage.read(u);
                }
                Ok(Payload::Same(Vec::new()))
            }
            "message_delta" => {
                if let Some(u) = v.get("usage") {
                    self.report.usage.read(u);
                }
                Ok(Payload::Same(Vec::new()))
            }
            "content_block_delta" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let delta_type = v.pointer("/delta/type").and_then(Value::as_str).unwrap_or_default();
                let (member, text_kind) = match delta_type {
                    "text_delta" => ("text", TextKind::Prose),
                    "input_json_delta" => ("partial_json", TextKind::JsonText),
                    // Thinking is signed by the provider; changing it would
                    // break the signature the next turn sends back.
                    _ => return Ok(Payload::Same(Vec::new())),
                };
                let found = self.leaves(data, |p| matches!(p, [d, m] if d.is_key("delta") && m.is_key(member)))?;
                let mut edits = Vec::new();
                for (_, leaf) in &found {
                    let delta = decode(data, *leaf);
                    let out = self.feed(engine, ChannelKey::Block(index), text_kind, &delta, false);
                    if out != delta {
                        edits.push((leaf.start, leaf.end, json_escape(&out)));
                    }
                }
                Ok(Payload::new(Vec::new(), data, edits))
            }
            "content_block_stop" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let pre = self.flush_where(engine, |k| *k == ChannelKey::Block(index));
                Ok(Payload::Same(pre))
            }
            "message_stop" => Ok(Payload::Same(self.flush_all(engine))),
            "content_block_start" => {
                // A block may start with text or input already in it.
                let found = self.leaves(data, |p| {
                    is_key(p.first(), "content_block") && (is_key(p.get(1), "text") || is_key(p.get(1), "input"))
                })?;
                self.whole_leaves(engine, data, &found, TextKind::Prose)
            }
            _ => Ok(Payload::Same(Vec::new())),
        }
    }

    /// Leaves that come whole (no hold-back across events).
    fn whole_leaves(
        &mut self,
        engine: &Engine,
        data: &str,
        found: &[(Vec<Seg>, StringLeaf)],
        kind: TextKind,
    ) -> Result<Payload, String> {
        let mut edits = Vec::new();
        for (path, leaf) in found {
            let kind = if path.last().is_some_and(|s| s.is("arguments")) { TextKind::JsonText } else { kind };
            let text = decode(data, *leaf);
            let (_, out) = process(engine, &self.restore, &mut self.report, &self.classes, &text, true, kind);
            if out != text {
                edits.push((leaf.start, leaf.end, json_escape(&out)));
            }
        }
        Ok(Payload::new(Vec::new(), data, edits))
    }

    fn gemini(&mut self, engine: &Engine, v: &Value, data: &str) -> Result<Payload, String> {
        if let Some(u) = v.get("usageMetadata") {
            self.report.usage.read(u);
        }
        let candidates = v.get("candidates").and_then(Value::as_array).cloned().unwrap_or_default();
        let found = self.leaves(data, |p| {
            is_key(p.first(), "candidates") && p.iter().any(|s| s.is_key("parts")) && {
                let last = p.last();
                is_key(last, "text") && p.len() == 6 || p.iter().any(|s| s.is_key("args"))
            }
        })?;
        let candidate = |k: usize| -> (u64, bool) {
            let c = candidates.get(k);
            let index = c.and_then(|c| c.get("index")).and_then(Value::as_u64).unwrap_or(k as u64);
            (index, c.and_then(|c| c.get("finishReason")).is_some_and(|f| !f.is_null()))
        };
        let mut edits = Vec::new();
        for (path, leaf) in &found {
            let Some(k) = path.get(1).and_then(Seg::index) else { continue };
            let (index, finished) = candidate(k);
            let text = decode(data, *leaf);
            let out = if path.iter().any(|s| s.is("args")) {
                let (_, out) =
                    process(engine, &self.restore, &mut self.report, &self.classes, &text, true, TextKind::Prose);
                out
            } else {
                self.feed(engine, ChannelKey::Candidate(index), TextKind::Prose, &text, finished)
            };
            if out != text {
                edits.push((leaf.start, leaf.end, json_escape(&out)));
            }
        }
        let finished: Vec<u64> = (0..candidates.len()).map(candidate).filter(|(_, f)| *f).map(|(i, _)| i).collect();
        let pre = self.flush_where(engine, |key| matches!(key, ChannelKey::Candidate(i) if finished.contains(i)));
        Ok(Payload::new(pre, data, edits))
    }

    fn bedrock(&mut self, engine: &Engine, event_type: Option<&str>, v: &Value, data: &str) -> Result<Payload, String> {
        match event_type.unwrap_or_default() {
            "metadata" => {
                if let Some(u) = v.get("usage") {
                    self.report.usage.read(u);
                }
                Ok(Payload::Same(Vec::new()))
            }
            "contentBlockDelta" => {
                let index = v.get("contentBlockIndex").and_then(Value::as_u64).unwrap_or(0);
                let found = self.leaves(data, |p| {
                    matches!(p, [d, t] if d.is_key("delta") && t.is_key("text"))
                        || matches!(p, [d, t, i] if d.is_key("delta") && t.is_key("toolUse") && i.is_key("input"))
                })?;
                let mut edits = Vec::new();
                for (path, leaf) in &found {
                    let kind = if path.len() == 3 { TextKind::JsonText } else { TextKind::Prose };
                    let text = decode(data, *leaf);
                    let out = self.feed(engine, ChannelKey::Block(index), kind, &text, false);
                    if out != text {
                        edits.push((leaf.start, leaf.end, json_escape(&out)));
                    }
                }
                Ok(Payload::new(Vec::new(), data, edits))
            }
            "contentBlockStop" => {
                let index = v.get("contentBlockIndex").and_then(Value::as_u64).unwrap_or(0);
                Ok(Payload::Same(self.flush_where(engine, |k| *k == ChannelKey::Block(index))))
            }
            "messageStop" => Ok(Payload::Same(self.flush_all(engine))),
            _ => Ok(Payload::Same(Vec::new())),
        }
    }

    fn openai_responses(&mut self, engine: &Engine, v: &Value, data: &str) -> Result<Payload, String> {
        let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
        let output_index = v.get("output_index").and_then(Value::as_u64).unwrap_or(0);
        let content_index = v.get("content_index").and_then(Value::as_u64).unwrap_or(0);
        let item_id = v.get("item_id").and_then(Value::as_str).map(str::to_owned);
        if let Some(u) = v.pointer("/response/usage").filter(|u| u.is_object()) {
            self.report.usage.read(u);
        }
        let delta = |this: &mut Self, key: ChannelKey, kind: TextKind| -> Result<Payload, String> {
            let i = this.channel_index(&key, kind);
            if let Some(ch) = this.channels.get_mut(i) {
                ch.item_id = item_id.clone();
            }
            let found = this.leaves(data, |p| matches!(p, [d] if d.is_key("delta")))?;
            let mut edits = Vec::new();
            for (_, leaf) in &found {
                let text = decode(data, *leaf);
                let out = this.feed(engine, key.clone(), kind, &text, false);
                if out != text {
                    edits.push((leaf.start, leaf.end, json_escape(&out)));
                }
            }
            Ok(Payload::new(Vec::new(), data, edits))
        };
        match kind {
            "response.output_text.delta" => {
                delta(self, ChannelKey::OutputText(output_index, content_index), TextKind::Prose)
            }
            "response.function_call_arguments.delta" => {
                delta(self, ChannelKey::OutputArgs(output_index), TextKind::JsonText)
            }
            _ => {
                // Events that end a channel flush it first; complete texts
                // in `*.done` / `response.completed` are processed whole.
                let pre = match kind {
                    "response.output_text.done" => {
                        self.flush_where(engine, |k| *k == ChannelKey::OutputText(output_index, content_index))
                    }
                    "response.function_call_arguments.done" => {
                        self.flush_where(engine, |k| *k == ChannelKey::OutputArgs(output_index))
                    }
                    "response.completed" | "response.incomplete" | "response.failed" => self.flush_all(engine),
                    _ => Vec::new(),
                };
                let found = self.leaves(data, |p| {
                    let last = p.last();
                    (p.len() == 1 && (is_key(last, "text") || is_key(last, "arguments")))
                        || (p.len() > 1
                            && (is_key(last, "text") || is_key(last, "arguments"))
                            && p.iter().any(|s| s.is_key("part") || s.is_key("item") || s.is_key("output")))
                })?;
                let mut payload = self.whole_leaves(engine, data, &found, TextKind::Prose)?;
                payload.prepend(pre);
                Ok(payload)
            }
        }
    }

    fn unknown(&mut self, engine: &Engine, data: &str) -> Result<Payload, String> {
        let found = self.leaves(data, |_| true)?;
        self.whole_leaves(engine, data, &found, TextKind::Prose)
    }
}

enum Step {
    Sse(SseEvent),
    Piece(Piece),
    Frame(Vec<u8>, Message),
    Error(String),
}

/// Synthesized events to send first, and the event's payload if changed.
enum Payload {
    Same(Vec<u8>),
    Changed(Vec<u8>, String),
    /// Send only what precedes it; the event itself is dropped (the usage
    /// chunk meshward asked for on the client's behalf).
    Drop(Vec<u8>),
}

impl Payload {
    fn new(pre: Vec<u8>, data: &str, edits: Vec<(usize, usize, String)>) -> Payload {
        if edits.is_empty() {
            Payload::Same(pre)
        } else {
            Payload::Changed(pre, splice(data, &edits))
        }
    }

    fn prepend(&mut self, mut first: Vec<u8>) {
        if first.is_empty() {
            return;
        }
        let pre = match self {
            Payload::Same(pre) | Payload::Changed(pre, _) | Payload::Drop(pre) => pre,
        };
        first.append(pre);
        *pre = first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Secrets;

    fn engine() -> Engine {
        let policy = r#"{"meshward_policy":1,"name":"t","version":"1","mode":"enforce","detection":{"classes":{"EMAIL":{"action":"redact"}}}}"#;
        let secrets =
            Secrets { placeholder_key: Some("unit-test-placeholder-key-0123456789".into()), ..Secrets::default() };
        Engine::from_json(policy.as_bytes(), &secrets).unwrap()
    }

    fn meta(path: &str) -> ResponseMeta<'_> {
        ResponseMeta {
            request_id: "req-1",
            request_path: path,
            content_type: Some("text/event-stream"),
            content_encoding: None,
            status: 200,
        }
    }

    const ENVELOPE: &str = r#""id":"c1","object":"chat.completion.chunk","created":1,"model":"m""#;

    fn chunk(rest: &str) -> String {
        format!("data: {{{ENVELOPE},{rest}}}\n\n")
    }

    /// A chat stream (LF or CRLF line ends) and the usage chunk in it.
    fn chat_stream(crlf: bool) -> (String, String) {
        let usage = chunk(r#""choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}"#);
        let stream = [
            chunk(r#""choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]"#),
            ": keep-alive\n\n".to_owned(),
            chunk(r#""choices":[{"index":0,"delta":{"content":"Hello "},"finish_reason":null}]"#),
            chunk(r#""choices":[{"index":0,"delta":{"content":"there."},"finish_reason":null}]"#),
            chunk(r#""choices":[{"index":0,"delta":{},"finish_reason":"stop"}]"#),
            usage.clone(),
            "data: [DONE]\n\n".to_owned(),
        ]
        .concat();
        if crlf {
            (stream.replace('\n', "\r\n"), usage.replace('\n', "\r\n"))
        } else {
            (stream, usage)
        }
    }

    fn run(e: &Engine, path: &str, injected: bool, pieces: &[&[u8]]) -> (Vec<u8>, ResponseReport) {
        let mut s = e.response_stream(&meta(path), RestoreMap::default()).with_injected_usage(injected);
        let mut out = Vec::new();
        for p in pieces {
            out.extend(s.push(e, p));
        }
        out.extend(s.finish(e));
        (out, s.report().clone())
    }

    const USAGE: Usage = Usage { input_tokens: Some(9), output_tokens: Some(3), total_tokens: Some(12) };

    #[test]
    fn buffered_usage_is_read_in_every_provider_shape() {
        let read = |api: Api, text: &str| {
            let mut usage = Usage::default();
            read_usage(api, text, &mut usage);
            usage
        };
        let full = |i, o, t| Usage { input_tokens: Some(i), output_tokens: Some(o), total_tokens: t };
        let openai = r#"{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}"#;
        assert_eq!(read(Api::OpenAiChat, openai), USAGE);
        let gemini = r#"{"candidates":[{"content":{"parts":[{"text":"hi"}]}}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":5,"totalTokenCount":9}}"#;
        assert_eq!(read(Api::Gemini, gemini), full(4, 5, Some(9)));
        let anthropic = r#"{"type":"message","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":7,"output_tokens":2}}"#;
        assert_eq!(read(Api::Anthropic, anthropic), full(7, 2, None));
        let nested = r#"{"type":"message_start","message":{"id":"m","usage":{"input_tokens":6,"output_tokens":1}}}"#;
        assert_eq!(read(Api::Anthropic, nested), full(6, 1, None));
        let responses = r#"{"type":"response.completed","response":{"output":[],"usage":{"input_tokens":3,"output_tokens":8,"total_tokens":11}}}"#;
        assert_eq!(read(Api::OpenAiResponses, responses), full(3, 8, Some(11)));
        // Members of other types, or no JSON at all, leave usage unknown.
        assert_eq!(read(Api::OpenAiResponses, r#"{"response":"text","usage":[1]}"#), Usage::default());
        assert_eq!(read(Api::OpenAiChat, "<html>"), Usage::default());
    }

    #[test]
    fn the_injected_usage_chunk_is_read_then_dropped_at_every_split() {
        let e = engine();
        for crlf in [false, true] {
            let (input, usage) = chat_stream(crlf);
            // What the client would see had it asked for usage, less exactly
            // the usage chunk.
            let (asked, _) = run(&e, "/v1/chat/completions", false, &[input.as_bytes()]);
            let asked = String::from_utf8(asked).unwrap();
            assert_eq!(asked.matches(&usage).count(), 1, "{asked}");
            let want = asked.replace(&usage, "");
            let bytes = input.as_bytes();
            let mut chunkings: Vec<Vec<&[u8]>> = vec![vec![bytes], bytes.chunks(1).collect()];
            chunkings.extend((0..=bytes.len()).map(|cut| vec![&bytes[..cut], &bytes[cut..]]));
            for pieces in &chunkings {
                let (out, report) = run(&e, "/v1/chat/completions", true, pieces);
                assert_eq!(String::from_utf8(out).unwrap(), want, "{} pieces", pieces.len());
                assert_eq!(report.usage, USAGE);
                assert!(report.problem.is_none());
            }
        }
    }

    #[test]
    fn a_stream_holding_back_more_than_the_limit_ends_with_an_error_event() {
        let policy = r#"{"meshward_policy":1,"name":"t","version":"1","mode":"enforce","detection":{"classes":{"EMAIL":{"action":"redact"}}},"limits":{"max_hold_back_bytes":8192}}"#;
        let secrets =
            Secrets { placeholder_key: Some("unit-test-placeholder-key-0123456789".into()), ..Secrets::default() };
        let e = Engine::from_json(policy.as_bytes(), &secrets).unwrap();
        // Each choice ends in a run that could still become an address, so
        // each channel holds ~300 bytes; 40 choices hold more than 8 KiB.
        let tail = "x".repeat(300);
        let choices = |n: usize| -> String {
            (0..n)
                .map(|i| {
                    chunk(&format!(
                        r#""choices":[{{"index":{i},"delta":{{"content":"see {tail}"}},"finish_reason":null}}]"#
                    ))
                })
                .collect()
        };
        let (out, report) = run(&e, "/v1/chat/completions", false, &[choices(40).as_bytes()]);
        let out = String::from_utf8(out).unwrap();
        let problem = report.problem.expect("the stream is stopped");
        assert_eq!(problem.kind, ProblemKind::LimitExceeded);
        assert!(out.contains("max_hold_back_bytes") && out.contains("limit-exceeded"), "{out}");
        // Under the limit, the same shape streams through whole.
        let (out, report) = run(&e, "/v1/chat/completions", false, &[choices(20).as_bytes(), b"data: [DONE]\n\n"]);
        assert!(report.problem.is_none());
        assert_eq!(String::from_utf8(out).unwrap().matches(&tail).count(), 20);
    }

    #[test]
    fn without_the_flag_or_for_other_apis_the_usage_chunk_passes() {
        let e = engine();
        let (input, usage) = chat_stream(false);
        // The client asked for usage itself: the chunk goes out as it came.
        let (out, report) = run(&e, "/v1/chat/completions", false, &[input.as_bytes()]);
        assert!(String::from_utf8(out).unwrap().ends_with(&format!("{usage}data: [DONE]\n\n")));
        assert_eq!(report.usage, USAGE);
        // The flag means nothing outside Chat Completions.
        let (out, _) = run(&e, "/v1/somewhere", true, &[input.as_bytes()]);
        assert!(String::from_utf8(out).unwrap().ends_with(&format!("{usage}data: [DONE]\n\n")));
    }

    #[test]
    fn only_a_usage_only_chunk_is_dropped() {
        let e = engine();
        // Usage on a chunk that still carries a choice (some compatible
        // providers do this) is content: it goes out.
        let with_choice =
            chunk(r#""choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1}"#);
        // An empty `choices` without usage is not ours to drop either.
        let no_usage = chunk(r#""choices":[]"#);
        let input = [with_choice.as_str(), no_usage.as_str(), "data: [DONE]\n\n"].concat();
        let (out, report) = run(&e, "/v1/chat/completions", true, &[input.as_bytes()]);
        assert_eq!(String::from_utf8(out).unwrap(), input);
        assert_eq!(report.usage.input_tokens, Some(1));
    }
}
