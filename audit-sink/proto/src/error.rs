use std::fmt;

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The webhook secret is not `whsec_` + base64 of at least one byte.
    InvalidSecret(&'static str),
    /// `webhook-timestamp` is not a decimal number of Unix seconds.
    InvalidTimestamp,
    /// `|now - webhook-timestamp|` exceeds the tolerance.
    TimestampOutOfTolerance { timestamp: i64, now: i64 },
    /// No `v1,` entry of `webhook-signature` matches.
    NoMatchingSignature,
    /// A webhook header value is empty or too long.
    InvalidHeader(&'static str),
    /// The body is not a decision event or a JSON array of them.
    InvalidEvent(String),
    /// A timestamp is not RFC 3339.
    InvalidTime(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidSecret(why) => write!(f, "invalid webhook secret: {why}"),
            Error::InvalidTimestamp => f.write_str("webhook-timestamp is not Unix seconds"),
            Error::TimestampOutOfTolerance { timestamp, now } => write!(
                f,
                "webhook-timestamp {timestamp} is more than {} s from now ({now})",
                crate::webhook::TOLERANCE_SECS
            ),
            Error::NoMatchingSignature => f.write_str("no webhook-signature matches"),
            Error::InvalidHeader(name) => write!(f, "invalid {name} header"),
            Error::InvalidEvent(why) => write!(f, "invalid decision event: {why}"),
            Error::InvalidTime(s) => write!(f, "not an RFC 3339 timestamp: {s:?}"),
        }
    }
}

impl std::error::Error for Error {}
