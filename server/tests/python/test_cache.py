"""The response cache (`litellm_settings.cache`): repeated requests are answered
from it (marked, at no cost, logged as hits), streamed requests get a stream,
per-request controls and `Cache-Control` are honoured, keys' allowed cache
controls are enforced, and with Redis two processes share one cache."""

import json
import os
import textwrap
import time
import uuid

import anthropic
import boto3
import botocore
import botocore.config
import httpx
import openai
import pytest

from conftest import MASTER_KEY, start_gateway, wait_until

REDIS_URL = os.environ.get("TOLLGATE_TEST_REDIS_URL")


def cache_config(mock: str, cache_params: str = "") -> str:
    return textwrap.dedent(
        f"""
        model_list:
          - model_name: cached
            litellm_params:
              model: openai/gpt-4o-mini
              api_base: {mock}/v1
              api_key: sk-up
            model_info:
              input_cost_per_token: 0.001
              output_cost_per_token: 0.002
          - model_name: capped
            litellm_params:
              model: openai/gpt-4o-mini
              api_base: {mock}/v1
              api_key: sk-up
              rpm: 2
          - model_name: embed
            litellm_params:
              model: openai/text-embedding-3-small
              api_base: {mock}/v1
              api_key: sk-up
        litellm_settings:
          cache: true
        """
    ) + textwrap.indent(textwrap.dedent(cache_params), "  ")


@pytest.fixture(scope="module")
def gw(mock, slow_mock, tmp_path_factory):
    p = start_gateway(mock.url, slow_mock.url, tmp_path_factory.mktemp("cache"), config_text=cache_config(mock.url))
    yield p
    p.stop()


def admin(url):
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30)


def upstream_calls(mock, marker):
    return sum(1 for r in httpx.get(mock.url + "/__mock/requests").json() if marker in json.dumps(r.get("body")))


def ask(url, prompt, key=MASTER_KEY, headers=None, **body):
    return httpx.post(
        url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}", **(headers or {})},
        json={"model": "cached", "messages": [{"role": "user", "content": prompt}], **body},
        timeout=30,
    )


def prompt():
    return f"cache me {uuid.uuid4().hex}"


def test_a_repeated_request_is_answered_from_the_cache(gw, mock):
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    p = prompt()
    first = client.chat.completions.with_raw_response.create(model="cached", messages=[{"role": "user", "content": p}])
    second = client.chat.completions.with_raw_response.create(model="cached", messages=[{"role": "user", "content": p}])
    assert first.headers["x-tollgate-cache-hit"] == "false"
    assert second.headers["x-tollgate-cache-hit"] == "true"
    assert first.headers["x-litellm-cache-key"] == second.headers["x-litellm-cache-key"]
    a, b = first.parse(), second.parse()
    assert b.id == a.id and b.choices[0].message.content == a.choices[0].message.content
    assert b.usage.total_tokens == a.usage.total_tokens
    assert upstream_calls(mock, p) == 1
    # The answer names the deployment that gave it, as on a miss.
    assert second.headers["x-tollgate-model"] == "cached"
    assert second.headers["x-tollgate-deployment-id"] == first.headers["x-tollgate-deployment-id"]


def test_every_parameter_that_changes_the_answer_is_in_the_key(gw, mock):
    p = prompt()
    assert ask(gw.url, p).headers["x-tollgate-cache-hit"] == "false"
    for variant in ({"temperature": 0.3}, {"max_tokens": 7}, {"seed": 4}, {"top_k": 2}, {"user": "u1"}):
        r = ask(gw.url, p, **variant)
        assert r.status_code == 200, r.text
        assert r.headers["x-tollgate-cache-hit"] == "false", variant
    assert upstream_calls(mock, p) == 6
    # How it is delivered is not: `stream` and `stream_options` change nothing.
    assert ask(gw.url, p, temperature=0.3).headers["x-tollgate-cache-hit"] == "true"


def test_a_streamed_request_is_answered_from_the_cache_as_a_stream(gw, mock):
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    p = prompt()
    whole = client.chat.completions.create(model="cached", messages=[{"role": "user", "content": p}])
    raw = client.chat.completions.with_raw_response.create(
        model="cached", messages=[{"role": "user", "content": p}], stream=True, stream_options={"include_usage": True}
    )
    assert raw.headers["x-tollgate-cache-hit"] == "true"
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert upstream_calls(mock, p) == 1
    # A streamed answer is kept too, and serves a plain request.
    q = prompt()
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="cached", messages=[{"role": "user", "content": q}], stream=True)
        if c.choices
    )
    again = client.chat.completions.with_raw_response.create(model="cached", messages=[{"role": "user", "content": q}])
    assert again.headers["x-tollgate-cache-hit"] == "true"
    assert again.parse().choices[0].message.content == streamed
    assert upstream_calls(mock, q) == 1


def test_tool_calls_come_back_from_the_cache_whole(gw, mock):
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    p = prompt()
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    args = dict(model="cached", messages=[{"role": "user", "content": p}], tools=tools, tool_choice="required")
    first = client.chat.completions.create(**args, stream=True)
    calls = {}
    for c in first:
        for tc in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            entry = calls.setdefault(tc.index, {"name": "", "arguments": ""})
            entry["name"] += tc.function.name or ""
            entry["arguments"] += tc.function.arguments or ""
    hit = client.chat.completions.with_raw_response.create(**args)
    assert hit.headers["x-tollgate-cache-hit"] == "true"
    message = hit.parse().choices[0].message
    assert [(t.function.name, t.function.arguments) for t in message.tool_calls] == [
        (v["name"], v["arguments"]) for _, v in sorted(calls.items())
    ]
    assert hit.parse().choices[0].finish_reason == "tool_calls"
    assert upstream_calls(mock, p) == 1


def test_per_request_controls_and_cache_control_header(gw, mock):
    p = prompt()
    assert ask(gw.url, p, cache={"no-store": True}).headers["x-tollgate-cache-hit"] == "false"
    assert ask(gw.url, p).headers["x-tollgate-cache-hit"] == "false"  # nothing was kept
    assert upstream_calls(mock, p) == 2
    # no-cache: goes upstream, and keeps the new answer.
    fresh = ask(gw.url, p, cache={"no-cache": True})
    assert fresh.headers["x-tollgate-cache-hit"] == "false"
    header = ask(gw.url, p, headers={"Cache-Control": "no-cache"})
    assert header.headers["x-tollgate-cache-hit"] == "false"
    assert upstream_calls(mock, p) == 4
    kept = ask(gw.url, p)
    assert kept.headers["x-tollgate-cache-hit"] == "true"
    assert kept.json()["id"] == header.json()["id"]
    # s-maxage: a kept answer older than this is not good enough.
    time.sleep(1.2)
    assert ask(gw.url, p, cache={"s-maxage": 1}).headers["x-tollgate-cache-hit"] == "false"
    assert ask(gw.url, p, cache={"s-maxage": 60}).headers["x-tollgate-cache-hit"] == "true"
    # ttl: this answer is kept for one second only.
    q = prompt()
    ask(gw.url, q, cache={"ttl": 1})
    assert ask(gw.url, q).headers["x-tollgate-cache-hit"] == "true"
    time.sleep(1.5)
    assert ask(gw.url, q).headers["x-tollgate-cache-hit"] == "false"
    # The `cache` field is never sent upstream.
    bodies = [r["body"] for r in httpx.get(mock.url + "/__mock/requests").json() if p in json.dumps(r.get("body"))]
    assert bodies and all("cache" not in b for b in bodies)


def test_bad_cache_controls_are_refused_in_openai_shape(gw):
    for bad in ({"no-cache": "yes"}, {"ttl": -5}, {"nocache": True}, "no-cache"):
        r = ask(gw.url, prompt(), cache=bad)
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and err["param"] == "cache", err


def test_hits_cost_nothing_and_are_logged_as_hits(gw):
    with admin(gw.url) as a:
        made = a.post("/key/generate", json={}).json()
    key, token = made["key"], made["token"]
    p = prompt()
    assert ask(gw.url, p, key=key).headers["x-tollgate-cache-hit"] == "false"
    assert ask(gw.url, p, key=key).headers["x-tollgate-cache-hit"] == "true"
    assert ask(gw.url, p, key=key, stream=True).headers["x-tollgate-cache-hit"] == "true"
    with admin(gw.url) as a:
        def rows():
            return a.get("/spend/logs", params={"api_key": token}).json()

        assert wait_until(lambda: len(rows()) == 3, timeout=10)
        logs = sorted(rows(), key=lambda r: r["startTime"])
        assert [r["cache_hit"] for r in logs] == ["False", "True", "True"]
        assert logs[0]["spend"] > 0
        assert logs[1]["spend"] == 0 and logs[2]["spend"] == 0
        assert logs[1]["total_tokens"] == logs[0]["total_tokens"]
        info = a.get("/key/info", params={"key": key}).json()["info"]
        assert info["spend"] == pytest.approx(logs[0]["spend"])


def test_hits_use_none_of_the_deployment_rpm(gw):
    """With a key limit and a deployment rpm, both are reserved in one step
    before the cache is asked; a hit gives the deployment's request back."""
    with admin(gw.url) as a:
        key = a.post("/key/generate", json={"rpm_limit": 100}).json()["key"]

    def capped(p, **body):
        return ask(gw.url, p, key=key, model="capped", **body)

    for _ in range(2):
        first = capped(p1 := prompt())
        assert first.status_code == 200, first.text
        if int(first.headers["x-ratelimit-reset-requests"].rstrip("s")) >= 15:
            break
        # Too close to the end of the minute: start again in the next one.
        time.sleep(int(first.headers["x-ratelimit-reset-requests"].rstrip("s")) + 1)
    assert first.headers["x-tollgate-cache-hit"] == "false"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    for _ in range(3):
        hit = capped(p1)
        assert hit.headers["x-tollgate-cache-hit"] == "true"
    second = capped(prompt())
    assert second.status_code == 200, second.text
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    third = capped(prompt(), timeout=1)
    assert third.status_code == 429, third.text
    assert "capped" in third.json()["error"]["message"] or "rpm" in third.json()["error"]["message"]


def test_anthropic_and_bedrock_clients_get_cached_answers_too(gw, mock):
    p = prompt()
    ant = anthropic.Anthropic(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
    first = ant.messages.with_raw_response.create(model="cached", max_tokens=50, messages=[{"role": "user", "content": p}])
    second = ant.messages.with_raw_response.create(model="cached", max_tokens=50, messages=[{"role": "user", "content": p}])
    assert (first.headers["x-tollgate-cache-hit"], second.headers["x-tollgate-cache-hit"]) == ("false", "true")
    assert second.parse().content[0].text == first.parse().content[0].text
    brt = boto3.client(
        "bedrock-runtime",
        endpoint_url=gw.url + "/bedrock",
        region_name="us-east-1",
        config=botocore.config.Config(signature_version=botocore.UNSIGNED, retries={"max_attempts": 1, "mode": "standard"}),
    )
    brt.meta.events.register("request-created.*", lambda request, **_: request.headers.__setitem__("Authorization", f"Bearer {MASTER_KEY}"))
    q = prompt()
    seen = []
    brt.meta.events.register("after-call.*", lambda http_response, **_: seen.append(http_response.headers.get("x-tollgate-cache-hit")))
    a = brt.converse(modelId="cached", messages=[{"role": "user", "content": [{"text": q}]}])
    b = brt.converse_stream(modelId="cached", messages=[{"role": "user", "content": [{"text": q}]}])
    text = "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in b["stream"] if "contentBlockDelta" in e)
    assert seen == ["false", "true"]
    assert text == a["output"]["message"]["content"][0]["text"]
    assert upstream_calls(mock, p) == 1 and upstream_calls(mock, q) == 1


def test_embeddings_are_cached(gw, mock):
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    text = prompt()
    a = client.embeddings.with_raw_response.create(model="embed", input=[text])
    b = client.embeddings.with_raw_response.create(model="embed", input=[text])
    assert (a.headers["x-tollgate-cache-hit"], b.headers["x-tollgate-cache-hit"]) == ("false", "true")
    assert a.parse().data[0].embedding == b.parse().data[0].embedding
    c = client.embeddings.with_raw_response.create(model="embed", input=[text], dimensions=8)
    assert c.headers["x-tollgate-cache-hit"] == "false"
    assert upstream_calls(mock, text) == 2


def test_keys_may_only_set_their_allowed_cache_controls(gw):
    with admin(gw.url) as a:
        key = a.post("/key/generate", json={"allowed_cache_controls": ["no-cache"]}).json()["key"]
    assert ask(gw.url, prompt(), key=key, cache={"no-cache": True}).status_code == 200
    r = ask(gw.url, prompt(), key=key, cache={"no-store": True})
    assert r.status_code == 403
    assert "Not allowed to set no-store as a cache control" in r.json()["error"]["message"]


def test_cache_routes_ping_delete_and_flush(gw):
    with admin(gw.url) as a:
        ping = a.get("/cache/ping").json()
        assert ping["status"] == "healthy" and ping["cache_type"] == "local"
        p = prompt()
        key = ask(gw.url, p).headers["x-litellm-cache-key"]
        assert ask(gw.url, p).headers["x-tollgate-cache-hit"] == "true"
        r = a.post("/cache/delete", json={"keys": [key]})
        assert r.status_code == 200 and r.json()["deleted"] == 1, r.text
        assert ask(gw.url, p).headers["x-tollgate-cache-hit"] == "false"
        assert ask(gw.url, p).headers["x-tollgate-cache-hit"] == "true"
        assert a.post("/cache/delete", json={"keys": "nope"}).status_code == 400
        assert a.post("/cache/flushall").json()["status"] == "success"
        assert ask(gw.url, p).headers["x-tollgate-cache-hit"] == "false"
        user_key = a.post("/key/generate", json={}).json()["key"]
    r = httpx.post(gw.url + "/cache/flushall", headers={"Authorization": f"Bearer {user_key}"})
    assert r.status_code == 403


def test_default_off_caches_only_requests_that_ask(mock, slow_mock, tmp_path_factory):
    p = start_gateway(
        mock.url,
        slow_mock.url,
        tmp_path_factory.mktemp("cache-off"),
        config_text=cache_config(mock.url, "cache_params:\n  type: local\n  mode: default_off\n  namespace: team-a\n"),
    )
    try:
        q = prompt()
        ask(p.url, q)
        assert "x-tollgate-cache-hit" not in ask(p.url, q).headers
        assert ask(p.url, q, cache={"use-cache": True}).headers["x-tollgate-cache-hit"] == "false"
        hit = ask(p.url, q, cache={"use-cache": True})
        assert hit.headers["x-tollgate-cache-hit"] == "true"
        assert hit.headers["x-litellm-cache-key"].startswith("team-a:")
    finally:
        p.stop()


def test_a_redis_cache_is_shared_by_two_processes(mock, slow_mock, tmp_path_factory):
    if not REDIS_URL:
        pytest.skip("needs Redis (TOLLGATE_TEST_REDIS_URL)")
    prefix = f"cache-{uuid.uuid4().hex[:8]}:"
    procs = [
        start_gateway(
            mock.url,
            slow_mock.url,
            tmp_path_factory.mktemp(f"cache-{name}"),
            config_text=cache_config(mock.url, "cache_params:\n  type: redis\n  ttl: 60\n"),
            extra_env={"REDIS_URL": REDIS_URL, "TOLLGATE_REDIS_PREFIX": prefix},
        )
        for name in ("a", "b")
    ]
    try:
        a, b = procs
        q = prompt()
        first = ask(a.url, q)
        assert first.headers["x-tollgate-cache-hit"] == "false"
        # The answer is written off the request path: the other process sees it soon after.
        assert wait_until(lambda: ask(b.url, q).headers["x-tollgate-cache-hit"] == "true", timeout=5)
        assert ask(b.url, q).json()["id"] == first.json()["id"]
        with admin(b.url) as adm:
            assert adm.get("/cache/ping").json()["cache_type"] == "redis"
            assert adm.post("/cache/delete", json={"keys": [first.headers["x-litellm-cache-key"]]}).json()["deleted"] == 1
        assert ask(a.url, q).headers["x-tollgate-cache-hit"] == "false"
        assert upstream_calls(mock, q) == 2
    finally:
        for p in procs:
            p.stop()
