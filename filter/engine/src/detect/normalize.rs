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
//! Text with nothing to fold (the common case: ASCII, and also text with
//! curly quotes, em dashes or other letters) is found by one pass over its
//! non-ASCII characters and borrowed as is: no copy, no map. Text that
//! folds is copied once, and the way back is a sparse list of the folded
//! characters (one entry per fold, not per byte: a per-byte map cost 8
//! bytes per byte and was the most expensive step of a scan).

use std::borrow::Cow;

use super::bytescan::find_non_ascii;

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

/// The byte offset of the first character of `text` that [`fold_char`]
/// changes. Skips ASCII a block at a time ([`find_non_ascii`]) and decodes
/// only non-ASCII characters, so text with curly quotes and em dashes
/// (which stay) costs one fast pass.
fn first_fold(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(next) = find_non_ascii(bytes, i) {
        // A non-ASCII byte found from a character boundary starts a character.
        let c = text.get(next..).and_then(|rest| rest.chars().next())?;
        if fold_char(c).is_some() {
            return Some(next);
        }
        i = next + c.len_utf8();
    }
    None
}

/// One folded character: where its output (one byte, or none) sits in the
/// normalised text and where the character sits in the original.
/// Twelve bytes (offsets fit `u32`: longer texts are not folded), as
/// text made only of folded characters has one per character.
#[derive(Debug, Clone, Copy)]
struct Fold {
    norm: u32,
    orig: u32,
    orig_len: u8,
    /// 1 when replaced by one ASCII byte, 0 when dropped.
    produced: u8,
}

impl Fold {
    fn norm(&self) -> usize {
        self.norm as usize
    }

    fn orig(&self) -> usize {
        self.orig as usize
    }

    /// Original minus normalised offset for the bytes copied after it.
    fn shift_after(&self) -> usize {
        (self.orig() + usize::from(self.orig_len)) - (self.norm() + usize::from(self.produced))
    }
}

/// Text as the detectors see it, with the way back to the original.
pub(crate) struct Normalized<'t> {
    text: Cow<'t, str>,
    /// Every folded character, in text order. Empty when borrowed.
    folds: Vec<Fold>,
    original_len: usize,
}

impl<'t> Normalized<'t> {
    pub(crate) fn new(original: &'t str) -> Normalized<'t> {
        let original_len = original.len();
        let borrowed = || Normalized { text: Cow::Borrowed(original), folds: Vec::new(), original_len };
        if u32::try_from(original_len).is_err() {
            return borrowed();
        }
        let Some(first) = first_fold(original) else {
            return borrowed();
        };
        let (head, tail) = original.split_at_checked(first).unwrap_or((original, ""));
        // Bytes, not a `String`: pushing one ASCII byte is cheaper than
        // encoding a `char`, and the result is checked once at the end.
        let mut text: Vec<u8> = Vec::with_capacity(original.len());
        text.extend_from_slice(head.as_bytes());
        let mut folds = Vec::new();
        // Copied runs go in whole; only folded characters are looked at.
        let mut run_start = first;
        for (off, c) in tail.char_indices() {
            let pos = first + off;
            let Some(to) = (if c.is_ascii() { None } else { fold_char(c) }) else { continue };
            if run_start < pos {
                text.extend_from_slice(original.as_bytes().get(run_start..pos).unwrap_or_default());
            }
            let produced: u8 = match to {
                Some(b) => {
                    text.push(b);
                    1
                }
                None => 0,
            };
            let norm = text.len() - usize::from(produced);
            // Both below `original_len`, which fits `u32` (checked above).
            folds.push(Fold {
                norm: u32::try_from(norm).unwrap_or(u32::MAX),
                orig: u32::try_from(pos).unwrap_or(u32::MAX),
                orig_len: u8::try_from(c.len_utf8()).unwrap_or(4),
                produced,
            });
            run_start = pos + c.len_utf8();
        }
        text.extend_from_slice(original.as_bytes().get(run_start..).unwrap_or_default());
        // Whole characters and ASCII bytes only, so always UTF-8; were it
        // not, detecting on the original beats failing.
        match String::from_utf8(text) {
            Ok(text) => Normalized { text: Cow::Owned(text), folds, original_len },
            Err(_) => borrowed(),
        }
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    pub(crate) fn is_identity(&self) -> bool {
        matches!(self.text, Cow::Borrowed(_))
    }

    /// The original byte span `(start, end)` of normalised byte `i`.
    fn byte_span(&self, i: usize) -> Option<(usize, usize)> {
        if i >= self.text.len() {
            return None;
        }
        // Folds wholly before byte `i`: dropped characters at `i` come
        // before it in the original, a replacement at `i` is byte `i`.
        let k = self.folds.partition_point(|f| f.norm() < i || (f.norm() == i && f.produced == 0));
        if let Some(f) = self.folds.get(k).filter(|f| f.norm() == i && f.produced == 1) {
            return Some((f.orig(), f.orig() + usize::from(f.orig_len)));
        }
        let shift = k.checked_sub(1).and_then(|j| self.folds.get(j)).map_or(0, Fold::shift_after);
        Some((i + shift, i + shift + 1))
    }

    /// The original byte span of the normalised span `start..end`.
    pub(crate) fn span(&self, start: usize, end: usize) -> (usize, usize) {
        if self.is_identity() {
            return (start, end);
        }
        let s = self.byte_span(start).map_or(self.original_len, |(s, _)| s);
        let e = match end.checked_sub(1).and_then(|i| self.byte_span(i)) {
            Some((_, e)) if end > start => e,
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

    /// The per-byte map the sparse fold list replaced, as the reference.
    fn reference(original: &str) -> (String, Vec<(usize, usize)>) {
        let (mut text, mut map) = (String::new(), Vec::new());
        for (pos, c) in original.char_indices() {
            match fold_char(c) {
                None => {
                    text.push(c);
                    map.extend((0..c.len_utf8()).map(|k| (pos + k, pos + k + 1)));
                }
                Some(Some(b)) => {
                    text.push(char::from(b));
                    map.push((pos, pos + c.len_utf8()));
                }
                Some(None) => {}
            }
        }
        (text, map)
    }

    #[test]
    fn sparse_spans_equal_the_per_byte_map() {
        let pieces = ["a", "4", " ", "é", "\u{00A0}", "\u{200B}", "１", "–", "—", "“", "\u{FEFF}", "ß", "😀", "@"];
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..300 {
            let mut original = String::new();
            for _ in 0..(seed % 24) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                original.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            let n = Normalized::new(&original);
            let (text, map) = reference(&original);
            assert_eq!(n.text(), text, "{original:?}");
            for start in 0..=text.len() {
                for end in start..=text.len() {
                    let want = if text == original {
                        (start, end)
                    } else {
                        let s = map.get(start).map_or(original.len(), |m| m.0);
                        let e = if end > start { map[end - 1].1 } else { s };
                        (s, e.max(s))
                    };
                    assert_eq!(n.span(start, end), want, "{original:?} {start}..{end}");
                }
            }
        }
    }

    #[test]
    fn the_first_fold_is_found_across_block_boundaries() {
        let naive = |t: &str| t.char_indices().find(|(_, c)| fold_char(*c).is_some()).map(|(i, _)| i);
        for pad in 0..80 {
            for (before, fold) in [("", "\u{200B}"), ("“", "１"), ("😀", "\u{00A0}"), ("é", ""), ("—", "–")] {
                let text = format!("{}{before}{}{fold}tail", "a".repeat(pad), "b".repeat(pad % 37));
                assert_eq!(first_fold(&text), naive(&text), "{text:?}");
            }
        }
    }

    #[test]
    fn curly_quotes_alone_keep_the_text_borrowed() {
        assert!(Normalized::new("“quoted” – text").text().contains('“'));
    }
}
