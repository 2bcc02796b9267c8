"""Models added, changed and deleted through the management API
(`/model/new`, `/model/update`, `PATCH /model/{id}/update`, `/model/delete`):
served at once without a restart, never showing their secrets, audited."""

import os
import pathlib
import uuid

import openai
import pytest

from conftest import MASTER_KEY, UPSTREAM_SECRET


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def sdk(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=30)


def ask(gateway, model: str):
    return sdk(gateway).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


def add(http, mock, name: str, **info):
    body = {
        "model_name": name,
        "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": f"{mock.url}/v1", "api_key": UPSTREAM_SECRET},
        "model_info": info,
    }
    r = http.post("/model/new", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_new_model_answers_at_once_and_its_key_is_never_shown(gateway, mock, http):
    name = uid("db-model")
    created = add(http, mock, name, input_cost_per_token=0.5, output_cost_per_token=1.0)
    assert UPSTREAM_SECRET not in str(created)
    assert created["litellm_params"]["api_key"] == "****"
    assert created["model_info"]["db_model"] is True
    model_id = created["model_id"]

    reply = ask(gateway, name)
    assert reply.choices[0].message.content
    listed = [m.id for m in sdk(gateway).models.list().data]
    assert name in listed

    info = http.get("/model/info", params={"litellm_model_id": model_id})
    assert info.status_code == 200 and UPSTREAM_SECRET not in info.text
    (one,) = info.json()["data"]
    assert one["model_name"] == name
    assert one["model_info"]["db_model"] is True
    assert one["model_info"]["input_cost_per_token"] == 0.5
    assert "api_key" not in one["litellm_params"]

    audit = http.get("/audit", params={"object_type": "model", "object_id": model_id})
    assert audit.status_code == 200, audit.text
    assert UPSTREAM_SECRET not in audit.text
    assert [a["action"] for a in audit.json()] == ["created"]


@pytest.mark.skipif(
    (os.environ.get("TOLLGATE_TEST_DATABASE_URL") or "").startswith("postgres"),
    reason="reads the SQLite file",
)
def test_the_stored_key_is_encrypted(gateway, mock, http):
    add(http, mock, uid("sealed"))
    stored = b"".join(p.read_bytes() for p in pathlib.Path(gateway.workdir).glob("tollgate.db*"))
    assert b"enc:v1:" in stored
    assert UPSTREAM_SECRET.encode() not in stored


def test_update_changes_the_live_deployment(gateway, mock, http):
    name = uid("upd")
    model_id = add(http, mock, name)["model_id"]
    assert ask(gateway, name).choices

    r = http.post(
        "/model/update",
        json={"model_info": {"id": model_id}, "litellm_params": {"api_base": "http://127.0.0.1:9/v1"}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["litellm_params"]["api_key"] == "****", "the stored key is kept"
    with pytest.raises(openai.APIError):
        ask(gateway, name)

    r = http.patch(f"/model/{model_id}/update", json={"litellm_params": {"api_base": f"{mock.url}/v1"}})
    assert r.status_code == 200, r.text
    assert ask(gateway, name).choices

    renamed = uid("renamed")
    assert http.patch(f"/model/{model_id}/update", json={"model_name": renamed}).status_code == 200
    assert ask(gateway, renamed).choices
    with pytest.raises(openai.BadRequestError):
        ask(gateway, name)
    actions = [a["action"] for a in http.get("/audit", params={"object_type": "model", "object_id": model_id}).json()]
    assert actions == ["updated", "updated", "updated", "created"]


def test_delete_stops_serving(gateway, mock, http):
    name = uid("del")
    model_id = add(http, mock, name)["model_id"]
    assert ask(gateway, name).choices
    r = http.post("/model/delete", json={"id": model_id})
    assert r.status_code == 200, r.text
    assert model_id in r.json()["message"]
    with pytest.raises(openai.BadRequestError):
        ask(gateway, name)
    assert http.get("/model/info", params={"litellm_model_id": model_id}).status_code == 404
    assert http.post("/model/delete", json={"id": model_id}).status_code == 404


def test_config_models_are_changed_in_the_config_only(gateway, http):
    config_id = [m for m in http.get("/model/info").json()["data"] if m["model_name"] == "gpt-mock"][0]["model_info"]["id"]
    for r in (
        http.post("/model/delete", json={"id": config_id}),
        http.post("/model/update", json={"model_info": {"id": config_id}, "litellm_params": {"api_base": "http://x"}}),
    ):
        assert r.status_code == 400, r.text
        assert "config file" in r.json()["error"]["message"]
    dup = http.post(
        "/model/new",
        json={"model_name": "x", "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": "http://127.0.0.1:9/v1"}, "model_info": {"id": config_id}},
    )
    assert dup.status_code == 400 and "already exists" in dup.json()["error"]["message"]


@pytest.mark.parametrize(
    "body,param",
    [
        ({"litellm_params": {"model": "openai/gpt-4o"}}, "model_name"),
        ({"model_name": "x"}, "litellm_params"),
        ({"model_name": "x", "litellm_params": "openai/gpt-4o"}, "litellm_params"),
        ({"model_name": "x", "litellm_params": {"model": "nosuchprovider/m"}}, "litellm_params"),
        ({"model_name": "x", "litellm_params": {"model": "azure/d", "api_base": "https://a.example"}}, "litellm_params"),
        ({"model_name": "x", "litellm_params": {"model": "openai/m", "api_base": "ftp://a"}}, "litellm_params"),
        ({"model_name": "x", "litellm_params": {"model": "openai/m", "timeout": -1}}, "litellm_params"),
        ({"model_name": "x", "litellm_params": {"model": "openai/m"}, "colour": "red"}, "colour"),
    ],
)
def test_bad_models_are_refused_with_the_field(http, body, param):
    r = http.post("/model/new", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param, err
    assert err["message"]


def test_update_and_delete_name_the_model(http):
    assert http.post("/model/update", json={"litellm_params": {}}).status_code == 400
    r = http.post("/model/update", json={"model_info": {"id": "nope"}})
    assert r.status_code == 404 and r.json()["error"]["message"]
    assert http.post("/model/delete", json={}).status_code == 400
