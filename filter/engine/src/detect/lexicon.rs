//! Word lists the context detectors use. Written for meshward; short on
//! purpose: they are cues that raise or gate a finding, not a dictionary.

/// Common given names across the English-speaking world, Western Europe and
/// India. A lexicon hit only fires together with a capitalised surname (or a
/// greeting, title, sign-off or "my name is" cue).
pub(crate) const FIRST_NAMES: &[&str] = &[
    "aarav",
    "aditi",
    "aditya",
    "ahmed",
    "aisha",
    "alan",
    "albert",
    "alex",
    "alexander",
    "alice",
    "alicia",
    "amanda",
    "amelia",
    "amit",
    "amy",
    "ana",
    "andrea",
    "andrew",
    "angela",
    "anna",
    "anne",
    "anthony",
    "anton",
    "arjun",
    "ashley",
    "barbara",
    "ben",
    "benjamin",
    "beth",
    "brian",
    "bruno",
    "camille",
    "carlos",
    "carol",
    "caroline",
    "catherine",
    "charles",
    "charlotte",
    "chloe",
    "chris",
    "christian",
    "christopher",
    "claire",
    "claudia",
    "daniel",
    "david",
    "deborah",
    "deepak",
    "diana",
    "diego",
    "dorothy",
    "edward",
    "elena",
    "elizabeth",
    "ella",
    "emily",
    "emma",
    "eric",
    "ethan",
    "eva",
    "fatima",
    "felix",
    "fiona",
    "francesca",
    "frank",
    "gabriel",
    "george",
    "grace",
    "greta",
    "hannah",
    "harry",
    "heather",
    "helen",
    "henry",
    "hiroshi",
    "ian",
    "isabella",
    "isla",
    "jack",
    "jacob",
    "james",
    "jane",
    "janet",
    "jason",
    "jennifer",
    "jessica",
    "joan",
    "john",
    "jonathan",
    "jose",
    "joseph",
    "joshua",
    "juan",
    "julia",
    "julien",
    "karen",
    "kate",
    "katherine",
    "kevin",
    "kimberly",
    "klaus",
    "laura",
    "lauren",
    "leah",
    "liam",
    "linda",
    "lisa",
    "lucas",
    "lucy",
    "luis",
    "lukas",
    "maria",
    "mark",
    "martin",
    "mary",
    "matthew",
    "maximilian",
    "megan",
    "melissa",
    "mia",
    "michael",
    "michelle",
    "mohammed",
    "muhammad",
    "nancy",
    "natalie",
    "nathan",
    "nicholas",
    "nicole",
    "noah",
    "oliver",
    "olivia",
    "omar",
    "oscar",
    "patricia",
    "patrick",
    "paul",
    "peter",
    "pierre",
    "priya",
    "rachel",
    "rahul",
    "raj",
    "rebecca",
    "richard",
    "robert",
    "ronald",
    "rosa",
    "ruth",
    "ryan",
    "samantha",
    "samuel",
    "sandra",
    "sarah",
    "scott",
    "sebastian",
    "sharon",
    "sofia",
    "sophie",
    "stefan",
    "stephanie",
    "steven",
    "susan",
    "thomas",
    "timothy",
    "tom",
    "victoria",
    "vikram",
    "wei",
    "william",
    "yuki",
    "zoe",
];

/// Capitalised words that follow a name cue but are not names.
pub(crate) const NOT_NAMES: &[&str] = &[
    "a",
    "all",
    "an",
    "and",
    "any",
    "april",
    "are",
    "as",
    "at",
    "august",
    "be",
    "best",
    "but",
    "by",
    "can",
    "could",
    "customer",
    "dear",
    "december",
    "do",
    "doctor",
    "does",
    "everyone",
    "february",
    "for",
    "friday",
    "from",
    "good",
    "have",
    "hello",
    "here",
    "hey",
    "hi",
    "how",
    "i",
    "if",
    "in",
    "is",
    "it",
    "january",
    "july",
    "june",
    "kind",
    "madam",
    "march",
    "may",
    "monday",
    "my",
    "no",
    "not",
    "november",
    "october",
    "of",
    "ok",
    "on",
    "or",
    "please",
    "regards",
    "saturday",
    "september",
    "sir",
    "so",
    "street",
    "sunday",
    "support",
    "team",
    "thank",
    "thanks",
    "that",
    "the",
    "there",
    "this",
    "thursday",
    "to",
    "today",
    "tuesday",
    "user",
    "we",
    "wednesday",
    "what",
    "when",
    "where",
    "who",
    "will",
    "with",
    "world",
    "yes",
    "you",
    "your",
];

/// Health conditions and clinical terms (matched as whole words or stems).
pub(crate) const CONDITIONS: &[&str] = &[
    "adhd",
    "alzheimer",
    "anemia",
    "anorexia",
    "anxiety disorder",
    "arthritis",
    "asthma",
    "autism",
    "bipolar",
    "bulimia",
    "cancer",
    "chemotherapy",
    "chlamydia",
    "cirrhosis",
    "copd",
    "covid-19",
    "crohn",
    "cystic fibrosis",
    "dementia",
    "depression",
    "diabetes",
    "dialysis",
    "eating disorder",
    "eczema",
    "epilepsy",
    "fibromyalgia",
    "glaucoma",
    "gonorrhea",
    "hepatitis",
    "herpes",
    "hiv",
    "hypertension",
    "infertility",
    "insulin",
    "leukemia",
    "lupus",
    "lymphoma",
    "melanoma",
    "migraine",
    "multiple sclerosis",
    "ocd",
    "parkinson",
    "pneumonia",
    "post-traumatic stress",
    "pregnant",
    "psoriasis",
    "ptsd",
    "schizophrenia",
    "sickle cell",
    "stroke",
    "syphilis",
    "tuberculosis",
    "tumor",
    "tumour",
    "type 1 diabetes",
    "type 2 diabetes",
];

/// Street types for addresses, lower case, with common abbreviations.
pub(crate) const STREET_TYPES: &[&str] = &[
    "alley",
    "ave",
    "avenue",
    "blvd",
    "boulevard",
    "circuit",
    "cl",
    "close",
    "court",
    "cres",
    "crescent",
    "ct",
    "dr",
    "drive",
    "esplanade",
    "grove",
    "highway",
    "hwy",
    "lane",
    "ln",
    "parade",
    "parkway",
    "pde",
    "pkwy",
    "pl",
    "place",
    "rd",
    "road",
    "sq",
    "square",
    "st",
    "strasse",
    "straße",
    "street",
    "tce",
    "terrace",
    "way",
];

/// Australian states and territories (postcode 4 digits follows).
pub(crate) const AU_STATES: &[&str] = &["ACT", "NSW", "NT", "QLD", "SA", "TAS", "VIC", "WA"];

/// US state abbreviations (ZIP code follows).
pub(crate) const US_STATES: &[&str] = &[
    "AK", "AL", "AR", "AZ", "CA", "CO", "CT", "DC", "DE", "FL", "GA", "HI", "IA", "ID", "IL", "IN", "KS", "KY", "LA",
    "MA", "MD", "ME", "MI", "MN", "MO", "MS", "MT", "NC", "ND", "NE", "NH", "NJ", "NM", "NV", "NY", "OH", "OK", "OR",
    "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VA", "VT", "WA", "WI", "WV", "WY",
];

/// Month names and abbreviations, lower case, with their number.
pub(crate) const MONTHS: &[(&str, u8)] = &[
    ("january", 1),
    ("february", 2),
    ("march", 3),
    ("april", 4),
    ("may", 5),
    ("june", 6),
    ("july", 7),
    ("august", 8),
    ("september", 9),
    ("october", 10),
    ("november", 11),
    ("december", 12),
    ("jan", 1),
    ("feb", 2),
    ("mar", 3),
    ("apr", 4),
    ("jun", 6),
    ("jul", 7),
    ("aug", 8),
    ("sep", 9),
    ("sept", 9),
    ("oct", 10),
    ("nov", 11),
    ("dec", 12),
];

/// Whether `word` is in `list` (lower case, sorted: see the test),
/// ASCII case-insensitively; a binary search over a lower-cased stack copy.
/// The reference [`WordSet`] is tested against.
#[cfg(test)]
pub(crate) fn contains_ci(list: &[&str], word: &[u8]) -> bool {
    let mut buf = [0u8; 32];
    let Some(lower) = buf.get_mut(..word.len()) else {
        return false;
    };
    for (d, s) in lower.iter_mut().zip(word) {
        *d = s.to_ascii_lowercase();
    }
    list.binary_search_by(|w| w.as_bytes().cmp(lower)).is_ok()
}

/// A word list looked up by hash: a Bloom filter first, then one slot of
/// an open-addressed table and one compare. The person pass looks up
/// every capitalised word in [`FIRST_NAMES`] and [`NOT_NAMES`]; most are in
/// neither, and a string binary search's compares were a tenth of a whole
/// scan. Sentence-start words ("The", "Also") are in [`NOT_NAMES`] and pass
/// the Bloom filter, so the table answers them in one probe where a binary
/// search over the hashes took eight. Answers are exact (the final
/// compare), as the sorted list's binary search.
pub(crate) struct WordSet {
    /// `(hash, word)` slots, a power of two at least twice the list; `None`
    /// ends a probe sequence.
    slots: Vec<Option<(u64, &'static str)>>,
    bloom: [u64; 64],
}

impl WordSet {
    fn new(list: &'static [&'static str]) -> WordSet {
        let mut bloom = [0u64; 64];
        let mut slots = vec![None; (list.len() * 2).next_power_of_two().max(2)];
        let mask = slots.len() - 1;
        for w in list {
            let Some(h) = fold_hash(w.as_bytes()) else { continue };
            for bit in bloom_bits(h) {
                if let Some(slot) = bloom.get_mut(bit / 64) {
                    *slot |= 1 << (bit % 64);
                }
            }
            // Linear probing; the table is at most half full, so a free
            // slot is always found.
            let mut i = slot_of(h, mask);
            while let Some(Some(_)) = slots.get(i) {
                i = (i + 1) & mask;
            }
            if let Some(slot) = slots.get_mut(i) {
                *slot = Some((h, *w));
            }
        }
        WordSet { slots, bloom }
    }

    /// Whether `word` is in the list, ASCII case-insensitively.
    pub(crate) fn contains(&self, word: &[u8]) -> bool {
        fold_hash(word).is_some_and(|h| self.contains_hashed(h, word))
    }

    /// [`WordSet::contains`] for the word `bytes[start..end]`. A word of at
    /// most eight bytes with eight bytes of text from its start is hashed
    /// from one read of them: the person pass looks up every capitalised
    /// word, and hashing was most of a lookup (the Bloom filter turns away
    /// all but a few hundred of the `mixed` corpus's 16,000).
    #[inline]
    pub(crate) fn contains_in(&self, bytes: &[u8], start: usize, end: usize) -> bool {
        let Some(word) = bytes.get(start..end) else { return false };
        let read = bytes.get(start..start + 8).and_then(|w| <[u8; 8]>::try_from(w).ok());
        match read {
            Some(read) if word.len() <= 8 => {
                let keep = u64::MAX.checked_shr(8 * (8 - word.len() as u32)).unwrap_or(0);
                self.contains_hashed(short_hash(word.len(), u64::from_le_bytes(read) & keep), word)
            }
            _ => self.contains(word),
        }
    }

    #[inline]
    fn contains_hashed(&self, h: u64, word: &[u8]) -> bool {
        let maybe =
            bloom_bits(h).iter().all(|&bit| self.bloom.get(bit / 64).is_some_and(|s| s & (1 << (bit % 64)) != 0));
        maybe && self.probe(h, word)
    }

    #[inline(never)]
    fn probe(&self, h: u64, word: &[u8]) -> bool {
        let mask = self.slots.len() - 1;
        let mut i = slot_of(h, mask);
        while let Some(Some((k, w))) = self.slots.get(i) {
            if *k == h && w.as_bytes().eq_ignore_ascii_case(word) {
                return true;
            }
            i = (i + 1) & mask;
        }
        false
    }
}

fn slot_of(h: u64, mask: usize) -> usize {
    // The high bits: the low ones also pick the Bloom bits.
    (h >> 40) as usize & mask
}

/// A hash of the word with ASCII case folded, eight bytes at a time (this
/// runs at every capitalised word of a scan, where a byte-at-a-time FNV
/// was a visible cost); `None` past 32 bytes (no list word is that long).
/// Folding sets bit 0x20 of every byte: letters fold as
/// `eq_ignore_ascii_case` folds them, other bytes may share a hash, which
/// the comparison after a probe sorts out.
fn fold_hash(word: &[u8]) -> Option<u64> {
    if word.len() > 32 {
        return None;
    }
    let mut h = start_hash(word.len());
    let (full, tail) = word.as_chunks::<8>();
    full.iter().for_each(|chunk| h = mix(h, u64::from_le_bytes(*chunk)));
    if !tail.is_empty() {
        // A fold, not a copy into a buffer: LLVM called `memcpy` for that
        // (a quarter of a lookup's instructions).
        h = mix(h, tail.iter().rev().fold(0, |w, &b| w << 8 | u64::from(b)));
    }
    Some(finish_hash(h))
}

/// [`fold_hash`] of a word of `len` bytes, `1..=8`, given as the low bytes
/// of `chunk` (the bytes above it zero).
#[inline(always)]
fn short_hash(len: usize, chunk: u64) -> u64 {
    finish_hash(mix(start_hash(len), chunk))
}

#[inline(always)]
fn start_hash(len: usize) -> u64 {
    (len as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// One eight-byte chunk into the hash, case folded.
#[inline(always)]
fn mix(h: u64, chunk: u64) -> u64 {
    (h ^ (chunk | 0x2020_2020_2020_2020)).wrapping_mul(0xFF51_AFD7_ED55_8CCD).rotate_left(31)
}

#[inline(always)]
fn finish_hash(h: u64) -> u64 {
    let h = (h ^ (h >> 33)).wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

fn bloom_bits(h: u64) -> [usize; 2] {
    [(h & 4095) as usize, ((h >> 32) & 4095) as usize]
}

pub(crate) static FIRST_NAME_SET: std::sync::LazyLock<WordSet> = std::sync::LazyLock::new(|| WordSet::new(FIRST_NAMES));
pub(crate) static NOT_NAME_SET: std::sync::LazyLock<WordSet> = std::sync::LazyLock::new(|| WordSet::new(NOT_NAMES));
pub(crate) static STREET_TYPE_SET: std::sync::LazyLock<WordSet> =
    std::sync::LazyLock::new(|| WordSet::new(STREET_TYPES));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_lower_case_and_unique() {
        for list in [FIRST_NAMES, NOT_NAMES, CONDITIONS, STREET_TYPES] {
            for w in list {
                assert_eq!(*w, w.to_lowercase(), "{w}");
            }
            assert!(list.windows(2).all(|p| p[0].as_bytes() < p[1].as_bytes()), "sorted and unique: {list:?}");
        }
        assert!(contains_ci(STREET_TYPES, b"Street"));
        assert!(!contains_ci(STREET_TYPES, b"Streets"));
        assert!(contains_ci(FIRST_NAMES, b"ZOE") && contains_ci(NOT_NAMES, b"The"));
    }

    #[test]
    fn word_sets_answer_like_the_lists() {
        for (set, list) in
            [(&*FIRST_NAME_SET, FIRST_NAMES), (&*NOT_NAME_SET, NOT_NAMES), (&*STREET_TYPE_SET, STREET_TYPES)]
        {
            for w in list {
                assert!(set.contains(w.as_bytes()) && set.contains(w.to_uppercase().as_bytes()), "{w}");
                let longer = format!("{w}x");
                assert_eq!(set.contains(longer.as_bytes()), contains_ci(list, longer.as_bytes()), "{longer}");
            }
            for w in ["", "Zzz", "Priyanka", "The", "Street", "Streets", "Mary", "a".repeat(40).as_str()] {
                assert_eq!(set.contains(w.as_bytes()), contains_ci(list, w.as_bytes()), "{w}");
            }
        }
    }

    /// The word read from its text (one 8-byte read where the text has
    /// them, else the slice) answers as the slice does: words of every
    /// length, with text after them and at the very end.
    #[test]
    fn words_in_text_answer_like_words() {
        for (set, list) in [(&*FIRST_NAME_SET, FIRST_NAMES), (&*STREET_TYPE_SET, STREET_TYPES)] {
            let words = list.iter().map(|w| w.to_string()).chain(list.iter().map(|w| w.to_uppercase()));
            let others = ["x", "Zz", "Marya", "Jo", "Annabell", "Christopherx", "Rd"].map(String::from);
            for w in words.chain(others) {
                for after in ["", ".", " and the rest of a sentence", "Q"] {
                    let text = format!("Dear {w}{after}");
                    let (start, end) = (5, 5 + w.len());
                    let want = contains_ci(list, w.as_bytes());
                    assert_eq!(set.contains_in(text.as_bytes(), start, end), want, "{text:?}");
                }
            }
            assert!(!set.contains_in(b"abc", 2, 9));
        }
    }
}
