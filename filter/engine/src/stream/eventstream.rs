//! AWS event-stream framing (`application/vnd.amazon.eventstream`), as
//! Bedrock `ConverseStream` uses it:
//!
//! ```text
//! total length u32 BE | headers length u32 BE | prelude CRC32 u32 BE
//! headers | payload | message CRC32 u32 BE
//! ```
//!
//! The prelude CRC covers the first 8 bytes, the message CRC everything
//! before it (CRC-32/ISO-HDLC, the `crc32fast` crate). Headers are
//! `name length u8 | name | type u8 | value`. Decoding is incremental (a
//! frame comes out once all of it is here) and checks both CRCs; encoding
//! writes fresh ones, so a rewritten payload is a valid frame again.

use std::fmt;

const PRELUDE: usize = 12;
const TRAILER: usize = 4;
/// The largest frame the format allows (16 MiB), before our own limit.
const MAX_FRAME: usize = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    Bool(bool),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Bytes(Vec<u8>),
    String(String),
    Timestamp(i64),
    Uuid([u8; 16]),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: HeaderValue,
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<Header>,
    pub payload: Vec<u8>,
}

impl Message {
    /// A string header's value, e.g. `:event-type`.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|h| h.name == name).and_then(|h| match &h.value {
            HeaderValue::String(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// An event message (`:message-type: event`) with JSON payload.
    pub fn event(event_type: &str, payload: Vec<u8>) -> Message {
        Message {
            headers: vec![
                Header { name: ":event-type".into(), value: HeaderValue::String(event_type.into()) },
                Header { name: ":content-type".into(), value: HeaderValue::String("application/json".into()) },
                Header { name: ":message-type".into(), value: HeaderValue::String("event".into()) },
            ],
            payload,
        }
    }

    /// An exception message, as AWS services send them mid-stream.
    pub fn exception(exception_type: &str, payload: Vec<u8>) -> Message {
        Message {
            headers: vec![
                Header { name: ":exception-type".into(), value: HeaderValue::String(exception_type.into()) },
                Header { name: ":content-type".into(), value: HeaderValue::String("application/json".into()) },
                Header { name: ":message-type".into(), value: HeaderValue::String("exception".into()) },
            ],
            payload,
        }
    }

    /// The frame, with fresh CRCs.
    pub fn encode(&self) -> Vec<u8> {
        let mut headers = Vec::new();
        for h in &self.headers {
            let name = h.name.as_bytes();
            let name = name.get(..name.len().min(255)).unwrap_or_default();
            headers.push(name.len() as u8);
            headers.extend_from_slice(name);
            match &h.value {
                HeaderValue::Bool(true) => headers.push(0),
                HeaderValue::Bool(false) => headers.push(1),
                HeaderValue::Byte(v) => {
                    headers.push(2);
                    headers.extend_from_slice(&v.to_be_bytes());
                }
                HeaderValue::Short(v) => {
                    headers.push(3);
                    headers.extend_from_slice(&v.to_be_bytes());
                }
                HeaderValue::Int(v) => {
                    headers.push(4);
                    headers.extend_from_slice(&v.to_be_bytes());
                }
                HeaderValue::Long(v) => {
                    headers.push(5);
                    headers.extend_from_slice(&v.to_be_bytes());
                }
                HeaderValue::Bytes(v) => {
                    headers.push(6);
                    push_short_bytes(&mut headers, v);
                }
                HeaderValue::String(v) => {
                    headers.push(7);
                    push_short_bytes(&mut headers, v.as_bytes());
                }
                HeaderValue::Timestamp(v) => {
                    headers.push(8);
                    headers.extend_from_slice(&v.to_be_bytes());
                }
                HeaderValue::Uuid(v) => {
                    headers.push(9);
                    headers.extend_from_slice(v);
                }
            }
        }
        let total = PRELUDE + headers.len() + self.payload.len() + TRAILER;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&(total as u32).to_be_bytes());
        out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        let prelude_crc = crc32fast::hash(out.get(..8).unwrap_or_default());
        out.extend_from_slice(&prelude_crc.to_be_bytes());
        out.extend_from_slice(&headers);
        out.extend_from_slice(&self.payload);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }
}

fn push_short_bytes(out: &mut Vec<u8>, v: &[u8]) {
    let v = v.get(..v.len().min(u16::MAX as usize)).unwrap_or_default();
    out.extend_from_slice(&(v.len() as u16).to_be_bytes());
    out.extend_from_slice(v);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStreamError {
    PreludeCrc,
    MessageCrc,
    /// Lengths that cannot describe a frame.
    BadLength {
        total: usize,
        headers: usize,
    },
    FrameTooLarge {
        limit: usize,
    },
    BadHeader,
}

impl fmt::Display for EventStreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventStreamError::PreludeCrc => f.write_str("event-stream prelude CRC mismatch"),
            EventStreamError::MessageCrc => f.write_str("event-stream message CRC mismatch"),
            EventStreamError::BadLength { total, headers } => {
                write!(f, "event-stream frame lengths are invalid (total {total}, headers {headers})")
            }
            EventStreamError::FrameTooLarge { limit } => {
                write!(f, "an event-stream frame is larger than {limit} bytes")
            }
            EventStreamError::BadHeader => f.write_str("an event-stream header is malformed"),
        }
    }
}

impl std::error::Error for EventStreamError {}

/// One decoded frame and the exact bytes it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub raw: Vec<u8>,
    pub message: Message,
}

#[derive(Debug)]
pub struct EventStreamDecoder {
    /// Received bytes; the next frame starts at `start`. Frames are cut off
    /// the front by moving it, and `buf` is compacted once per `push`, so a
    /// chunk of many small frames costs linear time.
    buf: Vec<u8>,
    start: usize,
    max_frame_bytes: usize,
    failed: Option<EventStreamError>,
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

impl EventStreamDecoder {
    pub fn new(max_frame_bytes: usize) -> EventStreamDecoder {
        EventStreamDecoder { buf: Vec::new(), start: 0, max_frame_bytes: max_frame_bytes.min(MAX_FRAME), failed: None }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes received but not yet part of a complete frame.
    pub fn buffered(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// The next complete frame, or `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, EventStreamError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        match self.decode() {
            Ok(f) => Ok(f),
            Err(e) => {
                self.failed = Some(e);
                Err(e)
            }
        }
    }

    fn decode(&mut self) -> Result<Option<Frame>, EventStreamError> {
        let view = self.buf.get(self.start..).unwrap_or_default();
        let (Some(total), Some(headers_len), Some(prelude_crc)) = (be32(view, 0), be32(view, 4), be32(view, 8)) else {
            return Ok(None);
        };
        if crc32fast::hash(view.get(..8).unwrap_or_default()) != prelude_crc {
            return Err(EventStreamError::PreludeCrc);
        }
        let (total, headers_len) = (total as usize, headers_len as usize);
        if total < PRELUDE + TRAILER || headers_len > total - PRELUDE - TRAILER {
            return Err(EventStreamError::BadLength { total, headers: headers_len });
        }
        if total > self.max_frame_bytes {
            return Err(EventStreamError::FrameTooLarge { limit: self.max_frame_bytes });
        }
        let Some(raw) = view.get(..total).map(<[u8]>::to_vec) else {
            return Ok(None);
        };
        self.start += total;
        let body = raw.get(..total - TRAILER).unwrap_or_default();
        if Some(crc32fast::hash(body)) != be32(&raw, total - TRAILER) {
            return Err(EventStreamError::MessageCrc);
        }
        let headers = parse_headers(raw.get(PRELUDE..PRELUDE + headers_len).unwrap_or_default())?;
        let payload = raw.get(PRELUDE + headers_len..total - TRAILER).unwrap_or_default().to_vec();
        Ok(Some(Frame { raw, message: Message { headers, payload } }))
    }
}

fn parse_headers(mut bytes: &[u8]) -> Result<Vec<Header>, EventStreamError> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], EventStreamError> {
        if bytes.len() < n {
            return Err(EventStreamError::BadHeader);
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Ok(head)
    }
    fn fixed<const N: usize>(bytes: &mut &[u8]) -> Result<[u8; N], EventStreamError> {
        take(bytes, N)?.try_into().map_err(|_| EventStreamError::BadHeader)
    }
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let [name_len] = fixed::<1>(&mut bytes)?;
        let name = String::from_utf8_lossy(take(&mut bytes, usize::from(name_len))?).into_owned();
        let [kind] = fixed::<1>(&mut bytes)?;
        let value = match kind {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(i8::from_be_bytes(fixed(&mut bytes)?)),
            3 => HeaderValue::Short(i16::from_be_bytes(fixed(&mut bytes)?)),
            4 => HeaderValue::Int(i32::from_be_bytes(fixed(&mut bytes)?)),
            5 => HeaderValue::Long(i64::from_be_bytes(fixed(&mut bytes)?)),
            6 | 7 => {
                let len = usize::from(u16::from_be_bytes(fixed(&mut bytes)?));
                let v = take(&mut bytes, len)?.to_vec();
                if kind == 6 {
                    HeaderValue::Bytes(v)
                } else {
                    HeaderValue::String(String::from_utf8(v).map_err(|_| EventStreamError::BadHeader)?)
                }
            }
            8 => HeaderValue::Timestamp(i64::from_be_bytes(fixed(&mut bytes)?)),
            9 => HeaderValue::Uuid(fixed(&mut bytes)?),
            _ => return Err(EventStreamError::BadHeader),
        };
        out.push(Header { name, value });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_header_type_at_every_split() {
        let m = Message {
            headers: vec![
                Header { name: ":event-type".into(), value: HeaderValue::String("contentBlockDelta".into()) },
                Header { name: "t".into(), value: HeaderValue::Bool(true) },
                Header { name: "f".into(), value: HeaderValue::Bool(false) },
                Header { name: "b".into(), value: HeaderValue::Byte(-2) },
                Header { name: "s".into(), value: HeaderValue::Short(-300) },
                Header { name: "i".into(), value: HeaderValue::Int(70000) },
                Header { name: "l".into(), value: HeaderValue::Long(-1 << 40) },
                Header { name: "y".into(), value: HeaderValue::Bytes(vec![0, 1, 255]) },
                Header { name: "ts".into(), value: HeaderValue::Timestamp(1_700_000_000_000) },
                Header { name: "u".into(), value: HeaderValue::Uuid([7; 16]) },
            ],
            payload: br#"{"contentBlockIndex":0,"delta":{"text":"hi"}}"#.to_vec(),
        };
        let frame = m.encode();
        let two = [frame.clone(), frame.clone()].concat();
        for cut in 0..=two.len() {
            let mut d = EventStreamDecoder::new(1 << 20);
            let mut got = Vec::new();
            for part in [&two[..cut], &two[cut..]] {
                d.push(part);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got.len(), 2, "cut {cut}");
            assert!(got.iter().all(|f| f.message == m && f.raw == frame));
        }
    }

    #[test]
    fn known_frame_from_the_aws_test_suite() {
        // "all_headers"-style vector from aws-c-event-stream: an empty
        // message is 16 bytes with these CRCs.
        let empty = Message { headers: vec![], payload: vec![] }.encode();
        assert_eq!(empty, [0, 0, 0, 0x10, 0, 0, 0, 0, 0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98, 0xc8, 0xff]);
    }

    #[test]
    fn corruption_and_limits_are_errors() {
        let frame = Message::event("messageStop", b"{}".to_vec()).encode();
        let mut bad = frame.clone();
        bad[5] ^= 1;
        let mut d = EventStreamDecoder::new(1 << 20);
        d.push(&bad);
        assert_eq!(d.next_frame(), Err(EventStreamError::PreludeCrc));
        let mut bad = frame.clone();
        let n = bad.len();
        bad[n - 6] ^= 1;
        let mut d = EventStreamDecoder::new(1 << 20);
        d.push(&bad);
        assert_eq!(d.next_frame(), Err(EventStreamError::MessageCrc));
        let mut d = EventStreamDecoder::new(8);
        d.push(&frame);
        assert_eq!(d.next_frame(), Err(EventStreamError::FrameTooLarge { limit: 8 }));
        assert_eq!(Message::event("x", vec![]).header_str(":event-type"), Some("x"));
    }
}
