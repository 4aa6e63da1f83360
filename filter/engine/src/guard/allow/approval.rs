//! Approval tokens: a human (or a workflow) approves one tool for one tenant
//! until a deadline, and the client carries the proof in
//! `x-meshward-approval`. A token is
//! `mwa1.<expiry>.<base64url-nopad(HMAC-SHA256(key, message))>` with
//! message = `meshward-approval-v1\n<tenant>\n<tool>\n<expiry>`, so a token
//! for one tenant, tool or deadline proves nothing about another.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::b64;
use super::tools::shown_name;
use super::{violation, Violation};

type HmacSha256 = Hmac<Sha256>;

/// Header the tokens travel in (comma-separated when there are several).
pub const APPROVAL_HEADER: &str = "x-meshward-approval";
const TOKEN_PREFIX: &str = "mwa1.";
const MESSAGE_CONTEXT: &[u8] = b"meshward-approval-v1\n";
/// Shorter keys make the MAC guessable by brute force.
pub const MIN_KEY_BYTES: usize = 32;
/// At most this many tokens of one header are verified (each costs an HMAC).
const MAX_TOKENS_CHECKED: usize = 16;
/// u64::MAX has 20 digits.
const MAX_EXPIRY_DIGITS: usize = 20;

/// The approval key from `MESHWARD_APPROVAL_KEY`, keyed once into an HMAC
/// state that each verification clones. Debug output never shows it.
#[derive(Clone)]
pub struct ApprovalKey(HmacSha256);

impl fmt::Debug for ApprovalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApprovalKey(..)")
    }
}

impl ApprovalKey {
    /// The secret's bytes are the key; it must be at least 32 bytes long.
    pub fn new(secret: &str) -> Result<ApprovalKey, String> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(format!(
                "MESHWARD_APPROVAL_KEY must be at least {MIN_KEY_BYTES} bytes (it has {})",
                secret.len()
            ));
        }
        HmacSha256::new_from_slice(secret.as_bytes())
            .map(ApprovalKey)
            .map_err(|_| "MESHWARD_APPROVAL_KEY cannot key HMAC-SHA256".to_string())
    }

    fn mac(&self, tenant: &str, tool: &str, expiry: &str) -> HmacSha256 {
        let mut mac = self.0.clone();
        mac.update(MESSAGE_CONTEXT);
        mac.update(tenant.as_bytes());
        mac.update(b"\n");
        mac.update(tool.as_bytes());
        mac.update(b"\n");
        mac.update(expiry.as_bytes());
        mac
    }
}

/// Mints a token approving `tool` for `tenant` until `expiry_unix` (exclusive).
/// A tenant or tool containing a newline gets a token that never verifies,
/// since the newline separates the fields of the signed message.
pub fn mint_approval(key: &ApprovalKey, tenant: &str, tool: &str, expiry_unix: u64) -> String {
    let expiry = expiry_unix.to_string();
    let tag = key.mac(tenant, tool, &expiry).finalize().into_bytes();
    format!("{TOKEN_PREFIX}{expiry}.{}", b64::encode_url_nopad(&tag))
}

/// How one token fared, worst to best.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TokenOutcome {
    Malformed,
    WrongMac,
    Expired,
    Valid,
}

fn check_token(key: &ApprovalKey, token: &str, tenant: &str, tool: &str, now_unix: u64) -> TokenOutcome {
    let Some(rest) = token.strip_prefix(TOKEN_PREFIX) else {
        return TokenOutcome::Malformed;
    };
    let Some((expiry, tag)) = rest.split_once('.') else {
        return TokenOutcome::Malformed;
    };
    // One spelling per deadline: no sign, no leading zeros.
    let canonical = !expiry.is_empty()
        && expiry.len() <= MAX_EXPIRY_DIGITS
        && expiry.bytes().all(|b| b.is_ascii_digit())
        && (expiry == "0" || !expiry.starts_with('0'));
    let (true, Ok(expiry_unix)) = (canonical, expiry.parse::<u64>()) else {
        return TokenOutcome::Malformed;
    };
    let Some(tag) = b64::decode_url_nopad(tag) else {
        return TokenOutcome::Malformed;
    };
    // `verify_slice` compares in constant time (and refuses a wrong length).
    if key.mac(tenant, tool, expiry).verify_slice(&tag).is_err() {
        return TokenOutcome::WrongMac;
    }
    if expiry_unix <= now_unix {
        return TokenOutcome::Expired;
    }
    TokenOutcome::Valid
}

/// Accepts when any token in the header value approves `tool` for `tenant`
/// at `now_unix`. The violation says whether a matching token had expired,
/// never what the tokens were.
pub fn verify_approval(
    key: &ApprovalKey,
    header_value: &str,
    tenant: &str,
    tool: &str,
    now_unix: u64,
) -> Result<(), Violation> {
    let shown = shown_name(tool);
    let tokens = header_value.split(',').map(str::trim).filter(|t| !t.is_empty());
    let mut best: Option<TokenOutcome> = None;
    if !tenant.contains('\n') && !tool.contains('\n') {
        for token in tokens.take(MAX_TOKENS_CHECKED) {
            let outcome = check_token(key, token, tenant, tool, now_unix);
            if outcome == TokenOutcome::Valid {
                return Ok(());
            }
            best = best.max(Some(outcome));
        }
    }
    let detail = match best {
        None => format!("tool {shown} needs an approval token in {APPROVAL_HEADER}"),
        Some(TokenOutcome::Expired) => format!("the approval for tool {shown} has expired"),
        Some(_) => format!("no token in {APPROVAL_HEADER} approves tool {shown} for this tenant"),
    };
    Err(violation("allow.approval", detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ApprovalKey {
        ApprovalKey::new("0123456789abcdef0123456789abcdef").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn token_shape() {
        let token = mint_approval(&key(), "acme", "deploy", 1_700_000_000);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts.first(), Some(&"mwa1"));
        assert_eq!(parts.get(1), Some(&"1700000000"));
        assert_eq!(parts.get(2).map(|t| t.len()), Some(43));
    }

    #[test]
    fn mac_matches_an_independent_computation() {
        let token = mint_approval(&key(), "acme", "deploy", 42);
        let mut mac = HmacSha256::new_from_slice(b"0123456789abcdef0123456789abcdef").unwrap_or_else(|e| panic!("{e}"));
        mac.update(b"meshward-approval-v1\nacme\ndeploy\n42");
        let expected = format!("mwa1.42.{}", b64::encode_url_nopad(&mac.finalize().into_bytes()));
        assert_eq!(token, expected);
    }

    #[test]
    fn outcomes() {
        let k = key();
        let token = mint_approval(&k, "acme", "deploy", 100);
        assert_eq!(check_token(&k, &token, "acme", "deploy", 99), TokenOutcome::Valid);
        assert_eq!(check_token(&k, &token, "acme", "deploy", 100), TokenOutcome::Expired);
        assert_eq!(check_token(&k, &token, "other", "deploy", 99), TokenOutcome::WrongMac);
        let padded = token.replacen("mwa1.100.", "mwa1.0100.", 1);
        assert_eq!(check_token(&k, &padded, "acme", "deploy", 99), TokenOutcome::Malformed);
        assert_eq!(check_token(&k, "mwa1.100", "acme", "deploy", 99), TokenOutcome::Malformed);
    }

    #[test]
    fn newline_in_names_never_verifies() {
        let k = key();
        let token = mint_approval(&k, "a\nb", "c", 100);
        assert!(verify_approval(&k, &token, "a\nb", "c", 1).is_err());
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(ApprovalKey::new("short").is_err());
        assert!(format!("{:?}", key()).contains(".."));
        assert!(!format!("{:?}", key()).contains("0123"));
    }
}
