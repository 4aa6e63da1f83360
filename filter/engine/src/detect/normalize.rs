//! De-obfuscation before detection: full-width forms (U+FF01–U+FF5E) become
//! their ASCII twins, no-break and ideographic spaces become spaces, Unicode
//! hyphens and dashes become `-`, and zero-width characters (ZWSP, ZWNJ,
//! ZWJ, word joiner, BOM, soft hyphen) disappear — so `４１１１…` or
//! `4111\u{200B}1111…` cannot hide a card number.
//!
//! Detectors run on the normalised text; [`Normalized::span`] maps a finding
//! back to the exact byte span of the *original* text, so the splice replaces
//! the whole obfuscated value, zero-width characters included.
//!
//! Pure-ASCII text (the common case) is detected by two `memchr` passes and
//! borrowed as is: no copy, no map.

use std::borrow::Cow;

/// What one non-ASCII character becomes: `None` keeps it, `Some(None)`
/// drops it, `Some(Some(b))` replaces it by the ASCII byte `b`.
fn fold_char(c: char) -> Option<Option<u8>> {
    let cp = u32::from(c);
    match cp {
        0xFF01..=0xFF5E => u8::try_from(cp - 0xFF01 + 0x21).ok().map(Some),
        0x00A0 | 0x3000 | 0x2007 | 0x202F => Some(Some(b' ')),
        0x2010..=0x2013 | 0x2212 | 0xFE63 => Some(Some(b'-')),
        0x200B..=0x200D | 0x2060 | 0xFEFF | 0x00AD | 0x180E => Some(None),
        _ => None,
    }
}

/// Whether `text` may contain a character [`fold_char`] changes: every such
/// character's UTF-8 form starts with one of these lead bytes.
fn may_need_folding(bytes: &[u8]) -> bool {
    memchr::memchr3(0xC2, 0xE2, 0xEF, bytes).is_some() || memchr::memchr2(0xE3, 0xE1, bytes).is_some()
}

/// Text as the detectors see it, with the way back to the original.
pub(crate) struct Normalized<'t> {
    text: Cow<'t, str>,
    /// For each byte of the normalised text: the original byte span it came
    /// from (start, end). Empty when the text is borrowed unchanged.
    map: Vec<(u32, u32)>,
    original_len: usize,
}

impl<'t> Normalized<'t> {
    pub(crate) fn new(original: &'t str) -> Normalized<'t> {
        let original_len = original.len();
        if !may_need_folding(original.as_bytes()) || original_len > u32::MAX as usize {
            return Normalized { text: Cow::Borrowed(original), map: Vec::new(), original_len };
        }
        let mut text = String::with_capacity(original.len());
        let mut map = Vec::with_capacity(original.len());
        let mut changed = false;
        for (pos, c) in original.char_indices() {
            let (start, end) = (pos as u32, (pos + c.len_utf8()) as u32);
            match fold_char(c) {
                None => {
                    text.push(c);
                    for k in 0..c.len_utf8() as u32 {
                        map.push((start + k, start + k + 1));
                    }
                }
                Some(Some(b)) => {
                    changed = true;
                    text.push(char::from(b));
                    map.push((start, end));
                }
                Some(None) => changed = true,
            }
        }
        if !changed {
            return Normalized { text: Cow::Borrowed(original), map: Vec::new(), original_len };
        }
        Normalized { text: Cow::Owned(text), map, original_len }
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    pub(crate) fn is_identity(&self) -> bool {
        matches!(self.text, Cow::Borrowed(_))
    }

    /// The original byte span of the normalised span `start..end`.
    pub(crate) fn span(&self, start: usize, end: usize) -> (usize, usize) {
        if self.is_identity() {
            return (start, end);
        }
        let s = self.map.get(start).map_or(self.original_len, |&(s, _)| s as usize);
        let e = match end.checked_sub(1).and_then(|i| self.map.get(i)) {
            Some(&(_, e)) if end > start => e as usize,
            _ => s,
        };
        (s, e.max(s))
    }
}

/// The folded form of a value (for canonical placeholder input): the same
/// value written with full-width digits or zero-width characters gets the
/// same placeholder as the plain one.
pub fn fold(value: &str) -> Cow<'_, str> {
    if !may_need_folding(value.as_bytes()) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match fold_char(c) {
            None => out.push(c),
            Some(Some(b)) => out.push(char::from(b)),
            Some(None) => {}
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_is_borrowed() {
        let n = Normalized::new("plain 4111 text");
        assert!(n.is_identity());
        assert_eq!(n.span(6, 10), (6, 10));
    }

    #[test]
    fn full_width_and_zero_width_map_back_to_original_bytes() {
        let original = "card ４１\u{200B}11 end";
        let n = Normalized::new(original);
        assert_eq!(n.text(), "card 4111 end");
        let (s, e) = n.span(5, 9);
        assert_eq!(&original[s..e], "４１\u{200B}11");
        // Other non-ASCII text survives and maps byte for byte.
        let original = "é\u{00A0}x\u{FEFF}";
        let n = Normalized::new(original);
        assert_eq!(n.text(), "é x");
        let (s, e) = n.span(0, 4);
        assert_eq!(&original[s..e], "é\u{00A0}x");
    }

    #[test]
    fn fold_matches_normalisation() {
        assert_eq!(fold("４１1\u{200D}1"), "4111");
        assert_eq!(fold("jane＠example.com"), "jane@example.com");
        assert!(matches!(fold("abc"), Cow::Borrowed(_)));
    }

    #[test]
    fn curly_quotes_alone_keep_the_text_borrowed() {
        assert!(Normalized::new("“quoted” – text").text().contains('“'));
    }
}
