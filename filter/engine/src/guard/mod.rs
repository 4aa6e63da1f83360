//! Guards: deterministic checks that a prompt cannot argue with.
//!
//! Detection ([`crate::detect`]) finds values; guards decide about the
//! request as a whole — how sensitive it is ([`classify`]), whether it tries
//! to take over the model ([`injection`]), and whether it stays inside what
//! the tenant may use ([`allow`]). Each guard compiles its own member of the
//! policy once, at configure time, and is then only read.

pub mod allow;
pub mod classify;
pub mod injection;

/// A guard configuration error. `path` is relative to the guard's own
/// member of the policy (`levels[2]`, `tools.allow[0].name`); the policy
/// loader prefixes it with where that member sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError { path: path.into(), message: message.into() }
    }
}

/// Why a guard refused. `rule` is a stable identifier (for audit and
/// metrics); `detail` is safe to show the client: it names the rule, never
/// the sensitive input that tripped it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: String,
    pub detail: String,
}
