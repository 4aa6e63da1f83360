//! A mock LLM provider for meshward's demo and end-to-end tests.
//!
//! It speaks real HTTP/1.1 (chunked request bodies included) and h2c, and
//! answers:
//! - `POST /v1/chat/completions` — OpenAI Chat Completions: JSON
//!   (`chat.completion`) or, with `"stream": true`, SSE
//!   (`chat.completion.chunk` events, `data: [DONE]`), honouring
//!   `stream_options.include_usage`;
//! - `POST /v1/messages` — Anthropic Messages, JSON or SSE;
//! - any other path — `{"received": "<the raw body as a string>"}`.
//!
//! The reply text is exactly the text the model received (see [`render`]),
//! so a user sees what the model saw. Every request except the `/__mock/`
//! control endpoints is recorded (method, path, headers, raw body bytes):
//! in-process through [`MockProvider::received`], and over HTTP at
//! `GET /__mock/requests` (JSON; `DELETE` clears). `GET /__mock/health`
//! answers `ok`.
//!
//! ```no_run
//! let mock = meshward_mock_provider::MockProvider::start("127.0.0.1:0")?;
//! println!("listening on {}", mock.addr());
//! // ... send traffic ...
//! for req in mock.received() {
//!     println!("{} {} {} bytes", req.method, req.path, req.body.len());
//! }
//! # Ok::<(), meshward_mock_provider::Error>(())
//! ```

pub mod render;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};

use render::{ChatRequest, ReplyMeta, RequestProblem};

/// Everything that can go wrong in this crate.
#[derive(Debug)]
pub enum Error {
    /// The listen address could not be bound.
    Bind { addr: String, source: std::io::Error },
    /// The tokio runtime or the server thread could not be created.
    Runtime(std::io::Error),
    /// The server stopped with an I/O error.
    Serve(std::io::Error),
    /// Bad command-line usage.
    Usage(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            Error::Runtime(e) => write!(f, "cannot start the server runtime: {e}"),
            Error::Serve(e) => write!(f, "server failed: {e}"),
            Error::Usage(msg) => write!(f, "{msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } => Some(source),
            Error::Runtime(e) | Error::Serve(e) => Some(e),
            Error::Usage(_) => None,
        }
    }
}

/// One request as the provider received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRequest {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// `HTTP/1.1`, `HTTP/2.0`, ...
    pub version: String,
    /// Header names lower-case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The raw body bytes (after transfer decoding).
    pub body: Vec<u8>,
}

impl ReceivedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy for invalid UTF-8).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn body_json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// The JSON view served at `GET /__mock/requests`.
#[derive(Serialize)]
struct ReceivedView<'a> {
    method: &'a str,
    path: &'a str,
    version: &'a str,
    headers: &'a [(String, String)],
    body: String,
    body_bytes: usize,
}

impl<'a> From<&'a ReceivedRequest> for ReceivedView<'a> {
    fn from(r: &'a ReceivedRequest) -> Self {
        ReceivedView {
            method: &r.method,
            path: &r.path,
            version: &r.version,
            headers: &r.headers,
            body: r.body_text(),
            body_bytes: r.body.len(),
        }
    }
}

/// How the mock answers.
#[derive(Debug, Clone)]
pub struct Options {
    /// Wait this long before a JSON reply, and between SSE events.
    pub delay: Duration,
    /// Characters per streamed delta.
    pub piece_chars: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { delay: Duration::ZERO, piece_chars: 4 }
    }
}

/// Shared server state: options and the request log.
#[derive(Debug, Default)]
pub struct Recorder {
    options: Options,
    requests: Mutex<Vec<ReceivedRequest>>,
    replies: AtomicU64,
}

impl Recorder {
    pub fn new(options: Options) -> Self {
        Recorder { options, requests: Mutex::new(Vec::new()), replies: AtomicU64::new(0) }
    }

    fn log(&self) -> MutexGuard<'_, Vec<ReceivedRequest>> {
        // A poisoned log is still a log: the data is plain values.
        self.requests.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A copy of every request recorded so far, oldest first.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.log().clone()
    }

    /// Forgets every recorded request.
    pub fn clear(&self) {
        self.log().clear();
    }

    fn record(&self, req: ReceivedRequest) {
        self.log().push(req);
    }

    fn next_meta(&self, prefix: &str) -> ReplyMeta {
        let n = self.replies.fetch_add(1, Ordering::Relaxed) + 1;
        let created = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        ReplyMeta { id: format!("{prefix}{n}"), created }
    }
}

/// The axum router of the mock: one fallback handler sees every request.
pub fn router(recorder: Arc<Recorder>) -> Router {
    Router::new().fallback(handle).with_state(recorder)
}

/// Serves on `listener` until the future is dropped or the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, recorder: Arc<Recorder>) -> Result<(), Error> {
    axum::serve(listener, router(recorder)).await.map_err(Error::Serve)
}

async fn handle(State(rec): State<Arc<Recorder>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": {"message": format!("cannot read the request body: {e}"), "type": "invalid_request_error"}}),
            )
        }
    };
    let path = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| parts.uri.path().to_owned());
    let route = parts.uri.path();

    if let Some(control) = route.strip_prefix("/__mock/") {
        return control_endpoint(&rec, &parts.method, control);
    }

    rec.record(ReceivedRequest {
        method: parts.method.to_string(),
        path: path.clone(),
        version: format!("{:?}", parts.version),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body: body.to_vec(),
    });

    let delay = rec.options.delay;
    let piece_chars = rec.options.piece_chars;
    match (&parts.method, route) {
        (&Method::POST, "/v1/chat/completions") => match render::parse_openai_chat(&body) {
            Ok(chat) => {
                let meta = rec.next_meta("chatcmpl-mock-");
                if chat.stream {
                    sse_response(render::openai_stream_events(&chat, &meta, piece_chars), delay)
                } else {
                    delayed(delay).await;
                    json_response(StatusCode::OK, &render::openai_completion(&chat, &meta))
                }
            }
            Err(problem) => openai_error(&problem),
        },
        (&Method::POST, "/v1/messages") => match render::parse_anthropic_messages(&body) {
            Ok(chat) => anthropic_reply(&rec, &chat, delay, piece_chars).await,
            Err(problem) => json_response(
                StatusCode::BAD_REQUEST,
                &json!({"type": "error", "error": {"type": "invalid_request_error", "message": problem.to_string()}}),
            ),
        },
        _ => {
            delayed(delay).await;
            json_response(StatusCode::OK, &json!({"received": String::from_utf8_lossy(&body)}))
        }
    }
}

fn control_endpoint(rec: &Recorder, method: &Method, what: &str) -> Response {
    match (method, what) {
        (&Method::GET, "requests") => {
            let log = rec.received();
            let view: Vec<ReceivedView<'_>> = log.iter().map(ReceivedView::from).collect();
            json_response(StatusCode::OK, &json!(view))
        }
        (&Method::DELETE, "requests") => {
            rec.clear();
            json_response(StatusCode::OK, &json!({"cleared": true}))
        }
        (&Method::GET, "health") => text_response(StatusCode::OK, "ok\n"),
        _ => text_response(StatusCode::NOT_FOUND, "unknown mock control endpoint\n"),
    }
}

async fn anthropic_reply(rec: &Recorder, chat: &ChatRequest, delay: Duration, piece_chars: usize) -> Response {
    let meta = rec.next_meta("msg_mock_");
    if chat.stream {
        sse_response(render::anthropic_stream_events(chat, &meta, piece_chars), delay)
    } else {
        delayed(delay).await;
        json_response(StatusCode::OK, &render::anthropic_message(chat, &meta))
    }
}

fn openai_error(problem: &RequestProblem) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": {"message": problem.to_string(), "type": "invalid_request_error", "param": null, "code": null}}),
    )
}

async fn delayed(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut resp = Response::new(Body::from(value.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn text_response(status: StatusCode, text: &'static str) -> Response {
    let mut resp = Response::new(Body::from(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// Streams `events` as separate body frames, `delay` apart.
fn sse_response(events: Vec<String>, delay: Duration) -> Response {
    let stream = futures_util::stream::iter(events).then(move |event| async move {
        delayed(delay).await;
        Ok::<Bytes, Infallible>(Bytes::from(event))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// A mock provider running on its own thread and runtime; stopped on drop.
///
/// Dropping it cancels every connection task at once (no graceful drain:
/// Envoy keeps upstream connections open, which would make a graceful stop
/// wait forever).
pub struct MockProvider {
    addr: SocketAddr,
    recorder: Arc<Recorder>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MockProvider {
    /// Starts with default [`Options`] on `addr` (`"127.0.0.1:0"` for an
    /// ephemeral port). The port is bound when this returns.
    pub fn start(addr: &str) -> Result<Self, Error> {
        Self::start_with(addr, Options::default())
    }

    /// Starts with the given options.
    pub fn start_with(addr: &str, options: Options) -> Result<Self, Error> {
        let bind_err = |source| Error::Bind { addr: addr.to_owned(), source };
        let std_listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
        std_listener.set_nonblocking(true).map_err(bind_err)?;
        let local = std_listener.local_addr().map_err(bind_err)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(Error::Runtime)?;
        let recorder = Arc::new(Recorder::new(options));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let rec = Arc::clone(&recorder);
        let thread = std::thread::Builder::new()
            .name(format!("mock-provider-{}", local.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            eprintln!("mock provider: cannot register the listener: {e}");
                            return;
                        }
                    };
                    tokio::select! {
                        result = serve(listener, rec) => {
                            if let Err(e) = result {
                                eprintln!("mock provider: {e}");
                            }
                        }
                        _ = rx => {}
                    }
                });
                // Dropping the runtime here cancels every connection task.
                drop(runtime);
            })
            .map_err(Error::Runtime)?;
        Ok(MockProvider { addr: local, recorder, shutdown: Some(tx), thread: Some(thread) })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far (control endpoints excluded).
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.recorder.received()
    }

    /// Forgets the requests received so far.
    pub fn clear(&self) {
        self.recorder.clear();
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            // The server may already be gone; nothing to do then.
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
