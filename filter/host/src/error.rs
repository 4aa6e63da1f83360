//! The one error type of this crate.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong while loading or driving a plugin.
///
/// A wasm trap (a Rust panic in the filter, `unreachable`, an out-of-bounds
/// access inside the guest) never panics the host: it comes back as
/// [`HostError::Trap`], and the VM is then considered dead, like Envoy
/// considers a VM that panicked ([`HostError::VmFailed`] for every later call).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostError {
    /// The `.wasm` file could not be read.
    ReadModule { path: PathBuf, message: String },
    /// The release filter is missing: build it with `make wasm`.
    FilterNotBuilt { path: PathBuf },
    /// wasmtime refused the module (invalid wasm or WAT, unsupported feature).
    Compile(String),
    /// The module imports something this host cannot provide (a memory,
    /// table or global import; functions are always provided, as stubs if
    /// unknown).
    UnsupportedImport { module: String, name: String, kind: String },
    /// An export has a signature other than the ABI's.
    BadExport { name: String, message: String },
    /// The module exports no linear memory named `memory`.
    NoMemory,
    /// Instantiation failed (a start function trapped, resources).
    Instantiate(String),
    /// `proxy_on_vm_start` returned false: Envoy refuses to start the VM.
    VmStartRejected,
    /// `proxy_on_configure` returned false: Envoy refuses the plugin
    /// configuration (fail closed).
    ConfigureRejected,
    /// The guest trapped (a Rust panic, `unreachable`, stack overflow, ...)
    /// in `callback`. `guest_stderr` is the tail of what the guest wrote to
    /// stderr (a Rust panic message lands there).
    Trap { callback: &'static str, message: String, guest_stderr: String },
    /// The guest called WASI `proc_exit`.
    ProcExit { callback: &'static str, code: i32 },
    /// An earlier trap killed this VM; no further callbacks are possible.
    VmFailed,
    /// The stream already ended (local response sent, reset, or finished):
    /// Envoy delivers no further callbacks for it.
    StreamEnded { context_id: u32 },
    /// The call is out of order for this stream, e.g. response headers
    /// twice, or body after end of stream.
    Protocol(String),
    /// No pending HTTP call has this token.
    UnknownHttpCall { token: u32 },
    /// The HTTP context that dispatched this call is gone; Envoy cancels
    /// calls still pending when their context dies.
    HttpCallCancelled { token: u32 },
    /// `tick()` was called but the plugin never set a tick period: Envoy
    /// would never call `proxy_on_tick`.
    TickNotEnabled,
    /// No shared queue has this name under this VM id.
    UnknownQueue { vm_id: String, name: String },
    /// A wasmtime error that is not a trap (should not happen).
    Internal(String),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::ReadModule { path, message } => {
                write!(f, "cannot read wasm module {}: {message}", path.display())
            }
            HostError::FilterNotBuilt { path } => write!(
                f,
                "the release filter {} does not exist: run `make wasm` (or set MESHWARD_WASM)",
                path.display()
            ),
            HostError::Compile(m) => write!(f, "wasm module rejected: {m}"),
            HostError::UnsupportedImport { module, name, kind } => {
                write!(f, "unsupported import {module}.{name} ({kind})")
            }
            HostError::BadExport { name, message } => {
                write!(f, "export `{name}` has the wrong signature: {message}")
            }
            HostError::NoMemory => f.write_str("the module exports no memory named `memory`"),
            HostError::Instantiate(m) => write!(f, "instantiation failed: {m}"),
            HostError::VmStartRejected => f.write_str("proxy_on_vm_start returned false"),
            HostError::ConfigureRejected => f.write_str("proxy_on_configure returned false: configuration rejected"),
            HostError::Trap { callback, message, guest_stderr } => {
                write!(f, "wasm trap in {callback}: {message}")?;
                if !guest_stderr.is_empty() {
                    write!(f, "\nguest stderr:\n{guest_stderr}")?;
                }
                Ok(())
            }
            HostError::ProcExit { callback, code } => {
                write!(f, "guest called proc_exit({code}) in {callback}")
            }
            HostError::VmFailed => f.write_str("the VM failed earlier (trap); it is dead"),
            HostError::StreamEnded { context_id } => {
                write!(f, "stream context {context_id} already ended")
            }
            HostError::Protocol(m) => write!(f, "out-of-order stream event: {m}"),
            HostError::UnknownHttpCall { token } => write!(f, "no pending http call {token}"),
            HostError::HttpCallCancelled { token } => {
                write!(f, "http call {token} was cancelled: its context was destroyed")
            }
            HostError::TickNotEnabled => f.write_str("tick() called but the plugin set no tick period"),
            HostError::UnknownQueue { vm_id, name } => {
                write!(f, "no shared queue `{name}` in vm `{vm_id}`")
            }
            HostError::Internal(m) => write!(f, "internal host error: {m}"),
        }
    }
}

impl std::error::Error for HostError {}
