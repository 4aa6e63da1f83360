//! Number-shaped classes over one shared pass of digit runs: phones, US SSN,
//! AU TFN/ABN/ACN/Medicare, IPv4 (and IPv6 around colons), IBAN and UK
//! NINO (letters just before the digits), street addresses and postcodes.
//!
//! A *token* is a run of digit groups joined by single separators (space,
//! `-`, `.`, `/`, parentheses). Candidates are contiguous group ranges that
//! start and end at word edges, at most [`MAX_GROUPS`] groups and
//! [`MAX_DIGITS`] digits, tried longest first; the first validator that
//! accepts a range wins and the scan continues after it. Work per group is
//! bounded, so a megabyte of digits costs a linear pass.

use super::lexicon::{AU_STATES, STREET_TYPE_SET, US_STATES};
use super::{at, window_has, ClassMask, Ctx, EntityClass, Finding};

const MAX_GROUPS: usize = 8;
const MAX_DIGITS: usize = 24;

const SSN_CTX: &[&str] = &["ssn", "social security", "ss#", "ss no"];
const TFN_CTX: &[&str] = &["tfn", "tax file"];
const ABN_CTX: &[&str] = &["abn", "business number"];
const ACN_CTX: &[&str] = &["acn", "company number"];
const MEDICARE_CTX: &[&str] = &["medicare"];
const NINO_CTX: &[&str] = &["national insurance", "nino", "ni number", "ni no"];
const PHONE_CTX: &[&str] = &[
    "phone",
    "call",
    "mobile",
    "mob",
    "tel",
    "telephone",
    "cell",
    "text",
    "whatsapp",
    "fax",
    "ring",
    "contact",
    "sms",
];
const IP_CTX: &[&str] = &["ip", "ipv4", "ipv6", "address", "host", "server", "client", "from", "addr"];
const VERSION_CTX: &[&str] = &["version", "ver", "v", "release", "build", "firmware", "sdk", "python", "node"];
const NEG_CTX: &[&str] = &[
    "order",
    "invoice",
    "ref",
    "reference",
    "tracking",
    "sku",
    "item",
    "ticket",
    "id",
    "serial",
    "part",
    "model",
    "transaction",
    "confirmation",
    "booking",
    "po",
    "batch",
    "build",
    "version",
    "account",
    "acct",
    "case",
    "claim",
    "receipt",
    "isbn",
    "txn",
    "issue",
    "pr",
    "commit",
    "timestamp",
    "epoch",
    "ts",
    "port",
    "pid",
    "size",
    "bytes",
    "total",
];

#[derive(Debug, Clone, Copy, Default)]
struct Group {
    start: usize,
    end: usize,
    /// The separator before this group: 0 for the first, else one of
    /// `b' '`, `b'-'`, `b'.'`, `b'/'`, `b')'` (a closing parenthesis, maybe
    /// with a space), `b'('` (" (" before the group).
    sep: u8,
    /// Offset of this group's first digit in the token's digit buffer.
    doff: usize,
}

/// A candidate range of groups.
struct View<'a> {
    digits: &'a [u8],
    lens: [u8; MAX_GROUPS],
    seps: [u8; MAX_GROUPS],
    n: usize,
    start: usize,
    end: usize,
    plus: bool,
    paren_first: bool,
    glued_before: bool,
    whole: bool,
}

impl View<'_> {
    fn lens(&self) -> &[u8] {
        self.lens.get(..self.n).unwrap_or_default()
    }

    /// The separators between groups (without the first group's).
    fn inner_seps(&self) -> &[u8] {
        self.seps.get(1..self.n).unwrap_or_default()
    }

    fn d(&self, i: usize) -> u8 {
        self.digits.get(i).copied().unwrap_or(255)
    }

    fn value(&self, from: usize, to: usize) -> u32 {
        self.digits.get(from..to).unwrap_or_default().iter().fold(0u32, |a, &d| a.saturating_mul(10) + u32::from(d))
    }

    fn seps_all(&self, allowed: &[u8]) -> bool {
        self.inner_seps().iter().all(|s| allowed.contains(s))
    }

    fn seps_same(&self) -> bool {
        self.inner_seps().windows(2).all(|w| w.first() == w.last())
    }
}

/// The classes this pass finds (custom detectors may name them too).
const NUMERIC: [EntityClass; 11] = [
    EntityClass::Phone,
    EntityClass::UsSsn,
    EntityClass::AuTfn,
    EntityClass::AuAbn,
    EntityClass::AuAcn,
    EntityClass::AuMedicare,
    EntityClass::IpAddress,
    EntityClass::Iban,
    EntityClass::UkNino,
    EntityClass::Address,
    EntityClass::Custom,
];

/// Whether any class of this pass is enabled.
pub(crate) fn wanted(enabled: ClassMask) -> bool {
    NUMERIC.iter().any(|&c| c != EntityClass::Custom && enabled.has(c))
}

pub(crate) fn detect(cx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let enabled = cx.enabled;
    if !wanted(enabled) {
        return;
    }
    let bytes = cx.bytes;
    let mut groups: Vec<Group> = Vec::new();
    let mut digits: Vec<u8> = Vec::new();
    let mut consumed = 0usize;
    let mut v6_checked = 0usize;
    let mut i = 0usize;
    while i < bytes.len() {
        // Find the next digit.
        let Some(start) = cx.digits.next(i) else {
            break;
        };
        let end = read_token(bytes, start, &mut groups);
        i = end.max(start + 1);
        if start < consumed {
            continue;
        }
        if enabled.has(EntityClass::IpAddress) && end > v6_checked {
            let near_colon = at(bytes, end) == b':' || (start > 0 && at(bytes, start - 1) == b':');
            let hex_before = start > 0 && at(bytes, start - 1).is_ascii_hexdigit();
            if near_colon || (hex_before && at(bytes, end) == b':') {
                let (found, checked) = ipv6(bytes, start, v6_checked);
                v6_checked = checked;
                if let Some(f) = found {
                    consumed = f.end;
                    i = i.max(f.end);
                    out.push(f);
                    continue;
                }
            }
        }
        if let Some(f) = letter_prefixed(cx, start, end, &groups) {
            consumed = f.end;
            i = i.max(f.end);
            out.push(f);
            continue;
        }
        if enabled.has(EntityClass::Address) {
            if let Some(f) = street_address(bytes, start, end, &groups).or_else(|| locality(bytes, start, &groups)) {
                consumed = f.end;
                i = i.max(f.end);
                out.push(f);
                continue;
            }
        }
        if may_hold_number(bytes, start, &groups) {
            ranges(cx, start, &groups, &mut digits, out, &mut consumed);
        }
        consumed = consumed.max(end);
        i = i.max(consumed);
    }
}

/// Reads the token at `start` (a digit) into `groups`; returns its end.
/// Its digit values are read only if a range of it may be a number (see
/// [`token_digits`]): most tokens are years, times and counts.
fn read_token(bytes: &[u8], start: usize, groups: &mut Vec<Group>) -> usize {
    groups.clear();
    let mut pos = start;
    let mut sep = 0u8;
    let mut doff = 0;
    loop {
        let gstart = pos;
        let run = bytes.get(pos..).unwrap_or_default().iter().take_while(|b| b.is_ascii_digit()).count();
        pos += run;
        groups.push(Group { start: gstart, end: pos, sep, doff });
        doff += run;
        let (a, b, c) = (at(bytes, pos), at(bytes, pos + 1), at(bytes, pos + 2));
        let (next_sep, skip) = match (a, b, c) {
            (b' ' | b'-' | b'.' | b'/', d, _) if d.is_ascii_digit() => (a, 1),
            (b')', d, _) if d.is_ascii_digit() => (b')', 1),
            (b')', b' ' | b'-', d) if d.is_ascii_digit() => (b')', 2),
            (b' ', b'(', d) if d.is_ascii_digit() => (b'(', 2),
            _ => break,
        };
        sep = next_sep;
        pos += skip;
    }
    pos
}

/// The digit values of the token read into `groups`, in `digits`.
fn token_digits(bytes: &[u8], groups: &[Group], digits: &mut Vec<u8>) {
    digits.clear();
    for g in groups {
        digits.extend(bytes.get(g.start..g.end).unwrap_or_default().iter().map(|b| b - b'0'));
    }
}

/// Whether a cue word is in the same clause, at most 40 bytes before.
fn context(bytes: &[u8], start: usize, words: &[&str]) -> bool {
    window_has(bytes, clause_start(bytes, start, 40), start, words)
}

/// Where the clause holding `start` begins (a newline, or `.;!?` and a
/// space — except after a short abbreviation such as `tel.` or `No.`),
/// looking back at most `max` bytes.
pub(crate) fn clause_start(bytes: &[u8], start: usize, max: usize) -> usize {
    let lo = start.saturating_sub(max);
    let mut i = start;
    while i > lo {
        let b = at(bytes, i - 1);
        if b == b'\n' {
            return i;
        }
        if matches!(b, b'.' | b';' | b'!' | b'?') && at(bytes, i) == b' ' {
            let mut w = i - 1;
            while w > 0 && i - 1 - w < 5 && at(bytes, w - 1).is_ascii_alphabetic() {
                w -= 1;
            }
            let abbreviation =
                b == b'.' && (1..=3).contains(&(i - 1 - w)) && !at(bytes, w.wrapping_sub(1)).is_ascii_digit();
            if !abbreviation {
                return i;
            }
        }
        i -= 1;
    }
    lo
}

/// A number right after `#` or an order/invoice/version word is a reference.
fn negative(bytes: &[u8], start: usize) -> bool {
    let before = at(bytes, start.wrapping_sub(1));
    before == b'#' || (before == b' ' && at(bytes, start.wrapping_sub(2)) == b'#') || context(bytes, start, NEG_CTX)
}

/// Whether the token read into `groups` (at `token_start`) may hold a
/// number of some class. Every class needs nine digits (SSN, TFN, ACN;
/// phones ten) or eight after a `+` (E.164), but a dotted quad, which
/// needs four groups: most tokens (years, times, counts, ISO dates) stop
/// here, before the call to [`ranges`].
#[inline(always)]
fn may_hold_number(bytes: &[u8], token_start: usize, groups: &[Group]) -> bool {
    let count = groups.last().map_or(0, |l| l.doff + (l.end - l.start));
    let fewest = if at(bytes, token_start.wrapping_sub(1)) == b'+' { 8 } else { 9 };
    count >= fewest || groups.len() >= 4
}

/// Numbers of every class in the token read into `groups`.
fn ranges(
    cx: &Ctx<'_>,
    token_start: usize,
    groups: &[Group],
    digits: &mut Vec<u8>,
    out: &mut Vec<Finding>,
    consumed: &mut usize,
) {
    let bytes = cx.bytes;
    let g = groups.len();
    let mut a = 0;
    token_digits(bytes, groups, digits);
    while a < g {
        let Some(ga) = groups.get(a) else { break };
        if a > 0 && ga.sep != b' ' {
            a += 1;
            continue;
        }
        let mut matched = None;
        let top = g.min(a + MAX_GROUPS);
        for b in (a + 1..=top).rev() {
            let Some(gb) = groups.get(b - 1) else { continue };
            if b < g && groups.get(b).is_some_and(|n| n.sep != b' ') {
                continue;
            }
            let dcount = gb.doff + (gb.end - gb.start) - ga.doff;
            if dcount > MAX_DIGITS {
                continue;
            }
            // Cheap reject before building a view: every class needs at
            // least 8 digits except a dotted quad (IPv4).
            let quad = b - a == 4 && groups.get(a + 1..b).is_some_and(|gs| gs.iter().all(|g| g.sep == b'.'));
            if dcount < 8 && !quad {
                continue;
            }
            let mut view = View {
                digits: digits.get(ga.doff..ga.doff + dcount).unwrap_or_default(),
                lens: [0; MAX_GROUPS],
                seps: [0; MAX_GROUPS],
                n: b - a,
                start: ga.start,
                end: gb.end,
                plus: a == 0 && at(bytes, token_start.wrapping_sub(1)) == b'+',
                // "(02) 9876 5432" has an area code in parentheses; in
                // "TFN (123 456 782)" they enclose the whole number.
                paren_first: a == 0 && at(bytes, token_start.wrapping_sub(1)) == b'(' && at(bytes, gb.end) != b')',
                glued_before: a == 0 && token_start > 0 && {
                    let p = at(bytes, token_start - 1);
                    p.is_ascii_alphanumeric()
                        || p == b'_'
                        || p >= 0x80
                        || p == b'.'
                        || p == b'-' && { token_start >= 2 && at(bytes, token_start - 2).is_ascii_alphanumeric() }
                },
                whole: a == 0 && b == g,
            };
            for (k, grp) in groups.get(a..b).unwrap_or_default().iter().enumerate() {
                if let (Some(l), Some(s)) = (view.lens.get_mut(k), view.seps.get_mut(k)) {
                    *l = u8::try_from(grp.end - grp.start).unwrap_or(u8::MAX);
                    *s = if k == 0 { 0 } else { grp.sep };
                }
            }
            // Glued to a word after the range ("123abc").
            let after = at(bytes, view.end);
            if b == g && (after.is_ascii_alphanumeric() || after == b'_' || after >= 0x80) {
                continue;
            }
            if let Some(f) = validate(cx, &view) {
                matched = Some((b, f));
                break;
            }
        }
        match matched {
            Some((b, f)) => {
                *consumed = f.end;
                out.push(f);
                a = b;
            }
            None => a += 1,
        }
    }
}

fn validate(cx: &Ctx<'_>, v: &View<'_>) -> Option<Finding> {
    let e = cx.enabled;
    let bytes = cx.bytes;
    if e.has(EntityClass::IpAddress) {
        if let Some(f) = ipv4(bytes, v) {
            return Some(f);
        }
    }
    if v.glued_before || v.plus && !e.has(EntityClass::Phone) {
        return None;
    }
    let lens = v.lens();
    let n = v.digits.len();
    let plain = v.n == 1;
    // Context windows cost more than the checks: only look once a format passed.
    let neg = || negative(bytes, v.start);
    if !v.plus && !v.paren_first {
        if e.has(EntityClass::UsSsn) && n == 9 {
            let ctx = context(bytes, v.start, SSN_CTX);
            let dashed = lens == [3, 2, 4] && v.seps_all(b"-");
            let spaced = lens == [3, 2, 4] && v.seps_all(b" ");
            if (dashed || spaced || plain && ctx) && ssn_valid(v) && (ctx || !neg()) {
                let c = match (ctx, dashed) {
                    (true, _) => 0.99,
                    (false, true) => 0.85,
                    (false, false) => 0.7,
                };
                return Some(Finding::new(EntityClass::UsSsn, v.start, v.end, c, "us_ssn.format"));
            }
        }
        if e.has(EntityClass::AuAbn)
            && n == 11
            && (plain || lens == [2, 3, 3, 3] && v.seps_all(b" "))
            && abn_valid(v.digits)
        {
            let ctx = context(bytes, v.start, ABN_CTX);
            if ctx || !neg() {
                let c = if ctx { 0.99 } else { 0.8 };
                return Some(Finding::new(EntityClass::AuAbn, v.start, v.end, c, "au_abn.mod89"));
            }
        }
        let nine = n == 9 && (plain || lens == [3, 3, 3] && v.seps_all(b" -") && v.seps_same());
        if e.has(EntityClass::AuAcn) && nine && acn_valid(v.digits) && context(bytes, v.start, ACN_CTX) {
            return Some(Finding::new(EntityClass::AuAcn, v.start, v.end, 0.97, "au_acn.check_digit"));
        }
        if e.has(EntityClass::AuTfn) && nine && tfn_valid(v.digits) {
            let ctx = context(bytes, v.start, TFN_CTX);
            if ctx || (!plain && !neg()) {
                let c = if ctx { 0.99 } else { 0.75 };
                return Some(Finding::new(EntityClass::AuTfn, v.start, v.end, c, "au_tfn.mod11"));
            }
        }
        if e.has(EntityClass::AuMedicare) && (n == 10 || n == 11) && medicare_valid(v.digits) {
            let grouped = matches!(lens, [4, 5, 1] | [4, 5, 1, 1] | [4, 5, 2]) && v.seps_all(b" -");
            let ctx = context(bytes, v.start, MEDICARE_CTX);
            if ctx || (grouped && !neg()) {
                let c = if ctx { 0.99 } else { 0.75 };
                return Some(Finding::new(EntityClass::AuMedicare, v.start, v.end, c, "au_medicare.check_digit"));
            }
        }
    }
    if e.has(EntityClass::Phone) {
        if let Some((c, subtype)) = phone(v) {
            let ctx = context(bytes, v.start, PHONE_CTX);
            let needs_ctx = c < 0.7;
            if (ctx || !needs_ctx) && (ctx || v.plus || !neg()) {
                let c = if ctx { (c + 0.15f32).min(0.99) } else { c };
                let start = if v.plus || v.paren_first { v.start - 1 } else { v.start };
                return Some(Finding::new(EntityClass::Phone, start, v.end, c, "phone.format").with_subtype(subtype));
            }
        }
    }
    None
}

fn ipv4(bytes: &[u8], v: &View<'_>) -> Option<Finding> {
    if !v.whole || v.n != 4 || !v.seps_all(b".") || v.glued_before {
        return None;
    }
    let mut off = 0;
    for &len in v.lens() {
        let len = usize::from(len);
        if !(1..=3).contains(&len) || (len > 1 && v.d(off) == 0) || v.value(off, off + len) > 255 {
            return None;
        }
        off += len;
    }
    // "version 1.2.3.4", "v1.2.3.4" are versions.
    let before = at(bytes, v.start.wrapping_sub(1));
    if before == b'v' || before == b'V' || window_has(bytes, v.start.saturating_sub(16), v.start, VERSION_CTX) {
        return None;
    }
    let c = if context(bytes, v.start, IP_CTX) { 0.95 } else { 0.9 };
    Some(Finding::new(EntityClass::IpAddress, v.start, v.end, c, "ip_address.v4").with_subtype("v4"))
}

/// IPv6 around a colon next to the token at `start`. Returns the finding
/// and the end of the span examined (so later tokens in it are skipped).
fn ipv6(bytes: &[u8], start: usize, floor: usize) -> (Option<Finding>, usize) {
    let is_v6 = |b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.';
    let mut s = start;
    while s > floor && start - s < 40 && is_v6(at(bytes, s - 1)) {
        s -= 1;
    }
    let mut e = start;
    while e - start < 45 && is_v6(at(bytes, e)) {
        e += 1;
    }
    let checked = e;
    let glued = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80;
    if s > 0 && glued(at(bytes, s - 1)) || glued(at(bytes, e)) {
        return (None, checked);
    }
    // Trailing sentence punctuation (a '.' or a lone ':') is not part of it.
    let mut end = e;
    for _ in 0..2 {
        let Some(text) = bytes.get(s..end).and_then(|b| std::str::from_utf8(b).ok()) else {
            return (None, checked);
        };
        let colons = text.bytes().filter(|&b| b == b':').count();
        if colons >= 2 && text.len() >= 6 && text.parse::<std::net::Ipv6Addr>().is_ok() {
            let f = Finding::new(EntityClass::IpAddress, s, end, 0.9, "ip_address.v6").with_subtype("v6");
            return (Some(f), checked);
        }
        if end > s && matches!(at(bytes, end - 1), b'.' | b':') {
            end -= 1;
        } else {
            break;
        }
    }
    (None, checked)
}

fn ssn_valid(v: &View<'_>) -> bool {
    let area = v.value(0, 3);
    let group = v.value(3, 5);
    let serial = v.value(5, 9);
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

pub(crate) fn tfn_valid(d: &[u8]) -> bool {
    const W: [u32; 9] = [1, 4, 3, 7, 5, 8, 6, 9, 10];
    d.len() == 9 && d.iter().zip(W).map(|(&x, w)| u32::from(x) * w).sum::<u32>() % 11 == 0
}

pub(crate) fn abn_valid(d: &[u8]) -> bool {
    const W: [u32; 11] = [10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19];
    if d.len() != 11 || d.first().is_none_or(|&f| f == 0) {
        return false;
    }
    let sum: u32 = d.iter().enumerate().zip(W).map(|((i, &x), w)| (u32::from(x) - u32::from(i == 0)) * w).sum();
    sum.is_multiple_of(89)
}

pub(crate) fn acn_valid(d: &[u8]) -> bool {
    if d.len() != 9 {
        return false;
    }
    let sum: u32 = d.iter().take(8).zip((1..=8u32).rev()).map(|(&x, w)| u32::from(x) * w).sum();
    let check = (10 - sum % 10) % 10;
    d.get(8).is_some_and(|&c| u32::from(c) == check)
}

pub(crate) fn medicare_valid(d: &[u8]) -> bool {
    const W: [u32; 8] = [1, 3, 7, 9, 1, 3, 7, 9];
    if !(d.len() == 10 || d.len() == 11) || !d.first().is_some_and(|f| (2..=6).contains(f)) {
        return false;
    }
    let sum: u32 = d.iter().take(8).zip(W).map(|(&x, w)| u32::from(x) * w).sum();
    d.get(8).is_some_and(|&c| u32::from(c) == sum % 10)
}

/// Phone numbering plans: E.164 with a `+`, or national formats of the
/// US, UK, AU, DE, FR and IN. Returns a base confidence (below 0.7 means
/// context is required) and the plan.
fn phone(v: &View<'_>) -> Option<(f32, &'static str)> {
    let n = v.digits.len();
    let lens = v.lens();
    if !(v.seps_all(b" -.()") || v.seps_all(b" /-") && v.d(0) == 0) {
        return None;
    }
    let d0 = v.d(0);
    let d1 = v.d(1);
    if v.plus {
        // Country code, then the national significant number.
        let (cc, sub, ok) = match (d0, d1) {
            (1, _) => (1, "us", n == 11 && (2..=9).contains(&v.d(1)) && (2..=9).contains(&v.d(4))),
            (4, 4) => (2, "uk", (11..=13).contains(&n)),
            (6, 1) => (2, "au", (11..=12).contains(&n)),
            (4, 9) => (2, "de", (10..=14).contains(&n)),
            (3, 3) => (2, "fr", (11..=12).contains(&n)),
            (9, 1) => (2, "in", n == 12 && (6..=9).contains(&v.d(2)) || n == 13 && v.d(2) == 0),
            _ => (0, "e164", (8..=15).contains(&n) && d0 != 0),
        };
        let _ = cc;
        return ok.then_some(if sub == "e164" { (0.75, sub) } else { (0.9, sub) });
    }
    let sep_ok = v.seps_same() || v.paren_first;
    if n == 10 && (2..=9).contains(&d0) && (2..=9).contains(&v.d(3)) && lens == [3, 3, 4] && sep_ok {
        return Some((0.8, "us"));
    }
    if n == 11 && d0 == 1 && lens == [1, 3, 3, 4] && (2..=9).contains(&d1) && v.seps_same() {
        return Some((0.8, "us"));
    }
    if d0 == 0 {
        if n == 11
            && matches!(d1, 1 | 2 | 3 | 7 | 8 | 9)
            && matches!(lens, [5, 6] | [4, 3, 4] | [3, 4, 4] | [5, 3, 3] | [4, 7])
        {
            return Some((0.8, "uk"));
        }
        if n == 10 && matches!(d1, 2 | 3 | 4 | 7 | 8) && matches!(lens, [4, 3, 3] | [2, 4, 4]) {
            return Some((0.8, "au"));
        }
        if n == 10 && (1..=9).contains(&d1) && lens == [2, 2, 2, 2, 2] && v.seps_same() {
            return Some((0.8, "fr"));
        }
        if (10..=12).contains(&n)
            && d1 != 0
            && v.n == 2
            && matches!(lens.first(), Some(3..=5))
            && lens.get(1).is_some_and(|&l| l >= 5)
        {
            return Some((0.7, "de"));
        }
        // India's mobiles (6-9 then nine digits) dialled with the trunk 0:
        // "09876 543210" is UK-shaped above; "098765 43210", "0 98765 43210".
        if n == 11 && (6..=9).contains(&d1) && matches!(lens, [6, 5] | [1, 5, 5]) {
            return Some((0.75, "in"));
        }
        // Unseparated: UK mobiles (07 and nine digits) and Indian mobiles
        // with the trunk 0 stand alone; other UK shapes need a cue word.
        if v.n == 1 && n == 11 && (6..=9).contains(&d1) {
            return Some((0.7, if d1 == 7 { "uk" } else { "in" }));
        }
        if v.n == 1 && n == 11 && (1..=3).contains(&d1) {
            return Some((0.6, "uk"));
        }
        // Unseparated ten digits after the trunk 0: every French number
        // (01-09), and Australia's (02, 03, 04, 07, 08).
        if v.n == 1 && n == 10 && d1 != 0 {
            return Some((0.7, if matches!(d1, 2 | 3 | 4 | 7 | 8) { "au" } else { "fr" }));
        }
    }
    if n == 10 && d0 == 1 && matches!(d1, 3 | 8) && v.d(2) == 0 && v.d(3) == 0 && lens == [4, 3, 3] {
        return Some((0.7, "au"));
    }
    if n == 10 && (6..=9).contains(&d0) && lens == [5, 5] {
        return Some((0.75, "in"));
    }
    if v.n == 1 && n == 10 && (2..=9).contains(&d0) {
        return Some((0.6, if (6..=9).contains(&d0) { "in" } else { "us" }));
    }
    None
}

/// IBAN and UK NINO: two letters right before the token's digits.
fn letter_prefixed(cx: &Ctx<'_>, start: usize, end: usize, groups: &[Group]) -> Option<Finding> {
    let bytes = cx.bytes;
    let upper = |i: usize| at(bytes, i).is_ascii_uppercase();
    let word_before = |i: usize| {
        i > 0 && {
            let b = at(bytes, i - 1);
            b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
        }
    };
    if start >= 2 && upper(start - 2) && upper(start - 1) && !word_before(start - 2) {
        if cx.enabled.has(EntityClass::Iban) {
            if let Some(f) = iban(bytes, start - 2) {
                return Some(f);
            }
        }
        if cx.enabled.has(EntityClass::UkNino) {
            if let Some(f) = nino(bytes, start - 2, start, groups) {
                return Some(f);
            }
        }
    }
    if cx.enabled.has(EntityClass::UkNino) && start >= 3 && at(bytes, start - 1) == b' ' {
        let (a, b) = (at(bytes, start - 3), at(bytes, start - 2));
        if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() && !word_before(start - 3) {
            if let Some(f) = nino(bytes, start - 3, start, groups) {
                return Some(f);
            }
        }
    }
    if cx.enabled.has(EntityClass::Address) {
        if let Some(f) = uk_postcode(bytes, start, end) {
            return Some(f);
        }
    }
    None
}

/// Per-country IBAN lengths (ISO 13616 registry).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SC", 31),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

pub(crate) fn iban_check(chars: &[u8]) -> bool {
    if chars.len() < 5 {
        return false;
    }
    let (head, tail) = chars.split_at(4);
    let mut r: u32 = 0;
    for &c in tail.iter().chain(head) {
        if c.is_ascii_digit() {
            r = (r * 10 + u32::from(c - b'0')) % 97;
        } else if c.is_ascii_uppercase() {
            r = (r * 100 + u32::from(c - b'A') + 10) % 97;
        } else {
            return false;
        }
    }
    r == 1
}

fn iban(bytes: &[u8], s: usize) -> Option<Finding> {
    let cc = bytes.get(s..s + 2)?;
    let &(country, len) = IBAN_LENGTHS.iter().find(|(c, _)| c.as_bytes() == cc)?;
    let mut chars = [0u8; 34];
    let mut count = 0;
    let mut pos = s;
    while count < len && pos - s < len + len / 4 + 2 {
        let b = at(bytes, pos);
        if b.is_ascii_alphanumeric() {
            *chars.get_mut(count)? = b.to_ascii_uppercase();
            count += 1;
            pos += 1;
        } else if b == b' ' && count % 4 == 0 && count > 0 && at(bytes, pos + 1).is_ascii_alphanumeric() {
            pos += 1;
        } else {
            break;
        }
    }
    let after = at(bytes, pos);
    if count != len || after.is_ascii_alphanumeric() || after == b'_' {
        return None;
    }
    let chars = chars.get(..count)?;
    if !chars.get(2..4)?.iter().all(u8::is_ascii_digit) || !iban_check(chars) {
        return None;
    }
    Some(Finding::new(EntityClass::Iban, s, pos, 0.99, "iban.mod97").with_subtype(country))
}

fn nino(bytes: &[u8], s: usize, digits_start: usize, groups: &[Group]) -> Option<Finding> {
    let (a, b) = (at(bytes, s).to_ascii_uppercase(), at(bytes, s + 1).to_ascii_uppercase());
    let lower = at(bytes, s).is_ascii_lowercase() || at(bytes, s + 1).is_ascii_lowercase();
    if b"DFIQUV".contains(&a) || b"DFIOQUV".contains(&b) {
        return None;
    }
    if [*b"BG", *b"GB", *b"KN", *b"NK", *b"NT", *b"TN", *b"ZZ"].contains(&[a, b]) {
        return None;
    }
    let lens: Vec<usize> = groups.iter().take(3).map(|g| g.end - g.start).collect();
    let digits_end = match lens.as_slice() {
        [6, ..] => groups.first()?.end,
        [2, 2, 2] if groups.iter().skip(1).take(2).all(|g| g.sep == b' ') => groups.get(2)?.end,
        _ => return None,
    };
    if digits_start < s + 2 {
        return None;
    }
    let ctx = window_has(bytes, s.saturating_sub(40), s, NINO_CTX);
    let (suffix_at, spaced) = if at(bytes, digits_end) == b' ' { (digits_end + 1, true) } else { (digits_end, false) };
    let suffix = at(bytes, suffix_at);
    let has_suffix = b"ABCD".contains(&suffix.to_ascii_uppercase())
        && (suffix.is_ascii_uppercase() || lower)
        && !at(bytes, suffix_at + 1).is_ascii_alphanumeric();
    let end = if has_suffix { suffix_at + 1 } else { digits_end };
    if !has_suffix && (!ctx || at(bytes, digits_end).is_ascii_alphanumeric()) {
        return None;
    }
    if (lower && !ctx) || (!has_suffix && spaced && suffix.is_ascii_alphanumeric()) {
        return None;
    }
    let c = match (ctx, has_suffix) {
        (true, true) => 0.99,
        (false, true) => 0.9,
        _ => 0.8,
    };
    Some(Finding::new(EntityClass::UkNino, s, end, c, "uk_nino.format"))
}

/// UK postcode (`SW1A 1AA`, `M1 1AE`, `B33 8TH`) whose digits start at `start`.
fn uk_postcode(bytes: &[u8], start: usize, _end: usize) -> Option<Finding> {
    let upper = |i: usize| at(bytes, i).is_ascii_uppercase();
    let letters = if start >= 2 && upper(start - 2) && upper(start - 1) {
        2
    } else if start >= 1 && upper(start - 1) {
        1
    } else {
        return None;
    };
    let s = start - letters;
    if s > 0 && (at(bytes, s - 1).is_ascii_alphanumeric() || at(bytes, s - 1) == b'_') {
        return None;
    }
    let mut p = start;
    let digits = bytes.get(p..)?.iter().take(3).take_while(|b| b.is_ascii_digit()).count();
    if !(1..=2).contains(&digits) {
        return None;
    }
    p += digits;
    if upper(p) && digits == 1 {
        p += 1;
    }
    if at(bytes, p) == b' ' {
        p += 1;
    } else {
        return None;
    }
    let inward_ok = at(bytes, p).is_ascii_digit() && upper(p + 1) && upper(p + 2);
    let end = p + 3;
    let invalid_inward = |b: u8| b"CIKMOV".contains(&b);
    if !inward_ok || invalid_inward(at(bytes, p + 1)) || invalid_inward(at(bytes, p + 2)) {
        return None;
    }
    if at(bytes, end).is_ascii_alphanumeric() {
        return None;
    }
    Some(Finding::new(EntityClass::Address, s, end, 0.7, "address.uk_postcode").with_subtype("uk_postcode"))
}

fn is_cap_word_start(b: u8) -> bool {
    b.is_ascii_uppercase()
}

/// Reads a word at `p`: returns its end.
fn word_end(bytes: &[u8], p: usize) -> usize {
    let mut e = p;
    while e - p < 32 && {
        let b = at(bytes, e);
        b.is_ascii_alphabetic() || b == b'\'' || b >= 0x80 || (b == b'-' && at(bytes, e + 1).is_ascii_alphabetic())
    } {
        e += 1;
    }
    e
}

/// `12 Smith Street`, `4/12 O'Connell St., Sydney NSW 2000`, `1600 Pennsylvania Avenue NW, Washington, DC 20500`.
fn street_address(bytes: &[u8], start: usize, end: usize, groups: &[Group]) -> Option<Finding> {
    if groups.len() > 2 || groups.iter().any(|g| g.end - g.start > 5) {
        return None;
    }
    if groups.get(1).is_some_and(|g| !matches!(g.sep, b'/' | b'-')) {
        return None;
    }
    let before = at(bytes, start.wrapping_sub(1));
    if start > 0
        && (before.is_ascii_alphanumeric() || before == b'_' || before == b'.' || before == b'$' || before == b'#')
    {
        return None;
    }
    let mut p = end;
    if at(bytes, p).is_ascii_uppercase() && at(bytes, p + 1) == b' ' {
        p += 1; // 12A
    }
    if at(bytes, p) != b' ' {
        return None;
    }
    p += 1;
    let mut words = 0;
    let mut street_end = None;
    while words < 5 {
        let w_end = word_end(bytes, p);
        let word = bytes.get(p..w_end)?;
        if word.is_empty() {
            break;
        }
        let is_type = words >= 1 && STREET_TYPE_SET.contains(word);
        if is_type {
            let mut e = w_end;
            if at(bytes, e) == b'.' {
                e += 1;
            }
            street_end = Some(e);
            break;
        }
        if !is_cap_word_start(at(bytes, p)) {
            return None;
        }
        words += 1;
        if at(bytes, w_end) != b' ' {
            return None;
        }
        p = w_end + 1;
    }
    let street_end = street_end?;
    let mut end = street_end;
    let mut confidence = 0.85;
    // Optional directional (NW) and locality with state and postcode.
    let mut q = street_end;
    if at(bytes, q) == b' ' && bytes.get(q + 1..q + 3).is_some_and(|d| matches!(d, b"NW" | b"NE" | b"SW" | b"SE")) {
        q += 3;
    }
    if let Some(loc_end) = locality_after(bytes, q) {
        end = loc_end;
        confidence = 0.95;
    }
    Some(Finding::new(EntityClass::Address, start, end, confidence, "address.street").with_subtype("street"))
}

/// `, Sydney NSW 2000` / `, Springfield, IL 62704` / `, London SW1A 1AA` after a street.
fn locality_after(bytes: &[u8], mut p: usize) -> Option<usize> {
    if at(bytes, p) == b',' {
        p += 1;
    }
    if at(bytes, p) != b' ' {
        return None;
    }
    p += 1;
    for _ in 0..3 {
        if !is_cap_word_start(at(bytes, p)) {
            return None;
        }
        let w_end = word_end(bytes, p);
        let word = bytes.get(p..w_end)?;
        // The state itself, after the town.
        let (sep, next) = (at(bytes, w_end), w_end + 1);
        let after_state = if at(bytes, next.wrapping_sub(1)) == b',' { next + 1 } else { next };
        let _ = after_state;
        if contains_state(word) && (sep == b' ') {
            if let Some(e) = postcode_at(bytes, w_end + 1, word) {
                return Some(e);
            }
        }
        if let Some(e) = uk_postcode_start(bytes, p) {
            return Some(e);
        }
        p = match (sep, at(bytes, w_end + 1)) {
            (b',', b' ') => w_end + 2,
            (b' ', _) => w_end + 1,
            _ => return None,
        };
    }
    // The last position may be the state.
    let w_end = word_end(bytes, p);
    let word = bytes.get(p..w_end)?;
    if contains_state(word) && at(bytes, w_end) == b' ' {
        return postcode_at(bytes, w_end + 1, word);
    }
    uk_postcode_start(bytes, p)
}

fn contains_state(word: &[u8]) -> bool {
    AU_STATES.iter().chain(US_STATES).any(|s| s.as_bytes() == word)
}

fn postcode_at(bytes: &[u8], p: usize, state: &[u8]) -> Option<usize> {
    let n = bytes.get(p..)?.iter().take(6).take_while(|b| b.is_ascii_digit()).count();
    let au = AU_STATES.iter().any(|s| s.as_bytes() == state);
    let us = US_STATES.iter().any(|s| s.as_bytes() == state);
    let mut end = p + n;
    if us
        && n == 5
        && at(bytes, end) == b'-'
        && bytes.get(end + 1..end + 5).is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    {
        end += 5;
    }
    ((au && n == 4 || us && n == 5) && !at(bytes, end).is_ascii_alphanumeric()).then_some(end)
}

fn uk_postcode_start(bytes: &[u8], p: usize) -> Option<usize> {
    let letters = bytes.get(p..)?.iter().take(3).take_while(|b| b.is_ascii_uppercase()).count();
    if !(1..=2).contains(&letters) {
        return None;
    }
    uk_postcode(bytes, p + letters, p + letters).map(|f| f.end)
}

/// `Sydney NSW 2000`, `Springfield, IL 62704`: a postcode after a state after a town.
fn locality(bytes: &[u8], start: usize, groups: &[Group]) -> Option<Finding> {
    if groups.len() != 1 {
        return None;
    }
    let n = groups.first().map(|g| g.end - g.start)?;
    if !(n == 4 || n == 5) || at(bytes, start.wrapping_sub(1)) != b' ' {
        return None;
    }
    // State word before.
    let st_end = start - 1;
    let mut st_start = st_end;
    while st_start > 0 && st_end - st_start < 3 && at(bytes, st_start - 1).is_ascii_uppercase() {
        st_start -= 1;
    }
    // Every state code is two or three letters.
    let state = bytes.get(st_start..st_end).filter(|s| s.len() >= 2)?;
    let end = postcode_at(bytes, start, state)?;
    if st_start < 2 {
        return None;
    }
    // Town: capitalised word(s) before, maybe after a comma.
    let mut t_end = st_start - 1;
    if at(bytes, t_end) != b' ' {
        return None;
    }
    if at(bytes, t_end.wrapping_sub(1)) == b',' {
        t_end -= 1;
    }
    let mut t_start = t_end;
    while t_start > 0 && t_end - t_start < 32 && at(bytes, t_start - 1).is_ascii_alphabetic() {
        t_start -= 1;
    }
    if t_start == t_end || !at(bytes, t_start).is_ascii_uppercase() {
        return None;
    }
    if t_start > 0 && at(bytes, t_start - 1).is_ascii_alphanumeric() {
        return None;
    }
    Some(Finding::new(EntityClass::Address, t_start, end, 0.7, "address.locality").with_subtype("locality"))
}

#[cfg(test)]
mod tests {
    use super::super::DetectorSet;
    use super::*;

    fn found(text: &str) -> Vec<(EntityClass, String)> {
        let mut out = Vec::new();
        DetectorSet::new(EntityClass::ALL).scan(text, &mut out);
        out.iter().map(|f| (f.class, text[f.start..f.end].to_string())).collect()
    }

    fn one(text: &str, class: EntityClass) -> String {
        let got: Vec<_> = found(text).into_iter().filter(|(c, _)| *c == class).collect();
        assert_eq!(got.len(), 1, "{text}: {:?}", found(text));
        got.into_iter().next().unwrap().1
    }

    fn none(text: &str, class: EntityClass) {
        let got: Vec<_> = found(text).into_iter().filter(|(c, _)| *c == class).collect();
        assert!(got.is_empty(), "{text}: {got:?}");
    }

    #[test]
    fn checksums_known_answers() {
        let d = |s: &str| s.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect::<Vec<_>>();
        assert!(tfn_valid(&d("123 456 782")));
        assert!(!tfn_valid(&d("123 456 789")));
        assert!(abn_valid(&d("51 824 753 556")));
        assert!(!abn_valid(&d("51 824 753 557")));
        assert!(acn_valid(&d("000 000 019")));
        assert!(acn_valid(&d("005 499 981")));
        assert!(!acn_valid(&d("005 499 982")));
        assert!(medicare_valid(&d("2123 45670 1")));
        assert!(!medicare_valid(&d("2123 45671 1")));
        assert!(iban_check(b"GB82WEST12345698765432"));
        assert!(!iban_check(b"GB82WEST12345698765433"));
    }

    #[test]
    fn national_ids() {
        assert_eq!(one("SSN: 123-45-6789", EntityClass::UsSsn), "123-45-6789");
        assert_eq!(one("my ssn is 123456789", EntityClass::UsSsn), "123456789");
        assert_eq!(one("TFN 123 456 782", EntityClass::AuTfn), "123 456 782");
        // In parentheses, with or without a cue word.
        assert_eq!(one("my tax file number (123 456 782) is", EntityClass::AuTfn), "123 456 782");
        assert_eq!(one("TFN (123456782)", EntityClass::AuTfn), "123456782");
        assert_eq!(one("it is (123-456-782).", EntityClass::AuTfn), "123-456-782");
        // An area code in parentheses is still a phone's.
        assert_eq!(one("(02) 9876 5432", EntityClass::Phone), "(02) 9876 5432");
        assert_eq!(one("ABN 51 824 753 556", EntityClass::AuAbn), "51 824 753 556");
        assert_eq!(one("ACN 005 499 981", EntityClass::AuAcn), "005 499 981");
        assert_eq!(one("Medicare card 2123 45670 1", EntityClass::AuMedicare), "2123 45670 1");
        assert_eq!(one("NI number AB 12 34 56 C.", EntityClass::UkNino), "AB 12 34 56 C");
        assert_eq!(one("nino: JG123456A", EntityClass::UkNino), "JG123456A");
    }

    #[test]
    fn ssn_rules_reject_invalid_areas_groups_serials() {
        for s in ["SSN 000-12-3456", "SSN 666-12-3456", "SSN 912-34-5678", "SSN 123-00-4567", "SSN 123-45-0000"] {
            none(s, EntityClass::UsSsn);
        }
    }

    #[test]
    fn nino_prefix_rules() {
        for s in ["DA123456A", "GB123456A", "ZZ123456C", "AO123456B", "AB123456E"] {
            none(&format!("NI {s}"), EntityClass::UkNino);
        }
    }

    #[test]
    fn iban_with_and_without_spaces() {
        assert_eq!(one("IBAN GB82 WEST 1234 5698 7654 32 thanks", EntityClass::Iban), "GB82 WEST 1234 5698 7654 32");
        assert_eq!(one("DE89370400440532013000", EntityClass::Iban), "DE89370400440532013000");
        none("GB82 WEST 1234 5698 7654 33", EntityClass::Iban);
        none("DE8937040044053201300", EntityClass::Iban);
    }

    #[test]
    fn phones_per_country() {
        let cases = [
            ("call +1 415 555 0132", "+1 415 555 0132"),
            ("call (415) 555-0132 now", "(415) 555-0132"),
            ("tel 415-555-0132", "415-555-0132"),
            ("+44 20 7946 0958", "+44 20 7946 0958"),
            ("ring 020 7946 0958", "020 7946 0958"),
            ("07700 900123", "07700 900123"),
            ("mobile 0412 345 678", "0412 345 678"),
            ("(02) 9876 5432", "(02) 9876 5432"),
            ("+61 412 345 678", "+61 412 345 678"),
            ("030 12345678", "030 12345678"),
            ("+49 30 12345678", "+49 30 12345678"),
            ("01 23 45 67 89", "01 23 45 67 89"),
            ("+33 1 23 45 67 89", "+33 1 23 45 67 89"),
            ("98765 43210", "98765 43210"),
            ("+91 98765 43210", "+91 98765 43210"),
            // Unseparated national numbers stand without a cue word.
            ("0612345678", "0612345678"),
            ("Is 0145028606 right?", "0145028606"),
            ("+33612345678", "+33612345678"),
            ("0412345678", "0412345678"),
            ("07700900123", "07700900123"),
            ("Is 07700 900123 right?", "07700 900123"),
            ("09876543210", "09876543210"),
            ("098765 43210", "098765 43210"),
            ("0 98765 43210", "0 98765 43210"),
            ("name,0932220328,addr", "0932220328"),
        ];
        for (text, want) in cases {
            assert_eq!(one(text, EntityClass::Phone), want, "{text}");
        }
    }

    #[test]
    fn phone_near_misses() {
        for text in [
            "at 1700000000 epoch",
            "on 2024-01-15 10:30",
            "version 1.2.3",
            "order #4155550132",
            "it costs 1,234,567",
            "pages 10-20",
            "0012345678",
            "order 0612345678",
            "ref 07700900123",
            "Where is my order 09876543210?",
            "ORD-0612345678",
            "id=0612345678",
            "01234567890123",
        ] {
            none(text, EntityClass::Phone);
        }
    }

    #[test]
    fn ip_addresses() {
        assert_eq!(one("from 192.168.10.254:8080", EntityClass::IpAddress), "192.168.10.254");
        assert_eq!(one("host 2001:db8::8a2e:370:7334.", EntityClass::IpAddress), "2001:db8::8a2e:370:7334");
        assert_eq!(one("fe80::1ff:fe23:4567:890a", EntityClass::IpAddress), "fe80::1ff:fe23:4567:890a");
        for text in ["version 1.2.3.4", "v10.0.0.1", "1.2.3.4.5", "256.1.1.1", "at 12:30:45", "mac 00:1a:2b:3c:4d:5e"] {
            none(text, EntityClass::IpAddress);
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(
            one("I live at 12 Smith Street, Sydney NSW 2000.", EntityClass::Address),
            "12 Smith Street, Sydney NSW 2000"
        );
        assert_eq!(
            one("send to 1600 Pennsylvania Avenue NW, Washington, DC 20500", EntityClass::Address),
            "1600 Pennsylvania Avenue NW, Washington, DC 20500"
        );
        assert_eq!(one("at 221B Baker St.", EntityClass::Address), "221B Baker St.");
        assert_eq!(one("postcode SW1A 1AA", EntityClass::Address), "SW1A 1AA");
        assert_eq!(one("in Springfield, IL 62704", EntityClass::Address), "Springfield, IL 62704");
        none("I have 3 dogs on the street", EntityClass::Address);
    }

    #[test]
    fn adversarial_digit_runs_stay_linear() {
        for unit in ["1", "1 ", "12-", "1.", "12:", "GB82", "0"] {
            let text = unit.repeat((1 << 20) / unit.len());
            let start = std::time::Instant::now();
            let _ = found(&text);
            assert!(start.elapsed().as_secs() < 20, "{unit:?}");
        }
    }
}
