"""The management API behind the console's Budgets, Models and Prompts pages:
/spend/budgets (every budget in one list, fullest first, scoped), /health
for one deployment (timed), and a prompt's variables and render preview."""

import uuid

import httpx
import openai

from conftest import MASTER_KEY, free_port, wait_until


def admin(url):
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=60)


def as_key(url, key):
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def test_budgets_are_listed_fullest_first_and_scoped(gateway):
    tag = uuid.uuid4().hex[:8]
    with admin(gateway.url) as a:
        team = a.post("/team/new", json={"team_alias": f"bud-team-{tag}", "max_budget": 100, "budget_duration": "30d"}).json()
        user = a.post("/user/new", json={"user_email": f"bud-{tag}@example.com", "max_budget": 50, "user_role": "internal_user"}).json()
        full = a.post("/key/generate", json={"key_alias": f"bud-full-{tag}", "max_budget": 0.000001, "user_id": user["user_id"]}).json()
        a.post("/key/generate", json={"key_alias": f"bud-free-{tag}"})
        a.post("/key/generate", json={"key_alias": f"bud-soft-{tag}", "soft_budget": 5, "user_id": user["user_id"]})
        openai.OpenAI(base_url=gateway.url + "/v1", api_key=full["key"], max_retries=0).chat.completions.create(
            model="gpt-mock", messages=[{"role": "user", "content": "spend a little"}]
        )

        def spent():
            rows = a.get("/spend/budgets", params={"search": f"bud-full-{tag}"}).json()["budgets"]
            return rows and rows[0]["spend"] > 0

        assert wait_until(spent, timeout=15)
        r = a.get("/spend/budgets", params={"search": tag})
        assert r.status_code == 200, r.text
        body = r.json()
        names = [b["name"] for b in body["budgets"]]
        # A key without a budget has no row; the rest come fullest first.
        assert f"bud-free-{tag}" not in names
        assert names[0] == f"bud-full-{tag}" and body["budgets"][0]["used"] >= 1
        assert set(names) == {f"bud-full-{tag}", f"bud-soft-{tag}", f"bud-team-{tag}", f"bud-{tag}@example.com"}
        assert body["total"] == 4 and body["total_pages"] == 1
        kinds = {b["name"]: b for b in body["budgets"]}
        t = kinds[f"bud-team-{tag}"]
        assert t["kind"] == "team" and t["max_budget"] == 100 and t["budget_duration"] == "30d" and t["budget_reset_at"]
        s = kinds[f"bud-soft-{tag}"]
        assert s["max_budget"] is None and s["soft_budget"] == 5
        # The secret is never listed, only the token.
        assert all(b["id"] != full["key"] for b in body["budgets"])

        only_teams = a.get("/spend/budgets", params={"search": tag, "kind": "team"}).json()["budgets"]
        assert [b["kind"] for b in only_teams] == ["team"]
        paged = a.get("/spend/budgets", params={"search": tag, "page": 2, "page_size": 3}).json()
        assert len(paged["budgets"]) == 1 and paged["total_pages"] == 2

        bad = a.get("/spend/budgets", params={"kind": "teams"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "kind"

        # The user sees their own budget and keys, not the team's or others'.
        own = a.post("/key/generate", json={"user_id": user["user_id"]}).json()["key"]
    with as_key(gateway.url, own) as u:
        mine = u.get("/spend/budgets", params={"search": tag}).json()["budgets"]
        assert {b["kind"] for b in mine} == {"user", "key"}
        assert f"bud-team-{tag}" not in [b["name"] for b in mine]
        # The dashboard's budgets are the same list's first rows (hard limits only).
        act = u.get("/spend/activity", params={"period": "hour"}).json()
        assert act["budgets"][0]["name"] == f"bud-full-{tag}"


def test_one_deployment_is_checked_now_and_timed(gateway):
    with admin(gateway.url) as a:
        info = a.get("/model/info").json()["data"]
        dep = next(d for d in info if d["model_name"] == "gpt-mock")["model_info"]["id"]
        r = a.get("/health", params={"model_id": dep})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["healthy_count"] == 1 and body["unhealthy_count"] == 0
        assert body["healthy_endpoints"][0]["model_id"] == dep
        assert body["healthy_endpoints"][0]["latency_ms"] > 0

        # A stored deployment nobody listens for fails, with its reason and its time.
        name = f"down-{uuid.uuid4().hex[:6]}"
        made = a.post(
            "/model/new",
            json={"model_name": name, "litellm_params": {"model": "openai/gpt-4o", "api_base": f"http://127.0.0.1:{free_port()}/v1", "api_key": "sk-x"}},
        )
        assert made.status_code == 200, made.text
        mid = made.json()["model_id"]
        try:
            down = a.get("/health", params={"model": name}).json()
            assert down["healthy_count"] == 0 and down["unhealthy_count"] == 1
            e = down["unhealthy_endpoints"][0]
            assert e["model_id"] == mid and e["error"] and e["latency_ms"] >= 0
            assert "sk-x" not in str(down)
        finally:
            a.post("/model/delete", json={"id": mid})

        missing = a.get("/health", params={"model_id": "no-such-deployment"})
        assert missing.status_code == 400 and missing.json()["error"]["param"] == "model_id"
        user_key = a.post("/key/generate", json={}).json()["key"]
    with as_key(gateway.url, user_key) as u:
        assert u.get("/health", params={"model_id": dep}).status_code == 403


def test_a_prompt_preview_renders_what_a_call_would_send(gateway):
    with admin(gateway.url) as a:
        made = a.post(
            "/prompts",
            json={
                "name": f"preview-{uuid.uuid4().hex[:6]}",
                "model": "gpt-mock",
                "template": [
                    {"role": "system", "content": "You know {{topic}}."},
                    {"role": "user", "content": "Say {{ topic }} in {{count}} words"},
                ],
            },
        ).json()
        pid = made["id"]
        try:
            assert made["variables"] == ["topic", "count"]
            r = a.post(f"/prompts/{pid}/render", json={"promptVariables": {"topic": {"text": "tea"}}})
            assert r.status_code == 200, r.text
            out = r.json()
            assert out["missing"] == ["count"] and out["version"] == 1 and out["model"] == "gpt-mock"
            assert out["messages"] == [
                {"role": "system", "content": "You know tea."},
                {"role": "user", "content": "Say tea in {{count}} words"},
            ]
            # The same text reaches the model when the prompt is called.
            v2 = a.post(f"/prompts/{pid}/versions", json={"template": "Only {{word}}"}).json()
            assert v2["version"] == 2 and v2["variables"] == ["word"]
            old = a.post(f"/prompts/{pid}/render", json={"version": 1, "variables": {"topic": "x", "count": 3}}).json()
            assert old["missing"] == [] and old["messages"][1]["content"] == "Say x in 3 words"
            latest = a.post(f"/prompts/{pid}/render", json={}).json()
            assert latest["version"] == 2 and latest["missing"] == ["word"]

            bad = a.post(f"/prompts/{pid}/render", json={"version": 9})
            assert bad.status_code == 404
            bad = a.post(f"/prompts/{pid}/render", json={"promptVariables": ["x"]})
            assert bad.status_code == 400 and bad.json()["error"]["param"] == "promptVariables"
            bad = a.post(f"/prompts/{pid}/render", json={"vars": {}})
            assert bad.status_code == 400 and bad.json()["error"]["param"] == "vars"

            # The list pages when asked, and finds by name.
            listed = a.get("/prompts", params={"search": made["name"], "page": 1, "page_size": 5}).json()
            assert listed["total"] == 1 and listed["prompts"][0]["versions"] == 2
            assert "total" in a.get("/prompts").json()
        finally:
            a.delete(f"/prompts/{pid}")


def test_teams_are_listed_a_page_at_a_time_by_alias(gateway):
    tag = uuid.uuid4().hex[:8]
    with admin(gateway.url) as a:
        made = [a.post("/team/new", json={"team_alias": f"pg-{tag}-{c}"}).json()["team_id"] for c in "cab"]
        r = a.get("/v2/team/list", params={"team_alias": f"PG-{tag}", "page_size": 2})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["total"] == 3 and body["total_pages"] == 2 and body["page_size"] == 2
        assert [t["team_alias"] for t in body["teams"]] == [f"pg-{tag}-a", f"pg-{tag}-b"]
        last = a.get("/v2/team/list", params={"team_alias": f"pg-{tag}", "page_size": 2, "page": 2}).json()
        assert [t["team_alias"] for t in last["teams"]] == [f"pg-{tag}-c"]
        # A user sees only the teams they are in.
        user = a.post("/user/new", json={"user_role": "internal_user"}).json()
        a.post("/team/member_add", json={"team_id": made[0], "member": {"user_id": user["user_id"], "role": "user"}})
    with as_key(gateway.url, user["key"]) as u:
        mine = u.get("/v2/team/list", params={"team_alias": f"pg-{tag}"}).json()
        assert [t["team_id"] for t in mine["teams"]] == [made[0]]
