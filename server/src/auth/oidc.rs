//! Console sign-in through OpenID Connect (Okta, or any OIDC issuer):
//! authorization code with PKCE, through the `openidconnect` crate.
//!
//! Settings, from the environment: `OKTA_ISSUER`, `OKTA_CLIENT_ID`,
//! `OKTA_CLIENT_SECRET` (or `OIDC_ISSUER`, `OIDC_CLIENT_ID`,
//! `OIDC_CLIENT_SECRET` for another issuer); `OIDC_ADMIN_GROUP` names the group
//! whose members are proxy admins, read from the ID token's `OIDC_GROUPS_CLAIM`
//! claim (default `groups`). The redirect URI is `PROXY_BASE_URL` +
//! `/ui/oidc/callback`, else the address the browser used.

use crate::config::env::Env;
use crate::secret::Secret;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

/// How long the issuer's metadata and keys are used before they are read again
/// (sooner when a token is signed with a key they do not have).
const METADATA_TTL: Duration = Duration::from_secs(3600);

pub struct Oidc {
    /// Shown on the sign-in button ("Okta", or "SSO").
    pub name: &'static str,
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: Option<Secret>,
    base_url: Option<String>,
    admin_group: Option<String>,
    groups_claim: String,
    http: reqwest::Client,
    metadata: RwLock<Option<(CoreProviderMetadata, Instant)>>,
}

/// What a sign-in started and must find again at the callback (kept in the
/// browser's session).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Pending {
    pub state: String,
    nonce: String,
    verifier: String,
    redirect: String,
    pub next: String,
}

/// Who the issuer says signed in.
#[derive(Debug, Clone)]
pub struct Identity {
    pub subject: String,
    pub email: Option<String>,
    /// The issuer says the email is the person's (`email_verified`).
    pub email_verified: bool,
    pub name: Option<String>,
    /// In the admin group (`OIDC_ADMIN_GROUP`).
    pub admin: bool,
}

/// The HTTP client for an identity provider (discovery, keys, tokens): no
/// redirects followed, 10 s per call. Console sign-in and API JWTs share it.
pub fn idp_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
}

/// Errors of the OIDC HTTP calls, for `openidconnect`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// One HTTP exchange for `openidconnect`, through reqwest (no redirects followed).
async fn send(
    client: reqwest::Client,
    req: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, HttpError> {
    let (parts, body) = req.into_parts();
    let resp = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| HttpError(format!("{}: {e}", parts.uri)))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .bytes()
        .await
        .map_err(|e| HttpError(e.to_string()))?
        .to_vec();
    let mut out = openidconnect::HttpResponse::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

/// A client for the issuer's metadata, with this gateway's id, secret and
/// callback. (A macro, not a function: the client's type carries typestates
/// that are long to spell.)
macro_rules! client {
    ($self:expr, $metadata:expr, $redirect:expr) => {
        CoreClient::from_provider_metadata(
            $metadata,
            $self.client_id.clone(),
            $self
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose().to_string())),
        )
        .set_redirect_uri(
            RedirectUrl::new($redirect.to_string()).map_err(|e| format!("redirect URI: {e}"))?,
        )
    };
}

impl Oidc {
    /// The settings from the environment: `None` when no issuer is set, an
    /// error when one is set without what goes with it.
    pub fn from_env(env: &Env) -> Option<Result<Oidc, String>> {
        let (name, prefix) = if env.get("OKTA_ISSUER").is_some() {
            ("Okta", "OKTA")
        } else if env.get("OIDC_ISSUER").is_some() {
            ("SSO", "OIDC")
        } else {
            return None;
        };
        let get = |k: &str| env.get(&format!("{prefix}_{k}")).filter(|v| !v.is_empty());
        Some((|| {
            let issuer = get("ISSUER").unwrap_or_default();
            let issuer = IssuerUrl::new(issuer.trim_end_matches('/').to_string())
                .map_err(|e| format!("{prefix}_ISSUER is not a URL: {e}"))?;
            let client_id = get("CLIENT_ID").ok_or_else(|| {
                format!("{prefix}_ISSUER is set but {prefix}_CLIENT_ID is not: the console cannot sign in through {name}")
            })?;
            let http = idp_client().map_err(|e| format!("OIDC HTTP client: {e}"))?;
            Ok(Oidc {
                name,
                issuer,
                client_id: ClientId::new(client_id),
                client_secret: get("CLIENT_SECRET").map(Secret::new),
                base_url: env
                    .get("PROXY_BASE_URL")
                    .map(|u| u.trim_end_matches('/').to_string())
                    .filter(|u| !u.is_empty()),
                admin_group: env.get("OIDC_ADMIN_GROUP").filter(|g| !g.is_empty()),
                groups_claim: env
                    .get("OIDC_GROUPS_CLAIM")
                    .filter(|g| !g.is_empty())
                    .unwrap_or_else(|| "groups".into()),
                http,
                metadata: RwLock::new(None),
            })
        })())
    }

    pub fn issuer(&self) -> &str {
        self.issuer.as_str()
    }

    /// The callback URL: under `PROXY_BASE_URL`, else the browser's own origin.
    pub fn redirect_uri(&self, origin: &str) -> String {
        let base = self.base_url.as_deref().unwrap_or(origin);
        format!("{base}/ui/oidc/callback")
    }

    /// The issuer's metadata and keys, read again when older than an hour or
    /// when `refresh` asks.
    async fn metadata(&self, refresh: bool) -> Result<CoreProviderMetadata, String> {
        if !refresh {
            if let Some((m, at)) = self.metadata.read().await.as_ref() {
                if at.elapsed() < METADATA_TTL {
                    return Ok(m.clone());
                }
            }
        }
        let http = self.http.clone();
        let client = move |req| send(http.clone(), req);
        let m = CoreProviderMetadata::discover_async(self.issuer.clone(), &client)
            .await
            .map_err(|e| {
                format!(
                    "the identity provider at {} could not be read: {}",
                    self.issuer.as_str(),
                    chain(&e)
                )
            })?;
        *self.metadata.write().await = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    /// Where to send the browser to sign in, and what to keep until it returns.
    pub async fn start(&self, origin: &str, next: &str) -> Result<(String, Pending), String> {
        let redirect = self.redirect_uri(origin);
        let client = client!(self, self.metadata(false).await?, &redirect);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new(self.groups_claim.clone()))
            .set_pkce_challenge(challenge)
            .url();
        Ok((
            url.to_string(),
            Pending {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                verifier: verifier.secret().clone(),
                redirect,
                next: next.to_string(),
            },
        ))
    }

    /// Exchanges the code (with the PKCE verifier) and verifies the ID token:
    /// signature against the issuer's keys, `iss`, `aud`, `exp` and the nonce.
    pub async fn finish(&self, pending: &Pending, code: String) -> Result<Identity, String> {
        let client = client!(self, self.metadata(false).await?, &pending.redirect);
        let http = self.http.clone();
        let send_fn = move |req| send(http.clone(), req);
        let response = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| format!("the identity provider has no token endpoint: {e}"))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
            .request_async(&send_fn)
            .await
            .map_err(|e| {
                format!(
                    "the identity provider refused the sign-in code: {}",
                    chain(&e)
                )
            })?;
        let token = response
            .id_token()
            .ok_or("the identity provider sent no ID token")?
            .clone();
        let nonce = Nonce::new(pending.nonce.clone());
        let verifier = client.id_token_verifier();
        let first = match token.claims(&verifier, &nonce) {
            Ok(c) => Ok(identity(c)),
            Err(e) => Err(chain(&e)),
        };
        let mut who = match first {
            Ok(who) => who,
            // Signed with a key published since the keys were read: read them again, once.
            Err(first) => {
                let fresh = client!(self, self.metadata(true).await?, &pending.redirect);
                let verifier = fresh.id_token_verifier();
                let again = match token.claims(&verifier, &nonce) {
                    Ok(c) => Ok(identity(c)),
                    Err(_) => Err(format!("the ID token could not be verified: {first}")),
                };
                again?
            }
        };
        let groups = payload_claim(&token.to_string(), &self.groups_claim);
        who.admin = self
            .admin_group
            .as_ref()
            .is_some_and(|g| groups.iter().any(|x| x == g));
        Ok(who)
    }
}

fn identity(c: &openidconnect::core::CoreIdTokenClaims) -> Identity {
    Identity {
        subject: c.subject().as_str().to_string(),
        email: c.email().map(|e| e.as_str().to_string()),
        email_verified: c.email_verified().unwrap_or(false),
        name: c
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_string()),
        admin: false,
    }
}

/// A claim of a verified JWT's payload as a list of strings (a string claim is
/// a list of one). Custom claims such as `groups` are read here rather than
/// through a custom claims type.
fn payload_claim(jwt: &str, claim: &str) -> Vec<String> {
    use base64::Engine;
    let Some(payload) = jwt.split('.').nth(1) else {
        return Vec::new();
    };
    let Ok(bytes) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('='))
    else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Vec::new();
    };
    match v.get(claim) {
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// An error and its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn list_claims_are_read_from_the_payload() {
        let enc = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let jwt = format!(
            "{}.{}.sig",
            enc(serde_json::json!({"alg": "RS256"})),
            enc(serde_json::json!({"groups": ["a", "tollgate-admins"], "role": "admin"}))
        );
        assert_eq!(payload_claim(&jwt, "groups"), vec!["a", "tollgate-admins"]);
        assert_eq!(payload_claim(&jwt, "role"), vec!["admin"]);
        assert!(payload_claim(&jwt, "missing").is_empty());
        assert!(payload_claim("garbage", "groups").is_empty());
    }
}
