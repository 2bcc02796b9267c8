//! The admin console (`/ui`): Leptos server-side rendering of the `app`
//! crate, its server functions under `/ui/api`, and the static files the
//! browser needs (`/pkg/*`, favicons) from the site root.
//!
//! Self-contained on purpose: depends only on crates and `app`, so the rest of
//! the server can change without touching it. The site root is built by
//! `make site` (wasm bundle, CSS, public files).

use std::{net::SocketAddr, path::Path, sync::Arc};

use app::{shell, App, ConsoleBackend};
use axum::{
    body::Body,
    extract::Request,
    http::{header, HeaderValue},
    response::{IntoResponse, Redirect},
    routing::get,
    Router,
};
use leptos::{config::LeptosOptions, prelude::provide_context};
use leptos_axum::{generate_route_list, handle_server_fns_with_context, LeptosRoutes};
use tower::Layer;
use tower_http::{
    services::{ServeDir, ServeFile},
    set_header::SetResponseHeaderLayer,
};

/// Files of `public/` that `make site` copies to the site root and that are
/// served at the top level.
const PUBLIC_FILES: &[&str] = &["favicon.ico", "favicon.svg", "robots.txt"];

/// Leptos options for the console. `site_root` is the directory `make site`
/// fills (`TOLLGATE_SITE_ROOT`, default `site`); `site_addr` is where the
/// gateway listens.
pub fn leptos_options(site_root: &str, site_addr: SocketAddr) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("tollgate")
        .site_root(site_root)
        .site_pkg_dir("pkg")
        .site_addr(site_addr)
        .build()
}

/// Router for the console: Leptos SSR routes under /ui, server functions
/// under /ui/api, static files from the site root.
///
/// Routes: `GET /ui`, `/ui/`, the console's pages (`/ui/dashboard`,
/// `/ui/keys`, `/ui/logs`, `/ui/users`, `/ui/teams`, `/ui/models`), `/ui/login`, `/ui/{*any}` (404
/// page), `/ui/api/{*fn_name}` (server functions, POST/GET), `/pkg/*`,
/// `/favicon.ico`, `/favicon.svg`, `/robots.txt`. No fallback is set, so the
/// result can be `.merge()`d into the gateway's router. Authentication is
/// the caller's job (wrap it in a middleware); `/ui/login` and the static
/// files must stay reachable without a session.
pub fn router(options: LeptosOptions, backend: Arc<dyn ConsoleBackend>) -> Router {
    let routes = generate_route_list(App);

    let context = move || provide_context(backend.clone());
    let server_fn_context = context.clone();
    let server_fn_handler = move |req: Request<Body>| {
        let context = server_fn_context.clone();
        async move { handle_server_fns_with_context(context, req).await }
    };

    let site_root = Path::new(&*options.site_root).to_path_buf();
    // The bundle's file names are not content-hashed: make browsers
    // revalidate (cheap, thanks to Last-Modified) so a new build is seen.
    let pkg = SetResponseHeaderLayer::if_not_present(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    )
    .layer(
        ServeDir::new(site_root.join(&*options.site_pkg_dir))
            .precompressed_gzip()
            .precompressed_br(),
    );

    let mut router = Router::<LeptosOptions>::new()
        .leptos_routes_with_context(&options, routes, context, {
            let options = options.clone();
            move || shell(options.clone())
        })
        // Every registered server function already has its own route (added
        // above); this catches the rest of /ui/api so unknown names get the
        // server-function error instead of the console's 404 page.
        .route(
            "/ui/api/{*fn_name}",
            get(server_fn_handler.clone()).post(server_fn_handler),
        )
        .route(
            "/ui/",
            get(|| async { Redirect::to(app::HOME_PATH).into_response() }),
        )
        .nest_service(&format!("/{}", options.site_pkg_dir), pkg);
    for file in PUBLIC_FILES {
        router = router.route_service(&format!("/{file}"), ServeFile::new(site_root.join(file)));
    }
    router.with_state(options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::{DeploymentView, Health, ModelGroupPage, ModelGroupView};
    use axum::http::{Method, StatusCode};
    use tower::ServiceExt;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    struct Fixed;

    impl ConsoleBackend for Fixed {
        fn me(&self, _parts: &axum::http::request::Parts) -> Option<app::Me> {
            Some(app::Me {
                name: "Admin".into(),
                role: "proxy_admin".into(),
                user_id: None,
                admin: true,
                reads_all: true,
            })
        }

        fn model_groups(&self, query: &str, page: u64, page_size: u64) -> ModelGroupPage {
            let groups = fixed_groups();
            ModelGroupPage::of(
                groups.into_iter(),
                |g| g.matches(query),
                |g| g,
                page,
                page_size,
            )
        }
    }

    fn fixed_groups() -> Vec<ModelGroupView> {
        {
            vec![ModelGroupView {
                model_name: "gpt-4o".into(),
                deployments: vec![DeploymentView {
                    id: "openai-1".into(),
                    provider: "openai".into(),
                    model: "gpt-4o-2024-08-06".into(),
                    api_base: Some("https://api.openai.com/v1".into()),
                    health: Health::Unhealthy,
                    last_error: Some("429 <rate limited>".into()),
                    weight: 1.0,
                    db_model: false,
                    litellm_model: "openai/gpt-4o-2024-08-06".into(),
                    rpm: None,
                    tpm: None,
                    pricing: app::Pricing::default(),
                    own_pricing: app::Pricing::default(),
                }],
            }]
        }
    }

    fn test_router(site_root: &Path) -> Router {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let options = leptos_options(&site_root.to_string_lossy(), addr);
        router(options, Arc::new(Fixed))
    }

    async fn call(
        router: &Router,
        method: Method,
        uri: &str,
    ) -> Result<(StatusCode, axum::http::HeaderMap, String), Box<dyn std::error::Error>> {
        // Like a browser: Leptos answers <Redirect/> with a 302 only to HTML requests.
        let accept = if method == Method::GET {
            "text/html,*/*;q=0.8"
        } else {
            "*/*"
        };
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::ACCEPT, accept)
            .body(Body::empty())?;
        let res = router.clone().oneshot(req).await?;
        let status = res.status();
        let headers = res.headers().clone();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX).await?;
        Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn models_page_is_server_rendered_with_the_hydration_bundle() -> TestResult {
        let site = tempfile::tempdir()?;
        let router = test_router(site.path());
        let (status, headers, body) = call(&router, Method::GET, "/ui/models").await?;
        assert_eq!(status, StatusCode::OK);
        assert!(headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html")));
        assert!(body.contains(r#"data-testid="model-group""#), "{body}");
        // In-order: the rows are plain HTML, not a fallback patched by scripts.
        assert!(!body.contains("Loading models"), "{body}");
        assert!(!body.contains("<template"), "{body}");
        assert!(body.contains(">gpt-4o<"), "{body}");
        assert!(body.contains("unhealthy"));
        // Rendered text is escaped.
        assert!(body.contains("429 &lt;rate limited&gt;"));
        assert!(body.contains("/pkg/tollgate.js"));
        assert!(body.contains("/pkg/tollgate.wasm"));
        assert!(body.contains("/pkg/tollgate.css"));
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn ui_root_redirects_to_models() -> TestResult {
        let site = tempfile::tempdir()?;
        let router = test_router(site.path());
        for path in ["/ui", "/ui/"] {
            let (status, headers, _) = call(&router, Method::GET, path).await?;
            assert!(status.is_redirection(), "{path}: {status}");
            assert_eq!(
                headers.get(header::LOCATION).and_then(|v| v.to_str().ok()),
                Some("/ui/dashboard"),
                "{path}"
            );
        }
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn login_page_is_a_plain_form() -> TestResult {
        let site = tempfile::tempdir()?;
        let router = test_router(site.path());
        let (status, _, body) = call(
            &router,
            Method::GET,
            "/ui/login?next=%2Fui%2Fmodels%3Fq%3Dgpt&error=invalid",
        )
        .await?;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains(r#"method="post""#) && body.contains(r#"action="/ui/session""#));
        assert!(body.contains(r#"name="password""#) && body.contains(r#"name="email""#));
        assert!(
            body.contains(r#"name="next""#) && body.contains(r#"value="/ui/models?q=gpt""#),
            "{body}"
        );
        assert!(body.contains("were not accepted."));

        let (_, _, body) = call(&router, Method::GET, "/ui/login?next=//evil.example").await?;
        assert!(body.contains(r#"value="/ui/dashboard""#));
        assert!(!body.contains("evil.example"));
        assert!(!body.contains("were not accepted."));
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn unknown_console_page_is_404() -> TestResult {
        let site = tempfile::tempdir()?;
        let router = test_router(site.path());
        let (status, _, body) = call(&router, Method::GET, "/ui/no-such-page").await?;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("Page not found"));
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn server_function_lists_model_groups() -> TestResult {
        let site = tempfile::tempdir()?;
        let router = test_router(site.path());
        let list = |form: &'static str| {
            let router = router.clone();
            async move {
                let req = Request::builder()
                    .method(Method::POST)
                    .uri("/ui/api/list_model_groups")
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from(form))?;
                let res = router.oneshot(req).await?;
                let status = res.status();
                let body = axum::body::to_bytes(res.into_body(), usize::MAX).await?;
                assert_eq!(status, StatusCode::OK, "{body:?}");
                Ok::<_, Box<dyn std::error::Error>>(serde_json::from_slice::<ModelGroupPage>(
                    &body,
                )?)
            }
        };
        let page = list("query=&page=1").await?;
        assert_eq!(page.groups, fixed_groups());
        assert_eq!(
            (page.matching, page.total, page.page, page.pages),
            (1, 1, 1, 1)
        );
        let page = list("query=CLAUDE&page=3").await?;
        assert_eq!(
            (page.matching, page.total, page.page, page.groups.len()),
            (0, 1, 1, 0)
        );

        let (status, _, _) = call(&router, Method::POST, "/ui/api/no_such_fn").await?;
        assert!(status.is_client_error(), "{status}");
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn static_files_have_their_content_types() -> TestResult {
        let site = tempfile::tempdir()?;
        std::fs::create_dir(site.path().join("pkg"))?;
        std::fs::write(site.path().join("pkg/tollgate.wasm"), b"\0asm\x01\0\0\0")?;
        std::fs::write(site.path().join("pkg/tollgate.js"), b"export default 1;")?;
        std::fs::write(site.path().join("pkg/tollgate.css"), b"body{}")?;
        std::fs::write(site.path().join("favicon.svg"), b"<svg/>")?;
        let router = test_router(site.path());
        for (path, mime) in [
            ("/pkg/tollgate.wasm", "application/wasm"),
            ("/pkg/tollgate.js", "javascript"),
            ("/pkg/tollgate.css", "text/css"),
            ("/favicon.svg", "image/svg+xml"),
        ] {
            let (status, headers, _) = call(&router, Method::GET, path).await?;
            assert_eq!(status, StatusCode::OK, "{path}");
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            assert!(ct.is_some_and(|ct| ct.contains(mime)), "{path}: {ct:?}");
        }
        let (_, headers, _) = call(&router, Method::GET, "/pkg/tollgate.wasm").await?;
        assert_eq!(
            headers
                .get(header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
            Some("no-cache")
        );
        let (status, _, _) = call(&router, Method::GET, "/pkg/missing.js").await?;
        assert_eq!(status, StatusCode::NOT_FOUND);
        Ok(())
    }
}
