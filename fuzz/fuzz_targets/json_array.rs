//! `JsonArrayParser` (Gemini streaming) at arbitrary chunkings: the same
//! elements as in one piece, the pieces add up to the input, and nothing
//! but structure goes out between elements (those bytes are not inspected).
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshward_engine::stream::json_array::{JsonArrayError, JsonArrayParser, Piece};

#[path = "common.rs"]
mod common;

fn run(pieces: &[&[u8]], limit: usize) -> (Vec<Vec<u8>>, Vec<u8>, Option<JsonArrayError>) {
    let mut p = JsonArrayParser::new(limit);
    let (mut elements, mut all) = (Vec::new(), Vec::new());
    for piece in pieces {
        p.push(piece);
        loop {
            match p.next_piece() {
                Ok(Some(Piece::Element(e))) => {
                    all.extend_from_slice(&e);
                    elements.push(e);
                }
                Ok(Some(Piece::Between(b) | Piece::End(b))) => {
                    // These bytes are forwarded uninspected: structure only.
                    assert!(b.iter().all(|c| b" \t\r\n,[]".contains(c)), "content outside elements: {b:?}");
                    all.extend_from_slice(&b)
                }
                Ok(None) => break,
                Err(e) => return (elements, all, Some(e)),
            }
        }
    }
    match p.finish() {
        Ok(tail) => all.extend(tail.unwrap_or_default()),
        Err(e) => return (elements, all, Some(e)),
    }
    (elements, all, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&l, rest)) = data.split_first() else { return };
    let limit = if l & 0x80 == 0 { 1 << 20 } else { usize::from(l & 0x7f) + 1 };
    let (cuts, input) = common::cuts(rest);
    let whole = run(&[input], limit);
    let split = run(&common::pieces(input, &cuts), limit);
    if whole.2.is_none() {
        assert_eq!(whole.1, input, "the pieces are not the input");
        assert_eq!(split.2, None, "an error only at the chunking {cuts:?}");
        assert_eq!(split.1, input);
        assert_eq!(whole.0, split.0, "the elements depend on the chunking {cuts:?}");
    }
});
