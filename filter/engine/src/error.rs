use std::fmt;

/// Everything that can go wrong while building an [`crate::Engine`].
///
/// Per-request failures are not errors: they become a
/// [`crate::Verdict::Block`] carrying a problem document, because the filter
/// must answer every request and never pass one through on failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// The policy is not valid JSON or does not match the policy model.
    /// `path` is the JSON path of the offending member (`$` for the root).
    Policy { path: String, message: String },
    /// A secret the policy needs is missing from the VM environment.
    MissingSecret { variable: &'static str, reason: &'static str },
    /// A secret is present but unusable (too short, wrong shape).
    InvalidSecret { variable: &'static str, reason: String },
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Policy { path, message } => write!(f, "policy error at {path}: {message}"),
            EngineError::MissingSecret { variable, reason } => {
                write!(f, "environment variable {variable} is not set; {reason}")
            }
            EngineError::InvalidSecret { variable, reason } => {
                write!(f, "environment variable {variable} is unusable: {reason}")
            }
        }
    }
}

impl std::error::Error for EngineError {}
