//! Tollgate's admin console: a Leptos app rendered on the server (feature
//! `ssr`, used by the `server` crate) and hydrated in the browser (feature
//! `hydrate`, used by the `frontend` crate).

#![recursion_limit = "256"]

pub mod api;
mod budgets;
mod dashboard;
mod guardrails;
mod keys;
mod login;
mod logs;
mod markdown;
pub use login::{safe_next, urlencode};
mod models;
mod playground;
mod prompts;
mod teams;
mod users;
mod widgets;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::{
    components::{Redirect, Route, Router, Routes, A},
    path, SsrMode,
};

#[cfg(feature = "ssr")]
pub use api::ApiFuture;
#[cfg(feature = "ssr")]
pub use api::ConsoleBackend;
pub use api::{
    list_model_groups, model_matches, ApiRefusal, DeploymentView, Health, ListModelGroups, Me,
    ModelGroupPage, ModelGroupView, Pricing,
};

/// Where the console sends people by default (after sign-in, from `/ui`).
pub const HOME_PATH: &str = "/ui/dashboard";

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <link rel="stylesheet" href="/pkg/tollgate.css" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The console's root component: routes under `/ui`.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    // Set once the wasm bundle has hydrated the page (effects never run on
    // the server), so tests and people can tell the page is interactive.
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    // Who is signed in: read once, for the top bar and the pages' gates.
    let me: widgets::MeResource = Resource::new(|| (), |_| api::whoami());
    provide_context(me);

    view! {
        <Title text="Tollgate" />
        <Router>
            <div class="app" data-hydrated=move || hydrated.get().then_some("true")>
                <Routes fallback=NotFound>
                    <Route path=path!("/ui") view=|| view! { <Redirect path=HOME_PATH /> } />
                    // In-order streaming: the list is in the HTML itself, not
                    // patched in by inline scripts, so it shows without wasm/JS.
                    <Route
                        path=path!("/ui/models")
                        view=models::ModelsPage
                        ssr=SsrMode::InOrder
                    />
                    <Route path=path!("/ui/dashboard") view=dashboard::DashboardPage ssr=SsrMode::InOrder />
                    <Route path=path!("/ui/playground") view=playground::PlaygroundPage ssr=SsrMode::InOrder />
                    <Route path=path!("/ui/keys") view=keys::KeysPage ssr=SsrMode::InOrder />
                    <Route path=path!("/ui/logs") view=logs::LogsPage ssr=SsrMode::InOrder />
                    <Route path=path!("/ui/users") view=users::UsersPage ssr=SsrMode::InOrder />
                    <Route path=path!("/ui/teams") view=teams::TeamsPage ssr=SsrMode::InOrder />
                    <Route path=path!("/ui/budgets") view=budgets::BudgetsPage ssr=SsrMode::InOrder />
                    <Route path=path!("/ui/prompts") view=prompts::PromptsPage ssr=SsrMode::InOrder />
                    <Route path=path!("/ui/guardrails") view=guardrails::GuardrailsPage ssr=SsrMode::InOrder />
                    <Route
                        path=path!("/ui/login")
                        view=login::LoginPage
                        ssr=SsrMode::InOrder
                    />
                    <Route path=path!("/ui/*any") view=NotFound />
                </Routes>
            </div>
        </Router>
    }
}

/// The console's pages, and whether only admins (and admin viewers) see them.
const PAGES: &[(&str, &str, bool)] = &[
    ("/ui/dashboard", "Dashboard", false),
    ("/ui/playground", "Playground", false),
    ("/ui/keys", "Keys", false),
    ("/ui/logs", "Logs", false),
    ("/ui/budgets", "Budgets", false),
    ("/ui/users", "Users", true),
    ("/ui/teams", "Teams", true),
    ("/ui/models", "Models", true),
    ("/ui/prompts", "Prompts", true),
    ("/ui/guardrails", "Guardrails", true),
];

/// The bar at the top of every signed-in page: the pages the caller may
/// open, who they are, and sign-out.
#[component]
fn TopBar() -> impl IntoView {
    let me = widgets::use_me();
    view! {
        <header class="topbar">
            <div class="topbar-inner">
                <a class="brand" href=HOME_PATH>
                    <span class="brand-mark" aria-hidden="true">
                        "T"
                    </span>
                    <span class="brand-name">"Tollgate"</span>
                </a>
                <Suspense>
                    {move || {
                        me.get()
                            .and_then(|m| m.ok())
                            .map(|m| {
                                let links = PAGES
                                    .iter()
                                    .filter(|(_, _, admin_only)| m.reads_all || !admin_only)
                                    .map(|(href, label, _)| view! { <A href=*href>{*label}</A> })
                                    .collect_view();
                                view! {
                                    <nav class="nav" aria-label="Console">
                                        {links}
                                    </nav>
                                    <span class="whoami muted" data-testid="whoami" title=m.role.clone()>
                                        {m.name.clone()}
                                    </span>
                                }
                            })
                    }}
                </Suspense>
                <form class="signout" method="post" action="/ui/logout">
                    <button class="btn btn-quiet" type="submit">
                        "Sign out"
                    </button>
                </form>
            </div>
        </header>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found · Tollgate" />
        <TopBar />
        <main class="page">
            <div class="panel notfound">
                <h1>"Page not found"</h1>
                <p class="muted">"There is no console page at this address."</p>
                <a class="btn btn-primary" href=HOME_PATH>
                    "Go to the dashboard"
                </a>
            </div>
        </main>
    }
}
