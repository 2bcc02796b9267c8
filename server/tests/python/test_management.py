"""LiteLLM's management API, driven as LiteLLM users' scripts drive it: keys,
users, teams, spend, and what the keys they make may do on /v1."""

import time
import uuid

import httpx
import openai
import pytest

from conftest import MASTER_KEY, wait_until


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def as_key(gateway, key: str) -> httpx.Client:
    return httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def sdk(gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=30)


def chat(gateway, key: str, model: str = "gpt-mock"):
    return sdk(gateway, key).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello there"}]
    )


def new_user(http, role="internal_user", **fields):
    r = http.post("/user/new", json={"user_id": uid("u"), "user_role": role, **fields})
    assert r.status_code == 200, r.text
    return r.json()


# ---- keys ----------------------------------------------------------------


def test_generate_returns_a_working_key_once_and_stores_only_its_hash(gateway, http):
    r = http.post("/key/generate", json={"key_alias": uid("alias"), "metadata": {"app": "t"}})
    assert r.status_code == 200, r.text
    body = r.json()
    key = body["key"]
    assert key.startswith("sk-") and len(key) >= 43  # 256 bits, base64url
    assert body["key_name"] == "sk-..." + key[-4:]
    assert body["token"] == body["token_id"] and len(body["token"]) == 64
    assert body["metadata"] == {"app": "t"}
    assert chat(gateway, key).choices[0].message.content.startswith("Mock reply")
    info = http.get("/key/info", params={"key": key}).json()
    assert info["info"]["token"] == body["token"]
    assert "key" not in info["info"]  # the secret is never shown again
    db = gateway.workdir / "tollgate.db"
    if db.exists():
        assert key.encode() not in db.read_bytes()


def test_key_list_paginates_and_filters(gateway, http):
    user = new_user(http, auto_create_key=False)
    tokens = []
    for _ in range(3):
        r = http.post("/key/generate", json={"user_id": user["user_id"]})
        tokens.append(r.json()["token"])
    page1 = http.get("/key/list", params={"user_id": user["user_id"], "size": 2, "page": 1}).json()
    page2 = http.get("/key/list", params={"user_id": user["user_id"], "size": 2, "page": 2}).json()
    assert page1["total_count"] == 3 and page1["total_pages"] == 2 and page1["current_page"] == 1
    assert len(page1["keys"]) == 2 and len(page2["keys"]) == 1
    assert sorted(page1["keys"] + page2["keys"]) == sorted(tokens)
    full = http.get("/key/list", params={"user_id": user["user_id"], "return_full_object": "true"}).json()
    assert all(k["user_id"] == user["user_id"] for k in full["keys"])


def test_blocked_expired_and_deleted_keys_are_refused(gateway, http):
    key = http.post("/key/generate", json={}).json()["key"]
    assert http.post("/key/block", json={"key": key}).json()["blocked"] is True
    with pytest.raises(openai.AuthenticationError) as e:
        chat(gateway, key)
    assert "blocked" in str(e.value)
    assert http.post("/key/unblock", json={"key": key}).json()["blocked"] is False
    chat(gateway, key)

    short = http.post("/key/generate", json={"duration": "1s"}).json()
    assert short["expires"] is not None
    time.sleep(1.2)
    with pytest.raises(openai.AuthenticationError) as e:
        chat(gateway, short["key"])
    assert "expired" in str(e.value)

    alias = uid("gone")
    k2 = http.post("/key/generate", json={"key_alias": alias}).json()["key"]
    r = http.post("/key/delete", json={"keys": [key], "key_aliases": [alias]})
    assert r.status_code == 200 and sorted(r.json()["deleted_keys"]) == sorted([key, alias])
    for k in (key, k2):
        with pytest.raises(openai.AuthenticationError):
            chat(gateway, k)


def test_update_and_regenerate_keep_the_record(gateway, http):
    g = http.post("/key/generate", json={"models": ["demo"]}).json()
    with pytest.raises(openai.PermissionDeniedError):
        chat(gateway, g["key"], "gpt-mock")
    r = http.post("/key/update", json={"key": g["key"], "models": ["gpt-mock"], "tpm_limit": 1000})
    assert r.status_code == 200, r.text
    assert r.json()["models"] == ["gpt-mock"] and r.json()["tpm_limit"] == 1000
    chat(gateway, g["key"], "gpt-mock")
    new = http.post(f"/key/{g['key']}/regenerate", json={}).json()
    assert new["key"] != g["key"] and new["models"] == ["gpt-mock"]
    with pytest.raises(openai.AuthenticationError):
        chat(gateway, g["key"])
    chat(gateway, new["key"])


def test_bad_inputs_get_openai_shaped_errors(gateway, http):
    for body, param in [
        ({"max_budget": "lots"}, "max_budget"),
        ({"duration": "forever"}, "duration"),
        ({"budget_duration": "3x"}, "budget_duration"),
        ({"user_id": "nobody-" + uid("x")}, "user_id"),
        ({"key_type": "superuser"}, "key_type"),
    ]:
        r = http.post("/key/generate", json=body)
        assert r.status_code == 400, (body, r.text)
        err = r.json()["error"]
        assert err["param"] == param and err["message"], err
    alias = uid("dup")
    assert http.post("/key/generate", json={"key_alias": alias}).status_code == 200
    r = http.post("/key/generate", json={"key_alias": alias})
    assert r.status_code == 400 and "key_alias" in r.json()["error"]["message"]
    r = http.post("/key/generate", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    assert http.get("/key/info", params={"key": "sk-unknown-" + uid("k")}).status_code == 404


def test_model_access_lists_groups_and_wildcards(gateway, http):
    k = http.post("/key/generate", json={"models": ["beta-models"]}).json()["key"]
    ids = [m.id for m in sdk(gateway, k).models.list().data]
    assert ids == ["priced-mock"]
    chat(gateway, k, "priced-mock")
    with pytest.raises(openai.PermissionDeniedError) as e:
        chat(gateway, k, "gpt-mock")
    assert "gpt-mock" in str(e.value)
    everything = http.post("/key/generate", json={"models": ["all-proxy-models"]}).json()["key"]
    assert len(sdk(gateway, everything).models.list().data) > 5
    aliased = http.post("/key/generate", json={"aliases": {"my-model": "demo"}}).json()["key"]
    out = chat(gateway, aliased, "my-model")
    assert out.choices[0].message.content


def test_key_types_limit_what_a_key_does(gateway, http):
    llm = http.post("/key/generate", json={"key_type": "llm_api"}).json()["key"]
    chat(gateway, llm)
    with as_key(gateway, llm) as c:
        assert c.get("/key/list").status_code == 403
    mgmt = http.post("/key/generate", json={"key_type": "management"}).json()["key"]
    with pytest.raises(openai.PermissionDeniedError):
        chat(gateway, mgmt)


# ---- budgets and spend -----------------------------------------------------


def test_key_budget_is_enforced_after_spend(gateway, http):
    g = http.post("/key/generate", json={"max_budget": 0.01}).json()
    chat(gateway, g["key"], "priced-mock")  # about $0.02
    with pytest.raises(openai.BadRequestError) as e:
        chat(gateway, g["key"], "priced-mock")
    err = e.value.body
    assert e.value.status_code == 400 and err["type"] == "budget_exceeded", err
    assert g["key_name"] in err["message"]
    assert wait_until(lambda: http.get("/key/info", params={"key": g["key"]}).json()["info"]["spend"] > 0.01)


def test_user_and_team_budgets_bind_their_keys(gateway, http):
    user = new_user(http, max_budget=0.01)
    chat(gateway, user["key"], "priced-mock")
    with pytest.raises(openai.BadRequestError) as e:
        chat(gateway, user["key"], "priced-mock")
    assert user["user_id"] in e.value.body["message"]

    team = http.post("/team/new", json={"team_alias": uid("t"), "max_budget": 0.01}).json()
    tk = http.post("/key/generate", json={"team_id": team["team_id"]}).json()["key"]
    chat(gateway, tk, "priced-mock")
    with pytest.raises(openai.BadRequestError) as e:
        chat(gateway, tk, "priced-mock")
    assert team["team_id"] in e.value.body["message"]


def test_spend_is_logged_per_key_and_summarised(gateway, http):
    user = new_user(http)
    key = user["key"]
    for _ in range(3):
        chat(gateway, key, "priced-mock")

    def logged():
        rows = http.get("/spend/logs", params={"user_id": user["user_id"]}).json()
        return rows if len(rows) == 3 else None

    assert wait_until(logged)
    rows = logged()
    assert all(r["model_group"] == "priced-mock" and r["spend"] > 0 for r in rows)
    total = sum(r["spend"] for r in rows)
    info = http.get("/user/info", params={"user_id": user["user_id"]}).json()
    assert info["user_info"]["spend"] == pytest.approx(total)
    assert wait_until(
        lambda: http.get("/key/info", params={"key": key}).json()["info"]["spend"] == pytest.approx(total)
    )
    today = time.strftime("%Y-%m-%d", time.gmtime())
    summary = http.get(
        "/spend/logs", params={"user_id": user["user_id"], "start_date": today, "end_date": today}
    ).json()
    assert len(summary) == 1 and summary[0]["startTime"] == today
    assert summary[0]["spend"] == pytest.approx(total)
    assert summary[0]["models"] == {"priced-mock": pytest.approx(total)}
    g = http.get("/global/spend").json()
    assert g["spend"] >= total
    report = http.get("/global/spend/report", params={"group_by": "user", "start_date": today, "end_date": today}).json()
    users = [u for day in report for u in day["users"] if u["user_id"] == user["user_id"]]
    assert users and users[0]["total_spend"] == pytest.approx(total)


def test_bad_spend_queries_are_rejected(gateway, http):
    r = http.get("/spend/logs", params={"start_date": "yesterday"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "start_date"
    r = http.get("/global/spend/report", params={"group_by": "planet"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "group_by"


# ---- users and teams -------------------------------------------------------


def test_user_lifecycle(gateway, http):
    email = f"{uid('p')}@example.com"
    u = http.post("/user/new", json={"user_email": email, "models": ["demo"], "max_budget": 5, "budget_duration": "30d"}).json()
    assert u["user_email"] == email and u["user_role"] == "internal_user" and u["key"].startswith("sk-")
    assert u["max_budget"] == 5 and u["budget_duration"] == "30d" and u["budget_reset_at"]
    r = http.post("/user/new", json={"user_email": email.upper()})
    assert r.status_code == 400 and "user_email" in r.json()["error"]["message"]
    info = http.get("/user/info", params={"user_id": u["user_id"]}).json()
    assert info["user_id"] == u["user_id"] and len(info["keys"]) == 1
    up = http.post("/user/update", json={"user_id": u["user_id"], "user_role": "internal_user_viewer"})
    assert up.status_code == 200 and up.json()["data"]["user_role"] == "internal_user_viewer"
    listed = http.get("/user/list", params={"role": "internal_user_viewer", "page_size": 1000}).json()
    assert u["user_id"] in [x["user_id"] for x in listed["users"]]
    assert http.post("/user/delete", json={"user_ids": [u["user_id"]]}).json()["deleted_users"] == [u["user_id"]]
    with pytest.raises(openai.AuthenticationError):
        chat(gateway, u["key"], "demo")
    assert http.get("/user/info", params={"user_id": u["user_id"]}).status_code == 404


def test_user_new_without_key(gateway, http):
    u = new_user(http, auto_create_key=False)
    assert u["key"] is None
    assert http.get("/user/info", params={"user_id": u["user_id"]}).json()["keys"] == []


def test_team_lifecycle_members_and_blocking(gateway, http):
    admin = new_user(http)
    member = new_user(http)
    t = http.post(
        "/team/new",
        json={
            "team_alias": uid("team"),
            "models": ["demo"],
            "members_with_roles": [{"role": "admin", "user_id": admin["user_id"]}],
        },
    ).json()
    assert t["admins"] == [admin["user_id"]]
    r = http.post("/team/member_add", json={"team_id": t["team_id"], "member": {"role": "user", "user_id": member["user_id"]}})
    assert r.status_code == 200 and member["user_id"] in r.json()["members"]
    info = http.get("/team/info", params={"team_id": t["team_id"]}).json()
    assert {m["user_id"] for m in info["team_memberships"]} == {admin["user_id"], member["user_id"]}
    tk = http.post("/key/generate", json={"team_id": t["team_id"]}).json()["key"]
    chat(gateway, tk, "demo")
    with pytest.raises(openai.PermissionDeniedError):
        chat(gateway, tk, "gpt-mock")  # team models bind team keys
    assert http.post("/team/block", json={"team_id": t["team_id"]}).json()["blocked"] is True
    with pytest.raises(openai.AuthenticationError):
        chat(gateway, tk, "demo")
    http.post("/team/unblock", json={"team_id": t["team_id"]})
    chat(gateway, tk, "demo")
    r = http.post("/team/member_delete", json={"team_id": t["team_id"], "user_id": member["user_id"]})
    assert member["user_id"] not in r.json()["members"]
    up = http.post("/team/update", json={"team_id": t["team_id"], "max_budget": 9})
    assert up.json()["data"]["max_budget"] == 9
    assert t["team_id"] in [x["team_id"] for x in http.get("/team/list").json()]
    assert http.post("/team/delete", json={"team_ids": [t["team_id"]]}).json()["deleted_teams"] == [t["team_id"]]
    with pytest.raises(openai.AuthenticationError):
        chat(gateway, tk, "demo")  # a team's keys go with it


def test_member_add_creates_unknown_users(gateway, http):
    t = http.post("/team/new", json={}).json()
    email = f"{uid('new')}@example.com"
    r = http.post("/team/member_add", json={"team_id": t["team_id"], "member": [{"role": "user", "user_email": email}]})
    assert r.status_code == 200, r.text
    listed = http.get("/user/list", params={"user_email": email}).json()["users"]
    assert len(listed) == 1 and listed[0]["user_email"] == email


# ---- the role matrix -------------------------------------------------------

ADMIN_ONLY = [
    ("POST", "/user/new", {}),
    ("POST", "/user/update", {"user_id": "x"}),
    ("POST", "/user/delete", {"user_ids": ["x"]}),
    ("POST", "/team/new", {}),
    ("POST", "/team/update", {"team_id": "x"}),
    ("POST", "/team/delete", {"team_ids": ["x"]}),
    ("POST", "/team/block", {"team_id": "x"}),
    ("POST", "/team/unblock", {"team_id": "x"}),
    ("POST", "/model/new", {"model_name": "x", "litellm_params": {"model": "openai/m", "api_base": "http://127.0.0.1:9"}}),
    ("POST", "/model/update", {"model_info": {"id": "x"}}),
    ("PATCH", "/model/x/update", {}),
    ("POST", "/model/delete", {"id": "x"}),
]
READERS_OF_ALL = [("GET", "/user/list", None), ("GET", "/global/spend", None), ("GET", "/global/spend/report", None)]


@pytest.fixture(scope="module")
def people(gateway):
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30) as http:
        out = {}
        for role in ("proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer"):
            out[role] = new_user(http, role=role)
        out["other"] = new_user(http)
        out["service_key"] = {"key": http.post("/key/generate", json={}).json()["key"]}
        return out


def call(c: httpx.Client, method: str, path: str, body):
    return c.get(path) if method == "GET" else c.request(method, path, json=body)


@pytest.mark.parametrize("method,path,body", ADMIN_ONLY)
def test_admin_only_routes(gateway, people, method, path, body):
    for who, p in people.items():
        with as_key(gateway, p["key"]) as c:
            r = call(c, method, path, body)
            if who == "proxy_admin":
                assert r.status_code != 403, (who, path, r.text)
            else:
                assert r.status_code == 403, (who, path, r.text)
                assert r.json()["error"]["message"], r.text


@pytest.mark.parametrize("method,path,body", READERS_OF_ALL)
def test_routes_for_admins_and_viewers(gateway, people, method, path, body):
    for who, p in people.items():
        with as_key(gateway, p["key"]) as c:
            r = call(c, method, path, body)
            if who in ("proxy_admin", "proxy_admin_viewer"):
                assert r.status_code == 200, (who, path, r.text)
            else:
                assert r.status_code == 403, (who, path, r.text)


def test_internal_users_see_and_manage_only_their_own(gateway, people, http):
    me, other = people["internal_user"], people["other"]
    with as_key(gateway, me["key"]) as c:
        mine = c.post("/key/generate", json={"key_alias": uid("mine")})
        assert mine.status_code == 200 and mine.json()["user_id"] == me["user_id"]
        assert c.post("/key/generate", json={"user_id": other["user_id"]}).status_code == 403
        listed = c.get("/key/list", params={"return_full_object": "true", "size": 100}).json()["keys"]
        assert listed and all(k["user_id"] == me["user_id"] for k in listed)
        assert c.get("/key/info", params={"key": other["key"]}).status_code == 403
        assert c.post("/key/update", json={"key": other["key"], "max_budget": 1}).status_code == 403
        assert c.post("/key/delete", json={"keys": [other["key"]]}).status_code == 403
        assert c.post("/key/block", json={"key": other["key"]}).status_code == 403
        assert c.post("/key/regenerate", json={"key": other["key"]}).status_code == 403
        assert c.get("/user/info", params={"user_id": other["user_id"]}).status_code == 403
        assert c.get("/user/info").json()["user_id"] == me["user_id"]
        assert c.get("/spend/logs", params={"user_id": other["user_id"]}).status_code == 403
        rows = c.get("/spend/logs").json()
        assert all(r["user"] == me["user_id"] for r in rows)
        assert c.post("/key/update", json={"key": mine.json()["key"], "metadata": {"x": 1}}).status_code == 200
        assert c.post("/key/delete", json={"keys": [mine.json()["key"]]}).status_code == 200
    # other's key still works: nothing was changed by the refused calls
    chat(gateway, other["key"], "demo")


def test_viewers_read_but_do_not_write(gateway, people):
    viewer = people["proxy_admin_viewer"]
    other = people["other"]
    with as_key(gateway, viewer["key"]) as c:
        assert c.get("/key/info", params={"key": other["key"]}).status_code == 200
        assert c.get("/user/info", params={"user_id": other["user_id"]}).status_code == 200
        assert c.post("/key/block", json={"key": other["key"]}).status_code == 403
        assert c.post("/key/generate", json={}).status_code == 403
    iv = people["internal_user_viewer"]
    with as_key(gateway, iv["key"]) as c:
        assert c.post("/key/generate", json={}).status_code == 403
        assert c.get("/key/info").status_code == 200
        assert c.post("/key/update", json={"key": iv["key"], "metadata": {"a": 1}}).status_code == 403


def test_service_key_reads_only_itself(gateway, people):
    svc = people["service_key"]["key"]
    with as_key(gateway, svc) as c:
        assert c.get("/key/info").status_code == 200
        assert c.post("/key/generate", json={}).status_code == 403
        assert c.get("/user/list").status_code == 403
        assert c.get("/key/info", params={"key": people["other"]["key"]}).status_code == 403


def test_team_admins_manage_their_team(gateway, http):
    boss, worker, outsider = new_user(http), new_user(http), new_user(http)
    t = http.post("/team/new", json={"members_with_roles": [{"role": "admin", "user_id": boss["user_id"]}]}).json()
    other_team = http.post("/team/new", json={}).json()
    with as_key(gateway, boss["key"]) as c:
        r = c.post("/team/member_add", json={"team_id": t["team_id"], "member": {"role": "user", "user_id": worker["user_id"]}})
        assert r.status_code == 200, r.text
        k = c.post("/key/generate", json={"team_id": t["team_id"], "user_id": worker["user_id"]})
        assert k.status_code == 200, k.text
        assert c.post("/key/block", json={"key": k.json()["key"]}).status_code == 200
        assert c.post("/team/member_add", json={"team_id": other_team["team_id"], "member": {"role": "user", "user_id": outsider["user_id"]}}).status_code == 403
        assert c.post("/team/update", json={"team_id": t["team_id"], "max_budget": 1000}).status_code == 403
    with as_key(gateway, worker["key"]) as c:
        assert c.get("/team/info", params={"team_id": t["team_id"]}).status_code == 200
        assert c.post("/team/member_add", json={"team_id": t["team_id"], "member": {"role": "user", "user_id": outsider["user_id"]}}).status_code == 403
    with as_key(gateway, outsider["key"]) as c:
        assert c.get("/team/info", params={"team_id": t["team_id"]}).status_code == 403


def test_budget_resets_each_period_exactly_once(gateway, http):
    g = http.post("/key/generate", json={"max_budget": 0.01}).json()
    chat(gateway, g["key"], "priced-mock")
    with pytest.raises(openai.BadRequestError):
        chat(gateway, g["key"], "priced-mock")
    # Adding a period to an existing key starts its schedule.
    up = http.post("/key/update", json={"key": g["key"], "budget_duration": "30s"}).json()
    assert up["budget_reset_at"] is not None
    assert wait_until(
        lambda: http.get("/key/info", params={"key": g["key"]}).json()["info"]["spend"] == 0, timeout=45, every=0.5
    )
    info = http.get("/key/info", params={"key": g["key"]}).json()["info"]
    assert info["budget_reset_at"] > up["budget_reset_at"]
    chat(gateway, g["key"], "priced-mock")  # a new period: allowed again


def test_admin_changes_are_audited(gateway, http):
    g = http.post("/key/generate", json={}).json()
    http.post("/key/update", json={"key": g["key"], "max_budget": 3})
    http.post("/key/block", json={"key": g["key"]})
    trail = http.get("/audit", params={"object_type": "key", "object_id": g["token"]}).json()
    assert [t["action"] for t in trail] == ["blocked", "updated", "created"]
    assert trail[1]["changed_by"] == "master_key"
    assert trail[1]["before_value"]["max_budget"] is None and trail[1]["updated_values"]["max_budget"] == 3


def test_soft_budget_is_shown_and_does_not_block(gateway, http):
    g = http.post("/key/generate", json={"soft_budget": 0.005}).json()
    info = http.get("/key/info", params={"key": g["key"]}).json()["info"]
    assert info["soft_budget_exceeded"] is False
    chat(gateway, g["key"], "priced-mock")
    chat(gateway, g["key"], "priced-mock")  # still allowed: a soft budget only warns
    info = http.get("/key/info", params={"key": g["key"]}).json()["info"]
    assert info["soft_budget_exceeded"] is True and info["soft_budget"] == 0.005
    assert wait_until(lambda: "crossed its soft budget" in gateway.stderr())


def test_model_info_shows_prices_and_limits_never_secrets(gateway, http):
    r = http.get("/model/info")
    assert r.status_code == 200
    data = r.json()["data"]
    assert "sk-upstream-SECRET" not in r.text and "aws-secret" not in r.text
    priced = [m for m in data if m["model_name"] == "priced-mock"][0]
    assert priced["litellm_params"]["model"] == "openai/gpt-4o-mini"
    assert "api_key" not in priced["litellm_params"]
    assert priced["model_info"]["input_cost_per_token"] == 0.001
    assert priced["model_info"]["access_groups"] == ["beta-models"]
    gpt = [m for m in data if m["model_name"] == "gpt-mock"][0]
    assert gpt["model_info"]["input_cost_per_token"] > 0  # from the bundled table
    assert gpt["model_info"]["max_input_tokens"] >= 100000
    one = http.get("/v1/model/info", params={"litellm_model_id": priced["model_info"]["id"]}).json()["data"]
    assert [m["model_name"] for m in one] == ["priced-mock"]
    assert http.get("/model/info", params={"litellm_model_id": "nope"}).status_code == 404
    k = http.post("/key/generate", json={"models": ["beta-models"]}).json()["key"]
    with as_key(gateway, k) as c:
        assert [m["model_name"] for m in c.get("/model/info").json()["data"]] == ["priced-mock"]


def test_model_max_budget_binds_one_model_and_resets_each_period(gateway, http):
    g = http.post(
        "/key/generate", json={"model_max_budget": {"priced-mock": {"budget_limit": 0.01, "time_period": "30s"}}}
    ).json()
    chat(gateway, g["key"], "priced-mock")
    with pytest.raises(openai.BadRequestError) as over:
        chat(gateway, g["key"], "priced-mock")
    assert over.value.body["type"] == "budget_exceeded"
    assert "model=priced-mock" in over.value.body["message"]
    assert chat(gateway, g["key"], "gpt-mock").choices, "other models are not bound by it"
    info = http.get("/key/info", params={"key": g["key"]}).json()["info"]
    assert info["model_spend"]["priced-mock"] > 0.01
    assert wait_until(
        lambda: http.get("/key/info", params={"key": g["key"]}).json()["info"]["model_spend"]["priced-mock"] == 0,
        timeout=45,
        every=0.5,
    )
    assert chat(gateway, g["key"], "priced-mock").choices


@pytest.mark.parametrize(
    "budget",
    [{"m": "lots"}, {"m": {"budget_limit": -1}}, {"m": {"budget_limit": 1, "time_period": "fortnight"}}, {"m": {}}],
)
def test_bad_model_max_budget_is_refused(http, budget):
    r = http.post("/key/generate", json={"model_max_budget": budget})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "model_max_budget"


def test_calls_without_upstream_usage_are_counted_and_priced(gateway, http):
    g = http.post("/key/generate", json={}).json()
    client = sdk(gateway, g["key"])
    messages = [{"role": "user", "content": "count these five words"}]
    plain = client.chat.completions.create(model="no-usage", messages=messages)
    assert plain.usage.prompt_tokens > 5 and plain.usage.completion_tokens > 0
    chunks = list(
        client.chat.completions.create(
            model="no-usage", messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    list(client.chat.completions.create(model="no-usage", messages=messages, stream=True))

    def logged():
        r = http.get("/spend/logs", params={"api_key": g["key"]}).json()
        return r if len(r) == 3 else None

    assert wait_until(logged)
    for row in logged():
        assert row["prompt_tokens"] == plain.usage.prompt_tokens, row
        assert row["completion_tokens"] > 0 and row["spend"] > 0, row
