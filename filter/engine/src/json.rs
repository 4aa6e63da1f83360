//! A single-pass JSON tokenizer over the raw request bytes.
//!
//! Why not `serde_json::Value`: a DOM round trip costs more than the whole
//! latency budget (DESIGN.md §4) and reorders/reformats the client's body.
//! Instead we validate the document once, hand every string *value* to a
//! visitor with its path and byte span, and let the caller splice
//! replacements into the original bytes.
//!
//! The walk is iterative (an explicit stack bounded by `max_depth`), so no
//! input can overflow the wasm stack, and it is linear in the input size.

use std::fmt;

use crate::detect::bytescan::find_string_stop;

/// One step of the path from the document root to a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathSeg<'a> {
    /// An object member; the key exactly as written, escapes included.
    Key(&'a str),
    /// An array element.
    Index(usize),
}

impl PathSeg<'_> {
    /// Whether this is the object key `name`, honouring escapes in the key.
    /// Byte by byte up to the first escape: most keys a codec asks about
    /// differ from the one at hand in their first byte, and a search of the
    /// whole key for '\\' first cost more than all the comparing. Not
    /// inlined: at its dozens of call sites that added 44 KB to the `.wasm`
    /// to save about 4,000 of an exchange's 100,000 operators.
    #[inline(never)]
    pub fn is_key(&self, name: &str) -> bool {
        let PathSeg::Key(raw) = self else { return false };
        let wanted = name.as_bytes();
        for (i, &b) in raw.as_bytes().iter().enumerate() {
            if b == b'\\' {
                return unescape(raw, None) == name;
            }
            if wanted.get(i) != Some(&b) {
                return false;
            }
        }
        raw.len() == wanted.len()
    }

    pub fn index(&self) -> Option<usize> {
        match self {
            PathSeg::Index(i) => Some(*i),
            PathSeg::Key(_) => None,
        }
    }
}

/// Renders a path as `messages[1].content[0].text`, for findings and errors.
pub fn path_to_string(path: &[PathSeg<'_>]) -> String {
    Location(Some(path)).render()
}

/// Where a text part sits in the body (`None`: the body itself, `$`),
/// rendered only when something reports it: guards read every part, and
/// formatting each part's path was a sixth of the request scan of a short
/// chat request (`cargo bench --bench exchange` under `perf`).
#[derive(Debug, Clone, Copy)]
pub struct Location<'p, 'a>(pub Option<&'p [PathSeg<'a>]>);

impl Location<'_, '_> {
    /// The path as text, pushed onto one `String` (a finding renders its
    /// location on the request path); keys are unescaped only when they
    /// hold an escape.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(32);
        for seg in self.0.unwrap_or_default() {
            match seg {
                PathSeg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    if k.as_bytes().contains(&b'\\') {
                        out.push_str(&unescape(k, None));
                    } else {
                        out.push_str(k);
                    }
                }
                PathSeg::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        if out.is_empty() {
            out.push('$');
        }
        out
    }
}

impl fmt::Display for Location<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// A string value: `start..end` is its content between the quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StringLeaf {
    pub start: usize,
    pub end: usize,
    /// The content contains at least one backslash escape.
    pub escaped: bool,
}

/// Receives every string value of the document, in document order.
pub trait Visitor<'a> {
    fn string(&mut self, path: &[PathSeg<'a>], leaf: StringLeaf);

    /// A number, `true`, `false` or `null` at `path`, spanning `start..end`.
    fn scalar(&mut self, _path: &[PathSeg<'a>], _start: usize, _end: usize) {}

    /// The object at `path` ends with the `}` at byte `close`; `empty` when
    /// it has no members. Lets a caller splice a member in before `close`.
    fn object_end(&mut self, _path: &[PathSeg<'a>], _close: usize, _empty: bool) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonErrorKind {
    UnexpectedEnd,
    UnexpectedByte(u8),
    InvalidEscape,
    ControlCharacterInString,
    InvalidNumber,
    TrailingData,
    TooDeep { limit: usize },
}

/// Why a body is not JSON, and the byte offset where that became clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonError {
    pub offset: usize,
    pub kind: JsonErrorKind,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.offset;
        match self.kind {
            JsonErrorKind::UnexpectedEnd => write!(f, "unexpected end of input at byte {at}"),
            JsonErrorKind::UnexpectedByte(b) if b.is_ascii_graphic() => {
                write!(f, "unexpected character '{}' at byte {at}", b as char)
            }
            JsonErrorKind::UnexpectedByte(b) => write!(f, "unexpected byte 0x{b:02x} at byte {at}"),
            JsonErrorKind::InvalidEscape => write!(f, "invalid escape sequence at byte {at}"),
            JsonErrorKind::ControlCharacterInString => {
                write!(f, "unescaped control character in string at byte {at}")
            }
            JsonErrorKind::InvalidNumber => write!(f, "invalid number at byte {at}"),
            JsonErrorKind::TrailingData => {
                write!(f, "trailing data after the JSON value at byte {at}")
            }
            JsonErrorKind::TooDeep { limit } => {
                write!(f, "nesting deeper than {limit} levels at byte {at}")
            }
        }
    }
}

impl std::error::Error for JsonError {}

#[derive(Clone, Copy)]
enum Frame {
    Object,
    Array,
}

/// Validates `src` as one JSON value and visits every string value.
pub fn walk<'a, V: Visitor<'a>>(src: &'a str, max_depth: usize, visitor: &mut V) -> Result<(), JsonError> {
    let mut p = Parser { src, bytes: src.as_bytes(), pos: 0 };
    let mut frames: Vec<Frame> = Vec::new();
    let mut path: Vec<PathSeg<'a>> = Vec::new();

    'value: loop {
        p.skip_ws();
        let at = p.pos;
        match p.peek()? {
            b'{' => {
                p.pos += 1;
                push_frame(&mut frames, Frame::Object, max_depth, at)?;
                p.skip_ws();
                if p.peek()? == b'}' {
                    visitor.object_end(&path, p.pos, true);
                    p.pos += 1;
                    frames.pop();
                } else {
                    let key = p.member_key()?;
                    path.push(PathSeg::Key(key));
                    continue 'value;
                }
            }
            b'[' => {
                p.pos += 1;
                push_frame(&mut frames, Frame::Array, max_depth, at)?;
                p.skip_ws();
                if p.peek()? == b']' {
                    p.pos += 1;
                    frames.pop();
                } else {
                    path.push(PathSeg::Index(0));
                    continue 'value;
                }
            }
            b'"' => {
                let leaf = p.string()?;
                visitor.string(&path, leaf);
            }
            b't' => {
                p.literal("true")?;
                visitor.scalar(&path, at, p.pos);
            }
            b'f' => {
                p.literal("false")?;
                visitor.scalar(&path, at, p.pos);
            }
            b'n' => {
                p.literal("null")?;
                visitor.scalar(&path, at, p.pos);
            }
            b'-' | b'0'..=b'9' => {
                p.number()?;
                visitor.scalar(&path, at, p.pos);
            }
            other => return Err(p.err_at(at, JsonErrorKind::UnexpectedByte(other))),
        }

        // A value is complete: close containers until one wants another value.
        loop {
            p.skip_ws();
            let Some(frame) = frames.last().copied() else {
                return if p.pos == p.bytes.len() { Ok(()) } else { Err(p.err(JsonErrorKind::TrailingData)) };
            };
            let at = p.pos;
            match (frame, p.peek()?) {
                (Frame::Object, b',') => {
                    p.pos += 1;
                    path.pop();
                    p.skip_ws();
                    let key = p.member_key()?;
                    path.push(PathSeg::Key(key));
                    continue 'value;
                }
                (Frame::Array, b',') => {
                    p.pos += 1;
                    if let Some(PathSeg::Index(i)) = path.last_mut() {
                        *i += 1;
                    }
                    continue 'value;
                }
                (Frame::Object, b'}') => {
                    p.pos += 1;
                    path.pop();
                    frames.pop();
                    visitor.object_end(&path, at, false);
                }
                (Frame::Array, b']') => {
                    p.pos += 1;
                    path.pop();
                    frames.pop();
                }
                (_, other) => return Err(p.err_at(at, JsonErrorKind::UnexpectedByte(other))),
            }
        }
    }
}

fn push_frame(frames: &mut Vec<Frame>, frame: Frame, max_depth: usize, at: usize) -> Result<(), JsonError> {
    if frames.len() >= max_depth {
        return Err(JsonError { offset: at, kind: JsonErrorKind::TooDeep { limit: max_depth } });
    }
    frames.push(frame);
    Ok(())
}

struct Parser<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, kind: JsonErrorKind) -> JsonError {
        JsonError { offset: self.pos, kind }
    }

    fn err_at(&self, offset: usize, kind: JsonErrorKind) -> JsonError {
        JsonError { offset, kind }
    }

    fn peek(&self) -> Result<u8, JsonError> {
        self.bytes.get(self.pos).copied().ok_or_else(|| self.err(JsonErrorKind::UnexpectedEnd))
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// `"key" :` — returns the raw key content.
    fn member_key(&mut self) -> Result<&'a str, JsonError> {
        let at = self.pos;
        match self.peek()? {
            b'"' => {}
            other => return Err(self.err_at(at, JsonErrorKind::UnexpectedByte(other))),
        }
        let leaf = self.string()?;
        self.skip_ws();
        match self.peek()? {
            b':' => self.pos += 1,
            other => return Err(self.err(JsonErrorKind::UnexpectedByte(other))),
        }
        // Quotes are ASCII, so the span is on char boundaries.
        Ok(self.src.get(leaf.start..leaf.end).unwrap_or_default())
    }

    /// Scans a string starting at its opening quote.
    ///
    /// The hot loop of the whole filter: prose is skipped a block at a time
    /// to the next quote, backslash or control character
    /// ([`find_string_stop`], vectorised natively and in the `.wasm`), one
    /// pass where a `memchr2` for the quote and a second check of the run
    /// for control characters were two.
    fn string(&mut self) -> Result<StringLeaf, JsonError> {
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        loop {
            let rest = self.bytes.get(self.pos..).unwrap_or_default();
            self.pos += find_string_stop(rest, 0).unwrap_or(rest.len());
            match self.peek()? {
                b if b < 0x20 => return Err(self.err(JsonErrorKind::ControlCharacterInString)),
                b'"' => {
                    let end = self.pos;
                    self.pos += 1;
                    return Ok(StringLeaf { start, end, escaped });
                }
                _ => {
                    escaped = true;
                    self.pos += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.pos += 1,
                        b'u' => {
                            self.pos += 1;
                            for _ in 0..4 {
                                if !self.peek()?.is_ascii_hexdigit() {
                                    return Err(self.err(JsonErrorKind::InvalidEscape));
                                }
                                self.pos += 1;
                            }
                        }
                        _ => return Err(self.err(JsonErrorKind::InvalidEscape)),
                    }
                }
            }
        }
    }

    fn literal(&mut self, word: &str) -> Result<(), JsonError> {
        let end = self.pos + word.len();
        match self.bytes.get(self.pos..end) {
            Some(got) if got == word.as_bytes() => {
                self.pos = end;
                Ok(())
            }
            Some(_) => Err(self.err(JsonErrorKind::UnexpectedByte(self.peek()?))),
            None => Err(self.err_at(self.bytes.len(), JsonErrorKind::UnexpectedEnd)),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<(), JsonError> {
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match self.bytes.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err(JsonErrorKind::InvalidNumber)),
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err(JsonErrorKind::InvalidNumber));
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err(JsonErrorKind::InvalidNumber));
            }
        }
        Ok(())
    }
}

fn hex4(raw: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &b in raw.get(..4)? {
        v = v * 16 + (b as char).to_digit(16)?;
    }
    Some(v)
}

/// Where the bytes of a decoded JSON string came from in its raw form, so a
/// span found in the decoded text maps back to raw bytes covering whole
/// escape sequences.
///
/// Sparse: one anchor per unescaped run and per escape, not one entry per
/// byte. Prompts with a newline every line are escaped throughout, and a
/// per-byte table cost more to build than the scan that used it.
#[derive(Debug, Default, Clone)]
pub struct OffsetMap {
    /// Anchors sorted by decoded offset: `(decoded, raw, is_escape)`. In a
    /// run, raw advances with decoded; every byte an escape decodes to maps
    /// to the escape's start. The last anchor is the end of both.
    anchors: Vec<(usize, usize, bool)>,
}

impl OffsetMap {
    /// The raw offset for decoded offset `at` (`at` may be the decoded
    /// length: the raw length). `None` past the end.
    pub fn get(&self, at: usize) -> Option<usize> {
        let &(end, _, _) = self.anchors.last()?;
        if at > end {
            return None;
        }
        let i = self.anchors.partition_point(|&(d, _, _)| d <= at).checked_sub(1)?;
        let &(decoded, raw, is_escape) = self.anchors.get(i)?;
        Some(if is_escape { raw } else { raw + (at - decoded) })
    }
}

/// Decodes the content of a JSON string (already validated by [`walk`]).
///
/// With `map`, also records where each decoded byte came from in `raw`
/// ([`OffsetMap`], replacing what it held). Lone surrogates decode to
/// U+FFFD.
pub fn unescape(raw: &str, map: Option<&mut OffsetMap>) -> String {
    let mut anchors = map.map(|m| {
        m.anchors.clear();
        &mut m.anchors
    });
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let from = i;
        let Some(rest) = raw.get(i..) else { break };
        if bytes.get(i) != Some(&b'\\') {
            // Copy the run up to the next escape in one go.
            let run = memchr::memchr(b'\\', rest.as_bytes()).unwrap_or(rest.len());
            if let Some(a) = anchors.as_deref_mut() {
                a.push((out.len(), from, false));
            }
            out.push_str(rest.get(..run).unwrap_or_default());
            i += run;
            continue;
        }
        let esc = bytes.get(i + 1).copied().unwrap_or(b'\\');
        i += 2;
        let ch = match esc {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = bytes.get(i..).and_then(hex4).unwrap_or(0xfffd);
                i += 4;
                if (0xd800..0xdc00).contains(&hi) && bytes.get(i) == Some(&b'\\') && bytes.get(i + 1) == Some(&b'u') {
                    match bytes.get(i + 2..).and_then(hex4) {
                        Some(lo) if (0xdc00..0xe000).contains(&lo) => {
                            i += 6;
                            char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)).unwrap_or('\u{fffd}')
                        }
                        _ => '\u{fffd}',
                    }
                } else {
                    char::from_u32(hi).unwrap_or('\u{fffd}')
                }
            }
            _ => '\u{fffd}',
        };
        if let Some(a) = anchors.as_deref_mut() {
            a.push((out.len(), from, true));
        }
        out.push(ch);
    }
    if let Some(a) = anchors {
        // The end maps to the end, even right after an escape.
        a.push((out.len(), raw.len(), false));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_unescaped() {
        assert!(PathSeg::Key("content").is_key("content"));
        assert!(!PathSeg::Key("content").is_key("contents"));
        assert!(!PathSeg::Key("contents").is_key("content"));
        assert!(PathSeg::Key("con\\u0074ent").is_key("content"));
        assert!(!PathSeg::Key("con\\u0074ent").is_key("con\\u0074ent"));
        // Same length with an escape: unescaped it is shorter.
        assert!(!PathSeg::Key("a\\nb").is_key("a\\nb"));
        // Escapes first, last, and after a prefix that differs.
        assert!(PathSeg::Key("\\u0072ole").is_key("role"));
        assert!(PathSeg::Key("rol\\u0065").is_key("role"));
        assert!(!PathSeg::Key("x\\u0072ole").is_key("role"));
        assert!(!PathSeg::Key("role").is_key(""));
        assert!(PathSeg::Key("").is_key(""));
        assert!(!PathSeg::Index(0).is_key("0"));
    }

    #[test]
    fn strings_end_at_the_first_unescaped_quote_at_any_length() {
        for len in [0, 1, 15, 16, 17, 40] {
            for escape_at in [None, Some(0), Some(len / 2)] {
                let mut s = "x".repeat(len);
                if let Some(at) = escape_at.filter(|&a| a < len) {
                    s.insert_str(at, "\\\"");
                }
                let doc = format!("{{\"k\":\"{s}\",\"z\":1}}");
                struct Spans(Vec<StringLeaf>);
                impl Visitor<'_> for Spans {
                    fn string(&mut self, _path: &[PathSeg<'_>], leaf: StringLeaf) {
                        self.0.push(leaf);
                    }
                }
                let mut spans = Spans(Vec::new());
                walk(&doc, 8, &mut spans).expect("valid");
                let leaf = spans.0.first().copied().expect("one string");
                assert_eq!(&doc[leaf.start..leaf.end], s, "{doc}");
                assert_eq!(leaf.escaped, s.contains('\\'), "{doc}");
            }
        }
    }

    #[test]
    fn locations_render_as_json_paths() {
        let render = |path: &[PathSeg<'_>]| Location(Some(path)).to_string();
        assert_eq!(Location(None).to_string(), "$");
        assert_eq!(render(&[]), "$");
        let path = [PathSeg::Key("messages"), PathSeg::Index(1), PathSeg::Key("content"), PathSeg::Index(0)];
        assert_eq!(render(&path), "messages[1].content[0]");
        assert_eq!(render(&[PathSeg::Index(2), PathSeg::Key("a\\u0041")]), "[2].aA");
        // An empty key writes nothing, so no '.' follows it and an
        // all-empty path is still `$`.
        assert_eq!(render(&[PathSeg::Key(""), PathSeg::Key("b")]), "b");
        assert_eq!(render(&[PathSeg::Key("")]), "$");
    }

    #[derive(Default)]
    struct Collect(Vec<(String, String)>);

    impl<'a> Visitor<'a> for Collect {
        fn string(&mut self, path: &[PathSeg<'a>], _leaf: StringLeaf) {
            self.0.push((path_to_string(path), String::new()));
        }
    }

    fn leaves(src: &str) -> Result<Vec<String>, JsonError> {
        let mut c = Collect::default();
        walk(src, 64, &mut c)?;
        Ok(c.0.into_iter().map(|(p, _)| p).collect())
    }

    #[test]
    fn reports_every_string_value_with_its_path() {
        let got = leaves(r#"{"a":"x","b":[1,"y",{"c":"z"}],"d":{"e":null,"f":"w"},"g":"v"}"#).unwrap();
        assert_eq!(got, ["a", "b[1]", "b[2].c", "d.f", "g"]);
    }

    #[test]
    fn spans_point_at_string_content() {
        struct Spans<'s>(&'s str, Vec<&'s str>);
        impl<'a, 's> Visitor<'a> for Spans<'s> {
            fn string(&mut self, _path: &[PathSeg<'a>], leaf: StringLeaf) {
                self.1.push(&self.0[leaf.start..leaf.end]);
            }
        }
        let src = r#" { "k" : "va\"l" , "n": ["", "é"] } "#;
        let mut s = Spans(src, Vec::new());
        walk(src, 8, &mut s).unwrap();
        assert_eq!(s.1, [r#"va\"l"#, "", "é"]);
    }

    #[test]
    fn accepts_scalars_and_empty_containers() {
        for ok in ["0", "-0.5e+3", "true", "null", "\"s\"", "[]", "{}", "[[],{}]", " 12 "] {
            assert!(leaves(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_malformed_documents_with_offsets() {
        let cases: &[(&str, JsonErrorKind, usize)] = &[
            ("", JsonErrorKind::UnexpectedEnd, 0),
            ("{", JsonErrorKind::UnexpectedEnd, 1),
            ("{\"a\" 1}", JsonErrorKind::UnexpectedByte(b'1'), 5),
            ("[1,]", JsonErrorKind::UnexpectedByte(b']'), 3),
            ("{\"a\":1,}", JsonErrorKind::UnexpectedByte(b'}'), 7),
            ("[1] x", JsonErrorKind::TrailingData, 4),
            ("\"a\\x\"", JsonErrorKind::InvalidEscape, 3),
            ("\"a\nb\"", JsonErrorKind::ControlCharacterInString, 2),
            ("01", JsonErrorKind::TrailingData, 1),
            ("-", JsonErrorKind::InvalidNumber, 1),
            ("1.", JsonErrorKind::InvalidNumber, 2),
            ("tru", JsonErrorKind::UnexpectedEnd, 3),
            ("trux", JsonErrorKind::UnexpectedByte(b't'), 0),
            ("[1 2]", JsonErrorKind::UnexpectedByte(b'2'), 3),
            ("{1:2}", JsonErrorKind::UnexpectedByte(b'1'), 1),
        ];
        for (src, kind, offset) in cases {
            let err = leaves(src).unwrap_err();
            assert_eq!((err.kind, err.offset), (*kind, *offset), "{src:?}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(1_000_000);
        let err = leaves(&deep).unwrap_err();
        assert_eq!(err.kind, JsonErrorKind::TooDeep { limit: 64 });
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(leaves(&ok).is_ok());
        let too_deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert!(leaves(&too_deep).is_err());
    }

    #[test]
    fn scalars_and_object_ends_are_reported_with_spans() {
        #[derive(Default)]
        struct Events(Vec<String>);
        impl<'a> Visitor<'a> for Events {
            fn string(&mut self, _path: &[PathSeg<'a>], _leaf: StringLeaf) {}
            fn scalar(&mut self, path: &[PathSeg<'a>], start: usize, end: usize) {
                self.0.push(format!("{} {start}..{end}", path_to_string(path)));
            }
            fn object_end(&mut self, path: &[PathSeg<'a>], close: usize, empty: bool) {
                self.0.push(format!("{} }} {close} {empty}", path_to_string(path)));
            }
        }
        let src = r#"{"a":true, "b":{ },"c":[null,-1.5e3,{"d":false} ] }"#;
        let mut e = Events::default();
        walk(src, 8, &mut e).unwrap();
        assert_eq!(
            e.0,
            ["a 5..9", "b } 17 true", "c[0] 24..28", "c[1] 29..35", "c[2].d 41..46", "c[2] } 46 false", "$ } 50 false"]
        );
        assert_eq!((&src[5..9], &src[24..28], &src[29..35], &src[41..46]), ("true", "null", "-1.5e3", "false"));
        assert_eq!((&src[17..18], &src[46..47], &src[50..51]), ("}", "}", "}"));
    }

    #[test]
    fn duplicate_keys_are_all_visited() {
        assert_eq!(leaves(r#"{"a":"1","a":"2"}"#).unwrap(), ["a", "a"]);
    }

    #[test]
    fn escaped_keys_compare_by_value() {
        assert!(PathSeg::Key("con\\u0074ent").is_key("content"));
        assert!(!PathSeg::Key("contents").is_key("content"));
    }

    #[test]
    fn unescape_decodes_and_maps_offsets() {
        let raw = r#"a\nb\u00e9\ud83d\ude00c\"\ud800"#;
        let mut map = OffsetMap::default();
        let text = unescape(raw, Some(&mut map));
        assert_eq!(text, "a\nbé😀c\"\u{fffd}");
        // 'c' in the text maps to 'c' in the raw string.
        let c_text = text.find('c').unwrap();
        let c_raw = map.get(c_text).unwrap();
        assert_eq!(&raw[c_raw..c_raw + 1], "c");
        // The emoji's 4 bytes all map to the start of its surrogate pair.
        let e = text.find('😀').unwrap();
        assert!((e..e + 4).all(|d| &raw[map.get(d).unwrap()..map.get(d).unwrap() + 6] == r"\ud83d"));
        // 'é' (two bytes from one escape) maps to its escape; the end to the end.
        let acute = text.find('é').unwrap();
        assert_eq!(&raw[map.get(acute).unwrap()..][..6], r"\u00e9");
        assert_eq!(map.get(acute + 1), map.get(acute));
        assert_eq!(map.get(text.len()), Some(raw.len()));
        assert_eq!(map.get(text.len() + 1), None);
    }

    #[test]
    fn every_mapped_offset_decodes_to_the_rest_of_the_text() {
        // Decoding the raw string from where any decoded character maps to
        // must give the decoded text from that character on. One map serves
        // every string, as in a request's walk: each decode replaces it.
        let mut map = OffsetMap::default();
        for raw in [
            r#"line1\nline2\n\n\"quoted\" \\ back\/slash"#,
            r#"\u00e9t\u00e9 \ud83d\ude00 end\ud800"#,
            r#"\n"#,
            r#"no escapes at all"#,
            r#"tail escape\t"#,
        ] {
            let text = unescape(raw, Some(&mut map));
            for (d, _) in text.char_indices() {
                let r = map.get(d).unwrap_or_else(|| panic!("{raw:?}: no mapping for {d}"));
                assert_eq!(unescape(&raw[r..], None), &text[d..], "{raw:?} at decoded {d} (raw {r})");
            }
            assert_eq!(map.get(text.len()), Some(raw.len()), "{raw:?}");
        }
    }

    #[test]
    fn unescape_without_escapes_is_identity() {
        let mut map = OffsetMap::default();
        assert_eq!(unescape("plain é", Some(&mut map)), "plain é");
        assert_eq!((0..=8).map(|d| map.get(d)).collect::<Vec<_>>(), (0..=8).map(Some).collect::<Vec<_>>());
    }
}
