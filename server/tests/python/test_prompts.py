"""Managed prompts: versioned templates with {{variables}}, called by their
Bedrock-style ARN from the OpenAI SDK (`extra_body.promptVariables`) and from
boto3's Converse (`promptVariables`), as the deployment guide shows."""

import httpx
import openai
import pytest

from conftest import MASTER_KEY
from test_bedrock_api import client as bedrock_client


def sdk(gateway, key=MASTER_KEY):
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=30)


@pytest.fixture
def prompt(http):
    r = http.post(
        "/prompts",
        json={
            "name": "fruit-facts",
            "model": "gpt-mock",
            "template": [
                {"role": "system", "content": "You know a lot about {{topic}}."},
                {"role": "user", "content": "Tell me about {{ topic }} in {{count}} words"},
            ],
            "inference_config": {"temperature": 0.3, "max_tokens": 40},
        },
    )
    assert r.status_code == 200, r.text
    p = r.json()
    yield p
    http.delete(f"/prompts/{p['id']}")


def test_a_prompt_arn_renders_and_routes_through_openai(gateway, prompt, mock_ctl):
    assert prompt["arn"].startswith("arn:aws:bedrock:") and prompt["arn"].endswith(f":prompt/{prompt['id']}")
    assert prompt["version"] == 1
    r = sdk(gateway).chat.completions.create(
        model=prompt["arn"], messages=[], extra_body={"promptVariables": {"topic": {"text": "fruit"}, "count": {"text": "ten"}}}
    )
    assert "Tell me about fruit in ten words" in r.choices[0].message.content
    sent = mock_ctl.get("/__mock/requests").json()[-1]["body"]
    assert sent["messages"][0] == {"role": "system", "content": "You know a lot about fruit."}
    assert sent["temperature"] == 0.3 and sent["max_tokens"] == 40


def test_a_prompt_arn_works_as_a_bedrock_model_id(gateway, prompt):
    b = bedrock_client(gateway)
    r = b.converse(modelId=prompt["arn"], promptVariables={"topic": {"text": "pears"}, "count": {"text": "five"}})
    assert "Tell me about pears in five words" in r["output"]["message"]["content"][0]["text"]
    events = list(b.converse_stream(modelId=prompt["arn"], promptVariables={"topic": {"text": "figs"}, "count": {"text": "2"}})["stream"])
    assert "figs" in "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e)
    with pytest.raises(b.exceptions.ValidationException) as missing:
        b.converse(modelId=prompt["arn"], promptVariables={"topic": {"text": "x"}})
    assert "count" in str(missing.value)


def test_versions(gateway, http, prompt):
    r = http.post(f"/prompts/{prompt['id']}/versions", json={"template": "Version two about {{topic}}"})
    assert r.status_code == 200 and r.json()["version"] == 2
    c = sdk(gateway)
    vars_ = {"promptVariables": {"topic": {"text": "plums"}, "count": {"text": "3"}}}
    latest = c.chat.completions.create(model=prompt["arn"], messages=[], extra_body=vars_)
    assert "Version two about plums" in latest.choices[0].message.content
    first = c.chat.completions.create(model=prompt["arn"] + ":1", messages=[], extra_body=vars_)
    assert "Tell me about plums" in first.choices[0].message.content
    got = http.get(f"/prompts/{prompt['id']}", params={"version": 1}).json()
    assert got["version"] == 1 and got["versions"] == [1, 2]
    listed = {p["id"]: p for p in http.get("/prompts").json()["prompts"]}
    assert listed[prompt["id"]]["version"] == 2 and listed[prompt["id"]]["versions"] == 2


def test_errors_name_what_is_missing(gateway, http, prompt):
    c = sdk(gateway)
    with pytest.raises(openai.BadRequestError) as missing:
        c.chat.completions.create(model=prompt["arn"], messages=[], extra_body={"promptVariables": {"topic": "x"}})
    assert missing.value.body["param"] == "promptVariables.count"
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model=prompt["arn"].replace(prompt["id"], "NOSUCHPRMT"), messages=[])
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model=prompt["arn"] + ":9", messages=[], extra_body={"promptVariables": {"topic": "x", "count": "1"}})
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model="gpt-mock", messages=[{"role": "user", "content": "x"}], extra_body={"promptVariables": {"a": "b"}})
    for body, param in [
        ({"model": "gpt-mock", "template": "x"}, "name"),
        ({"name": "n", "model": "no-such-model", "template": "x"}, "model"),
        ({"name": "n", "model": "gpt-mock", "template": []}, "template"),
        ({"name": "n", "model": "gpt-mock", "template": "x", "inference_config": {"colour": 1}}, "inference_config"),
    ]:
        r = http.post("/prompts", json=body)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


def test_only_admins_write_and_deleted_prompts_are_gone(gateway, http, prompt):
    user = http.post("/user/new", json={"user_role": "internal_user"}).json()
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {user['key']}"}) as c:
        assert c.post("/prompts", json={"name": "x", "model": "gpt-mock", "template": "x"}).status_code == 403
        assert c.delete(f"/prompts/{prompt['id']}").status_code == 403
        # Users call prompts; they do not need to read the store.
        r = sdk(gateway, user["key"]).chat.completions.create(
            model=prompt["arn"], messages=[], extra_body={"promptVariables": {"topic": "kiwi", "count": "4"}}
        )
        assert "kiwi" in r.choices[0].message.content
    assert http.delete(f"/prompts/{prompt['id']}").json() == {"deleted": prompt["id"]}
    assert http.get(f"/prompts/{prompt['id']}").status_code == 404
    with pytest.raises(openai.NotFoundError):
        sdk(gateway).chat.completions.create(model=prompt["arn"], messages=[], extra_body={"promptVariables": {"topic": "x", "count": "1"}})


REMOTE = "arn:aws:bedrock:us-west-2:111122223333:prompt/MOCKPROMPT1"


@pytest.fixture(scope="module")
def with_bedrock_agent(mock, slow_mock, tmp_path_factory):
    """A gateway whose Bedrock Prompt Management endpoint is the mock."""
    from conftest import start_gateway

    gw = start_gateway(
        mock.url,
        slow_mock.url,
        tmp_path_factory.mktemp("prompts-remote"),
        {
            "AWS_ENDPOINT_URL_BEDROCK_AGENT": mock.url,
            "AWS_ACCESS_KEY_ID": "AKIDPROMPTS",
            "AWS_SECRET_ACCESS_KEY": "prompt-secret",
            "AWS_REGION": "us-west-2",
        },
    )
    yield gw
    gw.stop()


def test_prompts_in_bedrock_prompt_management_are_read_with_get_prompt(with_bedrock_agent, mock_ctl):
    c = sdk(with_bedrock_agent)
    raw = c.chat.completions.with_raw_response.create(
        model=REMOTE, messages=[], extra_body={"promptVariables": {"tone": {"text": "calm"}, "topic": {"text": "pears"}}}
    )
    assert raw.headers["x-tollgate-model"] == "bedrock-mock"
    assert "Explain pears" in raw.parse().choices[0].message.content
    v1 = c.chat.completions.create(model=REMOTE + ":1", messages=[], extra_body={"promptVariables": {"tone": "x", "topic": "figs"}})
    assert "Describe figs" in v1.choices[0].message.content
    b = bedrock_client(with_bedrock_agent)
    r = b.converse(modelId=REMOTE, promptVariables={"tone": {"text": "calm"}, "topic": {"text": "plums"}})
    assert "Explain plums" in r["output"]["message"]["content"][0]["text"]
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model=REMOTE.replace("MOCKPROMPT1", "OTHERPRMPT"), messages=[])
