//! A small blocking HTTP/1.1 client over `TcpStream`, written for tests:
//! it sends exactly the bytes asked for (fixed `content-length`, or
//! `transfer-encoding: chunked` with caller-chosen chunk boundaries, or no
//! framing header at all), always with `connection: close`, reads the whole
//! response to EOF and checks its framing, so a truncated body is an error
//! and never a silently shorter string.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::Error;

/// How long a test waits to connect, and for any one read.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The body of a request and how it is framed on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// No body and no framing header.
    Empty,
    /// Sent with `content-length`.
    Fixed(Vec<u8>),
    /// Sent with `transfer-encoding: chunked`, one HTTP chunk per element,
    /// each written and flushed on its own.
    Chunked(Vec<Vec<u8>>),
}

/// A request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Sent as given, after `host`; framing and `connection` are added.
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// Sent after the body: in the last chunk of a chunked HTTP/1.1 body,
    /// or as a trailing HEADERS frame over HTTP/2.
    pub trailers: Vec<(String, String)>,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Self {
        Request {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Body::Empty,
            trailers: Vec::new(),
        }
    }

    /// `GET path`.
    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    /// `POST path` with a JSON body and `content-length`.
    pub fn post_json(path: &str, body: impl Into<Vec<u8>>) -> Self {
        Self::new("POST", path).header("content-type", "application/json").body(Body::Fixed(body.into()))
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Re-frames the current body as chunked, split into `n` pieces of
    /// (nearly) equal size.
    pub fn chunked_into(mut self, n: usize) -> Self {
        let bytes = match std::mem::replace(&mut self.body, Body::Empty) {
            Body::Empty => Vec::new(),
            Body::Fixed(b) => b,
            Body::Chunked(chunks) => chunks.concat(),
        };
        let size = bytes.len().div_ceil(n.max(1)).max(1);
        self.body = Body::Chunked(bytes.chunks(size).map(<[u8]>::to_vec).collect());
        self
    }

    fn head(&self) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\nhost: meshward.test\r\n", self.method, self.path);
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        match &self.body {
            Body::Empty => {}
            Body::Fixed(b) => head.push_str(&format!("content-length: {}\r\n", b.len())),
            Body::Chunked(_) => head.push_str("transfer-encoding: chunked\r\n"),
        }
        head.push_str("connection: close\r\n\r\n");
        head.into_bytes()
    }
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names lower-case, in order.
    pub headers: Vec<(String, String)>,
    /// The body after transfer decoding.
    pub body: Vec<u8>,
    /// Whether the body came `transfer-encoding: chunked`.
    pub chunked: bool,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Result<serde_json::Value, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::Http(format!("response body is not valid JSON ({e}): {:?}", self.text())))
    }
}

fn io_err(context: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { context: context.to_owned(), source }
}

/// Sends `req` to `addr` on a fresh connection and reads the response.
pub fn send(addr: SocketAddr, req: &Request) -> Result<Response, Error> {
    let mut stream =
        TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(io_err(&format!("connecting to {addr}")))?;
    stream.set_nodelay(true).map_err(io_err("set_nodelay"))?;
    stream.set_read_timeout(Some(READ_TIMEOUT)).map_err(io_err("set_read_timeout"))?;
    let write = |stream: &mut TcpStream, bytes: &[u8]| {
        stream.write_all(bytes).and_then(|()| stream.flush()).map_err(io_err("writing the request"))
    };
    // A fixed body goes in the same write as the head: a proxy that answers
    // at the headers (a dead VM, say) and closes would otherwise reset the
    // connection when the body arrives, and the reset can discard its reply.
    let mut head = req.head();
    match &req.body {
        Body::Empty => write(&mut stream, &head)?,
        Body::Fixed(b) => {
            head.extend_from_slice(b);
            write(&mut stream, &head)?
        }
        Body::Chunked(chunks) => {
            write(&mut stream, &head)?;
            for chunk in chunks.iter().filter(|c| !c.is_empty()) {
                let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                framed.extend_from_slice(chunk);
                framed.extend_from_slice(b"\r\n");
                write(&mut stream, &framed)?;
            }
            let mut last = b"0\r\n".to_vec();
            for (k, v) in &req.trailers {
                last.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
            }
            last.extend_from_slice(b"\r\n");
            write(&mut stream, &last)?;
        }
    }
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(io_err(&format!("reading the response from {addr}")))?;
    parse_response(&raw)
}

/// What came back on a raw connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawReply {
    pub bytes: Vec<u8>,
    /// The peer closed the connection (rather than the read timing out).
    pub closed: bool,
}

/// Writes `bytes` as they are (no framing added or checked), optionally
/// half-closes the connection, and reads until the peer closes it or
/// nothing arrives for `wait`. For requests a well-behaved client never
/// sends, such as a `content-length` that lies.
pub fn send_raw(addr: SocketAddr, bytes: &[u8], half_close: bool, wait: Duration) -> Result<RawReply, Error> {
    let mut stream =
        TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(io_err(&format!("connecting to {addr}")))?;
    stream.set_read_timeout(Some(wait)).map_err(io_err("set_read_timeout"))?;
    stream.write_all(bytes).and_then(|()| stream.flush()).map_err(io_err("writing raw bytes"))?;
    if half_close {
        stream.shutdown(std::net::Shutdown::Write).map_err(io_err("half-closing"))?;
    }
    let mut reply = RawReply { bytes: Vec::new(), closed: false };
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => {
                reply.closed = true;
                return Ok(reply);
            }
            Ok(n) => reply.bytes.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Ok(reply)
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                reply.closed = true;
                return Ok(reply);
            }
            Err(e) => return Err(io_err("reading a raw reply")(e)),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses one complete HTTP/1.1 response (as read to EOF).
pub fn parse_response(raw: &[u8]) -> Result<Response, Error> {
    let bad = |what: &str| {
        Error::Http(format!("{what}; raw response: {:?}", String::from_utf8_lossy(&raw[..raw.len().min(2048)])))
    };
    let head_end = find(raw, b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|_| bad("headers not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("no status line"))?;
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next(), parts.next());
    if !version.is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(bad("not an HTTP/1.x status line"));
    }
    let status = code.and_then(|c| c.parse::<u16>().ok()).ok_or_else(|| bad("bad status code"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line.split_once(':').ok_or_else(|| bad("malformed header line"))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let rest = &raw[head_end + 4..];
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let chunked = header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        decode_chunked(rest).map_err(|e| bad(&e))?
    } else if let Some(len) = header("content-length") {
        let len: usize = len.parse().map_err(|_| bad("bad content-length"))?;
        if rest.len() < len {
            return Err(bad(&format!("truncated body: content-length {len}, got {} bytes", rest.len())));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, headers, body, chunked })
}

/// Decodes a chunked body; a missing last chunk is an error (truncation).
pub fn decode_chunked(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n").ok_or("truncated chunked body: no chunk size line")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| "bad chunk size")?;
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err(format!("truncated chunked body: chunk of {size} bytes, {} left", rest.len()));
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Splits an SSE body into events (`data:` lines of one event joined with
/// `\n`); comments and unknown fields are skipped.
pub fn parse_sse(body: &str) -> Vec<SseEvent> {
    let normalized = body.replace("\r\n", "\n");
    normalized
        .split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut data: Option<String> = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("data:") {
                    let v = v.strip_prefix(' ').unwrap_or(v);
                    data = Some(match data {
                        Some(d) => format!("{d}\n{v}"),
                        None => v.to_owned(),
                    });
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_owned());
                }
            }
            data.map(|data| SseEvent { event, data })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_and_chunked_responses() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: b\r\n\r\nabc").unwrap();
        assert_eq!((r.status, r.body.as_slice(), r.header("x-a")), (200, &b"abc"[..], Some("b")));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert!(r.chunked);
        assert_eq!(r.body, b"abcde");
    }

    #[test]
    fn truncation_is_an_error() {
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nabc").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n").is_err());
    }

    #[test]
    fn chunked_request_framing() {
        let req = Request::post_json("/x", b"abcdefg".to_vec()).chunked_into(3);
        assert_eq!(req.body, Body::Chunked(vec![b"abc".to_vec(), b"def".to_vec(), b"g".to_vec()]));
        let head = String::from_utf8(req.head()).unwrap();
        assert!(head.contains("transfer-encoding: chunked\r\n"));
        assert!(!head.contains("content-length"));
    }

    #[test]
    fn sse_events_split_and_join_data_lines() {
        let ev = parse_sse("event: a\ndata: 1\ndata: 2\n\n: comment\n\ndata: [DONE]\n\n");
        assert_eq!(
            ev,
            vec![
                SseEvent { event: Some("a".into()), data: "1\n2".into() },
                SseEvent { event: None, data: "[DONE]".into() }
            ]
        );
    }
}
