//! The one place Tollgate reads its environment.

use std::collections::BTreeMap;

/// Environment lookups: the config's `environment_variables` first, then the process.
#[derive(Debug, Clone, Default)]
pub struct Env {
    overlay: BTreeMap<String, String>,
    /// Values of `aws_secretsmanager/…` references, read before the config.
    secrets: BTreeMap<String, String>,
}

/// The value of a config string after `os.environ/NAME` resolution.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    Value(String),
    /// The string named an environment variable that is not set.
    MissingVar(String),
    /// The string named a Secrets Manager secret that was not read.
    MissingSecret(String),
}

const ENV_PREFIX: &str = "os.environ/";

impl Env {
    pub fn with_overlay(overlay: BTreeMap<String, String>) -> Self {
        Self {
            overlay,
            secrets: BTreeMap::new(),
        }
    }

    pub fn with_secrets(mut self, secrets: BTreeMap<String, String>) -> Self {
        self.secrets = secrets;
        self
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.overlay
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
            .filter(|v| !v.is_empty())
    }

    /// Resolves `os.environ/NAME` and `aws_secretsmanager/ID[#field]`
    /// references; other strings are returned as they are.
    pub fn resolve(&self, raw: &str) -> Resolved {
        if raw.starts_with(super::secrets::PREFIX) {
            return match self.secrets.get(raw) {
                Some(v) => Resolved::Value(v.clone()),
                None => Resolved::MissingSecret(raw.to_string()),
            };
        }
        match raw.strip_prefix(ENV_PREFIX) {
            Some(name) => match self.get(name) {
                Some(v) => Resolved::Value(v),
                None => Resolved::MissingVar(name.to_string()),
            },
            None => Resolved::Value(raw.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_wins_and_missing_is_reported() {
        let env = Env::with_overlay(BTreeMap::from([("TG_TEST_A".into(), "from-config".into())]));
        assert_eq!(
            env.resolve("os.environ/TG_TEST_A"),
            Resolved::Value("from-config".into())
        );
        assert_eq!(
            env.resolve("os.environ/TG_TEST_SURELY_UNSET_VAR"),
            Resolved::MissingVar("TG_TEST_SURELY_UNSET_VAR".into())
        );
        assert_eq!(env.resolve("plain"), Resolved::Value("plain".into()));
    }
}
