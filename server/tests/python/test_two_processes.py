"""Two Tollgate processes sharing one Postgres behave as one: admin changes
made through one hold in the other within the poll bound, and spend counted by
both adds up exactly to the logged rows."""

import concurrent.futures
import os

import httpx
import pytest

from conftest import MASTER_KEY, start_gateway, wait_until

pytestmark = pytest.mark.skipif(
    not (os.environ.get("TOLLGATE_TEST_DATABASE_URL") or "").startswith("postgres"),
    reason="needs the shared Postgres (make test-python-postgres)",
)


@pytest.fixture(scope="module")
def second(mock, slow_mock, tmp_path_factory, gateway):
    workdir = tmp_path_factory.mktemp("tollgate-b")
    p = start_gateway(mock.url, slow_mock.url, workdir)
    yield p
    p.stop()


def admin(url):
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30)


def post_chat(url, key):
    return httpx.post(
        url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "priced-mock", "messages": [{"role": "user", "content": "hello there"}]},
        timeout=60,
    )


def test_changes_made_in_one_process_hold_in_the_other(gateway, second):
    with admin(gateway.url) as a:
        key = a.post("/key/generate", json={}).json()["key"]
        assert wait_until(lambda: post_chat(second.url, key).status_code == 200, timeout=10)
        a.post("/key/block", json={"key": key})
        assert wait_until(lambda: post_chat(second.url, key).status_code == 401, timeout=10)


def test_spend_from_both_processes_equals_the_logged_rows(gateway, second):
    with admin(gateway.url) as a:
        g = a.post("/key/generate", json={}).json()
    key, token = g["key"], g["token"]
    # Both processes must know the key before the burst.
    assert wait_until(lambda: post_chat(second.url, key).status_code == 200, timeout=10)
    urls = [gateway.url, second.url]
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        codes = list(pool.map(lambda i: post_chat(urls[i % 2], key).status_code, range(1000)))
    assert codes.count(200) == 1000, {c: codes.count(c) for c in set(codes)}
    with admin(gateway.url) as a, admin(second.url) as b:

        def rows():
            return a.get("/spend/logs", params={"api_key": token, "limit": 5000}).json()

        assert wait_until(lambda: len(rows()) == 1001, timeout=20)
        logged = sum(r["spend"] for r in rows())
        # Each process's counter converges on the database's, which is the sum of the rows.
        for c in (a, b):
            assert wait_until(
                lambda c=c: abs(c.get("/key/info", params={"key": key}).json()["info"]["spend"] - logged) < 1e-9,
                timeout=10,
            ), (c.base_url, c.get("/key/info", params={"key": key}).json()["info"]["spend"], logged)


def test_a_model_added_through_one_process_is_served_by_the_other(gateway, second, mock):
    name = "shared-db-model"
    with admin(gateway.url) as a:
        r = a.post(
            "/model/new",
            json={"model_name": name, "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": f"{mock.url}/v1", "api_key": "sk-x"}},
        )
        assert r.status_code == 200, r.text
        model_id = r.json()["model_id"]

    def served_by_second():
        r = httpx.post(
            second.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {MASTER_KEY}"},
            json={"model": name, "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
        return r.status_code == 200

    assert wait_until(served_by_second, timeout=10)
    with admin(second.url) as b:
        assert b.post("/model/delete", json={"id": model_id}).status_code == 200
    with admin(gateway.url) as a:
        assert wait_until(lambda: a.get("/model/info", params={"litellm_model_id": model_id}).status_code == 404, timeout=10)


def test_a_console_session_holds_in_both_processes_and_ends_in_both(gateway, second):
    headers = {"x-forwarded-for": "10.200.0.1"}
    with httpx.Client(base_url=gateway.url, follow_redirects=False, headers=headers, timeout=30) as a:
        r = a.post("/ui/session", data={"password": MASTER_KEY})
        assert r.status_code in (302, 303) and r.headers["location"] == "/ui/dashboard"
        cookies = dict(a.cookies)
        with httpx.Client(base_url=second.url, follow_redirects=False, headers=headers, timeout=30) as b:
            b.cookies.update(cookies)
            assert b.get("/ui/models").status_code == 200
            # Signing out on the second process ends the session on the first.
            b.post("/ui/logout")
        assert a.get("/ui/models").status_code in (302, 303)
