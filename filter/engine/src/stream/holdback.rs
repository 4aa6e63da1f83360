//! The hold-back window of one text channel (one choice's content, one tool
//! call's arguments, one content block, ...).
//!
//! Deltas are appended to the channel's pending text. Of that text we
//! release, at once, everything before the earliest point where an entity
//! or a placeholder could still be incomplete — that is, could continue in
//! the next delta. The rest waits. The point is found per class from the
//! shape of its values: an e-mail address can only continue a trailing run
//! of address characters, a card number a trailing run of digits, spaces
//! and dashes, a placeholder a trailing `[` followed by placeholder
//! characters. Each run is also capped at the class's longest value, so the
//! window is bounded however the text looks. Classes without a shape here
//! hold back a fixed [`FALLBACK_WINDOW`].
//!
//! Because the decision depends only on the deltas (never on how the
//! transport cut the bytes), the client receives the same text for every
//! chunking of the same stream.

use crate::detect::EntityClass;
use crate::restore::RestoreMap;

/// Hold-back for a class this module has no shape for.
pub const FALLBACK_WINDOW: usize = 256;
/// Local part (64) + `@` + domain (253).
const EMAIL_WINDOW: usize = 64 + 1 + 253;
/// 19 digits and 18 separators.
const CARD_WINDOW: usize = 19 + 18;
/// A PEM block may be long; it is held from its `-----BEGIN` up to this.
/// The widest single-channel window; `limits.max_hold_back_bytes` may not
/// be set below it.
pub(crate) const PEM_WINDOW: usize = 8 << 10;

/// How a class's values look: which characters they are made of, and how
/// long they can be (in bytes, obfuscation included).
#[derive(Clone, Copy)]
enum Shape {
    /// A run of characters accepted by the predicate, at most this long.
    Run(fn(u8) -> bool, usize),
    /// Any text: the last N bytes.
    Window(usize),
}

fn is_email_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-@".contains(&b)
}

fn is_card_byte(b: u8) -> bool {
    b.is_ascii_digit() || b == b' ' || b == b'-'
}

fn is_phone_byte(b: u8) -> bool {
    b.is_ascii_digit() || b" -.()+/".contains(&b) || b == b'x' || b == b'e' || b == b't'
}

fn is_code_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b' ' || b == b'-'
}

fn is_ip_byte(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b'.' || b == b':' || b == b'/'
}

fn is_token_byte(b: u8) -> bool {
    !b.is_ascii_whitespace() && b != b'"' && b != b'\''
}

fn is_date_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b" -./,".contains(&b)
}

/// By name, so this keeps compiling while the catalogue grows.
fn shape(class: EntityClass) -> Shape {
    match class.name() {
        "EMAIL" => Shape::Run(is_email_byte, EMAIL_WINDOW),
        "CREDIT_CARD" => Shape::Run(is_card_byte, CARD_WINDOW),
        "PHONE" => Shape::Run(is_phone_byte, 32),
        "IBAN" => Shape::Run(is_code_byte, 34 + 9),
        "US_SSN" | "AU_TFN" | "AU_ABN" | "AU_ACN" | "AU_MEDICARE" => Shape::Run(is_card_byte, 20),
        "UK_NINO" | "PASSPORT" => Shape::Run(is_code_byte, 16),
        "IP_ADDRESS" => Shape::Run(is_ip_byte, 45),
        "SECRET" => Shape::Run(is_token_byte, FALLBACK_WINDOW),
        "DATE_OF_BIRTH" => Shape::Run(is_date_byte, 40),
        _ => Shape::Window(FALLBACK_WINDOW),
    }
}

/// The ASCII byte a character stands for when detectors fold obfuscation
/// (full-width forms), `Some(None)` for invisible format characters that
/// may sit inside a value, `None` for anything else non-ASCII.
fn folded(c: char) -> Option<Option<u8>> {
    match c {
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}' => Some(None),
        '\u{FF01}'..='\u{FF5E}' => u8::try_from(u32::from(c) - 0xFF01 + 0x21).ok().map(Some),
        '\u{3000}' => Some(Some(b' ')),
        c if c.is_ascii() => Some(Some(c as u8)),
        _ => None,
    }
}

/// Start of the trailing run of characters accepted by `keep`, but no
/// further back than `window` bytes.
fn run_start(text: &str, window: usize, keep: fn(u8) -> bool) -> usize {
    let floor = text.len().saturating_sub(window);
    let mut start = text.len();
    for (i, c) in text.char_indices().rev() {
        if i < floor {
            break;
        }
        let accepted = match folded(c) {
            Some(Some(b)) => keep(b),
            Some(None) => true,
            None => false,
        };
        if !accepted {
            break;
        }
        start = i;
    }
    start
}

/// How many bytes of `pending` may be released now, before looking at
/// complete findings (the caller also moves the cut back to the start of
/// any finding or placeholder that straddles it). Always a char boundary.
pub fn safe_cut(pending: &str, classes: &[EntityClass], restore: &RestoreMap) -> usize {
    let mut cut = pending.len();
    for class in classes {
        let start = match shape(*class) {
            Shape::Run(keep, window) => run_start(pending, window, keep),
            Shape::Window(window) => pending.len().saturating_sub(window),
        };
        cut = cut.min(start);
        if class.name() == "SECRET" {
            // A PEM block that has begun but not ended is held whole.
            if let Some(begin) = pending.rfind("-----BEGIN") {
                let ended = pending.get(begin..).is_some_and(|rest| rest.contains("-----END"));
                if !ended && pending.len() - begin <= PEM_WINDOW {
                    cut = cut.min(begin);
                }
            }
        }
    }
    if let Some(open) = restore.partial_start(pending) {
        cut = cut.min(open);
    }
    floor_char_boundary(pending, cut)
}

pub(crate) fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while at > 0 && !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [EntityClass; 2] = [EntityClass::Email, EntityClass::CreditCard];

    #[test]
    fn releases_up_to_where_an_entity_could_continue() {
        let none = RestoreMap::new();
        assert_eq!(safe_cut("Hello there, ", &ALL, &none), 12);
        assert_eq!(safe_cut("write to jane.doe@exa", &ALL, &none), 9);
        assert_eq!(safe_cut("card 4111 1111", &ALL, &none), 4);
        assert_eq!(safe_cut("Hello, world.", &[EntityClass::CreditCard], &none), 13);
        assert_eq!(safe_cut("Hello, world", &[EntityClass::Email], &none), 7);
        assert_eq!(safe_cut("", &ALL, &none), 0);
        assert_eq!(safe_cut("no classes", &[], &none), 10);
    }

    #[test]
    fn pem_blocks_are_held_until_they_end() {
        let none = RestoreMap::new();
        // The SECRET class is being added to the catalogue concurrently.
        let Some(secret) = EntityClass::from_name("SECRET") else { return };
        let open = "key:\n-----BEGIN PRIVATE KEY-----\nMIIE\nabc";
        assert_eq!(safe_cut(open, &[secret], &none), 5);
        let closed = "-----BEGIN X-----\nab\n-----END X-----\nok. ";
        assert_eq!(safe_cut(closed, &[secret], &none), closed.len());
    }

    #[test]
    fn window_is_bounded() {
        let none = RestoreMap::new();
        let long = "a".repeat(10_000);
        assert_eq!(safe_cut(&long, &[EntityClass::Email], &none), 10_000 - EMAIL_WINDOW);
        let digits = "1".repeat(100);
        assert_eq!(safe_cut(&digits, &[EntityClass::CreditCard], &none), 100 - CARD_WINDOW);
    }

    #[test]
    fn partial_placeholders_wait() {
        let mut m = RestoreMap::new();
        m.insert("[EMAIL_1a2b3c]".into(), "x@y.co".into());
        assert_eq!(safe_cut("see [EMAIL_1a", &[], &m), 4);
        assert_eq!(safe_cut("see [EMAIL_1a2b3c] ok", &[], &m), 21);
    }

    #[test]
    fn cuts_on_char_boundaries() {
        let none = RestoreMap::new();
        let text = "é".repeat(200);
        let cut = safe_cut(
            &text,
            &[EntityClass::Email, EntityClass::from_name("PHONE").unwrap_or(EntityClass::CreditCard)],
            &none,
        );
        assert!(text.is_char_boundary(cut));
        assert_eq!(cut, text.len(), "non-ASCII letters are no part of these classes");
        // Full-width digits and zero-width characters may be inside a value.
        assert_eq!(safe_cut("card ４１１１\u{200b}1", &[EntityClass::CreditCard], &none), 4);
    }
}
