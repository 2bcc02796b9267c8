"""Rate limits of keys, users and teams, and of the whole proxy: requests and
tokens per minute (refused with the limit's name, `retry-after` and
`x-ratelimit-*`), requests in flight (waiting by priority), in the shape of
each interface. With Redis the counts are shared; without it, per process."""

import concurrent.futures
import datetime
import os
import pathlib
import shutil
import socket
import subprocess
import textwrap
import time
import uuid

import anthropic
import boto3
import botocore
import botocore.config
import botocore.exceptions
import httpx
import openai
import pytest

from conftest import MASTER_KEY, start_gateway, wait_until

REDIS_URL = os.environ.get("TOLLGATE_TEST_REDIS_URL")
ON_POSTGRES = (os.environ.get("TOLLGATE_TEST_DATABASE_URL") or "").startswith("postgres")


def limits_config(mock: str, extra: str = "") -> str:
    return textwrap.dedent(
        f"""
        model_list:
          - model_name: fast
            litellm_params:
              model: openai/gpt-4o-mini
              api_base: {mock}/v1
              api_key: sk-up
          - model_name: other
            litellm_params:
              model: openai/gpt-4o-mini
              api_base: {mock}/v1
              api_key: sk-up
          - model_name: slow
            litellm_params:
              model: openai/slow-700ms
              api_base: {mock}/v1
              api_key: sk-up
        """
    ) + textwrap.dedent(extra)


def fresh_minute(need=20):
    """Per-minute windows reset on the minute: start a counting test with
    `need` seconds of the window left."""
    left = 60 - time.time() % 60
    if left < need:
        time.sleep(left + 0.2)


@pytest.fixture(scope="module")
def gw(mock, slow_mock, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("limits")
    p = start_gateway(mock.url, slow_mock.url, workdir, config_text=limits_config(mock.url))
    yield p
    p.stop()


def admin(url):
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30)


def new_key(url, **fields):
    with admin(url) as a:
        r = a.post("/key/generate", json=fields)
        assert r.status_code == 200, r.text
        return r.json()["key"]


def chat(url, key, model="fast", timeout=30, **body):
    return httpx.post(
        url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": "hello there"}], **body},
        timeout=timeout,
    )


def test_requests_per_minute_refuse_with_the_limit_named_in_openai_shape(gw):
    fresh_minute()
    key = new_key(gw.url, rpm_limit=3)
    for remaining in (2, 1, 0):
        r = chat(gw.url, key)
        assert r.status_code == 200, r.text
        assert r.headers["x-ratelimit-limit-requests"] == "3"
        assert r.headers["x-ratelimit-remaining-requests"] == str(remaining)
        assert r.headers["x-ratelimit-reset-requests"].endswith("s")
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
    resp = e.value.response
    assert resp.status_code == 429
    body = resp.json()["error"]
    assert body["type"] == "rate_limit_error" and body["code"] == "rate_limit_exceeded"
    assert "rpm_limit is 3 requests per minute" in body["message"]
    assert "resets in" in body["message"]
    assert 1 <= int(resp.headers["retry-after"]) <= 60
    assert resp.headers["x-ratelimit-remaining-requests"] == "0"
    # The refusal is logged as such.
    with admin(gw.url) as a:
        assert wait_until(
            lambda: any(r["status_code"] == 429 for r in a.get("/spend/logs", params={"limit": 50}).json()),
            timeout=5,
        )


def test_anthropic_and_bedrock_clients_get_their_own_rate_limit_errors(gw):
    fresh_minute()
    key = new_key(gw.url, rpm_limit=1)
    assert chat(gw.url, key).status_code == 200
    ac = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as e:
        ac.messages.create(model="fast", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert e.value.response.json()["error"]["type"] == "rate_limit_error"
    assert "retry-after" in e.value.response.headers
    br = boto3.client(
        "bedrock-runtime",
        endpoint_url=gw.url + "/bedrock",
        region_name="us-east-1",
        config=botocore.config.Config(signature_version=botocore.UNSIGNED, retries={"max_attempts": 1, "mode": "standard"}),
    )

    def bearer(request, **_):
        request.headers["Authorization"] = f"Bearer {key}"

    br.meta.events.register("request-created.*", bearer)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        br.converse(modelId="fast", messages=[{"role": "user", "content": [{"text": "hi"}]}])
    assert e.value.response["Error"]["Code"] == "ThrottlingException"
    assert "rpm_limit" in e.value.response["Error"]["Message"]


def test_tokens_per_minute_count_prompt_and_completion(gw):
    fresh_minute()
    key = new_key(gw.url, tpm_limit=60)
    used, codes = 0, []
    for _ in range(20):
        r = chat(gw.url, key)
        codes.append(r.status_code)
        if r.status_code != 200:
            break
        assert r.headers["x-ratelimit-limit-tokens"] == "60"
        used += r.json()["usage"]["total_tokens"]
        # What is left never counts more than what was used.
        assert int(r.headers["x-ratelimit-remaining-tokens"]) <= 60 - used + 60
        time.sleep(0.05)  # let the settlement of the last call land
    assert codes[-1] == 429, codes
    assert codes.count(200) >= 2
    msg = r.json()["error"]["message"]
    assert "tpm_limit is 60 tokens per minute" in msg
    # Refused because the tokens used so far leave no room for this prompt.
    assert used > 60 - 20, (used, msg)


def test_per_model_limits_only_hold_for_their_model(gw):
    fresh_minute()
    key = new_key(gw.url, model_rpm_limit={"fast": 1})
    assert chat(gw.url, key).status_code == 200
    r = chat(gw.url, key)
    assert r.status_code == 429
    assert "model_rpm_limit" in r.json()["error"]["message"]
    assert "on model fast" in r.json()["error"]["message"]
    assert chat(gw.url, key, model="other").status_code == 200


def test_a_team_limit_is_shared_by_its_keys_and_a_user_limit_by_theirs(gw):
    fresh_minute()
    with admin(gw.url) as a:
        team = a.post("/team/new", json={"team_alias": f"t-{uuid.uuid4().hex[:6]}", "rpm_limit": 2}).json()["team_id"]
        user = a.post("/user/new", json={"user_id": f"u-{uuid.uuid4().hex[:6]}", "rpm_limit": 1}).json()["user_id"]
    k1, k2 = new_key(gw.url, team_id=team), new_key(gw.url, team_id=team)
    assert wait_until(lambda: chat(gw.url, k1).status_code == 200, timeout=5)
    assert chat(gw.url, k2).status_code == 200
    r = chat(gw.url, k1)
    assert r.status_code == 429 and f"team {team}" in r.json()["error"]["message"]
    u1, u2 = new_key(gw.url, user_id=user), new_key(gw.url, user_id=user)
    assert chat(gw.url, u1).status_code == 200
    r = chat(gw.url, u2)
    assert r.status_code == 429 and f"user {user}" in r.json()["error"]["message"]


def logs_of(url, token, n):
    with admin(url) as a:
        def rows():
            return a.get("/spend/logs", params={"api_key": token, "limit": 100}).json()

        assert wait_until(lambda: len(rows()) >= n, timeout=10)
        return rows()


def test_team_member_limits_hold_per_member(gw):
    fresh_minute()
    with admin(gw.url) as a:
        team = a.post("/team/new", json={"team_alias": f"tm-{uuid.uuid4().hex[:6]}", "team_member_rpm_limit": 1}).json()["team_id"]
        users = [a.post("/user/new", json={"user_id": f"m-{uuid.uuid4().hex[:6]}"}).json()["user_id"] for _ in range(2)]
    k1, k2 = (new_key(gw.url, team_id=team, user_id=u) for u in users)
    assert wait_until(lambda: chat(gw.url, k1).status_code == 200, timeout=5)
    r = chat(gw.url, k1)
    assert r.status_code == 429
    assert f"member {users[0]} of team {team}" in r.json()["error"]["message"]
    assert "team_member_rpm_limit" in r.json()["error"]["message"]
    # Another member has a minute of their own.
    assert chat(gw.url, k2).status_code == 200


def end_ms(row):
    return datetime.datetime.fromisoformat(row["endTime"].replace("Z", "+00:00")).timestamp() * 1000


def key_with_token(url, **fields):
    with admin(url) as a:
        r = a.post("/key/generate", json=fields).json()
    return r["key"], r["token"]


def test_calls_over_max_parallel_requests_wait_their_turn_instead_of_failing(gw):
    key, token = key_with_token(gw.url, max_parallel_requests=1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        codes = list(pool.map(lambda _: chat(gw.url, key, model="slow").status_code, range(3)))
    assert codes == [200, 200, 200]
    rows = logs_of(gw.url, token, 3)
    # One at a time: each call's upstream answer came after the previous one ended.
    ends = sorted(end_ms(r) for r in rows)
    assert ends[1] - ends[0] >= 600 and ends[2] - ends[1] >= 600, ends


def test_a_call_that_cannot_get_a_slot_within_its_timeout_is_refused(gw):
    key = new_key(gw.url, max_parallel_requests=1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(chat, gw.url, key, "slow")
        time.sleep(0.2)
        second = chat(gw.url, key, model="fast", timeout=30, request_timeout=0.2)
        assert first.result().status_code == 200
    assert second.status_code == 429
    msg = second.json()["error"]["message"]
    assert "max_parallel_requests is 1" in msg and "Waited" in msg


def test_priority_zero_is_served_before_waiting_priority_ten(gw):
    key, token = key_with_token(gw.url, max_parallel_requests=1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(chat, gw.url, key, "slow", 60)]
        time.sleep(0.2)
        for _ in range(3):
            futures.append(pool.submit(chat, gw.url, key, "slow", 60, priority=10))
            time.sleep(0.05)
        time.sleep(0.1)
        futures.append(pool.submit(chat, gw.url, key, "slow", 60, priority=0))
        responses = [f.result() for f in futures]
    assert [r.status_code for r in responses] == [200] * 5
    names = {r.headers["x-request-id"]: n for r, n in zip(responses, ["first", "low", "low", "low", "urgent"])}
    rows = logs_of(gw.url, token, 5)
    order = [names[r["request_id"]] for r in sorted(rows, key=end_ms)]
    assert order == ["first", "urgent", "low", "low", "low"], order


def test_global_max_parallel_requests_holds_for_every_caller(mock, slow_mock, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("global-limit")
    cfg = limits_config(mock.url, "general_settings:\n  global_max_parallel_requests: 1\n")
    p = start_gateway(mock.url, slow_mock.url, workdir, config_text=cfg)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            first = pool.submit(chat, p.url, MASTER_KEY, "slow")
            time.sleep(0.2)
            second = chat(p.url, MASTER_KEY, model="fast", request_timeout=0.2)
            assert first.result().status_code == 200
        assert second.status_code == 429
        assert "global_max_parallel_requests is 1" in second.json()["error"]["message"]
        assert chat(p.url, MASTER_KEY).status_code == 200
    finally:
        p.stop()


def test_priority_must_be_a_non_negative_integer(gw):
    r = chat(gw.url, MASTER_KEY, priority="high")
    assert r.status_code == 400 and r.json()["error"]["param"] == "priority"


# ---- Redis ------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """A Redis of the test's own, to stop and start again."""

    def __init__(self, port):
        self.port = port
        self.p = None

    def start(self):
        self.p = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_until(lambda: self.ping(), timeout=10)

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self):
        if self.p:
            self.p.terminate()
            self.p.wait(10)
            self.p = None


needs_redis = pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server")


@needs_redis
def test_tollgate_keeps_serving_when_redis_goes_away_and_shares_again_when_it_returns(mock, slow_mock, tmp_path_factory):
    redis = Redis(free_port())
    redis.start()
    workdir = tmp_path_factory.mktemp("redis-outage")
    p = start_gateway(
        mock.url,
        slow_mock.url,
        workdir,
        config_text=limits_config(mock.url),
        extra_env={"REDIS_URL": f"redis://127.0.0.1:{redis.port}", "TOLLGATE_REDIS_PREFIX": f"t-{uuid.uuid4().hex[:8]}:"},
    )
    try:
        ready = lambda: httpx.get(p.url + "/health/readiness").json()["redis"]  # noqa: E731
        assert ready() == "connected"
        fresh_minute(10)
        key = new_key(p.url, rpm_limit=1000)
        assert chat(p.url, key).status_code == 200
        redis.stop()
        # Requests still succeed, limits count in the process, and it is said.
        for _ in range(5):
            r = chat(p.url, key)
            assert r.status_code == 200, r.text
            assert "x-ratelimit-remaining-requests" in r.headers
        assert wait_until(lambda: ready().startswith("unreachable"), timeout=5)
        assert "Redis is unreachable" in p.stderr()
        redis.start()
        assert wait_until(lambda: ready() == "connected", timeout=10)
        assert chat(p.url, key).status_code == 200
        assert "Redis answers again" in p.stderr()
    finally:
        p.stop()
        redis.stop()


@pytest.fixture(scope="module")
def pair(mock, slow_mock, tmp_path_factory):
    if not (ON_POSTGRES and REDIS_URL):
        pytest.skip("needs the shared Postgres and Redis (make test-python-postgres)")
    prefix = f"pair-{uuid.uuid4().hex[:8]}:"
    procs = []
    for name in ("a", "b"):
        workdir = tmp_path_factory.mktemp(f"pair-{name}")
        procs.append(
            start_gateway(
                mock.url,
                slow_mock.url,
                workdir,
                config_text=limits_config(mock.url),
                extra_env={"REDIS_URL": REDIS_URL, "TOLLGATE_REDIS_PREFIX": prefix},
            )
        )
    yield procs
    for p in procs:
        p.stop()


def test_two_processes_with_one_redis_let_exactly_rpm_limit_through(pair):
    a, b = pair
    fresh_minute(25)
    key = new_key(a.url, rpm_limit=10)
    # Both must know the key before the burst (the directory is polled).
    assert wait_until(lambda: httpx.get(b.url + "/key/info", params={"key": key}, headers={"Authorization": f"Bearer {MASTER_KEY}"}).status_code == 200, timeout=10)
    urls = [a.url, b.url]
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(lambda i: chat(urls[i % 2], key).status_code, range(40)))
    assert codes.count(200) == 10, {c: codes.count(c) for c in set(codes)}
    assert codes.count(429) == 30


def test_two_processes_share_max_parallel_requests(pair):
    a, b = pair
    key, token = key_with_token(a.url, max_parallel_requests=1)
    assert wait_until(lambda: httpx.get(b.url + "/key/info", params={"key": key}, headers={"Authorization": f"Bearer {MASTER_KEY}"}).status_code == 200, timeout=10)
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        codes = list(pool.map(lambda i: chat([a.url, b.url][i % 2], key, model="slow").status_code, range(4)))
    assert codes == [200] * 4
    ends = sorted(end_ms(r) for r in logs_of(a.url, token, 4))
    assert all(y - x >= 600 for x, y in zip(ends, ends[1:])), ends
