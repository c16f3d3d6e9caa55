//! Secret newtypes that never print, and constant-time API key checks.

use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// A secret string (client secret, API key). `Debug` prints `[redacted]`; there is no
/// `PartialEq`, so it can't be compared by accident in variable time.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// One entry of `INVITE_API_KEYS`: a label (logged, stored as `invited_by`) and the
/// SHA-256 of its key.
#[derive(Clone)]
pub struct ApiKey {
    /// Public name of the key, e.g. `backend` or `admin-2026`.
    pub label: String,
    digest: [u8; 32],
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}: [redacted])", self.label)
    }
}

impl ApiKey {
    /// Hashes `key` once at configuration time.
    pub fn new(label: impl Into<String>, key: &str) -> Self {
        ApiKey {
            label: label.into(),
            digest: Sha256::digest(key.as_bytes()).into(),
        }
    }
}

/// Finds the label of the key that `presented` matches.
///
/// Both sides are hashed first, so the comparison is over fixed 32-byte digests in constant
/// time and leaks neither the content nor the length of the keys, and every key is checked
/// even after a match.
pub fn match_api_key<'a>(keys: &'a [ApiKey], presented: &str) -> Option<&'a str> {
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let mut found = None;
    for k in keys {
        if bool::from(k.digest.ct_eq(&digest)) {
            found = Some(k.label.as_str());
        }
    }
    found
}

/// Extracts the token from an `Authorization: Bearer <token>` header value.
pub fn bearer_token(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "[redacted]");
        let k = ApiKey::new("ops", "k-0123456789abcdef");
        assert!(!format!("{k:?}").contains("0123456789"));
    }

    #[test]
    fn api_key_matching() {
        let keys = vec![
            ApiKey::new("old", "old-key-0123456789"),
            ApiKey::new("new", "new-key-0123456789"),
        ];
        assert_eq!(match_api_key(&keys, "new-key-0123456789"), Some("new"));
        assert_eq!(match_api_key(&keys, "old-key-0123456789"), Some("old"));
        assert_eq!(match_api_key(&keys, "new-key-012345678"), None);
        assert_eq!(match_api_key(&keys, ""), None);
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer   abc ")), Some("abc"));
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(Some("Bearer ")), None);
        assert_eq!(bearer_token(Some("abc")), None);
        assert_eq!(bearer_token(None), None);
    }
}
