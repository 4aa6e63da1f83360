//! An incremental `text/event-stream` parser (WHATWG HTML, "Server-sent
//! events", §9.2.6 "Interpreting an event stream").
//!
//! Bytes go in as they arrive ([`SseParser::push`]); complete events come out
//! of [`SseParser::next_event`], which answers `Ok(None)` — "incomplete, need
//! more bytes" — until a blank line ends the next event (the frame-parsing
//! shape of tokio-rs/mini-redis). Every event carries the exact bytes it was
//! made of, so a caller that does not change an event forwards it verbatim,
//! and the concatenation of all `raw`s is exactly the input.
//!
//! What the spec asks for and this parser does:
//! - lines end with CRLF, LF or a lone CR; a CR that ends one chunk while the
//!   next chunk starts with LF is one CRLF (the LF is not a blank line);
//! - a leading U+FEFF BOM is ignored;
//! - `:` starts a comment; `field: value` strips one space after the colon;
//!   a line without a colon is a field with an empty value;
//! - `data` lines are joined with LF; an event with no `data` line is not
//!   dispatched (here: `data == None`, forward `raw` as is);
//! - `id` values containing NUL are ignored, `retry` must be all digits.
//!
//! Lines are decoded as UTF-8 only once complete, so a character split
//! across chunks is never a problem; invalid sequences become U+FFFD as the
//! spec's decoder does. An event may not grow beyond `max_event_bytes`.

use std::fmt;

/// One complete event (or, from [`SseParser::finish`], the unterminated tail).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The exact bytes of this event as received, including its terminating
    /// blank line.
    pub raw: Vec<u8>,
    /// The last `event:` value, if any (absent or empty means `message`).
    pub event: Option<String>,
    /// The `data:` lines joined by LF; `None` when there were none.
    pub data: Option<String>,
    /// The last valid `id:` value in this event.
    pub id: Option<String>,
    /// The last valid `retry:` value in this event.
    pub retry: Option<u64>,
    /// False only for the incomplete tail handed out by `finish`.
    pub terminated: bool,
}

impl SseEvent {
    /// The event type a browser would dispatch (`message` by default).
    pub fn event_type(&self) -> &str {
        match self.event.as_deref() {
            Some(t) if !t.is_empty() => t,
            _ => "message",
        }
    }

    /// This event's bytes with its data replaced by `data`: every other line
    /// (fields, comments) and every line ending stays as received; the new
    /// data lines take the place of the first old one.
    pub fn with_data(&self, data: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.raw.len() + data.len());
        let mut wrote_data = false;
        let mut rest: &[u8] = &self.raw;
        while !rest.is_empty() {
            let (line, eol, next) = split_line(rest);
            rest = next;
            if line.is_empty() && !eol.is_empty() && !wrote_data && rest.is_empty() {
                // The terminating blank line of an event without data.
                write_data(&mut out, data, b"data: ", default_eol(&self.raw));
                wrote_data = true;
            }
            if is_field(line, b"data") {
                if !wrote_data {
                    let prefix: &[u8] = if line.get(5) == Some(&b' ') { b"data: " } else { b"data:" };
                    write_data(&mut out, data, prefix, if eol.is_empty() { default_eol(&self.raw) } else { eol });
                    wrote_data = true;
                }
                continue;
            }
            out.extend_from_slice(line);
            out.extend_from_slice(eol);
        }
        if !wrote_data {
            write_data(&mut out, data, b"data: ", default_eol(&self.raw));
        }
        out
    }
}

/// A whole event with only a `data` field, LF line endings.
pub fn data_event(data: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    write_data(&mut out, data, b"data: ", b"\n");
    out.push(b'\n');
    out
}

/// A whole event with `event` and `data` fields, LF line endings.
pub fn named_event(event: &str, data: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(event.len() + data.len() + 16);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.push(b'\n');
    write_data(&mut out, data, b"data: ", b"\n");
    out.push(b'\n');
    out
}

fn write_data(out: &mut Vec<u8>, data: &str, prefix: &[u8], eol: &[u8]) {
    for line in data.split('\n') {
        out.extend_from_slice(prefix);
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(eol);
    }
}

fn is_field(line: &[u8], name: &[u8]) -> bool {
    line.strip_prefix(name).is_some_and(|rest| rest.is_empty() || rest.first() == Some(&b':'))
}

/// The line ending the event used first (LF if it has none).
fn default_eol(raw: &[u8]) -> &'static [u8] {
    match memchr::memchr2(b'\n', b'\r', raw) {
        Some(i) if raw.get(i) == Some(&b'\r') && raw.get(i + 1) == Some(&b'\n') => b"\r\n",
        Some(i) if raw.get(i) == Some(&b'\r') => b"\r",
        _ => b"\n",
    }
}

/// Splits off one line: (content, terminator, rest). A lone CR ends a line.
fn split_line(bytes: &[u8]) -> (&[u8], &[u8], &[u8]) {
    match memchr::memchr2(b'\n', b'\r', bytes) {
        None => (bytes, &[], &[]),
        Some(i) => {
            let len = if bytes.get(i) == Some(&b'\r') && bytes.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
            let (line, rest) = bytes.split_at(i);
            let (eol, rest) = rest.split_at(len.min(rest.len()));
            (line, eol, rest)
        }
    }
}

/// Why a stream cannot be parsed further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseError {
    /// One event grew beyond the limit before its blank line arrived.
    EventTooLarge { limit: usize },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::EventTooLarge { limit } => write!(f, "a server-sent event is larger than {limit} bytes"),
        }
    }
}

impl std::error::Error for SseError {}

const BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Debug, Default)]
struct Fields {
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
    retry: Option<u64>,
}

/// The incremental parser. Holds at most one incomplete event.
#[derive(Debug)]
pub struct SseParser {
    /// Received bytes; the current, incomplete event starts at `start`.
    /// Events are cut off the front by moving `start`, and the buffer is
    /// compacted once per `push`, so a chunk holding many events costs
    /// linear time, not one shift of the rest per event.
    buf: Vec<u8>,
    start: usize,
    /// Where the current line starts in `buf`.
    line_start: usize,
    /// How far the current line is known to hold no line ending, so a line
    /// arriving a byte at a time is searched once, not once per byte.
    searched: usize,
    /// Whether the stream start (and a possible BOM) has been seen.
    started: bool,
    /// The previous line ended with a CR at the end of the input so far:
    /// an LF that follows belongs to it.
    skip_lf: bool,
    fields: Fields,
    max_event_bytes: usize,
    failed: Option<SseError>,
}

impl SseParser {
    pub fn new(max_event_bytes: usize) -> SseParser {
        SseParser {
            buf: Vec::new(),
            start: 0,
            line_start: 0,
            searched: 0,
            started: false,
            skip_lf: false,
            fields: Fields::default(),
            max_event_bytes,
            failed: None,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.line_start = self.line_start.saturating_sub(self.start);
            self.searched = self.searched.saturating_sub(self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes received but not yet handed out in an event.
    pub fn buffered(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// The next complete event, or `Ok(None)` when more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, SseError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if !self.started {
            // A BOM may only be skipped once all of it is here.
            let head = self.buf.get(..BOM.len().min(self.buf.len())).unwrap_or_default();
            if BOM.starts_with(head) && head.len() < BOM.len() {
                return Ok(None);
            }
            self.started = true;
            if head == BOM {
                self.line_start = BOM.len();
            }
        }
        if self.skip_lf {
            match self.buf.get(self.line_start) {
                None => return Ok(None),
                Some(b'\n') if self.line_start == self.start => {
                    // The CR ended the previous event: hand its LF out alone.
                    self.skip_lf = false;
                    self.start += 1;
                    self.line_start = self.start;
                    return Ok(Some(SseEvent { raw: b"\n".to_vec(), terminated: true, ..SseEvent::default() }));
                }
                Some(b'\n') => {
                    self.skip_lf = false;
                    self.line_start += 1;
                }
                Some(_) => self.skip_lf = false,
            }
        }
        loop {
            let from = self.searched.max(self.line_start);
            let rest = self.buf.get(from..).unwrap_or_default();
            let Some(found) = memchr::memchr2(b'\n', b'\r', rest) else {
                self.searched = self.buf.len();
                if self.buf.len().saturating_sub(self.start) > self.max_event_bytes {
                    let e = SseError::EventTooLarge { limit: self.max_event_bytes };
                    self.failed = Some(e);
                    return Err(e);
                }
                return Ok(None);
            };
            let at = from + found - self.line_start;
            let rest = self.buf.get(self.line_start..).unwrap_or_default();
            let eol_len = match (rest.get(at), rest.get(at + 1)) {
                (Some(b'\r'), Some(b'\n')) => 2,
                (Some(b'\r'), None) => {
                    self.skip_lf = true;
                    1
                }
                _ => 1,
            };
            let line_end = self.line_start + at;
            let next = line_end + eol_len;
            // The limit counts a line ending as one byte: a CRLF whose LF
            // comes in the next chunk ends the line at the CR, and the
            // verdict must not depend on where the transport cut.
            let size = (line_end + 1).saturating_sub(self.start);
            let blank = line_end == self.line_start;
            if !blank {
                let line =
                    String::from_utf8_lossy(self.buf.get(self.line_start..line_end).unwrap_or_default()).into_owned();
                self.field(&line);
            }
            self.line_start = next;
            if blank {
                if size > self.max_event_bytes {
                    let e = SseError::EventTooLarge { limit: self.max_event_bytes };
                    self.failed = Some(e);
                    return Err(e);
                }
                return Ok(Some(self.dispatch(next, true)));
            }
            if size > self.max_event_bytes {
                let e = SseError::EventTooLarge { limit: self.max_event_bytes };
                self.failed = Some(e);
                return Err(e);
            }
            if self.skip_lf {
                return Ok(None);
            }
        }
    }

    /// At the end of the stream: whatever is left, as one unterminated
    /// event (a browser would discard it; the caller still inspects it).
    pub fn finish(&mut self) -> Result<Option<SseEvent>, SseError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        self.started = true;
        self.skip_lf = false;
        if self.buf.len() == self.start {
            return Ok(None);
        }
        if let Some(rest) = self.buf.get(self.line_start..) {
            if !rest.is_empty() {
                let line = String::from_utf8_lossy(rest).into_owned();
                self.field(&line);
            }
        }
        Ok(Some(self.dispatch(self.buf.len(), false)))
    }

    fn field(&mut self, line: &str) {
        if line.starts_with(':') {
            return;
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        let f = &mut self.fields;
        match name {
            "event" => f.event = Some(value.to_owned()),
            "data" => {
                f.data.push_str(value);
                f.data.push('\n');
                f.has_data = true;
            }
            "id" if !value.contains('\0') => f.id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                f.retry = value.parse().ok();
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, end: usize, terminated: bool) -> SseEvent {
        let end = end.clamp(self.start, self.buf.len());
        let raw = self.buf.get(self.start..end).unwrap_or_default().to_vec();
        self.start = end;
        self.line_start = end;
        self.searched = end;
        let mut f = std::mem::take(&mut self.fields);
        let data = f.has_data.then(|| {
            if f.data.ends_with('\n') {
                f.data.pop();
            }
            f.data
        });
        SseEvent { raw, event: f.event, data, id: f.id, retry: f.retry, terminated }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in the given pieces; returns every event and the tail.
    fn run(pieces: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new(1 << 16);
        let mut out = Vec::new();
        for piece in pieces {
            p.push(piece);
            while let Some(e) = p.next_event().unwrap() {
                out.push(e);
            }
        }
        out.extend(p.finish().unwrap());
        out
    }

    fn dispatched(events: &[SseEvent]) -> Vec<(String, String)> {
        events
            .iter()
            .filter(|e| e.terminated)
            .filter_map(|e| e.data.clone().map(|d| (e.event_type().to_owned(), d)))
            .collect()
    }

    /// Every way of cutting `input` in two and in 1-byte pieces gives the
    /// same dispatched events and the same concatenated raw bytes.
    fn check_all_splits(input: &[u8]) -> Vec<(String, String)> {
        let whole = run(&[input]);
        let expect = dispatched(&whole);
        let raw: Vec<u8> = whole.iter().flat_map(|e| e.raw.clone()).collect();
        assert_eq!(raw, input);
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            let got = run(&[a, b]);
            assert_eq!(dispatched(&got), expect, "split at {cut}");
            assert_eq!(got.iter().flat_map(|e| e.raw.clone()).collect::<Vec<u8>>(), input, "split at {cut}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        let got = run(&bytes);
        assert_eq!(dispatched(&got), expect, "1-byte chunks");
        assert_eq!(got.iter().flat_map(|e| e.raw.clone()).collect::<Vec<u8>>(), input);
        expect
    }

    fn ev(t: &str, d: &str) -> (String, String) {
        (t.to_owned(), d.to_owned())
    }

    #[test]
    fn line_endings_lf_crlf_cr_and_mixed() {
        for input in [
            &b"data: a\n\ndata: b\n\n"[..],
            b"data: a\r\n\r\ndata: b\r\n\r\n",
            b"data: a\r\rdata: b\r\r",
            b"data: a\r\n\rdata: b\n\r\n",
        ] {
            assert_eq!(check_all_splits(input), [ev("message", "a"), ev("message", "b")], "{input:?}");
        }
    }

    #[test]
    fn cr_at_chunk_end_dispatches_without_waiting() {
        let mut p = SseParser::new(1024);
        p.push(b"data: x\r\n\r");
        let e = p.next_event().unwrap().unwrap();
        assert_eq!(e.data.as_deref(), Some("x"));
        assert_eq!(p.next_event().unwrap(), None);
        p.push(b"\ndata: y\n\n");
        let lf = p.next_event().unwrap().unwrap();
        assert_eq!((lf.raw.as_slice(), lf.data.as_deref()), (&b"\n"[..], None));
        assert_eq!(p.next_event().unwrap().unwrap().data.as_deref(), Some("y"));
    }

    #[test]
    fn spec_examples() {
        // WHATWG §9.2.6 examples.
        let got = check_all_splits(
            b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
        );
        assert_eq!(got, [ev("message", "first event"), ev("message", "second event"), ev("message", " third event")]);
        let got = check_all_splits(b"data\n\ndata\ndata\n\ndata:");
        assert_eq!(got, [ev("message", ""), ev("message", "\n")]);
        let got = check_all_splits(b"data:test\n\ndata: test\n\n");
        assert_eq!(got, [ev("message", "test"), ev("message", "test")]);
        let got = check_all_splits(b"data: YHOO\ndata: +2\ndata: 10\n\n");
        assert_eq!(got, [ev("message", "YHOO\n+2\n10")]);
    }

    #[test]
    fn named_events_ids_retry_comments_and_unknown_fields() {
        let input = b"\xEF\xBB\xBFevent: content_block_delta\nid: 7\nretry: 30x\nretry: 1500\nfoo: bar\n: keep-alive\ndata: {\"a\":1}\n\n:ping\n\nevent: x\n\n";
        let events = run(&[input]);
        assert_eq!(check_all_splits(input), [ev("content_block_delta", "{\"a\":1}")]);
        let e = &events[0];
        assert_eq!((e.id.as_deref(), e.retry), (Some("7"), Some(1500)));
        assert!(events[1].data.is_none() && events[2].data.is_none());
    }

    #[test]
    fn utf8_split_across_chunks_and_invalid_bytes() {
        let input = "data: héllo 😀 wörld\n\n".as_bytes();
        assert_eq!(check_all_splits(input), [ev("message", "héllo 😀 wörld")]);
        assert_eq!(check_all_splits(b"data: a\xffb\n\n"), [ev("message", "a\u{fffd}b")]);
    }

    #[test]
    fn unterminated_tail_comes_out_of_finish() {
        let events = run(&[b"data: a\n\ndata: partial"]);
        assert_eq!(events.len(), 2);
        assert!(!events[1].terminated);
        assert_eq!(events[1].data.as_deref(), Some("partial"));
        assert_eq!(events[1].raw, b"data: partial");
    }

    #[test]
    fn oversized_events_are_an_error_at_any_split() {
        let mut p = SseParser::new(16);
        p.push(b"data: 0123456789");
        assert_eq!(p.next_event(), Ok(None));
        p.push(b"abcdef");
        assert_eq!(p.next_event(), Err(SseError::EventTooLarge { limit: 16 }));
        assert!(p.next_event().is_err());
        let mut p = SseParser::new(16);
        p.push(b"data: 0\ndata: 1\ndata: 2\n\n");
        assert_eq!(p.next_event(), Err(SseError::EventTooLarge { limit: 16 }));
        // Many small events are fine.
        let mut p = SseParser::new(16);
        p.push(&b"data: 0123\n\n".repeat(100));
        let mut n = 0;
        while p.next_event().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 100);
    }

    #[test]
    fn with_data_keeps_other_lines_and_line_endings() {
        let e = &run(&[b"event: e\r\n: c\r\ndata: a\r\ndata: b\r\nid: 1\r\n\r\n"])[0];
        assert_eq!(e.with_data("x\ny"), b"event: e\r\n: c\r\ndata: x\r\ndata: y\r\nid: 1\r\n\r\n");
        let e = &run(&[b"data:{}\n\n"])[0];
        assert_eq!(e.with_data("{\"k\":1}"), b"data:{\"k\":1}\n\n");
        assert_eq!(data_event("a\nb"), b"data: a\ndata: b\n\n");
        assert_eq!(named_event("error", "{}"), b"event: error\ndata: {}\n\n");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn line() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                Just(b"data: x".to_vec()),
                Just(b"data:".to_vec()),
                Just(b"event: ev".to_vec()),
                Just(b": comment".to_vec()),
                Just(b"id: 9".to_vec()),
                Just("data: é😀".as_bytes().to_vec()),
                Just(Vec::new()),
            ]
        }

        fn eol() -> impl Strategy<Value = &'static [u8]> {
            prop_oneof![Just(&b"\n"[..]), Just(&b"\r\n"[..]), Just(&b"\r"[..])]
        }

        proptest! {
            #[test]
            fn random_splits_agree(lines in proptest::collection::vec((line(), eol()), 0..24), cuts in proptest::collection::vec(0usize..200, 0..8)) {
                let input: Vec<u8> = lines.iter().flat_map(|(l, e)| l.iter().chain(e.iter()).copied()).collect();
                let whole = run(&[&input]);
                let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
                cuts.sort();
                let mut pieces: Vec<&[u8]> = Vec::new();
                let mut last = 0;
                for c in cuts { pieces.push(&input[last..c]); last = c; }
                pieces.push(&input[last..]);
                let got = run(&pieces);
                prop_assert_eq!(dispatched(&got), dispatched(&whole));
                prop_assert_eq!(got.iter().flat_map(|e| e.raw.clone()).collect::<Vec<u8>>(), input);
            }
        }
    }
}
