//! Finding the next byte of a range a block at a time. The digit and
//! capital-letter passes, the non-ASCII check before normalisation and the
//! JSON string check skip prose with it; a byte-at-a-time `position`
//! cannot be vectorised because it stops early, and it was most of those
//! passes' cost.
//!
//! Natively each 32-byte block is tested with a branch-free fold, which
//! LLVM turns into SSE2/AVX2 compares. Inside the `.wasm` LLVM unrolls the
//! same fold into scalar code instead, so there a 16-byte block is one
//! `simd128` load, subtract, compare and `any_true` (the module is built
//! with `simd128`, see `.cargo/config.toml`; V8 and wasmtime run it). Only
//! a block with a hit is walked byte by byte.

/// Bytes tested at once.
#[cfg(target_arch = "wasm32")]
const BLOCK: usize = 16;
#[cfg(not(target_arch = "wasm32"))]
const BLOCK: usize = 32;

/// Whether `b` is in `lo..=hi`, as one subtraction and compare (wraps
/// below `lo`).
#[inline(always)]
fn in_range(b: u8, lo: u8, hi: u8) -> bool {
    b.wrapping_sub(lo) <= hi.wrapping_sub(lo)
}

/// Whether `b` ends a run of plain JSON string content: a quote, a
/// backslash or a control character.
#[inline(always)]
fn is_string_stop(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// The first index `>= from` whose byte satisfies `byte`. `block` gives
/// a BLOCK-byte slice's hits as a bit mask (bit `i` for byte `i`), so the
/// first hit is its lowest set bit: no byte walk where prose has a capital
/// or a digit every few dozen bytes. Only the tail shorter than a block is
/// walked.
#[inline(always)]
fn find_first(bytes: &[u8], from: usize, block: impl Fn(&[u8]) -> u32, byte: impl Fn(u8) -> bool) -> Option<usize> {
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + BLOCK) {
        let hits = block(chunk);
        if hits != 0 {
            return Some(i + hits.trailing_zeros() as usize);
        }
        i += BLOCK;
    }
    bytes.get(i..)?.iter().position(|&b| byte(b)).map(|p| i + p)
}

/// The native block test: a branch-free fold of the byte test, which LLVM
/// vectorises, then a walk of a block that has a hit for its first one.
/// (Folding into a bit mask instead was not vectorised: 12% more
/// instructions on the `mixed` corpus.)
#[cfg(not(target_arch = "wasm32"))]
#[inline(always)]
fn fold(byte: impl Fn(u8) -> bool + Copy) -> impl Fn(&[u8]) -> u32 {
    move |block| {
        if block.iter().fold(false, |seen, &b| seen | byte(b)) {
            block.iter().position(|&b| byte(b)).map_or(0, |p| 1 << p)
        } else {
            0
        }
    }
}

/// The first 16 bytes of `block` as a vector, built from two 8-byte halves
/// (LLVM fuses them into one `v128.load`; no `unsafe` pointer load).
#[cfg(target_arch = "wasm32")]
#[inline(always)]
fn load(block: &[u8]) -> core::arch::wasm32::v128 {
    let half = |from: usize| {
        let word: [u8; 8] = block.get(from..from + 8).and_then(|w| w.try_into().ok()).unwrap_or([0; 8]);
        i64::from_le_bytes(word)
    };
    core::arch::wasm32::i64x2(half(0), half(8))
}

/// The first index `>= from` whose byte is in `lo..=hi` (`lo <= hi`).
pub(crate) fn find_in_range(bytes: &[u8], from: usize, lo: u8, hi: u8) -> Option<usize> {
    let byte = move |b: u8| in_range(b, lo, hi);
    #[cfg(not(target_arch = "wasm32"))]
    let block = fold(byte);
    #[cfg(target_arch = "wasm32")]
    let block = |block: &[u8]| {
        use core::arch::wasm32::{u8x16_bitmask, u8x16_le, u8x16_splat, u8x16_sub};
        u32::from(u8x16_bitmask(u8x16_le(u8x16_sub(load(block), u8x16_splat(lo)), u8x16_splat(hi.wrapping_sub(lo)))))
    };
    find_first(bytes, from, block, byte)
}

/// The first index `>= from` of a quote, backslash or control character:
/// where plain JSON string content stops.
pub(crate) fn find_string_stop(bytes: &[u8], from: usize) -> Option<usize> {
    #[cfg(not(target_arch = "wasm32"))]
    let block = fold(is_string_stop);
    #[cfg(target_arch = "wasm32")]
    let block = |block: &[u8]| {
        use core::arch::wasm32::{u8x16_bitmask, u8x16_eq, u8x16_lt, u8x16_splat, v128_or};
        let v = load(block);
        let quote = u8x16_eq(v, u8x16_splat(b'"'));
        let backslash = u8x16_eq(v, u8x16_splat(b'\\'));
        let control = u8x16_lt(v, u8x16_splat(0x20));
        u32::from(u8x16_bitmask(v128_or(v128_or(quote, backslash), control)))
    };
    find_first(bytes, from, block, is_string_stop)
}

/// The first non-ASCII byte at or after `from`.
pub(crate) fn find_non_ascii(bytes: &[u8], from: usize) -> Option<usize> {
    find_in_range(bytes, from, 0x80, 0xFF)
}

/// The next ASCII digit at or after `from`.
pub(crate) fn find_digit(bytes: &[u8], from: usize) -> Option<usize> {
    find_in_range(bytes, from, b'0', b'9')
}

/// The next ASCII capital letter at or after `from`.
pub(crate) fn find_upper(bytes: &[u8], from: usize) -> Option<usize> {
    find_in_range(bytes, from, b'A', b'Z')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_a_byte_loop_on_every_byte_value_and_offset() {
        let mut bytes: Vec<u8> = (0..=255u8).collect();
        bytes.extend((0..=255u8).rev());
        for (lo, hi) in [(b'0', b'9'), (b'A', b'Z'), (1, 127), (b'a', b'a'), (0, 0x1F), (0x80, 0xFF), (0, 0xFF)] {
            for from in 0..=bytes.len() {
                let want = bytes.iter().skip(from).position(|b| (lo..=hi).contains(b)).map(|p| p + from);
                assert_eq!(find_in_range(&bytes, from, lo, hi), want, "{lo}..={hi} from {from}");
            }
        }
        // Every single byte value in every lane of a word.
        for b in 0..=255u8 {
            for lane in 0..8 {
                let mut w = [b' '; 8];
                w[lane] = b;
                let want = b.is_ascii_digit().then_some(lane);
                assert_eq!(find_digit(&w, 0), want, "{b} in lane {lane}");
            }
        }
        assert_eq!(find_upper(b"abc def Ghi", 0), Some(8));
        // Hits on either side of a block boundary, and none at all.
        for at in [0, 1, 30, 31, 32, 33, 63, 64, 65, 95, 100] {
            let mut text = vec![b'x'; 101];
            if let Some(b) = text.get_mut(at) {
                *b = b'7';
            }
            for from in [0, 1, at.saturating_sub(1), at, at + 1] {
                let want = (from <= at).then_some(at);
                assert_eq!(find_digit(&text, from), want, "digit at {at} from {from}");
            }
        }
        assert_eq!(find_digit(&[b'x'; 200], 3), None);
        assert_eq!(find_non_ascii("ab“c".as_bytes(), 0), Some(2));
        // String stops, against a byte loop, at every offset of two blocks
        // and a tail.
        let mut text: Vec<u8> = (0..=255u8).cycle().take(600).collect();
        text.retain(|&b| !is_string_stop(b));
        for stop in [b'"', b'\\', b'\n', 0x00, 0x1F] {
            for at in [0, 1, 15, 16, 31, 32, 33, 64, 70] {
                let mut t = text.clone();
                if let Some(b) = t.get_mut(at) {
                    *b = stop;
                }
                for from in [0, at.saturating_sub(1), at, at + 1] {
                    let want = t.iter().skip(from).position(|&b| is_string_stop(b)).map(|p| p + from);
                    assert_eq!(find_string_stop(&t, from), want, "{stop} at {at} from {from}");
                }
            }
        }
        assert_eq!(find_digit(b"", 0), None);
        assert_eq!(find_digit(b"12", 5), None);
    }
}
