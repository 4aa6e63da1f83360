//! UTF-8 validation of whole bodies.
//!
//! Every request and response body is checked once before it is parsed.
//! `simdutf8` checks 16 or 32 bytes a step (`simd128` in the `.wasm`,
//! AVX2 or SSE4.2 natively); the standard library's check, four bytes a
//! step in wasm32, was a tenth of a 16 KiB exchange. A body that fails is
//! checked again by the standard library for where it fails, which is
//! what problem responses report.

/// `bytes` as text, or the standard library's error for it.
pub fn str_from(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(_) => std::str::from_utf8(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn long_bodies_with_a_bad_byte_anywhere_are_refused_where_std_refuses() {
        // Longer than one SIMD step, with multi-byte characters, so the
        // vector path runs; a bad byte in every position of a block.
        let good = "é€😀 plain ASCII text, ".repeat(8);
        assert_eq!(str_from(good.as_bytes()), Ok(good.as_str()));
        for at in 0..good.len() {
            for bad in [0x80u8, 0xC0, 0xF5, 0xFF] {
                let mut bytes = good.clone().into_bytes();
                bytes[at] = bad;
                assert_eq!(
                    str_from(&bytes).map_err(|e| e.valid_up_to()),
                    std::str::from_utf8(&bytes).map_err(|e| e.valid_up_to()),
                    "byte {at} set to {bad:#x}"
                );
            }
        }
        // Cut inside a character: the last one is incomplete.
        let ends_in_emoji = format!("{good}😀");
        let cut = &ends_in_emoji.as_bytes()[..ends_in_emoji.len() - 1];
        assert_eq!(str_from(cut).map_err(|e| (e.valid_up_to(), e.error_len())), Err((good.len(), None)));
    }

    proptest! {
        #[test]
        fn agrees_with_std(bytes in proptest::collection::vec(
            proptest::sample::select(vec![b'a', b'"', 0x00, 0x7F, 0x80, 0xBF, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0xFF]), 0..200)) {
            prop_assert_eq!(str_from(&bytes), std::str::from_utf8(&bytes));
        }
    }
}
