//! Gemini's default streaming (`:streamGenerateContent` without `alt=sse`):
//! one JSON array, delivered piecemeal. Each top-level element comes out as
//! soon as its last byte arrives; the bytes between elements (`[`, `,`,
//! whitespace, `]`) come out as they are, so an unchanged stream is
//! forwarded byte for byte. A top-level object (an error document) comes
//! out as one element.
//!
//! The scanner only tracks nesting, strings and escapes; the element's
//! JSON is validated later by whoever reads it. Bytes between elements are
//! forwarded without inspection, so there the scanner is strict: only
//! whitespace, commas and the brackets, anything else is an error.

use std::collections::VecDeque;
use std::fmt;

/// One piece of the stream, in order; the concatenation is the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Bytes between elements, before the closing bracket.
    Between(Vec<u8>),
    /// One complete top-level element.
    Element(Vec<u8>),
    /// The closing `]` and anything after it.
    End(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonArrayError {
    ElementTooLarge {
        limit: usize,
    },
    /// A byte that cannot appear where it did (e.g. `}` at depth 0).
    Unexpected {
        offset: usize,
    },
}

impl fmt::Display for JsonArrayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonArrayError::ElementTooLarge { limit } => {
                write!(f, "a streamed JSON element is larger than {limit} bytes")
            }
            JsonArrayError::Unexpected { offset } => write!(f, "the streamed JSON is malformed at byte {offset}"),
        }
    }
}

impl std::error::Error for JsonArrayError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Top {
    Unknown,
    Array,
    Object,
    Closed,
}

#[derive(Debug)]
pub struct JsonArrayParser {
    buf: Vec<u8>,
    /// Where the bytes not yet handed out start in `buf`. Pieces are cut
    /// off the front by moving it, and `buf` is compacted once per `push`,
    /// so a chunk of many small elements costs linear time.
    head: usize,
    /// Bytes of `buf` already scanned.
    scan: usize,
    depth: usize,
    in_string: bool,
    escape: bool,
    /// An element is in progress; it starts at `buf[head]`.
    in_element: bool,
    /// The element in progress is a scalar (number, literal).
    scalar: bool,
    top: Top,
    /// Bytes dropped from the front of `buf` by compaction (for offsets).
    consumed: usize,
    ready: VecDeque<Piece>,
    max_element_bytes: usize,
    failed: Option<JsonArrayError>,
}

impl JsonArrayParser {
    pub fn new(max_element_bytes: usize) -> JsonArrayParser {
        JsonArrayParser {
            buf: Vec::new(),
            head: 0,
            scan: 0,
            depth: 0,
            in_string: false,
            escape: false,
            in_element: false,
            scalar: false,
            top: Top::Unknown,
            consumed: 0,
            ready: VecDeque::new(),
            max_element_bytes,
            failed: None,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        if self.head > 0 {
            self.buf.drain(..self.head);
            self.scan = self.scan.saturating_sub(self.head);
            self.consumed += self.head;
            self.head = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next piece, or `Ok(None)` when more bytes are needed.
    pub fn next_piece(&mut self) -> Result<Option<Piece>, JsonArrayError> {
        if let Some(p) = self.ready.pop_front() {
            return Ok(Some(p));
        }
        if let Some(e) = self.failed {
            return Err(e);
        }
        if let Err(e) = self.scan_more() {
            self.flush_before(e);
            self.failed = Some(e);
        }
        match (self.ready.pop_front(), self.failed) {
            (Some(p), _) => Ok(Some(p)),
            (None, Some(e)) => Err(e),
            (None, None) => Ok(None),
        }
    }

    /// At the end of the stream: whatever is left (an incomplete element).
    pub fn finish(&mut self) -> Result<Option<Vec<u8>>, JsonArrayError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.buf.len() <= self.head {
            return Ok(None);
        }
        let n = self.buf.len();
        Ok(Some(self.take(n)))
    }

    /// On a syntax error, the structure before it goes out as it would have
    /// had the error come in a later chunk: the output must not depend on
    /// where the transport cut.
    fn flush_before(&mut self, e: JsonArrayError) {
        let JsonArrayError::Unexpected { offset } = e else { return };
        let at = offset.saturating_sub(self.consumed);
        if self.in_element || at <= self.head {
            return;
        }
        let bytes = self.take(at);
        self.ready.push_back(if self.top == Top::Closed { Piece::End(bytes) } else { Piece::Between(bytes) });
    }

    fn take(&mut self, end: usize) -> Vec<u8> {
        let end = end.clamp(self.head, self.buf.len());
        let piece = self.buf.get(self.head..end).unwrap_or_default().to_vec();
        self.head = end;
        piece
    }

    fn start_element(&mut self, at: usize) {
        if at > self.head {
            let gap = self.take(at);
            self.ready.push_back(Piece::Between(gap));
        }
        self.in_element = true;
    }

    /// A complete element is held to the same limit as an incomplete one,
    /// so the verdict does not depend on whether it arrived in one chunk.
    fn element_done(&mut self, end: usize) -> Result<(), JsonArrayError> {
        if end.saturating_sub(self.head) > self.max_element_bytes {
            return Err(JsonArrayError::ElementTooLarge { limit: self.max_element_bytes });
        }
        self.in_element = false;
        self.scalar = false;
        let element = self.take(end);
        self.ready.push_back(Piece::Element(element));
        Ok(())
    }

    fn scan_more(&mut self) -> Result<(), JsonArrayError> {
        while let Some(&b) = self.buf.get(self.scan) {
            let at = self.scan;
            if self.top == Top::Closed {
                // Bytes outside elements go out uninspected: after the
                // closing bracket only whitespace may follow.
                if !matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
                    return Err(JsonArrayError::Unexpected { offset: self.consumed + at });
                }
                self.scan = at + 1;
                continue;
            }
            if self.in_string {
                self.scan = at + 1;
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                    if self.depth == 1 && self.top == Top::Array && self.in_element {
                        self.element_done(at + 1)?;
                    }
                }
                continue;
            }
            if self.scalar && matches!(b, b',' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                self.element_done(at)?;
                continue;
            }
            // A scalar holds no container or string: one opened inside it
            // would outlive the element, and what follows would go out as
            // a gap.
            if self.scalar && matches!(b, b'{' | b'[' | b'"') {
                return Err(JsonArrayError::Unexpected { offset: self.consumed + at });
            }
            self.scan = at + 1;
            let gap = self.depth == 1 && self.top == Top::Array && !self.in_element;
            // Between elements (and before the array) only structure may
            // appear: a string or `:` there would go out uninspected.
            let outside = self.depth == 0 || gap;
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => {}
                b':' if outside => return Err(JsonArrayError::Unexpected { offset: self.consumed + at }),
                b',' if self.depth == 0 => return Err(JsonArrayError::Unexpected { offset: self.consumed + at }),
                b',' | b':' => {}
                b'[' if self.top == Top::Unknown => {
                    self.top = Top::Array;
                    self.depth = 1;
                }
                b'{' if self.top == Top::Unknown => {
                    self.top = Top::Object;
                    self.depth = 1;
                    self.start_element(at);
                }
                b'{' | b'[' => {
                    if gap {
                        self.start_element(at);
                    }
                    self.depth += 1;
                }
                b'"' => {
                    if self.depth == 0 {
                        return Err(JsonArrayError::Unexpected { offset: self.consumed + at });
                    }
                    if gap {
                        self.start_element(at);
                    }
                    self.in_string = true;
                }
                b'}' | b']' => {
                    // `}` cannot close the top-level array (a scalar cut short
                    // by it would go out as a gap).
                    let mismatched = b == b'}' && self.depth == 1 && self.top == Top::Array;
                    if self.depth == 0 || mismatched {
                        return Err(JsonArrayError::Unexpected { offset: self.consumed + at });
                    }
                    self.depth -= 1;
                    if self.depth == 0 && self.top == Top::Object {
                        self.element_done(at + 1)?;
                        self.top = Top::Closed;
                    } else if self.depth == 0 {
                        if at > self.head {
                            let gap = self.take(at);
                            self.ready.push_back(Piece::Between(gap));
                        }
                        self.top = Top::Closed;
                    } else if self.depth == 1 && self.top == Top::Array && self.in_element {
                        self.element_done(at + 1)?;
                    }
                }
                _ => {
                    if gap {
                        self.start_element(at);
                        self.scalar = true;
                    } else if self.depth == 0 {
                        return Err(JsonArrayError::Unexpected { offset: self.consumed + at });
                    }
                }
            }
        }
        if self.top == Top::Closed {
            if self.buf.len() > self.head {
                let n = self.buf.len();
                let end = self.take(n);
                self.ready.push_back(Piece::End(end));
            }
        } else if !self.in_element && self.scan > self.head {
            let gap = self.take(self.scan);
            self.ready.push_back(Piece::Between(gap));
        } else if self.in_element && self.buf.len().saturating_sub(self.head) > self.max_element_bytes {
            return Err(JsonArrayError::ElementTooLarge { limit: self.max_element_bytes });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pieces: &[&[u8]]) -> Vec<Piece> {
        let mut p = JsonArrayParser::new(1 << 16);
        let mut out = Vec::new();
        for piece in pieces {
            p.push(piece);
            while let Some(x) = p.next_piece().unwrap() {
                out.push(x);
            }
        }
        if let Some(rest) = p.finish().unwrap() {
            out.push(Piece::Between(rest));
        }
        out
    }

    fn elements(pieces: &[Piece]) -> Vec<Vec<u8>> {
        pieces.iter().filter_map(|p| if let Piece::Element(e) = p { Some(e.clone()) } else { None }).collect()
    }

    fn concat(pieces: &[Piece]) -> Vec<u8> {
        pieces
            .iter()
            .flat_map(|p| match p {
                Piece::Between(b) | Piece::Element(b) | Piece::End(b) => b.clone(),
            })
            .collect()
    }

    #[test]
    fn elements_at_every_split() {
        let input = b"[{\"a\":\"x]}\\\"\",\"b\":[1,{}]}\r\n,\r\n{\"c\":2}\n, 17 ,\"s\\\"]\" ,true]\n";
        let whole = run(&[input]);
        let expect: Vec<Vec<u8>> = vec![
            b"{\"a\":\"x]}\\\"\",\"b\":[1,{}]}".to_vec(),
            b"{\"c\":2}".to_vec(),
            b"17".to_vec(),
            b"\"s\\\"]\"".to_vec(),
            b"true".to_vec(),
        ];
        assert_eq!(elements(&whole), expect);
        assert_eq!(concat(&whole), input);
        assert!(matches!(whole.last(), Some(Piece::End(e)) if e == b"]\n"));
        for cut in 0..=input.len() {
            let got = run(&[&input[..cut], &input[cut..]]);
            assert_eq!(elements(&got), expect, "cut {cut}");
            assert_eq!(concat(&got), input);
        }
        let ones: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(elements(&run(&ones)), expect);
    }

    #[test]
    fn a_top_level_object_is_one_element() {
        let got = run(&[b"{\"error\":{\"code\":400}}\n"]);
        assert_eq!(elements(&got), [b"{\"error\":{\"code\":400}}".to_vec()]);
    }

    #[test]
    fn gaps_go_out_before_the_element_completes() {
        let mut p = JsonArrayParser::new(1024);
        p.push(b"[{\"a\":1},\n{\"b\"");
        assert!(matches!(p.next_piece().unwrap(), Some(Piece::Between(b)) if b == b"["));
        assert!(matches!(p.next_piece().unwrap(), Some(Piece::Element(_))));
        assert!(matches!(p.next_piece().unwrap(), Some(Piece::Between(b)) if b == b",\n"));
        assert_eq!(p.next_piece().unwrap(), None);
    }

    #[test]
    fn limits_and_garbage() {
        let mut p = JsonArrayParser::new(8);
        p.push(b"[{\"aaaaaaaaaaaa");
        assert!(matches!(p.next_piece(), Ok(Some(Piece::Between(_)))));
        assert_eq!(p.next_piece(), Err(JsonArrayError::ElementTooLarge { limit: 8 }));
        let mut p = JsonArrayParser::new(8);
        p.push(b"}");
        assert!(matches!(p.next_piece(), Err(JsonArrayError::Unexpected { offset: 0 })));
    }
}
