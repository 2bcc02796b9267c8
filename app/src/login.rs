//! `/ui/login`: a plain HTML form (works without wasm) that posts the master
//! key to `/ui/session`, which the server handles.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::HOME_PATH;

#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let next = move || safe_next(query.read().get("next").as_deref()).to_string();
    let rejected = move || query.read().get("error").as_deref() == Some("invalid");

    view! {
        <Title text="Sign in · Tollgate" />
        <main class="login">
            <form class="panel login-card" method="post" action="/ui/session">
                <div class="brand brand-dark">
                    <span class="brand-mark" aria-hidden="true">
                        "T"
                    </span>
                    <span class="brand-name">"Tollgate"</span>
                </div>
                <h1>"Sign in to the console"</h1>
                <p class="muted">"Use the gateway's master key."</p>
                <Show when=rejected>
                    <p class="form-error" role="alert" data-testid="login-error">
                        "That key was not accepted."
                    </p>
                </Show>
                <label for="master_key">"Master key"</label>
                <input
                    id="master_key"
                    type="password"
                    name="master_key"
                    autocomplete="current-password"
                    required
                    autofocus
                />
                <input type="hidden" name="next" value=next />
                <button class="btn btn-primary btn-block" type="submit">
                    "Sign in"
                </button>
            </form>
        </main>
    }
}

/// Only a path inside the console may be a redirect target after sign-in;
/// anything else (another origin, `//host`, a scheme, another route)
/// falls back to the models page. The login page and the server's sign-in
/// handler both use it.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with("/ui") && !n.contains("://") && !n.chars().any(char::is_control) =>
        {
            n
        }
        _ => HOME_PATH,
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_kept_only_when_it_is_a_local_path() {
        assert_eq!(safe_next(None), "/ui/models");
        assert_eq!(safe_next(Some("/ui/models?q=gpt")), "/ui/models?q=gpt");
        assert_eq!(safe_next(Some("//evil.example")), "/ui/models");
        assert_eq!(safe_next(Some("/\\evil.example")), "/ui/models");
        assert_eq!(safe_next(Some("https://evil.example")), "/ui/models");
        assert_eq!(safe_next(Some("")), "/ui/models");
    }
}
