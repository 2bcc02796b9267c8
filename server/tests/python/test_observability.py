"""Prometheus metrics at /metrics, and one structured JSON log line per
request (`litellm_settings.json_logs`) in which no secret appears."""

import json
import re
import uuid

import httpx
import openai
import pytest

from conftest import AWS_SECRET, MASTER_KEY, UPSTREAM_SECRET, config_yaml, start_gateway, wait_until

GUARDED = """
litellm_settings:
  json_logs: true
guardrails:
  - guardrail_name: no-secret-word
    litellm_params:
      guardrail: litellm_content_filter
      mode: pre_call
      default_on: true
      blocked_words:
        - keyword: zebracorn
          action: BLOCK
"""


def samples(text):
    """{(name, frozenset(labels)): value} from the Prometheus text format."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(s, name, **labels):
    """The sum of `name` over the samples whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in s.items() if n == name and want <= set(ls))


@pytest.fixture(scope="module")
def gw(mock, slow_mock, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("observe")
    p = start_gateway(
        mock.url,
        slow_mock.url,
        workdir,
        config_text=config_yaml(mock.url, slow_mock.url) + GUARDED,
        extra_env={"TOLLGATE_LOG": "info"},
    )
    yield p
    p.stop()


def test_metrics_count_requests_tokens_latency_errors_and_guardrails(gw):
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    before = samples(httpx.get(gw.url + "/metrics").text)
    for _ in range(3):
        client.chat.completions.create(model="gpt-mock", messages=[{"role": "user", "content": "count me"}])
    stream = client.chat.completions.create(
        model="gpt-mock", messages=[{"role": "user", "content": "stream me please"}], stream=True
    )
    for _ in stream:
        pass
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="always-429", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-mock", messages=[{"role": "user", "content": "a zebracorn"}])

    def grown():
        s = samples(httpx.get(gw.url + "/metrics").text)
        return s if value(s, "tollgate_requests_total") - value(before, "tollgate_requests_total") >= 6 else None

    assert wait_until(grown, timeout=10)
    r = httpx.get(gw.url + "/metrics")
    # Open to scrapers, in the text exposition format.
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    after = samples(r.text)
    d = lambda name, **l: value(after, name, **l) - value(before, name, **l)  # noqa: E731
    assert d("tollgate_requests_total", model_group="gpt-mock", outcome="success", status="200") == 4
    assert d("tollgate_requests_total", model_group="always-429", status="429") == 1
    assert d("tollgate_errors_total", model_group="always-429", kind="upstream_rate_limited") == 1
    assert d("tollgate_errors_total", kind="guardrail") == 1
    assert d("tollgate_tokens_total", model_group="gpt-mock", type="prompt") > 0
    assert d("tollgate_tokens_total", model_group="gpt-mock", type="completion") > 0
    assert d("tollgate_spend_usd_total", model_group="gpt-mock") > 0
    assert d("tollgate_request_latency_seconds_count", model_group="gpt-mock") == 4
    assert d("tollgate_time_to_first_token_seconds_count", model_group="gpt-mock") == 1
    assert d("tollgate_guardrail_actions_total", guardrail="no-secret-word", outcome="blocked") == 1
    assert d("tollgate_guardrail_actions_total", guardrail="no-secret-word", outcome="passed") >= 4
    assert value(after, "tollgate_guardrail_latency_seconds_count", guardrail="no-secret-word") >= 5
    for gauge in ["tollgate_queue_depth", "tollgate_redis_up", "tollgate_request_logs_dropped", "tollgate_store_errors_total"]:
        assert any(n == gauge for n, _ in after), f"{gauge} is exposed"


def test_rate_limit_refusals_are_counted_apart(gw):
    h = {"Authorization": f"Bearer {MASTER_KEY}"}
    key = httpx.post(gw.url + "/key/generate", headers=h, json={"rpm_limit": 1}).json()["key"]
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    before = samples(httpx.get(gw.url + "/metrics").text)
    client.chat.completions.create(model="gpt-mock", messages=[{"role": "user", "content": "one"}])
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-mock", messages=[{"role": "user", "content": "two"}])

    def counted():
        s = samples(httpx.get(gw.url + "/metrics").text)
        return value(s, "tollgate_rate_limited_total", model="gpt-mock") > value(before, "tollgate_rate_limited_total", model="gpt-mock")

    assert wait_until(counted, timeout=10)


def test_one_json_line_per_request_and_no_secret_in_any_line(gw):
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    marker = uuid.uuid4().hex
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-mock", messages=[{"role": "user", "content": marker}], user=marker
    )
    rid = raw.headers["x-request-id"]
    client.chat.completions.create(model="bedrock-mock", messages=[{"role": "user", "content": "bedrock"}])

    def line():
        for text in gw.stderr().splitlines():
            if rid in text:
                try:
                    return json.loads(text)
                except ValueError:
                    pytest.fail(f"not a JSON line: {text!r}")
        return None

    assert wait_until(line, timeout=10)
    entry = line()
    f = entry["fields"]
    assert entry["target"] == "tollgate::request" and entry["level"] == "INFO"
    assert f["request_id"] == rid and f["model"] == "gpt-mock" and f["model_group"] == "gpt-mock"
    assert f["deployment"] and f["status"] == 200 and f["outcome"] == "success"
    assert f["latency_ms"] >= 0 and f["prompt_tokens"] > 0 and f["completion_tokens"] > 0 and f["cost"] > 0
    # Every line is JSON once the config asked for it.
    lines = [t for t in gw.stderr().splitlines() if t.strip()]
    started = next(i for i, t in enumerate(lines) if "tollgate serving" in t)
    for t in lines[started:]:
        json.loads(t)
    everything = gw.stderr()
    for secret in [MASTER_KEY, UPSTREAM_SECRET, AWS_SECRET, "Bearer "]:
        assert secret not in everything, f"{secret!r} was printed"
    # Prompts are not printed either.
    assert marker not in everything
