//! Who is calling: how the policy's `identity` section finds a request's
//! tenant, role and subject.
//!
//! Each comes from a claim of the JWT that Envoy's `jwt_authn` filter
//! verified (it writes the payload into dynamic metadata under the
//! provider's `payload_in_metadata` key), or from a header that a trusted
//! component in front of the filter sets. The JWT wins when both are
//! configured and present: a header is only as trustworthy as whatever
//! strips it from outside requests.
//!
//! ```json
//! "identity": {
//!   "tenant": {"jwt": {"payload_key": "jwt_payload", "claim": "org"}, "header": "x-tenant-id"},
//!   "role": {"jwt": {"payload_key": "jwt_payload", "claim": "role"}},
//!   "subject": {"jwt": {"payload_key": "jwt_payload", "claim": "sub"}},
//!   "default_tenant": "default",
//!   "unknown_tenant": "deny"
//! }
//! ```

use serde::Deserialize;

use crate::policy::DEFAULT_TENANT;
use crate::EngineError;

/// The Envoy filter whose dynamic metadata carries verified JWT payloads.
pub const JWT_AUTHN_FILTER: &str = "envoy.filters.http.jwt_authn";
/// Longest tenant, role or subject value taken from a request; longer ones
/// are treated as absent (they name nothing the policy knows).
pub const MAX_IDENTITY_LEN: usize = 256;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IdentityDoc {
    #[serde(default)]
    tenant: Option<ClaimSourceDoc>,
    #[serde(default)]
    role: Option<ClaimSourceDoc>,
    #[serde(default)]
    subject: Option<ClaimSourceDoc>,
    #[serde(default)]
    default_tenant: Option<String>,
    #[serde(default)]
    unknown_tenant: UnknownTenantRule,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimSourceDoc {
    #[serde(default)]
    jwt: Option<JwtClaimDoc>,
    #[serde(default)]
    header: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JwtClaimDoc {
    payload_key: String,
    claim: String,
}

/// What happens to a request whose tenant the policy does not list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownTenantRule {
    /// It gets the base policy (the default tenant's).
    #[default]
    Default,
    /// It is refused with an `unknown-tenant` problem.
    Deny,
}

/// The compiled `identity` section.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub tenant: ClaimSource,
    pub role: ClaimSource,
    pub subject: ClaimSource,
    pub default_tenant: String,
    pub unknown_tenant: UnknownTenantRule,
}

/// Where one identity value comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimSource {
    pub jwt: Option<JwtClaim>,
    /// Lower-case header name.
    pub header: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtClaim {
    pub payload_key: String,
    pub claim: String,
}

impl JwtClaim {
    /// The Envoy property path of the claim.
    pub fn property_path(&self) -> [&str; 5] {
        ["metadata", "filter_metadata", JWT_AUTHN_FILTER, &self.payload_key, &self.claim]
    }
}

impl ClaimSource {
    pub fn is_configured(&self) -> bool {
        self.jwt.is_some() || self.header.is_some()
    }

    /// The value, given what the glue read from each place: the JWT claim
    /// first, then the header. Empty and over-long values count as absent.
    pub fn resolve<'a>(&self, from_jwt: Option<&'a str>, from_header: Option<&'a str>) -> Option<&'a str> {
        let usable = |v: Option<&'a str>| v.map(str::trim).filter(|v| !v.is_empty() && v.len() <= MAX_IDENTITY_LEN);
        let jwt = if self.jwt.is_some() { usable(from_jwt) } else { None };
        jwt.or(if self.header.is_some() { usable(from_header) } else { None })
    }
}

impl Identity {
    pub(crate) fn compile(doc: &IdentityDoc) -> Result<Identity, EngineError> {
        let source = |doc: &Option<ClaimSourceDoc>, name: &str| -> Result<ClaimSource, EngineError> {
            let Some(doc) = doc else { return Ok(ClaimSource::default()) };
            let at = format!("identity.{name}");
            if doc.jwt.is_none() && doc.header.is_none() {
                return Err(error(&at, "give \"jwt\", \"header\" or both"));
            }
            let jwt = match &doc.jwt {
                Some(j) if j.payload_key.trim().is_empty() => {
                    return Err(error(
                        &format!("{at}.jwt.payload_key"),
                        "must name the jwt_authn payload_in_metadata key",
                    ))
                }
                Some(j) if j.claim.trim().is_empty() => {
                    return Err(error(&format!("{at}.jwt.claim"), "must not be empty"))
                }
                Some(j) => Some(JwtClaim { payload_key: j.payload_key.clone(), claim: j.claim.clone() }),
                None => None,
            };
            let header = match &doc.header {
                Some(h) if !is_header_name(h) => {
                    return Err(error(&format!("{at}.header"), "must be an HTTP header name (letters, digits, '-')"))
                }
                Some(h) if h.starts_with(':') || h.eq_ignore_ascii_case("authorization") => {
                    return Err(error(&format!("{at}.header"), "must be a header set by a trusted component"))
                }
                Some(h) => Some(h.to_ascii_lowercase()),
                None => None,
            };
            Ok(ClaimSource { jwt, header })
        };
        let default_tenant = doc.default_tenant.clone().unwrap_or_else(|| DEFAULT_TENANT.to_owned());
        check_name(&default_tenant).map_err(|m| error("identity.default_tenant", &m))?;
        Ok(Identity {
            tenant: source(&doc.tenant, "tenant")?,
            role: source(&doc.role, "role")?,
            subject: source(&doc.subject, "subject")?,
            default_tenant,
            unknown_tenant: doc.unknown_tenant,
        })
    }
}

/// Tenant and role names: short, printable, safe in metric names and paths.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@'));
    if ok {
        Ok(())
    } else {
        Err("must be 1 to 64 characters of letters, digits and - _ . : @".into())
    }
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn error(path: &str, message: &str) -> EngineError {
    EngineError::Policy { path: path.to_owned(), message: message.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicySet, Secrets};

    fn set(identity: &str, tenants: &str) -> Result<PolicySet, EngineError> {
        let json = format!(
            r#"{{"meshward_policy":1,"name":"t","version":"1","identity":{identity},"tenants":{tenants},
               "detection":{{"classes":{{"EMAIL":{{"action":"flag"}}}}}}}}"#
        );
        PolicySet::from_json(json.as_bytes(), &Secrets::default())
    }

    fn path(result: Result<PolicySet, EngineError>) -> String {
        match result {
            Err(EngineError::Policy { path, .. }) => path,
            other => panic!("expected a policy error, got {other:?}"),
        }
    }

    const TENANTS: &str = r#"{
        "acme": {"mode": "monitor", "roles": {"admin": {"detection": {"classes": {}}}}},
        "globex": {"detection": {"classes": {"EMAIL": {"action": "block"}}}}
    }"#;

    #[test]
    fn tenants_and_roles_replace_sections_whole() {
        let set = set(r#"{"tenant":{"header":"X-Tenant"}}"#, TENANTS).unwrap();
        assert_eq!(set.identity.tenant.header.as_deref(), Some("x-tenant"));
        let base = set.select(None, None).unwrap();
        assert_eq!((base.tenant.as_str(), base.mode), ("default", crate::policy::Mode::Enforce));
        let acme = set.select(Some("acme"), None).unwrap();
        assert_eq!((acme.tenant.as_str(), acme.role.as_deref()), ("acme", None));
        assert_eq!(acme.mode, crate::policy::Mode::Monitor);
        // acme inherits the base detection section; its admin role replaces it.
        assert!(acme.rule(crate::detect::EntityClass::Email).is_some());
        let admin = set.select(Some("acme"), Some("viewer, admin")).unwrap();
        assert_eq!(admin.role.as_deref(), Some("admin"));
        assert_eq!(admin.mode, crate::policy::Mode::Monitor, "the role inherits its tenant's mode");
        assert!(admin.rule(crate::detect::EntityClass::Email).is_none());
        // A role the tenant does not refine gets the tenant's profile.
        assert_eq!(set.select(Some("acme"), Some("viewer")).unwrap().role, None);
        let globex = set.select(Some("globex"), Some("admin")).unwrap();
        assert_eq!(globex.rule(crate::detect::EntityClass::Email).unwrap().action, crate::policy::ClassAction::Block);
        assert_eq!(set.profiles().count(), 4);
    }

    #[test]
    fn unknown_tenants_get_the_default_or_are_denied() {
        let lenient = set(r#"{"tenant":{"header":"x-tenant"}}"#, TENANTS).unwrap();
        assert_eq!(lenient.select(Some("initech"), None).unwrap().tenant, "default");
        assert_eq!(lenient.select(Some("  "), None).unwrap().tenant, "default");
        let strict = set(r#"{"tenant":{"header":"x-tenant"},"unknown_tenant":"deny"}"#, TENANTS).unwrap();
        assert!(strict.select(Some("initech"), None).is_err());
        assert_eq!(strict.select(None, None).unwrap().tenant, "default");
        assert_eq!(strict.select(Some("default"), None).unwrap().tenant, "default");
        let renamed = set(r#"{"default_tenant":"shared","unknown_tenant":"deny"}"#, "{}").unwrap();
        assert_eq!(renamed.select(Some("shared"), None).unwrap().tenant, "shared");
    }

    #[test]
    fn jwt_claims_win_over_headers() {
        let set =
            set(r#"{"tenant":{"jwt":{"payload_key":"jwt_payload","claim":"org"},"header":"x-tenant"}}"#, "{}").unwrap();
        let source = &set.identity.tenant;
        assert_eq!(
            source.jwt.as_ref().unwrap().property_path(),
            ["metadata", "filter_metadata", "envoy.filters.http.jwt_authn", "jwt_payload", "org"]
        );
        assert_eq!(source.resolve(Some("acme"), Some("evil")), Some("acme"));
        assert_eq!(source.resolve(None, Some("globex")), Some("globex"));
        assert_eq!(source.resolve(Some(""), None), None);
        let long = "x".repeat(MAX_IDENTITY_LEN + 1);
        assert_eq!(source.resolve(Some(&long), None), None);
        // A header is not read unless configured.
        assert_eq!(ClaimSource::default().resolve(Some("a"), Some("b")), None);
    }

    #[test]
    fn identity_errors_name_the_path() {
        assert_eq!(path(set(r#"{"tenant":{}}"#, "{}")), "identity.tenant");
        assert_eq!(path(set(r#"{"tenant":{"header":"x tenant"}}"#, "{}")), "identity.tenant.header");
        assert_eq!(path(set(r#"{"role":{"header":"authorization"}}"#, "{}")), "identity.role.header");
        assert_eq!(
            path(set(r#"{"tenant":{"jwt":{"payload_key":"","claim":"org"}}}"#, "{}")),
            "identity.tenant.jwt.payload_key"
        );
        assert_eq!(path(set(r#"{"unknown_tenant":"maybe"}"#, "{}")), "identity.unknown_tenant");
        assert_eq!(path(set("{}", r#"{"bad name":{}}"#)), "tenants.bad name");
        assert_eq!(path(set("{}", r#"{"acme":{"roles":{"r":{"mode":"loud"}}}}"#)), "tenants.acme.roles.r.mode");
        assert_eq!(
            path(set("{}", r#"{"acme":{"detection":{"classes":{"FAX":{"action":"flag"}}}}}"#)),
            "tenants.acme.detection.classes.FAX"
        );
        assert_eq!(
            path(set("{}", r#"{"acme":{"roles":{"r":{"detection":{"classes":{"EMAIL":{}}}}}}}"#)),
            "tenants.acme.roles.r.detection.classes.EMAIL.action"
        );
    }

    #[test]
    fn each_tenant_keys_its_own_placeholders() {
        let json = r#"{"meshward_policy":1,"name":"t","version":"1",
            "detection":{"classes":{"EMAIL":{"action":"redact"}}},"tenants":{"acme":{}}}"#;
        let secrets =
            Secrets { placeholder_key: Some("tenant-test-key-0123456789abcdef".into()), ..Secrets::default() };
        let set = PolicySet::from_json(json.as_bytes(), &secrets).unwrap();
        let meta = crate::RequestMeta { request_id: "r", path: "/x", ..Default::default() };
        let body = b"mail a.person@example.com";
        let out = |engine: &crate::Engine| match engine.evaluate_request(&meta, body).verdict {
            crate::Verdict::Rewrite(b) => String::from_utf8(b).unwrap(),
            other => panic!("{other:?}"),
        };
        let (base, acme) = (out(set.select(None, None).unwrap()), out(set.select(Some("acme"), None).unwrap()));
        assert!(base.starts_with("mail [EMAIL_") && acme.starts_with("mail [EMAIL_"));
        assert_ne!(base, acme, "the same value must not link across tenants");
    }
}
