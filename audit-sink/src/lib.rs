//! meshward-sink: the audit sink.
//!
//! Layout (read in this order):
//! - [`merkle`]: RFC 6962 tree, inclusion and consistency proofs;
//! - [`note`]: C2SP signed notes and checkpoints with ed25519 keys;
//! - [`leaf`]: the leaf format — canonical one-line JSON;
//! - [`segment`]: on-disk framing, recovery of a torn tail, corruption refusal;
//! - [`storage`]: the store — group commit, tree and index, checkpoints;
//! - [`gaps`]: sequence gaps per filter instance;
//! - [`auth`]: reader keys;
//! - [`metrics`]: Prometheus text;
//! - [`server`]: the HTTP API;
//! - [`verify`]: the offline verifier.
//!
//! One error enum: [`SinkError`].

pub mod auth;
pub mod gaps;
pub mod leaf;
pub mod merkle;
pub mod metrics;
pub mod note;
pub mod segment;
pub mod server;
pub mod storage;
pub mod verify;

mod error;

pub use error::SinkError;

/// Fills `buf` from the operating system's random source.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), SinkError> {
    getrandom::fill(buf).map_err(|e| SinkError::Config(format!("no OS randomness: {e}")))
}
