//! Non-panicking wrappers over the proxy-wasm ABI 0.2.1 host functions.
//!
//! The SDK's `hostcalls` module panics on any status it does not expect and
//! on non-UTF-8 header values; a panic kills the VM for every later request.
//! These wrappers return every status to the caller instead. Buffers the host
//! returns were allocated by the SDK's exported `proxy_on_memory_allocate`
//! (a `Vec<u8>` with capacity == size), so we take them back the same way.

use std::borrow::Cow;
use std::ops::Range;
use std::ptr::{null, null_mut};

/// A status the host returned instead of `Ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostStatus(pub u32);

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;

pub type HostResult<T> = Result<T, HostStatus>;

#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Buffer {
    HttpRequestBody = 0,
    HttpResponseBody = 1,
    PluginConfiguration = 7,
}

#[derive(Clone, Copy)]
#[repr(u32)]
pub enum HeaderMap {
    HttpRequestHeaders = 0,
    HttpResponseHeaders = 2,
}

#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Level {
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_log_level(return_level: *mut u32) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(buffer_type: u32, start: usize, size: usize, data: *const u8, data_size: usize) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(map_type: u32, return_map_data: *mut *mut u8, return_map_size: *mut usize) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    #[allow(clippy::too_many_arguments)]
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
}

/// Takes ownership of a host-returned buffer.
///
/// # Safety
/// `data` must be null or a buffer of `size` bytes allocated by this
/// module's allocator (`proxy_on_memory_allocate`).
unsafe fn take(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        Vec::from_raw_parts(data, size, size)
    }
}

fn status(code: u32) -> HostResult<()> {
    if code == OK {
        Ok(())
    } else {
        Err(HostStatus(code))
    }
}

thread_local! {
    /// Whether the host logs debug lines; read at configure time so hot
    /// paths skip formatting messages nobody will see.
    static DEBUG_ENABLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Reads the host's log level (`proxy_get_log_level`) and caches it.
pub fn refresh_log_level() {
    let mut level = 0;
    let enabled = unsafe { proxy_get_log_level(&mut level) } == OK && level <= Level::Debug as u32;
    DEBUG_ENABLED.with(|d| d.set(enabled));
}

pub fn debug_enabled() -> bool {
    DEBUG_ENABLED.with(|d| d.get())
}

pub fn log(level: Level, message: &str) {
    // Nothing sensible to do if logging itself fails.
    let _ = unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) };
}

/// `Ok(None)` when the buffer does not exist (e.g. no body yet).
pub fn get_buffer(buffer: Buffer, start: usize, max_size: usize) -> HostResult<Option<Vec<u8>>> {
    let mut data = null_mut();
    let mut size = 0;
    let code = unsafe { proxy_get_buffer_bytes(buffer as u32, start, max_size, &mut data, &mut size) };
    match code {
        OK => Ok(Some(unsafe { take(data, size) })),
        NOT_FOUND => Ok(None),
        other => Err(HostStatus(other)),
    }
}

/// Replaces `[start, start + size)` of the buffer with `value`.
pub fn set_buffer(buffer: Buffer, start: usize, size: usize, value: &[u8]) -> HostResult<()> {
    status(unsafe { proxy_set_buffer_bytes(buffer as u32, start, size, value.as_ptr(), value.len()) })
}

/// A header map as read in one host call. In V8 every host call costs about
/// a microsecond, and returning a value costs another call back into the VM
/// to allocate it; a request reads up to nine headers, so one snapshot is
/// several times cheaper than reading them one by one. Values are decoded
/// on lookup, so unread headers cost no allocation.
#[derive(Debug, Default)]
pub struct Headers {
    raw: Vec<u8>,
    /// Per header, where its name and value sit in `raw`.
    spans: Vec<(Range<usize>, Range<usize>)>,
}

impl Headers {
    /// The first value of `name` (as `proxy_get_header_map_value` answers),
    /// names compared ASCII case-insensitively; non-UTF-8 bytes are
    /// replaced, never a panic.
    pub fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        let (_, value) = self
            .spans
            .iter()
            .find(|(key, _)| self.raw.get(key.clone()).is_some_and(|k| k.eq_ignore_ascii_case(name.as_bytes())))?;
        self.raw.get(value.clone()).map(String::from_utf8_lossy)
    }

    pub fn owned(&self, name: &str) -> Option<String> {
        self.get(name).map(Cow::into_owned)
    }
}

/// Every header of `map`. A map the host encodes malformed is an error, not
/// a partial read.
pub fn headers(map: HeaderMap) -> HostResult<Headers> {
    let mut data = null_mut();
    let mut size = 0;
    let code = unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
    match code {
        OK => {
            let raw = unsafe { take(data, size) };
            let spans = decode_header_map(&raw).ok_or(HostStatus(MALFORMED_MAP))?;
            Ok(Headers { raw, spans })
        }
        NOT_FOUND => Ok(Headers::default()),
        other => Err(HostStatus(other)),
    }
}

/// Not a host status: ours for a header map that does not decode.
pub const MALFORMED_MAP: u32 = u32::MAX;

/// Decodes the ABI's map encoding (see [`encode_header_map`]) into the
/// spans of each name and value; `None` if any count or length runs past
/// the buffer. An empty buffer is an empty map.
fn decode_header_map(bytes: &[u8]) -> Option<Vec<(Range<usize>, Range<usize>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let u32_at = |at: usize| -> Option<usize> {
        let word: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(word)).ok()
    };
    let count = u32_at(0)?;
    // Each pair needs eight bytes of lengths and two NULs: bounds the
    // allocation by the buffer, whatever the count claims.
    if count > bytes.len() / 10 {
        return None;
    }
    let mut spans = Vec::with_capacity(count);
    let mut data = 4usize.checked_add(count.checked_mul(8)?)?;
    for i in 0..count {
        let lengths = 4 + i * 8;
        let (key_len, value_len) = (u32_at(lengths)?, u32_at(lengths + 4)?);
        let key = data..data.checked_add(key_len)?;
        let value = key.end.checked_add(1)?..key.end.checked_add(1)?.checked_add(value_len)?;
        data = value.end.checked_add(1)?;
        spans.push((key, value));
    }
    (data <= bytes.len()).then_some(spans)
}

pub fn replace_header(map: HeaderMap, name: &str, value: &str) -> HostResult<()> {
    status(unsafe {
        proxy_replace_header_map_value(map as u32, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    })
}

pub fn remove_header(map: HeaderMap, name: &str) -> HostResult<()> {
    status(unsafe { proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) })
}

/// A property such as `["request", "id"]`; `Ok(None)` when absent.
pub fn property(path: &[&str]) -> HostResult<Option<Vec<u8>>> {
    // Path segments are NUL-separated on the wire.
    let encoded = path.join("\0");
    let mut data = null_mut();
    let mut size = 0;
    let code = unsafe { proxy_get_property(encoded.as_ptr(), encoded.len(), &mut data, &mut size) };
    match code {
        OK => Ok(Some(unsafe { take(data, size) })),
        NOT_FOUND => Ok(None),
        other => Err(HostStatus(other)),
    }
}

/// Answers the request locally; nothing goes upstream.
pub fn send_local_response(status_code: u32, headers: &[(&str, &str)], body: &[u8]) -> HostResult<()> {
    let encoded = encode_header_map(headers);
    status(unsafe {
        proxy_send_local_response(
            status_code,
            null(),
            0,
            body.as_ptr(),
            body.len(),
            encoded.as_ptr(),
            encoded.len(),
            -1,
        )
    })
}

/// The ABI's map encoding: count, then (key length, value length) pairs,
/// then each key and value followed by a NUL byte. Lengths are u32 LE.
fn encode_header_map(headers: &[(&str, &str)]) -> Vec<u8> {
    let data: usize = headers.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut out = Vec::with_capacity(4 + headers.len() * 8 + data);
    out.extend_from_slice(&(headers.len() as u32).to_le_bytes());
    for (k, v) in headers {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

// ---- Time, ticks, HTTP calls, shared queues and data, metrics (audit shipping) ----

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_register_shared_queue(name_data: *const u8, name_size: usize, return_id: *mut u32) -> u32;
    fn proxy_enqueue_shared_queue(queue_id: u32, value_data: *const u8, value_size: usize) -> u32;
    fn proxy_dequeue_shared_queue(queue_id: u32, return_value_data: *mut *mut u8, return_value_size: *mut usize)
        -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_define_metric(metric_type: u32, name_data: *const u8, name_size: usize, return_id: *mut u32) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
}

pub const EMPTY: u32 = 7;
pub const CAS_MISMATCH: u32 = 8;

/// Host wall-clock time in nanoseconds since the Unix epoch (0 if unavailable).
pub fn now_nanos() -> u64 {
    let mut time = 0;
    match unsafe { proxy_get_current_time_nanoseconds(&mut time) } {
        OK => time,
        _ => 0,
    }
}

pub fn set_tick_period_ms(period: u32) -> HostResult<()> {
    status(unsafe { proxy_set_tick_period_milliseconds(period) })
}

/// Dispatches an HTTP call to an Envoy cluster; returns the call's token.
///
/// Goes through the SDK because its dispatcher must record the token, or
/// it panics when the response arrives. The SDK call only panics on
/// statuses `proxy_http_call` never returns (it maps BadArgument and
/// InternalFailure to errors).
pub fn http_call(cluster: &str, headers: &[(&str, &str)], body: &[u8], timeout_ms: u32) -> HostResult<u32> {
    proxy_wasm::hostcalls::dispatch_http_call(
        cluster,
        headers.to_vec(),
        Some(body),
        Vec::new(),
        std::time::Duration::from_millis(u64::from(timeout_ms)),
    )
    .map_err(|status| HostStatus(status as u32))
}

/// The `:status` of the HTTP call response being delivered (0 if none:
/// Envoy reports a failed or timed-out call with no headers).
pub fn http_call_status() -> u16 {
    const HTTP_CALL_RESPONSE_HEADERS: u32 = 6;
    let name = ":status";
    let mut data = null_mut();
    let mut size = 0;
    let code = unsafe {
        proxy_get_header_map_value(HTTP_CALL_RESPONSE_HEADERS, name.as_ptr(), name.len(), &mut data, &mut size)
    };
    if code != OK {
        return 0;
    }
    let value = unsafe { take(data, size) };
    std::str::from_utf8(&value).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

pub fn register_shared_queue(name: &str) -> HostResult<u32> {
    let mut id = 0;
    status(unsafe { proxy_register_shared_queue(name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn enqueue_shared_queue(queue_id: u32, value: &[u8]) -> HostResult<()> {
    status(unsafe { proxy_enqueue_shared_queue(queue_id, value.as_ptr(), value.len()) })
}

/// `Ok(None)` when the queue is empty.
pub fn dequeue_shared_queue(queue_id: u32) -> HostResult<Option<Vec<u8>>> {
    let mut data = null_mut();
    let mut size = 0;
    match unsafe { proxy_dequeue_shared_queue(queue_id, &mut data, &mut size) } {
        OK => Ok(Some(unsafe { take(data, size) })),
        EMPTY => Ok(None),
        other => Err(HostStatus(other)),
    }
}

/// The value and its CAS token; `(None, 0)` when the key does not exist.
pub fn get_shared_data(key: &str) -> HostResult<(Option<Vec<u8>>, u32)> {
    let mut data = null_mut();
    let mut size = 0;
    let mut cas = 0;
    match unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) } {
        OK => Ok((Some(unsafe { take(data, size) }), cas)),
        NOT_FOUND => Ok((None, 0)),
        other => Err(HostStatus(other)),
    }
}

/// Sets `key` if its CAS token is still `cas` (0 = unconditionally).
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> HostResult<()> {
    status(unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) })
}

#[derive(Clone, Copy)]
#[repr(u32)]
pub enum MetricType {
    Counter = 0,
    Gauge = 1,
    Histogram = 2,
}

pub fn define_metric(kind: MetricType, name: &str) -> HostResult<u32> {
    let mut id = 0;
    status(unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn increment_metric(id: u32, offset: i64) {
    // A metric that cannot be updated must not fail the request.
    let _ = unsafe { proxy_increment_metric(id, offset) };
}

pub fn record_metric(id: u32, value: u64) {
    let _ = unsafe { proxy_record_metric(id, value) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes as `headers` does, then reads every pair back.
    fn decode(bytes: &[u8]) -> Option<Vec<(String, String)>> {
        let spans = decode_header_map(bytes)?;
        let text = |r: &Range<usize>| String::from_utf8_lossy(bytes.get(r.clone()).unwrap_or_default()).into_owned();
        Some(spans.iter().map(|(k, v)| (text(k), text(v))).collect())
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn header_maps_round_trip() {
        let list = [(":path", "/v1/chat/completions"), ("x-request-id", "r-1"), ("empty", ""), ("x-request-id", "r-2")];
        let encoded = encode_header_map(&list);
        assert_eq!(decode(&encoded), Some(pairs(&list)));
        let headers = Headers { spans: decode_header_map(&encoded).unwrap_or_default(), raw: encoded };
        // The first value wins, as with proxy_get_header_map_value.
        assert_eq!(headers.owned("X-Request-Id").as_deref(), Some("r-1"));
        assert_eq!(headers.owned("empty").as_deref(), Some(""));
        assert_eq!(headers.owned("absent"), None);
        assert_eq!(decode(&[]), Some(Vec::new()));
        assert_eq!(decode(&encode_header_map(&[])), Some(Vec::new()));
    }

    #[test]
    fn malformed_header_maps_are_refused_not_misread() {
        let encoded = encode_header_map(&[("content-type", "application/json"), ("a", "b")]);
        for cut in 1..encoded.len() {
            assert_eq!(decode(encoded.get(..cut).unwrap_or_default()), None, "cut at {cut}");
        }
        // A count far beyond the buffer does not allocate for it.
        let mut huge = encoded.clone();
        huge.splice(0..4, u32::MAX.to_le_bytes());
        assert_eq!(decode(&huge), None);
        // A length that runs past the end.
        let mut long = encoded;
        long.splice(4..8, 1000u32.to_le_bytes());
        assert_eq!(decode(&long), None);
    }

    #[test]
    fn non_utf8_values_are_replaced() {
        let mut encoded = encode_header_map(&[("x-name", "caf_")]);
        if let Some(b) = encoded.iter_mut().rev().nth(1) {
            *b = 0xE9;
        }
        let headers = Headers { spans: decode_header_map(&encoded).unwrap_or_default(), raw: encoded };
        assert_eq!(headers.owned("x-name").as_deref(), Some("caf\u{FFFD}"));
    }
}
