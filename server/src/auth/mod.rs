//! Who is calling: the auth layer applied to the whole router, with a short
//! list of open routes. Keys are looked up by their SHA-256 hash in memory, so
//! no request waits on the database. In this version only the master key (and
//! a console session opened with it) authenticates; virtual keys plug into
//! [`Authenticator::authenticate`].

use crate::secret::Secret;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The session field holding the signed-in principal.
pub const SESSION_PRINCIPAL: &str = "principal";

/// What the caller is allowed to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The master key: every right.
    Master,
}

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct AuthContext {
    pub principal: Principal,
    /// SHA-256 (hex) of the key used, for logs; never the key.
    pub key_hash: Option<Arc<str>>,
    pub key_alias: Option<Arc<str>>,
}

impl AuthContext {
    pub fn is_admin(&self) -> bool {
        self.principal == Principal::Master
    }
}

pub struct Authenticator {
    master_hash: [u8; 32],
    master_hash_hex: Arc<str>,
    master_alias: Arc<str>,
}

impl Authenticator {
    pub fn new(master_key: &Secret) -> Self {
        let digest: [u8; 32] = Sha256::digest(master_key.expose().as_bytes()).into();
        Authenticator {
            master_hash: digest,
            master_hash_hex: hex::encode(digest).into(),
            master_alias: "master".into(),
        }
    }

    /// Resolves a presented API key. Constant-time on the hash.
    pub fn authenticate(&self, presented: &str) -> Option<AuthContext> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        if bool::from(digest.ct_eq(&self.master_hash)) {
            return Some(AuthContext {
                principal: Principal::Master,
                key_hash: Some(self.master_hash_hex.clone()),
                key_alias: Some(self.master_alias.clone()),
            });
        }
        None
    }

    /// The principal stored in a console session.
    pub fn session_principal(&self, principal: &str) -> Option<AuthContext> {
        (principal == "master").then(|| AuthContext {
            principal: Principal::Master,
            key_hash: Some(self.master_hash_hex.clone()),
            key_alias: Some(self.master_alias.clone()),
        })
    }
}

/// The key a client presented, from any header LiteLLM users send it in:
/// `Authorization: Bearer …`, `x-api-key` (Anthropic SDK), `api-key` (Azure SDK).
pub fn presented_key(headers: &http::HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        let token = match v.get(..6) {
            Some(scheme) if scheme.eq_ignore_ascii_case("bearer") => v[6..].trim(),
            _ => v,
        };
        if !token.is_empty() {
            return Some(token);
        }
    }
    for name in ["x-api-key", "api-key", "x-goog-api-key"] {
        if let Some(v) = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
        {
            if !v.is_empty() {
                return Some(v);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_key_authenticates_and_others_do_not() {
        let auth = Authenticator::new(&Secret::new("sk-master"));
        assert!(auth.authenticate("sk-master").is_some_and(|c| c.is_admin()));
        assert!(auth.authenticate("sk-master ").is_none());
        assert!(auth.authenticate("sk-other").is_none());
        assert!(auth.authenticate("").is_none());
    }

    #[test]
    fn keys_are_read_from_each_header_form() {
        let cases = [
            ("authorization", "Bearer sk-a", Some("sk-a")),
            ("authorization", "sk-b", Some("sk-b")),
            ("x-api-key", "sk-c", Some("sk-c")),
            ("api-key", "sk-d", Some("sk-d")),
            ("authorization", "Bearer ", None),
        ];
        for (name, value, want) in cases {
            let mut h = http::HeaderMap::new();
            h.insert(
                http::HeaderName::from_static(name),
                http::HeaderValue::from_str(value).unwrap_or(http::HeaderValue::from_static("")),
            );
            assert_eq!(presented_key(&h), want, "{name}: {value}");
        }
    }
}
