//! The HTTP API (DESIGN.md §3). Every error is an RFC 7807
//! `application/problem+json` document carrying the request id.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use meshward_audit_proto::webhook::{self, Secret};
use meshward_audit_proto::{event, time, Action};

use crate::auth::{AuthError, KeyRing, ReaderKey};
use crate::metrics::{Metrics, Reject};
use crate::note::NoteSigner;
use crate::storage::{self, EventQuery, Job, Located, PreparedEvent, Store, StoreConfig};
use crate::{leaf, SinkError};

pub const PROBLEM_JSON: &str = "application/problem+json";
pub const JSONL: &str = "application/x-ndjson";

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub store: StoreConfig,
    /// Accepted webhook secrets (one, or several during rotation).
    pub secrets: Vec<Secret>,
    pub signer: NoteSigner,
    pub checkpoint_interval: Duration,
    /// Require a reader key with the `audit` capability for GET /v1/entries.
    pub entries_auth: bool,
    pub max_body_bytes: usize,
}

pub struct AppState {
    store: Arc<Store>,
    secrets: Vec<Secret>,
    keys: KeyRing,
    metrics: Arc<Metrics>,
    entries_auth: bool,
}

type App = Arc<AppState>;

/// Per-request context: the path (`instance`) and the request id.
pub struct Ctx {
    path: String,
    request_id: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
            .map(str::to_string)
            .unwrap_or_else(new_request_id);
        Ok(Ctx { path: parts.uri.path().to_string(), request_id })
    }
}

fn new_request_id() -> String {
    let mut b = [0u8; 8];
    if crate::random_bytes(&mut b).is_err() {
        b = storage::unix_ms().to_le_bytes();
    }
    format!("mws-{}", crate::merkle::hex(&b))
}

impl Ctx {
    fn problem(&self, status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Response {
        let body = serde_json::json!({
            "type": format!("urn:meshward:problem:{kind}"),
            "title": title,
            "status": status.as_u16(),
            "detail": detail.into(),
            "instance": self.path,
            "request_id": self.request_id,
        });
        let mut r = (status, body.to_string()).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Ok(v) = HeaderValue::from_str(&self.request_id) {
            r.headers_mut().insert("x-request-id", v);
        }
        r
    }

    fn bad_request(&self, detail: impl Into<String>) -> Response {
        self.problem(StatusCode::BAD_REQUEST, "bad-request", "Invalid request parameters", detail)
    }

    fn internal(&self, e: &SinkError) -> Response {
        eprintln!("meshward-sink: request {} {}: {e}", self.request_id, self.path);
        match e {
            SinkError::Unavailable(_) => self.problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The audit log is not accepting requests",
                e.to_string(),
            ),
            SinkError::Proof(m) => self.bad_request(m.clone()),
            _ => self.problem(StatusCode::INTERNAL_SERVER_ERROR, "internal-error", "Internal error", e.to_string()),
        }
    }
}

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn json(v: &serde_json::Value) -> Response {
    text(StatusCode::OK, "application/json", v.to_string())
}

/// Parses the query string into pairs; rejects duplicates and unknown names.
fn params(raw: Option<String>, allowed: &[&str]) -> Result<Vec<(String, String)>, String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).map_err(|e| format!("bad query string: {e}"))?;
    for (i, (k, _)) in pairs.iter().enumerate() {
        if !allowed.contains(&k.as_str()) {
            return Err(format!("unknown parameter {k:?} (allowed: {})", allowed.join(", ")));
        }
        if pairs[..i].iter().any(|(k2, _)| k2 == k) {
            return Err(format!("parameter {k:?} given twice"));
        }
    }
    Ok(pairs)
}

fn param<'a>(p: &'a [(String, String)], name: &str) -> Option<&'a str> {
    p.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn param_u64(p: &[(String, String)], name: &str) -> Result<Option<u64>, String> {
    param(p, name).map(|v| v.parse::<u64>().map_err(|_| format!("{name} must be a non-negative integer"))).transpose()
}

/// RFC 3339 or Unix seconds.
fn param_time(p: &[(String, String)], name: &str) -> Result<Option<i64>, String> {
    param(p, name)
        .map(|v| {
            if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
                v.parse::<i64>().map(|s| s.saturating_mul(1000)).map_err(|_| format!("{name} out of range"))
            } else {
                time::parse_rfc3339_ms(v).map_err(|_| format!("{name} must be RFC 3339 or Unix seconds"))
            }
        })
        .transpose()
}

pub fn router(state: App, max_body: usize) -> Router {
    Router::new()
        .route("/v1/events", post(ingest).get(events))
        .route("/v1/export", get(export))
        .route("/checkpoint", get(checkpoint))
        .route("/v1/checkpoint", get(checkpoint).post(checkpoint_now))
        .route("/v1/verifier-key", get(verifier_key))
        .route("/v1/entries", get(entries))
        .route("/v1/proof/inclusion", get(inclusion))
        .route("/v1/proof/consistency", get(consistency))
        .route("/v1/gaps", get(gaps))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

async fn not_found(ctx: Ctx) -> Response {
    ctx.problem(StatusCode::NOT_FOUND, "not-found", "No such endpoint", format!("no endpoint at {}", ctx.path))
}

async fn method_not_allowed(ctx: Ctx) -> Response {
    ctx.problem(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed", "see the API in README.md")
}

async fn healthz(State(app): State<App>) -> Response {
    if app.store.is_failed() {
        text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "log not writable\n")
    } else {
        text(StatusCode::OK, "text/plain", "ok\n")
    }
}

// ---- ingest ----------------------------------------------------------------

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

async fn ingest(State(app): State<App>, ctx: Ctx, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let m = &app.metrics;
    let reject = |r: Reject, resp: Response| {
        m.reject(r);
        resp
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            let status = e.status();
            return if status == StatusCode::PAYLOAD_TOO_LARGE {
                reject(Reject::TooLarge, ctx.problem(status, "body-too-large", "Request body too large", e.body_text()))
            } else {
                reject(
                    Reject::InvalidBody,
                    ctx.problem(status, "bad-body", "Could not read the request body", e.body_text()),
                )
            };
        }
    };
    let (Some(id), Some(ts), Some(sig)) = (
        header_str(&headers, "webhook-id"),
        header_str(&headers, "webhook-timestamp"),
        header_str(&headers, "webhook-signature"),
    ) else {
        return reject(
            Reject::MissingHeaders,
            ctx.problem(
                StatusCode::BAD_REQUEST,
                "missing-webhook-headers",
                "Missing Standard Webhooks headers",
                "webhook-id, webhook-timestamp and webhook-signature are required",
            ),
        );
    };
    let now_ms = storage::unix_ms();
    if let Err(e) = webhook::verify_any(&app.secrets, id, ts, sig, &body, now_ms / 1000) {
        return match e {
            meshward_audit_proto::Error::TimestampOutOfTolerance { .. } => reject(
                Reject::StaleTimestamp,
                ctx.problem(
                    StatusCode::UNAUTHORIZED,
                    "stale-timestamp",
                    "Webhook timestamp outside the 300 s window",
                    e.to_string(),
                ),
            ),
            meshward_audit_proto::Error::InvalidTimestamp | meshward_audit_proto::Error::InvalidHeader(_) => reject(
                Reject::MissingHeaders,
                ctx.problem(
                    StatusCode::BAD_REQUEST,
                    "invalid-webhook-headers",
                    "Invalid Standard Webhooks headers",
                    e.to_string(),
                ),
            ),
            _ => reject(
                Reject::BadSignature,
                ctx.problem(
                    StatusCode::UNAUTHORIZED,
                    "bad-signature",
                    "Webhook signature does not verify",
                    e.to_string(),
                ),
            ),
        };
    }
    // Authentic from here on. The timestamp parsed inside verify_any.
    let ts = webhook::parse_timestamp(ts).unwrap_or(now_ms / 1000);
    let parsed = match event::parse_batch(&body) {
        Ok(p) => p,
        Err(e) => {
            return reject(
                Reject::InvalidBody,
                ctx.problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid-event",
                    "Body is not a valid decision event batch",
                    e.to_string(),
                ),
            )
        }
    };
    let mut events = Vec::with_capacity(parsed.len());
    for (i, (value, typed)) in parsed.iter().enumerate() {
        let mut canonical = Vec::new();
        leaf::write_canonical(value, &mut canonical);
        if canonical.len() + 256 > crate::segment::MAX_RECORD as usize {
            return reject(
                Reject::TooLarge,
                ctx.problem(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "event-too-large",
                    "Event too large",
                    format!("event [{i}] exceeds 1 MiB"),
                ),
            );
        }
        let facts = match storage::EventFacts::from_event(typed) {
            Ok(f) => f,
            Err(e) => {
                return reject(
                    Reject::InvalidBody,
                    ctx.problem(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid-event",
                        "Invalid decision event",
                        format!("event [{i}]: {e}"),
                    ),
                )
            }
        };
        events.push(PreparedEvent { canonical, facts });
    }
    if !app.store.dedupe_insert(id) {
        return reject(
            Reject::Duplicate,
            ctx.problem(
                StatusCode::CONFLICT,
                "duplicate-delivery",
                "This webhook-id was already received",
                format!("webhook-id {id:?} is already stored or being stored; a sender may treat this as delivered"),
            ),
        );
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = Job { webhook_id: id.to_string(), webhook_ts: ts, received_ms: now_ms, events, reply: tx };
    let outcome = match app.store.submit(job) {
        Ok(()) => rx.await.unwrap_or_else(|_| Err(SinkError::Unavailable("the writer stopped".into()))),
        Err(e) => Err(e),
    };
    match outcome {
        Ok((first, end)) => {
            m.requests_accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            json(&serde_json::json!({"accepted": end - first, "first_index": first, "tree_size_at_least": end}))
        }
        Err(e) => {
            app.store.dedupe_remove(id);
            m.reject(Reject::Unavailable);
            ctx.internal(&SinkError::Unavailable(e.to_string()))
        }
    }
}

// ---- checkpoints, keys, proofs ----------------------------------------------

async fn checkpoint(State(app): State<App>, ctx: Ctx) -> Response {
    match app.store.checkpoint() {
        Ok((s, _)) => text(StatusCode::OK, "text/plain; charset=utf-8", s.note),
        Err(e) => ctx.internal(&e),
    }
}

/// Signs a checkpoint now (if the tree grew) and returns it.
async fn checkpoint_now(State(app): State<App>, ctx: Ctx) -> Response {
    let store = Arc::clone(&app.store);
    match tokio::task::spawn_blocking(move || store.sign_checkpoint()).await {
        Ok(Ok(s)) => text(StatusCode::OK, "text/plain; charset=utf-8", s.note),
        Ok(Err(e)) => ctx.internal(&e),
        Err(e) => ctx.internal(&SinkError::Unavailable(e.to_string())),
    }
}

async fn verifier_key(State(app): State<App>) -> Response {
    text(StatusCode::OK, "text/plain; charset=utf-8", format!("{}\n", app.store.verifier_key()))
}

fn b64_hashes(h: &[crate::merkle::Hash]) -> Vec<String> {
    h.iter().map(|x| B64.encode(x)).collect()
}

async fn inclusion(State(app): State<App>, ctx: Ctx, RawQuery(q): RawQuery) -> Response {
    let p = match params(q, &["index", "size"]) {
        Ok(p) => p,
        Err(e) => return ctx.bad_request(e),
    };
    let (index, size) = match (param_u64(&p, "index"), param_u64(&p, "size")) {
        (Ok(Some(i)), Ok(Some(s))) => (i, s),
        (Err(e), _) | (_, Err(e)) => return ctx.bad_request(e),
        _ => return ctx.bad_request("index and size are required"),
    };
    match app.store.inclusion_proof(index, size) {
        Ok((leaf, proof)) => json(&serde_json::json!({
            "index": index,
            "size": size,
            "leaf_hash": B64.encode(leaf),
            "hashes": b64_hashes(&proof),
        })),
        Err(e) => ctx.internal(&e),
    }
}

async fn consistency(State(app): State<App>, ctx: Ctx, RawQuery(q): RawQuery) -> Response {
    let p = match params(q, &["from", "to"]) {
        Ok(p) => p,
        Err(e) => return ctx.bad_request(e),
    };
    let (from, to) = match (param_u64(&p, "from"), param_u64(&p, "to")) {
        (Ok(Some(a)), Ok(Some(b))) => (a, b),
        (Err(e), _) | (_, Err(e)) => return ctx.bad_request(e),
        _ => return ctx.bad_request("from and to are required"),
    };
    match app.store.consistency_proof(from, to) {
        Ok(proof) => json(&serde_json::json!({"from": from, "to": to, "hashes": b64_hashes(&proof)})),
        Err(e) => ctx.internal(&e),
    }
}

async fn gaps(State(app): State<App>, ctx: Ctx, RawQuery(q): RawQuery) -> Response {
    let p = match params(q, &["instance_id", "all"]) {
        Ok(p) => p,
        Err(e) => return ctx.bad_request(e),
    };
    let all = matches!(param(&p, "all"), Some("1" | "true"));
    match app.store.gaps_report(!all, param(&p, "instance_id")) {
        Ok((total, list)) => json(&serde_json::json!({"total_missing": total, "instances": list})),
        Err(e) => ctx.internal(&e),
    }
}

async fn metrics(State(app): State<App>) -> Response {
    text(StatusCode::OK, "text/plain; version=0.0.4", app.metrics.render(&app.store.gauges()))
}

// ---- reads --------------------------------------------------------------------

// The Err side is the finished response, returned at once by the handler.
#[allow(clippy::result_large_err)]
fn auth(app: &AppState, ctx: &Ctx, headers: &HeaderMap, cap: &str) -> Result<ReaderKey, Response> {
    let fail = |status, kind, title, detail: &str| {
        app.metrics.auth_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut r = ctx.problem(status, kind, title, detail);
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    };
    match app.keys.authenticate(header_str(headers, "authorization")) {
        Ok(k) if k.can(cap) => Ok(k),
        Ok(_) => Err(fail(
            StatusCode::FORBIDDEN,
            "missing-capability",
            "Reader key lacks a capability",
            &format!("this endpoint needs the {cap:?} capability"),
        )),
        Err(AuthError::Missing) => Err(fail(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Reader key required",
            "send Authorization: Bearer mwk_…",
        )),
        Err(AuthError::Unknown) => {
            Err(fail(StatusCode::UNAUTHORIZED, "unauthorized", "Unknown reader key", "the key is not known"))
        }
    }
}

/// Builds an [`EventQuery`] from the parameters, scoped to the key's tenant.
#[allow(clippy::result_large_err)]
fn event_query(app: &AppState, ctx: &Ctx, key: &ReaderKey, p: &[(String, String)]) -> Result<EventQuery, Response> {
    let tenant = match (param(p, "tenant"), key.tenant.as_str()) {
        (Some(t), _) if !key.covers(t) => {
            app.metrics.auth_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(ctx.problem(
                StatusCode::FORBIDDEN,
                "tenant-forbidden",
                "Reader key is scoped to another tenant",
                "this key may not read the requested tenant",
            ));
        }
        (Some(t), _) => Some(t.to_string()),
        (None, "*") => None,
        (None, own) => Some(own.to_string()),
    };
    let action = match param(p, "action") {
        Some(a) => Some(Action::parse(a).ok_or_else(|| ctx.bad_request("action must be allow, redact or block"))?),
        None => None,
    };
    let limit = param_u64(p, "limit").map_err(|e| ctx.bad_request(e))?;
    Ok(EventQuery {
        tenant,
        since_ms: param_time(p, "since").map_err(|e| ctx.bad_request(e))?,
        until_ms: param_time(p, "until").map_err(|e| ctx.bad_request(e))?,
        request_id: param(p, "request_id").map(str::to_string),
        action,
        class: param(p, "class").map(str::to_string),
        after: param_u64(p, "after").map_err(|e| ctx.bad_request(e))?,
        limit: limit.map(|l| l.clamp(1, 1000) as usize),
    })
}

const QUERY_PARAMS: [&str; 8] = ["tenant", "since", "until", "request_id", "action", "class", "after", "limit"];

/// GET /v1/events: a page of matching leaves as JSON,
/// `{"entries":[<leaf>…],"next_after":<index>|null}`.
async fn events(State(app): State<App>, ctx: Ctx, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let key = match auth(&app, &ctx, &headers, "read") {
        Ok(k) => k,
        Err(r) => return r,
    };
    let p = match params(q, &QUERY_PARAMS) {
        Ok(p) => p,
        Err(e) => return ctx.bad_request(e),
    };
    let mut query = match event_query(&app, &ctx, &key, &p) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let limit = query.limit.unwrap_or(100);
    let store = Arc::clone(&app.store);
    let page = tokio::task::spawn_blocking(move || -> Result<(Vec<u8>, Option<u64>), SinkError> {
        let mut body = b"{\"entries\":[".to_vec();
        let mut n = 0usize;
        let mut last = None;
        // Candidates may fail the exact check: fetch in rounds until the page is full.
        loop {
            query.limit = Some(limit.saturating_sub(n).max(1) * 2);
            let found = store.query(&query)?;
            let exhausted = found.len() < query.limit.unwrap_or(0);
            for (loc, check) in &found {
                query.after = Some(loc.index);
                let leaf = storage::read_leaf(loc)?;
                if *check && !storage::leaf_matches(&leaf, &query) {
                    continue;
                }
                if n > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(&leaf);
                n += 1;
                last = Some(loc.index);
                if n == limit {
                    break;
                }
            }
            if n == limit || exhausted {
                let next = if n == limit { last } else { None };
                body.extend_from_slice(
                    format!("],\"next_after\":{}}}", next.map_or("null".into(), |i| i.to_string())).as_bytes(),
                );
                return Ok((body, next));
            }
        }
    })
    .await;
    match page {
        Ok(Ok((body, _))) => text(StatusCode::OK, "application/json", body),
        Ok(Err(e)) => ctx.internal(&e),
        Err(e) => ctx.internal(&SinkError::Unavailable(e.to_string())),
    }
}

/// Streams leaves as JSONL from a blocking reader thread.
fn stream_leaves(locs: Vec<(Located, bool)>, query: Option<EventQuery>, tree_size: u64) -> Response {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(256 << 10);
        for (loc, check) in locs {
            match storage::read_leaf(&loc) {
                Ok(leaf) => {
                    if check && query.as_ref().is_some_and(|q| !storage::leaf_matches(&leaf, q)) {
                        continue;
                    }
                    chunk.extend_from_slice(&leaf);
                    chunk.push(b'\n');
                }
                Err(e) => {
                    eprintln!("meshward-sink: export aborted: {e}");
                    // The client sees a truncated (failed) chunked response, never silent loss.
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                    return;
                }
            }
            if chunk.len() >= 256 << 10 && tx.blocking_send(Ok(Bytes::from(std::mem::take(&mut chunk)))).is_err() {
                return;
            }
        }
        if !chunk.is_empty() {
            let _ = tx.blocking_send(Ok(Bytes::from(chunk)));
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut r = text(StatusCode::OK, JSONL, Body::from_stream(stream));
    r.headers_mut().insert("meshward-tree-size", HeaderValue::from(tree_size));
    r
}

/// GET /v1/export: every matching leaf, one per line.
async fn export(State(app): State<App>, ctx: Ctx, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let key = match auth(&app, &ctx, &headers, "export") {
        Ok(k) => k,
        Err(r) => return r,
    };
    let p = match params(q, &QUERY_PARAMS) {
        Ok(p) => p,
        Err(e) => return ctx.bad_request(e),
    };
    let query = match event_query(&app, &ctx, &key, &p) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let size = app.store.tree_size();
    match app.store.query(&query) {
        Ok(locs) => stream_leaves(locs, Some(query), size),
        Err(e) => ctx.internal(&e),
    }
}

/// GET /v1/entries?start=A&end=B: leaves `[A, B)` (B defaults to, and is
/// capped at, the tree size), one per line.
async fn entries(State(app): State<App>, ctx: Ctx, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if app.entries_auth {
        if let Err(r) = auth(&app, &ctx, &headers, "audit") {
            return r;
        }
    }
    let p = match params(q, &["start", "end"]) {
        Ok(p) => p,
        Err(e) => return ctx.bad_request(e),
    };
    let size = app.store.tree_size();
    let (start, end) = match (param_u64(&p, "start"), param_u64(&p, "end")) {
        (Ok(s), Ok(e)) => (s.unwrap_or(0), e.unwrap_or(size).min(size)),
        (Err(e), _) | (_, Err(e)) => return ctx.bad_request(e),
    };
    if start > end {
        return ctx.bad_request(format!("start {start} is beyond end {end} (tree size {size})"));
    }
    match app.store.locate_range(start, end) {
        Ok(locs) => stream_leaves(locs.into_iter().map(|l| (l, false)).collect(), None, size),
        Err(e) => ctx.internal(&e),
    }
}

// ---- running ----------------------------------------------------------------------

/// A running server (used by `main` and by the integration tests).
pub struct Running {
    pub addr: SocketAddr,
    pub store: Arc<Store>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Graceful stop: drain connections, commit queued writes, sign a final checkpoint.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// Opens the store, binds `listen` and serves on a background thread with its
/// own runtime. Returns once the socket is listening.
pub fn start(cfg: ServeConfig, listen: SocketAddr) -> Result<Running, SinkError> {
    let metrics = Arc::new(Metrics::default());
    let (store, report) = Store::open(cfg.store.clone(), cfg.signer.clone(), Arc::clone(&metrics))?;
    if let Some(t) = &report.torn {
        eprintln!(
            "meshward-sink: recovered a torn tail: truncated {} unacknowledged bytes at offset {} of {} ({})",
            t.bytes,
            t.offset,
            t.file.display(),
            t.why
        );
    }
    eprintln!(
        "meshward-sink: log at {} has {} entries in {} segments; last checkpoint size {}",
        cfg.store.data_dir.display(),
        report.entries,
        report.segments,
        report.checkpoint_size.map_or("none".into(), |s| s.to_string())
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("meshward-sink")
        .build()
        .map_err(|e| SinkError::io("starting the runtime", e))?;
    let std_listener =
        std::net::TcpListener::bind(listen).map_err(|e| SinkError::io(format!("binding {listen}"), e))?;
    std_listener.set_nonblocking(true).map_err(|e| SinkError::io("set_nonblocking", e))?;
    let addr = std_listener.local_addr().map_err(|e| SinkError::io("local_addr", e))?;
    let app = Arc::new(AppState {
        store: Arc::clone(&store),
        secrets: cfg.secrets.clone(),
        keys: KeyRing::new(&cfg.store.data_dir),
        metrics,
        entries_auth: cfg.entries_auth,
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let store2 = Arc::clone(&store);
    let interval = cfg.checkpoint_interval.max(Duration::from_millis(100));
    let max_body = cfg.max_body_bytes;
    let thread = std::thread::Builder::new()
        .name("meshward-sink-http".into())
        .spawn(move || {
            let signer_store = Arc::clone(&store2);
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("meshward-sink: listener: {e}");
                        return;
                    }
                };
                let ticker = tokio::spawn(async move {
                    let mut tick = tokio::time::interval(interval);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        let s = Arc::clone(&signer_store);
                        match tokio::task::spawn_blocking(move || s.sign_checkpoint()).await {
                            Ok(Ok(_)) => {}
                            Ok(Err(e)) => eprintln!("meshward-sink: ERROR: checkpoint not signed: {e}"),
                            Err(e) => eprintln!("meshward-sink: checkpoint task: {e}"),
                        }
                    }
                });
                let served = axum::serve(listener, router(app, max_body))
                    .with_graceful_shutdown(async move {
                        let _ = stop_rx.await;
                    })
                    .await;
                if let Err(e) = served {
                    eprintln!("meshward-sink: server error: {e}");
                }
                ticker.abort();
            });
            // Commit anything queued, then sign the final state.
            store2.shutdown();
            if let Err(e) = store2.sign_checkpoint() {
                eprintln!("meshward-sink: ERROR: final checkpoint not signed: {e}");
            }
        })
        .map_err(|e| SinkError::io("starting the server thread", e))?;
    Ok(Running { addr, store, shutdown: Some(stop_tx), thread: Some(thread) })
}
