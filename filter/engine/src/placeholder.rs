//! Typed, keyed placeholders: `[EMAIL_1a2b3c]`.
//!
//! The tag is a truncated HMAC-SHA256 of the value's canonical form under a
//! per-tenant key derived from `MESHWARD_PLACEHOLDER_KEY`, so the same value
//! gets the same placeholder across turns (the model can still tell two
//! people apart) while the provider cannot reverse or correlate tags across
//! tenants. The closing bracket means no placeholder is a prefix of another.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

use crate::detect::EntityClass;
use crate::EngineError;

type HmacSha256 = Hmac<Sha256>;

pub const KEY_VARIABLE: &str = "MESHWARD_PLACEHOLDER_KEY";
/// Below this the key is guessable; 32 random bytes are recommended.
const MIN_KEY_BYTES: usize = 16;
/// Hex digits of tag: 24 bits keeps prompts short; collisions only matter
/// within one conversation and are handled by reversible mode's map.
const TAG_HEX_DIGITS: usize = 6;

/// The operator's master key, as read from the VM environment.
#[derive(Clone)]
pub struct MasterKey(Vec<u8>);

impl MasterKey {
    pub fn new(value: &str) -> Result<MasterKey, EngineError> {
        if value.len() < MIN_KEY_BYTES {
            return Err(EngineError::InvalidSecret {
                variable: KEY_VARIABLE,
                reason: format!("it must be at least {MIN_KEY_BYTES} bytes (32 random bytes recommended)"),
            });
        }
        Ok(MasterKey(value.as_bytes().to_vec()))
    }

    /// The key one tenant's placeholders are made with.
    pub fn tenant_key(&self, tenant: &str) -> PlaceholderKey {
        let mut mac = new_mac(&self.0);
        mac.update(b"meshward placeholder key v1\0");
        mac.update(tenant.as_bytes());
        PlaceholderKey(new_mac(&mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Holds the MAC already keyed: keying HMAC-SHA256 costs two of the four
/// block compressions a placeholder takes, and the key never changes.
#[derive(Clone)]
pub struct PlaceholderKey(HmacSha256);

impl PlaceholderKey {
    /// The placeholder for `value` (as found in the text) of class `class`.
    pub fn placeholder(&self, class: EntityClass, value: &str) -> String {
        let mut mac = self.0.clone();
        mac.update(class.name().as_bytes());
        mac.update(&[0]);
        mac.update(class.canonical(value).as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(class.name().len() + TAG_HEX_DIGITS + 3);
        out.push('[');
        out.push_str(class.name());
        out.push('_');
        out.push_str(&hex(digest.get(..TAG_HEX_DIGITS / 2).unwrap_or_default()));
        out.push(']');
        out
    }
}

impl fmt::Debug for PlaceholderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlaceholderKey(<redacted>)")
    }
}

fn new_mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; the error arm cannot happen but must
    // not panic either, so fall back to an empty-keyed MAC type-wise.
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default()),
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let digit = |nibble: u8| char::from_digit(u32::from(nibble), 16).unwrap_or('0');
    bytes.iter().flat_map(|b| [digit(b >> 4), digit(b & 0xf)]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tenant: &str) -> PlaceholderKey {
        MasterKey::new("0123456789abcdef0123456789abcdef").unwrap().tenant_key(tenant)
    }

    /// Placeholders must not change between releases: a conversation spans
    /// upgrades, and VMs of two versions serve it during a roll. Expected
    /// tags computed independently (Python `hmac`, SHA-256).
    #[test]
    fn tags_match_known_answers() {
        let k = key("acme");
        assert_eq!(k.placeholder(EntityClass::Email, "A@b.co"), "[EMAIL_f6206c]");
        assert_eq!(k.placeholder(EntityClass::CreditCard, "4111 1111 1111 1111"), "[CREDIT_CARD_7596d8]");
    }

    #[test]
    fn shape_is_class_then_six_hex_digits() {
        let p = key("t").placeholder(EntityClass::Email, "a@b.co");
        assert!(p.starts_with("[EMAIL_") && p.ends_with(']'), "{p}");
        let tag = &p["[EMAIL_".len()..p.len() - 1];
        assert_eq!(tag.len(), 6);
        assert!(tag.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    #[test]
    fn stable_for_equal_values_distinct_otherwise() {
        let k = key("t");
        assert_eq!(k.placeholder(EntityClass::Email, "A@B.co"), k.placeholder(EntityClass::Email, "a@b.co"));
        assert_eq!(
            k.placeholder(EntityClass::CreditCard, "4111 1111 1111 1111"),
            k.placeholder(EntityClass::CreditCard, "4111-1111-1111-1111")
        );
        assert_ne!(k.placeholder(EntityClass::Email, "a@b.co"), k.placeholder(EntityClass::Email, "c@b.co"));
    }

    #[test]
    fn tenants_and_keys_give_different_tags() {
        let a = key("tenant-a").placeholder(EntityClass::Email, "a@b.co");
        let b = key("tenant-b").placeholder(EntityClass::Email, "a@b.co");
        let c = MasterKey::new("another key of enough length").unwrap().tenant_key("tenant-a");
        assert_ne!(a, b);
        assert_ne!(a, c.placeholder(EntityClass::Email, "a@b.co"));
    }

    #[test]
    fn short_keys_are_refused_and_never_printed() {
        assert!(matches!(MasterKey::new("short"), Err(EngineError::InvalidSecret { .. })));
        let k = MasterKey::new("super secret key value!").unwrap();
        assert!(!format!("{k:?}").contains("secret"));
    }
}
