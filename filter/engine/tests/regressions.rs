//! Inputs found by fuzzing (`make fuzz`, see fuzz/), each with the fix it
//! needed. Every case runs as a plain test, so a regression fails
//! `cargo test` without a fuzzer.

use meshward_engine::stream::json_array::{JsonArrayError, JsonArrayParser, Piece};
use meshward_engine::stream::sse::{SseError, SseParser};

/// Feeds `pieces` to an SSE parser; the first error, if any.
fn sse_error(pieces: &[&[u8]], limit: usize) -> Option<SseError> {
    let mut p = SseParser::new(limit);
    for piece in pieces {
        p.push(piece);
        loop {
            match p.next_event() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => return Some(e),
            }
        }
    }
    p.finish().err()
}

/// fuzz/sse: a CRLF-terminated event at the event-size limit was refused
/// whole but accepted when the CR and LF came in different chunks (then
/// the CR alone ends the event). A line ending now counts as one byte.
#[test]
fn sse_size_limit_does_not_depend_on_a_split_crlf() {
    let input = b"\r\n\n\r";
    let whole = sse_error(&[input], 1);
    for cut in 0..=input.len() {
        assert_eq!(sse_error(&[&input[..cut], &input[cut..]], 1), whole, "cut {cut}");
    }
    // At a real size: the event's final CRLF counts as one byte, so this
    // event is 19 bytes at every split.
    let event = b"data: 0123456789\r\n\r\n";
    let limit = event.len() - 1;
    assert_eq!(sse_error(&[event], limit), None);
    for cut in 0..=event.len() {
        assert_eq!(sse_error(&[&event[..cut], &event[cut..]], limit), None, "cut {cut}");
    }
    assert!(sse_error(&[event], limit - 1).is_some());
}

/// Feeds `pieces` to a Gemini JSON-array parser; elements and the first error.
fn array_run(pieces: &[&[u8]], limit: usize) -> (Vec<Vec<u8>>, Option<JsonArrayError>) {
    let mut p = JsonArrayParser::new(limit);
    let mut elements = Vec::new();
    for piece in pieces {
        p.push(piece);
        loop {
            match p.next_piece() {
                Ok(Some(Piece::Element(e))) => elements.push(e),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => return (elements, Some(e)),
            }
        }
    }
    (elements, p.finish().err())
}

/// fuzz/json_array: an element larger than the limit passed when it arrived
/// in one chunk (the limit was only checked on incomplete elements) and
/// failed when it was cut. Complete elements are now checked too.
#[test]
fn json_array_element_limit_does_not_depend_on_chunking() {
    let input = br#"[{"text":"0123456789abcdef"},{"b":1}]"#;
    let limit = 16;
    let (_, whole) = array_run(&[input], limit);
    assert_eq!(whole, Some(JsonArrayError::ElementTooLarge { limit }));
    for cut in 0..=input.len() {
        let (_, split) = array_run(&[&input[..cut], &input[cut..]], limit);
        assert_eq!(split, whole, "cut {cut}");
    }
    // At the limit exactly, every chunking passes.
    let (elements, err) = array_run(&[input], 28);
    assert_eq!((elements.len(), err), (2, None));
}

/// fuzz/json_array: bytes outside elements (`Between` and `End` pieces) are
/// forwarded without inspection, and the parser let content through there:
/// a top-level string, anything after the closing `]`, a scalar cut short
/// by `}`, a container or string opened inside a scalar (the scalar ended at
/// the next space while the container stayed open, and the rest went out as
/// a gap). All are now errors (the stream fails closed).
#[test]
fn json_array_lets_no_content_out_between_elements() {
    for bad in [
        &br#""4111 1111 1111 1111""#[..],
        br#"[{"a":1}] "jane@example.com""#,
        br#"[{"a":1}]{"b":"4111 1111 1111 1111"}"#,
        b"[$4111 1111 1111 1111}",
        br#"[{"a":1}:"4111 1111 1111 1111"]"#,
        b",[]",
        // A container opened inside a scalar outlived the element.
        b"[ac{n\nad1\x02e",
        b"[1{\n\"4111 1111 1111 1111\"",
        b"[true\"x\" 4111]",
    ] {
        let (_, err) = array_run(&[bad], 1 << 16);
        assert!(matches!(err, Some(JsonArrayError::Unexpected { .. })), "{}: {err:?}", String::from_utf8_lossy(bad));
    }
    // What is still fine: whitespace and commas around elements, an error object.
    for good in [&b" [ {\"a\":1} ,\r\n{\"b\":2}, 3 ] \n"[..], b"{\"error\":{\"code\":400}}\n", b"[]"] {
        assert_eq!(array_run(&[good], 1 << 16).1, None, "{}", String::from_utf8_lossy(good));
    }
}

/// The adversarial bench (benches/adversarial.rs): every stream parser cut
/// each event off the front of its buffer with `drain`, shifting the rest,
/// so a chunk of many small events took quadratic time (1 MiB of blank SSE
/// lines: ~20× the 64 KiB time ×16), and a line arriving a byte at a time
/// was searched again per byte. Buffers are now consumed by offset and
/// compacted once per push. Speed is the bench's to measure (DESIGN.md §5),
/// so this only runs the shapes at 1 MiB: linear, well under a second;
/// quadratic, minutes.
#[test]
fn stream_parsers_are_linear_in_the_number_of_events() {
    use meshward_engine::stream::eventstream::{EventStreamDecoder, Message};
    const MIB: usize = 1 << 20;

    let mut p = SseParser::new(2 * MIB);
    p.push(&b"\n".repeat(MIB));
    let mut n = 0;
    while let Ok(Some(_)) = p.next_event() {
        n += 1;
    }
    assert_eq!(n, MIB);
    let mut p = SseParser::new(2 * MIB);
    for b in b"data:".iter().chain(&[b'x'; MIB / 4]) {
        p.push(&[*b]);
        assert_eq!(p.next_event(), Ok(None));
    }

    let mut p = JsonArrayParser::new(2 * MIB);
    p.push(format!("[{}1]", "1,".repeat(MIB / 2)).as_bytes());
    let mut n = 0;
    while let Ok(Some(_)) = p.next_piece() {
        n += 1;
    }
    assert!(n > MIB / 2, "{n}");

    let frame = Message { headers: Vec::new(), payload: b"{}".to_vec() }.encode();
    let mut d = EventStreamDecoder::new(2 * MIB);
    d.push(&frame.repeat(MIB / frame.len()));
    let mut n = 0;
    while let Ok(Some(_)) = d.next_frame() {
        n += 1;
    }
    assert_eq!((n, d.buffered()), (MIB / frame.len(), 0));
}

/// fuzz/response_stream: a Gemini array stream that is malformed after
/// leading whitespace sent the whitespace before the error event when the
/// whitespace came in its own chunk, and not when it came with the bad
/// byte. Structure before a syntax error now goes out at every chunking.
#[test]
fn json_array_output_before_an_error_does_not_depend_on_chunking() {
    use meshward_engine::policy::Secrets;
    use meshward_engine::response::ResponseMeta;
    use meshward_engine::restore::RestoreMap;
    use meshward_engine::Engine;

    let policy =
        br#"{"meshward_policy":1,"name":"t","version":"1","detection":{"classes":{"EMAIL":{"action":"redact"}}}}"#;
    let e = Engine::from_json(
        policy,
        &Secrets { placeholder_key: Some("test-placeholder-key-0123456789".into()), ..Secrets::default() },
    )
    .unwrap();
    let meta = ResponseMeta {
        request_id: "fuzz",
        request_path: "/v1beta/models/g:streamGenerateContent",
        content_type: Some("application/json"),
        content_encoding: None,
        status: 200,
    };
    let run = |pieces: &[&[u8]]| {
        let mut s = e.response_stream(&meta, RestoreMap::new());
        let mut out: Vec<u8> = pieces.iter().flat_map(|p| s.push(&e, p)).collect();
        out.extend(s.finish(&e));
        out
    };
    for input in [&b" \x8e\x8e\x8eda"[..], b"[{\"a\":1}] x", b"[ {\"a\":1} :1]"] {
        let whole = run(&[input]);
        for cut in 0..=input.len() {
            assert_eq!(run(&[&input[..cut], &input[cut..]]), whole, "{input:?} cut at {cut}");
        }
    }
}
