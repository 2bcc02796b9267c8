//! `/ui/teams`: teams, their members (and team admins), budgets and models.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::widgets::{
    error_field, query_page, spend_of, watch, AdminPage, ConfirmButton, ErrorBox, Field, LastError,
    Pager, SearchForm,
};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MemberRow {
    pub user_id: Option<String>,
    #[serde(default)]
    pub user_email: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TeamRow {
    pub team_id: String,
    #[serde(default)]
    pub team_alias: Option<String>,
    #[serde(default)]
    pub spend: f64,
    #[serde(default)]
    pub max_budget: Option<f64>,
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub blocked: Option<bool>,
    #[serde(default)]
    pub members_with_roles: Vec<MemberRow>,
}

pub type TeamPage = crate::api::Page<TeamRow>;

#[server(prefix = "/ui/api", endpoint = "list_teams")]
pub async fn list_teams(page: u64, search: String) -> Result<TeamPage, ServerFnError> {
    crate::api::get_page(
        format!("/v2/team/list?page={}&page_size=25", page.max(1)),
        ("team_alias", &search),
        ["teams", "total", "page", "total_pages"],
    )
    .await
}

#[server(prefix = "/ui/api", endpoint = "create_team")]
pub async fn create_team(
    alias: String,
    max_budget: String,
    models: String,
) -> Result<(), ServerFnError> {
    use crate::keys::{parse_list, parse_number};
    if alias.trim().is_empty() {
        return Err(crate::api::field_error("team_alias", "a team needs a name"));
    }
    let mut body = serde_json::json!({"team_alias": alias.trim(), "models": parse_list(&models)});
    if let Some(b) = parse_number("max_budget", &max_budget)? {
        body["max_budget"] = b.into();
    }
    crate::api::post_api("/team/new", body).await
}

/// Adds or removes a member, blocks, unblocks or deletes a team.
#[server(prefix = "/ui/api", endpoint = "team_action")]
pub async fn team_action(
    team_id: String,
    action: String,
    member: String,
    role: String,
) -> Result<(), ServerFnError> {
    let member = member.trim().to_string();
    let who = if member.contains('@') {
        serde_json::json!({"user_email": member})
    } else {
        serde_json::json!({"user_id": member})
    };
    let (path, body) = match action.as_str() {
        "add" => {
            if member.is_empty() {
                return Err(crate::api::field_error("member", "name a user id or email"));
            }
            let mut m = who;
            m["role"] = if role == "admin" { "admin" } else { "user" }.into();
            (
                "/team/member_add",
                serde_json::json!({"team_id": team_id, "member": m}),
            )
        }
        "remove" => {
            let mut b = who;
            b["team_id"] = team_id.into();
            ("/team/member_delete", b)
        }
        "block" => ("/team/block", serde_json::json!({"team_id": team_id})),
        "unblock" => ("/team/unblock", serde_json::json!({"team_id": team_id})),
        "delete" => ("/team/delete", serde_json::json!({"team_ids": [team_id]})),
        other => return Err(ServerFnError::new(format!("unknown action {other:?}"))),
    };
    crate::api::post_api(path, body).await
}

#[component]
pub fn TeamsPage() -> impl IntoView {
    view! {
        <AdminPage title="Teams">
            <TeamsBody />
        </AdminPage>
    }
}

#[component]
fn TeamsBody() -> impl IntoView {
    let page = query_page();
    let search = crate::widgets::query_param("q");
    let version = RwSignal::new(0u32);
    let teams = Resource::new(
        move || (page.get(), search.get(), version.get()),
        |(page, search, _)| list_teams(page, search),
    );
    let admin = crate::widgets::is_admin();
    view! {
        <div class="page-header">
            <div>
                <h1>"Teams"</h1>
                <p class="muted">"Groups of users sharing a budget, models and team admins."</p>
            </div>
        </div>
        <Show when=move || admin.get()>
            <NewTeamForm version />
        </Show>
        <SearchForm
            action="/ui/teams"
            id="team-search"
            label="Search teams"
            placeholder="Search by name or id"
            value=search
        />
        <Transition fallback=|| view! { <p class="muted loading">"Loading teams…"</p> }>
            {move || teams.get().map(|r| match r {
                Err(e) => view! { <ErrorBox error=e /> }.into_any(),
                Ok(p) if p.items.is_empty() => view! {
                    <div class="panel empty" data-testid="empty-state">
                        <p>{if search.get_untracked().is_empty() { "No teams yet." } else { "No team matches this search." }}</p>
                    </div>
                }.into_any(),
                Ok(p) => {
                    let TeamPage { items: teams, total, page, pages } = p;
                    view! {
                        <div class="cards">
                            {teams.into_iter().map(|t| view! { <TeamCard t version /> }).collect_view()}
                        </div>
                        <Pager page pages total noun="teams" />
                    }.into_any()
                }
            })}
        </Transition>
    }
}

#[component]
fn TeamCard(t: TeamRow, version: RwSignal<u32>) -> impl IntoView {
    let act = ServerAction::<TeamAction>::new();
    let error = RwSignal::new(None::<ServerFnError>);
    let member = RwSignal::new(String::new());
    let role = RwSignal::new("user".to_string());
    watch(act.value(), error, move |_| {
        member.set(String::new());
        version.update(|v| *v += 1);
    });
    let id = StoredValue::new(t.team_id.clone());
    let run = move |action: &str, who: String, role: String| {
        act.dispatch(TeamAction {
            team_id: id.get_value(),
            action: action.into(),
            member: who,
            role,
        });
    };
    let blocked = t.blocked.unwrap_or(false);
    let name = t.team_alias.clone().unwrap_or_else(|| t.team_id.clone());
    let error_field = error_field(error);
    view! {
        <section class="panel team" data-testid="team-card" aria-label=name.clone()>
            <header class="team-head">
                <div>
                    <h2>{name.clone()}</h2>
                    <code class="muted small">{t.team_id.clone()}</code>
                </div>
                <div class="team-figures">
                    <span>{spend_of(t.spend, t.max_budget)}</span>
                    <span class="muted small">
                        {if t.models.is_empty() { "all models".to_string() } else { t.models.join(", ") }}
                    </span>
                    {if blocked {
                        view! { <span class="badge bad">"blocked"</span> }.into_any()
                    } else {
                        view! { <span class="badge good">"active"</span> }.into_any()
                    }}
                </div>
            </header>
            <table class="data compact">
                <thead>
                    <tr>
                        <th scope="col">"Member"</th>
                        <th scope="col">"Role"</th>
                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {if t.members_with_roles.is_empty() {
                        view! { <tr><td colspan="3" class="muted">"No members yet."</td></tr> }.into_any()
                    } else {
                        t.members_with_roles
                            .into_iter()
                            .map(|m| {
                                let who = m.user_id.clone().unwrap_or_default();
                                let shown = m.user_email.clone().unwrap_or_else(|| who.clone());
                                view! {
                                    <tr data-testid="member-row">
                                        <td>{shown}</td>
                                        <td>{m.role.unwrap_or_else(|| "user".into())}</td>
                                        <td class="actions">
                                            <button
                                                class="btn btn-quiet"
                                                type="button"
                                                on:click=move |_| run("remove", who.clone(), String::new())
                                            >
                                                "Remove"
                                            </button>
                                        </td>
                                    </tr>
                                }
                            })
                            .collect_view()
                            .into_any()
                    }}
                </tbody>
            </table>
            <form
                class="inline-form"
                on:submit=move |ev| {
                    ev.prevent_default();
                    run("add", member.get_untracked(), role.get_untracked());
                }
            >
                <Field label="User id or email" name="member" value=member error_field />
                <label class="field" for=format!("role-{}", t.team_id)>
                    <span class="field-label">"Role"</span>
                    <select id=format!("role-{}", t.team_id) bind:value=role>
                        <option value="user">"Member"</option>
                        <option value="admin">"Team admin"</option>
                    </select>
                </label>
                <button class="btn" type="submit">"Add member"</button>
            </form>
            <div class="team-actions">
                <button
                    class="btn btn-quiet"
                    type="button"
                    on:click=move |_| run(if blocked { "unblock" } else { "block" }, String::new(), String::new())
                >
                    {if blocked { "Unblock team" } else { "Block team" }}
                </button>
                <ConfirmButton
                    label="Delete"
                    testid="delete-team"
                    question=format!("Delete team {name}? Its keys stop working.")
                    on_confirm=Callback::new(move |_| run("delete", String::new(), String::new()))
                />
            </div>
            <LastError error />
        </section>
    }
}

#[component]
fn NewTeamForm(version: RwSignal<u32>) -> impl IntoView {
    let create = ServerAction::<CreateTeam>::new();
    let error = RwSignal::new(None::<ServerFnError>);
    let alias = RwSignal::new(String::new());
    let budget = RwSignal::new(String::new());
    let models = RwSignal::new(String::new());
    watch(create.value(), error, move |_| {
        for s in [alias, budget, models] {
            s.set(String::new());
        }
        version.update(|v| *v += 1);
    });
    let error_field = error_field(error);
    view! {
        <details class="panel form-panel" data-testid="new-team">
            <summary class="btn btn-primary">"Create team"</summary>
            <form
                class="form-grid"
                on:submit=move |ev| {
                    ev.prevent_default();
                    create.dispatch(CreateTeam {
                        alias: alias.get_untracked(),
                        max_budget: budget.get_untracked(),
                        models: models.get_untracked(),
                    });
                }
            >
                <Field label="Name" name="team_alias" value=alias error_field />
                <Field label="Max budget ($)" name="max_budget" value=budget error_field />
                <Field label="Models" name="models" value=models error_field hint="Empty: every model" />
                <div class="form-actions">
                    <button class="btn btn-primary" type="submit">"Create team"</button>
                </div>
                <LastError error />
            </form>
        </details>
    }
}
