//! Payment card numbers: digit runs of 13–19 digits, optionally grouped by
//! single spaces or dashes, that pass the Luhn check *and* fall in an
//! issuer's range with that issuer's lengths (DESIGN.md §4).

use super::bytescan::Marks;
use super::{is_word_byte, EntityClass, Finding};

const MIN_DIGITS: usize = 13;
const MAX_DIGITS: usize = 19;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardNetwork {
    Visa,
    Mastercard,
    Amex,
    Discover,
    Jcb,
    Diners,
    UnionPay,
}

impl CardNetwork {
    fn rule(self) -> &'static str {
        match self {
            CardNetwork::Visa => "credit_card.luhn.visa",
            CardNetwork::Mastercard => "credit_card.luhn.mastercard",
            CardNetwork::Amex => "credit_card.luhn.amex",
            CardNetwork::Discover => "credit_card.luhn.discover",
            CardNetwork::Jcb => "credit_card.luhn.jcb",
            CardNetwork::Diners => "credit_card.luhn.diners",
            CardNetwork::UnionPay => "credit_card.luhn.unionpay",
        }
    }

    /// The network's name as a finding subtype.
    pub fn subtype(self) -> &'static str {
        match self {
            CardNetwork::Visa => "visa",
            CardNetwork::Mastercard => "mastercard",
            CardNetwork::Amex => "amex",
            CardNetwork::Discover => "discover",
            CardNetwork::Jcb => "jcb",
            CardNetwork::Diners => "diners",
            CardNetwork::UnionPay => "unionpay",
        }
    }

    /// The issuer whose range and lengths `digits` (0–9 values) fit.
    pub fn of(digits: &[u8]) -> Option<CardNetwork> {
        let prefix = |n: usize| digits.iter().take(n).fold(0u32, |acc, &d| acc * 10 + u32::from(d));
        let len = digits.len();
        let (p2, p3, p4) = (prefix(2), prefix(3), prefix(4));
        let network = if digits.first() == Some(&4) {
            matches!(len, 13 | 16 | 19).then_some(CardNetwork::Visa)
        } else if p2 == 34 || p2 == 37 {
            (len == 15).then_some(CardNetwork::Amex)
        } else if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) {
            (len == 16).then_some(CardNetwork::Mastercard)
        } else if p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 {
            (16..=19).contains(&len).then_some(CardNetwork::Discover)
        } else if (3528..=3589).contains(&p4) {
            (16..=19).contains(&len).then_some(CardNetwork::Jcb)
        } else if (300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39 {
            (14..=19).contains(&len).then_some(CardNetwork::Diners)
        } else if p2 == 62 {
            (16..=19).contains(&len).then_some(CardNetwork::UnionPay)
        } else {
            None
        };
        network
    }
}

/// The Luhn (mod 10) check over digit values 0–9.
pub fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// Cards at the `digits` of `text`.
pub(super) fn detect(text: &str, digits: &Marks<'_>, out: &mut Vec<Finding>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(start) = digits.next(i) {
        // Most digit runs (dates, prices, ids) are too short for a card.
        // Where digits are marked, a run holds fewer than MIN_DIGITS if
        // the 2 * MIN_DIGITS - 1 bytes from its start do (one separator at
        // most between digits), and the run's first group is passed over.
        // (Bytes after the run only count too many, which `extent` sorts
        // out.)
        if let Some(window) = digits.window(start) {
            if (window & ((1 << (2 * MIN_DIGITS - 1)) - 1)).count_ones() < MIN_DIGITS as u32 {
                i = start + (!window).trailing_zeros() as usize;
                continue;
            }
        }
        // Otherwise the run is measured without copying its digits.
        let (end, total) = extent(bytes, start);
        i = end.max(start + 1);
        let glued_before = start > 0 && bytes.get(start - 1).copied().is_some_and(is_word_byte);
        if glued_before || total < MIN_DIGITS {
            continue;
        }
        let run = DigitRun::read(bytes, start);
        if let Some((end, network)) = run.longest_card(bytes) {
            let confidence = if has_context(bytes, start) { 0.99 } else { 0.9 };
            out.push(
                Finding::new(EntityClass::CreditCard, start, end, confidence, network.rule())
                    .with_subtype(network.subtype()),
            );
            i = end;
        }
    }
}

/// The digit groups of the run at `start` as `(start, end)` byte spans:
/// digits joined by single ` ` or `-`.
fn groups(bytes: &[u8], start: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut next = Some(start);
    std::iter::from_fn(move || {
        let from = next?;
        let end = from + bytes.get(from..).unwrap_or_default().iter().take_while(|b| b.is_ascii_digit()).count();
        let joined = matches!(bytes.get(end), Some(b' ' | b'-')) && bytes.get(end + 1).is_some_and(u8::is_ascii_digit);
        next = joined.then_some(end + 1);
        Some((from, end))
    })
}

/// Where the run at `start` ends and how many digits it has, reading no
/// further than the group that takes it past [`MAX_DIGITS`].
fn extent(bytes: &[u8], start: usize) -> (usize, usize) {
    let mut total = 0;
    let mut end = start;
    for (from, to) in groups(bytes, start) {
        total += to - from;
        end = to;
        if total > MAX_DIGITS {
            break;
        }
    }
    (end, total)
}

/// A run's digits, and where each group ends together with the number of
/// digits up to there.
struct DigitRun {
    digits: [u8; MAX_DIGITS],
    ends: [(usize, usize); MAX_DIGITS],
    groups: usize,
}

impl DigitRun {
    fn read(bytes: &[u8], start: usize) -> DigitRun {
        let mut run = DigitRun { digits: [0; MAX_DIGITS], ends: [(0, 0); MAX_DIGITS], groups: 0 };
        let mut total = 0usize;
        for (from, to) in groups(bytes, start) {
            for &b in bytes.get(from..to).unwrap_or_default() {
                if let Some(slot) = run.digits.get_mut(total) {
                    *slot = b - b'0';
                }
                total += 1;
            }
            if total > MAX_DIGITS {
                break;
            }
            if let Some(slot) = run.ends.get_mut(run.groups) {
                *slot = (to, total);
                run.groups += 1;
            }
        }
        run
    }

    /// The longest prefix ending at a group boundary that is a valid card.
    fn longest_card(&self, bytes: &[u8]) -> Option<(usize, CardNetwork)> {
        let ends = self.ends.get(..self.groups)?;
        ends.iter().rev().find_map(|&(end, n)| {
            if !(MIN_DIGITS..=MAX_DIGITS).contains(&n) {
                return None;
            }
            // The number must not run on into a word ("4111…1111abc").
            if bytes.get(end).copied().is_some_and(is_word_byte) {
                return None;
            }
            let digits = self.digits.get(..n)?;
            let network = CardNetwork::of(digits)?;
            luhn_valid(digits).then_some((end, network))
        })
    }
}

fn has_context(bytes: &[u8], start: usize) -> bool {
    let window = bytes.get(start.saturating_sub(32)..start).unwrap_or_default().to_ascii_lowercase();
    [&b"card"[..], b"visa", b"mastercard", b"amex", b"credit", b"debit", b"payment", b"cc"]
        .iter()
        .any(|w| window.windows(w.len()).any(|x| x == *w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &str, out: &mut Vec<Finding>) {
        detect(text, &Marks::new(text.as_bytes(), b'0', b'9', 1), out);
    }

    fn cards(text: &str) -> Vec<(&str, &'static str)> {
        let mut out = Vec::new();
        scan(text, &mut out);
        out.iter().map(|f| (&text[f.start..f.end], f.rule)).collect()
    }

    fn digits(s: &str) -> Vec<u8> {
        s.bytes().map(|b| b - b'0').collect()
    }

    /// The marked path's short-run test turns away no card the unmarked
    /// path finds, down to cards written a digit at a time.
    #[test]
    fn marked_and_unmarked_digits_find_the_same_cards() {
        let texts = [
            "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
            "on 2024-03-15 12:30 paid 4111 1111 1111 1111, ref 12-34",
            "9 9 9 9 9 9 9 9 9 9 9 9 then 5555-5555-5555-4444",
            "x12 4111 1111 1111 1111 and 378282246310005",
            "1234567 8901 / 4111111111111111",
        ];
        for text in texts {
            let mut spaced = String::new();
            // Every alignment against the 64-byte words of the marks.
            for pad in 0..70 {
                spaced.clear();
                spaced.extend(std::iter::repeat_n('.', pad));
                spaced.push_str(text);
                let found = |passes| {
                    let mut out = Vec::new();
                    detect(&spaced, &Marks::new(spaced.as_bytes(), b'0', b'9', passes), &mut out);
                    out.iter().map(|f| (f.start, f.end)).collect::<Vec<_>>()
                };
                assert_eq!(found(0), found(2), "{spaced}");
            }
        }
        assert_eq!(cards("4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1").len(), 1);
    }

    #[test]
    fn luhn_known_answers() {
        assert!(luhn_valid(&digits("79927398713")));
        assert!(!luhn_valid(&digits("79927398710")));
        assert!(!luhn_valid(&[]));
    }

    #[test]
    fn every_issuer_range_from_the_design() {
        let cases = [
            ("4111111111111111", CardNetwork::Visa),
            ("4222222222222", CardNetwork::Visa),
            ("5555555555554444", CardNetwork::Mastercard),
            ("2223003122003222", CardNetwork::Mastercard),
            ("2720992720992729", CardNetwork::Mastercard),
            ("378282246310005", CardNetwork::Amex),
            ("371449635398431", CardNetwork::Amex),
            ("6011111111111117", CardNetwork::Discover),
            ("6445644564456445", CardNetwork::Discover),
            ("3530111333300000", CardNetwork::Jcb),
            ("30569309025904", CardNetwork::Diners),
            ("36227206271667", CardNetwork::Diners),
            ("6200000000000005", CardNetwork::UnionPay),
        ];
        for (number, network) in cases {
            let d = digits(number);
            assert!(luhn_valid(&d), "{number} should pass Luhn");
            assert_eq!(CardNetwork::of(&d), Some(network), "{number}");
            assert_eq!(cards(number).len(), 1, "{number}");
        }
    }

    #[test]
    fn luhn_valid_numbers_outside_issuer_ranges_do_not_fire() {
        // Luhn-valid but 2721 is past Mastercard's 2-series and 1 is no issuer.
        for number in ["2721000000000004", "1234567812345670", "9999999999999995"] {
            assert!(luhn_valid(&digits(number)), "{number}");
            assert!(cards(number).is_empty(), "{number}");
        }
    }

    #[test]
    fn separators_spaces_and_dashes() {
        assert_eq!(cards("pay 4111 1111 1111 1111 now")[0].0, "4111 1111 1111 1111");
        assert_eq!(cards("pay 4111-1111-1111-1111.")[0].0, "4111-1111-1111-1111");
        assert_eq!(cards("amex 3782 822463 10005")[0].0, "3782 822463 10005");
    }

    #[test]
    fn trailing_groups_are_not_swallowed() {
        // Expiry month after the number: the card is the 16-digit prefix.
        assert_eq!(cards("4111 1111 1111 1111 12 27")[0].0, "4111 1111 1111 1111");
    }

    #[test]
    fn near_misses_do_not_fire() {
        for text in [
            "4111111111111112",           // Luhn fails
            "order 41111111111111110000", // too long
            "id4111111111111111",         // glued to a word
            "4111111111111111abc",
            "4111  1111 1111 1111", // double space breaks the grouping
            "411111111111",         // too short
            "ts 1700000000000",
        ] {
            assert!(cards(text).is_empty(), "{text}: {:?}", cards(text));
        }
    }

    #[test]
    fn context_raises_confidence() {
        let mut out = Vec::new();
        scan("my visa is 4111111111111111; and then, much later, ref 5555555555554444", &mut out);
        assert_eq!(out.len(), 2);
        assert!(out[0].confidence > out[1].confidence);
    }

    #[test]
    fn long_digit_runs_stay_linear() {
        assert!(cards(&"1".repeat(1 << 20)).is_empty());
        assert!(cards(&"1 ".repeat(1 << 19)).is_empty());
    }
}
