//! The console's server side that is not Leptos: signing in and out with the
//! master key (a session cookie), and the data the console pages read.

use crate::auth::SESSION_PRINCIPAL;
use crate::counters::Check;
use crate::gateway::router::HealthState;
use crate::state::SharedState;
use app::{DeploymentView, Health, ModelGroupView};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::Extension;
use axum::{Form, Router};
use serde::Deserialize;
use std::net::SocketAddr;
use tower_sessions::Session;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/ui/session", post(sign_in))
        .route("/ui/logout", post(sign_out))
}

#[derive(Deserialize)]
struct SignIn {
    /// A user's email; empty (or `admin`, as in LiteLLM) for the master key.
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    password: Option<String>,
    /// The older form's field: the master key.
    #[serde(default)]
    master_key: Option<String>,
    #[serde(default)]
    next: Option<String>,
}

/// Sign-in attempts allowed per minute, from one address and for one account.
pub const SIGN_IN_PER_MINUTE: u64 = 10;

/// The address a sign-in comes from: the first `X-Forwarded-For` hop behind a
/// load balancer, else the peer.
fn client_address(headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .or_else(|| peer.map(|p| p.ip().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

fn back_to_login(error: &str, next: &str, email: Option<&str>) -> Response {
    let mut q = format!("/ui/login?error={error}&next={}", urlencode(next));
    if let Some(e) = email.filter(|e| !e.is_empty()) {
        q.push_str("&email=");
        q.push_str(&urlencode(e));
    }
    Redirect::to(&q).into_response()
}

async fn sign_in(
    State(state): State<SharedState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    session: Session,
    Form(form): Form<SignIn>,
) -> Response {
    let next = app::safe_next(form.next.as_deref()).to_string();
    let email = form
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("admin"))
        .map(str::to_lowercase);
    let secret = form
        .password
        .or(form.master_key)
        .unwrap_or_default()
        .trim()
        .to_string();

    // Attempts are counted before they are checked, per address and per
    // account (in Redis when there is one, so across processes).
    let address = client_address(&headers, peer.map(|Extension(ConnectInfo(a))| a));
    let account = email.clone().unwrap_or_else(|| "master".into());
    let checks = [
        Check {
            name: format!("signin:addr:{address}"),
            limit: Some(SIGN_IN_PER_MINUTE),
            amount: 1,
            windowed: true,
        },
        Check {
            name: format!("signin:account:{account}"),
            limit: Some(SIGN_IN_PER_MINUTE),
            amount: 1,
            windowed: true,
        },
    ];
    if state.limiter.counters.reserve(&checks).await.is_err() {
        tracing::warn!(%address, "console sign-in refused: too many attempts");
        return back_to_login("limited", &next, email.as_deref());
    }

    let principal = match &email {
        None => state
            .auth
            .authenticate(&secret)
            .is_ok_and(|c| c.is_admin())
            .then(|| "master".to_string()),
        Some(e) => {
            let found = match state.store.password_of(e).await {
                Ok(found) => found,
                Err(err) => {
                    tracing::error!(error = %err, "sign-in: the store could not be read");
                    return back_to_login("unavailable", &next, Some(e));
                }
            };
            // Unknown emails and users without a password check a decoy hash:
            // same answer, same time, as a wrong password.
            let (user_id, hash) = match found {
                Some((id, hash)) => (Some(id), hash),
                None => (None, None),
            };
            let ok = crate::auth::password::verify(hash, secret).await;
            user_id.filter(|_| ok).map(|id| format!("user:{id}"))
        }
    };
    // A blocked or deleted user cannot sign in either.
    let Some(principal) = principal.filter(|p| state.auth.session_principal(p).is_some()) else {
        return back_to_login("invalid", &next, email.as_deref());
    };
    // A new session id on sign-in: no fixation.
    if let Err(e) = session.cycle_id().await {
        tracing::error!(error = %e, "session id could not be renewed");
    }
    if let Err(e) = session.insert(SESSION_PRINCIPAL, principal).await {
        tracing::error!(error = %e, "session could not be stored");
        return back_to_login("unavailable", &next, email.as_deref());
    }
    Redirect::to(&next).into_response()
}

async fn sign_out(session: Session) -> Response {
    if let Err(e) = session.flush().await {
        tracing::warn!(error = %e, "session could not be cleared");
    }
    Redirect::to("/ui/login").into_response()
}

/// Percent-encodes a path for a query parameter (keeps `/` readable).
pub(crate) fn urlencode(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

/// The console's view of the gateway.
pub struct Backend(pub SharedState);

impl app::ConsoleBackend for Backend {
    fn model_groups(&self) -> Vec<ModelGroupView> {
        self.0
            .router
            .load()
            .groups()
            .map(|(name, deps)| ModelGroupView {
                model_name: name.to_string(),
                deployments: deps
                    .iter()
                    .map(|d| DeploymentView {
                        id: d.config.id.clone(),
                        provider: d.config.provider.to_string(),
                        model: d.config.upstream_model.clone(),
                        api_base: d.config.api_base.clone(),
                        health: match d.health.state() {
                            HealthState::Healthy => Health::Healthy,
                            HealthState::Unhealthy => Health::Unhealthy,
                            HealthState::Unknown => Health::Unknown,
                        },
                        last_error: d.health.last_error().or_else(|| d.config.unusable.clone()),
                        weight: d.config.weight,
                    })
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_paths_are_percent_encoded() {
        assert_eq!(
            urlencode("/ui/models?x=1&y=é"),
            "/ui/models%3Fx%3D1%26y%3D%C3%A9"
        );
    }

    #[test]
    fn next_stays_inside_the_console() {
        assert_eq!(app::safe_next(Some("/ui/models?x=1")), "/ui/models?x=1");
        for bad in [
            Some("https://evil.example/ui"),
            Some("//evil"),
            Some("/v1/models"),
            None,
        ] {
            assert_eq!(app::safe_next(bad), app::HOME_PATH);
        }
    }
}
