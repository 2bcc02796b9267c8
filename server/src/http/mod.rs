//! The router: one module per API surface, merged here, and the middleware
//! stack in the order a request meets it.

pub mod anthropic;
pub mod bedrock;
pub mod console;
pub mod errors;
pub mod formats;
pub mod health;
pub mod history;
pub mod management;
pub mod observe;
pub mod openai;

use crate::auth::{presented_key, AuthContext, SESSION_PRINCIPAL};
use crate::state::SharedState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Router;
use errors::ApiError;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

/// Routes anyone may call. Everything else needs a key (or a console session).
fn is_open(path: &str) -> bool {
    matches!(
        path,
        "/" | "/health/liveliness"
            | "/health/liveness"
            | "/health/readiness"
            | "/metrics"
            | "/metrics/"
            | "/ui/login"
            | "/ui/session"
            | "/ui/oidc/login"
            | "/ui/oidc/callback"
            | "/favicon.ico"
            | "/favicon.svg"
            | "/robots.txt"
    ) || path.starts_with("/pkg/")
}

/// The console's JSON routes (server functions, and the gateway's own API
/// served to the playground behind the session): errors as JSON, never the
/// sign-in page.
fn is_console_api(path: &str) -> bool {
    ["/ui/api/", "/ui/v1/", "/ui/chat-history", "/ui/session-ids"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// Which error shape a path speaks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Surface {
    OpenAi,
    Bedrock,
    Anthropic,
    ConsolePage,
}

fn surface_of(path: &str) -> Surface {
    if path == "/ui" || (path.starts_with("/ui/") && !is_console_api(path)) {
        Surface::ConsolePage
    } else if path.starts_with("/bedrock/") {
        Surface::Bedrock
    } else if path.starts_with("/v1/messages") || path.starts_with("/anthropic/") {
        Surface::Anthropic
    } else {
        Surface::OpenAi
    }
}

/// How long a console session lasts without being used.
pub const SESSION_IDLE_HOURS: i64 = 12;

/// The whole application router. `secure_cookies`: the console is reached over
/// HTTPS (served natively, or `PROXY_BASE_URL` is https behind a load
/// balancer), so its cookie is only ever sent over HTTPS.
pub fn router(state: SharedState, console: Router, secure_cookies: bool) -> Router {
    // Sessions live in the store: every process sharing it knows them, and
    // signing out ends them everywhere.
    let sessions = SessionManagerLayer::new(crate::auth::sessions::DbSessionStore::new(
        state.store.clone(),
    ))
    .with_name("tollgate_session")
    .with_same_site(SameSite::Lax)
    .with_http_only(true)
    .with_secure(secure_cookies)
    .with_expiry(Expiry::OnInactivity(
        tower_sessions::cookie::time::Duration::hours(SESSION_IDLE_HOURS),
    ));
    let api = Router::new()
        .merge(openai::routes())
        .merge(bedrock::routes())
        .merge(anthropic::routes())
        .merge(history::routes())
        .merge(health::routes())
        .merge(observe::routes())
        .merge(management::routes())
        .route(
            "/",
            axum::routing::get(|| async { Redirect::to(app::HOME_PATH) }),
        )
        .with_state(state.clone());
    // Sessions exist only for the console: API calls never pay for cookies.
    let ui = console
        .merge(console::routes().with_state(state.clone()))
        .layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn(same_origin_only))
                .layer(sessions)
                .layer(middleware::from_fn_with_state(
                    state.clone(),
                    console_session,
                )),
        );
    let x_request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .merge(api)
        .merge(ui)
        .fallback(not_found)
        .layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(|_| {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "api_error",
                        "internal error",
                    )
                    .into_response()
                }))
                .layer(SetSensitiveRequestHeadersLayer::new([
                    header::AUTHORIZATION,
                    header::COOKIE,
                    HeaderName::from_static("x-api-key"),
                    HeaderName::from_static("api-key"),
                ]))
                .layer(SetRequestIdLayer::new(x_request_id.clone(), TimeOrderedId))
                .layer(PropagateRequestIdLayer::new(x_request_id))
                .layer(middleware::from_fn_with_state(state, authenticate)),
        )
}

/// Request ids are UUIDv7: unique, and time-ordered, so the request log's primary
/// key grows at one end instead of splitting random index pages.
#[derive(Clone, Copy)]
struct TimeOrderedId;

impl MakeRequestId for TimeOrderedId {
    fn make_request_id<B>(&mut self, _: &http::Request<B>) -> Option<RequestId> {
        let mut buf = uuid::Uuid::encode_buffer();
        let id = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buf);
        axum::http::HeaderValue::from_str(id)
            .ok()
            .map(RequestId::new)
    }
}

async fn not_found(req: Request) -> Response {
    if surface_of(req.uri().path()) == Surface::Bedrock {
        return bedrock::AwsError::new(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            format!(
                "No Bedrock operation at {} {}; this gateway serves /bedrock/model/{{modelId}}/converse and /converse-stream",
                req.method(),
                req.uri().path()
            ),
        )
        .into_response();
    }
    ApiError::not_found(format!(
        "No route for {} {}",
        req.method(),
        req.uri().path()
    ))
    .into_response()
}

/// The auth layer: resolves the caller from its key (in memory). A console
/// path without a key is left to [`console_session`], behind the session layer.
async fn authenticate(State(state): State<SharedState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if is_open(path) {
        return next.run(req).await;
    }
    let Some(key) = presented_key(req.headers()) else {
        if path.starts_with("/ui") {
            return next.run(req).await;
        }
        return denied(&req, None);
    };
    match state.auth.authenticate(key) {
        Ok(ctx) => {
            req.extensions_mut().insert(ctx);
            next.run(req).await
        }
        // Not a key: an Okta JWT, when the API takes them.
        Err(e) => match state
            .api_jwt
            .as_ref()
            .filter(|_| crate::auth::jwt::looks_like_jwt(key))
        {
            Some(jwt) => {
                let verified = jwt.verify(key).await;
                match verified
                    .map_err(crate::auth::AuthError)
                    .and_then(|c| state.auth.jwt_principal(&c))
                {
                    Ok(ctx) => {
                        req.extensions_mut().insert(ctx);
                        next.run(req).await
                    }
                    Err(e) => denied(&req, Some(format!("Authentication Error: {}", e.0))),
                }
            }
            None => denied(&req, Some(e.0)),
        },
    }
}

/// CSRF protection for the console: a request that changes something (any
/// method but GET, HEAD and OPTIONS: forms, sign-in, server functions) must
/// come from a page of this origin. Browsers say where a request comes from in
/// `Origin` (and `Sec-Fetch-Site`); a cross-site one is refused before the
/// session is even read. Clients that are not browsers send neither and carry
/// no ambient cookies, so they are not what CSRF is about.
async fn same_origin_only(req: Request, next: Next) -> Response {
    if matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    ) {
        return next.run(req).await;
    }
    if let Some(reason) = cross_origin(req.headers()) {
        tracing::warn!(path = %req.uri().path(), reason, "console request refused as cross-site");
        // Read what was sent (a form, up to a bound) before answering: with
        // the body left unread the connection cannot carry the client's next
        // request, and a client that reuses it sees it closed.
        let _ = axum::body::to_bytes(req.into_body(), 64 * 1024).await;
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!(
                "Refused: {reason}. Console forms can only be sent from the console's own pages."
            ),
        )
            .into_response();
    }
    next.run(req).await
}

/// The first value of a header that proxies may make a list
/// (`X-Forwarded-For: client, proxy1`), trimmed.
pub(crate) fn first_value<'h>(headers: &'h axum::http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The host the browser asked for: `X-Forwarded-Host` behind a load balancer,
/// else `Host`.
pub(crate) fn request_host(headers: &axum::http::HeaderMap) -> Option<&str> {
    first_value(headers, "x-forwarded-host").or_else(|| first_value(headers, header::HOST.as_str()))
}

/// Why a state-changing console request is not same-origin, if it is not.
fn cross_origin(headers: &axum::http::HeaderMap) -> Option<&'static str> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = request_host(headers).map(str::to_ascii_lowercase);
    if let Some(origin) = get(header::ORIGIN.as_str()) {
        if origin == "null" {
            return Some("the request has an opaque origin");
        }
        let authority = origin
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/').to_ascii_lowercase());
        return match (authority, host) {
            (Some(a), Some(h)) if a == h => None,
            _ => Some("it comes from another origin"),
        };
    }
    match get("sec-fetch-site") {
        Some("cross-site" | "same-site") => Some("it comes from another site"),
        _ => None,
    }
}

/// The console's half of the auth layer: a caller without a key is resolved
/// from its session, or sent to the sign-in page.
async fn console_session(
    State(state): State<SharedState>,
    session: Session,
    mut req: Request,
    next: Next,
) -> Response {
    if is_open(req.uri().path()) || req.extensions().get::<AuthContext>().is_some() {
        return next.run(req).await;
    }
    let ctx = match session.get::<String>(SESSION_PRINCIPAL).await {
        Ok(Some(p)) => state.auth.session_principal(&p),
        _ => None,
    };
    match ctx {
        Some(ctx) => {
            req.extensions_mut().insert(ctx);
            next.run(req).await
        }
        None => denied(&req, None),
    }
}

/// 401 with the reason (`refused`: why a presented key was refused), or the
/// sign-in page for console pages.
fn denied(req: &Request, refused: Option<String>) -> Response {
    if surface_of(req.uri().path()) == Surface::ConsolePage {
        let target = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or(app::HOME_PATH);
        let encoded = app::urlencode(target);
        return Redirect::to(&format!("/ui/login?next={encoded}")).into_response();
    }
    if surface_of(req.uri().path()) == Surface::Bedrock {
        return bedrock::AwsError::access_denied(refused.unwrap_or_else(|| {
            "No API key passed. Send your Tollgate key as 'Authorization: Bearer <key>'.".into()
        }))
        .into_response();
    }
    if surface_of(req.uri().path()) == Surface::Anthropic {
        return anthropic::AnthropicError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            refused.unwrap_or_else(|| "No API key passed. Send your Tollgate key as 'x-api-key' or 'Authorization: Bearer <key>'.".into()),
        )
        .into_response();
    }
    if let Some(reason) = refused {
        ApiError::unauthorized(reason).into_response()
    } else {
        ApiError::unauthorized(
            "Authentication Error: no API key passed. Pass your key as 'Authorization: Bearer <key>'.",
        )
        .into_response()
    }
}
