//! HTTP streams: Envoy's filter-manager semantics for one filter, and the
//! [`Exchange`] handle tests drive.
//!
//! Semantics emulated (Envoy 1.40 with one wasm filter, proxy-wasm-cpp-host
//! in between):
//!
//! * Headers: `Continue` forwards them (as the filter left them) at once —
//!   for a request, the router starts the upstream request right away.
//!   `Pause` (1) becomes `StopAllIterationAndWatermark` (proxy-wasm-cpp-host
//!   converts it, see proxy-wasm-cpp-host#143): the headers are held and
//!   **no body or trailers callback of that direction** comes until the
//!   guest calls `proxy_continue_stream`; data and trailers arriving
//!   meanwhile are held by Envoy ([`Exchange::request_held_body`]). With
//!   real Envoy such a request just hangs ([`Exchange::request_headers_paused`]).
//!   On resume the headers are forwarded, then the held data goes to the
//!   filter's body callback in one call (total size), then the trailers
//!   callback. Held data over the buffer limit only raises the high
//!   watermark (Envoy stops reading; no 413). Code 3
//!   (`StopAllIterationAndBuffer`) holds the same way but over the limit is
//!   the 413/500; 2 (`ContinueAndDontEndStream`) continues; larger codes
//!   stop all. With [`PluginBuilder::allow_on_headers_stop_iteration`]
//!   (Envoy 1.35+ option) `Pause` is a plain `StopIteration`: headers held,
//!   body callbacks still delivered, a later `Continue` forwards all.
//!   Edits made after headers were forwarded never reach the next hop.
//! * Body: every chunk is appended to the filter's buffer and the callback
//!   gets the *total* buffered size; `Pause` (`StopIterationAndBuffer`)
//!   keeps buffering, `Continue` forwards the buffer (recorded as one
//!   forwarded chunk) and empties it. The buffer is readable and writable
//!   (`HttpRequestBody`/`HttpResponseBody`) during the body callback and
//!   while paused-buffering. (Other body codes are treated as `Pause`.)
//! * Trailers: the last body callback then has `end_of_stream == false`;
//!   the trailers callback follows and `Continue` forwards everything held.
//! * Buffer limit: a paused body over the limit gets Envoy's own local
//!   reply 413 (request) or, on the response, 500 if headers were not yet
//!   sent downstream, else a reset.
//! * `proxy_send_local_response` is deferred to the end of the callback
//!   (as Envoy does); the request then stops (nothing more goes upstream)
//!   and the local reply — `:status`, the guest's headers, `content-length`
//!   and `content-type: text/plain` unless given — goes through this
//!   filter's *response* callbacks, as Envoy's encoder chain does. A second
//!   local reply while one is being sent is ignored (counted). If the
//!   upstream request had started (headers forwarded) and the upstream
//!   exchange was not over, Envoy resets it: the upstream saw the headers
//!   and whatever body was released, never a complete request
//!   ([`Exchange::upstream_request_reset`]).
//! * `proxy_continue_stream` / `proxy_close_stream` are deferred the same
//!   way; close resets the stream (and a started upstream request).
//! * Finish: `proxy_on_log`, `proxy_on_done`, `proxy_on_delete`; HTTP calls
//!   this context dispatched that are still pending are cancelled; an
//!   upstream request still in flight is reset.
//!
//! [`PluginBuilder::allow_on_headers_stop_iteration`]: crate::PluginBuilder::allow_on_headers_stop_iteration

use std::sync::{Arc, Mutex, MutexGuard};

use crate::abi::{property_key, Action, HeaderMap};
use crate::error::HostError;
use crate::plugin::{call_opt, lock, Inner};
use crate::state::{CallbackRecord, Direction, HttpCallState, LocalResponse, Phase, StopAll, StreamState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Request,
    Response,
}

/// What a callback's return code means to Envoy's filter manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Iteration {
    Continue,
    /// `StopIteration` (headers with `allow_on_headers_stop_iteration`,
    /// trailers): later frames still reach the filter.
    Stop,
    /// Headers: no more callbacks of this direction until resumed.
    StopAll(StopAll),
    /// Body: `StopIterationAndBuffer`.
    Buffer,
}

impl StreamState {
    fn dir_mut(&mut self, d: Dir) -> &mut Direction {
        match d {
            Dir::Request => &mut self.request,
            Dir::Response => &mut self.response,
        }
    }

    /// Notes an end of stream from the upstream (not a local reply).
    fn note_end(&mut self, d: Dir, eos: bool) {
        if d == Dir::Response && eos && !self.response_is_local {
            self.upstream_response_complete = true;
        }
    }
}

impl Inner {
    pub(crate) fn create_http_context(&mut self) -> Result<u32, HostError> {
        if self.failed {
            return Err(HostError::VmFailed);
        }
        let id = self.next_context_id;
        self.next_context_id = self.next_context_id.wrapping_add(1);
        let root = self.root_id();
        self.store.data_mut().streams.insert(id, StreamState::default());
        call_opt!(self, on_context_create, "proxy_on_context_create", id, (id, root))?;
        self.pump()?;
        Ok(id)
    }

    fn stream(&mut self, ctx: u32) -> Result<&mut StreamState, HostError> {
        self.store.data_mut().streams.get_mut(&ctx).ok_or(HostError::StreamEnded { context_id: ctx })
    }

    /// Checks that `dir` can take another event.
    fn check_open(&mut self, ctx: u32, dir: Dir) -> Result<(), HostError> {
        if self.failed {
            return Err(HostError::VmFailed);
        }
        let st = self.stream(ctx)?;
        let closed = match dir {
            Dir::Request => st.request.closed,
            Dir::Response => st.response.closed,
        };
        if st.finished || st.reset.is_some() || closed {
            return Err(HostError::StreamEnded { context_id: ctx });
        }
        Ok(())
    }

    fn new_request_id(&mut self) -> String {
        let a = self.store.data_mut().next_random();
        let b = self.store.data_mut().next_random();
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&a.to_le_bytes());
        bytes[8..].copy_from_slice(&b.to_le_bytes());
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
    }

    /// Calls one stream callback and records it.
    fn stream_callback(&mut self, ctx: u32, dir: Dir, phase: Phase, size: u32, eos: bool) -> Result<Action, HostError> {
        let eos_arg = u32::from(eos);
        let raw = match (dir, phase) {
            (Dir::Request, Phase::Headers) => {
                call_opt!(self, on_request_headers, "proxy_on_request_headers", ctx, (ctx, size, eos_arg))
            }
            (Dir::Request, Phase::Body) => {
                call_opt!(self, on_request_body, "proxy_on_request_body", ctx, (ctx, size, eos_arg))
            }
            (Dir::Request, Phase::Trailers) => {
                call_opt!(self, on_request_trailers, "proxy_on_request_trailers", ctx, (ctx, size))
            }
            (Dir::Response, Phase::Headers) => {
                call_opt!(self, on_response_headers, "proxy_on_response_headers", ctx, (ctx, size, eos_arg))
            }
            (Dir::Response, Phase::Body) => {
                call_opt!(self, on_response_body, "proxy_on_response_body", ctx, (ctx, size, eos_arg))
            }
            (Dir::Response, Phase::Trailers) => {
                call_opt!(self, on_response_trailers, "proxy_on_response_trailers", ctx, (ctx, size))
            }
        }?;
        // A callback the module does not export continues.
        let action = raw.map_or(Action::Continue, Action::from_code);
        let callback = match (dir, phase) {
            (Dir::Request, Phase::Headers) => "proxy_on_request_headers",
            (Dir::Request, Phase::Body) => "proxy_on_request_body",
            (Dir::Request, Phase::Trailers) => "proxy_on_request_trailers",
            (Dir::Response, Phase::Headers) => "proxy_on_response_headers",
            (Dir::Response, Phase::Body) => "proxy_on_response_body",
            (Dir::Response, Phase::Trailers) => "proxy_on_response_trailers",
        };
        if let Ok(st) = self.stream(ctx) {
            st.callbacks.push(CallbackRecord {
                callback,
                size,
                end_of_stream: eos && phase != Phase::Trailers,
                action,
            });
        }
        Ok(action)
    }

    pub(crate) fn headers_event(
        &mut self,
        ctx: u32,
        dir: Dir,
        mut headers: HeaderMap,
        eos: bool,
    ) -> Result<Action, HostError> {
        self.check_open(ctx, dir)?;
        let st = self.stream(ctx)?;
        match dir {
            Dir::Request if st.request.headers.is_some() => {
                return Err(HostError::Protocol("request headers sent twice".into()))
            }
            Dir::Response if st.response_is_local && !st.local_reply_in_progress => {
                return Err(HostError::StreamEnded { context_id: ctx })
            }
            Dir::Response if st.response.headers.is_some() => {
                return Err(HostError::Protocol("response headers sent twice".into()))
            }
            Dir::Response if st.request.forwarded_headers.is_none() && !st.response_is_local => {
                return Err(HostError::Protocol("a response before the upstream got the request headers".into()))
            }
            _ => {}
        }
        if dir == Dir::Request && self.generate_request_id && !headers.contains("x-request-id") {
            let id = self.new_request_id();
            headers.add("x-request-id", id.as_bytes());
        }
        let n = headers.len() as u32;
        let st = self.stream(ctx)?;
        st.note_end(dir, eos);
        let d = st.dir_mut(dir);
        d.headers = Some(headers);
        d.end_received = eos;
        let action = self.stream_callback(ctx, dir, Phase::Headers, n, eos)?;
        self.settle(ctx, Some((dir, Phase::Headers, action)))?;
        Ok(action)
    }

    /// A data frame arriving at the filter. While the filter is stopped at
    /// its headers, Envoy keeps it (no callback; returns `Pause`).
    pub(crate) fn body_event(&mut self, ctx: u32, dir: Dir, chunk: &[u8], eos: bool) -> Result<Action, HostError> {
        self.check_open(ctx, dir)?;
        let limit = self.buffer_limit;
        let st = self.stream(ctx)?;
        if dir == Dir::Response && st.response_is_local && !st.local_reply_in_progress {
            return Err(HostError::StreamEnded { context_id: ctx });
        }
        let d = st.dir_mut(dir);
        if d.headers.is_none() {
            return Err(HostError::Protocol("body before headers".into()));
        }
        if d.end_received {
            return Err(HostError::Protocol("body after end of stream".into()));
        }
        st.note_end(dir, eos);
        let d = st.dir_mut(dir);
        d.end_received = eos;
        if let Some(kind) = d.stopped_all {
            // Envoy's filter manager buffers for a filter that stopped all
            // iteration; over the limit, watermark mode stops reading from
            // the sender (no error), buffer mode is the usual 413/500.
            let held = d.held.get_or_insert_with(Vec::new);
            held.extend_from_slice(chunk);
            if limit.is_some_and(|l| held.len() > l) && !d.above_high_watermark {
                match kind {
                    StopAll::Watermark => d.above_high_watermark = true,
                    StopAll::Buffer => self.over_limit(ctx, dir)?,
                }
            }
            return Ok(Action::Pause);
        }
        self.deliver_body(ctx, dir, chunk, eos)
    }

    /// Appends `chunk` to the filter's buffer and calls the body callback
    /// with the total size.
    fn deliver_body(&mut self, ctx: u32, dir: Dir, chunk: &[u8], eos: bool) -> Result<Action, HostError> {
        let limit = self.buffer_limit;
        let d = self.stream(ctx)?.dir_mut(dir);
        // Envoy appends to what the paused filter buffered; over the limit
        // it answers by itself without calling the filter again.
        let over = d.buffering && !d.above_high_watermark && limit.is_some_and(|l| d.buffer.len() + chunk.len() > l);
        d.buffer.extend_from_slice(chunk);
        if over {
            self.over_limit(ctx, dir)?;
            return Ok(Action::Pause);
        }
        let size = d.buffer.len() as u32;
        d.in_body_callback = true;
        d.in_body_callback_eos = eos;
        let result = self.stream_callback(ctx, dir, Phase::Body, size, eos);
        if let Ok(st) = self.stream(ctx) {
            let d = st.dir_mut(dir);
            d.in_body_callback = false;
            d.in_body_callback_eos = false;
        }
        let action = result?;
        self.settle(ctx, Some((dir, Phase::Body, action)))?;
        Ok(action)
    }

    /// Trailers arriving at the filter; held (no callback, returns `Pause`)
    /// while the filter is stopped at its headers.
    pub(crate) fn trailers_event(&mut self, ctx: u32, dir: Dir, trailers: HeaderMap) -> Result<Action, HostError> {
        self.check_open(ctx, dir)?;
        let st = self.stream(ctx)?;
        if dir == Dir::Response && st.response_is_local && !st.local_reply_in_progress {
            return Err(HostError::StreamEnded { context_id: ctx });
        }
        let d = st.dir_mut(dir);
        if d.headers.is_none() {
            return Err(HostError::Protocol("trailers before headers".into()));
        }
        if d.end_received {
            return Err(HostError::Protocol("trailers after end of stream".into()));
        }
        st.note_end(dir, true);
        let d = st.dir_mut(dir);
        d.end_received = true;
        if d.stopped_all.is_some() {
            d.held_trailers = Some(trailers);
            return Ok(Action::Pause);
        }
        self.deliver_trailers(ctx, dir, trailers)
    }

    fn deliver_trailers(&mut self, ctx: u32, dir: Dir, trailers: HeaderMap) -> Result<Action, HostError> {
        let n = trailers.len() as u32;
        self.stream(ctx)?.dir_mut(dir).trailers = Some(trailers);
        let action = self.stream_callback(ctx, dir, Phase::Trailers, n, true)?;
        self.settle(ctx, Some((dir, Phase::Trailers, action)))?;
        Ok(action)
    }

    /// What Envoy makes of a callback's return code (proxy-wasm-cpp-host's
    /// conversion, then the filter manager).
    fn iteration(&self, phase: Phase, action: Action) -> Iteration {
        let code = match action {
            Action::Continue => 0,
            Action::Pause => 1,
            Action::Other(n) => n,
        };
        match (phase, code) {
            (_, 0) => Iteration::Continue,
            // StopIteration: only with allow_on_headers_stop_iteration,
            // else StopAllIterationAndWatermark (proxy-wasm-cpp-host#143).
            (Phase::Headers, 1) if self.allow_on_headers_stop_iteration => Iteration::Stop,
            // ContinueAndDontEndStream.
            (Phase::Headers, 2) => Iteration::Continue,
            (Phase::Headers, 3) => Iteration::StopAll(StopAll::Buffer),
            // 1, 4 and anything larger.
            (Phase::Headers, _) => Iteration::StopAll(StopAll::Watermark),
            (Phase::Body, _) => Iteration::Buffer,
            (Phase::Trailers, _) => Iteration::Stop,
        }
    }

    /// Applies what a callback returned and what it asked for (deferred
    /// local reply, close, continue), then pumps queue notifications.
    pub(crate) fn settle(&mut self, ctx: u32, returned: Option<(Dir, Phase, Action)>) -> Result<(), HostError> {
        let limit = self.buffer_limit;
        let iteration = returned.map(|(dir, phase, action)| (dir, self.iteration(phase, action)));
        let st = self.stream(ctx)?;
        if let Some(local) = st.deferred.local_response.take() {
            st.deferred.continue_request = false;
            st.deferred.continue_response = false;
            self.local_reply(ctx, local)?;
            return self.pump();
        }
        if st.deferred.close_request || st.deferred.close_response {
            st.deferred = Default::default();
            st.reset = Some("closed by the filter (proxy_close_stream)".into());
            st.reset_upstream("closed by the filter (proxy_close_stream)");
            st.request.closed = true;
            st.response.closed = true;
            return self.pump();
        }
        let mut buffering: Option<Dir> = None;
        if let Some((dir, iteration)) = iteration {
            let d = st.dir_mut(dir);
            match iteration {
                Iteration::Continue => d.resume(),
                Iteration::Stop => d.stopped = true,
                Iteration::StopAll(kind) => {
                    d.stopped = true;
                    d.stopped_all = Some(kind);
                }
                Iteration::Buffer => {
                    d.stopped = true;
                    d.buffering = true;
                    buffering = Some(dir);
                }
            }
        }
        let continue_request = std::mem::take(&mut st.deferred.continue_request);
        let continue_response = std::mem::take(&mut st.deferred.continue_response);
        if continue_request {
            self.resume_direction(ctx, Dir::Request)?;
        }
        if continue_response {
            self.resume_direction(ctx, Dir::Response)?;
        }
        if let Some(dir) = buffering {
            if let Ok(st) = self.stream(ctx) {
                let d = st.dir_mut(dir);
                let over =
                    !d.closed && d.buffering && !d.above_high_watermark && limit.is_some_and(|l| d.buffer.len() > l);
                if over && st.reset.is_none() {
                    self.over_limit(ctx, dir)?;
                }
            }
        }
        self.pump()
    }

    /// `continueDecoding()` / `continueEncoding()`. A filter stopped at its
    /// headers gets, in order: its headers forwarded, then everything Envoy
    /// held meanwhile through its own body callback (one call, total size),
    /// then the trailers callback.
    fn resume_direction(&mut self, ctx: u32, dir: Dir) -> Result<(), HostError> {
        let Ok(st) = self.stream(ctx) else {
            return Ok(());
        };
        if st.reset.is_some() || st.finished {
            return Ok(());
        }
        let d = st.dir_mut(dir);
        if d.closed {
            return Ok(());
        }
        if d.stopped_all.is_none() {
            d.resume();
            return Ok(());
        }
        d.stopped_all = None;
        d.stopped = false;
        if d.forwarded_headers.is_none() {
            d.forwarded_headers = d.headers.clone();
        }
        let held = d.held.take();
        let held_trailers = d.held_trailers.take();
        if held.is_none() && held_trailers.is_none() {
            d.end_forwarded = d.end_received;
            d.above_high_watermark = false;
            return Ok(());
        }
        if let Some(data) = held {
            let eos = d.end_received && held_trailers.is_none();
            self.deliver_body(ctx, dir, &data, eos)?;
        }
        if let Some(trailers) = held_trailers {
            let Ok(st) = self.stream(ctx) else {
                return Ok(());
            };
            let ended = st.reset.is_some() || st.finished;
            let d = st.dir_mut(dir);
            if !ended && !d.closed && d.stopped_all.is_none() {
                self.deliver_trailers(ctx, dir, trailers)?;
            }
        }
        Ok(())
    }

    /// Envoy's reaction to a paused body over the buffer limit.
    fn over_limit(&mut self, ctx: u32, dir: Dir) -> Result<(), HostError> {
        let st = self.stream(ctx)?;
        match dir {
            Dir::Request => {
                let local = LocalResponse {
                    status: 413,
                    details: "request_payload_too_large".into(),
                    body: b"Payload Too Large".to_vec(),
                    headers: HeaderMap::new(),
                    grpc_status: -1,
                    from_filter: false,
                };
                self.local_reply(ctx, local)
            }
            Dir::Response if st.response.forwarded_headers.is_none() && !st.local_reply_in_progress => {
                let local = LocalResponse {
                    status: 500,
                    details: "response_payload_too_large".into(),
                    body: b"Internal Server Error".to_vec(),
                    headers: HeaderMap::new(),
                    grpc_status: -1,
                    from_filter: false,
                };
                self.local_reply(ctx, local)
            }
            Dir::Response => {
                st.reset = Some("response_payload_too_large".into());
                st.reset_upstream("response_payload_too_large");
                st.request.closed = true;
                st.response.closed = true;
                Ok(())
            }
        }
    }

    /// Sends a local reply: the request stops (an upstream request already
    /// started is reset), and the reply goes through this filter's response
    /// callbacks.
    fn local_reply(&mut self, ctx: u32, local: LocalResponse) -> Result<(), HostError> {
        let st = self.stream(ctx)?;
        if st.local_response.is_none() {
            st.local_response = Some(local.clone());
        }
        st.reset_upstream(format!("local reply {} ({})", local.status, local.details));
        st.request.closed = true;
        st.request.stopped = true;
        st.request.buffering = false;
        st.request.buffer.clear();
        st.request.held = None;
        st.request.held_trailers = None;
        if st.local_reply_in_progress || st.response.forwarded_headers.is_some() {
            // Envoy cannot send a reply once the response has started.
            st.reset = Some(format!("local reply {} after the response started", local.status));
            st.response.closed = true;
            return Ok(());
        }
        let mut headers = HeaderMap::new();
        headers.add(":status", local.status.to_string().as_bytes());
        for (k, v) in local.headers.iter() {
            headers.add(k, v);
        }
        if !local.body.is_empty() {
            headers.replace("content-length", local.body.len().to_string().as_bytes());
            if !headers.contains("content-type") {
                headers.add("content-type", b"text/plain");
            }
        }
        st.response = Direction::default();
        st.response_is_local = true;
        st.local_reply_in_progress = true;
        let body = local.body;
        let mut result = self.headers_event(ctx, Dir::Response, headers, body.is_empty()).map(|_| ());
        if result.is_ok() && !body.is_empty() && self.check_open(ctx, Dir::Response).is_ok() {
            result = self.body_event(ctx, Dir::Response, &body, true).map(|_| ());
        }
        if let Ok(st) = self.stream(ctx) {
            st.local_reply_in_progress = false;
        }
        result
    }

    pub(crate) fn finish_stream(&mut self, ctx: u32) -> Result<(), HostError> {
        let Ok(st) = self.stream(ctx) else {
            return Ok(());
        };
        if st.finished {
            return Ok(());
        }
        st.finished = true;
        st.reset_upstream("the downstream stream ended first");
        let r = (|| {
            call_opt!(self, on_log, "proxy_on_log", ctx, ctx)?;
            let done = call_opt!(self, on_done, "proxy_on_done", ctx, ctx)?;
            if let Ok(st) = self.stream(ctx) {
                st.on_done_result = Some(done != Some(0));
            }
            call_opt!(self, on_delete, "proxy_on_delete", ctx, ctx)?;
            Ok::<(), HostError>(())
        })();
        for call in self.store.data_mut().http_calls.iter_mut() {
            if call.context_id == ctx && call.state == HttpCallState::Pending {
                call.state = HttpCallState::Cancelled;
            }
        }
        r?;
        self.pump()
    }
}

/// One HTTP stream (request and response) through the filter.
///
/// Event methods call the guest and return what it returned; a trap is a
/// [`HostError::Trap`]. Events after the stream ended (local reply, reset,
/// finish) are [`HostError::StreamEnded`]. Dropping an unfinished exchange
/// finishes it (errors ignored) and frees its state.
pub struct Exchange {
    inner: Arc<Mutex<Inner>>,
    id: u32,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange").field("id", &self.id).finish()
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let mut inner = lock(&self.inner);
        if !inner.failed {
            let _ = inner.finish_stream(self.id);
        }
        inner.store.data_mut().streams.remove(&self.id);
    }
}

impl Exchange {
    pub(crate) fn new(inner: Arc<Mutex<Inner>>, id: u32) -> Exchange {
        Exchange { inner, id }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    fn read<T>(&self, f: impl FnOnce(&StreamState) -> T) -> Option<T> {
        let inner = self.lock();
        inner.store.data().streams.get(&self.id).map(f)
    }

    /// The HTTP context id.
    pub fn context_id(&self) -> u32 {
        self.id
    }

    /// Sets a property for this stream only (takes precedence over what
    /// Envoy derives from headers, e.g. `&["request", "id"]`).
    pub fn set_property(&mut self, path: &[&str], value: &[u8]) {
        let mut inner = self.lock();
        if let Some(st) = inner.store.data_mut().streams.get_mut(&self.id) {
            st.properties.insert(property_key(path), value.to_vec());
        }
    }

    /// Request headers from downstream: `proxy_on_request_headers`.
    pub fn request_headers(&mut self, headers: &[(&str, &str)], end_of_stream: bool) -> Result<Action, HostError> {
        self.request_headers_map(HeaderMap::from_pairs(headers), end_of_stream)
    }

    /// [`Exchange::request_headers`] with a prepared map (raw values).
    pub fn request_headers_map(&mut self, headers: HeaderMap, end_of_stream: bool) -> Result<Action, HostError> {
        self.lock().headers_event(self.id, Dir::Request, headers, end_of_stream)
    }

    /// A request body chunk: `proxy_on_request_body` with the total buffered
    /// size. While the filter is stalled at its headers, Envoy holds the
    /// chunk instead: no callback, returns `Pause`.
    pub fn request_body(&mut self, chunk: &[u8], end_of_stream: bool) -> Result<Action, HostError> {
        self.lock().body_event(self.id, Dir::Request, chunk, end_of_stream)
    }

    /// Request trailers (end of the request): `proxy_on_request_trailers`,
    /// or held (returns `Pause`) while the filter is stalled at its headers.
    pub fn request_trailers(&mut self, trailers: &[(&str, &str)]) -> Result<Action, HostError> {
        self.lock().trailers_event(self.id, Dir::Request, HeaderMap::from_pairs(trailers))
    }

    /// Response headers from upstream. Fails with [`HostError::Protocol`]
    /// if the upstream never got the request headers.
    pub fn response_headers(&mut self, headers: &[(&str, &str)], end_of_stream: bool) -> Result<Action, HostError> {
        self.lock().headers_event(self.id, Dir::Response, HeaderMap::from_pairs(headers), end_of_stream)
    }

    /// A response body chunk (held while the filter is stalled at its
    /// response headers, as for the request).
    pub fn response_body(&mut self, chunk: &[u8], end_of_stream: bool) -> Result<Action, HostError> {
        self.lock().body_event(self.id, Dir::Response, chunk, end_of_stream)
    }

    /// Response trailers (held while stalled, as for the request).
    pub fn response_trailers(&mut self, trailers: &[(&str, &str)]) -> Result<Action, HostError> {
        self.lock().trailers_event(self.id, Dir::Response, HeaderMap::from_pairs(trailers))
    }

    /// A whole upstream response: headers, then `body` in `chunk_size`
    /// pieces (0 = one piece); stops if the stream ends.
    pub fn receive_response(
        &mut self,
        headers: &[(&str, &str)],
        body: &[u8],
        chunk_size: usize,
    ) -> Result<(), HostError> {
        self.response_headers(headers, body.is_empty())?;
        let chunks: Vec<&[u8]> = if body.is_empty() {
            Vec::new()
        } else if chunk_size == 0 {
            vec![body]
        } else {
            body.chunks(chunk_size).collect()
        };
        for (i, chunk) in chunks.iter().enumerate() {
            if self.is_ended() {
                break;
            }
            self.response_body(chunk, i + 1 == chunks.len())?;
        }
        Ok(())
    }

    /// Ends the stream: `proxy_on_log`, `proxy_on_done`, `proxy_on_delete`.
    /// Idempotent.
    pub fn finish(&mut self) -> Result<(), HostError> {
        self.lock().finish_stream(self.id)
    }

    /// The request headers the upstream received, if forwarded yet.
    pub fn upstream_request_headers(&self) -> Option<HeaderMap> {
        self.read(|s| s.request.forwarded_headers.clone()).flatten()
    }

    /// The request body the upstream received so far.
    pub fn upstream_request_body(&self) -> Vec<u8> {
        self.read(|s| s.request.forwarded_body()).unwrap_or_default()
    }

    /// The request body as forwarded, one entry per release.
    pub fn upstream_request_chunks(&self) -> Vec<Vec<u8>> {
        self.read(|s| s.request.forwarded_chunks.clone()).unwrap_or_default()
    }

    /// The request trailers the upstream received.
    pub fn upstream_request_trailers(&self) -> Option<HeaderMap> {
        self.read(|s| s.request.forwarded_trailers.clone()).flatten()
    }

    /// Whether the upstream received the whole request (end of stream).
    pub fn upstream_request_complete(&self) -> bool {
        self.read(|s| s.request.end_forwarded).unwrap_or(false)
    }

    /// The request headers as the filter currently sees them.
    pub fn filter_request_headers(&self) -> Option<HeaderMap> {
        self.read(|s| s.request.headers.clone()).flatten()
    }

    /// The response headers the client received (upstream's or the local
    /// reply's, after the filter).
    pub fn downstream_response_headers(&self) -> Option<HeaderMap> {
        self.read(|s| s.response.forwarded_headers.clone()).flatten()
    }

    /// The response body the client received so far.
    pub fn downstream_response_body(&self) -> Vec<u8> {
        self.read(|s| s.response.forwarded_body()).unwrap_or_default()
    }

    /// The response body as forwarded, one entry per release.
    pub fn downstream_response_chunks(&self) -> Vec<Vec<u8>> {
        self.read(|s| s.response.forwarded_chunks.clone()).unwrap_or_default()
    }

    /// The response trailers the client received.
    pub fn downstream_response_trailers(&self) -> Option<HeaderMap> {
        self.read(|s| s.response.forwarded_trailers.clone()).flatten()
    }

    /// Whether the client received the whole response.
    pub fn downstream_response_complete(&self) -> bool {
        self.read(|s| s.response.end_forwarded).unwrap_or(false)
    }

    /// The local response the filter (or Envoy, over the buffer limit)
    /// sent, if any.
    pub fn local_response(&self) -> Option<LocalResponse> {
        self.read(|s| s.local_response.clone()).flatten()
    }

    /// Local responses ignored because one was already being sent.
    pub fn ignored_local_responses(&self) -> u32 {
        self.read(|s| s.ignored_local_responses).unwrap_or(0)
    }

    /// Why the stream was reset, if it was.
    pub fn reset_reason(&self) -> Option<String> {
        self.read(|s| s.reset.clone()).flatten()
    }

    /// Whether the upstream request was reset: it had started (the
    /// upstream got the request headers) when the stream ended early — a
    /// local reply (the filter's, or Envoy's 413), `proxy_close_stream`, a
    /// reset, or [`Exchange::finish`] before the upstream exchange was over.
    /// The upstream then saw no complete request.
    pub fn upstream_request_reset(&self) -> bool {
        self.read(|s| s.upstream_reset.is_some()).unwrap_or(false)
    }

    /// Why the upstream request was reset, if it was.
    pub fn upstream_reset_reason(&self) -> Option<String> {
        self.read(|s| s.upstream_reset.clone()).flatten()
    }

    /// Whether iteration is stopped at the filter in the request direction
    /// (paused headers, see [`Exchange::request_headers_paused`], or a
    /// paused body or trailers).
    pub fn request_paused(&self) -> bool {
        self.read(|s| s.request.stopped && !s.request.closed && s.reset.is_none()).unwrap_or(false)
    }

    /// Whether iteration is stopped in the response direction.
    pub fn response_paused(&self) -> bool {
        self.read(|s| s.response.stopped && !s.response.closed && s.reset.is_none()).unwrap_or(false)
    }

    /// Whether the request is stalled at the filter's paused headers
    /// callback (`StopAllIterationAndWatermark`): the request headers are
    /// not forwarded and no body or trailers callback comes until the
    /// filter resumes the stream; with real Envoy the client waits until
    /// it times out.
    pub fn request_headers_paused(&self) -> bool {
        self.read(|s| s.request.stopped_all.is_some() && !s.request.closed && s.reset.is_none()).unwrap_or(false)
    }

    /// Whether the response is stalled at the filter's paused response
    /// headers callback.
    pub fn response_headers_paused(&self) -> bool {
        self.read(|s| s.response.stopped_all.is_some() && !s.response.closed && s.reset.is_none()).unwrap_or(false)
    }

    /// Request body Envoy holds for a filter stalled at its headers (not
    /// yet shown to the filter).
    pub fn request_held_body(&self) -> Vec<u8> {
        self.read(|s| s.request.held.clone()).flatten().unwrap_or_default()
    }

    /// Response body Envoy holds for a filter stalled at its headers.
    pub fn response_held_body(&self) -> Vec<u8> {
        self.read(|s| s.response.held.clone()).flatten().unwrap_or_default()
    }

    /// Whether the request body held for a stalled filter went over the
    /// buffer limit: Envoy stops reading from the client (no 413), and the
    /// request hangs until resumed. The host still accepts what the test
    /// sends.
    pub fn request_above_high_watermark(&self) -> bool {
        self.read(|s| s.request.above_high_watermark).unwrap_or(false)
    }

    /// Like [`Exchange::request_above_high_watermark`] for the response
    /// (Envoy stops reading from the upstream).
    pub fn response_above_high_watermark(&self) -> bool {
        self.read(|s| s.response.above_high_watermark).unwrap_or(false)
    }

    /// Whether the request direction takes no more events (local reply,
    /// reset, finished).
    pub fn is_request_closed(&self) -> bool {
        self.read(|s| s.request.closed || s.reset.is_some() || s.finished).unwrap_or(true)
    }

    /// Whether the stream ended: local reply, reset or finished.
    pub fn is_ended(&self) -> bool {
        self.read(|s| s.local_response.is_some() || s.reset.is_some() || s.finished).unwrap_or(true)
    }

    /// Every stream callback made, with its arguments and result.
    pub fn callbacks(&self) -> Vec<CallbackRecord> {
        self.read(|s| s.callbacks.clone()).unwrap_or_default()
    }

    /// What `proxy_on_done` returned, once finished.
    pub fn on_done_result(&self) -> Option<bool> {
        self.read(|s| s.on_done_result).flatten()
    }

    /// A property as this stream's context would see it.
    pub fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        let mut inner = self.lock();
        let state = inner.store.data_mut();
        let prev = state.effective;
        state.effective = self.id;
        let mut out = Vec::new();
        let found = crate::hostcalls::lookup_property(state, &property_key(path), &mut out);
        state.effective = prev;
        found.then_some(out)
    }
}
