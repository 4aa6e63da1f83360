//! meshward's audit protocol, shared by the filter (wasm32-wasip1) and the
//! audit sink (native). It is pure: no clock, no I/O, no async.
//!
//! - [`event`]: the decision event the filter emits for every request. It
//!   carries counts, verdicts and hashes, never a raw detected value.
//! - [`webhook`]: Standard Webhooks v1 signing and verification
//!   (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`),
//!   with constant-time comparison and the 300 s tolerance.
//! - [`time`]: RFC 3339 formatting/parsing for event timestamps, without a
//!   clock or a date crate (the filter gets "now" from the host).
//!
//! One error enum for the crate: [`Error`].

pub mod event;
pub mod time;
pub mod webhook;

mod error;

pub use error::Error;
pub use event::{
    Action, Actor, Classification, CorrelationTag, DecisionEvent, GuardOutcome, GuardStatus, PolicyRef, Usage,
    SCHEMA_VERSION,
};
pub use webhook::{Secret, TOLERANCE_SECS};
