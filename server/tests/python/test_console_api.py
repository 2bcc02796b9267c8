"""What the console's pages read: /spend/activity (the dashboard, from the
hourly rollup) and /spend/logs paged with a cursor and filtered by status.
Both are plain management API, scoped like the rest: a user sees their own."""

import time
import uuid

import httpx
import openai
import pytest

from conftest import MASTER_KEY, wait_until


def admin(url):
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30)


def new_key(url, **body):
    with admin(url) as a:
        r = a.post("/key/generate", json=body)
        assert r.status_code == 200, r.text
        return r.json()


def chat(url, key, model="gpt-mock", content="hello"):
    client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}])


def test_activity_sums_what_the_logs_hold(gateway):
    alias = f"dash-{uuid.uuid4().hex[:8]}"
    made = new_key(gateway.url, key_alias=alias)
    key, token = made["key"], made["token"]
    for i in range(4):
        chat(gateway.url, key, content=f"activity {i}")
    with pytest.raises(openai.BadRequestError):
        chat(gateway.url, key, model="no-such-model")
    with admin(gateway.url) as a:
        assert wait_until(lambda: len(a.get("/spend/logs", params={"api_key": token}).json()) == 5, timeout=10)
        logs = a.get("/spend/logs", params={"api_key": token}).json()
        spent = sum(r["spend"] for r in logs)
        assert spent > 0

        r = a.get("/spend/activity", params={"period": "hour", "api_key": key})
        assert r.status_code == 200, r.text
        act = r.json()
        t = act["totals"]
        assert t["requests"] == 5 and t["errors"] == 1
        assert t["error_rate"] == pytest.approx(0.2)
        assert t["spend"] == pytest.approx(spent)
        assert t["tokens"] == sum(r["total_tokens"] for r in logs)
        assert t["p50_ms"] is not None and t["p95_ms"] >= t["p50_ms"]
        # One bucket per hour of the last day, in order, the requests in the last ones.
        starts = [p["start"] for p in act["series"]]
        assert starts == sorted(starts) and 24 <= len(starts) <= 26
        assert sum(p["requests"] for p in act["series"]) == 5
        # The breakdowns name keys by alias; a failed call's model is counted too.
        keys = act["breakdowns"]["api_key"]
        assert keys[0]["name"] == alias and keys[0]["requests"] == 5
        models = {m["name"]: m["requests"] for m in act["breakdowns"]["model"]}
        assert models == {"gpt-mock": 4, "no-such-model": 1}

        # By day and by month, the same totals.
        for period in ["day", "month"]:
            t2 = a.get("/spend/activity", params={"period": period, "api_key": token}).json()["totals"]
            assert t2["requests"] == 5 and t2["spend"] == pytest.approx(spent)

        # Bad input is named.
        r = a.get("/spend/activity", params={"period": "week"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "period"
        r = a.get("/spend/activity", params={"period": "hour", "start_date": "2020-01-01", "end_date": "2026-01-01"})
        assert r.status_code == 400 and "buckets" in r.json()["error"]["message"]


def test_activity_and_logs_are_scoped_to_the_caller(gateway):
    with admin(gateway.url) as a:
        user = a.post("/user/new", json={"user_role": "internal_user", "max_budget": 3, "auto_create_key": False}).json()
        uid = user["user_id"]
        mine = a.post("/key/generate", json={"user_id": uid, "key_alias": f"mine-{uid[:6]}"}).json()
    other = new_key(gateway.url)
    chat(gateway.url, mine["key"])
    chat(gateway.url, other["key"])
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {mine['key']}"}, timeout=30) as u:
        assert wait_until(lambda: u.get("/spend/activity").json()["totals"]["requests"] == 1, timeout=10)
        act = u.get("/spend/activity").json()
        assert [k["name"] for k in act["breakdowns"]["api_key"]] == [f"mine-{uid[:6]}"]
        # Budgets: only what is theirs.
        assert {(b["kind"], b["id"]) for b in act["budgets"]} == {("user", uid)}
        r = u.get("/spend/activity", params={"user_id": "someone-else"})
        assert r.status_code == 403
        assert all(row["user"] == uid for row in u.get("/spend/logs").json())


def test_logs_page_through_a_cursor_and_filter_by_status(gateway):
    made = new_key(gateway.url)
    key, token = made["key"], made["token"]
    for i in range(5):
        chat(gateway.url, key, content=f"page {i}")
        time.sleep(0.005)
    with pytest.raises(openai.BadRequestError):
        chat(gateway.url, key, model="no-such-model")
    with admin(gateway.url) as a:
        assert wait_until(lambda: len(a.get("/spend/logs", params={"api_key": token}).json()) == 6, timeout=10)
        everything = a.get("/spend/logs", params={"api_key": token}).json()
        seen, after = [], None
        while True:
            params = {"api_key": token, "limit": 2}
            if after:
                params["after"] = after
            page = a.get("/spend/logs", params=params).json()
            if not page:
                break
            seen += [r["request_id"] for r in page]
            after = page[-1]["cursor"]
        assert seen == [r["request_id"] for r in everything]
        assert len(set(seen)) == 6
        # Back up from the oldest row: the nearest newer rows, newest first,
        # meeting the forward pages exactly.
        ids = [r["request_id"] for r in everything]
        back, before = [], everything[-1]["cursor"]
        while True:
            page = a.get("/spend/logs", params={"api_key": token, "limit": 2, "before": before}).json()
            if not page:
                break
            assert [r["request_id"] for r in page] == ids[len(ids) - 1 - len(back) - len(page) : len(ids) - 1 - len(back)]
            back = [r["request_id"] for r in page] + back
            before = page[0]["cursor"]
        assert back == ids[:-1]
        r = a.get("/spend/logs", params={"before": everything[0]["cursor"], "after": everything[-1]["cursor"]})
        assert r.status_code == 400 and r.json()["error"]["param"] == "before"
        r = a.get("/spend/logs", params={"before": "later"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "before"
        failed = a.get("/spend/logs", params={"api_key": token, "status": "failure"}).json()
        assert [r["model"] for r in failed] == ["no-such-model"]
        assert failed[0]["error"] and failed[0]["attempts"] >= 0
        ok = a.get("/spend/logs", params={"api_key": token, "status": "200"}).json()
        assert len(ok) == 5 and all(r["request_duration_ms"] >= 0 for r in ok)
        r = a.get("/spend/logs", params={"status": "fine"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "status"
        r = a.get("/spend/logs", params={"after": "yesterday"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "after"


def test_key_list_search_matches_part_of_an_alias(gateway):
    tag = uuid.uuid4().hex[:10]
    new_key(gateway.url, key_alias=f"Search-{tag}-one")
    new_key(gateway.url, key_alias=f"search-{tag}-two")
    with admin(gateway.url) as a:
        found = a.get("/key/list", params={"search": f"SEARCH-{tag}", "return_full_object": "true"}).json()
        assert sorted(k["key_alias"] for k in found["keys"]) == [f"Search-{tag}-one", f"search-{tag}-two"]
        assert found["total_count"] == 2


def test_keys_and_logs_name_their_owner_by_email(gateway):
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    with admin(gateway.url) as a:
        uid = a.post("/user/new", json={"user_email": email, "auto_create_key": False}).json()["user_id"]
        made = a.post("/key/generate", json={"user_id": uid}).json()
        bare = a.post("/key/generate", json={"key_alias": f"bare-{uid}"}).json()
        chat(gateway.url, made["key"])
        listed = a.get("/key/list", params={"user_id": uid, "return_full_object": "true"}).json()["keys"]
        assert [(k["user_id"], k["user_email"]) for k in listed] == [(uid, email)]
        # The owner's email finds the key too.
        found = a.get("/key/list", params={"search": email.upper(), "return_full_object": "true"}).json()
        assert [k["token"] for k in found["keys"]] == [made["token"]]
        (ownerless,) = a.get("/key/list", params={"key_alias": f"bare-{uid}", "return_full_object": "true"}).json()["keys"]
        assert ownerless["token"] == bare["token"] and "user_email" not in ownerless
        assert wait_until(lambda: len(a.get("/spend/logs", params={"api_key": made["token"]}).json()) == 1, timeout=10)
        (row,) = a.get("/spend/logs", params={"api_key": made["token"]}).json()
        assert (row["user"], row["user_email"]) == (uid, email)
