//! Tollgate's admin console: a Leptos app rendered on the server (feature
//! `ssr`, used by the `server` crate) and hydrated in the browser (feature
//! `hydrate`, used by the `frontend` crate).

pub mod api;
mod login;
pub use login::{safe_next, urlencode};
mod models;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::{
    components::{Redirect, Route, Router, Routes, A},
    path, SsrMode,
};

#[cfg(feature = "ssr")]
pub use api::ConsoleBackend;
pub use api::{list_model_groups, DeploymentView, Health, ListModelGroups, ModelGroupView};

/// Where the console sends people by default (after sign-in, from `/ui`).
pub const HOME_PATH: &str = "/ui/models";

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

/// The bar at the top of every signed-in page.
#[component]
fn TopBar() -> impl IntoView {
    view! {
        <header class="topbar">
            <div class="topbar-inner">
                <a class="brand" href=HOME_PATH>
                    <span class="brand-mark" aria-hidden="true">
                        "T"
                    </span>
                    <span class="brand-name">"Tollgate"</span>
                </a>
                <nav class="nav" aria-label="Console">
                    <A href="/ui/models">"Models"</A>
                </nav>
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
                    "Go to models"
                </a>
            </div>
        </main>
    }
}
