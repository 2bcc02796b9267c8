//! What this process serves: the config file's deployments plus those added
//! through `/model/new` (kept in the database), with the Secrets Manager values
//! both refer to. The model router is rebuilt and swapped whole when the
//! database's models change (in this process at once, in the others at their
//! next directory poll) or when a secret's value changes.

use crate::config::{self, secrets, Config, DbModel};
use crate::gateway::router::Router;
use crate::providers::upstream::HttpClient;
use crate::secret::{Sealer, Secret};
use crate::state::AppState;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `litellm_params` fields whose literal values are sealed before they are stored.
const SECRET_PARAMS: &[&str] = &[
    "api_key",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
];

/// The config file's text, kept to rebuild the config when secrets or models change.
pub struct ConfigSource {
    pub text: String,
    pub file: String,
    pub secrets: BTreeMap<String, String>,
}

/// Reads the config (or builds the demo one) and the Secrets Manager secrets it names.
pub async fn load_config(path: Option<PathBuf>) -> Result<(Config, ConfigSource), String> {
    let (text, file) = match path {
        Some(p) => (
            std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?,
            p.display().to_string(),
        ),
        None => {
            let found = config::demo::discover(&config::env::Env::default()).await;
            (config::demo::yaml(&found), "<demo config>".to_string())
        }
    };
    let secrets = secrets::fetch(&secrets::references(&text)).await?;
    let cfg = config::load_str_with_secrets(&text, &file, None, secrets.clone(), &[])
        .map_err(|e| e.to_string())?;
    Ok((
        cfg,
        ConfigSource {
            text,
            file,
            secrets,
        },
    ))
}

/// What the current router was built from.
struct Built {
    secrets: BTreeMap<String, String>,
    models: Vec<DbModel>,
}

pub struct Catalog {
    text: String,
    file: String,
    sealer: Sealer,
    http: HttpClient,
    /// The master key comes from `TOLLGATE_MASTER_KEY`, not the config: secret changes leave it alone.
    master_from_env: bool,
    built: tokio::sync::Mutex<Built>,
}

impl Catalog {
    pub fn new(
        source: ConfigSource,
        sealer: Sealer,
        http: HttpClient,
        master_from_env: bool,
    ) -> Self {
        Catalog {
            text: source.text,
            file: source.file,
            sealer,
            http,
            master_from_env,
            built: tokio::sync::Mutex::new(Built {
                secrets: source.secrets,
                models: Vec::new(),
            }),
        }
    }

    /// Seals the literal secrets in `litellm_params` (references such as
    /// `os.environ/…` and `aws_secretsmanager/…` are kept as they are).
    pub fn seal_params(&self, params: &mut Map<String, Value>) -> Result<(), &'static str> {
        let seal = |v: &mut Value| -> Result<(), &'static str> {
            if let Value::String(s) = v {
                if !is_reference(s) && !Sealer::is_sealed(s) {
                    *s = self.sealer.seal(s)?;
                }
            }
            Ok(())
        };
        for f in SECRET_PARAMS {
            if let Some(v) = params.get_mut(*f) {
                seal(v)?;
            }
        }
        if let Some(Value::Object(h)) = params.get_mut("extra_headers") {
            h.values_mut().try_for_each(seal)?;
        }
        Ok(())
    }

    /// The models with their sealed secrets opened; one that cannot be opened is left out (and logged).
    fn open(&self, models: &[DbModel]) -> Vec<DbModel> {
        let open_value = |v: &mut Value| -> Result<(), &'static str> {
            if let Value::String(s) = v {
                if Sealer::is_sealed(s) {
                    *s = self.sealer.open(s)?;
                }
            }
            Ok(())
        };
        models
            .iter()
            .filter_map(|m| {
                let mut m = m.clone();
                let mut failed = None;
                for (k, v) in m.litellm_params.iter_mut() {
                    let r = if k == "extra_headers" {
                        match v {
                            Value::Object(h) => h.values_mut().try_for_each(&open_value),
                            _ => Ok(()),
                        }
                    } else {
                        open_value(v)
                    };
                    if let Err(e) = r {
                        failed = Some((k.clone(), e));
                    }
                }
                match failed {
                    None => Some(m),
                    Some((field, e)) => {
                        tracing::error!(model_id = %m.model_id, model_name = %m.model_name, field, "database model skipped: its {field} {e}");
                        None
                    }
                }
            })
            .collect()
    }

    /// Builds one database model as it would be served, with the secrets it names:
    /// the deployment's warnings, or why it cannot be served.
    pub async fn check(&self, m: &DbModel) -> Result<Vec<String>, String> {
        let opened = self.open(std::slice::from_ref(m));
        let Some(m) = opened.first() else {
            return Err("its secrets cannot be decrypted".into());
        };
        let refs = references(m);
        let values = secrets::fetch(&refs).await?;
        let env = config::env::Env::default().with_secrets(values);
        match config::db_deployment(m, &env)? {
            (Some(_), warnings) => Ok(warnings),
            (None, warnings) => Err(warnings.join("; ")),
        }
    }

    /// Rebuilds the router if the database's models differ from those it was built with.
    pub async fn sync(&self, state: &AppState) {
        let models = state.directory.snapshot().models.clone();
        let mut built = self.built.lock().await;
        if built.models == *models {
            return;
        }
        let opened = self.open(&models);
        // Secrets named by new models are read now; the others keep their values.
        let missing: Vec<String> = opened
            .iter()
            .flat_map(references)
            .filter(|r| !built.secrets.contains_key(r))
            .collect();
        if !missing.is_empty() {
            match secrets::fetch(&missing).await {
                Ok(values) => built.secrets.extend(values),
                Err(e) => {
                    tracing::error!(error = %e, "a database model names a secret that cannot be read; it will fail until it can")
                }
            }
        }
        match config::load_str_with_secrets(
            &self.text,
            &self.file,
            None,
            built.secrets.clone(),
            &opened,
        ) {
            Ok(cfg) => {
                for w in cfg
                    .warnings
                    .iter()
                    .filter(|w| w.starts_with("database model") || w.starts_with("model "))
                {
                    tracing::warn!("{w}");
                }
                let router = Router::new(&cfg, &self.http, &state.limiter).await;
                state.router.store(Arc::new(router));
                tracing::info!(db_models = opened.len(), "models changed: router rebuilt");
                built.models = (*models).clone();
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot rebuild the router; keeping the current one")
            }
        }
    }

    /// Re-reads every secret; when one changed, rebuilds the router and swaps the master key.
    async fn refresh_secrets(&self, state: &AppState) {
        let mut built = self.built.lock().await;
        let opened = self.open(&built.models);
        let mut refs = secrets::references(&self.text);
        for m in &opened {
            refs.extend(references(m));
        }
        let fresh = match secrets::fetch(&refs).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "refreshing secrets failed; keeping the current ones");
                return;
            }
        };
        if fresh == built.secrets {
            return;
        }
        match config::load_str_with_secrets(&self.text, &self.file, None, fresh.clone(), &opened) {
            Ok(cfg) => {
                state.router.store(Arc::new(
                    Router::new(&cfg, &self.http, &state.limiter).await,
                ));
                if !self.master_from_env {
                    if let Some(k) = &cfg.master_key {
                        state.auth.set_master_key(k);
                    }
                }
                tracing::info!("secrets changed: deployments and master key reloaded");
                built.secrets = fresh;
            }
            Err(e) => {
                tracing::error!(error = %e, "config with the new secrets is invalid; keeping the current one")
            }
        }
    }
}

/// The `aws_secretsmanager/…` references in a database model's parameters.
fn references(m: &DbModel) -> Vec<String> {
    secrets::references(&Value::Object(m.litellm_params.clone()).to_string())
}

fn is_reference(v: &str) -> bool {
    v.starts_with("os.environ/") || v.starts_with(secrets::PREFIX)
}

/// The salt key for stored secrets: `TOLLGATE_SALT_KEY`, `LITELLM_SALT_KEY`, else the master key.
pub fn sealer(env: &config::env::Env, master_key: &Secret) -> Result<Sealer, String> {
    match env
        .get("TOLLGATE_SALT_KEY")
        .or_else(|| env.get("LITELLM_SALT_KEY"))
    {
        Some(salt) => Sealer::new(&salt),
        None => Sealer::new(master_key.expose()),
    }
}

/// Keeps the router current until `stop`: rebuilds it when the directory
/// (and so possibly its models) changes, and re-reads secrets every `every`.
pub fn spawn_keeper(
    state: Arc<AppState>,
    every: Duration,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut changes = state.directory.subscribe();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                r = changes.changed() => {
                    if r.is_err() {
                        return;
                    }
                    state.catalog.sync(&state).await;
                }
                _ = tick.tick() => state.catalog.refresh_secrets(&state).await,
            }
        }
    })
}
