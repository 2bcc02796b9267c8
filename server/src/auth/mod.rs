//! Who is calling: the auth layer applied to the whole router, with a short
//! list of open routes. Keys are looked up by their SHA-256 hash in memory (the
//! master key, and virtual keys in the [`Directory`]), so no request waits on
//! the database.

pub mod jwt;
pub mod oidc;
pub mod password;
pub mod sessions;

use crate::directory::records::Role;
use crate::directory::{Directory, KeyEntry, KeyRejected};
use crate::secret::Secret;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The session field holding the signed-in principal.
pub const SESSION_PRINCIPAL: &str = "principal";

/// What the caller is.
#[derive(Debug, Clone)]
pub enum Principal {
    /// The master key: every right.
    Master,
    /// A virtual key, with its user and team as they were when it was resolved.
    Key(Arc<KeyEntry>),
}

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct AuthContext {
    pub principal: Principal,
    /// SHA-256 (hex) of the key used, for logs; never the key.
    pub key_hash: Option<Arc<str>>,
    pub key_alias: Option<Arc<str>>,
    /// Called with an Okta JWT: its subject (the user id it acts as).
    pub jwt_subject: Option<Arc<str>>,
}

impl AuthContext {
    /// The caller's role: the master key is a proxy admin; a key has its user's role.
    pub fn role(&self) -> Option<Role> {
        match &self.principal {
            Principal::Master => Some(Role::ProxyAdmin),
            Principal::Key(k) => crate::directory::role_of(k),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role() == Some(Role::ProxyAdmin)
    }

    /// Admins and admin viewers read everything.
    pub fn reads_all(&self) -> bool {
        matches!(self.role(), Some(Role::ProxyAdmin | Role::ProxyAdminViewer))
    }

    pub fn key(&self) -> Option<&Arc<KeyEntry>> {
        match &self.principal {
            Principal::Key(k) => Some(k),
            Principal::Master => None,
        }
    }

    pub fn user_id(&self) -> Option<&str> {
        self.key().and_then(|k| k.record.user_id.as_deref())
    }

    pub fn team_id(&self) -> Option<&str> {
        self.key().and_then(|k| k.record.team_id.as_deref())
    }

    /// Who to name in the audit log.
    pub fn actor(&self) -> String {
        match &self.principal {
            Principal::Master => "master_key".into(),
            Principal::Key(k) => k
                .record
                .user_id
                .clone()
                .unwrap_or_else(|| k.record.key_name.clone()),
        }
    }

    /// `key_type`: `llm_api` keys only call models, `management` keys only
    /// manage, `read_only` keys only read.
    pub fn key_type(&self) -> &str {
        self.key()
            .and_then(|k| k.record.settings.key_type.as_deref())
            .unwrap_or("default")
    }
}

/// SHA-256 (hex) of a key: how keys are stored and looked up.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

struct MasterKey {
    hash: [u8; 32],
    hash_hex: Arc<str>,
}

impl MasterKey {
    fn of(key: &Secret) -> MasterKey {
        let hash: [u8; 32] = Sha256::digest(key.expose().as_bytes()).into();
        MasterKey {
            hash,
            hash_hex: hex::encode(hash).into(),
        }
    }
}

pub struct Authenticator {
    /// Swapped when the master key's secret is rotated.
    master: arc_swap::ArcSwap<MasterKey>,
    master_alias: Arc<str>,
    pub directory: Arc<Directory>,
}

/// Why a key was refused, as the client will read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError(pub String);

impl Authenticator {
    pub fn new(master_key: &Secret, directory: Arc<Directory>) -> Self {
        Authenticator {
            master: arc_swap::ArcSwap::from_pointee(MasterKey::of(master_key)),
            master_alias: "master".into(),
            directory,
        }
    }

    /// A new master key (the old one stops working at once).
    pub fn set_master_key(&self, key: &Secret) {
        self.master.store(Arc::new(MasterKey::of(key)));
    }

    /// Resolves a presented API key: the master key (constant-time on the
    /// hash), else a virtual key from memory.
    pub fn authenticate(&self, presented: &str) -> Result<AuthContext, AuthError> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        if bool::from(digest.ct_eq(&self.master.load().hash)) {
            return Ok(self.master());
        }
        let token = hex::encode(digest);
        match self.directory.resolve(&token, crate::logs::now_ms()) {
            Ok(k) => Ok(AuthContext {
                key_hash: Some(Arc::from(k.record.token.as_str())),
                key_alias: k.record.key_alias.as_deref().map(Arc::from),
                principal: Principal::Key(k),
                jwt_subject: None,
            }),
            Err(KeyRejected::Unknown) => Err(AuthError(
                "Authentication Error: invalid API key. Pass a valid key as 'Authorization: Bearer <key>'.".into(),
            )),
            Err(KeyRejected::Blocked(m) | KeyRejected::Expired(m)) => Err(AuthError(m)),
        }
    }

    fn master(&self) -> AuthContext {
        AuthContext {
            principal: Principal::Master,
            key_hash: Some(self.master.load().hash_hex.clone()),
            key_alias: Some(self.master_alias.clone()),
            jwt_subject: None,
        }
    }

    /// The principal stored in a console session: `master`, or `user:{id}`
    /// for a user who signed in with a password or through OIDC. A user is
    /// represented by a key of their own that only the session holds (no
    /// secret exists for it), so every rule that reads a key's user applies;
    /// a blocked or deleted user's session resolves to nothing.
    pub fn session_principal(&self, principal: &str) -> Option<AuthContext> {
        if principal == "master" {
            return Some(self.master());
        }
        let user_id = principal.strip_prefix("user:")?;
        let snap = self.directory.snapshot();
        let user = snap.users.get(user_id)?.clone();
        if user.record.blocked {
            return None;
        }
        Some(user_context(user_id, "session", Some(user)))
    }

    /// The caller of a verified Okta JWT: its subject's user, with no admin
    /// rights (an admin role reads as the matching internal one); a subject
    /// without a user yet, with no user (it may only create its own). A
    /// blocked user is refused.
    pub fn jwt_principal(&self, claims: &jwt::JwtClaims) -> Result<AuthContext, AuthError> {
        let snap = self.directory.snapshot();
        let user = match snap.users.get(&claims.sub) {
            Some(u) if u.record.blocked => {
                return Err(AuthError(format!("user {} is blocked.", claims.sub)))
            }
            Some(u) => {
                let capped = match u.record.user_role {
                    Role::ProxyAdmin => Some(Role::InternalUser),
                    Role::ProxyAdminViewer => Some(Role::InternalUserViewer),
                    _ => None,
                };
                Some(match capped {
                    None => u.clone(),
                    Some(role) => {
                        let mut record = u.record.clone();
                        record.user_role = role;
                        Arc::new(crate::directory::UserEntry {
                            record,
                            spend: u.spend.clone(),
                            teams: u.teams.clone(),
                        })
                    }
                })
            }
            None => None,
        };
        let mut ctx = user_context(&claims.sub, "jwt", user);
        ctx.jwt_subject = Some(Arc::from(claims.sub.as_str()));
        Ok(ctx)
    }
}

/// A caller that is a user, without a key of their own (a console session, a
/// JWT): represented by a key that only this context holds (no secret exists
/// for it), so every rule that reads a key's user applies.
fn user_context(
    user_id: &str,
    kind: &str,
    user: Option<Arc<crate::directory::UserEntry>>,
) -> AuthContext {
    let token = format!("{kind}:{user_id}");
    let (created_at, updated_at) = user
        .as_ref()
        .map(|u| (u.record.created_at, u.record.updated_at))
        .unwrap_or_default();
    let record = crate::directory::records::KeyRecord {
        token: token.clone(),
        key_name: format!("{kind} of {user_id}"),
        key_alias: None,
        user_id: Some(user_id.to_string()),
        team_id: None,
        blocked: false,
        expires_at: None,
        spend: 0.0,
        budget_reset_at: None,
        settings: Default::default(),
        created_by: None,
        created_at,
        updated_at,
    };
    AuthContext {
        key_hash: Some(Arc::from(token.as_str())),
        key_alias: None,
        principal: Principal::Key(Arc::new(KeyEntry {
            record,
            spend: Default::default(),
            user,
            team: None,
        })),
        jwt_subject: None,
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

    #[tokio::test]
    async fn master_key_authenticates_and_others_do_not() -> Result<(), Box<dyn std::error::Error>>
    {
        let tmp = tempfile::tempdir()?;
        let url = format!("sqlite://{}/t.db", tmp.path().display());
        let store = crate::store::Store::connect(&url).await?;
        let dir = Directory::load(store, Default::default()).await?;
        let auth = Authenticator::new(&Secret::new("sk-master"), dir);
        assert!(auth.authenticate("sk-master").is_ok_and(|c| c.is_admin()));
        assert!(auth.authenticate("sk-master ").is_err());
        assert!(auth.authenticate("sk-other").is_err());
        assert!(auth.authenticate("").is_err());
        Ok(())
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
