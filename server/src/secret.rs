//! Secrets that must never reach a log line, an error body or a client.

use std::fmt;

/// A secret string: `Debug` and `Display` print a mask, and it has no `Serialize`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it (an upstream header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// Seals secrets kept in the database (provider keys of models added through
/// the API) with AES-256-GCM, under a key derived from the salt key
/// (`TOLLGATE_SALT_KEY`, or LiteLLM's `LITELLM_SALT_KEY`) or, without one,
/// the master key. A sealed value reads `enc:v1:` + base64(nonce ‖ ciphertext).
pub struct Sealer {
    key: aws_lc_rs::aead::LessSafeKey,
}

const SEALED_PREFIX: &str = "enc:v1:";

impl Sealer {
    pub fn new(salt: &str) -> Result<Self, String> {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"tollgate stored secrets\0");
        h.update(salt.as_bytes());
        let digest = h.finalize();
        let unbound = aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &digest)
            .map_err(|e| format!("cannot make the key for stored secrets: {e}"))?;
        Ok(Sealer {
            key: aws_lc_rs::aead::LessSafeKey::new(unbound),
        })
    }

    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(SEALED_PREFIX)
    }

    pub fn seal(&self, plain: &str) -> Result<String, &'static str> {
        use aws_lc_rs::aead::{Aad, Nonce, NONCE_LEN};
        use base64::Engine;
        let mut nonce = [0u8; NONCE_LEN];
        rand::Rng::fill(&mut rand::rng(), &mut nonce[..]);
        let mut buf = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .map_err(|_| "sealing failed")?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!(
            "{SEALED_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        ))
    }

    /// The plain value of a sealed one; a value that is not sealed is returned as is.
    pub fn open(&self, value: &str) -> Result<String, &'static str> {
        use aws_lc_rs::aead::{Aad, Nonce, NONCE_LEN};
        use base64::Engine;
        let Some(b64) = value.strip_prefix(SEALED_PREFIX) else {
            return Ok(value.to_string());
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| "the stored value is not valid base64")?;
        if raw.len() < NONCE_LEN {
            return Err("the stored value is too short");
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| "bad nonce")?;
        let mut buf = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut buf)
            .map_err(|_| "it cannot be decrypted with this salt key (was TOLLGATE_SALT_KEY or the master key changed?)")?;
        String::from_utf8(plain.to_vec()).map_err(|_| "the decrypted value is not UTF-8")
    }
}

/// Removes the password from a connection string such as `postgres://user:pass@host/db`.
pub fn redact_dsn(dsn: &str) -> String {
    let Some((scheme, rest)) = dsn.split_once("://") else {
        return dsn.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:****@{host}")
        }
        None => dsn.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_mask_the_value() {
        let s = Secret::new("sk-very-secret");
        assert_eq!(format!("{s:?}"), "Secret(****)");
        assert_eq!(format!("{s}"), "****");
        assert_eq!(s.expose(), "sk-very-secret");
    }

    #[test]
    fn sealed_values_open_with_the_same_salt_only() {
        let salt = |s| Sealer::new(s).unwrap_or_else(|e| panic!("{e}"));
        let a = salt("salt-a");
        let seal = |p| a.seal(p).unwrap_or_else(|e| panic!("{e}"));
        let sealed = seal("sk-provider");
        assert!(Sealer::is_sealed(&sealed));
        assert!(!sealed.contains("sk-provider"));
        assert_ne!(sealed, seal("sk-provider"), "each seal has its own nonce");
        assert_eq!(a.open(&sealed), Ok("sk-provider".to_string()));
        assert!(salt("salt-b").open(&sealed).is_err());
        assert_eq!(a.open("os.environ/X"), Ok("os.environ/X".to_string()));
    }

    #[test]
    fn dsn_password_is_redacted() {
        assert_eq!(
            redact_dsn("postgres://tg:hunter2@db:5432/tollgate"),
            "postgres://tg:****@db:5432/tollgate"
        );
        assert_eq!(redact_dsn("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
