//! Stream framings, parsed incrementally: bytes go in as the host delivers
//! them, complete frames come out, and a partial frame waits in the parser
//! ("incomplete, need more bytes"). None of them buffers a whole stream.
//!
//! - [`sse`]: `text/event-stream` (OpenAI, Anthropic, Gemini `alt=sse`).
//! - [`json_array`]: Gemini's default streaming, one JSON array delivered
//!   piecemeal; each top-level element comes out as soon as it is complete.
//! - [`eventstream`]: AWS `application/vnd.amazon.eventstream` frames
//!   (Bedrock `ConverseStream`), decoded with CRC checks and re-encoded with
//!   fresh CRCs.
//! - [`holdback`]: the per-text-channel hold-back window that lets an
//!   entity or placeholder split across deltas still be redacted or restored.

pub mod eventstream;
pub mod holdback;
pub mod json_array;
pub mod sse;
