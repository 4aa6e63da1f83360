//! Classes found from context, all driven by keyword hits of the prefilter
//! pass: PERSON (titles, greetings, sign-offs, "my name is", and a given-name
//! lexicon followed by a surname), DATE_OF_BIRTH (a date after a birth cue),
//! PASSPORT (a document number after a passport cue), HEALTH (a condition
//! term with a clinical or personal cue nearby) and MINOR (an age under 18).
//!
//! These are heuristics with honest, measured accuracy (see the corpus
//! test), not validated formats; their confidences say so.

use super::bytescan::{word_not_letters, word_not_name_bytes, Marks};
use super::keywords::{Hit, Kw};
use super::lexicon::{CONDITIONS, FIRST_NAME_SET, MONTHS, NOT_NAME_SET, STREET_TYPE_SET};
use super::{at, is_word_byte, window_has, Ctx, EntityClass, Finding};

/// A person-name cue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cue {
    Title,
    Greeting,
    SignOff,
    /// "my name is", "name:", "call me", "named": any capitalised name.
    Intro,
    /// "I am", "this is": only a lexicon name.
    WeakIntro,
    /// "meeting with", "spoke to": a lexicon name or a full name.
    With,
}

/// An age phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AgeCue {
    /// The number comes before: "7 years old", "7-year-old".
    Before,
    /// The number comes after: "aged 7", "age: 7".
    After,
}

pub(crate) fn triggers() -> Vec<(&'static str, Kw)> {
    let mut t: Vec<(&'static str, Kw)> = Vec::new();
    t.extend(CONDITIONS.iter().map(|&w| (w, Kw::Condition)));
    for w in ["born", "birth", "date of birth", "dob", "d.o.b", "birthday", "birthdate", "born on"] {
        t.push((w, Kw::Birth));
    }
    t.push(("passport", Kw::Passport));
    for w in ["years old", "year old", "year-old", "years-old", "yrs old", "yr old", "y/o", "y.o."] {
        t.push((w, Kw::Age(AgeCue::Before)));
    }
    // "age" takes "age 13", "age: 13" and "age=13" (minor() skips the ": =").
    for w in ["aged", "age", "age of", "ages"] {
        t.push((w, Kw::Age(AgeCue::After)));
    }
    t
}

pub(crate) fn detect(cx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let e = cx.enabled;
    let bytes = cx.bytes;
    if e.has(EntityClass::Person) {
        persons(bytes, cx.capitals, out);
    }
    let mut last_birth_end = 0;
    for hit in cx.hits {
        let found = match hit.kw {
            Kw::Birth if e.has(EntityClass::DateOfBirth) && hit.start >= last_birth_end => {
                let f = date_of_birth(bytes, hit);
                if let Some(f) = &f {
                    last_birth_end = f.end;
                }
                f
            }
            Kw::Passport if e.has(EntityClass::Passport) => passport(bytes, hit),
            Kw::Condition if e.has(EntityClass::Health) => health(bytes, hit),
            Kw::Age(cue) if e.has(EntityClass::Minor) => minor(bytes, hit, cue),
            _ => None,
        };
        out.extend(found);
    }
}

fn is_name_byte(b: u8) -> bool {
    NAME_BYTES.get(usize::from(b)).copied().unwrap_or(false)
}

/// A table of `test` per byte value, built at compile time: the person
/// pass looks bytes up in these at every capital, where a table load is
/// cheaper than the comparisons.
macro_rules! byte_table {
    ($zero:expr, |$b:ident| $test:expr) => {{
        let mut table = [$zero; 256];
        let mut i = 0;
        while i < table.len() {
            let $b = i as u8;
            // `i` stays below the table's length.
            #[allow(clippy::indexing_slicing)]
            {
                table[i] = $test;
            }
            i += 1;
        }
        table
    }};
}

/// Per byte value, whether it continues a name word: letters, `'` and the
/// bytes of non-ASCII characters.
static NAME_BYTES: [bool; 256] = byte_table!(false, |b| b.is_ascii_alphabetic() || b >= 0x80 || b == b'\'');

/// Per byte value, whether a capital after it is inside a word rather
/// than at its start: a word byte or `'`.
static WORD_BYTES: [bool; 256] = byte_table!(false, |b| is_word_byte(b) || b == b'\'');

/// The first index in `from..limit` that is not a name byte, or `limit`:
/// eight bytes a step while they are in the text (a byte at a time took
/// 13 instructions a letter, a quarter of the person pass's own cost).
fn name_bytes_end(bytes: &[u8], from: usize, limit: usize) -> usize {
    let mut e = from;
    while e < limit {
        let Some(word) = bytes.get(e..e + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) else {
            while e < limit && is_name_byte(at(bytes, e)) {
                e += 1;
            }
            return e;
        };
        let stops = word_not_name_bytes(u64::from_le_bytes(word));
        if stops != 0 {
            return (e + (stops.trailing_zeros() / 8) as usize).min(limit);
        }
        e += 8;
    }
    limit
}

/// The end of the capitalised word at `p`, before any test of what the
/// word is; an initial ("J. ") ends after its dot.
#[inline(always)]
fn word_end(bytes: &[u8], p: usize) -> Option<usize> {
    if !at(bytes, p).is_ascii_uppercase() {
        return None;
    }
    let limit = p + 32;
    let mut e = p + 1;
    loop {
        e = name_bytes_end(bytes, e, limit);
        if e < limit && at(bytes, e) == b'-' && at(bytes, e + 1).is_ascii_uppercase() {
            e += 1;
            continue;
        }
        break;
    }
    if e == p + 1 {
        return (at(bytes, e) == b'.' && at(bytes, e + 1) == b' ').then_some(e + 1);
    }
    Some(e)
}

/// A capitalised name word at `p` ("Jane", "O'Brien", "Jean-Luc", "J."):
/// returns its end.
fn name_word(bytes: &[u8], p: usize) -> Option<usize> {
    let e = word_end(bytes, p)?;
    if at(bytes, e.wrapping_sub(1)) == b'.' {
        // An initial: "J."
        return Some(e);
    }
    // All capitals longer than 3 letters are shouting or acronyms, not names.
    let word = bytes.get(p..e)?;
    if word.len() > 3 && word.iter().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    if NOT_NAME_SET.contains(word) {
        return None;
    }
    if at(bytes, e).is_ascii_digit() || at(bytes, e) == b'_' {
        return None;
    }
    Some(e)
}

/// Up to three name words from `p`, separated by single spaces.
fn name_run(bytes: &[u8], p: usize) -> Option<(usize, usize, usize)> {
    let mut end = name_word(bytes, p)?;
    let mut words = 1;
    while words < 3 && at(bytes, end) == b' ' {
        let Some(e) = name_word(bytes, end + 1) else { break };
        let word = bytes.get(end + 1..e).unwrap_or_default();
        if STREET_TYPE_SET.contains(word) {
            break;
        }
        end = e;
        words += 1;
    }
    Some((p, end, words))
}

fn person(start: usize, end: usize, confidence: f32, rule: &'static str) -> Finding {
    Finding::new(EntityClass::Person, start, end, confidence, rule)
}

/// PERSON over capitalised words: a cue word before the name (title,
/// greeting, sign-off, "my name is", ...) or a given name from the lexicon.
/// Names are capitalised, so only capitalised word starts are examined —
/// one cheap byte pass, no keyword automaton needed.
fn persons(bytes: &[u8], capitals: &Marks<'_>, out: &mut Vec<Finding>) {
    let mut p = 0;
    let mut next_allowed = 0;
    while p < bytes.len() {
        let Some(next) = capitals.next(p) else { break };
        p = next;
        let word_start = p == 0 || !WORD_BYTES.get(usize::from(at(bytes, p - 1))).copied().unwrap_or(false);
        if !word_start || p < next_allowed {
            p += 1;
            continue;
        }
        if let Some(f) = person_at(bytes, p) {
            next_allowed = f.end;
            p = f.end;
            out.push(f);
        } else {
            p += 1;
        }
    }
}

/// What a cue word needs besides itself to count.
#[derive(Debug, Clone, Copy)]
enum Needs {
    Nothing,
    /// Titles are capitalised ("Mr", not "mr").
    Capitalised,
    /// A colon after it ("Name: Jane").
    Colon,
    /// One of these words before it ("name is", "spoke to").
    After(&'static [&'static str]),
}

/// Words that put a name after them, lower case, in the order they are
/// tried ("is" is an intro after "name", a weak one after "this").
const CUE_WORDS: &[(&str, Cue, Needs)] = &[
    ("mr", Cue::Title, Needs::Capitalised),
    ("mrs", Cue::Title, Needs::Capitalised),
    ("ms", Cue::Title, Needs::Capitalised),
    ("miss", Cue::Title, Needs::Capitalised),
    ("dr", Cue::Title, Needs::Capitalised),
    ("prof", Cue::Title, Needs::Capitalised),
    ("mx", Cue::Title, Needs::Capitalised),
    ("sir", Cue::Title, Needs::Capitalised),
    ("hi", Cue::Greeting, Needs::Nothing),
    ("hello", Cue::Greeting, Needs::Nothing),
    ("dear", Cue::Greeting, Needs::Nothing),
    ("hey", Cue::Greeting, Needs::Nothing),
    ("greetings", Cue::Greeting, Needs::Nothing),
    ("morning", Cue::Greeting, Needs::Nothing),
    ("afternoon", Cue::Greeting, Needs::Nothing),
    ("evening", Cue::Greeting, Needs::Nothing),
    ("regards", Cue::SignOff, Needs::Nothing),
    ("cheers", Cue::SignOff, Needs::Nothing),
    ("sincerely", Cue::SignOff, Needs::Nothing),
    ("thanks", Cue::SignOff, Needs::Nothing),
    ("wishes", Cue::SignOff, Needs::Nothing),
    ("truly", Cue::SignOff, Needs::Nothing),
    ("warmly", Cue::SignOff, Needs::Nothing),
    ("best", Cue::SignOff, Needs::Nothing),
    ("you", Cue::SignOff, Needs::After(&["thank"])),
    ("is", Cue::Intro, Needs::After(&["name"])),
    ("me", Cue::Intro, Needs::After(&["call"])),
    ("named", Cue::Intro, Needs::Nothing),
    ("signed", Cue::Intro, Needs::Nothing),
    ("name", Cue::Intro, Needs::Colon),
    ("patient", Cue::Intro, Needs::Colon),
    ("with", Cue::With, Needs::After(&["meeting", "met", "spoke"])),
    ("to", Cue::With, Needs::After(&["spoke", "speak", "talk"])),
    ("am", Cue::WeakIntro, Needs::After(&["i"])),
    ("i'm", Cue::WeakIntro, Needs::Nothing),
    ("meet", Cue::WeakIntro, Needs::Nothing),
    ("it's", Cue::WeakIntro, Needs::Nothing),
    ("is", Cue::WeakIntro, Needs::After(&["this"])),
];

/// A word of up to 16 letters as one number, lower-cased (`| 0x20`
/// lower-cases a letter and keeps `'`), so the cue table is searched with
/// integer compares.
const fn key(word: &[u8]) -> u128 {
    let mut buf = [0u8; 16];
    let mut rest = word;
    let mut out: &mut [u8] = &mut buf;
    while let ([b, tail @ ..], [slot, more @ ..]) = (rest, out) {
        *slot = *b | 0x20;
        rest = tail;
        out = more;
    }
    u128::from_le_bytes(buf)
}

/// How many letters (or `'`) end at `q`, at most [`CUE_REACH`]: the
/// eight bytes before `q` are tested at once, since this runs for every
/// capitalised word after a possible cue ending.
fn letters_before(bytes: &[u8], q: usize) -> usize {
    let is_letter = |b: &u8| b.is_ascii_alphabetic() || *b == b'\'';
    let by_bytes = |from: usize| {
        bytes
            .get(q.saturating_sub(CUE_REACH)..from)
            .unwrap_or_default()
            .iter()
            .rev()
            .take_while(|b| is_letter(b))
            .count()
    };
    let Some(word) = q.checked_sub(8).and_then(|w| bytes.get(w..q)).and_then(|w| <[u8; 8]>::try_from(w).ok()) else {
        return by_bytes(q);
    };
    // The last stop's top bit is the highest set bit.
    match word_not_letters(u64::from_le_bytes(word)) {
        0 => 8 + by_bytes(q - 8),
        stops => (stops.leading_zeros() / 8) as usize,
    }
}

/// The longest run of letters [`cue_word`] reads before a name.
const CUE_REACH: usize = 12;

/// [`key`] of the `len` bytes before `q`, from one 16-byte read where the
/// text has them.
fn key_before(bytes: &[u8], q: usize, len: usize) -> Option<u128> {
    let start = q.checked_sub(len)?;
    let block = q.checked_sub(16).and_then(|b| bytes.get(b..q)).and_then(|b| <[u8; 16]>::try_from(b).ok());
    let Some(block) = block.filter(|_| (1..=16).contains(&len)) else {
        return Some(key(bytes.get(start..q)?));
    };
    let word = u128::from_le_bytes(block) >> (8 * (16 - len));
    let mask = u128::MAX >> (8 * (16 - len));
    Some((word | u128::from_le_bytes([0x20; 16])) & mask)
}

/// [`CUE_WORDS`]' keys with their places in it, sorted (by key, then
/// place) for a binary search.
// Evaluated at compile time: an index out of range fails the build.
#[allow(clippy::indexing_slicing)]
const CUE_INDEX: [(u128, usize); CUE_WORDS.len()] = {
    let mut index = [(0u128, 0usize); CUE_WORDS.len()];
    let mut i = 0;
    while i < index.len() {
        index[i] = (key(CUE_WORDS[i].0.as_bytes()), i);
        // Insertion sort: the key goes before every greater one.
        let mut j = i;
        while j > 0 && index[j - 1].0 > index[j].0 {
            let swap = index[j - 1];
            index[j - 1] = index[j];
            index[j] = swap;
            j -= 1;
        }
        i += 1;
    }
    index
};

/// The code of a byte in [`CUE_ENDINGS`]: a letter's case-folded five
/// bits (`'` shares one with `g`, which only lets more words through);
/// 0 for any other byte, which is what comes before a two-letter cue.
const fn ending_code(b: u8) -> usize {
    if b.is_ascii_alphabetic() || b == b'\'' {
        ((b | 0x20) & 0x1F) as usize
    } else {
        0
    }
}

/// [`ending_code`] per byte value: a load, where the tests cost more than
/// the calls they saved.
static ENDING_CODES: [u8; 256] = byte_table!(0, |b| ending_code(b) as u8);

/// The [`CUE_ENDINGS`] bit of the codes of the three bytes ending a word.
const fn ending(a: usize, b: usize, c: usize) -> usize {
    a << 10 | b << 5 | c
}

/// A bit per ending (last three letters, or a non-letter and two) any
/// cue word has, so most words before a capitalised word are turned away
/// before they are read. Two letters let a sixth of capitalised words
/// through in prose ("is", "to" and "st" end many words); three, fewer.
// Evaluated at compile time: an index out of range fails the build.
#[allow(clippy::indexing_slicing)]
const CUE_ENDINGS: [u64; 512] = {
    let mut bits = [0u64; 512];
    let mut i = 0;
    while i < CUE_WORDS.len() {
        let bit = match CUE_WORDS[i].0.as_bytes() {
            [.., a, b, c] => ending(ending_code(*a), ending_code(*b), ending_code(*c)),
            [b, c] => ending(0, ending_code(*b), ending_code(*c)),
            _ => 0,
        };
        bits[bit / 64] |= 1 << (bit % 64);
        i += 1;
    }
    bits
};

fn may_end_cue(a: u8, b: u8, c: u8) -> bool {
    let code = |x: u8| usize::from(ENDING_CODES.get(usize::from(x)).copied().unwrap_or(0));
    let bit = ending(code(a), code(b), code(c));
    CUE_ENDINGS.get(bit / 64).is_some_and(|bits| bits & (1 << (bit % 64)) != 0)
}

/// The bytes that may stand between a cue word and a name.
static CUE_SEPARATORS: [bool; 256] =
    byte_table!(false, |b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b',' | b'!' | b'.' | b':'));

/// The cue word before a capitalised word at `p`, if any. This runs at
/// every capitalised word start, so the word before is read only when its
/// last three bytes end some cue word (1,338 of the `mixed` corpus's
/// 16,500 capitalised words).
#[inline]
fn cue_before(bytes: &[u8], p: usize) -> Option<(Cue, bool, usize)> {
    let is_sep = |b: &u8| CUE_SEPARATORS.get(usize::from(*b)).copied().unwrap_or(false);
    let q = p - bytes.get(p.saturating_sub(4)..p)?.iter().rev().take_while(|b| is_sep(b)).count();
    if q == p || q < 2 || !may_end_cue(at(bytes, q.wrapping_sub(3)), at(bytes, q - 2), at(bytes, q - 1)) {
        return None;
    }
    cue_word(bytes, p, q)
}

/// [`cue_before`] once the separators `q..p` are known.
#[inline(never)]
fn cue_word(bytes: &[u8], p: usize, q: usize) -> Option<(Cue, bool, usize)> {
    let seps = bytes.get(q..p)?;
    let newline = seps.iter().any(|&b| b == b'\n' || b == b'\r');
    let s = q - letters_before(bytes, q);
    if s == q || (s > 0 && at(bytes, s - 1).is_ascii_alphanumeric()) {
        return None;
    }
    let word = key_before(bytes, q, q - s)?;
    // "name is": the word before, then one space.
    let after = |words: &[&str]| {
        words.iter().any(|w| {
            let w = w.as_bytes();
            s > w.len()
                && at(bytes, s - 1) == b' '
                && bytes.get(s - 1 - w.len()..s - 1).is_some_and(|x| x.eq_ignore_ascii_case(w))
        })
    };
    let capitalised = at(bytes, s).is_ascii_uppercase();
    let holds = |needs| match needs {
        Needs::Nothing => true,
        Needs::Capitalised => capitalised,
        Needs::Colon => seps.contains(&b':'),
        Needs::After(words) => after(words),
    };
    // The first entry for the word whose needs hold.
    let from = CUE_INDEX.partition_point(|&(k, _)| k < word);
    let cue = CUE_INDEX
        .get(from..)?
        .iter()
        .take_while(|&&(k, _)| k == word)
        .filter_map(|&(_, i)| CUE_WORDS.get(i))
        .find_map(|&(_, cue, needs)| holds(needs).then_some(cue))?;
    // A title takes its own '.', nothing else; other cues take ',' or '!'.
    let ok_seps = match cue {
        Cue::Title => seps.iter().all(|&b| b == b' ' || b == b'.'),
        Cue::Intro => true,
        // A greeting names someone on its own line ("Hi Jane,"); the line
        // after "Hi," starts the message ("Hi,\n\nTel. ...").
        Cue::Greeting => !seps.contains(&b'.') && !newline,
        _ => !seps.contains(&b'.'),
    };
    ok_seps.then_some((cue, newline, s))
}

/// A name at the capitalised word `p`. The cheap tests come first: a name
/// needs a cue word before it or a given name from the lexicon, and most
/// capitalised words (sentence starts, products, places) have neither, so
/// the name run is read only when one holds.
fn person_at(bytes: &[u8], p: usize) -> Option<Finding> {
    let start = p;
    let first_end = word_end(bytes, start)?;
    let first = bytes.get(start..first_end)?;
    let bare_end = if first.ends_with(b".") { first_end - 1 } else { first_end };
    let in_lexicon = FIRST_NAME_SET.contains_in(bytes, start, bare_end);
    let cue = cue_before(bytes, p);
    if cue.is_none() && !in_lexicon {
        return None;
    }
    // Only now the tests of what the word is (most capitalised words
    // stopped above): shouting, common words, identifiers.
    name_word(bytes, start)?;
    let (start, end, words) = name_run(bytes, p)?;
    let after = at(bytes, end);
    let ends_clause = matches!(after, 0 | b',' | b'!' | b'.' | b'\n' | b'\r' | b'?' | b':' | b';' | b')');
    if let Some((cue, newline, cue_start)) = cue {
        // Between the cue word's start and the name: the word, then separators.
        let comma = bytes.get(cue_start..p).is_some_and(|w| w.contains(&b','));
        let c = match cue {
            Cue::Title => Some(0.9),
            Cue::Greeting => (ends_clause || in_lexicon || words > 1).then_some(if in_lexicon { 0.9 } else { 0.8 }),
            // "Thanks,\nJo Bloggs", or on the same line after a comma when
            // the name ends it: "Thanks, Jo Bloggs".
            Cue::SignOff => (newline && (ends_clause || after == b' ')
                || ends_clause && (in_lexicon || words > 1 && comma))
                .then_some(0.8),
            Cue::Intro => Some(0.9),
            Cue::WeakIntro => in_lexicon.then_some(if words > 1 { 0.85 } else { 0.75 }),
            Cue::With => (in_lexicon || words > 1).then_some(0.8),
        };
        if let Some(c) = c {
            return Some(person(start, end, c, "person.cue"));
        }
    }
    if !in_lexicon || !first.iter().skip(1).all(u8::is_ascii_lowercase) {
        return None;
    }
    if words >= 2 {
        return Some(person(start, end, 0.8, "person.lexicon"));
    }
    // A lone given name counts mid-sentence ("ask Sarah about it"), not at
    // a sentence start where any word is capitalised.
    let prev = at(bytes, start.wrapping_sub(2));
    let mid_sentence = start >= 2 && at(bytes, start - 1) == b' ' && (prev.is_ascii_lowercase() || prev == b',');
    (mid_sentence && !after.is_ascii_alphanumeric()).then(|| person(start, end, 0.65, "person.lexicon"))
}

/// A date at `p`: `12/03/1985`, `1985-03-12`, `12.3.85`, `12 March 1985`,
/// `March 12, 1985`, `12th of March 1985`. Returns its end.
pub(crate) fn parse_date(bytes: &[u8], p: usize) -> Option<usize> {
    numeric_date(bytes, p).or_else(|| textual_date(bytes, p))
}

fn digits_at(bytes: &[u8], p: usize, max: usize) -> (u32, usize) {
    let mut v = 0u32;
    let mut n = 0;
    while n < max && at(bytes, p + n).is_ascii_digit() {
        v = v * 10 + u32::from(at(bytes, p + n) - b'0');
        n += 1;
    }
    (v, n)
}

fn numeric_date(bytes: &[u8], p: usize) -> Option<usize> {
    let (a, na) = digits_at(bytes, p, 4);
    let sep = at(bytes, p + na);
    if na == 0 || !matches!(sep, b'/' | b'-' | b'.') {
        return None;
    }
    let (b, nb) = digits_at(bytes, p + na + 1, 2);
    if nb == 0 || at(bytes, p + na + 1 + nb) != sep {
        return None;
    }
    let q = p + na + 1 + nb + 1;
    let (c, nc) = digits_at(bytes, q, 4);
    let end = q + nc;
    if at(bytes, end).is_ascii_digit() {
        return None;
    }
    let ok = match (na, nc) {
        (4, 1..=2) => (1900..=2100).contains(&a) && (1..=12).contains(&b) && (1..=31).contains(&c),
        (1..=2, 2 | 4) => {
            let year_ok = nc == 2 || (1900..=2100).contains(&c);
            year_ok
                && ((1..=31).contains(&a) && (1..=12).contains(&b) || (1..=12).contains(&a) && (1..=31).contains(&b))
        }
        _ => false,
    };
    ok.then_some(end)
}

fn month_at(bytes: &[u8], p: usize) -> Option<usize> {
    let mut e = p;
    while e - p < 10 && at(bytes, e).is_ascii_alphabetic() {
        e += 1;
    }
    let word = bytes.get(p..e)?;
    MONTHS.iter().any(|(m, _)| m.as_bytes().eq_ignore_ascii_case(word)).then_some(if at(bytes, e) == b'.' {
        e + 1
    } else {
        e
    })
}

fn day_at(bytes: &[u8], p: usize) -> Option<usize> {
    let (d, n) = digits_at(bytes, p, 2);
    if n == 0 || !(1..=31).contains(&d) || at(bytes, p + n).is_ascii_digit() {
        return None;
    }
    let mut e = p + n;
    let suffix = bytes.get(e..e + 2).unwrap_or_default().to_ascii_lowercase();
    if matches!(suffix.as_slice(), b"st" | b"nd" | b"rd" | b"th") {
        e += 2;
    }
    Some(e)
}

fn year_at(bytes: &[u8], p: usize) -> Option<usize> {
    let (y, n) = digits_at(bytes, p, 4);
    (n == 4 && (1900..=2100).contains(&y) && !at(bytes, p + 4).is_ascii_digit()).then_some(p + 4)
}

fn textual_date(bytes: &[u8], p: usize) -> Option<usize> {
    let skip = |mut q: usize| {
        if at(bytes, q) == b',' {
            q += 1;
        }
        (at(bytes, q) == b' ').then_some(q + 1)
    };
    if at(bytes, p).is_ascii_digit() {
        let mut q = skip(day_at(bytes, p)?)?;
        if bytes.get(q..q + 3).is_some_and(|w| w.eq_ignore_ascii_case(b"of ")) {
            q += 3;
        }
        let q = skip(month_at(bytes, q)?)?;
        year_at(bytes, q)
    } else {
        let q = skip(month_at(bytes, p)?)?;
        let q = skip(day_at(bytes, q)?)?;
        year_at(bytes, q)
    }
}

fn date_of_birth(bytes: &[u8], hit: &Hit) -> Option<Finding> {
    let limit = (hit.end + 40).min(bytes.len());
    let mut p = hit.end;
    while p < limit {
        let b = at(bytes, p);
        let starts = p == 0 || !at(bytes, p - 1).is_ascii_alphanumeric();
        if starts && b.is_ascii_alphanumeric() {
            if let Some(end) = parse_date(bytes, p) {
                return Some(Finding::new(EntityClass::DateOfBirth, p, end, 0.9, "date_of_birth.cue"));
            }
        }
        // A sentence end closes the window; the cue's own dot before a
        // number does not ("D.O.B. 01/02/1990", "DOB. 01/02/1990").
        let cue_dot = p == hit.end && at(bytes, p + 2).is_ascii_digit();
        if b == b'\n' || (b == b'.' && at(bytes, p + 1) == b' ' && !cue_dot) {
            break;
        }
        p += 1;
    }
    None
}

fn passport(bytes: &[u8], hit: &Hit) -> Option<Finding> {
    let limit = (hit.end + 40).min(bytes.len());
    let mut p = hit.end;
    while p < limit {
        if !at(bytes, p).is_ascii_alphanumeric() {
            p += 1;
            continue;
        }
        let mut e = p;
        while e - p < 16 && at(bytes, e).is_ascii_alphanumeric() {
            e += 1;
        }
        let token = bytes.get(p..e)?;
        let digits = token.iter().filter(|b| b.is_ascii_digit()).count();
        let upper_or_digit = token.iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if (6..=10).contains(&token.len()) && upper_or_digit && digits >= 4 {
            return Some(Finding::new(EntityClass::Passport, p, e, 0.9, "passport.cue"));
        }
        // Filler words between the cue and the number.
        let filler = token.len() <= 8 && token.iter().all(u8::is_ascii_alphabetic);
        if !filler {
            return None;
        }
        p = e;
    }
    None
}

const CLINICAL: &[&str] = &[
    "diagnosed",
    "diagnosis",
    "suffer",
    "suffers",
    "suffering",
    "treated",
    "treatment",
    "prescribed",
    "medication",
    "patient",
    "living with",
    "history of",
    "tested positive",
    "battling",
    "condition",
    "symptoms",
    "therapy",
    "managing",
    "recovering",
];
const PERSONAL: &[&str] = &["my", "his", "her", "their", "has", "have", "had", "with", "is", "am", "was", "got"];
const NOT_PERSONAL: &[&str] = &["research", "awareness", "foundation", "society", "charity", "month", "institute"];

fn health(bytes: &[u8], hit: &Hit) -> Option<Finding> {
    let clinical_before = window_has(bytes, hit.start.saturating_sub(64), hit.start, CLINICAL);
    let clinical_after = window_has(bytes, hit.end, hit.end + 24, CLINICAL);
    let personal = window_has(bytes, hit.start.saturating_sub(20), hit.start, PERSONAL);
    if window_has(bytes, hit.end, hit.end + 16, NOT_PERSONAL) {
        return None;
    }
    let c = if clinical_before || clinical_after {
        0.85
    } else if personal {
        0.7
    } else {
        return None;
    };
    Some(Finding::new(EntityClass::Health, hit.start, hit.end, c, "health.condition"))
}

const CHILD: &[&str] = &[
    "son",
    "daughter",
    "child",
    "kid",
    "boy",
    "girl",
    "baby",
    "toddler",
    "student",
    "pupil",
    "nephew",
    "niece",
    "grandson",
    "granddaughter",
    "minor",
];

fn minor(bytes: &[u8], hit: &Hit, cue: AgeCue) -> Option<Finding> {
    let (start, end, age) = match cue {
        AgeCue::Before => {
            let mut d_end = hit.start;
            if matches!(at(bytes, d_end.wrapping_sub(1)), b' ' | b'-') {
                d_end -= 1;
            }
            let mut d_start = d_end;
            while d_start > 0 && d_end - d_start < 3 && at(bytes, d_start - 1).is_ascii_digit() {
                d_start -= 1;
            }
            if d_start == d_end
                || d_end - d_start > 2
                || (d_start > 0 && at(bytes, d_start - 1).is_ascii_alphanumeric())
            {
                return None;
            }
            let (age, _) = digits_at(bytes, d_start, 2);
            (d_start, hit.end, age)
        }
        AgeCue::After => {
            let mut p = hit.end;
            while p - hit.end < 3 && matches!(at(bytes, p), b' ' | b':' | b'=') {
                p += 1;
            }
            let (age, n) = digits_at(bytes, p, 3);
            if n == 0 || n > 2 || at(bytes, p + n).is_ascii_alphanumeric() && at(bytes, p + n) != b'y' {
                return None;
            }
            (hit.start, p + n, age)
        }
    };
    if age >= 18 {
        return None;
    }
    let child = window_has(bytes, start.saturating_sub(48), (end + 24).min(bytes.len()), CHILD);
    Some(Finding::new(EntityClass::Minor, start, end, if child { 0.95 } else { 0.8 }, "minor.age"))
}

#[cfg(test)]
mod tests {
    use super::super::DetectorSet;
    use super::*;

    /// The ending filter lets every cue word through, in any case and
    /// after any byte, and turns away words that end no cue.
    #[test]
    fn cue_endings_pass_every_cue_word() {
        for &(word, ..) in CUE_WORDS {
            for before in [b' ', b'\n', b'(', 0] {
                for text in [word.to_string(), word.to_uppercase()] {
                    let mut bytes = vec![before];
                    bytes.extend_from_slice(text.as_bytes());
                    let [.., a, b, c] = bytes[..] else { panic!("{word}") };
                    assert!(may_end_cue(a, b, c), "{word:?} after {before}");
                }
            }
        }
        for turned_away in [" this", "into", "this", "list", "Paris"] {
            let [.., a, b, c] = turned_away.as_bytes() else { panic!() };
            assert!(!may_end_cue(*a, *b, *c), "{turned_away}");
        }
    }

    fn found(text: &str, class: EntityClass) -> Vec<String> {
        let mut out = Vec::new();
        DetectorSet::new([class]).scan(text, &mut out);
        out.iter().map(|f| text[f.start..f.end].to_string()).collect()
    }

    /// The word reads before a name against byte-at-a-time versions, at
    /// every position of texts with runs of every length near the edges.
    #[test]
    fn cue_word_reads_agree_with_byte_reads() {
        let is_letter = |b: &u8| b.is_ascii_alphabetic() || *b == b'\'';
        for text in [
            "a Bc deF O'Brien x\u{e9}y Hello, World! abcdefghijklmnopq RST 12ab_cd",
            "Sincerely Greetings AFTERNOON i'm it's  \n\t Zz",
        ] {
            let bytes = text.as_bytes();
            for q in 0..=bytes.len() {
                let want = bytes[q.saturating_sub(CUE_REACH)..q].iter().rev().take_while(|b| is_letter(b)).count();
                assert_eq!(letters_before(bytes, q), want, "run before {q} in {text:?}");
                for len in 1..=q.min(16) {
                    assert_eq!(key_before(bytes, q, len), Some(key(&bytes[q - len..q])), "key of {len} before {q}");
                }
            }
        }
    }

    #[test]
    fn every_cue_word_is_found_with_what_it_needs_and_not_without() {
        for &(word, cue, needs) in CUE_WORDS {
            let (before, word_form, seps) = match needs {
                Needs::Nothing => (String::new(), word.to_string(), " "),
                Needs::Capitalised => (String::new(), word[..1].to_uppercase() + &word[1..], " "),
                Needs::Colon => (String::new(), word.to_string(), ": "),
                Needs::After(words) => (format!("{} ", words[0]), word.to_string(), " "),
            };
            let text = format!("so {before}{word_form}{seps}Jane");
            let p = text.len() - 4;
            let found = cue_before(text.as_bytes(), p).map(|(c, _, _)| c);
            assert_eq!(found, Some(cue), "{text}");
            if !matches!(needs, Needs::Nothing) {
                let bare = format!("so {word} Jane");
                let found = cue_before(bare.as_bytes(), bare.len() - 4).map(|(c, _, _)| c);
                assert_ne!(found, Some(cue), "{bare}");
            }
        }
        // Words that merely end like a cue word are no cue.
        for text in ["the session Jane", "a bluebest Jane", "forms Jane"] {
            assert_eq!(cue_before(text.as_bytes(), text.len() - 4), None, "{text}");
        }
    }

    #[test]
    fn capitals_inside_words_start_no_name_and_hide_none_after_them() {
        let names = |t: &str| {
            let mut out = Vec::new();
            persons(t.as_bytes(), &Marks::new(t.as_bytes(), b'A', b'Z', 1), &mut out);
            out.iter().map(|f| t[f.start..f.end].to_string()).collect::<Vec<_>>()
        };
        assert_eq!(names("The OpenAI team met Sarah Connor"), ["Sarah Connor"]);
        assert_eq!(names("ask McKenzie-Sarah Connor"), ["Sarah Connor"]);
        assert_eq!(names("Hi O'Brien,"), ["O'Brien"]);
    }

    #[test]
    fn persons_from_cues_and_lexicon() {
        assert_eq!(found("Hi Priya, can you help?", EntityClass::Person), ["Priya"]);
        assert_eq!(found("My name is Zbigniew Kowalczyk.", EntityClass::Person), ["Zbigniew Kowalczyk"]);
        assert_eq!(found("Please ask Dr. Okonkwo about it", EntityClass::Person), ["Okonkwo"]);
        assert_eq!(found("Thanks,\nMaria", EntityClass::Person), ["Maria"]);
        assert_eq!(found("forward it to Sarah Connor today", EntityClass::Person), ["Sarah Connor"]);
        assert!(
            found("Hello World", EntityClass::Person).is_empty()
                || found("Hello World", EntityClass::Person) == ["World"]
        );
        assert!(found("the Python Software Foundation", EntityClass::Person).is_empty());
        assert!(found("I am Happy to help", EntityClass::Person).is_empty());
    }

    #[test]
    fn a_greeting_does_not_reach_past_its_line() {
        for text in
            ["Hi,\n\nTel. 0412 345 678", "Good morning,\n\nEmployee TFN - 123 456 782", "Hello\nProject Falcon is late"]
        {
            assert!(found(text, EntityClass::Person).is_empty(), "{text:?}: {:?}", found(text, EntityClass::Person));
        }
        assert_eq!(found("Hi Zbigniew,\n\nThe report is attached.", EntityClass::Person), ["Zbigniew"]);
    }

    #[test]
    fn more_person_cues() {
        assert_eq!(found("Thanks, Lori Myers", EntityClass::Person), ["Lori Myers"]);
        assert_eq!(found("Thanks,\nLori Myers", EntityClass::Person), ["Lori Myers"]);
        assert_eq!(found("Patient: Avni Dani", EntityClass::Person), ["Avni Dani"]);
        assert_eq!(found("Meeting with Chad Burns tomorrow at 10.", EntityClass::Person), ["Chad Burns"]);
        assert_eq!(found("I spoke to Ngozi Okafor on the phone", EntityClass::Person), ["Ngozi Okafor"]);
        // A lone capitalised word after these cues is not enough.
        assert!(found("Thanks, Everyone at Acme", EntityClass::Person).is_empty());
        assert!(found("Meeting with Legal tomorrow", EntityClass::Person).is_empty());
    }

    #[test]
    fn dates_of_birth_need_a_birth_cue() {
        assert_eq!(found("DOB: 12/03/1985", EntityClass::DateOfBirth), ["12/03/1985"]);
        assert_eq!(found("I was born on 4 July 1990 in Perth", EntityClass::DateOfBirth), ["4 July 1990"]);
        assert_eq!(found("date of birth is March 3rd, 1979", EntityClass::DateOfBirth), ["March 3rd, 1979"]);
        assert_eq!(found("birthdate 1985-03-12", EntityClass::DateOfBirth), ["1985-03-12"]);
        assert!(found("the meeting is on 12/03/2025", EntityClass::DateOfBirth).is_empty());
        assert!(found("DOB: 31/31/1985", EntityClass::DateOfBirth).is_empty());
        assert_eq!(found("D.O.B. 01/02/1990", EntityClass::DateOfBirth), ["01/02/1990"]);
        assert_eq!(found("DOB. 01/02/1990", EntityClass::DateOfBirth), ["01/02/1990"]);
        assert!(found("the DOB. The meeting is on 12/03/2025", EntityClass::DateOfBirth).is_empty());
    }

    #[test]
    fn passports_need_a_cue() {
        assert_eq!(found("passport number: N1234567", EntityClass::Passport), ["N1234567"]);
        assert_eq!(found("my passport is 533401233", EntityClass::Passport), ["533401233"]);
        assert!(found("the number N1234567", EntityClass::Passport).is_empty());
    }

    #[test]
    fn health_needs_personal_or_clinical_context() {
        assert_eq!(found("She was diagnosed with diabetes last year", EntityClass::Health), ["diabetes"]);
        assert_eq!(found("my asthma is worse", EntityClass::Health), ["asthma"]);
        assert!(found("cancer research is funded", EntityClass::Health).is_empty());
        assert!(found("Diabetes affects millions worldwide", EntityClass::Health).is_empty());
    }

    #[test]
    fn minors_by_age() {
        assert_eq!(found("my son is 7 years old", EntityClass::Minor), ["7 years old"]);
        assert_eq!(found("a 12-year-old girl", EntityClass::Minor), ["12-year-old"]);
        assert_eq!(found("patient aged 15", EntityClass::Minor), ["aged 15"]);
        assert!(found("I am 35 years old", EntityClass::Minor).is_empty());
        assert_eq!(found("my daughter, age 13, plays", EntityClass::Minor), ["age 13"]);
        assert_eq!(found("Age: 13", EntityClass::Minor), ["Age: 13"]);
        assert!(found("age 35", EntityClass::Minor).is_empty());
        assert!(found("the page 13 image", EntityClass::Minor).is_empty());
    }
}
