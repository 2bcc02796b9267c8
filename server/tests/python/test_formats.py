"""One chat endpoint, several request shapes: `/v1/chat/completions` takes
Bedrock-Claude and Titan bodies (detected by their fields) and answers in the
shape `?target_format=` asks for, streamed or not; Bedrock's InvokeModel takes
the same bodies through boto3."""

import json

import httpx
import pytest

from conftest import MASTER_KEY
from test_bedrock_api import client as bedrock_client

CLAUDE_BODY = {
    "anthropic_version": "bedrock-2023-05-31",
    "model": "claude-mock",
    "max_tokens": 64,
    "system": "be brief",
    "messages": [{"role": "user", "content": [{"type": "text", "text": "claude shaped"}]}],
}
TITAN_BODY = {"model": "gpt-mock", "inputText": "titan shaped", "textGenerationConfig": {"maxTokenCount": 50, "temperature": 0.2}}


def post(gateway, body, **params):
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        params=params,
        json=body,
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
        timeout=30,
    )


def sse_data(text):
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ") and line != "data: [DONE]"]


def test_a_bedrock_claude_body_answers_in_openai_shape_by_default(gateway):
    r = post(gateway, CLAUDE_BODY)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert "claude shaped" in body["choices"][0]["message"]["content"]


def test_a_titan_body_with_targets(gateway):
    r = post(gateway, TITAN_BODY, target_format="bedrock_titan")
    assert r.status_code == 200, r.text
    out = r.json()
    assert "titan shaped" in out["results"][0]["outputText"]
    assert out["results"][0]["completionReason"] == "FINISH"
    assert out["inputTextTokenCount"] > 0 and out["results"][0]["tokenCount"] > 0
    claude = post(gateway, TITAN_BODY, target_format="bedrock_claude").json()
    assert claude["type"] == "message" and "titan shaped" in claude["content"][0]["text"]


def test_an_openai_body_can_answer_in_bedrock_claude_shape(gateway):
    r = post(gateway, {"model": "gpt-mock", "messages": [{"role": "user", "content": "openai shaped"}]}, target_format="bedrock_claude")
    out = r.json()
    assert out["type"] == "message" and out["stop_reason"] == "end_turn"
    assert out["usage"]["input_tokens"] > 0


def test_streams_follow_the_target_format(gateway):
    claude = post(gateway, dict(CLAUDE_BODY, stream=True), target_format="bedrock_claude")
    events = [line[7:] for line in claude.text.splitlines() if line.startswith("event: ")]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    titan = sse_data(post(gateway, dict(TITAN_BODY, stream=True), target_format="bedrock_titan").text)
    assert "titan shaped" in "".join(c["outputText"] for c in titan)
    assert titan[-1]["completionReason"] == "FINISH" and titan[-1]["inputTextTokenCount"] > 0
    openai = sse_data(post(gateway, dict(TITAN_BODY, stream=True)).text)
    assert openai[0]["object"] == "chat.completion.chunk"


def test_bad_bodies_and_targets_are_named(gateway):
    r = post(gateway, {"inputText": "no model"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    assert post(gateway, {"inputText": "via query"}, model="gpt-mock").status_code == 200
    r = post(gateway, TITAN_BODY, target_format="xml")
    assert r.status_code == 400 and r.json()["error"]["param"] == "target_format"
    r = post(gateway, {"anthropic_version": "bedrock-2023-05-31", "model": "gpt-mock", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and "max_tokens" in r.json()["error"]["message"]


@pytest.mark.parametrize("model", ["claude-mock", "gpt-mock", "bedrock-mock"])
def test_invoke_model_with_anthropic_bodies(gateway, model):
    b = bedrock_client(gateway)
    body = {k: v for k, v in CLAUDE_BODY.items() if k != "model"}
    r = b.invoke_model(modelId=model, body=json.dumps(body))
    out = json.loads(r["body"].read())
    assert out["type"] == "message" and "claude shaped" in out["content"][0]["text"]
    s = b.invoke_model_with_response_stream(modelId=model, body=json.dumps(body))
    events = [json.loads(e["chunk"]["bytes"]) for e in s["body"]]
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    assert "claude shaped" in text


def test_invoke_model_with_titan_bodies(gateway):
    b = bedrock_client(gateway)
    body = {"inputText": "titan via invoke", "textGenerationConfig": {"maxTokenCount": 40}}
    out = json.loads(b.invoke_model(modelId="gpt-mock", body=json.dumps(body))["body"].read())
    assert "titan via invoke" in out["results"][0]["outputText"]
    chunks = [json.loads(e["chunk"]["bytes"]) for e in b.invoke_model_with_response_stream(modelId="gpt-mock", body=json.dumps(body))["body"]]
    assert "titan via invoke" in "".join(c["outputText"] for c in chunks)
    with pytest.raises(b.exceptions.ValidationException):
        b.invoke_model(modelId="gpt-mock", body=json.dumps({"prompt": "llama style"}))
