//! `SseParser` at arbitrary chunkings: the same dispatched events as in one
//! piece, the concatenation of every event's bytes is the input, and the
//! event-size limit fails the same way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshward_engine::stream::sse::{SseError, SseEvent, SseParser};

#[path = "common.rs"]
mod common;

/// Events with data (a data-less event such as a lone LF after a CR may
/// appear or not depending on the cut), the raw bytes, and the error.
fn run(pieces: &[&[u8]], limit: usize) -> (Vec<SseEvent>, Vec<u8>, Option<SseError>) {
    let mut p = SseParser::new(limit);
    let (mut events, mut raw) = (Vec::new(), Vec::new());
    let mut keep = |e: SseEvent, raw: &mut Vec<u8>| {
        raw.extend_from_slice(&e.raw);
        if e.data.is_some() {
            events.push(SseEvent { raw: Vec::new(), ..e });
        }
    };
    for piece in pieces {
        p.push(piece);
        loop {
            match p.next_event() {
                Ok(Some(e)) => {
                    assert!(e.terminated);
                    keep(e, &mut raw)
                }
                Ok(None) => break,
                Err(e) => return (events, raw, Some(e)),
            }
        }
    }
    match p.finish() {
        Ok(Some(e)) => keep(e, &mut raw),
        Ok(None) => {}
        Err(e) => return (events, raw, Some(e)),
    }
    assert_eq!(p.buffered(), 0);
    (events, raw, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&l, rest)) = data.split_first() else { return };
    let limit = if l & 0x80 == 0 { 1 << 20 } else { usize::from(l & 0x7f) + 1 };
    let (cuts, input) = common::cuts(rest);
    let whole = run(&[input], limit);
    let split = run(&common::pieces(input, &cuts), limit);
    if whole.2.is_none() {
        assert_eq!(whole.1, input, "the events' bytes are not the input");
    }
    assert_eq!(whole.2, split.2, "the error depends on the chunking {cuts:?}");
    if whole.2.is_none() {
        assert_eq!(split.1, input);
        assert_eq!(whole.0, split.0, "the events depend on the chunking {cuts:?}");
    }
});
