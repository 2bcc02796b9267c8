use super::*;
use crate::config::load_str;
use std::collections::HashMap as Map;
use std::sync::atomic::AtomicUsize;

async fn router(yaml: &str) -> Router {
    let cfg = load_str(yaml, "t.yaml", Some(crate::config::env::Env::default()))
        .unwrap_or_else(|e| panic!("{e}"));
    Router::new(
        &cfg,
        &crate::providers::upstream::HttpClient::new(),
        &crate::gateway::limits::Limiter::new(
            std::sync::Arc::new(crate::counters::Counters::local()),
            Default::default(),
        ),
    )
    .await
}

fn err(kind: ErrorKind) -> ProviderError {
    ProviderError::new(kind, format!("{kind:?}"))
}

/// Runs a route where each deployment (by model_info.id) answers from a script of outcomes.
/// Per deployment id, the outcome of its 1st, 2nd, … call (`None` = success; the last repeats).
type Script<'a> = [(&'a str, &'a [Option<ErrorKind>])];

async fn run(
    r: &Router,
    model: &str,
    opts: CallOptions,
    script: &Script<'_>,
) -> (Result<String, RouteError>, Vec<String>) {
    let script: Map<String, Vec<Option<ErrorKind>>> = script
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_vec()))
        .collect();
    let counters: Map<String, AtomicUsize> = script
        .keys()
        .map(|k| (k.clone(), AtomicUsize::new(0)))
        .collect();
    let calls = Mutex::new(Vec::new());
    let out = r
        .route(model, &opts, |d, _| {
            let id = d.config.id.clone();
            calls.lock().map(|mut c| c.push(id.clone())).ok();
            let n = counters
                .get(&id)
                .map(|c| c.fetch_add(1, Ordering::SeqCst))
                .unwrap_or(0);
            let outcome = script
                .get(&id)
                .and_then(|s| s.get(n).or(s.last()).copied())
                .flatten();
            async move {
                match outcome {
                    None => Ok(id),
                    Some(kind) => Err(err(kind)),
                }
            }
        })
        .await
        .map(|r| r.value);
    let calls = calls.into_inner().unwrap_or_default();
    (out, calls)
}

const TWO_GROUPS: &str = "
model_list:
  - {model_name: a, litellm_params: {model: demo/a}, model_info: {id: a1}}
  - {model_name: b, litellm_params: {model: demo/b}, model_info: {id: b1}}
  - {model_name: c, litellm_params: {model: demo/c}, model_info: {id: c1}}
router_settings:
  num_retries: 2
  fallbacks: [{a: [b]}]
  context_window_fallbacks: [{a: [c]}]
  default_fallbacks: [c]
";

#[tokio::test]
async fn retries_then_fallbacks_in_order() {
    use ErrorKind::*;
    let r = router(TWO_GROUPS).await;
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a [Option<ErrorKind>])>,
        Result<&'a str, ()>,
        Vec<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "success first try",
            vec![("a1", &[None])],
            Ok("a1"),
            vec!["a1"],
        ),
        (
            "retry 5xx then ok",
            vec![("a1", &[Some(ServerError), Some(ServerError), None])],
            Ok("a1"),
            vec!["a1", "a1", "a1"],
        ),
        (
            "429s exhaust retries, fallback b",
            vec![("a1", &[Some(RateLimited)]), ("b1", &[None])],
            Ok("b1"),
            vec!["a1", "a1", "a1", "b1"],
        ),
        (
            "bad request: no retry, no fallback",
            vec![("a1", &[Some(BadRequest)])],
            Err(()),
            vec!["a1"],
        ),
        (
            "context window goes to c",
            vec![("a1", &[Some(ContextWindowExceeded)]), ("c1", &[None])],
            Ok("c1"),
            vec!["a1", "c1"],
        ),
        (
            "auth error: no retry, fallback",
            vec![("a1", &[Some(Authentication)]), ("b1", &[None])],
            Ok("b1"),
            vec!["a1", "b1"],
        ),
        (
            "everything fails",
            vec![("a1", &[Some(Connection)]), ("b1", &[Some(Unavailable)])],
            Err(()),
            vec!["a1", "a1", "a1", "b1", "b1", "b1"],
        ),
    ];
    for (name, script, want, want_calls) in cases {
        let (out, calls) = run(&r, "a", CallOptions::default(), &script).await;
        match (out, want) {
            (Ok(id), Ok(w)) => assert_eq!(id, w, "{name}"),
            (Err(RouteError::Failed { attempts, .. }), Err(())) => {
                assert_eq!(
                    attempts.len(),
                    want_calls.len(),
                    "{name}: every attempt is named"
                )
            }
            (other, _) => panic!("{name}: unexpected {:?}", other.map(|_| ())),
        }
        assert_eq!(calls, want_calls, "{name}");
    }
}

#[tokio::test]
async fn default_fallbacks_apply_without_a_rule() {
    let r = router(TWO_GROUPS).await;
    let (out, calls) = run(
        &r,
        "b",
        CallOptions {
            num_retries: Some(0),
            ..Default::default()
        },
        &[("b1", &[Some(ErrorKind::ServerError)]), ("c1", &[None])],
    )
    .await;
    assert_eq!(out.ok().as_deref(), Some("c1"));
    assert_eq!(calls, ["b1", "c1"]);
}

#[tokio::test]
async fn request_fallbacks_override_config() {
    let r = router(TWO_GROUPS).await;
    let opts = CallOptions {
        fallbacks: Some(vec!["c".into()]),
        num_retries: Some(0),
        ..Default::default()
    };
    let (out, calls) = run(
        &r,
        "a",
        opts,
        &[("a1", &[Some(ErrorKind::ServerError)]), ("c1", &[None])],
    )
    .await;
    assert_eq!(out.ok().as_deref(), Some("c1"));
    assert_eq!(calls, ["a1", "c1"]);
}

#[tokio::test]
async fn unknown_models_are_named() {
    let r = router(TWO_GROUPS).await;
    let (out, calls) = run(&r, "zzz", CallOptions::default(), &[]).await;
    assert!(matches!(out, Err(RouteError::UnknownModel(m)) if m == "zzz"));
    assert!(calls.is_empty());
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let r = router(TWO_GROUPS).await;
    let start = std::time::Instant::now();
    let out = r
        .route(
            "b",
            &CallOptions {
                num_retries: Some(1),
                ..Default::default()
            },
            |d, _| {
                let first = d.health.state() == HealthState::Unknown;
                async move {
                    if first {
                        let mut e = err(ErrorKind::RateLimited);
                        e.retry_after = Some(Duration::from_millis(700));
                        Err(e)
                    } else {
                        Ok(())
                    }
                }
            },
        )
        .await;
    assert!(out.is_ok());
    assert!(
        start.elapsed() >= Duration::from_millis(700),
        "waited {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn retries_prefer_other_deployments_and_timeouts_count() {
    let r = router(
        "model_list:
  - {model_name: g, litellm_params: {model: demo/x, timeout: 0.1}, model_info: {id: slow}}
  - {model_name: g, litellm_params: {model: demo/y}, model_info: {id: fast}}
router_settings: {num_retries: 1}
",
    )
    .await;
    for _ in 0..10 {
        let out = r
            .route("g", &CallOptions::default(), |d, _| async move {
                if d.config.id == "slow" {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Ok::<_, ProviderError>(d.config.id.clone())
            })
            .await;
        let routed = out.unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(routed.value, "fast");
        if let Some(a) = routed.attempts.first() {
            assert_eq!(a.error.kind, ErrorKind::Timeout);
            assert_eq!(a.deployment_id.as_deref(), Some("slow"));
        }
    }
}

#[tokio::test]
async fn weights_split_traffic() {
    let r = router(
        "model_list:
  - {model_name: g, litellm_params: {model: demo/x, weight: 9}, model_info: {id: heavy}}
  - {model_name: g, litellm_params: {model: demo/y, weight: 1}, model_info: {id: light}}
",
    )
    .await;
    let mut heavy = 0;
    for _ in 0..2000 {
        let out = r
            .route("g", &CallOptions::default(), |d, _| async move {
                Ok::<_, ProviderError>(d.config.id.clone())
            })
            .await;
        if out.map(|o| o.value).ok().as_deref() == Some("heavy") {
            heavy += 1;
        }
    }
    assert!((1650..=1950).contains(&heavy), "heavy got {heavy} of 2000");
}
