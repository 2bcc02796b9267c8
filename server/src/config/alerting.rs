//! `general_settings.alerting` (Slack-compatible webhooks) and the background
//! health checks of deployments.

use super::env::Env;
use super::litellm::{OneOrMany, RawGeneralSettings};
use std::collections::BTreeSet;
use std::time::Duration;

type FieldError = (String, String);

/// Kinds of alert, as LiteLLM names them (plus `callback_failures`).
pub const ALERT_TYPES: &[&str] = &[
    "budget_alerts",
    "outage_alerts",
    "cooldown_deployment",
    "llm_too_slow",
    "db_exceptions",
    "callback_failures",
];

#[derive(Debug, Clone)]
pub struct AlertingConfig {
    pub webhook_url: String,
    /// Which kinds are sent.
    pub types: BTreeSet<&'static str>,
    /// Calls slower than this are reported (`llm_too_slow`).
    pub slow_after: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthCheckConfig {
    pub every: Duration,
}

pub fn alerting(
    gs: &mut RawGeneralSettings,
    env: &Env,
    warnings: &mut Vec<String>,
) -> Result<Option<AlertingConfig>, FieldError> {
    let channels = gs
        .alerting
        .take()
        .map(OneOrMany::into_vec)
        .unwrap_or_default();
    let mut slack = false;
    for (i, c) in channels.iter().enumerate() {
        match c.trim().to_ascii_lowercase().as_str() {
            "slack" | "webhook" => slack = true,
            other => warnings.push(format!(
                "general_settings.alerting[{i}]: {other:?} is not an alert channel Tollgate sends to (slack); ignored"
            )),
        }
    }
    let types_raw = gs.alert_types.take();
    if !slack {
        if types_raw.is_some() || gs.alerting_threshold.is_some() {
            warnings.push(
                "general_settings.alert_types: set, but general_settings.alerting does not name slack; no alert is sent".into(),
            );
        }
        return Ok(None);
    }
    let webhook_url = env.get("SLACK_WEBHOOK_URL").ok_or_else(|| {
        (
            "general_settings.alerting".to_string(),
            "slack alerts need SLACK_WEBHOOK_URL".to_string(),
        )
    })?;
    match webhook_url.parse::<http::Uri>() {
        Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {}
        _ => {
            return Err((
                "general_settings.alerting".into(),
                "SLACK_WEBHOOK_URL is not an http(s) URL".into(),
            ))
        }
    }
    let types = match types_raw {
        None => ALERT_TYPES.iter().copied().collect(),
        Some(list) => {
            let mut set = BTreeSet::new();
            for (i, t) in list.iter().enumerate() {
                match ALERT_TYPES.iter().find(|k| **k == t.as_str()) {
                    Some(k) => {
                        set.insert(*k);
                    }
                    None => warnings.push(format!(
                        "general_settings.alert_types[{i}]: {t:?} is not sent by Tollgate (it sends {}); ignored",
                        ALERT_TYPES.join(", ")
                    )),
                }
            }
            set
        }
    };
    let slow_after = match gs.alerting_threshold.take() {
        None => Duration::from_secs(300),
        Some(s) if s.is_finite() && s > 0.0 => Duration::from_secs_f64(s),
        Some(s) => {
            return Err((
                "general_settings.alerting_threshold".into(),
                format!("must be a positive number of seconds, got {s}"),
            ))
        }
    };
    Ok(Some(AlertingConfig {
        webhook_url,
        types,
        slow_after,
    }))
}

pub fn health_checks(gs: &mut RawGeneralSettings) -> Result<Option<HealthCheckConfig>, FieldError> {
    let every = match gs.health_check_interval.take() {
        None => Duration::from_secs(300),
        Some(s) if s.is_finite() && s >= 0.1 => Duration::from_secs_f64(s),
        Some(s) => {
            return Err((
                "general_settings.health_check_interval".into(),
                format!("must be a number of seconds of at least 0.1, got {s}"),
            ))
        }
    };
    Ok(gs
        .background_health_checks
        .take()
        .unwrap_or(false)
        .then_some(HealthCheckConfig { every }))
}
