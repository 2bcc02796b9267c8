"""The OpenAI-compatible API, driven by the official `openai` SDK, through every
provider family (OpenAI, Azure, Anthropic, Bedrock) against the mock upstreams."""

import base64
import json
import struct

import httpx
import openai
import pytest

from conftest import MASTER_KEY, UPSTREAM_SECRET, AWS_SECRET, wait_until

FAMILIES = ["gpt-mock", "azure-mock", "claude-mock", "bedrock-mock"]

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Time in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
]


@pytest.mark.parametrize("model", FAMILIES)
def test_chat(client, model):
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}],
        temperature=0.2,
        max_tokens=50,
    )
    resp = raw.parse()
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content == "Mock reply to: hello there"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert raw.headers["x-tollgate-model"] == model
    assert raw.headers["x-tollgate-deployment-id"]
    assert raw.headers["x-request-id"]
    body = raw.http_response.json()
    # OpenAI's schema: these keys are always present.
    assert "refusal" in body["choices"][0]["message"]
    assert "system_fingerprint" in body and "logprobs" in body["choices"][0]


@pytest.mark.parametrize("model", FAMILIES + ["demo"])
def test_stream_with_usage(client, model):
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "stream this please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish, roles = "", None, None, []
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.role:
                roles.append(c.delta.role)
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    if model == "demo":
        assert text.startswith("Hello from Tollgate's demo model!")
    else:
        assert text == "Mock reply to: stream this please"
    assert roles == ["assistant"]
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0


@pytest.mark.parametrize("model", FAMILIES)
def test_stream_without_usage_sends_no_usage_chunk(client, model):
    chunks = list(
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], stream=True)
    )
    assert chunks and all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


@pytest.mark.parametrize("model", FAMILIES)
def test_parallel_tool_calls(client, model):
    resp = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "weather in Paris"}], tools=TOOLS, tool_choice="auto"
    )
    msg = resp.choices[0].message
    assert resp.choices[0].finish_reason == "tool_calls"
    names = [c.function.name for c in msg.tool_calls]
    assert names == ["get_weather", "get_time"]
    for call in msg.tool_calls:
        assert call.id and call.type == "function"
        assert json.loads(call.function.arguments) == {"input": "weather in Paris"}


@pytest.mark.parametrize("model", FAMILIES)
def test_named_tool_choice_and_tool_result_round_trip(client, model):
    first = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "time in Oslo"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "get_time"
    second = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "user", "content": "time in Oslo"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "14:05"},
        ],
        tools=TOOLS,
    )
    assert second.choices[0].message.content == "Mock reply to tool result: 14:05"


@pytest.mark.parametrize("model", FAMILIES)
def test_streamed_tool_call_argument_deltas(client, model):
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "weather in Rome"}],
        tools=TOOLS,
        stream=True,
    )
    calls, pieces, finish = {}, 0, None
    for chunk in stream:
        for c in chunk.choices:
            finish = c.finish_reason or finish
            for tc in c.delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"id": None, "name": None, "args": ""})
                if tc.id:
                    entry["id"] = tc.id
                if tc.function and tc.function.name:
                    entry["name"] = tc.function.name
                if tc.function and tc.function.arguments:
                    entry["args"] += tc.function.arguments
                    pieces += 1
    assert finish == "tool_calls"
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    for entry in calls.values():
        assert entry["id"]
        assert json.loads(entry["args"]) == {"input": "weather in Rome"}
    assert pieces >= 4, "arguments arrive as several deltas"


@pytest.mark.parametrize("model", FAMILIES)
def test_response_format_json_schema(client, model):
    resp = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "give json"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object", "properties": {"reply": {"type": "string"}}}},
        },
    )
    content = resp.choices[0].message.content
    assert isinstance(json.loads(content), dict)
    assert resp.choices[0].finish_reason == "stop"
    assert not resp.choices[0].message.tool_calls


PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()


@pytest.mark.parametrize("model", FAMILIES)
def test_image_content_parts(client, model):
    resp = client.chat.completions.create(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": PNG}}],
            }
        ],
    )
    assert resp.choices[0].message.content == "Mock reply to: what is this [1 image]"


def test_unknown_fields_pass_through_to_openai_compatible_upstreams(client, mock_ctl):
    mock_ctl.delete("/__mock/requests")
    client.chat.completions.create(
        model="gpt-mock",
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"custom_vendor_flag": {"a": 1}, "num_retries": 0, "metadata": {"team": "x"}},
        seed=7,
        user="u-1",
    )
    reqs = mock_ctl.get("/__mock/requests").json()
    body = reqs[-1]["body"]
    assert body["custom_vendor_flag"] == {"a": 1}
    assert body["model"] == "gpt-4o-mini"
    assert body["seed"] == 7 and body["user"] == "u-1"
    # Gateway-level fields are consumed, not forwarded.
    assert "num_retries" not in body and "metadata" not in body
    assert reqs[-1]["headers"]["authorization"] == f"Bearer {UPSTREAM_SECRET}"


@pytest.mark.parametrize("model", ["claude-mock", "bedrock-mock"])
def test_unsupported_params_are_a_clear_400_unless_dropped(client, model):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], extra_body={"custom_vendor_flag": 1}
        )
    assert "custom_vendor_flag" in e.value.message and "drop_params" in e.value.message
    ok = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"custom_vendor_flag": 1, "drop_params": True},
    )
    assert ok.choices[0].message.content == "Mock reply to: hi"


def test_azure_uses_deployment_url_and_api_key_header(client, mock_ctl):
    mock_ctl.delete("/__mock/requests")
    client.chat.completions.create(model="azure-mock", messages=[{"role": "user", "content": "hi"}])
    req = mock_ctl.get("/__mock/requests").json()[-1]
    assert req["path"] == "/openai/deployments/my-deployment/chat/completions"
    assert "api-version=2024-06-01" in req["query"]
    assert req["headers"]["api-key"] == UPSTREAM_SECRET


def test_bedrock_requests_are_sigv4_signed(client, mock_ctl):
    mock_ctl.delete("/__mock/requests")
    client.chat.completions.create(model="bedrock-mock", messages=[{"role": "user", "content": "hi"}])
    req = mock_ctl.get("/__mock/requests").json()[-1]
    assert req["path"].endswith("/converse")
    assert "us.anthropic.claude-3-5-sonnet" in httpx.URL(req["path"]).path or "us.anthropic" in req["path"]
    assert req["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDTOLLGATETEST/")


def test_bedrock_inference_profile_arns_are_model_ids(client, mock_ctl):
    mock_ctl.delete("/__mock/requests")
    resp = client.chat.completions.create(model="bedrock-arn", messages=[{"role": "user", "content": "arn"}])
    assert resp.choices[0].message.content == "Mock reply to: arn"
    path = mock_ctl.get("/__mock/requests").json()[-1]["path"]
    # The ARN travels as one percent-encoded path segment.
    assert path.startswith("/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc123/")


@pytest.mark.parametrize("model", ["embed-openai", "embed-titan", "embed-cohere"])
def test_embeddings_float_and_base64(client, model):
    as_float = client.embeddings.create(model=model, input=["alpha beta", "gamma"], encoding_format="float")
    # The SDK asks for base64 by default and decodes little-endian float32 itself.
    as_b64 = client.embeddings.create(model=model, input=["alpha beta", "gamma"])
    assert len(as_float.data) == 2 and [d.index for d in as_float.data] == [0, 1]
    for f, b in zip(as_float.data, as_b64.data):
        assert len(f.embedding) == len(b.embedding) > 0
        assert all(abs(x - y) < 1e-6 for x, y in zip(f.embedding, b.embedding))
    single = client.embeddings.create(model=model, input="alpha beta", encoding_format="float")
    assert single.data[0].embedding == as_float.data[0].embedding
    assert as_float.usage.prompt_tokens > 0


def test_base64_embedding_bytes_are_le_float32(http):
    r = http.post("/v1/embeddings", json={"model": "embed-titan", "input": "x y", "encoding_format": "base64"})
    assert r.status_code == 200
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    floats = struct.unpack(f"<{len(raw) // 4}f", raw)
    r2 = http.post("/v1/embeddings", json={"model": "embed-titan", "input": "x y", "encoding_format": "float"})
    assert list(floats) == pytest.approx(r2.json()["data"][0]["embedding"], abs=1e-7)


def test_models_list_and_get(client):
    ids = [m.id for m in client.models.list()]
    for name in FAMILIES + ["demo", "embed-titan"]:
        assert name in ids
    assert client.models.retrieve("gpt-mock").id == "gpt-mock"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


# ---- errors, retries, fallbacks ----


def test_unknown_model_is_a_400_naming_it(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="nope-model", messages=[{"role": "user", "content": "hi"}])
    assert "nope-model" in e.value.message
    assert e.value.body["code"] == "model_not_found"


def test_no_key_and_wrong_key_are_401(gateway):
    for key in ["", "sk-wrong"]:
        c = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key or "x", max_retries=0)
        if not key:
            c = openai.OpenAI(
                base_url=gateway.url + "/v1", api_key="unused", max_retries=0, default_headers={"Authorization": ""}
            )
        with pytest.raises(openai.AuthenticationError) as e:
            c.chat.completions.create(model="gpt-mock", messages=[{"role": "user", "content": "hi"}])
        assert e.value.status_code == 401
        assert e.value.body["type"] == "authentication_error"


@pytest.mark.parametrize(
    "body,status,param",
    [
        (b"{not json", 400, None),
        (b"", 400, None),
        (json.dumps({"model": "gpt-mock", "messages": "hi"}).encode(), 400, "messages"),
        (json.dumps({"model": "gpt-mock", "messages": [{"role": "user", "content": 5}]}).encode(), 400, "messages[0].content"),
        (json.dumps({"model": "gpt-mock", "messages": [{"role": "wizard", "content": "x"}]}).encode(), 400, "messages[0].role"),
        (json.dumps({"model": "gpt-mock", "messages": [], "temperature": 1}).encode(), 400, "messages"),
        (json.dumps({"model": "gpt-mock", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}).encode(), 400, "temperature"),
        (json.dumps({"model": "gpt-mock", "messages": [{"role": "user", "content": "x"}], "temperature": 7}).encode(), 400, "temperature"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(), 400, None),
    ],
)
def test_bad_requests_are_openai_shaped(http, body, status, param):
    r = http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["message"]
    assert set(err) == {"message", "type", "param", "code"}
    if param:
        assert err["param"] == param


def test_upstream_429_stays_429(client):
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="always-429", messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 429
    # Both tries (num_retries: 1) are named.
    assert "[1]" in e.value.message and "[2]" in e.value.message


@pytest.mark.parametrize("model,status", [("always-500", 502), ("claude-500", 502), ("unreachable", 502)])
def test_upstream_failures_after_retries_are_502(client, model, status):
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == status
    assert model in e.value.message


def test_timeouts_are_reported(client):
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="timeout-model", messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 502
    assert "no answer within 0.5s" in e.value.message


def test_fallback_after_failures_names_every_attempt_in_headers(client):
    raw = client.chat.completions.with_raw_response.create(
        model="flaky", messages=[{"role": "user", "content": "hello"}]
    )
    assert raw.parse().choices[0].message.content == "Mock reply to: hello"
    assert raw.headers["x-tollgate-model"] == "gpt-mock"
    assert raw.headers["x-litellm-attempted-fallbacks"] == "1"
    assert raw.headers["x-tollgate-attempts"] == "3"


def test_bedrock_503_falls_back_to_anthropic(client):
    raw = client.chat.completions.with_raw_response.create(
        model="bedrock-503", messages=[{"role": "user", "content": "hello"}]
    )
    assert raw.headers["x-tollgate-model"] == "claude-mock"


def test_streams_fall_back_before_the_first_chunk(client):
    stream = client.chat.completions.with_raw_response.create(
        model="flaky", messages=[{"role": "user", "content": "hello"}], stream=True
    )
    assert stream.headers["x-tollgate-model"] == "gpt-mock"
    text = "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices)
    assert text == "Mock reply to: hello"


def test_request_level_fallbacks(client):
    resp = client.chat.completions.with_raw_response.create(
        model="always-500",
        messages=[{"role": "user", "content": "hello"}],
        extra_body={"fallbacks": ["claude-mock"], "num_retries": 0},
    )
    assert resp.headers["x-tollgate-model"] == "claude-mock"


def test_retry_after_a_transient_upstream_error(client, mock_ctl):
    mock_ctl.post("/__mock/faults", json=[{"status": 500, "match": "retry-me"}])
    raw = client.chat.completions.with_raw_response.create(
        model="retry-me", messages=[{"role": "user", "content": "again"}]
    )
    assert raw.parse().choices[0].message.content == "Mock reply to: again"
    assert raw.headers["x-tollgate-attempts"] == "2"
    assert raw.headers["x-litellm-attempted-retries"] == "1"


def test_retry_after_header_is_honoured(client, mock_ctl):
    mock_ctl.post("/__mock/faults", json=[{"status": 429, "retry_after": 1, "match": "retry-me"}])
    raw = client.chat.completions.with_raw_response.create(
        model="retry-me", messages=[{"role": "user", "content": "wait"}]
    )
    assert raw.headers["x-tollgate-attempts"] == "2"


def test_connection_reset_is_retried(client, mock_ctl):
    mock_ctl.post("/__mock/faults", json=[{"kind": "reset", "match": "retry-me"}])
    raw = client.chat.completions.with_raw_response.create(
        model="retry-me", messages=[{"role": "user", "content": "reset"}]
    )
    assert raw.headers["x-tollgate-attempts"] == "2"


@pytest.mark.parametrize("model", ["gpt-mock", "claude-mock", "bedrock-mock"])
def test_context_window_fallbacks(client, model):
    long_prompt = "word " * 1500
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": long_prompt}]
    )
    assert raw.headers["x-tollgate-model"] == "demo"


def test_mid_stream_failure_is_reported_in_the_stream(client, mock_ctl):
    mock_ctl.post("/__mock/faults", json=[{"kind": "stream_error_after", "chunks": 3, "match": "retry-me"}])
    stream = client.chat.completions.create(
        model="retry-me", messages=[{"role": "user", "content": "one two three four five six"}], stream=True
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


def test_client_disconnect_ends_the_upstream_stream(gateway, slow_mock):
    with httpx.Client(base_url=slow_mock.url) as ctl:
        assert ctl.get("/__mock/health").json()["active_streams"] == 0
        with httpx.Client(base_url=gateway.url, timeout=30) as c:
            body = {"model": "slow-stream", "messages": [{"role": "user", "content": " ".join(["w"] * 200)}], "stream": True}
            with c.stream("POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {MASTER_KEY}"}) as r:
                assert r.status_code == 200
                lines = r.iter_lines()
                got = [next(lines) for _ in range(6)]
                assert any(line.startswith("data: ") for line in got)
                assert ctl.get("/__mock/health").json()["active_streams"] == 1
        # The client is gone: the gateway must close its upstream stream.
        assert wait_until(lambda: ctl.get("/__mock/health").json()["active_streams"] == 0, timeout=10)


def test_upstream_secrets_never_reach_clients_or_logs(gateway, client, http):
    bodies = []
    for model in ["always-500", "claude-500", "bedrock-503", "unreachable", "gpt-mock"]:
        r = http.post("/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
        bodies.append(r.text + json.dumps(dict(r.headers)))
    r = http.get("/health")
    bodies.append(r.text)
    for b in bodies:
        assert UPSTREAM_SECRET not in b and AWS_SECRET not in b
    # The gateway's own log (at debug level for tollgate) holds neither, nor the master key.
    log = gateway.stderr()
    assert "upstream call failed" in log
    for secret in (UPSTREAM_SECRET, AWS_SECRET, MASTER_KEY):
        assert secret not in log


# ---- health ----


def test_health_endpoints(gateway, http):
    assert httpx.get(gateway.url + "/health/liveliness").status_code == 200
    assert httpx.get(gateway.url + "/health/liveness").json() == "I'm alive!"
    ready = httpx.get(gateway.url + "/health/readiness")
    assert ready.status_code == 200 and ready.json()["db"] == "connected"
    assert httpx.get(gateway.url + "/health").status_code == 401
    h = http.get("/health").json()
    healthy = {e["model_name"] for e in h["healthy_endpoints"]}
    unhealthy = {e["model_name"] for e in h["unhealthy_endpoints"]}
    assert {"gpt-mock", "azure-mock", "claude-mock", "bedrock-mock", "demo", "embed-titan", "embed-cohere"} <= healthy
    assert {"always-500", "always-429", "unreachable"} <= unhealthy
    assert h["healthy_count"] == len(h["healthy_endpoints"])
    for e in h["unhealthy_endpoints"]:
        assert e["error"]


def test_routes_need_auth_except_the_open_list(gateway):
    for path in ["/v1/models", "/health", "/v1/models/gpt-mock", "/no/such/route"]:
        assert httpx.get(gateway.url + path).status_code == 401, path
    r = httpx.get(gateway.url + "/ui/models", follow_redirects=False)
    assert r.status_code in (302, 303, 307) and r.headers["location"].startswith("/ui/login")
    assert httpx.get(gateway.url + "/ui/login").status_code == 200
