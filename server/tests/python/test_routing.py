"""Routing within a model group: strategies, deployment capacity (rpm, tpm,
max_parallel_requests, with the priority queue), pre-call context checks,
cooldowns, retry policy and model group aliases. Each deployment is told
apart by `x-tollgate-deployment-id`."""

import collections
import concurrent.futures
import os
import textwrap
import time
import uuid

import httpx
import pytest

from conftest import MASTER_KEY, start_gateway, wait_until

REDIS_URL = os.environ.get("TOLLGATE_TEST_REDIS_URL")
ON_POSTGRES = (os.environ.get("TOLLGATE_TEST_DATABASE_URL") or "").startswith("postgres")


def dep(group, ident, model, mock, **params):
    extra = "".join(f"\n                  {k}: {v}" for k, v in params.get("litellm", {}).items())
    info = "".join(f"\n                  {k}: {v}" for k, v in params.get("info", {}).items())
    return f"""
              - model_name: {group}
                litellm_params:
                  model: openai/{model}
                  api_base: {mock}/v1
                  api_key: sk-up{extra}
                model_info:
                  id: {ident}{info}"""


def gateway(mock, slow_mock, tmp_path_factory, deployments, router="", extra_env=None):
    cfg = "model_list:" + "".join(deployments) + "\n" + textwrap.dedent(router)
    workdir = tmp_path_factory.mktemp("routing")
    return start_gateway(mock.url, slow_mock.url, workdir, config_text=cfg, extra_env=extra_env)


def chat(url, model, text="hello there", timeout=30, **body):
    return httpx.post(
        url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
        json={"model": model, "messages": [{"role": "user", "content": text}], **body},
        timeout=timeout,
    )


def served_by(responses):
    return collections.Counter(r.headers.get("x-tollgate-deployment-id") for r in responses)


def fresh_minute(need=20):
    left = 60 - time.time() % 60
    if left < need:
        time.sleep(left + 0.2)


@pytest.fixture(scope="module")
def gw(mock, slow_mock, tmp_path_factory):
    deployments = [
        dep("ab", "ab-a", "gpt-4o-mini", mock.url, litellm={"weight": 9}),
        dep("ab", "ab-b", "gpt-4o-mini", mock.url, litellm={"weight": 1}),
        dep("capped", "capped-small", "gpt-4o-mini", mock.url, litellm={"rpm": 3}),
        dep("capped", "capped-big", "gpt-4o-mini", mock.url, litellm={"rpm": 1000}),
        dep("one-at-a-time", "serial", "slow-700ms", mock.url, litellm={"max_parallel_requests": 1}),
        dep("windows", "window-small", "gpt-4o-mini", mock.url, info={"max_input_tokens": 30}),
        dep("windows", "window-large", "gpt-4o-mini", mock.url, info={"max_input_tokens": 100000}),
        dep("cooling", "cool-bad", "cool-fail-500", mock.url),
        dep("cooling", "cool-good", "gpt-4o-mini", mock.url),
        dep("policy", "policy-only", "policy-fail-500", mock.url),
        dep("tpm-capped", "tpm-only", "gpt-4o-mini", mock.url, litellm={"tpm": 60}),
    ]
    router = """
        router_settings:
          enable_pre_call_checks: true
          num_retries: 3
          allowed_fails: 1
          cooldown_time: 30
          retry_policy:
            InternalServerErrorRetries: 1
          model_group_alias:
            gpt-4: ab
            secret-name: {model: capped, hidden: true}
        """
    p = gateway(mock, slow_mock, tmp_path_factory, deployments, router)
    yield p
    p.stop()


def test_weights_9_to_1_send_90_and_10_percent_of_2000_requests(gw):
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(lambda _: chat(gw.url, "ab"), range(2000)))
    assert all(r.status_code == 200 for r in responses)
    counts = served_by(responses)
    share = counts["ab-a"] / 2000
    assert abs(share - 0.9) <= 0.02, counts


def test_a_deployment_at_its_rpm_is_skipped(gw):
    fresh_minute()
    responses = [chat(gw.url, "capped") for _ in range(30)]
    assert all(r.status_code == 200 for r in responses)
    counts = served_by(responses)
    assert counts["capped-small"] <= 3 and counts["capped-big"] >= 27, counts
    # The deployment's own limit shows when it answered.
    small = [r for r in responses if r.headers["x-tollgate-deployment-id"] == "capped-small"]
    assert all(r.headers["x-ratelimit-limit-requests"] == "3" for r in small)


def test_a_full_deployment_queues_calls_by_priority(gw, mock):
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(chat, gw.url, "one-at-a-time", timeout=60)]
        time.sleep(0.2)
        for _ in range(3):
            futures.append(pool.submit(chat, gw.url, "one-at-a-time", timeout=60, priority=10))
            time.sleep(0.05)
        time.sleep(0.1)
        futures.append(pool.submit(chat, gw.url, "one-at-a-time", timeout=60, priority=0))
        responses = [f.result() for f in futures]
    assert [r.status_code for r in responses] == [200] * 5
    names = {r.headers["x-request-id"]: n for r, n in zip(responses, ["first", "low", "low", "low", "urgent"])}
    with httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {MASTER_KEY}"}) as a:
        def rows():
            return [r for r in a.get("/spend/logs", params={"limit": 500}).json() if r["request_id"] in names]

        assert wait_until(lambda: len(rows()) == 5, timeout=10)
        ended = sorted(rows(), key=lambda r: r["endTime"])
    assert [names[r["request_id"]] for r in ended] == ["first", "urgent", "low", "low", "low"]
    # The priority never reaches the upstream.
    reqs = httpx.get(mock.url + "/__mock/requests").json()
    assert not any("priority" in (r.get("body") or {}) for r in reqs if isinstance(r.get("body"), dict))


def test_a_full_deployment_refuses_once_the_wait_runs_out(gw):
    fresh_minute(10)
    used = 0
    for _ in range(20):
        r = chat(gw.url, "tpm-capped", request_timeout=0.3)
        if r.status_code != 200:
            break
        used += r.json()["usage"]["total_tokens"]
        time.sleep(0.05)
    assert r.status_code == 429, r.text
    msg = r.json()["error"]["message"]
    assert "at capacity" in msg and "tpm 60" in msg and "Waited" in msg
    assert used <= 60 + 10


def test_pre_call_checks_skip_deployments_whose_window_is_too_small(gw):
    long_prompt = " ".join(["word"] * 60)
    responses = [chat(gw.url, "windows", text=long_prompt) for _ in range(10)]
    assert all(r.status_code == 200 for r in responses)
    assert served_by(responses) == {"window-large": 10}
    short = served_by([chat(gw.url, "windows") for _ in range(30)])
    assert set(short) == {"window-small", "window-large"}


def test_a_failing_deployment_cools_down_and_calls_go_to_the_other(gw, mock):
    def upstream_calls():
        return sum(1 for r in httpx.get(mock.url + "/__mock/requests").json() if "cool-fail-500" in str(r.get("body")))

    responses = [chat(gw.url, "cooling") for _ in range(12)]
    assert all(r.status_code == 200 for r in responses)
    assert set(served_by(responses)) == {"cool-good"}
    before = upstream_calls()
    # allowed_fails 1: after the second failure it is out for 30 s.
    assert before <= 2, before
    more = [chat(gw.url, "cooling") for _ in range(10)]
    assert upstream_calls() == before
    assert all(r.headers["x-tollgate-attempts"] == "1" for r in more)


def test_retry_policy_sets_retries_per_kind_of_error(gw, mock):
    def upstream_calls():
        return sum(1 for r in httpx.get(mock.url + "/__mock/requests").json() if "policy-fail-500" in str(r.get("body")))

    before = upstream_calls()
    r = chat(gw.url, "policy")
    assert r.status_code >= 500
    # num_retries is 3, but InternalServerErrorRetries is 1: two calls in all.
    assert upstream_calls() - before == 2


def test_model_group_aliases_answer_and_hidden_ones_are_not_listed(gw):
    r = chat(gw.url, "gpt-4")
    assert r.status_code == 200 and r.headers["x-litellm-model-group"] == "ab"
    assert chat(gw.url, "secret-name").headers["x-litellm-model-group"] == "capped"
    listed = {m["id"] for m in httpx.get(gw.url + "/v1/models", headers={"Authorization": f"Bearer {MASTER_KEY}"}).json()["data"]}
    assert "gpt-4" in listed and "secret-name" not in listed


@pytest.mark.parametrize(
    "strategy",
    ["least-busy", "usage-based-routing-v2", "latency-based-routing", "cost-based-routing"],
)
def test_routing_strategies(strategy, mock, slow_mock, tmp_path_factory):
    if strategy == "least-busy":
        deployments = [dep("g", "a", "slow-600ms", mock.url), dep("g", "b", "slow-600ms", mock.url)]
    elif strategy == "latency-based-routing":
        deployments = [dep("g", "a", "slow-300ms", mock.url), dep("g", "b", "gpt-4o-mini", mock.url)]
    elif strategy == "cost-based-routing":
        deployments = [
            dep("g", "a", "gpt-4o-mini", mock.url, info={"input_cost_per_token": 0.00001, "output_cost_per_token": 0.00003}),
            dep("g", "b", "gpt-4o-mini", mock.url, info={"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}),
        ]
    else:
        deployments = [dep("g", "a", "gpt-4o-mini", mock.url), dep("g", "b", "gpt-4o-mini", mock.url)]
    p = gateway(mock, slow_mock, tmp_path_factory, deployments, f"router_settings:\n  routing_strategy: {strategy}\n")
    try:
        if strategy == "least-busy":
            # Four calls at once: the second and fourth go where fewer are in flight.
            with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
                futures = []
                for _ in range(4):
                    futures.append(pool.submit(chat, p.url, "g"))
                    time.sleep(0.08)
                counts = served_by([f.result() for f in futures])
            assert counts == {"a": 2, "b": 2}, counts
        elif strategy == "usage-based-routing-v2":
            fresh_minute(15)
            counts = served_by([chat(p.url, "g") for _ in range(20)])
            assert abs(counts["a"] - counts["b"]) <= 2, counts
        elif strategy == "latency-based-routing":
            counts = served_by([chat(p.url, "g") for _ in range(30)])
            assert counts["b"] >= 22, counts
        else:
            counts = served_by([chat(p.url, "g") for _ in range(20)])
            assert counts == {"b": 20}, counts
    finally:
        p.stop()


def test_an_unknown_strategy_is_refused_at_start(mock, slow_mock, tmp_path_factory):
    with pytest.raises(RuntimeError) as e:
        gateway(mock, slow_mock, tmp_path_factory, [dep("g", "a", "gpt-4o-mini", mock.url)], "router_settings:\n  routing_strategy: fastest-please\n")
    assert "router_settings.routing_strategy" in str(e.value) and "fastest-please" in str(e.value)


@pytest.fixture(scope="module")
def pair(mock, slow_mock, tmp_path_factory):
    if not (ON_POSTGRES and REDIS_URL):
        pytest.skip("needs the shared Postgres and Redis (make test-python-postgres)")
    prefix = f"route-{uuid.uuid4().hex[:8]}:"
    deployments = [dep("shared-tpm", "shared-tpm-only", "gpt-4o-mini", mock.url, litellm={"tpm": 100})]
    procs = [
        gateway(mock, slow_mock, tmp_path_factory, deployments, extra_env={"REDIS_URL": REDIS_URL, "TOLLGATE_REDIS_PREFIX": prefix})
        for _ in range(2)
    ]
    yield procs
    for p in procs:
        p.stop()


def test_a_deployment_tpm_limit_holds_across_two_processes(pair):
    a, b = pair
    fresh_minute(20)
    used, codes = 0, []
    for i in range(40):
        r = chat([a.url, b.url][i % 2], "shared-tpm", request_timeout=0.3)
        codes.append(r.status_code)
        if r.status_code == 200:
            used += r.json()["usage"]["total_tokens"]
        time.sleep(0.03)
    assert 200 in codes and 429 in codes, codes
    # One process alone would allow 100 tokens; the two together allow no more.
    assert used <= 100 + 10, (used, codes)
    assert used > 100 - 20, (used, codes)
