//! Finding the next byte of an ASCII range eight bytes at a time (SWAR:
//! one `u64` holds eight bytes). The digit and capital-letter passes skip
//! prose with it; a byte-at-a-time `position` cannot be vectorised because
//! it stops early, and it was most of those passes' cost. Plain integer
//! code, so it is as fast inside the `.wasm` as natively.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// A high bit set in each byte of `word` that lies in `lo..=hi` (both ASCII,
/// `lo >= 1`); exact per byte, and bytes >= 0x80 never match.
#[inline]
fn in_range(word: u64, lo: u8, hi: u8) -> u64 {
    let low7 = word & !HIGHS;
    // Per byte: (127 + hi + 1 - b) keeps its high bit iff b <= hi, and
    // (b + 127 - (lo - 1)) sets it iff b >= lo; no carry crosses bytes as
    // every byte's operands stay below 0x80 + 0x80.
    let le_hi = ONES * (127 + u64::from(hi) + 1) - low7;
    let ge_lo = low7 + ONES * (127 - (u64::from(lo) - 1));
    le_hi & ge_lo & !word & HIGHS
}

/// The first index `>= from` whose byte is in `lo..=hi` (ASCII, `lo >= 1`).
pub(crate) fn find_in_range(bytes: &[u8], from: usize, lo: u8, hi: u8) -> Option<usize> {
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let hits = in_range(word, lo, hi);
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    bytes.get(i..)?.iter().position(|b| (lo..=hi).contains(b)).map(|p| i + p)
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
        for (lo, hi) in [(b'0', b'9'), (b'A', b'Z'), (1, 127), (b'a', b'a')] {
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
        assert_eq!(find_digit(b"", 0), None);
        assert_eq!(find_digit(b"12", 5), None);
    }
}
