//! Types shared by the console UI (browser) and the gateway (server), and the
//! server functions the UI calls.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Health of one deployment, as last seen by the router's health tracking.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Unhealthy,
    #[default]
    Unknown,
}

impl Health {
    /// The lowercase word shown in the UI (same as the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
            Health::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One upstream deployment behind a model group.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DeploymentView {
    pub id: String,
    /// e.g. "openai", "anthropic", "bedrock", "azure", "demo"
    pub provider: String,
    /// Upstream model id, e.g. "gpt-4o".
    pub model: String,
    pub api_base: Option<String>,
    pub health: Health,
    pub last_error: Option<String>,
    pub weight: f64,
    /// Added through the API (`/model/new`): changeable in the console.
    /// Deployments from the config file are not.
    #[serde(default)]
    pub db_model: bool,
    /// `litellm_params.model` as configured, e.g. "openai/gpt-4o".
    #[serde(default)]
    pub litellm_model: String,
    #[serde(default)]
    pub rpm: Option<u64>,
    #[serde(default)]
    pub tpm: Option<u64>,
    /// What a call costs and how much it may read: the deployment's own
    /// `model_info` where it sets them, else the bundled price table's.
    #[serde(default)]
    pub pricing: Pricing,
    /// Only what the deployment's own `model_info` sets (what the form edits).
    #[serde(default)]
    pub own_pricing: Pricing,
}

/// A model's prices (USD per token) and context window (tokens).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Pricing {
    pub input_cost_per_token: Option<f64>,
    pub output_cost_per_token: Option<f64>,
    pub max_input_tokens: Option<u64>,
}

/// A public model name (what clients send as `model`) and its deployments.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ModelGroupView {
    pub model_name: String,
    pub deployments: Vec<DeploymentView>,
}

impl ModelGroupView {
    /// The console's filter: a case-insensitive substring match on the group's
    /// model name, or on any deployment's provider or upstream model.
    /// A blank query matches everything.
    pub fn matches(&self, query: &str) -> bool {
        let words = self
            .deployments
            .iter()
            .flat_map(|d| [d.provider.as_str(), d.model.as_str()]);
        model_matches(query, &self.model_name, words)
    }
}

/// The model filter's rule (see [`ModelGroupView::matches`]) over a group's
/// name and its deployments' providers and upstream models, so a server can
/// filter before it builds any view.
pub fn model_matches<'a>(
    query: &str,
    name: &str,
    words: impl IntoIterator<Item = &'a str>,
) -> bool {
    let query = query.trim().to_lowercase();
    if query.is_empty() {
        return true;
    }
    let hit = |s: &str| s.to_lowercase().contains(&query);
    hit(name) || words.into_iter().any(hit)
}

/// One page of the model groups that match a filter.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ModelGroupPage {
    pub groups: Vec<ModelGroupView>,
    /// How many groups match the filter (over all pages).
    pub matching: u64,
    /// How many groups there are.
    pub total: u64,
    pub page: u64,
    pub pages: u64,
}

/// Model groups per page of `/ui/models`.
pub const MODEL_GROUPS_PER_PAGE: u64 = 50;

impl ModelGroupPage {
    /// Page `page` (from 1, past the end: the last) of the `items` that
    /// `keep` keeps, each made a view only if it is on that page.
    pub fn of<T>(
        items: impl Iterator<Item = T>,
        keep: impl Fn(&T) -> bool,
        view: impl Fn(T) -> ModelGroupView,
        page: u64,
        page_size: u64,
    ) -> Self {
        let size = page_size.max(1);
        let (mut total, mut kept) = (0u64, Vec::new());
        for item in items {
            total += 1;
            if keep(&item) {
                kept.push(item);
            }
        }
        let matching = kept.len() as u64;
        let pages = matching.div_ceil(size).max(1);
        let page = page.clamp(1, pages);
        let groups = kept
            .into_iter()
            .skip(((page - 1) * size) as usize)
            .take(size as usize)
            .map(view)
            .collect();
        Self {
            groups,
            matching,
            total,
            page,
            pages,
        }
    }
}

/// What a call to the gateway's management API answered: a JSON body, or
/// the error it gave (its message, and the field it named).
#[cfg(feature = "ssr")]
pub type ApiFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<serde_json::Value, ApiRefusal>> + Send>,
>;

/// An error answer of the management API.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ApiRefusal {
    pub status: u16,
    pub message: String,
    /// The request field the error is about, when it names one.
    pub param: Option<String>,
}

/// Who is signed in to the console.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Me {
    /// What the top bar shows: the user's email or id, or "Admin" for the master key.
    pub name: String,
    /// `proxy_admin`, `proxy_admin_viewer`, `internal_user`, `internal_user_viewer`.
    pub role: String,
    pub user_id: Option<String>,
    /// May change anything.
    pub admin: bool,
    /// May read everything (admins and admin viewers).
    pub reads_all: bool,
}

/// What the console needs from the gateway. The server implements it and
/// provides an `Arc<dyn ConsoleBackend>` through Leptos context (see
/// `server/src/ui.rs`).
#[cfg(feature = "ssr")]
pub trait ConsoleBackend: Send + Sync + 'static {
    /// A page of the configured model groups that match `query` (see
    /// [`model_matches`]), with their deployments and their health.
    fn model_groups(&self, query: &str, page: u64, page_size: u64) -> ModelGroupPage;

    /// The single sign-on the console offers ("Okta", "SSO"), if any.
    fn sso_name(&self) -> Option<String> {
        None
    }

    /// Which calls the request log leaves out (`disable_spend_logs`,
    /// `disable_error_logs`), said for the log pages; None when it keeps all.
    fn logs_notice(&self) -> Option<String> {
        None
    }

    /// Whether the request log keeps calls that succeeded (it does unless
    /// `disable_spend_logs`), so that an answer's cost can be read from it.
    fn successes_logged(&self) -> bool {
        true
    }

    /// Who made the request `parts` (resolved by the gateway's auth layer).
    fn me(&self, _parts: &http::request::Parts) -> Option<Me> {
        None
    }

    /// Calls the gateway's management API (`/key/list`, `/user/new`, …) as
    /// the caller of `parts`: the API's own rules decide what they may do.
    fn call(
        &self,
        _parts: &http::request::Parts,
        _method: http::Method,
        _path: String,
        _body: Option<serde_json::Value>,
    ) -> ApiFuture {
        Box::pin(async {
            Err(ApiRefusal {
                status: 501,
                message: "the management API is not available here".into(),
                param: None,
            })
        })
    }
}

#[cfg(feature = "ssr")]
fn backend() -> Result<std::sync::Arc<dyn ConsoleBackend>, ServerFnError> {
    use_context::<std::sync::Arc<dyn ConsoleBackend>>()
        .ok_or_else(|| ServerFnError::new("the console backend is not configured"))
}

/// What the log pages say about calls the store does not keep.
#[cfg(feature = "ssr")]
pub(crate) fn logs_notice() -> Option<String> {
    use_context::<std::sync::Arc<dyn ConsoleBackend>>().and_then(|b| b.logs_notice())
}

/// Whether the request log keeps calls that succeeded.
#[cfg(feature = "ssr")]
pub(crate) fn successes_logged() -> bool {
    use_context::<std::sync::Arc<dyn ConsoleBackend>>().is_none_or(|b| b.successes_logged())
}

/// Who is signed in, for server functions.
#[cfg(feature = "ssr")]
pub(crate) fn caller() -> Result<Me, ServerFnError> {
    let parts =
        use_context::<http::request::Parts>().ok_or_else(|| ServerFnError::new("no request"))?;
    backend()?
        .me(&parts)
        .ok_or_else(|| ServerFnError::new("Sign in again: your session has ended."))
}

/// Error texts carry the field they name, so forms can mark it:
/// `"field\u{1f}message"`. See [`split_error`].
const FIELD_SEP: char = '\u{1f}';

/// A server function's error, as (the field it names, the message).
pub fn split_error(e: &ServerFnError) -> (Option<String>, String) {
    let text = match e {
        ServerFnError::ServerError(m) => m.clone(),
        other => other.to_string(),
    };
    match text.split_once(FIELD_SEP) {
        Some((f, m)) => (Some(f.to_string()), m.to_string()),
        None => (None, text),
    }
}

/// A field-named error of a server function (for checks made before the API).
pub fn field_error(field: &str, message: impl std::fmt::Display) -> ServerFnError {
    ServerFnError::new(format!("{field}{FIELD_SEP}{message}"))
}

/// Calls the management API as the signed-in caller; its error answers
/// become server-function errors that keep the field they name.
#[cfg(feature = "ssr")]
pub(crate) async fn call_api(
    method: http::Method,
    path: String,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value, ServerFnError> {
    let parts =
        use_context::<http::request::Parts>().ok_or_else(|| ServerFnError::new("no request"))?;
    backend()?
        .call(&parts, method, path, body)
        .await
        .map_err(|r| match r.param {
            Some(p) => field_error(&p, r.message),
            None => ServerFnError::new(r.message),
        })
}

/// One page of a list the server pages.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub page: u64,
    pub pages: u64,
}

/// Reads one page of a management list: `path` (with its `page` and size
/// parameters), the optional `(param, value)` filter, and the answer's names
/// for its `[items, total, page, pages]`.
#[cfg(feature = "ssr")]
pub(crate) async fn get_page<T: serde::de::DeserializeOwned>(
    mut path: String,
    filter: (&str, &str),
    names: [&str; 4],
) -> Result<Page<T>, ServerFnError> {
    let (param, value) = filter;
    if !value.trim().is_empty() {
        path.push_str(&format!("&{param}={}", crate::urlencode(value.trim())));
    }
    let v = call_api(http::Method::GET, path, None).await?;
    Ok(Page {
        items: decode(v[names[0]].clone())?,
        total: v[names[1]].as_u64().unwrap_or_default(),
        page: v[names[2]].as_u64().unwrap_or(1),
        pages: v[names[3]].as_u64().unwrap_or(1),
    })
}

/// POSTs a change to the management API; only success matters.
#[cfg(feature = "ssr")]
pub(crate) async fn post_api(path: &str, body: serde_json::Value) -> Result<(), ServerFnError> {
    call_api(http::Method::POST, path.into(), Some(body)).await?;
    Ok(())
}

/// A message's text: its `content` string, or its text parts joined by lines.
pub fn text_of(content: &serde_json::Value) -> String {
    match content {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Reads a typed value out of an API answer.
#[cfg(feature = "ssr")]
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    v: serde_json::Value,
) -> Result<T, ServerFnError> {
    serde_json::from_value(v)
        .map_err(|e| ServerFnError::new(format!("the gateway's answer could not be read: {e}")))
}

/// Lists the model groups. Served at `POST /ui/api/list_model_groups`
/// (stable path: the endpoint is given, so no hash is appended).
#[server(prefix = "/ui/api", endpoint = "list_model_groups")]
pub async fn list_model_groups(query: String, page: u64) -> Result<ModelGroupPage, ServerFnError> {
    let backend = backend()?;
    if let Some(parts) = use_context::<http::request::Parts>() {
        // Deployments, their addresses and errors are for admins.
        if backend.me(&parts).is_some_and(|m| !m.reads_all) {
            return Err(ServerFnError::new("Only admins can see this."));
        }
    }
    Ok(backend.model_groups(&query, page, MODEL_GROUPS_PER_PAGE))
}

/// The single sign-on the sign-in page offers ("Okta", "SSO"), if any.
/// Read while the page is rendered on the server, and sent with it.
#[server(prefix = "/ui/api", endpoint = "sign_in_options")]
pub async fn sign_in_options() -> Result<Option<String>, ServerFnError> {
    Ok(use_context::<std::sync::Arc<dyn ConsoleBackend>>().and_then(|b| b.sso_name()))
}

/// Who is signed in (for the top bar and for gating pages).
#[server(prefix = "/ui/api", endpoint = "whoami")]
pub async fn whoami() -> Result<Me, ServerFnError> {
    caller()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> ModelGroupView {
        ModelGroupView {
            model_name: "gpt-4o".into(),
            deployments: vec![DeploymentView {
                id: "d1".into(),
                provider: "azure".into(),
                model: "gpt-4o-2024-08-06".into(),
                api_base: None,
                health: Health::Healthy,
                last_error: None,
                weight: 1.0,
                db_model: false,
                litellm_model: "azure/gpt-4o-2024-08-06".into(),
                rpm: None,
                tpm: None,
                pricing: Pricing::default(),
                own_pricing: Pricing::default(),
            }],
        }
    }

    #[test]
    fn filter_matches_name_provider_and_upstream_model_case_insensitively() {
        let g = group();
        assert!(g.matches(""));
        assert!(g.matches("  "));
        assert!(g.matches("GPT"));
        assert!(g.matches("Azure"));
        assert!(g.matches("2024-08"));
        assert!(!g.matches("claude"));
    }

    #[test]
    fn model_pages_count_filter_and_clamp() {
        let named = |n: u32| {
            let mut g = group();
            g.model_name = format!("m{n:03}");
            g
        };
        let all = || (1..=120).map(named);
        let p = ModelGroupPage::of(all(), |_| true, |g| g, 2, 50);
        assert_eq!((p.matching, p.total, p.page, p.pages), (120, 120, 2, 3));
        assert_eq!(
            p.groups.first().map(|g| g.model_name.as_str()),
            Some("m051")
        );
        assert_eq!(p.groups.len(), 50);
        // Past the end: the last page. A filter counts only what it keeps.
        let p = ModelGroupPage::of(all(), |g| g.matches("m1"), |g| g, 9, 50);
        assert_eq!((p.matching, p.total, p.page, p.pages), (21, 120, 1, 1));
        assert_eq!(p.groups.last().map(|g| g.model_name.as_str()), Some("m120"));
        // Nothing kept: one empty page.
        let p = ModelGroupPage::of(all(), |g| g.matches("claude"), |g| g, 1, 50);
        assert_eq!(
            (p.matching, p.total, p.page, p.pages, p.groups.len()),
            (0, 120, 1, 1, 0)
        );
    }

    #[test]
    fn health_serializes_lowercase() -> Result<(), serde_json::Error> {
        assert_eq!(serde_json::to_string(&Health::Unhealthy)?, "\"unhealthy\"");
        assert_eq!(
            serde_json::from_str::<Health>("\"unknown\"")?,
            Health::Unknown
        );
        assert_eq!(Health::Healthy.to_string(), "healthy");
        Ok(())
    }
}
