//! Shipping decision events to the audit sink.
//!
//! HTTP contexts serialise their event onto a shared queue (one per `vm_id`,
//! so all workers share it) and never wait for the sink. Root contexts drain
//! it on their tick: a batch leaves when it is full or the flush interval has
//! passed, signed per Standard Webhooks, with `dispatch_http_call` to the
//! sink's cluster. Calls from root contexts are not cancelled when a request
//! ends, which is why shipping lives here.
//!
//! Shared queues are unbounded, so a shared counter (CAS-updated shared data)
//! caps the depth: over `queue_max_events`, events are dropped and counted —
//! or, with `audit.required`, new requests are refused instead. A failed
//! batch is retried with exponential backoff under the same `webhook-id`
//! (the sink dedupes on it) and dropped after `MAX_ATTEMPTS`.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use meshward_audit_proto::Secret;
use meshward_engine::audit::AuditConfig;

use crate::abi::{self, Level, MetricType};

const QUEUE_NAME: &str = "meshward.audit.events";
const DEPTH_KEY: &str = "meshward.audit.depth";
const MAX_ATTEMPTS: u32 = 8;
const MAX_BACKOFF_MS: u64 = 30_000;
/// Tick granularity: batches can leave this soon after they fill up.
const MAX_TICK_MS: u64 = 200;

/// Per-VM state shared by the root and its HTTP contexts.
pub struct Runtime {
    /// Identifies this VM (one per worker) for the life of the VM.
    pub instance_id: String,
    seq: Cell<u64>,
    queue_id: Cell<Option<u32>>,
    queue_max: Cell<usize>,
    metrics: Metrics,
}

#[derive(Default)]
struct Metrics {
    sent: Option<u32>,
    retried: Option<u32>,
    dropped: Option<u32>,
    depth: Option<u32>,
}

impl Metrics {
    fn define() -> Metrics {
        let counter = |name| abi::define_metric(MetricType::Counter, name).ok();
        Metrics {
            sent: counter("meshward_audit_events_sent"),
            retried: counter("meshward_audit_batches_retried"),
            dropped: counter("meshward_audit_events_dropped"),
            depth: abi::define_metric(MetricType::Gauge, "meshward_audit_queue_depth").ok(),
        }
    }
}

fn bump(metric: Option<u32>, n: usize) {
    if let Some(id) = metric {
        abi::increment_metric(id, n as i64);
    }
}

impl Runtime {
    pub fn new() -> Runtime {
        Runtime {
            instance_id: random_hex(),
            seq: Cell::new(0),
            queue_id: Cell::new(None),
            queue_max: Cell::new(0),
            metrics: Metrics::define(),
        }
    }

    /// The next per-instance sequence number (starts at 1). Taken even when
    /// the event is then dropped, so the sink sees the gap.
    pub fn next_seq(&self) -> u64 {
        let next = self.seq.get() + 1;
        self.seq.set(next);
        next
    }

    /// Whether the queue is at its cap (for `audit.required`).
    pub fn is_full(&self) -> bool {
        self.queue_id.get().is_some() && depth() >= self.queue_max.get() as u64
    }

    /// Queues one serialised event; drops and counts it when the queue is full.
    pub fn enqueue(&self, request_id: &str, event: &[u8]) {
        let Some(queue) = self.queue_id.get() else { return };
        if depth() >= self.queue_max.get() as u64 {
            bump(self.metrics.dropped, 1);
            abi::log(Level::Warn, &format!("meshward: request {request_id}: audit queue full, event dropped"));
            return;
        }
        match abi::enqueue_shared_queue(queue, event) {
            Ok(()) => self.record_depth(adjust_depth(1)),
            Err(status) => {
                bump(self.metrics.dropped, 1);
                abi::log(
                    Level::Error,
                    &format!("meshward: request {request_id}: cannot queue audit event: {status:?}"),
                );
            }
        }
    }

    fn record_depth(&self, depth: u64) {
        if let Some(id) = self.metrics.depth {
            abi::record_metric(id, depth);
        }
    }
}

/// A batch on its way to the sink.
struct Batch {
    webhook_id: String,
    body: Vec<u8>,
    events: usize,
    attempts: u32,
    not_before_ms: u64,
}

/// Root-context side: drains the queue and talks to the sink.
pub struct Shipper {
    config: AuditConfig,
    secret: Secret,
    batches: u64,
    last_flush_ms: u64,
    in_flight: Option<(u32, Batch)>,
    retry: Option<Batch>,
}

impl Shipper {
    /// Registers the queue and the tick. `None` when audit is off.
    pub fn start(runtime: &Runtime, config: &AuditConfig, secret: Option<Secret>) -> Result<Option<Shipper>, String> {
        let Some(secret) = secret.filter(|_| config.enabled) else {
            runtime.queue_id.set(None);
            return Ok(None);
        };
        let queue =
            abi::register_shared_queue(QUEUE_NAME).map_err(|s| format!("cannot register audit queue: {s:?}"))?;
        runtime.queue_id.set(Some(queue));
        runtime.queue_max.set(config.queue_max_events);
        let tick = config.flush_interval_ms.min(MAX_TICK_MS) as u32;
        abi::set_tick_period_ms(tick).map_err(|s| format!("cannot set the tick period: {s:?}"))?;
        Ok(Some(Shipper {
            config: config.clone(),
            secret,
            batches: 0,
            last_flush_ms: now_ms(),
            in_flight: None,
            retry: None,
        }))
    }

    pub fn on_tick(&mut self, runtime: &Runtime) {
        if self.in_flight.is_some() {
            return; // Envoy always answers a call, if only with a timeout.
        }
        let now = now_ms();
        if let Some(batch) = self.retry.take() {
            if batch.not_before_ms <= now {
                self.send(runtime, batch);
            } else {
                self.retry = Some(batch);
            }
            return;
        }
        let depth = depth();
        let interval_passed = now.saturating_sub(self.last_flush_ms) >= self.config.flush_interval_ms;
        if depth == 0 || (depth < self.config.batch_max_events as u64 && !interval_passed) {
            if interval_passed {
                self.last_flush_ms = now;
            }
            return;
        }
        self.last_flush_ms = now;
        if let Some(batch) = self.take_batch(runtime) {
            self.send(runtime, batch);
        }
    }

    /// Dequeues up to a batch of events into one JSON array body.
    fn take_batch(&mut self, runtime: &Runtime) -> Option<Batch> {
        let queue = runtime.queue_id.get()?;
        let mut body = vec![b'['];
        let mut events = 0;
        while events < self.config.batch_max_events {
            match abi::dequeue_shared_queue(queue) {
                Ok(Some(event)) => {
                    if events > 0 {
                        body.push(b',');
                    }
                    body.extend_from_slice(&event);
                    events += 1;
                }
                Ok(None) => break,
                Err(status) => {
                    abi::log(Level::Error, &format!("meshward: cannot dequeue audit events: {status:?}"));
                    break;
                }
            }
        }
        runtime.record_depth(adjust_depth(-(events as i64)));
        if events == 0 {
            return None;
        }
        body.push(b']');
        self.batches += 1;
        Some(Batch {
            webhook_id: format!("msg_{}_{}", runtime.instance_id, self.batches),
            body,
            events,
            attempts: 0,
            not_before_ms: 0,
        })
    }

    fn send(&mut self, runtime: &Runtime, batch: Batch) {
        let unix_secs = now_ms() / 1000;
        let timestamp = unix_secs.to_string();
        let signature = self.secret.sign(&batch.webhook_id, unix_secs as i64, &batch.body);
        let headers = [
            (":method", "POST"),
            (":path", self.config.path.as_str()),
            (":authority", self.config.authority.as_str()),
            ("content-type", "application/json"),
            ("webhook-id", batch.webhook_id.as_str()),
            ("webhook-timestamp", timestamp.as_str()),
            ("webhook-signature", signature.as_str()),
        ];
        let timeout = self.config.timeout_ms.min(u64::from(u32::MAX)) as u32;
        match abi::http_call(&self.config.cluster, &headers, &batch.body, timeout) {
            Ok(token) => self.in_flight = Some((token, batch)),
            Err(status) => {
                abi::log(
                    Level::Error,
                    &format!("meshward: cannot call audit cluster '{}': {status:?}", self.config.cluster),
                );
                self.failed(runtime, batch);
            }
        }
    }

    pub fn on_http_call_response(&mut self, runtime: &Runtime, token: u32) {
        let Some((expected, batch)) = self.in_flight.take() else { return };
        if expected != token {
            self.in_flight = Some((expected, batch));
            return;
        }
        let status = abi::http_call_status();
        // 409: the sink already has this webhook-id (an earlier attempt landed).
        if (200..300).contains(&status) || status == 409 {
            bump(runtime.metrics.sent, batch.events);
        } else {
            abi::log(
                Level::Warn,
                &format!("meshward: audit sink answered {status} to {}; will retry", batch.webhook_id),
            );
            self.failed(runtime, batch);
        }
    }

    fn failed(&mut self, runtime: &Runtime, mut batch: Batch) {
        batch.attempts += 1;
        if batch.attempts >= MAX_ATTEMPTS {
            bump(runtime.metrics.dropped, batch.events);
            abi::log(
                Level::Error,
                &format!(
                    "meshward: dropped audit batch {} ({} events) after {} attempts",
                    batch.webhook_id, batch.events, batch.attempts
                ),
            );
            return;
        }
        bump(runtime.metrics.retried, 1);
        let backoff = (500u64 << batch.attempts.min(16)).min(MAX_BACKOFF_MS);
        batch.not_before_ms = now_ms() + backoff;
        self.retry = Some(batch);
    }
}

fn now_ms() -> u64 {
    abi::now_nanos() / 1_000_000
}

fn depth() -> u64 {
    match abi::get_shared_data(DEPTH_KEY) {
        Ok((Some(bytes), _)) => decode_u64(&bytes),
        _ => 0,
    }
}

/// Adds `delta` to the shared depth counter (floored at 0) with CAS retries;
/// returns the new depth. Losing a race repeatedly only skews the cap a
/// little, never blocks a request.
fn adjust_depth(delta: i64) -> u64 {
    for _ in 0..16 {
        let (current, cas) = match abi::get_shared_data(DEPTH_KEY) {
            Ok((value, cas)) => (value.map_or(0, |v| decode_u64(&v)), cas),
            Err(_) => return 0,
        };
        let next = current.saturating_add_signed(delta);
        match abi::set_shared_data(DEPTH_KEY, &next.to_le_bytes(), cas) {
            Ok(()) => return next,
            Err(abi::HostStatus(abi::CAS_MISMATCH)) => continue,
            Err(_) => return next,
        }
    }
    depth()
}

fn decode_u64(bytes: &[u8]) -> u64 {
    let mut raw = [0u8; 8];
    for (slot, byte) in raw.iter_mut().zip(bytes) {
        *slot = *byte;
    }
    u64::from_le_bytes(raw)
}

/// 16 hex digits from the WASI random source std seeds `RandomState` with.
fn random_hex() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(abi::now_nanos());
    format!("{:016x}", hasher.finish())
}
