//! `/ui/login`: a plain HTML form (works without wasm) that posts an email and
//! password, or the master key, to `/ui/session`, which the server handles.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::HOME_PATH;

#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let next = move || safe_next(query.read().get("next").as_deref()).to_string();
    let email = move || query.read().get("email").unwrap_or_default();
    // Known on the server (the console's backend); sent with the page.
    let sso = Resource::new(|| (), |_| crate::api::sign_in_options());
    let error = move || {
        query
            .read()
            .get("error")
            .map(|e| sign_in_error(&e).to_string())
    };

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
                <p class="muted">
                    "With your email and password, or as an admin with the gateway's master key (leave the email empty)."
                </p>
                {move || {
                    error()
                        .map(|e| {
                            view! {
                                <p class="form-error" role="alert" data-testid="login-error">
                                    {e}
                                </p>
                            }
                        })
                }}
                <label for="email">"Email"</label>
                <input
                    id="email"
                    type="email"
                    name="email"
                    autocomplete="username"
                    placeholder="empty for the master key"
                    value=email
                />
                <label for="password">"Password or master key"</label>
                <input
                    id="password"
                    type="password"
                    name="password"
                    autocomplete="current-password"
                    required
                    autofocus
                />
                <input type="hidden" name="next" value=next />
                <button class="btn btn-primary btn-block" type="submit">
                    "Sign in"
                </button>
                <Suspense>
                    {move || {
                        sso.get()
                            .and_then(Result::ok)
                            .flatten()
                            .map(|name| {
                                let href = move || {
                                    format!("/ui/oidc/login?next={}", urlencode(&next()))
                                };
                                view! {
                                    <div class="login-or" aria-hidden="true">
                                        "or"
                                    </div>
                                    <a class="btn btn-block" href=href rel="external" data-testid="sso-login">
                                        {format!("Sign in with {name}")}
                                    </a>
                                }
                            })
                    }}
                </Suspense>
            </form>
        </main>
    }
}

/// Percent-encodes a value for a query parameter (keeps `/` readable). The
/// sign-in page and the server's redirects to it use it.
pub fn urlencode(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

/// What the sign-in page says for the server's `error` code.
pub fn sign_in_error(code: &str) -> &'static str {
    match code {
        "sso" => "Signing in through single sign-on did not succeed. Try again, or ask an admin.",
        "sso_off" => "Single sign-on is not set up on this gateway.",
        "limited" => "Too many sign-in attempts. Wait a minute, then try again.",
        "unavailable" => "Signing in is not possible right now (the gateway's store did not answer). Try again shortly.",
        _ => "That email and password, or master key, were not accepted.",
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
        assert_eq!(safe_next(None), "/ui/dashboard");
        assert_eq!(safe_next(Some("/ui/models?q=gpt")), "/ui/models?q=gpt");
        assert_eq!(safe_next(Some("//evil.example")), "/ui/dashboard");
        assert_eq!(safe_next(Some("/\\evil.example")), "/ui/dashboard");
        assert_eq!(safe_next(Some("https://evil.example")), "/ui/dashboard");
        assert_eq!(safe_next(Some("")), "/ui/dashboard");
    }
}
