//! The policy document and its compiled form, the [`Engine`].
//!
//! A policy is compiled once, when the filter is configured; requests only
//! read the result. Unknown members are errors (a typo must not silently
//! disable a control), and every error names the JSON path it is about.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::audit::{AuditConfig, AuditDoc};
use crate::detect::{CustomDetector, CustomSpec, DetectorSet, EntityClass, Finding};
use crate::guard::allow::{AllowDoc, AllowList, ApprovalKey};
use crate::guard::classify::{ClassificationDoc, Classifier};
use crate::guard::injection::{InjectionDoc, InjectionGuard};
use crate::guard::ConfigError;
use crate::placeholder::{MasterKey, PlaceholderKey, KEY_VARIABLE};
use crate::signing::{open_envelope, policy_digest, PolicyKeyring, ENVELOPE_MEMBER, PUBLIC_KEY_VARIABLE};
use crate::tenant::{Identity, IdentityDoc};
use crate::EngineError;

/// The only policy format version this engine reads.
pub const POLICY_FORMAT: u32 = 1;
/// The VM environment variable holding the approval-token key.
pub const APPROVAL_KEY_VARIABLE: &str = "MESHWARD_APPROVAL_KEY";
/// The tenant of requests that name none, unless `identity.default_tenant` says otherwise.
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
    #[serde(default)]
    classification: Option<ClassificationDoc>,
    #[serde(default)]
    injection: Option<InjectionDoc>,
    #[serde(default)]
    allow: AllowDoc,
    #[serde(default)]
    identity: IdentityDoc,
    #[serde(default)]
    tenants: BTreeMap<String, TenantDoc>,
}

/// A tenant's own policy: every section it gives replaces the base
/// policy's section of that name whole (no deep merge, so what a tenant
/// gets is what its section says); `roles` refine it the same way.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantDoc {
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    detection: Option<DetectionDoc>,
    #[serde(default)]
    classification: Option<ClassificationDoc>,
    #[serde(default)]
    injection: Option<InjectionDoc>,
    #[serde(default)]
    allow: Option<AllowDoc>,
    #[serde(default)]
    roles: BTreeMap<String, RoleDoc>,
}

/// A role's refinement of its tenant's policy (same replacement rule).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleDoc {
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    detection: Option<DetectionDoc>,
    #[serde(default)]
    classification: Option<ClassificationDoc>,
    #[serde(default)]
    injection: Option<InjectionDoc>,
    #[serde(default)]
    allow: Option<AllowDoc>,
}

impl TenantDoc {
    fn overrides(&self) -> Overrides<'_> {
        Overrides {
            mode: self.mode.as_ref(),
            detection: self.detection.as_ref(),
            classification: self.classification.as_ref(),
            injection: self.injection.as_ref(),
            allow: self.allow.as_ref(),
        }
    }
}

impl RoleDoc {
    fn overrides(&self) -> Overrides<'_> {
        Overrides {
            mode: self.mode.as_ref(),
            detection: self.detection.as_ref(),
            classification: self.classification.as_ref(),
            injection: self.injection.as_ref(),
            allow: self.allow.as_ref(),
        }
    }
}

/// The sections a tenant or role wrote itself.
struct Overrides<'d> {
    mode: Option<&'d Mode>,
    detection: Option<&'d DetectionDoc>,
    classification: Option<&'d ClassificationDoc>,
    injection: Option<&'d InjectionDoc>,
    allow: Option<&'d AllowDoc>,
}

/// One policy section as a profile inherits it, with the JSON path prefix
/// of where it was written (for error messages).
struct Layer<'d, T> {
    doc: &'d T,
    at: String,
}

impl<'d, T> Layer<'d, T> {
    fn base(doc: &'d T) -> Self {
        Layer { doc, at: String::new() }
    }

    /// `own` if the tenant or role wrote the section, else the inherited one.
    fn refine(&self, own: Option<&'d T>, at: &str) -> Self {
        match own {
            Some(doc) => Layer { doc, at: at.to_owned() },
            None => Layer { doc: self.doc, at: self.at.clone() },
        }
    }
}

/// The sections that make up one tenant's (or role's) profile.
struct Sections<'d> {
    mode: Layer<'d, Mode>,
    detection: Layer<'d, DetectionDoc>,
    /// `None` (no `classification` member anywhere): requests are not classified.
    classification: Option<Layer<'d, ClassificationDoc>>,
    /// `None` (no `injection` member anywhere): no injection guard.
    injection: Option<Layer<'d, InjectionDoc>>,
    allow: Layer<'d, AllowDoc>,
}

/// `own` if the tenant or role wrote an optional section, else the inherited one.
fn refine_optional<'d, T>(inherited: &Option<Layer<'d, T>>, own: Option<&'d T>, at: &str) -> Option<Layer<'d, T>> {
    match own {
        Some(doc) => Some(Layer { doc, at: at.to_owned() }),
        None => inherited.as_ref().map(|l| Layer { doc: l.doc, at: l.at.clone() }),
    }
}

impl<'d> Sections<'d> {
    fn refine(&self, own: Overrides<'d>, at: &str) -> Sections<'d> {
        Sections {
            mode: self.mode.refine(own.mode, at),
            detection: self.detection.refine(own.detection, at),
            classification: refine_optional(&self.classification, own.classification, at),
            injection: refine_optional(&self.injection, own.injection, at),
            allow: self.allow.refine(own.allow, at),
        }
    }
}

/// `monitor` evaluates and reports everything but changes and blocks nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Enforce,
    Monitor,
}

/// `detection`: per-class rules and custom detectors (see policies/README.md).
///
/// A class rule is `{"action", "min_confidence"}` for both directions,
/// optionally refined per direction with `"request": {...}` and
/// `"response": {...}` (each member overrides the shared one). Custom
/// detectors are `{"name", "class", "pattern" | "keywords", "confidence",
/// "case_insensitive"}`; their class must have a rule in `classes`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DetectionDoc {
    #[serde(default)]
    classes: BTreeMap<String, ClassRuleDoc>,
    #[serde(default)]
    custom: Vec<CustomDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassRuleDoc {
    #[serde(default)]
    action: Option<ClassAction>,
    #[serde(default)]
    min_confidence: Option<f32>,
    #[serde(default)]
    request: Option<DirectionRuleDoc>,
    #[serde(default)]
    response: Option<DirectionRuleDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectionRuleDoc {
    #[serde(default)]
    action: Option<ClassAction>,
    #[serde(default)]
    min_confidence: Option<f32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomDoc {
    name: String,
    class: String,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    confidence: Option<f32>,
    #[serde(default)]
    case_insensitive: Option<bool>,
}

/// Which way a text travels: what the client sends, or what the model answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Request,
    Response,
}

/// What to do with a finding of a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassAction {
    /// Replace with an irreversible typed placeholder.
    Redact,
    /// Replace with a typed placeholder and remember the value for this
    /// request only, so the response gets it back (see `restore`).
    Reversible,
    /// Pass unchanged; reported and audited.
    Flag,
    /// Refuse the whole request.
    Block,
}

impl ClassAction {
    /// How strongly the action protects a value: when findings overlap,
    /// the one with the stronger action wins, so a `flag` finding never
    /// hides a `redact` one.
    pub fn severity(self) -> u8 {
        match self {
            ClassAction::Flag => 1,
            ClassAction::Redact | ClassAction::Reversible => 2,
            ClassAction::Block => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ClassAction::Redact => "redact",
            ClassAction::Reversible => "reversible",
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
    max_messages: usize,
    max_text_parts: usize,
    max_string_bytes: usize,
    max_findings: usize,
    max_stream_event_bytes: usize,
    max_hold_back_bytes: usize,
}

impl Default for LimitsDoc {
    fn default() -> Self {
        let limits = Limits::DEFAULT;
        LimitsDoc {
            max_body_bytes: limits.max_body_bytes,
            max_json_depth: limits.max_json_depth,
            max_messages: limits.max_messages,
            max_text_parts: limits.max_text_parts,
            max_string_bytes: limits.max_string_bytes,
            max_findings: limits.max_findings,
            max_stream_event_bytes: limits.max_stream_event_bytes,
            max_hold_back_bytes: limits.max_hold_back_bytes,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ClassRule {
    pub action: ClassAction,
    pub min_confidence: f32,
}

/// Resource bounds on what one exchange may make the filter do. Each is
/// answered with a 413 problem naming the limit, never by skipping a scan.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_json_depth: usize,
    /// Entries of a chat transcript (`messages[i]`).
    pub max_messages: usize,
    /// Strings the request codec scans (each message content, part, tool
    /// argument, declaration text).
    pub max_text_parts: usize,
    /// One JSON string, in raw (escaped) bytes.
    pub max_string_bytes: usize,
    /// Findings in one request body, before overlaps are resolved.
    pub max_findings: usize,
    /// One streamed event (SSE event, JSON-array element, event-stream frame).
    pub max_stream_event_bytes: usize,
    /// Text one response stream holds back, summed over its channels
    /// (choices, tool calls, content blocks). Each channel's window is
    /// bounded by the detectors' shapes, but a stream can open any number of
    /// channels; this caps the total.
    pub max_hold_back_bytes: usize,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_body_bytes: 1 << 20,
        max_json_depth: 128,
        max_messages: 4096,
        max_text_parts: 16_384,
        max_string_bytes: 1 << 20,
        max_findings: 4096,
        max_stream_event_bytes: 1 << 20,
        max_hold_back_bytes: 64 << 10,
    };
    /// The largest single-channel window (an unfinished PEM block) fits.
    pub const MIN_HOLD_BACK_BYTES: usize = crate::stream::holdback::PEM_WINDOW;
}

/// Secrets the host hands over from the VM environment (never from the
/// policy document, which is visible to anyone who can read mesh config).
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    pub placeholder_key: Option<String>,
    /// The ed25519 key policy packs must be signed with (base64); when set,
    /// an unsigned or badly signed policy is refused.
    pub policy_public_key: Option<String>,
    /// The HMAC key approval tokens are checked with.
    pub approval_key: Option<String>,
}

impl Secrets {
    /// Reads the process environment (the VM environment inside Envoy).
    pub fn from_env() -> Secrets {
        let read = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Secrets {
            placeholder_key: read(KEY_VARIABLE),
            policy_public_key: read(PUBLIC_KEY_VARIABLE),
            // Not trimmed: the key is the variable's exact bytes.
            approval_key: std::env::var(APPROVAL_KEY_VARIABLE).ok().filter(|v| !v.is_empty()),
        }
    }
}

/// A whole policy document compiled: one [`Engine`] per tenant and role.
#[derive(Debug, Clone)]
pub struct PolicySet {
    pub name: String,
    pub version: String,
    /// `sha256:<hex>` of the canonical policy (see [`crate::signing`]).
    pub digest: String,
    /// The key id a signed pack was verified with.
    pub signed_by: Option<String>,
    pub identity: Identity,
    base: Arc<Engine>,
    tenants: BTreeMap<String, TenantProfiles>,
}

/// Profiles are shared (`Arc`) so a request holds its own handle to the
/// profile that decided it, even while a new configuration replaces the set.
#[derive(Debug, Clone)]
struct TenantProfiles {
    own: Arc<Engine>,
    roles: BTreeMap<String, Arc<Engine>>,
}

/// Why a request has no profile: its tenant is not in the policy and the
/// policy denies unknown tenants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownTenant;

impl UnknownTenant {
    /// The refusal (the tenant's name is not echoed: it is caller input).
    pub fn problem(&self, meta: &crate::RequestMeta<'_>) -> crate::Problem {
        let instance = meta.path.split('?').next().unwrap_or_default();
        crate::Problem::new(
            crate::problem::ProblemKind::UnknownTenant,
            "the request's tenant is not configured and policy denies unknown tenants",
            instance,
            meta.request_id,
        )
    }
}

/// A compiled policy: everything a request needs, decided up front.
#[derive(Debug, Clone)]
pub struct Engine {
    pub name: String,
    pub version: String,
    /// The policy's identity, carried by every decision.
    pub digest: String,
    /// The tenant (and role) this profile was compiled for.
    pub tenant: String,
    pub role: Option<String>,
    pub mode: Mode,
    pub limits: Limits,
    pub audit: AuditConfig,
    pub(crate) detectors: DetectorSet,
    /// Request-direction rules (also what [`Engine::rule`] returns).
    rules: BTreeMap<EntityClass, ClassRule>,
    response_rules: BTreeMap<EntityClass, ClassRule>,
    pub(crate) placeholder_key: Option<PlaceholderKey>,
    /// The classification ladder; `None` when the policy classifies nothing.
    pub(crate) classifier: Option<Classifier>,
    /// The injection and jailbreak guard; `None` when the policy has none.
    pub(crate) injection: Option<InjectionGuard>,
    pub(crate) allow: AllowList,
    pub(crate) approval_key: Option<ApprovalKey>,
}

impl PolicySet {
    /// Parses, verifies (when a policy key is configured), validates and
    /// compiles a policy document or signed pack.
    pub fn from_json(document: &[u8], secrets: &Secrets) -> Result<PolicySet, EngineError> {
        let value: serde_json::Value =
            serde_json::from_slice(document).map_err(|e| policy_error("$", e.to_string()))?;
        let public_key = secrets.policy_public_key.as_deref().map(PolicyKeyring::parse).transpose()?;
        let (doc, digest, signed_by) = match open_envelope(&value)? {
            Some(envelope) => {
                let signed_by = match &public_key {
                    Some(keyring) => Some(envelope.verify_with(keyring)?),
                    None => None,
                };
                let digest = policy_digest(&envelope.policy);
                let doc: PolicyDoc = serde_path_to_error::deserialize(envelope.policy).map_err(|e| {
                    let path = e.path().to_string();
                    let path = if path == "." { "policy".into() } else { format!("policy.{path}") };
                    EngineError::Policy { path, message: e.inner().to_string() }
                })?;
                (doc, digest, signed_by)
            }
            None => {
                if public_key.is_some() {
                    return Err(policy_error(
                        "$",
                        format!(
                            "{PUBLIC_KEY_VARIABLE} is set, so only a signed policy pack ({ENVELOPE_MEMBER}) is \
                             accepted; sign this policy with `meshward policy sign`"
                        ),
                    ));
                }
                // From the bytes, not the value: duplicate members are errors.
                let mut de = serde_json::Deserializer::from_slice(document);
                let doc: PolicyDoc = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                    let path = e.path().to_string();
                    EngineError::Policy {
                        path: if path == "." { "$".into() } else { path },
                        message: e.inner().to_string(),
                    }
                })?;
                (doc, policy_digest(&value), None)
            }
        };
        Self::compile(doc, digest, signed_by, secrets)
    }

    fn compile(
        doc: PolicyDoc,
        digest: String,
        signed_by: Option<String>,
        secrets: &Secrets,
    ) -> Result<PolicySet, EngineError> {
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
        let l = &doc.limits;
        let limits = Limits {
            max_body_bytes: l.max_body_bytes,
            max_json_depth: l.max_json_depth,
            max_messages: l.max_messages,
            max_text_parts: l.max_text_parts,
            max_string_bytes: l.max_string_bytes,
            max_findings: l.max_findings,
            max_stream_event_bytes: l.max_stream_event_bytes,
            max_hold_back_bytes: l.max_hold_back_bytes,
        };
        for (name, value) in [
            ("max_body_bytes", limits.max_body_bytes),
            ("max_messages", limits.max_messages),
            ("max_text_parts", limits.max_text_parts),
            ("max_string_bytes", limits.max_string_bytes),
            ("max_findings", limits.max_findings),
            ("max_stream_event_bytes", limits.max_stream_event_bytes),
        ] {
            if value == 0 {
                return Err(policy_error(&format!("limits.{name}"), "must be at least 1".into()));
            }
        }
        if limits.max_hold_back_bytes < Limits::MIN_HOLD_BACK_BYTES {
            return Err(policy_error(
                "limits.max_hold_back_bytes",
                format!("must be at least {} (an unfinished private key is held whole)", Limits::MIN_HOLD_BACK_BYTES),
            ));
        }
        if !(1..=1024).contains(&limits.max_json_depth) {
            return Err(policy_error("limits.max_json_depth", "must be between 1 and 1024".into()));
        }
        let identity = Identity::compile(&doc.identity)?;
        let common = Common {
            name: doc.name.clone(),
            version: doc.version.clone(),
            digest: digest.clone(),
            limits,
            audit: AuditConfig::compile(doc.audit)?,
        };
        let master = secrets.placeholder_key.as_deref().map(MasterKey::new).transpose()?;
        let approval_key = secrets
            .approval_key
            .as_deref()
            .map(ApprovalKey::new)
            .transpose()
            .map_err(|reason| EngineError::InvalidSecret { variable: APPROVAL_KEY_VARIABLE, reason })?;
        let keys = Keys { placeholder: master.as_ref(), approval: approval_key.as_ref() };

        let base_sections = Sections {
            mode: Layer::base(&doc.mode),
            detection: Layer::base(&doc.detection),
            classification: doc.classification.as_ref().map(Layer::base),
            injection: doc.injection.as_ref().map(Layer::base),
            allow: Layer::base(&doc.allow),
        };
        let base = Arc::new(Engine::compile_profile(&common, &base_sections, &identity.default_tenant, None, &keys)?);
        let mut tenants = BTreeMap::new();
        for (name, tenant) in &doc.tenants {
            let at = format!("tenants.{name}.");
            crate::tenant::check_name(name).map_err(|m| policy_error(&format!("tenants.{name}"), m))?;
            let sections = base_sections.refine(tenant.overrides(), &at);
            let own = Arc::new(Engine::compile_profile(&common, &sections, name, None, &keys)?);
            let mut roles = BTreeMap::new();
            for (role, refinement) in &tenant.roles {
                let at = format!("{at}roles.{role}.");
                crate::tenant::check_name(role)
                    .map_err(|m| policy_error(&format!("tenants.{name}.roles.{role}"), m))?;
                let sections = sections.refine(refinement.overrides(), &at);
                let engine = Engine::compile_profile(&common, &sections, name, Some(role), &keys)?;
                roles.insert(role.clone(), Arc::new(engine));
            }
            tenants.insert(name.clone(), TenantProfiles { own, roles });
        }
        Ok(PolicySet { name: doc.name, version: doc.version, digest, signed_by, identity, base, tenants })
    }

    /// The profile for a tenant and role, as the caller's identity names
    /// them (`None`: not stated). `roles` may list several (a claim such as
    /// `"admin editor"` or `"admin,editor"`); the first one the tenant
    /// refines wins.
    pub fn select(&self, tenant: Option<&str>, roles: Option<&str>) -> Result<&Arc<Engine>, UnknownTenant> {
        let tenant = tenant.map(str::trim).filter(|t| !t.is_empty());
        let profiles = match tenant {
            None => return Ok(&self.base),
            Some(name) => match self.tenants.get(name) {
                Some(profiles) => profiles,
                None if name == self.identity.default_tenant => return Ok(&self.base),
                None => {
                    return match self.identity.unknown_tenant {
                        crate::tenant::UnknownTenantRule::Default => Ok(&self.base),
                        crate::tenant::UnknownTenantRule::Deny => Err(UnknownTenant),
                    }
                }
            },
        };
        let chosen = roles
            .into_iter()
            .flat_map(|r| r.split(|c: char| c == ',' || c.is_whitespace()))
            .find_map(|role| profiles.roles.get(role));
        Ok(chosen.unwrap_or(&profiles.own))
    }

    /// The profile of requests that name no tenant.
    pub fn default_profile(&self) -> &Arc<Engine> {
        &self.base
    }

    /// Every compiled profile: the base, then each tenant and its roles.
    pub fn profiles(&self) -> impl Iterator<Item = &Engine> {
        let tenants = self.tenants.values().flat_map(|t| std::iter::once(&t.own).chain(t.roles.values()));
        std::iter::once(&self.base).chain(tenants).map(Arc::as_ref)
    }

    /// The profile of requests that name no tenant, owned.
    pub fn into_default_profile(self) -> Engine {
        Arc::try_unwrap(self.base).unwrap_or_else(|shared| (*shared).clone())
    }
}

/// The secrets profiles are compiled with.
struct Keys<'k> {
    placeholder: Option<&'k MasterKey>,
    approval: Option<&'k ApprovalKey>,
}

/// What every profile of a policy shares.
struct Common {
    name: String,
    version: String,
    digest: String,
    limits: Limits,
    audit: AuditConfig,
}

impl Engine {
    /// Parses, validates and compiles a policy document, and returns the
    /// profile of requests that name no tenant (see [`PolicySet`] for all).
    pub fn from_json(policy: &[u8], secrets: &Secrets) -> Result<Engine, EngineError> {
        PolicySet::from_json(policy, secrets).map(PolicySet::into_default_profile)
    }

    fn compile_profile(
        common: &Common,
        sections: &Sections<'_>,
        tenant: &str,
        role: Option<&str>,
        keys: &Keys<'_>,
    ) -> Result<Engine, EngineError> {
        let master = keys.placeholder;
        let detection = sections.detection.doc;
        let at = sections.detection.at.as_str();
        let mut rules = BTreeMap::new();
        let mut response_rules = BTreeMap::new();
        for (name, rule) in &detection.classes {
            let path = format!("{at}detection.classes.{name}");
            let Some(class) = EntityClass::from_name(name) else {
                let known: Vec<_> = EntityClass::ALL.iter().map(|c| c.name()).collect();
                return Err(policy_error(&path, format!("unknown class; known classes: {}", known.join(", "))));
            };
            let check = |value: Option<f32>, side: &str| match value {
                Some(v) if !(0.0..=1.0).contains(&v) => {
                    Err(policy_error(&format!("{path}{side}.min_confidence"), "must be between 0 and 1".into()))
                }
                _ => Ok(value),
            };
            let shared = check(rule.min_confidence, "")?;
            let resolve = |side: &Option<DirectionRuleDoc>, at: &str| -> Result<Option<ClassRule>, EngineError> {
                let own = side.as_ref().map(|d| check(d.min_confidence, at)).transpose()?.flatten();
                let action = side.as_ref().and_then(|d| d.action).or(rule.action);
                Ok(action.map(|action| ClassRule { action, min_confidence: own.or(shared).unwrap_or(0.0) }))
            };
            let request = resolve(&rule.request, ".request")?;
            let response = resolve(&rule.response, ".response")?;
            if request.is_none() && response.is_none() {
                return Err(policy_error(
                    &format!("{path}.action"),
                    "missing: give \"action\", or per direction \"request\"/\"response\" with an \"action\"".into(),
                ));
            }
            if let Some(r) = request {
                rules.insert(class, r);
            }
            if let Some(r) = response {
                response_rules.insert(class, r);
            }
        }

        let mut custom = Vec::new();
        for (i, c) in detection.custom.iter().enumerate() {
            let path = format!("{at}detection.custom[{i}]");
            if c.name.trim().is_empty() {
                return Err(policy_error(&format!("{path}.name"), "must not be empty".into()));
            }
            let Some(class) = EntityClass::from_name(&c.class) else {
                let known: Vec<_> = EntityClass::ALL.iter().map(|c| c.name()).collect();
                return Err(policy_error(
                    &format!("{path}.class"),
                    format!("unknown class; known classes: {}", known.join(", ")),
                ));
            };
            if !rules.contains_key(&class) && !response_rules.contains_key(&class) {
                return Err(policy_error(
                    &format!("{path}.class"),
                    format!("class {} has no rule in detection.classes, so its findings would have no action", c.class),
                ));
            }
            let confidence = c.confidence.unwrap_or(0.9);
            if !(0.0..=1.0).contains(&confidence) {
                return Err(policy_error(&format!("{path}.confidence"), "must be between 0 and 1".into()));
            }
            let spec = CustomSpec {
                name: c.name.clone(),
                class,
                pattern: c.pattern.clone(),
                keywords: c.keywords.clone(),
                confidence,
                case_insensitive: c.case_insensitive.unwrap_or(c.pattern.is_none()),
            };
            let detector = CustomDetector::compile(&spec).map_err(|e| {
                let member = match (&e, c.pattern.is_some()) {
                    (crate::detect::CustomError::Pattern(_), _) | (_, true) => "pattern",
                    (crate::detect::CustomError::Keywords(_), _) => "keywords",
                    _ => "",
                };
                let at = if member.is_empty() { path.clone() } else { format!("{path}.{member}") };
                policy_error(&at, e.to_string())
            })?;
            custom.push(detector);
        }

        let placeholder_key = match (master, replaces_values(&rules, &response_rules)) {
            (Some(master), _) => Some(master.tenant_key(tenant)),
            (None, true) => {
                return Err(EngineError::MissingSecret {
                    variable: KEY_VARIABLE,
                    reason: "the policy redacts values and placeholders are keyed with it",
                })
            }
            (None, false) => None,
        };

        let guard_error = |at: &str, member: &str, e: ConfigError| {
            let path = if e.path.is_empty() { format!("{at}{member}") } else { format!("{at}{member}.{}", e.path) };
            EngineError::Policy { path, message: e.message }
        };
        let classifier = match &sections.classification {
            Some(layer) => {
                Some(Classifier::compile(layer.doc).map_err(|e| guard_error(&layer.at, "classification", e))?)
            }
            None => None,
        };
        let injection = match &sections.injection {
            Some(layer) => {
                Some(InjectionGuard::compile(layer.doc).map_err(|e| guard_error(&layer.at, "injection", e))?)
            }
            None => None,
        };
        let allow = AllowList::compile(sections.allow.doc).map_err(|e| guard_error(&sections.allow.at, "allow", e))?;
        let approval_key = match (keys.approval, allow.needs_approval_key()) {
            (Some(key), _) => Some(key.clone()),
            (None, true) => {
                return Err(EngineError::MissingSecret {
                    variable: APPROVAL_KEY_VARIABLE,
                    reason: "the policy has approval-required tools and approval tokens are checked with it",
                })
            }
            (None, false) => None,
        };

        Ok(Engine {
            classifier,
            injection,
            allow,
            approval_key,
            name: common.name.clone(),
            version: common.version.clone(),
            digest: common.digest.clone(),
            tenant: tenant.to_owned(),
            role: role.map(str::to_owned),
            mode: *sections.mode.doc,
            limits: common.limits,
            audit: common.audit.clone(),
            detectors: DetectorSet::with_custom(rules.keys().chain(response_rules.keys()).copied(), custom),
            rules,
            response_rules,
            placeholder_key,
        })
    }

    /// Whether this profile checks approval tokens, so needs `MESHWARD_APPROVAL_KEY`.
    pub fn checks_approvals(&self) -> bool {
        self.allow.needs_approval_key()
    }

    /// Whether this profile replaces values, so needs `MESHWARD_PLACEHOLDER_KEY`.
    pub fn redacts(&self) -> bool {
        replaces_values(&self.rules, &self.response_rules)
    }

    pub fn rule(&self, class: EntityClass) -> Option<ClassRule> {
        self.rules.get(&class).copied()
    }

    /// The classes scanned in model output, in [`EntityClass`] order.
    pub fn response_classes(&self) -> impl Iterator<Item = EntityClass> + '_ {
        self.response_rules.keys().copied()
    }

    /// The rule for `class` in one direction (`None`: not scanned there).
    pub fn rule_for(&self, class: EntityClass, direction: Direction) -> Option<ClassRule> {
        match direction {
            Direction::Request => self.rules.get(&class).copied(),
            Direction::Response => self.response_rules.get(&class).copied(),
        }
    }

    /// Drops a finding below its class's minimum confidence (or of a class
    /// not scanned in `direction`) and ranks the rest by action severity,
    /// for [`DetectorSet::scan_ranked`].
    pub fn rank(&self, f: &Finding, direction: Direction) -> Option<u8> {
        self.rule_for(f.class, direction).filter(|r| f.confidence >= r.min_confidence).map(|r| r.action.severity())
    }

    /// [`Engine::scan_text`] for one direction's rules.
    pub fn scan_text_for(&self, text: &str, direction: Direction) -> Vec<Finding> {
        let mut found = Vec::new();
        self.detectors.scan_ranked(text, &mut found, |f| self.rank(f, direction));
        found
    }

    /// The findings in plain text under this policy's classes and minimum
    /// confidences (what `meshward scan --policy` reports).
    pub fn scan_text(&self, text: &str) -> Vec<Finding> {
        self.scan_text_for(text, Direction::Request)
    }
}

fn replaces_values(
    rules: &BTreeMap<EntityClass, ClassRule>,
    response_rules: &BTreeMap<EntityClass, ClassRule>,
) -> bool {
    rules
        .values()
        .chain(response_rules.values())
        .any(|r| matches!(r.action, ClassAction::Redact | ClassAction::Reversible))
}

fn policy_error(path: &str, message: String) -> EngineError {
    EngineError::Policy { path: path.to_owned(), message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        Secrets { placeholder_key: Some("test-placeholder-key-0123456789".into()), ..Secrets::default() }
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
    fn per_direction_rules_inherit_and_override() {
        let engine = compile(
            r#"{"meshward_policy":1,"name":"n","version":"1","detection":{"classes":{
                "EMAIL":{"action":"reversible","min_confidence":0.5,"response":{"action":"flag"}},
                "SECRET":{"action":"block","request":{"min_confidence":0.8}},
                "PERSON":{"response":{"action":"redact","min_confidence":0.7}}}}}"#,
        )
        .unwrap();
        let email_req = engine.rule_for(EntityClass::Email, Direction::Request).unwrap();
        assert_eq!((email_req.action, email_req.min_confidence), (ClassAction::Reversible, 0.5));
        let email_resp = engine.rule_for(EntityClass::Email, Direction::Response).unwrap();
        assert_eq!((email_resp.action, email_resp.min_confidence), (ClassAction::Flag, 0.5));
        assert_eq!(engine.rule_for(EntityClass::Secret, Direction::Request).unwrap().min_confidence, 0.8);
        assert_eq!(engine.rule_for(EntityClass::Secret, Direction::Response).unwrap().min_confidence, 0.0);
        assert!(engine.rule_for(EntityClass::Person, Direction::Request).is_none());
        assert_eq!(engine.rule_for(EntityClass::Person, Direction::Response).unwrap().action, ClassAction::Redact);
        // The request pipeline only sees request rules.
        assert!(engine.scan_text("Hi Priya, mail a@b.co").iter().all(|f| f.class == EntityClass::Email));
        let resp = engine.scan_text_for("Hi Priya, mail a@b.co", Direction::Response);
        assert!(resp.iter().any(|f| f.class == EntityClass::Person));
    }

    #[test]
    fn class_rules_need_an_action_somewhere() {
        let base = r#""meshward_policy":1,"name":"n","version":"1""#;
        let doc = |classes: &str| format!(r#"{{{base},"detection":{{"classes":{{{classes}}}}}}}"#);
        assert_eq!(error_path(&doc(r#""EMAIL":{}"#)), "detection.classes.EMAIL.action");
        assert_eq!(error_path(&doc(r#""EMAIL":{"request":{"min_confidence":0.5}}"#)), "detection.classes.EMAIL.action");
        assert_eq!(
            error_path(&doc(r#""EMAIL":{"action":"flag","response":{"min_confidence":7}}"#)),
            "detection.classes.EMAIL.response.min_confidence"
        );
        assert_eq!(error_path(&doc(r#""EMAIL":{"action":"flag","sideways":{}}"#)), "detection.classes.EMAIL.sideways");
    }

    #[test]
    fn custom_detectors_compile_and_errors_name_the_path() {
        let base = r#""meshward_policy":1,"name":"n","version":"1""#;
        let doc = |custom: &str| {
            format!(
                r#"{{{base},"detection":{{"classes":{{"CUSTOM":{{"action":"redact"}},"SECRET":{{"action":"block"}}}},"custom":[{custom}]}}}}"#
            )
        };
        let engine = compile(&doc(r#"{"name":"employee_id","class":"CUSTOM","pattern":"\\bEMP-[0-9]{6}\\b"},
               {"name":"codenames","class":"SECRET","keywords":["Project Falcon"],"confidence":0.95}"#))
        .unwrap();
        let found = engine.scan_text("EMP-123456 works on project falcon");
        let got: Vec<_> = found.iter().map(|f| (f.class, f.subtype.as_deref().unwrap_or(""))).collect();
        assert_eq!(got, [(EntityClass::Custom, "employee_id"), (EntityClass::Secret, "codenames")]);
        assert_eq!(
            error_path(&doc(r#"{"name":"x","class":"CUSTOM","pattern":"(unclosed"}"#)),
            "detection.custom[0].pattern"
        );
        assert_eq!(
            error_path(&doc(
                r#"{"name":"ok","class":"CUSTOM","pattern":"a"},{"name":"x","class":"CUSTOM","keywords":[""]}"#
            )),
            "detection.custom[1].keywords"
        );
        assert_eq!(error_path(&doc(r#"{"name":"x","class":"FAX","pattern":"a"}"#)), "detection.custom[0].class");
        assert_eq!(error_path(&doc(r#"{"name":"x","class":"PERSON","pattern":"a"}"#)), "detection.custom[0].class");
        assert_eq!(error_path(&doc(r#"{"name":"x","class":"CUSTOM"}"#)), "detection.custom[0]");
        assert_eq!(
            error_path(&doc(r#"{"name":"x","class":"CUSTOM","pattern":"a","confidence":1.5}"#)),
            "detection.custom[0].confidence"
        );
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
