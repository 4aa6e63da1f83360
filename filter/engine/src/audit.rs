//! Decision events for the audit sink: the policy's `audit` section and the
//! event built from a [`crate::Decision`]. The event schema itself lives once,
//! in `meshward-audit-proto`, shared with the sink.

use std::collections::BTreeMap;

use meshward_audit_proto::event::{
    Action, Actor, Classification, DecisionEvent, GuardOutcome, GuardStatus, PolicyRef, Usage as EventUsage,
    SCHEMA_VERSION,
};
use meshward_audit_proto::time::format_rfc3339_ms;
use meshward_audit_proto::Secret;
use serde::Deserialize;

use crate::detect::EntityClass;
use crate::policy::{Engine, Mode};
use crate::problem::ProblemKind;
use crate::request::{Decision, Verdict};
use crate::response::ResponseReport;
use crate::EngineError;

pub const SECRET_VARIABLE: &str = "MESHWARD_AUDIT_SECRET";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AuditDoc {
    enabled: bool,
    /// The Envoy cluster of the sink (`dispatch_http_call` needs one).
    cluster: String,
    authority: String,
    path: String,
    /// Deny new requests rather than drop events when the queue is full.
    required: bool,
    include_clean: bool,
    batch_max_events: usize,
    flush_interval_ms: u64,
    queue_max_events: usize,
    timeout_ms: u64,
}

impl Default for AuditDoc {
    fn default() -> Self {
        AuditDoc {
            enabled: false,
            cluster: "meshward_audit".into(),
            authority: "meshward-sink".into(),
            path: "/v1/events".into(),
            required: false,
            include_clean: true,
            batch_max_events: 100,
            flush_interval_ms: 1000,
            queue_max_events: 10_000,
            timeout_ms: 5000,
        }
    }
}

/// The compiled `audit` section.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub enabled: bool,
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub required: bool,
    pub include_clean: bool,
    pub batch_max_events: usize,
    pub flush_interval_ms: u64,
    pub queue_max_events: usize,
    pub timeout_ms: u64,
}

impl AuditConfig {
    pub(crate) fn compile(doc: AuditDoc) -> Result<AuditConfig, EngineError> {
        let error = |field: &str, message: &str| EngineError::Policy {
            path: format!("audit.{field}"),
            message: message.to_owned(),
        };
        if doc.enabled && doc.cluster.trim().is_empty() {
            return Err(error("cluster", "must name the Envoy cluster of the audit sink"));
        }
        if !doc.path.starts_with('/') {
            return Err(error("path", "must start with '/'"));
        }
        if !(1..=10_000).contains(&doc.batch_max_events) {
            return Err(error("batch_max_events", "must be between 1 and 10000"));
        }
        if !(10..=60_000).contains(&doc.flush_interval_ms) {
            return Err(error("flush_interval_ms", "must be between 10 and 60000"));
        }
        if doc.queue_max_events < doc.batch_max_events {
            return Err(error("queue_max_events", "must be at least batch_max_events"));
        }
        if !(100..=60_000).contains(&doc.timeout_ms) {
            return Err(error("timeout_ms", "must be between 100 and 60000"));
        }
        Ok(AuditConfig {
            enabled: doc.enabled,
            cluster: doc.cluster,
            authority: doc.authority,
            path: doc.path,
            required: doc.required,
            include_clean: doc.include_clean,
            batch_max_events: doc.batch_max_events,
            flush_interval_ms: doc.flush_interval_ms,
            queue_max_events: doc.queue_max_events,
            timeout_ms: doc.timeout_ms,
        })
    }
}

/// The signing secret for event deliveries, read from the VM environment.
/// `Ok(None)` when auditing is off; an error when it is on and the secret is
/// missing or malformed (a configuration error: fail closed).
pub fn signing_secret(config: &AuditConfig, value: Option<&str>) -> Result<Option<Secret>, EngineError> {
    if !config.enabled {
        return Ok(None);
    }
    let value = value.filter(|v| !v.is_empty()).ok_or(EngineError::MissingSecret {
        variable: SECRET_VARIABLE,
        reason: "the policy enables audit and events are signed with it",
    })?;
    Secret::parse(value)
        .map(Some)
        .map_err(|e| EngineError::InvalidSecret { variable: SECRET_VARIABLE, reason: e.to_string() })
}

/// What the glue knows about a request besides the engine's decision.
#[derive(Debug, Clone, Default)]
pub struct EventContext<'a> {
    pub request_id: &'a str,
    /// The caller as the identity section found it (not policy names).
    pub subject: Option<&'a str>,
    pub role: Option<&'a str>,
    pub route: Option<&'a str>,
    /// The upstream host (`:authority`), naming the provider endpoint.
    pub provider: Option<&'a str>,
    pub unix_ms: i64,
    pub filter_time_us: u64,
    pub instance_id: &'a str,
    pub seq: u64,
}

/// How a request ended, as far as the audit event is concerned.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'d> {
    /// The engine decided on the body.
    Decided(&'d Decision),
    /// No body to inspect (e.g. a GET): forwarded untouched.
    NoBody,
    /// Refused before or outside the engine (not configured, internal error).
    Refused,
}

impl Engine {
    /// Whether an event for this outcome is shipped (`audit.include_clean`).
    pub fn should_audit(&self, outcome: Outcome<'_>) -> bool {
        if !self.audit.enabled {
            return false;
        }
        match outcome {
            Outcome::Decided(d) => self.audit.include_clean || !d.findings.is_empty() || d.verdict != Verdict::Allow,
            Outcome::NoBody => self.audit.include_clean,
            Outcome::Refused => true,
        }
    }

    /// The decision event for one exchange: counts and verdicts, never
    /// values. `response` is what the response side saw, when it ran.
    /// What a decision amounts to — its action, each guard's verdict, the
    /// findings by class — without the strings of a full event. Metrics
    /// read this for every request, audited or not; [`Engine::decision_event`]
    /// is built on it, so metrics and audit trail cannot disagree.
    pub fn decision_summary(&self, outcome: Outcome<'_>, response: Option<&ResponseReport>) -> DecisionSummary {
        let monitor = self.mode == Mode::Monitor;
        let (mut action, pii, findings) = match outcome {
            Outcome::Decided(d) => {
                let action = match &d.verdict {
                    Verdict::Allow => Action::Allow,
                    Verdict::Rewrite(_) => Action::Redact,
                    Verdict::Block(_) => Action::Block,
                };
                let verdict = match (&d.verdict, d.findings.is_empty()) {
                    (Verdict::Block(p), _) if p.kind == ProblemKind::BlockedContent => Some("block"),
                    // Another guard refused a body that was scanned.
                    (Verdict::Block(p), true) if p.kind.is_guard() => Some("pass"),
                    (Verdict::Block(p), false) if p.kind.is_guard() => Some("flag"),
                    // Refused before scanning (malformed, too large, ...).
                    (Verdict::Block(_), _) => None,
                    (_, true) => Some("pass"),
                    (Verdict::Rewrite(_), false) => Some("redact"),
                    (Verdict::Allow, false) if monitor => Some("monitor"),
                    (Verdict::Allow, false) => Some("flag"),
                };
                let status = if verdict.is_some() { GuardStatus::Scanned } else { GuardStatus::Skipped };
                (action, GuardSummary { name: "pii", status, verdict }, d.counts_by_class())
            }
            Outcome::NoBody => (
                Action::Allow,
                GuardSummary { name: "pii", status: GuardStatus::NotApplicable, verdict: None },
                Vec::new(),
            ),
            Outcome::Refused => {
                (Action::Block, GuardSummary { name: "pii", status: GuardStatus::Skipped, verdict: None }, Vec::new())
            }
        };
        let mut guards = vec![pii];
        let unrun;
        let reports = match outcome {
            Outcome::Decided(d) => &d.guards,
            Outcome::NoBody => {
                unrun = crate::guard::unrun_reports(self, crate::guard::GuardStatus::NotApplicable);
                &unrun
            }
            Outcome::Refused => {
                unrun = crate::guard::unrun_reports(self, crate::guard::GuardStatus::Skipped);
                &unrun
            }
        };
        guards.extend(reports.iter().map(|r| GuardSummary {
            name: r.name,
            status: match r.status {
                crate::guard::GuardStatus::Scanned => GuardStatus::Scanned,
                crate::guard::GuardStatus::Skipped => GuardStatus::Skipped,
                crate::guard::GuardStatus::NotApplicable => GuardStatus::NotApplicable,
            },
            verdict: r.verdict(self.mode),
        }));
        let mut response_findings = Vec::new();
        if let Some(report) = response {
            let verdict = match (&report.problem, report.findings.is_empty()) {
                (Some(_), _) => "block",
                (None, true) => "pass",
                (None, false) if monitor => "monitor",
                (None, false) => "redact",
            };
            guards.push(GuardSummary { name: "pii_response", status: GuardStatus::Scanned, verdict: Some(verdict) });
            if report.problem.is_some() && !monitor {
                action = Action::Block;
            }
            response_findings = report.counts_by_class();
        }
        DecisionSummary { action, monitor, guards, findings, response_findings }
    }

    pub fn decision_event(
        &self,
        ctx: &EventContext<'_>,
        outcome: Outcome<'_>,
        response: Option<&ResponseReport>,
    ) -> DecisionEvent {
        let summary = self.decision_summary(outcome, response);
        let counts = |found: &[(EntityClass, usize)]| -> BTreeMap<String, u64> {
            found.iter().map(|(class, n)| (class.name().to_owned(), *n as u64)).collect()
        };
        let model = match outcome {
            Outcome::Decided(d) => d.model.clone(),
            Outcome::NoBody | Outcome::Refused => None,
        };
        let classification = match outcome {
            Outcome::Decided(Decision { classification: Some(c), .. }) => Classification {
                level: c.level_name.clone(),
                rationale: c.rationale.iter().map(|r| r.detail.as_str()).collect::<Vec<_>>().join("; "),
            },
            _ if self.classifier.is_some() => {
                Classification { level: "unassessed".into(), rationale: "the body was not read".into() }
            }
            _ => Classification {
                level: "unassessed".into(),
                rationale: "no classification ladder is configured".into(),
            },
        };
        let usage = response.map(|r| r.usage).filter(|u| !u.is_empty()).map(|u| EventUsage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            total_tokens: u.total_tokens,
        });
        DecisionEvent {
            v: SCHEMA_VERSION,
            event_id: format!("{}-{}", ctx.instance_id, ctx.seq),
            time: format_rfc3339_ms(ctx.unix_ms),
            request_id: ctx.request_id.to_owned(),
            tenant: self.tenant.clone(),
            actor: Actor { subject: ctx.subject.map(|s| bounded(s, 256)), role: ctx.role.map(|r| bounded(r, 256)) },
            route: ctx.route.map(str::to_owned),
            provider: ctx.provider.map(str::to_owned),
            model,
            policy: PolicyRef { name: self.name.clone(), version: self.version.clone(), digest: self.digest.clone() },
            action: summary.action,
            monitor: summary.monitor,
            guards: summary
                .guards
                .iter()
                .map(|g| GuardOutcome { name: g.name.into(), status: g.status, verdict: g.verdict.map(str::to_owned) })
                .collect(),
            findings: counts(&summary.findings),
            response_findings: counts(&summary.response_findings),
            correlation: Vec::new(),
            classification,
            usage,
            filter_time_us: ctx.filter_time_us,
            instance_id: ctx.instance_id.to_owned(),
            seq: ctx.seq,
        }
    }
}

/// A decision as metrics count it; see [`Engine::decision_summary`].
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionSummary {
    pub action: Action,
    pub monitor: bool,
    /// `pii` first, then the other guards, then `pii_response` when a
    /// response was inspected.
    pub guards: Vec<GuardSummary>,
    pub findings: Vec<(EntityClass, usize)>,
    pub response_findings: Vec<(EntityClass, usize)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuardSummary {
    pub name: &'static str,
    pub status: GuardStatus,
    pub verdict: Option<&'static str>,
}

/// At most `max` characters of a caller-supplied value.
fn bounded(value: &str, max: usize) -> String {
    value.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Secrets;
    use crate::RequestMeta;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    fn engine(audit: &str) -> Engine {
        let policy = format!(
            r#"{{"meshward_policy":1,"name":"p","version":"7","detection":{{"classes":{{"EMAIL":{{"action":"redact"}}}}}},"audit":{audit}}}"#
        );
        Engine::from_json(
            policy.as_bytes(),
            &Secrets { placeholder_key: Some("audit-test-key-0123456789".into()), ..Secrets::default() },
        )
        .unwrap()
    }

    fn ctx() -> EventContext<'static> {
        EventContext {
            request_id: "req-1",
            subject: Some("user-42"),
            role: Some("analyst"),
            route: Some("llm"),
            provider: Some("api.openai.com"),
            unix_ms: 1_700_000_000_123,
            filter_time_us: 42,
            instance_id: "inst",
            seq: 9,
        }
    }

    #[test]
    fn the_event_carries_counts_never_values() {
        let e = engine(r#"{"enabled":true}"#);
        let meta = RequestMeta { request_id: "req-1", path: "/v1/chat/completions", ..Default::default() };
        let body =
            br#"{"model":"gpt-4o","messages":[{"role":"user","content":"jane@example.com and joe@example.org"}]}"#;
        let d = e.evaluate_request(&meta, body);
        assert!(e.should_audit(Outcome::Decided(&d)));
        let event = e.decision_event(&ctx(), Outcome::Decided(&d), None);
        event.validate().unwrap();
        let json = serde_json::to_string(&event).unwrap();
        assert!(!json.contains("jane@example.com") && !json.contains("joe@example.org"), "{json}");
        assert_eq!(event.action, Action::Redact);
        assert_eq!(event.findings.get("EMAIL"), Some(&2));
        assert_eq!(event.model.as_deref(), Some("gpt-4o"));
        assert_eq!(event.event_id, "inst-9");
        assert_eq!(event.time, "2023-11-14T22:13:20.123Z");
        assert_eq!(event.guards[0].verdict.as_deref(), Some("redact"));
        assert_eq!((event.policy.name.as_str(), event.policy.version.as_str()), ("p", "7"));
        assert_eq!(event.policy.digest, e.digest);
        assert!(event.policy.digest.starts_with("sha256:"));
        assert_eq!(event.tenant, "default");
        assert_eq!(event.actor, Actor { subject: Some("user-42".into()), role: Some("analyst".into()) });
    }

    #[test]
    fn the_response_side_adds_its_counts_usage_and_guard() {
        let e = engine(r#"{"enabled":true}"#);
        let meta = RequestMeta { request_id: "r", path: "/v1/chat/completions", ..Default::default() };
        let d = e.evaluate_request(&meta, br#"{"messages":[{"role":"user","content":"hi"}]}"#);
        let response = br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"write to bob@example.net"}}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#;
        let response_meta = crate::response::ResponseMeta {
            request_id: "r",
            request_path: "/v1/chat/completions",
            content_type: Some("application/json"),
            content_encoding: None,
            status: 200,
        };
        let report = e.evaluate_response(&response_meta, response, &Default::default()).report;
        let event = e.decision_event(&ctx(), Outcome::Decided(&d), Some(&report));
        assert_eq!(event.response_findings.get("EMAIL"), Some(&1));
        assert!(event.findings.is_empty());
        let usage = event.usage.clone().expect("usage captured");
        assert_eq!((usage.input_tokens, usage.output_tokens, usage.total_tokens), (Some(5), Some(7), Some(12)));
        let names: Vec<_> = event.guards.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["pii", "classification", "injection", "allow", "pii_response"]);
        assert_eq!(event.guards[4].verdict.as_deref(), Some("redact"));
        assert_eq!(event.guards[1].status, GuardStatus::NotApplicable);
        assert!(!serde_json::to_string(&event).unwrap().contains("bob@example.net"));
    }

    #[test]
    fn blocked_and_bodiless_requests() {
        let e = engine(r#"{"enabled":true,"include_clean":false}"#);
        let meta = RequestMeta { request_id: "r", path: "/v1/chat/completions", ..Default::default() };
        let bad = e.evaluate_request(&meta, b"{");
        assert!(e.should_audit(Outcome::Decided(&bad)));
        let refused = e.decision_event(&ctx(), Outcome::Decided(&bad), None);
        assert_eq!(refused.action, Action::Block);
        // A malformed body was never scanned: the guard says so, not "block".
        assert_eq!((refused.guards[0].status, refused.guards[0].verdict.as_deref()), (GuardStatus::Skipped, None));
        let clean = e.evaluate_request(&meta, br#"{"messages":[]}"#);
        assert!(!e.should_audit(Outcome::Decided(&clean)), "include_clean=false skips clean requests");
        assert!(!e.should_audit(Outcome::NoBody));
        assert!(e.should_audit(Outcome::Refused));
        let none = e.decision_event(&ctx(), Outcome::NoBody, None);
        assert_eq!(none.guards[0].status, GuardStatus::NotApplicable);
    }

    #[test]
    fn disabled_audit_ships_nothing_and_needs_no_secret() {
        let e = engine("{}");
        assert!(!e.should_audit(Outcome::Refused));
        assert!(signing_secret(&e.audit, None).unwrap().is_none());
    }

    #[test]
    fn enabled_audit_needs_a_valid_secret() {
        let e = engine(r#"{"enabled":true}"#);
        assert!(matches!(signing_secret(&e.audit, None), Err(EngineError::MissingSecret { .. })));
        assert!(matches!(signing_secret(&e.audit, Some("nope")), Err(EngineError::InvalidSecret { .. })));
        assert!(signing_secret(&e.audit, Some(SECRET)).unwrap().is_some());
    }

    #[test]
    fn audit_settings_are_validated_with_their_path() {
        let err = Engine::from_json(
            br#"{"meshward_policy":1,"name":"p","version":"1","audit":{"batch_max_events":0}}"#,
            &Secrets::default(),
        )
        .unwrap_err();
        assert!(matches!(err, EngineError::Policy { ref path, .. } if path == "audit.batch_max_events"), "{err}");
        let err = Engine::from_json(
            br#"{"meshward_policy":1,"name":"p","version":"1","audit":{"clusterr":"x"}}"#,
            &Secrets::default(),
        )
        .unwrap_err();
        assert!(matches!(err, EngineError::Policy { ref path, .. } if path.starts_with("audit")), "{err}");
    }
}
