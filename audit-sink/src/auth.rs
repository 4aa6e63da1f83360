//! Reader keys for the read API.
//!
//! `meshward-sink keys create --tenant T --caps read,export` prints a token
//! `mwk_<43 chars of base64url>` (32 random bytes) once and appends to
//! `<data-dir>/reader-keys.jsonl` only its SHA-256:
//!
//! ```text
//! {"caps":["read","export"],"created":"…","id":"3f2a9c1b","sha256":"<hex>","tenant":"T"}
//! ```
//!
//! Capabilities: `read` (GET /v1/events), `export` (GET /v1/export), `audit`
//! (GET /v1/entries when the sink runs with `--entries-auth`). Tenant `*`
//! means every tenant. The server re-reads the file when it changes, so keys
//! created while it runs work at once. Lookup is by the SHA-256 of the
//! presented token: the token has 256 bits of entropy, so timing of the
//! lookup reveals nothing useful about any stored key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::merkle::hex;
use crate::SinkError;

pub const KEYS_FILE: &str = "reader-keys.jsonl";
pub const CAPS: [&str; 3] = ["read", "export", "audit"];
const TOKEN_PREFIX: &str = "mwk_";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReaderKey {
    pub caps: Vec<String>,
    pub created: String,
    pub id: String,
    pub sha256: String,
    pub tenant: String,
}

impl ReaderKey {
    pub fn can(&self, cap: &str) -> bool {
        self.caps.iter().any(|c| c == cap)
    }

    /// True when the key may read `tenant`'s events.
    pub fn covers(&self, tenant: &str) -> bool {
        self.tenant == "*" || self.tenant == tenant
    }
}

fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

pub fn parse_caps(list: &str) -> Result<Vec<String>, SinkError> {
    let mut caps: Vec<String> = Vec::new();
    for c in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        if !CAPS.contains(&c) {
            return Err(SinkError::Auth(format!("unknown capability {c:?} (known: {})", CAPS.join(", "))));
        }
        if !caps.iter().any(|x| x == c) {
            caps.push(c.to_string());
        }
    }
    if caps.is_empty() {
        return Err(SinkError::Auth("no capability given".into()));
    }
    Ok(caps)
}

/// Creates a key, stores its hash, returns the token (shown once) and the record.
pub fn create_key(data_dir: &Path, tenant: &str, caps: Vec<String>) -> Result<(String, ReaderKey), SinkError> {
    if tenant.is_empty() || tenant.chars().any(char::is_control) {
        return Err(SinkError::Auth("tenant must be a non-empty name, or * for all tenants".into()));
    }
    std::fs::create_dir_all(data_dir).map_err(|e| SinkError::io(format!("creating {}", data_dir.display()), e))?;
    let mut secret = [0u8; 32];
    crate::random_bytes(&mut secret)?;
    let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
    let sha256 = token_hash(&token);
    let key = ReaderKey {
        caps,
        created: meshward_audit_proto::time::format_rfc3339_ms(crate::storage::unix_ms()),
        id: sha256[..8].to_string(),
        sha256,
        tenant: tenant.to_string(),
    };
    let line = serde_json::to_vec(&key).map_err(|e| SinkError::Auth(e.to_string()))?;
    crate::storage::append_line(&data_dir.join(KEYS_FILE), &line, 0o600)?;
    Ok((token, key))
}

pub fn load_keys(path: &Path) -> Result<Vec<ReaderKey>, SinkError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SinkError::io(format!("reading {}", path.display()), e)),
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        // A torn last line (crash during `keys create`) is skipped, not fatal.
        match serde_json::from_str::<ReaderKey>(line) {
            Ok(k) => out.push(k),
            Err(e) => eprintln!("meshward-sink: skipping line {} of {}: {e}", n + 1, path.display()),
        }
    }
    Ok(out)
}

#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    Unknown,
}

/// (file stamp, keys by SHA-256 hex)
type KeyCache = (Option<(SystemTime, u64)>, HashMap<String, ReaderKey>);

/// The server's view of the key file, reloaded when it changes.
#[derive(Debug)]
pub struct KeyRing {
    path: PathBuf,
    cache: Mutex<KeyCache>,
}

impl KeyRing {
    pub fn new(data_dir: &Path) -> KeyRing {
        KeyRing { path: data_dir.join(KEYS_FILE), cache: Mutex::new((None, HashMap::new())) }
    }

    /// Resolves an `Authorization` header value.
    pub fn authenticate(&self, header: Option<&str>) -> Result<ReaderKey, AuthError> {
        let token = header
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| t.starts_with(TOKEN_PREFIX))
            .ok_or(AuthError::Missing)?;
        let hash = token_hash(token);
        let Ok(mut cache) = self.cache.lock() else { return Err(AuthError::Unknown) };
        let stamp =
            std::fs::metadata(&self.path).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        if stamp != cache.0 {
            match load_keys(&self.path) {
                Ok(keys) => {
                    cache.1 = keys.into_iter().map(|k| (k.sha256.clone(), k)).collect();
                    cache.0 = stamp;
                }
                Err(e) => eprintln!("meshward-sink: cannot load reader keys: {e}"),
            }
        }
        cache.1.get(&hash).cloned().ok_or(AuthError::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_keys_authenticate_and_are_stored_as_hashes_only() {
        let d = tempfile::tempdir().unwrap();
        let ring = KeyRing::new(d.path());
        let (token, key) = create_key(d.path(), "acme", parse_caps("read,export,read").unwrap()).unwrap();
        assert!(token.starts_with("mwk_") && token.len() == 4 + 43);
        assert_eq!(key.caps, vec!["read", "export"]);
        let stored = std::fs::read_to_string(d.path().join(KEYS_FILE)).unwrap();
        assert!(!stored.contains(&token[4..]), "the token itself must never be stored");
        assert!(stored.contains(&key.sha256));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(d.path().join(KEYS_FILE)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);

        let got = ring.authenticate(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(got, key);
        assert!(got.covers("acme") && !got.covers("other") && got.can("export") && !got.can("audit"));
        assert_eq!(ring.authenticate(None), Err(AuthError::Missing));
        assert_eq!(ring.authenticate(Some(&token)), Err(AuthError::Missing));
        assert_eq!(ring.authenticate(Some("Bearer mwk_nope")), Err(AuthError::Unknown));
        // A key created later is picked up without a restart.
        let (t2, _) = create_key(d.path(), "*", parse_caps("audit").unwrap()).unwrap();
        assert!(ring.authenticate(Some(&format!("Bearer {t2}"))).unwrap().covers("anyone"));
    }

    #[test]
    fn rejects_unknown_capabilities() {
        assert!(parse_caps("read,write").is_err());
        assert!(parse_caps("").is_err());
    }
}
