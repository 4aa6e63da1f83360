//! Host-side state: what lives in the wasmtime `Store` and what several
//! plugins (Envoy worker threads) share.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wasmtime::{Memory, TypedFunc};

use crate::abi::{Action, HeaderMap, LogLevel, MetricType};

/// One captured `proxy_log` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub level: LogLevel,
    /// The effective context when the guest logged.
    pub context_id: u32,
    pub message: String,
}

/// A metric value as Envoy keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricValue {
    Counter(u64),
    Gauge(u64),
    /// Every recorded value, in order.
    Histogram(Vec<u64>),
}

impl MetricValue {
    /// The counter or gauge value; `None` for a histogram.
    pub fn value(&self) -> Option<u64> {
        match self {
            MetricValue::Counter(v) | MetricValue::Gauge(v) => Some(*v),
            MetricValue::Histogram(_) => None,
        }
    }
}

/// What happened to a dispatched HTTP call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpCallState {
    /// Waiting for [`crate::Plugin::respond_to_http_call`] or
    /// [`crate::Plugin::fail_http_call`].
    Pending,
    Responded,
    /// Delivered as a failure (no headers), e.g. a timeout or reset.
    Failed,
    /// Its HTTP context died first; Envoy cancels such calls.
    Cancelled,
}

/// One `proxy_http_call` the guest made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    pub token: u32,
    /// The context that dispatched it (effective context at the call).
    pub context_id: u32,
    /// The upstream cluster name.
    pub upstream: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: HeaderMap,
    pub timeout: Duration,
    pub state: HttpCallState,
}

/// A `proxy_send_local_response` the guest made, or the local reply Envoy
/// itself generated (buffer limit exceeded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u32,
    /// Envoy's "response code details".
    pub details: String,
    pub body: Vec<u8>,
    /// The additional headers the guest passed (not the full response:
    /// see [`crate::Exchange::downstream_response_headers`]).
    pub headers: HeaderMap,
    pub grpc_status: i32,
    /// False when Envoy generated it (413/500 over the buffer limit).
    pub from_filter: bool,
}

/// One stream callback the host made, with what the guest returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRecord {
    pub callback: &'static str,
    /// `num_headers`, `body_size` or `num_trailers`, as passed.
    pub size: u32,
    pub end_of_stream: bool,
    pub action: Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Headers,
    Body,
    Trailers,
}

/// One direction (request or response) of an HTTP stream at our filter.
#[derive(Debug, Default)]
pub(crate) struct Direction {
    /// Headers as the filter sees (and edits) them.
    pub headers: Option<HeaderMap>,
    pub trailers: Option<HeaderMap>,
    /// Body buffered at the filter (current chunk, or everything since the
    /// last `Continue` while the filter pauses).
    pub buffer: Vec<u8>,
    /// The last body callback returned Pause: keep buffering.
    pub buffering: bool,
    /// Iteration is stopped at this filter.
    pub stopped: bool,
    /// The headers callback stopped all iteration (what proxy-wasm makes
    /// of a paused headers callback): no body or trailers callback of this
    /// direction until the filter resumes the stream.
    pub stopped_all: Option<StopAll>,
    /// Data Envoy received while `stopped_all`, delivered to the body
    /// callback on resume (`Some` once any data frame arrived, even empty).
    pub held: Option<Vec<u8>>,
    /// Trailers received while `stopped_all`, not yet shown to the filter.
    pub held_trailers: Option<HeaderMap>,
    /// Data held for `StopAllIterationAndWatermark` went over the limit:
    /// Envoy stopped reading from the sender, and its buffer sends no
    /// 413/500 for this stretch (the watermark fires once, until drained).
    pub above_high_watermark: bool,
    /// True while the body callback of this direction runs.
    pub in_body_callback: bool,
    pub in_body_callback_eos: bool,
    pub end_received: bool,
    /// What went on to the next hop.
    pub forwarded_headers: Option<HeaderMap>,
    pub forwarded_chunks: Vec<Vec<u8>>,
    pub forwarded_trailers: Option<HeaderMap>,
    pub end_forwarded: bool,
    /// No more events for this direction (local reply, reset).
    pub closed: bool,
}

/// How a headers callback stopped all iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopAll {
    /// `StopAllIterationAndBuffer`: over the limit is Envoy's 413/500.
    Buffer,
    /// `StopAllIterationAndWatermark`: over the limit only stops reading.
    Watermark,
}

impl Direction {
    /// Forwards everything held: headers, buffered body, trailers. Not for
    /// a direction stopped at its headers (see `Inner::resume_direction`).
    pub fn resume(&mut self) {
        if self.closed {
            return;
        }
        self.above_high_watermark = false;
        if self.forwarded_headers.is_none() {
            if let Some(h) = &self.headers {
                self.forwarded_headers = Some(h.clone());
            }
        }
        if !self.buffer.is_empty() {
            self.forwarded_chunks.push(std::mem::take(&mut self.buffer));
        }
        if let Some(t) = &self.trailers {
            if self.forwarded_trailers.is_none() && self.end_received {
                self.forwarded_trailers = Some(t.clone());
            }
        }
        self.buffering = false;
        self.stopped = false;
        if self.end_received && self.forwarded_headers.is_some() {
            self.end_forwarded = true;
        }
    }

    pub fn forwarded_body(&self) -> Vec<u8> {
        self.forwarded_chunks.concat()
    }
}

/// Actions the guest asked for during a callback; Envoy runs them after the
/// VM call returns.
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    pub continue_request: bool,
    pub continue_response: bool,
    pub close_request: bool,
    pub close_response: bool,
    pub local_response: Option<LocalResponse>,
}

/// The state of one HTTP context.
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    pub request: Direction,
    pub response: Direction,
    /// Properties set by the test for this stream or by the guest.
    pub properties: HashMap<Vec<u8>, Vec<u8>>,
    pub deferred: Deferred,
    pub local_response: Option<LocalResponse>,
    /// Local replies requested while one was already being sent (ignored).
    pub ignored_local_responses: u32,
    pub local_reply_in_progress: bool,
    /// The response comes from a local reply: no upstream response accepted.
    pub response_is_local: bool,
    pub reset: Option<String>,
    /// Why the upstream request was reset (it had started: the upstream
    /// got the request headers, and the upstream response was not over).
    pub upstream_reset: Option<String>,
    /// The upstream's response ended (end of stream received from it).
    pub upstream_response_complete: bool,
    pub finished: bool,
    pub on_done_result: Option<bool>,
    pub callbacks: Vec<CallbackRecord>,
}

impl StreamState {
    /// Records that the upstream request is reset because the stream ends
    /// now, if the upstream exchange had started and was not over.
    pub fn reset_upstream(&mut self, why: impl Into<String>) {
        let started = self.request.forwarded_headers.is_some();
        let over = self.request.end_forwarded && self.upstream_response_complete;
        if started && !over && self.upstream_reset.is_none() {
            self.upstream_reset = Some(why.into());
        }
    }
}

/// The clock the guest sees.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Clock {
    System {
        start: Instant,
    },
    /// Fixed at `now_ns`, moved only by the test.
    Manual {
        now_ns: u64,
    },
}

impl Clock {
    pub fn realtime_ns(&self) -> u64 {
        match self {
            Clock::System { .. } => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .unwrap_or(0),
            Clock::Manual { now_ns } => *now_ns,
        }
    }

    pub fn monotonic_ns(&self) -> u64 {
        match self {
            Clock::System { start } => u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX),
            Clock::Manual { now_ns } => *now_ns,
        }
    }
}

/// The response of an HTTP call while `proxy_on_http_call_response` runs.
#[derive(Debug, Default)]
pub(crate) struct CallResponse {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: HeaderMap,
}

/// Data of the wasmtime store: everything host functions can reach.
pub(crate) struct HostState {
    pub memory: Option<Memory>,
    pub alloc: Option<TypedFunc<u32, u32>>,
    pub root_id: u32,
    pub effective: u32,
    pub vm_config: Vec<u8>,
    pub plugin_config: Vec<u8>,
    pub configuring: bool,
    /// `KEY=VALUE` strings for WASI `environ_get`.
    pub env: Vec<Vec<u8>>,
    pub properties: HashMap<Vec<u8>, Vec<u8>>,
    pub log_level: LogLevel,
    pub logs: Vec<LogEntry>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub clock: Clock,
    pub rng: u64,
    pub tick_period_ms: u32,
    pub streams: HashMap<u32, StreamState>,
    pub http_calls: Vec<HttpCall>,
    pub next_token: u32,
    pub call_response: Option<CallResponse>,
    /// Known upstream clusters; `None` accepts any name.
    pub clusters: Option<HashSet<String>>,
    pub metric_ids: HashMap<u32, (MetricType, String)>,
    pub metric_by_key: HashMap<(MetricType, String), u32>,
    pub shared: SharedState,
    pub vm_id: String,
    pub plugin_id: u64,
    /// Calls of imports this host does not implement.
    pub unimplemented_calls: Vec<String>,
    /// Host calls the guest made, counted with `MESHWARD_HOST_FUEL=1`.
    pub host_calls: u64,
    pub root_done_pending: bool,
    pub proxy_done_called: bool,
    pub scratch: Vec<u8>,
}

impl HostState {
    pub fn next_random(&mut self) -> u64 {
        // SplitMix64: deterministic for a given seed, good enough for a test
        // host (not cryptographic).
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

static NEXT_PLUGIN_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_plugin_id() -> u64 {
    NEXT_PLUGIN_ID.fetch_add(1, Ordering::Relaxed)
}

/// Process-wide state that Envoy shares between the VMs of one `vm_id` on
/// all worker threads: shared data (with CAS), shared queues and metrics.
///
/// Every [`crate::Plugin`] gets a fresh one unless the builder is given one
/// with [`crate::PluginBuilder::shared_state`]: pass the same value to
/// several plugins to emulate several Envoy workers.
#[derive(Clone, Default)]
pub struct SharedState {
    inner: Arc<Mutex<SharedInner>>,
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState").finish_non_exhaustive()
    }
}

#[derive(Default)]
pub(crate) struct SharedInner {
    pub data: HashMap<(String, Vec<u8>), (Vec<u8>, u32)>,
    pub last_cas: u32,
    /// Queue token = index + 1.
    pub queues: Vec<SharedQueue>,
    pub queue_by_name: HashMap<(String, Vec<u8>), u32>,
    pub metrics: HashMap<(MetricType, String), MetricValue>,
    /// Pending `proxy_on_queue_ready` per plugin: (root context, token).
    pub notifications: HashMap<u64, VecDeque<(u32, u32)>>,
}

pub(crate) struct SharedQueue {
    pub owner_plugin: u64,
    pub owner_context: u32,
    pub items: VecDeque<Vec<u8>>,
}

impl SharedInner {
    pub fn next_cas(&mut self) -> u32 {
        self.last_cas = self.last_cas.wrapping_add(1);
        if self.last_cas == 0 {
            self.last_cas = 1;
        }
        self.last_cas
    }
}

impl SharedState {
    pub fn new() -> SharedState {
        SharedState::default()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, SharedInner> {
        // A poisoned lock only means another test thread panicked; the data
        // is still consistent (every update is a single statement).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The shared data value and CAS of `key` in `vm_id`.
    pub fn shared_data(&self, vm_id: &str, key: &[u8]) -> Option<(Vec<u8>, u32)> {
        self.lock().data.get(&(vm_id.to_string(), key.to_vec())).cloned()
    }

    /// Sets shared data from the test side (like another VM would).
    pub fn set_shared_data(&self, vm_id: &str, key: &[u8], value: &[u8]) {
        let mut s = self.lock();
        let cas = s.next_cas();
        s.data.insert((vm_id.to_string(), key.to_vec()), (value.to_vec(), cas));
    }

    /// The items currently in the named queue, oldest first.
    pub fn queue_items(&self, vm_id: &str, name: &str) -> Option<Vec<Vec<u8>>> {
        let s = self.lock();
        let token = *s.queue_by_name.get(&(vm_id.to_string(), name.as_bytes().to_vec()))?;
        let q = s.queues.get(token as usize - 1)?;
        Some(q.items.iter().cloned().collect())
    }

    /// Removes and returns every item of the named queue.
    pub fn drain_queue(&self, vm_id: &str, name: &str) -> Option<Vec<Vec<u8>>> {
        let mut s = self.lock();
        let token = *s.queue_by_name.get(&(vm_id.to_string(), name.as_bytes().to_vec()))?;
        let q = s.queues.get_mut(token as usize - 1)?;
        Some(q.items.drain(..).collect())
    }

    /// Enqueues from the test side; the owner gets `proxy_on_queue_ready`
    /// at its next pump. Returns false when no such queue exists.
    pub fn enqueue(&self, vm_id: &str, name: &str, item: &[u8]) -> bool {
        let mut s = self.lock();
        let Some(&token) = s.queue_by_name.get(&(vm_id.to_string(), name.as_bytes().to_vec())) else {
            return false;
        };
        let Some(q) = s.queues.get_mut(token as usize - 1) else {
            return false;
        };
        q.items.push_back(item.to_vec());
        let (owner, ctx) = (q.owner_plugin, q.owner_context);
        s.notifications.entry(owner).or_default().push_back((ctx, token));
        true
    }

    /// A metric by the name the guest defined it with (any type).
    pub fn metric(&self, name: &str) -> Option<MetricValue> {
        let s = self.lock();
        [MetricType::Counter, MetricType::Gauge, MetricType::Histogram]
            .iter()
            .find_map(|t| s.metrics.get(&(*t, name.to_string())).cloned())
    }

    /// Every metric, sorted by name.
    pub fn metrics(&self) -> Vec<(String, MetricValue)> {
        let s = self.lock();
        let mut all: Vec<_> = s.metrics.iter().map(|((_, n), v)| (n.clone(), v.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}
