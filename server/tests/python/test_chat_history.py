"""Chat history by session, as the deployment guide uses it: `enable_history`
starts a session, `session_id` continues it, through the OpenAI SDK (plain and
streamed) and boto3's Converse; stored turns are sent before the new ones and
kept inside the model's context window; sessions are read back in OpenAI and
Converse formats, listed, deleted, and private to their key and its user."""

import httpx
import openai
import pytest

from conftest import MASTER_KEY
from test_bedrock_api import client as bedrock_client


def sdk(gateway, key=MASTER_KEY):
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=30)


def ask(c, text, model="gpt-mock", **extra):
    return c.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], extra_body=extra)


def api(gateway, key=MASTER_KEY):
    return httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_a_session_carries_the_conversation(gateway, http, mock_ctl):
    key = http.post("/key/generate", json={}).json()["key"]
    c = sdk(gateway, key)
    first = ask(c, "my name is Ada", enable_history=True)
    sid = first.model_extra["session_id"]
    assert sid and first.model_extra["history_turns"] == 0
    second = ask(c, "what is my name", session_id=sid)
    assert second.model_extra["session_id"] == sid and second.model_extra["history_turns"] == 2
    sent = mock_ctl.get("/__mock/requests").json()[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"] == "my name is Ada" and "my name is Ada" in sent[1]["content"]

    with api(gateway, key) as h:
        hist = h.post("/chat-history", json={"session_id": sid}).json()
        assert [m["role"] for m in hist["messages"]] == ["user", "assistant", "user", "assistant"]
        assert hist["messages"][3]["content"] == second.choices[0].message.content
        conv = h.post("/bedrock/chat-history", json={"session_id": sid}).json()["messages"]
        assert conv[0] == {"role": "user", "content": [{"text": "my name is Ada"}]}
        assert [m["role"] for m in conv] == ["user", "assistant", "user", "assistant"]


def test_streamed_answers_are_stored_and_announce_the_session(gateway, http):
    key = http.post("/key/generate", json={}).json()["key"]
    c = sdk(gateway, key)
    stream = c.chat.completions.create(
        model="claude-mock", messages=[{"role": "user", "content": "remember blue"}], stream=True, extra_body={"enable_history": True}
    )
    chunks = list(stream)
    sid = getattr(chunks[0], "session_id", None)
    assert sid
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    again = list(
        c.chat.completions.create(
            model="claude-mock", messages=[{"role": "user", "content": "which colour"}], stream=True, extra_body={"session_id": sid}
        )
    )
    assert getattr(again[0], "session_id", None) == sid
    with api(gateway, key) as h:
        msgs = h.post("/chat-history", json={"session_id": sid}).json()["messages"]
    assert [m["content"] for m in msgs[:2]] == ["remember blue", text]
    assert len(msgs) == 4


def test_bedrock_sessions_use_the_header(gateway, http):
    key = http.post("/key/generate", json={}).json()["key"]
    b = bedrock_client(gateway, key)
    r = b.converse(
        modelId="bedrock-mock",
        messages=[{"role": "user", "content": [{"text": "first turn"}]}],
        additionalModelRequestFields={"enable_history": True},
    )
    sid = r["ResponseMetadata"]["HTTPHeaders"]["x-session-id"]
    r2 = b.converse_stream(
        modelId="gpt-mock",
        messages=[{"role": "user", "content": [{"text": "second turn"}]}],
        additionalModelRequestFields={"session_id": sid},
    )
    assert r2["ResponseMetadata"]["HTTPHeaders"]["x-session-id"] == sid
    list(r2["stream"])
    with api(gateway, key) as h:
        msgs = h.post("/bedrock/chat-history", json={"session_id": sid}).json()["messages"]
        assert len(msgs) == 4 and msgs[2]["content"] == [{"text": "second turn"}]
        listed = h.post("/session-ids", json={}).json()["session_ids"]
        assert listed[0] == sid


def test_sessions_are_private_to_their_key_and_user(gateway, http):
    owner = http.post("/user/new", json={"user_role": "internal_user"}).json()
    other = http.post("/key/generate", json={}).json()["key"]
    sid = ask(sdk(gateway, owner["key"]), "secret plan", enable_history=True).model_extra["session_id"]
    # A second key of the same user continues it.
    second_key = http.post("/key/generate", json={"user_id": owner["user_id"]}).json()["key"]
    assert ask(sdk(gateway, second_key), "go on", session_id=sid).model_extra["session_id"] == sid
    with pytest.raises(openai.NotFoundError):
        ask(sdk(gateway, other), "let me in", session_id=sid)
    with api(gateway, other) as h:
        assert h.post("/chat-history", json={"session_id": sid}).status_code == 404
        assert sid not in h.post("/session-ids", json={}).json()["session_ids"]
        assert h.post("/chat-history/delete", json={"session_id": sid}).status_code == 404
    # Admins read every session.
    assert http.post("/chat-history", json={"session_id": sid}).status_code == 200
    with pytest.raises(openai.NotFoundError):
        ask(sdk(gateway), "x", session_id="no-such-session")


def test_long_histories_are_trimmed_to_the_context_window(gateway):
    c = sdk(gateway)
    words = " ".join(["history"] * 30)
    sid = ask(c, words, model="tiny-context", enable_history=True).model_extra["session_id"]
    turns = []
    for _ in range(3):
        r = ask(c, words, model="tiny-context", session_id=sid)
        turns.append(r.model_extra["history_turns"])
    # Each exchange adds two stored messages; the window keeps only the newest.
    assert turns[-1] < 6 and turns[-1] % 2 == 0, turns
    with api(gateway) as h:
        assert len(h.post("/chat-history", json={"session_id": sid}).json()["messages"]) == 8


def test_deleting_a_session(gateway, http):
    key = http.post("/key/generate", json={}).json()["key"]
    sid = ask(sdk(gateway, key), "short lived", enable_history=True).model_extra["session_id"]
    with api(gateway, key) as h:
        assert h.delete(f"/chat-history/{sid}").json() == {"deleted": sid}
        assert h.post("/chat-history", json={"session_id": sid}).status_code == 404
    with pytest.raises(openai.NotFoundError):
        ask(sdk(gateway, key), "again", session_id=sid)


def test_bad_history_fields_are_refused(gateway):
    c = sdk(gateway)
    with pytest.raises(openai.BadRequestError):
        ask(c, "x", enable_history="yes")
    with pytest.raises(openai.BadRequestError):
        ask(c, "x", session_id=5)


def test_sessions_are_titled_by_their_first_question_and_can_be_renamed(gateway, http):
    key = http.post("/key/generate", json={}).json()["key"]
    other = http.post("/key/generate", json={}).json()["key"]
    c = sdk(gateway, key)
    long_question = "Please   explain\nthe difference between " + "very " * 30 + "long words"
    sid = ask(c, long_question, enable_history=True).model_extra["session_id"]
    ask(c, "and a follow-up", session_id=sid)
    with api(gateway, key) as a:
        listed = {s["session_id"]: s for s in a.post("/session-ids").json()["sessions"]}
        title = listed[sid]["title"]
        # One line, at most 80 characters, cut with an ellipsis.
        assert title.startswith("Please explain the difference between very") and "\n" not in title
        assert len(title) == 80 and title.endswith("…")
        assert a.post("/chat-history", json={"session_id": sid}).json()["title"] == title

        r = a.post("/chat-history/rename", json={"session_id": sid, "title": "  Ada's   questions "})
        assert r.status_code == 200 and r.json()["title"] == "Ada's questions"
        assert {s["session_id"]: s for s in a.post("/session-ids").json()["sessions"]}[sid]["title"] == "Ada's questions"
        for bad, param in [({"session_id": sid, "title": "   "}, "title"), ({"session_id": sid, "title": "x" * 81}, "title"), ({"title": "t"}, "session_id")]:
            r = a.post("/chat-history/rename", json=bad)
            assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    # Someone else's session does not exist for them.
    with api(gateway, other) as o:
        r = o.post("/chat-history/rename", json={"session_id": sid, "title": "mine now"})
        assert r.status_code == 404
