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
/// vectorises, and, in a block that has a hit, a test of eight bytes at a
/// time in a `u64` ([`Native::word`]) for the first one. (Folding into a
/// bit mask instead was not vectorised: 12% more instructions on the
/// `mixed` corpus; walking the block a byte at a time cost about 40 more
/// instructions a hit; with the word test, testing each half of a block
/// first no longer pays, even for capitals, whose hits are dense.)
#[cfg(not(target_arch = "wasm32"))]
struct Native<F, W> {
    test: F,
    /// Per byte of a little-endian word, its top bit set if the byte hits;
    /// exact at least up to the first hit (bits above it may be wrong).
    word: W,
}

#[cfg(not(target_arch = "wasm32"))]
impl<F: Fn(u8) -> bool, W: Fn(u64) -> u64> Search for Native<F, W> {
    #[inline(always)]
    fn any(&self, chunk: &[u8]) -> bool {
        chunk.iter().fold(false, |seen, &b| seen | (self.test)(b))
    }

    #[inline(always)]
    fn block(&self, block: &[u8]) -> u32 {
        if !self.any(block) {
            return 0;
        }
        self.first(block).map_or(0, |p| 1 << p)
    }

    #[inline(always)]
    fn byte(&self, b: u8) -> bool {
        (self.test)(b)
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl<F: Fn(u8) -> bool, W: Fn(u64) -> u64> Native<F, W> {
    /// The index of the first hit in `part`, a word at a time.
    #[inline(always)]
    fn first(&self, part: &[u8]) -> Option<usize> {
        let (words, tail) = part.as_chunks::<8>();
        for (k, word) in words.iter().enumerate() {
            let hits = (self.word)(u64::from_le_bytes(*word));
            if hits != 0 {
                return Some(8 * k + (hits.trailing_zeros() / 8) as usize);
            }
        }
        tail.iter().position(|&b| (self.test)(b)).map(|p| 8 * words.len() + p)
    }
}

/// Every byte of a word set to `b`.
#[inline(always)]
const fn splat(b: u8) -> u64 {
    b as u64 * 0x0101_0101_0101_0101
}

/// [`in_range`] for the eight bytes of `word` at once: the top bit of each
/// byte in `lo..=hi` set, exactly. The sums below stay within each byte,
/// since their top bits are cleared first; a range that spans 0x7F/0x80
/// is tested a byte at a time (no search uses one).
#[inline(always)]
pub(crate) fn word_in_range(word: u64, lo: u8, hi: u8) -> u64 {
    const HIGH: u64 = splat(0x80);
    let (word, lo, hi) = match (lo < 0x80, hi < 0x80) {
        (true, true) => (word, lo, hi),
        // Flipping the top bits maps 0x80..=0xFF onto 0x00..=0x7F.
        (false, false) => (word ^ HIGH, lo ^ 0x80, hi ^ 0x80),
        _ => {
            return word
                .to_le_bytes()
                .iter()
                .enumerate()
                .fold(0, |hits, (k, &b)| hits | u64::from(in_range(b, lo, hi)) << (8 * k + 7));
        }
    };
    let low = word & !HIGH;
    let at_least_lo = low + splat(0x80 - lo);
    let above_hi = low + splat(0x7F - hi);
    at_least_lo & !above_hi & !word & HIGH
}

/// [`is_string_stop`] for the eight bytes of `word`: exact up to the first
/// stop. A zero byte of `word ^ splat(q)` is a `q`; `x - 0x01..` sets the
/// top bit of the first zero byte of `x` (a borrow only runs upwards, so
/// only bits above it can be wrong).
#[cfg(not(target_arch = "wasm32"))]
#[inline(always)]
fn word_string_stops(word: u64) -> u64 {
    let zero_bytes = |x: u64| x.wrapping_sub(splat(1)) & !x & splat(0x80);
    zero_bytes(word ^ splat(b'"')) | zero_bytes(word ^ splat(b'\\')) | word_in_range(word, 0, 0x1F)
}

/// The top bit of each byte of `word` that is not a name byte: not an
/// ASCII letter, not `'` and not part of a non-ASCII character. Exact in
/// every byte.
#[inline(always)]
pub(crate) fn word_not_name_bytes(word: u64) -> u64 {
    word_not_letters(word) & !word
}

/// The top bit of each byte of `word` that is neither an ASCII letter nor
/// `'`. Exact in every byte (`| 0x20` folds capitals onto small letters
/// and nothing else onto them).
#[inline(always)]
pub(crate) fn word_not_letters(word: u64) -> u64 {
    const HIGH: u64 = splat(0x80);
    let letters = word_in_range(word | splat(0x20), b'a', b'z');
    // A byte of `word ^ splat('\'')` is zero exactly when its low seven
    // bits add nothing to 0x7F and its top bit is clear.
    let quote = word ^ splat(b'\'');
    let apostrophes = !(((quote & !HIGH) + !HIGH) | quote) & HIGH;
    !(letters | apostrophes) & HIGH
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
/// Inlined, so each search below is compiled for its own constant range.
#[inline(always)]
pub(crate) fn find_in_range(bytes: &[u8], from: usize, lo: u8, hi: u8) -> Option<usize> {
    find_range(bytes, from, lo, hi, SKIP)
}

/// [`find_in_range`] with a chosen skip (see [`find_first`]).
#[inline(always)]
fn find_range(bytes: &[u8], from: usize, lo: u8, hi: u8, skip: Option<usize>) -> Option<usize> {
    let byte = move |b: u8| in_range(b, lo, hi);
    #[cfg(not(target_arch = "wasm32"))]
    let search = Native { test: byte, word: move |w| word_in_range(w, lo, hi) };
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
    let search = Native { test: is_string_stop, word: word_string_stops };
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

/// The bytes of a text that fall in one range, for the passes that visit
/// each of them (digits for cards and numbers, capitals for names).
///
/// Where it pays, they are marked up front, a bit per byte (bit `i % 64`
/// of word `i / 64` for byte `i`), so each pass steps from one to the
/// next with `trailing_zeros` instead of searching the text again. The
/// marks are built in one pass, 16 bytes per compare and `movemask`,
/// through `wide`: SSE2 natively and `simd128` in the `.wasm`, with no
/// `unsafe` of ours (written as a plain fold, LLVM did not vectorise the
/// bit mask). A word per 64 bytes: an eighth of the text's size.
///
/// Natively the marks paid even for one pass: the digit and capital
/// searches cost 4.2M of the 30M instructions of a scan of the `mixed`
/// corpus, the marks and their steps about 2M. In the `.wasm`, where the
/// search skips 64 bytes per test, marking for one pass cost more than
/// searching (the default policy's card pass: +11% operators on a
/// 256 KiB exchange), so there marks are built for two or more passes.
pub(crate) struct Marks<'t> {
    bytes: &'t [u8],
    lo: u8,
    hi: u8,
    words: Option<Vec<u64>>,
}

/// From how many passes over a range's bytes marking them pays.
#[cfg(not(target_arch = "wasm32"))]
const MARKS_PAY_FROM: usize = 1;
#[cfg(target_arch = "wasm32")]
const MARKS_PAY_FROM: usize = 2;

impl<'t> Marks<'t> {
    /// The bytes of `bytes` in `lo..=hi`, which `passes` passes will
    /// visit; marked up front where that pays.
    pub(crate) fn new(bytes: &'t [u8], lo: u8, hi: u8, passes: usize) -> Marks<'t> {
        Marks::with(bytes, lo, hi, passes >= MARKS_PAY_FROM)
    }

    /// Marks of bytes that are dense in text (capitals): marked up front on
    /// both targets when a pass will visit them, as searching for each of
    /// them cost more even in the `.wasm` (wasm operators a byte of the
    /// `mixed` corpus: 65.6 marked, 67.5 searched).
    pub(crate) fn dense(bytes: &'t [u8], lo: u8, hi: u8, passes: usize) -> Marks<'t> {
        Marks::with(bytes, lo, hi, passes > 0)
    }

    fn with(bytes: &'t [u8], lo: u8, hi: u8, marked: bool) -> Marks<'t> {
        Marks { bytes, lo, hi, words: marked.then(|| mark(bytes, lo, hi)) }
    }

    /// The first index `>= from` whose byte is in the range.
    #[inline]
    pub(crate) fn next(&self, from: usize) -> Option<usize> {
        let Some(words) = &self.words else {
            return self.search(from);
        };
        let mut chunk = from / 64;
        let mut word = words.get(chunk)? & (u64::MAX << (from % 64));
        while word == 0 {
            chunk += 1;
            word = *words.get(chunk)?;
        }
        Some(chunk * 64 + word.trailing_zeros() as usize)
    }

    /// The marks of the 64 bytes from `from` (bit `k` for byte
    /// `from + k`), when the bytes are marked.
    #[inline]
    pub(crate) fn window(&self, from: usize) -> Option<u64> {
        let words = self.words.as_ref()?;
        let (chunk, bit) = (from / 64, from % 64);
        let low = words.get(chunk)? >> bit;
        let high = words.get(chunk + 1).map_or(0, |w| w.checked_shl(64 - bit as u32).unwrap_or(0));
        Some(low | high)
    }

    /// [`Marks::next`] without marks. Natively out of line: inlined, the
    /// search made every pass's code bigger where it never runs (1M more
    /// instructions a scan of `mixed`).
    #[cfg_attr(not(target_arch = "wasm32"), inline(never))]
    #[cfg_attr(target_arch = "wasm32", inline(always))]
    fn search(&self, from: usize) -> Option<usize> {
        find_in_range(self.bytes, from, self.lo, self.hi)
    }
}

/// The marks of [`Marks`]: a bit per byte of `bytes` in `lo..=hi`.
fn mark(bytes: &[u8], lo: u8, hi: u8) -> Vec<u64> {
    use wide::u8x16;
    let (chunks, tail) = bytes.as_chunks::<64>();
    let base = u8x16::splat(lo);
    let width = u8x16::splat(hi.wrapping_sub(lo));
    // `in_range` per lane: `b - lo <= hi - lo`, unsigned.
    let block = |block: &[u8; 16]| {
        let offset = u8x16::from(*block) - base;
        u64::from(offset.min(width).cmp_eq(offset).move_mask() as u16)
    };
    let chunk = |chunk: &[u8; 64]| {
        let ([a, b, c, d], []) = chunk.as_chunks::<16>() else { return 0 };
        block(a) | block(b) << 16 | block(c) << 32 | block(d) << 48
    };
    let mut words: Vec<u64> = chunks.iter().map(chunk).collect();
    if !tail.is_empty() {
        words.push(tail.iter().enumerate().fold(0, |word, (k, &b)| word | u64::from(in_range(b, lo, hi)) << k));
    }
    words
}

/// The first non-ASCII byte at or after `from`.
pub(crate) fn find_non_ascii(bytes: &[u8], from: usize) -> Option<usize> {
    find_in_range(bytes, from, 0x80, 0xFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name-byte word test against a byte test, for every byte value
    /// in every lane, on both targets.
    #[test]
    fn name_byte_word_test_agrees_with_byte_test() {
        let is_name = |b: u8| b.is_ascii_alphabetic() || b == b'\'' || b >= 0x80;
        for fill in [0x00, b' ', b'\'', b'&', b'@', b'A', b'Z', b'[', b'`', b'a', b'z', b'{', 0x7F, 0x80, 0xFF] {
            for b in 0..=255u8 {
                for lane in 0..8 {
                    let mut bytes = [fill; 8];
                    bytes[lane] = b;
                    let want =
                        bytes.iter().enumerate().fold(0u64, |m, (k, &x)| m | u64::from(!is_name(x)) << (8 * k + 7));
                    assert_eq!(word_not_name_bytes(u64::from_le_bytes(bytes)), want, "{bytes:?}");
                    let is_letter = |x: u8| x.is_ascii_alphabetic() || x == b'\'';
                    let want =
                        bytes.iter().enumerate().fold(0u64, |m, (k, &x)| m | u64::from(!is_letter(x)) << (8 * k + 7));
                    assert_eq!(word_not_letters(u64::from_le_bytes(bytes)), want, "{bytes:?}");
                }
            }
        }
    }

    /// The word tests against the byte tests: every byte value in every
    /// lane, beside neighbours at the edges of the ranges and of 0x80.
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn word_tests_agree_with_byte_tests() {
        let ranges = [(b'0', b'9'), (b'A', b'Z'), (1, 127), (0, 0x1F), (0x80, 0xFF), (0, 0xFF), (0x90, 0xA0)];
        for fill in [0x00, 0x01, 0x1F, b'/', b':', b'@', b'[', 0x7F, 0x80, 0x8F, 0xA1, 0xFF] {
            for b in 0..=255u8 {
                for lane in 0..8 {
                    let mut bytes = [fill; 8];
                    bytes[lane] = b;
                    let word = u64::from_le_bytes(bytes);
                    for (lo, hi) in ranges {
                        let want = bytes
                            .iter()
                            .enumerate()
                            .fold(0u64, |m, (k, &x)| m | u64::from(in_range(x, lo, hi)) << (8 * k + 7));
                        assert_eq!(word_in_range(word, lo, hi), want, "{bytes:?} in {lo}..={hi}");
                    }
                    let first = bytes.iter().position(|&x| is_string_stop(x));
                    let stops = word_string_stops(word);
                    let got = (stops != 0).then(|| (stops.trailing_zeros() / 8) as usize);
                    assert_eq!(got, first, "string stop in {bytes:?}");
                }
            }
        }
    }

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
                assert_eq!(find_in_range(&w, 0, b'0', b'9'), want, "{b} in lane {lane}");
            }
        }
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
                assert_eq!(find_in_range(&text, from, b'0', b'9'), want, "digit at {at} from {from}");
                for skip in [None, Some(64), Some(4 * BLOCK)] {
                    let found = find_range(&text, from, b'0', b'9', skip);
                    assert_eq!(found, want, "digit at {at} from {from}, {skip:?}");
                }
            }
        }
        assert_eq!(find_in_range(&[b'x'; 200], 3, b'0', b'9'), None);
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
        assert_eq!(find_in_range(b"", 0, b'0', b'9'), None);
        assert_eq!(find_in_range(b"12", 5, b'0', b'9'), None);
    }

    /// A window of marks holds the next 64 bytes' marks from any offset,
    /// and none past the text; without marks there is none.
    #[test]
    fn mark_windows_agree_with_a_byte_loop() {
        let text: Vec<u8> = (0..300u32).map(|i| if (i * 7 + i / 5) % 3 == 0 { b'4' } else { b'-' }).collect();
        let marks = Marks::new(&text, b'0', b'9', 2);
        for from in 0..text.len() + 2 {
            let want = (0..64).fold(0u64, |w, k| w | u64::from(text.get(from + k) == Some(&b'4')) << k);
            assert_eq!(marks.window(from), Some(want), "from {from}");
        }
        assert_eq!(Marks::new(&text, b'0', b'9', 0).window(0), None);
    }

    /// Marks against a byte loop: every byte value in every lane of every
    /// 16-byte block of a chunk, texts that end inside and at the end of a
    /// chunk, and every starting point.
    #[test]
    fn marks_agree_with_a_byte_loop() {
        let ranges = [(b'0', b'9'), (b'A', b'Z'), (0, 0x1F), (0x80, 0xFF), (0, 0xFF), (b'a', b'a')];
        let next = |text: &[u8], from: usize, lo: u8, hi: u8| {
            text.iter().skip(from).position(|&b| (lo..=hi).contains(&b)).map(|p| p + from)
        };
        for b in 0..=255u8 {
            for lane in [0, 1, 15, 16, 31, 33, 47, 48, 63, 64, 70, 127, 128, 129] {
                for len in [lane + 1, 64, 128, 130] {
                    let mut text = vec![b' '; len.max(lane + 1)];
                    if let Some(x) = text.get_mut(lane) {
                        *x = b;
                    }
                    for (lo, hi, passes) in ranges.into_iter().flat_map(|(lo, hi)| [(lo, hi, 0), (lo, hi, 2)]) {
                        let marks = Marks::new(&text, lo, hi, passes);
                        for from in [0, lane.saturating_sub(1), lane, lane + 1, text.len(), text.len() + 64] {
                            assert_eq!(
                                marks.next(from),
                                next(&text, from, lo, hi),
                                "{b} at {lane} of {len}, from {from}, {passes} passes"
                            );
                        }
                    }
                }
            }
        }
        // Dense marks: every index is found from the one before.
        let text: Vec<u8> = (0..300).map(|i| if i % 3 == 0 { b'7' } else { b'x' }).collect();
        for passes in [0, 2] {
            let marks = Marks::new(&text, b'0', b'9', passes);
            for from in 0..=text.len() + 1 {
                assert_eq!(marks.next(from), next(&text, from, b'0', b'9'), "from {from}, {passes}");
            }
            assert_eq!(Marks::new(b"", b'0', b'9', passes).next(0), None);
        }
    }
}
