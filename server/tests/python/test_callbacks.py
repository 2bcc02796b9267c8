"""Log destinations (`litellm_settings.success_callback` / `failure_callback` /
`callbacks`): every request becomes one LiteLLM-style payload, sent off the
request path in batches to S3 (moto_server), a webhook, LangSmith or an OTLP
collector (local receivers), retried on failure, flushed at shutdown; prompts
and answers only when kept, and only after guardrails masked them."""

import datetime as dt
import json
import os
import re
import textwrap
import time
import uuid
from contextlib import contextmanager

import anthropic
import boto3
import httpx
import openai
import pytest

from awsmoto import Moto
from conftest import MASTER_KEY, config_yaml, start_gateway, wait_until
from receivers import Receiver

WAIT = 15  # seconds any record may take to reach its destination
REGION = "us-east-1"
FLUSH = "0.2"


# ---------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def no_destination_env(monkeypatch):
    """The gateway inherits os.environ: only what a test sets may configure a destination."""
    for k in list(os.environ):
        if k == "WEBHOOK_URL" or k.startswith(("LANGSMITH_", "LANGCHAIN_", "OTEL_", "GENERIC_LOGGER_", "TOLLGATE_CALLBACK_")):
            monkeypatch.delenv(k)


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    m = Moto(tmp_path_factory.mktemp("moto"))
    yield m
    m.stop()


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


# ---------------------------------------------------------------- gateway helpers


def with_settings(mock, slow_mock, section: str) -> str:
    """The default test config plus `section` (litellm_settings, general_settings,
    guardrails: the default config has none of them)."""
    return config_yaml(mock.url, slow_mock.url) + textwrap.dedent(section)


@contextmanager
def running(mock, slow_mock, tmp_path, section: str, env=None, flush=FLUSH):
    env = {"TOLLGATE_CALLBACK_FLUSH_SECS": flush, **(env or {})}
    gw = start_gateway(
        mock.url, slow_mock.url, tmp_path, extra_env=env, config_text=with_settings(mock, slow_mock, section)
    )
    try:
        yield gw
    finally:
        gw.stop()


def oai(gw, key=MASTER_KEY):
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=30)


def admin(gw):
    return httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30)


def virtual_key(gw, alias):
    """(key, token): token is the key's hash, as logged in metadata.user_api_key_hash."""
    with admin(gw) as a:
        r = a.post("/key/generate", json={"key_alias": alias})
    assert r.status_code == 200, r.text
    made = r.json()
    return made["key"], made["token"]


def chat(gw, text, model="gpt-mock", key=MASTER_KEY, **kw):
    """(request id, completion)."""
    raw = oai(gw, key).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], **kw
    )
    return raw.headers["x-request-id"], raw.parse()


def stream_chat(gw, text, model="gpt-mock", key=MASTER_KEY):
    """(request id, streamed answer text)."""
    raw = oai(gw, key).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], stream=True
    )
    rid = raw.headers["x-request-id"]
    answer = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    return rid, answer


def failing_chat(gw, text="x", model="always-429", key=MASTER_KEY):
    """The request id of a call that fails (429 from `always-429`, 400 for an unknown model)."""
    with pytest.raises(openai.APIStatusError) as e:
        chat(gw, text, model=model, key=key)
    return e.value.response.headers.get("x-request-id")


def active_callbacks(gw):
    with admin(gw) as a:
        r = a.get("/active/callbacks")
    assert r.status_code == 200, r.text
    return r.json()


def destination(gw, *names):
    for d in active_callbacks(gw)["destinations"]:
        if d["name"] in names:
            return d
    raise AssertionError(f"no destination named {names} in {active_callbacks(gw)}")


def spend_row(gw, token, rid, timeout=WAIT):
    """The /spend/logs row of request `rid` (made with the key whose hash is `token`)."""
    found = {}

    def have():
        with admin(gw) as a:
            rows = a.get("/spend/logs", params={"api_key": token, "limit": 100}).json()
        found.update({r["request_id"]: r for r in rows})
        return rid in found

    assert wait_until(have, timeout=timeout), f"request {rid} not in /spend/logs"
    return found[rid]


def has_marker(value, marker) -> bool:
    return marker in json.dumps(value)


def answer_text(response: dict) -> str:
    return response["choices"][0]["message"]["content"]


def assert_usage(p):
    assert p["prompt_tokens"] > 0 and p["completion_tokens"] > 0
    assert p["total_tokens"] == p["prompt_tokens"] + p["completion_tokens"]


# ---------------------------------------------------------------- webhook helpers


def webhook_payloads(records, path=None):
    """The payloads in the webhook batches the receiver accepted (2xx)."""
    out = []
    for r in records:
        if r.ok and r.method == "POST" and (path is None or r.path == path):
            body = r.json()
            assert isinstance(body, list), f"a webhook body is a JSON array, got {body!r}"
            out.extend(body)
    return out


def wait_payloads(receiver, ids, timeout=WAIT):
    """{id: payload} once every id in `ids` was delivered."""
    want = set(ids)
    receiver.wait_until(lambda recs: want <= {p.get("id") for p in webhook_payloads(recs)}, timeout)
    return {p["id"]: p for p in webhook_payloads(receiver.snapshot())}


def webhook_env(receiver, path="/hook", **more):
    return {"GENERIC_LOGGER_ENDPOINT": receiver.url + path, **more}


# ---------------------------------------------------------------- s3 helpers


def s3_client(moto):
    return boto3.client(
        "s3", region_name=REGION, endpoint_url=moto.url, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def new_bucket(moto):
    name = f"tollgate-logs-{uuid.uuid4().hex[:12]}"
    s3_client(moto).create_bucket(Bucket=name)
    return name


def s3_section(moto, bucket, path="tollgate-logs", creds="      s3_aws_access_key_id: testing\n      s3_aws_secret_access_key: testing"):
    path_line = f"      s3_path: {path}\n" if path is not None else ""
    return (
        "litellm_settings:\n"
        "  success_callback: [s3]\n"
        "  failure_callback: [s3]\n"
        "  s3_callback_params:\n"
        f"      s3_bucket_name: {bucket}\n"
        f"      s3_region_name: {REGION}\n"
        f"      s3_endpoint_url: {moto.url}\n"
        f"{path_line}"
        f"{creds}\n"
    )


def s3_records(moto, bucket, prefix=""):
    """[(key, content type, payload)] for every line of every object under `prefix`."""
    s3 = s3_client(moto)
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            got = s3.get_object(Bucket=bucket, Key=obj["Key"])
            for line in got["Body"].read().decode().splitlines():
                if line.strip():
                    out.append((obj["Key"], got.get("ContentType"), json.loads(line)))
    return out


def wait_s3(moto, bucket, ids, prefix="", timeout=WAIT):
    """{id: (key, content type, payload)} once every id is in the bucket."""
    want = set(ids)
    found = {}

    def have():
        found.clear()
        found.update({p.get("id"): (k, ct, p) for k, ct, p in s3_records(moto, bucket, prefix)})
        return want <= set(found)

    assert wait_until(have, timeout=timeout, every=0.25), f"missing in s3: {want - set(found)}"
    return found


KEY_RE = r"(\d{4}-\d{2}-\d{2})/time-\d{2}-\d{2}-\d{2}-\d{3}_[0-9A-Fa-f-]{32,36}\.jsonl"


def assert_key(key, payload, prefix):
    m = re.fullmatch(re.escape(prefix) + KEY_RE, key)
    assert m, f"unexpected object key {key!r}"
    day = dt.datetime.fromtimestamp(payload["startTime"], tz=dt.timezone.utc).date().isoformat()
    assert m.group(1) == day, (key, payload["startTime"])


# ---------------------------------------------------------------- s3


def test_s3_gets_one_json_line_per_request_under_a_dated_key(mock, slow_mock, moto, tmp_path):
    bucket = new_bucket(moto)
    marker = uuid.uuid4().hex
    with running(mock, slow_mock, tmp_path, s3_section(moto, bucket)) as gw:
        key, token = virtual_key(gw, "cb-s3")
        ok_gpt, completion = chat(gw, f"s3 one {marker}", key=key)
        ok_claude, _ = chat(gw, f"s3 two {marker}", model="claude-mock", key=key)
        bad = failing_chat(gw, f"s3 three {marker}", key=key)
        assert bad, "a failed call has an x-request-id"
        found = wait_s3(moto, bucket, [ok_gpt, ok_claude, bad], prefix="tollgate-logs/")

    for rid, (k, ctype, p) in found.items():
        assert_key(k, p, "tollgate-logs/")
        assert ctype == "application/x-ndjson"
        assert p["metadata"]["user_api_key_hash"] == token
        assert p["metadata"]["user_api_key_alias"] == "cb-s3"
        assert p["call_type"] == "chat" and p["stream"] is False and p["surface"] == "openai"
        assert p["endTime"] >= p["startTime"] and p["response_time"] >= 0
        assert has_marker(p["messages"], marker)

    p = found[ok_gpt][2]
    assert p["status"] == "success"
    assert p["model_group"] == "gpt-mock" and p["requested_model"] == "gpt-mock"
    assert p["model"] == "gpt-4o-mini" and p["custom_llm_provider"] == "openai" and p["model_id"]
    assert_usage(p)
    assert p["prompt_tokens"] == completion.usage.prompt_tokens
    assert isinstance(p["response_cost"], float) and p["response_cost"] > 0
    assert p["cache_hit"] is False
    assert not p.get("error_str")
    assert p["messages"][-1]["role"] == "user" and marker in p["messages"][-1]["content"]
    assert answer_text(p["response"]) == completion.choices[0].message.content

    p = found[ok_claude][2]
    assert p["status"] == "success" and p["model_group"] == "claude-mock" and p["custom_llm_provider"] == "anthropic"
    assert_usage(p)

    p = found[bad][2]
    assert p["status"] == "failure" and p["model_group"] == "always-429"
    assert p["error_information"]["error_code"] == "429"
    assert p["error_str"]


def test_everything_queued_is_flushed_on_sigterm(mock, slow_mock, moto, receiver, tmp_path):
    bucket = new_bucket(moto)
    marker = uuid.uuid4().hex
    # No s3_path: keys start with the date. Credentials through os.environ/ references.
    section = (
        s3_section(
            moto,
            bucket,
            path=None,
            creds="      s3_aws_access_key_id: os.environ/CB_S3_KEY_ID\n      s3_aws_secret_access_key: os.environ/CB_S3_SECRET",
        )
        .replace("success_callback: [s3]", "success_callback: [s3, webhook]")
        .replace("failure_callback: [s3]", "failure_callback: [s3, webhook]")
    )
    env = webhook_env(receiver, CB_S3_KEY_ID="testing", CB_S3_SECRET="testing")
    with running(mock, slow_mock, tmp_path, section, env=env, flush="60") as gw:
        ids = [chat(gw, f"sigterm {marker} {i}")[0] for i in range(3)]
        ids.append(failing_chat(gw, f"sigterm {marker} fail"))
        time.sleep(1.0)
        assert receiver.snapshot() == [], "nothing is sent before the 60 s flush interval"
        assert s3_records(moto, bucket) == []
        code = gw.stop()
        assert code == 0, gw.stderr()

    # Flushed before the process exited: no waiting.
    delivered = {p["id"]: p for p in webhook_payloads(receiver.snapshot())}
    assert set(ids) <= set(delivered), gw.stderr()
    in_s3 = {p["id"]: (k, p) for k, _, p in s3_records(moto, bucket)}
    assert set(ids) <= set(in_s3), gw.stderr()
    for k, p in in_s3.values():
        assert_key(k, p, "")
    assert delivered[ids[-1]]["status"] == "failure"


# ---------------------------------------------------------------- webhook


def test_webhook_gets_json_batches_with_its_headers_and_retries(mock, slow_mock, receiver, tmp_path):
    receiver.fail_next(2, 503)
    marker = uuid.uuid4().hex
    env = webhook_env(receiver, "/ingest/logs", GENERIC_LOGGER_HEADERS="x-team=platform,authorization=Bearer hook")
    section = """
        litellm_settings:
          callbacks: ["generic_api"]
        """
    with running(mock, slow_mock, tmp_path, section, env=env) as gw:
        key, token = virtual_key(gw, "cb-hook")
        ok, _ = chat(gw, f"hook {marker}", key=key, extra_body={"metadata": {"run": marker}})
        raw = oai(gw, key).embeddings.with_raw_response.create(model="embed-openai", input=f"embed {marker}")
        emb = raw.headers["x-request-id"]
        bad = failing_chat(gw, f"hook fail {marker}", key=key)
        got = wait_payloads(receiver, [ok, emb, bad])

        records = receiver.snapshot()
        assert [r.status for r in records[:2]] == [503, 503]
        for r in records:
            assert r.method == "POST" and r.path == "/ingest/logs"
            assert r.headers.get("x-team") == "platform"
            assert r.headers.get("authorization") == "Bearer hook"
            assert r.headers.get("content-type", "").startswith("application/json")
        accepted = [p["id"] for p in webhook_payloads(records)]
        assert len(accepted) == len(set(accepted)), "each record is delivered once"

        def settled():
            d = destination(gw, "webhook", "generic_api")
            return d["delivered"] >= 3 and d["queued"] == 0

        assert wait_until(settled, timeout=WAIT)
        d = destination(gw, "webhook", "generic_api")
        assert d["dropped"] == 0 and d["failed"] == 0
        assert d["delivered"] == len(webhook_payloads(receiver.snapshot()))
        active = active_callbacks(gw)
        assert set(active["success_callback"]) & {"webhook", "generic_api"}
        assert set(active["failure_callback"]) & {"webhook", "generic_api"}

    p = got[ok]
    assert p["status"] == "success" and p["call_type"] == "chat"
    assert p["metadata"]["user_api_key_hash"] == token
    assert p["metadata"]["requester_metadata"]["run"] == marker
    assert has_marker(p["messages"], marker) and marker in answer_text(p["response"])
    p = got[emb]
    assert p["status"] == "success" and p["call_type"] == "embeddings" and p["model_group"] == "embed-openai"
    assert p["prompt_tokens"] > 0
    p = got[bad]
    assert p["status"] == "failure" and p["error_information"]["error_code"] == "429"


def test_successes_and_failures_go_only_where_configured(mock, slow_mock, receiver, tmp_path):
    section = """
        litellm_settings:
          success_callback: ["webhook", "datadog"]
        """
    with running(mock, slow_mock, tmp_path, section, env=webhook_env(receiver)) as gw:
        failed = [failing_chat(gw, "fails"), failing_chat(gw, "unknown", model="no-such-model")]
        ok, _ = chat(gw, "succeeds")
        wait_payloads(receiver, [ok])
        time.sleep(1.0)  # five flush intervals: a failure would have arrived
        payloads = webhook_payloads(receiver.snapshot())
        assert not {p["id"] for p in payloads} & set(failed)
        assert all(p["status"] == "success" for p in payloads)

        active = active_callbacks(gw)
        assert active["failure_callback"] == []
        assert "webhook" in active["success_callback"]
        assert "datadog" not in {d["name"] for d in active["destinations"]}
    assert "datadog" in gw.stderr(), "an unknown callback is a warning at start"


def test_a_streamed_call_is_logged_with_its_usage_and_answer(mock, slow_mock, receiver, tmp_path):
    marker = uuid.uuid4().hex
    section = """
        litellm_settings:
          success_callback: ["webhook"]
        """
    with running(mock, slow_mock, tmp_path, section, env=webhook_env(receiver)) as gw:
        rid, answer = stream_chat(gw, f"stream {marker}")
        assert marker in answer
        m = anthropic.Anthropic(base_url=gw.url, api_key=MASTER_KEY, max_retries=0, timeout=30)
        raw = m.messages.with_raw_response.create(
            model="claude-mock", max_tokens=64, messages=[{"role": "user", "content": f"anthropic {marker}"}]
        )
        via_anthropic = raw.headers["x-request-id"]
        got = wait_payloads(receiver, [rid, via_anthropic])

    p = got[rid]
    assert p["stream"] is True and p["status"] == "success"
    assert_usage(p)
    assert has_marker(p["messages"], marker)
    assert p["response"] and marker in json.dumps(p["response"])
    p = got[via_anthropic]
    assert p["surface"] == "anthropic" and p["custom_llm_provider"] == "anthropic" and p["call_type"] == "chat"
    assert has_marker(p["messages"], marker)


# ---------------------------------------------------------------- what is kept


def test_turn_off_message_logging_keeps_prompts_and_answers_out_of_every_log(mock, slow_mock, receiver, tmp_path):
    marker = uuid.uuid4().hex
    section = """
        litellm_settings:
          callbacks: ["webhook"]
          turn_off_message_logging: true
        general_settings:
          store_prompts_in_spend_logs: true
        """
    with running(mock, slow_mock, tmp_path, section, env=webhook_env(receiver)) as gw:
        key, token = virtual_key(gw, "cb-private")
        ok, completion = chat(gw, f"secret prompt {marker}", key=key)
        assert marker in completion.choices[0].message.content  # the caller still gets its answer
        streamed, _ = stream_chat(gw, f"secret stream {marker}", key=key)
        bad = failing_chat(gw, f"secret fail {marker}", key=key)
        got = wait_payloads(receiver, [ok, streamed, bad])
        row = spend_row(gw, token, ok)

    for r in receiver.snapshot():
        assert marker.encode() not in r.body and b"Mock reply" not in r.body
    for rid in (ok, streamed, bad):
        assert got[rid].get("messages") is None and got[rid].get("response") is None
    assert got[ok]["prompt_tokens"] > 0  # the record itself is complete
    assert row["messages"] is None and row["response"] is None


def test_store_prompts_in_spend_logs_keeps_messages_and_response(mock, slow_mock, tmp_path):
    marker = uuid.uuid4().hex
    section = """
        general_settings:
          store_prompts_in_spend_logs: true
        """
    with running(mock, slow_mock, tmp_path, section) as gw:
        key, token = virtual_key(gw, "cb-spend")
        rid, completion = chat(gw, f"keep me {marker}", key=key)
        row = spend_row(gw, token, rid)
    assert isinstance(row["messages"], list)
    assert row["messages"][-1]["role"] == "user" and marker in row["messages"][-1]["content"]
    assert row["response"]["object"] == "chat.completion"
    assert answer_text(row["response"]) == completion.choices[0].message.content


def test_disable_spend_logs_stores_failed_calls_only_and_still_counts_everything(mock, slow_mock, receiver, tmp_path):
    """LiteLLM's `disable_spend_logs`: the store keeps no row of a call that
    succeeded; failed calls are still stored, spend, budgets and the activity
    roll-up still count every call, and the log destinations still get all."""
    marker = uuid.uuid4().hex
    section = """
        litellm_settings:
          callbacks: ["webhook"]
        general_settings:
          disable_spend_logs: true
        """
    with running(mock, slow_mock, tmp_path, section, env=webhook_env(receiver)) as gw:
        key, token = virtual_key(gw, "no-spend-logs")
        ok, _ = chat(gw, f"not stored {marker}", key=key)
        streamed, _ = stream_chat(gw, f"not stored either {marker}", key=key)
        bad = failing_chat(gw, key=key)
        got = wait_payloads(receiver, [ok, streamed, bad])
        # The failed call's row is written after the others' batch (one writer, in order).
        assert spend_row(gw, token, bad)["status"] == "error"
        with admin(gw) as a:
            ids = {r["request_id"] for r in a.get("/spend/logs", params={"api_key": token, "limit": 100}).json()}
            assert ok not in ids and streamed not in ids
            assert wait_until(lambda: a.get("/key/info", params={"key": key}).json()["info"]["spend"] > 0, timeout=WAIT)
            totals = a.get("/spend/activity", params={"period": "hour", "api_key": token}).json()["totals"]
        assert totals["requests"] == 3 and totals["errors"] == 1 and totals["spend"] > 0
        assert "general_settings.disable_spend_logs" in logs_page(gw)
        # The playground stops waiting for a cost no log will carry.
        assert playground_cost(gw, ok) == "NotLogged"
    assert got[ok]["status"] == "success" and got[streamed]["stream"] is True and got[bad]["status"] == "failure"


@contextmanager
def console(gw):
    """A client signed in to the console with the master key."""
    with httpx.Client(base_url=gw.url, follow_redirects=False, timeout=30) as b:
        r = b.post("/ui/session", data={"password": MASTER_KEY, "next": "/ui/logs"})
        assert r.status_code in (302, 303), r.text
        yield b


def logs_page(gw) -> str:
    """The console's Logs page, as the master key's session sees it."""
    with console(gw) as b:
        r = b.get("/ui/logs", headers={"accept": "text/html"})
    assert r.status_code == 200, r.text
    return r.text


def playground_cost(gw, rid):
    """What the playground shows of an answer's cost (its server function's answer)."""
    with console(gw) as b:
        r = b.post("/ui/api/answer_cost", data={"request_id": rid})
    assert r.status_code == 200, r.text
    return r.json()


def test_disable_error_logs_stores_calls_that_succeeded_only(mock, slow_mock, tmp_path):
    section = """
        general_settings:
          disable_error_logs: true
        """
    with running(mock, slow_mock, tmp_path, section) as gw:
        key, token = virtual_key(gw, "no-error-logs")
        bad = failing_chat(gw, key=key)
        ok, _ = chat(gw, "stored", key=key)
        assert spend_row(gw, token, ok)["status"] == "success"
        with admin(gw) as a:
            rows = a.get("/spend/logs", params={"api_key": token, "limit": 100}).json()
            totals = a.get("/spend/activity", params={"period": "hour", "api_key": token}).json()["totals"]
        assert [r["request_id"] for r in rows] == [ok] and bad
        assert totals["requests"] == 2 and totals["errors"] == 1
        page = logs_page(gw)
        assert "Calls that failed are not stored" in page and "disable_error_logs" in page


def test_spend_logs_keep_no_prompts_by_default(gateway, http):
    made = http.post("/key/generate", json={}).json()
    marker = uuid.uuid4().hex
    rid, _ = chat(gateway, f"not kept {marker}", key=made["key"])
    row = spend_row(gateway, made["token"], rid)
    assert "messages" in row and row["messages"] is None
    assert "response" in row and row["response"] is None
    page = logs_page(gateway)
    assert "data-testid=\"logs-table\"" in page and "general_settings.disable_" not in page
    assert playground_cost(gateway, rid) == {"Known": row["spend"]}
    assert playground_cost(gateway, "no-such-request") == "Pending"


def test_logged_prompts_carry_the_guardrail_placeholders(mock, slow_mock, receiver, tmp_path):
    marker = uuid.uuid4().hex
    section = """
        guardrails:
          - guardrail_name: pii-mask
            litellm_params:
              guardrail: litellm_content_filter
              mode: pre_call
              default_on: true
              patterns:
                - pattern_type: prebuilt
                  pattern_name: email
                  action: MASK
        litellm_settings:
          success_callback: ["webhook"]
        general_settings:
          store_prompts_in_spend_logs: true
        """
    with running(mock, slow_mock, tmp_path, section, env=webhook_env(receiver)) as gw:
        key, token = virtual_key(gw, "cb-masked")
        rid, _ = chat(gw, f"{marker} write to ann@example.com", key=key)
        got = wait_payloads(receiver, [rid])
        row = spend_row(gw, token, rid)

    p = got[rid]
    assert "[EMAIL_1]" in json.dumps(p["messages"]) and has_marker(p["messages"], marker)
    for r in receiver.snapshot():
        assert b"ann@example.com" not in r.body
    assert "[EMAIL_1]" in json.dumps(row["messages"]) and "ann@example.com" not in json.dumps(row)


# ---------------------------------------------------------------- langsmith


def langsmith_runs(records):
    runs = []
    for r in records:
        if r.ok and r.method == "POST" and r.path == "/runs/batch":
            runs.extend(r.json()["post"])
    return runs


def parse_iso(s: str) -> dt.datetime:
    """ISO 8601 with any number of fraction digits and Z or an offset."""
    s = s.replace("Z", "+00:00")
    s = re.sub(r"\.(\d{6})\d+", r".\1", s)
    t = dt.datetime.fromisoformat(s)
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def test_langsmith_gets_runs_in_batches(mock, slow_mock, receiver, tmp_path):
    marker = uuid.uuid4().hex
    env = {
        "LANGSMITH_API_KEY": "ls-test-key-123",
        "LANGSMITH_PROJECT": "tollgate-project",
        "LANGSMITH_DEFAULT_RUN_NAME": "tollgate-run",
        "LANGSMITH_BASE_URL": receiver.url,
    }
    section = """
        litellm_settings:
          success_callback: ["langsmith"]
          failure_callback: ["langsmith"]
        """
    with running(mock, slow_mock, tmp_path, section, env=env) as gw:
        ok, completion = chat(gw, f"langsmith {marker}")
        bad = failing_chat(gw, f"langsmith fail {marker}")
        want = {ok, bad}
        receiver.wait_until(
            lambda recs: want <= {(r.get("extra") or {}).get("metadata", {}).get("id") for r in langsmith_runs(recs)}, timeout=WAIT
        )

    for r in receiver.snapshot():
        assert r.method == "POST" and r.path == "/runs/batch"
        assert r.headers.get("x-api-key") == "ls-test-key-123"
        assert r.headers.get("content-type", "").startswith("application/json")
    runs = {r["extra"]["metadata"]["id"]: r for r in langsmith_runs(receiver.snapshot())}
    for rid in (ok, bad):
        run = runs[rid]
        assert str(uuid.UUID(run["id"])) == run["id"].lower() and run["trace_id"] == run["id"]
        assert run["name"] == "tollgate-run" and run["run_type"] == "llm"
        assert run["session_name"] == "tollgate-project"
        m = re.fullmatch(r"(\d{8}T\d{6})(\d{6})Z(.+)", run["dotted_order"])
        assert m and m.group(3) == run["id"], run["dotted_order"]
        ordered_at = dt.datetime.strptime(m.group(1) + m.group(2), "%Y%m%dT%H%M%S%f").replace(tzinfo=dt.timezone.utc)
        start, end = parse_iso(run["start_time"]), parse_iso(run["end_time"])
        assert abs((ordered_at - start).total_seconds()) < 1 and end >= start
        assert has_marker(run["inputs"]["messages"], marker)
        assert "messages" not in run["extra"]["metadata"] and "response" not in run["extra"]["metadata"]
    assert runs[ok]["inputs"]["model"] == "gpt-mock" and "gpt-mock" in runs[ok]["tags"]
    assert runs[ok]["error"] is None
    assert completion.choices[0].message.content in json.dumps(runs[ok]["outputs"])
    assert runs[bad]["error"] and runs[bad]["extra"]["metadata"]["status"] == "failure"
    assert runs[bad]["inputs"]["model"] == "always-429"


@pytest.mark.parametrize("callback,required", [("langsmith", "LANGSMITH_API_KEY"), ("webhook", "GENERIC_LOGGER_ENDPOINT")])
def test_a_destination_without_its_required_setting_stops_the_start(mock, slow_mock, tmp_path, callback, required):
    section = f"""
        litellm_settings:
          success_callback: ["{callback}"]
        """
    try:
        gw = start_gateway(
            mock.url, slow_mock.url, tmp_path, config_text=with_settings(mock, slow_mock, section)
        )
    except RuntimeError as e:  # Proc: the process ended without announcing its URL
        message = str(e)
    else:
        gw.stop()
        pytest.fail(f"tollgate started with {callback} but no {required}")
    assert required in message


# ---------------------------------------------------------------- otel


def any_value(v: dict):
    """An OTLP/JSON AnyValue as a Python value."""
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return v["boolValue"]
    if "arrayValue" in v:
        return [any_value(x) for x in v["arrayValue"].get("values", [])]
    return None


def json_attrs(attrs) -> dict:
    return {a["key"]: any_value(a["value"]) for a in attrs or []}


def otlp_json_spans(records):
    """[(resource attributes, scope name, span with `attrs`)] from OTLP/JSON exports."""
    out = []
    for r in records:
        if not (r.ok and r.method == "POST"):
            continue
        for rs in r.json().get("resourceSpans", []):
            resource = json_attrs(rs.get("resource", {}).get("attributes"))
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    out.append((resource, ss.get("scope", {}).get("name"), {**span, "attrs": json_attrs(span.get("attributes"))}))
    return out


def test_otel_http_json_exports_one_span_per_request(mock, slow_mock, receiver, tmp_path):
    marker = uuid.uuid4().hex
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
        "OTEL_SERVICE_NAME": "tollgate-test",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-otel-token=abc123,x-tenant=t1",
    }
    section = """
        litellm_settings:
          callbacks: ["otel"]
        """
    with running(mock, slow_mock, tmp_path, section, env=env) as gw:
        ok, completion = chat(gw, f"otel {marker}")
        bad = failing_chat(gw, f"otel fail {marker}")
        want = {ok, bad}
        receiver.wait_until(
            lambda recs: want <= {s["attrs"].get("tollgate.request_id") for _, _, s in otlp_json_spans(recs)},
            timeout=WAIT,
        )

    for r in receiver.snapshot():
        assert r.method == "POST" and r.path == "/v1/traces"
        assert r.headers.get("content-type", "").startswith("application/json")
        assert r.headers.get("x-otel-token") == "abc123" and r.headers.get("x-tenant") == "t1"
    spans = {s["attrs"]["tollgate.request_id"]: (res, scope, s) for res, scope, s in otlp_json_spans(receiver.snapshot())}

    resource, scope, span = spans[ok]
    assert resource["service.name"] == "tollgate-test" and scope == "tollgate"
    assert span["name"] == "chat gpt-mock" and span["kind"] == 3
    assert re.fullmatch(r"[0-9a-f]{32}", span["traceId"]) and re.fullmatch(r"[0-9a-f]{16}", span["spanId"])
    assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"]) > 0
    assert span.get("status", {}).get("code", 0) != 2
    a = span["attrs"]
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-mock" and a["gen_ai.response.model"] == "gpt-4o-mini"
    assert a["gen_ai.usage.input_tokens"] == completion.usage.prompt_tokens
    assert a["gen_ai.usage.output_tokens"] == completion.usage.completion_tokens > 0
    assert a["tollgate.model_group"] == "gpt-mock" and a["tollgate.deployment_id"]
    assert isinstance(a["tollgate.spend"], float) and a["tollgate.cache_hit"] is False
    assert a["http.response.status_code"] == 200
    assert has_marker(json.loads(a["gen_ai.input.messages"]), marker)
    assert has_marker(json.loads(a["gen_ai.output.messages"]), marker)

    _, _, span = spans[bad]
    assert span["status"]["code"] == 2 and span["status"].get("message")
    assert span["attrs"]["http.response.status_code"] == 429 and span["attrs"]["error.type"]
    assert span["name"] == "chat always-429"


def test_otel_http_protobuf_is_the_default_protocol(mock, slow_mock, receiver, tmp_path):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    def value(v):
        kind = v.WhichOneof("value")
        return getattr(v, kind) if kind else None

    def spans_of(records):
        out = {}
        for r in records:
            if not (r.ok and r.method == "POST"):
                continue
            req = ExportTraceServiceRequest.FromString(r.body)
            for rs in req.resource_spans:
                resource = {a.key: value(a.value) for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        attrs = {a.key: value(a.value) for a in span.attributes}
                        out[attrs.get("tollgate.request_id")] = (resource, ss.scope.name, span, attrs)
        return out

    env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.url + "/otlp/v1/traces"}
    section = """
        litellm_settings:
          success_callback: ["otel"]
        """
    with running(mock, slow_mock, tmp_path, section, env=env) as gw:
        rid, completion = chat(gw, "otel protobuf")
        receiver.wait_until(lambda recs: rid in spans_of(recs), timeout=WAIT)

    for r in receiver.snapshot():
        assert r.path == "/otlp/v1/traces"
        assert r.headers.get("content-type", "").startswith("application/x-protobuf")
    resource, scope, span, attrs = spans_of(receiver.snapshot())[rid]
    assert resource["service.name"] == "tollgate" and scope == "tollgate"
    assert span.name == "chat gpt-mock" and span.kind == 3
    assert len(span.trace_id) == 16 and len(span.span_id) == 8
    assert span.end_time_unix_nano >= span.start_time_unix_nano > 0
    assert span.status.code != 2
    assert attrs["gen_ai.request.model"] == "gpt-mock" and attrs["tollgate.model_group"] == "gpt-mock"
    assert attrs["gen_ai.usage.input_tokens"] == completion.usage.prompt_tokens
    assert attrs["gen_ai.usage.output_tokens"] == completion.usage.completion_tokens
    assert attrs["http.response.status_code"] == 200


def test_service_callback_gets_redis_outages(mock, slow_mock, receiver, tmp_path):
    """`service_callback` destinations hear when the shared Redis goes away
    (and request logs do not go there)."""
    section = """
    litellm_settings:
      service_callback: [webhook]
    """
    env = webhook_env(receiver, REDIS_URL="redis://127.0.0.1:1")
    with running(mock, slow_mock, tmp_path, section, env=env) as gw:
        chat(gw, "not a service event")
        receiver.wait_until(
            lambda recs: any(p.get("service") == "redis" for p in webhook_payloads(recs)), timeout=WAIT
        )
        time.sleep(0.5)
        events = webhook_payloads(receiver.snapshot())
        redis = [p for p in events if p.get("service") == "redis"]
        assert redis[0]["type"] == "service" and redis[0]["event"] == "unreachable"
        assert redis[0]["status"] == "failure" and redis[0]["error"]
        assert len(redis) == 1, "one event per outage, not one per failed command"
        assert all(p.get("type") == "service" for p in events), "request logs stay out of service_callback"
        assert destination(gw, "webhook")["service"] is True


def test_no_log_calls_reach_no_destination_and_services_can_be_tested(mock, slow_mock, receiver, tmp_path):
    section = """
    litellm_settings:
      callbacks: [webhook]
    general_settings:
      store_prompts_in_spend_logs: true
    """
    with running(mock, slow_mock, tmp_path, section, env=webhook_env(receiver)) as gw:
        marker = uuid.uuid4().hex
        hidden = chat(gw, f"hidden {marker}", extra_body={"no-log": True})[0]
        shown = chat(gw, "shown")[0]
        wait_payloads(receiver, [shown])
        time.sleep(0.5)
        assert marker.encode() not in b"".join(r.body for r in receiver.snapshot())
        assert hidden not in {p.get("id") for p in webhook_payloads(receiver.snapshot())}
        # Its spend is still logged, without its prompt.
        def logged():
            rows = admin(gw).get("/spend/logs", params={"request_id": hidden}).json()
            return next((r for r in rows if r["request_id"] == hidden), None)

        assert wait_until(logged, timeout=WAIT)
        row = logged()
        assert row["messages"] is None and row["total_tokens"] > 0
        with pytest.raises(openai.BadRequestError) as e:
            chat(gw, "x", extra_body={"no-log": "yes"})
        assert "no-log" in str(e.value)

        # /health/services sends a test record to a destination.
        r = admin(gw).get("/health/services", params={"service": "webhook"})
        assert r.status_code == 200 and r.json()["status"] == "success"
        receiver.wait_until(
            lambda recs: any(p.get("event") == "health_services_test" for p in webhook_payloads(recs)), timeout=WAIT
        )
        r = admin(gw).get("/health/services", params={"service": "langsmith"})
        assert r.status_code == 400 and "configured: webhook" in r.json()["error"]["message"]
