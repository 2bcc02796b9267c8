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
        let query = query.trim().to_lowercase();
        if query.is_empty() {
            return true;
        }
        let hit = |s: &str| s.to_lowercase().contains(&query);
        hit(&self.model_name)
            || self
                .deployments
                .iter()
                .any(|d| hit(&d.provider) || hit(&d.model))
    }
}

/// What the console needs from the gateway. The server implements it and
/// provides an `Arc<dyn ConsoleBackend>` through Leptos context (see
/// `server/src/ui.rs`).
#[cfg(feature = "ssr")]
pub trait ConsoleBackend: Send + Sync + 'static {
    /// Every configured model group with its deployments and their health.
    fn model_groups(&self) -> Vec<ModelGroupView>;

    /// The single sign-on the console offers ("Okta", "SSO"), if any.
    fn sso_name(&self) -> Option<String> {
        None
    }
}

/// Lists the model groups. Served at `POST /ui/api/list_model_groups`
/// (stable path: the endpoint is given, so no hash is appended).
#[server(prefix = "/ui/api", endpoint = "list_model_groups")]
pub async fn list_model_groups() -> Result<Vec<ModelGroupView>, ServerFnError> {
    let backend = use_context::<std::sync::Arc<dyn ConsoleBackend>>()
        .ok_or_else(|| ServerFnError::new("the console backend is not configured"))?;
    Ok(backend.model_groups())
}

/// The single sign-on the sign-in page offers ("Okta", "SSO"), if any.
/// Read while the page is rendered on the server, and sent with it.
#[server(prefix = "/ui/api", endpoint = "sign_in_options")]
pub async fn sign_in_options() -> Result<Option<String>, ServerFnError> {
    Ok(use_context::<std::sync::Arc<dyn ConsoleBackend>>().and_then(|b| b.sso_name()))
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
