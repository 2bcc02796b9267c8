//! Okta JWTs on the API: with `OKTA_ISSUER` and `OKTA_AUDIENCE` set, a bearer
//! token that is a JWT access token of that issuer, for that audience, is
//! accepted in place of a key. It is verified against the issuer's JWKS
//! (signature, `iss`, `aud`, `exp`, `nbf`); the keys are cached and read again
//! when a token names a key id they do not have (at most every 30 s) or after
//! an hour. The caller is the user whose id is the token's `sub`, never with
//! admin rights; a subject with no user yet may only create that user
//! (`/user/new`, as an `internal_user`).

use crate::config::env::Env;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
use serde::Deserialize;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

const KEYS_TTL: Duration = Duration::from_secs(3600);
const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(30);

pub struct ApiJwt {
    issuer: String,
    audience: String,
    http: reqwest::Client,
    keys: RwLock<Option<(JwkSet, Instant)>>,
}

/// What a verified token says about its caller.
#[derive(Debug, Clone, Deserialize)]
pub struct JwtClaims {
    pub sub: String,
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
}

/// Whether a presented credential has the shape of a JWT (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.split('.').count() == 3
}

impl ApiJwt {
    /// `None` unless both `OKTA_ISSUER` and `OKTA_AUDIENCE` are set.
    pub fn from_env(env: &Env) -> Option<ApiJwt> {
        let issuer = env.get("OKTA_ISSUER").filter(|v| !v.is_empty())?;
        let audience = env.get("OKTA_AUDIENCE").filter(|v| !v.is_empty())?;
        let http = super::oidc::idp_client().ok()?;
        Some(ApiJwt {
            issuer: issuer.trim_end_matches('/').to_string(),
            audience,
            http,
            keys: RwLock::new(None),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    async fn fetch_keys(&self) -> Result<JwkSet, String> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let d: Discovery = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("{url}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        self.http
            .get(&d.jwks_uri)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("{}: {e}", d.jwks_uri))?
            .json()
            .await
            .map_err(|e| format!("{}: {e}", d.jwks_uri))
    }

    /// The key `kid` names: from the cache, else from the issuer (read again
    /// when the cache is old, or misses and was not read in the last 30 s).
    async fn key(&self, kid: Option<&str>) -> Result<jsonwebtoken::jwk::Jwk, String> {
        let find = |set: &JwkSet| match kid {
            Some(k) => set.find(k).cloned(),
            None => set.keys.first().cloned(),
        };
        let stale = {
            let cached = self.keys.read().await;
            match cached.as_ref() {
                Some((set, at)) => {
                    if let Some(k) = find(set).filter(|_| at.elapsed() < KEYS_TTL) {
                        return Ok(k);
                    }
                    at.elapsed() >= REFRESH_AT_MOST_EVERY
                }
                None => true,
            }
        };
        if stale {
            let set = self.fetch_keys().await?;
            *self.keys.write().await = Some((set, Instant::now()));
        }
        let cached = self.keys.read().await;
        cached
            .as_ref()
            .and_then(|(set, _)| find(set))
            .ok_or_else(|| "the token is signed with a key the issuer does not publish".into())
    }

    /// Verifies a bearer JWT; the reason when it is refused.
    pub async fn verify(&self, token: &str) -> Result<JwtClaims, String> {
        let header = decode_header(token).map_err(|e| format!("not a valid JWT: {e}"))?;
        let jwk = self.key(header.kid.as_deref()).await?;
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|e| format!("the issuer's key cannot be used: {e}"))?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.validate_nbf = true;
        decode::<JwtClaims>(token, &key, &v)
            .map(|d| d.claims)
            .map_err(|e| format!("the token was refused: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::looks_like_jwt;

    #[test]
    fn only_three_part_tokens_are_taken_for_jwts() {
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"));
        assert!(!looks_like_jwt("sk-1234"));
        assert!(!looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0"));
    }
}
