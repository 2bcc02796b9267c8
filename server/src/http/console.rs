//! The console's server side that is not Leptos: signing in and out with the
//! master key (a session cookie), and the data the console pages read.

use crate::auth::SESSION_PRINCIPAL;
use crate::counters::Check;
use crate::gateway::router::{Deployment, HealthState};
use crate::state::SharedState;
use app::{DeploymentView, Health, ModelGroupPage, ModelGroupView, Pricing};
use axum::extract::Query;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::{Form, Router};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use tower_sessions::Session;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/ui/session", post(sign_in))
        .route("/ui/logout", post(sign_out))
        .route("/ui/oidc/login", get(oidc_login))
        .route("/ui/oidc/callback", get(oidc_callback))
        // The playground calls the gateway as the signed-in person: the same
        // handlers as /v1 and the chat-history API, behind the session.
        .route(
            "/ui/v1/chat/completions",
            post(super::openai::chat_completions),
        )
        .route("/ui/v1/models", get(super::openai::list_models))
        .nest("/ui", super::history::routes())
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
    super::first_value(headers, "x-forwarded-for")
        .map(str::to_string)
        .or_else(|| peer.map(|p| p.ip().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

fn back_to_login(error: &str, next: &str, email: Option<&str>) -> Response {
    let mut q = format!("/ui/login?error={error}&next={}", app::urlencode(next));
    if let Some(e) = email.filter(|e| !e.is_empty()) {
        q.push_str("&email=");
        q.push_str(&app::urlencode(e));
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
    // account (in Redis when there is one, so across processes); a sign-in
    // that succeeds is given back, so only failures use up the allowance
    // (many people behind one address may all sign in at nine o'clock).
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
    let Ok(levels) = state.limiter.counters.reserve(&checks).await else {
        tracing::warn!(%address, "console sign-in refused: too many attempts");
        return back_to_login("limited", &next, email.as_deref());
    };

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
    let refund: Vec<(String, u64, i64)> = checks
        .into_iter()
        .zip(levels)
        .map(|(c, l)| (c.name, l.window, -1))
        .collect();
    state.limiter.counters.add(&refund).await;
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

/// The session field holding a sign-in through OIDC that has not come back yet.
const OIDC_PENDING: &str = "oidc_pending";

#[derive(Deserialize)]
struct OidcStart {
    #[serde(default)]
    next: Option<String>,
}

/// The origin the browser used, for the OIDC callback URL (`X-Forwarded-*`
/// behind a load balancer).
fn browser_origin(headers: &HeaderMap) -> String {
    let proto = super::first_value(headers, "x-forwarded-proto").unwrap_or("http");
    let host = super::request_host(headers).unwrap_or("127.0.0.1");
    format!("{proto}://{host}")
}

/// `GET /ui/oidc/login`: to the identity provider, with PKCE and a state and
/// nonce kept in the session.
async fn oidc_login(
    State(state): State<SharedState>,
    headers: HeaderMap,
    session: Session,
    Query(q): Query<OidcStart>,
) -> Response {
    let next = app::safe_next(q.next.as_deref()).to_string();
    let Some(oidc) = state.oidc.clone() else {
        return back_to_login("sso_off", &next, None);
    };
    match oidc.start(&browser_origin(&headers), &next).await {
        Ok((url, pending)) => {
            if let Err(e) = session.insert(OIDC_PENDING, pending).await {
                tracing::error!(error = %e, "session could not be stored");
                return back_to_login("unavailable", &next, None);
            }
            Redirect::to(&url).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "OIDC sign-in could not start");
            back_to_login("sso", &next, None)
        }
    }
}

#[derive(Deserialize)]
struct OidcReturn {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// `GET /ui/oidc/callback`: the code is exchanged, the ID token verified, the
/// user found or created, and the session signed in.
async fn oidc_callback(
    State(state): State<SharedState>,
    session: Session,
    Query(q): Query<OidcReturn>,
) -> Response {
    let pending: Option<crate::auth::oidc::Pending> =
        session.remove(OIDC_PENDING).await.ok().flatten();
    let (Some(oidc), Some(pending)) = (state.oidc.clone(), pending) else {
        return back_to_login("sso", app::HOME_PATH, None);
    };
    let next = pending.next.clone();
    if let Some(e) = &q.error {
        tracing::warn!(error = %e, description = q.error_description.as_deref().unwrap_or(""), "the identity provider refused the sign-in");
        return back_to_login("sso", &next, None);
    }
    // The state must be the one this browser's session started with.
    let state_ok = q.state.as_deref().is_some_and(|s| {
        use subtle::ConstantTimeEq;
        bool::from(s.as_bytes().ct_eq(pending.state.as_bytes()))
    });
    let Some(code) = q.code.filter(|_| state_ok) else {
        tracing::warn!("OIDC callback without a code or with another session's state");
        return back_to_login("sso", &next, None);
    };
    let who = match oidc.finish(&pending, code).await {
        Ok(who) => who,
        Err(e) => {
            tracing::warn!(error = %e, "OIDC sign-in failed");
            return back_to_login("sso", &next, None);
        }
    };
    let user_id = match crate::http::management::provision_sso_user(&state, &who).await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, subject = %who.subject, "the signed-in user could not be stored");
            return back_to_login("unavailable", &next, None);
        }
    };
    let principal = format!("user:{user_id}");
    if state.auth.session_principal(&principal).is_none() {
        // Blocked.
        return back_to_login("invalid", &next, None);
    }
    if let Err(e) = session.cycle_id().await {
        tracing::error!(error = %e, "session id could not be renewed");
    }
    if let Err(e) = session.insert(SESSION_PRINCIPAL, principal).await {
        tracing::error!(error = %e, "session could not be stored");
        return back_to_login("unavailable", &next, None);
    }
    tracing::info!(
        user_id,
        admin = who.admin,
        "console sign-in through {}",
        oidc.name
    );
    Redirect::to(&next).into_response()
}

async fn sign_out(session: Session) -> Response {
    if let Err(e) = session.flush().await {
        tracing::warn!(error = %e, "session could not be cleared");
    }
    Redirect::to("/ui/login").into_response()
}

/// The console's view of the gateway.
pub struct Backend {
    state: SharedState,
    /// The management API, called in-process as the console's signed-in caller.
    api: Router,
}

impl Backend {
    pub fn new(state: SharedState) -> Self {
        let api = crate::http::management::routes()
            .merge(super::history::routes())
            .route("/v1/models", get(super::openai::list_models))
            .route("/health", get(super::health::health))
            .with_state(state.clone());
        Backend { state, api }
    }
}

/// What the management API answered, as JSON or as its error.
async fn api_answer(res: Response) -> Result<serde_json::Value, app::ApiRefusal> {
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), 16 << 20)
        .await
        .map_err(|e| app::ApiRefusal {
            status: 500,
            message: format!("the answer could not be read: {e}"),
            param: None,
        })?;
    let value: serde_json::Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into_owned()));
    if status.is_success() {
        return Ok(value);
    }
    let err = &value["error"];
    Err(app::ApiRefusal {
        status: status.as_u16(),
        message: err["message"]
            .as_str()
            .or(value.as_str())
            .filter(|m| !m.trim().is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| format!("the request failed ({status})")),
        param: err["param"].as_str().map(str::to_string),
    })
}

impl app::ConsoleBackend for Backend {
    fn me(&self, parts: &axum::http::request::Parts) -> Option<app::Me> {
        let auth = parts.extensions.get::<crate::auth::AuthContext>()?;
        let role = auth.role()?;
        let user = auth.key().and_then(|k| k.user.clone());
        let name = match (&auth.principal, &user) {
            (crate::auth::Principal::Master, _) => "Admin".to_string(),
            (_, Some(u)) => u
                .record
                .user_email
                .clone()
                .unwrap_or_else(|| u.record.user_id.clone()),
            _ => auth.key_alias.as_deref().unwrap_or("Key").to_string(),
        };
        Some(app::Me {
            name,
            role: role.as_str().to_string(),
            user_id: auth.user_id().map(str::to_string),
            admin: auth.is_admin(),
            reads_all: auth.reads_all(),
        })
    }

    fn call(
        &self,
        parts: &axum::http::request::Parts,
        method: axum::http::Method,
        path: String,
        body: Option<serde_json::Value>,
    ) -> app::ApiFuture {
        let api = self.api.clone();
        let auth = parts.extensions.get::<crate::auth::AuthContext>().cloned();
        Box::pin(async move {
            use tower::ServiceExt;
            let Some(auth) = auth else {
                return Err(app::ApiRefusal {
                    status: 401,
                    message: "Sign in again: your session has ended.".into(),
                    param: None,
                });
            };
            let mut req = axum::http::Request::builder()
                .method(method)
                .uri(path)
                .header(axum::http::header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from(
                    body.map(|b| b.to_string()).unwrap_or_default(),
                ))
                .map_err(|e| app::ApiRefusal {
                    status: 400,
                    message: e.to_string(),
                    param: None,
                })?;
            req.extensions_mut().insert(auth);
            let res = match api.oneshot(req).await {
                Ok(res) => res,
                Err(never) => match never {},
            };
            api_answer(res).await
        })
    }

    fn sso_name(&self) -> Option<String> {
        self.state.oidc.as_ref().map(|o| o.name.to_string())
    }

    fn logs_notice(&self) -> Option<String> {
        self.state.stored_logs.notice().map(str::to_string)
    }

    fn successes_logged(&self) -> bool {
        self.state.stored_logs.success
    }

    fn model_groups(&self, query: &str, page: u64, page_size: u64) -> ModelGroupPage {
        let snap = self.state.directory.snapshot();
        let stored = |id: &str| {
            snap.models
                .iter()
                .find(|m| m.model_id == id)
                .and_then(|m| m.litellm_params.get("model"))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let router = self.state.router.load();
        let keep = |(name, deps): &(&str, &[Arc<Deployment>])| {
            let words = deps
                .iter()
                .flat_map(|d| [d.config.provider, d.config.upstream_model.as_str()]);
            app::model_matches(query, name, words)
        };
        let view = |(name, deps): (&str, &[Arc<Deployment>])| ModelGroupView {
            model_name: name.to_string(),
            deployments: deps
                .iter()
                .map(|d| {
                    let info = &d.config.model_info;
                    DeploymentView {
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
                        db_model: d.config.db_model,
                        litellm_model: stored(&d.config.id).unwrap_or_else(|| {
                            format!("{}/{}", d.config.provider, d.config.upstream_model)
                        }),
                        rpm: d.config.rpm,
                        tpm: d.config.tpm,
                        pricing: Pricing {
                            input_cost_per_token: d.input_cost_per_token(),
                            output_cost_per_token: d.output_cost_per_token(),
                            max_input_tokens: d.context_window(),
                        },
                        own_pricing: Pricing {
                            input_cost_per_token: info.input_cost_per_token,
                            output_cost_per_token: info.output_cost_per_token,
                            max_input_tokens: info.max_input_tokens,
                        },
                    }
                })
                .collect(),
        };
        ModelGroupPage::of(router.groups(), keep, view, page, page_size)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_paths_are_percent_encoded() {
        assert_eq!(
            app::urlencode("/ui/models?x=1&y=é"),
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
