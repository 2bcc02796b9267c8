"""Request logs are written off the request path in batches, and whatever is
still queued is flushed when Tollgate shuts down."""

import os
import sqlite3
import subprocess
import uuid

import httpx
import openai
import pytest

from conftest import MASTER_KEY, start_gateway


def rows(workdir, db_url):
    query = "SELECT request_id, model_requested, model_group, status_code, outcome, attempts, prompt_tokens, stream FROM request_logs"
    if db_url.startswith("sqlite"):
        con = sqlite3.connect(str(workdir / "tollgate.db"))
        try:
            return con.execute(query).fetchall()
        finally:
            con.close()
    out = subprocess.run(["psql", db_url, "-At", "-F", "\t", "-c", query], check=True, capture_output=True, text=True)
    parsed = []
    for line in out.stdout.splitlines():
        r = line.split("\t")
        parsed.append((r[0], r[1], r[2] or None, int(r[3]), r[4], int(r[5]), int(r[6]), r[7] == "t"))
    return parsed


def test_logs_are_flushed_on_shutdown(mock, slow_mock, tmp_path):
    db_url = os.environ.get("TOLLGATE_TEST_DATABASE_URL") or f"sqlite://{tmp_path}/tollgate.db"
    gw = start_gateway(mock.url, slow_mock.url, tmp_path)
    try:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
        marker = uuid.uuid4().hex
        ids = []
        for model in ["gpt-mock", "claude-mock", "bedrock-mock"]:
            raw = client.chat.completions.with_raw_response.create(
                model=model, messages=[{"role": "user", "content": f"log me {marker}"}]
            )
            ids.append(raw.headers["x-request-id"])
        stream = client.chat.completions.with_raw_response.create(
            model="gpt-mock", messages=[{"role": "user", "content": "streamed"}], stream=True
        )
        ids.append(stream.headers["x-request-id"])
        for _ in stream.parse():
            pass
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="missing-model", messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.with_raw_response.create(
                model="always-429", messages=[{"role": "user", "content": "x"}]
            )
        # A client that walks away mid-stream.
        with httpx.Client(base_url=gw.url, timeout=30) as c:
            body = {"model": "slow-stream", "messages": [{"role": "user", "content": "a b c d e f g h"}], "stream": True}
            with c.stream("POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {MASTER_KEY}"}) as r:
                dropped_id = r.headers["x-request-id"]
                next(r.iter_lines())
    finally:
        assert gw.stop() == 0, gw.stderr()
    logged = {r[0]: r for r in rows(tmp_path, db_url)}
    for rid in ids:
        assert rid in logged, f"request {rid} was not logged"
        assert logged[rid][3] == 200 and logged[rid][4] == "success"
        assert logged[rid][6] > 0, "prompt tokens recorded"
    assert logged[ids[3]][7] in (1, True), "stream flag"
    by_model = {r[1]: r for r in logged.values()}
    assert by_model["missing-model"][3] == 400 and by_model["missing-model"][4] == "error"
    assert by_model["always-429"][3] == 429 and by_model["always-429"][5] == 2
    assert logged[dropped_id][4] == "client_disconnected"
