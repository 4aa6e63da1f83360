//! Many literals at once, ASCII case-insensitive: a bucketed shift-or
//! filter over byte pairs, then exact checks at its candidates.
//!
//! Why not the Aho-Corasick DFA it replaced: with ~200 trigger words the
//! DFA's table is over 600 KB, so prose walks it with a cache miss most
//! bytes. Here the per-byte work is a shift and mask of one 8-byte word of
//! text, one load from a table whose used entries fill 8 KB, a shift and
//! an `or` on one `u64`, with a (rarely taken) candidate test every fourth
//! byte.
//!
//! How: every literal is cut to a *window* of its first [`STAGES`] bytes,
//! right-aligned so its last byte sits in the final stage, and given one of
//! eight buckets. The state holds a bit per (stage, bucket); a zero says
//! "some literal of this bucket matches the text so far up to this stage".
//! Each byte shifts the state up a stage and ORs in the table entry of the
//! pair (previous byte, this byte), whose zero bits are the (stage, bucket)
//! slots that pair can fill. A zero left in the final stage is a candidate
//! end of a window in that bucket; the bucket's literals are then compared
//! exactly. Comparing pairs rather than single bytes is what keeps prose,
//! where every letter is some word's letter, from lighting up every stage.

/// Window length: one stage per byte, eight buckets per stage. The state
/// is one `u64`; its top three bytes are not stages but overflow slots,
/// see [`Literals::for_each`]. Five stages and four bytes a step took the
/// fewest instructions on the `mixed` corpus (callgrind, filter and exact
/// checks: seven stages 12.8M, six 11.8M, five 10.7M, four 10.9M, where
/// shorter windows let more candidates through).
const STAGES: usize = 5;
const BUCKETS: usize = 8;
/// Bytes per step of the walk: the final stage and the overflow slots.
const STEP: usize = 64 / BUCKETS - STAGES + 1;
// Two steps take the eight bytes of one `u64` of text.
const _: () = assert!(2 * STEP == 8);

/// Bits of one byte's code in a pair: its low five bits. Letters keep
/// their case-folded identity (`A` and `a` share them); other bytes share a
/// code with some letter (digits with `p`–`y`, `-` with `m`, `.` with
/// `n`), which only adds candidates, since every candidate is checked
/// exactly.
const CODE_BITS: u32 = 5;
/// Table entries: a pair's index is its two bytes as a little-endian
/// `u16` with each byte's code kept (`cur << 8 | prev`), so a shift of
/// the step's word and one `and` make it; the index built from two codes
/// (`prev << 5 | cur`) cost a shift and an add more per byte (callgrind,
/// `mixed`: 37.37M -> 35.88M instructions a scan). Only 1024 of the 8192
/// entries are used: 8 KB in rows of 256 bytes, one per code of `cur`.
const PAIRS: usize = 1 << (8 + CODE_BITS);
const PAIR_MASK: u16 = 0x1F1F;

#[inline(always)]
fn code(b: u8) -> usize {
    usize::from(b & 0x1F)
}

/// The table index of the pair of codes (`prev`, `cur`).
#[inline(always)]
fn pair_of_codes(prev: usize, cur: usize) -> usize {
    cur << 8 | prev
}

/// The table entry of the pair of bytes (`prev`, `cur`). The mask keeps
/// the index in bounds, so `get` compiles to a plain load.
#[inline(always)]
fn entry(table: &[u64; PAIRS], prev: u8, cur: u8) -> u64 {
    entry_at(table, u16::from_le_bytes([prev, cur]))
}

/// The table entry of two bytes already read as a little-endian `u16`.
#[inline(always)]
fn entry_at(table: &[u64; PAIRS], pair: u16) -> u64 {
    table.get(usize::from(pair & PAIR_MASK) & (PAIRS - 1)).copied().unwrap_or(0)
}

/// The final stage's bits once a byte is in (zero: a window of that
/// bucket may end at the byte).
const FINAL: u32 = ((STAGES - 1) * BUCKETS) as u32;

/// A compiled set of literals.
#[derive(Clone)]
pub(crate) struct Literals {
    /// Per pair code: the (stage, bucket) bits that pair cannot fill.
    table: Box<[u64; PAIRS]>,
    /// Per bucket and code of a window's last byte: indices into
    /// `literals` of the literals whose window ends so, so a candidate is
    /// only compared with literals that end in the byte it ends in.
    buckets: Box<[Vec<u16>]>,
    /// Lower-cased literals and their window lengths.
    literals: Vec<(Box<[u8]>, usize)>,
}

impl std::fmt::Debug for Literals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Literals").field("literals", &self.literals.len()).finish()
    }
}

impl Literals {
    /// Compiles `literals` (empty ones are ignored; at most `u16::MAX`).
    pub(crate) fn new<S: AsRef<[u8]>>(literals: &[S]) -> Literals {
        let literals: Vec<(Box<[u8]>, usize)> = literals
            .iter()
            .take(usize::from(u16::MAX))
            .map(|l| {
                let lower: Box<[u8]> = l.as_ref().to_ascii_lowercase().into();
                let window = lower.len().min(STAGES);
                (lower, window)
            })
            .collect();
        // Bucket by window length (shortest first): short windows match
        // often, so they share buckets with each other rather than make
        // every bucket fire.
        let mut order: Vec<(usize, usize)> =
            literals.iter().enumerate().filter(|(_, l)| l.1 > 0).map(|(i, l)| (l.1, i)).collect();
        order.sort_unstable();
        let mut buckets: Box<[Vec<u16>]> = vec![Vec::new(); BUCKETS << CODE_BITS].into();
        let per_bucket = order.len().div_ceil(BUCKETS).max(1);
        // Built on the heap: `Box::new([..; PAIRS])` would put a 64 KB
        // constant into the `.wasm`.
        let mut table: Box<[u64; PAIRS]> =
            vec![u64::MAX; PAIRS].into_boxed_slice().try_into().unwrap_or_else(|_| Box::new([u64::MAX; PAIRS]));
        // The stages before a short literal's window take any pair.
        let mut anything = u64::MAX;
        for (rank, &(window, i)) in order.iter().enumerate() {
            let Some((literal, _)) = literals.get(i) else { continue };
            let Some(bytes) = literal.get(..window) else { continue };
            let bucket = (rank / per_bucket).min(BUCKETS - 1);
            let last = bytes.last().map_or(0, |&b| code(b));
            if let Some(list) = buckets.get_mut(bucket << CODE_BITS | last) {
                list.push(i as u16);
            }
            let first_stage = STAGES - window;
            for stage in 0..first_stage {
                anything &= !(1u64 << (stage * BUCKETS + bucket));
            }
            for (k, &b) in bytes.iter().enumerate() {
                let bit = 1u64 << ((first_stage + k) * BUCKETS + bucket);
                let cur = code(b);
                match k.checked_sub(1).and_then(|p| bytes.get(p)) {
                    // Any byte may come before the window.
                    None => (0..1 << CODE_BITS).for_each(|prev| {
                        if let Some(m) = table.get_mut(pair_of_codes(prev, cur)) {
                            *m &= !bit;
                        }
                    }),
                    Some(&prev) => {
                        if let Some(m) = table.get_mut(pair_of_codes(code(prev), cur)) {
                            *m &= !bit;
                        }
                    }
                }
            }
        }
        // The bytes above the stages are overflow slots: zero, so shifts
        // carry the final stage into them unchanged.
        table.iter_mut().for_each(|m| *m &= anything & (u64::MAX >> (BUCKETS * (STEP - 1))));
        Literals { table, buckets, literals }
    }

    /// Calls `found(start, literal)` for every occurrence of every literal
    /// (its index in the list given to [`Literals::new`]) in `text`,
    /// overlapping ones included, in order of where their windows end: by
    /// start only among literals of equal window length.
    ///
    /// [`STEP`] bytes per step: the table's bytes above the stages are
    /// zero, so after the step's shifts they keep the final stages of the
    /// step's earlier bytes, and one test of the top [`STEP`] bytes sees
    /// the candidates of every byte of the step.
    pub(crate) fn for_each(&self, text: &[u8], mut found: impl FnMut(usize, usize)) {
        if self.literals.is_empty() {
            return;
        }
        let table = &*self.table;
        // Stages before the text are all "matched": windows that would
        // start before it are rejected by the exact check.
        let mut state = 0u64;
        // Two steps a round, from one aligned 8-byte word of text; the
        // byte before the round (zero before the text) is the previous
        // word's top byte. (An unaligned 8-byte read at the byte before
        // each step, with its bounds test, cost 0.4M more instructions a
        // scan of `mixed` or of clean prose.)
        let (words, tail) = text.as_chunks::<8>();
        let mut before = 0u64;
        for (k, word) in words.iter().enumerate() {
            let word = u64::from_le_bytes(*word);
            // Pair `j` (bytes `j - 1` and `j` of the round) is the low
            // `u16` of `pairs >> 8 * j` up to `j = 6`, the top of `word`
            // for `j = 7`.
            let pairs = word << 8 | before;
            before = word >> 56;
            for half in 0..2 {
                let pair = |j: usize| match j {
                    7 => (word >> 48) as u16,
                    _ => (pairs >> (8 * j)) as u16,
                };
                let add = (0..STEP).fold(0u64, |add, j| add << BUCKETS | entry_at(table, pair(half * STEP + j)));
                state = state << (STEP * BUCKETS) | add;
                if state >> FINAL != u64::MAX >> FINAL {
                    let at = 8 * k + half * STEP;
                    for j in 0..STEP {
                        let shift = FINAL + (BUCKETS * (STEP - 1 - j)) as u32;
                        let ends = !(state >> shift) as u8;
                        // Tested here: most bytes of a step that fires have
                        // no candidate, and the call cost more than the test.
                        if ends != 0 {
                            self.check(text, at + j, ends, &mut found);
                        }
                    }
                }
            }
        }
        // The tail a byte at a time.
        for i in text.len() - tail.len()..text.len() {
            let prev = i.checked_sub(1).and_then(|p| text.get(p)).copied().unwrap_or(0);
            let cur = text.get(i).copied().unwrap_or(0);
            state = state << BUCKETS | entry(table, prev, cur);
            self.check(text, i, !(state >> FINAL) as u8, &mut found);
        }
    }

    /// Exact checks of the buckets in `ends` for windows ending at `i`.
    #[inline(never)]
    fn check(&self, text: &[u8], i: usize, ends: u8, found: &mut impl FnMut(usize, usize)) {
        if ends == 0 {
            return;
        }
        let last = text.get(i).map_or(0, |&b| code(b));
        for bucket in 0..BUCKETS {
            if ends & (1 << bucket) == 0 {
                continue;
            }
            for &l in self.buckets.get(bucket << CODE_BITS | last).map_or(&[][..], Vec::as_slice) {
                let Some((literal, window)) = self.literals.get(usize::from(l)) else { continue };
                let Some(start) = (i + 1).checked_sub(*window) else { continue };
                let matches = text.get(start..start + literal.len()).is_some_and(|t| t.eq_ignore_ascii_case(literal));
                if matches {
                    found(start, usize::from(l));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(lits: &[&str], text: &str) -> Vec<(usize, usize)> {
        let set = Literals::new(lits);
        let mut out = Vec::new();
        set.for_each(text.as_bytes(), |s, l| out.push((s, l)));
        out.sort_unstable();
        out
    }

    /// Every occurrence, overlapping, by brute force.
    fn naive(lits: &[&str], text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for s in 0..text.len() {
            for (l, lit) in lits.iter().enumerate() {
                if !lit.is_empty()
                    && text.as_bytes().get(s..s + lit.len()).is_some_and(|t| t.eq_ignore_ascii_case(lit.as_bytes()))
                {
                    out.push((s, l));
                }
            }
        }
        out
    }

    #[test]
    fn finds_short_long_and_overlapping_literals_in_any_case() {
        let lits = ["sk-", "sk-proj-", "date of birth", "ab", "ghp_"];
        let text = "Sk-PROJ-x date OF birth ab GHP_y";
        assert_eq!(all(&lits, text), [(0, 0), (0, 1), (10, 2), (24, 3), (27, 4)]);
    }

    #[test]
    fn literals_at_the_very_start_and_end_are_found() {
        assert_eq!(all(&["ab", "abcdefghijk"], "ab"), [(0, 0)]);
        assert_eq!(all(&["ab", "abcdefghijk"], "abcdefghijk"), [(0, 0), (0, 1)]);
        assert_eq!(all(&["xyz"], "..xyz"), [(2, 0)]);
    }

    #[test]
    fn bytes_without_a_code_of_their_own_still_match_exactly() {
        // Bytes that are not letters share a code with some letter in the filter.
        assert_eq!(all(&["é|x", "a\u{7f}"], "-é|x a\u{7f}"), [(1, 0), (6, 1)]);
    }

    /// Literals that start and end at every offset of the 8-byte rounds,
    /// and in the tail after the last whole round.
    #[test]
    fn literals_across_round_boundaries_are_found() {
        let lits = ["xy", "abcde", "abcdefghij", "ghp_"];
        for pad in 0..24 {
            for (l, lit) in lits.iter().enumerate() {
                for tail in ["", "..", ".........."] {
                    let text = format!("{}{}{tail}", ".".repeat(pad), lit.to_uppercase());
                    assert_eq!(all(&lits, &text), naive(&lits, &text), "{text:?}");
                    assert!(all(&lits, &text).contains(&(pad, l)), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn empty_sets_and_empty_literals_find_nothing() {
        assert!(all(&[], "anything").is_empty());
        assert!(all(&[""], "anything").is_empty());
        // An empty text has no step to read the byte before.
        assert!(all(&["ab"], "").is_empty());
    }

    proptest! {
        #[test]
        fn agrees_with_brute_force(
            lits in proptest::collection::vec("[a-dA-D_ -]{1,11}", 1..40),
            text in "[a-dA-D_ -]{0,200}",
        ) {
            let lits: Vec<&str> = lits.iter().map(String::as_str).collect();
            prop_assert_eq!(all(&lits, &text), naive(&lits, &text));
        }
    }
}
