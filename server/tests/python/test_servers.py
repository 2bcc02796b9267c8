"""Named upstream servers (`servers:`): `/{server}/v1/chat/completions` and
`/{server}/v1/embeddings` take the caller's Tollgate key, send the server's
own token and the model name as asked, stream back, and count spend."""

import httpx
import openai
import pytest

from conftest import MASTER_KEY, wait_until


def server_sdk(gateway, key=MASTER_KEY, server="vllm-a"):
    return openai.OpenAI(base_url=f"{gateway.url}/{server}/v1", api_key=key, max_retries=0, timeout=30)


def test_chat_reaches_the_server_with_its_token(gateway, http, mock_ctl):
    g = http.post("/key/generate", json={}).json()
    c = server_sdk(gateway, g["key"])
    r = c.chat.completions.create(model="llama-3-8b", messages=[{"role": "user", "content": "to the server"}])
    assert "to the server" in r.choices[0].message.content
    sent = mock_ctl.get("/__mock/requests").json()[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["model"] == "llama-3-8b"
    assert sent["headers"]["authorization"] == "Bearer sk-server-token-XYZ"
    assert g["key"] not in str(sent["headers"])
    chunks = list(c.chat.completions.create(model="llama-3-8b", messages=[{"role": "user", "content": "streamed"}], stream=True))
    assert "streamed" in "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)

    def logged():
        rows = http.get("/spend/logs", params={"api_key": g["key"]}).json()
        return rows if len(rows) == 2 else None

    assert wait_until(logged)
    assert {row["model_group"] for row in logged()} == {"server:vllm-a"}


def test_default_model_and_embeddings(gateway, mock_ctl):
    r = httpx.post(
        f"{gateway.url}/vllm-a/v1/chat/completions",
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
        json={"model": "", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200, r.text
    assert mock_ctl.get("/__mock/requests").json()[-1]["body"]["model"] == "served-default"
    e = server_sdk(gateway).embeddings.create(model="embed-small", input=["a", "b"])
    assert len(e.data) == 2
    assert mock_ctl.get("/__mock/requests").json()[-1]["body"]["model"] == "embed-small"


def test_unknown_servers_and_keys_are_refused(gateway):
    with pytest.raises(openai.NotFoundError):
        server_sdk(gateway, server="nope").chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.AuthenticationError):
        server_sdk(gateway, key="sk-wrong").chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
