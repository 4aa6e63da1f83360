//! Many literals at once, ASCII case-insensitive: a bucketed shift-or
//! filter over two-byte units, then exact checks at its candidates.
//!
//! Why not the Aho-Corasick DFA it replaced: with ~200 trigger words the
//! DFA's table is over 600 KB, so prose walks it with a cache miss most
//! bytes. Here the work per two bytes of text is a shift of one 8-byte
//! word, one load from a 32 KB table, and a shift and an `or` on one
//! `u64`, with a (rarely taken) candidate test every eighth byte.
//!
//! How: the text is read as *units*, the byte pairs at even offsets, each
//! with three bits of the byte after it. Every literal is written as units
//! twice, once for each parity of where it may start: an occurrence at an
//! odd offset has its first byte in the second half of a unit, and what
//! lies outside the literal matches anything. Each such *variant* keeps at
//! most its first [`STAGES`] units, is right-aligned so its last unit sits
//! in the final stage, and is given one of eight buckets. The state holds
//! a bit per (stage, bucket); a zero says "some variant of this bucket
//! matches the text so far up to this stage". Each unit shifts the state up
//! a stage and ORs in the unit's table entry, whose zero bits are the
//! (stage, bucket) slots that unit can fill. A zero left in the final
//! stage is a candidate end of a window in that bucket; the bucket's
//! variants are then compared exactly.
//!
//! Units halve the loads and shifts of the filter this replaced, which
//! looked up every overlapping byte pair (callgrind, `mixed`, the keyword
//! pass with its checks: 8.48M instructions then, 6.64M now). The third
//! byte's bits are what keep that cheap: without them a three-letter word
//! at an even offset is one bare pair ("ag" for "age"), which English
//! prose is full of, and `mixed` gave 60,000 candidate checks, not 7,100.

/// Window length in units: one stage per unit, eight buckets per stage.
/// Table entries are the stages' 32 bits; the state is one `u64` whose
/// top bytes are not stages but overflow slots, see [`Literals::for_each`].
const STAGES: usize = 4;
const BUCKETS: usize = 8;
/// Units per step of the walk: one aligned 8-byte word of text. The final
/// stage of each of them must fit in the state above the stages.
const STEP: usize = 4;
const _: () = assert!(STAGES * BUCKETS == 32 && (STAGES + STEP - 1) * BUCKETS <= 64);

/// Bits of one byte's code in a unit: its low five bits. Letters keep
/// their case-folded identity (`A` and `a` share them); other bytes share a
/// code with some letter (digits with `p`–`y`, `-` with `m`, `.` with
/// `n`), which only adds candidates, since every candidate is checked
/// exactly.
const CODE_BITS: u32 = 5;
/// Bits kept of the byte after a unit: the low three of its code.
const PEEK_BITS: u32 = 3;
/// Table entries: a unit's index is its first byte's code in bits 0–4,
/// the byte after it in bits 5–7 and its second byte's code in bits 8–12,
/// so the indices of the four units of a word are the four `u16` lanes of
/// one masked word, see [`unit_lanes`].
const UNITS: usize = 1 << (2 * CODE_BITS + PEEK_BITS);
const CODE_LANES: u64 = 0x1F1F_1F1F_1F1F_1F1F;
/// [`peek`]'s bits, at bits 5–7 of each lane.
const PEEK_LANES: u64 = 0x00E0_00E0_00E0_00E0;
const _: () = assert!(PEEK_LANES & 0xFFFF == ((1 << PEEK_BITS) - 1) << CODE_BITS);

#[inline(always)]
fn code(b: u8) -> usize {
    usize::from(b & 0x1F)
}

/// The bits a unit keeps of the code of the byte after it.
#[inline(always)]
fn peek(code: usize) -> usize {
    code & ((1 << PEEK_BITS) - 1)
}

/// The table index of a unit: codes of its two bytes, bits of the next.
#[inline(always)]
fn unit_index(first: usize, second: usize, peek: usize) -> usize {
    second << 8 | peek << CODE_BITS | first
}

/// The table indices of the four units of `word` (eight bytes of text),
/// as its `u16` lanes; the low byte of `next` is the byte after it (zero
/// past the text).
#[inline(always)]
fn unit_lanes(word: u64, next: u64) -> u64 {
    // Byte `2j + 2`'s low bits to bits 5–7 of lane `j`.
    let peeks = (word >> (16 - CODE_BITS) | next << (64 - 16 + CODE_BITS)) & PEEK_LANES;
    word & CODE_LANES | peeks
}

/// The table entry at `index`; the mask keeps it in bounds, so `get`
/// compiles to a plain load.
#[inline(always)]
fn entry_at(table: &[u32; UNITS], index: u64) -> u64 {
    u64::from(table.get(index as usize & (UNITS - 1)).copied().unwrap_or(0))
}

/// The final stage's bits once a unit is in (zero: a window of that
/// bucket may end in the unit).
const FINAL: u32 = ((STAGES - 1) * BUCKETS) as u32;

/// A literal written as units from one parity of start.
#[derive(Clone, Copy, Debug)]
struct Variant {
    /// Up to its first eight bytes, each `| 0x20`, as a little-endian
    /// word: a candidate whose text differs from it there is turned away
    /// with one compare, before the exact one.
    folded: u64,
    /// The bytes of `folded` that are the literal's.
    mask: u64,
    /// Index into [`Literals::literals`].
    literal: u16,
    /// Bytes from the literal's start to the end of the window's last
    /// unit.
    reach: u8,
}

/// Sets bit `0x20` of every byte: letters fold as `eq_ignore_ascii_case`
/// folds them; other bytes may fold together, so a fold that agrees is
/// only a sign of a match.
const FOLD: u64 = 0x2020_2020_2020_2020;

/// One unit of a variant: codes of its two bytes and the peeked bits of
/// the next, each `None` where any byte may stand.
type Unit = [Option<usize>; 3];

/// A compiled set of literals.
#[derive(Clone)]
pub(crate) struct Literals {
    /// Per unit index: the (stage, bucket) bits that unit cannot fill.
    table: Box<[u32; UNITS]>,
    /// Per bucket and code of the first byte of a window's last unit: the
    /// variants whose window ends so, so a candidate is only compared with
    /// variants that fit the unit it ends in.
    buckets: Box<[Vec<Variant>]>,
    /// Lower-cased literals.
    literals: Vec<Box<[u8]>>,
}

impl std::fmt::Debug for Literals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Literals").field("literals", &self.literals.len()).finish()
    }
}

/// The units of `literal` starting `skip` (0 or 1) bytes into a unit, at
/// most [`STAGES`], and the bytes from its start to the end of the last.
fn units_of(literal: &[u8], skip: usize) -> (Vec<Unit>, usize) {
    let slots: Vec<Option<usize>> =
        std::iter::repeat_n(None, skip).chain(literal.iter().map(|&b| Some(code(b)))).collect();
    let slot = |i: usize| slots.get(i).copied().flatten();
    let mut units: Vec<Unit> =
        (0..slots.len().div_ceil(2)).map(|k| [slot(2 * k), slot(2 * k + 1), slot(2 * k + 2).map(peek)]).collect();
    // A last unit with its second byte outside the literal would let any
    // unit starting with that byte through the final stage; the unit
    // before it already peeks at that byte.
    if units.len() > 1 && units.last().is_some_and(|u| u[1].is_none()) {
        units.pop();
    }
    units.truncate(STAGES);
    let reach = 2 * units.len() - skip;
    (units, reach)
}

impl Literals {
    /// Compiles `literals` (empty ones are ignored; at most `u16::MAX`).
    pub(crate) fn new<S: AsRef<[u8]>>(literals: &[S]) -> Literals {
        let literals: Vec<Box<[u8]>> =
            literals.iter().take(usize::from(u16::MAX)).map(|l| l.as_ref().to_ascii_lowercase().into()).collect();
        let mut variants: Vec<(Variant, Vec<Unit>)> = Vec::new();
        for (i, literal) in literals.iter().enumerate().filter(|(_, l)| !l.is_empty()) {
            let head = literal.iter().take(8).rev().fold(0u64, |w, &b| w << 8 | u64::from(b));
            let mask = u64::MAX.checked_shr(64 - 8 * literal.len().min(8) as u32).unwrap_or(0);
            for skip in 0..2 {
                let (units, reach) = units_of(literal, skip);
                let variant = Variant { folded: (head | FOLD) & mask, mask, literal: i as u16, reach: reach as u8 };
                variants.push((variant, units));
            }
        }
        // Bucket by how many bits a window tests (fewest first): weak
        // windows match often, so they share buckets with each other
        // rather than make every bucket fire.
        let bits = |units: &[Unit]| -> u32 {
            let known = |u: &Unit| {
                [CODE_BITS, CODE_BITS, PEEK_BITS]
                    .iter()
                    .zip(u)
                    .filter(|(_, s)| s.is_some())
                    .map(|(b, _)| b)
                    .sum::<u32>()
            };
            units.iter().map(known).sum()
        };
        // Sorted as `(usize, usize)` pairs, as elsewhere in the engine: a
        // sort of the variants themselves added 29 KB of sort code to the
        // `.wasm`.
        let mut order: Vec<(usize, usize)> =
            variants.iter().enumerate().map(|(i, (_, units))| (bits(units) as usize, i)).collect();
        order.sort_unstable();
        let mut buckets: Box<[Vec<Variant>]> = vec![Vec::new(); BUCKETS << CODE_BITS].into();
        let per_bucket = variants.len().div_ceil(BUCKETS).max(1);
        // Built on the heap: `Box::new([..; UNITS])` would put a 32 KB
        // constant into the `.wasm`.
        let mut table: Box<[u32; UNITS]> =
            vec![u32::MAX; UNITS].into_boxed_slice().try_into().unwrap_or_else(|_| Box::new([u32::MAX; UNITS]));
        // The stages before a short window take any unit.
        let mut anything = u32::MAX;
        let each = |slot: Option<usize>, bits: u32| slot.map_or(0..1 << bits, |c| c..c + 1);
        for (rank, (variant, units)) in order.iter().filter_map(|&(_, i)| variants.get(i)).enumerate() {
            let bucket = (rank / per_bucket).min(BUCKETS - 1);
            let first_stage = STAGES - units.len();
            for stage in 0..first_stage {
                anything &= !(1u32 << (stage * BUCKETS + bucket));
            }
            for (k, &[first, second, peek]) in units.iter().enumerate() {
                let bit = 1u32 << ((first_stage + k) * BUCKETS + bucket);
                for a in each(first, CODE_BITS) {
                    for b in each(second, CODE_BITS) {
                        for c in each(peek, PEEK_BITS) {
                            if let Some(m) = table.get_mut(unit_index(a, b, c)) {
                                *m &= !bit;
                            }
                        }
                    }
                }
                if k + 1 == units.len() {
                    for a in each(first, CODE_BITS) {
                        if let Some(list) = buckets.get_mut(bucket << CODE_BITS | a) {
                            list.push(*variant);
                        }
                    }
                }
            }
        }
        table.iter_mut().for_each(|m| *m &= anything);
        Literals { table, buckets, literals }
    }

    /// Calls `found(start, literal)` for every occurrence of every literal
    /// (its index in the list given to [`Literals::new`]) in `text`,
    /// overlapping ones included, in order of the unit their windows end
    /// in.
    ///
    /// [`STEP`] units per step: entries have no bits above the stages, so
    /// after the step's shifts the state's top bytes keep the final stages
    /// of the step's earlier units, and one test sees the candidates of
    /// every unit of the step.
    pub(crate) fn for_each(&self, text: &[u8], mut found: impl FnMut(usize, usize)) {
        if self.literals.is_empty() {
            return;
        }
        let table = &*self.table;
        // Stages before the text are all "matched": windows that would
        // start before it are rejected by the exact check.
        let mut state = 0u64;
        let (words, tail) = text.as_chunks::<8>();
        // Each word with the first byte of the next (its units peek at
        // it); the last with the tail's first byte, zero at the end.
        let word = |w: &[u8; 8]| u64::from_le_bytes(*w);
        for (k, pair) in words.windows(2).enumerate() {
            if let [w, next] = pair {
                self.step(text, &mut state, k, word(w), word(next), &mut found);
            }
        }
        if let Some(last) = words.last() {
            let next = tail.first().copied().map_or(0, u64::from);
            self.step(text, &mut state, words.len() - 1, word(last), next, &mut found);
        }
        // The tail a unit at a time, zeros past the text.
        let at = |i: usize| text.get(i).copied().unwrap_or(0);
        let first_unit = (text.len() - tail.len()) / 2;
        for u in first_unit..text.len().div_ceil(2) {
            let index = unit_index(code(at(2 * u)), code(at(2 * u + 1)), peek(code(at(2 * u + 2))));
            state = state << BUCKETS | entry_at(table, index as u64);
            self.check(text, u, !(state >> FINAL) as u8, &mut found);
        }
    }

    /// The [`STEP`] units of the `k`th word of text, `word`; the low byte
    /// of `next` is the byte after it.
    #[inline(always)]
    fn step(&self, text: &[u8], state: &mut u64, k: usize, word: u64, next: u64, found: &mut impl FnMut(usize, usize)) {
        let lanes = unit_lanes(word, next);
        let add = (0..STEP).fold(0u64, |add, j| add << BUCKETS | entry_at(&self.table, lanes >> (16 * j) & 0xFFFF));
        *state = *state << (STEP * BUCKETS) | add;
        let finals = (*state >> FINAL) as u32;
        if finals != u32::MAX {
            for j in 0..STEP {
                let ends = !(finals >> (BUCKETS * (STEP - 1 - j))) as u8;
                // Tested here: most units of a step that fires have no
                // candidate, and the call cost more than the test.
                if ends != 0 {
                    self.check(text, STEP * k + j, ends, found);
                }
            }
        }
    }

    /// Exact checks of the buckets in `ends` for windows ending in unit
    /// `unit`.
    #[inline(never)]
    fn check(&self, text: &[u8], unit: usize, ends: u8, found: &mut impl FnMut(usize, usize)) {
        if ends == 0 {
            return;
        }
        let first = text.get(2 * unit).map_or(0, |&b| code(b));
        let mut ends = ends;
        while ends != 0 {
            let bucket = ends.trailing_zeros() as usize;
            ends &= ends - 1;
            for v in self.buckets.get(bucket << CODE_BITS | first).map_or(&[][..], Vec::as_slice) {
                let Some(start) = (2 * (unit + 1)).checked_sub(usize::from(v.reach)) else { continue };
                let head = text.get(start..start + 8).and_then(|w| <[u8; 8]>::try_from(w).ok());
                if head.is_some_and(|w| (u64::from_le_bytes(w) | FOLD) & v.mask != v.folded) {
                    continue;
                }
                let Some(literal) = self.literals.get(usize::from(v.literal)) else { continue };
                if text.get(start..start + literal.len()).is_some_and(|t| t.eq_ignore_ascii_case(literal)) {
                    found(start, usize::from(v.literal));
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

    /// The candidate test folds bytes with `| 0x20`, which also folds
    /// some non-letters together (`\r` and `-`, `@` and `` ` ``): only the
    /// exact compare decides.
    #[test]
    fn bytes_that_fold_together_are_told_apart() {
        let lits = ["sk-", "@x", "user@host"];
        for pad in 0..10 {
            let dots = ".".repeat(pad);
            assert!(all(&lits, &format!("{dots}sk\r `x USER`HOST")).is_empty());
            assert_eq!(all(&lits, &format!("{dots}SK- @X user@HOST")), [(pad, 0), (pad + 4, 1), (pad + 7, 2)]);
        }
    }

    /// A unit peeks at three bits of the byte after it: literals whose
    /// next byte differs only above those bits, at both parities of start.
    #[test]
    fn units_peek_at_the_next_byte_at_both_parities() {
        // 'e' (0x65) and 'm' (0x6D) share their low three bits; 'a' does not.
        let lits = ["age", "agm", "ag"];
        for pad in 0..6 {
            let dots = ".".repeat(pad);
            assert_eq!(all(&lits, &format!("{dots}age")), [(pad, 0), (pad, 2)]);
            assert_eq!(all(&lits, &format!("{dots}AGM")), [(pad, 1), (pad, 2)]);
            assert_eq!(all(&lits, &format!("{dots}aga")), [(pad, 2)]);
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
            lits in proptest::collection::vec("[a-dA-D_ \r@`-]{1,11}", 1..40),
            text in "[a-dA-D_ \r@`-]{0,200}",
        ) {
            let lits: Vec<&str> = lits.iter().map(String::as_str).collect();
            prop_assert_eq!(all(&lits, &text), naive(&lits, &text));
        }
    }
}
