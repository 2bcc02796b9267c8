"""Anthropic's Messages API for every model group, driven by the `anthropic`
Python SDK: plain and streamed answers from OpenAI-, Anthropic- and
Bedrock-backed groups, tools both ways, images, token counting, and errors
that raise the SDK's own classes."""

import base64

import anthropic
import pytest

from conftest import MASTER_KEY, wait_until

GROUPS = ["gpt-mock", "claude-mock", "bedrock-mock"]
PNG = base64.b64encode(
    base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    )
).decode()


def sdk(gateway, key=MASTER_KEY, prefix=""):
    return anthropic.Anthropic(base_url=gateway.url + prefix, api_key=key, max_retries=0, timeout=30)


@pytest.mark.parametrize("model", GROUPS)
def test_messages_answer_from_every_provider_family(gateway, model):
    m = sdk(gateway).messages.create(
        model=model, max_tokens=64, system="be brief", messages=[{"role": "user", "content": "hello from anthropic"}]
    )
    assert m.type == "message" and m.role == "assistant" and m.model == model
    assert m.id.startswith("msg_")
    assert "hello from anthropic" in m.content[0].text
    assert m.stop_reason == "end_turn"
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0


@pytest.mark.parametrize("model", GROUPS)
def test_streams_use_anthropic_events(gateway, model):
    with sdk(gateway, prefix="/anthropic").messages.stream(
        model=model, max_tokens=64, messages=[{"role": "user", "content": "stream to anthropic"}]
    ) as s:
        kinds = [e.type for e in s]
        final = s.get_final_message()
    assert kinds[0] == "message_start"
    assert "content_block_start" in kinds and "content_block_delta" in kinds and "content_block_stop" in kinds
    assert kinds[-2:] == ["message_delta", "message_stop"], kinds
    assert "stream to anthropic" in final.content[0].text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


TOOLS = [{"name": "get_weather", "description": "Weather for a city", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]


@pytest.mark.parametrize("model", GROUPS)
def test_tools_both_ways(gateway, model):
    c = sdk(gateway)
    ask = [{"role": "user", "content": "weather in Paris"}]
    first = c.messages.create(model=model, max_tokens=64, messages=ask, tools=TOOLS, tool_choice={"type": "any"})
    assert first.stop_reason == "tool_use"
    (use,) = [b for b in first.content if b.type == "tool_use"]
    assert use.name == "get_weather" and isinstance(use.input, dict)
    follow = ask + [
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "21 C"}]},
    ]
    second = c.messages.create(model=model, max_tokens=64, messages=follow, tools=TOOLS)
    assert second.stop_reason == "end_turn" and second.content[0].text

    with c.messages.stream(model=model, max_tokens=64, messages=ask, tools=TOOLS, tool_choice={"type": "any"}) as s:
        final = s.get_final_message()
    (streamed,) = [b for b in final.content if b.type == "tool_use"]
    assert streamed.name == "get_weather" and isinstance(streamed.input, dict)
    assert final.stop_reason == "tool_use"


def test_images_are_accepted(gateway):
    m = sdk(gateway).messages.create(
        model="gpt-mock",
        max_tokens=32,
        messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}, {"type": "text", "text": "what is it"}]}],
    )
    assert m.content[0].text


def test_count_tokens(gateway):
    c = sdk(gateway)
    short = c.messages.count_tokens(model="claude-mock", messages=[{"role": "user", "content": "hi"}])
    long = c.messages.count_tokens(model="claude-mock", messages=[{"role": "user", "content": "hello there " * 50}], tools=TOOLS)
    assert 0 < short.input_tokens < long.input_tokens
    with pytest.raises(anthropic.NotFoundError):
        c.messages.count_tokens(model="no-such-model", messages=[{"role": "user", "content": "hi"}])


def test_errors_raise_sdk_classes(gateway, http):
    c = sdk(gateway)
    with pytest.raises(anthropic.NotFoundError):
        c.messages.create(model="no-such-model", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.BadRequestError) as bad:
        c.messages.create(model="gpt-mock", max_tokens=8, messages=[{"role": "system", "content": "x"}])
    assert "messages.0.role" in str(bad.value)
    with pytest.raises(anthropic.RateLimitError):
        c.messages.create(model="always-429", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.AuthenticationError):
        sdk(gateway, key="sk-wrong").messages.create(model="gpt-mock", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    limited = http.post("/key/generate", json={"models": ["gpt-mock"]}).json()["key"]
    with pytest.raises(anthropic.PermissionDeniedError):
        sdk(gateway, key=limited).messages.create(model="claude-mock", max_tokens=8, messages=[{"role": "user", "content": "x"}])


def test_spend_is_recorded_for_the_key(gateway, http):
    g = http.post("/key/generate", json={}).json()
    sdk(gateway, key=g["key"]).messages.create(model="priced-mock", max_tokens=16, messages=[{"role": "user", "content": "count me"}])

    def spent():
        return http.get("/key/info", params={"key": g["key"]}).json()["info"]["spend"] > 0

    assert wait_until(spent)
