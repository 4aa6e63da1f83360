//! The response half of an HTTP stream: glue between Envoy's response
//! callbacks and `meshward_engine::response`.
//!
//! - Headers: note `content-type` (JSON vs `text/event-stream`, Gemini's
//!   JSON-array stream, Bedrock's event-stream) and drop `content-length`,
//!   because the body may change. A compressed response although the
//!   request asked for `identity` cannot be inspected: it is replaced by a
//!   502 problem (fail closed) while its headers can still be replaced.
//! - JSON / text bodies are buffered (`Pause`) to the end, evaluated, and
//!   rewritten or replaced by the problem document (the status line has
//!   gone already, so the problem travels in the body).
//! - Streams are never paused: each chunk is rewritten in place with what
//!   the engine's `ResponseStream` returns; parser state, a partial event,
//!   a partial UTF-8 sequence and the held-back text live in the stream
//!   between callbacks. The last chunk (or the trailers) flushes. After a
//!   mid-stream block the engine has emitted the provider's error event and
//!   every later chunk is swallowed.

use meshward_engine::problem::{self, Problem, ProblemKind};
use meshward_engine::response::{ResponseMeta, ResponseReport, ResponseStream, ResponseVerdict};
use meshward_engine::restore::RestoreMap;
use meshward_engine::Engine;
use proxy_wasm::types::Action;

use crate::abi::{self, Buffer, HeaderMap, Level};

#[derive(Default)]
enum Phase {
    /// Before the response headers.
    #[default]
    Headers,
    /// Nothing to do (no body, no policy): everything passes.
    Pass,
    /// A JSON or text body, buffered to the end.
    Buffer,
    /// A stream, rewritten chunk by chunk.
    Stream(Box<ResponseStream>),
    /// Failed closed: every later chunk is dropped.
    Swallow,
    /// Decided; the rest passes (including our own local reply).
    Done,
}

/// Per-stream response state, kept in the HTTP context.
#[derive(Default)]
pub(crate) struct ResponseState {
    phase: Phase,
    restore: RestoreMap,
    request_id: String,
    request_path: String,
    content_type: Option<String>,
    content_encoding: Option<String>,
    status: u16,
    buffered: usize,
    /// What the response held (findings, restored placeholders, token
    /// usage, the problem if stopped), once known — for the audit event.
    pub(crate) report: Option<ResponseReport>,
}

impl ResponseState {
    fn meta(&self) -> ResponseMeta<'_> {
        ResponseMeta {
            request_id: &self.request_id,
            request_path: &self.request_path,
            content_type: self.content_type.as_deref(),
            content_encoding: self.content_encoding.as_deref(),
            status: self.status,
        }
    }

    pub(crate) fn on_headers(
        &mut self,
        engine: Option<&Engine>,
        request_id: &str,
        request_path: &str,
        restore: RestoreMap,
        injected_usage: bool,
        end_of_stream: bool,
    ) -> Action {
        if !matches!(self.phase, Phase::Headers) {
            // Our own local reply passing through the encoder chain.
            return Action::Continue;
        }
        let Some(engine) = engine else {
            self.phase = Phase::Pass;
            return Action::Continue;
        };
        self.request_id = request_id.to_owned();
        self.request_path = request_path.to_owned();
        self.restore = restore;
        let headers = match abi::headers(HeaderMap::HttpResponseHeaders) {
            Ok(headers) => headers,
            Err(status) => return self.fail_headers(&format!("cannot read response headers: {status:?}")),
        };
        self.content_type = headers.owned("content-type");
        self.content_encoding = headers.owned("content-encoding");
        self.status = headers.get(":status").and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        if end_of_stream {
            self.phase = Phase::Pass;
            return Action::Continue;
        }
        if let Some(encoding) = self
            .content_encoding
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"))
        {
            let detail = format!(
                "the provider sent a '{}'-encoded response although the request asked for identity; it cannot be inspected",
                encoding.chars().take(32).collect::<String>()
            );
            return self.local_reply(Problem::new(
                ProblemKind::UpstreamUnreadable,
                detail,
                self.instance(),
                request_id,
            ));
        }
        if let Err(status) = abi::remove_header(HeaderMap::HttpResponseHeaders, "content-length") {
            return self.fail_headers(&format!("cannot remove the response content-length: {status:?}"));
        }
        if self.meta().framing().is_stream() {
            let restore = std::mem::take(&mut self.restore);
            let stream = engine.response_stream(&self.meta(), restore).with_injected_usage(injected_usage);
            self.phase = Phase::Stream(Box::new(stream));
        } else {
            self.phase = Phase::Buffer;
        }
        Action::Continue
    }

    pub(crate) fn on_body(&mut self, engine: Option<&Engine>, body_size: usize, end_of_stream: bool) -> Action {
        let Some(engine) = engine else { return Action::Continue };
        match &mut self.phase {
            Phase::Headers | Phase::Pass | Phase::Done => Action::Continue,
            Phase::Swallow => {
                if let Err(status) = abi::set_buffer(Buffer::HttpResponseBody, 0, body_size, &[]) {
                    abi::log(Level::Error, &format!("meshward: cannot drop a response chunk: {status:?}"));
                }
                Action::Continue
            }
            Phase::Buffer => {
                self.buffered = body_size;
                if end_of_stream {
                    return self.decide_buffered(engine);
                }
                if body_size > engine.limits.max_body_bytes {
                    let detail = format!(
                        "the response is at least {body_size} bytes; the limit is {} bytes",
                        engine.limits.max_body_bytes
                    );
                    let problem =
                        Problem::new(ProblemKind::UpstreamUnreadable, detail, self.instance(), &self.request_id);
                    self.replace_body(&problem.to_json());
                    self.report = Some(ResponseReport { problem: Some(problem), ..ResponseReport::default() });
                    self.phase = Phase::Swallow;
                    return Action::Continue;
                }
                Action::Pause
            }
            Phase::Stream(stream) => {
                let chunk = match abi::get_buffer(Buffer::HttpResponseBody, 0, body_size) {
                    Ok(chunk) => chunk.unwrap_or_default(),
                    Err(status) => {
                        abi::log(
                            Level::Error,
                            &format!("meshward: request {}: cannot read a response chunk: {status:?}", self.request_id),
                        );
                        self.phase = Phase::Swallow;
                        return self.on_body(Some(engine), body_size, end_of_stream);
                    }
                };
                let was_stopped = stream.is_stopped();
                let mut out = stream.push(engine, &chunk);
                if end_of_stream {
                    out.extend(stream.finish(engine));
                }
                if let (false, Some(problem)) = (was_stopped, stream.problem()) {
                    abi::log(
                        Level::Warn,
                        &format!(
                            "meshward: request {} response stopped mid-stream: {}",
                            problem.request_id,
                            problem.kind.slug()
                        ),
                    );
                }
                if end_of_stream || stream.is_stopped() {
                    self.report = Some(stream.report().clone());
                }
                if out != chunk {
                    if let Err(status) = abi::set_buffer(Buffer::HttpResponseBody, 0, body_size, &out) {
                        abi::log(Level::Error, &format!("meshward: cannot rewrite a response chunk: {status:?}"));
                        self.phase = Phase::Swallow;
                    }
                }
                if end_of_stream {
                    self.phase = Phase::Done;
                }
                Action::Continue
            }
        }
    }

    pub(crate) fn on_trailers(&mut self, engine: Option<&Engine>) -> Action {
        let Some(engine) = engine else { return Action::Continue };
        match &mut self.phase {
            // With trailers no body callback saw end_of_stream.
            Phase::Buffer => self.decide_buffered(engine),
            Phase::Stream(stream) => {
                let out = stream.finish(engine);
                self.report = Some(stream.report().clone());
                if !out.is_empty() {
                    // Append what the stream still held to the last chunk.
                    if let Err(status) = abi::set_buffer(Buffer::HttpResponseBody, usize::MAX >> 1, 0, &out) {
                        abi::log(Level::Error, &format!("meshward: cannot flush the stream at trailers: {status:?}"));
                    }
                }
                self.phase = Phase::Done;
                Action::Continue
            }
            _ => Action::Continue,
        }
    }

    fn decide_buffered(&mut self, engine: &Engine) -> Action {
        self.phase = Phase::Done;
        let body = match abi::get_buffer(Buffer::HttpResponseBody, 0, self.buffered) {
            Ok(body) => body.unwrap_or_default(),
            Err(status) => {
                let problem = Problem::new(
                    ProblemKind::Internal,
                    format!("the response could not be read ({status:?})"),
                    self.instance(),
                    &self.request_id,
                );
                self.replace_body(&problem.to_json());
                self.report = Some(ResponseReport { problem: Some(problem), ..ResponseReport::default() });
                return Action::Continue;
            }
        };
        let decision = engine.evaluate_response(&self.meta(), &body, &self.restore);
        match &decision.verdict {
            ResponseVerdict::Allow => {}
            ResponseVerdict::Rewrite(new_body) => self.replace_body(new_body),
            ResponseVerdict::Block(problem) => {
                abi::log(
                    Level::Warn,
                    &format!("meshward: request {} response blocked: {}", problem.request_id, problem.kind.slug()),
                );
                self.replace_body(&problem.to_json());
            }
        }
        self.report = Some(decision.report);
        Action::Continue
    }

    fn replace_body(&mut self, body: &[u8]) {
        if let Err(status) = abi::set_buffer(Buffer::HttpResponseBody, 0, usize::MAX >> 1, body) {
            abi::log(Level::Error, &format!("meshward: cannot replace the response body: {status:?}"));
        }
    }

    fn instance(&self) -> &str {
        self.request_path.split('?').next().unwrap_or_default()
    }

    fn fail_headers(&mut self, what: &str) -> Action {
        abi::log(Level::Error, &format!("meshward: request {}: internal error: {what}", self.request_id));
        let problem = Problem::new(
            ProblemKind::Internal,
            "the response could not be inspected, so it was not forwarded",
            self.instance(),
            &self.request_id,
        );
        self.local_reply(problem)
    }

    /// Replaces the whole response (its headers have not gone yet).
    fn local_reply(&mut self, problem: Problem) -> Action {
        self.phase = Phase::Done;
        abi::log(
            Level::Warn,
            &format!(
                "meshward: request {} response refused: {} {}",
                problem.request_id,
                problem.status(),
                problem.kind.slug()
            ),
        );
        let body = problem.to_json();
        let headers = [("content-type", problem::CONTENT_TYPE), ("x-request-id", problem.request_id.as_str())];
        if let Err(status) = abi::send_local_response(u32::from(problem.status()), &headers, &body) {
            abi::log(Level::Error, &format!("meshward: cannot send the problem response: {status:?}"));
        }
        self.report = Some(ResponseReport { problem: Some(problem), ..ResponseReport::default() });
        Action::Pause
    }
}
