//! Detectors: each finds one class of sensitive value in a text part.
//!
//! One scan of a text part runs, in order:
//!
//! 1. [`normalize`]: full-width forms, odd spaces and dashes, zero-width
//!    characters are folded away; text with nothing to fold (ASCII, or
//!    curly quotes and em dashes, which stay) is borrowed untouched;
//! 2. one pass of a bucketed shift-or filter ([`literals`], driven by
//!    [`keywords`]) over every trigger keyword the enabled classes need:
//!    vendor secret prefixes, `password`/`token`-style keys, health terms,
//!    birth and passport cues, age phrases;
//! 3. passes over digit runs (cards, and [`numeric`]: every other
//!    number-shaped class — phones, national ids, IBAN, NINO, IP addresses,
//!    street numbers, postcodes) and over capitalised words (person names),
//!    each skipping to its next candidate eight bytes at a time
//!    ([`bytescan`]), with word lists looked up by hash;
//! 4. `memchr` over `@` for e-mail.
//!
//! The hand-written parts are the keyword filter, the byte skips and the
//! hashed word sets, chosen because the general tools they replace (an
//! Aho-Corasick DFA too big for the cache, `position`, string binary
//! search, a per-byte offset map) dominated the profile of the `mixed`
//! corpus of `benches/detect.rs`.
//!
//! Expensive work (checksums, context windows, entropy) runs only at the
//! candidates those passes produce, and every walk is bounded, so the scan
//! is linear in the text whatever it holds. Findings are mapped back to byte
//! spans of the original text, overlaps resolved (most confident, then
//! longest wins).

pub(crate) mod bytescan;
mod card;
mod context;
mod custom;
mod email;
mod keywords;
mod lexicon;
mod literals;
mod normalize;
mod numeric;
mod secret;

use std::borrow::Cow;
use std::fmt;

use bytescan::Marks;

pub use card::{luhn_valid, CardNetwork};
pub use custom::{CustomDetector, CustomError, CustomSpec};
pub use normalize::fold;
pub use secret::{vendor_token_shapes, SECRET_SUBTYPES};

/// The word lists the context detectors use, by name: `first_names`,
/// `conditions`, `street_types`. Nothing in the engine calls it: the naive
/// regex baseline of `benches/detect.rs` builds its alternations from these
/// lists, so it mirrors them instead of a copy.
pub fn word_lists() -> [(&'static str, &'static [&'static str]); 3] {
    [
        ("first_names", lexicon::FIRST_NAMES),
        ("conditions", lexicon::CONDITIONS),
        ("street_types", lexicon::STREET_TYPES),
    ]
}

/// The classes of sensitive value meshward knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityClass {
    Email,
    Phone,
    CreditCard,
    Iban,
    UsSsn,
    AuTfn,
    AuAbn,
    AuAcn,
    AuMedicare,
    UkNino,
    IpAddress,
    Secret,
    Person,
    Address,
    DateOfBirth,
    Passport,
    Health,
    Minor,
    /// Findings of policy-defined detectors that name no catalogue class.
    Custom,
}

impl EntityClass {
    pub const ALL: [EntityClass; 19] = [
        EntityClass::Email,
        EntityClass::Phone,
        EntityClass::CreditCard,
        EntityClass::Iban,
        EntityClass::UsSsn,
        EntityClass::AuTfn,
        EntityClass::AuAbn,
        EntityClass::AuAcn,
        EntityClass::AuMedicare,
        EntityClass::UkNino,
        EntityClass::IpAddress,
        EntityClass::Secret,
        EntityClass::Person,
        EntityClass::Address,
        EntityClass::DateOfBirth,
        EntityClass::Passport,
        EntityClass::Health,
        EntityClass::Minor,
        EntityClass::Custom,
    ];

    /// The name used in policies, placeholders and audit events.
    pub fn name(self) -> &'static str {
        match self {
            EntityClass::Email => "EMAIL",
            EntityClass::Phone => "PHONE",
            EntityClass::CreditCard => "CREDIT_CARD",
            EntityClass::Iban => "IBAN",
            EntityClass::UsSsn => "US_SSN",
            EntityClass::AuTfn => "AU_TFN",
            EntityClass::AuAbn => "AU_ABN",
            EntityClass::AuAcn => "AU_ACN",
            EntityClass::AuMedicare => "AU_MEDICARE",
            EntityClass::UkNino => "UK_NINO",
            EntityClass::IpAddress => "IP_ADDRESS",
            EntityClass::Secret => "SECRET",
            EntityClass::Person => "PERSON",
            EntityClass::Address => "ADDRESS",
            EntityClass::DateOfBirth => "DATE_OF_BIRTH",
            EntityClass::Passport => "PASSPORT",
            EntityClass::Health => "HEALTH",
            EntityClass::Minor => "MINOR",
            EntityClass::Custom => "CUSTOM",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether the class is validated by a checksum (accuracy targets differ).
    pub fn is_checksummed(self) -> bool {
        matches!(
            self,
            EntityClass::CreditCard
                | EntityClass::Iban
                | EntityClass::AuTfn
                | EntityClass::AuAbn
                | EntityClass::AuAcn
                | EntityClass::AuMedicare
        )
    }

    /// The form of a value that decides its placeholder, so `4111-1111…` and
    /// `4111 1111…`, or `Jane@Example.com` and `jane@example.com`, get the
    /// same placeholder. Full-width and zero-width obfuscation is folded
    /// first, so an obfuscated value gets the plain value's placeholder.
    pub fn canonical<'t>(self, value: &'t str) -> Cow<'t, str> {
        let folded = normalize::fold(value);
        match self {
            EntityClass::Email | EntityClass::Person | EntityClass::Address | EntityClass::Health => {
                Cow::Owned(folded.to_lowercase())
            }
            EntityClass::CreditCard
            | EntityClass::Phone
            | EntityClass::UsSsn
            | EntityClass::AuTfn
            | EntityClass::AuAbn
            | EntityClass::AuAcn
            | EntityClass::AuMedicare => Cow::Owned(folded.chars().filter(char::is_ascii_digit).collect()),
            EntityClass::Iban | EntityClass::UkNino | EntityClass::Passport => {
                Cow::Owned(folded.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_uppercase()).collect())
            }
            EntityClass::IpAddress => Cow::Owned(folded.to_ascii_lowercase()),
            EntityClass::Secret | EntityClass::DateOfBirth | EntityClass::Minor | EntityClass::Custom => folded,
        }
    }
}

impl fmt::Display for EntityClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One detected value: `start..end` are byte offsets into the scanned text.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub class: EntityClass,
    /// A finer kind within the class: the secret format
    /// (`aws_access_key_id`), the phone numbering plan (`us`), the card
    /// network, or a custom detector's name.
    pub subtype: Option<Cow<'static, str>>,
    pub start: usize,
    pub end: usize,
    /// In [0, 1]; raised by checksums and context words.
    pub confidence: f32,
    /// The rule that fired, e.g. `credit_card.luhn.visa`.
    pub rule: &'static str,
}

impl Finding {
    pub(crate) fn new(class: EntityClass, start: usize, end: usize, confidence: f32, rule: &'static str) -> Finding {
        Finding { class, subtype: None, start, end, confidence: confidence.clamp(0.0, 1.0), rule }
    }

    pub(crate) fn with_subtype(mut self, subtype: &'static str) -> Finding {
        self.subtype = Some(Cow::Borrowed(subtype));
        self
    }
}

/// What the detectors of one scan share: the normalised text, the keyword
/// hits of the prefilter pass, and which classes are enabled.
pub(crate) struct Ctx<'a> {
    pub bytes: &'a [u8],
    pub hits: &'a [keywords::Hit],
    pub enabled: ClassMask,
    /// The digits of `bytes`, when a class that reads digit runs is enabled.
    pub digits: &'a Marks<'a>,
    /// The capitals of `bytes`, when PERSON is enabled.
    pub capitals: &'a Marks<'a>,
}

/// A set of classes as bits, for cheap "is it enabled" tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ClassMask(u32);

impl ClassMask {
    pub(crate) fn of(classes: &[EntityClass]) -> ClassMask {
        ClassMask(classes.iter().fold(0, |m, c| m | (1 << (*c as u32))))
    }

    pub(crate) fn has(self, class: EntityClass) -> bool {
        self.0 & (1 << (class as u32)) != 0
    }
}

/// The detectors a policy enabled, compiled once at configure time.
#[derive(Debug, Clone, Default)]
pub struct DetectorSet {
    classes: Vec<EntityClass>,
    mask: ClassMask,
    keywords: keywords::Keywords,
    custom: Vec<CustomDetector>,
}

impl DetectorSet {
    pub fn new(classes: impl IntoIterator<Item = EntityClass>) -> Self {
        Self::with_custom(classes, Vec::new())
    }

    /// The built-in detectors of `classes` plus policy-defined detectors.
    pub fn with_custom(classes: impl IntoIterator<Item = EntityClass>, custom: Vec<CustomDetector>) -> Self {
        let mut classes: Vec<_> = classes.into_iter().collect();
        classes.sort();
        classes.dedup();
        let mask = ClassMask::of(&classes);
        let keywords = keywords::Keywords::build(mask);
        DetectorSet { classes, mask, keywords, custom }
    }

    pub fn is_empty(&self) -> bool {
        self.classes.is_empty() && self.custom.is_empty()
    }

    pub fn classes(&self) -> &[EntityClass] {
        &self.classes
    }

    /// Appends the findings in `text`, sorted by start, without overlaps.
    pub fn scan(&self, text: &str, out: &mut Vec<Finding>) {
        self.scan_ranked(text, out, |_| Some(0));
    }

    /// Every candidate finding, overlaps included, in original-text spans.
    fn scan_raw(&self, text: &str, out: &mut Vec<Finding>) {
        let first = out.len();
        let norm = normalize::Normalized::new(text);
        let t = norm.text();
        let hits = self.keywords.hits(t);
        let bytes = t.as_bytes();
        let mask = self.mask;
        let passes = |classes: &[bool]| classes.iter().filter(|&&on| on).count();
        let digit_passes = passes(&[mask.has(EntityClass::CreditCard), numeric::wanted(mask)]);
        let digits = Marks::new(bytes, b'0', b'9', digit_passes);
        let capitals = Marks::dense(bytes, b'A', b'Z', passes(&[mask.has(EntityClass::Person)]));
        let cx = Ctx { bytes, hits: &hits, enabled: mask, digits: &digits, capitals: &capitals };
        if mask.has(EntityClass::Email) {
            email::detect(t, out);
        }
        if mask.has(EntityClass::CreditCard) {
            card::detect(t, &digits, out);
        }
        numeric::detect(&cx, out);
        if self.mask.has(EntityClass::Secret) {
            secret::detect(&cx, out);
        }
        context::detect(&cx, out);
        for detector in &self.custom {
            detector.detect(t, out);
        }
        if !norm.is_identity() {
            for f in out.iter_mut().skip(first) {
                let (s, e) = norm.span(f.start, f.end);
                f.start = s;
                f.end = e;
            }
        }
        // Spans must cut the original text at character boundaries.
        for f in out.iter_mut().skip(first) {
            while f.start > 0 && !text.is_char_boundary(f.start) {
                f.start -= 1;
            }
            while f.end < text.len() && !text.is_char_boundary(f.end) {
                f.end += 1;
            }
            f.end = f.end.min(text.len());
            f.start = f.start.min(f.end);
        }
    }
}

/// Keeps a set of non-overlapping findings: higher `rank` first (the policy
/// ranks by action, so a `flag` finding never hides a `redact` one), then
/// the longer, then the more confident. Only the kept findings are left,
/// sorted by start. O(n log n) whatever the overlaps.
///
/// A finding can only lose to one it overlaps, directly or through a chain
/// of overlaps, so each run of overlapping spans is resolved on its own,
/// and a span that overlaps nothing (most of them) is kept without taking
/// part in the ranking: the whole list's ranking and its map of accepted
/// spans were most of this function's cost.
fn resolve_ranked(found: &mut Vec<Finding>, rank: impl Fn(&Finding) -> u8) {
    // `(start, index)` pairs: the sort the engine already has for pairs,
    // where one of triples added 10 KB to the `.wasm`.
    let mut by_start: Vec<(usize, usize)> = found.iter().enumerate().map(|(i, f)| (f.start, i)).collect();
    by_start.sort_unstable();
    let end_of = |i: usize| found.get(i).map_or(0, |f| f.end);
    let mut keep = vec![false; found.len()];
    let mut run = Vec::new();
    let mut k = 0;
    while let Some(&(_, first)) = by_start.get(k) {
        let mut reach = end_of(first);
        let mut next = k + 1;
        while let Some(&(start, i)) = by_start.get(next) {
            if start >= reach {
                break;
            }
            reach = reach.max(end_of(i));
            next += 1;
        }
        if next == k + 1 {
            if let (Some(f), Some(slot)) = (found.get(first), keep.get_mut(first)) {
                *slot = f.end > f.start;
            }
        } else {
            run.clear();
            run.extend(by_start.get(k..next).unwrap_or_default().iter().map(|&(_, i)| i));
            resolve_run(found, &run, &rank, &mut keep);
        }
        k = next;
    }
    let mut kept = keep.iter();
    found.retain(|_| kept.next().copied().unwrap_or(false));
    // Kept spans are disjoint and not empty, so their starts differ and an
    // unstable sort has one result.
    found.sort_unstable_by_key(|f| f.start);
}

/// Ranks the findings `run` (indices into `found`) and marks in `keep` the
/// ones that overlap no better one.
fn resolve_run(found: &[Finding], run: &[usize], rank: &impl Fn(&Finding) -> u8, keep: &mut [bool]) {
    // Each finding's place in the order as one key, so the sort compares
    // integers instead of looking both findings up (its comparisons were
    // half of the cost). Ascending: higher rank, longer, more confident,
    // earlier start, then earlier in the list (the stable order this
    // replaced).
    let mut order: Vec<(u8, usize, u32, usize, usize)> = run
        .iter()
        .filter_map(|&i| {
            let f = found.get(i)?;
            Some((u8::MAX - rank(f), usize::MAX - (f.end - f.start), u32::MAX - total_key(f.confidence), f.start, i))
        })
        .collect();
    order.sort_unstable();
    // Accepted spans, disjoint, keyed by start.
    let mut taken: std::collections::BTreeMap<usize, usize> = std::collections::BTreeMap::new();
    for &(.., i) in &order {
        let Some(f) = found.get(i) else { continue };
        if f.end <= f.start {
            continue;
        }
        let overlaps = taken.range(..f.end).next_back().is_some_and(|(_, &end)| end > f.start);
        if !overlaps {
            taken.insert(f.start, f.end);
            if let Some(k) = keep.get_mut(i) {
                *k = true;
            }
        }
    }
}

/// `x` as a `u32` whose order is [`f32::total_cmp`]'s: negative values
/// have every bit flipped, others only the sign bit.
fn total_key(x: f32) -> u32 {
    let bits = x.to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 1 << 31
    }
}

impl DetectorSet {
    /// Like [`DetectorSet::scan`], but `rank` first drops findings (`None`,
    /// e.g. below a policy's minimum confidence) and ranks the rest before
    /// overlaps are resolved, so a dropped or weaker-action finding never
    /// hides another.
    pub fn scan_ranked(&self, text: &str, out: &mut Vec<Finding>, rank: impl Fn(&Finding) -> Option<u8>) {
        // A policy without detection classes still passes every text part
        // here; without this, normalisation would still read it.
        if self.is_empty() {
            return;
        }
        let mut kept = Vec::new();
        self.scan_raw(text, &mut kept);
        kept.retain(|f| rank(f).is_some());
        let mut losers = resolve_keeping(&mut kept, &rank);
        // A finding that lost an overlap may reach past the winner: in
        // "4111 1111 1111 1111-a@a.com" the card wins over the e-mail
        // "1111-a@a.com", and "a@a.com" must not survive the rewrite just
        // because its span began inside the card. What losers covered and
        // winners did not is scanned again, a bounded number of rounds.
        for _ in 0..RESCUE_ROUNDS {
            let segments = uncovered(&losers, &kept);
            if segments.is_empty() {
                break;
            }
            let mut rescued = Vec::new();
            for (from, to) in segments {
                let Some(segment) = text.get(from..to) else { continue };
                let mut found = Vec::new();
                self.scan_raw(segment, &mut found);
                rescued.extend(found.into_iter().filter(|f| rank(f).is_some()).map(|mut f| {
                    f.start += from;
                    f.end += from;
                    f
                }));
            }
            losers = resolve_keeping(&mut rescued, &rank);
            kept.extend(rescued);
            kept.sort_by_key(|f| f.start);
        }
        out.extend(kept);
    }
}

/// How many times [`DetectorSet::scan_ranked`] rescans what overlapped
/// findings left uncovered; each round only looks inside the previous
/// round's losers, so the work stays within the first scan's spans.
const RESCUE_ROUNDS: usize = 2;

/// The shortest text a rescan can find anything in (`a@b.c`).
const SHORTEST_VALUE: usize = 5;

/// Resolves overlaps in `found` (see [`resolve_ranked`]), leaving only the
/// kept findings, and returns the spans of the dropped ones.
fn resolve_keeping(found: &mut Vec<Finding>, rank: &impl Fn(&Finding) -> Option<u8>) -> Vec<(usize, usize)> {
    let spans: Vec<(usize, usize)> = found.iter().map(|f| (f.start, f.end)).collect();
    resolve_ranked(found, |f| rank(f).unwrap_or(0));
    // Kept findings are sorted by start and disjoint: one lookup each.
    let is_kept = |s: usize, e: usize| {
        let at = found.partition_point(|f| f.start < s);
        found.get(at).is_some_and(|f| f.start == s && f.end == e)
    };
    let mut lost: Vec<(usize, usize)> = spans.into_iter().filter(|&(s, e)| e > s && !is_kept(s, e)).collect();
    lost.sort_unstable();
    lost.dedup();
    lost
}

/// The parts of the `losers` spans no kept finding covers, merged, and
/// long enough to hold a value. `kept` is sorted by start and disjoint.
fn uncovered(losers: &[(usize, usize)], kept: &[Finding]) -> Vec<(usize, usize)> {
    let mut segments: Vec<(usize, usize)> = Vec::new();
    for &(start, end) in losers {
        let mut at = start;
        let first = kept.partition_point(|f| f.end <= start);
        for f in kept.iter().skip(first).take_while(|f| f.start < end) {
            if f.start > at {
                segments.push((at, f.start));
            }
            at = at.max(f.end);
        }
        if at < end {
            segments.push((at, end));
        }
    }
    segments.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (s, e) in segments {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged.retain(|&(s, e)| e - s >= SHORTEST_VALUE);
    merged
}

/// The byte at `i`, or 0 past either end: keeps bounded walks free of
/// indexing.
#[inline]
pub(crate) fn at(bytes: &[u8], i: usize) -> u8 {
    bytes.get(i).copied().unwrap_or(0)
}

/// Whether one of `words` (lower case ASCII) occurs as a word in
/// `bytes[from..to]` (ASCII case-insensitive). Used for context windows at
/// candidates only, so the window is small and the cost bounded.
pub(crate) fn window_has(bytes: &[u8], from: usize, to: usize, words: &[&str]) -> bool {
    let to = to.min(bytes.len());
    let mut i = from.min(to);
    while i < to {
        let b = at(bytes, i);
        let starts = b.is_ascii_alphanumeric() && (i == 0 || !at(bytes, i - 1).is_ascii_alphanumeric());
        if starts {
            let first = b.to_ascii_lowercase();
            for w in words {
                let w = w.as_bytes();
                if w.first() != Some(&first) || i + w.len() > to {
                    continue;
                }
                if bytes.get(i..i + w.len()).is_some_and(|x| x.eq_ignore_ascii_case(w)) {
                    let glued =
                        at(bytes, i + w.len()).is_ascii_alphabetic() && w.last().is_some_and(u8::is_ascii_alphabetic);
                    if !glued {
                        return true;
                    }
                }
            }
        }
        i += 1;
    }
    false
}

/// Shannon entropy of `bytes` in bits per byte.
pub(crate) fn entropy(bytes: &[u8]) -> f32 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        if let Some(c) = counts.get_mut(usize::from(b)) {
            *c += 1;
        }
    }
    let n = bytes.len() as f32;
    counts.iter().filter(|&&c| c > 0).map(|&c| c as f32 / n).map(|p| -p * p.log2()).sum()
}

/// Whether `b` can continue a word, so a match glued to one is no match.
pub(crate) const fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_an_overlap_loser_reaches_past_the_winner_is_scanned_again() {
        // The e-mail "1111-a@a.com" loses to the longer card; what follows
        // the card is still an address ('-' may start a local part).
        let text = "pay 4111 1111 1111 1111-a@a.com now";
        let mut out = Vec::new();
        DetectorSet::new(EntityClass::ALL).scan(text, &mut out);
        let found: Vec<(EntityClass, &str)> =
            out.iter().map(|f| (f.class, text.get(f.start..f.end).unwrap_or_default())).collect();
        assert_eq!(found, [(EntityClass::CreditCard, "4111 1111 1111 1111"), (EntityClass::Email, "-a@a.com")]);
    }

    fn classes(text: &str) -> Vec<(EntityClass, &str)> {
        let mut out = Vec::new();
        DetectorSet::new(EntityClass::ALL).scan(text, &mut out);
        out.iter().map(|f| (f.class, &text[f.start..f.end])).collect()
    }

    #[test]
    fn finds_every_class_in_order() {
        assert_eq!(
            classes("mail a.b@example.org, card 4111 1111 1111 1111, bye"),
            [(EntityClass::Email, "a.b@example.org"), (EntityClass::CreditCard, "4111 1111 1111 1111")]
        );
    }

    #[test]
    fn overlaps_keep_the_longer_finding() {
        let mut f = vec![
            Finding::new(EntityClass::CreditCard, 5, 9, 0.9, "a"),
            Finding::new(EntityClass::Email, 0, 12, 0.5, "b"),
            Finding::new(EntityClass::Email, 20, 22, 0.5, "c"),
        ];
        // Ranked equal: the longer wins, then the more confident.
        resolve_ranked(&mut f, |_| 0);
        let kept: Vec<_> = f.iter().map(|f| f.rule).collect();
        assert_eq!(kept, ["b", "c"]);
    }

    /// The greedy resolution over the whole list, one finding at a time in
    /// rank order, each tested against every one kept before it.
    fn resolve_naively(found: &[Finding], rank: impl Fn(&Finding) -> u8) -> Vec<Finding> {
        let mut order: Vec<usize> = (0..found.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&found[a], &found[b]);
            rank(y)
                .cmp(&rank(x))
                .then((y.end - y.start).cmp(&(x.end - x.start)))
                .then(y.confidence.total_cmp(&x.confidence))
                .then(x.start.cmp(&y.start))
        });
        let mut kept: Vec<Finding> = Vec::new();
        for i in order {
            let f = &found[i];
            if f.end > f.start && !kept.iter().any(|k| k.start < f.end && f.start < k.end) {
                kept.push(f.clone());
            }
        }
        kept.sort_by_key(|f| f.start);
        kept
    }

    proptest::proptest! {
        /// Resolving each run of overlapping spans on its own keeps what
        /// resolving the whole list at once keeps.
        #[test]
        fn runs_resolve_as_the_whole_list_does(
            spans in proptest::collection::vec((0usize..60, 0usize..12, 0u8..3, 0u8..4), 0..40),
        ) {
            let found: Vec<Finding> = spans
                .iter()
                .map(|&(start, len, rank, conf)| {
                    let class = [EntityClass::Email, EntityClass::Phone, EntityClass::Person][usize::from(rank)];
                    Finding::new(class, start, start + len, f32::from(conf) / 4.0, "r")
                })
                .collect();
            let rank = |f: &Finding| match f.class {
                EntityClass::Email => 2,
                EntityClass::Phone => 1,
                _ => 0,
            };
            let mut fast = found.clone();
            resolve_ranked(&mut fast, rank);
            proptest::prop_assert_eq!(fast, resolve_naively(&found, rank));
        }
    }

    #[test]
    fn confidence_keys_order_as_total_cmp() {
        let values = [f32::NEG_INFINITY, -1.0, -0.5, -0.0, 0.0, 1e-30, 0.5, 0.9, 1.0, f32::INFINITY, f32::NAN];
        for a in values {
            for b in values {
                assert_eq!(total_key(a).cmp(&total_key(b)), a.total_cmp(&b), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn class_names_round_trip() {
        for c in EntityClass::ALL {
            assert_eq!(EntityClass::from_name(c.name()), Some(c));
        }
        assert_eq!(EntityClass::from_name("email"), None);
    }

    #[test]
    fn canonical_forms_ignore_case_and_separators() {
        assert_eq!(EntityClass::Email.canonical("Jane@Example.COM"), "jane@example.com");
        assert_eq!(EntityClass::CreditCard.canonical("4111-1111 1111-1111"), "4111111111111111");
    }
}
