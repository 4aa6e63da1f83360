//! meshward's decision engine: everything that decides, nothing that talks to
//! a host. The proxy-wasm glue (`meshward-filter`), the CLI (`meshward`) and
//! the tests all call the same functions here, so a decision made in Envoy is
//! the decision `meshward check` shows.
//!
//! Layout, following the data flow of a request:
//!
//! - [`policy`]: the policy document (JSON), validated and compiled once at
//!   configure time into an [`Engine`].
//! - [`json`]: a single-pass, non-recursive JSON tokenizer over the raw body
//!   bytes. It validates the document and reports every string leaf with its
//!   path and byte span, so nothing is parsed into a DOM or re-serialised.
//! - [`codec`]: provider codecs. They decide which string leaves are text a
//!   model will read (and in which role) for OpenAI, or every leaf for
//!   unknown JSON.
//! - [`detect`]: detectors (e-mail, payment cards, ...) over one text part.
//! - [`guard`]: guards over the whole request: classification, injection,
//!   allow-lists.
//! - [`placeholder`]: typed, keyed placeholders such as `[EMAIL_1a2b3c]`.
//! - [`request`]: the request pipeline: limits → codec → detect → splice the
//!   replacements into the original bytes → a [`Decision`].
//! - [`problem`]: RFC 7807 problem documents for every denial.
//! - [`restore`]: the per-request map behind reversible placeholders.
//! - [`stream`]: incremental stream framings (SSE, Gemini JSON array, AWS
//!   event-stream) and the per-channel hold-back window.
//! - [`response`]: the response pipeline: restore → detect → rewrite, for
//!   buffered JSON ([`Engine::evaluate_response`]) and streams
//!   ([`response::ResponseStream`]), per provider API.

// This code runs inside every sidecar: a panic kills the VM for all later
// requests, so nothing outside tests may unwrap, expect, panic or index.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod audit;
pub mod codec;
pub mod detect;
mod error;
pub mod guard;
pub mod json;
pub mod placeholder;
pub mod policy;
pub mod problem;
pub mod request;
pub mod response;
pub mod restore;
pub mod signing;
pub mod stream;
pub mod tenant;
pub mod utf8;

pub use error::EngineError;
pub use policy::{Engine, PolicySet};
pub use problem::Problem;
pub use request::{Decision, RequestMeta, Verdict};
