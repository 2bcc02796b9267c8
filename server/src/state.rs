//! Everything a handler may reach: router (built from the config), store, log sink, auth.

use crate::auth::Authenticator;
use crate::config::ManagementConfig;
use crate::directory::Directory;
use crate::gateway::router::Router;
use crate::logs::LogSink;
use crate::store::Store;
use std::sync::Arc;

pub struct AppState {
    /// Swapped whole when the config's secrets or the database's models change.
    pub router: arc_swap::ArcSwap<Router>,
    /// What the router is built from, and how to rebuild it.
    pub catalog: crate::catalog::Catalog,
    /// Prompts read from Bedrock Prompt Management.
    pub prompt_cache: crate::gateway::prompts::RemoteCache,
    pub store: Store,
    pub logs: LogSink,
    pub auth: Authenticator,
    /// Console sign-in through Okta or another OIDC issuer, when configured.
    pub oidc: Option<Arc<crate::auth::oidc::Oidc>>,
    /// Okta JWTs accepted on the API (`OKTA_ISSUER` + `OKTA_AUDIENCE`).
    pub api_jwt: Option<Arc<crate::auth::jwt::ApiJwt>>,
    /// Users, teams and keys, in memory.
    pub directory: Arc<Directory>,
    pub management: ManagementConfig,
    /// Rate limits, counted in Redis when configured.
    pub limiter: crate::gateway::limits::Limiter,
    /// Answers to repeated requests (`litellm_settings.cache`), if on.
    pub cache: Option<Arc<crate::gateway::cache::ResponseCache>>,
    /// `guardrails:`, compiled.
    pub guardrails: crate::gateway::guardrails::Guardrails,
    /// Where request logs go besides the store.
    pub exporters: Arc<crate::logs::Exporters>,
    /// Whether calls keep their prompt and answer for the logs (something
    /// stores or sends them, and `turn_off_message_logging` is off).
    pub keep_content: bool,
    /// Which request logs the store keeps (`disable_spend_logs`, `disable_error_logs`).
    pub stored_logs: crate::config::StoredLogs,
    /// The last scheduled health check, when `background_health_checks` is on.
    pub health_board: Option<Arc<crate::gateway::health::Board>>,
    /// Unix seconds when this process started (the `created` of listed models).
    pub started_at: i64,
}

pub type SharedState = Arc<AppState>;
