//! Standard Webhooks v1 (<https://www.standardwebhooks.com/>), symmetric
//! signatures only.
//!
//! - signed content: `"{webhook-id}.{webhook-timestamp}.{body}"`;
//! - signature: `v1,` + base64(HMAC-SHA256(secret, signed content));
//! - `webhook-signature` may hold several space-separated signatures (key
//!   rotation); one match suffices; entries of other versions are ignored;
//! - comparison is constant time; timestamps further than
//!   [`TOLERANCE_SECS`] from now, in either direction, are rejected.
//!
//! Deduplication on `webhook-id` is the receiver's job (the sink does it).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::Error;

/// Largest accepted `|now - webhook-timestamp|`, seconds.
pub const TOLERANCE_SECS: i64 = 300;
/// Longest accepted `webhook-id`.
pub const MAX_ID_LEN: usize = 256;

const PREFIX: &str = "whsec_";

/// A `whsec_…` signing secret. `Debug` does not print the key.
#[derive(Clone)]
pub struct Secret {
    key: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(whsec_…)")
    }
}

impl Secret {
    /// Parses `whsec_` + base64. The prefix is required so that a secret of
    /// another kind pasted by mistake is refused instead of used.
    pub fn parse(text: &str) -> Result<Secret, Error> {
        let b64 = text.trim().strip_prefix(PREFIX).ok_or(Error::InvalidSecret("must start with whsec_"))?;
        let key = B64.decode(b64).map_err(|_| Error::InvalidSecret("the part after whsec_ is not base64"))?;
        if key.is_empty() {
            return Err(Error::InvalidSecret("empty key"));
        }
        Ok(Secret { key })
    }

    /// Builds a secret from raw key bytes.
    pub fn from_bytes(key: &[u8]) -> Secret {
        Secret { key: key.to_vec() }
    }

    /// The `whsec_…` text form.
    pub fn to_whsec(&self) -> String {
        format!("{PREFIX}{}", B64.encode(&self.key))
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length; new_from_slice cannot fail for it.
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable_hmac(),
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// The `webhook-signature` value for one message: `v1,<base64>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", B64.encode(self.mac(id, &timestamp.to_string(), body)))
    }

    /// Verifies one delivery given its three header values, the raw body and
    /// the receiver's clock (`now`, Unix seconds).
    pub fn verify(
        &self,
        id: &str,
        timestamp: &str,
        signature_header: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(), Error> {
        verify_any(std::slice::from_ref(self), id, timestamp, signature_header, body, now)
    }
}

// HMAC-SHA256 takes keys of any length, so `new_from_slice` never fails; kept
// out of line so that the impossible branch does not use `unwrap`.
#[cold]
fn unreachable_hmac() -> ! {
    unreachable!("HMAC-SHA256 accepts keys of any length")
}

/// Parses `webhook-timestamp`: decimal Unix seconds.
pub fn parse_timestamp(text: &str) -> Result<i64, Error> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidTimestamp);
    }
    text.parse().map_err(|_| Error::InvalidTimestamp)
}

/// Like [`Secret::verify`], accepting a signature made with any of `secrets`
/// (secret rotation on the receiving side).
///
/// Order of checks: header syntax, timestamp window, then signatures.
pub fn verify_any(
    secrets: &[Secret],
    id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now: i64,
) -> Result<(), Error> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(Error::InvalidHeader("webhook-id"));
    }
    let ts = parse_timestamp(timestamp)?;
    if (now - ts).abs() > TOLERANCE_SECS {
        return Err(Error::TimestampOutOfTolerance { timestamp: ts, now });
    }
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    for part in signature_header.split(' ').filter(|p| !p.is_empty()).take(16) {
        if let Some(b64) = part.strip_prefix("v1,") {
            if let Ok(sig) = B64.decode(b64) {
                candidates.push(sig);
            }
        }
    }
    let mut matched = subtle::Choice::from(0u8);
    for secret in secrets {
        let expected = secret.mac(id, timestamp, body);
        for sig in &candidates {
            // Length is public (always 32 for a genuine signature); contents are compared in constant time.
            matched |= expected.as_slice().ct_eq(sig.as_slice());
        }
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(Error::NoMatchingSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // DESIGN.md §4, the Standard Webhooks reference vector.
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: i64 = 1_649_367_553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    #[test]
    fn signs_the_reference_vector() {
        let s = Secret::parse(SECRET).unwrap();
        assert_eq!(s.sign(ID, TS, BODY), SIG);
        assert_eq!(s.to_whsec(), SECRET);
    }

    #[test]
    fn verifies_the_reference_vector_within_tolerance() {
        let s = Secret::parse(SECRET).unwrap();
        assert_eq!(s.verify(ID, "1649367553", SIG, BODY, TS), Ok(()));
        assert_eq!(s.verify(ID, "1649367553", SIG, BODY, TS + 300), Ok(()));
        assert_eq!(s.verify(ID, "1649367553", SIG, BODY, TS - 300), Ok(()));
    }

    #[test]
    fn rejects_stale_and_future_timestamps() {
        let s = Secret::parse(SECRET).unwrap();
        assert!(matches!(s.verify(ID, "1649367553", SIG, BODY, TS + 301), Err(Error::TimestampOutOfTolerance { .. })));
        assert!(matches!(s.verify(ID, "1649367553", SIG, BODY, TS - 301), Err(Error::TimestampOutOfTolerance { .. })));
        for bad in ["", "-1", "16493675.53", "1649367553 ", "99999999999999999999"] {
            assert_eq!(s.verify(ID, bad, SIG, BODY, TS), Err(Error::InvalidTimestamp), "{bad:?}");
        }
    }

    #[test]
    fn rejects_tampering_of_any_signed_part() {
        let s = Secret::parse(SECRET).unwrap();
        let nope = Err(Error::NoMatchingSignature);
        assert_eq!(s.verify("msg_other", "1649367553", SIG, BODY, TS), nope);
        assert_eq!(s.verify(ID, "1649367554", SIG, BODY, TS), nope);
        assert_eq!(s.verify(ID, "1649367553", SIG, b"{}", TS), nope);
        assert_eq!(s.verify(ID, "1649367553", "v1,AAAA", BODY, TS), nope);
        assert_eq!(s.verify(ID, "1649367553", "v2,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=", BODY, TS), nope);
        assert_eq!(s.verify(ID, "1649367553", "", BODY, TS), nope);
        let other = Secret::from_bytes(b"another key");
        assert_eq!(other.verify(ID, "1649367553", SIG, BODY, TS), nope);
        assert_eq!(s.verify("", "1649367553", SIG, BODY, TS), Err(Error::InvalidHeader("webhook-id")));
    }

    #[test]
    fn accepts_any_of_several_signatures_and_secrets() {
        let s = Secret::parse(SECRET).unwrap();
        let header = format!("v1a,garbage v1,AAAA {SIG} v1,bm90IGEgc2lnbmF0dXJl");
        assert_eq!(s.verify(ID, "1649367553", &header, BODY, TS), Ok(()));
        let old = Secret::from_bytes(b"old key");
        assert_eq!(verify_any(&[old, s], ID, "1649367553", SIG, BODY, TS), Ok(()));
    }

    #[test]
    fn parses_only_whsec_secrets() {
        assert!(Secret::parse("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").is_err());
        assert!(Secret::parse("whsec_").is_err());
        assert!(Secret::parse("whsec_!!!").is_err());
        assert_eq!(format!("{:?}", Secret::parse(SECRET).unwrap()), "Secret(whsec_…)");
    }
}
