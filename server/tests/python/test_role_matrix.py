"""Every management route against every kind of caller, on objects that belong
to someone else: allowed callers get 200, the others 403 with a message and
none of the object's data."""

import uuid

import httpx
import pytest

from conftest import MASTER_KEY

ADMINS = {"master", "proxy_admin"}
READERS = ADMINS | {"proxy_admin_viewer"}
CALLERS = ["master", "proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer", "team_admin", "service_key"]


def uid(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def world(gateway):
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30) as m:

        def user(role):
            r = m.post("/user/new", json={"user_id": uid(role), "user_role": role})
            assert r.status_code == 200, r.text
            return r.json()

        keys = {"master": MASTER_KEY}
        for role in ("proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer"):
            keys[role] = user(role)["key"]
        team_admin = user("internal_user")
        keys["team_admin"] = team_admin["key"]
        keys["service_key"] = m.post("/key/generate", json={}).json()["key"]
        owner = user("internal_user")
        team = m.post("/team/new", json={"team_alias": uid("team")}).json()["team_id"]
        r = m.post(
            "/team/member_add",
            json={"team_id": team, "member": [{"user_id": team_admin["user_id"], "role": "admin"}, {"user_id": owner["user_id"], "role": "user"}]},
        )
        assert r.status_code == 200, r.text
        yield {"admin": m, "keys": keys, "owner": owner["user_id"], "team": team}


def fresh(world):
    """Objects of another user that one case may change or delete."""
    m = world["admin"]
    k = m.post("/key/generate", json={"user_id": world["owner"], "team_id": world["team"]}).json()
    u = m.post("/user/new", json={"user_id": uid("victim"), "auto_create_key": False}).json()["user_id"]
    t = m.post("/team/new", json={"team_alias": uid("victim-team")}).json()["team_id"]
    member = m.post("/user/new", json={"user_id": uid("member"), "auto_create_key": False}).json()["user_id"]
    m.post("/team/member_add", json={"team_id": world["team"], "member": [{"user_id": member, "role": "user"}]})
    return {"key": k["key"], "token": k["token"], "user": u, "team_to_delete": t, "member": member}


# (method, path, body or query, callers allowed besides admins)
ROUTES = [
    ("POST", "/key/generate", lambda w, f: {"user_id": w["owner"], "team_id": w["team"]}, {"team_admin"}),
    ("POST", "/key/update", lambda w, f: {"key": f["key"], "max_budget": 1}, {"team_admin"}),
    ("GET", "/key/info", lambda w, f: {"key": f["key"]}, {"proxy_admin_viewer", "team_admin"}),
    ("POST", "/key/delete", lambda w, f: {"keys": [f["key"]]}, {"team_admin"}),
    ("POST", "/key/block", lambda w, f: {"key": f["key"]}, {"team_admin"}),
    ("POST", "/key/unblock", lambda w, f: {"key": f["key"]}, {"team_admin"}),
    ("POST", "/key/regenerate", lambda w, f: {"key": f["key"]}, {"team_admin"}),
    ("POST", "/key/{key}/regenerate", lambda w, f: {}, {"team_admin"}),
    ("GET", "/user/info", lambda w, f: {"user_id": w["owner"]}, {"proxy_admin_viewer"}),
    ("POST", "/user/new", lambda w, f: {"user_id": uid("new")}, set()),
    ("POST", "/user/update", lambda w, f: {"user_id": f["user"], "max_budget": 5}, set()),
    ("POST", "/user/delete", lambda w, f: {"user_ids": [f["user"]]}, set()),
    ("GET", "/user/list", lambda w, f: {}, {"proxy_admin_viewer"}),
    ("POST", "/team/new", lambda w, f: {"team_alias": uid("t")}, set()),
    ("GET", "/team/info", lambda w, f: {"team_id": w["team"]}, {"proxy_admin_viewer", "team_admin"}),
    ("POST", "/team/update", lambda w, f: {"team_id": w["team"], "metadata": {"x": 1}}, set()),
    ("POST", "/team/member_add", lambda w, f: {"team_id": w["team"], "member": [{"user_id": f["user"], "role": "user"}]}, {"team_admin"}),
    ("POST", "/team/member_delete", lambda w, f: {"team_id": w["team"], "user_id": f["member"]}, {"team_admin"}),
    ("POST", "/team/block", lambda w, f: {"team_id": f["team_to_delete"]}, set()),
    ("POST", "/team/unblock", lambda w, f: {"team_id": f["team_to_delete"]}, set()),
    ("POST", "/team/delete", lambda w, f: {"team_ids": [f["team_to_delete"]]}, set()),
    ("GET", "/spend/logs", lambda w, f: {"user_id": w["owner"]}, {"proxy_admin_viewer"}),
    ("GET", "/global/spend", lambda w, f: {}, {"proxy_admin_viewer"}),
    ("GET", "/global/spend/report", lambda w, f: {}, {"proxy_admin_viewer"}),
    ("GET", "/audit", lambda w, f: {"object_type": "key", "object_id": f["token"]}, {"proxy_admin_viewer"}),
    ("POST", "/model/new", lambda w, f: {"model_name": uid("m"), "litellm_params": {"model": "openai/m", "api_base": "http://127.0.0.1:9/v1"}}, set()),
    ("POST", "/model/delete", lambda w, f: {"id": "no-such-model"}, set()),
]


@pytest.mark.parametrize("method,path,params,also", ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
@pytest.mark.parametrize("caller", CALLERS)
def test_route_against_caller(gateway, world, caller, method, path, params, also):
    f = fresh(world)
    body = params(world, f)
    url = path.replace("{key}", f["key"])
    allowed = caller in ADMINS or caller in also
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {world['keys'][caller]}"}, timeout=30) as c:
        r = c.get(url, params=body) if method == "GET" else c.request(method, url, json=body)
    if path == "/model/delete" and allowed:
        assert r.status_code == 404, r.text  # allowed to try; the model does not exist
    elif allowed:
        assert r.status_code == 200, (caller, path, r.text)
    else:
        assert r.status_code == 403, (caller, path, r.text)
        err = r.json()["error"]
        assert err["message"] and err["type"]
        assert f["token"] not in r.text and f["key"] not in r.text


@pytest.mark.parametrize("caller", ["internal_user", "internal_user_viewer", "team_admin", "service_key"])
def test_lists_show_only_what_the_caller_may_see(gateway, world, caller):
    f = fresh(world)
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {world['keys'][caller]}"}, timeout=30) as c:
        keys = c.get("/key/list", params={"return_full_object": "true", "size": 1000})
        teams = c.get("/team/list")
    if keys.status_code == 200:
        listed = keys.text
        if caller == "team_admin":
            assert f["token"] in listed, "a team admin sees the team's keys"
        else:
            assert f["token"] not in listed
    else:
        assert keys.status_code == 403
    if teams.status_code == 200:
        visible = {t["team_id"] for t in teams.json()}
        assert f["team_to_delete"] not in visible
        assert (world["team"] in visible) == (caller == "team_admin")
    else:
        assert teams.status_code == 403
