use super::*;
use crate::gateway::types::ChatRequest;

fn config(max_memory_bytes: u64) -> CacheConfig {
    CacheConfig {
        redis: None,
        ttl: Duration::from_secs(600),
        namespace: None,
        chat: true,
        embeddings: false,
        default_on: true,
        max_item_bytes: 1 << 20,
        max_memory_bytes,
    }
}

fn local(cfg: CacheConfig) -> ResponseCache {
    ResponseCache::new(cfg, None, "t:", &tokio_util::sync::CancellationToken::new())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn request(json: &str) -> ChatRequest {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"))
}

fn answer() -> ChatResponse {
    serde_json::from_value(serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop"},
            {"index": 1, "message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{}"}}
            ]}, "finish_reason": "tool_calls"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn directives_come_from_the_header_and_the_body() {
    let mut h = HeaderMap::new();
    h.insert(
        CACHE_CONTROL,
        "no-cache, s-maxage=30"
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let mut d = Directives::from_headers(&h);
    assert!(d.no_cache && !d.no_store);
    assert_eq!(d.s_maxage, Some(Duration::from_secs(30)));
    d.merge_body(serde_json::json!({"no-store": true, "ttl": 5, "namespace": "ns"}))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(d.no_store);
    assert_eq!(d.ttl, Some(Duration::from_secs(5)));
    assert_eq!(d.namespace.as_deref(), Some("ns"));
    for bad in [
        serde_json::json!(true),
        serde_json::json!({"no-cache": "yes"}),
        serde_json::json!({"ttl": -1}),
        serde_json::json!({"nocache": true}),
    ] {
        assert!(Directives::default().merge_body(bad).is_err());
    }
}

#[test]
fn the_key_covers_what_changes_the_answer_and_nothing_else() {
    let c = local(config(1 << 20));
    let key = |group: &str, json: &str| {
        c.plan(CallKind::Chat, group, &Directives::default(), || {
            chat_material(&request(json), None)
        })
        .map(|p| p.key)
        .unwrap_or_default()
    };
    let base = key(
        "g",
        r#"{"model":"g","messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(base.len(), 64);
    assert_eq!(
        base,
        key(
            "g",
            r#"{"model":"g","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#
        )
    );
    assert_ne!(
        base,
        key(
            "h",
            r#"{"model":"g","messages":[{"role":"user","content":"hi"}]}"#
        )
    );
    assert_ne!(
        base,
        key(
            "g",
            r#"{"model":"g","messages":[{"role":"user","content":"hi"}],"temperature":0.5}"#
        )
    );
    assert_ne!(
        base,
        key(
            "g",
            r#"{"model":"g","messages":[{"role":"user","content":"ho"}]}"#
        )
    );
    assert_ne!(
        base,
        key(
            "g",
            r#"{"model":"g","messages":[{"role":"user","content":"hi"}],"top_k":3}"#
        )
    );
    let ns = Directives {
        namespace: Some("team-a".into()),
        ..Default::default()
    };
    let p = c
        .plan(CallKind::Chat, "g", &ns, || {
            chat_material(
                &request(r#"{"model":"g","messages":[{"role":"user","content":"hi"}]}"#),
                None,
            )
        })
        .unwrap_or_else(|| panic!("no plan"));
    assert_eq!(p.key, format!("team-a:{base}"));
    // Embeddings are not among the supported call types here.
    assert!(c
        .plan(CallKind::Embeddings, "g", &Directives::default(), Vec::new)
        .is_none());
}

#[test]
fn modes_and_directives_shape_the_plan() {
    let mut cfg = config(1 << 20);
    cfg.default_on = false;
    let c = local(cfg);
    assert!(c
        .plan(CallKind::Chat, "g", &Directives::default(), Vec::new)
        .is_none());
    let opt_in = Directives {
        use_cache: Some(true),
        ttl: Some(Duration::from_secs(9)),
        ..Default::default()
    };
    let p = c
        .plan(CallKind::Chat, "g", &opt_in, Vec::new)
        .unwrap_or_else(|| panic!("no plan"));
    assert!(p.read);
    assert_eq!(p.write, Some(Duration::from_secs(9)));
    let both = Directives {
        use_cache: Some(true),
        no_cache: true,
        no_store: true,
        ..Default::default()
    };
    assert!(c.plan(CallKind::Chat, "g", &both, Vec::new).is_none());
}

#[test]
fn a_kept_answer_replays_as_a_stream_and_reassembles() {
    let resp = answer();
    let chunks = to_chunks(&resp);
    let mut a = Assembler::default();
    for c in &chunks {
        a.push(c);
    }
    let back = a.finish(None).unwrap_or_else(|| panic!("not assembled"));
    assert_eq!(
        serde_json::to_value(&back).unwrap_or_default(),
        serde_json::to_value(&resp).unwrap_or_default()
    );
    // The last chunk carries the usage alone.
    let last = chunks.last().unwrap_or_else(|| panic!("no chunks"));
    assert!(last.choices.is_empty() && last.usage.is_some());
}

#[test]
fn an_unfinished_stream_is_not_kept() {
    let resp = answer();
    let chunks = to_chunks(&resp);
    let mut a = Assembler::default();
    a.push(&chunks[0]);
    assert!(a.finish(None).is_none());
}

#[tokio::test]
async fn the_local_cache_keeps_answers_within_its_memory_and_age() {
    let c = local(config(64 * 1024));
    let plan = |k: &str| Plan {
        key: k.into(),
        read: true,
        write: Some(Duration::from_secs(60)),
        max_age: None,
    };
    c.put(&plan("a"), "dep-1", &answer());
    let hit: Entry<ChatResponse> = c.get(&plan("a")).await.unwrap_or_else(|| panic!("miss"));
    assert_eq!(hit.deployment, "dep-1");
    assert_eq!(hit.body.choices.len(), 2);
    // Too old for the caller's s-maxage.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let strict = Plan {
        max_age: Some(Duration::from_millis(5)),
        ..plan("a")
    };
    assert!(c.get::<ChatResponse>(&strict).await.is_none());
    // Memory stays bounded however many answers are kept.
    for i in 0..2000 {
        c.put(&plan(&format!("k{i}")), "dep-1", &answer());
    }
    let Store::Local(m) = &c.store else {
        panic!("not local")
    };
    m.run_pending_tasks();
    assert!(m.weighted_size() <= 64 * 1024, "{}", m.weighted_size());
    assert!(m.entry_count() > 10);
    // A short ttl expires.
    let short = Plan {
        write: Some(Duration::from_millis(30)),
        ..plan("short")
    };
    c.put(&short, "dep-1", &answer());
    assert!(c.get::<ChatResponse>(&short).await.is_some());
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(c.get::<ChatResponse>(&short).await.is_none());
    c.put(&plan("d"), "dep-1", &answer());
    assert_eq!(c.delete(&["d".into(), "nope".into()]).await.ok(), Some(1));
    assert!(c.get::<ChatResponse>(&plan("d")).await.is_none());
}
