//! Protective markings written in the text.
//!
//! The level words are everyday English ("the secret to good bread", "a
//! protected branch", "Official results are out"), so a level word alone
//! never counts. It counts only when it *stands as a marking*:
//!
//! 1. **Labelled**: right after `SEC=` (the Australian e-mail and header
//!    forms `[SEC=PROTECTED, CAVEAT=SH:CABINET]`, `VER=2018.4, NS=gov.au,
//!    SEC=PROTECTED`) or after `Classification:` / `Marking:` (also
//!    `Security classification:`, `Protective marking:`). The label makes
//!    the intent explicit, so here the value may be in any case.
//!
//! Everywhere else the word must be in *marking case*: upper case, or (for a
//! custom ladder) exactly as the policy spells it. Then one of:
//!
//! 2. **Caveated**: directly followed by `//` (`PROTECTED//CABINET`,
//!    `TOP SECRET//…`), or (PSPF ladder) followed by a known caveat:
//!    CABINET, NATIONAL CABINET, AUSTEO, AGAO, `REL AUS/USA`.
//! 3. **Standalone**: alone on its line, apart from decoration (spaces,
//!    `*`, `#`, `-`, `=`, `_`, brackets, `|`, `>`), with or without caveats:
//!    a document banner, a Markdown heading, a quoted e-mail line; but not
//!    a list item (`- SECRET`), which is a word in a list.
//! 4. **Bracketed**: `[PROTECTED]`, `(OFFICIAL: Sensitive)`, as in subject
//!    lines and paragraph markings.
//!
//! Trailing punctuation disqualifies a standalone word (`TOP SECRET!!!`),
//! and so does any other word on the line (`TOP SECRET RECIPE`), because a
//! real banner carries nothing but the marking and its caveats. A colon is
//! not enough either (`SECRET: don't tell anyone` is prose).
//!
//! A few PSPF forms are distinctive on their own and count anywhere:
//! `OFFICIAL: Sensitive` / `OFFICIAL-SENSITIVE` (colon or hyphen, upper
//! case OFFICIAL), the legacy dissemination limiting markers `Sensitive:
//! Personal|Legal|Cabinet` (capitalised) and `DLM=…`, `FOUO`, `For Official
//! Use Only` (capital O), and `X-IN-CONFIDENCE`, all OFFICIAL:Sensitive.
//! Legacy `HIGHLY PROTECTED` reads as SECRET and `UNCLASSIFIED` as OFFICIAL
//! (same position rules as the levels). CONFIDENTIAL and RESTRICTED are
//! deliberately not mapped: commercial mail is full of them.
//!
//! Caveats make a marking unambiguous and appear in the rationale, but do
//! not change its level. Every check looks at a bounded window around the
//! anchor ([`WINDOW`] bytes), so a text costs one automaton pass plus a
//! constant per anchor hit.

/// How far (bytes) a position check looks for the ends of the line.
const WINDOW: usize = 256;
/// How many caveats after a marking are read at most.
const MAX_CAVEATS: usize = 8;

// Indices into the PSPF ladder; only used when the ladder is the PSPF one.
const OFFICIAL: usize = 1;
const SENSITIVE: usize = 2;
const PROTECTED: usize = 3;
const SECRET: usize = 4;
const TOP_SECRET: usize = 5;

/// What an automaton pattern anchors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Anchor {
    /// A level word: index into [`Markings::heads`].
    Head(usize),
    /// "Sensitive" of a legacy DLM.
    Sensitive,
    Fouo,
    ForOfficialUseOnly,
    /// `-IN-CONFIDENCE` of a legacy `X-IN-CONFIDENCE`.
    InConfidence,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeadKind {
    Plain,
    /// OFFICIAL, which may continue as OFFICIAL:Sensitive.
    Official,
    /// SECRET, which may be the end of TOP SECRET.
    Secret,
    /// PROTECTED, which may be the end of legacy HIGHLY PROTECTED.
    Protected,
}

#[derive(Debug, Clone)]
struct Head {
    /// As the policy (or the PSPF table) writes it.
    written: String,
    upper: String,
    level: usize,
    kind: HeadKind,
    /// Longer heads that contain this one: (head index, byte offset of this
    /// one inside it). A hit inside such a longer head is the longer head's.
    inside: Vec<(usize, usize)>,
}

/// A marking found in the text: its level and the span to name in the
/// rationale (label and caveats included, never the surrounding prose).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Found {
    pub level: usize,
    pub start: usize,
    pub end: usize,
}

/// The compiled marking recogniser.
#[derive(Debug, Clone)]
pub(super) struct Markings {
    /// The PSPF variant table applies (the ladder is the PSPF one).
    pspf: bool,
    heads: Vec<Head>,
}

impl Markings {
    /// The PSPF table; the ladder must be the PSPF one, in PSPF order.
    pub(super) fn pspf() -> Markings {
        let heads = [
            ("UNOFFICIAL", 0, HeadKind::Plain),
            ("OFFICIAL", OFFICIAL, HeadKind::Official),
            ("PROTECTED", PROTECTED, HeadKind::Protected),
            ("SECRET", SECRET, HeadKind::Secret),
            ("UNCLASSIFIED", OFFICIAL, HeadKind::Plain),
        ];
        let heads = heads
            .into_iter()
            .map(|(w, level, kind)| Head { written: w.into(), upper: w.into(), level, kind, inside: Vec::new() })
            .collect();
        Markings { pspf: true, heads }
    }

    /// A custom ladder: each level name is its own marking word.
    pub(super) fn levels(names: &[String]) -> Markings {
        let lower: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        let heads = names
            .iter()
            .enumerate()
            .map(|(level, name)| {
                let mut inside = Vec::new();
                let me = lower.get(level).map(String::as_str).unwrap_or_default();
                for (other, longer) in lower.iter().enumerate() {
                    if longer.len() > me.len() {
                        inside.extend(longer.match_indices(me).map(|(offset, _)| (other, offset)));
                    }
                }
                Head { written: name.clone(), upper: name.to_uppercase(), level, kind: HeadKind::Plain, inside }
            })
            .collect();
        Markings { pspf: false, heads }
    }

    /// The automaton patterns this recogniser needs (matched ASCII
    /// case-insensitively; case is checked per hit).
    pub(super) fn anchors(&self) -> Vec<(String, Anchor)> {
        let mut out: Vec<(String, Anchor)> =
            self.heads.iter().enumerate().map(|(i, h)| (h.written.to_ascii_lowercase(), Anchor::Head(i))).collect();
        if self.pspf {
            out.push(("sensitive".into(), Anchor::Sensitive));
            out.push(("fouo".into(), Anchor::Fouo));
            out.push(("for official use only".into(), Anchor::ForOfficialUseOnly));
            out.push(("for-official-use-only".into(), Anchor::ForOfficialUseOnly));
            out.push(("-in-confidence".into(), Anchor::InConfidence));
        }
        out
    }

    /// Whether the anchor hit at `start..end` is a marking.
    pub(super) fn check(&self, text: &str, start: usize, end: usize, anchor: Anchor) -> Option<Found> {
        let t = text.as_bytes();
        let sensitive = |ok: bool, start| ok.then_some(Found { level: SENSITIVE, start, end });
        match anchor {
            Anchor::Head(i) => self.check_head(text, start, end, i),
            Anchor::Sensitive => check_dlm(text, start, end),
            Anchor::Fouo => sensitive(t.get(start..end) == Some(b"FOUO") && bounded(text, start, end), start),
            // "For Official Use Only", "FOR OFFICIAL USE ONLY", not "for official use only".
            Anchor::ForOfficialUseOnly => sensitive(at(t, start + 4) == Some(b'O') && bounded(text, start, end), start),
            Anchor::InConfidence => {
                let mut k = start;
                while k > 0 && start - k < 24 && at(t, k - 1).is_some_and(|b| b.is_ascii_uppercase()) {
                    k -= 1;
                }
                let upper = t.get(start..end) == Some(b"-IN-CONFIDENCE");
                sensitive(upper && start - k >= 2 && !word_before(text, k) && !word_after(text, end), k)
            }
        }
    }

    fn check_head(&self, text: &str, s: usize, e: usize, index: usize) -> Option<Found> {
        let t = text.as_bytes();
        let head = self.heads.get(index)?;
        if !bounded(text, s, e) {
            return None;
        }
        for &(other, offset) in &head.inside {
            let Some(longer) = self.heads.get(other) else { continue };
            let from = s.checked_sub(offset);
            let within = from.and_then(|f| t.get(f..f + longer.written.len()));
            if within.is_some_and(|w| w.eq_ignore_ascii_case(longer.written.as_bytes())) {
                return None;
            }
        }
        let written = t.get(s..e)?;
        let marking_case = written == head.written.as_bytes() || written == head.upper.as_bytes();
        let (mut start, mut end, mut level, mut distinctive) = (s, e, head.level, false);
        match head.kind {
            HeadKind::Plain => {}
            HeadKind::Official => {
                if let Some((x, joined)) = sensitive_suffix(text, e) {
                    (end, level, distinctive) = (x, SENSITIVE, joined && marking_case);
                }
            }
            HeadKind::Secret => {
                if let Some(k) = word_before_head(text, s, b"TOP", marking_case) {
                    (start, level) = (k, TOP_SECRET);
                }
            }
            HeadKind::Protected => {
                if let Some(k) = word_before_head(text, s, b"HIGHLY", marking_case) {
                    (start, level) = (k, SECRET);
                }
            }
        }
        let label = label_before(text, start);
        if !marking_case && label.is_none() {
            return None;
        }
        let tail = self.tail(text, end);
        let stands = label.is_some()
            || distinctive
            || tail.slashes
            || tail.caveats > 0
            || (line_before_is_decoration(t, start) && line_after_is_decoration(t, tail.end))
            || bracketed(t, start, tail.end);
        stands.then(|| Found { level, start: label.unwrap_or(start), end: tail.end })
    }

    /// Caveats after a marking: `//CABINET//REL AUS/USA`, ` AUSTEO`,
    /// `, CAVEAT=SH:CABINET`.
    fn tail(&self, text: &str, end: usize) -> Tail {
        let t = text.as_bytes();
        let mut tail = Tail { end, caveats: 0, slashes: false };
        let mut i = end;
        for round in 0..MAX_CAVEATS {
            let (j, sep) = separator(t, i);
            if round == 0 && sep == Sep::Slashes {
                tail.slashes = true;
            }
            if sep == Sep::None {
                break;
            }
            let Some(k) = self.caveat_at(text, j, sep == Sep::Slashes) else { break };
            tail.caveats += 1;
            tail.end = k;
            i = k;
        }
        tail
    }

    /// The end of a caveat starting at `i`, if one does.
    fn caveat_at(&self, text: &str, i: usize, after_slashes: bool) -> Option<usize> {
        let t = text.as_bytes();
        for key in [&b"caveat="[..], b"access="] {
            if starts_with_ci(t, i, key) {
                let from = i + key.len();
                let mut k = from;
                while k - from < 64
                    && at(t, k)
                        .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'/' | b'-' | b'_' | b'.'))
                {
                    k += 1;
                }
                return (k > from).then_some(k);
            }
        }
        if self.pspf {
            for word in [&b"NATIONAL CABINET"[..], b"NATIONAL-CABINET", b"CABINET", b"AUSTEO", b"AGAO"] {
                if starts_with(t, i, word) && !word_after(text, i + word.len()) {
                    return Some(i + word.len());
                }
            }
            if let Some(k) = releasability(text, i) {
                return Some(k);
            }
            if after_slashes {
                // Information management markers: OFFICIAL: Sensitive//Legal-Privilege.
                for imm in [&b"legal privilege"[..], b"legislative secrecy", b"personal privacy"] {
                    if matches_spaced_ci(t, i, imm) && !word_after(text, i + imm.len()) {
                        return Some(i + imm.len());
                    }
                }
            }
        }
        if after_slashes {
            // A codeword: an upper-case word after `//`.
            let mut k = i;
            while k - i < 32
                && at(t, k).is_some_and(|b| b.is_ascii_uppercase() || (k > i && matches!(b, b'0'..=b'9' | b'-')))
            {
                k += 1;
            }
            if k - i >= 2 && !word_after(text, k) {
                return Some(k);
            }
        }
        None
    }
}

#[derive(Debug, Clone, Copy)]
struct Tail {
    end: usize,
    caveats: usize,
    slashes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sep {
    None,
    Space,
    Slashes,
    Punct,
}

/// The separator before a caveat at `i`: `//`, one of `/:,;-`, or spaces.
fn separator(t: &[u8], i: usize) -> (usize, Sep) {
    let a = skip_spaces(t, i, 2);
    if starts_with(t, a, b"//") {
        return (skip_spaces(t, a + 2, 2), Sep::Slashes);
    }
    if let Some(b'/' | b':' | b',' | b';' | b'-') = at(t, a) {
        return (skip_spaces(t, a + 1, 2), Sep::Punct);
    }
    if a > i {
        (a, Sep::Space)
    } else {
        (i, Sep::None)
    }
}

/// `REL AUS/USA`, `REL TO AUS, NZL`, `REL:AUS/GBR`.
fn releasability(text: &str, i: usize) -> Option<usize> {
    let t = text.as_bytes();
    if !starts_with(t, i, b"REL") {
        return None;
    }
    let mut k = i + 3;
    match at(t, k) {
        Some(b' ' | b':') => k += 1,
        _ => return None,
    }
    if starts_with(t, k, b"TO ") {
        k += 3;
    }
    let mut end = None;
    for _ in 0..16 {
        let code = k;
        while k - code < 4 && at(t, k).is_some_and(|b| b.is_ascii_uppercase()) {
            k += 1;
        }
        if k - code < 2 || word_after(text, k) {
            break;
        }
        end = Some(k);
        match at(t, k) {
            Some(b'/') => k += 1,
            Some(b',') => k = skip_spaces(t, k + 1, 1),
            _ => break,
        }
    }
    end
}

/// The legacy DLMs around a "Sensitive" hit: `Sensitive: Personal`,
/// `Sensitive:Legal`, `SENSITIVE: CABINET`, and anything after `DLM=`.
fn check_dlm(text: &str, s: usize, e: usize) -> Option<Found> {
    let t = text.as_bytes();
    if !bounded(text, s, e) {
        return None;
    }
    let labelled = {
        let k = s.checked_sub(4);
        k.filter(|&k| t.get(k..s).is_some_and(|w| w.eq_ignore_ascii_case(b"DLM=")) && !word_before(text, k))
    };
    let suffix = {
        let i = skip_spaces(t, e, 2);
        let j = skip_spaces(t, i + 1, 2);
        let mut end = None;
        if at(t, i) == Some(b':') {
            for word in ["Personal", "Legal", "Cabinet"] {
                let upper = word.to_ascii_uppercase();
                let w = t.get(j..j + word.len());
                if (w == Some(word.as_bytes()) || w == Some(upper.as_bytes())) && !word_after(text, j + word.len()) {
                    end = Some(j + word.len());
                }
            }
        }
        end
    };
    match (labelled, suffix) {
        (Some(k), _) => Some(Found { level: SENSITIVE, start: k, end: suffix.unwrap_or(e) }),
        (None, Some(end)) if at(t, s) == Some(b'S') => Some(Found { level: SENSITIVE, start: s, end }),
        _ => None,
    }
}

/// `:Sensitive`, `: Sensitive`, `-SENSITIVE`, ` SENSITIVE` after OFFICIAL:
/// the end, and whether it was joined by `:` or `-` (the distinctive forms).
fn sensitive_suffix(text: &str, e: usize) -> Option<(usize, bool)> {
    let t = text.as_bytes();
    let i = skip_spaces(t, e, 3);
    let (j, joined) = match at(t, i) {
        Some(b':' | b'-') => (skip_spaces(t, i + 1, 3), true),
        _ if i > e => (i, false),
        _ => return None,
    };
    let end = j + b"sensitive".len();
    (starts_with_ci(t, j, b"sensitive") && !word_after(text, end)).then_some((end, joined))
}

/// The start of `word` (TOP, HIGHLY) right before a head at `s`, joined by
/// spaces or a hyphen; upper case only when the head is in marking case.
fn word_before_head(text: &str, s: usize, word: &[u8], upper_only: bool) -> Option<usize> {
    let t = text.as_bytes();
    let j = match at(t, s.checked_sub(1)?)? {
        b'-' => s - 1,
        b' ' | b'\t' => skip_spaces_back(t, s, 3),
        _ => return None,
    };
    let k = j.checked_sub(word.len())?;
    let w = t.get(k..j)?;
    let same = if upper_only { w == word } else { w.eq_ignore_ascii_case(word) };
    (same && !word_before(text, k)).then_some(k)
}

/// The start of a `SEC=` / `Classification:` / `Marking:` label ending
/// right before `start`.
fn label_before(text: &str, start: usize) -> Option<usize> {
    let t = text.as_bytes();
    let i = skip_spaces_back(t, start, 3);
    let sep = at(t, i.checked_sub(1)?)?;
    if sep != b':' && sep != b'=' {
        return None;
    }
    let j = skip_spaces_back(t, i - 1, 3);
    for label in [&b"classification"[..], b"marking", b"sec"] {
        let Some(k) = j.checked_sub(label.len()) else { continue };
        let is_label = t.get(k..j).is_some_and(|w| w.eq_ignore_ascii_case(label)) && !word_before(text, k);
        if is_label && (label != b"sec" || sep == b'=') {
            return Some(k);
        }
    }
    None
}

fn is_decoration(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t'
            | b'\r'
            | b'*'
            | b'#'
            | b'-'
            | b'='
            | b'_'
            | b'['
            | b']'
            | b'('
            | b')'
            | b'{'
            | b'}'
            | b'|'
            | b'<'
            | b'>'
            | b'~'
    )
}

/// Whether everything from the start of the line to `i` is decoration, and
/// not a single list bullet: `- SECRET` is an item in a list of words,
/// `--- SECRET ---` and `**SECRET**` are banners.
fn line_before_is_decoration(t: &[u8], i: usize) -> bool {
    let mut k = i;
    let mut marks = 0;
    let mut bullet = false;
    loop {
        match k.checked_sub(1).and_then(|j| at(t, j)) {
            None | Some(b'\n') => break,
            Some(b) if is_decoration(b) && i - k < WINDOW => {
                if !matches!(b, b' ' | b'\t' | b'\r') {
                    marks += 1;
                    bullet = matches!(b, b'-' | b'*');
                }
                k -= 1;
            }
            _ => return false,
        }
    }
    !(marks == 1 && bullet)
}

/// Whether everything from `i` to the end of the line is decoration.
fn line_after_is_decoration(t: &[u8], i: usize) -> bool {
    let mut k = i;
    while k - i < WINDOW {
        match at(t, k) {
            None | Some(b'\n') => return true,
            Some(b) if is_decoration(b) => k += 1,
            _ => return false,
        }
    }
    false
}

/// `[PROTECTED]`, `( OFFICIAL: Sensitive )`.
fn bracketed(t: &[u8], start: usize, end: usize) -> bool {
    let before = skip_spaces_back(t, start, 2).checked_sub(1).and_then(|k| at(t, k));
    let after = at(t, skip_spaces(t, end, 2));
    matches!((before, after), (Some(b'['), Some(b']')) | (Some(b'('), Some(b')')))
}

fn at(t: &[u8], i: usize) -> Option<u8> {
    t.get(i).copied()
}

fn starts_with(t: &[u8], i: usize, word: &[u8]) -> bool {
    t.get(i..i + word.len()) == Some(word)
}

fn starts_with_ci(t: &[u8], i: usize, word: &[u8]) -> bool {
    t.get(i..i + word.len()).is_some_and(|w| w.eq_ignore_ascii_case(word))
}

/// Case-insensitive, with a space in `word` also matching a hyphen.
fn matches_spaced_ci(t: &[u8], i: usize, word: &[u8]) -> bool {
    t.get(i..i + word.len())
        .is_some_and(|w| w.iter().zip(word).all(|(&a, &b)| a.eq_ignore_ascii_case(&b) || (b == b' ' && a == b'-')))
}

fn skip_spaces(t: &[u8], mut i: usize, max: usize) -> usize {
    let from = i;
    while i - from < max && matches!(at(t, i), Some(b' ' | b'\t')) {
        i += 1;
    }
    i
}

fn skip_spaces_back(t: &[u8], mut i: usize, max: usize) -> usize {
    let from = i;
    while i > 0 && from - i < max && matches!(at(t, i - 1), Some(b' ' | b'\t')) {
        i -= 1;
    }
    i
}

pub(super) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

pub(super) fn word_before(text: &str, i: usize) -> bool {
    text.get(..i).and_then(|p| p.chars().next_back()).is_some_and(is_word_char)
}

pub(super) fn word_after(text: &str, i: usize) -> bool {
    text.get(i..).and_then(|p| p.chars().next()).is_some_and(is_word_char)
}

/// Word boundaries at both ends of `start..end`, where the span itself
/// begins or ends with a word character.
pub(super) fn bounded(text: &str, start: usize, end: usize) -> bool {
    let Some(span) = text.get(start..end) else { return false };
    let first_word = span.chars().next().is_some_and(is_word_char);
    let last_word = span.chars().next_back().is_some_and(is_word_char);
    (!first_word || !word_before(text, start)) && (!last_word || !word_after(text, end))
}
