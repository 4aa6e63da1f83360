//! Finding the next byte of a range a block at a time. The digit and
//! capital-letter passes, the non-ASCII check before normalisation and the
//! JSON string check skip prose with it; a byte-at-a-time `position`
//! cannot be vectorised because it stops early, and it was most of those
//! passes' cost.
//!
//! Natively each block is tested with a branch-free fold, which LLVM turns
//! into SSE2/AVX2 compares. Inside the `.wasm` LLVM unrolls the same fold
//! into scalar code instead, so there a 16-byte block is one `simd128`
//! load, compare and bit mask (the module is built with `simd128`, see
//! `.cargo/config.toml`; V8 and wasmtime run it). Where the byte is rare
//! (digits, `@`, quotes in long strings, non-ASCII) four blocks are tested
//! with one branch before any block's hits are looked at.

/// Bytes tested at once.
#[cfg(target_arch = "wasm32")]
const BLOCK: usize = 16;
#[cfg(not(target_arch = "wasm32"))]
const BLOCK: usize = 32;
/// Bytes skipped with one test while none has a hit: four blocks in the
/// `.wasm`. Natively a block is already 32 bytes of AVX2 and the skip cost
/// more than it saved on the `mixed` corpus (callgrind: 44.1M -> 45.2M
/// instructions), so there is none.
#[cfg(target_arch = "wasm32")]
const SKIP: Option<usize> = Some(4 * BLOCK);
#[cfg(not(target_arch = "wasm32"))]
const SKIP: Option<usize> = None;

/// Whether `b` is in `lo..=hi`, as one subtraction and compare (wraps
/// below `lo`).
#[inline(always)]
fn in_range(b: u8, lo: u8, hi: u8) -> bool {
    b.wrapping_sub(lo) <= hi.wrapping_sub(lo)
}

/// Whether `b` ends a run of plain JSON string content: a quote, a
/// backslash or a control character. Non-short-circuit `|`: with `||`
/// LLVM kept a branch per byte and did not vectorise the native fold
/// (11 instructions a byte of a 16 KiB chat request's JSON walk).
#[inline(always)]
fn is_string_stop(b: u8) -> bool {
    (b == b'"') | (b == b'\\') | (b < 0x20)
}

/// How one search tests bytes in bulk.
trait Search {
    /// Whether a slice of [`SKIP`] bytes has a hit at all.
    fn any(&self, chunk: &[u8]) -> bool;
    /// A [`BLOCK`]-byte slice's hits as a bit mask (bit `i` for byte `i`),
    /// so the first hit is its lowest set bit.
    fn block(&self, block: &[u8]) -> u32;
    /// The test of one byte, for the tail shorter than a block.
    fn byte(&self, b: u8) -> bool;
}

/// The first index `>= from` whose byte the search hits, skipping `skip`
/// bytes a test while there is none. No skip where hits are dense
/// (capitals in prose): the skip test would mostly be followed by the
/// block tests anyway.
#[inline(always)]
fn find_first(bytes: &[u8], from: usize, skip: Option<usize>, search: impl Search) -> Option<usize> {
    let mut i = from;
    if let Some(step) = skip {
        while let Some(chunk) = bytes.get(i..i + step) {
            if search.any(chunk) {
                break;
            }
            i += step;
        }
    }
    while let Some(chunk) = bytes.get(i..i + BLOCK) {
        let hits = search.block(chunk);
        if hits != 0 {
            return Some(i + hits.trailing_zeros() as usize);
        }
        i += BLOCK;
    }
    bytes.get(i..)?.iter().position(|&b| search.byte(b)).map(|p| i + p)
}

/// The native search for a byte test: branch-free folds, which LLVM
/// vectorises, and a walk of a block that has a hit for its first one.
/// (Folding into a bit mask instead was not vectorised: 12% more
/// instructions on the `mixed` corpus.) Where hits are dense (capitals in
/// prose), each half of a block is tested before it is walked: the person
/// pass's search 2.26M -> 1.80M instructions; for sparse bytes (digits,
/// non-ASCII) the extra test cost more than the shorter walk saved.
#[cfg(not(target_arch = "wasm32"))]
struct Native<F> {
    test: F,
    halves: bool,
}

#[cfg(not(target_arch = "wasm32"))]
impl<F: Fn(u8) -> bool> Search for Native<F> {
    #[inline(always)]
    fn any(&self, chunk: &[u8]) -> bool {
        chunk.iter().fold(false, |seen, &b| seen | (self.test)(b))
    }

    #[inline(always)]
    fn block(&self, block: &[u8]) -> u32 {
        let size = if self.halves { BLOCK / 2 } else { BLOCK };
        let mut offset = 0;
        for part in block.chunks(size) {
            if self.any(part) {
                return part.iter().position(|&b| (self.test)(b)).map_or(0, |p| 1 << (offset + p));
            }
            offset += part.len();
        }
        0
    }

    #[inline(always)]
    fn byte(&self, b: u8) -> bool {
        (self.test)(b)
    }
}

/// The `simd128` search: `lanes` sets the lanes that hit, `byte` is the
/// same test on one byte. Four blocks are or-ed into one `any_true`; a
/// block's hits are one `bitmask`.
#[cfg(target_arch = "wasm32")]
struct Simd<L, F> {
    lanes: L,
    byte: F,
}

#[cfg(target_arch = "wasm32")]
impl<L, F> Search for Simd<L, F>
where
    L: Fn(core::arch::wasm32::v128) -> core::arch::wasm32::v128,
    F: Fn(u8) -> bool,
{
    #[inline(always)]
    fn any(&self, chunk: &[u8]) -> bool {
        use core::arch::wasm32::{v128_any_true, v128_or};
        let at = |k: usize| (self.lanes)(load(chunk.get(k * BLOCK..).unwrap_or_default()));
        v128_any_true(v128_or(v128_or(at(0), at(1)), v128_or(at(2), at(3))))
    }

    #[inline(always)]
    fn block(&self, block: &[u8]) -> u32 {
        u32::from(core::arch::wasm32::u8x16_bitmask((self.lanes)(load(block))))
    }

    #[inline(always)]
    fn byte(&self, b: u8) -> bool {
        (self.byte)(b)
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
    find_range(bytes, from, lo, hi, SKIP, false)
}

/// `halves`: natively, test each half of a block before walking it (see
/// [`Native`]); the `.wasm` finds a block's first hit with a bit mask.
#[inline(always)]
fn find_range(bytes: &[u8], from: usize, lo: u8, hi: u8, skip: Option<usize>, halves: bool) -> Option<usize> {
    let byte = move |b: u8| in_range(b, lo, hi);
    #[cfg(not(target_arch = "wasm32"))]
    let search = Native { test: byte, halves };
    #[cfg(target_arch = "wasm32")]
    let _ = halves;
    #[cfg(target_arch = "wasm32")]
    let search = Simd {
        lanes: move |v| {
            use core::arch::wasm32::{u8x16_le, u8x16_splat, u8x16_sub};
            u8x16_le(u8x16_sub(v, u8x16_splat(lo)), u8x16_splat(hi.wrapping_sub(lo)))
        },
        byte,
    };
    find_first(bytes, from, skip, search)
}

/// The first index `>= from` of a quote, backslash or control character:
/// where plain JSON string content stops.
pub(crate) fn find_string_stop(bytes: &[u8], from: usize) -> Option<usize> {
    #[cfg(not(target_arch = "wasm32"))]
    let search = Native { test: is_string_stop, halves: false };
    #[cfg(target_arch = "wasm32")]
    let search = Simd {
        lanes: |v| {
            use core::arch::wasm32::{u8x16_eq, u8x16_lt, u8x16_splat, v128_or};
            let quote = u8x16_eq(v, u8x16_splat(b'"'));
            let backslash = u8x16_eq(v, u8x16_splat(b'\\'));
            let control = u8x16_lt(v, u8x16_splat(0x20));
            v128_or(v128_or(quote, backslash), control)
        },
        byte: is_string_stop,
    };
    // One block before any skipping: most JSON strings (keys, roles, ids)
    // end within it, and the four-block test would be wasted on them.
    match bytes.get(from..from + BLOCK).map(|block| search.block(block)) {
        Some(0) => find_first(bytes, from + BLOCK, SKIP, search),
        Some(hits) => Some(from + hits.trailing_zeros() as usize),
        None => find_first(bytes, from, SKIP, search),
    }
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
    find_range(bytes, from, b'A', b'Z', None, true)
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
        // Hits in every block of a four-block skip and across skips, with
        // the skip of either build and with none.
        for at in [0, 1, 30, 31, 32, 33, 63, 64, 65, 95, 100, 127, 128, 129, 191, 255, 256, 257, 299, 300] {
            let mut text = vec![b'x'; 301];
            if let Some(b) = text.get_mut(at) {
                *b = b'7';
            }
            for from in [0, 1, at.saturating_sub(1), at, at + 1] {
                let want = (from <= at).then_some(at);
                assert_eq!(find_digit(&text, from), want, "digit at {at} from {from}");
                for (skip, halves) in
                    [None, Some(64), Some(4 * BLOCK)].into_iter().flat_map(|s| [(s, false), (s, true)])
                {
                    let found = find_range(&text, from, b'0', b'9', skip, halves);
                    assert_eq!(found, want, "digit at {at} from {from}, {skip:?}, halves {halves}");
                }
            }
        }
        assert_eq!(find_digit(&[b'x'; 200], 3), None);
        assert_eq!(find_non_ascii("ab“c".as_bytes(), 0), Some(2));
        // String stops, against a byte loop, at every offset of two blocks
        // and a tail.
        let mut text: Vec<u8> = (0..=255u8).cycle().take(600).collect();
        text.retain(|&b| !is_string_stop(b));
        for stop in [b'"', b'\\', b'\n', 0x00, 0x1F] {
            for at in [0, 1, 15, 16, 31, 32, 33, 64, 70, 127, 128, 200, 255, 256, 300, 450] {
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
