//! The console's server side that is not Leptos: signing in and out with the
//! master key (a session cookie), and the data the console pages read.

use crate::auth::SESSION_PRINCIPAL;
use crate::gateway::router::HealthState;
use crate::state::SharedState;
use app::{DeploymentView, Health, ModelGroupView};
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Form, Router};
use serde::Deserialize;
use tower_sessions::Session;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/ui/session", post(sign_in))
        .route("/ui/logout", post(sign_out))
}

#[derive(Deserialize)]
struct SignIn {
    master_key: String,
    #[serde(default)]
    next: Option<String>,
}

async fn sign_in(
    State(state): State<SharedState>,
    session: Session,
    Form(form): Form<SignIn>,
) -> Response {
    let next = app::safe_next(form.next.as_deref()).to_string();
    if !state
        .auth
        .authenticate(form.master_key.trim())
        .is_ok_and(|c| c.is_admin())
    {
        let q = format!("/ui/login?error=invalid&next={}", urlencode(&next));
        return Redirect::to(&q).into_response();
    }
    // A new session id on sign-in: no fixation.
    if let Err(e) = session.cycle_id().await {
        tracing::error!(error = %e, "session id could not be renewed");
    }
    if let Err(e) = session.insert(SESSION_PRINCIPAL, "master").await {
        tracing::error!(error = %e, "session could not be stored");
        return Redirect::to("/ui/login?error=session").into_response();
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
