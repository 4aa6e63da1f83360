//! The policy document and its compiled form, the [`Engine`].
//!
//! A policy is compiled once, when the filter is configured; requests only
//! read the result. Unknown members are errors (a typo must not silently
//! disable a control), and every error names the JSON path it is about.

use serde::Deserialize;
use std::collections::BTreeMap;

use crate::audit::{AuditConfig, AuditDoc};
use crate::detect::{DetectorSet, EntityClass, Finding};
use crate::placeholder::{MasterKey, PlaceholderKey, KEY_VARIABLE};
use crate::EngineError;

/// The only policy format version this engine reads.
pub const POLICY_FORMAT: u32 = 1;
/// Tenant used until tenant resolution exists (issue 4).
pub const DEFAULT_TENANT: &str = "default";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyDoc {
    meshward_policy: u32,
    name: String,
    version: String,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    detection: DetectionDoc,
    #[serde(default)]
    limits: LimitsDoc,
    #[serde(default)]
    audit: AuditDoc,
}

/// `monitor` evaluates and reports everything but changes and blocks nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Enforce,
    Monitor,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DetectionDoc {
    #[serde(default)]
    classes: BTreeMap<String, ClassRuleDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassRuleDoc {
    action: ClassAction,
    #[serde(default)]
    min_confidence: Option<f32>,
}

/// What to do with a finding of a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassAction {
    /// Replace with an irreversible typed placeholder.
    Redact,
    /// Pass unchanged; reported and audited.
    Flag,
    /// Refuse the whole request.
    Block,
}

impl ClassAction {
    pub fn name(self) -> &'static str {
        match self {
            ClassAction::Redact => "redact",
            ClassAction::Flag => "flag",
            ClassAction::Block => "block",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LimitsDoc {
    max_body_bytes: usize,
    max_json_depth: usize,
}

impl Default for LimitsDoc {
    fn default() -> Self {
        LimitsDoc { max_body_bytes: 1 << 20, max_json_depth: 128 }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ClassRule {
    pub action: ClassAction,
    pub min_confidence: f32,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_json_depth: usize,
}

/// Secrets the host hands over from the VM environment (never from the
/// policy document, which is visible to anyone who can read mesh config).
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    pub placeholder_key: Option<String>,
}

impl Secrets {
    /// Reads the process environment (the VM environment inside Envoy).
    pub fn from_env() -> Secrets {
        Secrets { placeholder_key: std::env::var(KEY_VARIABLE).ok().filter(|v| !v.is_empty()) }
    }
}

/// A compiled policy: everything a request needs, decided up front.
#[derive(Debug, Clone)]
pub struct Engine {
    pub name: String,
    pub version: String,
    pub mode: Mode,
    pub limits: Limits,
    pub audit: AuditConfig,
    pub(crate) detectors: DetectorSet,
    rules: BTreeMap<EntityClass, ClassRule>,
    pub(crate) placeholder_key: Option<PlaceholderKey>,
}

impl Engine {
    /// Parses, validates and compiles a policy document.
    pub fn from_json(policy: &[u8], secrets: &Secrets) -> Result<Engine, EngineError> {
        let mut de = serde_json::Deserializer::from_slice(policy);
        let doc: PolicyDoc = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            EngineError::Policy { path: if path == "." { "$".into() } else { path }, message: e.inner().to_string() }
        })?;
        de.end().map_err(|e| policy_error("$", e.to_string()))?;
        Self::compile(doc, secrets)
    }

    fn compile(doc: PolicyDoc, secrets: &Secrets) -> Result<Engine, EngineError> {
        if doc.meshward_policy != POLICY_FORMAT {
            return Err(policy_error(
                "meshward_policy",
                format!("format {} is not supported; this build reads format {POLICY_FORMAT}", doc.meshward_policy),
            ));
        }
        if doc.name.trim().is_empty() {
            return Err(policy_error("name", "must not be empty".into()));
        }
        if doc.version.trim().is_empty() {
            return Err(policy_error("version", "must not be empty".into()));
        }
        let limits = Limits { max_body_bytes: doc.limits.max_body_bytes, max_json_depth: doc.limits.max_json_depth };
        if limits.max_body_bytes == 0 {
            return Err(policy_error("limits.max_body_bytes", "must be at least 1".into()));
        }
        if !(1..=1024).contains(&limits.max_json_depth) {
            return Err(policy_error("limits.max_json_depth", "must be between 1 and 1024".into()));
        }

        let mut rules = BTreeMap::new();
        for (name, rule) in &doc.detection.classes {
            let path = format!("detection.classes.{name}");
            let Some(class) = EntityClass::from_name(name) else {
                let known: Vec<_> = EntityClass::ALL.iter().map(|c| c.name()).collect();
                return Err(policy_error(&path, format!("unknown class; known classes: {}", known.join(", "))));
            };
            let min_confidence = rule.min_confidence.unwrap_or(0.0);
            if !(0.0..=1.0).contains(&min_confidence) {
                return Err(policy_error(&format!("{path}.min_confidence"), "must be between 0 and 1".into()));
            }
            rules.insert(class, ClassRule { action: rule.action, min_confidence });
        }

        let needs_key = rules.values().any(|r| r.action == ClassAction::Redact);
        let placeholder_key = match (&secrets.placeholder_key, needs_key) {
            (Some(value), _) => Some(MasterKey::new(value)?.tenant_key(DEFAULT_TENANT)),
            (None, true) => {
                return Err(EngineError::MissingSecret {
                    variable: KEY_VARIABLE,
                    reason: "the policy redacts values and placeholders are keyed with it",
                })
            }
            (None, false) => None,
        };

        let audit = AuditConfig::compile(doc.audit)?;
        Ok(Engine {
            name: doc.name,
            version: doc.version,
            mode: doc.mode,
            limits,
            audit,
            detectors: DetectorSet::new(rules.keys().copied()),
            rules,
            placeholder_key,
        })
    }

    pub fn rule(&self, class: EntityClass) -> Option<ClassRule> {
        self.rules.get(&class).copied()
    }

    /// The findings in plain text under this policy's classes and minimum
    /// confidences (what `meshward scan --policy` reports).
    pub fn scan_text(&self, text: &str) -> Vec<Finding> {
        let mut found = Vec::new();
        self.detectors.scan(text, &mut found);
        found.retain(|f| self.rule(f.class).is_some_and(|r| f.confidence >= r.min_confidence));
        found
    }
}

fn policy_error(path: &str, message: String) -> EngineError {
    EngineError::Policy { path: path.to_owned(), message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        Secrets { placeholder_key: Some("test-placeholder-key-0123456789".into()) }
    }

    fn compile(json: &str) -> Result<Engine, EngineError> {
        Engine::from_json(json.as_bytes(), &secrets())
    }

    fn error_path(json: &str) -> String {
        match compile(json) {
            Err(EngineError::Policy { path, .. }) => path,
            other => panic!("expected a policy error, got {other:?}"),
        }
    }

    #[test]
    fn the_shipped_default_policy_compiles() {
        let engine = Engine::from_json(include_bytes!("../../../policies/default.json"), &secrets()).unwrap();
        assert_eq!(engine.name, "default");
        assert_eq!(engine.rule(EntityClass::Email).unwrap().action, ClassAction::Redact);
        assert_eq!(engine.rule(EntityClass::CreditCard).unwrap().action, ClassAction::Redact);
    }

    #[test]
    fn errors_name_the_json_path() {
        let base = r#""meshward_policy":1,"name":"n","version":"1""#;
        assert_eq!(error_path("{}"), "$");
        assert_eq!(error_path("not json"), "$");
        assert_eq!(error_path(&format!(r#"{{{base},"nope":1}}"#)), "nope");
        assert_eq!(error_path(&format!(r#"{{{base},"mode":"loud"}}"#)), "mode");
        assert_eq!(
            error_path(&format!(r#"{{{base},"detection":{{"classes":{{"EMAIL":{{"action":"shred"}}}}}}}}"#)),
            "detection.classes.EMAIL.action"
        );
        assert_eq!(
            error_path(&format!(r#"{{{base},"detection":{{"classes":{{"FAX":{{"action":"redact"}}}}}}}}"#)),
            "detection.classes.FAX"
        );
        assert_eq!(
            error_path(&format!(
                r#"{{{base},"detection":{{"classes":{{"EMAIL":{{"action":"flag","min_confidence":2}}}}}}}}"#
            )),
            "detection.classes.EMAIL.min_confidence"
        );
        assert_eq!(error_path(&format!(r#"{{{base},"limits":{{"max_json_depth":0}}}}"#)), "limits.max_json_depth");
        assert_eq!(error_path(r#"{"meshward_policy":2,"name":"n","version":"1"}"#), "meshward_policy");
        assert_eq!(error_path(&format!("{{{base}}} trailing")), "$");
    }

    #[test]
    fn redaction_without_a_key_is_a_configuration_error() {
        let json =
            r#"{"meshward_policy":1,"name":"n","version":"1","detection":{"classes":{"EMAIL":{"action":"redact"}}}}"#;
        let err = Engine::from_json(json.as_bytes(), &Secrets::default()).unwrap_err();
        assert!(matches!(err, EngineError::MissingSecret { variable: KEY_VARIABLE, .. }), "{err}");
        // Flag-only policies do not need the key.
        let flag = json.replace("redact", "flag");
        assert!(Engine::from_json(flag.as_bytes(), &Secrets::default()).is_ok());
    }
}
