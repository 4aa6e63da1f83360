//! meshward's proxy-wasm filter: thin glue between Envoy and
//! `meshward-engine`. Every decision is the engine's; this crate only reads
//! headers and bodies from the host, hands them over, and applies the
//! verdict. All host calls go through `abi`, which never panics.
//!
//! Request flow: headers (drop `content-length`, force
//! `accept-encoding: identity`) → buffer the body to end of stream (or to
//! the trailers) → `Engine::evaluate_request` → forward, rewrite, or answer
//! with an RFC 7807 problem. Anything unexpected from the host is a 500
//! problem for that one request: fail closed, never pass through.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod abi;
mod audit;
mod metrics;
mod response;

use std::rc::Rc;
use std::sync::Arc;

use abi::{Buffer, HeaderMap, Level};
use meshward_engine::audit::{self as audit_event, EventContext, Outcome};
use meshward_engine::policy::{PolicySet, Secrets};
use meshward_engine::problem::{self, ProblemKind};
use meshward_engine::request::Decision;
use meshward_engine::tenant::ClaimSource;
use meshward_engine::{Engine, Problem, RequestMeta, Verdict};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

proxy_wasm::main! {{
    std::panic::set_hook(Box::new(|info| {
        abi::log(Level::Error, &format!("meshward: panic: {info}"));
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root {
            policy: None,
            audit: Rc::new(audit::Runtime::new()),
            metrics: Rc::new(metrics::Metrics::define()),
            shipper: None,
        })
    });
}}

/// Holds the compiled policy. A reconfiguration swaps the `Rc`; requests in
/// flight keep the profile they started with.
struct Root {
    policy: Option<Rc<PolicySet>>,
    audit: Rc<audit::Runtime>,
    metrics: Rc<metrics::Metrics>,
    shipper: Option<audit::Shipper>,
}

impl Context for Root {
    fn on_http_call_response(&mut self, token_id: u32, _num_headers: usize, _body_size: usize, _num_trailers: usize) {
        if let Some(shipper) = self.shipper.as_mut() {
            shipper.on_http_call_response(&self.audit, token_id);
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        abi::refresh_log_level();
        let config = match abi::get_buffer(Buffer::PluginConfiguration, 0, plugin_configuration_size) {
            Ok(Some(config)) if !config.is_empty() => config,
            Ok(_) => {
                abi::log(Level::Error, "meshward: configuration rejected: the plugin configuration is empty");
                return false;
            }
            Err(status) => {
                abi::log(Level::Error, &format!("meshward: cannot read the plugin configuration: {status:?}"));
                return false;
            }
        };
        let configured = PolicySet::from_json(&config, &Secrets::from_env()).and_then(|policy| {
            let secret = std::env::var(audit_event::SECRET_VARIABLE).ok();
            let secret = audit_event::signing_secret(&policy.default_profile().audit, secret.as_deref())?;
            Ok((policy, secret))
        });
        match configured {
            Ok((policy, secret)) => {
                match audit::Shipper::start(&self.audit, &policy.default_profile().audit, secret) {
                    Ok(shipper) => self.shipper = shipper,
                    Err(e) => {
                        abi::log(Level::Error, &format!("meshward: configuration rejected: {e}"));
                        return false;
                    }
                }
                let signed = match &policy.signed_by {
                    Some(key) => format!(", signed by key {key}"),
                    None => String::new(),
                };
                abi::log(
                    Level::Info,
                    &format!(
                        "meshward: policy '{}' version '{}' ({}{signed}) loaded, {} profile(s)",
                        policy.name,
                        policy.version,
                        policy.digest,
                        policy.profiles().count()
                    ),
                );
                self.policy = Some(Rc::new(policy));
                true
            }
            Err(e) => {
                // Returning false makes Envoy reject the filter: fail closed.
                abi::log(Level::Error, &format!("meshward: configuration rejected: {e}"));
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if let Some(shipper) = self.shipper.as_mut() {
            shipper.on_tick(&self.audit);
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            policy: self.policy.clone(),
            engine: None,
            audit: self.audit.clone(),
            metrics: self.metrics.clone(),
            head: RequestHead::default(),
            buffered: 0,
            decided: false,
            decision: None,
            refused: false,
            pending_denial: None,
            filter_nanos: 0,
            response: response::ResponseState::default(),
        }))
    }
}

/// What the request headers told us, kept for the body callbacks.
#[derive(Default)]
struct RequestHead {
    request_id: String,
    path: String,
    authority: Option<String>,
    content_type: Option<String>,
    content_encoding: Option<String>,
    approval: Option<String>,
    /// The caller, as the policy's `identity` section finds it.
    tenant: Option<String>,
    role: Option<String>,
    subject: Option<String>,
    /// Set when the body is decided.
    unix_time: u64,
}

impl RequestHead {
    fn meta(&self) -> RequestMeta<'_> {
        RequestMeta {
            request_id: &self.request_id,
            path: &self.path,
            content_type: self.content_type.as_deref(),
            content_encoding: self.content_encoding.as_deref(),
            authority: self.authority.as_deref(),
            approval: self.approval.as_deref(),
            unix_time: self.unix_time,
        }
    }
}

struct Stream {
    policy: Option<Rc<PolicySet>>,
    /// The caller's profile, chosen from its tenant and role at the headers.
    engine: Option<Arc<Engine>>,
    audit: Rc<audit::Runtime>,
    metrics: Rc<metrics::Metrics>,
    /// The engine's decision, kept for the audit event (rewritten body dropped).
    decision: Option<Decision>,
    /// Refused outside the engine (no policy, internal error, limits, audit full).
    refused: bool,
    /// A refusal decided at the headers, sent when the body has arrived.
    pending_denial: Option<Problem>,
    /// Time spent deciding, for the audit event.
    filter_nanos: u64,
    head: RequestHead,
    /// Body bytes Envoy holds for us so far.
    buffered: usize,
    /// The request has been forwarded or answered.
    decided: bool,
    /// The response half: buffered JSON or a stream being rewritten, and
    /// what it held (`response.report`: findings, usage) for the audit event.
    response: response::ResponseState,
}

impl Context for Stream {}

impl Stream {
    /// When the stream ends: the decision is counted in the metrics and,
    /// when policy audits it, its event is built and queued for the sink.
    fn finish_exchange(&mut self) {
        // A request refused before its profile was chosen is audited under
        // the default profile.
        let engine = match (&self.engine, &self.policy) {
            (Some(engine), _) => engine.clone(),
            (None, Some(policy)) => policy.default_profile().clone(),
            (None, None) => return,
        };
        let outcome = match (&self.decision, self.refused) {
            (Some(decision), _) => Outcome::Decided(decision),
            (None, true) => Outcome::Refused,
            (None, false) => Outcome::NoBody,
        };
        let summary = engine.decision_summary(outcome, self.response.report.as_ref());
        self.metrics.record(&summary, self.filter_nanos / 1000);
        if !engine.should_audit(outcome) {
            return;
        }
        let route = abi::property(&["xds", "route_name"])
            .ok()
            .flatten()
            .filter(|r| !r.is_empty())
            .map(|r| String::from_utf8_lossy(&r).into_owned());
        let ctx = EventContext {
            request_id: &self.head.request_id,
            subject: self.head.subject.as_deref(),
            role: self.head.role.as_deref(),
            route: route.as_deref(),
            provider: self.head.authority.as_deref(),
            unix_ms: (abi::now_nanos() / 1_000_000) as i64,
            filter_time_us: self.filter_nanos / 1000,
            instance_id: &self.audit.instance_id,
            // Only audited events take a sequence number, so the sink's gap
            // detection sees exactly the events that were dropped.
            seq: self.audit.next_seq(),
        };
        let event = engine.decision_event(&ctx, outcome, self.response.report.as_ref());
        match serde_json::to_vec(&event) {
            Ok(bytes) => self.audit.enqueue(&self.head.request_id, &bytes),
            Err(e) => abi::log(Level::Error, &format!("meshward: cannot serialise audit event: {e}")),
        }
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let headers = match abi::headers(HeaderMap::HttpRequestHeaders) {
            Ok(headers) => headers,
            Err(status) => return self.fail_internal(&format!("cannot read the request headers: {status:?}")),
        };
        self.head = Self::read_head(&headers);
        let Some(policy) = self.policy.clone() else {
            return self.deny(Problem::new(
                ProblemKind::NotConfigured,
                "the filter has no valid policy",
                self.instance(),
                &self.head.request_id,
            ));
        };
        self.identify(&policy, &headers);
        let engine = match policy.select(self.head.tenant.as_deref(), self.head.role.as_deref()) {
            Ok(engine) => engine.clone(),
            Err(unknown) => {
                let problem = unknown.problem(&self.head.meta());
                if end_of_stream {
                    return self.deny(problem);
                }
                // Answer once the body is in: a reply sent while the client
                // is still writing makes Envoy reset the connection, and the
                // client would never read the problem. The buffer filter
                // keeps the request from the provider meanwhile.
                self.pending_denial = Some(problem);
                return Action::Continue;
            }
        };
        self.engine = Some(engine.clone());
        // audit.required: refuse rather than lose the record of a decision.
        if engine.audit.enabled && engine.audit.required && self.audit.is_full() {
            return self.deny(Problem::new(
                ProblemKind::AuditUnavailable,
                "the audit queue is full and policy requires every decision to be recorded",
                self.instance(),
                &self.head.request_id,
            ));
        }
        if end_of_stream {
            self.decided = true;
            return Action::Continue;
        }
        // The body may change length, and the response must arrive readable.
        let prepared = abi::remove_header(HeaderMap::HttpRequestHeaders, "content-length")
            .and_then(|()| abi::replace_header(HeaderMap::HttpRequestHeaders, "accept-encoding", "identity"));
        if let Err(status) = prepared {
            return self.fail_internal(&format!("cannot edit request headers: {status:?}"));
        }
        // Headers must continue: proxy-wasm turns a paused headers callback
        // into StopAllIterationAndWatermark, and then no body callback ever
        // comes (proxy-wasm-cpp-host#143). The body itself is held below, so
        // the provider gets headers but no byte of body before the verdict;
        // a denial resets that upstream stream.
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.decided {
            return Action::Continue;
        }
        if self.pending_denial.is_some() {
            return self.deny_when_complete(end_of_stream);
        }
        let Some(engine) = self.engine.clone() else {
            return self.fail_internal("no engine for a body");
        };
        self.buffered = body_size;
        if let Err(problem) = engine.check_body_size(&self.head.meta(), body_size) {
            return self.deny(problem);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.decide(&engine)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.refused {
            // Our own problem reply: it passes as it is.
            return Action::Continue;
        }
        // The values behind this request's reversible placeholders move to
        // the response side; the decision kept for audit no longer holds them.
        let restore = self.decision.as_mut().map(|d| std::mem::take(&mut d.restore)).unwrap_or_default();
        // The request went upstream with `stream_options.include_usage`
        // added by us: the response stream strips the extra usage chunk.
        let injected_usage = self.decision.as_ref().is_some_and(|d| d.injected_usage);
        let engine = self.engine.clone();
        let (id, path) = (&self.head.request_id, &self.head.path);
        self.response.on_headers(engine.as_deref(), id, path, restore, injected_usage, end_of_stream)
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.refused {
            return Action::Continue;
        }
        let engine = self.engine.clone();
        self.response.on_body(engine.as_deref(), body_size, end_of_stream)
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.refused {
            return Action::Continue;
        }
        let engine = self.engine.clone();
        self.response.on_trailers(engine.as_deref())
    }

    fn on_log(&mut self) {
        self.finish_exchange();
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        // With trailers, no body callback sees end_of_stream: decide here.
        if self.decided {
            return Action::Continue;
        }
        if self.pending_denial.is_some() {
            return self.deny_when_complete(true);
        }
        match self.engine.clone() {
            Some(engine) => self.decide(&engine),
            None => self.fail_internal("no engine for trailers"),
        }
    }
}

impl Stream {
    /// Reads the caller's tenant, role and subject where the policy's
    /// `identity` section says they are (verified JWT claims, trusted headers).
    fn identify(&mut self, policy: &PolicySet, headers: &abi::Headers) {
        let read = |source: &ClaimSource| -> Option<String> {
            if !source.is_configured() {
                return None;
            }
            let jwt = source
                .jwt
                .as_ref()
                .and_then(|claim| abi::property(&claim.property_path()).ok().flatten())
                .map(|value| String::from_utf8_lossy(&value).into_owned());
            let header = source.header.as_deref().and_then(|name| headers.get(name));
            source.resolve(jwt.as_deref(), header.as_deref()).map(str::to_owned)
        };
        let identity = &policy.identity;
        self.head.tenant = read(&identity.tenant);
        self.head.role = read(&identity.role);
        self.head.subject = read(&identity.subject);
    }

    fn read_head(headers: &abi::Headers) -> RequestHead {
        let request_id = match headers.owned("x-request-id") {
            Some(id) if !id.is_empty() => id,
            _ => abi::property(&["request", "id"])
                .ok()
                .flatten()
                .map(|id| String::from_utf8_lossy(&id).into_owned())
                .unwrap_or_else(|| "unknown".to_owned()),
        };
        RequestHead {
            request_id,
            path: headers.owned(":path").unwrap_or_default(),
            authority: headers.owned(":authority"),
            content_type: headers.owned("content-type"),
            content_encoding: headers.owned("content-encoding"),
            approval: headers.owned("x-meshward-approval"),
            ..RequestHead::default()
        }
    }

    fn decide(&mut self, engine: &Engine) -> Action {
        let body = match abi::get_buffer(Buffer::HttpRequestBody, 0, self.buffered) {
            Ok(body) => body.unwrap_or_default(),
            Err(status) => return self.fail_internal(&format!("cannot read the request body: {status:?}")),
        };
        let started = abi::now_nanos();
        // Approval tokens expire against the time of the decision.
        self.head.unix_time = started / 1_000_000_000;
        let mut decision = engine.evaluate_request(&self.head.meta(), &body);
        self.filter_nanos += abi::now_nanos().saturating_sub(started);
        if abi::debug_enabled() && !decision.findings.is_empty() {
            let counts: Vec<String> =
                decision.counts_by_class().iter().map(|(class, n)| format!("{class}={n}")).collect();
            // Debug only: a line per request at info costs real time under
            // load, and the audit event carries the same counts.
            abi::log(
                Level::Debug,
                &format!("meshward: request {} findings {}", self.head.request_id, counts.join(",")),
            );
        }
        let verdict = std::mem::replace(&mut decision.verdict, Verdict::Allow);
        // Keep the decision for the audit event, without the rewritten body.
        decision.verdict = match &verdict {
            Verdict::Rewrite(_) => Verdict::Rewrite(Vec::new()),
            other => other.clone(),
        };
        self.decision = Some(decision);
        match verdict {
            Verdict::Allow => self.forward(),
            Verdict::Rewrite(new_body) => match abi::set_buffer(Buffer::HttpRequestBody, 0, body.len(), &new_body) {
                Ok(()) => self.forward(),
                Err(status) => {
                    self.decision = None;
                    self.fail_internal(&format!("cannot replace the request body: {status:?}"))
                }
            },
            Verdict::Block(problem) => self.deny(problem),
        }
    }

    /// Holds the body of a request refused at its headers, then answers.
    fn deny_when_complete(&mut self, complete: bool) -> Action {
        match (complete, self.pending_denial.take()) {
            (true, Some(problem)) => self.deny(problem),
            (false, pending) => {
                self.pending_denial = pending;
                Action::Pause
            }
            (true, None) => self.fail_internal("no pending denial"),
        }
    }

    fn forward(&mut self) -> Action {
        self.decided = true;
        Action::Continue
    }

    fn instance(&self) -> &str {
        self.head.path.split('?').next().unwrap_or_default()
    }

    fn fail_internal(&mut self, what: &str) -> Action {
        abi::log(Level::Error, &format!("meshward: request {}: internal error: {what}", self.head.request_id));
        let problem = Problem::new(
            ProblemKind::Internal,
            "the request could not be inspected, so it was not forwarded",
            self.instance(),
            &self.head.request_id,
        );
        self.deny(problem)
    }

    /// Answers with the problem document. No body byte has gone upstream;
    /// the buffer filter after us keeps the headers back too.
    fn deny(&mut self, problem: Problem) -> Action {
        self.decided = true;
        self.refused = true;
        let level = if problem.status() >= 500 { Level::Error } else { Level::Warn };
        abi::log(
            level,
            &format!("meshward: request {} denied: {} {}", problem.request_id, problem.status(), problem.kind.slug()),
        );
        let body = problem.to_json();
        let headers = [("content-type", problem::CONTENT_TYPE), ("x-request-id", problem.request_id.as_str())];
        if let Err(status) = abi::send_local_response(u32::from(problem.status()), &headers, &body) {
            abi::log(Level::Error, &format!("meshward: cannot send the problem response: {status:?}"));
        }
        Action::Pause
    }
}
