//! Decision events for the audit sink: the policy's `audit` section and the
//! event built from a [`crate::Decision`]. The event schema itself lives once,
//! in `meshward-audit-proto`, shared with the sink.

use serde::Deserialize;

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
