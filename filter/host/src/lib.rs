//! A proxy-wasm host on wasmtime that emulates Envoy, for meshward's
//! integration tests and benchmarks.
//!
//! It loads a real `.wasm` (the release filter, or hand-written WAT test
//! guests), implements proxy-wasm ABI 0.2.1 — the one the Rust SDK
//! `proxy-wasm` 0.2.5 targets — plus the WASI preview1 subset Rust's std
//! needs on `wasm32-wasip1`, and drives HTTP streams with Envoy's
//! filter-manager semantics (see [`http`](crate::Exchange) for the exact
//! rules: a paused headers callback stalls its direction — no body
//! callbacks until the filter resumes —, body buffering with total sizes,
//! `end_of_stream` with trailers, what reaches upstream and when, local
//! replies passing through the response callbacks and resetting a started
//! upstream request, buffer limits).
//!
//! # Layout
//!
//! * `abi` — ABI constants, [`HeaderMap`], the pair serialization, Envoy's
//!   `set_buffer_bytes` rule ([`apply_set_buffer`]).
//! * `hostcalls` — every host function, bounds-checked: a bad guest pointer
//!   is `INVALID_MEMORY_ACCESS` (WASI `FAULT`), never a host panic.
//! * `plugin` — [`CompiledModule`] (compile once, instantiate many),
//!   [`PluginBuilder`], [`Plugin`] (VM + root context).
//! * `http` — [`Exchange`]: one HTTP stream.
//! * `state` — store data and the [`SharedState`] several plugins (Envoy
//!   workers) can share.
//!
//! # Example
//!
//! ```no_run
//! use meshward_wasm_host::{CompiledModule, Plugin, HostError};
//!
//! # fn main() -> Result<(), HostError> {
//! // Compile once (cached per process), build as many plugins as needed.
//! let module = CompiledModule::meshward_filter()?; // Err(FilterNotBuilt): run `make wasm`
//! let plugin = Plugin::builder_from(&module)
//!     .plugin_config(std::fs::read("policies/default.json").unwrap_or_default())
//!     .env("MESHWARD_PLACEHOLDER_KEY", "test-key")
//!     .property(&["xds", "cluster_name"], "openai")
//!     .build()?; // Err(HostError::ConfigureRejected) when the filter refuses it
//!
//! let mut ex = plugin.http_context()?;
//! ex.request_headers(&[(":method", "POST"), (":path", "/v1/chat/completions"),
//!                      (":authority", "api.openai.com"), ("content-type", "application/json")], false)?;
//! let started = ex.upstream_request_headers(); // Continue: headers went upstream already
//! ex.request_body(br#"{"messages":[{"role":"user","#, false)?; // Pause: buffered
//! ex.request_body(br#""content":"mail bob@example.com"}]}"#, true)?;
//! let upstream_body = ex.upstream_request_body();
//! let problem = ex.local_response();
//! let reset = ex.upstream_request_reset(); // a denial resets the started upstream request
//! ex.receive_response(&[(":status", "200")], b"{}", 0)?;
//! let client_body = ex.downstream_response_body();
//! ex.finish()?; // proxy_on_log, proxy_on_done, proxy_on_delete
//!
//! // One-shot: a whole request in 7-byte chunks.
//! let ex = plugin.send_request(&[(":method", "POST"), (":path", "/")], b"{}", 7)?;
//! # let _ = (started, upstream_body, problem, reset, client_body, ex);
//! plugin.tick()?;
//! let _logs = plugin.logs();
//! let _calls = plugin.http_calls();
//! # Ok(()) }
//! ```
//!
//! # What Envoy does that this host copies on purpose
//!
//! * Start: `_initialize` (+ `main`) or `_start`, then root context 1:
//!   `proxy_on_context_create(1, 0)`, `proxy_on_vm_start`,
//!   `proxy_on_configure`; a false from either is an error (fail closed).
//! * `x-request-id` is added to requests without one (Envoy's connection
//!   manager does this before filters; turn off with
//!   [`PluginBuilder::generate_request_id`]). Properties `request.id`,
//!   `request.path`, `request.url_path`, `request.host`, `request.method`,
//!   `request.scheme`, `request.headers.<name>`, `response.code`,
//!   `response.headers.<name>` are derived from the stream's headers.
//! * `proxy_set_buffer_bytes`: `start == 0` drains `size` bytes (all when
//!   larger) and prepends; `start >= len` appends; a middle edit is
//!   `BadArgument`.
//! * Header maps lower-case names; a repeated header's first value is
//!   returned; a map not available in the current context is
//!   `BadArgument`.
//! * A headers callback returning `Pause` is `StopAllIterationAndWatermark`
//!   (proxy-wasm-cpp-host#143): no body or trailers callback of that
//!   direction until `proxy_continue_stream`; Envoy holds the data meanwhile
//!   and then delivers it in one body callback. So a filter that must see
//!   the body returns `Continue` from the headers (they go upstream at once)
//!   and `Pause` from the body. [`PluginBuilder::allow_on_headers_stop_iteration`]
//!   emulates Envoy's opt-in `StopIteration`.
//! * `proxy_send_local_response`, `proxy_continue_stream` and
//!   `proxy_close_stream` act after the callback returns. A local reply
//!   after the request headers went upstream resets that upstream request
//!   ([`Exchange::upstream_request_reset`]): it saw headers, never a
//!   complete request.
//! * `proxy_http_call` needs `:method`, `:path`, `:authority` and a known
//!   cluster (when clusters are declared), else `BadArgument`; calls still
//!   pending when their HTTP context finishes are cancelled.
//! * Counters only increase (`increment` by ≤ 0 is `BadArgument`), gauges
//!   go both ways, histograms only record.
//! * Shared data CAS: a non-zero CAS must match the current one; a new key
//!   accepts any CAS. Queues belong to the first registrant; enqueueing
//!   notifies it with `proxy_on_queue_ready`.
//!
//! # Stubs
//!
//! Imports this host does not implement (gRPC calls and streams,
//! `proxy_get_status`, foreign functions, ABI 0.1 leftovers, most WASI
//! file functions) are linked to stubs returning `UNIMPLEMENTED` (12) or
//! WASI `ENOSYS`; [`Plugin::unimplemented_calls`] lists the calls made.

mod abi;
mod error;
mod hostcalls;
mod http;
mod plugin;
mod state;

pub use abi::{
    apply_set_buffer, deserialize_pairs, property_key, serialize_pairs, Action, BufferType, HeaderMap, LogLevel,
    MapType, MetricType, Status, StreamType,
};
pub use error::HostError;
pub use http::Exchange;
pub use plugin::{
    meshward_filter_path, shared_engine, CompiledModule, Plugin, PluginBuilder, QueueReady, DEFAULT_BUFFER_LIMIT,
};
pub use state::{CallbackRecord, HttpCall, HttpCallState, LocalResponse, LogEntry, MetricValue, SharedState};
