//! `GET /guardrails/list` (LiteLLM's): the configured guardrails with their
//! type, modes and default, their `guardrail_info`, and what they did so far
//! in this process (checks, interventions, mean time per check). Any caller
//! may list them: a request names guardrails it wants by these names.
//! Admins and admin viewers also see which keys and teams turn each one on
//! (`attached`).

use super::*;
use crate::gateway::guardrails::{named_in, Guardrail};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json};
use serde_json::json;
use std::sync::atomic::Ordering;

pub fn routes() -> Router<SharedState> {
    Router::new().route("/guardrails/list", get(list))
}

/// How many keys or teams `attached` names by name (the counts are whole).
const ATTACHED_SHOWN: usize = 20;

/// The keys and teams that turn on the guardrail `g`.
fn attached(snap: &Snapshot, g: &Guardrail) -> Value {
    let hit = |s: &Settings| named_in(s).any(|n| g.answers_to(n));
    let mut keys: Vec<(&str, String)> = snap
        .keys
        .values()
        .filter(|k| hit(&k.record.settings))
        .map(|k| {
            let r = &k.record;
            (
                r.token.as_str(),
                r.key_alias.clone().unwrap_or_else(|| r.key_name.clone()),
            )
        })
        .collect();
    keys.sort_by(|a, b| a.1.cmp(&b.1));
    let mut teams: Vec<(&str, String)> = snap
        .teams
        .values()
        .filter(|t| hit(&t.record.settings))
        .map(|t| {
            let r = &t.record;
            (
                r.team_id.as_str(),
                r.team_alias.clone().unwrap_or_else(|| r.team_id.clone()),
            )
        })
        .collect();
    teams.sort_by(|a, b| a.1.cmp(&b.1));
    json!({
        "key_count": keys.len(),
        "keys": keys.iter().take(ATTACHED_SHOWN).map(|(t, n)| json!({"token": t, "name": n})).collect::<Vec<_>>(),
        "team_count": teams.len(),
        "teams": teams.iter().take(ATTACHED_SHOWN).map(|(t, n)| json!({"team_id": t, "name": n})).collect::<Vec<_>>(),
    })
}

async fn list(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
) -> Response {
    let snap = auth.reads_all().then(|| state.directory.snapshot());
    let guardrails: Vec<serde_json::Value> = state
        .guardrails
        .list()
        .iter()
        .map(|g| {
            let checks = g.checks.load(Ordering::Relaxed);
            let micros = g.micros.load(Ordering::Relaxed);
            let mut v = json!({
                "guardrail_name": g.name,
                "litellm_params": {
                    "guardrail": g.provider,
                    "mode": g.modes.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
                    "default_on": g.default_on,
                },
                "guardrail_info": g.info,
                "stats": {
                    "checks": checks,
                    "interventions": g.interventions.load(Ordering::Relaxed),
                    "mean_latency_ms": if checks == 0 { 0.0 } else { micros as f64 / checks as f64 / 1000.0 },
                },
            });
            if let Some(snap) = &snap {
                v["attached"] = attached(snap, g);
            }
            v
        })
        .collect();
    Json(json!({ "guardrails": guardrails })).into_response()
}
