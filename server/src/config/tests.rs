use super::*;

fn env(pairs: &[(&str, &str)]) -> Env {
    Env::with_overlay(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn load(yaml: &str) -> Result<Config, ConfigError> {
    load_str(
        yaml,
        "test.yaml",
        Some(env(&[
            ("TG_KEY", "sk-from-env"),
            ("OPENAI_API_KEY", "sk-openai"),
        ])),
    )
}

#[test]
fn genai_gateway_default_config_loads_unchanged() {
    let text = include_str!("../../tests/fixtures/genai-gateway-default-config.yaml");
    let cfg = load_str(
        text,
        "default-config.yaml",
        Some(env(&[("LITELLM_MASTER_KEY", "sk-master")])),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<_> = cfg
        .deployments
        .iter()
        .map(|d| d.model_name.as_str())
        .collect();
    assert!(names.contains(&"anthropic.claude-3-5-sonnet-20240620-v1:0"));
    assert!(names.contains(&"gpt-4o"));
    assert!(names.contains(&"github/llama-3.1-8b-instant"));
    assert_eq!(
        cfg.router.default_fallbacks,
        ["anthropic.claude-3-haiku-20240307-v1:0"]
    );
    assert_eq!(
        cfg.router.fallbacks["gpt-4o"],
        ["anthropic.claude-3-5-sonnet-20240620-v1:0"]
    );
    assert!(cfg.drop_params);
    let w = cfg.warnings.join("\n");
    for expected in [
        "litellm_settings.cache_params.host: names REDIS_HOST, which is not set; answers are cached in this process's memory only",
        "litellm_settings.success_callback[0]: litellm_settings.s3_callback_params.s3_bucket_name names LITELLM_LOG_BUCKET_NAME, which is not set; request logs are not sent to S3",
        "router_settings.enable_pre_call_check:",
        "router_settings.redis_host: names REDIS_HOST, which is not set",
        "general_settings.store_model_in_db:",
        "cohere/command-r-plus",
        "vertex_ai/gemini-1.5-pro",
        "OPENAI_API_KEY is not set",
    ] {
        assert!(
            w.contains(expected),
            "missing warning {expected:?} in:\n{w}"
        );
    }
    // Its Bedrock guardrail is read whole (default on, during the call).
    let [g] = cfg.guardrails.as_slice() else {
        panic!("expected one guardrail, got {:?}", cfg.guardrails);
    };
    assert_eq!(g.name, "bedrock-pre-guard");
    assert!(g.default_on);
    assert_eq!(g.modes, [GuardrailMode::DuringCall]);
    assert!(matches!(
        &g.kind,
        GuardrailKind::Bedrock { identifier, version, .. } if identifier == "ff6ujrregl1q" && version == "1"
    ));
    assert!(cfg.redis_url.is_none());
    assert!(cfg
        .deployments
        .iter()
        .any(|d| d.tpm.is_some() && d.rpm.is_some()));
    // Unset provider keys make a deployment fail at call time, not at start.
    let gpt = cfg
        .deployments
        .iter()
        .find(|d| d.model_name == "gpt-4o")
        .map(|d| d.unusable.clone());
    assert!(matches!(gpt, Some(Some(_))));
    assert_eq!(
        cfg.master_key.as_ref().map(|k| k.expose()),
        Some("sk-master")
    );
}

#[test]
fn wrong_values_name_file_field_and_reason() {
    let cases: &[(&str, &str, &str)] = &[
        ("model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n      weight: heavy\n", "model_list[0].litellm_params.weight", "invalid type"),
        ("model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n      weight: -1\n", "model_list[0].litellm_params.weight", "≥ 0"),
        ("model_list:\n  - model_name: a\n", "model_list[0]", "litellm_params"),
        ("model_list:\n  - model_name: a\n    litellm_params:\n      model: hosted_vllm/x\n", "model_list[0].litellm_params.api_base", "need api_base"),
        ("model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n      api_base: ftp://x\n", "model_list[0].litellm_params.api_base", "http"),
        ("model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n      timeout: 0\n", "model_list[0].litellm_params.timeout", "positive"),
        ("router_settings:\n  num_retries: many\n", "router_settings.num_retries", "invalid type"),
        ("router_settings:\n  timeout: -3\n", "router_settings.timeout", "positive"),
        ("general_settings:\n  master_key: os.environ/TG_UNSET_MASTER\n", "general_settings.master_key", "not set"),
        ("general_settings:\n  master_key: hunter2\n", "general_settings.master_key", "sk-"),
        ("model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n    model_info:\n      id: same\n  - model_name: b\n    litellm_params:\n      model: openai/y\n    model_info:\n      id: same\n", "model_list", "used by two"),
        ("model_list: [\n", "model_list", "did not find expected"),
    ];
    for (yaml, path, reason) in cases {
        let e = match load(yaml) {
            Ok(_) => panic!("accepted:\n{yaml}"),
            Err(e) => e,
        };
        assert_eq!(e.file, "test.yaml");
        assert!(e.path.starts_with(path), "path {:?} for:\n{yaml}", e.path);
        assert!(
            e.reason.contains(reason),
            "reason {:?} for:\n{yaml}",
            e.reason
        );
    }
}

#[test]
fn settings_are_read_from_router_or_litellm_settings() {
    let cfg = load(
        "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x}\n  - model_name: b\n    litellm_params: {model: openai/y}\nlitellm_settings:\n  num_retries: 3\n  request_timeout: 7\n  fallbacks: [{a: [b]}]\n  context_window_fallbacks: [{a: b}]\n  default_fallbacks: b\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.router.num_retries, 3);
    assert_eq!(cfg.router.timeout, Some(Duration::from_secs(7)));
    assert_eq!(cfg.router.fallbacks["a"], ["b"]);
    assert_eq!(cfg.router.context_window_fallbacks["a"], ["b"]);
    assert_eq!(cfg.router.default_fallbacks, ["b"]);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn deployments_resolve_env_defaults_and_ids() {
    let cfg = load(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4o\n      temperature: 0.2\n      weight: 3\n  - model_name: g\n    litellm_params:\n      model: azure/dep\n      api_base: https://x.openai.azure.com/\n      api_key: os.environ/TG_KEY\n      api_version: '2024-06-01'\n    model_info:\n      id: 42\n      mode: chat\n      team: blue\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = (&cfg.deployments[0], &cfg.deployments[1]);
    assert_eq!(a.api_key.as_ref().map(|k| k.expose()), Some("sk-openai"));
    assert_eq!(a.api_base.as_deref(), Some("https://api.openai.com/v1"));
    assert_eq!(a.defaults.get("temperature"), Some(&serde_json::json!(0.2)));
    assert_eq!(a.weight, 3.0);
    assert_eq!(a.id.len(), 16);
    assert_eq!(b.id, "42");
    assert_eq!(b.api_base.as_deref(), Some("https://x.openai.azure.com"));
    assert_eq!(b.api_key.as_ref().map(|k| k.expose()), Some("sk-from-env"));
    assert_eq!(
        b.model_info.other.get("team"),
        Some(&serde_json::json!("blue"))
    );
    // The same entry gives the same id in every process.
    let again =
        load("model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4o\n")
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.deployments[0].id, a.id);
}

#[test]
fn unknown_keys_are_warned_with_their_path_never_dropped_silently() {
    let cfg = load(
        "model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n      aws_regoin_name: typo\nlitellm_settings:\n  set_verbose: true\nfoo: 1\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let w = cfg.warnings.join("\n");
    assert!(
        w.contains("model_list[0].litellm_params.aws_regoin_name"),
        "{w}"
    );
    assert!(w.contains("litellm_settings.set_verbose"), "{w}");
    assert!(w.contains("foo"), "{w}");
}

#[test]
fn openai_compatible_prefixes_get_their_default_endpoints() {
    let cases = [
        ("openai/m", "https://api.openai.com/v1"),
        ("mistral/m", "https://api.mistral.ai/v1"),
        ("groq/m", "https://api.groq.com/openai/v1"),
        ("deepseek/m", "https://api.deepseek.com/v1"),
        ("together_ai/m", "https://api.together.xyz/v1"),
        (
            "fireworks_ai/accounts/fireworks/models/m",
            "https://api.fireworks.ai/inference/v1",
        ),
        ("openrouter/m", "https://openrouter.ai/api/v1"),
        ("ollama/llama3", "http://127.0.0.1:11434/v1"),
        (
            "gemini/gemini-2.0-flash",
            "https://generativelanguage.googleapis.com/v1beta/openai",
        ),
        ("anthropic/claude", "https://api.anthropic.com"),
    ];
    for (model, base) in cases {
        let cfg = load(&format!(
            "model_list:\n  - model_name: a\n    litellm_params:\n      model: {model}\n"
        ))
        .unwrap_or_else(|e| panic!("{model}: {e}"));
        assert_eq!(
            cfg.deployments[0].api_base.as_deref(),
            Some(base),
            "{model}"
        );
    }
    // hosted_vllm and replicate-style openai/ need their own api_base.
    let cfg = load("model_list:\n  - model_name: a\n    litellm_params:\n      model: hosted_vllm/m\n      api_base: http://10.0.0.1:8000/v1/\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.deployments[0].api_base.as_deref(),
        Some("http://10.0.0.1:8000/v1")
    );
}

#[test]
fn the_response_cache_is_read_from_litellm_settings() {
    let base = "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x}\n";
    let cfg = load(&format!("{base}litellm_settings:\n  cache: true\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    let c = cfg.cache.unwrap_or_else(|| panic!("no cache"));
    assert_eq!(c.redis, None);
    assert_eq!(c.ttl, Duration::from_secs(600));
    assert!(c.chat && c.embeddings && c.default_on);
    let cfg = load(&format!(
        "{base}litellm_settings:\n  cache: true\n  cache_params:\n    type: redis\n    host: cache.internal\n    port: 6380\n    password: p@ss\n    ttl: 30\n    namespace: ns\n    mode: default_off\n    supported_call_types: [acompletion]\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let c = cfg.cache.unwrap_or_else(|| panic!("no cache"));
    assert_eq!(
        c.redis.as_deref(),
        Some("redis://:p%40ss@cache.internal:6380")
    );
    assert_eq!(c.ttl, Duration::from_secs(30));
    assert_eq!(c.namespace.as_deref(), Some("ns"));
    assert!(c.chat && !c.embeddings && !c.default_on);
    // Off unless `cache: true`, said at start when cache_params are set.
    let cfg = load(&format!(
        "{base}litellm_settings:\n  cache_params: {{type: local}}\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.cache.is_none());
    assert!(cfg
        .warnings
        .join("\n")
        .contains("litellm_settings.cache_params: set, but"));
    for (bad, path) in [
        ("cache_params: {type: s3}", "cache_params.type"),
        ("cache_params: {type: redis}", "cache_params.type"),
        ("cache_params: {ttl: -1}", "cache_params.ttl"),
        ("cache_params: {mode: sometimes}", "cache_params.mode"),
        (
            "cache_params: {supported_call_types: [chat]}",
            "cache_params.supported_call_types",
        ),
    ] {
        let e = load(&format!(
            "{base}litellm_settings:\n  cache: true\n  {bad}\n"
        ))
        .err()
        .unwrap_or_else(|| panic!("{bad} loaded"));
        assert!(e.to_string().contains(path), "{bad}: {e}");
    }
}

#[test]
fn guardrails_are_read_and_bad_ones_named() {
    let base = "model_list: []\nguardrails:\n";
    let cfg = load(&format!(
        "{base}  - guardrail_name: pii\n    litellm_params:\n      guardrail: litellm_content_filter\n      mode: [pre_call, post_call]\n      default_on: true\n      output_parse_pii: true\n      patterns:\n        - pattern_type: prebuilt\n          pattern_name: email\n          action: MASK\n      pii_entities_config:\n        US_SSN: BLOCK\n        PERSON: MASK\n      blocked_words:\n        - keyword: secret project\n  - guardrail_name: other\n    litellm_params:\n      guardrail: aporia\n      mode: during_call\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let [g] = cfg.guardrails.as_slice() else {
        panic!("{:?}", cfg.guardrails);
    };
    assert_eq!(g.modes, [GuardrailMode::PreCall, GuardrailMode::PostCall]);
    assert!(g.default_on && g.unmask);
    let GuardrailKind::Content {
        patterns, words, ..
    } = &g.kind
    else {
        panic!("{:?}", g.kind);
    };
    assert_eq!(patterns.len(), 2);
    assert!(patterns[1].block && patterns[1].source == PatternSource::Prebuilt("us_ssn".into()));
    assert!(words[0].block, "a word without an action blocks");
    let w = cfg.warnings.join("\n");
    assert!(w.contains("pii_entities_config.PERSON"), "{w}");
    assert!(
        w.contains("guardrails[1].litellm_params.guardrail: \"aporia\""),
        "{w}"
    );

    for (yaml, path) in [
        ("  - guardrail_name: a\n    litellm_params:\n      guardrail: litellm_content_filter\n      mode: sometimes\n      max_input_chars: 5\n", "guardrails[0].litellm_params.mode"),
        ("  - guardrail_name: a\n    litellm_params:\n      guardrail: litellm_content_filter\n      patterns:\n        - pattern_name: email\n          action: SHOUT\n", "guardrails[0].litellm_params.patterns[0].action"),
        ("  - guardrail_name: a\n    litellm_params:\n      guardrail: litellm_content_filter\n      patterns:\n        - pattern_type: regex\n", "guardrails[0].litellm_params.patterns[0].pattern"),
        ("  - guardrail_name: a\n    litellm_params:\n      guardrail: bedrock\n      guardrailVersion: 1\n", "guardrails[0].litellm_params.guardrailIdentifier"),
        ("  - guardrail_name: a\n    litellm_params:\n      guardrail: litellm_content_filter\n", "guardrails[0].litellm_params"),
    ] {
        let e = load(&format!("{base}{yaml}")).err().unwrap_or_else(|| panic!("accepted:\n{yaml}"));
        assert_eq!(e.path, path, "{e}");
    }
}

#[test]
fn log_destinations_and_alerts_are_read_and_bad_ones_named() {
    let vars = env(&[
        ("BUCKET", "tollgate-logs"),
        ("LANGSMITH_API_KEY", "ls-key"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-tenant=a%20b,authorization=Bearer t",
        ),
        ("SLACK_WEBHOOK_URL", "http://127.0.0.1:9/hook"),
    ]);
    let yaml = "litellm_settings:\n  success_callback: [s3, langsmith, datadog]\n  failure_callback: [s3]\n  callbacks: otel\n  service_callback: [s3]\n  turn_off_message_logging: true\n  s3_callback_params:\n    s3_bucket_name: os.environ/BUCKET\n    s3_endpoint_url: http://127.0.0.1:5000\n    s3_path: /logs/\n    s3_flush_interval: 2\ngeneral_settings:\n  store_prompts_in_spend_logs: true\n  alerting: [slack]\n  alert_types: [budget_alerts, daily_reports]\n  background_health_checks: true\n  health_check_interval: 60\n";
    let cfg = load_str(yaml, "t.yaml", Some(vars.clone())).unwrap_or_else(|e| panic!("{e}"));
    let cb = &cfg.callbacks;
    let names: Vec<_> = cb.destinations.iter().map(|d| d.name()).collect();
    assert_eq!(names, ["otel", "s3", "langsmith"]);
    let s3 = &cb.destinations[1];
    assert!(s3.success && s3.failure && s3.service);
    let DestinationKind::S3(p) = &s3.kind else {
        panic!("{:?}", s3.kind)
    };
    assert_eq!(
        (p.bucket.as_str(), p.prefix.as_str(), p.path_style),
        ("tollgate-logs", "logs", true)
    );
    assert_eq!(p.flush_every, Some(Duration::from_secs(2)));
    let DestinationKind::Otel {
        endpoint,
        headers,
        protobuf,
        ..
    } = &cb.destinations[0].kind
    else {
        panic!()
    };
    assert_eq!(endpoint, "http://127.0.0.1:4318/v1/traces");
    assert!(*protobuf);
    assert_eq!(headers[0].0, "x-tenant");
    assert_eq!(headers[0].1.expose(), "a b");
    assert!(!cb.destinations[2].failure, "langsmith gets successes only");
    // Message logging off wins over storing prompts.
    assert!(!cb.store_gets_content() && !cb.destinations_get_content());
    let w = cfg.warnings.join("\n");
    assert!(
        w.contains("litellm_settings.success_callback[2]: \"datadog\""),
        "{w}"
    );
    assert!(
        w.contains("general_settings.store_prompts_in_spend_logs"),
        "{w}"
    );
    assert!(
        w.contains("general_settings.alert_types[1]: \"daily_reports\""),
        "{w}"
    );
    let a = cfg.alerting.as_ref().unwrap_or_else(|| panic!("alerting"));
    assert!(a.types.contains("budget_alerts") && a.types.len() == 1);
    assert_eq!(
        cfg.health_checks.map(|h| h.every),
        Some(Duration::from_secs(60))
    );

    for (yaml, path) in [
        ("litellm_settings:\n  success_callback: [s3]\n", "litellm_settings.success_callback[0]"),
        ("litellm_settings:\n  success_callback: [s3]\n  s3_callback_params:\n    s3_region_name: us-east-1\n", "litellm_settings.s3_callback_params.s3_bucket_name"),
        ("litellm_settings:\n  success_callback: [s3]\n  s3_callback_params:\n    s3_bucket_name: b\n    s3_endpoint_url: not a url\n", "litellm_settings.s3_callback_params.s3_endpoint_url"),
        ("litellm_settings:\n  failure_callback: [webhook]\n", "litellm_settings.failure_callback[0]"),
        ("general_settings:\n  alerting: [slack]\n  alerting_threshold: -1\n", "general_settings.alerting_threshold"),
        ("general_settings:\n  background_health_checks: true\n  health_check_interval: 0\n", "general_settings.health_check_interval"),
    ] {
        let e = load_str(yaml, "t.yaml", Some(vars.clone()))
            .err()
            .unwrap_or_else(|| panic!("accepted:\n{yaml}"));
        assert_eq!(e.path, path, "{e}");
    }
    // Without its variables: langsmith, otel and slack say which one is missing.
    for (yaml, var) in [
        (
            "litellm_settings:\n  callbacks: [langsmith]\n",
            "LANGSMITH_API_KEY",
        ),
        (
            "litellm_settings:\n  callbacks: [otel]\n",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        (
            "general_settings:\n  alerting: [slack]\n",
            "SLACK_WEBHOOK_URL",
        ),
    ] {
        let e = load_str(yaml, "t.yaml", Some(env(&[])))
            .err()
            .unwrap_or_else(|| panic!("accepted:\n{yaml}"));
        assert!(e.reason.contains(var), "{e}");
    }
}

#[test]
fn spend_and_error_logs_can_be_left_out_of_the_store() {
    let load = |general: &str| {
        load(&format!("model_list: []\ngeneral_settings:\n{general}"))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let all = load("  store_prompts_in_spend_logs: true\n");
    let kept = all.callbacks.stored_logs();
    assert!(kept.keeps(true) && kept.keeps(false) && kept.content);
    assert_eq!(kept.notice(), None);

    let failures = load("  disable_spend_logs: true\n").callbacks.stored_logs();
    assert!(!failures.keeps(true) && failures.keeps(false));
    assert!(failures
        .notice()
        .is_some_and(|n| n.contains("general_settings.disable_spend_logs")));

    let successes = load("  disable_error_logs: true\n").callbacks.stored_logs();
    assert!(successes.keeps(true) && !successes.keeps(false));
    assert!(successes
        .notice()
        .is_some_and(|n| n.contains("disable_error_logs")));

    // Neither: the prompts kept for the store have nowhere to go, and it is said.
    let none = load(
        "  disable_spend_logs: true\n  disable_error_logs: true\n  store_prompts_in_spend_logs: true\n",
    );
    let kept = none.callbacks.stored_logs();
    assert!(!kept.keeps(true) && !kept.keeps(false) && !kept.content);
    assert!(
        none.warnings
            .iter()
            .any(|w| w.contains("no request log keeps them")),
        "{:?}",
        none.warnings
    );
}
