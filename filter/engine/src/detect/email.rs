//! E-mail addresses: anchored on `@`, bounded walks left and right.
//!
//! Accepts the dot-atom form people actually write (RFC 5322 local part
//! characters, LDH domain labels, an alphabetic or punycode TLD). Quoted
//! local parts and IP-literal domains are not matched.

use super::{EntityClass, Finding};

const MAX_DOMAIN: usize = 253;
const MAX_LABEL: usize = 63;

fn is_local_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b)
}

fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

pub(super) fn detect(text: &str, out: &mut Vec<Finding>) {
    let bytes = text.as_bytes();
    let mut last_end = 0;
    for at in memchr::memchr_iter(b'@', bytes) {
        if at < last_end {
            continue;
        }
        let Some(start) = local_part_start(bytes, at, last_end) else {
            continue;
        };
        // `scheme://user:password@host`: the userinfo of a URL, not an
        // address (the secret detector reports the password).
        if in_url_userinfo(bytes, at, last_end) {
            continue;
        }
        let Some(end) = domain_end(bytes, at + 1) else {
            continue;
        };
        let context = has_context(bytes, start);
        out.push(Finding::new(EntityClass::Email, start, end, if context { 0.99 } else { 0.95 }, "email.address"));
        last_end = end;
    }
}

/// Walks left from `@` over local-part bytes; `None` if there are none.
///
/// The walk takes the whole run even past RFC 5321's 64 bytes: stopping at
/// the limit would redact a tail and leave a valid-looking address (the
/// head of the run) in the text. The walk stops at the previous `@`, so the
/// walks over a text are linear in total.
fn local_part_start(bytes: &[u8], at: usize, floor: usize) -> Option<usize> {
    let mut start = at;
    while start > floor {
        if bytes.get(start - 1).copied().is_some_and(is_local_byte) {
            start -= 1;
        } else if let Some(len) = letter_before(bytes, start, floor) {
            // RFC 6531 allows UTF-8 local parts ("josé.garcía@..."):
            // stopping at "í" would report "a@..." and leave "josé.garcí"
            // behind. Letters and digits only, so "：" or "「" still stop it.
            start -= len;
        } else {
            break;
        }
    }
    // A local part neither starts nor ends with a dot ("see:.a@b.com").
    while start < at && bytes.get(start) == Some(&b'.') {
        start += 1;
    }
    let last = bytes.get(at.checked_sub(1)?).copied()?;
    (start < at && last != b'.').then_some(start)
}

/// The byte length of the non-ASCII letter or digit that ends just before
/// `end` (not reaching below `floor`), if that is what is there.
fn letter_before(bytes: &[u8], end: usize, floor: usize) -> Option<usize> {
    if bytes.get(end.checked_sub(1)?).is_none_or(|b| b.is_ascii()) {
        return None;
    }
    // A UTF-8 character is at most 4 bytes: find its lead byte.
    let lo = end.saturating_sub(4).max(floor);
    let lead = (lo..end).rev().find(|&i| bytes.get(i).is_some_and(|b| b & 0xC0 != 0x80))?;
    let c = std::str::from_utf8(bytes.get(lead..end)?).ok()?.chars().next()?;
    c.is_alphanumeric().then_some(end - lead)
}

/// Whether a letter or digit (or an invalid sequence) starts at `p`.
fn letter_after(bytes: &[u8], p: usize) -> bool {
    let tail = bytes.get(p..(p + 4).min(bytes.len())).unwrap_or_default();
    let valid = match std::str::from_utf8(tail) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(tail.get(..e.valid_up_to()).unwrap_or_default()).unwrap_or_default(),
    };
    valid.chars().next().is_none_or(char::is_alphanumeric)
}

/// How far left of `@` [`in_url_userinfo`] looks for `://`.
const MAX_USERINFO: usize = 256;

/// Whether the `@` at `at` ends the userinfo of a URL: walking left over
/// bytes a userinfo holds (no `/` or `@`) reaches `scheme://`. A `?` or `#`
/// in the walk ("https://host?to=a@b.com" is a query) counts only after a
/// `:` that is not a port, since people paste raw passwords holding them.
/// The walk stops at an `@`, so the walks over a text are linear in total.
fn in_url_userinfo(bytes: &[u8], at: usize, floor: usize) -> bool {
    let lo = at.saturating_sub(MAX_USERINFO).max(floor);
    let mut p = at;
    // Where a `?`/`#` was seen, and the first `:` (leftmost so far).
    let mut query = false;
    let mut colon = None;
    while p > lo {
        let b = bytes.get(p - 1).copied().unwrap_or(b'/');
        match b {
            b'/' => break,
            b'@' | b' ' | b'\t' | b'\r' | b'\n' | b'"' | b'<' | b'>' | b'`' => return false,
            b'?' | b'#' => query = true,
            b':' => colon = Some(p - 1),
            _ => {}
        }
        p -= 1;
    }
    // `p` is just after a `/`: need "scheme://" with a scheme letter.
    let scheme = p >= 4
        && bytes.get(p - 2) == Some(&b'/')
        && bytes.get(p - 3) == Some(&b':')
        && bytes.get(p - 4).is_some_and(u8::is_ascii_alphanumeric);
    if !scheme || p == at {
        return false;
    }
    if !query {
        return true;
    }
    // Userinfo with a raw `?`/`#`: a `:` must split user and password, and
    // what follows it must not be a port ("host:8080?to=a@b.com").
    let Some(c) = colon else { return false };
    let after = bytes.get(c + 1..at).unwrap_or_default();
    let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
    !(digits > 0 && after.get(digits).is_some_and(|b| *b == b'?' || *b == b'#'))
}

/// Walks right over dot-separated labels; returns the end of the domain if
/// it has at least two labels and a plausible top-level label.
fn domain_end(bytes: &[u8], from: usize) -> Option<usize> {
    let limit = (from + MAX_DOMAIN).min(bytes.len());
    let mut pos = from;
    let mut labels = 0;
    let mut end = None;
    loop {
        let label_start = pos;
        while pos < limit && bytes.get(pos).copied().is_some_and(is_label_byte) {
            pos += 1;
        }
        let label = bytes.get(label_start..pos)?;
        if label.is_empty() || label.len() > MAX_LABEL || label.first() == Some(&b'-') || label.last() == Some(&b'-') {
            break;
        }
        labels += 1;
        if labels >= 2 && is_top_level(label) {
            end = Some(pos);
        }
        // Continue only if a dot is followed by another label ("a@b.com." ends a sentence).
        match (bytes.get(pos), bytes.get(pos + 1)) {
            (Some(b'.'), Some(&next)) if is_label_byte(next) && pos + 1 < limit => pos += 1,
            _ => break,
        }
    }
    // Glued to more word characters (e.g. "a@b.com_x", "a@b.comé") is not
    // an address; punctuation such as "»" may follow.
    let end = end?;
    match bytes.get(end) {
        Some(&b) if b == b'_' || b >= 0x80 && letter_after(bytes, end) => None,
        _ => Some(end),
    }
}

fn is_top_level(label: &[u8]) -> bool {
    label.len() >= 2 && (label.iter().all(u8::is_ascii_alphabetic) || label.starts_with(b"xn--"))
}

fn has_context(bytes: &[u8], start: usize) -> bool {
    let window = bytes.get(start.saturating_sub(24)..start).unwrap_or_default();
    let window = window.to_ascii_lowercase();
    [&b"mail"[..], b"contact", b"reach"].iter().any(|w| window.windows(w.len()).any(|x| x == *w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emails(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        detect(text, &mut out);
        out.iter().map(|f| &text[f.start..f.end]).collect()
    }

    #[test]
    fn finds_common_shapes() {
        assert_eq!(emails("jane.doe@example.com"), ["jane.doe@example.com"]);
        assert_eq!(emails("Write to <j.o'hara+ai@mail.example.co.uk>."), ["j.o'hara+ai@mail.example.co.uk"]);
        assert_eq!(emails("a@b.co and x_y-z@sub-domain.example.org"), ["a@b.co", "x_y-z@sub-domain.example.org"]);
        assert_eq!(emails("\"mail\":\"a@b.io\""), ["a@b.io"]);
        assert_eq!(emails("user@xn--bcher-kva.example"), ["user@xn--bcher-kva.example"]);
    }

    #[test]
    fn a_non_ascii_local_part_is_taken_whole() {
        assert_eq!(emails("josé.garcía@example.com"), ["josé.garcía@example.com"]);
        assert_eq!(emails("Write to müller@example.de."), ["müller@example.de"]);
        assert_eq!(emails("邮箱：ming@example.cn"), ["ming@example.cn"]);
        assert_eq!(emails("«anne@example.fr»"), ["anne@example.fr"]);
        assert!(emails("a@example.comé").is_empty());
    }

    #[test]
    fn an_over_long_local_part_is_taken_whole() {
        // Cut at 64 bytes, the head "a@a.co" would stay behind as an address.
        let text = format!("a@a.com{}x@a.com", "5555-".repeat(20));
        let found = emails(&text);
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("a.com5555-") && found[0].ends_with("x@a.com"), "{found:?}");
    }

    #[test]
    fn url_userinfo_is_not_an_address() {
        for text in [
            "postgres://admin:Tiger42?x1@db.example.com:5432/app",
            "mysql://svc:p%40ss#word@mq.example.com/jobs",
            "DATABASE_URL=redis://app:hunter2@cache.prod.example.com:6379",
            "https://user@host.example.com/path",
            "see https://bob:s3cret@example.org.",
        ] {
            assert!(emails(text).is_empty(), "{text}: {:?}", emails(text));
        }
        // Addresses elsewhere in a URL, or after one, are still found (the
        // local-part walk takes RFC 5322's `/?=` too, so the span may be wider).
        for text in [
            "https://example.com/?to=a@b.com",
            "https://example.com?to=a@b.com",
            "https://example.com:8080?to=a@b.com",
            "https://example.com/users/a@b.com",
        ] {
            let got = emails(text);
            assert!(got.len() == 1 && got[0].ends_with("a@b.com"), "{text}: {got:?}");
        }
        assert_eq!(emails("mailto:jane@example.com"), ["jane@example.com"]);
        assert_eq!(emails("https://x.io/ then mail jane@example.com"), ["jane@example.com"]);
    }

    #[test]
    fn a_url_password_is_a_secret_not_an_address() {
        let text = "DATABASE_URL=mysql://svc_reports:Falcon203%Gw5a@mq.example.com:5811/jobs";
        let mut out = Vec::new();
        super::super::DetectorSet::new(EntityClass::ALL).scan(text, &mut out);
        let got: Vec<_> = out.iter().map(|f| (f.class, &text[f.start..f.end])).collect();
        assert_eq!(got, [(EntityClass::Secret, "Falcon203%Gw5a")]);
    }

    #[test]
    fn trims_sentence_punctuation() {
        assert_eq!(emails("mail me at bob@example.com."), ["bob@example.com"]);
        assert_eq!(emails("(.alice@example.net)"), ["alice@example.net"]);
    }

    #[test]
    fn rejects_near_misses() {
        for text in [
            "@example.com",
            "user@",
            "user@localhost",
            "user@example.c",
            "user@example.123",
            "user.@example.com",
            "git@github.com:org/repo is ssh", // still an address shape: see below
            "@@@@",
            "a@-b.com",
            "price 3@4.5",
            "me@例え.jp",
        ] {
            let got = emails(text);
            if text.starts_with("git@") {
                assert_eq!(got, ["git@github.com"], "{text}");
            } else {
                assert!(got.is_empty(), "{text}: {got:?}");
            }
        }
    }

    #[test]
    fn context_words_raise_confidence() {
        let mut out = Vec::new();
        detect("my email: a@b.com, and a long while later, c@d.com", &mut out);
        assert!(out[0].confidence > out[1].confidence);
    }

    #[test]
    fn adversarial_runs_stay_linear() {
        // 1 MiB of '@' and of "a@" — each must finish quickly and find nothing.
        assert!(emails(&"@".repeat(1 << 20)).is_empty());
        assert!(emails(&"a@".repeat(1 << 19)).is_empty());
        assert!(emails(&"a.".repeat(1 << 19)).is_empty());
    }
}
