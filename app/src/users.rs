//! `/ui/users`: people who use the gateway. Admins create them (with a
//! password to sign in here), change their role and budget, or delete them.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::widgets::{
    error_field, is_admin, query_page, query_param, short_time, spend_of, watch, AdminPage,
    ConfirmButton, ErrorBox, Field, LastError, Pager, SearchForm, ToggleButton,
};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct UserRow {
    pub user_id: String,
    #[serde(default)]
    pub user_email: Option<String>,
    #[serde(default)]
    pub user_role: Option<String>,
    #[serde(default)]
    pub spend: f64,
    #[serde(default)]
    pub max_budget: Option<f64>,
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub teams: Vec<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub budget_duration: Option<String>,
}

pub type UserPage = crate::api::Page<UserRow>;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct UserForm {
    pub user_email: String,
    pub user_role: String,
    pub password: String,
    pub max_budget: String,
    pub models: String,
    /// How often the budget starts again ("30d", "1mo"); empty never.
    pub budget_duration: String,
}

pub const ROLES: &[(&str, &str)] = &[
    ("internal_user", "User"),
    ("internal_user_viewer", "User (read only)"),
    ("proxy_admin_viewer", "Admin (read only)"),
    ("proxy_admin", "Admin"),
];

#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
impl UserForm {
    fn body(&self) -> Result<serde_json::Value, ServerFnError> {
        use crate::keys::{parse_list, parse_number};
        let mut b = serde_json::json!({
            "user_role": if self.user_role.is_empty() { "internal_user" } else { self.user_role.as_str() },
            "models": parse_list(&self.models),
            "auto_create_key": false,
        });
        if !self.user_email.trim().is_empty() {
            b["user_email"] = self.user_email.trim().into();
        }
        if !self.password.is_empty() {
            b["password"] = self.password.clone().into();
        }
        if let Some(x) = parse_number("max_budget", &self.max_budget)? {
            b["max_budget"] = x.into();
        }
        if !self.budget_duration.trim().is_empty() {
            b["budget_duration"] = self.budget_duration.trim().into();
        }
        Ok(b)
    }

    /// The `/user/update` body of the edit form: budget, its period and
    /// models; an emptied field is cleared.
    fn update_body(&self, user_id: &str) -> Result<serde_json::Value, ServerFnError> {
        use crate::keys::{parse_list, parse_number};
        let period = self.budget_duration.trim();
        Ok(serde_json::json!({
            "user_id": user_id,
            "max_budget": parse_number("max_budget", &self.max_budget)?,
            "budget_duration": (!period.is_empty()).then_some(period),
            "models": parse_list(&self.models),
        }))
    }
}

#[server(prefix = "/ui/api", endpoint = "list_users")]
pub async fn list_users(page: u64, email: String) -> Result<UserPage, ServerFnError> {
    crate::api::get_page(
        format!("/user/list?page={}&page_size=50", page.max(1)),
        ("user_email", &email),
        ["users", "total", "page", "total_pages"],
    )
    .await
}

#[server(prefix = "/ui/api", endpoint = "create_user")]
pub async fn create_user(form: UserForm) -> Result<String, ServerFnError> {
    let v =
        crate::api::call_api(http::Method::POST, "/user/new".into(), Some(form.body()?)).await?;
    Ok(v["user_id"].as_str().unwrap_or_default().to_string())
}

#[server(prefix = "/ui/api", endpoint = "update_user")]
pub async fn update_user(user_id: String, form: UserForm) -> Result<(), ServerFnError> {
    crate::api::post_api("/user/update", form.update_body(&user_id)?).await
}

/// Changes a user's role (when `role` is not empty) or deletes the user.
#[server(prefix = "/ui/api", endpoint = "user_action")]
pub async fn user_action(
    user_id: String,
    action: String,
    role: String,
) -> Result<(), ServerFnError> {
    let (path, body) = match action.as_str() {
        "delete" => ("/user/delete", serde_json::json!({"user_ids": [user_id]})),
        "role" => (
            "/user/update",
            serde_json::json!({"user_id": user_id, "user_role": role}),
        ),
        other => return Err(ServerFnError::new(format!("unknown action {other:?}"))),
    };
    crate::api::post_api(path, body).await
}

#[component]
pub fn UsersPage() -> impl IntoView {
    view! {
        <AdminPage title="Users">
            <UsersBody />
        </AdminPage>
    }
}

#[component]
fn UsersBody() -> impl IntoView {
    let page = query_page();
    let email = query_param("q");
    let version = RwSignal::new(0u32);
    let users = Resource::new(
        move || (page.get(), email.get(), version.get()),
        |(page, email, _)| list_users(page, email),
    );
    let admin = is_admin();
    view! {
        <div class="page-header">
            <div>
                <h1>"Users"</h1>
                <p class="muted">"People with access: their role, budget and spend."</p>
            </div>
        </div>
        <Show when=move || admin.get()>
            <NewUserForm version />
        </Show>
        <SearchForm
            action="/ui/users"
            id="user-search"
            label="Search users"
            placeholder="Search by email"
            value=email
        />
        <Transition fallback=|| view! { <p class="muted loading">"Loading users…"</p> }>
            {move || {
                users.get().map(|r| match r {
                    Err(e) => view! { <ErrorBox error=e /> }.into_any(),
                    Ok(p) if p.items.is_empty() => view! {
                        <div class="panel empty" data-testid="empty-state"><p>"No users found."</p></div>
                    }.into_any(),
                    Ok(p) => {
                        let UserPage { items: users, total, page, pages } = p;
                        view! {
                            <div class="table-wrap">
                                <table class="data" data-testid="users-table">
                                    <thead>
                                        <tr>
                                            <th scope="col">"User"</th>
                                            <th scope="col">"Role"</th>
                                            <th scope="col" class="num">"Spend / budget"</th>
                                            <th scope="col">"Teams"</th>
                                            <th scope="col">"Created"</th>
                                            <th scope="col">"Actions"</th>
                                        </tr>
                                    </thead>
                                    <tbody>
                                        {users.into_iter().map(|u| view! { <UserRowView u version /> }).collect_view()}
                                    </tbody>
                                </table>
                            </div>
                            <Pager page pages total noun="users" />
                        }.into_any()
                    }
                })
            }}
        </Transition>
    }
}

#[component]
fn UserRowView(u: UserRow, version: RwSignal<u32>) -> impl IntoView {
    let act = ServerAction::<UserAction>::new();
    let error = RwSignal::new(None::<ServerFnError>);
    watch(act.value(), error, move |_| version.update(|v| *v += 1));
    let id = StoredValue::new(u.user_id.clone());
    let role = u
        .user_role
        .clone()
        .unwrap_or_else(|| "internal_user".into());
    let shown = u.user_email.clone().unwrap_or_else(|| u.user_id.clone());
    let editing = RwSignal::new(false);
    let form = UserForm {
        max_budget: u.max_budget.map(|b| b.to_string()).unwrap_or_default(),
        budget_duration: u.budget_duration.clone().unwrap_or_default(),
        models: u.models.join(", "),
        ..Default::default()
    };
    view! {
        <tr data-testid="user-row">
            <td>
                <span class="strong">{shown.clone()}</span>
                <br />
                <code class="muted small">{u.user_id.clone()}</code>
            </td>
            <td>
                <label class="visually-hidden" for=format!("role-{}", u.user_id)>"Role"</label>
                <select
                    id=format!("role-{}", u.user_id)
                    on:change=move |ev| {
                        act.dispatch(UserAction {
                            user_id: id.get_value(),
                            action: "role".into(),
                            role: event_target_value(&ev),
                        });
                    }
                >
                    {ROLES
                        .iter()
                        .map(|(value, label)| {
                            view! { <option value=*value selected=role == *value>{*label}</option> }
                        })
                        .collect_view()}
                </select>
            </td>
            <td class="num">{spend_of(u.spend, u.max_budget)}</td>
            <td class="small mono">{if u.teams.is_empty() { "—".into() } else { u.teams.join(", ") }}</td>
            <td class="small">{u.created_at.as_deref().map(short_time).unwrap_or_default()}</td>
            <td class="actions">
                <ToggleButton label="Edit" testid="edit-user" open=editing />
                <ConfirmButton
                    label="Delete"
                    testid="delete-user"
                    question=format!("Delete {shown} and their keys?")
                    on_confirm=Callback::new(move |_| {
                        act.dispatch(UserAction {
                            user_id: id.get_value(),
                            action: "delete".into(),
                            role: String::new(),
                        });
                    })
                />
                <LastError error />
            </td>
        </tr>
        <Show when=move || editing.get()>
            <tr class="edit-row">
                <td colspan="6">
                    <EditUser user_id=id.get_value() form=form.clone() version editing />
                </td>
            </tr>
        </Show>
    }
}

/// A user's budget, its period and models.
#[component]
fn EditUser(
    user_id: String,
    form: UserForm,
    version: RwSignal<u32>,
    editing: RwSignal<bool>,
) -> impl IntoView {
    let save = ServerAction::<UpdateUser>::new();
    let error = RwSignal::new(None::<ServerFnError>);
    let error_field = error_field(error);
    let budget = RwSignal::new(form.max_budget);
    let period = RwSignal::new(form.budget_duration);
    let models = RwSignal::new(form.models);
    watch(save.value(), error, move |()| {
        editing.set(false);
        version.update(|v| *v += 1);
    });
    let user_id = StoredValue::new(user_id);
    view! {
        <form
            class="form-grid"
            data-testid="edit-user-form"
            on:submit=move |ev| {
                ev.prevent_default();
                save.dispatch(UpdateUser {
                    user_id: user_id.get_value(),
                    form: UserForm {
                        max_budget: budget.get_untracked(),
                        budget_duration: period.get_untracked(),
                        models: models.get_untracked(),
                        ..Default::default()
                    },
                });
            }
        >
            <Field label="Max budget ($)" name="max_budget" value=budget error_field hint="Empty: no limit" />
            <Field label="Budget resets every" name="budget_duration" value=period error_field hint="e.g. 1d, 30d, 1mo; empty never" />
            <Field label="Models" name="models" value=models error_field hint="Empty: every model" />
            <div class="form-actions">
                <button class="btn btn-primary" type="submit" disabled=move || save.pending().get()>"Save"</button>
                <button class="btn" type="button" on:click=move |_| editing.set(false)>"Cancel"</button>
            </div>
            <LastError error />
        </form>
    }
}

#[component]
fn NewUserForm(version: RwSignal<u32>) -> impl IntoView {
    let create = ServerAction::<CreateUser>::new();
    let error = RwSignal::new(None::<ServerFnError>);
    let email = RwSignal::new(String::new());
    let role = RwSignal::new("internal_user".to_string());
    let password = RwSignal::new(String::new());
    let budget = RwSignal::new(String::new());
    let models = RwSignal::new(String::new());
    let created = RwSignal::new(None::<String>);
    watch(create.value(), error, move |id| {
        created.set(Some(id));
        for s in [email, password, budget, models] {
            s.set(String::new());
        }
        version.update(|v| *v += 1);
    });
    let error_field = error_field(error);
    view! {
        <details class="panel form-panel" data-testid="new-user">
            <summary class="btn btn-primary">"Add user"</summary>
            <form
                class="form-grid"
                on:submit=move |ev| {
                    ev.prevent_default();
                    create.dispatch(CreateUser {
                        form: UserForm {
                            user_email: email.get_untracked(),
                            user_role: role.get_untracked(),
                            password: password.get_untracked(),
                            max_budget: budget.get_untracked(),
                            models: models.get_untracked(),
                            budget_duration: String::new(),
                        },
                    });
                }
            >
                <Field label="Email" name="user_email" kind="email" value=email error_field />
                <label class="field" for="f-user_role">
                    <span class="field-label">"Role"</span>
                    <select id="f-user_role" name="user_role" bind:value=role>
                        {ROLES.iter().map(|(v, l)| view! { <option value=*v>{*l}</option> }).collect_view()}
                    </select>
                </label>
                <Field
                    label="Password"
                    name="password"
                    kind="password"
                    value=password
                    error_field
                    hint="At least 8 characters; empty: sign-in through SSO only"
                />
                <Field label="Max budget ($)" name="max_budget" value=budget error_field />
                <Field label="Models" name="models" value=models error_field hint="Empty: every model" />
                <div class="form-actions">
                    <button class="btn btn-primary" type="submit" disabled=move || create.pending().get()>
                        "Add user"
                    </button>
                </div>
                <LastError error />
                {move || created.get().map(|id| view! {
                    <p class="ok" role="status" data-testid="user-created">"User "<code>{id}</code>" added."</p>
                })}
            </form>
        </details>
    }
}
