//! Base64 written for the two jobs this guard has, instead of a general
//! codec: approval MACs (base64url without padding, strict) and attachments
//! (either alphabet, optional padding, line breaks tolerated), where we
//! validate every character in one pass but decode only a short prefix.

const URL_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The 6-bit value of a base64 character; `url_only` refuses `+` and `/`.
fn sextet(byte: u8, url_only: bool) -> Option<u8> {
    match byte {
        b'A'..=b'Z' => Some(byte - b'A'),
        b'a'..=b'z' => Some(byte - b'a' + 26),
        b'0'..=b'9' => Some(byte - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        b'+' if !url_only => Some(62),
        b'/' if !url_only => Some(63),
        _ => None,
    }
}

/// base64url without padding (RFC 4648 §5), as approval tokens carry it.
pub(crate) fn encode_url_nopad(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0);
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let group = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        for i in 0..=chunk.len() {
            let index = (group >> (18 - 6 * i)) & 0x3f;
            if let Some(&c) = URL_ALPHABET.get(index as usize) {
                out.push(char::from(c));
            }
        }
    }
    out
}

/// Strict base64url-without-padding decoding: every character from the URL
/// alphabet, no padding, and unused trailing bits zero, so each byte string
/// has exactly one accepted spelling (a token cannot be re-spelled).
pub(crate) fn decode_url_nopad(text: &str) -> Option<Vec<u8>> {
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    let mut bits: u32 = 0;
    let mut bit_count = 0u32;
    for &byte in text.as_bytes() {
        bits = (bits << 6) | u32::from(sextet(byte, true)?);
        bit_count += 6;
        if bit_count >= 8 {
            bit_count -= 8;
            out.push((bits >> bit_count) as u8);
            bits &= (1 << bit_count) - 1;
        }
    }
    (bits == 0).then_some(out)
}

/// What one validating pass over an attachment's base64 learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scanned {
    /// Exact number of bytes the text decodes to.
    pub decoded_len: u64,
}

fn is_line_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

/// Validates base64 in either alphabet (standard or URL-safe), with or
/// without padding, ignoring ASCII whitespace. Linear, no allocation; the
/// decoded length is exact, so a size limit needs no decoding.
pub(crate) fn scan(text: &str) -> Option<Scanned> {
    let mut data_chars: u64 = 0;
    let mut padding: u64 = 0;
    for &byte in text.as_bytes() {
        if is_line_space(byte) {
            continue;
        }
        if byte == b'=' {
            padding += 1;
            continue;
        }
        // Data after padding: padding is only allowed at the end.
        if padding > 0 || sextet(byte, false).is_none() {
            return None;
        }
        data_chars += 1;
    }
    let remainder = data_chars % 4;
    let padding_ok = match padding {
        0 => remainder != 1,
        1 => remainder == 3,
        2 => remainder == 2,
        _ => false,
    };
    if data_chars == 0 || !padding_ok {
        return None;
    }
    let tail = match remainder {
        2 => 1,
        3 => 2,
        _ => 0,
    };
    Some(Scanned { decoded_len: data_chars / 4 * 3 + tail })
}

/// Decodes at most `max_bytes` from the front of text that [`scan`]
/// accepted; whatever follows is never looked at again.
pub(crate) fn decode_prefix(text: &str, max_bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(max_bytes.min(text.len()));
    let mut bits: u32 = 0;
    let mut bit_count = 0u32;
    for &byte in text.as_bytes() {
        if out.len() >= max_bytes {
            break;
        }
        let Some(value) = sextet(byte, false) else {
            // Whitespace is skipped; padding ends the data.
            if byte == b'=' {
                break;
            }
            continue;
        };
        bits = (bits << 6) | u32::from(value);
        bit_count += 6;
        if bit_count >= 8 {
            bit_count -= 8;
            out.push((bits >> bit_count) as u8);
            bits &= (1 << bit_count) - 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_round_trip_for_every_length_remainder() {
        let samples: [&[u8]; 5] = [b"", b"f", b"fo", b"foo", b"\xfb\xff\xfe\x00"];
        let expected = ["", "Zg", "Zm8", "Zm9v", "-__-AA"];
        for (bytes, text) in samples.iter().zip(expected) {
            assert_eq!(encode_url_nopad(bytes), text);
            assert_eq!(decode_url_nopad(text).as_deref(), Some(*bytes));
        }
    }

    #[test]
    fn strict_url_decoding_refuses_other_spellings() {
        assert_eq!(decode_url_nopad("Zh"), None, "non-zero trailing bits");
        assert_eq!(decode_url_nopad("Zg=="), None, "padding");
        assert_eq!(decode_url_nopad("+/8"), None, "standard alphabet");
        assert_eq!(decode_url_nopad("Zm9vY"), None, "impossible length");
    }

    #[test]
    fn scan_reports_exact_decoded_length() {
        assert_eq!(scan("Zm9v"), Some(Scanned { decoded_len: 3 }));
        assert_eq!(scan("Zm8="), Some(Scanned { decoded_len: 2 }));
        assert_eq!(scan("Zm8"), Some(Scanned { decoded_len: 2 }));
        assert_eq!(scan("Zg=="), Some(Scanned { decoded_len: 1 }));
        assert_eq!(scan("Zm9v\r\nYmFy"), Some(Scanned { decoded_len: 6 }));
        assert_eq!(scan("+/+/"), Some(Scanned { decoded_len: 3 }));
    }

    #[test]
    fn scan_refuses_malformed_base64() {
        for bad in ["", "   ", "Z", "Zm9vY", "Zm=9", "Zg=", "Zm8==", "Zg===", "Zm9v!", "Zm9v\u{e9}"] {
            assert_eq!(scan(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn prefix_decoding_stops_early_and_skips_whitespace() {
        assert_eq!(decode_prefix("Zm9v\nYmFy", 4), b"foob");
        assert_eq!(decode_prefix("Zm8=", 10), b"fo");
        assert_eq!(decode_prefix("-_8", 10), vec![0xfb, 0xff]);
    }
}
