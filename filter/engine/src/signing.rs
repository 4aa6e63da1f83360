//! Signed policy packs and the policy's identity (its SHA-256).
//!
//! A policy's identity must survive the trip through mesh tooling: Istio
//! turns the plugin configuration into a protobuf `Struct` and back, which
//! reorders keys and reformats whitespace. So the hash and the signature
//! cover the policy's *canonical* form — the parsed JSON value written
//! compactly with object members sorted by key — not its bytes.
//!
//! A signed pack is an envelope around the policy:
//!
//! ```json
//! {"meshward_signed_policy": 1, "key_id": "1a2b3c4d", "signature": "<base64>", "policy": { ... }}
//! ```
//!
//! The signature is ed25519 over `"meshward-policy-v1\n"` followed by the
//! canonical policy; `key_id` is the first four bytes of the SHA-256 of the
//! public key, in hex, so an operator can tell which key a pack expects.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::placeholder::hex;
use crate::EngineError;

/// The VM environment variable holding the policy verification key.
pub const PUBLIC_KEY_VARIABLE: &str = "MESHWARD_POLICY_PUBLIC_KEY";
/// The envelope's format member and version.
pub const ENVELOPE_MEMBER: &str = "meshward_signed_policy";
const ENVELOPE_FORMAT: u64 = 1;
/// Domain separation: a policy signature can never be replayed as a
/// signature over anything else the same key signs.
const CONTEXT: &[u8] = b"meshward-policy-v1\n";

/// The canonical text of a JSON value: compact, object members sorted by
/// key (byte order), strings escaped as serde_json writes them.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

// Recursion is bounded: every `Value` here came from serde_json's parser,
// which refuses documents nested deeper than 128 levels.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<_> = map.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(member, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// `sha256:<hex>` of the canonical policy: the version every decision carries.
pub fn policy_digest(policy: &Value) -> String {
    format!("sha256:{}", hex(&Sha256::digest(canonical_json(policy).as_bytes())))
}

/// A policy verification key (ed25519 public key, base64 of 32 bytes).
#[derive(Debug, Clone)]
pub struct PolicyPublicKey {
    key: VerifyingKey,
    id: String,
}

impl PolicyPublicKey {
    pub fn parse(text: &str) -> Result<PolicyPublicKey, EngineError> {
        let invalid =
            |reason: &str| EngineError::InvalidSecret { variable: PUBLIC_KEY_VARIABLE, reason: reason.into() };
        let bytes = STANDARD.decode(text.trim()).map_err(|_| invalid("not base64"))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| invalid("an ed25519 public key is 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| invalid("not a valid ed25519 public key"))?;
        Ok(PolicyPublicKey { id: key_id(&key), key })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The keys a filter accepts packs from, from [`PUBLIC_KEY_VARIABLE`]:
/// normally one, two while the signing key is rotated (the new public key
/// is added everywhere, packs are re-signed, then the old key is removed).
#[derive(Debug, Clone)]
pub struct PolicyKeyring(Vec<PolicyPublicKey>);

/// A rotation needs two keys; more is a mistake worth refusing.
const MAX_TRUSTED_KEYS: usize = 4;

impl PolicyKeyring {
    /// Base64 public keys separated by spaces or commas.
    pub fn parse(text: &str) -> Result<PolicyKeyring, EngineError> {
        let keys: Vec<PolicyPublicKey> = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|k| !k.is_empty())
            .map(PolicyPublicKey::parse)
            .collect::<Result<_, _>>()?;
        if keys.is_empty() || keys.len() > MAX_TRUSTED_KEYS {
            return Err(EngineError::InvalidSecret {
                variable: PUBLIC_KEY_VARIABLE,
                reason: format!("holds {} keys; give 1 to {MAX_TRUSTED_KEYS}", keys.len()),
            });
        }
        Ok(PolicyKeyring(keys))
    }

    /// The key a pack names, if trusted.
    fn key(&self, id: &str) -> Option<&PolicyPublicKey> {
        self.0.iter().find(|k| k.id == id)
    }

    fn ids(&self) -> String {
        self.0.iter().map(|k| k.id.as_str()).collect::<Vec<_>>().join(", ")
    }
}

fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    hex(digest.get(..4).unwrap_or_default())
}

/// A policy signing key: the 32-byte ed25519 seed, base64.
pub struct PolicySigningKey(SigningKey);

impl PolicySigningKey {
    pub fn from_seed(seed: [u8; 32]) -> PolicySigningKey {
        PolicySigningKey(SigningKey::from_bytes(&seed))
    }

    pub fn parse(text: &str) -> Result<PolicySigningKey, String> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| "the signing key is not base64".to_owned())?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| "an ed25519 signing key is a 32-byte seed".to_owned())?;
        Ok(Self::from_seed(seed))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.to_bytes())
    }

    /// The matching public key, base64 (the value of [`PUBLIC_KEY_VARIABLE`]).
    pub fn public_key_base64(&self) -> String {
        STANDARD.encode(self.0.verifying_key().as_bytes())
    }

    /// Wraps `policy` in a signed envelope.
    pub fn sign(&self, policy: &Value) -> Value {
        let signature = self.0.sign(&signed_message(policy));
        serde_json::json!({
            ENVELOPE_MEMBER: ENVELOPE_FORMAT,
            "key_id": key_id(&self.0.verifying_key()),
            "signature": STANDARD.encode(signature.to_bytes()),
            "policy": policy,
        })
    }
}

fn signed_message(policy: &Value) -> Vec<u8> {
    let mut message = CONTEXT.to_vec();
    message.extend_from_slice(canonical_json(policy).as_bytes());
    message
}

/// A parsed envelope, before its signature is checked.
#[derive(Debug)]
pub struct Envelope {
    pub key_id: String,
    signature: String,
    pub policy: Value,
}

/// Splits a configuration into the policy and, if it is a signed pack, its
/// envelope. `Ok(None)` means the document is a bare policy.
pub fn open_envelope(document: &Value) -> Result<Option<Envelope>, EngineError> {
    let Some(object) = document.as_object() else { return Ok(None) };
    let Some(format) = object.get(ENVELOPE_MEMBER) else { return Ok(None) };
    let error = |path: &str, message: &str| EngineError::Policy { path: path.into(), message: message.into() };
    if format.as_u64() != Some(ENVELOPE_FORMAT) {
        return Err(error(ENVELOPE_MEMBER, "signed policy format 1 is the only one this build reads"));
    }
    if let Some(unknown) =
        object.keys().find(|k| ![ENVELOPE_MEMBER, "key_id", "signature", "policy"].contains(&k.as_str()))
    {
        return Err(error(unknown, "unknown member of a signed policy envelope"));
    }
    let text = |name: &str| object.get(name).and_then(Value::as_str).map(str::to_owned);
    let key_id = text("key_id").ok_or_else(|| error("key_id", "missing or not a string"))?;
    let signature = text("signature").ok_or_else(|| error("signature", "missing or not a string"))?;
    let policy = object.get("policy").cloned().ok_or_else(|| error("policy", "missing"))?;
    Ok(Some(Envelope { key_id, signature, policy }))
}

impl Envelope {
    /// Checks the signature against the trusted key the pack names (strict
    /// ed25519 verification); returns that key's id.
    pub fn verify_with(&self, keyring: &PolicyKeyring) -> Result<String, EngineError> {
        match keyring.key(&self.key_id) {
            Some(key) => self.verify(key).map(|()| key.id.clone()),
            None => Err(EngineError::Policy {
                path: "signature".into(),
                message: format!(
                    "the pack was signed with key {} but {PUBLIC_KEY_VARIABLE} trusts key(s) {}",
                    self.key_id,
                    keyring.ids()
                ),
            }),
        }
    }

    /// Checks the signature against `key` (strict ed25519 verification).
    pub fn verify(&self, key: &PolicyPublicKey) -> Result<(), EngineError> {
        let refuse = |message: String| EngineError::Policy { path: "signature".into(), message };
        if self.key_id != key.id {
            return Err(refuse(format!(
                "the pack was signed with key {} but {PUBLIC_KEY_VARIABLE} is key {}",
                self.key_id, key.id
            )));
        }
        let bytes = STANDARD.decode(&self.signature).map_err(|_| refuse("the signature is not base64".into()))?;
        let signature = Signature::from_slice(&bytes).map_err(|_| refuse("the signature is not 64 bytes".into()))?;
        key.key.verify_strict(&signed_message(&self.policy), &signature).map_err(|_| {
            refuse("the signature does not match the policy: it was altered or signed by another key".into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> PolicySigningKey {
        PolicySigningKey::from_seed([7; 32])
    }

    #[test]
    fn canonical_form_ignores_key_order_and_whitespace() {
        let a: Value = serde_json::from_str(r#"{ "b": [1, {"y":2,"x":"é\n"}], "a": true }"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":true,"b":[1,{"x":"é\n","y":2}]}"#).unwrap();
        assert_eq!(canonical_json(&a), r#"{"a":true,"b":[1,{"x":"é\n","y":2}]}"#);
        assert_eq!(policy_digest(&a), policy_digest(&b));
        let c: Value = serde_json::from_str(r#"{"a":false,"b":[1,{"x":"é\n","y":2}]}"#).unwrap();
        assert_ne!(policy_digest(&a), policy_digest(&c));
        assert!(policy_digest(&a).starts_with("sha256:") && policy_digest(&a).len() == 7 + 64);
    }

    #[test]
    fn a_signed_pack_verifies_and_any_change_breaks_it() {
        let policy = json!({"meshward_policy": 1, "name": "p", "version": "1"});
        let envelope = key().sign(&policy);
        let public = PolicyPublicKey::parse(&key().public_key_base64()).unwrap();
        let opened = open_envelope(&envelope).unwrap().unwrap();
        assert_eq!(opened.key_id, public.id());
        opened.verify(&public).unwrap();

        let mut altered = envelope.clone();
        altered["policy"]["name"] = json!("q");
        let err = open_envelope(&altered).unwrap().unwrap().verify(&public).unwrap_err();
        assert!(err.to_string().contains("altered"), "{err}");

        let other = PolicySigningKey::from_seed([8; 32]);
        let other_public = PolicyPublicKey::parse(&other.public_key_base64()).unwrap();
        let err = opened.verify(&other_public).unwrap_err();
        assert!(err.to_string().contains("signed with key"), "{err}");
    }

    #[test]
    fn during_a_rotation_either_trusted_key_verifies_and_no_other() {
        let old = key();
        let new = PolicySigningKey::from_seed([9; 32]);
        let stranger = PolicySigningKey::from_seed([10; 32]);
        let both = format!("{} ,\n{}", old.public_key_base64(), new.public_key_base64());
        let keyring = PolicyKeyring::parse(&both).unwrap();
        let policy = json!({"meshward_policy": 1, "name": "p", "version": "1"});
        for signer in [&old, &new] {
            let opened = open_envelope(&signer.sign(&policy)).unwrap().unwrap();
            let id = opened.verify_with(&keyring).unwrap();
            assert_eq!(id, PolicyPublicKey::parse(&signer.public_key_base64()).unwrap().id());
        }
        let err = open_envelope(&stranger.sign(&policy)).unwrap().unwrap().verify_with(&keyring).unwrap_err();
        assert!(err.to_string().contains("trusts key(s)"), "{err}");
        // A pack naming a trusted key but signed by another is still refused.
        let mut forged = open_envelope(&stranger.sign(&policy)).unwrap().unwrap();
        forged.key_id = PolicyPublicKey::parse(&old.public_key_base64()).unwrap().id().to_owned();
        assert!(forged.verify_with(&keyring).is_err());
        assert!(PolicyKeyring::parse(" , ").is_err());
        let five = vec![old.public_key_base64(); 5].join(" ");
        assert!(PolicyKeyring::parse(&five).is_err());
    }

    #[test]
    fn a_reordered_pack_still_verifies() {
        let envelope = key().sign(&json!({"name": "p", "meshward_policy": 1, "version": "1", "mode": "monitor"}));
        // What Istio does to a Struct: same members, different order and spacing.
        let text = serde_json::to_string_pretty(&envelope).unwrap();
        let reparsed: Value = serde_json::from_str(&text).unwrap();
        let public = PolicyPublicKey::parse(&key().public_key_base64()).unwrap();
        open_envelope(&reparsed).unwrap().unwrap().verify(&public).unwrap();
    }

    #[test]
    fn malformed_envelopes_and_keys_are_named() {
        let path = |v: Value| match open_envelope(&v) {
            Err(EngineError::Policy { path, .. }) => path,
            other => panic!("expected an error, got {other:?}"),
        };
        assert_eq!(path(json!({"meshward_signed_policy": 2})), "meshward_signed_policy");
        assert_eq!(path(json!({"meshward_signed_policy": 1, "key_id": "a", "signature": "b"})), "policy");
        assert_eq!(path(json!({"meshward_signed_policy": 1, "signature": "b", "policy": {}})), "key_id");
        assert_eq!(path(json!({"meshward_signed_policy": 1, "extra": 1})), "extra");
        assert!(open_envelope(&json!({"meshward_policy": 1})).unwrap().is_none());
        assert!(PolicyPublicKey::parse("not base64!").is_err());
        assert!(PolicyPublicKey::parse(&STANDARD.encode([1u8; 31])).is_err());
        let bad_sig = json!({"meshward_signed_policy": 1, "key_id": "x", "signature": "AAAA", "policy": {}});
        let public = PolicyPublicKey::parse(&key().public_key_base64()).unwrap();
        let mut opened = open_envelope(&bad_sig).unwrap().unwrap();
        opened.key_id = public.id().to_owned();
        assert!(opened.verify(&public).unwrap_err().to_string().contains("64 bytes"));
    }
}
