//! RFC 7807 problem documents for every request meshward refuses.
//!
//! Besides the RFC members and the request id, each document carries an
//! `error` object in the providers' own shape, because unchanged OpenAI and
//! Anthropic SDKs read `error.message` to explain a failure to the caller.

use serde::Serialize;

pub const CONTENT_TYPE: &str = "application/problem+json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    MalformedJson,
    InvalidUtf8,
    BodyTooLarge,
    /// The body is within the size limit but over another `limits` bound
    /// (messages, text parts, string length, findings).
    LimitExceeded,
    UnsupportedEncoding,
    BlockedContent,
    Internal,
    NotConfigured,
    AuditUnavailable,
    /// The model's output holds content policy blocks (a response, not a request).
    ResponseBlocked,
    /// The provider's response cannot be inspected (compressed, malformed, oversized).
    UpstreamUnreadable,
    /// The caller's tenant is not in the policy, which denies unknown tenants.
    UnknownTenant,
    /// The classification guard put the request at or above the tenant's threshold.
    Classified,
    /// The injection guard scored the request as an injection or jailbreak.
    Injection,
    ModelNotAllowed,
    /// More output tokens requested than the model allow-list's cap.
    MaxTokens,
    ProviderNotAllowed,
    TopicNotAllowed,
    ToolNotAllowed,
    /// A tool call's arguments break the tool's constraints.
    ToolArguments,
    /// An approval-required tool without a valid approval token.
    ApprovalRequired,
    AttachmentNotAllowed,
}

impl ProblemKind {
    pub fn status(self) -> u16 {
        match self {
            ProblemKind::MalformedJson | ProblemKind::InvalidUtf8 => 400,
            ProblemKind::BlockedContent => 403,
            ProblemKind::BodyTooLarge | ProblemKind::LimitExceeded => 413,
            ProblemKind::UnsupportedEncoding => 415,
            ProblemKind::Internal | ProblemKind::NotConfigured => 500,
            ProblemKind::AuditUnavailable => 503,
            ProblemKind::ResponseBlocked => 403,
            ProblemKind::UpstreamUnreadable => 502,
            ProblemKind::UnknownTenant => 403,
            guard if guard.is_guard() => 403,
            _ => 500,
        }
    }

    /// Stable identifier: the tail of the `type` URI and the `error.code`.
    pub fn slug(self) -> &'static str {
        match self {
            ProblemKind::MalformedJson => "malformed-json",
            ProblemKind::InvalidUtf8 => "invalid-utf8",
            ProblemKind::BodyTooLarge => "body-too-large",
            ProblemKind::LimitExceeded => "limit-exceeded",
            ProblemKind::UnsupportedEncoding => "unsupported-content-encoding",
            ProblemKind::BlockedContent => "blocked-content",
            ProblemKind::Internal => "internal-error",
            ProblemKind::NotConfigured => "not-configured",
            ProblemKind::AuditUnavailable => "audit-unavailable",
            ProblemKind::ResponseBlocked => "blocked-response",
            ProblemKind::UpstreamUnreadable => "unreadable-response",
            ProblemKind::UnknownTenant => "unknown-tenant",
            ProblemKind::Classified => "classification-exceeded",
            ProblemKind::Injection => "prompt-injection",
            ProblemKind::ModelNotAllowed => "model-not-allowed",
            ProblemKind::MaxTokens => "max-tokens-exceeded",
            ProblemKind::ProviderNotAllowed => "provider-not-allowed",
            ProblemKind::TopicNotAllowed => "topic-not-allowed",
            ProblemKind::ToolNotAllowed => "tool-not-allowed",
            ProblemKind::ToolArguments => "tool-arguments-not-allowed",
            ProblemKind::ApprovalRequired => "approval-required",
            ProblemKind::AttachmentNotAllowed => "attachment-not-allowed",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            ProblemKind::MalformedJson => "Request body is not valid JSON",
            ProblemKind::InvalidUtf8 => "Request body is not valid UTF-8",
            ProblemKind::BodyTooLarge => "Request body is larger than policy allows",
            ProblemKind::LimitExceeded => "Request body exceeds a policy limit",
            ProblemKind::UnsupportedEncoding => "Request body encoding is not supported",
            ProblemKind::BlockedContent => "Request blocked by policy",
            ProblemKind::Internal => "meshward could not process the request",
            ProblemKind::NotConfigured => "meshward has no valid policy",
            ProblemKind::AuditUnavailable => "The audit trail cannot accept the decision",
            ProblemKind::ResponseBlocked => "Response blocked by policy",
            ProblemKind::UpstreamUnreadable => "The provider's response could not be inspected",
            ProblemKind::UnknownTenant => "The caller's tenant is not known to policy",
            ProblemKind::Classified => "Request is classified above what policy allows",
            ProblemKind::Injection => "Request looks like a prompt injection or jailbreak",
            ProblemKind::ModelNotAllowed => "Model not allowed by policy",
            ProblemKind::MaxTokens => "Requested output tokens exceed policy",
            ProblemKind::ProviderNotAllowed => "Provider endpoint not allowed by policy",
            ProblemKind::TopicNotAllowed => "Topic not allowed by policy",
            ProblemKind::ToolNotAllowed => "Tool not allowed by policy",
            ProblemKind::ToolArguments => "Tool arguments not allowed by policy",
            ProblemKind::ApprovalRequired => "Tool requires a valid approval",
            ProblemKind::AttachmentNotAllowed => "Attachment not allowed by policy",
        }
    }

    /// Whether a guard other than PII detection refused (after reading the body).
    pub fn is_guard(self) -> bool {
        matches!(
            self,
            ProblemKind::Classified
                | ProblemKind::Injection
                | ProblemKind::ModelNotAllowed
                | ProblemKind::MaxTokens
                | ProblemKind::ProviderNotAllowed
                | ProblemKind::TopicNotAllowed
                | ProblemKind::ToolNotAllowed
                | ProblemKind::ToolArguments
                | ProblemKind::ApprovalRequired
                | ProblemKind::AttachmentNotAllowed
        )
    }

    /// The `error.type` the OpenAI SDKs expect for this status class.
    fn provider_error_type(self) -> &'static str {
        match self.status() {
            400 | 413 | 415 => "invalid_request_error",
            403 => "permission_error",
            _ => "api_error",
        }
    }
}

/// A refusal, ready to render. `detail` must never contain a detected value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub detail: String,
    pub instance: String,
    pub request_id: String,
}

#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "type")]
    type_uri: String,
    title: &'static str,
    status: u16,
    detail: &'a str,
    instance: &'a str,
    request_id: &'a str,
    error: ProviderError<'a>,
}

#[derive(Serialize)]
struct ProviderError<'a> {
    message: String,
    #[serde(rename = "type")]
    error_type: &'static str,
    code: &'static str,
    request_id: &'a str,
}

impl Problem {
    pub fn new(kind: ProblemKind, detail: impl Into<String>, instance: &str, request_id: &str) -> Problem {
        Problem { kind, detail: detail.into(), instance: instance.to_owned(), request_id: request_id.to_owned() }
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The `application/problem+json` body.
    pub fn to_json(&self) -> Vec<u8> {
        let doc = Document {
            type_uri: format!("urn:meshward:problem:{}", self.kind.slug()),
            title: self.kind.title(),
            status: self.kind.status(),
            detail: &self.detail,
            instance: &self.instance,
            request_id: &self.request_id,
            error: ProviderError {
                message: format!("meshward: {} (request id {})", self.detail, self.request_id),
                error_type: self.kind.provider_error_type(),
                code: self.kind.slug(),
                request_id: &self.request_id,
            },
        };
        // Serialising plain strings and integers cannot fail; keep a valid
        // document even if it somehow did.
        serde_json::to_vec(&doc).unwrap_or_else(|_| {
            br#"{"type":"urn:meshward:problem:internal-error","title":"meshward could not process the request","status":500}"#.to_vec()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc7807_members_and_provider_error() {
        let p = Problem::new(ProblemKind::MalformedJson, "unexpected end at byte 3", "/v1/chat/completions", "req-1");
        let v: serde_json::Value = serde_json::from_slice(&p.to_json()).unwrap();
        assert_eq!(v["type"], "urn:meshward:problem:malformed-json");
        assert_eq!(v["status"], 400);
        assert_eq!(v["title"], "Request body is not valid JSON");
        assert_eq!(v["detail"], "unexpected end at byte 3");
        assert_eq!(v["instance"], "/v1/chat/completions");
        assert_eq!(v["request_id"], "req-1");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "malformed-json");
        assert!(v["error"]["message"].as_str().unwrap().contains("req-1"));
    }

    #[test]
    fn statuses_by_kind() {
        assert_eq!(ProblemKind::BodyTooLarge.status(), 413);
        assert_eq!(ProblemKind::LimitExceeded.status(), 413);
        assert!(!ProblemKind::LimitExceeded.is_guard());
        assert_eq!(ProblemKind::BlockedContent.status(), 403);
        assert_eq!(ProblemKind::Internal.status(), 500);
        assert_eq!(ProblemKind::UnsupportedEncoding.status(), 415);
    }

    #[test]
    fn hostile_request_ids_stay_inside_the_json() {
        let p = Problem::new(ProblemKind::Internal, "x", "/", "\"},\"status\":200,\"x\":{\"");
        let v: serde_json::Value = serde_json::from_slice(&p.to_json()).unwrap();
        assert_eq!(v["status"], 500);
    }
}
