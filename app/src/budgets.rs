//! `/ui/budgets`: every budget in one list — the gateway's, each team's,
//! user's and key's — fullest first, with its period and next reset.
//! Admins change a limit and its period in place; users see their own.

use leptos::prelude::*;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};

use crate::widgets::{
    error_field, is_admin, money, query_page, query_param, short_time, watch, ErrorBox, Field,
    LastError, Pager, SearchForm, ToggleButton,
};
use crate::TopBar;

/// One budget as `/spend/budgets` lists it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BudgetRow {
    /// proxy, team, user or key.
    pub kind: String,
    pub id: String,
    pub name: String,
    pub spend: f64,
    #[serde(default)]
    pub max_budget: Option<f64>,
    #[serde(default)]
    pub soft_budget: Option<f64>,
    #[serde(default)]
    pub budget_duration: Option<String>,
    #[serde(default)]
    pub budget_reset_at: Option<String>,
    /// The share of the limit spent.
    pub used: f64,
}

pub type BudgetPage = crate::api::Page<BudgetRow>;

const KINDS: &[(&str, &str)] = &[
    ("", "All"),
    ("team", "Teams"),
    ("user", "Users"),
    ("key", "Keys"),
    ("proxy", "Gateway"),
];

#[server(prefix = "/ui/api", endpoint = "list_budgets")]
pub async fn list_budgets(
    page: u64,
    kind: String,
    search: String,
) -> Result<BudgetPage, ServerFnError> {
    let mut path = format!("/spend/budgets?page={}&page_size=50", page.max(1));
    if !kind.is_empty() {
        path.push_str(&format!("&kind={}", crate::urlencode(&kind)));
    }
    crate::api::get_page(
        path,
        ("search", &search),
        ["budgets", "total", "page", "total_pages"],
    )
    .await
}

/// The update body for the owner of a budget: its limit (empty: none) and
/// its period (empty: never resets).
#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
fn update_of(
    kind: &str,
    id: &str,
    max_budget: &str,
    period: &str,
) -> Result<(&'static str, serde_json::Value), ServerFnError> {
    let max = crate::keys::parse_number("max_budget", max_budget)?;
    let period = period.trim();
    let period = (!period.is_empty()).then_some(period);
    let (path, id_field) =
        match kind {
            "key" => ("/key/update", "key"),
            "user" => ("/user/update", "user_id"),
            "team" => ("/team/update", "team_id"),
            _ => return Err(ServerFnError::new(
                "The gateway's own budget is set in the config file (litellm_settings.max_budget).",
            )),
        };
    Ok((
        path,
        serde_json::json!({ id_field: id, "max_budget": max, "budget_duration": period }),
    ))
}

#[server(prefix = "/ui/api", endpoint = "update_budget")]
pub async fn update_budget(
    kind: String,
    id: String,
    max_budget: String,
    budget_duration: String,
) -> Result<(), ServerFnError> {
    let (path, body) = update_of(&kind, &id, &max_budget, &budget_duration)?;
    crate::api::post_api(path, body).await
}

#[component]
pub fn BudgetsPage() -> impl IntoView {
    let page = query_page();
    let kind = query_param("kind");
    let search = query_param("q");
    let version = RwSignal::new(0u32);
    let rows = Resource::new(
        move || (page.get(), kind.get(), search.get(), version.get()),
        |(page, kind, search, _)| list_budgets(page, kind, search),
    );
    let admin = is_admin();
    view! {
        <Title text="Budgets · Tollgate" />
        <TopBar />
        <main class="page">
            <div class="page-header">
                <div>
                    <h1>"Budgets"</h1>
                    <p class="muted">
                        "Every spending limit, fullest first: what is spent, how often it starts again, and when next."
                    </p>
                </div>
            </div>
            <SearchForm
                action="/ui/budgets"
                id="budget-search"
                label="Search budgets"
                placeholder="Search by name or id"
                value=search
                button="Show"
            >
                <label class="visually-hidden" for="budget-kind">"Kind"</label>
                <select id="budget-kind" name="kind" data-testid="budget-kind">
                    {KINDS
                        .iter()
                        .map(|(v, l)| view! { <option value=*v selected=move || kind.get() == *v>{*l}</option> })
                        .collect_view()}
                </select>
            </SearchForm>
            <Transition fallback=|| view! { <p class="muted loading">"Loading budgets…"</p> }>
                {move || {
                    rows.get().map(|r| match r {
                        Err(e) => view! { <ErrorBox error=e /> }.into_any(),
                        Ok(p) if p.items.is_empty() => view! {
                            <div class="panel empty" data-testid="empty-state">
                                <p>"No budget here. Set one on a key, user or team (max budget)."</p>
                            </div>
                        }.into_any(),
                        Ok(p) => {
                            let BudgetPage { items, total, page, pages } = p;
                            view! {
                                <div class="table-wrap">
                                    <table class="data" data-testid="budgets-table">
                                        <thead>
                                            <tr>
                                                <th scope="col">"Owner"</th>
                                                <th scope="col">"Used"</th>
                                                <th scope="col" class="num">"Spent / limit"</th>
                                                <th scope="col">"Resets every"</th>
                                                <th scope="col">"Next reset"</th>
                                                <th scope="col">"Actions"</th>
                                            </tr>
                                        </thead>
                                        <tbody>
                                            {items.into_iter().map(|b| view! { <BudgetRowView b admin version /> }).collect_view()}
                                        </tbody>
                                    </table>
                                </div>
                                <Pager page pages total noun="budgets" />
                            }.into_any()
                        }
                    })
                }}
            </Transition>
        </main>
    }
}

#[component]
fn BudgetRowView(b: BudgetRow, admin: Signal<bool>, version: RwSignal<u32>) -> impl IntoView {
    let used = b.used.max(0.0);
    let level = if used >= 1.0 {
        "over"
    } else if used >= 0.8 {
        "near"
    } else {
        "ok"
    };
    let limit = match (b.max_budget, b.soft_budget) {
        (Some(m), Some(s)) => format!("{} (soft {})", money(m), money(s)),
        (Some(m), None) => money(m),
        (None, Some(s)) => format!("soft {}", money(s)),
        (None, None) => "—".into(),
    };
    let editing = RwSignal::new(false);
    let editable = b.kind != "proxy";
    let (kind, id) = (b.kind.clone(), b.id.clone());
    let (max0, period0) = (
        b.max_budget.map(|m| m.to_string()).unwrap_or_default(),
        b.budget_duration.clone().unwrap_or_default(),
    );
    let shown_id = if b.kind == "key" {
        None
    } else {
        Some(b.id.clone())
    };
    view! {
        <tr data-testid="budget-row" data-kind=b.kind.clone()>
            <td>
                <span class="badge">{b.kind.clone()}</span>" "
                <span class="strong">{b.name.clone()}</span>
                {shown_id.filter(|i| *i != b.name).map(|i| view! { <br /><code class="muted small">{i}</code> })}
            </td>
            <td>
                <span
                    class=format!("meter {level}")
                    role="meter"
                    aria-valuemin="0"
                    aria-valuemax="100"
                    aria-valuenow=format!("{:.0}", (used * 100.0).min(100.0))
                    aria-label=format!("{} budget used", b.name)
                >
                    <span style=format!("width:{:.0}%", (used * 100.0).min(100.0))></span>
                </span>
                <span class="small">{format!(" {:.0}%", used * 100.0)}</span>
            </td>
            <td class="num">{format!("{} / {}", money(b.spend), limit)}</td>
            <td>{b.budget_duration.clone().unwrap_or_else(|| "never".into())}</td>
            <td class="small">{b.budget_reset_at.as_deref().map(short_time).unwrap_or_else(|| "—".into())}</td>
            <td class="actions">
                <Show when=move || admin.get() && editable fallback=|| view! { <span class="muted">"—"</span> }>
                    <ToggleButton label="Edit" testid="edit-budget" open=editing />
                </Show>
            </td>
        </tr>
        <Show when=move || editing.get()>
            <tr class="edit-row">
                <td colspan="6">
                    <EditBudget
                        kind=kind.clone()
                        id=id.clone()
                        max_budget=max0.clone()
                        period=period0.clone()
                        version
                        editing
                    />
                </td>
            </tr>
        </Show>
    }
}

#[component]
fn EditBudget(
    kind: String,
    id: String,
    max_budget: String,
    period: String,
    version: RwSignal<u32>,
    editing: RwSignal<bool>,
) -> impl IntoView {
    let save = ServerAction::<UpdateBudget>::new();
    let error = RwSignal::new(None::<ServerFnError>);
    let error_field = error_field(error);
    let max_budget = RwSignal::new(max_budget);
    let period = RwSignal::new(period);
    watch(save.value(), error, move |()| {
        editing.set(false);
        version.update(|v| *v += 1);
    });
    let (kind, id) = (StoredValue::new(kind), StoredValue::new(id));
    view! {
        <form
            class="form-grid"
            data-testid="edit-budget-form"
            on:submit=move |ev| {
                ev.prevent_default();
                save.dispatch(UpdateBudget {
                    kind: kind.get_value(),
                    id: id.get_value(),
                    max_budget: max_budget.get_untracked(),
                    budget_duration: period.get_untracked(),
                });
            }
        >
            <Field label="Max budget ($)" name="max_budget" value=max_budget error_field hint="Empty: no limit" />
            <Field label="Resets every" name="budget_duration" value=period error_field hint="e.g. 1d, 30d, 1mo; empty never" />
            <div class="form-actions">
                <button class="btn btn-primary" type="submit" disabled=move || save.pending().get()>"Save"</button>
                <button class="btn" type="button" on:click=move |_| editing.set(false)>"Cancel"</button>
            </div>
            <LastError error />
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_owner_is_changed_through_its_own_update() {
        let (path, body) = update_of("team", "t1", "$25", " 30d ")
            .map_err(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(path, "/team/update");
        assert_eq!(
            body,
            serde_json::json!({"team_id": "t1", "max_budget": 25.0, "budget_duration": "30d"})
        );
        let (path, body) = update_of("key", "tok", "", "")
            .map_err(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(path, "/key/update");
        assert_eq!(
            body,
            serde_json::json!({"key": "tok", "max_budget": null, "budget_duration": null})
        );
        assert!(update_of("user", "u", "lots", "").is_err());
        assert!(update_of("proxy", "proxy", "10", "").is_err());
    }
}
