//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys and
//! C2SP checkpoints (<https://c2sp.org/tlog-checkpoint>).
//!
//! - key id: first 4 bytes of `SHA-256(name || 0x0A || 0x01 || pubkey)`;
//! - verifier key: `name+<8 hex key id>+base64(0x01 || pubkey)`;
//! - signer key (the Go `sumdb/note` format): `PRIVATE+KEY+name+<8 hex>+base64(0x01 || seed)`;
//! - a note is its text (ending in `\n`), a blank line, and lines
//!   `— <name> <base64(key id || signature)>\n` signing the text bytes.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::{hex, Hash};
use crate::SinkError;

const ALG_ED25519: u8 = 0x01;
const SIG_PREFIX: &str = "\u{2014} ";

fn bad(msg: impl Into<String>) -> SinkError {
    SinkError::Note(msg.into())
}

fn check_name(name: &str) -> Result<(), SinkError> {
    if name.is_empty() || name.contains('+') || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(format!("key name {name:?} must be non-empty, without '+', spaces or control characters")));
    }
    Ok(())
}

pub fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public_key);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

fn parse_hex4(s: &str) -> Option<[u8; 4]> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        return None;
    }
    let v = u32::from_str_radix(s, 16).ok()?;
    Some(v.to_be_bytes())
}

/// Splits `name+hex+base64` (the base64 part may itself contain '+').
fn split_key(s: &str) -> Option<(&str, &str, &str)> {
    let (name, rest) = s.split_once('+')?;
    let (id, data) = rest.split_once('+')?;
    Some((name, id, data))
}

/// Decodes `base64(0x01 || 32 bytes)`.
fn decode_key_data(data: &str) -> Result<[u8; 32], SinkError> {
    let raw = B64.decode(data).map_err(|_| bad("key data is not base64"))?;
    match raw.split_first() {
        Some((&ALG_ED25519, rest)) => rest.try_into().map_err(|_| bad("ed25519 key data must be 32 bytes")),
        Some(_) => Err(bad("unsupported key algorithm (only ed25519, 0x01)")),
        None => Err(bad("empty key data")),
    }
}

/// The checkpoint signing key.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    id: [u8; 4],
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoteSigner({}+{})", self.name, hex(&self.id))
    }
}

impl NoteSigner {
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<NoteSigner, SinkError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(seed);
        let id = key_id(name, key.verifying_key().as_bytes());
        Ok(NoteSigner { name: name.to_string(), id, key })
    }

    /// Generates a fresh key from the OS random source.
    pub fn generate(name: &str) -> Result<NoteSigner, SinkError> {
        let mut seed = [0u8; 32];
        crate::random_bytes(&mut seed)?;
        NoteSigner::from_seed(name, &seed)
    }

    /// Parses `PRIVATE+KEY+name+<hex id>+base64(0x01 || seed)`.
    pub fn parse(text: &str) -> Result<NoteSigner, SinkError> {
        let rest =
            text.trim().strip_prefix("PRIVATE+KEY+").ok_or_else(|| bad("signing key must start with PRIVATE+KEY+"))?;
        let (name, id, data) = split_key(rest).ok_or_else(|| bad("signing key must be PRIVATE+KEY+name+id+data"))?;
        let id = parse_hex4(id).ok_or_else(|| bad("signing key id must be 8 lowercase hex digits"))?;
        let seed = decode_key_data(data)?;
        let signer = NoteSigner::from_seed(name, &seed)?;
        if signer.id != id {
            return Err(bad("signing key id does not match the key"));
        }
        Ok(signer)
    }

    /// The `PRIVATE+KEY+…` text form. Secret: store with mode 0600.
    pub fn to_private_string(&self) -> String {
        let mut data = vec![ALG_ED25519];
        data.extend_from_slice(self.key.as_bytes());
        format!("PRIVATE+KEY+{}+{}+{}", self.name, hex(&self.id), B64.encode(data))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier { name: self.name.clone(), id: self.id, key: self.key.verifying_key() }
    }

    /// Signs `text` (which must end with a newline) and returns the note.
    pub fn sign(&self, text: &str) -> Result<String, SinkError> {
        if !text.ends_with('\n') || text.contains("\n\n") {
            return Err(bad("note text must end with a newline and contain no blank line"));
        }
        let sig: Signature = self.key.sign(text.as_bytes());
        let mut blob = self.id.to_vec();
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!("{text}\n{SIG_PREFIX}{} {}\n", self.name, B64.encode(blob)))
    }
}

/// A checkpoint verifier key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses `name+<8 hex>+base64(0x01 || pubkey)` and checks the key id.
    pub fn parse(text: &str) -> Result<NoteVerifier, SinkError> {
        let text = text.trim();
        let (name, id, data) = split_key(text).ok_or_else(|| bad("verifier key must be name+id+data"))?;
        check_name(name)?;
        let id = parse_hex4(id).ok_or_else(|| bad("verifier key id must be 8 lowercase hex digits"))?;
        let pk = decode_key_data(data)?;
        if key_id(name, &pk) != id {
            return Err(bad("verifier key id does not match name and key"));
        }
        let key = VerifyingKey::from_bytes(&pk).map_err(|_| bad("not a valid ed25519 public key"))?;
        Ok(NoteVerifier { name: name.to_string(), id, key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn encode(&self) -> String {
        let mut data = vec![ALG_ED25519];
        data.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, hex(&self.id), B64.encode(data))
    }

    /// Verifies a signed note and returns its text. Signatures by other keys
    /// are ignored; at least one by this key must verify.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, SinkError> {
        let split = note.rfind("\n\n").ok_or_else(|| bad("no blank line between text and signatures"))?;
        let text = &note[..split + 1];
        let sigs = &note[split + 2..];
        if !sigs.ends_with('\n') || sigs.len() < 2 {
            return Err(bad("signature block must end with a newline"));
        }
        let mut found_ours = false;
        for line in sigs[..sigs.len() - 1].split('\n') {
            let rest = line.strip_prefix(SIG_PREFIX).ok_or_else(|| bad("signature line must start with '— '"))?;
            let (name, b64) = rest.split_once(' ').ok_or_else(|| bad("malformed signature line"))?;
            let blob = B64.decode(b64).map_err(|_| bad("signature is not base64"))?;
            if name != self.name || blob.len() < 4 || blob[..4] != self.id {
                continue;
            }
            found_ours = true;
            let sig = Signature::from_slice(&blob[4..]).map_err(|_| bad("ed25519 signature must be 64 bytes"))?;
            if self.key.verify_strict(text.as_bytes(), &sig).is_ok() {
                return Ok(text);
            }
        }
        Err(bad(if found_ours { "signature does not verify" } else { "note is not signed by this key" }))
    }
}

/// A C2SP tlog checkpoint body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    pub fn to_text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root))
    }

    /// Parses a checkpoint body (extension lines after the third are allowed and ignored).
    pub fn parse(text: &str) -> Result<Checkpoint, SinkError> {
        let mut lines = text.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or_else(|| bad("checkpoint has no origin"))?;
        let size_s = lines.next().ok_or_else(|| bad("checkpoint has no size line"))?;
        if size_s.is_empty()
            || !size_s.bytes().all(|b| b.is_ascii_digit())
            || (size_s.len() > 1 && size_s.starts_with('0'))
        {
            return Err(bad("checkpoint size must be a decimal number without leading zeros"));
        }
        let size = size_s.parse().map_err(|_| bad("checkpoint size out of range"))?;
        let root_s = lines.next().ok_or_else(|| bad("checkpoint has no root hash line"))?;
        let root: Hash = B64
            .decode(root_s)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| bad("checkpoint root must be base64 of 32 bytes"))?;
        Ok(Checkpoint { origin: origin.to_string(), size, root })
    }
}

/// A signed checkpoint: the note text and its parsed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub note: String,
    pub checkpoint: Checkpoint,
}

impl SignedCheckpoint {
    pub fn sign(checkpoint: Checkpoint, signer: &NoteSigner) -> Result<SignedCheckpoint, SinkError> {
        let note = signer.sign(&checkpoint.to_text())?;
        Ok(SignedCheckpoint { note, checkpoint })
    }

    /// Verifies a note with `verifier` and parses the checkpoint in it.
    pub fn open(note: &str, verifier: &NoteVerifier) -> Result<SignedCheckpoint, SinkError> {
        let text = verifier.open(note)?;
        Ok(SignedCheckpoint { note: note.to_string(), checkpoint: Checkpoint::parse(text)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example key and note of the Go reference implementation
    // (golang.org/x/mod/sumdb/note): an external known answer for key ids,
    // key encodings and signatures.
    const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const TEXT: &str =
        "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const NOTE_SIG: &str =
        "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn reproduces_the_go_reference_note_byte_for_byte() {
        let signer = NoteSigner::parse(SKEY).unwrap();
        assert_eq!(signer.to_private_string(), SKEY);
        assert_eq!(signer.verifier().encode(), VKEY);
        let note = signer.sign(TEXT).unwrap();
        assert_eq!(note, format!("{TEXT}\n{NOTE_SIG}"));
        let v = NoteVerifier::parse(VKEY).unwrap();
        assert_eq!(v.open(&note).unwrap(), TEXT);
    }

    #[test]
    fn checkpoint_round_trip_with_a_fixed_key() {
        let signer = NoteSigner::from_seed("example.com/log", &[7u8; 32]).unwrap();
        let verifier = NoteVerifier::parse(&signer.verifier().encode()).unwrap();
        let cp = Checkpoint { origin: "example.com/log".into(), size: 8, root: [9u8; 32] };
        let signed = SignedCheckpoint::sign(cp.clone(), &signer).unwrap();
        assert!(signed.note.starts_with("example.com/log\n8\nCQkJ"), "{}", signed.note);
        let opened = SignedCheckpoint::open(&signed.note, &verifier).unwrap();
        assert_eq!(opened.checkpoint, cp);
        // Ed25519 is deterministic: the same key signs the same bytes.
        assert_eq!(SignedCheckpoint::sign(cp, &signer).unwrap().note, signed.note);
    }

    #[test]
    fn tampered_notes_and_wrong_keys_fail() {
        let signer = NoteSigner::from_seed("log", &[1u8; 32]).unwrap();
        let verifier = signer.verifier();
        let cp = Checkpoint { origin: "log".into(), size: 3, root: [2u8; 32] };
        let note = SignedCheckpoint::sign(cp, &signer).unwrap().note;
        // Any changed byte in the text or signature fails.
        for i in 0..note.len() {
            if !note.is_char_boundary(i) || !note.is_char_boundary(i + 1) {
                continue;
            }
            let mut bytes = note.clone().into_bytes();
            bytes[i] = if bytes[i] == b'4' { b'5' } else { b'4' };
            let Ok(changed) = String::from_utf8(bytes) else { continue };
            assert!(SignedCheckpoint::open(&changed, &verifier).is_err(), "byte {i} changed: {changed:?}");
        }
        let other = NoteSigner::from_seed("log", &[3u8; 32]).unwrap().verifier();
        assert!(other.open(&note).is_err());
        let renamed = NoteSigner::from_seed("other", &[1u8; 32]).unwrap().verifier();
        assert!(renamed.open(&note).is_err());
    }

    #[test]
    fn rejects_malformed_keys() {
        assert!(NoteVerifier::parse("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").is_err());
        assert!(NoteVerifier::parse("PeterNeumann+c74f20a3+ApRc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").is_err());
        assert!(NoteVerifier::parse("PeterNeumann+c74f20a3").is_err());
        assert!(NoteSigner::parse("PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
            .is_err());
        assert!(NoteSigner::from_seed("a b", &[0; 32]).is_err());
        assert!(Checkpoint::parse("o\n01\nAAAA\n").is_err());
        assert!(Checkpoint::parse("o\n1\nAAAA\n").is_err());
    }
}
