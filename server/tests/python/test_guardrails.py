"""Guardrails (`guardrails:` in the config): the built-in content filter masks
or blocks personal data, secrets, banned words and oversized input before the
call, checks answers after it (whole or streamed), puts masked values back
for the caller (`unmask`) while logs and history keep placeholders, and
refuses in each interface's own error shape, naming the guardrail."""

import json
import textwrap
import uuid

import anthropic
import boto3
import botocore
import botocore.config
import httpx
import openai
import pytest

from conftest import MASTER_KEY, start_gateway, wait_until


def guard_config(mock: str) -> str:
    aws = f"aws_bedrock_runtime_endpoint: {mock}\n              aws_access_key_id: AKIDTOLLGATETEST\n              aws_secret_access_key: guard-secret\n              aws_region_name: us-east-1"
    return textwrap.dedent(
        f"""
        model_list:
          - model_name: guarded
            litellm_params:
              model: openai/gpt-4o-mini
              api_base: {mock}/v1
              api_key: sk-up
            model_info:
              input_cost_per_token: 0.001
              output_cost_per_token: 0.002
        guardrails:
          - guardrail_name: pii-mask
            litellm_params:
              guardrail: litellm_content_filter
              mode: pre_call
              default_on: true
              unmask: true
              patterns:
                - pattern_type: prebuilt
                  pattern_name: email
                  action: MASK
                - pattern_type: prebuilt
                  pattern_name: credit_card
                  action: MASK
          - guardrail_name: no-ssn
            litellm_params:
              guardrail: litellm_content_filter
              mode: pre_call
              patterns:
                - pattern_type: prebuilt
                  pattern_name: us_ssn
                  action: BLOCK
          - guardrail_name: banned-in
            litellm_params:
              guardrail: litellm_content_filter
              mode: during_call
              blocked_words:
                - keyword: project nightingale
                  action: BLOCK
          - guardrail_name: banned-out
            litellm_params:
              guardrail: litellm_content_filter
              mode: post_call
              blocked_words:
                - keyword: launch codes
                  action: BLOCK
          - guardrail_name: secrets-out
            litellm_params:
              guardrail: hide-secrets
              mode: post_call
          - guardrail_name: small-input
            litellm_params:
              guardrail: litellm_content_filter
              mode: pre_call
              max_input_chars: 300
          - guardrail_name: ticket-ids
            litellm_params:
              guardrail: litellm_content_filter
              mode: pre_call
              patterns:
                - pattern_type: regex
                  name: ticket
                  pattern: "TCK-[0-9]{{6}}"
                  action: MASK
            guardrail_info:
              owner: support
          - guardrail_name: bedrock-guard
            litellm_params:
              guardrail: bedrock
              mode: [pre_call, post_call]
              guardrailIdentifier: gr0mock1
              guardrailVersion: "1"
              mask_request_content: true
              mask_response_content: true
              stream_window_chars: 40
              {aws}
          - guardrail_name: bedrock-during
            litellm_params:
              guardrail: bedrock
              mode: during_call
              guardrailIdentifier: gr0mock2
              guardrailVersion: DRAFT
              {aws}
          - guardrail_name: bedrock-out
            litellm_params:
              guardrail: bedrock
              mode: post_call
              guardrailIdentifier: gr0mock3
              guardrailVersion: "1"
              stream_window_chars: 40
              {aws}
          - guardrail_name: bedrock-gone
            litellm_params:
              guardrail: bedrock
              mode: pre_call
              guardrailIdentifier: missing1
              guardrailVersion: "1"
              {aws}
        """
    )


@pytest.fixture(scope="module")
def gw(mock, slow_mock, tmp_path_factory):
    p = start_gateway(mock.url, slow_mock.url, tmp_path_factory.mktemp("guard"), config_text=guard_config(mock.url))
    yield p
    p.stop()


def admin(url):
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30)


def client(url, key=MASTER_KEY):
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


def upstream_bodies(mock, marker):
    """The chat requests the model got that carry `marker` (not guardrail calls)."""
    return [
        json.dumps(r.get("body"))
        for r in httpx.get(mock.url + "/__mock/requests").json()
        if r.get("path", "").endswith("/chat/completions") and marker in json.dumps(r.get("body"))
    ]


def test_personal_data_is_masked_before_the_call_and_given_back_to_the_caller(gw, mock):
    marker = uuid.uuid4().hex
    text = f"{marker} write to ann@example.com about card 4111 1111 1111 1111"
    r = client(gw.url).chat.completions.create(model="guarded", messages=[{"role": "user", "content": text}])
    # The model saw placeholders only.
    sent = upstream_bodies(mock, marker)
    assert len(sent) == 1
    assert "ann@example.com" not in sent[0] and "4111" not in sent[0]
    assert "[EMAIL_1]" in sent[0] and "[CREDIT_CARD_1]" in sent[0]
    # The caller gets its values back in the answer (the mock echoes the prompt).
    answer = r.choices[0].message.content
    assert "ann@example.com" in answer and "4111 1111 1111 1111" in answer
    assert "[EMAIL_1]" not in answer


def test_a_streamed_answer_is_unmasked_as_it_streams(gw, mock):
    marker = uuid.uuid4().hex
    stream = client(gw.url).chat.completions.create(
        model="guarded",
        messages=[{"role": "user", "content": f"{marker} mail bob@corp.io and TCK-123456 please"}],
        stream=True,
        extra_body={"guardrails": ["ticket-ids"]},
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    text = "".join(pieces)
    assert "bob@corp.io" in text and "TCK-123456" in text
    assert "[EMAIL_1]" not in text and "[TICKET_1]" not in text
    assert len([p for p in pieces if p]) > 2, pieces  # still streamed in pieces
    sent = upstream_bodies(mock, marker)
    assert "bob@corp.io" not in sent[0] and "[TICKET_1]" in sent[0]


def test_history_and_logs_keep_the_placeholders(gw):
    c = client(gw.url)
    r = c.chat.completions.create(
        model="guarded",
        messages=[{"role": "user", "content": "remember carol@example.org"}],
        extra_body={"enable_history": True},
    )
    assert "carol@example.org" in r.choices[0].message.content
    sid = r.model_extra["session_id"]
    with admin(gw.url) as a:
        h = a.post("/chat-history", json={"session_id": sid}).json()
        stored = json.dumps(h)
        assert "carol@example.org" not in stored and "[EMAIL_1]" in stored
        assert wait_until(lambda: any(l["request_id"] == r.id or True for l in a.get("/spend/logs").json()), timeout=10)


def test_a_blocked_input_is_a_400_naming_the_guardrail_in_each_shape(gw, mock):
    marker = uuid.uuid4().hex
    msg = [{"role": "user", "content": f"{marker} my SSN is 123-45-6789"}]
    # OpenAI SDK: BadRequestError, type guardrail_violation.
    with pytest.raises(openai.BadRequestError) as e:
        client(gw.url).chat.completions.create(model="guarded", messages=msg, extra_body={"guardrails": ["no-ssn"]})
    err = e.value.body
    assert err["type"] == "guardrail_violation" and err["guardrail"] == "no-ssn"
    assert "no-ssn" in err["message"] and "us_ssn" in err["message"]
    assert "123-45-6789" not in err["message"]
    # Anthropic SDK.
    a = anthropic.Anthropic(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as e2:
        a.messages.create(model="guarded", max_tokens=20, messages=msg, extra_body={"guardrails": ["no-ssn"]})
    assert "no-ssn" in str(e2.value)
    # Nothing reached the model.
    assert upstream_bodies(mock, marker) == []


def test_keys_and_teams_carry_guardrails(gw):
    with admin(gw.url) as a:
        team = a.post("/team/new", json={"team_alias": "careful", "metadata": {"guardrails": ["no-ssn"]}}).json()
        key = a.post("/key/generate", json={"team_id": team["team_id"]}).json()["key"]
        key2 = a.post("/key/generate", json={"guardrails": ["no-ssn"]}).json()["key"]
        plain = a.post("/key/generate", json={}).json()["key"]
    msg = [{"role": "user", "content": "SSN 123-45-6789"}]
    for k in (key, key2):
        with pytest.raises(openai.BadRequestError):
            client(gw.url, k).chat.completions.create(model="guarded", messages=msg)
    assert client(gw.url, plain).chat.completions.create(model="guarded", messages=msg).choices


def test_bedrock_clients_get_bedrocks_answers(gw):
    br = boto3.client(
        "bedrock-runtime",
        endpoint_url=gw.url + "/bedrock",
        region_name="us-east-1",
        config=botocore.config.Config(signature_version=botocore.UNSIGNED, retries={"max_attempts": 0}),
    )

    br.meta.events.register(
        "request-created.*", lambda request, **_: request.headers.__setitem__("Authorization", f"Bearer {MASTER_KEY}")
    )
    # Named in Bedrock's own guardrailConfig, an intervention is an answer, as
    # Bedrock gives it: stopReason guardrail_intervened, the guardrail's message.
    msgs = [{"role": "user", "content": [{"text": "tell me about Project Nightingale"}]}]
    out = br.converse(
        modelId="guarded", messages=msgs, guardrailConfig={"guardrailIdentifier": "banned-in", "guardrailVersion": "1"}
    )
    assert out["stopReason"] == "guardrail_intervened"
    assert "banned-in" in out["output"]["message"]["content"][0]["text"]
    assert out["usage"]["inputTokens"] == 0
    events = list(
        br.converse_stream(
            modelId="guarded", messages=msgs, guardrailConfig={"guardrailIdentifier": "banned-in", "guardrailVersion": "1"}
        )["stream"]
    )
    kinds = [next(iter(e)) for e in events]
    assert kinds == ["messageStart", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"]
    assert events[3]["messageStop"]["stopReason"] == "guardrail_intervened"
    assert "banned-in" in events[1]["contentBlockDelta"]["delta"]["text"]
    # An answer cut part-way ends the same way, after the text that passed.
    events = list(
        br.converse_stream(
            modelId="guarded",
            messages=[{"role": "user", "content": [{"text": "one two three four five six seven eight and the launch codes"}]}],
            guardrailConfig={"guardrailIdentifier": "banned-out", "guardrailVersion": "1"},
        )["stream"]
    )
    stops = [e["messageStop"]["stopReason"] for e in events if "messageStop" in e]
    assert stops == ["guardrail_intervened"]
    texts = [e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e]
    assert "launch codes" not in "".join(texts[:-1]) and "banned-out" in texts[-1]
    # Named among the additional fields, as on the OpenAI interface, a block is
    # a ValidationException.
    with pytest.raises(br.exceptions.ValidationException) as e:
        br.converse(
            modelId="guarded",
            messages=[{"role": "user", "content": [{"text": "SSN 123-45-6789"}]}],
            additionalModelRequestFields={"guardrails": ["no-ssn"]},
        )
    assert "no-ssn" in str(e.value)
    # Without them, the same text goes through.
    out = br.converse(modelId="guarded", messages=[{"role": "user", "content": [{"text": "Project Nightingale"}]}])
    assert out["stopReason"] == "end_turn"


def test_a_blocked_answer_is_refused_and_still_paid_for(gw):
    with admin(gw.url) as a:
        made = a.post("/key/generate", json={}).json()
    c = client(gw.url, made["key"])
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(
            model="guarded",
            messages=[{"role": "user", "content": "what are the launch codes"}],
            extra_body={"guardrails": ["banned-out"]},
        )
    assert e.value.body["guardrail"] == "banned-out"
    with admin(gw.url) as a:
        assert wait_until(lambda: len(a.get("/spend/logs", params={"api_key": made["token"]}).json()) == 1, timeout=10)
        row = a.get("/spend/logs", params={"api_key": made["token"]}).json()[0]
    assert row["status_code"] == 400 and row["spend"] > 0
    outcomes = {g["guardrail"]: g["outcome"] for g in row["guardrails"]}
    assert outcomes["banned-out"] == "blocked" and outcomes["pii-mask"] == "passed"


def test_a_streamed_answer_is_cut_when_a_guardrail_intervenes(gw):
    stream = client(gw.url).chat.completions.create(
        model="guarded",
        messages=[{"role": "user", "content": "one two three four five six seven eight nine ten and the launch codes"}],
        stream=True,
        extra_body={"guardrails": ["banned-out"]},
    )
    got = []
    with pytest.raises(openai.APIError) as e:
        for c in stream:
            if c.choices:
                got.append(c.choices[0].delta.content or "")
    assert "banned-out" in str(e.value)
    assert "launch codes" not in "".join(got)


def test_secrets_in_answers_are_masked(gw):
    key = "AKIA" + "ABCDEFGHIJKLMNOP"
    r = client(gw.url).chat.completions.create(
        model="guarded",
        messages=[{"role": "user", "content": f"repeat {key}"}],
        extra_body={"guardrails": ["secrets-out"]},
    )
    assert key not in r.choices[0].message.content
    assert "[AWS_ACCESS_KEY_1]" in r.choices[0].message.content
    stream = client(gw.url).chat.completions.create(
        model="guarded",
        messages=[{"role": "user", "content": f"repeat {key} now"}],
        extra_body={"guardrails": ["secrets-out"]},
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert key not in text and "[AWS_ACCESS_KEY_1]" in text


def test_oversized_input_and_unknown_names(gw):
    with pytest.raises(openai.BadRequestError) as e:
        client(gw.url).chat.completions.create(
            model="guarded",
            messages=[{"role": "user", "content": "x" * 400}],
            extra_body={"guardrails": ["small-input"]},
        )
    assert "300" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        client(gw.url).chat.completions.create(
            model="guarded", messages=[{"role": "user", "content": "hi"}], extra_body={"guardrails": ["nope"]}
        )
    assert e.value.body["param"] == "guardrails" and "pii-mask" in e.value.body["message"]


def test_guardrails_are_listed_with_their_stats(gw):
    with httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {MASTER_KEY}"}) as a:
        listed = a.get("/guardrails/list").json()["guardrails"]
    by = {g["guardrail_name"]: g for g in listed}
    assert by["pii-mask"]["litellm_params"] == {"guardrail": "litellm_content_filter", "mode": ["pre_call"], "default_on": True}
    assert by["ticket-ids"]["guardrail_info"] == {"owner": "support"}
    assert by["pii-mask"]["stats"]["checks"] > 0


def test_the_list_names_the_keys_and_teams_that_turn_a_guardrail_on(gw):
    alias = f"careful-{uuid.uuid4().hex[:6]}"
    with admin(gw.url) as a:
        team = a.post("/team/new", json={"team_alias": alias, "metadata": {"guardrails": ["banned-out"]}}).json()
        made = a.post("/key/generate", json={"key_alias": alias, "guardrails": ["banned-out"]}).json()
        by = {g["guardrail_name"]: g for g in a.get("/guardrails/list").json()["guardrails"]}
        on = by["banned-out"]["attached"]
        assert {"token": made["token"], "name": alias} in on["keys"] and on["key_count"] >= 1
        assert {"team_id": team["team_id"], "name": alias} in on["teams"] and on["team_count"] >= 1
        # The secret itself is never listed.
        assert made["key"] not in json.dumps(on)
        # A user's key lists the guardrails but not who turns them on.
        user = a.post("/user/new", json={"user_role": "internal_user"}).json()
    with admin(gw.url) as u:
        u.headers["Authorization"] = f"Bearer {user['key']}"
        listed = u.get("/guardrails/list").json()["guardrails"]
        assert listed and all("attached" not in g for g in listed)


def test_a_bad_pattern_stops_the_start(mock, slow_mock, tmp_path_factory):
    cfg = guard_config(mock.url).replace('"TCK-[0-9]{6}"', '"TCK-[0-9"')
    with pytest.raises(RuntimeError) as e:
        start_gateway(mock.url, slow_mock.url, tmp_path_factory.mktemp("badguard"), config_text=cfg)
    assert "guardrails[6].litellm_params.patterns[0].pattern" in str(e.value)


def test_a_blocked_stream_before_its_first_window_is_a_plain_400(gw):
    with pytest.raises(openai.BadRequestError) as e:
        client(gw.url).chat.completions.create(
            model="guarded",
            messages=[{"role": "user", "content": "forbidden"}],
            stream=True,
            extra_body={"guardrails": ["bedrock-out"]},
        )
    assert e.value.body["guardrail"] == "bedrock-out"


def guardrail_calls(mock, ident):
    return [r for r in httpx.get(mock.url + "/__mock/requests").json() if f"/guardrail/{ident}/" in r.get("path", "")]


def test_a_bedrock_guardrail_anonymizes_the_input_and_blocks_for_any_provider(gw, mock):
    marker = uuid.uuid4().hex
    c = client(gw.url)
    # Anonymized by ApplyGuardrail before an OpenAI-backed model sees it.
    r = c.chat.completions.create(
        model="guarded",
        messages=[{"role": "user", "content": f"{marker} call Mr. Pemberton today"}],
        extra_body={"guardrails": ["bedrock-guard"]},
    )
    sent = upstream_bodies(mock, marker)
    assert len(sent) == 1 and "Pemberton" not in sent[0] and "Mr. {NAME}" in sent[0]
    assert "Pemberton" not in r.choices[0].message.content
    calls = guardrail_calls(mock, "gr0mock1")
    sources = [json.loads(x["body"]) if isinstance(x["body"], str) else x["body"] for x in calls]
    assert {b["source"] for b in sources} >= {"INPUT", "OUTPUT"}
    # Blocked with the guardrail's own message; nothing reaches the model.
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(
            model="guarded",
            messages=[{"role": "user", "content": f"{marker}-2 this is forbidden"}],
            extra_body={"guardrails": ["bedrock-guard"]},
        )
    assert e.value.body["guardrail"] == "bedrock-guard"
    assert "Sorry, the model cannot answer this question." in e.value.body["message"]
    assert upstream_bodies(mock, f"{marker}-2") == []


def test_bedrock_guardrail_on_a_streamed_answer_checks_windows(gw, mock):
    c = client(gw.url)
    # Passes: the answer streams in windows, unchanged.
    words = " ".join(f"word{i}" for i in range(30))
    stream = c.chat.completions.create(
        model="guarded",
        messages=[{"role": "user", "content": words}],
        stream=True,
        extra_body={"guardrails": ["bedrock-guard"]},
    )
    pieces = [ch.choices[0].delta.content or "" for ch in stream if ch.choices]
    assert "".join(pieces).endswith(words)
    assert len([p for p in pieces if p]) > 3
    # A window that trips it cuts the stream; what came before was sent.
    late = " ".join(f"w{i}" for i in range(40)) + " forbidden end"
    stream = c.chat.completions.create(
        model="guarded",
        messages=[{"role": "user", "content": late}],
        stream=True,
        extra_body={"guardrails": ["bedrock-out"]},
    )
    got = []
    with pytest.raises(openai.APIError) as cut:
        for ch in stream:
            if ch.choices:
                got.append(ch.choices[0].delta.content or "")
    assert "bedrock-out" in str(cut.value)
    assert "w0" in "".join(got) and "forbidden" not in "".join(got)
    # A during-call check that refuses holds the stream back: it never starts.
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(
            model="guarded",
            messages=[{"role": "user", "content": "blockme please"}],
            stream=True,
            extra_body={"guardrails": ["bedrock-during"]},
        )
    assert "bedrock-during" in e.value.body["message"]


def test_an_unreachable_bedrock_guardrail_fails_closed_with_503(gw):
    with pytest.raises(openai.InternalServerError) as e:
        client(gw.url).chat.completions.create(
            model="guarded",
            messages=[{"role": "user", "content": "hello"}],
            extra_body={"guardrails": ["bedrock-gone"]},
        )
    assert e.value.status_code == 503 and "missing1" in e.value.body["message"]


def test_the_log_itemises_bedrock_windows_of_a_stream(gw):
    with admin(gw.url) as a:
        made = a.post("/key/generate", json={}).json()
    words = " ".join(f"item{i}" for i in range(25))
    stream = client(gw.url, made["key"]).chat.completions.create(
        model="guarded",
        messages=[{"role": "user", "content": words}],
        stream=True,
        extra_body={"guardrails": ["bedrock-guard"]},
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices).endswith(words)
    with admin(gw.url) as a:
        assert wait_until(lambda: len(a.get("/spend/logs", params={"api_key": made["token"]}).json()) == 1, timeout=10)
        row = a.get("/spend/logs", params={"api_key": made["token"]}).json()[0]
    entries = [(g["guardrail"], g["mode"], g["outcome"]) for g in row["guardrails"]]
    assert ("bedrock-guard", "pre_call", "passed") in entries
    post = [g for g in row["guardrails"] if g["guardrail"] == "bedrock-guard" and g["mode"] == "post_call"]
    assert len(post) == 1 and post[0]["outcome"] == "passed" and post[0]["windows"] >= 3
