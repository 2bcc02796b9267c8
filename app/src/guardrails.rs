//! `/ui/guardrails`: the configured guardrails, when each runs (its modes),
//! whether it is on for every call or only where turned on, the keys and
//! teams that turn it on, and what it has done so far in this process.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::widgets::{thousands, AdminPage, ErrorBox};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Attached {
    pub key_count: u64,
    /// (token, name), the first few.
    pub keys: Vec<(String, String)>,
    pub team_count: u64,
    /// (team id, name), the first few.
    pub teams: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct GuardrailRow {
    pub name: String,
    /// The engine: `content_filter`, `bedrock`, …
    pub provider: String,
    /// pre_call, during_call, post_call …
    pub modes: Vec<String>,
    pub default_on: bool,
    pub checks: u64,
    pub interventions: u64,
    pub mean_latency_ms: f64,
    pub attached: Attached,
}

#[server(prefix = "/ui/api", endpoint = "list_guardrails")]
pub async fn list_guardrails() -> Result<Vec<GuardrailRow>, ServerFnError> {
    let v = crate::api::call_api(http::Method::GET, "/guardrails/list".into(), None).await?;
    let pairs = |list: &serde_json::Value, id: &str| -> Vec<(String, String)> {
        list.as_array()
            .into_iter()
            .flatten()
            .map(|x| {
                (
                    x[id].as_str().unwrap_or_default().to_string(),
                    x["name"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    Ok(v["guardrails"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| {
            let p = &g["litellm_params"];
            let a = &g["attached"];
            GuardrailRow {
                name: g["guardrail_name"].as_str().unwrap_or_default().to_string(),
                provider: p["guardrail"].as_str().unwrap_or_default().to_string(),
                modes: p["mode"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m.as_str().map(str::to_string))
                    .collect(),
                default_on: p["default_on"].as_bool().unwrap_or(false),
                checks: g["stats"]["checks"].as_u64().unwrap_or_default(),
                interventions: g["stats"]["interventions"].as_u64().unwrap_or_default(),
                mean_latency_ms: g["stats"]["mean_latency_ms"].as_f64().unwrap_or_default(),
                attached: Attached {
                    key_count: a["key_count"].as_u64().unwrap_or_default(),
                    keys: pairs(&a["keys"], "token"),
                    team_count: a["team_count"].as_u64().unwrap_or_default(),
                    teams: pairs(&a["teams"], "team_id"),
                },
            }
        })
        .collect())
}

#[component]
pub fn GuardrailsPage() -> impl IntoView {
    view! {
        <AdminPage title="Guardrails">
            <GuardrailsBody />
        </AdminPage>
    }
}

#[component]
fn GuardrailsBody() -> impl IntoView {
    let list = Resource::new(|| (), |_| list_guardrails());
    view! {
        <div class="page-header">
            <div>
                <h1>"Guardrails"</h1>
                <p class="muted">
                    "Checks on what goes to the models and what comes back. A guardrail that is on by default runs on every call; others run where a key, a team or the request turns them on."
                </p>
            </div>
        </div>
        <Transition fallback=|| view! { <p class="muted loading">"Loading guardrails…"</p> }>
            {move || list.get().map(|r| match r {
                Err(e) => view! { <ErrorBox error=e /> }.into_any(),
                Ok(rows) if rows.is_empty() => view! {
                    <div class="panel empty" data-testid="empty-state">
                        <p>"No guardrails are configured. Add them under guardrails: in the config file."</p>
                    </div>
                }.into_any(),
                Ok(rows) => view! {
                    <div class="table-wrap">
                        <table class="data" data-testid="guardrails-table">
                            <thead>
                                <tr>
                                    <th scope="col">"Guardrail"</th>
                                    <th scope="col">"Runs"</th>
                                    <th scope="col">"On for"</th>
                                    <th scope="col" class="num">"Checks"</th>
                                    <th scope="col" class="num">"Interventions"</th>
                                    <th scope="col" class="num">"Mean time"</th>
                                </tr>
                            </thead>
                            <tbody>
                                {rows.into_iter().map(|g| view! { <GuardrailRowView g /> }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any(),
            })}
        </Transition>
    }
}

/// "3 keys: ci-bot, docs, … and 1 more".
fn some_of(count: u64, names: &[(String, String)], noun: &str) -> String {
    let shown: Vec<&str> = names.iter().map(|(_, n)| n.as_str()).collect();
    let noun = if count == 1 {
        noun.trim_end_matches('s')
    } else {
        noun
    };
    let more = count.saturating_sub(shown.len() as u64);
    let mut s = format!("{} {noun}: {}", thousands(count), shown.join(", "));
    if more > 0 {
        s.push_str(&format!(" and {} more", thousands(more)));
    }
    s
}

#[component]
fn GuardrailRowView(g: GuardrailRow) -> impl IntoView {
    let a = &g.attached;
    let mut on_for: Vec<String> = Vec::new();
    if g.default_on {
        on_for.push("every call (on by default)".into());
    }
    if a.key_count > 0 {
        on_for.push(some_of(a.key_count, &a.keys, "keys"));
    }
    if a.team_count > 0 {
        on_for.push(some_of(a.team_count, &a.teams, "teams"));
    }
    if on_for.is_empty() {
        on_for.push("calls that ask for it (\"guardrails\" in the request)".into());
    }
    view! {
        <tr data-testid="guardrail-row" data-name=g.name.clone()>
            <td>
                <span class="strong">{g.name.clone()}</span>
                <br />
                <code class="muted small">{g.provider.clone()}</code>
            </td>
            <td>
                {g.modes.iter().map(|m| view! { <span class="badge">{m.clone()}</span>" " }).collect_view()}
            </td>
            <td data-testid="on-for">
                <ul class="plain">
                    {on_for.into_iter().map(|s| view! { <li>{s}</li> }).collect_view()}
                </ul>
            </td>
            <td class="num">{thousands(g.checks)}</td>
            <td class="num">{thousands(g.interventions)}</td>
            <td class="num">{format!("{:.2} ms", g.mean_latency_ms)}</td>
        </tr>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_read_as_counts_with_names() {
        let keys = vec![
            ("t1".to_string(), "ci-bot".to_string()),
            ("t2".into(), "docs".into()),
        ];
        assert_eq!(some_of(2, &keys, "keys"), "2 keys: ci-bot, docs");
        assert_eq!(
            some_of(25, &keys, "keys"),
            "25 keys: ci-bot, docs and 23 more"
        );
        assert_eq!(some_of(1, &keys[..1], "teams"), "1 team: ci-bot");
    }
}
