use std::fmt;
use std::path::PathBuf;

/// Every error of the sink crate.
#[derive(Debug)]
pub enum SinkError {
    /// An I/O operation failed; `context` says what was being done.
    Io { context: String, source: std::io::Error },
    /// The log on disk is damaged somewhere other than a torn tail.
    Corrupt { file: PathBuf, offset: u64, what: String },
    /// Startup or configuration problem (bad flag, missing secret, bad key).
    Config(String),
    /// A signed note, checkpoint or key does not parse or does not verify.
    Note(String),
    /// A Merkle proof was requested for sizes or indexes the tree cannot serve.
    Proof(String),
    /// The log cannot accept writes any more (an earlier write or fsync failed).
    Unavailable(String),
    /// The state on disk contradicts itself (e.g. the last checkpoint does not
    /// match the log).
    Inconsistent(String),
    /// A reader key problem.
    Auth(String),
    /// The webhook/event protocol rejected something.
    Proto(meshward_audit_proto::Error),
}

impl SinkError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> SinkError {
        SinkError::Io { context: context.into(), source }
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkError::Io { context, source } => write!(f, "{context}: {source}"),
            SinkError::Corrupt { file, offset, what } => write!(
                f,
                "audit log is corrupt in {} at byte offset {offset}: {what}. \
                 This is not a torn tail, so meshward-sink will not truncate it; \
                 restore the file from a replica or backup, or investigate before starting",
                file.display()
            ),
            SinkError::Config(m) => write!(f, "configuration error: {m}"),
            SinkError::Note(m) => write!(f, "signed note: {m}"),
            SinkError::Proof(m) => write!(f, "proof: {m}"),
            SinkError::Unavailable(m) => write!(f, "log unavailable: {m}"),
            SinkError::Inconsistent(m) => write!(f, "inconsistent state: {m}"),
            SinkError::Auth(m) => write!(f, "reader keys: {m}"),
            SinkError::Proto(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SinkError::Io { source, .. } => Some(source),
            SinkError::Proto(e) => Some(e),
            _ => None,
        }
    }
}

impl From<meshward_audit_proto::Error> for SinkError {
    fn from(e: meshward_audit_proto::Error) -> Self {
        SinkError::Proto(e)
    }
}
