//! Console passwords: Argon2id (the `argon2` crate's defaults: 19 MiB, 2
//! passes), hashed and checked on the blocking pool, never on the threads that
//! serve requests. An unknown email is checked against a fixed hash, so it
//! takes as long, and gets the same answer, as a wrong password.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use std::sync::LazyLock;

/// Shortest password accepted.
pub const MIN_LEN: usize = 8;

/// A hash no password matches in practice, for unknown emails.
static DECOY: LazyLock<String> =
    LazyLock::new(|| hash_now(&uuid::Uuid::new_v4().to_string()).unwrap_or_default());

fn hash_now(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn verify_now(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Why a new password is refused, for the form or the API.
pub fn check_new(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_LEN {
        return Err(format!("password must be at least {MIN_LEN} characters"));
    }
    if password.len() > 1024 {
        return Err("password must be at most 1024 bytes".into());
    }
    Ok(())
}

/// The PHC string of a new password's Argon2id hash.
pub async fn hash(password: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|e| e.to_string())?
}

/// Whether `password` matches `hash`; with no hash (unknown email, or a user
/// without a password) the decoy is checked and the answer is `false`.
pub async fn verify(hash: Option<String>, password: String) -> bool {
    tokio::task::spawn_blocking(move || match hash {
        Some(h) => verify_now(&h, &password),
        None => {
            let _ = verify_now(&DECOY, &password);
            false
        }
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ_by_salt() {
        let a = hash("correct horse".into()).await.unwrap_or_default();
        let b = hash("correct horse".into()).await.unwrap_or_default();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b);
        assert!(verify(Some(a.clone()), "correct horse".into()).await);
        assert!(!verify(Some(a), "wrong horse".into()).await);
        assert!(!verify(None, "correct horse".into()).await);
        assert!(check_new("short").is_err());
        assert!(check_new("long enough").is_ok());
    }
}
