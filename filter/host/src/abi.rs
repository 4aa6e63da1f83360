//! proxy-wasm ABI 0.2.1 constants and wire formats.
//!
//! Values are those of the spec (`proxy-wasm/spec`, `abi-versions/v0.2.1`)
//! and of the Rust SDK `proxy-wasm` 0.2.5 (`src/types.rs`).

/// `proxy_status_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    SerializationFailure = 3,
    ParseFailure = 4,
    InvalidMemoryAccess = 6,
    Empty = 7,
    CasMismatch = 8,
    InternalFailure = 10,
    Unimplemented = 12,
}

impl Status {
    /// The code on the wire.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// `proxy_log_level_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

impl LogLevel {
    pub fn from_code(code: i32) -> Option<LogLevel> {
        Some(match code {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }
}

/// What a stream callback returned (`proxy_action_t`).
///
/// The SDK only returns 0 and 1. Envoy reads larger values as stronger
/// "stop" statuses; they are kept in `Other` and treated as a stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// 0: forward what was seen.
    Continue,
    /// 1: headers: `StopIteration`; body: `StopIterationAndBuffer`.
    Pause,
    /// Anything else the guest returned.
    Other(u32),
}

impl Action {
    pub fn from_code(code: u32) -> Action {
        match code {
            0 => Action::Continue,
            1 => Action::Pause,
            n => Action::Other(n),
        }
    }

    pub fn is_continue(self) -> bool {
        self == Action::Continue
    }
}

/// `proxy_buffer_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BufferType {
    HttpRequestBody = 0,
    HttpResponseBody = 1,
    DownstreamData = 2,
    UpstreamData = 3,
    HttpCallResponseBody = 4,
    GrpcReceiveBuffer = 5,
    VmConfiguration = 6,
    PluginConfiguration = 7,
    CallData = 8,
}

impl BufferType {
    pub fn from_code(code: i32) -> Option<BufferType> {
        Some(match code {
            0 => BufferType::HttpRequestBody,
            1 => BufferType::HttpResponseBody,
            2 => BufferType::DownstreamData,
            3 => BufferType::UpstreamData,
            4 => BufferType::HttpCallResponseBody,
            5 => BufferType::GrpcReceiveBuffer,
            6 => BufferType::VmConfiguration,
            7 => BufferType::PluginConfiguration,
            8 => BufferType::CallData,
            _ => return None,
        })
    }
}

/// `proxy_map_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapType {
    HttpRequestHeaders = 0,
    HttpRequestTrailers = 1,
    HttpResponseHeaders = 2,
    HttpResponseTrailers = 3,
    GrpcReceiveInitialMetadata = 4,
    GrpcReceiveTrailingMetadata = 5,
    HttpCallResponseHeaders = 6,
    HttpCallResponseTrailers = 7,
}

impl MapType {
    pub fn from_code(code: i32) -> Option<MapType> {
        Some(match code {
            0 => MapType::HttpRequestHeaders,
            1 => MapType::HttpRequestTrailers,
            2 => MapType::HttpResponseHeaders,
            3 => MapType::HttpResponseTrailers,
            4 => MapType::GrpcReceiveInitialMetadata,
            5 => MapType::GrpcReceiveTrailingMetadata,
            6 => MapType::HttpCallResponseHeaders,
            7 => MapType::HttpCallResponseTrailers,
            _ => return None,
        })
    }
}

/// `proxy_stream_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamType {
    HttpRequest = 0,
    HttpResponse = 1,
    Downstream = 2,
    Upstream = 3,
}

impl StreamType {
    pub fn from_code(code: i32) -> Option<StreamType> {
        Some(match code {
            0 => StreamType::HttpRequest,
            1 => StreamType::HttpResponse,
            2 => StreamType::Downstream,
            3 => StreamType::Upstream,
            _ => return None,
        })
    }
}

/// `proxy_metric_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    Counter = 0,
    Gauge = 1,
    Histogram = 2,
}

impl MetricType {
    pub fn from_code(code: i32) -> Option<MetricType> {
        Some(match code {
            0 => MetricType::Counter,
            1 => MetricType::Gauge,
            2 => MetricType::Histogram,
            _ => return None,
        })
    }
}

/// WASI preview1 errno values this host returns.
pub mod errno {
    pub const SUCCESS: i32 = 0;
    pub const BADF: i32 = 8;
    pub const FAULT: i32 = 21;
    pub const NOSYS: i32 = 52;
    pub const NOTSUP: i32 = 58;
    pub const SPIPE: i32 = 70;
}

/// An ordered multi-map of HTTP fields (headers or trailers), as Envoy keeps
/// them: names are lower-cased on insertion, values are raw bytes, and
/// duplicates keep their order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    pairs: Vec<(String, Vec<u8>)>,
}

impl HeaderMap {
    pub fn new() -> HeaderMap {
        HeaderMap::default()
    }

    /// Builds a map from `(name, value)` pairs; names are lower-cased.
    pub fn from_pairs<K: AsRef<str>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> HeaderMap {
        let mut map = HeaderMap { pairs: Vec::with_capacity(pairs.len()) };
        for (k, v) in pairs {
            map.add(k.as_ref(), v.as_ref());
        }
        map
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The first value of `name` (case-insensitive), as UTF-8 (lossless
    /// values only; use [`HeaderMap::get_bytes`] for raw bytes).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_bytes(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first value of `name` (case-insensitive).
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// Every value of `name`, in order.
    pub fn get_all(&self, name: &str) -> Vec<&[u8]> {
        self.pairs.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice()).collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get_bytes(name).is_some()
    }

    /// Appends a value (Envoy `addCopy`).
    pub fn add(&mut self, name: &str, value: &[u8]) {
        self.pairs.push((name.to_ascii_lowercase(), value.to_vec()));
    }

    /// Sets the only value of `name` (Envoy `setCopy`): the first entry
    /// keeps its place, the others are removed; appended when absent.
    pub fn replace(&mut self, name: &str, value: &[u8]) {
        let mut seen = false;
        self.pairs.retain_mut(|(k, v)| {
            if !k.eq_ignore_ascii_case(name) {
                return true;
            }
            if seen {
                return false;
            }
            seen = true;
            v.clear();
            v.extend_from_slice(value);
            true
        });
        if !seen {
            self.add(name, value);
        }
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &str) {
        self.pairs.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    /// The pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + Clone {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// The pairs as strings (non-UTF-8 bytes replaced).
    pub fn to_vec(&self) -> Vec<(String, String)> {
        self.pairs.iter().map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned())).collect()
    }

    /// The proxy-wasm serialization (see [`serialize_pairs`]).
    pub fn serialize_into(&self, out: &mut Vec<u8>) {
        serialize_pairs(self.iter(), out);
    }

    /// Size of the proxy-wasm serialization.
    pub fn serialized_size(&self) -> usize {
        if self.pairs.is_empty() {
            return 0;
        }
        4 + self.pairs.iter().map(|(k, v)| 8 + k.len() + 1 + v.len() + 1).sum::<usize>()
    }
}

/// Serializes pairs the proxy-wasm way: a little-endian u32 count, then a
/// (key length, value length) u32 pair per entry, then each key and value
/// followed by a NUL byte. An empty map serializes to nothing (size 0), as
/// Envoy returns it.
pub fn serialize_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a [u8])> + Clone, out: &mut Vec<u8>) {
    out.clear();
    let count = pairs.clone().count();
    if count == 0 {
        return;
    }
    out.extend_from_slice(&(count as u32).to_le_bytes());
    for (k, v) in pairs.clone() {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
}

/// Parses the proxy-wasm pair serialization, checking every length against
/// the input: guest-controlled data never panics the host. `[]` and `[0]`
/// are the empty map; so is a zero count.
pub fn deserialize_pairs(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if bytes.is_empty() || bytes == [0] {
        return Some(Vec::new());
    }
    let count = read_u32(bytes, 0)? as usize;
    // Each entry needs at least 8 bytes of sizes and 2 NULs.
    if count > bytes.len() / 10 + 1 {
        return None;
    }
    let mut sizes_at = 4usize;
    let mut data_at = 4usize.checked_add(count.checked_mul(8)?)?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let klen = read_u32(bytes, sizes_at)? as usize;
        let vlen = read_u32(bytes, sizes_at + 4)? as usize;
        sizes_at += 8;
        let key = bytes.get(data_at..data_at.checked_add(klen)?)?.to_vec();
        data_at = data_at.checked_add(klen)?;
        if *bytes.get(data_at)? != 0 {
            return None;
        }
        data_at += 1;
        let value = bytes.get(data_at..data_at.checked_add(vlen)?)?.to_vec();
        data_at = data_at.checked_add(vlen)?;
        if *bytes.get(data_at)? != 0 {
            return None;
        }
        data_at += 1;
        out.push((key, value));
    }
    Some(out)
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let slice = bytes.get(at..at.checked_add(4)?)?;
    let mut word = [0u8; 4];
    word.copy_from_slice(slice);
    Some(u32::from_le_bytes(word))
}

/// Applies `proxy_set_buffer_bytes(start, size, data)` the way Envoy does
/// (`Buffer::copyFrom` in `source/extensions/common/wasm/context.cc`):
///
/// * `start == 0`: drain `size` bytes (all of them when `size` is larger
///   than the buffer) and prepend `data` — so `(0, len, data)` replaces the
///   whole buffer and `(0, 0, data)` prepends;
/// * `start >= len`: append `data`;
/// * anything else (an edit in the middle): `BadArgument`. Envoy does not
///   splice into the middle of a body, whatever the spec's prose says.
pub fn apply_set_buffer(buf: &mut Vec<u8>, start: u32, size: u32, data: &[u8]) -> Status {
    let start = start as usize;
    let size = size as usize;
    if start == 0 {
        let drain = size.min(buf.len());
        // Two copies, as Envoy's buffer makes (`splice` with a byte
        // iterator moved the body a byte at a time: 1% of a bench's time).
        let mut joined = Vec::with_capacity(data.len() + (buf.len() - drain));
        joined.extend_from_slice(data);
        joined.extend_from_slice(buf.get(drain..).unwrap_or_default());
        *buf = joined;
        Status::Ok
    } else if start >= buf.len() {
        buf.extend_from_slice(data);
        Status::Ok
    } else {
        Status::BadArgument
    }
}

/// Joins property path segments with NUL, as the SDK sends them.
pub fn property_key<S: AsRef<[u8]>>(path: &[S]) -> Vec<u8> {
    let mut key = Vec::new();
    for (i, seg) in path.iter().enumerate() {
        if i > 0 {
            key.push(0);
        }
        key.extend_from_slice(seg.as_ref());
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_matches_the_spec_example() {
        let map = HeaderMap::from_pairs(&[("a", "1"), ("b", "22")]);
        let mut out = Vec::new();
        map.serialize_into(&mut out);
        assert_eq!(
            out,
            [2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, b'a', 0, b'1', 0, b'b', 0, b'2', b'2', 0]
        );
        assert_eq!(out.len(), map.serialized_size());
        let back = deserialize_pairs(&out).expect("valid");
        assert_eq!(back, vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"22".to_vec())]);
    }

    #[test]
    fn empty_maps_serialize_to_nothing_and_parse_both_ways() {
        let mut out = vec![9];
        HeaderMap::new().serialize_into(&mut out);
        assert!(out.is_empty());
        assert_eq!(deserialize_pairs(&[]), Some(vec![]));
        assert_eq!(deserialize_pairs(&[0]), Some(vec![]));
        assert_eq!(deserialize_pairs(&[0, 0, 0, 0]), Some(vec![]));
    }

    #[test]
    fn malformed_pairs_are_rejected_not_panicking() {
        // Count says 1, no sizes.
        assert_eq!(deserialize_pairs(&[1, 0, 0, 0]), None);
        // Huge sizes.
        assert_eq!(deserialize_pairs(&[1, 0, 0, 0, 255, 255, 255, 255, 1, 0, 0, 0, b'a', 0]), None);
        // Missing NUL terminator.
        assert_eq!(deserialize_pairs(&[1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, b'a', b'x', b'1', 0]), None);
        // Absurd count.
        assert_eq!(deserialize_pairs(&[255, 255, 255, 255, 0, 0]), None);
        // Truncated count.
        assert_eq!(deserialize_pairs(&[1, 0]), None);
    }

    #[test]
    fn set_buffer_follows_envoy() {
        let mut b = b"hello world".to_vec();
        assert_eq!(apply_set_buffer(&mut b, 0, u32::MAX, b"bye"), Status::Ok);
        assert_eq!(b, b"bye");
        assert_eq!(apply_set_buffer(&mut b, 0, 0, b">"), Status::Ok);
        assert_eq!(b, b">bye");
        assert_eq!(apply_set_buffer(&mut b, 0, 1, b"<"), Status::Ok);
        assert_eq!(b, b"<bye");
        assert_eq!(apply_set_buffer(&mut b, u32::MAX, 0, b"!"), Status::Ok);
        assert_eq!(b, b"<bye!");
        assert_eq!(apply_set_buffer(&mut b, 5, 9, b"?"), Status::Ok);
        assert_eq!(b, b"<bye!?");
        assert_eq!(apply_set_buffer(&mut b, 2, 1, b"x"), Status::BadArgument);
        assert_eq!(b, b"<bye!?");
        let mut empty = Vec::new();
        assert_eq!(apply_set_buffer(&mut empty, 0, u32::MAX, b"new"), Status::Ok);
        assert_eq!(empty, b"new");
    }

    #[test]
    fn header_map_is_case_insensitive_and_ordered() {
        let mut m = HeaderMap::from_pairs(&[("Content-Type", "a"), ("x", "1"), ("x", "2")]);
        assert_eq!(m.get("content-type"), Some("a"));
        assert_eq!(m.get("X"), Some("1"));
        assert_eq!(m.get_all("x").len(), 2);
        m.replace("X", b"3");
        assert_eq!(m.get_all("x"), vec![b"3".as_slice()]);
        m.replace("new", b"v");
        assert_eq!(m.iter().last(), Some(("new", b"v".as_slice())));
        m.remove("CONTENT-TYPE");
        assert!(!m.contains("content-type"));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn property_paths_are_nul_joined() {
        assert_eq!(property_key(&["request", "id"]), b"request\0id");
        assert_eq!(property_key(&["plugin_root_id"]), b"plugin_root_id");
    }
}
