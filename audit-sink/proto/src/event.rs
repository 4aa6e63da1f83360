//! The decision event: one per request, emitted by the filter, stored by the
//! sink as the `event` member of a log leaf.
//!
//! Rules that keep it safe to store and to show to auditors:
//! - counts, verdicts, names and keyed hashes only; never a raw detected value
//!   (a [`CorrelationTag`] is a keyed HMAC, useless without the tenant key);
//! - optional members are omitted when absent, never written as `null`;
//! - unknown members are accepted on input (a newer filter may add some) and
//!   the sink keeps them as sent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Error;

/// The value of the `v` member this crate writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Largest number of events accepted in one webhook delivery.
pub const MAX_BATCH_EVENTS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionEvent {
    /// Schema version ([`SCHEMA_VERSION`]).
    pub v: u32,
    /// Unique id of this event (e.g. `<instance_id>-<seq>`).
    pub event_id: String,
    /// When the filter decided, RFC 3339 UTC (see [`crate::time`]).
    pub time: String,
    /// Envoy's `x-request-id` / `["request","id"]`.
    pub request_id: String,
    pub tenant: String,
    #[serde(default)]
    pub actor: Actor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub policy: PolicyRef,
    /// What the filter did (in monitor mode: what it would have done).
    pub action: Action,
    /// True when the policy ran in monitor mode: nothing was blocked or rewritten.
    #[serde(default, skip_serializing_if = "is_false")]
    pub monitor: bool,
    #[serde(default)]
    pub guards: Vec<GuardOutcome>,
    /// Finding counts by class (`{"EMAIL": 2, "CREDIT_CARD": 1}`); never values.
    #[serde(default)]
    pub findings: BTreeMap<String, u64>,
    /// Finding counts by class in the model's response (restored placeholders
    /// are not findings); never values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub response_findings: BTreeMap<String, u64>,
    /// Optional keyed HMACs of detected values, for correlation across events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub correlation: Vec<CorrelationTag>,
    pub classification: Classification,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Time spent in the filter for this request, microseconds.
    pub filter_time_us: u64,
    /// Identifies one filter VM instance for the lifetime of that VM.
    pub instance_id: String,
    /// Per-instance monotonic sequence number, starting at 1 (gaps are detected by the sink).
    pub seq: u64,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRef {
    pub name: String,
    pub version: String,
    /// `sha256:<hex>` of the canonical policy document: which rules were in
    /// force, whatever the author called the version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Redact,
    Block,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Redact => "redact",
            Action::Block => "block",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "allow" => Some(Action::Allow),
            "redact" => Some(Action::Redact),
            "block" => Some(Action::Block),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardStatus {
    Scanned,
    Skipped,
    NotApplicable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardOutcome {
    pub name: String,
    pub status: GuardStatus,
    /// The guard's verdict (`pass`, `flag`, `block`, ...); absent when not scanned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorrelationTag {
    pub class: String,
    /// Keyed HMAC of the value (the placeholder tag or a longer one), never the value.
    pub tag: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    pub level: String,
    #[serde(default)]
    pub rationale: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
}

impl DecisionEvent {
    /// Checks what serde cannot: required strings are non-empty, `time` is
    /// RFC 3339, the schema version is known.
    pub fn validate(&self) -> Result<(), Error> {
        if self.v == 0 || self.v > SCHEMA_VERSION {
            return Err(Error::InvalidEvent(format!("unsupported schema version v={}", self.v)));
        }
        for (name, value) in [
            ("event_id", &self.event_id),
            ("request_id", &self.request_id),
            ("tenant", &self.tenant),
            ("instance_id", &self.instance_id),
            ("policy.name", &self.policy.name),
        ] {
            if value.is_empty() {
                return Err(Error::InvalidEvent(format!("{name} is empty")));
            }
        }
        crate::time::parse_rfc3339_ms(&self.time).map_err(|_| Error::InvalidEvent("time is not RFC 3339".into()))?;
        Ok(())
    }

    /// Time of the event in Unix milliseconds.
    pub fn time_ms(&self) -> Result<i64, Error> {
        crate::time::parse_rfc3339_ms(&self.time)
    }
}

/// Serializes events as one webhook body: a JSON array.
pub fn encode_batch(events: &[DecisionEvent]) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(events).map_err(|e| Error::InvalidEvent(e.to_string()))
}

/// Parses a webhook body — one event object or an array of them — checking
/// each against the schema. Returns the events as JSON values exactly as sent
/// (unknown members kept) together with their typed form.
pub fn parse_batch(body: &[u8]) -> Result<Vec<(serde_json::Value, DecisionEvent)>, Error> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| Error::InvalidEvent(format!("body is not JSON: {e}")))?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        obj @ serde_json::Value::Object(_) => vec![obj],
        _ => return Err(Error::InvalidEvent("body must be an event object or an array of events".into())),
    };
    if items.is_empty() {
        return Err(Error::InvalidEvent("empty batch".into()));
    }
    if items.len() > MAX_BATCH_EVENTS {
        return Err(Error::InvalidEvent(format!("more than {MAX_BATCH_EVENTS} events in one batch")));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let event = DecisionEvent::deserialize(&item).map_err(|e| Error::InvalidEvent(format!("event [{i}]: {e}")))?;
        event.validate().map_err(|e| Error::InvalidEvent(format!("event [{i}]: {e}")))?;
        out.push((item, event));
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) fn sample(seq: u64) -> DecisionEvent {
    DecisionEvent {
        v: SCHEMA_VERSION,
        event_id: format!("inst-1-{seq}"),
        time: "2026-05-01T12:00:00.000Z".into(),
        request_id: format!("req-{seq}"),
        tenant: "acme".into(),
        actor: Actor { subject: Some("alice".into()), role: Some("dev".into()) },
        route: Some("openai".into()),
        provider: Some("openai".into()),
        model: Some("gpt-4o".into()),
        policy: PolicyRef { name: "default".into(), version: "3".into(), digest: String::new() },
        action: Action::Redact,
        monitor: false,
        guards: vec![
            GuardOutcome { name: "pii".into(), status: GuardStatus::Scanned, verdict: Some("redact".into()) },
            GuardOutcome { name: "injection".into(), status: GuardStatus::NotApplicable, verdict: None },
        ],
        findings: BTreeMap::from([("EMAIL".to_string(), 2)]),
        response_findings: BTreeMap::new(),
        correlation: vec![],
        classification: Classification { level: "confidential".into(), rationale: "EMAIL".into() },
        usage: Some(Usage { input_tokens: Some(10), output_tokens: Some(5), total_tokens: Some(15) }),
        filter_time_us: 87,
        instance_id: "inst-1".into(),
        seq,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_omits_absent_members() {
        let e = sample(7);
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains(r#""status":"not_applicable""#), "{json}");
        assert!(!json.contains("null"), "absent members must be omitted: {json}");
        assert!(!json.contains("monitor"), "{json}");
        let back: DecisionEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn parse_batch_accepts_object_or_array_and_keeps_unknown_members() {
        let mut v = serde_json::to_value(sample(1)).unwrap();
        v["future_member"] = serde_json::json!({"x": 1});
        let one = parse_batch(v.to_string().as_bytes()).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].0["future_member"]["x"], 1);
        let body = encode_batch(&[sample(1), sample(2)]).unwrap();
        let two = parse_batch(&body).unwrap();
        assert_eq!(two[1].1.seq, 2);
    }

    #[test]
    fn parse_batch_rejects_bad_events_naming_the_position() {
        let mut bad = serde_json::to_value(sample(2)).unwrap();
        bad["action"] = "explode".into();
        let body = serde_json::Value::Array(vec![serde_json::to_value(sample(1)).unwrap(), bad]);
        let err = parse_batch(body.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("event [1]"), "{err}");

        let mut e = sample(1);
        e.time = "yesterday".into();
        assert!(parse_batch(&encode_batch(&[e]).unwrap()).is_err());
        let mut e = sample(1);
        e.tenant.clear();
        assert!(parse_batch(&encode_batch(&[e]).unwrap()).is_err());
        assert!(parse_batch(b"[]").is_err());
        assert!(parse_batch(b"42").is_err());
        assert!(parse_batch(b"{").is_err());
    }
}
