//! `EventStreamDecoder` (Bedrock) at arbitrary chunkings: the same frames
//! as in one piece, each frame's bytes re-encode to themselves, and the
//! frames are a prefix of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshward_engine::stream::eventstream::{EventStreamDecoder, EventStreamError, Frame, Message};

#[path = "common.rs"]
mod common;

fn run(pieces: &[&[u8]], limit: usize) -> (Vec<Frame>, Option<EventStreamError>) {
    let mut d = EventStreamDecoder::new(limit);
    let mut frames = Vec::new();
    for piece in pieces {
        d.push(piece);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let limit = if mode & 0x40 == 0 { 1 << 20 } else { usize::from(mode & 0x3f) * 4 + 16 };
    let (cuts, payload) = common::cuts(rest);
    // Half the time the payload is framed first, so the fuzzer gets past the CRCs.
    let framed;
    let input: &[u8] = if mode & 0x80 == 0 {
        payload
    } else {
        framed = payload
            .split(|&b| b == 0)
            .flat_map(|chunk| {
                let (kind, body) = chunk.split_at(chunk.len().min(8));
                Message::event(&String::from_utf8_lossy(kind), body.to_vec()).encode()
            })
            .collect::<Vec<u8>>();
        &framed
    };
    let cuts: Vec<usize> = cuts.iter().map(|&c| c * input.len() / payload.len().max(1)).collect();
    let whole = run(&[input], limit);
    let split = run(&common::pieces(input, &cuts), limit);
    assert_eq!(whole, split, "the frames depend on the chunking {cuts:?}");
    let mut at = 0;
    for f in &whole.0 {
        assert_eq!(f.raw, input[at..at + f.raw.len()]);
        at += f.raw.len();
        assert_eq!(f.message.encode(), f.raw, "a decoded frame does not re-encode to itself");
    }
});
